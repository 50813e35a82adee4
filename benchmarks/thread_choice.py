"""How training uses two cores: our own pair of threads, OpenBLAS's threads, or the timed choice.

    python benchmarks/thread_choice.py [--batch-sizes 64,128] [--repeats 3] [--data-dir DIR]

One epoch of the ``fast`` preset (augmentation off) per run, with ``SCRATCHNET_THREADS`` set to
``pair``, ``blas`` and ``auto`` (the default: training times both and uses the faster, see
``ThreadChoice`` in scratchnet/training.py), first on the quiet machine, then while a second
process keeps one core busy (a pure-Python loop), as another user's job would. Runs interleave;
each figure is the median epoch in seconds, with the share of steps that used OpenBLAS's threads.
What ``auto`` should show: about the faster of the two in both conditions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = ("pair", "blas", "auto")


def epoch(X, y, batch_size: int, seed: int, mode: str) -> tuple[float, float]:
    """(seconds, share of steps on OpenBLAS's threads) of vs_torch's epoch, threads as ``mode``."""
    from vs_torch import ours_epoch

    os.environ["SCRATCHNET_THREADS"] = mode
    stats: dict = {}
    seconds, _ = ours_epoch(X, y, batch_size, seed, stats=stats)
    return seconds, stats.get("share_blas", float("nan"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-sizes", default="64,128")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-dir", default=None, help="folder with the MNIST .gz files (default: SCRATCHNET_DATA_DIR)")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    from scratchnet.datasets import load_mnist

    if (os.cpu_count() or 1) < 2:
        print("one core: there is no choice to make")
        return 0
    threadpool_limits(2)
    ds = load_mnist(args.data_dir, download=False, fallback=True)
    for note in ds.notes:
        print(f"note: {note}")
    X, y = ds.X_train, ds.y_train
    print(f"{ds.description}; load average {os.getloadavg()[0]:.2f}")
    epoch(X, y, 128, 99, "auto")  # warm-up
    for condition in ("quiet", "one core busy"):
        busy = None
        if condition != "quiet":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(0.5)
        try:
            for b in (int(s) for s in args.batch_sizes.split(",")):
                runs = {m: [] for m in MODES}
                for r in range(args.repeats):
                    for m in (MODES if r % 2 == 0 else MODES[::-1]):
                        runs[m].append(epoch(X, y, b, r, m))
                cells = "  ".join(
                    f"{m} {statistics.median(t for t, _ in runs[m]):.2f} s"
                    f" (blas {statistics.mean(s for _, s in runs[m]):.0%})" for m in MODES)
                print(f"{condition:>14}, batch {b:>3}: {cells}")
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
