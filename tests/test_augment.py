"""augment: random affine, elastic, thickness and flag variations of (n, 784) batches, checked
against known geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scratchnet import augment as aug
from scratchnet.augment import (
    AUGMENT_PARTS,
    affine_batch,
    augment_batch,
    change_thickness,
    draw_flags,
    gaussian_matrix,
    parse_augment,
    random_affine_params,
    random_displacement,
    random_flag_params,
)
from scratchnet.errors import ConfigError
from tools.testkit import run_threads

SAMPLE = Path(aug.__file__).parent / "data" / "mnist_sample.npz"


@pytest.fixture(scope="module")
def digits():
    with np.load(SAMPLE) as d:
        return (d["images"][:300] / np.float32(255)).astype(np.float32)


@pytest.fixture(scope="module")
def labelled():
    """300 sample digits with their labels, a third of them 1s."""
    with np.load(SAMPLE) as d:
        X, y = d["images"], d["labels"]
    idx = np.concatenate([np.flatnonzero(y == 1)[:100], np.flatnonzero(y != 1)[:200]])
    return (X[idx] / np.float32(255)).astype(np.float32), y[idx].astype(np.int64)


def com(X):
    """(n, 2) centres of mass (row, col) of (n, 784) images."""
    img = X.reshape(-1, 28, 28).astype(np.float64)
    m = img.sum((1, 2))
    idx = np.arange(28)
    return np.stack([(img.sum(2) @ idx) / m, (img.sum(1) @ idx) / m], axis=1)


def params(n, ty=0.0, tx=0.0, deg=0.0, s=1.0):
    p = np.zeros((n, 4), np.float32)
    p[:] = (ty, tx, np.deg2rad(deg), s)
    return p


def test_zero_range_is_the_identity(digits):
    out = augment_batch(digits, np.random.default_rng(0), max_shift=0, max_rotate_deg=0,
                        scale_range=(1, 1))
    np.testing.assert_array_equal(out, digits)


def test_shape_dtype_range_and_out_buffer(digits):
    rng = np.random.default_rng(1)
    buf = np.full(digits.shape, -7, np.float32)
    out = augment_batch(digits, rng, out=buf)
    assert out is buf and out.shape == digits.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not np.array_equal(out, digits)  # it did something


def test_in_place_matches_out_of_place(digits):
    a = augment_batch(digits, np.random.default_rng(5))
    X = digits.copy()
    b = augment_batch(X, np.random.default_rng(5), out=X)
    assert b is X
    np.testing.assert_array_equal(a, b)


def test_deterministic_given_the_seed(digits):
    a = augment_batch(digits, np.random.default_rng(42))
    b = augment_batch(digits, np.random.default_rng(42))
    c = augment_batch(digits, np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("ty,tx", [(1, 0), (0, 1), (-1, 0), (0, -1), (0.5, -0.25), (2, 2)])
def test_shift_moves_the_centre_of_mass_by_the_shift(digits, ty, tx):
    X = digits[:50]
    out = affine_batch(X, params(len(X), ty, tx))
    kept = np.abs(out.sum(1) - X.sum(1)) < 1e-3  # (a few MNIST digits touch the frame)
    assert kept.mean() > 0.9
    np.testing.assert_allclose(com(out[kept]) - com(X[kept]), np.tile([ty, tx], (kept.sum(), 1)),
                               atol=1e-3)
    if float(ty).is_integer() and float(tx).is_integer():  # whole pixels: an exact copy
        img = X[kept].reshape(-1, 28, 28)
        moved = np.roll(img, (int(ty), int(tx)), axis=(1, 2))  # nothing wraps: borders are 0
        np.testing.assert_array_equal(out[kept].reshape(-1, 28, 28), moved)


def test_rotation_turns_clockwise_about_the_centre():
    X = np.zeros((1, 784), np.float32)
    X[0, 10 * 28 + 14] = 1.0  # 4 px above the centre (14, 14)
    out = affine_batch(X, params(1, deg=90)).reshape(28, 28)
    assert out[14, 18] == pytest.approx(1.0, abs=1e-5)  # now 4 px to the right
    assert out.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("deg", [-12, 7, 12])
def test_rotation_preserves_mass_and_centre(digits, deg):
    X = digits[:100]
    out = affine_batch(X, params(len(X), deg=deg))
    ratio = out.sum(1) / X.sum(1)
    assert np.abs(ratio - 1).max() < 0.05 and abs(ratio.mean() - 1) < 0.01
    assert np.abs(com(out) - com(X)).max() < 0.7  # MNIST centres sit at (14, 14) +- a little


@pytest.mark.parametrize("s", [0.9, 1.1])
def test_scale_changes_mass_by_its_square(digits, s):
    X = digits[:100]
    ratio = affine_batch(X, params(len(X), s=s)).sum(1) / X.sum(1)
    assert ratio.mean() == pytest.approx(s * s, rel=0.02)


def test_content_moved_out_of_the_frame_is_dropped_not_wrapped():
    X = np.zeros((1, 784), np.float32)
    X[0, 27 * 28 + 27] = 1.0  # bottom-right corner pixel
    out = affine_batch(X, params(1, ty=3.0, tx=3.0))
    assert out.sum() == 0.0
    out = affine_batch(X, params(1, ty=-300.0, tx=500.0))
    assert out.sum() == 0.0


def test_random_params_respect_the_ranges():
    p = random_affine_params(5000, np.random.default_rng(0), max_shift=1.5, max_rotate_deg=10,
                             scale_range=(0.8, 1.2))
    assert p.dtype == np.float32 and p.shape == (5000, 4)
    assert np.abs(p[:, :2]).max() <= 1.5 and np.abs(p[:, :2]).max() > 1.4
    assert np.abs(p[:, 2]).max() <= np.deg2rad(10) + 1e-6
    assert 0.8 <= p[:, 3].min() < 0.82 and 1.18 < p[:, 3].max() <= 1.2
    assert abs(p[:, 0].mean()) < 0.05 and abs(p[:, 3].mean() - 1.0) < 0.01


def test_large_batches_are_processed_in_chunks_with_the_same_result():
    rng = np.random.default_rng(3)
    X = rng.random((1200, 784), dtype=np.float32)
    p = random_affine_params(1200, rng)
    whole = affine_batch(X, p)
    parts = [affine_batch(X[i : i + 100], p[i : i + 100]) for i in range(0, 1200, 100)]
    np.testing.assert_array_equal(whole, np.concatenate(parts))


def test_augmented_digits_stay_recognisable(digits):
    out = augment_batch(digits, np.random.default_rng(0))
    a = digits - digits.mean(1, keepdims=True)
    b = out - out.mean(1, keepdims=True)
    r = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    assert 0.3 < r.mean() < 0.95  # changed, but still the same digit roughly in place


def test_bad_arguments_raise():
    X = np.zeros((4, 784), np.float32)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        augment_batch(np.zeros((4, 28, 28), np.float32), rng)
    with pytest.raises(ValueError):
        augment_batch(X, rng, scale_range=(1.2, 0.8))
    with pytest.raises(ValueError):
        augment_batch(X, rng, max_shift=-1)
    with pytest.raises(ValueError):
        augment_batch(X, rng, out=np.zeros((4, 784), np.float64))
    with pytest.raises(ValueError):
        affine_batch(X, np.zeros((3, 4), np.float32))
    assert augment_batch(np.zeros((0, 784), np.float32), rng).shape == (0, 784)


def test_threads_and_changing_batch_sizes_do_not_share_buffers(digits):
    p = random_affine_params(len(digits), np.random.default_rng(9))
    want = affine_batch(digits, p)
    got = {}

    def work(k):
        for size in (len(digits), 7, len(digits)):  # workspace rebuilt for each size change
            res = affine_batch(digits[:size], p[:size])
        got[k] = res

    run_threads(work, 3)
    for k in range(3):
        np.testing.assert_array_equal(got[k], want)
    np.testing.assert_array_equal(affine_batch(digits[:7], p[:7]), want[:7])


# --------------------------------------------------------------------------- parts and parsing


@pytest.mark.parametrize("value,want", [
    (True, ("affine",)), (False, ()), (None, ()), ("", ()), ("none", ()), (" None ", ()),
    ("affine", ("affine",)), ("affine+elastic+thickness+flag", AUGMENT_PARTS),
    ("flag,affine", ("affine", "flag")), ("Elastic + thickness", ("elastic", "thickness")),
    (["flag", "elastic"], ("elastic", "flag")), (("affine",), ("affine",)), ("all", AUGMENT_PARTS),
    ("affine+affine", ("affine",)), (np.bool_(True), ("affine",)),
])
def test_parse_augment(value, want):
    assert parse_augment(value) == want


@pytest.mark.parametrize("value", ["affine+blur", "rotate", ["affine", "noise"], 3, 1.5, {"affine": 1}])
def test_parse_augment_refuses_unknown_parts_naming_the_valid_ones(value):
    with pytest.raises(ConfigError) as err:
        parse_augment(value)
    msg = str(err.value)
    assert "\n" not in msg and ("affine" in msg and "elastic" in msg if isinstance(value, (str, list)) else True)


def test_augment_batch_refuses_unknown_parts_and_flag_without_labels(labelled):
    X, y = labelled
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="thickness"):
        augment_batch(X, rng, parts="affine+wobble")
    with pytest.raises(ValueError, match="labels"):
        augment_batch(X, rng, parts="affine+flag")
    with pytest.raises(ValueError):
        augment_batch(X, rng, y=y[:10], parts="flag")
    augment_batch(X, rng, parts="affine+elastic+thickness")  # no labels needed without flag


def test_default_parts_draw_exactly_the_affine_of_before(digits):
    want = affine_batch(digits, random_affine_params(len(digits), np.random.default_rng(4)))
    np.testing.assert_array_equal(augment_batch(digits, np.random.default_rng(4)), want)
    np.testing.assert_array_equal(augment_batch(digits, np.random.default_rng(4), parts=True), want)


def test_no_parts_is_a_copy(labelled):
    X, y = labelled
    out = augment_batch(X, np.random.default_rng(0), y=y, parts="none")
    assert out is not X
    np.testing.assert_array_equal(out, X)


@pytest.mark.parametrize("parts", ["elastic", "thickness", "flag", "affine+elastic", "all"])
def test_every_part_range_out_buffer_in_place_and_determinism(labelled, parts):
    X, y = labelled
    buf = np.full(X.shape, -7, np.float32)
    out = augment_batch(X, np.random.default_rng(8), y=y, parts=parts, out=buf)
    assert out is buf and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not np.array_equal(out, X)
    again = augment_batch(X, np.random.default_rng(8), y=y, parts=parts)
    np.testing.assert_array_equal(again, out)
    Xc = X.copy()
    in_place = augment_batch(Xc, np.random.default_rng(8), y=y, parts=parts, out=Xc)
    assert in_place is Xc
    np.testing.assert_array_equal(in_place, out)
    assert not np.array_equal(augment_batch(X, np.random.default_rng(9), y=y, parts=parts), out)


def test_all_parts_on_a_batch_larger_than_a_chunk_and_on_nothing():
    rng = np.random.default_rng(2)
    X = rng.random((1100, 784), dtype=np.float32) * (rng.random((1100, 1), dtype=np.float32) > 0.1)
    y = rng.integers(0, 10, 1100)
    a = augment_batch(X, np.random.default_rng(1), y=y, parts="all")
    b = augment_batch(X, np.random.default_rng(1), y=y, parts="all")
    np.testing.assert_array_equal(a, b)
    assert a.shape == X.shape and 0 <= a.min() and a.max() <= 1
    empty = np.zeros((0, 784), np.float32)
    assert augment_batch(empty, rng, y=np.zeros(0, int), parts="all").shape == (0, 784)


# --------------------------------------------------------------------------- elastic


def test_gaussian_matrix_is_scipys_gaussian_filter():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    U = rng.random((28, 28)) * 2 - 1
    for sigma in (4.0, 1.5):
        G = gaussian_matrix(sigma).astype(np.float64)
        np.testing.assert_allclose(G @ U @ G.T, ndimage.gaussian_filter(U, sigma, mode="constant"), atol=1e-6)


def test_gaussian_matrix_rows_are_a_normalised_kernel():
    G = gaussian_matrix(4.0)
    assert G.shape == (28, 28) and G.dtype == np.float32 and not G.flags.writeable
    np.testing.assert_allclose(G, G.T)
    assert G[14].sum() == pytest.approx(1.0, abs=1e-3)  # the whole kernel fits (radius 16: nearly)
    assert G[0].sum() < 0.6  # zero outside: an edge row sees half the kernel
    assert G[14, 14] == G[14].max() and G[14, 10] == pytest.approx(G[14, 14] * np.exp(-0.5), rel=1e-4)


def test_exact_fields_are_g_u_gt_of_uniform_noise():
    n = 5
    D = random_displacement(n, np.random.default_rng(3), alpha=34, sigma=4, exact=True)
    assert D.shape == (2, n, 28, 28) and D.dtype == np.float32
    # the same noise, drawn the same way, smoothed one field at a time
    U = np.random.default_rng(3).random((28, 2 * n * 28), dtype=np.float32).astype(np.float64)
    U = (2 * U - 1).reshape(28, 2, n, 28).transpose(1, 2, 0, 3)
    G = gaussian_matrix(4.0).astype(np.float64)
    for comp in range(2):
        for i in range(n):
            np.testing.assert_allclose(D[comp, i], 34 * G @ U[comp, i] @ G.T, atol=1e-4)


def test_fast_fields_have_the_covariance_of_simards():
    alpha, sigma = 34.0, 4.0
    G = gaussian_matrix(sigma).astype(np.float64)
    K = G @ G.T  # Cov(G U G.T)[(a,b), (c,d)] = Var(u) K[a,c] K[b,d], Var(u) = 1/3
    want_var = alpha**2 / 3 * np.outer(np.diag(K), np.diag(K))
    want_corr = K[14, 15] / np.sqrt(K[14, 14] * K[15, 15])  # neighbours along a row or column
    for exact in (False, True):
        D = random_displacement(2000, np.random.default_rng(0), alpha=alpha, sigma=sigma, exact=exact)
        D = D.astype(np.float64).reshape(4000, 28, 28)
        var = (D * D).mean(0)
        np.testing.assert_allclose(var[4:24, 4:24], want_var[4:24, 4:24], rtol=0.1)
        corr = (D[:, 14, 14] * D[:, 14, 15]).mean() / np.sqrt(var[14, 14] * var[14, 15])
        assert corr == pytest.approx(want_corr, abs=0.02) and corr > 0.95  # smooth
        assert abs(D.mean()) < 0.05
    assert np.sqrt(want_var[14, 14]) == pytest.approx(1.38, abs=0.02)  # px at the centre


def test_zero_displacement_is_the_identity(digits):
    ident = params(len(digits))
    zero = np.zeros((2, len(digits), 28, 28), np.float32)
    np.testing.assert_array_equal(affine_batch(digits, ident, displacement=zero), digits)
    out = augment_batch(digits, np.random.default_rng(0), parts="elastic", alpha=0.0)
    np.testing.assert_array_equal(out, digits)


def test_displacement_is_added_to_the_source_position(digits):
    """A constant field of (1 row, -2 columns) reads each pixel from one row down, two columns
    left: the digit moves up 1 and right 2, exactly as the shift (-1, 2)."""
    X = digits[:40]
    field = np.zeros((2, len(X), 28, 28), np.float32)
    field[0], field[1] = 1.0, -2.0
    np.testing.assert_array_equal(affine_batch(X, params(len(X)), displacement=field),
                                  affine_batch(X, params(len(X), ty=-1, tx=2)))
    # with an affine map A, the output reads X at A(p) + d: the field's shift, then A
    p = params(len(X), deg=90)
    np.testing.assert_allclose(affine_batch(X, p, displacement=field),
                               affine_batch(affine_batch(X, params(len(X), ty=-1, tx=2)), p), atol=1e-5)


def test_elastic_keeps_ink_mass_and_place_roughly_but_changes_shapes(digits):
    out = augment_batch(digits, np.random.default_rng(6), parts="elastic")
    ratio = out.sum(1) / digits.sum(1)  # a smooth field squeezes or stretches a digit locally
    assert abs(ratio.mean() - 1) < 0.03 and np.median(np.abs(ratio - 1)) < 0.15
    assert np.median(np.abs(com(out) - com(digits)).max(1)) < 1.0
    changed = np.abs(out - digits).sum(1) / digits.sum(1)
    assert np.median(changed) > 0.2  # a real distortion, not a rounding error


def test_bad_displacement_and_elastic_arguments_raise(digits):
    with pytest.raises(ValueError):
        affine_batch(digits, params(len(digits)), displacement=np.zeros((len(digits), 2, 28, 28)))
    with pytest.raises(ValueError):
        random_displacement(3, np.random.default_rng(0), sigma=0)
    with pytest.raises(ValueError):
        augment_batch(digits, np.random.default_rng(0), parts="elastic", alpha=-1)


# --------------------------------------------------------------------------- thickness


def test_thickness_known_geometry():
    X = np.zeros((3, 28, 28), np.float32)
    X[0, 10, 10] = 1.0  # a dot grows into a plus
    X[1, 9:12, 9:12] = 1.0  # a 3x3 square erodes to its centre
    X[2, 5:20, 14] = 1.0  # a 1-px line: full erosion would delete it
    out = change_thickness(X.reshape(3, 784), np.array([1.0, -1.0, -1.0], np.float32),
                           min_mass=0.0).reshape(3, 28, 28)
    plus = np.zeros((28, 28), np.float32)
    plus[9:12, 10] = plus[10, 9:12] = 1.0
    np.testing.assert_array_equal(out[0], plus)
    centre = np.zeros((28, 28), np.float32)
    centre[10, 10] = 1.0
    np.testing.assert_array_equal(out[1], centre)
    # with the default guard, the line keeps half its ink and its brightest value
    kept = change_thickness(X[2:].reshape(1, 784), np.array([-1.0], np.float32)).reshape(28, 28)
    assert kept.sum() == pytest.approx(X[2].sum(), rel=1e-5) and kept.max() == 1.0
    half = change_thickness(X[:1].reshape(1, 784), np.array([0.5], np.float32)).reshape(28, 28)
    np.testing.assert_allclose(half, X[0] + 0.5 * (plus - X[0]))


def test_thickness_dilation_adds_ink_erosion_removes_some_but_keeps_the_digit(digits):
    n = len(digits)
    thick = change_thickness(digits, np.ones(n, np.float32))
    thin = change_thickness(digits, -np.ones(n, np.float32))
    same = change_thickness(digits, np.zeros(n, np.float32))
    np.testing.assert_array_equal(same, digits)
    m0 = digits.sum(1)
    assert (thick.sum(1) > 1.2 * m0).all() and (thick >= digits).all()
    assert (thin.sum(1) < m0).all() and (thin.sum(1) >= 0.5 * m0 - 1e-3).all()
    np.testing.assert_allclose(thin.max(1), digits.max(1), rtol=1e-5)  # thinner, not fainter
    assert (thin.max(1) >= 0).all() and thin.max() <= 1


def test_thickness_range_is_respected(digits):
    with pytest.raises(ValueError):
        augment_batch(digits, np.random.default_rng(0), parts="thickness", thickness_range=(-2, 1))
    grown = augment_batch(digits, np.random.default_rng(0), parts="thickness", thickness_range=(0, 1))
    assert (grown >= digits).all() and (grown.sum(1) > digits.sum(1)).mean() > 0.95


# --------------------------------------------------------------------------- flag and foot


def _line_one():
    """A vertical 2-px stroke in columns 14-15, rows 4-23: a plain 1, 20 px tall."""
    X = np.zeros((1, 28, 28), np.float32)
    X[0, 4:24, 14:16] = 1.0
    return X.reshape(1, 784)


def test_flag_on_a_plain_one_goes_down_left_from_its_top():
    X = _line_one()
    for deg, length in ((20, 0.2), (45, 0.3), (60, 0.4)):
        p = np.array([[1, length, np.deg2rad(deg), 2.0, 0, 0.4]], np.float32)
        out = draw_flags(X, np.array([1]), p).reshape(28, 28)
        added = out - X.reshape(28, 28)
        assert added.min() >= 0 and out.max() <= 1
        r, c = np.nonzero(added > 0.05)
        assert r.min() >= 4 and c.max() <= 16  # nothing above the top or right of the stroke
        reach = 20 * length
        assert r.max() <= 5 + reach * np.sin(np.deg2rad(deg)) + 1.5  # ends near its length
        end = (5 + reach * np.sin(np.deg2rad(deg)), 14.5 - reach * np.cos(np.deg2rad(deg)))
        assert c.min() == pytest.approx(end[1], abs=1.6)
        assert out[round(end[0]), round(end[1])] > 0.75  # a real stroke up to its end
        assert out[round((5 + end[0]) / 2), round((14.5 + end[1]) / 2)] > 0.75


def test_foot_is_a_horizontal_stroke_at_the_bottom():
    X = _line_one()
    p = np.array([[1, 0.3, np.deg2rad(40), 2.0, 1, 0.5]], np.float32)
    no_foot = draw_flags(X, np.array([1]), p * np.array([1, 1, 1, 1, 0, 1], np.float32))
    out = draw_flags(X, np.array([1]), p)
    foot = (out - no_foot).reshape(28, 28)
    r, c = np.nonzero(foot > 0.05)
    assert r.min() >= 20 and r.max() <= 23  # at the bottom, not below it
    assert c.min() <= 11 and c.max() >= 18  # 10 px long, centred on the stroke (14.5)


def test_flags_only_touch_ones_and_only_add_ink_near_their_top(labelled):
    X, y = labelled
    rng = np.random.default_rng(5)
    p = random_flag_params(len(X), rng, flag_fraction=0.5, foot_fraction=0.0)
    out = draw_flags(X, y, p)
    np.testing.assert_array_equal(out[y != 1], X[y != 1])
    added = (out - X).reshape(-1, 28, 28)
    assert added.min() >= 0 and out.max() <= 1
    flagged = np.flatnonzero(added.reshape(len(X), -1).max(1) > 0.1)
    assert set(y[flagged]) == {1} and 30 <= len(flagged) <= 70  # about half the 100 ones
    for i in flagged:
        rows = np.flatnonzero(X[i].reshape(28, 28).max(1) > 0.5)
        top, height = rows[0], rows[-1] - rows[0] + 1
        new = np.flatnonzero(added[i].max(1) > 0.05)
        assert new.min() >= top - 1 and new.max() <= top + 0.5 * height + 1
    none = draw_flags(X, y, random_flag_params(len(X), rng, flag_fraction=0.0))
    np.testing.assert_array_equal(none, X)


def test_flags_follow_the_label_asked_for_and_skip_blank_images():
    X = np.concatenate([_line_one(), _line_one(), np.zeros((1, 784), np.float32)])
    y = np.array([7, 1, 7])
    p = random_flag_params(3, np.random.default_rng(0), flag_fraction=1.0)
    out = draw_flags(X, y, p, label=7)
    assert out[0].sum() > X[0].sum()
    np.testing.assert_array_equal(out[1:], X[1:])


def test_flagged_training_batches_still_look_like_their_digits(labelled):
    X, y = labelled
    out = augment_batch(X, np.random.default_rng(0), y=y, parts="all")
    a = X - X.mean(1, keepdims=True)
    b = out - out.mean(1, keepdims=True)
    r = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    assert 0.2 < r.mean() < 0.9


def test_threads_get_the_same_numbers_with_every_part(labelled):
    X, y = labelled
    want = augment_batch(X, np.random.default_rng(11), y=y, parts="all")
    got = {}

    def work(k):
        for size in (len(X), 9, len(X)):
            res = augment_batch(X[:size], np.random.default_rng(11), y=y[:size], parts="all")
        got[k] = res

    run_threads(work, 3)
    for k in range(3):
        np.testing.assert_array_equal(got[k], want)


# --------------------------------------------------------------------------- in the training loop


def test_train_config_takes_parts_and_refuses_unknown_ones():
    from scratchnet.training import TrainConfig

    TrainConfig(augment="affine+elastic+thickness+flag").validate()
    TrainConfig(augment=True).validate()
    cfg = TrainConfig(augment="flag,affine")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="elastic"):
        TrainConfig(augment="affine+sparkle").validate()


def test_training_passes_the_labels_so_flags_land_on_ones(labelled, monkeypatch):
    from scratchnet import augment as aug_module
    from scratchnet.training import TrainConfig, fit

    X, y = labelled
    label_of = {row.tobytes(): label for row, label in zip(X, y)}
    seen = []
    real = aug_module.augment_batch

    def spy(Xa, rng, *, y=None, parts=("affine",), out=None, **kw):
        assert [label_of[row.tobytes()] for row in Xa] == list(y)  # each image with its label
        seen.append((len(Xa), y.copy(), parts))
        return real(Xa, rng, y=y, parts=parts, out=out, **kw)

    monkeypatch.setattr(aug_module, "augment_batch", spy)
    cfg = TrainConfig(hidden=(8,), epochs=1, batch_size=50, augment="affine+flag", seed=1)
    net, history = fit(cfg, X, y)
    assert history[-1].status == "finished"
    assert seen and all(parts == ("affine", "flag") and len(yy) == n for n, yy, parts in seen)
    assert sum(len(yy) for _, yy, _ in seen) == len(X)  # every image once, with its own label
    assert sorted(np.concatenate([yy for _, yy, _ in seen])) == sorted(y)
