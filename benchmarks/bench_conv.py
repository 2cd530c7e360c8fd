"""Conv2D forward + backward (dx, dW, db): nnlib's backends side by side with PyTorch's
CPU convolution, as ratios measured in one run.

    .venv/bin/python benchmarks/bench_conv.py [--quick] [--repeat 21] [--json out.json]
    PYTHONPATH=/path/to/torch .venv/bin/python benchmarks/bench_conv.py   # with the peer

Rows (float32, 3x3 kernels, stride 1, padding 1 ("same"), no activation):

* ``64x1x28x28 -> 16``: the first layer of an MNIST CNN;
* ``64x16x14x14 -> 32``: its second layer, after a 2x2 pooling.

Contenders, on the same data:

* ``numpy``: the reference (``nnlib/ops/conv.py``: sliding windows + tensordot), the spec;
* ``nnlib cpu``: the registered Numba kernels (im2col in a prange loop, one BLAS product
  for the whole batch), as the layer runs them;
* ``cpu v1``: the first version (``conv2d_*_cpu_v1``: the formula as direct loops, one
  (image, filter) or filter a prange iteration);
* ``torch``: PyTorch's own CPU kernels called directly (``aten.convolution`` and
  ``aten.convolution_backward``, oneDNN where PyTorch has it), with as many threads as
  numba has;
* ``nnlib cuda`` on GPU-resident arrays, when a GPU is present.

Every contender's y, dx, dW and db are checked against the float64 reference, within
the classical rounding bound of a float32 sum, before any timing (which also compiles the
kernels); then the contenders run alternately (A B C A B C ...) so that a noisy
neighbour slows them all alike, and the medians are compared. ``uptime`` is printed
before and after: on a shared machine a high load makes every number slower and noisier.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

# NOTE: what `import nnlib` sets (see nnlib/__init__.py), set here before NumPy loads its
# OpenBLAS, so that NumPy's BLAS threads (the numpy reference's) sleep when idle too,
# instead of spinning into the next contender's time (PyTorch's OpenMP threads, loaded
# after nnlib, get OMP_WAIT_POLICY too). It applies to every contender alike.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numba
import numpy as np
from _timing import alternated

import nnlib
from nnlib._backend import backend_problem, dispatch
from nnlib.ops import conv

STRIDE, PAD = 1, 1
ROWS = {"64x1x28x28->16": (64, 1, 28, 28, 16), "64x16x14x14->32": (64, 16, 14, 14, 32)}


def _nnlib(backend, x, W, b, dy):
    y = dispatch("conv2d_forward", backend)(x, W, b, STRIDE, PAD, 0)
    dx, dW, db = dispatch("conv2d_backward", backend)(dy, x, W, y, STRIDE, PAD, 0, 1)
    return y, dx, dW, db


def _first(x, W, b, dy):
    N, F = x.shape[0], W.shape[0]
    y = np.empty((N, F, *dy.shape[2:]), x.dtype)
    conv.conv2d_forward_cpu_v1(x, W, b, STRIDE, PAD, 0, y)
    dx, dW, db = np.empty_like(x), np.empty_like(W), np.empty(F, x.dtype)
    conv.conv2d_backward_cpu_v1(dy, x, W, y, STRIDE, PAD, 0, 1, dx, dW, db)
    return y, dx, dW, db


def contenders(x, W, b, dy):
    """(name, zero-argument callable returning (y, dx, dW, db) or None, why not)."""
    yield "numpy", lambda: _nnlib("numpy", x, W, b, dy), None
    yield "nnlib cpu", lambda: _nnlib("cpu", x, W, b, dy), None
    yield "cpu v1", lambda: _first(x, W, b, dy), None
    try:
        import torch
    except ImportError:
        why = "PyTorch is not installed (pip install --target DIR torch; PYTHONPATH=DIR)"
        yield "torch", None, why
    else:
        torch.set_num_threads(numba.get_num_threads())
        xt, Wt, bt, dyt = (torch.from_numpy(a) for a in (x, W, b, dy))
        aten = torch.ops.aten
        s, p = [STRIDE, STRIDE], [PAD, PAD]

        def native():
            with torch.no_grad():
                y = aten.convolution(xt, Wt, bt, s, p, [1, 1], False, [0, 0], 1)
                dx, dW, db = aten.convolution_backward(
                    dyt, xt, Wt, [W.shape[0]], s, p, [1, 1], False, [0, 0], 1, [True] * 3
                )
            return y.numpy(), dx.numpy(), dW.numpy(), db.numpy()

        yield "torch", native, None
    problem = backend_problem("cuda")
    if problem is None:
        from numba import cuda

        on = [cuda.to_device(a) for a in (x, W, b, dy)]

        def on_gpu():
            out = _nnlib("cuda", *on)
            cuda.synchronize()
            return out

        yield "nnlib cuda", on_gpu, None
    else:
        yield "nnlib cuda", None, "cuda backend unavailable (python -m nnlib info says why)"


def _check(name, got, want, size, terms):
    """|got - want| <= 2 (L + 1) eps32 size + 4 eps32 |want|, elementwise: the classical
    bound on a float32 sum of L products, whatever their order (``terms``: L of y, dx,
    dW and db)."""
    eps = np.finfo(np.float32).eps
    for what, g, w, s, L in zip(("y", "dx", "dW", "db"), got, want, size, terms, strict=True):
        g = g.copy_to_host() if hasattr(g, "copy_to_host") else np.asarray(g)
        assert g.shape == w.shape and g.dtype == np.float32, (
            f"{what} of {name}: {g.shape} {g.dtype}"
        )
        err = np.abs(g.astype(np.float64) - w)
        bound = 2 * (L + 1) * eps * s + 4 * eps * np.abs(w)
        assert (err <= bound).all(), f"{what} of {name}: max error {err.max():.2e}"


def bench(row, repeat):
    N, C, H, Wd, F = row
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, Wd)).astype(np.float32)
    W = (rng.standard_normal((F, C, 3, 3)) * np.sqrt(2 / (9 * C))).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32)
    dy = rng.standard_normal((N, F, H, Wd)).astype(np.float32)
    f64 = [a.astype(np.float64) for a in (x, W, b, dy)]
    want = _nnlib("numpy", *f64)
    size = _nnlib("numpy", *(np.abs(a) for a in f64))  # the same sums over |terms|
    terms = (C * 9, F * 9, N * H * Wd, N * H * Wd)  # the sums behind y, dx, dW, db
    runnable, skipped = {}, {}
    for name, fn, why in contenders(x, W, b, dy):
        if fn is None:
            skipped[name] = why
            continue
        _check(name, fn(), want, size, terms)  # validate (and compile) before timing
        runnable[name] = fn
    return alternated(runnable, repeat), skipped


def _uptime():
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"load average {load} (1, 5, 15 min) on {os.cpu_count()} cores"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (5)")
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--json", help="also write the medians and the environment here")
    args = parser.parse_args()
    repeat = 5 if args.quick else args.repeat
    env = (
        f"nnlib {nnlib.__version__}, numpy {np.__version__}, numba {numba.__version__}, "
        f"{numba.get_num_threads()} threads ({numba.threading_layer()}), float32"
    )
    env += (
        f", OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
        f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT')}"
    )
    print(env)
    before = _uptime()
    print("before:", before)
    print(
        f"{'row':<17}{'contender':<12}{'median ms':>10}{'best ms':>9}"
        f"{'numpy / it':>12}{'torch / it':>12}"
    )
    results = []
    for text, row in ROWS.items():
        times, skipped = bench(row, repeat)
        med = {name: statistics.median(ts) for name, ts in times.items()}
        torch_med = med.get("torch")
        for name, ts in times.items():
            vs_torch = f"{torch_med / med[name]:>11.2f}x" if torch_med else f"{'-':>12}"
            print(
                f"{text:<17}{name:<12}{med[name] * 1e3:>10.3f}{min(ts) * 1e3:>9.3f}"
                f"{med['numpy'] / med[name]:>11.2f}x{vs_torch}"
            )
            results.append(
                {"row": text, "contender": name, "median_s": med[name], "best_s": min(ts)}
            )
        for name, why in skipped.items():
            print(f"{text:<17}{name:<12}  skipped: {why}")
            results.append({"row": text, "contender": name, "skipped": why})
    after = _uptime()
    print("after: ", after)
    if args.json:
        with open(args.json, "w") as f:
            info = {"environment": env, "before": before, "after": after, "repeat": repeat}
            json.dump({"environment": info, "rows": results}, f, indent=1)


if __name__ == "__main__":
    main()
