"""Wrong-answer catalogue for ``solutions/04_gradient_descent.ipynb``: each typical mistake
fails its own exercise only, and the feedback names it (see ``mutant_harness.py``)."""

from __future__ import annotations

import textwrap

from mutant_harness import ExerciseSet, M, catalogue_tests

SET = ExerciseSet("04_gradient_descent.ipynb")


def _adam_kernel(body: str, decorator: str = "@njit(parallel=True)") -> str:
    head = M(
        f"""
        {decorator}
        def adam_numba(p, g, m, v, t, lr, beta1, beta2, eps):
            c1 = 1.0 - beta1**t
            c2 = 1.0 - beta2**t
        """
    )
    return head + textwrap.indent(M(body), "    ")


MUTANTS = [
    # ------------------------------------------------------------------ minibatches
    (
        "minibatches",
        "drops the last batch",
        M("""
        def minibatches(n, batch_size, seed):
            order = np.random.default_rng(seed).permutation(n)
            return [order[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]
        """),
        "you dropped the last",
    ),
    (
        "minibatches",
        "not shuffled",
        M("""
        def minibatches(n, batch_size, seed):
            order = np.arange(n)
            return [order[i : i + batch_size] for i in range(0, n, batch_size)]
        """),
        "shuffle them",
    ),
    (
        "minibatches",
        "with replacement",
        M("""
        def minibatches(n, batch_size, seed):
            order = np.random.default_rng(seed).integers(0, n, n)
            return [order[i : i + batch_size] for i in range(0, n, batch_size)]
        """),
        "not indices with replacement",
    ),
    (
        "minibatches",
        "seed ignored",
        M("""
        def minibatches(n, batch_size, seed):
            order = np.random.default_rng().permutation(n)
            return [order[i : i + batch_size] for i in range(0, n, batch_size)]
        """),
        "build the generator from the seed",
    ),
    (
        "minibatches",
        "overlapping batches",
        M("""
        def minibatches(n, batch_size, seed):
            order = np.random.default_rng(seed).permutation(n)
            return [order[i : i + batch_size + 1] for i in range(0, n, batch_size)]
        """),
        "indices appear twice",
    ),
    # ----------------------------------------------------------------- sgd_momentum
    (
        "sgd_momentum",
        "Nesterov step",
        M("""
        def sgd_momentum(p, g, v, lr, mu):
            v = mu * v + g
            return p - lr * (g + mu * v), v
        """),
        "Nesterov's look-ahead",
    ),
    (
        "sgd_momentum",
        "mu v outside the learning rate",
        M("""
        def sgd_momentum(p, g, v, lr, mu):
            v = mu * v + g
            return p - lr * g - mu * v, v
        """),
        "outside the learning rate",
    ),
    (
        "sgd_momentum",
        "velocity not returned",
        M("""
        def sgd_momentum(p, g, v, lr, mu):
            return p - lr * (mu * v + g), v
        """),
        "the velocity never builds up",
    ),
    (
        "sgd_momentum",
        "uphill",
        M("""
        def sgd_momentum(p, g, v, lr, mu):
            v = mu * v + g
            return p + lr * v, v
        """),
        "you moved uphill",
    ),
    (
        "sgd_momentum",
        "dampened",
        M("""
        def sgd_momentum(p, g, v, lr, mu):
            v = mu * v + (1 - mu) * g
            return p - lr * v, v
        """),
        "dampening",
    ),
    (
        "sgd_momentum",
        "plain gradient step",
        M("""
        def sgd_momentum(p, g, v, lr, mu):
            v = mu * v + g
            return p - lr * g, v
        """),
        "the velocity never builds up",
    ),
    # ---------------------------------------------------------------------- rmsprop
    (
        "rmsprop",
        "eps inside the root",
        M("""
        def rmsprop(p, g, s, lr, alpha, eps):
            s = alpha * s + (1 - alpha) * g * g
            return p - lr * g / np.sqrt(s + eps), s
        """),
        "eps is inside the square root",
    ),
    (
        "rmsprop",
        "no square root",
        M("""
        def rmsprop(p, g, s, lr, alpha, eps):
            s = alpha * s + (1 - alpha) * g * g
            return p - lr * g / (s + eps), s
        """),
        "divide by its square root",
    ),
    (
        "rmsprop",
        "alpha swapped",
        M("""
        def rmsprop(p, g, s, lr, alpha, eps):
            s = (1 - alpha) * s + alpha * g * g
            return p - lr * g / (np.sqrt(s) + eps), s
        """),
        "alpha and 1 - alpha are swapped",
    ),
    (
        "rmsprop",
        "gradient not squared",
        M("""
        def rmsprop(p, g, s, lr, alpha, eps):
            s = alpha * s + (1 - alpha) * g
            return p - lr * g / (np.sqrt(np.abs(s)) + eps), s
        """),
        "not its square",
    ),
    (
        "rmsprop",
        "old average",
        M("""
        def rmsprop(p, g, s, lr, alpha, eps):
            new_p = p - lr * g / (np.sqrt(s) + eps)
            return new_p, alpha * s + (1 - alpha) * g * g
        """),
        "divided by the old average",
    ),
    # ------------------------------------------------------------------------- adam
    (
        "adam",
        "no bias correction",
        M("""
        def adam(p, g, m, v, t, lr, beta1, beta2, eps):
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            return p - lr * m / (np.sqrt(v) + eps), m, v
        """),
        "no bias correction",
    ),
    (
        "adam",
        "eps inside the root",
        M("""
        def adam(p, g, m, v, t, lr, beta1, beta2, eps):
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
            return p - lr * m_hat / np.sqrt(v_hat + eps), m, v
        """),
        "eps is inside the square root",
    ),
    (
        "adam",
        "t counted from 0",
        M("""
        def adam(p, g, m, v, t, lr, beta1, beta2, eps):
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            m_hat, v_hat = m / (1 - beta1 ** (t - 1)), v / (1 - beta2 ** (t - 1))
            return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v
        """),
        "t counts from 1",
    ),
    (
        "adam",
        "only m corrected",
        M("""
        def adam(p, g, m, v, t, lr, beta1, beta2, eps):
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            return p - lr * (m / (1 - beta1**t)) / (np.sqrt(v) + eps), m, v
        """),
        "you corrected m but not v",
    ),
    (
        "adam",
        "t + 1",
        M("""
        def adam(p, g, m, v, t, lr, beta1, beta2, eps):
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            m_hat, v_hat = m / (1 - beta1 ** (t + 1)), v / (1 - beta2 ** (t + 1))
            return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v
        """),
        "uses t + 1",
    ),
    # -------------------------------------------------------------------- cosine_lr
    (
        "cosine_lr",
        "one epoch ahead",
        M("""
        def cosine_lr(epoch, base_lr, T_max, eta_min=0.0):
            return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * (epoch + 1) / T_max)) / 2
        """),
        "one epoch ahead",
    ),
    (
        "cosine_lr",
        "no halving",
        M("""
        def cosine_lr(epoch, base_lr, T_max, eta_min=0.0):
            return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * epoch / T_max))
        """),
        "left out the / 2",
    ),
    (
        "cosine_lr",
        "eta_min ignored",
        M("""
        def cosine_lr(epoch, base_lr, T_max, eta_min=0.0):
            return base_lr * (1 + math.cos(math.pi * epoch / T_max)) / 2
        """),
        "you ignored eta_min",
    ),
    (
        "cosine_lr",
        "full period",
        M("""
        def cosine_lr(epoch, base_lr, T_max, eta_min=0.0):
            return eta_min + (base_lr - eta_min) * (1 + math.cos(2 * math.pi * epoch / T_max)) / 2
        """),
        "full period",
    ),
    (
        "cosine_lr",
        "sine",
        M("""
        def cosine_lr(epoch, base_lr, T_max, eta_min=0.0):
            return eta_min + (base_lr - eta_min) * (1 + math.sin(math.pi * epoch / T_max)) / 2
        """),
        "you used sin",
    ),
    # ------------------------------------------------------------------- adam_numba
    (
        "adam_numba",
        "serial range",
        _adam_kernel("""
            for i in range(p.size):
                m[i] = beta1 * m[i] + (1.0 - beta1) * g[i]
                v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i]
                p[i] -= lr * (m[i] / c1) / (np.sqrt(v[i] / c2) + eps)
        """),
        "`range` runs serially",
    ),
    (
        "adam_numba",
        "not compiled",
        M("""
        def adam_numba(p, g, m, v, t, lr, beta1, beta2, eps):
            m[:] = beta1 * m + (1.0 - beta1) * g
            v[:] = beta2 * v + (1.0 - beta2) * g * g
            p -= lr * (m / (1.0 - beta1**t)) / (np.sqrt(v / (1.0 - beta2**t)) + eps)
        """),
        "@njit(parallel=True) on the line above",
    ),
    (
        "adam_numba",
        "no bias correction",
        _adam_kernel("""
            for i in prange(p.size):
                m[i] = beta1 * m[i] + (1.0 - beta1) * g[i]
                v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i]
                p[i] -= lr * m[i] / (np.sqrt(v[i]) + eps)
        """),
        "no bias correction",
    ),
    (
        "adam_numba",
        "returns a copy",
        M("""
        @njit(parallel=True)
        def adam_numba(p, g, m, v, t, lr, beta1, beta2, eps):
            out = p.copy()
            for i in prange(p.size):
                m[i] = beta1 * m[i] + (1.0 - beta1) * g[i]
                v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i]
                m_hat = m[i] / (1.0 - beta1**t)
                out[i] = p[i] - lr * m_hat / (np.sqrt(v[i] / (1.0 - beta2**t)) + eps)
            return out
        """),
        "a new array you return is thrown away",
    ),
    (
        "adam_numba",
        "no parallel=True",
        _adam_kernel(
            """
            for i in prange(p.size):
                m[i] = beta1 * m[i] + (1.0 - beta1) * g[i]
                v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i]
                p[i] -= lr * (m[i] / c1) / (np.sqrt(v[i] / c2) + eps)
        """,
            decorator="@njit",
        ),
        "compiled without parallel=True",
    ),
]


(
    test_catalogue_has_at_least_four_mutants_per_exercise,
    test_the_solutions_pass_every_check,
    test_mutant_fails_its_own_exercise_only_and_shows_its_hint,
) = catalogue_tests(SET, MUTANTS)
