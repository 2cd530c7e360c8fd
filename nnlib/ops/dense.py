"""The dense (fully connected) layer, with its bias and an optional ReLU fused in: the
NumPy reference and the Numba CPU kernel side by side.

Shapes (N batch, D input features, H output features):

    x  : (N, D)     W : (D, H)     b : (H,)
    forward   z = x @ W + b             (N, H)
              y = act(z)                (N, H)   act: 0 = identity, 1 = ReLU
    backward  dz = dy * act'(z)         (N, H)   for ReLU: dy where y > 0 else 0
              dW = x.T @ dz             (D, H)
              db = sum_n dz[n]          (H,)
              dx = dz @ W.T             (N, D)

NOTE: for ReLU, ``y > 0`` exactly when ``z > 0``, so the backward needs only ``y`` and
the pre-activation ``z`` is never stored.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._backend import register
from ._launch import KERNELS

ACTIVATIONS = {None: 0, "relu": 1}  # the activations the dense kernels can fuse

# ---------------------------------------------------------------------- reference


@register("dense_forward", "numpy")
def dense_forward_ref(x, W, b, act):
    z = x @ W + b  # (N, D) @ (D, H) + (H,) -> (N, H)
    return np.maximum(z, 0) if act == 1 else z


@register("dense_backward", "numpy")
def dense_backward_ref(dy, x, W, y, act):
    dz = np.where(y > 0, dy, 0).astype(dy.dtype) if act == 1 else dy  # (N, H)
    return dz @ W.T, x.T @ dz, dz.sum(axis=0)  # dx (N, D), dW (D, H), db (H,)


# ---------------------------------------------------------------------- CPU (Numba)
# SPEEDTIP: the matrix products go to BLAS (np.dot inside @njit calls SciPy's BLAS);
# the bias and the activation are applied in one prange pass over the rows afterwards.
# NOTE: BLAS stays outside the prange loops: BLAS is itself multi-threaded, and calling
# it from parallel threads oversubscribes the cores.


@njit(parallel=True, cache=True)
def dense_forward_cpu(x, W, b, act, out):
    np.dot(x, W, out)  # (N, H), written in place: no temporary
    for i in prange(out.shape[0]):
        for j in range(out.shape[1]):
            v = out[i, j] + b[j]
            out[i, j] = v if (act == 0 or v > 0) else 0.0


@njit(parallel=True, cache=True)
def dense_backward_cpu(dy, x, W, y, act, dz, dx, dW, db):
    for i in prange(dy.shape[0]):  # dz = dy * act'(z), one row per iteration
        for j in range(dy.shape[1]):
            dz[i, j] = dy[i, j] if (act == 0 or y[i, j] > 0) else 0.0
    for j in prange(dz.shape[1]):  # db: one output column per iteration, no race
        s = 0.0
        for i in range(dz.shape[0]):
            s += dz[i, j]
        db[j] = s
    np.dot(x.T, dz, dW)  # (D, N) @ (N, H)
    np.dot(dz, W.T, dx)  # (N, H) @ (H, D)


KERNELS["dense_forward", "cpu"] = dense_forward_cpu
KERNELS["dense_backward", "cpu"] = dense_backward_cpu


@register("dense_forward", "cpu")
def dense_forward_cpu_launch(x, W, b, act):
    out = np.empty((x.shape[0], W.shape[1]), x.dtype)
    if out.size:
        if x.shape[1] == 0:
            out[:] = b if act == 0 else np.maximum(b, 0)
        else:
            dense_forward_cpu(x, W, b, act, out)
    return out


@register("dense_backward", "cpu")
def dense_backward_cpu_launch(dy, x, W, y, act):
    if dy.size == 0 or x.shape[1] == 0:  # degenerate shapes: BLAS wants non-empty operands
        return dense_backward_ref(dy, x, W, y, act)
    dz = np.empty_like(dy)
    dx, dW, db = np.empty_like(x), np.empty_like(W), np.empty(W.shape[1], dy.dtype)
    dense_backward_cpu(dy, x, W, y, act, dz, dx, dW, db)
    return dx, dW, db
