"""Random variations of MNIST-style training batches, vectorised over the batch.

Drawings from the canvas are never exactly MNIST: a little off-centre, tilted, larger or smaller,
wobblier, with thicker or thinner strokes, and some writers draw a 1 with a flag (and a foot) that
MNIST hardly ever shows, so a network trained on MNIST alone reads it as 7. Training on randomly
varied copies makes a network robust to that at almost no cost, provided the augmentation is
cheap enough to run on every mini-batch. The parts (``AUGMENT_PARTS``, chosen with ``parts=``):

* ``"affine"``: random shift, rotation and scale;
* ``"elastic"``: a smooth random displacement field per image (Simard, Steinkraus & Platt 2003:
  uniform noise in [-1, 1] per pixel, smoothed by a Gaussian of ``sigma`` px, times ``alpha``);
* ``"thickness"``: strokes grown or shrunk by up to one pixel (grey dilation / erosion, blended);
* ``"flag"``: on a fraction of the 1s (needs the labels ``y``), a short stroke from the top of the
  digit down to the left, sometimes with a foot at the bottom: the continental-European 1.

There is no Python loop over images. The flag and the thickness change are drawn into a zero-padded
copy of the batch; then every output pixel of every image is mapped back to its source position
(affine map + displacement) with one small matrix product, and one bilinear sampling pass gathers
the four neighbours of all (n x 784) positions with four ``take`` calls.
"""

from __future__ import annotations

import functools
import re
import threading

import numpy as np

from scratchnet.errors import ConfigError

__all__ = [
    "AUGMENT_PARTS",
    "parse_augment",
    "augment_batch",
    "random_affine_params",
    "affine_batch",
    "gaussian_matrix",
    "random_displacement",
    "random_thickness",
    "change_thickness",
    "random_flag_params",
    "draw_flags",
]

AUGMENT_PARTS = ("affine", "elastic", "thickness", "flag")

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


def affine_batch(X: np.ndarray, params: np.ndarray, out: np.ndarray | None = None,
                 displacement: np.ndarray | None = None) -> np.ndarray:
    """Apply per-image (shift_rows, shift_cols, angle, scale) to (n, 784) images, bilinear.

    The output pixel p takes the input at ``centre + R(angle) (p - centre - shift) / scale``
    (rows point down, so a positive angle turns the digit clockwise on screen), plus
    ``displacement[:, i, row, col]`` (row and column offsets in px, shape (2, n, 28, 28), as made
    by :func:`random_displacement`) when given: the elastic distortion rides on the same single
    sampling pass. Areas that come from outside the image are 0. Returns ``out`` (allocated if
    None), float32 in [0, 1].
    """
    X = _check_images(X)
    n = X.shape[0]
    params = np.asarray(params, dtype=np.float32)
    if params.shape != (n, 4):
        raise ValueError(f"params must have shape ({n}, 4), got {params.shape}")
    if displacement is not None and np.shape(displacement) != (2, n, SIDE, SIDE):
        raise ValueError(f"displacement must have shape (2, {n}, {SIDE}, {SIDE}), "
                         f"got {np.shape(displacement)}")
    out = _check_out(out, n)
    for i in range(0, n, _CHUNK):  # bounded temporaries even for a full-batch call
        sl = slice(i, i + _CHUNK)
        ws = _load(X[sl])
        _sample(ws, params[sl], out[sl], None if displacement is None else displacement[:, sl])
    return out


def _check_images(X) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != SIDE * SIDE:
        raise ValueError(f"X must have shape (n, {SIDE * SIDE}), got {X.shape}")
    return X


def _check_out(out, n: int) -> np.ndarray:
    if out is None:
        return np.empty((n, SIDE * SIDE), np.float32)
    if out.shape != (n, SIDE * SIDE) or out.dtype != np.float32:
        raise ValueError(f"out must be a float32 array of shape ({n}, {SIDE * SIDE})")
    return out


_local = threading.local()


class _Workspace:
    """Per-thread buffers for one chunk size: the training loop calls us thousands of times with
    the same batch size, and re-allocating MBs of temporaries each time costs page faults
    (about 35 KB per image: 4.5 MB for a batch of 128, 18 MB at most for a 512 chunk; the
    elastic field adds ~8 KB per image)."""

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
        self._extra: dict[str, np.ndarray] = {}

    def buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 scratch array kept between calls (made again if the shape changes)."""
        buf = self._extra.get(name)
        if buf is None or buf.shape != shape:
            buf = self._extra[name] = np.empty(shape, np.float32)
        return buf


def _workspace(n: int) -> _Workspace:
    ws = getattr(_local, "ws", None)
    if ws is None or ws.n != n:
        ws = _local.ws = _Workspace(n)
    return ws


def _load(X) -> _Workspace:
    """This thread's workspace for len(X) images, with X copied into its zero-padded buffer."""
    n = X.shape[0]
    ws = _workspace(n)
    ws.padded[:, 1:-1, 1:-1] = X.reshape(n, SIDE, SIDE)
    return ws


def _affine_chunk(X, params, out, displacement=None):
    return _sample(_load(X), params, out, displacement)


def _sample(ws, params, out, displacement=None):
    """Bilinear sampling of ``ws.padded`` at the affine map (+ displacement) of every pixel."""
    n = ws.n
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
    if displacement is not None:  # rows [:n] are row coordinates, [n:] column coordinates
        src4 = src.reshape(2, n, SIDE, SIDE)
        np.add(src4, displacement, out=src4)
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


# --------------------------------------------------------------------------- elastic distortion


@functools.lru_cache(maxsize=16)
def gaussian_matrix(sigma: float, size: int = SIDE) -> np.ndarray:
    """(size, size) float32 matrix G such that ``G @ v`` is ``v`` smoothed by a Gaussian of
    ``sigma`` px, zero outside: what scipy.ndimage.gaussian_filter1d(v, sigma, mode="constant")
    computes (kernel truncated at 4 sigma and normalised to sum 1). ``G @ U @ G.T`` smooths a
    (size, size) image along both axes. Read-only (cached)."""
    sigma = float(sigma)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    radius = int(4.0 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    d = np.arange(size)[:, None] - np.arange(size)[None, :]
    G = np.where(np.abs(d) <= radius, k[np.clip(d + radius, 0, 2 * radius)], 0.0).astype(np.float32)
    G.setflags(write=False)
    return G


# the fast fields keep this share of Simard's field variance (8 of 28 directions at sigma 4)
_FIELD_VARIANCE_KEPT = 1 - 1e-4


@functools.lru_cache(maxsize=16)
def _field_basis(sigma: float) -> np.ndarray:
    """(28, r) float32 B with ``B W B.T`` (W: r x r, iid normal of variance 1/3) distributed like
    Simard's ``G U G.T`` (U: 28 x 28, iid uniform in [-1, 1]) to within 1e-4 of its variance.

    G is symmetric, G = Q L Q.T, so G U G.T = Q L (Q.T U Q) L Q.T. The entries of Q.T U Q are
    uncorrelated with variance 1/3 (Q is orthogonal), each a sum of 784 uniform values, so close
    to normal; and L falls off fast (a Gaussian blurs away fine detail), so only the r largest
    eigenvalues matter: r x r normal values per field instead of 784 uniform ones.
    """
    lam, Q = np.linalg.eigh(gaussian_matrix(sigma).astype(np.float64))
    order = np.argsort(-np.abs(lam))
    lam, Q = lam[order], Q[:, order]
    kept = np.cumsum(lam**2) / np.sum(lam**2)  # field variance kept with r directions: kept[r-1]**2
    r = int(np.searchsorted(kept**2, _FIELD_VARIANCE_KEPT) + 1)
    B = (Q[:, :r] * lam[:r]).astype(np.float32)
    B.setflags(write=False)
    return B


def random_displacement(n: int, rng: np.random.Generator, *, alpha: float = 34.0,
                        sigma: float = 4.0, exact: bool = False) -> np.ndarray:
    """(2, n, 28, 28) float32: per image a random smooth field of (row, column) offsets in px.

    Simard, Steinkraus & Platt (2003): uniform noise in [-1, 1] per pixel and component, smoothed
    by a Gaussian of ``sigma`` px, times ``alpha``; at sigma 4 and alpha 34 a pixel near the
    centre moves by ~1.4 px (standard deviation), its neighbours almost alike. ``exact=True``
    computes exactly that, G @ U @ G.T for all fields with two matrix products; the default draws
    the same distribution (same covariance, to 1e-4 of the variance; see ``_field_basis``) from
    12x fewer random numbers, ~2.5x faster.
    Pass the result to :func:`affine_batch` as ``displacement``.
    """
    return _displacement(n, rng, alpha, sigma, exact, None)


def _displacement(n, rng, alpha, sigma, exact, ws):
    """The fields of :func:`random_displacement`; buffers from ``ws`` when given.

    All 2n fields are smoothed at once, laid out (row, field, column): the first product smooths
    every column of every field (G @ U, U as a (28, 2n * 28) matrix), the second every row
    ((28 * 2n, 28) @ G.T). The noise is iid, so its layout is ours to choose.
    """
    if not (alpha >= 0 and sigma > 0):
        raise ValueError(f"alpha must be >= 0 and sigma > 0, got alpha={alpha}, sigma={sigma}")
    buf = ws.buffer if ws is not None else (lambda name, shape: np.empty(shape, np.float32))
    k = 2 * n
    if exact:
        G = gaussian_matrix(sigma)
        U = rng.random((SIDE, k * SIDE), dtype=np.float32, out=buf("noise", (SIDE, k * SIDE)))
        U *= np.float32(2 * alpha)  # alpha (2u - 1): scaling before smoothing is the same
        U -= np.float32(alpha)
        A = np.matmul(G, U, out=buf("half", (SIDE, k * SIDE)))
        D = np.matmul(A.reshape(SIDE * k, SIDE), G.T, out=buf("field", (SIDE * k, SIDE)))
    else:
        B = _field_basis(float(sigma))
        r = B.shape[1]
        W = rng.standard_normal((r, k * r), dtype=np.float32, out=buf("noise", (r, k * r)))
        W *= np.float32(alpha / np.sqrt(3.0))  # variance of uniform [-1, 1] noise: 1/3
        A = np.matmul(B, W, out=buf("half", (SIDE, k * r)))
        D = np.matmul(A.reshape(SIDE * k, r), B.T, out=buf("field", (SIDE * k, SIDE)))
    return D.reshape(SIDE, 2, n, SIDE).transpose(1, 2, 0, 3)


# --------------------------------------------------------------------------- stroke thickness


def random_thickness(n: int, rng: np.random.Generator, *, thickness_range=(-1.0, 1.0)) -> np.ndarray:
    """(n,) float32 amounts, uniform in ``thickness_range`` (within [-1, 1]); see change_thickness."""
    lo, hi = float(thickness_range[0]), float(thickness_range[1])
    if not -1 <= lo <= hi <= 1:
        raise ValueError(f"thickness_range must satisfy -1 <= low <= high <= 1, got {thickness_range}")
    t = rng.random(n, dtype=np.float32)
    t *= np.float32(hi - lo)
    t += np.float32(lo)
    return t


def change_thickness(X: np.ndarray, amounts: np.ndarray, *, min_mass: float = 0.5,
                     out: np.ndarray | None = None) -> np.ndarray:
    """Thicker (amount > 0) or thinner (amount < 0) strokes for each (n, 784) image.

    Amount 1 is a grey dilation by one pixel in the four directions (3x3 cross: max of the pixel
    and its neighbours above, below, left and right), -1 the same erosion (min), and amounts in
    between blend the image with it (a sub-pixel change). Erosion keeps at least ``min_mass`` of
    each image's ink (a thin digit would otherwise vanish), then scales the image back to its
    brightest pixel's value, so strokes get thinner, not fainter.
    """
    X = _check_images(X)
    n = X.shape[0]
    amounts = np.asarray(amounts, np.float32)
    if amounts.shape != (n,):
        raise ValueError(f"amounts must have shape ({n},), got {amounts.shape}")
    out = _check_out(out, n)
    for i in range(0, n, _CHUNK):
        sl = slice(i, i + _CHUNK)
        ws = _load(X[sl])
        _thicken(ws.padded, amounts[sl], min_mass)
        out[sl] = ws.padded[:, 1:-1, 1:-1].reshape(-1, SIDE * SIDE)
    return out


def _thicken(P, amounts, min_mass):
    """change_thickness on zero-padded (n, 30, 30) images, in place; only changed images work."""
    for grow in (True, False):
        idx = np.flatnonzero(amounts > 0 if grow else amounts < 0)
        if not len(idx):
            continue
        sub = P[idx]  # (m, 30, 30) copy
        c = sub[:, 1:-1, 1:-1]
        f = np.maximum if grow else np.minimum
        moved = f(c, sub[:, :-2, 1:-1])
        for nb in (sub[:, 2:, 1:-1], sub[:, 1:-1, :-2], sub[:, 1:-1, 2:]):
            f(moved, nb, out=moved)
        w = np.abs(amounts[idx])
        if not grow:  # blend at most so far that min_mass of the ink stays
            mass = c.sum((1, 2))
            lost = mass - moved.sum((1, 2))
            cap = np.float32(1 - min_mass) * mass / np.maximum(lost, np.float32(1e-6))
            w = np.minimum(w, cap)
        moved -= c
        moved *= w[:, None, None]
        moved += c
        if not grow:  # thinner, not fainter: the brightest pixel keeps its value
            peak = c.max((1, 2))
            now = moved.max((1, 2))
            moved *= (peak / np.maximum(now, np.float32(1e-6)))[:, None, None]
        P[idx, 1:-1, 1:-1] = moved


# --------------------------------------------------------------------------- flag and foot on 1s


def random_flag_params(n: int, rng: np.random.Generator, *, flag_fraction: float = 0.5,
                       foot_fraction: float = 0.25, flag_length=(0.2, 0.4),
                       flag_angle_deg=(20.0, 60.0), width=(1.5, 2.5),
                       foot_length=(0.3, 0.5)) -> np.ndarray:
    """(n, 6) float32 rows: (flag 1/0, flag length / digit height, flag angle below the horizontal
    in radians, stroke width px, foot 1/0, foot length / digit height). Drawn for every image
    whatever its label, so the generator advances the same way for any labels."""
    if not (0 <= flag_fraction <= 1 and 0 <= foot_fraction <= 1):
        raise ValueError("flag_fraction and foot_fraction must be in [0, 1]")
    u = rng.random((n, 6), dtype=np.float32)
    p = np.empty((n, 6), np.float32)

    def between(col, lo_hi):
        lo, hi = float(lo_hi[0]), float(lo_hi[1])
        if not 0 <= lo <= hi:
            raise ValueError(f"ranges must satisfy 0 <= low <= high, got {lo_hi}")
        return np.float32(lo) + u[:, col] * np.float32(hi - lo)

    p[:, 0] = u[:, 0] < flag_fraction
    p[:, 1] = between(1, flag_length)
    p[:, 2] = np.deg2rad(between(2, flag_angle_deg))
    p[:, 3] = between(3, width)
    p[:, 4] = u[:, 4] < foot_fraction
    p[:, 5] = between(5, foot_length)
    return p


def draw_flags(X: np.ndarray, y: np.ndarray, params: np.ndarray, *, label: int = 1,
               out: np.ndarray | None = None) -> np.ndarray:
    """Give the images whose label is ``label`` and whose params say so a flag (and a foot).

    The flag starts at the top end of the stroke (the topmost ink row, at its ink's column centre)
    and goes down to the left, ``length`` x the digit's height long at ``angle`` below the
    horizontal; the foot is a horizontal stroke centred on the bottom end. Both are anti-aliased
    strokes of ``width`` px, as bright as the digit's brightest pixel, combined with the digit by
    maximum. Other images are copied unchanged.
    """
    X = _check_images(X)
    n = X.shape[0]
    y = np.asarray(y)
    params = np.asarray(params, np.float32)
    if y.shape != (n,) or params.shape != (n, 6):
        raise ValueError(f"y must have shape ({n},) and params ({n}, 6), got {y.shape}, {params.shape}")
    out = _check_out(out, n)
    for i in range(0, n, _CHUNK):
        sl = slice(i, i + _CHUNK)
        ws = _load(X[sl])
        _draw_flags(ws.padded, y[sl], params[sl], label)
        out[sl] = ws.padded[:, 1:-1, 1:-1].reshape(-1, SIDE * SIDE)
    return out


_ROWS = np.arange(SIDE, dtype=np.float32)[None, :, None]  # pixel centres, broadcast over (m, 28, 28)
_COLS = np.arange(SIDE, dtype=np.float32)[None, None, :]


def _segment_ink(r0, c0, r1, c1, width):
    """(m, 28, 28) anti-aliased strokes from (r0, c0) to (r1, c1), one per row of the (m,) inputs:
    1 within width/2 - 0.5 px of the segment, falling linearly to 0 one pixel further out."""
    e = lambda v: np.asarray(v, np.float32)[:, None, None]  # noqa: E731
    r0, c0, dr, dc = e(r0), e(c0), e(r1) - e(r0), e(c1) - e(c0)
    pr = _ROWS - r0  # (m, 28, 1)
    pc = _COLS - c0  # (m, 1, 28)
    inv = np.float32(1) / np.maximum(dr * dr + dc * dc, np.float32(1e-6))  # 1 / length^2
    t = pr * (dr * inv) + pc * (dc * inv)  # (m, 28, 28)
    np.clip(t, 0, 1, out=t)  # nearest point of the segment, as a fraction of its length
    d = np.hypot(pr - t * dr, pc - t * dc)
    np.subtract(e(width) / 2 + np.float32(0.5), d, out=d)
    return np.clip(d, 0, 1, out=d)


def _draw_flags(P, y, params, label):
    """draw_flags on zero-padded (n, 30, 30) images, in place; only the chosen images work."""
    idx = np.flatnonzero((y == label) & (params[:, 0] > 0))
    if not len(idx):
        return
    img = P[idx, 1:-1, 1:-1]  # (m, 28, 28) copy
    peak = img.max((1, 2))
    rows = (img > 0.5 * peak[:, None, None]).any(2)  # rows with ink
    ok = peak > 0  # blank images get nothing
    idx, img, rows, peak, p = idx[ok], img[ok], rows[ok], peak[ok], params[idx[ok]]
    if not len(idx):
        return
    m = len(idx)
    at = np.arange(m)
    top = rows.argmax(1)
    bottom = SIDE - 1 - rows[:, ::-1].argmax(1)
    height = (bottom - top + 1).astype(np.float32)
    cols = np.arange(SIDE, dtype=np.float32)

    def centre(r, r2):  # ink-weighted column centre of rows r and r2 (row r has ink)
        w = img[at, r] + img[at, r2]
        return (w @ cols) / w.sum(1)

    # the flags, then the feet, as one batch of segments; a stroke's end sits about a pixel
    # inside its outermost ink row
    feet = np.flatnonzero(p[:, 4] > 0)
    r0 = top + np.float32(1)
    c0 = centre(top, np.minimum(top + 1, SIDE - 1))
    length = p[:, 1] * height
    rb = bottom[feet] - np.float32(1)
    cb = centre(bottom, np.maximum(bottom - 1, 0))[feet]
    half = 0.5 * p[feet, 5] * height[feet]
    ink = _segment_ink(np.concatenate([r0, rb]), np.concatenate([c0, cb - half]),
                       np.concatenate([r0 + length * np.sin(p[:, 2]), rb]),
                       np.concatenate([c0 - length * np.cos(p[:, 2]), cb + half]),
                       np.concatenate([p[:, 3], p[feet, 3]]))
    ink, foot_ink = ink[:m], ink[m:]
    ink[feet] = np.maximum(ink[feet], foot_ink)
    ink *= peak[:, None, None]
    np.maximum(img, ink, out=img)
    P[idx, 1:-1, 1:-1] = img


# --------------------------------------------------------------------------- all parts together


def parse_augment(value) -> tuple[str, ...]:
    """Which augmentation parts a setting names, in ``AUGMENT_PARTS`` order.

    True -> ("affine",) (what ``augment=True`` has always meant); False, None, "" or "none" -> ();
    a string of parts joined by "+" or "," ("affine+elastic", "all"), or a list of part names.
    Anything else raises ConfigError naming the valid parts.
    """
    if isinstance(value, (bool, np.bool_)):
        return ("affine",) if value else ()
    if value is None:
        return ()
    if isinstance(value, str):
        names = [p for p in re.split(r"[+,\s]+", value.strip().lower()) if p and p != "none"]
    elif isinstance(value, (list, tuple, set, frozenset)):
        names = [str(p).strip().lower() for p in value]
    else:
        raise ConfigError(f"Augmentation must be on/off or parts like 'affine+elastic', not {value!r}.")
    for name in names:
        if name not in AUGMENT_PARTS and name != "all":
            raise ConfigError(
                f"Unknown augmentation part {name!r}: use {', '.join(AUGMENT_PARTS)} "
                "(joined with '+', e.g. 'affine+elastic'), 'all' or 'none'."
            )
    return tuple(p for p in AUGMENT_PARTS if p in names or "all" in names)


def augment_batch(X: np.ndarray, rng: np.random.Generator, *, y: np.ndarray | None = None,
                  parts=("affine",), out: np.ndarray | None = None, max_shift: float = 2.0,
                  max_rotate_deg: float = 12, scale_range=(0.9, 1.1), alpha: float = 34.0,
                  sigma: float = 4.0, thickness_range=(-1.0, 1.0), min_mass: float = 0.5,
                  flag_fraction: float = 0.5, foot_fraction: float = 0.25,
                  flag_label: int = 1) -> np.ndarray:
    """Randomly vary each (n, 784) image; float32 in [0, 1].

    ``parts`` (anything :func:`parse_augment` reads; default affine only) picks what varies:
    ``affine`` shifts (px), rotates (degrees) and scales; ``elastic`` adds a smooth random
    displacement (``alpha``, ``sigma``; :func:`random_displacement`); ``thickness`` grows or
    shrinks strokes (:func:`change_thickness`); ``flag`` draws a flag (and on ``foot_fraction`` of
    them a foot) on ``flag_fraction`` of the images labelled ``flag_label`` (:func:`draw_flags`),
    and so needs ``y``: without it, a ValueError. They apply in the order flag, thickness, then
    affine + elastic in one sampling pass.

    Called once per mini-batch inside the training loop; pass ``out`` (an (n, 784) float32
    buffer, which may be ``X`` itself) to reuse memory. Deterministic for a given generator
    state; with the default parts it draws exactly what it always did.
    """
    X = _check_images(X)
    n = X.shape[0]
    parts = parse_augment(parts)
    if "flag" in parts:
        if y is None:
            raise ValueError("The 'flag' augmentation draws flags on 1s only, so it needs the labels: pass y.")
        y = np.asarray(y)
        if y.shape != (n,):
            raise ValueError(f"y must have shape ({n},), got {y.shape}")
    out = _check_out(out, n)
    # every random number except the elastic fields is drawn up front, in a fixed order
    if "affine" in parts:
        params = random_affine_params(n, rng, max_shift=max_shift, max_rotate_deg=max_rotate_deg,
                                      scale_range=scale_range)
    else:
        params = np.zeros((n, 4), np.float32)
        params[:, 3] = 1  # the identity
    amounts = random_thickness(n, rng, thickness_range=thickness_range) if "thickness" in parts else None
    flags = (random_flag_params(n, rng, flag_fraction=flag_fraction, foot_fraction=foot_fraction)
             if "flag" in parts else None)
    warp = "affine" in parts or "elastic" in parts
    for i in range(0, n, _CHUNK):
        sl = slice(i, i + _CHUNK)
        ws = _load(X[sl])
        if flags is not None:
            _draw_flags(ws.padded, y[sl], flags[sl], flag_label)
        if amounts is not None:
            _thicken(ws.padded, amounts[sl], min_mass)
        if warp:
            field = _displacement(ws.n, rng, alpha, sigma, False, ws) if "elastic" in parts else None
            _sample(ws, params[sl], out[sl], field)
        else:
            out[sl] = ws.padded[:, 1:-1, 1:-1].reshape(-1, SIDE * SIDE)
    return out
