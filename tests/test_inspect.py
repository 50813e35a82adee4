"""scratchnet.inspect on small hand-made cases whose answers are known."""

import numpy as np
import pytest

from scratchnet import inspect as ins
from scratchnet.errors import DataError
from scratchnet.network import Network


def tiny_net(sizes=(4, 3, 2), activation="relu"):
    """A network with hand-set weights so every activation can be worked out on paper."""
    W1 = np.array(
        [[1, 0, -1], [0, 1, -1], [0, 0, -1], [0, 0, -1]], np.float32
    )  # unit 3 (index 2) only ever sees negative input -> dead for non-negative pixels
    b1 = np.array([0, 0, -0.5], np.float32)
    W2 = np.array([[2, -1], [-1, 3], [5, 5]], np.float32)
    b2 = np.array([0.5, 0], np.float32)
    return Network.from_arrays([W1, W2], [b1, b2], activation)


# --------------------------------------------------------------------------- confusion matrix


def test_confusion_matrix_counts_each_true_pred_pair():
    y_true = [0, 0, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 2, 0, 2]
    cm = ins.confusion_matrix(y_true, y_pred, n_classes=3)
    expected = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    np.testing.assert_array_equal(cm, expected)
    assert cm.sum() == 6


def test_confusion_matrix_rejects_out_of_range_and_mismatched():
    with pytest.raises(DataError, match="Row 1"):
        ins.confusion_matrix([0, 3], [0, 0], n_classes=3)
    with pytest.raises(DataError, match="2 predictions"):
        ins.confusion_matrix([0, 1, 2], [0, 1], n_classes=3)


def test_per_class_accuracy_is_row_recall_and_nan_for_absent_class():
    cm = np.array([[3, 1, 0], [0, 0, 0], [1, 1, 2]])
    acc = ins.per_class_accuracy(cm)
    assert acc[0] == pytest.approx(0.75)
    assert np.isnan(acc[1])
    assert acc[2] == pytest.approx(0.5)


# --------------------------------------------------------------------------- mistakes


def test_rank_mistakes_most_confident_first_and_filters():
    y_true = np.array([1, 2, 3, 3, 5, 5])
    y_pred = np.array([1, 7, 8, 3, 7, 8])
    conf = np.array([0.99, 0.6, 0.95, 0.9, 0.8, 0.95])
    # wrong: rows 1 (0.6), 2 (0.95), 4 (0.8), 5 (0.95); ties keep original order
    np.testing.assert_array_equal(ins.rank_mistakes(y_true, y_pred, conf), [2, 5, 4, 1])
    np.testing.assert_array_equal(ins.rank_mistakes(y_true, y_pred, conf, pred=7), [4, 1])
    np.testing.assert_array_equal(ins.rank_mistakes(y_true, y_pred, conf, true=5), [5, 4])
    np.testing.assert_array_equal(ins.rank_mistakes(y_true, y_pred, conf, true=5, pred=8), [5])
    assert ins.rank_mistakes(y_true, y_pred, conf, true=1).size == 0


def test_select_cell_includes_correct_predictions():
    y_true = np.array([3, 3, 3, 4])
    y_pred = np.array([3, 3, 4, 3])
    conf = np.array([0.5, 0.7, 0.9, 0.9])
    np.testing.assert_array_equal(ins.select(y_true, y_pred, conf, true=3, pred=3), [1, 0])
    with pytest.raises(DataError, match="confidences"):
        ins.select(y_true, y_pred, conf[:2])


def test_evaluation_derives_predictions_confidence_and_cells():
    probs = np.array(
        [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.05, 0.9, 0.05]],
        np.float32,
    )
    ev = ins.Evaluation("test", np.array([0, 1, 1, 2, 0]), probs)
    np.testing.assert_array_equal(ev.y_pred, [0, 1, 0, 2, 1])
    np.testing.assert_allclose(ev.confidence, [0.9, 0.7, 0.6, 0.8, 0.9])
    assert ev.accuracy == pytest.approx(3 / 5)
    assert ev.n_wrong == 2
    np.testing.assert_array_equal(ev.mistakes(), [4, 2])  # 0.9 before 0.6
    np.testing.assert_array_equal(ev.cell(1, 0), [2])
    assert ev.worst_confusions(5) == [(0, 1, 1), (1, 0, 1)]
    np.testing.assert_allclose(ev.per_class, [0.5, 0.5, 1.0])


def test_evaluate_uses_the_network():
    net = tiny_net()
    X = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]], np.float32)
    ev = ins.evaluate(net, X, [0, 1, 1], split="validation")
    # x0: a=[1,0,0] -> logits [2.5,-1] -> 0; x1: a=[0,1,0] -> [-0.5,3] -> 1; x2: [0.5,0] -> 0
    np.testing.assert_array_equal(ev.y_pred, [0, 1, 0])
    assert ev.split == "validation"
    assert ev.accuracy == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- hidden units


def test_dead_units_relu_never_positive():
    net = tiny_net()
    X = np.random.default_rng(0).random((50, 4), dtype=np.float32)
    dead = ins.dead_units(net, X)
    assert len(dead) == 1
    np.testing.assert_array_equal(dead[0], [False, False, True])


def test_unit_activity_statistics():
    net = tiny_net()
    X = np.array([[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 0, 0], [3, 0, 0, 0]], np.float32)
    (act,) = ins.unit_activity(net, X)
    np.testing.assert_allclose(act.max, [3, 2, 0])
    np.testing.assert_allclose(act.mean, [1.0, 0.5, 0])
    np.testing.assert_allclose(act.active_fraction, [0.5, 0.25, 0])
    assert act.n_dead == 1 and act.layer == 1


def test_unit_activity_chunks_agree_with_one_pass(monkeypatch):
    net = Network((6, 5, 4, 3), seed=1)
    X = np.random.default_rng(1).random((37, 6), dtype=np.float32)
    probs_b, act_b = ins._sweep(net, X)
    net.release()
    monkeypatch.setattr("scratchnet.network.INFER_BYTES", 1)  # chunks of 16 rows
    probs_a, act_a = ins._sweep(net, X)
    assert net._chunk_rows() == 16
    np.testing.assert_allclose(probs_a, probs_b, rtol=1e-6)
    for a, b in zip(act_a, act_b):
        np.testing.assert_allclose(a.max, b.max)
        np.testing.assert_allclose(a.mean, b.mean, rtol=1e-6)
        np.testing.assert_array_equal(a.dead, b.dead)
    assert len(act_a) == 2


def test_sigmoid_units_fire_above_one_half():
    net = Network.from_arrays(
        [np.array([[1.0, -1.0]], np.float32), np.ones((2, 2), np.float32)],
        [np.zeros(2, np.float32), np.zeros(2, np.float32)], "sigmoid",
    )
    X = np.array([[2.0], [-2.0], [3.0], [0.0]], np.float32)
    (act,) = ins.unit_activity(net, X)
    # unit 0 = sigmoid(x) > 0.5 for x = 2, 3; unit 1 = sigmoid(-x) > 0.5 for x = -2 only
    np.testing.assert_allclose(act.active_fraction, [0.5, 0.25])


def test_dead_mask_for_saturating_activations():
    # sigmoid/tanh: "dead" means the output barely moves over the data
    mask = ins.dead_mask([0.9, 1.0, 0.5], [0.1, 0.9995, 0.5], "sigmoid")
    np.testing.assert_array_equal(mask, [False, True, True])
    np.testing.assert_array_equal(ins.dead_mask([0.0, 0.2], [0.0, 0.0], "relu"), [True, False])


# --------------------------------------------------------------------------- pictures


def test_weight_images_columns_become_pictures():
    W = np.arange(784 * 3, dtype=np.float32).reshape(784, 3)
    imgs = ins.weight_images(W)
    assert imgs.shape == (3, 28, 28)
    # pixel (r, c) of unit j is W[r * 28 + c, j]
    assert imgs[2, 1, 5] == W[28 + 5, 2]
    assert imgs[0, 27, 27] == W[783, 0]
    with pytest.raises(DataError, match="28x28"):
        ins.weight_images(np.zeros((10, 3)))


def test_tile_places_each_image_in_row_major_grid():
    imgs = np.stack([np.full((2, 3), k, np.float32) for k in range(5)])
    out = ins.tile(imgs, cols=3, pad=1)
    assert out.shape == (2 * 2 + 1, 3 * 3 + 2)
    # tile k at row k // 3, column k % 3
    for k in range(5):
        r, c = divmod(k, 3)
        np.testing.assert_array_equal(out[r * 3 : r * 3 + 2, c * 4 : c * 4 + 3], k)
    assert np.isnan(out[2]).all()  # padding row between the two grid rows
    assert np.isnan(out[:, 3]).all()  # padding column
    assert np.isnan(out[3:, 8:]).all()  # the unused sixth cell


def test_tile_rgb_and_default_square_grid():
    imgs = np.zeros((10, 4, 4, 3), np.uint8)
    imgs[7] = 9
    out = ins.tile(imgs, pad=0, fill=np.uint8(255))
    assert ins.grid_shape(10) == (3, 4)
    assert out.shape == (12, 16, 3) and out.dtype == np.uint8
    assert (out[4:8, 12:16] == 9).all()  # tile 7: row 1, column 3
    assert (out[8:12, 8:16] == 255).all()  # cells 10 and 11 unused


def test_diverging_rgb_sign_is_hue_and_scale_is_shared():
    rgb = ins.diverging_rgb(np.array([-2.0, 0.0, 1.0, 2.0, np.nan]))
    np.testing.assert_array_equal(rgb[0], ins.NEGATIVE.astype(np.uint8))
    np.testing.assert_array_equal(rgb[1], ins.ZERO.astype(np.uint8))
    np.testing.assert_array_equal(rgb[3], ins.POSITIVE.astype(np.uint8))
    np.testing.assert_array_equal(rgb[4], ins.MISSING.astype(np.uint8))
    # 1.0 is half way from white to red on the shared scale
    np.testing.assert_allclose(rgb[2], np.rint((ins.ZERO + ins.POSITIVE) / 2), atol=1)
    assert (ins.diverging_rgb(np.array([5.0]), vmax=1.0) == ins.POSITIVE).all()  # clipped


def test_weight_picture_marks_dead_units_and_shares_scale():
    W = np.zeros((784, 3), np.float32)
    W[0, 0] = 1.0
    W[783, 1] = -1.0
    pic = ins.weight_picture(W, dead=[False, False, True], scale=1, cols=3)
    assert (pic.rows, pic.cols) == (1, 3)
    frame = 2  # at least 2 pixels
    cell = 28 + 2 * frame
    pad = 2
    img = pic.image
    assert img.shape == (cell, 3 * cell + 2 * pad, 3)
    # unit 0's top-left pixel is full red, unit 1's bottom-right full blue
    np.testing.assert_array_equal(img[frame, frame], ins.POSITIVE.astype(np.uint8))
    np.testing.assert_array_equal(img[frame + 27, cell + pad + frame + 27], ins.NEGATIVE.astype(np.uint8))
    # only the dead unit (third) has a dark frame
    x2 = 2 * (cell + pad)
    np.testing.assert_array_equal(img[0, x2], ins.DEAD_FRAME)
    np.testing.assert_array_equal(img[0, 0], [255, 255, 255])
    with pytest.raises(DataError, match="dead-unit mask"):
        ins.weight_picture(W, dead=[True])


def test_initial_network_is_where_training_started():
    from scratchnet.training import TrainConfig, fit

    rng = np.random.default_rng(6)
    X = rng.random((64, 784), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    config = TrainConfig(hidden=(8,), init="notebook", optimizer="gd", lr=0.1, iterations=3,
                         epochs=None, batch_size=None, seed=11)
    net, _ = fit(config, X, y)
    start = ins.initial_network(net, {"config": config.to_dict()})
    expected = Network((784, 8, 10), init="notebook", seed=11)
    for W, W0 in zip(start.weights, expected.weights):
        np.testing.assert_array_equal(W, W0)
    assert not np.array_equal(start.weights[0], net.weights[0])  # training moved the weights
    # a pixel that is blank in every training image never gets a gradient: its weights are init
    X2 = X.copy()
    X2[:, 0] = 0
    net2, _ = fit(config, X2, y)
    np.testing.assert_array_equal(net2.weights[0][0], start.weights[0][0])
    assert ins.initial_network(net, {}) is None
    other = config.replace(hidden=(9,)).to_dict()
    assert ins.initial_network(net, {"config": other}) is None


def test_framed_draws_each_border_in_its_colour():
    imgs = np.full((2, 2, 3, 3), 7, np.uint8)
    out = ins.framed(imgs, 1, [(1, 2, 3), (9, 9, 9)])
    assert out.shape == (2, 4, 5, 3)
    assert (out[0, 1:3, 1:4] == 7).all()
    np.testing.assert_array_equal(out[0, 0, 0], [1, 2, 3])
    np.testing.assert_array_equal(out[1, 3, 4], [9, 9, 9])
    with pytest.raises(DataError, match="784 pixels"):
        ins.trace(Network((784, 4, 10)), np.zeros((2, 784)))


def test_upscale_and_ink():
    img = np.array([[0.0, 1.0]], np.float32)
    big = ins.upscale(img, 3)
    assert big.shape == (3, 6) and (big[:, 3:] == 1).all() and (big[:, :3] == 0).all()
    rgb = ins.ink_rgb(img)
    np.testing.assert_array_equal(rgb[0, 1], [255, 255, 255])
    assert ins.upscale_stack(np.ones((2, 2, 2)), 2).shape == (2, 4, 4)


# --------------------------------------------------------------------------- one input


def test_trace_gives_z_and_a_per_layer():
    net = tiny_net()
    x = np.array([1, 2, 0, 0], np.float32)
    layers = ins.trace(net, x)
    assert [l.activation for l in layers] == ["relu", "softmax"]
    np.testing.assert_allclose(layers[0].z, [1, 2, -3.5])
    np.testing.assert_allclose(layers[0].a, [1, 2, 0])
    np.testing.assert_allclose(layers[1].z, [2 - 2 + 0.5, -1 + 6])
    np.testing.assert_allclose(layers[1].a, net.predict_proba(x)[0], rtol=1e-6)
    assert layers[0].W_shape == (4, 3) and layers[1].b_shape == (2,)


def test_contributions_sum_to_the_logit():
    net = tiny_net()
    x = np.array([1, 2, 0, 0], np.float32)  # a1 = [1, 2, 0]; logits [0.5, 5]
    c = ins.contributions(net, x)
    assert c.cls == 1
    np.testing.assert_allclose(c.values, [-1, 6, 0])
    assert c.bias == 0 and c.logit == pytest.approx(5.0)
    assert c.values.sum() + c.bias == pytest.approx(c.logit)
    support, oppose = c.top(2)
    np.testing.assert_array_equal(support, [1])
    np.testing.assert_array_equal(oppose, [0])
    c0 = ins.contributions(net, x, cls=0)
    np.testing.assert_allclose(c0.values, [2, -2, 0])
    assert c0.logit == pytest.approx(0.5)


def test_contributions_sum_on_random_deep_net():
    net = Network((784, 16, 8, 10), seed=3)
    x = np.random.default_rng(3).random(784, dtype=np.float32)
    c = ins.contributions(net, x)
    assert c.cls == int(net.predict(x)[0])
    assert c.values.sum() + c.bias == pytest.approx(c.logit, rel=1e-4, abs=1e-4)


def test_input_saliency_matches_finite_differences():
    net = Network((6, 5, 4, 3), activation="tanh", seed=2)
    x = np.random.default_rng(2).random(6).astype(np.float64)
    cls = 1
    s = ins.input_saliency(net, x, cls)
    eps = 1e-3
    grad = np.empty(6)
    for i in range(6):  # finite differences over 6 pixels, fine for a test
        d = np.zeros(6)
        d[i] = eps
        grad[i] = (net.logits(x + d)[0, cls] - net.logits(x - d)[0, cls]) / (2 * eps)
    np.testing.assert_allclose(s, grad * x, rtol=1e-2, atol=1e-4)


def test_walkthrough_matches_network_backward_and_update_lowers_loss():
    net = Network((784, 10, 10), init="notebook", seed=0)
    x = np.random.default_rng(4).random(784, dtype=np.float32)
    w = ins.walkthrough(net, x, label=3, lr=0.01)
    assert w.loss == pytest.approx(-np.log(w.probs[3]), rel=1e-4)
    expected_dz = w.probs.copy()
    expected_dz[3] -= 1
    np.testing.assert_allclose(w.dz_out, expected_dz)
    # the notebook's backward pass for one sample, written out
    W1, b1, W2, b2 = (p.astype(np.float64) for p in net.params())
    z1 = x @ W1 + b1
    a1 = np.maximum(z1, 0)
    dz1 = (W2 @ w.dz_out) * (z1 > 0)
    ref = [np.outer(x, dz1), dz1, np.outer(a1, w.dz_out), w.dz_out]
    for g, r in zip(w.grads, ref):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)
    names = [n for n, _, _ in w.grad_norms()]
    assert names == ["dW1", "db1", "dW2", "db2"]
    assert w.grad_norms()[0][1] == (784, 10)
    assert w.loss_after < w.loss
    assert w.prediction == int(np.argmax(w.probs))
    with pytest.raises(DataError, match="label"):
        ins.walkthrough(net, x, label=10)


# --------------------------------------------------------------------------- whole report


def test_analyse_combines_evaluation_activity_and_picture():
    net = Network((784, 12, 10), seed=5)
    net.weights[0][:, 4] = -1.0  # non-negative pixels can never switch unit 4 on
    net.biases[0][4] = -0.1
    rng = np.random.default_rng(5)
    X = rng.random((30, 784), dtype=np.float32)
    y = rng.integers(0, 10, 30)
    a = ins.analyse(net, X, y, split="validation")
    assert a.evaluation.split == "validation" and a.evaluation.n == 30
    np.testing.assert_allclose(a.evaluation.probs, net.predict_proba(X), rtol=1e-5)
    assert a.activity[0].dead[4] and a.dead_counts == [int(a.activity[0].dead.sum())]
    assert a.weights is not None and a.weights.dead[4]


def test_history_frame_and_config_rows():
    meta = {
        "history": [
            {"step": 10, "epoch": 0.5, "loss": 1.2, "train_accuracy": 0.6, "val_accuracy": None,
             "seconds": 0.1},
            {"step": 20, "epoch": 1.0, "loss": 0.8, "train_accuracy": 0.8, "val_accuracy": 0.75,
             "seconds": 0.2},
        ],
        "config": {"hidden": [256, 128], "lr": 0.001, "iterations": None},
    }
    df = ins.history_frame(meta)
    assert list(df.columns) == list(ins.HISTORY_COLUMNS)
    assert df["loss"].tolist() == [1.2, 0.8]
    assert np.isnan(df["val_accuracy"].iloc[0])
    assert ins.history_frame({}).empty
    assert ins.config_rows(meta) == [("hidden", "256 x 128"), ("lr", "0.001"), ("iterations", "-")]
    assert ins.config_rows({"config": "junk"}) == []


# --------------------------------------------------------------------------- convolutional nets


def conv_net(seed=0):
    from scratchnet import layers as L

    layers = [L.Conv2D(4, 5), L.ReLU(), L.MaxPool2D(2), L.Conv2D(6, 3), L.ReLU(), L.MaxPool2D(2),
              L.Flatten(), L.Dense(12), L.ReLU(), L.Dense(10)]
    return Network(None, layers=layers, seed=seed)


@pytest.mark.parametrize("built", ["by hand", "from a spec"])
def test_feature_maps_are_the_conv_and_pool_outputs_per_channel(built):
    from scratchnet.training import TrainConfig, build_network

    net = conv_net() if built == "by hand" else build_network(TrainConfig(layers="conv4-5,maxpool2,conv6-3,maxpool2,dense12"))
    x = np.random.default_rng(0).random(784, dtype=np.float32)
    maps = ins.feature_maps(net, x)
    assert [m.name for m in maps] == ["conv4-5 + relu", "maxpool2", "conv6-3 + relu", "maxpool2"]
    assert [m.maps.shape for m in maps] == [(4, 28, 28), (4, 14, 14), (6, 14, 14), (6, 7, 7)]
    outs = net.outputs(x)
    conv1 = np.maximum(outs[0][0], 0).transpose(2, 0, 1)
    np.testing.assert_allclose(maps[0].maps, conv1, rtol=1e-6)  # after the ReLU
    pooled = conv1.reshape(4, 14, 2, 14, 2).max(axis=(2, 4))
    np.testing.assert_allclose(maps[1].maps, pooled, rtol=1e-6)


def test_conv_example_is_the_sum_and_the_im2col_product():
    net = conv_net(1)
    x = np.random.default_rng(1).random(784, dtype=np.float32)
    ex = ins.conv_example(net, x)
    conv = net.layers[0]
    assert ex.z == pytest.approx(float(ex.products.sum()) + ex.bias, rel=1e-4, abs=1e-5)
    assert ex.a == pytest.approx(max(ex.z, 0.0), abs=1e-6)
    assert ex.cols_shape == (784, 25) and ex.W_shape == (25, 4)
    assert ex.row == ex.pos[0] * 28 + ex.pos[1]
    # the strongest response of the whole first layer
    z = net.outputs(x)[0][0]
    assert ex.z == pytest.approx(float(z.max()), rel=1e-5)
    # a chosen filter and pixel at the edge: the window is zero-padded
    edge = ins.conv_example(net, x, filter=2, pos=(0, 0))
    assert (edge.window[:2] == 0).all() and (edge.window[:, :2] == 0).all()
    np.testing.assert_array_equal(edge.kernel, conv.W[:, :, 0, 2])
    assert edge.z == pytest.approx(float(z[0, 0, 2]), rel=1e-4, abs=1e-5)
    with pytest.raises(DataError, match="filters 0 to 3"):
        ins.conv_example(net, x, filter=9, pos=(0, 0))
    with pytest.raises(DataError, match="no convolution"):
        ins.conv_example(Network((784, 10, 10)), x)


def test_filter_picture_draws_one_tile_per_filter():
    net = conv_net()
    imgs = ins.filter_images(net.layers[0].W)
    assert imgs.shape == (4, 5, 5)
    np.testing.assert_array_equal(imgs[3], net.layers[0].W[:, :, 0, 3])
    pic = ins.filter_picture(net.layers[0].W, dead=[False, True, False, False])
    assert pic.image.dtype == np.uint8 and pic.image.ndim == 3 and pic.rows * pic.cols >= 4
    with pytest.raises(DataError):
        ins.filter_images(np.zeros((784, 10)))


def test_analyse_a_conv_net_gives_filters_and_channel_activity():
    net = conv_net()
    rng = np.random.default_rng(3)
    X = rng.random((40, 784), dtype=np.float32)
    y = rng.integers(0, 10, 40)
    a = ins.analyse(net, X, y)
    assert a.filters and a.weights is not None
    assert [(act.kind, len(act.max)) for act in a.activity] == [("conv", 4), ("conv", 6), ("dense", 12)]
    # statistics of a channel are over every position of every digit
    outs = np.concatenate([net.outputs(X[i : i + 10])[1] for i in range(0, 40, 10)])
    np.testing.assert_allclose(a.activity[0].max, outs.max(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(a.activity[0].mean, outs.mean(axis=(0, 1, 2)), rtol=1e-5)
    fired = (outs > 0).any(axis=(1, 2)).mean(axis=0)
    np.testing.assert_allclose(a.activity[0].active_fraction, fired, rtol=1e-6)
    assert a.evaluation.accuracy == pytest.approx(float((net.predict(X) == y).mean()))
    c = ins.contributions(net, X[0])  # the last hidden layer's units still explain the score
    assert c.values.shape == (12,)
    assert c.values.sum() + c.bias == pytest.approx(c.logit, rel=1e-4, abs=1e-4)
    with pytest.raises(DataError, match="convolutions"):
        ins.trace(net, X[0])


def test_initial_network_of_a_conv_model_is_rebuilt_from_its_config():
    from scratchnet.training import TrainConfig, build_network

    config = TrainConfig(layers="conv4-5,maxpool2,dense12", epochs=1, seed=5)
    net = build_network(config)
    start = ins.initial_network(net, {"config": config.to_dict()})
    assert start is not None and all(np.array_equal(a, b) for a, b in zip(start.params(), net.params()))
    other = build_network(config.replace(layers="conv8-5,maxpool2,dense12"))
    assert ins.initial_network(other, {"config": config.to_dict()}) is None


def test_feature_maps_know_their_hidden_layer_and_draw_on_one_scale():
    from scratchnet.training import TrainConfig, build_network

    for net in (conv_net(), build_network(TrainConfig(layers="conv4-5,maxpool2,conv6-3,maxpool2,dense12"))):
        maps = ins.feature_maps(net, np.random.default_rng(0).random(784, dtype=np.float32))
        # conv1 and its pooling are hidden layer 0's channels, conv2 and its pooling hidden layer 1's
        assert [m.hidden for m in maps] == [0, 0, 1, 1]
        assert ins.hidden_names(net) == ["conv4-5", "conv6-3", "dense12"]
    m = np.zeros((3, 14, 14), np.float32)
    m[0, 2, 3] = 2.0
    m[1, 5, 5] = 1.0  # half of the layer's largest value: half as bright
    pic = ins.feature_map_picture(m, dead=[False, False, True], size=84)
    assert pic.scale == 6 and pic.vmax == 2.0 and (pic.rows, pic.cols) == (1, 3)
    tile_w = 14 * 6 + 2 * 2  # enlarged map plus its frame
    assert pic.image.shape == (tile_w, 3 * tile_w + 2 * 4, 3)
    y0, x0 = 2 + 2 * 6, 2 + 3 * 6  # inside channel 0's brightest pixel
    assert tuple(pic.image[y0, x0]) == (255, 255, 255)
    y1, x1 = 2 + 5 * 6, tile_w + 4 + 2 + 5 * 6
    assert tuple(pic.image[y1, x1]) == (128, 128, 128)
    assert tuple(pic.image[0, 2 * (tile_w + 4)]) == ins.DEAD_MAP_FRAME  # the dead channel's frame
    assert tuple(pic.image[0, 0]) == (255, 255, 255)
    assert ins.feature_map_picture(np.zeros((2, 28, 28))).scale == 3  # all zero: no division by 0
    signed = ins.feature_map_picture(np.array([[[-1.0, 1.0]]]), size=10)
    assert tuple(signed.image[2, 2]) == tuple(ins.NEGATIVE.astype(np.uint8))
    with pytest.raises(DataError):
        ins.feature_map_picture(np.zeros((28, 28)))


def test_im2col_rows_are_the_windows_and_give_the_first_convolution():
    net = conv_net(2)
    x = np.random.default_rng(2).random(784, dtype=np.float32)
    conv = net.layers[0]
    cols = ins.im2col(x, 5)
    assert cols.shape == (784, 25)
    Z = cols @ conv.W.reshape(25, 4) + conv.b  # the whole convolution as one product
    np.testing.assert_allclose(Z.reshape(28, 28, 4), net.outputs(x)[0][0], rtol=1e-4, atol=1e-5)
    ex = ins.conv_example(net, x, filter=1, pos=(3, 26))
    np.testing.assert_array_equal(ex.cols_row, cols[ex.row])
    np.testing.assert_array_equal(ex.kernel_column, conv.W.reshape(25, 4)[:, 1])
    assert float(ex.cols_row @ ex.kernel_column) + ex.bias == pytest.approx(ex.z, rel=1e-4, abs=1e-5)
    assert ex.kernel_size == 5
    top = ex.top_terms(3)
    assert np.abs(ex.products.ravel()[top]).min() >= np.abs(np.delete(ex.products.ravel(), top)).max()
    with pytest.raises(DataError):
        ins.im2col(x, 4)


def test_window_picture_frames_the_window():
    x = np.zeros(784, np.float32)
    img = ins.window_picture(x, (10, 12), 5, scale=3)
    assert img.shape == (84, 84, 3)
    red = (img == np.array([228, 26, 28], np.uint8)).all(axis=-1)
    rows, cols = np.flatnonzero(red.any(axis=1)), np.flatnonzero(red.any(axis=0))
    # the window is pixels 8..12 x 10..14, i.e. screen rows 24..38 and columns 30..44: framed outside
    assert (rows.min(), rows.max()) == (22, 40) and (cols.min(), cols.max()) == (28, 46)
    assert not red[24:39, 30:45].any()  # the window's own pixels are left alone
    corner = ins.window_picture(x, (0, 0), 5, scale=3)  # clipped at the edge, still framed
    red = (corner == np.array([228, 26, 28], np.uint8)).all(axis=-1)
    assert red[0, :9].all() and red[:9, 0].all() and red[9:11, :9].all() and not red[2:9, 2:9].any()


def test_hidden_outputs_and_contributions_of_a_conv_net():
    net = conv_net(4)
    x = np.random.default_rng(4).random(784, dtype=np.float32)
    hidden = ins.hidden_outputs(net, x)
    assert [(h.layer, h.name, h.kind, h.a.shape) for h in hidden] == [
        (1, "conv4-5", "conv", (4, 28, 28)), (2, "conv6-3", "conv", (6, 14, 14)), (3, "dense12", "dense", (12,))]
    outs = net.outputs(x)
    np.testing.assert_array_equal(hidden[2].a, outs[8][0])
    c = ins.contributions(net, x)
    np.testing.assert_array_equal(c.inputs, hidden[2].a)
    assert c.unit == "unit"
    mlp = ins.hidden_outputs(tiny_net(), np.array([1, 2, 0, 0], np.float32))
    assert [(h.name, h.kind) for h in mlp] == [("dense3", "dense")]
    np.testing.assert_allclose(mlp[0].a, [1, 2, 0])
    assert ins.contributions(Network((784, 10)), np.zeros(784)).unit == "pixel"


def test_layer_walkthrough_follows_any_network_and_matches_the_mlp_one():
    net = conv_net(5)
    x = np.random.default_rng(5).random(784, dtype=np.float32)
    w = ins.layer_walkthrough(net, x, 3, lr=0.05)
    assert [s.name for s in w.steps] == ["conv4-5", "relu", "maxpool2", "conv6-3", "relu", "maxpool2",
                                         "flatten", "dense12", "relu", "dense10"]
    assert w.steps[2].out_shape == (14, 14, 4) and w.steps[0].n_params == 5 * 5 * 4 + 4
    np.testing.assert_allclose(w.probs, net.predict_proba(x)[0], rtol=1e-5)
    assert w.loss == pytest.approx(-np.log(w.probs[3]), rel=1e-4)
    assert [(n, l) for n, l, _, _ in w.grad_norms()][:3] == [("dW1", "conv4-5"), ("db1", "conv4-5"), ("dW2", "conv6-3")]
    assert w.loss_after < w.loss
    mlp = tiny_net()
    xm = np.array([0.5, 1.0, 0.2, 0.0], np.float32)
    a, b = ins.walkthrough(mlp, xm, 1), ins.layer_walkthrough(mlp, xm, 1)
    assert a.loss == pytest.approx(b.loss) and a.loss_after == pytest.approx(b.loss_after)
    np.testing.assert_allclose([n for *_, n in a.grad_norms()], [n for *_, n in b.grad_norms()], rtol=1e-6)
    with pytest.raises(DataError):
        ins.layer_walkthrough(net, x, 10)
