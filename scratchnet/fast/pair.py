"""Two halves of a piece of work on two cores, without the stalls of a spin-waiting BLAS."""

from __future__ import annotations

import threading


class PairRunner:
    """Run two independent NumPy calls on two cores at once, when a second core is free.

    NumPy releases the GIL inside BLAS calls and element-wise loops, so a helper thread can do one
    half of a matrix product while this thread does the other. Each half is claimed by whichever
    thread gets to it first: when the machine is busy and the helper is not scheduled in time,
    the caller simply does both halves itself, so a loaded machine costs a lock instead of the
    collapse seen with a multi-threaded BLAS that spin-waits for a descheduled thread. Which
    thread computes a half never changes the numbers, so results stay bit-for-bit reproducible.
    """

    def __init__(self):
        self._go = threading.Event()
        self._done = threading.Event()
        self._task = None
        self._claim = None
        self._error: BaseException | None = None
        self._closed = False
        self._busy = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="scratchnet-pair", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self._go.wait()
            self._go.clear()
            if self._closed:
                return
            task, claim = self._task, self._claim
            if claim is not None and claim.acquire(False):
                try:
                    task()
                except BaseException as err:  # handed to the caller, never lost in the thread
                    self._error = err
                finally:
                    self._done.set()

    def run(self, first, second) -> None:
        """Call ``first()`` and ``second()``, possibly at the same time; return when both are done.

        A call made while another is in progress (nested, or from another thread) runs both
        tasks in the calling thread.
        """
        if not self._busy.acquire(False):
            first()
            second()
            return
        try:
            self._run(first, second)
        finally:
            self._busy.release()

    def _run(self, first, second) -> None:
        claim = threading.Lock()
        self._task, self._claim = second, claim
        self._done.clear()
        self._go.set()
        try:
            first()
        except BaseException:
            if not claim.acquire(False):
                self._done.wait()  # the helper is still on ``second``: never leave it running
                self._error = None
            raise
        if claim.acquire(False):
            second()
        else:
            self._done.wait()
            if self._error is not None:
                err, self._error = self._error, None
                raise err

    def close(self) -> None:
        self._closed = True
        self._task = self._claim = None
        self._go.set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
