"""numba-cuda, imported once.

``cuda`` is ``numba.cuda`` from the numba-cuda package, or ``None`` when that package is
not installed. Kernels are still *defined* without it (``cuda_jit`` then leaves the
Python function as it is), so ``import nnlib`` works everywhere; they are only launched
after :func:`nnlib._backend.resolve_backend` has checked that the cuda backend can run.
"""

from __future__ import annotations

import os
import threading

try:
    import numba_cuda  # noqa: F401  (numba's own built-in numba.cuda is deprecated)
    from numba import cuda
except ImportError:  # pragma: no cover - depends on the install
    cuda = None


# Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) runs each GPU thread as a Python
# thread: kernels launch smaller blocks under it (see the NOTE beside each setting).
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

# SPEEDTIP: 256 threads a block keeps every SM busy for elementwise work on any
# recent GPU; the exact number matters little for a memory-bound kernel.
# NOTE: under the simulator blocks are 32 wide.
THREADS_1D = 32 if SIMULATOR else 256


def cuda_jit(fn=None, **options):
    """``numba.cuda.jit`` when numba-cuda is installed, otherwise a no-op decorator."""
    if cuda is None:
        return fn if fn is not None else (lambda f: f)
    return cuda.jit(fn, **options) if fn is not None else cuda.jit(**options)


def _simulated_shfl_xor_sync(self, mask, value, lane_mask):
    """``cuda.shfl_xor_sync`` for Numba's CUDA simulator: the value of lane
    ``lane ^ lane_mask`` (one's own value where that thread does not exist).

    NOTE: built on the simulator's syncthreads barrier, so every thread of the block,
    not only the lanes in ``mask``, must make the call, the same number of times. The
    kernels that shuffle are written so (they would be wrong on a GPU otherwise: a
    full-mask shuffle needs every lane of the warp).
    """
    thread = threading.current_thread()
    bx, by, _ = thread._manager._block_dim
    i = thread.threadIdx.x + bx * (thread.threadIdx.y + by * thread.threadIdx.z)
    board = thread._manager.__dict__.setdefault("_shfl_board", {})
    board[i] = value
    thread.syncthreads()  # every lane has posted its value
    other = board.get(i ^ lane_mask, value)
    thread.syncthreads()  # every lane has read before the board is reused
    return other


def _add_shuffles_to_the_simulator():
    """numba-cuda 0.30's simulator has no warp shuffles; give it ``shfl_xor_sync`` (the
    one nnlib's kernels use) so they run unchanged under NUMBA_ENABLE_CUDASIM=1."""
    if cuda is None or not SIMULATOR:
        return
    from numba.cuda.simulator import kernelapi

    if not hasattr(kernelapi.FakeCUDAModule, "shfl_xor_sync"):  # a later version may have it
        kernelapi.FakeCUDAModule.shfl_xor_sync = _simulated_shfl_xor_sync


_add_shuffles_to_the_simulator()
