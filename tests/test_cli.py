"""The command line, run in-process through ``scratchnet.cli.main(argv)`` (one subprocess test).

Everything happens in temp folders: SCRATCHNET_DATA_DIR / SCRATCHNET_MODELS_DIR point there and
MNIST is never requested (--dataset sample or --csv), so no test needs the network.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scratchnet import cli
from scratchnet.datasets import SAMPLE_PATH
from scratchnet.store import load_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SCRATCHNET_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def sample():
    with np.load(SAMPLE_PATH) as npz:
        return npz["images"], npz["labels"]


def write_csv(path: Path, images, labels, header=True) -> Path:
    rows = np.column_stack([labels, images]).astype(int)
    head = "label," + ",".join(f"pixel{i}" for i in range(784)) + "\n" if header else ""
    path.write_text(head + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def json_line(out: str) -> dict:
    lines = [l for l in out.splitlines() if l.strip()]
    assert lines, "no output on stdout"
    return json.loads(lines[-1])


def assert_one_line_error(err: str):
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sample):
    """A small but real model (about 90% on the sample's validation digits) plus a test CSV."""
    d = tmp_path_factory.mktemp("trained")
    images, labels = sample
    test_csv = write_csv(d / "test.csv", images[-300:], labels[-300:])
    model = d / "model.npz"
    code = cli.main(["train", "--dataset", "sample", "--epochs", "3", "--no-augment", "--out", str(model),
                     "--quiet"])
    assert code == 0
    return model, test_csv


# --------------------------------------------------------------------------- help / usage


def test_help_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "scratchnet", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for word in ("train", "evaluate", "predict", "exit status"):
        assert word in proc.stdout


def test_no_command_is_a_usage_error(capsys):
    code, out, err = run(capsys)
    assert code == 2
    assert_one_line_error(err)


# --------------------------------------------------------------------------- train


def test_train_notebook_preset_json(capsys, isolated_dirs):
    code, out, err = run(capsys, "train", "--preset", "notebook", "--iterations", 20, "--dataset", "sample",
                         "--json")
    assert code == 0, err
    result = json_line(out)
    assert len([l for l in out.splitlines() if l.strip()]) == 1  # progress went to stderr
    assert result["status"] == "finished"
    assert result["iterations"] == 20 and result["epochs"] == pytest.approx(20.0)  # full batch
    assert result["test_accuracy"] is None  # the sample has no test set
    assert 0.1 < result["dev_accuracy"] <= 1
    assert result["train_seconds"] > 0
    assert "Iteration 10: train accuracy" in err and "Iteration 20:" in err

    path = Path(result["model"])
    assert path.parent == isolated_dirs / "models"  # no --out: the model store
    net, meta = load_model(path)
    assert meta["sizes"] == [784, 10, 10]
    assert meta["config"]["iterations"] == 20 and meta["config"]["init"] == "notebook"
    assert meta["dataset"]["name"] == "sample" and meta["dataset"]["n_train"] == 4000
    assert meta["metrics"]["val_accuracy"] == pytest.approx(result["dev_accuracy"])
    assert [h["step"] for h in meta["history"]] == [10, 20]
    assert meta["preprocessing"] == "mnist-28x28-float01" and meta["created"]


def test_train_prints_progress_on_stdout_without_json(capsys):
    code, out, err = run(capsys, "train", "--preset", "notebook", "--iterations", 10, "--dataset", "sample")
    assert code == 0, err
    assert "Iteration 10: train accuracy" in out
    assert "Saved model" in out


def test_explicit_options_override_the_preset(capsys, tmp_path):
    out_path = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "--preset", "fast", "--hidden", "32,16", "--activation", "tanh",
                         "--init", "xavier", "--optimizer", "momentum", "--lr", 0.05, "--batch-size", 64,
                         "--iterations", 12, "--l2", 0.001, "--seed", 3, "--no-augment", "--dataset", "sample",
                         "--out", out_path, "--json")
    assert code == 0, err
    assert json_line(out)["model"] == str(out_path)
    net, meta = load_model(out_path)
    c = meta["config"]
    assert net.sizes == (784, 32, 16, 10) and net.activation == "tanh"
    assert (c["optimizer"], c["lr"], c["batch_size"], c["iterations"], c["epochs"]) == ("momentum", 0.05, 64, 12, None)
    assert (c["l2"], c["seed"], c["augment"], c["init"]) == (0.001, 3, "", "xavier")
    assert c["lr_schedule"] == "cosine"  # not given: kept from the fast preset
    assert meta["preset"] == "fast"


def test_batch_size_full_means_full_batch(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--hidden", "8", "--optimizer", "gd", "--lr", 0.1, "--batch-size",
                         "full", "--iterations", 3, "--eval-every", 1, "--no-augment", "--dataset", "sample",
                         "--out", tmp_path / "m.npz", "--json")
    assert code == 0, err
    result = json_line(out)
    assert result["config"]["batch_size"] is None
    assert result["epochs"] == pytest.approx(3.0)
    assert err.count("Iteration ") == 3


def test_train_from_csv_with_test_set(capsys, tmp_path, sample):
    images, labels = sample
    train_csv = write_csv(tmp_path / "train.csv", images[:400], labels[:400])
    test_csv = write_csv(tmp_path / "test.csv", images[400:600], labels[400:600], header=False)
    out_path = tmp_path / "csv-model.npz"
    code, out, err = run(capsys, "train", "--csv", train_csv, "--test-csv", test_csv, "--preset", "notebook",
                         "--iterations", 10, "--out", out_path, "--json")
    assert code == 0, err
    result = json_line(out)
    assert result["dataset"]["name"] == "csv:train.csv"
    assert result["dataset"]["n_train"] + result["dataset"]["n_val"] == 400
    assert result["dataset"]["n_test"] == 200
    net, meta = load_model(out_path)
    X_test = images[400:600].astype(np.float32) / 255
    assert result["test_accuracy"] == pytest.approx(net.accuracy(X_test, labels[400:600]))
    assert meta["metrics"]["test_accuracy"] == pytest.approx(result["test_accuracy"])


def test_bad_csv_is_one_line_and_exit_2(capsys, tmp_path, isolated_dirs):
    bad = tmp_path / "bad.csv"
    bad.write_text("label," + ",".join(f"pixel{i}" for i in range(784)) + "\n" + "3," + "abc," * 783 + "0\n")
    code, out, err = run(capsys, "train", "--csv", bad, "--preset", "notebook", "--iterations", 5)
    assert code == 2
    assert_one_line_error(err)
    assert "bad.csv" in err
    assert not (isolated_dirs / "models").exists() or not list((isolated_dirs / "models").glob("*.npz"))


def test_missing_csv_is_one_line_and_exit_2(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--csv", tmp_path / "nope.csv", "--iterations", 5)
    assert code == 2
    assert_one_line_error(err)


@pytest.mark.parametrize(
    "bad",
    [
        ["--lr", "-1"],
        ["--hidden", "0"],
        ["--batch-size", "0"],
        ["--lr", "abc"],
        ["--hidden", "ten"],
        ["--activation", "softplus"],
        ["--iterations", "5", "--epochs", "1"],
        ["--iterations", "0"],
        ["--batch-size", "5000"],  # larger than the 4,000 training digits of the sample
        ["--test-csv", "x.csv"],  # without --csv
        ["--name", "../escape"],
    ],
)
def test_bad_option_values_exit_2(capsys, isolated_dirs, bad):
    code, out, err = run(capsys, "train", "--dataset", "sample", "--no-augment", *bad)
    assert code == 2
    assert_one_line_error(err)
    assert out == ""
    assert not list(isolated_dirs.rglob("*.npz"))


def test_out_into_missing_folder_fails_before_training(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--dataset", "sample", "--out", tmp_path / "no" / "m.npz")
    assert code == 2
    assert_one_line_error(err)
    assert "Iteration" not in out + err and "Epoch" not in out + err


def test_divergence_exits_3_and_writes_no_broken_model(capsys, isolated_dirs):
    code, out, err = run(capsys, "train", "--preset", "notebook", "--lr", 900, "--iterations", 50,
                         "--dataset", "sample", "--json")
    assert code == 3
    result = json_line(out)
    assert result["status"] == "diverged"
    assert "diverged" in err.lower()
    assert "Traceback" not in err
    for path in isolated_dirs.rglob("*.npz"):  # if anything was saved, it loads (finite weights)
        load_model(path)


def test_ctrl_c_stops_cleanly_and_saves(capsys, monkeypatch, tmp_path):
    """SIGINT after the first progress line: the loop stops between steps and the model is kept."""
    real = cli.progress_line
    calls = []

    def progress_then_interrupt(p, by_iterations):
        calls.append(p.step)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return real(p, by_iterations)

    monkeypatch.setattr(cli, "progress_line", progress_then_interrupt)
    before = signal.getsignal(signal.SIGINT)
    out_path = tmp_path / "stopped.npz"
    code, out, err = run(capsys, "train", "--preset", "notebook", "--iterations", 100_000, "--eval-every", 5,
                         "--dataset", "sample", "--out", out_path, "--json")
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    assert code == 130
    result = json_line(out)
    assert result["status"] == "stopped"
    assert 5 <= result["iterations"] < 100_000
    assert "Traceback" not in err and "stopped" in err.lower()
    net, meta = load_model(out_path)
    assert meta["metrics"]["steps"] == result["iterations"]


# --------------------------------------------------------------------------- evaluate / predict


def test_evaluate_on_csv(capsys, trained, sample):
    model, test_csv = trained
    code, out, err = run(capsys, "evaluate", "--model", model, "--csv", test_csv, "--json")
    assert code == 0, err
    result = json_line(out)
    images, labels = sample
    net, _ = load_model(model)
    assert result["n"] == 300
    assert result["test_accuracy"] == pytest.approx(net.accuracy(images[-300:].astype(np.float32) / 255,
                                                                 labels[-300:]))
    code, out, err = run(capsys, "evaluate", "--model", model, "--csv", test_csv)
    assert code == 0 and "Test accuracy" in out


def test_evaluate_by_store_name(capsys, trained):
    model, test_csv = trained
    code, out, err = run(capsys, "train", "--preset", "notebook", "--iterations", 10, "--dataset", "sample",
                         "--name", "tiny", "--quiet")
    assert code == 0, err
    code, out, err = run(capsys, "evaluate", "--model", "tiny", "--csv", test_csv, "--json")
    assert code == 0, err
    assert json_line(out)["n"] == 300
    code, out, err = run(capsys, "models", "--json")
    assert code == 0
    assert [m["name"] for m in json_line(out)] == ["tiny"]


@pytest.mark.parametrize("kind", ["text", "png", "missing", "unknown-name"])
def test_model_that_is_not_ours_exits_2(capsys, tmp_path, trained, kind):
    _, test_csv = trained
    if kind == "text":
        spec = tmp_path / "notes.txt"
        spec.write_text("hello")
    elif kind == "png":
        spec = tmp_path / "digit.png"
        Image.new("L", (28, 28)).save(spec)
    elif kind == "missing":
        spec = tmp_path / "gone.npz"
    else:
        spec = "no-such-model"
    for argv in (["evaluate", "--model", spec, "--csv", test_csv], ["predict", "--model", spec, test_csv]):
        code, out, err = run(capsys, *argv)
        assert code == 2
        assert_one_line_error(err)
        assert out == ""


def digit_images(tmp_path: Path, image28: np.ndarray) -> list[Path]:
    """One MNIST digit as real files: upscaled white-on-black PNG, black-on-white JPEG, small RGBA."""
    big = Image.fromarray(image28).resize((140, 140), Image.BILINEAR)
    paths = [tmp_path / "white_on_black.png", tmp_path / "black_on_white.jpg", tmp_path / "rgba.png"]
    big.save(paths[0])
    Image.fromarray(255 - np.asarray(big)).convert("RGB").save(paths[1], quality=95)
    ink = np.asarray(Image.fromarray(image28).resize((56, 56), Image.BILINEAR))
    rgba = np.zeros((56, 56, 4), np.uint8)
    rgba[..., 3] = ink  # black ink on a transparent background, like a canvas export
    Image.fromarray(rgba, "RGBA").save(paths[2])
    return paths


def confident_digit(model: Path, sample):
    """A held-out sample digit the model reads with high confidence (what we feed as images)."""
    images, labels = sample
    net, _ = load_model(model)
    probs = net.predict_proba(images[-300:].astype(np.float32) / 255)
    ok = np.flatnonzero((probs.argmax(1) == labels[-300:]) & (probs.max(1) > 0.99))
    assert len(ok), "the fixture model should be confident on some digits"
    i = len(images) - 300 + ok[0]
    return images[i].reshape(28, 28), int(labels[i])


def test_predict_reads_images_in_either_polarity(capsys, tmp_path, trained, sample):
    model, _ = trained
    image28, label = confident_digit(model, sample)
    paths = digit_images(tmp_path, image28)
    code, out, err = run(capsys, "predict", "--model", model, *paths, "--json")
    assert code == 0, err
    results = [json.loads(l) for l in out.splitlines()]
    assert [r["path"] for r in results] == [str(p) for p in paths]
    for r in results:
        assert r["digit"] == label, r
        assert len(r["probabilities"]) == 10 and sum(r["probabilities"]) == pytest.approx(1, abs=1e-4)
        assert r["probabilities"][r["digit"]] == max(r["probabilities"])
    code, out, err = run(capsys, "predict", "--model", model, paths[0])
    assert code == 0
    assert out.startswith(f"{paths[0]}: {label} (confidence ")


def test_predict_bad_image_reports_it_and_continues(capsys, tmp_path, trained, sample):
    model, _ = trained
    image28, label = confident_digit(model, sample)
    good = digit_images(tmp_path, image28)[0]
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    code, out, err = run(capsys, "predict", "--model", model, fake, good, blank, tmp_path / "missing.png", "--json")
    assert code == 2
    assert [json.loads(l)["path"] for l in out.splitlines()] == [str(good)]
    lines = err.splitlines()
    assert len(lines) == 3 and "Traceback" not in err
    assert lines[0].startswith(str(fake)) and lines[1].startswith(str(blank))


# --------------------------------------------------------------------------- architectures


def test_train_a_conv_net_from_a_layers_spec(capsys, tmp_path):
    out_path = tmp_path / "conv.npz"
    code, out, err = run(capsys, "train", "--layers", "conv4-5,maxpool2,dense16", "--iterations", 20,
                         "--batch-size", 64, "--dataset", "sample", "--augment", "affine+flag",
                         "--out", out_path, "--json")
    assert code == 0, err
    result = json_line(out)
    assert result["architecture"] == "conv4-5,maxpool2,dense16"
    net, meta = load_model(out_path)
    assert net.describe() == "28x28 → conv4-5 → maxpool2 → dense16 → 10"
    assert meta["architecture"] == "conv4-5,maxpool2,dense16" and meta["source"] == "cli"
    assert meta["config"]["augment"] == "affine+flag" and meta["config"]["hidden"] is None
    assert "conv4-5" in err  # the description line goes to stderr with --json


def test_hidden_is_shorthand_for_dense_layers(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--hidden", "12,8", "--iterations", 5, "--dataset", "sample",
                         "--out", tmp_path / "m.npz", "--json", "--quiet")
    assert code == 0, err
    assert json_line(out)["architecture"] == "dense12,dense8"
    net, _ = load_model(tmp_path / "m.npz")
    assert net.sizes == (784, 12, 8, 10)


@pytest.mark.parametrize("spec, token", [
    ("conv16", "'conv16'"),
    ("conv16-5,maxpol2", "'maxpol2'"),
    ("dense128,conv8-3", "'conv8-3'"),
    ("conv8-4", "'conv8-4'"),
    ("dense0", "'dense0'"),
    ("conv300-3", "'conv300-3'"),
    (",", "empty"),
])
def test_a_bad_spec_exits_2_naming_the_token_and_the_grammar(capsys, isolated_dirs, spec, token):
    code, out, err = run(capsys, "train", "--layers", spec, "--dataset", "sample")
    assert code == 2
    assert_one_line_error(err)
    assert token in err
    assert "conv<C>-<K>" in err or "convolutions and pooling" in err or "kernel size" in err or "units" in err \
        or "filters" in err
    assert not (isolated_dirs / "models").exists()  # nothing trained, nothing written


def test_layers_and_hidden_cannot_both_be_given(capsys, isolated_dirs):
    code, _, err = run(capsys, "train", "--layers", "dense8", "--hidden", "8", "--dataset", "sample")
    assert code == 2
    assert_one_line_error(err)
    assert "not allowed with" in err


def test_a_spec_too_big_for_memory_or_parameters_exits_2(capsys, isolated_dirs):
    code, _, err = run(capsys, "train", "--layers", "conv256-9,conv256-9,dense4096", "--dataset", "sample")
    assert code == 2
    assert_one_line_error(err)
    assert "parameters" in err or "memory" in err


def test_models_lists_conv_models_by_their_architecture(capsys, isolated_dirs):
    code, _, err = run(capsys, "train", "--layers", "conv2-3,maxpool2,dense8", "--iterations", 3,
                       "--dataset", "sample", "--name", "tiny-conv", "--quiet")
    assert code == 0, err
    code, out, _ = run(capsys, "models")
    assert code == 0 and "tiny-conv" in out and "conv2-3,maxpool2,dense8" in out
    code, out, _ = run(capsys, "models", "--json")
    assert json_line(out.replace("\n", " "))[0]["architecture"] == "conv2-3,maxpool2,dense8"


@pytest.mark.parametrize("spec", ["dense" + "9" * 5000, "conv" + "9" * 5000 + "-3", "maxpool" + "7" * 4400],
                         ids=["dense", "conv", "maxpool"])
def test_absurd_numbers_in_a_spec_are_a_clear_error(capsys, isolated_dirs, spec):
    code, _, err = run(capsys, "train", "--layers", spec, "--dataset", "sample")
    assert code == 2 and len(err) < 400
    assert_one_line_error(err)
