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
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from .._arrays import gpu_zeros
from .._backend import register
from .._cuda import MAX_BLOCKS, THREADS_2D, blocks_1d, cuda
from ._launch import elementwise, kernel, shared

# --------------------------------------------------------------------------- ReLU
# relu(x) = max(x, 0)                  relu'(x) = 1 if x > 0 else 0


@register("relu", "numpy")
def relu_ref(x):
    return np.where(x > 0, x, 0).astype(x.dtype, copy=False)


@register("relu_backward", "numpy")
def relu_backward_ref(dy, x):
    return np.where(x > 0, dy, 0).astype(x.dtype, copy=False)


def _relu(v):
    return v if v > 0 else 0.0


def _relu_grad(dy, v):
    return dy if v > 0 else 0.0


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
    return np.where(x > 0, dy, dy * x.dtype.type(alpha))


def _leaky(v, alpha):
    return v if v > 0 else alpha * v


def _leaky_grad(dy, v, alpha):
    return dy if v > 0 else alpha * dy


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


@kernel("elu", "cpu", elementwise)
def elu_cpu(x, alpha, out):
    for i in prange(x.size):
        out[i] = _elu_cpu(x[i], alpha)


@kernel("elu_backward", "cpu", elementwise)
def elu_backward_cpu(dy, x, alpha, out):
    for i in prange(x.size):
        out[i] = _elu_grad_cpu(dy[i], x[i], alpha)


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


@kernel("sigmoid", "cpu", elementwise)
def sigmoid_cpu(x, out):
    for i in prange(x.size):
        out[i] = _sigmoid_cpu(x[i])


@kernel("sigmoid_backward", "cpu", elementwise)
def sigmoid_backward_cpu(dy, x, out):
    for i in prange(x.size):
        out[i] = dy[i] * _sigmoid_grad_cpu(x[i])


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


@kernel("tanh", "cpu", elementwise)
def tanh_cpu(x, out):
    for i in prange(x.size):
        out[i] = math.tanh(x[i])


@kernel("tanh_backward", "cpu", elementwise)
def tanh_backward_cpu(dy, x, out):
    for i in prange(x.size):
        out[i] = dy[i] * _tanh_grad_cpu(x[i])


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
# gelu(x) = x * Phi(x), Phi the standard normal CDF = (1 + erf(x / sqrt(2))) / 2
# gelu'(x) = Phi(x) + x * phi(x), phi the standard normal density. (The exact GELU,
# PyTorch's default, not the tanh approximation.)

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _erf(x):
    # NOTE: SciPy's erf, imported on first use: importing scipy.special costs ~0.3 s,
    # which ``import nnlib`` need not pay.
    from scipy import special

    return special.erf(x)


@register("gelu", "numpy")
def gelu_ref(x):
    return (x * 0.5 * (1 + _erf(x * _INV_SQRT2))).astype(x.dtype, copy=False)


@register("gelu_backward", "numpy")
def gelu_backward_ref(dy, x):
    cdf = 0.5 * (1 + _erf(x * _INV_SQRT2))
    pdf = _INV_SQRT2PI * np.exp(-0.5 * x * x)
    return (dy * (cdf + x * pdf)).astype(x.dtype, copy=False)


def _gelu(v):
    return v * 0.5 * (1.0 + math.erf(v * _INV_SQRT2))


def _gelu_grad(v):
    return 0.5 * (1.0 + math.erf(v * _INV_SQRT2)) + v * _INV_SQRT2PI * math.exp(-0.5 * v * v)


_gelu_cpu, _gelu_gpu = shared(_gelu)
_gelu_grad_cpu, _gelu_grad_gpu = shared(_gelu_grad)


@kernel("gelu", "cpu", elementwise)
def gelu_cpu(x, out):
    for i in prange(x.size):
        out[i] = _gelu_cpu(x[i])


@kernel("gelu_backward", "cpu", elementwise)
def gelu_backward_cpu(dy, x, out):
    for i in prange(x.size):
        out[i] = dy[i] * _gelu_grad_cpu(x[i])


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


@register("silu", "numpy")
def silu_ref(x):
    return x * sigmoid_ref(x)


@register("silu_backward", "numpy")
def silu_backward_ref(dy, x):
    return dy * sigmoid_ref(x) * (1 + x * sigmoid_ref(-x))


@kernel("silu", "cpu", elementwise)
def silu_cpu(x, out):
    for i in prange(x.size):
        out[i] = x[i] * _sigmoid_cpu(x[i])


@kernel("silu_backward", "cpu", elementwise)
def silu_backward_cpu(dy, x, out):
    for i in prange(x.size):
        out[i] = dy[i] * _sigmoid_cpu(x[i]) * (1.0 + x[i] * _sigmoid_cpu(-x[i]))


@kernel("silu", "cuda", elementwise)
def silu_cuda(x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = x[i] * _sigmoid_gpu(x[i])


@kernel("silu_backward", "cuda", elementwise)
def silu_backward_cuda(dy, x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = dy[i] * _sigmoid_gpu(x[i]) * (1.0 + x[i] * _sigmoid_gpu(-x[i]))


# -------------------------------------------------------------------------- PReLU
# prelu(x) = x if x > 0 else alpha * x: Leaky ReLU's formula with a learnable alpha, one
# number, shape (), or one per feature, shape (D,) for x of shape (..., D). Element i of
# the flattened x belongs to feature i % D (the GPU kernel sees it so).
# backward: dx = dy if x > 0 else alpha * dy
#           dalpha[j] = sum of dy * x over the elements of feature j where x <= 0
# The cpu layouts view x as (M, D), M = x.size // D (D = 1 for a scalar alpha).


@register("prelu", "numpy")
def prelu_ref(x, alpha):
    return np.where(x > 0, x, alpha * x)


@register("prelu_backward", "numpy")
def prelu_backward_ref(dy, x, alpha):
    dx = np.where(x > 0, dy, alpha * dy)
    contrib = np.where(x > 0, 0, dy * x)  # (..., D)
    if alpha.ndim == 0:
        dalpha = contrib.sum(dtype=x.dtype)
    else:
        dalpha = contrib.reshape(-1, alpha.size).sum(axis=0, dtype=x.dtype)
    return dx, np.asarray(dalpha, dtype=x.dtype)


def _prelu_host(at, launch, x, alpha):
    """Layout of the cpu forward: (M, D) views, so feature j is column j."""
    x2 = at.put(x).reshape(-1, alpha.size)
    out = at.empty(x2.shape, x2.dtype)
    if out.size:
        launch(x2, alpha.reshape(-1), out)
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
    """Layout of the cpu backward: (M, D) views, and P partial sums of dalpha."""
    d = alpha.size
    x2, dy2 = (at.put(a).reshape(-1, d) for a in (x, dy))
    dx = at.empty(x2.shape, x2.dtype)
    parts = np.zeros((max(1, min(x2.shape[0], 4 * numba.get_num_threads())), d), x.dtype)
    if dx.size:
        launch(dy2, x2, alpha.reshape(-1), dx, parts)
    return dx.reshape(x.shape), parts.sum(axis=0).reshape(alpha.shape)


@kernel("prelu_backward", "cpu", _prelu_backward_host)
def prelu_backward_cpu(dy, x, alpha, dx, dalpha_parts):  # dalpha_parts: (P, D), zeros
    # NOTE: a prange loop must not add into a shared array element (a silent race), so
    # each of the P chunks of rows sums into its own row of dalpha_parts; the layout
    # adds the P partial sums.
    m, p_count = x.shape[0], dalpha_parts.shape[0]
    for p in prange(p_count):
        for i in range(p * m // p_count, (p + 1) * m // p_count):
            for j in range(x.shape[1]):
                dx[i, j] = _leaky_grad_cpu(dy[i, j], x[i, j], alpha[j])
                if not x[i, j] > 0:  # NOTE: not "<= 0": a NaN counts, as in the reference
                    dalpha_parts[p, j] += dy[i, j] * x[i, j]


def _prelu_backward_gpu(at, launch, dy, x, alpha):
    """Layout of the cuda backward: (M, D) views; the kernel adds into dalpha."""
    d = alpha.size
    m = x.size // d
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
