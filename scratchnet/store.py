"""Model files and the model store.

A model is one ``.npz`` archive: float32 arrays ``W0, b0, W1, b1, ...`` (the parameters of each
dense or convolution layer in order) plus ``metadata_json`` (the JSON text as a 1-d uint8
array). Format 2 lists the layers in the metadata (``"layers"``, ``"input_shape"``); format 1,
written before convolutions existed, gives a multilayer perceptron's ``"sizes"`` and
``"activation"`` and still loads. Nothing is ever pickled and nothing is loaded with
``allow_pickle=True``, so opening a model someone uploaded cannot run their code.

Writes go to a temporary file in the target directory and are moved into place with
``os.replace`` (atomic on POSIX), so a reader - or a writer killed half-way - never leaves a
half-written model under a real name. The store adds no-overwrite naming on top (``os.link``
refuses to clobber), which keeps two processes saving into the same directory from silently
replacing each other's models.
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import re
import tempfile
import threading
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from scratchnet.errors import ModelFileError, ScratchnetError
from scratchnet.files import atomic_write
from scratchnet import layers
from scratchnet.network import Network, mlp_layers

FORMAT = "scratchnet-model"
VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
ACTIVATIONS = ("relu", "sigmoid", "tanh")
N_INPUTS = 784
N_CLASSES = 10
PREPROCESSING = "mnist-28x28-float01"

MAX_FILE_BYTES = 256 * 1024 * 1024  # float64 arrays for MAX_PARAMS fit with room to spare
MAX_PARAMS = 25_000_000  # 100 MB of float32: far beyond anything the app trains
MAX_LAYERS = 12  # format 1: entries of "sizes"
MAX_LAYER_SPECS = 40  # format 2: entries of "layers" (activations, pooling and flatten count)
INPUT_SHAPES = ([784], [28, 28, 1])
# A file may describe layers whose buffers would not fit any machine; refused before allocating.
MAX_BYTES_PER_ROW = 64 * 2**20
MAX_MACS_PER_ROW = 2 * 10**9
MAX_METADATA_BYTES = 16 * 1024 * 1024  # long training histories stay well under this
_NPY_HEADER_SLACK = 64 * 1024  # .npy header bytes allowed on top of the raw array data

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}")
TEMP_PREFIX = ".tmp-"
ACTIVE_FILE = "active.json"
SUFFIX = ".npz"

STALE_TEMP_SECONDS = 3600  # a save takes well under a second; older temp files are orphans

_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"


# --------------------------------------------------------------------------- directories


def models_dir() -> Path:
    """Where the app keeps models: ``SCRATCHNET_MODELS_DIR``, else ``data_dir() / "models"``.

    A read-only data directory (a shared MNIST copy, say) is fine to read digits from but cannot
    hold models; then they go to ``~/.cache/scratchnet/models`` instead of failing at save time.
    """
    env = os.environ.get("SCRATCHNET_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    from scratchnet.datasets import data_dir  # lazy: the store must not pull in dataset code

    root = Path(data_dir())
    if root.is_dir() and not os.access(root, os.W_OK) and not (root / "models").is_dir():
        return Path.home() / ".cache" / "scratchnet" / "models"
    return root / "models"


# --------------------------------------------------------------------------- writing


def _json_default(obj):
    """Let numpy scalars and arrays from training records pass into JSON."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, datetime)):
        return str(obj)
    raise TypeError(f"metadata value of type {type(obj).__name__} cannot be stored as JSON")


def _finite_only(obj):
    """Replace NaN/inf (e.g. a diverged loss in the history) by None: strict JSON has neither."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite_only(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_only(v) for v in obj]
    return obj


def complete_metadata(net: Network, metadata: dict | None) -> dict:
    """The metadata as it will be stored: caller's fields plus the ones that must match the net."""
    meta = dict(metadata or {})
    meta["format"] = FORMAT
    meta["version"] = VERSION
    meta["input_shape"] = [int(s) for s in net.input_shape]
    meta["layers"] = net.layer_specs()
    meta["architecture"] = net.architecture
    if net.sizes is not None:
        meta["sizes"] = [int(s) for s in net.sizes]
    else:
        meta.pop("sizes", None)
    meta["activation"] = str(net.activation)
    meta.setdefault("preprocessing", PREPROCESSING)
    meta.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    # Round-trip through JSON so numpy scalars become plain numbers and NaN becomes None.
    text = json.dumps(meta, default=_json_default)
    return _finite_only(json.loads(text))


def _arrays(net: Network, metadata: dict) -> dict[str, np.ndarray]:
    arrays = {}
    for i, (W, b) in enumerate(zip(net.weights, net.biases)):
        W = np.ascontiguousarray(W, dtype=np.float32)
        b = np.ascontiguousarray(b, dtype=np.float32)
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise ModelFileError(f"Layer {i} has NaN or infinite weights; such a model cannot be saved.")
        arrays[f"W{i}"] = W
        arrays[f"b{i}"] = b
    text = json.dumps(metadata, allow_nan=False, ensure_ascii=False)
    arrays["metadata_json"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return arrays


def _write_npz(fileobj, net: Network, metadata: dict) -> dict:
    meta = complete_metadata(net, metadata)
    np.savez(fileobj, **_arrays(net, meta))
    return meta


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; best effort (not every filesystem allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_temp(directory: Path, net: Network, metadata: dict) -> tuple[Path, dict]:
    """Write a complete, fsynced model to a fresh hidden temp file in ``directory``."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=SUFFIX, dir=directory)
    except OSError as exc:
        raise _write_error(directory, exc) from None
    tmp_path = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            meta = _write_npz(f, net, metadata)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o644)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise _write_error(directory, exc) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return tmp_path, meta


def _write_error(where: Path, exc: OSError) -> ModelFileError:
    """Disk full, no permission, target is a folder...: the user's to fix, so say it plainly."""
    return ModelFileError(f"Cannot save the model to {str(where)!r}: {exc.strerror or exc}.")


def save_model(path, net: Network, metadata: dict | None = None) -> Path | None:
    """Write ``net`` + metadata to ``path`` atomically (readers see the old or the new file).

    ``path`` may also be a writable binary file object, written directly (no atomicity needed:
    nobody else can see it). Returns the path written, or None for a file object.
    """
    if hasattr(path, "write"):
        _write_npz(path, net, metadata)
        return None
    target = Path(path).expanduser()
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise ModelFileError(f"Cannot save the model: folder {str(directory)!r} does not exist.")
    tmp, _ = _write_temp(directory, net, metadata)
    try:
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _write_error(target, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    return target


def model_bytes(net: Network, metadata: dict | None = None) -> bytes:
    """The model file as bytes, e.g. for a download button."""
    buf = io.BytesIO()
    _write_npz(buf, net, metadata)
    return buf.getvalue()


# --------------------------------------------------------------------------- reading


def _label(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return repr(Path(source).name)
    name = getattr(source, "name", None)
    if isinstance(name, str) and name:
        return repr(Path(name).name)
    return "The model file"


def _sniff(head: bytes, label: str) -> None:
    """Explain, for files that are not zip archives at all, what they look like instead."""
    if head.startswith(_ZIP_MAGIC) or head.startswith(_EMPTY_ZIP_MAGIC):
        return
    if not head:
        raise ModelFileError(f"{label} is empty, not a scratchnet model.")
    if head[:1] == b"\x80":  # pickle protocol 2+ opcode
        raise ModelFileError(
            f"{label} looks like a Python pickle; scratchnet never loads pickles because they can "
            "run arbitrary code. Save models with scratchnet (.npz)."
        )
    if head.startswith(b"\x93NUMPY"):
        raise ModelFileError(f"{label} is a single NumPy array (.npy), not a scratchnet model (.npz).")
    if head.startswith(b"\x89HDF") or head.startswith(b"\x89PNG") or head.startswith(b"\xff\xd8"):
        raise ModelFileError(f"{label} is not a scratchnet model (.npz): it is a different file type.")
    try:
        head.decode("utf-8")
        text = True
    except UnicodeDecodeError:
        text = False
    if text:
        raise ModelFileError(f"{label} is a text file, not a scratchnet model (.npz).")
    raise ModelFileError(f"{label} is not a scratchnet model: it is not an .npz (zip) archive.")


def _open_source(source, label: str):
    """Return a seekable binary file object for a path, bytes or file-like (e.g. an upload)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > MAX_FILE_BYTES:
            raise ModelFileError(f"{label} is larger than {MAX_FILE_BYTES // 2**20} MB; refusing to load it.")
        return io.BytesIO(data)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise ModelFileError(f"Model file {label} does not exist.") from None
        except IsADirectoryError:
            raise ModelFileError(f"{label} is a folder, not a model file.") from None
        except OSError as exc:
            raise ModelFileError(f"Cannot open model file {label}: {exc.strerror or exc}.") from None
        try:
            size = os.fstat(f.fileno()).st_size
        except OSError:
            size = 0
        if size > MAX_FILE_BYTES:
            f.close()
            raise ModelFileError(f"{label} is larger than {MAX_FILE_BYTES // 2**20} MB; refusing to load it.")
        return f
    if hasattr(source, "read"):
        try:
            if hasattr(source, "seek"):
                source.seek(0)
            data = source.read(MAX_FILE_BYTES + 1)
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"Cannot read {label}: {exc}.") from None
        if isinstance(data, str):
            raise ModelFileError(f"{label} is a text file, not a scratchnet model (.npz).")
        if len(data) > MAX_FILE_BYTES:
            raise ModelFileError(f"{label} is larger than {MAX_FILE_BYTES // 2**20} MB; refusing to load it.")
        return io.BytesIO(data)
    raise TypeError(f"load_model expects a path, bytes or a binary file object, not {type(source).__name__}")


def _parse_metadata(arr: np.ndarray, label: str) -> dict:
    if arr.dtype == np.uint8 and arr.ndim == 1:
        raw = arr.tobytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelFileError(f"{label}: its metadata is not valid UTF-8 text.") from None
    elif arr.dtype.kind == "U" and arr.ndim in (0, 1) and arr.size == 1:
        text = str(arr.reshape(()).item())
    else:
        raise ModelFileError(
            f"{label}: metadata_json must be text (uint8 bytes or a string), not {arr.dtype} {arr.shape}."
        )
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise ModelFileError(f"{label}: its metadata is not valid JSON.") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{label}: its metadata must be a JSON object.")
    return meta


def _check_metadata(meta: dict, label: str) -> tuple[list[dict], list[int], str]:
    """Validate the fields load_model relies on; return (layer specs, input shape, activation)."""
    if meta.get("format") != FORMAT:
        raise ModelFileError(
            f"{label} is not a scratchnet model: metadata field 'format' is {meta.get('format')!r}, "
            f"expected {FORMAT!r}."
        )
    version = meta.get("version")
    if isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
        raise ModelFileError(
            f"{label} has model format version {version!r}; this scratchnet reads version "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}. Upgrade scratchnet or re-train the model."
        )
    activation = meta.get("activation")
    if activation not in ACTIVATIONS:
        raise ModelFileError(
            f"{label}: unknown activation {activation!r}; expected one of {', '.join(ACTIVATIONS)}."
        )
    if version == 1:
        specs, input_shape = _v1_layers(meta, label, activation)
    else:
        specs, input_shape = meta.get("layers"), meta.get("input_shape")
        if not isinstance(specs, list) or not specs or not all(isinstance(s, dict) for s in specs):
            raise ModelFileError(f"{label}: metadata field 'layers' must be a non-empty list of layer objects.")
        if len(specs) > MAX_LAYER_SPECS:
            raise ModelFileError(f"{label} has {len(specs)} layers; at most {MAX_LAYER_SPECS} are supported.")
        if input_shape not in INPUT_SHAPES:
            raise ModelFileError(
                f"{label}: 'input_shape' must be [784] or [28, 28, 1], got {input_shape!r}."
            )
    try:
        skeleton = Network.skeleton([layers.from_spec(s) for s in specs], input_shape, activation)
    except ScratchnetError as exc:
        raise ModelFileError(f"{label}: its layers do not fit together: {exc}") from None
    if skeleton.n_classes != N_CLASSES:
        raise ModelFileError(f"{label}: the last layer must have {N_CLASSES} units (one per digit), "
                             f"got {skeleton.n_classes}.")
    n_params = sum(math.prod(s) for l in skeleton.param_layers for s in l.param_shapes())
    if n_params > MAX_PARAMS:
        raise ModelFileError(
            f"{label} has {n_params:,} parameters; at most {MAX_PARAMS:,} are supported."
        )
    if skeleton.bytes_per_row() > MAX_BYTES_PER_ROW or skeleton.macs_per_row() > MAX_MACS_PER_ROW:
        raise ModelFileError(f"{label} describes layers far too large to run on one digit; refusing it.")
    return specs, input_shape, activation


def _v1_layers(meta: dict, label: str, activation: str) -> tuple[list[dict], list[int]]:
    """Format 1 named a multilayer perceptron by its sizes: [784, 256, 128, 10]."""
    sizes = meta.get("sizes")
    if (
        not isinstance(sizes, list)
        or len(sizes) < 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)
    ):
        raise ModelFileError(
            f"{label}: metadata field 'sizes' must be a list of at least two positive whole numbers, "
            f"got {sizes!r}."
        )
    if len(sizes) > MAX_LAYERS:
        raise ModelFileError(f"{label} has {len(sizes) - 1} layers; at most {MAX_LAYERS - 1} are supported.")
    if sizes[0] != N_INPUTS or sizes[-1] != N_CLASSES:
        raise ModelFileError(
            f"{label}: 'sizes' must start with {N_INPUTS} inputs and end with {N_CLASSES} classes, "
            f"got {sizes}."
        )
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    if n_params > MAX_PARAMS:
        raise ModelFileError(
            f"{label} has {n_params:,} parameters; at most {MAX_PARAMS:,} are supported."
        )
    return [l.spec() for l in mlp_layers(sizes, activation)], [N_INPUTS]


def _read_member(npz, zf: zipfile.ZipFile, key: str, max_bytes: int, label: str) -> np.ndarray:
    """Read one array, refusing members whose declared size could not be what we expect."""
    info = zf.getinfo(key + ".npy")
    if info.file_size > max_bytes:
        raise ModelFileError(f"{label}: array {key} is {info.file_size:,} bytes, far more than its shape needs.")
    try:
        arr = npz[key]
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise ModelFileError(
                f"{label}: array {key} holds Python objects (needs pickle), which scratchnet refuses to load."
            ) from None
        raise ModelFileError(f"{label}: array {key} is damaged ({exc}).") from None
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError, KeyError, RuntimeError, NotImplementedError) as exc:
        raise ModelFileError(f"{label} is damaged or truncated (array {key}: {exc}).") from None
    if not isinstance(arr, np.ndarray):  # NpzFile hands back raw bytes for non-.npy members
        raise ModelFileError(f"{label}: member {key}.npy is not a NumPy array.")
    return arr


def _read_model(source, *, label: str | None = None) -> tuple[list[dict], list[int], str, list[np.ndarray], dict]:
    """Fully validate a model file; return (layer specs, input shape, activation, arrays, metadata)."""
    label = label or _label(source)
    f = _open_source(source, label)
    try:
        head = f.read(64)
        f.seek(0)
        _sniff(head, label)
        try:
            npz = np.load(f, allow_pickle=False)
        except (zipfile.BadZipFile, EOFError, zlib.error, OSError, RuntimeError, NotImplementedError) as exc:
            raise ModelFileError(f"{label} is damaged or truncated: {exc}.") from None
        except ValueError as exc:
            raise ModelFileError(f"{label} is not a scratchnet model ({exc}).") from None
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ModelFileError(f"{label} is not a scratchnet model (.npz archive).")
        with npz:
            zf = npz.zip
            names = set(npz.files)
            members = set(zf.namelist())
            if "metadata_json" not in names:
                raise ModelFileError(
                    f"{label} is not a scratchnet model: it has no metadata_json "
                    f"(arrays found: {', '.join(sorted(names)) or 'none'})."
                )
            if len(members) != len(names) or any(not m.endswith(".npy") for m in members):
                raise ModelFileError(f"{label} contains files that are not NumPy arrays; it is not a scratchnet model.")
            meta = _parse_metadata(_read_member(npz, zf, "metadata_json", MAX_METADATA_BYTES, label), label)
            specs, input_shape, activation = _check_metadata(meta, label)
            skeleton = Network.skeleton([layers.from_spec(s) for s in specs], input_shape, activation)
            shapes = []
            for i, layer in enumerate(skeleton.param_layers):
                w_shape, b_shape = layer.param_shapes()
                shapes += [(f"W{i}", w_shape), (f"b{i}", b_shape)]
            expected = {"metadata_json"} | {key for key, _ in shapes}
            if names != expected:
                missing = sorted(expected - names)
                extra = sorted(names - expected)
                parts = []
                if missing:
                    parts.append("missing " + ", ".join(missing))
                if extra:
                    parts.append("unexpected " + ", ".join(extra))
                raise ModelFileError(f"{label} does not match its layers: {'; '.join(parts)}.")
            arrays = []
            for key, shape in shapes:
                max_bytes = 8 * math.prod(shape) + _NPY_HEADER_SLACK
                arr = _read_member(npz, zf, key, max_bytes, label)
                if arr.dtype.kind != "f":
                    raise ModelFileError(f"{label}: array {key} has dtype {arr.dtype}; weights must be floats.")
                if arr.shape != shape:
                    raise ModelFileError(
                        f"{label}: array {key} has shape {arr.shape}, but its layer needs {shape}."
                    )
                with np.errstate(over="ignore"):  # float64 beyond float32 range -> inf, refused below
                    arr = np.ascontiguousarray(arr, dtype=np.float32)
                if not np.isfinite(arr).all():
                    raise ModelFileError(f"{label}: array {key} contains NaN or infinite values.")
                arrays.append(arr)
    finally:
        f.close()
    return specs, input_shape, activation, arrays, meta


def load_model(source) -> tuple[Network, dict]:
    """Load and validate a model from a path, bytes or binary file object (e.g. an upload).

    Anything that is not a complete, consistent scratchnet model raises ModelFileError with a
    one-sentence reason. Format 1 files (multilayer perceptrons by their sizes) load too.
    """
    specs, input_shape, activation, arrays, meta = _read_model(source)
    try:
        net = Network.from_layers(specs, input_shape, arrays, activation)
    except ModelFileError:
        raise
    except (ScratchnetError, ValueError) as exc:
        raise ModelFileError(f"{_label(source)} cannot be used as a network: {exc}") from None
    return net, meta


# --------------------------------------------------------------------------- the store


@dataclass
class ModelInfo:
    """One model in a store, as listed (metadata already validated)."""

    name: str
    path: Path
    created: datetime
    metadata: dict = field(default_factory=dict)
    size: int = 0  # bytes on disk


def validate_name(name) -> str:
    """Return the cleaned model name or raise ModelFileError; names become file names."""
    if not isinstance(name, str):
        raise ModelFileError(f"A model name must be text, not {type(name).__name__}.")
    name = name.strip()
    if not NAME_RE.fullmatch(name) or ".." in name:
        raise ModelFileError(
            f"{name!r} is not a valid model name: use 1-64 letters, digits, spaces, '_', '-' or '.', "
            "starting with a letter or digit (no '/', '\\' or '..')."
        )
    return name


def _parse_created(value, fallback: float) -> datetime:
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            dt = None
        if dt is not None:
            return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(fallback, tz=timezone.utc)


# Validated metadata (or the reason a file was refused) per file version, shared by every
# ModelStore in the process: Streamlit builds a new store on each rerun.
_CACHE: dict[tuple, tuple[dict | None, str | None]] = {}
_CACHE_MAX = 2048
_CACHE_LOCK = threading.Lock()


def _auto_name_parts(meta: dict) -> tuple[str, str]:
    prefix = meta.get("preset")
    config = meta.get("config")
    if not isinstance(prefix, str) and isinstance(config, dict):
        prefix = config.get("preset")
    if not isinstance(prefix, str) or not NAME_RE.fullmatch(prefix[:20] or "-"):
        prefix = "model"
    prefix = prefix[:20]
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    acc = None
    for key in ("test_accuracy", "val_accuracy"):
        v = metrics.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            acc = float(v)
            break
    suffix = ""
    if acc is not None:
        pct = acc * 100 if acc <= 1 else acc
        suffix = f"-{pct:.1f}pct"
    return prefix, suffix


class ModelStore:
    """A folder of named models (``<name>.npz``) plus which one is active (``active.json``).

    Safe to share between processes: files only ever appear complete (temp file + rename), names
    are claimed with ``os.link`` so nobody overwrites a model they did not mean to, and listing
    tolerates files vanishing or being replaced underneath it.
    """

    def __init__(self, directory=None):
        directory = Path(directory).expanduser() if directory is not None else models_dir()
        self.directory = directory.resolve()
        self.problems: list[str] = []

    def __repr__(self) -> str:
        return f"ModelStore({str(self.directory)!r})"

    # ---- paths

    def _ensure_dir(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelFileError(f"Cannot create the models folder {str(self.directory)!r}: {exc.strerror or exc}.") from None

    def _inside(self, path: Path) -> bool:
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):  # symlink loops
            return False
        return resolved.parent == self.directory

    def path_for(self, name: str) -> Path:
        """The file for model ``name``, guaranteed to lie directly inside the store folder."""
        name = validate_name(name)
        path = self.directory / (name + SUFFIX)
        if not self._inside(path):
            raise ModelFileError(f"Model {name!r} points outside the models folder; refusing to use it.")
        return path

    def _existing(self, name: str) -> Path:
        path = self.path_for(name)
        if not path.is_file():
            raise ModelFileError(f"There is no model named {validate_name(name)!r}.")
        return path

    # ---- listing

    def _info(self, entry: os.DirEntry, problems: list[str]) -> ModelInfo | None:
        """Validated info for one directory entry, None if it vanished, problem if refused."""
        name = entry.name[: -len(SUFFIX)]
        path = Path(entry.path)
        try:
            validate_name(name)
        except ModelFileError:
            problems.append(f"Skipped {entry.name!r}: not a valid model name.")
            return None
        if not self._inside(path):
            problems.append(f"Skipped {entry.name!r}: it points outside the models folder.")
            return None
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return None  # deleted or renamed by someone else since the directory scan
        except OSError as exc:
            problems.append(f"Skipped {entry.name!r}: cannot open it ({exc.strerror or exc}).")
            return None
        with f:
            st = os.fstat(f.fileno())
            key = (str(path), st.st_ino, st.st_mtime_ns, st.st_size)
            with _CACHE_LOCK:
                cached = _CACHE.get(key)
            if cached is None:
                try:
                    meta = _read_model(f, label=repr(entry.name))[-1]
                    cached = (meta, None)
                except ModelFileError as exc:
                    cached = (None, str(exc))
                with _CACHE_LOCK:
                    if len(_CACHE) >= _CACHE_MAX:
                        _CACHE.clear()
                    _CACHE[key] = cached
        meta, error = cached
        if error is not None:
            problems.append(f"Skipped {entry.name!r}: {error}")
            return None
        meta = copy.deepcopy(meta)
        return ModelInfo(
            name=name,
            path=path,
            created=_parse_created(meta.get("created"), st.st_mtime),
            metadata=meta,
            size=st.st_size,
        )

    def list(self) -> list[ModelInfo]:
        """Valid models, newest first. Refused files are skipped and described in ``problems``.

        ``problems`` is replaced as a whole at the end, so a store shared between threads (the
        app caches one per folder) never shows a half-built list.
        """
        problems: list[str] = []
        infos = []
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            entries = []
        except OSError as exc:
            problems.append(f"Cannot read the models folder: {exc.strerror or exc}.")
            entries = []
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(SUFFIX):
                continue  # temp files of writers in progress, active.json, anything else
            info = self._info(entry, problems)
            if info is not None:
                infos.append(info)
        infos.sort(key=lambda i: (i.created, i.name), reverse=True)
        self.problems = problems
        return infos

    def names(self) -> list[str]:
        return [i.name for i in self.list()]

    def info(self, name: str) -> ModelInfo:
        """ModelInfo for one model (validated), ModelFileError if missing or refused."""
        path = self._existing(name)
        net, meta = self.load(name)
        st = path.stat()
        return ModelInfo(validate_name(name), path, _parse_created(meta.get("created"), st.st_mtime), meta, st.st_size)

    # ---- reading / writing models

    def load(self, name: str) -> tuple[Network, dict]:
        return load_model(self._existing(name))

    def _auto_name(self, meta: dict) -> str:
        prefix, suffix = _auto_name_parts(meta)
        created = _parse_created(meta.get("created"), datetime.now().timestamp())
        stamp = created.astimezone().strftime("%Y-%m-%d-%H%M")
        return f"{prefix}-{stamp}{suffix}"

    def save(self, net: Network, metadata: dict | None = None, name: str | None = None, *, overwrite: bool = False) -> ModelInfo:
        """Save ``net`` under ``name`` (auto-generated if None).

        If the name is taken, ``-2``, ``-3``... is appended rather than replacing another model,
        unless ``overwrite`` is set. The returned ModelInfo carries the name actually used.
        """
        self._ensure_dir()
        self._sweep_temp_files()
        meta = complete_metadata(net, metadata)
        base = validate_name(name) if name is not None else self._auto_name(meta)
        self.path_for(base)  # reject before writing anything
        tmp, meta = _write_temp(self.directory, net, meta)
        try:
            if overwrite:
                path = self.path_for(base)
                os.replace(tmp, path)
                final = base
            else:
                final, path = self._claim(tmp, base)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(self.directory)
        st = path.stat()
        return ModelInfo(final, path, _parse_created(meta.get("created"), st.st_mtime), meta, st.st_size)

    def _sweep_temp_files(self) -> None:
        """Remove temp files left by writers that were killed mid-save (only long-abandoned ones)."""
        now = datetime.now().timestamp()
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return
        for entry in entries:
            if not entry.name.startswith(TEMP_PREFIX):
                continue
            try:
                if entry.is_file(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS:
                    os.unlink(entry.path)
            except OSError:
                pass  # someone else swept or finished it

    def _candidates(self, base: str):
        yield base
        for k in range(2, 10_000):
            tail = f"-{k}"
            yield base[: 64 - len(tail)] + tail

    def _claim(self, tmp: Path, base: str) -> tuple[str, Path]:
        """Move ``tmp`` to the first free name; os.link fails instead of overwriting."""
        for candidate in self._candidates(base):
            path = self.path_for(candidate)
            try:
                os.link(tmp, path)
                return candidate, path
            except FileExistsError:
                continue
            except OSError:
                # Filesystem without hard links: best effort check-then-rename.
                if path.exists() or path.is_symlink():
                    continue
                os.replace(tmp, path)
                return candidate, path
        raise ModelFileError(f"Too many models named like {base!r}; choose another name.")

    def rename(self, name: str, new_name: str) -> ModelInfo:
        """Rename a model; refuses to replace an existing one. Keeps it active if it was.

        Done as link-then-unlink so a concurrent save can never be overwritten; a listing at that
        instant may briefly show the model under both names.
        """
        name, new_name = validate_name(name), validate_name(new_name)
        old = self._existing(name)
        new = self.path_for(new_name)
        if name != new_name:
            try:
                os.link(old, new)
            except FileExistsError:
                raise ModelFileError(f"A model named {new_name!r} already exists.") from None
            except FileNotFoundError:
                raise ModelFileError(f"There is no model named {name!r}.") from None
            except OSError:
                if new.exists():
                    raise ModelFileError(f"A model named {new_name!r} already exists.") from None
                os.rename(old, new)
            else:
                old.unlink(missing_ok=True)
            _fsync_dir(self.directory)
            if self._chosen_name() == name:
                self.set_active(new_name)
        st = new.stat()
        net, meta = load_model(new)
        return ModelInfo(new_name, new, _parse_created(meta.get("created"), st.st_mtime), meta, st.st_size)

    def delete(self, name: str) -> None:
        path = self._existing(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise ModelFileError(f"There is no model named {validate_name(name)!r}.") from None
        if self._chosen_name() == validate_name(name):
            (self.directory / ACTIVE_FILE).unlink(missing_ok=True)

    # ---- the active model

    def _chosen_name(self) -> str | None:
        """The name recorded in active.json, whether or not that model still exists."""
        try:
            data = json.loads((self.directory / ACTIVE_FILE).read_text(encoding="utf-8"))
            return validate_name(data["name"])
        except (OSError, ValueError, KeyError, TypeError, ScratchnetError):
            return None

    def active_name(self) -> str | None:
        """The model chosen as active, if that choice is readable and the model file exists."""
        name = self._chosen_name()
        try:
            return name if name is not None and self.path_for(name).is_file() else None
        except ScratchnetError:
            return None

    def set_active(self, name: str | None) -> None:
        """Choose the active model (None clears the choice); written atomically."""
        target = self.directory / ACTIVE_FILE
        if name is None:
            target.unlink(missing_ok=True)
            return
        name = validate_name(name)
        self._existing(name)
        self._ensure_dir()
        with atomic_write(target, "w", prefix=TEMP_PREFIX, suffix=".json") as f:
            json.dump({"name": name}, f)

    def resolve_active(self) -> ModelInfo | None:
        """The active model if it is valid, else the newest valid model, else None."""
        name = self.active_name()
        infos = self.list()
        if name is not None:
            for info in infos:
                if info.name == name:
                    return info
        return infos[0] if infos else None

    def load_active(self) -> tuple[Network, dict] | None:
        """Load the active model, falling back to the newest loadable one; None if there is none."""
        name = self.active_name()
        infos = self.list()
        candidates = [i for i in infos if i.name == name] + [i for i in infos if i.name != name]
        problems = list(self.problems)
        try:
            for info in candidates:
                try:
                    return load_model(info.path)
                except ModelFileError as exc:  # went bad (or vanished) since the listing
                    problems.append(f"Skipped {info.name!r}: {exc}")
            return None
        finally:
            self.problems = problems
