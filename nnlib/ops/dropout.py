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
from numba import prange

from .._backend import register
from .._cuda import SIMULATOR, THREADS_1D, blocks_1d, cuda, cuda_import
from ._launch import elementwise, kernel, shared

create_xoroshiro128p_states = cuda_import("numba.cuda.random", "create_xoroshiro128p_states")
xoroshiro128p_uniform_float64 = cuda_import("numba.cuda.random", "xoroshiro128p_uniform_float64")


@register("dropout", "numpy")
def dropout_ref(x, u, p):
    mask = ((u >= p) / (1 - p)).astype(x.dtype)
    return x * mask, mask


@register("dropout_backward", "numpy")
def dropout_backward_ref(dy, mask):
    return dy * mask


def _keep(u, p):
    """The mask entry: 1 / (1 - p) where the unit is kept (u >= p), else 0."""
    return 1.0 / (1.0 - p) if u >= p else 0.0


_keep_cpu, _keep_gpu = shared(_keep)


# NOTE: p stays float64 (data_scalars=False): it is compared with u, which is float64.
@kernel("dropout", "cpu", elementwise, outputs=2, data_scalars=False)
def dropout_cpu(x, u, p, y, mask):
    for i in prange(x.size):
        mask[i] = _keep_cpu(u[i], p)
        y[i] = x[i] * mask[i]


@kernel("dropout_backward", "cpu", elementwise)
def dropout_backward_cpu(dy, mask, out):
    for i in prange(dy.size):
        out[i] = dy[i] * mask[i]


# ---------------------------------------------------------------------- CUDA
# On the GPU the uniform numbers are drawn on the GPU too (copying u from the host every
# step is what "data stays where it lives" rules out): ``device_uniform`` fills u from
# Numba's xoroshiro128+ generators, one stream per thread, seeded once per layer. The
# masks are reproducible for a seed, but they are not the ones the host backends draw.
RNG_THREADS = 64 if SIMULATOR else 64 * THREADS_1D


@kernel("dropout", "cuda", elementwise, outputs=2, data_scalars=False)
def dropout_cuda(x, u, p, y, mask):
    i = cuda.grid(1)
    if i < x.size:
        mask[i] = _keep_gpu(u[i], p)
        y[i] = x[i] * mask[i]


@kernel("dropout_backward", "cuda", elementwise)
def dropout_backward_cuda(dy, mask, out):
    i = cuda.grid(1)
    if i < dy.size:
        out[i] = dy[i] * mask[i]


@kernel("uniform", "cuda")  # a helper of the Dropout layer, not an op
def uniform_cuda(states, out):
    """Fill ``out`` (n,) with U[0, 1) numbers; thread i owns generator ``states[i]``."""
    i = cuda.grid(1)
    if i < states.size:
        for j in range(i, out.size, states.size):
            out[j] = xoroshiro128p_uniform_float64(states, i)


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
        uniform_cuda[blocks_1d(RNG_THREADS), THREADS_1D](states, out)
    return out.reshape(shape)
