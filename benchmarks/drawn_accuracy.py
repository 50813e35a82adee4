"""How well do MNIST-trained networks read digits people draw, through the Draw page's pipeline?

Trains (or loads) the "fast" preset on full MNIST and the notebook preset, then reports accuracy on
a folder of hand-drawn digits (``filename,label`` in ``labels.csv``; default: the drawn-dev set
next to the repository) and on harder variants built from those drawings:

  canvas-280     re-rendered on a 280x280 canvas with thick white strokes on black (the Draw page)
  off-centre     drawn at ~half size somewhere off the middle of a 280x280 canvas
  small-corner   drawn ~50 px tall in a corner of the canvas
  inverted       white ink on black paper instead of black on white
  photo          dark-grey ink on grey paper, blurred, with sensor noise (like a phone photo)
  photo-jpeg     the photo saved as a low-quality JPEG (quality 35)
  photo-shadow   the photo with uneven light: one corner of the paper 60 grey levels darker

Each is read through ``scratchnet.feedback.to_input`` (imaging's pipeline) and, for comparison,
"resize-only": grey, scaled to 28x28, inverted if the paper is light - no crop, no centring.
Also: MNIST test accuracy on the raw images vs the same images through the pipeline (it should
change them very little), the median latency from the canvas PNG to ten probabilities, and that of
``canvas_to_mnist`` alone.

    SCRATCHNET_DATA_DIR=/work/shared/data/mnist python benchmarks/drawn_accuracy.py
    python benchmarks/drawn_accuracy.py --model benchmarks/out/fast.npz --notebook-model benchmarks/out/notebook.npz

Trained models are saved in benchmarks/out/ (git-ignored) so a rerun can skip training.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scratchnet import feedback  # noqa: E402
from scratchnet.datasets import load_mnist  # noqa: E402
from scratchnet.errors import EmptyImageError  # noqa: E402
from scratchnet.imaging import canvas_to_mnist, load_image  # noqa: E402
from scratchnet.store import load_model, save_model  # noqa: E402
from scratchnet.training import PRESETS, fit  # noqa: E402

OUT = ROOT / "benchmarks" / "out"


# --------------------------------------------------------------------------- data


def read_drawn(directory: Path) -> tuple[list[Image.Image], np.ndarray]:
    images, labels = [], []
    with open(directory / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            images.append(load_image(directory / row["filename"]).convert("L"))
            labels.append(int(row["label"]))
    return images, np.asarray(labels)


def ink(im: Image.Image) -> np.ndarray:
    """Dark-on-light greyscale -> float ink in [0, 1] (1 = full ink)."""
    a = 255.0 - np.asarray(im.convert("L"), np.float32)
    return np.clip(a / max(a.max(), 1.0), 0, 1)


def ink_image(ink01: np.ndarray, side: int) -> Image.Image:
    """Ink cropped to its bounding box and scaled so the longer side is ``side`` px."""
    r, c = np.flatnonzero(ink01.max(1) > 0.1), np.flatnonzero(ink01.max(0) > 0.1)
    crop = ink01[r[0] : r[-1] + 1, c[0] : c[-1] + 1]
    h, w = crop.shape
    s = side / max(h, w)
    im = Image.fromarray((crop * 255).astype(np.uint8))
    return im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BICUBIC)


def canvas(glyph: Image.Image, top_left, size=280, thick=0) -> np.ndarray:
    """White strokes on an opaque black RGBA canvas, as streamlit-drawable-canvas returns it."""
    g = glyph.point(lambda v: 255 if v > 100 else 0)
    if thick:
        g = g.filter(ImageFilter.MaxFilter(thick))
    g = g.filter(ImageFilter.GaussianBlur(1))  # anti-aliased edges, like the browser's
    field = Image.new("L", (size, size), 0)
    field.paste(g, top_left)
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., :3] = np.asarray(field)[..., None]
    rgba[..., 3] = 255
    return rgba


def photo(glyph: Image.Image, rng: np.random.Generator, size=400, shadow=0.0) -> Image.Image:
    """Dark-grey ink on grey paper, slightly blurred, with noise (RGB).

    ``shadow``: how many grey levels darker one corner of the paper is than the opposite one.
    """
    yy, xx = np.mgrid[0:size, 0:size] / size
    paper = 185 - shadow / 2 + shadow * (0.6 * xx + 0.4 * yy) + rng.normal(0, 3, (size, size))
    gl = np.zeros((size, size), np.float32)
    g = np.asarray(glyph, np.float32) / 255
    oy, ox = (size - g.shape[0]) // 2 + rng.integers(-30, 31), (size - g.shape[1]) // 2 + rng.integers(-30, 31)
    gl[oy : oy + g.shape[0], ox : ox + g.shape[1]] = g
    img = paper * (1 - 0.7 * gl) + rng.normal(0, 10, (size, size))
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.2))
    tint = np.asarray(im, np.float32)[..., None] * np.array([1.0, 0.97, 0.9], np.float32)
    return Image.fromarray(np.clip(tint, 0, 255).astype(np.uint8), "RGB")


def jpeg(im: Image.Image, quality=35) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def variants(images: list[Image.Image], seed: int = 0) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {k: [] for k in ("canvas-280", "off-centre", "small-corner", "inverted", "photo", "photo-jpeg", "photo-shadow")}
    for im in images:
        a = ink(im)
        big = ink_image(a, 200)
        out["canvas-280"].append(canvas(big, ((280 - big.width) // 2, (280 - big.height) // 2), thick=9))
        half = ink_image(a, 120)
        x = int(rng.integers(0, 280 - half.width))
        y = int(rng.integers(0, 280 - half.height))
        out["off-centre"].append(canvas(half, (x, y), thick=7))
        tiny = ink_image(a, 50)
        corner = rng.integers(0, 4)
        x = 8 if corner % 2 == 0 else 280 - 8 - tiny.width
        y = 8 if corner < 2 else 280 - 8 - tiny.height
        out["small-corner"].append(canvas(tiny, (x, y), thick=3))
        out["inverted"].append(Image.fromarray(255 - np.asarray(im.convert("L"))))
        glyph = ink_image(a, 260).filter(ImageFilter.MaxFilter(5))
        p = photo(glyph, rng)
        out["photo"].append(p)
        out["photo-jpeg"].append(jpeg(p))
        out["photo-shadow"].append(photo(glyph, rng, shadow=60))
    return out


# --------------------------------------------------------------------------- preprocessing


def pipeline(items) -> tuple[np.ndarray, int]:
    """Every item through the Draw page's preprocessing; empty ones become blank rows."""
    X = np.zeros((len(items), 784), np.float32)
    empty = 0
    for i, it in enumerate(items):
        try:
            X[i] = feedback.to_input(it).ravel()
        except EmptyImageError:
            empty += 1
    return X, empty


def resize_only(items) -> np.ndarray:
    """The naive baseline: grey, scale to 28x28, invert when the paper is light; nothing else."""
    X = np.zeros((len(items), 784), np.float32)
    for i, it in enumerate(items):
        im = Image.fromarray(it).convert("L") if isinstance(it, np.ndarray) else it.convert("L")
        a = np.asarray(im.resize((28, 28), Image.BILINEAR), np.float32) / 255
        X[i] = (1 - a if a.mean() > 0.5 else a).ravel()
    return X


# --------------------------------------------------------------------------- models


def get_model(preset: str, path: str | None, ds, out_dir: Path):
    if path:
        net, meta = load_model(path)
        print(f"{preset}: loaded {path}")
        return net
    t = time.perf_counter()
    net, hist = fit(PRESETS[preset], ds.X_train, ds.y_train, ds.X_val, ds.y_val)
    secs = time.perf_counter() - t
    test = net.accuracy(ds.X_test, ds.y_test)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_model(out_dir / f"{preset}.npz", net, {
        "config": PRESETS[preset].to_dict(), "preset": preset,
        "dataset": {"name": ds.name, "n_train": len(ds.X_train), "n_val": len(ds.X_val), "n_test": len(ds.X_test)},
        "metrics": {"val_accuracy": hist[-1].val_accuracy, "test_accuracy": test,
                    "train_seconds": secs, "steps": hist[-1].step, "epochs": hist[-1].epoch},
    })
    print(f"{preset}: trained in {secs:.0f} s, val {hist[-1].val_accuracy:.2%}, test {test:.2%} "
          f"-> {out_dir / (preset + '.npz')}")
    return net


def preprocessing_latency(items, repeats: int = 200) -> float:
    """Median ms of ``canvas_to_mnist`` alone on decoded canvas arrays (the 28x28 pipeline)."""
    times = []
    for i in range(repeats):
        rgba = items[i % len(items)]
        t = time.perf_counter()
        canvas_to_mnist(rgba)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def latency(net, items, repeats: int = 200) -> float:
    """Median ms from the canvas's PNG data URL (what the browser sends) to ten probabilities."""
    urls = []
    for rgba in items[:20]:
        buf = io.BytesIO()
        Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
        urls.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
    times = []
    for i in range(repeats):
        url = urls[i % len(urls)]
        t = time.perf_counter()
        rgba = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(";base64,", 1)[1]))))
        feedback.read_digit(net, rgba)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--drawn-dir", default=str(ROOT.parent / "shared" / "data" / "drawn-dev"))
    ap.add_argument("--mnist-dir", default=os.environ.get("SCRATCHNET_DATA_DIR", "/work/shared/data/mnist"))
    ap.add_argument("--model", help="a saved fast model (.npz) instead of training one")
    ap.add_argument("--notebook-model", help="a saved notebook-preset model instead of training one")
    ap.add_argument("--skip-notebook", action="store_true")
    ap.add_argument("--out", default=str(OUT), help="where trained models are saved")
    args = ap.parse_args(argv)

    ds = load_mnist(args.mnist_dir, download=False, fallback=False)
    print(ds.description)
    nets = {"fast": get_model("fast", args.model, ds, Path(args.out))}
    if not args.skip_notebook:
        nets["notebook"] = get_model("notebook", args.notebook_model, ds, Path(args.out))

    images, y = read_drawn(Path(args.drawn_dir))
    print(f"\n{len(images)} drawn digits from {args.drawn_dir}")
    sets = {"drawn-dev": images, **variants(images)}
    header = f"{'set':<14}" + "".join(f"{name + ' pipeline':>19}{name + ' resize':>17}" for name in nets) + f"{'empty':>7}"
    print(header)
    for name, items in sets.items():
        Xp, empty = pipeline(items)
        Xr = resize_only(items)
        row = f"{name:<14}"
        for net in nets.values():
            row += f"{net.accuracy(Xp, y):>19.2%}{net.accuracy(Xr, y):>17.2%}"
        print(row + f"{empty:>7}")

    X_mnist, _ = pipeline([(x.reshape(28, 28) * 255).round().astype(np.uint8) for x in ds.X_test])
    print("\nMNIST test (10,000)       raw   pipeline   change")
    for name, net in nets.items():
        raw, piped = net.accuracy(ds.X_test, ds.y_test), net.accuracy(X_mnist, ds.y_test)
        print(f"{name:<22}{raw:>9.2%}{piped:>11.2%}{(piped - raw) * 100:>+8.2f} pt")

    ms = latency(nets["fast"], sets["canvas-280"])
    print(f"\ncanvas PNG -> probabilities, fast model: median {ms:.2f} ms")
    print(f"canvas_to_mnist alone (canvas-280 arrays): median {preprocessing_latency(sets['canvas-280']):.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
