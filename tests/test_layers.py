"""Each layer against finite differences and against naive loops; the network built from them."""

import numpy as np
import pytest
from tools.testkit import numeric_grad

from scratchnet import layers as L
from scratchnet.errors import ConfigError
from scratchnet.network import Network


def standalone(layer, in_shape, n, rng):
    """A layer built on its own, with parameters and gradient arrays of its own."""
    layer.build(in_shape, rng, "xavier")
    if layer.has_params:
        params = [p.astype(np.float64) for p in layer.params()]
        params[1][...] = rng.normal(0, 0.3, params[1].shape)
        layer.set_params(params, [np.zeros_like(p) for p in params])
    layer.needs_input_grad = True
    layer.active = True
    layer.bind(n)
    return layer


def check_layer(layer, in_shape, n=3, seed=0, positive=False):
    """Loss = sum(Y * G) for a fixed random G: dL/dY = G, so backward(G) must be dL/dX."""
    rng = np.random.default_rng(seed)
    layer = standalone(layer, in_shape, n, rng)
    X = rng.normal(size=(n, *in_shape))
    if positive:
        X = np.abs(X) + 0.1
    G = rng.normal(size=(n, *layer.out_shape))

    def loss():
        Xin = X.copy()  # activations work in place
        layer.begin(Xin)
        return float((layer.forward(Xin) * G).sum())

    loss()
    Xin = X.copy()
    layer.begin(Xin)
    layer.forward(Xin)
    dX = layer.backward(G.copy())
    dX = dX.copy() if dX is not None else None
    layer.param_grads()
    num_dX = numeric_grad(loss, X)
    np.testing.assert_allclose(dX, num_dX, rtol=1e-5, atol=1e-8)
    if layer.has_params:
        grads = [layer.dW.copy(), layer.db.copy()]
        for p, g in zip(layer.params(), grads):
            np.testing.assert_allclose(g, numeric_grad(loss, p), rtol=1e-5, atol=1e-8)


def test_dense_gradients(float64):
    check_layer(L.Dense(4), (6,))


@pytest.mark.parametrize("c_in,c_out,k", [(1, 1, 3), (1, 4, 3), (2, 3, 5), (3, 2, 1), (4, 5, 3)])
def test_conv_gradients(float64, c_in, c_out, k):
    check_layer(L.Conv2D(c_out, k), (6, 5, c_in), n=2)


@pytest.mark.parametrize("size,hw", [(2, (4, 6)), (2, (5, 7)), (3, (7, 6))])
def test_maxpool_gradients(float64, size, hw):
    check_layer(L.MaxPool2D(size), (*hw, 3), n=2)


def test_maxpool_sends_a_tied_block_gradient_to_one_input_only():
    layer = standalone(L.MaxPool2D(2), (2, 2, 1), 1, np.random.default_rng(0))
    X = np.ones((1, 2, 2, 1), np.float32)
    layer.begin(X)
    layer.forward(X)
    dX = layer.backward(np.full((1, 1, 1, 1), 5.0, np.float32))
    assert dX.sum() == 5.0 and np.count_nonzero(dX) == 1 and dX[0, 0, 0, 0] == 5.0


def test_flatten_gradients(float64):
    check_layer(L.Flatten(), (2, 3, 2))


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh"])
def test_activation_gradients(float64, act):
    # ReLU is not differentiable at 0: keep inputs away from it
    check_layer(L.activation(act), (5,), positive=False, seed=3)


def naive_conv(X, W, b):
    n, H, Wd, C = X.shape
    K, _, _, O = W.shape
    p = K // 2
    Xp = np.zeros((n, H + 2 * p, Wd + 2 * p, C))
    Xp[:, p : p + H, p : p + Wd] = X
    Y = np.zeros((n, H, Wd, O))
    for a in range(n):
        for i in range(H):
            for j in range(Wd):
                for o in range(O):
                    Y[a, i, j, o] = b[o] + sum(
                        Xp[a, i + di, j + dj, c] * W[di, dj, c, o]
                        for di in range(K) for dj in range(K) for c in range(C)
                    )
    return Y


@pytest.mark.parametrize("c_in,c_out,k,hw", [(1, 3, 3, (5, 5)), (2, 4, 5, (6, 7)), (3, 1, 1, (4, 3)), (2, 2, 7, (7, 7))])
def test_conv_forward_matches_loops(c_in, c_out, k, hw):
    rng = np.random.default_rng(1)
    layer = standalone(L.Conv2D(c_out, k), (*hw, c_in), 2, rng)
    X = rng.normal(size=(2, *hw, c_in)).astype(np.float32)
    layer.begin(X)
    Y = layer.forward(X)
    np.testing.assert_allclose(Y, naive_conv(X, layer.W, layer.b), rtol=1e-5, atol=1e-5)


def naive_pool(X, K):
    n, H, W, C = X.shape
    Y = np.zeros((n, H // K, W // K, C))
    for a in range(n):
        for i in range(H // K):
            for j in range(W // K):
                for c in range(C):
                    Y[a, i, j, c] = X[a, i * K : i * K + K, j * K : j * K + K, c].max()
    return Y


@pytest.mark.parametrize("k,hw", [(2, (4, 4)), (2, (7, 5)), (3, (9, 8)), (4, (8, 8))])
def test_maxpool_forward_matches_loops(k, hw):
    rng = np.random.default_rng(2)
    layer = standalone(L.MaxPool2D(k), (*hw, 3), 2, rng)
    X = rng.normal(size=(2, *hw, 3)).astype(np.float32)
    Y = layer.forward(X)
    np.testing.assert_array_equal(Y, naive_pool(X, k))


def small_conv_net(activation="relu", seed=4):
    layers = [L.Conv2D(3, 3), L.activation(activation), L.MaxPool2D(2), L.Conv2D(2, 3),
              L.activation(activation), L.Flatten(), L.Dense(5), L.activation(activation), L.Dense(4)]
    return Network(None, activation, "xavier", seed=seed, layers=layers, input_shape=(6, 6, 1))


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_conv_network_gradients_match_finite_differences(float64, activation, l2):
    net = small_conv_net(activation)
    rng = np.random.default_rng(0)
    for b in net.biases:
        b[...] = rng.normal(0, 0.1, b.shape)
    X = rng.random((5, 36))
    y = rng.integers(0, 4, 5)
    _, grads = net.loss_and_grads(X, y, l2)
    grads = [g.copy() for g in grads]
    for p, g in zip(net.params(), grads):
        np.testing.assert_allclose(g, numeric_grad(lambda: net.loss(X, y, l2), p), rtol=1e-4, atol=1e-7)


def test_rows_in_two_halves_give_the_same_numbers_as_one_pass():
    net = small_conv_net()
    rng = np.random.default_rng(1)
    X = net.as_input(rng.random((9, 36)).astype(np.float32))
    y = rng.integers(0, 4, 9).astype(np.intp)
    net.begin(X)
    whole = net.forward_backward(X, y)
    net.param_grads()
    ref = net.grad_flat.copy()
    net.grad_flat[...] = 0
    net.begin(X)
    a = net.forward_backward(X, y, slice(0, 4), 1 / 9)
    b = net.forward_backward(X, y, slice(4, 9), 1 / 9)
    net.param_grads()
    assert a[1] + b[1] == whole[1]
    assert a[0] + b[0] == pytest.approx(whole[0], rel=1e-6)
    np.testing.assert_allclose(net.grad_flat, ref, rtol=1e-5, atol=1e-7)


def test_notebook_network_is_dense_relu_dense():
    net = Network((784, 10, 10), init="notebook")
    assert [type(l) for l in net.layers] == [L.Dense, L.ReLU, L.Dense]
    assert net.sizes == (784, 10, 10) and net.is_mlp and net.architecture == "dense10"


def test_network_refuses_layer_stacks_that_cannot_work():
    with pytest.raises(ConfigError, match="last layer"):
        Network(None, layers=[L.Dense(5), L.ReLU()], input_shape=(784,))
    with pytest.raises(ConfigError, match="activation must follow"):
        Network(None, layers=[L.ReLU(), L.Dense(10)], input_shape=(784,))
    with pytest.raises(ConfigError, match="flat rows"):
        Network(None, layers=[L.Conv2D(2, 3), L.Dense(10)], input_shape=(28, 28, 1))
    with pytest.raises(ConfigError, match="odd"):
        L.Conv2D(4, 4)
