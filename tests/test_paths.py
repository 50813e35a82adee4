"""No way in (issue #7): the app reads and writes only inside its data and model directories.

A crafted model name or upload file name cannot reach another folder, a file in the store that
points elsewhere is refused, and a whole session of use (train, save, rename, draw, label,
inspect) creates files nowhere but in ``SCRATCHNET_DATA_DIR`` and ``SCRATCHNET_MODELS_DIR``.
Nothing a user uploads is written to disk under the name they gave it, executed or unpickled.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from scratchnet.datasets import load_csv, load_sample
from scratchnet.errors import ModelFileError
from scratchnet.network import Network
from scratchnet.store import ModelStore, save_model
from scratchnet.ui import worker

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PAGE = str(ROOT / "pages" / "1_Train.py")
DRAW_PAGE = str(ROOT / "pages" / "2_Draw.py")
INSPECT_PAGE = str(ROOT / "pages" / "3_Inspect.py")

TRAVERSALS = [
    "../outside",
    "../../../../etc/passwd",
    "/etc/passwd",
    "..\\..\\windows\\system32",
    "models/../../x",
    "..",
    "x/../../y",
    "name\x00.npz",
    "~/.bashrc",
    "%2e%2e%2fetc",
]


def _tree(base: Path) -> set[str]:
    return {str(p.relative_to(base)) for p in base.rglob("*")}


@pytest.fixture
def sandbox(tmp_path, monkeypatch, trained_model_store, env_dirs):
    """HOME and the working directory inside tmp_path too, so a stray write would show up there."""
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return tmp_path


def _outside(tmp_path: Path, env_dirs) -> set[str]:
    """Files under tmp_path that are not inside the configured data or models directory."""
    inside = (env_dirs.data_dir.name, env_dirs.models_dir.name)
    return {p for p in _tree(tmp_path) if p.split(os.sep)[0] not in inside}


@pytest.mark.parametrize("name", TRAVERSALS, ids=repr)
def test_train_page_rename_to_a_crafted_name_is_refused(sandbox, env_dirs, name):
    before_outside = _outside(sandbox, env_dirs)
    store = ModelStore(env_dirs.models_dir)
    before_models = store.names()
    at = AppTest.from_file(TRAIN_PAGE, default_timeout=60).run()
    at.selectbox(key="tr_model_pick").set_value("test-model").run()
    at.text_input(key="tr_rename_to").set_value(name).run()
    at.button(key="tr_rename").click().run()
    assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    assert "not a valid model name" in errors, errors
    assert store.names() == before_models
    assert _outside(sandbox, env_dirs) == before_outside


@pytest.mark.parametrize("name", TRAVERSALS, ids=repr)
def test_store_refuses_crafted_names_for_every_operation(tmp_path, name):
    store = ModelStore(tmp_path / "models")
    store.save(Network((784, 8, 10), seed=0), {}, name="ok")
    before = _tree(tmp_path)
    for op in (lambda: store.save(Network((784, 8, 10), seed=1), {}, name=name),
               lambda: store.load(name), lambda: store.rename("ok", name), lambda: store.delete(name),
               lambda: store.set_active(name)):
        with pytest.raises(ModelFileError):
            op()
    assert _tree(tmp_path) == before


def test_active_choice_pointing_outside_is_ignored(tmp_path):
    secret = tmp_path / "secret.npz"
    save_model(secret, Network((784, 8, 10), seed=7), {})
    store = ModelStore(tmp_path / "models")
    store.save(Network((784, 8, 10), seed=1), {}, name="mine")
    for target in ("../secret", str(secret.with_suffix("")), "../../secret"):
        (store.directory / "active.json").write_text(json.dumps({"name": target}))
        assert store.active_name() is None
        net, _ = store.load_active()
        assert np.array_equal(net.weights[0], Network((784, 8, 10), seed=1).weights[0])


def test_symlink_in_the_store_is_not_followed_out(tmp_path):
    secret = tmp_path / "secret.npz"
    save_model(secret, Network((784, 8, 10), seed=7), {})
    store = ModelStore(tmp_path / "models")
    store.save(Network((784, 8, 10), seed=1), {}, name="mine")
    (store.directory / "link.npz").symlink_to(secret)
    assert store.names() == ["mine"]
    for op in (lambda: store.load("link"), lambda: store.delete("link"), lambda: store.set_active("link")):
        with pytest.raises(ModelFileError, match="outside"):
            op()
    assert secret.is_file()


def _csv_bytes(n=40) -> bytes:
    ds = load_sample()
    rows = np.column_stack([ds.y_train[:n].astype(np.int64), np.rint(ds.X_train[:n] * 255).astype(np.int64)])
    buf = io.StringIO()
    np.savetxt(buf, rows, fmt="%d", delimiter=",")
    return buf.getvalue().encode()


@pytest.mark.parametrize("stem", ["../../../tmp/evil", "..\\..\\evil", "/etc/cron.d/evil", "x" * 300,
                                  "~/.ssh/authorized_keys", "../" * 30 + "x"], ids=repr)
def test_uploaded_file_names_are_never_used_as_paths(sandbox, env_dirs, stem):
    before = _tree(sandbox)
    ds = load_csv(io.BytesIO(_csv_bytes()), name=Path(stem + ".csv").name)
    assert "/" not in ds.name
    at = AppTest.from_file(TRAIN_PAGE, default_timeout=60).run()
    at.radio(key="tr_source").set_value("csv").run()
    at.file_uploader(key="tr_upload").set_value((stem + ".csv", _csv_bytes(), "text/csv")).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    draw = AppTest.from_file(DRAW_PAGE, default_timeout=60).run()
    draw.file_uploader(key="draw_upload").set_value((stem + ".png", b"not an image", "image/png")).run()
    assert not draw.exception, draw.exception
    assert _tree(sandbox) == before  # uploads are read in memory: nothing was written anywhere


def _digit_canvas(digit: str = "1") -> dict:
    import base64

    im = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    pts = {"1": [(150, 40), (140, 240)], "7": [(70, 55), (205, 55), (125, 245)]}[digit]
    ImageDraw.Draw(im).line(pts, fill=(255, 255, 255, 255), width=22, joint="curve")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return {"drawing": {"raw": {"objects": []}, "data": url}, "backgroundFit": None}


def test_a_whole_session_writes_only_inside_the_configured_directories(sandbox, env_dirs):
    from scratchnet.ui.common import JOB_KEY

    before = _outside(sandbox, env_dirs)
    # Train a tiny model, then rename it.
    train = AppTest.from_file(TRAIN_PAGE, default_timeout=60).run()
    train.selectbox(key="tr_arch").set_value("custom").run()
    train.text_input(key="tr_layers").set_value("16").run()
    train.radio(key="tr_unit").set_value("iterations").run()
    train.number_input(key="tr_iterations").set_value(30).run()
    train.button(key="tr_start").click().run()
    assert not train.exception and not train.error, [e.value for e in train.error]
    job = worker.get_manager().get(train.session_state[JOB_KEY])
    assert job.done.wait(60) and job.snapshot().status == "finished", job.snapshot()
    train.run()
    new_name = job.snapshot().result["model_name"]
    train.selectbox(key="tr_model_pick").set_value(new_name).run()
    train.text_input(key="tr_rename_to").set_value("renamed-model").run()
    train.button(key="tr_rename").click().run()
    assert not train.exception, train.exception
    assert "renamed-model" in ModelStore(env_dirs.models_dir).names()
    # Draw and label a digit ("Was this right?" keeps it in data_dir/drawings).
    draw = AppTest.from_file(DRAW_PAGE, default_timeout=60).run()
    draw.session_state["draw_canvas_0"] = _digit_canvas("1")
    draw.run()
    assert not draw.exception, draw.exception
    yes = [b for b in draw.button if b.key == "draw_yes_canvas"]
    assert yes, "no 'Was this right?' button"
    yes[0].click().run()
    assert not draw.exception, draw.exception
    assert list((env_dirs.data_dir / "drawings").glob("*.png"))
    # Look inside.
    inspect = AppTest.from_file(INSPECT_PAGE, default_timeout=60).run()
    assert not inspect.exception, inspect.exception
    assert _outside(sandbox, env_dirs) == before, _outside(sandbox, env_dirs) - before


def test_nothing_in_the_package_unpickles_or_evaluates():
    """Static guard over the syntax tree: no pickle/marshal loading, eval/exec, shell, or allow_pickle=True."""
    import ast

    banned_calls = {"eval", "exec", "compile", "__import__"}
    banned_attrs = {("pickle", "load"), ("pickle", "loads"), ("marshal", "loads"), ("os", "system"),
                    ("os", "popen"), ("subprocess", "run"), ("subprocess", "Popen"), ("subprocess", "call"),
                    ("subprocess", "check_output"), ("shelve", "open")}
    offenders = []
    for path in sorted((ROOT / "scratchnet").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.id if isinstance(f, ast.Name) else None
            attr = (f.value.id, f.attr) if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None
            unsafe_kw = any(k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                            for k in node.keywords)
            if name in banned_calls or attr in banned_attrs or unsafe_kw:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert offenders == []
