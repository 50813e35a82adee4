"""A network is a list of layers followed by softmax cross-entropy.

The notebook's 784-10-10 network is ``Dense(10), ReLU, Dense(10)`` on rows of 784 pixels; a
convolutional net reads the same rows as 28x28 images with one channel. Training runs exactly
these layers (``scratchnet.fast`` only decides how their work is shared between cores), so the
maths below is the maths that trains:

    forward:  A = X;  for each layer: A = layer.forward(A)           (scores Z of the classes)
    loss:     P = softmax(Z);  L = mean of -log P[true class];  dZ = (P - Y) / n
    backward: d = dZ; for each layer, last first: d = layer.backward(d)
    grads:    each layer with parameters: dW, db from its input and its output gradient

Every parameter lives in one flat float32 buffer (the layers' ``W`` and ``b`` are views into it),
and so does every gradient: an optimizer then updates the whole network with a handful of
whole-buffer operations.
"""

from __future__ import annotations

import threading
from typing import Sequence

import numpy as np

from scratchnet import layers as L
from scratchnet.errors import ConfigError, ModelFileError

DTYPE = np.float32
INITS = L.INITS
IMAGE_SHAPE = (28, 28, 1)
INFER_BYTES = 32 * 2**20  # buffers an inference pass may keep: chunks of rows within this
MAX_INFER_ROWS = 8192
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


def mlp_layers(sizes: Sequence[int], activation: str = "relu") -> list[L.Layer]:
    """``sizes = (784, 256, 128, 10)`` -> Dense(256), act, Dense(128), act, Dense(10)."""
    out: list[L.Layer] = []
    for i, units in enumerate(sizes[1:]):
        if i:
            out.append(L.activation(activation))
        out.append(L.Dense(units))
    return out


class Network:
    """Layers + softmax cross-entropy.

    ``Network((784, 256, 128, 10), "relu")`` is the multilayer perceptron of those sizes;
    ``Network(layers=[...], input_shape=(28, 28, 1))`` any stack of layers from
    :mod:`scratchnet.layers` ending in a dense layer with one unit per class.
    """

    def __init__(
        self,
        sizes: Sequence[int] | None = (784, 256, 128, 10),
        activation: str = "relu",
        init: str = "he",
        seed: int | None = 0,
        rng: np.random.Generator | None = None,
        *,
        layers: Sequence[L.Layer] | None = None,
        input_shape: Sequence[int] | None = None,
    ):
        if init not in INITS:
            raise ConfigError(f"Unknown weight init {init!r}; choose one of {', '.join(INITS)}.")
        L.activation(activation)  # a clear error for an unknown name
        if layers is None:
            sizes = tuple(int(s) for s in sizes)
            if len(sizes) < 2 or any(s < 1 for s in sizes):
                raise ConfigError(f"Layer sizes must be at least two positive numbers, got {sizes}.")
            layers = mlp_layers(sizes, activation)
            input_shape = (sizes[0],)
        elif input_shape is None:
            input_shape = (784,) if isinstance(layers[0], L.Dense) else IMAGE_SHAPE
        rng = rng if rng is not None else np.random.default_rng(seed)
        self._assemble(list(layers), tuple(int(s) for s in input_shape), activation, init, rng)

    @classmethod
    def from_layers(cls, specs: list[dict], input_shape, arrays: list[np.ndarray],
                    activation: str | None = None) -> "Network":
        """Rebuild a stored network: layer descriptions plus its parameter arrays, all checked."""
        try:
            layers = [L.from_spec(s) for s in specs]
            net = cls.__new__(cls)
            act = activation or next((l.kind for l in layers if isinstance(l, L.Activation)), "relu")
            net._assemble(layers, tuple(int(s) for s in input_shape), act, "loaded", None)
        except ConfigError as err:
            raise ModelFileError(str(err)) from None
        shapes = [s for layer in net.param_layers for s in layer.param_shapes()]
        if len(arrays) != len(shapes):
            raise ModelFileError(f"The model has {len(arrays)} parameter arrays; its layers need {len(shapes)}.")
        for i, (a, shape) in enumerate(zip(arrays, shapes)):
            a = np.asarray(a)
            if a.shape != shape:
                raise ModelFileError(f"Parameter array {i} has shape {a.shape}; its layer needs {shape}.")
            if not np.issubdtype(a.dtype, np.floating):
                raise ModelFileError(f"Parameter array {i} does not hold floating-point numbers.")
            if not np.isfinite(a).all():
                raise ModelFileError(f"Parameter array {i} contains NaN or infinite values.")
        net._pack(arrays)
        return net

    @classmethod
    def skeleton(cls, layers, input_shape, activation: str = "relu") -> "Network":
        """The network's shapes and buffers plan without any parameters (to measure a design)."""
        net = cls.__new__(cls)
        net._assemble(list(layers), tuple(int(s) for s in input_shape), activation, "none", None)
        return net

    @classmethod
    def from_arrays(cls, weights, biases, activation: str = "relu") -> "Network":
        """A multilayer perceptron from its weight matrices and bias vectors (model format 1)."""
        if len(weights) != len(biases) or not weights:
            raise ModelFileError("The model needs one bias vector per weight matrix.")
        ws = [np.asarray(W) for W in weights]
        bs = [np.asarray(b) for b in biases]
        for i, (W, b) in enumerate(zip(ws, bs)):
            if W.ndim != 2 or b.ndim != 1 or b.shape[0] != W.shape[1] or (i and W.shape[0] != ws[i - 1].shape[1]):
                raise ModelFileError(f"Layer {i} has mismatched shapes: weights {W.shape}, biases {b.shape}.")
        try:
            L.activation(activation)
        except ConfigError as err:
            raise ModelFileError(str(err)) from None
        sizes = [ws[0].shape[0]] + [W.shape[1] for W in ws]
        specs = [l.spec() for l in mlp_layers(sizes, activation)]
        return cls.from_layers(specs, (sizes[0],), [a for pair in zip(ws, bs) for a in pair], activation)

    # ----------------------------------------------------------------- assembly
    def _assemble(self, layers, input_shape, activation, init, rng) -> None:
        if not layers:
            raise ConfigError("A network needs at least one layer.")
        if not isinstance(layers[-1], L.Dense):
            raise ConfigError("The last layer must be a dense layer with one unit per class.")
        if input_shape == (28, 28) or (len(input_shape) == 3 and input_shape[0] * input_shape[1] == 784 and
                                       input_shape[2] != 1):
            raise ConfigError(f"Images must be 28x28 with one channel, got {input_shape}.")
        shape = input_shape
        owned = False  # is the current tensor a buffer of some layer (not the caller's input)?
        for i, layer in enumerate(layers):
            if isinstance(layer, L.Activation) and not owned:
                raise ConfigError("An activation must follow a dense, convolution or pooling layer.")
            shape = layer.build(shape, rng, init)
            owned = isinstance(layer, (L.Dense, L.Conv2D, L.MaxPool2D)) or (owned and isinstance(layer, L.Flatten))
        first = next(i for i, l in enumerate(layers) if l.has_params)
        for i, layer in enumerate(layers):
            layer.active = i >= first
            layer.needs_input_grad = i > first
        head = layers[0]
        if isinstance(head, L.Dense) and head.in_shape[0] >= 64:
            from scratchnet.fast import gemm

            head.skip_blank_inputs = not gemm.slice_rows(head.in_shape[0], head.units)
        self.layers = list(layers)
        self.input_shape = tuple(input_shape)
        self.activation = activation
        self.init = init
        self.loss_fn = L.SoftmaxCrossEntropy()
        self.input_size = int(np.prod(self.input_shape))
        self._lock = threading.RLock()
        self._n = 0
        if rng is not None:
            self._pack([p for layer in self.param_layers for p in layer.params()])

    def _pack(self, arrays) -> None:
        """Copy the parameters into one flat float32 buffer; the layers keep views of it."""
        layout, total = _layout([np.shape(a) for a in arrays])
        flat = np.zeros(total, DTYPE)
        views = _views(flat, layout)
        for v, a in zip(views, arrays):
            v[...] = a
        self._flat, self._layout = flat, layout
        self.grad_flat = np.zeros(total, DTYPE)
        self._connect(views, _views(self.grad_flat, layout))

    def _connect(self, params, grads) -> None:
        i = 0
        for layer in self.param_layers:
            k = len(layer.param_shapes())
            layer.set_params(params[i : i + k], grads[i : i + k])
            i += k

    @property
    def param_layers(self) -> list[L.Layer]:
        return [l for l in self.layers if l.has_params]

    def twin(self) -> "Network":
        """A network with the same (shared) parameters but its own buffers and gradients.

        The full-batch step runs two of them, one per core, each on its half of the data.
        """
        twin = Network.__new__(Network)
        layers = [L.from_spec(l.spec()) for l in self.layers]
        twin._assemble(layers, self.input_shape, self.activation, self.init, None)
        twin._flat, twin._layout = self._flat, self._layout
        twin.grad_flat = np.zeros_like(self.grad_flat)
        twin._connect(_views(self._flat, self._layout), _views(twin.grad_flat, self._layout))
        for mine, theirs in zip(twin.layers, self.layers):
            if isinstance(mine, L.Dense):
                mine.skip_blank_inputs, mine.nonnegative = theirs.skip_blank_inputs, theirs.nonnegative
        return twin

    # ----------------------------------------------------------------- parameters
    def params(self) -> list[np.ndarray]:
        """The live parameter arrays [W0, b0, W1, b1, ...]; views into :meth:`flat_params`."""
        return [p for layer in self.param_layers for p in layer.params()]

    def grads(self) -> list[np.ndarray]:
        """The gradients matching :meth:`params`; views into ``grad_flat``."""
        return [g for layer in self.param_layers for g in (layer.dW, layer.db)]

    def flat_params(self) -> np.ndarray:
        """All parameters as one flat float32 array (the layers' ``W`` and ``b`` are views)."""
        return self._flat

    def param_offsets(self) -> list[int]:
        """Where each array of :meth:`params` starts in the flat buffer."""
        return [o for o, _ in self._layout]

    @property
    def weights(self) -> list[np.ndarray]:
        return [l.W for l in self.param_layers]

    @property
    def biases(self) -> list[np.ndarray]:
        return [l.b for l in self.param_layers]

    @property
    def n_params(self) -> int:
        return sum(p.size for p in self.params())

    @property
    def n_classes(self) -> int:
        return self.layers[-1].units

    @property
    def is_mlp(self) -> bool:
        """Dense layers and activations only: the shape the notebook's explanations are about."""
        return len(self.input_shape) == 1 and all(isinstance(l, (L.Dense, L.Activation)) for l in self.layers)

    @property
    def sizes(self) -> tuple[int, ...] | None:
        """(784, 256, 128, 10) for a multilayer perceptron; None for other networks."""
        if not self.is_mlp:
            return None
        return (self.input_shape[0], *(l.units for l in self.param_layers))

    @property
    def architecture(self) -> str:
        """The hidden layers in the CLI's grammar (``conv16-5,maxpool2,dense128``)."""
        return ",".join(t for t in (l.token() for l in self.layers[:-1]) if t)

    def describe(self) -> str:
        """One line for people: ``784-256-128-10`` or ``28x28 -> conv16-5 -> ... -> 10``."""
        if self.is_mlp:
            return "-".join(str(s) for s in self.sizes)
        parts = [t for t in (l.token() for l in self.layers[:-1]) if t]
        return " → ".join(["28x28", *parts, str(self.n_classes)])

    def layer_specs(self) -> list[dict]:
        return [l.spec() for l in self.layers]

    def copy(self) -> "Network":
        return Network.from_layers(self.layer_specs(), self.input_shape, [p.copy() for p in self.params()],
                                   self.activation)

    def macs_per_row(self) -> int:
        """Multiply-adds of one row's forward pass."""
        return sum(l.macs() for l in self.layers)

    def bytes_per_row(self) -> int:
        """Buffer bytes one row of a training batch needs (all layers, forward and backward)."""
        return sum(l.bytes_per_row() for l in self.layers) + 4 * self.n_classes

    def __repr__(self) -> str:
        return f"Network({self.describe()}, activation={self.activation!r}, params={self.n_params:,})"

    # ----------------------------------------------------------------- one training step
    def as_input(self, X) -> np.ndarray:
        """Rows of 784 pixels (or one image, or images) as a float32 batch of this net's input."""
        X = np.asarray(X)
        if X.ndim == 1 or (X.ndim == 2 and X.shape == (28, 28)) or (X.ndim == 3 and X.shape == (28, 28, 1)):
            X = X.reshape(1, -1)
        if X.dtype != DTYPE:
            X = X.astype(DTYPE)
        per_row = self.input_size
        if X.ndim < 2 or X.size != len(X) * per_row:
            from scratchnet.errors import DataError

            raise DataError(f"The model expects {per_row} pixels per image, got shape {X.shape}.")
        X = X.reshape(len(X), *self.input_shape)
        return X if X.flags.c_contiguous else np.ascontiguousarray(X)

    def bind(self, n: int) -> None:
        """Size every layer's buffers for a batch of ``n`` rows (allocating only to grow)."""
        if n != self._n:
            for layer in self.layers:
                layer.bind(n)
            self.loss_fn.bind(n, self.n_classes)
            self._n = n

    def begin(self, X: np.ndarray) -> None:
        """Get ready for batch ``X``: buffers, and what the first layer learns from the whole batch."""
        self.bind(len(X))
        self.layers[0].begin(X)

    def forward(self, X: np.ndarray, rows=L.ALL) -> np.ndarray:
        """The class scores of rows ``rows`` of ``X`` (the last layer's buffer, all rows)."""
        A = X
        for layer in self.layers:
            A = layer.forward(A, rows)
        return A

    def forward_backward(self, X: np.ndarray, y: np.ndarray, rows=L.ALL, scale: float | None = None) -> tuple[float, int]:
        """Forward, loss and backward for rows ``rows``: every layer's output gradient.

        Returns (mean cross-entropy of those rows times ``scale``, how many were right);
        ``scale`` defaults to 1/len(X). Call :meth:`param_grads` next.
        """
        Z = self.forward(X, rows)
        loss, correct = self.loss_fn.forward_backward(Z, y, rows, 1.0 / len(X) if scale is None else scale)
        d = Z
        for layer in reversed(self.layers):
            if not layer.active:
                break
            d = layer.backward(d, rows)
        return loss, correct

    def param_grads(self, l2: float = 0.0) -> None:
        """Every layer's weight and bias gradients (+ ``l2`` * W), into ``grad_flat``."""
        for layer in self.param_layers:
            layer.param_grads(l2)

    def loss_and_grads(self, X, y, l2: float = 0.0) -> tuple[float, list[np.ndarray]]:
        """One training step's maths for batch ``X``: (mean loss + L2 term, the gradients).

        The gradients are the live buffers (:meth:`grads`); copy them to keep them.
        """
        with self._lock:
            X = self.as_input(X)
            y = self._labels(y, len(X))
            self.begin(X)
            loss, _ = self.forward_backward(X, y)
            self.param_grads(l2)
            return loss + self.l2_term(l2), self.grads()

    def l2_term(self, l2: float) -> float:
        if not l2:
            return 0.0
        return 0.5 * l2 * float(sum(np.vdot(W, W) for W in self.weights))

    def _labels(self, y, n: int) -> np.ndarray:
        from scratchnet.errors import DataError

        y = np.asarray(y)
        if len(y) != n:
            raise DataError(f"There are {n:,} images but {len(y):,} labels.")
        if n and (y.min() < 0 or y.max() >= self.n_classes or not np.issubdtype(y.dtype, np.integer)):
            raise DataError(f"Labels must be whole numbers from 0 to {self.n_classes - 1}.")
        return y.astype(np.intp, copy=False)

    # ----------------------------------------------------------------- inference
    def _chunk_rows(self) -> int:
        """Rows per inference pass: the buffers the network already has, else what fits INFER_BYTES."""
        per_row = self.__dict__.get("_row_bytes")
        if per_row is None:
            per_row = self._row_bytes = self.bytes_per_row()
        budget = max(16, min(MAX_INFER_ROWS, INFER_BYTES // max(1, per_row)))
        cap = self.layers[0]._cap
        return min(cap, budget) if cap >= 64 else budget

    def _scores(self, X, each) -> None:
        """Call ``each(start, scores)`` with the class scores of every chunk of ``X``."""
        X = self.as_input(X)
        with self._lock:
            step = self._chunk_rows()
            for i in range(0, len(X), step):
                chunk = X[i : i + step]
                self.begin(chunk)
                each(i, self.forward(chunk))

    def logits(self, X) -> np.ndarray:
        """Scores of the classes before softmax, (n, classes) float32."""
        X = self.as_input(X)
        out = np.empty((len(X), self.n_classes), DTYPE)
        self._scores(X, lambda i, Z: np.copyto(out[i : i + len(Z)], Z))
        return out

    def predict_proba(self, X) -> np.ndarray:
        """Probability of every class, (n, classes) float32; X may be one row or one image."""
        Z = self.logits(X)
        return L.softmax(Z, out=Z)

    def predict(self, X) -> np.ndarray:
        X = self.as_input(X)
        out = np.empty(len(X), np.int64)
        self._scores(X, lambda i, Z: np.copyto(out[i : i + len(Z)], Z.argmax(axis=1)))
        return out

    def accuracy(self, X, y) -> float:
        y = np.asarray(y)
        if len(y) == 0:
            return float("nan")
        return float((self.predict(X) == y).mean())

    def loss(self, X, y, l2: float = 0.0) -> float:
        """Mean cross-entropy from the scores with log-sum-exp, so it never saturates."""
        X = self.as_input(X)
        y = self._labels(y, len(X))
        total = [0.0]

        def add(i, Z):
            Z = Z.astype(np.float64)
            yy = y[i : i + len(Z)]
            m = Z.max(axis=1)
            lse = m + np.log(np.exp(Z - m[:, None]).sum(axis=1))
            total[0] += float((lse - Z[np.arange(len(yy)), yy]).sum())

        self._scores(X, add)
        return total[0] / len(X) + self.l2_term(l2)

    def each_output(self, X, fn) -> None:
        """Call ``fn(start, i, layer, A)`` after every layer, chunk by chunk of ``X``.

        ``A`` is layer ``i``'s output for rows ``start:start+len(A)`` of ``X``: a view of the
        layer's buffer, valid only during the call (an activation overwrites its input next).
        """
        X = self.as_input(X)
        with self._lock:
            step = self._chunk_rows()
            for start in range(0, len(X), step):
                A = chunk = X[start : start + step]
                self.begin(chunk)
                for i, layer in enumerate(self.layers):
                    A = layer.forward(A)
                    fn(start, i, layer, A)

    def outputs(self, X) -> list[np.ndarray]:
        """Every layer's output for a few rows ``X`` (copies), in layer order; for explanations.

        An activation's output replaces its input in place during training; here each is copied
        before the next layer runs, so a dense layer's pre-activation is kept too.
        """
        X = self.as_input(X)
        out: list = [None] * len(self.layers)
        if len(X) > self._chunk_rows():
            raise ValueError("outputs() is for a few rows at a time; use each_output() for data sets.")
        self.each_output(X, lambda start, i, layer, A: out.__setitem__(i, A.copy()))
        return out

    def activations(self, X) -> list[np.ndarray]:
        """[X, A1, ..., P] for a multilayer perceptron: the input, each hidden layer after its
        activation, and the probabilities (what the Inspect page plots)."""
        if not self.is_mlp:
            raise ConfigError("activations() describes multilayer perceptrons; use outputs().")
        X = self.as_input(X)
        outs = self.outputs(X)
        acts = [X]
        for i, layer in enumerate(self.layers[:-1]):
            nxt = self.layers[i + 1]
            if isinstance(layer, L.Activation) or (isinstance(layer, L.Dense) and not isinstance(nxt, L.Activation)):
                acts.append(outs[i])
        acts.append(L.softmax(outs[-1]))
        return acts

    def release(self) -> None:
        """Free the buffers (they come back at the next pass)."""
        with self._lock:
            for layer in self.layers:
                layer.release()
            self._n = 0
