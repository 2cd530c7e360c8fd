"""Bad input gets a clear error naming the argument, what was expected and what was given."""

from __future__ import annotations

import numpy as np
import pytest

import nnlib.functional as F

BACKENDS = ["numpy", "cpu"]
UNARY = ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "silu", "softmax", "log_softmax"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", UNARY)
@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.array(["a", "b"]), r"x must be a float32 or float64 array .* got dtype <U1"),
        (np.array([1 + 2j]), r"x must be a float32 or float64 array .* got dtype complex128"),
        (np.array([object(), 1], dtype=object), r"x must be .* got dtype object"),
        (np.ones(2, np.float16), r"got dtype float16\. Convert it with \.astype\(np\.float32\)"),
        ("not an array", r"x must be an array of numbers; got str"),
        (None, r"x must be an array of numbers; got NoneType"),
        ([[1.0, 2.0], [3.0]], r"x must be an array of numbers; got list that NumPy cannot convert"),
    ],
)
def test_bad_x_is_rejected(op, backend, bad, match):
    with pytest.raises(TypeError, match=match):
        getattr(F, op)(bad, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", UNARY)
def test_dy_must_match_x(op, backend):
    x = np.ones((3, 4), np.float32)
    backward = getattr(F, op + "_backward")
    with pytest.raises(ValueError, match=r"dy must have the shape of x, \(3, 4\); got \(4, 3\)"):
        backward(np.ones((4, 3), np.float32), x, backend=backend)
    with pytest.raises(TypeError, match=r"dy must have the dtype of x, float32; got float64"):
        backward(np.ones((3, 4)), x, backend=backend)
    with pytest.raises(TypeError, match=r"dy must be an array of numbers; got str"):
        backward("dy", x, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_axis_is_checked(op, backend):
    x = np.ones((2, 3))
    fn = getattr(F, op)
    with pytest.raises(ValueError, match=r"axis must be in \[-2, 1\] for a 2-d array; got 2"):
        fn(x, axis=2, backend=backend)
    with pytest.raises(TypeError, match=r"axis must be an int; got float 1\.0"):
        fn(x, axis=1.0, backend=backend)
    with pytest.raises(TypeError, match=r"axis must be an int; got tuple"):
        fn(x, axis=(0, 1), backend=backend)
    with pytest.raises(ValueError, match=r"needs an array with at least 1 dimension"):
        fn(np.float64(1.0), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_integers_are_converted_to_float64(backend):
    """Documented: integer and boolean input becomes float64, like np.exp does."""
    y = F.relu(np.arange(-2, 3), backend=backend)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, [0, 0, 0, 1, 2])
    assert F.sigmoid([True, False], backend=backend).dtype == np.float64
    assert F.softmax([[1, 2, 3]], backend=backend).dtype == np.float64


@pytest.mark.parametrize("backend", BACKENDS)
def test_scalars_and_lists_work(backend):
    assert F.relu(-3.0, backend=backend).shape == ()
    assert F.tanh([0.0, 1.0], backend=backend).shape == (2,)


@pytest.mark.parametrize("backend", BACKENDS)
def test_alpha_is_checked(backend):
    x = np.ones((2, 3))
    with pytest.raises(TypeError, match=r"alpha must be a real number; got str"):
        F.leaky_relu(x, "0.1", backend=backend)
    with pytest.raises(ValueError, match=r"alpha must be finite; got nan"):
        F.elu(x, float("nan"), backend=backend)
    with pytest.raises(
        ValueError,
        match=r"alpha must be .* shape \(D,\) with D = x.shape\[-1\] = 3; got shape \(2,\)",
    ):
        F.prelu(x, np.ones(2), backend=backend)
    with pytest.raises(ValueError, match=r"got shape \(3, 1\)"):
        F.prelu_backward(x, x, np.ones((3, 1)), backend=backend)
    with pytest.raises(TypeError, match=r"alpha must be a float32 or float64 array"):
        F.prelu(x, np.array(["a"]), backend=backend)


def test_prelu_alpha_follows_x_dtype():
    x = np.ones((2, 3), np.float32)
    assert F.prelu(x, 0.2).dtype == np.float32
    dx, dalpha = F.prelu_backward(x, -x, np.array([0.1, 0.2, 0.3]))
    assert dx.dtype == np.float32 and dalpha.dtype == np.float32


@pytest.mark.parametrize("backend", BACKENDS)
def test_prelu_backward_checks_dy(backend):
    x, alpha = np.ones((3, 4), np.float32), np.float32(0.1)
    with pytest.raises(ValueError, match=r"dy must have the shape of x, \(3, 4\); got \(4, 3\)"):
        F.prelu_backward(np.ones((4, 3), np.float32), x, alpha, backend=backend)
    with pytest.raises(TypeError, match=r"dy must have the dtype of x, float32; got float64\. "):
        F.prelu_backward(np.ones((3, 4)), x, alpha, backend=backend)


@pytest.mark.cuda
def test_prelu_alpha_must_live_where_x_lives():
    """A number goes with the launch; an alpha array is never copied implicitly."""
    from numba import cuda

    x = cuda.to_device(np.ones((2, 3)))
    with pytest.raises(
        TypeError,
        match=r"alpha of shape \(3,\) is in host memory but x is a GPU array: copy alpha to "
        r"the GPU once \(numba.cuda.to_device\(alpha\)\)",
    ):
        F.prelu(x, np.ones(3), backend="cuda")
    with pytest.raises(
        TypeError, match=r"alpha is a GPU array but x is in host memory.*copy_to_host"
    ):
        F.prelu(np.ones((2, 3)), cuda.to_device(np.ones(3)), backend="cuda")
