"""Gradients against finite differences, and the network's public behaviour."""

import numpy as np
import pytest
from tools.testkit import numeric_grad, run_threads

from scratchnet import layers as L
from scratchnet.errors import ConfigError, DataError, ModelFileError
from scratchnet.network import Network


def _small_problem(activation, sizes=(6, 5, 4, 3)):
    rng = np.random.default_rng(1)
    net = Network(sizes, activation=activation, init="xavier", seed=3)
    for b in net.biases:
        b[...] = rng.normal(0, 0.1, b.shape)
    X = rng.normal(size=(7, sizes[0]))
    y = rng.integers(0, sizes[-1], 7)
    return net, X, y


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_backward_matches_finite_differences(float64, activation, l2):
    net, X, y = _small_problem(activation)
    _, grads = net.loss_and_grads(X, y, l2)
    grads = [g.copy() for g in grads]
    for p, g in zip(net.params(), grads):
        num = numeric_grad(lambda: net.loss(X, y, l2), p)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)


def test_loss_matches_definition():
    net, X, y = _small_problem("tanh")
    P = net.predict_proba(X).astype(np.float64)
    expected = -np.log(P[np.arange(len(y)), y]).mean()
    assert net.loss(X, y) == pytest.approx(expected, rel=1e-5)
    l2 = 0.3
    reg = 0.5 * l2 * sum((W.astype(np.float64) ** 2).sum() for W in net.weights)
    assert net.loss(X, y, l2) == pytest.approx(expected + reg, rel=1e-5)


def test_training_pass_agrees_with_loss_and_counts_correct():
    net = Network((784, 32, 10), seed=0)
    rng = np.random.default_rng(0)
    X = rng.random((50, 784), dtype=np.float32)
    y = rng.integers(0, 10, 50).astype(np.intp)
    P, ref_loss, pred = net.predict_proba(X), net.loss(X, y), net.predict(X)
    net.begin(X)
    loss, correct = net.forward_backward(X, y)
    assert loss == pytest.approx(ref_loss, rel=1e-4)
    assert correct == int((pred == y).sum())
    # what backward starts from: (P - Y) / n, in the last layer's buffer
    expected = P.copy()
    expected[np.arange(50), y] -= 1
    np.testing.assert_allclose(net.layers[-1].Y, expected / 50, rtol=1e-4, atol=1e-7)


def test_loss_is_finite_for_confident_mistakes():
    net = Network((4, 3), init="he", seed=0)
    net.weights[0][...] = 0
    net.biases[0][...] = [500, 0, -500]
    X = np.zeros((1, 4), np.float32)
    assert net.loss(X, [2]) == pytest.approx(1000, rel=1e-3)
    net.begin(X)
    loss, _ = net.forward_backward(X, np.array([2]))
    assert loss == pytest.approx(1000, rel=1e-3)
    assert np.isfinite(net.layers[-1].Y).all()


def test_shapes_dtypes_and_layouts():
    net = Network((784, 10, 10), init="notebook", seed=0)
    assert [W.shape for W in net.weights] == [(784, 10), (10, 10)]
    assert all(W.dtype == np.float32 and W.flags.c_contiguous for W in net.weights)
    assert all(-0.5 <= W.min() and W.max() < 0.5 for W in net.weights + net.biases)
    X = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    P = net.predict_proba(X)
    assert P.shape == (3, 10) and P.dtype == np.float32
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-5)
    # one row and one 28x28 image give the same answer as the batch
    np.testing.assert_allclose(net.predict_proba(X[0]), P[:1], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(net.predict_proba(X[0].reshape(28, 28)), P[:1], rtol=1e-4, atol=1e-6)
    assert net.predict(X).tolist() == P.argmax(axis=1).tolist()
    assert net.n_params == 784 * 10 + 10 + 10 * 10 + 10
    with pytest.raises(DataError, match="784"):
        net.predict_proba(np.zeros((2, 100), np.float32))


def test_params_and_gradients_live_in_one_flat_buffer_each():
    net = Network((784, 16, 10), seed=0)
    flat = net.flat_params()
    for p, g, o in zip(net.params(), net.grads(), net.param_offsets()):
        assert np.shares_memory(p, flat) and np.shares_memory(g, net.grad_flat)
        assert o % 16 == 0  # each on its own cache line
        np.testing.assert_array_equal(flat[o : o + p.size], p.ravel())
    flat[:] = 0
    assert not net.weights[0].any()


def test_inits_have_the_intended_scale():
    he = Network((784, 256, 10), init="he", seed=0)
    assert he.weights[0].std() == pytest.approx(np.sqrt(2 / 784), rel=0.05)
    assert not he.biases[0].any()
    xa = Network((784, 256, 10), init="xavier", seed=0)
    limit = np.sqrt(6 / (784 + 256))
    assert abs(xa.weights[0]).max() <= limit
    assert xa.weights[0].std() == pytest.approx(limit / np.sqrt(3), rel=0.05)
    conv = Network(None, layers=[L.Conv2D(8, 5), L.ReLU(), L.Flatten(), L.Dense(10)], seed=0)
    assert conv.weights[0].shape == (5, 5, 1, 8)
    assert conv.weights[0].std() == pytest.approx(np.sqrt(2 / 25), rel=0.15)


def test_seed_makes_init_reproducible():
    a, b = Network(seed=5), Network(seed=5)
    c = Network(seed=6)
    assert all(np.array_equal(x, y) for x, y in zip(a.params(), b.params()))
    assert not np.array_equal(a.weights[0], c.weights[0])


def test_large_batches_are_chunked_consistently():
    net = Network((784, 8, 10), seed=0)
    X = np.random.default_rng(0).random((9000, 784), dtype=np.float32)
    P = net.predict_proba(X)
    np.testing.assert_allclose(P[-5:], net.predict_proba(X[-5:]), rtol=1e-5)
    assert net.accuracy(X, P.argmax(1)) == 1.0


def test_conv_network_reads_rows_or_images_alike_and_in_chunks():
    net = Network(None, layers=[L.Conv2D(4, 3), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(10)], seed=1)
    assert net.input_shape == (28, 28, 1) and not net.is_mlp and net.sizes is None
    X = np.random.default_rng(0).random((2000, 784), dtype=np.float32)
    P = net.predict_proba(X)
    assert net._chunk_rows() < 2000  # several chunks, bounded memory
    np.testing.assert_allclose(net.predict_proba(X.reshape(2000, 28, 28, 1)), P, rtol=1e-6)
    np.testing.assert_allclose(net.predict_proba(X[7].reshape(28, 28)), P[7:8], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(net.predict_proba(X[1990:]), P[1990:], rtol=1e-5, atol=1e-7)
    assert net.describe() == "28x28 → conv4-3 → maxpool2 → 10" and net.architecture == "conv4-3,maxpool2"


def test_predictions_from_many_threads_at_once_are_right():
    net = Network(None, layers=[L.Conv2D(4, 3), L.ReLU(), L.Flatten(), L.Dense(10)], seed=1)
    rng = np.random.default_rng(0)
    inputs = [rng.random((1 + i % 5, 784), dtype=np.float32) for i in range(24)]
    expected = [net.predict_proba(x) for x in inputs]
    got = [None] * len(inputs)

    def work(i):
        for _ in range(5):
            got[i] = net.predict_proba(inputs[i])

    run_threads(work, len(inputs))
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)


def test_copy_is_independent():
    net = Network((784, 8, 10), seed=0)
    twin = net.copy()
    twin.weights[0] += 1
    assert not np.array_equal(net.weights[0], twin.weights[0])
    conv = Network(None, layers=[L.Conv2D(2, 3), L.ReLU(), L.Flatten(), L.Dense(10)], seed=0)
    twin = conv.copy()
    assert twin.describe() == conv.describe()
    assert all(np.array_equal(a, b) and not np.shares_memory(a, b) for a, b in zip(conv.params(), twin.params()))


def test_from_arrays_validates():
    net = Network((784, 8, 10), seed=0)
    ok = Network.from_arrays(net.weights, net.biases, "relu")
    assert ok.sizes == (784, 8, 10)
    with pytest.raises(ModelFileError, match="mismatched"):
        Network.from_arrays([net.weights[0], net.weights[0]], net.biases, "relu")
    bad = [net.weights[0].copy(), net.weights[1]]
    bad[0][0, 0] = np.nan
    with pytest.raises(ModelFileError, match="NaN"):
        Network.from_arrays(bad, net.biases, "relu")
    with pytest.raises(ModelFileError, match="activation"):
        Network.from_arrays(net.weights, net.biases, "swish")


@pytest.mark.parametrize(
    "kwargs", [dict(sizes=(784,)), dict(sizes=(784, 0, 10)), dict(init="zeros"), dict(activation="elu")]
)
def test_bad_construction_raises_config_error(kwargs):
    with pytest.raises(ConfigError):
        Network(**kwargs)


@pytest.mark.parametrize("name,f,df", [
    ("relu", lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(float)),
    ("sigmoid", lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
    ("tanh", np.tanh, lambda z: 1 - np.tanh(z) ** 2),
])
def test_activation_functions_and_derivatives(name, f, df):
    z = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]], np.float32)
    act = L.activation(name)
    a = act(z)
    np.testing.assert_allclose(a, f(z.astype(np.float64)), rtol=1e-6)
    da = np.ones_like(z)
    act.active = True
    act.build((5,))
    act.bind(1)
    act.derive(a, da, slice(None))  # backward from the output equals the derivative at z
    np.testing.assert_allclose(da, df(z.astype(np.float64)), rtol=1e-5)
    with pytest.raises(ConfigError):
        L.activation("nope")


def test_softmax_is_stable_and_normalised():
    z = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]], np.float32)
    p = L.softmax(z)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-6)
    ref = np.exp([0, 1, 2]) / np.exp([0, 1, 2]).sum()
    np.testing.assert_allclose(p[0], ref, rtol=1e-5)
