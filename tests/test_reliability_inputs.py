"""Bad input, clear answers (issue #7): every input a user controls, tried with bad values.

Each table row is one bad input, the message the user must see, and a check that the same
entry point still works with a good input right afterwards. Twice over: at the package level
(the functions the pages call) and through AppTest on the pages themselves (uploads go through
``at.file_uploader(...).set_value``, which Streamlit 1.67's AppTest supports). The upload size
limit itself is enforced by the Streamlit server before the app sees a byte; the last tests
check the configured limit and that a real server refuses 200 MB with HTTP 413.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import struct
import tomllib
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from scratchnet import feedback
from scratchnet.datasets import load_csv, load_sample, read_csv
from scratchnet.errors import ConfigError, DataError, EmptyImageError, ModelFileError
from scratchnet.imaging import canvas_to_mnist, load_image, to_mnist
from scratchnet.network import Network
from scratchnet.store import ModelStore, load_model, model_bytes
from scratchnet.training import TrainConfig
from scratchnet.ui import train_form
from scratchnet.ui.worker import TrainingJob

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PAGE = str(ROOT / "pages" / "1_Train.py")
DRAW_PAGE = str(ROOT / "pages" / "2_Draw.py")

# --------------------------------------------------------------------------- inputs


def _sample_csv(n: int = 40) -> bytes:
    ds = load_sample()
    images = np.rint(ds.X_train[:n] * 255).astype(np.int64)
    rows = np.column_stack([ds.y_train[:n].astype(np.int64), images])
    buf = io.StringIO()
    buf.write(",".join(["label"] + [f"pixel{i}" for i in range(784)]) + "\n")
    np.savetxt(buf, rows, fmt="%d", delimiter=",")
    return buf.getvalue().encode()


GOOD_CSV = _sample_csv()
HEADER = ",".join(["label"] + [f"pixel{i}" for i in range(784)]) + "\n"


def _row(label="3", pixels=None) -> str:
    cells = ["0"] * 784 if pixels is None else pixels
    return ",".join([str(label), *cells]) + "\n"


def _with_pixel(col: int, value: str) -> str:
    cells = ["0"] * 784
    cells[col] = value
    return _row(pixels=cells)


class LazyGarbage(io.RawIOBase):
    """``size`` bytes of garbage made on demand (never all in memory); remembers how far it was read."""

    def __init__(self, size: int, kind: str):
        self.size, self.kind, self.pos, self.furthest = size, kind, 0, 0
        rng = np.random.default_rng(0)
        if kind == "binary":
            self.block = rng.integers(0, 256, 1 << 16, dtype=np.uint8).tobytes()
        else:  # printable lines of the wrong shape, as a mis-exported spreadsheet would give
            self.block = b"".join(b"lorem,ipsum,%d\n" % i for i in range(4096))[: 1 << 16]
        self.name = "garbage.csv"

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        self.pos = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence] + offset
        return self.pos

    def tell(self):
        return self.pos

    def readinto(self, b):
        n = max(0, min(len(b), self.size - self.pos))
        done = 0
        while done < n:
            off = (self.pos + done) % len(self.block)
            take = min(n - done, len(self.block) - off)
            b[done:done + take] = self.block[off:off + take]
            done += take
        self.pos += n
        self.furthest = max(self.furthest, self.pos)
        return n


BAD_CSVS = [  # (id, content, message fragment)
    ("wrong-columns", HEADER.encode() + b"3,0,0\n", r"row 1 \(line 2\) has 3 values, but every row needs 785"),
    ("text-cell", (HEADER + _with_pixel(5, "abc")).encode(), r"row 1 \(line 2\): pixel 5 \(column 7\) is 'abc', which is not a number"),
    ("nan-cell", (HEADER + _with_pixel(0, "NaN")).encode(), r"pixel 0 \(column 2\) is 'NaN' \(missing\)"),
    ("empty-cell", (HEADER + _with_pixel(9, "")).encode(), r"pixel 9 \(column 11\) is empty"),
    ("label-10", (HEADER + _row(label="10")).encode(), r"the label \(column 1\) is 10, but labels must be digits 0-9"),
    ("label-minus-1", (HEADER + _row(label="-1")).encode(), r"the label \(column 1\) is -1"),
    ("pixel-300", (HEADER + _row() + _with_pixel(3, "300")).encode(), r"row 2 \(line 3\): pixel 3 \(column 5\) is 300, but pixels must be whole numbers from 0 to 255"),
    ("pixel-fraction", (HEADER + _with_pixel(3, "2.5")).encode(), r"pixel 3 \(column 5\) is 2.5"),
    ("zero-rows", HEADER.encode(), r"has a header but no data rows"),
    ("zero-bytes", b"", r"is empty"),
    ("binary-garbage", bytes(range(256)) * 64, r"is not a CSV text file"),
    ("one-endless-line", b"1," * 2_000_000, r"line 1 is far too long"),
    ("png-renamed-csv", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, r"is not a CSV text file"),
]


def _png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _huge_png(w: int = 20_000, h: int = 20_000) -> bytes:
    """A valid 1-bit PNG of w x h pixels, ~50 KB on disk: a decompression bomb if decoded."""
    row = b"\x00" * (1 + (w + 7) // 8)
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row * 1000) for _ in range(h // 1000)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _drawn(digit: str, size: int = 280, scan: bool = False) -> Image.Image:
    im = Image.new("RGBA", (size, size), (0, 0, 0, 255))
    d = ImageDraw.Draw(im)
    s = size / 280
    pts = {"1": [(150, 40), (140, 240)], "7": [(70, 55), (205, 55), (125, 245)]}[digit]
    d.line([(x * s, y * s) for x, y in pts], fill=(255, 255, 255, 255), width=int(22 * s), joint="curve")
    if scan:  # dark ink on light paper
        im = Image.eval(im.convert("L"), lambda v: 255 - v * 200 // 255).convert("RGB")
    return im


def _speck() -> Image.Image:
    im = Image.new("L", (300, 300), 255)
    ImageDraw.Draw(im).rectangle((150, 150, 151, 151), fill=0)
    return im


GOOD_PICTURE = _png(_drawn("7", 500, scan=True), "JPEG")

BAD_IMAGES = [  # (id, bytes, exception, message fragment)
    ("text-file", b"hello, this is not a picture", DataError, "not an image"),
    ("svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', DataError, "not an image"),
    ("pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", DataError, "not an image"),
    ("zero-bytes", b"", DataError, "empty"),
    ("20000x20000-px", _huge_png(), DataError, "megapixels"),
    ("truncated-png", _png(_drawn("7"))[:120], DataError, "damaged or truncated"),
    ("blank-white", _png(Image.new("L", (300, 300), 255)), EmptyImageError, "blank"),
    ("one-speck-on-paper", _png(_speck()), EmptyImageError, "ink"),
]


def _canvas(fill=(0, 0, 0, 255), size=280) -> np.ndarray:
    a = np.zeros((size, size, 4), np.uint8)
    a[...] = fill
    return a


def _dot_canvas() -> np.ndarray:
    a = _canvas()
    a[140:142, 140:142] = 255
    return a


BAD_CANVASES = [  # (id, array, message fragment); all must be EmptyImageError or DataError
    ("empty-canvas", _canvas(), "blank|Nothing is drawn|No ink"),
    ("transparent-canvas", _canvas((0, 0, 0, 0)), "transparent"),
    ("single-dot", _dot_canvas(), "almost no ink|Nothing is drawn|draw a larger digit|blank"),
    ("tiny-canvas", _canvas(size=4), "pixels|transparent|blank|Nothing"),
]

_META = {"format": "scratchnet-model", "version": 1, "sizes": [784, 16, 10], "activation": "relu"}
_NET = Network((784, 16, 10), seed=1)


def _npz(meta: dict | None = _META, **arrays) -> bytes:
    if meta is not None:
        arrays["metadata_json"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _layers(**override):
    arrays = {"W0": _NET.weights[0], "b0": _NET.biases[0], "W1": _NET.weights[1], "b1": _NET.biases[1]}
    arrays.update(override)
    return arrays


class _Evil:
    """Unpickling this would create the marker file: proof that nothing was unpickled."""

    marker: Path | None = None

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _zip_of(**files) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def _nan_weights():
    W = _NET.weights[0].copy()
    W[3, 3] = np.nan
    return W


def _object_array():
    a = np.empty(1, dtype=object)
    a[0] = _Evil()
    return a


BAD_MODELS = [  # (id, bytes factory, message fragment)
    ("pickle", lambda: pickle.dumps(_Evil()), "pickle"),
    ("pickled-dict", lambda: pickle.dumps({"W0": [1.0]}), "pickle"),
    ("npz-with-pickled-array", lambda: _npz(**_layers(W0=_object_array())), r"W0|pickle|not a NumPy|dtype"),
    ("zip-of-text", lambda: _zip_of(**{"readme.txt": "hi"}), "not a scratchnet model"),
    ("zip-wrong-arrays", lambda: _npz(None, weights=_NET.weights[0], x=_NET.biases[0]), "not a scratchnet model"),
    ("wrong-shapes", lambda: _npz(**_layers(b0=_NET.biases[0][:8])), r"b0 has shape \(8,\)"),
    ("sizes-disagree", lambda: _npz({**_META, "sizes": [784, 32, 10]}, **_layers()), r"W0 has shape \(784, 16\)"),
    ("nan-weights", lambda: _npz(**_layers(W0=_nan_weights())), "NaN or infinite"),
    ("int-weights", lambda: _npz(**_layers(W1=_NET.weights[1].astype(np.int32))), "must be floats"),
    ("metadata-not-json", lambda: _npz(None, metadata_json=np.frombuffer(b"{oops", np.uint8), **_layers()), "not valid JSON"),
    ("foreign-format", lambda: _npz({**_META, "format": "keras"}, **_layers()), "'keras'"),
    ("code-as-activation", lambda: _npz({**_META, "activation": "__import__('os')"}, **_layers()), "unknown activation"),
    ("billion-params-claimed", lambda: _npz({**_META, "sizes": [784, 10**6, 10]}, **_layers()), "parameters"),
    ("truncated", lambda: model_bytes(_NET, {})[:3000], "damaged or truncated"),
    ("zero-bytes", lambda: b"", "empty"),
    ("npy-not-npz", lambda: (lambda b: (np.save(b, _NET.weights[0]), b.getvalue())[1])(io.BytesIO()), r"\.npy"),
    ("csv-renamed", lambda: GOOD_CSV[:2000], "text file"),
]

BAD_CONFIGS = [  # (id, knob overrides as typed on the Train page, message fragment)
    ("lr-0", {"lr": 0.0}, "learning rate must be a positive number"),
    ("lr-1e6", {"lr": 1e6}, "cannot train anything"),
    ("lr-nan", {"lr": float("nan")}, "learning rate must be a positive number"),
    ("lr-negative", {"lr": -0.1}, "learning rate must be a positive number"),
    ("iterations-0", {"unit": "iterations", "iterations": 0}, "Iterations must be between 1 and"),
    ("iterations-1e9", {"unit": "iterations", "iterations": 10**9}, "Iterations must be between 1 and"),
    ("epochs-0", {"unit": "epochs", "epochs": 0.0}, "Epochs must be more than 0"),
    ("epochs-1e9", {"unit": "epochs", "epochs": 1e9}, "at most 10,000"),
    ("batch-0", {"full_batch": False, "batch_size": 0}, "batch size must be at least 1"),
    # the Architecture field (a SPEC: conv<C>-<K>, maxpool<K>, dense<N>)
    ("layers-text", {"layers": "abc"}, "'abc', is not understood"),
    ("layers-empty", {"layers": "  "}, "architecture is empty"),
    ("layers-0", {"layers": "0"}, "a dense layer has 1 to 4096 units"),
    ("layers-huge", {"layers": "dense100000"}, "a dense layer has 1 to 4096 units"),
    ("layers-too-many-params", {"layers": "4096, 4096, 4096"}, "at most 25,000,000 are supported"),
    ("layers-9-layers", {"layers": "8,8,8,8,8,8,8,8,8"}, "at most 8 are supported"),
    ("layers-13-tokens", {"layers": "conv4-3," + "maxpool2," * 11 + "dense8"}, "at most 12 are supported"),
    ("layers-5000-digits", {"layers": "9" * 5000}, "far too large"),
    ("layers-conv-5000-digits", {"layers": "conv" + "9" * 5000 + "-5"}, "far too large"),
    ("layers-superscript", {"layers": "dense²"}, "'dense²', is not understood"),
    ("layers-leading-zeros", {"layers": "0" * 5000 + "5000"}, "a dense layer has 1 to 4096 units"),
    ("conv-even-kernel", {"layers": "conv16-4"}, "kernel size must be odd"),
    ("conv-0-filters", {"layers": "conv0-5"}, "1 to 256 filters"),
    ("conv-after-dense", {"layers": "dense64,conv8-5"}, "comes after a dense layer"),
    ("pool-after-dense", {"layers": "dense64,maxpool2"}, "comes after a dense layer"),
    ("pool-too-wide", {"layers": "maxpool9"}, "pooling blocks are 2 to 7 pixels wide"),
    ("pooled-to-nothing", {"layers": "maxpool7,maxpool7"}, "does not fit 28x28 images"),
    ("conv-too-much-memory", {"layers": "conv256-9,conv256-9,dense10"}, "GB of working memory"),
    ("l2-5", {"l2": 5.0}, "L2 regularisation"),
    ("momentum-1", {"momentum": 1.0}, "Momentum"),
]
BATCH_TOO_LARGE = ("batch-larger-than-data", {"full_batch": False, "batch_size": 10_000}, "larger than the training set")



# --------------------------------------------------------------------------- package level: CSV


@pytest.mark.parametrize("content, fragment", [c[1:] for c in BAD_CSVS], ids=[c[0] for c in BAD_CSVS])
def test_bad_csv_is_refused_with_a_clear_message(content, fragment):
    with pytest.raises(DataError, match=fragment) as info:
        read_csv(io.BytesIO(content))
    assert "\n" not in str(info.value)  # one sentence, no traceback
    X, y = read_csv(io.BytesIO(GOOD_CSV))  # the reader still works afterwards
    assert X.shape == (40, 784) and y.shape == (40,)


@pytest.mark.parametrize("kind, fragment", [("binary", "not a CSV text file"), ("text", "row 1 .* has 3 values")])
def test_200_mb_of_garbage_is_refused_after_reading_only_its_start(kind, fragment):
    garbage = LazyGarbage(200 * 10**6, kind)
    with pytest.raises(DataError, match=fragment):
        load_csv(garbage)
    assert garbage.furthest < 16 * 2**20, f"read {garbage.furthest:,} bytes of a 200 MB garbage file"
    assert len(load_csv(io.BytesIO(GOOD_CSV)).y_train) > 0


# --------------------------------------------------------------------------- package level: pictures


@pytest.mark.parametrize("data, error, fragment", [c[1:] for c in BAD_IMAGES], ids=[c[0] for c in BAD_IMAGES])
def test_bad_picture_is_refused_with_a_clear_message(trained_model_store, data, error, fragment):
    net, _ = trained_model_store.load("test-model")
    with pytest.raises(error, match=fragment):
        feedback.read_digit(net, load_image(data))
    assert feedback.read_digit(net, load_image(GOOD_PICTURE)).digit == 7


@pytest.mark.parametrize("array, fragment", [c[1:] for c in BAD_CANVASES], ids=[c[0] for c in BAD_CANVASES])
def test_empty_or_nearly_empty_canvas_asks_for_a_drawing(trained_model_store, array, fragment):
    net, _ = trained_model_store.load("test-model")
    with pytest.raises(DataError, match=fragment):  # EmptyImageError is a DataError
        feedback.read_digit(net, array)
    good = np.asarray(_drawn("1"))
    assert feedback.read_digit(net, good).digit == 1


def test_non_finite_pixels_are_refused():
    with pytest.raises(DataError, match="NaN or infinite"):
        to_mnist(np.full((28, 28), np.nan, np.float32))
    with pytest.raises(DataError, match="NaN or infinite"):
        feedback.to_uint8(np.full((28, 28), np.inf, np.float32))
    assert canvas_to_mnist(np.asarray(_drawn("1"))).shape == (28, 28)


# --------------------------------------------------------------------------- package level: model files


@pytest.mark.parametrize("make, fragment", [c[1:] for c in BAD_MODELS], ids=[c[0] for c in BAD_MODELS])
def test_model_file_that_is_not_ours_is_refused_and_never_unpickled(tmp_path, make, fragment):
    _Evil.marker = tmp_path / "UNPICKLED"
    data = make()
    with pytest.raises(ModelFileError, match=fragment):
        load_model(data)
    with pytest.raises(ModelFileError, match=fragment):
        load_model(io.BytesIO(data))
    assert not _Evil.marker.exists()
    # Dropped into the models folder it is reported and skipped; the good model stays usable.
    store = ModelStore(tmp_path / "models")
    store.save(_NET, {}, name="good")
    (store.directory / "intruder.npz").write_bytes(data)
    assert store.names() == ["good"]
    assert any("intruder.npz" in p for p in store.problems)
    with pytest.raises(ModelFileError):
        store.load("intruder")
    net, _ = store.load_active() or store.load("good")
    assert np.array_equal(net.weights[0], _NET.weights[0])
    assert not _Evil.marker.exists()


# --------------------------------------------------------------------------- package level: hyper-parameters


def _knobs(**override) -> dict:
    knobs = train_form.knobs_from_config(TrainConfig(hidden=(32,), iterations=20, epochs=None, batch_size=64))
    knobs.update(override)
    return knobs


@pytest.mark.parametrize("override, fragment", [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_extreme_hyper_parameters_get_a_clear_message(override, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)) as info:
        train_form.config_from_knobs(_knobs(**override))
    assert "\n" not in str(info.value)  # one line
    assert train_form.config_from_knobs(_knobs()).hidden == (32,)


def test_batch_larger_than_the_data_is_refused_before_training(tmp_path):
    ds = load_sample()
    config = train_form.config_from_knobs(_knobs(**BATCH_TOO_LARGE[1]))  # valid on its own
    with pytest.raises(ConfigError, match=BATCH_TOO_LARGE[2]):
        TrainingJob(config, ds, store=ModelStore(tmp_path))
    snap = TrainingJob(train_form.config_from_knobs(_knobs()), ds, store=ModelStore(tmp_path), idle_timeout=None).run()
    assert snap.status == "finished" and snap.result["model_name"]


# --------------------------------------------------------------------------- the pages (AppTest)


def _train_page() -> AppTest:
    at = AppTest.from_file(TRAIN_PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def _metric(at: AppTest, label: str):
    found = [m.value for m in at.metric if m.label == label]
    return found[0] if found else None


def _errors(at: AppTest) -> str:
    return " | ".join(e.value for e in at.error)


PAGE_CSVS = [c for c in BAD_CSVS if c[0] != "one-endless-line"] + [
    ("garbage-5MB", LazyGarbage(5 * 10**6, "text").read(), r"has 3 values"),
]


@pytest.mark.parametrize("content, fragment", [c[1:] for c in PAGE_CSVS], ids=[c[0] for c in PAGE_CSVS])
def test_train_page_shows_a_clear_error_for_a_bad_csv_upload(env_dirs, content, fragment):
    at = _train_page()
    at.radio(key="tr_source").set_value("csv").run()
    at.file_uploader(key="tr_upload").set_value(("digits.csv", content, "text/csv")).run()
    assert not at.exception, at.exception
    import re

    assert re.search(fragment, _errors(at)), _errors(at)
    assert "digits.csv" in _errors(at) or "CSV" in _errors(at)
    assert at.button(key="tr_start").disabled  # nothing to train on
    # The page keeps working: a good file is read and can be trained on.
    at.file_uploader(key="tr_upload").set_value(("good.csv", GOOD_CSV, "text/csv")).run()
    assert not at.exception and not at.error, _errors(at)
    assert _metric(at, "Training digits") == "36"
    assert not at.button(key="tr_start").disabled


PAGE_CONFIGS = [  # (id, widget values, message fragment); "tr_layers" goes through Architecture: Custom
    ("layers-text", {"tr_layers": "abc"}, "'abc', is not understood"),
    ("layers-empty", {"tr_layers": ""}, "architecture is empty"),
    ("layers-0", {"tr_layers": "0"}, "a dense layer has 1 to 4096 units"),
    ("layers-huge", {"tr_layers": "100000"}, "a dense layer has 1 to 4096 units"),
    ("layers-9-layers", {"tr_layers": "8,8,8,8,8,8,8,8,8"}, "at most 8 are supported"),
    ("layers-too-many-params", {"tr_layers": "4096, 4096, 4096"}, "parameters"),
    ("layers-5000-digits", {"tr_layers": "9" * 5000}, "far too large"),
    ("layers-superscript", {"tr_layers": "²"}, "is not understood"),
    ("layers-leading-zeros", {"tr_layers": "0" * 5000 + "5000"}, "a dense layer has 1 to 4096 units"),
    ("conv-even-kernel", {"tr_layers": "conv8-4,dense16"}, "kernel size must be odd"),
    ("conv-after-dense", {"tr_layers": "dense16,conv8-5"}, "comes after a dense layer"),
    ("conv-too-much-memory", {"tr_layers": "conv256-9,conv256-9"}, "GB of working memory"),
    ("batch-larger-than-data", {"tr_full_batch": False, "tr_batch_size": 10_000}, "larger than the training set"),
]


@pytest.mark.parametrize("values, fragment", [c[1:] for c in PAGE_CONFIGS], ids=[c[0] for c in PAGE_CONFIGS])
def test_train_page_refuses_bad_settings_at_start_and_recovers(env_dirs, values, fragment):
    from scratchnet.ui.common import JOB_KEY

    at = _train_page()
    for key, value in values.items():
        if key == "tr_layers":
            at.selectbox(key="tr_arch").set_value("custom").run()
            widget = at.text_input(key=key)
        else:
            widget = at.checkbox(key=key) if key == "tr_full_batch" else at.number_input(key=key)
        widget.set_value(value).run()
    assert not at.exception, at.exception
    at.button(key="tr_start").click().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "\n" not in at.error[0].value, _errors(at)
    assert fragment in _errors(at), _errors(at)
    assert JOB_KEY not in at.session_state  # nothing was queued
    at.selectbox(key="tr_arch").set_value("custom").run()
    at.text_input(key="tr_layers").set_value("16").run()
    at.checkbox(key="tr_full_batch").set_value(False).run()
    at.number_input(key="tr_batch_size").set_value(64).run()
    at.button(key="tr_start").click().run()
    assert not at.exception and not at.error, _errors(at)
    assert at.session_state[JOB_KEY]


@pytest.mark.parametrize("key, value", [("tr_lr", 0.0), ("tr_lr", 1e6), ("tr_batch_size", 0),
                                         ("tr_batch_size", 10**9), ("tr_seed", -1), ("tr_iterations", 0),
                                         ("tr_iterations", 10**9), ("tr_epochs", 0.0), ("tr_epochs", 1e9)])
def test_train_page_number_widgets_never_take_out_of_range_values(env_dirs, key, value):
    """A crafted client can send any number; Streamlit keeps the widget within its bounds."""
    at = _train_page()
    if key == "tr_iterations":
        at.radio(key="tr_unit").set_value("iterations").run()
    widget = at.number_input(key=key)
    lo, hi = widget.proto.min, widget.proto.max
    widget.set_value(value).run()
    assert not at.exception, at.exception
    assert lo <= at.number_input(key=key).value <= hi
    at.button(key="tr_start").click().run()  # and what it holds trains, or is refused in words
    assert not at.exception, at.exception


def _draw_page() -> AppTest:
    at = AppTest.from_file(DRAW_PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("data, error, fragment", [c[1:] for c in BAD_IMAGES], ids=[c[0] for c in BAD_IMAGES])
def test_draw_page_explains_a_bad_picture_and_keeps_reading(trained_model_store, data, error, fragment):
    at = _draw_page()
    at.file_uploader(key="draw_upload").set_value(("digit.png", data, "image/png")).run()
    assert not at.exception, at.exception
    shown = _errors(at) + " | " + " | ".join(i.value for i in at.info)
    assert fragment.lower() in shown.lower(), shown
    assert not [m for m in at.metric if m.label == "Prediction"]
    at.file_uploader(key="draw_upload").set_value(("seven.jpg", GOOD_PICTURE, "image/jpeg")).run()
    assert not at.exception and not at.error, _errors(at)
    assert _metric(at, "Prediction") == "7"


def _rgba_png(w: int, h: int) -> bytes:
    """A valid black RGBA PNG, ~1 MB for 8000x8000, that would decode to w*h*4 bytes."""
    row = b"\x00" + b"\x00\x00\x00\xff" * w
    z = zlib.compressobj(1)
    data = b"".join(z.compress(row * 100) for _ in range(h // 100)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _data_url(png: bytes) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


BAD_CANVAS_PAYLOADS = [  # what a crafted client can put in the canvas widget's state
    ("not-a-data-url", lambda: "hello", "not a picture"),
    ("bad-base64", lambda: "data:image/png;base64,!!!!", "not a picture"),
    ("gif-bytes", lambda: _data_url(b"GIF89a nonsense"), "not a picture"),
    ("8000x8000-png-bomb", lambda: _data_url(_rgba_png(8000, 8000)), "8000x8000 picture"),
    ("truncated-png", lambda: _data_url(_png(_drawn("7"))[:300]), "damaged|not a picture"),
]


@pytest.mark.parametrize("make, fragment", [c[1:] for c in BAD_CANVAS_PAYLOADS], ids=[c[0] for c in BAD_CANVAS_PAYLOADS])
def test_draw_page_refuses_a_crafted_canvas_payload_and_keeps_reading(trained_model_store, make, fragment):
    import re

    at = _draw_page()
    at.session_state["draw_canvas_0"] = {"drawing": {"raw": {"objects": []}, "data": make()}, "backgroundFit": None}
    at.run()
    assert not at.exception, at.exception
    assert re.search(fragment, _errors(at)), _errors(at)
    assert "went wrong inside" not in _errors(at)
    at.session_state["draw_canvas_0"] = {"drawing": {"raw": {"objects": []}, "data": _data_url(_png(_drawn("1")))},
                                         "backgroundFit": None}
    at.run()
    assert not at.exception and not at.error, _errors(at)
    assert _metric(at, "Prediction") == "1"


@pytest.mark.parametrize("make, fragment", [BAD_MODELS[i][1:] for i in (0, 5, 7, 13)],
                         ids=[BAD_MODELS[i][0] for i in (0, 5, 7, 13)])
def test_pages_skip_a_bad_model_file_in_the_store_and_say_so(trained_model_store, tmp_path, make, fragment):
    _Evil.marker = tmp_path / "UNPICKLED"
    (trained_model_store.directory / "intruder.npz").write_bytes(make())
    train = _train_page()
    assert any("intruder.npz" in c.value for c in train.caption), [c.value for c in train.caption]
    draw = _draw_page()
    assert draw.selectbox(key="draw_model").options == ["test-model (active)"]
    draw.file_uploader(key="draw_upload").set_value(("seven.jpg", GOOD_PICTURE, "image/jpeg")).run()
    assert not draw.exception and _metric(draw, "Prediction") == "7"
    assert not _Evil.marker.exists()


# --------------------------------------------------------------------------- upload size limit


def _config() -> dict:
    return tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())


def test_upload_limit_is_set_deliberately_and_protections_stay_on():
    server = _config()["server"]
    limit = server["maxUploadSize"]
    assert 105 <= limit < 200  # the full MNIST training CSV (~105 MiB) fits, 200 MB does not
    assert server.get("enableXsrfProtection", True) is True
    assert server.get("enableCORS", True) is True
    assert server.get("fileWatcherType") == "none"
    assert _config()["runner"]["postScriptGC"] is False  # a full gc per rerun cost ~50 ms per drawing


def test_server_refuses_a_200_mb_upload_before_reading_it(streamlit_server):
    """The real server, as configured: a 200 MB upload gets HTTP 413 from Streamlit itself.

    Only the headers are sent: the server must answer from Content-Length alone, before any of
    the 200 MB would be read (a client that keeps sending just gets its connection closed).
    """
    import http.client
    from urllib.parse import urlsplit

    session_id = _ws_session(streamlit_server)
    with urllib.request.urlopen(f"{streamlit_server}/_stcore/health", timeout=10) as r:
        cookies = r.headers.get_all("Set-Cookie") or []  # the XSRF cookie, as the browser gets it
    xsrf = next((c.split(";")[0].split("=", 1)[1] for c in cookies if c.startswith("_streamlit_xsrf=")), None)
    assert xsrf, f"XSRF protection is off: no _streamlit_xsrf cookie in {cookies}"
    parts = urlsplit(str(streamlit_server))
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("PUT", f"/_stcore/upload_file/{session_id}/big-file")
        conn.putheader("Content-Length", str(200 * 10**6))
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("X-Xsrftoken", xsrf)
        conn.putheader("Cookie", f"_streamlit_xsrf={xsrf}")
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413, (response.status, response.read()[:200])
    finally:
        conn.close()
    # ...and the app still answers.
    with urllib.request.urlopen(f"{streamlit_server}/_stcore/health", timeout=10) as r:
        assert r.status == 200


def _ws_session(url: str) -> str:
    """Open a real session (the upload endpoint only accepts live session ids) and return its id."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect

    ws = connect(url.replace("http://", "ws://") + "/_stcore/stream", subprotocols=["streamlit"]).__enter__()
    _OPEN.append(ws)
    msg = BackMsg()
    msg.rerun_script.page_name = "Train"
    msg.rerun_script.widget_states.SetInParent()
    ws.send(msg.SerializeToString())
    while True:
        fm = ForwardMsg()
        fm.ParseFromString(ws.recv(timeout=30))
        if fm.WhichOneof("type") == "new_session":
            return fm.new_session.initialize.session_id


_OPEN: list = []


@pytest.fixture(autouse=True)
def _close_sockets():
    yield
    while _OPEN:
        _OPEN.pop().close()


def test_server_keeps_xsrf_protection_on_for_uploads(streamlit_server):
    """An upload without the XSRF token (a forged cross-site request) is refused."""
    import http.client
    from urllib.parse import urlsplit

    session_id = _ws_session(streamlit_server)
    parts = urlsplit(str(streamlit_server))
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        body = b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\n1,2\r\n--x--\r\n"
        conn.request("PUT", f"/_stcore/upload_file/{session_id}/small-file", body=body,
                     headers={"Content-Type": "multipart/form-data; boundary=x"})
        response = conn.getresponse()
        assert response.status == 403, (response.status, response.read()[:200])
    finally:
        conn.close()


def test_train_page_names_the_bad_test_csv(env_dirs):
    at = _train_page()
    at.radio(key="tr_source").set_value("csv").run()
    at.file_uploader(key="tr_upload").set_value(("good.csv", GOOD_CSV, "text/csv")).run()
    at.file_uploader(key="tr_upload_test").set_value(("mytest.csv", (HEADER + _row(label="12")).encode(), "text/csv")).run()
    assert not at.exception, at.exception
    assert "mytest.csv, row 1 (line 2): the label (column 1) is 12" in _errors(at), _errors(at)
    at.file_uploader(key="tr_upload_test").set_value(("mytest.csv", GOOD_CSV, "text/csv")).run()
    assert not at.exception and not at.error, _errors(at)
    assert _metric(at, "Test digits") == "40"
