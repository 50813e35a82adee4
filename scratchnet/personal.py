"""Teach a model one person's handwriting: a few corrected drawings, a few seconds of fine-tuning.

Every writer has habits MNIST lacks. Given some of their drawings with the right labels, we train
a copy of the model a little more (a small learning rate, a bounded number of steps) on a
mixture: in every step, replayed MNIST digits (so it does not forget how everybody else writes)
and augmented copies of the writer's drawings. It is the same training loop as any other
(``training.run``): the mixture is simply its data set.

The figures are honest. "Before" is the base model on the drawings, which it never saw. "After"
is cross-validated: the drawings are split into folds, and each drawing is read by a model tuned
on the other folds only, never by one that trained on it. The model handed back is then tuned on
all of them. If it reads MNIST's validation digits more than ``MAX_VAL_DROP`` worse than the
base, it is refused and the base is kept: a personal model must not forget everybody else.
"""

from __future__ import annotations

import base64
import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from scratchnet.errors import ConfigError, DataError
from scratchnet.network import Network
from scratchnet.training import Progress, TrainConfig, run, train

STEPS = 60  # fine-tuning steps (each a batch of replayed digits + copies of the drawings)
LR = 3e-4  # Adam; under a third of a fresh training's 1e-3 (decaying to 0), so the model moves, but not far
REPLAY = 96  # replayed training digits per step
COPIES = 4  # augmented copies of each drawing per step ...
MAX_DRAWING_ROWS = 64  # ... up to this many drawing rows per step (see copies_per_step)
SCHEDULE = "cosine"  # the last steps move the least
FOLDS = 5  # cross-validation folds for the "after" figure (leave-one-out below that many drawings)
MAX_VAL_DROP = 0.01  # refuse a personal model that reads validation digits this much worse
MAX_STEPS = 1000
MAX_DRAWINGS = 2000


@dataclass
class Personal:
    """A fine-tuning's outcome: the model to use and the figures that say whether it helped."""

    net: Network  # the personal model; the base itself when refused
    metadata: dict  # the personal model's metadata document (training.run's, plus "personal")
    refused: bool
    message: str  # one sentence for the user
    n_drawings: int
    drawings_before: float  # the base model on the drawings (it never saw them)
    drawings_after: float | None  # cross-validated; None with a single drawing
    val_before: float | None  # MNIST validation accuracy of the base ...
    val_after: float | None  # ... and of the personal model
    predicted_before: np.ndarray  # (n,) the base's reading of each drawing
    predicted_after: np.ndarray  # (n,) each drawing read by a model tuned without it
    labels: np.ndarray
    train_seconds: float
    steps: int

    @property
    def fixed(self) -> np.ndarray:
        """Drawings the base got wrong and the personal model (cross-validated) reads right."""
        return np.flatnonzero((self.predicted_before != self.labels) & (self.predicted_after == self.labels))

    @property
    def broken(self) -> np.ndarray:
        """Drawings the base read right and the personal model (cross-validated) reads wrong."""
        return np.flatnonzero((self.predicted_before == self.labels) & (self.predicted_after != self.labels))

    def summary(self) -> dict:
        return {
            "refused": self.refused, "message": self.message, "n_drawings": self.n_drawings,
            "drawings_before": self.drawings_before, "drawings_after": self.drawings_after,
            "val_before": self.val_before, "val_after": self.val_after,
            "train_seconds": round(self.train_seconds, 3), "steps": self.steps,
        }


def copies_per_step(y: np.ndarray) -> np.ndarray:
    """How many augmented copies of each drawing a step holds (on average; may be fractional).

    COPIES each, at most MAX_DRAWING_ROWS in all, and at most REPLAY/10 of any one digit: ten
    corrections of the same digit must not teach the model that every digit is that one.
    """
    y = np.asarray(y)
    per_class = np.bincount(y, minlength=10)[y]
    return np.minimum.reduce([np.full(len(y), float(COPIES)), np.full(len(y), MAX_DRAWING_ROWS / len(y)),
                              (REPLAY / 10) / per_class])


def check_drawings(X, y) -> tuple[np.ndarray, np.ndarray]:
    """Drawings as (n, 784) float32 in [0, 1] with int64 labels 0-9, or DataError saying what is wrong."""
    X = np.asarray(X, np.float32).reshape(len(X), -1) if len(X) else np.zeros((0, 784), np.float32)
    y = np.asarray(y)
    if len(X) == 0:
        raise DataError("There are no drawings to learn from.")
    if len(X) > MAX_DRAWINGS:
        raise DataError(f"{len(X):,} drawings are more than fine-tuning takes ({MAX_DRAWINGS:,}).")
    if X.shape[1] != 784 or y.shape != (len(X),):
        raise DataError(f"Drawings must be 28x28 images with one label each, got {X.shape} and {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 9:
        raise DataError("Each drawing's label must be a digit from 0 to 9.")
    if not np.isfinite(X).all() or X.min() < 0 or X.max() > 1:
        raise DataError("Drawings must hold pixel values from 0 to 1.")
    return X, y.astype(np.int64)


def config_for(base: Network, base_meta: dict | None, y, *, steps: int = STEPS,
               lr: float = LR, seed: int = 0) -> TrainConfig:
    """The fine-tuning run: the base's layers and augmentation, Adam, a small rate, few steps."""
    if not 1 <= int(steps) <= MAX_STEPS:
        raise ConfigError(f"Fine-tuning takes 1 to {MAX_STEPS:,} steps, not {steps}.")
    augment = "affine"
    cfg = (base_meta or {}).get("config")
    if isinstance(cfg, dict):
        try:
            augment = TrainConfig.from_dict(cfg).augment or augment
        except (ConfigError, TypeError, ValueError):
            pass
    rows = REPLAY + max(1, int(round(copies_per_step(y).sum())))
    return TrainConfig(layers=base.architecture, activation=base.activation, optimizer="adam", lr=lr,
                       iterations=int(steps), epochs=None, batch_size=rows, augment=augment,
                       lr_schedule=SCHEDULE, seed=seed, eval_every=max(1, int(steps) // 4))


def mixture(X, y, dataset, config: TrainConfig, rng: np.random.Generator):
    """One epoch of ``config`` steps: replayed digits plus copies of the drawings.

    On average each step's batch holds the copies of :func:`copies_per_step` (augmentation makes
    every copy different) and replayed training digits chosen so that every digit is equally
    common, as in MNIST: the drawings teach a style, not a preference for one digit.
    """
    steps, batch = int(config.iterations), int(config.batch_size)
    total = steps * batch
    reps = np.maximum(1, np.rint(copies_per_step(y) * steps)).astype(np.int64)
    drawn = np.repeat(np.arange(len(y)), reps)
    want = np.full(10, total // 10) + (np.arange(10) < total % 10)
    replay_per_class = np.maximum(0, want - np.bincount(y[drawn], minlength=10))
    y_train = np.asarray(dataset.y_train)
    replay = []
    for c, k in enumerate(replay_per_class):
        pool = np.flatnonzero(y_train == c)
        if k and len(pool):
            replay.append(rng.choice(pool, k, replace=k > len(pool)))
    replay = np.concatenate(replay) if replay else np.zeros(0, np.int64)
    Xm = np.concatenate([dataset.X_train[replay], X[drawn]]).astype(np.float32, copy=False)
    ym = np.concatenate([y_train[replay].astype(np.int64), y[drawn]])
    return Xm, ym


def _folds(n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i::k] for i in range(k)]


def finetune(
    base: Network,
    X,
    y,
    dataset,
    *,
    base_meta: dict | None = None,
    base_name: str | None = None,
    steps: int = STEPS,
    lr: float = LR,
    seed: int = 0,
    folds: int = FOLDS,
    stop=None,
    on_progress: Callable[[Progress], None] | None = None,
    source: str = "personal",
    drawings_meta: dict | None = None,
) -> Personal:
    """Tune a copy of ``base`` on drawings ``X`` (n, 784) float32 in [0, 1] with labels ``y``.

    ``dataset`` supplies the replayed digits (``X_train``) and the validation (and test) digits.
    ``base`` is never changed. ``on_progress`` gets Progress records over all the runs (the
    cross-validation folds, then the final one). Raises DataError for unusable drawings.
    """
    X, y = check_drawings(X, y)
    n = len(X)
    config = config_for(base, base_meta, y, steps=steps, lr=lr, seed=seed)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    k = min(int(folds), n) if n > 1 else 0
    total = (k + 1) * config.iterations
    done = [0]

    def relay(p: Progress) -> None:
        if on_progress is not None:
            on_progress(Progress(done[0] + p.step, total, (done[0] + p.step) / total, p.loss,
                                 p.train_accuracy, p.val_accuracy, time.perf_counter() - start,
                                 "running", "Cross-validating" if done[0] < k * config.iterations else ""))

    predicted_before = base.predict(X)
    predicted_after = predicted_before.copy()
    for fold in _folds(n, k, rng) if k else []:
        keep = np.setdiff1d(np.arange(n), fold)
        net = base.copy()
        cfg = config_for(base, base_meta, y[keep], steps=steps, lr=lr, seed=seed)
        Xm, ym = mixture(X[keep], y[keep], dataset, cfg, rng)
        last = None
        for p in train(net, Xm, ym, cfg, stop=stop, rng=rng):
            last = p
            relay(p)
        if last is None or last.status != "finished":
            return _ended(base, base_meta, X, y, last, predicted_before, start, config)
        predicted_after[fold] = net.predict(X[fold])
        done[0] += config.iterations

    Xm, ym = mixture(X, y, dataset, config, rng)
    from scratchnet.datasets import Dataset

    # validation is read once, below, not at every progress record; the test set once, by run()
    mixed = Dataset(f"{getattr(dataset, 'name', 'data')}+drawings", Xm, ym, None, None,
                    getattr(dataset, "X_test", None), getattr(dataset, "y_test", None),
                    f"{n} drawings mixed with replayed digits of {getattr(dataset, 'description', 'the data')}",
                    list(getattr(dataset, "notes", []) or []))
    result = run(config, mixed, stop=stop, on_progress=relay, source=source, net=base.copy())
    if result.status != "finished":
        return _ended(base, base_meta, X, y, result.last, predicted_before, start, config)
    has_val = dataset.X_val is not None and len(dataset.X_val) > 0
    val_before = base.accuracy(dataset.X_val, dataset.y_val) if has_val else None
    val_after = result.net.accuracy(dataset.X_val, dataset.y_val) if has_val else None
    result.metadata["metrics"]["val_accuracy"] = val_after
    result.metadata["dataset"].update(n_val=0 if not has_val else len(dataset.X_val))
    seconds = time.perf_counter() - start
    before = float((predicted_before == y).mean())
    after = float((predicted_after == y).mean()) if k else None
    refused = val_before is not None and val_after is not None and val_after < val_before - MAX_VAL_DROP
    if refused:
        message = (f"Fine-tuning was refused: it lowered accuracy on MNIST's validation digits from "
                   f"{val_before:.1%} to {val_after:.1%}, so the base model was kept.")
    elif after is None:
        message = (f"Learned from 1 drawing; with a single drawing there is none left to check it on "
                   f"(validation digits {_pct(val_before)} -> {_pct(val_after)}).")
    else:
        message = (f"Learned from {n} drawings: it now reads {after:.0%} of them right (cross-checked: "
                   f"each read by a model that did not learn from it), up from {before:.0%}.")
    personal = {
        "base": base_name, "base_architecture": base.architecture,
        "base_metrics": (base_meta or {}).get("metrics"),
        "n_drawings": n, "drawings_before": before, "drawings_after": after,
        "val_before": val_before, "val_after": val_after, "folds": k, "steps": config.iterations,
        "lr": config.lr, "refused": refused,
        "drawings": encode_drawings(X, y) | (drawings_meta or {}),
    }
    meta = dict(result.metadata)
    meta["personal"] = personal
    meta["source"] = source
    if (base_meta or {}).get("preset"):
        meta["preset"] = base_meta["preset"]
    return Personal(base if refused else result.net, meta, refused, message, n, before, after, val_before,
                    val_after, predicted_before, predicted_after, y, seconds, config.iterations * (k + 1))


def _pct(x) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _ended(base, base_meta, X, y, last, predicted_before, start, config) -> Personal:
    """Stopped (or diverged) part-way: nothing to hand back but the base."""
    status = "stopped" if last is None else last.status
    what = "was stopped" if status == "stopped" else "diverged"
    message = f"Fine-tuning {what} before it finished, so the base model was kept."
    before = float((predicted_before == y).mean())
    return Personal(base, dict(base_meta or {}), True, message, len(X), before, None, None, None,
                    predicted_before, predicted_before.copy(), y, time.perf_counter() - start, 0)


# --------------------------------------------------------------------------- drawings in metadata


MAX_STORED_DRAWINGS = 500  # ~0.5 MB of metadata at most


def encode_drawings(X: np.ndarray, y: np.ndarray) -> dict:
    """The drawings as compact text for a model's metadata (Inspect shows what it learned from)."""
    X = np.asarray(X)[:MAX_STORED_DRAWINGS]
    pixels = np.clip(np.rint(X * 255), 0, 255).astype(np.uint8).reshape(len(X), 784)
    return {"labels": [int(v) for v in np.asarray(y)[:MAX_STORED_DRAWINGS]],
            "pixels": [base64.b64encode(row.tobytes()).decode("ascii") for row in pixels],
            "total": int(len(y))}


def decode_drawings(meta: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """(X (n, 784) float32, y) from :func:`encode_drawings`; entries that do not decode are skipped."""
    d = ((meta or {}).get("personal") or {}).get("drawings") or {}
    labels, pixels = d.get("labels") or [], d.get("pixels") or []
    xs, ys = [], []
    if isinstance(labels, list) and isinstance(pixels, list):
        for label, text in zip(labels, pixels):
            try:
                row = np.frombuffer(base64.b64decode(text, validate=True), np.uint8)
            except (ValueError, TypeError):
                continue
            if row.size == 784 and isinstance(label, int) and 0 <= label <= 9:
                xs.append(row.astype(np.float32) / 255)
                ys.append(label)
    X = np.asarray(xs, np.float32).reshape(len(xs), 784)
    return X, np.asarray(ys, np.int64)


# --------------------------------------------------------------------------- a folder of drawings


def load_drawings(directory) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A folder's drawings: ``labels.csv`` (at least ``filename,label``) and images beside it.

    Images in any format Pillow reads go through the app's preprocessing; the app's own stored
    28x28 drawings (grey, white ink on black) are used as they are. Filenames must stay inside the
    folder (no ``..``, no absolute paths, no symlinks out). Anything wrong raises DataError naming
    the row.
    """
    from PIL import Image

    from scratchnet.feedback import to_input
    from scratchnet.imaging import load_image

    root = Path(directory).expanduser()
    if not root.is_dir():
        raise DataError(f"{str(directory)!r} is not a folder.")
    root = root.resolve()
    labels_path = root / "labels.csv"
    if not labels_path.is_file():
        raise DataError(f"{str(directory)!r} has no labels.csv (columns filename,label).")
    try:
        with open(labels_path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"labels.csv cannot be read: {exc}.") from None
    if rows and not {"filename", "label"} <= set(rows[0].keys() or []):
        raise DataError("labels.csv needs the columns filename and label.")
    if not rows:
        raise DataError(f"{str(directory)!r} holds no drawings: labels.csv has no rows.")
    if len(rows) > MAX_DRAWINGS:
        raise DataError(f"labels.csv lists {len(rows):,} drawings; fine-tuning takes at most {MAX_DRAWINGS:,}.")
    xs, ys, names = [], [], []
    for line, row in enumerate(rows, start=2):
        name, label = (row.get("filename") or "").strip(), (row.get("label") or "").strip()
        if not (label.isascii() and label.isdigit() and len(label) == 1):
            raise DataError(f"labels.csv line {line}: the label {label[:12]!r} is not a digit from 0 to 9.")
        if not name:
            raise DataError(f"labels.csv line {line}: the filename is empty.")
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise DataError(f"labels.csv line {line}: {name!r} leaves the folder; filenames must be inside it.")
        path = root / rel
        try:
            real = path.resolve(strict=True)
        except FileNotFoundError:
            raise DataError(f"labels.csv line {line}: {name!r} does not exist.") from None
        except (OSError, RuntimeError):
            raise DataError(f"labels.csv line {line}: {name!r} cannot be opened.") from None
        if root not in real.parents:
            raise DataError(f"labels.csv line {line}: {name!r} points outside the folder.")
        if not real.is_file():
            raise DataError(f"labels.csv line {line}: {name!r} is not a file.")
        try:
            image = load_image(real)
            x = _as_is(image)
            if x is None:
                x = to_input(image)
        except DataError as exc:
            raise DataError(f"labels.csv line {line}: {name!r}: {exc}") from None
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"labels.csv line {line}: {name!r} is not a readable image ({exc}).") from None
        xs.append(np.asarray(x, np.float32).reshape(784))
        ys.append(int(label))
        names.append(name)
    return np.asarray(xs, np.float32), np.asarray(ys, np.int64), names


def _as_is(image) -> np.ndarray | None:
    """The app's own stored drawings (28x28 grey, white ink on a black border): the very pixels the
    network saw, used as they are; anything else goes through the usual preprocessing."""
    if image.size != (28, 28) or image.mode != "L":
        return None
    x = np.asarray(image, np.float32) / 255
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    return x if border.mean() < 0.1 else None


def personal_name(base_name: str | None, when=None) -> str:
    """``<base>-personal-<date>``, within the store's 64 characters."""
    from datetime import datetime

    when = when or datetime.now()
    tail = f"-personal-{when:%Y-%m-%d}"
    base = (base_name or "model")[: 64 - len(tail)]
    return base + tail
