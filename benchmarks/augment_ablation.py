"""What each augmentation part buys: MNIST test accuracy and accuracy per real writer.

Trains the ``fast`` preset (784-256-128-10 ReLU MLP, Adam, batch 128, cosine schedule) on full
MNIST once per augmentation setting and seed, then reads the hand-drawn digits of each writer in
``--drawn-dir`` (``labels.csv``: filename,label,...; the writer is the file's folder) through the
Draw page's pipeline (``scratchnet.imaging.load_image`` + ``scratchnet.feedback.to_input``, as in
benchmarks/drawn_accuracy.py), precomputed once. Prints one row per run and the mean per setting:
MNIST validation and test accuracy, accuracy per writer, how many of each writer's 1s were read
as 7, and training seconds (``Progress.seconds`` of the last record: the training loop's own clock,
including its once-per-epoch validation pass). On a shared machine the seconds depend on what else
runs: each run also records its CPU seconds and how busy the cores were just before it ("busy",
0-2 cores), and ``--wait-quiet S`` waits up to S seconds for the other processes to go quiet.

    python benchmarks/augment_ablation.py                       # none / affine / +each part / all
    python benchmarks/augment_ablation.py --augment affine+flag all --seeds 0 1 2 --epochs 8
    python benchmarks/augment_ablation.py --augment all --aug-kw alpha=20 thickness_range=-0.5,1

``--augment`` takes names of the ablation (``none affine +elastic +thickness +flag all``) or any
parts string (``affine+elastic+flag``). ``--aug-kw`` overrides keyword arguments of
``augment_batch`` (alpha, sigma, thickness_range, flag_fraction, ...) for this script's runs only:
TrainConfig names parts, not their strengths. ``--jsonl FILE`` appends every run as a JSON line.

Never run by the tests (they must not need /work/shared). Only one training runs at a time.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scratchnet import augment as augment_module  # noqa: E402
from scratchnet import feedback  # noqa: E402
from scratchnet.datasets import load_mnist  # noqa: E402
from scratchnet.errors import EmptyImageError  # noqa: E402
from scratchnet.imaging import load_image  # noqa: E402
from scratchnet.training import PRESETS, fit  # noqa: E402
from preset_targets import drawn_dir  # noqa: E402

ABLATION = {
    "none": "none",
    "affine": "affine",
    "+elastic": "affine+elastic",
    "+thickness": "affine+thickness",
    "+flag": "affine+flag",
    "all": "affine+elastic+thickness+flag",
}


def read_drawn(directory: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{writer: (X (n, 784) float32 through the app's pipeline, y)}; writer = the file's folder."""
    rows: dict[str, tuple[list, list]] = {}
    with open(directory / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            folder = row["filename"].split("/")[0]
            writer = folder.split("__")[-1]  # "niklashenning__hwd-1000-dataset" -> "hwd-1000-dataset"
            try:
                x = feedback.to_input(load_image(directory / row["filename"])).ravel()
            except EmptyImageError:
                x = np.zeros(784, np.float32)
            xs, ys = rows.setdefault(writer, ([], []))
            xs.append(x)
            ys.append(int(row["label"]))
    return {w: (np.asarray(xs, np.float32), np.asarray(ys)) for w, (xs, ys) in sorted(rows.items())}


def parse_kw(items: list[str]) -> dict:
    """['alpha=20', 'thickness_range=-0.5,1'] -> {'alpha': 20.0, 'thickness_range': (-0.5, 1.0)}."""
    kw = {}
    for item in items:
        key, _, value = item.partition("=")
        nums = tuple(float(v) for v in value.split(","))
        kw[key.strip()] = nums[0] if len(nums) == 1 else nums
    return kw


def busy_cores(seconds: float = 0.5) -> float:
    """How many cores other processes kept busy over ``seconds`` (we sleep meanwhile); Linux."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v) - v[3] - v[4], sum(v)  # (busy, total) jiffies; 3 = idle, 4 = iowait
    try:
        b0, t0 = sample()
        time.sleep(seconds)
        b1, t1 = sample()
    except OSError:
        return float("nan")
    return (b1 - b0) / max(t1 - t0, 1) * (os.cpu_count() or 1)


def wait_quiet(limit: float, threshold: float = 0.15) -> float:
    """Wait up to ``limit`` seconds until other processes use less than ``threshold`` cores."""
    end = time.monotonic() + limit
    busy = busy_cores()
    while busy > threshold and time.monotonic() < end:
        time.sleep(2)
        busy = busy_cores()
    return busy


def run(parts: str, seed: int, ds, drawn, *, epochs, hidden, aug_kw, busy=float("nan")) -> dict:
    config = PRESETS["fast"].replace(augment=parts, seed=seed, epochs=epochs, hidden=hidden)
    original = augment_module.augment_batch
    if aug_kw:  # train() looks augment_batch up in the module when it starts
        augment_module.augment_batch = functools.partial(original, **aug_kw)
    cpu = time.process_time()
    try:
        net, history = fit(config, ds.X_train, ds.y_train, ds.X_val, ds.y_val)
        cpu = time.process_time() - cpu
    finally:
        augment_module.augment_batch = original
    last = history[-1]
    res = {
        "parts": parts, "seed": seed, "epochs": epochs, "hidden": list(hidden), "aug_kw": aug_kw,
        "status": last.status, "seconds": round(last.seconds, 2), "cpu_seconds": round(cpu, 2),
        "busy_before": round(busy, 2),
        "val": last.val_accuracy, "test": net.accuracy(ds.X_test, ds.y_test), "writers": {},
    }
    for writer, (X, y) in drawn.items():
        pred = net.predict(X)
        res["writers"][writer] = {
            "accuracy": float((pred == y).mean()), "n": len(y),
            "wrong": int((pred != y).sum()), "ones_as_7": int(((y == 1) & (pred == 7)).sum()),
        }
    return res


def print_table(results: list[dict], writers: list[str]) -> None:
    head = f"{'augment':32} {'seed':>4} {'val':>6} {'test':>6} " + " ".join(
        f"{w[:14]:>14} {'1->7':>4}" for w in writers) + f" {'seconds':>7} {'cpu s':>6} {'busy':>4}"
    print(head)
    print("-" * len(head))

    def row(label, seed, rs):
        mean = lambda f: statistics.mean(f(r) for r in rs)  # noqa: E731
        cells = [f"{label:32.32} {seed:>4} {100 * mean(lambda r: r['val']):6.2f} "
                 f"{100 * mean(lambda r: r['test']):6.2f}"]
        for w in writers:
            cells.append(f"{100 * mean(lambda r: r['writers'][w]['accuracy']):14.2f} "
                         f"{mean(lambda r: r['writers'][w]['ones_as_7']):4.1f}")
        cells.append(f"{mean(lambda r: r['seconds']):7.1f} {mean(lambda r: r['cpu_seconds']):6.1f} "
                     f"{mean(lambda r: r['busy_before']):4.1f}")
        print(" ".join(cells))

    groups: dict[str, list[dict]] = {}
    for r in results:
        label = r["parts"] + (f" e{r['epochs']:g}" if r["epochs"] != 10 else "") + (
            f" h{'-'.join(map(str, r['hidden']))}" if r["hidden"] not in ([256, 128], ["conv"]) else "") + (
            " " + " ".join(f"{k}={v}" for k, v in r["aug_kw"].items()) if r["aug_kw"] else "")
        groups.setdefault(label, []).append(r)
    for label, rs in groups.items():
        for r in rs:
            row(label, r["seed"], [r])
        if len(rs) > 1:
            row(label, "mean", rs)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("SCRATCHNET_DATA_DIR"),
                    help="folder with the MNIST .gz files (default: SCRATCHNET_DATA_DIR)")
    ap.add_argument("--drawn-dir", default=None,
                    help="folder with labels.csv (default: SCRATCHNET_DRAWN_DIR, else ../shared/data/drawn-dev)")
    ap.add_argument("--augment", nargs="+", default=list(ABLATION),
                    help="ablation names (" + ", ".join(ABLATION) + ") or parts strings")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--epochs", type=float, default=10)
    ap.add_argument("--hidden", default="256,128", help="hidden layer sizes, e.g. 256,128")
    ap.add_argument("--aug-kw", nargs="*", default=[], metavar="KEY=VALUE",
                    help="augment_batch keyword overrides, e.g. alpha=20 thickness_range=-0.5,1")
    ap.add_argument("--jsonl", help="append every run as a JSON line to this file")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                    help="before each run, wait up to S seconds for other processes to go quiet")
    args = ap.parse_args(argv)

    ds = load_mnist(args.data_dir, download=False, fallback=False)
    where = drawn_dir(args.drawn_dir)
    if where is None:
        sys.exit("no hand-drawn digits found: give --drawn-dir (a folder with labels.csv) or set SCRATCHNET_DRAWN_DIR")
    drawn = read_drawn(where)
    print(ds.description + "; drawn: " + ", ".join(f"{w} {len(y)}" for w, (_, y) in drawn.items()),
          flush=True)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    aug_kw = parse_kw(args.aug_kw)
    results = []
    for name in args.augment:
        parts = ABLATION.get(name, name)
        for seed in args.seeds:
            busy = wait_quiet(args.wait_quiet) if args.wait_quiet else busy_cores()
            r = run(parts, seed, ds, drawn, epochs=args.epochs, hidden=hidden, aug_kw=aug_kw, busy=busy)
            results.append(r)
            print(json.dumps(r), flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(json.dumps(r) + "\n")
    print()
    print_table(results, list(drawn))


if __name__ == "__main__":
    main()
