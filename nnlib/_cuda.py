"""numba-cuda, imported only when the cuda backend is first asked for.

``import nnlib`` imports no CUDA code: importing ``numba.cuda`` costs about half a second
and is wasted on the numpy and cpu backends. The op modules still *define* their CUDA
kernels beside the reference and the cpu kernel, with

* :func:`cuda_jit` (``@cuda_jit`` for a kernel, ``cuda_jit(f, device=True)`` for a
  device function): it records the Python function and returns a :class:`Lazy`
  stand-in instead of compiling;
* ``cuda``: a stand-in for the ``numba.cuda`` module, so that a kernel's body can say
  ``cuda.grid(1)`` as usual.

:func:`load` (called by :func:`nnlib._backend.backend_problem` the first time the cuda
backend is asked for, or by the first touch of a stand-in) imports numba-cuda, compiles
every recorded function with ``numba.cuda.jit`` in the order they were defined (device
functions before the kernels that call them) and rebinds each stand-in, in every
``nnlib`` module and in :data:`REBIND` (the kernel registry), to the real object. From
then on ``cuda_jit`` compiles at once and ``cuda`` is ``numba.cuda`` itself. (numba.cuda
compiles a kernel at its first launch, for the argument types it is given; by then
every global a kernel reads is the real thing.)

This module also holds the launch sizes every CUDA kernel of nnlib uses, and the one
test of whether the kernels run in Numba's CUDA simulator.
"""

from __future__ import annotations

import os
import sys
import threading

# Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) runs each GPU thread as a Python
# thread: kernels launch smaller blocks under it (see the NOTE beside each size).
# NOTE: numba reads the variable once, when it is first imported; so does nnlib.
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

# ---------------------------------------------------------------------- launch sizes
# SPEEDTIP: 256 threads a block keeps every SM busy for elementwise work on any recent
# GPU; the exact number matters little for a memory-bound kernel.
# NOTE: under the simulator blocks are 32 wide.
THREADS_1D = 32 if SIMULATOR else 256
# Row kernels (softmax & co.) run one block a row, whose threads stride over the row and
# combine their partial max / sum through shared memory; the elementwise losses use
# blocks of this width for their block sums too. Any power of two works.
# NOTE: the simulator makes each syncthreads() a barrier across Python threads, and
# 128-thread blocks crawl; there the rows get 8 threads.
THREADS_ROW = 8 if SIMULATOR else 128
# 2-D blocks (PReLU's backward, the first-version matmul): 32 columns (a warp reads 32
# neighbouring addresses) x 8 rows. NOTE: 4 x 2 under the simulator.
THREADS_2D = (4, 2) if SIMULATOR else (32, 8)
# Grid-stride kernels (the losses, PReLU's backward) launch at most this many blocks, about
# two waves on a 132-SM GPU; their threads loop over the rest. It also caps their atomic
# adds into one address.
# NOTE: 4 under the simulator, so that the grid-stride loops run several times even in
# small tests.
MAX_BLOCKS = 4 if SIMULATOR else 1024


def blocks_1d(n: int, threads: int = THREADS_1D) -> int:
    """Blocks of ``threads`` threads that cover ``n`` elements, one thread an element."""
    return (n + threads - 1) // threads


# ---------------------------------------------------------------------- lazy numba.cuda

_LAZY: list[Lazy] = []  # every stand-in, in the order it was made
REBIND: list[dict] = []  # dictionaries whose stand-in values load() replaces (KERNELS)
_lock = threading.Lock()
_real = None  # numba.cuda, once loaded


class Lazy:
    """A stand-in for something from numba.cuda that is made by :func:`load`.

    ``py_func`` (for a kernel or device function) is the plain Python function, so that
    ``numba.cuda.compile_ptx(k.py_func, ...)`` works on a stand-in as on a kernel.
    Touching it otherwise (``k[blocks, threads]``, ``cuda.device_array``, a call) loads
    numba.cuda and forwards to the real object.
    """

    def __init__(self, make, py_func=None, what=""):
        self._make, self.py_func, self._what, self.real = make, py_func, what, None
        _LAZY.append(self)

    def __getattr__(self, name):  # only for names the stand-in does not have itself
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(load_real(self), name)

    def __getitem__(self, config):
        return load_real(self)[config]

    def __call__(self, *args, **kwargs):
        return load_real(self)(*args, **kwargs)

    def __repr__(self):
        state = "loaded" if self.real is not None else "not loaded yet"
        return f"<numba.cuda {self._what} ({state})>"


def load_real(stand_in: Lazy):
    """The real object behind ``stand_in`` (loading numba.cuda if needed)."""
    load()
    return stand_in.real


def cuda_jit(fn=None, **options):
    """``numba.cuda.jit``, deferred until the cuda backend loads (see the module doc).

    ``@cuda_jit`` for a kernel, ``cuda_jit(f, device=True)`` (or
    ``@cuda_jit(device=True)``) for a device function.
    """
    if fn is None:
        return lambda f: cuda_jit(f, **options)
    if _real is not None:  # already loaded: compile (lazily, as numba.cuda does) at once
        return _real.jit(fn, **options)
    what = f"{'device function' if options.get('device') else 'kernel'} {fn.__name__}"
    return Lazy(lambda cuda: cuda.jit(fn, **options), py_func=fn, what=what)


def cuda_import(module: str, name: str | None = None):
    """``module`` (or its attribute ``name``), imported when the cuda backend loads."""

    def make(cuda):
        import importlib

        mod = importlib.import_module(module)
        return mod if name is None else getattr(mod, name)

    return Lazy(make, what=f"{module}{'.' + name if name else ''}")


# ``cuda`` in the op modules' kernels and launchers: numba.cuda once loaded.
cuda = cuda_import("numba.cuda")


def installed() -> bool:
    """Whether numba-cuda (the package, not numba's deprecated built-in) can be imported."""
    if "numba_cuda" in sys.modules:
        return sys.modules["numba_cuda"] is not None
    import importlib.util

    try:
        return importlib.util.find_spec("numba_cuda") is not None
    except (ImportError, ValueError):
        return False


def loaded() -> bool:
    """Whether :func:`load` has run (numba.cuda is imported and the kernels are made)."""
    return _real is not None


def load():
    """Import numba-cuda, make every stand-in and rebind it everywhere; idempotent.

    Raises ImportError when numba-cuda is not installed (the backend's check says so in
    a friendlier way before any kernel is touched).
    """
    global _real
    if _real is not None:
        return _real
    with _lock:
        if _real is not None:
            return _real
        import numba_cuda  # noqa: F401  (numba's own built-in numba.cuda is deprecated)
        from numba import cuda as real

        _add_shuffles_to_the_simulator(real)
        for stand_in in list(_LAZY):
            stand_in.real = stand_in._make(real)
        _real = real
        namespaces = [vars(m) for n, m in list(sys.modules.items()) if _is_nnlib(n, m)]
        for namespace in namespaces + REBIND:
            for key, value in list(namespace.items()):
                if isinstance(value, Lazy):
                    namespace[key] = value.real
    return _real


def _is_nnlib(name, module) -> bool:
    return module is not None and (name == "nnlib" or name.startswith("nnlib."))


# ---------------------------------------------------------------------- the simulator


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


def _add_shuffles_to_the_simulator(real):
    """numba-cuda 0.30's simulator has no warp shuffles; give it ``shfl_xor_sync`` (the
    one nnlib's kernels use) so they run unchanged under NUMBA_ENABLE_CUDASIM=1."""
    if not SIMULATOR:
        return
    from numba.cuda.simulator import kernelapi

    if not hasattr(kernelapi.FakeCUDAModule, "shfl_xor_sync"):  # a later version may have it
        kernelapi.FakeCUDAModule.shfl_xor_sync = _simulated_shfl_xor_sync
