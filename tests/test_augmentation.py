"""nl.preprocessing.random_shift: every image moved by its own whole-pixel (dy, dx).

The oracle is the definition, pixel by pixel in plain Python:
``out[n][y][x] = X[n][y - dy][x - dx]`` when that pixel is inside the image, else ``fill``.
"""

from __future__ import annotations

import numpy as np
import pytest

import nnlib as nl
from nnlib.preprocessing import random_shift


def _oracle(images, shifts, fill):
    n, H, W = images.shape
    out = np.empty_like(images)
    for k in range(n):
        dy, dx = (int(v) for v in shifts[k])
        for y in range(H):
            for x in range(W):
                sy, sx = y - dy, x - dx
                out[k, y, x] = images[k, sy, sx] if 0 <= sy < H and 0 <= sx < W else fill
    return out


@pytest.mark.parametrize("layout", ["flat", "images"])
@pytest.mark.parametrize(
    "shape, max_shift, dtype, fill",
    [((8, 8), 2, np.float32, 0.0), ((5, 7), 3, np.float64, -1.5), ((6, 4), 1, np.uint8, 7)],
)
def test_every_image_moves_by_its_own_shift(layout, shape, max_shift, dtype, fill):
    rng = np.random.default_rng(0)
    images = (rng.integers(1, 200, (40, *shape))).astype(dtype)
    X = images.reshape(40, -1) if layout == "flat" else images
    keep = X.copy()
    kwargs = {"image_shape": shape} if layout == "flat" and shape != (8, 8) else {}
    out, shifts = random_shift(X, max_shift, seed=3, fill=fill, return_shifts=True, **kwargs)
    assert out.shape == X.shape and out.dtype == X.dtype
    assert shifts.shape == (40, 2) and np.abs(shifts).max() <= max_shift
    assert np.abs(shifts).max() == max_shift  # the extreme shifts are drawn too
    np.testing.assert_array_equal(out.reshape(images.shape), _oracle(images, shifts, fill))
    np.testing.assert_array_equal(X, keep)  # the input is unchanged
    assert not np.shares_memory(out, X)


def test_a_single_pixel_lands_where_the_shift_says():
    H = W = 8
    n = 400
    ys, xs = np.random.default_rng(1).integers(0, 8, (2, n))
    X = np.zeros((n, H, W))
    X[np.arange(n), ys, xs] = 1.0
    out, shifts = random_shift(X, 3, seed=2, return_shifts=True)
    inside = 0
    for k in range(n):
        ty, tx = ys[k] + shifts[k, 0], xs[k] + shifts[k, 1]  # dy down, dx right
        if 0 <= ty < H and 0 <= tx < W:
            inside += 1
            assert out[k, ty, tx] == 1.0 and out[k].sum() == 1.0, k
        else:
            assert out[k].sum() == 0.0, k  # moved out: dropped
    assert 0 < inside < n  # both cases happened


def test_a_zero_shift_is_the_identity():
    X, _ = nl.datasets.load_digits()
    out, shifts = random_shift(X, 0, seed=0, return_shifts=True)
    assert (shifts == 0).all()
    np.testing.assert_array_equal(out, X)
    assert out is not X and not np.shares_memory(out, X)


def test_the_pixel_mass_is_kept_when_the_content_stays_inside():
    rng = np.random.default_rng(4)
    s = 2
    X = np.zeros((300, 10, 9), np.int64)
    X[:, s:-s, s:-s] = rng.integers(0, 16, (300, 10 - 2 * s, 9 - 2 * s))  # border of s empty
    out = random_shift(X, s, seed=5)
    np.testing.assert_array_equal(out.sum(axis=(1, 2)), X.sum(axis=(1, 2)))
    assert not np.array_equal(out, X)
    sorted_in = np.sort(X.reshape(300, -1), axis=1)
    np.testing.assert_array_equal(np.sort(out.reshape(300, -1), axis=1), sorted_in)


def test_the_same_seed_gives_the_same_shifts_and_a_generator_moves_on():
    X, _ = nl.datasets.load_digits()
    a = random_shift(X, 2, seed=7)
    np.testing.assert_array_equal(a, random_shift(X, 2, seed=7))
    assert not np.array_equal(a, random_shift(X, 2, seed=8))
    g1, g2 = np.random.default_rng(11), np.random.default_rng(11)
    first = random_shift(X, 2, seed=g1)
    np.testing.assert_array_equal(first, random_shift(X, 2, seed=g2))
    assert not np.array_equal(first, random_shift(X, 2, seed=g1))  # g1 was advanced


def test_the_shifts_are_uniform_and_independent():
    """25 000 images, max_shift 2: each (dy, dx) of the 25 has probability 1/25; dy and
    dx independent of each other and from one image to the next."""
    n, s = 25_000, 2
    X = np.zeros((n, 5, 5), np.float32)
    _, shifts = random_shift(X, s, seed=12, return_shifts=True)
    counts = np.zeros((5, 5))
    np.add.at(counts, (shifts[:, 0] + s, shifts[:, 1] + s), 1)
    expected = n / 25
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 52.6  # chi-square, 24 degrees of freedom: P(chi2 > 52.6) = 0.0006
    for axis in (0, 1):
        lag = np.corrcoef(shifts[:-1, axis], shifts[1:, axis])[0, 1]
        assert abs(lag) < 4 / np.sqrt(n), (axis, lag)  # next image: uncorrelated
    assert abs(np.corrcoef(shifts[:, 0], shifts[:, 1])[0, 1]) < 4 / np.sqrt(n)


def test_a_non_contiguous_batch_is_shifted_as_its_copy():
    X, _ = nl.datasets.load_digits()
    view = X[::3]
    np.testing.assert_array_equal(
        random_shift(view, 1, seed=0), random_shift(np.ascontiguousarray(view), 1, seed=0)
    )
    empty = random_shift(X[:0], 2, seed=0)
    assert empty.shape == (0, 64) and empty.dtype == X.dtype


@pytest.mark.parametrize(
    "X, kwargs, error, match",
    [
        (
            np.zeros(64),
            {},
            ValueError,
            r"\(N, H \* W\) flattened or \(N, H, W\); got shape \(64,\)",
        ),
        (np.zeros((2, 1, 8, 8)), {}, ValueError, r"got shape \(2, 1, 8, 8\)"),
        (np.zeros((2, 64), complex), {}, TypeError, "must hold numbers .*complex128"),
        (np.zeros((2, 64), bool), {}, TypeError, "dtype bool"),
        (np.zeros((2, 60)), {}, ValueError, "60 features per row, not a square image"),
        (np.zeros((2, 60)), {"image_shape": (8, 8)}, ValueError, r"\(8, 8\) has 64 pixels.* 60"),
        (np.zeros((2, 6, 6)), {"image_shape": (4, 9)}, ValueError, r"shape \(6, 6\).*\(4, 9\)"),
        (np.zeros((2, 64)), {"image_shape": 8}, ValueError, "pair of positive ints"),
        (np.zeros((2, 64)), {"image_shape": (8, 0)}, ValueError, "pair of positive ints"),
        (np.zeros((2, 0)), {}, ValueError, "no pixels"),
        (np.zeros((2, 64)), {"max_shift": -1}, ValueError, r"int in 0\.\.7 .*got -1"),
        (np.zeros((2, 64)), {"max_shift": 8}, ValueError, r"int in 0\.\.7 .*8 x 8 image\); got 8"),
        (np.zeros((2, 64)), {"max_shift": 1.0}, ValueError, "got 1.0"),
        (np.zeros((2, 64)), {"max_shift": True}, ValueError, "got True"),
        (np.zeros((2, 64)), {"fill": "0"}, TypeError, "fill must be a number; got str"),
        (np.zeros((2, 64), np.uint8), {"fill": 0.5}, ValueError, r"fill=0.5 .* uint8.*0\.\.255"),
        (np.zeros((2, 64), np.uint8), {"fill": 300}, ValueError, "fill=300 cannot be stored"),
        (np.zeros((2, 64), np.int32), {"fill": float("nan")}, ValueError, "fill=nan"),
        (np.zeros((2, 64)), {"seed": "a"}, TypeError, "seed must be an int"),
        (np.zeros((2, 64)), {"return_shifts": 1}, TypeError, "return_shifts must be True or"),
    ],
)
def test_bad_input_is_refused_with_what_was_expected(X, kwargs, error, match):
    with pytest.raises(error, match=match):
        random_shift(X, **kwargs)
