"""Every activation, on every backend and dtype, agrees with the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
from cases import (
    BACKENDS,
    DTYPES,
    ELEMENTWISE,
    LARGE_SHAPES,
    ROWWISE,
    SHAPES,
    SIMULATOR,
    make_input,
    reference,
    views,
)

import nnlib.functional as F
from nnlib.testing import assert_close


def _check_against_reference(op, backend, x, dy, **kw):
    x_before, dy_before = x.copy(), dy.copy()
    forward, backward = getattr(F, op), getattr(F, op + "_backward")
    assert_close(forward(x, backend=backend, **kw), reference(op, x, **kw), name=op)
    assert_close(
        backward(dy, x, backend=backend, **kw),
        reference(op + "_backward", dy, x, **kw),
        name=op + "_backward",
    )
    np.testing.assert_array_equal(x, x_before, err_msg=f"{op} modified its input x")
    np.testing.assert_array_equal(dy, dy_before, err_msg=f"{op} modified its input dy")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + LARGE_SHAPES, ids=str)
@pytest.mark.parametrize("op", ELEMENTWISE)
def test_elementwise_matches_reference(op, shape, dtype, backend):
    x, dy = make_input(shape, dtype), make_input(shape, dtype, seed=1)
    _check_against_reference(op, backend, x, dy, **ELEMENTWISE[op])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + LARGE_SHAPES, ids=str)
@pytest.mark.parametrize("op", ROWWISE)
def test_rowwise_matches_reference_on_every_axis(op, shape, dtype, backend):
    x, dy = make_input(shape, dtype), make_input(shape, dtype, seed=1)
    for axis in range(len(shape)):
        rows = x.size // max(1, shape[axis])
        if SIMULATOR and rows > 8:
            continue  # the simulator spends ~0.1 s per block (= per row): keep it short
        _check_against_reference(op, backend, x, dy, axis=axis)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", [*ELEMENTWISE, *ROWWISE])
def test_non_contiguous_views(op, dtype, backend):
    if SIMULATOR and backend == "cuda" and op in ROWWISE and dtype != np.float32:
        pytest.skip(
            "under the CUDA simulator (10 s a case) the row-wise layouts run in float32 "
            "only: the host code that makes a view contiguous does not depend on the dtype"
        )
    base = make_input((9, 14), dtype)
    # axis 0 of a strided view is the hardest layout; the simulator takes the last axis,
    # which has fewer rows (one GPU block each).
    kw = ELEMENTWISE.get(op, {"axis": -1 if SIMULATOR else 0})
    for label, x in views(base):
        assert not x.flags.c_contiguous, label
        dy = make_input(x.shape, dtype, seed=2)[...]  # C-contiguous dy with a strided x
        _check_against_reference(op, backend, x, dy, **kw)
        _check_against_reference(op, backend, x, np.asfortranarray(dy), **kw)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha_shape", [(), "per-feature"])
@pytest.mark.parametrize("shape", SHAPES + LARGE_SHAPES, ids=str)  # 0-size ones too
def test_prelu_matches_reference(shape, alpha_shape, dtype, backend):
    x, dy = make_input(shape, dtype), make_input(shape, dtype, seed=1)
    d = shape[-1]
    alpha = np.asarray(0.25, dtype) if alpha_shape == () else np.linspace(0.05, 0.5, d, dtype=dtype)
    assert_close(F.prelu(x, alpha, backend=backend), reference("prelu", x, alpha))
    dx, dalpha = F.prelu_backward(dy, x, alpha, backend=backend)
    dx_ref, dalpha_ref = reference("prelu_backward", dy, x, alpha)
    assert_close(dx, dx_ref, name="dx")
    # dalpha sums up to x.size terms in a different order: scale the tolerance by it.
    terms = max(1, x.size // max(1, alpha.size))
    np.testing.assert_allclose(
        np.asarray(dalpha), dalpha_ref, rtol=np.finfo(dtype).eps * 10 * terms, atol=1e-6
    )
    assert np.shape(dalpha) == alpha.shape and np.asarray(dalpha).dtype == dtype
