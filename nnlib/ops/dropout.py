"""Inverted dropout: the NumPy reference and the Numba CPU kernel side by side.

    x, u, y, mask : (...)       u uniform in [0, 1), drawn by the caller
    forward   mask = (u >= p) / (1 - p)      y = x * mask
    backward  dx = dy * mask

The randomness is passed in as ``u`` (drawn from a seeded ``numpy.random.Generator``):
``np.random.seed`` does not reach the random numbers inside ``@njit`` code, and drawing
``u`` outside makes every backend drop exactly the same units for the same seed.
Scaling the kept units by 1 / (1 - p) during training keeps the expected activation
unchanged, so evaluation simply skips the layer.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._backend import register
from ._launch import KERNELS, elementwise_cpu


@register("dropout", "numpy")
def dropout_ref(x, u, p):
    mask = ((u >= p) / (1 - p)).astype(x.dtype)
    return x * mask, mask


@register("dropout_backward", "numpy")
def dropout_backward_ref(dy, mask):
    return dy * mask


@njit(parallel=True, cache=True)
def dropout_cpu(x, u, p, y, mask):
    keep = 1.0 / (1.0 - p)
    for i in prange(x.size):
        mi = keep if u[i] >= p else 0.0
        mask[i] = mi
        y[i] = x[i] * mi


KERNELS["dropout", "cpu"] = dropout_cpu


@register("dropout", "cpu")
def dropout_cpu_launch(x, u, p):
    shape = x.shape
    x, u = np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(u).reshape(-1)
    y, mask = np.empty_like(x), np.empty_like(x)
    if x.size:
        dropout_cpu(x, u, float(p), y, mask)
    return y.reshape(shape), mask.reshape(shape)


@elementwise_cpu("dropout_backward")
@njit(parallel=True, cache=True)
def dropout_backward_cpu(dy, mask, out):
    for i in prange(dy.size):
        out[i] = dy[i] * mask[i]
