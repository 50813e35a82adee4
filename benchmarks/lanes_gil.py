"""Why the notebook preset gains only ~1.35x from its second core: threads vs processes.

    python benchmarks/lanes_gil.py [--iterations 10] [--data-dir DIR]

One full-batch iteration of the ``notebook`` preset (784-10-10, 59,000 digits in 1,024-row chunks)
timed three ways: all chunks on one thread; the shipped path (two lanes of chunks on two threads,
``fast.step.Step.loss_and_grads`` with a ``PairRunner``); and the same two halves in two *processes*
(forked, each timing its own half; nothing else is shared). A chunk is two long matrix products
and ~40 short NumPy calls on 1024x10 arrays; each short call holds the GIL for most of its
length, so two threads cannot overlap them, while two processes can. The package itself never
starts processes (tests/test_paths.py), which is why the gap stays.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--data-dir", default=None, help="folder with the MNIST .gz files (default: SCRATCHNET_DATA_DIR)")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    from scratchnet.datasets import load_mnist
    from scratchnet.fast.pair import PairRunner
    from scratchnet.fast.step import Step
    from scratchnet.training import FULL_BATCH_CHUNK, PRESETS, build_network

    threadpool_limits(1)
    ds = load_mnist(args.data_dir, download=False, fallback=True)
    X, y = ds.X_train, ds.y_train.astype(np.intp)
    net = build_network(PRESETS["notebook"])
    half = -(-(len(y) // 2) // FULL_BATCH_CHUNK) * FULL_BATCH_CHUNK  # as loss_and_grads cuts it
    print(f"{ds.description}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")

    def per_iteration(fn) -> float:
        fn()
        times = []
        for _ in range(args.iterations):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1e3

    one = Step(net, FULL_BATCH_CHUNK)
    acc = np.empty_like(net.grad_flat)
    one_ms = per_iteration(lambda: (one._chunks(net, acc, X[:half], y[:half], 1 / len(y)),
                                    one._chunks(net, acc, X[half:], y[half:], 1 / len(y))))
    lanes = Step(net, FULL_BATCH_CHUNK, PairRunner())
    threads_ms = per_iteration(lambda: lanes.loss_and_grads(X, y))

    r, w = os.pipe()
    pids = []
    for part in (slice(0, half), slice(half, None)):
        pid = os.fork()
        if pid == 0:  # child: time its half, report, leave without cleanup
            ws = Step(net, FULL_BATCH_CHUNK)
            ms = per_iteration(lambda: ws._chunks(net, acc, X[part], y[part], 1 / len(y)))
            os.write(w, f"{ms}\n".encode())
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    os.close(w)
    with os.fdopen(r) as f:
        procs_ms = max(float(line) for line in f)
    print(f"one notebook iteration: one thread {one_ms:.1f} ms; two threads (shipped) {threads_ms:.1f} ms "
          f"({one_ms / threads_ms:.2f}x); two processes {procs_ms:.1f} ms ({one_ms / procs_ms:.2f}x)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
