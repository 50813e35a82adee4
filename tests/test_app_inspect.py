"""The Inspect page through Streamlit's AppTest, with a small model trained on the bundled sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from scratchnet import inspect as ins
from scratchnet.datasets import load_sample
from tools.testkit import metric

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "3_Inspect.py")


def open_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [lt.value for lt in at.latex]
    return "\n".join(parts)


@pytest.fixture(scope="module")
def sample():
    return load_sample()


def test_no_model_points_to_train_page(env_dirs):
    # Run through the app's entry point so st.page_link can resolve pages/1_Train.py.
    at = AppTest.from_file(str(Path(PAGE).parents[1] / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/3_Inspect.py").run()
    assert not at.exception, at.exception
    assert not at.error
    assert any("no trained model" in i.value.lower() for i in at.info)
    assert [link.proto.page for link in at.main.get("page_link")] == ["Train"]
    assert not at.tabs


def test_page_shows_evaluation_of_the_active_model(trained_model_store, sample):
    at = open_page()
    assert not at.error
    net, _ = trained_model_store.load("test-model")
    ev = ins.evaluate(net, sample.X_val, sample.y_val, "validation")
    # the page's numbers are the model's real numbers on the validation split (no test set)
    assert metric(at, "Accuracy") == f"{ev.accuracy:.2%}"
    assert metric(at, "Mistakes") == f"{ev.n_wrong:,} of {ev.n:,}"
    assert "validation split" in texts(at)
    labels = [t.label for t in at.tabs]
    for word in ("Evaluation", "Mistakes", "Weights", "Activations", "How it works", "Training"):
        assert any(word in lbl for lbl in labels), labels
    # the default confusion cell is the most frequent confusion, with that many digits
    t, p, count = ev.worst_confusions(1)[0]
    assert at.selectbox(key="inspect_cm_true").value == t
    assert at.selectbox(key="inspect_cm_pred").value == p
    assert f"{count} digits labelled {t} were read as {p}" in texts(at)


def test_choosing_a_cell_and_filtering_mistakes(trained_model_store, sample):
    at = open_page()
    net, _ = trained_model_store.load("test-model")
    ev = ins.evaluate(net, sample.X_val, sample.y_val, "validation")
    at.selectbox(key="inspect_cm_true").set_value(4)
    at.selectbox(key="inspect_cm_pred").set_value(4).run()
    assert not at.exception
    n44 = int(ev.confusion[4, 4])
    assert f"{n44} digits labelled 4 were read as 4 (correct)" in texts(at)

    at.selectbox(key="inspect_mis_true").set_value(7).run()
    assert f"{len(ev.mistakes(true=7)):,} mistakes match." in texts(at)
    at.selectbox(key="inspect_mis_pred").set_value(1).run()
    assert f"{len(ev.mistakes(true=7, pred=1)):,} mistakes match." in texts(at)


def test_weights_tab_counts_dead_units(trained_model_store, sample):
    at = open_page()
    net, _ = trained_model_store.load("test-model")
    dead = ins.dead_units(net, sample.X_val)[0]
    t = texts(at)
    if dead.any():
        assert f"{int(dead.sum())} of {len(dead)}" in t
    else:
        assert "no dead units" in t


def test_following_a_digit_through_forward_and_backward(trained_model_store, sample):
    at = open_page()
    net, meta = trained_model_store.load("test-model")
    at.number_input(key="inspect_index").set_value(17).run()
    assert not at.exception
    x, label = sample.X_val[17], int(sample.y_val[17])
    w = ins.walkthrough(net, x, label, lr=meta["config"]["lr"])
    t = texts(at)
    assert f"validation digit #17" in t
    assert f"**L = {w.loss:.4g}**" in t
    assert f"from **{w.loss:.4g}** to **{w.loss_after:.4g}**" in t
    assert any(r"\theta := \theta - \alpha" in lt.value for lt in at.latex)
    assert any("A^{[0]} W^{[1]}" in lt.value for lt in at.latex)  # our row layout, beside the notebook's
    assert "batch" in t and "row" in t
    # the gradient-norm table holds Network.backward's norms
    frames = [df.value for df in at.dataframe]
    grad_df = next(f for f in frames if "gradient" in f.columns)
    assert grad_df["gradient"].tolist() == ["dW1", "db1", "dW2", "db2"]
    np.testing.assert_allclose(grad_df["norm"], [n for _, _, n in w.grad_norms()], rtol=1e-5)


def test_random_mistake_button_picks_a_mistake(trained_model_store, sample):
    at = open_page()
    net, _ = trained_model_store.load("test-model")
    wrong = set(ins.evaluate(net, sample.X_val, sample.y_val).mistakes().tolist())
    at.sidebar.button[0].click().run()
    i = at.number_input(key="inspect_index").value
    assert i in wrong


def test_follows_the_last_drawing(trained_model_store, sample):
    at = AppTest.from_file(PAGE, default_timeout=60)
    drawing = sample.X_val[3].reshape(28, 28)
    at.session_state["last_drawing"] = drawing
    at.run()
    assert not at.exception
    at.radio(key="inspect_source").set_value("drawing").run()
    net, _ = trained_model_store.load("test-model")
    pred = int(net.predict(drawing)[0])
    assert at.selectbox(key="inspect_drawing_label").value == pred  # starts from the model's reading
    assert "your last drawing" in texts(at)


def test_training_tab_shows_history_and_config(trained_model_store):
    at = open_page()
    _, meta = trained_model_store.load("test-model")
    assert metric(at, "Steps") == f"{meta['metrics']['steps']:,}"
    cfg = next(df.value for df in at.dataframe if "setting" in df.value.columns)
    assert dict(zip(cfg["setting"], cfg["value"]))["hidden"] == "32"


def test_switching_models_in_the_sidebar(trained_model_store, sample):
    net, meta = trained_model_store.load("test-model")
    other = net.copy()
    other.weights[-1][:] = 0  # a model that always says the same thing: accuracy = that digit's share
    other.biases[-1][:] = np.arange(10, dtype=np.float32)
    trained_model_store.save(other, meta, name="constant-nine")
    at = open_page()
    assert at.selectbox(key="inspect_model").value == "test-model"  # the active one
    at.selectbox(key="inspect_model").set_value("constant-nine").run()
    assert not at.exception
    assert metric(at, "Accuracy") == f"{(sample.y_val == 9).mean():.2%}"
    assert trained_model_store.active_name() == "test-model"  # only this page's view changed


def test_weights_tab_can_show_what_training_changed(trained_model_store):
    at = open_page()
    net, meta = trained_model_store.load("test-model")
    w_scale = ins.weight_picture(net.weights[0]).vmax
    assert f"{w_scale:.3g} or more" in texts(at)
    at.radio(key="inspect_weights_show").set_value("change").run()
    assert not at.exception
    start = ins.initial_network(net, meta)
    d_scale = ins.weight_picture(net.weights[0] - start.weights[0]).vmax
    t = texts(at)
    assert "784 incoming weight changes" in t and f"{d_scale:.3g} or more" in t


def test_cell_choice_follows_the_model(trained_model_store, sample):
    net, meta = trained_model_store.load("test-model")
    other = net.copy()
    other.weights[-1][:, 8] += 0.5  # leans towards 8: a different most frequent confusion
    trained_model_store.save(other, meta, name="leans-eight")
    at = open_page()
    at.selectbox(key="inspect_model").set_value("leans-eight").run()
    ev = ins.evaluate(other, sample.X_val, sample.y_val)
    t, p, _ = ev.worst_confusions(1)[0]
    first = ins.evaluate(net, sample.X_val, sample.y_val).worst_confusions(1)[0]
    assert (t, p) != first[:2]  # otherwise this test could not tell
    assert (at.selectbox(key="inspect_cm_true").value, at.selectbox(key="inspect_cm_pred").value) == (t, p)


def _write_idx_gz(path: Path, arr: np.ndarray) -> None:
    """A minimal IDX file (uint8) as MNIST ships them, gzipped."""
    import gzip
    import struct

    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(arr, np.uint8).tobytes())


@pytest.fixture
def small_mnist(trained_model_store, env_dirs):
    """A tiny stand-in for MNIST in the data dir (real digits from the bundled sample)."""
    with np.load(Path(ins.__file__).parent / "data" / "mnist_sample.npz") as z:
        images, labels = z["images"], z["labels"]
    d = env_dirs.data_dir / "mnist"
    d.mkdir()
    _write_idx_gz(d / "train-images-idx3-ubyte.gz", images[:1500].reshape(-1, 28, 28))
    _write_idx_gz(d / "train-labels-idx1-ubyte.gz", labels[:1500])
    _write_idx_gz(d / "t10k-images-idx3-ubyte.gz", images[4500:].reshape(-1, 28, 28))
    _write_idx_gz(d / "t10k-labels-idx1-ubyte.gz", labels[4500:])
    return images[4500:].astype(np.float32) / 255, labels[4500:]


def test_evaluates_on_the_test_set_of_the_data_the_model_came_from(trained_model_store, small_mnist):
    X_test, y_test = small_mnist
    net, meta = trained_model_store.load("test-model")
    # the sample-trained model starts on the sample, and can be switched to the MNIST test set
    at = open_page()
    assert at.selectbox(key="inspect_eval_kind").value == "sample"
    at.selectbox(key="inspect_eval_kind").set_value("mnist").run()
    assert not at.exception
    ev = ins.evaluate(net, X_test, y_test)
    assert metric(at, "Mistakes") == f"{ev.n_wrong:,} of 500"
    assert "MNIST test set (500 digits)" in texts(at)
    # an MNIST-trained model starts on the MNIST test set; on the sample it is warned about
    trained_model_store.save(net, {**meta, "dataset": {**meta["dataset"], "name": "mnist"}},
                             name="mnist-model")
    trained_model_store.set_active("mnist-model")
    at = open_page()
    assert at.selectbox(key="inspect_eval_kind").value == "mnist"
    at.selectbox(key="inspect_eval_kind").set_value("sample").run()
    assert "optimistic" in texts(at)


@pytest.mark.parametrize("sizes, activation", [((784, 10), "relu"), ((784, 12, 6, 10), "sigmoid")])
def test_unusual_shapes_render_without_errors(trained_model_store, sizes, activation):
    _, meta = trained_model_store.load("test-model")
    from scratchnet.network import Network

    net = Network(sizes, activation=activation, init="xavier", seed=1)
    trained_model_store.save(net, {**meta, "config": {}}, name="odd")
    trained_model_store.set_active("odd")
    at = open_page()
    assert not at.exception and not at.error
    at.radio(key="inspect_weights_show").set_value("change").run()  # no config: falls back to W
    assert not at.exception
    assert "cannot be rebuilt" in texts(at)


def test_notebook_init_models_open_on_what_training_changed(trained_model_store):
    from scratchnet.training import PRESETS, fit

    sample = load_sample()
    config = PRESETS["notebook"].replace(iterations=5)
    net, _ = fit(config, sample.X_train[:500], sample.y_train[:500])
    _, meta = trained_model_store.load("test-model")
    trained_model_store.save(net, {**meta, "config": config.to_dict()}, name="notebook-like")
    at = open_page()
    assert at.radio(key="inspect_weights_show").value == "weights"  # the He-initialised test model
    at.selectbox(key="inspect_model").set_value("notebook-like").run()
    assert at.radio(key="inspect_weights_show").value == "change"
    assert "784 incoming weight changes" in texts(at)


def test_follows_a_drawing_labelled_on_the_draw_page(trained_model_store, sample):
    from scratchnet.feedback import FeedbackStore

    store = FeedbackStore()  # data_dir()/drawings of this test's env
    store.add(sample.X_val[5].reshape(28, 28), label=int(sample.y_val[5]))
    store.add(sample.X_val[6].reshape(28, 28), label=int(sample.y_val[6]))  # the newest
    at = open_page()
    at.radio(key="inspect_source").set_value("labelled").run()
    assert not at.exception
    net, meta = trained_model_store.load("test-model")
    x = np.rint(sample.X_val[6] * 255) / 255  # stored as 8-bit PNG
    w = ins.walkthrough(net, x, int(sample.y_val[6]), lr=meta["config"]["lr"])
    t = texts(at)
    assert "labelled drawing #0" in t and f"**L = {w.loss:.4g}**" in t
