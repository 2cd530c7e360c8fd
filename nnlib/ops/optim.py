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
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .._backend import register
from .._cuda import cuda, cuda_jit
from .._validate import is_device_array
from ._launch import KERNELS, THREADS_1D, to_device

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


# ---------------------------------------------------------------------- CPU (Numba)
# One element per prange iteration: every element's update is independent.


@njit(parallel=True, cache=True)
def sgd_update_cpu(p, g, b, lr, momentum, dampening, wd, nesterov, first):
    for i in prange(p.size):
        gi = g[i] + wd * p[i]
        if momentum != 0.0:
            bi = gi if first else momentum * b[i] + (1.0 - dampening) * gi
            b[i] = bi
            gi = gi + momentum * bi if nesterov else bi
        p[i] -= lr * gi


@njit(parallel=True, cache=True)
def rmsprop_update_cpu(p, g, s, b, lr, alpha, eps, wd, momentum):
    for i in prange(p.size):
        gi = g[i] + wd * p[i]
        si = alpha * s[i] + (1.0 - alpha) * gi * gi
        s[i] = si
        d = math.sqrt(si) + eps
        if momentum > 0.0:
            bi = momentum * b[i] + gi / d
            b[i] = bi
            p[i] -= lr * bi
        else:
            p[i] -= lr * gi / d


@njit(parallel=True, cache=True)
def adam_update_cpu(p, g, m, v, lr, beta1, beta2, eps, wd, decoupled, t):
    step_size = lr / (1.0 - beta1**t)
    root_bc2 = math.sqrt(1.0 - beta2**t)
    for i in prange(p.size):
        gi = g[i]
        pi = p[i]
        if decoupled:
            pi = pi * (1.0 - lr * wd)
        else:
            gi = gi + wd * pi
        mi = beta1 * m[i] + (1.0 - beta1) * gi
        vi = beta2 * v[i] + (1.0 - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = pi - step_size * mi / (math.sqrt(vi) / root_bc2 + eps)


def _cpu_launch(op, kernel, n_arrays):
    KERNELS[op, "cpu"] = kernel

    @register(op, "cpu")
    def run(*args):
        # NOTE: reshape(-1) of a C-contiguous array is a view, so the kernel writes
        # into the caller's arrays; the optimizer only passes C-contiguous ones.
        flat = [a.reshape(-1) for a in args[:n_arrays]]
        scalars = [float(s) for s in args[n_arrays:-2]] + [int(s) for s in args[-2:]]
        if flat[0].size:
            kernel(*flat, *scalars)

    run.__name__ = run.__qualname__ = f"{op}_cpu_launch"


_cpu_launch("sgd_update", sgd_update_cpu, 3)
_cpu_launch("adam_update", adam_update_cpu, 4)


@register("rmsprop_update", "cpu")
def rmsprop_update_cpu_launch(p, g, s, b, lr, alpha, eps, wd, momentum):
    flat = [a.reshape(-1) for a in (p, g, s, b)]
    if flat[0].size:
        rmsprop_update_cpu(*flat, float(lr), float(alpha), float(eps), float(wd), float(momentum))


KERNELS["rmsprop_update", "cpu"] = rmsprop_update_cpu


# ---------------------------------------------------------------------- CUDA
# One thread per element, the same arithmetic as the CPU kernels: one launch per
# call. fit and train_on_batch call them once a step, on flat buffers that hold every
# parameter (see _FlatBuffers in nnlib/model.py); Optimizer.step, once per tensor.


@cuda_jit
def sgd_update_cuda(p, g, b, lr, momentum, dampening, wd, nesterov, first):
    i = cuda.grid(1)
    if i < p.size:
        gi = g[i] + wd * p[i]
        if momentum != 0.0:
            bi = gi if first else momentum * b[i] + (1.0 - dampening) * gi
            b[i] = bi
            gi = gi + momentum * bi if nesterov else bi
        p[i] -= lr * gi


@cuda_jit
def rmsprop_update_cuda(p, g, s, b, lr, alpha, eps, wd, momentum):
    i = cuda.grid(1)
    if i < p.size:
        gi = g[i] + wd * p[i]
        si = alpha * s[i] + (1.0 - alpha) * gi * gi
        s[i] = si
        d = math.sqrt(si) + eps
        if momentum > 0.0:
            bi = momentum * b[i] + gi / d
            b[i] = bi
            p[i] -= lr * bi
        else:
            p[i] -= lr * gi / d


@cuda_jit
def adam_update_cuda(p, g, m, v, lr, beta1, beta2, eps, wd, decoupled, t):
    i = cuda.grid(1)
    if i < p.size:
        step_size = lr / (1.0 - beta1**t)
        root_bc2 = math.sqrt(1.0 - beta2**t)
        gi = g[i]
        pi = p[i]
        if decoupled:
            pi = pi * (1.0 - lr * wd)
        else:
            gi = gi + wd * pi
        mi = beta1 * m[i] + (1.0 - beta1) * gi
        vi = beta2 * v[i] + (1.0 - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = pi - step_size * mi / (math.sqrt(vi) / root_bc2 + eps)


def _cuda_launch(op, kernel, n_arrays, n_ints):
    KERNELS[op, "cuda"] = kernel

    @register(op, "cuda")
    def run(*args):
        arrays, scalars = args[:n_arrays], args[n_arrays:]
        n_floats = len(scalars) - n_ints
        scalars = [float(s) for s in scalars[:n_floats]] + [int(s) for s in scalars[n_floats:]]
        on_gpu = is_device_array(arrays[0])
        dev = [to_device(a) for a in arrays]
        n = dev[0].size
        if n:
            flat = [a.reshape(n) for a in dev]
            kernel[(n + THREADS_1D - 1) // THREADS_1D, THREADS_1D](*flat, *scalars)
        if not on_gpu:  # host arrays in: the update is copied back into them
            for host, d in zip(arrays, dev, strict=True):
                host[...] = d.copy_to_host()

    run.__name__ = run.__qualname__ = f"{op}_cuda_launch"


_cuda_launch("sgd_update", sgd_update_cuda, 3, 2)
_cuda_launch("rmsprop_update", rmsprop_update_cuda, 4, 0)
_cuda_launch("adam_update", adam_update_cuda, 4, 2)
