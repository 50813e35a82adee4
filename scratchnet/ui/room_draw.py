"""The Draw page in a room (``/Draw?room=CODE``): phone first, every drawing on the wall.

``render()`` is the one entry point. It returns False, after one sentence, when the code is
malformed, unknown or closed: the caller then draws the ordinary Draw page.

On a 390x844 phone the canvas fills the width and the prediction and "Was this right?" sit
directly under it, so drawing and answering need no scrolling. A drawing goes to the wall
(``Rooms.add``, with the room's model's reading) when it is finished: when its drawer answers, or
when they leave it alone for ``SETTLE`` seconds (a small fragment ticks only while a drawing is
waiting). Sending each stroke would put half-drawn 4s on the wall and trip the one-a-second rate
limit for anyone who writes a digit in two strokes.

Visitors' words (the nickname) only ever go to the core and back as plain text; messages that
quote a visitor's input are escaped before Streamlit's Markdown sees them.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

import streamlit as st

from scratchnet import feedback
from scratchnet.errors import EmptyImageError, ScratchnetError
from scratchnet.rooms import MAX_NICKNAME, RateLimited, RoomError, Rooms, validate_code
from scratchnet.ui import common, draw

ROOM_CANVAS = 340  # px: fills a 390 px phone once the page's side padding is trimmed (see _phone_style)
SETTLE = 1.2  # seconds a drawing is left alone before it counts as finished and goes to the wall
TICK = 0.5  # the settle fragment's rerun interval (only while a drawing waits)

SESSION = "room_session"  # this visitor's random id for the core (rate limit, "your own drawings")
NICK = "room_nickname"
PENDING = "room_pending"  # the current reading: see _Pending
THANKS = "room_thanks"  # (kind, sentence) after an answer
ERROR = "room_error"
READ_CACHE = "room_read_cache"  # (fingerprint of the canvas PNG, model name, Reading)


def escape_markdown(text: str) -> str:
    """``text`` for st.info/st.warning, which render Markdown: every Markdown character escaped."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$:])", r"\\\1", str(text))


def get_rooms() -> Rooms:
    return Rooms()


def _session_id() -> str:
    return st.session_state.setdefault(SESSION, secrets.token_hex(12))


# --------------------------------------------------------------------------- entry point


def render() -> bool:
    """Draw the room mode of the Draw page if ``?room=`` names an open room; else one sentence
    and False (the ordinary page follows)."""
    rooms = get_rooms()
    raw = st.query_params.get("room")
    try:
        code = validate_code(raw)
        meta = rooms.info(code)
    except RoomError as err:
        st.info(escape_markdown(str(err)), icon=":material/info:")
        return False
    _phone_style()
    model = _room_model(meta)
    with st.container(horizontal=True, vertical_alignment="center"):
        st.markdown(f"#### :material/groups: Room {code}")  # validated: letters and digits only
        with st.popover("Your name", icon=":material/badge:"):
            st.text_input("Your name on the wall (optional)", key=NICK, max_chars=MAX_NICKNAME,
                          placeholder="anonymous", help="Shown under your drawings on the wall, as plain text.")
    if model is None:
        st.warning("This room has no model to read with yet; ask the presenter to train one.")
        return True
    name, net = model
    pixels = _canvas()
    reading = _read(net, name, pixels)
    _result(code, name, reading)
    return True


def _phone_style() -> None:
    """Trim Streamlit's page padding so the canvas and the answer fit a phone's first screen."""
    st.html(
        "<style>"
        "[data-testid='stMainBlockContainer']{padding:3.2rem .6rem 1rem .6rem}"
        "[data-testid='stMainBlockContainer'] h4{padding:0}"
        "</style>"
    )


def _room_model(meta: dict):
    """(name, net) of the room's model, else the active model's; None when there is no model."""
    name = meta.get("model")
    if name:
        try:
            path = common.get_store().path_for(name)
            stat = path.stat()
            net, _meta = common._load_model(str(path), stat.st_mtime_ns, stat.st_size)
            return name, net
        except (OSError, ScratchnetError):
            pass
    active = common.active_model()
    return None if active is None else (active[0], active[1])


# --------------------------------------------------------------------------- canvas and reading


def _canvas():
    from streamlit_drawable_canvas import st_canvas

    result = st_canvas(
        fill_color="#FFFFFF", stroke_width=int(draw.DEFAULT_STROKE * ROOM_CANVAS / draw.CANVAS_SIZE),
        stroke_color="#FFFFFF", background_color="#000000", update_streamlit=True,
        height=ROOM_CANVAS, width=ROOM_CANVAS, drawing_mode="freedraw", return_image_data=True,
        key=draw.canvas_key(),
    )
    try:
        png = result.image_bytes
    except Exception:
        png = None
    if png is None:
        return None
    fp = hashlib.sha1(png).hexdigest()
    try:
        return fp, draw.canvas_pixels(result)
    except Exception as err:  # a malformed payload must not break the page
        common.show_error(err)
        return None


def _read(net, model_name: str, pixels):
    """The network's reading of the canvas (once per canvas picture and model), or None."""
    if pixels is None:
        return None
    fp, image = pixels
    cached = st.session_state.get(READ_CACHE)
    if cached is not None and cached[0] == fp and cached[1] == model_name:
        return cached[2]
    try:
        reading = feedback.read_digit(net, image)
    except EmptyImageError:
        return None
    except ScratchnetError as err:
        common.show_error(err)
        return None
    st.session_state[READ_CACHE] = (fp, model_name, reading)
    return reading


def _fingerprint(reading) -> str:
    return hashlib.sha1(feedback.to_uint8(reading.image).tobytes()).hexdigest()[:16]


# --------------------------------------------------------------------------- the wall


def _pending(code: str, model_name: str, reading) -> dict | None:
    """This drawing's record: {fp, code, model, reading, seen, id (once on the wall), label}."""
    ss = st.session_state
    if reading is None:
        return None
    fp = _fingerprint(reading)
    p = ss.get(PENDING)
    if p is None or p["fp"] != fp or p["code"] != code:
        p = ss[PENDING] = {"fp": fp, "code": code, "model": model_name, "reading": reading,
                           "seen": time.monotonic(), "id": None, "label": None, "refused": False}
    return p


def _post(p: dict) -> bool:
    """Put the drawing on the wall (and its answer, if given); False if refused for now."""
    rooms = get_rooms()
    try:
        if p["id"] is None:
            r = p["reading"]
            x = rooms.add(p["code"], _session_id(), r.image, r.probabilities,
                          nickname=st.session_state.get(NICK, ""))
            p["id"] = x.id
        if p["label"] is not None:
            rooms.answer(p["code"], _session_id(), p["id"], int(p["label"]))
    except RateLimited as err:
        st.session_state[ERROR] = str(err)
        p["refused"] = "all the drawings" in str(err)  # the room is full: stop retrying
        return False
    except RoomError as err:
        st.session_state[ERROR] = str(err)
        p["refused"] = True
        return False
    st.session_state.pop(ERROR, None)
    return True


def _answer(label: int) -> None:
    """Yes / "No, it is a …": the drawing goes up now if it is not there yet, with its answer."""
    p = st.session_state.get(PENDING)
    if p is None:
        return
    p["label"] = int(label)
    if _post(p):
        right = p["label"] == p["reading"].digit
        st.session_state[THANKS] = (
            "success" if right else "info",
            f"Thanks! Your {p['label']} is on the wall with a {'✓' if right else '✗'}. Draw another one.")
        st.session_state.pop(PENDING, None)
        draw.clear_canvas()


def _answer_no(widget_key: str) -> None:
    label = st.session_state.get(widget_key)
    if label is not None:
        _answer(label)


def _settle_body() -> None:
    """While a drawing waits: put it on the wall once left alone for SETTLE seconds."""
    p = st.session_state.get(PENDING)
    if p is None or (p["id"] is not None and p["label"] is None) or p["refused"]:
        return
    if time.monotonic() - p["seen"] >= SETTLE:
        if _post(p):
            if p["label"] is not None:  # an answer that had to wait for the rate limit
                st.session_state.pop(PENDING, None)
                draw.clear_canvas()
            st.rerun(scope="app")  # stop ticking; show it as on the wall
        elif p["refused"]:
            st.rerun(scope="app")
    st.caption("Going up on the wall…")


_settle_fragment = st.fragment(run_every=TICK)(_settle_body)


# --------------------------------------------------------------------------- result


def _result(code: str, model_name: str, reading) -> None:
    """Directly under the canvas: the prediction, "Was this right?", and where the drawing is."""
    ss = st.session_state
    p = _pending(code, model_name, reading)
    if p is not None and p["id"] is None and not p["refused"] and time.monotonic() - p["seen"] >= SETTLE:
        _post(p)
    error = ss.get(ERROR)
    if reading is None:
        thanks = ss.pop(THANKS, None)
        if thanks:
            getattr(st, thanks[0])(thanks[1], icon=":material/check_circle:")
        else:
            st.info("Draw one digit, large, in the black square. It goes up on the wall.", icon=":material/draw:")
        if error:
            st.warning(escape_markdown(error), icon=":material/hourglass:")
            ss.pop(ERROR, None)
        return
    ss.pop(THANKS, None)
    with st.container(horizontal=True, vertical_alignment="center", gap="medium"):
        st.image(feedback.enlarge(reading.image, 84))
        st.metric("Prediction", str(reading.digit), help="The digit with the highest probability.")
        st.text(f"{reading.confidence:.0%} sure\n{'on the wall' if p['id'] else ''}")
    st.markdown("**Was this right?**")
    with st.container(horizontal=True, vertical_alignment="center"):
        st.button(f"Yes, it is a {reading.digit}", icon=":material/thumb_up:", key=f"room_yes_{p['fp']}",
                  on_click=_answer, args=(reading.digit,))
    others = [d for d in range(10) if d != reading.digit]
    st.pills("No, it is a …", others, key=f"room_no_{p['fp']}", selection_mode="single",
             on_change=_answer_no, args=(f"room_no_{p['fp']}",))
    if error:
        st.warning(escape_markdown(error), icon=":material/hourglass:")
        if p["refused"] or p["id"] is not None:
            ss.pop(ERROR, None)
    if not p["refused"] and (p["id"] is None or p["label"] is not None):  # still to go up, or its answer
        _settle_fragment()
    draw.probability_chart(reading.probabilities)
    draw.remember_drawing(reading, "canvas")
