"""2-D convolution (with its bias and an optional ReLU fused in) and max pooling: the
NumPy reference, the Numba CPU kernels and the CUDA kernels side by side.

Images are NCHW, as in PyTorch. Shapes (N batch, C input channels, F output channels
(filters), H x W input, KH x KW kernel, OH x OW output, s stride, p zero padding)::

    x  : (N, C, H, W)     W : (F, C, KH, KW)     b : (F,)
    OH = (H + 2p - KH) // s + 1        OW = (W + 2p - KW) // s + 1
    xpad = x with p zeros on each side of H and W            (N, C, H + 2p, W + 2p)

    forward   z[n, f, i, j] = b[f] + sum_{c,u,v} W[f, c, u, v] * xpad[n, c, i*s + u, j*s + v]
              y = act(z)                                     (N, F, OH, OW)
    backward  dz = dy * act'(z)                              (N, F, OH, OW)
              db[f]         = sum_{n,i,j} dz[n, f, i, j]                         (F,)
              dW[f, c, u, v] = sum_{n,i,j} dz[n, f, i, j] * xpad[n, c, i*s + u, j*s + v]
              dxpad[n, c, i*s + u, j*s + v] += sum_f dz[n, f, i, j] * W[f, c, u, v]
              dx = dxpad without its padding                 (N, C, H, W)

NOTE: this is a cross-correlation (the kernel is not flipped), as in every deep-learning
library; a learned kernel does not care which of the two it is.

Every output is a dot product between a window of ``xpad`` and a filter, so the whole
forward pass is one matrix product once the windows are laid out as the columns of a
matrix (``im2col``): ``cols[(c, u, v), (n, i, j)] = xpad[n, c, i*s + u, j*s + v]``,
``(C*KH*KW, N*OH*OW)``, and ``z = W.reshape(F, C*KH*KW) @ cols + b``. The backward
pass is two more products, ``dW = dz @ cols.T`` and ``dcols = W.T @ dz``, and ``col2im``
adds each column of ``dcols`` back onto the window it came from (windows overlap when
s < KH, so an input pixel collects from every window that covers it).

``activation``: 0 = identity, 1 = ReLU (as the dense layer; ``y > 0`` exactly when
``z > 0``, so the backward needs only ``y``). ``need_dx=0`` skips ``dx`` (the first layer
never needs the gradient of the data) and returns None for it; ``grads_out``: the arrays
``(dW, db)`` to write the parameter gradients into (a layer passes its own ``grads``).

Max pooling, window k x k, stride s (windows tile the input: (H - k) % s == 0)::

    x : (N, C, H, W)  ->  y, argmax : (N, C, OH, OW),  OH = (H - k) // s + 1
    y[n, c, i, j]      = max_{u,v} x[n, c, i*s + u, j*s + v]
    argmax[n, c, i, j] = u * k + v of that maximum: the first one in row-major window
                         order on ties; a NaN counts as the maximum (np.argmax's rule)
    backward  dx[n, c, i*s + u, j*s + v] += dy[n, c, i, j] where u * k + v = argmax[n, c, i, j]
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numpy.lib.stride_tricks import sliding_window_view

from .._backend import register
from .._cuda import THREADS_1D, blocks_1d, cuda, cuda_jit
from .._validate import is_device_array
from ._launch import CPU_HELPER_OPTIONS, CPU_OPTIONS, cpu_helper, kernel, shared
from ._vecmath import typed
from .dense import _relu_mask_ref

first_cpu = njit(**CPU_OPTIONS)  # a first-version cpu kernel: compiled, not registered


def conv_output_size(size: int, k: int, stride: int, pad: int) -> int:
    """OH (or OW): how many windows of ``k`` fit along ``size + 2 * pad`` at ``stride``."""
    return (size + 2 * pad - k) // stride + 1


def pool_output_size(size: int, k: int, stride: int) -> int:
    return (size - k) // stride + 1


# ---------------------------------------------------------------------- reference


def _windows_ref(x, KH, KW, stride, pad):
    """Every window of the padded input, as a view (no copy):
    ``win[n, c, i, j, u, v] = xpad[n, c, i*s + u, j*s + v]``, (N, C, OH, OW, KH, KW)."""
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))  # (N, C, H + 2p, W + 2p)
    # all windows at stride 1, (N, C, H + 2p - KH + 1, W + 2p - KW + 1, KH, KW); keep every s-th
    win = sliding_window_view(xpad, (KH, KW), axis=(2, 3))
    return win[:, :, ::stride, ::stride]


@register("conv2d_forward", "numpy")
def conv2d_forward_ref(x, W, b, stride, pad, act):
    win = _windows_ref(x, W.shape[2], W.shape[3], stride, pad)  # (N, C, OH, OW, KH, KW)
    # NOTE: tensordot lays the windows out as a (N*OH*OW, C*KH*KW) matrix (a copy: that
    # is the im2col) and multiplies it by W.reshape(F, C*KH*KW).T.
    z = np.tensordot(win, W, axes=([1, 4, 5], [1, 2, 3]))  # (N, OH, OW, F)
    z = z.transpose(0, 3, 1, 2) + b[:, None, None]  # (N, F, OH, OW)
    z = np.ascontiguousarray(z, dtype=x.dtype)
    return np.maximum(z, 0) if act == 1 else z  # NOTE: np.maximum keeps NaN


@register("conv2d_backward", "numpy")
def conv2d_backward_ref(dy, x, W, y, stride, pad, act, need_dx=1, grads_out=None):
    N, C, H, Wd = x.shape
    KH, KW = W.shape[2], W.shape[3]
    OH, OW = dy.shape[2], dy.shape[3]
    dz = _relu_mask_ref(dy, y) if act == 1 else dy  # (N, F, OH, OW)
    db = dz.sum(axis=(0, 2, 3))  # (F,)
    win = _windows_ref(x, KH, KW, stride, pad)  # (N, C, OH, OW, KH, KW)
    dW = np.tensordot(dz, win, axes=([0, 2, 3], [0, 2, 3]))  # (F, C, KH, KW)
    dx = None
    if need_dx:
        # col2im: each window's gradient, sum_f dz[n, f, i, j] * W[f, :, :, :], is added
        # back onto the pixels of the window, one kernel offset (u, v) at a time: offset
        # (u, v) of window (i, j) is pixel (i*s + u, j*s + v) of xpad, a strided slice.
        dcols = np.tensordot(dz, W, axes=([1], [0]))  # (N, OH, OW, C, KH, KW)
        dxpad = np.zeros((N, C, H + 2 * pad, Wd + 2 * pad), x.dtype)
        for u in range(KH):
            for v in range(KW):
                rows = slice(u, u + stride * (OH - 1) + 1, stride)  # i*s + u, i < OH
                cols = slice(v, v + stride * (OW - 1) + 1, stride)
                dxpad[:, :, rows, cols] += dcols[:, :, :, :, u, v].transpose(0, 3, 1, 2)
        # NOTE: pixels no window reaches (the last rows/columns when (H + 2p - KH) % s != 0)
        # keep gradient 0, as they should.
        dx = np.ascontiguousarray(dxpad[:, :, pad : pad + H, pad : pad + Wd])
    dW, db = dW.astype(x.dtype, copy=False), db.astype(x.dtype, copy=False)
    if grads_out is not None:
        grads_out[0][...], grads_out[1][...] = dW, db
        dW, db = grads_out
    return dx, dW, db


@register("maxpool2d_forward", "numpy")
def maxpool2d_forward_ref(x, k, s):
    N, C = x.shape[:2]
    win = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]  # (N, C, OH, OW, k, k)
    OH, OW = win.shape[2], win.shape[3]
    flat = win.reshape(N, C, OH, OW, k * k)  # window in row-major order: u * k + v
    argmax = np.argmax(flat, axis=-1)  # the first maximum (a NaN, if any) (N, C, OH, OW)
    y = np.take_along_axis(flat, argmax[..., None], axis=-1)[..., 0]
    return np.ascontiguousarray(y), argmax.astype(np.int64)


@register("maxpool2d_backward", "numpy")
def maxpool2d_backward_ref(dy, argmax, x_shape, k, s):
    N, C, OH, OW = dy.shape
    dx = np.zeros(tuple(x_shape), dy.dtype)
    # route: dy goes to offset argmax of its window, 0 to the others (N, C, OH, OW, k*k)
    routed = np.where(np.arange(k * k) == argmax[..., None], dy[..., None], 0).astype(dy.dtype)
    routed = routed.reshape(N, C, OH, OW, k, k)
    for u in range(k):  # windows overlap when s < k: a pixel collects from each of them
        for v in range(k):
            dx[:, :, u : u + s * (OH - 1) + 1 : s, v : v + s * (OW - 1) + 1 : s] += routed[
                ..., u, v
            ]
    return dx


# ---------------------------------------------------------------------- CPU (Numba)
# The first versions (``*_cpu_v1``, compiled, not registered: benchmarks/bench_conv.py
# times them) are the formulas above as direct loops, one (image, filter) a prange
# iteration. The registered kernels choose between two strategies by the length of one
# output's sum, C*KH*KW (``direct = C*KH*KW <= DIRECT_MAX_CKK``, decided by the host):
#
# * direct (few input channels, e.g. a first layer: 1*3*3 = 9): no BLAS. A prange loop
#   over the images; each image is copied once into a zero-padded scratch ``xp``
#   (C, Hp, Wp), Hp = H + 2p, Wp = W + 2p, and every output plane is built by KH*KW*C
#   passes ``acc += W[f, c, u, v] * (xp shifted by (u, v))``.
#   SPEEDTIP: the shifted planes are read as ONE contiguous run of
#   (Hp - KH)*Wp + Wp - KW + 1 elements ("wide" rows of Wp, whose last KW - 1 columns are
#   not outputs and are dropped): a stride-1 loop hundreds long, which LLVM vectorizes,
#   instead of OH loops of OW. (At stride s > 1 the run holds every stride-1 output, s*s
#   times the work, and every s-th row and column is kept: one code path, not tuned.)
#   The backward walks the same runs: dW and db are dot products (``_dot``, ``_sum``:
#   fastmath reassoc) of the image's wide dz (0 off the outputs) with the shifted planes,
#   kept as per-image partial sums (N, F*(C*KH*KW + 1)) and added over the images in
#   float64 afterwards (no race); dx is the transposed pass,
#   ``dxp (shifted by (u, v)) += W[f, c, u, v] * dz``, per image.
# * im2col + BLAS (many input channels, long sums): the windows are copied into ``cols``
#   (C*KH*KW, N*OH*OW) in a prange loop over the images, then ONE matrix product does the
#   whole batch's arithmetic in BLAS (multi-threaded and vectorized); bias and ReLU are
#   applied in the prange pass that moves the product's (F, N*OH*OW) rows into the
#   (N, F, OH, OW) output.
#
# Why two: with short sums the product (F, 9) @ (9, N*OH*OW) does ~9 flops per element
# it reads or writes, so BLAS gains little over the copy, and on a small machine the
# hand-over between Numba's threads (the prange loops) and OpenBLAS's threads costs more
# than the arithmetic (see the NOTE in nnlib/__init__.py). With long sums (16*3*3 = 144)
# BLAS's blocked product wins. The crossover was measured with ``benchmarks/bench_conv.py
# --crossover`` (3x3 kernels, C = 1 ... 16).
# NOTE: BLAS stays outside the prange loops (BLAS inside them oversubscribes the cores).
# NOTE: every prange iteration writes only its own image's (or filter's) outputs; the sums
# over the batch (dW, db) are inside the products, split by filter, or per-image partial
# sums: no races.

# The measured crossover (benchmarks/README.md, "Conv2D"): direct won at C*KH*KW = 9, 18
# and 36 on every shape tried; at 72 the winner depended on the shape (image size,
# filters); at 144 BLAS was as fast or faster. The threshold is the last size where the
# direct kernels won everywhere.
DIRECT_MAX_CKK = 36  # C*KH*KW at most this: the direct kernels


@cpu_helper
def _valid_range(k_off, stride, pad, size, n_out):
    """The outputs i in [lo, hi) whose input index i*s + k_off - p is in [0, size)."""
    lo = max(0, -((k_off - pad) // stride))  # ceil((p - k_off) / s)
    hi = min(n_out, (size - 1 + pad - k_off) // stride + 1)
    return lo, max(lo, hi)


@cpu_helper
def _im2col(x, n, stride, pad, KH, KW, OH, OW, cols):
    """Image ``n``'s windows into its columns n*OH*OW ... of ``cols`` (zeros off the image)."""
    C, H, Wd = x.shape[1], x.shape[2], x.shape[3]
    base = n * OH * OW
    for c in range(C):
        plane = x[n, c]  # (H, W)
        for u in range(KH):
            i_lo, i_hi = _valid_range(u, stride, pad, H, OH)
            for v in range(KW):
                j_lo, j_hi = _valid_range(v, stride, pad, Wd, OW)
                row = cols[(c * KH + u) * KW + v]  # (N*OH*OW,)
                for i in range(OH):
                    out = row[base + i * OW : base + (i + 1) * OW]  # (OW,) of window row i
                    if i < i_lo or i >= i_hi:
                        out[:] = 0
                        continue
                    src = plane[i * stride + u - pad]  # (W,) the input row it reads
                    out[:j_lo] = 0
                    out[j_hi:] = 0
                    if stride == 1:  # SPEEDTIP: a contiguous copy, which LLVM vectorizes
                        d = v - pad
                        for j in range(j_lo, j_hi):
                            out[j] = src[j + d]
                    else:
                        for j in range(j_lo, j_hi):
                            out[j] = src[j * stride + v - pad]


@cpu_helper
def _col2im(dcols, n, stride, pad, KH, KW, OH, OW, dx):
    """dx[n] = the sum of image ``n``'s window gradients (its columns of ``dcols``), each
    added back onto the pixels its window covers."""
    C, H, Wd = dx.shape[1], dx.shape[2], dx.shape[3]
    base = n * OH * OW
    dx[n] = 0
    for c in range(C):
        plane = dx[n, c]  # (H, W)
        for u in range(KH):
            i_lo, i_hi = _valid_range(u, stride, pad, H, OH)
            for v in range(KW):
                j_lo, j_hi = _valid_range(v, stride, pad, Wd, OW)
                row = dcols[(c * KH + u) * KW + v]
                for i in range(i_lo, i_hi):
                    g = row[base + i * OW : base + (i + 1) * OW]  # (OW,)
                    dst = plane[i * stride + u - pad]  # (W,)
                    if stride == 1:  # SPEEDTIP: contiguous, vectorized
                        d = v - pad
                        for j in range(j_lo, j_hi):
                            dst[j + d] += g[j]
                    else:
                        for j in range(j_lo, j_hi):
                            dst[j * stride + v - pad] += g[j]


# NOTE: as in softmax.py, the sums are the one place with a fastmath flag: ``reassoc``
# lets LLVM add a vector of lanes at a time (only the order of the additions changes). A
# separate function, so that the flag reaches nothing else (LLVM inlines it afterwards).
_sum_helper = njit(**{**CPU_HELPER_OPTIONS, "inline": "never", "fastmath": {"reassoc"}})


@_sum_helper
def _dot(a, a0, b, b0, m):
    """sum_j a[a0 + j] * b[b0 + j], j < m, in the data's dtype (as BLAS's dW: one image's
    run of products; the batch's sum of them is float64)."""
    # NOTE: on views indexed from 0: an index such as a0 + j might be negative as far as
    # Numba knows, and the wraparound check it then adds to every access stops LLVM from
    # vectorizing the loop (as in softmax.py).
    s = typed(a[a0], 0.0)  # SPEEDTIP: float32 sums for float32 data: 16 lanes, not 8
    av, bv = a[a0 : a0 + m], b[b0 : b0 + m]
    for j in range(m):
        s += av[j] * bv[j]
    return s


@_sum_helper
def _sum(a, a0, m):
    """sum_j a[a0 + j], j < m (float64)."""
    s = 0.0
    av = a[a0 : a0 + m]  # NOTE: indexed from 0, as in _dot
    for j in range(m):
        s += av[j]
    return s


@cpu_helper
def _axpy(y, y0, w, x, x0, m):
    """y[y0 + j] += w * x[x0 + j], j < m (on views indexed from 0, as in _dot)."""
    yv, xv = y[y0 : y0 + m], x[x0 : x0 + m]
    for j in range(m):  # SPEEDTIP: contiguous, vectorized
        yv[j] += w * xv[j]


@cpu_helper
def _padded(x, n, pad, xp):
    """xp (C*Hp*Wp,) = image ``n`` with ``pad`` zeros on each side, plane after plane."""
    C, H, Wd = x.shape[1], x.shape[2], x.shape[3]
    Hp, Wp = H + 2 * pad, Wd + 2 * pad
    xp[:] = 0
    for c in range(C):
        for h in range(H):
            row = (c * Hp + h + pad) * Wp + pad
            dst, src = xp[row : row + Wd], x[n, c, h]  # NOTE: views indexed from 0 (_dot)
            for w in range(Wd):
                dst[w] = src[w]


# NOTE: the direct kernels' per-image work is a function the prange loop calls, not one
# inlined into it (Numba's IR inlining into a prange body failed to lower its slices).
_image_helper = njit(**{**CPU_HELPER_OPTIONS, "inline": "never"})


@_image_helper
def _forward_direct(x, n, W, b, stride, pad, act, out):
    """Image ``n``'s outputs out[n] (F, OH, OW), by shifted passes over its padded copy.
    Output (i, j) is element i*s*Wp + j*s of the wide run (at stride s > 1 the run holds
    every stride-1 output, s*s times the work, of which every s-th row and column is kept)."""
    C, H, Wd = x.shape[1], x.shape[2], x.shape[3]
    F, KH, KW = W.shape[0], W.shape[2], W.shape[3]
    OH, OW = out.shape[2], out.shape[3]
    Hp, Wp = H + 2 * pad, Wd + 2 * pad
    xp = np.empty(C * Hp * Wp, x.dtype)
    _padded(x, n, pad, xp)
    L = (Hp - KH) * Wp + Wp - KW + 1  # the wide run: every stride-1 window's start
    acc = np.empty(L, x.dtype)  # z of one filter
    for f in range(F):
        acc[:] = b[f]
        for c in range(C):
            for u in range(KH):
                for v in range(KW):
                    _axpy(acc, 0, W[f, c, u, v], xp, (c * Hp + u) * Wp + v, L)
        for i in range(OH):
            o = out[n, f, i]  # (OW,)
            for j in range(OW):
                z = acc[i * stride * Wp + j * stride]
                o[j] = 0.0 if (act == 1 and z <= 0) else z  # NaN comes through


@_image_helper
def _backward_direct(dy, x, W, y, n, stride, pad, act, need_dx, parts, dx):
    """Image ``n``'s share of the gradients: parts[n, f*(CKK + 1) + (c*KH + u)*KW + v] =
    its dW[f, c, u, v], parts[n, f*(CKK + 1) + CKK] = its db[f], and dx[n] (if need_dx)."""
    C, H, Wd = x.shape[1], x.shape[2], x.shape[3]
    F, KH, KW = W.shape[0], W.shape[2], W.shape[3]
    OH, OW = dy.shape[2], dy.shape[3]
    Hp, Wp = H + 2 * pad, Wd + 2 * pad
    ckk = C * KH * KW
    xp = np.empty(C * Hp * Wp, x.dtype)
    _padded(x, n, pad, xp)
    L = (Hp - KH) * Wp + Wp - KW + 1  # the wide run, as in _forward_direct
    g = np.zeros(F * L, x.dtype)  # dz of each filter on the wide run (0 off the outputs)
    for f in range(F):
        for i in range(OH):
            gi = g[f * L + i * stride * Wp : f * L + (i + 1) * stride * Wp]
            dyi, yi = dy[n, f, i], y[n, f, i]  # (OW,)
            for j in range(OW):
                h = yi[j]
                # dy where y > 0, 0 where y <= 0, relu'(NaN) = NaN (branch-free: a select)
                gi[j * stride] = dyi[j] if (act == 0 or h > 0) else (0.0 if h <= 0 else h)
    for f in range(F):
        base = f * (ckk + 1)
        parts[n, base + ckk] = _sum(g, f * L, L)
        for c in range(C):
            for u in range(KH):
                for v in range(KW):
                    off = (c * Hp + u) * Wp + v
                    parts[n, base + (c * KH + u) * KW + v] = _dot(g, f * L, xp, off, L)
    if need_dx:
        dxp = xp  # NOTE: xp is no longer needed: it becomes dxpad
        dxp[:] = 0
        for c in range(C):
            for u in range(KH):
                for v in range(KW):
                    off = (c * Hp + u) * Wp + v
                    for f in range(F):
                        _axpy(dxp, off, W[f, c, u, v], g, f * L, L)
        for c in range(C):
            for h in range(H):
                row = (c * Hp + h + pad) * Wp + pad
                dst, src = dx[n, c, h], dxp[row : row + Wd]  # views indexed from 0 (_dot)
                for w in range(Wd):
                    dst[w] = src[w]


def _conv_forward_host(at, launch, x, W, b, stride, pad, act):
    N, F = x.shape[0], W.shape[0]
    OH = conv_output_size(x.shape[2], W.shape[2], stride, pad)
    OW = conv_output_size(x.shape[3], W.shape[3], stride, pad)
    ckk = W.shape[1] * W.shape[2] * W.shape[3]
    if N * F * OH * OW == 0:  # degenerate shapes: BLAS wants non-empty operands
        return conv2d_forward_ref(x, W, b, stride, pad, act)
    x, W, b = np.ascontiguousarray(x), np.ascontiguousarray(W), np.ascontiguousarray(b)
    direct = ckk <= DIRECT_MAX_CKK
    # NOTE: the kernel's signature stays fixed: the direct strategy gets (0, 0) placeholders.
    work = (0, 0) if direct else (ckk, N * OH * OW)
    cols = np.empty(work, x.dtype)
    z = np.empty((0, 0) if direct else (F, N * OH * OW), x.dtype)
    out = np.empty((N, F, OH, OW), x.dtype)
    launch(x, W, b, stride, pad, act, int(direct), cols, z, out)
    return out


@kernel("conv2d_forward", "cpu", _conv_forward_host)
def conv2d_forward_cpu(x, W, b, stride, pad, act, direct, cols, z, out):
    N, F, OH, OW = out.shape
    KH, KW = W.shape[2], W.shape[3]
    # NOTE: one prange loop for both strategies: each prange loop is a function of its own
    # to compile, which is most of the compile time.
    for n in prange(N):
        if direct:  # image n's outputs, no BLAS
            _forward_direct(x, n, W, b, stride, pad, act, out)
        else:  # im2col: image n fills its own columns
            _im2col(x, n, stride, pad, KH, KW, OH, OW, cols)
    if direct:
        return
    np.dot(W.reshape(F, cols.shape[0]), cols, z)  # (F, CKK) @ (CKK, N*OH*OW)
    P = OH * OW
    for n in prange(N):  # bias + activation, moving (F, N*P) into (N, F, OH, OW)
        o = out[n].reshape(F, P)
        for f in range(F):
            for q in range(P):
                v = z[f, n * P + q] + b[f]
                o[f, q] = 0.0 if (act == 1 and v <= 0) else v  # NaN comes through


def _conv_backward_host(at, launch, dy, x, W, y, stride, pad, act, need_dx=1, grads_out=None):
    N, F, OH, OW = dy.shape
    ckk = W.shape[1] * W.shape[2] * W.shape[3]
    if dy.size == 0:
        return conv2d_backward_ref(dy, x, W, y, stride, pad, act, need_dx, grads_out)
    dy, x, W, y = (np.ascontiguousarray(a) for a in (dy, x, W, y))
    direct = ckk <= DIRECT_MAX_CKK
    # the windows, then dcols (im2col); the per-image partial sums of dW and db (direct)
    cols = np.empty((N, F * (ckk + 1)) if direct else (ckk, N * OH * OW), x.dtype)
    # dy * act'(z), laid out as the product's rows (im2col only)
    dz = np.empty((0, 0) if direct else (F, N * OH * OW), x.dtype)
    dx = np.empty_like(x) if need_dx else None
    # SPEEDTIP: the gradients are written straight into grads_out when it can take them
    direct_out = grads_out is not None and all(g.flags.c_contiguous for g in grads_out)
    dW, db = grads_out if direct_out else (np.empty_like(W), np.empty(F, dy.dtype))
    # NOTE: the kernel's signature stays fixed: without dx it gets a 0-image placeholder.
    dx_arg = dx if need_dx else x[:0]
    launch(dy, x, W, y, stride, pad, act, need_dx, int(direct), cols, dz, dx_arg, dW, db)
    if grads_out is not None and not direct_out:
        grads_out[0][...], grads_out[1][...] = dW, db
        dW, db = grads_out
    return dx, dW, db


@kernel("conv2d_backward", "cpu", _conv_backward_host)
def conv2d_backward_cpu(dy, x, W, y, stride, pad, act, need_dx, direct, cols, dz, dx, dW, db):
    """``direct``: ``cols`` is (N, F*(CKK + 1)), the per-image partial sums of dW and db
    (``_backward_direct``); else the windows (CKK, N*OH*OW), then dcols."""
    N, F, OH, OW = dy.shape
    KH, KW = W.shape[2], W.shape[3]
    P, ckk = OH * OW, W.shape[1] * KH * KW
    for n in prange(N):  # NOTE: one prange loop for both strategies, as in the forward
        if direct:  # image n's share of the gradients, no BLAS
            _backward_direct(dy, x, W, y, n, stride, pad, act, need_dx, cols, dx)
            continue
        # dz (F, N*P) = dy * act'(z), and image n's windows
        g, h = dy[n].reshape(F, P), y[n].reshape(F, P)
        for f in range(F):
            for q in range(P):
                v = h[f, q]
                if act == 0 or v > 0:
                    dz[f, n * P + q] = g[f, q]
                else:
                    dz[f, n * P + q] = 0.0 if v <= 0 else v  # v is NaN: relu'(NaN) = NaN
        _im2col(x, n, stride, pad, KH, KW, OH, OW, cols)
    if direct:  # the per-image partial sums, added over the batch (N*F*(CKK + 1) adds)
        dW2 = dW.reshape(F * ckk)
        for k in range(F * (ckk + 1)):
            s = 0.0  # a float64 sum
            for n in range(N):
                s += cols[n, k]
            f, t = k // (ckk + 1), k % (ckk + 1)
            if t == ckk:
                db[f] = s
            else:
                dW2[f * ckk + t] = s
        return
    for f in prange(F):  # db: one filter's row of dz an iteration
        s = 0.0  # a float64 sum
        for q in range(N * P):
            s += dz[f, q]
        db[f] = s
    # SPEEDTIP: cols.T and W2.T are transposed views, which BLAS takes as they are.
    np.dot(dz, cols.T, dW.reshape(F, ckk))  # dW (F, CKK) = dz (F, N*P) @ cols.T
    if need_dx:
        np.dot(W.reshape(F, ckk).T, dz, cols)  # dcols (CKK, N*P) = W2.T @ dz, over cols
        for n in prange(N):  # col2im: image n's windows add onto its own dx only
            _col2im(cols, n, stride, pad, KH, KW, OH, OW, dx)


@first_cpu
def conv2d_forward_cpu_v1(x, W, b, stride, pad, act, out):
    """First version: the formula as loops, one (image, filter) output plane an iteration."""
    N, C, H, Wd = x.shape
    F, _, KH, KW = W.shape
    OH, OW = out.shape[2], out.shape[3]
    for nf in prange(N * F):
        n, f = nf // F, nf % F
        for i in range(OH):
            for j in range(OW):
                acc = 0.0
                for c in range(C):
                    for u in range(KH):
                        ih = i * stride + u - pad
                        if 0 <= ih < H:
                            for v in range(KW):
                                iw = j * stride + v - pad
                                if 0 <= iw < Wd:
                                    acc += W[f, c, u, v] * x[n, c, ih, iw]
                z = acc + b[f]
                out[n, f, i, j] = 0.0 if (act == 1 and z <= 0) else z


@first_cpu
def conv2d_backward_cpu_v1(dy, x, W, y, stride, pad, act, need_dx, dx, dW, db):
    """First version: dW and db one filter an iteration (the sums over the batch stay in
    that iteration: no race), dx one image an iteration, scattering its windows."""
    N, C, H, Wd = x.shape
    F, _, KH, KW = W.shape
    OH, OW = dy.shape[2], dy.shape[3]
    for f in prange(F):
        db_f = 0.0
        for c in range(C):
            for u in range(KH):
                for v in range(KW):
                    dW[f, c, u, v] = 0
        for n in range(N):
            for i in range(OH):
                for j in range(OW):
                    h = y[n, f, i, j]
                    g = dy[n, f, i, j] if (act == 0 or h > 0) else (0.0 if h <= 0 else h)
                    db_f += g
                    for c in range(C):
                        for u in range(KH):
                            ih = i * stride + u - pad
                            if 0 <= ih < H:
                                for v in range(KW):
                                    iw = j * stride + v - pad
                                    if 0 <= iw < Wd:
                                        dW[f, c, u, v] += g * x[n, c, ih, iw]
        db[f] = db_f
    if need_dx:
        for n in prange(N):
            dx[n] = 0
            for f in range(F):
                for i in range(OH):
                    for j in range(OW):
                        h = y[n, f, i, j]
                        g = dy[n, f, i, j] if (act == 0 or h > 0) else (0.0 if h <= 0 else h)
                        for c in range(C):
                            for u in range(KH):
                                ih = i * stride + u - pad
                                if 0 <= ih < H:
                                    for v in range(KW):
                                        iw = j * stride + v - pad
                                        if 0 <= iw < Wd:
                                            dx[n, c, ih, iw] += g * W[f, c, u, v]


def _pool_forward_layout(at, launch, x, k, s):
    N, C, H, Wd = x.shape
    shape = (N, C, pool_output_size(H, k, s), pool_output_size(Wd, k, s))
    x = at.put(x)
    y, argmax = at.empty(shape, np.dtype(x.dtype)), at.empty(shape, np.dtype(np.int64))
    if y.size:
        launch(x, k, s, y, argmax, grid=(blocks_1d(y.size), THREADS_1D))
    return at.home(y, x), at.home(argmax, x)


def _pool_backward_layout(at, launch, dy, argmax, x_shape, k, s):
    dy, argmax = at.put(dy), at.put(argmax)
    dx = at.empty(tuple(x_shape), np.dtype(dy.dtype))
    if dx.size:
        launch(dy, argmax, k, s, dx, grid=(blocks_1d(dx.size), THREADS_1D))
    return at.home(dx, dy)


def _window_max(x, n, c, i0, j0, k):
    """The maximum of the k x k window of ``x[n, c]`` at row i0, column j0, and its offset
    ``u * k + v``: the first maximum in row-major window order, a NaN if there is one."""
    best, at = x[n, c, i0, j0], 0
    for e in range(1, k * k):
        if best != best:  # NaN: it is the maximum (np.argmax's rule)
            break
        v = x[n, c, i0 + e // k, j0 + e % k]
        if v > best or v != v:  # strictly greater: the first maximum wins
            best, at = v, e
    return best, at


_window_max_cpu, _window_max_gpu = shared(_window_max)


@kernel("maxpool2d_forward", "cpu", _pool_forward_layout)
def maxpool2d_forward_cpu(x, k, s, y, argmax):
    N, C, OH, OW = y.shape
    for nc in prange(N * C):  # one (image, channel) plane an iteration
        n, c = nc // C, nc % C
        for i in range(OH):
            for j in range(OW):
                y[n, c, i, j], argmax[n, c, i, j] = _window_max_cpu(x, n, c, i * s, j * s, k)


@kernel("maxpool2d_backward", "cpu", _pool_backward_layout)
def maxpool2d_backward_cpu(dy, argmax, k, s, dx):
    N, C, OH, OW = dy.shape
    for nc in prange(N * C):  # overlapping windows (s < k) add within one plane: no race
        n, c = nc // C, nc % C
        dx[n, c] = 0
        for i in range(OH):
            for j in range(OW):
                e = argmax[n, c, i, j]
                dx[n, c, i * s + e // k, j * s + e % k] += dy[n, c, i, j]


# ---------------------------------------------------------------------- CUDA
# First versions: one thread an output element, each a plain loop over its sum, reading
# straight from global memory (no shared-memory tiling yet). The flat thread index t is
# unravelled into the element's (n, f, i, j) (C order, so neighbouring threads write
# neighbouring addresses).


def _conv_forward_gpu(at, launch, x, W, b, stride, pad, act):
    N, F = x.shape[0], W.shape[0]
    OH = conv_output_size(x.shape[2], W.shape[2], stride, pad)
    OW = conv_output_size(x.shape[3], W.shape[3], stride, pad)
    d_x, d_W, d_b = at.put(x), at.put(W), at.put(b)
    out = at.empty((N, F, OH, OW), np.dtype(x.dtype))
    if out.size:
        launch(d_x, d_W, d_b, stride, pad, act, out, grid=(blocks_1d(out.size), THREADS_1D))
    return at.home(out, x)


@kernel("conv2d_forward", "cuda", _conv_forward_gpu)
def conv2d_forward_cuda(x, W, b, stride, pad, act, out):
    t = cuda.grid(1)
    F, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    if t >= out.size:
        return
    C, H, Wd = x.shape[1], x.shape[2], x.shape[3]
    KH, KW = W.shape[2], W.shape[3]
    j, i, f, n = t % OW, (t // OW) % OH, (t // (OW * OH)) % F, t // (OW * OH * F)
    zero = out.dtype.type(0)  # NOTE: not 0, an int, which would promote float32 to float64
    acc = b[f]  # NOTE: the data's dtype: float32 sums for float32 data
    for c in range(C):
        for u in range(KH):
            ih = i * stride + u - pad
            if 0 <= ih < H:
                for v in range(KW):
                    iw = j * stride + v - pad
                    if 0 <= iw < Wd:
                        acc += W[f, c, u, v] * x[n, c, ih, iw]
    out[n, f, i, j] = zero if (act == 1 and acc <= 0) else acc


@cuda_jit(device=True)
def _dz_at(dy, y, act, zero, n, f, i, j):
    """dy * act'(z) at (n, f, i, j): dy where y > 0, 0 where y <= 0, NaN at NaN."""
    g = dy[n, f, i, j]
    if act == 0:
        return g
    h = y[n, f, i, j]
    if h > 0:
        return g
    return zero if h <= 0 else h


def _conv_backward_gpu(at, launch, dy, x, W, y, stride, pad, act, need_dx=1, grads_out=None):
    on_gpu = is_device_array(dy)
    dy, x, W, y = at.put(dy), at.put(x), at.put(W), at.put(y)
    dtype = np.dtype(dy.dtype)
    if grads_out is not None and on_gpu:  # written in place on the GPU
        dW, db = grads_out
    else:
        dW, db = cuda.device_array(W.shape, dtype), cuda.device_array(W.shape[0], dtype)
    dx = cuda.device_array(x.shape, dtype) if need_dx else cuda.device_array((0,) * 4, dtype)
    total = dW.size + db.size + dx.size
    launch(dy, x, W, y, stride, pad, act, dx, dW, db, grid=(blocks_1d(total), THREADS_1D))
    if on_gpu:
        return (dx if need_dx else None), dW, db
    dx = dx.copy_to_host() if need_dx else None
    if grads_out is None:
        return dx, dW.copy_to_host(), db.copy_to_host()
    dW.copy_to_host(grads_out[0])
    db.copy_to_host(grads_out[1])
    return dx, grads_out[0], grads_out[1]


@kernel("conv2d_backward", "cuda", _conv_backward_gpu)
def conv2d_backward_cuda(dy, x, W, y, stride, pad, act, dx, dW, db):
    """One thread a gradient element, over one flat grid: threads [0, dW.size) each sum
    one weight's gradient over (n, i, j), the next db.size threads one bias's, and the
    last dx.size (0 when dx is not needed) one input pixel's, gathering from every
    window that covers it. Each thread writes only its own element: no atomics, no race.
    """
    t = cuda.grid(1)
    N, F, OH, OW = dy.shape
    C, H, Wd = x.shape[1], x.shape[2], x.shape[3]
    KH, KW = W.shape[2], W.shape[3]
    zero = dy.dtype.type(0)
    if t < dW.size:
        v, u, c, f = t % KW, (t // KW) % KH, (t // (KW * KH)) % C, t // (KW * KH * C)
        acc = zero
        for n in range(N):
            for i in range(OH):
                ih = i * stride + u - pad
                if 0 <= ih < H:
                    for j in range(OW):
                        iw = j * stride + v - pad
                        if 0 <= iw < Wd:
                            acc += _dz_at(dy, y, act, zero, n, f, i, j) * x[n, c, ih, iw]
        dW[f, c, u, v] = acc
        return
    t -= dW.size
    if t < db.size:
        acc = zero
        for n in range(N):
            for i in range(OH):
                for j in range(OW):
                    acc += _dz_at(dy, y, act, zero, n, t, i, j)
        db[t] = acc
        return
    t -= db.size
    if t < dx.size:
        w, h, c, n = t % Wd, (t // Wd) % H, (t // (Wd * H)) % C, t // (Wd * H * C)
        acc = zero
        for u in range(KH):
            a = h + pad - u  # = i * stride for the window i whose row u is pixel row h
            if a >= 0 and a % stride == 0 and a // stride < OH:
                i = a // stride
                for v in range(KW):
                    e = w + pad - v
                    if e >= 0 and e % stride == 0 and e // stride < OW:
                        j = e // stride
                        for f in range(F):
                            acc += _dz_at(dy, y, act, zero, n, f, i, j) * W[f, c, u, v]
        dx[n, c, h, w] = acc


@kernel("maxpool2d_forward", "cuda", _pool_forward_layout)
def maxpool2d_forward_cuda(x, k, s, y, argmax):
    t = cuda.grid(1)
    C, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    if t < y.size:
        j, i, c, n = t % OW, (t // OW) % OH, (t // (OW * OH)) % C, t // (OW * OH * C)
        y[n, c, i, j], argmax[n, c, i, j] = _window_max_gpu(x, n, c, i * s, j * s, k)


@kernel("maxpool2d_backward", "cuda", _pool_backward_layout)
def maxpool2d_backward_cuda(dy, argmax, k, s, dx):
    """One thread an input pixel, gathering dy from each window that covers it and whose
    maximum it is (a scatter from the windows would race where they overlap)."""
    t = cuda.grid(1)
    C, OH, OW = dy.shape[1], dy.shape[2], dy.shape[3]
    H, Wd = dx.shape[2], dx.shape[3]
    if t < dx.size:
        w, h, c, n = t % Wd, (t // Wd) % H, (t // (Wd * H)) % C, t // (Wd * H * C)
        acc = dy.dtype.type(0)
        # windows i with i*s <= h < i*s + k, and j likewise
        for i in range(max(0, (h - k + s) // s), min(OH - 1, h // s) + 1):
            for j in range(max(0, (w - k + s) // s), min(OW - 1, w // s) + 1):
                if argmax[n, c, i, j] == (h - i * s) * k + (w - j * s):
                    acc += dy[n, c, i, j]
        dx[n, c, h, w] = acc
