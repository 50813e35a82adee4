"""Draw a digit with the mouse in real Chromium and read the prediction.

streamlit-drawable-canvas 0.13 is a components-v2 widget rendered in the page itself (no iframe):
fabric.js puts an ``upper-canvas`` over the drawing canvas and listens to mouse events there.
A stroke is sent to Python on mouse-up (after a 200 ms debounce), which reruns the page.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

SEVEN = [(70, 55), (205, 55), (125, 245)]
ONE = [(145, 40), (140, 245)]


def stroke(page, canvas, points, steps: int = 15) -> None:
    """One pen stroke through ``points`` (canvas pixels), as a person drags the mouse."""
    box = canvas.bounding_box()
    x0, y0 = box["x"], box["y"]
    page.mouse.move(x0 + points[0][0], y0 + points[0][1])
    page.mouse.down()
    for (xa, ya), (xb, yb) in zip(points, points[1:]):
        for t in range(1, steps + 1):
            page.mouse.move(x0 + xa + (xb - xa) * t / steps, y0 + ya + (yb - ya) * t / steps)
    page.mouse.up()


def open_draw(page, url):
    page.goto(f"{url}/Draw")
    canvas = page.locator("canvas.upper-canvas")
    canvas.wait_for()
    hint = page.get_by_text("Draw a digit on the canvas to see what the network reads.")
    hint.wait_for()
    return canvas, hint


def prediction(page):
    return page.get_by_test_id("stMetric").filter(has_text="Prediction").get_by_test_id("stMetricValue")


def test_draw_with_the_mouse_then_reset(page, streamlit_server):
    from playwright.sync_api import expect

    mark = streamlit_server.log_mark()
    canvas, hint = open_draw(page, streamlit_server)
    assert canvas.bounding_box()["width"] == pytest.approx(280, abs=1)

    stroke(page, canvas, SEVEN)
    expect(prediction(page)).to_have_text("7")
    expect(hint).to_have_count(0)
    expect(page.get_by_text("What the network sees")).to_be_visible()
    expect(page.get_by_role("button", name="Yes, it is a 7")).to_be_visible()

    # the page's Clear button: a fresh, empty canvas and the hint again
    page.get_by_role("button", name="Clear").click()
    expect(prediction(page)).to_have_count(0)
    expect(hint).to_be_visible()

    # draw again, then empty it with the canvas toolbar's own reset
    canvas = page.locator("canvas.upper-canvas")
    expect(canvas).to_have_count(1)  # the old canvas is gone, the new one mounted
    stroke(page, canvas, ONE)
    expect(prediction(page)).to_have_text("1")
    page.get_by_role("button", name="Reset canvas & history").click()
    expect(prediction(page)).to_have_count(0)
    expect(hint).to_be_visible()
    assert "Traceback" not in streamlit_server.log_since(mark)


def test_draw_with_a_finger_on_a_phone(browser, streamlit_server):
    """Touch events on a phone-sized screen: the canvas fits and the answer follows."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True,
                                  device_scale_factor=2)
    try:
        page = context.new_page()
        page.set_default_timeout(20_000)
        canvas, hint = open_draw(page, streamlit_server)
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390  # whole canvas on screen
        cdp = context.new_cdp_session(page)

        def touch(kind, points):
            cdp.send("Input.dispatchTouchEvent", {
                "type": kind, "touchPoints": [{"x": box["x"] + x, "y": box["y"] + y} for x, y in points],
            })

        path = [(145 - i * 0.25, 40 + i * 10) for i in range(21)]  # a "1", top to bottom
        touch("touchStart", path[:1])
        for point in path[1:]:
            touch("touchMove", [point])
        touch("touchEnd", [])
        expect(prediction(page)).to_have_text("1")
    finally:
        context.close()


# A 1 written with a flag and a foot (two strokes), in three versions: the small test model misreads
# each (as a 2 or a 3); the page centres and scales drawings, so versions differ in shape, not place.
FLAGGED_ONES = [
    [[(100, 90), (150, 40), (150, 240)], [(100, 240), (200, 240)]],
    [[(100, 105), (150, 60), (150, 240)], [(100, 240), (200, 240)]],
    [[(90, 100), (150, 40), (150, 240)], [(110, 240), (190, 240)]],
]


def test_correct_it_three_times_then_teach_it_my_handwriting(page, streamlit_server):
    """Draw, correct ("No, it is a 1"), three times; teach; the same drawing is now read as a 1."""
    import re

    from playwright.sync_api import expect

    mark = streamlit_server.log_mark()
    canvas, hint = open_draw(page, streamlit_server)
    for i, strokes in enumerate(FLAGGED_ONES):
        if i:
            page.get_by_role("button", name="Clear").click()
            expect(hint).to_be_visible()
            canvas = page.locator("canvas.upper-canvas")
            expect(canvas).to_have_count(1)
        for points in strokes:
            stroke(page, canvas, points)
            page.wait_for_timeout(400)  # each stroke is sent on its own (200 ms debounce)
        expect(prediction(page)).not_to_have_text("1")
        expect(page.get_by_role("combobox", name=re.compile("No, it is a"))).to_be_visible()
        page.wait_for_timeout(500)  # the reading of the whole drawing, not of its first stroke
        page.get_by_role("combobox", name=re.compile("No, it is a")).click()
        page.get_by_role("option", name="1", exact=True).click()
        expect(page.get_by_text("Saved as a 1")).to_be_visible()
        if i < 2:
            expect(page.get_by_role("button", name="Teach it my handwriting")).to_have_count(0)

    teach = page.get_by_role("button", name="Teach it my handwriting")
    expect(teach.first).to_be_visible()  # right beside the answer (and in its own section below)
    teach.first.click()
    expect(page.get_by_text("This page now reads your drawings with")).to_be_visible(timeout=90_000)
    expect(page.get_by_text(re.compile(r"of 3 \(cross-checked\)"))).to_be_visible()
    expect(page.get_by_test_id("stMetric").filter(has_text="MNIST validation")).to_be_visible()
    expect(page.get_by_role("combobox", name="Model")).to_have_value(re.compile(r"test-model-personal-.*\(yours\)"))
    expect(prediction(page)).to_have_text("1")  # the new answer, for the drawing still on the canvas
    expect(page.get_by_role("button", name="Make it everyone's model")).to_be_visible()
    log = streamlit_server.log_since(mark)
    assert "Traceback" not in log, log
