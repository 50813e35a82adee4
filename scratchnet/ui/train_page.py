"""The Train page: data, hyper-parameters, Start/Stop, live charts, saved models.

Only rendering and callbacks live here; the training itself runs in
:mod:`scratchnet.ui.worker`. Widget values persist for the whole session
(``persist_state="session"``), so a trip to the Draw page and back keeps the settings, and the
job id in ``st.session_state`` keeps the running training attached.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from scratchnet.errors import ScratchnetError
from scratchnet.training import PRESETS
from scratchnet.ui import train_form as form
from scratchnet.ui.common import (
    JOB_KEY,
    active_model,
    describe_model,
    get_dataset,
    get_store,
    keep_alive,
    mnist_available,
    page_link,
    show_error,
)
from scratchnet.ui.worker import TrainingJob, format_seconds, get_manager, idle_timeout, max_trainings

POLL_SECONDS = 0.5  # live view refresh: smooth enough, cheap for the server
DEFAULT_PRESET = "fast"
SOURCES = {
    "mnist": "Full MNIST (70,000 digits)",
    "sample": "Bundled sample (5,000 digits, offline)",
    "csv": "Upload a CSV",
}
MNIST_GZ_BYTES = {  # sizes of the four files, for one overall download progress bar
    "train-images-idx3-ubyte.gz": 9_912_422,
    "train-labels-idx1-ubyte.gz": 28_881,
    "t10k-images-idx3-ubyte.gz": 1_648_877,
    "t10k-labels-idx1-ubyte.gz": 4_542,
}
K = "tr_"  # prefix of every session-state key of this page


# --------------------------------------------------------------------------- state


def _init_state() -> None:
    ss = st.session_state
    if K + "preset" not in ss:
        ss[K + "preset"] = DEFAULT_PRESET
        _set_knobs(form.knobs_from_config(PRESETS[DEFAULT_PRESET]))
    if K + "source" not in ss:
        ss[K + "source"] = "mnist" if mnist_available() else "sample"


def _set_knobs(knobs: dict) -> None:
    """Make the widgets show ``knobs`` (the Architecture choice follows the SPEC)."""
    ss = st.session_state
    for name, value in knobs.items():
        ss[K + name] = value
    ss[K + "arch"] = form.architecture_choice(knobs["layers"])


def _knobs() -> dict:
    ss = st.session_state
    return {name: ss[K + name] for name in form.knobs_from_config(PRESETS[DEFAULT_PRESET])}


def _apply_preset() -> None:
    name = st.session_state[K + "preset"]
    if name in PRESETS:
        _set_knobs(form.knobs_from_config(PRESETS[name]))
    st.session_state.pop(K + "start_error", None)


def _knob_changed() -> None:
    st.session_state[K + "preset"] = form.matching_preset(_knobs())
    st.session_state.pop(K + "start_error", None)  # the complaint was about the old value


def _arch_changed() -> None:
    """A named architecture fills in its SPEC; Custom keeps the SPEC there is, to edit."""
    ss = st.session_state
    choice = ss[K + "arch"]
    if choice in form.ARCHITECTURES:
        ss[K + "layers"] = form.ARCHITECTURES[choice][1]
    _knob_changed()


def _jobs() -> tuple[TrainingJob | None, TrainingJob | None]:
    """(this session's job, another active job to watch).

    A reload starts a new session; the job id in the URL (``?job=``) reattaches it to its
    training. Without one, a training started in another tab or session is shown (and can be
    stopped), and Start queues this session's own training behind it.
    """
    ss = st.session_state
    manager = get_manager()
    own = manager.get(ss.get(JOB_KEY))
    if own is None:
        own = manager.get(st.query_params.get("job"))
        if own is not None:
            ss[JOB_KEY] = own.id
            _show_config_of(own)
    if own is not None and own.snapshot().active:
        keep_alive(own)
        if st.query_params.get("job") != own.id:
            st.query_params["job"] = own.id  # page switches drop it; a reload must still find the job
    watched = None
    if own is None or not own.snapshot().active:
        others = [j for j in manager.active_jobs() if j is not own]
        if others:
            watched = others[0]
            keep_alive(watched)
    return own, watched


def _show_config_of(job: TrainingJob) -> None:
    """After a reload, make the knobs show what the reattached training actually uses."""
    ss = st.session_state
    _set_knobs(form.knobs_from_config(job.config))
    ss[K + "preset"] = form.matching_preset(form.knobs_from_config(job.config))
    source = getattr(job.dataset, "name", "").split("+")[0]
    if source in ("mnist", "sample"):
        ss[K + "source"] = source


# --------------------------------------------------------------------------- callbacks


def _on_start() -> None:
    ss = st.session_state
    ss.pop(K + "start_error", None)
    dataset = ss.get(K + "dataset")
    try:
        if dataset is None:
            raise ScratchnetError("Choose a dataset first: the uploaded CSV could not be read.")
        config = form.config_from_knobs(_knobs())
        preset = ss[K + "preset"] if ss[K + "preset"] in PRESETS else None
        if ss.get(K + "drawings"):
            dataset = _with_drawings(dataset)
        job = TrainingJob(config, dataset, store=get_store(), preset=preset or "custom",
                          idle_timeout=idle_timeout())
    except ScratchnetError as err:
        ss[K + "start_error"] = str(err)
        return
    keep_alive(job)
    get_manager().submit(job)
    ss[JOB_KEY] = job.id
    st.query_params["job"] = job.id


def _on_stop(job_id: str) -> None:
    job = get_manager().get(job_id)
    if job is not None:
        job.request_stop()


def _on_keep(job_id: str) -> None:
    job = get_manager().get(job_id)
    if job is None:
        return
    try:
        result = job.keep()
        st.session_state[K + "models_msg"] = ("success", f"Kept the model as '{result['model_name']}'; it is now active.")
    except ScratchnetError as err:
        st.session_state[K + "models_msg"] = ("error", str(err))


def _model_action(action: str) -> None:
    ss = st.session_state
    name = ss.get(K + "model_pick")
    store = get_store()
    try:
        if not name:
            raise ScratchnetError("Pick a model first.")
        if action == "activate":
            store.set_active(name)
            msg = f"'{name}' is now the active model."
        elif action == "rename":
            new = ss.get(K + "rename_to", "")
            info = store.rename(name, new)
            ss[K + "model_pick"] = info.name
            msg = f"Renamed '{name}' to '{info.name}'."
        elif action == "delete":
            store.delete(name)
            msg = f"Deleted '{name}'."
        else:  # pragma: no cover - buttons only pass the three above
            raise ValueError(action)
        ss[K + "models_msg"] = ("success", msg)
    except ScratchnetError as err:
        ss[K + "models_msg"] = ("error", str(err))


# --------------------------------------------------------------------------- data


def _download_mnist() -> None:
    from scratchnet.datasets import download_mnist

    bar = st.progress(0.0, text="Connecting…")
    done_files: dict[str, int] = {}
    total = sum(MNIST_GZ_BYTES.values())

    def progress(name: str, done: int, size: int | None) -> None:
        done_files[name] = done
        frac = min(1.0, sum(done_files.values()) / total)
        of = f" of {size / 1e6:.1f} MB" if size else ""
        bar.progress(frac, text=f"Downloading {name}: {done / 1e6:.1f}{of}")

    try:
        download_mnist(progress=progress)
    except ScratchnetError as err:
        bar.empty()
        st.session_state[K + "download_error"] = str(err)
        return
    bar.progress(1.0, text="Downloaded; loading…")
    st.session_state.pop(K + "download_error", None)
    st.rerun()


def _csv_dataset():
    from scratchnet.datasets import load_csv

    up = st.file_uploader(
        "Training CSV in the notebook's format",
        type=["csv", "txt"],
        key=K + "upload",
        help="One digit per row: the label (0-9) then 784 pixel values 0-255, like Kaggle's "
        "digit-recognizer train.csv. A header row is optional. 1,000 rows are held out for validation.",
    )
    test_up = st.file_uploader("Test CSV (optional, same format)", type=["csv", "txt"], key=K + "upload_test")
    if up is None:
        st.info("Upload a CSV to train on it, or pick another dataset.")
        return None
    ident = (up.file_id, test_up.file_id if test_up is not None else None)
    cached = st.session_state.get(K + "csv")
    if cached is None or cached[0] != ident:
        try:
            with st.spinner(f"Reading {up.name}…"):
                ds = load_csv(up, test_source=test_up, name=up.name)
            cached = (ident, ds, None)
        except ScratchnetError as err:
            cached = (ident, None, err)
        st.session_state[K + "csv"] = cached
    if cached[2] is not None:
        show_error(cached[2])
    return cached[1]


def _drawings_count() -> int:
    from scratchnet.feedback import FeedbackStore

    try:
        return len(FeedbackStore().list(check_files=False))
    except (OSError, ScratchnetError):
        return 0


def _with_drawings(ds):
    """``ds`` plus the drawings labelled on the Draw page ("Was this right?") as training rows."""
    import dataclasses

    from scratchnet.feedback import FeedbackStore

    X, y = FeedbackStore().load_arrays()
    if not len(y):
        return ds
    return dataclasses.replace(
        ds,
        name=f"{ds.name}+drawings",
        X_train=np.concatenate([ds.X_train, X.astype(np.float32) / 255.0]),
        y_train=np.concatenate([ds.y_train, y.astype(ds.y_train.dtype)]),
        description=f"{ds.description} + {len(y):,} of your drawings",
    )


def _example_strip(ds) -> np.ndarray | None:
    """One training example of each digit side by side, scaled 3x (white ink on black)."""
    y = np.asarray(ds.y_train)
    rows = [int(np.flatnonzero(y == d)[0]) for d in range(10) if (y == d).any()]
    if not rows:
        return None
    gap = 4
    tiles = (ds.X_train[rows].reshape(-1, 28, 28) * 255).astype(np.uint8)
    strip = np.full((28, len(rows) * (28 + gap) - gap), 90, np.uint8)
    for i, tile in enumerate(tiles):
        strip[:, i * (28 + gap): i * (28 + gap) + 28] = tile
    return np.repeat(np.repeat(strip, 3, axis=0), 3, axis=1)


def _dataset_section(disabled: bool):
    st.subheader("1 · Data")
    source = st.radio(
        "Dataset",
        list(SOURCES),
        format_func=SOURCES.get,
        horizontal=True,
        key=K + "source",
        persist_state="session",
        disabled=disabled,
        help="Full MNIST is downloaded once (11 MB) into the data folder; the bundled sample "
        "works offline and trains in seconds; a CSV upload uses the notebook's format.",
    )
    ds = None
    if source == "csv":
        ds = _csv_dataset()
    elif source == "mnist":
        if not mnist_available():
            st.info("Full MNIST is not downloaded yet: until it is, training uses the bundled sample.")
            if st.button("Download MNIST (11 MB)", key=K + "download", disabled=disabled):
                _download_mnist()
            err = st.session_state.get(K + "download_error")
            if err:
                st.error(f"{err} Training uses the bundled 5,000-digit sample instead.", icon="📡")
            ds = get_dataset("sample")
        else:
            with st.spinner("Loading MNIST (a few seconds, once)…"):
                ds = get_dataset("mnist")
    else:
        ds = get_dataset("sample")
    st.session_state[K + "dataset"] = ds
    if ds is not None:
        n_val = 0 if ds.y_val is None else len(ds.y_val)
        n_test = 0 if ds.y_test is None else len(ds.y_test)
        c1, c2, c3 = st.columns(3)
        c1.metric("Training digits", f"{len(ds.y_train):,}")
        c2.metric("Validation digits", f"{n_val:,}")
        c3.metric("Test digits", f"{n_test:,}" if n_test else "none")
        strip = _example_strip(ds)
        if strip is not None:
            st.image(strip, caption=f"{ds.description} — one training example of each digit")
        for note in ds.notes:
            st.caption(f"ℹ️ {note}")
        n_drawings = _drawings_count()
        if n_drawings:
            st.toggle(
                f"Add my {n_drawings:,} labelled drawing{'s' if n_drawings != 1 else ''} to the training digits",
                key=K + "drawings", persist_state="session", disabled=disabled,
                help="Drawings you labelled on the Draw page (“Was this right?”). A few hundred of "
                "them teach the network your handwriting and your pen.",
            )
    return ds


# --------------------------------------------------------------------------- knobs


def _knobs_section(disabled: bool) -> None:
    st.subheader("2 · Hyper-parameters")
    st.selectbox(
        "Preset",
        [*form.PRESET_ORDER, form.CUSTOM],
        format_func=form.preset_label,
        key=K + "preset",
        persist_state="session",
        on_change=_apply_preset,
        disabled=disabled,
        help=form.preset_help(),
    )
    common = dict(on_change=_knob_changed, disabled=disabled, persist_state="session")
    _architecture_field(disabled)
    c1, c2, c3, c4 = st.columns(4)
    with c1:
        st.selectbox("Activation", list(form.ACTIVATION_LABELS), format_func=form.ACTIVATION_LABELS.get,
                     key=K + "activation", help="Non-linearity of the hidden layers (the output is softmax).",
                     **common)
        st.selectbox("Weight initialisation", list(form.INIT_LABELS), format_func=form.INIT_LABELS.get,
                     key=K + "init", help="He suits ReLU, Xavier suits sigmoid/tanh; the notebook "
                     "draws uniformly from [-0.5, 0.5).", **common)
    with c2:
        st.selectbox("Optimizer", list(form.OPTIMIZER_LABELS), format_func=form.OPTIMIZER_LABELS.get,
                     key=K + "optimizer", help="GD: plain gradient descent as in the notebook. SGD adds "
                     "nothing but mini-batches; momentum and Adam usually converge much faster.", **common)
        st.number_input("Learning rate", min_value=1e-6, max_value=1000.0, step=None, format="%g",
                        key=K + "lr", help="Step size of each update. Typical: 0.1 for GD/SGD, 0.001 for "
                        "Adam. Too large and training diverges.", **common)
    with c3:
        st.radio("Train for", ["iterations", "epochs"], format_func=str.capitalize, horizontal=True,
                 key=K + "unit", help="An iteration is one gradient step; an epoch is one pass over "
                 "the training digits.", **common)
        if st.session_state[K + "unit"] == "iterations":
            st.number_input("Iterations", min_value=1, max_value=1_000_000, step=100, key=K + "iterations",
                            help="Number of gradient steps.", **common)
        else:
            st.number_input("Epochs", min_value=0.1, max_value=1000.0, step=1.0, format="%g",
                            key=K + "epochs", help="Passes over the training set (fractions allowed).",
                            **common)
    with c4:
        st.checkbox("Full batch", key=K + "full_batch", help="Use every training digit in every step "
                    "(the notebook's gradient descent). Slower steps, smoother curves.", **common)
        st.number_input("Batch size", min_value=1, max_value=60_000, step=32, key=K + "batch_size",
                        help="Digits per gradient step for mini-batch training.",
                        **{**common, "disabled": disabled or st.session_state[K + "full_batch"]})
    with st.expander("More settings: augmentation, L2, schedule, seed"):
        d1, d2, d3 = st.columns([2, 1, 1])
        with d1:
            parts = form.augment_parts()
            chosen = list(st.session_state.get(K + "augment") or [])
            if any(p not in parts for p in chosen):  # e.g. a session from before a part was renamed
                st.session_state[K + "augment"] = [p for p in chosen if p in parts]
            st.multiselect("Augmentation", list(parts), format_func=form.augment_label, key=K + "augment",
                           placeholder="none", help="Random variations of the training digits, new ones "
                           "every step: slower to fit, much better on hand-drawn digits. Empty: the digits "
                           "as they are.", **common)
            st.selectbox("Learning-rate schedule", list(form.SCHEDULE_LABELS), format_func=form.SCHEDULE_LABELS.get,
                         key=K + "schedule", help="Cosine decay lowers the rate smoothly to 0 by the "
                         "last step, which usually gains a little accuracy.", **common)
        with d2:
            st.number_input("L2 regularisation", min_value=0.0, max_value=0.99, step=1e-4, format="%g",
                            key=K + "l2", help="Weight decay: adds l2/2 · Σ W² to the loss. 0 turns it "
                            "off; 1e-4 is a gentle amount.", **common)
            st.number_input("Momentum", min_value=0.0, max_value=0.999, step=0.05, format="%g",
                            key=K + "momentum", help="Only for the momentum optimizer: how much of the "
                            "previous update carries over.", **common)
        with d3:
            st.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=K + "seed",
                            help="Same seed, same settings, same data: same run.", **common)


def _architecture_field(disabled: bool) -> None:
    """Architecture: a named network or a custom SPEC, and the network it makes beside it."""
    ss = st.session_state
    a1, a2 = st.columns([1, 2])
    with a1:
        st.selectbox("Architecture", [*form.ARCHITECTURES, form.CUSTOM], format_func=form.architecture_label,
                     key=K + "arch", on_change=_arch_changed, disabled=disabled, persist_state="session",
                     help=form.ARCHITECTURE_HELP)
    with a2:
        if ss[K + "arch"] == form.CUSTOM:
            st.text_input("Layers (SPEC)", key=K + "layers", on_change=_knob_changed, disabled=disabled,
                          persist_state="session", placeholder="conv8-5,maxpool2,dense64",
                          help=form.ARCHITECTURE_HELP)
        try:
            net = form.network_summary(ss[K + "layers"], ss[K + "activation"])
        except ScratchnetError as err:
            st.caption(f"⚠️ {err}")
        else:
            st.markdown(f"**{net.describe}** · {net.n_params:,} parameters"
                        + ("" if ss[K + "arch"] == form.CUSTOM else f" · `{net.spec}`"))


# --------------------------------------------------------------------------- live view


def _charts(points) -> None:
    df = pd.DataFrame(form.chart_columns(points))
    left, right = st.columns(2)
    left.vega_lite_chart(df, form.ACCURACY_SPEC, width="stretch")
    right.vega_lite_chart(df, form.LOSS_SPEC, width="stretch")


def _pct(x) -> str:
    return "–" if x is None else f"{x:.1%}"


def _progress_view(snap) -> None:
    if snap.status == "queued":
        n = max_trainings()
        st.info(
            f"⏳ Queued: number {snap.queue_position} in line. This server trains {n} model"
            f"{'s' if n != 1 else ''} at a time; yours starts by itself when a slot frees up.",
        )
    st.progress(snap.fraction, text=snap.progress_text)
    validated = [pt[4] for pt in snap.points if pt[4] is not None]  # not every record validates
    m1, m2, m3, m4 = st.columns(4)
    val_delta, arrow = None, "auto"
    if len(validated) >= 2:
        change = round((validated[-1] - validated[-2]) * 100, 1)
        val_delta, arrow = (f"{change:+.1f} pp", "auto") if change else ("0.0 pp", "off")
    m1.metric("Validation accuracy", _pct(snap.val_accuracy), val_delta, delta_arrow=arrow,
              delta_color="normal" if arrow == "auto" else "off",
              help="Accuracy on digits held out from training: the honest figure.")
    m2.metric("Train accuracy", _pct(snap.train_accuracy),
              help="Accuracy on the training batches since the previous update.")
    m3.metric("Loss", "–" if snap.loss is None else f"{snap.loss:.4f}", help="Mean cross-entropy on the training batches.")
    m4.metric("Epoch", f"{snap.epoch:.2f}", help="Passes over the training digits so far.")
    if snap.points:
        _charts(snap.points)


def _live_body(job_id: str) -> None:
    job = get_manager().get(job_id)
    if job is None:
        return
    snap = job.poll()
    _progress_view(snap)
    if not snap.active:
        st.rerun()  # the whole page: buttons, results and model list change


_live_fragment = st.fragment(run_every=POLL_SECONDS)(_live_body)


def _result_view(job: TrainingJob) -> None:
    snap = job.poll()
    _progress_view(snap)
    result = snap.result or {}
    name = result.get("model_name")
    if snap.status == "failed":
        st.error(f"Training failed: {snap.error}", icon="🐞")
        return
    if snap.status == "diverged":
        st.error(f"**Training diverged.** {snap.message}", icon="💥")
        if name:
            st.info(f"You kept this model as '{name}'; it is now active.")
        else:
            st.info("The previous model stays active; this one was not saved. Lower the learning rate "
                    "and press Start training again, or keep it anyway (its last good weights).")
            st.button("Keep this model anyway", key=K + "keep", on_click=_on_keep, args=(job.id,))
        return
    test = result.get("test_accuracy")
    test_text = f", test accuracy **{test:.2%}**" if test is not None else " (this dataset has no test set)"
    what = {"finished": "Finished", "stopped": "Stopped", "abandoned": "Stopped (nobody was watching)"}[snap.status]
    summary = (f"**{what}** after {snap.step:,} iterations in {format_seconds(snap.seconds)}: "
               f"validation accuracy **{_pct(result.get('val_accuracy'))}**{test_text}.")
    if snap.error:
        st.warning(f"{summary} {snap.error}")
    elif name:
        active = " and made active: draw a digit to try it" if result.get("activated") else ""
        if result.get("not_activated"):
            active = ". " + result["not_activated"].rstrip(".")
        st.success(f"{summary} Saved as **{name}**{active}.", icon="✅")
        c1, c2 = st.columns([1, 3])
        with c1:
            path = Path(result["path"])
            if path.is_file():
                st.download_button("Download model (.npz)", data=path.read_bytes, file_name=path.name,
                                   mime="application/octet-stream", key=K + "download_model", on_click="ignore")
        with c2:
            page_link("Draw", "Try it on the Draw page", "✏️")
    else:
        st.info(f"{summary} Nothing was trained, so nothing was saved.")


def _train_section(ds, own: TrainingJob | None, watched: TrainingJob | None) -> None:
    st.subheader("3 · Train")
    own_active = own is not None and own.snapshot().active
    shown = own if own_active or watched is None else watched
    shown_active = shown is not None and shown.snapshot().active
    b1, b2, _ = st.columns([1, 1, 4])
    b1.button("Start training", key=K + "start", type="primary", on_click=_on_start,
              disabled=own_active or ds is None, width="stretch",
              help="Trains in the background: you can watch here or go to another page meanwhile.")
    b2.button("Stop", key=K + "stop", on_click=_on_stop, args=(shown.id if shown else "",),
              disabled=not shown_active, width="stretch",
              help="Stops before the next step; the model so far is kept and saved.")
    err = st.session_state.get(K + "start_error")
    if err:
        st.error(err, icon="⚠️")
    elif not own_active and ds is not None:
        _estimate_caption(ds, queued_behind=shown_active)
    if shown is None:
        st.caption("Press **Start training**: progress, accuracy and loss appear here as it learns.")
        return
    if shown is watched:
        what = ("A training started in another tab or session is running" if watched.kind == "training"
                else "Someone is teaching a model their handwriting (a fine-tuning from the Draw or Live "
                     "page) in another tab or session")
        st.info(f"👀 {what}; you are watching it. Press **Start training** to queue your own after it.")
    if shown_active:
        _live_fragment(shown.id)
    else:
        _result_view(shown)


def _estimate_caption(ds, *, queued_behind: bool) -> None:
    """Before Start: how long these settings should train here (nothing if they are invalid)."""
    try:
        config = form.config_from_knobs(_knobs())
        n_train = len(ds.y_train) + (_drawings_count() if st.session_state.get(K + "drawings") else 0)
        config.validate(n_train=n_train)
        n_val = 0 if ds.y_val is None else len(ds.y_val)
        n_test = 0 if ds.y_test is None else len(ds.y_test)
        seconds = form.estimate_seconds(config, n_train, n_val, n_test)
    except ScratchnetError:
        return  # Start says what is wrong
    steps = config.total_steps(n_train)
    wait = " once the training running now has finished" if queued_behind else ""
    st.caption(f"⏱️ Estimated training time: **{form.format_estimate(seconds)}**{wait} "
               f"({steps:,} iterations of {config.effective_batch_size(n_train):,} digits on this "
               "server; the time left is measured once it runs).")


# --------------------------------------------------------------------------- saved models


def _models_section() -> None:
    st.subheader("4 · Saved models")
    msg = st.session_state.pop(K + "models_msg", None)
    if msg:
        (st.success if msg[0] == "success" else st.error)(msg[1])
    store = get_store()
    infos = store.list()
    for problem in store.problems:
        st.caption(f"⚠️ {problem}")
    if not infos:
        st.caption("No saved models yet: every finished or stopped training is saved here.")
        return
    current = active_model()
    active_name = current[0] if current else None
    rows = []
    for info in infos:
        meta = info.metadata
        metrics = meta.get("metrics") or {}
        rows.append({
            "Active": "✅" if info.name == active_name else "",
            "Name": info.name,
            "Created": info.created.astimezone().strftime("%Y-%m-%d %H:%M"),
            "Network": describe_model(meta),
            "Data": (meta.get("dataset") or {}).get("name", "?"),
            "Val acc": _pct(metrics.get("val_accuracy")),
            "Test acc": _pct(metrics.get("test_accuracy")),
            "Iterations": metrics.get("steps"),
        })
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    names = [i.name for i in infos]
    index = names.index(active_name) if active_name in names else 0
    c1, c2, c3, c4 = st.columns([2, 1, 2, 1])
    pick = c1.selectbox("Model", names, index=index, key=K + "model_pick")
    c2.button("Make active", key=K + "activate", on_click=_model_action, args=("activate",),
              disabled=pick == active_name, help="The active model is the one the Draw and Inspect pages use.")
    with c3:
        st.text_input("New name", key=K + "rename_to", placeholder="e.g. my-best-mlp")
    c4.button("Rename", key=K + "rename", on_click=_model_action, args=("rename",))
    d1, d2 = st.columns([1, 5])
    with d1:
        with st.popover("Delete…"):
            st.write(f"Delete **{pick}** for good?")
            st.button("Yes, delete it", key=K + "delete", on_click=_model_action, args=("delete",), type="primary")
    with d2:
        info = infos[names.index(pick)]
        if info.path.is_file():
            st.download_button("Download selected model (.npz)", data=info.path.read_bytes,
                               file_name=info.path.name, mime="application/octet-stream",
                               key=K + "download_pick", on_click="ignore")


# --------------------------------------------------------------------------- page


def render() -> None:
    _init_state()
    st.title("🏋️ Train")
    st.caption("Pick the data and the hyper-parameters, press **Start training**, and watch the "
               "network learn. The trained model is saved and used by the Draw page straight away.")
    own, watched = _jobs()
    running = own is not None and own.snapshot().active
    try:
        ds = _dataset_section(disabled=running)
    except ScratchnetError as err:
        show_error(err)
        ds = None
        st.session_state[K + "dataset"] = None
    _knobs_section(disabled=running)
    _train_section(ds, own, watched)
    _models_section()
