"""Checks for exercise set 03, backpropagation (``solutions/03_backprop.ipynb``).

Every expected value comes from nnlib's NumPy reference (the ``numpy`` backend of the
``dense_backward`` and ``softmax_cross_entropy`` ops, ``nnlib.functional``, and the
``Dense``/``ReLU`` layers for the two-layer network) and every backward pass is also
compared with float64 central differences (cs231n's relative error). Inputs come from
fixed seeds, so a verdict never changes between runs.

Each exercise is graded on its own: ``train_step`` is handed the grader's own forward
and backward functions (module-level functions, so that ``make grade``'s kernel can
import them by name), so a mistake in one exercise never fails another.

The learner's functions are :class:`~nncourse.learner.LearnerFunction` objects: every
call also checks that no argument was changed in place (``train_step`` may update
``params``; nothing else may change), that no result is an argument's memory (except
``mlp_forward``'s cache, which holds ``X`` by design) and that the answer does not call
nnlib's own version of what it is asked to write (each exercise's ``forbidden`` names).

Shapes: N batch, D input features, H hidden units (or a layer's outputs), C classes.
"""

from __future__ import annotations

import ast
import functools

import numpy as np

from nnlib import functional as F
from nnlib._backend import dispatch, use_backend
from nnlib.gradient_check import check_vjp, numerical_gradient, relative_error
from nnlib.testing import tolerance

from .checks import CheckFailed, WrongAnswer, exercise, expect, quiet, unpack
from .numba_checks import (
    call_nopython,
    dispatcher,
    expect_every_element_written,
    prange_loops,
    prange_problems,
)

# cs231n: a relative error below 1e-7 is right, above 1e-4 almost certainly a bug. A
# loss through softmax has gradient entries of order 1e-3, where the central
# difference's round-off (about 1e-10) alone gives 1e-7: 1e-6 leaves room for that and
# still fails every wrong formula by orders of magnitude.
GRAD_TOL = 1e-6

# nnlib functions and modules that compute a gradient for the learner in every
# exercise: numerical differentiation, the op registry (``dispatch("relu_backward")``),
# layers and models with their backward passes.
_BACKDOORS = ("gradient_check", "numerical_gradient", "dispatch", "_backend", "layers", "model")


def _rng(seed):
    return np.random.default_rng(seed)


def _away_from_zero(shape, seed, scale=1.0):
    """float64 values with |x| >= 0.1 * scale: no central difference crosses a kink."""
    x = _rng(seed).standard_normal(shape)
    return scale * np.where(x >= 0, x + 0.1, x - 0.1)


def _gradient_check(analytic, numeric, what, hint):
    err = relative_error(analytic, numeric)
    if not err <= GRAD_TOL:
        raise CheckFailed(
            f"{what} disagrees with central differences of the forward pass: relative "
            f"error {err:.2e} (tolerance {GRAD_TOL:.0e}; cs231n's rule: below 1e-7 is "
            f"right, above 1e-4 is almost certainly a bug). Hint: {hint}"
        )


def _array_result(value, what):
    if value is None:
        raise CheckFailed(f"{what}: your function returned None. Did you forget `return`?")
    return value


def _close(got, want) -> bool:
    """``got`` is an array equal to ``want`` within the tolerance of ``want``'s dtype."""
    if not isinstance(got, np.ndarray) or got.shape != want.shape:
        return False
    atol, rtol = tolerance(want.dtype)
    return bool(np.allclose(got, want, atol=atol, rtol=rtol, equal_nan=True))


ONE_HOT_HINT = (
    "build the one-hot labels with one column per class, C = {c} (e.g. np.eye(C)[y] with "
    "C = Z.shape[1], or P[np.arange(N), y] -= 1): this batch holds no example of the last "
    "classes, so y.max() + 1 is less than C."
)


def _call_lacking_classes(fn, args, fn_name, c):
    """``fn(*args)``, where ``args[-1]`` are labels that miss the last classes of ``c``.

    An indexing or broadcasting error there is named as the one-hot built from the
    labels (``np.eye(y.max() + 1)``) only with evidence: the same call with the last
    label changed to class ``c - 1`` runs."""
    y = args[-1]
    try:
        return fn(*args)
    except (ValueError, IndexError) as err:
        full = y.copy()
        full[-1] = c - 1
        try:
            fn(*args[:-1], full)
        except Exception:
            raise err from None
        raise CheckFailed(
            f"{fn_name} raised {type(err).__name__}: {err}\n  Hint: " + ONE_HOT_HINT.format(c=c)
        ) from None


# -------------------------------------------------------------------- the dense layer

dense_ex = exercise(
    "dense_backward",
    ["dense_backward"],
    forbidden=("dense_backward", "dense", "sequential", *_BACKDOORS),
)


def _dense_data(dtype=np.float64, n=5, d=3, h=4, seed=30):
    rng = _rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    W = rng.standard_normal((d, h)).astype(dtype)
    dY = rng.standard_normal((n, h)).astype(dtype)
    return dY, X, W


def dense_backward_ref(dY, X, W):
    """nnlib's reference: (dX (N, D), dW (D, H), db (H,)) of ``Y = X @ W + b``."""
    return dispatch("dense_backward", "numpy")(dY, X, W, dY, 0)


DX_WRONG = [
    WrongAnswer(
        lambda dY, X, W: (dY @ W.T).T,
        "your dX is transposed, shape (D, N): dX = dY @ W.T has the shape of X, (N, D).",
    ),
    WrongAnswer(
        lambda dY, X, W: dY @ W.T / len(X),
        "your dX is divided by N: dY already holds the 1/N of a mean loss; dX = dY @ W.T.",
    ),
    WrongAnswer(
        lambda dY, X, W: X @ W @ W.T,
        "your dX uses Y = X @ W instead of dY: backward multiplies the upstream gradient dY.",
    ),
]
DW_WRONG = [
    WrongAnswer(
        lambda dY, X, W: dY.T @ X,
        "your dW is dY.T @ X, shape (H, D): that is dW transposed. dW must have the shape "
        "of W, (D, H): dW = X.T @ dY.",
    ),
    WrongAnswer(
        lambda dY, X, W: X.T @ dY / len(X),
        "your dW is divided by N: dY already holds the 1/N of a mean loss; dW = X.T @ dY.",
    ),
    WrongAnswer(
        lambda dY, X, W: np.outer(X.sum(axis=0), dY.sum(axis=0)),
        "you summed X and dY over the batch before multiplying: dW = X.T @ dY adds the "
        "products x_n dy_n of each example n, not the product of the sums.",
    ),
    WrongAnswer(
        lambda dY, X, W: W.T @ dY.T,
        "your dW mixes up W and X: dW = X.T @ dY uses the layer's input X.",
    ),
]
DB_WRONG = [
    WrongAnswer(
        lambda dY, X, W: dY,
        "your db has shape (N, H): the same b is added to every row, so its gradient "
        "adds up the rows of dY: db = dY.sum(axis=0), shape (H,).",
    ),
    WrongAnswer(
        lambda dY, X, W: dY.mean(axis=0),
        "your db is the mean of the rows of dY: b is used by every row, so the gradients "
        "add up, db = dY.sum(axis=0) (any 1/N is already in dY).",
    ),
    WrongAnswer(
        lambda dY, X, W: dY.sum(axis=1),
        "your db sums each row (axis=1), shape (N,): sum over the batch, axis=0, shape (H,).",
    ),
    WrongAnswer(
        lambda dY, X, W: np.asarray(dY.sum()),
        "your db is one number, the sum of all of dY: sum over the batch only, "
        "dY.sum(axis=0), one entry per output feature (H,).",
    ),
    WrongAnswer(
        lambda dY, X, W: dY.sum(axis=0) - dY[0],
        "your db misses the first row of dY: add up every row, dY.sum(axis=0).",
    ),
]
DENSE_WRONG = {"dX": DX_WRONG, "dW": DW_WRONG, "db": DB_WRONG}


def _dense_parts(dense_backward, dY, X, W):
    return unpack(dense_backward(dY, X, W), ("dX", "dW", "db"), "dense_backward")


def _expect_dense(dense_backward, dY, X, W, what):
    got = _dense_parts(dense_backward, dY, X, W)
    for (name, known), g, want in zip(
        DENSE_WRONG.items(), got, dense_backward_ref(dY, X, W), strict=True
    ):
        expect(_array_result(g, name), want, f"{name} {what}", known=known, args=(dY, X, W))


@dense_ex.subcheck("dense_backward returns (dX, dW, db) shaped (N, D), (D, H), (H,)")
def _(dense_backward):
    dY, X, W = _dense_data()
    got = _dense_parts(dense_backward, dY, X, W)
    for (name, known), g, want in zip(
        DENSE_WRONG.items(), got, dense_backward_ref(dY, X, W), strict=True
    ):
        g = _array_result(g, name)
        if np.shape(g) != want.shape:
            expect(g, want, f"{name} for N, D, H = 5, 3, 4", known=known, args=(dY, X, W))


@dense_ex.subcheck("dX equals dY @ W.T")
def _(dense_backward):
    dY, X, W = _dense_data(seed=31)
    dX = _dense_parts(dense_backward, dY, X, W)[0]
    expect(dX, dense_backward_ref(dY, X, W)[0], "dX", known=DX_WRONG, args=(dY, X, W))


@dense_ex.subcheck("dW equals X.T @ dY")
def _(dense_backward):
    dY, X, W = _dense_data(seed=32)
    dW = _dense_parts(dense_backward, dY, X, W)[1]
    expect(dW, dense_backward_ref(dY, X, W)[1], "dW", known=DW_WRONG, args=(dY, X, W))


@dense_ex.subcheck("db equals dY summed over the batch (the rows)")
def _(dense_backward):
    dY, X, W = _dense_data(seed=33)
    db = _dense_parts(dense_backward, dY, X, W)[2]
    expect(db, dense_backward_ref(dY, X, W)[2], "db", known=DB_WRONG, args=(dY, X, W))


@dense_ex.subcheck("dX, dW and db pass a float64 gradient check")
def _(dense_backward):
    dY, X, W = _dense_data(seed=34)
    b = _rng(35).standard_normal(W.shape[1])
    got = _dense_parts(dense_backward, dY, X, W)

    def loss(X_, W_, b_):  # L = sum(dY * Y): its gradient with respect to Y is dY
        return float(np.sum(dY * (X_ @ W_ + b_)))

    numeric = {
        "dX": numerical_gradient(lambda v: loss(v, W, b), X),
        "dW": numerical_gradient(lambda v: loss(X, v, b), W),
        "db": numerical_gradient(lambda v: loss(X, W, v), b),
    }
    for (name, want), g in zip(numeric.items(), got, strict=True):
        if np.shape(g) != want.shape:
            raise CheckFailed(f"{name}: shape {np.shape(g)}, expected {want.shape}")
        _gradient_check(
            g,
            want,
            name,
            "write the shapes under each product; each gradient "
            "has the shape of what it is the gradient of.",
        )


@dense_ex.subcheck("dense_backward works for one example (N = 1) and for D = 1 or H = 1")
def _(dense_backward):
    for n, d, h, seed in ((1, 3, 4, 37), (6, 1, 3, 38), (4, 5, 1, 39), (1, 1, 1, 40)):
        dY, X, W = _dense_data(n=n, d=d, h=h, seed=seed)
        _expect_dense(dense_backward, dY, X, W, f"for N, D, H = {n}, {d}, {h}")


@dense_ex.subcheck("dense_backward keeps float32 inputs float32")
def _(dense_backward):
    dY, X, W = _dense_data(np.float32, n=7, d=3, h=5, seed=36)
    _expect_dense(dense_backward, dY, X, W, "for float32 inputs")


# ------------------------------------------------------------------------ activations

ACTIVATIONS = ("relu", "sigmoid", "tanh")
act_ex = exercise(
    "activation_backward",
    ["activation_backward"],
    # F.relu, F.sigmoid and F.tanh (the forward passes) are allowed, their backward
    # passes (nnlib's answer to this exercise) are not
    forbidden=(
        "activation_backward",
        *(f"{a}_backward" for a in ACTIVATIONS),
        *(f"{a}_backward_ref" for a in ACTIVATIONS),
        *_BACKDOORS,
    ),
)


def _act_forward(Z, activation):
    return getattr(F, activation)(Z, backend="numpy")


def _act_ref(dA, Z, activation):
    return getattr(F, f"{activation}_backward")(dA, Z, backend="numpy")


def _act_data(dtype=np.float64, seed=40, shape=(4, 5)):
    Z = _away_from_zero(shape, seed, scale=1.5).astype(dtype)
    dA = _rng(seed + 1).standard_normal(Z.shape).astype(dtype)
    return dA, Z


def _act_wrong(activation):
    sig = lambda v: F.sigmoid(v, backend="numpy")  # noqa: E731
    common = [
        WrongAnswer(
            lambda dA, Z, A: dA,
            "your dZ equals dA: multiply it by the activation's derivative f'(Z) (chain "
            "rule, dZ = dA * f'(Z)).",
        ),
        WrongAnswer(
            lambda dA, Z, A: _act_ref(np.ones_like(dA), Z, activation),
            "your dZ is f'(Z) alone: multiply it by the upstream gradient dA (chain rule).",
        ),
        WrongAnswer(
            lambda dA, Z, A: dA * A,
            "your dZ is dA * A: multiply by the derivative f'(Z), not by the output A = f(Z).",
        ),
    ]
    specific = {
        "relu": [
            WrongAnswer(
                lambda dA, Z, A: np.where(dA > 0, dA, 0),
                "your dZ equals relu(dA): the mask comes from the forward pass (Z > 0), "
                "not from the gradient.",
            ),
            WrongAnswer(
                lambda dA, Z, A: np.where(Z > 0, dA * Z, 0),
                "you multiplied by Z: relu'(Z) is 1 where Z > 0, so dZ there is dA itself.",
            ),
            WrongAnswer(
                lambda dA, Z, A: np.where(Z >= 0, dA, 0),
                "at Z = 0 your dZ is dA, so your relu'(0) is 1: the table says relu'(Z) is "
                "1 where Z > 0, else 0, so the mask is Z > 0, not Z >= 0.",
            ),
        ],
        "sigmoid": [
            WrongAnswer(
                lambda dA, Z, A: dA * sig(A) * (1 - sig(A)),
                "you evaluated sigmoid' at A, the post-activation: the derivative is taken "
                "at the pre-activation Z, sigmoid'(Z) = A * (1 - A) with A = sigmoid(Z).",
            ),
            WrongAnswer(
                lambda dA, Z, A: dA * Z * (1 - Z),
                "your dZ is dA * Z * (1 - Z): the formula A * (1 - A) takes the output "
                "A = sigmoid(Z), not Z.",
            ),
        ],
        "tanh": [
            WrongAnswer(
                lambda dA, Z, A: dA * (1 - Z**2),
                "your dZ is dA * (1 - Z**2): the formula 1 - A**2 takes the output "
                "A = tanh(Z), not the pre-activation Z.",
            ),
            WrongAnswer(
                lambda dA, Z, A: dA * (1 - np.tanh(A) ** 2),
                "you evaluated tanh' at A, the post-activation: tanh'(Z) = 1 - tanh(Z)**2 "
                "= 1 - A**2.",
            ),
        ],
    }
    return common + specific[activation]


def _expect_act(activation_backward, dA, Z, activation, what):
    A = _act_forward(Z, activation)
    call = f'activation_backward(dA, Z, A, "{activation}")'
    expect(
        _array_result(activation_backward(dA, Z, A, activation), call),
        _act_ref(dA, Z, activation),
        f"{call} {what}".rstrip(),
        inputs={"dA": dA, "Z": Z},
        known=_act_wrong(activation),
        args=(dA, Z, A),
    )


for _activation, _seed in zip(ACTIVATIONS, (40, 42, 44), strict=True):

    @act_ex.subcheck(f'activation_backward(dA, Z, A, "{_activation}") equals dA * f\'(Z)')
    def _(activation_backward, activation=_activation, seed=_seed):
        dA, Z = _act_data(seed=seed)
        _expect_act(activation_backward, dA, Z, activation, "")


@act_ex.subcheck("relu's derivative at Z = 0 is 0, as the table says")
def _(activation_backward):
    dA, Z = _act_data(seed=45)
    Z.flat[::3] = 0.0
    _expect_act(activation_backward, dA, Z, "relu", "with some Z exactly 0")


@act_ex.subcheck("activation_backward passes a float64 gradient check for each activation")
def _(activation_backward):
    for activation in ACTIVATIONS:
        Z = _away_from_zero((3, 4), 46, scale=1.2)
        result = check_vjp(
            lambda z, a=activation: _act_forward(z, a),
            lambda dA, z, a=activation: activation_backward(dA, z, _act_forward(z, a), a),
            Z,
        )
        if not result.passed:
            raise CheckFailed(
                f'activation_backward(dA, Z, A, "{activation}") disagrees with central '
                f"differences of the forward pass: {result}. Hint: dZ = dA * f'(Z); write "
                "f' on paper first."
            )


@act_ex.subcheck("activation_backward keeps float32 float32 for each activation")
def _(activation_backward):
    for activation in ACTIVATIONS:
        dA, Z = _act_data(np.float32, seed=47)
        _expect_act(activation_backward, dA, Z, activation, "for float32")


@act_ex.subcheck("activation_backward works for one row, one column and all-positive Z")
def _(activation_backward):
    for shape, seed in (((1, 6), 48), ((5, 1), 49)):
        for activation in ACTIVATIONS:
            dA, Z = _act_data(seed=seed, shape=shape)
            _expect_act(activation_backward, dA, Z, activation, f"for shape {shape}")
    dA, Z = _act_data(seed=50)
    for activation in ACTIVATIONS:  # nothing to mask: the result is still a new array
        _expect_act(activation_backward, dA, np.abs(Z), activation, "for all-positive Z")


@act_ex.subcheck("activation_backward is accurate for Z far from 0 (up to 800)")
def _(activation_backward):
    mags = np.array([5.0, 20.0, 40.0, 100.0, 700.0, 800.0])
    Z = np.concatenate([mags, -mags]).reshape(2, 6)
    dA = _rng(51).standard_normal(Z.shape) + 2.0
    for activation in ACTIVATIONS:
        A = _act_forward(Z, activation)
        call = f'activation_backward(dA, Z, A, "{activation}") for |Z| up to 800'
        got = _array_result(activation_backward(dA, Z, A, activation), call)
        want = _act_ref(dA, Z, activation)
        if isinstance(got, np.ndarray) and got.shape == want.shape:
            bad = ~np.isfinite(got)
            if bad.any():
                at = np.argwhere(bad)[0]
                raise CheckFailed(
                    f"{call}: inf or nan at Z = {Z[tuple(at)]!r}, where dZ is "
                    f"{want[tuple(at)]!r}. Hint: an intermediate value overflowed (e.g. "
                    "np.exp(-Z) at Z = -800); the cached A keeps every step finite: "
                    "A * (1 - A) for sigmoid, 1 - A**2 for tanh."
                )
        expect(got, want, call, inputs={"dA": dA, "Z": Z})


@act_ex.subcheck('activation_backward raises ValueError for an unknown name ("softplus")')
def _(activation_backward):
    dA, Z = _act_data(seed=52)
    try:
        activation_backward(dA, Z, Z, "softplus")
    except ValueError:
        return
    except Exception as err:
        raise CheckFailed(
            f'activation_backward(..., "softplus") raised {type(err).__name__}, expected '
            'ValueError. Hint: end with raise ValueError(f"unknown activation '
            '{activation!r}").'
        ) from None
    raise CheckFailed(
        'activation_backward(..., "softplus") returned without an error: an unknown '
        "activation must raise ValueError. Hint: after the three cases, "
        'raise ValueError(f"unknown activation {activation!r}").'
    )


# --------------------------------------------------------- softmax cross-entropy backward

_CE_NNLIB = ("softmax_cross_entropy", "softmax_cross_entropy_ref", "softmaxcrossentropy")
ce_ex = exercise(
    "ce_backward",
    ["ce_backward"],
    # F.softmax and F.log_softmax are allowed (the text says so); nnlib's loss, which
    # computes this very gradient, is not
    forbidden=("ce_backward", *_CE_NNLIB, "losses", "training", *_BACKDOORS),
)


def _ce_data(n=6, c=4, dtype=np.float64, seed=50, scale=2.0):
    rng = _rng(seed)
    Z = (scale * rng.standard_normal((n, c))).astype(dtype)
    y = rng.integers(0, c, n).astype(np.int64)
    y[: min(n, c)] = np.arange(min(n, c))  # every class appears once at least
    return Z, y


def ce_loss_ref(Z, y):
    """Mean softmax cross-entropy of logits Z (N, C) and labels y (N,), as a float."""
    acc = np.zeros(2)
    dispatch("softmax_cross_entropy", "numpy")(Z, y, 1.0 / len(Z), acc)
    return float(acc[0]) / len(Z)


def ce_backward_ref(Z, y):
    """nnlib's reference: d(mean loss)/dZ = (softmax(Z) - onehot(y)) / N, shape (N, C)."""
    return dispatch("softmax_cross_entropy", "numpy")(Z, y, 1.0 / len(Z), np.zeros(2))


def _softmax(Z):
    return F.softmax(Z, backend="numpy")


def _onehot(y, c):
    return np.eye(c)[y]


CE_WRONG = [
    WrongAnswer(
        lambda Z, y: _softmax(Z) - _onehot(y, Z.shape[1]),
        "your gradient is N times too large: the loss is the mean over the N rows, so "
        "divide by N: (softmax(Z) - Y) / N.",
    ),
    WrongAnswer(
        lambda Z, y: (_onehot(y, Z.shape[1]) - _softmax(Z)) / len(Z),
        "your gradient has the wrong sign: it is (softmax(Z) - Y) / N, probabilities minus "
        "the one-hot labels.",
    ),
    WrongAnswer(
        lambda Z, y: _softmax(Z) / len(Z),
        "you forgot to subtract the one-hot labels: (softmax(Z) - Y) / N, where Y[n, y[n]] = 1.",
    ),
    WrongAnswer(
        lambda Z, y: (_softmax(Z) - 1) / len(Z),
        "you subtracted 1 from every entry: subtract 1 only at the true class of each row "
        "(the one-hot Y), e.g. P[np.arange(N), y] -= 1.",
    ),
    WrongAnswer(
        lambda Z, y: (_softmax(Z) - _onehot(y, Z.shape[1])) / Z.size,
        "you divided by N * C: the loss is the mean over the N rows only (each row's loss "
        "already sums over its C classes), so divide by N.",
    ),
    WrongAnswer(
        lambda Z, y: (F.softmax(Z, axis=0, backend="numpy") - _onehot(y, Z.shape[1])) / len(Z),
        "your softmax normalises the columns: each row (example) is normalised over its C "
        "classes, axis=1.",
    ),
]

NEAR_MISS_HINT = (
    "your result is close to the right one (within 1e-5) but not within float64's "
    "tolerance: a small constant added somewhere (e.g. + 1e-8 in the sum or in a log) or "
    "a step computed in float32 does that. The formula needs neither: after subtracting "
    "the row's max, every row's sum of exp is at least 1."
)


def _expect_ce(got, want, what, Z, y, known=CE_WRONG):
    """``expect`` with CE_WRONG's fingerprints; a result that no fingerprint fits but is
    within 1e-5 of the right one (and finite) is named a near miss."""
    try:
        expect(_array_result(got, what), want, what, known=known, args=(Z, y))
    except CheckFailed as err:
        message = str(err)
        near = (
            "Hint:" not in message
            and isinstance(got, np.ndarray)
            and got.shape == want.shape
            and got.dtype == want.dtype
            and bool(np.all(np.isfinite(got)))
            and bool(np.allclose(got, want, rtol=1e-5, atol=1e-9))
        )
        if near:
            message += f"\n  Hint: {NEAR_MISS_HINT}"
        raise CheckFailed(message) from None


def _fp_hint(err: BaseException) -> str:
    """The hint for a FloatingPointError raised under np.errstate(...='raise')."""
    text = str(err)
    if "overflow" in text:
        return (
            "an exp overflowed: subtract each row's max before exp, softmax(Z) = "
            "softmax(Z - max), and every exp is then at most 1 (or use nnlib's F.softmax)."
        )
    if "divide by zero" in text and "log" in text:
        return (
            "you took the log of a probability that rounded to 0: work with "
            "log-probabilities, Z - max - log(sum(exp(Z - max))), or with P itself."
        )
    if "invalid value" in text and "divide" in text:
        return (
            "a row's exps all rounded to 0 and 0 / 0 gave nan: subtract each row's own "
            "max, Z.max(axis=1, keepdims=True), not one max for the whole batch."
        )
    return "keep every intermediate value finite: subtract each row's max before exp."


@ce_ex.subcheck("ce_backward(Z, y) equals (softmax(Z) - Y) / N for N, C = 6, 4")
def _(ce_backward):
    Z, y = _ce_data()
    _expect_ce(ce_backward(Z, y), ce_backward_ref(Z, y), "ce_backward(Z, y)", Z, y)


@ce_ex.subcheck("ce_backward works for one example (N = 1) and for N = 9, C = 2")
def _(ce_backward):
    for n, c, seed in ((1, 3, 51), (9, 2, 52)):
        Z, y = _ce_data(n, c, seed=seed)
        what = f"ce_backward(Z, y) for N, C = {n}, {c}"
        _expect_ce(ce_backward(Z, y), ce_backward_ref(Z, y), what, Z, y)


@ce_ex.subcheck("ce_backward works for a batch that lacks the last classes")
def _(ce_backward):
    Z, _ = _ce_data(7, 5, seed=55)
    y = np.array([0, 1, 2, 1, 0, 2, 1])  # classes 3 and 4 never appear
    got = _call_lacking_classes(ce_backward, (Z, y), "ce_backward", 5)
    want = ce_backward_ref(Z, y)
    known = CE_WRONG
    if isinstance(got, np.ndarray) and got.shape != want.shape:
        known = [WrongAnswer(lambda Z, y: got, ONE_HOT_HINT.format(c=5)), *CE_WRONG]
    _expect_ce(got, want, "ce_backward(Z, y) for labels 0, 1, 2 of C = 5 classes", Z, y, known)


@ce_ex.subcheck("ce_backward passes a float64 gradient check of the mean loss")
def _(ce_backward):
    Z, y = _ce_data(5, 3, seed=53, scale=1.0)
    numeric = numerical_gradient(lambda z: ce_loss_ref(z, y), Z)
    got = np.asarray(_array_result(ce_backward(Z, y), "ce_backward(Z, y)"))
    if got.shape != Z.shape:
        raise CheckFailed(f"ce_backward(Z, y): shape {got.shape}, expected {Z.shape} (N, C)")
    _gradient_check(
        got,
        numeric,
        "ce_backward(Z, y)",
        "the gradient of the mean loss is (softmax(Z) - Y) / N, with Y the one-hot labels.",
    )


@ce_ex.subcheck("ce_backward is finite and warning-free for logits near 1000")
def _(ce_backward):
    Z = np.array([[1000.0, 999.0, 998.0], [-1000.0, 0.0, 1000.0], [0.0, -1.0, -2.0]])
    y = np.array([0, 0, 2])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        try:
            got = ce_backward(Z, y)
        except FloatingPointError as err:
            raise CheckFailed(
                f"ce_backward raised FloatingPointError for logits near 1000 ({err}). "
                f"Hint: {_fp_hint(err)}"
            ) from None
    got = _array_result(got, "ce_backward(Z, y)")
    if isinstance(got, np.ndarray) and got.shape == Z.shape and not np.all(np.isfinite(got)):
        raise CheckFailed(
            "ce_backward gave inf or nan for logits near 1000. Hint: subtract each row's max "
            "before exp."
        )
    _expect_ce(got, ce_backward_ref(Z, y), "ce_backward(Z, y) at large logits", Z, y)


@ce_ex.subcheck("ce_backward matches the float64 reference for logits as large as 25000")
def _(ce_backward):
    Z = np.array(
        [
            [25000.0, 24990.0, -25000.0, 0.0],
            [-25000.0, -24999.5, -25010.0, -25000.0],
            [1e4, -1e4, 9999.0, 30.0],
            [0.0, -700.0, 0.0, -30.0],
        ]
    )
    y = np.array([1, 2, 0, 1])
    what = "ce_backward(Z, y) for logits up to 25000"
    _expect_ce(ce_backward(Z, y), ce_backward_ref(Z, y), what, Z, y)


@ce_ex.subcheck("ce_backward keeps float32 logits float32")
def _(ce_backward):
    Z, y = _ce_data(dtype=np.float32, seed=54)
    expect(
        _array_result(ce_backward(Z, y), "ce_backward"),
        ce_backward_ref(Z, y),
        "ce_backward for float32 Z",
    )


# ------------------------------------------------------------- a two-layer network

PARAM_NAMES = ("W1", "b1", "W2", "b2")
mlp_ex = exercise(
    "mlp_backward",
    ["mlp_forward", "mlp_backward"],
    # the cache may hold X itself (the backward pass needs it)
    may_alias=("mlp_forward",),
    forbidden=(
        "mlp_forward",
        "mlp_backward",
        "dense",
        "dense_backward",
        "relu_backward",
        "relu_backward_ref",
        *_CE_NNLIB,
        "losses",
        "training",
        "sequential",
        *_BACKDOORS,
    ),
)
mlp_ex.error_hints.append(
    (
        ValueError,
        "matmul",
        "two shapes do not fit a matrix product: write each array's shape next to it, e.g. "
        "dA1 = dZ2 @ W2.T is (N, C) @ (C, H) -> (N, H).",
    )
)


def mlp_params(d=3, h=5, c=4, seed=60, dtype=np.float64):
    rng = _rng(seed)
    return {
        "W1": rng.standard_normal((d, h)).astype(dtype),
        "b1": (0.5 * rng.standard_normal(h)).astype(dtype),
        "W2": rng.standard_normal((h, c)).astype(dtype),
        "b2": (0.5 * rng.standard_normal(c)).astype(dtype),
    }


def _mlp_data(n=8, seed=61, classes=None):
    """X (N, D), labels y (N,), with no hidden pre-activation within 0.05 of the kink.

    ``classes``: the labels to draw from (default: all C; each appears once if N >= C).
    """
    params = mlp_params(seed=seed)
    c = params["W2"].shape[1]
    rng = _rng(seed + 1)
    while True:
        X = rng.standard_normal((n, params["W1"].shape[0]))
        if np.abs(X @ params["W1"] + params["b1"]).min() > 0.05:
            break
    y = rng.integers(0, c if classes is None else classes, n).astype(np.int64)
    if classes is None:
        y[: min(n, c)] = np.arange(min(n, c))
    return params, X, y


def _nnlib_mlp(params):
    """The same network as nnlib layers, in float64 (the reference backprop)."""
    from nnlib.layers import Dense, ReLU

    d, h = params["W1"].shape
    c = params["W2"].shape[1]
    layers = [Dense(d, h, seed=0, dtype=np.float64), ReLU(), Dense(h, c, seed=0, dtype=np.float64)]
    for layer, (w, b) in ((layers[0], ("W1", "b1")), (layers[2], ("W2", "b2"))):
        layer.params["W"][...] = params[w]
        layer.params["b"][...] = params[b]
    return layers


def mlp_forward_ref(params, X):
    """``(logits (N, C), cache)``: logits = relu(X @ W1 + b1) @ W2 + b2, via nnlib layers.

    Module-level, so that ``train_step`` can be handed it by name in ``make grade``."""
    layers = _nnlib_mlp(params)
    out = np.asarray(X, np.float64)
    with use_backend("numpy"):
        for layer in layers:
            out = layer.forward(out)
    return out, layers


def mlp_backward_ref(params, cache, y):
    """Gradients of the mean softmax cross-entropy, by nnlib's layers' backward passes."""
    layers = cache
    dout = ce_backward_ref(layers[2].y, y)
    with use_backend("numpy"):
        for layer in reversed(layers):
            dout = layer.backward(dout)
    return {
        "W1": layers[0].grads["W"].copy(),
        "b1": layers[0].grads["b"].copy(),
        "W2": layers[2].grads["W"].copy(),
        "b2": layers[2].grads["b"].copy(),
    }


def _mlp_variant(params, X, y, mistake):
    """The gradients with one typical mistake written in (the fingerprints)."""
    W1, b1, W2, b2 = (params[k] for k in PARAM_NAMES)
    n = len(X)
    Z1 = X @ W1 + b1
    A1 = np.maximum(Z1, 0)
    Z2 = A1 @ W2 + b2
    dZ2 = _softmax(Z2) - _onehot(y, Z2.shape[1])
    dZ2 = dZ2 if mistake == "no_mean" else dZ2 / n
    dW2 = (Z1 if mistake == "pre_activation" else A1).T @ dZ2
    dA1 = dZ2 @ W2.T
    if mistake == "no_mask":
        dZ1 = dA1
    elif mistake == "mask_from_grad":
        dZ1 = np.where(dA1 > 0, dA1, 0)
    else:
        dZ1 = dA1 * (Z1 > 0)
    grads = {"W1": X.T @ dZ1, "b1": dZ1.sum(axis=0), "W2": dW2, "b2": dZ2.sum(axis=0)}
    if mistake == "transposed":
        grads["W1"], grads["W2"] = dZ1.T @ X, dZ2.T @ A1
    if mistake == "db_mean":
        grads["b1"], grads["b2"] = dZ1.mean(axis=0), dZ2.mean(axis=0)
    if mistake == "twice_n":
        grads = {k: v / n for k, v in grads.items()}
    return grads


MLP_MISTAKES = {
    "no_mask": "you skipped the ReLU on the way back: dZ1 = dA1 * (Z1 > 0), the ReLU's "
    "derivative, before dW1 and db1.",
    "mask_from_grad": "your ReLU mask comes from the gradient (dA1 > 0): it comes from the "
    "forward pass, dZ1 = dA1 * (Z1 > 0).",
    "no_mean": "your gradients are N times too large: the loss is the mean over N rows, so "
    "dZ2 = (softmax(Z2) - Y) / N.",
    "db_mean": "your bias gradients are means over the batch: b is added to every row, so "
    "its gradient is the sum, db = dZ.sum(axis=0).",
    "twice_n": "your gradients are divided by N twice: the 1/N is in dZ2 already; dW, db "
    "and dA1 just multiply and sum it.",
    "pre_activation": "your dW2 uses Z1, the pre-activation: the second layer's input is "
    "A1 = relu(Z1), so dW2 = A1.T @ dZ2.",
    "transposed": "your weight gradients are transposed: dW1 = X.T @ dZ1 (D, H) and "
    "dW2 = A1.T @ dZ2 (H, C), the shapes of W1 and W2.",
}


def _mlp_forward_right(mlp_forward, params, X):
    """The learner's ``(logits, cache)``, failing first when the logits are wrong: the
    backward pass works from the forward pass's cache, so a wrong forward pass is named
    as such instead of being blamed on mlp_backward."""
    logits, cache = unpack(mlp_forward(params, X), ("logits", "cache"), "mlp_forward")
    want = mlp_forward_ref(params, X)[0].astype(X.dtype)
    if not _close(logits, want):
        raise CheckFailed(
            "mlp_forward's logits are wrong for this batch (see the check of mlp_forward "
            "above), and mlp_backward computes its gradients from mlp_forward's cache, so "
            "they cannot be judged yet. Hint: fix mlp_forward first; then this check tells "
            "you whether mlp_backward is right."
        )
    return logits, cache


def _mlp_grads(mlp_forward, mlp_backward, params, X, y, lacking=None):
    _, cache = _mlp_forward_right(mlp_forward, params, X)
    if lacking is None:
        grads = mlp_backward(params, cache, y)
    else:
        grads = _call_lacking_classes(mlp_backward, (params, cache, y), "mlp_backward", lacking)
    if not isinstance(grads, dict):
        raise CheckFailed(
            f"mlp_backward returned {'None' if grads is None else 'a ' + type(grads).__name__}, "
            'expected a dict {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}.'
        )
    missing = [k for k in PARAM_NAMES if k not in grads]
    if missing:
        raise CheckFailed(
            f"mlp_backward's dict has no {', '.join(missing)}: it needs one gradient per "
            f"parameter, keyed like params ({', '.join(PARAM_NAMES)}); got keys {sorted(grads)}."
        )
    return grads


def _expect_mlp_grads(grads, params, X, y, what=""):
    want = mlp_backward_ref(params, mlp_forward_ref(params, X)[1], y)
    variants = {m: _mlp_variant(params, X, y, m) for m in MLP_MISTAKES}
    for k in PARAM_NAMES:
        known = [
            WrongAnswer(lambda v=v, k=k: v[k], MLP_MISTAKES[m])
            for m, v in variants.items()
            if v[k].shape != want[k].shape or not np.allclose(v[k], want[k])
        ]
        expect(
            _array_result(grads[k], f'grads["{k}"]'),
            want[k].astype(X.dtype),
            f'grads["{k}"]{what}',
            known=known,
        )


@functools.lru_cache(maxsize=2)
def _mlp_numeric_grads(seed):
    """Central differences of the mean loss for ``_mlp_data(seed=seed)``, per parameter
    (made once: 88 passes through nnlib's layers)."""
    params, X, y = _mlp_data(seed=seed)
    numeric = {}
    for k in PARAM_NAMES:

        def loss(v, k=k):
            return ce_loss_ref(mlp_forward_ref({**params, k: v}, X)[0], y)

        numeric[k] = numerical_gradient(loss, params[k])
    return numeric


@mlp_ex.subcheck("mlp_forward(params, X) gives logits relu(X @ W1 + b1) @ W2 + b2")
def _(mlp_forward, mlp_backward):
    params, X, _ = _mlp_data()
    logits = unpack(mlp_forward(params, X), ("logits", "cache"), "mlp_forward")[0]
    P = {k: params[k] for k in PARAM_NAMES}
    known = [
        WrongAnswer(
            lambda: (X @ P["W1"] + P["b1"]) @ P["W2"] + P["b2"],
            "your logits skip the ReLU: A1 = np.maximum(Z1, 0) goes between the layers.",
        ),
        WrongAnswer(
            lambda: np.abs(X @ P["W1"] + P["b1"]) @ P["W2"] + P["b2"],
            "your hidden layer computes |Z1|: relu(Z1) = np.maximum(Z1, 0) sets the "
            "negative entries to 0.",
        ),
        WrongAnswer(
            lambda: _softmax(mlp_forward_ref(P, X)[0]),
            "you returned probabilities: mlp_forward returns the logits Z2, before softmax.",
        ),
    ]
    expect(_array_result(logits, "logits"), mlp_forward_ref(params, X)[0], "logits", known=known)


@mlp_ex.subcheck("mlp_backward returns a dict of gradients shaped like W1, b1, W2, b2")
def _(mlp_forward, mlp_backward):
    params, X, y = _mlp_data(seed=63)
    grads = _mlp_grads(mlp_forward, mlp_backward, params, X, y)
    wrong = _mlp_variant(params, X, y, "transposed")
    for k in PARAM_NAMES:
        g = _array_result(grads[k], f'grads["{k}"]')
        if np.shape(g) != params[k].shape:
            known = [WrongAnswer(lambda k=k: wrong[k], MLP_MISTAKES["transposed"])]
            expect(g, params[k], f'grads["{k}"]', known=known)


@mlp_ex.subcheck("every gradient equals nnlib's backpropagation through the same network")
def _(mlp_forward, mlp_backward):
    params, X, y = _mlp_data(seed=64)
    _expect_mlp_grads(_mlp_grads(mlp_forward, mlp_backward, params, X, y), params, X, y)


@mlp_ex.subcheck("every gradient passes a float64 gradient check of the mean loss")
def _(mlp_forward, mlp_backward):
    params, X, y = _mlp_data(seed=65)
    grads = _mlp_grads(mlp_forward, mlp_backward, params, X, y)
    for k, numeric in _mlp_numeric_grads(65).items():
        g = grads[k]
        if np.shape(g) != numeric.shape:
            raise CheckFailed(f'grads["{k}"]: shape {np.shape(g)}, expected {numeric.shape}')
        _gradient_check(
            g,
            numeric,
            f'grads["{k}"]',
            "go backwards one step at a time and check the shape of every intermediate gradient.",
        )


@mlp_ex.subcheck("mlp_backward works for one example (N = 1)")
def _(mlp_forward, mlp_backward):
    params, X, y = _mlp_data(n=1, seed=66)
    y[:] = params["W2"].shape[1] - 1  # the last class: the next check lacks it
    grads = _mlp_grads(mlp_forward, mlp_backward, params, X, y)
    _expect_mlp_grads(grads, params, X, y, " for N = 1")


@mlp_ex.subcheck("mlp_backward works for a batch that lacks the last classes")
def _(mlp_forward, mlp_backward):
    params, X, y = _mlp_data(n=9, seed=67, classes=2)  # labels 0 and 1 of C = 4
    y[0] = 1
    grads = _mlp_grads(mlp_forward, mlp_backward, params, X, y, lacking=4)
    _expect_mlp_grads(grads, params, X, y, " for labels 0 and 1 of C = 4 classes")


@mlp_ex.subcheck("mlp_forward and mlp_backward keep float32 float32")
def _(mlp_forward, mlp_backward):
    params, X, y = _mlp_data(seed=68)
    params32 = {k: v.astype(np.float32) for k, v in params.items()}
    X32 = X.astype(np.float32)
    logits, _ = unpack(mlp_forward(params32, X32), ("logits", "cache"), "mlp_forward")
    want = mlp_forward_ref(params32, X32)[0].astype(np.float32)
    expect(_array_result(logits, "logits"), want, "logits for float32 params and X")
    grads = _mlp_grads(mlp_forward, mlp_backward, params32, X32, y)
    want = mlp_backward_ref(params32, mlp_forward_ref(params32, X32)[1], y)
    for k in PARAM_NAMES:
        expect(
            _array_result(grads[k], f'grads["{k}"]'),
            want[k].astype(np.float32),
            f'grads["{k}"] for float32 params and X',
        )


# ------------------------------------------------------------------ one training step

step_ex = exercise(
    "train_step",
    ["train_step"],
    # the text: "updates every entry of the dict params in that dict"
    mutates={"train_step": ("params",)},
    # nnlib's training step, its optimizers and models; the loss may come from nnlib
    # (the text suggests F.log_softmax)
    forbidden=(
        "train_step",
        "trainstep",
        "train_on_batch",
        "fit",
        "training",
        "optim",
        "sgd",
        "model",
        "sequential",
    ),
)


def _step_data(seed=70):
    params, X, y = _mlp_data(n=10, seed=seed)
    return params, X, y


def _run_step(train_step, work, X, y, lr):
    """``train_step`` on ``work`` (updated in place); returns the loss it returned."""
    return train_step(work, X, y, lr, mlp_forward_ref, mlp_backward_ref)


def _as_scalar(loss):
    if loss is None:
        raise CheckFailed(
            "train_step returned None: return the loss (a float). Did you forget `return`?"
        )
    if np.ndim(loss) != 0:
        raise CheckFailed(
            f"train_step returned an array of shape {np.shape(loss)}: return one number, the "
            "mean loss over the batch (e.g. float(losses.mean()))."
        )
    try:
        return float(loss)
    except (TypeError, ValueError):
        raise CheckFailed(
            f"train_step returned a {type(loss).__name__}, expected a float"
        ) from None


def _sgd(params, grads, lr, sign=-1.0):
    return {k: params[k] + sign * lr * grads[k] for k in params}


def _ref_step(params, X, y, lr):
    """(loss before the step, params after one correct step, the gradients)."""
    logits, cache = mlp_forward_ref(params, X)
    grads = mlp_backward_ref(params, cache, y)
    return ce_loss_ref(logits, y), _sgd(params, grads, lr), grads


UNCHANGED = (
    "train_step left the caller's parameter arrays unchanged. Hint: the text asks you to update "
    "every entry of the dict params in place, `params[name] -= lr * grads[name]`, so that "
    "the caller's arrays change; `params[name] = params[name] - lr * grads[name]` only "
    "puts a new array into your dict (the caller's arrays, e.g. a layer's weights, keep "
    "their old values), and `params = {...}` makes a new dict that the caller never sees."
)


@step_ex.subcheck("train_step returns the mean loss of the batch before the update")
def _(train_step):
    params, X, y = _step_data()
    lr = 0.3
    work = {k: v.copy() for k, v in params.items()}
    loss = _as_scalar(_run_step(train_step, work, X, y, lr))
    want, after, _ = _ref_step(params, X, y, lr)
    hints = [
        (want * len(X), "your loss is the sum over the batch: return the mean, sum / N."),
        (
            ce_loss_ref(mlp_forward_ref(after, X)[0], y),
            "your loss is computed after the update: return the loss of the forward pass "
            "that the gradients came from, before changing the parameters.",
        ),
    ]
    if not np.isclose(loss, want, rtol=1e-10, atol=1e-12):
        message = f"train_step's loss: expected {want!r}, got {loss!r}"
        for value, hint in hints:
            if np.isclose(loss, value, rtol=1e-8, atol=1e-12):
                message += f"\n  Hint: {hint}"
                break
        raise CheckFailed(message)


@step_ex.subcheck("train_step moves every parameter to p - lr * grad (for two learning rates)")
def _(train_step):
    for lr, seed in ((0.3, 71), (0.05, 72)):
        params, X, y = _step_data(seed)
        work = {k: v.copy() for k, v in params.items()}
        arrays = dict(work)  # the caller's arrays: they must change, in place
        _run_step(train_step, work, X, y, lr)
        _, want, grads = _ref_step(params, X, y, lr)
        if all(np.array_equal(arrays[k], params[k]) for k in PARAM_NAMES):
            raise CheckFailed(UNCHANGED)
        uphill = _sgd(params, grads, lr, +1.0)
        for k in PARAM_NAMES:
            mistakes = [
                (
                    uphill[k],
                    "you moved the parameters along +grad, uphill: gradient descent steps "
                    "against the gradient, p - lr * grad.",
                ),
                (params[k] - grads[k], "your step ignores lr: p - lr * grad."),
                (
                    params[k],
                    f'params["{k}"] did not change: update every parameter, the biases too, '
                    "each in place (params[name] -= lr * grads[name]).",
                ),
                (
                    params[k] - lr * grads[k] / len(X),
                    "your step divides the gradient by N again: backward already returns "
                    "the gradient of the mean loss; the step is p - lr * grad.",
                ),
            ]
            known = [WrongAnswer(lambda v=v: v, hint) for v, hint in mistakes]
            expect(arrays[k], want[k], f'params["{k}"] after one step with lr = {lr}', known=known)


@step_ex.subcheck("five steps with changing learning rates follow gradient descent exactly")
def _(train_step):
    params, X, y = _step_data(73)
    work = {k: v.copy() for k, v in params.items()}
    arrays = dict(work)
    state = {k: v.copy() for k, v in params.items()}
    for step, lr in enumerate((0.5, 0.1, 0.3, 0.05, 0.2), start=1):
        loss = _as_scalar(_run_step(train_step, work, X, y, lr))
        want_loss, state, _ = _ref_step(state, X, y, lr)
        if step == 1 and all(np.array_equal(arrays[k], params[k]) for k in PARAM_NAMES):
            raise CheckFailed(UNCHANGED)
        for k in PARAM_NAMES:
            expect(arrays[k], state[k], f'params["{k}"] after step {step} (lr = {lr})')
        if not np.isclose(loss, want_loss, rtol=1e-10, atol=1e-12):
            raise CheckFailed(
                f"train_step's loss at step {step} (lr = {lr}): expected {want_loss!r}, "
                f"got {loss!r}: the loss of the parameters that the step starts from."
            )


# ---------------------------------------------------- the bias gradient as a Numba kernel

numba_ex = exercise(
    "bias_grad_numba",
    ["bias_grad_numba"],
    forbidden=("bias_grad_numba", "bias_grad", "dense", "dispatch", "_backend"),
)
# no loop form is dictated: any split of the work in which no two prange iterations
# write the same element passes (chunks of rows with their own partial sums, blocks of
# columns, one column per iteration)
LOOP_HINT = (
    "a prange loop whose iterations write different elements, e.g. one chunk of rows "
    "per iteration, each adding into its own row of partial sums, combined afterwards"
)


def _numba_fn(fn):
    return dispatcher(fn, "bias_grad_numba", "dY")


def _columns_data(n, h, dtype=np.float64, seed=80, shift=0.0):
    return (_rng(seed).standard_normal((n, h)) + shift).astype(dtype)


def bias_grad_ref(dY):
    """db = dY.sum(axis=0) by nnlib's dense backward reference, in dY's dtype."""
    n, h = dY.shape
    return dense_backward_ref(dY, np.zeros((n, 1), dY.dtype), np.zeros((1, h), dY.dtype))[2]


BIAS_WRONG = [
    WrongAnswer(
        lambda dY: dY.sum(axis=1),
        "your result sums each row (shape (N,)): db sums each column over the batch, "
        "shape (H,): db[j] adds dY[i, j] over every row i.",
    ),
    WrongAnswer(
        lambda dY: dY.mean(axis=0),
        "your result is the mean of each column: db is the sum over the batch.",
    ),
    WrongAnswer(
        lambda dY: np.cumsum(dY.sum(axis=0)),
        "each entry also holds the sums of the columns before it: start each column's sum "
        "at 0 (an accumulator reset before each column, or one accumulator per column).",
    ),
    WrongAnswer(
        lambda dY: dY.sum(axis=0) - dY[0],
        "your sum misses the first row: every row, from 0 to N - 1, adds into db.",
    ),
    WrongAnswer(
        lambda dY: dY.sum(axis=0) - dY[-1],
        "your sum misses the last row: range(n) runs over every row, range(n - 1) stops "
        "one short (check the end of your last chunk too).",
    ),
]


def _serial_pranges(source) -> list[str]:
    """``prange`` loops of at most one iteration (``prange(1)``): one thread does it all.

    A constant trip count of 2 or more (``prange(8)`` over chunks) does run in parallel.
    """
    serial = []
    for text in prange_problems(source)["constant"]:
        try:
            call = ast.parse(text, mode="eval").body
            count = len(range(*(ast.literal_eval(a) for a in call.args)))
        except (SyntaxError, ValueError, TypeError):
            continue
        if count <= 1:
            serial.append(text)
    return serial


@numba_ex.subcheck("bias_grad_numba is a Numba function (@njit)")
def _(bias_grad_numba):
    _numba_fn(bias_grad_numba)


@numba_ex.subcheck("bias_grad_numba compiles in nopython mode")
def _(bias_grad_numba):
    if _numba_fn(bias_grad_numba).facts()["forceobj"]:
        raise CheckFailed("bias_grad_numba is compiled in object mode (forceobj=True): use @njit.")
    call_nopython(bias_grad_numba, "bias_grad_numba", _columns_data(4, 3))


@numba_ex.subcheck("bias_grad_numba(dY) equals dY.sum(axis=0) for float64 (N, H) arrays")
def _(bias_grad_numba):
    _numba_fn(bias_grad_numba)
    for n, h in ((1000, 7), (1, 1), (3, 200), (1, 5), (6, 1)):
        dY = _columns_data(n, h, seed=81 + n + h)
        got = call_nopython(bias_grad_numba, "bias_grad_numba", dY)
        expect(
            _array_result(got, "bias_grad_numba(dY)"),
            bias_grad_ref(dY),
            f"bias_grad_numba(dY) for N, H = {n}, {h}",
            known=BIAS_WRONG,
            args=(dY,),
        )


@numba_ex.subcheck("bias_grad_numba keeps float32 input float32")
def _(bias_grad_numba):
    _numba_fn(bias_grad_numba)
    # a positive mean keeps every column sum far from 0, so float32 rounding in any
    # order of the additions is well within float32's tolerance
    dY = _columns_data(300, 5, np.float32, seed=84, shift=2.0)
    got = call_nopython(bias_grad_numba, "bias_grad_numba", dY)
    expect(
        _array_result(got, "bias_grad_numba(dY)"),
        dY.sum(axis=0, dtype=np.float64).astype(np.float32),
        "bias_grad_numba(dY) for float32 dY",
        known=BIAS_WRONG,
        args=(dY,),
    )


@numba_ex.subcheck("bias_grad_numba is compiled with parallel=True")
def _(bias_grad_numba):
    if not _numba_fn(bias_grad_numba).facts()["parallel"]:
        raise CheckFailed(
            "bias_grad_numba is compiled without parallel=True, so prange runs as a plain "
            "range. Hint: @njit(parallel=True)."
        )


@numba_ex.subcheck("Numba runs bias_grad_numba's loop in parallel (a prange loop doing the work)")
def _(bias_grad_numba):
    fn = _numba_fn(bias_grad_numba)
    if prange_loops(fn, "bias_grad_numba", _columns_data(4, 3)) == 0:
        raise CheckFailed(
            f"Numba found no prange loop to run in parallel. Hint: write {LOOP_HINT} "
            "(from numba import prange); `range` runs serially."
        )
    serial = _serial_pranges(fn.source)
    if serial:
        raise CheckFailed(
            f"your loop `{serial[0]}` has a single iteration, so one thread does all the "
            f"work while the others wait. Hint: write {LOOP_HINT}."
        )


@numba_ex.subcheck("bias_grad_numba writes every element of db")
def _(bias_grad_numba):
    _numba_fn(bias_grad_numba)
    expect_every_element_written(
        bias_grad_numba,
        lambda seed: (_columns_data(40, 9, seed=85 + seed),),
        bias_grad_ref,
        "bias_grad_numba(dY) for N, H = 40, 9",
    )


# Each run of the race check: four million small whole numbers (float32 holds their
# sums exactly, so every correct order of the additions gives exactly the same sums and
# any lost update shows), in shapes of one, four and eight columns. A race loses updates
# only while threads run at the same time: at a million elements a run is over in a
# millisecond, and on a busy machine the second thread often starts after the first has
# finished (a racy kernel then passed 6 of 20 times); at four million it failed 20 of 20
# times even with the machine's two cores busy with other work.
RACE_SHAPES = ((500_000, 8), (4_000_000, 1), (1_000_000, 4))


@functools.lru_cache(maxsize=len(RACE_SHAPES))
def _race_case(shape, seed):
    """(dY, its exact column sums), made once (a million random numbers take a while);
    the learner gets a copy."""
    dY = _rng(seed).integers(1, 4, shape).astype(np.float32)
    return dY, _exact_sums(dY)


def _exact_sums(dY):
    return dY.sum(axis=0, dtype=np.float64).astype(dY.dtype)


@numba_ex.subcheck("bias_grad_numba gives the exact sums on large inputs in every run (no race)")
def _(bias_grad_numba):
    """Judged by behaviour: several runs on large inputs with every thread, each compared
    with the exact sums. The hint says "race" only with evidence: wrong on a large input
    while right on its first rows (a lost update needs threads running at once)."""
    _numba_fn(bias_grad_numba)
    for run, shape in enumerate(RACE_SHAPES, start=1):
        dY, want = _race_case(shape, 90 + run)
        dY = dY.copy()
        got = call_nopython(bias_grad_numba, "bias_grad_numba", dY)
        what = (
            f"bias_grad_numba(dY) for N, H = {shape[0]}, {shape[1]} "
            f"(run {run} of {len(RACE_SHAPES)})"
        )
        try:
            expect(_array_result(got, what), want, what, known=BIAS_WRONG, args=(dY,))
        except CheckFailed as err:
            if not (isinstance(got, np.ndarray) and got.shape == want.shape):
                raise
            if got.dtype != want.dtype:
                raise
            message = str(err)
        else:
            if np.array_equal(got, want):
                continue
            off = float(np.max(np.abs(got.astype(np.float64) - want)))
            message = (
                f"{what}: off by up to {off:g} from the exact column sums (dY holds small "
                "whole numbers, so every correct order of the additions gives exactly these "
                "sums)"
            )
        small = dY[:200]
        if np.array_equal(bias_grad_numba(small), _exact_sums(small)):
            shared = prange_problems(bias_grad_numba.source)["shared"]
            where = (
                f"`{shared[0]}` is written by every prange iteration: threads running "
                "different iterations update the same element at once"
                if shared
                else "several threads update the same element at once"
            )
            message += (
                f"\n  Hint: right on the first 200 rows, wrong on all {shape[0]}: {where} "
                "(a race; updates are lost and the result changes from run to run). Give "
                f"each prange iteration elements of its own to write: {LOOP_HINT}."
            )
        raise CheckFailed(message)


# ------------------------------------------- derived, not given: softmax's backward pass

softmax_ex = exercise(
    "softmax_backward",
    ["softmax_backward"],
    # F.softmax (the forward pass) is allowed; nnlib's backward of it is the answer
    forbidden=("softmax_backward", "softmax_backward_ref", *_CE_NNLIB, "losses", *_BACKDOORS),
)
softmax_ex.error_hints.append(
    (
        ValueError,
        "broadcast",
        "two shapes do not broadcast: a sum over each row has shape (N,); keep it as a "
        "column, (N, 1), with keepdims=True, so that it lines up with the rows of (N, C).",
    )
)


def _softmax_data(n=6, c=4, dtype=np.float64, seed=100, scale=2.0):
    rng = _rng(seed)
    P = _softmax(scale * rng.standard_normal((n, c))).astype(dtype)
    dP = rng.standard_normal((n, c)).astype(dtype)
    return dP, P


def softmax_backward_ref(dP, P):
    """dL/dZ from dL/dP through P = softmax(Z) (rows), by the explicit Jacobian of each
    row in float64: J[n, k, c] = P[n, k] ([k = c] - P[n, c]), dZ[n, c] = sum_k dP[n, k]
    J[n, k, c]. Returned in P's dtype."""
    p, dp = P.astype(np.float64), dP.astype(np.float64)
    c = p.shape[1]
    J = p[:, :, None] * np.eye(c)[None] - p[:, :, None] * p[:, None, :]  # (N, C, C)
    return np.einsum("nkc,nk->nc", J, dp).astype(P.dtype)


SOFTMAX_WRONG = [
    WrongAnswer(
        lambda dP, P: dP * P * (1 - P),
        "your dZ is dP * P * (1 - P): that is the diagonal of softmax's Jacobian only, as if "
        "each P_k depended on Z_k alone (like a sigmoid). Every P_k depends on every logit "
        "of its row (through the sum in the denominator): dP_k/dZ_c = -P_k P_c for k != c "
        "adds a term that sums over the row.",
    ),
    WrongAnswer(
        lambda dP, P: P * (dP + (dP * P).sum(axis=1, keepdims=True)),
        "the row-sum term has the wrong sign: the denominator's derivative enters with a "
        "minus (quotient rule), dP_k/dZ_c = P_k ([k = c] - P_c).",
    ),
    WrongAnswer(
        lambda dP, P: P * (dP - (dP * P).sum(axis=0, keepdims=True)),
        "your sum runs over the batch (axis=0): softmax mixes the C logits of one row, so "
        "the sum is over each row's classes, axis=1.",
    ),
    WrongAnswer(
        lambda dP, P: P * (dP - (dP * P).sum()),
        "your sum runs over the whole batch: each row is its own softmax, so sum over each "
        "row only (axis=1, keepdims=True).",
    ),
    WrongAnswer(
        lambda dP, P: P * (dP - dP.sum(axis=1, keepdims=True)),
        "your row sum adds up dP alone: the chain rule weighs each dP_k by dP_k/dZ_c, which "
        "carries a factor P_k: sum dP_k P_k over the row.",
    ),
    WrongAnswer(
        lambda dP, P: dP - (dP * P).sum(axis=1, keepdims=True),
        "your dZ misses the factor P_c: the derivative of e^(Z_c) is e^(Z_c) itself, so "
        "every entry of column c of the Jacobian carries P_c.",
    ),
    WrongAnswer(
        lambda dP, P: P * (dP - (dP * P).sum(axis=1)),
        "your row sums have shape (N,) and were broadcast along the wrong axis (a square "
        "batch, N = C, lets that through): keep them as a column, keepdims=True.",
    ),
]


def _expect_softmax(softmax_backward, dP, P, what):
    got = _array_result(softmax_backward(dP, P), "softmax_backward(dP, P)")
    expect(
        got,
        softmax_backward_ref(dP, P),
        f"softmax_backward(dP, P) {what}",
        known=SOFTMAX_WRONG,
        args=(dP, P),
    )


@softmax_ex.subcheck("softmax_backward(dP, P) equals dP through softmax's Jacobian, N, C = 6, 4")
def _(softmax_backward):
    dP, P = _softmax_data()
    _expect_softmax(softmax_backward, dP, P, "for N, C = 6, 4")


@softmax_ex.subcheck("softmax_backward passes a float64 gradient check of the forward pass")
def _(softmax_backward):
    Z = _rng(101).standard_normal((5, 3))
    result = check_vjp(_softmax, lambda dP, z: softmax_backward(dP, _softmax(z)), Z, tol=GRAD_TOL)
    if not result.passed:
        raise CheckFailed(
            "softmax_backward disagrees with central differences of P = softmax(Z): "
            f"{result}. Hint: write dP_k/dZ_c for k = c and for k != c (quotient rule), then "
            "dZ_c = sum_k dP_k dP_k/dZ_c."
        )


@softmax_ex.subcheck("softmax_backward works for N = 1, C = 1 (dZ = 0), C = 2 and a square batch")
def _(softmax_backward):
    for n, c, seed in ((1, 5, 102), (4, 1, 103), (9, 2, 104), (4, 4, 105)):
        dP, P = _softmax_data(n, c, seed=seed)
        _expect_softmax(softmax_backward, dP, P, f"for N, C = {n}, {c}")


@softmax_ex.subcheck("softmax_backward is accurate for probabilities from 1e-300 to 1")
def _(softmax_backward):
    Z = np.array([[700.0, 0.0, -690.0, 690.0], [0.0, 0.0, -745.0, 1.0], [30.0, -30.0, 0.0, 29.0]])
    P = _softmax(Z)
    dP = _rng(106).standard_normal(P.shape) * np.array([1.0, 1e3, 1e-3, 10.0])
    got = _array_result(softmax_backward(dP, P), "softmax_backward(dP, P)")
    if isinstance(got, np.ndarray) and got.shape == P.shape and not np.all(np.isfinite(got)):
        raise CheckFailed(
            "softmax_backward gave inf or nan for probabilities near 0 or 1. Hint: the "
            "backward pass needs no division and no log: P and dP multiply and add."
        )
    _expect_softmax(softmax_backward, dP, P, "for probabilities from 1e-300 to 1")


@softmax_ex.subcheck("softmax_backward keeps float32 float32")
def _(softmax_backward):
    dP, P = _softmax_data(7, 3, np.float32, seed=107)
    _expect_softmax(softmax_backward, dP, P, "for float32")


# --------------------------------------------- derived, not given: L2 normalization

l2_ex = exercise(
    "l2_normalize_backward",
    ["l2_normalize_backward"],
    forbidden=("l2_normalize_backward", "l2_normalize", *_BACKDOORS),
)
l2_ex.error_hints.append(softmax_ex.error_hints[0])


def l2_normalize_ref(X):
    """Each row of X (N, D) divided by its Euclidean norm, in float64."""
    x = np.asarray(X, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def l2_normalize_backward_ref(dY, X):
    """dL/dX of Y = X / ||X|| (rows) in float64 math: (dY - Y (Y . dY)) / ||X||, in X's
    dtype. (The derivative of y_k = x_k / r with r = ||x||: dy_k/dx_d = ([k = d] - y_k y_d) / r,
    a symmetric matrix.)"""
    x, dy = np.asarray(X, np.float64), np.asarray(dY, np.float64)
    r = np.linalg.norm(x, axis=1, keepdims=True)
    y = x / r
    return ((dy - y * (y * dy).sum(axis=1, keepdims=True)) / r).astype(X.dtype)


def _l2_parts(dY, X):
    r = np.sqrt((X * X).sum(axis=1, keepdims=True))
    return r, X / r, dY


L2_WRONG = [
    WrongAnswer(
        lambda dY, X: dY / np.sqrt((X * X).sum(axis=1, keepdims=True)),
        "your dX is dY / ||x||, as if the norm were a constant: ||x|| depends on x too. "
        "Differentiate y = x / r with r = ||x|| by the quotient rule; dr/dx = x / r adds a "
        "term with a sum over the row.",
    ),
    WrongAnswer(
        lambda dY, X: (lambda r, Y, d: (d + Y * (Y * d).sum(axis=1, keepdims=True)) / r)(
            *_l2_parts(dY, X)
        ),
        "the term from the norm has the wrong sign: d(1/r)/dx = -x / r^3, so it is subtracted.",
    ),
    WrongAnswer(
        lambda dY, X: (lambda r, Y, d: d - Y * (Y * d).sum(axis=1, keepdims=True))(
            *_l2_parts(dY, X)
        ),
        "your dX misses the factor 1 / ||x||: dy_k/dx_d = ([k = d] - y_k y_d) / ||x||.",
    ),
    WrongAnswer(
        lambda dY, X: (lambda r, Y, d: (d - X * (X * d).sum(axis=1, keepdims=True)) / r)(
            *_l2_parts(dY, X)
        ),
        "your norm term uses x where y = x / ||x|| belongs (it is ||x||^2 times too large): "
        "d(1/r)/dx = -x / r^3, and x x^T / r^3 = y y^T / r.",
    ),
    WrongAnswer(
        lambda dY, X: (lambda r, Y, d: d / r - Y * (Y * d).sum(axis=1, keepdims=True))(
            *_l2_parts(dY, X)
        ),
        "your norm term lacks a factor 1 / ||x||: d(1/r)/dx = -x / r^3 (the chain rule: "
        "-1/r^2 times dr/dx = x / r), not -x / r^2.",
    ),
    WrongAnswer(
        lambda dY, X: (lambda r, Y, d: (d - Y * (Y * d).sum(axis=0, keepdims=True)) / r)(
            *_l2_parts(dY, X)
        ),
        "your sum runs over the batch (axis=0): each row is normalised by its own norm, so "
        "sum over each row's D entries, axis=1.",
    ),
    WrongAnswer(
        lambda dY, X: (lambda R, Y: (dY - Y * (Y * dY).sum()) / R)(
            np.sqrt((X * X).sum()), X / np.sqrt((X * X).sum())
        ),
        "your norm is the norm of the whole batch: each row is divided by its own norm, "
        "||X[n]|| = sqrt((X[n] ** 2).sum()), a column of N norms (axis=1, keepdims=True).",
    ),
    WrongAnswer(
        lambda dY, X: (lambda r, Y, d: (d - Y * (Y * d).sum()) / r)(*_l2_parts(dY, X)),
        "your sum runs over the whole batch: each row is normalised by its own norm, so sum "
        "over each row only (axis=1, keepdims=True).",
    ),
]


def _l2_data(n=5, d=4, dtype=np.float64, seed=110, scale=1.0):
    rng = _rng(seed)
    X = (scale * rng.standard_normal((n, d))).astype(dtype)
    dY = rng.standard_normal((n, d)).astype(dtype)
    return dY, X


def _expect_l2(l2_normalize_backward, dY, X, what):
    expect(
        _array_result(l2_normalize_backward(dY, X), "l2_normalize_backward(dY, X)"),
        l2_normalize_backward_ref(dY, X),
        f"l2_normalize_backward(dY, X) {what}",
        known=L2_WRONG,
        args=(dY, X),
    )


@l2_ex.subcheck("l2_normalize_backward(dY, X) equals the derivative of X / ||X||, N, D = 5, 4")
def _(l2_normalize_backward):
    dY, X = _l2_data()
    _expect_l2(l2_normalize_backward, dY, X, "for N, D = 5, 4")


@l2_ex.subcheck("l2_normalize_backward passes a float64 gradient check of the forward pass")
def _(l2_normalize_backward):
    X = _rng(111).standard_normal((4, 3))
    result = check_vjp(l2_normalize_ref, l2_normalize_backward, X, tol=GRAD_TOL)
    if not result.passed:
        raise CheckFailed(
            "l2_normalize_backward disagrees with central differences of Y = X / ||X||: "
            f"{result}. Hint: write y_k = x_k / r with r = sqrt(sum_d x_d^2); dy_k/dx_d has "
            "a term from x_k and one from r."
        )


@l2_ex.subcheck("l2_normalize_backward works for N = 1, D = 1 (dX = 0), D = 2 and N = D")
def _(l2_normalize_backward):
    for n, d, seed in ((1, 6, 112), (5, 1, 113), (8, 2, 114), (3, 3, 115)):
        dY, X = _l2_data(n, d, seed=seed)
        _expect_l2(l2_normalize_backward, dY, X, f"for N, D = {n}, {d}")


@l2_ex.subcheck("l2_normalize_backward is accurate for row norms from 1e-100 to 1e100")
def _(l2_normalize_backward):
    # dX scales like 1 / ||x||: compared row by row after multiplying by the row's norm,
    # so a row of norm 1e100 (dX ~ 1e-100) is judged as strictly as one of norm 1
    scales = np.array([1e-100, 1e-30, 1e-3, 1.0, 1e3, 1e30, 1e100])[:, None]
    dY, X = _l2_data(7, 5, seed=116)
    X = X * scales
    got = _array_result(l2_normalize_backward(dY, X), "l2_normalize_backward(dY, X)")
    want = l2_normalize_backward_ref(dY, X)
    if not (isinstance(got, np.ndarray) and got.shape == want.shape):
        expect(got, want, "l2_normalize_backward(dY, X) for row norms from 1e-100 to 1e100")
    r = np.linalg.norm(X, axis=1, keepdims=True)
    with np.errstate(all="ignore"):
        scaled = got.astype(np.float64) * r
    if not np.all(np.isfinite(scaled)):
        row = int(np.argwhere(~np.isfinite(scaled))[0][0])
        raise CheckFailed(
            f"l2_normalize_backward gave inf or nan for a row of norm {r[row, 0]:.0e}. Hint: "
            "an intermediate value left float64's range, about 1e-308 to 1e308 (e.g. "
            "||x||**4 at a norm of 1e100): work with y = x / ||x||, whose entries are at "
            "most 1, and divide by ||x|| once."
        )
    expect(
        scaled.astype(X.dtype),
        want.astype(np.float64) * r,
        "||x|| * l2_normalize_backward(dY, X), row by row, for row norms from 1e-100 to 1e100",
        known=[WrongAnswer(lambda w=w: quiet(w.fn, dY, X) * r, w.hint) for w in L2_WRONG],
    )


@l2_ex.subcheck("l2_normalize_backward keeps float32 float32")
def _(l2_normalize_backward):
    dY, X = _l2_data(6, 3, np.float32, seed=117)
    _expect_l2(l2_normalize_backward, dY, X, "for float32")
