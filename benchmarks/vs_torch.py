"""One epoch of training, ours vs PyTorch eager, side by side in one run: the MLP and the conv net.

    python benchmarks/vs_torch.py [--batch-sizes 32,64,128,256,512] [--repeats 9]
                                  [--conv-repeats 3] [--no-conv] [--no-mlp] [--before DIR] [--data-dir DIR]

MLP: both train 784-256-128-10 ReLU with Adam (lr 1e-3) on float32 MNIST for one epoch (59,000
digits) at each batch size, reshuffling and gathering every batch; ours is ``PRESETS["fast"]`` with
augmentation off. Conv net: ``conv16-5,maxpool2,conv32-5,maxpool2,dense128`` (5x5 "same"
convolutions, ReLU, 2x2 max-pooling, a dense layer of 128, softmax), Adam, batch 128, no
augmentation, one epoch. PyTorch uses ``fused=True`` Adam and ``torch.set_num_threads(2)``
(``--threads``), the same layers, NCHW. Epochs are interleaved (ours, torch, torch, ours, ...) so a
noisy shared machine hits both alike; each figure is the median of the repeats.

Targets: MLP ours/torch <= 0.8 at batch 128 and <= 1.0 at every size; conv net <= 1.0.

``--before DIR`` also times the MLP at batch 128 with the ``scratchnet`` package of another
checkout (e.g. ``git archive <commit> scratchnet | tar -x -C DIR``), in a child process, interleaved
with ours and PyTorch's in the same run: before and after side by side.

PyTorch is only needed here, never by the app: ``pip install torch==2.13.0`` (on the project's
machines that version is a local CPU wheel; any other version downloads gigabytes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# --code DIR: measure the scratchnet package of another checkout; it must be set before import.
if "--code" in sys.argv:
    ROOT = Path(sys.argv[sys.argv.index("--code") + 1]).resolve()
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

TARGET_128 = 0.8
TARGET_ALL = 1.0
TARGET_CONV = 1.0
CONV = "conv16-5,maxpool2,conv32-5,maxpool2,dense128"


def load_data(data_dir, quiet=False):
    from scratchnet.datasets import load_mnist

    ds = load_mnist(data_dir, download=False, fallback=True)
    for note in ds.notes:
        if not quiet:
            print(f"note: {note}")
    return ds


SHARES: dict[str, list[float]] = {}  # run -> share of our steps that used OpenBLAS's threads


def ours_epoch(X, y, batch_size: int, seed: int, layers: str | None = None,
               stats: dict | None = None) -> tuple[float, float]:
    """One epoch of ``fast`` (or of ``layers``) without augmentation: (seconds, mean loss).

    ``stats`` (optional) receives the training loop's figures, e.g. ``share_blas``.
    """
    from scratchnet.training import PRESETS, build_network, train

    config = PRESETS["fast"].replace(augment=False, epochs=1, batch_size=batch_size, seed=seed)
    if layers is not None:
        config = config.replace(layers=layers, lr_schedule="constant")
    net = build_network(config)
    stats = {} if stats is None else stats
    t = time.perf_counter()
    for p in train(net, X, y, config, stats=stats):
        pass
    elapsed = time.perf_counter() - t
    if "share_blas" in stats:
        SHARES.setdefault(layers or str(batch_size), []).append(stats["share_blas"])
    return elapsed, p.loss


def torch_model(torch, conv: bool):
    nn = torch.nn
    if not conv:
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def torch_epoch(torch, Xt, yt, batch_size: int, seed: int, conv: bool = False) -> tuple[float, float]:
    torch.manual_seed(seed)
    model = torch_model(torch, conv)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    loss_fn = torch.nn.CrossEntropyLoss()
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


def _share(key: str) -> str:
    shares = SHARES.get(key)
    return f"{statistics.mean(shares):.0%}" if shares else "-"


class Before:
    """The MLP epoch of another checkout, in a child process that stays up between epochs."""

    def __init__(self, code: str, data_dir, threads: int):
        cmd = [sys.executable, __file__, "--serve", "--code", code, "--threads", str(threads)]
        if data_dir:
            cmd += ["--data-dir", data_dir]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.code = code
        assert self.proc.stdout.readline().strip() == "ready"

    def epoch(self, batch_size: int, seed: int) -> tuple[float, float]:
        self.proc.stdin.write(f"{batch_size} {seed}\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        return out["seconds"], out["loss"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def serve(args) -> int:
    """Child mode: read 'batch seed' lines, answer with one JSON line per epoch."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    ds = load_data(args.data_dir, quiet=True)
    X, y = ds.X_train, ds.y_train
    ours_epoch(X, y, 128, 99)  # warm-up
    print("ready", flush=True)
    for line in sys.stdin:
        b, seed = (int(v) for v in line.split())
        seconds, loss = ours_epoch(X, y, b, seed)
        print(json.dumps({"seconds": seconds, "loss": loss}), flush=True)
    return 0


def _row(label, o, t, target, lo, lt, share, ours_all, torch_all) -> tuple[str, bool]:
    ratio = o / t
    met = ratio <= target
    return (f"{label:>8} {o:>8.3f} {t:>8.3f} {ratio:>6.2f} {'<=' if met else 'MISSED'} {target:.1f}  "
            f"{lo:>9.4f} {lt:>10.4f} {share:>5}  "
            f"{' '.join(f'{x:.2f}' for x in ours_all)} | {' '.join(f'{x:.2f}' for x in torch_all)}"), met


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-sizes", default="32,64,128,256,512", help="MLP batch sizes")
    ap.add_argument("--repeats", type=int, default=9,
                    help="MLP epochs per side and batch size; the median is reported (with 9, a noisy "
                         "spell of a few seconds on a shared machine moves it less than with 5)")
    ap.add_argument("--conv-repeats", type=int, default=3, help="conv-net epochs per side (each ~10-30 s)")
    ap.add_argument("--no-conv", action="store_true", help="skip the conv net")
    ap.add_argument("--no-mlp", action="store_true", help="skip the MLP")
    ap.add_argument("--before", default=None, metavar="DIR",
                    help="also time the MLP at batch 128 with the scratchnet package in DIR (before/after)")
    ap.add_argument("--threads", type=int, default=2,
                    help="cores each side may use (torch.set_num_threads; our BLAS limit)")
    ap.add_argument("--data-dir", default=None, help="folder with the MNIST .gz files (default: SCRATCHNET_DATA_DIR)")
    ap.add_argument("--code", default=None, help="a checkout whose scratchnet package to measure instead")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        return serve(args)
    sizes = [] if args.no_mlp else [int(b) for b in args.batch_sizes.split(",")]

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
    Xt4 = Xt.reshape(-1, 1, 28, 28)
    print(f"{ds.description}; torch {torch.__version__}, numpy {np.__version__}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    before = Before(args.before, args.data_dir, args.threads) if args.before and 128 in sizes else None

    ok = True
    header = (f"{'run':>8} {'ours s':>8} {'torch s':>8} {'ratio':>6} {'target':>7}  "
              f"{'ours loss':>9} {'torch loss':>10} {'blas':>5}  all epochs (ours | torch)")
    if sizes:
        # one warm-up epoch each at the first size, not timed (first-touch page faults, lazy init)
        ours_epoch(X, y, sizes[0], 99)
        torch_epoch(torch, Xt, yt, sizes[0], 99)
        times = {b: ([], [], []) for b in sizes}
        losses = {b: ([], [], []) for b in sizes}
        for r in range(args.repeats):
            for b in sizes:
                runs = [(0, lambda: ours_epoch(X, y, b, r)), (1, lambda: torch_epoch(torch, Xt, yt, b, r))]
                if before is not None and b == 128:
                    runs.append((2, lambda: before.epoch(b, r)))
                if r % 2:
                    runs.reverse()
                for k, fn in runs:
                    seconds, loss = fn()
                    times[b][k].append(seconds)
                    losses[b][k].append(loss)
        print(f"\nMLP 784-256-128-10, one epoch; load average after: {os.getloadavg()[0]:.2f}")
        print(header)
        for b in sizes:
            o, t = statistics.median(times[b][0]), statistics.median(times[b][1])
            line, met = _row(f"mlp {b}", o, t, TARGET_128 if b == 128 else TARGET_ALL,
                             statistics.median(losses[b][0]), statistics.median(losses[b][1]), _share(str(b)),
                             times[b][0], times[b][1])
            ok &= met
            print(line)
            if times[b][2]:
                bo = statistics.median(times[b][2])
                print(f"{'before':>8} {bo:>8.3f} {t:>8.3f} {bo / t:>6.2f}  (scratchnet of {args.before}; "
                      f"epochs {' '.join(f'{x:.2f}' for x in times[b][2])})")
    if before is not None:
        before.close()

    if not args.no_conv:
        Xc = X  # rows; the net reads them as 28x28 images
        ours_epoch(Xc[:5000], y[:5000], 128, 99, CONV)  # warm-up on a slice
        torch_epoch(torch, Xt4[:5000], yt[:5000], 128, 99, conv=True)
        ct = ([], [])
        cl = ([], [])
        for r in range(args.conv_repeats):
            runs = [(0, lambda: ours_epoch(Xc, y, 128, r, CONV)), (1, lambda: torch_epoch(torch, Xt4, yt, 128, r, conv=True))]
            if r % 2:
                runs.reverse()
            for k, fn in runs:
                seconds, loss = fn()
                ct[k].append(seconds)
                cl[k].append(loss)
        print(f"\nconv net {CONV}, Adam, batch 128, one epoch; load average after: {os.getloadavg()[0]:.2f}")
        print(header)
        line, met = _row("conv 128", statistics.median(ct[0]), statistics.median(ct[1]), TARGET_CONV,
                         statistics.median(cl[0]), statistics.median(cl[1]), _share(CONV), ct[0], ct[1])
        ok &= met
        print(line)
    print("all targets met" if ok else "some targets missed (a busy machine? compare the load averages)")
    print("blas: share of our steps that used OpenBLAS's threads rather than our own pair of threads "
          "(training times both and takes the faster; see ThreadChoice in scratchnet/fast/threads.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
