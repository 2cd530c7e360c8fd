"""Allocation that follows the data: host arrays give host arrays, GPU arrays give GPU
arrays. Used by the code above the ops (losses, optimizers, fit) so that it needs no
``if backend == "cuda"``.

Nothing here imports numba.cuda before a GPU array is asked for (see :mod:`nnlib._cuda`)."""

from __future__ import annotations

import numpy as np

from ._cuda import THREADS_1D, blocks_1d, cuda, cuda_jit
from ._validate import is_device_array


@cuda_jit
def zero_cuda(a):  # a: 1-D
    i = cuda.grid(1)
    if i < a.size:
        a[i] = 0


def gpu_zeros(shape, dtype):
    """Zeros on the GPU, written there by a kernel: nothing crosses the bus."""
    out = cuda.device_array(shape, dtype)
    if out.size:
        flat = out.reshape(out.size)
        zero_cuda[blocks_1d(out.size), THREADS_1D](flat)
    return out


def zeros_like_on(a, shape, dtype=np.float64):
    """Zeros of ``shape`` and ``dtype`` where ``a`` lives (host or GPU)."""
    return gpu_zeros(shape, dtype) if is_device_array(a) else np.zeros(shape, dtype)


def empty_on(backend: str, shape, dtype):
    """An uninitialised array where ``backend`` computes (on the GPU for "cuda")."""
    return cuda.device_array(shape, dtype) if backend == "cuda" else np.empty(shape, dtype)


def zeros_like(a):
    """Zeros of the shape and dtype of ``a``, where ``a`` lives."""
    return zeros_like_on(a, tuple(a.shape), np.dtype(a.dtype))


def to_host(a) -> np.ndarray:
    """A NumPy array from a NumPy or GPU array (a GPU array is copied: an explicit sync)."""
    return a.copy_to_host() if is_device_array(a) else np.asarray(a)


def to_device(a):
    """A C-contiguous GPU copy of host array ``a`` (GPU arrays pass through)."""
    # NOTE: not np.ascontiguousarray, which turns a 0-d array (PReLU's alpha) into 1-d
    return a if is_device_array(a) else cuda.to_device(np.asarray(a, order="C"))


def to_backend(a, backend: str):
    """``a`` placed for ``backend``: on the GPU for "cuda", on the host otherwise."""
    return to_device(a) if backend == "cuda" else to_host(a)


def like(a, where):
    """``a`` moved (if needed) to where ``where`` lives."""
    return to_device(a) if is_device_array(where) else to_host(a)


def copy(a):
    """A copy of ``a``, where ``a`` lives."""
    if is_device_array(a):
        out = cuda.device_array_like(a)
        out.copy_to_device(a)
        return out
    return np.array(a, copy=True)


def assign(dst, src) -> None:
    """Copy the values of ``src`` into ``dst`` in place (either may live on the GPU)."""
    if is_device_array(dst):
        dst.copy_to_device(src if is_device_array(src) else np.ascontiguousarray(src, dst.dtype))
    else:
        dst[...] = to_host(src)
