"""Gathering the rows of a mini-batch: ``out[i] = a[idx[i]]``.

On the host this is NumPy's ``a[idx]``. On the GPU it is one small kernel, so that the
training data, once copied to the device at the start of ``fit``, is batched there.

    a : (N, K) or (N, C, H, W)     idx : (B,) int64 in [0, N)     out : (B, K) or (B, C, H, W)
"""

from __future__ import annotations

import numpy as np

from .._cuda import THREADS_1D, blocks_1d, cuda
from .._validate import is_device_array
from ._launch import kernel


@kernel("take_rows", "cuda")  # a helper of fit, not an op
def take_rows_cuda(a, idx, out):
    i = cuda.grid(1)  # one thread per element of out
    if i < out.size:
        row, col = i // out.shape[1], i % out.shape[1]
        out[row, col] = a[idx[row], col]


def take_rows(a, idx):
    """Rows ``idx`` of ``a`` (any rank: examples along axis 0), where ``a`` lives;
    ``idx`` lives there too."""
    if not is_device_array(a):
        return a[idx]
    width = int(np.prod(a.shape[1:]))  # each example as one row (a is C-contiguous)
    flat = a.reshape(a.shape[0], width)
    out = cuda.device_array((idx.shape[0], width), np.dtype(a.dtype))
    if out.size:
        take_rows_cuda[blocks_1d(out.size), THREADS_1D](flat, idx, out)
    return out.reshape((idx.shape[0], *a.shape[1:]))
