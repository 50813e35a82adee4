"""Parameter updates, each in place over the network's live arrays.

``gd`` is the notebook's rule θ := θ - α ∂L/∂θ; "full batch" is a property of the training loop
(batch size = n), not of the update, so ``gd`` and ``sgd`` share it. Adam works in place with one
scratch buffer per parameter: its element-wise passes are a third of an epoch's time otherwise.
"""

from __future__ import annotations

import math

import numpy as np

from scratchnet.errors import ConfigError


PARALLEL_MIN_SIZE = 32_768  # elements; below this a second thread costs more than it saves


class Optimizer:
    name = "base"

    def __init__(self, params: list[np.ndarray], lr: float):
        self.params = params
        self.lr = float(lr)
        self.t = 0
        # Optional ``PairRunner`` (see network.py): large element-wise updates are then split in
        # two halves done on both cores. Element-wise maths gives the same numbers either way.
        self.runner = None

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        self._update(grads)

    def _update(self, grads: list[np.ndarray]) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr:g})"


class GD(Optimizer):
    """Plain gradient descent: θ -= α g."""

    name = "gd"

    def _update(self, grads):
        for p, g in zip(self.params, grads):
            g *= self.lr  # the gradient buffers are ours to scribble on
            p -= g


class SGD(GD):
    name = "sgd"


class Momentum(Optimizer):
    """Heavy-ball momentum: v = μ v - α g; θ += v."""

    name = "momentum"

    def __init__(self, params, lr, momentum: float = 0.9):
        super().__init__(params, lr)
        self.momentum = float(momentum)
        self.velocity = [np.zeros_like(p) for p in params]

    def _update(self, grads):
        for p, g, v in zip(self.params, grads, self.velocity):
            v *= self.momentum
            g *= self.lr
            v -= g
            p += v


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction folded into the step size.

    Every pass over the parameters costs about as much as a small matrix product, so the update
    is written in ten in-place passes: the moments are stored divided by their (1 - beta)
    factors (``m = m_true / (1 - beta1)``, ``v = v_true / (1 - beta2)``), which turns their
    updates into ``m = beta1 m + g`` and ``v = beta2 v + g^2``, and every constant (learning rate,
    bias corrections, those factors) is folded into one step size and one epsilon.
    """

    name = "adam"

    def __init__(self, params, lr, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(params, lr)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.m = [np.zeros_like(p) for p in params]  # first moment / (1 - beta1)
        self.v = [np.zeros_like(p) for p in params]  # second moment / (1 - beta2)
        self._tmp = [np.empty_like(p) for p in params]

    def _update(self, grads):
        b1, b2 = self.beta1, self.beta2
        c1 = 1 - b1**self.t
        c2 = 1 - b2**self.t
        # sqrt(v_true / c2) = r * sqrt(v)
        r = math.sqrt((1 - b2) / c2)
        step = self.lr * (1 - b1) / (c1 * r)
        eps = self.eps / r
        for arrays in zip(self.params, grads, self.m, self.v, self._tmp):
            size = arrays[0].size
            if self.runner is not None and size >= PARALLEL_MIN_SIZE and arrays[0].ndim == 1:
                h = (size // 2 + 15) // 16 * 16  # a cache-line boundary near the middle
                self.runner.run(
                    lambda: _adam_pass(*(a[:h] for a in arrays), b1, b2, step, eps),
                    lambda: _adam_pass(*(a[h:] for a in arrays), b1, b2, step, eps),
                )
            else:
                _adam_pass(*arrays, b1, b2, step, eps)


def _adam_pass(p, g, m, v, tmp, b1, b2, step, eps) -> None:
    m *= b1
    m += g
    np.multiply(g, g, out=tmp)
    v *= b2
    v += tmp
    np.sqrt(v, out=tmp)
    tmp += eps
    np.divide(m, tmp, out=tmp)
    tmp *= step
    p -= tmp


OPTIMIZERS = {"gd": GD, "sgd": SGD, "momentum": Momentum, "adam": Adam}


def make(name: str, params: list[np.ndarray], lr: float, momentum: float = 0.9) -> Optimizer:
    if name not in OPTIMIZERS:
        raise ConfigError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")
    if name == "momentum":
        return Momentum(params, lr, momentum)
    return OPTIMIZERS[name](params, lr)
