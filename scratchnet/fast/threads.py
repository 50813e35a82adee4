"""How many cores a training run uses, and how: BLAS thread limits and the timed choice between
OpenBLAS's threads and our own pair of threads (see benchmarks/README.md, "Two cores")."""

from __future__ import annotations

import os
import time

from scratchnet.errors import ConfigError


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

    def __init__(self, step, runner, blas_libs, n_threads: int, mode: str = "auto",
                 clock=time.perf_counter):
        if mode not in ("auto", "pair", "blas"):
            raise ConfigError(f"SCRATCHNET_THREADS must be auto, pair or blas, not {mode!r}.")
        self.step, self.runner, self.libs, self.n_threads = step, runner, list(blas_libs), int(n_threads)
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
        self.step.runner = self.runner if way == "pair" else None
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


class NoLimit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_controller = None


def blas_controller():
    """threadpoolctl's controller (made once: building it scans the loaded libraries)."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        except Exception:  # pragma: no cover - no BLAS found: nothing to limit
            _controller = False
    return _controller or None


def cores_allowed(controller) -> int:
    """How many cores training may use: the machine's, capped by the caller's BLAS limit.

    The Train page's worker limits BLAS to one thread to keep the app responsive; that choice
    also switches off our second thread.
    """
    cores = os.cpu_count() or 1
    if controller is None:
        return cores
    blas = controller.select(user_api="blas").lib_controllers
    return min([cores] + [c.num_threads for c in blas])


def limit(controller, n_threads: int | None):
    """Cap BLAS at ``n_threads`` for a run of steps (None: leave it alone).

    With our own pair of threads, BLAS itself runs single-threaded: OpenBLAS's threads
    spin-wait for each other, and on a shared 2-core machine a descheduled one made an epoch
    10-20x slower, while our halves are simply done by whichever thread is free.
    """
    if controller is None or n_threads is None:
        return NoLimit()
    blas = controller.select(user_api="blas")
    current = min((c.num_threads for c in blas.lib_controllers), default=n_threads)
    if current <= n_threads:
        return NoLimit()
    return blas.limit(limits=n_threads)


