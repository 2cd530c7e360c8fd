"""The cuda backend at speed: nnlib's CUDA kernels against PyTorch on the same GPU.

    .venv/bin/python benchmarks/bench_cuda.py [--quick] [--json out.json]
    NUMBA_ENABLE_CUDASIM=1 .venv/bin/python benchmarks/bench_cuda.py --validate-only

Every row validates nnlib's result against the NumPy reference (backend="numpy") before
it is timed; a row whose validation fails is reported INVALID and not timed, and the
script then exits 1. The first launch of each contender (Numba's and PyTorch's
compilation, cuBLAS's heuristics) happens before the timing. Each sample is bracketed by
``cuda.synchronize()`` (``torch.cuda.synchronize()`` for PyTorch), nnlib and its peer are
timed alternately (A B A B ...), and the best and the median of the samples are reported.
PyTorch runs float32 with TF32 off, so both sides compute in full float32.

Rows (float32; the target is for an NVIDIA H100):

* ``copy``: device-to-device copy bandwidth, a numba-cuda copy kernel and the driver's
  copy (``DeviceNDArray.copy_to_device`` from another device array); the yardstick of
  the elementwise rows.
* ``relu``, ``relu_backward``: elementwise kernels, as GB/s of the bytes they must move;
  target >= 85% of the kernel copy's bandwidth.
* ``bias_relu_forward``, ``bias_relu_backward``: Dense's bias + ReLU work, fused into the
  matrix products (no elementwise pass exists): the fused product vs the plain one,
  and the bandwidth a separate pass would need to cost no more than the fusion does;
  target >= 85% of the kernel copy's bandwidth.
* ``softmax_cross_entropy``: the fused forward + backward (loss sums and the gradient
  in one kernel) vs ``F.cross_entropy`` forward + backward; target >= 80% of PyTorch's
  throughput.
* ``matmul``: the tiled ``gemm_cuda`` vs ``torch.mm`` (cuBLAS); target >= 50% of cuBLAS
  at 4096 x 4096; the awkward sizes are validated and timed for the record.
* ``... (first version)``: the readable first version of a tuned kernel (llm.c's
  kernel 1: ``matmul_first_cuda``, one thread an output; ``softmax_cross_entropy_first_cuda``,
  one thread a row), validated, then timed beside the tuned kernel; the ratio is the
  first version's time over the tuned kernel's (what the tuning buys).
* ``train_step``: forward, loss, backward and Adam update of a 784-256-10 ReLU MLP at
  batch 128 on GPU-resident data (the body of ``fit``'s loop) vs PyTorch eager; target
  >= 2x faster. Kernel launches and host/device copies per step are counted.

Without a GPU every row is printed as skipped with the reason and the script exits 0.
``--validate-only`` runs every validation at tiny sizes and times nothing: under
``NUMBA_ENABLE_CUDASIM=1`` it exercises the validation code on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from nnlib._cuda import SIMULATOR  # the one reading of NUMBA_ENABLE_CUDASIM

try:  # NOTE: a module global, so that the simulator can swap it inside kernels
    from numba import cuda
except ImportError:  # pragma: no cover - reported by gpu_problem()
    cuda = None
EPS32 = float(np.finfo(np.float32).eps)


@dataclass
class Row:
    name: str
    size: str
    target: str
    status: str = "skipped"  # skipped | invalid | validated | met | missed | recorded
    reason: str = ""
    nnlib: dict = field(default_factory=dict)  # {"best": s, "median": s}
    peer: dict = field(default_factory=dict)
    ratio: float | None = None
    extra: dict = field(default_factory=dict)  # GB/s, launches per step, ...


# ---------------------------------------------------------------------- validation


def check(name, got, want, *, bound=None, dtype=None):
    """Raise AssertionError unless ``got`` matches the reference ``want``.

    Without ``bound``: nnlib's tolerance table (``nnlib.testing.assert_close``, the
    dtype of ``want``, or ``dtype``). With ``bound`` (an array of the shape of ``want``): every
    element must satisfy ``|got - want| <= bound``; used for matrix products, where the
    rounding error grows with the length of the sum.
    """
    from nnlib.testing import assert_close, to_host

    if bound is None:
        assert_close(got, want, dtype=dtype, name=name)
        return
    got, want = to_host(got), np.asarray(want)
    if got.shape != want.shape:
        raise AssertionError(f"{name}: shape {got.shape}, expected {want.shape}")
    if not np.all(np.isfinite(got)):
        raise AssertionError(f"{name}: non-finite values in the result")
    err = np.abs(got.astype(np.float64) - want)
    excess = err - bound
    if excess.max(initial=-1.0) > 0:
        i = tuple(int(j) for j in np.unravel_index(np.argmax(excess), err.shape))
        raise AssertionError(
            f"{name}: max abs error {err.max():.3g}; worst element {i}: expected "
            f"{want[i]:.8g}, got {got[i]:.8g} (bound {bound[i]:.3g})"
        )


def gemm_bound(A, B):
    """The classical bound on a float32 dot product's rounding, element by element:
    |fl(op(A) @ op(B)) - exact| <= gamma_L * (|op(A)| @ |op(B)|), gamma_L ~ L * eps,
    plus a few ulps of the result (2 * L * eps covers the final rounding and a bias)."""
    L = A.shape[1]
    return 2.0 * max(L, 1) * EPS32 * (np.abs(A).astype(np.float64) @ np.abs(B).astype(np.float64))


# ---------------------------------------------------------------------- timing


def timed(fn, sync, repeat, min_sample_s):
    """Samples of the time of one call to ``fn``, each the mean of enough back-to-back
    calls to last ``min_sample_s``, synchronised before and after."""
    fn()  # warm-up: compilation and first-launch costs stay out of the timing
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    once = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(min_sample_s / once))

    def sample():
        sync()
        t = time.perf_counter()
        for _ in range(number):
            fn()
        sync()
        return (time.perf_counter() - t) / number

    return sample


def race(fns, sync, repeat, min_sample_s):
    """Time the callables alternately; {name: {"best", "median"}} in seconds."""
    samplers = {k: timed(f, sync[k], repeat, min_sample_s) for k, f in fns.items()}
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, s in samplers.items():
            times[k].append(s())
    return {k: {"best": min(v), "median": statistics.median(v)} for k, v in times.items()}


# ---------------------------------------------------------------------- counting


@contextlib.contextmanager
def count_launches():
    """Count CUDA kernel launches (every ``kernel[grid, block](...)`` call)."""
    counts = {"launches": 0}
    if SIMULATOR:
        from numba.cuda.simulator.kernel import FakeCUDAKernel as cls

        def call(self, *args, _orig=cls.__call__):
            if not self._device:
                counts["launches"] += 1
            return _orig(self, *args)
    else:
        from numba.cuda.dispatcher import _LaunchConfiguration as cls

        def call(self, *args, _orig=cls.__call__):
            counts["launches"] += 1
            return _orig(self, *args)

    saved = cls.__call__
    cls.__call__ = call
    try:
        yield counts
    finally:
        cls.__call__ = saved


@contextlib.contextmanager
def count_transfers():
    """Count host-to-device and device-to-host copies by every path.

    On a GPU every copy ends in one of the driver's ``cuMemcpyHtoD``,
    ``cuMemcpyHtoDAsync``, ``cuMemcpyDtoH`` or ``cuMemcpyDtoHAsync``: ``cuda.to_device``,
    ``copy_to_host``, ``copy_to_device`` from a host array and reading an element of a
    device array go through ``driver.host_to_device``/``device_to_host``, while the
    implicit copies Numba makes when a NumPy array is passed to a kernel call the driver
    directly (numba-cuda 0.30: ``_to_strided_memory_view`` and ``args.Out``), so those
    four entry points are counted. The simulator has no driver: there
    ``cuda.to_device``, ``copy_to_host``, ``copy_to_device`` from a host array and NumPy
    arrays passed to a kernel (copied in, and back out by ``copy_to_host`` after the
    launch) are counted. (Reading an element of a simulated device array is not seen:
    it is plain NumPy indexing there.)
    """
    counts = {"to_device": 0, "to_host": 0}
    patches = []  # (owner, name, original)

    def patch(owner, name, wrapper):
        own = name in vars(owner)  # NOTE: the Driver object resolves its functions lazily
        patches.append((owner, name, getattr(owner, name) if own else None))
        setattr(owner, name, wrapper(getattr(owner, name)))

    def counting(key, test=lambda *a, **kw: True):
        def wrapper(orig):
            def run(*a, **kw):
                if test(*a, **kw):
                    counts[key] += 1
                return orig(*a, **kw)

            return run

        return wrapper

    if SIMULATOR:
        from numba.cuda.simulator.cudadrv import devicearray as sim
        from numba.cuda.simulator.kernel import FakeCUDAKernel

        def host_args(self, *args):
            n = sum(isinstance(a, np.ndarray) and a.ndim > 0 for a in args)
            if not self._device and n:
                # NOTE: the copies back after the launch go through copy_to_host
                counts["to_device"] += n
            return False

        patch(cuda, "to_device", counting("to_device"))
        patch(sim.FakeCUDAArray, "copy_to_host", counting("to_host"))
        patch(
            sim.FakeCUDAArray,
            "copy_to_device",
            counting("to_device", lambda self, ary, *a, **kw: isinstance(ary, np.ndarray)),
        )
        patch(FakeCUDAKernel, "__call__", counting("to_device", host_args))
    else:
        from numba.cuda.cudadrv.driver import driver

        for name in ("cuMemcpyHtoD", "cuMemcpyHtoDAsync"):
            patch(driver, name, counting("to_device"))
        for name in ("cuMemcpyDtoH", "cuMemcpyDtoHAsync"):
            patch(driver, name, counting("to_host"))
    try:
        yield counts
    finally:
        for owner, name, orig in reversed(patches):
            if orig is None:
                delattr(owner, name)
            else:
                setattr(owner, name, orig)


# ---------------------------------------------------------------------- the rows


def _copy_kernel():
    """A numba-cuda copy kernel, out[i] = x[i]: the elementwise rows' yardstick."""

    @cuda.jit
    def copy_kernel(x, out):  # x, out: (n,)
        i = cuda.grid(1)
        if i < x.size:
            out[i] = x[i]

    return copy_kernel


def rows_plan(quick, tiny):
    """(row, run) pairs; ``run(row, ctx)`` fills the row."""
    if tiny:  # the simulator: a few hundred threads per launch at most
        n_elem, sce, mm, awkward, mlp, batch = (
            200,
            (6, 5),
            9,
            [(1, 1, 1), (17, 5, 7)],
            (12, 8, 3),
            6,
        )
    elif quick:
        n_elem, sce, mm, awkward, mlp, batch = (
            1 << 24,
            (4096, 1000),
            2048,
            [(17, 1000, 1)],
            (784, 256, 10),
            128,
        )
    else:
        n_elem, sce, mm, awkward, mlp, batch = (
            1 << 26,
            (8192, 1000),
            4096,
            [(1, 4096, 4096), (17, 1000, 17), (1000, 1000, 1000), (1000, 17, 4099)],
            (784, 256, 10),
            128,
        )
    plan = [
        (
            Row("copy (kernel)", f"{n_elem}", "yardstick"),
            lambda r, c: run_copy(r, c, n_elem, "kernel"),
        ),
        (
            Row("copy (driver)", f"{n_elem}", "yardstick"),
            lambda r, c: run_copy(r, c, n_elem, "driver"),
        ),
        (
            Row("relu", f"{n_elem}", ">= 85% of copy GB/s"),
            lambda r, c: run_elementwise(r, c, n_elem),
        ),
        (
            Row("relu_backward", f"{n_elem}", ">= 85% of copy GB/s"),
            lambda r, c: run_elementwise(r, c, n_elem),
        ),
    ]
    fused = (8192, 1024, 1024) if not tiny else (19, 6, 11)  # N x D -> H
    for name in ("bias_relu_forward", "bias_relu_backward"):
        plan.append(
            (
                Row(name, "x".join(map(str, fused)), ">= 85% of copy GB/s"),
                lambda r, c: run_fused(r, c, *fused),
            )
        )
    plan.append(
        (
            Row("softmax_cross_entropy", f"{sce[0]}x{sce[1]}", ">= 0.8x torch"),
            lambda r, c: run_sce(r, c, *sce),
        )
    )
    plan.append(
        (
            Row("softmax_cross_entropy (first version)", f"{sce[0]}x{sce[1]}", "beside tuned"),
            lambda r, c: run_first_version(r, c, "softmax_cross_entropy", sce),
        )
    )
    plan.append(
        (
            Row("matmul", f"{mm}x{mm}x{mm}", ">= 0.5x cuBLAS"),
            lambda r, c: run_matmul(r, c, mm, mm, mm),
        )
    )
    first_mm = (mm // 2,) * 3 if not tiny else (9, 5, 7)  # the first version is slow
    plan.append(
        (
            Row("matmul (first version)", "x".join(map(str, first_mm)), "beside tuned"),
            lambda r, c: run_first_version(r, c, "matmul", first_mm),
        )
    )
    for m, l, k in awkward:
        plan.append(
            (
                Row("matmul", f"{m}x{l}x{k}", "correct"),
                lambda r, c, m=m, l=l, k=k: run_matmul(r, c, m, l, k),
            )
        )
    plan.append(
        (
            Row("adam_update", f"{mlp[0] * mlp[1]}", "part of train_step"),
            lambda r, c: run_adam(r, c, mlp[0] * mlp[1]),
        )
    )
    plan.append(
        (
            Row("train_step", f"{'-'.join(map(str, mlp))} N={batch}", ">= 2x torch eager"),
            lambda r, c: run_train_step(r, c, mlp, batch),
        )
    )
    return plan


class Context:
    def __init__(self, args, torch_problem):
        from numba import cuda

        from nnlib._backend import resolve_backend

        resolve_backend("cuda")  # makes nnlib's CUDA kernels (they are made on first use)
        self.cuda = cuda
        self.validate_only = args.validate_only
        self.repeat = 5 if args.quick else 15
        self.min_sample_s = 0.005 if args.quick else 0.02
        self.torch_problem = torch_problem
        self.rng = np.random.default_rng(0)
        self.copy_gbs = None

    def time(self, row, mine, peer=None, *, rate=None, peer_is_nnlib=False):
        """Time ``mine`` (and ``peer``) into ``row``; rate: bytes for GB/s.
        ``peer_is_nnlib``: the peer is another nnlib kernel (no PyTorch needed)."""
        if self.validate_only:
            row.status, row.reason = "validated", "--validate-only: not timed"
            return
        fns, sync = {"nnlib": mine}, {"nnlib": self.cuda.synchronize}
        if peer is not None and peer_is_nnlib:
            fns["peer"], sync["peer"] = peer, self.cuda.synchronize
        elif peer is not None and self.torch_problem is None:
            import torch

            fns["peer"], sync["peer"] = peer, torch.cuda.synchronize
        t = race(fns, sync, self.repeat, self.min_sample_s)
        row.nnlib = t["nnlib"]
        row.peer = t.get("peer", {})
        if rate is not None:
            row.extra["GB/s"] = rate / row.nnlib["best"] / 1e9
        row.status = "recorded"


def _torch():
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch


def run_copy(row, ctx, n, how):
    cuda = ctx.cuda
    x = ctx.rng.standard_normal(n).astype(np.float32)
    d_x, d_out = cuda.to_device(x), cuda.device_array(n, np.float32)
    if how == "kernel":
        kernel = _copy_kernel()
        blocks = (n + 255) // 256

        def mine():
            kernel[blocks, 256](d_x, d_out)
    else:

        def mine():
            d_out.copy_to_device(d_x)

    mine()
    check(row.name, d_out, x)
    peer = None
    if ctx.torch_problem is None and not ctx.validate_only:
        torch = _torch()
        tx, tout = torch.from_numpy(x).cuda(), torch.empty(n, device="cuda")

        def peer():
            tout.copy_(tx)

    ctx.time(row, mine, peer, rate=2 * 4 * n)
    if ctx.validate_only:
        return
    if row.peer:
        row.ratio = row.peer["best"] / row.nnlib["best"]
    if how == "kernel":
        ctx.copy_gbs = row.extra["GB/s"]
    row.reason = "torch peer: Tensor.copy_"


def _vs_copy(row, ctx):
    if ctx.validate_only:
        return
    if ctx.copy_gbs is None:
        row.status, row.reason = "recorded", "no copy bandwidth measured"
        return
    row.ratio = row.extra["GB/s"] / ctx.copy_gbs
    row.status = "met" if row.ratio >= 0.85 else "missed"
    row.reason = "ratio: GB/s over the copy kernel's GB/s; torch time shown for reference"


def run_elementwise(row, ctx, n):
    import nnlib.functional as F

    cuda = ctx.cuda
    x = ctx.rng.standard_normal(n).astype(np.float32)
    dy = ctx.rng.standard_normal(n).astype(np.float32)
    d_x, d_dy = cuda.to_device(x), cuda.device_array(n, np.float32)
    d_dy.copy_to_device(dy)
    peer = None
    torch_ok = ctx.torch_problem is None and not ctx.validate_only
    if torch_ok:
        torch = _torch()
        tx, tdy = torch.from_numpy(x).cuda(), torch.from_numpy(dy).cuda()
    if row.name == "relu":
        check("relu", F.relu(d_x, backend="cuda"), F.relu(x, backend="numpy"))

        def mine():
            F.relu(d_x, backend="cuda")

        if torch_ok:

            def peer():
                torch.relu(tx)

        moved = 2 * 4 * n
    else:
        want = F.relu_backward(dy, x, backend="numpy")
        check("relu_backward", F.relu_backward(d_dy, d_x, backend="cuda"), want)

        def mine():
            F.relu_backward(d_dy, d_x, backend="cuda")

        if torch_ok:

            def peer():
                torch.ops.aten.threshold_backward(tdy, tx, 0)

        moved = 3 * 4 * n
    ctx.time(row, mine, peer, rate=moved)
    _vs_copy(row, ctx)


def run_fused(row, ctx, n, d, h):
    """The bias + ReLU work of Dense, which nnlib fuses into its matrix products: the
    forward's epilogue (``y = relu(x @ W + b)``) and the backward's masked loads and
    column sums (``dW = x.T @ dz`` and ``db = sum_n dz`` with ``dz = dy * relu'(y)``
    formed while loading). There is no elementwise pass to time, so the row times the
    fused product against the plain product at the same size, alternately; the
    difference is what the fusion costs. Its figure is the bandwidth a separate
    elementwise pass would need to be as cheap: the bytes that pass would move (forward:
    read z, write y; backward: read dy and y, write dz) over the extra time."""
    from nnlib.ops import dense

    cuda = ctx.cuda
    rng = ctx.rng
    x = rng.standard_normal((n, d)).astype(np.float32)
    d_x = cuda.to_device(x)
    if row.name == "bias_relu_forward":
        W = rng.standard_normal((d, h)).astype(np.float32)
        b = rng.standard_normal(h).astype(np.float32)
        d_W, d_b, C = cuda.to_device(W), cuda.to_device(b), cuda.device_array((n, h), np.float32)

        def fused():
            dense._gemm(d_x, d_W, 0, 0, d_b, 1, C)

        def plain():
            dense._gemm(d_x, d_W, 0, 0, None, 0, C)

        fused()
        want = dense.dense_forward_ref(x.astype(np.float64), W.astype(np.float64), b, 1)
        check("bias_relu_forward", C, want, bound=gemm_bound(x, W) + 2 * EPS32 * np.abs(b))
        moved = 2 * 4 * n * h
    else:
        dy = rng.standard_normal((n, h)).astype(np.float32)
        y = np.maximum(rng.standard_normal((n, h)), 0).astype(np.float32)
        d_dy, d_y = cuda.to_device(dy), cuda.to_device(y)
        dW, db = cuda.device_array((d, h), np.float32), cuda.device_array(h, np.float32)

        def fused():
            dense._gemm(d_x, d_dy, 1, 0, None, 0, dW, mask_b=d_y, colsum=db)

        def plain():
            dense._gemm(d_x, d_dy, 1, 0, None, 0, dW)

        fused()
        dz = np.where(y > 0, dy, 0).astype(np.float32)
        check("bias_relu_backward dW", dW, x.T.astype(np.float64) @ dz, bound=gemm_bound(x.T, dz))
        ones = np.ones((1, n), np.float32)
        want_db = dz.sum(axis=0, dtype=np.float64)
        check("bias_relu_backward db", db, want_db, bound=gemm_bound(ones, np.abs(dz))[0])
        moved = 3 * 4 * n * h
    if ctx.validate_only:
        row.status, row.reason = "validated", "--validate-only: not timed"
        return
    sync = {"fused": cuda.synchronize, "plain": cuda.synchronize}
    t = race({"fused": fused, "plain": plain}, sync, ctx.repeat, ctx.min_sample_s)
    row.nnlib, row.peer = t["fused"], {}
    extra = t["fused"]["best"] - t["plain"]["best"]
    row.extra["plain matmul s"] = t["plain"]["best"]
    row.extra["fusion overhead"] = extra / t["plain"]["best"]
    if ctx.copy_gbs is None:
        row.status, row.reason = "recorded", "no copy bandwidth measured"
        return
    if extra <= 0:
        row.ratio, row.status = float("inf"), "met"
        row.reason = "the fused product was no slower than the plain one"
        return
    row.extra["GB/s"] = moved / extra / 1e9
    row.ratio = row.extra["GB/s"] / ctx.copy_gbs
    row.status = "met" if row.ratio >= 0.85 else "missed"
    row.reason = (
        "ratio: the bytes a separate pass would move over the fusion's extra time, "
        "against the copy kernel's GB/s"
    )


def run_sce(row, ctx, n, c):
    from nnlib._backend import dispatch

    cuda = ctx.cuda
    z = (3 * ctx.rng.standard_normal((n, c))).astype(np.float32)
    labels = ctx.rng.integers(0, c, n).astype(np.int64)
    scale = 1.0 / n
    acc_ref = np.zeros(2)
    want = dispatch("softmax_cross_entropy", "numpy")(z, labels, scale, acc_ref)
    d_z, d_labels = cuda.to_device(z), cuda.to_device(labels)
    d_acc = cuda.to_device(np.zeros(2))
    op = dispatch("softmax_cross_entropy", "cuda")
    check("softmax_cross_entropy grad", op(d_z, d_labels, scale, d_acc), want)
    # NOTE: the sums are float64, of float32 terms: float32's tolerance
    check("softmax_cross_entropy loss sum", d_acc.copy_to_host(), acc_ref, dtype=np.float32)

    def mine():
        op(d_z, d_labels, scale, d_acc)

    peer = None
    if ctx.torch_problem is None and not ctx.validate_only:
        torch = _torch()
        tz = torch.from_numpy(z).cuda().requires_grad_()
        tl = torch.from_numpy(labels).cuda()

        def peer():
            tz.grad = None
            torch.nn.functional.cross_entropy(tz, tl).backward()

    ctx.time(row, mine, peer)
    if row.peer:
        row.ratio = row.peer["best"] / row.nnlib["best"]
        row.status = "met" if row.ratio >= 0.8 else "missed"
        row.reason = "ratio: torch time over nnlib time (throughput)"


def run_matmul(row, ctx, m, l, k):
    from nnlib.ops import dense

    cuda = ctx.cuda
    A = ctx.rng.standard_normal((m, l)).astype(np.float32)
    B = ctx.rng.standard_normal((l, k)).astype(np.float32)
    want = dense.dense_forward_ref(A.astype(np.float64), B.astype(np.float64), 0.0, 0)
    d_A, d_B = cuda.to_device(A), cuda.to_device(B)
    C = cuda.device_array((m, k), np.float32)

    def mine():
        dense._gemm(d_A, d_B, 0, 0, None, 0, C)

    mine()
    check(f"matmul {row.size}", C, want, bound=gemm_bound(A, B))
    peer = None
    if ctx.torch_problem is None and not ctx.validate_only:
        torch = _torch()
        tA, tB = torch.from_numpy(A).cuda(), torch.from_numpy(B).cuda()
        tC = torch.empty((m, k), device="cuda")

        def peer():
            torch.mm(tA, tB, out=tC)

    ctx.time(row, mine, peer)
    if ctx.validate_only:
        return
    row.extra["TFLOP/s"] = 2 * m * l * k / row.nnlib["best"] / 1e12
    if row.peer:
        row.ratio = row.peer["best"] / row.nnlib["best"]
        if row.target != "correct":
            row.status = "met" if row.ratio >= 0.5 else "missed"
        row.reason = "ratio: cuBLAS time over nnlib time"


def run_first_version(row, ctx, what, size):
    """The first version of a tuned kernel: validated against the reference (as the tuned
    one is, just before), then timed beside the tuned kernel on the same data."""
    from nnlib._backend import dispatch
    from nnlib.ops import dense
    from nnlib.ops._launch import first_version

    cuda = ctx.cuda
    runs = {}  # first (True) or tuned (False) -> a call of the kernel on the data
    if what == "matmul":
        m, l, k = size
        A = ctx.rng.standard_normal((m, l)).astype(np.float32)
        B = ctx.rng.standard_normal((l, k)).astype(np.float32)
        want = dense.dense_forward_ref(A.astype(np.float64), B.astype(np.float64), 0.0, 0)
        d_A, d_B = cuda.to_device(A), cuda.to_device(B)
        C = cuda.device_array((m, k), np.float32)
        for first in (True, False):
            runs[first] = functools.partial(dense._gemm, d_A, d_B, 0, 0, None, 0, C, first=first)
            runs[first]()
            check(f"{row.name} {row.size}", C, want, bound=gemm_bound(A, B))
    else:
        n, c = size
        z = (3 * ctx.rng.standard_normal((n, c))).astype(np.float32)
        labels = ctx.rng.integers(0, c, n).astype(np.int64)
        acc_ref = np.zeros(2)
        want = dispatch("softmax_cross_entropy", "numpy")(z, labels, 1.0 / n, acc_ref)
        d_z, d_labels = cuda.to_device(z), cuda.to_device(labels)
        for first, op in ((True, first_version(what)), (False, dispatch(what, "cuda"))):
            d_acc = cuda.to_device(np.zeros(2))
            runs[first] = functools.partial(op, d_z, d_labels, 1.0 / n, d_acc)
            check(f"{row.name} grad", runs[first](), want)
            check(f"{row.name} loss sum", d_acc.copy_to_host(), acc_ref, dtype=np.float32)
    ctx.time(row, runs[True], runs[False], peer_is_nnlib=True)
    if row.peer:
        row.ratio = row.nnlib["best"] / row.peer["best"]
        row.reason = "ratio: first-version time over tuned time (peer: the tuned kernel)"


def run_adam(row, ctx, n):
    from nnlib._backend import dispatch

    cuda = ctx.cuda
    p, g = (
        ctx.rng.standard_normal(n).astype(np.float32),
        ctx.rng.standard_normal(n).astype(np.float32),
    )
    m, v = (
        (0.1 * ctx.rng.standard_normal(n)).astype(np.float32),
        ctx.rng.random(n).astype(np.float32),
    )
    hyper = (1e-3, 0.9, 0.999, 1e-8, 0.0, 0, 3)
    ref = [a.copy() for a in (p, g, m, v)]
    dispatch("adam_update", "numpy")(*ref, *hyper)
    dev = [cuda.to_device(a) for a in (p, g, m, v)]
    op = dispatch("adam_update", "cuda")
    op(*dev, *hyper)
    for name, got, want in zip("pgmv", dev, ref, strict=True):
        check(f"adam_update {name}", got, want)

    def mine():
        op(*dev, *hyper)

    ctx.time(row, mine, None, rate=7 * 4 * n)
    if not ctx.validate_only:
        row.reason = "no peer (timed for the record)"


def _mlp(sizes, seed=0):
    import nnlib as nl

    layers = [
        nl.Dense(sizes[0], sizes[1], init="he", activation="relu"),
        nl.Dense(sizes[1], sizes[2]),
    ]
    return nl.Sequential(layers, seed=seed)


def _prepared_step(model, backend, lr=1e-3):
    """The training step ``Sequential.fit`` runs on ``backend`` (nnlib.training.TrainStep),
    for data already there: forward, loss, backward, and one optimizer update of every
    parameter on the flat parameter, gradient and state buffers."""
    import nnlib as nl
    from nnlib import losses
    from nnlib.training import TrainStep

    loss_fn = losses.get("softmax_cross_entropy", "mean")
    return TrainStep(model, loss_fn, nl.optim.Adam(lr=lr), backend), loss_fn


def run_train_step(row, ctx, sizes, batch):
    from nnlib.testing import to_host

    cuda = ctx.cuda
    X = ctx.rng.standard_normal((batch, sizes[0])).astype(np.float32)
    y = ctx.rng.integers(0, sizes[2], batch)
    ref_model, model = _mlp(sizes), _mlp(sizes)
    ref_step, loss_fn = _prepared_step(ref_model, "numpy")
    step, _ = _prepared_step(model, "cuda")
    targets = loss_fn.prepare(y, sizes[2], np.float32)
    acc_ref = np.zeros(2)
    ref_step(X, targets, acc_ref)
    d_X, d_t, d_acc = cuda.to_device(X), cuda.to_device(targets), cuda.to_device(np.zeros(2))
    step(d_X, d_t, d_acc)
    check("train_step loss sum", d_acc.copy_to_host(), acc_ref, dtype=np.float32)
    for (name, g), g_ref in zip(
        sorted(model.gradients().items()),
        [g for _, g in sorted(ref_model.gradients().items())],
        strict=True,
    ):
        g, g_ref = to_host(g), np.asarray(g_ref)
        check(
            f"train_step grad {name}",
            g,
            g_ref,
            bound=np.full(g_ref.shape, 1e-4 * np.abs(g_ref).max() + 1e-6),
        )
    for name, p in sorted(model.parameters().items()):
        # NOTE: Adam's first step moves each weight by about lr * sign(g): a gradient
        # that rounds to the other sign moves it 2 * lr the other way, so the bound is
        # 2 * lr where the gradient is tiny and float32 rounding elsewhere.
        p_ref = ref_model.parameters()[name]
        g_ref = ref_model.gradients()[name]
        tiny = np.abs(g_ref) < 1e-4 * np.abs(g_ref).max() + 1e-6
        bound = np.where(tiny, 2.1e-3, 1e-5 + 1e-5 * np.abs(p_ref))
        check(f"train_step param {name}", to_host(p), p_ref, bound=bound)

    def mine():
        step(d_X, d_t, d_acc)

    with count_launches() as launches, count_transfers() as copies:
        for _ in range(3):
            mine()
    row.extra["launches/step"] = launches["launches"] / 3
    row.extra["copies/step"] = (copies["to_device"] + copies["to_host"]) / 3
    peer = None
    if ctx.torch_problem is None and not ctx.validate_only:
        torch = _torch()
        net = torch.nn.Sequential(
            torch.nn.Linear(sizes[0], sizes[1]),
            torch.nn.ReLU(),
            torch.nn.Linear(sizes[1], sizes[2]),
        ).cuda()
        topt = torch.optim.Adam(net.parameters(), lr=1e-3)  # PyTorch's default: foreach
        tX, ty = torch.from_numpy(X).cuda(), torch.from_numpy(y).cuda()

        def peer():
            topt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(tX), ty).backward()
            topt.step()

    ctx.time(row, mine, peer)
    if row.peer:
        row.ratio = row.peer["best"] / row.nnlib["best"]
        row.status = "met" if row.ratio >= 2.0 else "missed"
        row.reason = "ratio: torch eager time over nnlib time"


# ---------------------------------------------------------------------- report


def environment():
    info = {"python": platform.python_version(), "numpy": np.__version__, "simulator": SIMULATOR}
    try:
        import numba

        info["numba"] = numba.__version__
        import numba_cuda

        info["numba_cuda"] = getattr(numba_cuda, "__version__", "?")
    except ImportError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        pass
    try:
        from numba import cuda

        if cuda.is_available() and not SIMULATOR:
            dev = cuda.get_current_device()
            info["gpu"] = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
            info["driver"] = ".".join(map(str, cuda.cudadrv.driver.driver.get_version()))
    except Exception as exc:  # reported, not fatal
        info["gpu"] = f"unknown ({exc})"
    return info


def _ms(t):
    return f"{t['best'] * 1e3:.4f}/{t['median'] * 1e3:.4f}" if t else "-"


def table(rows):
    head = (
        "name",
        "size",
        "nnlib ms best/med",
        "peer ms best/med",
        "ratio",
        "target",
        "status",
        "notes",
    )
    lines = [head]
    for r in rows:
        notes = ", ".join(f"{k} {v:.3g}" for k, v in r.extra.items())
        notes = "; ".join(x for x in (notes, r.reason) if x)
        ratio = f"{r.ratio:.3f}" if r.ratio is not None else "-"
        lines.append((r.name, r.size, _ms(r.nnlib), _ms(r.peer), ratio, r.target, r.status, notes))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
        for line in lines
    )


def gpu_problem():
    """Why no CUDA kernel can run here, or None."""
    try:
        from numba import cuda
    except ImportError as exc:
        return f"numba-cuda is not installed ({exc})"
    try:
        import numba_cuda  # noqa: F401
    except ImportError:
        return "numba-cuda is not installed (pip install '.[cuda]')"
    if not cuda.is_available():
        return "no CUDA GPU available (numba.cuda.is_available() is False)"
    return None


def torch_problem(validate_only):
    if validate_only:
        return "--validate-only: no peers"
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if SIMULATOR or not torch.cuda.is_available():
        return "PyTorch has no CUDA device here (torch.cuda.is_available() is False)"
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument(
        "--validate-only", action="store_true", help="validate at tiny sizes, time nothing"
    )
    parser.add_argument("--json", help="also write the rows and the environment here")
    args = parser.parse_args(argv)
    if SIMULATOR and not args.validate_only:
        parser.error(
            "under NUMBA_ENABLE_CUDASIM=1 only --validate-only makes sense (nothing to time)"
        )

    plan = rows_plan(args.quick, tiny=args.validate_only)
    rows = [row for row, _ in plan]
    problem = gpu_problem()
    if problem is None:
        ctx = Context(args, torch_problem(args.validate_only))
        for row, run in plan:
            try:
                run(row, ctx)
            except AssertionError as exc:
                row.status, row.reason = "INVALID", f"validation failed: {exc}"
            if row.status == "skipped" and not row.reason:
                row.reason = ctx.torch_problem or ""
        if ctx.torch_problem:
            print(f"peers skipped: {ctx.torch_problem}")
    else:
        for row in rows:
            row.status, row.reason = "skipped", problem
    info = environment()
    print(", ".join(f"{k} {v}" for k, v in info.items()))
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": info, "rows": [asdict(r) for r in rows]}, f, indent=1)
    return 1 if any(r.status == "INVALID" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
