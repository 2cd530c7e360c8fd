"""The dense (fully connected) layer, with its bias and an optional ReLU fused in: the
NumPy reference, the Numba CPU kernel and the CUDA kernels side by side.

Shapes (N batch, D input features, H output features):

    x  : (N, D)     W : (D, H)     b : (H,)
    forward   z = x @ W + b             (N, H)
              y = act(z)                (N, H)   act: 0 = identity, 1 = ReLU
    backward  dz = dy * act'(z)         (N, H)   for ReLU: dy where y > 0 else 0
              dW = x.T @ dz             (D, H)
              db = sum_n dz[n]          (H,)
              dx = dz @ W.T             (N, D)   skipped when need_dx=0

NOTE: the first layer's ``dx`` is the gradient with respect to the input data, which
training never uses; ``need_dx=0`` skips that product (for 784-1024-10 it is a third of
the step's matrix work) and returns ``None`` in its place.

``grads_out``: optionally the arrays ``(dW, db)`` to write the parameter gradients into,
where the data lives (a layer passes its own ``grads``: a training step then allocates
no new gradient arrays); they are the ones returned.

NOTE: for ReLU, ``y > 0`` exactly when ``z > 0``, so the backward needs only ``y`` and
the pre-activation ``z`` is never stored.
"""

from __future__ import annotations

import os

import numpy as np
from numba import njit, prange

from .._backend import register
from .._cuda import cuda, cuda_jit
from .._validate import is_device_array
from ._launch import KERNELS, THREADS_1D, to_device

ACTIVATIONS = {None: 0, "relu": 1}  # the activations the dense kernels can fuse

# ---------------------------------------------------------------------- reference


@register("dense_forward", "numpy")
def dense_forward_ref(x, W, b, act):
    z = x @ W + b  # (N, D) @ (D, H) + (H,) -> (N, H)
    return np.maximum(z, 0) if act == 1 else z


@register("dense_backward", "numpy")
def dense_backward_ref(dy, x, W, y, act, need_dx=1, grads_out=None):
    dz = np.where(y > 0, dy, 0).astype(dy.dtype) if act == 1 else dy  # (N, H)
    dx = dz @ W.T if need_dx else None  # (N, D)
    dW, db = x.T @ dz, dz.sum(axis=0)  # (D, H), (H,)
    if grads_out is not None:
        grads_out[0][...], grads_out[1][...] = dW, db
        dW, db = grads_out
    return dx, dW, db


# ---------------------------------------------------------------------- CPU (Numba)
# SPEEDTIP: the matrix products go to BLAS (np.dot inside @njit calls SciPy's BLAS);
# the bias and the activation are applied in one prange pass over the rows afterwards.
# NOTE: BLAS stays outside the prange loops: BLAS is itself multi-threaded, and calling
# it from parallel threads oversubscribes the cores.


COLS = 16  # columns per block in dense_backward_cpu


@njit(parallel=True, cache=True)
def dense_forward_cpu(x, W, b, act, out):
    np.dot(x, W, out)  # (N, H), written in place: no temporary
    for i in prange(out.shape[0]):
        for j in range(out.shape[1]):
            v = out[i, j] + b[j]
            out[i, j] = v if (act == 0 or v > 0) else 0.0


@njit(parallel=True, cache=True)
def dense_backward_cpu(dy, x, W, y, act, dz, dx, dW, db, need_dx):
    n, h = dy.shape
    for i in prange(n):  # dz = dy * act'(z), one row per iteration
        for j in range(h):
            dz[i, j] = dy[i, j] if (act == 0 or y[i, j] > 0) else 0.0
    # SPEEDTIP: db, the column sums of dz, by blocks of COLS adjacent columns (one
    # 64-byte cache line of float32 per row): each iteration walks the rows in memory
    # order, and no two threads add into one db entry. One column per iteration read
    # the rows with a stride of the row length, and for 512 x 1024 took 4x longer.
    for jb in prange((h + COLS - 1) // COLS):
        j0 = jb * COLS
        j1 = min(j0 + COLS, h)
        s = np.zeros(COLS)  # float64 sums, one per column of the block
        for i in range(n):
            for j in range(j0, j1):
                s[j - j0] += dz[i, j]
        for j in range(j0, j1):
            db[j] = s[j - j0]
    # SPEEDTIP: x.T and W.T are transposed views (F-contiguous), which BLAS takes as
    # they are (a "transpose" flag), with no copy.
    np.dot(x.T, dz, dW)  # (D, N) @ (N, H)
    if need_dx:
        np.dot(dz, W.T, dx)  # (N, H) @ (H, D)


KERNELS["dense_forward", "cpu"] = dense_forward_cpu
KERNELS["dense_backward", "cpu"] = dense_backward_cpu


@register("dense_forward", "cpu")
def dense_forward_cpu_launch(x, W, b, act, out=None):
    """``out``: an optional (N, H) C-contiguous buffer to write into (no allocation)."""
    if out is None:
        out = np.empty((x.shape[0], W.shape[1]), x.dtype)
    if out.size:
        if x.shape[1] == 0:
            out[:] = b if act == 0 else np.maximum(b, 0)
        else:
            dense_forward_cpu(x, W, b, act, out)
    return out


@register("dense_backward", "cpu")
def dense_backward_cpu_launch(dy, x, W, y, act, need_dx=1, grads_out=None):
    if dy.size == 0 or x.shape[1] == 0:  # degenerate shapes: BLAS wants non-empty operands
        return dense_backward_ref(dy, x, W, y, act, need_dx, grads_out)
    # NOTE: dz may not be dy itself: dy is the loss's gradient, which its owner may keep.
    dz = np.empty_like(dy)
    dx = np.empty_like(x) if need_dx else None
    if grads_out is None:
        dW, db = np.empty_like(W), np.empty(W.shape[1], dy.dtype)
    else:
        dW, db = grads_out
    # NOTE: the kernel's signature stays fixed: without dx it gets a 0-row placeholder.
    dense_backward_cpu(dy, x, W, y, act, dz, dx if need_dx else x[:0], dW, db, need_dx)
    return dx, dW, db


# ---------------------------------------------------------------------- CUDA
# One tiled matrix product serves the forward pass and both products of the backward
# pass. Each block computes a TILE x TILE tile of C; it walks along the shared dimension
# L one TILE-wide strip at a time, every thread loading one element of op(A) and one of
# op(B) into shared memory, so each global element is read once per tile instead of
# once per product term (TILE times fewer global reads than the naive kernel).
#
#     C (M, K) = act(op(A) @ op(B) + bias)    op(A) = A.T if ta else A, shape (M, L)
#                                             op(B) = B.T if tb else B, shape (L, K)
#
# NOTE: under the simulator every GPU thread is a Python thread, so its tiles are 4 wide.
TILE = 4 if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" else 16


@cuda_jit
def gemm_cuda(A, B, ta, tb, bias, act, C):
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    row = cuda.blockIdx.y * TILE + ty  # of C
    col = cuda.blockIdx.x * TILE + tx
    M, K = C.shape
    L = A.shape[0] if ta else A.shape[1]
    sA = cuda.shared.array((TILE, TILE), dtype=A.dtype)  # tile of op(A): rows row..
    sB = cuda.shared.array((TILE, TILE), dtype=B.dtype)  # tile of op(B): cols col..
    acc = 0.0
    for t0 in range(0, L, TILE):
        k = t0 + tx
        if row < M and k < L:
            sA[ty, tx] = A[k, row] if ta else A[row, k]
        else:
            sA[ty, tx] = 0.0  # padding past the edge adds nothing to the sum
        k = t0 + ty
        if k < L and col < K:
            sB[ty, tx] = B[col, k] if tb else B[k, col]
        else:
            sB[ty, tx] = 0.0
        cuda.syncthreads()  # the tiles are complete before anyone reads them
        for kk in range(TILE):
            acc += sA[ty, kk] * sB[kk, tx]
        cuda.syncthreads()  # everyone is done with the tiles before they are overwritten
    if row < M and col < K:
        if bias.size > 0:
            acc += bias[col]
        if act == 1 and acc < 0:
            acc = 0.0
        C[row, col] = acc


@cuda_jit
def dense_backward_cuda(dy, y, act, dz, db):
    """dz = dy * act'(z) and db = sum over rows of dz; one thread per column."""
    j = cuda.grid(1)
    if j < dy.shape[1]:
        s = 0.0
        for i in range(dy.shape[0]):  # neighbouring threads read neighbouring columns
            v = dy[i, j] if (act == 0 or y[i, j] > 0) else 0.0
            dz[i, j] = v
            s += v
        db[j] = s


KERNELS["dense_forward", "cuda"] = gemm_cuda
KERNELS["dense_backward", "cuda"] = dense_backward_cuda

_NO_BIAS: dict = {}


def _no_bias(dtype):
    if dtype not in _NO_BIAS:
        _NO_BIAS[dtype] = cuda.device_array(0, dtype)
    return _NO_BIAS[dtype]


def _gemm(A, B, ta, tb, bias, act, C):
    M, K = C.shape
    if M and K:
        grid = ((K + TILE - 1) // TILE, (M + TILE - 1) // TILE)
        gemm_cuda[grid, (TILE, TILE)](A, B, ta, tb, bias, act, C)


@register("dense_forward", "cuda")
def dense_forward_cuda_launch(x, W, b, act):
    on_gpu = is_device_array(x)
    x, W, b = to_device(x), to_device(W), to_device(b)
    out = cuda.device_array((x.shape[0], W.shape[1]), np.dtype(x.dtype))
    _gemm(x, W, 0, 0, b, act, out)
    return out if on_gpu else out.copy_to_host()


@register("dense_backward", "cuda")
def dense_backward_cuda_launch(dy, x, W, y, act, need_dx=1, grads_out=None):
    on_gpu = is_device_array(dy)
    dy, x, W, y = to_device(dy), to_device(x), to_device(W), to_device(y)
    dtype = np.dtype(dy.dtype)
    n, h = dy.shape
    dz = cuda.device_array((n, h), dtype)
    if grads_out is not None and on_gpu:  # written in place on the GPU
        dW, db = grads_out
    else:
        db = cuda.device_array(h, dtype)
        dW = cuda.device_array(W.shape, dtype)
    dx = cuda.device_array(x.shape, dtype) if need_dx else None
    if h:
        dense_backward_cuda[(h + THREADS_1D - 1) // THREADS_1D, THREADS_1D](dy, y, act, dz, db)
    _gemm(x, dz, 1, 0, _no_bias(dtype), 0, dW)  # dW = x.T @ dz   (D, H)
    if need_dx:
        _gemm(dz, W, 0, 1, _no_bias(dtype), 0, dx)  # dx = dz @ W.T   (N, D)
    if on_gpu:
        return dx, dW, db
    dx = dx.copy_to_host() if need_dx else None
    if grads_out is None:
        return dx, dW.copy_to_host(), db.copy_to_host()
    dW.copy_to_host(grads_out[0])
    db.copy_to_host(grads_out[1])
    return dx, grads_out[0], grads_out[1]
