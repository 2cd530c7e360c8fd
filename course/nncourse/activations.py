"""Checks for exercise set 01, activation functions (``solutions/01_activations.ipynb``).

The reference for every value is ``nnlib.functional`` on the ``numpy`` backend. Inputs
come from fixed seeds, so a verdict never changes between runs. Every exercise lists
the wrong answers learners typically write, so the feedback can name the mistake.
"""

from __future__ import annotations

import numpy as np

from nnlib import functional as F
from nnlib.gradient_check import check_vjp

from .checks import (
    CheckFailed,
    WrongAnswer,
    exercise,
    expect,
    expect_property,
    expect_unchanged,
    matches,
    quiet,
)
from .numba_checks import call_nopython, dispatcher, prange_loops


def ref(name, *args, **kwargs):
    return getattr(F, name)(*args, backend="numpy", **kwargs)


def _grid(dtype=np.float64, shape=(4, 6), seed=0):
    """(4, 6) values with exact zeros and both signs, no value within 1e-3 of a kink."""
    x = np.random.default_rng(seed).standard_normal(shape) * 3
    x = np.where(np.abs(x) < 1e-3, 0.5, x)
    x.flat[::7] = 0.0
    return x.astype(dtype)


def _away_from_zero(shape=(3, 5), seed=1):
    """float64 values with |x| >= 0.1: central differences are exact off the kink."""
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(x >= 0, x + 0.1, x - 0.1)


def _dy(x, seed=2):
    return np.random.default_rng(seed).standard_normal(x.shape).astype(x.dtype)


def _gradient_check(forward, backward, x, name):
    result = check_vjp(forward, backward, x)
    if not result.passed:
        raise CheckFailed(
            f"{name} disagrees with central differences of the forward pass: {result} "
            "(cs231n's rule: below 1e-7 is right, above 1e-4 is almost certainly a bug). "
            "Hint: derive f'(x) again on paper and multiply it by dy."
        )


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
    got = np.asarray(got)
    if not np.all(np.isfinite(got)):
        fail(f"gave {got.tolist()}")
    return got


# ------------------------------------------------------------------------------- ReLU

relu_ex = exercise("relu", ["relu", "relu_backward"])

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


@relu_ex.subcheck("relu(x) equals max(x, 0) on a (4, 6) float64 array")
def _(relu, relu_backward):
    x = _grid()
    expect(relu(x.copy()), ref("relu", x), "relu(x)", inputs={"x": x}, known=RELU_WRONG, args=(x,))


@relu_ex.subcheck("relu keeps float32 input float32")
def _(relu, relu_backward):
    x = _grid(np.float32)
    expect(relu(x.copy()), ref("relu", x), "relu(x) for float32 x", inputs={"x": x})


@relu_ex.subcheck("relu leaves its input unchanged")
def _(relu, relu_backward):
    x = _grid()
    before = x.copy()
    relu(x)
    expect_unchanged(x, before, "x", "relu")


@relu_ex.subcheck("relu_backward(dy, x) equals dy where x > 0 and 0 elsewhere")
def _(relu, relu_backward):
    x = _grid()
    dy = _dy(x)
    expect(
        relu_backward(dy.copy(), x.copy()),
        ref("relu_backward", dy, x),
        "relu_backward(dy, x)",
        inputs={"dy": dy, "x": x},
        known=RELU_BACKWARD_WRONG,
        args=(dy, x),
    )


@relu_ex.subcheck("relu_backward passes a float64 gradient check")
def _(relu, relu_backward):
    _gradient_check(relu, relu_backward, _away_from_zero(), "relu_backward")


# -------------------------------------------------------------------------- leaky ReLU

leaky_ex = exercise("leaky_relu", ["leaky_relu", "leaky_relu_backward"])


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


@leaky_ex.subcheck("leaky_relu(x) with the default alpha = 0.01")
def _(leaky_relu, leaky_relu_backward):
    x = _grid()
    expect(
        leaky_relu(x.copy()),
        ref("leaky_relu", x),
        "leaky_relu(x)",
        inputs={"x": x},
        known=_leaky_wrong(0.01),
        args=(x,),
    )


@leaky_ex.subcheck("leaky_relu(x, alpha=0.2) uses the alpha it is given")
def _(leaky_relu, leaky_relu_backward):
    x = _grid(seed=3)
    expect(
        leaky_relu(x.copy(), alpha=0.2),
        ref("leaky_relu", x, 0.2),
        "leaky_relu(x, alpha=0.2)",
        inputs={"x": x},
        known=_leaky_wrong(0.2),
        args=(x,),
    )


@leaky_ex.subcheck("leaky_relu keeps float32 input float32 and leaves it unchanged")
def _(leaky_relu, leaky_relu_backward):
    x = _grid(np.float32)
    before = x.copy()
    expect(leaky_relu(x, alpha=0.2), ref("leaky_relu", before, 0.2), "leaky_relu(x) for float32 x")
    expect_unchanged(x, before, "x", "leaky_relu")


@leaky_ex.subcheck("leaky_relu_backward(dy, x, alpha=0.2) equals dy * (1 if x > 0 else alpha)")
def _(leaky_relu, leaky_relu_backward):
    x = _grid(seed=4)
    dy = _dy(x)
    expect(
        leaky_relu_backward(dy.copy(), x.copy(), alpha=0.2),
        ref("leaky_relu_backward", dy, x, 0.2),
        "leaky_relu_backward(dy, x, alpha=0.2)",
        inputs={"dy": dy, "x": x},
        known=_leaky_backward_wrong(0.2),
        args=(dy, x),
    )


@leaky_ex.subcheck("leaky_relu_backward passes a float64 gradient check")
def _(leaky_relu, leaky_relu_backward):
    _gradient_check(
        lambda x: leaky_relu(x, alpha=0.2),
        lambda dy, x: leaky_relu_backward(dy, x, alpha=0.2),
        _away_from_zero(),
        "leaky_relu_backward",
    )


# ----------------------------------------------------------------------------- sigmoid

sigmoid_ex = exercise("sigmoid", ["sigmoid", "sigmoid_backward"])

SIGMOID_STABLE_HINT = (
    "exp(-x) overflows for large negative x (and exp(x) for large positive x). Compute "
    "e = exp(-|x|), which is never above 1, and use 1 / (1 + e) where x >= 0 and "
    "e / (1 + e) where x < 0. np.where evaluates both branches, so both must be safe."
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


@sigmoid_ex.subcheck("sigmoid(x) equals 1 / (1 + exp(-x)) on a (4, 6) float64 array")
def _(sigmoid, sigmoid_backward):
    x = _grid(seed=5)
    expect(
        sigmoid(x.copy()),
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


@sigmoid_ex.subcheck("sigmoid keeps float32 input float32 and leaves it unchanged")
def _(sigmoid, sigmoid_backward):
    x = _grid(np.float32, seed=6)
    before = x.copy()
    expect(sigmoid(x), ref("sigmoid", before), "sigmoid(x) for float32 x")
    expect_unchanged(x, before, "x", "sigmoid")


@sigmoid_ex.subcheck("sigmoid_backward(dy, x) equals dy * s * (1 - s)")
def _(sigmoid, sigmoid_backward):
    x = _grid(seed=7)
    dy = _dy(x)
    expect(
        sigmoid_backward(dy.copy(), x.copy()),
        ref("sigmoid_backward", dy, x),
        "sigmoid_backward(dy, x)",
        inputs={"dy": dy, "x": x},
        known=SIGMOID_BACKWARD_WRONG,
        args=(dy, x),
    )


@sigmoid_ex.subcheck("sigmoid_backward passes a float64 gradient check")
def _(sigmoid, sigmoid_backward):
    _gradient_check(sigmoid, sigmoid_backward, _away_from_zero(seed=8), "sigmoid_backward")


@sigmoid_ex.subcheck("sigmoid_backward is finite and warning-free at x = -1000 and 1000")
def _(sigmoid, sigmoid_backward):
    x = np.array([-1000.0, 0.0, 1000.0])
    dy = np.ones_like(x)
    got = _finite_without_warnings(
        lambda z: sigmoid_backward(dy, z), x, "sigmoid_backward", SIGMOID_STABLE_HINT
    )
    expect(got, ref("sigmoid_backward", dy, x), "sigmoid_backward at large |x|", inputs={"x": x})


# ------------------------------------------------------------------------------- tanh

tanh_ex = exercise("tanh_backward", ["tanh_backward"])

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


@tanh_ex.subcheck("tanh_backward(dy, x) equals dy * (1 - tanh(x)**2)")
def _(tanh_backward):
    x = _grid(seed=9) / 2
    dy = _dy(x)
    expect(
        tanh_backward(dy.copy(), x.copy()),
        ref("tanh_backward", dy, x),
        "tanh_backward(dy, x)",
        inputs={"dy": dy, "x": x},
        known=TANH_BACKWARD_WRONG,
        args=(dy, x),
    )


@tanh_ex.subcheck("tanh_backward keeps float32 input float32")
def _(tanh_backward):
    x = _grid(np.float32, seed=10) / np.float32(2)
    dy = _dy(x)
    expect(tanh_backward(dy, x), ref("tanh_backward", dy, x), "tanh_backward for float32")


@tanh_ex.subcheck("tanh_backward passes a float64 gradient check")
def _(tanh_backward):
    _gradient_check(np.tanh, tanh_backward, _away_from_zero(seed=11), "tanh_backward")


@tanh_ex.subcheck("tanh_backward is finite and warning-free at x = -1000 and 1000")
def _(tanh_backward):
    x = np.array([-1000.0, 0.0, 1000.0])
    dy = np.ones_like(x)
    got = _finite_without_warnings(
        lambda z: tanh_backward(dy, z),
        x,
        "tanh_backward",
        "cosh(x) overflows for large |x|; 1 - np.tanh(x)**2 stays finite.",
    )
    expect(got, ref("tanh_backward", dy, x), "tanh_backward at large |x|", inputs={"x": x})


# ----------------------------------------------------------------------------- softmax

softmax_ex = exercise("softmax", ["softmax"])
softmax_ex.error_hints.append(
    (
        ValueError,
        "broadcast",
        "the sum lost its axis: use e.sum(axis=axis, keepdims=True) so it broadcasts back.",
    )
)


def _naive_softmax(x, axis):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _softmax_wrong(axis, ndim):
    other = 0 if axis % ndim != 0 else ndim - 1
    return [
        WrongAnswer(
            lambda x: ref("softmax", x, axis=other),
            f"your output equals softmax over axis {other}: normalise along axis {axis} "
            "(the axis argument).",
        ),
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
        WrongAnswer(
            lambda x: _naive_softmax(x, axis),
            "exp(x) overflows for large x: subtract the max along the axis first; "
            "softmax(x) = softmax(x - max(x)) exactly.",
        ),
    ]


@softmax_ex.subcheck("softmax(x) over the last axis of a (4, 5) array")
def _(softmax):
    x = _grid(shape=(4, 5), seed=12)
    expect(
        softmax(x.copy()),
        ref("softmax", x),
        "softmax(x)",
        known=_softmax_wrong(-1, 2),
        args=(x,),
    )


@softmax_ex.subcheck("softmax(x, axis=0) normalises each column")
def _(softmax):
    x = _grid(shape=(4, 5), seed=13)
    expect(
        softmax(x.copy(), axis=0),
        ref("softmax", x, axis=0),
        "softmax(x, axis=0)",
        known=_softmax_wrong(0, 2),
        args=(x,),
    )


@softmax_ex.subcheck("softmax(x, axis=1) on a (2, 3, 4) array")
def _(softmax):
    x = _grid(shape=(2, 3, 4), seed=14)
    expect(
        softmax(x.copy(), axis=1),
        ref("softmax", x, axis=1),
        "softmax(x, axis=1)",
        known=_softmax_wrong(1, 3),
        args=(x,),
    )


@softmax_ex.subcheck("softmax is finite and warning-free for inputs near 1000")
def _(softmax):
    x = np.array([[1000.0, 999.0, 998.0], [0.0, -1.0, -2.0], [-1000.0, -999.0, -1001.0]])
    got = _finite_without_warnings(
        softmax,
        x,
        "softmax",
        "exp(1000) overflows: subtract each row's max first (keepdims=True); the result "
        "is the same and every exp(...) is at most 1.",
        known=_softmax_wrong(-1, 2),
    )
    expect(got, ref("softmax", x), "softmax at large |x|", known=_softmax_wrong(-1, 2), args=(x,))


def _softmax_properties_hold(softmax, x):
    """Every row sums to 1, entries lie in [0, 1], and shifting a row changes nothing."""
    p = np.asarray(softmax(x.copy(), axis=-1))
    shifted = np.asarray(softmax(x - x.max(axis=-1, keepdims=True) + 3.0, axis=-1))
    return (
        p.shape == x.shape
        and bool(np.all((p >= 0) & (p <= 1)))
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
    expect_property(
        lambda x: _softmax_properties_hold(softmax, x), logits, "softmax's row properties"
    )


@softmax_ex.subcheck("softmax keeps float32 input float32 and leaves it unchanged")
def _(softmax):
    x = _grid(np.float32, shape=(3, 4), seed=15)
    before = x.copy()
    expect(softmax(x), ref("softmax", before), "softmax(x) for float32 x")
    expect_unchanged(x, before, "x", "softmax")


# ----------------------------------------------------------------- ReLU with Numba prange

numba_ex = exercise("relu_numba", ["relu_numba"])


def _numba_fn(fn):
    return dispatcher(fn, "relu_numba", "x")


@numba_ex.subcheck("relu_numba is a Numba function (@njit)")
def _(relu_numba):
    _numba_fn(relu_numba)


@numba_ex.subcheck("relu_numba compiles in nopython mode")
def _(relu_numba):
    fn = _numba_fn(relu_numba)
    if fn.targetoptions.get("forceobj"):
        raise CheckFailed("relu_numba is compiled in object mode (forceobj=True): use @njit.")
    call_nopython(fn, "relu_numba", np.linspace(-1, 1, 8))


@numba_ex.subcheck("relu_numba(x) equals max(x, 0) on 1-D float64 arrays")
def _(relu_numba):
    for n in (1, 1000):
        x = np.random.default_rng(16 + n).standard_normal(n)
        x[::5] = 0.0
        got = relu_numba(x.copy())
        expect(
            got,
            ref("relu", x),
            f"relu_numba(x) for n = {n}",
            inputs={"x": x},
            known=RELU_WRONG,
            args=(x,),
        )


@numba_ex.subcheck("relu_numba keeps float32 input float32")
def _(relu_numba):
    x = np.random.default_rng(17).standard_normal(100).astype(np.float32)
    expect(relu_numba(x.copy()), ref("relu", x), "relu_numba(x) for float32 x", inputs={"x": x})


@numba_ex.subcheck("relu_numba is compiled with parallel=True")
def _(relu_numba):
    if not _numba_fn(relu_numba).targetoptions.get("parallel"):
        raise CheckFailed(
            "relu_numba is compiled without parallel=True, so prange runs as a plain range. "
            "Hint: @njit(parallel=True)."
        )


@numba_ex.subcheck("Numba runs relu_numba's loop in parallel (a prange loop)")
def _(relu_numba):
    if prange_loops(_numba_fn(relu_numba), "relu_numba", np.linspace(-1, 1, 8)) == 0:
        raise CheckFailed(
            "Numba found no prange loop to run in parallel. Hint: write the loop as "
            "`for i in prange(x.size):` (from numba import prange); `range` runs serially."
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


cuda_ex.notes = lambda facts: [
    "ran under the CUDA simulator (no GPU here)" if facts.get("simulator") else "ran on the GPU"
]


def _cuda():
    from nnlib._backend import backend_problem

    problem = backend_problem("cuda")
    if problem is not None:
        raise CheckFailed(f"CUDA is not available here: {problem}")
    import numba_cuda  # noqa: F401  (numba's own built-in numba.cuda is deprecated)
    from numba import cuda

    return cuda


def _kernel(relu_kernel):
    if type(relu_kernel).__name__ not in ("CUDADispatcher", "FakeCUDAKernel"):
        raise CheckFailed(
            f"relu_kernel is a {type(relu_kernel).__name__}, not a CUDA kernel. Hint: put "
            "@cuda.jit on the line above `def relu_kernel(x, out):`."
        )
    return relu_kernel


def _cuda_input(n, dtype=np.float64, seed=18):
    x = np.random.default_rng(seed).standard_normal(n).astype(dtype)
    x[::7] = 0.0
    return x


@cuda_ex.subcheck("relu_kernel is a CUDA kernel (@cuda.jit)")
def _(relu_kernel, relu_gpu):
    _cuda()
    _kernel(relu_kernel)


@cuda_ex.subcheck("relu_kernel computes all 1000 elements when launched as [4, 256]")
def _(relu_kernel, relu_gpu):
    cuda = _cuda()
    x = _cuda_input(1000)
    out = cuda.to_device(np.full_like(x, np.nan))
    _kernel(relu_kernel)[4, 256](cuda.to_device(x), out)
    got = out.copy_to_host()
    bad = np.flatnonzero(~np.isclose(got, ref("relu", x), equal_nan=False))
    if bad.size and bad[0] >= 256 and np.isclose(got[:256], ref("relu", x[:256])).all():
        raise CheckFailed(
            f"only the first 256 elements are right (element {bad[0]} is not): every block "
            "writes the same elements. Hint: the global index is i = cuda.grid(1), i.e. "
            "cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x."
        )
    expect(
        got,
        ref("relu", x),
        "out after relu_kernel[4, 256](x, out)",
        inputs={"x": x},
        known=RELU_WRONG,
        args=(x,),
    )


@cuda_ex.subcheck("relu_kernel leaves memory past the end alone (300 elements, [2, 256])")
def _(relu_kernel, relu_gpu):
    cuda = _cuda()
    n, sentinel = 300, 12345.0
    x_big = np.concatenate([_cuda_input(n), np.ones(212)])
    out_big = cuda.to_device(np.full(512, sentinel))
    x_dev = cuda.to_device(x_big)
    try:
        _kernel(relu_kernel)[2, 256](x_dev[:n], out_big[:n])
    except Exception as err:
        raise CheckFailed(
            f"launching 512 threads on 300 elements failed ({type(err).__name__}: {err}). "
            "Hint: threads past the end must do nothing: `if i < x.size:` around the write."
        ) from None
    tail = out_big.copy_to_host()[n:]
    if not np.all(tail == sentinel):
        raise CheckFailed(
            "threads past the end of the array wrote into memory after it. Hint: guard the "
            "write with `if i < x.size:`."
        )


@cuda_ex.subcheck("relu_gpu(x) equals max(x, 0) for n = 1000 and n = 5 (float64)")
def _(relu_kernel, relu_gpu):
    _cuda()
    for n in (1000, 5):
        x = _cuda_input(n, seed=19)
        got = relu_gpu(x.copy())
        want = ref("relu", x)
        if isinstance(got, np.ndarray) and got.shape == want.shape:
            bad = np.flatnonzero(~np.isclose(got, want))
            if bad.size and np.isclose(got[: bad[0]], want[: bad[0]]).all() and bad[0] >= n // 2:
                raise CheckFailed(
                    f"relu_gpu(x) for n = {n}: the first {bad[0]} elements are right, the "
                    "rest are not: too few blocks. Hint: round up, "
                    "blocks = (n + threads - 1) // threads (or math.ceil(n / threads))."
                )
        expect(got, want, f"relu_gpu(x) for n = {n}", inputs={"x": x}, known=RELU_WRONG, args=(x,))


@cuda_ex.subcheck("relu_gpu keeps float32 input float32")
def _(relu_kernel, relu_gpu):
    _cuda()
    x = _cuda_input(300, np.float32, seed=20)
    expect(relu_gpu(x.copy()), ref("relu", x), "relu_gpu(x) for float32 x", inputs={"x": x})
