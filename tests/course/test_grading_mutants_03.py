"""The catalogue of typical wrong answers (mutants) of ``solutions/03_backprop.ipynb``.

Each mutant replaces one answer cell. It must fail its own exercise, show its hint, and
leave every other exercise of the notebook passing. The checks are called in-process
(no kernel per mutant); ``test_grading.py`` proves the nbval path on the real notebooks.
"""

from __future__ import annotations

from mutant_harness import ExerciseSet, M, catalogue_tests

SET = ExerciseSet("03_backprop.ipynb")


_DENSE = """
def dense_backward(dY, X, W):
    dX = {dX}
    dW = {dW}
    db = {db}
    return dX, dW, db
"""


def dense(dX="dY @ W.T", dW="X.T @ dY", db="dY.sum(axis=0)"):
    return M(_DENSE.format(dX=dX, dW=dW, db=db))


_ACT = """
def activation_backward(dA, Z, A, activation):
    if activation == "relu":
        return {relu}
    if activation == "sigmoid":
        return {sigmoid}
    if activation == "tanh":
        return {tanh}
    {other}
"""


def act(
    relu="np.where(Z > 0, dA, 0).astype(dA.dtype)",
    sigmoid="dA * A * (1 - A)",
    tanh="dA * (1 - A**2)",
    other='raise ValueError(f"unknown activation {activation!r}")',
):
    return M(_ACT.format(relu=relu, sigmoid=sigmoid, tanh=tanh, other=other))


_CE = """
def ce_backward(Z, y):
    N = Z.shape[0]
    e = {exp}
    P = e / e.sum(axis=1, keepdims=True)
    {rest}
"""


def ce(
    rest="P[np.arange(N), y] -= 1\n    return P / N",
    exp="np.exp(Z - Z.max(axis=1, keepdims=True))",
):
    return M(_CE.format(exp=exp, rest=rest))


_MLP = """
def mlp_forward(params, X):
    Z1 = X @ params["W1"] + params["b1"]
    A1 = {A1}
    Z2 = A1 @ params["W2"] + params["b2"]
    return Z2, (X, Z1, A1, Z2)


def mlp_backward(params, cache, y):
    X, Z1, A1, Z2 = cache
    N = X.shape[0]
    e = np.exp(Z2 - Z2.max(axis=1, keepdims=True))
    dZ2 = e / e.sum(axis=1, keepdims=True)
    dZ2[np.arange(N), y] -= 1
    dZ2 = {dZ2}
    dW2 = {dW2}
    db2 = {db2}
    dA1 = {dA1}
    dZ1 = {dZ1}
    dW1 = {dW1}
    db1 = {db1}
    return {{"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}}
"""


def mlp(
    A1="np.maximum(Z1, 0)",
    dZ2="dZ2 / N",
    dW2="A1.T @ dZ2",
    db2="dZ2.sum(axis=0)",
    dA1='dZ2 @ params["W2"].T',
    dZ1="dA1 * (Z1 > 0)",
    dW1="X.T @ dZ1",
    db1="dZ1.sum(axis=0)",
):
    return M(_MLP.format(A1=A1, dZ2=dZ2, dW2=dW2, db2=db2, dA1=dA1, dZ1=dZ1, dW1=dW1, db1=db1))


_STEP = """
def train_step(params, X, y, lr, forward, backward):
    logits, cache = forward(params, X)
    log_p = F.log_softmax(logits, backend="numpy")
    loss = {loss}
    grads = backward(params, cache, y)
    {update}
    return float(loss)
"""
_UPDATE = "for name in params:\n        params[name] -= lr * grads[name]"


def step(loss="-log_p[np.arange(len(y)), y].mean()", update=_UPDATE):
    return M(_STEP.format(loss=loss, update=update))


_BIAS = """
@njit{options}
def bias_grad_numba(dY):
    n, h = dY.shape
    db = {alloc}
    for j in {loop}(h):
        s = 0.0
        for i in range(n):
            s += dY[i, j]
        db[j] = s
    return db
"""


def bias(options="(parallel=True)", alloc="np.empty(h, dY.dtype)", loop="prange"):
    return M(_BIAS.format(options=options, alloc=alloc, loop=loop))


# (exercise, mutant, answer cell source, text the feedback must show)
MUTANTS = [
    # ------------------------------------------------------------ dense_backward
    ("dense_backward", "dW transposed", dense(dW="dY.T @ X"), "that is dW transposed"),
    ("dense_backward", "db not summed", dense(db="dY"), "your db has shape (N, H)"),
    ("dense_backward", "db averaged", dense(db="dY.mean(axis=0)"), "mean of the rows of dY"),
    ("dense_backward", "db over the wrong axis", dense(db="dY.sum(axis=1)"), "axis=0, shape (H,)"),
    ("dense_backward", "dW divided by N", dense(dW="X.T @ dY / len(X)"), "your dW is divided by N"),
    ("dense_backward", "dX transposed", dense(dX="W @ dY.T"), "your dX is transposed"),
    (
        "dense_backward",
        "returns two arrays",
        M("""
        def dense_backward(dY, X, W):
            return X.T @ dY, dY.sum(axis=0)
        """),
        "of length 2",
    ),
    # ------------------------------------------------------- activation_backward
    (
        "activation_backward",
        "derivative forgotten",
        act(relu="dA", sigmoid="dA", tanh="dA"),
        "your dZ equals dA",
    ),
    (
        "activation_backward",
        "tanh from the pre-activation",
        act(tanh="dA * (1 - Z**2)"),
        "not the pre-activation Z",
    ),
    (
        "activation_backward",
        "sigmoid' at the post-activation",
        act(sigmoid="dA * F.sigmoid(A) * (1 - F.sigmoid(A))"),
        "you evaluated sigmoid' at A",
    ),
    (
        "activation_backward",
        "sigmoid formula with Z",
        act(sigmoid="dA * Z * (1 - Z)"),
        "takes the output A = sigmoid(Z), not Z",
    ),
    (
        "activation_backward",
        "relu mask from the gradient",
        act(relu="np.where(dA > 0, dA, 0)"),
        "the mask comes from the forward pass",
    ),
    (
        "activation_backward",
        "derivative alone",
        act(relu="(Z > 0).astype(Z.dtype)", sigmoid="A * (1 - A)", tanh="1 - A**2"),
        "multiply it by the upstream gradient dA",
    ),
    (
        "activation_backward",
        "unknown name passes silently",
        act(other="return dA"),
        "must raise ValueError",
    ),
    # --------------------------------------------------------------- ce_backward
    (
        "ce_backward",
        "not divided by N",
        ce(rest="P[np.arange(N), y] -= 1\n    return P"),
        "N times too large",
    ),
    (
        "ce_backward",
        "sign flipped",
        ce(rest="P[np.arange(N), y] -= 1\n    return -P / N"),
        "the wrong sign",
    ),
    ("ce_backward", "no one-hot", ce(rest="return P / N"), "forgot to subtract the one-hot"),
    (
        "ce_backward",
        "1 subtracted everywhere",
        ce(rest="return (P - 1) / N"),
        "subtracted 1 from every entry",
    ),
    (
        "ce_backward",
        "divided by N * C",
        ce(rest="P[np.arange(N), y] -= 1\n    return P / Z.size"),
        "you divided by N * C",
    ),
    ("ce_backward", "exp without the max", ce(exp="np.exp(Z)"), "subtract each row's max"),
    (
        "ce_backward",
        "shifts Z in place",
        M("""
        def ce_backward(Z, y):
            N = Z.shape[0]
            Z -= Z.max(axis=1, keepdims=True)
            P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
            P[np.arange(N), y] -= 1
            return P / N
        """),
        "ce_backward changed its input Z",
    ),
    # -------------------------------------------------------------- mlp_backward
    ("mlp_backward", "ReLU skipped on the way back", mlp(dZ1="dA1"), "you skipped the ReLU"),
    (
        "mlp_backward",
        "mask from the gradient",
        mlp(dZ1="np.where(dA1 > 0, dA1, 0)"),
        "your ReLU mask comes from the gradient",
    ),
    (
        "mlp_backward",
        "dW2 from the pre-activation",
        mlp(dW2="Z1.T @ dZ2"),
        "uses Z1, the pre-activation",
    ),
    ("mlp_backward", "loss gradient not divided by N", mlp(dZ2="dZ2"), "N times too large"),
    (
        "mlp_backward",
        "divided by N twice",
        mlp(
            dW2="A1.T @ dZ2 / N",
            db2="dZ2.sum(axis=0) / N",
            dW1="X.T @ dZ1 / N",
            db1="dZ1.sum(axis=0) / N",
        ),
        "divided by N twice",
    ),
    (
        "mlp_backward",
        "bias gradients averaged",
        mlp(db1="dZ1.mean(axis=0)", db2="dZ2.mean(axis=0)"),
        "your bias gradients are means",
    ),
    (
        "mlp_backward",
        "dW1 transposed",
        mlp(dW1="dZ1.T @ X"),
        "your weight gradients are transposed",
    ),
    ("mlp_backward", "W2 not transposed", mlp(dA1='dZ2 @ params["W2"]'), "two shapes do not fit"),
    ("mlp_backward", "forward without the ReLU", mlp(A1="Z1"), "your logits skip the ReLU"),
    # ---------------------------------------------------------------- train_step
    (
        "train_step",
        "+ instead of -",
        step(update="for name in params:\n        params[name] += lr * grads[name]"),
        "uphill",
    ),
    (
        "train_step",
        "lr forgotten",
        step(update="for name in params:\n        params[name] -= grads[name]"),
        "your step ignores lr",
    ),
    (
        "train_step",
        "summed loss",
        step(loss="-log_p[np.arange(len(y)), y].sum()"),
        "the sum over the batch",
    ),
    (
        "train_step",
        "loss after the update",
        M("""
        def train_step(params, X, y, lr, forward, backward):
            logits, cache = forward(params, X)
            grads = backward(params, cache, y)
            for name in params:
                params[name] -= lr * grads[name]
            log_p = F.log_softmax(forward(params, X)[0], backend="numpy")
            return float(-log_p[np.arange(len(y)), y].mean())
        """),
        "computed after the update",
    ),
    (
        "train_step",
        "a new dict instead of an update",
        step(update="params = {k: v - lr * grads[k] for k, v in params.items()}"),
        "left every parameter unchanged",
    ),
    (
        "train_step",
        "biases not updated",
        step(update='for name in ("W1", "W2"):\n        params[name] -= lr * grads[name]'),
        'params["b1"] did not change',
    ),
    # ----------------------------------------------------------- bias_grad_numba
    (
        "bias_grad_numba",
        "range instead of prange",
        bias(loop="range"),
        "Numba found no prange loop",
    ),
    ("bias_grad_numba", "not parallel=True", bias(options=""), "compiled without parallel=True"),
    (
        "bias_grad_numba",
        "no decorator",
        bias().replace("@njit(parallel=True)\n", ""),
        "not a Numba function",
    ),
    (
        "bias_grad_numba",
        "float64 output",
        bias(alloc="np.empty(h)"),
        "dtype float64, expected float32",
    ),
    (
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
    (
        "bias_grad_numba",
        "sums the rows",
        M("""
        @njit(parallel=True)
        def bias_grad_numba(dY):
            n, h = dY.shape
            db = np.empty(n, dY.dtype)
            for i in prange(n):
                s = 0.0
                for j in range(h):
                    s += dY[i, j]
                db[i] = s
            return db
        """),
        "your result sums each row",
    ),
    (
        "bias_grad_numba",
        "sum never reset",
        M("""
        @njit(parallel=True)
        def bias_grad_numba(dY):
            n, h = dY.shape
            db = np.empty(h, dY.dtype)
            s = 0.0
            for j in range(h):
                for i in prange(n):
                    s += dY[i, j]
                db[j] = s
            return db
        """),
        "start each column's sum at 0",
    ),
]


(
    test_catalogue_has_at_least_four_mutants_per_exercise,
    test_the_solutions_pass_every_check,
    test_mutant_fails_its_own_exercise_only_and_shows_its_hint,
) = catalogue_tests(SET, MUTANTS)
