"""The Inspect page: look inside the active model.

All numbers come from :mod:`scratchnet.inspect`; this module only picks the data, caches the
expensive part per model and renders. The cache key is (model name, file mtime and size, data
set), so re-opening the page or switching back to a model already looked at skips the sweep over
the test set and the drawing of the weights; only the cheap per-input parts run again.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from scratchnet import inspect as ins
from scratchnet.errors import ScratchnetError
from scratchnet.network import Network
from scratchnet.ui import common

GALLERY_SCALE = 3  # screen pixels per MNIST pixel in galleries
SOURCE_KEY = "inspect_source"
INDEX_KEY = "inspect_index"
DRAW_LABEL_KEY = "inspect_drawing_label"
LABELLED_KEY = "inspect_labelled_index"
CM_TRUE_KEY = "inspect_cm_true"
CM_PRED_KEY = "inspect_cm_pred"
CM_CLICK_KEY = "_inspect_cm_last_click"
CM_FOR_KEY = "_inspect_cm_for"  # (model, data) the cell choice belongs to
WEIGHTS_SHOW_KEY = "inspect_weights_show"
WEIGHTS_FOR_KEY = "_inspect_weights_for"
LAST_DRAWING_KEY = "last_drawing"  # written by the Draw page
ANY = "any"
RARE = 0.05  # units firing on fewer digits than this are called nearly dead


# --------------------------------------------------------------------------- data and caching


@dataclass
class EvalData:
    kind: str  # "mnist" | "sample"
    split: str  # "test" | "validation"
    X: np.ndarray
    y: np.ndarray
    label: str  # for humans: "MNIST test set (10,000 digits)"
    notes: list[str]


def _eval_choices(meta: dict) -> list[str]:
    """Data sets to evaluate on, the model's own first (MNIST only if it is on disk)."""
    trained_on = str((meta.get("dataset") or {}).get("name", ""))
    choices = ["sample"]
    if common.mnist_available():
        choices = ["mnist", "sample"] if trained_on != "sample" else ["sample", "mnist"]
    return choices


def _eval_data(kind: str, meta: dict) -> EvalData:
    trained_on = str((meta.get("dataset") or {}).get("name", "unknown"))
    ds = common.get_dataset(kind)
    notes = list(getattr(ds, "notes", []) or [])
    if ds.X_test is not None and len(ds.X_test):
        X, y, split = ds.X_test, ds.y_test, "test"
        label = f"{_ds_title(ds.name)} test set ({len(y):,} digits)"
    else:
        X, y, split = ds.X_val, ds.y_val, "validation"
        label = f"{_ds_title(ds.name)} validation split ({len(y):,} digits, no test set)"
        if trained_on == "mnist":
            notes.append(
                "These digits come from MNIST's training set, which this model was trained on, "
                "so the accuracy below is optimistic."
            )
    if trained_on.startswith("csv:"):
        notes.append(
            f"The model was trained on an uploaded file ({trained_on[4:]}), which is not kept; "
            f"it is evaluated on the {label} instead."
        )
    return EvalData(ds.name, split, X, y, label, notes)


def _ds_title(name: str) -> str:
    return {"mnist": "MNIST", "sample": "Bundled sample"}.get(name, name)


@dataclass
class CachedAnalysis:
    analysis: ins.Analysis
    weights_png: bytes | None  # the weight grid, encoded once


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


@st.cache_resource(show_spinner="Evaluating the model on every digit…", max_entries=8)
def _analysis(model_key: tuple, data_key: tuple, _net: Network, _X, _y, split: str) -> CachedAnalysis:
    a = ins.analyse(_net, _X, _y, split)
    return CachedAnalysis(a, _png(a.weights.image) if a.weights is not None else None)


# --------------------------------------------------------------------------- small helpers


def _vec(v, k: int = 6, fmt: str = "{:+.3f}") -> str:
    """The first ``k`` entries of a vector as text, with an ellipsis if there are more."""
    v = np.asarray(v).ravel()
    head = ", ".join(fmt.format(float(x)) for x in v[:k])
    return f"[{head}{', …' if v.size > k else ''}]"


def _digits(X: np.ndarray, idx) -> list[np.ndarray]:
    imgs = X[np.asarray(idx, dtype=np.int64)].reshape(-1, 28, 28)
    return list(ins.upscale_stack(ins.ink_rgb(imgs), GALLERY_SCALE))


def _gallery(X, idx, captions, empty: str) -> None:
    if len(idx) == 0:
        st.caption(empty)
        return
    st.image(_digits(X, idx), caption=captions, width=28 * GALLERY_SCALE)


def _caption(ev: ins.Evaluation, i: int) -> str:
    return f"#{i}: {ev.y_true[i]} → {ev.y_pred[i]} ({ev.confidence[i]:.0%})"


def _pct(x: float) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.2%}"


# --------------------------------------------------------------------------- page


def no_model() -> None:
    st.info(
        "There is no trained model yet. Train one on the **Train** page (the *fast* preset takes "
        "about a minute), then come back to see inside it.",
        icon="🧠",
    )
    common.page_link("Train", label="Train a model", icon="🏋️")


MODEL_KEY = "inspect_model"


@st.cache_resource(show_spinner=False, max_entries=8)
def _load(path: str, mtime_ns: int, size: int):
    from scratchnet.store import load_model

    return load_model(path)


def choose_model():
    """Sidebar model picker, the active model by default -> ``(name, net, meta, key)`` or None.

    The choice is per session (like the Draw page's): looking at another model here does not
    change what other pages or visitors use. ``key`` identifies the file version for caching.
    """
    store = common.get_store()
    infos = store.list()
    if not infos:
        return None
    names = [i.name for i in infos]
    resolved = store.resolve_active()
    active = resolved.name if resolved is not None else names[0]
    if st.session_state.get(MODEL_KEY) not in names:
        st.session_state[MODEL_KEY] = active
    name = st.sidebar.selectbox(
        "Model", names, key=MODEL_KEY,
        format_func=lambda n: f"{n} (active)" if n == active else n,
        help="The model to look inside. Each model's evaluation is computed once and then cached, "
        "so switching back and forth is instant. Only affects this page.",
    )
    info = infos[names.index(name)]
    stat = info.path.stat()
    net, meta = _load(str(info.path), stat.st_mtime_ns, stat.st_size)
    return name, net, meta, (name, stat.st_mtime_ns, stat.st_size)


def render() -> None:
    common.setup_page("Inspect")
    st.title("🔬 Inspect")
    try:
        chosen = choose_model()
    except (OSError, ScratchnetError) as err:
        common.show_error(err if isinstance(err, ScratchnetError) else ScratchnetError(
            f"The model file could not be read ({err})."))
        return
    if chosen is None:
        no_model()
        return
    try:
        _render_model(*chosen)
    except ScratchnetError as err:
        common.show_error(err)


def _render_model(name: str, net: Network, meta: dict, model_key: tuple) -> None:
    st.caption(
        f"Model **{name}**: {net.describe()} ({net.activation}, {net.n_params:,} parameters), trained on "
        f"{(meta.get('dataset') or {}).get('name', 'unknown data')}."
    )

    choices = _eval_choices(meta)
    kind = st.sidebar.selectbox(
        "Evaluate on", choices, key="inspect_eval_kind",
        format_func=lambda k: {"mnist": "MNIST test set", "sample": "Bundled sample"}[k],
    ) if len(choices) > 1 else choices[0]
    data = _eval_data(kind, meta)
    cached = _analysis(model_key, (data.kind, data.split, len(data.y)), net, data.X, data.y,
                       data.split)
    a = cached.analysis
    ev = a.evaluation
    x, label, source = _pick_input(data, ev, net)

    tabs = st.tabs(
        ["📊 Evaluation", "❌ Mistakes", "🧱 Weights", "🔦 Activations", "📐 How it works",
         "📈 Training"]
    )
    with tabs[0]:
        _evaluation_tab(data, ev, (model_key, data.kind))
    with tabs[1]:
        _mistakes_tab(data, ev)
    with tabs[2]:
        _weights_tab(net, meta, model_key, a, cached.weights_png)
    with tabs[3]:
        _activations_tab(net, meta, model_key, x, label, source, a)
    with tabs[4]:
        _how_it_works_tab(net, meta, x, label, source)
    with tabs[5]:
        _training_tab(net, meta)
    st.sidebar.caption(f"Evaluation computed in {a.seconds:.2f} s (cached for this model).")


# --------------------------------------------------------------------------- the chosen input


def _last_drawing():
    d = st.session_state.get(LAST_DRAWING_KEY)
    if d is None:
        return None
    d = np.asarray(d, dtype=np.float32)
    return d.reshape(784) if d.size == 784 else None


@st.cache_resource(show_spinner=False, max_entries=2)
def _labelled(directory: str, mtime_ns: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Drawings labelled on the Draw page, newest first, as float32 rows (reloaded on change)."""
    from scratchnet.feedback import FeedbackStore

    X, y = FeedbackStore(directory).load_arrays()
    return (X[::-1].astype(np.float32) / 255), y[::-1].astype(np.int64)


def _labelled_drawings():
    """(X, y) of the labelled drawings, or None when there are none (or they cannot be read)."""
    from scratchnet.feedback import FeedbackStore, drawings_dir

    try:
        store = FeedbackStore(drawings_dir())
        stat = store.labels_path.stat()
        X, y = _labelled(str(store.directory), stat.st_mtime_ns, stat.st_size)
    except (OSError, ScratchnetError):
        return None
    return (X, y) if len(y) else None


def _pick_input(data: EvalData, ev: ins.Evaluation, net: Network):
    """Sidebar: which input the Activations and How-it-works tabs follow."""
    sb = st.sidebar
    sb.subheader("Follow one input")
    drawing = _last_drawing()
    labelled = _labelled_drawings()
    options = (["digit"] + (["drawing"] if drawing is not None else [])
               + (["labelled"] if labelled is not None else []))
    n_lab = 0 if labelled is None else len(labelled[1])
    source = sb.radio(
        "Input",
        options,
        key=SOURCE_KEY,
        format_func=lambda o: {"digit": f"A digit from the {ev.split} set",
                               "drawing": "My last drawing (Draw page)",
                               "labelled": f"A drawing labelled on the Draw page ({n_lab:,})"}[o],
        help=None if drawing is not None else "Draw a digit on the Draw page to follow it here.",
    )
    if source == "drawing" and drawing is not None:
        digest = hash(drawing.tobytes())
        if st.session_state.get("_inspect_drawing_hash") != digest:
            # A new drawing: start from the model's own reading of it.
            st.session_state["_inspect_drawing_hash"] = digest
            st.session_state[DRAW_LABEL_KEY] = int(net.predict(drawing)[0])
        label = sb.selectbox(
            "What digit did you draw?", list(range(10)), key=DRAW_LABEL_KEY,
            help="The backward pass needs the true label.",
        )
        return drawing, int(label), "your last drawing"
    if source == "labelled" and labelled is not None:
        X, y = labelled
        if st.session_state.get(LABELLED_KEY, 0) >= len(y):
            st.session_state[LABELLED_KEY] = 0
        j = int(sb.number_input(f"Drawing # (0 = newest, {len(y) - 1:,} = oldest)", 0, len(y) - 1,
                                key=LABELLED_KEY, step=1))
        return X[j], int(y[j]), f"labelled drawing #{j}"

    n = len(ev.y_true)
    if st.session_state.get(INDEX_KEY, 0) >= n:
        st.session_state[INDEX_KEY] = 0
    mistakes = ev.mistakes()

    def _random_mistake():
        if len(mistakes):
            st.session_state[INDEX_KEY] = int(np.random.default_rng().choice(mistakes))

    i = int(sb.number_input(f"Digit # (0–{n - 1:,})", 0, n - 1, key=INDEX_KEY, step=1))
    sb.button("🎲 A random mistake", on_click=_random_mistake, disabled=not len(mistakes))
    return data.X[i], int(ev.y_true[i]), f"{ev.split} digit #{i}"


# --------------------------------------------------------------------------- tabs


def _evaluation_tab(data: EvalData, ev: ins.Evaluation, key: tuple) -> None:
    for note in data.notes:
        st.caption(f"ℹ️ {note}")
    c1, c2, c3 = st.columns(3)
    c1.metric("Accuracy", _pct(ev.accuracy))
    c2.metric("Mistakes", f"{ev.n_wrong:,} of {ev.n:,}")
    per = ev.per_class
    worst = int(np.nanargmin(per)) if np.isfinite(per).any() else None
    c3.metric("Hardest digit", "–" if worst is None else f"{worst} ({_pct(per[worst])})")
    st.caption(f"Measured on the {data.label}.")

    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Confusion matrix**: rows are the true digit, columns what the model said. "
                    "Off-diagonal cells are mistakes; click one to see its digits.")
        _confusion_chart(ev)
    with right:
        st.markdown("**Accuracy per digit**")
        df = pd.DataFrame({"digit": np.arange(len(per)), "accuracy": per,
                           "digits": ev.confusion.sum(axis=1)})
        st.vega_lite_chart(df, {
            "mark": {"type": "bar", "clip": True},
            "encoding": {
                "y": {"field": "digit", "type": "ordinal"},
                "x": {"field": "accuracy", "type": "quantitative",
                      "scale": {"domain": [max(0.0, float(np.nanmin(per)) - 0.05) if worst is not None else 0, 1]},
                      "axis": {"format": "%"}},
                "tooltip": [{"field": "digit"}, {"field": "accuracy", "format": ".2%"},
                            {"field": "digits", "title": "digits in the set"}],
            },
            "height": 300,
        }, width="stretch")
    confused = ev.worst_confusions(3)
    if confused:
        st.caption("Most frequent confusions: " + "; ".join(
            f"{t} read as {p} ({c}×)" for t, p, c in confused))

    st.markdown("**The digits behind a cell**")
    if confused and st.session_state.get(CM_FOR_KEY) != key:
        # A different model or data set: start from its own most frequent confusion.
        st.session_state[CM_FOR_KEY] = key
        st.session_state[CM_TRUE_KEY], st.session_state[CM_PRED_KEY] = confused[0][:2]
    c1, c2, _ = st.columns([1, 1, 3])
    t = c1.selectbox("True digit", list(range(10)), key=CM_TRUE_KEY)
    p = c2.selectbox("Predicted", list(range(10)), key=CM_PRED_KEY)
    idx = ev.cell(t, p)
    st.caption(f"{len(idx):,} digits labelled {t} were read as {p}"
               + (" (correct)" if t == p else "") + ("; the first 40, most confident first." if len(idx) > 40 else "."))
    idx = idx[:40]
    _gallery(data.X, idx, [_caption(ev, int(i)) for i in idx], "No digits in this cell.")


def _confusion_chart(ev: ins.Evaluation) -> None:
    k = ev.confusion.shape[0]
    t, p = np.divmod(np.arange(k * k), k)
    counts = ev.confusion.ravel()
    rows = ev.confusion.sum(axis=1)[t]
    df = pd.DataFrame({
        "actual": t, "predicted": p, "n": counts,
        "share": np.where(rows > 0, counts / np.maximum(rows, 1), 0.0),
        "mistakes": np.where(t != p, counts, 0),
    })
    off = np.where(t != p, counts, 0)
    dark = 0.5 * off.max()  # cells darker than this get white numbers
    spec = {
        "height": 360,
        "layer": [
            {
                "params": [{"name": "cell", "select": {"type": "point", "fields": ["actual", "predicted"]}}],
                "mark": {"type": "rect", "stroke": "white", "strokeWidth": 1, "cursor": "pointer"},
                "encoding": {
                    "x": {"field": "predicted", "type": "ordinal", "title": "predicted", "axis": {"labelAngle": 0, "orient": "top"}},
                    "y": {"field": "actual", "type": "ordinal", "title": "true digit"},
                    # Diagonal (correct) cells green, empty cells pale: the colour scale is spent
                    # on the mistakes, which would be invisible next to ~1,000 correct digits.
                    "color": {
                        "condition": [
                            {"test": "datum.actual == datum.predicted", "value": "#a1d99b"},
                            {"test": "datum.n == 0", "value": "#f4f4f4"},
                        ],
                        "field": "mistakes", "type": "quantitative", "title": "mistakes",
                        "scale": {"scheme": "orangered", "type": "sqrt", "domainMin": 0},
                    },
                    "opacity": {"condition": {"param": "cell", "value": 1, "empty": True}, "value": 0.35},
                    "tooltip": [
                        {"field": "actual", "title": "true"}, {"field": "predicted"},
                        {"field": "n", "title": "digits"}, {"field": "share", "format": ".1%", "title": "share of row"},
                    ],
                },
            },
            {
                "mark": {"type": "text", "fontSize": 11},
                "encoding": {
                    "x": {"field": "predicted", "type": "ordinal"},
                    "y": {"field": "actual", "type": "ordinal"},
                    "text": {"field": "n", "type": "quantitative"},
                    "color": {"condition": {"test": f"datum.actual != datum.predicted && datum.n > {dark}",
                                            "value": "white"}, "value": "#222"},
                },
            },
        ],
    }
    event = st.vega_lite_chart(df, spec, on_select="rerun", selection_mode="cell",
                               key="inspect_cm", width="stretch")
    try:
        picked = (event.selection.get("cell") or []) if event is not None else []
    except AttributeError:
        picked = []
    if picked:
        cell = (int(picked[0]["actual"]), int(picked[0]["predicted"]))
        if cell != st.session_state.get(CM_CLICK_KEY):
            st.session_state[CM_CLICK_KEY] = cell
            st.session_state[CM_TRUE_KEY], st.session_state[CM_PRED_KEY] = cell


def _mistakes_tab(data: EvalData, ev: ins.Evaluation) -> None:
    st.markdown("The digits the model gets **wrong, most confident first**: a confident mistake "
                "is either a badly written digit, a wrong label, or something the model truly "
                "misunderstands. Each caption reads *#index: true → predicted (confidence)*.")
    c1, c2, c3 = st.columns([1, 1, 2])
    opts = [ANY] + list(range(10))
    fmt = lambda o: "any" if o == ANY else str(o)  # noqa: E731
    t = c1.selectbox("True digit", opts, format_func=fmt, key="inspect_mis_true")
    p = c2.selectbox("Predicted digit", opts, format_func=fmt, key="inspect_mis_pred")
    limit = c3.slider("Show at most", 10, 200, 40, step=10, key="inspect_mis_limit")
    idx = ev.mistakes(true=None if t == ANY else t, pred=None if p == ANY else p)
    st.caption(f"{len(idx):,} mistakes match.")
    idx = idx[:limit]
    _gallery(data.X, idx, [_caption(ev, int(i)) for i in idx], "No mistakes match these filters.")


@st.cache_resource(show_spinner=False, max_entries=8)
def _initial(model_key: tuple, _net: Network, _meta: dict) -> Network | None:
    return ins.initial_network(_net, _meta)


@st.cache_resource(show_spinner=False, max_entries=8)
def _change_png(model_key: tuple, _net: Network, _meta: dict, _dead) -> tuple[bytes, float] | None:
    """The first layer's W - W_init drawn like the weights; None if the start is unknown."""
    start = _initial(model_key, _net, _meta)
    if start is None:
        return None
    change = _net.weights[0] - start.weights[0]
    pic = ins.filter_picture(change, _dead) if change.ndim == 4 else ins.weight_picture(change, _dead)
    return _png(pic.image), pic.vmax


def _weights_tab(net: Network, meta: dict, model_key: tuple, a: ins.Analysis,
                 png: bytes | None) -> None:
    pic = a.weights
    if pic is None:
        st.info("The first layer is not fed by 28x28 pixels, so its weights cannot be drawn.")
        _activity(net, a)
        return
    n = len(pic.dead)
    hidden = len(net.weights) > 1
    layer_word = "hidden unit" if hidden else "output class"
    if st.session_state.get(WEIGHTS_FOR_KEY) != model_key:
        # Per model: the notebook's big uniform init hides what was learned, so show the change.
        st.session_state[WEIGHTS_FOR_KEY] = model_key
        notebook_init = (meta.get("config") or {}).get("init") == "notebook"
        st.session_state[WEIGHTS_SHOW_KEY] = "change" if notebook_init else "weights"
    show = st.radio(
        "Draw", ["weights", "change"], horizontal=True, key=WEIGHTS_SHOW_KEY,
        format_func=lambda o: {"weights": "the weights W",
                               "change": "what training changed: W − W_init"}[o],
        help="W_init is rebuilt exactly from the seed in the model's config.",
    )
    vmax = pic.vmax
    if show == "change":
        changed = _change_png(model_key, net, meta, pic.dead)
        if changed is None:
            st.caption("This model's file does not say how it was initialised, so its starting "
                       "weights cannot be rebuilt; showing W.")
        else:
            png, vmax = changed
    what = "weights" if show == "weights" else "weight changes"
    if a.filters:
        K = net.weights[0].shape[0]
        st.markdown(
            f"Each tile is one of the first convolution's **{n} filters: its {K}×{K} {what}**. "
            f"The filter slides over the image; at every pixel its output is the sum of the "
            f"{K * K} pixels around it, each times the weight in the same place. **Red** weights "
            "push the output up where they meet ink, **blue** ones push it down, white ones do not "
            f"matter. All {n} tiles share one scale (full colour = {vmax:.3g} or more), so tiles "
            "can be compared. *How it works* follows one filter at one pixel with its numbers."
        )
    else:
        st.markdown(
            f"Each tile is one {layer_word}'s **784 incoming {what}** laid out on the 28x28 grid. "
            "**Red** pixels push the unit's input *z* up when they have ink, **blue** ones push it "
            f"down, white ones do not matter. All {n} tiles share one scale "
            f"(full colour = {vmax:.3g} or more), so tiles can be compared."
        )
    if show == "weights" and (meta.get("config") or {}).get("init") == "notebook":
        st.caption("This model started from the notebook's uniform random weights in [−0.5, 0.5), "
                   "which training changes only a little: the tiles look like noise. Choose "
                   "*what training changed* to see what it learned.")
    unit = "filter" if a.filters else "unit"
    if hidden:
        names = ins.hidden_names(net)
        counts = ", ".join(f"layer {x.layer} ({nm}): {x.n_dead} of {len(x.dead)}"
                           for x, nm in zip(a.activity, names))
        if a.activity[0].n_dead:
            st.markdown(f"{unit.capitalize()}s framed in **black** never fired on any of the "
                        f"{a.evaluation.n:,} digits (dead {unit}s and units: {counts}).")
        else:
            st.markdown(f"Every first-layer {unit} fired on at least one of the {a.evaluation.n:,} "
                        f"digits (dead {unit}s and units: {counts}).")
        first = a.activity[0]
        rare = np.flatnonzero(~first.dead & (first.active_fraction < RARE))
        if len(rare):
            st.caption("Nearly dead (fire on fewer than 5% of digits): " + ", ".join(
                f"{unit} {j} ({first.active_fraction[j]:.1%})" for j in rare[:12])
                + (", …" if len(rare) > 12 else "") + f". {unit.capitalize()}s are numbered row by row.")
    caption = (f"The {n} filters of {net.layers[0].token()}, row by row" if a.filters else None)
    st.image(png, width=min(pic.image.shape[1], 1100), caption=caption)
    if hidden:
        _activity(net, a)


def _activity(net: Network, a: ins.Analysis) -> None:
    """Per hidden layer: units (channels for a convolution), dead ones, how often they fire."""
    if not a.activity:
        return
    names = ins.hidden_names(net)
    st.dataframe(pd.DataFrame([{
        "layer": x.layer, "name": nm,
        "kind": "convolution: channels" if x.kind == "conv" else "dense: units",
        "units": len(x.dead), "dead": x.n_dead,
        "median share of digits a unit fires on": float(np.median(x.active_fraction)),
    } for x, nm in zip(a.activity, names)]), hide_index=True,
        column_config={"median share of digits a unit fires on":
                       st.column_config.NumberColumn(format="percent")})
    act = a.activity[0]
    conv = act.kind == "conv"
    unit = "channel" if conv else "unit"
    if conv:
        st.caption("A convolution's units are its channels (one per filter): a channel *fires* on "
                   "a digit if its output is above zero anywhere in the picture.")
    df = pd.DataFrame({unit: np.arange(len(act.dead)), "fires on": act.active_fraction,
                       "state": np.where(act.dead, "dead", "alive")})
    st.markdown(f"**How often each first-layer {unit} fires** (share of digits with output "
                f"above {ins.ACTIVE_ABOVE.get(net.activation, 0.0):g}"
                + (" somewhere)" if conv else ")"))
    st.vega_lite_chart(df, {
        "mark": {"type": "bar"},
        "encoding": {
            "x": {"field": unit, "type": "ordinal",
                  "axis": {"labels": len(df) <= 64, "ticks": False}},
            "y": {"field": "fires on", "type": "quantitative", "axis": {"format": "%"},
                  "scale": {"domain": [0, 1]}},
            "color": {"field": "state", "type": "nominal", "legend": None,
                      "scale": {"domain": ["alive", "dead"], "range": ["#4c78a8", "#222222"]}},
            "tooltip": [{"field": unit}, {"field": "fires on", "format": ".1%"}],
        },
        "height": 160,
    }, width="stretch")


def _input_picture(x: np.ndarray) -> np.ndarray:
    return ins.upscale(ins.ink_rgb(x.reshape(28, 28)), 5)


def _activations_tab(net: Network, meta: dict, model_key: tuple, x, label: int, source: str,
                     a: ins.Analysis) -> None:
    probs = net.predict_proba(x)[0]
    pred = int(probs.argmax())
    c1, c2 = st.columns([1, 3])
    with c1:
        st.image(_input_picture(x), caption=f"{source} (label {label})", width=140)
    with c2:
        st.markdown(f"The model says **{pred}** with {probs[pred]:.1%} "
                    + ("✅" if pred == label else f"❌ (the label is {label}, green)"))
        df = pd.DataFrame({"digit": np.arange(len(probs)), "probability": probs})
        st.vega_lite_chart(df, {
            "mark": {"type": "bar"},
            "encoding": {"x": {"field": "digit", "type": "ordinal", "axis": {"labelAngle": 0}},
                         "y": {"field": "probability", "type": "quantitative",
                               "scale": {"domain": [0, 1]}},
                         "color": {"condition": [
                             {"test": f"datum.digit == {pred}", "value": "#e45756" if pred != label else "#54a24b"},
                             {"test": f"datum.digit == {label}", "value": "#54a24b"}],
                             "value": "#4c78a8"}},
            "height": 150,
        }, width="stretch")

    if not net.is_mlp:
        _feature_maps(net, x, a)
    dense = [h for h in ins.hidden_outputs(net, x) if h.kind == "dense"]
    if dense:
        st.markdown(f"**Each {'dense ' if not net.is_mlp else ''}layer's activations** for this "
                    "input (one bar per unit).")
    for h in dense:
        alive = int((h.a > 0).sum()) if h.activation == "relu" else None
        dead = a.activity[h.layer - 1].dead if h.layer - 1 < len(a.activity) else None
        title = f"Layer {h.layer} ({h.activation}, {len(h.a)} units)"
        if not net.is_mlp:
            title = f"Layer {h.layer}, {h.name} ({h.activation}, {len(h.a)} units)"
        if alive is not None:
            title += f": {alive} active"
        st.caption(title)
        df = pd.DataFrame({"unit": np.arange(len(h.a)), "activation": h.a,
                           "dead": np.where(dead, "dead unit", "unit") if dead is not None else "unit"})
        st.vega_lite_chart(df, {
            "mark": {"type": "bar"},
            "encoding": {"x": {"field": "unit", "type": "ordinal",
                               "axis": {"labels": len(df) <= 32, "ticks": False}},
                         "y": {"field": "activation", "type": "quantitative"},
                         "tooltip": [{"field": "unit"}, {"field": "activation", "format": ".3f"},
                                     {"field": "dead"}]},
            "height": 110,
        }, width="stretch")

    c = ins.contributions(net, x, pred)
    over = {"unit": "the last hidden layer: unit *j* adds its activation",
            "feature": "the flattened feature maps: number *j* adds its value",
            "pixel": "the pixels: pixel *j* adds its ink"}[c.unit]
    st.markdown(f"**Why {pred}?** The score (logit) of class {pred} is a sum over {over} times "
                "its weight to that class.")
    support, oppose = c.top(5)
    W = net.weights[-1]
    rows = [{"": "for" if c.values[j] > 0 else "against", c.unit: int(j),
             "activation a": float(c.inputs[j]), f"weight to {pred}": float(W[j, pred]),
             "a × w": float(c.values[j])} for j in list(support) + list(oppose)]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption(f"All {len(c.values)} contributions add up to {c.values.sum():+.3f}; plus the bias "
               f"{c.bias:+.3f} that is the logit {c.logit:+.3f}.")
    if net.is_mlp and len(net.weights) == 2 and len(support):
        W1 = net.weights[0]
        start = _initial(model_key, net, meta) if st.session_state.get(WEIGHTS_SHOW_KEY) == "change" else None
        what = "weights"
        if start is not None:
            W1 = W1 - start.weights[0]
            what = "weight changes (W − W_init, as chosen on the Weights tab)"
        imgs = ins.weight_images(W1[:, support])
        vmax = float(np.percentile(np.abs(W1), 99.5))
        st.image([ins.upscale(ins.diverging_rgb(im, vmax), 4) for im in imgs],
                 caption=[f"unit {j}: {c.values[j]:+.2f}" for j in support], width=112)
        st.caption(f"The first-layer {what} of the strongest supporters: the ink patterns each "
                   "of them looks for.")
    if net.is_mlp:
        sal = ins.input_saliency(net, x, pred)
        st.markdown(f"**Which pixels pushed towards {pred}** (ink × gradient of the {pred} score: "
                    "red raised it, blue lowered it).")
        st.image(ins.upscale(ins.diverging_rgb(sal.reshape(28, 28)), 5), width=140)


def _feature_maps(net: Network, x, a: ins.Analysis) -> None:
    """Every convolution's and pooling's output for this input, a small picture per channel."""
    st.markdown(
        "**Feature maps**: what each convolution and pooling layer made of this input, one small "
        "picture per channel (channels numbered row by row). Black is 0, white the layer's "
        "largest value on this input; all channels of a layer share that scale. A convolution's "
        "maps are shown after its activation. Pooling keeps the largest value of each 2×2 block: "
        "the same maps at half the size."
    )
    dead_any = False
    for fm in ins.feature_maps(net, x):
        dead = (a.activity[fm.hidden].dead
                if fm.hidden is not None and fm.hidden < len(a.activity) else None)
        dead_any |= dead is not None and bool(dead.any())
        pic = ins.feature_map_picture(fm.maps, dead)
        C, H, W = fm.maps.shape
        st.image(pic.image, width=min(pic.image.shape[1], 1100),
                 caption=f"{fm.name}: {C} channels of {H}×{W} (white = {pic.vmax:.3g})")
    if dead_any:
        st.caption("Channels framed in **red** never fire on any digit of the evaluation set.")


def _how_it_works_tab(net: Network, meta: dict, x, label: int, source: str) -> None:
    if net.is_mlp:
        _how_mlp_works(net, meta, x, label, source)
    else:
        _how_conv_works(net, meta, x, label, source)


def _softmax_table(z: np.ndarray, probs: np.ndarray) -> None:
    m = float(z.max())
    st.markdown(
        "Subtracting the largest score first changes nothing mathematically but keeps "
        f"`exp` from overflowing (max z = {m:.3f}).")
    table = pd.DataFrame({
        "z": z, "z − max z": z - m, "exp(z − max z)": np.exp(z - m), "softmax p": probs,
    }).T
    st.dataframe(table.map(lambda v: f"{v:.3g}"), width="stretch")


def _update_section(w, cfg: dict, number: int) -> None:
    """One gradient-descent step on this digit: ``w`` is a Walkthrough or a LayerWalkthrough."""
    st.subheader(f"{number} · The update")
    st.latex(r"\theta := \theta - \alpha \frac{\partial L}{\partial \theta}")
    st.markdown(
        f"One plain gradient-descent step on this digit alone with α = {w.lr:g} (this model's "
        f"learning rate) would move the loss from **{w.loss:.4g}** to **{w.loss_after:.4g}** "
        f"(a change of {w.loss_after - w.loss:+.3g}). "
        "Training repeats this on batches of digits, thousands of times"
        + (f" (this model used {cfg.get('optimizer')}, which scales each step adaptively)."
           if cfg.get("optimizer") not in (None, "gd") else ".")
    )


def _how_mlp_works(net: Network, meta: dict, x, label: int, source: str) -> None:
    cfg = meta.get("config") or {}
    lr = float(cfg.get("lr") or 0.1)
    w = ins.walkthrough(net, x, label, lr=lr)
    L = len(w.layers)
    st.markdown(
        f"Follow **{source}** (true label **{label}**) through one forward and one backward pass "
        "of this model. Each equation is the teaching notebook's, next to this model's actual "
        "numbers. *Layout note:* the notebook stores one digit per **column** "
        "(X is 784 × m, Z = W X + b); scratchnet stores one digit per **row** (X is n × 784, "
        "Z = X W + b, W is fan-in × fan-out). It is the same maths transposed; rows let NumPy hand a "
        "whole mini-batch to one matrix multiply. Pick another input in the sidebar."
    )

    st.subheader("1 · The input")
    st.latex(r"A^{[0]} = x \in [0,1]^{784}")
    c1, c2 = st.columns([1, 4])
    c1.image(_input_picture(w.x), width=112)
    c2.markdown(f"A 28×28 image flattened into a row of shape **(1, 784)**; "
                f"{int((w.x > 0).sum())} pixels have ink, brightest = {w.x.max():.2f}.")

    st.subheader("2 · Forward pass")
    for T in w.layers:
        l = T.index
        st.markdown(f"**Layer {l}**: W{l} has shape {T.W_shape}, b{l} has shape {T.b_shape}.")
        c1, c2 = st.columns(2)
        c1.latex(rf"\text{{notebook: }} Z^{{[{l}]}} = W^{{[{l}]}} A^{{[{l-1}]}} + b^{{[{l}]}}")
        c2.latex(rf"\text{{here: }} Z^{{[{l}]}} = A^{{[{l-1}]}} W^{{[{l}]}} + b^{{[{l}]}}")
        st.markdown(f"Shapes here: (1 × {T.W_shape[0]}) · ({T.W_shape[0]} × {T.W_shape[1]}) + "
                    f"({T.W_shape[1]},) → (1 × {T.W_shape[1]}).  z{l} = `{_vec(T.z)}`")
        if T.activation == "relu":
            st.latex(rf"A^{{[{l}]}} = \mathrm{{ReLU}}(Z^{{[{l}]}}) = \max(0, Z^{{[{l}]}})")
            st.markdown(f"a{l} = `{_vec(T.a)}`: {int((T.a > 0).sum())} of {len(T.a)} units are "
                        "active; the rest output exactly 0 and pass no gradient back.")
        elif T.activation == "sigmoid":
            st.latex(rf"A^{{[{l}]}} = \sigma(Z^{{[{l}]}}) = \frac{{1}}{{1 + e^{{-Z^{{[{l}]}}}}}}")
            st.markdown(f"a{l} = `{_vec(T.a)}`")
        elif T.activation == "tanh":
            st.latex(rf"A^{{[{l}]}} = \tanh(Z^{{[{l}]}})")
            st.markdown(f"a{l} = `{_vec(T.a)}`")
        else:
            st.latex(rf"A^{{[{l}]}}_k = \mathrm{{softmax}}(Z^{{[{l}]}})_k = "
                     rf"\frac{{e^{{Z_k - \max_j Z_j}}}}{{\sum_i e^{{Z_i - \max_j Z_j}}}}")
            _softmax_table(T.z, T.a)

    st.subheader("3 · The loss")
    st.latex(r"L = -\sum_k Y_k \log A^{[%d]}_k = -\log p_{\text{true}}" % L)
    st.markdown(f"Y is the one-hot vector of the label {label}; p({label}) = {w.probs[label]:.4f}, "
                f"so **L = {w.loss:.4g}**. The model predicts {w.prediction}."
                + (" A confident, correct answer costs almost nothing and its gradients are tiny: "
                   "try *A random mistake* in the sidebar to see a digit that pulls hard."
                   if w.loss < 0.01 else ""))

    st.subheader("4 · Backward pass")
    st.latex(rf"dZ^{{[{L}]}} = A^{{[{L}]}} - Y")
    st.markdown(f"dZ{L} = `{_vec(w.dz_out, 10, '{:+.3g}')}`: the output's error, negative only at "
                f"the true class {label}. Softmax and cross-entropy together make this simple.")
    c1, c2 = st.columns(2)
    c1.latex(r"\text{notebook: } dW^{[l]} = \tfrac{1}{m}\, dZ^{[l]} A^{[l-1]\top},\quad "
             r"db^{[l]} = \tfrac{1}{m}\textstyle\sum dZ^{[l]}")
    c2.latex(r"\text{here: } dW^{[l]} = \tfrac{1}{n}\, A^{[l-1]\top} dZ^{[l]},\quad "
             r"db^{[l]} = \tfrac{1}{n}\textstyle\sum_{\text{rows}} dZ^{[l]}")
    act_name = {"relu": r"\mathrm{ReLU}'(Z^{[l-1]}) = [Z^{[l-1]} > 0]",
                "sigmoid": r"\sigma'(Z^{[l-1]}) = A^{[l-1]}(1 - A^{[l-1]})",
                "tanh": r"\tanh'(Z^{[l-1]}) = 1 - (A^{[l-1]})^2"}.get(net.activation, "g'")
    if L > 1:
        st.latex(r"\text{chain rule: } dZ^{[l-1]} = \left(dZ^{[l]}\, W^{[l]\top}\right) \odot "
                 + act_name)
    st.markdown("The gradient of every parameter for this one digit (n = 1), from "
                "`Network.loss_and_grads`; its norm says how hard this digit pulls on that layer:")
    st.dataframe(pd.DataFrame([{"gradient": nme, "shape": " × ".join(map(str, shp)), "norm": nrm}
                               for nme, shp, nrm in w.grad_norms()]), hide_index=True)

    _update_section(w, cfg, 5)


CONV_FILTER_KEY = "inspect_conv_filter"
CONV_ROW_KEY = "inspect_conv_row"
CONV_COL_KEY = "inspect_conv_col"
STRONGEST = "strongest"
ACT_LATEX = {  # name, definition
    "relu": (r"\mathrm{ReLU}", r"\max(0, z)"),
    "sigmoid": (r"\sigma", r"\frac{1}{1 + e^{-z}}"),
    "tanh": (r"\tanh", r"\tanh(z)"),
}


def _shape(shape) -> str:
    return "×".join(map(str, shape))


def _how_conv_works(net: Network, meta: dict, x, label: int, source: str) -> None:
    cfg = meta.get("config") or {}
    lr = float(cfg.get("lr") or 0.1)
    w = ins.layer_walkthrough(net, x, label, lr=lr)
    st.markdown(
        f"Follow **{source}** (true label **{label}**) through this convolutional network: "
        f"**{net.describe()}**. First one output pixel of the first convolution, with the "
        "model's own numbers, written as a sum and then as the matrix product the layer really "
        "computes; then the digit through every layer, the loss, the backward pass and one "
        "update. Pick another input in the sidebar."
    )

    st.subheader("1 · The input")
    st.latex(r"X \in [0,1]^{28 \times 28 \times 1}")
    c1, c2 = st.columns([1, 4])
    c1.image(_input_picture(w.x), width=112)
    c2.markdown(
        "One image as an array of shape **(1, 28, 28, 1)**: batch, rows, columns, channels "
        "(\"NHWC\"; the image has one channel, ink). It is the same 784 numbers an MLP reads as a "
        f"row, kept as a picture so a filter can look at neighbouring pixels; "
        f"{int((w.x > 0).sum())} pixels have ink.")

    if net.layers[0].kind == "conv2d":
        ex = _conv_pixel(net, x)
        _conv_im2col(net, ex)
    else:
        st.info("This model's first layer is not a convolution, so there is no first-layer "
                "convolution to follow pixel by pixel.")
    _conv_forward(net, w)

    st.subheader("5 · Output and loss")
    st.latex(r"p_k = \mathrm{softmax}(z)_k = \frac{e^{z_k - \max_j z_j}}{\sum_i e^{z_i - \max_j z_j}}")
    st.markdown(f"The last layer's {len(w.logits)} scores z (logits) become probabilities:")
    _softmax_table(w.logits, w.probs)
    st.latex(r"L = -\sum_k Y_k \log p_k = -\log p_{\text{true}}")
    st.markdown(f"Y is the one-hot vector of the label {label}; p({label}) = {w.probs[label]:.4f}, "
                f"so **L = {w.loss:.4g}**. The model predicts {w.prediction}.")

    st.subheader("6 · Backward pass")
    st.latex(r"dZ = p - Y")
    st.markdown(f"dZ = `{_vec(w.dz_out, 10, '{:+.3g}')}`: the output's error, negative only at "
                f"the true class {label}. From there each layer, last first, turns the gradient "
                f"of its output into the gradient of its input (layers with weights also into "
                f"the gradients of those, averaged over the batch; here n = 1):")
    kinds = {s.kind for s in w.steps}
    rows = [(r"\text{dense}", r"dW = \tfrac{1}{n} A^{\top} dZ,\quad db = \tfrac{1}{n}\textstyle\sum_{\text{rows}} dZ,\quad dA = dZ\, W^{\top}")]
    if net.activation in ("relu", "sigmoid", "tanh"):
        rows.append((rf"\text{{{net.activation}}}", {
            "relu": r"dZ = dA \odot [A > 0]",
            "sigmoid": r"dZ = dA \odot A(1 - A)",
            "tanh": r"dZ = dA \odot (1 - A^2)"}[net.activation]))
    if "flatten" in kinds:
        rows.append((r"\text{flatten}", r"\text{the row of gradients is reshaped back into maps}"))
    if "maxpool2d" in kinds:
        rows.append((r"\text{max-pool}", r"\text{each block's gradient goes to the input that was its maximum; the others get } 0"))
    if "conv2d" in kinds:
        rows.append((r"\text{convolution}", r"dW_{\text{mat}} = \mathrm{cols}^{\top} dY,\quad db = \textstyle\sum dY,\quad d\,\mathrm{cols} = dY\, W_{\text{mat}}^{\top} \xrightarrow{\text{col2im}} dX"))
    st.latex(r"\begin{array}{ll}" + r" \\[3pt] ".join(f"{a} & {b}" for a, b in rows) + r"\end{array}")
    st.markdown(
        "A convolution's backward pass is a dense layer's, with `cols` as its input. col2im adds "
        "each window's gradient back onto the pixels it was copied from (a pixel sits in up to "
        f"{net.layers[0].kernel ** 2 if net.layers[0].kind == 'conv2d' else 'K×K'} windows). "
        "The first layer skips dX: nobody needs the gradient of the pixels. The "
        "gradient of every parameter for this one digit, from `Network.loss_and_grads`; its "
        "norm says how hard this digit pulls on that layer:")
    st.dataframe(pd.DataFrame([{"gradient": nme, "layer": lay, "shape": " × ".join(map(str, shp)),
                                "norm": nrm} for nme, lay, shp, nrm in w.grad_norms()]),
                 hide_index=True)
    _update_section(w, cfg, 7)


def _conv_pixel(net: Network, x) -> ins.ConvExample:
    """Section 2: one output pixel of the first convolution as a sum of products."""
    conv = net.layers[0]
    K, O = conv.kernel, conv.filters
    H, W = conv.out_shape[:2]
    p = K // 2
    st.subheader("2 · One pixel of the first convolution, as a sum")
    st.markdown(
        f"The first layer, **{conv.token()}**, has {O} filters of {K}×{K} weights. For output "
        f"pixel (i, j) and filter f it takes the {K}×{K} window of input pixels centred on (i, j), "
        f"multiplies it by the filter's kernel place by place, and adds the {K * K} products and "
        f"the filter's bias. Past the edge the input counts as 0 (\"same\" padding of p = {p} "
        f"pixels), so the output is {H}×{W}, like the input, once per filter.")
    st.latex(rf"z_{{i,j,f}} = b_f + \sum_{{d_i=0}}^{{{K - 1}}} \sum_{{d_j=0}}^{{{K - 1}}} \sum_{{c}} "
             rf"x_{{i+d_i-{p},\; j+d_j-{p},\; c}}\; W_{{d_i,d_j,c,f}}")
    c1, c2, c3 = st.columns(3)
    choice = c1.selectbox(
        "Filter f", [STRONGEST] + list(range(O)), key=CONV_FILTER_KEY,
        format_func=lambda o: "the strongest response" if o == STRONGEST else f"filter {o}")
    row = c2.number_input(f"Output row i (0–{H - 1})", 0, H - 1, value=None, step=1,
                          key=CONV_ROW_KEY, placeholder="where it responds most")
    col = c3.number_input(f"Output column j (0–{W - 1})", 0, W - 1, value=None, step=1,
                          key=CONV_COL_KEY, placeholder="where it responds most")
    f = None if choice == STRONGEST else int(choice)
    pos = (int(row), int(col)) if row is not None and col is not None else None
    ex = ins.conv_example(net, x, f, pos)
    i, j = ex.pos
    how = ("where filters respond most to this input" if f is None and pos is None else
           f"where filter {f} responds most" if pos is None else "the chosen pixel")
    st.markdown(f"**Filter {ex.filter} at output pixel ({i}, {j})**, {how}. Its window covers "
                f"input rows {i - p}…{i + p} and columns {j - p}…{j + p} (framed in red).")

    c1, c2, c3, c4 = st.columns(4)
    zoom = 16
    c1.image(ins.window_picture(x, ex.pos, K, scale=4), caption="the window on the input",
             width=112)
    c2.image(ins.upscale(ins.ink_rgb(ex.window), zoom), caption="window x", width=K * zoom)
    vmax = float(np.abs(ex.kernel).max()) or 1.0
    c3.image(ins.upscale(ins.diverging_rgb(ex.kernel, vmax), zoom),
             caption=f"kernel W of filter {ex.filter}", width=K * zoom)
    c4.image(ins.upscale(ins.diverging_rgb(ex.products), zoom), caption="products x · W",
             width=K * zoom)
    labels = [f"{d}" for d in range(K)]
    c1, c2, c3 = st.columns(3)
    for column, title, values in ((c1, "window x (rows d_i, columns d_j)", ex.window),
                                  (c2, f"kernel W[:, :, 0, {ex.filter}]", ex.kernel),
                                  (c3, "products x · W", ex.products)):
        column.caption(title)
        column.dataframe(pd.DataFrame(np.round(values.astype(np.float64), 3), index=labels,
                                      columns=labels), width="stretch")
    total = float(ex.products.sum())
    top = ex.top_terms(3)
    terms = " + ".join(rf"{ex.cols_row[t]:.3f} \cdot ({ex.kernel_column[t]:.3f})" for t in top)
    rest = K * K - len(top)
    st.latex(rf"z_{{{i},{j},{ex.filter}}} = b_{{{ex.filter}}} + \sum x \cdot W = "
             rf"{ex.bias:.4f} + \left({terms} + \dots{{}}\text{{ {rest} more}}\right)")
    st.latex(rf"z_{{{i},{j},{ex.filter}}} = {ex.bias:.4f} + {total:.4f} = {ex.z:.4f}")
    if ex.activation in ACT_LATEX:
        name, _ = ACT_LATEX[ex.activation]
        st.latex(rf"a_{{{i},{j},{ex.filter}}} = {name}(z_{{{i},{j},{ex.filter}}}) = "
                 rf"{name}({ex.z:.4f}) = {ex.a:.4f}")
    st.caption(f"The three largest of the {K * K} products are written out. The pixel's value "
               f"after the {ex.activation} is what you see at ({i}, {j}) of channel {ex.filter} on "
               "the Activations tab.")
    return ex


def _conv_im2col(net: Network, ex: ins.ConvExample) -> None:
    """Section 3: the same number as row r of cols times column f of the kernel matrix."""
    conv = net.layers[0]
    H, W = conv.out_shape[:2]
    n_rows, n_k = ex.cols_shape
    O = ex.W_shape[1]
    i, j = ex.pos
    st.subheader("3 · The same, as one matrix product (im2col)")
    st.markdown(
        f"Pixel by pixel that is {n_rows * O:,} little sums. The layer instead copies every window "
        f"into one row of a matrix: **cols has shape {ex.cols_shape}: one row per output pixel**, "
        f"the {n_k} numbers of its window read row by row. **The kernel matrix "
        f"W.reshape({n_k}, {O}) has shape {ex.W_shape}: one column per filter**, its kernel read "
        f"the same way. **Row r of cols times column f of W, plus b_f, is z** at output pixel "
        f"r = i·{W} + j, and one matrix product computes all {n_rows:,} × {O} of them at once "
        "(\"im2col\": image to columns).")
    st.latex(rf"Z = \mathrm{{cols}}\; W_{{\text{{mat}}}} + b: \quad ({n_rows} \times {n_k})\,"
             rf"({n_k} \times {O}) + ({O}) \;\to\; ({n_rows} \times {O}) \;\to\; "
             rf"{H} \times {W} \times {O}")
    dot = float(ex.cols_row @ ex.kernel_column)
    st.latex(rf"r = i \cdot {W} + j = {i} \cdot {W} + {j} = {ex.row}, \qquad "
             rf"z_{{{ex.row},{ex.filter}}} = \mathrm{{cols}}_{{{ex.row},:}} \cdot "
             rf"W_{{:,{ex.filter}}} + b_{{{ex.filter}}} = {dot:.4f} + {ex.bias:.4f} = {ex.z:.4f}")
    K = ex.kernel_size
    columns = [f"{k} ({k // K},{k % K})" for k in range(n_k)]
    table = pd.DataFrame([ex.cols_row, ex.kernel_column, ex.cols_row * ex.kernel_column],
                         index=[f"cols[{ex.row}, k]", f"W[k, {ex.filter}]", "product"],
                         columns=columns).astype(np.float64).round(3)
    st.caption(f"Row {ex.row} of cols and column {ex.filter} of the kernel matrix, entry k "
               "(d_i, d_j): the same numbers as the window and the kernel above, in one line.")
    st.dataframe(table, width="stretch")
    st.markdown(
        "Copying costs memory (each pixel is copied into up to "
        f"{K * K} rows) but turns the convolution into the one operation computers do fastest: "
        "a big matrix product, handed to BLAS in one call for the whole batch.")


STEP_WORDS = {
    "conv2d": "convolution: a window times each kernel, at every pixel",
    "maxpool2d": "max-pooling: the largest value of each block, per channel",
    "relu": "max(0, z), in place",
    "sigmoid": "1 / (1 + e^(−z)), in place",
    "tanh": "tanh(z), in place",
    "flatten": "the maps as one row (no copy)",
    "dense": "Z = A W + b",
}


def _conv_forward(net: Network, w: ins.LayerWalkthrough) -> None:
    """Section 4: the digit through every layer, with shapes."""
    st.subheader("4 · Forward through every layer")
    rows = []
    for step in w.steps:
        last = step.index == len(w.steps) - 1
        out = step.out
        what = STEP_WORDS.get(step.kind, step.kind) + (" (the class scores)" if last else "")
        seen = (f"max {out.max():.3g}" + (f", {step.positive:,} of {out.size:,} above 0"
                                          if step.kind in ("relu", "maxpool2d") else ""))
        rows.append({"layer": step.name, "does": what, "input shape": _shape(step.in_shape),
                     "output shape": _shape(step.out_shape), "parameters": step.n_params,
                     "this input": seen})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    kinds = {s.kind for s in w.steps}
    formulas = []
    if "maxpool2d" in kinds:
        formulas.append(r"\text{max-pool } (k \times k):\quad m_{i,j,c} = \max_{0 \le a,b < k} "
                        r"y_{ki+a,\; kj+b,\; c}")
    if "flatten" in kinds:
        flat = next(s for s in w.steps if s.kind == "flatten")
        h, ww, c = flat.in_shape
        formulas.append(rf"\text{{flatten}}:\quad {h} \times {ww} \times {c} \to {h * ww * c}, "
                        rf"\quad a_{{(i \cdot {ww} + j) \cdot {c} + c'}} = m_{{i,j,c'}}")
    formulas.append(r"\text{dense}:\quad Z = A\,W + b")
    for f in formulas:
        st.latex(f)
    pools = [i for i, s in enumerate(w.steps[:-1])
             if s.kind == "maxpool2d" and w.steps[i + 1].kind in ("relu", "sigmoid", "tanh")]
    if pools:
        st.caption(f"Here each convolution's {net.activation} comes after its pooling: the "
                   "activation never decreases, so it does not change which value of a block is "
                   "the largest; the numbers are the same, and the activation touches a quarter "
                   "of them. The Activations tab shows each convolution's maps after it.")


def _training_tab(net: Network, meta: dict) -> None:
    arch = meta.get("architecture") or net.architecture
    st.markdown(f"**Architecture**: `{arch}`, i.e. {net.describe()} "
                f"({net.n_params:,} parameters, {net.activation}).")
    if isinstance(meta.get("personal"), dict):
        _personal_section(meta["personal"], meta)

    df = ins.history_frame(meta)
    m = meta.get("metrics") or {}
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Validation accuracy", _pct(m.get("val_accuracy")) if m.get("val_accuracy") is not None else "–")
    c2.metric("Test accuracy", _pct(m.get("test_accuracy")) if m.get("test_accuracy") is not None else "–")
    secs = m.get("train_seconds")
    c3.metric("Training time", f"{secs:.1f} s" if isinstance(secs, (int, float)) else "–")
    steps = m.get("steps")
    c4.metric("Steps", f"{steps:,}" if isinstance(steps, int) else "–")
    if df.empty:
        st.info("This model's file holds no training history.")
    else:
        # Plain Vega-Lite specs: st.line_chart goes through Altair, ~10x slower per rerun.
        c1, c2 = st.columns(2)
        with c1:
            st.markdown("**Loss** (mean cross-entropy on the training batches)")
            st.vega_lite_chart(df[["step", "loss"]], {
                "mark": {"type": "line", "point": len(df) <= 30},
                "encoding": {"x": {"field": "step", "type": "quantitative"},
                             "y": {"field": "loss", "type": "quantitative",
                                   "scale": {"zero": False}},
                             "tooltip": [{"field": "step"}, {"field": "loss", "format": ".4f"}]},
                "height": 220,
            }, width="stretch")
        with c2:
            st.markdown("**Accuracy** (training batches and validation split)")
            cols = [c for c in ("train_accuracy", "val_accuracy") if df[c].notna().any()]
            st.vega_lite_chart(df[["step", *cols]], {
                "transform": [{"fold": cols, "as": ["series", "accuracy"]},
                              {"filter": "isValid(datum.accuracy)"}],
                "mark": {"type": "line", "point": len(df) <= 30},
                "encoding": {"x": {"field": "step", "type": "quantitative"},
                             "y": {"field": "accuracy", "type": "quantitative",
                                   "scale": {"zero": False}, "axis": {"format": "%"}},
                             "color": {"field": "series", "type": "nominal", "title": None},
                             "tooltip": [{"field": "step"}, {"field": "series"},
                                         {"field": "accuracy", "format": ".2%"}]},
                "height": 220,
            }, width="stretch")
    rows = ins.config_rows(meta)
    if rows:
        st.markdown("**Configuration**")
        st.dataframe(pd.DataFrame(rows, columns=["setting", "value"]), hide_index=True)
    ds = meta.get("dataset") or {}
    if ds:
        st.caption("Data: " + ", ".join(f"{k} = {v}" for k, v in ds.items()))


def _personal_section(p: dict, meta: dict) -> None:
    """A personal model ("Teach it my handwriting"): its base, the drawings it learned from, the figures."""
    from scratchnet import personal

    base = p.get("base") or "an unnamed model"
    try:
        kept = base in common.get_store().names()
    except (OSError, ScratchnetError):
        kept = False
    bm = p.get("base_metrics") if isinstance(p.get("base_metrics"), dict) else {}
    scores = [f"{_pct(bm[k])} on {what}" for k, what in (("val_accuracy", "validation digits"),
                                                          ("test_accuracy", "test digits"))
              if isinstance(bm.get(k), (int, float))]
    base_arch = p.get("base_architecture")
    st.markdown(
        f"**A personal model**: it learned one person's handwriting from {p.get('n_drawings', '?')} labelled "
        f"drawings, tuned from the base model **{base}**"
        + ("" if kept else " (no longer in the model store)")
        + (f": `{base_arch}`" if base_arch else "")
        + (f", {', '.join(scores)}" if scores else "") + "."
    )
    c1, c2 = st.columns(2)
    before, after = p.get("drawings_before"), p.get("drawings_after")
    c1.metric("Drawings: before → after",
              f"{_pct(before)} → {'–' if after is None else _pct(after)}",
              help="The base model on the drawings (it never saw them), then the personal model, "
              "cross-checked: each drawing read by a model tuned without it.")
    c2.metric("Validation: before → after", f"{_pct(p.get('val_before'))} → {_pct(p.get('val_after'))}",
              help="MNIST validation digits, the base model then the personal model.")
    if p.get("refused"):
        st.warning("This fine-tuning was refused (it cost too much on validation digits).")
    X, y = personal.decode_drawings(meta)
    total = (p.get("drawings") or {}).get("total") if isinstance(p.get("drawings"), dict) else None
    if len(y):
        more = f" (the first {len(y):,} of {total:,})" if isinstance(total, int) and total > len(y) else ""
        st.markdown(f"**The drawings it learned from**{more}, with their labels")
        _gallery(X, np.arange(len(y)), [str(int(v)) for v in y], "")
    else:
        st.caption("The drawings it learned from are not in this model's file.")
