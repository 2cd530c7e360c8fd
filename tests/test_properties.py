"""Properties of the public functions, on inputs Hypothesis draws.

Covered: every function of :mod:`nnlib.functional`, the losses of :mod:`nnlib.losses`
called directly, and :mod:`nnlib.preprocessing`. Inputs have random shapes (0-size and
0-d where a function takes them), float32 and float64 (and integers, which are converted
to float64), C-contiguous, F-ordered, strided and reversed (negative-stride) views, and
values from moderate to huge and tiny, with NaN and +-inf in their own properties.

Two oracles for each result (STYLE.md, 6):

* the NumPy reference backend (the spec), run on the float64 copy of the input and
  rounded to the input's dtype, as in tests/cases.py;
* an independent float64 formula written below from the math (scipy.special where it has
  the function), so the reference itself is checked too.

Both with the tolerance table of :mod:`nnlib.testing`. Each property also checks that the
inputs are not modified and that the result is a new array of the documented dtype and
shape; wrong shapes and dtypes must raise ValueError or TypeError.

Budget: about a minute on 2 cores (each property bounds ``max_examples``; the
``nnlib`` Hypothesis profile in conftest.py makes the examples the same on every run).
The ``cuda`` variants run under the CUDA simulator with very few, small examples.

A property that finds a bug in nnlib is marked ``xfail(strict=True)`` with the bug and
its smallest example, so it fails loudly once the bug is fixed and can be un-marked.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nnlib.functional as F
import nnlib.losses as L
import nnlib.preprocessing as P
from nnlib.testing import assert_close

FLOATS = (np.float32, np.float64)
EXAMPLES = 40  # per property and op on cpu
CUDA_EXAMPLES = 3  # under the simulator every GPU thread is a Python thread
ALPHA = {"leaky_relu": 0.1, "elu": 0.7}


@pytest.fixture(autouse=True)
def _float_warnings_off():
    """The float64 formulas and the reference overflow and divide by zero on purpose here
    (huge values, +-inf); the results are what is checked, not NumPy's warnings."""
    with np.errstate(all="ignore"):
        yield


# ---------------------------------------------------------------------- inputs


def _elements(dtype, *, special=False, wide=True, limit=30.0):
    """Floats of ``dtype``: moderate values, and (``wide``) huge and tiny ones and
    signed zeros; NaN and +-inf when ``special``."""
    bits = np.finfo(dtype).bits
    moderate = st.floats(-limit, limit, width=bits)
    huge, tiny = (1e30, 1e38) if dtype == np.float32 else (1e30, 1e300)
    extremes = [huge, -huge, tiny, -tiny, 1e-30, -1e-30, 0.0, -0.0]
    extremes += [1e-40, -1e-40] if dtype == np.float32 else [1e-300, 5e-324, -5e-324]
    parts = [moderate, moderate]  # NOTE: listed twice: most values stay moderate
    if wide:
        parts.append(st.sampled_from(extremes))
    if special:
        parts.append(st.sampled_from([math.nan, math.inf, -math.inf]))
    return st.one_of(*parts)


LAYOUTS = ("C", "F", "strided", "reversed")


@st.composite
def arrays(draw, dtype, *, min_dims=0, max_dims=3, max_side=6, shape=None, **elements):
    """A float array of ``dtype`` in one of :data:`LAYOUTS`; ``shape`` fixes the shape."""
    if shape is None:
        shape = draw(
            hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=max_side)
        )
    layout = draw(st.sampled_from(LAYOUTS)) if len(shape) else "C"
    base_shape = (*shape[:-1], 2 * shape[-1]) if layout == "strided" else shape
    base = draw(hnp.arrays(dtype, base_shape, elements=_elements(dtype, **elements)))
    if layout == "F":
        return np.asfortranarray(base)
    if layout == "strided":
        return base[..., ::2]
    if layout == "reversed":
        return base[::-1]
    return base


def _pair(draw, dtype, min_dims=0, max_dims=3, max_side=6, x_elements=None, dy_elements=None):
    """``(dy, x)`` of one shape, each in its own layout."""
    x = draw(
        arrays(dtype, min_dims=min_dims, max_dims=max_dims, max_side=max_side, **(x_elements or {}))
    )
    dy = draw(arrays(dtype, shape=x.shape, **(dy_elements or {})))
    return dy, x


# ---------------------------------------------------------------------- the math, float64


def _gelu(x):
    with np.errstate(invalid="ignore"):
        y = x * 0.5 * sp.erfc(-x / math.sqrt(2))  # erfc: accurate in the left tail
    return np.where(np.isinf(x), np.maximum(x, 0), y)  # limits: gelu(-inf) = 0


def _gelu_grad(x):
    with np.errstate(invalid="ignore", over="ignore"):
        g = 0.5 * sp.erfc(-x / math.sqrt(2)) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return np.where(np.isinf(x), (x > 0) * 1.0, g)


def _silu(x):
    with np.errstate(invalid="ignore"):
        y = x * sp.expit(x)
    return np.where(np.isinf(x), np.maximum(x, 0), y)


def _silu_grad(x):
    s = sp.expit(x)
    with np.errstate(invalid="ignore", over="ignore"):
        g = s + x * s * sp.expit(-x)  # d/dx x s(x) = s + x s (1 - s)
    return np.where(np.isinf(x), (x > 0) * 1.0, g)


def _sech2(x):
    with np.errstate(over="ignore"):
        return 1.0 / np.cosh(x) ** 2


# op: (f(x), f'(x)), float64; alpha where the op takes one. NaN in gives NaN out
# (np.maximum and the IEEE operations propagate it). The ReLU family's gradient is a
# selection, see _math.
MATH = {
    "relu": (lambda x: np.maximum(x, 0.0), None),
    "leaky_relu": (lambda x, a: np.where(x > 0, x, a * x), None),
    "elu": (
        lambda x, a: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0))),
        lambda x, a: np.where(x > 0, 1.0, a * np.exp(np.minimum(x, 0))),
    ),
    "sigmoid": (sp.expit, lambda x: sp.expit(x) * sp.expit(-x)),
    "tanh": (np.tanh, _sech2),
    "gelu": (_gelu, _gelu_grad),
    "silu": (_silu, _silu_grad),
}
UNARY = sorted(MATH)


def _math(op, x, dy=None):
    """The float64 value of ``op`` (``dy * f'(x)`` for a backward op)."""
    forward, grad = MATH[op]
    args = (ALPHA[op],) if op in ALPHA else ()
    x = x.astype(np.float64)
    if dy is None:
        return forward(x, *args)
    dy = dy.astype(np.float64)
    if grad is None:
        # NOTE: a selection: dy where x > 0, else the negative side's slope times dy
        # (exactly 0 for relu, so a NaN dy there gives 0); the derivative at a NaN x is NaN.
        return np.where(np.isnan(x), np.nan, np.where(x > 0, dy, args[0] * dy if args else 0.0))
    return dy * grad(x, *args)


def _call(op, *arrays, backend, **kw):
    args = (ALPHA[op.removesuffix("_backward")],) if op.removesuffix("_backward") in ALPHA else ()
    return getattr(F, op)(*arrays, *args, backend=backend, **kw)


def _reference(op, *arrays, **kw):
    """The numpy backend on float64 copies, rounded to the inputs' dtype."""
    dtype = arrays[-1].dtype
    with np.errstate(all="ignore"):
        got = _call(op, *(a.astype(np.float64) for a in arrays), backend="numpy", **kw)
    if isinstance(got, tuple):
        return tuple(np.asarray(g).astype(dtype) for g in got)
    return np.asarray(got).astype(dtype)


def _rounded(want, dtype):
    with np.errstate(over="ignore"):
        return np.asarray(want).astype(dtype)


def _check_result(got, inputs, copies, shape, dtype, name="result"):
    """``got`` is a new ndarray of ``shape`` and ``dtype``; the inputs are unchanged."""
    assert isinstance(got, np.ndarray), f"{name}: {type(got).__name__}, not an ndarray"
    assert got.shape == tuple(shape), f"{name}: shape {got.shape}, expected {shape}"
    assert got.dtype == dtype, f"{name}: dtype {got.dtype}, expected {dtype}"
    for a, before in zip(inputs, copies, strict=True):
        np.testing.assert_array_equal(a, before, err_msg="an input was modified")
        if got.size and a.size:
            assert not np.shares_memory(got, a), f"{name} shares memory with an input"


def _run(op, arrays_, backend, **kw):
    copies = [a.copy() for a in arrays_]
    got = _call(op, *arrays_, backend=backend, **kw)
    x = arrays_[-1]
    _check_result(got, arrays_, copies, x.shape, x.dtype, op)
    return got


# ---------------------------------------------------------------------- elementwise


def _unary_property(op, backward, backend, examples, max_side=6, special=False, wide=True):
    """A test of ``op`` (or its backward) on ``backend``: agreement with the reference and
    the math on finite values, or (``special``) on NaN and +-inf as well."""
    name = f"{op}_backward" if backward else op

    @settings(max_examples=examples)
    @given(data=st.data(), dtype=st.sampled_from(FLOATS))
    def check(data, dtype):
        elements = {"special": special, "wide": wide}
        x = data.draw(arrays(dtype, max_side=max_side, **elements), label="x")
        args = [x]
        if backward:
            args = [data.draw(arrays(dtype, shape=x.shape, **elements), label="dy"), x]
        got = _run(name, args, backend)
        assert_close(got, _reference(name, *args), dtype=dtype, name=f"{name} vs reference")
        want = _rounded(_math(op, x, args[0] if backward else None), dtype)
        assert_close(got, want, dtype=dtype, name=f"{name} vs the math")

    return check


# Bugs of the nan/inf properties, (op, backward) -> the bug and its smallest example,
# marked xfail(strict=True). Empty now: relu(nan), gelu and silu at +-inf, found here,
# were fixed in a71bbb8.
NONFINITE_BUGS: dict[tuple[str, bool], str] = {}


def _nonfinite_params():
    for op in UNARY:
        for backward in (False, True):
            bug = NONFINITE_BUGS.get((op, backward))
            marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
            ident = f"{op}-{'backward' if backward else 'forward'}"
            yield pytest.param(op, backward, marks=marks, id=ident)


@pytest.mark.parametrize("dtype", FLOATS)
def test_gelu_left_tail(dtype):
    """Relative accuracy where 1 + erf(x / sqrt 2) would cancel (found by this suite:
    gelu(-10) was 0; fixed in a71bbb8 by computing with erfc)."""
    x = np.array([-6.0, -8.0, -10.0, -20.0], dtype)
    dy = np.ones_like(x)
    for backend in ("numpy", "cpu"):
        got, grad = F.gelu(x, backend=backend), F.gelu_backward(dy, x, backend=backend)
        np.testing.assert_allclose(got, _math("gelu", x).astype(dtype), rtol=1e-4, atol=0)
        np.testing.assert_allclose(grad, _math("gelu", x, dy).astype(dtype), rtol=1e-4, atol=0)


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
@pytest.mark.parametrize("op", UNARY)
def test_elementwise_cpu_finite(op, backward):
    _unary_property(op, backward, "cpu", EXAMPLES)()


@pytest.mark.parametrize(("op", "backward"), list(_nonfinite_params()))
def test_elementwise_cpu_nan_and_inf(op, backward):
    _unary_property(op, backward, "cpu", EXAMPLES, special=True)()


@pytest.mark.parametrize("op", ["relu", "sigmoid", "gelu", "silu"])
def test_integer_and_bool_input_is_converted_to_float64(op):
    @settings(max_examples=10)
    @given(
        x=hnp.arrays(
            st.sampled_from([np.int32, np.int64, np.uint8, np.bool_]),
            hnp.array_shapes(min_dims=0, max_side=5),
        )
    )
    def check(x):
        x = np.asarray(x)
        before = x.copy()
        for backend in ("numpy", "cpu"):
            got = getattr(F, op)(x, backend=backend)
            assert got.dtype == np.float64 and got.shape == x.shape
            assert_close(got, getattr(F, op)(x.astype(np.float64), backend="numpy"))
            np.testing.assert_array_equal(x, before)

    check()


# ---------------------------------------------------------------------- softmax family


def _shifted(x, axis):
    """``x - max(x)`` along ``axis``, float64 (an empty slice has no max: -inf)."""
    x = x.astype(np.float64)
    return x - x.max(axis=axis, keepdims=True, initial=-np.inf)


def _softmax64(x, axis):
    e = np.exp(_shifted(x, axis))
    return e / e.sum(axis=axis, keepdims=True)


def _softmax_backward64(dy, x, axis):
    """J^T dy with the Jacobian J = diag(y) - y y^T of each slice along ``axis``."""
    y = np.moveaxis(_softmax64(x, axis), axis, -1)
    d = np.moveaxis(dy.astype(np.float64), axis, -1)
    jac = y[..., :, None] * np.eye(y.shape[-1]) - y[..., :, None] * y[..., None, :]
    return np.moveaxis(np.einsum("...ij,...j->...i", jac, d), -1, axis)


def _log_softmax64(x, axis):
    z = _shifted(x, axis)  # NOTE: x - logsumexp(x) would lose log 2 next to x = 1e30
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _log_softmax_backward64(dy, x, axis):
    """J^T dy with J = I - 1 y^T: dx_j = dy_j - y_j * sum_k dy_k."""
    y = _softmax64(x, axis)
    return dy.astype(np.float64) - y * dy.astype(np.float64).sum(axis=axis, keepdims=True)


SOFTMAX_MATH = {
    "softmax": _softmax64,
    "log_softmax": _log_softmax64,
    "softmax_backward": _softmax_backward64,
    "log_softmax_backward": _log_softmax_backward64,
}


def _softmax_property(op, backend, examples, max_side=6, wide=True):
    backward = op.endswith("_backward")

    @settings(max_examples=examples)
    @given(data=st.data(), dtype=st.sampled_from(FLOATS))
    def check(data, dtype):
        x = data.draw(arrays(dtype, min_dims=1, max_side=max_side, wide=wide), label="x")
        axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
        # NOTE: dy moderate: y * (dy - sum(dy * y)) cancels, and a float32 sum of huge dy
        # loses everything below their rounding error; the logits x take the whole range.
        args = [data.draw(arrays(dtype, shape=x.shape, wide=False, limit=4.0)), x]
        args = args if backward else [x]
        got = _run(op, args, backend, axis=axis)
        assert_close(got, _reference(op, *args, axis=axis), dtype=dtype, name=f"{op} vs ref")
        with np.errstate(under="ignore"):
            want = SOFTMAX_MATH[op](*args, axis)
        assert_close(got, _rounded(want, dtype), dtype=dtype, name=f"{op} vs the math")

    return check


@pytest.mark.parametrize("op", sorted(SOFTMAX_MATH))
def test_softmax_family_cpu(op):
    _softmax_property(op, "cpu", EXAMPLES)()


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_family_nan_and_masked_logits(op):
    """A slice with a NaN is all NaN; -inf logits (masked) get probability 0 as long as
    one logit of their slice is finite; agreement with the reference on all of it."""

    @settings(max_examples=EXAMPLES)
    @given(data=st.data(), dtype=st.sampled_from(FLOATS))
    def check(data, dtype):
        x = data.draw(arrays(dtype, min_dims=1, special=True), label="x")
        axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
        got = _run(op, [x], "cpu", axis=axis)
        assert_close(got, _reference(op, x, axis=axis), dtype=dtype, name=f"{op} vs ref")
        nan_slice = np.isnan(x).any(axis=axis, keepdims=True) & np.ones_like(x, bool)
        assert np.isnan(got[nan_slice]).all(), "a slice with a NaN must be all NaN"
        clean = ~np.isnan(x).any(axis=axis, keepdims=True) & ~np.isposinf(x).any(
            axis=axis, keepdims=True
        )
        masked = clean & np.isfinite(x).any(axis=axis, keepdims=True) & np.isneginf(x)
        expected = -np.inf if op == "log_softmax" else 0.0
        assert (got[masked] == expected).all(), "a -inf logit must get probability 0"

    check()


# ---------------------------------------------------------------------- prelu


def _prelu64(x, alpha):
    return np.where(x > 0, x, alpha * x).astype(np.float64)


def _prelu_property(backend, examples, max_side=6, wide=True):
    @settings(max_examples=examples)
    @given(data=st.data(), dtype=st.sampled_from(FLOATS), per_feature=st.booleans())
    def check(data, dtype, per_feature):
        x = data.draw(arrays(dtype, min_dims=1 if per_feature else 0, max_side=max_side, wide=wide))
        a_shape = x.shape[-1:] if per_feature else ()
        assume(a_shape != (0,))  # no feature at all: test_prelu_with_no_features
        alpha = data.draw(arrays(dtype, shape=a_shape, wide=False, limit=1.0), label="alpha")
        dy = data.draw(arrays(dtype, shape=x.shape, wide=wide), label="dy")
        copies = [x.copy(), alpha.copy(), dy.copy()]
        x64, a64, dy64 = (a.astype(np.float64) for a in (x, alpha, dy))

        got = F.prelu(x, alpha, backend=backend)
        _check_result(got, [x, alpha], copies[:2], x.shape, dtype, "prelu")
        assert_close(got, _reference("prelu", x, alpha), dtype=dtype, name="prelu vs ref")
        assert_close(got, _rounded(_prelu64(x64, a64), dtype), dtype=dtype, name="prelu")

        dx, dalpha = F.prelu_backward(dy, x, alpha, backend=backend)
        _check_result(dx, [dy, x, alpha], [copies[2], *copies[:2]], x.shape, dtype, "dx")
        _check_result(dalpha, [dy, x, alpha], [copies[2], *copies[:2]], a_shape, dtype, "da")
        want_dx = np.where(x64 > 0, dy64, a64 * dy64)
        contrib = np.where(x64 > 0, 0.0, dy64 * x64)  # (..., D)
        axes = tuple(range(x.ndim - 1)) if per_feature else None
        want_da = contrib.sum(axis=axes)
        ref_dx, ref_da = _reference("prelu_backward", dy, x, alpha)
        assert_close(dx, ref_dx, dtype=dtype, name="prelu dx vs ref")
        assert_close(dx, _rounded(want_dx, dtype), dtype=dtype, name="prelu dx")
        # NOTE: dalpha sums up to 6**3 terms of size up to 1e38 * 1e38: compared where
        # the float64 sum is representable in the dtype, relative to the largest term.
        scale = np.abs(contrib).max(initial=0.0)
        assume(np.isfinite(scale * 10) and scale < np.finfo(dtype).max / 1e3)
        atol = 1e-5 * scale if dtype == np.float32 else 1e-12 * scale
        np.testing.assert_allclose(dalpha, ref_da, rtol=2e-5, atol=atol)
        np.testing.assert_allclose(dalpha, _rounded(want_da, dtype), rtol=2e-5, atol=atol)

    return check


def test_prelu_cpu():
    _prelu_property("cpu", EXAMPLES)()


@pytest.mark.parametrize("shape", [(0, 0), (3, 0)])
def test_prelu_with_no_features(shape):
    """x (N, 0) and alpha (0,): found by this suite (a reshape(-1, 0) error), fixed in a71bbb8."""
    x, alpha = np.zeros(shape, np.float32), np.zeros(0, np.float32)
    for backend in ("numpy", "cpu"):
        assert F.prelu(x, alpha, backend=backend).shape == shape
        dx, dalpha = F.prelu_backward(x, x, alpha, backend=backend)
        assert dx.shape == shape and dalpha.shape == (0,)


# ---------------------------------------------------------------------- wrong input


# NOTE: batch_norm takes x (N, D) with gamma, beta (D,), and the convolution and pooling
# ops take images (N, C, H, W) with weights, not arrays of any shape: their arguments are
# checked in tests/test_batchnorm.py and tests/test_conv.py (every argument's dtype and shape).
FUNCTIONS = sorted(
    op for op in F.__all__ if not op.startswith(("batch_norm", "conv2d", "max_pool2d"))
)


def _valid_args(op, x):
    """Arguments that ``op`` accepts, with ``x`` as the input."""
    if op.startswith("prelu"):
        alpha = np.float64(0.2).astype(x.dtype) if x.dtype.kind == "f" else 0.2
        return ([x, x, alpha] if op.endswith("backward") else [x, alpha]), {}
    kw = {"axis": -1} if "softmax" in op else {}
    return ([x, x] if op.endswith("backward") else [x]), kw


@pytest.mark.parametrize("op", FUNCTIONS)
def test_wrong_dtype_is_a_type_error(op):
    @settings(max_examples=8)
    @given(
        dtype=st.sampled_from([np.float16, np.complex64, np.complex128, object, "U3", "M8[s]"]),
        shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=3),
    )
    def check(dtype, shape):
        x = np.zeros(shape, dtype)
        args, kw = _valid_args(op, np.zeros(shape, np.float32))
        args[-1 if op.endswith("backward") and not op.startswith("prelu") else 0] = x
        if op.startswith("prelu") and op.endswith("backward"):
            args[1] = x
        with pytest.raises(TypeError):
            getattr(F, op)(*args, backend="cpu", **kw)

    check()


BACKWARD = [op for op in FUNCTIONS if op.endswith("_backward")]


@pytest.mark.parametrize("op", BACKWARD)
def test_dy_of_another_shape_or_dtype_is_refused(op):
    @settings(max_examples=8)
    @given(
        shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
        other=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
    )
    def check(shape, other):
        x = np.ones(shape, np.float32)
        args, kw = _valid_args(op, x)
        if other != shape:
            args[0] = np.ones(other, np.float32)
            with pytest.raises(ValueError, match="dy"):
                getattr(F, op)(*args, backend="cpu", **kw)
        args[0] = np.ones(shape, np.float64)
        with pytest.raises(TypeError, match="dy"):
            getattr(F, op)(*args, backend="cpu", **kw)

    check()


@pytest.mark.parametrize("op", sorted(SOFTMAX_MATH))
def test_softmax_axis_out_of_range_or_not_an_int_is_refused(op):
    @settings(max_examples=8)
    @given(shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=3), axis=st.integers(-6, 6))
    def check(shape, axis):
        x = np.ones(shape, np.float32)
        args = [x, x] if op.endswith("backward") else [x]
        if not -x.ndim <= axis < x.ndim or x.ndim == 0:
            with pytest.raises(ValueError, match="axis"):
                getattr(F, op)(*args, axis=axis, backend="cpu")
        with pytest.raises(TypeError, match="axis"):
            getattr(F, op)(*args, axis=float(axis), backend="cpu")

    check()


@pytest.mark.parametrize("op", ["leaky_relu", "elu", "leaky_relu_backward", "elu_backward"])
@pytest.mark.parametrize("alpha", [math.nan, math.inf, "0.1", None])
def test_a_bad_alpha_is_refused(op, alpha):
    x = np.ones(3, np.float32)
    args = [x, x] if op.endswith("backward") else [x]
    error = ValueError if isinstance(alpha, float) else TypeError
    with pytest.raises(error, match="alpha"):
        getattr(F, op)(*args, alpha, backend="cpu")


@settings(max_examples=15)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), extra=st.integers(1, 3))
def test_prelu_alpha_of_another_width_is_a_value_error(shape, extra):
    x = np.ones(shape, np.float32)
    for alpha in (np.ones(shape[-1] + extra, np.float32), np.ones((1, shape[-1]), np.float32)):
        with pytest.raises(ValueError, match="alpha"):
            F.prelu(x, alpha, backend="cpu")
        with pytest.raises(ValueError, match="alpha"):
            F.prelu_backward(x, x, alpha, backend="cpu")


# ---------------------------------------------------------------------- losses

LOSS_CLASSES = {
    "mse": L.MSE,
    "bce": L.BCE,
    "bce_with_logits": L.BCEWithLogits,
    "softmax_cross_entropy": L.SoftmaxCrossEntropy,
}


def _loss_math(name, out, target):
    """(per-element or per-row losses, d total / d out), float64, from the math."""
    z = out.astype(np.float64)
    if name == "softmax_cross_entropy":
        labels = target if target.ndim == 1 else target.argmax(axis=1)
        rows = np.arange(len(z))
        losses = sp.logsumexp(z, axis=1) - z[rows, labels] if z.size else np.zeros(len(z))
        grad = sp.softmax(z, axis=1) if z.size else z.copy()
        grad[rows, labels] -= 1.0
        return losses, grad
    t = target.astype(np.float64).reshape(z.shape)
    if name == "mse":
        return (z - t) ** 2, 2 * (z - t)
    if name == "bce_with_logits":
        return np.logaddexp(0.0, z) - z * t, sp.expit(z) - t
    # bce, with the documented clamps (log at -100, p (1 - p) at 1e-12), as PyTorch's
    with np.errstate(divide="ignore"):
        log_p, log_q = np.maximum(np.log(z), -100.0), np.maximum(np.log1p(-z), -100.0)
    return -(t * log_p + (1 - t) * log_q), (z - t) / np.maximum(z * (1 - z), 1e-12)


@st.composite
def loss_inputs(draw, name, dtype, max_side=6, special=False, wide=True):
    """``(out, target)`` as the loss takes them, out in one of the layouts."""
    n = draw(st.integers(0, max_side))
    k = draw(st.integers(1, max_side)) if name in ("mse", "softmax_cross_entropy") else 1
    if name == "bce":
        probs = st.one_of(
            st.floats(0, 1, width=np.finfo(dtype).bits),
            st.sampled_from([0.0, 1.0, 1e-30, 1 - 1e-7]),
        )
        out = draw(hnp.arrays(dtype, (n, k), elements=probs))
        if special:
            out[draw(hnp.arrays(bool, (n, k)))] = np.nan
        out = out[::-1] if draw(st.booleans()) else out
    elif name == "mse":
        # NOTE: no huge float32 values: see test_mse_float32_of_a_huge_difference
        wide = wide and dtype == np.float64
        out = draw(arrays(dtype, shape=(n, k), special=special, wide=wide, limit=1e3))
    else:
        out = draw(arrays(dtype, shape=(n, k), special=special, wide=wide))
    if name == "softmax_cross_entropy":
        labels = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
        if draw(st.booleans()):
            return out, np.eye(k, dtype=draw(st.sampled_from([np.float32, np.int64])))[labels]
        return out, labels.astype(draw(st.sampled_from([np.int64, np.int32, np.uint8])))
    t_elements = st.floats(0, 1, width=np.finfo(dtype).bits)
    if name == "mse":
        t_elements = _elements(dtype, wide=False, limit=1e3)
    target = draw(hnp.arrays(dtype, (n, k), elements=t_elements))
    if k == 1 and draw(st.booleans()):
        target = target[:, 0]
    return out, target


def _loss_property(name, backend, examples, max_side=6, special=False, wide=True):
    @settings(max_examples=examples)
    @given(
        data=st.data(), dtype=st.sampled_from(FLOATS), reduction=st.sampled_from(["mean", "sum"])
    )
    def check(data, dtype, reduction):
        out, target = data.draw(loss_inputs(name, dtype, max_side, special, wide), label="inputs")
        copies = (out.copy(), target.copy())
        results = {}
        for b in ("numpy", backend):
            loss = LOSS_CLASSES[name](reduction)
            loss.backend = b
            value = loss(out, target)
            grad = loss.backward()
            assert isinstance(value, float)
            _check_result(grad, [out, target], list(copies), out.shape, dtype, f"{name} grad")
            results[b] = np.float64(value), grad
        terms, grad64 = _loss_math(name, out, target)
        count = (len(out) if name == "softmax_cross_entropy" else out.size) or 1
        scale = 1.0 / count if reduction == "mean" else 1.0
        want = np.float64(terms.sum() * scale)
        (ref_value, ref_grad), (value, grad) = results["numpy"], results[backend]
        assert_close(value, ref_value, dtype=dtype, name=f"{name} vs reference")
        assert_close(grad, ref_grad, dtype=dtype, name=f"{name} grad vs reference")
        if not special:
            assert_close(value, want, dtype=dtype, name=f"{name} vs the math")
            assert_close(grad, _rounded(grad64 * scale, dtype), dtype=dtype, name=f"{name} grad")
        elif np.isnan(out).any():
            assert math.isnan(value), f"{name}: a NaN output must give a NaN loss"

    return check


@pytest.mark.parametrize("name", sorted(LOSS_CLASSES))
def test_loss_cpu(name):
    _loss_property(name, "cpu", EXAMPLES)()


@pytest.mark.parametrize("name", sorted(LOSS_CLASSES))
def test_loss_cpu_nan_and_inf_outputs(name):
    _loss_property(name, "cpu", EXAMPLES, special=True)()


def test_mse_float32_of_a_huge_difference():
    out, target = np.array([[1e20]], np.float32), np.array([[0.0]], np.float32)
    values = []
    for backend in ("numpy", "cpu"):
        loss = L.MSE()
        loss.backend = backend
        values.append(loss(out, target))
    assert values[0] == pytest.approx(1e40, rel=1e-6)
    assert values[1] == pytest.approx(values[0], rel=1e-6)


@pytest.mark.parametrize("name", sorted(LOSS_CLASSES))
def test_loss_refuses_wrong_input(name):
    @settings(max_examples=10)
    @given(n=st.integers(1, 4), k=st.integers(2, 4), which=st.integers(0, 4))
    def check(n, k, which):
        loss = LOSS_CLASSES[name]()
        loss.backend = "cpu"
        k = 1 if name in ("bce", "bce_with_logits") else k
        out = np.full((n, k), 0.5, np.float32)
        good = np.zeros(n, np.int64) if name == "softmax_cross_entropy" else np.zeros((n, k), "f4")
        bad = [
            (out.reshape(-1), good, ValueError),  # out 1-D
            (out[None], good, ValueError),  # out 3-D
            (out.astype(np.int32), good, TypeError),  # out not float
            (out, good[:-1], ValueError),  # a row short
            (
                out,
                np.full(good.shape, np.nan, "f4")
                if name != "softmax_cross_entropy"
                else good.astype(np.float32),
                (ValueError if name != "softmax_cross_entropy" else TypeError),
            ),
        ][which]
        with pytest.raises(bad[2]):
            loss(bad[0], bad[1])

    check()


# ---------------------------------------------------------------------- preprocessing


@st.composite
def features(draw, dtype=None, min_rows=1, special=False):
    dtype = dtype or draw(st.sampled_from([np.float32, np.float64, np.int64, np.int16]))
    shape = (draw(st.integers(min_rows, 8)), draw(st.integers(1, 4)))
    if np.dtype(dtype).kind == "f":
        return draw(arrays(dtype, shape=shape, special=special))
    return draw(hnp.arrays(dtype, shape, elements=st.integers(-1000, 1000)))


def _out_dtype(X):
    return np.float32 if X.dtype == np.float32 else np.float64


@settings(max_examples=EXAMPLES)
@given(X=features())
def test_standard_scaler_against_the_formula(X):
    before = X.copy()
    scaler = P.StandardScaler().fit(X)
    Z = scaler.transform(X)
    np.testing.assert_array_equal(X, before)
    assert Z.dtype == _out_dtype(X) and Z.shape == X.shape and not np.shares_memory(Z, X)
    X64 = X.astype(np.float64)
    mean, std = X64.mean(axis=0), X64.std(axis=0)
    assume(np.isfinite(std).all())  # the float64 formula overflows beyond ~1e154
    lo, hi = X64.min(axis=0), X64.max(axis=0)
    eps = np.finfo(X.dtype if X.dtype.kind == "f" else np.float64).eps
    constant = hi - lo <= 10 * eps * np.maximum(np.abs(lo), np.abs(hi))
    want = np.where(constant, 0.0, (X64 - mean) / np.where(constant, 1.0, std))
    atol = 1e-4 if X.dtype == np.float32 else 1e-9  # (X - mean) / std, in the dtype
    np.testing.assert_allclose(Z, want.astype(Z.dtype), rtol=1e-4, atol=atol)
    back = scaler.inverse_transform(Z)
    assert back.dtype == Z.dtype
    span = np.maximum(np.abs(lo), np.abs(hi))
    np.testing.assert_allclose(back, X64.astype(Z.dtype), rtol=1e-4, atol=float(span.max()) * 1e-4)


@settings(max_examples=EXAMPLES)
@given(X=features(), bounds=st.sampled_from([(0.0, 1.0), (-1.0, 1.0), (-5.0, 2.5)]))
def test_min_max_scaler_maps_the_training_range_onto_feature_range(X, bounds):
    before = X.copy()
    scaler = P.MinMaxScaler(bounds)
    Z = scaler.fit_transform(X)
    np.testing.assert_array_equal(X, before)
    assert Z.dtype == _out_dtype(X) and Z.shape == X.shape
    lo, hi = bounds
    slack = 1e-5 * (hi - lo) if Z.dtype == np.float32 else 1e-12 * (hi - lo)
    assert (Z >= lo - slack).all() and (Z <= hi + slack).all()
    X64 = X.astype(np.float64)
    varies = X64.max(axis=0) > X64.min(axis=0)
    # the column's minimum lands on lo; its maximum on hi unless it is constant (then lo)
    np.testing.assert_allclose(Z.min(axis=0), lo, atol=slack)
    assert (np.abs(Z.max(axis=0)[varies] - hi) <= slack).all() or not varies.all()


@pytest.mark.parametrize("cls", [P.StandardScaler, P.MinMaxScaler])
def test_scalers_refuse_nan_inf_and_wrong_shapes(cls):
    @settings(max_examples=15)
    @given(X=features(dtype=np.float64, special=True), ndim=st.sampled_from([1, 3]))
    def check(X, ndim):
        if not np.isfinite(X).all():
            with pytest.raises(ValueError, match="finite"):
                cls().fit(X)
        with pytest.raises(ValueError):
            cls().fit(np.zeros((2,) * ndim))
        with pytest.raises(ValueError):
            cls().fit(X.astype(str))
        fitted = cls().fit(np.ones((2, X.shape[1] + 1)))
        with pytest.raises(ValueError, match="features"):
            fitted.transform(np.ones((2, X.shape[1])))
        with pytest.raises(P.NotFittedError):
            cls().transform(X)

    check()


@settings(max_examples=EXAMPLES)
@given(
    y=hnp.arrays(
        st.sampled_from([np.int64, np.int32, np.uint8]),
        st.integers(0, 20),
        elements=st.integers(0, 9),
    ),
    extra=st.integers(0, 3),
    dtype=st.sampled_from([np.float32, np.float64, np.int64]),
)
def test_one_hot(y, extra, dtype):
    before = y.copy()
    classes = (int(y.max()) + 1 if y.size else 0) + extra
    out = P.one_hot(y, classes, dtype=dtype)
    np.testing.assert_array_equal(y, before)
    assert out.shape == (len(y), classes) and out.dtype == dtype
    np.testing.assert_array_equal(out, (y[:, None] == np.arange(classes)).astype(dtype))
    if y.size:
        with pytest.raises(ValueError, match="labels"):
            P.one_hot(y, int(y.max()), dtype=dtype)
    with pytest.raises(ValueError):
        P.one_hot(y.astype(np.float64) + 0.5, classes)


@settings(max_examples=EXAMPLES)
@given(
    y=hnp.arrays(np.int64, st.integers(1, 40), elements=st.integers(0, 3)),
    test_size=st.floats(0.05, 0.95),
    stratify=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_train_test_split_partitions_the_examples(y, test_size, stratify, seed):
    X = np.arange(len(y) * 2, dtype=np.float32).reshape(len(y), 2)
    (X_tr, y_tr), (X_te, y_te) = P.train_test_split(X, y, test_size, stratify=stratify, seed=seed)
    ids = np.concatenate([X_tr[:, 0], X_te[:, 0]]) // 2
    np.testing.assert_array_equal(np.sort(ids), np.arange(len(y)))  # disjoint, complete
    assert len(X_te) == round(test_size * len(y))
    np.testing.assert_array_equal(y_tr, y[(X_tr[:, 0] // 2).astype(int)])  # pairs kept
    assert (np.diff(X_tr[:, 0]) > 0).all() and (np.diff(X_te[:, 0]) > 0).all()  # order kept
    if stratify:
        for c in np.unique(y):
            share = test_size * np.sum(y == c)
            assert abs(np.sum(y_te == c) - share) <= 1 + 1e-9
    again = P.train_test_split(X, y, test_size, stratify=stratify, seed=seed)
    np.testing.assert_array_equal(again[1][0], X_te)


@settings(max_examples=20)
@given(n=st.integers(1, 40), val=st.floats(0.05, 0.45), test=st.floats(0.05, 0.45))
def test_train_val_test_split_is_three_disjoint_parts(n, val, test):
    X, y = np.arange(n, dtype=np.float64)[:, None], np.arange(n)
    parts = P.train_val_test_split(X, y, val, test, seed=0)
    np.testing.assert_array_equal(np.sort(np.concatenate([p[1] for p in parts])), y)
    with pytest.raises(ValueError):
        P.train_val_test_split(X, y, 0.6, 0.4)


@settings(max_examples=EXAMPLES)
@given(
    n=st.integers(0, 50),
    batch_size=st.integers(1, 17),
    shuffle=st.booleans(),
    drop_last=st.booleans(),
)
def test_batches_cover_every_example_once(n, batch_size, shuffle, drop_last):
    X, y = np.arange(n, dtype=np.float32)[:, None], np.arange(n)
    got = list(P.batches(X, y, batch_size, shuffle=shuffle, seed=1, drop_last=drop_last))
    sizes = [len(b[0]) for b in got]
    assert all(s == batch_size for s in sizes[:-1])
    assert sum(sizes) == (n - n % batch_size if drop_last else n)
    seen = np.concatenate([b[1] for b in got]) if got else np.array([], int)
    assert len(np.unique(seen)) == len(seen)
    for xb, yb in got:
        np.testing.assert_array_equal(xb[:, 0], yb)
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(len(seen)))
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch_size"):
            next(P.batches(X, y, bad))


# ---------------------------------------------------------------------- cuda


@pytest.mark.cuda
@pytest.mark.parametrize("op", [*UNARY, "softmax", "log_softmax_backward", "prelu"])
def test_cuda_agrees_with_the_reference_and_the_math(op):
    """Few, small examples: under the CUDA simulator each GPU thread is a Python thread.

    NOTE: moderate values only: the simulator runs the kernels on NumPy scalars in its own
    threads, where an overflow (1e30 * 1e30 in float32) is a RuntimeWarning that the test
    settings make an error; a GPU computes the same inf silently. The huge and tiny values
    are covered on cpu."""
    if op in SOFTMAX_MATH:
        _softmax_property(op, "cuda", CUDA_EXAMPLES, max_side=3, wide=False)()
    elif op == "prelu":
        _prelu_property("cuda", CUDA_EXAMPLES, max_side=3, wide=False)()
    else:
        _unary_property(op, op == "gelu", "cuda", CUDA_EXAMPLES, max_side=3, wide=False)()


@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(LOSS_CLASSES))
def test_cuda_losses(name):
    _loss_property(name, "cuda", CUDA_EXAMPLES, max_side=3, wide=False)()
