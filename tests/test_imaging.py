"""imaging: constructed drawings whose right answer is known, plus the bundled MNIST sample."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from scratchnet import imaging
from scratchnet.errors import DataError, EmptyImageError
from scratchnet.imaging import (
    LOSSY_NOISE_FLOOR,
    MAX_NOISE_FLOOR,
    MNIST_STROKE_KEEP,
    MNIST_STROKE_TARGET,
    MNIST_STROKE_WIDTH,
    canvas_to_mnist,
    center_of_mass,
    border_is_uneven,
    check_ink,
    even_background,
    fit_box,
    flatten_alpha,
    gray_and_alpha,
    ink_bbox,
    ink_levels,
    ink_map,
    load_image,
    noise_floor,
    normalize_stroke,
    PAPER_NOISE_SIGMAS,
    paper_noise,
    place_by_mass,
    preprocess_steps,
    shrink_to_box,
    stroke_width,
    to_mnist,
)

SAMPLE = Path(imaging.__file__).parent / "data" / "mnist_sample.npz"


@pytest.fixture(scope="module")
def mnist():
    with np.load(SAMPLE) as d:
        return d["images"].reshape(-1, 28, 28), d["labels"]


def draw_nine(size=280, box=(70, 40, 210, 250), width=20, fg=255, bg=0, mode="L"):
    """A '9': a loop on top of a stem, inside ``box`` (left, top, right, bottom)."""
    im = Image.new(mode, (size, size), bg)
    d = ImageDraw.Draw(im)
    left, top, right, bottom = box
    h = bottom - top
    loop_bottom = top + int(0.45 * h)
    d.ellipse((left, top, right, loop_bottom), outline=fg, width=width)
    stem_x = right - width // 2
    d.line((stem_x, (top + loop_bottom) // 2, stem_x - (right - left) // 4, bottom), fill=fg,
           width=width)
    return im


def ink_box_sides(img, thr=0.0):
    rows = np.flatnonzero((img > thr).any(axis=1))
    cols = np.flatnonzero((img > thr).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


# ------------------------------------------------------------------------------ whole pipeline


def test_output_type_range_and_mnist_geometry():
    out = to_mnist(draw_nine())
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == pytest.approx(1.0)
    assert max(ink_box_sides(out)) == 20  # longer side of the ink box, like MNIST
    cy, cx = center_of_mass(out)
    assert abs(cy - 14) <= 0.5 + 1e-6 and abs(cx - 14) <= 0.5 + 1e-6


@pytest.mark.parametrize("box", [(5, 5, 145, 215), (415, 345, 555, 555), (0, 345, 140, 555),
                                 (400, 10, 470, 115)])
def test_digit_in_a_corner_comes_out_centred_and_same_as_centred_one(box):
    centred = to_mnist(draw_nine(size=560, box=(210, 175, 350, 385), width=16))
    w = box[2] - box[0]
    out = to_mnist(draw_nine(size=560, box=box, width=round(16 * w / 140)))
    cy, cx = center_of_mass(out)
    assert abs(cy - 14) < 1.0 and abs(cx - 14) < 1.0
    assert max(ink_box_sides(out)) == 20
    assert corr(out, centred) > 0.95


def test_wide_shape_is_scaled_by_its_longer_side_keeping_aspect():
    im = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(im).line((20, 140, 260, 140), fill=255, width=24)  # 240 x 24 bar
    out = to_mnist(im)
    h, w = ink_box_sides(out, 0.05)
    assert w == 20 and 1 <= h <= 4


def test_thick_and_hairline_strokes_get_mnist_like_width(mnist):
    X, _ = mnist
    widths = stroke_width(X / 255.0)
    lo, hi = np.percentile(widths, [5, 95])
    least, most = np.percentile(widths, [2, 99.9])  # what MNIST itself has
    for pen in (2, 70):  # a hairline and a felt-tip pen a quarter of the digit wide
        im = draw_nine(width=pen, fg=(255, 255, 255, 255), bg=(0, 0, 0, 255), mode="RGBA")
        steps = preprocess_steps(np.asarray(im))
        # as drawn, the width is outside anything MNIST has...
        raw = stroke_width(shrink_to_box(fit_box(np.asarray(im.convert("L")))))
        assert raw < least * 0.7 if pen == 2 else raw > most, (pen, raw)
        # ...so it is normalised, and comes out typical of MNIST (its middle 90%)
        assert steps["adjusted"] is not steps["work"]
        w = stroke_width(canvas_to_mnist(np.asarray(im)))
        assert lo <= w <= hi, (pen, w, lo, hi)
    for pen in (20, 30, 40, 50):  # widths MNIST has are left as drawn, and stay in its range
        im = draw_nine(width=pen)
        steps = preprocess_steps(im)
        assert steps["work"] is None and steps["adjusted"] is None
        assert least <= stroke_width(steps["mnist"]) <= most, pen


def test_inverted_image_gives_the_same_output():
    white_on_black = draw_nine(fg=255, bg=0)
    black_on_white = draw_nine(fg=0, bg=255)
    np.testing.assert_allclose(to_mnist(black_on_white), to_mnist(white_on_black), atol=1e-6)
    # grey paper and grey pencil as well
    pencil = draw_nine(fg=90, bg=200)
    assert corr(to_mnist(pencil), to_mnist(white_on_black)) > 0.99


@pytest.mark.parametrize("stroke", [(0, 0, 0, 255), (255, 255, 255, 255), (200, 30, 30, 255)])
def test_rgba_transparent_background_any_stroke_colour(stroke):
    ref = to_mnist(draw_nine())
    im = draw_nine(fg=stroke, bg=(0, 0, 0, 0), mode="RGBA")
    out = to_mnist(im)
    assert corr(out, ref) > 0.99
    np.testing.assert_array_equal(canvas_to_mnist(np.asarray(im)), out)


def test_canvas_with_opaque_black_background():
    rgba = np.asarray(draw_nine(fg=(255, 255, 255, 255), bg=(0, 0, 0, 255), mode="RGBA"))
    np.testing.assert_allclose(canvas_to_mnist(rgba), to_mnist(draw_nine()), atol=1e-6)


def test_palette_16bit_1bit_and_rgb_images_agree():
    base = draw_nine(fg=0, bg=255, width=16)
    ref = to_mnist(base)
    pal = base.convert("RGB").convert("P", palette=Image.ADAPTIVE, colors=16)
    assert pal.mode == "P"
    assert corr(to_mnist(pal), ref) > 0.98
    pal_t = draw_nine(fg=1, bg=0, width=16, mode="P")
    pal_t.putpalette([0, 0, 0, 0, 0, 0] + [0] * 762)
    pal_t.info["transparency"] = 0  # index 0 transparent: a black digit on nothing
    assert corr(to_mnist(pal_t), ref) > 0.98
    i16 = Image.fromarray(np.asarray(base).astype(np.uint16) * 257)
    assert i16.mode.startswith("I;16")
    assert corr(to_mnist(i16), ref) > 0.99
    assert corr(to_mnist(base.convert("1")), ref) > 0.9
    assert corr(to_mnist(base.convert("RGB")), ref) > 0.99
    assert corr(to_mnist(base.convert("CMYK")), ref) > 0.99


def test_arrays_of_any_dtype_and_channels():
    ref = to_mnist(draw_nine())
    a = np.asarray(draw_nine())
    for arr in (a, a / 255.0, a.astype(np.float32) / 255, a > 127, a[:, :, None],
                np.repeat(a[:, :, None], 3, axis=2), a.astype(np.int64) * 1000):
        assert corr(to_mnist(arr), ref) > 0.97
    with pytest.raises(DataError):
        to_mnist(np.zeros((5, 5, 7), np.uint8))
    with pytest.raises(DataError):
        to_mnist(np.full((28, 28), np.nan))
    with pytest.raises(DataError):
        to_mnist("not an image")


def test_grey_noisy_paper_does_not_stretch_the_box():
    rng = np.random.default_rng(0)
    clean = to_mnist(draw_nine(fg=0, bg=255))
    paper = np.asarray(draw_nine(fg=40, bg=190), np.float64)
    paper += rng.normal(0, 8, paper.shape)
    out = to_mnist(np.clip(paper, 0, 255).astype(np.uint8))
    assert corr(out, clean) > 0.9
    assert max(ink_box_sides(out, 0.05)) == 20


def test_shadow_across_a_photo_is_evened_out():
    rng = np.random.default_rng(1)
    clean = to_mnist(draw_nine(fg=0, bg=255))
    yy, xx = np.mgrid[0:280, 0:280] / 280.0
    for shadow in (0, 60, 100):
        paper = 185 - shadow / 2 + shadow * (0.6 * xx + 0.4 * yy)  # one corner darker
        ink = np.asarray(draw_nine(), np.float64) / 255
        img = paper * (1 - 0.7 * ink) + rng.normal(0, 4, paper.shape)
        out = to_mnist(np.clip(img, 0, 255).astype(np.uint8))
        assert corr(out, clean) > 0.9, shadow
        assert max(ink_box_sides(out, 0.05)) == 20


def test_even_background_removes_a_smooth_gradient_and_keeps_ink():
    yy, xx = np.mgrid[0:200, 0:300]
    ink = np.asarray(draw_nine(size=300, box=(80, 20, 220, 180), width=12), np.int16)[:200]
    img = np.clip(ink * 0.6 + 0.25 * xx, 0, 255).astype(np.uint8)  # paper 0..75 left to right
    assert border_is_uneven(img) and not border_is_uneven(ink.astype(np.uint8))
    flat = even_background(img)
    paper = ink == 0
    assert np.percentile(flat[paper], 95) < 12  # the gradient is gone
    assert np.median(flat[ink > 200]) > 130  # the strokes (0.6 * 255 = 153) are still there


def test_a_far_away_speck_is_ignored():
    im = draw_nine(fg=0, bg=255)
    ImageDraw.Draw(im).ellipse((262, 262, 266, 266), fill=0)  # dust in the corner
    np.testing.assert_allclose(to_mnist(im), to_mnist(draw_nine(fg=0, bg=255)), atol=1e-6)


def test_big_photo_is_reduced_and_still_read():
    im = draw_nine(size=280).resize((2800, 2800), Image.BILINEAR)
    out = to_mnist(im)
    assert corr(out, to_mnist(draw_nine())) > 0.95


def test_mnist_digits_pass_through_nearly_unchanged(mnist):
    X, _ = mnist
    sub = X[::5]  # 1,000 digits
    steps = [preprocess_steps(x) for x in sub]
    out = np.stack([s["mnist"] for s in steps])
    a = sub.reshape(len(sub), -1) / 255.0
    b = out.reshape(len(sub), -1)
    # flat black paper: no noise floor, every faint edge pixel the network learnt from stays
    assert np.mean(np.abs(a - b).max(axis=1) < 0.02) > 0.9
    ac = a - a.mean(1, keepdims=True)
    bc = b - b.mean(1, keepdims=True)
    r = (ac * bc).sum(1) / np.sqrt((ac * ac).sum(1) * (bc * bc).sum(1))
    assert r.mean() > 0.99 and np.median(r) > 0.9999, (r.mean(), np.median(r))
    # only strokes clearly outside MNIST's range (its thinnest ~2%) are re-drawn
    assert np.mean([s["work"] is not None for s in steps]) < 0.04


def test_mnist_stroke_constants_match_the_bundled_sample(mnist):
    X, _ = mnist
    w = stroke_width(X / 255.0)
    assert MNIST_STROKE_WIDTH == pytest.approx(np.median(w), abs=0.03)
    assert MNIST_STROKE_KEEP == pytest.approx(tuple(np.percentile(w, [2, 99.9])), abs=0.05)
    assert MNIST_STROKE_TARGET == pytest.approx(tuple(np.percentile(w, [25, 75])), abs=0.03)


# --------------------------------------------------------------------------------- empty input


@pytest.mark.parametrize(
    "img",
    [
        np.zeros((280, 280, 4), np.uint8),  # transparent canvas
        np.dstack([np.zeros((280, 280, 3), np.uint8), np.full((280, 280), 255, np.uint8)]),  # black
        np.full((280, 280, 4), 255, np.uint8),  # white
    ],
    ids=["transparent", "black", "white"],
)
def test_empty_canvas_raises_empty_image_error(img):
    with pytest.raises(EmptyImageError):
        canvas_to_mnist(img)


def test_accidental_click_and_few_pixels_are_empty():
    dot = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    ImageDraw.Draw(dot).ellipse((130, 130, 150, 150), fill=(255, 255, 255, 255))
    with pytest.raises(EmptyImageError, match="dot"):
        canvas_to_mnist(np.asarray(dot))
    few = np.zeros((280, 280), np.uint8)
    few[100, 100] = few[200, 50] = 255
    with pytest.raises(EmptyImageError):
        to_mnist(few)
    faint = np.full((280, 280), 128, np.uint8)
    faint[100:200, 130:140] = 140  # 12 grey levels: not visible ink
    with pytest.raises(EmptyImageError):
        to_mnist(faint)


def test_a_short_one_is_not_mistaken_for_a_dot():
    one = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(one).line((140, 110, 140, 170), fill=255, width=18)
    out = to_mnist(one)
    assert ink_box_sides(out)[0] == 20


# --------------------------------------------------------------------------------- load_image


def _png_header_only(width, height):
    def chunk(kind, data):
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _png_bytes(im):
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def test_load_image_from_path_bytes_and_file_like(tmp_path):
    im = draw_nine(fg=0, bg=255)
    data = _png_bytes(im)
    p = tmp_path / "nine.png"
    p.write_bytes(data)
    for src in (p, str(p), data, bytearray(data), io.BytesIO(data)):
        got = load_image(src)
        assert got.size == (280, 280)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(im))
    jpg = io.BytesIO()
    im.save(jpg, format="JPEG")
    assert corr(to_mnist(load_image(jpg.getvalue())), to_mnist(im)) > 0.98


def test_load_image_applies_exif_rotation():
    im = Image.new("L", (40, 20), 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif)
    assert load_image(buf.getvalue()).size == (20, 40)


@pytest.mark.parametrize("bad", [b"", b"this is not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_load_image_rejects_non_images(bad):
    with pytest.raises(DataError):
        load_image(bad)


def test_load_image_rejects_truncated_file():
    noise = np.random.default_rng(0).integers(0, 255, (200, 200), np.uint8)
    data = _png_bytes(Image.fromarray(noise))  # incompressible: half the file is half the pixels
    with pytest.raises(DataError, match="truncated|damaged"):
        load_image(data[: len(data) // 2])


def test_load_image_rejects_missing_path_and_odd_types(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(DataError):
        load_image(tmp_path)  # a directory
    with pytest.raises(DataError):
        load_image(12345)


@pytest.mark.parametrize("side", [7000, 10000, 20000])
def test_huge_image_refused_before_decoding(side, monkeypatch):
    from PIL import ImageFile

    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(DataError, match="megapixels"):
        load_image(_png_header_only(side, side))


def test_to_mnist_refuses_an_oversized_in_memory_image(monkeypatch):
    monkeypatch.setattr(imaging, "MAX_PIXELS", 100 * 100)
    with pytest.raises(DataError, match="megapixels"):
        to_mnist(Image.new("L", (200, 200)))
    with pytest.raises(DataError, match="megapixels"):
        load_image(_png_bytes(Image.new("L", (200, 200))))


# --------------------------------------------------------------------------- individual steps


def test_gray_and_alpha_modes():
    g, a = gray_and_alpha(Image.new("RGBA", (4, 3), (255, 0, 0, 7)))
    assert g.shape == (3, 4) and g.dtype == np.uint8 and (a == 7).all()
    assert g[0, 0] == 76  # ITU-R 601 luma of pure red
    g, a = gray_and_alpha(Image.new("LA", (4, 3), (9, 200)))
    assert (g == 9).all() and (a == 200).all()
    g, a = gray_and_alpha(np.array([[0.0, 0.5], [1.0, 0.25]]))
    assert a is None and g.tolist() == [[0, 128], [255, 64]]
    g, _ = gray_and_alpha(np.array([[-5, 5], [15, 0]]))  # out-of-range ints scaled by range
    assert g.tolist() == [[0, 128], [255, 64]]
    g, _ = gray_and_alpha(Image.fromarray(np.array([[0, 1000], [4000, 0]], np.int32), "I"))
    assert g.tolist() == [[0, 64], [255, 0]]


def test_flatten_alpha_uses_transparency_as_paper():
    gray = np.zeros((10, 10), np.uint8)  # transparent pixels are black in the canvas RGBA too
    alpha = np.zeros((10, 10), np.uint8)
    alpha[3:7, 3:7] = 255  # black opaque stroke
    flat = flatten_alpha(gray, alpha)
    assert flat[0, 0] == 255 and flat[5, 5] == 0  # composited onto white
    gray[:] = 255  # white stroke on transparent -> composited onto black
    flat = flatten_alpha(gray, alpha)
    assert flat[0, 0] == 0 and flat[5, 5] == 255
    assert flatten_alpha(gray, None) is gray
    with pytest.raises(EmptyImageError, match="transparent"):
        flatten_alpha(gray, np.zeros_like(alpha))


def test_ink_levels_and_ink_map_polarity_and_noise_floor():
    img = np.full((50, 50), 220, np.uint8)
    img[10:40, 20:26] = 20  # dark ink
    img[2, 2] = 200  # faint grey on flat paper: 10% of the contrast, like an anti-aliased edge
    invert, bg, peak = ink_levels(img)
    assert invert and bg == 255 - 220 and peak == 255 - 20
    ink = ink_map(img)
    assert ink[25, 22] == 255 and ink[45, 45] == 0
    assert ink[2, 2] == round(20 * 255 / 200)  # flat paper: no floor, faint ink is kept
    assert ink_map(img, min_floor=0.12)[2, 2] == 0  # below a floor of 12% of the contrast
    white_ink = 255 - img
    assert not ink_levels(white_ink)[0]
    np.testing.assert_array_equal(ink_map(white_ink), ink)
    # grainy paper (noise sd 4): the floor rises above the grain, a 6% smudge is paper
    grainy = img.astype(np.float64) + np.random.default_rng(0).normal(0, 4, img.shape)
    grainy[2, 2] = 208
    grainy = np.clip(np.rint(grainy), 0, 255).astype(np.uint8)
    ink = ink_map(grainy)
    assert ink[2, 2] == 0 and np.median(ink[10:40, 20:26]) > 240
    assert np.mean(ink[:, :10] > 0) < 0.01  # the paper's grain is gone
    with pytest.raises(EmptyImageError):
        ink_map(np.full((20, 20), 77, np.uint8))


def test_paper_noise_and_noise_floor_follow_the_paper():
    rng = np.random.default_rng(0)
    flat = np.full((100, 100), 230, np.uint8)
    flat[20:80, 45:55] = 30
    invert, bg, peak = ink_levels(flat)
    assert paper_noise(flat, invert, bg) == 0.0
    assert noise_floor(flat) == bg  # the paper itself
    assert noise_floor(flat, minimum=LOSSY_NOISE_FLOOR) == bg + LOSSY_NOISE_FLOOR * (peak - bg)
    grainy = np.clip(flat + rng.normal(0, 4, flat.shape), 0, 255).astype(np.uint8)
    invert, bg, peak = ink_levels(grainy)
    sigma = paper_noise(grainy, invert, bg)
    assert 3.0 < sigma < 5.0
    assert noise_floor(grainy) == pytest.approx(bg + PAPER_NOISE_SIGMAS * sigma)
    # under one grey level (median deviation 0): from how often the paper level is left
    faint = np.clip(np.rint(flat + rng.normal(0, 0.5, flat.shape)), 0, 255).astype(np.uint8)
    assert 0.35 < paper_noise(faint, *ink_levels(faint)[:2]) < 0.7
    # ink covering 40% of the border is not taken for grain (under one grey level)
    touching = flat.copy()
    touching[:, :30] = 30
    assert paper_noise(touching, *ink_levels(touching)[:2]) < 0.75
    # paper as noisy as the ink is strong: capped, so the strokes survive
    noisy = np.clip(flat + rng.normal(0, 40, flat.shape), 0, 255).astype(np.uint8)
    invert, bg, peak = ink_levels(noisy)
    assert noise_floor(noisy) == pytest.approx(bg + MAX_NOISE_FLOOR * (peak - bg))


@pytest.mark.parametrize("sd", [0.3, 0.6, 1.0, 3.0, 6.0])
def test_paper_noise_does_not_stretch_the_box(sd):
    """From a clean scan's sub-level noise to a photo's grain: the paper is not taken for ink."""
    base = np.asarray(draw_nine(fg=40, bg=230), np.float64)
    clean = preprocess_steps(base.astype(np.uint8))
    noise = np.random.default_rng(0).normal(0, sd, base.shape)
    steps = preprocess_steps(np.clip(np.rint(base + noise), 0, 255).astype(np.uint8))
    np.testing.assert_allclose(steps["bbox"], clean["bbox"], atol=2)
    assert corr(steps["mnist"], clean["mnist"]) > 0.98


@pytest.mark.parametrize("quality", [50, 75, 95])
def test_jpeg_ringing_around_strokes_is_not_ink(quality):
    im = draw_nine(fg=0, bg=255)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    jpg = load_image(buf.getvalue())
    assert jpg.format == "JPEG"  # kept through the EXIF rotation, so to_mnist knows
    clean = preprocess_steps(im)
    steps = preprocess_steps(jpg)
    # the ringing next to the strokes would stretch the box; with the lossy floor it does not
    np.testing.assert_allclose(steps["bbox"], clean["bbox"], atol=2)
    assert corr(steps["mnist"], clean["mnist"]) > 0.98


def test_ink_bbox_keeps_touching_ink_and_drops_far_specks():
    ink = np.zeros((100, 100), np.uint8)
    ink[20:70, 30:40] = 255
    ink[70:75, 40:45] = 10  # faint but touching: kept
    assert ink_bbox(ink) == (20, 75, 30, 45)
    ink[95, 95] = 255  # far speck: ignored
    ink[2, 90] = 255
    assert ink_bbox(ink) == (20, 75, 30, 45)
    big_second_part = ink.copy()
    big_second_part[85:95, 30:40] = 255  # a real second stroke (20% of the mass): kept
    # the speck at row 95 now touches the second stroke's rows, but its column is still apart
    assert ink_bbox(big_second_part) == (20, 95, 30, 45)
    assert ink_bbox(np.zeros((5, 5), np.uint8)) is None


def test_check_ink():
    ink = np.zeros((280, 280), np.uint8)
    with pytest.raises(EmptyImageError):
        check_ink(ink, None)
    ink[100:110, 100:110] = 255  # a compact dot
    with pytest.raises(EmptyImageError, match="dot"):
        check_ink(ink, (100, 110, 100, 110))
    ink[100:200, 100:110] = 255  # a stroke
    check_ink(ink, (100, 200, 100, 110))


def test_stroke_width_measures_known_bars():
    for w in (1, 2, 3, 6):
        img = np.zeros((60, 60), np.float32)
        img[10:50, 20 : 20 + w] = 1.0
        # the two short ends add a little variation: 2*40w / (2*40 + 2w)
        assert stroke_width(img) == pytest.approx(2 * 40 * w / (80 + 2 * w), rel=1e-5)
        blurred = np.asarray(Image.fromarray(img * 255).convert("L").filter(ImageFilter.BoxBlur(1)),
                             np.float32) / 255
        if w >= 3:  # blur narrower than the stroke (the core stays saturated) changes nothing
            assert stroke_width(blurred) == pytest.approx(stroke_width(img), rel=0.1)
    tight = np.ones((40, 3), np.float32)  # a bar filling its array: the outside is paper
    assert stroke_width(tight) == pytest.approx(stroke_width(np.pad(tight, 2)))
    assert stroke_width(tight) == pytest.approx(2 * 40 * 3 / (80 + 6))
    batch = np.zeros((2, 10, 10))
    batch[1, 2:8, 4:6] = 1
    np.testing.assert_allclose(stroke_width(batch), [0.0, 2 * 12 / 16])


def test_fit_box_keeps_aspect_and_range():
    crop = np.zeros((200, 50), np.uint8)
    crop[:, 20:30] = 255
    work = fit_box(crop)
    assert work.shape == (80, 20) and work.dtype == np.float32
    assert work.max() == pytest.approx(1.0) and work.min() == 0.0
    assert fit_box(np.full((10, 5), 255, np.uint8)).shape == (80, 40)


def _ring(thickness, side=80):
    """An '0' as an ellipse ring filling a side x (0.7 side) box, of the given pen width."""
    yy, xx = np.mgrid[0:side, 0 : int(side * 0.7)].astype(np.float32)
    cy, cx = (side - 1) / 2, (int(side * 0.7) - 1) / 2
    r = np.sqrt(((yy - cy) / (side / 2)) ** 2 + ((xx - cx) / (side * 0.35)) ** 2)
    scale = side / 2
    return np.clip((1 - r) * scale + 0.5, 0, 1) * np.clip((r - 1) * scale + thickness + 0.5, 0, 1)


def test_normalize_stroke_thins_thickens_and_leaves_mnist_widths():
    for pen in (1.5, 30):  # hairline and felt-tip at the 80 px working scale
        img = _ring(pen)
        before = stroke_width(shrink_to_box(img))
        assert not MNIST_STROKE_KEEP[0] <= before <= MNIST_STROKE_KEEP[1]
        final = stroke_width(shrink_to_box(normalize_stroke(img)))
        # steps are ~0.5 px in the final image (coarser for fat strokes): near the target quartile
        assert MNIST_STROKE_TARGET[0] - 0.4 <= final <= MNIST_STROKE_TARGET[1] + 0.4, (pen, final)
    for pen in (8, 24):  # about 2 and 4 px in 28x28: widths MNIST has, left alone
        ok = _ring(pen)
        assert MNIST_STROKE_KEEP[0] <= stroke_width(shrink_to_box(ok)) <= MNIST_STROKE_KEEP[1]
        assert normalize_stroke(ok) is ok


def test_shrink_to_box_crops_scales_and_normalises_contrast():
    work = np.zeros((100, 100), np.float32)
    work[10:90, 40:60] = 0.5  # faint ink: becomes 1.0
    small = shrink_to_box(work)
    assert small.shape == (20, 5) and small.max() == pytest.approx(1.0)
    u8 = shrink_to_box((work * 255).astype(np.uint8))
    np.testing.assert_allclose(u8, small, atol=0.02)


def test_center_of_mass_and_place_by_mass():
    img = np.zeros((5, 7), np.float32)
    img[1, 2] = 1.0
    img[3, 6] = 3.0
    assert center_of_mass(img) == pytest.approx((2.5, 5.0))
    small = np.zeros((20, 10), np.float32)
    small[:, 0] = 1.0  # all mass on the left edge
    out = place_by_mass(small)
    assert out.shape == (28, 28)
    assert center_of_mass(out) == pytest.approx((14.0, 14.0), abs=0.5)
    edge = np.zeros((20, 20), np.float32)
    edge[0, 0] = 1.0  # centre of mass in a corner: shift limited, nothing falls off
    out = place_by_mass(edge)
    assert out.sum() == 1.0


def test_preprocess_steps_match_to_mnist():
    im = draw_nine(fg=0, bg=255)
    steps = preprocess_steps(im)
    assert set(steps) >= {"gray", "ink", "bbox", "work", "adjusted", "box", "mnist"}
    np.testing.assert_array_equal(steps["mnist"], to_mnist(im))
    rgba = np.asarray(draw_nine(fg=(0, 0, 0, 255), bg=(0, 0, 0, 0), mode="RGBA"))
    np.testing.assert_array_equal(preprocess_steps(rgba)["mnist"], canvas_to_mnist(rgba))


def test_canvas_to_mnist_rejects_wrong_shapes():
    for bad in (np.zeros((28, 28), np.uint8), np.zeros((28, 28, 3), np.uint8),
                np.zeros((28, 28, 4), np.float32), np.zeros((2, 2, 4), np.uint8)):
        with pytest.raises(DataError):
            canvas_to_mnist(bad)
