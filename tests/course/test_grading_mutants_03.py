"""Wrong-answer catalogue for ``solutions/03_backprop.ipynb``: each typical mistake fails
its own exercise only, and the feedback names it (see ``mutant_harness.py``).

Mutants are edits of the solution's answer cell (``mutate``), so the planted defect is
what the line shows. ``ALTERNATIVES`` are correct answers written differently from the
solution: each passes every check of its exercise. ``NNLIB_CALLS`` answer with nnlib's
own version of the exercise: reported by name.

Numba mutants compile (about a second each with parallel=True): only those that a
NumPy mutant cannot stand for are here.
"""

from __future__ import annotations

import pytest
from mutant_harness import ExerciseSet, M, _compile, alternatives_test, catalogue_tests, mutate

SET = ExerciseSet("03_backprop.ipynb")
A = SET.answers

DENSE = A["dense_backward"]
ACT = A["activation_backward"]
CE = A["ce_backward"]
MLP = A["mlp_backward"]
STEP = A["train_step"]
BIAS = A["bias_grad_numba"]
SOFTMAX = A["softmax_backward"]
L2 = A["l2_normalize_backward"]

# one column per iteration: correct (an alternative below) but slow, reading dY with a
# stride of a whole row; the mutants of that loop form are edits of it
COLUMNS = M("""
@njit(parallel=True)
def bias_grad_numba(dY):
    n, h = dY.shape
    db = np.empty(h, dY.dtype)
    for j in prange(h):  # one column per iteration: no two threads share an output
        s = 0.0
        for i in range(n):
            s += dY[i, j]
        db[j] = s
    return db
""")

# the lines of the solutions that the mutants edit
_DX, _DW, _DB = "dX = dY @ W.T", "dW = X.T @ dY", "db = dY.sum(axis=0)"
_RELU = "np.where(Z > 0, dA, 0).astype(dA.dtype)"
_SIGMOID, _TANH = "dA * A * (1 - A)", "dA * (1 - A**2)"
_RAISE = 'raise ValueError(f"unknown activation {activation!r}; expected relu, sigmoid or tanh")'
_CE_EXP = "e = np.exp(Z - Z.max(axis=1, keepdims=True))"
_CE_ONEHOT = "dZ[np.arange(N), y] -= 1"
_CE_MEAN = "return dZ / Z.dtype.type(N)"
_MLP_ONEHOT = "dZ2[np.arange(N), y] -= 1"
_MLP_EXP = "e = np.exp(Z2 - Z2.max(axis=1, keepdims=True))"
_UPDATE = "params[name] -= lr * grads[name]"
_LOOP = "for name in params:\n        params[name] -= lr * grads[name]"
_DECORATOR = "@njit(parallel=True)  # the contract: Numba, parallel; how you write it is yours\n"
_SM = "P * (dP - (dP * P).sum(axis=1, keepdims=True))"
_L2R = "r = np.sqrt((X * X).sum(axis=1, keepdims=True))"
_L2 = "(dY - Y * (Y * dY).sum(axis=1, keepdims=True)) / r"

MUTANTS = [
    # ------------------------------------------------------------ dense_backward
    ("dense_backward", "dW transposed", mutate(DENSE, _DW, "dW = dY.T @ X"), "dW transposed"),
    (
        "dense_backward",
        "db copied, not summed",
        mutate(DENSE, _DB, "db = dY.copy()"),
        "your db has shape (N, H)",
    ),
    (
        "dense_backward",
        "db averaged",
        mutate(DENSE, _DB, "db = dY.mean(axis=0)"),
        "mean of the rows of dY",
    ),
    (
        "dense_backward",
        "db over the wrong axis",
        mutate(DENSE, _DB, "db = dY.sum(axis=1)"),
        "axis=0, shape (H,)",
    ),
    (
        "dense_backward",
        "dW divided by N",
        mutate(DENSE, _DW, "dW = X.T @ dY / len(X)"),
        "your dW is divided by N",
    ),
    ("dense_backward", "dX transposed", mutate(DENSE, _DX, "dX = W @ dY.T"), "dX is transposed"),
    (
        "dense_backward",
        "returns two arrays",
        mutate(DENSE, "return dX, dW, db", "return dW, db"),
        "of length 2",
    ),
    (  # input modification: db accumulated in dY's first row
        "dense_backward",
        "db summed into dY[0]",
        mutate(DENSE, _DB, "db = dY[0]\n    for row in dY[1:]:\n        db += row"),
        "changed its argument dY in place",
    ),
    (  # aliasing
        "dense_backward",
        "db is dY itself",
        mutate(DENSE, _DB, "db = dY"),
        "returned its argument dY itself",
    ),
    (  # dtype: a float64 vector of ones upcasts float32
        "dense_backward",
        "db by a float64 ones vector",
        mutate(DENSE, _DB, "db = np.ones(len(dY)) @ dY"),
        "dtype float64, expected float32",
    ),
    # ------------------------------------------------------- activation_backward
    (
        "activation_backward",
        "derivative forgotten",
        mutate(ACT, _RELU, "1.0 * dA", _SIGMOID, "1.0 * dA", _TANH, "1.0 * dA"),
        "your dZ equals dA",
    ),
    (
        "activation_backward",
        "tanh from the pre-activation",
        mutate(ACT, _TANH, "dA * (1 - Z**2)"),
        "not the pre-activation Z",
    ),
    (
        "activation_backward",
        "sigmoid' at the post-activation",
        mutate(ACT, _SIGMOID, "dA * F.sigmoid(A) * (1 - F.sigmoid(A))"),
        "you evaluated sigmoid' at A",
    ),
    (
        "activation_backward",
        "sigmoid formula with Z",
        mutate(ACT, _SIGMOID, "dA * Z * (1 - Z)"),
        "takes the output A = sigmoid(Z), not Z",
    ),
    (
        "activation_backward",
        "relu mask from the gradient",
        mutate(ACT, _RELU, "np.where(dA > 0, dA, 0)"),
        "the mask comes from the forward pass",
    ),
    (
        "activation_backward",
        "derivative alone",
        mutate(ACT, _RELU, "(Z > 0).astype(Z.dtype)", _SIGMOID, "A * (1 - A)", _TANH, "1 - A**2"),
        "multiply it by the upstream gradient dA",
    ),
    (
        "activation_backward",
        "unknown name passes silently",
        mutate(ACT, _RAISE, "return np.zeros_like(dA)"),
        "must raise ValueError",
    ),
    (  # the value at the kink: the table says relu'(0) = 0
        "activation_backward",
        "relu mask Z >= 0",
        mutate(ACT, _RELU, "np.where(Z >= 0, dA, 0).astype(dA.dtype)"),
        "not Z >= 0",
    ),
    (  # dtype
        "activation_backward",
        "float64 relu mask",
        mutate(ACT, _RELU, "dA * (Z > 0).astype(float)"),
        "dtype float64, expected float32",
    ),
    (  # input modification
        "activation_backward",
        "relu zeroes dA in place",
        mutate(ACT, f"return {_RELU}", "dA[Z <= 0] = 0\n        return dA"),
        "changed its argument dA in place",
    ),
    (  # the whole range: sigmoid' recomputed from Z overflows at Z = -800
        "activation_backward",
        "sigmoid' from exp(-Z)",
        mutate(ACT, _SIGMOID, "dA * np.exp(-Z) / (1 + np.exp(-Z)) ** 2"),
        "an intermediate value overflowed",
    ),
    # --------------------------------------------------------------- ce_backward
    ("ce_backward", "not divided by N", mutate(CE, _CE_MEAN, "return dZ"), "N times too large"),
    (
        "ce_backward",
        "sign flipped",
        mutate(CE, _CE_MEAN, "return -dZ / Z.dtype.type(N)"),
        "the wrong sign",
    ),
    ("ce_backward", "no one-hot", mutate(CE, _CE_ONEHOT, "pass"), "forgot to subtract the one-hot"),
    (
        "ce_backward",
        "1 subtracted everywhere",
        mutate(CE, _CE_ONEHOT, "dZ -= 1"),
        "subtracted 1 from every entry",
    ),
    (
        "ce_backward",
        "divided by N * C",
        mutate(CE, _CE_MEAN, "return dZ / Z.size"),
        "you divided by N * C",
    ),
    ("ce_backward", "exp without the max", mutate(CE, _CE_EXP, "e = np.exp(Z)"), "each row's max"),
    (  # the whole range: one max for the whole batch underflows whole rows
        "ce_backward",
        "one max for the batch",
        mutate(CE, "Z.max(axis=1, keepdims=True)", "Z.max()"),
        "each row's own max",
    ),
    (  # input modification
        "ce_backward",
        "shifts Z in place",
        mutate(CE, _CE_EXP, "Z -= Z.max(axis=1, keepdims=True)\n    e = np.exp(Z)"),
        "ce_backward changed its argument Z in place",
    ),
    (  # data edge case: a batch that lacks the last classes
        "ce_backward",
        "one-hot of y.max() + 1 classes",
        mutate(CE, _CE_ONEHOT, "dZ = dZ - np.eye(y.max() + 1)[y]"),
        "one column per class, C = 5",
    ),
    (  # dtype: a float64 one-hot upcasts float32
        "ce_backward",
        "float64 one-hot",
        mutate(CE, _CE_ONEHOT, "dZ = dZ - np.eye(Z.shape[1])[y]"),
        "dtype float64, expected float32",
    ),
    (  # a near miss: named as such, not as an overflow
        "ce_backward",
        "epsilon in the softmax",
        mutate(CE, "e / e.sum(axis=1, keepdims=True)", "e / (e.sum(axis=1, keepdims=True) + 1e-8)"),
        "close to the right one (within 1e-5) but not within float64",
    ),
    # -------------------------------------------------------------- mlp_backward
    (
        "mlp_backward",
        "ReLU skipped on the way back",
        mutate(MLP, "dZ1 = dA1 * (Z1 > 0)", "dZ1 = dA1"),
        "you skipped the ReLU",
    ),
    (
        "mlp_backward",
        "mask from the gradient",
        mutate(MLP, "dZ1 = dA1 * (Z1 > 0)", "dZ1 = np.where(dA1 > 0, dA1, 0)"),
        "your ReLU mask comes from the gradient",
    ),
    (
        "mlp_backward",
        "dW2 from the pre-activation",
        mutate(MLP, "dW2 = A1.T @ dZ2", "dW2 = Z1.T @ dZ2"),
        "uses Z1, the pre-activation",
    ),
    (
        "mlp_backward",
        "loss gradient not divided by N",
        mutate(MLP, "dZ2 /= N", "dZ2 = dZ2"),
        "N times too large",
    ),
    (
        "mlp_backward",
        "divided by N twice",
        mutate(
            MLP,
            "dW2 = A1.T @ dZ2",
            "dW2 = A1.T @ dZ2 / N",
            "db2 = dZ2.sum(axis=0)",
            "db2 = dZ2.sum(axis=0) / N",
            "dW1 = X.T @ dZ1",
            "dW1 = X.T @ dZ1 / N",
            "db1 = dZ1.sum(axis=0)",
            "db1 = dZ1.sum(axis=0) / N",
        ),
        "divided by N twice",
    ),
    (
        "mlp_backward",
        "bias gradients averaged",
        mutate(
            MLP,
            "db1 = dZ1.sum(axis=0)",
            "db1 = dZ1.mean(axis=0)",
            "db2 = dZ2.sum(axis=0)",
            "db2 = dZ2.mean(axis=0)",
        ),
        "your bias gradients are means",
    ),
    (
        "mlp_backward",
        "dW1 transposed",
        mutate(MLP, "dW1 = X.T @ dZ1", "dW1 = dZ1.T @ X"),
        "your weight gradients are transposed",
    ),
    (
        "mlp_backward",
        "W2 not transposed",
        mutate(MLP, 'dA1 = dZ2 @ params["W2"].T', 'dA1 = dZ2 @ params["W2"]'),
        "two shapes do not fit",
    ),
    (
        "mlp_backward",
        "forward without the ReLU",
        mutate(MLP, "A1 = np.maximum(Z1, 0)", "A1 = Z1"),
        "your logits skip the ReLU",
    ),
    (  # a wrong forward with a right backward: the forward is named
        "mlp_backward",
        "forward with |Z1|",
        mutate(MLP, "A1 = np.maximum(Z1, 0)", "A1 = np.abs(Z1)"),
        "fix mlp_forward first",
    ),
    (  # input modification: the cache (its Z2 is also the caller's logits)
        "mlp_backward",
        "backward shifts the cached Z2",
        mutate(MLP, _MLP_EXP, "Z2 -= Z2.max(axis=1, keepdims=True)\n    e = np.exp(Z2)"),
        "mlp_backward changed its argument cache[3] in place",
    ),
    (  # data edge case
        "mlp_backward",
        "one-hot of y.max() + 1 classes",
        mutate(MLP, _MLP_ONEHOT, "dZ2 = dZ2 - np.eye(y.max() + 1)[y]"),
        "one column per class, C = 4",
    ),
    (  # dtype
        "mlp_backward",
        "float64 one-hot",
        mutate(MLP, _MLP_ONEHOT, "dZ2 = dZ2 - np.eye(Z2.shape[1])[y]"),
        "dtype float64, expected float32",
    ),
    # ---------------------------------------------------------------- train_step
    ("train_step", "+ instead of -", mutate(STEP, _UPDATE, _UPDATE.replace("-=", "+=")), "uphill"),
    (
        "train_step",
        "lr forgotten",
        mutate(STEP, _UPDATE, "params[name] -= grads[name]"),
        "your step ignores lr",
    ),
    (
        "train_step",
        "summed loss",
        mutate(STEP, "y].mean()", "y].sum()"),
        "the sum over the batch",
    ),
    (
        "train_step",
        "loss after the update",
        mutate(
            STEP,
            "    return float(loss)",
            "    log_p = F.log_softmax(forward(params, X)[0], backend='numpy')\n"
            "    return float(-log_p[np.arange(len(y)), y].mean())",
        ),
        "computed after the update",
    ),
    (
        "train_step",
        "a new dict instead of an update",
        mutate(STEP, _LOOP, "params = {k: v - lr * grads[k] for k, v in params.items()}"),
        "left the caller's parameter arrays unchanged",
    ),
    (  # in place is what the text asks: a new array in the dict leaves the caller's
        "train_step",
        "entries rebound to new arrays",
        mutate(STEP, _UPDATE, "params[name] = params[name] - lr * grads[name]"),
        "only puts a new array into your dict",
    ),
    (
        "train_step",
        "biases not updated",
        mutate(STEP, "for name in params:", 'for name in ("W1", "W2"):'),
        'params["b1"] did not change',
    ),
    # ----------------------------------------------------------- bias_grad_numba
    (
        "bias_grad_numba",
        "range instead of prange",
        mutate(BIAS, "for c in prange(chunks):", "for c in range(chunks):"),
        "Numba found no prange loop",
    ),
    (
        "bias_grad_numba",
        "not parallel=True",
        mutate(BIAS, "@njit(parallel=True)", "@njit"),
        "compiled without parallel=True",
    ),
    ("bias_grad_numba", "no decorator", mutate(BIAS, _DECORATOR, ""), "not a Numba function"),
    (  # a race, judged by behaviour on large inputs
        "bias_grad_numba",
        "prange over the rows (a race)",
        M("""
        @njit(parallel=True)
        def bias_grad_numba(dY):
            n, h = dY.shape
            db = np.zeros(h, dY.dtype)
            for i in prange(n):
                for j in range(h):
                    db[j] += dY[i, j]
            return db
        """),
        "(a race",
    ),
    (  # the chunks' loop form with one row of partial sums for all: a race again
        "bias_grad_numba",
        "one row of partial sums shared by the chunks",
        mutate(
            BIAS,
            "partial[c, j] += dY[i, j]",
            "partial[0, j] += dY[i, j]",
        ),
        "(a race",
    ),
    (
        "bias_grad_numba",
        "sum never reset",
        mutate(
            COLUMNS,
            "    for j in prange(h):",
            "    s = 0.0\n    for j in range(h):",
            "        s = 0.0\n",
            "",
            "for i in range(n):",
            "for i in prange(n):",
        ),
        "start each column's sum at 0",
    ),
    (  # a prange(1) wrapper around the serial loop
        "bias_grad_numba",
        "prange(1) wrapper",
        mutate(
            COLUMNS,
            "    for j in prange(h):  # one column per iteration: no two threads share an output",
            "    for _ in prange(1):\n      for j in range(h):",
        ),
        "has a single iteration",
    ),
    (  # off by one: the last element is never written
        "bias_grad_numba",
        "prange(h - 1)",
        mutate(COLUMNS, "for j in prange(h):", "for j in prange(h - 1):"),
        "some output elements are never written",
    ),
    # ---------------------------------------------------------- softmax_backward
    (
        "softmax_backward",
        "the Jacobian's diagonal only",
        mutate(SOFTMAX, _SM, "dP * P * (1 - P)"),
        "the diagonal of softmax's Jacobian only",
    ),
    (
        "softmax_backward",
        "quotient rule's sign",
        mutate(SOFTMAX, _SM, "P * (dP + (dP * P).sum(axis=1, keepdims=True))"),
        "the row-sum term has the wrong sign",
    ),
    (
        "softmax_backward",
        "sum over the batch",
        mutate(SOFTMAX, _SM, "P * (dP - (dP * P).sum(axis=0, keepdims=True))"),
        "your sum runs over the batch (axis=0)",
    ),
    (
        "softmax_backward",
        "row sum of dP unweighted",
        mutate(SOFTMAX, _SM, "P * (dP - dP.sum(axis=1, keepdims=True))"),
        "adds up dP alone",
    ),
    (
        "softmax_backward",
        "the factor P_c forgotten",
        mutate(SOFTMAX, _SM, "dP - (dP * P).sum(axis=1, keepdims=True)"),
        "misses the factor P_c",
    ),
    (
        "softmax_backward",
        "row sums without keepdims",
        mutate(SOFTMAX, _SM, "P * (dP - (dP * P).sum(axis=1))"),
        "keepdims=True",
    ),
    (  # input modification
        "softmax_backward",
        "dP updated in place",
        mutate(
            SOFTMAX,
            f"return {_SM}",
            "dP -= (dP * P).sum(axis=1, keepdims=True)\n    return P * dP",
        ),
        "changed its argument dP in place",
    ),
    (  # the explicit Jacobian, with a float64 identity: float32 becomes float64
        "softmax_backward",
        "a float64 Jacobian",
        mutate(
            SOFTMAX,
            f"return {_SM}",
            "J = P[:, :, None] * np.eye(P.shape[1]) - P[:, :, None] * P[:, None, :]\n"
            '    return np.einsum("nkc,nk->nc", J, dP)',
        ),
        "dtype float64, expected float32",
    ),
    # ----------------------------------------------------- l2_normalize_backward
    (
        "l2_normalize_backward",
        "the norm taken as a constant",
        mutate(L2, _L2, "dY / r"),
        "as if the norm were a constant",
    ),
    (
        "l2_normalize_backward",
        "quotient rule's sign",
        mutate(L2, _L2, "(dY + Y * (Y * dY).sum(axis=1, keepdims=True)) / r"),
        "the term from the norm has the wrong sign",
    ),
    (
        "l2_normalize_backward",
        "1 / ||x|| forgotten",
        mutate(L2, _L2, "dY - Y * (Y * dY).sum(axis=1, keepdims=True)"),
        "misses the factor 1 / ||x||",
    ),
    (
        "l2_normalize_backward",
        "x where y belongs",
        mutate(L2, _L2, "(dY - X * (X * dY).sum(axis=1, keepdims=True)) / r"),
        "uses x where y = x / ||x|| belongs",
    ),
    (
        "l2_normalize_backward",
        "d(1/r) = -x / r**2",
        mutate(L2, _L2, "dY / r - Y * (Y * dY).sum(axis=1, keepdims=True)"),
        "not -x / r^2",
    ),
    (
        "l2_normalize_backward",
        "the norm of the whole batch",
        mutate(L2, _L2R, "r = np.sqrt((X * X).sum())"),
        "the norm of the whole batch",
    ),
    (  # input modification
        "l2_normalize_backward",
        "dY updated in place",
        mutate(
            L2,
            f"return {_L2}",
            "dY -= Y * (Y * dY).sum(axis=1, keepdims=True)\n    return dY / r",
        ),
        "changed its argument dY in place",
    ),
]


(
    test_catalogue_has_at_least_four_mutants_per_exercise,
    test_the_solutions_pass_every_check,
    test_mutant_fails_its_own_exercise_only_and_shows_its_hint,
) = catalogue_tests(SET, MUTANTS)


def test_a_wrong_forward_is_not_blamed_on_the_backward_pass():
    """mlp_forward with |Z1| and a right mlp_backward: the forward's check names |Z1|, and
    the backward's checks say to fix the forward first, not a backward mistake."""
    source = mutate(MLP, "A1 = np.maximum(Z1, 0)", "A1 = np.abs(Z1)")
    ns = SET.solved()
    exec(_compile(source, "<mutant of answer:mlp_backward>"), ns)
    verdict = SET.verdict("mlp_backward", ns)
    assert "your hidden layer computes |Z1|" in verdict, verdict
    for wrong in ("you skipped the ReLU", "uses Z1, the pre-activation", "go backwards one"):
        assert wrong not in verdict, verdict


# ------------------------------------------------------- correct, written differently

ALTERNATIVES = [
    (
        "dense_backward",
        "einsum, np.dot and a ones vector of dY's dtype",
        mutate(
            DENSE,
            _DX,
            'dX = np.einsum("nh,dh->nd", dY, W)',
            _DW,
            "dW = np.dot(X.T, dY)",
            _DB,
            "db = dY.T @ np.ones(len(dY), dY.dtype)",
        ),
    ),
    (
        "dense_backward",
        "a loop over the rows into a new array",
        mutate(
            DENSE, _DB, "db = np.zeros(W.shape[1], dY.dtype)\n    for row in dY:\n        db += row"
        ),
    ),
    (
        "activation_backward",
        "boolean mask products, F.sigmoid and np.tanh from Z",
        mutate(
            ACT,
            _RELU,
            "dA * (A > 0)",
            _SIGMOID,
            "dA * F.sigmoid(Z) * (1 - F.sigmoid(Z))",
            _TANH,
            "dA * (1 - np.tanh(Z) ** 2)",
        ),
    ),
    (
        "activation_backward",
        "a dict of derivatives",
        M("""
        def activation_backward(dA, Z, A, activation):
            derivatives = {
                "relu": lambda: Z > 0,
                "sigmoid": lambda: A * (1 - A),
                "tanh": lambda: 1 - A * A,
            }
            if activation not in derivatives:
                raise ValueError(activation)
            return dA * derivatives[activation]()
        """),
    ),
    (
        "ce_backward",
        "F.softmax and a one-hot of Z's dtype",
        M("""
        def ce_backward(Z, y):
            Y = np.eye(Z.shape[1], dtype=Z.dtype)[y]
            return (F.softmax(Z) - Y) / len(Z)
        """),
    ),
    (
        "ce_backward",
        "exp of F.log_softmax, computed in float64 and cast back",
        M("""
        def ce_backward(Z, y):
            P = np.exp(F.log_softmax(Z.astype(np.float64), axis=1))
            P[np.arange(len(y)), y] -= 1.0
            return (P / len(y)).astype(Z.dtype)
        """),
    ),
    (
        "mlp_backward",
        "a dict cache, F.relu, np.where and F.softmax",
        M("""
        def mlp_forward(params, X):
            Z1 = X @ params["W1"] + params["b1"]
            A1 = F.relu(Z1)
            return A1 @ params["W2"] + params["b2"], {"X": X, "Z1": Z1, "A1": A1}


        def mlp_backward(params, cache, y):
            A1 = cache["A1"]
            Z2 = A1 @ params["W2"] + params["b2"]
            N, C = Z2.shape
            dZ2 = (F.softmax(Z2) - np.eye(C, dtype=Z2.dtype)[y]) / N
            dZ1 = np.where(cache["Z1"] > 0, dZ2 @ params["W2"].T, 0).astype(A1.dtype)
            return {
                "W1": cache["X"].T @ dZ1,
                "b1": dZ1.sum(axis=0),
                "W2": A1.T @ dZ2,
                "b2": dZ2.sum(axis=0),
            }
        """),
    ),
    (
        "train_step",
        "log-sum-exp by hand, updates through grads.items() and np.subtract(out=)",
        M("""
        def train_step(params, X, y, lr, forward, backward):
            Z, cache = forward(params, X)
            m = Z.max(axis=1, keepdims=True)
            lse = m[:, 0] + np.log(np.exp(Z - m).sum(axis=1))
            loss = np.mean(lse - Z[np.arange(len(y)), y])
            for name, g in backward(params, cache, y).items():
                np.subtract(params[name], lr * g, out=params[name])
            return loss
        """),
    ),
    (
        "train_step",
        "a slice assignment",
        mutate(STEP, _UPDATE, "params[name][...] = params[name] - lr * grads[name]"),
    ),
    (  # per-thread partial sums by thread id: the scan calls partial[t, j] shared, it is not
        "bias_grad_numba",
        "partial sums per thread id",
        M("""
        from numba import get_num_threads, get_thread_id


        @njit(parallel=True)
        def bias_grad_numba(dY):
            n, h = dY.shape
            partial = np.zeros((get_num_threads(), h))
            for i in prange(n):
                t = get_thread_id()
                for j in range(h):
                    partial[t, j] += dY[i, j]
            db = np.empty(h, dY.dtype)
            for j in range(h):
                s = 0.0
                for t in range(partial.shape[0]):
                    s += partial[t, j]
                db[j] = s
            return db
        """),
    ),
]


ALTERNATIVES += [
    ("bias_grad_numba", "one column per iteration (race-free, slow)", COLUMNS),
    (  # nnlib's layout, another decorator, a preallocated output of dY's dtype
        "bias_grad_numba",
        "blocks of 16 adjacent columns, numba.jit(nopython=True, parallel=True)",
        M("""
        import numba


        @numba.jit(nopython=True, parallel=True)
        def bias_grad_numba(dY):
            n, h = dY.shape
            db = np.zeros_like(dY[0])
            for jb in prange((h + 15) // 16):
                j0, j1 = 16 * jb, min(16 * jb + 16, h)
                s = np.zeros(16)
                for i in range(n):
                    for j in range(j0, j1):
                        s[j - j0] += dY[i, j]
                db[j0:j1] = s[: j1 - j0]
            return db
        """),
    ),
    (
        "softmax_backward",
        "the explicit Jacobian in P's dtype",
        M("""
        def softmax_backward(dP, P):
            C = P.shape[1]
            J = P[:, :, None] * np.eye(C, dtype=P.dtype) - P[:, :, None] * P[:, None, :]
            return np.einsum("nkc,nk->nc", J, dP)
        """),
    ),
    (
        "softmax_backward",
        "P * dP minus P times the row sums, as a column",
        M("""
        def softmax_backward(dP, P):
            return P * dP - P * np.sum(P * dP, axis=-1)[:, None]
        """),
    ),
    (
        "l2_normalize_backward",
        "np.linalg.norm and -x (x . dY) / r**3",
        M("""
        def l2_normalize_backward(dY, X):
            r = np.linalg.norm(X, axis=1, keepdims=True)
            return dY / r - X * np.sum(X * dY, axis=1, keepdims=True) / r**3
        """),
    ),
    (
        "l2_normalize_backward",
        "one row at a time",
        M("""
        def l2_normalize_backward(dY, X):
            dX = np.empty_like(X)
            for n in range(len(X)):
                r = np.sqrt(X[n] @ X[n])
                y = X[n] / r
                dX[n] = (dY[n] - y * (y @ dY[n])) / r
            return dX
        """),
    ),
]

test_a_correct_alternative_passes_every_check = alternatives_test(SET, ALTERNATIVES)


# ------------------------------------------------------ nnlib's own version, named

NNLIB_CALLS = [
    (
        "dense_backward",
        mutate(
            DENSE,
            "    ### BEGIN SOLUTION\n",
            "    ### BEGIN SOLUTION\n    from nnlib.ops.dense import dense_backward_ref\n\n"
            "    return dense_backward_ref(dY, X, W, dY, 0)\n",
        ),
        "calls nnlib.ops.dense.dense_backward_ref",
    ),
    (
        "activation_backward",
        mutate(ACT, f"return {_RELU}", "return F.relu_backward(dA, Z)"),
        "calls nnlib.functional.relu_backward",
    ),
    (  # a numerical gradient is nnlib's answer too
        "activation_backward",
        mutate(
            ACT,
            f"return {_SIGMOID}",
            "from nnlib.gradient_check import numerical_gradient\n\n"
            "        return numerical_gradient(lambda z: np.sum(dA * F.sigmoid(z)), Z)",
        ),
        "calls nnlib.gradient_check.numerical_gradient",
    ),
    (
        "ce_backward",
        M("""
        def ce_backward(Z, y):
            from nnlib._backend import dispatch

            return dispatch("softmax_cross_entropy", "numpy")(Z, y, 1 / len(Z), np.zeros(2))
        """),
        "calls nnlib._backend.dispatch",
    ),
    (
        "mlp_backward",
        mutate(MLP, "dZ1 = dA1 * (Z1 > 0)", "dZ1 = F.relu_backward(dA1, Z1)"),
        "calls nnlib.functional.relu_backward",
    ),
    (
        "softmax_backward",
        mutate(SOFTMAX, f"return {_SM}", "return F.softmax_backward(dP, np.log(P))"),
        "calls nnlib.functional.softmax_backward",
    ),
]


@pytest.mark.parametrize(
    ("exercise", "source", "named"), NNLIB_CALLS, ids=[f"{e}: {n}" for e, _, n in NNLIB_CALLS]
)
def test_an_answer_that_calls_nnlibs_version_is_named_and_fails(exercise, source, named):
    ns = SET.solved()
    exec(_compile(source, f"<nnlib answer:{exercise}>"), ns)
    verdict = SET.verdict(exercise, ns)
    assert verdict is not None and named in verdict, verdict
