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

First version, then tuned version (on the cpu): ``*_cpu_v1`` are the first, readable
kernels (one row per prange iteration, scalar ``math.exp``; compiled, not registered:
``benchmarks/bench_activations.py`` times them). The registered cpu kernels differ in
three ways, each measured there on rows of 100:

* SIMD exp: ``vexp`` (``_vecmath.py``) over a whole block of rows at once, after the
  rows' maxima are subtracted (one long loop: a row of 100 alone would leave LLVM's
  16-lane loop a 36-element scalar remainder, which cost about as much as the rest);
* sums and maxima with independent accumulators (``_row_sum``, ``_row_max``): one
  accumulator is a chain of dependent adds, one per clock at best;
* serial below ``SERIAL_BELOW`` elements: the parallel region's start (waking the
  second thread) costs more than the work of a small array. Above it, a prange loop
  over blocks of about ``BLOCK`` elements (whole rows), which stay in the L1 cache
  between the passes over them.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from .._backend import register
from .._cuda import THREADS_ROW, cuda, cuda_jit
from ._launch import CPU_HELPER_OPTIONS, CPU_OPTIONS, cpu_helper, kernel, rows
from ._vecmath import typed, vexp

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


first_cpu = numba.njit(**CPU_OPTIONS)  # a first-version cpu kernel: compiled, not registered


@first_cpu
def softmax_cpu_v1(x, out):
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


@first_cpu
def softmax_backward_cpu_v1(dy, x, out):
    for i in prange(x.shape[0]):
        m, s = _row_max_sum(x, i)
        inv = 1.0 / s
        dot = 0.0  # sum_k dy_k * y_k
        for j in range(x.shape[1]):
            dot += dy[i, j] * math.exp(x[i, j] - m) * inv
        for j in range(x.shape[1]):
            out[i, j] = math.exp(x[i, j] - m) * inv * (dy[i, j] - dot)


@first_cpu
def log_softmax_cpu_v1(x, out):
    for i in prange(x.shape[0]):
        m, s = _row_max_sum(x, i)
        log_s = math.log(s)
        for j in range(x.shape[1]):
            out[i, j] = x[i, j] - m - log_s


@first_cpu
def log_softmax_backward_cpu_v1(dy, x, out):
    for i in prange(x.shape[0]):
        m, s = _row_max_sum(x, i)
        inv = 1.0 / s
        total = 0.0  # sum_k dy_k
        for j in range(x.shape[1]):
            total += dy[i, j]
        for j in range(x.shape[1]):
            out[i, j] = dy[i, j] - math.exp(x[i, j] - m) * inv * total


# The tuned cpu kernels. Each works on blocks of whole rows, rows r0..r1-1:
#   pass 1, per row: z = x - max(x) into out;
#   pass 2, the block as one flat array: out = exp(out)  (the only exps);
#   pass 3, per row: the sums, then the row's result from out (and dy).
SERIAL_BELOW = 131_072  # elements: below, one thread (measured: benchmarks/README.md)
BLOCK = 4096  # elements per prange iteration (whole rows: at least one)

# NOTE: the row sums are the one place with a fastmath flag: ``reassoc`` lets LLVM add
# 16 lanes at a time (only the order of the additions changes; the sum is float64 for
# float32 data, as before). It is a separate function so that the flag reaches nothing
# else (LLVM inlines it into the kernels afterwards).
_sum_helper = numba.njit(**{**CPU_HELPER_OPTIONS, "inline": "never", "fastmath": {"reassoc"}})


@_sum_helper
def _row_sum(a, i):
    """sum_j a[i, j] (float64)."""
    s = 0.0
    for j in range(a.shape[1]):
        s += a[i, j]
    return s


@_sum_helper
def _row_dot(a, b, i):
    """sum_j a[i, j] * b[i, j] (float64)."""
    s = 0.0
    for j in range(a.shape[1]):
        s += float(a[i, j]) * b[i, j]
    return s


@cpu_helper
def _row_max(x, i):
    """max_j x[i, j], by 8 independent maxima (NaN: see below)."""
    # NOTE: a NaN may or may not come out of here; either way exp(x - m) is NaN for the
    # NaN entry or for all of them, so the row's sum, and every result, is NaN.
    c = x.shape[1]
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = x[i, 0]
    j = 0
    while j + 8 <= c:
        m0, m1 = max(m0, x[i, j]), max(m1, x[i, j + 1])
        m2, m3 = max(m2, x[i, j + 2]), max(m3, x[i, j + 3])
        m4, m5 = max(m4, x[i, j + 4]), max(m5, x[i, j + 5])
        m6, m7 = max(m6, x[i, j + 6]), max(m7, x[i, j + 7])
        j += 8
    for k in range(j, c):
        m0 = max(m0, x[i, k])
    return max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))


@cpu_helper
def _exp_of_shifted(x, out, r0, r1):
    """out[r] = exp(x[r] - max(x[r])) for the rows r0..r1-1."""
    c = x.shape[1]
    for i in range(r0, r1):
        m = _row_max(x, i)
        for j in range(c):
            out[i, j] = x[i, j] - m
    # SPEEDTIP: one loop over the block, not one per row. NOTE: over a view, indexed from
    # 0: an index such as r0 * c + k might be negative as far as Numba knows, and the
    # wraparound check it then adds to every access stops LLVM from vectorizing the loop.
    block = out.reshape(out.size)[r0 * c : r1 * c]
    for k in range(block.size):
        block[k] = vexp(block[k])


@cpu_helper
def _blocks(x):
    """(rows per block, number of blocks, parallel?) for the (M, C) array x."""
    per = max(1, BLOCK // max(1, x.shape[1]))
    return per, (x.shape[0] + per - 1) // per, x.size >= SERIAL_BELOW


@cpu_helper
def _softmax_block(x, out, r0, r1):
    _exp_of_shifted(x, out, r0, r1)
    for i in range(r0, r1):
        inv = typed(x[i, 0], 1.0 / _row_sum(out, i))
        for j in range(x.shape[1]):
            out[i, j] *= inv


@kernel("softmax", "cpu", rows)
def softmax_cpu(x, out):
    per, count, parallel = _blocks(x)
    if parallel:
        for b in prange(count):
            _softmax_block(x, out, b * per, min(x.shape[0], (b + 1) * per))
    else:
        _softmax_block(x, out, 0, x.shape[0])


@cpu_helper
def _log_softmax_block(x, out, r0, r1):
    _exp_of_shifted(x, out, r0, r1)
    for i in range(r0, r1):
        m, log_s = _row_max(x, i), math.log(_row_sum(out, i))
        for j in range(x.shape[1]):
            # NOTE: (x - m) - log_s, not x - (m + log_s): next to m = 1e30 the latter
            # loses log_s entirely.
            out[i, j] = (x[i, j] - m) - log_s


@kernel("log_softmax", "cpu", rows)
def log_softmax_cpu(x, out):
    per, count, parallel = _blocks(x)
    if parallel:
        for b in prange(count):
            _log_softmax_block(x, out, b * per, min(x.shape[0], (b + 1) * per))
    else:
        _log_softmax_block(x, out, 0, x.shape[0])


@cpu_helper
def _softmax_backward_block(dy, x, out, r0, r1):
    _exp_of_shifted(x, out, r0, r1)
    for i in range(r0, r1):
        inv = 1.0 / _row_sum(out, i)
        dot = _row_dot(dy, out, i) * inv  # sum_k dy_k y_k
        for j in range(x.shape[1]):
            out[i, j] = out[i, j] * inv * (dy[i, j] - dot)


@kernel("softmax_backward", "cpu", rows)
def softmax_backward_cpu(dy, x, out):
    per, count, parallel = _blocks(x)
    if parallel:
        for b in prange(count):
            _softmax_backward_block(dy, x, out, b * per, min(x.shape[0], (b + 1) * per))
    else:
        _softmax_backward_block(dy, x, out, 0, x.shape[0])


@cpu_helper
def _log_softmax_backward_block(dy, x, out, r0, r1):
    _exp_of_shifted(x, out, r0, r1)
    for i in range(r0, r1):
        scale = _row_sum(dy, i) / _row_sum(out, i)  # sum_k dy_k / sum_k exp(x_k - m)
        for j in range(x.shape[1]):
            out[i, j] = dy[i, j] - out[i, j] * scale


@kernel("log_softmax_backward", "cpu", rows)
def log_softmax_backward_cpu(dy, x, out):
    per, count, parallel = _blocks(x)
    if parallel:
        for b in prange(count):
            _log_softmax_backward_block(dy, x, out, b * per, min(x.shape[0], (b + 1) * per))
    else:
        _log_softmax_backward_block(dy, x, out, 0, x.shape[0])


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
