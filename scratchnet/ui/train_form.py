"""The Train page's knobs <-> TrainConfig, preset labels and chart specs; no Streamlit here.

Knobs are the flat values the widgets hold (strings and numbers, as a person types them);
``config_from_knobs`` is the one place they become a :class:`TrainConfig`, so a typo in
"Hidden layers" is a clear ConfigError rather than a traceback.
"""

from __future__ import annotations

import re

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
PRESET_ORDER = ("notebook", "fast")


def describe_config(config: TrainConfig, n_inputs: int = 784) -> str:
    """One line an ML person reads at a glance: '784-10-10, GD, lr 0.1, 500 iterations'."""
    shape = "-".join(str(s) for s in (n_inputs, *config.hidden, 10))
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


def knobs_from_config(config: TrainConfig) -> dict:
    """Widget values showing ``config``."""
    return {
        "hidden": ", ".join(str(h) for h in config.hidden),
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
        "augment": bool(config.augment),
        "l2": float(config.l2),
        "momentum": float(config.momentum),
        "schedule": config.lr_schedule,
    }


def parse_hidden(text) -> tuple[int, ...]:
    """'256, 128' -> (256, 128); raises ConfigError naming what is wrong."""
    if isinstance(text, (tuple, list)):
        parts = [str(p) for p in text]
    else:
        parts = [p for p in re.split(r"[\s,;x×-]+", str(text or "").strip()) if p]
    if not parts:
        raise ConfigError("Hidden layers: give at least one layer size, e.g. '10' or '256, 128'.")
    sizes = []
    for p in parts:
        # ASCII digits only: str.isdigit() also accepts '²', which int() refuses.
        if not (p.isascii() and p.isdigit()):
            raise ConfigError(f"Hidden layers: {p[:20]!r} is not a whole number; write sizes like '256, 128'.")
        if len(p.lstrip("0")) > 6:  # also keeps int() below Python's limit on digits (a ValueError, not ours)
            raise ConfigError(f"Hidden layers: {p[:12]}... is far too large; a layer has 1 to 4,096 units.")
        sizes.append(int(p.lstrip("0") or "0"))
    return tuple(sizes)


def config_from_knobs(knobs: dict) -> TrainConfig:
    """The TrainConfig the widgets describe, validated (ConfigError with a readable message)."""
    iterations = epochs = None
    if knobs.get("unit", "iterations") == "iterations":
        iterations = int(knobs["iterations"])
    else:
        epochs = float(knobs["epochs"])
    config = TrainConfig(
        hidden=parse_hidden(knobs["hidden"]),
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
        augment=bool(knobs.get("augment", False)),
        lr_schedule=knobs.get("schedule", "constant"),
    )
    config.validate()
    return config


def matching_preset(knobs: dict) -> str:
    """The preset these knobs equal, else 'custom' (so the preset box never lies)."""
    for name in PRESET_ORDER:
        if knobs_from_config(PRESETS[name]) == {k: knobs.get(k) for k in knobs_from_config(PRESETS[name])}:
            return name
    return CUSTOM


# --------------------------------------------------------------------------- charts

# Fixed Vega-Lite specs: rendering one costs a few ms, unlike st.line_chart's Altair rebuild.
_X = {"field": "step", "type": "quantitative", "title": "Iteration", "scale": {"domainMin": 0}}
ACCURACY_SPEC = {
    "height": 260,
    "transform": [{"fold": ["Train", "Validation"], "as": ["Accuracy of", "accuracy"]}],
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
