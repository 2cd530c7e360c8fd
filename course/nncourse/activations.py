"""Checks for exercise set 01, activation functions (``solutions/01_activations.ipynb``).

The reference for every value is ``nnlib.functional`` on the ``numpy`` backend (or a
float64 formula from the math, where accuracy over the whole range is judged). Inputs
come from fixed seeds, so a verdict never changes between runs. Every exercise lists
the wrong answers learners typically write, so the feedback can name the mistake.

Each exercise's whole contract is checked: the values (with the text's value at the
kink, e.g. relu'(0) = 0), float32 kept float32, every shape the text allows (1-D, 3-D,
empty), default arguments, the ends of the float range, and, on every call (see
:mod:`nncourse.learner`), inputs left unchanged, a new array returned (also when nothing
is negative) and no call into nnlib's own version. Gradient checks tell a wrong forward
pass from a wrong backward pass. The Numba kernel is judged by behaviour (every element
written, two different inputs) and by Numba's own parallel diagnostics; the CUDA kernel
is launched by the grader (``fn.launch``) and its launcher called at sizes of one and
of many blocks.
"""

from __future__ import annotations

import math

import numpy as np

from nnlib import functional as F
from nnlib.gradient_check import relative_error
from nnlib.testing import tolerance

from .checks import (
    SHAPES,
    CheckFailed,
    WrongAnswer,
    as_number,
    ends_of_range,
    exercise,
    expect,
    expect_property,
    expect_shapes,
    matches,
    quiet,
)
from .numba_checks import add_numba_subchecks, expect_every_element_written


def ref(name, *args, **kwargs):
    return getattr(F, name)(*args, backend="numpy", **kwargs)


def _grid(dtype=np.float64, shape=(4, 6), seed=0):
    """Values with exact zeros and both signs, no value within 1e-3 of a kink."""
    x = np.random.default_rng(seed).standard_normal(shape) * 3
    x = np.where(np.abs(x) < 1e-3, 0.5, x)
    x.flat[::7] = 0.0
    return x.astype(dtype)


def _positive(shape=(3, 4), dtype=np.float64, seed=30):
    """Values in [0.5, 3): nothing negative, nothing zero."""
    return np.random.default_rng(seed).uniform(0.5, 3.0, shape).astype(dtype)


def _away_from_zero(shape=(3, 5), seed=1):
    """float64 values with |x| >= 0.1: central differences are exact off the kink."""
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(x >= 0, x + 0.1, x - 0.1)


def _dy(x, seed=2):
    """An upstream gradient without zeros: an in-place `dy *= mask` changes it."""
    dy = np.random.default_rng(seed).standard_normal(x.shape)
    return np.where(np.abs(dy) < 0.05, 1.0, dy).astype(x.dtype)


def _same(got, want) -> bool:
    """``got`` is an array equal to ``want`` within the tolerance of ``want``'s dtype."""
    if not isinstance(got, np.ndarray) or got.shape != want.shape:
        return False
    atol, rtol = tolerance(want.dtype)
    return bool(np.allclose(got, want, atol=atol, rtol=rtol, equal_nan=True))


def _gradient_check(
    forward, backward, x, *, forward_name, backward_name, ref_forward, ref_backward
):
    """``backward`` against central differences of ``forward`` (elementwise functions).

    Every element is nudged at once (the functions are elementwise), so the check costs
    three calls. When it fails, the reference tells which side is wrong: a backward
    pass equal to the reference derivative of a wrong forward pass is not blamed.
    """
    eps, tol = 1e-6, 1e-7
    dy = np.random.default_rng(0).standard_normal(x.shape)
    up, down = forward(x + eps), forward(x - eps)
    for name, value in ((forward_name, up), (forward_name, down)):
        if not isinstance(value, np.ndarray) or value.shape != x.shape:
            raise CheckFailed(f"{name} did not return an array of shape {x.shape}")
    numeric = dy * (up - down) / (2 * eps)
    analytic = backward(dy, x)
    if not isinstance(analytic, np.ndarray) or analytic.shape != x.shape:
        raise CheckFailed(f"{backward_name} did not return an array of shape {x.shape}")
    error = relative_error(analytic, numeric)
    if error <= tol:
        return
    forward_right = _same(forward(x), ref_forward(x))
    backward_right = _same(analytic, ref_backward(dy, x))
    message = (
        f"{backward_name} disagrees with central differences of your {forward_name}: "
        f"relative error {error:.1e} (cs231n's rule: below 1e-7 is right, above 1e-4 is "
        "almost certainly a bug)."
    )
    if backward_right and not forward_right:
        message += (
            f" Hint: your {backward_name} equals the correct derivative; it is your forward "
            f"pass {forward_name} that is wrong (see its check above), so its slopes are "
            f"not those of the function. Fix {forward_name}."
        )
    elif not forward_right:
        message += (
            f" Hint: your forward pass {forward_name} is wrong too (see its check above): "
            "fix it first, then derive f'(x) again on paper and multiply it by dy."
        )
    elif not backward_right:
        message += " Hint: derive f'(x) again on paper and multiply it by dy."
    raise CheckFailed(message)


def _finite_without_warnings(fn, x, name, hint, known=(), args=None):
    """``fn(x)``, failing if it overflows, divides by zero or is not finite.

    The hint is the first matching ``known`` wrong answer's, else ``hint``.
    """

    def fail(what):
        with np.errstate(all="ignore"):
            try:
                got = np.asarray(fn(x))
            except Exception:
                got = None
        best = hint
        for wrong in known:
            if got is not None and matches(got, quiet(wrong.fn, *(args or (x,)))):
                best = wrong.hint
                break
        raise CheckFailed(f"{name} at x = {x.tolist()}: {what}. Hint: {best}")

    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        try:
            got = fn(x)
        except FloatingPointError as err:
            fail(str(err))
    if not isinstance(got, np.ndarray):
        return got  # expect() says what is wrong with it
    if not np.all(np.isfinite(got)):
        fail(f"gave {got.tolist()}")
    return got


def _expect_relative(got, x, want64, what, *, hint):
    """``got`` (of ``x``'s dtype) within the dtype's relative tolerance of the float64
    reference ``want64``, wherever that is a normal number of the dtype (below it, the
    dtype itself has no relative precision left: there an error of one tiny is allowed).

    ``hint`` is shown only when the evidence holds: an element lost most of its digits.
    """
    dtype = x.dtype
    _, rtol = tolerance(dtype)
    tiny = float(np.finfo(dtype).tiny)
    got64 = got.astype(np.float64)
    err = np.abs(got64 - want64)
    allowed = np.where(np.abs(want64) >= tiny, rtol * np.abs(want64), tiny)
    bad = ~(err <= allowed)
    if not bad.any():
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(np.abs(want64) > 0, err / np.abs(want64), np.inf)
    worst = np.unravel_index(np.argmax(np.where(bad, rel, -1.0)), got.shape)
    message = (
        f"{what}: {int(bad.sum())} of {got.size} elements are off by more than "
        f"{rtol:g} relative to the exact value; worst at x = {x[worst].item()!r}: "
        f"expected {want64[worst].item()!r}, got {got[worst].item()!r} (relative error "
        f"{rel[worst]:.1e})"
    )
    if rel[worst] > 1e-3:
        message += f"\n  Hint: {hint}"
    raise CheckFailed(message)


SHAPE_HINT = (
    "your code assumes a 2-D array (x.shape[1], x[i, j]): these functions take arrays of "
    "any shape (...). Use whole-array NumPy operations (np.maximum, np.where) instead of "
    "loops over the axes."
)
TRUTH_HINT = (
    "a Python `if`, `max` or `and` got an array where it needs one number (for a 3-D x, "
    "x[i, j] is still a row). Use whole-array NumPy operations (np.maximum, np.where) "
    "instead of Python conditions and loops over the axes."
)
SHAPE_ERRORS = [
    (IndexError, "tuple index out of range", SHAPE_HINT),
    (IndexError, "too many indices", SHAPE_HINT),
    (ValueError, "truth value of an array", TRUTH_HINT),
]


def _elementwise_shapes(forward, backward, ref_forward, ref_backward, name, backward_name):
    """The forward and backward pass on every shape of SHAPES (float64 and float32)."""

    def inputs(shape, dtype, i):
        x = _grid(dtype, shape, seed=40 + i)
        return (x,), {"x": x}

    def with_dy(shape, dtype, i):
        (x,), _ = inputs(shape, dtype, i)
        dy = _dy(x, seed=50 + i)
        return (dy, x), {"dy": dy, "x": x}

    expect_shapes(forward, inputs, ref_forward, f"{name}(x)")
    expect_shapes(backward, with_dy, ref_backward, f"{backward_name}(dy, x)")


RELU_RANGE_HINT = (
    "an intermediate value overflowed: max(x, 0) needs no arithmetic on x at all "
    "(np.maximum(x, 0) or np.where(x > 0, x, 0)); x + |x| is twice x and overflows near "
    "the largest float."
)
LEAKY_RANGE_HINT = (
    "an intermediate value overflowed: leaky ReLU needs no arithmetic but alpha * x "
    "(np.where(x > 0, x, alpha * x)); x + |x| is twice x and overflows near the largest "
    "float."
)


def _elementwise_range(forward, backward, ref_forward, ref_backward, name, backward_name, hint):
    """The forward and backward pass at the ends of the float range, both dtypes."""
    for dtype in (np.float64, np.float32):
        x = ends_of_range(dtype)
        dy = np.roll(x, 3)
        label = np.dtype(dtype).name
        got = _finite_without_warnings(forward, x, name, hint)
        expect(got, ref_forward(x), f"{name}(x) at the ends of the {label} range", inputs={"x": x})
        got = _finite_without_warnings(lambda z, dy=dy: backward(dy, z), x, backward_name, hint)
        expect(
            got,
            ref_backward(dy, x),
            f"{backward_name}(dy, x) at the ends of the {label} range",
            inputs={"dy": dy, "x": x},
        )


# ------------------------------------------------------------------------------- ReLU

relu_ex = exercise("relu", ["relu", "relu_backward"])
relu_ex.error_hints.extend(SHAPE_ERRORS)

RELU_WRONG = [
    WrongAnswer(lambda x: np.minimum(x, 0), "your output equals min(x, 0): keep the positives."),
    WrongAnswer(np.abs, "your output equals |x|: negatives become 0, they do not flip sign."),
    WrongAnswer(lambda x: x, "your output equals x: set the negative entries to 0."),
]
RELU_BACKWARD_WRONG = [
    WrongAnswer(
        lambda dy, x: (x > 0).astype(x.dtype),
        "your result is relu'(x) alone: multiply it by the upstream gradient dy (chain rule).",
    ),
    WrongAnswer(
        lambda dy, x: np.where(x >= 0, dy, 0),
        "your result differs only where x == 0: relu'(0) is 0 here (x > 0, not x >= 0).",
    ),
    WrongAnswer(
        lambda dy, x: np.maximum(dy, 0),
        "your result equals relu(dy): the mask comes from x (where x > 0), not from dy.",
    ),
    WrongAnswer(
        lambda dy, x: np.where(x > 0, dy * x, 0),
        "you multiplied by x: relu'(x) is 1 for x > 0, so the result there is dy itself.",
    ),
]


def _relu_backward_ref(dy, x):
    return ref("relu_backward", dy, x)


@relu_ex.subcheck("relu(x) equals max(x, 0) on a (4, 6) float64 array")
def _(relu, relu_backward):
    x = _grid()
    expect(relu(x), ref("relu", x), "relu(x)", inputs={"x": x}, known=RELU_WRONG, args=(x,))


@relu_ex.subcheck("relu_backward(dy, x) equals dy where x > 0 and 0 elsewhere")
def _(relu, relu_backward):
    x = _grid()
    dy = _dy(x)
    expect(
        relu_backward(dy, x),
        ref("relu_backward", dy, x),
        "relu_backward(dy, x)",
        inputs={"dy": dy, "x": x},
        known=RELU_BACKWARD_WRONG,
        args=(dy, x),
    )


@relu_ex.subcheck("relu and relu_backward keep float32 input float32")
def _(relu, relu_backward):
    x = _grid(np.float32)
    dy = _dy(x)
    expect(relu(x), ref("relu", x), "relu(x) for float32 x", inputs={"x": x})
    expect(
        relu_backward(dy, x),
        ref("relu_backward", dy, x),
        "relu_backward(dy, x) for float32 dy and x",
        inputs={"dy": dy, "x": x},
    )


@relu_ex.subcheck("relu and relu_backward work on 1-D, 3-D and empty arrays")
def _(relu, relu_backward):
    _elementwise_shapes(
        relu, relu_backward, lambda x: ref("relu", x), _relu_backward_ref, "relu", "relu_backward"
    )


@relu_ex.subcheck("relu and relu_backward return a new array when nothing is negative")
def _(relu, relu_backward):
    x = _positive()
    dy = _dy(x)
    expect(relu(x), ref("relu", x), "relu(x) for x > 0", inputs={"x": x})
    expect(
        relu_backward(dy, x),
        ref("relu_backward", dy, x),
        "relu_backward(dy, x) for x > 0",
        inputs={"dy": dy, "x": x},
    )


@relu_ex.subcheck("relu and relu_backward are right at the ends of the float range")
def _(relu, relu_backward):
    _elementwise_range(
        relu,
        relu_backward,
        lambda x: ref("relu", x),
        _relu_backward_ref,
        "relu",
        "relu_backward",
        RELU_RANGE_HINT,
    )


@relu_ex.subcheck("relu_backward passes a float64 gradient check")
def _(relu, relu_backward):
    _gradient_check(
        relu,
        relu_backward,
        _away_from_zero(),
        forward_name="relu",
        backward_name="relu_backward",
        ref_forward=lambda x: ref("relu", x),
        ref_backward=_relu_backward_ref,
    )


# -------------------------------------------------------------------------- leaky ReLU

leaky_ex = exercise("leaky_relu", ["leaky_relu", "leaky_relu_backward"])
leaky_ex.error_hints.extend(SHAPE_ERRORS)


def _leaky_wrong(alpha):
    return [
        WrongAnswer(
            lambda x, a=alpha: np.where(x > 0, a * x, x),
            "the slope alpha is on the wrong side: x > 0 passes x unchanged, x <= 0 "
            "becomes alpha * x.",
        ),
        WrongAnswer(
            lambda x: np.maximum(x, 0),
            "your output equals relu(x): negative inputs give alpha * x, not 0.",
        ),
        WrongAnswer(
            lambda x: np.where(x > 0, x, 0.01 * x),
            "your output uses alpha = 0.01 whatever alpha is passed: use the alpha argument.",
        ),
    ]


def _leaky_backward_wrong(alpha):
    return [
        WrongAnswer(
            lambda dy, x: np.where(x > 0, dy, 0),
            "your result equals relu_backward: where x <= 0 the slope is alpha, so the "
            "result is alpha * dy.",
        ),
        WrongAnswer(
            lambda dy, x, a=alpha: np.where(x > 0, 1, a).astype(x.dtype),
            "your result is the slope alone: multiply it by dy (chain rule).",
        ),
        WrongAnswer(
            lambda dy, x, a=alpha: np.where(x > 0, a * dy, dy),
            "the slope alpha is on the wrong side: it belongs where x <= 0.",
        ),
        WrongAnswer(
            lambda dy, x, a=alpha: np.where(x >= 0, dy, a * dy),
            "your result differs only where x == 0: use the negative side's slope alpha "
            "there (x > 0, not x >= 0), as nnlib and PyTorch do.",
        ),
        WrongAnswer(
            lambda dy, x: np.where(x > 0, dy, 0.01 * dy),
            "your result uses alpha = 0.01 whatever alpha is passed: use the alpha argument.",
        ),
    ]


def _leaky(alpha):
    """The reference forward and backward pass with slope ``alpha``."""
    return (
        lambda x: ref("leaky_relu", x, alpha),
        lambda dy, x: ref("leaky_relu_backward", dy, x, alpha),
    )


@leaky_ex.subcheck("leaky_relu and leaky_relu_backward with the default alpha = 0.01")
def _(leaky_relu, leaky_relu_backward):
    x = _grid()
    dy = _dy(x, seed=31)
    expect(
        leaky_relu(x),
        ref("leaky_relu", x),
        "leaky_relu(x)",
        inputs={"x": x},
        known=_leaky_wrong(0.01),
        args=(x,),
    )
    expect(
        leaky_relu_backward(dy, x),
        ref("leaky_relu_backward", dy, x),
        "leaky_relu_backward(dy, x)",
        inputs={"dy": dy, "x": x},
        known=_leaky_backward_wrong(0.01),
        args=(dy, x),
    )


@leaky_ex.subcheck("leaky_relu(x, alpha=0.2) uses the alpha it is given")
def _(leaky_relu, leaky_relu_backward):
    x = _grid(seed=3)
    expect(
        leaky_relu(x, alpha=0.2),
        ref("leaky_relu", x, 0.2),
        "leaky_relu(x, alpha=0.2)",
        inputs={"x": x},
        known=_leaky_wrong(0.2),
        args=(x,),
    )


@leaky_ex.subcheck("leaky_relu_backward(dy, x, alpha=0.2) equals dy * (1 if x > 0 else alpha)")
def _(leaky_relu, leaky_relu_backward):
    x = _grid(seed=4)
    dy = _dy(x)
    expect(
        leaky_relu_backward(dy, x, alpha=0.2),
        ref("leaky_relu_backward", dy, x, 0.2),
        "leaky_relu_backward(dy, x, alpha=0.2)",
        inputs={"dy": dy, "x": x},
        known=_leaky_backward_wrong(0.2),
        args=(dy, x),
    )


@leaky_ex.subcheck("leaky_relu and leaky_relu_backward keep float32 input float32")
def _(leaky_relu, leaky_relu_backward):
    x = _grid(np.float32)
    dy = _dy(x)
    expect(leaky_relu(x, alpha=0.2), ref("leaky_relu", x, 0.2), "leaky_relu(x) for float32 x")
    expect(
        leaky_relu_backward(dy, x, alpha=0.2),
        ref("leaky_relu_backward", dy, x, 0.2),
        "leaky_relu_backward(dy, x) for float32 dy and x",
        inputs={"dy": dy, "x": x},
    )


@leaky_ex.subcheck("leaky_relu and leaky_relu_backward work on 1-D, 3-D and empty arrays")
def _(leaky_relu, leaky_relu_backward):
    forward, backward = _leaky(0.2)
    _elementwise_shapes(
        lambda x: leaky_relu(x, alpha=0.2),
        lambda dy, x: leaky_relu_backward(dy, x, alpha=0.2),
        forward,
        backward,
        "leaky_relu",
        "leaky_relu_backward",
    )


@leaky_ex.subcheck("leaky_relu and leaky_relu_backward return a new array when nothing is negative")
def _(leaky_relu, leaky_relu_backward):
    x = _positive(seed=32)
    dy = _dy(x)
    expect(leaky_relu(x, alpha=0.2), ref("leaky_relu", x, 0.2), "leaky_relu(x) for x > 0")
    expect(
        leaky_relu_backward(dy, x, alpha=0.2),
        ref("leaky_relu_backward", dy, x, 0.2),
        "leaky_relu_backward(dy, x) for x > 0",
        inputs={"dy": dy, "x": x},
    )


@leaky_ex.subcheck("leaky_relu and leaky_relu_backward are right at the ends of the float range")
def _(leaky_relu, leaky_relu_backward):
    forward, backward = _leaky(0.2)
    _elementwise_range(
        lambda x: leaky_relu(x, alpha=0.2),
        lambda dy, x: leaky_relu_backward(dy, x, alpha=0.2),
        forward,
        backward,
        "leaky_relu",
        "leaky_relu_backward",
        LEAKY_RANGE_HINT,
    )


@leaky_ex.subcheck("leaky_relu_backward passes a float64 gradient check")
def _(leaky_relu, leaky_relu_backward):
    forward, backward = _leaky(0.2)
    _gradient_check(
        lambda x: leaky_relu(x, alpha=0.2),
        lambda dy, x: leaky_relu_backward(dy, x, alpha=0.2),
        _away_from_zero(),
        forward_name="leaky_relu",
        backward_name="leaky_relu_backward",
        ref_forward=forward,
        ref_backward=backward,
    )


# ----------------------------------------------------------------------------- sigmoid

sigmoid_ex = exercise("sigmoid", ["sigmoid", "sigmoid_backward"])
sigmoid_ex.error_hints.extend(SHAPE_ERRORS)

SIGMOID_STABLE_HINT = (
    "exp(-x) overflows for large negative x (and exp(x) for large positive x). Compute "
    "e = exp(-|x|), which is never above 1, and use 1 / (1 + e) where x >= 0 and "
    "e / (1 + e) where x < 0. np.where evaluates both branches, so both must be safe."
)
SIGMOID_CANCELS_HINT = (
    "a small sigmoid computed as a difference of two numbers close to 1 (1 - 1 / (1 + e), "
    "1 + tanh(x / 2), 1 - sigmoid(-x)) loses every digit: sigmoid(-40) is about 4e-18, "
    "not 0. The text's form for x < 0, e / (1 + e) with e = exp(-|x|), keeps full "
    "relative precision."
)
SIGMOID_WRONG = [
    WrongAnswer(
        lambda x: 1 / (1 + np.exp(x)),
        "your output equals sigmoid(-x): the formula is 1 / (1 + exp(-x)).",
    ),
    WrongAnswer(lambda x: np.tanh(x), "your output equals tanh(x), not the logistic sigmoid."),
]
SIGMOID_BACKWARD_WRONG = [
    WrongAnswer(
        lambda dy, x: dy * ref("sigmoid", x) * (1 + ref("sigmoid", x)),
        "your result is dy * s * (1 + s): the derivative is s * (1 - s), with a minus.",
    ),
    WrongAnswer(
        lambda dy, x: ref("sigmoid", x) * (1 - ref("sigmoid", x)),
        "your result is sigmoid'(x) alone: multiply it by dy (chain rule).",
    ),
    WrongAnswer(
        lambda dy, x: dy * x * (1 - x),
        "your result is dy * x * (1 - x): the formula s * (1 - s) takes s = sigmoid(x), not x.",
    ),
    WrongAnswer(
        lambda dy, x: dy * ref("sigmoid", x),
        "your result is dy * sigmoid(x): the derivative is s * (1 - s).",
    ),
]


def _sigmoid64(x):
    """The exact sigmoid in float64, relatively accurate everywhere: exp(-log(1 + e^-x))."""
    return np.exp(-np.logaddexp(0.0, -np.asarray(x, np.float64)))


@sigmoid_ex.subcheck("sigmoid(x) equals 1 / (1 + exp(-x)) on a (4, 6) float64 array")
def _(sigmoid, sigmoid_backward):
    x = _grid(seed=5)
    expect(
        sigmoid(x),
        ref("sigmoid", x),
        "sigmoid(x)",
        inputs={"x": x},
        known=SIGMOID_WRONG,
        args=(x,),
    )


@sigmoid_ex.subcheck("sigmoid is finite and warning-free at x = -1000 and 1000")
def _(sigmoid, sigmoid_backward):
    for dtype in (np.float64, np.float32):
        x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0], dtype=dtype)
        got = _finite_without_warnings(sigmoid, x, "sigmoid", SIGMOID_STABLE_HINT)
        expect(got, ref("sigmoid", x), f"sigmoid at large |x| ({np.dtype(dtype)})", inputs={"x": x})


@sigmoid_ex.subcheck("sigmoid keeps its relative precision over the whole range")
def _(sigmoid, sigmoid_backward):
    points = {
        np.float64: [-700.0, -300.0, -100.0, -40.0, -20.0, -5.0, 0.0, 5.0, 20.0, 40.0, 700.0],
        np.float32: [-85.0, -60.0, -40.0, -20.0, -5.0, 0.0, 5.0, 20.0, 40.0, 85.0],
    }
    for dtype, values in points.items():
        x = np.array(values, dtype=dtype)
        got = _finite_without_warnings(sigmoid, x, "sigmoid", SIGMOID_STABLE_HINT)
        expect(got, ref("sigmoid", x), f"sigmoid over the {np.dtype(dtype)} range", inputs={"x": x})
        _expect_relative(
            got, x, _sigmoid64(x), f"sigmoid(x) ({np.dtype(dtype)})", hint=SIGMOID_CANCELS_HINT
        )


@sigmoid_ex.subcheck("sigmoid and sigmoid_backward keep float32 input float32")
def _(sigmoid, sigmoid_backward):
    x = _grid(np.float32, seed=6)
    dy = _dy(x)
    expect(sigmoid(x), ref("sigmoid", x), "sigmoid(x) for float32 x", inputs={"x": x})
    expect(
        sigmoid_backward(dy, x),
        ref("sigmoid_backward", dy, x),
        "sigmoid_backward(dy, x) for float32 dy and x",
        inputs={"dy": dy, "x": x},
    )


@sigmoid_ex.subcheck("sigmoid and sigmoid_backward work on 1-D, 3-D and empty arrays")
def _(sigmoid, sigmoid_backward):
    _elementwise_shapes(
        sigmoid,
        sigmoid_backward,
        lambda x: ref("sigmoid", x),
        lambda dy, x: ref("sigmoid_backward", dy, x),
        "sigmoid",
        "sigmoid_backward",
    )


@sigmoid_ex.subcheck("sigmoid_backward(dy, x) equals dy * s * (1 - s)")
def _(sigmoid, sigmoid_backward):
    x = _grid(seed=7)
    dy = _dy(x)
    expect(
        sigmoid_backward(dy, x),
        ref("sigmoid_backward", dy, x),
        "sigmoid_backward(dy, x)",
        inputs={"dy": dy, "x": x},
        known=SIGMOID_BACKWARD_WRONG,
        args=(dy, x),
    )


@sigmoid_ex.subcheck("sigmoid_backward passes a float64 gradient check")
def _(sigmoid, sigmoid_backward):
    _gradient_check(
        sigmoid,
        sigmoid_backward,
        _away_from_zero(seed=8),
        forward_name="sigmoid",
        backward_name="sigmoid_backward",
        ref_forward=lambda x: ref("sigmoid", x),
        ref_backward=lambda dy, x: ref("sigmoid_backward", dy, x),
    )


@sigmoid_ex.subcheck("sigmoid_backward is finite and warning-free at x = -1000 and 1000")
def _(sigmoid, sigmoid_backward):
    for dtype in (np.float64, np.float32):
        x = np.array([-1000.0, 0.0, 1000.0], dtype=dtype)
        dy = np.ones_like(x)
        got = _finite_without_warnings(
            lambda z, dy=dy: sigmoid_backward(dy, z), x, "sigmoid_backward", SIGMOID_STABLE_HINT
        )
        expect(
            got,
            ref("sigmoid_backward", dy, x),
            f"sigmoid_backward at large |x| ({np.dtype(dtype)})",
            inputs={"x": x},
        )


# ------------------------------------------------------------------------------- tanh

tanh_ex = exercise("tanh_backward", ["tanh_backward"])
tanh_ex.error_hints.extend(SHAPE_ERRORS)

TANH_BACKWARD_WRONG = [
    WrongAnswer(
        lambda dy, x: dy * (1 - x**2),
        "your result is dy * (1 - x**2): the formula is 1 - tanh(x)**2; apply tanh first.",
    ),
    WrongAnswer(
        lambda dy, x: dy * (1 - np.tanh(x)),
        "your result is dy * (1 - tanh(x)): the tanh is squared, 1 - tanh(x)**2.",
    ),
    WrongAnswer(
        lambda dy, x: 1 - np.tanh(x) ** 2,
        "your result is tanh'(x) alone: multiply it by dy (chain rule).",
    ),
    WrongAnswer(
        lambda dy, x: dy * (1 + np.tanh(x) ** 2),
        "your result is dy * (1 + tanh(x)**2): the derivative is 1 - tanh(x)**2, with a minus.",
    ),
    WrongAnswer(
        lambda dy, x: dy / np.cosh(x),
        "your result is dy / cosh(x): the derivative is 1 / cosh(x)**2 = 1 - tanh(x)**2.",
    ),
]


def _tanh_backward_ref(dy, x):
    return ref("tanh_backward", dy, x)


@tanh_ex.subcheck("tanh_backward(dy, x) equals dy * (1 - tanh(x)**2)")
def _(tanh_backward):
    x = _grid(seed=9) / 2
    dy = _dy(x)
    expect(
        tanh_backward(dy, x),
        ref("tanh_backward", dy, x),
        "tanh_backward(dy, x)",
        inputs={"dy": dy, "x": x},
        known=TANH_BACKWARD_WRONG,
        args=(dy, x),
    )


@tanh_ex.subcheck("tanh_backward keeps float32 input float32, on 1-D, 3-D and empty arrays too")
def _(tanh_backward):
    x = _grid(np.float32, seed=10) / np.float32(2)
    dy = _dy(x)
    expect(
        tanh_backward(dy, x),
        ref("tanh_backward", dy, x),
        "tanh_backward(dy, x) for float32 dy and x",
        inputs={"dy": dy, "x": x},
    )
    for i, shape in enumerate(SHAPES):
        x = _grid(np.float32 if i % 2 else np.float64, shape, seed=60 + i) / 2
        dy = _dy(x, seed=70 + i)
        expect(
            tanh_backward(dy, x),
            ref("tanh_backward", dy, x),
            f"tanh_backward(dy, x) for x of shape {shape}",
            inputs={"dy": dy, "x": x},
        )


@tanh_ex.subcheck("tanh_backward passes a float64 gradient check")
def _(tanh_backward):
    _gradient_check(
        np.tanh,
        tanh_backward,
        _away_from_zero(seed=11),
        forward_name="np.tanh",
        backward_name="tanh_backward",
        ref_forward=np.tanh,
        ref_backward=_tanh_backward_ref,
    )


@tanh_ex.subcheck("tanh_backward is finite and warning-free at x = -1000 and 1000")
def _(tanh_backward):
    for dtype in (np.float64, np.float32):
        x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=dtype)
        dy = np.ones_like(x)
        got = _finite_without_warnings(
            lambda z, dy=dy: tanh_backward(dy, z),
            x,
            "tanh_backward",
            "cosh(x) overflows for large |x|; 1 - np.tanh(x)**2 stays finite.",
        )
        expect(
            got,
            ref("tanh_backward", dy, x),
            f"tanh_backward at large |x| ({np.dtype(dtype)})",
            inputs={"x": x},
        )


# ------------------------------------------------------------- ELU's derivative, derived

elu_ex = exercise("elu_backward", ["elu_backward"])
elu_ex.error_hints.extend(SHAPE_ERRORS)

ELU_OVERFLOW_HINT = (
    "exp(x) overflowed for a large positive x: np.where evaluates both branches on every "
    "element, so the negative side's formula must be safe for positive x too. Take the "
    "exponential of np.minimum(x, 0) (equal to x where it is used)."
)


def _elu_backward_wrong(alpha):
    a = alpha
    return [
        WrongAnswer(
            lambda dy, x: np.where(x > 0, dy, dy * a * np.expm1(np.minimum(x, 0))),
            "on the negative side you multiplied dy by alpha * (e^x - 1), the function "
            "itself: its derivative is alpha * e^x (the -1 is a constant, its derivative 0).",
        ),
        WrongAnswer(
            lambda dy, x: np.where(x > 0, dy, dy * np.exp(np.minimum(x, 0))),
            "alpha is missing on the negative side: d/dx alpha * (e^x - 1) = alpha * e^x.",
        ),
        WrongAnswer(
            lambda dy, x: np.where(x >= 0, dy, dy * a * np.exp(np.minimum(x, 0))),
            "your result differs only where x == 0: there use the negative side's slope, "
            "alpha * e^0 = alpha (x > 0, not x >= 0), as nnlib and PyTorch do.",
        ),
        WrongAnswer(
            lambda dy, x: np.where(x > 0, 1.0, a * np.exp(np.minimum(x, 0))),
            "your result is elu'(x) alone: multiply it by the upstream gradient dy (chain rule).",
        ),
        WrongAnswer(
            lambda dy, x: np.where(x > 0, dy, dy * (a * np.expm1(np.minimum(x, 0)) + 1)),
            "on the negative side elu'(x) = alpha * e^x = elu(x) + alpha, not elu(x) + 1 "
            "(the two agree only for alpha = 1).",
        ),
        WrongAnswer(
            lambda dy, x: np.where(x > 0, a * dy, dy * a * np.exp(np.minimum(x, 0))),
            "on the positive side elu(x) = x, whose slope is 1: there the result is dy itself.",
        ),
    ]


def _elu_backward_ref(alpha):
    return lambda dy, x: ref("elu_backward", dy, x, alpha)


def _elu_expect(elu_backward, x, dy, alpha, what):
    expect(
        elu_backward(dy, x, alpha=alpha),
        ref("elu_backward", dy, x, alpha),
        what,
        inputs={"dy": dy, "x": x},
        known=_elu_backward_wrong(alpha),
        args=(dy, x),
    )


@elu_ex.subcheck("elu_backward(dy, x) with the default alpha = 1 on a (4, 6) float64 array")
def _(elu_backward):
    x = _grid(seed=90)
    dy = _dy(x, seed=91)
    expect(
        elu_backward(dy, x),
        ref("elu_backward", dy, x, 1.0),
        "elu_backward(dy, x)",
        inputs={"dy": dy, "x": x},
        known=_elu_backward_wrong(1.0),
        args=(dy, x),
    )


@elu_ex.subcheck("elu_backward(dy, x, alpha) for alpha = 0.5 and 2, at x = 0 too")
def _(elu_backward):
    for alpha, seed in ((0.5, 92), (2.0, 93)):
        x = _grid(seed=seed)
        _elu_expect(elu_backward, x, _dy(x, seed=seed + 10), alpha, f"elu_backward(alpha={alpha})")


@elu_ex.subcheck("elu_backward keeps float32 input float32, on 1-D, 3-D and empty arrays too")
def _(elu_backward):
    x = _grid(np.float32, seed=94)
    dy = _dy(x)
    expect(
        elu_backward(dy, x, alpha=0.5),
        ref("elu_backward", dy, x, 0.5),
        "elu_backward(dy, x, alpha=0.5) for float32 dy and x",
        inputs={"dy": dy, "x": x},
    )

    def with_dy(shape, dtype, i):
        x = _grid(dtype, shape, seed=95 + i)
        dy = _dy(x, seed=96 + i)
        return (dy, x), {"dy": dy, "x": x}

    expect_shapes(
        lambda dy, x: elu_backward(dy, x, alpha=0.5),
        with_dy,
        _elu_backward_ref(0.5),
        "elu_backward(dy, x, alpha=0.5)",
    )


@elu_ex.subcheck("elu_backward returns a new array when nothing is negative")
def _(elu_backward):
    x = _positive(seed=97)
    dy = _dy(x)
    expect(
        elu_backward(dy, x, alpha=0.5),
        ref("elu_backward", dy, x, 0.5),
        "elu_backward(dy, x) for x > 0",
        inputs={"dy": dy, "x": x},
    )


@elu_ex.subcheck("elu_backward is finite, warning-free and right at the ends of the float range")
def _(elu_backward):
    for dtype in (np.float64, np.float32):
        x = np.concatenate([ends_of_range(dtype), np.array([-1000.0, -50.0, 50.0], dtype)])
        dy = np.roll(x, 3)
        got = _finite_without_warnings(
            lambda z, dy=dy: elu_backward(dy, z, alpha=0.5),
            x,
            "elu_backward",
            ELU_OVERFLOW_HINT,
        )
        expect(
            got,
            ref("elu_backward", dy, x, 0.5),
            f"elu_backward at the ends of the {np.dtype(dtype).name} range",
            inputs={"dy": dy, "x": x},
            known=_elu_backward_wrong(0.5),
            args=(dy, x),
        )


@elu_ex.subcheck("elu_backward passes a float64 gradient check against nnlib's elu")
def _(elu_backward):
    _gradient_check(
        lambda x: ref("elu", x, 0.5),
        lambda dy, x: elu_backward(dy, x, alpha=0.5),
        _away_from_zero(seed=98),
        forward_name="elu",
        backward_name="elu_backward",
        ref_forward=lambda x: ref("elu", x, 0.5),
        ref_backward=_elu_backward_ref(0.5),
    )


# --------------------------------------------- where the sigmoid's gradient is exactly 0

flat_ex = exercise("sigmoid_flat", ["sigmoid_flat_from"])

# The exact answer: for x >= 0, s = 1 / (1 + e) with e = exp(-x); 1 + e rounds to 1 (and
# then 1 - s = 0) once e <= eps / 2, half the spacing of the dtype's numbers just above 1
# (round to nearest, ties to even): x* = ln(2 / eps). 7.62 (float16), 16.64 (float32),
# 36.74 (float64).
# The tolerance: 0.05. A bisection, or a scan in steps of 0.01, finds x* within 0.01;
# the dtype's own rounding of x (spacing 0.004 at 7.6 in float16) and of exp(-x) moves
# the measured point by less than that; every wrong answer below is at least ln 2 = 0.69
# away on some dtype, except the coarse scan, which is named by its own fingerprint.
FLAT_TOL = 0.05
FLAT_DTYPES = (np.float32, np.float64, np.float16)


def flat_point(dtype) -> float:
    return math.log(2 / float(np.finfo(dtype).eps))


FLAT_WRONG = (
    (
        lambda d: flat_point(np.float64),
        "your value is float64's for every dtype: compute s = 1 / (1 + exp(-x)) in the "
        "dtype you are given (dtype(x), dtype(1)); a Python float or np.exp of a Python "
        "float is float64.",
    ),
    (
        lambda d: -math.log(float(np.finfo(d).eps)),
        "your point is where exp(-x) falls below eps: 1 + exp(-x) rounds to 1 already "
        "at half of that, eps / 2 (round to nearest), ln 2 earlier.",
    ),
    (
        # exp(-x) rounds to 0 below half the smallest subnormal number
        lambda d: math.log(2) - math.log(float(np.finfo(d).smallest_subnormal)),
        "your point is where exp(-x) underflows to 0: that is where the exact form "
        "e / (1 + e)^2 becomes 0. The question is about s * (1 - s), and s rounds to 1 "
        "long before e underflows.",
    ),
    (
        lambda d: -math.log(float(np.finfo(d).tiny)),
        "your point is where exp(-x) stops being a normal number: s = 1 / (1 + e) rounds "
        "to 1 long before, once 1 + e rounds to 1.",
    ),
)


# a wrong answer's fingerprint: within 0.3 of it on every dtype (each is at least ln 2
# from the right answer, so a right answer never matches)
FLAT_FINGERPRINT = 0.3


def _flat_hint(found: dict) -> str:
    for wrong, hint in FLAT_WRONG:
        if all(abs(g - wrong(d)) <= FLAT_FINGERPRINT for d, g in found.items()):
            return hint
    values = list(found.values())
    if len(values) > 1 and max(values) - min(values) <= FLAT_TOL:
        return (
            "your function gives the same x for every dtype: the point depends on the "
            "dtype's precision, so compute in the dtype it is given."
        )
    if all(abs(g - flat_point(d)) < 1 for d, g in found.items()):
        return (
            "your values are within 1 of the right ones but not within 0.05: search "
            "finer (bisection, or steps of 0.01 near the point)."
        )
    return ""


def _check_flat(sigmoid_flat_from, dtypes):
    found = {
        d: as_number(sigmoid_flat_from(d), f"sigmoid_flat_from(np.{np.dtype(d).name})")
        for d in dtypes
    }
    bad = [d for d, g in found.items() if not abs(g - flat_point(d)) <= FLAT_TOL]
    if not bad:
        return
    for d in FLAT_DTYPES:  # every dtype's answer, so the fingerprint fits all of them
        if d not in found:
            got = quiet(lambda d=d: as_number(sigmoid_flat_from(d), "sigmoid_flat_from"))
            if got is not None:
                found[d] = got
    d = bad[0]
    message = (
        f"sigmoid_flat_from(np.{np.dtype(d).name}) = {found[d]:.4g}; in "
        f"{np.dtype(d).name}, s * (1 - s) with s = 1 / (1 + exp(-x)) is first exactly 0 at "
        f"x = {flat_point(d):.4g} (within {FLAT_TOL})"
    )
    hint = _flat_hint(found)
    if hint:
        message += f"\n  Hint: {hint}"
    raise CheckFailed(message)


@flat_ex.subcheck("sigmoid_flat_from(np.float32): where float32's s * (1 - s) becomes 0")
def _(sigmoid_flat_from):
    _check_flat(sigmoid_flat_from, (np.float32,))


@flat_ex.subcheck("sigmoid_flat_from finds it for float64 and float16 as well")
def _(sigmoid_flat_from):
    _check_flat(sigmoid_flat_from, FLAT_DTYPES)


# ----------------------------------------------------------------------------- softmax

softmax_ex = exercise("softmax", ["softmax"])
softmax_ex.error_hints.append(
    (
        ValueError,
        "broadcast",
        "the sum lost its axis: use e.sum(axis=axis, keepdims=True) so it broadcasts back.",
    )
)

SOFTMAX_OVERFLOW_HINT = (
    "exp(x) overflows for large x: subtract the max along the axis first; "
    "softmax(x) = softmax(x - max(x)) exactly."
)


def _naive_softmax(x, axis):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _softmax_wrong(axis, ndim, *, default=False):
    """Wrong answers for softmax along ``axis`` of an ``ndim``-D array. Some of them equal
    the right answer on moderate logits (no max shift, the global max): :func:`_expect`
    keeps only those that differ from it on the inputs at hand."""
    wrong = []
    for other in range(ndim):
        if other == axis % ndim:
            continue
        hint = (
            f"your output equals softmax over axis {other}: the default is axis=-1, the "
            "last axis (def softmax(x, axis=-1))."
            if default
            else f"your output equals softmax over axis {other}: normalise along axis "
            f"{axis} (the axis argument)."
        )
        wrong.append(WrongAnswer(lambda x, o=other: ref("softmax", x, axis=o), hint))
    return [
        *wrong,
        WrongAnswer(
            lambda x: np.exp(x - x.max()) / np.exp(x - x.max()).sum(),
            "your output sums to 1 over the whole array: sum over the axis only "
            "(e.sum(axis=axis, keepdims=True)).",
        ),
        WrongAnswer(
            lambda x: np.exp(x - x.max()) / np.exp(x - x.max()).sum(axis=axis, keepdims=True),
            "you subtracted the max of the whole array: subtract each slice's own max, "
            "x.max(axis=axis, keepdims=True), or a slice far below it underflows to 0 / 0.",
        ),
        WrongAnswer(lambda x: _naive_softmax(x, axis), SOFTMAX_OVERFLOW_HINT),
    ]


def _expect(got, want, what, *, inputs=None, known=(), args=()):
    """:func:`expect`, with only the wrong answers that differ from the right one on these
    inputs (a fingerprint the right answer also has is no evidence of a mistake)."""
    distinct = [w for w in known if not matches(want, quiet(w.fn, *args))]
    expect(got, want, what, inputs=inputs, known=distinct, args=args)


@softmax_ex.subcheck("softmax(x) over the last axis of a (4, 5) array")
def _(softmax):
    x = _grid(shape=(4, 5), seed=12)
    _expect(softmax(x), ref("softmax", x), "softmax(x)", known=_softmax_wrong(-1, 2), args=(x,))


@softmax_ex.subcheck("softmax(x, axis=0) normalises each column")
def _(softmax):
    x = _grid(shape=(4, 5), seed=13)
    _expect(
        softmax(x, axis=0),
        ref("softmax", x, axis=0),
        "softmax(x, axis=0)",
        known=_softmax_wrong(0, 2),
        args=(x,),
    )


@softmax_ex.subcheck("softmax(x, axis=1) on a (2, 3, 4) array")
def _(softmax):
    x = _grid(shape=(2, 3, 4), seed=14)
    _expect(
        softmax(x, axis=1),
        ref("softmax", x, axis=1),
        "softmax(x, axis=1)",
        known=_softmax_wrong(1, 3),
        args=(x,),
    )


@softmax_ex.subcheck("softmax(x) normalises the last axis by default on 3-D, 1-D and empty arrays")
def _(softmax):
    x = _grid(shape=(2, 3, 4), seed=16)
    _expect(
        softmax(x),
        ref("softmax", x),
        "softmax(x) for x of shape (2, 3, 4)",
        known=_softmax_wrong(-1, 3, default=True),
        args=(x,),
    )
    for x in (_grid(shape=(5,), seed=17), np.zeros((0, 5))):
        _expect(softmax(x), ref("softmax", x), f"softmax(x) for x of shape {x.shape}")


@softmax_ex.subcheck("softmax is finite, warning-free and accurate for logits up to 25000")
def _(softmax):
    rows = {
        np.float64: [
            [25000.0, 24999.0, 24990.0],
            [0.0, -1.0, -2.0],
            [-25000.0, -24999.0, -25001.0],
            [0.0, -700.0, -30.0],
            [1000.0, 0.0, -1000.0],
        ],
        # float32 holds 25000 only to 0.002, which moves its softmax by 0.2%: a right
        # answer cannot be more accurate than its input, so float32 stops at 100
        np.float32: [
            [100.0, 99.0, 90.0],
            [-100.0, -99.0, -101.0],
            [0.0, -80.0, -30.0],
        ],
    }
    for dtype, values in rows.items():
        x = np.array(values, dtype=dtype)
        known = _softmax_wrong(-1, 2)
        got = _finite_without_warnings(
            softmax,
            x,
            "softmax",
            "an exponent overflowed: subtract each row's max first (keepdims=True); the "
            "result is the same and every exp(...) is at most 1.",
            known=known,
        )
        what = f"softmax at large |x| ({np.dtype(dtype)})"
        _expect(got, ref("softmax", x), what, known=known, args=(x,))
        _expect_relative(
            got,
            x,
            ref("softmax", x.astype(np.float64)),
            what,
            hint="a probability lost its digits: compute exp(x - max) / sum(exp(x - max)) "
            "along the axis, in the input's dtype.",
        )


def _softmax_properties_hold(softmax, x):
    """Every row sums to 1, entries lie in [0, 1], and shifting a row changes nothing.

    The rows and their shifted copies go in one call (softmax works row by row)."""
    both = np.concatenate([x, x - x.max(axis=-1, keepdims=True) + 3.0])
    out = softmax(both, axis=-1)
    if not isinstance(out, np.ndarray) or out.shape != both.shape:
        return False
    p, shifted = out[: len(x)], out[len(x) :]
    return (
        bool(np.all((p >= 0) & (p <= 1)))
        and np.allclose(p.sum(axis=-1), 1, rtol=0, atol=1e-9)
        and np.allclose(p, shifted, rtol=1e-9, atol=1e-12)
    )


@softmax_ex.subcheck("softmax rows sum to 1 and ignore a shift, for any logits")
def _(softmax):
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    logits = hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=5),
        elements=st.floats(-800, 800, allow_nan=False),
    )
    # in make grade each example is a round trip to the kernel
    expect_property(
        lambda x: _softmax_properties_hold(softmax, x),
        logits,
        "softmax's row properties",
        max_examples=60,
    )


@softmax_ex.subcheck("softmax keeps float32 input float32")
def _(softmax):
    x = _grid(np.float32, shape=(3, 4), seed=15)
    expect(softmax(x), ref("softmax", x), "softmax(x) for float32 x")


# ----------------------------------------------------------------- ReLU with Numba prange

numba_ex = exercise("relu_numba", ["relu_numba"])

add_numba_subchecks(
    numba_ex,
    "relu_numba",
    "x",
    lambda: (np.linspace(-1.0, 1.0, 8),),
    "`for i in prange(x.size):` over the elements",
)


@numba_ex.subcheck("relu_numba(x) equals max(x, 0) on 1-D float64 arrays")
def _(relu_numba):
    for n in (1, 1000, 0):
        x = np.random.default_rng(16 + n).standard_normal(n)
        x[::5] = 0.0
        expect(
            relu_numba(x),
            ref("relu", x),
            f"relu_numba(x) for n = {n}",
            inputs={"x": x},
            known=RELU_WRONG if n else (),
            args=(x,),
        )


@numba_ex.subcheck("relu_numba keeps float32 input float32")
def _(relu_numba):
    x = np.random.default_rng(17).standard_normal(100).astype(np.float32)
    expect(relu_numba(x), ref("relu", x), "relu_numba(x) for float32 x", inputs={"x": x})


def _distinct_positive(seed):
    """(x,) with every relu(x) nonzero and different for each seed: an element the
    kernel does not write cannot hold the right value by luck (neither a zero, nor a
    value left over from the call before)."""
    x = np.random.default_rng(80 + seed).uniform(1.0, 2.0, 4099) + 2.0 * seed
    return (x,)


@numba_ex.subcheck("relu_numba writes every element of its result")
def _(relu_numba):
    expect_every_element_written(
        relu_numba, _distinct_positive, lambda x: ref("relu", x), "relu_numba(x) for n = 4099"
    )


# -------------------------------------------------------------------- ReLU as a CUDA kernel

cuda_ex = exercise("relu_cuda", ["relu_kernel", "relu_gpu"])
cuda_ex.error_hints.append(
    (
        IndexError,
        "",
        "a thread past the end of the array indexed it: guard the body with `if i < x.size:`.",
    )
)

# relu_gpu's sizes: one element, less than and past four blocks of 256, and many
# blocks. The simulator runs each thread as a Python thread (a third of a millisecond
# each, more in a busy kernel), so there "many" is just past eight blocks of 256.
MANY_BLOCKS, MANY_BLOCKS_SIMULATED = 100_000, 2049
PAST_FOUR_BLOCKS = 1100  # 4 * 256 + 76


def _where_it_ran(facts):
    if facts.get("kind") != "cuda":
        return ["relu_kernel is not a CUDA kernel: nothing ran on a GPU"]
    where = "under the CUDA simulator (no GPU here)" if facts.get("simulator") else "on the GPU"
    return [
        f"ran {where}",
        f"relu_gpu was checked at n = 1, 1000, {PAST_FOUR_BLOCKS} and {MANY_BLOCKS} "
        f"({MANY_BLOCKS_SIMULATED} under the simulator)",
    ]


cuda_ex.notes = _where_it_ran

KINDS = {"python": "plain Python function", "numba": "Numba CPU function (@njit)"}


def _kernel(relu_kernel) -> dict:
    """relu_kernel's facts, if it is a CUDA kernel; else a failure with the decorator."""
    facts = relu_kernel.facts()
    if facts["kind"] != "cuda":
        kind = KINDS.get(facts["kind"], facts["kind"])
        raise CheckFailed(
            f"relu_kernel is a {kind}, not a CUDA kernel. Hint: put @cuda.jit on the line "
            "above `def relu_kernel(x, out):`."
        )
    return facts


def _cuda_input(n, dtype=np.float64, seed=18, last=1):
    """Both signs and zeros, the last element's sign ``last``. A launch that stops short
    of the end leaves what the memory held there: 0 in fresh memory (wrong for a positive
    last element) or a stale copy of x (wrong for a negative one)."""
    x = np.random.default_rng(seed).standard_normal(n).astype(dtype)
    x[::7] = 0.0
    x[-1:] = last * (np.abs(x[-1:]) + 0.5)
    return x


def _launch(relu_kernel, grid, block, x, out, prefix=None):
    """``relu_kernel[grid, block](x, out)`` on device copies: ``out`` after the launch.
    A kernel that writes into ``x`` fails."""
    x_after, out_after = relu_kernel.launch(grid, block, x, out, prefix=prefix)
    if not np.array_equal(x_after, x, equal_nan=True):
        raise CheckFailed(
            "relu_kernel changed its input x on the device: the caller's array is not "
            "yours to change. Hint: read x[i], write only out[i]."
        )
    return out_after


# set on relu_kernel by the [4, 256] sub-check: whether the kernel itself is right on a
# launch that covers every element (the evidence that a shortfall is relu_gpu's launch)
FULL_LAUNCH_RIGHT = "full_launch_right"


def _too_few_threads(got, want, x, what, n, kernel_right):
    """Fail with the rounding hint when the evidence holds: the kernel is right on a full
    launch, and relu_gpu's result is right up to a whole number of 64-thread groups and
    past it holds what unwritten memory holds (zeros, or a stale copy of x), or nothing
    right at all."""
    if not kernel_right or not isinstance(got, np.ndarray) or got.shape != want.shape:
        return
    if got.dtype != want.dtype:
        return
    atol, rtol = tolerance(want.dtype)
    bad = np.flatnonzero(~np.isclose(got, want, atol=atol, rtol=rtol))
    if not bad.size:
        return
    first = int(bad[0])
    covered = first - first % 64
    tail = got[covered:]
    unwritten = first == covered or np.all(tail == 0) or np.array_equal(tail, x[covered:])
    if covered > 0 and unwritten:
        raise CheckFailed(
            f"{what}: the first {covered} of {n} elements are right, the rest are not: the "
            "launch has fewer threads than x has elements (blocks * threads < x.size). "
            "Hint: compute the number of blocks from x.size and round up, blocks = "
            "(x.size + threads - 1) // threads (or math.ceil(x.size / threads)); a fixed "
            "grid such as [4, 256] covers only 1024 elements."
        )


@cuda_ex.subcheck("relu_kernel is a CUDA kernel (@cuda.jit)")
def _(relu_kernel, relu_gpu):
    _kernel(relu_kernel)


@cuda_ex.subcheck("relu_kernel computes all 1000 elements when launched as [4, 256]")
def _(relu_kernel, relu_gpu):
    _kernel(relu_kernel)
    x = _cuda_input(1000)
    want = ref("relu", x)
    got = _launch(relu_kernel, 4, 256, x, np.full_like(x, np.nan))
    setattr(relu_kernel, FULL_LAUNCH_RIGHT, _same(got, want))
    bad = np.flatnonzero(~np.isclose(got, want))
    if bad.size and bad[0] >= 256 and np.isclose(got[:256], want[:256]).all():
        raise CheckFailed(
            f"only the first 256 elements are right (element {bad[0]} is not): every block "
            "writes the same elements. Hint: the global index is i = cuda.grid(1), i.e. "
            "cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x."
        )
    expect(
        got,
        want,
        "out after relu_kernel[4, 256](x, out)",
        inputs={"x": x},
        known=RELU_WRONG,
        args=(x,),
    )


@cuda_ex.subcheck("relu_kernel leaves memory past the end alone (300 elements, [2, 256])")
def _(relu_kernel, relu_gpu):
    _kernel(relu_kernel)
    n, sentinel = 300, 12345.0
    x_big = np.concatenate([_cuda_input(n), np.ones(212)])
    try:
        out_big = _launch(relu_kernel, 2, 256, x_big, np.full(512, sentinel), prefix=[n, n])
    except CheckFailed:
        raise
    except Exception as err:
        raise CheckFailed(
            f"launching 512 threads on 300 elements failed ({type(err).__name__}: {err}). "
            "Hint: threads past the end must do nothing: `if i < x.size:` around the write."
        ) from None
    if not np.all(out_big[n:] == sentinel):
        raise CheckFailed(
            "threads past the end of the array wrote into memory after it. Hint: guard the "
            "write with `if i < x.size:`."
        )
    x = x_big[:n]
    expect(out_big[:n], ref("relu", x), "out after relu_kernel[2, 256](x, out)", inputs={"x": x})


def _expect_relu_gpu(relu_kernel, relu_gpu, n, seed, last=1):
    x = _cuda_input(n, seed=seed, last=last)
    got, want = relu_gpu(x), ref("relu", x)
    what = f"relu_gpu(x) for n = {n}"
    _too_few_threads(got, want, x, what, n, getattr(relu_kernel, FULL_LAUNCH_RIGHT, False))
    expect(got, want, what, inputs={"x": x}, known=RELU_WRONG, args=(x,))


# (one sub-check a size or two: each stays well inside the time limit under the simulator)
@cuda_ex.subcheck("relu_gpu(x) equals max(x, 0) for n = 1 and n = 1000")
def _(relu_kernel, relu_gpu):
    for n, seed in ((1, 19), (1000, 20)):
        _expect_relu_gpu(relu_kernel, relu_gpu, n, seed)


@cuda_ex.subcheck(f"relu_gpu(x) covers every element for n = {PAST_FOUR_BLOCKS}, past four blocks")
def _(relu_kernel, relu_gpu):
    # The 76 elements past four blocks hold both signs: memory a short launch leaves
    # unwritten holds zeros (wrong where x > 0) or a stale copy of this x (wrong where
    # x < 0), or a mixture, and none of those is max(x, 0) everywhere. One element past
    # the end would not do: a stale copy of x is right there when it is positive, and
    # zeros when it is negative. Twice, with the last element positive then negative.
    for seed, last in ((21, 1), (23, -1)):
        _expect_relu_gpu(relu_kernel, relu_gpu, PAST_FOUR_BLOCKS, seed, last)


@cuda_ex.subcheck("relu_gpu(x) covers every element of an array of many blocks")
def _(relu_kernel, relu_gpu):
    facts = relu_kernel.facts()
    simulated = facts.get("simulator") or facts.get("kind") != "cuda"
    n = MANY_BLOCKS_SIMULATED if simulated else MANY_BLOCKS
    _expect_relu_gpu(relu_kernel, relu_gpu, n, 22)


@cuda_ex.subcheck("relu_gpu keeps float32 input float32")
def _(relu_kernel, relu_gpu):
    x = _cuda_input(40, np.float32, seed=20)
    expect(relu_gpu(x), ref("relu", x), "relu_gpu(x) for float32 x", inputs={"x": x})
