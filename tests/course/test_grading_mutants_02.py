"""Wrong-answer catalogue for ``solutions/02_forward_losses.ipynb``: each typical mistake
fails its own exercise only, and the feedback names it (see ``mutant_harness.py``).

Mutants are edits of the solution's answer cell (``mutate``), so the planted defect is
what the line shows. ``ALTERNATIVES`` are correct answers written differently from the
solution: each passes every check of its exercise.
"""

from __future__ import annotations

import pytest
from mutant_harness import ExerciseSet, M, _compile, alternatives_test, catalogue_tests, mutate

SET = ExerciseSet("02_forward_losses.ipynb")
A = SET.answers

DENSE = A["dense_forward"]
MSE = A["mse"]
LOGSM = A["log_softmax"]
CE = A["softmax_cross_entropy"]
ACC = A["accuracy"]
NUMBA = A["log_softmax_numba"]
BCE = A["bce_with_logits"]
LIMIT = A["largest_safe_logit"]

# the lines of the solutions that the mutants edit
_SHIFT = "shifted = z - z.max(axis=-1, keepdims=True)"
_LOGSUM = "np.log(np.exp(shifted).sum(axis=-1, keepdims=True))"
_CE_SHIFT = "shifted = z - z.max(axis=1, keepdims=True)"
_CE_LOGP = "logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))"
_CE_ONEHOT = "dz = np.exp(logp)\n    dz[np.arange(n), y] -= 1\n"
_ACC = "np.mean(z.argmax(axis=1) == y)"
_BCE = "return np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z)))"
_ROW = "z = np.array([x, 0.0], dtype=dtype)"

MUTANTS = [
    # ---------------------------------------------------------------- dense_forward
    ("dense_forward", "no bias", mutate(DENSE, "X @ W + b", "X @ W"), "you left out the bias"),
    (
        "dense_forward",
        "ReLU inside",
        mutate(DENSE, "X @ W + b", "np.maximum(X @ W + b, 0)"),
        "a dense layer is linear",
    ),
    (
        "dense_forward",
        "bias subtracted",
        mutate(DENSE, "X @ W + b", "X @ W - b"),
        "you subtracted the bias",
    ),
    (
        "dense_forward",
        "transposed output",
        mutate(DENSE, "X @ W + b", "(X @ W + b).T"),
        "your output is transposed",
    ),
    (  # dtype
        "dense_forward",
        "float64 upcast",
        mutate(DENSE, "X @ W + b", "X.astype(np.float64) @ W + b"),
        "dtype float64, expected float32",
    ),
    (  # input modification
        "dense_forward",
        "clears X after use",
        mutate(
            DENSE, "return X @ W + b", "out = X @ W + b\n    X[:] = 0  # free it\n    return out"
        ),
        "dense_forward changed its argument X in place",
    ),
    (  # shape generality: the empty batch
        "dense_forward",
        "a list of rows",
        mutate(DENSE, "return X @ W + b", "return np.array([x @ W + b for x in X])"),
        "for an empty batch (N = 0)",
    ),
    # -------------------------------------------------------------------------- mse
    ("mse", "sum instead of mean", mutate(MSE, "np.mean(", "np.sum("), "you summed the squares"),
    ("mse", "gradient without 2", mutate(MSE, "2 * diff", "diff"), "lacks the factor 2"),
    (
        "mse",
        "gradient not averaged",
        mutate(MSE, "2 * diff / diff.size", "2 * diff"),
        "not divided by the number of elements",
    ),
    ("mse", "gradient sign", mutate(MSE, "2 * diff", "-2 * diff"), "the wrong sign"),
    (
        "mse",
        "divided by rows",
        mutate(MSE, "/ diff.size", "/ len(diff)"),
        "divided by the number of rows",
    ),
    (
        "mse",
        "RMSE",
        mutate(MSE, "float(np.mean(diff**2))", "float(np.sqrt(np.mean(diff**2)))"),
        "leave out the square root",
    ),
    (
        "mse",
        "returns the gradient only",
        mutate(MSE, "return loss, grad", "return grad"),
        "return loss, grad",
    ),
    (  # a wrong forward with a right backward: the gradient check blames the loss
        "mse",
        "loss halved",
        mutate(MSE, "float(np.mean(diff**2))", "float(0.5 * np.mean(diff**2))"),
        "your loss is what is wrong",
    ),
    (  # input modification
        "mse",
        "difference in place",
        mutate(MSE, "diff = pred - target", "diff = pred\n    diff -= target"),
        "mse changed its argument pred in place",
    ),
    (  # dtype
        "mse",
        "float64 difference",
        mutate(MSE, "diff = pred - target", "diff = np.asarray(pred, dtype=float) - target"),
        "dtype float64, expected float32",
    ),
    (  # shape
        "mse",
        "flattened gradient",
        mutate(MSE, "grad = 2 * diff / diff.size", "grad = (2 * diff / diff.size).ravel()"),
        "your gradient is flattened",
    ),
    # ------------------------------------------------------------------ log_softmax
    (  # stability: overflows, and the hint says so only because the output is inf
        "log_softmax",
        "no max shift",
        mutate(LOGSM, _SHIFT, "shifted = z"),
        "subtract each row's maximum",
    ),
    (
        "log_softmax",
        "wrong axis",
        mutate(LOGSM, "z.max(axis=-1,", "z.max(axis=0,", "sum(axis=-1,", "sum(axis=0,"),
        "normalise each row",
    ),
    (
        "log_softmax",
        "log-sum left out",
        mutate(LOGSM, f"shifted - {_LOGSUM}", "shifted"),
        "left out - log(sum(exp(z - max)))",
    ),
    (
        "log_softmax",
        "softmax, not its log",
        mutate(
            LOGSM,
            f"return shifted - {_LOGSUM}",
            "e = np.exp(shifted)\n    return e / e.sum(axis=-1, keepdims=True)",
        ),
        "that is the softmax itself",
    ),
    (
        "log_softmax",
        "log of softmax",
        mutate(
            LOGSM,
            f"return shifted - {_LOGSUM}",
            "e = np.exp(z)\n    return np.log(e / e.sum(axis=-1, keepdims=True))",
        ),
        "log(softmax(z)) computed directly overflows",
    ),
    (  # stable, with a 1e-8 in the log: named as such, never "overflows"
        "log_softmax",
        "1e-8 inside the log",
        mutate(LOGSM, "keepdims=True))", "keepdims=True) + 1e-8)"),
        "you added a small constant (1e-8) inside the log",
    ),
    (
        "log_softmax",
        "log of a stable softmax plus 1e-8",
        mutate(
            LOGSM,
            f"return shifted - {_LOGSUM}",
            "e = np.exp(shifted)\n    return np.log(e / e.sum(axis=-1, keepdims=True) + 1e-8)",
        ),
        "you added a small constant (1e-8) inside the log",
    ),
    (  # stability: a shift by the batch's maximum leaves rows far below it at log(0)
        "log_softmax",
        "batch maximum",
        mutate(LOGSM, "z.max(axis=-1, keepdims=True)", "z.max()"),
        "the largest logit of the whole batch",
    ),
    (  # shape generality: axis=1 is the last axis only in 2-D
        "log_softmax",
        "axis=1 default",
        mutate(
            LOGSM,
            "def log_softmax(z):",
            "def log_softmax(z, axis=1):",
            "max(axis=-1,",
            "max(axis=axis,",
            "sum(axis=-1,",
            "sum(axis=axis,",
        ),
        "the last axis",
    ),
    (  # input modification
        "log_softmax",
        "shifts z in place",
        mutate(LOGSM, _SHIFT, "z -= z.max(axis=-1, keepdims=True)\n    shifted = z"),
        "log_softmax changed its argument z in place",
    ),
    (  # dtype
        "log_softmax",
        "float64 upcast",
        mutate(LOGSM, _SHIFT, "shifted = z.astype(np.float64) - z.max(axis=-1, keepdims=True)"),
        "dtype float64, expected float32",
    ),
    # -------------------------------------------------------- softmax_cross_entropy
    (
        "softmax_cross_entropy",
        "gradient not over N",
        mutate(CE, "dz / n", "dz"),
        "not divided by N",
    ),
    (
        "softmax_cross_entropy",
        "loss summed",
        mutate(CE, "y].mean()", "y].sum()"),
        "you summed over the batch",
    ),
    ("softmax_cross_entropy", "gradient sign", mutate(CE, "dz / n", "-dz / n"), "the wrong sign"),
    (
        "softmax_cross_entropy",
        "forgot the one-hot",
        mutate(CE, "    dz[np.arange(n), y] -= 1\n", ""),
        "forgot to subtract 1 at the true class",
    ),
    (
        "softmax_cross_entropy",
        "loss positive log-probability",
        mutate(CE, "loss = -logp", "loss = logp"),
        "your loss is negative",
    ),
    (  # stability
        "softmax_cross_entropy",
        "naive softmax",  # (its loss is nan: the hint may say overflow)
        mutate(
            CE,
            f"{_CE_SHIFT}\n    {_CE_LOGP}",
            "p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)\n    logp = np.log(p)",
        ),
        "overflows",
    ),
    (  # stability: a stable softmax, then its log: log(0) for a label far below the max
        "softmax_cross_entropy",
        "log of a stable softmax",
        mutate(
            CE,
            _CE_LOGP,
            "e = np.exp(shifted)\n    logp = np.log(e / e.sum(axis=1, keepdims=True))",
        ),
        "softmax rounds the small probabilities to 0",
    ),
    (  # stability: log(sum(exp(z))) shifted by the batch's maximum only
        "softmax_cross_entropy",
        "batch maximum",
        mutate(CE, "z.max(axis=1, keepdims=True)", "z.max()"),
        "the largest logit of the whole batch",
    ),
    (
        "softmax_cross_entropy",
        "1e-8 inside the log",
        mutate(CE, "keepdims=True))\n", "keepdims=True) + 1e-8)\n"),
        "you added a small constant (1e-8) inside the log",
    ),
    (  # input modification: told so, not "re-derive the gradient"
        "softmax_cross_entropy",
        "shifts the caller's logits in place",
        mutate(CE, _CE_SHIFT, "z -= z.max(axis=1, keepdims=True)\n    shifted = z"),
        "softmax_cross_entropy changed its argument z in place",
    ),
    (  # data edge case: a batch without the last class
        "softmax_cross_entropy",
        "one-hot of y.max() + 1 classes",
        mutate(CE, _CE_ONEHOT, "dz = np.exp(logp) - np.eye(y.max() + 1, dtype=z.dtype)[y]\n"),
        "np.eye(y.max() + 1) is too narrow",
    ),
    (  # dtype: np.eye is float64
        "softmax_cross_entropy",
        "float64 one-hot",
        mutate(CE, _CE_ONEHOT, "dz = np.exp(logp) - np.eye(z.shape[1])[y]\n"),
        "dtype float64, expected float32",
    ),
    (  # a wrong forward with a right backward
        "softmax_cross_entropy",
        "loss of the mean logit",
        mutate(CE, "loss = -logp[np.arange(n), y].mean()", "loss = -logp.mean()"),
        "your dz is the right derivative",
    ),
    # --------------------------------------------------------------------- accuracy
    (
        "accuracy",
        "count, not fraction",
        mutate(ACC, _ACC, "np.sum(z.argmax(axis=1) == y)"),
        "divide by N for a fraction",
    ),
    (
        "accuracy",
        "percentage",
        mutate(ACC, _ACC, f"100 * {_ACC}"),
        "you returned a percentage",
    ),
    ("accuracy", "argmin", mutate(ACC, "z.argmax(", "z.argmin("), "you used argmin"),
    (
        "accuracy",
        "max value vs label",
        mutate(ACC, "z.argmax(axis=1)", "z.max(axis=1)"),
        "compare its index (argmax)",
    ),
    (
        "accuracy",
        "per-example array",
        mutate(ACC, f"float({_ACC})", "z.argmax(axis=1) == y"),
        "reduce to a single number",
    ),
    # ------------------------------------------------------------ log_softmax_numba
    (
        "log_softmax_numba",
        "not compiled",
        mutate(NUMBA, "@njit(parallel=True)\n", ""),
        "@njit(parallel=True) on the line above",
    ),
    (
        "log_softmax_numba",
        "serial range",
        mutate(NUMBA, "prange(n)", "range(n)"),
        "`range` runs serially",
    ),
    (
        "log_softmax_numba",
        "no parallel=True",
        mutate(NUMBA, "@njit(parallel=True)", "@njit"),
        "compiled without parallel=True",
    ),
    (  # stability
        "log_softmax_numba",
        "no max shift",
        mutate(
            NUMBA,
            "np.exp(z[i, j] - m)",
            "np.exp(z[i, j])",
            "lse = m + np.log(s)",
            "lse = np.log(s)",
        ),
        "subtract each row's maximum",
    ),
    (
        "log_softmax_numba",
        "columns instead of rows",
        M("""
        @njit(parallel=True)
        def log_softmax_numba(z):
            n, c = z.shape
            out = np.empty_like(z)
            for j in prange(c):
                m = z[0, j]
                for i in range(1, n):
                    m = max(m, z[i, j])
                s = 0.0
                for i in range(n):
                    s += np.exp(z[i, j] - m)
                for i in range(n):
                    out[i, j] = z[i, j] - m - np.log(s)
            return out
        """),
        "normalise each row",
    ),
    (  # dtype
        "log_softmax_numba",
        "float64 output",
        mutate(NUMBA, "out = np.empty_like(z)", "out = np.empty((n, c))"),
        "dtype float64, expected float32",
    ),
    (  # input modification: the output written over the logits
        "log_softmax_numba",
        "writes into z",
        mutate(NUMBA, "out = np.empty_like(z)", "out = z  # no copy needed"),
        "log_softmax_numba changed its argument z in place",
    ),
    (  # the last row is never written
        "log_softmax_numba",
        "off by one",
        mutate(NUMBA, "prange(n)", "prange(n - 1)"),
        "are never written",
    ),
    (  # a prange(1) wrapper around a serial loop
        "log_softmax_numba",
        "prange(1) wrapper",
        M("""
        @njit(parallel=True)
        def log_softmax_numba(z):
            n, c = z.shape
            out = np.empty_like(z)
            for _ in prange(1):
                for i in range(n):
                    m = z[i, 0]
                    for j in range(1, c):
                        m = max(m, z[i, j])
                    s = 0.0
                    for j in range(c):
                        s += np.exp(z[i, j] - m)
                    for j in range(c):
                        out[i, j] = z[i, j] - m - np.log(s)
            return out
        """),
        "has a fixed number of iterations",
    ),
    (  # a race: one scratch row shared by every prange iteration
        "log_softmax_numba",
        "shared scratch buffer",
        M("""
        @njit(parallel=True)
        def log_softmax_numba(z):
            n, c = z.shape
            out = np.empty_like(z)
            row = np.empty(c)
            for i in prange(n):
                for j in range(c):
                    row[j] = z[i, j]
                m = row[0]
                for j in range(1, c):
                    m = max(m, row[j])
                s = 0.0
                for j in range(c):
                    s += np.exp(row[j] - m)
                for j in range(c):
                    out[i, j] = row[j] - m - np.log(s)
            return out
        """),
        "`row[j]` is written by every prange iteration",
    ),
    # ------------------------------------------------------------ bce_with_logits
    (  # stability: the definition as written
        "bce_with_logits",
        "through the sigmoid",
        mutate(
            BCE,
            _BCE,
            "s = 1 / (1 + np.exp(-z))\n    return -y * np.log(s) - (1 - y) * np.log(1 - s)",
        ),
        "Never take the sigmoid first",
    ),
    (  # stability: Keras' epsilon, finite but capped
        "bce_with_logits",
        "sigmoid clipped to [1e-7, 1 - 1e-7]",
        mutate(
            BCE,
            _BCE,
            "s = np.clip(1 / (1 + np.exp(-z)), 1e-7, 1 - 1e-7)\n"
            "    return -y * np.log(s) - (1 - y) * np.log(1 - s)",
        ),
        "you clipped sigmoid(z)",
    ),
    (
        "bce_with_logits",
        "1e-8 inside the logs",
        mutate(
            BCE,
            _BCE,
            "s = 1 / (1 + np.exp(-z))\n"
            "    return -y * np.log(s + 1e-8) - (1 - y) * np.log(1 - s + 1e-8)",
        ),
        "capped at -log(eps)",
    ),
    (  # a derivation step missed: e^-z where e^-|z| is needed
        "bce_with_logits",
        "e^-z, not e^-|z|",
        mutate(BCE, "np.exp(-np.abs(z))", "np.exp(-z)"),
        "The exponent must be -|z|",
    ),
    (  # stability: softplus(z) computed directly
        "bce_with_logits",
        "log(1 + e^z) - y z",
        mutate(BCE, _BCE, "return np.log1p(np.exp(z)) - y * z"),
        "log(1 + e^z) overflows",
    ),
    ("bce_with_logits", "y z sign", mutate(BCE, "- y * z", "+ y * z"), "the wrong sign"),
    (
        "bce_with_logits",
        "labels swapped",
        mutate(BCE, "- y * z", "- (1 - y) * z"),
        "you swapped y and 1 - y",
    ),
    (
        "bce_with_logits",
        "max(z, 0) left out",
        mutate(BCE, "np.maximum(z, 0) - y * z", "-y * z"),
        "you left out max(z, 0)",
    ),
    (  # shape: the mean, as nnlib's loss returns
        "bce_with_logits",
        "the mean",
        mutate(BCE, "return np.maximum", "return np.mean(np.maximum", ")))", "))))"),
        "you returned the mean of the losses",
    ),
    (  # dtype
        "bce_with_logits",
        "float64 upcast",
        mutate(BCE, _BCE, "z = z.astype(np.float64)\n    " + _BCE),
        "dtype float64, expected float32",
    ),
    (  # input modification: y z into y's memory
        "bce_with_logits",
        "y * z in place",
        mutate(BCE, _BCE, "y *= z\n    return np.maximum(z, 0) - y + np.log1p(np.exp(-np.abs(z)))"),
        "bce_with_logits changed its argument y in place",
    ),
    # --------------------------------------------------------- largest_safe_logit
    (  # the row built in float64 whatever the dtype
        "largest_safe_logit",
        "float64 row",
        mutate(LIMIT, _ROW, "z = np.array([x, 0.0])"),
        "that is float64's limit",
    ),
    (
        "largest_safe_logit",
        "whole numbers",
        mutate(
            LIMIT,
            "    lo, hi = 0.0, 1.0\n",
            "    x = 0\n    while finite(x + 1):\n        x += 1\n    return float(x)\n"
            "    lo, hi = 0.0, 1.0\n",
        ),
        "you searched in whole numbers",
    ),
    (
        "largest_safe_logit",
        "log10 of the largest float",
        M("""
        def largest_safe_logit(dtype):
            return float(np.log10(np.finfo(dtype).max))
        """),
        "that is log10 of the largest float",
    ),
    (
        "largest_safe_logit",
        "the largest float",
        M("""
        def largest_safe_logit(dtype):
            return float(np.finfo(dtype).max)
        """),
        "that is the largest float itself",
    ),
    (  # one number for all: the float32 limit written in
        "largest_safe_logit",
        "float32's limit for every dtype",
        M("""
        def largest_safe_logit(dtype):
            return 88.72
        """),
        "the same number for every dtype",
    ),
    # ------------------------------------------------- nnlib's own version, named
    (
        "log_softmax",
        "nnlib's log_softmax",
        M("""
        import nnlib.functional

        def log_softmax(z):
            return nnlib.functional.log_softmax(z, backend="numpy")
        """),
        "calls nnlib.functional.log_softmax",
    ),
    (
        "softmax_cross_entropy",
        "nnlib's loss",
        M("""
        from nnlib.losses import SoftmaxCrossEntropy

        def softmax_cross_entropy(z, y):
            loss = SoftmaxCrossEntropy()
            return loss(z, y), loss.backward()
        """),
        "calls nnlib.losses",
    ),
]


(
    test_catalogue_has_at_least_four_mutants_per_exercise,
    test_the_solutions_pass_every_check,
    test_mutant_fails_its_own_exercise_only_and_shows_its_hint,
) = catalogue_tests(SET, MUTANTS)


# ----------------------------------------------------------- correct alternatives

ALTERNATIVES = [
    ("dense_forward", "np.dot", mutate(DENSE, "X @ W + b", "np.dot(X, W) + b[None, :]")),
    ("dense_forward", "einsum", mutate(DENSE, "X @ W + b", 'np.einsum("nd,dh->nh", X, W) + b')),
    (
        "mse",
        "NumPy scalar loss, weak-typed factor",
        M("""
        def mse(pred, target):
            diff = pred - target
            return np.mean(np.square(diff)), diff * (2 / pred.size)
        """),
    ),
    (
        "mse",
        "sum over the shape's product",
        M("""
        def mse(pred, target):
            n, k = pred.shape
            diff = np.subtract(pred, target)
            return (diff * diff).sum() / (n * k), (diff + diff) / (n * k)
        """),
    ),
    (
        "log_softmax",
        "logaddexp.reduce",
        M("""
        def log_softmax(z):
            return z - np.logaddexp.reduce(z, axis=-1, keepdims=True)
        """),
    ),
    (
        "log_softmax",
        "scipy's logsumexp",
        M("""
        from scipy.special import logsumexp

        def log_softmax(z):
            return z - logsumexp(z, axis=-1, keepdims=True)
        """),
    ),
    (
        "log_softmax",
        "m + log(sum)",
        M("""
        def log_softmax(z):
            m = np.max(z, axis=-1, keepdims=True)
            return z - (m + np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True)))
        """),
    ),
    (
        "softmax_cross_entropy",
        "log-sum-exp, one-hot of z.shape[1] in z's dtype, NumPy scalar loss",
        M("""
        def softmax_cross_entropy(z, y):
            n, c = z.shape
            m = z.max(axis=1, keepdims=True)
            lse = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
            loss = np.mean(lse[:, 0] - z[np.arange(n), y])
            onehot = np.eye(c, dtype=z.dtype)[y]
            return loss, (np.exp(z - lse) - onehot) / n
        """),
    ),
    (
        "softmax_cross_entropy",
        "put_along_axis",
        M("""
        def softmax_cross_entropy(z, y):
            shifted = z - np.max(z, axis=-1, keepdims=True)
            logp = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
            picked = np.take_along_axis(logp, y[:, None], axis=1)
            dz = np.exp(logp)
            np.put_along_axis(dz, y[:, None], np.take_along_axis(dz, y[:, None], 1) - 1, 1)
            return float(-picked.mean()), dz / len(y)
        """),
    ),
    (
        "accuracy",
        "computed in float32",
        M("""
        def accuracy(z, y):
            return np.mean((np.argmax(z, axis=-1) == y).astype(np.float32))
        """),
    ),
    (
        "accuracy",
        "count_nonzero over len",
        M("""
        def accuracy(z, y):
            return np.count_nonzero(z.argmax(axis=1) == y) / len(y)
        """),
    ),
    (
        "log_softmax_numba",
        "a scratch row and row views per iteration",
        M("""
        @njit(parallel=True)
        def log_softmax_numba(z):
            n, c = z.shape
            out = np.empty_like(z)
            for i in prange(n):
                zi = z[i]
                oi = out[i]
                row = np.empty(c)
                m = zi[0]
                for j in range(1, c):
                    m = max(m, zi[j])
                s = 0.0
                for j in range(c):
                    row[j] = zi[j] - m
                    s += np.exp(row[j])
                for j in range(c):
                    oi[j] = row[j] - np.log(s)
            return out
        """),
    ),
    (
        "log_softmax_numba",
        "chunks of rows, np.empty(z.shape, z.dtype)",
        M("""
        @njit(parallel=True)
        def log_softmax_numba(z):
            n, c = z.shape
            out = np.empty(z.shape, z.dtype)
            chunk = 256
            for t in prange((n + chunk - 1) // chunk):
                for i in range(t * chunk, min(n, (t + 1) * chunk)):
                    m = np.max(z[i])
                    total = 0.0
                    for v in z[i]:
                        total += np.exp(v - m)
                    lse = m + np.log(total)
                    for j in range(c):
                        out[i, j] = z[i, j] - lse
            return out
        """),
    ),
    (
        "log_softmax_numba",
        "two parallel loops: the row's log-sum-exp, then one flat loop over the elements",
        M("""
        @njit(parallel=True)
        def log_softmax_numba(z):
            n, c = z.shape
            lse = np.empty(n)  # float64, one per row
            for i in prange(n):
                m = z[i, 0]
                for j in range(c):
                    if z[i, j] > m:
                        m = z[i, j]
                s = 0.0
                for j in range(c):
                    s += np.exp(z[i, j] - m)
                lse[i] = m + np.log(s)
            out = np.empty_like(z)
            for k in prange(n * c):
                i = k // c
                j = k % c
                out[i, j] = z[i, j] - lse[i]
            return out
        """),
    ),
    (
        "bce_with_logits",
        "logaddexp",
        M("""
        def bce_with_logits(z, y):
            return np.logaddexp(0, z) - y * z
        """),
    ),
    (
        "bce_with_logits",
        "softplus(-z) + (1 - y) z",
        M("""
        def bce_with_logits(z, y):
            return np.logaddexp(0, -z) + (1 - y) * z
        """),
    ),
    (
        "bce_with_logits",
        "np.where on the sign, log(1 + ...)",
        M("""
        def bce_with_logits(z, y):
            e = np.exp(-np.abs(z))  # <= 1
            return np.where(z >= 0, (1 - y) * z, -y * z) + np.log(1 + e)
        """),
    ),
    (
        "largest_safe_logit",
        "by analysis: ln of the largest float",
        M("""
        def largest_safe_logit(dtype):
            return float(np.log(np.finfo(dtype).max))
        """),
    ),
    (
        "largest_safe_logit",
        "a bisection that returns the first broken x",
        mutate(LIMIT, "range(60)", "range(20)", "    return lo\n", "    return hi\n"),
    ),
]


test_a_correct_alternative_passes_every_check = alternatives_test(SET, ALTERNATIVES)


# ------------------------------------------- no hint without the evidence for it

NOT_SAID = [
    # stable, with a 1e-8 in the log: its output is finite, so no word of overflowing
    ("log_softmax", "1e-8 inside the log", "overflow"),
    ("softmax_cross_entropy", "1e-8 inside the log", "overflow"),
    # shifting the caller's logits is reported as such, not as a wrong derivative
    ("softmax_cross_entropy", "shifts the caller's logits in place", "derive"),
    # a wrong loss with a right gradient: the gradient is not blamed
    ("mse", "loss halved", "differentiate your loss again"),
    ("softmax_cross_entropy", "loss of the mean logit", "derive d loss / d z again"),
    # a finite, capped loss is named as clipping, never as an overflow
    ("bce_with_logits", "sigmoid clipped to [1e-7, 1 - 1e-7]", "overflow"),
    ("bce_with_logits", "1e-8 inside the logs", "overflow"),
    # a wrong sign is not blamed on stability
    ("bce_with_logits", "y z sign", "Never take the sigmoid first"),
    # a float64 answer for every dtype is named as float64's, not as "one number for all"
    ("largest_safe_logit", "float64 row", "the same number for every dtype"),
]


@pytest.mark.parametrize(
    ("exercise", "mutant", "phrase"), NOT_SAID, ids=[f"{e}: {m}" for e, m, _ in NOT_SAID]
)
def test_the_feedback_names_no_mistake_without_its_evidence(exercise, mutant, phrase):
    (source,) = [src for e, m, src, _ in MUTANTS if (e, m) == (exercise, mutant)]
    ns = SET.solved()
    exec(_compile(source, f"<mutant of answer:{exercise}>"), ns)
    verdict = SET.verdict(exercise, ns)
    assert verdict is not None and phrase not in verdict, verdict
