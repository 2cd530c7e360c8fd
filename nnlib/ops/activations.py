"""Elementwise activation functions: the NumPy reference, the Numba CPU kernel and the
CUDA kernel of each, side by side.

Every activation ``f`` has a forward ``f(x) -> y`` and a backward
``f_backward(dy, x) -> dx = dy * f'(x)`` (the vector-Jacobian product of an elementwise
function). Shapes: ``x``, ``dy``, ``y`` and ``dx`` all have the same shape ``(...)``.

The reference (``*_ref``) is the specification. The kernels see flat, contiguous arrays
(see ``_launch.py``) and are judged only by agreement with the reference.

NOTE: the derivative of the ReLU family at exactly ``x == 0`` does not exist; like
PyTorch we use the slope of the negative side there: ``relu'(0) = 0``,
``leaky_relu'(0) = alpha``, ``prelu'(0) = alpha``, ``elu'(0) = alpha``. Every backend
tests ``x > 0`` for "positive side", so they all agree at 0.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange
from scipy import special

from .._arrays import gpu_zeros
from .._backend import register
from .._cuda import cuda, cuda_jit
from .._validate import is_device_array
from ._launch import KERNELS, SIMULATOR, elementwise_cpu, elementwise_cuda, to_device

# --------------------------------------------------------------------------- ReLU
# relu(x) = max(x, 0)                  relu'(x) = 1 if x > 0 else 0


@register("relu", "numpy")
def relu_ref(x):
    return np.where(x > 0, x, 0).astype(x.dtype, copy=False)


@register("relu_backward", "numpy")
def relu_backward_ref(dy, x):
    return np.where(x > 0, dy, 0).astype(x.dtype, copy=False)


@elementwise_cpu("relu")
@njit(parallel=True, cache=True)
def relu_cpu(x, out):
    for i in prange(x.size):
        out[i] = x[i] if x[i] > 0 else 0.0


@elementwise_cpu("relu_backward")
@njit(parallel=True, cache=True)
def relu_backward_cpu(dy, x, out):
    for i in prange(x.size):
        out[i] = dy[i] if x[i] > 0 else 0.0


@elementwise_cuda("relu")
@cuda_jit
def relu_cuda(x, out):
    i = cuda.grid(1)  # one thread per element
    if i < x.size:  # the last block may run past the end
        out[i] = x[i] if x[i] > 0 else 0.0


@elementwise_cuda("relu_backward")
@cuda_jit
def relu_backward_cuda(dy, x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = dy[i] if x[i] > 0 else 0.0


# --------------------------------------------------------------------- Leaky ReLU
# leaky_relu(x) = x if x > 0 else alpha * x      derivative: 1 if x > 0 else alpha


@register("leaky_relu", "numpy")
def leaky_relu_ref(x, alpha):
    return np.where(x > 0, x, x * x.dtype.type(alpha))


@register("leaky_relu_backward", "numpy")
def leaky_relu_backward_ref(dy, x, alpha):
    return np.where(x > 0, dy, dy * x.dtype.type(alpha))


@elementwise_cpu("leaky_relu")
@njit(parallel=True, cache=True)
def leaky_relu_cpu(x, alpha, out):
    for i in prange(x.size):
        out[i] = x[i] if x[i] > 0 else alpha * x[i]


@elementwise_cpu("leaky_relu_backward")
@njit(parallel=True, cache=True)
def leaky_relu_backward_cpu(dy, x, alpha, out):
    for i in prange(x.size):
        out[i] = dy[i] if x[i] > 0 else alpha * dy[i]


@elementwise_cuda("leaky_relu")
@cuda_jit
def leaky_relu_cuda(x, alpha, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = x[i] if x[i] > 0 else alpha * x[i]


@elementwise_cuda("leaky_relu_backward")
@cuda_jit
def leaky_relu_backward_cuda(dy, x, alpha, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = dy[i] if x[i] > 0 else alpha * dy[i]


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


@elementwise_cpu("elu")
@njit(parallel=True, cache=True)
def elu_cpu(x, alpha, out):
    for i in prange(x.size):
        out[i] = x[i] if x[i] > 0 else alpha * math.expm1(x[i])


@elementwise_cpu("elu_backward")
@njit(parallel=True, cache=True)
def elu_backward_cpu(dy, x, alpha, out):
    for i in prange(x.size):
        out[i] = dy[i] if x[i] > 0 else dy[i] * alpha * math.exp(x[i])


@elementwise_cuda("elu")
@cuda_jit
def elu_cuda(x, alpha, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = x[i] if x[i] > 0 else alpha * math.expm1(x[i])


@elementwise_cuda("elu_backward")
@cuda_jit
def elu_backward_cuda(dy, x, alpha, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = dy[i] if x[i] > 0 else dy[i] * alpha * math.exp(x[i])


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


def _sigmoid_scalar(v):
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def _sigmoid_grad_scalar(v):
    e = math.exp(-abs(v))
    return e / ((1.0 + e) * (1.0 + e))


# One scalar formula, compiled for each target: the CPU kernels inline it, the CUDA
# kernels call it as a device function.
_sigmoid_cpu = njit(cache=True, inline="always")(_sigmoid_scalar)
_sigmoid_gpu = cuda_jit(_sigmoid_scalar, device=True)
_sigmoid_grad_cpu = njit(cache=True, inline="always")(_sigmoid_grad_scalar)
_sigmoid_grad_gpu = cuda_jit(_sigmoid_grad_scalar, device=True)


@elementwise_cpu("sigmoid")
@njit(parallel=True, cache=True)
def sigmoid_cpu(x, out):
    for i in prange(x.size):
        out[i] = _sigmoid_cpu(x[i])


@elementwise_cpu("sigmoid_backward")
@njit(parallel=True, cache=True)
def sigmoid_backward_cpu(dy, x, out):
    for i in prange(x.size):
        out[i] = dy[i] * _sigmoid_grad_cpu(x[i])


@elementwise_cuda("sigmoid")
@cuda_jit
def sigmoid_cuda(x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = _sigmoid_gpu(x[i])


@elementwise_cuda("sigmoid_backward")
@cuda_jit
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


def _tanh_grad_scalar(v):
    e = math.exp(-2.0 * abs(v))
    return 4.0 * e / ((1.0 + e) * (1.0 + e))


_tanh_grad_cpu = njit(cache=True, inline="always")(_tanh_grad_scalar)
_tanh_grad_gpu = cuda_jit(_tanh_grad_scalar, device=True)


@elementwise_cpu("tanh")
@njit(parallel=True, cache=True)
def tanh_cpu(x, out):
    for i in prange(x.size):
        out[i] = math.tanh(x[i])


@elementwise_cpu("tanh_backward")
@njit(parallel=True, cache=True)
def tanh_backward_cpu(dy, x, out):
    for i in prange(x.size):
        out[i] = dy[i] * _tanh_grad_cpu(x[i])


@elementwise_cuda("tanh")
@cuda_jit
def tanh_cuda(x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = math.tanh(x[i])


@elementwise_cuda("tanh_backward")
@cuda_jit
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


@register("gelu", "numpy")
def gelu_ref(x):
    return (x * 0.5 * (1 + special.erf(x * _INV_SQRT2))).astype(x.dtype, copy=False)


@register("gelu_backward", "numpy")
def gelu_backward_ref(dy, x):
    cdf = 0.5 * (1 + special.erf(x * _INV_SQRT2))
    pdf = _INV_SQRT2PI * np.exp(-0.5 * x * x)
    return (dy * (cdf + x * pdf)).astype(x.dtype, copy=False)


def _gelu_grad_scalar(v):
    return 0.5 * (1.0 + math.erf(v * _INV_SQRT2)) + v * _INV_SQRT2PI * math.exp(-0.5 * v * v)


_gelu_grad_cpu = njit(cache=True, inline="always")(_gelu_grad_scalar)
_gelu_grad_gpu = cuda_jit(_gelu_grad_scalar, device=True)


@elementwise_cpu("gelu")
@njit(parallel=True, cache=True)
def gelu_cpu(x, out):
    for i in prange(x.size):
        out[i] = x[i] * 0.5 * (1.0 + math.erf(x[i] * _INV_SQRT2))


@elementwise_cpu("gelu_backward")
@njit(parallel=True, cache=True)
def gelu_backward_cpu(dy, x, out):
    for i in prange(x.size):
        out[i] = dy[i] * _gelu_grad_cpu(x[i])


@elementwise_cuda("gelu")
@cuda_jit
def gelu_cuda(x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = x[i] * 0.5 * (1.0 + math.erf(x[i] * _INV_SQRT2))


@elementwise_cuda("gelu_backward")
@cuda_jit
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


@elementwise_cpu("silu")
@njit(parallel=True, cache=True)
def silu_cpu(x, out):
    for i in prange(x.size):
        out[i] = x[i] * _sigmoid_cpu(x[i])


@elementwise_cpu("silu_backward")
@njit(parallel=True, cache=True)
def silu_backward_cpu(dy, x, out):
    for i in prange(x.size):
        out[i] = dy[i] * _sigmoid_cpu(x[i]) * (1.0 + x[i] * _sigmoid_cpu(-x[i]))


@elementwise_cuda("silu")
@cuda_jit
def silu_cuda(x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = x[i] * _sigmoid_gpu(x[i])


@elementwise_cuda("silu_backward")
@cuda_jit
def silu_backward_cuda(dy, x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = dy[i] * _sigmoid_gpu(x[i]) * (1.0 + x[i] * _sigmoid_gpu(-x[i]))


# -------------------------------------------------------------------------- PReLU
# prelu(x) = x if x > 0 else alpha * x, with a learnable alpha: one number, shape (), or
# one per feature, shape (D,) for x of shape (..., D).
# backward: dx = dy if x > 0 else alpha * dy
#           dalpha[j] = sum of dy * x over the elements of feature j where x <= 0
# The launchers view x as (M, D), M = x.size // D (D = 1 for a scalar alpha).


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


@njit(parallel=True, cache=True)
def prelu_cpu(x, alpha, out):  # x, out: (M, D); alpha: (D,)
    for i in prange(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = x[i, j] if x[i, j] > 0 else alpha[j] * x[i, j]


@njit(parallel=True, cache=True)
def prelu_backward_cpu(dy, x, alpha, dx, dalpha_parts):  # dalpha_parts: (P, D), zeros
    # NOTE: a prange loop must not add into a shared array element (a silent race), so
    # each of the P chunks of rows sums into its own row of dalpha_parts; the caller
    # adds the P partial sums.
    m, p_count = x.shape[0], dalpha_parts.shape[0]
    for p in prange(p_count):
        for i in range(p * m // p_count, (p + 1) * m // p_count):
            for j in range(x.shape[1]):
                if x[i, j] > 0:
                    dx[i, j] = dy[i, j]
                else:
                    dx[i, j] = alpha[j] * dy[i, j]
                    dalpha_parts[p, j] += dy[i, j] * x[i, j]


KERNELS["prelu", "cpu"] = prelu_cpu
KERNELS["prelu_backward", "cpu"] = prelu_backward_cpu


def _as_rows(a, d):
    return np.ascontiguousarray(a).reshape(-1, d)


@register("prelu", "cpu")
def prelu_cpu_launch(x, alpha):
    out = np.empty_like(_as_rows(x, alpha.size))
    if out.size:
        prelu_cpu(_as_rows(x, alpha.size), alpha.reshape(-1), out)
    return out.reshape(x.shape)


@register("prelu_backward", "cpu")
def prelu_backward_cpu_launch(dy, x, alpha):
    d = alpha.size
    x2, dy2 = _as_rows(x, d), _as_rows(dy, d)
    dx = np.empty_like(x2)
    parts = np.zeros((max(1, min(x2.shape[0], 4 * numba.get_num_threads())), d), x.dtype)
    if dx.size:
        prelu_backward_cpu(dy2, x2, alpha.reshape(-1), dx, parts)
    return dx.reshape(x.shape), parts.sum(axis=0).reshape(alpha.shape)


@cuda_jit
def prelu_cuda(x, alpha, out):  # x, out: (n,) flat; alpha: (D,)
    i = cuda.grid(1)
    if i < x.size:
        out[i] = x[i] if x[i] > 0 else alpha[i % alpha.size] * x[i]


@cuda_jit
def prelu_backward_cuda(dy, x, alpha, dx, dalpha):  # dy, x, dx: (M, D); dalpha: (D,) zeros
    # Thread (j, r) handles feature j for rows r, r + stride, ...: neighbouring threads
    # read neighbouring features, so a warp reads one contiguous run of memory.
    j, r = cuda.grid(2)
    if j >= x.shape[1]:
        return
    acc = 0.0  # NOTE: accumulates in float64, whatever the input dtype
    for i in range(r, x.shape[0], cuda.gridsize(2)[1]):
        if x[i, j] > 0:
            dx[i, j] = dy[i, j]
        else:
            dx[i, j] = alpha[j] * dy[i, j]
            acc += dy[i, j] * x[i, j]
    # SPEEDTIP: one atomic add per thread, not per element.
    cuda.atomic.add(dalpha, j, acc)


KERNELS["prelu", "cuda"] = prelu_cuda
KERNELS["prelu_backward", "cuda"] = prelu_backward_cuda
# a block of 32 features x 8 rows, and at most 1024 blocks down the rows (the threads
# then stride over the remaining rows); 4 x 2 and 8 under the simulator
PRELU_THREADS, PRELU_MAX_ROW_BLOCKS = ((4, 2), 8) if SIMULATOR else ((32, 8), 1024)


@register("prelu", "cuda")
def prelu_cuda_launch(x, alpha):
    on_gpu = is_device_array(x)
    shape, n = tuple(x.shape), x.size
    d_x, d_alpha = to_device(x).reshape(n), to_device(alpha.reshape(alpha.size))
    out = cuda.device_array(n, np.dtype(x.dtype))
    if n:
        prelu_cuda[(n + 255) // 256, 256](d_x, d_alpha, out)
    return out.reshape(shape) if on_gpu else out.copy_to_host().reshape(shape)


@register("prelu_backward", "cuda")
def prelu_backward_cuda_launch(dy, x, alpha):
    on_gpu = is_device_array(x)
    shape, d = tuple(x.shape), alpha.size
    m = x.size // d
    d_x, d_dy = to_device(x).reshape(m, d), to_device(dy).reshape(m, d)
    d_alpha = to_device(alpha.reshape(d))
    dx = cuda.device_array((m, d), np.dtype(x.dtype))
    dalpha = gpu_zeros(d, np.dtype(x.dtype))  # the kernel adds into it
    if x.size:
        tx, ty = PRELU_THREADS
        blocks = ((d + tx - 1) // tx, min((m + ty - 1) // ty, PRELU_MAX_ROW_BLOCKS))
        prelu_backward_cuda[blocks, (tx, ty)](d_dy, d_x, d_alpha, dx, dalpha)
    if on_gpu:
        return dx.reshape(shape), dalpha.reshape(alpha.shape)
    return dx.copy_to_host().reshape(shape), dalpha.copy_to_host().reshape(alpha.shape)
