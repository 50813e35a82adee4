"""The Live page: the presenter's wall of a room (issue #13).

A room belongs to whoever opened it: ``scratchnet.rooms`` hands that session a secret presenter
key, kept in ``st.session_state`` (on the server, out of any client's reach). Every control here
sends that key to the core, which checks it; without it this page can open a room of its own but
never show or touch another. The key travels to the presenter once, in a presenter link that
brings the wall back after a reload, and never in the join link or its QR code.

The wall itself is a fragment that reruns every ``WALL_SECONDS``: counts, the latest drawings
(the very 28x28 pixels the network read), the room's confusion matrix, its hardest digit and its
stumpers. Nicknames come from the audience, so they are shown with ``st.text`` (plain text, never
Markdown or HTML), as is anything else typed by a visitor.

"Teach it the room's handwriting" fine-tunes a copy of the room's model on the answered drawings
(``scratchnet.personal.finetune``: cross-validated before/after figures) as a ``FinetuneJob`` in
the worker's queue, behind any training, polled by a fragment.
"""

from __future__ import annotations

import re
import urllib.parse

import numpy as np
import pandas as pd
import streamlit as st

from scratchnet import feedback
from scratchnet.errors import ScratchnetError
from scratchnet.rooms import RoomError, Rooms, join_url, presenter_url, qr_png, validate_code
from scratchnet.ui import common
from scratchnet.ui.room_draw import escape_markdown

WALL_SECONDS = 1.0  # the wall's refresh: a drawing shows up within about a second of its answer
TEACH_POLL_SECONDS = 1.0
LATEST = 24  # drawings in the wall's grid
STUMPERS = 6
MIN_TEACH = 3  # answered drawings before teaching is offered (fewer leave nothing to hold out)
CELL = 112  # px of one drawing on the wall (4x the network's 28x28); BIG_CELL on the big screen
BIG_CELL = 140
QR_WIDTH = 280  # on the big screen the QR code takes its column's width (~500 px on a projector)
BIG_LATEST = 12  # two rows on the big screen

CODE = "live_code"  # the room this session presents
KEY = "live_key"  # its presenter key (server-side session state only)
SHOW_LINK = "live_show_link"  # the presenter link, until the presenter hides it (shown once)
BIG = "live_big"  # the "Big screen" toggle
NOTE = "live_note"  # one sentence for the next run: (kind, text)
TEACH = "live_teach_job"
TEACH_ERROR = "live_teach_error"


def get_rooms() -> Rooms:
    """The rooms of this server (under the data directory as it is set now)."""
    return Rooms()


# --------------------------------------------------------------------------- links


def base_url() -> str:
    """The app's address as the presenter's browser uses it (``SCRATCHNET_PUBLIC_URL`` wins in
    ``rooms.join_url``): ``st.context.url`` without this page's path, else the Host header."""
    url = None
    try:
        url = st.context.url
    except Exception:  # outside a browser session (AppTest): no URL
        url = None
    if url:
        parts = urllib.parse.urlsplit(url)
        path = re.sub(r"/Live/?$", "", parts.path).rstrip("/")
        if parts.scheme in ("http", "https") and parts.netloc:
            return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    try:
        headers = st.context.headers
        host = headers.get("Host")
        proto = headers.get("X-Forwarded-Proto") or "http"
    except Exception:
        host, proto = None, "http"
    if host and re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", host) and proto in ("http", "https"):
        return f"{proto}://{host}"
    return "http://localhost:8501"


def link_markdown(url: str) -> str:
    """A clickable Markdown link to ``url`` whose text and target cannot break out of the link."""
    safe = urllib.parse.quote(url, safe=":/?&=#%.-_~")
    text = re.sub(r"([\\`*_{}\[\]()#+!|<>~$])", r"\\\1", safe)
    return f"[{text}]({safe})"


# --------------------------------------------------------------------------- presenter state


def _note(kind: str, text: str) -> None:
    st.session_state[NOTE] = (kind, text)


def _show_note() -> None:
    note = st.session_state.pop(NOTE, None)
    if note:
        kind, text = note
        getattr(st, kind, st.info)(escape_markdown(text))


def _adopt_presenter_link(rooms: Rooms) -> None:
    """``?room=CODE&key=KEY`` (the presenter link): take the room's controls, then drop both from
    the address bar, so the key is not left on a projected screen. Anything else: one sentence."""
    qp = st.query_params
    room, key = qp.get("room"), qp.get("key")
    if room is None and key is None:
        return
    if room is not None:
        del qp["room"]
    if key is not None:
        del qp["key"]
    try:
        code = validate_code(room)
    except RoomError as err:
        _note("warning", str(err))
        return
    if rooms.is_presenter(code, key):
        st.session_state[CODE], st.session_state[KEY] = code, key
        st.session_state.pop(SHOW_LINK, None)
        _note("success", f"You are back at the wall of room {code}.")
    else:
        _note("warning", f"Only the presenter who opened room {code} can see its wall and controls; "
                         "you can open a room of your own here.")


def _forget_room() -> None:
    for k in (CODE, KEY, SHOW_LINK, BIG, TEACH, TEACH_ERROR):
        st.session_state.pop(k, None)


def _presenting(rooms: Rooms) -> tuple[str, str] | None:
    """(code, key) of the open room this session controls, else None (forgetting a stale one)."""
    ss = st.session_state
    code, key = ss.get(CODE), ss.get(KEY)
    if code is None:
        return None
    if not rooms.is_presenter(code, key):
        _forget_room()
        _note("warning", "Only the presenter who opened a room can control it.")
        return None
    try:
        rooms.info(code)
    except RoomError as err:  # closed (by its presenter elsewhere, or after idling)
        _forget_room()
        _note("info", f"{err} Its drawings are kept.")
        return None
    return code, key


# --------------------------------------------------------------------------- the page


def render() -> None:
    rooms = get_rooms()
    _adopt_presenter_link(rooms)
    presenting = _presenting(rooms)
    if presenting is None:
        st.title(":material/co_present: Live room")
        _show_note()
        _lobby(rooms)
        return
    code, key = presenting
    big = bool(st.session_state.get(BIG))
    if big:
        _big_screen_style()
    else:
        st.title(":material/co_present: Live room")
    _show_note()
    if big:  # the projector: how to join on the left, always; the live wall beside it
        left, right = st.columns([2, 5], gap="large")
        with left:
            _join_panel(code)
        with right:
            st.toggle("Big screen", key=BIG)
            wall_fragment(code, True)
        return
    _header(code, key)
    wall_fragment(code, False)
    st.divider()
    _controls(code, key)


def _lobby(rooms: Rooms) -> None:
    st.markdown(
        "Let everyone in the room draw on their own phone. Open a room: the wall shows a link and "
        "a QR code, people draw digits, and every drawing appears here with what the network made "
        "of it. Then teach the network the room's handwriting."
    )
    store = common.get_store()
    try:
        names = [i.name for i in store.list()]
        active = store.active_name()
    except (OSError, ScratchnetError):
        names, active = [], None
    model = None
    if names:
        default = names.index(active) if active in names else 0
        model = st.selectbox("Model the room draws against", names, index=default, key="live_model",
                             format_func=lambda n: f"{n} (active)" if n == active else n)
    else:
        st.warning("There is no trained model yet: train one first, so the room has something to read with.")
        common.page_link("Train", "Open the Train page", icon=":material/model_training:")
    st.button("Open a room", type="primary", icon=":material/meeting_room:", key="live_open",
              on_click=_open_room, disabled=model is None)


def _open_room() -> None:
    model = st.session_state.get("live_model")  # the box's value as the click sends it
    try:
        code, key = get_rooms().open(model=model)
    except (RoomError, OSError) as err:
        _note("error", f"Could not open a room: {err}")
        return
    _forget_room()
    st.session_state[CODE], st.session_state[KEY] = code, key
    st.session_state[SHOW_LINK] = True


def _join_panel(code: str) -> None:
    join = join_url(base_url(), code)
    st.markdown(f"<div class='live-code'>{code}</div>", unsafe_allow_html=True)  # validated: A-Z and 2-9 only
    st.image(_qr(join), width="stretch")
    st.markdown(f"#### {link_markdown(join)}")


def _header(code: str, key: str) -> None:
    join = join_url(base_url(), code)
    qr = _qr(join)
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.subheader(f"Room {code}")
        st.markdown(f"Join: {link_markdown(join)}")
        st.caption("Everyone opens this link (or scans the code) on their phone and draws. "
                   "The link carries only the room code, never your controls.")
        st.toggle("Big screen", key=BIG, help="Large type for a projector; the QR code stays on screen.")
        if st.session_state.get(SHOW_LINK):
            with st.expander("Your presenter link: bookmark it now (shown only this once)", expanded=False,
                             icon=":material/key:"):
                st.caption("It brings back this wall and its controls after a reload. It holds your secret "
                           "key: never put it on the projector or share it.")
                st.code(presenter_url(base_url(), code, key), language=None)
                st.button("I have saved it: hide it", key="live_hide_link",
                          on_click=lambda: st.session_state.pop(SHOW_LINK, None))
    with right:
        st.image(qr, width=QR_WIDTH, caption="Scan to join")


@st.cache_data(show_spinner=False, max_entries=32)
def _qr(text: str) -> bytes:
    return qr_png(text, scale=12)


def _big_screen_style() -> None:
    """Projector type sizes (static CSS, nothing from visitors in it); the sidebar hidden."""
    st.html(
        "<style>"
        ".live-code{font-size:5rem;font-weight:800;letter-spacing:.12em;line-height:1.1}"
        ".st-key-live_wall [data-testid='stMetricValue']{font-size:4.5rem}"
        ".st-key-live_wall [data-testid='stMetricLabel'] p{font-size:1.6rem}"
        ".st-key-live_wall [data-testid='stText']{font-size:1.4rem}"
        "section[data-testid='stSidebar'],[data-testid='stSidebarCollapsedControl']{display:none}"
        "</style>"
    )


# --------------------------------------------------------------------------- the wall


def _wall_body(code: str, big: bool) -> None:
    try:
        view = get_rooms().view(code, latest=BIG_LATEST if big else LATEST, stumpers=STUMPERS)
    except RoomError as err:
        st.warning(escape_markdown(str(err)))
        return
    if view.closed:
        st.rerun()  # the whole page: the room is gone
    with st.container(key="live_wall"):
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Drawings", f"{view.drawings:,}", help="Drawings the room has made (since the wall was cleared).")
        c2.metric("Room accuracy", "–" if view.accuracy is None else f"{view.accuracy:.0%}",
                  help="Of the drawings their drawers answered, the share the network read right.")
        c3.metric("Answered", f"{view.answered:,}")
        hardest = view.hardest
        c4.metric("Hardest digit", "–" if hardest is None else str(hardest[0]),
                  help="The digit the network reads worst in this room.")
        c4.text(" " if hardest is None else f"read right {hardest[1]:.0%} of the time")
        if not view.latest:
            st.info("No drawings yet. Ask everyone to open the link and draw a digit.", icon=":material/draw:")
            return
        _grid(view.latest, BIG_CELL if big else CELL)
        if big:
            return
        left, right = st.columns([1, 1], gap="large")
        with left:
            st.markdown("**What the room drew, what the network read**")
            if view.answered:
                confusion_chart(view.confusion)
            else:
                st.caption("The confusion matrix fills in as people answer “Was this right?”.")
        with right:
            st.markdown("**Stumpers**: the network's most confident mistakes")
            if view.stumpers:
                _grid(view.stumpers, CELL, stumper=True)
            else:
                st.caption("None yet.")


wall_fragment = st.fragment(run_every=WALL_SECONDS)(_wall_body)


def cell_text(x, stumper: bool = False) -> str:
    """One drawing's line on the wall: the guess and, once answered, a tick or a cross."""
    if stumper:
        return f"a {x.label} read as {x.predicted} ({x.confidence:.0%})"
    if x.label is None:
        return f"{x.predicted} ?"
    return f"{x.predicted} ✓" if x.right else f"{x.predicted} ✗ ({x.label})"


def _grid(drawings, size: int, stumper: bool = False) -> None:
    with st.container(horizontal=True, gap="small"):
        for x in drawings:
            with st.container(width=size + 8, gap=None):
                if x.image is not None:
                    st.image(feedback.enlarge(x.image, size))
                st.text(cell_text(x, stumper))
                # a visitor's words: plain text, never Markdown or HTML. Always an element, so every
                # cell has the same shape from one refresh to the next (nothing stale left behind).
                st.text(x.nickname or " ")


def confusion_chart(confusion: np.ndarray) -> None:
    """The room's confusion matrix, drawn digits down, readings across, counts in the cells."""
    rows = [{"drawn": str(t), "read as": str(p), "count": int(confusion[t, p])}
            for t in range(10) for p in range(10) if confusion[t, p]]
    digits = [str(d) for d in range(10)]
    st.vega_lite_chart(
        pd.DataFrame(rows),
        {
            "height": 300,
            "encoding": {
                "x": {"field": "read as", "type": "ordinal", "scale": {"domain": digits}, "axis": {"labelAngle": 0}},
                "y": {"field": "drawn", "type": "ordinal", "scale": {"domain": digits}},
            },
            "layer": [
                {"mark": "rect", "encoding": {"color": {"field": "count", "type": "quantitative",
                                                        "scale": {"scheme": "blues"}, "legend": None}}},
                {"mark": {"type": "text", "fontSize": 13}, "encoding": {"text": {"field": "count"}}},
            ],
        },
        width="stretch",
    )


# --------------------------------------------------------------------------- controls


def _controls(code: str, key: str) -> None:
    c1, c2 = st.columns([1, 1])
    with c1:
        st.button("Clear the wall", icon=":material/clear_all:", key="live_clear", on_click=_clear, args=(code, key),
                  help="The wall starts again from zero; the drawings stay stored for teaching.")
    with c2:
        with st.popover("Close the room", icon=":material/door_front:"):
            st.write("Nobody can draw in it any more; its drawings are kept.")
            st.button(f"Yes, close room {code}", type="primary", key="live_close", on_click=_close, args=(code, key))
    _teach_section(code, key)


def _clear(code: str, key: str) -> None:
    try:
        get_rooms().clear(code, key)
    except RoomError as err:
        _note("error", str(err))
        return
    _note("success", "The wall is clear.")


def _close(code: str, key: str) -> None:
    try:
        get_rooms().close(code, key)
    except RoomError as err:
        _note("error", str(err))
        return
    _forget_room()
    _note("info", f"Room {code} is closed; its drawings are kept.")


# --------------------------------------------------------------------------- teaching


def _room_model(rooms: Rooms, code: str):
    """(name, net, metadata) of the room's model, else the active model; None if there is none."""
    name = rooms.info(code).get("model")
    if name:
        try:
            path = common.get_store().path_for(name)
            stat = path.stat()
            net, meta = common._load_model(str(path), stat.st_mtime_ns, stat.st_size)
            return name, net, meta
        except (OSError, ScratchnetError):
            pass
    return common.active_model()


def _teach_section(code: str, key: str) -> None:
    st.subheader("Teach it the room's handwriting")
    teach_fragment(code, key)


def _teach_job(code: str):
    """This session's fine-tuning of room ``code`` (a worker.FinetuneJob), if it is remembered."""
    from scratchnet.ui.worker import get_manager

    job = get_manager().get(st.session_state.get(TEACH))
    room = (getattr(job, "drawings_meta", None) or {}).get("room")
    return job if room == code else None


def _teach_body(code: str, key: str) -> None:
    """Live too: the count of answered drawings grows while people draw; a teaching's progress."""
    from scratchnet.ui.worker import max_trainings

    rooms = get_rooms()
    error = st.session_state.pop(TEACH_ERROR, None)
    if error:
        st.error(escape_markdown(error), icon="⚠️")
    job = _teach_job(code)
    snap = job.poll() if job is not None else None  # polling is the job's heartbeat
    if snap is not None and snap.active:
        common.keep_alive(job)
        if snap.status == "queued":
            st.info(f"⏳ Another training is using this server ({max_trainings()} at a time): this one is "
                    f"number {snap.queue_position} in line and starts by itself.")
            st.progress(0.0, text=snap.progress_text)
        else:
            what = ("Cross-checking: models tuned without some of the drawings read them"
                    if snap.phase == "Cross-validating" else "Learning the room's handwriting")
            st.progress(snap.fraction, text=f"{what} · {snap.progress_text}")
        st.button("Stop", icon=":material/stop:", key="live_teach_stop", on_click=job.request_stop)
        return
    try:
        answered = sum(1 for x in rooms.drawings(code) if x.answered)
        model = _room_model(rooms, code)
    except RoomError as err:
        st.warning(escape_markdown(str(err)))
        return
    st.caption(
        f"Fine-tunes a copy of {'the room model ' + model[0] if model else 'the model'} on the room's "
        f"{answered} answered drawing{'s' if answered != 1 else ''}, mixed with replayed MNIST digits so it does "
        "not forget everyone else. Before and after are measured on drawings each tuned model did not learn from."
    )
    st.button("Teach it the room's handwriting", icon=":material/school:", key="live_teach",
              disabled=answered < MIN_TEACH or model is None, on_click=_start, args=(code, key),
              help=f"Needs at least {MIN_TEACH} answered drawings.")
    if snap is not None:
        _teach_result(snap, code, key)


teach_fragment = st.fragment(run_every=TEACH_POLL_SECONDS)(_teach_body)


def _start(code: str, key: str) -> None:
    job = _teach_job(code)
    if job is not None and job.snapshot().active:  # a double click
        return
    try:
        job = start_teaching(code, key)
    except ScratchnetError as err:
        st.session_state[TEACH_ERROR] = str(err)
        return
    st.session_state[TEACH] = job.id


def start_teaching(code: str, key: str):
    """Queue the fine-tuning of the room's model on its answered drawings (presenter only).

    A ``worker.FinetuneJob`` in the same queue as every training: it waits its turn, is polled,
    stopped and abandoned like one, and saves the personal model without making it active.
    """
    from scratchnet.ui.worker import FinetuneJob, get_manager, idle_timeout

    rooms = get_rooms()
    rooms.check_key(code, key)
    X, y, ids = rooms.answered_arrays(code)
    if len(y) < MIN_TEACH:
        raise RoomError(f"Teaching needs at least {MIN_TEACH} answered drawings; the room has {len(y)}.")
    model = _room_model(rooms, code)
    if model is None:
        raise RoomError("There is no model to teach; train one on the Train page first.")
    name, net, meta = model
    job = FinetuneJob(net, X, y, common.get_dataset("mnist"), store=common.get_store(), base_name=name,
                      base_meta=meta, idle_timeout=idle_timeout(), source="room",
                      drawings_meta={"room": code, "ids": ids[:50]})
    common.keep_alive(job)
    get_manager().submit(job)
    return job


def _teach_result(snap, code: str, key: str) -> None:
    """The ended teaching: before and after on held-out drawings, and the offer to switch."""
    r = snap.result or {}
    if snap.status == "failed" or snap.error:
        st.error(escape_markdown(f"Teaching failed: {snap.error}"), icon="⚠️")
        return
    if snap.status != "finished" or "drawings_before" not in r:
        st.warning(escape_markdown(f"Teaching ended ({snap.status}). {snap.message}".strip()))
        return
    c1, c2 = st.columns(2)
    after = "–" if r.get("drawings_after") is None else f"{r['drawings_after']:.0%}"
    c1.metric("Held-out room drawings: before → after", f"{r['drawings_before']:.0%} → {after}",
              help="Each drawing read by a model tuned without it (cross-validated): the room's handwriting "
              "learned, not memorised.")
    if r.get("val_before") is not None and r.get("val_after") is not None:
        c2.metric("MNIST validation: before → after", f"{r['val_before']:.1%} → {r['val_after']:.1%}",
                  help="It must not forget how everyone else writes.")
    st.text(snap.message)
    name = r.get("model_name")
    if name and not r.get("refused"):
        if get_rooms().info(code).get("model") == name:
            st.success(f"Everyone in the room draws against {name} now.", icon=":material/check_circle:")
        else:
            st.button(f"Make {name} the room's model", type="primary", key="live_use_taught",
                      on_click=_use_model, args=(code, key, name))


def _use_model(code: str, key: str, name: str) -> None:
    try:
        get_rooms().set_model(code, key, name)
    except RoomError as err:
        st.session_state[TEACH_ERROR] = str(err)
