"""The vectorizable exp and expm1 of the cpu kernels (nnlib/ops/_vecmath.py), and the
kernels that use them.

* accuracy against ``np.exp``/``np.expm1`` in float64 (rounded once for float32) over
  the whole range, next to overflow (+-88 / +-709), in the subnormal range, and exactly
  at +-inf, NaN, +-0: at most 1 ulp (exp) and 2 ulp (expm1), both for the compiled
  version and for the NumPy reference of the algorithm;
* its pieces: ``pow2`` is exact, the two-part ln 2 is exact to its last bit;
* the Mills ratio behind the cpu GELU (its polynomial is recomputed here);
* the tuned cpu kernels are vectorized: the LLVM IR of each has the exp's rounding step
  as a vector instruction (``llvm.rint.v16f32`` and the like) and no scalar exp call
  left; the first, scalar versions (``*_cpu_v1``) fail the same check, and agree with
  the reference.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, getcontext

import numpy as np
import pytest
from numba import njit, types

import nnlib.functional as F
from nnlib.ops import _vecmath as V
from nnlib.ops import activations as A
from nnlib.ops import softmax as S
from nnlib.ops._launch import KERNELS
from nnlib.testing import assert_close


@njit
def _exp_loop(x, out):
    for i in range(x.size):
        out[i] = V.vexp(x[i])


@njit
def _expm1_loop(x, out):
    for i in range(x.size):
        out[i] = V.vexpm1(x[i])


def _compiled(fn):
    def run(x):
        out = np.empty_like(x)
        fn(x, out)
        return out

    return run


EXP = {"compiled": _compiled(_exp_loop), "reference": V.exp_ref}
EXPM1 = {"compiled": _compiled(_expm1_loop), "reference": V.expm1_ref}
BOUND_ULP = {"exp": 1.0, "expm1": 2.0}  # the measured maximum: tightened to it


def _inputs(dtype):
    """The whole range, the edges of overflow and underflow, tiny arguments, specials."""
    if dtype == np.float32:
        whole, edges = (-110.0, 95.0), [88.0, 88.72, 88.73, -87.3, -88.0, -103.9, -104.0]
    else:
        whole, edges = (-750.0, 715.0), [709.0, 709.78, 709.79, -708.4, -709.0, -745.1, -745.2]
    tiny = np.geomspace(1e-30 if dtype == np.float32 else 1e-300, 1, 3001)
    parts = [
        np.linspace(*whole, 400_001),
        np.linspace(-1, 1, 100_001),
        np.concatenate([np.linspace(e - 0.5, e + 0.5, 2001) for e in edges]),
        tiny,
        -tiny,
        [np.finfo(dtype).tiny, np.finfo(dtype).smallest_subnormal, -np.finfo(dtype).tiny],
    ]
    return np.concatenate([np.asarray(p, np.float64) for p in parts]).astype(dtype)


def _ulp_error(got, want):
    """max |got - want| in units of the last place of want (want rounded to got's dtype;
    a subnormal's ulp is the subnormal spacing), over the finite, non-zero want."""
    finite = np.isfinite(want) & (want != 0)
    spacing = np.spacing(np.abs(want[finite])).astype(np.float64)
    return float(np.max(np.abs(got[finite].astype(np.float64) - want[finite]) / spacing))


def _want(fn, x):
    with np.errstate(over="ignore"):
        return fn(x.astype(np.float64)).astype(x.dtype)


@pytest.mark.parametrize("version", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["exp", "expm1"])
def test_exp_accuracy_over_the_whole_range(name, dtype, version):
    x = _inputs(dtype)
    got = (EXP if name == "exp" else EXPM1)[version](x)
    want = _want(np.exp if name == "exp" else np.expm1, x)
    assert got.dtype == dtype
    err = _ulp_error(got, want)
    assert err <= BOUND_ULP[name], f"{name} {dtype.__name__} ({version}): {err} ulp"
    # 0, inf, -1 and the subnormal results: exactly where np.exp gives them
    exact = ~(np.isfinite(want) & (want != 0))
    np.testing.assert_array_equal(got[exact], want[exact])
    if name == "exp":
        sub = (want > 0) & (want < np.finfo(dtype).tiny)
        assert sub.sum() > 100  # the subnormal range is covered
        assert np.max(np.abs(got[sub] - want[sub])) <= np.finfo(dtype).smallest_subnormal


@pytest.mark.parametrize("version", ["compiled", "reference"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_special_values(dtype, version):
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e30, -1e30], dtype)
    e, m = EXP[version](x), EXPM1[version](x)
    np.testing.assert_array_equal(e, np.array([np.inf, 0, np.nan, 1, 1, np.inf, 0], dtype))
    np.testing.assert_array_equal(m, np.array([np.inf, -1, np.nan, 0, -0.0, np.inf, -1], dtype))
    assert not np.signbit(m[3]) and np.signbit(m[4]), "expm1(-0.0) must be -0.0"
    sub = np.array([np.finfo(dtype).smallest_subnormal, -3 * np.finfo(dtype).smallest_subnormal])
    np.testing.assert_array_equal(EXPM1[version](sub.astype(dtype)), sub.astype(dtype))


def test_the_accuracy_check_can_fail():
    """A planted error of 3 ulp in exp is caught by the bound."""
    x = _inputs(np.float32)
    want = _want(np.exp, x)
    got = EXP["compiled"](x)
    worse = got + 3 * np.spacing(got)
    assert _ulp_error(worse, want) > BOUND_ULP["exp"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pow2_is_exact(dtype):
    info = np.finfo(dtype)
    n = np.arange(info.minexp, info.maxexp).astype(dtype)

    @njit
    def run(n, out):
        for i in range(n.size):
            out[i] = V.pow2(n[i])

    out = np.empty_like(n)
    run(n, out)
    np.testing.assert_array_equal(out, np.ldexp(np.ones_like(n), n.astype(int)))
    np.testing.assert_array_equal(V._pow2_ref(n, np.dtype(dtype)), out)


def test_two_part_ln2():
    """LN2_HI has enough zero low bits for n * LN2_HI to be exact (|n| <= 1100 float64,
    <= 160 float32), and LN2_LO is ln 2 - LN2_HI rounded to nearest (so the pair is ln 2
    to about twice the working precision)."""
    getcontext().prec = 50
    ln2 = Decimal(2).ln()
    for hi, lo, n_max in [
        (V.LN2_HI64, V.LN2_LO64, 1100),
        (V.LN2_HI32, V.LN2_LO32, 160),
    ]:
        for n in range(-n_max, n_max + 1):
            assert Decimal(n) * Decimal(float(hi)) == Decimal(float(n * hi)), (hi, n)
        half_ulp = Decimal(float(np.spacing(np.abs(lo)))) / 2
        assert abs(Decimal(float(hi)) + Decimal(float(lo)) - ln2) <= half_ulp


# ---------------------------------------------------------------------- GELU's erfc


def _mills_exact(a):
    from scipy import special

    return special.erfcx(a / math.sqrt(2)) * math.sqrt(math.pi / 2)


def test_mills_ratio_polynomial_is_the_stated_interpolant():
    from numpy.polynomial import chebyshev, polynomial

    k, n = A.MILLS_K, len(A.MILLS_P) - 1
    lo = 1 / (1 + k * 40.0)
    cheb = chebyshev.Chebyshev.interpolate(
        lambda t: _mills_exact((1 / t - 1) / k) / t, n, domain=[lo, 1]
    )
    coef = cheb.convert(kind=polynomial.Polynomial, domain=[lo, 1], window=[lo, 1]).coef
    np.testing.assert_allclose(coef, A.MILLS_P, rtol=1e-9, atol=1e-12)


def test_mills_ratio_relative_error():
    a = np.concatenate([np.linspace(0, 40, 200_001), np.geomspace(1e-10, 1, 1001)])

    @njit
    def run(a, out):
        for i in range(a.size):
            out[i] = A._mills(a[i])

    out = np.empty_like(a)
    run(a, out)
    want = _mills_exact(a)
    err = np.max(np.abs(out - want) / want)
    assert err < 1e-14, f"Mills ratio: relative error {err:.2e}"


# ---------------------------------------------------------------------- vectorization

ELEMENTWISE_TUNED = ["sigmoid", "tanh", "gelu", "silu", "elu"]
TUNED = [
    *(op + sfx for op in ELEMENTWISE_TUNED for sfx in ("", "_backward")),
    *("softmax", "softmax_backward", "log_softmax", "log_softmax_backward"),
]
FIRST_VERSIONS = {
    "sigmoid": A.sigmoid_cpu_v1,
    "tanh": A.tanh_cpu_v1,
    "gelu": A.gelu_cpu_v1,
    "silu": A.silu_cpu_v1,
    "elu": A.elu_cpu_v1,
    "sigmoid_backward": A.sigmoid_backward_cpu_v1,
    "tanh_backward": A.tanh_backward_cpu_v1,
    "gelu_backward": A.gelu_backward_cpu_v1,
    "silu_backward": A.silu_backward_cpu_v1,
    "elu_backward": A.elu_backward_cpu_v1,
    "softmax": S.softmax_cpu_v1,
    "softmax_backward": S.softmax_backward_cpu_v1,
    "log_softmax": S.log_softmax_cpu_v1,
    "log_softmax_backward": S.log_softmax_backward_cpu_v1,
}
# A vector rounding instruction: the ``rint`` of exp's range reduction, done for a whole
# vector of elements at once (llvm.rint.v16f32: 16 float32 lanes).
VECTOR_EXP = re.compile(r"@llvm\.rint\.v(\d+)f(?:32|64)\(")
# A scalar exp left in the loop: libm's or LLVM's scalar intrinsic.
SCALAR_CALL = re.compile(r"@(?:llvm\.exp\.f(?:32|64)|expf?|expm1f?|tanhf?|erfcf?)\(")


def _simd_host():
    from llvmlite import binding

    features = binding.get_host_cpu_features()
    return any(features.get(f, False) for f in ("avx2", "avx512f", "neon", "asimd"))


def _signature(op, dtype):
    width = 2 if "softmax" in op else 1
    arr = types.Array(dtype, width, "C")
    arrays = 3 if op.endswith("_backward") else 2  # (dy,) x, out
    return (arr,) * (arrays - 1) + ((dtype,) if op.startswith("elu") else ()) + (arr,)


def _vectorized(py_func, sig):
    """Whether the compiled ``py_func`` computes exp on vectors: (verdict, evidence)."""
    fresh = njit(parallel=True)(py_func)  # fresh: a cached kernel cannot be inspected
    fresh.compile(sig)
    ir = fresh.inspect_llvm(fresh.signatures[0])
    lanes = [int(n) for n in VECTOR_EXP.findall(ir)]
    scalar = sorted(set(SCALAR_CALL.findall(ir)))
    return bool(lanes) and max(lanes) >= 4 and not scalar, f"lanes {lanes}, scalar {scalar}"


needs_simd = pytest.mark.skipif(
    not _simd_host(),
    reason="this CPU has no AVX2, AVX-512 or NEON: LLVM's cost model may keep exp scalar",
)


@needs_simd
@pytest.mark.parametrize("op", TUNED)
def test_tuned_cpu_kernel_is_vectorized(op):
    vectorized, evidence = _vectorized(KERNELS[op, "cpu"].py_func, _signature(op, types.float32))
    assert vectorized, f"{op} float32: the exp is not vectorized ({evidence})"


@needs_simd
@pytest.mark.parametrize("op", ["sigmoid", "elu_backward", "softmax"])
def test_tuned_cpu_kernel_is_vectorized_in_float64(op):
    vectorized, evidence = _vectorized(KERNELS[op, "cpu"].py_func, _signature(op, types.float64))
    assert vectorized, f"{op} float64: the exp is not vectorized ({evidence})"


@needs_simd
@pytest.mark.parametrize("op", ["sigmoid", "tanh", "softmax"])
def test_the_vectorization_check_fails_on_a_first_version(op):
    """The oracle can fail: the scalar first versions are not vectorized."""
    vectorized, evidence = _vectorized(FIRST_VERSIONS[op].py_func, _signature(op, types.float32))
    assert not vectorized, evidence


# ---------------------------------------------------------------------- first versions


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", sorted(FIRST_VERSIONS))
def test_first_versions_agree_with_the_reference(op, dtype):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((37, 29)) * 4).astype(dtype)
    dy = rng.standard_normal((37, 29)).astype(dtype)
    kernel = FIRST_VERSIONS[op]
    args = [dy, x] if op.endswith("_backward") else [x]
    extra = (dtype(0.7),) if op.startswith("elu") else ()
    kw = {"alpha": 0.7} if extra else {}
    if "softmax" in op:
        out = np.empty_like(x)
        kernel(*args, out)
    else:
        out = np.empty(x.size, dtype)
        kernel(*(a.reshape(-1) for a in args), *extra, out)
        out = out.reshape(x.shape)
    if "softmax" in op:
        kw = {"axis": -1}
    want = getattr(F, op)(*(a.astype(np.float64) for a in args), backend="numpy", **kw)
    assert_close(out, want.astype(dtype), name=f"{op} first version")
