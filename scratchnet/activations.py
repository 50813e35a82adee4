"""Activation functions and their derivatives, written so the training loop never allocates.

Each hidden activation works in place on the pre-activation ``Z`` and expresses its derivative
through its *output* ``A`` (relu: A > 0, sigmoid: A(1-A), tanh: 1-A^2), so backward needs no
copy of ``Z``. Softmax is the stable form (subtract the row max before ``exp``).
"""

from __future__ import annotations

import numpy as np


class Activation:
    """A hidden-layer non-linearity: ``forward`` in place, ``backward`` from the output."""

    name = "identity"

    def forward(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def backward(self, a: np.ndarray, da: np.ndarray) -> np.ndarray:
        """Turn dL/dA into dL/dZ in place (``da`` is overwritten and returned)."""
        raise NotImplementedError

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return self.forward(z, out=np.empty_like(z))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ReLU(Activation):
    name = "relu"

    def forward(self, z, out=None):
        return np.maximum(z, 0, out=z if out is None else out)

    def backward(self, a, da):
        # a > 0 exactly where z > 0; multiplying by the boolean mask avoids a float temporary.
        np.multiply(da, a > 0, out=da)
        return da


class Sigmoid(Activation):
    name = "sigmoid"

    def forward(self, z, out=None):
        out = z if out is None else out
        # 1 / (1 + exp(-z)) written in place; exp overflow to inf gives exactly 0, which is right.
        with np.errstate(over="ignore"):
            np.negative(z, out=out)
            np.exp(out, out=out)
        out += 1
        np.reciprocal(out, out=out)
        return out

    def backward(self, a, da):
        da *= a
        da *= 1 - a
        return da


class Tanh(Activation):
    name = "tanh"

    def forward(self, z, out=None):
        return np.tanh(z, out=z if out is None else out)

    def backward(self, a, da):
        da *= 1 - a * a
        return da


ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (ReLU(), Sigmoid(), Tanh())}


def get(name: str) -> Activation:
    from scratchnet.errors import ConfigError

    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(
            f"Unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}."
        ) from None


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


def relu_grad(z: np.ndarray) -> np.ndarray:
    return (z > 0).astype(z.dtype)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return ACTIVATIONS["sigmoid"](np.asarray(z))


def sigmoid_grad(z: np.ndarray) -> np.ndarray:
    s = sigmoid(z)
    return s * (1 - s)


def tanh(z: np.ndarray) -> np.ndarray:
    return np.tanh(z)


def tanh_grad(z: np.ndarray) -> np.ndarray:
    return 1 - np.tanh(z) ** 2


def softmax(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Row-wise softmax; subtracting the row max keeps exp from overflowing."""
    out = np.subtract(z, z.max(axis=-1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=-1, keepdims=True)
    return out


def log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
