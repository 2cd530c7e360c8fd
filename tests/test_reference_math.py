"""The NumPy reference is the spec, so it is itself checked against the math: known
values, identities, finite differences, and numerical stability at extreme inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nnlib.functional as F
from nnlib.gradient_check import check_vjp, numerical_gradient, relative_error

REF = {"backend": "numpy"}


def test_known_values():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    np.testing.assert_array_equal(F.relu(x, **REF), [0, 0, 0, 0.5, 2])
    np.testing.assert_allclose(F.leaky_relu(x, 0.1, **REF), [-0.2, -0.05, 0, 0.5, 2])
    np.testing.assert_allclose(F.elu(x, 1.0, **REF), [np.exp(-2) - 1, np.exp(-0.5) - 1, 0, 0.5, 2])
    np.testing.assert_allclose(F.sigmoid(x, **REF), 1 / (1 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_allclose(F.tanh(x, **REF), np.tanh(x))
    np.testing.assert_allclose(F.silu(x, **REF), x / (1 + np.exp(-x)), rtol=1e-15)
    # GELU(x) = x * Phi(x); Phi(1) = 0.8413447460685429 (standard normal table)
    assert F.gelu(np.array(1.0), **REF) == pytest.approx(0.8413447460685429, rel=1e-14)
    np.testing.assert_allclose(
        F.softmax(np.log([[1.0, 2.0, 5.0]]), **REF), [[0.125, 0.25, 0.625]], rtol=1e-15
    )


def test_derivative_convention_at_zero():
    """At x == 0 the ReLU family takes the negative side's slope (documented)."""
    zero, one = np.zeros(1), np.ones(1)
    for backend in ("numpy", "cpu"):
        assert F.relu_backward(one, zero, backend=backend)[0] == 0
        assert F.leaky_relu_backward(one, zero, 0.2, backend=backend)[0] == pytest.approx(0.2)
        assert F.elu_backward(one, zero, 0.3, backend=backend)[0] == pytest.approx(0.3)
        dx, _ = F.prelu_backward(one, zero, np.array(0.4), backend=backend)
        assert dx[0] == pytest.approx(0.4)


SMOOTH = {  # op -> kwargs; the ReLU family is checked away from its kink
    "relu": {},
    "leaky_relu": {"alpha": 0.1},
    "elu": {"alpha": 0.7},
    "sigmoid": {},
    "tanh": {},
    "gelu": {},
    "silu": {},
    "softmax": {"axis": 0},
    "log_softmax": {"axis": -1},
}


@pytest.mark.parametrize("op", SMOOTH)
def test_reference_backward_matches_finite_differences(op):
    kw = SMOOTH[op]
    x = np.random.default_rng(7).standard_normal((4, 5)) * 2
    x[np.abs(x) < 1e-3] = 0.5  # keep the central difference off the kink at 0
    result = check_vjp(
        lambda z: getattr(F, op)(z, **kw, **REF),
        lambda dy, z: getattr(F, op + "_backward")(dy, z, **kw, **REF),
        x,
    )
    assert result.passed, f"{op}: {result}"


def test_prelu_alpha_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    x, dy = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    alpha = np.array([0.1, 0.2, 0.3, 0.4])
    _, dalpha = F.prelu_backward(dy, x, alpha, **REF)
    numeric = numerical_gradient(lambda a: float(np.sum(F.prelu(x, a, **REF) * dy)), alpha)
    assert relative_error(dalpha, numeric) < 1e-7


def test_gradient_checker_catches_a_wrong_gradient():
    """The finite-difference oracle can fail: the classic sigmoid slip s*(1+s) is caught."""
    wrong = check_vjp(
        lambda z: F.sigmoid(z, **REF),
        lambda dy, z: dy * F.sigmoid(z, **REF) * (1 + F.sigmoid(z, **REF)),
        np.linspace(-2, 2, 9),
    )
    assert not wrong.passed and "FAIL" in str(wrong)
    off_by_a_bit = check_vjp(lambda z: z**2, lambda dy, z: dy * 2 * z * (1 + 1e-4), np.ones(3))
    assert not off_by_a_bit.passed


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_at_extreme_inputs(backend, dtype):
    """Finite and warning-free (RuntimeWarning is an error in this suite) for |x| <= 1e4."""
    x = np.array([-1e4, -800.0, -100.0, 0.0, 100.0, 800.0, 1e4], dtype)
    s = F.sigmoid(x, backend=backend)
    assert np.all(np.isfinite(s)) and s[0] == 0 and s[-1] == 1
    assert np.all(np.isfinite(F.sigmoid_backward(np.ones_like(x), x, backend=backend)))
    assert np.all(np.isfinite(F.silu(x, backend=backend)))
    assert np.all(np.isfinite(F.elu(x, backend=backend)))
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, 1e4]], dtype)
    p = F.softmax(logits, backend=backend)
    np.testing.assert_allclose(p, [[1, 0, 0], [1 / 3] * 3, [1 / 3] * 3], rtol=1e-6)
    logp = F.log_softmax(logits, backend=backend)
    assert np.all(np.isfinite(logp)) and logp[0, 0] == 0 and logp[0, 1] == pytest.approx(-2e4)
    for op in ("softmax", "log_softmax"):
        g = getattr(F, op + "_backward")(np.ones_like(logits), logits, backend=backend)
        assert np.all(np.isfinite(g)), op


finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False)
matrices = hnp.arrays(
    np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6), elements=finite
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(matrices, st.floats(-30, 30))
def test_softmax_properties(x, shift):
    p = F.softmax(x, axis=1, **REF)
    assert np.all(p >= 0) and np.all(p <= 1)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_allclose(
        F.softmax(x + shift, axis=1, **REF), p, atol=1e-12
    )  # shift-invariant
    np.testing.assert_allclose(np.exp(F.log_softmax(x, axis=1, **REF)), p, atol=1e-12)
    np.testing.assert_allclose(F.softmax(x, axis=1, backend="cpu"), p, atol=1e-12)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=5), elements=finite))
def test_elementwise_identities(x):
    np.testing.assert_array_equal(F.relu(F.relu(x, **REF), **REF), F.relu(x, **REF))  # idempotent
    s = F.sigmoid(x, **REF)
    np.testing.assert_allclose(s + F.sigmoid(-x, **REF), 1, atol=1e-15)  # symmetry
    np.testing.assert_allclose(F.tanh(x, **REF), 2 * F.sigmoid(2 * x, **REF) - 1, atol=1e-14)
    np.testing.assert_allclose(F.leaky_relu(x, 0.0, **REF), F.relu(x, **REF))
