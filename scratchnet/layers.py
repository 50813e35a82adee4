"""The layers: each one's forward and backward side by side, in plain NumPy.

Batches are rows. A dense layer sees ``(n, features)``; a convolution sees images as
``(n, height, width, channels)`` ("NHWC"), so that its output, one row per (image, pixel), is
already in that layout after one matrix product.

The contract every layer keeps, which is what lets the same code serve a reader and the fast
training step (``scratchnet.fast``):

* ``bind(n)`` makes the layer's buffers hold ``n`` rows. They are allocated once, when a batch
  larger than any before arrives; smaller batches use the first rows.
* ``forward(X, rows)`` reads ``X[rows]``, writes the same rows of its output ``self.Y`` and
  returns the whole buffer, so the next layer can be handed the same ``rows``. ``backward(dY,
  rows)`` does the same for the gradient with respect to the input, ``self.dX``. ``rows`` is
  the whole batch unless the fast step splits a batch in two halves, one per core.
* ``param_grads(l2, lo, hi)`` then fills the weight and bias gradients from what forward and
  backward left behind (the layer's input and its output gradient). Splitting this from
  ``backward`` lets the two halves of a step's parameters be done on two cores; ``lo:hi`` are
  rows of the weight matrix.
* Activations work in place on the previous layer's output and express their derivative through
  their output, so they need no buffer of their own (only ReLU's mask).
* The first layer with parameters never computes a gradient for its input (nobody needs the
  gradient of the pixels), and layers before it do no backward pass at all.
"""

from __future__ import annotations

import math

import numpy as np

from scratchnet.errors import ConfigError
from scratchnet.fast import gemm

DTYPE = np.float32
ALL = slice(None)
INITS = ("he", "xavier", "notebook")


class Layer:
    """Base class: shapes, buffers and the (empty) parameter list."""

    kind = "layer"
    has_params = False

    def __init__(self):
        self.in_shape: tuple[int, ...] | None = None  # per row, set by build()
        self.out_shape: tuple[int, ...] | None = None
        self.needs_input_grad = True  # False for the first layer with parameters (set by Network)
        self.active = True  # False for layers before the first one with parameters: no backward
        self._cap = 0  # rows the buffers hold
        self._n = 0  # rows of the current batch

    # ---------------------------------------------------------------- shapes and parameters
    def build(self, in_shape, rng: np.random.Generator | None = None, init: str = "he") -> tuple[int, ...]:
        """Fix the input shape, create parameters (if any) and return the output shape."""
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = self.output_shape(self.in_shape)
        return self.out_shape

    def output_shape(self, in_shape) -> tuple[int, ...]:
        return tuple(in_shape)

    def params(self) -> list[np.ndarray]:
        return []

    def param_shapes(self) -> list[tuple[int, ...]]:
        return []

    def set_params(self, arrays: list[np.ndarray], grads: list[np.ndarray]) -> None:
        """Point the layer at its parameters and gradients (views into the network's buffers)."""

    def macs(self) -> int:
        """Multiply-adds of one row's forward pass (how the fast step judges a batch's size)."""
        return 0

    def spec(self) -> dict:
        return {"type": self.kind}

    def token(self) -> str | None:
        """This layer in the architecture grammar (``dense128``), or None for implied layers."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.token() or ''})"

    # ---------------------------------------------------------------- buffers
    def buffers(self) -> dict[str, tuple[tuple[int, ...], type]]:
        """Name -> (shape per row, dtype) of the buffers this layer writes."""
        return {}

    def bytes_per_row(self) -> int:
        return sum(int(np.prod(s)) * np.dtype(t).itemsize for s, t in self.buffers().values())

    def bind(self, n: int) -> None:
        """Make ``self.<buffer>`` views of ``n`` rows, allocating only when ``n`` is a new maximum."""
        if n > self._cap:
            for name, (shape, dtype) in self.buffers().items():
                # zeros, not empty: some buffers rely on parts that are never written (padding)
                setattr(self, "_" + name, np.zeros((n, *shape), dtype))
            self._cap = n
        if n != self._n:
            for name in self.buffers():
                setattr(self, name, getattr(self, "_" + name)[:n])
            self._n = n

    def release(self) -> None:
        """Drop the buffers (a model kept in memory but rarely used)."""
        for name in self.buffers():
            for attr in (name, "_" + name):
                if hasattr(self, attr):
                    delattr(self, attr)
        self._cap = self._n = 0

    # ---------------------------------------------------------------- the maths
    def begin(self, X: np.ndarray) -> None:
        """Called with the whole batch before any rows of it go forward (see Dense)."""

    def forward(self, X: np.ndarray, rows=ALL) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dY: np.ndarray, rows=ALL) -> np.ndarray | None:
        raise NotImplementedError

    def param_grads(self, l2: float = 0.0, lo: int = 0, hi: int | None = None) -> None:
        """Layers without parameters have no gradients to fill."""


# ============================================================================ dense


def _init_matrix(rng, init: str, fan_in: int, fan_out: int, shape) -> tuple[np.ndarray, np.ndarray]:
    """Weights and biases for a layer with ``fan_in`` inputs per output."""
    if init == "he":  # keeps ReLU activations' variance constant through depth
        W = rng.standard_normal(shape, dtype=DTYPE) * np.float32(math.sqrt(2.0 / fan_in))
        b = np.zeros(shape[-1], DTYPE)
    elif init == "xavier":  # Glorot uniform, suited to sigmoid/tanh
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        W = rng.uniform(-limit, limit, shape)
        b = np.zeros(shape[-1], DTYPE)
    elif init == "notebook":  # the notebook: np.random.rand(...) - 0.5 for weights and biases alike
        W = rng.random(shape) - 0.5
        b = rng.random(shape[-1]) - 0.5
    else:
        raise ConfigError(f"Unknown weight init {init!r}; choose one of {', '.join(INITS)}.")
    return W, b


class Dense(Layer):
    """``Y = X @ W + b``: every input connected to every output.

    ``W`` is ``(inputs, outputs)``, so a batch of rows goes through in one matrix product. The
    gradients follow from the chain rule on that product:
    ``dX = dY @ W.T``, ``dW = X.T @ dY``, ``db = dY`` summed over the batch.
    """

    kind = "dense"
    has_params = True

    def __init__(self, units: int):
        super().__init__()
        self.units = int(units)
        # Set by Network for a first layer that reads pixels: skip inputs that are 0 in every row
        self.skip_blank_inputs = False
        self.nonnegative = False  # the caller knows every input is >= 0 (train() checks once)
        self.cols = None  # the inputs in use for this batch, when some were skipped

    def output_shape(self, in_shape):
        if len(in_shape) != 1:
            raise ConfigError(f"A dense layer needs flat rows, got shape {in_shape}; flatten first.")
        return (self.units,)

    def build(self, in_shape, rng=None, init="he"):
        out = super().build(in_shape, rng, init)
        if rng is not None:
            self.W, self.b = _init_matrix(rng, init, self.in_shape[0], self.units, (self.in_shape[0], self.units))
        return out

    def params(self):
        return [self.W, self.b]

    def param_shapes(self):
        return [(self.in_shape[0], self.units), (self.units,)]

    def set_params(self, arrays, grads):
        self.W, self.b = arrays
        self.dW, self.db = grads

    def macs(self):
        return self.in_shape[0] * self.units

    def spec(self):
        return {"type": "dense", "units": self.units}

    def token(self):
        return f"dense{self.units}"

    def buffers(self):
        bufs = {"Y": ((self.units,), DTYPE)}
        if self.needs_input_grad:
            bufs["dX"] = (self.in_shape, DTYPE)
        if self.skip_blank_inputs:
            bufs["Xc"] = (self.in_shape, DTYPE)  # the batch's columns in use, gathered
        return bufs

    def bind(self, n):
        super().bind(n)
        if self.skip_blank_inputs and not hasattr(self, "_Wc"):
            self._Wc = np.empty_like(self.W)  # W's rows for the inputs in use
            self._dWc = np.empty_like(self.W)  # and their gradient
            self._col_max = np.empty(self.in_shape[0], DTYPE)
            self._col_min = np.empty(self.in_shape[0], DTYPE)

    def release(self):
        super().release()
        for attr in ("_Wc", "_dWc", "_col_max", "_col_min"):
            self.__dict__.pop(attr, None)
        self.cols = None

    # Pixels that are 0 in every image of a batch contribute nothing to this layer, forward or
    # backward: MNIST batches of 128 leave about a third of the 784 pixels blank, so the first
    # (and largest) layer multiplies only the columns in use (2.1 -> 1.8 ms per training step),
    # unless nearly all of them are in use.
    SKIP_MAX_FRACTION = 0.85

    def begin(self, X):
        self.cols = None
        if not self.skip_blank_inputs or len(X) < 16:  # a few rows: finding them costs more
            return
        np.maximum.reduce(X, axis=0, out=self._col_max)
        if self.nonnegative:  # blank: a maximum of 0
            cols = np.flatnonzero(self._col_max)
        else:
            np.minimum.reduce(X, axis=0, out=self._col_min)
            cols = np.flatnonzero((self._col_max != 0) | (self._col_min != 0))
        k = len(cols)
        if k > self.SKIP_MAX_FRACTION * self.in_shape[0]:
            return
        self.Xc_used = self.Xc.reshape(-1)[: len(X) * k].reshape(len(X), k)
        np.take(X, cols, axis=1, out=self.Xc_used, mode="clip")  # indices are valid; "raise" is slow
        self.W_used = self._Wc[:k]
        np.take(self.W, cols, axis=0, out=self.W_used, mode="clip")
        self.cols = cols

    def forward(self, X, rows=ALL):
        self.X = X
        Z = self.Y[rows]
        if self.cols is None:
            gemm.matmul(X[rows], self.W, Z)
        else:  # the same product without the blank inputs
            gemm.matmul(self.Xc_used[rows], self.W_used, Z)
        Z += self.b
        return self.Y

    def backward(self, dY, rows=ALL):
        self.dY = dY
        if not self.needs_input_grad:
            return None
        np.matmul(dY[rows], self.W.T, out=self.dX[rows])
        return self.dX

    # ---- the weight gradient, possibly in two parts (rows lo:hi of W)
    def grad_rows(self) -> int:
        """Rows of the weight matrix whose gradients this batch needs (fewer with blank inputs)."""
        return self.in_shape[0] if self.cols is None else len(self.cols)

    def grad_depth(self) -> int:
        """Length of the sum behind each weight gradient: the batch's rows."""
        return self._n

    def flat_row(self, r: int) -> int:
        """The row of ``W`` where a part ending at gradient row ``r`` ends."""
        if self.cols is None or r == 0:
            return r
        return self.in_shape[0] if r >= len(self.cols) else int(self.cols[r])

    def param_grads(self, l2=0.0, lo=0, hi=None):
        hi = self.grad_rows() if hi is None else hi
        dY, dW = self.dY, self.dW
        if self.cols is None:
            if hi > lo:
                gemm.matmul_tn(self.X[:, lo:hi], dY, dW[lo:hi])  # X.T @ dY
        else:  # rows of blank inputs get 0; the others X_used.T @ dY
            a, b = self.flat_row(lo), self.flat_row(hi)
            dW[a:b] = 0
            if hi > lo:
                part = self._dWc[lo:hi]
                gemm.matmul_tn(self.Xc_used[:, lo:hi], dY, part)
                dW[self.cols[lo:hi]] = part
            lo, hi = a, b
        if l2 and hi > lo:
            dW[lo:hi] += np.float32(l2) * self.W[lo:hi]
        if hi == self.in_shape[0]:  # the part that ends the matrix also does the bias
            gemm.column_sums(dY, self.db)


# ============================================================================ convolution


class Conv2D(Layer):
    """A KxK convolution, stride 1, "same" padding: each output pixel sees a KxK window.

    ``Y[n, i, j, o] = b[o] + sum over di, dj, c of Xpad[n, i+di, j+dj, c] * W[di, dj, c, o]``

    Written as one matrix product ("im2col"): every window is copied into one row of ``cols``
    (``n*H*W`` rows of ``K*K*C`` numbers), and ``Y = cols @ W.reshape(K*K*C, O) + b``. From there
    the gradients are a dense layer's: ``dW = cols.T @ dY``, ``db = sum of dY``, and
    ``dcols = dY @ W.T``, whose entries go back to the pixels they were copied from ("col2im":
    a pixel that appeared in K*K windows collects K*K contributions).
    """

    kind = "conv2d"
    has_params = True

    def __init__(self, filters: int, kernel: int):
        super().__init__()
        self.filters = int(filters)
        self.kernel = int(kernel)
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ConfigError(f"A convolution's kernel size must be odd (3, 5, 7), got {self.kernel}.")

    def output_shape(self, in_shape):
        if len(in_shape) != 3:
            raise ConfigError(f"A convolution needs images (height, width, channels), got shape {in_shape}.")
        H, W, _ = in_shape
        if self.kernel > min(H, W) and min(H, W) > 0:
            raise ConfigError(f"A {self.kernel}x{self.kernel} kernel does not fit {H}x{W} images.")
        return (H, W, self.filters)

    def build(self, in_shape, rng=None, init="he"):
        out = super().build(in_shape, rng, init)
        K, C, O = self.kernel, self.in_shape[2], self.filters
        if rng is not None:
            self.W, self.b = _init_matrix(rng, init, K * K * C, K * K * O, (K, K, C, O))
        return out

    def params(self):
        return [self.W, self.b]

    def param_shapes(self):
        K = self.kernel
        return [(K, K, self.in_shape[2], self.filters), (self.filters,)]

    def set_params(self, arrays, grads):
        self.W, self.b = arrays
        self.dW, self.db = grads
        K, C, O = self.kernel, self.in_shape[2], self.filters
        self.Wm = self.W.reshape(K * K * C, O)  # the kernel as the matrix im2col multiplies
        self.dWm = self.dW.reshape(K * K * C, O)

    def macs(self):
        H, W, C = self.in_shape
        return H * W * self.kernel * self.kernel * C * self.filters

    def spec(self):
        return {"type": "conv2d", "filters": self.filters, "kernel": self.kernel}

    def token(self):
        return f"conv{self.filters}-{self.kernel}"

    def buffers(self):
        H, W, C = self.in_shape
        K, p = self.kernel, self.kernel - 1
        bufs = {
            "Xpad": ((H + p, W + p, C), DTYPE),  # the input with a border of zeros (never written)
            "Y": ((H, W, self.filters), DTYPE),
        }
        if not self.one_channel:
            bufs["cols"] = ((H, W, K, K, C), DTYPE)  # every window as a row
        if self.needs_input_grad:
            bufs["dcols"] = ((H, W, K, K, C), DTYPE)
            bufs["dXpad"] = ((H + p, W + p, C), DTYPE)
        return bufs

    # With one input channel (the image itself) a window's K*K pixels would be copied a few at a
    # time; instead cols is kept transposed, (K*K, n, H, W): each kernel offset is one shifted
    # copy of the whole batch (0.6 ms instead of 2.7 ms at batch 128), and cols.T is the same
    # matrix for BLAS.
    @property
    def one_channel(self) -> bool:
        return self.in_shape[2] == 1

    def bytes_per_row(self):
        H, W, _ = self.in_shape
        extra = 4 * H * W * self.kernel ** 2 if self.one_channel else 0
        return super().bytes_per_row() + extra

    def bind(self, n):
        grow = n > self._cap
        super().bind(n)
        if self.one_channel:
            H, W, _ = self.in_shape
            if grow or not hasattr(self, "_colsT"):
                self._colsT = np.zeros((self.kernel ** 2, n, H, W), DTYPE)
            self.colsT = self._colsT[:, :n]
        if self.needs_input_grad:  # dX is the inside of dXpad: col2im writes it there directly
            H, W, _ = self.in_shape
            p = self.kernel // 2
            self.dX = self.dXpad[:, p : p + H, p : p + W, :]

    def release(self):
        super().release()
        for attr in ("dX", "colsT", "_colsT"):
            self.__dict__.pop(attr, None)

    def _windows(self, Xpad: np.ndarray) -> np.ndarray:
        """A view (n, H, W, K, K, C) of every KxK window of the padded images; no copy."""
        n, _, _, C = Xpad.shape
        H, W, _ = self.in_shape
        K = self.kernel
        s = Xpad.strides
        return np.lib.stride_tricks.as_strided(
            Xpad, (n, H, W, K, K, C), (s[0], s[1], s[2], s[1], s[2], s[3]), writeable=False
        )

    def forward(self, X, rows=ALL):
        H, W, C = self.in_shape
        p = self.kernel // 2
        Xpad = self.Xpad[rows]
        Xpad[:, p : p + H, p : p + W, :] = X[rows]
        n = len(Xpad)
        if self.one_channel:
            colsT = self.colsT[:, rows]
            for d in range(self.kernel ** 2):  # im2col, one kernel offset at a time
                di, dj = divmod(d, self.kernel)
                colsT[d] = Xpad[:, di : di + H, dj : dj + W, 0]
            cols = colsT.reshape(len(colsT), n * H * W).T
        else:
            np.copyto(self.cols[rows], self._windows(Xpad))  # im2col
            cols = self.cols[rows].reshape(n * H * W, -1)
        Y = self.Y[rows].reshape(n * H * W, self.filters)
        gemm.matmul(cols, self.Wm, Y)
        Y += self.b
        return self.Y

    def backward(self, dY, rows=ALL):
        self.dY = dY
        if not self.needs_input_grad:
            return None
        H, W, C = self.in_shape
        K = self.kernel
        dcols = self.dcols[rows]
        n = len(dcols)
        np.matmul(dY[rows].reshape(n * H * W, self.filters), self.Wm.T, out=dcols.reshape(n * H * W, -1))
        # col2im: the gradient of each copied pixel goes back to where it was copied from. The
        # window row di of output column j came from padded pixels (i+di, j..j+K-1): K*C numbers
        # in a row on both sides, so each of these K*W additions moves whole runs of memory.
        dXpad = self.dXpad[rows]
        dXpad[...] = 0
        for di in range(K):
            for j in range(W):
                dXpad[:, di : di + H, j : j + K, :] += dcols[:, :, j, di, :, :]
        return self.dX

    def grad_rows(self) -> int:
        return self.Wm.shape[0]

    def grad_depth(self) -> int:
        H, W, _ = self.in_shape
        return self._n * H * W

    def flat_row(self, r: int) -> int:
        return r

    def param_grads(self, l2=0.0, lo=0, hi=None):
        hi = self.grad_rows() if hi is None else hi
        m = self.grad_depth()
        dY = self.dY.reshape(m, self.filters)
        if hi > lo and self.one_channel:
            np.matmul(self.colsT[lo:hi].reshape(hi - lo, m), dY, out=self.dWm[lo:hi])  # cols.T @ dY
        elif hi > lo:
            gemm.matmul_tn(self.cols.reshape(m, -1)[:, lo:hi], dY, self.dWm[lo:hi])  # cols.T @ dY
        if l2 and hi > lo:
            self.dWm[lo:hi] += np.float32(l2) * self.Wm[lo:hi]
        if hi == self.grad_rows():
            gemm.column_sums(dY, self.db)


# ============================================================================ pooling and shape


class MaxPool2D(Layer):
    """The largest value of each KxK block (stride K), per channel.

    Backward sends each block's gradient to the one input that was the largest (the first such,
    if several tie); the other inputs of the block get 0. Rows and columns that do not fill a
    whole block at the bottom and right edges are dropped, as in PyTorch.
    """

    kind = "maxpool2d"

    def __init__(self, size: int):
        super().__init__()
        self.size = int(size)
        if self.size < 2:
            raise ConfigError(f"A max-pool needs blocks of at least 2x2, got {self.size}.")

    def output_shape(self, in_shape):
        if len(in_shape) != 3:
            raise ConfigError(f"Max-pooling needs images (height, width, channels), got shape {in_shape}.")
        H, W, C = in_shape
        if H < self.size or W < self.size:
            raise ConfigError(f"{self.size}x{self.size} max-pooling does not fit {H}x{W} images.")
        return (H // self.size, W // self.size, C)

    def spec(self):
        return {"type": "maxpool2d", "size": self.size}

    def token(self):
        return f"maxpool{self.size}"

    def buffers(self):
        # M keeps the maxima for backward; Y is the output, which an activation may overwrite
        bufs = {"M": (self.out_shape, DTYPE), "Y": (self.out_shape, DTYPE)}
        if self.active:
            bufs["dX"] = (self.in_shape, DTYPE)  # cropped edges are never written: stay 0
            bufs["taken"] = (self.out_shape, np.bool_)
            bufs["hit"] = (self.out_shape, np.bool_)
        return bufs

    def _blocks(self, A: np.ndarray) -> np.ndarray:
        """A view (n, Ho, K, Wo, K, C) of ``A`` cut into KxK blocks."""
        K = self.size
        Ho, Wo, C = self.out_shape
        return A[:, : Ho * K, : Wo * K, :].reshape(len(A), Ho, K, Wo, K, C)

    def forward(self, X, rows=ALL):
        self.X = X
        blocks = self._blocks(X[rows])
        M = self.M[rows]
        K = self.size
        np.maximum(blocks[:, :, 0, :, 0], blocks[:, :, 0, :, 1], out=M)
        for a in range(K):
            for b in range(K):
                if a or b > 1:
                    np.maximum(M, blocks[:, :, a, :, b], out=M)
        self.Y[rows] = M
        return self.Y

    def backward(self, dY, rows=ALL):
        blocks = self._blocks(self.X[rows])
        dX = self._blocks(self.dX[rows])
        M, dY = self.M[rows], dY[rows]
        taken, hit = self.taken[rows], self.hit[rows]
        taken[...] = False
        for a in range(self.size):
            for b in range(self.size):
                np.equal(blocks[:, :, a, :, b], M, out=hit)  # this input was the block's maximum...
                np.greater(hit, taken, out=hit)  # ...and no earlier input of the block was
                taken |= hit
                np.multiply(dY, hit, out=dX[:, :, a, :, b])
        return self.dX


class Flatten(Layer):
    """(n, H, W, C) images to (n, H*W*C) rows for the dense layers; a view, nothing is copied."""

    kind = "flatten"

    def output_shape(self, in_shape):
        return (int(np.prod(in_shape)),)

    def forward(self, X, rows=ALL):
        return X.reshape(len(X), -1)

    def backward(self, dY, rows=ALL):
        return dY.reshape(len(dY), *self.in_shape)


# ============================================================================ activations


class Activation(Layer):
    """A non-linearity applied in place to the previous layer's output.

    Each derivative is written through the output ``A`` (ReLU: A > 0; sigmoid: A(1-A); tanh:
    1-A^2), so the pre-activation is not needed after the forward pass and can be overwritten.
    ``backward`` turns dL/dA into dL/dZ in place, in the buffer it was given.
    """

    def forward(self, X, rows=ALL):
        self.A = X
        self.apply(X[rows])
        return X

    def backward(self, dY, rows=ALL):
        self.derive(self.A[rows], dY[rows], rows)
        return dY

    def apply(self, Z: np.ndarray) -> None:
        raise NotImplementedError

    def derive(self, A: np.ndarray, dA: np.ndarray, rows) -> None:
        raise NotImplementedError

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """The function on a copy, for plots and explanations."""
        out = np.array(z, dtype=DTYPE, copy=True)
        self.apply(out)
        return out


class ReLU(Activation):
    kind = "relu"

    def buffers(self):
        # np.maximum with a scalar 0 takes a slow path in NumPy 2.4 (8 us for 128x256 instead
        # of 3 us): a zero array of the same shape keeps it vectorised
        bufs = {"zeros": (self.in_shape, DTYPE)}
        if self.active:
            bufs["mask"] = (self.in_shape, np.bool_)
        return bufs

    def apply(self, Z):
        if hasattr(self, "zeros") and self.zeros.shape[0] >= len(Z) and self.zeros.shape[1:] == Z.shape[1:]:
            np.maximum(Z, self.zeros[: len(Z)], out=Z)
        else:  # called outside a network (an explanation's plot)
            np.maximum(Z, 0, out=Z)

    def derive(self, A, dA, rows):
        mask = self.mask[rows]
        np.greater(A, self.zeros[rows], out=mask)  # A > 0 exactly where Z > 0
        np.multiply(dA, mask, out=dA)


class Sigmoid(Activation):
    kind = "sigmoid"

    def apply(self, Z):
        # 1 / (1 + exp(-z)) in place; exp overflowing to inf gives exactly 0, which is right
        with np.errstate(over="ignore"):
            np.negative(Z, out=Z)
            np.exp(Z, out=Z)
        Z += 1
        np.reciprocal(Z, out=Z)

    def derive(self, A, dA, rows):
        dA *= A
        dA *= 1 - A


class Tanh(Activation):
    kind = "tanh"

    def apply(self, Z):
        np.tanh(Z, out=Z)

    def derive(self, A, dA, rows):
        dA *= 1 - A * A


ACTIVATIONS: dict[str, type[Activation]] = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}


def activation(name: str) -> Activation:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ConfigError(f"Unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}.") from None


# ============================================================================ the loss


class SoftmaxCrossEntropy:
    """Softmax of the last layer's scores and the mean cross-entropy against integer labels.

    The gradient at the scores is simply ``(P - Y) / n`` (the notebook's ``dZ2 = A2 - Y``): it
    is written in place over the scores, subtracting 1 at each row's true class by integer
    indexing instead of building a one-hot matrix. The loss comes from the shifted scores
    (log-sum-exp), not from ``log(P)``, so a very confident mistake costs a large finite number
    instead of ``-log(0) = inf``.
    """

    def bind(self, n: int, classes: int) -> None:
        if getattr(self, "_cap", 0) < n or getattr(self, "_classes", 0) != classes:
            self._row_base = np.arange(n, dtype=np.intp) * classes  # flat index of each row's start
            self._row_max = np.empty(n, DTYPE)
            self._ones = np.ones(classes, DTYPE)
            self._cap, self._classes = n, classes
        self.row_max = self._row_max[:n]

    def forward_backward(self, Z: np.ndarray, y: np.ndarray, rows=ALL, scale: float | None = None) -> tuple[float, int]:
        """Scores ``Z[rows]`` -> ``dL/dZ`` in place; returns (loss of those rows * scale, correct).

        ``scale`` is 1/n for a batch of n rows (the default when ``rows`` is the whole batch).
        """
        Z, y = Z[rows], y[rows]
        m = len(Z)
        scale = 1.0 / m if scale is None else scale
        correct = int(np.count_nonzero(Z.argmax(axis=1) == y))
        Z -= _row_max(Z, self.row_max[rows])[:, None]
        at_label = self._row_base[:m] + y
        Zf = Z.reshape(-1)
        z_true = float(Zf[at_label].sum(dtype=np.float64))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            np.exp(Z, out=Z)
            s = np.matmul(Z, self._ones)[:, None]  # row sums (a product is faster on 10 columns)
            loss = (float(np.log(s).sum(dtype=np.float64)) - z_true) * scale
            Z /= s  # P
        Zf[at_label] -= 1  # P - Y
        Z *= np.float32(scale)
        return loss, correct


def _row_max(Z: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Row maxima; for the usual 10 columns a maximum over columns is 4x faster than max(axis=1)."""
    k = Z.shape[1]
    if k > 16 or k < 2:
        return Z.max(axis=1)
    np.maximum(Z[:, 0], Z[:, 1], out=out)
    for j in range(2, k):
        np.maximum(out, Z[:, j], out=out)
    return out


def softmax(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Row-wise softmax; subtracting the row max keeps exp from overflowing."""
    out = np.subtract(z, z.max(axis=-1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=-1, keepdims=True)
    return out


# ============================================================================ building from specs


LAYER_TYPES = {"dense": Dense, "conv2d": Conv2D, "maxpool2d": MaxPool2D, "flatten": Flatten,
               **{name: cls for name, cls in ACTIVATIONS.items()}}


def from_spec(spec: dict) -> Layer:
    """A layer (without parameters yet) from its model-file description."""
    if not isinstance(spec, dict):
        raise ConfigError(f"A layer must be described by an object, got {spec!r}.")
    kind = spec.get("type")
    if kind not in LAYER_TYPES:
        raise ConfigError(f"Unknown layer type {kind!r}; known: {', '.join(LAYER_TYPES)}.")

    def whole(key: str, lo: int, hi: int) -> int:
        v = spec.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ConfigError(f"Layer {kind}: {key!r} must be a whole number from {lo} to {hi}, got {v!r}.")
        return v

    if kind == "dense":
        return Dense(whole("units", 1, 65536))
    if kind == "conv2d":
        return Conv2D(whole("filters", 1, 1024), whole("kernel", 1, 27))
    if kind == "maxpool2d":
        return MaxPool2D(whole("size", 2, 28))
    return LAYER_TYPES[kind]()
