"""One training loop for every setting, yielding progress as it goes.

The notebook's full-batch gradient descent is this loop with ``batch_size=None`` and
``optimizer="gd"``; mini-batch SGD, momentum and Adam differ only in those two settings. The loop
is a generator so the CLI can print and the Train page can chart the same records, and a caller
stops it between steps through ``stop`` (a ``threading.Event``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from scratchnet import optimizers
from scratchnet.errors import ConfigError, DataError
from scratchnet.network import INITS, Network, PairRunner, Workspace
from scratchnet.activations import ACTIVATIONS

# A mean cross-entropy this large means logits hundreds of units off: the run has blown up
# even if the numbers are still finite, and continuing only burns CPU.
DIVERGENCE_LOSS = 1e3
MAX_STEPS = 10_000_000
# Same bound as scratchnet.store.MAX_PARAMS: a bigger network could be trained (for hours) but its
# model file would then be refused on loading.
MAX_PARAMS = 25_000_000


@dataclass(frozen=True)
class TrainConfig:
    hidden: tuple[int, ...] = (256, 128)
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
    augment: bool = False
    lr_schedule: str = "constant"  # or "cosine": decays to 0 at the last step
    eval_every: int | None = None

    def __post_init__(self):
        if self.iterations is None and self.epochs is None:
            object.__setattr__(self, "epochs", 10)
        object.__setattr__(self, "hidden", tuple(self.hidden))

    def validate(self, n_train: int | None = None) -> None:
        """Refuse settings that cannot work, with the reason a user can act on."""
        if not self.hidden or any(int(h) < 1 or int(h) > 4096 for h in self.hidden):
            raise ConfigError("Hidden layer sizes must be whole numbers from 1 to 4096.")
        if len(self.hidden) > 8:
            raise ConfigError("At most 8 hidden layers are supported.")
        sizes = (784, *(int(h) for h in self.hidden), 10)
        n_params = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
        if n_params > MAX_PARAMS:
            raise ConfigError(
                f"Hidden layers {', '.join(str(int(h)) for h in self.hidden)} make {n_params:,} parameters; "
                f"at most {MAX_PARAMS:,} are supported: use fewer or smaller layers."
            )
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"Unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}."
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
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "hidden" in kw:
            kw["hidden"] = tuple(int(h) for h in kw["hidden"])
        return cls(**kw)

    def replace(self, **kw) -> "TrainConfig":
        return dataclasses.replace(self, **kw)


PRESETS: dict[str, TrainConfig] = {
    # The teaching notebook, exactly: 784-10-10, uniform [-0.5, 0.5) init, full-batch GD.
    "notebook": TrainConfig(
        hidden=(10,), activation="relu", init="notebook", optimizer="gd", lr=0.1,
        iterations=500, epochs=None, batch_size=None,
    ),
    # The live-demo setting: a wider MLP with Adam on mini-batches, augmented so it reads drawings.
    "fast": TrainConfig(
        hidden=(256, 128), activation="relu", init="he", optimizer="adam", lr=1e-3,
        iterations=None, epochs=10, batch_size=128, augment=True, lr_schedule="cosine",
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
    return Network(
        (n_inputs, *config.hidden, n_classes), config.activation, config.init, seed=config.seed
    )


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
) -> Iterator[Progress]:
    """Train ``net`` in place, yielding a :class:`Progress` every ``eval_every`` steps.

    The last record always has ``status != "running"``. If the loss stops being finite (or
    explodes past ``DIVERGENCE_LOSS``), the parameters of the last good record are restored,
    so a diverged run never leaves NaN weights behind.

    Speed (see benchmarks/README.md): every buffer is allocated once (:class:`Workspace`), each
    mini-batch is gathered into one reused contiguous buffer, the optimizer updates all
    parameters as one flat array, and BLAS gets the number of threads that is faster for this
    batch size (never more than the caller allowed).

    ``stats``, if given, receives how the steps used the cores (see :class:`ThreadChoice`).
    """
    n = len(X)
    config.validate(n_train=n)
    if X.dtype != np.float32:
        raise ConfigError("Training data must be float32 rows in [0, 1].")
    rng = rng if rng is not None else np.random.default_rng(config.seed)
    y = np.asarray(y)
    if len(y) != n:
        raise DataError(f"There are {n:,} images but {len(y):,} labels.")
    k = net.sizes[-1]
    if y.min() < 0 or y.max() >= k:
        raise DataError(f"Labels must be whole numbers from 0 to {k - 1}; found {int(y.max())}.")
    bs = config.effective_batch_size(n)
    full_batch = bs == n
    steps_per_epoch = config.steps_per_epoch(n)
    total = config.total_steps(n)
    eval_every = int(
        config.eval_every or (10 if config.iterations is not None else steps_per_epoch)
    )
    flat = net.flat_params()
    controller = _blas_controller()
    cores = _cores_allowed(controller)
    runner = PairRunner() if cores >= 2 else None
    ws = Workspace(net, min(bs, FULL_BATCH_CHUNK) if full_batch else bs, runner)
    ws.nonnegative = not full_batch and bool(X.min() >= 0)  # augmentation keeps pixels >= 0
    threads = None
    if runner is not None and not full_batch and bs * ws._n_weights() >= THREAD_CHOICE_MIN_MACS:
        blas = controller.select(user_api="blas").lib_controllers
        threads = ThreadChoice(ws, runner, blas, cores, os.environ.get("SCRATCHNET_THREADS", "auto"))
    opt = optimizers.make(config.optimizer, [flat], config.lr, config.momentum)
    grads = [ws.grad_flat]
    augment = None
    if config.augment:
        from scratchnet.augment import augment_batch as augment

    Xb_buf = np.empty((bs, X.shape[1]), np.float32) if not full_batch or augment else None
    yb_buf = np.empty(bs, np.intp)
    y_idx = y.astype(np.intp, copy=False)
    good = flat.copy()  # last parameters known to give a finite loss
    loss_sum = 0.0
    correct = 0
    seen = 0
    order = np.arange(n)
    start = time.perf_counter()
    paused = 0.0  # time the caller held a record: drawing charts is not training time

    def record(step: int, status: str = "running", message: str = "") -> Progress:
        nonlocal loss_sum, correct, seen
        val = net.accuracy(X_val, y_val) if X_val is not None and len(X_val) else None
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
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"), _limit(controller, 1 if runner is not None else None):
                while step < segment_end:
                    if stop is not None and stop.is_set():
                        outcome = "stopped"
                        break
                    if threads is not None:
                        threads.tick(step)
                    pos = step % steps_per_epoch
                    if full_batch:
                        Xb, yb = X, y_idx
                        if augment is not None:
                            Xb = augment(X, rng, out=Xb_buf)
                    else:
                        if pos == 0:
                            order = rng.permutation(n)
                        idx = order[pos * bs : (pos + 1) * bs]
                        m = len(idx)
                        Xb = Xb_buf[:m]
                        yb = yb_buf[:m]
                        np.take(X, idx, axis=0, out=Xb, mode="clip")  # mode="raise" is 5x slower
                        np.take(y_idx, idx, out=yb, mode="clip")
                        if augment is not None:
                            _augment_halves(augment, Xb, rng, ws.runner)
                    if len(yb) > ws.capacity:  # full batch, in chunks
                        loss, n_correct = ws.loss_and_grads(Xb, yb, config.l2)
                    else:
                        loss, n_correct = ws.forward_backward(Xb, yb, labels_checked=True)
                    if not math.isfinite(loss) or loss > DIVERGENCE_LOSS:
                        outcome = "diverged"
                        break
                    opt.lr = _lr_at(config, step, total)
                    if len(yb) > ws.capacity:
                        opt.step(grads)
                    else:  # gradients and update together, each half of the parameters on a core
                        opt.begin_step()
                        ws.backward_update(config.l2, opt)
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
        if stats is not None and threads is not None:
            stats.update(threads.summary())


# Steps smaller than this many multiply-adds (batch size x weights) stay on one core: threads
# cost more than they save there (784-256-128-10 at batch 32 is 7.5M and gains ~8%), and tiny
# networks then train bit for bit the same on every machine.
THREAD_CHOICE_MIN_MACS = 4_000_000


class ThreadChoice:
    """Which of two ways to use two cores a run of training steps takes, chosen by timing both.

    * ``"pair"``: BLAS single-threaded, each step split in halves by our :class:`PairRunner`.
      When another process holds a core, the caller simply does both halves.
    * ``"blas"``: no split; OpenBLAS's own threads work inside every matrix product. They
      spin-wait instead of sleeping, so on a quiet machine a step is 10-20% faster; but when one
      of them is descheduled every product waits for it, and a step became 2.5-3x slower.

    Steps run in timed blocks of ``BLOCK``. Both ways are tried first; then the faster is used
    and the other is tried again for a half block after ``wait`` blocks, a wait that doubles (up
    to ``MAX_WAIT``) each time it loses again, so a busy or quiet spell is noticed within a
    second or two at little cost. Three rules keep the timing honest on a shared machine: a
    way's cost is the best of its last three blocks (one noisy block does not flip the choice);
    a block far slower than the other way's cost ends after two steps (``GIVE_UP``), and a way
    that lost that badly waits ``LONG_WAIT`` blocks; and OpenBLAS's idle threads keep spinning
    on the second core for ~0.1 s after their last product, which slows our pair: a short try
    of our pair pays that (it is what switching costs) without changing our pair's own cost,
    and while our pair is the way in use its first ``SPIN`` seconds after a try are not timed.

    The two ways differ only in the rounding of the forward products (OpenBLAS's threads sum in
    another order), so a run is reproducible to about 1e-6, not bit for bit, unless ``mode``
    pins one way (``SCRATCHNET_THREADS=pair`` or ``blas``).
    """

    BLOCK = 16
    MAX_WAIT = 64
    GIVE_UP = 1.5  # a block this many times slower per step than the other way ends early
    LONG_WAIT = 16  # blocks before trying again a way that lost by more than GIVE_UP
    SPIN = 0.15  # seconds OpenBLAS's threads keep spinning after a product (measured: ~0.1 s)

    def __init__(self, ws: Workspace, runner: PairRunner, blas_libs, n_threads: int, mode: str = "auto",
                 clock=time.perf_counter):
        if mode not in ("auto", "pair", "blas"):
            raise ConfigError(f"SCRATCHNET_THREADS must be auto, pair or blas, not {mode!r}.")
        self.ws, self.runner, self.libs, self.n_threads = ws, runner, list(blas_libs), int(n_threads)
        self.mode = mode
        self.clock = clock
        self.cost: dict[str, float] = {}  # seconds per step, see record()
        self._recent: dict[str, list[float]] = {}
        self.steps = {"pair": 0, "blas": 0}
        self.wait = 2
        self._since = 0  # blocks on the faster way since the other was last tried
        self._probe: str | None = None  # the way being tried again, and the best cost before
        self._beaten = 0.0
        self._open: tuple[str, float, int, int] | None = None  # way, start time, step, length
        self._spin_until = float("-inf")
        self.switches = 0
        self._last: str | None = None

    def pick(self) -> str:
        if self.mode != "auto":
            return self.mode
        for way in ("pair", "blas"):
            if way not in self.cost:
                if self.cost:  # the other is known: judged like a try (a full block, though)
                    self._probe, self._beaten = way, min(self.cost.values())
                return way
        best = min(self.cost, key=self.cost.get)
        if self._since >= self.wait:
            self._since = 0
            self._probe, self._beaten = ("blas" if best == "pair" else "pair"), self.cost[best]
            return self._probe
        self._since += 1
        return best

    def record(self, way: str, per_step: float) -> None:
        """A way's cost is the best of its last three blocks: one block slowed by another
        process's burst does not flip the choice, three in a row (a lasting change) do."""
        if self._probe == way:
            self._probe = None
            if per_step < self._beaten:
                self.wait = 2
            else:  # lost: try it less often; much less if it lost badly (a busy core), as
                # OpenBLAS's threads then spin for ~0.1 s after a try, slowing the other way
                badly = self.LONG_WAIT if per_step > self.GIVE_UP * self._beaten else 0
                self.wait = min(max(2 * self.wait, badly), self.MAX_WAIT)
                if way == "pair" and way in self._recent:
                    return  # the try paid OpenBLAS's spin; keep our pair's own, unspun cost
            self._recent[way] = [per_step]  # its older figures are stale
        else:
            self._recent[way] = (self._recent.get(way, []) + [per_step])[-3:]
        self.cost[way] = min(self._recent[way])

    def apply(self, way: str) -> None:
        self.ws.runner = self.runner if way == "pair" else None
        for lib in self.libs:
            lib.set_num_threads(1 if way == "pair" else self.n_threads)
        if self._last is not None and way != self._last:
            self.switches += 1
        self._last = way

    def tick(self, step: int) -> None:
        """Call before each step: opens, and every BLOCK steps closes and reopens, a timed block.

        A block of one way that is already far slower than the other way's cost is closed
        early: a busy core makes OpenBLAS's threads 2.5x slower, and trying them for a whole
        block would cost more than everything the choice saves.
        """
        if self._open is not None:
            way, t0, first, length = self._open
            done = step - first
            if way == "pair" and self._probe != way and self.clock() < self._spin_until:
                # OpenBLAS's idle threads still spin and slow our second thread: not timed
                # (a short try of our pair is, spin included: that is what switching costs)
                self.steps[way] += done
                self._open = (way, self.clock(), step, length)
                return
            if done < length:
                other = self.cost.get("blas" if way == "pair" else "pair")
                if done < 2 or other is None or (self.clock() - t0) / done <= self.GIVE_UP * other:
                    return
        self.end(step)
        way = self.pick()
        self.apply(way)
        length = self.BLOCK // 2 if self._probe == way and way in self.cost else self.BLOCK
        self._open = (way, self.clock(), step, length)

    def end(self, step: int) -> None:
        """Close the open block (before anything but training steps runs)."""
        if self._open is None:
            return
        way, t0, first, _ = self._open
        self._open = None
        if way == "blas":
            self._spin_until = self.clock() + self.SPIN
        if step > first:
            self.steps[way] += step - first
            self.record(way, (self.clock() - t0) / (step - first))

    def summary(self) -> dict:
        total = sum(self.steps.values()) or 1
        return {
            "mode": self.mode,
            "share_blas": self.steps["blas"] / total,
            "ms_per_step": {k: round(v * 1e3, 3) for k, v in self.cost.items()},
            "switches": self.switches,
        }


def _augment_halves(augment, Xb, rng, runner) -> None:
    """Augment a batch in place as two halves, each with its own generator drawn from ``rng``.

    The halves run on both cores when there is a runner; either way the numbers are the same,
    because each half's randomness is fixed before anything runs.
    """
    m = len(Xb)
    if m < 2:
        augment(Xb, rng, out=Xb)
        return
    h = m // 2
    first, second = (np.random.default_rng(s) for s in rng.integers(0, 2**63, size=2))
    a, b = Xb[:h], Xb[h:]
    if runner is None:
        augment(a, first, out=a)
        augment(b, second, out=b)
    else:
        runner.run(lambda: augment(a, first, out=a), lambda: augment(b, second, out=b))


# Rows per chunk of a full-batch pass: a chunk's activations stay in cache between its forward
# and backward pass, so the training set streams from memory once per iteration, not twice.
FULL_BATCH_CHUNK = 1024


class _NoLimit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_controller = None


def _blas_controller():
    """threadpoolctl's controller (made once: building it scans the loaded libraries)."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        except Exception:  # pragma: no cover - no BLAS found: nothing to limit
            _controller = False
    return _controller or None


def _cores_allowed(controller) -> int:
    """How many cores training may use: the machine's, capped by the caller's BLAS limit.

    The Train page's worker limits BLAS to one thread to keep the app responsive; that choice
    also switches off our second thread.
    """
    cores = os.cpu_count() or 1
    if controller is None:
        return cores
    blas = controller.select(user_api="blas").lib_controllers
    return min([cores] + [c.num_threads for c in blas])


def _limit(controller, n_threads: int | None):
    """Cap BLAS at ``n_threads`` for a run of steps (None: leave it alone).

    With our own pair of threads, BLAS itself runs single-threaded: OpenBLAS's threads
    spin-wait for each other, and on a shared 2-core machine a descheduled one made an epoch
    10-20x slower, while our halves are simply done by whichever thread is free.
    """
    if controller is None or n_threads is None:
        return _NoLimit()
    blas = controller.select(user_api="blas")
    current = min((c.num_threads for c in blas.lib_controllers), default=n_threads)
    if current <= n_threads:
        return _NoLimit()
    return blas.limit(limits=n_threads)


def fit(config: TrainConfig, X, y, X_val=None, y_val=None, **kw) -> tuple[Network, list[Progress]]:
    """Build a network for ``config`` and train it to the end; handy for tests and scripts."""
    net = build_network(config, n_inputs=X.shape[1])
    history = list(train(net, X, y, config, X_val, y_val, **kw))
    return net, history
