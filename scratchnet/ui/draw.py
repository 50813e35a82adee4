"""The Draw page's Streamlit pieces: canvas, upload, model choice, result, "Was this right?" and
"Teach it my handwriting".

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

# "Teach it my handwriting" (scratchnet.personal through the training queue)
MY_DRAWINGS = "draw_my_drawings"  # this session's labelled drawings: [{fp, image (28, 28), label, predicted}]
MAX_MY_DRAWINGS = 500  # the newest kept per session (each 3 KB); all of them fit in a model's metadata
MIN_TEACH = 3  # labelled drawings before "Teach it my handwriting" is offered
MY_MODELS = "draw_my_models"  # personal models this session made: its own, it keeps them in the picker
TEACH_JOB = "draw_teach_job"  # this session's fine-tuning job (scratchnet.ui.worker.FinetuneJob)
TEACH_INPUT = "draw_teach_input"  # what that job learns from: {images uint8 (n, 28, 28), fps, base}
TEACH_ADOPTED = "draw_teach_adopted"  # the fine-tuning job whose outcome the page already took in
TEACH_RESULT = "draw_teach_result"  # its outcome: figures, message, model name, the drawings
TEACH_ERROR = "draw_teach_error"
TEACH_WHERE = "draw_teach_where"  # which button started it: "canvas" | "upload" (beside the answer) | "section"
TEACH_SHOWN = "_draw_teach_progress_shown"  # this run already drew the progress beside the answer
TEACH_POLL_SECONDS = 0.5
TEACH_SOURCE = "draw-personal"  # the personal model's metadata "source"
THUMB = 84  # 3x: the drawings in the before/after galleries


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
    quick = _adopt_quick_model()
    taught = _adopt_personal_model()
    adopted = taught or quick
    mine = st.session_state.get(MY_MODELS) or []
    current = st.session_state.get(MODEL_CHOICE)
    # Follow the active model when it changes (a new one trained on the Train page), otherwise
    # keep this session's own pick; a model this session just made (a quick one, a personal one)
    # comes first, and a personal model stays this session's model until it picks another.
    if adopted in names:
        st.session_state[MODEL_CHOICE] = adopted
    elif current not in names or (st.session_state.get(ACTIVE_SEEN) != active and current not in mine):
        current = active if active in names else names[0]
        st.session_state[MODEL_CHOICE] = current
    st.session_state[ACTIVE_SEEN] = active

    def label(n: str) -> str:
        tags = [t for t, on in (("yours", n in mine), ("active", n == active)) if on]
        return f"{n} ({', '.join(tags)})" if tags else n

    name = st.selectbox(
        "Model",
        names,
        key=MODEL_CHOICE,
        format_func=label,
        help="The network that reads your drawing. The active model is the one chosen on the "
        "Train page; picking another here only affects this page. Models marked “yours” learned "
        "your handwriting: switch between one and its base model to compare them.",
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
        + _personal_caption(meta)
    )
    return name, net, meta


def _personal_caption(meta: dict) -> str:
    p = meta.get("personal")
    if not isinstance(p, dict):
        return ""
    n = p.get("n_drawings")
    drawings = f"{n} drawing{'s' if n != 1 else ''}" if isinstance(n, int) else "drawings"
    return f"; learned a handwriting from {drawings} on top of {p.get('base') or 'another model'}"


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


def _job_progress(job_id: str, running_text) -> None:
    """A queued job's place in line, a running job's progress bar, a finished one reruns the page.

    ``running_text(snap)`` says what the bar shows while the job runs.
    """
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
        st.progress(snap.fraction, text=running_text(snap))
    else:
        st.rerun()  # the whole page: the new model is there (or the reason it is not)


def _quick_text(snap) -> str:
    val = f" · {snap.val_accuracy:.1%} on held-out digits" if snap.val_accuracy is not None else ""
    return f"Training a quick model: {snap.progress_text}{val}"


def _quick_body(job_id: str) -> None:
    _job_progress(job_id, _quick_text)


_quick_fragment = st.fragment(run_every=QUICK_POLL_SECONDS)(_quick_body)


def _ended_once(job_key: str, adopted_key: str):
    """The snapshot of the session's job under ``job_key`` the first time the page sees it ended.

    None while it runs, when there is none, and on every later rerun (``adopted_key`` remembers).
    """
    from scratchnet.ui.worker import get_manager

    ss = st.session_state
    job = get_manager().get(ss.get(job_key))
    if job is None or ss.get(adopted_key) == job.id:
        return None
    snap = job.snapshot()
    if snap.active:
        return None
    ss[adopted_key] = job.id
    return snap


def _adopt_quick_model() -> str | None:
    """The name of this session's quick model the first time the page sees it saved, else None."""
    snap = _ended_once(QUICK_JOB, QUICK_ADOPTED)
    return None if snap is None else (snap.result or {}).get("model_name")


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
        corrected = next((d for d in my_drawings() if d["fp"] == fp and d["label"] != d["predicted"]), None)
        if corrected is not None:  # right after "No, it is a …": when people want it
            teach_offer(model_name, key=f"draw_teach_{source}", where=source)
        return

    def keep(label):
        remember_label(reading, int(label), fp, model_name)
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


# --------------------------------------------------------------------------- teach it my handwriting


def remember_label(reading, label: int, fp: str, model_name: str) -> None:
    """Keep a drawing this session labelled, 28x28 as the network saw it, for teaching.

    A drawing answered twice (the canvas and the upload tab see the same picture, or a save that
    failed and was answered again) counts once, with its latest label.
    """
    mine = [d for d in my_drawings() if d["fp"] != fp]
    mine.append({"fp": fp, "image": np.array(reading.image, dtype=np.float32).reshape(28, 28),
                 "label": int(label), "predicted": int(reading.digit), "model": model_name})
    st.session_state[MY_DRAWINGS] = mine[-MAX_MY_DRAWINGS:]


def my_drawings() -> list[dict]:
    """This session's labelled drawings, oldest first."""
    return list(st.session_state.get(MY_DRAWINGS) or [])


def _teach_job():
    from scratchnet.ui.worker import get_manager

    return get_manager().get(st.session_state.get(TEACH_JOB))


def _teaching_now() -> bool:
    job = _teach_job()
    return job is not None and job.snapshot().active


def _new_drawings() -> int:
    """Labelled drawings the last finished teaching did not learn from (all of them before one)."""
    mine = my_drawings()
    last = st.session_state.get(TEACH_RESULT)
    if not last or last.get("status") != "finished":
        return len(mine)
    learned = set(last.get("fps") or [])
    return sum(d["fp"] not in learned for d in mine)


def teach_offer(model_name: str, *, key: str, where: str) -> None:
    """The "Teach it my handwriting" button, or what is missing before it makes sense.

    ``where`` is "canvas" or "upload" beside an answer (the run's progress then shows there if it
    was started there), or "section" for the page's own section below.
    """
    inline = where != "section"
    n = len(my_drawings())
    job = _teach_job()
    if job is not None and job.snapshot().active:
        if inline:
            if st.session_state.get(TEACH_WHERE) == where and not st.session_state.get(TEACH_SHOWN):
                st.session_state[TEACH_SHOWN] = True
                _teach_progress(job, stop_key=f"draw_teach_stop_{where}")
            else:
                st.caption("⏳ Learning your handwriting now: the progress is below.")
        return
    if n < MIN_TEACH:
        more = MIN_TEACH - n
        st.caption(f"Label {more} more drawing{'s' if more != 1 else ''} and the network can learn your "
                   f"handwriting from {'them' if n else 'your drawings'}.")
        return
    fresh = _new_drawings()
    if not fresh:
        st.caption("✅ It has learned from your drawings: what changed is below." if inline else
                   "It has learned from all your drawings: label more to teach it again.")
        return
    st.button(
        "Teach it my handwriting", icon=":material/school:", key=key, type="primary" if inline else "secondary",
        on_click=_start_teach, args=(model_name, where),
        help=f"Tunes a copy of this model for a few seconds on your {n} labelled drawings, mixed with "
        "MNIST digits so it does not forget how others write. The copy becomes your model on this "
        "page; everyone else keeps theirs.",
    )


def _teach_progress(job, *, stop_key: str) -> None:
    common.keep_alive(job)
    _teach_fragment(job.id)
    st.button("Stop", icon=":material/stop_circle:", key=stop_key, on_click=_stop_teach,
              help="Stops before the next step; the model you had stays.")


def _load_named(name: str):
    info = common.get_store().info(name)
    stat = info.path.stat()
    return _load(str(info.path), stat.st_mtime_ns, stat.st_size)


def teach_base(model_name: str):
    """``(name, net, meta)`` to teach: the model itself, or a personal model's own base.

    Teaching again after more drawings starts from the base with all of them, not from the
    personal model (whose figures would then count drawings it already learned as unseen).
    """
    net, meta = _load_named(model_name)
    base = (meta.get("personal") or {}).get("base") if isinstance(meta.get("personal"), dict) else None
    if isinstance(base, str) and base != model_name:
        try:
            base_net, base_meta = _load_named(base)
            return base, base_net, base_meta
        except (OSError, ScratchnetError):
            pass  # the base is gone: teach the personal model itself
    return model_name, net, meta


def _start_teach(model_name: str, where: str = "section") -> None:
    from scratchnet.ui.worker import FinetuneJob, get_manager, idle_timeout

    ss = st.session_state
    ss.pop(TEACH_ERROR, None)
    if _teaching_now():  # a double click
        return
    mine = my_drawings()
    try:
        if len(mine) < MIN_TEACH:
            raise DataError(f"Label at least {MIN_TEACH} drawings first.")
        base_name, base, base_meta = teach_base(model_name)
        X = np.stack([d["image"].reshape(784) for d in mine]).astype(np.float32)
        y = np.array([d["label"] for d in mine], dtype=np.int64)
        job = FinetuneJob(base, X, y, common.get_dataset("mnist"), store=common.get_store(),
                          base_name=base_name, base_meta=base_meta, idle_timeout=idle_timeout(),
                          source=TEACH_SOURCE)
    except (OSError, ScratchnetError) as err:
        ss[TEACH_ERROR] = str(err)
        return
    common.keep_alive(job)
    get_manager().submit(job)
    ss[TEACH_JOB] = job.id
    ss[TEACH_WHERE] = where
    ss[TEACH_INPUT] = {"images": np.stack([feedback.to_uint8(d["image"]) for d in mine]),
                       "fps": [d["fp"] for d in mine], "base": base_name}


def _adopt_personal_model() -> str | None:
    """Take in this session's fine-tuning once it ended: keep its outcome, return its model's name."""
    ss = st.session_state
    snap = _ended_once(TEACH_JOB, TEACH_ADOPTED)
    if snap is None:
        return None
    given = ss.get(TEACH_INPUT) or {}
    ss[TEACH_RESULT] = {**(snap.result or {}), "status": snap.status, "message": snap.message,
                        "error": snap.error, "job": snap.job_id, **given}
    name = (snap.result or {}).get("model_name")
    if name:
        ss[MY_MODELS] = [*(ss.get(MY_MODELS) or []), name]
    return name


def _teach_text(snap) -> str:
    what = ("Cross-checking: models tuned without one part of your drawings read it"
            if snap.phase == "Cross-validating" else "Learning your handwriting")
    return f"{what} · {snap.progress_text}"


def _teach_body(job_id: str) -> None:
    _job_progress(job_id, _teach_text)


_teach_fragment = st.fragment(run_every=TEACH_POLL_SECONDS)(_teach_body)


def _stop_teach() -> None:
    job = _teach_job()
    if job is not None:
        job.request_stop()


def _make_everyones(name: str) -> None:
    try:
        common.set_active_model(name)
    except (OSError, ScratchnetError) as err:
        st.session_state[TEACH_ERROR] = str(err)


def teach_section(model_name: str) -> None:
    """Teach it my handwriting: the offer, the run's progress, and what it changed."""
    st.subheader("Teach it your handwriting")
    job = _teach_job()
    shown_beside = st.session_state.pop(TEACH_SHOWN, False)  # a flag for this run only
    if job is not None and job.snapshot().active:
        if shown_beside:
            st.caption("⏳ Learning your handwriting now: the progress is beside your drawing, above.")
        else:
            _teach_progress(job, stop_key="draw_teach_stop")
    else:
        result = st.session_state.get(TEACH_RESULT)
        if result:
            teach_result(result)
        else:
            st.caption(
                "Correct the network a few times with “No, it is a …” (or confirm it with “Yes”), and "
                "it can learn from your drawings: a copy of the model is tuned for a few seconds on "
                "them, mixed with MNIST digits so it keeps reading everybody else."
            )
        teach_offer(model_name, key="draw_teach", where="section")
    err = st.session_state.pop(TEACH_ERROR, None)
    if err:
        st.error(err, icon="⚠️")


def _thumbs(images, idx, captions) -> None:
    st.image([feedback.enlarge(images[i], THUMB) for i in idx], caption=captions, width=THUMB)


def teach_result(r: dict) -> None:
    """What the last teaching did: drawings fixed and broken, accuracy before and after, or why not."""
    status = r.get("status")
    if status == "failed":
        st.error(f"Teaching failed: {r.get('error')}", icon="🐞")
        return
    name = r.get("model_name")
    if not name:  # refused, stopped, abandoned or diverged: the model this page used stays
        st.warning(r.get("message") or f"Teaching ended ({status}); your model did not change.",
                   icon=":material/block:")
        if r.get("error"):
            st.error(r["error"], icon="⚠️")
        return
    st.success(f"{r.get('message', '')} This page now reads your drawings with **{name}**, for you only; "
               f"pick **{r.get('base', 'the base model')}** in the model list above to compare.",
               icon=":material/school:")
    c1, c2 = st.columns(2)
    before, after = r.get("drawings_before"), r.get("drawings_after")
    with c1:
        if after is None:
            st.metric("Your drawings", "–", help="With a single drawing there is none left to check it on.")
        else:
            st.metric("Your drawings", f"{after:.0%}", f"{(after - before) * 100:+.0f} pp from {before:.0%}",
                      help="Cross-checked: each of your drawings is read by a model tuned without it, never "
                      "by one that learned it; “before” is the base model, which never saw them.")
        st.caption(f"Read right, before → after: {before:.0%} → "
                   f"{'–' if after is None else f'{after:.0%}'} of {r.get('n_drawings')} (cross-checked).")
    with c2:
        vb, va = r.get("val_before"), r.get("val_after")
        if va is None:
            st.metric("MNIST validation", "–")
        else:
            st.metric("MNIST validation", f"{va:.1%}", f"{(va - vb) * 100:+.1f} pp from {vb:.1%}",
                      help="MNIST digits neither model trained on: the personal model must still read "
                      "everybody else (it is refused if it loses more than 1 point).")
        st.caption(f"Validation digits, before → after: {_pct(vb)} → {_pct(va)}.")
    images = r.get("images")
    labels, before_p, after_p = r.get("labels") or [], r.get("predicted_before") or [], r.get("predicted_after") or []
    fixed, broken = r.get("fixed") or [], r.get("broken") or []
    if images is not None and len(images) == len(labels):
        if fixed:
            st.markdown(f"**Now read right** ({len(fixed)}; wrong before)")
            _thumbs(images, fixed, [f"{labels[i]} (was {before_p[i]})" for i in fixed])
        if broken:
            st.markdown(f"**Now read wrong** ({len(broken)}; right before)")
            _thumbs(images, broken, [f"{labels[i]} (now {after_p[i]})" for i in broken])
        if not fixed and not broken:
            st.caption("No drawing changed its reading.")
    store = common.get_store()
    if name in store.names():
        if store.active_name() == name:
            st.caption(f"✅ **{name}** is everyone's model now (the active model).")
        else:
            st.button("Make it everyone's model", icon=":material/public:", key="draw_make_everyones",
                      on_click=_make_everyones, args=(name,),
                      help="Makes your personal model the active model: every visitor and page uses it.")


def _pct(x) -> str:
    return "–" if x is None else f"{x:.1%}"
