"""How a kernel is registered and called: the one convention of every op family.

Every kernel, on either backend, is a plain function under one decorator::

    @kernel("relu", "cpu", elementwise)         # compiled with njit(parallel=True, cache=True)
    def relu_cpu(x, out):
        for i in prange(x.size):
            out[i] = _relu_cpu(x[i])

    @kernel("relu", "cuda", elementwise)        # compiled with numba.cuda.jit, on first use
    def relu_cuda(x, out):
        i = cuda.grid(1)
        if i < x.size:
            out[i] = _relu_gpu(x[i])

The decorator compiles the kernel for its backend, records it in ``KERNELS[op, backend]``
(the tests inspect them: parallel diagnostics on cpu, PTX on cuda) and registers, as the
implementation of ``op`` on ``backend``, its *layout* wrapped around it. A layout brings
the op's arguments to the kernel's layout, allocates the outputs (so inputs are never
modified), launches the kernel and returns the results. It is written once for both
backends: it is handed a :class:`Target`, which places, allocates, launches and brings
back arrays (:data:`HOST` for cpu, :data:`GPU` for cuda), and ``launch(*args, grid=...)``
(``grid``, blocks and threads, matters only on cuda; a registration may pass its own
``grid=`` function of the kernel's arguments instead).

The layouts here:

* :func:`elementwise`: ``kernel(*arrays, *scalars, *outs)`` on 1-D C-contiguous views;
  scalars in the data's dtype; one thread an element.
* :func:`rows`: ``kernel(*arrays, *flags, out)`` on 2-D ``(M, C)`` views with the
  reduced axis moved last; one block of ``THREADS_ROW`` threads a row.
* :func:`in_place`: ``kernel(*arrays, *scalars)`` updates 1-D views of the arrays in place.
* :func:`loss`: ``grad = op(pred, target, scale, acc)``, ``kernel(pred, target, scale,
  *flags, acc, grad)``; ``acc`` receives the sums.

An op whose kernels need another layout (PReLU's backward, the dense layer) passes its
own function with the same signature, in its op file.

Debug builds: with ``NNLIB_DEBUG_KERNELS=1`` in the environment when nnlib is imported,
every cpu kernel and helper is compiled serially with bounds checking
(:data:`CPU_OPTIONS`, :data:`CPU_HELPER_OPTIONS`): an out-of-range index raises
``IndexError`` instead of reading or writing past the array. ``NUMBA_BOUNDSCHECK=1``
alone does not do this: Numba checks no index inside a ``prange`` loop of a
``parallel=True`` function (an out-of-range read or write raises nothing); with
``parallel=False`` a ``prange`` loop is a plain ``range`` loop, and it is checked. Debug
builds are not cached, so they never mix with the normal cache. The cuda kernels are
unchanged (under the CUDA simulator they index NumPy arrays, which check).

On the cuda backend a NumPy input is copied to the GPU and the result copied back (an
explicit boundary); a GPU array input gives a GPU array output and nothing crosses the bus.
"""

from __future__ import annotations

import math
import os

import numpy as np
from numba import njit

from .._arrays import assign, to_device
from .._backend import register
from .._cuda import MAX_BLOCKS, REBIND, THREADS_1D, THREADS_ROW, blocks_1d, cuda, cuda_jit
from .._validate import is_device_array

# Every kernel a layout launches, by op and backend, so tests can inspect them, and the
# first versions of the tuned kernels (not ops: see ``first_version``).
KERNELS: dict[tuple[str, str], object] = {}
FIRST_VERSIONS: dict[tuple[str, str], object] = {}
REBIND.extend([KERNELS, FIRST_VERSIONS])  # cuda entries become the real kernels on load
# (op, backend, first_version) -> launch(*kernel_args, grid=None): the kernel with its grid
LAUNCH: dict[tuple[str, str, bool], object] = {}
_FIRST_RUNS: dict[tuple[str, str], object] = {}


class Target:
    """Where a backend's kernels run: how arrays are placed, allocated and brought back.
    This one is the host's (the cpu backend); ``_Gpu`` is the cuda backend's."""

    @staticmethod
    def put(a):
        """``a`` as a C-contiguous array where the kernels run (no copy if it is one)."""
        return np.ascontiguousarray(a)

    @staticmethod
    def empty(shape, dtype):
        return np.empty(shape, dtype)

    @staticmethod
    def run(kernel, grid, args):
        kernel(*args)

    @staticmethod
    def home(out, like):
        """``out`` where the caller's array ``like`` lives."""
        return out


class _Gpu(Target):
    put = staticmethod(to_device)

    @staticmethod
    def empty(shape, dtype):
        return cuda.device_array(shape, dtype)

    @staticmethod
    def run(kernel, grid, args):
        kernel[grid](*args)

    @staticmethod
    def home(out, like):
        return out if is_device_array(like) else out.copy_to_host()


HOST, GPU = Target(), _Gpu()
TARGETS = {"cpu": HOST, "cuda": GPU}

# NOTE: read once, here, when nnlib is imported (kernels compile when their module is
# imported); changing the variable later changes nothing in this process.
DEBUG_KERNELS = os.environ.get("NNLIB_DEBUG_KERNELS") == "1"
# How every cpu kernel is compiled. NOTE: the debug build is parallel=False because Numba
# does not bounds-check inside parallel prange loops, and uncached because Numba's cache
# index does not record the compile options: a debug build would be loaded by a normal run.
CPU_OPTIONS = (
    {"parallel": False, "boundscheck": True, "cache": False}
    if DEBUG_KERNELS
    else {"parallel": True, "cache": True}
)
# The scalar formulas and row helpers the cpu kernels inline.
CPU_HELPER_OPTIONS = {
    "inline": "always",
    "cache": not DEBUG_KERNELS,
    **({"boundscheck": True} if DEBUG_KERNELS else {}),
}
_COMPILE = {"cpu": njit(**CPU_OPTIONS), "cuda": cuda_jit}


def kernel(op: str, backend: str, layout=None, *, grid=None, first_version=False, **options):
    """Decorator: compile ``fn`` for ``backend`` and make ``layout`` around it ``op``.

    Without a layout the kernel is only compiled and recorded: a helper (of a layer, of
    fit) that its own function launches, not an op.

    ``grid``: on cuda, a function of the kernel's arguments giving ``(blocks, threads)``,
    instead of the layout's. ``options`` go to the layout. A kernel that serves two ops
    takes two decorators (it is compiled once). ``first_version=True``: the readable
    first version of a tuned kernel (llm.c's "kernel 1"): it is recorded in
    ``FIRST_VERSIONS`` and :func:`first_version` runs it, but the op stays the tuned one.
    """
    target = TARGETS[backend]
    kernels = FIRST_VERSIONS if first_version else KERNELS
    grid_of = grid  # the registration's own grid, if any

    def decorate(fn):
        compiled = fn if hasattr(fn, "py_func") else _COMPILE[backend](fn)
        kernels[op, backend] = compiled
        if layout is None:
            return compiled

        def launch(*args, grid=None):
            """Run the kernel on ``args``, on cuda over ``grid`` (the layout's, unless
            the registration gave its own)."""
            if grid_of is not None:
                grid = grid_of(*args)
            # NOTE: the dictionary, not ``compiled``: on cuda the entry becomes the real
            # kernel when the backend loads.
            target.run(kernels[op, backend], grid, args)

        LAUNCH[op, backend, first_version] = launch

        def run(*args, **kwargs):
            return layout(target, launch, *args, **kwargs, **options)

        run.__name__ = run.__qualname__ = f"{op}_{backend}_launch"
        if first_version:
            _FIRST_RUNS[op, backend] = run
        else:
            register(op, backend)(run)
        return compiled

    return decorate


def first_version(op: str, backend: str = "cuda"):
    """``op`` run by its first-version kernel instead of the tuned one (same signature)."""
    from .._backend import resolve_backend

    resolve_backend(backend)  # loads the backend (or says why it cannot run)
    return _FIRST_RUNS[op, backend]


def cpu_helper(fn):
    """``fn`` compiled to be inlined into the cpu kernels (``njit(inline="always")``,
    bounds-checked in a debug build): the decorator for a cpu-only helper of an op file,
    instead of ``njit`` itself."""
    return njit(**CPU_HELPER_OPTIONS)(fn)


def shared(fn):
    """One formula for both targets: ``(cpu, gpu)``, the first inlined into the cpu
    kernels (:func:`cpu_helper`), the second a CUDA device function."""
    return cpu_helper(fn), cuda_jit(fn, device=True)


# ---------------------------------------------------------------------- layouts


def _split(args):
    arrays = [a for a in args if isinstance(a, np.ndarray) or is_device_array(a)]
    return arrays, args[len(arrays) :]


def elementwise(at, launch, *args, outputs=1, data_scalars=True):
    """``kernel(*arrays, *scalars, *outs)`` on 1-D views, ``outputs`` outputs of the shape
    and dtype of the first array. ``data_scalars``: scalars in the data's dtype (so
    float32 data gets float32 arithmetic), else as float64."""
    arrays, scalars = _split(args)
    first = arrays[0]
    shape, dtype = tuple(first.shape), np.dtype(first.dtype)
    flat = [at.put(a).reshape(a.size) for a in arrays]  # NOTE: a per-feature alpha stays (D,)
    outs = [at.empty(first.size, dtype) for _ in range(outputs)]
    cast = dtype.type if data_scalars else float
    if first.size:
        launch(*flat, *map(cast, scalars), *outs, grid=(blocks_1d(first.size), THREADS_1D))
    outs = [at.home(out, first).reshape(shape) for out in outs]
    return outs[0] if outputs == 1 else tuple(outs)


def _rows(a, axis):
    """View/copy host array ``a`` as C-contiguous (M, C) with ``axis`` last."""
    moved = np.moveaxis(a, axis, -1)
    m = math.prod(moved.shape[:-1])  # NOTE: not -1, which is ambiguous for size 0
    return np.ascontiguousarray(moved).reshape(m, a.shape[axis]), moved.shape


def rows(at, launch, *args, axis, consts=()):
    """``kernel(*arrays, *consts, out)`` on C-contiguous (M, C) views, ``axis`` moved
    last; ``consts``: flags the registration fixes (e.g. softmax or log_softmax)."""
    last = args[-1]
    shape = tuple(last.shape)
    if is_device_array(last):
        if axis != len(shape) - 1:
            raise ValueError(
                f"a GPU array supports only the last axis (axis=-1); got axis={axis}. "
                "Copy it to the host with .copy_to_host() for another axis"
            )
        views = [a.reshape(math.prod(shape[:-1]), shape[-1]) for a in args]
        moved_shape = shape
    else:
        host = [_rows(a, axis) for a in args]
        views, moved_shape = [at.put(r) for r, _ in host], host[-1][1]
    out = at.empty(tuple(views[-1].shape), np.dtype(last.dtype))
    if out.size:
        launch(*views, *consts, out, grid=(out.shape[0], THREADS_ROW))
    out = at.home(out, last).reshape(moved_shape)
    return out if is_device_array(out) else np.moveaxis(out, -1, axis)


def in_place(at, launch, *args):
    """``kernel(*arrays, *scalars)`` updates 1-D views of the arrays in place.

    Python ints (flags, the step count) are passed as int64, every other scalar as
    float64. Host arrays on the cuda backend are copied to the GPU and the updated
    values copied back into them.
    """
    arrays, scalars = _split(args)
    # NOTE: a C-contiguous array is put as it is, so the kernel writes into the caller's
    # array; the optimizers only pass C-contiguous ones.
    placed = [at.put(a) for a in arrays]
    n = placed[0].size
    if n:
        flat = [a.reshape(n) for a in placed]
        launch(*flat, *map(_int_or_float, scalars), grid=(blocks_1d(n), THREADS_1D))
    for a, p in zip(arrays, placed, strict=True):
        if p is not a:  # a copy was updated: write it back
            assign(a, p)


def _int_or_float(s):
    return int(s) if isinstance(s, (int, np.integer)) else float(s)


def loss(at, launch, pred, target, scale, acc, *, flat, consts=()):
    """``grad = op(pred, target, scale, acc)``: ``kernel(pred, target, scale, *consts,
    acc, grad)``, with ``scale`` in the data's dtype; ``flat``: pred and target seen as
    1-D (M,); ``consts``: what the registration fixes (which loss a kernel computes).

    Default grid: enough ``THREADS_ROW``-thread blocks for one thread an element, at most
    ``MAX_BLOCKS`` (the kernels loop over the rest with a grid stride).
    """
    shape = tuple(pred.shape)
    p, t, a = at.put(pred), at.put(target), at.put(acc)
    if flat:
        p, t = p.reshape(p.size), t.reshape(t.size)
    grad = at.empty(tuple(p.shape), np.dtype(p.dtype))
    if p.size:
        blocks = min(blocks_1d(p.size, THREADS_ROW), MAX_BLOCKS)
        scale = np.dtype(p.dtype).type(scale)
        launch(p, t, scale, *consts, a, grad, grid=(blocks, THREADS_ROW))
    if a is not acc:  # host acc, sums made on the GPU: an explicit copy back
        assign(acc, a)
    return at.home(grad, pred).reshape(shape)
