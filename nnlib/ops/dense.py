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

NOTE: NaN propagates, as through ``np.maximum``: a NaN pre-activation gives a NaN output
(not 0, which would hide a diverging layer among dead units), and relu'(NaN) = NaN, so
``dz`` is NaN where ``y`` is. Every backend: "keep" where ``y > 0``, 0 where ``y <= 0``,
and NaN where neither holds.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._backend import register
from .._cuda import SIMULATOR, THREADS_2D, blocks_1d, cuda, cuda_jit
from .._validate import is_device_array
from ._launch import LAUNCH, kernel

ACTIVATIONS = {None: 0, "relu": 1}  # the activations the dense kernels can fuse

# ---------------------------------------------------------------------- reference


@register("dense_forward", "numpy")
def dense_forward_ref(x, W, b, act):
    z = x @ W + b  # (N, D) @ (D, H) + (H,) -> (N, H)
    return np.maximum(z, 0) if act == 1 else z


def _relu_mask_ref(dy, y):
    """dz = dy * relu'(z) from y = relu(z): dy where y > 0, 0 where y <= 0, NaN at NaN."""
    return np.where(np.isnan(y), y, np.where(y > 0, dy, 0)).astype(dy.dtype)  # (N, H)


@register("dense_backward", "numpy")
def dense_backward_ref(dy, x, W, y, act, need_dx=1, grads_out=None):
    dz = _relu_mask_ref(dy, y) if act == 1 else dy  # (N, H)
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


def _dense_forward_host(at, launch, x, W, b, act, out=None):
    """``out``: an optional (N, H) C-contiguous buffer to write into (no allocation)."""
    if out is None:
        out = np.empty((x.shape[0], W.shape[1]), x.dtype)
    if out.size:
        if x.shape[1] == 0:
            out[:] = b if act == 0 else np.maximum(b, 0)  # NOTE: np.maximum keeps NaN
        else:
            launch(x, W, b, act, out)
    return out


@kernel("dense_forward", "cpu", _dense_forward_host)
def dense_forward_cpu(x, W, b, act, out):
    np.dot(x, W, out)  # (N, H), written in place: no temporary
    for i in prange(out.shape[0]):
        for j in range(out.shape[1]):
            v = out[i, j] + b[j]
            out[i, j] = 0.0 if (act == 1 and v <= 0) else v  # NaN comes through


def _dense_backward_host(at, launch, dy, x, W, y, act, need_dx=1, grads_out=None):
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
    launch(dy, x, W, y, act, dz, dx if need_dx else x[:0], dW, db, need_dx)
    return dx, dW, db


@kernel("dense_backward", "cpu", _dense_backward_host)
def dense_backward_cpu(dy, x, W, y, act, dz, dx, dW, db, need_dx):
    n, h = dy.shape
    for i in prange(n):  # dz = dy * act'(z), one row per iteration
        for j in range(h):
            v = y[i, j]
            if act == 0 or v > 0:
                dz[i, j] = dy[i, j]
            else:
                dz[i, j] = 0.0 if v <= 0 else v  # v is NaN: relu'(NaN) = NaN
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


# ---------------------------------------------------------------------- CUDA
# One matrix-product kernel serves the forward pass and both products of the backward
# pass, with the cheap elementwise work of the layer folded into it:
#
#     C (M, K) = act(op(A) @ op(B) + bias)    op(A) = A.T if ta else A, shape (M, L)
#                                             op(B) = B.T if tb else B, shape (L, K)
#
#     forward    y  = act(x @ W + b)         A = x,  B = W,  bias = b
#     backward   dW = x.T @ dz               A = x (ta), B = dy masked by y > 0
#                db = sum_n dz               the column sums of op(B): ``colsum``
#                dx = dz @ W.T               A = dy masked by y > 0, B = W (tb)
#
# so ``dz = dy * relu'(y)`` is never written to memory: it is formed while loading
# (``mask_a``/``mask_b``: an element counts only where the mask is > 0; an empty mask
# keeps everything), and the bias gradient is summed from the tiles already loaded.
#
# Each kernel is launched through ``_product``; the first version (kernel 1) computes
# the same thing in the plainest way, and the tuned one (``gemm_cuda``) is what the ops run.

_EMPTY: dict = {}


def _empty(dtype, ndim):
    """A size-0 GPU array: "no bias", "no mask", "no column sums" (made once)."""
    key = np.dtype(dtype), ndim
    if key not in _EMPTY:
        _EMPTY[key] = cuda.device_array((0,) * ndim, key[0])
    return _EMPTY[key]


def _product(launch, A, B, ta, tb, bias, act, C, mask_a=None, mask_b=None, colsum=None):
    """C = act(op(A) @ op(B) + bias) on the GPU by the kernel behind ``launch``; see above
    for the options. ``None`` is "none" (no bias, no mask, no column sums)."""
    dtype = np.dtype(C.dtype)
    bias = _empty(dtype, 1) if bias is None else bias
    mask_a = _empty(dtype, 2) if mask_a is None else mask_a
    mask_b = _empty(dtype, 2) if mask_b is None else mask_b
    colsum = _empty(dtype, 1) if colsum is None else colsum
    # NOTE: with column sums to compute there is work even when M = 0
    if C.shape[1] and (C.shape[0] or colsum.size):
        launch(A, B, ta, tb, bias, act, C, mask_a, mask_b, colsum)


def _gemm(A, B, ta, tb, bias, act, C, mask_a=None, mask_b=None, colsum=None, *, first=False):
    """``_product`` by the tuned kernel, or by the first version (``first=True``)."""
    launch = LAUNCH["dense_forward", "cuda", first]
    _product(launch, A, B, ta, tb, bias, act, C, mask_a, mask_b, colsum)


def _dense_forward_gpu(at, launch, x, W, b, act):
    d_x, d_W, d_b = at.put(x), at.put(W), at.put(b)
    out = cuda.device_array((x.shape[0], W.shape[1]), np.dtype(x.dtype))
    _product(launch, d_x, d_W, 0, 0, d_b, act, out)  # y = act(x @ W + b)   (N, H)
    return at.home(out, x)


def _dense_backward_gpu(at, launch, dy, x, W, y, act, need_dx=1, grads_out=None):
    on_gpu = is_device_array(dy)
    dy, x, W, y = at.put(dy), at.put(x), at.put(W), at.put(y)
    dtype = np.dtype(dy.dtype)
    if grads_out is not None and on_gpu:  # written in place on the GPU
        dW, db = grads_out
    else:
        db = cuda.device_array(W.shape[1], dtype)
        dW = cuda.device_array(W.shape, dtype)
    dx = cuda.device_array(x.shape, dtype) if need_dx else None
    mask = y if act == 1 else None  # dz = dy where y > 0, formed while loading
    _product(launch, x, dy, 1, 0, None, 0, dW, mask_b=mask, colsum=db)  # dW = x.T @ dz, db
    if need_dx:
        _product(launch, dy, W, 0, 1, None, 0, dx, mask_a=mask)  # dx = dz @ W.T   (N, D)
    if on_gpu:
        return dx, dW, db
    dx = dx.copy_to_host() if need_dx else None
    if grads_out is None:
        return dx, dW.copy_to_host(), db.copy_to_host()
    dW.copy_to_host(grads_out[0])
    db.copy_to_host(grads_out[1])
    return dx, grads_out[0], grads_out[1]


# Kernel 1, the first version: one thread per element of C, a plain loop over L reading
# op(A) and op(B) straight from global memory; the thread of row 0 of each column also
# sums that column of op(B) (db).


def _one_thread_grid(A, B, ta, tb, bias, act, C, mask_a, mask_b, colsum):
    tx, ty = THREADS_2D  # x along the columns of C: a warp covers 32 neighbouring columns
    return (blocks_1d(C.shape[1], tx), max(blocks_1d(C.shape[0], ty), 1)), (tx, ty)


@cuda_jit(device=True)
def _masked(v, w, zero):
    """``v`` where the mask entry ``w`` is > 0, ``zero`` where it is <= 0, and ``w``
    itself (NaN) where it is neither: relu'(NaN) = NaN."""
    if w > 0:
        return v
    return zero if w <= 0 else w


@cuda_jit(device=True)
def _op_at(X, mask, t, i, j, zero):
    """Element (i, j) of op(X) = X.T if t else X, masked by ``mask`` (empty: none)."""
    r, c = (j, i) if t else (i, j)
    if mask.size == 0:
        return X[r, c]
    return _masked(X[r, c], mask[r, c], zero)


@kernel("dense_forward", "cuda", _dense_forward_gpu, grid=_one_thread_grid, first_version=True)
@kernel("dense_backward", "cuda", _dense_backward_gpu, grid=_one_thread_grid, first_version=True)
def matmul_first_cuda(A, B, ta, tb, bias, act, C, mask_a, mask_b, colsum):
    col, row = cuda.grid(2)
    M, K = C.shape
    L = A.shape[0] if ta else A.shape[1]
    zero = C.dtype.type(0)
    if col >= K:
        return
    if row < M:
        acc = zero
        for k in range(L):
            acc += _op_at(A, mask_a, ta, row, k, zero) * _op_at(B, mask_b, tb, k, col, zero)
        if bias.size > 0:
            acc += bias[col]
        C[row, col] = zero if act == 1 and acc < 0 else acc
    if row == 0 and colsum.size > 0:
        s = zero
        for k in range(L):
            s += _op_at(B, mask_b, tb, k, col, zero)
        colsum[col] = s


# The tuned kernel.


# How the product is computed. Each block owns a BM x BN tile of C. It walks along the
# shared dimension L one BK-deep strip at a time: the block's threads copy the strip of
# op(A) (BM x BK) and of op(B) (BK x BN) into shared memory, then every thread computes
# TM x TN outputs of the tile from it.
# SPEEDTIP: register tiling. A thread that computes TM x TN outputs reads TM + TN values
# from shared memory per step along L and does TM * TN multiply-adds with them, in
# registers (a 1-output-per-thread tile needs 2 shared loads per multiply-add, and
# shared memory, not arithmetic, then sets the pace).
# SPEEDTIP: coalesced loads whatever the transposition. The strip is copied by
# neighbouring threads taking neighbouring addresses of A or B *as stored* (along a row
# of the stored array), and written transposed into shared memory where needed; reading
# op(A) element by element instead would make neighbouring threads read a row apart.
# SPEEDTIP: the accumulator has C's dtype: float32 sums for float32 data run at the
# GPU's full float32 rate (float64 is 2x slower on an H100, up to 64x on consumer GPUs).
# The rounding error stays within the classical bound L * eps * (|A| @ |B|).
# NOTE: the thread (tx, ty) owns rows ty + i * (BM // TM) and columns tx + j * (BN // TN)
# of the tile (strided, not a TM x TN block): neighbouring threads then read
# neighbouring shared-memory words (no bank conflicts) and write neighbouring addresses
# of C (coalesced).
# NOTE: shared rows are padded by one element, so the transposed writes of a strip land
# in different memory banks.
# NOTE: under the simulator every GPU thread is a Python thread: the tiles are tiny.
if SIMULATOR:
    BM, BN, BK, TM, TN = 8, 8, 4, 2, 2
else:
    BM, BN, BK, TM, TN = 64, 64, 16, 4, 4
THREADS_GEMM = (BM // TM) * (BN // TN)  # 256 on a GPU: a 16 x 16 grid of threads
SA_WIDTH, SB_WIDTH = BM + 1, BN + 1  # shared-memory row lengths (padded by one)


@cuda_jit(device=True)
def _load_strip(X, mask, k_rows, k0, j0, width, s, t):
    """Copy a BK-deep strip of an operand into shared memory: ``s[k, j]`` is the element
    at depth ``k0 + k`` (along L) and position ``j0 + j`` (along M for op(A), K for
    op(B)), or 0 past the edge, masked by ``mask`` (empty: none; see ``_masked``).
    ``k_rows``: X is stored with the depth along its rows (``A`` when ``ta``, ``B`` when
    not ``tb``)."""
    zero = X.dtype.type(0)  # NOTE: not 0, an int, which would promote float32 to float64
    for e in range(t, BK * width, THREADS_GEMM):
        if k_rows:  # X is (L, .): neighbouring threads take neighbouring j
            k, j = e // width, e % width
            r, c = k0 + k, j0 + j
        else:  # X is (., L): neighbouring threads take neighbouring k
            j, k = e // BK, e % BK
            r, c = j0 + j, k0 + k
        if r < X.shape[0] and c < X.shape[1]:
            v = X[r, c]
            s[k, j] = v if mask.size == 0 else _masked(v, mask[r, c], zero)
        else:
            s[k, j] = zero  # past the edge: adds nothing to the sum


def _tile_grid(A, B, ta, tb, bias, act, C, mask_a, mask_b, colsum):
    # NOTE: with column sums to compute there is one row of blocks even when M = 0
    rows = max(blocks_1d(C.shape[0], BM), 1 if colsum.size else 0)
    return (blocks_1d(C.shape[1], BN), rows), THREADS_GEMM


@kernel("dense_forward", "cuda", _dense_forward_gpu, grid=_tile_grid)
@kernel("dense_backward", "cuda", _dense_backward_gpu, grid=_tile_grid)  # two products
def gemm_cuda(A, B, ta, tb, bias, act, C, mask_a, mask_b, colsum):
    """The tuned product. What each trick buys over the first version
    (``matmul_first_cuda``, one thread an output, operands read from global memory):

    * tiling: a block copies BM x BK and BK x BN strips into shared memory once and
      every thread of the block reuses them, so each element of A and B is read from
      global memory K / BN and M / BM times instead of K and M times.
    * register blocking: each thread computes TM x TN outputs from TM + TN values
      loaded from shared memory, TM * TN multiply-adds in registers (one output a thread
      needs two loads per multiply-add, and memory then sets the pace).
    * coalescing whatever the transposition: the strips are loaded by neighbouring
      threads reading neighbouring addresses of A and B as stored; the first version's
      transposed operands make neighbouring threads read a row apart.
    * no bank conflicts: padded shared rows and strided ownership of the tile.
    * the column sums (db) come from the strips already in shared memory, not from a
      second pass over op(B) by one thread a column.
    """
    t = cuda.threadIdx.x
    tx, ty = t % (BN // TN), t // (BN // TN)
    m0, n0 = cuda.blockIdx.y * BM, cuda.blockIdx.x * BN  # the block's tile of C
    M, K = C.shape
    L = A.shape[0] if ta else A.shape[1]
    sA = cuda.shared.array((BK, SA_WIDTH), dtype=A.dtype)  # sA[k, m] = op(A)[m0+m, k0+k]
    sB = cuda.shared.array((BK, SB_WIDTH), dtype=B.dtype)  # sB[k, n] = op(B)[k0+k, n0+n]
    acc = cuda.local.array((TM, TN), dtype=C.dtype)
    a = cuda.local.array(TM, dtype=A.dtype)
    b = cuda.local.array(TN, dtype=B.dtype)
    csum = cuda.local.array(TN, dtype=C.dtype)
    for i in range(TM):
        for j in range(TN):
            acc[i, j] = 0
    for j in range(TN):
        csum[j] = 0
    # the threads of the first row of blocks that also sum op(B)'s columns (db)
    sums = colsum.size > 0 and cuda.blockIdx.y == 0 and ty == 0
    for k0 in range(0, L, BK):
        _load_strip(A, mask_a, ta, k0, m0, BM, sA, t)  # sA[k, m] = op(A)[m0 + m, k0 + k]
        _load_strip(B, mask_b, 1 - tb, k0, n0, BN, sB, t)  # sB[k, n] = op(B)[k0 + k, n0 + n]
        cuda.syncthreads()  # the strips are complete before anyone reads them
        for kk in range(BK):
            for i in range(TM):
                a[i] = sA[kk, ty + i * (BM // TM)]
            for j in range(TN):
                b[j] = sB[kk, tx + j * (BN // TN)]
            for i in range(TM):
                for j in range(TN):
                    acc[i, j] += a[i] * b[j]
            if sums:
                for j in range(TN):
                    csum[j] += b[j]
        cuda.syncthreads()  # everyone is done with the strips before they are overwritten
    for j in range(TN):
        col = n0 + tx + j * (BN // TN)
        if col < K and sums:
            colsum[col] = csum[j]
        for i in range(TM):
            row = m0 + ty + i * (BM // TM)
            if row < M and col < K:
                v = acc[i, j] + bias[col] if bias.size > 0 else acc[i, j]
                if act == 1 and v < 0:
                    C[row, col] = 0
                else:
                    C[row, col] = v
