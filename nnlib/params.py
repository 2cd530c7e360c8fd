"""Where a model's numbers live: every parameter in one flat buffer, every gradient in
another, with named views into them (llm.c's ``malloc_and_point_parameters``).

    store = ParameterStore({"0.W": (64, 128), "0.b": (128,)}, np.float32)
    store.flat_params            # (P,)  P = 64 * 128 + 128, one allocation
    store.params["0.W"]          # (64, 128), a view of flat_params[0 : 8192]
    store.view(buffer, "0.b")    # the same slice of any (P,) buffer: optimizer state

A model (:class:`nnlib.Sequential`) keeps its layers' ``params`` and ``grads`` as these
views, so the optimizer, bound to the store, updates every parameter in one kernel call
on the flat buffers. Its update rules are elementwise: one call on (P,) equals one call
per tensor exactly.

A layer's ``params`` and ``grads`` are :class:`Slots`: putting an array in a slot that
exists copies its values into the view already there (shape checked), so nothing can
silently detach a parameter from the store, and a wrong shape is refused before any
kernel sees it.
"""

from __future__ import annotations

import math

import numpy as np

from ._arrays import assign, empty_on, gpu_zeros, to_backend
from ._validate import is_device_array

__all__ = ["ParameterStore", "Slots"]


class Slots(dict):
    """A layer's parameters (or gradients) by name.

    ``slots[name] = array`` on a name that exists copies the values into the array
    already there (any dtype is cast; the shape must match), so every view of it (the
    parameter store's, the optimizer's) sees the new values. A new name is added as it
    is (that is how a layer's ``build`` fills its slots).
    """

    def __setitem__(self, name, value):
        held = self.get(name)
        if held is None or value is held:
            dict.__setitem__(self, name, value)
            return
        shape = tuple(getattr(value, "shape", np.shape(value)))
        if shape != tuple(held.shape):
            raise ValueError(
                f"{name!r} must keep its shape {tuple(held.shape)}; got an array of shape "
                f"{shape}. A layer's parameters are fixed when it is built: build a new "
                "layer (or model) for other sizes"
            )
        assign(held, value)

    def point(self, name, view) -> None:
        """Make ``name`` the array ``view`` itself (used by :class:`ParameterStore`)."""
        dict.__setitem__(self, name, view)


class ParameterStore:
    """Named parameters of fixed shapes in one flat ``(P,)`` buffer, their gradients in
    another, on one backend.

    Parameters
    ----------
    shapes : dict name -> shape tuple
    dtype : float32 or float64
    backend : "numpy", "cpu" (host memory) or "cuda" (GPU memory)
    """

    def __init__(self, shapes: dict, dtype, backend: str = "numpy"):
        self.dtype = np.dtype(dtype)
        self.backend = backend
        self.slices: dict[str, tuple[int, int, tuple]] = {}
        start = 0
        for name, shape in shapes.items():
            shape = tuple(int(s) for s in shape)
            stop = start + math.prod(shape)
            self.slices[name] = (start, stop, shape)
            start = stop
        self.size = start
        self.version = 0  # counts the moves: a view made before a move is stale
        self.flat_params = empty_on(backend, self.size, self.dtype)
        self.flat_grads = self.zeros()
        self._point()

    def _point(self):
        self.params = {name: self.view(self.flat_params, name) for name in self.slices}
        self.grads = {name: self.view(self.flat_grads, name) for name in self.slices}

    def view(self, flat, name: str):
        """The view of the ``(P,)`` buffer ``flat`` that holds ``name`` (host or GPU)."""
        start, stop, shape = self.slices[name]
        return flat[start:stop].reshape(shape)

    def zeros(self):
        """A new ``(P,)`` buffer of zeros where the store lives (for optimizer state)."""
        if self.backend == "cuda":
            return gpu_zeros(self.size, self.dtype)  # made on the GPU: nothing crosses the bus
        return np.zeros(self.size, self.dtype)

    def to(self, backend: str) -> bool:
        """Move both buffers to where ``backend`` computes (an explicit copy). Returns
        whether anything moved; the views are new then, so re-point whoever holds them."""
        on_gpu = is_device_array(self.flat_params)
        if (backend == "cuda") == on_gpu:
            self.backend = backend
            return False
        self.flat_params = to_backend(self.flat_params, backend)
        self.flat_grads = to_backend(self.flat_grads, backend)
        self.backend = backend
        self.version += 1
        self._point()
        return True

    def load(self, values: dict) -> None:
        """Copy ``values`` (name -> array) into the parameter views (shapes checked)."""
        for name, value in values.items():
            if name not in self.slices:
                raise ValueError(f"no parameter named {name!r}; the names are {list(self.slices)}")
            if tuple(value.shape) != self.slices[name][2]:
                raise ValueError(
                    f"parameter {name!r} has shape {self.slices[name][2]}; got {tuple(value.shape)}"
                )
            assign(self.params[name], value)

    def __repr__(self):
        return (
            f"ParameterStore({len(self.slices)} tensors, {self.size} {self.dtype.name} values, "
            f"on {self.backend!r})"
        )
