"""Light random affine augmentation of MNIST-style batches, vectorised over the batch.

Drawings from the canvas are never exactly MNIST: a little off-centre, tilted, larger or smaller.
Training on randomly shifted / rotated / scaled copies makes a network robust to that at almost
no cost, provided the augmentation is cheap enough to run on every mini-batch. So there is no
Python loop over images: every output pixel of every image is mapped back to its source position
with one small matrix product, and bilinear sampling gathers the four neighbours of all
(n x 784) positions with four ``take`` calls on a zero-padded copy of the batch.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["augment_batch", "random_affine_params", "affine_batch", "parse_augment", "AUGMENT_PARTS"]

AUGMENT_PARTS = ("affine",)


def parse_augment(value) -> tuple[str, ...]:
    """The augmentation parts a config names: True -> ("affine",); False, None, "" -> ()."""
    from scratchnet.errors import ConfigError

    if value is None or value is False or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return ()
    if value is True:
        return ("affine",)
    parts = value.replace(",", "+").split("+") if isinstance(value, str) else list(value)
    out = []
    for part in (str(p).strip().lower() for p in parts):
        if part not in AUGMENT_PARTS:
            raise ConfigError(f"Unknown augmentation {part!r}; choose from {', '.join(AUGMENT_PARTS)}.")
        if part not in out:
            out.append(part)
    return tuple(p for p in AUGMENT_PARTS if p in out)

SIDE = 28
_PADDED = SIDE + 2  # one zero row/column on every side: sampling outside the image reads 0
_CENTRE = 14.0  # MNIST puts the centre of mass at pixel (14, 14); rotate/scale about it
_CHUNK = 512  # images per vectorised step: temporaries stay ~10 MB whatever the batch size

# (3, 784) rows: output row coordinate, column coordinate (both relative to the centre), 1
_ax = np.arange(SIDE, dtype=np.float32)
_rr, _cc = np.meshgrid(_ax, _ax, indexing="ij")
_GRID = np.stack([_rr.ravel() - _CENTRE, _cc.ravel() - _CENTRE, np.ones(SIDE * SIDE, np.float32)])
_GRID.setflags(write=False)
del _ax, _rr, _cc


def random_affine_params(n: int, rng: np.random.Generator, *, max_shift=2.0, max_rotate_deg=12.0,
                         scale_range=(0.9, 1.1)) -> np.ndarray:
    """(n, 4) float32 rows of (shift_rows, shift_cols, angle_radians, scale), uniformly drawn."""
    lo, hi = float(scale_range[0]), float(scale_range[1])
    if not (0 < lo <= hi):
        raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
    if max_shift < 0 or max_rotate_deg < 0:
        raise ValueError("max_shift and max_rotate_deg must be >= 0")
    u = rng.random((n, 4), dtype=np.float32) * np.float32(2) - np.float32(1)  # in [-1, 1)
    p = np.empty((n, 4), np.float32)
    p[:, 0] = u[:, 0] * np.float32(max_shift)
    p[:, 1] = u[:, 1] * np.float32(max_shift)
    p[:, 2] = u[:, 2] * np.float32(np.deg2rad(max_rotate_deg))
    p[:, 3] = np.float32(lo) + (u[:, 3] + np.float32(1)) * np.float32((hi - lo) / 2)
    return p


def affine_batch(X: np.ndarray, params: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Apply per-image (shift_rows, shift_cols, angle, scale) to (n, 784) images, bilinear.

    The output pixel p takes the input at ``centre + R(angle) (p - centre - shift) / scale``
    (rows point down, so a positive angle turns the digit clockwise on screen). Areas that come
    from outside the image are 0. Returns ``out`` (allocated if None), float32 in [0, 1].
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != SIDE * SIDE:
        raise ValueError(f"X must have shape (n, {SIDE * SIDE}), got {X.shape}")
    n = X.shape[0]
    params = np.asarray(params, dtype=np.float32)
    if params.shape != (n, 4):
        raise ValueError(f"params must have shape ({n}, 4), got {params.shape}")
    if out is None:
        out = np.empty((n, SIDE * SIDE), np.float32)
    elif out.shape != (n, SIDE * SIDE) or out.dtype != np.float32:
        raise ValueError(f"out must be a float32 array of shape ({n}, {SIDE * SIDE})")
    for i in range(0, n, _CHUNK):  # bounded temporaries even for a full-batch call
        _affine_chunk(X[i : i + _CHUNK], params[i : i + _CHUNK], out[i : i + _CHUNK])
    return out


_local = threading.local()


class _Workspace:
    """Per-thread buffers for one chunk size: the training loop calls us thousands of times with
    the same batch size, and re-allocating MBs of temporaries each time costs page faults
    (about 35 KB per image: 4.5 MB for a batch of 128, 18 MB at most for a 512 chunk)."""

    def __init__(self, n: int):
        self.n = n
        # zero-padded images; only the interior is ever written, so the border stays 0
        self.padded = np.zeros((n, _PADDED, _PADDED), np.float32)
        self.M = np.empty((2 * n, 3), np.float32)
        self.src = np.empty((2 * n, SIDE * SIDE), np.float32)
        self.base = np.empty((2 * n, SIDE * SIDE), np.float32)
        self.flat = np.empty((n, SIDE * SIDE), np.intp)
        self.taps = np.empty((4, n, SIDE * SIDE), np.float32)
        self.offsets = (np.arange(n, dtype=np.float32) * np.float32(_PADDED * _PADDED))[:, None]


def _workspace(n: int) -> _Workspace:
    ws = getattr(_local, "ws", None)
    if ws is None or ws.n != n:
        ws = _local.ws = _Workspace(n)
    return ws


def _affine_chunk(X, params, out):
    n = X.shape[0]
    ws = _workspace(n)
    ws.padded[:, 1:-1, 1:-1] = X.reshape(n, SIDE, SIDE)

    # inverse map as one (2n, 3) @ (3, 784) product: rows of source row / column coordinates
    ty, tx, ang, s = params.T
    cos = np.cos(ang) / s
    sin = np.sin(ang) / s
    M = ws.M
    M[:n, 0], M[:n, 1] = cos, -sin  # source row = cos*dr - sin*dc + offset
    M[n:, 0], M[n:, 1] = sin, cos  # source col = sin*dr + cos*dc + offset
    M[:n, 2] = _CENTRE + 1 - (cos * ty - sin * tx)  # + 1: padded coordinates
    M[n:, 2] = _CENTRE + 1 - (sin * ty + cos * tx)
    src = np.matmul(M, _GRID, out=ws.src)  # (2n, 784)
    # far outside -> the zero border; the top end keeps the (r+1, c+1) tap inside the image
    np.clip(src, 0.0, np.float32(_PADDED - 2), out=src)
    base = np.floor(src, out=ws.base)
    src -= base  # now the fractional parts
    fy, fx = src[:n], src[n:]
    # flat index of the top-left tap, in float32 (exact: < 2**24), then one conversion
    flat = base[:n]
    flat *= np.float32(_PADDED)
    flat += base[n:]
    flat += ws.offsets
    ws.flat[...] = flat

    # the four taps: the same indices into the buffer shifted by 0, 1, W, W+1 elements
    # (mode="clip" with out= is numpy's unbuffered path; every index is in range anyway)
    buf = ws.padded.reshape(-1)
    a, b, c, d = ws.taps
    for tap, shift in ((a, 0), (b, 1), (c, _PADDED), (d, _PADDED + 1)):
        np.take(buf[shift:], ws.flat, out=tap, mode="clip")
    b -= a
    b *= fx
    a += b  # top row, interpolated along x
    d -= c
    d *= fx
    c += d  # bottom row
    c -= a
    c *= fy
    np.add(a, c, out=out)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def augment_batch(X: np.ndarray, rng: np.random.Generator, *, y=None, parts=("affine",), max_shift: float = 2.0,
                  max_rotate_deg: float = 12, scale_range=(0.9, 1.1),
                  out: np.ndarray | None = None) -> np.ndarray:
    """Randomly shift (px), rotate (degrees) and scale each (n, 784) image; float32 in [0, 1].

    Called once per mini-batch inside the training loop; pass ``out`` (an (n, 784) float32
    buffer, which may be ``X`` itself) to reuse memory. Deterministic for a given generator
    state.
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != SIDE * SIDE:
        raise ValueError(f"X must have shape (n, {SIDE * SIDE}), got {X.shape}")
    params = random_affine_params(X.shape[0], rng, max_shift=max_shift,
                                  max_rotate_deg=max_rotate_deg, scale_range=scale_range)
    return affine_batch(X, params, out=out)
