"""Numerics of the functional ops, judged by the math itself (independent float64
formulas, ``np.maximum``, Python's ``math.erfc``), on every backend:

* NaN propagates through the ReLU family and the fused Dense + ReLU, as it does through
  ``np.maximum`` and PyTorch (a NaN read as 0 makes divergence look like dead units);
  the derivative at NaN is NaN;
* GELU and SiLU keep their tails (relative error, not absolute) and their limits at
  +-inf;
* the reductions of the cpu kernels (PReLU's alpha gradient, dense's bias gradient, the
  loss sums) give bit-identical results whatever ``NUMBA_NUM_THREADS`` is;
* 0-size inputs work for every functional op wherever the reference works;
* inputs are never written to, whatever their layout (read-only, strided, negative
  strides, Fortran order, byte-swapped).
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from cases import SIMULATOR

import nnlib.functional as F
from nnlib._backend import dispatch
from nnlib.testing import assert_close, to_host, tolerance

ALL = ["numpy", "cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
NAN, INF = float("nan"), float("inf")


def _erfc(v):
    return np.vectorize(math.erfc, otypes=[np.float64])(v)


def _phi_cdf(x):
    """Phi(x) = erfc(-x / sqrt 2) / 2: keeps the left tail (1 + erf(...) cancels there)."""
    return 0.5 * _erfc(-np.asarray(x, np.float64) / math.sqrt(2))


def _phi_pdf(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _gelu64(x):
    return x * _phi_cdf(x)


def _gelu_grad64(x):
    return _phi_cdf(x) + x * _phi_pdf(x)


def _sigmoid64(x):
    return np.array(
        [1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v)) for v in x]
    )


def _silu64(x):
    return x * _sigmoid64(x)


def _silu_grad64(x):
    s, q = _sigmoid64(x), _sigmoid64(-x)  # q = 1 - s without cancellation
    return s * (1 + x * q)


def _relative_error(got, want, floor):
    """max |got - want| / |want| over the elements where |want| >= floor."""
    got, want = np.asarray(to_host(got), np.float64), np.asarray(want, np.float64)
    keep = np.abs(want) >= floor
    assert keep.sum() > 10
    return float(np.max(np.abs(got[keep] - want[keep]) / np.abs(want[keep])))


# ------------------------------------------------------------------ NaN, ReLU family

X_SPECIAL = np.array([NAN, -2.0, -0.0, 0.0, 3.0, -INF, INF])


def _where_nan(x, value):
    """``value``, with NaN wherever x is NaN: the derivative at NaN is NaN."""
    return np.where(np.isnan(x), np.nan, value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", ALL)
def test_relu_family_propagates_nan(backend, dtype):
    x = X_SPECIAL.astype(dtype)
    dy = np.full_like(x, 2)
    b = {"backend": backend}
    with np.errstate(invalid="ignore"):
        expect = {
            "relu": (np.maximum(x, 0), _where_nan(x, np.where(x > 0, dy, 0))),
            "leaky_relu": (
                _where_nan(x, np.where(x > 0, x, 0.1 * x)),
                _where_nan(x, np.where(x > 0, dy, 0.1 * dy)),
            ),
            "elu": (
                _where_nan(x, np.where(x > 0, x, 0.5 * np.expm1(np.minimum(x, 0)))),
                _where_nan(x, np.where(x > 0, dy, dy * 0.5 * np.exp(np.minimum(x, 0)))),
            ),
        }
    kw = {"relu": {}, "leaky_relu": {"alpha": 0.1}, "elu": {"alpha": 0.5}}
    for op, (y, dx) in expect.items():
        got = to_host(getattr(F, op)(x, **kw[op], **b))
        np.testing.assert_allclose(got, y.astype(dtype), rtol=1e-6, err_msg=op)
        got = to_host(getattr(F, op + "_backward")(dy, x, **kw[op], **b))
        np.testing.assert_allclose(got, dx.astype(dtype), rtol=1e-6, err_msg=op + "_backward")


@pytest.mark.parametrize("per_feature", [False, True])
@pytest.mark.parametrize("backend", ALL)
def test_prelu_propagates_nan(backend, per_feature):
    x = np.array([[NAN, -2.0, 1.0], [-1.0, -3.0, 2.0]])
    dy = np.ones_like(x)
    alpha = np.array([0.1, 0.2, 0.3]) if per_feature else np.array(0.25)
    a = alpha if per_feature else np.full(3, 0.25)
    y = F.prelu(x, alpha, backend=backend)
    np.testing.assert_array_equal(y, _where_nan(x, np.where(x > 0, x, a * x)))
    dx, dalpha = F.prelu_backward(dy, x, alpha, backend=backend)
    np.testing.assert_array_equal(dx, _where_nan(x, np.where(x > 0, dy, a * dy)))
    want = np.array([NAN, -5.0, 0.0]) if per_feature else np.array(NAN)
    np.testing.assert_array_equal(dalpha, want)


def _dense_expected(x, W, b, dy):
    """Dense + ReLU from the math: y = max(x W + b, 0) (NaN kept), dz = dy relu'(z) with
    relu'(NaN) = NaN."""
    z = x @ W + b
    y = np.maximum(z, 0)
    dz = _where_nan(y, np.where(y > 0, dy, 0))
    return y, dz @ W.T, x.T @ dz, dz.sum(axis=0)


@pytest.mark.parametrize("first", [False, pytest.param(True, marks=pytest.mark.cuda)])
@pytest.mark.parametrize("backend", ALL)
def test_fused_dense_relu_propagates_nan(backend, first):
    if first and backend != "cuda":
        pytest.skip("first versions exist on cuda only")
    from nnlib.ops._launch import first_version

    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    x[1, 2] = NAN
    dy = rng.standard_normal((5, 3))
    fwd = first_version("dense_forward") if first else dispatch("dense_forward", backend)
    bwd = first_version("dense_backward") if first else dispatch("dense_backward", backend)
    y_want, dx_want, dW_want, db_want = _dense_expected(x, W, b, dy)
    y = to_host(fwd(x, W, b, 1))
    assert np.isnan(y[1]).all(), f"a NaN pre-activation came out as {y[1]}"
    np.testing.assert_allclose(y, y_want, rtol=1e-12)
    dx, dW, db = (to_host(a) for a in bwd(dy, x, W, y, 1, 1))
    np.testing.assert_allclose(dx, dx_want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dW, dW_want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(db, db_want, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ GELU and SiLU tails

# float64: down to where the result underflows (gelu(-37.5) ~ 1e-306, silu(-700) ~ 1e-302)
X_GELU = np.concatenate([np.linspace(-37.5, 37.5, 3001), [-5.55, -8.0, -8.5, -12.0, -20.0]])
X_SILU = np.concatenate([np.linspace(-700, 700, 2801), np.linspace(-20, 20, 801)])
TAILS = {  # op: (x, exact float64 formula)
    "gelu": (X_GELU, _gelu64),
    "gelu_backward": (X_GELU, _gelu_grad64),
    "silu": (X_SILU, _silu64),
    "silu_backward": (X_SILU, _silu_grad64),
}


def _call(op, x, backend):
    if op.endswith("_backward"):
        return getattr(F, op)(np.ones_like(x), x, backend=backend)
    return getattr(F, op)(x, backend=backend)


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("op", TAILS)
def test_smooth_relus_keep_their_tails_in_float64(op, backend):
    x, exact = TAILS[op]
    if SIMULATOR and backend == "cuda":
        x = x[::8]
    err = _relative_error(_call(op, x, backend), exact(x), floor=1e-300)
    assert err <= 1e-6, f"{op} on {backend}: relative error {err:.2e} (worst in the tails?)"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", ALL)
def test_smooth_relus_are_exact_at_infinity(backend, dtype):
    x = np.array([-INF, INF], dtype)
    for op, want in [
        ("gelu", [0, INF]),
        ("silu", [0, INF]),
        ("gelu_backward", [0, 1]),
        ("silu_backward", [0, 1]),
    ]:
        got = to_host(_call(op, x, backend))
        np.testing.assert_array_equal(got, np.array(want, dtype), err_msg=f"{op} at -inf, inf")


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("op", TAILS)
def test_float32_tails_are_relative(op, backend):
    """float32 results keep their relative precision where they are normal numbers
    (gelu(-5.55) is -8.1e-8, not -0)."""
    x, exact = TAILS[op]
    x32 = x[np.abs(x) < 80].astype(np.float32)
    if SIMULATOR and backend == "cuda":
        x32 = x32[::8]
    want = exact(x32.astype(np.float64))
    _, rtol = tolerance(np.float32)
    err = _relative_error(_call(op, x32, backend), want, floor=np.finfo(np.float32).tiny)
    assert err <= rtol, f"{op} float32 on {backend}: relative error {err:.2e}"


@pytest.mark.parametrize("backend", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("op", TAILS)
def test_float32_backends_agree_with_the_numpy_backend(op, backend):
    x = np.linspace(-40, 40, 100_001 if not SIMULATOR else 801).astype(np.float32)
    got, want = _call(op, x, backend), _call(op, x, "numpy")
    assert_close(got, want, name=f"{op} {backend}")
    # and relatively in the tails, where the table's atol would let -0 pass for -8e-8
    tails = np.abs(x) >= 3
    _, rtol = tolerance(np.float32)
    err = _relative_error(to_host(got)[tails], want[tails], floor=np.finfo(np.float32).tiny)
    assert err <= rtol, f"{op} float32, {backend} against numpy: relative error {err:.2e}"


# ------------------------------------------------------------------ determinism

_DETERMINISM = """
import sys
import numpy as np
import nnlib.functional as F
from nnlib._backend import dispatch

rng = np.random.default_rng(42)
out = {}
for dtype in (np.float32, np.float64):
    x = rng.standard_normal((4099, 7)).astype(dtype)
    dy = rng.standard_normal((4099, 7)).astype(dtype)
    per_feature = np.linspace(0.1, 0.7, 7, dtype=dtype)
    for name, alpha in (("scalar", np.array(0.2, dtype)), ("per", per_feature)):
        dx, da = F.prelu_backward(dy, x, alpha, backend="cpu")
        out[f"prelu {name} {dtype.__name__}"] = np.asarray(da)
        out[f"prelu dx {name} {dtype.__name__}"] = dx
    xd, W, b = (rng.standard_normal(s).astype(dtype) for s in ((3001, 33), (33, 40), (40,)))
    y = dispatch("dense_forward", "cpu")(xd, W, b, 1)
    dyd = rng.standard_normal(y.shape).astype(dtype)
    dx, dW, db = dispatch("dense_backward", "cpu")(dyd, xd, W, y, 1, 1)
    out[f"dense y {dtype.__name__}"], out[f"dense db {dtype.__name__}"] = y, db
    out[f"dense dW {dtype.__name__}"], out[f"dense dx {dtype.__name__}"] = dW, dx
    z = (rng.standard_normal((20011, 10)) * 3).astype(dtype)
    labels = rng.integers(0, 10, 20011)
    acc = np.zeros(2)
    ce = dispatch("softmax_cross_entropy", "cpu")
    out[f"ce grad {dtype.__name__}"] = ce(z, labels, 1e-3, acc)
    out[f"ce acc {dtype.__name__}"] = acc
    p = rng.uniform(0.01, 0.99, 300_007).astype(dtype)
    t = (rng.uniform(size=300_007) > 0.5).astype(dtype)
    for loss in ("mse", "bce", "bce_with_logits"):
        acc = np.zeros(2)
        dispatch(loss, "cpu")(p, t, 1e-3, acc)
        out[f"{loss} acc {dtype.__name__}"] = acc
np.savez(sys.argv[1], **out)
"""


def test_cpu_reductions_do_not_depend_on_the_thread_count(tmp_path):
    """The same inputs give bit-identical results with 1 and with 2 Numba threads."""
    import os

    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(_DETERMINISM))
    results = {}
    for threads in ("1", "2"):
        env = {**os.environ, "NUMBA_NUM_THREADS": threads}
        target = tmp_path / f"threads{threads}.npz"
        proc = subprocess.run(
            [sys.executable, str(script), str(target)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[threads] = dict(np.load(target))
    one, two = results["1"], results["2"]
    differ = [k for k in one if one[k].tobytes() != two[k].tobytes()]
    assert not differ, f"results that depend on NUMBA_NUM_THREADS: {differ}"


# ------------------------------------------------------------------ 0-size inputs

EMPTY_SHAPES = [(0,), (3, 0), (0, 4), (2, 0, 3)]
UNARY = {
    "relu": {},
    "leaky_relu": {"alpha": 0.1},
    "elu": {"alpha": 0.7},
    "sigmoid": {},
    "tanh": {},
    "gelu": {},
    "silu": {},
}


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=str)
def test_every_functional_op_takes_a_0_size_input(shape, backend):
    x = np.zeros(shape, np.float32)
    b = {"backend": backend}
    results = []
    for op, kw in UNARY.items():
        results += [getattr(F, op)(x, **kw, **b), getattr(F, op + "_backward")(x, x, **kw, **b)]
    for op in ("softmax", "log_softmax"):
        for axis in range(-len(shape), len(shape)):
            if backend == "cuda" and axis != -1:
                continue  # a GPU array takes the last axis only; host arrays any
            results.append(getattr(F, op)(x, axis=axis, **b))
            results.append(getattr(F, op + "_backward")(x, x, axis=axis, **b))
    for alpha in (np.float32(0.2), np.full(shape[-1], 0.2, np.float32)):
        results.append(F.prelu(x, alpha, **b))
        dx, dalpha = F.prelu_backward(x, x, alpha, **b)
        assert np.shape(dalpha) == np.shape(alpha)
        np.testing.assert_array_equal(to_host(dalpha), np.zeros_like(alpha))
        results.append(dx)
    for r in results:
        assert tuple(r.shape) == shape and np.dtype(r.dtype) == np.float32


# ------------------------------------------------------------------ input layouts


def _layouts(base):
    """Views a caller may pass: read-only, strided, negative strides, Fortran order,
    byte-swapped; each with a contiguous copy to compute the expected result from."""
    ro = base.copy()
    ro.flags.writeable = False
    swapped = base.astype(base.dtype.newbyteorder(">" if sys.byteorder == "little" else "<"))
    return {
        "read-only": ro,
        "strided": base[::2, ::3],
        "negative strides": base[::-1, ::-2],
        "fortran": np.asfortranarray(base),
        "transposed": base.T,
        "byte-swapped": swapped,
    }


# NOTE: on cuda a host input of any layout is made contiguous by the same host code
# before the copy to the GPU; under the simulator (about 12 s a layout) two layouts cover
# both of its paths: a stride change and a dtype change.
_CUDA_LAYOUTS = ("negative strides", "byte-swapped")


@pytest.mark.parametrize(
    ("layout", "backend"),
    [(layout, backend) for layout in _layouts(np.zeros((2, 2))) for backend in ("numpy", "cpu")]
    + [pytest.param(layout, "cuda", marks=pytest.mark.cuda) for layout in _CUDA_LAYOUTS],
)
def test_any_input_layout_gives_the_contiguous_result_and_is_not_written(layout, backend):
    rng = np.random.default_rng(5)
    base = (rng.standard_normal((8, 12)) * 3).astype(np.float32)
    x = _layouts(base)[layout]
    dy = _layouts((rng.standard_normal((8, 12))).astype(np.float32))[layout]
    snapshot = (x.copy(), dy.copy())
    xc, dyc = np.array(x, np.float32, order="C"), np.array(dy, np.float32, order="C")
    b = {"backend": backend}
    for op, kw in UNARY.items():
        assert_close(getattr(F, op)(x, **kw, **b), getattr(F, op)(xc, **kw, **b), name=op)
        assert_close(
            getattr(F, op + "_backward")(dy, x, **kw, **b),
            getattr(F, op + "_backward")(dyc, xc, **kw, **b),
            name=op + "_backward",
        )
    for op in ("softmax", "log_softmax"):
        for axis in (0, -1) if backend != "cuda" else (-1,):
            f, g = getattr(F, op), getattr(F, op + "_backward")
            assert_close(f(x, axis=axis, **b), f(xc, axis=axis, **b), name=op)
            assert_close(g(dy, x, axis=axis, **b), g(dyc, xc, axis=axis, **b), name=op)
    alpha = np.linspace(0.1, 0.9, 2 * x.shape[-1], dtype=np.float32)[::2]  # strided
    assert_close(F.prelu(x, alpha, **b), F.prelu(xc, alpha.copy(), **b), name="prelu")
    for got, want in zip(
        F.prelu_backward(dy, x, alpha, **b),
        F.prelu_backward(dyc, xc, alpha.copy(), **b),
        strict=True,
    ):
        assert_close(got, want, name="prelu_backward")
    np.testing.assert_array_equal(x, snapshot[0])
    np.testing.assert_array_equal(dy, snapshot[1])


def test_a_byte_swapped_array_keeps_its_float_dtype():
    x = np.arange(4.0).astype(">f8" if sys.byteorder == "little" else "<f8")
    y = F.relu(x, backend="cpu")
    assert y.dtype == np.float64 and y.dtype.isnative
    np.testing.assert_array_equal(y, [0, 1, 2, 3])


# ------------------------------------------------------------------ PReLU's alpha


@pytest.mark.parametrize("backend", ALL)
def test_prelu_alpha_of_shape_1_is_one_slope(backend):
    """alpha of shape (1,) is one slope for every feature (as PyTorch's
    PReLU(num_parameters=1)): Sequential.astype used to turn a 0-d alpha into (1,), and
    gradcheck of a model with PReLU failed on it."""
    x = np.array([[-1.0, 2.0, -3.0], [4.0, -5.0, 6.0]])
    alpha = np.array([0.5])
    np.testing.assert_array_equal(
        to_host(F.prelu(x, alpha, backend=backend)), np.where(x > 0, x, 0.5 * x)
    )
    _, dalpha = F.prelu_backward(np.ones_like(x), x, alpha, backend=backend)
    assert np.shape(dalpha) == (1,)
    np.testing.assert_allclose(to_host(dalpha), [-9.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", ALL)
def test_prelu_takes_a_python_number_alpha_on_every_backend(backend, dtype):
    x = np.array([-2.0, 3.0], dtype)
    if backend == "cuda":
        from numba import cuda

        x = cuda.to_device(x)
    for alpha in (0.25, np.float32(0.25), np.float64(0.25), np.array(0.25)):
        y = to_host(F.prelu(x, alpha, backend=backend))
        assert y.dtype == dtype
        np.testing.assert_array_equal(y, np.array([-0.5, 3.0], dtype))
        dx, dalpha = F.prelu_backward(x, x, alpha, backend=backend)
        assert np.dtype(dx.dtype) == dtype and np.dtype(dalpha.dtype) == dtype
        np.testing.assert_allclose(to_host(dalpha), 4.0)


@pytest.mark.cuda
def test_prelu_gpu_alpha_of_another_dtype_says_what_to_do():
    from numba import cuda

    x = cuda.to_device(np.ones((2, 3)))
    with pytest.raises(
        TypeError, match=r"alpha must have the dtype of x, float64; got float32\. Make alpha"
    ):
        F.prelu(x, cuda.to_device(np.ones(3, np.float32)), backend="cuda")


@pytest.mark.parametrize("per_feature", [False, True])
def test_gradcheck_of_a_model_with_prelu(per_feature):
    """The float64 path of a model with PReLU: gradcheck works on model.astype(float64),
    which turns the scalar alpha's shape () into (1,)."""
    import nnlib as nl
    from nnlib.gradient_check import gradcheck

    X = np.random.default_rng(0).standard_normal((8, 3))
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    model = nl.Sequential(
        [nl.Dense(3, 5, seed=0), nl.PReLU(per_feature=per_feature), nl.Dense(5, 3, seed=1)]
    )
    result = gradcheck(model, X, y, loss="softmax_cross_entropy")
    assert result.passed, str(result)
