"""The multilayer perceptron: softmax output, cross-entropy loss, every gradient written out.

Layout is "batches as rows": ``X`` is ``(n, 784)``, ``Z = X @ W + b`` with ``W`` of shape
``(fan_in, fan_out)``. The notebook's ``W.dot(X)`` column layout is the same maths transposed;
rows let NumPy hand whole mini-batches to one BLAS call.

For a softmax output with cross-entropy the gradient at the output pre-activation is simply
``(P - Y) / n`` (the notebook's ``dZ2 = A2 - Y``); we subtract 1 at the true class by integer
indexing instead of building a one-hot matrix.
"""

from __future__ import annotations

import threading
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


_ALIGN = 16  # floats (64 bytes): every parameter starts on its own cache line


def _layout(shapes) -> tuple[list[tuple[int, tuple[int, ...]]], int]:
    """(offset, shape) of each parameter inside one flat buffer, and the buffer's length."""
    out, pos = [], 0
    for shape in shapes:
        out.append((pos, tuple(shape)))
        size = int(np.prod(shape))
        pos += -(-size // _ALIGN) * _ALIGN
    return out, pos


def _views(flat: np.ndarray, layout) -> list[np.ndarray]:
    return [flat[o : o + int(np.prod(shape))].reshape(shape) for o, shape in layout]


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
        weights, biases = [], []
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
            weights.append(W)
            biases.append(b)
        self._pack(weights, biases)

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
        net._pack(ws, bs)
        return net

    # ----------------------------------------------------------------- parameters
    def params(self) -> list[np.ndarray]:
        """The live parameter arrays, interleaved [W0, b0, W1, b1, ...]; optimizers update them."""
        out = []
        for W, b in zip(self.weights, self.biases):
            out += [W, b]
        return out

    def _pack(self, weights, biases) -> None:
        """Copy the parameters into one flat float32 buffer and keep views of it as the live arrays.

        One buffer lets an optimizer update every parameter with a handful of whole-buffer
        operations instead of a handful per array, which is most of Adam's cost for small layers.
        """
        shapes = [a.shape for pair in zip(weights, biases) for a in (np.asarray(pair[0]), np.asarray(pair[1]))]
        layout, total = _layout(shapes)
        flat = np.zeros(total, DTYPE)
        views = _views(flat, layout)
        for v, a in zip(views, [a for pair in zip(weights, biases) for a in pair]):
            v[...] = a
        self._flat, self._layout, self._views = flat, layout, views
        self.weights = views[0::2]
        self.biases = views[1::2]

    def flat_params(self) -> np.ndarray:
        """All parameters as one flat float32 array; ``weights``/``biases`` are views into it.

        If someone replaced a weight array (``net.weights[0] = ...``), the current arrays are
        packed again first, so the result is always the live parameters.
        """
        views = getattr(self, "_views", None)
        if views is None or any(p is not v for p, v in zip(self.params(), views)) or len(
            self.params()
        ) != len(views):
            self._pack(list(self.weights), list(self.biases))
        return self._flat

    def grad_layout(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """A zeroed flat buffer shaped like :meth:`flat_params`, and its per-parameter views."""
        self.flat_params()
        g = np.zeros_like(self._flat)
        return g, _views(g, self._layout)

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
    def _hidden(self, X) -> list[np.ndarray]:
        """``[X, A1, ..., A_last_hidden]``: the part every forward pass shares."""
        A = _as_batch(X)
        acts = [A]
        for W, b in zip(self.weights[:-1], self.biases[:-1]):
            Z = A @ W
            Z += b
            A = self._act.forward(Z)
            acts.append(A)
        return acts

    def _output_logits(self, A: np.ndarray) -> np.ndarray:
        Z = A @ self.weights[-1]
        Z += self.biases[-1]
        return Z

    def forward(self, X) -> list[np.ndarray]:
        """All layer outputs ``[X, A1, ..., P]``; backward needs them, Inspect shows them."""
        acts = self._hidden(X)
        Z = self._output_logits(acts[-1])
        acts.append(activations.softmax(Z, out=Z))
        return acts

    def logits(self, X) -> np.ndarray:
        """Pre-softmax scores of the output layer."""
        return self._output_logits(self._hidden(X)[-1])

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
        acts = self._hidden(X)
        Z = self._output_logits(acts[-1])
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


class PairRunner:
    """Run two independent NumPy calls on two cores at once, when a second core is free.

    NumPy releases the GIL inside BLAS calls and element-wise loops, so a helper thread can do one
    half of a matrix product while this thread does the other. Each half is claimed by whichever
    thread gets to it first: when the machine is busy and the helper is not scheduled in time,
    the caller simply does both halves itself, so a loaded machine costs a lock instead of the
    collapse seen with a multi-threaded BLAS that spin-waits for a descheduled thread. Which
    thread computes a half never changes the numbers, so results stay bit-for-bit reproducible.
    """

    def __init__(self):
        self._go = threading.Event()
        self._done = threading.Event()
        self._task = None
        self._claim = None
        self._error: BaseException | None = None
        self._closed = False
        self._busy = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="scratchnet-pair", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self._go.wait()
            self._go.clear()
            if self._closed:
                return
            task, claim = self._task, self._claim
            if claim is not None and claim.acquire(False):
                try:
                    task()
                except BaseException as err:  # handed to the caller, never lost in the thread
                    self._error = err
                finally:
                    self._done.set()

    def run(self, first, second) -> None:
        """Call ``first()`` and ``second()``, possibly at the same time; return when both are done.

        A call made while another is in progress (nested, or from another thread) runs both
        tasks in the calling thread.
        """
        if not self._busy.acquire(False):
            first()
            second()
            return
        try:
            self._run(first, second)
        finally:
            self._busy.release()

    def _run(self, first, second) -> None:
        claim = threading.Lock()
        self._task, self._claim = second, claim
        self._done.clear()
        self._go.set()
        try:
            first()
        except BaseException:
            if not claim.acquire(False):
                self._done.wait()  # the helper is still on ``second``: never leave it running
                self._error = None
            raise
        if claim.acquire(False):
            second()
        else:
            self._done.wait()
            if self._error is not None:
                err, self._error = self._error, None
                raise err

    def close(self) -> None:
        self._closed = True
        self._task = self._claim = None
        self._go.set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# Work smaller than this many multiply-adds is not worth handing to a second thread: a hand-off
# costs ~40 us on each side, the row halves of stage 1 are many small NumPy calls that hold the
# GIL, and Adam's passes are limited by memory bandwidth shared by both cores.
# Measured per training step (784-256-128-10, Adam): at batch 32 both splits cost more than they
# save, at 64 they break even, at 128 they make a step 1.4x faster.
PARALLEL_ROWS_MIN_MACS = 16_000_000
PARALLEL_PARAMS_MIN_MACS = 12_000_000
# OpenBLAS multiplies matrices of up to ~1e6 multiply-adds with "small matrix" kernels that skip
# packing the operands into buffers. For a skinny first layer (784 -> 10, the notebook's) packing
# the images costs more than the arithmetic, so we feed that layer slices of rows that stay under
# the limit: the notebook preset's iteration became 2.3x faster.
SMALL_GEMM_MACS = 1_000_000
SMALL_GEMM_MIN_ROWS = 32
# Pixels that are 0 in every image of a batch contribute nothing to the first layer, forward or
# backward: MNIST batches of 128 leave about a third of the 784 pixels blank, so the first (and
# largest) layer multiplies only the columns in use, unless nearly all of them are.
COMPACT_MAX_FRACTION = 0.85


class Workspace:
    """Preallocated buffers for training steps on batches of up to ``capacity`` rows.

    The maths is :meth:`Network.forward_with_loss` followed by :meth:`Network.backward`, but every
    intermediate lives in a buffer allocated once, and gradients land in one flat array laid out
    like :meth:`Network.flat_params`. A training step has two stages, each split in two halves
    that a :class:`PairRunner` runs on both cores (without one, each stage runs whole, which is
    faster on one core or with OpenBLAS's own threads, and gives the very same numbers):

    1. :meth:`forward_backward`, split by rows: each half of the batch goes forward, through the
       softmax and the loss, and back through every layer's dL/dZ -- all of that is per row.
    2. :meth:`backward_update`, split by parameters: each half of the flat parameter buffer gets
       its weight and bias gradients (``A^T dZ`` for its rows of each ``W``) and, right away, its
       optimizer update. The cut is placed so both halves cost about the same.

    So a step hands work to the second core twice, however deep the network. Batches larger than
    ``capacity`` (full-batch gradient descent) go through :meth:`loss_and_grads` in chunks, in
    two lanes summed in a fixed order: a chunk stays in cache between its forward and backward
    pass, so the 185 MB training set is read from memory once per iteration, not twice.
    """

    def __init__(self, net: Network, capacity: int, runner: PairRunner | None = None):
        self.net = net
        self.capacity = int(capacity)
        self.runner = runner
        self.grad_flat, self.grads = net.grad_layout()
        self._flat = net._flat
        cap = self.capacity
        widths = net.sizes[1:]
        self._acts = [np.empty((cap, w), DTYPE) for w in widths]  # A1 .. P (then dL/dZ of the output)
        self._deltas = [np.empty((cap, w), DTYPE) for w in widths[:-1]]  # dL/dZ of hidden layers
        self._relu = net._act.name == "relu"
        # np.maximum with a scalar 0 takes a slow path; a zero array of the same shape is SIMD
        self._zeros = [np.zeros((cap, w), DTYPE) for w in widths[:-1]] if self._relu else []
        self._masks = [np.empty((cap, w), bool) for w in widths[:-1]] if self._relu else []
        self._row_base = np.arange(cap, dtype=np.intp) * widths[-1]
        # sums along short rows or down columns are faster as matrix-vector products with ones
        self._ones = np.ones(cap, DTYPE)
        self._ones_out = np.ones(widths[-1], DTYPE)
        self._row_max = np.empty(cap, DTYPE)
        rows = SMALL_GEMM_MACS // (net.sizes[0] * net.sizes[1]) // 16 * 16
        self._slice = rows if SMALL_GEMM_MIN_ROWS <= rows < cap else 0
        if self._slice:  # dZ^T of the first layer and one slice's gradient, both (fan_out, fan_in)
            self._dz0_t = np.empty((net.sizes[1], cap), DTYPE)
            self._g0_t = np.empty((net.sizes[1], net.sizes[0]), DTYPE)
            self._g0_part = np.empty_like(self._g0_t)
        self._lanes = None  # for chunked batches: a second workspace, the other half's lane
        self._part = None  # gradients of one chunk, summed into grad_flat
        self._plans: dict = {}
        n_in, fan_out = net.sizes[0], net.sizes[1]
        self._compact = not self._slice and n_in >= 64
        if self._compact:  # the batch's non-blank columns, W0's matching rows, their gradient
            self._xc = np.empty(cap * n_in, DTYPE)
            self._w0c = np.empty((n_in, fan_out), DTYPE)
            self._g0c = np.empty((n_in, fan_out), DTYPE)
            self._col_hi = np.empty(n_in, DTYPE)
            self._col_lo = np.empty(n_in, DTYPE)
        self._cols = None  # indices of the batch's non-blank columns, when compacted
        # Set by a caller that knows every input is >= 0 (train() checks its data once): the
        # blank columns are then those whose maximum is 0, one pass over the batch instead of a
        # maximum and a minimum pass.
        self.nonnegative = False
        self._m = 0  # rows of the batch that forward_backward saw last
        self._X = None

    # ------------------------------------------------------------------ public steps
    def loss_and_grads(self, X: np.ndarray, y: np.ndarray, l2: float = 0.0) -> tuple[float, int]:
        """Gradients of the mean cross-entropy (+ l2/2 sum W^2) into ``grads`` / ``grad_flat``.

        Returns (mean cross-entropy without the L2 term, number of rows classified correctly),
        like :meth:`Network.forward_with_loss`. ``X`` must be float32 rows, ``y`` valid labels.
        """
        n = self._check(y)
        if n <= self.capacity:
            loss, correct = self.forward_backward(X, y)
            self.backward_update(l2)
            return loss, correct
        scale = 1.0 / n  # two lanes of chunks (one per core with a runner), summed in fixed order
        if self._lanes is None:
            self._lanes = Workspace(self.net, self.capacity)
        other = self._lanes
        half = -(-(n // 2) // self.capacity) * self.capacity
        out = [None, None]

        def lane_a():
            out[0] = self._chunks(X[:half], y[:half], scale)

        def lane_b():
            out[1] = other._chunks(X[half:], y[half:], scale)

        self._run(lane_a, lane_b)
        self.grad_flat += other.grad_flat
        if l2:
            for W, gW in zip(self.net.weights, self.grads[0::2]):
                gW += np.float32(l2) * W
        return out[0][0] + out[1][0], out[0][1] + out[1][1]

    def forward_backward(self, X: np.ndarray, y: np.ndarray, *, labels_checked: bool = False) -> tuple[float, int]:
        """Stage 1: forward, loss and dL/dZ of every layer, for up to ``capacity`` rows.

        Returns (mean cross-entropy, rows classified correctly); call :meth:`backward_update` next.
        ``labels_checked``: the caller has already validated every label (train() does, once).
        """
        m = self._follow_params(len(y)) if labels_checked else self._check(y)
        if m > self.capacity:
            raise ValueError(f"A batch of {m} rows does not fit a workspace for {self.capacity}.")
        self._m, self._X = m, X
        self._prepare_columns(X)
        scale = 1.0 / m
        # halves only pay on two threads of ours; one call each is faster otherwise (also when
        # OpenBLAS's own threads share the products)
        if self.runner is not None and m >= 2 and m * self._n_weights() >= PARALLEL_ROWS_MIN_MACS:
            h = m // 2
            out = [None, None]

            def first():
                out[0] = self._rows(X, y, 0, h, scale)

            def second():
                out[1] = self._rows(X, y, h, m, scale)

            self._run(first, second)
            return out[0][0] + out[1][0], out[0][1] + out[1][1]
        return self._rows(X, y, 0, m, scale)

    def backward_update(self, l2: float = 0.0, optimizer=None) -> None:
        """Stage 2: weight and bias gradients into ``grads``, then (with ``optimizer``) the update.

        ``optimizer`` must update the network's flat parameter buffer (``make(name,
        [net.flat_params()], ...)``) and have had ``begin_step()`` called for this step.
        """
        m = self._m
        cost = 8 * optimizer.cost if optimizer is not None else 0  # one pass ~ 8 multiply-adds
        plan = self._plan(m, cost) if self.runner is not None else None
        total = len(self.grad_flat)
        if plan is None:
            self._grads_for(self._all_layers(), self.grads, m, l2)
            if optimizer is not None:
                optimizer.update(0, self.grad_flat, 0, total)
            return
        first_layers, second_layers, (i, r) = plan
        cut = self.net._layout[2 * i][0] + self._row_boundary(i, r) * self.net.weights[i].shape[1]

        def first():
            self._grads_for(first_layers, self.grads, m, l2)
            if optimizer is not None:
                optimizer.update(0, self.grad_flat, 0, cut)

        def second():
            self._grads_for(second_layers, self.grads, m, l2)
            if optimizer is not None:
                optimizer.update(0, self.grad_flat, cut, total)

        self._run(first, second)

    # ------------------------------------------------------------------ helpers
    def _check(self, y) -> int:
        net = self.net
        k = net.sizes[-1]
        if len(y) and (y.min() < 0 or y.max() >= k):
            from scratchnet.errors import DataError

            raise DataError(f"Labels must be whole numbers from 0 to {k - 1}.")
        return self._follow_params(len(y))

    def _follow_params(self, n: int) -> int:
        """Re-point the gradients when the network's parameters were replaced; returns ``n``."""
        if n == 0:
            raise ValueError("A training step needs at least one row.")
        net = self.net
        if self._flat is not net._flat or any(p is not v for p, v in zip(net.params(), net._views)):
            self.grad_flat, self.grads = net.grad_layout()  # parameters were replaced: follow them
            self._flat = net._flat
            self._lanes = self._part = None
        return n

    def _run(self, first, second) -> None:
        if self.runner is None:
            first()
            second()
        else:
            self.runner.run(first, second)

    def _n_weights(self) -> int:
        return sum(W.size for W in self.net.weights)

    def _all_layers(self):
        rows = [W.shape[0] for W in self.net.weights]
        if self._cols is not None:
            rows[0] = len(self._cols)
        return [(i, 0, k, True) for i, k in enumerate(rows)]

    def _plan(self, m: int, per_param: int):
        """Split the parameters in two halves of about equal work, cutting between rows of a W.

        Returns ([(layer, row_lo, row_hi, with_bias)] for each half, flat offset of the cut), or
        None when the whole job is too small to be worth a second thread. Depends on shapes only.
        """
        rows = [W.shape[0] for W in self.net.weights]
        if self._cols is not None:
            rows[0] = len(self._cols)  # the first layer's rows in use this batch
        key = (m, per_param, rows[0])
        if key in self._plans:
            return self._plans[key]
        Ws = self.net.weights
        row_cost = [W.shape[1] * (m + per_param) for W in Ws]
        total = sum(k * c for k, c in zip(rows, row_cost))
        plan = None
        if m * sum(k * W.shape[1] for k, W in zip(rows, Ws)) >= PARALLEL_PARAMS_MIN_MACS:
            target, acc = total / 2, 0.0
            for i, (k, c) in enumerate(zip(rows, row_cost)):
                if acc + k * c >= target:
                    r = min(k, max(0, round((target - acc) / c)))
                    if i == 0 and self._slice:  # the sliced skinny layer is not cut
                        r = 0 if r < k / 2 else k
                    break
                acc += k * c
            first = [(j, 0, rows[j], True) for j in range(i)] + ([(i, 0, r, False)] if r else [])
            second = [(i, r, rows[i], True)] + [(j, 0, rows[j], True) for j in range(i + 1, len(Ws))]
            plan = (first, second, (i, r))
        self._plans[key] = plan
        return plan

    def _prepare_columns(self, X) -> None:
        """Find the batch's non-blank columns and gather them (and W0's rows) if few enough."""
        self._cols = None
        if not self._compact:
            return
        m = len(X)
        np.maximum.reduce(X, axis=0, out=self._col_hi)
        if self.nonnegative:  # blank: a maximum of 0 (one pass, and no BLAS call)
            cols = np.flatnonzero(self._col_hi)
        else:
            np.minimum.reduce(X, axis=0, out=self._col_lo)
            cols = np.flatnonzero((self._col_hi != 0) | (self._col_lo != 0))
        n_in, k = X.shape[1], len(cols)
        if k > COMPACT_MAX_FRACTION * n_in:
            return
        self._Xc = self._xc[: m * k].reshape(m, k)
        np.take(X, cols, axis=1, out=self._Xc, mode="clip")  # indices are valid; "raise" is slow
        self._W0c = self._w0c[:k]
        np.take(self.net.weights[0], cols, axis=0, out=self._W0c, mode="clip")
        self._cols = cols

    def _row_boundary(self, i: int, r: int) -> int:
        """Row of W_i where a part ending at (compacted) row ``r`` ends in the real matrix."""
        if i != 0 or self._cols is None:
            return r
        return 0 if r == 0 else (self.net.weights[0].shape[0] if r >= len(self._cols) else int(self._cols[r]))

    def _chunks(self, X, y, scale) -> tuple[float, int]:
        """Sum the gradients of consecutive ``capacity``-row chunks into ``grad_flat`` (one core)."""
        loss, correct = 0.0, 0
        if len(y) == 0:
            self.grad_flat[...] = 0
            return loss, correct
        cap = self.capacity
        self._cols = None
        layers = self._all_layers()
        for i in range(0, len(y), cap):
            Xc, yc = X[i : i + cap], y[i : i + cap]
            part = self._rows(Xc, yc, 0, len(yc), scale)
            self._X = Xc
            if i == 0:
                self._grads_for(layers, self.grads, len(yc), 0.0)
            else:
                if self._part is None:
                    self._part = self.net.grad_layout()
                self._grads_for(layers, self._part[1], len(yc), 0.0)
                self.grad_flat += self._part[0]
            loss += part[0]
            correct += part[1]
        return loss, correct

    def _rows(self, X, y, r0, r1, scale) -> tuple[float, int]:
        """Stage 1 for rows [r0, r1): returns (their loss * scale, their correct count)."""
        net = self.net
        m = r1 - r0
        Ws, bs = net.weights, net.biases
        last = len(Ws) - 1
        A = X[r0:r1] if self._cols is None else self._Xc[r0:r1]
        for i in range(last):
            Z = self._acts[i][r0:r1]
            self._matmul_in(i, A, Z)
            Z += bs[i]
            if self._relu:
                np.maximum(Z, self._zeros[i][r0:r1], out=Z)
            else:
                net._act.forward(Z)
            A = Z
        Z = self._acts[last][r0:r1]
        self._matmul_in(last, A, Z)
        Z += bs[last]
        yy = y[r0:r1]
        correct = int(np.count_nonzero(Z.argmax(axis=1) == yy))
        Z -= self._max_of_rows(Z, r0, r1)[:, None]
        flat_idx = self._row_base[:m] + yy
        Zf = Z.reshape(-1)
        z_true = float(Zf[flat_idx].sum(dtype=np.float64))
        np.exp(Z, out=Z)
        s = np.matmul(Z, self._ones_out)[:, None]
        loss = (float(np.log(s).sum(dtype=np.float64)) - z_true) * scale
        Z /= s
        # dL/dZ at the output: (P - Y) / n, with Y applied by integer indexing, not a one-hot
        Zf[flat_idx] -= 1
        Z *= np.float32(scale)
        dZ = Z
        for i in range(last, 0, -1):
            dA = self._deltas[i - 1][r0:r1]
            np.matmul(dZ, Ws[i].T, out=dA)
            A = self._acts[i - 1][r0:r1]
            if self._relu:
                mask = self._masks[i - 1][r0:r1]
                np.greater(A, self._zeros[i - 1][r0:r1], out=mask)
                np.multiply(dA, mask, out=dA)
            else:
                net._act.backward(A, dA)
            dZ = dA
        return loss, correct

    def _grads_for(self, layers, grads, m: int, l2: float) -> None:
        """Stage 2 for some rows of some layers: gW[lo:hi] = A[:, lo:hi]^T dZ (+ l2 W), gb = sum dZ."""
        Ws = self.net.weights
        last = len(Ws) - 1
        for i, lo, hi, with_bias in layers:
            A = self._X[:m] if i == 0 else self._acts[i - 1][:m]
            D = self._acts[last][:m] if i == last else self._deltas[i][:m]
            gW = grads[2 * i]
            if i == 0 and self._cols is not None:
                self._compact_grad(D, gW, lo, hi, l2)
            elif hi > lo:
                if i == 0 and self._slice and m > self._slice and (lo, hi) == (0, gW.shape[0]):
                    self._first_weight_grad(A, D, gW)
                else:
                    np.matmul(A[:, lo:hi].T, D, out=gW[lo:hi])
                if l2:
                    gW[lo:hi] += np.float32(l2) * Ws[i][lo:hi]
            if with_bias:
                np.matmul(self._ones[:m], D, out=grads[2 * i + 1])

    def _max_of_rows(self, Z, r0, r1) -> np.ndarray:
        """Row maxima; for the usual 10 outputs a maximum over columns is 4x faster than max(axis=1)."""
        k = Z.shape[1]
        if k > 16 or k < 2:
            return Z.max(axis=1)
        mx = self._row_max[r0:r1]
        np.maximum(Z[:, 0], Z[:, 1], out=mx)
        for j in range(2, k):
            np.maximum(mx, Z[:, j], out=mx)
        return mx

    def _compact_grad(self, D, gW, lo, hi, l2) -> None:
        """Rows of gW0 for compacted rows [lo, hi): computed for the columns in use, 0 elsewhere."""
        cols = self._cols
        a, b = self._row_boundary(0, lo), self._row_boundary(0, hi)
        gW[a:b] = 0
        if hi > lo:
            part = self._g0c[lo:hi]
            np.matmul(self._Xc[:, lo:hi].T, D, out=part)
            gW[cols[lo:hi]] = part
        if l2 and b > a:
            gW[a:b] += np.float32(l2) * self.net.weights[0][a:b]

    def _matmul_in(self, i, A, Z) -> None:
        """Z = A @ W_i, the first layer in small-kernel slices of rows when it is skinny."""
        W = self._W0c if i == 0 and self._cols is not None else self.net.weights[i]
        step = self._slice if i == 0 else 0
        if not step or len(A) <= step:
            np.matmul(A, W, out=Z)
            return
        for j in range(0, len(A), step):
            np.matmul(A[j : j + step], W, out=Z[j : j + step])

    def _first_weight_grad(self, X, dZ, gW) -> None:
        """gW = X^T dZ summed over small-kernel slices of rows, computed as (dZ^T X)^T."""
        m, step = len(X), self._slice
        dzt = self._dz0_t[:, :m]
        np.copyto(dzt, dZ.T)
        acc, part = self._g0_t, self._g0_part
        np.matmul(dzt[:, :step], X[:step], out=acc)
        for j in range(step, m, step):
            np.matmul(dzt[:, j : j + step], X[j : j + step], out=part)
            acc += part
        np.copyto(gW, acc.T)
