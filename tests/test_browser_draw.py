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
