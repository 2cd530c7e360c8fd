"""Elementwise activation functions: the NumPy reference, the Numba CPU kernel and the
CUDA kernel of each, side by side.

Every activation ``f`` has a forward ``f(x) -> y`` and a backward
``f_backward(dy, x) -> dx = dy * f'(x)`` (the vector-Jacobian product of an elementwise
function). Shapes: ``x``, ``dy``, ``y`` and ``dx`` all have the same shape ``(...)``.

The reference (``*_ref``) is the specification. Each formula is written once, as a
scalar function (``_relu``, ``_relu_grad``, ...) compiled for both targets, and each
kernel is the loop around it: a ``prange`` loop on the CPU, one thread an element on the
GPU. The kernels see flat, contiguous arrays (the ``elementwise`` layout of
``_launch.py``) and are judged only by agreement with the reference.

NOTE: the derivative of the ReLU family at exactly ``x == 0`` does not exist; like
PyTorch we use the slope of the negative side there: ``relu'(0) = 0``,
``leaky_relu'(0) = alpha``, ``prelu'(0) = alpha``, ``elu'(0) = alpha``. Every backend
tests ``x > 0`` for "positive side", so they all agree at 0.

NOTE: NaN propagates, as through ``np.maximum`` and PyTorch: ``relu(nan) = nan`` (a NaN
turned into 0 makes a diverging network look like one with dead units), and the
derivative at NaN is NaN, so ``f_backward(dy, nan) = nan``. The formulas therefore test
``v <= 0`` for "negative side" and leave the NaN case, for which both ``v > 0`` and
``v <= 0`` are false, to a third branch.

First version, then tuned version (on the cpu): the loops around the scalar formulas
above call ``math.exp``, a scalar libm function, through branches, so LLVM does not
vectorize them. Those first versions stay here, as ``*_cpu_v1`` (compiled, not
registered: ``benchmarks/bench_activations.py`` times them); the registered cpu kernels
of sigmoid, tanh, GELU, SiLU and ELU use formulas written for SIMD instead (``*_vec``):

* ``vexp``/``vexpm1`` (``_vecmath.py``) instead of ``math.exp``/``math.expm1``/``math.tanh``;
* no branch: both sides of a choice are computed and one is selected
  (``a if cond else b`` with cheap arms compiles to a vector blend), and the clamps that
  keep exp's argument <= 0 or the limits at +-inf exact are selects too;
* float32 data is computed in float32 (16 lanes of AVX-512 instead of 8), except
  GELU, which every backend computes in float64 (see its NOTE).

``tests/test_vecmath.py`` checks in the LLVM IR that each of these loops is vectorized.
The cuda kernels keep the scalar formulas (a GPU's exp is fast already).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .._arrays import gpu_zeros
from .._backend import register
from .._cuda import MAX_BLOCKS, THREADS_2D, blocks_1d, cuda
from ._launch import CPU_OPTIONS, cpu_helper, elementwise, kernel, shared
from ._vecmath import typed, vexp, vexpm1

first_cpu = njit(**CPU_OPTIONS)  # a first-version cpu kernel: compiled, not registered

# --------------------------------------------------------------------------- ReLU
# relu(x) = max(x, 0)                  relu'(x) = 1 if x > 0 else 0 (NaN at NaN)


def _nan_where_nan(x, value):
    """``value``, with NaN wherever ``x`` is NaN (the ReLU family's derivative at NaN)."""
    return np.where(np.isnan(x), x, value)


@register("relu", "numpy")
def relu_ref(x):
    return np.maximum(x, 0)  # NOTE: np.maximum propagates NaN (np.where(x > 0, ...) did not)


@register("relu_backward", "numpy")
def relu_backward_ref(dy, x):
    return _nan_where_nan(x, np.where(x > 0, dy, 0)).astype(x.dtype, copy=False)


def _relu(v):
    return 0.0 if v <= 0 else v  # NaN: neither <= 0 nor > 0, so it comes through


def _relu_grad(dy, v):
    if v > 0:
        return dy
    return 0.0 if v <= 0 else v  # v is NaN: the derivative is NaN


_relu_cpu, _relu_gpu = shared(_relu)
_relu_grad_cpu, _relu_grad_gpu = shared(_relu_grad)


@kernel("relu", "cpu", elementwise)
def relu_cpu(x, out):
    for i in prange(x.size):
        out[i] = _relu_cpu(x[i])


@kernel("relu_backward", "cpu", elementwise)
def relu_backward_cpu(dy, x, out):
    for i in prange(x.size):
        out[i] = _relu_grad_cpu(dy[i], x[i])


@kernel("relu", "cuda", elementwise)
def relu_cuda(x, out):
    i = cuda.grid(1)  # one thread per element
    if i < x.size:  # the last block may run past the end
        out[i] = _relu_gpu(x[i])


@kernel("relu_backward", "cuda", elementwise)
def relu_backward_cuda(dy, x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = _relu_grad_gpu(dy[i], x[i])


# --------------------------------------------------------------------- Leaky ReLU
# leaky_relu(x) = x if x > 0 else alpha * x      derivative: 1 if x > 0 else alpha
# (PReLU, below, is the same formula with a learnable alpha.)


@register("leaky_relu", "numpy")
def leaky_relu_ref(x, alpha):
    return np.where(x > 0, x, x * x.dtype.type(alpha))


@register("leaky_relu_backward", "numpy")
def leaky_relu_backward_ref(dy, x, alpha):
    return _nan_where_nan(x, np.where(x > 0, dy, dy * x.dtype.type(alpha)))


def _leaky(v, alpha):
    return v if v > 0 else alpha * v


def _leaky_grad(dy, v, alpha):
    if v > 0:
        return dy
    return alpha * dy if v <= 0 else v  # v is NaN: the derivative is NaN


_leaky_cpu, _leaky_gpu = shared(_leaky)
_leaky_grad_cpu, _leaky_grad_gpu = shared(_leaky_grad)


@kernel("leaky_relu", "cpu", elementwise)
def leaky_relu_cpu(x, alpha, out):
    for i in prange(x.size):
        out[i] = _leaky_cpu(x[i], alpha)


@kernel("leaky_relu_backward", "cpu", elementwise)
def leaky_relu_backward_cpu(dy, x, alpha, out):
    for i in prange(x.size):
        out[i] = _leaky_grad_cpu(dy[i], x[i], alpha)


@kernel("leaky_relu", "cuda", elementwise)
def leaky_relu_cuda(x, alpha, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = _leaky_gpu(x[i], alpha)


@kernel("leaky_relu_backward", "cuda", elementwise)
def leaky_relu_backward_cuda(dy, x, alpha, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = _leaky_grad_gpu(dy[i], x[i], alpha)


# ---------------------------------------------------------------------------- ELU
# elu(x) = x if x > 0 else alpha * (exp(x) - 1)   derivative: 1 if x > 0 else alpha*exp(x)
# NOTE: expm1 keeps precision for small |x|; min(x, 0) keeps exp from overflowing in the
# branch np.where throws away.


@register("elu", "numpy")
def elu_ref(x, alpha):
    return np.where(x > 0, x, x.dtype.type(alpha) * np.expm1(np.minimum(x, 0)))


@register("elu_backward", "numpy")
def elu_backward_ref(dy, x, alpha):
    return np.where(x > 0, dy, dy * x.dtype.type(alpha) * np.exp(np.minimum(x, 0)))


def _elu(v, alpha):
    return v if v > 0 else alpha * math.expm1(v)


def _elu_grad(dy, v, alpha):
    return dy if v > 0 else dy * alpha * math.exp(v)


_elu_cpu, _elu_gpu = shared(_elu)
_elu_grad_cpu, _elu_grad_gpu = shared(_elu_grad)


@first_cpu
def elu_cpu_v1(x, alpha, out):
    for i in prange(x.size):
        out[i] = _elu_cpu(x[i], alpha)


@first_cpu
def elu_backward_cpu_v1(dy, x, alpha, out):
    for i in prange(x.size):
        out[i] = _elu_grad_cpu(dy[i], x[i], alpha)


@cpu_helper
def _elu_vec(v, alpha):
    neg = typed(v, 0.0) if v > 0 else v  # min(v, 0), NaN kept
    e = vexpm1(neg)  # computed for every element: the choice below is a select
    return v if v > 0 else alpha * e


@cpu_helper
def _elu_grad_vec(dy, v, alpha):
    e = vexp(typed(v, 0.0) if v > 0 else v)
    return dy if v > 0 else dy * alpha * e


@kernel("elu", "cpu", elementwise)
def elu_cpu(x, alpha, out):
    for i in prange(x.size):
        out[i] = _elu_vec(x[i], alpha)


@kernel("elu_backward", "cpu", elementwise)
def elu_backward_cpu(dy, x, alpha, out):
    for i in prange(x.size):
        out[i] = _elu_grad_vec(dy[i], x[i], alpha)


@kernel("elu", "cuda", elementwise)
def elu_cuda(x, alpha, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = _elu_gpu(x[i], alpha)


@kernel("elu_backward", "cuda", elementwise)
def elu_backward_cuda(dy, x, alpha, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = _elu_grad_gpu(dy[i], x[i], alpha)


# ------------------------------------------------------------------------ sigmoid
# sigmoid(x) = 1 / (1 + exp(-x))       sigmoid'(x) = s * (1 - s) with s = sigmoid(x)
# NOTE: exp(-x) overflows for x < -710 (float64) or x < -89 (float32). The stable form
# only ever takes exp of a non-positive number: for x < 0, sigmoid(x) = e / (1 + e)
# with e = exp(x).
# NOTE: for large x, s rounds to 1 and 1 - s loses every digit. With e = exp(-|x|),
# s * (1 - s) = e / (1 + e)^2 exactly, and that form keeps full precision.


@register("sigmoid", "numpy")
def sigmoid_ref(x):
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


@register("sigmoid_backward", "numpy")
def sigmoid_backward_ref(dy, x):
    e = np.exp(-np.abs(x))
    return dy * (e / ((1 + e) * (1 + e)))


def _sigmoid(v):
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def _sigmoid_grad(v):
    e = math.exp(-abs(v))
    return e / ((1.0 + e) * (1.0 + e))


_sigmoid_cpu, _sigmoid_gpu = shared(_sigmoid)
_sigmoid_grad_cpu, _sigmoid_grad_gpu = shared(_sigmoid_grad)


@first_cpu
def sigmoid_cpu_v1(x, out):
    for i in prange(x.size):
        out[i] = _sigmoid_cpu(x[i])


@first_cpu
def sigmoid_backward_cpu_v1(dy, x, out):
    for i in prange(x.size):
        out[i] = dy[i] * _sigmoid_grad_cpu(x[i])


@cpu_helper
def _sigmoid_vec(v):
    # The stable form without its branch: e = exp(-|v|) in (0, 1], t = 1 / (1 + e);
    # sigmoid(v) = t for v >= 0 and e * t for v < 0 (= e / (1 + e)).
    one = typed(v, 1.0)
    e = vexp(-abs(v))
    t = one / (one + e)
    return t if v >= 0 else e * t


@cpu_helper
def _sigmoid_grad_vec(v):
    one = typed(v, 1.0)
    e = vexp(-abs(v))
    t = one / (one + e)
    return e * t * t  # e / (1 + e)^2


@kernel("sigmoid", "cpu", elementwise)
def sigmoid_cpu(x, out):
    for i in prange(x.size):
        out[i] = _sigmoid_vec(x[i])


@kernel("sigmoid_backward", "cpu", elementwise)
def sigmoid_backward_cpu(dy, x, out):
    for i in prange(x.size):
        out[i] = dy[i] * _sigmoid_grad_vec(x[i])


@kernel("sigmoid", "cuda", elementwise)
def sigmoid_cuda(x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = _sigmoid_gpu(x[i])


@kernel("sigmoid_backward", "cuda", elementwise)
def sigmoid_backward_cuda(dy, x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = dy[i] * _sigmoid_grad_gpu(x[i])


# --------------------------------------------------------------------------- tanh
# tanh(x)                               tanh'(x) = 1 - tanh(x)^2
# NOTE: 1 - t*t cancels catastrophically where t = tanh(x) rounds towards +-1 (|x| > 3
# in float32). With e = exp(-2|x|), 1 - tanh(x)^2 = 4e / (1 + e)^2 exactly: no
# cancellation, no overflow.


@register("tanh", "numpy")
def tanh_ref(x):
    return np.tanh(x)


@register("tanh_backward", "numpy")
def tanh_backward_ref(dy, x):
    e = np.exp(-2 * np.abs(x))
    return dy * (4 * e / ((1 + e) * (1 + e)))


def _tanh_grad(v):
    e = math.exp(-2.0 * abs(v))
    return 4.0 * e / ((1.0 + e) * (1.0 + e))


_tanh_grad_cpu, _tanh_grad_gpu = shared(_tanh_grad)


@first_cpu
def tanh_cpu_v1(x, out):
    for i in prange(x.size):
        out[i] = math.tanh(x[i])


@first_cpu
def tanh_backward_cpu_v1(dy, x, out):
    for i in prange(x.size):
        out[i] = dy[i] * _tanh_grad_cpu(x[i])


@cpu_helper
def _tanh_vec(v):
    # tanh(|v|) = (1 - e) / (1 + e) with e = exp(-2|v|); with m = expm1(-2|v|) = e - 1
    # in (-1, 0] that is -m / (2 + m): no cancellation for small |v| (1 - e would lose
    # every digit of tanh(1e-30)), and 1 at |v| = inf. The sign is v's (tanh(-0) = -0).
    m = vexpm1(typed(v, -2.0) * abs(v))
    return math.copysign(-m / (typed(v, 2.0) + m), v)


@cpu_helper
def _tanh_grad_vec(v):
    one = typed(v, 1.0)
    e = vexp(typed(v, -2.0) * abs(v))
    t = one / (one + e)
    return typed(v, 4.0) * e * t * t  # 4e / (1 + e)^2


@kernel("tanh", "cpu", elementwise)
def tanh_cpu(x, out):
    for i in prange(x.size):
        out[i] = _tanh_vec(x[i])


@kernel("tanh_backward", "cpu", elementwise)
def tanh_backward_cpu(dy, x, out):
    for i in prange(x.size):
        out[i] = dy[i] * _tanh_grad_vec(x[i])


@kernel("tanh", "cuda", elementwise)
def tanh_cuda(x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = math.tanh(x[i])


@kernel("tanh_backward", "cuda", elementwise)
def tanh_backward_cuda(dy, x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = dy[i] * _tanh_grad_gpu(x[i])


# --------------------------------------------------------------------------- GELU
# gelu(x) = x * Phi(x), Phi the standard normal CDF = erfc(-x / sqrt(2)) / 2
# gelu'(x) = Phi(x) + x * phi(x), phi the standard normal density. (The exact GELU,
# PyTorch's default, not the tanh approximation.)
# NOTE: Phi as erfc(-x / sqrt 2) / 2, not (1 + erf(x / sqrt 2)) / 2: for x < 0 the
# latter subtracts two numbers close to 1 and loses the left tail (gelu(-5.55) came out
# as -0 in float32 against a true -8.1e-8, gelu' 1.4% off below x = -8 in float64);
# erfc keeps full relative precision down to its underflow.
# NOTE: at +-inf, x * Phi(x) and x * phi(x) are inf * 0 = NaN; their limits are taken
# beyond |x| = TAIL, where Phi(-x) and x * phi(x) are below the smallest float64:
# gelu(-inf) = -0, gelu(inf) = inf, gelu'(-inf) = 0, gelu'(inf) = 1.
# NOTE: float32 data is computed in float64 and rounded once (on every backend, the
# reference included): float32 arithmetic lost up to 3% of gelu' near its zero.

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TAIL = 40.0  # Phi(-40) ~ 4e-350 and 40 * phi(40) ~ 1e-347: 0 in float64


def _erfc(x):
    # NOTE: SciPy's erfc, imported on first use: importing scipy.special costs ~0.3 s,
    # which ``import nnlib`` need not pay.
    from scipy import special

    return special.erfc(x)


@register("gelu", "numpy")
def gelu_ref(x):
    x64 = x.astype(np.float64)  # (...)
    cdf = 0.5 * _erfc(-x64 * _INV_SQRT2)
    return (np.maximum(x64, -_TAIL) * cdf).astype(x.dtype)  # max: -inf * 0 would be NaN


@register("gelu_backward", "numpy")
def gelu_backward_ref(dy, x):
    x64 = x.astype(np.float64)
    cdf = 0.5 * _erfc(-x64 * _INV_SQRT2)
    t = np.clip(x64, -_TAIL, _TAIL)  # x * phi(x) is 0 beyond the clip; inf * 0 is NaN
    return (dy * (cdf + t * _INV_SQRT2PI * np.exp(-0.5 * t * t))).astype(x.dtype)


def _gelu(v):
    if v < -_TAIL:
        return -0.0
    return v * 0.5 * math.erfc(-v * _INV_SQRT2)


def _gelu_grad(v):
    if v < -_TAIL:
        return 0.0
    if v > _TAIL:
        return 1.0
    return 0.5 * math.erfc(-v * _INV_SQRT2) + v * _INV_SQRT2PI * math.exp(-0.5 * v * v)


_gelu_cpu, _gelu_gpu = shared(_gelu)
_gelu_grad_cpu, _gelu_grad_gpu = shared(_gelu_grad)


@first_cpu
def gelu_cpu_v1(x, out):
    for i in prange(x.size):
        out[i] = _gelu_cpu(x[i])


@first_cpu
def gelu_backward_cpu_v1(dy, x, out):
    for i in prange(x.size):
        out[i] = dy[i] * _gelu_grad_cpu(x[i])


# The tuned cpu kernels need erfc without a libm call. With a = |x|, the normal tail is
# Q(a) = Phi(-a) = phi(a) * M(a), M the Mills ratio (M(a) = sqrt(pi/2) erfcx(a/sqrt 2),
# smooth, M(0) = sqrt(pi/2), M(a) ~ 1/a): then Phi(x) = Q(a) for x < 0 and 1 - Q(a) for
# x >= 0, and phi(a), which gelu' needs too, is the only exp.
# M(a) = t * P(t) with t = 1 / (1 + a * MILLS_K) in (0, 1]; P is the degree-19 polynomial
# through M(a(t)) / t at the 20 Chebyshev points of [1 / (1 + 40 MILLS_K), 1]
# (``numpy.polynomial.Chebyshev.interpolate`` on ``scipy.special.erfcx``, converted to
# powers of t; tests/test_vecmath.py recomputes it). Its relative error is below 1e-14
# on 0 <= a <= 40 (measured there), so Q(a) keeps its relative precision down to
# underflow, as erfc does.
MILLS_K = 0.2
MILLS_P = (
    0.19999999978514377,
    0.20000001305437304,
    0.19199963647516594,
    0.17600616913248088,
    0.15288842924397547,
    0.12540361591484173,
    0.09036621821578654,
    0.08315969814590787,
    -0.035179596223336856,
    0.2412546946360295,
    -0.5433926288689738,
    1.0621218746397458,
    -1.6508352793611358,
    1.9924521063662652,
    -1.8641567610303356,
    1.2998391814438792,
    -0.6416278620865333,
    0.21061483404248732,
    -0.04126169712778365,
    0.003661490917517083,
)


@cpu_helper
def _mills(a):
    """M(a) = Phi(-a) / phi(a) for float64 a in [0, TAIL] (NaN gives NaN)."""
    t = 1.0 / (1.0 + MILLS_K * a)
    # Horner, written out: NOTE: a loop over the tuple (MILLS_P[k], k a loop variable)
    # was not unrolled; it indexed the tuple per element and ran 2x slower than libm.
    p = MILLS_P[19]
    p = p * t + MILLS_P[18]
    p = p * t + MILLS_P[17]
    p = p * t + MILLS_P[16]
    p = p * t + MILLS_P[15]
    p = p * t + MILLS_P[14]
    p = p * t + MILLS_P[13]
    p = p * t + MILLS_P[12]
    p = p * t + MILLS_P[11]
    p = p * t + MILLS_P[10]
    p = p * t + MILLS_P[9]
    p = p * t + MILLS_P[8]
    p = p * t + MILLS_P[7]
    p = p * t + MILLS_P[6]
    p = p * t + MILLS_P[5]
    p = p * t + MILLS_P[4]
    p = p * t + MILLS_P[3]
    p = p * t + MILLS_P[2]
    p = p * t + MILLS_P[1]
    p = p * t + MILLS_P[0]
    return t * p


@cpu_helper
def _phi_and_cdf(v):
    """phi(x) and Phi(x) for x = v in float64, |x| clipped to TAIL (NaN gives NaN)."""
    x = float(v)
    a = abs(x)
    a = _TAIL if a > _TAIL else a
    phi = _INV_SQRT2PI * vexp(-0.5 * a * a)
    q = phi * _mills(a)  # Phi(-a)
    return phi, (q if x < 0 else 1.0 - q)


@cpu_helper
def _gelu_vec(v):
    _, cdf = _phi_and_cdf(v)
    x = float(v)
    return (-_TAIL if x < -_TAIL else x) * cdf  # max(x, -TAIL): -inf * 0 is NaN


@cpu_helper
def _gelu_grad_vec(v):
    phi, cdf = _phi_and_cdf(v)
    x = float(v)
    t = _TAIL if x > _TAIL else (-_TAIL if x < -_TAIL else x)
    return cdf + t * phi


@kernel("gelu", "cpu", elementwise)
def gelu_cpu(x, out):
    for i in prange(x.size):
        out[i] = _gelu_vec(x[i])


@kernel("gelu_backward", "cpu", elementwise)
def gelu_backward_cpu(dy, x, out):
    for i in prange(x.size):
        out[i] = dy[i] * _gelu_grad_vec(x[i])


@kernel("gelu", "cuda", elementwise)
def gelu_cuda(x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = _gelu_gpu(x[i])


@kernel("gelu_backward", "cuda", elementwise)
def gelu_backward_cuda(dy, x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = dy[i] * _gelu_grad_gpu(x[i])


# ------------------------------------------------------------------- SiLU (swish)
# silu(x) = x * sigmoid(x)              silu'(x) = s * (1 + x * (1 - s)), s = sigmoid(x)
# NOTE: 1 - s is computed as sigmoid(-x), which keeps its precision for large x.
# NOTE: at -inf, x * sigmoid(x) is -inf * 0 = NaN, and at +inf x * (1 - s) is too;
# beyond |x| = _SILU_TAIL every term is exactly its limit in float64 (exp(-800) = 0):
# silu(-inf) = -0, silu(inf) = inf, silu'(-inf) = 0, silu'(inf) = 1.

_SILU_TAIL = 800.0


@register("silu", "numpy")
def silu_ref(x):
    return np.maximum(x, x.dtype.type(-_SILU_TAIL)) * sigmoid_ref(x)


@register("silu_backward", "numpy")
def silu_backward_ref(dy, x):
    t = np.clip(x, x.dtype.type(-_SILU_TAIL), x.dtype.type(_SILU_TAIL))
    return dy * sigmoid_ref(x) * (1 + t * sigmoid_ref(-x))


def _silu(v):
    if v < -_SILU_TAIL:
        return -0.0
    if v >= 0:  # sigmoid(v) as in _sigmoid: exp of a non-positive number only
        return v / (1.0 + math.exp(-v))
    e = math.exp(v)
    return v * e / (1.0 + e)


def _silu_grad(v):
    if v < -_SILU_TAIL:
        return 0.0
    if v > _SILU_TAIL:
        return 1.0
    # SPEEDTIP: s = sigmoid(v) and q = 1 - s = sigmoid(-v) from one exp, e = exp(-|v|)
    e = math.exp(-abs(v))
    if v >= 0:
        s, q = 1.0 / (1.0 + e), e / (1.0 + e)
    else:
        s, q = e / (1.0 + e), 1.0 / (1.0 + e)
    return s * (1.0 + v * q)


_silu_cpu, _silu_gpu = shared(_silu)
_silu_grad_cpu, _silu_grad_gpu = shared(_silu_grad)


@first_cpu
def silu_cpu_v1(x, out):
    for i in prange(x.size):
        out[i] = _silu_cpu(x[i])


@first_cpu
def silu_backward_cpu_v1(dy, x, out):
    for i in prange(x.size):
        out[i] = dy[i] * _silu_grad_cpu(x[i])


@cpu_helper
def _silu_vec(v):
    tail = typed(v, -_SILU_TAIL)
    return (tail if v < tail else v) * _sigmoid_vec(v)  # max(v, -TAIL): -inf * 0 is NaN


@cpu_helper
def _silu_grad_vec(v):
    one, tail = typed(v, 1.0), typed(v, _SILU_TAIL)
    e = vexp(-abs(v))  # SPEEDTIP: s = sigmoid(v) and q = sigmoid(-v) from one exp
    a = one / (one + e)
    b = e * a
    s = a if v >= 0 else b
    q = b if v >= 0 else a
    t = tail if v > tail else (-tail if v < -tail else v)  # clip: inf * 0 is NaN
    return s * (one + t * q)


@kernel("silu", "cpu", elementwise)
def silu_cpu(x, out):
    for i in prange(x.size):
        out[i] = _silu_vec(x[i])


@kernel("silu_backward", "cpu", elementwise)
def silu_backward_cpu(dy, x, out):
    for i in prange(x.size):
        out[i] = dy[i] * _silu_grad_vec(x[i])


@kernel("silu", "cuda", elementwise)
def silu_cuda(x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = _silu_gpu(x[i])


@kernel("silu_backward", "cuda", elementwise)
def silu_backward_cuda(dy, x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = dy[i] * _silu_grad_gpu(x[i])


# -------------------------------------------------------------------------- PReLU
# prelu(x) = x if x > 0 else alpha * x: Leaky ReLU's formula with a learnable alpha, one
# number, shape (), or one per feature, shape (D,) for x of shape (..., D). Element i of
# the flattened x belongs to feature i % D (the GPU kernel sees it so).
# backward: dx = dy if x > 0 else alpha * dy
#           dalpha[j] = sum of dy * x over the elements of feature j where x <= 0
# The cpu layouts view x as (M, D), M = x.size // D (D = 1 for a scalar alpha).
# alpha of shape (1,) is one slope too (PyTorch's PReLU(num_parameters=1)).
# NOTE: dalpha is a sum over the rows. On the cpu the rows are cut into blocks of a
# fixed size (PRELU_BLOCK elements), each summed by one prange iteration, and the
# blocks' partial sums are added in order: the result does not depend on the number of
# threads (blocks of "rows // threads" made it change with NUMBA_NUM_THREADS).

PRELU_BLOCK = 4096  # elements summed per block of rows of PReLU's alpha gradient


def _rows_of(x, d):
    """M, the number of rows of x seen as (M, D) (also for size 0, where -1 is ambiguous)."""
    return x.size // d if d else math.prod(tuple(x.shape)[:-1])


@register("prelu", "numpy")
def prelu_ref(x, alpha):
    return np.where(x > 0, x, alpha * x)  # NOTE: NaN > 0 is false: alpha * NaN = NaN


@register("prelu_backward", "numpy")
def prelu_backward_ref(dy, x, alpha):
    dx = _nan_where_nan(x, np.where(x > 0, dy, alpha * dy))
    contrib = np.where(x > 0, 0, dy * x)  # (..., D)
    if alpha.ndim == 0:
        dalpha = contrib.sum(dtype=x.dtype)
    else:
        dalpha = contrib.reshape(_rows_of(x, alpha.size), alpha.size).sum(axis=0, dtype=x.dtype)
    return dx, np.asarray(dalpha, dtype=x.dtype)


def _prelu_host(at, launch, x, alpha):
    """Layout of the cpu forward: (M, D) views, so feature j is column j."""
    d = alpha.size
    x2 = at.put(x).reshape(_rows_of(x, d), d)
    out = at.empty(x2.shape, x2.dtype)
    if out.size:
        launch(x2, at.put(alpha).reshape(d), out)
    return out.reshape(x.shape)


@kernel("prelu", "cpu", _prelu_host)
def prelu_cpu(x, alpha, out):  # x, out: (M, D); alpha: (D,)
    # SPEEDTIP: a loop over the features inside the rows, not i % D for every element
    # of a flat array: the modulo made this kernel ~8x slower.
    for i in prange(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = _leaky_cpu(x[i, j], alpha[j])


@kernel("prelu", "cuda", elementwise)
def prelu_cuda(x, alpha, out):  # x, out: (n,) flat; alpha: (D,)
    i = cuda.grid(1)
    if i < x.size:
        out[i] = _leaky_gpu(x[i], alpha[i % alpha.size])


def _prelu_backward_host(at, launch, dy, x, alpha):
    """Layout of the cpu backward: (M, D) views, and P float64 partial sums of dalpha,
    one per block of ``rows`` rows (``rows`` fixed by the shape alone)."""
    d = alpha.size
    m = _rows_of(x, d)
    x2, dy2 = (at.put(a).reshape(m, d) for a in (x, dy))
    dx = at.empty(x2.shape, x2.dtype)
    rows = max(1, PRELU_BLOCK // max(d, 1))
    parts = np.zeros((max(1, -(-m // rows)), d))  # (P, D) float64
    if dx.size:
        launch(dy2, x2, at.put(alpha).reshape(d), dx, parts)
    # NOTE: numpy adds the rows of a C-contiguous (P, D) array one after the other: a
    # fixed order. The sum is rounded to the data's dtype once, at the end.
    dalpha = parts.sum(axis=0).astype(x.dtype).reshape(alpha.shape)
    return dx.reshape(x.shape), dalpha


@kernel("prelu_backward", "cpu", _prelu_backward_host)
def prelu_backward_cpu(dy, x, alpha, dx, dalpha_parts):  # dalpha_parts: (P, D), zeros
    # NOTE: a prange loop must not add into a shared array element (a silent race), so
    # each block p of rows sums into its own row of dalpha_parts; the layout adds the P
    # partial sums. The blocks have a fixed size, so the sums do not depend on the
    # number of threads.
    m, p_count = x.shape[0], dalpha_parts.shape[0]
    rows = (m + p_count - 1) // p_count
    for p in prange(p_count):
        for i in range(p * rows, min(m, (p + 1) * rows)):
            for j in range(x.shape[1]):
                dx[i, j] = _leaky_grad_cpu(dy[i, j], x[i, j], alpha[j])
                if not x[i, j] > 0:  # NOTE: not "<= 0": a NaN counts, as in the reference
                    dalpha_parts[p, j] += dy[i, j] * x[i, j]


def _prelu_backward_gpu(at, launch, dy, x, alpha):
    """Layout of the cuda backward: (M, D) views; the kernel adds into dalpha."""
    d = alpha.size
    m = _rows_of(x, d)
    d_x, d_dy = at.put(x).reshape(m, d), at.put(dy).reshape(m, d)
    dx = at.empty((m, d), np.dtype(x.dtype))
    dalpha = gpu_zeros(d, np.dtype(x.dtype))
    if x.size:
        # blocks of THREADS_2D (features x rows), at most MAX_BLOCKS down the rows (the
        # threads then stride over the remaining rows)
        tx, ty = THREADS_2D
        blocks = (blocks_1d(d, tx), min(blocks_1d(m, ty), MAX_BLOCKS))
        launch(d_dy, d_x, at.put(alpha.reshape(d)), dx, dalpha, grid=(blocks, (tx, ty)))
    return at.home(dx, x).reshape(tuple(x.shape)), at.home(dalpha, x).reshape(alpha.shape)


@kernel("prelu_backward", "cuda", _prelu_backward_gpu)
def prelu_backward_cuda(dy, x, alpha, dx, dalpha):  # dy, x, dx: (M, D); dalpha: (D,) zeros
    # Thread (j, r) handles feature j for rows r, r + stride, ...: neighbouring threads
    # read neighbouring features, so a warp reads one contiguous run of memory.
    j, r = cuda.grid(2)
    if j >= x.shape[1]:
        return
    acc = 0.0  # NOTE: accumulates in float64, whatever the input dtype
    for i in range(r, x.shape[0], cuda.gridsize(2)[1]):
        dx[i, j] = _leaky_grad_gpu(dy[i, j], x[i, j], alpha[j])
        if not x[i, j] > 0:
            acc += dy[i, j] * x[i, j]
    # SPEEDTIP: one atomic add per thread, not per element.
    cuda.atomic.add(dalpha, j, acc)
