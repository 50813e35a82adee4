"""Reading a drawing, and keeping the drawings a user labelled ("Was this right?").

The Draw page's logic lives here so it can be tested without a browser: :func:`read_digit` turns a
canvas or an uploaded picture into the 28x28 input and the network's ten probabilities, and
:class:`FeedbackStore` keeps the drawings whose true digit the user told us.

The store is a plain folder (``data_dir() / "drawings"``): one 28x28 PNG per drawing, in MNIST
polarity (white ink on black, exactly the pixels the network saw), plus ``labels.csv`` with
``filename,label,predicted,model,created``. Anyone can open it with an image viewer or a
spreadsheet, and its ``filename,label`` columns are the layout of a drawn-digit test folder.

Several Streamlit sessions (threads) or app processes may save at once. Each PNG is written to a
temporary file and renamed into place under a unique name *before* its row is appended, and the
row is a single ``os.write`` on an ``O_APPEND`` descriptor while an exclusive ``flock`` is held,
so rows never interleave, are never lost, and never point at a half-written image. Readers skip
any row they cannot use (missing image, edited by hand) rather than failing.
"""

from __future__ import annotations

import csv
import io
import os
import re
import threading
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from scratchnet.errors import DataError
from scratchnet.files import append_csv_row, atomic_write

try:  # POSIX; on Windows the per-process lock below still serialises sessions of one app
    import fcntl
except ImportError:  # pragma: no cover - not exercised on Linux CI
    fcntl = None

LABELS_FILE = "labels.csv"
LOCK_FILE = ".lock"
FIELDS = ("filename", "label", "predicted", "model", "created")
MAX_DRAWINGS = 100_000  # ~30 MB of PNGs: a public demo must not fill the disk one click at a time
_FILENAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.png")
_thread_lock = threading.Lock()


def drawings_dir() -> Path:
    """Where labelled drawings are kept: ``data_dir() / "drawings"``."""
    from scratchnet.datasets import data_dir  # lazy: reading drawings needs no dataset code

    return Path(data_dir()) / "drawings"


# --------------------------------------------------------------------------- reading a digit


@dataclass(frozen=True)
class Reading:
    """What the network made of one picture."""

    image: np.ndarray  # (28, 28) float32 in [0, 1]: the exact input the network saw
    probabilities: np.ndarray  # (10,) float32, sums to 1

    @property
    def digit(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def confidence(self) -> float:
        return float(self.probabilities.max())


def to_input(image) -> np.ndarray:
    """Any picture -> the MNIST-style (28, 28) input; the canvas's RGBA array takes the fast path.

    Raises ``EmptyImageError`` when there is (almost) no ink, ``DataError`` for unusable input.
    """
    from scratchnet import imaging

    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 4 and image.dtype == np.uint8:
        return imaging.canvas_to_mnist(image)
    return imaging.to_mnist(image)


def read_digit(net, image) -> Reading:
    """Preprocess ``image`` exactly as for training data and ask ``net`` for ten probabilities."""
    x = np.asarray(to_input(image), dtype=np.float32)
    probs = np.asarray(net.predict_proba(x.reshape(1, -1))[0], dtype=np.float32)
    return Reading(image=x, probabilities=probs)


def enlarge(image28: np.ndarray, size: int = 196) -> Image.Image:
    """The 28x28 input blown up with hard pixel edges, so users see what the network sees."""
    pixels = to_uint8(image28)
    return Image.fromarray(pixels, mode="L").resize((size, size), Image.NEAREST)


def to_uint8(image28: np.ndarray) -> np.ndarray:
    """(28, 28) floats in [0, 1] (or uint8) -> uint8 0-255, the notebook's CSV pixel scale."""
    a = np.asarray(image28)
    if a.shape not in ((28, 28), (784,)):
        raise DataError(f"A drawing must be 28x28 pixels, got shape {a.shape}.")
    if a.dtype == np.uint8:
        return a.reshape(28, 28)
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise DataError("The drawing contains NaN or infinite pixel values.")
    return np.rint(np.clip(a, 0.0, 1.0) * 255).astype(np.uint8).reshape(28, 28)


# --------------------------------------------------------------------------- the store


@dataclass(frozen=True)
class Drawing:
    filename: str
    label: int
    predicted: int | None  # what the model said when the user labelled it
    model: str  # name of that model ("" if unknown)
    created: str  # ISO-8601, UTC

    @property
    def correct(self) -> bool | None:
        return None if self.predicted is None else self.predicted == self.label


@dataclass(frozen=True)
class Accuracy:
    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float("nan")


def _check_label(value, what: str) -> int:
    try:
        ok = float(value) == int(value)
        v = int(value)
    except (TypeError, ValueError):
        ok = False
    if not ok or not 0 <= v <= 9:
        raise DataError(f"The {what} must be a digit from 0 to 9, got {value!r}.")
    return v


class FeedbackStore:
    """The folder of labelled drawings; every method is safe with concurrent sessions."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else drawings_dir()

    @property
    def labels_path(self) -> Path:
        return self.directory / LABELS_FILE

    @contextmanager
    def _locked(self, exclusive: bool):
        """Hold the folder's lock: threads of this process and other processes alike."""
        if not exclusive and not self.directory.exists():
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        with _thread_lock if exclusive else nullcontext():
            fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                yield
            finally:
                os.close(fd)  # closing releases the flock

    # ----------------------------------------------------------------- writing
    def add(self, image28, label, predicted=None, model: str = "") -> Drawing:
        """Keep one drawing with its true ``label`` (and what ``model`` predicted for it)."""
        label = _check_label(label, "true digit")
        predicted = None if predicted is None else _check_label(predicted, "predicted digit")
        pixels = to_uint8(image28)
        model = re.sub(r"[\r\n,]", " ", str(model or ""))[:64]
        now = datetime.now(timezone.utc)
        created = now.isoformat(timespec="seconds")
        filename = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}.png"
        self.directory.mkdir(parents=True, exist_ok=True)
        # 1. the image, complete, under its final name (atomic rename within the folder)
        with atomic_write(self.directory / filename, prefix=".tmp-", suffix=".png") as f:
            Image.fromarray(pixels, mode="L").save(f, format="PNG")
        # 2. its row, appended in one write under the lock
        row = [filename, str(label), "" if predicted is None else str(predicted), model, created]
        with self._locked(exclusive=True):
            n = self._count_rows()
            if n >= MAX_DRAWINGS:
                (self.directory / filename).unlink(missing_ok=True)
                raise DataError(
                    f"The drawing store already holds {MAX_DRAWINGS:,} drawings; export and "
                    "clear it before adding more."
                )
            append_csv_row(self.labels_path, FIELDS, row)
        return Drawing(filename, label, predicted, model, created)

    def clear(self) -> int:
        """Delete every kept drawing; returns how many there were."""
        with self._locked(exclusive=True):
            drawings = self._read_rows()
            self.labels_path.unlink(missing_ok=True)
            # only listed images: one being saved right now gets its row after us and stays valid
            for d in drawings:
                (self.directory / d.filename).unlink(missing_ok=True)
        return len(drawings)

    # ----------------------------------------------------------------- reading
    def _count_rows(self) -> int:
        if not self.labels_path.exists():
            return 0
        with open(self.labels_path, "rb") as f:
            return max(0, f.read().count(b"\n") - 1)

    def _read_rows(self) -> list[Drawing]:
        try:
            text = self.labels_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        out = []
        for row in csv.DictReader(io.StringIO(text)):
            try:
                name = row["filename"]
                if not _FILENAME_RE.fullmatch(name or ""):
                    continue
                label = _check_label(row["label"], "label")
                pred = row.get("predicted") or ""
                predicted = _check_label(pred, "predicted digit") if pred != "" else None
            except (DataError, KeyError, TypeError):
                continue  # a hand-edited or truncated row: skip it, keep the rest
            out.append(Drawing(name, label, predicted, row.get("model") or "", row.get("created") or ""))
        return out

    def list(self, check_files: bool = True) -> list[Drawing]:
        """Every usable drawing, oldest first.

        ``check_files=False`` skips one ``stat`` per drawing: the Draw page's running figures
        are recomputed on every stroke and need not notice an image deleted by hand.
        """
        with self._locked(exclusive=False):
            rows = self._read_rows()
        if not check_files:
            return rows
        return [d for d in rows if (self.directory / d.filename).is_file()]

    def __len__(self) -> int:
        return len(self.list())

    def load_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All drawings as ``X`` uint8 ``(n, 784)`` (0-255, MNIST polarity) and ``y`` uint8 ``(n,)``.

        Divide ``X`` by 255 for float32 training rows. Images that no longer decode as 28x28
        greyscale are skipped.
        """
        images, labels = [], []
        for d in self.list():
            try:
                with Image.open(self.directory / d.filename) as im:
                    a = np.asarray(im.convert("L"), dtype=np.uint8)
            except (OSError, ValueError):
                continue
            if a.shape != (28, 28):
                continue
            images.append(a.reshape(784))
            labels.append(d.label)
        if not images:
            return np.zeros((0, 784), np.uint8), np.zeros(0, np.uint8)
        return np.stack(images), np.asarray(labels, np.uint8)

    def accuracy(self, model: str | None = None) -> Accuracy:
        """How often the prediction was right on labelled drawings (of one ``model`` if given)."""
        rated = [d for d in self.list() if d.predicted is not None and (model is None or d.model == model)]
        return Accuracy(correct=sum(d.correct for d in rated), total=len(rated))

    def to_csv(self) -> bytes:
        """The drawings in the notebook's CSV format: ``label,pixel0..pixel783``, pixels 0-255."""
        X, y = self.load_arrays()
        return to_notebook_csv(X, y)


def to_notebook_csv(X: np.ndarray, y: np.ndarray) -> bytes:
    """``label`` then 784 pixel columns (0-255), header ``label,pixel0,...,pixel783``."""
    X = np.asarray(X, np.uint8).reshape(len(X), 784)
    table = np.column_stack([np.asarray(y, np.int64), X.astype(np.int64)])
    buf = io.StringIO()
    buf.write(",".join(["label"] + [f"pixel{i}" for i in range(784)]) + "\n")
    if len(table):
        np.savetxt(buf, table, fmt="%d", delimiter=",")
    return buf.getvalue().encode("ascii")


def load_as_arrays(directory: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Labelled drawings as extra training data: ``(X uint8 (n, 784), y uint8 (n,))``."""
    return FeedbackStore(directory).load_arrays()
