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
    assert "validation digit #17" in t
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


# --------------------------------------------------------------------------- a convolutional model

CONV_SPEC = "conv4-5,maxpool2,dense16"


@pytest.fixture(scope="module")
def _conv_model_dir(tmp_path_factory):
    """A small conv net trained on the bundled sample (about a second), saved in a store once."""
    from scratchnet.store import ModelStore
    from scratchnet.training import TrainConfig, run

    result = run(TrainConfig(layers=CONV_SPEC, iterations=30, batch_size=64, seed=0), load_sample())
    directory = tmp_path_factory.mktemp("conv-model")
    store = ModelStore(directory)
    store.save(result.net, result.metadata, name="conv-model")
    store.set_active("conv-model")
    return directory


@pytest.fixture
def conv_store(env_dirs, _conv_model_dir):
    """This test's models dir holding the conv model, active (and nothing else)."""
    import shutil

    from scratchnet.store import ModelStore

    shutil.copytree(_conv_model_dir, env_dirs.models_dir, dirs_exist_ok=True)
    return ModelStore(env_dirs.models_dir)


def tab(at: AppTest, word: str):
    return next(t for t in at.tabs if word in t.label)


def tab_texts(block) -> str:
    parts = [m.value for m in block.markdown] + [c.value for c in block.caption]
    return "\n".join(parts + [lt.value for lt in block.latex])


def image_captions(block) -> list[str]:
    return [c for im in block.get("image") for c in im.captions]


def test_conv_model_header_evaluation_and_training_tab(conv_store, sample):
    at = open_page()
    assert not at.exception and not at.error
    net, meta = conv_store.load("conv-model")
    assert not net.is_mlp
    assert f"Model **conv-model**: {net.describe()}" in texts(at)
    ev = ins.evaluate(net, sample.X_val, sample.y_val, "validation")
    assert metric(at, "Accuracy") == f"{ev.accuracy:.2%}"
    training = tab(at, "Training")
    assert f"`{CONV_SPEC}`" in tab_texts(training) and meta["architecture"] == CONV_SPEC
    cfg = next(df.value for df in training.dataframe if "setting" in df.value.columns)
    cfg = dict(zip(cfg["setting"], cfg["value"]))
    assert cfg["layers"] == CONV_SPEC and cfg["batch_size"] == "64"


def test_conv_weights_tab_draws_the_filters_and_channel_activity(conv_store, sample):
    at = open_page()
    net, meta = conv_store.load("conv-model")
    weights = tab(at, "Weights")
    assert image_captions(weights) == ["The 4 filters of conv4-5, row by row"]
    a = ins.analyse(net, sample.X_val, sample.y_val)
    t = tab_texts(weights)
    assert "4 filters: its 5×5 weights" in t
    assert f"full colour = {a.weights.vmax:.3g} or more" in t
    assert f"layer 1 (conv4-5): {a.activity[0].n_dead} of 4" in t
    assert f"layer 2 (dense16): {a.activity[1].n_dead} of 16" in t
    table = next(df.value for df in weights.dataframe if "kind" in df.value.columns)
    assert table["kind"].tolist() == ["convolution: channels", "dense: units"]
    assert table["units"].tolist() == [4, 16]
    assert table["dead"].tolist() == [x.n_dead for x in a.activity]
    # what training changed, drawn as filters too
    at.radio(key="inspect_weights_show").set_value("change").run()
    assert not at.exception and not at.error
    start = ins.initial_network(net, meta)
    change = ins.filter_picture(net.weights[0] - start.weights[0])
    assert "5×5 weight changes" in texts(at) and f"{change.vmax:.3g} or more" in texts(at)


def test_conv_activations_tab_shows_feature_maps_of_the_chosen_digit(conv_store, sample):
    at = open_page()
    at.number_input(key="inspect_index").set_value(7).run()
    assert not at.exception and not at.error
    net, _ = conv_store.load("conv-model")
    x = sample.X_val[7]
    acts = tab(at, "Activations")
    captions = image_captions(acts)
    maps = ins.feature_maps(net, x)
    for fm in maps:
        white = ins.feature_map_picture(fm.maps).vmax
        assert f"{fm.name}: 4 channels of {fm.maps.shape[1]}×{fm.maps.shape[2]} (white = {white:.3g})" in captions
    assert [m.name for m in maps] == ["conv4-5 + relu", "maxpool2"]
    t = tab_texts(acts)
    assert "Feature maps" in t and "validation digit #7" in " ".join(captions)
    dense = ins.hidden_outputs(net, x)[1]
    assert f"Layer 2, dense16 (relu, 16 units): {int((dense.a > 0).sum())} active" in t
    c = ins.contributions(net, x)
    assert f"plus the bias {c.bias:+.3f} that is the logit {c.logit:+.3f}" in t
    why = next(df.value for df in acts.dataframe if "a × w" in df.value.columns)
    np.testing.assert_allclose(why["a × w"], c.values[np.concatenate(c.top(5))], rtol=1e-6)


def test_conv_how_it_works_writes_the_convolution_as_sum_and_matrix_product(conv_store, sample):
    at = open_page()
    net, meta = conv_store.load("conv-model")
    x, label = sample.X_val[0], int(sample.y_val[0])
    how = tab(at, "How it works")
    latex = "\n".join(lt.value for lt in how.latex)
    md = tab_texts(how)
    ex = ins.conv_example(net, x)  # by default: the strongest response
    i, j = ex.pos
    assert f"**Filter {ex.filter} at output pixel ({i}, {j})**" in md
    assert r"z_{i,j,f} = b_f + \sum_{d_i=0}^{4}" in latex
    assert f"z_{{{i},{j},{ex.filter}}} = {ex.bias:.4f} + {float(ex.products.sum()):.4f} = {ex.z:.4f}" in latex
    assert f"= {ex.a:.4f}" in latex
    # the window, the kernel and the products, as tables with the model's numbers
    frames = [df.value for df in how.dataframe]
    np.testing.assert_allclose(frames[0].to_numpy(), np.round(ex.window, 3), atol=1e-6)
    np.testing.assert_allclose(frames[1].to_numpy(), np.round(ex.kernel, 3), atol=1e-6)
    np.testing.assert_allclose(frames[2].to_numpy(), np.round(ex.products, 3), atol=1e-6)
    # im2col: the shapes, row r of cols times column f of the kernel matrix
    assert "cols has shape (784, 25): one row per output pixel" in md
    assert "has shape (25, 4): one column per filter" in md
    assert "Row r of cols times column f of W, plus b_f, is z" in md
    assert r"(784 \times 25)\,(25 \times 4)" in latex
    dot = float(ex.cols_row @ ex.kernel_column)
    assert f"r = i \\cdot 28 + j = {i} \\cdot 28 + {j} = {ex.row}" in latex
    assert f"= {dot:.4f} + {ex.bias:.4f} = {ex.z:.4f}" in latex
    line = next(f for f in frames if f"cols[{ex.row}, k]" in f.index)
    np.testing.assert_allclose(line.loc[f"cols[{ex.row}, k]"], np.round(ins.im2col(x, 5)[ex.row], 3), atol=1e-6)
    np.testing.assert_allclose(line.loc[f"W[k, {ex.filter}]"], np.round(net.layers[0].W[:, :, 0, ex.filter].ravel(), 3), atol=1e-6)
    # forward through the layers with shapes, then loss, backward and the update
    steps = next(f for f in frames if "output shape" in f.columns)
    assert steps["layer"].tolist() == ["conv4-5", "maxpool2", "relu", "flatten", "dense16", "relu", "dense10"]
    assert steps["output shape"].tolist() == ["28×28×4", "14×14×4", "14×14×4", "784", "16", "16", "10"]
    w = ins.layer_walkthrough(net, x, label, lr=meta["config"]["lr"])
    assert f"**L = {w.loss:.4g}**" in md and f"from **{w.loss:.4g}** to **{w.loss_after:.4g}**" in md
    grads = next(f for f in frames if "gradient" in f.columns)
    assert grads["layer"].tolist() == ["conv4-5", "conv4-5", "dense16", "dense16", "dense10", "dense10"]
    np.testing.assert_allclose(grads["norm"], [n for *_, n in w.grad_norms()], rtol=1e-5)


def test_conv_how_it_works_follows_a_chosen_filter_and_pixel(conv_store, sample):
    at = open_page()
    net, _ = conv_store.load("conv-model")
    x = sample.X_val[0]
    at.selectbox(key="inspect_conv_filter").set_value(2).run()
    ex = ins.conv_example(net, x, filter=2)  # filter 2 where it responds most
    assert f"**Filter 2 at output pixel ({ex.pos[0]}, {ex.pos[1]})**, where filter 2 responds most" in texts(at)
    at.number_input(key="inspect_conv_row").set_value(0)
    at.number_input(key="inspect_conv_col").set_value(0).run()
    assert not at.exception and not at.error
    ex = ins.conv_example(net, x, filter=2, pos=(0, 0))
    latex = "\n".join(lt.value for lt in at.latex)
    assert f"z_{{0,0,2}} = {ex.bias:.4f} + {float(ex.products.sum()):.4f} = {ex.z:.4f}" in latex
    assert "r = i \\cdot 28 + j = 0 \\cdot 28 + 0 = 0" in latex
    window = next(df.value for df in tab(at, "How it works").dataframe)
    assert (window.to_numpy()[:2] == 0).all() and (window.to_numpy()[:, :2] == 0).all()  # the padding


def test_conv_model_follows_the_last_drawing(conv_store, sample):
    at = AppTest.from_file(PAGE, default_timeout=60)
    drawing = sample.X_val[3].reshape(28, 28)
    at.session_state["last_drawing"] = drawing
    at.run()
    at.radio(key="inspect_source").set_value("drawing").run()
    assert not at.exception and not at.error
    net, _ = conv_store.load("conv-model")
    assert "your last drawing" in " ".join(image_captions(tab(at, "Activations")))
    ex = ins.conv_example(net, drawing)
    assert f"= {ex.z:.4f}" in "\n".join(lt.value for lt in at.latex)


def test_switching_between_an_mlp_and_a_conv_model(trained_model_store, _conv_model_dir):
    import shutil

    shutil.copy(_conv_model_dir / "conv-model.npz", trained_model_store.directory / "conv-model.npz")
    at = open_page()
    assert at.selectbox(key="inspect_model").value == "test-model"
    at.selectbox(key="inspect_model").set_value("conv-model").run()
    assert not at.exception and not at.error
    assert "Feature maps" in texts(at)
    at.selectbox(key="inspect_model").set_value("test-model").run()
    assert not at.exception and not at.error
    assert "Feature maps" not in texts(at) and any("A^{[0]} W^{[1]}" in lt.value for lt in at.latex)


@pytest.mark.parametrize("spec, activation", [
    ("conv3-3", "relu"),  # no pooling, no dense hidden layer: the logit is a sum over features
    ("conv2-3,conv3-3,maxpool2", "tanh"),  # signed feature maps, two convolutions in a row
    ("maxpool2,dense8", "sigmoid"),  # no convolution at all, yet not a perceptron
])
def test_unusual_conv_shapes_render_without_errors(env_dirs, spec, activation):
    from scratchnet.store import ModelStore
    from scratchnet.training import TrainConfig, build_network

    config = TrainConfig(layers=spec, activation=activation, iterations=1, seed=3)
    net = build_network(config)
    store = ModelStore(env_dirs.models_dir)
    store.save(net, {"config": config.to_dict(), "dataset": {"name": "sample"}}, name="odd-conv")
    store.set_active("odd-conv")
    at = open_page()
    assert not at.exception and not at.error
    assert net.describe() in texts(at)
    if net.layers[0].kind == "conv2d":
        at.radio(key="inspect_weights_show").set_value("change").run()
        assert not at.exception and not at.error
        assert "cols has shape (784, 9): one row per output pixel" in texts(at)
    else:  # nothing to draw, nothing to follow pixel by pixel: said, not crashed
        infos = "\n".join(i.value for i in at.info)
        assert "cannot be drawn" in infos and "first layer is not a convolution" in infos
        activity = next(df.value for df in at.dataframe if "kind" in df.value.columns)
        assert activity["name"].tolist() == ["dense8"]  # the unit activity is still shown


def test_training_tab_of_a_personal_model_shows_its_base_and_drawings(trained_model_store, sample):
    from scratchnet import personal

    base, base_meta = trained_model_store.load("test-model")
    X, y = sample.X_val[:6], sample.y_val[:6].astype(np.int64)
    result = personal.finetune(base, X, y, sample, base_meta=base_meta, base_name="test-model", steps=20)
    assert not result.refused
    name = personal.personal_name("test-model")
    trained_model_store.save(result.net, result.metadata, name=name)
    at = open_page()
    at.selectbox(key="inspect_model").set_value(name).run()
    assert not at.exception, at.exception
    training = tab(at, "Training")
    text = tab_texts(training)
    val = base_meta["metrics"]["val_accuracy"]
    assert "**A personal model**" in text and "from 6 labelled drawings" in text
    assert f"base model **test-model**: `{base.architecture}`, {val:.2%} on validation digits." in text
    figures = {m.label: m.value for m in training.metric}
    assert figures["Drawings: before → after"] == f"{result.drawings_before:.2%} → {result.drawings_after:.2%}"
    assert figures["Validation: before → after"] == f"{result.val_before:.2%} → {result.val_after:.2%}"
    assert image_captions(training) == [str(v) for v in y]  # the drawings it learned from, labelled
    # a model that is not personal has none of this
    at.selectbox(key="inspect_model").set_value("test-model").run()
    assert "A personal model" not in tab_texts(tab(at, "Training"))
    # its base deleted: still described, and said so
    trained_model_store.delete("test-model")
    at = open_page()
    assert "(no longer in the model store)" in tab_texts(tab(at, "Training"))
