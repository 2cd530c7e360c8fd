"""nnlib's tiled CUDA matrix product (``gemm_cuda`` in nnlib/ops/dense.py) against NumPy
at awkward sizes: 1, 17, and sizes that are not multiples of the tile (under the
simulator the tile is 4 wide, so 5, 7 and 9 leave a ragged edge), with the transposed
operands the backward pass uses, the fused bias + ReLU epilogue, float32 and float64.

Its compilation to PTX for an H100 (cc 9.0, float32 and float64) is checked in
tests/test_kernels.py (op ``dense_forward``, whose CUDA kernel is ``gemm_cuda``).

The first version (``matmul_first_cuda``: one thread an output, a plain loop over the
shared dimension) is run by the same checks (``first=True``), and the dense ops with it
(``first_version("dense_forward")``).

These run on a GPU, or under Numba's CUDA simulator (``make test`` does so, in its own
process); the sizes are small because the simulator runs every GPU thread in Python.
"""

from __future__ import annotations

import numpy as np
import pytest

import nnlib.functional  # noqa: F401  (registers every kernel)
from nnlib._backend import dispatch
from nnlib.ops._launch import first_version
from nnlib.testing import assert_close

pytestmark = pytest.mark.cuda

VERSIONS = pytest.mark.parametrize("first", [False, True], ids=["tuned", "first"])
EPS = {np.float32: np.finfo(np.float32).eps, np.float64: np.finfo(np.float64).eps}

# (M, L, K): C (M, K) = op(A) (M, L) @ op(B) (L, K)
SIZES = [
    (1, 1, 1),
    (1, 17, 5),
    (17, 1, 7),
    (5, 7, 9),
    (9, 5, 17),
    (17, 17, 1),
    (4, 4, 4),  # exactly one tile under the simulator: the edge-free path
    (3, 0, 2),  # an empty sum: C = act(bias)
]


def _close_to_exact(C, A, B, bias, act, dtype, name):
    """|C - exact| <= 2 L eps (|op(A)| @ |op(B)| + |bias|) + a few ulps of C, element by
    element: the classical bound on a dot product's rounding, whatever the order of the
    sum (the kernel's order and BLAS's differ)."""
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    exact = A64 @ B64 + bias
    if act == 1:
        exact = np.maximum(exact, 0)
    L = A.shape[1]
    eps = EPS[dtype]
    bound = 2 * (L + 1) * eps * (np.abs(A64) @ np.abs(B64) + np.abs(bias)) + 4 * eps * np.abs(exact)
    assert C.shape == exact.shape, f"{name}: shape {C.shape}, expected {exact.shape}"
    assert C.dtype == dtype, f"{name}: dtype {C.dtype}, expected {np.dtype(dtype)}"
    err = np.abs(C - exact)
    if not (err <= bound).all():  # NaN (an entry never written) fails too
        worst = tuple(int(i) for i in np.unravel_index(np.argmax(~(err <= bound)), err.shape))
        raise AssertionError(
            f"{name}: error {err[worst]:.3g} > bound {bound[worst]:.3g} at {worst}"
        )


@VERSIONS
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("ta, tb", [(0, 0), (1, 0), (0, 1), (1, 1)], ids=["NN", "TN", "NT", "TT"])
@pytest.mark.parametrize("m, l, k", SIZES, ids=[f"{m}x{l}x{k}" for m, l, k in SIZES])
def test_gemm_matches_numpy(m, l, k, ta, tb, dtype, first):
    """C = op(A) @ op(B), through the launcher the forward and backward passes share:
    (0, 0) is the forward x @ W, (1, 0) the backward x.T @ dz, (0, 1) dz @ W.T."""
    from numba import cuda

    from nnlib.ops import dense

    rng = np.random.default_rng(m * 10_000 + l * 100 + k)
    opA = rng.standard_normal((m, l)).astype(dtype)
    opB = rng.standard_normal((l, k)).astype(dtype)
    A = np.ascontiguousarray(opA.T) if ta else opA  # stored as the kernel is told
    B = np.ascontiguousarray(opB.T) if tb else opB
    C = cuda.device_array((m, k), dtype)
    dense._gemm(cuda.to_device(A), cuda.to_device(B), ta, tb, None, 0, C, first=first)
    _close_to_exact(C.copy_to_host(), opA, opB, 0.0, 0, dtype, f"gemm ta={ta} tb={tb}")


@VERSIONS
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("m, l, k", [(1, 17, 5), (9, 5, 7), (17, 1, 17), (3, 0, 2)])
def test_gemm_epilogue_adds_the_bias_then_applies_relu(m, l, k, dtype, first):
    from numba import cuda

    from nnlib.ops import dense

    rng = np.random.default_rng(1)
    A = rng.standard_normal((m, l)).astype(dtype)
    B = rng.standard_normal((l, k)).astype(dtype)
    bias = rng.standard_normal(k).astype(dtype)
    for act in (0, 1):
        C = cuda.device_array((m, k), dtype)
        d_A, d_B, d_bias = cuda.to_device(A), cuda.to_device(B), cuda.to_device(bias)
        dense._gemm(d_A, d_B, 0, 0, d_bias, act, C, first=first)
        _close_to_exact(C.copy_to_host(), A, B, bias, act, dtype, f"gemm + bias, act={act}")
    if l and m * k > 1:  # a ReLU that clips nothing would prove nothing
        assert (C.copy_to_host() == 0).any()


MASKED = [(17, 9, 5), (1, 1, 1), (3, 17, 9), (0, 5, 7), (5, 0, 7), (9, 5, 0), (20, 3, 19)]


@VERSIONS
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("ta, tb", [(0, 0), (1, 0), (0, 1), (1, 1)], ids=["NN", "TN", "NT", "TT"])
@pytest.mark.parametrize("m, l, k", MASKED, ids=[f"{m}x{l}x{k}" for m, l, k in MASKED])
def test_gemm_masks_its_operands_and_sums_the_columns_of_op_b(m, l, k, ta, tb, dtype, first):
    """What the backward pass asks of the product: an element of A (or B) counts only
    where its mask is > 0 (``dz = dy * relu'(y)``, formed while loading), and
    ``colsum`` receives the column sums of masked op(B) (the bias gradient). Sizes
    include M = 0 (the sums are still due), L = 0 (they are 0) and M over two rows of
    blocks (only the first row of blocks may write them)."""
    from numba import cuda

    from nnlib.ops import dense

    rng = np.random.default_rng(m * 10_000 + l * 100 + k + 7 * ta + 3 * tb)
    opA = rng.standard_normal((m, l)).astype(dtype)
    opB = rng.standard_normal((l, k)).astype(dtype)
    keepA = rng.standard_normal((m, l)).astype(dtype)  # > 0 keeps; about half are dropped
    keepB = rng.standard_normal((l, k)).astype(dtype)
    store = lambda X, t: np.ascontiguousarray(X.T) if t else X  # noqa: E731
    C = cuda.device_array((m, k), dtype)
    sums = cuda.to_device(np.full(k, np.nan, dtype))  # every entry must be overwritten
    dense._gemm(
        *(cuda.to_device(store(opA, ta)), cuda.to_device(store(opB, tb)), ta, tb, None, 0, C),
        mask_a=cuda.to_device(store(keepA, ta)),
        mask_b=cuda.to_device(store(keepB, tb)),
        colsum=sums,
        first=first,
    )
    A_kept, B_kept = np.where(keepA > 0, opA, 0), np.where(keepB > 0, opB, 0)
    _close_to_exact(C.copy_to_host(), A_kept, B_kept, 0.0, 0, dtype, "masked gemm")
    ones = np.ones((1, l), dtype)
    _close_to_exact(sums.copy_to_host()[None], ones, B_kept, 0.0, 0, dtype, "column sums")


def _dense_ops(first):
    if first:
        return first_version("dense_forward"), first_version("dense_backward")
    return dispatch("dense_forward", "cuda"), dispatch("dense_backward", "cuda")


@VERSIONS
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("n, d, h", [(1, 1, 1), (17, 5, 7), (5, 17, 9), (1, 17, 1), (19, 0, 3)])
def test_dense_ops_on_cuda_match_the_reference(n, d, h, dtype, first):
    """The public dense ops (forward with bias + ReLU, backward with and without dx),
    host arrays in and out, against the NumPy reference backend."""
    forward, backward = _dense_ops(first)
    rng = np.random.default_rng(n + d + h)
    x = rng.standard_normal((n, d)).astype(dtype)
    W = rng.standard_normal((d, h)).astype(dtype)
    b = rng.standard_normal(h).astype(dtype)
    dy = rng.standard_normal((n, h)).astype(dtype)
    for act in (0, 1):
        y_ref = dispatch("dense_forward", "numpy")(x, W, b, act)
        y = forward(x, W, b, act)
        assert isinstance(y, np.ndarray), "host arrays in, but y stayed on the GPU"
        assert_close(y, y_ref, name=f"dense_forward act={act}")
        for need_dx in (1, 0):
            want = dispatch("dense_backward", "numpy")(dy, x, W, y_ref, act, need_dx)
            got = backward(dy, x, W, y_ref, act, need_dx)
            assert all(g is None or isinstance(g, np.ndarray) for g in got), "host in, host out"
            for name, g, w in zip(("dx", "dW", "db"), got, want, strict=True):
                if w is None:
                    assert g is None, f"{name}: need_dx=0 must give None"
                else:
                    assert_close(g, w, name=f"dense_backward {name} act={act}")


@VERSIONS
def test_dense_ops_on_gpu_arrays_stay_on_the_gpu_and_fill_grads_out(first):
    from numba import cuda

    from nnlib._validate import is_device_array

    forward, backward = _dense_ops(first)
    rng = np.random.default_rng(7)
    n, d, h = 9, 5, 7
    x, W = rng.standard_normal((n, d)), rng.standard_normal((d, h))
    b, dy = rng.standard_normal(h), rng.standard_normal((n, h))
    y = forward(cuda.to_device(x), cuda.to_device(W), cuda.to_device(b), 1)
    assert is_device_array(y)
    y_ref = dispatch("dense_forward", "numpy")(x, W, b, 1)
    assert_close(y, y_ref, name="dense_forward on the GPU")
    dW, db = cuda.device_array((d, h)), cuda.device_array(h)
    dx, dW_out, db_out = backward(
        cuda.to_device(dy), cuda.to_device(x), cuda.to_device(W), y, 1, 1, (dW, db)
    )
    assert dW_out is dW and db_out is db, "grads_out on the GPU are written in place"
    want = dispatch("dense_backward", "numpy")(dy, x, W, y_ref, 1, 1)
    for name, g, w in zip(("dx", "dW", "db"), (dx, dW, db), want, strict=True):
        assert is_device_array(g)
        assert_close(g, w, name=f"dense_backward {name} on the GPU")
