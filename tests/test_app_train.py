"""The Train page through AppTest: train, watch, stop, save; bad uploads; divergence; model list.

``run_every`` does not tick in AppTest, so the tests rerun the page until the worker has
moved on (no timing assertions: they only wait for states).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from scratchnet.datasets import load_sample
from scratchnet.store import ModelStore
from scratchnet.ui.worker import TrainingJob, get_manager
from scratchnet.training import TrainConfig
from tools.testkit import metric

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/1_Train.py"


def open_page(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    if query:
        at.query_params.update(query)
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception
    return at


def rerun_until(at: AppTest, predicate, timeout: float = 30.0) -> AppTest:
    deadline = time.monotonic() + timeout
    while True:
        at.run()
        assert not at.exception, at.exception
        if predicate(at):
            return at
        if time.monotonic() > deadline:
            raise AssertionError("the page never reached the expected state")
        time.sleep(0.1)


def texts(elements) -> str:
    return "\n".join(e.value for e in elements)


def test_train_watch_stop_and_model_is_saved(env_dirs):
    at = open_page()
    assert at.radio(key="tr_source").value == "sample"  # no MNIST in the fresh data dir
    assert metric(at, "Training digits") == "4,000"
    assert at.image, "example digits are shown"
    at.selectbox(key="tr_preset").set_value("notebook").run()
    assert at.number_input(key="tr_lr").value == pytest.approx(0.1)
    assert at.checkbox(key="tr_full_batch").value is True
    at.number_input(key="tr_iterations").set_value(1_000_000).run()  # runs until stopped
    assert at.selectbox(key="tr_preset").value == "custom"
    at.button(key="tr_start").click().run()
    assert at.button(key="tr_start").disabled and not at.button(key="tr_stop").disabled
    job_id = at.query_params["job"]
    assert isinstance(job_id, str) and job_id.startswith("job-")

    at = rerun_until(at, lambda a: (metric(a, "Validation accuracy") or "–") != "–")
    first = metric(at, "Validation accuracy")
    assert first.endswith("%")
    assert len(at.get("vega_lite_chart")) == 2  # accuracy and loss
    text = at.get("progress")[0].proto.text
    assert "of 1,000,000" in text and "elapsed" in text and "left" in text
    at = rerun_until(at, lambda a: len(get_manager().get(job_id).snapshot().points) >= 3)

    at.button(key="tr_stop").click().run()
    at = rerun_until(at, lambda a: bool(a.success))
    assert "Stopped" in at.success[0].value and "Saved as" in at.success[0].value
    assert not at.button(key="tr_start").disabled and at.button(key="tr_stop").disabled
    store = ModelStore(env_dirs.models_dir)
    name = store.active_name()
    assert name and name in at.success[0].value
    table = at.dataframe[0].value
    assert list(table["Name"]) == [name] and table["Active"][0] == "✅"
    assert [b.proto.label for b in at.get("download_button")][:1] == ["Download model (.npz)"]
    meta = store.load(name)[1]
    assert meta["config"]["lr"] == pytest.approx(0.1) and meta["config"]["batch_size"] is None
    assert meta["history"] and meta["metrics"]["steps"] == meta["history"][-1]["step"]


def test_fast_preset_finishes_on_the_sample(env_dirs):
    at = open_page()
    at.selectbox(key="tr_preset").set_value("fast").run()
    assert at.toggle(key="tr_augment").value is True
    at.radio(key="tr_unit").set_value("epochs").run()
    at.number_input(key="tr_epochs").set_value(1.0).run()
    at.button(key="tr_start").click().run()
    at = rerun_until(at, lambda a: bool(a.success))
    assert "Finished" in at.success[0].value
    assert metric(at, "Validation accuracy").endswith("%")
    meta = ModelStore(env_dirs.models_dir).load_active()[1]
    assert meta["config"]["augment"] is True and meta["config"]["epochs"] == 1.0


def test_malformed_csv_shows_an_error_and_the_page_still_works(env_dirs):
    at = open_page()
    at.radio(key="tr_source").set_value("csv").run()
    assert at.button(key="tr_start").disabled  # nothing to train on yet
    at.file_uploader(key="tr_upload").set_value(("digits.csv", b"label,pixel0\n3,abc\n", "text/csv")).run()
    assert not at.exception
    assert at.error and "digits.csv" in at.error[0].value
    assert at.button(key="tr_start").disabled
    at.radio(key="tr_source").set_value("sample").run()
    assert not at.error and not at.button(key="tr_start").disabled


def test_uploaded_csv_becomes_the_dataset(env_dirs):
    ds = load_sample()
    pixels = np.rint(ds.X_train[:300] * 255).astype(np.uint8)
    buf = io.StringIO()
    np.savetxt(buf, np.column_stack([ds.y_train[:300], pixels]), fmt="%d", delimiter=",")
    at = open_page()
    at.radio(key="tr_source").set_value("csv").run()
    at.file_uploader(key="tr_upload").set_value(("mine.csv", buf.getvalue().encode(), "text/csv")).run()
    assert not at.error
    assert metric(at, "Training digits") == "270" and metric(at, "Validation digits") == "30"


def test_huge_learning_rate_diverges_and_keeps_the_previous_model(trained_model_store):
    at = open_page()
    at.selectbox(key="tr_preset").set_value("notebook").run()
    at.number_input(key="tr_lr").set_value(100.0).run()
    at.button(key="tr_start").click().run()
    at = rerun_until(at, lambda a: bool(a.error))
    message = at.error[0].value
    assert "diverged" in message and "learning rate" in message and "try 10" in message
    assert "previous model stays active" in texts(at.info)
    assert trained_model_store.active_name() == "test-model"
    assert trained_model_store.names() == ["test-model"]
    at.button(key="tr_keep").click().run()
    assert not at.exception
    kept = trained_model_store.active_name()
    assert kept != "test-model" and len(trained_model_store.names()) == 2
    assert "is now active" in texts(at.success)


def test_bad_hidden_layers_are_explained(env_dirs):
    at = open_page()
    at.text_input(key="tr_hidden").set_value("256, lots").run()
    at.button(key="tr_start").click().run()
    assert "'lots' is not a whole number" in at.error[0].value
    assert get_manager().active_jobs() == []


def test_saved_models_rename_activate_delete(trained_model_store, env_dirs):
    store = trained_model_store
    extra = TrainingJob(TrainConfig(hidden=(8,), iterations=20, epochs=None, batch_size=64), load_sample(),
                        store=store, name="second", activate=False, idle_timeout=None)
    extra.run()
    at = open_page()
    assert sorted(at.dataframe[0].value["Name"]) == ["second", "test-model"]
    assert at.selectbox(key="tr_model_pick").value == "test-model"  # the active one
    at.selectbox(key="tr_model_pick").set_value("second").run()
    at.button(key="tr_activate").click().run()
    assert store.active_name() == "second"
    at.text_input(key="tr_rename_to").set_value("my best").run()
    at.button(key="tr_rename").click().run()
    assert store.active_name() == "my best" and "Renamed" in at.success[0].value
    at.text_input(key="tr_rename_to").set_value("../escape").run()
    at.button(key="tr_rename").click().run()
    assert "not a valid model name" in at.error[0].value
    at.selectbox(key="tr_model_pick").set_value("test-model").run()
    at.button(key="tr_delete").click().run()
    assert sorted(store.names()) == ["my best"] and not at.exception


def test_second_session_watches_and_queues_behind_a_running_training(env_dirs):
    other = get_manager().submit(TrainingJob(TrainConfig(hidden=(8,), iterations=5_000_000, epochs=None,
                                                         batch_size=64), load_sample(), save=False))
    at = open_page()
    assert "another tab or session" in texts(at.info)
    assert not at.button(key="tr_start").disabled and not at.button(key="tr_stop").disabled
    at.selectbox(key="tr_preset").set_value("notebook").run()
    at.button(key="tr_start").click().run()
    assert "Queued: number 1 in line" in texts(at.info)
    assert at.button(key="tr_start").disabled
    # a reload (new session) with ?job= reattaches to the queued job
    again = open_page({"job": at.query_params["job"]})
    assert "Queued: number 1 in line" in texts(again.info) and again.button(key="tr_start").disabled
    assert again.selectbox(key="tr_preset").value == "notebook"  # the knobs show the job's settings
    assert again.number_input(key="tr_lr").value == pytest.approx(0.1)
    other.request_stop()
    at = rerun_until(at, lambda a: "Queued" not in texts(a.info))
    assert get_manager().get(at.query_params["job"]).snapshot().status in ("running", "finished")


def test_labelled_drawings_can_join_the_training_data(env_dirs):
    from scratchnet.feedback import FeedbackStore

    ds = load_sample()
    drawings = FeedbackStore()  # data_dir()/drawings of this test
    for i in range(3):
        drawings.add(ds.X_val[i].reshape(28, 28), int(ds.y_val[i]))
    at = open_page()
    assert "Add my 3 labelled drawings" in at.toggle(key="tr_drawings").label
    at.toggle(key="tr_drawings").set_value(True).run()
    at.selectbox(key="tr_preset").set_value("notebook").run()
    at.number_input(key="tr_iterations").set_value(20).run()
    at.button(key="tr_start").click().run()
    at = rerun_until(at, lambda a: bool(a.success))
    meta = ModelStore(env_dirs.models_dir).load_active()[1]
    assert meta["dataset"]["name"] == "sample+drawings" and meta["dataset"]["n_train"] == 4003


def _fake_mnist(directory: Path, n_train: int = 200, n_test: int = 50) -> dict[str, str]:
    """Tiny well-formed MNIST files (.gz) served by a local mirror; returns their checksums."""
    import gzip
    import hashlib
    import struct

    rng = np.random.default_rng(0)
    checksums = {}
    for stem, n in (("train", n_train), ("t10k", n_test)):
        images = struct.pack(">IIII", 0x803, n, 28, 28) + rng.integers(0, 256, n * 784, dtype=np.uint8).tobytes()
        labels = struct.pack(">II", 0x801, n) + (np.arange(n) % 10).astype(np.uint8).tobytes()
        for kind, raw in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{stem}-{kind}-ubyte"
            (directory / f"{name}.gz").write_bytes(gzip.compress(raw))
            checksums[name] = hashlib.sha256(raw).hexdigest()
    return checksums


@pytest.fixture
def local_mirror(tmp_path, monkeypatch):
    import functools
    import http.server
    import threading

    import scratchnet.datasets as datasets

    served = tmp_path / "mirror"
    served.mkdir()
    monkeypatch.setattr(datasets, "MNIST_SHA256", _fake_mnist(served))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a, **k: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(datasets, "MNIST_MIRRORS", (f"http://127.0.0.1:{server.server_address[1]}/",))
    yield
    server.shutdown()
    server.server_close()


def test_mnist_download_then_train_on_it(env_dirs, local_mirror):
    at = open_page()
    at.radio(key="tr_source").set_value("mnist").run()
    assert "not downloaded yet" in texts(at.info)
    assert metric(at, "Training digits") == "4,000"  # the sample stands in meanwhile
    at.button(key="tr_download").click().run()
    assert not at.exception and not at.error
    assert metric(at, "Training digits") == "180" and metric(at, "Test digits") == "50"
    from scratchnet.datasets import mnist_available

    assert mnist_available()
    at.selectbox(key="tr_preset").set_value("notebook").run()
    at.number_input(key="tr_iterations").set_value(20).run()
    at.button(key="tr_start").click().run()
    at = rerun_until(at, lambda a: bool(a.success))
    assert "test accuracy" in at.success[0].value
    assert ModelStore(env_dirs.models_dir).load_active()[1]["dataset"]["n_test"] == 50


def test_mnist_download_failure_falls_back_to_the_sample(env_dirs, monkeypatch):
    import scratchnet.datasets as datasets

    monkeypatch.setattr(datasets, "MNIST_MIRRORS", ("http://127.0.0.1:9/",))  # nothing listens there
    at = open_page()
    at.radio(key="tr_source").set_value("mnist").run()
    at.button(key="tr_download").click().run()
    assert not at.exception
    assert "Could not download" in at.error[0].value and "bundled 5,000-digit sample instead" in at.error[0].value
    assert metric(at, "Training digits") == "4,000" and not at.button(key="tr_start").disabled


# --------------------------------------------------------------------------- the pure form helpers


def test_knobs_round_trip_every_preset():
    from scratchnet.training import PRESETS
    from scratchnet.ui import train_form as form

    for name, config in PRESETS.items():
        knobs = form.knobs_from_config(config)
        assert form.config_from_knobs(knobs) == config.replace(eval_every=None)
        assert form.matching_preset(knobs) == name
        assert form.matching_preset({**knobs, "lr": knobs["lr"] * 2}) == form.CUSTOM


def test_preset_labels_read_like_the_issue():
    from scratchnet.ui import train_form as form

    assert form.preset_label("notebook") == "Notebook (784-10-10, GD, lr 0.1, 500 iterations)"
    assert form.preset_label("fast").startswith("Fast (784-256-128-10, Adam, lr 0.001, 10 epochs")
    assert form.preset_label(form.CUSTOM) == "Custom"


def test_parse_hidden_and_config_errors():
    from scratchnet.errors import ConfigError
    from scratchnet.training import PRESETS
    from scratchnet.ui import train_form as form

    assert form.parse_hidden("256, 128") == (256, 128)
    assert form.parse_hidden(" 64 32;16 ") == (64, 32, 16)
    assert form.parse_hidden([10]) == (10,)
    for bad, msg in (("", "at least one"), ("12, 3.5", "'3.5' is not a whole number")):
        with pytest.raises(ConfigError, match=msg):
            form.parse_hidden(bad)
    knobs = form.knobs_from_config(PRESETS["fast"])
    with pytest.raises(ConfigError, match="learning rate"):
        form.config_from_knobs({**knobs, "lr": 5000.0})
    config = form.config_from_knobs({**knobs, "unit": "iterations", "iterations": 7, "full_batch": True})
    assert (config.iterations, config.epochs, config.batch_size) == (7, None, None)


def test_chart_columns_follow_point_fields():
    from scratchnet.ui import train_form as form
    from scratchnet.ui.worker import POINT_FIELDS

    assert POINT_FIELDS[:5] == ("step", "epoch", "loss", "train_accuracy", "val_accuracy")
    cols = form.chart_columns([(10, 0.5, 2.0, 0.3, 0.4, 1.0), (20, 1.0, 1.0, 0.6, None, 2.0)])
    assert cols == {"step": [10, 20], "loss": [2.0, 1.0], "Train": [0.3, 0.6], "Validation": [0.4, None]}
