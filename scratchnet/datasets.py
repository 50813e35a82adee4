"""Where the digits come from: MNIST (cached or downloaded), the bundled sample, CSV and IDX files.

Every loader returns a :class:`Dataset` whose images are float32 rows in [0, 1] and whose labels are
uint8, with a validation split already carved out of the training data. Bad input raises
:class:`~scratchnet.errors.DataError` with one sentence naming the file, row and problem, and nothing
is ever half-loaded.

Memory matters: full MNIST has to fit in a few hundred MB next to a training run, so images stay
uint8 while they are read, split and permuted, and each split is converted to float32 exactly once.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import struct
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zlib
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path

import numpy as np

from scratchnet.errors import ConfigError, DataError

__all__ = [
    "Dataset",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "MNIST_SHA256",
    "data_dir",
    "download_mnist",
    "load_csv",
    "load_dataset",
    "load_mnist",
    "load_sample",
    "mnist_available",
    "mnist_dir",
    "read_csv",
    "read_idx",
]

N_PIXELS = 784

#: The four standard files, without the ``.gz`` suffix.
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: SHA-256 of the *decompressed* files: gzip headers differ between mirrors, the contents do not.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: Tried in order; each serves ``<mirror><file>.gz``. yann.lecun.com often refuses, so it is last.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

SAMPLE_PATH = Path(__file__).parent / "data" / "mnist_sample.npz"

MAX_IDX_BYTES = 1 << 30  # a header promising more than this is garbage, not MNIST
MAX_DOWNLOAD_BYTES = 256 << 20  # the biggest MNIST file is 9.9 MB compressed, 47 MB raw
MAX_CSV_ROWS = 200_000
_CHUNK = 1 << 16  # bytes per network / file read
_ROWS_PER_CHUNK = 4096  # rows converted to float32 at a time (keeps temporaries small)
_USER_AGENT = "scratchnet/0.1 (+python urllib)"


@dataclass
class Dataset:
    """Train / validation / (optional) test splits, ready for ``training.train``."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    description: str
    notes: list[str] = field(default_factory=list)


def data_dir() -> Path:
    """Root for everything scratchnet keeps on disk (datasets, models, drawings)."""
    env = os.environ.get("SCRATCHNET_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "scratchnet"


# --------------------------------------------------------------------------------------- splits


def _to_float(images: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """uint8 rows -> new float32 array in [0, 1], gathered in chunks so no big temporary exists."""
    n = len(images) if rows is None else len(rows)
    out = np.empty((n, images.shape[1]), dtype=np.float32)
    for start in range(0, n, _ROWS_PER_CHUNK):
        stop = min(start + _ROWS_PER_CHUNK, n)
        block = images[start:stop] if rows is None else images[rows[start:stop]]
        np.divide(block, np.float32(255), out=out[start:stop])
    return out


def _val_count(n: int, val_size: int) -> int:
    if isinstance(val_size, bool) or not isinstance(val_size, (int, np.integer)) or val_size < 0:
        raise ConfigError(f"val_size must be a whole number >= 0, not {val_size!r}.")
    if val_size == 0:
        return 0
    if n < 2:
        raise DataError(f"Only {n} digit(s) to learn from: at least 2 are needed to hold one out for validation.")
    if n < 2 * val_size:  # small data: a fixed 1,000 would leave too little to train on
        return max(1, n // 10)
    return int(val_size)


def _split(images: np.ndarray, labels: np.ndarray, val_size: int, seed):
    """Hold out random rows for validation; training rows keep their original order."""
    n = len(labels)
    n_val = _val_count(n, val_size)
    if n_val == 0:
        return _to_float(images), labels.copy(), None, None
    rng = np.random.default_rng(seed)
    val_rows = np.sort(rng.choice(n, size=n_val, replace=False))
    keep = np.ones(n, dtype=bool)
    keep[val_rows] = False
    train_rows = np.flatnonzero(keep)
    return (
        _to_float(images, train_rows),
        labels[train_rows],
        _to_float(images, val_rows),
        labels[val_rows],
    )


def _describe(title: str, y_train, y_val, y_test) -> str:
    val = f"{len(y_val):,} val" if y_val is not None else "no val"
    test = f"{len(y_test):,} test" if y_test is not None else "no test set"
    return f"{title}, {len(y_train):,} train / {val} / {test}"


# -------------------------------------------------------------------------------------- sample


def load_sample(val_size: int = 1000, seed=0) -> Dataset:
    """The bundled 5,000 MNIST training digits: works offline, trains in seconds, has no test set."""
    try:
        with np.load(SAMPLE_PATH, allow_pickle=False) as npz:
            images, labels = npz["images"], npz["labels"]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"The bundled sample {SAMPLE_PATH} is missing or damaged ({exc}); reinstall scratchnet.") from exc
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != N_PIXELS or labels.shape != (len(images),):
        raise DataError(f"The bundled sample {SAMPLE_PATH} has unexpected arrays; reinstall scratchnet.")
    X_train, y_train, X_val, y_val = _split(images, labels.astype(np.uint8, copy=False), val_size, seed)
    return Dataset(
        name="sample",
        X_train=X_train,
        y_train=y_train,
        X_val=X_val,
        y_val=y_val,
        X_test=None,
        y_test=None,
        description=_describe(f"MNIST sample (bundled, {len(labels):,} digits)", y_train, y_val, None),
    )


# ----------------------------------------------------------------------------------------- IDX


def _readinto_all(f, buffer: np.ndarray) -> int:
    """Fill ``buffer`` from ``f`` in modest pieces (gzip's readinto would otherwise copy it all)."""
    view = memoryview(buffer).cast("B")
    done = 0
    while done < len(view):
        got = f.readinto(view[done : done + (1 << 20)])
        if not got:
            break
        done += got
    return done


def read_idx(path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip or raw), checking the header against the data."""
    path = Path(path)
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path} does not exist.") from None
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    with raw:
        is_gzip = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        f = gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip else raw
        try:
            header = f.read(4)
            if len(header) < 4:
                raise DataError(f"{path} is not an IDX file: it is empty or shorter than an IDX header.")
            if header[:2] != b"\x00\x00":
                raise DataError(f"{path} is not an IDX file (its magic number is 0x{header.hex()}).")
            if header[2] != 0x08:
                raise DataError(
                    f"{path} stores IDX type 0x{header[2]:02x}, but only unsigned bytes (0x08) are supported."
                )
            ndim = header[3]
            if not 1 <= ndim <= 4:
                raise DataError(f"{path} claims {ndim} dimensions; an IDX file of digits has 1 to 4.")
            dim_bytes = f.read(4 * ndim)
            if len(dim_bytes) < 4 * ndim:
                raise DataError(f"{path} is truncated: its header ends before the {ndim} dimension sizes.")
            dims = struct.unpack(f">{ndim}I", dim_bytes)
            shape = " x ".join(f"{d:,}" for d in dims)
            count = math.prod(dims)
            if count > MAX_IDX_BYTES:
                raise DataError(f"{path} claims {shape} values, which is far too large to be a digit file.")
            data = np.empty(count, dtype=np.uint8)
            got = _readinto_all(f, data)
            if got < count:
                raise DataError(
                    f"{path} is truncated: its header promises {shape} = {count:,} bytes of data "
                    f"but only {got:,} are there."
                )
            if f.read(1):
                raise DataError(f"{path} is damaged: it has more data than the {shape} its header describes.")
        except EOFError as exc:
            raise DataError(f"{path} is truncated: the gzip data ends early.") from exc
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise DataError(f"{path} is a damaged gzip file ({exc}).") from exc
        except OSError as exc:
            raise DataError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    return data.reshape(dims)


# ------------------------------------------------------------------------------------ download


class _MirrorError(Exception):
    """One mirror failed for one file; ``dead`` means do not bother it for the other files."""

    def __init__(self, message: str, dead: bool = False):
        super().__init__(message)
        self.dead = dead


class _ContentHasher:
    """SHA-256 of the decompressed stream (or of the raw bytes when the mirror serves them plain)."""

    def __init__(self):
        self.sha = hashlib.sha256()
        self.gzipped: bool | None = None
        self.size = 0
        self._inflate = None  # the gzip member being decompressed, None between members
        self._complete = False  # the last gzip member ended cleanly

    def update(self, chunk: bytes) -> None:
        if self.gzipped is None:
            self.gzipped = chunk[:2] == b"\x1f\x8b"
        if not self.gzipped:
            self._add(chunk)
            return
        while chunk:  # concatenated gzip members are legal, hence the loop
            if self._inflate is None:
                self._inflate = zlib.decompressobj(wbits=31)
                self._complete = False
            try:
                self._add(self._inflate.decompress(chunk))
            except zlib.error as exc:
                raise _MirrorError(f"the file is not valid gzip ({exc})") from exc
            if self._inflate.eof:
                chunk = self._inflate.unused_data
                self._inflate = None
                self._complete = True
            else:
                chunk = b""

    def _add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > MAX_DOWNLOAD_BYTES:
            raise _MirrorError("the file is far larger than MNIST")
        self.sha.update(data)

    def hexdigest(self) -> str:
        if self.gzipped and not self._complete:
            raise _MirrorError("the download is incomplete (the gzip data ends early)")
        return self.sha.hexdigest()


def _fetch(url: str, directory: Path, stem: str, expected: str, progress, timeout: float) -> Path:
    """Download one file into ``directory`` atomically, or raise _MirrorError (DataError if local)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise _MirrorError("only http and https mirrors are supported", dead=True)
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise _MirrorError(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise _MirrorError(f"cannot connect ({exc.reason})", dead=True) from exc
    except (OSError, HTTPException) as exc:  # timeouts, resets, malformed responses
        raise _MirrorError(f"cannot connect ({exc})", dead=True) from exc
    with response:
        try:
            total = int(response.headers.get("Content-Length", ""))
        except ValueError:
            total = None
        if total is not None and total > MAX_DOWNLOAD_BYTES:
            raise _MirrorError(f"it offers {total:,} bytes, far more than MNIST")
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{stem}.", suffix=".part", dir=directory)
        except OSError as exc:
            raise DataError(f"Cannot write into {directory}: {exc.strerror or exc}.") from exc
        tmp = Path(tmp_name)
        try:
            hasher = _ContentHasher()
            done = 0
            name = f"{stem}.gz"
            with os.fdopen(fd, "wb") as out:
                if progress is not None:
                    progress(name, 0, total)
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except (OSError, HTTPException) as exc:
                        raise _MirrorError(f"the connection failed after {done:,} bytes ({exc})") from exc
                    if not chunk:
                        break
                    done += len(chunk)
                    if done > MAX_DOWNLOAD_BYTES:
                        raise _MirrorError("the file is far larger than MNIST")
                    hasher.update(chunk)
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise DataError(f"Cannot write {tmp}: {exc.strerror or exc}.") from exc
                    if progress is not None:
                        progress(name, done, total)
                try:
                    out.flush()
                    os.fsync(out.fileno())
                except OSError as exc:
                    raise DataError(f"Cannot write {tmp}: {exc.strerror or exc}.") from exc
            if total is not None and done != total:
                raise _MirrorError(f"the download stopped after {done:,} of {total:,} bytes")
            digest = hasher.hexdigest()
            if digest != expected:
                raise _MirrorError(f"checksum mismatch (got sha256 {digest[:12]}..., expected {expected[:12]}...)")
            final = directory / (f"{stem}.gz" if hasher.gzipped else stem)
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
            return final
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _find_mnist_file(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def mnist_dir(root=None) -> Path:
    """The folder holding (or to receive) the four MNIST files under a data directory ``root``.

    The files normally sit in the data directory itself (``SCRATCHNET_DATA_DIR=/path/to/mnist``
    just works); a data root that keeps them in a ``mnist/`` subfolder is accepted too.
    """
    root = data_dir() if root is None else Path(root).expanduser()
    if any(_find_mnist_file(root, stem) for stem in MNIST_FILES):
        return root
    if any(_find_mnist_file(root / "mnist", stem) for stem in MNIST_FILES):
        return root / "mnist"
    return root


def mnist_available(root=None) -> bool:
    """Are all four MNIST files present, so loading needs no download?"""
    directory = mnist_dir(root)
    return all(_find_mnist_file(directory, stem) for stem in MNIST_FILES)


def _download(directory: Path, stems, *, mirrors, progress, timeout, checksums) -> list[str]:
    """Fetch each missing file from the first mirror that serves it intact; returns notes."""
    mirrors = list(MNIST_MIRRORS if mirrors is None else mirrors)
    checksums = MNIST_SHA256 if checksums is None else checksums
    if not mirrors:
        raise DataError("No MNIST mirrors to download from.")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"Cannot create {directory}: {exc.strerror or exc}.") from exc
    dead: set[str] = set()
    notes: list[str] = []
    used: dict[str, int] = {}
    for stem in stems:
        if stem not in checksums:
            raise DataError(f"No checksum known for {stem}, so a download could not be verified.")
        failures = []
        for mirror in mirrors:
            if mirror in dead:
                continue
            url = urllib.parse.urljoin(mirror if mirror.endswith("/") else mirror + "/", f"{stem}.gz")
            try:
                _fetch(url, directory, stem, checksums[stem], progress, timeout)
            except _MirrorError as exc:
                failures.append(f"{url}: {exc}")
                if exc.dead:
                    dead.add(mirror)
                continue
            if failures:
                notes.append(f"{stem}: skipped " + "; ".join(failures))
            used[mirror] = used.get(mirror, 0) + 1
            break
        else:
            tried = "; ".join(failures) if failures else "every mirror was unreachable"
            raise DataError(f"Could not download {stem}.gz from any mirror ({tried}).")
    for mirror, count in used.items():
        notes.append(f"downloaded {count} MNIST file{'s' if count > 1 else ''} from {mirror} into {directory}")
    return notes


def download_mnist(data_dir=None, *, mirrors=None, progress=None, timeout: float = 30, checksums=None) -> Path:
    """Download whichever of the four MNIST files are missing, verified by SHA-256; returns the dir.

    ``progress(file_name, bytes_done, bytes_total_or_None)`` is called as bytes arrive. Each file is
    written to a temporary file in the same directory and renamed into place only once its
    checksum matches, so an interrupted download never leaves a file that looks complete.
    """
    directory = mnist_dir(data_dir)
    missing = [stem for stem in MNIST_FILES if _find_mnist_file(directory, stem) is None]
    if missing:
        _download(directory, missing, mirrors=mirrors, progress=progress, timeout=timeout, checksums=checksums)
    return directory


# --------------------------------------------------------------------------------------- MNIST


def _read_mnist_pair(directory: Path, images_stem: str, labels_stem: str):
    images_path = _find_mnist_file(directory, images_stem)
    labels_path = _find_mnist_file(directory, labels_stem)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{images_path} holds arrays of shape {images.shape}, not 28 x 28 images.")
    if labels.ndim != 1:
        raise DataError(f"{labels_path} holds arrays of shape {labels.shape}, not a list of labels.")
    if len(labels) != len(images):
        raise DataError(
            f"{labels_path} has {len(labels):,} labels but {images_path.name} has {len(images):,} images."
        )
    if len(labels) and labels.max() > 9:
        raise DataError(f"{labels_path} contains the label {labels.max()}; MNIST labels are digits 0-9.")
    return images.reshape(len(images), N_PIXELS), labels


def _offline(reason: str, val_size: int, seed) -> Dataset:
    sample = load_sample(val_size=val_size, seed=seed)
    sample.notes.append(f"offline: using the bundled 5,000-digit sample because {reason}")
    return sample


def load_mnist(
    data_dir=None,
    *,
    download: bool = True,
    progress=None,
    mirrors=None,
    val_size: int = 1000,
    seed=0,
    fallback: bool = True,
    checksums=None,
    timeout: float = 30,
) -> Dataset:
    """Full MNIST (60,000 + 10,000) from ``data_dir`` (default :func:`data_dir`), downloading if needed.

    When the files are missing and cannot be downloaded, ``fallback=True`` returns the bundled
    sample with a note saying so (the app must work offline); ``fallback=False`` raises DataError.
    Damaged files already on disk always raise: silently training on something else would hide it.
    """
    directory = mnist_dir(data_dir)
    notes: list[str] = []
    missing = [stem for stem in MNIST_FILES if _find_mnist_file(directory, stem) is None]
    if missing:
        if download:
            try:
                notes += _download(
                    directory, missing, mirrors=mirrors, progress=progress, timeout=timeout, checksums=checksums
                )
            except DataError as exc:
                if not fallback:
                    raise
                return _offline(f"MNIST could not be downloaded: {exc}", val_size, seed)
        else:
            names = ", ".join(f"{stem}.gz" for stem in missing)
            if not fallback:
                raise DataError(f"MNIST is not in {directory} (missing {names}) and downloading is turned off.")
            return _offline(f"MNIST is not in {directory} (missing {names}) and downloading is off", val_size, seed)

    images, labels = _read_mnist_pair(directory, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    X_train, y_train, X_val, y_val = _split(images, labels, val_size, seed)
    del images, labels  # the uint8 originals are no longer needed; free them before the test set
    test_images, y_test = _read_mnist_pair(directory, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    X_test = _to_float(test_images)
    del test_images
    return Dataset(
        name="mnist",
        X_train=X_train,
        y_train=y_train,
        X_val=X_val,
        y_val=y_val,
        X_test=X_test,
        y_test=y_test,
        description=_describe("MNIST", y_train, y_val, y_test),
        notes=notes,
    )


# ----------------------------------------------------------------------------------------- CSV


def _source_name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    name = getattr(source, "name", None)
    if isinstance(name, str) and name:
        return Path(name).name
    return "the CSV data"


def _open_csv(source):
    """-> (binary, seekable file object, whether we opened it). Text file-likes are encoded as UTF-8."""
    if isinstance(source, (str, os.PathLike)):
        try:
            return open(source, "rb"), True
        except FileNotFoundError:
            raise DataError(f"{source} does not exist.") from None
        except IsADirectoryError:
            raise DataError(f"{source} is a folder, not a CSV file.") from None
        except OSError as exc:
            raise DataError(f"Cannot read {source}: {exc.strerror or exc}.") from exc
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source)), True
    if not hasattr(source, "read"):
        raise DataError(f"Cannot read CSV data from a {type(source).__name__}; give a path or a file.")
    if hasattr(source, "seekable") and source.seekable():
        head = source.read(0)
        if isinstance(head, bytes):
            return source, False
    data = source.read()
    if isinstance(data, str):
        data = data.encode("utf-8")
    return io.BytesIO(data), True


def _is_number(cell: str) -> bool:
    try:
        float(cell.strip().strip('"').strip())
    except ValueError:
        return False
    return True


def _peek(f) -> tuple[bytes, bool]:
    """The first 64 KiB (for header and binary checks) and whether the stream is empty; rewinds."""
    start = f.tell()
    head = f.read(1 << 16)
    f.seek(start)
    return head, not head


def _has_header(head: bytes) -> bool:
    """The notebook's CSV starts 'label,pixel0,...'; a row whose label cell isn't a number is a header."""
    line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r")
    cells = line.split(",")
    return bool(line.strip()) and not _is_number(cells[0])


def _looks_binary(data: bytes) -> bool:
    if b"\x00" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(data) - 4  # a multi-byte character cut at the end of the chunk is fine
    return False


def _read_csv_fast(f, header: bool, max_rows: int):
    """Let pandas parse straight to uint8; any surprise returns None and the careful path explains.

    Read in blocks so pandas' per-column temporaries stay small next to the uint8 result.
    """
    import pandas as pd  # imported lazily: it costs ~80 MB of RSS that MNIST training does not need

    start = f.tell()
    images, labels, n = [], [], 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = pd.read_csv(
                f,
                header=None,
                skiprows=1 if header else 0,
                dtype=np.uint8,  # pandas refuses unsafe casts (300, -1, 2.5), which sends us to the careful path
                engine="c",
                na_filter=False,
                skipinitialspace=True,
                encoding="utf-8",
                chunksize=_CSV_BLOCK_ROWS,
            )
            with reader:
                for frame in reader:
                    n += len(frame)
                    if frame.shape[1] != N_PIXELS + 1 or n > max_rows:
                        return None
                    values = frame.to_numpy(dtype=np.uint8)
                    del frame
                    if values[:, 0].max() > 9:
                        return None
                    labels.append(values[:, 0].copy())
                    images.append(np.ascontiguousarray(values[:, 1:]))
                    del values
    except (ValueError, OverflowError, TypeError, UnicodeDecodeError, pd.errors.ParserError):
        return None
    finally:
        f.seek(start)
    if n == 0:
        return None
    return np.concatenate(images), np.concatenate(labels)


def _cell_problem(cell: str, value: float, column: int) -> str:
    """Why one cell is unusable, as the end of a sentence."""
    what = "the label (column 1)" if column == 0 else f"pixel {column - 1} (column {column + 1})"
    rule = "labels must be digits 0-9" if column == 0 else "pixels must be whole numbers from 0 to 255"
    text = cell.strip()
    if not text:
        return f"{what} is empty, but {rule}"
    if np.isnan(value):
        if text.lower() in ("nan", "na", "n/a", "null", "none"):
            return f"{what} is {text!r} (missing), but {rule}"
        return f"{what} is {text[:20]!r}, which is not a number"
    return f"{what} is {text[:20]}, but {rule}"


_CSV_LOW = np.zeros(N_PIXELS + 1)
_CSV_HIGH = np.concatenate([[9.0], np.full(N_PIXELS, 255.0)])
_MAX_LINE = 1 << 16  # a valid row is under 10 KB even with decimals
_CSV_BLOCK_ROWS = 10_000  # rows parsed per pandas call on the careful path
_CSV_EXPLAIN_ROWS = 256  # a refused block is halved down to this size, then read as text


def _parse_block(block, first_number: int, name: str) -> np.ndarray:
    """Checked lines -> (rows, 785) uint8, or DataError naming the first bad cell.

    pandas parses straight to uint8 and refuses unsafe casts (300, -1, 2.5, 'abc'); a block it
    refuses is halved until the culprit is in a small block, which is then read as text to explain.
    """
    import pandas as pd

    text = b"".join(line if line.endswith(b"\n") else line + b"\n" for _, line in block)
    options = dict(header=None, engine="c", skip_blank_lines=False, encoding="utf-8")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = pd.read_csv(
                io.BytesIO(text), dtype=np.uint8, na_filter=False, skipinitialspace=True, **options
            ).to_numpy()
        if values.shape == (len(block), N_PIXELS + 1) and values[:, 0].max() <= 9:
            return values
    except (ValueError, TypeError, OverflowError):
        pass
    if len(block) > _CSV_EXPLAIN_ROWS:
        mid = len(block) // 2
        return np.concatenate(
            [_parse_block(block[:mid], first_number, name), _parse_block(block[mid:], first_number + mid, name)]
        )
    cells = pd.read_csv(io.BytesIO(text), dtype=str, na_filter=False, keep_default_na=False, **options).to_numpy()
    values = pd.to_numeric(cells.ravel(), errors="coerce").astype(np.float64).reshape(cells.shape)
    bad = ~_cells_ok(values)
    if bad.any():
        r, c = divmod(int(np.argmax(bad)), cells.shape[1])  # row-major: first bad row, first bad column
        problem = _cell_problem(str(cells[r, c]), values[r, c], c)
        raise DataError(f"{name}, row {first_number + r} (line {block[r][0]}): {problem}.")
    return values.astype(np.uint8)


def _cells_ok(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (values >= _CSV_LOW) & (values <= _CSV_HIGH) & (values == np.floor(values))


def _read_csv_careful(f, name: str, header: bool, max_rows: int):
    """Stream the file in blocks of lines, naming the first bad row; accepts unusual-but-valid files.

    Only reached when the fast path failed, so it favours exact messages over speed, but it still
    never holds more than one block of text and the uint8 result in memory.
    """
    image_parts, label_parts = [], []
    block: list[tuple[int, bytes]] = []
    n = 0

    def flush():
        values = _parse_block(block, n - len(block) + 1, name)
        label_parts.append(values[:, 0].copy())
        image_parts.append(np.ascontiguousarray(values[:, 1:]))
        block.clear()

    for line_no, line in enumerate(iter(lambda: f.readline(_MAX_LINE), b""), start=1):
        if b"\x00" in line:
            raise DataError(f"{name} is not a CSV text file (line {line_no} contains binary data).")
        if len(line) >= _MAX_LINE and not line.endswith(b"\n"):
            raise DataError(f"{name}, line {line_no} is far too long to be a row of 785 numbers.")
        if (header and line_no == 1) or not line.strip():
            continue
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{name} is not a CSV text file (line {line_no} contains binary data).") from None
        n += 1
        if n > max_rows:
            raise DataError(f"{name} has more than {max_rows:,} rows, the most that can be loaded at once.")
        fields = line.count(b",") + 1
        if fields != N_PIXELS + 1:
            raise DataError(
                f"{name}, row {n} (line {line_no}) has {fields} values, but every row needs "
                f"{N_PIXELS + 1}: a label and {N_PIXELS} pixels."
            )
        block.append((line_no, line))
        if len(block) >= _CSV_BLOCK_ROWS:
            flush()
    if block:
        flush()
    if n == 0:
        raise DataError(f"{name} has a header but no data rows." if header else f"{name} is empty.")
    labels = np.concatenate(label_parts)
    del label_parts
    images = np.concatenate(image_parts)
    return images, labels


def read_csv(source, *, max_rows: int = MAX_CSV_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Read the notebook's CSV (label, then 784 pixels 0-255; header row optional).

    ``source`` is a path, bytes, or a binary/text file-like (a Streamlit upload works). Returns
    ``(images uint8 (n, 784), labels uint8 (n,))``. Rows are numbered from 1 after any header,
    skipping blank lines; errors also give the line number in the file.
    """
    name = _source_name(source)
    f, owned = _open_csv(source)
    try:
        head, empty = _peek(f)
        if empty:
            raise DataError(f"{name} is empty.")
        if _looks_binary(head):
            raise DataError(f"{name} is not a CSV text file (it contains binary data).")
        header = _has_header(head)
        # A first row that does not end within the peeked 64 KiB is garbage: pandas would build a
        # column per field (minutes and GBs for one long line); the careful path refuses it at once.
        complete = max(head.count(b"\n"), head.count(b"\r")) >= (2 if header else 1) or len(head) < (1 << 16)
        result = _read_csv_fast(f, header, max_rows) if complete else None
        if result is None:
            result = _read_csv_careful(f, name, header, max_rows)
        return result
    finally:
        if owned:
            f.close()


def load_csv(source, *, test_source=None, val_size: int = 1000, seed=0, name: str | None = None) -> Dataset:
    """A Dataset from the notebook's CSV format; ``test_source`` (same format) becomes the test set."""
    file_name = name or _source_name(source)
    images, labels = read_csv(source)
    X_train, y_train, X_val, y_val = _split(images, labels, val_size, seed)
    del images
    X_test = y_test = None
    if test_source is not None:
        test_images, y_test = read_csv(test_source)
        X_test = _to_float(test_images)
        del test_images
    return Dataset(
        name=f"csv:{file_name}",
        X_train=X_train,
        y_train=y_train,
        X_val=X_val,
        y_val=y_val,
        X_test=X_test,
        y_test=y_test,
        description=_describe(f"CSV {file_name}", y_train, y_val, y_test),
    )


# ------------------------------------------------------------------------------------- dispatch

_LOADERS = {"mnist": load_mnist, "sample": load_sample, "csv": load_csv}


def load_dataset(kind: str, **kw) -> Dataset:
    """``load_dataset("mnist" | "sample" | "csv", **options)``: one entry point for the CLI and pages."""
    loader = _LOADERS.get(kind)
    if loader is None:
        raise ConfigError(f"Unknown dataset {kind!r}; choose one of {', '.join(_LOADERS)}.")
    if kind == "csv" and "source" not in kw:
        raise ConfigError("The csv dataset needs a source: a path or an uploaded file.")
    return loader(**kw)
