"""The Draw page's Streamlit pieces: canvas, upload, model choice, result and "Was this right?".

Everything that can be computed without Streamlit (preprocessing, prediction, the feedback
store) lives in :mod:`scratchnet.feedback`; this module only arranges widgets around it, so
``pages/2_Draw.py`` stays a few lines long.

Speed matters here: every finished stroke reruns the page. The expensive things are cached
(models per file version, datasets per process) and the chart is a fixed Vega-Lite spec, so a
rerun is dominated by decoding the canvas PNG and the 28x28 preprocessing (a few ms).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from scratchnet import feedback
from scratchnet.errors import DataError, EmptyImageError, ScratchnetError
from scratchnet.ui import common

CANVAS_SIZE = 280  # 10x MNIST: big enough for a finger, small enough for a phone screen
MAX_CANVAS_SIDE = 4 * CANVAS_SIZE  # high-DPI screens send the canvas at 2-3x
PREVIEW_SIZE = 196  # 7x: each network input pixel is a visible square
DEFAULT_STROKE = 18  # ~ MNIST's stroke (2 of 28 px) on a digit drawn ~70% of the canvas tall
QUICK_STEPS = 400  # one-click model: the fast preset, capped to a few seconds of training
QUICK_NAME = "quick-draw"
QUICK_POLL_SECONDS = 0.5
QUICK_JOB = "draw_quick_job"  # this session's quick-model training job (scratchnet.ui.worker)
QUICK_ADOPTED = "draw_quick_adopted"  # the quick job whose model the page already switched to
QUICK_ERROR = "draw_quick_error"

CANVAS_GEN = "draw_canvas_gen"  # bumped by "Clear": a new key gives a fresh, empty canvas
MODEL_CHOICE = "draw_model"
ACTIVE_SEEN = "draw_active_seen"  # the active model when this session last looked
SAVED = "draw_saved"  # {input fingerprint: label} of drawings this session already labelled
LAST_DRAWING = "last_drawing"  # (28, 28) float32: the Inspect page offers "My last drawing"
LAST_SEEN = "draw_last_seen"  # {source: fingerprint} of each input's latest reading


def canvas_key() -> str:
    return f"draw_canvas_{st.session_state.get(CANVAS_GEN, 0)}"


def clear_canvas() -> None:
    st.session_state[CANVAS_GEN] = st.session_state.get(CANVAS_GEN, 0) + 1


# --------------------------------------------------------------------------- models


@st.cache_resource(show_spinner=False, max_entries=4)
def _load(path: str, mtime_ns: int, size: int):
    from scratchnet.store import load_model

    return load_model(path)


def choose_model():
    """Model picker (the active model by default) -> ``(name, net, metadata)`` or None.

    The choice is per session: trying another model here does not change what other pages or
    visitors use. With no model at all, offers to train one in a few seconds instead.
    """
    store = common.get_store()
    infos = store.list()
    if not infos:
        return None
    names = [i.name for i in infos]
    active = store.active_name()
    adopted = _adopt_quick_model()
    current = st.session_state.get(MODEL_CHOICE)
    # Follow the active model when it changes (a new one trained on the Train page), otherwise
    # keep this session's own pick; a quick model this session just trained comes first.
    if adopted in names:
        st.session_state[MODEL_CHOICE] = adopted
    elif current not in names or st.session_state.get(ACTIVE_SEEN) != active:
        current = active if active in names else names[0]
        st.session_state[MODEL_CHOICE] = current
    st.session_state[ACTIVE_SEEN] = active
    name = st.selectbox(
        "Model",
        names,
        key=MODEL_CHOICE,
        format_func=lambda n: f"{n} (active)" if n == active else n,
        help="The network that reads your drawing. The active model is the one chosen on the "
        "Train page; picking another here only affects this page.",
    )
    info = infos[names.index(name)]
    try:
        stat = info.path.stat()
        net, meta = _load(str(info.path), stat.st_mtime_ns, stat.st_size)
    except (OSError, ScratchnetError) as err:
        common.show_error(err)
        st.stop()
    acc = (meta.get("metrics") or {}).get("test_accuracy") or (meta.get("metrics") or {}).get("val_accuracy")
    st.caption(
        f"{net.describe()} network, {(meta.get('dataset') or {}).get('name', '?')} data"
        + (f", {acc:.1%} on held-out digits" if isinstance(acc, (int, float)) and math.isfinite(acc) else "")
    )
    return name, net, meta


def quick_model_offer() -> None:
    """No model yet: one button queues a short training of the fast preset on what data there is.

    It is an ordinary training job (``scratchnet.ui.worker``): it waits its turn behind any
    other training on the server, goes through ``training.run`` like every training, and its
    model is saved and made active like the Train page's. The page polls it with a fragment.
    """
    from scratchnet.ui.worker import get_manager

    job = get_manager().get(st.session_state.get(QUICK_JOB))
    snap = job.snapshot() if job is not None else None
    if snap is not None and snap.active:
        common.keep_alive(job)
        st.info("There is no trained model yet: a quick one is training now. Draw as soon as it is ready.")
        _quick_fragment(job.id)
        return
    st.info(
        "There is no trained model yet. Train one properly on the **Train** page, or get a "
        "quick one right here in a few seconds and start drawing."
    )
    if snap is not None:  # a quick training ended without leaving a model
        if snap.status == "failed":
            st.error(f"The quick training failed: {snap.error}", icon="🐞")
        else:
            st.warning(f"The quick training ended ({snap.status}) without a model. {snap.message}".strip())
    st.button("Train a quick model now", icon=":material/bolt:", type="primary", key="draw_quick_train",
              on_click=_start_quick_model)
    err = st.session_state.pop(QUICK_ERROR, None)
    if err:
        st.error(err, icon="⚠️")
    common.page_link("Train", "Open the Train page", icon=":material/model_training:")


def quick_model_job():
    """The quick model's training job: ``PRESETS["fast"]`` capped to ``QUICK_STEPS`` steps."""
    from scratchnet.training import PRESETS
    from scratchnet.ui.worker import TrainingJob, idle_timeout

    ds = common.get_dataset("mnist")  # full MNIST if already downloaded, else the bundled sample
    base = PRESETS["fast"]
    steps = min(base.total_steps(len(ds.X_train)), QUICK_STEPS)
    config = base.replace(epochs=None, iterations=steps)
    return TrainingJob(config, ds, store=common.get_store(), name=QUICK_NAME, preset="fast",
                       source="quick-model", idle_timeout=idle_timeout())


def _start_quick_model() -> None:
    from scratchnet.ui.worker import get_manager

    try:
        job = quick_model_job()
    except ScratchnetError as err:
        st.session_state[QUICK_ERROR] = str(err)
        return
    common.keep_alive(job)
    get_manager().submit(job)
    st.session_state[QUICK_JOB] = job.id


def _quick_body(job_id: str) -> None:
    from scratchnet.ui.worker import get_manager, max_trainings

    job = get_manager().get(job_id)
    if job is None:
        return
    snap = job.poll()
    if snap.status == "queued":
        n = max_trainings()
        st.info(f"⏳ Another training is using this server ({n} at a time): yours is number "
                f"{snap.queue_position} in line and starts by itself.")
        st.progress(0.0, text=snap.progress_text)
    elif snap.active:
        val = f" · {snap.val_accuracy:.1%} on held-out digits" if snap.val_accuracy is not None else ""
        st.progress(snap.fraction, text=f"Training a quick model: {snap.progress_text}{val}")
    else:
        st.rerun()  # the whole page: the new model is there (or the reason it is not)


_quick_fragment = st.fragment(run_every=QUICK_POLL_SECONDS)(_quick_body)


def _adopt_quick_model() -> str | None:
    """The name of this session's quick model the first time the page sees it saved, else None."""
    from scratchnet.ui.worker import get_manager

    ss = st.session_state
    job = get_manager().get(ss.get(QUICK_JOB))
    if job is None or ss.get(QUICK_ADOPTED) == job.id:
        return None
    snap = job.snapshot()
    if snap.active:
        return None
    ss[QUICK_ADOPTED] = job.id
    return (snap.result or {}).get("model_name")


# --------------------------------------------------------------------------- inputs


def canvas_input():
    """The drawing canvas -> its RGBA array, or None before the first stroke."""
    from streamlit_drawable_canvas import st_canvas

    stroke = st.session_state.get("draw_stroke", DEFAULT_STROKE)
    result = st_canvas(
        fill_color="#FFFFFF",
        stroke_width=stroke,
        stroke_color="#FFFFFF",
        background_color="#000000",
        update_streamlit=True,
        height=CANVAS_SIZE,
        width=CANVAS_SIZE,
        drawing_mode="freedraw",
        return_image_data=True,
        key=canvas_key(),
    )
    # One compact row (also on phones, where columns would stack): the answer stays in view.
    with st.container(horizontal=True, vertical_alignment="center"):
        st.button("Clear", icon=":material/ink_eraser:", on_click=clear_canvas, key="draw_clear",
                  help="Start again with an empty canvas (the canvas toolbar has undo and redo).")
        with st.popover(f"Pen width {stroke}", icon=":material/line_weight:"):
            st.slider(
                "Pen width", 6, 40, DEFAULT_STROKE, step=2, key="draw_stroke",
                help="Any width works: the picture is scaled and centred like MNIST anyway.",
            )
    try:
        return canvas_pixels(result)
    except Exception as err:  # a malformed payload must not break the page
        common.show_error(err)
        return None


def canvas_pixels(result) -> np.ndarray | None:
    """The canvas's PNG as an array, refusing what no real canvas sends before decoding it.

    The browser sends the canvas as a PNG of at most a few times ``CANVAS_SIZE`` (high-DPI
    screens); a crafted client could send a 1 MB PNG that decodes to gigabytes.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        png = result.image_bytes  # the data URL's payload, still compressed
        if png is None:
            return None
        image = Image.open(io.BytesIO(png))  # reads the header only
    except (UnidentifiedImageError, OSError, ValueError, TypeError):
        raise DataError("The canvas sent something that is not a picture; clear it and draw again.") from None
    w, h = image.size
    if max(w, h) > MAX_CANVAS_SIDE:
        raise DataError(f"The canvas sent a {w}x{h} picture, far larger than the canvas; clear it and draw again.")
    try:
        return np.asarray(image)
    except (OSError, ValueError, SyntaxError):
        raise DataError("The canvas sent a damaged picture; clear it and draw again.") from None


def upload_input():
    """A photo, scan or paint-program file -> PIL image, or None."""
    from scratchnet.imaging import load_image

    up = st.file_uploader(
        "A picture of one digit",
        type=["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"],
        key="draw_upload",
        help="Dark ink on light paper or light on dark, any size: it is cropped, scaled and "
        "centred like MNIST.",
    )
    if up is None:
        return None
    try:
        image = load_image(up.getvalue())
    except ScratchnetError as err:
        common.show_error(err)
        return None
    shown = image.copy()
    shown.thumbnail((2 * CANVAS_SIZE, 2 * CANVAS_SIZE))  # a 12 MP photo need not travel back
    st.image(shown.convert("RGB"), caption="Your picture", width=CANVAS_SIZE)
    return image


# --------------------------------------------------------------------------- result


def probability_chart(probs: np.ndarray) -> None:
    """Ten bars on a fixed 0-1 scale, the winner highlighted; a fixed spec keeps it cheap."""
    data = pd.DataFrame({"digit": [str(d) for d in range(10)], "probability": probs.astype(float)})
    best = str(int(np.argmax(probs)))
    st.vega_lite_chart(
        data,
        {
            "height": 200,
            "mark": {"type": "bar", "tooltip": True},
            "encoding": {
                "x": {"field": "digit", "type": "ordinal", "axis": {"labelAngle": 0}, "title": "digit"},
                "y": {
                    "field": "probability", "type": "quantitative",
                    "scale": {"domain": [0, 1]}, "axis": {"format": "%"}, "title": "probability",
                },
                "color": {
                    "condition": {"test": f"datum.digit === '{best}'", "value": "#e4572e"},
                    "value": "#8da0cb",
                },
            },
        },
        width="stretch",
    )


def input_panel(net, model_name: str, read_input, *, caption: str = "", empty_hint: str, source: str) -> None:
    """One input tab: the input on the left, what the network reads (and feedback) on the right."""
    left, right = st.columns([1, 1], gap="large")
    with left:
        if caption:
            st.caption(caption)
        image = read_input()
    with right:
        reading = show_reading(net, image, empty_hint=empty_hint, source=source)
        if reading is not None:
            was_this_right(reading, model_name, source)


def show_reading(net, image, *, empty_hint: str, source: str):
    """Preprocess + predict ``image``, show what the network saw and thinks -> Reading or None.

    ``source`` ("canvas" or "upload") tells the inputs apart for ``remember_drawing``.
    """
    if image is None:
        st.info(empty_hint, icon=":material/draw:")
        return None
    try:
        reading = feedback.read_digit(net, image)
    except EmptyImageError as err:
        st.info(f"{err} {empty_hint}", icon=":material/draw:")
        return None
    except ScratchnetError as err:
        common.show_error(err)
        return None
    c1, c2 = st.columns([1, 1])
    with c1:
        st.image(feedback.enlarge(reading.image, PREVIEW_SIZE), caption="What the network sees (28×28)")
    with c2:
        st.metric("Prediction", str(reading.digit), help="The digit with the highest probability.")
        st.caption(f"{reading.confidence:.0%} sure")
    probability_chart(reading.probabilities)
    remember_drawing(reading, source)
    return reading


def remember_drawing(reading, source: str) -> None:
    """Hand the newest reading to the Inspect page as ``st.session_state["last_drawing"]``.

    Both tabs are computed on every rerun, so only a reading that changed since its own input's
    previous one replaces it: a fresh stroke is not hidden by an upload made minutes ago.
    """
    fp = _fingerprint(reading)
    seen = st.session_state.setdefault(LAST_SEEN, {})
    if seen.get(source) != fp or LAST_DRAWING not in st.session_state:
        seen[source] = fp
        st.session_state[LAST_DRAWING] = np.array(reading.image, dtype=np.float32)


def _fingerprint(reading) -> str:
    return hashlib.sha1(feedback.to_uint8(reading.image).tobytes()).hexdigest()[:16]


def was_this_right(reading, model_name: str, source: str) -> None:
    """Ask for the true digit and keep the labelled 28x28 input (once per drawing)."""
    store = feedback.FeedbackStore()
    fp = _fingerprint(reading)
    saved = st.session_state.setdefault(SAVED, {})
    st.markdown("**Was this right?**")
    if fp in saved:
        st.success(f"Saved as a {saved[fp]}. Thank you! Draw another one.", icon=":material/check_circle:")
        return

    def keep(label):
        try:
            store.add(reading.image, label, predicted=reading.digit, model=model_name)
        except ScratchnetError as err:
            st.session_state[f"draw_save_error_{source}"] = str(err)
            return
        st.session_state[SAVED][fp] = int(label)

    c1, c2 = st.columns([1, 1])
    with c1:
        st.button(f"Yes, it is a {reading.digit}", icon=":material/thumb_up:", key=f"draw_yes_{source}",
                  on_click=keep, args=(reading.digit,))
    with c2:
        others = [d for d in range(10) if d != reading.digit]
        st.selectbox(
            ":material/thumb_down: No, it is a…", others, index=None, placeholder="pick the right digit",
            key=f"draw_no_{source}_{fp}",
            on_change=lambda: keep(st.session_state[f"draw_no_{source}_{fp}"]),
        )
    err = st.session_state.pop(f"draw_save_error_{source}", None)
    if err:
        st.error(err, icon="⚠️")


def drawings_summary(model_name: str | None) -> None:
    """The running accuracy on labelled drawings and the CSV export."""
    store = feedback.FeedbackStore()
    try:
        drawings = store.list(check_files=False)
    except OSError as err:
        st.warning(f"Cannot read the saved drawings: {err}")
        return
    rated = [d for d in drawings if d.predicted is not None]
    mine = [d for d in rated if d.model == model_name]
    c1, c2 = st.columns([1, 1])
    with c1:
        if mine:
            right = sum(d.correct for d in mine)
            st.metric(
                "Accuracy on your drawings", f"{right / len(mine):.0%}",
                help=f"Drawings labelled with “Was this right?” while {model_name} was reading them.",
            )
            st.caption(f"{right} of {len(mine)} right with {model_name}.")
        else:
            st.metric("Accuracy on your drawings", "–",
                      help="Label a few drawings with “Was this right?” to see this.")
        if rated and len(rated) != len(mine):
            right = sum(d.correct for d in rated)
            st.caption(f"All models: {right} of {len(rated)} right.")
    with c2:
        st.caption(
            f"{len(drawings):,} labelled drawing{'s' if len(drawings) != 1 else ''} kept in "
            f"`{Path(store.directory).name}/`; the Train page can add them to the training data."
        )
        st.download_button(
            "Download drawings as CSV",
            icon=":material/download:",
            data=store.to_csv,  # built only when clicked
            file_name="my_drawings.csv",
            mime="text/csv",
            disabled=not drawings,
            on_click="ignore",
            key="draw_download",
            help="The notebook's format: label, then 784 pixels 0-255 (white digit on black).",
        )
