"""The Train page in a real browser: open the app, start training, watch accuracy move, stop.

With SCRATCHNET_SCREENSHOTS=1 it also writes docs/train.png mid-training.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.browser


def metric_value(page, label: str) -> str | None:
    loc = page.locator('[data-testid="stMetric"]').filter(has_text=label).locator('[data-testid="stMetricValue"]')
    return loc.first.inner_text() if loc.count() else None


def wait_until(predicate, timeout: float = 40.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_train_page_live_accuracy_and_stop(streamlit_server, page):
    mark = streamlit_server.log_mark()
    page.goto(streamlit_server)
    page.get_by_text("State of things").wait_for()
    page.get_by_role("link", name=re.compile("^Train")).first.click()
    page.get_by_text("1 · Data").wait_for()
    expect(page.get_by_role("radio", name="Bundled sample (5,000 digits, offline)")).to_be_checked()

    # the fast preset on the sample, long enough to watch and stop
    epochs = page.get_by_label("Epochs", exact=True).and_(page.locator("input[type=number]"))
    epochs.fill("200")
    epochs.press("Enter")
    expect(page.get_by_role("combobox", name="Preset")).to_have_value("Custom")  # follows the knobs
    page.get_by_role("button", name="Start training").click()

    first = wait_until(lambda: (v := metric_value(page, "Validation accuracy")) and v.endswith("%") and v,
                       what="a validation accuracy")
    changed = wait_until(lambda: (v := metric_value(page, "Validation accuracy")) != first and v,
                         what="the validation accuracy to change")
    assert changed.endswith("%")
    assert page.locator('[data-testid="stVegaLiteChart"]').count() == 2
    assert page.get_by_text(re.compile(r"Iteration [\d,]+ of [\d,]+ · .* elapsed")).count() >= 1

    # to the Draw page and back: the sidebar keeps showing it, the Train page picks it up again
    page.get_by_role("link", name="Draw").click()
    page.get_by_text("Training in progress").wait_for()
    page.get_by_role("link", name="Train").click()
    page.get_by_text("1 · Data").wait_for()
    expect(page.get_by_role("button", name="Start training")).to_be_disabled()
    before = wait_until(lambda: metric_value(page, "Validation accuracy"), what="the live view again")
    wait_until(lambda: metric_value(page, "Validation accuracy") != before, what="accuracy moving again")

    # a reload is a new session: the job id in the URL reattaches it
    assert "job=" in page.url
    page.reload()
    page.get_by_text("1 · Data").wait_for()
    expect(page.get_by_role("button", name="Stop")).to_be_enabled()
    wait_until(lambda: metric_value(page, "Validation accuracy"), what="the live view after a reload")

    if os.environ.get("SCRATCHNET_SCREENSHOTS") == "1":
        page.set_viewport_size({"width": 1400, "height": 1750})  # data, knobs and charts at once
        page.get_by_role("heading", name="🏋️ Train").evaluate("e => e.scrollIntoView({block: 'start'})")
        time.sleep(1.5)  # let the charts take a refresh at the new size
        page.screenshot(path=str(ROOT / "docs" / "train.png"))

    page.get_by_role("button", name="Stop").click()
    page.get_by_text(re.compile(r"Stopped.* after [\d,]+ iterations")).wait_for()
    page.get_by_text("Saved as").first.wait_for()
    assert page.get_by_role("button", name="Start training").is_enabled()
    log = streamlit_server.log_since(mark)
    assert "Traceback" not in log and "Warning" not in log and "WARNING" not in log, log


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the select box labelled ``label``."""
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(page.get_by_role("combobox", name=label)).to_have_value(option)


def test_train_page_conv_net_from_a_custom_spec_finishes(streamlit_server, page):
    mark = streamlit_server.log_mark()
    page.goto(f"{streamlit_server}/Train")
    page.get_by_text("1 · Data").wait_for()
    expect(page.get_by_role("radio", name="Bundled sample (5,000 digits, offline)")).to_be_checked()

    # the named conv net shows what it makes, and how long it would take
    choose(page, "Architecture", "Conv net")
    page.get_by_text("28x28 → conv16-5 → maxpool2 → conv32-5 → maxpool2 → dense128 → 10").wait_for()
    page.get_by_text("215,370 parameters", exact=False).wait_for()
    page.get_by_text("Estimated training time").wait_for()

    # Custom starts from that SPEC; a small conv net trains in seconds on the sample
    choose(page, "Architecture", "Custom")
    layers = page.get_by_role("textbox", name="Layers (SPEC)")
    expect(layers).to_have_value("conv16-5,maxpool2,conv32-5,maxpool2,dense128")
    layers.fill("conv4-5,maxpool2,dense16")
    layers.press("Enter")
    page.get_by_text("28x28 → conv4-5 → maxpool2 → dense16 → 10").wait_for()
    page.get_by_text("Iterations", exact=True).first.click()  # "Train for": iterations
    iterations = page.get_by_label("Iterations", exact=True).and_(page.locator("input[type=number]"))
    iterations.fill("60")
    iterations.press("Enter")
    expect(page.get_by_role("combobox", name="Preset")).to_have_value("Custom")
    page.get_by_role("button", name="Start training").click()

    page.get_by_text(re.compile(r"Finished.* after 60 iterations")).wait_for(timeout=90_000)
    page.get_by_text("Saved as").first.wait_for()
    table = page.locator('[data-testid="stDataFrame"]')
    expect(table).to_be_visible()
    log = streamlit_server.log_since(mark)
    assert "Traceback" not in log, log
