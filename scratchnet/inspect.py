"""Looking inside a trained network: the numbers behind the Inspect page.

A from-scratch network is only worth having over a black box if you can see what it does, so this
module turns a :class:`~scratchnet.network.Network` and a labelled set of digits into things a
person can read: a confusion matrix, the most confident mistakes, the first layer's weights as
pictures, units that never fire, one input followed through every layer, and the forward and
backward pass of the teaching notebook with the model's real numbers in it.

Everything here is plain NumPy (no Streamlit) and vectorised over samples, so the page can cache
one :func:`analyse` result per model and render from it in milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from scratchnet import layers as L
from scratchnet.errors import DataError
from scratchnet.network import Network

N_CLASSES = 10
IMAGE_SHAPE = (28, 28)

# Colours (RGB) for pictures. Weights use a blue-white-red diverging map so the sign is the hue
# and the size is the saturation; white is exactly zero on every tile because the scale is shared.
NEGATIVE = np.array([33, 102, 172], np.float32)  # blue: this pixel's ink pushes the unit down
ZERO = np.array([247, 247, 247], np.float32)
POSITIVE = np.array([178, 24, 43], np.float32)  # red: this pixel's ink pushes the unit up
MISSING = np.array([200, 200, 200], np.float32)  # NaN (padding between tiles)
DEAD_FRAME = (20, 20, 20)  # frame drawn round the tile of a unit that never fires


# --------------------------------------------------------------------------- evaluation


def _labels(y, n: int | None = None, name: str = "labels") -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"The {name} must be a flat list of digits, got shape {y.shape}.")
    if n is not None and len(y) != n:
        raise DataError(f"There are {len(y):,} {name} for {n:,} images.")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"The {name} must be whole numbers, got {y.dtype}.")
    return y.astype(np.int64, copy=False)


def confusion_matrix(y_true, y_pred, n_classes: int = N_CLASSES) -> np.ndarray:
    """Counts ``C[t, p]`` of digits with true label ``t`` predicted as ``p`` (rows are truth).

    One ``bincount`` over ``t * k + p`` instead of a loop over samples or cells.
    """
    t = _labels(y_true, name="true labels")
    p = _labels(y_pred, len(t), "predictions")
    for what, arr in (("true label", t), ("prediction", p)):
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            bad = int(np.flatnonzero((arr < 0) | (arr >= n_classes))[0])
            raise DataError(
                f"Row {bad}: {what} {int(arr[bad])} is not a class from 0 to {n_classes - 1}."
            )
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall per true class (diagonal / row total); NaN for a class with no examples."""
    cm = np.asarray(cm)
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / np.maximum(totals, 1), np.nan)


def select(
    y_true,
    y_pred,
    confidence,
    *,
    true: int | None = None,
    pred: int | None = None,
    wrong_only: bool = False,
) -> np.ndarray:
    """Indices of the samples matching the filters, most confident prediction first.

    Ties keep the original order (a stable sort), so the ranking is reproducible.
    """
    t = _labels(y_true, name="true labels")
    p = _labels(y_pred, len(t), "predictions")
    c = np.asarray(confidence, dtype=np.float64)
    if c.shape != t.shape:
        raise DataError(f"There are {c.size:,} confidences for {len(t):,} predictions.")
    mask = np.ones(len(t), bool)
    if wrong_only:
        mask &= t != p
    if true is not None:
        mask &= t == int(true)
    if pred is not None:
        mask &= p == int(pred)
    idx = np.flatnonzero(mask)
    return idx[np.argsort(-c[idx], kind="stable")]


def rank_mistakes(y_true, y_pred, confidence, *, true=None, pred=None) -> np.ndarray:
    """The wrongly classified samples, most confident mistake first (optionally filtered)."""
    return select(y_true, y_pred, confidence, true=true, pred=pred, wrong_only=True)


@dataclass
class Evaluation:
    """A model's predictions on one labelled split, with everything the page derives from them."""

    split: str  # "test" or "validation": what the numbers were measured on
    y_true: np.ndarray  # (n,) int64
    probs: np.ndarray  # (n, k) float32 softmax outputs
    y_pred: np.ndarray = field(init=False)
    confidence: np.ndarray = field(init=False)  # probability of the predicted class
    confusion: np.ndarray = field(init=False)

    def __post_init__(self):
        self.y_true = _labels(self.y_true, len(self.probs), "true labels")
        self.y_pred = self.probs.argmax(axis=1).astype(np.int64)
        self.confidence = self.probs[np.arange(len(self.probs)), self.y_pred]
        self.confusion = confusion_matrix(self.y_true, self.y_pred, self.probs.shape[1])

    @property
    def n(self) -> int:
        return len(self.y_true)

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / self.n) if self.n else float("nan")

    @property
    def per_class(self) -> np.ndarray:
        return per_class_accuracy(self.confusion)

    @property
    def n_wrong(self) -> int:
        return int(self.n - np.trace(self.confusion))

    def cell(self, true: int, pred: int) -> np.ndarray:
        """Indices behind one confusion-matrix cell, most confident first."""
        return select(self.y_true, self.y_pred, self.confidence, true=true, pred=pred)

    def mistakes(self, true: int | None = None, pred: int | None = None) -> np.ndarray:
        return rank_mistakes(self.y_true, self.y_pred, self.confidence, true=true, pred=pred)

    def worst_confusions(self, k: int = 5) -> list[tuple[int, int, int]]:
        """The ``k`` largest off-diagonal cells as ``(true, pred, count)``, biggest first."""
        off = self.confusion.copy()
        np.fill_diagonal(off, 0)
        order = np.argsort(-off, axis=None, kind="stable")[:k]
        t, p = np.unravel_index(order, off.shape)
        return [(int(a), int(b), int(off[a, b])) for a, b in zip(t, p) if off[a, b] > 0]


def evaluate(net: Network, X, y, split: str = "test") -> Evaluation:
    X = np.asarray(X)
    return Evaluation(split, _labels(y, len(X)), net.predict_proba(X))


# --------------------------------------------------------------------------- hidden units


@dataclass
class UnitActivity:
    """How one hidden layer's units behaved over a whole data set."""

    layer: int  # 1-based: layer 1 is the first hidden layer (each activation's output)
    max: np.ndarray  # (units,) largest activation seen; a convolution's units are its channels
    min: np.ndarray
    mean: np.ndarray
    active_fraction: np.ndarray  # share of inputs on which the unit's output was above ACTIVE_ABOVE
    dead: np.ndarray  # (units,) bool, see dead_mask
    kind: str = "dense"  # "dense" or "conv" (units are channels, statistics over every position)

    @property
    def n_dead(self) -> int:
        return int(self.dead.sum())


# A unit "fires" when its output is above this: the middle of sigmoid's range, zero otherwise.
ACTIVE_ABOVE = {"relu": 0.0, "sigmoid": 0.5, "tanh": 0.0}


def dead_mask(max_act, min_act, activation: str, tol: float = 1e-6) -> np.ndarray:
    """Units that carry no information about the input.

    A ReLU unit is dead when it never outputs anything above zero on the data: its gradient is
    zero too, so training can never revive it. Sigmoid and tanh units are never exactly zero, so
    for them "dead" means saturated: the output hardly changes whatever the input.
    """
    max_act = np.asarray(max_act, np.float64)
    min_act = np.asarray(min_act, np.float64)
    if activation == "relu":
        return max_act <= tol
    return (max_act - min_act) <= 1e-3


def hidden_layers(net: Network) -> list[int]:
    """Indices (in ``net.layers``) of every hidden activation: the "hidden layers" people count."""
    return [i for i, layer in enumerate(net.layers) if isinstance(layer, L.Activation)]


def hidden_names(net: Network) -> list[str]:
    """A name per hidden layer (as :func:`hidden_layers`): the layer its activation belongs to.

    ``["conv16-5", "conv32-5", "dense128"]``; an MLP's are ``["dense256", "dense128"]``.
    """
    names = []
    for i in hidden_layers(net):
        owner = next((net.layers[j] for j in range(i - 1, -1, -1) if net.layers[j].has_params), None)
        names.append(owner.token() if owner is not None else net.layers[i].kind)
    return names


def _sweep(net: Network, X):
    """One chunked forward pass over X: softmax outputs plus per-unit statistics per layer."""
    X = np.asarray(X)
    n = len(X)
    hidden = hidden_layers(net)
    units = [net.layers[i].out_shape[-1] for i in hidden]
    conv = [len(net.layers[i].out_shape) == 3 for i in hidden]
    mx = [np.full(h, -np.inf, np.float32) for h in units]
    mn = [np.full(h, np.inf, np.float32) for h in units]
    total = [np.zeros(h, np.float64) for h in units]
    active = [np.zeros(h, np.int64) for h in units]
    probs = np.empty((n, net.n_classes), np.float32)
    above = ACTIVE_ABOVE.get(net.activation, 0.0)
    where = {layer: k for k, layer in enumerate(hidden)}
    last = len(net.layers) - 1

    def visit(start, i, layer, A):
        if i == last:
            L.softmax(A, out=probs[start : start + len(A)])
            return
        k = where.get(i)
        if k is None:
            return
        axes = (0, 1, 2) if conv[k] else 0
        np.maximum(mx[k], A.max(axis=axes), out=mx[k])
        np.minimum(mn[k], A.min(axis=axes), out=mn[k])
        if conv[k]:  # per position: the mean activation; a channel fires on a digit if anywhere
            total[k] += A.sum(axis=(1, 2), dtype=np.float64).sum(axis=0) / (A.shape[1] * A.shape[2])
            active[k] += np.count_nonzero((A > above).any(axis=(1, 2)), axis=0)
        else:
            total[k] += A.sum(axis=0, dtype=np.float64)
            active[k] += np.count_nonzero(A > above, axis=0)

    if n:
        net.each_output(X, visit)
    activity = []
    for k in range(len(hidden)):
        denom = max(n, 1)
        activity.append(
            UnitActivity(
                layer=k + 1,
                max=mx[k],
                min=mn[k],
                mean=(total[k] / denom).astype(np.float32),
                active_fraction=(active[k] / denom).astype(np.float32),
                dead=dead_mask(mx[k], mn[k], net.activation) if n else np.zeros(len(mx[k]), bool),
                kind="conv" if conv[k] else "dense",
            )
        )
    return probs, activity


def unit_activity(net: Network, X) -> list[UnitActivity]:
    """Per-unit statistics of every hidden layer over ``X`` (one entry per hidden layer)."""
    return _sweep(net, X)[1]


def dead_units(net: Network, X) -> list[np.ndarray]:
    """For each hidden layer, a boolean mask of the units that never fire on ``X``."""
    return [a.dead for a in unit_activity(net, X)]


# --------------------------------------------------------------------------- pictures


def weight_images(W, shape: tuple[int, int] = IMAGE_SHAPE) -> np.ndarray:
    """A first-layer weight matrix ``(784, units)`` as ``(units, 28, 28)`` pictures.

    Column ``j`` of ``W`` holds the weight from every pixel into unit ``j``, so each unit's
    picture is that column laid back out on the 28x28 grid the pixels came from.
    """
    W = np.asarray(W)
    if W.ndim != 2 or W.shape[0] != shape[0] * shape[1]:
        raise DataError(
            f"Only a layer fed by {shape[0]}x{shape[1]} pixels can be drawn, got weights {W.shape}."
        )
    return np.ascontiguousarray(W.T).reshape(W.shape[1], *shape)


def grid_shape(n: int, cols: int | None = None) -> tuple[int, int]:
    """Rows and columns for ``n`` tiles: near-square unless ``cols`` is given."""
    if n < 1:
        return (0, 0)
    cols = int(cols) if cols else math.ceil(math.sqrt(n))
    cols = max(1, min(cols, n))
    return (math.ceil(n / cols), cols)


def tile(images, cols: int | None = None, pad: int = 1, fill=np.nan) -> np.ndarray:
    """Lay ``(n, h, w[, c])`` images out in one grid array, ``pad`` pixels of ``fill`` apart.

    One big array shown once is far cheaper for a browser than hundreds of little images.
    Tile ``i`` sits at row ``i // cols``, column ``i % cols``; unused cells stay ``fill``.
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise DataError(f"Expected a stack of images (n, height, width), got shape {images.shape}.")
    n, h, w = images.shape[:3]
    rows, cols = grid_shape(n, cols)
    extra = images.shape[3:]
    dtype = np.result_type(images.dtype, np.asarray(fill).dtype)
    out = np.full((rows * (h + pad) - pad if rows else 0, cols * (w + pad) - pad if cols else 0,
                   *extra), fill, dtype=dtype)
    if n == 0:
        return out
    # Place every tile with one fancy-indexed assignment: no Python loop over units.
    r, c = np.divmod(np.arange(n), cols)
    ys = (r * (h + pad))[:, None] + np.arange(h)[None, :]  # (n, h)
    xs = (c * (w + pad))[:, None] + np.arange(w)[None, :]  # (n, w)
    out[ys[:, :, None], xs[:, None, :]] = images
    return out


def diverging_rgb(values, vmax: float | None = None) -> np.ndarray:
    """Blue-white-red RGB (uint8) for signed values on a scale shared by the whole array.

    ``vmax`` (default: the largest magnitude) maps to full colour; NaN is drawn grey.
    """
    v = np.asarray(values, np.float32)
    finite = np.isfinite(v)
    if vmax is None:
        vmax = float(np.abs(v[finite]).max()) if finite.any() else 1.0
    vmax = vmax if vmax > 0 else 1.0
    s = np.clip(np.where(finite, v, 0) / vmax, -1, 1)[..., None]
    end = np.where(s < 0, NEGATIVE, POSITIVE)
    rgb = ZERO + np.abs(s) * (end - ZERO)
    rgb = np.where(finite[..., None], rgb, MISSING)
    return np.rint(rgb).astype(np.uint8)


def ink_rgb(images) -> np.ndarray:
    """Digits as the network sees them (white ink on black), uint8 RGB."""
    g = np.rint(np.clip(np.asarray(images, np.float32), 0, 1) * 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)


def upscale(image, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement so each pixel stays a crisp square in the browser."""
    image = np.asarray(image)
    factor = max(1, int(factor))
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def framed(images_rgb, frame: int, colors) -> np.ndarray:
    """Put a ``frame``-pixel border of ``colors[i]`` (RGB) round image ``i`` of ``(n, h, w, 3)``."""
    images_rgb = np.asarray(images_rgb, np.uint8)
    n, h, w, _ = images_rgb.shape
    colors = np.broadcast_to(np.asarray(colors, np.uint8), (n, 3))
    out = np.empty((n, h + 2 * frame, w + 2 * frame, 3), np.uint8)
    out[...] = colors[:, None, None, :]
    out[:, frame : frame + h, frame : frame + w] = images_rgb
    return out


@dataclass
class WeightPicture:
    """The first layer drawn as one RGB image, with the facts needed to read it."""

    image: np.ndarray  # (H, W, 3) uint8
    vmax: float  # the weight drawn at full colour (shared by every tile)
    rows: int
    cols: int
    scale: int  # screen pixels per weight
    dead: np.ndarray  # (units,) bool: the units framed in black


def weight_picture(
    W, dead=None, *, cols: int | None = None, scale: int | None = None, background=(255, 255, 255)
) -> WeightPicture:
    """Each hidden unit's 784 incoming weights as a 28x28 tile, all tiles in one image.

    The colour scale is shared (the 99.5th percentile of |W|, so one outlier weight does not wash
    every tile out) and units listed in ``dead`` get a black frame. Few units are drawn big (the
    notebook's ten units at 6x), hundreds small.
    """
    imgs = weight_images(W)
    n = len(imgs)
    vmax = float(np.percentile(np.abs(imgs), 99.5)) if imgs.size else 1.0
    if scale is None:
        scale = 6 if n <= 16 else 4 if n <= 64 else 2
    if cols is None:
        cols = 5 if n == 10 else min(n, 8) if n <= 64 else 16
    dead = np.zeros(n, bool) if dead is None else np.asarray(dead, bool)
    if dead.shape != (n,):
        raise DataError(f"The dead-unit mask has {dead.size} entries for {n} units.")
    frame = max(2, scale)
    bg = np.asarray(background, np.uint8)
    colors = np.where(dead[:, None], np.asarray(DEAD_FRAME, np.uint8), bg)
    rgb = framed(upscale_stack(diverging_rgb(imgs, vmax), scale), frame, colors)
    rows, cols = grid_shape(n, cols)
    image = tile(rgb, cols=cols, pad=max(2, scale), fill=np.uint8(255))
    return WeightPicture(image.astype(np.uint8), vmax, rows, cols, scale, dead)


def filter_images(W) -> np.ndarray:
    """A convolution's kernels ``(K, K, C, O)`` as ``(O, K, K)`` pictures (summed over C).

    The first layer of a conv net reads one channel (ink), so its kernel ``o`` is exactly the
    KxK pattern of ink that makes output channel ``o`` respond most.
    """
    W = np.asarray(W)
    if W.ndim != 4 or W.shape[0] != W.shape[1]:
        raise DataError(f"Convolution kernels have shape (K, K, C, O), got {W.shape}.")
    return np.ascontiguousarray(W.sum(axis=2).transpose(2, 0, 1))


def filter_picture(W, dead=None, *, cols: int | None = None, scale: int = 12) -> WeightPicture:
    """The first convolution's filters as tiles (blue-white-red like the dense weights)."""
    imgs = filter_images(W)
    n = len(imgs)
    vmax = float(np.abs(imgs).max()) if imgs.size else 1.0
    cols = cols or min(n, 8)
    dead = np.zeros(n, bool) if dead is None else np.asarray(dead, bool)
    if dead.shape != (n,):
        raise DataError(f"The dead-filter mask has {dead.size} entries for {n} filters.")
    frame = 3
    colors = np.where(dead[:, None], np.asarray(DEAD_FRAME, np.uint8), np.asarray((255, 255, 255), np.uint8))
    rgb = framed(upscale_stack(diverging_rgb(imgs, vmax or 1.0), scale), frame, colors)
    rows, cols = grid_shape(n, cols)
    image = tile(rgb, cols=cols, pad=4, fill=np.uint8(255))
    return WeightPicture(image.astype(np.uint8), vmax, rows, cols, scale, dead)


@dataclass
class FeatureMaps:
    """What one conv or pooling layer made of one digit: a picture per channel."""

    index: int  # position in net.layers
    name: str  # "conv16-5 + relu", "maxpool2"
    maps: np.ndarray  # (channels, H, W) float32
    hidden: int | None = None  # which entry of Analysis.activity describes these channels

    @property
    def channels(self) -> int:
        return len(self.maps)


def activation_of(net: Network, i: int) -> L.Activation | None:
    """The activation that belongs to layer ``i`` (a conv's may come after its pooling)."""
    for layer in net.layers[i + 1 :]:
        if isinstance(layer, L.Activation):
            return layer
        if layer.has_params or isinstance(layer, L.Flatten):
            return None
    return None


def _hidden_of(net: Network, i: int) -> int | None:
    """The hidden layer (index into :func:`hidden_layers`) whose channels layer ``i`` carries.

    A pooling layer keeps the channels of the convolution before it, so both map to the
    activation of that convolution, wherever it sits (before or after the pooling).
    """
    conv = next((j for j in range(i, -1, -1) if isinstance(net.layers[j], L.Conv2D)), None)
    act = activation_of(net, conv) if conv is not None else None
    if act is None:
        return None
    index = next(k for k, layer in enumerate(net.layers) if layer is act)
    return hidden_layers(net).index(index)


def feature_maps(net: Network, x) -> list[FeatureMaps]:
    """What every convolution and every pooling made of one digit, a picture per channel.

    A convolution's maps are shown after its activation; when the activation comes after the
    pooling (the same numbers: they commute), it is applied here to show the convolution's.
    """
    outs = net.outputs(_one_row(x))
    found = []
    for i, layer in enumerate(net.layers):
        if isinstance(layer, L.Conv2D):
            act = activation_of(net, i)
            maps = act(outs[i][0]) if act is not None else outs[i][0]
            name = f"{layer.token()} + {act.kind}" if act is not None else layer.token()
        elif isinstance(layer, L.MaxPool2D):
            nxt = net.layers[i + 1] if i + 1 < len(net.layers) else None
            maps = outs[i + 1][0] if isinstance(nxt, L.Activation) else outs[i][0]
            name = layer.token()
        else:
            continue
        found.append(FeatureMaps(i, name, np.ascontiguousarray(maps.transpose(2, 0, 1)), _hidden_of(net, i)))
    return found


DEAD_MAP_FRAME = (228, 26, 28)  # feature maps are black where nothing fires: dead ones get red


def feature_map_picture(maps, dead=None, *, size: int = 84, cols: int | None = None) -> WeightPicture:
    """One layer's feature maps ``(channels, H, W)`` side by side, each about ``size`` pixels wide.

    Every map is enlarged by the same whole factor (28x28 maps 3x, 14x14 6x, 7x7 12x), so maps of
    different layers come out about the same size on screen. The channels share one scale, so a
    weak channel looks weak: outputs that are never negative (after ReLU, or pooled) are drawn
    like the digit, black = 0 and white = the layer's largest value; signed ones blue-white-red.
    Channels listed in ``dead`` (never firing on the whole data set) get a red frame.
    """
    maps = np.asarray(maps, np.float32)
    if maps.ndim != 3:
        raise DataError(f"Feature maps have shape (channels, height, width), got {maps.shape}.")
    n, h, _ = maps.shape
    scale = max(1, int(round(size / max(h, 1))))
    finite = maps[np.isfinite(maps)]
    vmax = float(np.abs(finite).max()) if finite.size else 0.0
    if finite.size and finite.min() < 0:
        rgb = diverging_rgb(maps, vmax or 1.0)
    else:
        rgb = ink_rgb(maps / (vmax or 1.0))
    dead = np.zeros(n, bool) if dead is None else np.asarray(dead, bool)
    if dead.shape != (n,):
        raise DataError(f"The dead-channel mask has {dead.size} entries for {n} channels.")
    colors = np.where(dead[:, None], np.asarray(DEAD_MAP_FRAME, np.uint8), np.asarray((255, 255, 255), np.uint8))
    framed_rgb = framed(upscale_stack(rgb, scale), 2, colors)
    rows, cols = grid_shape(n, cols or min(n, 8))
    image = tile(framed_rgb, cols=cols, pad=4, fill=np.uint8(255))
    return WeightPicture(image.astype(np.uint8), vmax, rows, cols, scale, dead)


@dataclass
class ConvExample:
    """One output pixel of the first convolution, with the model's own numbers.

    As a sum: ``z = b + sum over di, dj of window[di, dj] * kernel[di, dj]``. As im2col: the
    window is row ``row`` of ``cols`` (``cols_shape``), the kernel is column ``filter`` of the
    kernel matrix (``W_shape``), and ``z`` is that row times that column, plus ``b``.
    """

    filter: int
    pos: tuple[int, int]  # (row, column) of the output pixel
    window: np.ndarray  # (K, K) input pixels around it (zeros past the edge)
    kernel: np.ndarray  # (K, K)
    bias: float
    z: float
    a: float  # after the activation
    activation: str
    cols_shape: tuple[int, int]
    W_shape: tuple[int, int]
    row: int

    @property
    def products(self) -> np.ndarray:
        return self.window * self.kernel

    @property
    def kernel_size(self) -> int:
        return len(self.kernel)

    @property
    def cols_row(self) -> np.ndarray:
        """Row ``row`` of ``cols``: the window read row by row (offsets (di, dj) in that order)."""
        return self.window.ravel()

    @property
    def kernel_column(self) -> np.ndarray:
        """Column ``filter`` of the kernel matrix ``W.reshape(K*K, filters)``: the same order."""
        return self.kernel.ravel()

    def top_terms(self, k: int = 3) -> np.ndarray:
        """Flat indices (into :attr:`cols_row`) of the ``k`` products largest in size."""
        p = self.products.ravel()
        return np.argsort(-np.abs(p), kind="stable")[:k]


def conv_example(net: Network, x, filter: int | None = None, pos: tuple[int, int] | None = None) -> ConvExample:
    """The first convolution's computation at one pixel; default: its strongest response."""
    conv = next((l for l in net.layers if isinstance(l, L.Conv2D)), None)
    if conv is None or net.layers.index(conv) != 0:
        raise DataError("This model has no convolution reading the image directly.")
    row = _one_row(x)
    outs = net.outputs(row)
    z_map = outs[0][0]  # (H, W, O): the convolution before its activation
    H, W, O = z_map.shape
    if filter is None or pos is None:
        flat = int(np.argmax(z_map if filter is None else z_map[:, :, filter : filter + 1]))
        if filter is None:
            i, j, filter = np.unravel_index(flat, z_map.shape)
        else:
            i, j, _ = np.unravel_index(flat, (H, W, 1))
        pos = pos or (int(i), int(j))
    filter = int(filter)
    if not 0 <= filter < O:
        raise DataError(f"The first convolution has filters 0 to {O - 1}, not {filter}.")
    i, j = pos
    K, p = conv.kernel, conv.kernel // 2
    img = np.pad(row.reshape(H, W), p)
    window = img[i : i + K, j : j + K].astype(np.float32)
    kernel = np.asarray(conv.W[:, :, 0, filter], np.float32)
    bias = float(conv.b[filter])
    z = float(z_map[i, j, filter])
    act = activation_of(net, 0)
    a = float(act(np.array([[z]], np.float32))[0, 0]) if act is not None else z
    return ConvExample(filter, (int(i), int(j)), window, kernel, bias, z, a, act.kind if act else "none",
                       (H * W, K * K * conv.in_shape[2]), (K * K * conv.in_shape[2], O), int(i) * W + int(j))


def im2col(image, kernel: int) -> np.ndarray:
    """Every ``kernel`` x ``kernel`` window of one one-channel image as a row: ``(H*W, K*K)``.

    Row ``i * W + j`` is the window centred on pixel ``(i, j)`` ("same" padding: zeros past the
    edge), read row by row. ``im2col(x, K) @ W.reshape(K*K, O) + b`` is the whole first
    convolution in one matrix product; :class:`~scratchnet.layers.Conv2D` builds the same matrix.
    """
    img = np.asarray(image, np.float32)
    img = img.reshape(IMAGE_SHAPE) if img.size == IMAGE_SHAPE[0] * IMAGE_SHAPE[1] else img
    if img.ndim != 2:
        raise DataError(f"im2col reads one image (height, width), got shape {img.shape}.")
    K = int(kernel)
    if K < 1 or K % 2 == 0:
        raise DataError(f"A kernel size must be odd, got {K}.")
    H, W = img.shape
    pad = np.pad(img, K // 2)
    windows = np.lib.stride_tricks.sliding_window_view(pad, (K, K))  # (H, W, K, K), no copy
    return windows.reshape(H * W, K * K).copy()


def window_picture(x, pos: tuple[int, int], kernel: int, scale: int = 5,
                   color=(228, 26, 28)) -> np.ndarray:
    """The digit (white ink on black, RGB) with a frame round the ``kernel``-wide window at ``pos``.

    The frame is drawn just outside the window's pixels (clipped at the image edge, where the
    window reaches into the zero padding), ``scale`` screen pixels per image pixel.
    """
    img = upscale(ink_rgb(np.asarray(x, np.float32).reshape(IMAGE_SHAPE)), scale).copy()
    H, W = IMAGE_SHAPE
    p = int(kernel) // 2
    i, j = pos
    top, bottom = max(i - p, 0) * scale, min(i + p + 1, H) * scale  # rows [top, bottom)
    left, right = max(j - p, 0) * scale, min(j + p + 1, W) * scale
    t = max(2, scale // 2)  # line thickness
    c = np.asarray(color, np.uint8)
    img[max(top - t, 0) : top + (t if top == 0 else 0), left:right] = c
    img[bottom - (t if bottom == H * scale else 0) : bottom + t, left:right] = c
    img[max(top - t, 0) : bottom + t, max(left - t, 0) : left + (t if left == 0 else 0)] = c
    img[max(top - t, 0) : bottom + t, right - (t if right == W * scale else 0) : right + t] = c
    return img


def upscale_stack(images, factor: int) -> np.ndarray:
    """:func:`upscale` applied to every image of a ``(n, h, w[, c])`` stack at once."""
    images = np.asarray(images)
    factor = max(1, int(factor))
    return images.repeat(factor, axis=1).repeat(factor, axis=2)


def initial_network(net: Network, metadata: dict) -> Network | None:
    """The network as training started, rebuilt from the seed in the model's config.

    Every scratchnet training builds its network with ``training.build_network(config)``, so the
    config's seed gives back the exact starting weights. ``W - W_init`` is then what training
    learned; with the notebook's large uniform init that is invisible in ``W`` itself. None when
    the metadata holds no usable config or it does not produce this network's shapes.
    """
    from scratchnet.errors import ScratchnetError
    from scratchnet.training import TrainConfig, build_network

    cfg = (metadata or {}).get("config")
    if not isinstance(cfg, dict):
        return None
    try:
        config = TrainConfig.from_dict(cfg)
        start = build_network(config, n_classes=net.n_classes)
    except (ScratchnetError, TypeError, ValueError):
        return None
    if start.layer_specs() != net.layer_specs() or start.activation != net.activation:
        return None
    return start


# --------------------------------------------------------------------------- one input


@dataclass
class LayerTrace:
    """One layer's computation for one input: ``z = a_prev W + b`` then ``a = f(z)``."""

    index: int  # 1-based layer number
    activation: str  # "relu" | "sigmoid" | "tanh" for hidden layers, "softmax" for the output
    W_shape: tuple[int, int]
    b_shape: tuple[int]
    z: np.ndarray  # (units,) pre-activation
    a: np.ndarray  # (units,) output


def _check_label(net: Network, label) -> int:
    k = net.n_classes
    if not 0 <= int(label) < k:
        raise DataError(f"The label must be a digit from 0 to {k - 1}, got {label}.")
    return int(label)


def _one_row(x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.size != 784 and not (x.ndim == 1 or (x.ndim == 2 and len(x) == 1)):
        raise DataError(f"An input must be one 28x28 image or 784 pixels, got shape {x.shape}.")
    return x.reshape(1, -1)


def _mlp(net: Network, what: str) -> None:
    if not net.is_mlp:
        raise DataError(f"{what} follows the dense layers of a multilayer perceptron; this model has convolutions.")


def trace(net: Network, x) -> list[LayerTrace]:
    """Every dense layer's pre-activation ``z`` and output ``a`` for one input (a perceptron's)."""
    _mlp(net, "The layer-by-layer trace")
    row = _one_row(x)
    if row.shape[1] != net.input_shape[0]:
        raise DataError(f"The model expects {net.input_shape[0]} inputs, got {row.shape[1]}.")
    outs = net.outputs(row)
    out = []
    k = 0
    for i, layer in enumerate(net.layers):
        if not isinstance(layer, L.Dense):
            continue
        k += 1
        z = outs[i][0]
        if i == len(net.layers) - 1:
            a, kind = L.softmax(z[None, :])[0], "softmax"
        elif isinstance(net.layers[i + 1], L.Activation):
            a, kind = outs[i + 1][0], net.layers[i + 1].kind
        else:
            a, kind = z, "identity"
        out.append(LayerTrace(k, kind, layer.W.shape, layer.b.shape, z.copy(), a.copy()))
    return out


@dataclass
class Contributions:
    """Why the output layer scored ``cls``: ``logit = sum(values) + bias``.

    ``values[j] = a_j * W[j, cls]`` is what unit ``j`` of the last hidden layer added to the
    class's score (before softmax). Positive values argued for the class, negative against.
    """

    cls: int
    values: np.ndarray  # (units of the last hidden layer,)
    bias: float
    logit: float
    inputs: np.ndarray | None = None  # the a_j themselves
    unit: str = "unit"  # what the a_j are: "unit", "feature" (a flattened map) or "pixel"

    def top(self, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the ``k`` strongest supporters and the ``k`` strongest opponents."""
        order = np.argsort(-self.values, kind="stable")
        support = order[: k][self.values[order[:k]] > 0]
        rev = order[::-1][:k]
        oppose = rev[self.values[rev] < 0]
        return support, oppose


def contributions(net: Network, x, cls: int | None = None) -> Contributions:
    """Split one class's output score into the share of each last-hidden-layer unit.

    Default class is the winner. For a network with no hidden layer the "units" are the pixels;
    for a conv net they are the units of its last dense hidden layer.
    """
    row = _one_row(x)
    outs = net.outputs(row)
    a_prev = outs[-2][0].reshape(-1) if len(outs) > 1 else row[0]
    z = outs[-1][0]
    if cls is None:
        cls = int(z.argmax())
    W, b = net.weights[-1], net.biases[-1]
    values = (a_prev * W[:, cls]).astype(np.float32)
    before = net.layers[-2] if len(net.layers) > 1 else None
    unit = "pixel" if before is None else "feature" if isinstance(before, L.Flatten) else "unit"
    return Contributions(int(cls), values, float(b[cls]), float(z[cls]), a_prev.astype(np.float32), unit)


def input_saliency(net: Network, x, cls: int | None = None) -> np.ndarray:
    """Gradient of class ``cls``'s score w.r.t. each pixel, times the pixel: (784,).

    For a ReLU network the score is piecewise linear in the pixels, so this says how much each
    pixel's ink pushed the score up (positive) or down (negative) at this input. Backward through
    the dense layers by hand: ``d score / d a = g``, then ``g * f'`` and ``@ W.T`` per layer.
    """
    _mlp(net, "The pixel saliency")
    row = _one_row(x)
    with net._lock:  # the activations' derivative uses their (one-row) buffers
        outs = net.outputs(row)
        if cls is None:
            cls = int(outs[-1][0].argmax())
        dense = [i for i, layer in enumerate(net.layers) if isinstance(layer, L.Dense)]
        g = net.layers[dense[-1]].W[:, cls][None, :].astype(np.float32).copy()  # d score / d a_{L-1}
        for i in reversed(dense[:-1]):
            act = net.layers[i + 1]
            if isinstance(act, L.Activation):
                act.derive(outs[i + 1], g, L.ALL)  # -> d score / d z_i
            g = g @ net.layers[i].W.T  # -> d score / d a_{i-1}
    return (g[0] * row[0]).astype(np.float32)


# --------------------------------------------------------------------------- the walk-through


@dataclass
class Walkthrough:
    """One digit through the forward pass, the loss and one backward step, with real numbers."""

    x: np.ndarray  # (784,)
    label: int
    layers: list[LayerTrace]
    probs: np.ndarray  # (k,) softmax output
    loss: float  # cross-entropy -log p[label]
    dz_out: np.ndarray  # (k,) P - Y at the output layer
    grads: list[np.ndarray]  # the network's gradients for this digit: [dW1, db1, dW2, db2, ...]
    lr: float
    loss_after: float  # loss on this digit after theta := theta - lr * grad

    @property
    def prediction(self) -> int:
        return int(self.probs.argmax())

    def grad_norms(self) -> list[tuple[str, tuple[int, ...], float]]:
        """(name, shape, Frobenius norm) per parameter, named like the notebook: dW1, db1, ..."""
        out = []
        for i, g in enumerate(self.grads):
            name = f"{'dW' if i % 2 == 0 else 'db'}{i // 2 + 1}"
            out.append((name, tuple(g.shape), float(np.linalg.norm(g))))
        return out


def walkthrough(net: Network, x, label: int, lr: float = 0.1) -> Walkthrough:
    """Follow one digit with true ``label`` through forward, loss, backward and one update."""
    label = _check_label(net, label)
    row = _one_row(x)
    layers = trace(net, row)
    y = np.array([label])
    _, grads = net.loss_and_grads(row, y)
    grads = [g.copy() for g in grads]
    probs = layers[-1].a
    dz = probs.copy()
    dz[label] -= 1
    loss = net.loss(row, y)
    stepped = net.copy()
    for p, g in zip(stepped.params(), grads):
        p -= np.float32(lr) * g
    return Walkthrough(
        x=row[0], label=label, layers=layers, probs=probs, loss=loss, dz_out=dz, grads=grads,
        lr=float(lr), loss_after=stepped.loss(row, y),
    )


@dataclass
class HiddenOutput:
    """One hidden layer's output for one input (aligned with ``Analysis.activity``)."""

    layer: int  # 1-based, as UnitActivity.layer
    index: int  # the activation's position in net.layers
    name: str  # "dense128", "conv16-5"
    activation: str
    kind: str  # "dense" or "conv"
    a: np.ndarray  # (units,) for a dense layer, (channels, H, W) for a convolution


def hidden_outputs(net: Network, x) -> list[HiddenOutput]:
    """Every hidden layer's output (after its activation) for one input, any architecture."""
    outs = net.outputs(_one_row(x))
    found = []
    for k, (i, name) in enumerate(zip(hidden_layers(net), hidden_names(net))):
        a = outs[i][0]
        conv = a.ndim == 3
        a = np.ascontiguousarray(a.transpose(2, 0, 1)) if conv else a.copy()
        found.append(HiddenOutput(k + 1, i, name, net.layers[i].kind, "conv" if conv else "dense", a))
    return found


@dataclass
class LayerStep:
    """What one layer did to one input: shapes, parameters and the numbers it produced."""

    index: int  # position in net.layers
    name: str  # "conv16-5", "maxpool2", "relu", "flatten", "dense10"
    kind: str  # the layer's kind: "conv2d", "maxpool2d", "relu", "flatten", "dense", ...
    in_shape: tuple[int, ...]  # per image (no batch axis)
    out_shape: tuple[int, ...]
    n_params: int
    out: np.ndarray  # the output for this input, out_shape

    @property
    def positive(self) -> int:
        return int((self.out > 0).sum())


def forward_steps(net: Network, x) -> list[LayerStep]:
    """One input through every layer, in order: what each layer made of it, with its shape."""
    outs = net.outputs(_one_row(x))
    steps = []
    for i, layer in enumerate(net.layers):
        n_params = sum(int(np.prod(s)) for s in layer.param_shapes())
        steps.append(LayerStep(i, layer.token() or layer.kind, layer.kind, tuple(layer.in_shape),
                               tuple(layer.out_shape), n_params, outs[i][0].copy()))
    return steps


@dataclass
class LayerWalkthrough:
    """Forward, loss, backward and one update for one digit, described layer by layer.

    :class:`Walkthrough` does this in the notebook's terms for multilayer perceptrons; this works
    for every network (a convolutional one included).
    """

    x: np.ndarray  # (784,)
    label: int
    steps: list[LayerStep]
    logits: np.ndarray  # (k,)
    probs: np.ndarray  # (k,)
    loss: float
    dz_out: np.ndarray  # (k,) P - Y
    grads: list[np.ndarray]  # [dW1, db1, dW2, db2, ...] for this digit
    grad_layers: list[str]  # the layer each pair of gradients belongs to: ["conv4-5", "dense16", ...]
    lr: float
    loss_after: float

    @property
    def prediction(self) -> int:
        return int(self.probs.argmax())

    def grad_norms(self) -> list[tuple[str, str, tuple[int, ...], float]]:
        """(name, layer, shape, norm) per parameter: dW1, db1, ... in layer order."""
        out = []
        for i, g in enumerate(self.grads):
            name = f"{'dW' if i % 2 == 0 else 'db'}{i // 2 + 1}"
            out.append((name, self.grad_layers[i // 2], tuple(g.shape), float(np.linalg.norm(g))))
        return out


def layer_walkthrough(net: Network, x, label: int, lr: float = 0.1) -> LayerWalkthrough:
    """Follow one digit with true ``label`` through every layer, the loss, backward and one step."""
    label = _check_label(net, label)
    row = _one_row(x)
    steps = forward_steps(net, row)
    logits = steps[-1].out
    probs = L.softmax(logits[None, :].copy())[0]
    y = np.array([label])
    _, grads = net.loss_and_grads(row, y)
    grads = [g.copy() for g in grads]
    dz = probs.copy()
    dz[label] -= 1
    stepped = net.copy()
    for p, g in zip(stepped.params(), grads):
        p -= np.float32(lr) * g
    return LayerWalkthrough(
        x=row[0], label=label, steps=steps, logits=logits, probs=probs, loss=net.loss(row, y),
        dz_out=dz, grads=grads, grad_layers=[l.token() for l in net.param_layers], lr=float(lr),
        loss_after=stepped.loss(row, y),
    )


# --------------------------------------------------------------------------- the whole report


@dataclass
class Analysis:
    """Everything the Inspect page shows about one model on one split, computed once."""

    evaluation: Evaluation
    activity: list[UnitActivity]
    weights: WeightPicture | None  # the first layer: dense weights per unit, or conv filters
    seconds: float = 0.0
    filters: bool = False  # ``weights`` shows a convolution's filters

    @property
    def dead_counts(self) -> list[int]:
        return [a.n_dead for a in self.activity]


def analyse(net: Network, X, y, split: str = "test") -> Analysis:
    """Evaluate ``net`` on ``(X, y)`` and draw its first layer, in one forward sweep."""
    import time

    start = time.perf_counter()
    X = np.asarray(X)
    y = _labels(y, len(X))
    probs, activity = _sweep(net, X)
    ev = Evaluation(split, y, probs)
    pic = None
    first = net.layers[0]
    dead = activity[0].dead if activity else None
    if isinstance(first, L.Conv2D) and first.in_shape[2] == 1:
        pic = filter_picture(first.W, dead)
    elif isinstance(first, L.Dense) and first.in_shape[0] == IMAGE_SHAPE[0] * IMAGE_SHAPE[1]:
        # with no hidden layer, the class templates themselves
        pic = weight_picture(first.W, dead if len(net.weights) > 1 else None)
    return Analysis(ev, activity, pic, time.perf_counter() - start, filters=isinstance(first, L.Conv2D))


# --------------------------------------------------------------------------- metadata


HISTORY_COLUMNS = ("step", "epoch", "loss", "train_accuracy", "val_accuracy", "seconds")


def history_frame(metadata: dict):
    """The training curves stored in a model's metadata as a DataFrame (empty if none)."""
    import pandas as pd

    rows = (metadata or {}).get("history") or []
    rows = [r for r in rows if isinstance(r, dict)]
    df = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    for col in HISTORY_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def config_rows(metadata: dict) -> list[tuple[str, str]]:
    """The training configuration as (setting, value) text pairs, in a stable order."""
    cfg = (metadata or {}).get("config") or {}
    if not isinstance(cfg, dict):
        return []
    out = []
    for key, value in cfg.items():
        if isinstance(value, (list, tuple)):
            text = " x ".join(str(v) for v in value) if key == "hidden" else ", ".join(map(str, value))
        elif value is None:
            text = "-"
        else:
            text = str(value)
        out.append((str(key), text))
    return out
