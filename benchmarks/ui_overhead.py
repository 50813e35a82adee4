"""What the Train page's code path costs on top of plain headless training.

    python benchmarks/ui_overhead.py [--epochs 2] [--repeats 5] [--threads N] [--data-dir DIR]

"Page" runs are ``scratchnet.ui.worker.TrainingJob.run()`` -- exactly what the Train page's
worker thread runs: every Progress record goes through the job's bookkeeping (lock, chart point
buffer) -- while a second thread plays the page, polling ``job.poll()`` every ``POLL_SECONDS``
and turning the snapshot into the chart's table, as the page's live fragment does (without
Streamlit and a browser). "Headless" runs call ``training.train`` with the job's own config
(same ``eval_every``, same seed) and ignore the records. Both use the worker's BLAS thread limit
(``SCRATCHNET_BLAS_THREADS``, default 1, or ``--threads``). Runs alternate; medians are compared.
Target: page / headless <= 1.10.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET = 1.10


def page_run(ds, config, threads: int) -> float:
    import pandas as pd

    from scratchnet.ui import train_form
    from scratchnet.ui.train_page import POLL_SECONDS
    from scratchnet.ui.worker import TrainingJob

    job = TrainingJob(config, ds, store=None, save=False, idle_timeout=None, threads=threads)
    done = threading.Event()
    polls = [0]

    def page():  # the live fragment: poll, then build the chart's table from the snapshot
        while not done.wait(POLL_SECONDS):
            snap = job.poll()
            if snap.points:
                pd.DataFrame(train_form.chart_columns(snap.points))
            snap.progress_text
            polls[0] += 1

    poller = threading.Thread(target=page, daemon=True)
    t = time.perf_counter()
    poller.start()
    snap = job.run()
    seconds = time.perf_counter() - t
    done.set()
    poller.join()
    assert snap.status == "finished", snap
    return seconds


def headless_run(ds, config, threads: int) -> float:
    from threadpoolctl import threadpool_limits

    from scratchnet.training import build_network, train

    net = build_network(config)
    with threadpool_limits(threads, user_api="blas"):
        t = time.perf_counter()
        for p in train(net, ds.X_train, ds.y_train, config, ds.X_val, ds.y_val):
            pass
        seconds = time.perf_counter() - t
    assert p.status == "finished", p
    return seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads (default: the worker's)")
    ap.add_argument("--data-dir", default=None, help="folder with the MNIST .gz files (default: SCRATCHNET_DATA_DIR)")
    args = ap.parse_args(argv)

    from scratchnet.datasets import load_mnist
    from scratchnet.training import PRESETS
    from scratchnet.ui.worker import TrainingJob, blas_threads

    ds = load_mnist(args.data_dir, download=False, fallback=True)
    for note in ds.notes:
        print(f"note: {note}")
    threads = args.threads or blas_threads()
    base = PRESETS[args.preset].replace(epochs=args.epochs, iterations=None)
    # the job picks eval_every (a few records per second); headless uses the very same config
    config = TrainingJob(base, ds, save=False, idle_timeout=None).config
    print(f"{ds.description}; preset {args.preset!r} for {args.epochs:g} epochs, eval_every "
          f"{config.eval_every} steps, {threads} BLAS thread(s); load average {os.getloadavg()[0]:.2f}")

    page, headless = [], []
    for r in range(args.repeats):
        runs = [(page, lambda: page_run(ds, config, threads)), (headless, lambda: headless_run(ds, config, threads))]
        if r % 2:
            runs.reverse()
        for out, fn in runs:
            out.append(fn())
    p, h = statistics.median(page), statistics.median(headless)
    print(f"  headless training : {h:6.2f} s  ({' '.join(f'{x:.2f}' for x in headless)})")
    print(f"  Train page's path : {p:6.2f} s  ({' '.join(f'{x:.2f}' for x in page)})")
    print(f"  ratio page/headless {p / h:.3f} ({'<=' if p / h <= TARGET else 'MISSED'} {TARGET}); "
          f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
