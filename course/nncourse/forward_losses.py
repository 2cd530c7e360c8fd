"""Checks for exercise set 02, the forward pass and losses
(``solutions/02_forward_losses.ipynb``).

References: a dense layer is ``X @ W + b``; the log-softmax comes from
``nnlib.functional`` on the ``numpy`` backend, in float64. Inputs come from fixed seeds,
so a verdict never changes between runs.

What the contract of each exercise covers, beyond the values on ordinary input:

* the dtype of the input is kept (float32 and float64), numbers are judged with the
  tolerance of their dtype (an accuracy computed in float32 is right);
* the shapes the text allows: one example, an empty batch, the last axis of a 1-D or
  3-D array for the log-softmax;
* logits over the whole range (+-25000, in rows whose maxima differ), judged by the
  error against a float64 reference, not by finiteness;
* a batch that lacks the last class (a one-hot of ``y.max() + 1`` columns is too narrow);
* for the Numba kernel: every output row written, and no race between threads (the
  same right answer in every run on 100,000 rows).
* the binary cross-entropy from logits (derived by the learner, no formula given): every
  element over logits from -1e30 to 1e30 (through |z| = 17, 37, 89 and 710, where the
  naive and half-stable forms break), labels exactly 0 and 1 and soft ones, float32 and
  float64, any shape, judged against a float64 reference with the dtype's tolerance;
* the largest safe logit (a number found by experiment): float16, float32 and float64,
  within 0.01 of ln(max) (``LIMIT_ATOL`` says why 0.01).

The Numba kernel is judged by behaviour only (values, every element written, Numba's
parallel diagnostics, no race); the loop, the allocation and the split are the learner's.

Inputs left unchanged and results that are new arrays are checked on every call by
:class:`~nncourse.learner.LearnerFunction`. A hint is shown only when the learner's
output equals a known wrong answer within the grading tolerance (and, for "overflows",
only when the output is not finite).
"""

from __future__ import annotations

import numpy as np

from nnlib import functional as F
from nnlib.gradient_check import numerical_gradient, relative_error
from nnlib.testing import tolerance

from .checks import CheckFailed, WrongAnswer, as_number, exercise, expect, quiet
from .numba_checks import add_numba_subchecks, call_nopython, dispatcher, expect_no_races


def _rng(seed):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------- shared helpers


def _pair(result, fn_name, names):
    """``(a, b)`` from a function that must return two things."""
    if not isinstance(result, tuple) or len(result) != 2:
        raise CheckFailed(
            f"{fn_name} must return a pair ({', '.join(names)}); got "
            f"{type(result).__name__}. Hint: `return {', '.join(names)}`."
        )
    return result


def _same(got, wrong, dtype) -> bool:
    """True when ``got`` equals the wrong answer ``wrong`` within the grading tolerance
    of ``dtype`` (a close fingerprint: ``got`` would pass if ``wrong`` were right)."""
    if wrong is None:
        return False
    try:
        got = np.asarray(got, dtype=np.float64)
        wrong = np.asarray(wrong, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    if got.shape != wrong.shape:
        return False
    atol, rtol = tolerance(dtype)
    return bool(np.allclose(got, wrong, atol=atol, rtol=rtol, equal_nan=True))


def _hint(got, known, args, dtype) -> str | None:
    """The hint of the known wrong answer that ``got`` equals, if exactly one hint fits
    (two different mistakes that give the same result here name neither)."""
    hints = {wrong.hint for wrong in known if _same(got, quiet(wrong.fn, *args), dtype)}
    return hints.pop() if len(hints) == 1 else None


def _with_hint(err: CheckFailed, hint: str | None) -> CheckFailed:
    if hint and "Hint:" not in str(err):
        return CheckFailed(f"{err}\n  Hint: {hint}")
    return err


def _expect(got, want, what, *, known=(), args=()):
    """:func:`~nncourse.checks.expect`, with the hint of a known wrong answer that the
    result equals closely (by the tolerance of ``want``'s dtype)."""
    try:
        expect(got, want, what)
    except CheckFailed as err:
        hint = None
        if isinstance(got, np.ndarray) and (got.dtype == want.dtype or got.shape != want.shape):
            hint = _hint(got, known, args, want.dtype)
        raise _with_hint(err, hint) from None


def _number(got, what: str) -> float:
    """``got`` as one float, or a failure (a number, a NumPy scalar or a 0-d array)."""
    try:
        value = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        value = None
    if value is None or value.shape != ():
        raise CheckFailed(
            f"{what}: expected one number, got {type(got).__name__}"
            + (f" of shape {np.shape(got)}" if value is not None else "")
            + ". Hint: reduce to a single number (np.mean or np.sum, then float(...))."
        )
    return float(value)


def expect_scalar(got, want: float, what: str, *, dtype=np.float64, known=(), args=()) -> None:
    """Fail unless ``got`` is one number within the tolerance of ``dtype`` of ``want``.

    ``dtype`` is the precision the number may be computed in: the inputs' dtype for a
    loss; float32 for an accuracy (a fraction of N is exact enough in float32).
    """
    value = _number(got, what)
    atol, rtol = tolerance(dtype)
    if not np.isclose(value, want, rtol=rtol, atol=atol):
        message = f"{what}: expected {want!r}, got {value!r}"
        hint = _hint(value, known, args, dtype)
        raise CheckFailed(message + (f"\n  Hint: {hint}" if hint else ""))


def _gradient_consistent(loss_of, grad, x, what, *, loss_right, grad_hint):
    """The learner's gradient against central differences of their own loss (float64).

    ``loss_right``: whether the learner's loss matched the reference on ``x``. When the
    two disagree, the message says which of them is wrong: a right gradient with a wrong
    loss is not told to differentiate again (``grad_hint()`` gives the gradient's hint,
    or None when the gradient matches the reference).
    """
    if not isinstance(grad, np.ndarray) or grad.shape != x.shape:
        hint = grad_hint()
        raise CheckFailed(
            f"{what}: expected an array of shape {x.shape} (the input's), got "
            f"{type(grad).__name__} of shape {np.shape(grad)}" + (f". Hint: {hint}" if hint else "")
        )
    numeric = numerical_gradient(lambda v: float(_number(loss_of(v), "the loss")), x.copy())
    err = relative_error(np.asarray(grad, dtype=np.float64), numeric)
    if err < 1e-6:
        return
    message = (
        f"{what} disagrees with central differences of your loss: relative error "
        f"{err:.2e} (cs231n's rule: below 1e-7 is right, above 1e-4 is a bug)."
    )
    hint = grad_hint()
    if hint is None:
        hint = (
            f"your {what} is the right derivative (it matches the reference); your loss is "
            "what is wrong: see the check of the loss's value above."
        )
    elif loss_right:
        hint = f"your loss is right, the gradient is not: {hint}"
    raise CheckFailed(f"{message} Hint: {hint}")


def _called(fn, *args):
    """``fn(*args)`` with NumPy's floating-point warnings off (the values are judged)."""
    with np.errstate(all="ignore"):
        return fn(*args)


# ------------------------------------------------------------------------ dense forward

dense_ex = exercise(
    "dense_forward",
    ["dense_forward"],
    forbidden=("dense_forward", "dense", "dense_forward_ref", "dense_forward_cpu"),
)


def _dense_data(dtype=np.float64, n=5, d=3, h=4, seed=10):
    rng = _rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    W = rng.standard_normal((d, h)).astype(dtype)
    b = rng.standard_normal(h).astype(dtype)
    return X, W, b


DENSE_WRONG = [
    WrongAnswer(lambda X, W, b: X @ W, "you left out the bias: add b to every row (X @ W + b)."),
    WrongAnswer(
        lambda X, W, b: np.maximum(X @ W + b, 0),
        "you applied a ReLU: a dense layer is linear; the activation is a separate layer.",
    ),
    WrongAnswer(lambda X, W, b: X @ W - b, "you subtracted the bias: it is added."),
    WrongAnswer(
        lambda X, W, b: (X @ W + b).T,
        "your output is transposed: it must be (N, H), one row per example.",
    ),
    WrongAnswer(
        lambda X, W, b: np.zeros(0) if X.shape[0] == 0 else None,
        "for an empty batch (N = 0) the result is still 2-D, of shape (0, H): a list of "
        "rows turned into an array loses the H. Compute the whole batch at once: X @ W + b.",
    ),
]


@dense_ex.subcheck("dense_forward(X, W, b) equals X @ W + b for (5, 3) @ (3, 4) + (4,)")
def _(dense_forward):
    X, W, b = _dense_data()
    _expect(
        dense_forward(X, W, b),
        X @ W + b,
        "dense_forward(X, W, b)",
        known=DENSE_WRONG,
        args=(X, W, b),
    )


@dense_ex.subcheck("dense_forward works for one example, a wide layer and an empty batch")
def _(dense_forward):
    for n, d, h in ((1, 3, 4), (7, 2, 9), (0, 3, 4)):
        X, W, b = _dense_data(n=n, d=d, h=h, seed=11 + n)
        _expect(
            dense_forward(X, W, b),
            X @ W + b,
            f"dense_forward for N, D, H = {n}, {d}, {h}",
            known=DENSE_WRONG,
            args=(X, W, b),
        )


@dense_ex.subcheck("dense_forward keeps float32 input float32")
def _(dense_forward):
    X, W, b = _dense_data(np.float32)
    _expect(
        dense_forward(X, W, b),
        X @ W + b,
        "dense_forward for float32 inputs",
        known=DENSE_WRONG,
        args=(X, W, b),
    )


@dense_ex.subcheck("dense_forward leaves its inputs unchanged and returns a new array")
def _(dense_forward):
    # every call checks this; here on a square layer, where X @= W would fit
    X, W, b = _dense_data(d=4, seed=19)
    _expect(
        dense_forward(X, W, b),
        X @ W + b,
        "dense_forward for D = H = 4",
        known=DENSE_WRONG,
        args=(X, W, b),
    )


# --------------------------------------------------------------------------------- MSE

mse_ex = exercise("mse", ["mse"], forbidden=("mse", "mse_ref", "mse_cpu", "losses"))


def _mse_data(shape=(6, 2), seed=20, dtype=np.float64):
    rng = _rng(seed)
    return rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)


def _mse_ref(p, t):
    d = p.astype(np.float64) - t.astype(np.float64)
    return float(np.mean(d**2)), (2 * d / d.size).astype(p.dtype)


MSE_LOSS_WRONG = [
    WrongAnswer(lambda p, t: np.sum((p - t) ** 2), "you summed the squares: take their mean."),
    WrongAnswer(
        lambda p, t: 0.5 * np.mean((p - t) ** 2),
        "your loss has a factor 1/2: this exercise's MSE is mean((pred - target)**2).",
    ),
    WrongAnswer(
        lambda p, t: np.sqrt(np.mean((p - t) ** 2)),
        "that is the root of the mean squared error (RMSE): leave out the square root.",
    ),
    WrongAnswer(lambda p, t: np.mean(np.abs(p - t)), "that is the mean absolute error: square."),
    WrongAnswer(
        lambda p, t: np.sum((p - t) ** 2) / len(p),
        "you divided by the number of rows: the mean is over every element (pred.size).",
    ),
]
MSE_GRAD_WRONG = [
    WrongAnswer(
        lambda p, t: (p - t) / p.size,
        "your gradient lacks the factor 2 from d/dp (p - t)**2 = 2 (p - t).",
    ),
    WrongAnswer(
        lambda p, t: 2 * (p - t),
        "your gradient is not divided by the number of elements: the loss is a mean.",
    ),
    WrongAnswer(
        lambda p, t: 2 * (t - p) / p.size,
        "your gradient has the wrong sign: d/dpred of (pred - target)**2 is +2 (pred - target).",
    ),
    WrongAnswer(
        lambda p, t: 2 * (p - t) / len(p),
        "you divided by the number of rows: the mean is over every element (pred.size).",
    ),
    WrongAnswer(
        lambda p, t: (2 * (p - t) / p.size).ravel(),
        "your gradient is flattened: it has the shape of pred, (N, K).",
    ),
]


def _mse_grad_hint(p, t, grad):
    want = _mse_ref(p, t)[1]
    if _same(grad, want, want.dtype):
        return None
    return _hint(grad, MSE_GRAD_WRONG, (p, t), want.dtype) or (
        "differentiate your loss again, element by element: 2 (pred - target) / pred.size."
    )


@mse_ex.subcheck("mse returns the mean of (pred - target)**2 over all elements")
def _(mse):
    p, t = _mse_data()
    loss, _ = _pair(mse(p, t), "mse", ("loss", "grad"))
    expect_scalar(loss, _mse_ref(p, t)[0], "mse loss", known=MSE_LOSS_WRONG, args=(p, t))


@mse_ex.subcheck("mse's gradient equals 2 (pred - target) / pred.size")
def _(mse):
    p, t = _mse_data()
    _, grad = _pair(mse(p, t), "mse", ("loss", "grad"))
    _expect(grad, _mse_ref(p, t)[1], "mse gradient", known=MSE_GRAD_WRONG, args=(p, t))


@mse_ex.subcheck("mse's gradient passes a float64 gradient check")
def _(mse):
    p, t = _mse_data((3, 2), seed=21)
    loss, grad = _pair(mse(p, t), "mse", ("loss", "grad"))
    loss_right = np.isclose(_number(loss, "mse loss"), _mse_ref(p, t)[0], rtol=1e-10, atol=1e-12)
    _gradient_consistent(
        lambda v: mse(v, t)[0],
        grad,
        p,
        "mse gradient",
        loss_right=loss_right,
        grad_hint=lambda: _mse_grad_hint(p, t, grad),
    )


@mse_ex.subcheck("mse keeps float32 float32 (the gradient's dtype, the loss's precision)")
def _(mse):
    p, t = _mse_data(dtype=np.float32, seed=22)
    loss, grad = _pair(mse(p, t), "mse", ("loss", "grad"))
    want_loss, want_grad = _mse_ref(p, t)
    _expect(grad, want_grad, "mse gradient for float32", known=MSE_GRAD_WRONG, args=(p, t))
    expect_scalar(
        loss, want_loss, "mse loss for float32", dtype=np.float32, known=MSE_LOSS_WRONG, args=(p, t)
    )


@mse_ex.subcheck("mse works for any (N, K) and leaves pred and target unchanged")
def _(mse):
    for shape in ((1, 1), (7, 1), (2, 5)):
        p, t = _mse_data(shape, seed=23 + shape[0])
        loss, grad = _pair(mse(p, t), "mse", ("loss", "grad"))
        want_loss, want_grad = _mse_ref(p, t)
        expect_scalar(
            loss, want_loss, f"mse loss for shape {shape}", known=MSE_LOSS_WRONG, args=(p, t)
        )
        _expect(
            grad, want_grad, f"mse gradient for shape {shape}", known=MSE_GRAD_WRONG, args=(p, t)
        )


# ------------------------------------------------------------------------- log-softmax

logsm_ex = exercise(
    "log_softmax",
    ["log_softmax"],
    forbidden=("log_softmax", "log_softmax_ref", "log_softmax_cpu", "softmax"),
)


def _logits(n=4, c=5, seed=30, scale=3.0, dtype=np.float64):
    return (_rng(seed).standard_normal((n, c)) * scale).astype(dtype)


def _ref_log_softmax(z):
    """The float64 reference, in the dtype of ``z``."""
    return F.log_softmax(z.astype(np.float64), backend="numpy").astype(z.dtype)


# Rows over the whole range, whose maxima differ (a shift by the batch's maximum, or by
# the first logit, is not enough) and one whose small log-probability exposes a bias.
EXTREME = np.array(
    [
        [25000.0, 24999.0, -25000.0],
        [-25000.0, -24999.0, -24998.0],
        [0.0, -25000.0, 25000.0],
        [30.0, 0.0, -30.0],
        [0.5, -0.25, 1.0],
    ]
)


def _lse(z, axis=-1):
    m = z.max(axis=axis, keepdims=True)
    return m + np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


EPSILON_HINT = (
    "you added a small constant (1e-8) inside the log. After subtracting the row's "
    "maximum the sum of exponentials is at least 1, so the log never sees 0 and needs no "
    "guard; the constant only biases every log-probability (and log(softmax + 1e-8) "
    "stops at log(1e-8) = -18.4 for the small ones). Compute (z - m) - log(sum(exp(z - m))) "
    "exactly."
)
GLOBAL_MAX_HINT = (
    "you subtracted the largest logit of the whole batch, not of each row: a row whose "
    "logits are all far below it underflows to exp(...) = 0, and log(0) = -inf. Subtract "
    "each row's own maximum: z.max(axis=-1, keepdims=True)."
)
OVERFLOW_HINT = (
    "exp(z) overflows to inf for logits above about 709 (88 in float32): subtract each "
    "row's maximum first, z - max - log(sum(exp(z - max)))."
)


def _over_columns(z, stable):
    # (for one row the result is 0 everywhere: no evidence of this mistake then)
    if z.ndim < 2 or z.shape[0] < 2:
        return None
    return z - (_lse(z, axis=0) if stable else np.log(np.sum(np.exp(z), axis=0, keepdims=True)))


COLUMNS_HINT = (
    "you normalised over axis 0 (the columns): each row is one example, normalise each "
    "row (axis=-1)."
)

LOG_OF_SOFTMAX_HINT = (
    "log(softmax(z)): softmax rounds the small probabilities to 0 and log(0) = -inf. "
    "Compute (z - m) - log(sum(exp(z - m))) directly, with m each row's maximum."
)


def _epsilon_in_the_sum(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True) + 1e-8)


LOGSM_WRONG = [
    WrongAnswer(lambda z: _over_columns(z, False), COLUMNS_HINT),
    WrongAnswer(lambda z: _over_columns(z, True), COLUMNS_HINT),
    WrongAnswer(
        lambda z: z - z.max(axis=-1, keepdims=True),
        "you subtracted the maximum but left out - log(sum(exp(z - max))).",
    ),
    WrongAnswer(
        lambda z: z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True)),
        "you did not subtract each row's maximum, and " + OVERFLOW_HINT,
    ),
    WrongAnswer(
        lambda z: np.log(np.exp(z) / np.sum(np.exp(z), axis=-1, keepdims=True)),
        "log(softmax(z)) computed directly overflows: " + OVERFLOW_HINT,
    ),
    WrongAnswer(
        lambda z: (z - z.max()) - np.log(np.sum(np.exp(z - z.max()), axis=-1, keepdims=True)),
        GLOBAL_MAX_HINT,
    ),
    WrongAnswer(lambda z: np.log(np.exp(z - _lse(z))), LOG_OF_SOFTMAX_HINT),
    WrongAnswer(_epsilon_in_the_sum, EPSILON_HINT),
    WrongAnswer(lambda z: np.log(np.exp(z - _lse(z)) + 1e-8), EPSILON_HINT),
    WrongAnswer(
        lambda z: np.exp(z - _lse(z)),
        "that is the softmax itself: take its logarithm (stably).",
    ),
    WrongAnswer(
        lambda z: z - _lse(z, axis=1) if z.ndim == 3 else None,
        "you normalised over axis 1, which is the last axis only of a 2-D z. The text: "
        "work along the last axis, axis=-1 (also the default of your function).",
    ),
]


def _expect_extreme(fn, z, what, known, reference, *, numba=False):
    """The learner's ``fn(z)`` against ``reference(z)`` for logits of +-25000; the hint
    says "overflow" only when the output is not finite."""
    want = reference(z)
    got = _called(fn, z) if not numba else call_nopython(fn, "log_softmax_numba", z)
    if (
        isinstance(got, np.ndarray)
        and got.shape == want.shape
        and np.issubdtype(got.dtype, np.floating)
        and not np.all(np.isfinite(got))
    ):
        rows = sorted({int(i) for i in np.argwhere(~np.isfinite(got))[:, 0]})
        hint = _hint(got, known, (z,), want.dtype) or (
            "a finite answer exists for every row: compute each row's maximum m first, "
            "then exp(z - m) (never above 1) and m + log(sum(...)) (the sum is at least 1)."
        )
        raise CheckFailed(
            f"{what}: inf or nan in rows {rows} of logits {z.tolist()}, where the right "
            f"answer is finite. Hint: {hint}"
        )
    if isinstance(got, np.ndarray) and got.shape == want.shape and got.dtype == want.dtype:
        # Up to the rounding of the logits themselves: z - logsumexp(z) in float32 loses
        # the digits of 25000 + 0.31 (a step of 0.002 there), as any answer would for a
        # logit perturbed by one ulp; that is stable (backward), and accepted.
        atol, rtol = tolerance(want.dtype)
        wide = np.abs(z.astype(np.float64)).max(axis=-1, keepdims=True)
        slack = 4 * np.finfo(want.dtype).eps * wide
        err = np.abs(got.astype(np.float64) - want.astype(np.float64))
        if np.all(err <= atol + rtol * np.abs(want.astype(np.float64)) + slack):
            return
    _expect(got, want, what, known=known, args=(z,))


@logsm_ex.subcheck("log_softmax(z) matches the reference on (4, 5) logits")
def _(log_softmax):
    z = _logits()
    _expect(log_softmax(z), _ref_log_softmax(z), "log_softmax(z)", known=LOGSM_WRONG, args=(z,))


@logsm_ex.subcheck("every row of exp(log_softmax(z)) sums to 1")
def _(log_softmax):
    z = _logits(n=6, c=3, seed=31)
    out = log_softmax(z)
    if not isinstance(out, np.ndarray) or out.shape != z.shape:
        _expect(out, _ref_log_softmax(z), "log_softmax(z)", known=LOGSM_WRONG, args=(z,))
    sums = np.exp(out.astype(np.float64)).sum(axis=-1)
    if not np.allclose(sums, 1.0, rtol=1e-10, atol=0):
        hint = _hint(out, LOGSM_WRONG, (z,), z.dtype)
        raise CheckFailed(
            f"exp(log_softmax(z)) sums to {sums.tolist()} along the rows, not to 1"
            + (f"\n  Hint: {hint}" if hint else "")
        )


@logsm_ex.subcheck("log_softmax is accurate for logits of +-25000 (float64 and float32)")
def _(log_softmax):
    for dtype in (np.float64, np.float32):
        z = EXTREME.astype(dtype)
        _expect_extreme(
            log_softmax,
            z,
            f"log_softmax for {np.dtype(dtype).name} logits of +-25000",
            LOGSM_WRONG,
            _ref_log_softmax,
        )


@logsm_ex.subcheck("log_softmax keeps float32 float32")
def _(log_softmax):
    z = _logits(dtype=np.float32, seed=32)
    _expect(
        log_softmax(z),
        _ref_log_softmax(z),
        "log_softmax for float32 z",
        known=LOGSM_WRONG,
        args=(z,),
    )


@logsm_ex.subcheck("log_softmax works along the last axis of 1-D, 3-D and empty inputs")
def _(log_softmax):
    rng = _rng(33)
    for z in (
        rng.standard_normal((2, 3, 4)) * 3,
        rng.standard_normal(5) * 3,
        np.zeros((0, 4)),
    ):
        try:
            got = log_softmax(z)
        except AssertionError:
            raise
        except Exception as err:
            hint = (
                "an empty batch gives an empty result of the same shape: reduce along "
                "the last axis only, z.max(axis=-1, keepdims=True), never over the whole "
                "array (z.max())."
                if z.size == 0
                else "the text asks for the last axis of any z, not only of (N, C): reduce "
                "with axis=-1 and keepdims=True (not axis=1 or [:, None])."
            )
            raise CheckFailed(
                f"log_softmax raised {type(err).__name__} ({err}) for z of shape {z.shape}. "
                f"Hint: {hint}"
            ) from None
        _expect(
            got,
            _ref_log_softmax(z),
            f"log_softmax for z of shape {z.shape}",
            known=LOGSM_WRONG,
            args=(z,),
        )


# -------------------------------------------------------------- softmax cross-entropy

ce_ex = exercise(
    "softmax_cross_entropy",
    ["softmax_cross_entropy"],
    forbidden=(
        "softmax_cross_entropy",
        "cross_entropy",
        "SoftmaxCrossEntropy",
        "softmax_cross_entropy_ref",
        "losses",
        "log_softmax",
        "softmax",
    ),
)


def _ce_data(n=6, c=4, seed=40, scale=2.0, dtype=np.float64):
    rng = _rng(seed)
    return (rng.standard_normal((n, c)) * scale).astype(dtype), rng.integers(0, c, n)


def _onehot(y, c, dtype=np.float64):
    out = np.zeros((len(y), c), dtype)
    out[np.arange(len(y)), y] = 1
    return out


def _ce_ref(z, y):
    """(loss, dz) in float64, dz cast to the dtype of ``z``."""
    logp = F.log_softmax(z.astype(np.float64), backend="numpy")
    loss = -logp[np.arange(len(y)), y].mean()
    grad = (np.exp(logp) - _onehot(y, z.shape[1])) / len(y)
    return float(loss), grad.astype(z.dtype)


def _sm(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _pick(logp, y):
    return logp[np.arange(len(y)), y]


CE_OVERFLOW_HINT = (
    "your loss overflows: compute it from a stable log-softmax, never from exp(z) "
    "itself: " + OVERFLOW_HINT
)
CE_LOSS_WRONG = [
    WrongAnswer(
        lambda z, y: -_pick(_ref_log_softmax(z), y).sum(),
        "you summed over the batch: the loss is the mean over the N examples.",
    ),
    WrongAnswer(
        lambda z, y: _pick(_ref_log_softmax(z), y).mean(),
        "your loss is negative: cross-entropy is MINUS the mean log-probability of the "
        "right class.",
    ),
    WrongAnswer(
        lambda z, y: -_ref_log_softmax(z).mean(),
        "you averaged the log-probabilities of every class: pick the true class of each "
        "row, logp[np.arange(N), y].",
    ),
    WrongAnswer(
        lambda z, y: -_pick(z, y).mean(),
        "you used the raw logit of the true class: take the log-softmax first.",
    ),
    WrongAnswer(
        lambda z, y: -_pick(z - np.log(np.exp(z).sum(axis=1, keepdims=True)), y).mean(),
        CE_OVERFLOW_HINT,
    ),
    WrongAnswer(
        lambda z, y: -np.log(_pick(np.exp(z) / np.exp(z).sum(axis=1, keepdims=True), y)).mean(),
        CE_OVERFLOW_HINT,
    ),
    WrongAnswer(
        lambda z, y: (
            -_pick((z - z.max()) - np.log(np.exp(z - z.max()).sum(axis=1, keepdims=True)), y).mean()
        ),
        GLOBAL_MAX_HINT,
    ),
    WrongAnswer(lambda z, y: -np.log(_pick(_sm(z), y)).mean(), LOG_OF_SOFTMAX_HINT),
    WrongAnswer(lambda z, y: -_pick(_epsilon_in_the_sum(z), y).mean(), EPSILON_HINT),
    WrongAnswer(lambda z, y: -np.log(_pick(_sm(z), y) + 1e-8).mean(), EPSILON_HINT),
]
ONEHOT_HINT = (
    "the one-hot needs z.shape[1] columns, one per class, whichever classes a batch "
    "holds: np.eye(y.max() + 1) is too narrow for a batch that lacks the last class."
)
CE_GRAD_WRONG = [
    WrongAnswer(
        lambda z, y: _sm(z) - _onehot(y, z.shape[1]),
        "your gradient is not divided by N: the loss is a mean over the batch.",
    ),
    WrongAnswer(
        lambda z, y: (_onehot(y, z.shape[1]) - _sm(z)) / len(y),
        "your gradient has the wrong sign: it is (softmax(z) - onehot(y)) / N.",
    ),
    WrongAnswer(
        lambda z, y: _sm(z) / len(y),
        "you forgot to subtract 1 at the true class: (softmax(z) - onehot(y)) / N.",
    ),
    WrongAnswer(
        lambda z, y: (_sm(z) - _onehot(y, z.shape[1])) / z.size,
        "you divided by N * C: the mean is over the N examples only.",
    ),
    WrongAnswer(lambda z, y: (_sm(z) - np.eye(y.max() + 1)[y]) / len(y), ONEHOT_HINT),
    WrongAnswer(
        lambda z, y: (
            (np.exp(z) / np.exp(z).sum(axis=1, keepdims=True) - _onehot(y, z.shape[1])) / len(y)
        ),
        "your softmax overflows: " + OVERFLOW_HINT,
    ),
    WrongAnswer(
        lambda z, y: (np.exp(_epsilon_in_the_sum(z)) - _onehot(y, z.shape[1])) / len(y),
        EPSILON_HINT,
    ),
]


def _ce(fn, z, y):
    return _pair(fn(z, y), "softmax_cross_entropy", ("loss", "dz"))


def _ce_grad_hint(z, y, dz):
    want = _ce_ref(z, y)[1]
    if _same(dz, want, want.dtype):
        return None
    return _hint(dz, CE_GRAD_WRONG, (z, y), want.dtype) or (
        "derive d loss / d z again: softmax minus the one-hot label, over N."
    )


@ce_ex.subcheck("the loss is the mean over rows of -log softmax(z)[i, y_i]")
def _(softmax_cross_entropy):
    for n, c, seed in ((6, 4, 40), (1, 3, 43)):
        z, y = _ce_data(n=n, c=c, seed=seed)
        loss, _ = _ce(softmax_cross_entropy, z, y)
        expect_scalar(
            loss,
            _ce_ref(z, y)[0],
            f"softmax cross-entropy loss for N, C = {n}, {c}",
            known=CE_LOSS_WRONG,
            args=(z, y),
        )


@ce_ex.subcheck("the gradient equals (softmax(z) - onehot(y)) / N")
def _(softmax_cross_entropy):
    for n, c, seed in ((6, 4, 40), (1, 3, 43)):
        z, y = _ce_data(n=n, c=c, seed=seed)
        _, dz = _ce(softmax_cross_entropy, z, y)
        _expect(dz, _ce_ref(z, y)[1], f"dz for N, C = {n}, {c}", known=CE_GRAD_WRONG, args=(z, y))


@ce_ex.subcheck("the gradient passes a float64 gradient check")
def _(softmax_cross_entropy):
    z, y = _ce_data(n=3, c=3, seed=41)
    loss, dz = _ce(softmax_cross_entropy, z, y)
    loss_right = np.isclose(_number(loss, "the loss"), _ce_ref(z, y)[0], rtol=1e-10, atol=1e-12)
    _gradient_consistent(
        lambda v: softmax_cross_entropy(v, y)[0],
        dz,
        z,
        "dz",
        loss_right=loss_right,
        grad_hint=lambda: _ce_grad_hint(z, y, dz),
    )


@ce_ex.subcheck("the loss and dz are accurate for logits of +-25000")
def _(softmax_cross_entropy):
    # the label of the third row has a probability of exp(-50000): log(softmax) gives inf
    z = EXTREME.copy()
    y = np.array([1, 0, 1, 2, 0])
    loss, dz = _pair(_called(softmax_cross_entropy, z, y), "softmax_cross_entropy", ("loss", "dz"))
    want_loss, want_dz = _ce_ref(z, y)
    value = _number(loss, "the loss for logits of +-25000")
    if not np.isfinite(value):
        hint = _hint(value, CE_LOSS_WRONG, (z, y), np.float64) or (
            "a finite loss exists: compute the log-probabilities stably, (z - m) - "
            "log(sum(exp(z - m))) with m each row's maximum, never log(softmax(z))."
        )
        raise CheckFailed(
            f"the loss for logits {z.tolist()} is {value!r}; the right loss is "
            f"{want_loss!r}. Hint: {hint}"
        )
    expect_scalar(
        loss, want_loss, "the loss for logits of +-25000", known=CE_LOSS_WRONG, args=(z, y)
    )
    if isinstance(dz, np.ndarray) and dz.shape == z.shape and not np.all(np.isfinite(dz)):
        hint = _hint(dz, CE_GRAD_WRONG, (z, y), np.float64) or OVERFLOW_HINT
        raise CheckFailed(
            f"dz for logits of +-25000 holds inf or nan; the right one is finite. Hint: {hint}"
        )
    _expect(dz, want_dz, "dz for logits of +-25000", known=CE_GRAD_WRONG, args=(z, y))


@ce_ex.subcheck("float32 logits give a float32 gradient and a float32-accurate loss")
def _(softmax_cross_entropy):
    z, y = _ce_data(dtype=np.float32, seed=42)
    loss, dz = _ce(softmax_cross_entropy, z, y)
    want_loss, want_dz = _ce_ref(z, y)
    _expect(dz, want_dz, "dz for float32 logits", known=CE_GRAD_WRONG, args=(z, y))
    expect_scalar(
        loss,
        want_loss,
        "the loss for float32 logits",
        dtype=np.float32,
        known=CE_LOSS_WRONG,
        args=(z, y),
    )


@ce_ex.subcheck("it works for a batch that lacks the last class")
def _(softmax_cross_entropy):
    # a batch holding every class first: a failure only on the second is the one-hot
    z4 = _ce_data(n=5, c=4, seed=44)[0]
    _ce(softmax_cross_entropy, z4, np.array([3, 0, 2, 1, 3]))  # (values: the checks above)
    for z, y in (
        (z4, np.array([0, 2, 1, 0, 2])),
        (_ce_data(n=3, c=2, seed=45)[0], np.zeros(3, int)),
    ):
        what = f"dz for {z.shape[1]} classes and labels {y.tolist()} (no class {z.shape[1] - 1})"
        try:
            loss, dz = _ce(softmax_cross_entropy, z, y)
        except AssertionError:
            raise
        except Exception as err:
            raise CheckFailed(
                f"{what}: your code raised {type(err).__name__}: {err}. Hint: {ONEHOT_HINT}"
            ) from None
        want_loss, want_dz = _ce_ref(z, y)
        _expect(dz, want_dz, what, known=CE_GRAD_WRONG, args=(z, y))
        expect_scalar(
            loss, want_loss, what.replace("dz", "the loss"), known=CE_LOSS_WRONG, args=(z, y)
        )


# ---------------------------------------------------------------------------- accuracy

acc_ex = exercise("accuracy", ["accuracy"], forbidden=("accuracy", "losses"))


def _acc_data(n=40, c=3, seed=50):
    rng = _rng(seed)
    z = rng.standard_normal((n, c))
    y = np.where(rng.random(n) < 0.6, z.argmax(axis=1), rng.integers(0, c, n))
    return z, y


ACC_WRONG = [
    WrongAnswer(
        lambda z, y: float(np.sum(z.argmax(axis=1) == y)),
        "you returned the number of correct predictions: divide by N for a fraction.",
    ),
    WrongAnswer(
        lambda z, y: 100 * np.mean(z.argmax(axis=1) == y),
        "you returned a percentage: return a fraction between 0 and 1.",
    ),
    WrongAnswer(
        lambda z, y: np.mean(z.argmin(axis=1) == y),
        "you used argmin: the predicted class has the largest score (argmax).",
    ),
    WrongAnswer(
        lambda z, y: np.mean(z.max(axis=1) == y),
        "you compared the largest score with the label: compare its index (argmax).",
    ),
]


def _accuracy_ok(accuracy, z, y, want, what):
    # a fraction of N: float32 precision is enough (an accuracy in float32 is right)
    expect_scalar(accuracy(z, y), want, what, dtype=np.float32, known=ACC_WRONG, args=(z, y))


@acc_ex.subcheck("accuracy(z, y) is the fraction of rows whose argmax equals y")
def _(accuracy):
    z, y = _acc_data()
    _accuracy_ok(accuracy, z, y, float(np.mean(z.argmax(1) == y)), "accuracy(z, y)")


@acc_ex.subcheck("accuracy is 1 for perfect predictions and 0 for all wrong")
def _(accuracy):
    z = np.eye(4)[[0, 2, 3, 1, 1]] * 5.0
    y = np.array([0, 2, 3, 1, 1])
    _accuracy_ok(accuracy, z, y, 1.0, "accuracy of perfect predictions")
    _accuracy_ok(accuracy, z, (y + 1) % 4, 0.0, "accuracy of all-wrong predictions")


@acc_ex.subcheck("accuracy works on probabilities as well as on logits")
def _(accuracy):
    z, y = _acc_data(n=25, c=5, seed=51)
    _accuracy_ok(accuracy, _sm(z), y, float(np.mean(z.argmax(1) == y)), "accuracy(softmax(z), y)")


@acc_ex.subcheck("accuracy of a single example")
def _(accuracy):
    z, y = np.array([[0.1, 0.7, 0.2]]), np.array([1])
    _accuracy_ok(accuracy, z, y, 1.0, "accuracy of one right example")


# ------------------------------------------------------- log-softmax as a Numba kernel

numba_ex = exercise(
    "log_softmax_numba",
    ["log_softmax_numba"],
    forbidden=("log_softmax_numba", "log_softmax", "log_softmax_cpu", "log_softmax_ref", "softmax"),
)
_SIG = "z"
_NAME = "log_softmax_numba"


def _numba_sample():
    return (_logits(n=3, c=4, seed=60),)


add_numba_subchecks(
    numba_ex, _NAME, _SIG, _numba_sample, "a `prange` loop over the rows (or over chunks of rows)"
)


def _kernel(fn):
    return dispatcher(fn, _NAME, _SIG)


@numba_ex.subcheck("log_softmax_numba(z) matches the reference for float64 (N, C) logits")
def _(log_softmax_numba):
    fn = _kernel(log_softmax_numba)
    for n, c in ((1, 3), (200, 10)):
        z = _logits(n=n, c=c, seed=61 + n)
        _expect(
            call_nopython(fn, _NAME, z),
            _ref_log_softmax(z),
            f"log_softmax_numba for N, C = {n}, {c}",
            known=LOGSM_WRONG,
            args=(z,),
        )


@numba_ex.subcheck("log_softmax_numba writes every row of its output")
def _(log_softmax_numba):
    # Two calls on different logits of one shape, with freed memory filled with NaN in
    # between: a row the kernel never writes holds stale values, never the right ones.
    # The "never written" hint only when the wrong rows are the last ones and every
    # other row is right (the evidence of a loop that stops short).
    fn = _kernel(log_softmax_numba)
    n, c = 7, 5
    call_nopython(fn, _NAME, _logits(n=n, c=c, seed=64))
    junk = np.full((n, c), np.nan)
    del junk
    z = _logits(n=n, c=c, seed=65)
    want = _ref_log_softmax(z)
    got = call_nopython(fn, _NAME, z)
    try:
        expect(got, want, f"log_softmax_numba for N, C = {n}, {c}, called twice")
    except CheckFailed as err:
        hint = None
        if isinstance(got, np.ndarray) and got.shape == want.shape and got.dtype == want.dtype:
            atol, rtol = tolerance(want.dtype)
            bad = np.flatnonzero(~np.isclose(got, want, atol=atol, rtol=rtol).all(axis=1))
            if 0 < bad.size < n and np.array_equal(bad, np.arange(n - bad.size, n)):
                hint = (
                    f"rows {bad.tolist()} (the last) are never written: they hold whatever "
                    "the memory held. Does your loop run over every row, prange(n) and not "
                    "prange(n - 1)?"
                )
        raise _with_hint(err, hint) from None


@numba_ex.subcheck("log_softmax_numba is accurate for logits of +-25000")
def _(log_softmax_numba):
    fn = _kernel(log_softmax_numba)
    _expect_extreme(
        fn,
        EXTREME.copy(),
        "log_softmax_numba for logits of +-25000",
        LOGSM_WRONG,
        _ref_log_softmax,
        numba=True,
    )


@numba_ex.subcheck("log_softmax_numba keeps float32 float32")
def _(log_softmax_numba):
    fn = _kernel(log_softmax_numba)
    z = _logits(n=5, c=4, seed=63, dtype=np.float32)
    _expect(
        call_nopython(fn, _NAME, z),
        _ref_log_softmax(z),
        "log_softmax_numba for float32 z",
        known=LOGSM_WRONG,
        args=(z,),
    )


# a scratch row shared by the iterations gives a wrong result in 97-100 of 100 runs of
# this size on 2 busy cores: 4 runs miss it about once in a million
RACE_ROWS, RACE_COLUMNS, RACE_RUNS = 100_000, 16, 4


def _shared_writes(source: str | None) -> list[str]:
    """Array elements written inside a ``prange`` loop at an index that does not depend
    on the loop's variable (``row[j] = z[i, j]`` into one ``row`` for all iterations).

    For the hint only, never the verdict. ``numba_checks.prange_problems`` misses this
    case: a name in a written element's index (the ``j`` of ``row[j] = z[i, j]``) is
    taken as computed from the loop variable. Here only names assigned whole are.
    """
    import ast

    if not source:
        return []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    for loop in ast.walk(tree):
        iterator = getattr(loop, "iter", None)
        if not (isinstance(loop, ast.For) and isinstance(iterator, ast.Call)):
            continue
        if getattr(iterator.func, "id", getattr(iterator.func, "attr", None)) != "prange":
            continue
        body = ast.Module(body=loop.body, type_ignores=[])
        per_iteration = {n.id for n in ast.walk(loop.target) if isinstance(n, ast.Name)}
        local = set()
        for node in ast.walk(body):
            if isinstance(node, ast.Assign):
                local |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        for _ in range(5):  # names computed from the loop's variable are per-iteration
            for node in ast.walk(body):
                if isinstance(node, (ast.Assign, ast.AugAssign, ast.For)):
                    value = node.iter if isinstance(node, ast.For) else node.value
                    if {n.id for n in ast.walk(value) if isinstance(n, ast.Name)} & per_iteration:
                        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                        for t in targets:
                            if not isinstance(t, ast.Subscript):
                                per_iteration |= {
                                    n.id for n in ast.walk(t) if isinstance(n, ast.Name)
                                }
        for node in ast.walk(body):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AugAssign)
                else []
            )
            for t in targets:
                if not (isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name)):
                    continue
                if t.value.id in local:
                    continue  # an array made (or viewed) inside the loop: one iteration's
                index = {n.id for n in ast.walk(t.slice) if isinstance(n, ast.Name)}
                if not index & per_iteration:
                    found.append(ast.unparse(t))
    return found


@numba_ex.subcheck("log_softmax_numba gives the right answer in every run on 100000 rows")
def _(log_softmax_numba):
    fn = _kernel(log_softmax_numba)
    # one row first: one iteration cannot race, so a wrong answer there is no race
    one = _logits(n=1, c=RACE_COLUMNS, seed=66)
    try:
        expect(
            call_nopython(fn, _NAME, one), _ref_log_softmax(one), "log_softmax_numba for one row"
        )
    except CheckFailed as err:
        raise CheckFailed(f"{err}\n  (races are judged once one row is right)") from None
    # threads only where Numba made a parallel loop (the count is remembered from the
    # check above: no second compile); a serial kernel cannot race, one run judges it
    facts = fn.facts(_numba_sample())
    threads = facts["parallel"] and bool(facts.get("prange_loops"))
    try:
        expect_no_races(
            fn,
            lambda: (_logits(n=RACE_ROWS, c=RACE_COLUMNS, seed=67),),
            _ref_log_softmax,
            f"log_softmax_numba for {RACE_ROWS} rows",
            runs=RACE_RUNS if threads else 1,
        )
    except CheckFailed as err:
        message = str(err)
        shared = _shared_writes(fn.source)
        if shared and "is written by every prange iteration" not in message:
            verdict = message.split("\n  Hint:", 1)[0]
            message = (
                f"{verdict}\n  Hint: on large inputs with every thread the result is wrong (or "
                f"changes from run to run): `{shared[0]}` is written by every prange "
                "iteration, so threads running different rows overwrite each other's "
                "scratch values (a race). Give each iteration its own: allocate the "
                "scratch array inside the prange loop, or use scalars."
            )
        raise CheckFailed(message) from None


# -------------------------------------------- binary cross-entropy from logits, derived

bce_ex = exercise(
    "bce_with_logits",
    ["bce_with_logits"],
    forbidden=(
        "bce_with_logits",
        "BCEWithLogits",
        "bce",
        "losses",
        "sigmoid",
        "softplus",
        "log_sigmoid",
    ),
)


def _ref_bce(z, y):
    """The loss of each element, computed stably in float64, in the dtype of ``z``:
    max(z, 0) - y z + log(1 + e^-|z|), the exact rewriting of
    -y log s(z) - (1 - y) log(1 - s(z)) in which e^-|z| <= 1 never overflows."""
    z64, y64 = z.astype(np.float64), y.astype(np.float64)
    return (np.maximum(z64, 0) - y64 * z64 + np.log1p(np.exp(-np.abs(z64)))).astype(z.dtype)


def _sigmoid64(z):
    return 1 / (1 + np.exp(-z))


def _naive_bce(z, y):
    s = _sigmoid64(z)
    return -y * np.log(s) - (1 - y) * np.log(1 - s)


def _clipped_bce(eps):
    def wrong(z, y):
        s = np.clip(_sigmoid64(z), eps, 1 - eps)
        return -y * np.log(s) - (1 - y) * np.log(1 - s)

    return wrong


def _eps_bce(eps):
    def wrong(z, y):
        s = _sigmoid64(z)
        return -y * np.log(s + eps) - (1 - y) * np.log(1 - s + eps)

    return wrong


BCE_NAIVE_HINT = (
    "the loss as defined, through sigmoid(z): for z >= 37 (17 in float32) sigmoid(z) "
    "rounds to exactly 1, so log(1 - sigmoid(z)) = log(0) = -inf; for z <= -710, e^-z "
    "overflows; and a label of exactly 0 or 1 multiplies the infinite log by 0, which is "
    "nan. Never take the sigmoid first: rewrite log sigmoid(z) = -log(1 + e^-z) and "
    "log(1 - sigmoid(z)) = log sigmoid(-z), and combine the two terms so that only "
    "e^-|z| (never above 1) is computed."
)
BCE_CLIP_HINT = (
    "you clipped sigmoid(z) to [eps, 1 - eps] (or added eps inside the logs): the loss is "
    "finite but capped at -log(eps) (16.1 for eps = 1e-7), where the right loss of a logit "
    "of -1000 for the label 1 is 1000. No clipping is needed: combine the logs "
    "algebraically so no log ever sees 0."
)
BCE_ABS_HINT = (
    "you wrote log(1 + e^-z): for z <= -710 e^-z overflows, and for any negative z the "
    "max(z, 0) term and log(1 + e^-z) together count z twice. The exponent must be -|z|: "
    "log(1 + e^-z) = max(-z, 0) + log(1 + e^-|z|)."
)
BCE_SOFTPLUS_HINT = (
    "log(1 + e^z) overflows for z >= 89 in float32 (710 in float64): e^z is inf. Split "
    "it as log(1 + e^z) = max(z, 0) + log(1 + e^-|z|), where e^-|z| <= 1."
)
BCE_WRONG = [
    WrongAnswer(_naive_bce, BCE_NAIVE_HINT),
    *(WrongAnswer(_clipped_bce(eps), BCE_CLIP_HINT) for eps in (1e-7, 1e-8, 1e-12, 1e-15)),
    *(WrongAnswer(_eps_bce(eps), BCE_CLIP_HINT) for eps in (1e-7, 1e-8, 1e-12, 1e-15)),
    WrongAnswer(lambda z, y: np.maximum(z, 0) - y * z + np.log1p(np.exp(-z)), BCE_ABS_HINT),
    WrongAnswer(lambda z, y: np.log1p(np.exp(z)) - y * z, BCE_SOFTPLUS_HINT),
    WrongAnswer(lambda z, y: np.log(1 + np.exp(z)) - y * z, BCE_SOFTPLUS_HINT),
    WrongAnswer(
        lambda z, y: np.log1p(np.exp(-z)) + (1 - y) * z,
        "log(1 + e^-z) overflows for z <= -89 in float32 (-710 in float64): e^-z is inf. "
        "Split it as log(1 + e^-z) = max(-z, 0) + log(1 + e^-|z|), where e^-|z| <= 1.",
    ),
    WrongAnswer(
        lambda z, y: np.maximum(z, 0) + y * z + np.log1p(np.exp(-np.abs(z))),
        "the y z term has the wrong sign: -y log sigmoid(z) - (1 - y) log(1 - sigmoid(z)) "
        "= log(1 + e^z) - y z, so for the label 1 the loss falls as z grows.",
    ),
    WrongAnswer(
        lambda z, y: np.maximum(z, 0) - (1 - y) * z + np.log1p(np.exp(-np.abs(z))),
        "you swapped y and 1 - y: your loss is the loss of the opposite label. For y = 1 "
        "the loss must fall as z grows (the network says yes more loudly).",
    ),
    WrongAnswer(
        lambda z, y: -y * z + np.log1p(np.exp(-np.abs(z))),
        "you left out max(z, 0): log(1 + e^z) = max(z, 0) + log(1 + e^-|z|), not "
        "log(1 + e^-|z|) alone (check: your loss of z = 1000, y = 0 is not 1000).",
    ),
]


def _bce_call(bce_with_logits, z, y, what):
    """The learner's per-element losses (an array), or a failure naming a reduction."""
    got = _called(bce_with_logits, z, y)
    if got is not None and not isinstance(got, np.ndarray):
        try:
            value = np.asarray(got, dtype=np.float64)
        except (TypeError, ValueError):
            value = None
        if value is not None and value.shape == () and z.size > 1:
            want = _ref_bce(z, y).astype(np.float64)
            said = (
                "the mean"
                if np.isclose(value, want.mean())
                else "the sum"
                if np.isclose(value, want.sum())
                else "one number"
            )
            raise CheckFailed(
                f"{what}: you returned {said} of the losses, a {type(got).__name__}; "
                f"expected the loss of each element, an array of shape {z.shape}. Hint: "
                "leave out the reduction (np.mean/np.sum): the exercise asks for one loss "
                "per element, of z's shape."
            )
    return got


def _bce_expect(bce_with_logits, z, y, what):
    got = _bce_call(bce_with_logits, z, y, what)
    want = _ref_bce(z, y)
    if (
        isinstance(got, np.ndarray)
        and got.shape == want.shape
        and np.issubdtype(got.dtype, np.floating)
        and not np.all(np.isfinite(got))
    ):
        bad = np.argwhere(~np.isfinite(got))[:3]
        where = "; ".join(
            f"z = {z[i].item()!r}, y = {y[i].item()!r}: got {got[i].item()!r}, "
            f"expected {want[i].item()!r}"
            for i in map(tuple, bad)
        )
        hint = _hint(got, BCE_WRONG, (z, y), want.dtype) or (
            "the loss is finite for every z and y: never compute sigmoid(z) and take its "
            "log; rewrite the loss so that only e^-|z| (never above 1) is computed."
        )
        raise CheckFailed(f"{what}: inf or nan where the loss is finite ({where}). Hint: {hint}")
    expect(got, want, what, inputs={"z": z, "y": y}, known=BCE_WRONG, args=(z, y))


def _bce_data(shape, seed, dtype=np.float64, soft=False):
    rng = _rng(seed)
    z = (rng.standard_normal(shape) * 4).astype(dtype)
    y = rng.random(shape) if soft else rng.integers(0, 2, shape)
    return z, y.astype(dtype)


# The whole range: logits from -1e30 to 1e30 through the places where the naive form
# breaks (|z| = 17, 37, 89, 710), labels exactly 0 and 1 and soft ones (0.25 and 0.5,
# exact in binary so the float32 reference is the same number).
BCE_LOGITS = (-1e30, -1000, -710, -100, -89, -37, -17, -5, -1, -1e-3, 0)
BCE_LOGITS = (*BCE_LOGITS, *(-v for v in BCE_LOGITS[::-1][1:]))
BCE_LABELS = (0.0, 1.0, 0.25, 0.5)


@bce_ex.subcheck("bce_with_logits(z, y) matches the reference for (6, 3) logits and 0/1 labels")
def _(bce_with_logits):
    z, y = _bce_data((6, 3), seed=70)
    _bce_expect(bce_with_logits, z, y, "bce_with_logits for (6, 3) logits")


@bce_ex.subcheck("bce_with_logits is accurate for logits from -1e30 to 1e30 (float64 and float32)")
def _(bce_with_logits):
    for dtype in (np.float64, np.float32):
        Y, Z = np.meshgrid(
            np.array(BCE_LABELS), np.array(BCE_LOGITS, dtype=np.float64), indexing="ij"
        )
        z, y = Z.astype(dtype), Y.astype(dtype)
        _bce_expect(
            bce_with_logits,
            z,
            y,
            f"bce_with_logits for {np.dtype(dtype).name} logits from -1e30 to 1e30 "
            "and labels 0, 1, 0.25, 0.5",
        )


@bce_ex.subcheck("bce_with_logits takes soft labels, keeps float32 float32")
def _(bce_with_logits):
    for dtype in (np.float64, np.float32):
        z, y = _bce_data((5, 4), seed=71, dtype=dtype, soft=True)
        _bce_expect(
            bce_with_logits, z, y, f"bce_with_logits for {np.dtype(dtype).name} soft labels"
        )


@bce_ex.subcheck("bce_with_logits works for any shape (1-D, (N, 1), 3-D, empty)")
def _(bce_with_logits):
    for i, shape in enumerate(((7,), (5, 1), (2, 3, 4), (0,))):
        z, y = _bce_data(shape, seed=72 + i)
        _bce_expect(bce_with_logits, z, y, f"bce_with_logits for shape {shape}")


@bce_ex.subcheck("bce_with_logits leaves z and y unchanged and returns a new array")
def _(bce_with_logits):
    # every call checks this; here where an in-place abs or subtraction would fit
    z, y = _bce_data((4, 4), seed=77)
    _bce_expect(bce_with_logits, z, y, "bce_with_logits for (4, 4) logits")


# ---------------------------------------- how far the naive softmax goes: find the number

limit_ex = exercise("largest_safe_logit", ["largest_safe_logit"], forbidden=("largest_safe_logit",))

# The limit is ln(max) of the dtype: 11.0899 (float16), 88.7228 (float32), 709.7827
# (float64), up to the rounding of x to the dtype (one ulp there: 0.0078, 7.6e-6 and
# 1.1e-13). The tolerance, 0.01, accepts a bisection stopped at a width of 0.01 and
# either side of that rounding (float16's half-ulp is 0.004), and rejects every wrong
# answer below: a search in whole numbers (11, 88, 709: 0.09, 0.72, 0.78 away), another
# dtype's limit, log10 of the largest float (4.8, 38.5, 308.3), the largest float itself.
LIMIT_ATOL = 0.01
LIMIT_DTYPES = ("float32", "float64", "float16")


def safe_logit_limit(dtype: str) -> float:
    """ln of the largest finite number of ``dtype``: e^x is finite up to there."""
    return float(np.log(np.float64(np.finfo(dtype).max)))


LIMIT_WRONG = (
    (
        lambda d: safe_logit_limit("float64"),
        "that is float64's limit: your experiment computes in float64 whatever dtype it is "
        "asked for (a Python float, or np.exp of a float64 array, is float64). Build the "
        "row in the dtype asked for: np.array([x, 0.0], dtype=dtype).",
    ),
    (
        lambda d: float(np.floor(safe_logit_limit(d))),
        "you searched in whole numbers: the limit lies between two integers. Bisect until "
        "the interval is narrower than 0.01 (or think: exp(x) stays finite while x is "
        "below the log of the largest float).",
    ),
    (
        lambda d: float(np.log10(np.float64(np.finfo(d).max))),
        "that is log10 of the largest float: exp is e^x, so the limit is the natural log, "
        "np.log, of the largest float.",
    ),
    (
        lambda d: float(np.finfo(d).max),
        "that is the largest float itself, the largest value exp(x) may reach; the "
        "question is the largest logit x, whose exp is that.",
    ),
)


def _limit_hint(largest_safe_logit, found: dict) -> str:
    """The hint of the wrong answer that the learner's numbers ``found`` ({dtype: x})
    fit for every dtype (the other dtypes are asked for too)."""
    for d in LIMIT_DTYPES:
        if d not in found:
            found[d] = quiet(lambda d=d: as_number(largest_safe_logit(d), "largest_safe_logit"))
    found = {d: x for d, x in found.items() if x is not None}
    for wrong, hint in LIMIT_WRONG:
        fits = [
            np.isclose(x, wrong(d), atol=LIMIT_ATOL, rtol=1e-6)
            for d, x in found.items()
            if not (wrong is LIMIT_WRONG[0][0] and d == "float64")
        ]
        if fits and all(fits):
            return hint
    values = list(found.values())
    if len(values) == len(LIMIT_DTYPES) and max(values) - min(values) <= LIMIT_ATOL:
        return (
            "your function gives the same number for every dtype: compute the softmax in "
            "the dtype it is called with."
        )
    return ""


def _check_limits(largest_safe_logit, dtypes):
    found = {
        d: as_number(_called(largest_safe_logit, d), f"largest_safe_logit({d!r})") for d in dtypes
    }
    bad = [d for d, x in found.items() if abs(x - safe_logit_limit(d)) > LIMIT_ATOL]
    if not bad:
        return
    d = bad[0]
    message = (
        f"largest_safe_logit({d!r}) = {found[d]!r}; the naive softmax of [x, 0] in {d} is "
        f"finite up to x = {safe_logit_limit(d):.4f} and overflows above it (accepted: "
        f"within {LIMIT_ATOL})"
    )
    hint = _limit_hint(largest_safe_logit, dict(found))
    raise CheckFailed(message + (f"\n  Hint: {hint}" if hint else ""))


@limit_ex.subcheck("largest_safe_logit('float32') is the float32 limit (within 0.01)")
def _(largest_safe_logit):
    _check_limits(largest_safe_logit, ("float32",))


@limit_ex.subcheck("largest_safe_logit finds the float64 and float16 limits as well")
def _(largest_safe_logit):
    _check_limits(largest_safe_logit, LIMIT_DTYPES)
