"""Seconds of training until the ``fast`` preset first reaches 97%, 98% and 98.5% test accuracy.

    python benchmarks/time_to_accuracy.py [--data-dir DIR] [--preset fast] [--per-epoch 8]
                                          [--csv benchmarks/results/time_to_accuracy.csv]
                                          [--png docs/time_to_accuracy.png]

Trains the preset exactly as shipped (augmentation, schedule and all) on full MNIST; only
``eval_every`` is made finer (``--per-epoch`` records per epoch), which changes when progress is
reported, not what is learned. The clock counts the time spent inside the training loop (including
its own validation passes) and stops while this script measures test accuracy at each record.
Writes the (seconds, epoch, test accuracy) curve as CSV and plots it as a PNG with Pillow (no
matplotlib). Takes about as long as the preset's training (15-20 s on a quiet machine, 30 s when busy).
Targets: 97% within 8 s, 98% within 30 s.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

THRESHOLDS = (0.97, 0.98, 0.985)
TARGETS = {0.97: 8.0, 0.98: 30.0}


def run(ds, preset: str, per_epoch: int):
    from scratchnet.training import PRESETS, build_network, train

    config = PRESETS[preset]
    steps = config.steps_per_epoch(len(ds.X_train))
    config = config.replace(eval_every=max(1, steps // per_epoch))
    net = build_network(config)
    curve = [(0.0, 0.0, net.accuracy(ds.X_test, ds.y_test))]
    clock = 0.0
    gen = train(net, ds.X_train, ds.y_train, config, ds.X_val, ds.y_val)
    while True:
        t = time.perf_counter()
        p = next(gen, None)
        clock += time.perf_counter() - t
        if p is None:
            break
        curve.append((clock, p.epoch, net.accuracy(ds.X_test, ds.y_test)))
        if p.done:
            print(f"{preset}: {p.status} after {p.epoch:g} epochs, {clock:.1f} s of training")
    return config, curve


def first_reached(curve, threshold):
    for seconds, epoch, acc in curve:
        if acc >= threshold:
            return seconds, epoch
    return None


def plot(curve, path: Path, title: str) -> None:
    """A small line chart of test accuracy against seconds, drawn with Pillow."""
    from PIL import Image, ImageDraw, ImageFont

    W, H, left, right, top, bottom = 720, 420, 70, 20, 40, 50
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    t_max = max([s for s, _, _ in curve] + list(TARGETS.values())) * 1.05
    lo, hi = 0.95, 1.0

    def xy(s, a):
        a = min(max(a, lo), hi)
        return left + (W - left - right) * s / t_max, top + (H - top - bottom) * (hi - a) / (hi - lo)

    for a in (0.95, 0.96, 0.97, 0.98, 0.99, 1.0):  # horizontal grid
        _, y = xy(0, a)
        d.line([(left, y), (W - right, y)], fill=(225, 225, 225))
        d.text((8, y - 6), f"{a:.0%}", fill="black", font=font)
    step = next(s for s in (1, 2, 5, 10, 20, 30, 60, 120) if t_max / s <= 10)
    s = 0
    while s <= t_max:
        x, _ = xy(s, lo)
        d.line([(x, top), (x, H - bottom)], fill=(235, 235, 235))
        d.text((x - 6, H - bottom + 6), f"{s:g}", fill="black", font=font)
        s += step
    for thr, limit in TARGETS.items():  # the targets as small crosses
        x, y = xy(limit, thr)
        d.line([(x - 5, y), (x + 5, y)], fill=(200, 60, 60), width=2)
        d.line([(x, y - 5), (x, y + 5)], fill=(200, 60, 60), width=2)
        label = f"target: {thr:.0%} by {limit:g} s"
        d.text((x - 8 - 6 * len(label) if x > W * 0.7 else x + 6, y + 4), label, fill=(200, 60, 60), font=font)
    points = [xy(s, a) for s, _, a in curve]
    d.line(points, fill=(30, 90, 200), width=2)
    for x, y in points:
        d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(30, 90, 200))
    d.rectangle([left, top, W - right, H - bottom], outline="black")
    d.text((left, 12), title, fill="black", font=font)
    d.text((W // 2 - 60, H - 22), "seconds of training", fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None, help="folder with the MNIST .gz files (default: SCRATCHNET_DATA_DIR)")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--per-epoch", type=int, default=8, help="test-accuracy points per epoch")
    ap.add_argument("--csv", default=str(ROOT / "benchmarks" / "results" / "time_to_accuracy.csv"))
    ap.add_argument("--png", default=str(ROOT / "docs" / "time_to_accuracy.png"))
    args = ap.parse_args(argv)

    from scratchnet.datasets import load_mnist

    ds = load_mnist(args.data_dir, download=False, fallback=False)
    print(f"{ds.description}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    config, curve = run(ds, args.preset, args.per_epoch)
    print(f"load average after: {os.getloadavg()[0]:.2f}")

    for thr in THRESHOLDS:
        hit = first_reached(curve, thr)
        target = TARGETS.get(thr)
        verdict = ""
        if target is not None:
            verdict = f"  ({'<=' if hit and hit[0] <= target else 'MISSED'} target {target:g} s)"
        if hit:
            print(f"  {thr:.1%} test accuracy after {hit[0]:6.2f} s (epoch {hit[1]:.2f}){verdict}")
        else:
            print(f"  {thr:.1%} test accuracy never reached (best {max(a for _, _, a in curve):.2%}){verdict}")
    print(f"  final test accuracy {curve[-1][2]:.2%} after {curve[-1][0]:.1f} s")

    csv_path = Path(args.csv)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seconds", "epoch", "test_accuracy"])
        for s, e, a in curve:
            w.writerow([f"{s:.3f}", f"{e:.4f}", f"{a:.4f}"])
    desc = (f"'{args.preset}' preset on MNIST: test accuracy vs training time "
            f"({'augmented, ' if config.augment else ''}{config.epochs:g} epochs, batch {config.batch_size})")
    plot(curve, Path(args.png), desc)
    print(f"wrote {csv_path} and {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
