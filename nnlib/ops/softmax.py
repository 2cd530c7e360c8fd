"""softmax and log_softmax along one axis: the NumPy reference, the Numba CPU kernel and
the CUDA kernel of each, side by side.

Shapes: ``x``, ``dy``, ``y`` and ``dx`` have the same shape ``(...)``; the kernels see
them as ``(M, C)`` with the softmax axis moved last (C entries normalised per row).

    softmax(x)_j     = exp(x_j - m) / sum_k exp(x_k - m),   m = max_k x_k
    log_softmax(x)_j = x_j - m - log(sum_k exp(x_k - m))

NOTE: subtracting the row maximum ``m`` changes nothing mathematically but keeps every
``exp`` argument <= 0, so nothing overflows, even for logits of 1e4; the largest term
is exp(0) = 1, so the sum is >= 1 and its log is finite.

Backward (the vector-Jacobian product, with y = softmax(x)):

    softmax_backward(dy, x)     = y * (dy - sum_k dy_k y_k)
    log_softmax_backward(dy, x) = dy - y * sum_k dy_k

On the GPU the two are one formula, and one kernel serves both ops (``log`` = 0 for
softmax, 1 for log_softmax); the backward, with w = y for softmax and w = 1 for
log_softmax, is

    dx_j = w_j dy_j - y_j sum_k w_k dy_k

The CPU keeps a kernel per op: there a flag tested in the inner loops, and loops of a
variable stride, cost 1.5-4x.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from .._backend import register
from .._cuda import THREADS_ROW, cuda, cuda_jit
from ._launch import cpu_helper, kernel, rows

# ---------------------------------------------------------------------- reference


def _shifted(x, axis):
    return x - x.max(axis=axis, keepdims=True)  # (...), every entry <= 0


@register("softmax", "numpy")
def softmax_ref(x, *, axis):
    if x.size == 0:
        return x.copy()
    e = np.exp(_shifted(x, axis))
    return e / e.sum(axis=axis, keepdims=True)


@register("softmax_backward", "numpy")
def softmax_backward_ref(dy, x, *, axis):
    y = softmax_ref(x, axis=axis)
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


@register("log_softmax", "numpy")
def log_softmax_ref(x, *, axis):
    if x.size == 0:
        return x.copy()
    z = _shifted(x, axis)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


@register("log_softmax_backward", "numpy")
def log_softmax_backward_ref(dy, x, *, axis):
    y = softmax_ref(x, axis=axis)
    return dy - y * dy.sum(axis=axis, keepdims=True)


# ---------------------------------------------------------------------- CPU (Numba)
# One row per prange iteration: rows are independent, so there is no race, and each
# row's max and sum are plain scalar loops.


@cpu_helper
def _row_max_sum(x, i):
    """Max of row i of x, and sum of exp(x - max) over the row."""
    m = x[i, 0]
    for j in range(1, x.shape[1]):
        m = max(m, x[i, j])
    s = 0.0
    for j in range(x.shape[1]):
        s += math.exp(x[i, j] - m)
    return m, s


@kernel("softmax", "cpu", rows)
def softmax_cpu(x, out):
    for i in prange(x.shape[0]):
        m = x[i, 0]
        for j in range(1, x.shape[1]):
            m = max(m, x[i, j])
        s = 0.0
        for j in range(x.shape[1]):
            # SPEEDTIP: keep exp(x - m) in out, so each exp is computed once, not twice.
            out[i, j] = math.exp(x[i, j] - m)
            s += out[i, j]
        inv = 1.0 / s
        for j in range(x.shape[1]):
            out[i, j] *= inv


@kernel("softmax_backward", "cpu", rows)
def softmax_backward_cpu(dy, x, out):
    for i in prange(x.shape[0]):
        m, s = _row_max_sum(x, i)
        inv = 1.0 / s
        dot = 0.0  # sum_k dy_k * y_k
        for j in range(x.shape[1]):
            dot += dy[i, j] * math.exp(x[i, j] - m) * inv
        for j in range(x.shape[1]):
            out[i, j] = math.exp(x[i, j] - m) * inv * (dy[i, j] - dot)


@kernel("log_softmax", "cpu", rows)
def log_softmax_cpu(x, out):
    for i in prange(x.shape[0]):
        m, s = _row_max_sum(x, i)
        log_s = math.log(s)
        for j in range(x.shape[1]):
            out[i, j] = x[i, j] - m - log_s


@kernel("log_softmax_backward", "cpu", rows)
def log_softmax_backward_cpu(dy, x, out):
    for i in prange(x.shape[0]):
        m, s = _row_max_sum(x, i)
        inv = 1.0 / s
        total = 0.0  # sum_k dy_k
        for j in range(x.shape[1]):
            total += dy[i, j]
        for j in range(x.shape[1]):
            out[i, j] = dy[i, j] - math.exp(x[i, j] - m) * inv * total


# ---------------------------------------------------------------------- CUDA
# One block per row; the block's THREADS_ROW threads stride over the row's C entries
# (neighbouring threads read neighbouring entries: coalesced), then combine their
# partial max / sum through shared memory. A thread's share of row i is the columns
# t, t + THREADS_ROW, ...; the kernels of softmax and log_softmax are one, told apart
# by ``log`` (the same for the whole launch, so the branch costs nothing on a GPU).


@cuda_jit(device=True)
def _part_max(x, i, t):
    m = -math.inf
    for j in range(t, x.shape[1], THREADS_ROW):
        m = max(m, x[i, j])
    return m


@cuda_jit(device=True)
def _part_sum_exp(x, i, m, t):
    s = 0.0
    for j in range(t, x.shape[1], THREADS_ROW):
        s += math.exp(x[i, j] - m)
    return s


@cuda_jit(device=True)
def _part_dot(dy, x, i, m, inv, log, t):
    """This thread's share of sum_j w_j dy_j, w_j = softmax_j (log = 0) or 1 (log = 1)."""
    dot = 0.0
    for j in range(t, x.shape[1], THREADS_ROW):
        dot += dy[i, j] if log else dy[i, j] * math.exp(x[i, j] - m) * inv
    return dot


@cuda_jit(device=True)
def _block_reduce(buf, value, take_max):
    """Max (take_max=True) or sum of ``value`` over the block's threads, in every thread."""
    t = cuda.threadIdx.x
    buf[t] = value
    cuda.syncthreads()
    stride = THREADS_ROW // 2
    while stride > 0:  # tree reduction: log2(THREADS_ROW) steps
        if t < stride:
            other = buf[t + stride]
            buf[t] = max(buf[t], other) if take_max else buf[t] + other
        cuda.syncthreads()
        stride //= 2
    result = buf[0]
    cuda.syncthreads()  # NOTE: every thread must read buf[0] before buf is reused
    return result


@cuda_jit(device=True)
def _block_row_max_inv(x, row, buf):
    """The max m of row ``row`` and 1 / sum exp(x - m), in every thread of the block."""
    t = cuda.threadIdx.x
    m = _block_reduce(buf, _part_max(x, row, t), True)
    return m, 1.0 / _block_reduce(buf, _part_sum_exp(x, row, m, t), False)


# log = 0: softmax; log = 1: log_softmax.
@kernel("softmax", "cuda", rows, consts=(0,))
@kernel("log_softmax", "cuda", rows, consts=(1,))
def softmax_cuda(x, log, out):
    row, t = cuda.blockIdx.x, cuda.threadIdx.x
    buf = cuda.shared.array(THREADS_ROW, numba.float64)
    m, inv = _block_row_max_inv(x, row, buf)
    log_s = -math.log(inv)
    for j in range(t, x.shape[1], THREADS_ROW):
        out[row, j] = x[row, j] - m - log_s if log else math.exp(x[row, j] - m) * inv


@kernel("softmax_backward", "cuda", rows, consts=(0,))
@kernel("log_softmax_backward", "cuda", rows, consts=(1,))
def softmax_backward_cuda(dy, x, log, out):
    row, t = cuda.blockIdx.x, cuda.threadIdx.x
    buf = cuda.shared.array(THREADS_ROW, numba.float64)
    m, inv = _block_row_max_inv(x, row, buf)
    dot = _block_reduce(buf, _part_dot(dy, x, row, m, inv, log, t), False)
    for j in range(t, x.shape[1], THREADS_ROW):  # dx_j = w_j dy_j - y_j dot
        y = math.exp(x[row, j] - m) * inv
        out[row, j] = dy[row, j] - y * dot if log else y * (dy[row, j] - dot)
