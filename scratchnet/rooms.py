"""Live rooms: an audience draws on their phones, the presenter's wall shows what the network reads.

A room is a folder ``rooms_dir() / <CODE>`` holding ``room.json`` (written atomically), one 28x28
PNG per drawing (MNIST polarity, the very pixels the network saw), ``drawings.csv`` (one row per
drawing: who, the guess, its confidence) and ``answers.csv`` (the drawer's "Yes" or "No, it is a
…"), both appended one row at a time under a lock, as the Draw page's labelled drawings are. Codes
are 6 characters from an alphabet without look-alikes (about a billion codes), checked against a
strict pattern before they ever touch a path. Opening a room hands back a secret presenter key;
only its hash is stored, and clearing, closing, teaching or switching the room's model need it.

Nothing here imports Streamlit: the Live page and the Draw page's room mode only render.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import threading
import time
import unicodedata
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from scratchnet.errors import ScratchnetError
from scratchnet.files import append_csv_row, atomic_write

try:
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a projector, typed on a phone
CODE_LENGTH = 6
_CODE_RE = re.compile(f"[{ALPHABET}]{{{CODE_LENGTH}}}")
_ID_RE = re.compile(r"[0-9]{19}-[0-9a-f]{8}")
MAX_PER_ROOM = 500  # drawings a room accepts
MIN_INTERVAL = 1.0  # seconds between two drawings of one session
MAX_NICKNAME = 24
DEFAULT_IDLE_HOURS = 12.0
DRAWING_FIELDS = ("id", "author", "nickname", "predicted", "confidence", "created")
ANSWER_FIELDS = ("id", "label", "created")


class RoomError(ScratchnetError):
    """A room code that is malformed, unknown or closed, or a presenter key that does not fit."""


class RateLimited(RoomError):
    """Too many drawings: a polite sentence, and nothing stored."""


def rooms_dir() -> Path:
    from scratchnet.datasets import data_dir

    return Path(data_dir()) / "rooms"


def idle_hours() -> float:
    """Hours without a drawing after which a room closes (``SCRATCHNET_ROOM_IDLE_HOURS``, default 12)."""
    try:
        value = float(os.environ.get("SCRATCHNET_ROOM_IDLE_HOURS", DEFAULT_IDLE_HOURS))
    except ValueError:
        return DEFAULT_IDLE_HOURS
    return value if value > 0 else DEFAULT_IDLE_HOURS


def validate_code(text) -> str:
    """The code, normalised (upper case, trimmed); RoomError for anything that is not one."""
    if not isinstance(text, str) or len(text) > 32:
        raise RoomError("That is not a room code: a code is 6 letters and digits, like K7QX2M.")
    code = text.strip().upper()
    if not _CODE_RE.fullmatch(code):
        shown = code if code.isprintable() and len(code) <= 16 else code[:16].encode("unicode_escape").decode()
        raise RoomError(f"{shown!r} is not a room code: a code is 6 letters and digits, like K7QX2M.")
    return code


def clean_nickname(text) -> str:
    """A nickname as plain text: no control characters, one line, at most MAX_NICKNAME characters.

    It is shown as text, never as HTML or Markdown; this only keeps it short and on one line.
    """
    if not isinstance(text, str):
        return ""
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return " ".join(text.split())[:MAX_NICKNAME]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _author(session: str) -> str:
    """Sessions are stored as a short hash: enough to tell drawers apart, nothing more."""
    return hashlib.sha256(f"scratchnet-room:{session}".encode()).hexdigest()[:16]


@dataclass
class RoomDrawing:
    id: str
    author: str
    nickname: str
    predicted: int
    confidence: float
    created: float  # seconds since the epoch
    label: int | None = None  # the drawer's answer, once given
    image: np.ndarray | None = None  # (28, 28) uint8, loaded for the wall's latest and stumpers

    @property
    def answered(self) -> bool:
        return self.label is not None

    @property
    def right(self) -> bool | None:
        return None if self.label is None else self.label == self.predicted


@dataclass
class RoomView:
    """What the wall shows at one moment."""

    code: str
    model: str | None
    closed: bool
    drawings: int  # since the wall was last cleared
    answered: int
    correct: int
    latest: list[RoomDrawing] = field(default_factory=list)  # newest first, with images
    confusion: np.ndarray = field(default_factory=lambda: np.zeros((10, 10), np.int64))  # [true, predicted]
    stumpers: list[RoomDrawing] = field(default_factory=list)  # confident mistakes, with images
    nicknames: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.answered if self.answered else None

    @property
    def hardest(self) -> tuple[int, float] | None:
        """(digit, accuracy) of the answered digit the network reads worst, if any is wrong."""
        totals = self.confusion.sum(axis=1)
        if not totals.any():
            return None
        acc = np.where(totals > 0, np.diag(self.confusion) / np.maximum(totals, 1), np.inf)
        d = int(np.argmin(acc))
        return (d, float(acc[d])) if acc[d] < 1 else None


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_last_add: dict[tuple[str, str], float] = {}  # (code, author) -> time of their last drawing


class Rooms:
    """Every room on this server (``root``: default ``rooms_dir()``)."""

    def __init__(self, root=None, clock=time.time):
        self.root = Path(root) if root is not None else rooms_dir()
        self.clock = clock

    # ----------------------------------------------------------------- paths and locks
    def _dir(self, code: str) -> Path:
        return self.root / validate_code(code)

    @contextmanager
    def _locked(self, code: str):
        d = self._dir(code)
        if not d.is_dir():
            raise RoomError(f"There is no room {d.name}; check the code on the wall.")
        with _locks_guard:
            lock = _locks.setdefault(str(d), threading.Lock())
        with lock:
            fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                yield d
            finally:
                os.close(fd)

    def _meta(self, code: str) -> dict:
        d = self._dir(code)
        try:
            meta = json.loads((d / "room.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RoomError(f"There is no room {code.strip().upper()}; check the code on the wall.") from None
        except (OSError, ValueError):
            raise RoomError(f"Room {code.strip().upper()} cannot be read.") from None
        if not isinstance(meta, dict):
            raise RoomError(f"Room {code.strip().upper()} cannot be read.")
        return meta

    def _write_meta(self, code: str, meta: dict) -> None:
        with atomic_write(self._dir(code) / "room.json", "w", prefix=".tmp-", suffix=".json") as f:
            json.dump(meta, f)

    # ----------------------------------------------------------------- the presenter
    def open(self, model: str | None = None) -> tuple[str, str]:
        """A new room: returns (code, presenter key). The key is shown to the presenter once."""
        self.close_idle()
        self.root.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
            try:
                (self.root / code).mkdir()
            except FileExistsError:
                continue
            key = secrets.token_urlsafe(18)
            self._write_meta(code, {"code": code, "created": self.clock(), "key_sha256": _digest(key),
                                    "model": model, "closed": False, "cleared_at": 0.0})
            return code, key
        raise RoomError("Could not find a free room code; try again.")  # pragma: no cover

    def check_key(self, code: str, key) -> dict:
        """The room's record if ``key`` is its presenter key; RoomError otherwise."""
        meta = self._meta(code)
        if not isinstance(key, str) or not hmac.compare_digest(_digest(key), str(meta.get("key_sha256", ""))):
            raise RoomError("Only the presenter who opened this room can do that.")
        return meta

    def is_presenter(self, code: str, key) -> bool:
        try:
            self.check_key(code, key)
            return True
        except RoomError:
            return False

    def clear(self, code: str, key) -> None:
        """Empty the wall: it shows only drawings made from now on (the files are kept)."""
        with self._locked(code):
            meta = self.check_key(code, key)
            meta["cleared_at"] = self.clock()
            self._write_meta(code, meta)

    def close(self, code: str, key) -> None:
        with self._locked(code):
            meta = self.check_key(code, key)
            meta.update(closed=True, closed_at=self.clock())
            self._write_meta(code, meta)

    def set_model(self, code: str, key, model: str | None) -> None:
        """The model everyone in the room draws against."""
        with self._locked(code):
            meta = self.check_key(code, key)
            meta["model"] = model
            self._write_meta(code, meta)

    def close_idle(self) -> list[str]:
        """Close rooms nobody drew in for ``idle_hours()``; their drawings are kept."""
        limit = self.clock() - idle_hours() * 3600
        closed = []
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return closed
        for entry in entries:
            if not _CODE_RE.fullmatch(entry.name):
                continue
            try:
                meta = self._meta(entry.name)
                if meta.get("closed") or self._last_activity(entry.name, meta) >= limit:
                    continue
                with self._locked(entry.name):
                    meta = self._meta(entry.name)
                    meta.update(closed=True, closed_at=self.clock(), closed_why="idle")
                    self._write_meta(entry.name, meta)
                closed.append(entry.name)
            except (RoomError, OSError):
                continue
        return closed

    def _last_activity(self, code: str, meta: dict) -> float:
        d = self._dir(code)
        times = [float(meta.get("created") or 0), float(meta.get("cleared_at") or 0)]
        for name in ("drawings.csv", "answers.csv"):
            try:
                times.append((d / name).stat().st_mtime)
            except FileNotFoundError:
                pass
        return max(times)

    # ----------------------------------------------------------------- the audience
    def info(self, code: str) -> dict:
        """The open room's record (model, created); RoomError if unknown or closed.

        A room idle for ``idle_hours()`` closes here, the first time anyone looks at it.
        """
        if self._idle(code, self._meta(code)):
            with self._locked(code):
                return self._open_meta(code)
        return self._open_meta(code)

    def _idle(self, code: str, meta: dict) -> bool:
        return not meta.get("closed") and self._last_activity(code, meta) < self.clock() - idle_hours() * 3600

    def _open_meta(self, code: str) -> dict:
        """info() for a caller holding the room's lock: closes it if idle, refuses it if closed."""
        meta = self._meta(code)
        if self._idle(code, meta):
            meta.update(closed=True, closed_at=self.clock(), closed_why="idle")
            self._write_meta(code, meta)
        if meta.get("closed"):
            raise RoomError(f"Room {validate_code(code)} has closed.")
        return meta

    def add(self, code: str, session: str, image28, probabilities, nickname: str = "") -> RoomDrawing:
        """Put one drawing on the wall, with the network's reading of it."""
        from scratchnet.feedback import to_uint8

        pixels = to_uint8(image28)
        probs = np.asarray(probabilities, np.float64).reshape(-1)
        if probs.shape != (10,) or not np.isfinite(probs).all():
            raise RoomError("A drawing needs the network's ten probabilities.")
        author = _author(session)
        nickname = clean_nickname(nickname)
        now = self.clock()
        with self._locked(code) as d:
            self._open_meta(code)
            last = _last_add.get((d.name, author))
            if last is not None and now - last < MIN_INTERVAL:
                raise RateLimited("Easy there: one drawing a second is plenty. Try again in a moment.")
            if self._count(d / "drawings.csv") >= MAX_PER_ROOM:
                raise RateLimited(f"This room has all the drawings it can take ({MAX_PER_ROOM}); "
                                  "thank you for drawing!")
            drawing_id = f"{time.time_ns():019d}-{uuid.uuid4().hex[:8]}"
            with atomic_write(d / f"{drawing_id}.png", prefix=".tmp-", suffix=".png") as f:
                Image.fromarray(pixels, mode="L").save(f, format="PNG")
            predicted = int(np.argmax(probs))
            row = [drawing_id, author, nickname, str(predicted), f"{probs[predicted]:.4f}", f"{now:.3f}"]
            append_csv_row(d / "drawings.csv", DRAWING_FIELDS, row)
            if len(_last_add) > 10_000:  # forget sessions whose last drawing is long past
                for k in [k for k, t in list(_last_add.items()) if now - t > 60 * MIN_INTERVAL]:
                    _last_add.pop(k, None)
            _last_add[(d.name, author)] = now
        return RoomDrawing(drawing_id, author, nickname, predicted, float(probs[predicted]), now, None, pixels)

    def answer(self, code: str, session: str, drawing_id: str, label: int) -> None:
        """The drawer's answer: ``label`` is the digit they meant (= the guess when it was right)."""
        if not isinstance(drawing_id, str) or not _ID_RE.fullmatch(drawing_id):
            raise RoomError("That drawing is not in this room.")
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= int(label) <= 9:
            raise RoomError("The answer must be a digit from 0 to 9.")
        author = _author(session)
        with self._locked(code) as d:
            self._open_meta(code)
            rows = {r["id"]: r for r in _read(d / "drawings.csv")}
            row = rows.get(drawing_id)
            if row is None or row.get("author") != author:
                raise RoomError("You can only answer for your own drawings.")
            append_csv_row(d / "answers.csv", ANSWER_FIELDS, [drawing_id, str(int(label)), f"{self.clock():.3f}"])

    # ----------------------------------------------------------------- reading
    def drawings(self, code: str, since: float = 0.0) -> list[RoomDrawing]:
        """Every drawing made after ``since`` (oldest first), with the latest answer of each."""
        d = self._dir(code)
        answers = {}
        for r in _read(d / "answers.csv"):
            try:
                label = int(r["label"])
            except (KeyError, TypeError, ValueError):
                continue
            if 0 <= label <= 9 and _ID_RE.fullmatch(r.get("id") or ""):
                answers[r["id"]] = label
        out = []
        for r in _read(d / "drawings.csv"):
            try:
                drawing = RoomDrawing(r["id"], r["author"], clean_nickname(r.get("nickname") or ""),
                                      int(r["predicted"]), float(r["confidence"]), float(r["created"]))
            except (KeyError, TypeError, ValueError):
                continue
            if not _ID_RE.fullmatch(drawing.id) or not 0 <= drawing.predicted <= 9 or drawing.created < since:
                continue
            drawing.label = answers.get(drawing.id)
            out.append(drawing)
        return out

    def image(self, code: str, drawing_id: str) -> np.ndarray | None:
        if not _ID_RE.fullmatch(drawing_id or ""):
            return None
        try:
            with Image.open(self._dir(code) / f"{drawing_id}.png") as im:
                return np.asarray(im.convert("L"), np.uint8)
        except (OSError, ValueError):
            return None

    def view(self, code: str, latest: int = 24, stumpers: int = 6) -> RoomView:
        """The wall: counts since it was cleared, the latest drawings, confusion, stumpers."""
        meta = self._meta(code)
        code = validate_code(code)
        shown = self.drawings(code, since=float(meta.get("cleared_at") or 0.0))
        answered = [x for x in shown if x.answered]
        confusion = np.zeros((10, 10), np.int64)
        for x in answered:
            confusion[x.label, x.predicted] += 1
        wrong = sorted((x for x in answered if not x.right), key=lambda x: -x.confidence)[:stumpers]
        newest = shown[::-1][:latest]
        for x in newest + wrong:
            if x.image is None:
                x.image = self.image(code, x.id)
        return RoomView(code, meta.get("model"), bool(meta.get("closed")), len(shown), len(answered),
                        sum(1 for x in answered if x.right), newest, confusion, wrong,
                        len({x.nickname for x in shown if x.nickname}))

    def answered_arrays(self, code: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The room's answered drawings as (X (n, 784) float32, labels, ids): what teaching learns."""
        xs, ys, ids = [], [], []
        for x in self.drawings(code):
            if not x.answered:
                continue
            img = self.image(code, x.id)
            if img is not None:
                xs.append(img.reshape(784).astype(np.float32) / 255)
                ys.append(x.label)
                ids.append(x.id)
        return np.asarray(xs, np.float32).reshape(len(xs), 784), np.asarray(ys, np.int64), ids

    @staticmethod
    def _count(path: Path) -> int:
        try:
            with open(path, "rb") as f:
                return max(0, f.read().count(b"\n") - 1)
        except FileNotFoundError:
            return 0


def _read(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return list(csv.DictReader(io.StringIO(text)))


def join_url(base_url: str, code: str) -> str:
    """The audience's link: the Draw page in room ``code`` (never the presenter key)."""
    base = (os.environ.get("SCRATCHNET_PUBLIC_URL") or base_url or "").rstrip("/")
    return f"{base}/Draw?room={validate_code(code)}"


def presenter_url(base_url: str, code: str, key: str) -> str:
    """The presenter's own link back to the wall, shown once; it carries the key."""
    base = (os.environ.get("SCRATCHNET_PUBLIC_URL") or base_url or "").rstrip("/")
    return f"{base}/Live?room={validate_code(code)}&key={key}"


def qr_png(text: str, scale: int = 10) -> bytes:
    """``text`` as a QR code, a PNG of black modules on white with the standard quiet zone.

    QR encoding (Reed-Solomon codes, masks) is done by the small pure-Python ``segno`` package;
    it is not what this project teaches (see README, Dependencies).
    """
    import segno

    buf = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buf, kind="png", scale=scale, border=4)
    return buf.getvalue()
