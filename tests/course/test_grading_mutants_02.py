"""Wrong-answer catalogue for ``solutions/02_forward_losses.ipynb``: each typical mistake
fails its own exercise only, and the feedback names it (see ``mutant_harness.py``)."""

from __future__ import annotations

from mutant_harness import ExerciseSet, M, catalogue_tests

SET = ExerciseSet("02_forward_losses.ipynb")

_LSE = """
def log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
"""

MUTANTS = [
    # ---------------------------------------------------------------- dense_forward
    (
        "dense_forward",
        "no bias",
        M("def dense_forward(X, W, b):\n    return X @ W\n"),
        "you left out the bias",
    ),
    (
        "dense_forward",
        "ReLU inside",
        M("""
        def dense_forward(X, W, b):
            return np.maximum(X @ W + b, 0)
        """),
        "a dense layer is linear",
    ),
    (
        "dense_forward",
        "bias subtracted",
        M("def dense_forward(X, W, b):\n    return X @ W - b\n"),
        "you subtracted the bias",
    ),
    (
        "dense_forward",
        "transposed output",
        M("""
        def dense_forward(X, W, b):
            return (X @ W + b).T
        """),
        "your output is transposed",
    ),
    (
        "dense_forward",
        "float64 upcast",
        M("""
        def dense_forward(X, W, b):
            return X.astype(np.float64) @ W + b
        """),
        "dtype float64, expected float32",
    ),
    (
        "dense_forward",
        "in place",
        M("""
        def dense_forward(X, W, b):
            X[:] = X
            b += 0.0
            out = X @ W
            out += b
            W *= 1.0
            X *= 2.0
            return out
        """),
        "dense_forward changed its input X",
    ),
    # -------------------------------------------------------------------------- mse
    (
        "mse",
        "sum instead of mean",
        M("""
        def mse(pred, target):
            d = pred - target
            return float(np.sum(d**2)), 2 * d / d.size
        """),
        "you summed the squares",
    ),
    (
        "mse",
        "gradient without 2",
        M("""
        def mse(pred, target):
            d = pred - target
            return float(np.mean(d**2)), d / d.size
        """),
        "lacks the factor 2",
    ),
    (
        "mse",
        "gradient not averaged",
        M("""
        def mse(pred, target):
            d = pred - target
            return float(np.mean(d**2)), 2 * d
        """),
        "not divided by the number of elements",
    ),
    (
        "mse",
        "gradient sign",
        M("""
        def mse(pred, target):
            d = pred - target
            return float(np.mean(d**2)), -2 * d / d.size
        """),
        "the wrong sign",
    ),
    (
        "mse",
        "divided by rows",
        M("""
        def mse(pred, target):
            d = pred - target
            return float(np.mean(d**2)), 2 * d / len(d)
        """),
        "divided by the number of rows",
    ),
    (
        "mse",
        "RMSE",
        M("""
        def mse(pred, target):
            d = pred - target
            return float(np.sqrt(np.mean(d**2))), 2 * d / d.size
        """),
        "leave out the square root",
    ),
    (
        "mse",
        "returns the gradient only",
        M("""
        def mse(pred, target):
            return 2 * (pred - target) / pred.size
        """),
        "return loss, grad",
    ),
    # ------------------------------------------------------------------ log_softmax
    (
        "log_softmax",
        "no max shift",
        M("""
        def log_softmax(z):
            return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        """),
        "subtract each row's maximum",
    ),
    (
        "log_softmax",
        "wrong axis",
        M("""
        def log_softmax(z):
            shifted = z - z.max(axis=0, keepdims=True)
            return shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))
        """),
        "normalise each row",
    ),
    (
        "log_softmax",
        "log-sum left out",
        M("""
        def log_softmax(z):
            return z - z.max(axis=-1, keepdims=True)
        """),
        "left out - log(sum(exp(z - max)))",
    ),
    (
        "log_softmax",
        "softmax, not its log",
        M("""
        def log_softmax(z):
            e = np.exp(z - z.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)
        """),
        "that is the softmax itself",
    ),
    (
        "log_softmax",
        "log of softmax",
        M("""
        def log_softmax(z):
            e = np.exp(z)
            return np.log(e / e.sum(axis=-1, keepdims=True))
        """),
        "subtract each row's maximum",
    ),
    # -------------------------------------------------------- softmax_cross_entropy
    (
        "softmax_cross_entropy",
        "gradient not over N",
        M(
            _LSE
            + """
        def softmax_cross_entropy(z, y):
            n = len(y)
            logp = log_softmax(z)
            dz = np.exp(logp)
            dz[np.arange(n), y] -= 1
            return float(-logp[np.arange(n), y].mean()), dz
        """.replace("\n        ", "\n")
        ),
        "not divided by N",
    ),
    (
        "softmax_cross_entropy",
        "loss summed",
        M(
            _LSE
            + """
        def softmax_cross_entropy(z, y):
            n = len(y)
            logp = log_softmax(z)
            dz = np.exp(logp)
            dz[np.arange(n), y] -= 1
            return float(-logp[np.arange(n), y].sum()), dz / n
        """.replace("\n        ", "\n")
        ),
        "you summed over the batch",
    ),
    (
        "softmax_cross_entropy",
        "gradient sign",
        M(
            _LSE
            + """
        def softmax_cross_entropy(z, y):
            n = len(y)
            logp = log_softmax(z)
            dz = np.exp(logp)
            dz[np.arange(n), y] -= 1
            return float(-logp[np.arange(n), y].mean()), -dz / n
        """.replace("\n        ", "\n")
        ),
        "the wrong sign",
    ),
    (
        "softmax_cross_entropy",
        "forgot the one-hot",
        M(
            _LSE
            + """
        def softmax_cross_entropy(z, y):
            n = len(y)
            logp = log_softmax(z)
            return float(-logp[np.arange(n), y].mean()), np.exp(logp) / n
        """.replace("\n        ", "\n")
        ),
        "forgot to subtract 1 at the true class",
    ),
    (
        "softmax_cross_entropy",
        "loss positive log-probability",
        M(
            _LSE
            + """
        def softmax_cross_entropy(z, y):
            n = len(y)
            logp = log_softmax(z)
            dz = np.exp(logp)
            dz[np.arange(n), y] -= 1
            return float(logp[np.arange(n), y].mean()), dz / n
        """.replace("\n        ", "\n")
        ),
        "your loss is negative",
    ),
    (
        "softmax_cross_entropy",
        "naive softmax",
        M("""
        def softmax_cross_entropy(z, y):
            n = len(y)
            p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
            dz = p.copy()
            dz[np.arange(n), y] -= 1
            return float(-np.log(p[np.arange(n), y]).mean()), dz / n
        """),
        "stable log-softmax",
    ),
    # --------------------------------------------------------------------- accuracy
    (
        "accuracy",
        "count, not fraction",
        M("""
        def accuracy(z, y):
            return float(np.sum(z.argmax(axis=1) == y))
        """),
        "divide by N for a fraction",
    ),
    (
        "accuracy",
        "percentage",
        M("""
        def accuracy(z, y):
            return float(100 * np.mean(z.argmax(axis=1) == y))
        """),
        "you returned a percentage",
    ),
    (
        "accuracy",
        "argmin",
        M("""
        def accuracy(z, y):
            return float(np.mean(z.argmin(axis=1) == y))
        """),
        "you used argmin",
    ),
    (
        "accuracy",
        "max value vs label",
        M("""
        def accuracy(z, y):
            return float(np.mean(z.max(axis=1) == y))
        """),
        "compare its index (argmax)",
    ),
    (
        "accuracy",
        "per-example array",
        M("""
        def accuracy(z, y):
            return z.argmax(axis=1) == y
        """),
        "reduce to a single number",
    ),
    # ------------------------------------------------------------ log_softmax_numba
    (
        "log_softmax_numba",
        "not compiled",
        M("""
        def log_softmax_numba(z):
            shifted = z - z.max(axis=-1).reshape(-1, 1)
            return shifted - np.log(np.exp(shifted).sum(axis=-1)).reshape(-1, 1)
        """),
        "@njit(parallel=True) on the line above",
    ),
    (
        "log_softmax_numba",
        "serial range",
        M("""
        @njit(parallel=True)
        def log_softmax_numba(z):
            n, c = z.shape
            out = np.empty_like(z)
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
        "`range` runs serially",
    ),
    (
        "log_softmax_numba",
        "no parallel=True",
        M("""
        @njit
        def log_softmax_numba(z):
            n, c = z.shape
            out = np.empty_like(z)
            for i in prange(n):
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
        "compiled without parallel=True",
    ),
    (
        "log_softmax_numba",
        "no max shift",
        M("""
        @njit(parallel=True)
        def log_softmax_numba(z):
            n, c = z.shape
            out = np.empty_like(z)
            for i in prange(n):
                s = 0.0
                for j in range(c):
                    s += np.exp(z[i, j])
                for j in range(c):
                    out[i, j] = z[i, j] - np.log(s)
            return out
        """),
        "find each row's maximum first",
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
    (
        "log_softmax_numba",
        "float64 output",
        M("""
        @njit(parallel=True)
        def log_softmax_numba(z):
            n, c = z.shape
            out = np.empty((n, c))
            for i in prange(n):
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
        "dtype float64, expected float32",
    ),
]


(
    test_catalogue_has_at_least_four_mutants_per_exercise,
    test_the_solutions_pass_every_check,
    test_mutant_fails_its_own_exercise_only_and_shows_its_hint,
) = catalogue_tests(SET, MUTANTS)
