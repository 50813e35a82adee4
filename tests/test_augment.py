"""augment: random affine transforms of (n, 784) batches, checked against known geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scratchnet import augment as aug
from scratchnet.augment import affine_batch, augment_batch, random_affine_params

SAMPLE = Path(aug.__file__).parent / "data" / "mnist_sample.npz"


@pytest.fixture(scope="module")
def digits():
    with np.load(SAMPLE) as d:
        return (d["images"][:300] / np.float32(255)).astype(np.float32)


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
    import threading

    p = random_affine_params(len(digits), np.random.default_rng(9))
    want = affine_batch(digits, p)
    got = {}

    def work(k):
        for size in (len(digits), 7, len(digits)):  # workspace rebuilt for each size change
            res = affine_batch(digits[:size], p[:size])
        got[k] = res

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(3):
        np.testing.assert_array_equal(got[k], want)
    np.testing.assert_array_equal(affine_batch(digits[:7], p[:7]), want[:7])
