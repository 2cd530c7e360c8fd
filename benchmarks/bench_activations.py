"""Activation functions: nnlib's backends side by side, as ratios measured in one run.

    .venv/bin/python benchmarks/bench_activations.py [--sizes 100000 1000000] [--repeat 15]

For each op and size: validate every contender against the NumPy reference first,
compile outside the timing, then time the contenders alternately (A B C A B C ...) so
that a noisy neighbour slows them all alike, and report the median and the best time
of each and the speedup of each over the NumPy reference. PyTorch (CPU) is a peer when
it is installed; the cuda backend runs on GPU-resident arrays when a GPU is present.
A contender that cannot run here is listed with the reason.
"""

from __future__ import annotations

import argparse
import statistics

import numba
import numpy as np
from _timing import alternated

import nnlib
import nnlib.functional as F
from nnlib._backend import backend_problem
from nnlib.testing import assert_close

OPS = {  # op -> (nnlib call, torch call)
    "relu": (lambda x, b: F.relu(x, backend=b), "relu"),
    "relu_backward": (lambda x, b: F.relu_backward(x, x, backend=b), None),
    "sigmoid": (lambda x, b: F.sigmoid(x, backend=b), "sigmoid"),
    "gelu": (lambda x, b: F.gelu(x, backend=b), "gelu"),
    "softmax": (lambda x, b: F.softmax(x, backend=b), "softmax"),
}


def contenders(op, x):
    """(name, zero-argument callable or None, why it cannot run) for each contender."""
    call, torch_name = OPS[op]
    yield "numpy", lambda: call(x, "numpy"), None
    yield "nnlib cpu", lambda: call(x, "cpu"), None
    problem = backend_problem("cuda")
    if problem is None:
        from numba import cuda

        x_gpu = cuda.to_device(x)  # the copy to the GPU is not part of the op's time

        def on_gpu():
            y = call(x_gpu, "cuda")
            cuda.synchronize()
            return y

        yield "nnlib cuda", on_gpu, None
    else:
        yield "nnlib cuda", None, "cuda backend unavailable (python -m nnlib info says why)"
    try:
        import torch
    except ImportError:
        yield "torch cpu", None, "PyTorch is not installed"
        return
    torch.set_num_threads(numba.get_num_threads())
    if torch_name is None:
        yield "torch cpu", None, "no single torch op for this"
        return
    fn = getattr(torch.nn.functional, torch_name)
    kw = {"dim": -1} if op == "softmax" else {}
    xt = torch.from_numpy(x)
    yield "torch cpu", lambda: fn(xt, **kw).numpy(), None


def bench(op, n, repeat):
    x = np.random.default_rng(0).standard_normal((n // 100, 100)).astype(np.float32)
    want = OPS[op][0](x, "numpy")
    runnable, skipped = {}, {}
    for name, fn, why in contenders(op, x):
        if fn is None:
            skipped[name] = why
            continue
        assert_close(fn(), want, name=f"{op} on {name}")  # validate (and compile) first
        runnable[name] = fn
    return alternated(runnable, repeat), skipped


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--ops", nargs="+", default=list(OPS), choices=list(OPS))
    args = parser.parse_args()
    print(
        f"nnlib {nnlib.__version__}, numpy {np.__version__}, numba {numba.__version__}, "
        f"{numba.get_num_threads()} threads ({numba.threading_layer()}), float32"
    )
    print(
        f"{'op':<15}{'elements':>11}  {'contender':<12}{'median ms':>10}{'best ms':>9}"
        f"{'speedup vs numpy (median)':>27}"
    )
    for op in args.ops:
        for n in args.sizes:
            times, skipped = bench(op, n, args.repeat)
            base = statistics.median(times["numpy"])
            for name, ts in times.items():
                med = statistics.median(ts)
                print(
                    f"{op:<15}{n:>11,}  {name:<12}{med * 1e3:>10.3f}{min(ts) * 1e3:>9.3f}"
                    f"{base / med:>26.2f}x"
                )
            for name, why in skipped.items():
                print(f"{op:<15}{n:>11,}  {name:<12}  skipped: {why}")


if __name__ == "__main__":
    main()
