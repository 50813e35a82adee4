"""A live room in real Chromium: the wall in one context, three phones (390x844, touch) in others.

The phones open the join link, draw with touch events (Chrome DevTools' Input.dispatchTouchEvent,
as tests/test_browser_draw.py does) and answer; the wall's "Drawings" reaches 3 without a reload.
Then a phone tries to take the presenter's room over, through the Live page and its own URL.

With SCRATCHNET_SCREENSHOTS=1 it also writes docs/live.png (the wall with drawings).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.browser

PHONE = dict(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True, device_scale_factor=2)
# strokes in a 280 px box, scaled to the canvas: a "1", a "7" (one stroke with a corner)
ONE = [(145, 40), (140, 245)]
SEVEN = [(70, 55), (205, 55), (125, 245)]
NASTY = "<img src=x onerror=alert(1)>"


def metric(page, label: str):
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def touch_stroke(context, page, points, steps: int = 12) -> None:
    """One finger stroke through ``points`` (in a 280 px box, scaled to the canvas on screen)."""
    canvas = page.locator("canvas.upper-canvas")
    box = canvas.bounding_box()
    s = box["width"] / 280
    path = [points[0]]
    for (xa, ya), (xb, yb) in zip(points, points[1:]):
        path += [(xa + (xb - xa) * t / steps, ya + (yb - ya) * t / steps) for t in range(1, steps + 1)]
    cdp = context.new_cdp_session(page)

    def send(kind, pts):
        cdp.send("Input.dispatchTouchEvent", {
            "type": kind, "touchPoints": [{"x": box["x"] + x * s, "y": box["y"] + y * s} for x, y in pts]})

    send("touchStart", path[:1])
    for p in path[1:]:
        send("touchMove", [p])
    send("touchEnd", [])
    cdp.detach()


def in_viewport(locator, height: int = 844, width: int = 390) -> bool:
    box = locator.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height and \
        box["x"] >= 0 and box["x"] + box["width"] <= width


def test_a_room_of_three_phones_and_a_wall(browser, streamlit_server):
    mark = streamlit_server.log_mark()
    dialogs = []
    wall_context = browser.new_context(viewport={"width": 1400, "height": 1000})
    phones = []
    try:
        wall = wall_context.new_page()
        wall.set_default_timeout(20_000)
        wall.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        wall.goto(f"{streamlit_server}/Live")
        wall.get_by_role("button", name="Open a room").click()
        link = wall.get_by_role("link", name=re.compile(r"Draw\?room="))
        expect(link).to_be_visible()
        join = link.get_attribute("href")
        code = re.search(r"room=([A-Z0-9]{6})$", join).group(1)
        assert join == f"{streamlit_server}/Draw?room={code}"  # the address the presenter's browser uses
        expect(wall.get_by_test_id("stImage").first).to_be_visible()  # the QR code
        wall.get_by_text("Your presenter link").click()
        presenter = wall.get_by_test_id("stCode").inner_text().strip()
        assert presenter.startswith(f"{streamlit_server}/Live?room={code}&key=")
        key = presenter.split("key=", 1)[1]
        assert key not in join
        expect(metric(wall, "Drawings")).to_have_text("0")

        # three phones join, draw with a finger, and answer
        plan = [("1", ONE, "yes", NASTY), ("7", SEVEN, "yes", "**bold**"), ("1", ONE, "4", "")]
        for digit, stroke, answer, nickname in plan:
            context = browser.new_context(**PHONE)
            phones.append(context)
            phone = context.new_page()
            phone.set_default_timeout(20_000)
            phone.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            phone.goto(join)
            expect(phone.get_by_text(f"Room {code}")).to_be_visible()
            canvas = phone.locator("canvas.upper-canvas")
            canvas.wait_for()
            box = canvas.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["width"] >= 320  # fills the width
            if nickname:
                phone.get_by_role("button", name="Your name").click()
                field = phone.get_by_role("textbox", name="Your name on the wall (optional)")
                field.press_sequentially(nickname)  # typed: the box stops at 24 characters
                field.press("Enter")
                phone.keyboard.press("Escape")
                expect(field).to_be_hidden()
            touch_stroke(context, phone, stroke)
            prediction = metric(phone, "Prediction")
            expect(prediction).to_have_text(digit)
            # right after drawing, without scrolling: the prediction and the answer are on screen
            assert phone.evaluate("window.scrollY") == 0
            assert in_viewport(prediction), prediction.bounding_box()
            yes = phone.get_by_role("button", name=f"Yes, it is a {digit}")
            assert in_viewport(yes), yes.bounding_box()
            if answer == "yes":
                yes.tap()
                expect(phone.get_by_text(f"Your {digit} is on the wall with a ✓")).to_be_visible()
            else:
                pill = phone.get_by_test_id("stButtonGroup").get_by_role("radio", name=answer, exact=True)
                assert in_viewport(pill), pill.bounding_box()
                pill.tap()
                expect(phone.get_by_text(f"Your {answer} is on the wall with a ✗")).to_be_visible()

        # the wall has followed along, without a reload
        expect(metric(wall, "Drawings")).to_have_text("3")
        expect(metric(wall, "Room accuracy")).to_have_text("67%")
        expect(wall.get_by_text("**bold**", exact=True)).to_have_count(1)  # as typed, not bold
        expect(wall.get_by_text(NASTY[:24], exact=True).first).to_be_visible()
        assert wall.locator("img[src='x']").count() == 0 and not dialogs
        expect(wall.get_by_text("a 4 read as 1", exact=False).first).to_be_visible()  # the stumper
        if os.environ.get("SCRATCHNET_SCREENSHOTS") == "1":
            wall.get_by_text("Your presenter link").click()  # fold the key away before the picture
            wall.set_viewport_size({"width": 1400, "height": 1250})
            wall.get_by_role("heading", name="Live room").evaluate("e => e.scrollIntoView({block: 'start'})")
            wall.wait_for_timeout(1500)
            wall.screenshot(path=str(ROOT / "docs" / "live.png"))

            wall.set_viewport_size({"width": 1400, "height": 1000})

        # a phone edits its address: to the Live page, with and without a guessed key
        intruder = phones[0].pages[0]
        for address in (f"/Live?room={code}", f"/Live?room={code}&key=guess", f"/Live?room={code}&key={key[:-2]}"):
            intruder.goto(f"{streamlit_server}{address}")
            expect(intruder.get_by_text(f"Only the presenter who opened room {code}")).to_be_visible()
            expect(intruder.get_by_role("button", name="Open a room")).to_be_visible()
            assert intruder.get_by_role("button", name="Clear the wall").count() == 0
            assert metric(intruder, "Drawings").count() == 0
        intruder.goto(f"{streamlit_server}/Draw?room={code}&key={key[:-2]}")  # or to the Draw page
        expect(intruder.get_by_text(f"Room {code}")).to_be_visible()
        assert intruder.get_by_role("button", name="Clear the wall").count() == 0
        wall.wait_for_timeout(1500)
        expect(metric(wall, "Drawings")).to_have_text("3")  # the wall is untouched
        expect(wall.get_by_role("button", name="Clear the wall")).to_be_visible()

        # the presenter link restores the controls after a reload, and leaves the address bar
        wall.goto(presenter)
        expect(wall.get_by_text("You are back at the wall")).to_be_visible()
        expect(metric(wall, "Drawings")).to_have_text("3")
        assert "key=" not in wall.url
        wall.get_by_role("button", name="Clear the wall").click()
        expect(metric(wall, "Drawings")).to_have_text("0")
        expect(wall.get_by_text("No drawings yet")).to_be_visible()
        wall.wait_for_timeout(1500)  # another refresh or two: nothing of the old wall lingers
        assert wall.get_by_text("**bold**", exact=True).count() == 0
        assert wall.get_by_text("1 ✓", exact=True).count() == 0
        # big screen: large type, the QR code still there
        wall.get_by_text("Big screen").click()
        expect(wall.get_by_text(code, exact=True)).to_be_visible()
        expect(wall.get_by_test_id("stImage").first).to_be_visible()
        size = wall.get_by_text(code, exact=True).evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
        assert size >= 80
    finally:
        for context in phones:
            context.close()
        wall_context.close()
    log = streamlit_server.log_since(mark)
    assert "Traceback" not in log, log
