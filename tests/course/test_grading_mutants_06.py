"""Wrong-answer catalogue for ``solutions/06_overfitting.ipynb``: each typical mistake
fails its own exercise only, and the feedback names it (see ``mutant_harness.py``); and
correct answers written differently from the solutions pass every check.

Mutants are edits of the solution's answer cell (``mutate(SET.answers[...], old, new)``),
so the planted defect is what the catalogue shows. The grader's own references are
checked here too: the early-stopping reference against nnlib's EarlyStopping callback,
the shift reference against nl.preprocessing.random_shift, the counter-based generator
against its Numba version, the ridge problems' minimum inside the search range, and the
budget's target between the plain and a regularized network.
"""

from __future__ import annotations

import numpy as np
import pytest
from mutant_harness import (
    ExerciseSet,
    M,
    alternatives_test,
    catalogue_tests,
    mutate,
    prange_counts_kept,
)

from nncourse import overfitting as O

SET = ExerciseSet("06_overfitting.ipynb")
DROP, L2, STOP, AUG, NUMBA, RIDGE, BUDGET = (
    SET.answers[name]
    for name in (
        "dropout",
        "l2_penalty",
        "early_stopping",
        "augment",
        "dropout_numba",
        "ridge_lambda",
        "regularize_budget",
    )
)


@pytest.fixture(autouse=True, scope="module")
def _compile_each_kernel_once():
    with prange_counts_kept():
        yield


_TIE = (
    "        if best is None or loss < best - min_delta:\n"
    "            best, best_epoch, wait = loss, epoch, 0\n        else:"
)
_COPY = "            best_weights = {name: w.copy() for name, w in weights.items()}\n"
_SLICE = (
    "        out[i, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = images[\n"
    "            i, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)\n"
    "        ]\n"
)
_CONFIG = '{"width": 256, "dropout": 0.5, "weight_decay": 0.5, "shifted_copies": 3}'

MUTANTS = [
    # ---------------------------------------------------------------------- dropout
    (
        "dropout",
        "double scaling in the forward pass",
        mutate(DROP, "    return x * mask, mask\n", "    return x * mask / (1 - p), mask\n"),
        "you scaled twice",
    ),
    (
        "dropout",
        "double scaling in the backward pass",
        mutate(DROP, "    return dy * mask\n", "    return dy * mask / (1 - p)\n"),
        "your backward pass scales twice",
    ),
    (
        "dropout",
        "scaling at test time (old dropout: x * (1 - p))",
        mutate(DROP, "        return x, None\n", "        return x * (1 - p), None\n"),
        "you scaled at test time",
    ),
    (
        "dropout",
        "eval mode divides by 1 - p",
        mutate(DROP, "        return x, None\n", "        return x / (1 - p), None\n"),
        "you divided by 1 - p in eval mode",
    ),
    (
        "dropout",
        "eval mode ignored: units dropped at evaluation",
        mutate(DROP, "    if not training:\n        return x, None\n", ""),
        "you dropped units in eval mode",
    ),
    (
        "dropout",
        "a new mask in the backward pass",
        mutate(
            DROP,
            "    return dy * mask\n",
            "    keep = np.random.default_rng().random(dy.shape) >= p\n"
            "    return (dy * keep / (1 - p)).astype(dy.dtype)\n",
        ),
        "a new mask?",
    ),
    (
        "dropout",
        "keep probability swapped (drops with probability 1 - p)",
        mutate(DROP, "keep = rng.random(x.shape) >= p", "keep = rng.random(x.shape) < p"),
        "you kept each unit with probability p",
    ),
    (
        "dropout",
        "kept units not scaled",
        mutate(DROP, "mask = (keep / (1 - p)).astype(x.dtype)", "mask = keep.astype(x.dtype)"),
        "kept units are not scaled",
    ),
    (
        "dropout",
        "divided by p instead of 1 - p",
        mutate(
            DROP, "mask = (keep / (1 - p)).astype(x.dtype)", "mask = (keep / p).astype(x.dtype)"
        ),
        "you divided by p",
    ),
    (
        "dropout",
        "a float64 mask makes float32 y float64",
        mutate(DROP, "mask = (keep / (1 - p)).astype(x.dtype)", "mask = keep / (1 - p)"),
        "a boolean mask divided by (1 - p) is float64",
    ),
    (
        "dropout",
        "p not validated",
        mutate(
            DROP,
            '    if not 0 <= p < 1:\n        raise ValueError(f"p must be in [0, 1); got {p}")\n',
            "",
        ),
        "check p first",
    ),
    (
        "dropout",
        "the seed ignored",
        mutate(DROP, "rng = np.random.default_rng(seed)", "rng = np.random.default_rng()"),
        "a generator made from the seed",
    ),
    (
        "dropout",
        "the mask applied to x in place",
        mutate(DROP, "    return x * mask, mask\n", "    x *= mask\n    return x, mask\n"),
        "changed its argument x in place",
    ),
    # ------------------------------------------------------------------- l2_penalty
    (
        "l2_penalty",
        "biases decayed",
        mutate(L2, 'if name.endswith(".b"):', 'if name.endswith(".bias"):'),
        "you decayed the biases",
    ),
    (
        "l2_penalty",
        "the penalty without the 1/2",
        mutate(L2, "    return lam / 2 * penalty, grads\n", "    return lam * penalty, grads\n"),
        "twice the asked one",
    ),
    (
        "l2_penalty",
        "the gradient off by 2 (2 * lam * W)",
        mutate(L2, "grads[name] = lam * w", "grads[name] = 2 * lam * w"),
        "your gradient is 2 * lam * W",
    ),
    (
        "l2_penalty",
        "no gradient entry for the biases",
        mutate(L2, "            grads[name] = np.zeros_like(w)\n", "            pass\n"),
        "give every parameter a gradient entry",
    ),
    (
        "l2_penalty",
        "the norm, not its square",
        mutate(
            L2,
            "penalty += float(np.sum(w.astype(np.float64) ** 2))",
            "penalty += float(np.sqrt(np.sum(w.astype(np.float64) ** 2)))",
        ),
        "uses the norm ||W||, not its square",
    ),
    (
        "l2_penalty",
        "float32 gradients upcast by a float64 scalar",
        mutate(L2, "grads[name] = lam * w", "grads[name] = np.float64(lam) * w"),
        "lam * W keeps W's dtype",
    ),
    (
        "l2_penalty",
        "the weights scaled in place for the gradient",
        mutate(L2, "grads[name] = lam * w", "w *= lam\n            grads[name] = w"),
        "changed its argument params",
    ),
    # --------------------------------------------------------------- early_stopping
    (
        "early_stopping",
        "patience off by one (wait > patience) in early_stopping",
        mutate(
            STOP,
            "            if wait >= patience:\n                return best_epoch, epoch\n",
            "            if wait > patience:\n                return best_epoch, epoch\n",
        ),
        "you stop one epoch late",
    ),
    (
        "early_stopping",
        "patience off by one in train_early_stopping",
        mutate(
            STOP,
            "            if wait >= patience:\n                return best_weights",
            "            if wait > patience:\n                return best_weights",
        ),
        "you stop one epoch late",
    ),
    (
        "early_stopping",
        "<= for < (a tie counts as an improvement)",
        mutate(STOP, _TIE, _TIE.replace("loss < best", "loss <= best")),
        "you count a tie as an improvement",
    ),
    (
        "early_stopping",
        "min_delta ignored",
        mutate(STOP, _TIE, _TIE.replace("loss < best - min_delta", "loss < best")),
        "you ignored min_delta",
    ),
    (
        "early_stopping",
        "the counter not reset on improvement",
        mutate(
            STOP,
            _TIE,
            _TIE.replace(
                "best, best_epoch, wait = loss, epoch, 0", "best, best_epoch = loss, epoch"
            ),
        ),
        "your counter is not reset",
    ),
    (
        "early_stopping",
        "epochs counted from 1",
        mutate(STOP, "enumerate(val_losses)", "enumerate(val_losses, 1)"),
        "your epochs count from 1",
    ),
    (
        "early_stopping",
        "the last epoch as stopped_epoch when the rule never fires",
        mutate(
            STOP,
            "    return best_epoch, None\n",
            "    return best_epoch, (len(val_losses) - 1 if len(val_losses) else None)\n",
        ),
        "return None then",
    ),
    (
        "early_stopping",
        "restoring the last weights instead of the best",
        mutate(
            STOP,
            "        loss = train_one_epoch(weights)\n",
            "        loss = train_one_epoch(weights)\n"
            "        last = {name: w.copy() for name, w in weights.items()}\n",
            "                return best_weights, best_epoch, epoch\n",
            "                return last, best_epoch, epoch\n",
            "    return best_weights, best_epoch, None\n",
            "    return last, best_epoch, None\n",
        ),
        "you restored the last weights instead of the best ones",
    ),
    (
        "early_stopping",
        "best weights stored by reference",
        mutate(STOP, _COPY, "            best_weights = weights\n"),
        "you stored a reference",
    ),
    (
        "early_stopping",
        "best weights as a shallow copy of the dict",
        mutate(STOP, _COPY, "            best_weights = dict(weights)\n"),
        "you stored a reference",
    ),
    # ---------------------------------------------------------------------- augment
    (
        "augment",
        "shifts that wrap around (np.roll)",
        mutate(AUG, _SLICE, "        out[i] = np.roll(images[i], (dy, dx), axis=(0, 1))\n"),
        "your shift wraps around (np.roll)",
    ),
    (
        "augment",
        "the seed ignored",
        mutate(
            AUG,
            "    rng = np.random.default_rng(seed)\n    n, h, w",
            "    rng = np.random.default_rng()\n    n, h, w",
        ),
        "you ignored the seed",
    ),
    (
        "augment",
        "one shift for the whole batch",
        mutate(
            AUG,
            "size=(n, 2))",
            "size=2)",
            "        dy, dx = shifts[i]\n",
            "        dy, dx = shifts\n",
        ),
        "not one for the whole batch",
    ),
    (
        "augment",
        "the high end of the range left out",
        mutate(
            AUG, "rng.integers(-max_shift, max_shift + 1,", "rng.integers(-max_shift, max_shift,"
        ),
        "its high end is exclusive",
    ),
    (
        "augment",
        "augmented before the split (leak)",
        mutate(
            AUG,
            "    order = rng.permutation(len(X))\n",
            "    X = np.concatenate([X, random_shifts(X, max_shift, rng.integers(2**32))])\n"
            "    y = np.concatenate([y, y])\n"
            "    order = rng.permutation(len(X))\n",
            "    n_val = round(val_fraction * len(X))\n"
            "    val, train = order[:n_val], order[n_val:]\n",
            "    n_val = round(val_fraction * len(X) / 2)\n"
            "    val, train = order[:n_val], order[n_val : len(X) - n_val]\n",
            "    shifted = random_shifts(X[train], max_shift, rng.integers(2**32))\n"
            "    X_train = np.concatenate([X[train], shifted])\n"
            "    y_train = np.concatenate([y[train], y[train]])\n",
            "    X_train, y_train = X[train], y[train]\n",
        ),
        "your validation set holds shifted images",
    ),
    (
        "augment",
        "the shifted copies made from every image, validation ones too (leak)",
        mutate(
            AUG,
            "    shifted = random_shifts(X[train], max_shift, rng.integers(2**32))\n",
            "    shifted = random_shifts(X[order], max_shift, rng.integers(2**32))[: len(train)]\n",
            "    y_train = np.concatenate([y[train], y[train]])\n",
            "    y_train = np.concatenate([y[train], y[order][: len(train)]])\n",
        ),
        "your augmentation leaks between train and validation",
    ),
    (
        "augment",
        "validation images shifted too",
        mutate(
            AUG,
            "    return X_train, y_train, X[val], y[val]\n",
            "    return X_train, y_train, random_shifts(X[val], max_shift, 0), y[val]\n",
        ),
        "your validation set holds shifted images",
    ),
    (
        "augment",
        "the validation images not drawn at random",
        mutate(AUG, "order = rng.permutation(len(X))", "order = np.arange(len(X))"),
        "choose them at random",
    ),
    (
        "augment",
        "labels of the shifted copies out of order",
        mutate(
            AUG,
            "y_train = np.concatenate([y[train], y[train]])",
            "y_train = np.concatenate([y[train], y[train][::-1]])",
        ),
        "keep each image's label with it",
    ),
    # ---------------------------------------------------------------- dropout_numba
    (
        "dropout_numba",
        "a shared counter in the prange loop (race)",
        mutate(
            NUMBA,
            "    for i in prange(n):",
            "    counter = np.zeros(1, np.int64)\n    for i in prange(n):",
            "            if counter_uniform(seed, i * d + j) >= p:\n",
            "            u = counter_uniform(seed, counter[0])\n"
            "            counter[0] += 1\n"
            "            if u >= p:\n",
        ),
        "is written by every prange iteration",
    ),
    (
        "dropout_numba",
        "a serial range loop",
        mutate(NUMBA, "for i in prange(n):", "for i in range(n):"),
        "Numba found no prange loop",
    ),
    (
        "dropout_numba",
        "compiled without parallel=True",
        mutate(NUMBA, "@njit(parallel=True)\ndef dropout_numba", "@njit\ndef dropout_numba"),
        "compiled without parallel=True",
    ),
    (
        "dropout_numba",
        "keep where u < p",
        mutate(
            NUMBA, "counter_uniform(seed, i * d + j) >= p", "counter_uniform(seed, i * d + j) < p"
        ),
        "you kept the units with u < p",
    ),
    (
        "dropout_numba",
        "the mask not scaled",
        mutate(NUMBA, "mask[i, j] = scale", "mask[i, j] = 1.0"),
        "your mask holds 1 for a kept unit",
    ),
    (
        "dropout_numba",
        "the last row never written",
        mutate(NUMBA, "for i in prange(n):", "for i in prange(n - 1):"),
        "some output elements are never written",
    ),
    (
        "dropout_numba",
        "the seed ignored",
        mutate(NUMBA, "counter_uniform(seed, i * d + j)", "counter_uniform(0, i * d + j)"),
        "you ignored the seed",
    ),
    (
        "dropout_numba",
        "the counter down the columns",
        mutate(NUMBA, "counter_uniform(seed, i * d + j)", "counter_uniform(seed, j * n + i)"),
        "your counter runs down the columns",
    ),
    # ----------------------------------------------------------------- ridge_lambda
    (
        "ridge_lambda",
        "lambda chosen by the training loss",
        mutate(RIDGE, "np.mean((X_val @ w - y_val) ** 2)", "np.mean((X_train @ w - y_train) ** 2)"),
        "minimizes the *training* loss",
    ),
    (
        "ridge_lambda",
        "the N left out of the normal equations",
        mutate(RIDGE, "n * lam * np.eye(d)", "lam * np.eye(d)"),
        "you left out the N",
    ),
    (
        "ridge_lambda",
        "lam / 2 as the penalty",
        mutate(RIDGE, "n * lam * np.eye(d)", "n * lam / 2 * np.eye(d)"),
        "not lam / 2 * ||w||^2",
    ),
    (
        "ridge_lambda",
        "the best point of a coarse grid, not refined",
        mutate(RIDGE, "    for _ in range(50):\n", "    for _ in range(0):\n"),
        "a coarse grid stops one grid step away",
    ),
    # ------------------------------------------------------------ regularize_budget
    (
        "regularize_budget",
        "the plain, unregularized network",
        mutate(
            BUDGET,
            _CONFIG,
            '{"width": 256, "dropout": 0.0, "weight_decay": 0.0, "shifted_copies": 0}',
        ),
        "this is the plain, unregularized network",
    ),
    (
        "regularize_budget",
        "too little regularization (dropout 0.1 alone)",
        mutate(
            BUDGET,
            _CONFIG,
            '{"width": 256, "dropout": 0.1, "weight_decay": 0.0, "shifted_copies": 0}',
        ),
        "regularize more, or combine",
    ),
    (
        "regularize_budget",
        "dropout 1.0 (out of range)",
        mutate(BUDGET, '"dropout": 0.5', '"dropout": 1.0'),
        "p is the probability to drop a unit",
    ),
    (
        "regularize_budget",
        "a key missing",
        mutate(BUDGET, ', "shifted_copies": 3', ""),
        "every key is needed",
    ),
]

ALTERNATIVES = [
    (
        "dropout",
        "a boolean mask, scaled in the backward pass; eval returns a copy; binomial draws",
        M("""
        def dropout_forward(x, p, seed, training=True):
            if p < 0 or p >= 1:
                raise ValueError(p)
            if not training or p == 0:
                return x.copy(), None
            keep = np.random.default_rng(seed).binomial(1, 1 - p, size=x.shape).astype(bool)
            return np.where(keep, x / (1 - p), 0).astype(x.dtype), keep


        def dropout_backward(dy, mask, p):
            return np.where(mask, dy / (1 - p), 0).astype(dy.dtype)
        """),
    ),
    (
        "l2_penalty",
        "a dict comprehension and np.vdot",
        M("""
        def l2_penalty(params, lam):
            weights = {k: v for k, v in params.items() if not k.endswith(".b")}
            total = sum(np.vdot(w, w.astype(np.float64)) for w in weights.values())
            grads = {k: (lam * v if k in weights else np.zeros_like(v)) for k, v in params.items()}
            return 0.5 * lam * total, grads
        """),
    ),
    (
        "early_stopping",
        "a small class with step(loss, weights) used by both functions",
        M("""
        import copy


        class Stopper:
            def __init__(self, patience, min_delta):
                self.patience, self.min_delta = patience, min_delta
                self.best = np.inf
                self.best_epoch = None
                self.best_weights = None
                self.bad = 0
                self.epoch = -1

            def step(self, loss, weights=None):
                # True when training must stop after this epoch
                self.epoch += 1
                if self.best_epoch is None or loss < self.best - self.min_delta:
                    self.best, self.best_epoch, self.bad = loss, self.epoch, 0
                    if weights is not None:
                        self.best_weights = copy.deepcopy(weights)
                    return False
                self.bad += 1
                return self.bad >= self.patience


        def early_stopping(val_losses, patience, min_delta=0.0):
            s = Stopper(patience, min_delta)
            for loss in val_losses:
                if s.step(loss):
                    return s.best_epoch, s.epoch
            return s.best_epoch, None


        def train_early_stopping(train_one_epoch, weights, max_epochs, patience, min_delta=0.0):
            s = Stopper(patience, min_delta)
            stopped = None
            while s.epoch + 1 < max_epochs:
                if s.step(train_one_epoch(weights), weights):
                    stopped = s.epoch
                    break
            for k, v in s.best_weights.items():  # restore the best ones in place, like Keras
                weights[k][...] = v
            return s.best_weights, s.best_epoch, stopped
        """),
    ),
    (
        "augment",
        "np.pad and a window; the training part shuffled",
        M("""
        def random_shifts(images, max_shift, seed):
            rng = np.random.default_rng(seed)
            m = max_shift
            n, h, w = images.shape
            padded = np.pad(images, ((0, 0), (m, m), (m, m)))
            out = np.empty_like(images)
            for i in range(n):
                dy = rng.integers(-m, m + 1)
                dx = rng.integers(-m, m + 1)
                out[i] = padded[i, m - dy : m - dy + h, m - dx : m - dx + w]
            return out


        def augmented_split(X, y, val_fraction, max_shift, seed):
            rng = np.random.default_rng(seed)
            idx = rng.permutation(len(X))
            k = int(round(len(X) * val_fraction))
            tr = idx[k:]
            Xt = np.concatenate([X[tr], random_shifts(X[tr], max_shift, seed + 1)])
            yt = np.concatenate([y[tr], y[tr]])
            mix = rng.permutation(len(Xt))
            return Xt[mix], yt[mix], X[idx[:k]].copy(), y[idx[:k]].copy()
        """),
    ),
    (
        "dropout_numba",
        "one flat prange loop over the elements",
        NUMBA[: NUMBA.index("@njit(parallel=True)")]
        + M("""
        @njit(parallel=True)
        def dropout_numba(x, p, seed):
            flat = x.ravel()
            y = np.empty(flat.size, x.dtype)
            mask = np.empty(flat.size, x.dtype)
            keep = x.dtype.type(1.0 / (1.0 - p))
            for k in prange(flat.size):
                m = keep if counter_uniform(seed, k) >= p else x.dtype.type(0.0)
                mask[k] = m
                y[k] = flat[k] * m
            return y.reshape(x.shape), mask.reshape(x.shape)
        """),
    ),
    (
        "ridge_lambda",
        "a fine log grid, then golden-section search",
        M("""
        def best_ridge_lambda(X_train, y_train, X_val, y_val):
            n, d = X_train.shape
            A, b = X_train.T @ X_train, X_train.T @ y_train

            def loss(t):
                w = np.linalg.solve(A + n * np.exp(t) * np.eye(d), b)
                return float(((X_val @ w - y_val) ** 2).mean())

            ts = np.log(np.logspace(-6, 3, 300))
            k = int(np.argmin([loss(t) for t in ts]))
            a, c = ts[max(k - 1, 0)], ts[min(k + 1, len(ts) - 1)]
            g = (np.sqrt(5) - 1) / 2
            for _ in range(80):
                u, v = c - g * (c - a), a + g * (c - a)
                if loss(u) < loss(v):
                    c = v
                else:
                    a = u
            return float(np.exp((a + c) / 2))
        """),
    ),
    (
        "regularize_budget",
        "dropout and shifted copies, no weight decay; dict(...)",
        M("""
        def budget_config():
            return dict(width=256, dropout=0.5, weight_decay=0, shifted_copies=3)
        """),
    ),
]


(
    test_catalogue_has_at_least_four_mutants_per_exercise,
    test_the_solutions_pass_every_check,
    test_mutant_fails_its_own_exercise_only_and_shows_its_hint,
) = catalogue_tests(SET, MUTANTS)


test_correct_alternative_passes_every_check = alternatives_test(SET, ALTERNATIVES)


# ------------------------------------------------------- the grader's own references


def test_the_early_stopping_reference_is_nnlibs_callback():
    """The reference rule against nnlib's EarlyStopping, driven epoch by epoch."""
    from nnlib.callbacks import EarlyStopping

    class Model:
        stop_training = False

    for losses, patience, min_delta in O._loss_cases():
        cb = EarlyStopping(patience, min_delta=min_delta)
        cb.model = Model()
        cb.on_train_begin({})
        for epoch, value in enumerate(losses):
            cb.on_epoch_end(epoch, {"val_loss": value})
            if cb.model.stop_training:
                break
        assert O.early_stopping_ref(losses, patience, min_delta) == (
            cb.best_epoch,
            cb.stopped_epoch,
        ), (losses, patience, min_delta)


def test_the_training_cases_stop_after_their_best_epoch_or_run_out():
    """Each case of train_early_stopping tells the last weights from the best ones."""
    outcomes = []
    for seed, max_epochs, patience, min_delta in O.TRAIN_CASES:
        snaps, losses = O._trajectory(seed, max_epochs)
        best, stopped = O.early_stopping_ref(losses, patience, min_delta)
        outcomes.append(stopped)
        if stopped is not None:
            assert stopped > best and not O._same(snaps[stopped], snaps[best])
    assert outcomes[1] is None and all(s is not None for i, s in enumerate(outcomes) if i != 1)


def test_the_shift_reference_is_nnlibs_random_shift():
    import nnlib as nl

    images = O._noise_images(20, 6, 7, 1)
    shifted, shifts = nl.preprocessing.random_shift(images, 2, seed=3, return_shifts=True)
    for img, out, (dy, dx) in zip(images, shifted, shifts, strict=True):
        assert np.array_equal(out, O.shift_image(img, int(dy), int(dx)))


def test_the_counter_generator_matches_its_numba_version_and_is_uniform():
    ns = SET.solved()
    k = np.arange(100_000, dtype=np.int64)
    ref = O.counter_uniform_ref(12345, k)
    assert all(ns["counter_uniform"](12345, int(i)) == ref[i] for i in (0, 1, 777, 99_999))
    counts = np.histogram(ref, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(counts - 10_000) < 5 * np.sqrt(10_000 * 0.9))  # 5 s.e. per bin


def test_the_ridge_minimum_is_inside_the_range_and_sharp_enough():
    for seed in O.RIDGE_SEEDS:
        problem, lam = O._ridge_case(seed)
        assert 1e-4 < lam < 1e2, (seed, lam)
        at = O.ridge_val_loss(lam, *problem)
        # the minimum: both neighbours 5% away are worse, and the smallest penalty much so
        assert at < O.ridge_val_loss(lam * 1.05, *problem)
        assert at < O.ridge_val_loss(lam / 1.05, *problem)
        assert O.ridge_val_loss(1e-6, *problem) > 1.5 * at


def test_the_budget_target_lies_between_the_plain_and_a_regularized_network():
    plain = {"width": 256, "dropout": 0.0, "weight_decay": 0.0, "shifted_copies": 0}
    regularized = {"width": 256, "dropout": 0.5, "weight_decay": 0.5, "shifted_copies": 3}
    plain_accs = [O.held_out_accuracy(plain, s) for s in O.BUDGET_SEEDS]
    reg_accs = [O.held_out_accuracy(regularized, s) for s in O.BUDGET_SEEDS]
    # measured: 0.805, 0.813, 0.817 (mean 0.812) and 0.860, 0.855, 0.867 (0.861); the
    # margins leave room for another machine's rounding
    assert np.mean(plain_accs) < O.BUDGET_TARGET - 0.02
    assert np.mean(reg_accs) > O.BUDGET_TARGET + 0.015


def test_the_budget_data_has_30_wrong_labels_and_with_true_ones_regularizing_costs():
    """What the exercise says of its data: 30 of the 200 labels are wrong; trained on
    the true labels instead, the plain network beats the regularized one."""
    import nnlib as nl

    X, noisy, Xh, yh = O._budget_split()
    images, labels = nl.datasets.load_digits(images=True)
    train = np.random.default_rng(O.BUDGET_SEED).permutation(len(images))[: O.BUDGET_N]
    assert np.array_equal(X, images[train] / np.float32(16))
    true = labels[train]
    assert int((true != noisy).sum()) == 30
    plain = {"width": 256, "dropout": 0.0, "weight_decay": 0.0, "shifted_copies": 0}
    regularized = {"width": 256, "dropout": 0.5, "weight_decay": 0.5, "shifted_copies": 3}

    def accuracy(config, seed):
        return O.train_budget(config, X, true, seed).evaluate(Xh, yh)["accuracy"]

    # measured: 0.937, 0.946, 0.938 and 0.924, 0.908, 0.931
    plain_accs = [accuracy(plain, s) for s in O.BUDGET_SEEDS]
    reg_accs = [accuracy(regularized, s) for s in O.BUDGET_SEEDS]
    assert min(plain_accs) > 0.93 and np.mean(reg_accs) < np.mean(plain_accs) - 0.01
