"""Tests for scratchnet.datasets: IDX/CSV readers, splits, the bundled sample and the downloader.

Everything is made up in tmp_path; the downloader talks to http.server on 127.0.0.1 only.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from scratchnet import datasets
from scratchnet.datasets import (
    MNIST_FILES,
    Dataset,
    data_dir,
    download_mnist,
    load_csv,
    load_dataset,
    load_mnist,
    mnist_available,
    mnist_dir,
    load_sample,
    read_csv,
    read_idx,
)
from scratchnet.errors import ConfigError, DataError, ScratchnetError

# ------------------------------------------------------------------------------------ helpers


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX format: two zero bytes, type 0x08 (uint8), ndim, big-endian uint32 dims, data."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def numbered_images(n: int, start: int = 0) -> np.ndarray:
    """(n, 28, 28) uint8 images whose first two pixels spell their index, so splits can be traced."""
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    index = np.arange(start, start + n)
    images[:, 0, 0] = index % 256
    images[:, 0, 1] = index // 256
    images[:, 14, 14] = 255
    return images


def image_index(X: np.ndarray) -> np.ndarray:
    """Inverse of numbered_images for float rows."""
    pixels = np.rint(X[:, :2] * 255).astype(np.int64)
    return pixels[:, 0] + 256 * pixels[:, 1]


def fake_mnist(n_train: int = 60, n_test: int = 20) -> dict[str, bytes]:
    """Tiny "MNIST": stem -> decompressed IDX bytes."""
    return {
        "train-images-idx3-ubyte": encode_idx(numbered_images(n_train)),
        "train-labels-idx1-ubyte": encode_idx(np.arange(n_train) % 10),
        "t10k-images-idx3-ubyte": encode_idx(numbered_images(n_test, start=1000)),
        "t10k-labels-idx1-ubyte": encode_idx(np.arange(n_test) % 10),
    }


def checksums_of(files: dict[str, bytes]) -> dict[str, str]:
    return {stem: hashlib.sha256(data).hexdigest() for stem, data in files.items()}


def write_mnist(directory: Path, files: dict[str, bytes], gz: bool = True) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for stem, data in files.items():
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / stem).write_bytes(data)


def csv_text(images: np.ndarray, labels: np.ndarray, header: bool = True) -> str:
    lines = []
    if header:
        lines.append("label," + ",".join(f"pixel{i}" for i in range(784)))
    for label, row in zip(labels, images.reshape(len(images), -1)):
        lines.append(",".join([str(label), *map(str, row)]))
    return "\n".join(lines) + "\n"


def small_csv_data(n: int = 6):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def leftovers(directory: Path) -> list[str]:
    """Anything in the download dir that is not a finished MNIST file (temp files, partials)."""
    finished = {f"{stem}.gz" for stem in MNIST_FILES} | set(MNIST_FILES)
    return sorted(p.name for p in directory.iterdir() if p.name not in finished)


# ------------------------------------------------------------------------------------ data_dir


def test_data_dir_uses_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("SCRATCHNET_DATA_DIR", str(tmp_path / "here"))
    assert data_dir() == tmp_path / "here"


def test_data_dir_defaults_to_cache_in_home(monkeypatch, tmp_path):
    monkeypatch.delenv("SCRATCHNET_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data_dir() == tmp_path / ".cache" / "scratchnet"


# ------------------------------------------------------------------------------------ read_idx


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trips_images_and_labels(tmp_path, compress):
    images = numbered_images(7)
    labels = np.array([3, 1, 4, 1, 5, 9, 2], dtype=np.uint8)
    for name, array in (("img", images), ("lab", labels)):
        data = encode_idx(array)
        (tmp_path / name).write_bytes(gzip.compress(data) if compress else data)
    got_images = read_idx(tmp_path / "img")
    got_labels = read_idx(str(tmp_path / "lab"))
    assert got_images.dtype == np.uint8 and got_images.shape == (7, 28, 28)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def _gzip_cut(data: bytes) -> bytes:
    packed = gzip.compress(data)
    return packed[: len(packed) // 2]


def _gzip_garbled(data: bytes) -> bytes:
    packed = bytearray(gzip.compress(data))
    packed[len(packed) // 2] ^= 0xFF
    packed[len(packed) // 2 + 1] ^= 0x55
    return bytes(packed)


GOOD_IDX = encode_idx(numbered_images(5))

BAD_IDX = {
    "empty": (b"", "empty"),
    "bad magic": (b"PK\x03\x04" + GOOD_IDX[4:], "not an IDX file"),
    "int32 type": (bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 2) + b"\0" * 8, "only unsigned bytes"),
    "zero dims": (bytes([0, 0, 0x08, 0]), "dimensions"),
    "header cut": (GOOD_IDX[:10], "truncated"),
    "data cut": (GOOD_IDX[:-100], "truncated"),
    "data cut gz": (gzip.compress(GOOD_IDX[:-1]), "truncated"),
    "extra bytes": (GOOD_IDX + b"\0\0\0", "more data than"),
    "gzip stream cut": (_gzip_cut(GOOD_IDX), "truncated"),
    "gzip garbled": (_gzip_garbled(GOOD_IDX), "damaged"),
    "absurd header": (bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 1 << 20, 1 << 20, 28), "too large"),
}


@pytest.mark.parametrize("content,phrase", BAD_IDX.values(), ids=BAD_IDX.keys())
def test_read_idx_rejects_bad_files_naming_file_and_problem(tmp_path, content, phrase):
    path = tmp_path / "broken-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_idx(path)
    message = str(info.value)
    assert "broken-idx3-ubyte.gz" in message
    assert phrase in message


def test_read_idx_truncation_message_gives_promised_and_actual_sizes(tmp_path):
    path = tmp_path / "cut"
    path.write_bytes(GOOD_IDX[:-100])
    with pytest.raises(DataError, match=r"5 x 28 x 28 = 3,920 bytes of data but only 3,820"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope.gz")


# ---------------------------------------------------------------------------- load_mnist (local)


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_from_directory_splits_and_scales(tmp_path, gz):
    write_mnist(tmp_path, fake_mnist(n_train=60, n_test=20), gz=gz)
    ds = load_mnist(tmp_path, download=False, val_size=5, seed=3)
    assert isinstance(ds, Dataset) and ds.name == "mnist"
    assert ds.X_train.shape == (55, 784) and ds.X_val.shape == (5, 784) and ds.X_test.shape == (20, 784)
    for X in (ds.X_train, ds.X_val, ds.X_test):
        assert X.dtype == np.float32 and X.flags.c_contiguous
        assert X.min() >= 0.0 and X.max() == 1.0
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert y.dtype == np.uint8
    train_ids, val_ids = image_index(ds.X_train), image_index(ds.X_val)
    assert set(train_ids).isdisjoint(val_ids)
    assert sorted([*train_ids, *val_ids]) == list(range(60))
    np.testing.assert_array_equal(ds.y_train, train_ids % 10)  # labels stay with their images
    np.testing.assert_array_equal(ds.y_val, val_ids % 10)
    np.testing.assert_array_equal(image_index(ds.X_test), np.arange(1000, 1020))
    assert ds.description == "MNIST, 55 train / 5 val / 20 test"
    assert ds.notes == []


def test_split_is_seeded(tmp_path):
    write_mnist(tmp_path, fake_mnist())
    a = load_mnist(tmp_path, download=False, val_size=5, seed=1)
    b = load_mnist(tmp_path, download=False, val_size=5, seed=1)
    c = load_mnist(tmp_path, download=False, val_size=5, seed=2)
    np.testing.assert_array_equal(image_index(a.X_val), image_index(b.X_val))
    assert set(image_index(a.X_val)) != set(image_index(c.X_val))
    gen = load_mnist(tmp_path, download=False, val_size=5, seed=np.random.default_rng(1))
    np.testing.assert_array_equal(image_index(gen.X_val), image_index(a.X_val))


def test_small_data_holds_out_ten_percent(tmp_path):
    write_mnist(tmp_path, fake_mnist(n_train=60))
    ds = load_mnist(tmp_path, download=False, val_size=1000)  # 60 < 2 * 1000
    assert len(ds.X_val) == 6 and len(ds.X_train) == 54


def test_val_size_zero_means_no_validation_set(tmp_path):
    write_mnist(tmp_path, fake_mnist(n_train=30))
    ds = load_mnist(tmp_path, download=False, val_size=0)
    assert ds.X_val is None and ds.y_val is None and len(ds.X_train) == 30
    assert "no val" in ds.description


def test_negative_val_size_is_a_config_error(tmp_path):
    write_mnist(tmp_path, fake_mnist())
    with pytest.raises(ConfigError, match="val_size"):
        load_mnist(tmp_path, download=False, val_size=-1)


def test_missing_files_without_download_fall_back_to_sample_with_note(tmp_path):
    ds = load_mnist(tmp_path / "empty", download=False)
    assert ds.name == "sample"
    assert any("offline" in note and "5,000-digit sample" in note for note in ds.notes)


def test_missing_files_without_fallback_raise(tmp_path):
    files = fake_mnist()
    del files["t10k-labels-idx1-ubyte"]
    write_mnist(tmp_path, files)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        load_mnist(tmp_path, download=False, fallback=False)


def test_damaged_local_file_raises_even_with_fallback(tmp_path):
    write_mnist(tmp_path, fake_mnist())
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path, download=False, fallback=True)


def test_images_and_labels_must_agree(tmp_path):
    files = fake_mnist(n_train=60)
    files["train-labels-idx1-ubyte"] = encode_idx(np.arange(59) % 10)
    write_mnist(tmp_path, files)
    with pytest.raises(DataError, match="59 labels but train-images-idx3-ubyte.gz has 60 images"):
        load_mnist(tmp_path, download=False)


def test_labels_outside_digits_rejected(tmp_path):
    files = fake_mnist(n_train=60)
    files["train-labels-idx1-ubyte"] = encode_idx(np.full(60, 12))
    write_mnist(tmp_path, files)
    with pytest.raises(DataError, match="label 12"):
        load_mnist(tmp_path, download=False)


@pytest.mark.parametrize("sub", ["", "mnist"])
def test_default_directory_is_the_data_dir_or_its_mnist_folder(monkeypatch, tmp_path, sub):
    monkeypatch.setenv("SCRATCHNET_DATA_DIR", str(tmp_path))
    assert not mnist_available()
    assert mnist_dir() == tmp_path  # where a download would go
    write_mnist(tmp_path / sub, fake_mnist())
    assert mnist_available()
    assert mnist_dir() == tmp_path / sub
    assert load_mnist(download=False, val_size=5).name == "mnist"


# ------------------------------------------------------------------------- downloader (HTTP)


class _Mirror(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, files: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = files  # URL path -> body
        self.requests: list[str] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}/mnist/"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """serve(files: {stem: body}) -> running mirror on 127.0.0.1; stopped after the test."""
    servers = []

    def start(bodies: dict[str, bytes], suffix=".gz") -> _Mirror:
        server = _Mirror({f"/mnist/{stem}{suffix}": body for stem, body in bodies.items()})
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def gzipped(files: dict[str, bytes]) -> dict[str, bytes]:
    return {stem: gzip.compress(data) for stem, data in files.items()}


def dead_url() -> str:
    """A local port nobody listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def test_download_verifies_writes_files_and_reports_progress(tmp_path, serve):
    files = fake_mnist()
    mirror = serve(gzipped(files))
    calls = []
    target = tmp_path / "cache"
    result = download_mnist(
        target, mirrors=[mirror.url], checksums=checksums_of(files), progress=lambda *a: calls.append(a), timeout=5
    )
    assert result == target
    for stem, data in files.items():
        assert gzip.decompress((target / f"{stem}.gz").read_bytes()) == data
    assert leftovers(target) == []
    names = {name for name, _, _ in calls}
    assert names == {f"{stem}.gz" for stem in MNIST_FILES}
    for stem in MNIST_FILES:
        mine = [(done, total) for name, done, total in calls if name == f"{stem}.gz"]
        size = len(mirror.files[f"/mnist/{stem}.gz"])
        assert mine[0] == (0, size) and mine[-1] == (size, size)
        assert [done for done, _ in mine] == sorted(done for done, _ in mine)


def test_download_skips_files_already_present(tmp_path, serve):
    files = fake_mnist()
    write_mnist(tmp_path, {k: v for k, v in files.items() if k.startswith("train")})
    mirror = serve(gzipped(files))
    download_mnist(tmp_path, mirrors=[mirror.url], checksums=checksums_of(files), timeout=5)
    assert sorted(mirror.requests) == ["/mnist/t10k-images-idx3-ubyte.gz", "/mnist/t10k-labels-idx1-ubyte.gz"]


def test_checksum_mismatch_falls_through_to_next_mirror(tmp_path, serve):
    files = fake_mnist()
    corrupted = {stem: bytearray(data) for stem, data in files.items()}
    for data in corrupted.values():
        data[-1] ^= 0x01  # same size, one bit different
    bad = serve(gzipped({k: bytes(v) for k, v in corrupted.items()}))
    good = serve(gzipped(files))
    ds = load_mnist(tmp_path, mirrors=[bad.url, good.url], checksums=checksums_of(files), val_size=5, timeout=5)
    assert ds.name == "mnist" and len(ds.X_test) == 20
    assert len(bad.requests) == 4 and len(good.requests) == 4  # the bad mirror was tried for every file
    for stem, data in files.items():
        assert gzip.decompress((tmp_path / f"{stem}.gz").read_bytes()) == data
    assert leftovers(tmp_path) == []
    assert any("checksum mismatch" in note for note in ds.notes)
    assert any(f"from {good.url}" in note for note in ds.notes)


def test_truncated_and_missing_files_fall_through(tmp_path, serve):
    files = fake_mnist()
    broken = gzipped(files)
    broken["train-images-idx3-ubyte"] = broken["train-images-idx3-ubyte"][:-30]  # gzip ends early
    del broken["t10k-labels-idx1-ubyte"]  # 404
    first = serve(broken)
    second = serve(gzipped(files))
    download_mnist(tmp_path, mirrors=[first.url, second.url], checksums=checksums_of(files), timeout=5)
    assert sorted(second.requests) == ["/mnist/t10k-labels-idx1-ubyte.gz", "/mnist/train-images-idx3-ubyte.gz"]
    assert leftovers(tmp_path) == []
    assert load_mnist(tmp_path, download=False, val_size=5).name == "mnist"


def test_plain_idx_from_mirror_is_kept_uncompressed(tmp_path, serve):
    files = fake_mnist()
    mirror = serve(files)  # served without gzip under the .gz name
    download_mnist(tmp_path, mirrors=[mirror.url], checksums=checksums_of(files), timeout=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(MNIST_FILES)
    assert load_mnist(tmp_path, download=False, val_size=5).name == "mnist"


def test_server_down_falls_back_to_sample_with_offline_note(tmp_path):
    files = fake_mnist()
    ds = load_mnist(tmp_path / "cache", mirrors=[dead_url()], checksums=checksums_of(files), timeout=5)
    assert ds.name == "sample" and ds.X_test is None
    assert len(ds.X_train) + len(ds.X_val) == 5000
    assert any(
        note.startswith("offline: using the bundled 5,000-digit sample") and "could not be downloaded" in note
        for note in ds.notes
    )
    assert leftovers(tmp_path / "cache") == []


def test_server_down_without_fallback_raises_naming_mirror(tmp_path):
    url = dead_url()
    with pytest.raises(DataError, match="Could not download train-images-idx3-ubyte.gz from any mirror") as info:
        load_mnist(tmp_path, mirrors=[url], checksums=checksums_of(fake_mnist()), fallback=False, timeout=5)
    assert url in str(info.value)


def test_mirror_that_never_answers_is_abandoned_after_the_timeout(tmp_path, serve):
    files = fake_mnist()
    good = serve(gzipped(files))
    with socket.socket() as silent:  # accepts connections (backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hung = f"http://127.0.0.1:{silent.getsockname()[1]}/mnist/"
        ds = load_mnist(tmp_path, mirrors=[hung, good.url], checksums=checksums_of(files), val_size=5, timeout=0.3)
    assert ds.name == "mnist"
    assert len(good.requests) == 4
    assert any("cannot connect" in note for note in ds.notes)


def test_all_mirrors_corrupt_raises(tmp_path, serve):
    files = fake_mnist()
    wrong = serve(gzipped(fake_mnist(n_train=61)))
    with pytest.raises(DataError, match="checksum mismatch"):
        download_mnist(tmp_path, mirrors=[wrong.url], checksums=checksums_of(files), timeout=5)
    assert leftovers(tmp_path) == [] and not any(tmp_path.iterdir())


def test_interrupted_download_leaves_no_files(tmp_path, serve):
    files = fake_mnist()
    mirror = serve(gzipped(files))

    class Stop(Exception):
        pass

    def progress(name, done, total):
        if done > 0:
            raise Stop  # e.g. the user navigated away mid-download

    with pytest.raises(Stop):
        download_mnist(tmp_path, mirrors=[mirror.url], checksums=checksums_of(files), progress=progress, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_default_mirrors_and_checksums_are_the_published_ones():
    assert datasets.MNIST_SHA256["train-images-idx3-ubyte"].startswith("ba891046e650")
    assert datasets.MNIST_SHA256["t10k-labels-idx1-ubyte"].startswith("ff7bcfd416de")
    assert all(url.startswith(("https://", "http://")) and url.endswith("/") for url in datasets.MNIST_MIRRORS)
    assert len(datasets.MNIST_MIRRORS) >= 2


# ---------------------------------------------------------------------------------- sample


def test_sample_has_5000_digits_of_every_class():
    ds = load_sample()
    assert ds.name == "sample"
    assert ds.X_train.shape == (4000, 784) and ds.X_val.shape == (1000, 784)
    assert ds.X_test is None and ds.y_test is None
    assert "no test set" in ds.description
    labels = np.concatenate([ds.y_train, ds.y_val])
    assert set(np.unique(labels)) == set(range(10))
    assert ds.X_train.dtype == np.float32 and 0.0 <= ds.X_train.min() and ds.X_train.max() == 1.0
    # every image is a real digit: plenty of ink
    assert (ds.X_train > 0.5).sum(axis=1).min() > 20


# ------------------------------------------------------------------------------------- CSV


@pytest.mark.parametrize("header", [True, False])
def test_read_csv_with_and_without_header(tmp_path, header):
    images, labels = small_csv_data()
    path = tmp_path / "digits.csv"
    path.write_text(csv_text(images, labels, header=header))
    got_images, got_labels = read_csv(path)
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.parametrize("kind", ["bytesio", "stringio", "bytes", "str path", "uploaded"])
def test_read_csv_accepts_file_likes(tmp_path, kind):
    images, labels = small_csv_data()
    text = csv_text(images, labels)
    if kind == "bytesio":
        source = io.BytesIO(text.encode())
    elif kind == "stringio":
        source = io.StringIO(text)
    elif kind == "bytes":
        source = text.encode()
    elif kind == "str path":
        (tmp_path / "d.csv").write_text(text)
        source = str(tmp_path / "d.csv")
    else:  # Streamlit's UploadedFile is a BytesIO with a name

        class Uploaded(io.BytesIO):
            name = "upload.csv"

        source = Uploaded(text.encode())
    got_images, got_labels = read_csv(source)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_read_csv_tolerates_crlf_blank_lines_spaces_and_float_integers():
    images, labels = small_csv_data(4)
    rows = [",".join([str(label), *(f"{v}.0" for v in row)]) for label, row in zip(labels, images)]
    rows[1] = rows[1].replace(",", ", ")
    text = "label," + ",".join(f"p{i}" for i in range(784)) + "\r\n" + "\r\n".join(rows) + "\r\n\r\n\r\n"
    got_images, got_labels = read_csv(io.BytesIO(text.encode()))
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.parametrize("header", [True, False])
def test_read_csv_ignores_a_utf8_byte_order_mark(header):
    images, labels = small_csv_data(3)
    data = csv_text(images, labels, header=header).encode("utf-8-sig")
    got_images, got_labels = read_csv(io.BytesIO(data))
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def _rows(n=5):
    images, labels = small_csv_data(n)
    return [[str(label), *map(str, row)] for label, row in zip(labels, images)]


def _with_cell(row: int, col: int, value: str) -> str:
    rows = _rows()
    rows[row - 1][col] = value
    return "\n".join(",".join(r) for r in rows) + "\n"


def _with_row_length(row: int, n_values: int) -> str:
    rows = _rows()
    rows[row - 1] = (rows[row - 1] * 2)[:n_values]
    return "\n".join(",".join(r) for r in rows) + "\n"


BAD_CSV = {
    "short row": (_with_row_length(3, 784), "row 3 (line 3) has 784 values"),
    "long row": (_with_row_length(2, 786), "row 2 (line 2) has 786 values"),
    "every row short": ("\n".join(",".join(r[:-1]) for r in _rows()), "row 1 (line 1) has 784 values"),
    "non-numeric": (_with_cell(4, 10, "abc"), "row 4 (line 4): pixel 9 (column 11) is 'abc', which is not a number"),
    "empty cell": (_with_cell(2, 5, ""), "row 2 (line 2): pixel 4 (column 6) is empty"),
    "nan cell": (_with_cell(3, 1, "NaN"), "row 3 (line 3): pixel 0 (column 2) is 'NaN' (missing)"),
    "label 10": (_with_cell(5, 0, "10"), "row 5 (line 5): the label (column 1) is 10, but labels must be digits 0-9"),
    "label -1": (_with_cell(1, 0, "-1"), "row 1 (line 1): the label (column 1) is -1"),
    "pixel 300": (_with_cell(2, 784, "300"), "row 2 (line 2): pixel 783 (column 785) is 300, but pixels must be"),
    "pixel -5": (_with_cell(2, 1, "-5"), "row 2 (line 2): pixel 0 (column 2) is -5"),
    "non-integer": (_with_cell(3, 7, "2.5"), "row 3 (line 3): pixel 6 (column 8) is 2.5, but pixels must be whole"),
    "empty file": ("", "is empty"),
    "only blank lines": ("\n\n  \n", "is empty"),
    "header only": ("label," + ",".join(f"pixel{i}" for i in range(784)) + "\n", "header but no data rows"),
    "binary garbage": (np.random.default_rng(0).bytes(5000), "not a CSV text file"),
    "gzip file": (gzip.compress(b"1,2,3\n" * 100), "not a CSV text file"),
    "binary after 64 KiB of text": (
        "\n".join(",".join(r) for r in _rows(40)).encode() + b"\n\x00\x01\x02" * 30,
        "not a CSV text file (line 41 contains binary data)",
    ),
}


@pytest.mark.parametrize("content,phrase", BAD_CSV.values(), ids=BAD_CSV.keys())
def test_read_csv_rejects_bad_files_naming_row_and_problem(tmp_path, content, phrase):
    path = tmp_path / "bad.csv"
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_csv(path)
    message = str(info.value)
    assert message.startswith("bad.csv")
    assert phrase in message


def test_read_csv_row_numbers_count_data_rows_after_header_and_blank_lines():
    rows = _rows()
    rows[3][0] = "11"
    text = "label," + ",".join(f"p{i}" for i in range(784)) + "\n" + "\n".join(",".join(r) for r in rows[:2])
    text += "\n\n" + "\n".join(",".join(r) for r in rows[2:]) + "\n"
    with pytest.raises(DataError, match=r"row 4 \(line 6\): the label \(column 1\) is 11"):
        read_csv(io.BytesIO(text.encode()))


def test_read_csv_reports_the_first_of_several_problems():
    rows = _rows()
    rows[3][0] = "10"
    rows[1][700] = "999"
    with pytest.raises(DataError, match=r"row 2 \(line 2\): pixel 699 \(column 701\) is 999"):
        read_csv(io.StringIO("\n".join(",".join(r) for r in rows)))


def test_read_csv_error_past_the_first_blocks_names_the_right_row(monkeypatch):
    """Small blocks so the block bookkeeping and the halving search run on a quick file."""
    monkeypatch.setattr(datasets, "_CSV_BLOCK_ROWS", 100)
    monkeypatch.setattr(datasets, "_CSV_EXPLAIN_ROWS", 8)
    images = np.zeros((345, 784), dtype=np.uint8)
    labels = (np.arange(345) % 10).astype(np.uint8)
    lines = csv_text(images, labels, header=False).splitlines()
    lines[250] = lines[250][:-1] + "256"
    with pytest.raises(DataError, match=r"row 251 \(line 251\): pixel 783 \(column 785\) is 256"):
        read_csv(io.StringIO("\n".join(lines)))


def test_careful_csv_path_reads_valid_files_exactly_like_the_fast_path(monkeypatch):
    monkeypatch.setattr(datasets, "_CSV_BLOCK_ROWS", 7)
    monkeypatch.setattr(datasets, "_CSV_EXPLAIN_ROWS", 2)
    images, labels = small_csv_data(30)
    lines = csv_text(images, labels).splitlines()
    lines[5] = lines[5].replace(",", ", ")
    lines.insert(9, "")
    text = "\n".join(lines)
    fast = read_csv(io.StringIO(text))
    monkeypatch.setattr(datasets, "_read_csv_fast", lambda *a: None)
    careful = read_csv(io.StringIO(text))
    for got in (fast, careful):
        np.testing.assert_array_equal(got[0], images)
        np.testing.assert_array_equal(got[1], labels)


def test_read_csv_guards_against_huge_inputs():
    images, labels = small_csv_data(5)
    with pytest.raises(DataError, match="more than 3 rows"):
        read_csv(io.StringIO(csv_text(images, labels)), max_rows=3)
    assert len(read_csv(io.StringIO(csv_text(images, labels)), max_rows=5)[0]) == 5


def test_read_csv_unnamed_source_and_missing_path(tmp_path):
    with pytest.raises(DataError, match="^the CSV data is empty"):
        read_csv(io.BytesIO(b""))
    with pytest.raises(DataError, match="does not exist"):
        read_csv(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="give a path or a file"):
        read_csv(12345)


def test_load_csv_builds_dataset_with_test_set(tmp_path):
    images, labels = small_csv_data(50)
    (tmp_path / "train.csv").write_text(csv_text(images, labels))
    (tmp_path / "test.csv").write_text(csv_text(images[:7], labels[:7], header=False))
    ds = load_csv(tmp_path / "train.csv", test_source=tmp_path / "test.csv", val_size=1000, seed=0)
    assert ds.name == "csv:train.csv"
    assert ds.X_train.shape == (45, 784) and ds.X_val.shape == (5, 784) and ds.X_test.shape == (7, 784)
    assert ds.X_train.dtype == np.float32 and ds.X_train.max() <= 1.0 and ds.X_train.min() >= 0.0
    np.testing.assert_allclose(ds.X_test * 255, images[:7], atol=1e-4)
    assert ds.description == "CSV train.csv, 45 train / 5 val / 7 test"


def test_load_csv_from_upload_uses_its_name_or_an_override():
    images, labels = small_csv_data(20)

    class Uploaded(io.BytesIO):
        name = "my digits.csv"

    ds = load_csv(Uploaded(csv_text(images, labels).encode()), val_size=2)
    assert ds.name == "csv:my digits.csv" and ds.X_test is None and len(ds.X_val) == 2
    ds = load_csv(io.BytesIO(csv_text(images, labels).encode()), name="drawn", val_size=2)
    assert ds.name == "csv:drawn"


def test_load_csv_needs_two_rows():
    images, labels = small_csv_data(1)
    with pytest.raises(DataError, match="at least 2"):
        load_csv(io.StringIO(csv_text(images, labels)))


# -------------------------------------------------------------------------------- dispatch


def test_load_dataset_dispatches(tmp_path):
    assert load_dataset("sample", val_size=100).X_val.shape == (100, 784)
    images, labels = small_csv_data(20)
    (tmp_path / "d.csv").write_text(csv_text(images, labels))
    assert load_dataset("csv", source=tmp_path / "d.csv", val_size=2).name == "csv:d.csv"
    write_mnist(tmp_path / "m", fake_mnist())
    assert load_dataset("mnist", data_dir=tmp_path / "m", download=False, val_size=5).name == "mnist"


@pytest.mark.parametrize("kind,kw", [("imagenet", {}), ("csv", {})])
def test_load_dataset_rejects_unknown_kind_and_missing_source(kind, kw):
    with pytest.raises(ConfigError):
        load_dataset(kind, **kw)


def test_errors_are_user_facing():
    assert issubclass(DataError, ScratchnetError)
