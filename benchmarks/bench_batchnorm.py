"""BatchNorm1d, forward (training mode, running statistics updated) plus backward:
nnlib's backends side by side with PyTorch, as ratios measured in one run.

    .venv/bin/python benchmarks/bench_batchnorm.py [--shapes 512x1024 ...] [--repeat 41]
    PYTHONPATH=/path/to/torch .venv/bin/python benchmarks/bench_batchnorm.py   # with the peer

Contenders, all float32, on the same (N, D) batch:

* ``numpy``: the reference (``nnlib/ops/batchnorm.py``), the spec;
* ``nnlib cpu``: the Numba kernels (row blocks of partial sums), as the layer runs them;
* ``first version``: the readable first kernel, kept here only: one feature (a column)
  a prange iteration, each walking down its column, which reads memory with the stride
  of a row;
* ``torch native``: PyTorch's CPU kernels called directly (``native_batch_norm`` and
  ``native_batch_norm_backward``), with as many threads as numba has;
* ``torch autograd``: ``torch.nn.functional.batch_norm`` and ``torch.autograd.grad``, the
  way a PyTorch user runs it;
* ``nnlib cuda`` on GPU-resident arrays, when a GPU is present.

Each contender's y, dx, dgamma and dbeta are checked against the float64 reference
(rounded to float32, within nnlib's float32 tolerance) before any timing; then the
contenders run alternately (A B C A B C ...) so that a noisy neighbour slows them all
alike, and the medians are compared. ``uptime`` is printed before and after: on a shared
machine a high load makes every number slower and noisier.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics

import numba
import numpy as np
from _timing import alternated
from numba import njit, prange

import nnlib
from nnlib._backend import backend_problem, dispatch
from nnlib.testing import assert_close

EPS, MOMENTUM = 1e-5, 0.1


# The first version: the plainest parallel loop, one feature a prange iteration.
@njit(parallel=True, cache=True)
def first_forward(x, gamma, beta, running_mean, running_var, momentum, eps, y, mean, inv_std):
    n, d = x.shape
    for j in prange(d):
        s = 0.0
        for i in range(n):
            s += x[i, j]
        mu = s / n
        v = 0.0
        for i in range(n):
            v += (x[i, j] - mu) ** 2
        v /= n
        running_mean[j] = (1 - momentum) * running_mean[j] + momentum * mu
        running_var[j] = (1 - momentum) * running_var[j] + momentum * v * n / (n - 1)
        istd = 1.0 / math.sqrt(v + eps)
        mean[j], inv_std[j] = mu, istd
        for i in range(n):
            y[i, j] = gamma[j] * (x[i, j] - mu) * istd + beta[j]


@njit(parallel=True, cache=True)
def first_backward(dy, x, gamma, mean, inv_std, dx, dgamma, dbeta):
    n, d = x.shape
    for j in prange(d):
        mu, istd = np.float64(mean[j]), np.float64(inv_std[j])
        s_dy, s_dyx = 0.0, 0.0
        for i in range(n):
            s_dy += dy[i, j]
            s_dyx += dy[i, j] * (x[i, j] - mu) * istd
        dgamma[j], dbeta[j] = s_dyx, s_dy
        for i in range(n):
            xhat = (x[i, j] - mu) * istd
            dx[i, j] = gamma[j] * istd * (dy[i, j] - s_dy / n - xhat * s_dyx / n)


def _first(x, dy, gamma, beta, rm, rv):
    d = x.shape[1]
    y, mean, inv_std = np.empty_like(x), np.empty(d, x.dtype), np.empty(d, x.dtype)
    first_forward(x, gamma, beta, rm, rv, MOMENTUM, EPS, y, mean, inv_std)
    dx, dgamma, dbeta = np.empty_like(x), np.empty(d, x.dtype), np.empty(d, x.dtype)
    first_backward(dy, x, gamma, mean, inv_std, dx, dgamma, dbeta)
    return y, dx, dgamma, dbeta


def _nnlib(backend, x, dy, gamma, beta, rm, rv):
    """What BatchNorm1d.forward and .backward run (the ops, without the layer's checks)."""
    y, mean, inv_std = dispatch("batch_norm", backend)(x, gamma, beta, rm, rv, MOMENTUM, EPS, 1)
    dx, dgamma, dbeta = dispatch("batch_norm_backward", backend)(dy, x, gamma, mean, inv_std, 1)
    return y, dx, dgamma, dbeta


def contenders(x, dy, gamma, beta):
    """(name, zero-argument callable returning (y, dx, dgamma, dbeta) or None, why not)."""
    d = x.shape[1]

    def stats():
        return np.zeros(d, np.float32), np.ones(d, np.float32)

    s = {name: stats() for name in ("numpy", "cpu", "first")}
    yield "numpy", lambda: _nnlib("numpy", x, dy, gamma, beta, *s["numpy"]), None
    yield "nnlib cpu", lambda: _nnlib("cpu", x, dy, gamma, beta, *s["cpu"]), None
    yield "first version", lambda: _first(x, dy, gamma, beta, *s["first"]), None
    try:
        import torch
    except ImportError:
        why = "PyTorch is not installed (pip install --target DIR torch; PYTHONPATH=DIR)"
        yield "torch native", None, why
        yield "torch autograd", None, why
    else:
        torch.set_num_threads(numba.get_num_threads())
        xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
        gt, bt = torch.from_numpy(gamma), torch.from_numpy(beta)
        rmt, rvt = (torch.from_numpy(a) for a in stats())
        aten = torch.ops.aten

        def native():
            y, mean, invstd = aten.native_batch_norm(xt, gt, bt, rmt, rvt, True, MOMENTUM, EPS)
            mask = [True, True, True]
            dx, dg, db = aten.native_batch_norm_backward(
                dyt, xt, gt, rmt, rvt, mean, invstd, True, EPS, mask
            )
            return y.numpy(), dx.numpy(), dg.numpy(), db.numpy()

        xa, ga, ba = (t.clone().requires_grad_() for t in (xt, gt, bt))
        rma, rva = (torch.from_numpy(a) for a in stats())

        def autograd():
            y = torch.nn.functional.batch_norm(
                xa, rma, rva, ga, ba, training=True, momentum=MOMENTUM, eps=EPS
            )
            dx, dg, db = torch.autograd.grad(y, (xa, ga, ba), dyt)
            return y.detach().numpy(), dx.numpy(), dg.numpy(), db.numpy()

        yield "torch native", native, None
        yield "torch autograd", autograd, None
    problem = backend_problem("cuda")
    if problem is None:
        from numba import cuda

        on = [cuda.to_device(a) for a in (x, dy, gamma, beta, *stats())]

        def on_gpu():
            out = _nnlib("cuda", on[0], on[1], *on[2:])
            cuda.synchronize()
            return out

        yield "nnlib cuda", on_gpu, None
    else:
        yield "nnlib cuda", None, "cuda backend unavailable (python -m nnlib info says why)"


def bench(shape, repeat):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma = rng.uniform(0.5, 2, shape[1]).astype(np.float32)
    beta = rng.standard_normal(shape[1]).astype(np.float32)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    want = _nnlib("numpy", x64, dy64, gamma.astype(np.float64), beta.astype(np.float64), None, None)
    xhat = (x64 - x64.mean(axis=0)) / np.sqrt(x64.var(axis=0) + EPS)
    bounds = np.abs(dy64 * xhat).sum(axis=0), np.abs(dy64).sum(axis=0)  # sum |terms|
    runnable, skipped = {}, {}
    for name, fn, why in contenders(x, dy, gamma, beta):
        if fn is None:
            skipped[name] = why
            continue
        got = [g.copy_to_host() if hasattr(g, "copy_to_host") else g for g in fn()]
        # validate (and compile) before timing: y and dx within the float32 tolerance.
        # NOTE: the float32 NumPy reference sums in float32, so its mean, and with it y and
        # dx, carry up to N * eps32 of relative error: it gets 1e-3 (a wrong formula is
        # off by far more); nnlib's kernels sum in float64 and get the float32 table.
        for what, g, w in zip(("y", "dx"), got, want, strict=False):
            if name == "numpy":
                np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-3, err_msg=what)
            else:
                assert_close(g, w.astype(np.float32), name=f"{what} of {name}")
        # NOTE: dgamma and dbeta are sums over the N rows; a contender that adds in float32
        # is off by up to N * eps32 * sum |terms| (the classical bound).
        for what, g, w, terms in zip(("dgamma", "dbeta"), got[2:], want[2:], bounds, strict=True):
            err = np.abs(g.astype(np.float64) - w)
            limit = 2e-5 * np.abs(w) + shape[0] * np.finfo(np.float32).eps * terms
            assert (err <= limit).all(), f"{what} of {name}: max error {err.max():.2e}"
        runnable[name] = fn
    return alternated(runnable, repeat), skipped


def _uptime():
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"load average {load} (1, 5, 15 min) on {os.cpu_count()} cores"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["512x1024", "64x256", "4096x512"])
    parser.add_argument("--repeat", type=int, default=41)
    args = parser.parse_args()
    print(
        f"nnlib {nnlib.__version__}, numpy {np.__version__}, numba {numba.__version__}, "
        f"{numba.get_num_threads()} threads ({numba.threading_layer()}), float32"
    )
    print("before:", _uptime())
    print(
        f"{'shape':<11}{'contender':<16}{'median ms':>10}{'best ms':>9}"
        f"{'numpy / it':>12}{'it / torch native':>19}"
    )
    for text in args.shapes:
        shape = tuple(int(v) for v in text.split("x"))
        times, skipped = bench(shape, args.repeat)
        med = {name: statistics.median(ts) for name, ts in times.items()}
        torch_med = med.get("torch native")
        for name, ts in times.items():
            vs_torch = f"{med[name] / torch_med:>18.2f}x" if torch_med else f"{'-':>19}"
            print(
                f"{text:<11}{name:<16}{med[name] * 1e3:>10.3f}{min(ts) * 1e3:>9.3f}"
                f"{med['numpy'] / med[name]:>11.2f}x{vs_torch}"
            )
        for name, why in skipped.items():
            print(f"{text:<11}{name:<16}  skipped: {why}")
    print("after: ", _uptime())


if __name__ == "__main__":
    main()
