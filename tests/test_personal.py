"""Teaching a model one writer's habits: fine-tuning, honest figures, refusal, folders of drawings."""

from __future__ import annotations

import hashlib
import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from scratchnet import augment, cli, personal
from scratchnet.datasets import load_sample
from scratchnet.errors import DataError
from scratchnet.store import ModelStore, load_model, save_model
from scratchnet.training import PRESETS, run


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture(scope="module")
def base(sample):
    """A small MLP trained on the sample WITHOUT the flag augmentation: it misreads flagged 1s."""
    result = run(PRESETS["fast"].replace(augment="affine", epochs=8), sample, preset="fast")
    return result.net, result.metadata


@pytest.fixture(scope="module")
def slashed_zeros(sample):
    """Validation 0s written as many programmers do: with a slash from top right to bottom left."""
    idx = np.flatnonzero(sample.y_val == 0)
    out = []
    for img in sample.X_val[idx].reshape(-1, 28, 28):
        rows, cols = np.flatnonzero(img.max(axis=1) > 0.3), np.flatnonzero(img.max(axis=0) > 0.3)
        f32 = lambda v: np.array([v], np.float32)  # noqa: E731
        slash = augment._segment_ink(f32(rows.min() - 1), f32(cols.max() + 1), f32(rows.max() + 1),
                                     f32(cols.min() - 1), f32(2.2))[0]
        out.append(np.maximum(img, slash))
    return np.asarray(out, np.float32).reshape(-1, 784), np.zeros(len(idx), np.int64)


def test_ten_drawings_of_a_habit_teach_it_to_read_the_others(base, sample, slashed_zeros):
    net, meta = base
    S, yS = slashed_zeros
    train, held_out = np.arange(10), np.arange(10, len(yS))
    before = float((net.predict(S[held_out]) == 0).mean())
    assert before < 0.85  # the habit really is a problem for the base
    result = personal.finetune(net, S[train], yS[train], sample, base_meta=meta, base_name="base", seed=0)
    after = float((result.net.predict(S[held_out]) == 0).mean())
    assert not result.refused and result.net is not net
    assert after >= before + 0.08, (before, after)
    assert result.drawings_after >= result.drawings_before
    assert result.val_after >= result.val_before - personal.MAX_VAL_DROP
    assert "Learned from 10 drawings" in result.message
    p = result.metadata["personal"]
    assert p["base"] == "base" and p["n_drawings"] == 10 and p["folds"] == 5
    assert result.metadata["source"] == "personal" and result.metadata["architecture"] == net.architecture
    X, y = personal.decode_drawings(result.metadata)
    np.testing.assert_allclose(X, S[train], atol=1 / 255)
    assert y.tolist() == [0] * 10


def test_the_personal_models_metrics_are_its_own(base, sample, slashed_zeros):
    """Validation and test accuracy in the metadata are the personal model's, on the full splits."""
    from dataclasses import replace

    net, meta = base
    S, yS = slashed_zeros
    with_test = replace(sample, X_train=sample.X_train[500:], y_train=sample.y_train[500:],
                        X_test=sample.X_train[:500], y_test=sample.y_train[:500])
    result = personal.finetune(net, S[:10], yS[:10], with_test, base_meta=meta, folds=2, seed=0)
    m, d = result.metadata["metrics"], result.metadata["dataset"]
    assert m["val_accuracy"] == result.val_after == result.net.accuracy(sample.X_val, sample.y_val)
    assert m["test_accuracy"] == pytest.approx(result.net.accuracy(with_test.X_test, with_test.y_test))
    assert d["n_val"] == len(sample.X_val) and d["n_test"] == 500


def test_the_base_model_and_its_file_are_never_changed(base, sample, slashed_zeros, tmp_path):
    net, meta = base
    path = save_model(tmp_path / "base.npz", net, meta)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    arrays = [p.copy() for p in net.params()]
    F, yF = slashed_zeros
    loaded, loaded_meta = load_model(path)
    result = personal.finetune(loaded, F[:6], yF[:6], sample, base_meta=loaded_meta, steps=20)
    assert all(np.array_equal(a, b) for a, b in zip(arrays, net.params()))
    assert all(np.array_equal(a, b) for a, b in zip(arrays, loaded.params()))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    if not result.refused:
        assert not any(np.shares_memory(a, b) for a, b in zip(result.net.params(), loaded.params()))


def test_a_fine_tuning_that_hurts_everybody_else_is_refused(base, sample, slashed_zeros):
    net, meta = base
    F, yF = slashed_zeros
    result = personal.finetune(net, F[:10], yF[:10], sample, base_meta=meta, lr=0.05, steps=40)
    assert result.refused and result.net is net
    assert result.message.endswith(".") and not re.search(r"\.\s", result.message)  # one sentence
    assert "base model was kept" in result.message
    assert "validation" in result.message or "diverged" in result.message


def test_after_is_cross_validated_never_read_by_a_model_that_learned_the_drawing(base, sample):
    """Noise with random labels can be memorised but not generalised: only honest figures show it."""
    net, meta = base
    rng = np.random.default_rng(3)
    X = (rng.random((20, 784)) < 0.15).astype(np.float32)
    y = rng.integers(0, 10, 20)
    result = personal.finetune(net, X, y, sample, base_meta=meta, steps=60, lr=1e-3)
    personal_net = result.net
    if result.refused:  # learning noise may cost validation accuracy; the figures are still there
        from scratchnet.training import train

        personal_net = net.copy()
        cfg = personal.config_for(net, meta, y, steps=60, lr=1e-3)
        list(train(personal_net, *personal.mixture(X, y, sample, cfg, np.random.default_rng(0)), cfg))
    memorised = float((personal_net.predict(X) == y).mean())
    assert result.drawings_after is not None and result.drawings_after <= 0.5
    assert memorised > result.drawings_after  # a tuned model fits them; the figure does not pretend
    assert len(result.predicted_after) == 20
    assert set(result.fixed) | set(result.broken) <= set(range(20))


def test_one_drawing_has_no_cross_validated_figure(base, sample, slashed_zeros):
    net, meta = base
    F, yF = slashed_zeros
    result = personal.finetune(net, F[:1], yF[:1], sample, base_meta=meta, steps=10)
    assert result.drawings_after is None and "single drawing" in result.message


def test_the_mixture_keeps_every_digit_equally_common(sample):
    y = np.array([1] * 10)
    copies = personal.copies_per_step(y)
    assert np.allclose(copies, personal.REPLAY / 10 / 10)  # ten 1s: capped per digit
    assert personal.copies_per_step(np.arange(10)).tolist() == [personal.COPIES] * 10
    assert personal.copies_per_step(np.repeat(np.arange(10), 5)).sum() == pytest.approx(personal.MAX_DRAWING_ROWS)
    net = PRESETS["fast"]
    from scratchnet.network import Network

    cfg = personal.config_for(Network((784, 8, 10)), {"config": net.to_dict()}, y, steps=30)
    X = np.zeros((10, 784), np.float32)
    Xm, ym = personal.mixture(X, y, sample, cfg, np.random.default_rng(0))
    counts = np.bincount(ym, minlength=10)
    assert len(ym) == 30 * cfg.batch_size and counts.max() - counts.min() <= 1
    assert (Xm.sum(axis=1) == 0).sum() >= 0.9 * np.rint(personal.copies_per_step(y) * 30).sum()
    assert cfg.augment == "affine+flag" and cfg.lr == personal.LR and cfg.iterations == 30


def test_bad_drawings_are_refused_with_a_reason(base, sample):
    net, meta = base
    with pytest.raises(DataError, match="no drawings"):
        personal.finetune(net, np.zeros((0, 784), np.float32), np.zeros(0, int), sample)
    with pytest.raises(DataError, match="0 to 9"):
        personal.finetune(net, np.zeros((2, 784), np.float32), np.array([3, 12]), sample)
    with pytest.raises(DataError, match="from 0 to 1"):
        personal.finetune(net, np.full((2, 784), 255, np.float32), np.array([3, 2]), sample)


def test_personal_names_fit_the_store():
    from datetime import datetime

    from scratchnet.store import validate_name

    assert personal.personal_name("fast-2026", datetime(2026, 12, 4)) == "fast-2026-personal-2026-12-04"
    long = personal.personal_name("x" * 64, datetime(2026, 12, 4))
    assert len(long) == 64 and validate_name(long) == long


# --------------------------------------------------------------------------- folders of drawings


def _folder(tmp_path, images, labels, names=None, header="filename,label"):
    d = tmp_path / "drawings"
    d.mkdir()
    names = names or [f"d{i}.png" for i in range(len(images))]
    for name, img in zip(names, images):
        if img is not None:
            Image.fromarray(img).save(d / name)
    rows = [header] + [f"{n},{l}" for n, l in zip(names, labels)]
    (d / "labels.csv").write_text("\n".join(rows) + "\n")
    return d


def _app_png(sample, i):
    return np.clip(sample.X_val[i].reshape(28, 28) * 255, 0, 255).astype(np.uint8)


def test_a_folder_of_the_apps_drawings_and_photos_loads(tmp_path, sample):
    photo = np.full((200, 150), 230, np.uint8)  # dark ink on light paper, any size
    photo[40:160, 70:80] = 20
    d = _folder(tmp_path, [_app_png(sample, 0), _app_png(sample, 1), photo], [int(sample.y_val[0]), int(sample.y_val[1]), 1])
    X, y, names = personal.load_drawings(d)
    assert X.shape == (3, 784) and y.tolist() == [int(sample.y_val[0]), int(sample.y_val[1]), 1]
    np.testing.assert_allclose(X[0], sample.X_val[0], atol=1 / 255)  # the app's own drawings, as they are
    assert X[2].max() > 0.5 and X[2].reshape(28, 28)[:, :5].max() == 0  # the photo: preprocessed, centred
    assert names == ["d0.png", "d1.png", "d2.png"]


def _bad_folder(kind, tmp_path, sample):
    img = _app_png(sample, 0)
    if kind == "no labels.csv":
        (tmp_path / "drawings").mkdir()
        return tmp_path / "drawings", "labels.csv"
    if kind == "label 10":
        return _folder(tmp_path, [img], [10]), "not a digit"
    if kind == "label x":
        return _folder(tmp_path, [img], ["x"]), "not a digit"
    if kind == "missing image":
        return _folder(tmp_path, [None], [3]), "does not exist"
    if kind == "not an image":
        d = _folder(tmp_path, [None], [3], names=["notes.png"])
        (d / "notes.png").write_text("hello")
        return d, "notes.png"
    if kind == "parent":
        (tmp_path / "x.png").write_bytes(b"")
        Image.fromarray(img).save(tmp_path / "x.png")
        return _folder(tmp_path, [None], [3], names=["../x.png"]), "leaves the folder"
    if kind == "absolute":
        Image.fromarray(img).save(tmp_path / "abs.png")
        return _folder(tmp_path, [None], [3], names=[str(tmp_path / "abs.png")]), "leaves the folder"
    if kind == "symlink out":
        Image.fromarray(img).save(tmp_path / "outside.png")
        d = _folder(tmp_path, [None], [3], names=["link.png"])
        os.symlink(tmp_path / "outside.png", d / "link.png")
        return d, "outside the folder"
    if kind == "empty":
        return _folder(tmp_path, [], []), "no drawings"
    if kind == "no columns":
        return _folder(tmp_path, [img], [3], header="file,digit"), "filename and label"
    raise AssertionError(kind)


BAD = ["no labels.csv", "label 10", "label x", "missing image", "not an image", "parent", "absolute",
       "symlink out", "empty", "no columns"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_folders_raise_data_error(tmp_path, sample, kind):
    d, fragment = _bad_folder(kind, tmp_path, sample)
    with pytest.raises(DataError, match=fragment):
        personal.load_drawings(d)


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def cli_env(tmp_path, monkeypatch, base):
    monkeypatch.setenv("SCRATCHNET_DATA_DIR", str(tmp_path / "data"))  # no MNIST there: the sample
    monkeypatch.setenv("SCRATCHNET_MODELS_DIR", str(tmp_path / "models"))
    net, meta = base
    info = ModelStore().save(net, meta, name="mine")
    return tmp_path, info


def _run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_finetune_writes_a_personal_model(capsys, cli_env, sample, slashed_zeros):
    tmp_path, info = cli_env
    F, _ = slashed_zeros
    d = _folder(tmp_path, [np.clip(F[i].reshape(28, 28) * 255, 0, 255).astype(np.uint8) for i in range(4)], [0] * 4)
    out_path = tmp_path / "personal.npz"
    code, out, err = _run(capsys, "finetune", "--model", "mine", "--drawings", d, "--out", out_path,
                          "--steps", 20, "--json")
    assert code == 0, err
    line = json.loads(out.strip().splitlines()[-1])
    assert line["model"] == str(out_path) and line["n_drawings"] == 4
    for key in ("train_seconds", "drawings_before", "drawings_after", "val_before", "val_after"):
        assert key in line
    net, meta = load_model(out_path)
    assert meta["personal"]["base"] == "mine" and meta["source"] == "cli-finetune"
    assert meta["personal"]["drawings"]["files"] == ["d0.png", "d1.png", "d2.png", "d3.png"]
    code, out, err = _run(capsys, "finetune", "--model", "mine", "--drawings", d, "--steps", 10)
    assert code == 0, err
    names = ModelStore().names()
    assert any(n.startswith("mine-personal-") for n in names), names


@pytest.mark.parametrize("kind", BAD)
def test_cli_finetune_bad_folders_exit_2_and_write_nothing(capsys, cli_env, sample, kind):
    tmp_path, info = cli_env
    d, fragment = _bad_folder(kind, tmp_path, sample)
    before = sorted(p.name for p in (tmp_path / "models").iterdir())
    code, out, err = _run(capsys, "finetune", "--model", "mine", "--drawings", d, "--out", tmp_path / "p.npz")
    assert code == 2
    assert len([l for l in err.splitlines() if l.strip()]) == 1 and "Traceback" not in err
    assert not (tmp_path / "p.npz").exists()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == before
