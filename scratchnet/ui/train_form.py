"""The Train page's knobs <-> TrainConfig, preset labels, time estimates and chart specs.

No Streamlit here. Knobs are the flat values the widgets hold (strings, numbers and lists, as a
person enters them); ``config_from_knobs`` is the one place they become a :class:`TrainConfig`,
so a typo in "Architecture" is a clear one-line error rather than a traceback.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

from scratchnet import architecture
from scratchnet import augment as augment_mod
from scratchnet.architecture import SpecError
from scratchnet.errors import ConfigError
from scratchnet.training import PRESETS, TrainConfig

OPTIMIZER_LABELS = {
    "gd": "Gradient descent (GD)",
    "sgd": "SGD",
    "momentum": "SGD + momentum",
    "adam": "Adam",
}
ACTIVATION_LABELS = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "tanh"}
INIT_LABELS = {"he": "He (for ReLU)", "xavier": "Xavier/Glorot", "notebook": "Notebook: uniform ±0.5"}
SCHEDULE_LABELS = {"constant": "Constant", "cosine": "Cosine decay to 0"}
CUSTOM = "custom"
PRESET_ORDER = ("notebook", "fast", "best")
PRESET_HELP = {
    "notebook": "the teaching notebook exactly: one hidden layer of 10, full-batch gradient descent. "
                "Seconds on the sample; reads drawings poorly.",
    "fast": "a 784-256-128-10 MLP with Adam and augmentation: the live demo, seconds on the "
            "sample and well under a minute on full MNIST; reads most drawings.",
    "best": "a small convolutional net trained longer on varied digits: reads people's drawings "
            "best, but takes several minutes on full MNIST (under a minute on the sample), so "
            "train it before a demo.",
}

# The Architecture field: named choices, each a SPEC (scratchnet.architecture), and "Custom".
ARCHITECTURES = {
    "notebook": ("Notebook 784-10-10", "dense10"),
    "mlp": ("MLP 256-128", "dense256,dense128"),
    "conv": ("Conv net", "conv16-5,maxpool2,conv32-5,maxpool2,dense128"),
}
ARCHITECTURE_HELP = (
    "The hidden layers; the 784 inputs and the 10 outputs (softmax) are implied. Custom takes a "
    "SPEC: " + architecture.GRAMMAR + ". 'dense256,dense128' is the MLP 784-256-128-10."
)
# What the augmentation parts do, for the multiselect; parts not named here show their own name.
AUGMENT_LABELS = {
    "affine": "Shift, rotate, scale",
    "elastic": "Elastic distortion",
    "thickness": "Stroke thickness",
    "flag": "Flag and foot on 1s",
}


def augment_parts() -> tuple[str, ...]:
    """The augmentation parts training knows today (read at call time, never copied)."""
    return tuple(augment_mod.AUGMENT_PARTS)


def augment_label(part: str) -> str:
    return AUGMENT_LABELS.get(part, part.capitalize())


def architecture_label(choice: str) -> str:
    return "Custom" if choice == CUSTOM else ARCHITECTURES[choice][0]


def architecture_choice(spec) -> str:
    """The named architecture whose SPEC this is (in any spelling), else 'custom'."""
    try:
        canon = architecture.canonical(_guard_numbers(spec)) if spec is not None else None
    except ConfigError:
        return CUSTOM
    for name, (_, named) in ARCHITECTURES.items():
        if canon == named:
            return name
    return CUSTOM


def _guard_numbers(spec):
    """Leading zeros dropped and absurdly long numbers refused, before the SPEC is parsed.

    ``int()`` refuses strings of more than 4,300 digits with a ValueError of its own; a number
    of more than 6 digits is far beyond every limit anyway.
    """
    if not isinstance(spec, str):
        return spec
    for i, token in enumerate((t for t in re.split(r"[,\s]+", spec.strip()) if t), 1):
        for run in re.findall(r"\d+", token):
            if len(run.lstrip("0")) > 6:
                shown = token if len(token) <= 16 else token[:12] + "…"
                raise SpecError(f"Layer {i} of the architecture, {shown!r}, has a number far too large; "
                                f"use {architecture.GRAMMAR}.")
    return re.sub(r"\d+", lambda m: m.group().lstrip("0") or "0", spec)


@dataclass(frozen=True)
class NetworkSummary:
    """What the Architecture field shows beside itself."""

    spec: str  # canonical SPEC
    describe: str  # Network.describe(): "784-256-128-10" or "28x28 → conv16-5 → ... → 10"
    n_params: int
    macs_per_row: int
    bytes_per_row: int


def network_summary(spec, activation: str = "relu") -> NetworkSummary:
    """The network a SPEC makes, measured without allocating it; SpecError if it does not parse."""
    from scratchnet.network import Network

    spec = architecture.canonical(_guard_numbers(spec))
    size = architecture.measure(spec, activation)
    layers, input_shape = architecture.build(spec, activation)
    return NetworkSummary(spec, Network.skeleton(layers, input_shape, activation).describe(),
                          size.n_params, size.macs_per_row, size.bytes_per_row)


@functools.lru_cache(maxsize=256)
def _describe_text(spec: str) -> str:
    try:
        return network_summary(spec).describe
    except ConfigError:
        return spec


def describe_shape(spec) -> str:
    """'784-256-128-10' for an MLP, '28x28 → conv16-5 → … → 10' otherwise; the SPEC if unparsable."""
    return _describe_text(spec if isinstance(spec, str) else ",".join(map(str, spec)))


def describe_config(config: TrainConfig, n_inputs: int = 784) -> str:
    """One line an ML person reads at a glance: '784-10-10, GD, lr 0.1, 500 iterations'."""
    if config.hidden is not None:
        shape = "-".join(str(s) for s in (n_inputs, *config.hidden, 10))
    else:
        shape = describe_shape(config.layers)
    opt = {"gd": "GD", "sgd": "SGD", "momentum": "momentum", "adam": "Adam"}.get(config.optimizer, config.optimizer)
    if config.iterations is not None:
        length = f"{config.iterations:,} iterations"
    else:
        length = f"{config.epochs:g} epoch{'s' if config.epochs != 1 else ''}"
    parts = [shape, opt, f"lr {config.lr:g}", length]
    if config.batch_size is not None and config.optimizer != "gd":
        parts.append(f"batch {config.batch_size}")
    if config.augment:
        parts.append("augmented")
    return ", ".join(parts)


def preset_label(name: str) -> str:
    if name == CUSTOM:
        return "Custom"
    return f"{name.capitalize()} ({describe_config(PRESETS[name])})"


def preset_help() -> str:
    return " ".join(f"**{name.capitalize()}**: {PRESET_HELP[name]}" for name in PRESET_ORDER)


def knobs_from_config(config: TrainConfig) -> dict:
    """Widget values showing ``config``."""
    return {
        "layers": config.layers,
        "activation": config.activation,
        "init": config.init,
        "optimizer": config.optimizer,
        "lr": float(config.lr),
        "unit": "iterations" if config.iterations is not None else "epochs",
        "iterations": int(config.iterations if config.iterations is not None else 500),
        "epochs": float(config.epochs if config.epochs is not None else 10.0),
        "full_batch": config.batch_size is None,
        "batch_size": int(config.batch_size if config.batch_size is not None else 128),
        "seed": int(config.seed),
        "augment": list(augment_mod.parse_augment(config.augment)),
        "l2": float(config.l2),
        "momentum": float(config.momentum),
        "schedule": config.lr_schedule,
    }


def parse_layers(text) -> str:
    """The Architecture field -> canonical SPEC; SpecError (one line, naming the token) if bad."""
    return architecture.canonical(_guard_numbers(text if text is not None else ""))


def config_from_knobs(knobs: dict) -> TrainConfig:
    """The TrainConfig the widgets describe, validated (ConfigError with a readable message)."""
    iterations = epochs = None
    if knobs.get("unit", "iterations") == "iterations":
        iterations = int(knobs["iterations"])
    else:
        epochs = float(knobs["epochs"])
    parts = knobs.get("augment") or ()
    if isinstance(parts, str):
        parts = [parts]
    config = TrainConfig(
        layers=parse_layers(knobs["layers"]),
        activation=knobs["activation"],
        init=knobs["init"],
        optimizer=knobs["optimizer"],
        lr=float(knobs["lr"]),
        iterations=iterations,
        epochs=epochs,
        batch_size=None if knobs.get("full_batch") else int(knobs["batch_size"]),
        l2=float(knobs.get("l2", 0.0)),
        momentum=float(knobs.get("momentum", 0.9)),
        seed=int(knobs.get("seed", 0)),
        augment="+".join(str(p) for p in parts),
        lr_schedule=knobs.get("schedule", "constant"),
    )
    config.validate()
    return config


def matching_preset(knobs: dict) -> str:
    """The preset these knobs describe, else 'custom' (so the preset box never lies).

    Compared as configs, so a SPEC typed in another spelling, augmentation parts picked in another
    order, or the unused one of iterations/epochs do not make a preset 'custom'.
    """
    try:
        config = config_from_knobs(knobs)
    except (ConfigError, KeyError, TypeError, ValueError):
        return CUSTOM
    for name in PRESET_ORDER:
        if config == PRESETS[name].replace(eval_every=None):
            return name
    return CUSTOM


# --------------------------------------------------------------------------- time estimate

# Throughput of a training step on this project's 2-core machine (measured on the bundled sample
# with the Train page's worker, load ~1.6): a step costs ~6 flops per multiply-add of the forward
# pass (forward, backward and the update) at FLOPS_PER_SECOND, plus the traffic through its
# buffers at BYTES_PER_SECOND. Dense nets are compute-bound (fast preset: 2.2 ms for 128 rows),
# conv nets memory-bound (best preset: 80 ms for 128 rows, im2col and col2im). Augmentation
# costs about AUGMENT_SECONDS_PER_ROW per part and row; every step a fixed STEP_OVERHEAD.
FLOPS_PER_SECOND = 1e11
BYTES_PER_SECOND = 2e9
AUGMENT_SECONDS_PER_ROW = 6e-6
STEP_OVERHEAD = 2e-4


def estimate_seconds(config: TrainConfig, n_train: int, n_val: int = 0, n_test: int = 0, *,
                     summary: NetworkSummary | None = None, eval_every: int | None = None,
                     val_every: int | None = None) -> float:
    """Seconds the training of ``config`` should take on ``n_train`` digits, before it starts.

    steps x batch x (6 x macs_per_row / FLOPS_PER_SECOND + bytes_per_row / BYTES_PER_SECOND),
    plus augmentation, a fixed cost per step, the validation passes (forward only, a third of a
    training row; one every ``val_every`` records of ``eval_every`` steps) and the final test
    pass. A guide ("about 3 min"), not a promise: the live ETA replaces it as soon as the run
    has measured itself.
    """
    from scratchnet.ui.worker import choose_eval_every, choose_val_every

    s = summary or network_summary(config.layers, config.activation)
    batch = config.effective_batch_size(n_train)
    steps = config.total_steps(n_train)
    row = 6.0 * s.macs_per_row / FLOPS_PER_SECOND + s.bytes_per_row / BYTES_PER_SECOND
    row += AUGMENT_SECONDS_PER_ROW * len(augment_mod.parse_augment(config.augment))
    training = steps * (batch * row + STEP_OVERHEAD)
    if eval_every is None:
        eval_every = choose_eval_every(config, n_train, n_val, s.macs_per_row)
    if val_every is None:
        val_every = choose_val_every(config, n_train, n_val, eval_every)
    evaluations = math.ceil(steps / max(1, eval_every) / max(1, val_every))
    eval_row = (2.0 * s.macs_per_row / FLOPS_PER_SECOND + s.bytes_per_row / BYTES_PER_SECOND) / 3
    return training + (evaluations * n_val + n_test) * eval_row


def format_estimate(seconds: float) -> str:
    """'about 20 s', 'about 3 min', 'about 1 h 10 min': a rounded figure, as honest as it is."""
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 10:
        return "a few seconds"
    if seconds < 55:
        return f"about {int(round(seconds / 5.0)) * 5} s"
    minutes = seconds / 60
    if minutes < 59.5:
        return f"about {max(1, int(round(minutes)))} min"
    h, m = divmod(int(round(minutes / 5.0)) * 5, 60)
    return f"about {h} h" + (f" {m} min" if m else "")


# --------------------------------------------------------------------------- charts

# Fixed Vega-Lite specs: rendering one costs a few ms, unlike st.line_chart's Altair rebuild.
_X = {"field": "step", "type": "quantitative", "title": "Iteration", "scale": {"domainMin": 0}}
ACCURACY_SPEC = {
    "height": 260,
    # records without a validation pass hold None: drop them so the line joins the measured points
    "transform": [{"fold": ["Train", "Validation"], "as": ["Accuracy of", "accuracy"]},
                  {"filter": "isValid(datum.accuracy)"}],
    "mark": {"type": "line", "point": False, "interpolate": "monotone"},
    "encoding": {
        "x": _X,
        "y": {"field": "accuracy", "type": "quantitative", "title": "Accuracy",
              "scale": {"zero": False}, "axis": {"format": ".0%"}},
        "color": {"field": "Accuracy of", "type": "nominal", "title": None,
                  "scale": {"domain": ["Train", "Validation"], "range": ["#9bb7ea", "#3b6fd6"]},
                  "legend": {"orient": "bottom-right"}},
        "tooltip": [_X, {"field": "Accuracy of", "type": "nominal"},
                    {"field": "accuracy", "type": "quantitative", "format": ".2%"}],
    },
}
LOSS_SPEC = {
    "height": 260,
    "mark": {"type": "line", "color": "#d6663b", "interpolate": "monotone"},
    "encoding": {
        "x": _X,
        "y": {"field": "loss", "type": "quantitative", "title": "Training loss (cross-entropy)",
              "scale": {"zero": False}},
        "tooltip": [_X, {"field": "loss", "type": "quantitative", "format": ".4f"}],
    },
}


def chart_columns(points) -> dict[str, list]:
    """Snapshot points -> columns for the chart specs (``Validation`` may hold None)."""
    return {
        "step": [p[0] for p in points],
        "loss": [p[2] for p in points],
        "Train": [p[3] for p in points],
        "Validation": [p[4] for p in points],
    }
