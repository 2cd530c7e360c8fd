"""Convolution and max pooling (nnlib/ops/conv.py, nnlib.functional, the layers).

Oracles: the NumPy reference against scipy.signal.correlate (an independent formula, one
image plane at a time) and against central differences; the cpu kernels (and their first
versions) against the reference within the classical rounding bound of a sum; max pooling
against explicit loops over the windows. The cuda kernels are in tests/test_conv_cuda.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from cases import conv_data
from scipy.signal import convolve, correlate

import nnlib as nl
import nnlib.functional as F
from nnlib._backend import dispatch
from nnlib.gradient_check import numerical_gradient, relative_error
from nnlib.layers import Conv2D, MaxPool2D
from nnlib.ops import conv
from nnlib.ops._launch import KERNELS

EPS = {np.dtype(np.float32): np.finfo(np.float32).eps, np.dtype(np.float64): 2.0**-52}
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])

# (N, C, H, W, F, KH, KW, stride, padding)
CASES = [
    (2, 1, 7, 7, 3, 3, 3, 1, 0),  # valid
    (2, 3, 6, 5, 4, 3, 3, 1, 1),  # "same" for a 3x3 kernel
    (1, 2, 8, 8, 2, 5, 5, 1, 2),  # "same" for 5x5
    (2, 2, 7, 6, 3, 3, 3, 2, 1),  # stride 2: 7 + 2 - 3 = 6 is even, 6 + 2 - 3 = 5 is odd
    (1, 3, 9, 9, 2, 3, 2, 2, 0),  # a 3x2 kernel, stride 2, the last row unused
    (3, 2, 4, 4, 5, 1, 1, 1, 0),  # 1x1
    (1, 1, 3, 3, 1, 3, 3, 1, 0),  # the kernel covers the image: one output
]
IDS = ["valid", "same3", "same5", "s2p1", "s2rect", "1x1", "whole"]
PARAMS = pytest.mark.parametrize("case", CASES, ids=IDS)


def _scipy_conv(x, W, b, s, p):
    """y[n, f] = b[f] + sum_c correlate(xpad[n, c], W[f, c], "valid"), every s-th."""
    x, W, b = (a.astype(np.float64) for a in (x, W, b))
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    return np.array(
        [
            [
                sum(correlate(xp[n, c], W[f, c], mode="valid") for c in range(x.shape[1]))[::s, ::s]
                + b[f]
                for f in range(W.shape[0])
            ]
            for n in range(x.shape[0])
        ]
    )


def _assert_within(got, exact, size, terms, dtype, name):
    """|got - exact| <= 2 (terms + 1) eps size + 4 eps |exact| elementwise: the classical
    bound on a sum of ``terms`` products (whatever the order), ``size`` = the same sum
    over absolute values; NaN (an element never written) fails."""
    got = np.asarray(got)
    assert got.shape == exact.shape, f"{name}: shape {got.shape}, expected {exact.shape}"
    assert got.dtype == np.dtype(dtype), f"{name}: dtype {got.dtype}, expected {dtype}"
    eps = EPS[np.dtype(dtype)]
    bound = 2 * (terms + 1) * eps * size + 4 * eps * np.abs(exact)
    err = np.abs(got.astype(np.float64) - exact)
    bad = ~(err <= bound)
    assert not bad.any(), (
        f"{name}: {bad.sum()} elements off, worst error {err.max():.3g} (bound there "
        f"{bound.flat[np.argmax(err)]:.3g})"
    )


def _abs64(*arrays):
    return [np.abs(a.astype(np.float64)) for a in arrays]


# ---------------------------------------------------------------------- the reference


@DTYPES
@PARAMS
def test_reference_forward_matches_scipy_correlate(case, dtype):
    x, W, b, s, p = conv_data(case, dtype)
    exact = _scipy_conv(x, W, b, s, p)
    size = _scipy_conv(*_abs64(x, W, b), s, p)
    terms = W[0].size
    for act in (0, 1):
        y = dispatch("conv2d_forward", "numpy")(x, W, b, s, p, act)
        want = np.maximum(exact, 0) if act else exact
        _assert_within(y, want, size, terms, dtype, f"reference act={act}")
        assert y.flags.c_contiguous


def test_the_scipy_oracle_can_fail():
    """A flipped kernel (true convolution) is told apart from the cross-correlation."""
    x, W, b, s, p = conv_data(CASES[1], np.float64)
    y = dispatch("conv2d_forward", "numpy")(x, W, b, s, p, 0)
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    flipped = sum(convolve(xp[0, c], W[0, c], mode="valid") for c in range(x.shape[1])) + b[0]
    assert np.abs(flipped - y[0, 0]).max() > 0.1
    np.testing.assert_allclose(_scipy_conv(x, W, b, s, p), y, rtol=1e-12, atol=1e-12)


def _loss_grads(case, act, seed=1):
    """float64 data and the central differences of L = sum(conv(x, W, b) * dy)."""
    x, W, b, s, p = conv_data(case, np.float64, seed)
    ref = dispatch("conv2d_forward", "numpy")
    dy = np.random.default_rng(seed + 1).standard_normal(ref(x, W, b, s, p, 0).shape)

    def loss(x_, W_, b_):
        return float(np.sum(ref(x_, W_, b_, s, p, act) * dy))

    numeric = (
        numerical_gradient(lambda v: loss(v, W, b), x),
        numerical_gradient(lambda v: loss(x, v, b), W),
        numerical_gradient(lambda v: loss(x, W, v), b),
    )
    return x, W, b, s, p, dy, numeric


@pytest.mark.parametrize("act", [0, 1], ids=["linear", "relu"])
@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[4]], ids=["same3", "s2p1", "s2rect"])
def test_reference_backward_matches_central_differences(case, act):
    x, W, b, s, p, dy, numeric = _loss_grads(case, act)
    y = dispatch("conv2d_forward", "numpy")(x, W, b, s, p, act)
    if act:
        assert np.min(np.abs(y[y != 0])) > 1e-5, "a kink within eps of the finite difference"
    grads = dispatch("conv2d_backward", "numpy")(dy, x, W, y, s, p, act)
    # NOTE: 1e-6, not cs231n's 1e-7: the loss is (piecewise) linear, so the differences are
    # exact but for rounding, about eps64 * |L| / 1e-6 = 1e-9 absolute, which is 1e-7
    # relative on the smallest gradient entries (~1e-2).
    for name, g, n in zip(("dx", "dW", "db"), grads, numeric, strict=True):
        assert relative_error(g, n) < 1e-6, f"{name}: relative error {relative_error(g, n):.2e}"


def test_the_gradient_check_can_fail():
    """A backward with dW from the wrong offset (u, v swapped) fails the same check."""
    case = CASES[4]  # a 3x2 kernel: swapping u and v is a real error
    x, W, b, s, p, dy, numeric = _loss_grads(case, 0)
    y = dispatch("conv2d_forward", "numpy")(x, W, b, s, p, 0)
    _, dW, _ = dispatch("conv2d_backward", "numpy")(dy, x, W, y, s, p, 0)
    wrong = dW[:, :, ::-1, :]
    assert relative_error(wrong, numeric[1]) > 1e-2


# ---------------------------------------------------------------------- cpu kernels


def _exact_backward(dy, x, W, y, s, p, act, need_dx=1):
    """The float64 gradients (on y's own ReLU mask) and the sums of |terms| bounding them."""
    f64 = [a.astype(np.float64) for a in (dy, x, W, y)]
    ref = dispatch("conv2d_backward", "numpy")
    exact = ref(*f64, s, p, act, need_dx)
    dz = np.where(f64[3] > 0, f64[0], 0) if act else f64[0]
    size = ref(np.abs(dz), np.abs(f64[1]), np.abs(f64[2]), f64[3], s, p, 0, need_dx)
    return exact, size


def _cpu_ops(first):
    if not first:
        return dispatch("conv2d_forward", "cpu"), dispatch("conv2d_backward", "cpu")

    def forward(x, W, b, s, p, act):
        N, Fo = x.shape[0], W.shape[0]
        OH = conv.conv_output_size(x.shape[2], W.shape[2], s, p)
        OW = conv.conv_output_size(x.shape[3], W.shape[3], s, p)
        out = np.full((N, Fo, OH, OW), np.nan, x.dtype)
        conv.conv2d_forward_cpu_v1(x, W, b, s, p, act, out)
        return out

    def backward(dy, x, W, y, s, p, act, need_dx=1, grads_out=None):
        dx = np.full_like(x, np.nan) if need_dx else x[:0]
        dW, db = np.full_like(W, np.nan), np.full(W.shape[0], np.nan, x.dtype)
        conv.conv2d_backward_cpu_v1(dy, x, W, y, s, p, act, need_dx, dx, dW, db)
        return (dx if need_dx else None), dW, db

    return forward, backward


# The tuned cpu kernels' two strategies, forced whatever the size (the threshold is read
# when the op is called), and the first versions.
LIMITS = {"direct": 10**9, "im2col": -1}


@pytest.fixture(params=["direct", "im2col", "v1"])
def strategy(request, monkeypatch):
    if request.param in LIMITS:
        monkeypatch.setattr(conv, "DIRECT_MAX_CKK", LIMITS[request.param])
    return request.param


@DTYPES
@PARAMS
def test_cpu_conv_matches_the_reference(case, dtype, strategy):
    forward, backward = _cpu_ops(strategy == "v1")
    x, W, b, s, p = conv_data(case, dtype, seed=2)
    rng = np.random.default_rng(3)
    for act in (0, 1):
        exact = dispatch("conv2d_forward", "numpy")(
            *[a.astype(np.float64) for a in (x, W, b)], s, p, act
        )
        size = dispatch("conv2d_forward", "numpy")(*_abs64(x, W, b), s, p, 0)
        y = forward(x, W, b, s, p, act)
        _assert_within(y, exact, size, W[0].size, dtype, f"forward act={act}")
        if act and y.size > 4:  # a ReLU that clips nothing would prove nothing
            assert (y == 0).any() and (y > 0).any()
        dy = rng.standard_normal(y.shape).astype(dtype)
        terms = max(x.shape[0] * y.shape[2] * y.shape[3], W.shape[0] * W[0, 0].size)
        for need_dx in (1, 0):
            (edx, edW, edb), (sdx, sdW, sdb) = _exact_backward(dy, x, W, y, s, p, act, need_dx)
            dx, dW, db = backward(dy, x, W, y, s, p, act, need_dx)
            if need_dx:
                _assert_within(dx, edx, sdx, terms, dtype, f"dx act={act}")
            else:
                assert dx is None, "need_dx=0 gives None for dx"
            _assert_within(dW, edW, sdW, terms, dtype, f"dW act={act}")
            _assert_within(db, edb, sdb, terms, dtype, f"db act={act}")


@pytest.mark.parametrize(
    "backend, limit", [("numpy", None), ("cpu", LIMITS["direct"]), ("cpu", LIMITS["im2col"])]
)
def test_conv_backward_writes_grads_out_in_place_and_leaves_inputs_alone(
    backend, limit, monkeypatch
):
    if limit is not None:
        monkeypatch.setattr(conv, "DIRECT_MAX_CKK", limit)
    x, W, b, s, p = conv_data(CASES[3], np.float32, seed=4)
    y = dispatch("conv2d_forward", backend)(x, W, b, s, p, 1)
    dy = np.random.default_rng(5).standard_normal(y.shape).astype(np.float32)
    copies = [a.copy() for a in (dy, x, W, y)]
    gW, gb = np.full_like(W, np.nan), np.full_like(b, np.nan)
    dx, dW, db = dispatch("conv2d_backward", backend)(dy, x, W, y, s, p, 1, 0, (gW, gb))
    assert dx is None and dW is gW and db is gb
    want = dispatch("conv2d_backward", "numpy")(dy, x, W, y, s, p, 1, 0)
    np.testing.assert_allclose(gW, want[1], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gb, want[2], rtol=1e-4, atol=1e-4)
    for a, c in zip((dy, x, W, y), copies, strict=True):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("limit", LIMITS.values(), ids=LIMITS.keys())
def test_cpu_conv_takes_any_layout_and_keeps_nan(limit, monkeypatch):
    monkeypatch.setattr(conv, "DIRECT_MAX_CKK", limit)
    x, W, b, s, p = conv_data(CASES[1], np.float64, seed=6)
    xf = np.asfortranarray(x)
    x_nan = x.copy()
    x_nan[0, 0, 2, 2] = np.nan
    for backend in ("numpy", "cpu"):
        y = dispatch("conv2d_forward", backend)(xf, W, b, s, p, 1)
        np.testing.assert_allclose(y, dispatch("conv2d_forward", "numpy")(x, W, b, s, p, 1))
        y_nan = dispatch("conv2d_forward", backend)(x_nan, W, b, s, p, 1)
        assert np.isnan(y_nan[0, :, 1:4, 1:4]).all(), "ReLU must not turn NaN into 0"
        assert not np.isnan(y_nan[1]).any()


@pytest.mark.parametrize("act", [0, 1], ids=["linear", "relu"])
def test_cpu_conv_chooses_its_strategy_by_the_length_of_the_sums(act, monkeypatch):
    """C*KH*KW <= DIRECT_MAX_CKK: the direct kernels (flag 1), one channel more: im2col +
    BLAS (flag 0); both agree with the reference, at stride 1 and 2."""
    seen = []

    def spy(op, flag_at):
        real = KERNELS[op, "cpu"]

        def kernel(*args):
            seen.append((op, args[flag_at]))
            return real(*args)

        monkeypatch.setitem(KERNELS, (op, "cpu"), kernel)

    spy("conv2d_forward", 6)  # x, W, b, stride, pad, act, direct, ...
    spy("conv2d_backward", 8)  # dy, x, W, y, stride, pad, act, need_dx, direct, ...
    C = conv.DIRECT_MAX_CKK // 9  # 3x3 kernels: the last C on the direct side
    assert C >= 1
    for C_in, direct in ((C, 1), (C + 1, 0)):
        for s, p in ((1, 1), (2, 0)):
            seen.clear()
            x, W, b, s, p = conv_data((2, C_in, 7, 6, 3, 3, 3, s, p), np.float32, seed=C_in)
            y = dispatch("conv2d_forward", "cpu")(x, W, b, s, p, act)
            want = dispatch("conv2d_forward", "numpy")(x, W, b, s, p, act)
            np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
            dy = np.random.default_rng(C_in).standard_normal(y.shape).astype(np.float32)
            got = dispatch("conv2d_backward", "cpu")(dy, x, W, y, s, p, act)
            ref = dispatch("conv2d_backward", "numpy")(dy, x, W, y, s, p, act)
            for g, w in zip(got, ref, strict=True):
                np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)
            assert seen == [("conv2d_forward", direct), ("conv2d_backward", direct)]


# ---------------------------------------------------------------------- max pooling


def _pool_loops(x, k, s):
    """y and argmax by explicit loops: the first maximum in row-major window order."""
    N, C, H, Wd = x.shape
    OH, OW = (H - k) // s + 1, (Wd - k) // s + 1
    y, am = np.empty((N, C, OH, OW), x.dtype), np.empty((N, C, OH, OW), np.int64)
    for n, c, i, j in np.ndindex(N, C, OH, OW):
        window = [x[n, c, i * s + u, j * s + v] for u in range(k) for v in range(k)]
        best = max(window)
        am[n, c, i, j] = window.index(best)
        y[n, c, i, j] = best
    return y, am


POOLS = pytest.mark.parametrize("k, s", [(2, 2), (3, 1), (3, 2), (1, 1), (2, 1)])


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@POOLS
def test_max_pool_matches_the_loops_and_routes_to_the_argmax(k, s, backend):
    rng = np.random.default_rng(k * 10 + s)
    H = k + 2 * s  # three windows a side: tiles
    x = rng.integers(-3, 4, (2, 3, H, H + s)).astype(np.float32)  # small ints: many ties
    y, am = dispatch("maxpool2d_forward", backend)(x, k, s)
    y_want, am_want = _pool_loops(x, k, s)
    np.testing.assert_array_equal(y, y_want)
    np.testing.assert_array_equal(am, am_want)  # ties: the first maximum
    assert np.dtype(am.dtype).kind == "i"
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = dispatch("maxpool2d_backward", backend)(dy, am, x.shape, k, s)
    want = np.zeros(x.shape, np.float64)
    for n, c, i, j in np.ndindex(*y.shape):
        u, v = divmod(int(am_want[n, c, i, j]), k)
        want[n, c, i * s + u, j * s + v] += dy[n, c, i, j]  # overlapping windows add
    np.testing.assert_allclose(dx, want, rtol=1e-6, atol=1e-6)
    assert dx.dtype == np.float32


def test_max_pool_ties_go_to_the_first_maximum_and_nan_wins():
    x = np.zeros((1, 1, 2, 4))
    x[0, 0, :, 2:] = [[1.0, 5.0], [5.0, 2.0]]  # window 2: 5 at offsets 1 and 2
    x[0, 0, 1, 0] = np.nan  # window 1: NaN at offset 2 (np.argmax's rule: it is the max)
    for backend in ("numpy", "cpu"):
        y, am = dispatch("maxpool2d_forward", backend)(x, 2, 2)
        assert am.tolist() == [[[[2, 1]]]]
        assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 0, 1] == 5
        dx = dispatch("maxpool2d_backward", backend)(np.ones((1, 1, 1, 2)), am, x.shape, 2, 2)
        assert dx.tolist() == [[[[0, 0, 0, 1], [1, 0, 0, 0]]]]


def test_max_pool_gradient_matches_central_differences():
    rng = np.random.default_rng(8)
    x = rng.permutation(2 * 2 * 5 * 5).reshape(2, 2, 5, 5) / 7.0  # distinct: no ties
    dy = rng.standard_normal((2, 2, 2, 2))
    numeric = numerical_gradient(lambda v: float(np.sum(F.max_pool2d(v, 3, 2) * dy)), x)
    for backend in ("numpy", "cpu"):
        dx = F.max_pool2d_backward(dy, x, 3, 2, backend=backend)
        assert relative_error(dx, numeric) < 1e-7


# ---------------------------------------------------------------------- functional API


def test_functional_conv2d_agrees_with_the_op_and_takes_named_padding():
    x, W, b, _, _ = conv_data(CASES[1], np.float64)
    want = dispatch("conv2d_forward", "numpy")(x, W, b, 1, 1, 0)
    for backend in ("numpy", "cpu"):
        np.testing.assert_allclose(F.conv2d(x, W, b, padding="same", backend=backend), want)
        no_bias = F.conv2d(x, W, padding=1, backend=backend)
        np.testing.assert_allclose(no_bias, want - b[:, None, None])
    y = F.conv2d(x.astype(np.float32), W, b, padding="valid")  # W, b cast to x's dtype
    assert y.dtype == np.float32 and y.shape == (2, 4, 4, 3)
    dy = np.ones((2, 4, 6, 5))
    dx, dW, db = F.conv2d_backward(dy, x, W, padding="same", backend="cpu")
    ref = dispatch("conv2d_backward", "numpy")(dy, x, W, dy, 1, 1, 0)
    for g, w in zip((dx, dW, db), ref, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: F.conv2d(np.ones((2, 8, 8)), np.ones((4, 2, 3, 3))),
            r"x must be a batch of images, shape \(N, C, H, W\).*\(2, 8, 8\).*x\[None\]",
        ),
        (lambda: F.conv2d(np.ones((2, 64)), np.ones((4, 1, 3, 3))), r"\(N, C, H, W\).*reshape"),
        (
            lambda: F.conv2d(np.ones((2, 3, 8, 8)), np.ones((4, 3, 3))),
            r"W must be 4-D, shape \(F, C, KH, KW\)",
        ),
        (
            lambda: F.conv2d(np.ones((2, 1, 8, 8)), np.ones((4, 3, 3, 3))),
            r"W has 3 input channels.*x has 1.*\(4, 1, 3, 3\)",
        ),
        (
            lambda: F.conv2d(np.ones((2, 1, 4, 4)), np.ones((4, 1, 5, 5))),
            r"5x5 kernel is larger than the padded input, 4x4",
        ),
        (
            lambda: F.conv2d(np.ones((2, 1, 4, 4)), np.ones((4, 1, 2, 2)), padding="same"),
            r"padding='same' needs a square kernel of odd size",
        ),
        (
            lambda: F.conv2d(np.ones((2, 1, 4, 4)), np.ones((4, 1, 3, 3)), stride=0),
            r"stride must be an int >= 1; got 0",
        ),
        (
            lambda: F.conv2d(np.ones((2, 1, 4, 4)), np.ones((4, 1, 3, 3)), np.ones(3)),
            r"b must have shape \(F,\) = \(4,\)",
        ),
        (
            lambda: F.conv2d_backward(
                np.ones((2, 4, 3, 3)), np.ones((2, 1, 4, 4)), np.ones((4, 1, 3, 3))
            ),
            r"dy must have the shape of conv2d's output.*\(2, 4, 2, 2\).*got \(2, 4, 3, 3\)",
        ),
        (
            lambda: F.max_pool2d(np.ones((2, 1, 7, 8)), 2),
            r"2x2 windows at stride 2 do not tile H=7.*Crop or pad the images to H=6 or 8",
        ),
        (lambda: F.max_pool2d(np.ones((2, 1, 8, 8)), 3, 2), r"do not tile H=8"),
        (
            lambda: F.max_pool2d(np.ones((2, 1, 2, 2)), 3),
            r"3x3 pool window is larger than the input, 2x2",
        ),
        (lambda: F.max_pool2d(np.ones((8, 8)), 2), r"x must be a batch of images"),
    ],
)
def test_functional_conv_and_pool_refuse_bad_input_and_say_what_to_do(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_init_fans_of_a_conv_weight_follow_pytorch():
    from nnlib.init import _fans

    assert _fans((16, 3, 5, 5)) == (75, 400)  # fan_in = C*KH*KW, fan_out = F*KH*KW
    assert _fans((784, 10)) == (784, 10)  # dense (D, H) unchanged
    W = nl.init.he_normal((64, 8, 3, 3), seed=0)
    assert abs(W.std() - np.sqrt(2 / 72)) < 0.01
    with pytest.raises(ValueError, match="3 axes"):
        _fans((2, 3, 4))


# ---------------------------------------------------------------------- layers


def _digits(n=96):
    X, y = nl.datasets.load_digits()
    return (X[:n] / 16.0).reshape(-1, 1, 8, 8).astype(np.float32), y[:n]


def _cnn(dtype=np.float32):
    return nl.Sequential(
        [
            Conv2D(4, 3, padding="same", activation="relu"),
            MaxPool2D(2),
            nl.Flatten(),
            nl.Dense(10),
        ],
        dtype=dtype,
    )


def _fit(backend, dtype=np.float32, epochs=4, callbacks=None):
    X, y = _digits()
    model = _cnn(dtype)
    hist = model.fit(
        X.astype(dtype),
        y,
        epochs=epochs,
        batch_size=32,
        seed=0,
        verbose=0,
        backend=backend,
        optimizer=nl.optim.Adam(lr=0.01),
        callbacks=callbacks,
    )
    return model, hist.history["loss"]


def test_conv_model_builds_the_shapes_through_the_layers():
    model = _cnn().build((1, 8, 8), seed=0)
    shapes = model.parameter_shapes()
    assert shapes == {"0.W": (4, 1, 3, 3), "0.b": (4,), "3.W": (64, 10), "3.b": (10,)}
    assert model.layers[1].output_features((4, 8, 8)) == (4, 4, 4)
    W = model.parameters()["0.W"]
    assert W.dtype == np.float32 and abs(W.std() - np.sqrt(2 / 9)) < 0.25  # He, fan_in 9
    layer = Conv2D(8, (3, 5), stride=2, padding=1)
    assert layer.output_features((3, 9, 9)) == (8, 5, 4)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_conv_model_fit_decreases_the_loss(backend):
    _, losses = _fit(backend)
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < 0.85 * losses[0], losses


def test_conv_model_trains_alike_on_numpy_and_cpu():
    (m_np, l_np), (m_cpu, l_cpu) = _fit("numpy", epochs=2), _fit("cpu", epochs=2)
    np.testing.assert_allclose(l_cpu, l_np, rtol=1e-4)
    for name, value in m_np.parameters().items():
        np.testing.assert_allclose(m_cpu.parameters()[name], value, rtol=1e-3, atol=1e-4)


def test_conv_model_passes_the_gradient_check():
    X, y = _digits(6)
    # NOTE: a nonzero bias: on the blank background every window is 0, so with b = 0 the
    # ReLU would sit exactly on its kink there, where the central difference sees half a
    # slope and the gradient (relu'(0) = 0) none.
    model = nl.Sequential(
        [
            Conv2D(3, 3, padding="same", activation="relu", bias_init="normal"),
            Conv2D(2, 3, stride=2, padding=1),
            MaxPool2D(2),
            nl.Flatten(),
            nl.Dense(10),
        ]
    ).build((1, 8, 8), seed=1)
    for backend in ("numpy", "cpu"):
        result = nl.gradcheck(model, X, y, backend=backend)
        assert result.passed, str(result)


def test_conv_layer_writes_its_gradients_into_its_own_arrays():
    X, y = _digits(8)
    model = _cnn().build((1, 8, 8), seed=0)
    conv_layer = model.layers[0]
    gW, gb = conv_layer.grads["W"], conv_layer.grads["b"]
    model.train_on_batch(X, y, backend="cpu")
    assert conv_layer.grads["W"] is gW and conv_layer.grads["b"] is gb
    assert np.abs(gW).sum() > 0


def test_conv_model_saves_and_loads_to_identical_predictions(tmp_path):
    model, _ = _fit("cpu", epochs=1)
    X, _ = _digits(20)
    path = model.save(tmp_path / "cnn.npz")
    loaded = nl.load(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert [type(layer).__name__ for layer in loaded.layers] == [
        "Conv2D",
        "MaxPool2D",
        "Flatten",
        "Dense",
    ]
    assert loaded.layers[0].get_config() == model.layers[0].get_config()


def test_diagnostics_runs_on_a_conv_model():
    diag = nl.callbacks.Diagnostics()
    _fit("cpu", epochs=1, callbacks=[diag])
    rows = [r for r in diag.records if r["layer"] == 0]
    assert rows and np.isfinite(rows[0]["act_mean"])


def test_conv_model_in_float64():
    model, losses = _fit("cpu", dtype=np.float64, epochs=2)
    assert model.parameters()["0.W"].dtype == np.float64
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_conv_layers_refuse_bad_input_naming_the_layer_and_shapes():
    model = _cnn().build((1, 8, 8), seed=0)
    conv_layer, pool = model.layers[0], model.layers[1]
    with pytest.raises(ValueError, match=r"Conv2D\(4, 3.*expects \(N, C, H, W\) images.*\(5, 64\)"):
        conv_layer.forward(np.zeros((5, 64), np.float32))
    with pytest.raises(
        ValueError, match=r"Conv2D\(4, 3.*expects images with 1 channels.*\(5, 3, 8, 8\)"
    ):
        conv_layer.forward(np.zeros((5, 3, 8, 8), np.float32))
    with pytest.raises(TypeError, match="dtype float32; got float64"):
        conv_layer.forward(np.zeros((5, 1, 8, 8)))
    assert pool.input_shape == (4, 8, 8)
    untiled = nl.Sequential([Conv2D(4, 3), MaxPool2D(2), nl.Flatten(), nl.Dense(3)])
    with pytest.raises(ValueError, match=r"MaxPool2D\(2\).*do not tile.*\(4, 7, 7\).*H=6 or 8"):
        untiled.build((1, 9, 9), seed=0)  # a valid 3x3 convolution makes 9x9 into 7x7
    with pytest.raises(ValueError, match=r"MaxPool2D\(3, stride=2\).*do not tile"):
        MaxPool2D(3, 2).forward(np.zeros((1, 1, 8, 8), np.float32))
    too_big = nl.Sequential([Conv2D(2, 5), nl.Flatten(), nl.Dense(3)])
    with pytest.raises(
        ValueError, match=r"Conv2D\(2, 5\).*5x5 kernel is larger than its padded input, 4x4"
    ):
        too_big.build((1, 4, 4), seed=0)
    with pytest.raises(ValueError, match=r"expects 3 input channels.*\(1, 8, 8\)"):
        nl.Sequential([Conv2D(2, 3, in_channels=3), nl.Flatten(), nl.Dense(3)]).build(
            (1, 8, 8), seed=0
        )
    with pytest.raises(ValueError, match="padding='same' needs a square kernel of odd size"):
        Conv2D(2, 4, padding="same")
    X, y = _digits(8)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)|images"):
        _cnn().fit(X.reshape(8, 64), y, epochs=1, verbose=0)
