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


def _part(a: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return a.reshape(-1)[lo:hi]


class Optimizer:
    """Updates ``params`` in place from gradients.

    ``step(grads)`` updates everything. The training loop instead calls ``begin_step()`` once and
    then ``update(i, grad, lo, hi)`` for element ranges of parameter ``i`` -- the two halves of the
    network's flat parameter buffer, each on its own core right after its gradients are ready.
    Every rule is element-wise, so how the elements are split never changes a number.
    """

    name = "base"
    cost = 2  # element-wise passes per parameter (tells the trainer how to balance the halves)

    def __init__(self, params: list[np.ndarray], lr: float):
        self.params = params
        self.lr = float(lr)
        self.t = 0
        # Optional ``PairRunner`` (see network.py): ``step`` then splits large arrays in two
        # halves done on both cores.
        self.runner = None

    def step(self, grads: list[np.ndarray]) -> None:
        self.begin_step()
        for i, (p, g) in enumerate(zip(self.params, grads)):
            n = p.size
            if self.runner is not None and n >= PARALLEL_MIN_SIZE:
                h = (n // 2 + 15) // 16 * 16  # a cache-line boundary near the middle
                self.runner.run(lambda: self.update(i, g, 0, h), lambda: self.update(i, g, h, n))
            else:
                self.update(i, g, 0, n)

    def begin_step(self) -> None:
        self.t += 1

    def update(self, i: int, grad: np.ndarray, lo: int, hi: int) -> None:
        """Update elements [lo, hi) of parameter ``i`` (flattened); ``grad`` may be scribbled on."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr:g})"


class GD(Optimizer):
    """Plain gradient descent: θ -= α g."""

    name = "gd"

    def update(self, i, grad, lo, hi):
        g = _part(grad, lo, hi)
        g *= self.lr  # the gradient buffers are ours to scribble on
        p = _part(self.params[i], lo, hi)
        p -= g


class SGD(GD):
    name = "sgd"


class Momentum(Optimizer):
    """Heavy-ball momentum: v = μ v - α g; θ += v."""

    name = "momentum"
    cost = 4

    def __init__(self, params, lr, momentum: float = 0.9):
        super().__init__(params, lr)
        self.momentum = float(momentum)
        self.velocity = [np.zeros_like(p) for p in params]

    def update(self, i, grad, lo, hi):
        v, g = _part(self.velocity[i], lo, hi), _part(grad, lo, hi)
        v *= self.momentum
        g *= self.lr
        v -= g
        p = _part(self.params[i], lo, hi)
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
    cost = 12  # ten passes, one of them a (slow, not vectorised) square root

    def __init__(self, params, lr, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(params, lr)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.m = [np.zeros_like(p) for p in params]  # first moment / (1 - beta1)
        self.v = [np.zeros_like(p) for p in params]  # second moment / (1 - beta2)
        self._tmp = [np.empty_like(p) for p in params]

    def begin_step(self):
        super().begin_step()
        b1, b2 = self.beta1, self.beta2
        c1 = 1 - b1**self.t
        c2 = 1 - b2**self.t
        r = math.sqrt((1 - b2) / c2)  # sqrt(v_true / c2) = r * sqrt(v)
        self._step = self.lr * (1 - b1) / (c1 * r)
        self._eps = self.eps / r

    def update(self, i, grad, lo, hi):
        p, m, v, tmp = (_part(a[i], lo, hi) for a in (self.params, self.m, self.v, self._tmp))
        g = _part(grad, lo, hi)
        m *= self.beta1
        m += g
        np.multiply(g, g, out=tmp)
        v *= self.beta2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += self._eps
        np.divide(m, tmp, out=tmp)
        tmp *= self._step
        p -= tmp


OPTIMIZERS = {"gd": GD, "sgd": SGD, "momentum": Momentum, "adam": Adam}


def make(name: str, params: list[np.ndarray], lr: float, momentum: float = 0.9) -> Optimizer:
    if name not in OPTIMIZERS:
        raise ConfigError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")
    if name == "momentum":
        return Momentum(params, lr, momentum)
    return OPTIMIZERS[name](params, lr)
