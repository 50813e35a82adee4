"""One epoch of our ``fast`` configuration vs PyTorch eager, side by side in one run.

    python benchmarks/vs_torch.py [--batch-sizes 32,64,128,256,512] [--repeats 9] [--data-dir DIR]

Both train 784-256-128-10 ReLU with Adam (lr 1e-3) on float32 MNIST for one epoch (59,000 digits)
at the same batch size, reshuffling and gathering every batch. PyTorch uses ``fused=True`` Adam
and ``torch.set_num_threads(2)`` (``--threads``); ours is ``PRESETS["fast"]`` with augmentation off. Epochs are
interleaved (ours, torch, torch, ours, ...) so a noisy shared machine hits both alike; each figure
is the median of ``--repeats`` (9) epochs. Targets: ours/torch <= 0.8 at batch 128, <= 1.0 everywhere.

PyTorch is only needed here, never by the app: ``pip install torch==2.13.0`` (on the project's
machines that version is a local CPU wheel; any other version downloads gigabytes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# --code DIR: measure the scratchnet package of another checkout (e.g. a git worktree of an older
# commit, for before/after figures); it must be set before scratchnet is imported.
if "--code" in sys.argv:
    ROOT = Path(sys.argv[sys.argv.index("--code") + 1]).resolve()
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

TARGET_128 = 0.8
TARGET_ALL = 1.0


def load_data(data_dir):
    from scratchnet.datasets import load_mnist

    ds = load_mnist(data_dir, download=False, fallback=True)
    for note in ds.notes:
        print(f"note: {note}")
    return ds


SHARES: dict[int, list[float]] = {}  # batch size -> share of our steps that used OpenBLAS's threads


def ours_epoch(X, y, batch_size: int, seed: int, stats: dict | None = None) -> tuple[float, float]:
    """One epoch of ``fast`` without augmentation: (seconds, mean loss); ``stats`` gets train()'s."""
    from scratchnet.training import PRESETS, build_network, train

    config = PRESETS["fast"].replace(augment=False, epochs=1, batch_size=batch_size, seed=seed)
    net = build_network(config)
    stats = {} if stats is None else stats
    t = time.perf_counter()
    for p in train(net, X, y, config, stats=stats):
        pass
    elapsed = time.perf_counter() - t
    if "share_blas" in stats:
        SHARES.setdefault(batch_size, []).append(stats["share_blas"])
    return elapsed, p.loss


def torch_epoch(torch, Xt, yt, batch_size: int, seed: int) -> tuple[float, float]:
    torch.manual_seed(seed)
    nn = torch.nn
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    loss_fn = nn.CrossEntropyLoss()
    total = 0.0
    t = time.perf_counter()
    perm = torch.randperm(len(Xt))
    for i in range(0, len(Xt), batch_size):
        idx = perm[i : i + batch_size]
        xb, yb = Xt[idx], yt[idx]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        total += loss.detach() * len(idx)
    elapsed = time.perf_counter() - t
    return elapsed, float(total) / len(Xt)


def _share(batch_size: int) -> str:
    shares = SHARES.get(batch_size)
    return f"{statistics.mean(shares):.0%}" if shares else "-"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-sizes", default="32,64,128,256,512")
    ap.add_argument("--repeats", type=int, default=9,
                    help="epochs per side and batch size; the median is reported (with 9, a noisy "
                         "spell of a few seconds on a shared machine moves it less than with 5)")
    ap.add_argument("--threads", type=int, default=2,
                    help="cores each side may use (torch.set_num_threads; our BLAS limit)")
    ap.add_argument("--data-dir", default=None, help="folder with the MNIST .gz files (default: SCRATCHNET_DATA_DIR)")
    ap.add_argument("--code", default=None, help="a checkout whose scratchnet package to measure instead")
    args = ap.parse_args(argv)
    sizes = [int(b) for b in args.batch_sizes.split(",")]

    try:
        import torch
    except ImportError:
        print("PyTorch is not installed; this comparison needs it (the app never does):\n"
              "    pip install torch==2.13.0")
        return 0
    torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)  # ours: BLAS threads, and with 1 also no second thread of ours

    ds = load_data(args.data_dir)
    X, y = ds.X_train, ds.y_train
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    print(f"{ds.description}; torch {torch.__version__}, numpy {np.__version__}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")

    # one warm-up epoch each at the first size, not timed (first-touch page faults, lazy init)
    ours_epoch(X, y, sizes[0], 99)
    torch_epoch(torch, Xt, yt, sizes[0], 99)

    times = {b: ([], []) for b in sizes}
    losses = {b: ([], []) for b in sizes}
    for r in range(args.repeats):
        for b in sizes:
            runs = [("ours", lambda: ours_epoch(X, y, b, r)), ("torch", lambda: torch_epoch(torch, Xt, yt, b, r))]
            if r % 2:
                runs.reverse()
            for name, fn in runs:
                seconds, loss = fn()
                k = 0 if name == "ours" else 1
                times[b][k].append(seconds)
                losses[b][k].append(loss)

    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    print(f"{'batch':>6} {'ours s':>8} {'torch s':>8} {'ratio':>6} {'target':>7}  "
          f"{'ours loss':>9} {'torch loss':>10} {'blas':>5}  all epochs (ours | torch)")
    ok = True
    for b in sizes:
        o, t = statistics.median(times[b][0]), statistics.median(times[b][1])
        ratio = o / t
        target = TARGET_128 if b == 128 else TARGET_ALL
        met = ratio <= target
        ok &= met
        print(f"{b:>6} {o:>8.3f} {t:>8.3f} {ratio:>6.2f} {'<=' if met else 'MISSED'} {target:.1f}  "
              f"{statistics.median(losses[b][0]):>9.4f} {statistics.median(losses[b][1]):>10.4f} "
              f"{_share(b):>5}  "
              f"{' '.join(f'{x:.2f}' for x in times[b][0])} | {' '.join(f'{x:.2f}' for x in times[b][1])}")
    print("all targets met" if ok else "some targets missed (a busy machine? compare the load averages)")
    print("blas: share of our steps that used OpenBLAS's threads rather than our own pair of threads "
          "(training times both and takes the faster; see ThreadChoice in scratchnet/training.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
