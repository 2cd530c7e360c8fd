"""Losses, each fused with its gradient: one pass computes the loss terms and the
gradient with respect to the prediction. The NumPy reference, the Numba CPU kernel and
the CUDA kernel side by side.

Every op is ``grad = op(pred, target, scale, acc)``. ``grad`` is
``d(scale * total) / d(pred)``, with the shape of ``pred``, where ``total`` is the *sum*
of the per-element (or per-row) losses; the caller picks ``scale`` (``1/count`` for a
mean, 1 for a sum), so the reduction costs nothing extra. ``acc`` is a float64 array of
shape (2,) living where ``pred`` lives; the op *adds* ``total`` to ``acc[0]`` and, for
the classification losses, the number of correct predictions to ``acc[1]`` (argmax ==
label; for the binary losses ``p > 0.5`` or ``z > 0`` against ``t > 0.5``). Training
sums them over an epoch without reading anything back from the GPU.

softmax_cross_entropy   logits z (N, C), labels (N,) int64 in [0, C)
    loss_n = logsumexp(z_n) - z_n[label_n]         grad = scale * (softmax(z_n) - onehot)
mse                     pred, target (M,) (flattened)
    loss_i = (p_i - t_i)^2                         grad = scale * 2 (p_i - t_i)
bce                     probabilities p, targets t in [0, 1], (M,)
    loss_i = -(t log p + (1 - t) log(1 - p))       grad = scale * (p - t) / (p (1 - p))
    NOTE: as in PyTorch, each log is clamped at -100 and p (1 - p) at 1e-12, so p = 0
    or 1 gives a large but finite loss and gradient instead of inf/nan.
bce_with_logits         logits z, targets t in [0, 1], (M,)
    loss_i = max(z, 0) - z t + log(1 + exp(-|z|))  grad = scale * (sigmoid(z) - t)
    NOTE: this form never calls exp on a positive number, so it cannot overflow.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from .._backend import register
from .._cuda import cuda, cuda_jit
from .._validate import is_device_array
from ._launch import KERNELS, SIMULATOR, THREADS_ROW, to_device
from .softmax import _block_reduce

LOG_CLAMP = -100.0
BCE_EPS = 1e-12

# ---------------------------------------------------------------------- reference


@register("softmax_cross_entropy", "numpy")
def softmax_cross_entropy_ref(z, labels, scale, acc):
    m = z.max(axis=1, keepdims=True)  # (N, 1)
    e = np.exp(z - m)  # (N, C), entries in (0, 1]
    s = e.sum(axis=1, keepdims=True)  # (N, 1), >= 1
    rows = np.arange(z.shape[0])
    losses = (np.log(s[:, 0]) + m[:, 0] - z[rows, labels]).astype(np.float64)  # (N,)
    grad = e / s  # softmax, (N, C)
    grad[rows, labels] -= 1
    acc[0] += losses.sum()
    acc[1] += np.sum(z.argmax(axis=1) == labels)
    return (grad * z.dtype.type(scale)).astype(z.dtype)


@register("mse", "numpy")
def mse_ref(p, t, scale, acc):
    d = p - t  # (M,)
    acc[0] += np.sum(d.astype(np.float64) ** 2)
    return (2 * scale * d).astype(p.dtype)


@register("bce", "numpy")
def bce_ref(p, t, scale, acc):
    with np.errstate(divide="ignore"):  # log(0) = -inf, clamped just below
        log_p = np.maximum(np.log(p), LOG_CLAMP)
        log_q = np.maximum(np.log1p(-p), LOG_CLAMP)
    acc[0] += np.sum(-(t * log_p + (1 - t) * log_q), dtype=np.float64)
    acc[1] += np.sum((p > 0.5) == (t > 0.5))
    grad = scale * (p - t) / np.maximum(p * (1 - p), BCE_EPS)
    return grad.astype(p.dtype)


@register("bce_with_logits", "numpy")
def bce_with_logits_ref(z, t, scale, acc):
    losses = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    sig = np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))), 1 - 1 / (1 + np.exp(-np.abs(z))))
    acc[0] += np.sum(losses, dtype=np.float64)
    acc[1] += np.sum((z > 0) == (t > 0.5))
    return (scale * (sig - t)).astype(z.dtype)


# ---------------------------------------------------------------------- CPU (Numba)
# One row (or element) per prange iteration; the loss total is a scalar reduction,
# which Numba parallelises safely (each thread sums privately, then they are added).


@njit(parallel=True, cache=True)
def softmax_cross_entropy_cpu(z, labels, scale, acc, grad):
    total = 0.0
    correct = 0
    for i in prange(z.shape[0]):
        m = z[i, 0]
        best = 0
        for j in range(1, z.shape[1]):
            if z[i, j] > m:  # NOTE: the first maximum wins ties, as np.argmax
                m = z[i, j]
                best = j
        s = 0.0
        for j in range(z.shape[1]):
            e = math.exp(z[i, j] - m)
            grad[i, j] = e  # SPEEDTIP: keep exp(z - m) so it is computed once
            s += e
        inv = 1.0 / s
        for j in range(z.shape[1]):
            grad[i, j] = grad[i, j] * inv * scale
        grad[i, labels[i]] -= scale
        total += math.log(s) + m - z[i, labels[i]]
        correct += 1 if best == labels[i] else 0
    acc[0] += total
    acc[1] += correct


@njit(parallel=True, cache=True)
def mse_cpu(p, t, scale, acc, grad):
    total = 0.0
    for i in prange(p.size):
        d = p[i] - t[i]
        grad[i] = 2.0 * scale * d
        total += d * d
    acc[0] += total


@njit(parallel=True, cache=True)
def bce_cpu(p, t, scale, acc, grad):
    total = 0.0
    correct = 0
    for i in prange(p.size):
        log_p = max(math.log(p[i]), LOG_CLAMP) if p[i] > 0 else LOG_CLAMP
        log_q = max(math.log1p(-p[i]), LOG_CLAMP) if p[i] < 1 else LOG_CLAMP
        total += -(t[i] * log_p + (1.0 - t[i]) * log_q)
        grad[i] = scale * (p[i] - t[i]) / max(p[i] * (1.0 - p[i]), BCE_EPS)
        correct += 1 if (p[i] > 0.5) == (t[i] > 0.5) else 0
    acc[0] += total
    acc[1] += correct


@njit(parallel=True, cache=True)
def bce_with_logits_cpu(z, t, scale, acc, grad):
    total = 0.0
    correct = 0
    for i in prange(z.size):
        e = math.exp(-abs(z[i]))  # in (0, 1]: never overflows
        total += max(z[i], 0.0) - z[i] * t[i] + math.log1p(e)
        sig = 1.0 / (1.0 + e) if z[i] >= 0 else e / (1.0 + e)
        grad[i] = scale * (sig - t[i])
        correct += 1 if (z[i] > 0) == (t[i] > 0.5) else 0
    acc[0] += total
    acc[1] += correct


for _op, _kernel in [
    ("softmax_cross_entropy", softmax_cross_entropy_cpu),
    ("mse", mse_cpu),
    ("bce", bce_cpu),
    ("bce_with_logits", bce_with_logits_cpu),
]:
    KERNELS[_op, "cpu"] = _kernel


@register("softmax_cross_entropy", "cpu")
def softmax_cross_entropy_cpu_launch(z, labels, scale, acc):
    grad = np.empty_like(z)
    if z.shape[0]:
        softmax_cross_entropy_cpu(z, labels, z.dtype.type(scale), acc, grad)
    return grad


def _flat_launch(kernel):
    def run(p, t, scale, acc):
        shape = p.shape
        p, t = np.ascontiguousarray(p).reshape(-1), np.ascontiguousarray(t).reshape(-1)
        grad = np.empty_like(p)
        if p.size:
            kernel(p, t, p.dtype.type(scale), acc, grad)
        return grad.reshape(shape)

    return run


register("mse", "cpu")(_flat_launch(mse_cpu))
register("bce", "cpu")(_flat_launch(bce_cpu))
register("bce_with_logits", "cpu")(_flat_launch(bce_with_logits_cpu))


# ---------------------------------------------------------------------- CUDA
# softmax cross-entropy: a group of lanes (a warp, or part of one for small C) per row,
# several rows per block and a grid-stride loop over the rows; the loss and the correct
# count are summed per block and added to acc with one atomic add each. The elementwise
# losses: a grid-stride loop, then one block reduction of the loss sum. Either way, one
# atomic add per block and quantity into acc.

# SPEEDTIP: 256 threads = 8 warps a block. ptxas (sm_90) gives the float32 kernel 64
# registers a thread, so 4 blocks (32 warps) fit on an SM; with 4 loads in flight a
# lane that is ~16 KB of reads in flight per SM, about what an H100's HBM3 needs
# (3.35 TB/s x ~0.7 us / 132 SMs). At most 1024 blocks (about two such waves on 132
# SMs); larger batches are covered by the grid-stride loop instead of more blocks, which
# also caps the atomic adds into acc at 2 per block: 2048 per launch at most.
# NOTE: under Numba's CUDA simulator every GPU thread is a Python thread: 8-thread
# blocks whose "warp" is 8 lanes wide, and at most 4 blocks, so that the grid-stride
# loop runs several times even in small tests. The kernel works for any power-of-two
# CE_WARP <= 32 that divides CE_THREADS.
CE_THREADS = 8 if SIMULATOR else 256
CE_WARP = min(32, CE_THREADS)  # the lanes that shuffle together
CE_WARPS = CE_THREADS // CE_WARP  # warps a block (the shared-memory partial sums)
CE_MAX_BLOCKS = 4 if SIMULATOR else 1024
FULL_MASK = 0xFFFFFFFF


def ce_lanes(c):
    """Lanes that share a row of C logits: the power of two >= C, at most a warp."""
    # SPEEDTIP: C = 10 takes 16 lanes, two rows a warp, instead of a 128-thread block
    # of which 118 threads idle; C >= 32 takes a whole warp.
    lanes = 1
    while lanes < c and lanes < CE_WARP:
        lanes *= 2
    return lanes


_ce_lanes_cuda = cuda_jit(device=True)(ce_lanes)  # the same rule inside the kernel


@cuda_jit(device=True)
def _exp_below(x, m, one):
    """exp(x - m) for x <= m; exactly 1 when x == m, even when both are -inf."""
    # NOTE: -inf - -inf is NaN; a lane that has seen only -inf (masked logits) counts
    # them as 1 each, and the rescale by exp(-inf - m) = 0 clears that once a finite
    # maximum shows up. A row of only -inf gives NaN, as the reference does.
    return math.exp(x - m) if x < m else one


@cuda_jit(device=True)
def _rescaled(s, m, new_m):
    """s * exp(m - new_m) for m <= new_m, s itself when they are equal (also -inf)."""
    return s if m == new_m else s * math.exp(m - new_m)


@cuda_jit(device=True)
def _lane_max_sum(z, r, lane, lanes, zero, one):
    """This lane's share of row r (columns lane, lane + lanes, ...): the max m, the sum of
    exp(z - m), and the first column holding m (column 0 counts as seen by every lane)."""
    c = z.shape[1]
    # SPEEDTIP: "online" softmax: the running max and the sum are updated together
    # (the sum is rescaled when the max grows), so the row is read once here, not twice.
    m, s, best = z[r, 0], zero, 0
    j = lane
    while j + 3 * lanes < c:
        # SPEEDTIP: four independent loads before any use: each lane has 4 loads in
        # flight instead of 1, so a warp hides 4x more memory latency.
        x0, x1, x2, x3 = z[r, j], z[r, j + lanes], z[r, j + 2 * lanes], z[r, j + 3 * lanes]
        mx = max(max(x0, x1), max(x2, x3))
        if mx > m:  # NOTE: strictly greater: the first maximum wins ties, as np.argmax
            s = _rescaled(s, m, mx)
            m = mx
            if x0 == mx:
                best = j
            elif x1 == mx:
                best = j + lanes
            elif x2 == mx:
                best = j + 2 * lanes
            else:
                best = j + 3 * lanes
        s += _exp_below(x0, m, one) + _exp_below(x1, m, one)
        s += _exp_below(x2, m, one) + _exp_below(x3, m, one)
        j += 4 * lanes
    while j < c:
        x = z[r, j]
        if x > m:
            s = _rescaled(s, m, x)
            m, best = x, j
        s += _exp_below(x, m, one)
        j += lanes
    return m, s, best


@cuda_jit(device=True)
def _group_max_sum(m, s, best, lanes):
    """Combine the lanes' (max, sum, first argmax) over each group of ``lanes`` lanes;
    every lane of the group gets the row's result."""
    # SPEEDTIP: warp shuffles: lanes swap registers directly, with no shared memory and
    # no __syncthreads; log2(lanes) butterfly steps (xor), after which every lane holds
    # the same result (the combination is symmetric), so no broadcast step is needed.
    offset = lanes // 2
    while offset > 0:
        m2 = cuda.shfl_xor_sync(FULL_MASK, m, offset)
        s2 = cuda.shfl_xor_sync(FULL_MASK, s, offset)
        best2 = cuda.shfl_xor_sync(FULL_MASK, best, offset)
        if m2 > m or (m2 == m and best2 < best):  # the first maximum wins ties
            best = best2
        new_m = max(m, m2)
        s = _rescaled(s, m, new_m) + _rescaled(s2, m2, new_m)
        m = new_m
        offset //= 2
    return m, s, best


@cuda_jit(device=True)
def _ce_grad(x, m, k, is_label, scale):
    """One gradient entry: scale * (softmax - onehot), with k = scale / sum."""
    g = math.exp(x - m) * k
    return g - scale if is_label else g


@cuda_jit(device=True)
def _warp_sum(value):
    """Sum of ``value`` over the CE_WARP lanes of a warp, in every lane."""
    offset = CE_WARP // 2
    while offset > 0:
        value += cuda.shfl_xor_sync(FULL_MASK, value, offset)
        offset //= 2
    return value


@cuda_jit
def softmax_cross_entropy_cuda(z, labels, scale, acc, grad):
    n, c = z.shape
    t = cuda.threadIdx.x
    lanes = _ce_lanes_cuda(c)
    lane = t % lanes
    rows_per_block = cuda.blockDim.x // lanes
    # SPEEDTIP: the row's math stays in the logits' dtype: float32 logits get float32
    # max, exp and sum (a float64 op is 2x slower on an H100 and 64x on consumer GPUs).
    # Safe: every exp argument is <= 0 after the max shift, so the sum lies in [1, C].
    # NOTE: z.dtype.type(0), not 0.0, which is a float64 and would promote the sum.
    zero, one = z.dtype.type(0), z.dtype.type(1)
    loss = 0.0  # float64: this thread's sum of row losses (lane 0 of each group)
    correct = 0
    # SPEEDTIP: a grid-stride loop: a bounded grid covers any batch, and each thread
    # keeps its loss and count in registers across rows.
    # NOTE: every thread of a block makes the same number of trips (the loop is over the
    # block's first row), so all lanes reach every shuffle together; a group past the
    # last row recomputes the last row and writes nothing.
    for first in range(cuda.blockIdx.x * rows_per_block, n, cuda.gridDim.x * rows_per_block):
        row = first + t // lanes
        r = min(row, n - 1)
        m, s, best = _lane_max_sum(z, r, lane, lanes, zero, one)
        m, s, best = _group_max_sum(m, s, best, lanes)
        label = labels[r]
        if row < n:
            k = scale / s  # SPEEDTIP: one division a row, then a multiply an entry
            j = lane
            while j + 3 * lanes < c:
                # SPEEDTIP: 4 loads before the first store: Numba cannot prove grad and
                # z apart, so the compiler would not move a load above an earlier store.
                x0, x1, x2, x3 = z[r, j], z[r, j + lanes], z[r, j + 2 * lanes], z[r, j + 3 * lanes]
                grad[r, j] = _ce_grad(x0, m, k, j == label, scale)
                grad[r, j + lanes] = _ce_grad(x1, m, k, j + lanes == label, scale)
                grad[r, j + 2 * lanes] = _ce_grad(x2, m, k, j + 2 * lanes == label, scale)
                grad[r, j + 3 * lanes] = _ce_grad(x3, m, k, j + 3 * lanes == label, scale)
                j += 4 * lanes
            while j < c:
                grad[r, j] = _ce_grad(z[r, j], m, k, j == label, scale)
                j += lanes
            if lane == 0:
                # the row's loss in the logits' dtype, as the reference; summed in float64
                loss += math.log(s) + (m - z[r, label])
                if best == label:
                    correct += 1
    # SPEEDTIP: one atomic add a block and quantity (not one per row, all to the same two
    # addresses, which the GPU serialises): sum over each warp by shuffles, then over
    # the block's warps through shared memory.
    loss = _warp_sum(loss)
    correct = _warp_sum(correct)
    part_loss = cuda.shared.array(CE_WARPS, numba.float64)
    part_correct = cuda.shared.array(CE_WARPS, numba.int64)
    if t % CE_WARP == 0:
        part_loss[t // CE_WARP] = loss
        part_correct[t // CE_WARP] = correct
    cuda.syncthreads()
    if t == 0:
        for w in range(1, cuda.blockDim.x // CE_WARP):
            loss += part_loss[w]
            correct += part_correct[w]
        cuda.atomic.add(acc, 0, loss)
        cuda.atomic.add(acc, 1, float(correct))


@cuda_jit
def mse_cuda(p, t, scale, acc, grad):
    buf = cuda.shared.array(THREADS_ROW, numba.float64)
    total = 0.0
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        d = p[i] - t[i]
        grad[i] = 2.0 * scale * d
        total += d * d
    total = _block_reduce(buf, total, False)
    if cuda.threadIdx.x == 0:
        cuda.atomic.add(acc, 0, total)


@cuda_jit
def bce_cuda(p, t, scale, acc, grad):
    buf = cuda.shared.array(THREADS_ROW, numba.float64)
    total = 0.0
    correct = 0.0
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        log_p = max(math.log(p[i]), LOG_CLAMP) if p[i] > 0 else LOG_CLAMP
        log_q = max(math.log1p(-p[i]), LOG_CLAMP) if p[i] < 1 else LOG_CLAMP
        total += -(t[i] * log_p + (1.0 - t[i]) * log_q)
        grad[i] = scale * (p[i] - t[i]) / max(p[i] * (1.0 - p[i]), BCE_EPS)
        correct += 1.0 if (p[i] > 0.5) == (t[i] > 0.5) else 0.0
    total = _block_reduce(buf, total, False)
    correct = _block_reduce(buf, correct, False)
    if cuda.threadIdx.x == 0:
        cuda.atomic.add(acc, 0, total)
        cuda.atomic.add(acc, 1, correct)


@cuda_jit
def bce_with_logits_cuda(z, t, scale, acc, grad):
    buf = cuda.shared.array(THREADS_ROW, numba.float64)
    total = 0.0
    correct = 0.0
    for i in range(cuda.grid(1), z.size, cuda.gridsize(1)):
        e = math.exp(-abs(z[i]))
        total += max(z[i], 0.0) - z[i] * t[i] + math.log1p(e)
        sig = 1.0 / (1.0 + e) if z[i] >= 0 else e / (1.0 + e)
        grad[i] = scale * (sig - t[i])
        correct += 1.0 if (z[i] > 0) == (t[i] > 0.5) else 0.0
    total = _block_reduce(buf, total, False)
    correct = _block_reduce(buf, correct, False)
    if cuda.threadIdx.x == 0:
        cuda.atomic.add(acc, 0, total)
        cuda.atomic.add(acc, 1, correct)


def _cuda_launch(op, kernel, rowwise):
    KERNELS[op, "cuda"] = kernel

    @register(op, "cuda")
    def run(pred, target, scale, acc):
        on_gpu = is_device_array(pred)
        shape = tuple(pred.shape)
        pred, target, acc_d = to_device(pred), to_device(target), to_device(acc)
        if not rowwise:
            pred, target = pred.reshape(pred.size), target.reshape(target.size)
        grad = cuda.device_array(pred.shape, np.dtype(pred.dtype))
        if pred.size:
            if rowwise:  # groups of ce_lanes(C) lanes a row, CE_THREADS // lanes rows a block
                threads = CE_THREADS
                rows_per_block = threads // ce_lanes(pred.shape[1])
                blocks = min((pred.shape[0] + rows_per_block - 1) // rows_per_block, CE_MAX_BLOCKS)
            else:  # enough blocks to fill the GPU; the loop strides over the rest
                threads = THREADS_ROW
                blocks = min((pred.size + THREADS_ROW - 1) // THREADS_ROW, 1024)
            kernel[blocks, threads](pred, target, np.dtype(pred.dtype).type(scale), acc_d, grad)
        if on_gpu:
            return grad.reshape(shape)
        acc[...] = acc_d.copy_to_host()  # host in, host out: an explicit copy back
        return grad.copy_to_host().reshape(shape)

    run.__name__ = run.__qualname__ = f"{op}_cuda_launch"


_cuda_launch("softmax_cross_entropy", softmax_cross_entropy_cuda, rowwise=True)
_cuda_launch("mse", mse_cuda, rowwise=False)
_cuda_launch("bce", bce_cuda, rowwise=False)
_cuda_launch("bce_with_logits", bce_with_logits_cuda, rowwise=False)
