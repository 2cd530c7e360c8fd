"""Wrong-answer catalogue for ``solutions/04_gradient_descent.ipynb``: each typical mistake
fails its own exercise only, and the feedback names it (see ``mutant_harness.py``); and
correct answers written differently from the solutions pass every check.

Mutants are edits of the solution's answer cell (``mutate(SET.answers[...], old, new)``),
so the planted defect is what the catalogue shows."""

from __future__ import annotations

import pytest
from mutant_harness import (
    ExerciseSet,
    M,
    _compile,
    alternatives_test,
    catalogue_tests,
    mutate,
    prange_counts_kept,
)

SET = ExerciseSet("04_gradient_descent.ipynb")
MB, MOM, RMS, ADAM, LR, NUMBA, STABLE, EFFECTIVE = (
    SET.answers[name]
    for name in (
        "minibatches",
        "sgd_momentum",
        "rmsprop",
        "adam",
        "cosine_lr",
        "adam_numba",
        "largest_stable_lr",
        "momentum_effective_lr",
    )
)


@pytest.fixture(autouse=True, scope="module")
def _compile_each_kernel_once():
    with prange_counts_kept():
        yield


_ADAM_LOOP = "    for i in prange(p.size):\n"

MUTANTS = [
    # ------------------------------------------------------------------ minibatches
    (
        "minibatches",
        "drops the last batch",
        mutate(MB, "range(0, n, batch_size)", "range(0, n - batch_size + 1, batch_size)"),
        "you dropped the last",
    ),
    (
        "minibatches",
        "stops at n - 1 (loses the last index when it is a batch of its own)",
        mutate(MB, "range(0, n, batch_size)", "range(0, n - 1, batch_size)"),
        "you dropped the last",
    ),
    (
        "minibatches",
        "an empty last batch when n is a multiple of batch_size",
        mutate(MB, "range(0, n, batch_size)", "range(0, n + 1, batch_size)"),
        "is empty",
    ),
    (
        "minibatches",
        "n // batch_size + 1 batches",
        mutate(
            MB,
            "[order[i : i + batch_size] for i in range(0, n, batch_size)]",
            "[order[i * batch_size : (i + 1) * batch_size] for i in range(n // batch_size + 1)]",
        ),
        "is empty",
    ),
    (
        "minibatches",
        "np.array_split balances the sizes",
        mutate(
            MB,
            "[order[i : i + batch_size] for i in range(0, n, batch_size)]",
            "np.array_split(order, -(-n // batch_size))",
        ),
        "np.array_split balances",
    ),
    (
        "minibatches",
        "not shuffled",
        mutate(MB, "np.random.default_rng(seed).permutation(n)", "np.arange(n)"),
        "shuffle them",
    ),
    (
        "minibatches",
        "with replacement",
        mutate(MB, "permutation(n)", "integers(0, n, n)"),
        "not indices with replacement",
    ),
    (
        "minibatches",
        "seed ignored",
        mutate(MB, "default_rng(seed)", "default_rng()"),
        "build the generator from the seed",
    ),
    (
        "minibatches",
        "a fixed seed: the same batches every epoch",
        mutate(MB, "default_rng(seed)", "default_rng(0)"),
        "not a fixed seed",
    ),
    (
        "minibatches",
        "fixed batch contents, shuffled inside each batch",
        mutate(
            MB,
            "order = np.random.default_rng(seed).permutation(n)",
            "rng = np.random.default_rng(seed)",
            "order[i : i + batch_size]",
            "rng.permutation(np.arange(i, min(i + batch_size, n)))",
        ),
        "only in another order",
    ),
    (
        "minibatches",
        "fixed batch contents, the batches in a shuffled order",
        mutate(
            MB,
            "order = np.random.default_rng(seed).permutation(n)",
            "starts = np.random.default_rng(seed).permutation(np.arange(0, n, batch_size))",
            "[order[i : i + batch_size] for i in range(0, n, batch_size)]",
            "[np.arange(s, min(s + batch_size, n)) for s in starts]",
        ),
        "only in another order",
    ),
    (
        "minibatches",
        "overlapping batches",
        mutate(MB, "order[i : i + batch_size]", "order[i : i + batch_size + 1]"),
        "your batches overlap",
    ),
    # ----------------------------------------------------------------- sgd_momentum
    (
        "sgd_momentum",
        "Nesterov step",
        mutate(MOM, "return p - lr * v, v", "return p - lr * (g + mu * v), v"),
        "Nesterov's look-ahead",
    ),
    (
        "sgd_momentum",
        "mu v outside the learning rate",
        mutate(MOM, "return p - lr * v, v", "return p - lr * g - mu * v, v"),
        "outside the learning rate",
    ),
    (
        "sgd_momentum",
        "returns the old velocity",
        mutate(
            MOM,
            "    v = mu * v + g\n    return p - lr * v, v",
            "    return p - lr * (mu * v + g), v",
        ),
        "returned its argument v itself",
    ),
    (
        "sgd_momentum",
        "uphill",
        mutate(MOM, "p - lr * v", "p + lr * v"),
        "you moved uphill",
    ),
    (
        "sgd_momentum",
        "dampened",
        mutate(MOM, "mu * v + g", "mu * v + (1 - mu) * g"),
        "dampening",
    ),
    (
        "sgd_momentum",
        "plain gradient step",
        mutate(MOM, "return p - lr * v, v", "return p - lr * g, v"),
        "plain gradient descent",
    ),
    (
        "sgd_momentum",
        "the learning rate inside the velocity (same p while lr is constant)",
        mutate(MOM, "mu * v + g", "mu * v + lr * g", "p - lr * v", "p - v"),
        "your velocity holds the learning rate",
    ),
    (
        "sgd_momentum",
        "cs231n's velocity, v = mu v - lr g, p = p + v",
        mutate(MOM, "mu * v + g", "mu * v - lr * g", "p - lr * v", "p + v"),
        "your velocity holds the learning rate",
    ),
    (
        "sgd_momentum",
        "updates the caller's velocity in place",
        mutate(MOM, "    v = mu * v + g\n", "    v *= mu\n    v += g\n"),
        "changed its argument v in place",
    ),
    (
        "sgd_momentum",
        "updates the caller's parameters in place",
        mutate(MOM, "    return p - lr * v, v", "    p -= lr * v\n    return p, v"),
        "changed its argument p in place",
    ),
    (
        "sgd_momentum",
        "float32 gradient upcast to float64",
        mutate(MOM, "mu * v + g", "mu * v + g.astype(float)"),
        "dtype float64, expected float32",
    ),
    (
        "sgd_momentum",
        "a loop over the elements of 1-D parameters",
        mutate(
            MOM,
            "    v = mu * v + g\n    return p - lr * v, v",
            "    new_p, new_v = np.empty(len(p)), np.empty(len(p))\n"
            "    for i in range(len(p)):\n"
            "        new_v[i] = mu * v[i] + g[i]\n"
            "        new_p[i] = p[i] - lr * new_v[i]\n"
            "    return new_p, new_v",
        ),
        "1-D parameters only",
    ),
    (
        "sgd_momentum",
        "with mu = 0 returns the gradient itself as the velocity",
        mutate(
            MOM,
            "    v = mu * v + g\n",
            "    if mu == 0:\n        return p - lr * g, g\n    v = mu * v + g\n",
        ),
        "returned its argument g itself",
    ),
    # ---------------------------------------------------------------------- rmsprop
    (
        "rmsprop",
        "eps inside the root",
        mutate(RMS, "(np.sqrt(s) + eps)", "np.sqrt(s + eps)"),
        "eps is inside the square root",
    ),
    (
        "rmsprop",
        "no square root",
        mutate(RMS, "(np.sqrt(s) + eps)", "(s + eps)"),
        "divide by its square root",
    ),
    (
        "rmsprop",
        "alpha swapped",
        mutate(RMS, "alpha * s + (1 - alpha) * g * g", "(1 - alpha) * s + alpha * g * g"),
        "alpha and 1 - alpha are swapped",
    ),
    (
        "rmsprop",
        "gradient not squared",
        mutate(RMS, "(1 - alpha) * g * g", "(1 - alpha) * g", "np.sqrt(s)", "np.sqrt(np.abs(s))"),
        "not its square",
    ),
    (
        "rmsprop",
        "old average",
        mutate(
            RMS,
            "    s = alpha * s + (1 - alpha) * g * g\n"
            "    return p - lr * g / (np.sqrt(s) + eps), s",
            "    new_p = p - lr * g / (np.sqrt(s) + eps)\n"
            "    return new_p, alpha * s + (1 - alpha) * g * g",
        ),
        "divided by the old average",
    ),
    (
        "rmsprop",
        "returns the old average",
        mutate(RMS, "    s = alpha * s", "    s_new = alpha * s", "np.sqrt(s)", "np.sqrt(s_new)"),
        "returned its argument s itself",
    ),
    (
        "rmsprop",
        "updates the caller's s in place",
        mutate(
            RMS,
            "    s = alpha * s + (1 - alpha) * g * g\n",
            "    s *= alpha\n    s += (1 - alpha) * g * g\n",
        ),
        "changed its argument s in place",
    ),
    (
        "rmsprop",
        "the square computed in float64",
        mutate(RMS, "(1 - alpha) * g * g", "(1 - alpha) * np.square(g, dtype=np.float64)"),
        "dtype float64, expected float32",
    ),
    (
        "rmsprop",
        "a zero gradient returns the caller's arrays",
        mutate(
            RMS, "    s = alpha * s", "    if not g.any():\n        return p, s\n    s = alpha * s"
        ),
        "returned its argument p itself",
    ),
    # ------------------------------------------------------------------------- adam
    (
        "adam",
        "no bias correction",
        mutate(ADAM, "m / (1 - beta1**t)", "m", "v / (1 - beta2**t)", "v"),
        "no bias correction",
    ),
    (
        "adam",
        "eps inside the root",
        mutate(ADAM, "(np.sqrt(v_hat) + eps)", "np.sqrt(v_hat + eps)"),
        "eps is inside the square root",
    ),
    (
        "adam",
        "t counted from 0",
        mutate(ADAM, "beta1**t", "beta1 ** (t - 1)", "beta2**t", "beta2 ** (t - 1)"),
        "t counts from 1",
    ),
    (
        "adam",
        "only m corrected",
        mutate(ADAM, "v / (1 - beta2**t)", "v"),
        "you corrected m but not v",
    ),
    (
        "adam",
        "t + 1",
        mutate(ADAM, "beta1**t", "beta1 ** (t + 1)", "beta2**t", "beta2 ** (t + 1)"),
        "uses t + 1",
    ),
    (
        "adam",
        "returns the bias-corrected averages as the state",
        mutate(ADAM, "(np.sqrt(v_hat) + eps), m, v", "(np.sqrt(v_hat) + eps), m_hat, v_hat"),
        "bias-corrected m_hat and v_hat as the state",
    ),
    (
        "adam",
        "updates the caller's m in place",
        mutate(
            ADAM,
            "    m = beta1 * m + (1 - beta1) * g\n",
            "    m *= beta1\n    m += (1 - beta1) * g\n",
        ),
        "changed its argument m in place",
    ),
    (
        "adam",
        "the square computed in float64",
        mutate(ADAM, "(1 - beta2) * g * g", "(1 - beta2) * np.square(g, dtype=np.float64)"),
        "dtype float64, expected float32",
    ),
    # -------------------------------------------------------------------- cosine_lr
    (
        "cosine_lr",
        "one epoch ahead",
        mutate(LR, "math.pi * epoch / T_max", "math.pi * (epoch + 1) / T_max"),
        "one epoch ahead",
    ),
    (
        "cosine_lr",
        "no halving",
        mutate(LR, "/ T_max)) / 2", "/ T_max))"),
        "left out the / 2",
    ),
    (
        "cosine_lr",
        "eta_min ignored",
        mutate(LR, "return eta_min + (base_lr - eta_min) *", "return base_lr *"),
        "you ignored eta_min",
    ),
    (
        "cosine_lr",
        "full period",
        mutate(LR, "math.pi * epoch", "2 * math.pi * epoch"),
        "full period",
    ),
    (
        "cosine_lr",
        "sine",
        mutate(LR, "math.cos", "math.sin"),
        "you used sin",
    ),
    (
        "cosine_lr",
        "integer division",
        mutate(LR, "epoch / T_max", "(epoch // T_max)"),
        "integer division",
    ),
    (
        "cosine_lr",
        "returns an array",
        mutate(LR, "return eta_min", "return np.array([eta_min", ") / 2\n", ") / 2])\n"),
        "the text asks for a number",
    ),
    (
        "cosine_lr",
        "eta_min defaults to 0.001",
        mutate(LR, "eta_min=0.0", "eta_min=0.001"),
        "your eta_min defaults to 0.001",
    ),
    # ------------------------------------------------------------------- adam_numba
    (
        "adam_numba",
        "serial range",
        mutate(NUMBA, "prange(p.size)", "range(p.size)"),
        "`range` runs serially",
    ),
    (
        "adam_numba",
        "not compiled",
        mutate(NUMBA, "@njit(parallel=True)\n", ""),
        "@njit(parallel=True) on the line above",
    ),
    (
        "adam_numba",
        "no bias correction",
        mutate(NUMBA, "(m[i] / c1) / (np.sqrt(v[i] / c2) + eps)", "m[i] / (np.sqrt(v[i]) + eps)"),
        "no bias correction",
    ),
    (
        "adam_numba",
        "returns a copy",
        mutate(
            NUMBA,
            _ADAM_LOOP,
            "    out = p.copy()\n" + _ADAM_LOOP,
            "p[i] -= lr",
            "out[i] = p[i] - lr",
            "    ### END SOLUTION",
            "    return out\n    ### END SOLUTION",
        ),
        "a new array you make or return is thrown away",
    ),
    (
        "adam_numba",
        "no parallel=True",
        mutate(NUMBA, "@njit(parallel=True)", "@njit"),
        "compiled without parallel=True",
    ),
    (
        "adam_numba",
        "off by one: prange(p.size - 1)",
        mutate(NUMBA, "prange(p.size)", "prange(p.size - 1)"),
        "never updated (still the old value)",
    ),
    (
        "adam_numba",
        "a prange(1) wrapper around a serial loop",
        mutate(NUMBA, _ADAM_LOOP, "    for _ in prange(1):\n      for i in range(p.size):\n"),
        "has a fixed number of iterations",
    ),
    (
        "adam_numba",
        "uses g as scratch space",
        mutate(
            NUMBA,
            "p[i] -= lr * (m[i] / c1)",
            "g[i] = m[i] / c1\n        p[i] -= lr * g[i]",
        ),
        "changed its argument g in place",
    ),
    (
        "adam_numba",
        "m computed but not written back",
        mutate(
            NUMBA,
            "m[i] = beta1 * m[i] + (1.0 - beta1) * g[i]",
            "mi = beta1 * m[i] + (1.0 - beta1) * g[i]",
            "(m[i] / c1)",
            "(mi / c1)",
        ),
        "adam_numba left m unchanged",
    ),
    # ------------------------------------------------------------ largest_stable_lr
    (
        "largest_stable_lr",
        "1/lambda_max (the rate that solves the steepest direction in one step)",
        mutate(STABLE, "2.0 / float(", "1.0 / float("),
        "your rate is half the limit",
    ),
    (
        "largest_stable_lr",
        "the smallest eigenvalue",
        mutate(STABLE, "eigvalsh(A).max()", "eigvalsh(A).min()"),
        "you used the smallest eigenvalue",
    ),
    (
        "largest_stable_lr",
        "1/lambda_min: the wrong end and no factor 2",
        mutate(
            STABLE,
            "2.0 / float(np.linalg.eigvalsh(A).max())",
            "1.0 / float(np.linalg.eigvalsh(A).min())",
        ),
        "you used 1/lambda_min",
    ),
    (
        "largest_stable_lr",
        "the largest diagonal entry taken for the largest curvature",
        mutate(STABLE, "np.linalg.eigvalsh(A).max()", "np.diag(A).max()"),
        "you used the largest diagonal entry",
    ),
    (
        "largest_stable_lr",
        "the trace",
        mutate(STABLE, "np.linalg.eigvalsh(A).max()", "np.trace(A)"),
        "you used the trace",
    ),
    (
        "largest_stable_lr",
        "the Frobenius norm for the largest eigenvalue",
        mutate(STABLE, "np.linalg.eigvalsh(A).max()", "np.linalg.norm(A)"),
        "you used the Frobenius norm",
    ),
    (
        "largest_stable_lr",
        "an array instead of a number",
        mutate(STABLE, "float(np.linalg.eigvalsh(A).max())", "np.linalg.eigvalsh(A)[-1:]"),
        "expected the learning rate as a number",
    ),
    # -------------------------------------------------------- momentum_effective_lr
    (
        "momentum_effective_lr",
        "mu where 1 - mu belongs (lr (1 - mu))",
        mutate(EFFECTIVE, "lr / (1 - mu)", "lr * (1 - mu)"),
        "you multiplied by 1 - mu",
    ),
    (
        "momentum_effective_lr",
        "the series summed to 1 / (1 + mu)",
        mutate(EFFECTIVE, "lr / (1 - mu)", "lr / (1 + mu)"),
        "you divided by 1 + mu",
    ),
    (
        "momentum_effective_lr",
        "the first term of the series left out",
        mutate(EFFECTIVE, "lr / (1 - mu)", "lr * mu / (1 - mu)"),
        "without the first term",
    ),
    (
        "momentum_effective_lr",
        "divided by mu",
        mutate(EFFECTIVE, "lr / (1 - mu)", "lr / mu if mu else lr"),
        "you divided by mu",
    ),
    (
        "momentum_effective_lr",
        "(1 - mu) squared",
        mutate(EFFECTIVE, "lr / (1 - mu)", "lr / (1 - mu) ** 2"),
        "you squared 1 - mu",
    ),
    (
        "momentum_effective_lr",
        "two terms of the series",
        mutate(EFFECTIVE, "lr / (1 - mu)", "lr * (1 + mu)"),
        "you stopped after two terms",
    ),
]


# Correct answers written differently from the solutions: each passes every check.
ALTERNATIVES = [
    (
        "minibatches",
        "a generator",
        M("""
        def minibatches(n, batch_size, seed):
            order = np.random.default_rng(seed).permutation(n)
            for start in range(0, n, batch_size):
                yield order[start : start + batch_size]
        """),
    ),
    (
        "minibatches",
        "np.split at the multiples of batch_size",
        M("""
        def minibatches(n, batch_size, seed):
            order = np.random.default_rng(seed).permutation(n)
            return np.split(order, range(batch_size, n, batch_size))
        """),
    ),
    (
        "minibatches",
        "shuffle in place and a while loop",
        M("""
        def minibatches(n, batch_size, seed):
            idx = np.arange(n)
            np.random.default_rng(seed).shuffle(idx)
            batches, start = [], 0
            while start < n:
                batches.append(idx[start : start + batch_size])
                start += batch_size
            return batches
        """),
    ),
    (
        "minibatches",
        "rng.choice without replacement, each batch sorted, a tuple",
        M("""
        def minibatches(n, batch_size, seed):
            order = np.random.default_rng(seed).choice(n, size=n, replace=False)
            return tuple(np.sort(order[i : i + batch_size]) for i in range(0, n, batch_size))
        """),
    ),
    (
        "sgd_momentum",
        "in place on a new array, a list returned",
        M("""
        def sgd_momentum(p, g, v, lr, mu):
            new_v = mu * v
            new_v += g
            return [p - lr * new_v, new_v]
        """),
    ),
    (
        "sgd_momentum",
        "computed in float64, cast back to the input's dtype",
        M("""
        def sgd_momentum(p, g, v, lr, mu):
            v64 = mu * v.astype(np.float64) + g
            return (p - lr * v64).astype(p.dtype), v64.astype(v.dtype)
        """),
    ),
    (
        "rmsprop",
        "np.square and a denominator built in place",
        M("""
        def rmsprop(p, g, s, lr, alpha, eps):
            s = alpha * s + (1 - alpha) * np.square(g)
            denom = np.sqrt(s)
            denom += eps
            return p - lr * g / denom, s
        """),
    ),
    (
        "adam",
        "PyTorch's folded step size (nnlib's form)",
        M("""
        def adam(p, g, m, v, t, lr, beta1, beta2, eps):
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g**2
            step_size = lr / (1 - beta1**t)
            denom = np.sqrt(v) / math.sqrt(1 - beta2**t) + eps
            return p - step_size * m / denom, m, v
        """),
    ),
    (
        "cosine_lr",
        "np.cos and np.pi (a NumPy float)",
        M("""
        def cosine_lr(epoch, base_lr, T_max, eta_min=0.0):
            return eta_min + 0.5 * (base_lr - eta_min) * (1 + np.cos(np.pi * epoch / T_max))
        """),
    ),
    (
        "cosine_lr",
        "float() of the factor first",
        M("""
        def cosine_lr(epoch, base_lr, T_max, eta_min=0.0):
            factor = float((1 + math.cos(epoch / T_max * math.pi)) / 2)
            return factor * base_lr + (1 - factor) * eta_min
        """),
    ),
    (
        "adam_numba",
        "local scalars, prange(len(p)), returns p as well",
        M("""
        @njit(parallel=True)
        def adam_numba(p, g, m, v, t, lr, beta1, beta2, eps):
            step_size = lr / (1.0 - beta1**t)
            root_c2 = np.sqrt(1.0 - beta2**t)
            for i in prange(len(p)):
                gi = g[i]
                mi = beta1 * m[i] + (1.0 - beta1) * gi
                vi = beta2 * v[i] + (1.0 - beta2) * gi * gi
                m[i] = mi
                v[i] = vi
                p[i] = p[i] - step_size * mi / (np.sqrt(vi) / root_c2 + eps)
            return p
        """),
    ),
    (
        "adam_numba",
        "a prange over blocks of 64 elements, a serial loop inside each block",
        M("""
        @njit(parallel=True)
        def adam_numba(p, g, m, v, t, lr, beta1, beta2, eps):
            n = p.size
            c1 = 1.0 - beta1**t
            c2 = 1.0 - beta2**t
            blocks = (n + 63) // 64
            for b in prange(blocks):
                for i in range(b * 64, min(n, (b + 1) * 64)):
                    m[i] = beta1 * m[i] + (1.0 - beta1) * g[i]
                    v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] ** 2
                    p[i] = p[i] - lr * (m[i] / c1) / (math.sqrt(v[i] / c2) + eps)
        """),
    ),
    (
        "largest_stable_lr",
        "by experiment: bisection on whether |p| still falls from step 1,000 to 2,000",
        M("""
        def largest_stable_lr(A):
            A = np.asarray(A, dtype=np.float64)

            def shrinks(lr):  # does |p| still fall between step 1,000 and step 2,000?
                p = np.random.default_rng(0).standard_normal(A.shape[0])
                for step in range(2000):
                    p = p - lr * (A @ p)
                    if np.abs(p).max() > 1e6:
                        return False
                    if step == 999:
                        middle = np.linalg.norm(p)
                return np.linalg.norm(p) <= middle  # (both 0 once p underflows)

            lo, hi = 0.0, 10.0
            for _ in range(30):
                mid = (lo + hi) / 2
                if shrinks(mid):
                    lo = mid
                else:
                    hi = mid
            return lo
        """),
    ),
    (
        "largest_stable_lr",
        "power iteration for the largest eigenvalue",
        M("""
        def largest_stable_lr(A):
            x = np.ones(len(A)) / math.sqrt(len(A)) + 0.01 * np.arange(len(A))
            for _ in range(5000):
                y = A @ x
                x = y / np.linalg.norm(y)
            return 2 / float(x @ A @ x)
        """),
    ),
    (
        "momentum_effective_lr",
        "by experiment: run the update 3,000 steps on g = 1",
        M("""
        def momentum_effective_lr(lr, mu):
            v = p = 0.0
            for _ in range(3000):
                v = mu * v + 1.0
                last = lr * v
                p -= last
            return last
        """),
    ),
    (
        "momentum_effective_lr",
        "the geometric series summed term by term",
        M("""
        def momentum_effective_lr(lr, mu):
            return lr * sum(mu**k for k in range(1000))
        """),
    ),
]


(
    test_catalogue_has_at_least_four_mutants_per_exercise,
    test_the_solutions_pass_every_check,
    test_mutant_fails_its_own_exercise_only_and_shows_its_hint,
) = catalogue_tests(SET, MUTANTS)


test_correct_alternative_passes_every_check = alternatives_test(SET, ALTERNATIVES)


# Answers that call nnlib's own version of the exercise: refused by name (no hint to
# give, so they are not in MUTANTS, whose harness asks for one).
NNLIB_OWN = [
    (
        "sgd_momentum",
        M("""
        def sgd_momentum(p, g, v, lr, mu):
            from nnlib.ops.optim import sgd_update_ref

            p, v = p.copy(), v.copy()
            sgd_update_ref(p, g, v, lr, mu, 0.0, 0.0, 0, 0)
            return p, v
        """),
        "calls nnlib.ops.optim.sgd_update_ref",
    ),
    (
        "cosine_lr",
        M("""
        def cosine_lr(epoch, base_lr, T_max, eta_min=0.0):
            from nnlib.optim import CosineAnnealingLR

            return CosineAnnealingLR(T_max, eta_min)(epoch, base_lr)
        """),
        "calls nnlib.optim.CosineAnnealingLR",
    ),
]


@pytest.mark.parametrize(("exercise", "source", "named"), NNLIB_OWN, ids=[e for e, *_ in NNLIB_OWN])
def test_calling_nnlibs_own_version_is_refused_by_name(exercise, source, named):
    ns = SET.solved()
    exec(_compile(source, f"<nnlib's own of answer:{exercise}>"), ns)
    verdict = SET.verdict(exercise, ns)
    assert verdict is not None and named in verdict, verdict
