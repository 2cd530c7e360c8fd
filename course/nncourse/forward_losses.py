"""Checks for exercise set 02, the forward pass and losses
(``solutions/02_forward_losses.ipynb``).

References: a dense layer is ``X @ W + b``; the log-softmax and softmax come from
``nnlib.functional`` on the ``numpy`` backend. Inputs come from fixed seeds, so a
verdict never changes between runs. Each exercise lists the wrong answers learners
typically write, so the feedback can name the mistake.
"""

from __future__ import annotations

import numpy as np

from nnlib import functional as F
from nnlib.gradient_check import numerical_gradient, relative_error

from .checks import CheckFailed, WrongAnswer, exercise, expect, expect_unchanged, matches, quiet
from .numba_checks import add_numba_subchecks, call_nopython, dispatcher


def _rng(seed):
    return np.random.default_rng(seed)


def _pair(result, fn_name, names):
    """``(a, b)`` from a function that must return two things."""
    if not isinstance(result, tuple) or len(result) != 2:
        raise CheckFailed(
            f"{fn_name} must return a pair ({', '.join(names)}); got "
            f"{type(result).__name__}. Hint: `return {', '.join(names)}`."
        )
    return result


def expect_scalar(got, want: float, what: str, *, known=(), args=(), rtol=1e-9) -> None:
    """Fail unless ``got`` is one number close to ``want`` (relative tolerance)."""
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
    if not np.isclose(value, want, rtol=rtol, atol=1e-12):
        message = f"{what}: expected {want!r}, got {value.item()!r}"
        for wrong in known:
            if matches(value, np.asarray(quiet(wrong.fn, *args), dtype=np.float64)):
                message += f"\n  Hint: {wrong.hint}"
                break
        raise CheckFailed(message)


def _gradient_consistent(loss_of, grad, x, what, hint):
    """The learner's gradient against central differences of their own loss (float64)."""
    numeric = numerical_gradient(lambda v: float(np.asarray(loss_of(v))), x.copy())
    err = relative_error(np.asarray(grad, dtype=np.float64), numeric)
    if not err < 1e-6:
        raise CheckFailed(
            f"{what} disagrees with central differences of your loss: relative error "
            f"{err:.2e} (cs231n's rule: below 1e-7 is right, above 1e-4 is a bug). Hint: {hint}"
        )


# ------------------------------------------------------------------------ dense forward

dense_ex = exercise("dense_forward", ["dense_forward"])


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
]


@dense_ex.subcheck("dense_forward(X, W, b) equals X @ W + b for (5, 3) @ (3, 4) + (4,)")
def _(dense_forward):
    X, W, b = _dense_data()
    got = dense_forward(X.copy(), W.copy(), b.copy())
    if isinstance(got, np.ndarray) and got.shape != (5, 4):
        hint = next((w.hint for w in DENSE_WRONG if matches(got, w.fn(X, W, b))), None)
        raise CheckFailed(
            f"dense_forward: shape {got.shape}, expected (N, H) = (5, 4)"
            + (f"\n  Hint: {hint}" if hint else "")
        )
    expect(got, X @ W + b, "dense_forward(X, W, b)", known=DENSE_WRONG, args=(X, W, b))


@dense_ex.subcheck("dense_forward works for one example and for a wide layer")
def _(dense_forward):
    for n, d, h in ((1, 3, 4), (7, 2, 9)):
        X, W, b = _dense_data(n=n, d=d, h=h, seed=11 + n)
        expect(
            dense_forward(X, W, b),
            X @ W + b,
            f"dense_forward for N, D, H = {n}, {d}, {h}",
            known=DENSE_WRONG,
            args=(X, W, b),
        )


@dense_ex.subcheck("dense_forward keeps float32 input float32")
def _(dense_forward):
    X, W, b = _dense_data(np.float32)
    expect(dense_forward(X, W, b), X @ W + b, "dense_forward for float32 inputs")


@dense_ex.subcheck("dense_forward leaves its inputs unchanged")
def _(dense_forward):
    X, W, b = _dense_data()
    saved = [a.copy() for a in (X, W, b)]
    dense_forward(X, W, b)
    for name, a, before in zip("XWb", (X, W, b), saved, strict=True):
        expect_unchanged(a, before, name, "dense_forward")


# --------------------------------------------------------------------------------- MSE

mse_ex = exercise("mse", ["mse"])


def _mse_data(shape=(6, 2), seed=20, dtype=np.float64):
    rng = _rng(seed)
    return rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)


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
]


@mse_ex.subcheck("mse returns the mean of (pred - target)**2 over all elements")
def _(mse):
    p, t = _mse_data()
    loss, _ = _pair(mse(p.copy(), t.copy()), "mse", ("loss", "grad"))
    expect_scalar(loss, float(np.mean((p - t) ** 2)), "mse loss", known=MSE_LOSS_WRONG, args=(p, t))


@mse_ex.subcheck("mse's gradient equals 2 (pred - target) / pred.size")
def _(mse):
    p, t = _mse_data()
    _, grad = _pair(mse(p.copy(), t.copy()), "mse", ("loss", "grad"))
    expect(grad, 2 * (p - t) / p.size, "mse gradient", known=MSE_GRAD_WRONG, args=(p, t))


@mse_ex.subcheck("mse's gradient passes a float64 gradient check")
def _(mse):
    p, t = _mse_data((3, 2), seed=21)
    _, grad = _pair(mse(p.copy(), t.copy()), "mse", ("loss", "grad"))
    hint = next(
        (w.hint for w in MSE_GRAD_WRONG if matches(np.asarray(grad), quiet(w.fn, p, t))),
        "differentiate your loss again, element by element.",
    )
    _gradient_consistent(lambda v: mse(v, t)[0], grad, p, "mse gradient", hint)


@mse_ex.subcheck("mse keeps float32 gradients float32")
def _(mse):
    p, t = _mse_data(dtype=np.float32)
    _, grad = _pair(mse(p, t), "mse", ("loss", "grad"))
    expect(grad, (2 * (p - t) / p.size).astype(np.float32), "mse gradient for float32")


# ------------------------------------------------------------------------- log-softmax

logsm_ex = exercise("log_softmax", ["log_softmax"])


def _logits(n=4, c=5, seed=30, scale=3.0, dtype=np.float64):
    return (_rng(seed).standard_normal((n, c)) * scale).astype(dtype)


def _ref_log_softmax(z):
    return F.log_softmax(z, backend="numpy")


LOGSM_WRONG = [
    WrongAnswer(
        lambda z: z - np.log(np.sum(np.exp(z), axis=0, keepdims=True)),
        "you normalised over axis 0 (the columns): each row is one example, normalise each "
        "row (axis=-1).",
    ),
    WrongAnswer(
        lambda z: z - z.max(axis=-1, keepdims=True),
        "you subtracted the maximum but left out - log(sum(exp(z - max))).",
    ),
    WrongAnswer(
        lambda z: np.log(np.exp(z) / np.sum(np.exp(z), axis=-1, keepdims=True)),
        "log(softmax) computed directly overflows for large logits: use z - max - "
        "log(sum(exp(z - max))).",
    ),
    WrongAnswer(
        lambda z: np.exp(z) / np.sum(np.exp(z), axis=-1, keepdims=True),
        "that is the softmax itself: take its logarithm (stably).",
    ),
]


@logsm_ex.subcheck("log_softmax(z) matches the reference on (4, 5) logits")
def _(log_softmax):
    z = _logits()
    expect(
        log_softmax(z.copy()), _ref_log_softmax(z), "log_softmax(z)", known=LOGSM_WRONG, args=(z,)
    )


@logsm_ex.subcheck("every row of exp(log_softmax(z)) sums to 1")
def _(log_softmax):
    z = _logits(n=6, c=3, seed=31)
    out = np.asarray(log_softmax(z))
    sums = np.exp(out).sum(axis=-1) if out.shape == z.shape else None
    if sums is None or not np.allclose(sums, 1.0):
        hint = next((w.hint for w in LOGSM_WRONG if matches(out, quiet(w.fn, z))), "")
        raise CheckFailed(
            "exp(log_softmax(z)) does not sum to 1 along each row"
            + (f"\n  Hint: {hint}" if hint else "")
        )


@logsm_ex.subcheck("log_softmax is finite and warning-free for logits of +-1e4")
def _(log_softmax):
    z = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4 + 1.0, -1e4 + 2.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        try:
            got = np.asarray(log_softmax(z.copy()))
        except FloatingPointError as err:
            raise CheckFailed(
                f"log_softmax overflowed for logits of 1e4 ({err}). Hint: subtract each row's "
                "maximum before exp: z - max - log(sum(exp(z - max)))."
            ) from None
    expect(
        got, _ref_log_softmax(z), "log_softmax for logits of +-1e4", known=LOGSM_WRONG, args=(z,)
    )


@logsm_ex.subcheck("log_softmax keeps float32 float32 and leaves z unchanged")
def _(log_softmax):
    z = _logits(dtype=np.float32, seed=32)
    before = z.copy()
    got = log_softmax(z)
    expect_unchanged(z, before, "z", "log_softmax")
    expect(got, _ref_log_softmax(before), "log_softmax for float32 z")


# -------------------------------------------------------------- softmax cross-entropy

ce_ex = exercise("softmax_cross_entropy", ["softmax_cross_entropy"])


def _ce_data(n=6, c=4, seed=40, scale=2.0, dtype=np.float64):
    rng = _rng(seed)
    return (rng.standard_normal((n, c)) * scale).astype(dtype), rng.integers(0, c, n)


def _onehot(y, c, dtype=np.float64):
    out = np.zeros((len(y), c), dtype)
    out[np.arange(len(y)), y] = 1
    return out


def _ce_ref(z, y):
    logp = _ref_log_softmax(z.astype(np.float64))
    loss = -logp[np.arange(len(y)), y].mean()
    grad = (np.exp(logp) - _onehot(y, z.shape[1])) / len(y)
    return float(loss), grad.astype(z.dtype)


def _sm(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


CE_LOSS_WRONG = [
    WrongAnswer(
        lambda z, y: -_ref_log_softmax(z)[np.arange(len(y)), y].sum(),
        "you summed over the batch: the loss is the mean over the N examples.",
    ),
    WrongAnswer(
        lambda z, y: _ref_log_softmax(z)[np.arange(len(y)), y].mean(),
        "your loss is negative: cross-entropy is MINUS the mean log-probability of the "
        "right class.",
    ),
    WrongAnswer(
        lambda z, y: -_ref_log_softmax(z).mean(),
        "you averaged the log-probabilities of every class: pick the true class of each "
        "row, logp[np.arange(N), y].",
    ),
    WrongAnswer(
        lambda z, y: -z[np.arange(len(y)), y].mean(),
        "you used the raw logit of the true class: take the log-softmax first.",
    ),
]
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
]


@ce_ex.subcheck("the loss is the mean over rows of -log softmax(z)[i, y_i]")
def _(softmax_cross_entropy):
    z, y = _ce_data()
    loss, _ = _pair(
        softmax_cross_entropy(z.copy(), y.copy()), "softmax_cross_entropy", ("loss", "dz")
    )
    expect_scalar(
        loss, _ce_ref(z, y)[0], "softmax cross-entropy loss", known=CE_LOSS_WRONG, args=(z, y)
    )


@ce_ex.subcheck("the gradient equals (softmax(z) - onehot(y)) / N")
def _(softmax_cross_entropy):
    z, y = _ce_data()
    _, dz = _pair(
        softmax_cross_entropy(z.copy(), y.copy()), "softmax_cross_entropy", ("loss", "dz")
    )
    expect(dz, _ce_ref(z, y)[1], "dz", known=CE_GRAD_WRONG, args=(z, y))


@ce_ex.subcheck("the gradient passes a float64 gradient check")
def _(softmax_cross_entropy):
    z, y = _ce_data(n=3, c=3, seed=41)
    _, dz = _pair(softmax_cross_entropy(z.copy(), y), "softmax_cross_entropy", ("loss", "dz"))
    hint = next(
        (w.hint for w in CE_GRAD_WRONG if matches(np.asarray(dz), quiet(w.fn, z, y))),
        "derive d loss / d z again: softmax minus the one-hot label, over N.",
    )
    _gradient_consistent(lambda v: softmax_cross_entropy(v, y)[0], dz, z, "dz", hint)


@ce_ex.subcheck("it is finite and warning-free for logits of +-1e4")
def _(softmax_cross_entropy):
    z = np.array([[1e4, 0.0, -1e4], [0.0, -1e4, 1e4]])
    y = np.array([1, 2])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        try:
            loss, dz = _pair(
                softmax_cross_entropy(z.copy(), y), "softmax_cross_entropy", ("loss", "dz")
            )
        except FloatingPointError as err:
            raise CheckFailed(
                f"softmax_cross_entropy overflowed for logits of 1e4 ({err}). Hint: compute "
                "the loss from a stable log-softmax (subtract each row's max), never "
                "log(softmax(z))."
            ) from None
    want_loss, want_dz = _ce_ref(z, y)
    expect_scalar(loss, want_loss, "loss for logits of +-1e4")
    expect(dz, want_dz, "dz for logits of +-1e4")


@ce_ex.subcheck("float32 logits give a float32 gradient")
def _(softmax_cross_entropy):
    z, y = _ce_data(dtype=np.float32, seed=42)
    _, dz = _pair(softmax_cross_entropy(z, y), "softmax_cross_entropy", ("loss", "dz"))
    expect(dz, _ce_ref(z, y)[1], "dz for float32 logits")


# ---------------------------------------------------------------------------- accuracy

acc_ex = exercise("accuracy", ["accuracy"])


def _acc_data(n=40, c=3, seed=50):
    rng = _rng(seed)
    z = rng.standard_normal((n, c))
    y = np.where(rng.random(n) < 0.6, z.argmax(axis=1), rng.integers(0, c, n))
    return z, y


ACC_WRONG = [
    WrongAnswer(
        lambda z, y: np.mean(z.argmax(axis=0)[: len(y)] == y) if z.shape[0] >= 1 else 0,
        "you took the argmax over axis 0: the predicted class of example i is the argmax of "
        "row i (axis=1).",
    ),
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


@acc_ex.subcheck("accuracy(z, y) is the fraction of rows whose argmax equals y")
def _(accuracy):
    z, y = _acc_data()
    expect_scalar(
        accuracy(z.copy(), y.copy()),
        float(np.mean(z.argmax(1) == y)),
        "accuracy(z, y)",
        known=ACC_WRONG,
        args=(z, y),
    )


@acc_ex.subcheck("accuracy is 1 for perfect predictions and 0 for all wrong")
def _(accuracy):
    z = np.eye(4)[[0, 2, 3, 1, 1]] * 5.0
    y = np.array([0, 2, 3, 1, 1])
    expect_scalar(
        accuracy(z, y), 1.0, "accuracy of perfect predictions", known=ACC_WRONG, args=(z, y)
    )
    expect_scalar(
        accuracy(z, (y + 1) % 4),
        0.0,
        "accuracy of all-wrong predictions",
        known=ACC_WRONG,
        args=(z, (y + 1) % 4),
    )


@acc_ex.subcheck("accuracy works on probabilities as well as on logits")
def _(accuracy):
    z, y = _acc_data(n=25, c=5, seed=51)
    p = _sm(z)
    expect_scalar(
        accuracy(p, y),
        float(np.mean(z.argmax(1) == y)),
        "accuracy(softmax(z), y)",
        known=ACC_WRONG,
        args=(p, y),
    )


@acc_ex.subcheck("accuracy of a single example")
def _(accuracy):
    z, y = np.array([[0.1, 0.7, 0.2]]), np.array([1])
    expect_scalar(
        accuracy(z, y), 1.0, "accuracy of one right example", known=ACC_WRONG, args=(z, y)
    )


# ------------------------------------------------------- log-softmax as a Numba kernel

numba_ex = exercise("log_softmax_numba", ["log_softmax_numba"])
_SIG = "z"


def _numba_sample():
    return (_logits(n=3, c=4, seed=60),)


add_numba_subchecks(
    numba_ex,
    "log_softmax_numba",
    _SIG,
    _numba_sample,
    "the loop over the rows as `for i in prange(z.shape[0]):`",
)


@numba_ex.subcheck("log_softmax_numba(z) matches the reference for float64 (N, C) logits")
def _(log_softmax_numba):
    fn = dispatcher(log_softmax_numba, "log_softmax_numba", _SIG)
    for n, c in ((1, 3), (200, 10)):
        z = _logits(n=n, c=c, seed=61 + n)
        got = call_nopython(fn, "log_softmax_numba", z.copy())
        expect(
            got,
            _ref_log_softmax(z),
            f"log_softmax_numba for N, C = {n}, {c}",
            known=LOGSM_WRONG,
            args=(z,),
        )


@numba_ex.subcheck("log_softmax_numba is stable for logits of +-1e4")
def _(log_softmax_numba):
    fn = dispatcher(log_softmax_numba, "log_softmax_numba", _SIG)
    z = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4 + 1.0, -1e4 + 2.0]])
    got = np.asarray(call_nopython(fn, "log_softmax_numba", z.copy()))
    if not np.all(np.isfinite(got)):
        raise CheckFailed(
            "log_softmax_numba gave inf or nan for logits of 1e4. Hint: find each row's "
            "maximum first and use exp(z[i, j] - m) in the sum."
        )
    expect(got, _ref_log_softmax(z), "log_softmax_numba for logits of +-1e4")


@numba_ex.subcheck("log_softmax_numba keeps float32 float32 and leaves z unchanged")
def _(log_softmax_numba):
    fn = dispatcher(log_softmax_numba, "log_softmax_numba", _SIG)
    z = _logits(n=5, c=4, seed=63, dtype=np.float32)
    before = z.copy()
    got = call_nopython(fn, "log_softmax_numba", z)
    expect_unchanged(z, before, "z", "log_softmax_numba")
    expect(got, _ref_log_softmax(before), "log_softmax_numba for float32 z")
