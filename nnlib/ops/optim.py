"""Optimizer updates, one fused pass per parameter tensor: the NumPy reference, the
Numba CPU kernel and the CUDA kernel side by side. Each op updates ``p`` and its state
arrays *in place*.

Arrays: ``p`` (the parameter), ``g`` (its gradient) and the state arrays all have the
same shape (...); the kernels see them flattened to (P,). Scalars are Python floats,
flags Python ints (0 or 1), ``t`` the 1-based step count. The rules are PyTorch's
(torch.optim, no ``maximize``/``amsgrad``/``centered``):

SGD   g <- g + wd p
      momentum > 0:  b <- g on the first step, else  b <- mu b + (1 - dampening) g
                     g <- g + mu b (Nesterov)  or  g <- b
      p <- p - lr g
RMSprop  g <- g + wd p;   s <- alpha s + (1 - alpha) g^2;   d = sqrt(s) + eps
      momentum > 0:  b <- mu b + g / d;  p <- p - lr b      else  p <- p - lr g / d
Adam  g <- g + wd p                      (Adam: L2 penalty added to the gradient)
      p <- p (1 - lr wd)                 (AdamW, decoupled=1, instead of the line above)
      m <- beta1 m + (1 - beta1) g;      v <- beta2 v + (1 - beta2) g^2
      p <- p - (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
      NOTE: eps is added outside the square root, after the bias correction of v.

Parameters excluded from weight decay (``no_decay=`` of :mod:`nnlib.optim`): every op
takes an optional ``mask=``, a uint8 array of ``p``'s size, 1 where an element is decayed
and 0 where it is not; an element with mask 0 is updated with ``wd = 0`` in every formula
above (PyTorch's parameter group with ``weight_decay=0``). ``mask=None`` (the default)
decays every element. The optimizer makes the mask once, when it is bound to a model's
flat buffers, so that one call still updates every parameter; without a mask the kernels
run the loop they ran before (the mask is not read).

Each rule is written once, as a function of one element (``_sgd``, ``_rmsprop``,
``_adam``: the new parameter and state values), compiled for both targets; the CPU
kernel loops over the elements with ``prange``, the CUDA kernel runs one thread an
element. fit and train_on_batch call them once a step, on flat buffers that hold every
parameter; Optimizer.step, once per tensor.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .._arrays import assign
from .._backend import register
from .._cuda import THREADS_1D, blocks_1d, cuda
from ._launch import _int_or_float, _split, kernel, shared

# ---------------------------------------------------------------------- reference


def _wd(wd, p, mask):
    """The weight decay of each element: ``wd``, or an array that is ``wd`` where ``mask``
    is 1 and 0 where it is 0, in ``p``'s dtype (float32 data is decayed in float32, as
    with the scalar)."""
    if mask is None:
        return wd
    decayed = np.asarray(mask).reshape(p.shape) != 0
    return np.where(decayed, p.dtype.type(wd), p.dtype.type(0))


@register("sgd_update", "numpy")
def sgd_update_ref(p, g, b, lr, momentum, dampening, wd, nesterov, first, mask=None):
    g = g + _wd(wd, p, mask) * p
    if momentum != 0:
        b[...] = g if first else momentum * b + (1 - dampening) * g
        g = g + momentum * b if nesterov else b
    p -= lr * g


@register("rmsprop_update", "numpy")
def rmsprop_update_ref(p, g, s, b, lr, alpha, eps, wd, momentum, mask=None):
    g = g + _wd(wd, p, mask) * p
    s[...] = alpha * s + (1 - alpha) * g * g
    d = np.sqrt(s) + eps
    if momentum > 0:
        b[...] = momentum * b + g / d
        p -= lr * b
    else:
        p -= lr * g / d


@register("adam_update", "numpy")
def adam_update_ref(p, g, m, v, lr, beta1, beta2, eps, wd, decoupled, t, mask=None):
    if decoupled:
        factor = 1 - lr * wd
        if mask is not None:  # NOTE: the factor rounded once to p's dtype, as the scalar is
            factor = np.where(_wd(1, p, mask) != 0, p.dtype.type(factor), p.dtype.type(1))
        p *= factor
    else:
        g = g + _wd(wd, p, mask) * p
    m[...] = beta1 * m + (1 - beta1) * g
    v[...] = beta2 * v + (1 - beta2) * g * g
    step_size = lr / (1 - beta1**t)
    p -= step_size * m / (np.sqrt(v) / math.sqrt(1 - beta2**t) + eps)


# ---------------------------------------------------------------------- the rules
# One element's update, written once for both targets: (new p, new state...).


def _sgd(p, g, b, lr, momentum, dampening, wd, nesterov, first):
    g = g + wd * p
    if momentum != 0.0:
        b = g if first else momentum * b + (1.0 - dampening) * g
        g = g + momentum * b if nesterov else b
    return p - lr * g, b


def _rmsprop(p, g, s, b, lr, alpha, eps, wd, momentum):
    g = g + wd * p
    s = alpha * s + (1.0 - alpha) * g * g
    d = math.sqrt(s) + eps
    if momentum > 0.0:
        b = momentum * b + g / d
        return p - lr * b, s, b
    return p - lr * g / d, s, b


def _adam(p, g, m, v, lr, beta1, beta2, eps, wd, decoupled, step_size, root_bc2):
    """``step_size = lr / (1 - beta1^t)`` and ``root_bc2 = sqrt(1 - beta2^t)``, the bias
    corrections, are the same for every element."""
    if decoupled:
        p = p * (1.0 - lr * wd)
    else:
        g = g + wd * p
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    return p - step_size * m / (math.sqrt(v) / root_bc2 + eps), m, v


_sgd_cpu, _sgd_gpu = shared(_sgd)
_rmsprop_cpu, _rmsprop_gpu = shared(_rmsprop)
_adam_cpu, _adam_gpu = shared(_adam)

# ---------------------------------------------------------------------- the layout
# in_place's layout, with the decay mask: kernel(*arrays, mask, *scalars, masked).


_NO_MASK: dict[object, object] = {}  # target -> a 1-element uint8 array there, never read


def _with_mask(at, launch, *args, mask=None):
    """``kernel(*arrays, mask, *scalars, masked)`` updates 1-D views of the arrays in
    place (as :func:`nnlib.ops._launch.in_place`: ints passed as int64, other scalars as
    float64, host arrays on cuda copied there and back). ``mask``: None, or a uint8 array
    of the parameter's size (1: decayed, 0: not), passed where it is if it already lives
    on the target (the optimizer's does); ``masked`` tells the kernel which. Without a
    mask the kernel gets a 1-element stand-in, made once, that it does not read."""
    arrays, scalars = _split(args)
    placed = [at.put(a) for a in arrays]
    n = placed[0].size
    if mask is None:
        flag, mask = 0, _NO_MASK.get(at)
        if mask is None:
            # allocated where the kernels run (nothing crosses the bus), never read
            mask = _NO_MASK[at] = at.empty(1, np.uint8)
    else:
        if mask.size != n or np.dtype(mask.dtype) != np.dtype(np.uint8):
            raise ValueError(
                f"mask must be a uint8 array of the parameter's size {n}; got "
                f"{mask.size} {mask.dtype}"
            )
        flag, mask = 1, at.put(mask).reshape(n)
    if n:
        flat = [a.reshape(n) for a in placed]
        scalars = [*map(_int_or_float, scalars), flag]
        launch(*flat, mask, *scalars, grid=(blocks_1d(n), THREADS_1D))
    for a, p in zip(arrays, placed, strict=True):
        if p is not a:  # a copy was updated: write it back
            assign(a, p)


# ---------------------------------------------------------------------- CPU (Numba)
# One element per prange iteration: every element's update is independent. With a mask
# an element's decay is ``wd * mask[i]`` (wd or 0.0); without one the loop is the one it
# was (a separate loop, so that the mask is not read).
# SPEEDTIP: the masked loop reads one more byte an element (the mask): on 10^6 float32
# Adam parameters it costs a few percent; the unmasked loop costs nothing more.


@kernel("sgd_update", "cpu", _with_mask)
def sgd_update_cpu(p, g, b, mask, lr, momentum, dampening, wd, nesterov, first, masked):
    if masked:
        for i in prange(p.size):
            wd_i = wd * mask[i]
            p[i], b[i] = _sgd_cpu(p[i], g[i], b[i], lr, momentum, dampening, wd_i, nesterov, first)
    else:
        for i in prange(p.size):
            p[i], b[i] = _sgd_cpu(p[i], g[i], b[i], lr, momentum, dampening, wd, nesterov, first)


@kernel("rmsprop_update", "cpu", _with_mask)
def rmsprop_update_cpu(p, g, s, b, mask, lr, alpha, eps, wd, momentum, masked):
    if masked:
        for i in prange(p.size):
            wd_i = wd * mask[i]
            p[i], s[i], b[i] = _rmsprop_cpu(p[i], g[i], s[i], b[i], lr, alpha, eps, wd_i, momentum)
    else:
        for i in prange(p.size):
            p[i], s[i], b[i] = _rmsprop_cpu(p[i], g[i], s[i], b[i], lr, alpha, eps, wd, momentum)


@kernel("adam_update", "cpu", _with_mask)
def adam_update_cpu(p, g, m, v, mask, lr, beta1, beta2, eps, wd, decoupled, t, masked):
    step_size, root_bc2 = lr / (1.0 - beta1**t), math.sqrt(1.0 - beta2**t)
    if masked:
        for i in prange(p.size):
            wd_i = wd * mask[i]
            p[i], m[i], v[i] = _adam_cpu(
                p[i], g[i], m[i], v[i], lr, beta1, beta2, eps, wd_i, decoupled, step_size, root_bc2
            )
    else:
        for i in prange(p.size):
            p[i], m[i], v[i] = _adam_cpu(
                p[i], g[i], m[i], v[i], lr, beta1, beta2, eps, wd, decoupled, step_size, root_bc2
            )


# ---------------------------------------------------------------------- CUDA
# One thread per element, one launch per call. ``masked`` is the same for every thread
# (no divergence); without a mask it is not read.


@kernel("sgd_update", "cuda", _with_mask)
def sgd_update_cuda(p, g, b, mask, lr, momentum, dampening, wd, nesterov, first, masked):
    i = cuda.grid(1)
    if i < p.size:
        wd_i = wd * mask[i] if masked else wd
        p[i], b[i] = _sgd_gpu(p[i], g[i], b[i], lr, momentum, dampening, wd_i, nesterov, first)


@kernel("rmsprop_update", "cuda", _with_mask)
def rmsprop_update_cuda(p, g, s, b, mask, lr, alpha, eps, wd, momentum, masked):
    i = cuda.grid(1)
    if i < p.size:
        wd_i = wd * mask[i] if masked else wd
        p[i], s[i], b[i] = _rmsprop_gpu(p[i], g[i], s[i], b[i], lr, alpha, eps, wd_i, momentum)


@kernel("adam_update", "cuda", _with_mask)
def adam_update_cuda(p, g, m, v, mask, lr, beta1, beta2, eps, wd, decoupled, t, masked):
    i = cuda.grid(1)
    if i < p.size:
        step_size, root_bc2 = lr / (1.0 - beta1**t), math.sqrt(1.0 - beta2**t)
        wd_i = wd * mask[i] if masked else wd
        p[i], m[i], v[i] = _adam_gpu(
            p[i], g[i], m[i], v[i], lr, beta1, beta2, eps, wd_i, decoupled, step_size, root_bc2
        )
