"""Properties of the compiled kernels themselves.

* CPU kernels are nopython, cached and really parallel (Numba's parallel diagnostics
  report a parallelised loop).
* CUDA kernels compile to PTX for an H100 (compute capability 9.0). This needs NVVM
  (numba-cuda[cu13]) but no GPU, and it type-checks what the simulator does not.
"""

from __future__ import annotations

import os

import pytest
from numba import njit, types
from numba.core.errors import NumbaPerformanceWarning

import nnlib.functional  # noqa: F401  (registers every kernel)
from nnlib._backend import registered_ops
from nnlib.ops._launch import FIRST_VERSIONS, KERNELS

CPU_KERNELS = sorted(op for op, backend in KERNELS if backend == "cpu")
CUDA_KERNELS = sorted(op for op, backend in KERNELS if backend == "cuda")


# Kernels that are helpers of a layer or of fit rather than ops of their own: the GPU
# random numbers of Dropout and the gathering of a mini-batch on the GPU.
CUDA_HELPERS = {"uniform", "take_rows"}


def test_every_op_has_all_three_backends():
    for op, backends in registered_ops().items():
        assert backends == ("cpu", "cuda", "numpy"), f"{op} has only {backends}"
    assert set(CPU_KERNELS) == set(registered_ops())
    assert set(CUDA_KERNELS) == set(registered_ops()) | CUDA_HELPERS


def _signature(op, dtype, target):
    """Argument types the launcher passes to op's kernel."""
    arr1 = types.Array(dtype, 1, "C")
    arr2 = types.Array(dtype, 2, "C")
    f64, i64 = types.float64, types.int64
    acc = types.Array(f64, 1, "C")
    u8 = types.Array(types.uint8, 1, "C")
    training = {
        "dense_forward": (arr2, arr2, arr1, i64, arr2),  # x, W, b, act, out
        "dense_backward": (arr2, arr2, arr2, arr2, i64, arr2, arr2, arr2, arr1, i64),
        # losses: pred, target, scale, (kind,) acc (float64 [loss sum, correct count]), grad
        "softmax_cross_entropy": (arr2, types.Array(i64, 1, "C"), dtype, acc, arr2),
        "mse": (arr1, arr1, dtype, i64, acc, arr1),
        "bce": (arr1, arr1, dtype, i64, acc, arr1),
        "bce_with_logits": (arr1, arr1, dtype, i64, acc, arr1),
        # optimizers: p, g, state..., decay mask (uint8), scalars, flags, masked
        "sgd_update": (arr1,) * 3 + (u8,) + (f64,) * 4 + (i64, i64, i64),
        "rmsprop_update": (arr1,) * 4 + (u8,) + (f64,) * 5 + (i64,),
        "adam_update": (arr1,) * 4 + (u8,) + (f64,) * 5 + (i64, i64, i64),
        "dropout": (arr1, types.Array(f64, 1, "C"), f64, arr1, arr1),
        # x, gamma, beta, running_mean, running_var, momentum, eps, training, y, mean, inv_std
        "batch_norm": (arr2, arr1, arr1, arr1, arr1, f64, f64, i64, arr2, arr1, arr1),
        # dy, x, gamma, mean, inv_std, training, dx, dgamma, dbeta
        "batch_norm_backward": (arr2, arr2, arr1, arr1, arr1, i64, arr2, arr1, arr1),
    }
    arr4, idx4 = types.Array(dtype, 4, "C"), types.Array(i64, 4, "C")
    training.update(
        {
            # x, W, b, stride, pad, act, direct, cols, z, out
            "conv2d_forward": (arr4, arr4, arr1, i64, i64, i64, i64, arr2, arr2, arr4),
            # dy, x, W, y, stride, pad, act, need_dx, direct, cols, dz, dx, dW, db
            "conv2d_backward": (arr4,) * 4 + (i64,) * 5 + (arr2, arr2, arr4, arr4, arr1),
            "maxpool2d_forward": (arr4, i64, i64, arr4, idx4),  # x, k, s, y, argmax
            "maxpool2d_backward": (arr4, idx4, i64, i64, arr4),  # dy, argmax, k, s, dx
        }
    )
    if target == "cuda":
        # x, W, b, stride, pad, act, out / dy, x, W, y, stride, pad, act, dx, dW, db
        training["conv2d_forward"] = (arr4, arr4, arr1, i64, i64, i64, arr4)
        training["conv2d_backward"] = (arr4,) * 4 + (i64,) * 3 + (arr4, arr4, arr1)
        # A, B, ta, tb, bias, act, C, mask_a, mask_b, colsum: one kernel for both passes
        gemm = (arr2, arr2, i64, i64, arr1, i64, arr2, arr2, arr2, arr1)
        training["dense_forward"] = training["dense_backward"] = gemm
        training["take_rows"] = (arr2, types.Array(i64, 1, "C"), arr2)
        from numba.cuda.random import xoroshiro128p_type

        training["uniform"] = (types.Array(xoroshiro128p_type, 1, "C"), types.Array(f64, 1, "C"))
    if op in training:
        return training[op]
    if op.startswith(("softmax", "log_softmax")):  # (dy,) x, (log: 0 or 1, on cuda,) out
        arrays = (arr2,) * (2 if op.endswith("backward") else 1)
        return arrays + ((i64,) if target == "cuda" else ()) + (arr2,)
    if op == "prelu":
        return (arr1, arr1, arr1) if target == "cuda" else (arr2, arr1, arr2)
    if op == "prelu_backward":  # dy, x, alpha, dx, dalpha(_parts)
        return (arr2, arr2, arr1, arr2, arr1 if target == "cuda" else arr2)
    n_arrays = 2 if op.endswith("backward") else 1
    scalars = (dtype,) if op.split("_backward")[0] in ("leaky_relu", "elu") else ()
    return (arr1,) * n_arrays + scalars + (arr1,)


def test_parallel_check_fails_on_a_serial_loop():
    """The diagnostics oracle can fail: a plain range loop yields no parallel region."""

    def serial(x, out):
        for i in range(x.size):
            out[i] = x[i]

    fresh = njit(parallel=True)(serial)
    with pytest.warns(NumbaPerformanceWarning, match="no transformation for parallel"):
        fresh.compile((types.float64[::1], types.float64[::1]))
    assert fresh.get_metadata(fresh.signatures[0])["parfor_diagnostics"].get_parfors() == []


@pytest.mark.parametrize("op", CPU_KERNELS)
def test_cpu_kernel_is_parallel_nopython_and_cached(op):
    kernel = KERNELS[op, "cpu"]
    opts = kernel.targetoptions
    assert opts.get("nopython") and opts.get("parallel"), opts
    assert type(kernel._cache).__name__ == "FunctionCache", f"{op} is not compiled with cache=True"
    # Recompile a fresh copy (the cached one may carry no diagnostics) and ask Numba
    # how many loops it turned into parallel regions.
    fresh = njit(parallel=True)(kernel.py_func)
    sig = _signature(op, types.float64, "cpu")
    fresh.compile(sig)
    diagnostics = fresh.get_metadata(fresh.signatures[0])["parfor_diagnostics"]
    assert len(diagnostics.get_parfors()) >= 1, f"{op}: Numba parallelised no loop"


@pytest.fixture
def no_gpu_needed(monkeypatch):
    """Let device functions compile without a GPU.

    NOTE: compile_ptx targets the cc it is given, but a device function called from the
    kernel is compiled for the *current* device, which needs a driver. Telling
    numba-cuda that the current device is an sm_90 makes both use cc 9.0.
    NOTE: nnlib makes its CUDA kernels and device functions when the cuda backend loads
    (nnlib._cuda.load); a kernel's globals must be the real device functions to compile.
    """
    import types as pytypes

    import numba.cuda.dispatcher

    from nnlib import _cuda

    _cuda.load()

    fake = pytypes.SimpleNamespace(compute_capability=(9, 0))
    monkeypatch.setattr(numba.cuda.dispatcher, "get_current_device", lambda: fake)


@pytest.mark.skipif(
    os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
    reason="compile_ptx needs the real CUDA target, not the simulator",
)
@pytest.mark.parametrize("dtype", [types.float32, types.float64], ids=str)
@pytest.mark.parametrize("op", CUDA_KERNELS)
def test_cuda_kernel_compiles_to_ptx_for_h100(op, dtype, no_gpu_needed):
    from numba import cuda

    kernel = KERNELS[op, "cuda"]
    ptx, _ = cuda.compile_ptx(kernel.py_func, _signature(op, dtype, "cuda"), cc=(9, 0))
    assert ".target sm_90" in ptx and ".entry" in ptx
    if dtype == types.float32 and op in ("relu", "sigmoid", "softmax"):
        # a float32 kernel must load float32 (ld.global.f32), not silently upcast its input
        assert "ld.global.f32" in ptx or "ld.global.nc.f32" in ptx


FIRST = sorted(op for op, backend in FIRST_VERSIONS)


def test_every_tuned_cuda_kernel_has_a_first_version():
    """dense (the tiled matmul) and softmax_cross_entropy (lanes per row): each has a
    readable first version beside it, with the same signature."""
    assert FIRST == ["dense_backward", "dense_forward", "softmax_cross_entropy"]
    for op in FIRST:
        first, tuned = FIRST_VERSIONS[op, "cuda"], KERNELS[op, "cuda"]
        assert first is not tuned
        assert first.py_func.__code__.co_argcount == tuned.py_func.__code__.co_argcount


@pytest.mark.skipif(
    os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
    reason="compile_ptx needs the real CUDA target, not the simulator",
)
@pytest.mark.parametrize("dtype", [types.float32, types.float64], ids=str)
@pytest.mark.parametrize("op", FIRST)
def test_first_version_compiles_to_ptx_for_h100(op, dtype, no_gpu_needed):
    from numba import cuda

    kernel = FIRST_VERSIONS[op, "cuda"]
    ptx, _ = cuda.compile_ptx(kernel.py_func, _signature(op, dtype, "cuda"), cc=(9, 0))
    assert ".target sm_90" in ptx and ".entry" in ptx


def test_signature_table_is_exercised():
    """Guard for _signature: a kernel with an unexpected arity fails loudly here."""
    for op in CUDA_KERNELS:
        assert (
            len(_signature(op, types.float32, "cuda"))
            == KERNELS[op, "cuda"].py_func.__code__.co_argcount
        )
    for op in CPU_KERNELS:
        assert (
            len(_signature(op, types.float64, "cpu"))
            == KERNELS[op, "cpu"].py_func.__code__.co_argcount
        )


@pytest.mark.skipif(
    os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
    reason="compile_ptx needs the real CUDA target, not the simulator",
)
def test_float32_cross_entropy_does_its_row_math_in_float32(no_gpu_needed):
    """The fused softmax cross-entropy on float32 logits keeps max, exp and sum in
    float32 (a float64 literal such as ``s = 0.0`` would silently promote them): the only
    float64 work is summing the rows' losses (one conversion a row) and the block's sums
    and atomic adds into the float64 ``acc``."""
    from numba import cuda

    kernel = KERNELS["softmax_cross_entropy", "cuda"]
    sig = _signature("softmax_cross_entropy", types.float32, "cuda")
    ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
    assert "ld.global.f32" in ptx and "st.global.f32" in ptx
    assert "ex2.approx.ftz.f32" in ptx  # libdevice's expf
    assert "shfl.sync.bfly.b32" in ptx  # the row's max and sum by warp shuffles
    for f64_math in ("fma.rn.f64", "mul.f64", "mul.rn.f64", "div.rn.f64", "sub.f64", "max.f64"):
        assert f64_math not in ptx, f"float64 arithmetic ({f64_math}) in the float32 kernel"
    assert ptx.count("cvt.f64.f32") <= 2, "float32 values converted to float64 in a loop?"
    assert ptx.count("atom.global.add.f64") == 2  # one per block and quantity


@pytest.mark.skipif(
    os.environ.get("NUMBA_ENABLE_CUDASIM") == "1",
    reason="compile_ptx needs the real CUDA target, not the simulator",
)
@pytest.mark.parametrize("dtype", [types.float32, types.float64, types.int64], ids=str)
def test_gpu_zeros_kernel_compiles_to_ptx_for_h100(dtype, no_gpu_needed):
    """``gpu_zeros`` (zeros written on the GPU, e.g. the loss accumulator and PReLU's
    alpha gradient) is a helper outside KERNELS: its kernel gets the same check."""
    from numba import cuda

    from nnlib._arrays import zero_cuda

    ptx, _ = cuda.compile_ptx(zero_cuda.py_func, (types.Array(dtype, 1, "C"),), cc=(9, 0))
    assert ".target sm_90" in ptx and ".entry" in ptx and "st.global" in ptx
