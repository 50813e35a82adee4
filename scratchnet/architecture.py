"""The architecture grammar shared by the CLI, the Train page and the model files.

A SPEC is the hidden part of a network, comma-separated:

    conv<C>-<K>   a KxK convolution with C filters ("same" padding, stride 1)
    maxpool<K>    the largest value of each KxK block
    dense<N>      a fully connected layer of N units

The activation follows every conv and dense layer (after the pooling, when a pool follows a
conv: ReLU, sigmoid and tanh all rise, so they commute with max and the result is the same); a
flatten is implied between the last conv/pool and the first dense layer, and the final dense
layer with one unit per class (softmax) is implied too. ``256,128`` (the ``--hidden`` shorthand) means ``dense256,dense128``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

from scratchnet import layers as L
from scratchnet.errors import ConfigError

GRAMMAR = ("conv<C>-<K> (C filters, KxK kernel), maxpool<K> or dense<N>, separated by commas, "
           "e.g. conv16-5,maxpool2,conv32-5,maxpool2,dense128")
_TOKEN = re.compile(r"conv(\d+)-(\d+)|maxpool(\d+)|dense(\d+)|(\d+)")

MAX_UNITS = 4096
MAX_FILTERS = 256
KERNELS = (1, 3, 5, 7, 9)
MAX_POOL = 7
MAX_WEIGHT_LAYERS = 8  # conv + dense layers, as many hidden layers as before convolutions existed
MAX_TOKENS = 12
# Same bound as scratchnet.store.MAX_PARAMS: a bigger network could be trained (for hours) but its
# model file would then be refused on loading.
MAX_PARAMS = 25_000_000
# Buffers of one training batch (every layer's outputs and gradients): beyond this a batch would
# push a shared machine into swap. conv16-5,maxpool2,conv32-5,maxpool2,dense128 needs ~0.7 MB a row.
MAX_BATCH_BYTES = 1536 * 2**20


class SpecError(ConfigError):
    """An architecture SPEC that does not parse; the message names the token and the grammar."""


@dataclass(frozen=True)
class Measure:
    n_params: int
    bytes_per_row: int  # training buffers per row of a batch
    macs_per_row: int  # multiply-adds of one row's forward pass


def parse(spec) -> tuple[str, ...]:
    """Canonical tokens of a SPEC (a string, or hidden sizes like ``(256, 128)``)."""
    if spec is None:
        raise SpecError(f"Give an architecture: {GRAMMAR}.")
    if isinstance(spec, str):
        raw = [t.strip().lower() for t in re.split(r"[,\s]+", spec.strip()) if t.strip()]
    elif isinstance(spec, Sequence):
        raw = [f"dense{s}" if isinstance(s, int) else str(s).strip().lower() for s in spec]
    else:
        raise SpecError(f"An architecture must be text like {GRAMMAR.split('e.g. ')[1]}, not {type(spec).__name__}.")
    if not raw:
        raise SpecError(f"The architecture is empty; give at least one layer: {GRAMMAR}.")
    tokens: list[str] = []
    seen_dense = False
    for i, tok in enumerate(raw, 1):
        m = _TOKEN.fullmatch(tok)
        if m is None:
            shown = tok if len(tok) <= 24 else tok[:20] + "..."
            raise SpecError(f"Layer {i} of the architecture, {shown!r}, is not understood; use {GRAMMAR}.")
        if any(g is not None and len(g.lstrip("0")) > 6 for g in m.groups()):
            # also keeps int() below Python's limit on digits (a ValueError, not ours)
            raise SpecError(f"Layer {i} of the architecture, {tok[:20]!r}..., has a number far too large.")
        conv_c, conv_k, pool_k, dense_n, bare_n = (None if g is None else g.lstrip("0") or "0" for g in m.groups())
        if conv_c is not None:
            c, k = int(conv_c), int(conv_k)
            if not 1 <= c <= MAX_FILTERS:
                raise SpecError(f"Layer {i}, {tok!r}: a convolution has 1 to {MAX_FILTERS} filters.")
            if k not in KERNELS:
                raise SpecError(f"Layer {i}, {tok!r}: the kernel size must be odd, one of "
                                f"{', '.join(map(str, KERNELS))}.")
            if seen_dense:
                raise SpecError(f"Layer {i}, {tok!r}, comes after a dense layer; convolutions and "
                                "pooling read images, so they go before the dense layers.")
            tokens.append(f"conv{c}-{k}")
        elif pool_k is not None:
            k = int(pool_k)
            if not 2 <= k <= MAX_POOL:
                raise SpecError(f"Layer {i}, {tok!r}: pooling blocks are 2 to {MAX_POOL} pixels wide.")
            if seen_dense:
                raise SpecError(f"Layer {i}, {tok!r}, comes after a dense layer; convolutions and "
                                "pooling read images, so they go before the dense layers.")
            tokens.append(f"maxpool{k}")
        else:
            n = int(dense_n if dense_n is not None else bare_n)
            if not 1 <= n <= MAX_UNITS:
                raise SpecError(f"Layer {i}, {tok!r}: a dense layer has 1 to {MAX_UNITS} units.")
            seen_dense = True
            tokens.append(f"dense{n}")
    if len(tokens) > MAX_TOKENS:
        raise SpecError(f"The architecture has {len(tokens)} layers; at most {MAX_TOKENS} are supported.")
    weighted = sum(not t.startswith("maxpool") for t in tokens)
    if weighted > MAX_WEIGHT_LAYERS:
        raise SpecError(f"The architecture has {weighted} conv and dense layers; at most "
                        f"{MAX_WEIGHT_LAYERS} are supported.")
    return tuple(tokens)


def canonical(spec) -> str:
    """The SPEC as stored in configs and model files: ``conv16-5,maxpool2,dense128``."""
    return ",".join(parse(spec))


def hidden_units(spec) -> tuple[int, ...] | None:
    """(256, 128) for an all-dense SPEC; None when it has convolutions or pooling."""
    tokens = parse(spec)
    if all(t.startswith("dense") for t in tokens):
        return tuple(int(t[5:]) for t in tokens)
    return None


def is_convolutional(spec) -> bool:
    return hidden_units(spec) is None


def build(spec, activation: str = "relu", n_classes: int = 10) -> tuple[list[L.Layer], tuple[int, ...]]:
    """The layers of a SPEC (untrained, without parameters) and the input shape they read."""
    tokens = parse(spec)
    L.activation(activation)
    layers: list[L.Layer] = []
    images = not tokens[0].startswith("dense")
    flat = not images
    for i, tok in enumerate(tokens):
        if tok.startswith("conv"):
            c, k = (int(v) for v in tok[4:].split("-"))
            layers.append(L.Conv2D(c, k))
            if not (i + 1 < len(tokens) and tokens[i + 1].startswith("maxpool")):
                layers.append(L.activation(activation))
        elif tok.startswith("maxpool"):
            layers.append(L.MaxPool2D(int(tok[7:])))
            if i and tokens[i - 1].startswith("conv"):
                # conv, pool, then the activation: max and a rising activation commute
                # (relu(max(z)) = max(relu(z))), so this is the same network, and the
                # activation touches a quarter of the numbers
                layers.append(L.activation(activation))
        else:
            if not flat:
                layers.append(L.Flatten())
                flat = True
            layers += [L.Dense(int(tok[5:])), L.activation(activation)]
    if not flat:
        layers.append(L.Flatten())
    layers.append(L.Dense(n_classes))
    return layers, ((28, 28, 1) if images else (784,))


def measure(spec, activation: str = "relu") -> Measure:
    """Parameters, training buffer bytes and forward multiply-adds per row, without allocating."""
    from scratchnet.network import Network

    layers, input_shape = build(spec, activation)
    try:
        skeleton = Network.skeleton(layers, input_shape, activation)
    except ConfigError as err:  # e.g. pooling that leaves nothing to pool
        raise SpecError(f"The architecture {canonical(spec)} does not fit 28x28 images: {err}") from None
    n_params = sum(math.prod(s) for l in skeleton.param_layers for s in l.param_shapes())
    return Measure(n_params, skeleton.bytes_per_row(), skeleton.macs_per_row())
