"""Any drawing or photo -> the 28x28 digit an MNIST-trained network expects.

MNIST digits are white ink on black, their ink bounding box scaled (keeping the aspect ratio,
anti-aliased) so the longer side is 20 px, then placed in a 28x28 field with the centre of mass at
pixel (14, 14). A network trained on them only reads drawings well when they are put through the
same steps, so this module reproduces them for any input (canvas RGBA, scans, phone photos) and
also evens out what MNIST never shows: black-on-white ink, transparency, grey paper, felt-tip or
hairline strokes, tiny or off-centre drawings.

Pipeline (each step is a small public function, tested on its own):
``gray_and_alpha`` -> ``flatten_alpha`` -> ``ink_levels`` / ``noise_floor`` / ``ink_map``
(white ink on black, peak at 255, paper at 0 - plus its measured noise, ``paper_noise``, so
clean inputs lose nothing; ``even_background`` for shadowed photos) -> ``ink_bbox`` (ignores
far-away specks) -> ``check_ink`` (raises ``EmptyImageError``) -> ``shrink_to_box`` (longer side
20 px, anti-aliased) -> only if ``stroke_width`` is clearly outside MNIST's range
(``MNIST_STROKE_KEEP``): ``fit_box`` (80 px, 4x oversampled) -> ``normalize_stroke`` (grey
dilation/erosion) -> ``shrink_to_box`` -> ``place_by_mass`` (28x28, centre of mass at (14, 14)).

Raw MNIST digits therefore pass through almost untouched (test accuracy through the pipeline is
within 0.1 point of the raw images), which is what makes the other adjustments trustworthy.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from statistics import NormalDist
from struct import error as struct_error
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from scratchnet.errors import DataError, EmptyImageError

__all__ = [
    "MAX_PIXELS",
    "MNIST_STROKE_WIDTH",
    "MNIST_STROKE_KEEP",
    "MNIST_STROKE_TARGET",
    "PAPER_NOISE_SIGMAS",
    "MAX_NOISE_FLOOR",
    "LOSSY_NOISE_FLOOR",
    "LOSSY_FORMATS",
    "load_image",
    "to_mnist",
    "canvas_to_mnist",
    "preprocess_steps",
    "gray_and_alpha",
    "flatten_alpha",
    "ink_levels",
    "ink_map",
    "paper_noise",
    "noise_floor",
    "border_is_uneven",
    "even_background",
    "ink_bbox",
    "check_ink",
    "fit_box",
    "stroke_width",
    "normalize_stroke",
    "shrink_to_box",
    "center_of_mass",
    "place_by_mass",
]

MAX_PIXELS = 40_000_000
"""Images above this many pixels are refused before decoding (a 40 MP photo is plenty)."""

MNIST_STROKE_WIDTH = 1.95
"""Median of ``stroke_width`` over the bundled MNIST sample (28x28 scale)."""

MNIST_STROKE_KEEP = (1.25, 4.5)
"""Widths left alone: from the sample's 2nd percentile up to its 99.9th.

Only widths clearly outside MNIST's own range are changed. The band is lopsided on purpose:
thickening the thinnest 2% of strokes helps a network read them (MNIST test included), while
thinning strokes MNIST itself has (3.4 to 4.5 px) cost accuracy on MNIST and on drawings."""

MNIST_STROKE_TARGET = (1.67, 2.27)
"""25th-75th percentile: widths outside ``MNIST_STROKE_KEEP`` are moved to the nearer end."""

BOX = 20  # MNIST: longer side of the ink bounding box
FIELD = 28  # MNIST: output size
OVERSAMPLE = 4  # stroke width is measured and adjusted at 4x the final resolution
_WORK = BOX * OVERSAMPLE
_MAX_WORKING_SIDE = 1024  # larger inputs are box-reduced first: the output is only 28x28 anyway


# --------------------------------------------------------------------------------------- loading


def load_image(source) -> Image.Image:
    """Open and decode an image from a path, bytes or a file-like object (e.g. an upload).

    The size is checked from the header before any pixel is decoded, so a decompression bomb
    costs nothing. EXIF rotation (phone photos) is applied.
    """
    name = "the file"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = f"'{path.name}'"
        if not path.is_file():
            raise DataError(f"File {name} does not exist or is not a file.")
        fp = path
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise DataError("The image is empty (0 bytes).")
        fp = io.BytesIO(bytes(source))
    elif hasattr(source, "read"):
        fname = getattr(source, "name", None)
        if isinstance(fname, str) and fname:
            name = f"'{Path(fname).name}'"
        fp = source
    else:
        raise DataError(
            f"Cannot read an image from a {type(source).__name__}; give a file path, bytes or an "
            "uploaded file."
        )
    limit = f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels, please use a smaller image."
    im = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(fp)  # reads the header only
            w, h = im.size
            if w * h > MAX_PIXELS:
                mp = w * h / 1e6
                raise DataError(f"{_cap(name)} is {w}x{h} pixels ({mp:.0f} megapixels); {limit}")
            if w == 0 or h == 0:
                raise DataError(f"{_cap(name)} has no pixels ({w}x{h}).")
            if im.format == "JPEG":
                im.draft(im.mode, (2048, 2048))  # decode big JPEGs at reduced scale: faster
            im.load()
            out = ImageOps.exif_transpose(im)  # a new image (first frame), the file can close
            out.format = im.format  # to_mnist allows for JPEG artefacts
    except DataError:
        raise
    except Image.DecompressionBombError:
        bomb = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
        raise DataError(f"{_cap(name)} has more than {bomb:.0f} megapixels; {limit}") from None
    except UnidentifiedImageError:
        raise DataError(
            f"{_cap(name)} is not an image that can be read (use PNG, JPEG, GIF, BMP, TIFF "
            "or WebP)."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, struct_error) as exc:
        raise DataError(
            f"{_cap(name)} is damaged or truncated and cannot be decoded ({exc})."
        ) from None
    finally:
        if im is not None and fp is not source:  # close what we opened, not the caller's file
            im.close()
    return out


def _cap(name: str) -> str:
    return "The file" if name == "the file" else f"File {name}"


# ------------------------------------------------------------------------------- ink extraction


def gray_and_alpha(image) -> tuple[np.ndarray, np.ndarray | None]:
    """Reduce any PIL image or array to 8-bit luminance plus an alpha channel (or None).

    Accepts every PIL mode (RGBA, RGB, L, LA, P with transparency, 1, I;16, I, F, CMYK, ...) and
    arrays (H, W), (H, W, 1|2|3|4) of uint8, bool, other ints or floats (floats <= 1 are taken as
    [0, 1]). Wide-range modes are scaled by their actual min..max, since only contrast matters.
    """
    if isinstance(image, Image.Image):
        return _pil_gray_alpha(image)
    if isinstance(image, np.ndarray):
        return _array_gray_alpha(image)
    raise DataError(f"Expected an image or a pixel array, got a {type(image).__name__}.")


def _pil_gray_alpha(im: Image.Image):
    mode = im.mode
    if mode == "P":
        rgba = "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA")
        im = im.convert("RGBA" if rgba else "L")
        mode = im.mode
    if mode == "PA":
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBa", "La"):
        im = im.convert("RGBA" if mode == "RGBa" else "LA")
        mode = im.mode
    if _too_large(im.size):
        raise DataError(
            f"The image is {im.size[0]}x{im.size[1]} pixels; the limit is "
            f"{MAX_PIXELS / 1e6:.0f} megapixels."
        )
    if mode in ("RGBA", "LA"):
        alpha = im.getchannel("A")
        gray = im.convert("L") if mode == "RGBA" else im.getchannel("L")
        gray, alpha = _reduce_large(gray), _reduce_large(alpha)
        return np.asarray(gray), np.asarray(alpha)
    if mode == "L":
        return np.asarray(_reduce_large(im)), None
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(im)
        if arr.ndim != 2:  # exotic packed modes
            arr = np.asarray(im.convert("I"))
        return _array_gray_alpha(arr.astype(np.float64))
    # 1, RGB, CMYK, YCbCr, LAB, HSV, RGBX ...
    rgb = im.convert("RGB") if mode not in ("1",) else im
    return np.asarray(_reduce_large(rgb.convert("L"))), None


def _too_large(size) -> bool:
    return size[0] * size[1] > MAX_PIXELS


def _reduce_large(im: Image.Image) -> Image.Image:
    side = max(im.size)
    if side <= _MAX_WORKING_SIDE:
        return im
    return im.reduce(math.ceil(side / _MAX_WORKING_SIDE))


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * np.uint8(255)
    a = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise DataError("The image contains NaN or infinite pixel values.")
    if a.size == 0:
        raise DataError("The image has no pixels.")
    lo, hi = float(a.min()), float(a.max())
    if np.issubdtype(a.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
        return np.rint(a * 255.0).astype(np.uint8)
    if lo >= 0.0 and hi <= 255.0:
        return np.rint(a).astype(np.uint8)
    if hi == lo:
        return np.zeros(a.shape, np.uint8)
    return np.rint((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _array_gray_alpha(a: np.ndarray):
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        if a.size == 0:
            raise DataError("The image has no pixels.")
        g = _to_uint8(a)
        return np.asarray(_reduce_large(Image.fromarray(g))), None
    if a.ndim != 3 or a.shape[2] not in (2, 3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(
            f"Pixel array has shape {a.shape}; expected (height, width) or (height, width, 1-4 "
            "channels)."
        )
    if a.dtype != np.uint8:
        a = np.stack([_to_uint8(a[:, :, c]) for c in range(a.shape[2])], axis=2)
    a = np.ascontiguousarray(a)
    if a.shape[2] == 2:
        g, al = Image.fromarray(a[:, :, 0]), Image.fromarray(np.ascontiguousarray(a[:, :, 1]))
        return np.asarray(_reduce_large(g)), np.asarray(_reduce_large(al))
    im = Image.fromarray(a, "RGBA" if a.shape[2] == 4 else "RGB")
    gray = _reduce_large(im.convert("L"))
    if a.shape[2] == 4:
        return np.asarray(gray), np.asarray(_reduce_large(im.getchannel("A")))
    return np.asarray(gray), None


def flatten_alpha(gray: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Composite over a background that contrasts with the opaque pixels: transparent = paper.

    A canvas with a transparent background and black (or white, or red) strokes then looks like
    ink on paper whatever the stroke colour. Fully transparent input has no ink at all.
    """
    if alpha is None or alpha.min() == 255:
        return gray
    if alpha.max() < 16:
        raise EmptyImageError("The image is completely transparent: there is nothing drawn on it.")
    # mean luminance of the opaque pixels decides the background colour (every 2nd pixel is
    # plenty: strokes are wider than that; fall back to all pixels for hairlines)
    opaque = gray[::2, ::2][alpha[::2, ::2] >= 128]
    if opaque.size == 0:
        opaque = gray[alpha >= 128]
    if opaque.size == 0:
        opaque = gray[alpha == alpha.max()]
    mean = float(opaque.mean())
    back = 255 if mean < 128 else 0
    g = Image.fromarray(gray)
    return np.asarray(Image.composite(g, Image.new("L", g.size, back), Image.fromarray(alpha)))


def ink_levels(gray: np.ndarray) -> tuple[bool, int, int]:
    """(invert, background, peak) of an 8-bit luminance image.

    The border tells paper from ink: if the border median is nearer the bright end of the
    image's range than the dark end, the ink is dark and gets inverted. ``background`` is the
    border median and ``peak`` the ink level reached by the strongest 0.02% of pixels (not the
    max, so a few hot pixels do not count). Both are in the inverted (ink-is-bright) scale.
    """
    border = _border(gray)
    bg = int(np.partition(border, border.size // 2)[border.size // 2])  # median
    hist = np.bincount(gray.ravel(), minlength=256) if gray.size < 4096 else np.asarray(
        Image.fromarray(gray).histogram()
    )
    need = max(4, int(0.0002 * gray.size))  # pixels: fewer than this are noise, not ink
    lo_level = int(np.searchsorted(np.cumsum(hist), need))
    hi_level = 255 - int(np.searchsorted(np.cumsum(hist[::-1]), need))
    invert = (bg - lo_level) > (hi_level - bg)
    if invert:
        hist = hist[::-1]
        bg = 255 - bg
    above = np.cumsum(hist[::-1])  # above[k] = pixels with level >= 255 - k
    peak = 255 - int(np.searchsorted(above, need))
    return bool(invert), bg, max(peak, bg)


PAPER_NOISE_SIGMAS = 4.0
"""The noise floor (mapped to 0) sits this many paper-noise deviations above the paper level."""

MAX_NOISE_FLOOR = 0.35
"""...but never above this fraction of the ink contrast, so strokes survive very noisy paper."""

LOSSY_NOISE_FLOOR = 0.08
"""At least this fraction of the contrast for JPEG/WebP files: their ringing around strokes
(up to ~8% of the contrast at quality 50-75) sits next to the ink, not on the flat border where
``paper_noise`` looks, and would otherwise stretch the ink's bounding box."""

LOSSY_FORMATS = frozenset({"JPEG", "MPO", "WEBP", "JPEG2000"})

_MIN_CONTRAST = 40  # levels between paper and ink below which there is no visible ink


def _border(gray: np.ndarray) -> np.ndarray:
    return np.concatenate((gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]))


_UNEVEN_BORDER = 24  # grey levels between the border's 10th and 90th percentile: uneven light


def border_is_uneven(gray: np.ndarray) -> bool:
    """True when the paper along the border varies more than noise does (shadow, vignetting)."""
    b = _border(gray)
    k10, k90 = int(0.1 * (b.size - 1)), int(0.9 * (b.size - 1))
    part = np.partition(b, (k10, k90))
    return int(part[k90]) - int(part[k10]) > _UNEVEN_BORDER


def even_background(ink: np.ndarray) -> np.ndarray:
    """Subtract a smooth paper level from bright-ink uint8 (a shadow across a photographed page).

    The paper level is the darkest local average in blocks of about a tenth of the image (wider
    than strokes, so every neighbourhood holds some paper), interpolated smoothly: ink stands
    out from its own surroundings instead of from the page's brightest corner.
    """
    h, w = ink.shape
    im = Image.fromarray(ink)
    # average 4x4-ish first (noise does not then drag block minima down), ~48 px across
    side = max(h, w)
    size = (max(1, min(w, 48 * w // side)), max(1, min(h, 48 * h // side)))
    small = np.asarray(im.resize(size, Image.BOX), np.int16)
    sh, sw = small.shape
    b = 5
    gh, gw = -(-sh // b), -(-sw // b)
    padded = np.pad(small, ((0, gh * b - sh), (0, gw * b - sw)), mode="edge")
    blocks = padded.reshape(gh, b, gw, b).min(axis=(1, 3))
    p = np.pad(blocks, 1, mode="edge")  # and the neighbours' minimum: strokes up to ~2 blocks
    blocks = np.minimum.reduce([p[i : i + gh, j : j + gw] for i in range(3) for j in range(3)])
    paper = Image.fromarray(blocks.astype(np.uint8)).resize((gw * b, gh * b), Image.BILINEAR)
    paper = paper.crop((0, 0, sw, sh)).resize((w, h), Image.BILINEAR)
    return np.clip(ink.astype(np.int16) - np.asarray(paper, np.int16), 0, 255).astype(np.uint8)


def paper_noise(gray: np.ndarray, invert: bool, background: int) -> float:
    """Robust standard deviation (grey levels) of the paper along the border.

    1.4826 x the median absolute deviation from ``background`` (as ``ink_levels`` gives it, in
    the ink-is-bright scale): a digit touching up to half the border does not count as noise.
    Below one grey level the median deviation is 0, so the spread is then inferred from how
    many border pixels differ from the paper level at all (rounded Gaussian noise). Exactly 0
    for a flat background (a canvas, MNIST, a clean scan), a few levels for a photo.
    """
    b = _border(gray).astype(np.int16)
    dev = np.abs((255 - b if invert else b) - background)
    mid = dev.size // 2
    mad = float(np.partition(dev, mid)[mid])
    if mad > 0:
        return 1.4826 * mad
    differ = np.count_nonzero(dev) / dev.size  # < 1/2 here; P(|round(N(0, s))| >= 1)
    return 0.0 if differ == 0 else 0.5 / NormalDist().inv_cdf(1.0 - differ / 2.0)


def noise_floor(gray: np.ndarray, levels=None, minimum: float = 0.0) -> float:
    """Ink level (ink-is-bright scale) at and below which pixels count as paper.

    ``PAPER_NOISE_SIGMAS`` paper-noise deviations above the paper, at least ``minimum`` and at
    most ``MAX_NOISE_FLOOR`` of the contrast. On flat paper that is the paper itself, so clean
    inputs (MNIST, the canvas) keep every faint anti-aliased edge pixel - the network was
    trained on them - while a photo's grain is cut off.
    """
    invert, bg, peak = ink_levels(gray) if levels is None else levels
    noise = max(PAPER_NOISE_SIGMAS * paper_noise(gray, invert, bg), minimum * (peak - bg))
    return bg + min(noise, MAX_NOISE_FLOOR * (peak - bg))


def ink_map(gray: np.ndarray, levels=None, min_floor: float = 0.0) -> np.ndarray:
    """White-on-black uint8 ink: paper and its noise -> 0, ink peak -> 255, linear between.

    Uneven paper (a shadow across a photo: the border varies by more than noise) is evened out
    first with ``even_background``. The zero level is ``noise_floor`` (``min_floor``: its
    ``minimum``): the paper itself on flat paper, higher on grainy paper.
    """
    invert, bg, peak = ink_levels(gray) if levels is None else levels
    if border_is_uneven(gray):
        gray = even_background(255 - gray if invert else gray)
        invert, bg, peak = ink_levels(gray)
    if peak - bg < _MIN_CONTRAST:
        raise EmptyImageError("No ink found: the image is (almost) blank.")
    lo = noise_floor(gray, (invert, bg, peak), min_floor)
    x = np.arange(256, dtype=np.float64)
    if invert:
        x = 255.0 - x
    lut = np.clip(np.rint((x - lo) * (255.0 / (peak - lo))), 0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(gray).point(lut.tolist()))


def _runs(profile: np.ndarray):
    nz = profile > 0
    edges = np.flatnonzero(np.diff(np.concatenate(([0], nz.view(np.int8), [0]))))
    return edges[0::2], edges[1::2]  # starts, ends (exclusive)


def _trim(profile: np.ndarray, frac: float) -> tuple[int, int]:
    starts, ends = _runs(profile)
    if len(starts) == 0:
        return 0, 0
    if len(starts) == 1:
        return int(starts[0]), int(ends[0])
    csum = np.concatenate(([0], np.cumsum(profile, dtype=np.float64)))
    mass = csum[ends] - csum[starts]
    total = csum[-1]
    i, j = 0, len(starts) - 1
    removed = 0.0
    while i < j:  # drop the lighter end group while the total dropped stays under frac
        m = min(mass[i], mass[j])
        if removed + m >= frac * total:
            break
        removed += m
        if mass[i] <= mass[j]:
            i += 1
        else:
            j -= 1
    return int(starts[i]), int(ends[j])


def ink_bbox(ink: np.ndarray, speck_fraction: float = 0.02):
    """Bounding box ``(top, bottom, left, right)`` (exclusive ends) of the ink, or None.

    Groups of rows/columns separated from the rest by empty space and holding less than
    ``speck_fraction`` of the ink mass (dust, a stray dot, a scanner smudge) are ignored, so one
    speck does not stretch the box; touching ink is always kept, whatever its intensity.
    """
    box = Image.fromarray(ink).getbbox()  # (left, top, right, bottom) of all non-zero ink
    if box is None:
        return None
    x0, y0 = box[0], box[1]
    sub = ink[box[1] : box[3], box[0] : box[2]]
    rows = sub.sum(axis=1, dtype=np.uint32)
    cols = sub.sum(axis=0, dtype=np.uint32)
    top, bottom = _trim(rows, speck_fraction)
    left, right = _trim(cols, speck_fraction)
    if top != 0 or bottom != len(rows) or left != 0 or right != len(cols):
        # specks removed along one axis can leave empty margins along the other: re-tighten
        sub = sub[top:bottom, left:right]
        r = np.flatnonzero(sub.any(axis=1))
        c = np.flatnonzero(sub.any(axis=0))
        if len(r) == 0:
            return None
        top, bottom = top + int(r[0]), top + int(r[-1]) + 1
        left, right = left + int(c[0]), left + int(c[-1]) + 1
    return y0 + top, y0 + bottom, x0 + left, x0 + right


def check_ink(ink: np.ndarray, bbox) -> None:
    """Raise EmptyImageError for no ink, a few pixels, or one compact dot (an accidental click)."""
    if bbox is None:
        raise EmptyImageError("Nothing is drawn: draw a digit first.")
    top, bottom, left, right = bbox
    h, w = bottom - top, right - left
    region = ink[top:bottom, left:right]
    strong = int(np.count_nonzero(region >= 128))
    if strong < 4 or max(h, w) < 3:
        raise EmptyImageError("There is almost no ink: draw a larger digit.")
    side = max(ink.shape)
    fill = strong / float(h * w)
    if max(h, w) <= 0.12 * side and max(h, w) <= 1.6 * min(h, w) and fill > 0.5:
        raise EmptyImageError(
            "Only a small dot is drawn (an accidental click?): draw a whole digit."
        )


# ---------------------------------------------------------------------------- geometry / width


def fit_box(crop: np.ndarray, side: int = _WORK) -> np.ndarray:
    """Scale uint8 ink so its longer side is ``side`` px (aspect kept, anti-aliased) -> float32."""
    h, w = crop.shape
    scale = side / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    im = Image.fromarray(np.ascontiguousarray(crop))
    if (nh, nw) != (h, w):
        im = im.resize((nw, nh), Image.BOX if scale < 1 else Image.BILINEAR)
    return np.asarray(im, dtype=np.float32) * np.float32(1 / 255)


def stroke_width(img: np.ndarray) -> float:
    """Mean stroke width in px: 2 * ink mass / total variation (edge contrast crossed).

    For a stroke of width w and length L the mass is w*L and crossing it twice per unit length
    gives a variation of 2*L, so the ratio is w (for grey strokes: mass / peak, the width at full
    intensity). Blur narrower than the stroke does not change it (soft edges keep their
    variation) and it scales linearly with resolution, so it compares an 80 px working image
    with MNIST's 28x28 digits. Accepts (..., H, W).
    """
    a = np.asarray(img, dtype=np.float32)
    tv = np.abs(np.diff(a, axis=-1)).sum(axis=(-1, -2)) + np.abs(np.diff(a, axis=-2)).sum(
        axis=(-1, -2)
    )
    # the step from the outermost pixels to the paper around them: a tight crop (ink touching
    # its box) measures like the padded image; without it a straight "1" looked 40 px wide
    tv += np.abs(a[..., :, 0]).sum(-1) + np.abs(a[..., :, -1]).sum(-1)
    tv += np.abs(a[..., 0, :]).sum(-1) + np.abs(a[..., -1, :]).sum(-1)
    mass = a.sum(axis=(-1, -2))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(tv > 0, 2.0 * mass / np.where(tv > 0, tv, 1), 0.0)
    return float(out) if out.ndim == 0 else out


def _dilate(a: np.ndarray, square: bool) -> np.ndarray:
    out = a.copy()
    np.maximum(out[1:], a[:-1], out=out[1:])
    np.maximum(out[:-1], a[1:], out=out[:-1])
    src = out.copy() if square else a
    np.maximum(out[:, 1:], src[:, :-1], out=out[:, 1:])
    np.maximum(out[:, :-1], src[:, 1:], out=out[:, :-1])
    return out


def _erode(a: np.ndarray, square: bool) -> np.ndarray:
    return 1.0 - _dilate(1.0 - a, square)


def normalize_stroke(work: np.ndarray, keep=MNIST_STROKE_KEEP, target=MNIST_STROKE_TARGET):
    """Grow or thin strokes of a working image (longer side 80 px) into MNIST's width range.

    Widths are judged as they will come out (``stroke_width(shrink_to_box(...))``, the statistic
    MNIST's range was measured with). Widths MNIST itself has (``keep``, see
    ``MNIST_STROKE_KEEP``) are left alone and the same array is returned. Thinner strokes are
    thickened to MNIST's lower quartile, thicker ones thinned to its upper quartile, by grey
    dilation/erosion steps (alternating cross and square, which approximates a disc). Each step changes the final
    width by about half a pixel: a first estimate of the step count, then single steps while
    they bring the width closer to the target. Thinning never removes more than 85% of the ink.
    """
    return _normalize(work, None, keep, target)[0]


def _normalize(work, w, keep=MNIST_STROKE_KEEP, target=MNIST_STROKE_TARGET):
    """normalize_stroke, given the current final width ``w`` if known; also returns the final
    20 px box when it was computed on the way (None otherwise), to save resampling it again."""
    side = max(work.shape)
    k = side / BOX
    if w is None:
        w = stroke_width(shrink_to_box(work))
    if w == 0 or keep[0] <= w <= keep[1]:
        return work, None
    t = target[0] if w < keep[0] else target[1]
    grow = w < t
    # a step moves the width by 2 px here, and the re-fitted box shrinks/grows with the strokes
    est = abs(round((t - w) * k / (2.0 * (1.0 - t * k / side)))) - 1
    limit = side // 5
    est = int(np.clip(est, 0, limit))
    if grow:
        # a hairline shrunk to 80 px is a faint, uneven line: saturate its core first, or
        # dilation would just widen the faintness
        inked = work[work > 0.1 * work.max()]
        if inked.size:
            q = int(0.6 * (inked.size - 1))
            ref = float(np.partition(inked, q)[q])
            work = np.minimum(work * np.float32(1.0 / max(ref, 1e-3)), np.float32(1.0))
    out = np.pad(work, (est + 1) if grow else 1)  # paper all round, so stroke ends erode too
    floor = 0.15 * float(work.sum())
    done = 0
    for done in range(1, est + 1):
        nxt = _dilate(out, done % 2 == 0) if grow else _erode(out, done % 2 == 0)
        if not grow and float(nxt.sum()) < floor:
            break
        out = nxt
    small = shrink_to_box(out)
    w = stroke_width(small)
    for step in range(done + 1, limit + 1):  # then single steps while they get closer
        nxt = _dilate(np.pad(out, 1), step % 2 == 0) if grow else _erode(out, step % 2 == 0)
        if not grow and float(nxt.sum()) < floor:
            break
        small_next = shrink_to_box(nxt)
        w_next = stroke_width(small_next)
        if abs(w_next - t) >= abs(w - t):
            break
        out, small, w = nxt, small_next, w_next
    return out, small


def shrink_to_box(img: np.ndarray, box: int = BOX) -> np.ndarray:
    """Crop to the ink and scale so the longer side is ``box`` px (anti-aliased, aspect kept).

    ``img`` is uint8 (0-255) or float (0-1) ink. The result is float32, contrast-normalised: a
    robust stroke maximum (the 97th percentile of clearly-inked pixels, not the single brightest)
    becomes 1.0 and residue below 2% becomes 0, so faint pencil or hairline strokes reach MNIST's
    saturated stroke cores.
    """
    if img.dtype == np.uint8:
        im = Image.fromarray(np.ascontiguousarray(img))
        levels = 255.0
    else:
        im = Image.fromarray(np.ascontiguousarray(img, dtype=np.float32), "F")
        levels = 1.0
    if im.mode == "F":
        r = np.flatnonzero(img.max(axis=1) > 0.02)
        c = np.flatnonzero(img.max(axis=0) > 0.02)
        bb = (int(c[0]), int(r[0]), int(c[-1]) + 1, int(r[-1]) + 1) if len(r) else None
    else:
        bb = im.getbbox()
    if bb is None:
        raise EmptyImageError("No ink left after clean-up: draw a larger digit.")
    im = im.crop(bb)
    w, h = im.size
    scale = box / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BOX if scale < 1 else Image.BILINEAR)
    small = np.array(im, dtype=np.float32)
    small *= np.float32(1.0 / levels)
    inked = small[small > 0.25 * small.max()]
    q = int(0.97 * (inked.size - 1))
    ref = float(np.partition(inked, q)[q])
    if ref > 0:
        small *= np.float32(1.0 / ref)
    small[small < 0.02] = 0.0
    np.clip(small, 0.0, 1.0, out=small)
    return small


def center_of_mass(img: np.ndarray) -> tuple[float, float]:
    """(row, column) of the intensity-weighted centre, in pixel-index coordinates."""
    a = np.asarray(img, dtype=np.float64)
    m = a.sum()
    if m == 0:
        return (a.shape[0] - 1) / 2.0, (a.shape[1] - 1) / 2.0
    return (
        float(a.sum(axis=1) @ np.arange(a.shape[0])) / m,
        float(a.sum(axis=0) @ np.arange(a.shape[1])) / m,
    )


def place_by_mass(small: np.ndarray, size: int = FIELD) -> np.ndarray:
    """Paste into a ``size`` field so the centre of mass lands on pixel (14, 14), like MNIST.

    MNIST shifts by whole pixels (its centres of mass are spread +-0.5 px around 14), which keeps
    strokes sharp; so do we. The shift is limited so no ink falls off the field.
    """
    h, w = small.shape
    cy, cx = center_of_mass(small)
    centre = size // 2
    oy = int(np.clip(round(centre - cy), 0, size - h))
    ox = int(np.clip(round(centre - cx), 0, size - w))
    out = np.zeros((size, size), np.float32)
    out[oy : oy + h, ox : ox + w] = small
    return out


# ------------------------------------------------------------------------------------- pipeline


def _pipeline(gray: np.ndarray, alpha, keep: dict | None = None, lossy=False) -> np.ndarray:
    flat = flatten_alpha(gray, alpha)
    ink = ink_map(flat, min_floor=LOSSY_NOISE_FLOOR if lossy else 0.0)
    bbox = ink_bbox(ink)
    check_ink(ink, bbox)
    top, bottom, left, right = bbox
    crop = ink[top:bottom, left:right]
    small = shrink_to_box(crop)  # one resampling, straight to the 20 px box
    work = adjusted = None
    w = stroke_width(small)
    if not MNIST_STROKE_KEEP[0] <= w <= MNIST_STROKE_KEEP[1]:
        work = fit_box(crop)
        adjusted, small_adjusted = _normalize(work, w)
        if small_adjusted is not None:
            small = small_adjusted
    out = place_by_mass(small)
    if keep is not None:
        keep.update(gray=flat, ink=ink, bbox=bbox, work=work, adjusted=adjusted, box=small,
                    mnist=out)
    return out


def to_mnist(image) -> np.ndarray:
    """Any PIL image or pixel array -> (28, 28) float32 in [0, 1], white digit on black.

    A PIL image decoded from a lossy file (``image.format`` in ``LOSSY_FORMATS``, kept by
    ``load_image``) gets a noise floor for its compression ringing; an array carries no format.
    Raises EmptyImageError when there is (almost) no ink and DataError for unusable input.
    """
    gray, alpha = gray_and_alpha(image)
    return _pipeline(gray, alpha, lossy=_is_lossy(image))


def _is_lossy(image) -> bool:
    return isinstance(image, Image.Image) and image.format in LOSSY_FORMATS


def canvas_to_mnist(rgba: np.ndarray) -> np.ndarray:
    """Fast path for streamlit-drawable-canvas ``image_data`` (H, W, 4) uint8.

    Works for any stroke and background colour, transparent or opaque backgrounds; gives the
    same result as ``to_mnist`` on the same RGBA pixels.
    """
    return _pipeline(*_canvas_gray_alpha(rgba))


def _canvas_gray_alpha(rgba) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(rgba)
    if a.ndim != 3 or a.shape[2] != 4 or a.dtype != np.uint8:
        raise DataError(
            f"Canvas data has shape {a.shape} and type {a.dtype}; expected (height, width, 4) "
            "uint8."
        )
    if a.shape[0] < 3 or a.shape[1] < 3:
        raise DataError(f"The canvas is only {a.shape[1]}x{a.shape[0]} pixels.")
    im = Image.fromarray(np.ascontiguousarray(a), "RGBA")
    gray = _reduce_large(im.convert("L"))
    alpha = _reduce_large(im.getchannel("A"))
    return np.asarray(gray), np.asarray(alpha)


def preprocess_steps(image) -> dict:
    """Run ``to_mnist`` (``canvas_to_mnist`` for (H, W, 4) uint8 arrays) keeping the steps.

    For the Draw page to show what the network gets and why. Keys: ``gray`` (uint8 luminance
    after flattening transparency), ``ink`` (uint8 white-on-black, noise removed), ``bbox``
    (top, bottom, left, right in ``ink``), ``work`` (float32, 80 px box) and ``adjusted`` (after
    stroke normalisation) - both None when the stroke width was already MNIST-like -, ``box``
    (float32, 20 px box) and ``mnist`` (the (28, 28) float32 result).
    """
    canvas = isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 4
    if canvas and image.dtype == np.uint8:
        gray, alpha = _canvas_gray_alpha(image)
    else:
        gray, alpha = gray_and_alpha(image)
    keep: dict = {}
    _pipeline(gray, alpha, keep, lossy=_is_lossy(image))
    return keep
