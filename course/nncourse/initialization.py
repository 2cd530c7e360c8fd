"""Checks for exercise set 05, initialization and normalization
(``solutions/05_initialization.ipynb``).

* ``init_samplers``: Xavier and He, uniform and normal, judged statistically: the
  sample's standard deviation (and, for the uniform ones, its bound) against the theory,
  with tolerances from the sample size (5 standard errors: a false alarm is a one-in-a-
  million event, while every typical wrong formula is tens of standard errors away on
  the non-square shapes used). Known wrong formulas are recognised the same way.
* ``layer_stats``: per-layer mean, std and saturated (tanh) or dead (ReLU) fraction.
* ``tanh_gain``: graded on the gain the learner's own search finds, against the
  mean-field value computed here by Gauss-Hermite quadrature.
* ``batchnorm``: cs231n's forward and backward, the backward checked against central
  differences of an independent float64 forward pass.
* ``batchnorm_step``: PyTorch's train and eval modes with running statistics.
* ``bn_stats_numba``: the per-feature statistics as a parallel Numba kernel.
* ``fixed_init``: a deep tanh network that does not learn; graded on the outcome (the
  grader trains the learner's initialization itself, seeded).

Shapes: N batch, D features, L layers, H a layer's units.
"""

from __future__ import annotations

import ast
import functools
import itertools
import math
import warnings

import numpy as np

from nnlib.gradient_check import numerical_gradient, relative_error

from .checks import (
    CheckFailed,
    WrongAnswer,
    as_number,
    exercise,
    expect,
    expect_rate,
    matches,
    quiet,
    unpack,
)
from .learner import Unsupported
from .numba_checks import (
    add_numba_subchecks,
    call_nopython,
    dispatcher,
    expect_every_element_written,
    expect_no_races,
)

SIGMAS = 5.0  # statistical checks: 5 standard errors


def _rng(seed):
    return np.random.default_rng(seed)


# =========================================================== 1. Xavier and He samplers

SAMPLERS = ("xavier_uniform", "xavier_normal", "he_uniform", "he_normal")
init_ex = exercise(
    "init_samplers",
    SAMPLERS,
    forbidden=(
        *SAMPLERS,
        "glorot_uniform",
        "glorot_normal",
        "kaiming_uniform",
        "kaiming_normal",
        "lecun_uniform",
        "lecun_normal",
        "init",  # nnlib.init: the library's initializers
    ),
)

# non-square on purpose, one taller and one wider: a fan_in/fan_out swap changes He's
# scale by sqrt(3) on the first and by sqrt(1/8) on the second, and no two formulas
# below agree on both
STAT_SHAPES = ((300, 100), (50, 400))


def _bound(name, fi, fo):
    """The theory: the bound a of U(-a, a), or None for a normal sampler."""
    return {
        "xavier_uniform": math.sqrt(6.0 / (fi + fo)),
        "he_uniform": math.sqrt(6.0 / fi),
    }.get(name)


def _std(name, fi, fo):
    """The theory: the standard deviation of the weights."""
    return {
        "xavier_uniform": math.sqrt(2.0 / (fi + fo)),
        "xavier_normal": math.sqrt(2.0 / (fi + fo)),
        "he_uniform": math.sqrt(2.0 / fi),
        "he_normal": math.sqrt(2.0 / fi),
    }[name]


_SWAP = "you used fan_out where the formula has fan_in: He's scale is sqrt(2 / fan_in)."
# per sampler: (scale as a function of (fan_in, fan_out), hint); the scale is the bound
# a for a uniform sampler, the std for a normal one
WRONG_SCALES = {
    "xavier_uniform": (
        (
            lambda fi, fo: math.sqrt(2.0 / (fi + fo)),
            "your bound is the standard deviation sqrt(2 / (fan_in + fan_out)): U(-a, a) has "
            "std a / sqrt(3), so the bound is sqrt(3) times the std, a = sqrt(6 / (fan_in + "
            "fan_out)).",
        ),
        (
            lambda fi, fo: 6.0 / (fi + fo),
            "your bound is 6 / (fan_in + fan_out), the square root is missing: a = "
            "sqrt(6 / (fan_in + fan_out)).",
        ),
        (
            lambda fi, fo: math.sqrt(3.0 / (fi + fo)),
            "your bound is sqrt(3 / (fan_in + fan_out)): the variance Xavier asks for is "
            "2 / (fan_in + fan_out) (the average of 1/fan_in and 1/fan_out), so a = "
            "sqrt(3 * 2 / (fan_in + fan_out)).",
        ),
        (
            lambda fi, fo: math.sqrt(6.0 / fi),
            "your bound uses fan_in only (that is He's uniform bound): Xavier averages both "
            "fans, a = sqrt(6 / (fan_in + fan_out)).",
        ),
    ),
    "xavier_normal": (
        (
            lambda fi, fo: 2.0 / (fi + fo),
            "your standard deviation is 2 / (fan_in + fan_out), the variance: the std is "
            "its square root, sqrt(2 / (fan_in + fan_out)) (rng.normal takes the std).",
        ),
        (
            lambda fi, fo: math.sqrt(1.0 / (fi + fo)),
            "your std is sqrt(1 / (fan_in + fan_out)): the factor 2 is missing, Var = "
            "2 / (fan_in + fan_out).",
        ),
        (
            lambda fi, fo: math.sqrt(6.0 / (fi + fo)),
            "your std is the uniform bound sqrt(6 / (fan_in + fan_out)): the normal's std is "
            "sqrt(2 / (fan_in + fan_out)).",
        ),
        (
            lambda fi, fo: math.sqrt(2.0 / fi),
            "your std uses fan_in only (that is He's): Xavier averages both fans, "
            "sqrt(2 / (fan_in + fan_out)).",
        ),
        (
            lambda fi, fo: math.sqrt(1.0 / fi),
            "your std is sqrt(1 / fan_in) (LeCun's): Xavier's is sqrt(2 / (fan_in + fan_out)).",
        ),
    ),
    "he_uniform": (
        (
            lambda fi, fo: math.sqrt(2.0 / fi),
            "your bound is the standard deviation sqrt(2 / fan_in): U(-a, a) has std "
            "a / sqrt(3), so the bound is sqrt(3) times the std, a = sqrt(6 / fan_in).",
        ),
        (
            lambda fi, fo: math.sqrt(3.0 / fi),
            "your bound is sqrt(3 / fan_in): the factor 2 of ReLU is missing (ReLU zeroes "
            "half of its inputs, so He doubles the variance), a = sqrt(6 / fan_in).",
        ),
        (lambda fi, fo: math.sqrt(6.0 / fo), _SWAP.replace("sqrt(2 / fan_in)", "sqrt(6 / fan_in)")),
        (
            lambda fi, fo: 6.0 / fi,
            "your bound is 6 / fan_in, the square root is missing: a = sqrt(6 / fan_in).",
        ),
        (
            lambda fi, fo: math.sqrt(6.0 / (fi + fo)),
            "your bound is Xavier's, sqrt(6 / (fan_in + fan_out)): He's uses fan_in only, "
            "a = sqrt(6 / fan_in).",
        ),
    ),
    "he_normal": (
        (
            lambda fi, fo: 2.0 / fi,
            "your standard deviation is 2 / fan_in, the variance: the std is its square "
            "root, sqrt(2 / fan_in) (rng.normal takes the std).",
        ),
        (
            lambda fi, fo: math.sqrt(1.0 / fi),
            "your std is sqrt(1 / fan_in): the factor 2 of ReLU is missing (ReLU zeroes half "
            "of its inputs, so He doubles the variance), sqrt(2 / fan_in).",
        ),
        (lambda fi, fo: math.sqrt(2.0 / fo), _SWAP),
        (
            lambda fi, fo: math.sqrt(2.0 / (fi + fo)),
            "your std is Xavier's, sqrt(2 / (fan_in + fan_out)): He's uses fan_in only, "
            "sqrt(2 / fan_in).",
        ),
        (
            lambda fi, fo: math.sqrt(6.0 / fi),
            "your std is the uniform bound sqrt(6 / fan_in): the normal's std is sqrt(2 / fan_in).",
        ),
    ),
}


def _weights(fn, name, fi, fo, seed):
    """``fn(fi, fo, seed)``, a float32 array of shape (fi, fo), else a failure."""
    w = fn(fi, fo, seed)
    call = f"{name}({fi}, {fo}, seed={seed})"
    if not isinstance(w, np.ndarray):
        kind = repr(w) if isinstance(w, Unsupported) else type(w).__name__
        raise CheckFailed(f"{call}: expected a NumPy array, got {kind}")
    if w.shape != (fi, fo):
        message = f"{call}: shape {w.shape}, expected (fan_in, fan_out) = {(fi, fo)}"
        if w.shape == (fo, fi):
            message += (
                ". Hint: your shape is (fan_out, fan_in): nnlib's dense layer computes "
                "X @ W with X of shape (N, fan_in), so W is (fan_in, fan_out)."
            )
        raise CheckFailed(message)
    if w.dtype != np.float32:
        raise CheckFailed(
            f"{call}: dtype {w.dtype}, expected float32 (nnlib's default). Hint: "
            "rng.normal(...) and rng.uniform(...) give float64: end with .astype(np.float32)."
        )
    if not np.isfinite(w).all():
        raise CheckFailed(f"{call}: the weights hold NaN or inf")
    return w


@init_ex.subcheck("each sampler returns float32 weights of shape (fan_in, fan_out)")
def _(*samplers):
    for name, fn in zip(SAMPLERS, samplers, strict=True):
        for fi, fo in ((30, 10), (10, 40), (1, 7), (7, 1)):
            _weights(fn, name, fi, fo, 0)


def _std_se(n: int, kurtosis: float) -> float:
    """The relative standard error of a sample standard deviation of ``n`` values of a
    distribution of ``kurtosis`` (3 normal, 1.8 uniform): sqrt((kurtosis - 1) / (4 n))."""
    return math.sqrt((kurtosis - 1.0) / (4.0 * n))


def _scale_fits(measured, scale, n, uniform) -> bool:
    """``measured`` (the bound max|w| of a uniform sample, the std of a normal one) is what
    ``scale`` gives, within the sampling error of ``n`` values."""
    if uniform:  # P(max|w| < a (1 - k/n)) = (1 - k/n)^n ~ exp(-k): k = 20 is 2e-9
        return scale * (1 - 20.0 / n) <= measured <= scale * (1 + 1e-6)
    return abs(measured - scale) <= SIGMAS * _std_se(n, 3.0) * scale


def _sampler_check(fn, name):
    uniform = name.endswith("uniform")
    samples = [
        (fi, fo, _weights(fn, name, fi, fo, 11 + i)) for i, (fi, fo) in enumerate(STAT_SHAPES)
    ]
    measured = [
        float(np.abs(w.astype(np.float64)).max()) if uniform else float(w.astype(np.float64).std())
        for _, _, w in samples
    ]
    for (fi, fo, w), got in zip(samples, measured, strict=True):
        n = w.size
        w64 = w.astype(np.float64)
        call = f"{name}({fi}, {fo}, seed)"
        std = _std(name, fi, fo)
        scale = _bound(name, fi, fo) if uniform else std
        if not _scale_fits(got, scale, n, uniform):
            what = "the largest |w|" if uniform else "the standard deviation"
            expected = "a" if uniform else "std"
            message = (
                f"{call}: {what} of the {n} weights is {got:.5g}, expected {expected} = "
                f"{scale:.5g}"
                + (
                    f" (within {SIGMAS:g} standard errors, {SIGMAS * _std_se(n, 3.0):.1%})"
                    if not uniform
                    else ""
                )
            )
            for wrong, hint in WRONG_SCALES[name]:
                if all(
                    _scale_fits(m, wrong(a, b), c.size, uniform)
                    for (a, b, c), m in zip(samples, measured, strict=True)
                ):
                    message += f"\n  Hint: {hint}"
                    break
            raise CheckFailed(message)
        mean = float(w64.mean())
        if abs(mean) > SIGMAS * std / math.sqrt(n):
            message = f"{call}: the mean of the weights is {mean:.4g}, expected 0"
            if w64.min() >= 0:
                message += (
                    "\n  Hint: every weight is >= 0: draw from U(-a, a) (rng.uniform(-a, a, "
                    "shape)), not from U(0, a) (rng.random(shape) * a)."
                    if uniform
                    else "\n  Hint: every weight is >= 0: the weights are centred on 0."
                )
            raise CheckFailed(message)
        if uniform:
            got_std = float(w64.std())
            tol = SIGMAS * _std_se(n, 1.8) * std
            if abs(got_std - std) > tol:
                raise CheckFailed(
                    f"{call}: the standard deviation is {got_std:.5g}, expected a / sqrt(3) "
                    f"= {std:.5g} for U(-a, a)"
                )
            inner = int((np.abs(w64) < scale / 2).sum())
            try:
                expect_rate(inner, n, 0.5, f"{call}: weights with |w| < a/2")
            except CheckFailed as err:
                raise CheckFailed(
                    f"{err}\n  Hint: a uniform U(-a, a) puts half of the weights within "
                    "a/2 of 0; yours are not uniform (rng.uniform(-a, a, shape))."
                ) from None
        else:
            tails = int((np.abs(w64) > 2 * std).sum())
            try:
                expect_rate(tails, n, math.erfc(math.sqrt(2.0)), f"{call}: weights beyond 2 std")
            except CheckFailed as err:
                raise CheckFailed(
                    f"{err}\n  Hint: a normal distribution puts 4.55% of its values beyond "
                    "two standard deviations; yours are not normal (rng.normal(0, std, shape) "
                    "or rng.standard_normal(shape) * std)."
                ) from None


@init_ex.subcheck("xavier_uniform draws U(-a, a), a = sqrt(6 / (fan_in + fan_out))")
def _(xavier_uniform, xavier_normal, he_uniform, he_normal):
    _sampler_check(xavier_uniform, "xavier_uniform")


@init_ex.subcheck("xavier_normal draws N(0, 2 / (fan_in + fan_out))")
def _(xavier_uniform, xavier_normal, he_uniform, he_normal):
    _sampler_check(xavier_normal, "xavier_normal")


@init_ex.subcheck("he_uniform draws U(-a, a), a = sqrt(6 / fan_in)")
def _(xavier_uniform, xavier_normal, he_uniform, he_normal):
    _sampler_check(he_uniform, "he_uniform")


@init_ex.subcheck("he_normal draws N(0, 2 / fan_in)")
def _(xavier_uniform, xavier_normal, he_uniform, he_normal):
    _sampler_check(he_normal, "he_normal")


@init_ex.subcheck("the same seed gives the same weights, another seed other weights")
def _(*samplers):
    for name, fn in zip(SAMPLERS, samplers, strict=True):
        a, b, c = (_weights(fn, name, 60, 40, seed) for seed in (7, 7, 8))
        if not np.array_equal(a, b):
            raise CheckFailed(
                f"{name}(60, 40, seed=7) gave different weights on two calls. Hint: build "
                "the generator from the seed, rng = np.random.default_rng(seed)."
            )
        if np.array_equal(a, c):
            raise CheckFailed(
                f"{name}: seeds 7 and 8 gave the same weights. Hint: use the seed argument, "
                "np.random.default_rng(seed), not a fixed seed."
            )


# NumPy's legacy functions draw from one hidden global generator
_GLOBAL_RANDOM = frozenset(
    "seed rand randn randint random random_sample ranf sample normal uniform "
    "standard_normal choice shuffle permutation".split()
)


def global_random_calls(source: str | None) -> list[str]:
    """``np.random.randn``-style uses of NumPy's global random state in ``source``."""
    if not source:
        return []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in _GLOBAL_RANDOM
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "random"
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id in ("np", "numpy")
        ):
            found.append(ast.unparse(node))
    return found


@init_ex.subcheck("they draw from a generator made from the seed, not NumPy's global state")
def _(*samplers):
    for name, fn in zip(SAMPLERS, samplers, strict=True):
        used = global_random_calls(fn.source)
        if used:
            raise CheckFailed(
                f"your {name} uses `{used[0]}`, NumPy's global random state: every call "
                "anywhere in the program (a library's, another layer's) moves it, so the "
                "seed does not decide your weights alone. Hint: rng = "
                "np.random.default_rng(seed), then rng.normal(...) or rng.uniform(...)."
            )


# ===================================================================== 2. layer_stats

stats_ex = exercise("layer_stats", ["layer_stats"])
SATURATED = 0.97  # |tanh| above this: the unit's derivative 1 - t^2 is below 0.06


def layer_stats_ref(activations, kind):
    """(L, 3) float64: mean, std, and the saturated (tanh) or dead (relu) fraction."""
    rows = []
    for a in activations:
        a = np.asarray(a, np.float64)
        if a.shape[0] == 0:
            rows.append([np.nan] * 3)
            continue
        if kind == "tanh":
            frac = np.mean(np.abs(a) > SATURATED)
        else:
            frac = np.mean((a <= 0).all(axis=0))
        rows.append([a.mean(), a.std(), frac])
    return np.array(rows, np.float64).reshape(len(rows), 3)


def _stats_variant(std_ddof=0, one_sided=False, per_unit=False, count=False, dead="all"):
    def stats(activations, kind):
        rows = []
        for a in activations:
            a = np.asarray(a, np.float64)
            std = a.std(axis=0).mean() if per_unit else a.std(ddof=std_ddof)
            if kind == "tanh":
                hit = (a > SATURATED) if one_sided else (np.abs(a) > SATURATED)
                frac = hit.sum() if count else hit.mean()
            elif dead == "elements":
                frac = np.mean(a <= 0)
            elif dead == "any":
                frac = np.mean((a <= 0).any(axis=0))
            elif dead == "strict":
                frac = np.mean((a < 0).all(axis=0))
            else:
                frac = np.mean((a <= 0).all(axis=0))
            rows.append([a.mean(), std, frac])
        return np.array(rows)

    return stats


STATS_WRONG = [
    WrongAnswer(
        _stats_variant(std_ddof=1),
        "your std divides by N - 1 (ddof=1): the spread of the layer's activations is the "
        "plain (population) std, a.std().",
    ),
    WrongAnswer(
        _stats_variant(per_unit=True),
        "your std is the mean of each unit's std (axis=0): take the std of all the layer's "
        "activations together, a.std().",
    ),
    WrongAnswer(
        _stats_variant(one_sided=True),
        "you counted only t > 0.97: tanh saturates at both ends, |t| > 0.97.",
    ),
    WrongAnswer(
        _stats_variant(count=True),
        "your saturation is a count: give the fraction, np.mean(np.abs(a) > 0.97).",
    ),
    WrongAnswer(
        _stats_variant(dead="elements"),
        "your dead fraction counts zero entries: a dead unit is one that is 0 for every "
        "example of the batch, np.mean((a <= 0).all(axis=0)).",
    ),
    WrongAnswer(
        _stats_variant(dead="any"),
        "you counted units that are 0 for some example (any): a dead unit is 0 for every "
        "example, .all(axis=0).",
    ),
    WrongAnswer(
        _stats_variant(dead="strict"),
        "ReLU outputs are never negative, so a < 0 finds no dead unit: a dead unit's "
        "outputs are all 0 (a <= 0).",
    ),
]


def _tanh_stack(dtype=np.float64, seed=40):
    rng = _rng(seed)
    widths, scales = (12, 20, 9, 5), (0.4, 3.0, 1.0, 6.0)
    h, out = rng.standard_normal((64, 8)), []
    for width, scale in zip(widths, scales, strict=True):
        h = np.tanh(h @ (rng.standard_normal((h.shape[1], width)) * scale / math.sqrt(h.shape[1])))
        out.append(h.astype(dtype))
    return out


def _relu_stack(seed=41):
    rng = _rng(seed)
    out = []
    for width, shift in ((10, 0.0), (16, -1.5), (6, -3.0)):
        z = rng.standard_normal((32, width)) + shift
        z[:, : width // 3] -= 10.0  # some units dead for every example
        out.append(np.maximum(z, 0.0))
    return out


def _expect_stats(layer_stats, acts, kind, what):
    got = layer_stats(acts, kind)
    want = layer_stats_ref(acts, kind)
    if isinstance(got, (list, tuple)):
        got = np.array(got, dtype=np.float64)  # a list of rows is fine
    if isinstance(got, np.ndarray) and got.shape == want.shape[::-1] and got.shape != want.shape:
        raise CheckFailed(
            f"{what}: shape {got.shape}, expected (L, 3) = {want.shape}. Hint: one row per "
            "layer, [mean, std, fraction]: np.array(rows) of shape (L, 3)."
        )
    if isinstance(got, np.ndarray) and got.shape == want.shape and got.dtype != np.float64:
        raise CheckFailed(
            f"{what}: dtype {got.dtype}, expected float64. Hint: compute the statistics in "
            "float64 (a.astype(np.float64)) and return a float64 array."
        )
    expect(got, want, what, known=STATS_WRONG, args=(acts, kind))


@stats_ex.subcheck("layer_stats: mean, std and saturated fraction of 4 tanh layers")
def _(layer_stats):
    _expect_stats(layer_stats, _tanh_stack(), "tanh", "layer_stats(activations, 'tanh')")


@stats_ex.subcheck("layer_stats: mean, std and dead fraction of 3 ReLU layers")
def _(layer_stats):
    _expect_stats(layer_stats, _relu_stack(), "relu", "layer_stats(activations, 'relu')")


@stats_ex.subcheck("float32 activations: the statistics are computed and returned in float64")
def _(layer_stats):
    acts = [a + np.float32(3.0) for a in _tanh_stack(np.float32, seed=42)]
    acts = [np.clip(a, -1, 1) for a in acts] + [np.full((4096, 8), 0.1, np.float32)]
    what = "layer_stats(float32 activations, 'tanh')"
    got = layer_stats(acts, "tanh")
    want = layer_stats_ref(acts, "tanh")
    in_float32 = WrongAnswer(
        lambda: np.array(
            [[a.mean(), a.std(), np.mean(np.abs(a) > SATURATED)] for a in acts], np.float64
        ),
        "you computed in float32 (the mean of a float32 array is float32, rounded to 7 "
        "digits): convert first, a = a.astype(np.float64).",
    )
    if isinstance(got, np.ndarray) and got.shape == want.shape and got.dtype != np.float64:
        _expect_stats(layer_stats, acts, "tanh", what)
    expect(got, want, what, known=[in_float32])


@stats_ex.subcheck("an empty batch gives NaN statistics without a warning; one example works")
def _(layer_stats):
    acts = [np.empty((0, 4)), np.empty((0, 2))]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = layer_stats(acts, "tanh")
    if any(issubclass(w.category, RuntimeWarning) for w in caught):
        raise CheckFailed(
            "layer_stats on two layers of an empty batch (shapes (0, 4), (0, 2)): NumPy "
            f"warned ({caught[0].message}). Hint: a layer with no example has no mean: "
            "append [np.nan, np.nan, np.nan] for it (if a.shape[0] == 0) instead of calling "
            "np.mean on it."
        )
    if isinstance(got, (list, tuple)):
        got = np.array(got, dtype=np.float64)
    want = np.full((2, 3), np.nan)
    if not (isinstance(got, np.ndarray) and got.shape == (2, 3) and np.isnan(got).all()):
        raise CheckFailed(
            f"layer_stats on two layers of an empty batch (shapes (0, 4), (0, 2)) gave "
            f"{got!r}, expected a (2, 3) array of NaN. Hint: a layer with no example has "
            "no mean: append [np.nan, np.nan, np.nan] for it (if a.shape[0] == 0), without "
            "calling np.mean on it (that warns)."
        )
    expect(got, want, "layer_stats on an empty batch")
    one = [np.array([[0.5, -0.99, 0.0]])]
    _expect_stats(layer_stats, one, "tanh", "layer_stats on a batch of one example")
    _expect_stats(layer_stats, [np.array([[0.0, 2.0]])], "relu", "layer_stats on one ReLU example")


@stats_ex.subcheck("no layers gives shape (0, 3); another kind raises ValueError")
def _(layer_stats):
    got = layer_stats([], "relu")
    if isinstance(got, (list, tuple)):
        got = np.array(got, dtype=np.float64).reshape(-1, 3) if len(got) == 0 else got
    expect(got, np.zeros((0, 3)), "layer_stats([], 'relu')")
    try:
        result = layer_stats(_relu_stack()[:1], "sigmoid")
    except ValueError:
        return
    raise CheckFailed(
        f"layer_stats(activations, 'sigmoid') returned {type(result).__name__}, expected a "
        "ValueError. Hint: kind is 'tanh' or 'relu': raise ValueError(f\"kind must be "
        "'tanh' or 'relu'; got {kind!r}\") for anything else."
    )


# ====================================================== 3. discover the gain for tanh

gain_ex = exercise("tanh_gain", ["find_tanh_gain"], forbidden=("find_tanh_gain", "gain", "init"))

GAIN_DEPTH, GAIN_WIDTH = 30, 100
# The tolerance: at width 100 the gain one seeded stack gives varies from seed to seed
# by about 1.2% (finite width: each layer's variance is a sum over 100 units, measured
# here over 8 seeds and three targets); 5% is 4 of those, and every wrong criterion
# below (the variance matched to the target, the tanh outputs measured, weights of std
# g / n, one gain for every target) is more than 10% away on some target.
GAIN_RTOL = 0.05
GAIN_TARGETS = (1.0, 0.5, 2.0)

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(121)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()  # E[f(z)], z ~ N(0, 1), = sum w_i f(z_i)


def _tanh_sq(s: float) -> float:
    """E[tanh(s z)^2], z ~ N(0, 1), by Gauss-Hermite quadrature."""
    return float(np.sum(_WEIGHTS * np.tanh(s * _NODES) ** 2))


def mean_field_gain(target_std: float) -> float:
    """The gain g at which pre-activations of std ``target_std`` are a fixed point of a
    wide tanh stack with W ~ N(0, g^2 / n): Var(a') = g^2 E[tanh(a)^2] = target_std^2."""
    return target_std / math.sqrt(_tanh_sq(target_std))


def _gain_for_tanh_outputs(target_std: float) -> float | None:
    """The gain at which the tanh *outputs* settle at std ``target_std`` (a wrong
    criterion); None when tanh cannot reach it (std of tanh < 1)."""
    if target_std >= 1:
        return None
    lo, hi = 1e-6, 50.0  # E[tanh(s z)^2] increases with s
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _tanh_sq(mid) < target_std**2 else (lo, mid)
    return (lo + hi) / 2 / target_std


GAIN_WRONG = (
    (
        lambda t: mean_field_gain(math.sqrt(t)),
        "your gain makes the *variance* of the pre-activations equal target_std: match their "
        "standard deviation, a.std() (not a.var()), to target_std.",
    ),
    (
        _gain_for_tanh_outputs,
        "your gain keeps the std of the tanh outputs h = tanh(a) at target_std: measure the "
        "pre-activations a = h_prev @ W of the last layer instead.",
    ),
    (
        lambda t: math.sqrt(GAIN_WIDTH) * mean_field_gain(t),
        "your gain is sqrt(n) = 10 times too large: the weights should have variance "
        "g^2 / n, std g / sqrt(n) (yours have std g / n).",
    ),
)


def _gain_hint(find_tanh_gain, found: dict) -> str:
    """The hint for wrong gains ``found`` ({target: gain}); the other targets are asked
    for too, so that a wrong criterion is named only when it fits all of them."""
    for t in GAIN_TARGETS:
        if t not in found:
            found[t] = quiet(lambda t=t: as_number(find_tanh_gain(t), "find_tanh_gain"))
    found = {t: g for t, g in found.items() if g is not None}
    for wrong, hint in GAIN_WRONG:
        pairs = [(g, quiet(wrong, t)) for t, g in found.items()]
        pairs = [(g, w) for g, w in pairs if w is not None]
        if pairs and all(math.isclose(g, w, rel_tol=GAIN_RTOL) for g, w in pairs):
            return hint
    values = list(found.values())
    if len(values) == len(GAIN_TARGETS) and max(values) <= min(values) * 1.01:
        return (
            "your function gives the same gain for every target_std: search for the gain "
            "(e.g. bisect on g) that gives the target_std it is called with."
        )
    return ""


@gain_ex.subcheck("find_tanh_gain(1.0): the gain that keeps a deep tanh stack at std 1")
def _(find_tanh_gain):
    _check_gains(find_tanh_gain, (1.0,))


@gain_ex.subcheck("find_tanh_gain finds the gain for target_std 0.5 and 2.0 as well")
def _(find_tanh_gain):
    _check_gains(find_tanh_gain, GAIN_TARGETS)


def _check_gains(find_tanh_gain, targets):
    found = {t: as_number(find_tanh_gain(t), f"find_tanh_gain({t})") for t in targets}
    bad = [
        t for t, g in found.items() if not math.isclose(g, mean_field_gain(t), rel_tol=GAIN_RTOL)
    ]
    if not bad:
        return
    t = bad[0]
    message = (
        f"find_tanh_gain({t}) = {found[t]:.4g}; the pre-activations of a deep tanh stack "
        f"settle at std {t} for g = {mean_field_gain(t):.4g} (within {GAIN_RTOL:.0%}: the "
        "spread of one finite stack)"
    )
    hint = _gain_hint(find_tanh_gain, dict(found))
    if hint:
        message += f"\n  Hint: {hint}"
    raise CheckFailed(message)


# ======================================================= 4. BatchNorm forward, backward

bn_ex = exercise(
    "batchnorm",
    ["batchnorm_forward", "batchnorm_backward"],
    # the cache holds what backward needs, x itself if you like
    may_alias=("batchnorm_forward",),
    forbidden=(
        "batchnorm_forward",
        "batchnorm_backward",
        "batchnorm",
        "batch_norm",
        "batch_norm_backward",
        "batchnorm1d",
        "gradient_check",
        "numerical_gradient",
        "dispatch",
        "_backend",
        "layers",
        "model",
    ),
)
GRAD_TOL = 1e-6  # cs231n: below 1e-7 right, above 1e-4 almost surely a bug


def bn_forward_ref(x, gamma, beta, eps):
    """float64 y (N, D) = gamma * (x - mean) / sqrt(var + eps) + beta, var biased."""
    x = np.asarray(x, np.float64)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def bn_backward_ref(dy, x, gamma, eps):
    """float64 (dx (N, D), dgamma (D,), dbeta (D,)), the compact form."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    n = x.shape[0]
    mu = x.mean(axis=0)
    inv = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=0) + eps)
    xhat = (x - mu) * inv
    dbeta = dy.sum(axis=0)
    dgamma = (dy * xhat).sum(axis=0)
    dx = gamma * inv / n * (n * dy - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta


def _bn_data(n=16, d=5, seed=50, dtype=np.float64):
    """x with features of very different means and scales (one of variance 1e-4, where
    eps matters), gamma, beta and an upstream gradient dy."""
    rng = _rng(seed)
    scales = np.array([1.0, 0.01, 5.0, 0.3, 2.0, 0.7, 1.5])[:d]
    shifts = np.array([0.5, -3.0, 10.0, 0.0, -1.0, 2.0, 4.0])[:d]
    x = rng.standard_normal((n, d)) * scales + shifts
    gamma = rng.uniform(0.5, 2.0, d)
    beta = rng.standard_normal(d)
    dy = rng.standard_normal((n, d))
    return tuple(a.astype(dtype) for a in (x, gamma, beta, dy))


def _bn_forward_variant(ddof=0, eps_outside=False, axis=0, centred=True, affine="both"):
    def forward(x, gamma, beta, eps):
        mu = x.mean(axis=axis, keepdims=True)
        var = (
            x.var(axis=axis, ddof=ddof, keepdims=True)
            if centred
            else (x**2).mean(axis=axis, keepdims=True)
        )
        xhat = (x - mu) / (np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps))
        if affine == "none":
            return xhat
        if affine == "swapped":
            return beta * xhat + gamma
        return gamma * xhat + (beta if affine == "both" else 0.0)

    return forward


FORWARD_WRONG = [
    WrongAnswer(
        _bn_forward_variant(ddof=1),
        "you normalized with the unbiased variance (ddof=1, N - 1): BatchNorm normalizes "
        "with the batch's biased variance, the mean of (x - mean)^2 (divide by N).",
    ),
    WrongAnswer(
        _bn_forward_variant(eps_outside=True),
        "eps is outside the square root: divide by sqrt(var + eps).",
    ),
    WrongAnswer(
        _bn_forward_variant(axis=1),
        "you normalized each example over its features (axis=1, that is LayerNorm): "
        "BatchNorm normalizes each feature over the batch, axis=0.",
    ),
    WrongAnswer(
        _bn_forward_variant(centred=False),
        "your variance is the mean of x^2: subtract the mean first, var = mean((x - mean)^2).",
    ),
    WrongAnswer(
        _bn_forward_variant(affine="none"),
        "you returned x_hat: scale and shift it, y = gamma * x_hat + beta.",
    ),
    WrongAnswer(
        _bn_forward_variant(affine="swapped"),
        "gamma and beta are swapped: y = gamma * x_hat + beta (gamma scales, beta shifts).",
    ),
    WrongAnswer(
        _bn_forward_variant(affine="no beta"),
        "beta is missing: y = gamma * x_hat + beta.",
    ),
]


def _dx_variant(terms):
    def dx(dy, x, gamma, eps):
        n = x.shape[0]
        mu = x.mean(axis=0)
        inv = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=0) + eps)
        xhat = (x - mu) * inv
        if terms == "none":
            return dy * gamma * inv
        if terms == "no gamma":
            return inv / n * (n * dy - dy.sum(0) - xhat * (dy * xhat).sum(0))
        if terms == "mean only":
            return gamma * inv / n * (n * dy - dy.sum(0))
        return gamma * inv / n * (n * dy - xhat * (dy * xhat).sum(0))  # "var only"

    return dx


DX_WRONG = [
    WrongAnswer(
        _dx_variant("none"),
        "your dx = dy * gamma / sqrt(var + eps) treats the mean and the variance as "
        "constants: both depend on every x of the batch, which adds two terms, "
        "dx = gamma / (N sqrt(var + eps)) * (N dy - sum(dy) - x_hat * sum(dy * x_hat)).",
    ),
    WrongAnswer(
        _dx_variant("mean only"),
        "your dx has the path through the mean but not the one through the variance: "
        "subtract x_hat * sum(dy * x_hat) as well.",
    ),
    WrongAnswer(
        _dx_variant("var only"),
        "your dx has the path through the variance but not the one through the mean: "
        "subtract sum(dy) (over the batch) as well.",
    ),
    WrongAnswer(
        _dx_variant("no gamma"),
        "your dx misses gamma: y = gamma * x_hat, so dx_hat = dy * gamma.",
    ),
]
DGAMMA_WRONG = [
    WrongAnswer(
        lambda dy, x, gamma, eps: dy.sum(axis=0),
        "your dgamma is sum(dy): y = gamma * x_hat + beta, so dgamma = sum(dy * x_hat) "
        "(sum(dy) is dbeta).",
    ),
]
DBETA_WRONG = [
    WrongAnswer(
        lambda dy, x, gamma, eps: bn_backward_ref(dy, x, gamma, eps)[1],
        "your dbeta is sum(dy * x_hat), which is dgamma: dbeta = sum(dy) over the batch.",
    ),
]


def _forward(batchnorm_forward, x, gamma, beta, eps):
    y, cache = unpack(batchnorm_forward(x, gamma, beta, eps), ("y", "cache"), "batchnorm_forward")
    return y, cache


def _expect_sums(got, want, what, known, args):
    if isinstance(got, np.ndarray) and got.ndim == 2 and got.shape[1:] == want.shape:
        raise CheckFailed(
            f"{what}: shape {got.shape}, expected {want.shape}. Hint: gamma and beta are "
            "shared by every example, so their gradients add up over the batch: "
            ".sum(axis=0)."
        )
    expect(got, want, what, known=known, args=args)


@bn_ex.subcheck("batchnorm_forward normalizes each feature over the batch, then gamma, beta")
def _(batchnorm_forward, batchnorm_backward):
    for eps, seed in ((1e-5, 50), (0.1, 51)):
        x, gamma, beta, _ = _bn_data(seed=seed)
        y, _ = _forward(batchnorm_forward, x, gamma, beta, eps)
        expect(
            y,
            bn_forward_ref(x, gamma, beta, eps),
            f"y of batchnorm_forward(x, gamma, beta, eps={eps}), x of shape {x.shape}",
            known=FORWARD_WRONG,
            args=(x, gamma, beta, eps),
        )


def _backward(batchnorm_forward, batchnorm_backward, x, gamma, beta, dy, eps):
    _, cache = _forward(batchnorm_forward, x, gamma, beta, eps)
    return unpack(batchnorm_backward(dy, cache), ("dx", "dgamma", "dbeta"), "batchnorm_backward")


@functools.lru_cache(maxsize=4)
def _numerical_bn_grads(seed, eps):
    """Central differences of sum(dy * y) of the grader's float64 forward pass."""
    x, gamma, beta, dy = _bn_data(seed=seed)
    return (
        numerical_gradient(lambda v: float(np.sum(dy * bn_forward_ref(v, gamma, beta, eps))), x),
        numerical_gradient(lambda v: float(np.sum(dy * bn_forward_ref(x, v, beta, eps))), gamma),
        numerical_gradient(lambda v: float(np.sum(dy * bn_forward_ref(x, gamma, v, eps))), beta),
    )


@bn_ex.subcheck("batchnorm_backward passes a float64 gradient check (central differences)")
def _(batchnorm_forward, batchnorm_backward):
    eps = 1e-3
    x, gamma, beta, dy = _bn_data(seed=52)
    got = _backward(batchnorm_forward, batchnorm_backward, x, gamma, beta, dy, eps)
    numeric = _numerical_bn_grads(52, eps)
    args = (dy, x, gamma, eps)
    # dbeta and dgamma first: a wrong dgamma makes dx wrong too, and the hint is dgamma's
    for k in (2, 1, 0):
        name, g, num = ("dx", "dgamma", "dbeta")[k], got[k], numeric[k]
        known = (DX_WRONG, DGAMMA_WRONG, DBETA_WRONG)[k]
        what = f"{name} of batchnorm_backward, x of shape {x.shape}"
        if not isinstance(g, np.ndarray) or g.shape != num.shape:
            _expect_sums(g, num, what, known, args)
        err = relative_error(g, num)
        if not err <= GRAD_TOL:
            message = (
                f"{what} disagrees with central differences of the forward pass: relative "
                f"error {err:.2e} (tolerance {GRAD_TOL:.0e}; cs231n's rule: below 1e-7 is "
                "right, above 1e-4 is almost certainly a bug)"
            )
            for wrong in known:
                if matches(g, quiet(wrong.fn, *args)):
                    message += f"\n  Hint: {wrong.hint}"
                    break
            raise CheckFailed(message)


@bn_ex.subcheck("batchnorm_backward equals the exact gradients (dx, dgamma, dbeta)")
def _(batchnorm_forward, batchnorm_backward):
    for n, d, seed in ((16, 5, 53), (2, 3, 54), (7, 1, 55)):
        x, gamma, beta, dy = _bn_data(n, d, seed)
        got = _backward(batchnorm_forward, batchnorm_backward, x, gamma, beta, dy, 1e-5)
        want = bn_backward_ref(dy, x, gamma, 1e-5)
        args = (dy, x, gamma, 1e-5)
        for k in (2, 1, 0):
            name, g, w = ("dx", "dgamma", "dbeta")[k], got[k], want[k]
            known = (DX_WRONG, DGAMMA_WRONG, DBETA_WRONG)[k]
            _expect_sums(g, w, f"{name} for x of shape {(n, d)}", known, args)


@bn_ex.subcheck("float32 x, gamma, beta and dy stay float32 in both passes")
def _(batchnorm_forward, batchnorm_backward):
    # features near 0 of std near 1: float32 resolves them (a feature at -3 of std 0.01,
    # as in the float64 checks, keeps only 5 digits of x - mean in float32)
    x, gamma, beta, dy = _bn_data(seed=56)
    x = (_rng(57).standard_normal(x.shape) * 1.5 + 0.5).astype(np.float32)
    gamma, beta, dy = (a.astype(np.float32) for a in (gamma, beta, dy))
    eps = 1e-5
    y, _ = _forward(batchnorm_forward, x, gamma, beta, eps)
    expect(y, bn_forward_ref(x, gamma, beta, eps).astype(np.float32), "float32 y")
    got = _backward(batchnorm_forward, batchnorm_backward, x, gamma, beta, dy, eps)
    for name, g, w in zip(
        ("dx", "dgamma", "dbeta"), got, bn_backward_ref(dy, x, gamma, eps), strict=True
    ):
        expect(g, w.astype(np.float32), f"float32 {name}")


# ================================================ 5. running statistics, train and eval

step_ex = exercise(
    "batchnorm_step",
    ["batchnorm_step"],
    # in eval mode the running statistics come back unchanged: the same arrays will do
    may_alias=("batchnorm_step",),
    forbidden=("batchnorm_step", "batchnorm", "batch_norm", "batchnorm1d", "layers", "model"),
)
_STEP_SIG = "x, running_mean, running_var, gamma, beta, training, momentum, eps"


def bn_step_ref(
    x,
    running_mean,
    running_var,
    gamma,
    beta,
    training,
    momentum,
    eps,
    *,
    running_ddof=1,
    norm_ddof=0,
    reverse=False,
    train_with_running=False,
    eval_updates=False,
    eval_with_batch=False,
    no_update=False,
):
    """PyTorch's rule in float64 (the keywords make the known wrong variants):
    (y, new running_mean, new running_var)."""
    x = np.asarray(x, np.float64)
    rm, rv = np.asarray(running_mean, np.float64), np.asarray(running_var, np.float64)
    n = x.shape[0]
    mean, var = x.mean(axis=0), x.var(axis=0, ddof=norm_ddof)
    if training or eval_updates:
        unbiased = x.var(axis=0, ddof=running_ddof) if n > running_ddof else var
        keep = momentum if reverse else 1 - momentum
        new_rm, new_rv = keep * rm + (1 - keep) * mean, keep * rv + (1 - keep) * unbiased
        if no_update:
            new_rm, new_rv = rm, rv
    else:
        new_rm, new_rv = rm, rv
    if training:
        m, v = (rm, rv) if train_with_running else (mean, var)
    else:
        m, v = (mean, var) if eval_with_batch else (rm, rv)
    return gamma * (x - m) / np.sqrt(v + eps) + beta, new_rm, new_rv


STEP_WRONG = (
    (
        {"running_ddof": 0},
        "your running variance averages the biased batch variance: PyTorch's running "
        "estimate uses the unbiased one, N / (N - 1) times it (x.var(axis=0, ddof=1)), "
        "while the normalization uses the biased one.",
    ),
    (
        {"reverse": True},
        "your momentum is reversed: running = (1 - momentum) * running + momentum * batch "
        "(PyTorch's momentum is the weight of the new batch, 0.1 by default).",
    ),
    (
        {"train_with_running": True},
        "in training mode you normalized with the running statistics: training normalizes "
        "with the batch's own mean and variance; the running ones are for eval mode.",
    ),
    (
        {"norm_ddof": 1},
        "you normalized with the unbiased variance: the normalization uses the batch's "
        "biased variance (divide by N); only the running estimate is unbiased.",
    ),
    (
        {"no_update": True},
        "your running statistics never change in training mode: update them with each "
        "batch, running = (1 - momentum) * running + momentum * batch_statistic.",
    ),
    (
        {"eval_updates": True},
        "you updated the running statistics in eval mode: evaluation must not change the "
        "model, return running_mean and running_var unchanged when training is False.",
    ),
    (
        {"eval_with_batch": True},
        "in eval mode you normalized with the batch's statistics: eval mode uses the "
        "running mean and variance, so that a prediction does not depend on the batch.",
    ),
    (
        {"eval_updates": True, "eval_with_batch": True},
        "in eval mode you ran the training step (batch statistics, running statistics "
        "updated): when training is False, normalize with the running statistics and "
        "leave them unchanged.",
    ),
)


def _step_batches(k, n=6, d=4, seed=60, dtype=np.float64):
    rng = _rng(seed)
    shifts, scales = rng.uniform(-3, 3, d), rng.uniform(0.5, 3.0, d)
    return [(rng.standard_normal((n, d)) * scales + shifts).astype(dtype) for _ in range(k)]


def _run_steps(step, batches, training, momentum, eps, dtype=np.float64, start=None, **variant):
    """Each batch through ``step`` (the learner's or a variant of the reference), each
    fed the previous running statistics; [(y, rm, rv), ...] (None if it cannot run)."""
    d = batches[0].shape[1]
    rng = _rng(61)
    gamma = rng.uniform(0.5, 2.0, d).astype(dtype)
    beta = rng.standard_normal(d).astype(dtype)
    rm, rv = start if start is not None else (np.zeros(d, dtype), np.ones(d, dtype))
    out = []
    for k, x in enumerate(batches):
        t = training[k] if isinstance(training, (list, tuple)) else training
        if variant is not None and step is bn_step_ref:
            y, rm, rv = (
                a.astype(dtype)
                for a in bn_step_ref(x, rm, rv, gamma, beta, t, momentum, eps, **variant)
            )
        else:
            y, rm, rv = unpack(
                step(x, rm.copy(), rv.copy(), gamma, beta, t, momentum, eps),
                ("y", "running_mean", "running_var"),
                "batchnorm_step",
            )
        out.append((y, rm, rv))
    return out


def _expect_steps(batchnorm_step, batches, training, momentum, what, dtype=np.float64, start=None):
    eps = 1e-5
    want = _run_steps(bn_step_ref, batches, training, momentum, eps, dtype, start)
    wrongs = {}

    def wrong_piece(i, k, j):
        if i not in wrongs:
            wrongs[i] = quiet(
                lambda: _run_steps(
                    bn_step_ref, batches, training, momentum, eps, dtype, start, **STEP_WRONG[i][0]
                )
            )
        return None if wrongs[i] is None else wrongs[i][k][j]

    d = batches[0].shape[1]
    rng = _rng(61)
    gamma = rng.uniform(0.5, 2.0, d).astype(dtype)
    beta = rng.standard_normal(d).astype(dtype)
    rm, rv = start if start is not None else (np.zeros(d, dtype), np.ones(d, dtype))
    for k, x in enumerate(batches):
        t = training[k] if isinstance(training, (list, tuple)) else training
        got = unpack(
            batchnorm_step(x, rm.copy(), rv.copy(), gamma, beta, t, momentum, 1e-5),
            ("y", "running_mean", "running_var"),
            "batchnorm_step",
        )
        mode = "training" if t else "eval"
        for j, (name, g) in enumerate(zip(("y", "running_mean", "running_var"), got, strict=True)):
            expect(
                g,
                want[k][j],
                f"{name} after batch {k + 1} of {len(batches)} ({mode} mode{what})",
                known=[
                    WrongAnswer(lambda i=i, k=k, j=j: wrong_piece(i, k, j), hint)
                    for i, (_, hint) in enumerate(STEP_WRONG)
                ],
            )
        _, rm, rv = got


@step_ex.subcheck("training: batch statistics normalize, running ones follow PyTorch (5 batches)")
def _(batchnorm_step):
    _expect_steps(batchnorm_step, _step_batches(5), True, 0.2, ", momentum 0.2")


@step_ex.subcheck("eval: the running statistics normalize and come back unchanged")
def _(batchnorm_step):
    start = (np.array([0.5, -1.0, 2.0, 0.0]), np.array([0.25, 4.0, 1.5, 0.8]))
    _expect_steps(batchnorm_step, _step_batches(2, seed=62), False, 0.2, "", start=start)


@step_ex.subcheck("3 batches of training, then 2 in eval mode, momentum 0.1")
def _(batchnorm_step):
    modes = [True, True, True, False, False]
    _expect_steps(batchnorm_step, _step_batches(5, seed=63), modes, 0.1, ", momentum 0.1")


@step_ex.subcheck("float32 x, gamma, beta and running statistics stay float32")
def _(batchnorm_step):
    modes = [True, True, False]
    batches = _step_batches(3, seed=64, dtype=np.float32)
    _expect_steps(batchnorm_step, batches, modes, 0.1, ", float32", dtype=np.float32)


@step_ex.subcheck("a batch of one raises ValueError in training mode; eval mode takes it")
def _(batchnorm_step):
    x = np.array([[1.0, -2.0, 0.5]])
    rm, rv, gamma, beta = np.zeros(3), np.ones(3), np.ones(3), np.zeros(3)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quiet_result = batchnorm_step(x, rm, rv, gamma, beta, True, 0.1, 1e-5)
        outcome = f"returned {type(quiet_result).__name__}"
    except ValueError:
        outcome = None
    except (ZeroDivisionError, FloatingPointError) as err:
        outcome = f"raised {type(err).__name__} ({err})"
    if outcome is not None:
        raise CheckFailed(
            f"batchnorm_step on a batch of one example in training mode {outcome}, "
            "expected a ValueError: one example has no "
            "variance (and N - 1 = 0 in the unbiased one). Hint: if training and "
            "x.shape[0] < 2: raise ValueError(...) saying so (PyTorch does the same)."
        )
    y, new_rm, new_rv = unpack(
        batchnorm_step(x, rm, rv, gamma, beta, False, 0.1, 1e-5),
        ("y", "running_mean", "running_var"),
        "batchnorm_step",
    )
    want = bn_step_ref(x, rm, rv, gamma, beta, False, 0.1, 1e-5)
    for name, g, w in zip(
        ("y", "running_mean", "running_var"), (y, new_rm, new_rv), want, strict=True
    ):
        expect(g, w, f"{name} for one example in eval mode")


# ================================================= 6. the statistics as a Numba kernel

numba_ex = exercise(
    "bn_stats_numba",
    ["bn_stats_numba"],
    forbidden=("bn_stats_numba", "bn_stats", "batchnorm", "batch_norm", "dispatch", "_backend"),
)
_NUMBA_LOOP = "`for j in prange(x.shape[1]):`, one feature per iteration"


def _numba_sample():
    return (np.linspace(-1.0, 1.0, 12).reshape(4, 3),)


add_numba_subchecks(numba_ex, "bn_stats_numba", "x", _numba_sample, _NUMBA_LOOP)


def bn_stats_ref(x):
    """(2, D) float64: the per-feature mean and biased variance, two passes in float64."""
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=0)
    return np.stack([mean, ((x - mean) ** 2).mean(axis=0)])


STATS_NUMBA_WRONG = [
    WrongAnswer(
        lambda x: np.stack([x.mean(0, dtype=np.float64), x.var(0, ddof=1, dtype=np.float64)]),
        "your variance divides by N - 1: BatchNorm's batch variance is the biased one, the "
        "sum of squared deviations divided by N.",
    ),
    WrongAnswer(
        lambda x: np.stack([x.mean(0, dtype=np.float64), (x.astype(np.float64) ** 2).mean(0)]),
        "your variance is the mean of x^2: subtract the feature's mean first, "
        "(x[i, j] - mean[j])**2.",
    ),
    WrongAnswer(
        lambda x: np.stack([x.mean(1, dtype=np.float64), x.var(1, dtype=np.float64)]),
        "your statistics are per example (over each row): BatchNorm's are per feature, over "
        "the batch (each column j, over the rows i).",
    ),
]


def _stacked(bn_stats_numba):
    """The learner's kernel as a function returning its (mean, var) stacked, (2, D)."""

    def run(x):
        got = call_nopython(bn_stats_numba, "bn_stats_numba", x)
        mean, var = unpack(got, ("mean", "var"), "bn_stats_numba")
        for name, a in (("mean", mean), ("var", var)):
            if not isinstance(a, np.ndarray) or a.shape != (x.shape[1],):
                shape = getattr(a, "shape", type(a).__name__)
                raise CheckFailed(
                    f"bn_stats_numba(x) for x of shape {x.shape}: {name} has shape {shape}, "
                    f"expected (D,) = ({x.shape[1]},), one value per feature"
                )
            if a.dtype != np.float64:
                raise CheckFailed(
                    f"bn_stats_numba(x) for {x.dtype} x: {name} has dtype {a.dtype}, expected "
                    "float64. Hint: return float64 statistics, accumulated in float64, "
                    "whatever x's dtype: np.empty(d) (float64) and s = 0.0."
                )
        return np.stack([mean, var])

    run.source = bn_stats_numba.source  # the race check reads the learner's loops
    return run


def _stats_data(n, d, seed, dtype=np.float64, shift=0.0):
    return (_rng(seed).standard_normal((n, d)) * 2.0 + shift).astype(dtype)


@numba_ex.subcheck("bn_stats_numba(x): the per-feature mean and biased variance, float64 x")
def _(bn_stats_numba):
    run = _stacked(dispatcher(bn_stats_numba, "bn_stats_numba", "x"))
    for n, d in ((1000, 7), (1, 3), (5, 1), (3, 200)):
        x = _stats_data(n, d, 70 + n + d, shift=1.5)
        expect(
            run(x),
            bn_stats_ref(x),
            f"(mean, var) stacked, x of shape {(n, d)}",
            known=STATS_NUMBA_WRONG,
            args=(x,),
        )


@numba_ex.subcheck("float32 x is accumulated in float64 (20000 rows near 10)")
def _(bn_stats_numba):
    run = _stacked(dispatcher(bn_stats_numba, "bn_stats_numba", "x"))
    # float32 holds 7 digits: a float32 running sum of 20000 numbers near 10 (up to
    # 2e5) rounds each addition by up to 0.008 and drifts by about 1 in total, a relative
    # error of 5e-6 in the mean; a float64 sum is right to 1e-12
    x = (_rng(72).standard_normal((20_000, 3)) + 10.0).astype(np.float32)
    try:
        expect(run(x), bn_stats_ref(x), "(mean, var) stacked, float32 x of shape (20000, 3)")
    except CheckFailed as err:
        x64 = x.astype(np.float64)
        if not np.allclose(run(x64), bn_stats_ref(x64), rtol=1e-10, atol=1e-12):
            raise
        raise CheckFailed(
            f"{err}\n  Hint: right for the same numbers in float64, wrong in float32: your "
            "sums are float32 (an accumulator such as s = x[0, j] - x[0, j], or an array "
            "of x's dtype). Start them as float64, s = 0.0, so each float32 value is added "
            "in float64."
        ) from None


@numba_ex.subcheck("bn_stats_numba writes every element of mean and var")
def _(bn_stats_numba):
    run = _stacked(dispatcher(bn_stats_numba, "bn_stats_numba", "x"))
    expect_every_element_written(
        run,
        lambda seed: (_stats_data(50, 9, 73 + seed, shift=3.0 * seed),),
        bn_stats_ref,
        "(mean, var) stacked, x of shape (50, 9)",
    )


# small whole numbers: every correct order of the additions gives exactly the same sums,
# so any lost update shows; four million elements a run keep both threads busy at once
# (see set 03's race check for the numbers)
RACE_SHAPES = ((4_000_000, 1), (1_000_000, 4))


@functools.lru_cache(maxsize=len(RACE_SHAPES))
def _race_case(shape):
    return _rng(74).integers(1, 4, shape).astype(np.float32)


@numba_ex.subcheck(
    "bn_stats_numba is right on 4 million numbers, run after run, all threads (no race)"
)
def _(bn_stats_numba):
    run = _stacked(dispatcher(bn_stats_numba, "bn_stats_numba", "x"))
    # a wrong formula on a small input first, so that it is not called a race
    small = _stats_data(300, 4, 75)
    expect(run(small), bn_stats_ref(small), "(mean, var) stacked, x of shape (300, 4)")
    for shape in RACE_SHAPES:  # one feature (every thread on one sum) and four
        expect_no_races(
            run,
            lambda shape=shape: (_race_case(shape),),
            bn_stats_ref,
            f"(mean, var) stacked, x of shape {shape}",
            runs=3,
        )


# =========================================================== 7. fix this network

fix_ex = exercise("fixed_init", ["fixed_init"])

# the network: tanh hidden layers, a linear output, softmax cross-entropy; full-batch
# gradient descent with momentum on 300 points of three spirals
NETWORK_SIZES = (2, 32, 32, 32, 32, 32, 32, 3)
OTHER_SIZES = (2, 40, 40, 40, 40, 40, 3)
STEPS, LR, MOMENTUM = 150, 0.1, 0.9
# Measured on these seeds: He, Xavier, LeCun and the tanh gain end at 0.01-0.05, the
# broken N(0, 1) init at 0.6-1.1 and N(0, 0.01^2) at ln 3 = 1.099 (it never moves)
LOSS_THRESHOLD = 0.1


@functools.lru_cache(maxsize=1)
def spiral_data():
    """X (300, 2) float64 and y (300,): three spirals, nnlib.datasets.spirals(seed=0)."""
    from nnlib.datasets import spirals

    X, y = spirals(300, classes=3, noise=0.1, seed=0)
    return X.astype(np.float64), y


def broken_init(sizes, seed):
    """The network that does not learn: every weight drawn from N(0, 1)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((a, b)) for a, b in itertools.pairwise(sizes)]


def _forward_tanh(weights, biases, X):
    hs = [X]
    for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
        a = hs[-1] @ W + b
        hs.append(np.tanh(a) if i < len(weights) - 1 else a)
    return hs


def train_losses(weights, steps=STEPS, lr=LR, momentum=MOMENTUM):
    """Train the tanh network on the spirals from ``weights`` (biases 0); the loss at
    each step, (steps,) float64. Full-batch gradient descent with momentum."""
    X, y = spiral_data()
    n = len(X)
    Ws = [np.array(W, np.float64) for W in weights]
    bs = [np.zeros(W.shape[1]) for W in Ws]
    vW = [np.zeros_like(W) for W in Ws]
    vb = [np.zeros_like(b) for b in bs]
    onehot = np.eye(Ws[-1].shape[1])[y]
    losses = np.empty(steps)
    with np.errstate(all="ignore"):
        for t in range(steps):
            hs = _forward_tanh(Ws, bs, X)
            z = hs[-1] - hs[-1].max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            losses[t] = -logp[np.arange(n), y].mean()
            d = (np.exp(logp) - onehot) / n
            for i in range(len(Ws) - 1, -1, -1):
                gW, gb = hs[i].T @ d, d.sum(axis=0)
                if i > 0:
                    d = (d @ Ws[i].T) * (1 - hs[i] ** 2)
                vW[i] = momentum * vW[i] + gW
                vb[i] = momentum * vb[i] + gb
                Ws[i] -= lr * vW[i]
                bs[i] -= lr * vb[i]
    return losses


def final_loss(losses) -> float:
    """The loss at the end of training: the mean of the last 10 steps (one spike of
    momentum does not decide it)."""
    return float(np.mean(losses[-10:]))


def _init_weights(fixed_init, sizes, seed):
    got = fixed_init(list(sizes), seed)
    call = f"fixed_init({list(sizes)}, seed={seed})"
    if not isinstance(got, (list, tuple)) or len(got) != len(sizes) - 1:
        kind = repr(got) if isinstance(got, Unsupported) else type(got).__name__
        if isinstance(got, (list, tuple)):
            kind += f" of {len(got)}"
        raise CheckFailed(
            f"{call} returned {kind}; expected a list of {len(sizes) - 1} weight arrays, "
            "one per layer. Hint: [W_1, ..., W_L] with W_l of shape (sizes[l-1], sizes[l])."
        )
    for i, (W, a, b) in enumerate(zip(got, sizes[:-1], sizes[1:], strict=True)):
        if not isinstance(W, np.ndarray) or W.shape != (a, b) or W.dtype.kind != "f":
            desc = (
                f"an array of shape {W.shape} and dtype {W.dtype}"
                if isinstance(W, np.ndarray)
                else type(W).__name__
            )
            hint = (
                " Hint: (fan_in, fan_out), not (fan_out, fan_in)."
                if getattr(W, "shape", None) == (b, a) and a != b
                else ""
            )
            raise CheckFailed(
                f"{call}: weight {i + 1} is {desc}; expected a float array of shape "
                f"({a}, {b}).{hint}"
            )
        if not np.isfinite(W).all():
            raise CheckFailed(f"{call}: weight {i + 1} holds NaN or inf")
    return list(got)


def diagnose(weights) -> str:
    """Why a network with these weights does not learn, read from its first forward pass."""
    X, _ = spiral_data()
    Ws = [np.asarray(W, np.float64) for W in weights]
    with np.errstate(all="ignore"):
        hs = _forward_tanh(Ws, [np.zeros(W.shape[1]) for W in Ws], X)[1:-1]
    if any(np.ptp(W, axis=1).max() == 0 for W in Ws):
        return (
            "some layer gives every unit the same weights, so its units stay identical "
            "through training (the symmetry is never broken): draw the weights at random."
        )
    saturated = [float(np.mean(np.abs(h) > SATURATED)) for h in hs]
    if max(saturated) > 0.3:
        layer = int(np.argmax(saturated))
        return (
            f"at initialization {saturated[layer]:.0%} of the tanh units of hidden layer "
            f"{layer + 1} are saturated (|h| > 0.97), where tanh' = 1 - h^2 is almost 0: the "
            "gradient cannot get through. Your weights are too large: scale them by "
            "gain / sqrt(fan_in), with the gain you found for tanh."
        )
    stds = [float(h.std()) for h in hs]
    if stds[-1] < 0.1:
        return (
            f"the activations shrink layer by layer (std {stds[0]:.2g} in hidden layer 1, "
            f"{stds[-1]:.2g} in the last): the signal, and the gradient with it, vanishes. "
            "Your weights are too small: scale them by gain / sqrt(fan_in)."
        )
    return ""


def _expect_trains(fixed_init, sizes, seeds):
    for seed in seeds:
        weights = _init_weights(fixed_init, sizes, seed)
        losses = train_losses(weights)
        loss = final_loss(losses)
        if not loss < LOSS_THRESHOLD:
            message = (
                f"the network {list(sizes)} initialized by fixed_init(sizes, seed={seed}) "
                f"ends {STEPS} steps of training at a loss of {loss:.3f} (it started at "
                f"{losses[0]:.3f}); it must get below {LOSS_THRESHOLD}"
            )
            why = diagnose(weights)
            if why:
                message += f"\n  Hint: {why}"
            raise CheckFailed(message)


@fix_ex.subcheck("fixed_init returns one weight array per layer, shaped (fan_in, fan_out)")
def _(fixed_init):
    _init_weights(fixed_init, NETWORK_SIZES, 0)
    _init_weights(fixed_init, (3, 5, 2), 0)


@fix_ex.subcheck(f"the network trains: its loss ends below {LOSS_THRESHOLD} (seeds 0 and 1)")
def _(fixed_init):
    _expect_trains(fixed_init, NETWORK_SIZES, (0, 1))


@fix_ex.subcheck("another network, 5 hidden layers of 40, trains too")
def _(fixed_init):
    _expect_trains(fixed_init, OTHER_SIZES, (2,))


@fix_ex.subcheck("the same seed gives the same weights, another seed other weights")
def _(fixed_init):
    a, b, c = (_init_weights(fixed_init, NETWORK_SIZES, s) for s in (5, 5, 6))
    if not all(np.array_equal(p, q) for p, q in zip(a, b, strict=True)):
        raise CheckFailed(
            "fixed_init(sizes, seed=5) gave different weights on two calls. Hint: one "
            "generator from the seed, rng = np.random.default_rng(seed), for all layers."
        )
    if all(np.array_equal(p, q) for p, q in zip(a, c, strict=True)):
        raise CheckFailed(
            "seeds 5 and 6 gave the same weights. Hint: use the seed argument, "
            "np.random.default_rng(seed)."
        )
