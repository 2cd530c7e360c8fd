"""Inverted dropout: the NumPy reference, the Numba CPU kernel and the CUDA kernel side
by side.

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
from .._cuda import cuda, cuda_jit
from .._validate import is_device_array
from ._launch import KERNELS, SIMULATOR, THREADS_1D, elementwise_cpu, elementwise_cuda, to_device

if cuda is not None:
    from numba.cuda.random import create_xoroshiro128p_states, xoroshiro128p_uniform_float64


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


# ---------------------------------------------------------------------- CUDA
# On the GPU the uniform numbers are drawn on the GPU too (copying u from the host every
# step is what "data stays where it lives" rules out): ``device_uniform`` fills u from
# Numba's xoroshiro128+ generators, one stream per thread, seeded once per layer. The
# masks are reproducible for a seed, but they are not the ones the host backends draw.
RNG_THREADS = 64 if SIMULATOR else 64 * THREADS_1D


@cuda_jit
def dropout_cuda(x, u, p, y, mask):
    i = cuda.grid(1)
    if i < x.size:
        mi = 1.0 / (1.0 - p) if u[i] >= p else 0.0
        mask[i] = mi
        y[i] = x[i] * mi


@cuda_jit
def dropout_backward_cuda(dy, mask, out):
    i = cuda.grid(1)
    if i < dy.size:
        out[i] = dy[i] * mask[i]


@cuda_jit
def uniform_cuda(states, out):
    """Fill ``out`` (n,) with U[0, 1) numbers; thread i owns generator ``states[i]``."""
    i = cuda.grid(1)
    if i < states.size:
        for j in range(i, out.size, states.size):
            out[j] = xoroshiro128p_uniform_float64(states, i)


KERNELS["dropout", "cuda"] = dropout_cuda
KERNELS["uniform", "cuda"] = uniform_cuda  # a helper of the Dropout layer, not an op
elementwise_cuda("dropout_backward")(dropout_backward_cuda)


def device_rng(seed: int):
    """GPU random states for :func:`device_uniform`, seeded with ``seed``."""
    # NOTE: the generator's seeding relies on wrapping uint64 arithmetic; under the CUDA
    # simulator it runs as plain NumPy code, which warns about that (intended) overflow.
    with np.errstate(over="ignore"):
        return create_xoroshiro128p_states(RNG_THREADS, seed=seed)


def device_uniform(states, shape):
    """A GPU array of ``shape`` filled with U[0, 1) float64 numbers."""
    n = int(np.prod(shape))
    out = cuda.device_array(n, np.float64)
    if n:
        blocks = (RNG_THREADS + THREADS_1D - 1) // THREADS_1D
        uniform_cuda[blocks, THREADS_1D](states, out)
    return out.reshape(shape)


@register("dropout", "cuda")
def dropout_cuda_launch(x, u, p):
    on_gpu = is_device_array(x)
    shape, n = tuple(x.shape), int(np.prod(x.shape))
    x, u = to_device(x).reshape(n), to_device(u).reshape(n)
    y = cuda.device_array(n, np.dtype(x.dtype))
    mask = cuda.device_array(n, np.dtype(x.dtype))
    if n:
        dropout_cuda[(n + THREADS_1D - 1) // THREADS_1D, THREADS_1D](x, u, float(p), y, mask)
    y, mask = y.reshape(shape), mask.reshape(shape)
    return (y, mask) if on_gpu else (y.copy_to_host(), mask.copy_to_host())
