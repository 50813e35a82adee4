"""The Train page through AppTest: train, watch, stop, save; bad uploads; divergence; model list.

``run_every`` does not tick in AppTest, so the tests rerun the page until the worker has
moved on (no timing assertions: they only wait for states).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from scratchnet.datasets import load_sample
from scratchnet.store import ModelStore
from scratchnet.ui.worker import TrainingJob, get_manager
from scratchnet.training import TrainConfig
from tools.testkit import metric, rerun_until

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
    from scratchnet.augment import parse_augment
    from scratchnet.training import PRESETS

    at = open_page()
    at.selectbox(key="tr_preset").set_value("fast").run()
    assert at.selectbox(key="tr_arch").value == "mlp"
    assert at.multiselect(key="tr_augment").value == list(parse_augment(PRESETS["fast"].augment))
    at.radio(key="tr_unit").set_value("epochs").run()
    at.number_input(key="tr_epochs").set_value(1.0).run()
    at.button(key="tr_start").click().run()
    at = rerun_until(at, lambda a: bool(a.success))
    assert "Finished" in at.success[0].value
    assert metric(at, "Validation accuracy").endswith("%")
    meta = ModelStore(env_dirs.models_dir).load_active()[1]
    assert meta["config"]["augment"] == PRESETS["fast"].augment and meta["config"]["epochs"] == 1.0
    assert at.dataframe[0].value["Network"][0] == "784-256-128-10"


def test_a_small_conv_net_from_the_custom_architecture_trains_and_is_saved(env_dirs):
    at = open_page()
    assert at.radio(key="tr_source").value == "sample"
    at.selectbox(key="tr_arch").set_value("custom").run()
    at.text_input(key="tr_layers").set_value("conv4-5, maxpool2, dense16").run()
    shown = texts(at.markdown)
    assert "28x28 → conv4-5 → maxpool2 → dense16 → 10" in shown and "12,834 parameters" in shown
    assert at.selectbox(key="tr_preset").value == "custom"
    at.multiselect(key="tr_augment").set_value([]).run()
    at.radio(key="tr_unit").set_value("iterations").run()
    at.number_input(key="tr_iterations").set_value(30).run()
    assert "Estimated training time" in texts(at.caption)
    at.button(key="tr_start").click().run()
    assert not at.error, texts(at.error)
    at = rerun_until(at, lambda a: bool(a.success), timeout=60)
    assert "Finished" in at.success[0].value and "Saved as" in at.success[0].value
    store = ModelStore(env_dirs.models_dir)
    net, meta = store.load_active()
    assert meta["architecture"] == "conv4-5,maxpool2,dense16" and "sizes" not in meta
    assert meta["config"]["layers"] == "conv4-5,maxpool2,dense16" and meta["config"]["augment"] == ""
    assert meta["source"] == "train-page" and meta["metrics"]["steps"] == 30
    assert not net.is_mlp and net.describe() == "28x28 → conv4-5 → maxpool2 → dense16 → 10"
    assert at.dataframe[0].value["Network"][0] == net.describe()


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


def test_bad_architecture_is_explained_at_start(env_dirs):
    at = open_page()
    at.selectbox(key="tr_arch").set_value("custom").run()
    assert at.text_input(key="tr_layers").value == "dense256,dense128"  # the SPEC it was, to edit
    at.text_input(key="tr_layers").set_value("256, lots").run()
    assert "'lots'" in texts(at.caption)  # said next to the field already
    at.button(key="tr_start").click().run()
    assert len(at.error) == 1
    message = at.error[0].value
    assert "Layer 2 of the architecture, 'lots', is not understood" in message and "\n" not in message
    assert get_manager().active_jobs() == []
    at.selectbox(key="tr_arch").set_value("notebook").run()  # a named choice fixes it
    assert not at.error and at.selectbox(key="tr_preset").value == "custom"
    assert "784-10-10" in texts(at.markdown)


def test_architecture_choices_fill_in_their_spec_and_presets_pick_theirs(env_dirs):
    from scratchnet.ui import train_form as form

    at = open_page()
    assert at.selectbox(key="tr_arch").value == "mlp"  # the fast preset
    at.selectbox(key="tr_preset").set_value("best").run()
    assert at.selectbox(key="tr_arch").value == "conv"
    assert "215,370 parameters" in texts(at.markdown)
    assert "Estimated training time" in texts(at.caption)
    at.selectbox(key="tr_preset").set_value("notebook").run()
    assert at.selectbox(key="tr_arch").value == "notebook"
    at.selectbox(key="tr_arch").set_value("conv").run()
    assert at.selectbox(key="tr_preset").value == "custom"
    at.selectbox(key="tr_arch").set_value("custom").run()
    assert at.text_input(key="tr_layers").value == form.ARCHITECTURES["conv"][1]


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


def test_a_fine_tuning_in_another_session_is_called_one(env_dirs):
    from scratchnet.ui.worker import FinetuneJob

    ds = load_sample()
    base = TrainingJob(TrainConfig(hidden=(8,), iterations=20, epochs=None, batch_size=64), ds, save=False)
    base.run()
    X, y = ds.X_val[:4], ds.y_val[:4]
    job = get_manager().submit(FinetuneJob(base.net, X, y, ds, steps=1_000, folds=2, save=False))
    try:
        at = rerun_until(open_page(), lambda a: "teaching a model their handwriting" in texts(a.info))
        assert "A training started" not in texts(at.info)
    finally:
        job.request_stop()
        job.done.wait(10)


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

    assert set(form.PRESET_ORDER) == set(PRESETS)  # notebook, fast and best are all offered
    for name, config in PRESETS.items():
        knobs = form.knobs_from_config(config)
        assert form.config_from_knobs(knobs) == config.replace(eval_every=None)
        assert form.matching_preset(knobs) == name
        assert form.matching_preset({**knobs, "lr": knobs["lr"] * 2}) == form.CUSTOM
        # the unused one of iterations / epochs, the SPEC's spelling, the parts' order: same preset
        spaced = knobs["layers"].replace(",", ", ").upper()
        unused = {"epochs": 3.0} if knobs["unit"] == "iterations" else {"iterations": 7}
        assert form.matching_preset({**knobs, **unused, "layers": spaced,
                                     "augment": knobs["augment"][::-1]}) == name
        assert form.architecture_choice(config.layers) in form.ARCHITECTURES


def test_preset_labels_and_help_read_like_the_issue():
    from scratchnet.ui import train_form as form

    assert form.preset_label("notebook") == "Notebook (784-10-10, GD, lr 0.1, 500 iterations)"
    assert form.preset_label("fast").startswith("Fast (784-256-128-10, Adam, lr 0.001, 10 epochs")
    assert form.preset_label("best").startswith("Best (28x28 → conv16-5 → maxpool2")
    assert form.preset_label(form.CUSTOM) == "Custom"
    text = form.preset_help()
    assert "drawings best" in text and "several minutes" in text and "before a demo" in text


def test_architecture_field_helpers():
    from scratchnet.architecture import SpecError
    from scratchnet.ui import train_form as form

    assert [form.architecture_label(c) for c in [*form.ARCHITECTURES, form.CUSTOM]] == [
        "Notebook 784-10-10", "MLP 256-128", "Conv net", "Custom"]
    assert form.parse_layers(" conv8-3 , maxpool2,64 ") == "conv8-3,maxpool2,dense64"
    assert form.parse_layers("0" * 5000 + "16") == "dense16"  # leading zeros are only zeros
    assert form.architecture_choice("256 128") == "mlp" and form.architecture_choice("dense10") == "notebook"
    assert form.architecture_choice("dense11") == form.CUSTOM == form.architecture_choice("nonsense")
    s = form.network_summary("dense256,dense128")
    assert (s.describe, s.n_params, s.macs_per_row) == ("784-256-128-10", 235_146, 234_752)
    conv = form.network_summary(form.ARCHITECTURES["conv"][1])
    assert conv.describe == "28x28 → conv16-5 → maxpool2 → conv32-5 → maxpool2 → dense128 → 10"
    assert conv.n_params == 215_370
    assert form.describe_shape("conv4-5,maxpool2,dense16") == "28x28 → conv4-5 → maxpool2 → dense16 → 10"
    for bad, msg in (("", "empty"), ("12, 3.5", "'3.5', is not understood"), ("9" * 5000, "far too large"),
                     ("conv8-4", "must be odd"), ("dense8,conv8-3", "comes after a dense layer")):
        with pytest.raises(SpecError, match=msg):
            form.parse_layers(bad)


def test_augmentation_parts_are_read_from_the_augment_module(monkeypatch):
    from scratchnet import augment
    from scratchnet.training import PRESETS
    from scratchnet.ui import train_form as form

    assert form.augment_parts() == tuple(augment.AUGMENT_PARTS)
    monkeypatch.setattr(augment, "AUGMENT_PARTS", (*augment.AUGMENT_PARTS, "wobble"))
    assert form.augment_parts()[-1] == "wobble" and form.augment_label("wobble") == "Wobble"
    knobs = form.knobs_from_config(PRESETS["fast"])
    assert form.config_from_knobs({**knobs, "augment": []}).augment == ""
    assert form.config_from_knobs({**knobs, "augment": ["affine"]}).augment == "affine"


def test_time_estimate_is_a_pure_function_of_the_config():
    from scratchnet.training import PRESETS
    from scratchnet.ui import train_form as form

    nb, fast, best = (PRESETS[n] for n in ("notebook", "fast", "best"))
    mnist = dict(n_train=59_000, n_val=1_000, n_test=10_000)
    # within a factor ~2 of what this machine measured (README: notebook 16 s, fast ~14 s;
    # best: ~80 ms a step of 128 conv rows, 5,532 steps)
    assert 8 < form.estimate_seconds(nb, **mnist) < 35
    assert 7 < form.estimate_seconds(fast, **mnist) < 30
    assert 4 * 60 < form.estimate_seconds(best, **mnist) < 15 * 60
    assert form.estimate_seconds(best, 4_000, 1_000) < form.estimate_seconds(best, **mnist) / 10
    # linear in the steps, more for augmentation, more for validation passes
    one, two = fast.replace(epochs=1), fast.replace(epochs=2)
    base = form.estimate_seconds(one.replace(augment=""), 59_000, 0, eval_every=100)
    assert form.estimate_seconds(two.replace(augment=""), 59_000, 0, eval_every=100) == pytest.approx(2 * base)
    assert form.estimate_seconds(one, 59_000, 0, eval_every=100) > base
    assert form.estimate_seconds(one.replace(augment=""), 59_000, 1_000, eval_every=100) > base
    assert form.format_estimate(3) == "a few seconds"
    assert form.format_estimate(21) == "about 20 s" and form.format_estimate(54) == "about 55 s"
    assert form.format_estimate(170) == "about 3 min" and form.format_estimate(494) == "about 8 min"
    assert form.format_estimate(3569) == "about 59 min" and form.format_estimate(3580) == "about 1 h"
    assert form.format_estimate(4200) == "about 1 h 10 min"


def test_config_errors_from_knobs():
    from scratchnet.errors import ConfigError
    from scratchnet.training import PRESETS
    from scratchnet.ui import train_form as form

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
