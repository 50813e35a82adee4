"""Gradients against finite differences, and the network's public behaviour."""

import numpy as np
import pytest

from scratchnet import activations
from scratchnet.errors import ConfigError, ModelFileError
from scratchnet.network import Network


def _numeric_grad(f, x, eps=1e-5):
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def _small_problem(activation, l2=0.0, sizes=(6, 5, 4, 3)):
    rng = np.random.default_rng(1)
    net = Network(sizes, activation=activation, init="xavier", seed=3)
    # float64 copies so the finite differences are accurate; the maths is dtype-agnostic.
    net.weights = [W.astype(np.float64) for W in net.weights]
    net.biases = [rng.normal(0, 0.1, b.shape) for b in net.biases]
    X = rng.normal(size=(7, sizes[0]))
    y = rng.integers(0, sizes[-1], 7)
    return net, X, y


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_backward_matches_finite_differences(activation, l2, monkeypatch):
    net, X, y = _small_problem(activation, l2)
    monkeypatch.setattr("scratchnet.network._as_batch", lambda X: np.asarray(X, np.float64))
    _, grads = net.loss_and_grads(X, y, l2)
    for p, g in zip(net.params(), grads):
        num = _numeric_grad(lambda: net.loss(X, y, l2), p)
        np.testing.assert_allclose(g, num, rtol=1e-4, atol=1e-7)


def test_loss_matches_definition():
    net, X, y = _small_problem("tanh")
    P = net.predict_proba(X).astype(np.float64)
    expected = -np.log(P[np.arange(len(y)), y]).mean()
    assert net.loss(X, y) == pytest.approx(expected, rel=1e-5)
    l2 = 0.3
    reg = 0.5 * l2 * sum((W.astype(np.float64) ** 2).sum() for W in net.weights)
    assert net.loss(X, y, l2) == pytest.approx(expected + reg, rel=1e-5)


def test_forward_with_loss_agrees_with_loss_and_counts_correct():
    net = Network((784, 32, 10), seed=0)
    rng = np.random.default_rng(0)
    X = rng.random((50, 784), dtype=np.float32)
    y = rng.integers(0, 10, 50)
    acts, loss, correct = net.forward_with_loss(X, y)
    assert loss == pytest.approx(net.loss(X, y), rel=1e-4)
    assert correct == int((net.predict(X) == y).sum())
    np.testing.assert_allclose(acts[-1], net.predict_proba(X), rtol=1e-5)


def test_loss_is_finite_for_confident_mistakes():
    net = Network((4, 3), init="he", seed=0)
    net.weights[0][...] = 0
    net.biases[0][...] = [500, 0, -500]
    X = np.zeros((1, 4), np.float32)
    assert net.loss(X, [2]) == pytest.approx(1000, rel=1e-3)
    _, loss, _ = net.forward_with_loss(X, np.array([2]))
    assert loss == pytest.approx(1000, rel=1e-3)


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


def test_inits_have_the_intended_scale():
    he = Network((784, 256, 10), init="he", seed=0)
    assert he.weights[0].std() == pytest.approx(np.sqrt(2 / 784), rel=0.05)
    assert not he.biases[0].any()
    xa = Network((784, 256, 10), init="xavier", seed=0)
    limit = np.sqrt(6 / (784 + 256))
    assert abs(xa.weights[0]).max() <= limit
    assert xa.weights[0].std() == pytest.approx(limit / np.sqrt(3), rel=0.05)


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


def test_copy_is_independent():
    net = Network((784, 8, 10), seed=0)
    twin = net.copy()
    twin.weights[0] += 1
    assert not np.array_equal(net.weights[0], twin.weights[0])


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


def test_activation_functions_and_derivatives():
    z = np.array([-2.0, -0.5, 0.0, 0.5, 2.0], np.float32)
    np.testing.assert_allclose(activations.relu(z), [0, 0, 0, 0.5, 2])
    np.testing.assert_allclose(activations.relu_grad(z), [0, 0, 0, 1, 1])
    s = 1 / (1 + np.exp(-z.astype(np.float64)))
    np.testing.assert_allclose(activations.sigmoid(z), s, rtol=1e-6)
    np.testing.assert_allclose(activations.sigmoid_grad(z), s * (1 - s), rtol=1e-5)
    np.testing.assert_allclose(activations.tanh(z), np.tanh(z), rtol=1e-6)
    np.testing.assert_allclose(activations.tanh_grad(z), 1 - np.tanh(z) ** 2, rtol=1e-5)
    # backward-from-output equals the derivative at z
    for name, grad in [("relu", activations.relu_grad), ("sigmoid", activations.sigmoid_grad),
                       ("tanh", activations.tanh_grad)]:
        act = activations.get(name)
        a = act(z.copy())
        np.testing.assert_allclose(act.backward(a, np.ones_like(z)), grad(z), rtol=1e-5)
    with pytest.raises(ConfigError):
        activations.get("nope")


def test_softmax_is_stable_and_normalised():
    z = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]], np.float32)
    p = activations.softmax(z)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-6)
    ref = np.exp([0, 1, 2]) / np.exp([0, 1, 2]).sum()
    np.testing.assert_allclose(p[0], ref, rtol=1e-5)
    np.testing.assert_allclose(np.exp(activations.log_softmax(z)), p, rtol=1e-5, atol=1e-30)
