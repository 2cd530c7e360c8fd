"""The cuda kernels of nnlib/ops/conv.py (one thread an output element) against the NumPy
reference, and their compilation to PTX for an H100 (cc 9.0).

The tests marked ``cuda`` run on a GPU, or under Numba's CUDA simulator (``make test``
does so, in its own process: ``NUMBA_ENABLE_CUDASIM=1 python -m pytest
tests/test_conv_cuda.py -m cuda``); the sizes are tiny because the simulator runs every
GPU thread as a Python thread. The PTX tests are not marked ``cuda``: they need NVVM but
no GPU, and run in the normal (non-simulator) process, as those of tests/test_kernels.py.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from cases import conv_data
from numba import types

import nnlib as nl
from nnlib._backend import dispatch
from nnlib.layers import Conv2D, MaxPool2D
from nnlib.testing import assert_close

cuda_test = pytest.mark.cuda  # on every test but the PTX ones (see the docstring)
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])

# (N, C, H, W, F, KH, KW, stride, padding): same, stride 2 with an unused last row, a
# rectangular kernel, 1x1
CASES = [(2, 2, 5, 4, 3, 3, 3, 1, 1), (1, 2, 6, 5, 2, 3, 3, 2, 0), (1, 1, 4, 5, 2, 2, 3, 1, 1)]
IDS = ["same", "s2", "2x3p1"]


def _close(got, want, name):
    """float32 sums in another order: the tolerance of a sum of a few dozen terms."""
    got = got.copy_to_host() if hasattr(got, "copy_to_host") else got
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype}, expected {want.dtype}"
    if want.dtype == np.float32:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)
    else:
        assert_close(got, want, name=name)


@cuda_test
@DTYPES
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cuda_conv_matches_the_reference(case, dtype):
    x, W, b, s, p = conv_data(case, dtype)
    rng = np.random.default_rng(1)
    for act in (0, 1):
        want = dispatch("conv2d_forward", "numpy")(x, W, b, s, p, act)
        y = dispatch("conv2d_forward", "cuda")(x, W, b, s, p, act)
        assert isinstance(y, np.ndarray), "host arrays in, host arrays out"
        _close(y, want, f"forward act={act}")
        dy = rng.standard_normal(want.shape).astype(dtype)
        for need_dx in (1, 0):
            ref = dispatch("conv2d_backward", "numpy")(dy, x, W, want, s, p, act, need_dx)
            got = dispatch("conv2d_backward", "cuda")(dy, x, W, want, s, p, act, need_dx)
            for name, g, r in zip(("dx", "dW", "db"), got, ref, strict=True):
                if r is None:
                    assert g is None, "need_dx=0 gives None"
                else:
                    _close(g, r, f"{name} act={act} need_dx={need_dx}")


@cuda_test
def test_cuda_conv_on_gpu_arrays_stays_on_the_gpu_and_fills_grads_out():
    from numba import cuda

    from nnlib._validate import is_device_array

    x, W, b, s, p = conv_data(CASES[0], np.float64, seed=2)
    d = [cuda.to_device(a) for a in (x, W, b)]
    y = dispatch("conv2d_forward", "cuda")(*d, s, p, 1)
    assert is_device_array(y)
    want = dispatch("conv2d_forward", "numpy")(x, W, b, s, p, 1)
    assert_close(y, want, name="forward on the GPU")
    dy = np.random.default_rng(3).standard_normal(want.shape)
    gW, gb = cuda.device_array(W.shape), cuda.device_array(b.shape)
    dx, dW, db = dispatch("conv2d_backward", "cuda")(
        cuda.to_device(dy), d[0], d[1], y, s, p, 1, 1, (gW, gb)
    )
    assert dW is gW and db is gb, "grads_out on the GPU are written in place"
    ref = dispatch("conv2d_backward", "numpy")(dy, x, W, want, s, p, 1)
    for name, g, r in zip(("dx", "dW", "db"), (dx, dW, db), ref, strict=True):
        assert is_device_array(g)
        assert_close(g, r, name=name)


@cuda_test
@DTYPES
@pytest.mark.parametrize("k, s", [(2, 2), (3, 1), (3, 2)])
def test_cuda_max_pool_matches_the_reference(k, s, dtype):
    rng = np.random.default_rng(k + s)
    H = k + 2 * s
    x = rng.integers(-2, 3, (1, 2, H, H + s)).astype(dtype)  # small ints: ties
    x[0, 1, 0, 0] = np.nan  # a NaN is its window's maximum
    y0, a0 = dispatch("maxpool2d_forward", "numpy")(x, k, s)
    y1, a1 = dispatch("maxpool2d_forward", "cuda")(x, k, s)
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(a1, a0)
    assert y1.dtype == dtype
    dy = rng.standard_normal(y0.shape).astype(dtype)
    dx0 = dispatch("maxpool2d_backward", "numpy")(dy, a0, x.shape, k, s)
    dx1 = dispatch("maxpool2d_backward", "cuda")(dy, a0, x.shape, k, s)
    _close(dx1, dx0, f"max pool backward k={k} s={s}")


@cuda_test
def test_a_conv_model_trains_on_cuda_like_on_cpu():
    """One epoch of a tiny Conv2D model, cuda against cpu (float64, so the two backends'
    different summation orders stay far below the tolerance)."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((4, 1, 6, 6))
    y = rng.integers(0, 3, 4)

    def make():
        return nl.Sequential(
            [
                Conv2D(2, 3, padding="same", activation="relu"),
                MaxPool2D(2),
                nl.Flatten(),
                nl.Dense(3),
            ],
            dtype=np.float64,
        )

    runs = {}
    for backend in ("cpu", "cuda"):
        model = make()
        hist = model.fit(X, y, epochs=1, batch_size=4, seed=0, verbose=0, backend=backend)
        runs[backend] = (hist.history["loss"], model.parameters())
    np.testing.assert_allclose(runs["cuda"][0], runs["cpu"][0], rtol=1e-10)
    for name, value in runs["cpu"][1].items():
        got = runs["cuda"][1][name]
        got = got.copy_to_host() if hasattr(got, "copy_to_host") else got
        np.testing.assert_allclose(got, value, rtol=1e-9, atol=1e-12, err_msg=name)


# ---------------------------------------------------------------------- PTX for an H100


def _signature(op, dtype):
    a1, a4 = types.Array(dtype, 1, "C"), types.Array(dtype, 4, "C")
    i64, idx = types.int64, types.Array(types.int64, 4, "C")
    return {
        "conv2d_forward": (a4, a4, a1, i64, i64, i64, a4),  # x, W, b, stride, pad, act, out
        # dy, x, W, y, stride, pad, act, dx, dW, db
        "conv2d_backward": (a4, a4, a4, a4, i64, i64, i64, a4, a4, a1),
        "maxpool2d_forward": (a4, i64, i64, a4, idx),  # x, k, s, y, argmax
        "maxpool2d_backward": (a4, idx, i64, i64, a4),  # dy, argmax, k, s, dx
    }[op]


@pytest.fixture
def no_gpu_needed(monkeypatch):
    """compile_ptx without a GPU (see tests/test_kernels.py: the device functions are
    compiled for the current device, which is declared an sm_90 here)."""
    import types as pytypes

    import numba.cuda.dispatcher

    from nnlib import _cuda

    _cuda.load()
    fake = pytypes.SimpleNamespace(compute_capability=(9, 0))
    monkeypatch.setattr(numba.cuda.dispatcher, "get_current_device", lambda: fake)


@pytest.mark.skipif(SIMULATOR, reason="compile_ptx needs the real CUDA target, not the simulator")
@pytest.mark.parametrize("dtype", [types.float32, types.float64], ids=str)
@pytest.mark.parametrize(
    "op", ["conv2d_forward", "conv2d_backward", "maxpool2d_forward", "maxpool2d_backward"]
)
def test_conv_kernels_compile_to_ptx_for_h100(op, dtype, no_gpu_needed):
    from numba import cuda

    from nnlib.ops._launch import KERNELS

    try:
        ptx, _ = cuda.compile_ptx(KERNELS[op, "cuda"].py_func, _signature(op, dtype), cc=(9, 0))
    except Exception as exc:  # NVVM is the numba-cuda[cu13] extra
        if "NVVM" in str(exc) or "libnvvm" in str(exc):
            pytest.skip(f"NVVM is not installed (pip install 'numba-cuda[cu13]'): {exc}")
        raise
    assert ".target sm_90" in ptx and ".entry" in ptx
    if dtype == types.float32:  # float32 data is summed in float32, not promoted
        for f64 in ("fma.rn.f64", "add.f64", "add.rn.f64", "mul.f64", "cvt.f64.f32"):
            assert f64 not in ptx, f"float64 arithmetic ({f64}) in the float32 {op} kernel"
