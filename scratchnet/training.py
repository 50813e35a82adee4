"""One training loop for every setting, and one function that runs a whole training.

The notebook's full-batch gradient descent is this loop with ``batch_size=None`` and
``optimizer="gd"``; mini-batch SGD, momentum and Adam differ only in those two settings, and a
convolutional net only in its ``layers``. :func:`train` is a generator so the CLI can print and
the Train page can chart the same records, and a caller stops it between steps through ``stop``
(a ``threading.Event``). :func:`run` wraps it into one training run: config and data in, the
trained network and ONE metadata document out; the CLI, the Train page's worker and the Draw
page's quick model all go through it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterator

import numpy as np

from scratchnet import architecture, optimizers
from scratchnet.errors import ConfigError, DataError
from scratchnet.fast import threads as fast_threads
from scratchnet.fast.pair import PairRunner
from scratchnet.fast.step import Step, augment_halves
from scratchnet.layers import ACTIVATIONS, Dense
from scratchnet.network import INITS, Network

# A mean cross-entropy this large means logits hundreds of units off: the run has blown up
# even if the numbers are still finite, and continuing only burns CPU.
DIVERGENCE_LOSS = 1e3
MAX_STEPS = 10_000_000
MAX_PARAMS = architecture.MAX_PARAMS
# Rows per chunk of a full-batch pass: a chunk's activations stay in cache between its forward
# and backward pass, so the training set streams from memory once per iteration, not twice.
# Convolutional nets use fewer rows, so that a chunk's buffers stay within FULL_BATCH_BYTES.
FULL_BATCH_CHUNK = 1024
FULL_BATCH_BYTES = 256 * 2**20
MAX_HISTORY = 500  # progress records kept in a model's metadata (evenly spaced over the run)


def _augment_parts(value) -> str:
    """The config's augmentation as a canonical string ("" for none, "affine+elastic", ...)."""
    from scratchnet.augment import parse_augment

    return "+".join(parse_augment(value))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run learns.

    ``layers`` is the architecture SPEC (:mod:`scratchnet.architecture`), e.g. ``dense256,dense128``
    or ``conv16-5,maxpool2,conv32-5,maxpool2,dense128``; ``hidden=(256, 128)`` is shorthand for
    an all-dense SPEC, and is filled in from ``layers`` when the SPEC is all dense (else None).
    """

    layers: str | None = None
    hidden: tuple[int, ...] | None = None
    activation: str = "relu"
    init: str = "he"
    optimizer: str = "adam"
    lr: float = 1e-3
    iterations: int | None = None
    epochs: float | None = None  # when neither is given: 10 epochs
    batch_size: int | None = 128
    l2: float = 0.0
    momentum: float = 0.9
    seed: int = 0
    augment: str = ""  # "" or parts joined by "+": affine, elastic, thickness, flag (True = affine)
    lr_schedule: str = "constant"  # or "cosine": decays to 0 at the last step
    eval_every: int | None = None

    def __post_init__(self):
        if self.iterations is None and self.epochs is None:
            object.__setattr__(self, "epochs", 10)
        spec = self.layers
        if spec is None:
            spec = tuple(self.hidden) if self.hidden is not None else (256, 128)
        try:
            spec = architecture.canonical(spec)
            hidden = architecture.hidden_units(spec)
        except ConfigError:  # kept as given; validate() says what is wrong with it
            spec = spec if isinstance(spec, str) else ",".join(map(str, spec))
            hidden = None
        object.__setattr__(self, "layers", spec)
        object.__setattr__(self, "hidden", hidden)
        try:
            object.__setattr__(self, "augment", _augment_parts(self.augment))
        except ConfigError:
            pass  # validate() explains

    def validate(self, n_train: int | None = None) -> None:
        """Refuse settings that cannot work, with the reason a user can act on."""
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"Unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}."
            )
        size = architecture.measure(self.layers, self.activation)  # SpecError names the bad token
        if size.n_params > MAX_PARAMS:
            raise ConfigError(
                f"The architecture {self.layers} has {size.n_params:,} parameters; at most "
                f"{MAX_PARAMS:,} are supported: use fewer or smaller layers."
            )
        if self.init not in INITS:
            raise ConfigError(f"Unknown weight init {self.init!r}; choose one of {', '.join(INITS)}.")
        if self.optimizer not in optimizers.OPTIMIZERS:
            raise ConfigError(
                f"Unknown optimizer {self.optimizer!r}; "
                f"choose one of {', '.join(optimizers.OPTIMIZERS)}."
            )
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"The learning rate must be a positive number, got {self.lr!r}.")
        if self.lr > 1e3:
            raise ConfigError(
                f"A learning rate of {self.lr:g} cannot train anything; try 0.1 for GD "
                "or 0.001 for Adam."
            )
        if (self.iterations is None) == (self.epochs is None):
            raise ConfigError("Give either a number of iterations or a number of epochs, not both.")
        if self.iterations is not None and not 1 <= int(self.iterations) <= MAX_STEPS:
            raise ConfigError(f"Iterations must be between 1 and {MAX_STEPS:,}.")
        if self.epochs is not None and not 0 < float(self.epochs) <= 10_000:
            raise ConfigError("Epochs must be more than 0 and at most 10,000.")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise ConfigError("The batch size must be at least 1.")
        rows = chunk_rows(size.bytes_per_row) if self.batch_size is None else int(self.batch_size)
        if rows * size.bytes_per_row > architecture.MAX_BATCH_BYTES:
            most = max(1, architecture.MAX_BATCH_BYTES // size.bytes_per_row)
            raise ConfigError(
                f"A batch of {rows:,} digits through {self.layers} needs "
                f"{rows * size.bytes_per_row / 2**30:.1f} GB of working memory; use a batch of at "
                f"most {most:,}, or fewer filters."
            )
        if n_train is not None:
            if n_train < 1:
                raise ConfigError("There is no training data.")
            if self.batch_size is not None and self.batch_size > n_train:
                raise ConfigError(
                    f"The batch size ({self.batch_size:,}) is larger than the training set "
                    f"({n_train:,} digits); use at most {n_train:,}, or full batch."
                )
        if not (math.isfinite(self.l2) and 0 <= self.l2 < 1):
            raise ConfigError("L2 regularisation must be between 0 and 1.")
        if not 0 <= self.momentum < 1:
            raise ConfigError("Momentum must be at least 0 and below 1.")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError("The learning-rate schedule must be 'constant' or 'cosine'.")
        if self.eval_every is not None and int(self.eval_every) < 1:
            raise ConfigError("Report progress at least every 1 step.")
        _augment_parts(self.augment)

    def total_steps(self, n_train: int) -> int:
        if self.iterations is not None:
            return int(self.iterations)
        return max(1, math.ceil(float(self.epochs) * self.steps_per_epoch(n_train)))

    def steps_per_epoch(self, n_train: int) -> int:
        bs = self.effective_batch_size(n_train)
        return math.ceil(n_train / bs)

    def effective_batch_size(self, n_train: int) -> int:
        return n_train if self.batch_size is None else min(int(self.batch_size), n_train)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden) if self.hidden is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """From :meth:`to_dict` output, including older records that only had ``hidden``."""
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if kw.get("layers"):
            kw.pop("hidden", None)
        elif kw.get("hidden") is not None:
            kw["hidden"] = tuple(int(h) for h in kw["hidden"])
        return cls(**kw)

    def replace(self, **kw) -> "TrainConfig":
        """A copy with some settings changed; ``hidden=`` changes the architecture too."""
        if "hidden" in kw and "layers" not in kw:
            kw["layers"] = None
        elif "layers" in kw:
            kw["hidden"] = None
        return dataclasses.replace(self, **kw)


PRESETS: dict[str, TrainConfig] = {
    # The teaching notebook, exactly: 784-10-10, uniform [-0.5, 0.5) init, full-batch GD.
    "notebook": TrainConfig(
        layers="dense10", activation="relu", init="notebook", optimizer="gd", lr=0.1,
        iterations=500, epochs=None, batch_size=None,
    ),
    # The live-demo setting: a wider MLP with Adam on mini-batches, augmented so it reads drawings:
    # shifted, turned and scaled digits, and 1s drawn with a flag and a foot, as many people do.
    "fast": TrainConfig(
        layers="dense256,dense128", activation="relu", init="he", optimizer="adam", lr=1e-3,
        iterations=None, epochs=10, batch_size=128, augment="affine+flag", lr_schedule="cosine",
    ),
    # Reads people best: a small convolutional net (LeNet-like), a few minutes of training.
    "best": TrainConfig(
        layers="conv16-5,maxpool2,conv32-5,maxpool2,dense128", activation="relu", init="he",
        optimizer="adam", lr=1e-3, iterations=None, epochs=12, batch_size=128, augment="affine+flag",
        lr_schedule="cosine",
    ),
}


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int
    epoch: float
    loss: float
    train_accuracy: float
    val_accuracy: float | None
    seconds: float
    status: str = "running"  # "running" | "finished" | "stopped" | "diverged"
    message: str = ""

    @property
    def done(self) -> bool:
        return self.status != "running"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def build_network(config: TrainConfig, n_inputs: int = 784, n_classes: int = 10) -> Network:
    """The untrained network of ``config`` (its layers, initialised from its seed)."""
    if n_inputs != 784:
        raise DataError(f"Training data must have 784 pixels per row (28x28), got {n_inputs}.")
    layers, input_shape = architecture.build(config.layers, config.activation, n_classes)
    return Network(None, config.activation, config.init, seed=config.seed, layers=layers, input_shape=input_shape)


def chunk_rows(bytes_per_row: int) -> int:
    """Rows per chunk of a full-batch pass for a network needing ``bytes_per_row``."""
    return max(16, min(FULL_BATCH_CHUNK, FULL_BATCH_BYTES // max(1, bytes_per_row)))


def _lr_at(config: TrainConfig, step: int, total: int) -> float:
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * step / total))
    return config.lr


def train(
    net: Network,
    X: np.ndarray,
    y: np.ndarray,
    config: TrainConfig,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    *,
    stop=None,
    rng: np.random.Generator | None = None,
    stats: dict | None = None,
    val_every: int = 1,
) -> Iterator[Progress]:
    """Train ``net`` in place, yielding a :class:`Progress` every ``eval_every`` steps.

    Validation accuracy is measured on the first record, every ``val_every``-th after it and
    the last; the others carry ``val_accuracy=None``. That lets a live chart get a record a few
    times a second from a network whose validation pass costs many training steps.
    The last record always has ``status != "running"``. If the loss stops being finite (or
    explodes past ``DIVERGENCE_LOSS``), the parameters of the last good record are restored,
    so a diverged run never leaves NaN weights behind.

    Each step is the network's own layers (``net.forward_backward`` and the layers'
    ``param_grads``); :class:`scratchnet.fast.step.Step` only shares that work between cores.
    Each mini-batch is gathered into one reused buffer, the optimizer updates all parameters as
    one flat array, and BLAS gets the number of threads that is faster for this batch size
    (never more than the caller allowed). ``stats``, if given, receives how the steps used the
    cores (see :class:`scratchnet.fast.threads.ThreadChoice`).
    """
    n = len(X)
    config.validate(n_train=n)
    if X.dtype != np.float32 or X.ndim != 2 or X.shape[1] != 784:
        raise ConfigError("Training data must be float32 rows of 784 pixels in [0, 1].")
    rng = rng if rng is not None else np.random.default_rng(config.seed)
    y = np.asarray(y)
    if len(y) != n:
        raise DataError(f"There are {n:,} images but {len(y):,} labels.")
    k = net.n_classes
    if y.min() < 0 or y.max() >= k:
        raise DataError(f"Labels must be whole numbers from 0 to {k - 1}; found {int(y.max())}.")
    bs = config.effective_batch_size(n)
    full_batch = bs == n
    steps_per_epoch = config.steps_per_epoch(n)
    total = config.total_steps(n)
    eval_every = int(config.eval_every or (10 if config.iterations is not None else steps_per_epoch))
    if int(val_every) < 1:
        raise ConfigError(f"val_every must be at least 1, got {val_every}.")
    flat = net.flat_params()
    controller = fast_threads.blas_controller()
    cores = fast_threads.cores_allowed(controller)
    runner = PairRunner() if cores >= 2 else None
    capacity = min(bs, chunk_rows(net.bytes_per_row())) if full_batch else bs
    step_runner = Step(net, capacity, runner)
    first = net.layers[0]
    if isinstance(first, Dense):  # augmentation keeps pixels >= 0: blank columns by maxima alone
        first.nonnegative = not full_batch and bool(X.min() >= 0)
    threads = None
    if runner is not None and not full_batch and bs * net.macs_per_row() >= fast_threads.THREAD_CHOICE_MIN_MACS:
        blas = controller.select(user_api="blas").lib_controllers
        threads = fast_threads.ThreadChoice(step_runner, runner, blas, cores,
                                            os.environ.get("SCRATCHNET_THREADS", "auto"))
    opt = optimizers.make(config.optimizer, [flat], config.lr, config.momentum)
    augment = None
    if config.augment:
        from scratchnet.augment import augment_batch, parse_augment

        parts = parse_augment(config.augment)

        def augment(Xb, yb, gen):
            augment_batch(Xb, gen, y=yb, parts=parts, out=Xb)

    X_in = X.reshape(n, *net.input_shape)  # a view: conv nets read rows as 28x28 images
    Xb_buf = np.empty((bs, *net.input_shape), np.float32) if not full_batch or augment else None
    yb_buf = np.empty(bs, np.intp)
    y_idx = y.astype(np.intp, copy=False)
    good = flat.copy()  # last parameters known to give a finite loss
    loss_sum = 0.0
    correct = 0
    seen = 0
    order = np.arange(n)
    start = time.perf_counter()
    paused = 0.0  # time the caller held a record: drawing charts is not training time
    records = 0

    def record(step: int, status: str = "running", message: str = "") -> Progress:
        nonlocal loss_sum, correct, seen, records
        validate = status != "running" or records % int(val_every) == 0
        records += 1
        val = net.accuracy(X_val, y_val) if validate and X_val is not None and len(X_val) else None
        p = Progress(
            step=step,
            total_steps=total,
            epoch=step / steps_per_epoch,
            loss=loss_sum / seen if seen else float("nan"),
            train_accuracy=correct / seen if seen else float("nan"),
            val_accuracy=val,
            seconds=time.perf_counter() - start - paused,
            status=status,
            message=message,
        )
        loss_sum, correct, seen = 0.0, 0, 0
        return p

    def _loop() -> Iterator[Progress]:
        nonlocal loss_sum, correct, seen, order, paused
        step = 0
        while step < total:
            segment_end = min(total, (step // eval_every + 1) * eval_every)
            outcome = ""
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
                    fast_threads.limit(controller, 1 if runner is not None else None), net._lock:
                while step < segment_end:
                    if stop is not None and stop.is_set():
                        outcome = "stopped"
                        break
                    if threads is not None:
                        threads.tick(step)
                    pos = step % steps_per_epoch
                    if full_batch:
                        Xb, yb = X_in, y_idx
                        if augment is not None:
                            Xb = Xb_buf
                            np.copyto(Xb, X_in)
                            augment_halves(augment, Xb.reshape(n, 784), yb, rng, step_runner.runner)
                    else:
                        if pos == 0:
                            order = rng.permutation(n)
                        idx = order[pos * bs : (pos + 1) * bs]
                        m = len(idx)
                        Xb = Xb_buf[:m]
                        yb = yb_buf[:m]
                        np.take(X_in, idx, axis=0, out=Xb, mode="clip")  # mode="raise" is 5x slower
                        np.take(y_idx, idx, out=yb, mode="clip")
                        if augment is not None:
                            augment_halves(augment, Xb.reshape(m, 784), yb, rng, step_runner.runner)
                    if len(yb) > capacity:  # full batch, in chunks
                        loss, n_correct = step_runner.loss_and_grads(Xb, yb, config.l2)
                    else:
                        loss, n_correct = step_runner.forward_backward(Xb, yb)
                    if not math.isfinite(loss) or loss > DIVERGENCE_LOSS:
                        outcome = "diverged"
                        break
                    opt.lr = _lr_at(config, step, total)
                    opt.begin_step()
                    if len(yb) > capacity:
                        opt.update(0, step_runner.grad_flat, 0, len(flat))
                    else:  # gradients and update together, each half of the parameters on a core
                        step_runner.backward_update(config.l2, opt)
                    loss_sum += loss * len(yb)
                    correct += n_correct
                    seen += len(yb)
                    step += 1
                if threads is not None:
                    threads.end(step)  # before the BLAS limit is restored and the caller runs
            if outcome == "stopped":
                yield record(step, "stopped", f"Stopped at iteration {step:,} of {total:,}.")
                return
            if outcome == "diverged":
                flat[...] = good
                what = "became infinite or NaN" if not math.isfinite(loss) else f"exploded to {loss:.3g}"
                yield record(
                    step,
                    "diverged",
                    f"Training diverged at iteration {step + 1:,}: the loss {what}. The learning rate "
                    f"({config.lr:g}) is too large for this setting; try {config.lr / 10:g} or smaller. "
                    "The last good weights were kept.",
                )
                return
            if not np.isfinite(flat).all():
                flat[...] = good
                yield record(
                    step,
                    "diverged",
                    f"Training diverged at iteration {step:,}: the weights became infinite or "
                    f"NaN. Try a learning rate below {config.lr:g}. The last good weights were kept.",
                )
                return
            good[...] = flat
            rec = record(step, "finished" if step == total else "running")
            handed = time.perf_counter()
            yield rec
            paused += time.perf_counter() - handed

    try:
        yield from _loop()
    finally:
        if runner is not None:
            runner.close()
        if isinstance(first, Dense):
            first.nonnegative = False  # other callers may pass anything
        if stats is not None and threads is not None:
            stats.update(threads.summary())


def fit(config: TrainConfig, X, y, X_val=None, y_val=None, **kw) -> tuple[Network, list[Progress]]:
    """Build a network for ``config`` and train it to the end; handy for tests and scripts."""
    net = build_network(config, n_inputs=X.shape[1])
    history = list(train(net, X, y, config, X_val, y_val, **kw))
    return net, history


# --------------------------------------------------------------------------- one training run


class PointBuffer:
    """At most ``limit`` evenly spaced items from an unbounded stream, O(1) per item.

    Keeps every ``stride``-th item; when full, drops every other kept item and doubles the
    stride. The result always spans the whole run with uniform spacing.
    """

    def __init__(self, limit: int = MAX_HISTORY):
        if limit < 2:
            raise ValueError("PointBuffer needs room for at least 2 points")
        self.limit = limit
        self.stride = 1
        self._seen = 0
        self.items: list = []

    def add(self, item) -> None:
        if self._seen % self.stride == 0:
            self.items.append(item)
            if len(self.items) > self.limit:
                del self.items[1::2]
                self.stride *= 2
        self._seen += 1

    def __len__(self) -> int:
        return len(self.items)


HISTORY_FIELDS = ("step", "epoch", "loss", "train_accuracy", "val_accuracy", "seconds")


def _finite(x):
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def history_point(p: Progress) -> dict:
    return {k: _finite(getattr(p, k)) if k != "step" else p.step for k in HISTORY_FIELDS}


@dataclass
class RunResult:
    """What one training run produced: the network and its one metadata document."""

    net: Network
    metadata: dict
    last: Progress | None
    accepted: int = 0  # progress records whose weights were accepted as finite

    @property
    def status(self) -> str:
        return self.metadata["status"]

    @property
    def learned(self) -> bool:
        """Did the run leave weights worth saving (some steps taken, all finite)?"""
        last = self.last
        if last is None or last.step == 0:
            return False
        if self.status == "diverged" and not self.accepted:
            return False  # nothing finite was ever accepted
        return all(np.isfinite(a).all() for a in self.net.params())


def dataset_meta(ds) -> dict:
    return {
        "name": getattr(ds, "name", "unknown"),
        "n_train": int(len(ds.X_train)),
        "n_val": 0 if ds.X_val is None else int(len(ds.X_val)),
        "n_test": 0 if getattr(ds, "X_test", None) is None else int(len(ds.X_test)),
        "description": getattr(ds, "description", ""),
    }


def run(
    config: TrainConfig,
    dataset,
    *,
    stop=None,
    on_progress: Callable[[Progress], None] | None = None,
    preset: str | None = None,
    source: str = "",
    net: Network | None = None,
    extra: dict | None = None,
    catch_interrupt: bool = False,
    stats: dict | None = None,
    val_every: int = 1,
) -> RunResult:
    """Train ``config`` on ``dataset`` (a :class:`scratchnet.datasets.Dataset`) to the end.

    Calls ``on_progress`` with every record as it comes. Returns the network and the metadata
    a model file stores: config, dataset, metrics (validation and test accuracy, time, steps),
    up to ``MAX_HISTORY`` evenly spaced progress records, status and where it came from
    (``source``: "cli", "train-page", "quick-model", ...). ``extra`` adds fields (the Train
    page's extra data, say). With ``catch_interrupt`` a KeyboardInterrupt ends the run as
    "stopped" instead of propagating (the CLI outside the main thread). ``val_every``: see
    :func:`train`.
    """
    ds = dataset
    config.validate(n_train=len(ds.X_train))
    net = net if net is not None else build_network(config, n_inputs=ds.X_train.shape[1])
    points = PointBuffer(MAX_HISTORY)
    last = None
    accepted = 0  # records whose weights the loop accepted as finite
    interrupted = False
    try:
        for p in train(net, ds.X_train, ds.y_train, config, ds.X_val, ds.y_val, stop=stop, stats=stats,
                       val_every=val_every):
            last = p
            accepted += p.status in ("running", "finished")
            points.add(p)
            if on_progress is not None:
                on_progress(p)
    except KeyboardInterrupt:
        if not catch_interrupt:
            raise
        interrupted = True
    status = "stopped" if interrupted or last is None else last.status
    test_acc = None
    if last is not None and status != "diverged" and getattr(ds, "X_test", None) is not None and len(ds.X_test):
        test_acc = net.accuracy(ds.X_test, ds.y_test)
    kept = [history_point(p) for p in points.items]
    if last is not None and (not kept or kept[-1]["step"] != last.step):
        kept.append(history_point(last))
    meta = {
        "config": config.to_dict(),
        "architecture": config.layers,
        "dataset": dataset_meta(ds),
        "metrics": {
            "val_accuracy": _finite(last.val_accuracy) if last else None,
            "test_accuracy": test_acc,
            "train_accuracy": _finite(last.train_accuracy) if last else None,
            "loss": _finite(last.loss) if last else None,
            "train_seconds": last.seconds if last else 0.0,
            "steps": last.step if last else 0,
            "epochs": last.epoch if last else 0.0,
            "status": status,
        },
        "history": kept,
        "status": status,
        "message": last.message if last is not None else "",
        "source": source,
        "notes": list(getattr(ds, "notes", []) or []),
        "preprocessing": "mnist-28x28-float01",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if preset:
        meta["preset"] = preset
    if extra:
        meta.update(extra)
    return RunResult(net, meta, last, accepted)
