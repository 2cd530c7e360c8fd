"""Activation functions: nnlib's backends side by side, as ratios measured in one run.

    .venv/bin/python benchmarks/bench_activations.py [--sizes 100000 1000000] [--repeat 15]

For each op and size: validate every contender against the NumPy reference first,
compile outside the timing, then time the contenders alternately (A B C A B C ...) so
that a noisy neighbour slows them all alike, and report the median and the best time
of each, the speedup of each over the NumPy reference and nnlib cpu's speed relative to
each (> 1: nnlib cpu is faster). PyTorch (CPU) is a peer when it is installed; the cuda
backend runs on GPU-resident arrays when a GPU is present. "nnlib cpu v1" is the first,
scalar version of a tuned cpu kernel (``*_cpu_v1`` in its op file), run through the same
layout. A contender that cannot run here is listed with the reason.
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
from nnlib.ops import activations, softmax
from nnlib.ops._launch import HOST, elementwise, rows
from nnlib.testing import assert_close

OPS = {  # op -> (nnlib call, torch call)
    "relu": (lambda x, b: F.relu(x, backend=b), "relu"),
    "relu_backward": (lambda x, b: F.relu_backward(x, x, backend=b), None),
    "sigmoid": (lambda x, b: F.sigmoid(x, backend=b), "sigmoid"),
    "tanh": (lambda x, b: F.tanh(x, backend=b), "tanh"),
    "gelu": (lambda x, b: F.gelu(x, backend=b), "gelu"),
    "silu": (lambda x, b: F.silu(x, backend=b), "silu"),
    "elu": (lambda x, b: F.elu(x, alpha=1.0, backend=b), "elu"),
    "softmax": (lambda x, b: F.softmax(x, backend=b), "softmax"),
    "log_softmax": (lambda x, b: F.log_softmax(x, backend=b), "log_softmax"),
}
# The first versions (scalar exp, branches) of the tuned cpu kernels, called through
# the op's own layout: same arguments, same output.
FIRST_CPU = {
    "sigmoid": (activations.sigmoid_cpu_v1, elementwise, {}),
    "tanh": (activations.tanh_cpu_v1, elementwise, {}),
    "gelu": (activations.gelu_cpu_v1, elementwise, {}),
    "silu": (activations.silu_cpu_v1, elementwise, {}),
    "elu": (activations.elu_cpu_v1, elementwise, {}),
    "softmax": (softmax.softmax_cpu_v1, rows, {"axis": 1}),
    "log_softmax": (softmax.log_softmax_cpu_v1, rows, {"axis": 1}),
}
EXTRA_ARGS = {"elu": (1.0,)}


def _first_version(op, x):
    kernel, layout, kw = FIRST_CPU[op]
    args = (x, *EXTRA_ARGS.get(op, ()))
    return lambda: layout(HOST, lambda *a, grid=None: kernel(*a), *args, **kw)


def contenders(op, x):
    """(name, zero-argument callable or None, why it cannot run) for each contender."""
    call, torch_name = OPS[op]
    yield "numpy", lambda: call(x, "numpy"), None
    yield "nnlib cpu", lambda: call(x, "cpu"), None
    if op in FIRST_CPU:
        yield "nnlib cpu v1", _first_version(op, x), None
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
    kw = {"dim": -1} if "softmax" in op else {}
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
    parser.add_argument("--threads", type=int, default=None, help="Numba and torch threads")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--ops", nargs="+", default=list(OPS), choices=list(OPS))
    args = parser.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)
    print(
        f"nnlib {nnlib.__version__}, numpy {np.__version__}, numba {numba.__version__}, "
        f"{numba.get_num_threads()} threads ({numba.threading_layer()}), float32"
    )
    print(
        f"{'op':<15}{'elements':>11}  {'contender':<14}{'median ms':>10}{'best ms':>9}"
        f"{'vs numpy':>10}{'nnlib cpu vs it':>17}"
    )
    for op in args.ops:
        for n in args.sizes:
            times, skipped = bench(op, n, args.repeat)
            base = statistics.median(times["numpy"])
            ours = statistics.median(times["nnlib cpu"])
            for name, ts in times.items():
                med = statistics.median(ts)
                print(
                    f"{op:<15}{n:>11,}  {name:<14}{med * 1e3:>10.3f}{min(ts) * 1e3:>9.3f}"
                    f"{base / med:>9.2f}x{med / ours:>16.2f}x"
                )
            for name, why in skipped.items():
                print(f"{op:<15}{n:>11,}  {name:<14}  skipped: {why}")


if __name__ == "__main__":
    main()
