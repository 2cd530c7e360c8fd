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

from .._backend import register
from .._cuda import cuda
from ._launch import in_place, kernel, shared

# ---------------------------------------------------------------------- reference


@register("sgd_update", "numpy")
def sgd_update_ref(p, g, b, lr, momentum, dampening, wd, nesterov, first):
    g = g + wd * p
    if momentum != 0:
        b[...] = g if first else momentum * b + (1 - dampening) * g
        g = g + momentum * b if nesterov else b
    p -= lr * g


@register("rmsprop_update", "numpy")
def rmsprop_update_ref(p, g, s, b, lr, alpha, eps, wd, momentum):
    g = g + wd * p
    s[...] = alpha * s + (1 - alpha) * g * g
    d = np.sqrt(s) + eps
    if momentum > 0:
        b[...] = momentum * b + g / d
        p -= lr * b
    else:
        p -= lr * g / d


@register("adam_update", "numpy")
def adam_update_ref(p, g, m, v, lr, beta1, beta2, eps, wd, decoupled, t):
    if decoupled:
        p *= 1 - lr * wd
    else:
        g = g + wd * p
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

# ---------------------------------------------------------------------- CPU (Numba)
# One element per prange iteration: every element's update is independent.


@kernel("sgd_update", "cpu", in_place)
def sgd_update_cpu(p, g, b, lr, momentum, dampening, wd, nesterov, first):
    for i in prange(p.size):
        p[i], b[i] = _sgd_cpu(p[i], g[i], b[i], lr, momentum, dampening, wd, nesterov, first)


@kernel("rmsprop_update", "cpu", in_place)
def rmsprop_update_cpu(p, g, s, b, lr, alpha, eps, wd, momentum):
    for i in prange(p.size):
        p[i], s[i], b[i] = _rmsprop_cpu(p[i], g[i], s[i], b[i], lr, alpha, eps, wd, momentum)


@kernel("adam_update", "cpu", in_place)
def adam_update_cpu(p, g, m, v, lr, beta1, beta2, eps, wd, decoupled, t):
    step_size, root_bc2 = lr / (1.0 - beta1**t), math.sqrt(1.0 - beta2**t)
    for i in prange(p.size):
        p[i], m[i], v[i] = _adam_cpu(
            p[i], g[i], m[i], v[i], lr, beta1, beta2, eps, wd, decoupled, step_size, root_bc2
        )


# ---------------------------------------------------------------------- CUDA
# One thread per element, one launch per call.


@kernel("sgd_update", "cuda", in_place)
def sgd_update_cuda(p, g, b, lr, momentum, dampening, wd, nesterov, first):
    i = cuda.grid(1)
    if i < p.size:
        p[i], b[i] = _sgd_gpu(p[i], g[i], b[i], lr, momentum, dampening, wd, nesterov, first)


@kernel("rmsprop_update", "cuda", in_place)
def rmsprop_update_cuda(p, g, s, b, lr, alpha, eps, wd, momentum):
    i = cuda.grid(1)
    if i < p.size:
        p[i], s[i], b[i] = _rmsprop_gpu(p[i], g[i], s[i], b[i], lr, alpha, eps, wd, momentum)


@kernel("adam_update", "cuda", in_place)
def adam_update_cuda(p, g, m, v, lr, beta1, beta2, eps, wd, decoupled, t):
    i = cuda.grid(1)
    if i < p.size:
        step_size, root_bc2 = lr / (1.0 - beta1**t), math.sqrt(1.0 - beta2**t)
        p[i], m[i], v[i] = _adam_gpu(
            p[i], g[i], m[i], v[i], lr, beta1, beta2, eps, wd, decoupled, step_size, root_bc2
        )
