"""The Draw page's logic: reading a drawing, and the store of labelled drawings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from scratchnet import feedback, imaging
from scratchnet.datasets import read_csv
from scratchnet.errors import DataError, EmptyImageError
from scratchnet.feedback import FeedbackStore
from scratchnet.network import Network
from tools.testkit import run_threads


def digit_image(seed: int) -> np.ndarray:
    """A distinct (28, 28) float image per seed, with exact 0 and 1 pixels."""
    rng = np.random.default_rng(seed)
    a = rng.random((28, 28)).astype(np.float32)
    a[0, 0], a[0, 1] = 0.0, 1.0
    return a


def test_drawings_dir_follows_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_DATA_DIR", str(tmp_path))
    assert feedback.drawings_dir() == tmp_path / "drawings"
    assert FeedbackStore().directory == tmp_path / "drawings"


def test_add_and_load_round_trip(tmp_path):
    store = FeedbackStore(tmp_path / "d")
    assert store.list() == [] and len(store) == 0
    X0, y0 = store.load_arrays()
    assert X0.shape == (0, 784) and y0.shape == (0,)

    imgs = [digit_image(i) for i in range(3)]
    d = store.add(imgs[0], 7, predicted=1, model="m1")
    store.add(imgs[1], 3, predicted=3, model="m1")
    store.add((imgs[2] * 255).astype(np.uint8), "5")  # uint8 input, label as text, no prediction
    assert d.label == 7 and d.predicted == 1 and d.model == "m1" and d.correct is False
    assert (tmp_path / "d" / d.filename).is_file()

    rows = store.list()
    assert [r.label for r in rows] == [7, 3, 5]
    assert [r.predicted for r in rows] == [1, 3, None]
    X, y = store.load_arrays()
    assert X.dtype == np.uint8 and X.shape == (3, 784)
    assert y.dtype == np.uint8 and y.tolist() == [7, 3, 5]
    for i in range(2):  # stored as 0-255, within rounding of the float input
        assert np.abs(X[i] / 255.0 - imgs[i].ravel()).max() <= 0.5 / 255 + 1e-6
    assert X[0, 0] == 0 and X[0, 1] == 255
    np.testing.assert_array_equal(X[2], (imgs[2] * 255).astype(np.uint8).ravel())

    X2, y2 = feedback.load_as_arrays(tmp_path / "d")
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    # the PNG on disk is the 28x28 greyscale image itself
    with Image.open(tmp_path / "d" / d.filename) as im:
        assert im.size == (28, 28) and im.mode == "L"


@pytest.mark.parametrize("label", [10, -1, "x", 2.5, None])
def test_add_rejects_bad_labels(tmp_path, label):
    store = FeedbackStore(tmp_path)
    with pytest.raises(DataError, match="digit from 0 to 9"):
        store.add(digit_image(0), label)
    with pytest.raises(DataError, match="predicted digit"):
        store.add(digit_image(0), 1, predicted=label if label is not None else 11)
    assert store.list() == []


def test_add_rejects_wrong_shape_and_nan(tmp_path):
    store = FeedbackStore(tmp_path)
    with pytest.raises(DataError, match="28x28"):
        store.add(np.zeros((20, 20)), 1)
    bad = digit_image(0)
    bad[3, 3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        store.add(bad, 1)


def test_accuracy_overall_and_per_model(tmp_path):
    store = FeedbackStore(tmp_path)
    assert store.accuracy().total == 0 and np.isnan(store.accuracy().accuracy)
    store.add(digit_image(0), 1, predicted=1, model="a")
    store.add(digit_image(1), 2, predicted=7, model="a")
    store.add(digit_image(2), 3, predicted=3, model="b")
    store.add(digit_image(3), 4, predicted=None, model="b")  # labelled but not rated
    acc = store.accuracy()
    assert (acc.correct, acc.total) == (2, 3)
    assert acc.accuracy == pytest.approx(2 / 3)
    assert (store.accuracy("a").correct, store.accuracy("a").total) == (1, 2)
    assert store.accuracy("b").accuracy == 1.0
    assert store.accuracy("nope").total == 0


def test_csv_export_is_the_notebook_format(tmp_path):
    store = FeedbackStore(tmp_path)
    for i, label in enumerate([0, 9, 4]):
        store.add(digit_image(i), label, predicted=label)
    data = store.to_csv()
    header = data.split(b"\n", 1)[0].decode()
    assert header.split(",")[:2] == ["label", "pixel0"] and len(header.split(",")) == 785
    images, labels = read_csv(data)
    X, y = store.load_arrays()
    np.testing.assert_array_equal(images, X)
    np.testing.assert_array_equal(labels, y)
    assert labels.tolist() == [0, 9, 4]


def test_model_names_cannot_break_the_csv(tmp_path):
    store = FeedbackStore(tmp_path)
    store.add(digit_image(0), 1, predicted=1, model='evil,"name"\nwith newline')
    (d,) = store.list()
    assert "\n" not in d.model and "," not in d.model
    assert store.accuracy(d.model).total == 1


def test_unusable_rows_are_skipped(tmp_path):
    store = FeedbackStore(tmp_path)
    good = store.add(digit_image(0), 6, predicted=6)
    lost = store.add(digit_image(1), 2, predicted=2)
    (tmp_path / lost.filename).unlink()  # image deleted by hand
    with open(store.labels_path, "a") as f:
        f.write("../../etc/passwd.png,1,,,\n")  # path traversal attempt
        f.write(f"{good.filename},twelve,,,\n")  # bad label
        f.write("truncated-row")  # a half line
    assert [d.filename for d in store.list()] == [good.filename]
    assert [d.filename for d in store.list(check_files=False)] == [good.filename, lost.filename]
    X, y = store.load_arrays()
    assert y.tolist() == [6]


def test_clear_removes_everything(tmp_path):
    store = FeedbackStore(tmp_path)
    for i in range(3):
        store.add(digit_image(i), i)
    assert store.clear() == 3
    assert store.list() == [] and not list(tmp_path.glob("*.png"))
    store.add(digit_image(5), 5)  # usable again afterwards
    assert len(store) == 1


def test_store_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(feedback, "MAX_DRAWINGS", 2)
    store = FeedbackStore(tmp_path)
    store.add(digit_image(0), 0)
    store.add(digit_image(1), 1)
    with pytest.raises(DataError, match="already holds 2"):
        store.add(digit_image(2), 2)
    assert len(store) == 2 and len(list(tmp_path.glob("*.png"))) == 2  # no orphan image


def test_concurrent_appends_from_threads(tmp_path):
    store = FeedbackStore(tmp_path)
    n_threads, per_thread = 8, 15
    errors = []

    def work(t):
        try:
            for i in range(per_thread):
                FeedbackStore(tmp_path).add(digit_image(t * 100 + i), (t + i) % 10, predicted=t % 10, model=f"t{t}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    run_threads(work, n_threads)
    assert not errors
    rows = store.list()
    assert len(rows) == n_threads * per_thread
    assert len({r.filename for r in rows}) == len(rows)
    lines = store.labels_path.read_text().splitlines()
    assert lines[0] == ",".join(feedback.FIELDS) and len(lines) == 1 + len(rows)
    for t in range(n_threads):
        assert store.accuracy(f"t{t}").total == per_thread


_ADD_MANY = """
import sys
import numpy as np
from scratchnet.feedback import FeedbackStore
directory, worker, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = FeedbackStore(directory)
rng = np.random.default_rng(worker)
for i in range(count):
    store.add(rng.random((28, 28)), i % 10, predicted=i % 10, model=f"p{worker}")
"""


def test_concurrent_appends_from_processes(tmp_path):
    """Separate processes (e.g. two app servers) appending to one store at the same time."""
    root = Path(__file__).resolve().parents[1]
    procs = [
        subprocess.Popen([sys.executable, "-c", _ADD_MANY, str(tmp_path), str(w), "25"], cwd=root)
        for w in range(3)
    ]
    for p in procs:
        assert p.wait(120) == 0
    store = FeedbackStore(tmp_path)
    assert len(store) == 75
    assert store.labels_path.read_text().count("filename,label") == 1  # one header only
    assert store.accuracy().correct == 75
    for w in range(3):
        assert store.accuracy(f"p{w}").total == 25


# --------------------------------------------------------------------------- reading a digit


def _drawn_one(size=280, rgba=True) -> np.ndarray:
    im = Image.new("RGBA" if rgba else "L", (size, size), (0, 0, 0, 255) if rgba else 0)
    ImageDraw.Draw(im).line([(size // 2, size // 5), (size // 2, size * 4 // 5)], fill="white", width=size // 12)
    return np.asarray(im)


def test_read_digit_uses_the_pipeline_and_the_network():
    net = Network((784, 16, 10), seed=3)
    canvas = _drawn_one()
    r = feedback.read_digit(net, canvas)
    np.testing.assert_array_equal(r.image, imaging.canvas_to_mnist(canvas))
    np.testing.assert_allclose(r.probabilities, net.predict_proba(r.image.reshape(1, -1))[0], rtol=1e-6)
    assert r.probabilities.shape == (10,) and r.probabilities.sum() == pytest.approx(1, abs=1e-5)
    assert r.digit == int(np.argmax(r.probabilities))
    assert r.confidence == pytest.approx(float(r.probabilities.max()))
    # any other picture (here: a greyscale PIL image) goes through to_mnist
    pil = Image.fromarray(_drawn_one(rgba=False))
    r2 = feedback.read_digit(net, pil)
    np.testing.assert_array_equal(r2.image, imaging.to_mnist(pil))


def test_read_digit_refuses_an_empty_canvas():
    net = Network((784, 16, 10), seed=3)
    blank = np.zeros((280, 280, 4), np.uint8)
    blank[..., 3] = 255
    with pytest.raises(EmptyImageError):
        feedback.read_digit(net, blank)


def test_enlarge_keeps_hard_pixel_edges():
    img = digit_image(1)
    big = feedback.enlarge(img, 196)
    assert big.size == (196, 196) and big.mode == "L"
    a = np.asarray(big)
    blocks = a.reshape(28, 7, 28, 7)
    assert (blocks == blocks[:, :1, :, :1]).all()  # every 7x7 block is one flat pixel
    np.testing.assert_array_equal(blocks[:, 0, :, 0], feedback.to_uint8(img))
