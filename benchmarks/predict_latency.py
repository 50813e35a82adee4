"""Latency of reading one drawing: canvas RGBA 280x280 -> ten probabilities, as the Draw page does.

    python benchmarks/predict_latency.py [--calls 1000]

Each call is ``feedback.read_digit(net, rgba)``, the Draw page's path after the browser's PNG is
decoded: ``imaging.canvas_to_mnist`` (crop, fit into 20x20, centre of mass into 28x28) then
``Network.predict_proba``, for the ``fast`` preset's 784-256-128-10 network and the ``best``
preset's conv net (the weights' values do not change the time). The canvases are 50 different
digits from the bundled MNIST sample, drawn as the canvas sends them (white strokes on black, 10x
larger), used in turn. Reports median and 99th percentile over ``--calls`` calls, plus the parts
and the PNG decode on their own. Targets: fast median <= 1 ms and p99 <= 3 ms; best median <= 3 ms.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

TARGET_MEDIAN_MS = 1.0
TARGET_P99_MS = 3.0
TARGET_BEST_MEDIAN_MS = 3.0


def canvases(count: int = 50, side: int = 280) -> list[np.ndarray]:
    """MNIST digits redrawn as canvas RGBA: 10x bigger, smooth edges, white on opaque black."""
    from PIL import Image

    d = np.load(ROOT / "scratchnet" / "data" / "mnist_sample.npz")
    out = []
    for img in d["images"][:count]:
        big = Image.fromarray(img.reshape(28, 28)).resize((side, side), Image.BILINEAR)
        ink = np.asarray(big)
        rgba = np.empty((side, side, 4), np.uint8)
        rgba[..., :3] = ink[..., None]
        rgba[..., 3] = 255
        out.append(rgba)
    return out


def timed(fn, inputs, calls: int) -> list[float]:
    """Milliseconds per call, cycling through ``inputs``."""
    for x in inputs[:20]:  # warm-up
        fn(x)
    ms = []
    for i in range(calls):
        x = inputs[i % len(inputs)]
        t = time.perf_counter_ns()
        fn(x)
        ms.append((time.perf_counter_ns() - t) / 1e6)
    return ms


def summary(ms: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(ms, n=100)
    return statistics.median(ms), q[98]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=1000)
    args = ap.parse_args(argv)

    from PIL import Image

    from scratchnet import feedback, imaging
    from scratchnet.training import PRESETS, build_network

    net = build_network(PRESETS["fast"])  # the weights' values do not change the time
    best = build_network(PRESETS["best"])
    rgbas = canvases()
    rows = [imaging.canvas_to_mnist(c).reshape(1, -1) for c in rgbas]
    pngs = []
    for c in rgbas:
        buf = io.BytesIO()
        Image.fromarray(c, "RGBA").save(buf, format="PNG")
        pngs.append(buf.getvalue())

    print(f"fast: {net!r}\nbest: {best!r}\n{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    results = {
        "canvas -> probabilities (read_digit)": timed(lambda c: feedback.read_digit(net, c), rgbas, args.calls),
        "  canvas_to_mnist alone": timed(imaging.canvas_to_mnist, rgbas, args.calls),
        "  predict_proba alone (1 row)": timed(net.predict_proba, rows, args.calls),
        "best: canvas -> probabilities": timed(lambda c: feedback.read_digit(best, c), rgbas, args.calls),
        "  best: predict_proba alone (1 row)": timed(best.predict_proba, rows, args.calls),
        "  (PNG decode of the canvas, before)": timed(lambda b: np.asarray(Image.open(io.BytesIO(b))), pngs, args.calls),
    }
    print(f"{'':40s} {'median ms':>10} {'p99 ms':>8}")
    for name, ms in results.items():
        med, p99 = summary(ms)
        print(f"{name:40s} {med:>10.3f} {p99:>8.3f}")
    med, p99 = summary(results["canvas -> probabilities (read_digit)"])
    ok = med <= TARGET_MEDIAN_MS and p99 <= TARGET_P99_MS
    print(f"targets: fast median <= {TARGET_MEDIAN_MS} ms, p99 <= {TARGET_P99_MS} ms: "
          f"{'met' if ok else 'MISSED'} ({args.calls} calls, load average {os.getloadavg()[0]:.2f})")
    bmed, _ = summary(results["best: canvas -> probabilities"])
    print(f"         best median <= {TARGET_BEST_MEDIAN_MS} ms: {'met' if bmed <= TARGET_BEST_MEDIAN_MS else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
