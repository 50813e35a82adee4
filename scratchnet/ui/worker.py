"""Training in a background thread for the pages, with no Streamlit in sight.

A page only renders: it submits a job to the process-wide :class:`TrainingManager`, then polls
``job.poll()`` a few times a second for an immutable :class:`Snapshot`. There are two kinds of
job, both a :class:`Job` (queued, polled, stopped and abandoned the same way):
:class:`TrainingJob` trains a new model (the Train page, the Draw page's quick model), and
:class:`FinetuneJob` teaches a copy of a model someone's handwriting (``scratchnet.personal``,
the Draw page's "Teach it my handwriting"). Everything that has to be right without a browser
lives here:

- consuming ``training.train`` records costs a lock and a tuple append per record, and the chart
  keeps at most ``MAX_POINTS`` evenly spaced points however long the run (halve and double the
  stride when full), so polling cost never grows with training time;
- admission control: at most ``max_running`` jobs train at once (``SCRATCHNET_MAX_TRAININGS``,
  default 1); the rest wait in FIFO order and know their position;
- a job nobody polls for ``idle_timeout`` seconds (tab closed, session gone) is stopped, checked
  between every two gradient steps, so no orphan burns CPU;
- when training ends the model is saved to the store with its metrics, history and config and
  made active; a diverged model is kept in memory only, until the user explicitly keeps it;
- a fine-tuning's personal model is saved but never made active (it is one visitor's model),
  and only when it finished and was not refused.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import os
import sys
import threading
import time
import types
from dataclasses import dataclass, field


from scratchnet import personal
from scratchnet.errors import ScratchnetError
from scratchnet.training import MAX_HISTORY, PointBuffer, Progress, TrainConfig, build_network
from scratchnet.training import run as run_training

log = logging.getLogger(__name__)

MAX_POINTS = MAX_HISTORY  # chart points (and stored history records) per run
DEFAULT_IDLE_TIMEOUT = 60.0  # seconds without a poll before a job counts as abandoned
RECORD_INTERVAL = 0.5  # aim for a Progress record about this often (seconds; the page polls at 2 Hz)
VAL_OVERHEAD = 0.03  # keep validation passes below ~3% of the training compute
ASSUMED_FLOPS = 2e10  # single-thread float32 BLAS throughput; measured 17-40e9 on this 2-core box
MIN_RECORDS = 20  # even short runs draw a curve, not two dots
KEEP_FINISHED = 16  # finished jobs remembered for late polls (results, downloads)
# The time left is measured over the most recent records, from the first record on: the steps
# before it pay for warming up (buffers, the first BLAS calls, choosing how to use the cores),
# and the rate of the last few dozen records follows a machine whose load changes.
ETA_RECORDS = 20

ACTIVE = ("queued", "running")
ENDED = ("finished", "stopped", "diverged", "abandoned", "failed")


def _env_int(name: str, default: int, lo: int = 1) -> int:
    try:
        return max(lo, int(os.environ.get(name, default)))
    except ValueError:
        return default


def max_trainings() -> int:
    """How many trainings may run at once in this process (``SCRATCHNET_MAX_TRAININGS``, >= 1)."""
    return _env_int("SCRATCHNET_MAX_TRAININGS", 1)


def idle_timeout() -> float:
    """Seconds without a poll (and no connected viewer) before a training is stopped.

    ``SCRATCHNET_IDLE_TIMEOUT``, default 60.
    """
    try:
        value = float(os.environ.get("SCRATCHNET_IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT))
    except ValueError:
        return DEFAULT_IDLE_TIMEOUT
    return value if math.isfinite(value) and value > 0 else DEFAULT_IDLE_TIMEOUT


def blas_threads() -> int:
    """BLAS threads per training (``SCRATCHNET_BLAS_THREADS``, default 1).

    On 2 cores a multi-threaded OpenBLAS fights Streamlit's own threads; one thread per training
    was measured faster overall (see the Train page report) and keeps the UI responsive.
    """
    return _env_int("SCRATCHNET_BLAS_THREADS", 1)


def choose_eval_every(config: TrainConfig, n_train: int, n_val: int, macs_per_row: int,
                      flops_per_second: float = ASSUMED_FLOPS) -> int:
    """Steps between Progress records: a few per second (the chart, the progress bar, the ETA).

    A step costs about ``6 * batch * macs_per_row`` flops (forward + backward; for a dense
    network the multiply-adds per row are its weights). Short runs still get ``MIN_RECORDS``
    records. How often a record also measures validation accuracy: :func:`choose_val_every`.
    """
    if config.eval_every is not None:
        return int(config.eval_every)
    batch = config.effective_batch_size(n_train)
    step_flops = 6.0 * batch * macs_per_row
    every = max(1, math.ceil(RECORD_INTERVAL * flops_per_second / step_flops))
    total = config.total_steps(n_train)
    return max(1, min(every, total // MIN_RECORDS))


def choose_val_every(config: TrainConfig, n_train: int, n_val: int, eval_every: int) -> int:
    """Records between validation passes, so that validation stays a small share of the work.

    A validation pass costs ``2 * n_val * macs_per_row`` flops, ``eval_every`` steps
    ``eval_every * 6 * batch * macs_per_row`` (so the network's size cancels out). The answer is
    the power of two nearest (in ratio) to the ``VAL_OVERHEAD`` share, so validation costs at most
    sqrt(2) times that share. A power of two because the chart's point buffer keeps every 2^k-th
    record: once it has thinned out, every point it keeps is a validated one.
    """
    if not n_val:
        return 1
    batch = config.effective_batch_size(n_train)
    need = (2.0 * n_val) / (VAL_OVERHEAD * 6.0 * batch * max(1, eval_every))
    return 2 ** max(0, round(math.log2(need))) if need > 1 else 1  # the nearest: within sqrt(2)


# One chart point: the numbers of a Progress record, as a plain tuple (cheap to copy).
POINT_FIELDS = ("step", "epoch", "loss", "train_accuracy", "val_accuracy", "seconds")


def _point(p: Progress) -> tuple:
    return (p.step, p.epoch, p.loss, p.train_accuracy, p.val_accuracy, p.seconds)


@dataclass(frozen=True)
class Snapshot:
    """What a page needs to draw a job at one moment; immutable, safe to hand across threads."""

    job_id: str
    status: str  # "queued" | "running" | "finished" | "stopped" | "diverged" | "abandoned" | "failed"
    queue_position: int  # 1-based while queued, else 0
    step: int
    total_steps: int
    epoch: float
    loss: float | None
    train_accuracy: float | None
    val_accuracy: float | None
    seconds: float  # time spent training so far
    eta_seconds: float | None
    points: tuple  # tuples in POINT_FIELDS order, at most MAX_POINTS + 1
    message: str = ""
    result: dict | None = None  # when saved: model_name, path, val_accuracy, test_accuracy, ...
    error: str = ""
    config: dict = field(default_factory=dict)
    dataset: str = ""
    kind: str = "training"  # the job's kind: "training" | "fine-tuning"
    phase: str = ""  # while running, what the work is doing now (a fine-tuning: "Cross-validating")

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    @property
    def progress_text(self) -> str:
        if self.status == "queued":
            return f"Waiting for a free training slot (number {self.queue_position} in the queue)"
        text = f"Iteration {self.step:,} of {self.total_steps:,} · {format_seconds(self.seconds)} elapsed"
        if self.active:
            text += f" · {format_seconds(self.eta_seconds)} left" if self.eta_seconds is not None else " · estimating time left"
        return text


def eta_seconds(records, total_steps: int) -> float | None:
    """Seconds left at the rate of ``records`` ((step, seconds) pairs, oldest first).

    The rate is taken between the oldest and the newest record, so whatever happened before
    the oldest one (the slow first steps) never counts; with fewer than two records there is no
    rate yet (None: "estimating").
    """
    if len(records) < 2:
        return None
    (step0, sec0), (step1, sec1) = records[0], records[-1]
    if step1 <= step0 or sec1 < sec0:
        return None
    return (sec1 - sec0) / (step1 - step0) * max(0, total_steps - step1)


def format_seconds(s: float | None) -> str:
    """'4.2 s', '42 s', '3 min 05 s', '1 h 02 min'."""
    if s is None or not math.isfinite(s):
        return "?"
    s = max(0.0, s)
    if s < 9.95:
        return f"{s:.1f} s"
    if round(s) < 60:
        return f"{s:.0f} s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m} min {sec:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


class _StopSignal:
    """``is_set()`` for ``training.train``: a stop request, or nobody polled for too long.

    Before giving up on a job nobody polled, its keep-alive checks are asked whether a viewer
    is still connected: browsers slow the timers of background tabs down to one a minute, and a
    hidden tab is not a closed one.
    """

    def __init__(self, job: "Job"):
        self.event = threading.Event()
        self.job = job
        self.abandoned = False

    def is_set(self) -> bool:
        if self.event.is_set():
            return True
        job = self.job
        if job.idle_timeout is not None and job.clock() - job.last_poll > job.idle_timeout:
            if job.watched():
                job.last_poll = job.clock()  # still connected: look again after another timeout
                return False
            self.abandoned = True
            self.event.set()
            return True
        return False


_ids = itertools.count(1)


class Job:
    """What every background job shares: a place in the queue, snapshots, stop, idle timeout.

    A subclass says what the work is and what happens when it ends:

    - ``_work()`` runs in the worker thread; it reports ``Progress`` records through
      ``_record`` and checks ``stop_signal`` between steps (``training.train`` does both);
    - ``_finish(outcome)`` gets what ``_work`` returned: it saves, and sets the final status,
      message, error and result (in one ``_set``, so a page seeing the end also sees the model).

    ``run()`` does the work in the calling thread (the manager calls it from a worker thread once
    a slot is free); the benchmark calls it directly to time the page's code path headless.
    """

    kind = "job"  # what a page calls it: "training", "fine-tuning"

    def __init__(self, config: TrainConfig, dataset, total_steps: int, *, store=None, name: str | None = None,
                 save: bool = True, activate: bool = True,
                 idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT, threads: int | None = None,
                 clock=time.monotonic, source: str = ""):
        self.config = config
        self.dataset = dataset
        self.store = store
        self.name = name
        self.save = save
        self.activate = activate
        self.idle_timeout = idle_timeout
        self.threads = threads
        self.clock = clock
        self.source = source
        self._metadata: dict | None = None  # the run's metadata document, once it ended
        self.id = f"job-{next(_ids)}-{int(time.time() * 1000) % 100000:05d}"
        self.last_poll = clock()
        self.stop_signal = _StopSignal(self)
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._status = "queued"
        self._queue_position = 0
        self._last: Progress | None = None
        self._last_val: float | None = None  # the latest record that measured validation
        self._buffer = PointBuffer(MAX_POINTS)
        self._recent: collections.deque = collections.deque(maxlen=ETA_RECORDS)  # (step, seconds)
        self._message = ""
        self._error = ""
        self._result: dict | None = None
        self._total = int(total_steps)
        self._cached: Snapshot | None = None
        self._version = 0
        self._cached_version = -1
        self._keepalives: dict = {}

    # ------------------------------------------------------------------ the page's side
    def poll(self) -> Snapshot:
        """The current snapshot; also the heartbeat that keeps the job alive."""
        self.last_poll = self.clock()
        return self.snapshot()

    def snapshot(self) -> Snapshot:
        with self._lock:
            if self._cached is not None and self._cached_version == self._version:
                return self._cached
            p = self._last
            points = list(self._buffer.items)
            if p is not None and (not points or points[-1][0] != p.step):
                points.append(_point(p))
            running = self._status == "running"
            eta = eta_seconds(self._recent, p.total_steps) if p is not None and running else None
            snap = Snapshot(
                job_id=self.id,
                status=self._status,
                queue_position=self._queue_position,
                step=p.step if p else 0,
                total_steps=p.total_steps if p else self._total,
                epoch=p.epoch if p else 0.0,
                loss=_finite(p.loss) if p else None,
                train_accuracy=_finite(p.train_accuracy) if p else None,
                val_accuracy=self._last_val if p else None,
                seconds=p.seconds if p else 0.0,
                eta_seconds=eta,
                points=tuple(points),
                message=self._message,
                result=dict(self._result) if self._result else None,
                error=self._error,
                config=self.config.to_dict(),
                dataset=getattr(self.dataset, "description", ""),
                kind=self.kind,
                phase=p.message if p is not None and running and p.status == "running" else "",
            )
            self._cached, self._cached_version = snap, self._version
            return snap

    def add_keepalive(self, key: str, check) -> None:
        """Register ``check() -> bool``: is viewer ``key`` (e.g. a browser session) still there?"""
        with self._lock:
            self._keepalives[key] = check

    def watched(self) -> bool:
        """Does any registered viewer say it is still connected?"""
        with self._lock:
            checks = list(self._keepalives.values())
        for check in checks:
            try:
                if check():
                    return True
            except Exception:  # a viewer that cannot answer is not watching
                continue
        return False

    def request_stop(self) -> None:
        """Ask the run to stop; it does so before its next gradient step."""
        self.stop_signal.event.set()

    @property
    def status(self) -> str:
        return self._status

    def metadata(self, status: str | None = None) -> dict:
        """The run's metadata document (scratchnet.training.run), with this job's final status."""
        if self._metadata is None:
            raise ScratchnetError(f"The {self.kind} has not ended yet, so there is no model to describe.")
        meta = dict(self._metadata)
        meta["status"] = status or self._status
        meta["metrics"] = dict(meta["metrics"], status=meta["status"])
        return meta

    def keep(self, name: str | None = None) -> dict:
        """Save and activate the model anyway; only a training offers that (after divergence)."""
        raise ScratchnetError(f"A {self.kind} has no model to keep anyway.")

    # ------------------------------------------------------------------ the worker's side
    def _set(self, **kw) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, "_" + k, v)
            self._version += 1

    def _record(self, p: Progress) -> None:
        """Per-record work on the worker thread: keep it tiny (a lock and an append)."""
        with self._lock:
            self._last = p
            if p.val_accuracy is not None:
                self._last_val = p.val_accuracy
            self._buffer.add(_point(p))
            self._recent.append((p.step, p.seconds))
            self._version += 1

    def cancel(self, status: str, message: str) -> None:
        """End a job that never started (stopped or abandoned while queued)."""
        self._set(status=status, message=message, queue_position=0)
        self.done.set()

    def run(self) -> Snapshot:
        """Do the work to the end in this thread, then save; returns the final snapshot."""
        self._set(status="running", queue_position=0)
        try:
            with _blas_limit(self.threads or blas_threads()):
                outcome = self._work()
            self._finish(outcome)
        except Exception as err:  # a bug or a user error inside the thread: show it, never die silently
            if not isinstance(err, ScratchnetError):
                log.exception("%s job %s failed", self.kind, self.id)
            self._set(status="failed", error=str(err) if isinstance(err, ScratchnetError)
                      else f"{type(err).__name__}: {err}")
        self.done.set()
        return self.snapshot()

    def _work(self):
        raise NotImplementedError

    def _finish(self, outcome) -> None:
        raise NotImplementedError

    def _stopped_status(self, message: str) -> tuple[str, str]:
        """("stopped", message), or ("abandoned", why) when nobody was watching any more."""
        if not self.stop_signal.abandoned:
            return "stopped", message
        return "abandoned", (f"Stopped after {format_seconds(self.idle_timeout)} without anyone watching "
                             f"(the page was closed). {message}").strip()


class TrainingJob(Job):
    """One training run: config + dataset in, progress snapshots and a saved model out."""

    kind = "training"

    def __init__(self, config: TrainConfig, dataset, *, store=None, name: str | None = None,
                 preset: str | None = None, save: bool = True, activate: bool = True,
                 idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT, threads: int | None = None,
                 clock=time.monotonic, source: str = "train-page", extra: dict | None = None):
        n_train = len(dataset.X_train)
        config.validate(n_train=n_train)  # ConfigError now, on the page, not later in a thread
        net = build_network(config, n_inputs=dataset.X_train.shape[1])
        n_val = 0 if dataset.X_val is None else len(dataset.X_val)
        config = config.replace(eval_every=choose_eval_every(config, n_train, n_val, net.macs_per_row()))
        self.val_every = choose_val_every(config, n_train, n_val, config.eval_every)
        super().__init__(config, dataset, config.total_steps(n_train), store=store, name=name, save=save,
                         activate=activate, idle_timeout=idle_timeout, threads=threads, clock=clock,
                         source=source)
        self.net = net
        self.preset = preset
        self.extra = dict(extra or {})

    def _work(self):
        return run_training(self.config, self.dataset, stop=self.stop_signal, on_progress=self._record,
                            preset=self.preset, source=self.source, net=self.net, extra=self.extra,
                            val_every=self.val_every)

    def _finish(self, result) -> None:
        last = result.last
        self._metadata = result.metadata
        test_acc = result.metadata["metrics"]["test_accuracy"]
        status = last.status if last is not None else "stopped"
        message = last.message if last is not None else ""
        if status == "stopped":
            status, message = self._stopped_status(message)
        self._set(result={"val_accuracy": last.val_accuracy if last else None, "test_accuracy": test_acc})
        error = ""
        trained = last is not None and last.step > 0
        if self.save and trained and status in ("finished", "stopped", "abandoned"):
            # Saved before the status changes, so a page seeing "finished" also sees the model.
            try:
                activate = self.activate and status != "abandoned"
                note = ""
                if activate and status == "stopped":
                    activate, note = self._better_than_active(last)
                self._save(activate=activate, status=status, note=note)
            except ScratchnetError as err:
                error = f"The model could not be saved: {err}"
        self._set(status=status, message=message, error=error)

    # ------------------------------------------------------------------ saving
    def _better_than_active(self, last: Progress) -> tuple[bool, str]:
        """May a stopped run replace the active model? Only if it scores no worse on validation.

        Stopping early is not choosing a worse model for everyone drawing right now; the user can
        still make it active explicitly (Train page, "Make active").
        """
        try:
            current = self.store.resolve_active() if self.store is not None else None
        except (OSError, ScratchnetError):
            current = None
        if current is None:
            return True, ""
        theirs = (current.metadata.get("metrics") or {}).get("val_accuracy")
        ours = last.val_accuracy
        if not isinstance(theirs, (int, float)) or not math.isfinite(theirs):
            return True, ""
        if ours is not None and math.isfinite(ours) and ours >= theirs:
            return True, ""
        score = "no validation score" if ours is None else f"{ours:.1%} on validation digits"
        return False, (f"It was stopped early with {score}, below the active model '{current.name}' "
                       f"({theirs:.1%}), which stays active; make this one active below if you prefer it.")

    def _save(self, *, activate: bool, name: str | None = None, status: str | None = None,
              note: str = "") -> dict:
        if self.store is None:
            raise ScratchnetError("There is no model store to save into.")
        info = self.store.save(self.net, self.metadata(status), name=name or self.name)
        if activate:
            self.store.set_active(info.name)
        result = dict(self._result or {})
        result.update(model_name=info.name, path=str(info.path), activated=activate)
        if note:
            result["not_activated"] = note
        self._set(result=result)
        return result

    def keep(self, name: str | None = None) -> dict:
        """Save and activate the model anyway (the user's explicit choice after divergence)."""
        if self._status in ACTIVE:
            raise ScratchnetError("The training is still running; stop it first.")
        if self._result and self._result.get("model_name"):
            if self.store is not None and self.activate:
                self.store.set_active(self._result["model_name"])
            return dict(self._result)
        if self._last is None or self._last.step == 0:
            raise ScratchnetError("Nothing was trained, so there is no model to keep.")
        return self._save(activate=True, name=name)


class FinetuneJob(Job):
    """Teach a copy of ``base`` one person's handwriting (:func:`scratchnet.personal.finetune`).

    ``X`` (n, 784) float32 in [0, 1] are their drawings, ``y`` the right digits; ``dataset``
    supplies the replayed digits and the validation digits. ``base`` is only read (it may be a
    model shared by every session). The personal model is saved in the store as ``name`` (default
    ``personal.personal_name(base_name)``) when the fine-tuning finished and was not refused,
    and made active only with ``activate=True``: by default it is one visitor's model.

    The outcome is ``job.personal`` (a :class:`scratchnet.personal.Personal`); the snapshot's
    ``result`` holds its figures as plain numbers and lists (``fixed``, ``broken``, ...).
    """

    kind = "fine-tuning"

    def __init__(self, base, X, y, dataset, *, store=None, base_name: str | None = None,
                 base_meta: dict | None = None, name: str | None = None, steps: int | None = None,
                 lr: float | None = None, seed: int = 0, folds: int | None = None, save: bool = True,
                 activate: bool = False, idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
                 threads: int | None = None, clock=time.monotonic, source: str = "personal",
                 drawings_meta: dict | None = None):
        X, y = personal.check_drawings(X, y)  # the drawings' mistakes now, on the page, not in a thread
        self.steps = personal.STEPS if steps is None else int(steps)
        self.lr = personal.LR if lr is None else float(lr)
        self.folds = personal.FOLDS if folds is None else int(folds)
        config = personal.config_for(base, base_meta, y, steps=self.steps, lr=self.lr, seed=seed)  # ConfigError
        k = min(self.folds, len(X)) if len(X) > 1 else 0  # the cross-validation runs, then the final one
        super().__init__(config, dataset, (k + 1) * config.iterations, store=store,
                         name=name or personal.personal_name(base_name), save=save, activate=activate,
                         idle_timeout=idle_timeout, threads=threads, clock=clock, source=source)
        self.base, self.X, self.y = base, X, y
        self.base_name, self.base_meta, self.seed = base_name, base_meta, seed
        self.drawings_meta = drawings_meta
        self.personal = None  # the Personal outcome, once it ended

    def _work(self):
        return personal.finetune(self.base, self.X, self.y, self.dataset, base_meta=self.base_meta,
                                 base_name=self.base_name, steps=self.steps, lr=self.lr, seed=self.seed,
                                 folds=self.folds, stop=self.stop_signal, on_progress=self._record,
                                 source=self.source, drawings_meta=self.drawings_meta)

    def _finish(self, outcome) -> None:
        self.personal = outcome
        message = outcome.message
        if outcome.steps == 0:  # finetune ended part-way (stopped or diverged) and kept the base
            if self.stop_signal.event.is_set():
                status, message = self._stopped_status(message)
            else:
                status = "diverged"
        else:
            status = "finished"
            self._metadata = outcome.metadata
        result = personal_figures(outcome)
        error = ""
        if self.save and status == "finished" and not outcome.refused:
            try:
                if self.store is None:
                    raise ScratchnetError("There is no model store to save into.")
                info = self.store.save(outcome.net, self.metadata(status), name=self.name)
                if self.activate:
                    self.store.set_active(info.name)
                result.update(model_name=info.name, path=str(info.path), activated=self.activate)
            except ScratchnetError as err:
                error = f"The personal model could not be saved: {err}"
        # One change: a page that sees the end also sees the model and the figures.
        self._set(result=result, status=status, message=message, error=error)


def personal_figures(outcome) -> dict:
    """A fine-tuning's figures as plain numbers and lists (for snapshots and session state)."""
    ints = lambda a: [int(v) for v in a]  # noqa: E731
    figures = outcome.summary()
    figures.update(
        labels=ints(outcome.labels), predicted_before=ints(outcome.predicted_before),
        predicted_after=ints(outcome.predicted_after), fixed=ints(outcome.fixed), broken=ints(outcome.broken),
        val_accuracy=outcome.val_after, test_accuracy=None,
    )
    if not outcome.refused and outcome.steps:
        figures["test_accuracy"] = (outcome.metadata.get("metrics") or {}).get("test_accuracy")
    return figures


def _finite(x) -> float | None:
    return x if x is not None and math.isfinite(x) else None


class _blas_limit:
    """threadpoolctl's limit if available; a no-op otherwise (e.g. no BLAS found)."""

    def __init__(self, n: int):
        self.n = n
        self._ctx = None

    def __enter__(self):
        try:
            from threadpoolctl import threadpool_limits

            self._ctx = threadpool_limits(limits=self.n, user_api="blas")
        except Exception:  # pragma: no cover - threadpoolctl is a declared dependency
            self._ctx = None
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            self._ctx.restore_original_limits()
        return False


class TrainingManager:
    """Admission control for the whole process: a FIFO queue in front of ``max_running`` slots."""

    def __init__(self, max_running: int | None = None):
        self.max_running = max_running if max_running is not None else max_trainings()
        self._cond = threading.Condition()
        self._waiting: list[Job] = []
        self._running: list[Job] = []
        self._jobs: dict[str, Job] = {}

    def submit(self, job: Job) -> Job:
        """Queue ``job``; it starts as soon as a slot is free (at once if one is)."""
        with self._cond:
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._renumber()
            self._forget_old()
        threading.Thread(target=self._run, args=(job,), name=f"scratchnet-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str | None) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id) if job_id else None

    def active_jobs(self) -> list[Job]:
        """Running jobs first, then queued ones in queue order."""
        with self._cond:
            return list(self._running) + list(self._waiting)

    def stop_all(self, timeout: float = 5.0) -> None:
        """Stop every job and wait for them (tests, shutdown)."""
        for job in self.active_jobs():
            job.request_stop()
        for job in list(self._jobs.values()):
            job.done.wait(timeout)

    def _renumber(self) -> None:
        for i, job in enumerate(self._waiting, 1):
            job._set(queue_position=i)

    def _forget_old(self) -> None:
        ended = [j for j in self._jobs.values() if j.status in ENDED]
        for job in ended[: max(0, len(ended) - KEEP_FINISHED)]:
            self._jobs.pop(job.id, None)

    def _run(self, job: Job) -> None:
        with self._cond:
            while True:
                if job.stop_signal.is_set():
                    self._waiting.remove(job)
                    self._renumber()
                    self._cond.notify_all()
                    if job.stop_signal.abandoned:
                        job.cancel("abandoned", "Removed from the queue: nobody was waiting for it any more.")
                    else:
                        job.cancel("stopped", "Stopped before it started.")
                    return
                if self._waiting[0] is job and len(self._running) < self.max_running:
                    self._waiting.pop(0)
                    self._running.append(job)
                    self._renumber()
                    break
                self._cond.wait(0.2)  # also re-checks the stop signal / idle timeout
        try:
            job.run()
        finally:
            with self._cond:
                self._running.remove(job)
                self._cond.notify_all()


# The manager lives in a file-less module so there is one per process even when Streamlit's
# file watcher (development mode) re-imports this module: a fresh manager would orphan the
# trainings already running and every page would lose track of them.
_REGISTRY_NAME = "_scratchnet_training_registry"
_registry = sys.modules.setdefault(_REGISTRY_NAME, types.ModuleType(_REGISTRY_NAME))
_manager_lock = getattr(_registry, "lock", None) or threading.Lock()
_registry.lock = _manager_lock


def get_manager() -> TrainingManager:
    """The process-wide manager shared by every session of the app."""
    with _manager_lock:
        manager = getattr(_registry, "manager", None)
        if manager is None:
            manager = _registry.manager = TrainingManager()
        return manager


def existing_manager() -> TrainingManager | None:
    """The manager if one was created (tests stop its jobs without creating one)."""
    return getattr(_registry, "manager", None)
