"""Conv2D forward + backward (dx, dW, db): nnlib's backends side by side with PyTorch's
CPU convolution, as ratios measured in one run.

    .venv/bin/python benchmarks/bench_conv.py [--quick] [--repeat 21] [--json out.json]
    PYTHONPATH=/path/to/torch .venv/bin/python benchmarks/bench_conv.py   # with the peer
    .venv/bin/python benchmarks/bench_conv.py --crossover   # direct against im2col + BLAS

Rows (float32, 3x3 kernels, stride 1, padding 1 ("same"), no activation):

* ``64x1x28x28 -> 16``: the first layer of an MNIST CNN;
* ``64x16x14x14 -> 32``: its second layer, after a 2x2 pooling.

Contenders, on the same data:

* ``numpy``: the reference (``nnlib/ops/conv.py``: sliding windows + tensordot), the spec;
* ``nnlib cpu``: the registered Numba kernels, as the layer runs them: direct loops (no
  BLAS) when C*KH*KW <= ``conv.DIRECT_MAX_CKK`` (the first row), else im2col in a prange
  loop and one BLAS product for the whole batch (the second row);
* ``cpu v1``: the first version (``conv2d_*_cpu_v1``: the formula as direct loops, one
  (image, filter) or filter a prange iteration);
* ``torch``: PyTorch's own CPU kernels called directly (``aten.convolution`` and
  ``aten.convolution_backward``, oneDNN where PyTorch has it), with as many threads as
  numba has, in a process of its own (``--torch-worker``: it imports neither nnlib nor
  Numba) that times each call itself and answers through a pipe. NOTE: in one process,
  PyTorch's OpenMP runtime and NumPy's OpenBLAS and Numba's OpenMP threads took each
  other's cores, and the BLAS-using contenders (numpy, nnlib's im2col) ran up to 6x
  slower than alone; while one process runs, the other waits on its pipe, asleep;
* ``nnlib cuda`` on GPU-resident arrays, when a GPU is present.

Every contender's y, dx, dW and db are checked against the float64 reference, within
the classical rounding bound of a float32 sum, before any timing (which also compiles the
kernels); then the contenders run alternately (A B C A B C ...) so that a noisy
neighbour slows them all alike, and the medians are compared. ``uptime`` is printed
before and after: on a shared machine a high load makes every number slower and noisier.

``--crossover`` times nnlib's two cpu strategies against each other (forward + backward,
3x3, same padding) for C = 1 ... 16 input channels, forcing each by setting
``conv.DIRECT_MAX_CKK``: where the direct kernels stop winning is the threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# NOTE: what `import nnlib` sets (see nnlib/__init__.py), set here before NumPy loads its
# OpenBLAS, so that NumPy's BLAS threads (the numpy reference's) sleep when idle too,
# instead of spinning into the next contender's time (PyTorch's OpenMP threads, loaded
# after nnlib, get OMP_WAIT_POLICY too). It applies to every contender alike.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np

STRIDE, PAD = 1, 1
ROWS = {"64x1x28x28->16": (64, 1, 28, 28, 16), "64x16x14x14->32": (64, 16, 14, 14, 32)}


def _data(row):
    """x, W, b, dy of a row (float32, seeded: the torch worker rebuilds the same data)."""
    N, C, H, Wd, F = row
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, Wd)).astype(np.float32)
    W = (rng.standard_normal((F, C, 3, 3)) * np.sqrt(2 / (9 * C))).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32)
    dy = rng.standard_normal((N, F, H, Wd)).astype(np.float32)
    return x, W, b, dy


def torch_worker(row, threads):
    """The torch contender's process: on "run" it runs forward + backward once and answers
    the seconds it took; on "save PATH" it saves y, dx, dW, db there; on "quit" it ends."""
    import torch

    torch.set_num_threads(threads)
    x, W, b, dy = _data(row)
    xt, Wt, bt, dyt = (torch.from_numpy(a) for a in (x, W, b, dy))
    aten = torch.ops.aten
    s, p = [STRIDE, STRIDE], [PAD, PAD]

    def native():
        with torch.no_grad():
            y = aten.convolution(xt, Wt, bt, s, p, [1, 1], False, [0, 0], 1)
            dx, dW, db = aten.convolution_backward(
                dyt, xt, Wt, [W.shape[0]], s, p, [1, 1], False, [0, 0], 1, [True] * 3
            )
        return y, dx, dW, db

    print(f"ready torch {torch.__version__}", flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[0] == "run":
            t0 = time.perf_counter()
            native()
            print(time.perf_counter() - t0, flush=True)
        elif command[0] == "save":
            np.savez(command[1], *(a.numpy() for a in native()))
            print("saved", flush=True)
        else:
            return


class _Torch:
    """The torch worker seen from here: ``timed()`` runs one call there and returns the
    seconds it measured; calling it returns its (y, dx, dW, db)."""

    def __init__(self, row, threads):
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); import bench_conv; "
            "bench_conv.torch_worker(tuple(map(int, sys.argv[2:-1])), int(sys.argv[-1]))"
        )
        here = os.path.dirname(os.path.abspath(__file__))
        args = [sys.executable, "-c", code, here, *map(str, row), str(threads)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.version = self._ask(None)

    def _ask(self, command):
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"the torch worker ended (exit status {self.proc.wait()})")
        return answer.strip()

    def timed(self):
        return float(self._ask("run"))

    def __call__(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "out.npz")
            self._ask(f"save {path}")
            with np.load(path) as f:
                return [f[f"arr_{i}"] for i in range(4)]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def _torch_problem():
    """None if PyTorch can be imported (in a child process, not here), else why not."""
    probe = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True)
    if probe.returncode == 0:
        return None
    return "PyTorch is not installed (pip install --target DIR torch; PYTHONPATH=DIR)"


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


def contenders(row, x, W, b, dy):
    """(name, zero-argument callable returning (y, dx, dW, db) or None, why not)."""
    yield "numpy", lambda: _nnlib("numpy", x, W, b, dy), None
    yield "nnlib cpu", lambda: _nnlib("cpu", x, W, b, dy), None
    yield "cpu v1", lambda: _first(x, W, b, dy), None
    why = _torch_problem()
    yield "torch", (None if why else _Torch(row, numba.get_num_threads())), why
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


def _alternated(runnable, repeat):
    """Seconds of each contender's calls, ``repeat`` rounds, each contender once a round
    in turn (benchmarks/_timing.py's rule): a change in the machine's load falls on all of
    them alike. The torch worker's calls are timed in its own process (``timed``)."""
    times = {name: [] for name in runnable}
    for _ in range(repeat):
        for name, fn in runnable.items():
            if hasattr(fn, "timed"):
                times[name].append(fn.timed())
                continue
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def bench(row, repeat):
    N, C, H, Wd, F = row
    x, W, b, dy = _data(row)
    f64 = [a.astype(np.float64) for a in (x, W, b, dy)]
    want = _nnlib("numpy", *f64)
    size = _nnlib("numpy", *(np.abs(a) for a in f64))  # the same sums over |terms|
    terms = (C * 9, F * 9, N * H * Wd, N * H * Wd)  # the sums behind y, dx, dW, db
    runnable, skipped = {}, {}
    try:
        for name, fn, why in contenders(row, x, W, b, dy):
            if fn is None:
                skipped[name] = why
                continue
            _check(name, fn(), want, size, terms)  # validate (and compile) before timing
            runnable[name] = fn
        return _alternated(runnable, repeat), skipped
    finally:
        for fn in runnable.values():
            if hasattr(fn, "close"):
                fn.close()


CROSSOVER = [(64, C, 28, 28, 16) for C in (1, 2, 4, 8)] + [(64, C, 14, 14, 32) for C in (8, 16)]


def crossover(repeat):
    """nnlib cpu, direct against im2col + BLAS, alternated, for C*3*3 = 9 ... 144."""
    print(f"{'row':<17}{'C*KH*KW':>8}{'direct ms':>11}{'im2col ms':>11}{'im2col / direct':>17}")
    print(f"{'':<25}{'(median, best)':>22}")
    keep = conv.DIRECT_MAX_CKK
    results = []
    try:
        for row in CROSSOVER:
            x, W, b, dy = _data(row)

            def strategy(limit, x=x, W=W, b=b, dy=dy):
                def run():
                    conv.DIRECT_MAX_CKK = limit
                    return _nnlib("cpu", x, W, b, dy)

                return run

            runnable = {"direct": strategy(10**9), "im2col": strategy(-1)}
            want = _nnlib("numpy", x, W, b, dy)
            for fn in runnable.values():  # compile, and a loose check (float32 both ways)
                for g, w in zip(fn(), want, strict=True):
                    np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-3)
            times = _alternated(runnable, repeat)
            med = {k: statistics.median(t) for k, t in times.items()}
            best = {k: min(t) for k, t in times.items()}
            N, C, H, Wd, F = row
            text = f"{N}x{C}x{H}x{Wd}->{F}"
            print(
                f"{text:<17}{C * 9:>8}{med['direct'] * 1e3:>6.2f} {best['direct'] * 1e3:>4.1f}"
                f"{med['im2col'] * 1e3:>6.2f} {best['im2col'] * 1e3:>4.1f}"
                f"{med['im2col'] / med['direct']:>10.2f}x {best['im2col'] / best['direct']:.2f}x"
            )
            results.append({"row": text, "ckk": C * 9, "median_s": med, "best_s": best})
    finally:
        conv.DIRECT_MAX_CKK = keep
    return results


def _uptime():
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"load average {load} (1, 5, 15 min) on {os.cpu_count()} cores"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (5)")
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--json", help="also write the medians and the environment here")
    parser.add_argument("--crossover", action="store_true", help="direct against im2col")
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
    if args.crossover:
        results = crossover(repeat)
        print("after: ", _uptime())
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"environment": env, "before": before, "crossover": results}, f)
        return
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
    # NOTE: nnlib (and Numba) are imported here, not at the top, so that the torch worker,
    # which imports this file, loads neither.
    import numba

    import nnlib
    from nnlib._backend import backend_problem, dispatch
    from nnlib.ops import conv

    main()
