"""Checks for exercise set 03, backpropagation (``solutions/03_backprop.ipynb``).

Every expected value comes from nnlib's NumPy reference (the ``numpy`` backend of the
``dense_backward`` and ``softmax_cross_entropy`` ops, ``nnlib.functional``, and the
``Dense``/``ReLU`` layers for the two-layer network) and every backward pass is also
compared with float64 central differences (cs231n's relative error). Inputs come from
fixed seeds, so a verdict never changes between runs.

Each exercise is graded on its own: ``train_step`` is handed the grader's own forward
and backward functions, so a mistake in one exercise never fails another.

Shapes: N batch, D input features, H hidden units (or a layer's outputs), C classes.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import numpy as np

from nnlib import functional as F
from nnlib._backend import dispatch, use_backend
from nnlib.gradient_check import check_vjp, numerical_gradient, relative_error

from .checks import CheckFailed, WrongAnswer, exercise, expect, expect_unchanged
from .numba_checks import call_nopython, dispatcher, prange_loops

# cs231n: a relative error below 1e-7 is right, above 1e-4 almost certainly a bug. A
# loss through softmax has gradient entries of order 1e-3, where the central
# difference's round-off (about 1e-10) alone gives 1e-7: 1e-6 leaves room for that and
# still fails every wrong formula by orders of magnitude.
GRAD_TOL = 1e-6


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


def _unpack(result, names, fn_name):
    """The arrays of a tuple result ``(a, b, ...)``, named ``names`` in the message."""
    wanted = f"a tuple ({', '.join(names)})"
    if result is None:
        raise CheckFailed(f"{fn_name} returned None, expected {wanted}. Did you forget `return`?")
    if not isinstance(result, (tuple, list)) or len(result) != len(names):
        got = f"a {type(result).__name__}"
        if isinstance(result, (tuple, list)):
            got += f" of length {len(result)}"
        raise CheckFailed(
            f"{fn_name} returned {got}, expected {wanted}. Hint: end with "
            f"`return {', '.join(names)}`."
        )
    return result


# -------------------------------------------------------------------- the dense layer

dense_ex = exercise("dense_backward", ["dense_backward"])


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
]


def _dense_parts(dense_backward, dY, X, W):
    return _unpack(
        dense_backward(dY.copy(), X.copy(), W.copy()), ("dX", "dW", "db"), "dense_backward"
    )


@dense_ex.subcheck("dense_backward returns (dX, dW, db) shaped (N, D), (D, H), (H,)")
def _(dense_backward):
    dY, X, W = _dense_data()
    got = _dense_parts(dense_backward, dY, X, W)
    for name, g, want, known in zip(
        ("dX", "dW", "db"),
        got,
        dense_backward_ref(dY, X, W),
        (DX_WRONG, DW_WRONG, DB_WRONG),
        strict=True,
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


@dense_ex.subcheck("dense_backward keeps float32 float32 and leaves its inputs unchanged")
def _(dense_backward):
    dY, X, W = _dense_data(np.float32, seed=36)
    before = dY.copy(), X.copy(), W.copy()
    got = _unpack(dense_backward(dY, X, W), ("dX", "dW", "db"), "dense_backward")
    for name, g, want in zip(("dX", "dW", "db"), got, dense_backward_ref(*before), strict=True):
        expect(g, want, f"{name} for float32 inputs")
    for name, a, b in zip(("dY", "X", "W"), (dY, X, W), before, strict=True):
        expect_unchanged(a, b, name, "dense_backward")


# ------------------------------------------------------------------------ activations

act_ex = exercise("activation_backward", ["activation_backward"])
ACTIVATIONS = ("relu", "sigmoid", "tanh")


def _act_forward(Z, activation):
    return getattr(F, activation)(Z, backend="numpy")


def _act_ref(dA, Z, activation):
    return getattr(F, f"{activation}_backward")(dA, Z, backend="numpy")


def _act_data(dtype=np.float64, seed=40):
    Z = _away_from_zero((4, 5), seed, scale=1.5).astype(dtype)
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


for _activation, _seed in zip(ACTIVATIONS, (40, 42, 44), strict=True):

    @act_ex.subcheck(f'activation_backward(dA, Z, A, "{_activation}") equals dA * f\'(Z)')
    def _(activation_backward, activation=_activation, seed=_seed):
        dA, Z = _act_data(seed=seed)
        A = _act_forward(Z, activation)
        got = activation_backward(dA.copy(), Z.copy(), A.copy(), activation)
        expect(
            _array_result(got, f'activation_backward(dA, Z, A, "{activation}")'),
            _act_ref(dA, Z, activation),
            f'activation_backward(dA, Z, A, "{activation}")',
            inputs={"dA": dA, "Z": Z},
            known=_act_wrong(activation),
            args=(dA, Z, A),
        )


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


@act_ex.subcheck("activation_backward keeps float32 float32 and leaves its inputs unchanged")
def _(activation_backward):
    for activation in ACTIVATIONS:
        dA, Z = _act_data(np.float32, seed=47)
        A = _act_forward(Z, activation)
        before = dA.copy(), Z.copy(), A.copy()
        got = activation_backward(dA, Z, A, activation)
        expect(
            _array_result(got, "activation_backward"),
            _act_ref(before[0], before[1], activation),
            f'activation_backward(dA, Z, A, "{activation}") for float32',
        )
        for name, a, b in zip(("dA", "Z", "A"), (dA, Z, A), before, strict=True):
            expect_unchanged(a, b, name, "activation_backward")


@act_ex.subcheck('activation_backward raises ValueError for an unknown name ("softplus")')
def _(activation_backward):
    dA, Z = _act_data(seed=48)
    try:
        activation_backward(dA, Z, Z, "softplus")
    except ValueError:
        return
    except Exception as err:
        raise CheckFailed(
            f'activation_backward(dA, Z, A, "softplus") raised {type(err).__name__}, expected '
            'ValueError. Hint: end with `raise ValueError(f"unknown activation '
            '{activation!r}")`.'
        ) from None
    raise CheckFailed(
        'activation_backward(dA, Z, A, "softplus") returned a result: an unknown name must '
        "raise ValueError (a silent wrong gradient is the worst kind of bug). Hint: end "
        'with `raise ValueError(f"unknown activation {activation!r}")`.'
    )


# --------------------------------------------------------- softmax cross-entropy backward

ce_ex = exercise("ce_backward", ["ce_backward"])


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


@ce_ex.subcheck("ce_backward(Z, y) equals (softmax(Z) - Y) / N for N, C = 6, 4")
def _(ce_backward):
    Z, y = _ce_data()
    got = ce_backward(Z.copy(), y.copy())
    expect(
        _array_result(got, "ce_backward(Z, y)"),
        ce_backward_ref(Z, y),
        "ce_backward(Z, y)",
        known=CE_WRONG,
        args=(Z, y),
    )


@ce_ex.subcheck("ce_backward works for one example (N = 1) and for N = 9, C = 2")
def _(ce_backward):
    for n, c, seed in ((1, 3, 51), (9, 2, 52)):
        Z, y = _ce_data(n, c, seed=seed)
        expect(
            _array_result(ce_backward(Z.copy(), y.copy()), "ce_backward(Z, y)"),
            ce_backward_ref(Z, y),
            f"ce_backward(Z, y) for N, C = {n}, {c}",
            known=CE_WRONG,
            args=(Z, y),
        )


@ce_ex.subcheck("ce_backward passes a float64 gradient check of the mean loss")
def _(ce_backward):
    Z, y = _ce_data(5, 3, seed=53, scale=1.0)
    numeric = numerical_gradient(lambda z: ce_loss_ref(z, y), Z)
    got = np.asarray(_array_result(ce_backward(Z.copy(), y.copy()), "ce_backward(Z, y)"))
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
            got = ce_backward(Z.copy(), y.copy())
        except FloatingPointError as err:
            raise CheckFailed(
                f"ce_backward overflowed for logits near 1000 ({err}). Hint: subtract each "
                "row's max before exp: softmax(Z) = softmax(Z - max), and every exp is then "
                "at most 1 (or use nnlib's F.softmax)."
            ) from None
    got = np.asarray(_array_result(got, "ce_backward(Z, y)"))
    if got.shape == Z.shape and not np.all(np.isfinite(got)):
        raise CheckFailed(
            "ce_backward gave inf or nan for logits near 1000. Hint: subtract each row's max "
            "before exp."
        )
    expect(
        got, ce_backward_ref(Z, y), "ce_backward(Z, y) at large logits", known=CE_WRONG, args=(Z, y)
    )


@ce_ex.subcheck("ce_backward keeps float32 float32 and leaves its inputs unchanged")
def _(ce_backward):
    Z, y = _ce_data(dtype=np.float32, seed=54)
    before = Z.copy(), y.copy()
    got = ce_backward(Z, y)
    expect(_array_result(got, "ce_backward"), ce_backward_ref(*before), "ce_backward for float32 Z")
    expect_unchanged(Z, before[0], "Z", "ce_backward")
    expect_unchanged(y, before[1], "y", "ce_backward")


# ------------------------------------------------------------- a two-layer network

mlp_ex = exercise("mlp_backward", ["mlp_forward", "mlp_backward"])
mlp_ex.error_hints.append(
    (
        ValueError,
        "matmul",
        "two shapes do not fit a matrix product: write each array's shape next to it, e.g. "
        "dA1 = dZ2 @ W2.T is (N, C) @ (C, H) -> (N, H).",
    )
)
PARAM_NAMES = ("W1", "b1", "W2", "b2")


def mlp_params(d=3, h=5, c=4, seed=60, dtype=np.float64):
    rng = _rng(seed)
    return {
        "W1": rng.standard_normal((d, h)).astype(dtype),
        "b1": (0.5 * rng.standard_normal(h)).astype(dtype),
        "W2": rng.standard_normal((h, c)).astype(dtype),
        "b2": (0.5 * rng.standard_normal(c)).astype(dtype),
    }


def _mlp_data(n=8, seed=61):
    """X (N, D), labels y (N,), with no hidden pre-activation within 0.05 of the kink."""
    params = mlp_params(seed=seed)
    rng = _rng(seed + 1)
    while True:
        X = rng.standard_normal((n, params["W1"].shape[0]))
        if np.abs(X @ params["W1"] + params["b1"]).min() > 0.05:
            break
    y = rng.integers(0, params["W2"].shape[1], n).astype(np.int64)
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
    """``(logits (N, C), cache)``: logits = relu(X @ W1 + b1) @ W2 + b2, via nnlib layers."""
    layers = _nnlib_mlp(params)
    out = X
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
        "W1": layers[0].grads["W"],
        "b1": layers[0].grads["b"],
        "W2": layers[2].grads["W"],
        "b2": layers[2].grads["b"],
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


def _mlp_grads(mlp_forward, mlp_backward, params, X, y):
    _, cache = _unpack(mlp_forward(params, X.copy()), ("logits", "cache"), "mlp_forward")
    grads = mlp_backward(params, cache, y.copy())
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


@mlp_ex.subcheck("mlp_forward(params, X) gives logits relu(X @ W1 + b1) @ W2 + b2")
def _(mlp_forward, mlp_backward):
    params, X, _ = _mlp_data()
    logits = _unpack(mlp_forward(params, X.copy()), ("logits", "cache"), "mlp_forward")[0]
    P = {k: params[k] for k in PARAM_NAMES}
    known = [
        WrongAnswer(
            lambda: (X @ P["W1"] + P["b1"]) @ P["W2"] + P["b2"],
            "your logits skip the ReLU: A1 = np.maximum(Z1, 0) goes between the layers.",
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
    grads = _mlp_grads(mlp_forward, mlp_backward, params, X, y)
    want = mlp_backward_ref(params, mlp_forward_ref(params, X)[1], y)
    variants = {m: _mlp_variant(params, X, y, m) for m in MLP_MISTAKES}
    for k in PARAM_NAMES:
        known = [
            WrongAnswer(lambda v=v, k=k: v[k], MLP_MISTAKES[m])
            for m, v in variants.items()
            if v[k].shape != want[k].shape or not np.allclose(v[k], want[k])
        ]
        expect(grads[k], want[k], f'grads["{k}"]', known=known)


@mlp_ex.subcheck("every gradient passes a float64 gradient check of the mean loss")
def _(mlp_forward, mlp_backward):
    params, X, y = _mlp_data(seed=65)
    grads = _mlp_grads(mlp_forward, mlp_backward, params, X, y)
    for k in PARAM_NAMES:

        def loss(v, k=k):
            return ce_loss_ref(mlp_forward_ref({**params, k: v}, X)[0], y)

        numeric = numerical_gradient(loss, params[k])
        g = np.asarray(grads[k])
        if g.shape != numeric.shape:
            raise CheckFailed(f'grads["{k}"]: shape {g.shape}, expected {numeric.shape}')
        _gradient_check(
            g,
            numeric,
            f'grads["{k}"]',
            "go backwards one step at a time and check the shape of every intermediate gradient.",
        )


@mlp_ex.subcheck("mlp_forward and mlp_backward leave params, X and y unchanged")
def _(mlp_forward, mlp_backward):
    params, X, y = _mlp_data(seed=66)
    before = {k: v.copy() for k, v in params.items()}, X.copy(), y.copy()
    _, cache = _unpack(mlp_forward(params, X), ("logits", "cache"), "mlp_forward")
    mlp_backward(params, cache, y)
    for k in PARAM_NAMES:
        expect_unchanged(params[k], before[0][k], f'params["{k}"]', "mlp_forward/mlp_backward")
    expect_unchanged(X, before[1], "X", "mlp_forward/mlp_backward")
    expect_unchanged(y, before[2], "y", "mlp_forward/mlp_backward")


# ------------------------------------------------------------------ one training step

step_ex = exercise("train_step", ["train_step"])


def _step_data(seed=70, lr=0.3):
    params, X, y = _mlp_data(n=10, seed=seed)
    return params, X, y, lr


def _run_step(train_step, params, X, y, lr):
    """(returned loss, params after the step) for a copy of ``params``."""
    work = {k: v.copy() for k, v in params.items()}
    loss = train_step(work, X.copy(), y.copy(), lr, mlp_forward_ref, mlp_backward_ref)
    return loss, work


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


@step_ex.subcheck("train_step returns the mean loss of the batch before the update")
def _(train_step):
    params, X, y, lr = _step_data()
    loss = _as_scalar(_run_step(train_step, params, X, y, lr)[0])
    want = ce_loss_ref(mlp_forward_ref(params, X)[0], y)
    grads = mlp_backward_ref(params, mlp_forward_ref(params, X)[1], y)
    after = ce_loss_ref(mlp_forward_ref(_sgd(params, grads, lr), X)[0], y)
    hints = [
        (want * len(X), "your loss is the sum over the batch: return the mean, sum / N."),
        (
            after,
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
        params, X, y, _ = _step_data(seed, lr)
        _, got = _run_step(train_step, params, X, y, lr)
        grads = mlp_backward_ref(params, mlp_forward_ref(params, X)[1], y)
        want = _sgd(params, grads, lr)
        if all(np.array_equal(got[k], params[k]) for k in PARAM_NAMES):
            raise CheckFailed(
                "train_step left every parameter unchanged. Hint: update the dict you are "
                "given, params[name] = params[name] - lr * grads[name] (or -=); assigning a "
                "new dict to the name params inside the function changes nothing outside it."
            )
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
                    f'params["{k}"] did not change: update every parameter, the biases too.',
                ),
                (
                    params[k] - lr * grads[k] / len(X),
                    "your step divides the gradient by N again: backward already returns "
                    "the gradient of the mean loss; the step is p - lr * grad.",
                ),
            ]
            known = [WrongAnswer(lambda v=v: v, hint) for v, hint in mistakes]
            expect(got[k], want[k], f'params["{k}"] after one step with lr = {lr}', known=known)


@step_ex.subcheck("forty steps of gradient descent bring a small network's loss down")
def _(train_step):
    params, X, y = _mlp_data(n=12, seed=73)
    work = {k: v.copy() for k, v in params.items()}
    losses = []
    with np.errstate(all="ignore"):
        for _ in range(40):
            losses.append(
                _as_scalar(train_step(work, X, y, 0.5, mlp_forward_ref, mlp_backward_ref))
            )
    final = ce_loss_ref(mlp_forward_ref(work, X)[0], y)
    if not (np.isfinite(final) and final < 0.5 * losses[0]):
        raise CheckFailed(
            f"after 40 steps the loss went from {losses[0]:.4f} to {final:.4f}; gradient "
            "descent with lr = 0.5 more than halves it on this problem. Hint: the update is "
            "p - lr * grad, for every parameter, every step."
        )


# ---------------------------------------------------- the bias gradient as a Numba kernel

numba_ex = exercise("bias_grad_numba", ["bias_grad_numba"])


def _numba_fn(fn):
    return dispatcher(fn, "bias_grad_numba", "dY")


def _columns_data(n, h, dtype=np.float64, seed=80):
    return _rng(seed).standard_normal((n, h)).astype(dtype)


BIAS_WRONG = [
    WrongAnswer(
        lambda dY: dY.sum(axis=1),
        "your result sums each row (shape (N,)): db sums each column over the batch, "
        "shape (H,): for j in prange(H), add dY[i, j] over i.",
    ),
    WrongAnswer(
        lambda dY: dY.mean(axis=0),
        "your result is the mean of each column: db is the sum over the batch.",
    ),
    WrongAnswer(
        lambda dY: np.cumsum(dY.sum(axis=0)),
        "each entry also holds the sums of the columns before it: start each column's sum "
        "at 0 inside the column loop (s = 0.0 as the loop body's first line).",
    ),
    WrongAnswer(
        lambda dY: dY.sum(axis=0) - dY[0],
        "your sum misses the first row: loop over range(dY.shape[0]), from 0.",
    ),
]


def _prange_races(fn) -> list[str]:
    """Writes inside a ``prange`` loop to an array element that does not depend on the
    loop's index: several threads then update the same element at once (a race)."""
    try:
        source = textwrap.dedent(inspect.getsource(fn.py_func))
    except (OSError, TypeError):  # no source to read (e.g. built by exec): cannot tell
        return []
    races = []
    for loop in ast.walk(ast.parse(source)):
        if not (isinstance(loop, ast.For) and isinstance(loop.iter, ast.Call)):
            continue
        func = loop.iter.func
        if getattr(func, "id", getattr(func, "attr", None)) != "prange":
            continue
        tainted = {n.id for n in ast.walk(loop.target) if isinstance(n, ast.Name)}
        body = ast.Module(body=loop.body, type_ignores=[])
        for _ in range(5):  # names computed from the loop index are per-iteration too
            for node in ast.walk(body):
                if isinstance(node, (ast.Assign, ast.AugAssign, ast.For)):
                    value = node.iter if isinstance(node, ast.For) else node.value
                    used = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
                    if used & tainted:
                        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                        for t in targets:
                            if isinstance(t, ast.Name):
                                tainted.add(t.id)
        local = {
            t.id
            for node in ast.walk(body)
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        for node in ast.walk(body):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else ([node.target] if isinstance(node, ast.AugAssign) else [])
            )
            for t in targets:
                if not isinstance(t, ast.Subscript) or not isinstance(t.value, ast.Name):
                    continue
                if t.value.id in local:
                    continue  # an array made inside the loop belongs to one iteration
                index = {n.id for n in ast.walk(t.slice) if isinstance(n, ast.Name)}
                if not index & tainted:
                    races.append(ast.unparse(t))
    return races


@numba_ex.subcheck("bias_grad_numba is a Numba function (@njit)")
def _(bias_grad_numba):
    _numba_fn(bias_grad_numba)


@numba_ex.subcheck("bias_grad_numba compiles in nopython mode")
def _(bias_grad_numba):
    fn = _numba_fn(bias_grad_numba)
    if fn.targetoptions.get("forceobj"):
        raise CheckFailed("bias_grad_numba is compiled in object mode (forceobj=True): use @njit.")
    call_nopython(fn, "bias_grad_numba", _columns_data(4, 3))


@numba_ex.subcheck("bias_grad_numba(dY) equals dY.sum(axis=0) for float64 (N, H) arrays")
def _(bias_grad_numba):
    fn = _numba_fn(bias_grad_numba)
    for n, h in ((1000, 7), (1, 1), (3, 200)):
        dY = _columns_data(n, h, seed=81 + n)
        got = call_nopython(fn, "bias_grad_numba", dY.copy())
        expect(
            _array_result(got, "bias_grad_numba(dY)"),
            dense_backward_ref(dY, np.zeros((n, 1)), np.zeros((1, h)))[2],
            f"bias_grad_numba(dY) for N, H = {n}, {h}",
            known=BIAS_WRONG,
            args=(dY,),
        )


@numba_ex.subcheck("bias_grad_numba keeps float32 input float32 and leaves it unchanged")
def _(bias_grad_numba):
    dY = _columns_data(300, 5, np.float32, seed=84)
    before = dY.copy()
    got = call_nopython(_numba_fn(bias_grad_numba), "bias_grad_numba", dY)
    expect(
        _array_result(got, "bias_grad_numba(dY)"),
        before.sum(axis=0, dtype=np.float64).astype(np.float32),
        "bias_grad_numba(dY) for float32 dY",
    )
    expect_unchanged(dY, before, "dY", "bias_grad_numba")


@numba_ex.subcheck("bias_grad_numba is compiled with parallel=True")
def _(bias_grad_numba):
    if not _numba_fn(bias_grad_numba).targetoptions.get("parallel"):
        raise CheckFailed(
            "bias_grad_numba is compiled without parallel=True, so prange runs as a plain "
            "range. Hint: @njit(parallel=True)."
        )


@numba_ex.subcheck("Numba runs bias_grad_numba's loop in parallel (a prange loop)")
def _(bias_grad_numba):
    if prange_loops(_numba_fn(bias_grad_numba), "bias_grad_numba", _columns_data(4, 3)) == 0:
        raise CheckFailed(
            "Numba found no prange loop to run in parallel. Hint: write the column loop as "
            "`for j in prange(dY.shape[1]):` (from numba import prange); `range` runs serially."
        )


@numba_ex.subcheck("no two threads add into the same element (prange over the columns)")
def _(bias_grad_numba):
    races = _prange_races(_numba_fn(bias_grad_numba))
    if races:
        raise CheckFailed(
            f"inside your prange loop, `{races[0]}` is written by every iteration: threads "
            "running different iterations add into the same element at once, and updates "
            "are silently lost (a race; the result changes from run to run). Hint: make "
            "prange run over the columns j, sum each column into a local number s, then "
            "write db[j] = s once."
        )
