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
from ._launch import KERNELS, THREADS_ROW, to_device
from .softmax import _block_reduce, _block_row_max_sum

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
# softmax cross-entropy: one block per row, as the softmax kernels (the row's max and
# sum are block reductions). The elementwise losses: a grid-stride loop, then one block
# reduction of the loss sum. Either way, one atomic add per block into acc.


@cuda_jit
def softmax_cross_entropy_cuda(z, labels, scale, acc, grad):
    row, t, c = cuda.blockIdx.x, cuda.threadIdx.x, z.shape[1]
    buf = cuda.shared.array(THREADS_ROW, numba.float64)
    m, s = _block_row_max_sum(z, row, buf)
    first = c  # the first column holding the max (np.argmax's rule for ties)
    for j in range(t, c, THREADS_ROW):
        if z[row, j] == m and j < first:
            first = j
    best = -_block_reduce(buf, -first, True)  # min over the block = -max(-first)
    label = labels[row]
    for j in range(t, c, THREADS_ROW):
        g = math.exp(z[row, j] - m) / s
        if j == label:
            g -= 1.0
        grad[row, j] = g * scale
    if t == 0:
        cuda.atomic.add(acc, 0, math.log(s) + m - z[row, label])
        cuda.atomic.add(acc, 1, 1.0 if best == label else 0.0)


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
            if rowwise:
                blocks = pred.shape[0]
            else:  # enough blocks to fill the GPU; the loop strides over the rest
                blocks = min((pred.size + THREADS_ROW - 1) // THREADS_ROW, 1024)
            kernel[blocks, THREADS_ROW](pred, target, np.dtype(pred.dtype).type(scale), acc_d, grad)
        if on_gpu:
            return grad.reshape(shape)
        acc[...] = acc_d.copy_to_host()  # host in, host out: an explicit copy back
        return grad.copy_to_host().reshape(shape)

    run.__name__ = run.__qualname__ = f"{op}_cuda_launch"


_cuda_launch("softmax_cross_entropy", softmax_cross_entropy_cuda, rowwise=True)
_cuda_launch("mse", mse_cuda, rowwise=False)
_cuda_launch("bce", bce_cuda, rowwise=False)
_cuda_launch("bce_with_logits", bce_with_logits_cuda, rowwise=False)
