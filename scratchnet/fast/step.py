"""A training step of a network's own layers, on one core or split over two.

:class:`Step` calls ``Network.begin / forward_backward / Layer.param_grads`` and never computes
anything itself; what it decides is who does which part:

1. Forward, loss and every layer's output gradient are per row: with a :class:`PairRunner`,
   each half of the batch's rows goes on a core (``rows=slice(0, h)`` and ``slice(h, m)``).
2. Weight gradients and the optimizer update are per parameter: each half of the flat parameter
   buffer gets its gradients and, right away, its update. The cut is placed so both halves cost
   about the same, between two rows of one weight matrix.

Without a runner each stage runs whole, which is faster on one core or with OpenBLAS's own
threads, and gives the same numbers. Batches larger than ``capacity`` (full-batch gradient
descent) go through :meth:`Step.loss_and_grads` in chunks, in two lanes, one per core, summed in a
fixed order: a chunk stays in cache between its forward and backward pass, so the 185 MB training
set is read from memory once per iteration, not twice.
"""

from __future__ import annotations

import numpy as np

from scratchnet.layers import ALL

# Work smaller than this many multiply-adds is not worth handing to a second thread: a hand-off
# costs ~40 us on each side, the row halves of stage 1 are many small NumPy calls that hold the
# GIL, and Adam's passes are limited by memory bandwidth shared by both cores.
# Measured per training step (784-256-128-10, Adam): at batch 32 both splits cost more than they
# save, at 64 they break even, at 128 they make a step 1.4x faster.
PARALLEL_ROWS_MIN_MACS = 16_000_000
PARALLEL_PARAMS_MIN_MACS = 12_000_000


class Step:
    """The training step of ``net`` for batches of up to ``capacity`` rows."""

    def __init__(self, net, capacity: int, runner=None):
        self.net = net
        self.capacity = int(capacity)
        self.runner = runner  # a PairRunner, or None; ThreadChoice may change it between steps
        self.grad_flat = net.grad_flat
        self._plans: dict = {}
        self._lanes = None  # for chunked batches: the second lane's network (shared parameters)
        self._acc = None  # per lane: the sum of its chunks' gradients

    # ------------------------------------------------------------------ stage 1
    def forward_backward(self, X: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """Forward, loss and output gradients for a batch of up to ``capacity`` rows.

        ``y`` must be valid integer labels (train() checks them once). Returns (mean
        cross-entropy, rows classified correctly); call :meth:`backward_update` next.
        """
        net, m = self.net, len(y)
        if m > self.capacity:
            raise ValueError(f"A batch of {m} rows does not fit a step for {self.capacity}.")
        if m == 0:
            raise ValueError("A training step needs at least one row.")
        net.begin(X)
        scale = 1.0 / m
        if self.runner is not None and m >= 2 and m * net.macs_per_row() >= PARALLEL_ROWS_MIN_MACS:
            h = m // 2
            out = [None, None]

            def first():
                out[0] = net.forward_backward(X, y, slice(0, h), scale)

            def second():
                out[1] = net.forward_backward(X, y, slice(h, m), scale)

            self.runner.run(first, second)
            return out[0][0] + out[1][0], out[0][1] + out[1][1]
        return net.forward_backward(X, y, ALL, scale)

    # ------------------------------------------------------------------ stage 2
    def backward_update(self, l2: float = 0.0, optimizer=None) -> None:
        """Weight and bias gradients into ``grad_flat``, then (with ``optimizer``) the update.

        ``optimizer`` must update the network's flat parameter buffer and have had
        ``begin_step()`` called for this step.
        """
        cost = 8 * optimizer.cost if optimizer is not None else 0  # one pass ~ 8 multiply-adds
        plan = self._plan(cost) if self.runner is not None else None
        total = len(self.grad_flat)
        if plan is None:
            self.net.param_grads(l2)
            if optimizer is not None:
                optimizer.update(0, self.grad_flat, 0, total)
            return
        first_parts, second_parts, cut = plan

        def first():
            for layer, lo, hi in first_parts:
                layer.param_grads(l2, lo, hi)
            if optimizer is not None:
                optimizer.update(0, self.grad_flat, 0, cut)

        def second():
            for layer, lo, hi in second_parts:
                layer.param_grads(l2, lo, hi)
            if optimizer is not None:
                optimizer.update(0, self.grad_flat, cut, total)

        self.runner.run(first, second)

    def _plan(self, per_param: int):
        """Two halves of the parameters of about equal work, cut between rows of a weight matrix.

        Returns ([(layer, lo, hi)] for each half, flat offset of the cut), or None when the job
        is too small for a second thread. Depends only on shapes (and the rows in use).
        """
        layers = self.net.param_layers
        rows = [l.grad_rows() for l in layers]
        depth = [l.grad_depth() for l in layers]
        key = (per_param, tuple(rows), tuple(depth))
        if key in self._plans:
            return self._plans[key]
        outs = [l.dW.shape[-1] for l in layers]
        row_cost = [o * (d + per_param) for o, d in zip(outs, depth)]
        plan = None
        if sum(k * o * d for k, o, d in zip(rows, outs, depth)) >= PARALLEL_PARAMS_MIN_MACS:
            target, acc = sum(k * c for k, c in zip(rows, row_cost)) / 2, 0.0
            for i, (k, c) in enumerate(zip(rows, row_cost)):
                if c and acc + k * c >= target:
                    r = min(k, max(0, round((target - acc) / c)))
                    break
                acc += k * c
            if r == rows[i]:  # the cut falls after this layer's bias: at the start of the next one
                i, r = i + 1, 0
            if i < len(layers):
                offsets = self.net.param_offsets()
                w_index = sum(len(l.param_shapes()) for l in layers[:i])
                cut = offsets[w_index] + layers[i].flat_row(r) * outs[i]
                first = [(layers[j], 0, rows[j]) for j in range(i)] + ([(layers[i], 0, r)] if r else [])
                second = [(layers[i], r, rows[i])] + [(layers[j], 0, rows[j]) for j in range(i + 1, len(layers))]
                plan = (first, second, cut)
        self._plans[key] = plan
        return plan

    # ------------------------------------------------------------------ batches larger than capacity
    def loss_and_grads(self, X: np.ndarray, y: np.ndarray, l2: float = 0.0) -> tuple[float, int]:
        """Gradients of a batch of any size into ``grad_flat``, in chunks of ``capacity`` rows.

        Returns (mean cross-entropy without the L2 term, rows classified correctly).
        """
        n = len(y)
        scale = 1.0 / n
        if self._lanes is None:
            self._lanes = self.net.twin()
            self._acc = (np.empty_like(self.grad_flat), np.empty_like(self.grad_flat))
        half = -(-(n // 2) // self.capacity) * self.capacity
        out = [None, None]

        def lane_a():
            out[0] = self._chunks(self.net, self._acc[0], X[:half], y[:half], scale)

        def lane_b():
            out[1] = self._chunks(self._lanes, self._acc[1], X[half:], y[half:], scale)

        if self.runner is None:
            lane_a()
            lane_b()
        else:
            self.runner.run(lane_a, lane_b)
        np.add(self._acc[0], self._acc[1], out=self.grad_flat)
        if l2:
            for W, dW in zip(self.net.weights, self.net.grads()[0::2]):
                dW += np.float32(l2) * W
        return out[0][0] + out[1][0], out[0][1] + out[1][1]

    def _chunks(self, net, acc, X, y, scale) -> tuple[float, int]:
        """Sum the gradients of consecutive ``capacity``-row chunks into ``acc`` (one core)."""
        loss, correct = 0.0, 0
        acc[...] = 0
        for i in range(0, len(y), self.capacity):
            Xc, yc = X[i : i + self.capacity], y[i : i + self.capacity]
            net.begin(Xc)
            part = net.forward_backward(Xc, yc, ALL, scale)
            net.param_grads()
            acc += net.grad_flat
            loss += part[0]
            correct += part[1]
        return loss, correct


def augment_halves(augment, Xb, yb, rng, runner) -> None:
    """Augment a batch in place as two halves, each with its own generator drawn from ``rng``.

    The halves run on both cores when there is a runner; either way the numbers are the same,
    because each half's randomness is fixed before anything runs.
    """
    m = len(Xb)
    if m < 2:
        augment(Xb, yb, rng)
        return
    h = m // 2
    first, second = (np.random.default_rng(s) for s in rng.integers(0, 2**63, size=2))
    if runner is None:
        augment(Xb[:h], yb[:h], first)
        augment(Xb[h:], yb[h:], second)
    else:
        runner.run(lambda: augment(Xb[:h], yb[:h], first), lambda: augment(Xb[h:], yb[h:], second))
