"""Input checks at the public API boundary.

The public functions validate; the kernels trust. Numba kernels have no bounds checks,
so a wrong shape or dtype must be stopped here, with an error that names the argument,
says what was expected and what was given.

Conventions (documented in the README):

* float32 and float64 arrays are used as they are (float32 is nnlib's default); any
  layout is accepted (strided, negative strides, Fortran order, read-only): the op
  layouts copy what is not C-contiguous, and nothing writes into an input; a
  byte-swapped float array is converted to native byte order;
* integer and boolean input is converted to float64, as NumPy's ``np.exp`` does;
* anything else (float16, complex, strings, objects, ...) is rejected with a TypeError.
"""

from __future__ import annotations

import numbers
import sys

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def is_device_array(x: object) -> bool:
    """True for a numba-cuda GPU array (``DeviceNDArray``, or the simulator's stand-in)."""
    # NOTE: no GPU array can exist before numba.cuda is imported (by nnlib or anyone),
    # so the check imports nothing.
    cuda = sys.modules.get("numba.cuda")
    return cuda is not None and cuda.devicearray.is_cuda_ndarray(x)


def as_float_array(x: object, name: str):
    """Return ``x`` as a float32/float64 array (NumPy or GPU), or raise naming ``name``."""
    if hasattr(x, "__cuda_array_interface__") and not is_device_array(x):
        from ._cuda import installed, load

        if installed():  # a CuPy or PyTorch GPU tensor: viewed (no copy) as a GPU array
            x = load().as_cuda_array(x)
    if is_device_array(x):
        if np.dtype(x.dtype) not in FLOAT_DTYPES:
            raise TypeError(
                f"{name} must be a float32 or float64 array; got a GPU array of "
                f"dtype {np.dtype(x.dtype)}"
            )
        if not x.is_c_contiguous():
            raise ValueError(
                f"{name} must be C-contiguous when it lives on the GPU; "
                "copy it first with numba.cuda.device_array_like + copy"
            )
        return x
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be an array of numbers; got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise TypeError(
            f"{name} must be an array of numbers; got {type(x).__name__} "
            f"that NumPy cannot convert ({exc})"
        ) from None
    if arr.dtype in FLOAT_DTYPES:
        return arr
    if arr.dtype.kind == "f" and arr.dtype.newbyteorder("=") in FLOAT_DTYPES:
        # NOTE: a byte-swapped float32/float64 array (read from a file of the other
        # endianness): the kernels take native byte order only, so it is converted (a
        # copy; the caller's array is untouched).
        return arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype.kind in "biu":
        return arr.astype(np.float64)
    raise TypeError(
        f"{name} must be a float32 or float64 array (integers are converted to float64); "
        f"got dtype {arr.dtype}"
        + (". Convert it with .astype(np.float32)" if arr.dtype.kind == "f" else "")
    )


def check_like(dy: object, x, name: str = "dy", like: str = "x"):
    """Validate the upstream gradient ``dy``: same shape and dtype as ``x``."""
    dy = as_float_array(dy, name)
    if tuple(dy.shape) != tuple(x.shape):
        raise ValueError(
            f"{name} must have the shape of {like}, {tuple(x.shape)}; got {tuple(dy.shape)}"
        )
    if np.dtype(dy.dtype) != np.dtype(x.dtype):
        raise TypeError(
            f"{name} must have the dtype of {like}, {np.dtype(x.dtype)}; got "
            f"{np.dtype(dy.dtype)}. Convert it with .astype(np.{np.dtype(x.dtype)})"
        )
    if is_device_array(dy) != is_device_array(x):
        where = "on the GPU" if is_device_array(x) else "in host memory"
        raise TypeError(f"{name} must live where {like} lives ({where})")
    return dy


def check_axis(axis: object, ndim: int, name: str = "axis") -> int:
    """Return ``axis`` as a non-negative int, or raise naming it."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(axis).__name__} {axis!r}")
    if ndim == 0:
        raise ValueError(f"{name}={axis} needs an array with at least 1 dimension; got a 0-d array")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{name} must be in [{-ndim}, {ndim - 1}] for a {ndim}-d array; got {axis}"
        )
    return int(axis) % ndim


def check_scalar(value: object, name: str, *, positive: bool = False) -> float:
    """Return a finite real number as float, or raise naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiu":
            value = value.item()
        else:
            raise TypeError(f"{name} must be a real number; got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0; got {value}")
    return value
