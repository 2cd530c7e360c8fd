"""How a kernel is called: the glue between the public API and the compiled loops.

Each op's kernels are written for the simplest layout, and these wrappers bring any
input to that layout and back:

* elementwise kernels see 1-D, C-contiguous arrays: ``kernel(*arrays, *scalars, out)``;
* row-wise kernels (softmax & co.) see 2-D, C-contiguous ``(M, C)`` arrays where the
  reduced axis has been moved last: ``kernel(*arrays, out)``.

The wrappers allocate the output, so inputs are never modified. On the cuda backend a
NumPy input is copied to the GPU and the result copied back (an explicit boundary); a GPU
array input gives a GPU array output and nothing crosses the bus.
"""

from __future__ import annotations

import numpy as np

from .._arrays import to_device
from .._backend import register
from .._cuda import SIMULATOR, THREADS_1D, cuda
from .._validate import is_device_array

# Row-wise kernels use one block per row; threads stride over the row's C entries.
# NOTE: Numba's CUDA simulator runs each GPU thread as a Python thread and each
# syncthreads() as a barrier across them, which makes 128-thread blocks crawl; under
# the simulator the blocks are 8 threads wide. The kernels work for any power of two.
THREADS_ROW = 8 if SIMULATOR else 128

# Every kernel a wrapper launches, by op and backend, so tests can inspect them
# (parallel diagnostics for cpu kernels, PTX compilation for cuda kernels).
KERNELS: dict[tuple[str, str], object] = {}


def _split(args):
    arrays = [a for a in args if isinstance(a, np.ndarray) or is_device_array(a)]
    scalars = args[len(arrays) :]
    return arrays, scalars


def elementwise_cpu(op: str):
    """Register a 1-D Numba kernel ``kernel(*arrays, *scalars, out)`` as ``op`` on cpu."""

    def decorate(kernel):
        KERNELS[op, "cpu"] = kernel

        @register(op, "cpu")
        def run(*args):
            arrays, scalars = _split(args)
            shape, dtype = arrays[-1].shape, arrays[-1].dtype
            flat = [np.ascontiguousarray(a).reshape(-1) for a in arrays]
            out = np.empty(flat[-1].size, dtype)
            if out.size:
                kernel(*flat, *(dtype.type(s) for s in scalars), out)
            return out.reshape(shape)

        run.__name__ = run.__qualname__ = f"{op}_cpu_launch"
        return kernel

    return decorate


def elementwise_cuda(op: str):
    """Register a 1-D CUDA kernel ``kernel(*arrays, *scalars, out)`` as ``op`` on cuda."""

    def decorate(kernel):
        KERNELS[op, "cuda"] = kernel

        @register(op, "cuda")
        def run(*args):
            arrays, scalars = _split(args)
            on_gpu = is_device_array(arrays[-1])
            shape, dtype = tuple(arrays[-1].shape), np.dtype(arrays[-1].dtype)
            n = int(np.prod(shape))
            flat = [to_device(a).reshape(n) for a in arrays]
            out = cuda.device_array(n, dtype)
            if n:
                blocks = (n + THREADS_1D - 1) // THREADS_1D
                kernel[blocks, THREADS_1D](*flat, *(dtype.type(s) for s in scalars), out)
            return out.reshape(shape) if on_gpu else out.copy_to_host().reshape(shape)

        run.__name__ = run.__qualname__ = f"{op}_cuda_launch"
        return kernel

    return decorate


def _rows(a, axis):
    """View/copy host array ``a`` as C-contiguous (M, C) with ``axis`` last."""
    moved = np.moveaxis(a, axis, -1)
    m = int(np.prod(moved.shape[:-1]))  # NOTE: not -1, which is ambiguous for size 0
    return np.ascontiguousarray(moved).reshape(m, a.shape[axis]), moved.shape


def rowwise_cpu(op: str):
    """Register a Numba kernel ``kernel(*arrays_2d, out_2d)`` reducing along ``axis``."""

    def decorate(kernel):
        KERNELS[op, "cpu"] = kernel

        @register(op, "cpu")
        def run(*args, axis):
            rows = [_rows(a, axis) for a in args]
            moved_shape = rows[-1][1]
            out = np.empty_like(rows[-1][0])
            if out.size:
                kernel(*(r for r, _ in rows), out)
            return np.moveaxis(out.reshape(moved_shape), -1, axis)

        run.__name__ = run.__qualname__ = f"{op}_cpu_launch"
        return kernel

    return decorate


def rowwise_cuda(op: str):
    """Register a CUDA kernel ``kernel(*arrays_2d, out_2d)``, one block per row."""

    def decorate(kernel):
        KERNELS[op, "cuda"] = kernel

        @register(op, "cuda")
        def run(*args, axis):
            on_gpu = is_device_array(args[-1])
            shape = tuple(args[-1].shape)
            if on_gpu and axis != len(shape) - 1:
                raise ValueError(
                    f"{op} on a GPU array supports only the last axis (axis=-1); got axis={axis}"
                )
            if on_gpu:
                m = int(np.prod(shape[:-1]))
                rows = [a.reshape(m, shape[-1]) for a in args]
                moved_shape = shape
            else:
                host = [_rows(a, axis) for a in args]
                rows = [cuda.to_device(r) for r, _ in host]
                moved_shape = host[-1][1]
            out = cuda.device_array(rows[-1].shape, np.dtype(args[-1].dtype))
            if out.size:
                kernel[out.shape[0], THREADS_ROW](*rows, out)
            if on_gpu:
                return out.reshape(shape)
            return np.moveaxis(out.copy_to_host().reshape(moved_shape), -1, axis)

        run.__name__ = run.__qualname__ = f"{op}_cuda_launch"
        return kernel

    return decorate
