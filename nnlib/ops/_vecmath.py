"""exp and expm1 that LLVM can vectorize, for the cpu kernels: the NumPy reference and
the Numba version side by side.

Why: llvmlite's PyPI wheels are built without Intel's SVML, so ``math.exp`` inside a
Numba kernel is a call to the scalar libm function, and LLVM does not vectorize a loop
that makes such a call. The functions here are written only with operations that have
vector instructions (multiply-add, rounding, integer shifts, selects), so a loop that
calls them runs 8 or 16 elements per instruction (``<16 x float>`` on AVX-512).

The algorithm (Cody and Waite's range reduction, then a polynomial):

1. clamp x to the range where the result is neither 0 nor inf *exactly* (beyond it the
   clamped value still gives 0 or inf); NaN goes through the clamps untouched;
2. ``n = rint(x / ln 2)``, ``r = x - n ln 2``, so ``|r| <= ln(2) / 2`` and
   ``exp(x) = 2**n * exp(r)``. ``n ln 2`` is subtracted in two parts, ``LN2_HI`` (its
   low bits are zero, so ``n * LN2_HI`` is exact) and then ``LN2_LO``: r keeps its
   precision even for n = 1000;
3. ``exp(r)`` by its Taylor polynomial, degree 7 for float32 and 13 for float64 (the
   first neglected term, ``(ln(2)/2)**(d+1) / (d+1)!``, is 5e-9 and 4e-18 relative: below
   a tenth of an ulp), by Horner's rule;
4. ``2**n`` from the exponent bits: ``(n + bias) << mantissa_bits`` read as a float
   (:func:`pow2`). The scaling is done in two halves, ``2**(n // 2) * 2**(n - n // 2)``,
   so that a result below the smallest normal number (a subnormal) is rounded once,
   correctly, and one above the largest float overflows to inf.

``expm1(x) = exp(x) - 1`` without the cancellation for small x: the same reduction,
``exp(r) - 1 = r + r**2/2 + ...`` (no constant term: relative accuracy as r -> 0), and
``expm1(x) = 2**n (exp(r) - 1) + (2**n - 1)``, computed as
``2 * (h (exp(r) - 1) + (h - 1/2))`` with ``h = 2**(n - 1)`` so that no ``2**n`` overflows
before the result does; for ``|x|`` below ``EXPM1_TINY`` the result is x itself.

Measured accuracy (tests/test_vecmath.py, against ``np.exp``/``np.expm1`` in float64,
rounded for float32): at most 1 ulp in float32 and 2 ulp in float64 over the whole
range, subnormal results included; exactly 0, inf, NaN and 1 (at +-0) where ``np.exp``
gives them.

``float32`` data is computed in float32 (twice the lanes of float64). The functions keep
the dtype: ``vexp(float32) -> float32``; :func:`typed` makes a constant of the same dtype
as a value, so a formula written once stays in float32 for float32 data (a float64
literal such as ``1.0`` would silently promote it).

NOTE: Numba's ``cache=True`` tracks only the file that defines a kernel: after editing
this file, delete the kernels' cache (``find nnlib -name '*.nbi' -delete``), or the
activation and softmax kernels keep the old code.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

LOG2E = 1.4426950408889634  # 1 / ln 2
# ln 2 = LN2_HI + LN2_LO, LN2_HI with its low 21 (float64) / 15 (float32) mantissa bits
# zero, so that n * LN2_HI is exact for every n the clamps allow.
LN2_HI64, LN2_LO64 = 6.93147180369123816490e-01, 1.90821492927058770002e-10
LN2_HI32, LN2_LO32 = np.float32(0.693359375), np.float32(-2.12194440e-4)

# Clamps: exp(x) is inf in float32 above 88.73 and 0 below -103.98 (float64: 709.79 and
# -745.14); a little beyond, the clamped value still rounds to inf or 0.
# expm1 is -1 to rounding below -30 (float32) and -50 (float64).
EXP_MAX32, EXP_MIN32, EXPM1_MIN32 = np.float32(89.0), np.float32(-104.0), np.float32(-30.0)
EXP_MAX64, EXP_MIN64, EXPM1_MIN64 = 709.8, -745.2, -50.0
# Below these |x|, expm1(x) rounds to x itself (x**2 / 2 is under half an ulp of x); the
# formula would lose the sign of -0.0 and halve a subnormal x with a rounding.
EXPM1_TINY32, EXPM1_TINY64 = np.float32(2.0**-24), 2.0**-53

# Taylor coefficients 1/k!, k = 0..13 (float64) and 0..7 (float32)
_INV_FACT = [1.0]
for _k in range(1, 14):
    _INV_FACT.append(_INV_FACT[-1] / _k)


# ---------------------------------------------------------------------- reference
# The algorithm in NumPy, one step a line (the compiled versions below do exactly this,
# one element at a time). The spec is np.exp / np.expm1: the tests judge both against it.


def _pow2_ref(n, dtype):
    """2**n for integer-valued float n, from the exponent bits (n in the normal range)."""
    if dtype == np.float32:
        return ((n.astype(np.int32) + 127) << 23).view(np.float32)
    return ((n.astype(np.int64) + 1023) << 52).view(np.float64)


def _reduce_ref(x, low):
    """Clamped x, n and r with x = n ln 2 + r (float32 or float64, as x)."""
    f32 = x.dtype == np.float32
    hi, lo = (LN2_HI32, LN2_LO32) if f32 else (LN2_HI64, LN2_LO64)
    top = EXP_MAX32 if f32 else EXP_MAX64
    xc = np.where(x > top, top, x)  # NaN > top is False: NaN stays
    xc = np.where(xc < low, low, xc).astype(x.dtype)
    n = np.rint(np.where(np.isnan(xc), 0, xc) * x.dtype.type(LOG2E))  # n of NaN: 0
    r = (xc - n * hi) - n * lo
    return n, r


def _poly_ref(r, degree, first):
    """sum_{k=first}^{degree} r**k / k!, by Horner's rule, in r's dtype."""
    c = [r.dtype.type(v) for v in _INV_FACT]
    p = np.full_like(r, c[degree])
    for k in range(degree - 1, first - 1, -1):
        p = p * r + c[k]
    return p * r if first == 1 else p


def exp_ref(x):
    """exp(x), computed as the cpu kernels do; ``x``: float32 or float64 array (...)."""
    x = np.asarray(x)
    f32 = x.dtype == np.float32
    with np.errstate(invalid="ignore", over="ignore"):
        n, r = _reduce_ref(x, EXP_MIN32 if f32 else EXP_MIN64)
        p = _poly_ref(r, 7 if f32 else 13, 0)  # exp(r)
        n1 = np.floor(n * x.dtype.type(0.5))
        return p * _pow2_ref(n1, x.dtype) * _pow2_ref(n - n1, x.dtype)


def expm1_ref(x):
    """exp(x) - 1 with full relative precision near 0; ``x``: float32 or float64 (...)."""
    x = np.asarray(x)
    f32 = x.dtype == np.float32
    with np.errstate(invalid="ignore", over="ignore"):
        n, r = _reduce_ref(x, EXPM1_MIN32 if f32 else EXPM1_MIN64)
        q = _poly_ref(r, 7 if f32 else 13, 1)  # exp(r) - 1
        h = _pow2_ref(n - 1, x.dtype)
        y = 2 * (h * q + (h - x.dtype.type(0.5)))
        return np.where(np.abs(x) < (EXPM1_TINY32 if f32 else EXPM1_TINY64), x, y)


# ---------------------------------------------------------------------- Numba


@intrinsic
def pow2(typingctx, k):
    """2**k for an integer-valued float k (float32: -126..127, float64: -1022..1023), in
    k's type: the integer ``k + bias`` shifted into the exponent field, its bits read as
    a float (``np.int64(...).view(np.float64)`` for one number)."""
    if not isinstance(k, types.Float):
        return None
    width = k.bitwidth
    bias, shift = (127, 23) if width == 32 else (1023, 52)

    def codegen(context, builder, signature, args):
        int_t = ir.IntType(width)
        n = builder.fptosi(args[0], int_t)
        bits = builder.shl(builder.add(n, int_t(bias)), int_t(shift))
        return builder.bitcast(bits, args[0].type)

    return k(k), codegen


def typed(v, c):
    """The constant ``c`` in the float type of ``v`` (compiled code: see the overload)."""
    return np.asarray(v).dtype.type(c)


@overload(typed, inline="always")
def _typed(v, c):
    cast = np.float32 if v == types.float32 else np.float64
    return lambda v, c: cast(c)


# NOTE: the scalar bodies below are branch-free: every ``a if cond else b`` has cheap
# arms, which LLVM turns into a select (a vector blend) instead of a jump.
# NOTE: compiled with ``contract`` (multiply-adds fused into FMAs, which only removes
# roundings) and nothing else: ``reassoc`` would let LLVM fold the two-part
# subtraction ``(x - n LN2_HI) - n LN2_LO`` into ``x - n (LN2_HI + LN2_LO)``, losing r.
# They are separate functions (not inlined by Numba), so a kernel's own fastmath flags
# do not reach them; LLVM inlines them into the kernel's loop afterwards.
_OPTIONS = {"fastmath": {"contract"}}


def _exp32(x):
    xc = EXP_MAX32 if x > EXP_MAX32 else x  # NaN > EXP_MAX32 is False: NaN stays
    xc = EXP_MIN32 if xc < EXP_MIN32 else xc
    n = np.rint((xc if xc == xc else np.float32(0.0)) * np.float32(LOG2E))
    r = (xc - n * LN2_HI32) - n * LN2_LO32  # |r| <= ln(2) / 2
    p = np.float32(1 / 5040)  # exp(r), Taylor to degree 7
    p = p * r + np.float32(1 / 720)
    p = p * r + np.float32(1 / 120)
    p = p * r + np.float32(1 / 24)
    p = p * r + np.float32(1 / 6)
    p = p * r + np.float32(0.5)
    p = p * r + np.float32(1.0)
    p = p * r + np.float32(1.0)
    n1 = np.floor(n * np.float32(0.5))  # 2**n in two halves: subnormals round once
    return p * pow2(n1) * pow2(n - n1)


def _exp64(x):
    xc = EXP_MAX64 if x > EXP_MAX64 else x
    xc = EXP_MIN64 if xc < EXP_MIN64 else xc
    n = np.rint((xc if xc == xc else 0.0) * LOG2E)
    r = (xc - n * LN2_HI64) - n * LN2_LO64
    p = 1 / 6227020800  # exp(r), Taylor to degree 13
    p = p * r + 1 / 479001600
    p = p * r + 1 / 39916800
    p = p * r + 1 / 3628800
    p = p * r + 1 / 362880
    p = p * r + 1 / 40320
    p = p * r + 1 / 5040
    p = p * r + 1 / 720
    p = p * r + 1 / 120
    p = p * r + 1 / 24
    p = p * r + 1 / 6
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    n1 = np.floor(n * 0.5)
    return p * pow2(n1) * pow2(n - n1)


def _expm1_32(x):
    xc = EXP_MAX32 if x > EXP_MAX32 else x
    xc = EXPM1_MIN32 if xc < EXPM1_MIN32 else xc
    n = np.rint((xc if xc == xc else np.float32(0.0)) * np.float32(LOG2E))
    r = (xc - n * LN2_HI32) - n * LN2_LO32
    q = np.float32(1 / 5040)  # (exp(r) - 1) / r, Taylor
    q = q * r + np.float32(1 / 720)
    q = q * r + np.float32(1 / 120)
    q = q * r + np.float32(1 / 24)
    q = q * r + np.float32(1 / 6)
    q = q * r + np.float32(0.5)
    q = q * r + np.float32(1.0)
    q = q * r  # exp(r) - 1
    h = pow2(n - np.float32(1.0))  # 2**n / 2: 2**128 would overflow before the result
    y = np.float32(2.0) * (h * q + (h - np.float32(0.5)))
    return x if abs(x) < EXPM1_TINY32 else y  # x itself: -0.0 and subnormals exact


def _expm1_64(x):
    xc = EXP_MAX64 if x > EXP_MAX64 else x
    xc = EXPM1_MIN64 if xc < EXPM1_MIN64 else xc
    n = np.rint((xc if xc == xc else 0.0) * LOG2E)
    r = (xc - n * LN2_HI64) - n * LN2_LO64
    q = 1 / 6227020800
    q = q * r + 1 / 479001600
    q = q * r + 1 / 39916800
    q = q * r + 1 / 3628800
    q = q * r + 1 / 362880
    q = q * r + 1 / 40320
    q = q * r + 1 / 5040
    q = q * r + 1 / 720
    q = q * r + 1 / 120
    q = q * r + 1 / 24
    q = q * r + 1 / 6
    q = q * r + 0.5
    q = q * r + 1.0
    q = q * r
    h = pow2(n - 1.0)
    y = 2.0 * (h * q + (h - 0.5))
    return x if abs(x) < EXPM1_TINY64 else y


def vexp(x):
    """exp(x) for one float32 or float64 number, vectorizable in a compiled loop (outside
    compiled code: :func:`exp_ref`)."""
    return exp_ref(x)


def vexpm1(x):
    """exp(x) - 1 for one float32 or float64 number, vectorizable in a compiled loop
    (outside compiled code: :func:`expm1_ref`)."""
    return expm1_ref(x)


@overload(vexp, jit_options=_OPTIONS)
def _vexp(x):
    if x == types.float32:
        return _exp32
    if x == types.float64:
        return _exp64
    return None


@overload(vexpm1, jit_options=_OPTIONS)
def _vexpm1(x):
    if x == types.float32:
        return _expm1_32
    if x == types.float64:
        return _expm1_64
    return None
