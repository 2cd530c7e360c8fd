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

The two are one formula: ``log`` = 0 for softmax, 1 for log_softmax, and a kernel of each
target serves both ops (the flag is the same for a whole launch, so the branch costs
nothing). The backward, with w = y for softmax and w = 1 for log_softmax, is

    dx_j = w_j dy_j - y_j sum_k w_k dy_k
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from .._backend import register
from .._cuda import THREADS_ROW, cuda, cuda_jit
from ._launch import kernel, rows, shared

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


# ---------------------------------------------------------------------- the row formulas
# Written once for both targets. Each covers the columns start, start + step, ... of row
# i: the whole row on the CPU (start 0, step 1), one thread's share of it on the GPU
# (start = its index in the block, step = the block's width).


def _part_max(x, i, start, step):
    m = -math.inf
    for j in range(start, x.shape[1], step):
        m = max(m, x[i, j])
    return m


def _part_sum_exp(x, i, m, start, step):
    s = 0.0
    for j in range(start, x.shape[1], step):
        s += math.exp(x[i, j] - m)
    return s


def _part_dot(dy, x, i, m, inv, log, start, step):
    """sum_j w_j dy_j, w_j = softmax_j (log = 0) or 1 (log = 1)."""
    dot = 0.0
    for j in range(start, x.shape[1], step):
        dot += dy[i, j] if log else dy[i, j] * math.exp(x[i, j] - m) * inv
    return dot


def _write_rows(x, i, m, inv, log, out, start, step):
    """out = softmax(x) (log = 0) or log_softmax(x) (log = 1), m the row max, inv 1/sum."""
    log_s = -math.log(inv)
    for j in range(start, x.shape[1], step):
        out[i, j] = x[i, j] - m - log_s if log else math.exp(x[i, j] - m) * inv


def _write_grads(dy, x, i, m, inv, dot, log, out, start, step):
    """dx_j = w_j dy_j - y_j dot, w_j = y_j (log = 0) or 1 (log = 1)."""
    for j in range(start, x.shape[1], step):
        y = math.exp(x[i, j] - m) * inv
        out[i, j] = dy[i, j] - y * dot if log else y * (dy[i, j] - dot)


_part_max_cpu, _part_max_gpu = shared(_part_max)
_part_sum_exp_cpu, _part_sum_exp_gpu = shared(_part_sum_exp)
_part_dot_cpu, _part_dot_gpu = shared(_part_dot)
_write_rows_cpu, _write_rows_gpu = shared(_write_rows)
_write_grads_cpu, _write_grads_gpu = shared(_write_grads)

# ---------------------------------------------------------------------- CPU (Numba)
# One row per prange iteration: rows are independent, so there is no race, and each
# row's max and sum are plain scalar loops.


@kernel("softmax", "cpu", rows, consts=(0,))
@kernel("log_softmax", "cpu", rows, consts=(1,))
def softmax_cpu(x, log, out):
    for i in prange(x.shape[0]):
        m = _part_max_cpu(x, i, 0, 1)
        inv = 1.0 / _part_sum_exp_cpu(x, i, m, 0, 1)
        _write_rows_cpu(x, i, m, inv, log, out, 0, 1)


@kernel("softmax_backward", "cpu", rows, consts=(0,))
@kernel("log_softmax_backward", "cpu", rows, consts=(1,))
def softmax_backward_cpu(dy, x, log, out):
    for i in prange(x.shape[0]):
        m = _part_max_cpu(x, i, 0, 1)
        inv = 1.0 / _part_sum_exp_cpu(x, i, m, 0, 1)
        dot = _part_dot_cpu(dy, x, i, m, inv, log, 0, 1)
        _write_grads_cpu(dy, x, i, m, inv, dot, log, out, 0, 1)


# ---------------------------------------------------------------------- CUDA
# One block per row; the block's THREADS_ROW threads stride over the row's C entries
# (neighbouring threads read neighbouring entries: coalesced), then combine their
# partial max / sum through shared memory.


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
    m = _block_reduce(buf, _part_max_gpu(x, row, t, THREADS_ROW), True)
    return m, 1.0 / _block_reduce(buf, _part_sum_exp_gpu(x, row, m, t, THREADS_ROW), False)


@kernel("softmax", "cuda", rows, consts=(0,))
@kernel("log_softmax", "cuda", rows, consts=(1,))
def softmax_cuda(x, log, out):
    row, t = cuda.blockIdx.x, cuda.threadIdx.x
    buf = cuda.shared.array(THREADS_ROW, numba.float64)
    m, inv = _block_row_max_inv(x, row, buf)
    _write_rows_gpu(x, row, m, inv, log, out, t, THREADS_ROW)


@kernel("softmax_backward", "cuda", rows, consts=(0,))
@kernel("log_softmax_backward", "cuda", rows, consts=(1,))
def softmax_backward_cuda(dy, x, log, out):
    row, t = cuda.blockIdx.x, cuda.threadIdx.x
    buf = cuda.shared.array(THREADS_ROW, numba.float64)
    m, inv = _block_row_max_inv(x, row, buf)
    dot = _block_reduce(buf, _part_dot_gpu(dy, x, row, m, inv, log, t, THREADS_ROW), False)
    _write_grads_gpu(dy, x, row, m, inv, dot, log, out, t, THREADS_ROW)
