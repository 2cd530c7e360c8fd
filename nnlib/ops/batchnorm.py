"""Batch normalization over the batch, per feature (PyTorch's ``BatchNorm1d``): the NumPy
reference, the Numba CPU kernel and the CUDA kernel side by side.

Shapes (N batch, D features):

    x, y, dy, dx : (N, D)     gamma, beta, running_mean, running_var, mean, inv_std : (D,)

    forward, training    mean    = sum_n x[n] / N                              (D,)
                         var     = sum_n (x[n] - mean)**2 / N   (biased)       (D,)
                         inv_std = 1 / sqrt(var + eps)                         (D,)
                         xhat    = (x - mean) * inv_std                        (N, D)
                         y       = gamma * xhat + beta                         (N, D)
                         running_mean = (1 - momentum) * running_mean + momentum * mean
                         running_var  = (1 - momentum) * running_var
                                        + momentum * var * N / (N - 1)   (unbiased)
    forward, evaluation  mean = running_mean, var = running_var (left unchanged); the same
                         inv_std, xhat and y
    backward             dxhat  = dy * gamma                                   (N, D)
                         dgamma = sum_n dy[n] * xhat[n]                        (D,)
                         dbeta  = sum_n dy[n]                                  (D,)
      training           dx = inv_std / N * (N * dxhat - sum_n dxhat[n]
                                             - xhat * sum_n dxhat[n] * xhat[n])   (N, D)
      evaluation         dx = dxhat * inv_std     (the statistics are constants then)

The ops::

    y, mean, inv_std = batch_norm(x, gamma, beta, running_mean, running_var,
                                  momentum, eps, training)
    dx, dgamma, dbeta = batch_norm_backward(dy, x, gamma, mean, inv_std, training)

``running_mean`` and ``running_var`` are updated in place in training mode (where they
live: on the GPU for GPU arrays); ``None`` for both: no running statistics (training mode
only). ``mean`` and ``inv_std`` are the statistics the forward pass normalized with (the
batch's, or the running ones): what the backward pass needs besides ``x``, ``gamma`` and
``dy`` (PyTorch keeps the same two, ``save_mean`` and ``save_invstd``; ``xhat`` is
recomputed from ``x``, so the forward pass writes one (N, D) array, not two).

NOTE: the variance in the normalization is the biased one (divided by N), the one in
``running_var`` the unbiased one (by N - 1), as in PyTorch. A batch of one has no
variance: the public API refuses N < 2 in training mode before a kernel sees it.

NOTE: precision. The sums are accumulated in float64 for float32 data too (on both
targets), and the variance is computed in two passes (the mean, then the squared
deviations from it): the one-pass ``E[x^2] - mean^2`` loses every digit when the mean is
large against the spread. The results agree with a float64 computation within the
float32 tolerance of :mod:`nnlib.testing`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .._arrays import assign
from .._backend import register
from .._cuda import THREADS_1D, blocks_1d, cuda
from ._launch import kernel

# ---------------------------------------------------------------------- reference


@register("batch_norm", "numpy")
def batch_norm_ref(x, gamma, beta, running_mean, running_var, momentum, eps, training):
    if training:
        n = x.shape[0]
        mean = x.mean(axis=0)  # (D,)
        var = ((x - mean) ** 2).mean(axis=0)  # (D,) biased: the normalization's
        if running_mean is not None:  # updated in place; the unbiased variance
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
            running_var[...] = (1 - momentum) * running_var + momentum * var * n / (n - 1)
    else:
        mean, var = np.array(running_mean), running_var  # (D,) a copy: returned below
    inv_std = 1 / np.sqrt(var + eps)  # (D,)
    y = gamma * ((x - mean) * inv_std) + beta  # (N, D)
    return y.astype(x.dtype, copy=False), mean, inv_std.astype(x.dtype, copy=False)


@register("batch_norm_backward", "numpy")
def batch_norm_backward_ref(dy, x, gamma, mean, inv_std, training):
    n = x.shape[0]
    xhat = (x - mean) * inv_std  # (N, D)
    dxhat = dy * gamma  # (N, D)
    dgamma = (dy * xhat).sum(axis=0)  # (D,)
    dbeta = dy.sum(axis=0)  # (D,)
    if training:
        dx = inv_std / n * (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0))
    else:
        dx = dxhat * inv_std  # (N, D)
    return dx.astype(x.dtype, copy=False), dgamma, dbeta


# ---------------------------------------------------------------------- layouts
# One layout per op for both targets (see _launch.py): place the arrays, allocate the
# outputs, launch the kernel (on cuda one thread a feature), bring the results home.


def _forward_layout(at, launch, x, gamma, beta, running_mean, running_var, momentum, eps, training):
    n, d = x.shape
    dtype = np.dtype(x.dtype)
    xs, g, b = at.put(x), at.put(gamma), at.put(beta)
    # NOTE: the kernel's signature stays fixed: "no running statistics" is a 0-size array
    track = running_mean is not None
    rm = at.put(running_mean) if track else at.empty(0, dtype)
    rv = at.put(running_var) if track else at.empty(0, dtype)
    y, mean, inv_std = at.empty((n, d), dtype), at.empty(d, dtype), at.empty(d, dtype)
    if d:
        scalars = float(momentum), float(eps), int(training)
        launch(xs, g, b, rm, rv, *scalars, y, mean, inv_std, grid=(blocks_1d(d), THREADS_1D))
    if track and training:
        for given, placed in ((running_mean, rm), (running_var, rv)):
            if placed is not given:  # a copy was updated (host stats on cuda): write it back
                assign(given, placed)
    return at.home(y, x), at.home(mean, x), at.home(inv_std, x)


def _backward_layout(at, launch, dy, x, gamma, mean, inv_std, training):
    n, d = x.shape
    dtype = np.dtype(x.dtype)
    placed = [at.put(a) for a in (dy, x, gamma, mean, inv_std)]
    dx, dgamma, dbeta = at.empty((n, d), dtype), at.empty(d, dtype), at.empty(d, dtype)
    if d:
        launch(*placed, int(training), dx, dgamma, dbeta, grid=(blocks_1d(d), THREADS_1D))
    return at.home(dx, x), at.home(dgamma, x), at.home(dbeta, x)


# ---------------------------------------------------------------------- CPU (Numba)
# SPEEDTIP: x is (N, D) row-major, so a feature is a column, and a loop down one column
# reads memory with the stride of a whole row. The sums over the batch are made instead
# by CHUNKS blocks of rows, one prange iteration a block, each walking its rows in memory
# order and adding every row into its own (D,) row of partial sums (no two threads add
# into one number); the partial sums are then added up, feature by feature. The
# elementwise passes (y, dx) are a prange over the rows. The first version, a prange
# over the features each walking down its column (kept in benchmarks/bench_batchnorm.py),
# was several times slower, and slower than NumPy (benchmarks/README.md).
# NOTE: CHUNKS is fixed, not the thread count, so the order of the additions, and so the
# result, is the same on any number of threads.

CHUNKS = 16  # blocks of rows of the partial sums


@kernel("batch_norm", "cpu", _forward_layout)
def batch_norm_cpu(
    x, gamma, beta, running_mean, running_var, momentum, eps, training, y, mean, inv_std
):
    n, d = x.shape
    mu = np.zeros(d)  # float64 statistics                                        (D,)
    var = np.zeros(d)
    if training:
        chunks = min(n, CHUNKS)
        part = np.zeros((chunks, d))  # float64 partial sums, one row a block of rows
        for c in prange(chunks):  # pass 1: the sums
            for i in range(c * n // chunks, (c + 1) * n // chunks):
                for j in range(d):
                    part[c, j] += x[i, j]
        for c in range(chunks):
            for j in range(d):
                mu[j] += part[c, j]
        for j in range(d):
            mu[j] /= n
        part[:] = 0.0
        for c in prange(chunks):  # pass 2: the squared deviations from the mean
            for i in range(c * n // chunks, (c + 1) * n // chunks):
                for j in range(d):
                    t = x[i, j] - mu[j]
                    part[c, j] += t * t
        for c in range(chunks):
            for j in range(d):
                var[j] += part[c, j]
        for j in range(d):
            var[j] /= n  # biased
        if running_mean.size:
            for j in range(d):
                unbiased = var[j] * n / (n - 1)
                running_mean[j] = (1 - momentum) * running_mean[j] + momentum * mu[j]
                running_var[j] = (1 - momentum) * running_var[j] + momentum * unbiased
    else:
        for j in range(d):
            mu[j] = running_mean[j]
            var[j] = running_var[j]
    scale = np.empty(d)  # gamma * inv_std                                             (D,)
    for j in range(d):
        istd = 1.0 / math.sqrt(var[j] + eps)
        mean[j] = mu[j]
        inv_std[j] = istd
        scale[j] = gamma[j] * istd
    for i in prange(n):  # pass 3: y = (x - mean) * gamma * inv_std + beta
        for j in range(d):
            y[i, j] = (x[i, j] - mu[j]) * scale[j] + beta[j]


@kernel("batch_norm_backward", "cpu", _backward_layout)
def batch_norm_backward_cpu(dy, x, gamma, mean, inv_std, training, dx, dgamma, dbeta):
    n, d = x.shape
    mu, istd = mean.astype(np.float64), inv_std.astype(np.float64)  # (D,)
    chunks = min(n, CHUNKS)
    part_dy = np.zeros((chunks, d))  # float64 partial sums of dy and of dy * (x - mean)
    part_dyc = np.zeros((chunks, d))
    for c in prange(chunks):  # pass 1: the sums
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            for j in range(d):
                g = np.float64(dy[i, j])
                part_dy[c, j] += g
                part_dyc[c, j] += g * (x[i, j] - mu[j])
    # SPEEDTIP: dx = gamma * inv_std * (dy - sum(dy) / N - xhat * sum(dy * xhat) / N)
    # regrouped per feature as a * dy + p * (x - mean) + q: xhat is not formed, and each
    # element costs two multiplies instead of four.
    a = np.empty(d)  # (D,)
    p = np.zeros(d)
    q = np.zeros(d)
    for j in range(d):
        s_dy, s_dyc = 0.0, 0.0
        for c in range(chunks):
            s_dy += part_dy[c, j]
            s_dyc += part_dyc[c, j]
        s_dyx = s_dyc * istd[j]  # sum_n dy * xhat
        dgamma[j] = s_dyx
        dbeta[j] = s_dy
        a[j] = gamma[j] * istd[j]
        if training:  # the mean terms; in evaluation dx = a * dy
            p[j] = -a[j] * istd[j] * s_dyx / n
            q[j] = -a[j] * s_dy / n
    for i in prange(n):  # pass 2: dx
        for j in range(d):
            dx[i, j] = a[j] * dy[i, j] + p[j] * (x[i, j] - mu[j]) + q[j]


# ---------------------------------------------------------------------- CUDA
# One thread a feature: thread j walks down column j. Neighbouring threads of a warp
# read neighbouring columns of the same row, so every load is coalesced; the sums of a
# column stay in one thread's registers (no shared memory, no atomics).
# NOTE: this is the plain first version. It runs D threads, which fills a large GPU only
# for D in the tens of thousands; a tuned kernel would split the rows of a column over
# several threads and combine their partial sums.
# NOTE: the sums and the statistics are float64 for float32 data as well, as on the CPU,
# so the backends agree within the float32 tolerance.


@kernel("batch_norm", "cuda", _forward_layout)
def batch_norm_cuda(
    x, gamma, beta, running_mean, running_var, momentum, eps, training, y, mean, inv_std
):
    j = cuda.grid(1)
    n, d = x.shape
    if j >= d:
        return
    mu = 0.0
    var = 0.0
    if training:
        for i in range(n):
            mu += x[i, j]
        mu /= n
        for i in range(n):
            t = x[i, j] - mu
            var += t * t
        var /= n  # biased
        if running_mean.size > 0:
            running_mean[j] = (1 - momentum) * running_mean[j] + momentum * mu
            running_var[j] = (1 - momentum) * running_var[j] + momentum * (var * n / (n - 1))
    else:
        mu += running_mean[j]
        var += running_var[j]
    istd = 1.0 / math.sqrt(var + eps)
    mean[j] = mu
    inv_std[j] = istd
    scale = gamma[j] * istd
    for i in range(n):
        y[i, j] = (x[i, j] - mu) * scale + beta[j]


@kernel("batch_norm_backward", "cuda", _backward_layout)
def batch_norm_backward_cuda(dy, x, gamma, mean, inv_std, training, dx, dgamma, dbeta):
    j = cuda.grid(1)
    n, d = x.shape
    if j >= d:
        return
    mu = 0.0 + mean[j]  # NOTE: 0.0 + : float64 from here on, for float32 data too
    istd = 0.0 + inv_std[j]
    sdy = 0.0
    sdyx = 0.0
    for i in range(n):
        g = dy[i, j]
        sdy += g
        sdyx += g * ((x[i, j] - mu) * istd)
    dgamma[j] = sdyx
    dbeta[j] = sdy
    a = gamma[j] * istd
    b = sdy / n if training else 0.0
    c = sdyx / n if training else 0.0
    for i in range(n):
        xhat = (x[i, j] - mu) * istd
        dx[i, j] = a * (dy[i, j] - b - xhat * c)
