"""The multilayer perceptron: softmax output, cross-entropy loss, every gradient written out.

Layout is "batches as rows": ``X`` is ``(n, 784)``, ``Z = X @ W + b`` with ``W`` of shape
``(fan_in, fan_out)``. The notebook's ``W.dot(X)`` column layout is the same maths transposed;
rows let NumPy hand whole mini-batches to one BLAS call.

For a softmax output with cross-entropy the gradient at the output pre-activation is simply
``(P - Y) / n`` (the notebook's ``dZ2 = A2 - Y``); we subtract 1 at the true class by integer
indexing instead of building a one-hot matrix.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from scratchnet import activations
from scratchnet.errors import ConfigError, ModelFileError

DTYPE = np.float32
INITS = ("he", "xavier", "notebook")
_EVAL_CHUNK = 8192  # rows per forward pass when evaluating: big enough for BLAS, bounded memory


def _as_batch(X) -> np.ndarray:
    """Accept a batch (n, 784), one row (784,) or one image (28, 28); return float32 rows."""
    X = np.asarray(X)
    if X.ndim == 1 or (X.ndim == 2 and X.shape == (28, 28)):
        X = X.reshape(1, -1)
    elif X.ndim == 3:
        X = X.reshape(X.shape[0], -1)
    if X.dtype != DTYPE:
        X = X.astype(DTYPE)
    return X


class Network:
    """A fully connected network ``sizes[0] -> ... -> sizes[-1]`` with softmax output."""

    def __init__(
        self,
        sizes: Sequence[int] = (784, 256, 128, 10),
        activation: str = "relu",
        init: str = "he",
        seed: int | None = 0,
        rng: np.random.Generator | None = None,
    ):
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ConfigError(f"Layer sizes must be at least two positive numbers, got {sizes}.")
        if init not in INITS:
            raise ConfigError(f"Unknown weight init {init!r}; choose one of {', '.join(INITS)}.")
        self.sizes = sizes
        self.activation = activation
        self._act = activations.get(activation)
        self.init = init
        rng = rng if rng is not None else np.random.default_rng(seed)
        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            if init == "he":  # keeps ReLU activations' variance constant through depth
                W = rng.standard_normal((fan_in, fan_out), dtype=DTYPE) * np.sqrt(2.0 / fan_in)
                b = np.zeros(fan_out, DTYPE)
            elif init == "xavier":  # Glorot uniform, suited to sigmoid/tanh
                limit = np.sqrt(6.0 / (fan_in + fan_out))
                W = rng.uniform(-limit, limit, (fan_in, fan_out))
                b = np.zeros(fan_out, DTYPE)
            else:  # the notebook: np.random.rand(...) - 0.5 for weights and biases alike
                W = rng.random((fan_in, fan_out)) - 0.5
                b = rng.random(fan_out) - 0.5
            self.weights.append(np.ascontiguousarray(W, dtype=DTYPE))
            self.biases.append(np.ascontiguousarray(b, dtype=DTYPE))

    @classmethod
    def from_arrays(cls, weights, biases, activation: str = "relu") -> "Network":
        """Rebuild a network from stored arrays, refusing anything that does not fit together."""
        if len(weights) != len(biases) or not weights:
            raise ModelFileError("The model needs one bias vector per weight matrix.")
        ws = [np.asarray(W) for W in weights]
        bs = [np.asarray(b) for b in biases]
        sizes = [ws[0].shape[0] if ws[0].ndim == 2 else -1]
        for i, (W, b) in enumerate(zip(ws, bs)):
            if W.ndim != 2 or b.ndim != 1 or W.shape[0] != sizes[-1] or b.shape[0] != W.shape[1]:
                raise ModelFileError(
                    f"Layer {i} has mismatched shapes: weights {W.shape}, biases {b.shape}."
                )
            if not (np.issubdtype(W.dtype, np.floating) and np.issubdtype(b.dtype, np.floating)):
                raise ModelFileError(f"Layer {i} does not hold floating-point numbers.")
            if not (np.isfinite(W).all() and np.isfinite(b).all()):
                raise ModelFileError(f"Layer {i} contains NaN or infinite weights.")
            sizes.append(W.shape[1])
        try:
            act = activations.get(activation)
        except ConfigError as err:
            raise ModelFileError(str(err)) from None
        net = cls.__new__(cls)
        net.sizes = tuple(int(s) for s in sizes)
        net.activation = act.name
        net._act = act
        net.init = "loaded"
        net.weights = [np.ascontiguousarray(W, dtype=DTYPE) for W in ws]
        net.biases = [np.ascontiguousarray(b, dtype=DTYPE) for b in bs]
        return net

    # ----------------------------------------------------------------- parameters
    def params(self) -> list[np.ndarray]:
        """The live parameter arrays, interleaved [W0, b0, W1, b1, ...]; optimizers update them."""
        out = []
        for W, b in zip(self.weights, self.biases):
            out += [W, b]
        return out

    @property
    def n_params(self) -> int:
        return sum(p.size for p in self.params())

    def copy(self) -> "Network":
        return Network.from_arrays(
            [W.copy() for W in self.weights], [b.copy() for b in self.biases], self.activation
        )

    def __repr__(self) -> str:
        shape = "-".join(map(str, self.sizes))
        return f"Network({shape}, activation={self.activation!r}, params={self.n_params:,})"

    # ----------------------------------------------------------------- forward
    def forward(self, X) -> list[np.ndarray]:
        """All layer outputs ``[X, A1, ..., P]``; backward needs them, Inspect shows them."""
        A = _as_batch(X)
        acts = [A]
        last = len(self.weights) - 1
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            Z = A @ W
            Z += b
            A = activations.softmax(Z, out=Z) if i == last else self._act.forward(Z)
            acts.append(A)
        return acts

    def logits(self, X) -> np.ndarray:
        """Pre-softmax scores of the output layer."""
        A = _as_batch(X)
        for W, b in zip(self.weights[:-1], self.biases[:-1]):
            A = self._act.forward(A @ W + b)
        return A @ self.weights[-1] + self.biases[-1]

    def predict_proba(self, X) -> np.ndarray:
        X = _as_batch(X)
        if len(X) <= _EVAL_CHUNK:
            return self.forward(X)[-1]
        return np.concatenate(
            [self.forward(X[i : i + _EVAL_CHUNK])[-1] for i in range(0, len(X), _EVAL_CHUNK)]
        )

    def predict(self, X) -> np.ndarray:
        X = _as_batch(X)
        return np.concatenate(
            [
                self.logits(X[i : i + _EVAL_CHUNK]).argmax(axis=1)
                for i in range(0, max(len(X), 1), _EVAL_CHUNK)
            ]
        ).astype(np.int64)

    def accuracy(self, X, y) -> float:
        y = np.asarray(y)
        if len(y) == 0:
            return float("nan")
        return float((self.predict(X) == y).mean())

    # ----------------------------------------------------------------- loss and gradients
    def loss(self, X, y, l2: float = 0.0) -> float:
        """Mean cross-entropy, computed from logits with log-sum-exp so it never saturates."""
        y = np.asarray(y)
        X = _as_batch(X)
        total = 0.0
        for i in range(0, len(X), _EVAL_CHUNK):
            Z = self.logits(X[i : i + _EVAL_CHUNK]).astype(np.float64)
            yy = y[i : i + _EVAL_CHUNK]
            m = Z.max(axis=1)
            lse = m + np.log(np.exp(Z - m[:, None]).sum(axis=1))
            total += float((lse - Z[np.arange(len(yy)), yy]).sum())
        return total / len(X) + self._l2_term(l2)

    def _l2_term(self, l2: float) -> float:
        if not l2:
            return 0.0
        return 0.5 * l2 * float(sum(np.vdot(W, W) for W in self.weights))

    def backward(self, acts: list[np.ndarray], y, l2: float = 0.0) -> list[np.ndarray]:
        """Gradients of the mean cross-entropy (+ l2/2 * sum W^2) for every parameter.

        ``acts`` is what :meth:`forward` returned for the same batch; it is not modified.
        """
        y = np.asarray(y)
        n = len(y)
        dZ = acts[-1].copy()
        dZ[np.arange(n), y] -= 1  # P - Y without a one-hot matrix
        dZ /= n
        grads: list[np.ndarray] = [None] * (2 * len(self.weights))  # type: ignore[list-item]
        for i in range(len(self.weights) - 1, -1, -1):
            W = self.weights[i]
            gW = acts[i].T @ dZ
            if l2:
                gW += l2 * W
            grads[2 * i] = gW
            grads[2 * i + 1] = dZ.sum(axis=0)
            if i > 0:  # the input layer's gradient is never needed
                dZ = self._act.backward(acts[i], dZ @ W.T)
        return grads

    def forward_with_loss(self, X, y) -> tuple[list[np.ndarray], float, int]:
        """One training forward pass: activations, mean cross-entropy and number correct.

        The loss comes from the shifted logits (log-sum-exp), not from ``log(P)``, so a very
        confident mistake costs a large finite number instead of ``-log(0) = inf``.
        """
        y = np.asarray(y)
        A = _as_batch(X)
        acts = [A]
        for W, b in zip(self.weights[:-1], self.biases[:-1]):
            Z = A @ W
            Z += b
            A = self._act.forward(Z)
            acts.append(A)
        Z = A @ self.weights[-1]
        Z += self.biases[-1]
        rows = np.arange(len(y))
        correct = int((Z.argmax(axis=1) == y).sum())
        Z -= Z.max(axis=1, keepdims=True)
        z_true = Z[rows, y].astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            np.exp(Z, out=Z)
            s = Z.sum(axis=1, keepdims=True)
            Z /= s
            loss = float(np.log(s[:, 0].astype(np.float64)).mean() - z_true.mean())
        acts.append(Z)
        return acts, loss, correct

    def loss_and_grads(self, X, y, l2: float = 0.0) -> tuple[float, list[np.ndarray]]:
        y = np.asarray(y)
        acts, loss, _ = self.forward_with_loss(X, y)
        return loss + self._l2_term(l2), self.backward(acts, y, l2)
