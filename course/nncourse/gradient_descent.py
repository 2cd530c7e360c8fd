"""Checks for exercise set 04, gradient descent and its variants
(``solutions/04_gradient_descent.ipynb``).

The update rules are PyTorch's (the ones :mod:`nnlib.optim` implements). Each optimizer
check runs several steps of the learner's update on a fixed ill-conditioned quadratic,
whose gradient depends on the parameters, with a learning rate that changes from step
to step, and compares **every** returned array (the parameters and each piece of
state) after every step with a float64 reference run the same way. Known wrong rules
are run the same way, so the feedback can name the mistake. A changing learning rate
matters: a velocity that holds the learning rate (``v = mu v + lr g``, ``p = p - v``)
gives the same parameters as PyTorch's rule while the rate is constant.

The shared contract (inputs unchanged, results new arrays, no call into nnlib's own
optimizer) is enforced on every call by :class:`~nncourse.learner.LearnerFunction`;
the inputs here are such that an in-place update shows (non-zero gradients and state).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from nnlib import optim
from nnlib.testing import tolerance

from .checks import CheckFailed, WrongAnswer, exercise, expect, matches, quiet
from .learner import Unsupported
from .numba_checks import add_numba_subchecks, call_nopython, dispatcher, expect_no_races

# The quadratic f(p) = 1/2 p^T A p - c^T p: gradient A p - c, ill-conditioned (1 vs 20).
_A = np.array([[1.0, 0.0, 0.0], [0.0, 20.0, 3.0], [0.0, 3.0, 5.0]])
_C = np.array([1.0, -2.0, 0.5])
_P0 = np.array([2.0, -1.5, 1.0])

# the learning rate of step k is lr * _LR_FACTORS[k]: it changes every step
_LR_FACTORS = (1.0, 0.5, 2.0, 0.25, 1.5, 0.75)
_CONSTANT = (1.0,) * 6


def _grad(p):
    return (_A @ p.astype(np.float64) - _C).astype(p.dtype)


# ------------------------------------------------------------------- running the updates


@dataclass(frozen=True)
class _Rule:
    """An update ``p, *state = step(p, g, *state, [t,] lr, *hyper)`` as the text states it."""

    name: str
    state: tuple[str, ...]
    reference: Callable
    wrongs: tuple  # (wrong step function, hint)
    takes_t: bool = False

    @property
    def returns(self) -> str:
        return ", ".join(("p", *self.state))


class _Run(NamedTuple):
    """Where a trajectory starts and how it goes: the gradient of ``p`` is ``grad(p)``."""

    lr: float
    hyper: tuple
    dtype: type = np.float64
    factors: tuple = _LR_FACTORS
    p0: np.ndarray = _P0
    grad: Callable = _grad


def _pieces(result, rule: _Rule) -> list:
    if not isinstance(result, (tuple, list)) or len(result) != 1 + len(rule.state):
        got = "None" if result is None else type(result).__name__
        if isinstance(result, (tuple, list)):
            got = f"{got} of {len(result)}"
        raise CheckFailed(
            f"{rule.name} must return ({rule.returns}), the new parameters and the new "
            f"state; got {got}. Hint: `return {rule.returns}`."
        )
    return list(result)


def _args(rule: _Rule, run: _Run, p, state, k: int) -> tuple:
    t = (k + 1,) if rule.takes_t else ()
    return (p.copy(), run.grad(p), *[s.copy() for s in state], *t, run.lr * run.factors[k])


def _trajectory(step, rule: _Rule, run: _Run) -> list[list[np.ndarray]]:
    """``[p, *state]`` after each step of a known (reference or wrong) update, each step
    fed the previous step's output; computed in float64 from the same (rounded) start,
    then cast to ``run.dtype``."""
    p = run.p0.astype(run.dtype).astype(np.float64)
    state = [np.zeros_like(p) for _ in rule.state]
    out = []
    with np.errstate(all="ignore"):
        for k in range(len(run.factors)):
            result = step(*_args(rule, run, p, state, k), *run.hyper)
            p, *state = (np.asarray(a, np.float64) for a in result)
            out.append([a.astype(run.dtype) for a in (p, *state)])
    return out


def _learner_steps(step, rule: _Rule, run: _Run, reference=None, what: str = ""):
    """Run the learner's update ``len(run.factors)`` times, each step fed its own output.

    With a ``reference`` trajectory, every returned array is compared after every step
    (the first difference fails, with the hint of a known wrong rule that it matches).
    Returns the learner's last ``[p, *state]``.
    """
    p = run.p0.astype(run.dtype)
    state = [np.zeros_like(p) for _ in rule.state]
    wrong = {}

    def wrong_piece(i, k, j):
        if i not in wrong:
            wrong[i] = quiet(_trajectory, rule.wrongs[i][0], rule, run)
        return None if wrong[i] is None else wrong[i][k][j]

    for k in range(len(run.factors)):
        pieces = _pieces(step(*_args(rule, run, p, state, k), *run.hyper), rule)
        for j, (name, got) in enumerate(zip(("p", *rule.state), pieces, strict=True)):
            label = f"{name} after step {k + 1} of {len(run.factors)}{what}"
            if reference is None:
                _expect_like(got, p, label)
                continue
            expect(
                got,
                reference[k][j],
                label,
                known=[
                    WrongAnswer(lambda i=i, k=k, j=j: wrong_piece(i, k, j), hint)
                    for i, (_, hint) in enumerate(rule.wrongs)
                ],
            )
        p, *state = pieces
    return [p, *state]


def _expect_like(got, like, what):
    """``got`` is a host array of ``like``'s shape and dtype (values not compared)."""
    if not isinstance(got, np.ndarray):
        expect(got, like, what)  # the message for None, a device array, a list, ...
    if got.shape != like.shape or got.dtype != like.dtype:
        raise CheckFailed(
            f"{what}: an array of shape {got.shape} and dtype {got.dtype}, expected shape "
            f"{like.shape} and dtype {like.dtype} (those of p)"
        )


def _formula_check(step, rule: _Rule, run: _Run, what: str = ""):
    _learner_steps(step, rule, run, _trajectory(rule.reference, rule, run), what)


def _any_shape_check(step, rule: _Rule, lr: float, hyper: tuple):
    """Two steps on parameters of other shapes: the rules are elementwise."""
    for shape in ((4, 3), (2, 3, 2), (0,)):
        rng = np.random.default_rng(len(shape) + sum(shape))
        w = rng.uniform(0.5, 3.0, shape)
        c = rng.standard_normal(shape)

        def grad(p, w=w, c=c):
            return (w * p - c).astype(p.dtype)

        run = _Run(lr, hyper, factors=(1.0, 0.5), p0=rng.standard_normal(shape), grad=grad)
        _formula_check(step, rule, run, f", p of shape {shape}")


def _nnlib_trajectory(opt, steps=6):
    """The parameters after ``steps`` steps of nnlib's optimizer (the library's answer)."""
    p, g = _P0.copy(), np.zeros(3)
    opt.backend = "numpy"
    opt.bind({"p": p}, {"p": g})
    for _ in range(steps):
        g[:] = _grad(p)
        opt.step()
    return p


def _nnlib_check(step, rule: _Rule, run: _Run, opt):
    p = _learner_steps(step, rule, run)[0]
    expect(
        p,
        _nnlib_trajectory(opt, len(run.factors)),
        f"p after {len(run.factors)} steps vs nnlib's {type(opt).__name__}",
    )


def _zero_gradient_check(step, rule: _Rule, hyper: tuple, t=()):
    p, g = np.array([1.0, -2.0, 0.5]), np.zeros(3)
    state = [np.zeros(3) for _ in rule.state]
    with np.errstate(divide="raise", invalid="raise"):
        try:
            result = step(p.copy(), g, *state, *t, 0.1, *hyper)
        except FloatingPointError as err:
            raise CheckFailed(
                f"{rule.name} divided by zero for a zero gradient ({err}). Hint: add eps to "
                "the denominator, outside the square root: sqrt(...) + eps."
            ) from None
    pieces = _pieces(result, rule)
    expect(pieces[0], p, "p after a zero-gradient step")
    for name, got in zip(rule.state, pieces[1:], strict=True):
        expect(got, np.zeros(3), f"{name} after a zero-gradient step from {name} = 0")


# ------------------------------------------------------------------- mini-batch iterator

mb_ex = exercise("minibatches", ["minibatches"])

# (n, batch_size): n a multiple of batch_size or not, a batch larger than n, n = 1
_SIZES = ((103, 10), (100, 10), (12, 4), (7, 3), (5, 32), (1, 1), (1, 4))


def _batches(minibatches, n, batch_size, seed):
    got = minibatches(n, batch_size, seed)
    kind = repr(got) if isinstance(got, Unsupported) else type(got).__name__
    if got is None or isinstance(got, (Unsupported, str, bytes, dict, np.ndarray)):
        raise CheckFailed(
            f"minibatches({n}, {batch_size}, seed={seed}) must return a list of index "
            f"arrays; got {kind}. Hint: `return [order[i : i + batch_size] for i in "
            "range(0, n, batch_size)]`."
        )
    try:
        batches = [np.asarray(b) for b in got]
    except TypeError:
        raise CheckFailed(f"minibatches must return a list of index arrays; got {kind}") from None
    for b in batches:
        if b.ndim != 1 or (b.size and b.dtype.kind not in "iu"):
            raise CheckFailed(
                f"minibatches({n}, {batch_size}, seed={seed}): a batch is an array of shape "
                f"{b.shape} and dtype {b.dtype}; each batch must be a 1-D array of integer "
                "indices. Hint: cut the permutation, order[i : i + batch_size]."
            )
    return batches


def _expected_sizes(n, batch_size):
    return [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])


@mb_ex.subcheck("every index appears exactly once per epoch, n a multiple of batch_size or not")
def _(minibatches):
    for n, bs in _SIZES:
        got = _batches(minibatches, n, bs, 0)
        flat = np.concatenate(got) if got else np.array([], int)
        unique = np.unique(flat)
        where = f"minibatches({n}, {bs}, seed=0)"
        if len(unique) != len(flat):
            twice = len(flat) - len(unique)
            hint = (
                "draw a permutation (rng.permutation(n)), not indices with replacement "
                "(rng.integers)"
                if len(flat) <= n
                else "your batches overlap: cut disjoint pieces order[i : i + batch_size]"
            )
            raise CheckFailed(f"{where}: {twice} indices appear twice. Hint: {hint}.")
        if unique.tolist() != list(range(n)) and not set(unique.tolist()) - set(range(n)):
            missing = n - len(unique)
            sizes = [len(b) for b in got if len(b)]
            if n % bs and missing == n % bs and set(sizes) == {bs}:
                hint = (
                    "you dropped the last, smaller batch: keep it (range(0, n, batch_size) "
                    "covers the tail)"
                )
            else:
                hint = (
                    "the batches must cover all of 0..n-1: start one at every multiple of "
                    "batch_size below n, range(0, n, batch_size), the last takes what is left"
                )
            raise CheckFailed(
                f"{where}: the batches hold {len(unique)} of {n} indices, {missing} "
                f"{'is' if missing == 1 else 'are'} missing. Hint: {hint}."
            )
        if unique.tolist() != list(range(n)):
            raise CheckFailed(
                f"{where}: the batches hold {len(flat)} indices, not each of 0..{n - 1} once"
            )


@mb_ex.subcheck("batches have batch_size indices, the last one the rest, none empty")
def _(minibatches):
    for n, bs in _SIZES:
        sizes = [len(b) for b in _batches(minibatches, n, bs, 0)]
        want = _expected_sizes(n, bs)
        if sizes == want:
            continue
        where = f"minibatches({n}, {bs}, seed=0): batch sizes {sizes}, expected {want}"
        if 0 in sizes:
            raise CheckFailed(
                f"{where}. Hint: batch {sizes.index(0) + 1} of {len(sizes)} is empty: when n "
                "is a multiple of batch_size there is no smaller last batch; start the "
                "batches at range(0, n, batch_size) (not n + 1, not n // batch_size + 1 of "
                "them)."
            )
        balanced = [len(a) for a in np.array_split(np.arange(n), -(-n // bs))]
        if sizes == balanced:
            raise CheckFailed(
                f"{where}. Hint: np.array_split balances the sizes; the text asks for "
                "batches of batch_size, only the last one smaller: order[i : i + batch_size]."
            )
        raise CheckFailed(where)


def _shuffled(flat):
    if flat.tolist() == sorted(flat.tolist()):
        raise CheckFailed(
            "the indices come out in order 0, 1, 2, ...: shuffle them. Hint: "
            "np.random.default_rng(seed).permutation(n)."
        )


@mb_ex.subcheck("the order is shuffled")
def _(minibatches):
    _shuffled(np.concatenate(_batches(minibatches, 50, 7, 1)))


@mb_ex.subcheck("the same seed gives the same order, another seed another order")
def _(minibatches):
    a = np.concatenate(_batches(minibatches, 50, 7, 3))
    b = np.concatenate(_batches(minibatches, 50, 7, 3))
    c = np.concatenate(_batches(minibatches, 50, 7, 4))
    _shuffled(a)
    if not np.array_equal(a, b):
        raise CheckFailed(
            "two calls with seed=3 gave different orders. Hint: build the generator from "
            "the seed: np.random.default_rng(seed)."
        )
    if np.array_equal(a, c):
        raise CheckFailed(
            "seeds 3 and 4 gave the same order. Hint: use the seed argument, "
            "np.random.default_rng(seed), not a fixed seed."
        )


@mb_ex.subcheck("the batches hold other indices for another seed, not only another order")
def _(minibatches):
    epochs = [_batches(minibatches, 50, 7, seed) for seed in (5, 6, 7)]
    flat = [np.concatenate(batches).tolist() for batches in epochs]
    _shuffled(np.array(flat[0]))
    if flat[0] == flat[1] == flat[2]:
        raise CheckFailed(
            "seeds 5, 6 and 7 gave the same batches in the same order. Hint: use the seed "
            "argument, np.random.default_rng(seed), not a fixed seed."
        )
    contents = [sorted(tuple(sorted(b.tolist())) for b in batches) for batches in epochs]
    if contents[0] == contents[1] == contents[2]:
        raise CheckFailed(
            "for seeds 5, 6 and 7 the batches hold the same indices, only in another order: "
            "every epoch would show the network the same groups of examples. Hint: shuffle "
            "all n indices first (rng.permutation(n)), then cut that permutation into batches."
        )


@mb_ex.subcheck("a batch larger than the data gives one batch of everything")
def _(minibatches):
    for n, bs in ((5, 32), (1, 4), (1, 1)):
        got = _batches(minibatches, n, bs, 0)
        if len(got) != 1 or sorted(got[0].tolist()) != list(range(n)):
            raise CheckFailed(
                f"got {len(got)} batches ({[b.tolist() for b in got]}) for n = {n}, "
                f"batch_size = {bs}; expected one batch holding 0..{n - 1}"
            )


# ---------------------------------------------------------------------- SGD + momentum

mom_ex = exercise(
    "sgd_momentum",
    ["sgd_momentum"],
    forbidden=("sgd_momentum", "sgd", "sgd_update_ref", "sgd_update_cpu", "sgd_update_cuda"),
)
_LOOP_HINT = (
    ValueError,
    "setting an array element with a sequence",
    "your code handles 1-D parameters only (an element loop over len(p)?): p may have any "
    "shape; write the update with whole-array NumPy operations.",
)
mom_ex.error_hints.append(_LOOP_HINT)


def _momentum_ref(p, g, v, lr, mu):
    v = mu * v + g
    return p - lr * v, v


_LR_IN_V = (
    "your velocity holds the learning rate (v = mu v + lr g, p = p - v): PyTorch's velocity "
    "is v = mu v + g and the step p = p - lr v. The two agree only while the learning rate "
    "stays the same; return PyTorch's v."
)

MOMENTUM = _Rule(
    "sgd_momentum",
    ("v",),
    _momentum_ref,
    (
        (
            lambda p, g, v, lr, mu: (p - lr * (g + mu * (mu * v + g)), mu * v + g),
            "you stepped with g + mu * v_new, Nesterov's look-ahead: plain momentum steps "
            "with the velocity itself, p = p - lr v.",
        ),
        (
            lambda p, g, v, lr, mu: (p + lr * (mu * v + g), mu * v + g),
            "you moved uphill: p = p - lr v.",
        ),
        (
            lambda p, g, v, lr, mu: (p - (lr * g + mu * (mu * v + g)), mu * v + g),
            "you added mu v outside the learning rate (p = p - lr g - mu v): the whole "
            "velocity is scaled by it, p = p - lr v.",
        ),
        (
            lambda p, g, v, lr, mu: (p - lr * (mu * v + (1 - mu) * g), mu * v + (1 - mu) * g),
            "your velocity is an average, mu v + (1 - mu) g (dampening): PyTorch's momentum "
            "adds the whole gradient, v = mu v + g.",
        ),
        (
            lambda p, g, v, lr, mu: (p - lr * g, mu * v + g),
            "your steps equal plain gradient descent: the velocity never builds up. Update "
            "v = mu v + g and step with p = p - lr v.",
        ),
        (
            lambda p, g, v, lr, mu: (p - lr * (mu * v + g), v),
            "you returned the velocity you were given, not the new one: return (p, v) with "
            "the new v = mu v + g, which the next step starts from.",
        ),
        (lambda p, g, v, lr, mu: (p - (mu * v + lr * g), mu * v + lr * g), _LR_IN_V),
        (lambda p, g, v, lr, mu: (p + (mu * v - lr * g), mu * v - lr * g), _LR_IN_V),
    ),
)


@mom_ex.subcheck("six steps of sgd_momentum follow v = mu v + g, p = p - lr v (p and v)")
def _(sgd_momentum):
    _formula_check(sgd_momentum, MOMENTUM, _Run(0.02, (0.9,)), ", the learning rate changing")


@mom_ex.subcheck("with mu = 0 it is plain gradient descent")
def _(sgd_momentum):
    _formula_check(sgd_momentum, MOMENTUM, _Run(0.05, (0.0,)), ", mu = 0")


@mom_ex.subcheck("it matches nnlib.optim.SGD(momentum=0.9)")
def _(sgd_momentum):
    _nnlib_check(
        sgd_momentum,
        MOMENTUM,
        _Run(0.02, (0.9,), factors=_CONSTANT),
        optim.SGD(lr=0.02, momentum=0.9),
    )


@mom_ex.subcheck("float32 parameters and velocity stay float32")
def _(sgd_momentum):
    _formula_check(sgd_momentum, MOMENTUM, _Run(0.02, (0.9,), np.float32), ", float32")


@mom_ex.subcheck("it works on parameters of any shape (2-D, 3-D, 0-size)")
def _(sgd_momentum):
    _any_shape_check(sgd_momentum, MOMENTUM, 0.05, (0.9,))


# ------------------------------------------------------------------------------ RMSprop

rms_ex = exercise(
    "rmsprop",
    ["rmsprop"],
    forbidden=("rmsprop", "rmsprop_update_ref", "rmsprop_update_cpu", "rmsprop_update_cuda"),
)
rms_ex.error_hints.append(_LOOP_HINT)


def _rms_ref(p, g, s, lr, alpha, eps):
    s = alpha * s + (1 - alpha) * g * g
    return p - lr * g / (np.sqrt(s) + eps), s


def _sq(alpha, s, g):
    return alpha * s + (1 - alpha) * g * g


RMSPROP = _Rule(
    "rmsprop",
    ("s",),
    _rms_ref,
    (
        (
            lambda p, g, s, lr, alpha, eps: (
                p - lr * g / np.sqrt(_sq(alpha, s, g) + eps),
                _sq(alpha, s, g),
            ),
            "eps is inside the square root: PyTorch divides by sqrt(s) + eps.",
        ),
        (
            lambda p, g, s, lr, alpha, eps: (
                p - lr * g / (_sq(alpha, s, g) + eps),
                _sq(alpha, s, g),
            ),
            "you divided by s itself: divide by its square root, sqrt(s) + eps.",
        ),
        (
            lambda p, g, s, lr, alpha, eps: (
                p - lr * g / (np.sqrt(_sq(1 - alpha, s, g)) + eps),
                _sq(1 - alpha, s, g),
            ),
            "alpha and 1 - alpha are swapped: s = alpha s + (1 - alpha) g^2 keeps most of "
            "the old average.",
        ),
        (
            lambda p, g, s, lr, alpha, eps: (
                p - lr * g / (np.sqrt(np.abs(alpha * s + (1 - alpha) * g)) + eps),
                alpha * s + (1 - alpha) * g,
            ),
            "you averaged the gradient, not its square: s = alpha s + (1 - alpha) g**2.",
        ),
        (
            lambda p, g, s, lr, alpha, eps: (p - lr * g / (np.sqrt(s) + eps), _sq(alpha, s, g)),
            "you divided by the old average: update s first, then step with the new s.",
        ),
        (
            lambda p, g, s, lr, alpha, eps: (
                p - lr * g / (np.sqrt(_sq(alpha, s, g)) + eps),
                s,
            ),
            "you returned the s you were given, not the new average: return (p, s) with the "
            "new s = alpha s + (1 - alpha) g^2, which the next step starts from.",
        ),
    ),
)


@rms_ex.subcheck("six steps of rmsprop follow s = alpha s + (1-alpha) g^2, p -= lr g/(sqrt(s)+eps)")
def _(rmsprop):
    _formula_check(rmsprop, RMSPROP, _Run(0.01, (0.9, 1e-3)), ", the learning rate changing")


@rms_ex.subcheck("it matches nnlib.optim.RMSprop")
def _(rmsprop):
    _nnlib_check(
        rmsprop,
        RMSPROP,
        _Run(0.01, (0.99, 1e-8), factors=_CONSTANT),
        optim.RMSprop(lr=0.01, alpha=0.99, eps=1e-8),
    )


@rms_ex.subcheck("a zero gradient leaves p unchanged (no division by zero)")
def _(rmsprop):
    _zero_gradient_check(rmsprop, RMSPROP, (0.99, 1e-8))


@rms_ex.subcheck("float32 parameters and s stay float32")
def _(rmsprop):
    _formula_check(rmsprop, RMSPROP, _Run(0.01, (0.9, 1e-3), np.float32), ", float32")


@rms_ex.subcheck("it works on parameters of any shape (2-D, 3-D, 0-size)")
def _(rmsprop):
    _any_shape_check(rmsprop, RMSPROP, 0.01, (0.9, 1e-3))


# --------------------------------------------------------------------------------- Adam

adam_ex = exercise(
    "adam",
    ["adam"],
    forbidden=("adam", "adamw", "adam_update_ref", "adam_update_cpu", "adam_update_cuda"),
)
adam_ex.error_hints.append(_LOOP_HINT)
_ADAM = (0.9, 0.999, 1e-3)  # beta1, beta2, eps (eps large enough to tell where it goes)


def _adam_ref(p, g, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def _adam_variant(
    correct_m=True, correct_v=True, eps_inside=False, t_shift=0, sqrt=True, state="mv"
):
    def step(p, g, m, v, t, lr, beta1, beta2, eps):
        new_m = beta1 * m + (1 - beta1) * g
        new_v = beta2 * v + (1 - beta2) * g * g
        tt = t + t_shift
        m_hat = new_m / (1 - beta1**tt) if correct_m else new_m
        v_hat = new_v / (1 - beta2**tt) if correct_v else new_v
        denom = np.sqrt(v_hat + eps) if eps_inside else (np.sqrt(v_hat) if sqrt else v_hat) + eps
        kept = {"mv": (new_m, new_v), "hat": (m_hat, v_hat), "old": (m, v)}[state]
        return p - lr * m_hat / denom, *kept

    return step


ADAM = _Rule(
    "adam",
    ("m", "v"),
    _adam_ref,
    (
        (
            _adam_variant(correct_m=False, correct_v=False),
            "no bias correction: divide m by 1 - beta1**t and v by 1 - beta2**t (t counts "
            "from 1), or the first steps are far too small.",
        ),
        (
            _adam_variant(eps_inside=True),
            "eps is inside the square root: PyTorch divides by sqrt(v_hat) + eps.",
        ),
        (
            _adam_variant(correct_v=False),
            "you corrected m but not v: divide v by 1 - beta2**t too.",
        ),
        (
            _adam_variant(correct_m=False),
            "you corrected v but not m: divide m by 1 - beta1**t too.",
        ),
        (
            _adam_variant(t_shift=1),
            "your bias correction uses t + 1: the first step has t = 1, so its correction is "
            "1 - beta**1.",
        ),
        (
            _adam_variant(t_shift=-1),
            "your bias correction uses t - 1: t counts from 1, so the first step's "
            "correction is 1 - beta**1.",
        ),
        (
            _adam_variant(sqrt=False),
            "you divided by v_hat itself: divide by its square root, sqrt(v_hat) + eps.",
        ),
        (
            _adam_variant(state="hat"),
            "you returned the bias-corrected m_hat and v_hat as the state: return the running "
            "averages m and v themselves; the correction is applied afresh at every step.",
        ),
        (
            _adam_variant(state="old"),
            "you returned the m and v you were given, not the new averages: return (p, m, v) "
            "with the updated m and v, which the next step starts from.",
        ),
    ),
    takes_t=True,
)


@adam_ex.subcheck("six steps of adam follow PyTorch's rule with bias correction (p, m and v)")
def _(adam):
    _formula_check(adam, ADAM, _Run(0.05, _ADAM), ", the learning rate changing")


@adam_ex.subcheck("the first step has size lr in every coordinate (bias correction)")
def _(adam):
    p, g = np.array([1.0, -1.0, 3.0]), np.array([0.5, -20.0, 1e-3])
    z = np.zeros(3)
    with np.errstate(divide="raise", invalid="raise"):
        try:
            result = adam(p.copy(), g, z.copy(), z.copy(), 1, 0.1, 0.9, 0.999, 1e-8)
        except FloatingPointError as err:
            raise CheckFailed(
                f"adam divided by zero at t = 1 ({err}). Hint: t counts from 1, so "
                "1 - beta**t is never 0."
            ) from None
    new_p = _pieces(result, ADAM)[0]
    _expect_like(new_p, p, "p after the first step")
    step = p - new_p
    if not np.allclose(np.abs(step), 0.1, rtol=1e-4):
        message = (
            f"the first step moved p by {np.abs(step).tolist()}, expected lr = 0.1 in each "
            "coordinate (with bias correction m_hat / sqrt(v_hat) = sign(g) at t = 1)"
        )
        args = (p.copy(), g, z.copy(), z.copy(), 1, 0.1, 0.9, 0.999, 1e-8)
        for wrong, hint in ADAM.wrongs:
            if matches(new_p, np.asarray(quiet(lambda w=wrong: w(*args)[0]), dtype=float)):
                message += f". Hint: {hint}"
                break
        raise CheckFailed(message)


@adam_ex.subcheck("it matches nnlib.optim.Adam")
def _(adam):
    _nnlib_check(
        adam,
        ADAM,
        _Run(0.05, (0.9, 0.999, 1e-8), factors=_CONSTANT),
        optim.Adam(lr=0.05, betas=(0.9, 0.999), eps=1e-8),
    )


@adam_ex.subcheck("a zero gradient leaves p unchanged (no division by zero)")
def _(adam):
    _zero_gradient_check(adam, ADAM, (0.9, 0.999, 1e-8), t=(3,))


@adam_ex.subcheck("float32 parameters, m and v stay float32")
def _(adam):
    _formula_check(adam, ADAM, _Run(0.05, _ADAM, np.float32), ", float32")


@adam_ex.subcheck("it works on parameters of any shape (2-D, 3-D, 0-size)")
def _(adam):
    _any_shape_check(adam, ADAM, 0.05, _ADAM)


# ----------------------------------------------------------------------- cosine schedule

lr_ex = exercise("cosine_lr", ["cosine_lr"], forbidden=("cosine_lr", "cosineannealinglr"))


def _cosine_ref(epoch, base_lr, T_max, eta_min=0.0):
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * epoch / T_max)) / 2


COSINE_WRONG = [
    WrongAnswer(
        lambda e, b, T, m: _cosine_ref(e + 1, b, T, m),
        "your schedule is one epoch ahead: epoch 0 must give base_lr.",
    ),
    WrongAnswer(
        lambda e, b, T, m: m + (b - m) * (1 + math.cos(math.pi * e / T)),
        "you left out the / 2: the factor (1 + cos) / 2 goes from 1 to 0.",
    ),
    WrongAnswer(
        lambda e, b, T, m: b * (1 + math.cos(math.pi * e / T)) / 2,
        "you ignored eta_min: the schedule ends at eta_min, eta_min + (base_lr - eta_min) ...",
    ),
    WrongAnswer(
        lambda e, b, T, m: m + (b - m) * (1 + math.cos(2 * math.pi * e / T)) / 2,
        "you used a full period (2 pi): the cosine goes from 0 to pi over T_max epochs.",
    ),
    WrongAnswer(
        lambda e, b, T, m: m + (b - m) * (1 + math.sin(math.pi * e / T)) / 2,
        "you used sin: cos(0) = 1 starts the schedule at base_lr.",
    ),
    WrongAnswer(
        lambda e, b, T, m: m + (b - m) * (1 + math.cos(math.pi * (e // T))) / 2,
        "epoch // T_max is an integer division (0 before the last epoch): divide with /, "
        "pi * epoch / T_max.",
    ),
]


def _number(got, what: str) -> float:
    """``got`` as a float; a failure unless it is one number (not an array)."""
    is_number = isinstance(got, (int, float, np.integer, np.floating)) and not isinstance(
        got, (bool, np.bool_)
    )
    if not is_number:
        kind = repr(got) if isinstance(got, Unsupported) else type(got).__name__
        shape = f" of shape {got.shape}" if isinstance(got, np.ndarray) else ""
        raise CheckFailed(
            f"{what}: expected the learning rate as a number, got {kind}{shape}. Hint: the "
            "text asks for a number: compute it with math.cos and math.pi on numbers (or "
            "float(...) it), not an array."
        )
    return float(got)


def _expect_schedule(cosine_lr, calls, want, known=COSINE_WRONG, what="cosine_lr"):
    """The learner's values for each argument tuple in ``calls`` against ``want``; a
    known wrong schedule's hint only when it matches the learner at every one of them."""
    got = [_number(cosine_lr(*args), f"{what}{args}") for args in calls]
    bad = [
        i
        for i, (a, b) in enumerate(zip(got, want, strict=True))
        if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)
    ]
    if not bad:
        return
    i = bad[0]
    message = f"{what}{calls[i]}: expected {want[i]!r}, got {got[i]!r}"
    if len(bad) > 1:
        message += f" (and {len(bad) - 1} more of these {len(calls)} values differ)"
    for wrong in known:
        values = [quiet(wrong.fn, *args) for args in calls]
        if all(
            v is not None and math.isclose(v, g, rel_tol=1e-6, abs_tol=1e-12)
            for v, g in zip(values, got, strict=True)
        ):
            message += f"\n  Hint: {wrong.hint}"
            break
    raise CheckFailed(message)


def _schedule(cosine_lr, base_lr, T_max, eta_min):
    calls = [(e, base_lr, T_max, eta_min) for e in range(T_max + 1)]
    _expect_schedule(cosine_lr, calls, [_cosine_ref(*args) for args in calls])


@lr_ex.subcheck("cosine_lr follows eta_min + (base - eta_min)(1 + cos(pi e / T))/2 at every epoch")
def _(cosine_lr):
    for base_lr, T_max, eta_min in ((0.1, 10, 0.001), (0.5, 1, 0.05), (1, 7, 0.25)):
        _schedule(cosine_lr, base_lr, T_max, eta_min)


@lr_ex.subcheck("it starts at base_lr and ends at eta_min")
def _(cosine_lr):
    _expect_schedule(cosine_lr, [(0, 0.5, 20, 0.01), (20, 0.5, 20, 0.01)], [0.5, 0.01])


@lr_ex.subcheck("it matches nnlib.optim.CosineAnnealingLR over 30 epochs")
def _(cosine_lr):
    schedule = optim.CosineAnnealingLR(T_max=30, eta_min=0.002)
    calls = [(e, 0.2, 30, 0.002) for e in range(31)]
    _expect_schedule(cosine_lr, calls, [schedule(e, 0.2) for e, *_ in calls])


@lr_ex.subcheck("eta_min defaults to 0")
def _(cosine_lr):
    calls = [(e, 0.1, 10) for e in (0, 3, 5, 10)]
    got = [_number(cosine_lr(*args), f"cosine_lr{args}") for args in calls]
    want = [_cosine_ref(*args) for args in calls]
    if all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15) for a, b in zip(got, want, strict=True)):
        return
    known = []
    # the evidence for a wrong default: with eta_min=0.0 given, the schedule is right
    explicit = [quiet(cosine_lr, *args, 0.0) for args in calls]
    if all(
        isinstance(x, (int, float, np.floating)) and math.isclose(x, w, rel_tol=1e-9, abs_tol=1e-15)
        for x, w in zip(explicit, want, strict=True)
    ):
        known.append(
            WrongAnswer(
                lambda e, b, T: _cosine_ref(e, b, T, got[-1]),
                f"your eta_min defaults to {got[-1]!r}: the signature is cosine_lr(epoch, "
                "base_lr, T_max, eta_min=0.0).",
            )
        )
    _expect_schedule(cosine_lr, calls, want, known=known)


# ------------------------------------------------------------- Adam as a Numba kernel

numba_ex = exercise(
    "adam_numba",
    ["adam_numba"],
    mutates={"adam_numba": ("p", "m", "v")},
    # the text says "return nothing"; what it returns anyway is not looked at
    may_alias=("adam_numba",),
    forbidden=("adam_numba", "adam", "adamw", "adam_update_ref", "adam_update_cpu", "_adam"),
)
_SIG = "p, g, m, v, t, lr, beta1, beta2, eps"
_HYPER = (0.9, 0.999, 1e-8)


def _numba_sample():
    p = np.linspace(-1, 1, 16)
    return p, p * 0.5, np.zeros(16), np.zeros(16), 1, 0.01, 0.9, 0.999, 1e-8


add_numba_subchecks(
    numba_ex,
    "adam_numba",
    _SIG,
    _numba_sample,
    "a prange loop over the elements, e.g. `for i in prange(p.size):`,",
)


def _adam_step_ref(p, g, m, v, t, lr, beta1, beta2, eps):
    """One reference step computed in float64, returned as ``p``'s dtype, stacked."""
    dtype = p.dtype
    out = _adam_ref(*(a.astype(np.float64) for a in (p, g, m, v)), t, lr, beta1, beta2, eps)
    return np.stack(out).astype(dtype)


def _in_place(adam_numba):
    """``adam_numba`` as a function of its inputs that returns p, m and v stacked after it
    ran (it updates them in place)."""

    def run(p, g, m, v, t, lr, beta1, beta2, eps):
        call_nopython(adam_numba, "adam_numba", p, g, m, v, t, lr, beta1, beta2, eps)
        return np.stack([p, m, v])

    return run


def _numba_inputs(n, seed, dtype=np.float64, t=3):
    """p, g, m, v mid-way through training: every gradient at least 0.1 from 0, so every
    element of p, m and v changes in a step."""
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n)
    g = rng.choice([-1.0, 1.0], n) * rng.uniform(0.1, 2.0, n)
    m = 0.1 * rng.standard_normal(n)
    v = rng.uniform(0.01, 1.0, n)
    return (*(a.astype(dtype) for a in (p, g, m, v)), t, 0.01, *_HYPER)


def _unchanged(adam_numba, before, after):
    for name, old, new in zip("pmv", before, after, strict=True):
        if np.array_equal(old, new):
            raise CheckFailed(
                f"adam_numba left {name} unchanged. Hint: write the update into p, m and v in "
                f"place ({name}[i] = ...); a new array you make or return is thrown away."
            )


def _numba_run(adam_numba, dtype=np.float64, steps=4, n=1000):
    """Steps of the learner's kernel (changing learning rate) against the reference."""
    fn = dispatcher(adam_numba, "adam_numba", _SIG)
    rng = np.random.default_rng(70)
    p = rng.standard_normal(n).astype(dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    ref = [p.copy(), m.copy(), v.copy()]
    for t in range(1, steps + 1):
        lr = 0.01 * _LR_FACTORS[t - 1]
        g = (np.sin(3.0 * p.astype(np.float64)) + 0.5 * p).astype(dtype)
        before = [p.copy(), m.copy(), v.copy()]
        call_nopython(fn, "adam_numba", p, g, m, v, t, lr, *_HYPER)
        _unchanged(fn, before, (p, m, v))
        rg = (np.sin(3.0 * ref[0].astype(np.float64)) + 0.5 * ref[0]).astype(dtype)
        ref = list(_adam_step_ref(ref[0], rg, ref[1], ref[2], t, lr, *_HYPER))
    return (p, m, v), ref


def _numba_run_wrong(**variant):
    rng = np.random.default_rng(70)
    p = rng.standard_normal(1000)
    m, v = np.zeros_like(p), np.zeros_like(p)
    step = _adam_variant(**variant)
    for t in range(1, 5):
        lr = 0.01 * _LR_FACTORS[t - 1]
        p, m, v = step(p, np.sin(3.0 * p) + 0.5 * p, m, v, t, lr, *_HYPER)
    return p


@numba_ex.subcheck("four in-place steps of adam_numba match Adam for 1000 parameters")
def _(adam_numba):
    (p, m, v), (rp, rm, rv) = _numba_run(adam_numba)
    expect(
        p,
        rp,
        "p after 4 steps",
        known=[
            WrongAnswer(
                lambda: _numba_run_wrong(correct_m=False, correct_v=False),
                "no bias correction: divide m by 1 - beta1**t and v by 1 - beta2**t.",
            ),
            WrongAnswer(
                lambda: _numba_run_wrong(eps_inside=True),
                "eps is inside the square root: divide by sqrt(v_hat) + eps.",
            ),
        ],
    )
    expect(m, rm, "m after 4 steps")
    expect(v, rv, "v after 4 steps")


def _copies(args):
    return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)


@numba_ex.subcheck("every element of p, m and v is updated (n = 1, 7 and 1001)")
def _(adam_numba):
    # In place, an element the loop never reaches keeps its old value; one computed into a
    # scratch buffer it never writes holds what the memory held, e.g. the previous call's
    # result. Two calls on different inputs, every gradient far from 0: neither can
    # match the reference by luck, and only those two explain a failure as "not written".
    run = _in_place(dispatcher(adam_numba, "adam_numba", _SIG))
    for n in (1, 7, 1001):
        previous = None
        for seed in (0, 1):
            args = _numba_inputs(n, seed)
            before = np.stack([args[0], args[2], args[3]])
            want = _adam_step_ref(*args)
            got = run(*_copies(args))
            try:
                expect(got, want, f"p, m and v (rows 0, 1, 2) after one step, n = {n}")
            except CheckFailed as err:
                atol, rtol = tolerance(want.dtype)
                bad = ~np.isclose(got, want, atol=atol, rtol=rtol)
                stale = got == before
                if previous is not None:
                    stale |= got == previous
                if not (bad.any() and stale[bad].all()):
                    raise
                rows, cols = np.nonzero(bad)
                where = ", ".join(
                    f"{'pmv'[r]}[{c}]" for r, c in zip(rows[:6], cols[:6], strict=True)
                )
                raise CheckFailed(
                    f"{err}\n  Hint: {where}{' ...' if len(rows) > 6 else ''} never updated "
                    "(still the old value): write p[i], m[i] and v[i] for every index, in a "
                    "loop over prange(p.size), not prange(p.size - 1)."
                ) from None
            previous = got


@numba_ex.subcheck("adam_numba is right on 100000 parameters, run after run, all threads")
def _(adam_numba):
    run = _in_place(dispatcher(adam_numba, "adam_numba", _SIG))
    # a race shows as results right on a small input and wrong on a large one: the
    # small one first, so that a wrong formula is not called a race
    args = _numba_inputs(1001, 12)
    expect(
        run(*_copies(args)),
        _adam_step_ref(*args),
        "p, m and v (rows 0, 1, 2) after one step, n = 1001 (before the large inputs)",
    )
    expect_no_races(
        run,
        lambda: _numba_inputs(100_000, 11),
        _adam_step_ref,
        "p, m and v (rows 0, 1, 2) after one step on 100000 parameters",
        runs=3,
    )


@numba_ex.subcheck("adam_numba keeps float32 parameters and state float32")
def _(adam_numba):
    (p, m, v), (rp, rm, rv) = _numba_run(adam_numba, np.float32, steps=2, n=64)
    expect(p, rp, "float32 p after 2 steps")
    expect(m, rm, "float32 m after 2 steps")
    expect(v, rv, "float32 v after 2 steps")


# ------------------------------------------- the largest stable learning rate (no formula)

stable_ex = exercise("largest_stable_lr", ["largest_stable_lr"])

#: the learner may analyse (exact, from the eigenvalues) or search by experiment: a
#: bisection on "does gradient descent still shrink the error?" halves its bracket each
#: time, so about 20 halvings from [0, 10] reach a relative 1e-3 at these matrices'
#: limits (0.001-2). 1e-3 accepts any such search and rejects every wrong rule below,
#: each of which is off by 2% or more on at least one matrix checked.
STABLE_RTOL = 1e-3


def _stable_ref(A):
    return 2.0 / float(np.linalg.eigvalsh(np.asarray(A, dtype=np.float64)).max())


def _spd(n, seed, condition=30.0, dtype=np.float64):
    """A symmetric positive definite (n, n) matrix with eigenvalues from 1 to
    ``condition``, in a random (not axis-aligned) basis."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eig = np.geomspace(1.0, condition, n) * rng.uniform(0.5, 2.0)
    return ((Q * eig) @ Q.T).astype(dtype)


def _eig(A):
    return np.linalg.eigvalsh(np.asarray(A, dtype=np.float64))


STABLE_WRONG = [
    WrongAnswer(
        lambda A: 1.0 / _eig(A).max(),
        "your rate is half the limit: 1/lambda_max solves the steepest direction in one "
        "step, but the error there is multiplied by 1 - lr lambda, which stays inside "
        "(-1, 1) up to a larger lr. Where does |1 - lr lambda| reach 1?",
    ),
    WrongAnswer(
        lambda A: 2.0 / _eig(A).min(),
        "you used the smallest eigenvalue: the flattest direction is the slowest, but the "
        "steepest one (the largest curvature) is the first to diverge.",
    ),
    WrongAnswer(
        lambda A: 1.0 / _eig(A).min(),
        "you used 1/lambda_min: the steepest direction (the largest eigenvalue) limits lr, "
        "and the limit has a factor 2.",
    ),
    WrongAnswer(
        lambda A: 2.0 / float(np.max(np.diag(A))),
        "you used the largest diagonal entry: that is the curvature along one axis only. "
        "The directions that matter are A's eigenvectors, which are not the axes when A "
        "has off-diagonal entries.",
    ),
    WrongAnswer(
        lambda A: 2.0 / float(np.trace(A)),
        "you used the trace (the sum of all curvatures): only the largest one sets the limit.",
    ),
    WrongAnswer(
        lambda A: 2.0 / float(np.linalg.norm(A)),
        "you used the Frobenius norm of A: it is above the largest eigenvalue whenever A has "
        "more than one non-zero eigenvalue. The limit comes from the largest eigenvalue itself.",
    ),
]


def _expect_numbers(fn, name, calls, want, known, rtol, what):
    """The learner's numbers for each argument tuple in ``calls`` against ``want``
    (relative ``rtol``); a known wrong rule's hint when it matches at every call."""
    got = [_number(fn(*args), f"{name}({what[i]})") for i, args in enumerate(calls)]
    bad = [
        i for i, (a, b) in enumerate(zip(got, want, strict=True)) if not abs(a - b) <= rtol * abs(b)
    ]
    if not bad:
        return
    i = bad[0]
    message = (
        f"{name}({what[i]}): expected {want[i]:.6g} (within a relative {rtol:g}), got "
        f"{got[i]:.6g} (relative error {abs(got[i] - want[i]) / abs(want[i]):.2g})"
    )
    if len(bad) > 1:
        message += f" (and {len(bad) - 1} more of these {len(calls)} values differ)"
    for wrong in known:
        values = [quiet(wrong.fn, *args) for args in calls]
        if all(
            v is not None and abs(v - g) <= 1e-6 * abs(v) for v, g in zip(values, got, strict=True)
        ):
            message += f"\n  Hint: {wrong.hint}"
            break
    raise CheckFailed(message)


def _stable_cases(fn, cases):
    calls = [(A,) for A, _ in cases]
    _expect_numbers(
        fn,
        "largest_stable_lr",
        calls,
        [_stable_ref(A) for A, _ in cases],
        STABLE_WRONG,
        STABLE_RTOL,
        [label for _, label in cases],
    )


@stable_ex.subcheck("the set's quadratic: the limit found to a relative 1e-3")
def _(largest_stable_lr):
    _stable_cases(largest_stable_lr, [(_A.copy(), "A of the text")])


@stable_ex.subcheck("2x2 to 20x20 matrices in rotated bases, conditions 3 to 300")
def _(largest_stable_lr):
    cases = [
        (_spd(n, seed, cond), f"a {n}x{n} matrix, condition {cond:g}")
        for n, seed, cond in ((2, 1, 3.0), (3, 2, 30.0), (5, 3, 100.0), (20, 4, 300.0))
    ]
    _stable_cases(largest_stable_lr, cases)


@stable_ex.subcheck("a 1x1 matrix, a diagonal one and one with repeated eigenvalues")
def _(largest_stable_lr):
    Q, _ = np.linalg.qr(np.random.default_rng(9).standard_normal((4, 4)))
    cases = [
        (np.array([[4.0]]), "[[4.0]]"),
        (np.diag([0.5, 8.0, 2.0]), "diag(0.5, 8, 2)"),
        ((Q * np.array([3.0, 3.0, 3.0, 0.1])) @ Q.T, "eigenvalues 3, 3, 3, 0.1"),
    ]
    _stable_cases(largest_stable_lr, cases)


@stable_ex.subcheck("a matrix A, 10 A (a tenth of the limit) and A in float32")
def _(largest_stable_lr):
    A = _spd(6, 5, 50.0)
    _stable_cases(
        largest_stable_lr,
        [(A, "a 6x6 matrix A"), (A * 10.0, "10 A"), (A.astype(np.float32), "A in float32")],
    )


@stable_ex.subcheck("the number is a real limit: gradient descent converges just below it")
def _(largest_stable_lr):
    # behaviour, not form: 300 steps of gradient descent at 0.98 and 1.02 times the
    # learner's number, from a start with a component along every eigenvector
    A = _spd(4, 6, 20.0)
    lr = _number(largest_stable_lr(A.copy()), "largest_stable_lr(a 4x4 matrix)")
    if not (math.isfinite(lr) and lr > 0):
        raise CheckFailed(f"largest_stable_lr(a 4x4 matrix) gave {lr!r}: a learning rate is > 0")
    ends = []
    for factor in (0.98, 1.02):
        p = np.ones(4)
        for _ in range(300):
            p = p - factor * lr * (A @ p)
        ends.append(float(np.linalg.norm(p)))
    if not (ends[0] < 1.0 < ends[1]):
        raise CheckFailed(
            f"gradient descent on this matrix at 0.98 x your rate ends at |p| = {ends[0]:.3g} "
            f"and at 1.02 x your rate at {ends[1]:.3g} (from |p| = 2): the limit is where it "
            "turns from shrinking to growing. Hint: find the first direction to diverge."
        )


# ------------------------------------------- momentum's effective step (no formula)

mom_step_ex = exercise("momentum_effective_lr", ["momentum_effective_lr"])

#: a simulation of many steps is an honest answer too: with mu <= 0.95 (the range checked)
#: the velocity is within mu^n of its limit after n steps, so 200 steps give 3.5e-5
MOMENTUM_RTOL = 1e-4

MOMENTUM_WRONG = [
    WrongAnswer(
        lambda lr, mu: lr * (1 - mu),
        "you multiplied by 1 - mu: the velocity adds up "
        "g + mu g + mu^2 g + ..., which grows, not shrinks.",
    ),
    WrongAnswer(
        lambda lr, mu: lr / (1 + mu),
        "you divided by 1 + mu: the series 1 + mu + mu^2 + ... sums to 1 / (1 - mu).",
    ),
    WrongAnswer(
        lambda lr, mu: lr * mu / (1 - mu),
        "you summed mu + mu^2 + ... without the "
        "first term: v starts at 0, and the first step is already lr g.",
    ),
    WrongAnswer(
        lambda lr, mu: lr / mu,
        "you divided by mu: with mu = 0 momentum is plain "
        "gradient descent, an effective rate of lr.",
    ),
    WrongAnswer(
        lambda lr, mu: lr / (1 - mu) ** 2,
        "you squared 1 - mu: one geometric series, 1 + mu + mu^2 + ..., is 1 / (1 - mu).",
    ),
    WrongAnswer(
        lambda lr, mu: lr * (1 + mu),
        "you stopped after two terms, 1 + mu: the "
        "velocity keeps growing, towards the sum of the whole series.",
    ),
]


def _momentum_calls(fn, pairs, name="momentum_effective_lr"):
    calls = list(pairs)
    _expect_numbers(
        fn,
        name,
        calls,
        [lr / (1 - mu) for lr, mu in calls],
        MOMENTUM_WRONG,
        MOMENTUM_RTOL,
        [f"lr={lr:g}, mu={mu:g}" for lr, mu in calls],
    )


@mom_step_ex.subcheck("the typical mu = 0.9 and 0.5")
def _(momentum_effective_lr):
    _momentum_calls(momentum_effective_lr, [(0.01, 0.9), (0.1, 0.5)])


@mom_step_ex.subcheck("mu = 0 is plain gradient descent: the rate itself")
def _(momentum_effective_lr):
    _momentum_calls(momentum_effective_lr, [(0.03, 0.0), (1.0, 0.0)])


@mom_step_ex.subcheck("every mu from 0.05 to 0.95 and rates from 1e-4 to 3")
def _(momentum_effective_lr):
    _momentum_calls(
        momentum_effective_lr,
        [(lr, mu) for mu in (0.05, 0.3, 0.6, 0.8, 0.95) for lr in (1e-4, 0.02, 3.0)],
    )


@mom_step_ex.subcheck("it matches nnlib's SGD(momentum=mu) after many steps of a constant gradient")
def _(momentum_effective_lr):
    for lr, mu in ((0.05, 0.9), (0.2, 0.7)):
        p, g = np.zeros(1), np.full(1, 2.0)
        sgd = optim.SGD(lr=lr, momentum=mu)
        sgd.backend = "numpy"
        sgd.bind({"p": p}, {"p": g})
        for _ in range(400):
            before = p[0]
            sgd.step()
        step = (before - p[0]) / 2.0  # the last step per unit of gradient
        got = _number(momentum_effective_lr(lr, mu), f"momentum_effective_lr(lr={lr:g}, mu={mu:g})")
        if not abs(got - step) <= MOMENTUM_RTOL * step:
            raise CheckFailed(
                f"nnlib's SGD(lr={lr:g}, momentum={mu:g}) on a constant gradient moves p by "
                f"{step:.6g} per unit of gradient after 400 steps; your effective rate is "
                f"{got:.6g}. Hint: write out v after 1, 2, 3 steps and see what it tends to."
            )
