"""Model files and the model store: round trips, refusing bad files, atomicity, concurrency."""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from scratchnet import store
from scratchnet.errors import ModelFileError, ScratchnetError
from scratchnet.network import Network
from scratchnet.store import ModelInfo, ModelStore, load_model, model_bytes, models_dir, save_model

ROOT = Path(__file__).resolve().parents[1]
SIZES = (784, 16, 10)


def _net(seed=0, sizes=SIZES, activation="relu"):
    return Network(sizes, activation=activation, seed=seed)


def _X(n=20, seed=0):
    return np.random.default_rng(seed).random((n, 784), dtype=np.float32)


def _meta(**extra):
    meta = {"format": "scratchnet-model", "version": 1, "sizes": list(SIZES), "activation": "relu"}
    meta.update(extra)
    return meta


def _npz_bytes(arrays: dict, meta=None) -> bytes:
    """An .npz built by hand, to fake files scratchnet itself would never write."""
    arrays = dict(arrays)
    if meta is not None:
        if isinstance(meta, np.ndarray):
            arrays["metadata_json"] = meta
        else:
            text = meta if isinstance(meta, str) else json.dumps(meta)
            arrays["metadata_json"] = np.frombuffer(text.encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _good_arrays(seed=0):
    net = _net(seed)
    return {"W0": net.weights[0], "b0": net.biases[0], "W1": net.weights[1], "b1": net.biases[1]}


def _same_net(a: Network, b: Network) -> bool:
    return a.sizes == b.sizes and all(np.array_equal(x, y) for x, y in zip(a.params(), b.params()))


def _subprocess_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = "1"
    return env


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize(
    "sizes,activation", [((784, 16, 10), "relu"), ((784, 10), "sigmoid"), ((784, 32, 8, 10), "tanh")]
)
def test_save_load_round_trip_gives_identical_predictions(tmp_path, sizes, activation):
    net = _net(3, sizes, activation)
    path = save_model(tmp_path / "m.npz", net, {"metrics": {"val_accuracy": 0.9}})
    assert path == tmp_path / "m.npz"
    loaded, meta = load_model(path)
    assert loaded.sizes == tuple(sizes) and loaded.activation == activation
    assert all(p.dtype == np.float32 for p in loaded.params())
    assert _same_net(net, loaded)
    np.testing.assert_array_equal(loaded.predict_proba(_X()), net.predict_proba(_X()))
    assert meta["format"] == "scratchnet-model" and meta["version"] == 2
    assert meta["sizes"] == list(sizes) and meta["activation"] == activation
    assert meta["layers"] == net.layer_specs() and meta["input_shape"] == [784]
    assert meta["metrics"] == {"val_accuracy": 0.9}
    assert meta["preprocessing"] == "mnist-28x28-float01"
    datetime.fromisoformat(meta["created"])


def test_file_holds_only_plain_arrays(tmp_path):
    path = save_model(tmp_path / "m.npz", _net(), {})
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["W0.npy", "W1.npy", "b0.npy", "b1.npy", "metadata_json.npy"]
    with np.load(path, allow_pickle=False) as npz:  # would raise if anything needed pickle
        assert npz["metadata_json"].dtype == np.uint8
        assert all(npz[k].dtype == np.float32 for k in ("W0", "b0", "W1", "b1"))


@pytest.mark.parametrize("kind", ["bytes", "bytesio", "file", "upload-like"])
def test_load_model_accepts_bytes_and_file_objects(tmp_path, kind):
    net = _net(5)
    data = model_bytes(net, {"note": "x"})
    if kind == "bytes":
        source = data
    elif kind == "bytesio":
        source = io.BytesIO(data)
    elif kind == "file":
        (tmp_path / "m.npz").write_bytes(data)
        source = open(tmp_path / "m.npz", "rb")
    else:  # like Streamlit's UploadedFile: a BytesIO with a name, already read once
        source = io.BytesIO(data)
        source.name = "upload.npz"
        source.read()
    loaded, meta = load_model(source)
    assert _same_net(net, loaded) and meta["note"] == "x"
    if kind == "file":
        source.close()


def test_save_model_to_file_object_and_model_bytes_agree():
    net = _net(2)
    buf = io.BytesIO()
    assert save_model(buf, net, {"created": "2026-01-01T00:00:00+00:00"}) is None
    assert buf.getvalue() == model_bytes(net, {"created": "2026-01-01T00:00:00+00:00"})
    assert _same_net(load_model(buf.getvalue())[0], net)


def test_metadata_is_made_truthful_and_json_safe():
    net = _net(0)
    meta = store.complete_metadata(
        net,
        {
            "sizes": [1, 2],  # wrong: must come from the network
            "activation": "tanh",
            "format": "other",
            "metrics": {"val_accuracy": np.float32(0.5), "steps": np.int64(7)},
            "history": [{"loss": float("nan")}, {"loss": float("inf")}, {"loss": 1.5}],
        },
    )
    assert meta["sizes"] == [784, 16, 10] and meta["activation"] == "relu"
    assert meta["format"] == "scratchnet-model"
    assert meta["metrics"] == {"val_accuracy": 0.5, "steps": 7}
    assert [h["loss"] for h in meta["history"]] == [None, None, 1.5]
    json.dumps(meta, allow_nan=False)
    # and it survives a file round trip
    assert load_model(model_bytes(net, meta))[1]["history"][2]["loss"] == 1.5


def test_metadata_as_numpy_string_is_accepted():
    data = _npz_bytes(_good_arrays(1), np.array(json.dumps(_meta())))
    net, meta = load_model(data)
    assert _same_net(net, _net(1)) and meta["sizes"] == [784, 16, 10]


def test_saving_non_finite_weights_is_refused(tmp_path):
    net = _net()
    net.weights[1][0, 0] = np.nan
    with pytest.raises(ModelFileError, match="NaN"):
        save_model(tmp_path / "m.npz", net, {})
    assert list(tmp_path.iterdir()) == []  # temp file cleaned up


def _pickle_bytes():
    return pickle.dumps({"W0": np.zeros(3)})


def _truncated():
    return model_bytes(_net(), {})[:-200]


def _crc_damaged():
    data = bytearray(model_bytes(_net(), {}))
    data[2000] ^= 0xFF  # inside W0's data: the zip's CRC check must catch it
    return bytes(data)


def _with_arrays(**changes):
    arrays = _good_arrays()
    for k, v in changes.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    return _npz_bytes(arrays, _meta())


def _nan_weights():
    W = _good_arrays()["W1"].copy()
    W[3, 4] = np.nan
    return _with_arrays(W1=W)


def _zip_with(members: dict):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _npy_bytes():
    buf = io.BytesIO()
    np.save(buf, np.zeros((784, 10), np.float32))
    return buf.getvalue()


BAD_FILES = {
    "pickle": (_pickle_bytes, "pickle"),
    "text": (lambda: b"label,pixel0\n5,0\n", "text file"),
    "empty": (lambda: b"", "empty"),
    "png": (lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(200)), "not a scratchnet model"),
    "binary junk": (lambda: bytes([0xC3, 0x28, 0xFF, 0xFE] * 50), "not an .npz"),
    "npy": (_npy_bytes, ".npy"),
    "truncated": (_truncated, "damaged or truncated"),
    "crc damaged": (_crc_damaged, "damaged"),
    "foreign npz": (lambda: _npz_bytes({"x": np.zeros(3)}), "no metadata_json"),
    "zip with text member": (lambda: _zip_with({"metadata_json.npy": b"x", "readme.txt": b"hi"}), "not NumPy arrays"),
    "member not npy": (lambda: _zip_with({"metadata_json.npy": b"{}"}), "not a NumPy array"),
    "missing array": (lambda: _with_arrays(W1=None), "missing W1"),
    "extra array": (lambda: _with_arrays(W2=np.zeros((10, 10), np.float32)), "unexpected W2"),
    "wrong shape": (lambda: _with_arrays(W0=np.zeros((784, 15), np.float32)), "shape (784, 15)"),
    "bias shape": (lambda: _with_arrays(b1=np.zeros((1, 10), np.float32)), "b1 has shape"),
    "int weights": (lambda: _with_arrays(W1=np.zeros((16, 10), np.int32)), "dtype int32"),
    "nan weights": (_nan_weights, "NaN"),
    "inf bias": (lambda: _with_arrays(b0=np.full(16, np.inf, np.float32)), "NaN or infinite"),
    "float64 overflow": (lambda: _with_arrays(b0=np.full(16, 1e300)), "NaN or infinite"),
    "object array": (
        lambda: _npz_bytes({**_good_arrays(), "metadata_json": np.array([{"a": 1}], dtype=object)}),
        "pickle",
    ),
    "metadata not json": (lambda: _npz_bytes(_good_arrays(), "{not json"), "not valid JSON"),
    "metadata not object": (lambda: _npz_bytes(_good_arrays(), "[1, 2]"), "JSON object"),
    "metadata ints": (lambda: _npz_bytes(_good_arrays(), np.arange(5)), "metadata_json must be text"),
    "metadata bad utf8": (lambda: _npz_bytes(_good_arrays(), np.frombuffer(b"\xff\xfe", np.uint8)), "UTF-8"),
    "wrong format": (lambda: _npz_bytes(_good_arrays(), _meta(format="keras")), "'format'"),
    "no format": (lambda: _npz_bytes(_good_arrays(), {"sizes": [784, 16, 10]}), "'format'"),
    "future version": (lambda: _npz_bytes(_good_arrays(), _meta(version=99)), "version 99"),
    "bool version": (lambda: _npz_bytes(_good_arrays(), _meta(version=True)), "version True"),
    "sizes not list": (lambda: _npz_bytes(_good_arrays(), _meta(sizes="784,16,10")), "'sizes'"),
    "sizes negative": (lambda: _npz_bytes(_good_arrays(), _meta(sizes=[784, -16, 10])), "'sizes'"),
    "sizes float": (lambda: _npz_bytes(_good_arrays(), _meta(sizes=[784, 16.0, 10])), "'sizes'"),
    "sizes bool": (lambda: _npz_bytes(_good_arrays(), _meta(sizes=[784, True, 10])), "'sizes'"),
    "sizes one": (lambda: _npz_bytes(_good_arrays(), _meta(sizes=[784])), "'sizes'"),
    "wrong inputs": (lambda: _npz_bytes(_good_arrays(), _meta(sizes=[783, 16, 10])), "784 inputs"),
    "wrong classes": (lambda: _npz_bytes(_good_arrays(), _meta(sizes=[784, 16, 9])), "10 classes"),
    "huge": (lambda: _npz_bytes(_good_arrays(), _meta(sizes=[784, 100_000, 10])), "parameters"),
    "too deep": (lambda: _npz_bytes(_good_arrays(), _meta(sizes=[784] + [8] * 20 + [10])), "layers"),
    "bad activation": (lambda: _npz_bytes(_good_arrays(), _meta(activation="swish")), "activation 'swish'"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_files_raise_model_file_error(tmp_path, kind):
    make, fragment = BAD_FILES[kind]
    data = make()
    with pytest.raises(ModelFileError, match=re.escape(fragment)):
        load_model(data)
    # the same from a path: and the message names the file
    path = tmp_path / "bad-model.npz"
    path.write_bytes(data)
    with pytest.raises(ModelFileError, match="bad-model.npz") as err:
        load_model(path)
    assert fragment in str(err.value)
    assert isinstance(err.value, ScratchnetError)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nope.npz")
    with pytest.raises(ModelFileError, match="folder"):
        load_model(tmp_path)


def test_oversized_file_is_refused_before_reading(tmp_path, monkeypatch):
    data = model_bytes(_net(), {})
    monkeypatch.setattr(store, "MAX_FILE_BYTES", len(data) - 1)
    with pytest.raises(ModelFileError, match="larger than"):
        load_model(data)
    with pytest.raises(ModelFileError, match="larger than"):
        load_model(io.BytesIO(data))
    (tmp_path / "m.npz").write_bytes(data)
    with pytest.raises(ModelFileError, match="larger than"):
        load_model(tmp_path / "m.npz")


def test_member_larger_than_its_shape_needs_is_refused():
    arrays = _good_arrays()
    # a bias "vector" whose member is huge: refused from the zip header, before decompressing it
    buf = io.BytesIO()
    np.savez_compressed(buf, **{**arrays, "b0": np.zeros(200_000, np.float32)}, metadata_json=np.frombuffer(json.dumps(_meta()).encode(), np.uint8))
    with pytest.raises(ModelFileError, match="far more than its shape needs"):
        load_model(buf.getvalue())


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "m.npz"
    save_model(target, _net(1), {"tag": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(ModelFileError, match="Cannot save the model .*disk full"):
        save_model(target, _net(2), {"tag": 2})
    with pytest.raises(ModelFileError, match="disk full"):
        ModelStore(tmp_path).save(_net(2), {"tag": 2}, name="m", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    assert load_model(target)[1]["tag"] == 1


def test_saving_onto_a_folder_is_a_clear_error_and_leaves_no_temp(tmp_path):
    (tmp_path / "taken.npz").mkdir()
    with pytest.raises(ModelFileError, match="Cannot save the model to .*taken.npz"):
        save_model(tmp_path / "taken.npz", _net(), {})
    assert [p.name for p in tmp_path.iterdir()] == ["taken.npz"]


def test_save_into_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        save_model(tmp_path / "no" / "m.npz", _net(), {})


_WRITER = textwrap.dedent(
    """
    import sys
    from scratchnet.network import Network
    from scratchnet.store import save_model
    path, width = sys.argv[1], int(sys.argv[2])
    nets = {tag: Network((784, width, 10), seed=tag) for tag in (1, 2)}
    i = 0
    while True:
        tag = 1 + i % 2
        save_model(path, nets[tag], {"tag": tag})
        if i == 0:
            print("ready", flush=True)
        i += 1
    """
)


def test_killed_writer_never_leaves_a_broken_model(tmp_path):
    """SIGKILL a process that keeps overwriting a big model: the file is always old or new."""
    width = 512  # ~1.6 MB per save, so kills often land mid-write
    target = tmp_path / "target.npz"
    nets = {tag: Network((784, width, 10), seed=tag) for tag in (1, 2)}
    save_model(target, nets[1], {"tag": 1})
    rng = np.random.default_rng(1234)
    seen_tags = set()
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(target), str(width)],
            stdout=subprocess.PIPE, env=_subprocess_env(), cwd=tmp_path,
        )
        try:
            assert proc.stdout.readline().strip() == b"ready"
            try:
                proc.wait(timeout=float(rng.uniform(0.0, 0.3)))  # let it run a random while
            except subprocess.TimeoutExpired:
                pass
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        net, meta = load_model(target)
        assert meta["tag"] in (1, 2)
        assert _same_net(net, nets[meta["tag"]])
        seen_tags.add(meta["tag"])
        s = ModelStore(tmp_path)
        assert [i.name for i in s.list()] == ["target"]  # leftover temp files are invisible
        assert s.problems == []


# --------------------------------------------------------------------------- models_dir


def test_models_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SCRATCHNET_MODELS_DIR", str(tmp_path / "mine"))
    assert models_dir() == tmp_path / "mine"
    assert ModelStore().directory == (tmp_path / "mine").resolve()


def test_models_dir_defaults_under_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("SCRATCHNET_MODELS_DIR", raising=False)
    monkeypatch.setenv("SCRATCHNET_DATA_DIR", str(tmp_path / "data"))
    assert models_dir() == tmp_path / "data" / "models"


def test_models_dir_avoids_a_read_only_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("SCRATCHNET_MODELS_DIR", raising=False)
    monkeypatch.setenv("SCRATCHNET_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr("scratchnet.store.os.access", lambda path, mode: False)
    assert models_dir() == tmp_path / "home" / ".cache" / "scratchnet" / "models"
    (tmp_path / "models").mkdir()  # an existing models folder is used as it is
    assert models_dir() == tmp_path / "models"


# --------------------------------------------------------------------------- the store


def _created(minute):
    return datetime(2026, 11, 26, 20, minute, tzinfo=timezone.utc).isoformat()


def test_store_save_list_load(tmp_path):
    s = ModelStore(tmp_path / "models")  # created on first save
    assert s.list() == [] and s.problems == []
    a = s.save(_net(1), {"created": _created(1), "tag": "a"}, name="alpha")
    b = s.save(_net(2), {"created": _created(3), "tag": "b"}, name="beta")
    c = s.save(_net(3), {"created": _created(2), "tag": "c"}, name="gamma")
    assert isinstance(a, ModelInfo) and a.name == "alpha" and a.path == s.directory / "alpha.npz"
    infos = s.list()
    assert [i.name for i in infos] == ["beta", "gamma", "alpha"]  # newest first
    assert [i.metadata["tag"] for i in infos] == ["b", "c", "a"]
    assert infos[0].created == datetime(2026, 11, 26, 20, 3, tzinfo=timezone.utc)
    assert infos[0].size == b.path.stat().st_size > 0
    assert s.problems == []
    net, meta = s.load("gamma")
    assert _same_net(net, _net(3)) and meta["tag"] == "c"
    assert c.metadata["tag"] == "c"
    with pytest.raises(ModelFileError, match="no model named 'delta'"):
        s.load("delta")


def test_auto_names_and_no_silent_overwrite(tmp_path):
    s = ModelStore(tmp_path)
    meta = {"preset": "fast", "metrics": {"val_accuracy": 0.9812}, "created": "2026-11-26T20:15:00+00:00"}
    first = s.save(_net(1), meta)
    assert re.fullmatch(r"fast-\d{4}-\d\d-\d\d-\d{4}-98\.1pct", first.name), first.name
    second = s.save(_net(2), meta)
    assert second.name == first.name + "-2"
    third = s.save(_net(3), {"metrics": {}}, name="mine")
    fourth = s.save(_net(4), {}, name="mine")
    assert (third.name, fourth.name) == ("mine", "mine-2")
    assert _same_net(s.load(first.name)[0], _net(1))  # nothing was replaced
    assert _same_net(s.load("mine")[0], _net(3))
    replaced = s.save(_net(5), {}, name="mine", overwrite=True)
    assert replaced.name == "mine" and _same_net(s.load("mine")[0], _net(5))
    plain = s.save(_net(6), {"created": "2026-11-26T20:15:00+00:00"})
    assert plain.name.startswith("model-2026-") and "pct" not in plain.name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_stale_temp_files_are_swept_on_save(tmp_path):
    s = ModelStore(tmp_path)
    stale, fresh = tmp_path / ".tmp-old.npz", tmp_path / ".tmp-busy.npz"
    stale.write_bytes(b"orphan of a killed writer")
    fresh.write_bytes(b"another writer, still going")
    old = datetime.now().timestamp() - 2 * store.STALE_TEMP_SECONDS
    os.utime(stale, (old, old))
    s.save(_net(), {}, name="m")
    assert not stale.exists() and fresh.exists()
    assert s.names() == ["m"] and s.problems == []


def test_info_and_names(tmp_path):
    s = ModelStore(tmp_path)
    s.save(_net(1), {"created": _created(5), "tag": 1}, name="m")
    info = s.info("m")
    assert (info.name, info.path, info.metadata["tag"]) == ("m", s.directory / "m.npz", 1)
    assert info.created == datetime(2026, 11, 26, 20, 5, tzinfo=timezone.utc)
    assert s.names() == ["m"]
    with pytest.raises(ModelFileError, match="no model named"):
        s.info("x")


def test_rename_and_delete(tmp_path):
    s = ModelStore(tmp_path)
    s.save(_net(1), {}, name="one")
    s.save(_net(2), {}, name="two")
    info = s.rename("one", "first model")
    assert info.name == "first model" and info.path.name == "first model.npz"
    assert sorted(s.names()) == ["first model", "two"]
    assert _same_net(s.load("first model")[0], _net(1))
    with pytest.raises(ModelFileError, match="already exists"):
        s.rename("first model", "two")
    assert _same_net(s.load("two")[0], _net(2))
    with pytest.raises(ModelFileError, match="no model named 'one'"):
        s.rename("one", "uno")
    with pytest.raises(ModelFileError, match="not a valid model name"):
        s.rename("two", "../two")
    s.delete("two")
    assert s.names() == ["first model"]
    with pytest.raises(ModelFileError, match="no model named 'two'"):
        s.delete("two")


def test_corrupt_and_foreign_files_are_reported_not_fatal(tmp_path):
    s = ModelStore(tmp_path)
    s.save(_net(1), {}, name="good")
    (tmp_path / "broken.npz").write_bytes(model_bytes(_net(2), {})[:300])
    (tmp_path / "pickled.npz").write_bytes(pickle.dumps([1, 2]))
    (tmp_path / "bad name!.npz").write_bytes(model_bytes(_net(2), {}))
    (tmp_path / ".tmp-abc123.npz").write_bytes(b"half written")  # another writer's temp file
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "subdir.npz").mkdir()
    infos = s.list()
    assert [i.name for i in infos] == ["good"]
    problems = "\n".join(s.problems)
    assert len(s.problems) == 4, problems
    assert "'broken.npz'" in problems and "truncated" in problems
    assert "'pickled.npz'" in problems and "pickle" in problems
    assert "'bad name!.npz'" in problems and "'subdir.npz'" in problems
    assert ".tmp-" not in problems and "notes.txt" not in problems
    assert s.list() and len(s.problems) == 4  # problems are per listing, not accumulated


def test_list_caches_metadata_per_file_version(tmp_path, monkeypatch):
    s = ModelStore(tmp_path)
    for i in range(3):
        s.save(_net(i), {"i": i}, name=f"m{i}")
    s.list()
    calls = []
    real = store._read_model
    monkeypatch.setattr(store, "_read_model", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert len(ModelStore(tmp_path).list()) == 3
    assert calls == []  # nothing re-read: shared cache across store instances
    s.save(_net(9), {"i": 9}, name="m1", overwrite=True)
    assert {i.name: i.metadata["i"] for i in s.list()} == {"m0": 0, "m1": 9, "m2": 2}
    assert len(calls) == 1  # only the replaced file
    # cached metadata is a copy: mutating a listed dict does not leak into the next listing
    s.list()[0].metadata["i"] = "changed"
    assert "changed" not in [i.metadata["i"] for i in s.list()]


BAD_NAMES = ["../../etc/passwd", "/etc/passwd", "a/b", "a\\b", "..", "a..b", "", " ", ".hidden",
             "-dash", "x" * 65, "na\x00me", "tab\tname", "star*", 42, None]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_path_traversal_and_bad_names_are_rejected(tmp_path, name):
    outer = tmp_path / "outer"
    outer.mkdir()
    s = ModelStore(outer / "models")
    s.save(_net(1), {}, name="ok")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    ops = [
        lambda: s.load(name),
        lambda: s.rename("ok", name),
        lambda: s.rename(name, "ok2"),
        lambda: s.delete(name),
        lambda: s.path_for(name),
    ]
    if name is not None:  # save(name=None) picks a name; set_active(None) clears the choice
        ops += [lambda: s.save(_net(2), {}, name=name), lambda: s.set_active(name)]
    for op in ops:
        with pytest.raises(ModelFileError):
            op()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert s.names() == ["ok"]


def test_names_are_trimmed_and_allowed_characters_work(tmp_path):
    s = ModelStore(tmp_path)
    assert s.save(_net(), {}, name="  My model_v1.2-b  ").name == "My model_v1.2-b"
    assert store.validate_name("x" * 64) == "x" * 64


def test_symlinks_pointing_out_of_the_store_are_refused(tmp_path):
    outside = tmp_path / "secret.npz"
    save_model(outside, _net(7), {})
    s = ModelStore(tmp_path / "models")
    s.save(_net(1), {}, name="ok")
    (s.directory / "evil.npz").symlink_to(outside)
    assert s.names() == ["ok"]
    assert any("'evil.npz'" in p and "outside" in p for p in s.problems)
    with pytest.raises(ModelFileError, match="outside"):
        s.load("evil")
    with pytest.raises(ModelFileError, match="outside"):
        s.delete("evil")
    with pytest.raises(ModelFileError, match="outside"):
        s.save(_net(2), {}, name="evil", overwrite=True)
    assert _same_net(load_model(outside)[0], _net(7))  # untouched


def test_active_model(tmp_path):
    s = ModelStore(tmp_path)
    assert s.active_name() is None and s.load_active() is None and s.resolve_active() is None
    s.save(_net(1), {"created": _created(1)}, name="old")
    s.save(_net(2), {"created": _created(2)}, name="new")
    assert s.active_name() is None
    assert _same_net(s.load_active()[0], _net(2))  # no choice yet: newest
    s.set_active("old")
    assert s.active_name() == "old" and json.loads((tmp_path / "active.json").read_text()) == {"name": "old"}
    assert _same_net(s.load_active()[0], _net(1))
    assert s.resolve_active().name == "old"
    assert ModelStore(tmp_path).active_name() == "old"  # persisted
    s.rename("old", "older")
    assert s.active_name() == "older"
    with pytest.raises(ModelFileError, match="no model named"):
        s.set_active("missing")
    assert s.active_name() == "older"
    s.delete("older")
    assert s.active_name() is None and not (tmp_path / "active.json").exists()
    assert _same_net(s.load_active()[0], _net(2))
    s.set_active("new")
    s.set_active(None)
    assert s.active_name() is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize(
    "content", ["{not json", "[]", '{"name": 3}', '{"name": "../x"}', '{"name": "gone"}', ""]
)
def test_corrupt_or_stale_active_file_falls_back(tmp_path, content):
    s = ModelStore(tmp_path)
    s.save(_net(1), {"created": _created(1)}, name="a")
    s.save(_net(2), {"created": _created(2)}, name="b")
    (tmp_path / "active.json").write_text(content)
    assert s.active_name() is None
    assert _same_net(s.load_active()[0], _net(2))


def test_load_active_skips_a_model_that_went_bad(tmp_path):
    s = ModelStore(tmp_path)
    s.save(_net(1), {"created": _created(1)}, name="a")
    s.save(_net(2), {"created": _created(2)}, name="b")
    s.set_active("b")
    (tmp_path / "b.npz").write_bytes(b"garbage")
    net, _ = s.load_active()
    assert _same_net(net, _net(1))
    assert any("'b.npz'" in p for p in s.problems)


def test_load_active_survives_a_model_changing_after_listing(tmp_path, monkeypatch):
    s = ModelStore(tmp_path)
    s.save(_net(1), {"created": _created(1)}, name="a")
    s.save(_net(2), {"created": _created(2)}, name="b")
    s.set_active("b")
    real = store.load_model

    def flaky(path):  # b is listed as fine, then replaced by junk / deleted before it is read
        if Path(path).name == "b.npz":
            raise ModelFileError("'b.npz' is damaged or truncated: gone.")
        return real(path)

    monkeypatch.setattr(store, "load_model", flaky)
    net, _ = s.load_active()
    assert _same_net(net, _net(1))
    assert s.problems == ["Skipped 'b': 'b.npz' is damaged or truncated: gone."]
    monkeypatch.setattr(store, "load_model", lambda path: flaky(tmp_path / "b.npz"))
    assert s.load_active() is None and len(s.problems) == 2


_WORKER = textwrap.dedent(
    """
    import json, sys
    from scratchnet.network import Network
    from scratchnet.store import ModelStore
    directory, worker, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = ModelStore(directory)
    mine = {}
    print("ready", flush=True)
    sys.stdin.readline()  # start together with the other worker
    for i in range(n):
        info = s.save(Network((784, 16, 10), seed=100 * worker + i), {"worker": worker, "i": i},
                      name="shared")
        current = info.name
        mine[current] = i
        listed = s.list()
        if s.problems:
            print(json.dumps({"problems": s.problems}))
            sys.exit(3)
        names = {m.name for m in listed}
        missing = set(mine) - names
        if missing:
            print(json.dumps({"missing": sorted(missing)}))
            sys.exit(4)
        if i % 3 == 0:
            new = f"w{worker}-{i}"
            s.rename(current, new)
            mine[new] = mine.pop(current)
            current = new
        if i % 4 == 1:
            s.delete(current)
            del mine[current]
    print(json.dumps({"mine": mine}))
    """
)


def test_two_processes_sharing_a_store_stay_consistent(tmp_path):
    n = 30
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path), str(w), str(n)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=_subprocess_env())
        for w in (1, 2)
    ]
    outputs = []
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == b"ready"
        for proc in procs:
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=300) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    results = []
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, (out, err.decode()[-2000:])
        results.append(json.loads(out.decode().strip().splitlines()[-1])["mine"])
    mine1, mine2 = results
    assert not set(mine1) & set(mine2)  # nobody claimed the other's name
    s = ModelStore(tmp_path)
    infos = {i.name: i for i in s.list()}
    assert s.problems == []
    assert set(infos) == set(mine1) | set(mine2)
    for worker, mine in ((1, mine1), (2, mine2)):
        for name, i in mine.items():
            assert infos[name].metadata == {**infos[name].metadata, "worker": worker, "i": i}
            assert _same_net(s.load(name)[0], Network((784, 16, 10), seed=100 * worker + i))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_atomic_write_replaces_whole_files_and_leaves_nothing_on_failure(tmp_path):
    from scratchnet.files import atomic_write

    target = tmp_path / "a.json"
    target.write_text("old")
    with atomic_write(target, "w", suffix=".json") as f:
        f.write("new")
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


# --------------------------------------------------------------------------- format 2: layers


def _conv_net(seed=0):
    from scratchnet import layers as L

    layers = [L.Conv2D(3, 5), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(8), L.ReLU(), L.Dense(10)]
    return Network(None, layers=layers, seed=seed)


def test_conv_model_round_trips_with_its_layer_list(tmp_path):
    net = _conv_net(1)
    path = save_model(tmp_path / "conv.npz", net, {"metrics": {}})
    loaded, meta = load_model(path)
    assert meta["version"] == 2 and meta["input_shape"] == [28, 28, 1] and "sizes" not in meta
    assert meta["architecture"] == "conv3-5,maxpool2,dense8"
    assert [l["type"] for l in meta["layers"]] == ["conv2d", "relu", "maxpool2d", "flatten", "dense", "relu", "dense"]
    assert loaded.describe() == net.describe()
    assert all(np.array_equal(a, b) for a, b in zip(loaded.params(), net.params()))
    np.testing.assert_array_equal(loaded.predict_proba(_X()), net.predict_proba(_X()))
    with np.load(path, allow_pickle=False) as npz:
        assert npz["W0"].shape == (5, 5, 1, 3) and npz["W1"].shape == (3 * 14 * 14, 8)


def test_format_1_files_still_load(tmp_path):
    """A model written before layers existed: sizes + activation, W0/b0/W1/b1."""
    net = _net(4)
    arrays = _good_arrays(4)
    meta = _meta(config={"hidden": [16], "epochs": 1}, metrics={"val_accuracy": 0.5})
    (tmp_path / "old.npz").write_bytes(_npz_bytes(arrays, meta))
    loaded, got = load_model(tmp_path / "old.npz")
    assert got["version"] == 1 and loaded.sizes == SIZES and loaded.is_mlp
    np.testing.assert_array_equal(loaded.predict_proba(_X()), net.predict_proba(_X()))
    from scratchnet.training import TrainConfig

    assert TrainConfig.from_dict(got["config"]).layers == "dense16"


def _v2(net, **changes):
    meta = store.complete_metadata(net, {})
    meta.update(changes)
    arrays = {f"{k}{i}": a for i, (W, b) in enumerate(zip(net.weights, net.biases)) for k, a in (("W", W), ("b", b))}
    return arrays, meta


@pytest.mark.parametrize("change, fragment", [
    ({"layers": [{"type": "conv2d", "filters": 3, "kernel": 5}, {"type": "lstm"}]}, "Unknown layer type"),
    ({"layers": []}, "non-empty list"),
    ({"layers": "conv"}, "non-empty list"),
    ({"input_shape": [32, 32, 3]}, "input_shape"),
    ({"layers": [{"type": "conv2d", "filters": 3, "kernel": 4}]}, "odd"),
    ({"layers": [{"type": "relu"}, {"type": "dense", "units": 10}]}, "do not fit together"),
    ({"layers": [{"type": "conv2d", "filters": 3, "kernel": 5}, {"type": "dense", "units": 10}]}, "do not fit together"),
    ({"layers": [{"type": "conv2d", "filters": 1024, "kernel": 27}] * 3 + [{"type": "flatten"},
                 {"type": "dense", "units": 10}]}, "parameters|far too large"),
    ({"layers": [{"type": "conv2d", "filters": 3, "kernel": 5}, {"type": "flatten"},
                 {"type": "dense", "units": 7}]}, "10 units"),
    ({"layers": [{"type": "conv2d", "filters": True, "kernel": 5}]}, "whole number"),
])
def test_format_2_layer_lists_are_validated(tmp_path, change, fragment):
    arrays, meta = _v2(_conv_net(), **change)
    (tmp_path / "m.npz").write_bytes(_npz_bytes(arrays, meta))
    with pytest.raises(ModelFileError, match=fragment):
        load_model(tmp_path / "m.npz")


def test_format_2_arrays_must_fit_the_layers(tmp_path):
    arrays, meta = _v2(_conv_net())
    arrays["W0"] = np.zeros((3, 3, 1, 3), np.float32)  # a 3x3 kernel where the layer says 5x5
    (tmp_path / "a.npz").write_bytes(_npz_bytes(arrays, meta))
    with pytest.raises(ModelFileError, match=r"W0 has shape \(3, 3, 1, 3\).*\(5, 5, 1, 3\)"):
        load_model(tmp_path / "a.npz")
    arrays, meta = _v2(_conv_net())
    del arrays["b1"]
    (tmp_path / "b.npz").write_bytes(_npz_bytes(arrays, meta))
    with pytest.raises(ModelFileError, match="missing b1"):
        load_model(tmp_path / "b.npz")
