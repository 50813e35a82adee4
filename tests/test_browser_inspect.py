"""The Inspect page in a real browser: the confusion matrix is a Vega-Lite chart whose cells are
clickable, which AppTest cannot exercise."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser


def test_clicking_a_confusion_cell_shows_its_digits(streamlit_server, page):
    page.goto(f"{streamlit_server}/Inspect")
    page.get_by_text("Accuracy", exact=True).first.wait_for(timeout=60_000)
    chart = page.get_by_test_id("stVegaLiteChart").first
    cells = chart.locator("path[role='graphics-symbol']")
    cells.first.wait_for()
    assert cells.count() == 100
    # pick an off-diagonal cell holding mistakes (from the labels Vega writes on each mark),
    # other than the one shown by default, so the click has to change what is shown
    target = None
    for i in range(100):
        label = cells.nth(i).get_attribute("aria-label") or ""
        m = re.match(r"predicted: (\d); true digit: (\d);.*digits: (\d+);", label)
        if m and m[1] != m[2] and int(m[3]) > 0:
            t, p, n = int(m[2]), int(m[1]), int(m[3])
            if page.get_by_text(f"{n} digits labelled {t} were read as {p}").count() == 0:
                target = (t, p, n, i)
                break
    assert target is not None, "the test model makes no mistakes?"
    t, p, n, i = target
    cells.nth(i).click()
    expected = f"{n} digits labelled {t} were read as {p}"
    page.get_by_text(expected).first.wait_for(timeout=20_000)
    assert page.get_by_test_id("stException").count() == 0
