"""Checks for exercise set 04, gradient descent and its variants
(``solutions/04_gradient_descent.ipynb``).

The update rules are PyTorch's (the ones :mod:`nnlib.optim` implements): each check
runs several steps of the learner's update on a fixed ill-conditioned quadratic, whose
gradient depends on the parameters, and compares the trajectory with the formula.
Known wrong rules are run the same way, so the feedback can name the mistake.
"""

from __future__ import annotations

import math

import numpy as np

from nnlib import optim

from .checks import CheckFailed, WrongAnswer, exercise, expect
from .forward_losses import expect_scalar
from .numba_checks import add_numba_subchecks, call_nopython, dispatcher

# The quadratic f(p) = 1/2 p^T A p - c^T p: gradient A p - c, ill-conditioned (1 vs 20).
_A = np.array([[1.0, 0.0, 0.0], [0.0, 20.0, 3.0], [0.0, 3.0, 5.0]])
_C = np.array([1.0, -2.0, 0.5])
_P0 = np.array([2.0, -1.5, 1.0])


def _grad(p):
    return (_A @ p.astype(np.float64) - _C).astype(p.dtype)


def _run(step, state_names, steps=6, dtype=np.float64, **hyper):
    """The parameters after ``steps`` updates p, *state = step(p, g, *state, **hyper)."""
    p = _P0.astype(dtype)
    state = [np.zeros_like(p) for _ in state_names]
    for t in range(1, steps + 1):
        kwargs = dict(hyper, t=t) if "t" in hyper else hyper
        result = step(p.copy(), _grad(p), *[s.copy() for s in state], **kwargs)
        if not isinstance(result, tuple) or len(result) != 1 + len(state_names):
            names = ", ".join(("p", *state_names))
            raise CheckFailed(
                f"the update must return ({names}) as a tuple; got {type(result).__name__}. "
                f"Hint: `return {names}`."
            )
        p, *state = (np.asarray(a) for a in result)
    return p


def _trajectory_check(step, reference, wrongs, state_names, what, **hyper):
    def run_wrong(wrong_step):
        return lambda: _run(wrong_step, state_names, **hyper)

    expect(
        _run(step, state_names, **hyper),
        _run(reference, state_names, **hyper),
        what,
        known=[WrongAnswer(run_wrong(w), hint) for w, hint in wrongs],
    )


def _nnlib_trajectory(opt, steps=6):
    """The same trajectory with nnlib's optimizer (the library's answer)."""
    p, g = _P0.copy(), np.zeros(3)
    opt.backend = "numpy"
    opt.bind({"p": p}, {"p": g})
    for _ in range(steps):
        g[:] = _grad(p)
        opt.step()
    return p


# ------------------------------------------------------------------- mini-batch iterator

mb_ex = exercise("minibatches", ["minibatches"])


def _batches(minibatches, n, batch_size, seed):
    got = minibatches(n, batch_size, seed)
    try:
        got = [np.asarray(b) for b in got]
    except TypeError:
        raise CheckFailed(
            f"minibatches must return a list of index arrays; got {type(got).__name__}"
        ) from None
    return got


@mb_ex.subcheck("every index appears exactly once per epoch (n = 103, batch 10)")
def _(minibatches):
    got = _batches(minibatches, 103, 10, 0)
    flat = np.concatenate(got) if got else np.array([], int)
    if len(flat) < 103 and len(np.unique(flat)) == len(flat) and len(flat) == 100:
        raise CheckFailed(
            f"the batches hold {len(flat)} of 103 indices. Hint: you dropped the last, "
            "smaller batch: keep it (range(0, n, batch_size) covers the tail)."
        )
    if len(np.unique(flat)) != len(flat):
        raise CheckFailed(
            f"{len(flat) - len(np.unique(flat))} indices appear twice. Hint: draw a "
            "permutation (rng.permutation(n)), not indices with replacement "
            "(rng.integers)."
        )
    if sorted(flat.tolist()) != list(range(103)):
        raise CheckFailed(f"the batches hold {len(flat)} indices, not each of 0..102 once")


@mb_ex.subcheck("batches have batch_size indices, the last one the rest")
def _(minibatches):
    sizes = [len(b) for b in _batches(minibatches, 103, 10, 0)]
    if sizes != [10] * 10 + [3]:
        raise CheckFailed(f"batch sizes {sizes}, expected ten of 10 and a last one of 3")


@mb_ex.subcheck("the order is shuffled")
def _(minibatches):
    flat = np.concatenate(_batches(minibatches, 50, 7, 1))
    if flat.tolist() == sorted(flat.tolist()):
        raise CheckFailed(
            "the indices come out in order 0, 1, 2, ...: shuffle them. Hint: "
            "np.random.default_rng(seed).permutation(n)."
        )


@mb_ex.subcheck("the same seed gives the same order, another seed another order")
def _(minibatches):
    a = np.concatenate(_batches(minibatches, 50, 7, 3))
    b = np.concatenate(_batches(minibatches, 50, 7, 3))
    c = np.concatenate(_batches(minibatches, 50, 7, 4))
    if not np.array_equal(a, b):
        raise CheckFailed(
            "two calls with seed=3 gave different orders. Hint: build the generator from "
            "the seed: np.random.default_rng(seed)."
        )
    if np.array_equal(a, c):
        raise CheckFailed("seeds 3 and 4 gave the same order: use the seed argument.")


@mb_ex.subcheck("a batch larger than the data gives one batch of everything")
def _(minibatches):
    got = _batches(minibatches, 5, 32, 0)
    if len(got) != 1 or sorted(got[0].tolist()) != list(range(5)):
        raise CheckFailed(f"got {len(got)} batches for n = 5, batch_size = 32; expected one")


# ---------------------------------------------------------------------- SGD + momentum

mom_ex = exercise("sgd_momentum", ["sgd_momentum"])


def _momentum_ref(p, g, v, lr, mu):
    v = mu * v + g
    return p - lr * v, v


MOMENTUM_WRONG = [
    (
        lambda p, g, v, lr, mu: (p - lr * (g + mu * (mu * v + g)), mu * v + g),
        "you stepped with g + mu * v_new, Nesterov's look-ahead: plain momentum steps with "
        "the velocity itself, p = p - lr v.",
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
        "v = mu v + g, step with p = p - lr v, and return the new v for the next step.",
    ),
]


@mom_ex.subcheck("six steps of sgd_momentum follow v = mu v + g, p = p - lr v")
def _(sgd_momentum):
    _trajectory_check(
        sgd_momentum, _momentum_ref, MOMENTUM_WRONG, ["v"], "p after 6 steps", lr=0.02, mu=0.9
    )


@mom_ex.subcheck("with mu = 0 it is plain gradient descent")
def _(sgd_momentum):
    _trajectory_check(
        sgd_momentum,
        _momentum_ref,
        MOMENTUM_WRONG,
        ["v"],
        "p after 6 steps, mu = 0",
        lr=0.05,
        mu=0.0,
    )


@mom_ex.subcheck("it matches nnlib.optim.SGD(momentum=0.9)")
def _(sgd_momentum):
    expect(
        _run(sgd_momentum, ["v"], lr=0.02, mu=0.9),
        _nnlib_trajectory(optim.SGD(lr=0.02, momentum=0.9)),
        "p after 6 steps vs nnlib's SGD",
    )


@mom_ex.subcheck("float32 parameters stay float32")
def _(sgd_momentum):
    expect(
        _run(sgd_momentum, ["v"], dtype=np.float32, lr=0.02, mu=0.9),
        _run(_momentum_ref, ["v"], dtype=np.float32, lr=0.02, mu=0.9),
        "float32 p after 6 steps",
    )


# ------------------------------------------------------------------------------ RMSprop

rms_ex = exercise("rmsprop", ["rmsprop"])


def _rms_ref(p, g, s, lr, alpha, eps):
    s = alpha * s + (1 - alpha) * g * g
    return p - lr * g / (np.sqrt(s) + eps), s


RMS_WRONG = [
    (
        lambda p, g, s, lr, alpha, eps: (
            p - lr * g / np.sqrt(alpha * s + (1 - alpha) * g * g + eps),
            alpha * s + (1 - alpha) * g * g,
        ),
        "eps is inside the square root: PyTorch divides by sqrt(s) + eps.",
    ),
    (
        lambda p, g, s, lr, alpha, eps: (
            p - lr * g / (alpha * s + (1 - alpha) * g * g + eps),
            alpha * s + (1 - alpha) * g * g,
        ),
        "you divided by s itself: divide by its square root, sqrt(s) + eps.",
    ),
    (
        lambda p, g, s, lr, alpha, eps: (
            p - lr * g / (np.sqrt((1 - alpha) * s + alpha * g * g) + eps),
            (1 - alpha) * s + alpha * g * g,
        ),
        "alpha and 1 - alpha are swapped: s = alpha s + (1 - alpha) g^2 keeps most of the "
        "old average.",
    ),
    (
        lambda p, g, s, lr, alpha, eps: (
            p - lr * g / (np.sqrt(np.abs(alpha * s + (1 - alpha) * g)) + eps),
            alpha * s + (1 - alpha) * g,
        ),
        "you averaged the gradient, not its square: s = alpha s + (1 - alpha) g**2.",
    ),
    (
        lambda p, g, s, lr, alpha, eps: (
            p - lr * g / (np.sqrt(s) + eps),
            alpha * s + (1 - alpha) * g * g,
        ),
        "you divided by the old average: update s first, then step with the new s.",
    ),
]


@rms_ex.subcheck("six steps of rmsprop follow s = alpha s + (1-alpha) g^2, p -= lr g/(sqrt(s)+eps)")
def _(rmsprop):
    with np.errstate(all="ignore"):
        _trajectory_check(
            rmsprop, _rms_ref, RMS_WRONG, ["s"], "p after 6 steps", lr=0.01, alpha=0.9, eps=1e-3
        )


@rms_ex.subcheck("it matches nnlib.optim.RMSprop")
def _(rmsprop):
    expect(
        _run(rmsprop, ["s"], lr=0.01, alpha=0.99, eps=1e-8),
        _nnlib_trajectory(optim.RMSprop(lr=0.01, alpha=0.99, eps=1e-8)),
        "p after 6 steps vs nnlib's RMSprop",
    )


@rms_ex.subcheck("a zero gradient leaves p unchanged (no division by zero)")
def _(rmsprop):
    p, g, s = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    with np.errstate(divide="raise", invalid="raise"):
        try:
            new_p, _ = rmsprop(p.copy(), g, s, lr=0.1, alpha=0.99, eps=1e-8)
        except FloatingPointError as err:
            raise CheckFailed(
                f"rmsprop divided by zero for a zero gradient ({err}). Hint: add eps to the "
                "denominator, sqrt(s) + eps."
            ) from None
    expect(np.asarray(new_p), p, "p after a zero-gradient step")


@rms_ex.subcheck("float32 parameters stay float32")
def _(rmsprop):
    expect(
        _run(rmsprop, ["s"], dtype=np.float32, lr=0.01, alpha=0.9, eps=1e-3),
        _run(_rms_ref, ["s"], dtype=np.float32, lr=0.01, alpha=0.9, eps=1e-3),
        "float32 p after 6 steps",
    )


# --------------------------------------------------------------------------------- Adam

adam_ex = exercise("adam", ["adam"])
_ADAM = {"lr": 0.05, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "t": 1}


def _adam_ref(p, g, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def _adam_variant(correct_m=True, correct_v=True, eps_inside=False, t_shift=0, sqrt=True):
    def step(p, g, m, v, t, lr, beta1, beta2, eps):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        tt = t + t_shift
        m_hat = m / (1 - beta1**tt) if correct_m else m
        v_hat = v / (1 - beta2**tt) if correct_v else v
        denom = np.sqrt(v_hat + eps) if eps_inside else (np.sqrt(v_hat) if sqrt else v_hat) + eps
        return p - lr * m_hat / denom, m, v

    return step


ADAM_WRONG = [
    (
        _adam_variant(correct_m=False, correct_v=False),
        "no bias correction: divide m by 1 - beta1**t and v by 1 - beta2**t (t counts from "
        "1), or the first steps are far too small.",
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
        _adam_variant(sqrt=False),
        "you divided by v_hat itself: divide by its square root, sqrt(v_hat) + eps.",
    ),
]


@adam_ex.subcheck("six steps of adam follow PyTorch's rule with bias correction")
def _(adam):
    with np.errstate(all="ignore"):
        _trajectory_check(adam, _adam_ref, ADAM_WRONG, ["m", "v"], "p after 6 steps", **_ADAM)


@adam_ex.subcheck("the first step has size lr in every coordinate (bias correction)")
def _(adam):
    p, g = np.array([1.0, -1.0, 3.0]), np.array([0.5, -20.0, 1e-3])
    z = np.zeros(3)
    with np.errstate(divide="raise", invalid="raise"):
        try:
            new_p = np.asarray(adam(p.copy(), g, z.copy(), z.copy(), 1, 0.1, 0.9, 0.999, 1e-8)[0])
        except FloatingPointError as err:
            raise CheckFailed(
                f"adam divided by zero at t = 1 ({err}). Hint: t counts from 1, so "
                "1 - beta**t is never 0."
            ) from None
    step = p - new_p
    if not np.allclose(np.abs(step), 0.1, rtol=1e-4):
        raise CheckFailed(
            f"the first step moved p by {np.abs(step).tolist()}, expected lr = 0.1 in each "
            "coordinate (with bias correction m_hat / sqrt(v_hat) = sign(g) at t = 1). "
            "Hint: m_hat = m / (1 - beta1**t), v_hat = v / (1 - beta2**t)."
        )


@adam_ex.subcheck("it matches nnlib.optim.Adam")
def _(adam):
    expect(
        _run(adam, ["m", "v"], **_ADAM),
        _nnlib_trajectory(optim.Adam(lr=0.05, betas=(0.9, 0.999), eps=1e-8)),
        "p after 6 steps vs nnlib's Adam",
    )


@adam_ex.subcheck("float32 parameters stay float32")
def _(adam):
    expect(
        _run(adam, ["m", "v"], dtype=np.float32, **_ADAM),
        _run(_adam_ref, ["m", "v"], dtype=np.float32, **_ADAM),
        "float32 p after 6 steps",
    )


# ----------------------------------------------------------------------- cosine schedule

lr_ex = exercise("cosine_lr", ["cosine_lr"])


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
]


@lr_ex.subcheck("cosine_lr follows eta_min + (base - eta_min)(1 + cos(pi e / T))/2")
def _(cosine_lr):
    for e in (0, 3, 7, 10):
        args = (e, 0.1, 10, 0.001)
        expect_scalar(
            cosine_lr(*args), _cosine_ref(*args), f"cosine_lr{args}", known=COSINE_WRONG, args=args
        )


@lr_ex.subcheck("it starts at base_lr and ends at eta_min")
def _(cosine_lr):
    expect_scalar(
        cosine_lr(0, 0.5, 20, 0.01),
        0.5,
        "cosine_lr at epoch 0",
        known=COSINE_WRONG,
        args=(0, 0.5, 20, 0.01),
    )
    expect_scalar(
        cosine_lr(20, 0.5, 20, 0.01),
        0.01,
        "cosine_lr at epoch T_max",
        known=COSINE_WRONG,
        args=(20, 0.5, 20, 0.01),
    )


@lr_ex.subcheck("it matches nnlib.optim.CosineAnnealingLR over 30 epochs")
def _(cosine_lr):
    schedule = optim.CosineAnnealingLR(T_max=30, eta_min=0.002)
    for e in range(31):
        expect_scalar(
            cosine_lr(e, 0.2, 30, 0.002),
            schedule(e, 0.2),
            f"cosine_lr at epoch {e}",
            known=COSINE_WRONG,
            args=(e, 0.2, 30, 0.002),
        )


@lr_ex.subcheck("eta_min defaults to 0")
def _(cosine_lr):
    expect_scalar(cosine_lr(5, 0.1, 10), _cosine_ref(5, 0.1, 10), "cosine_lr(5, 0.1, 10)")


# ------------------------------------------------------------- Adam as a Numba kernel

numba_ex = exercise("adam_numba", ["adam_numba"])
_SIG = "p, g, m, v, t, lr, beta1, beta2, eps"


def _numba_sample():
    p = np.linspace(-1, 1, 16)
    return p, p * 0.5, np.zeros(16), np.zeros(16), 1, 0.01, 0.9, 0.999, 1e-8


add_numba_subchecks(
    numba_ex, "adam_numba", _SIG, _numba_sample, "the loop as `for i in prange(p.size):`"
)


def _numba_run(adam_numba, dtype=np.float64, steps=4, n=1000):
    fn = dispatcher(adam_numba, "adam_numba", _SIG)
    rng = np.random.default_rng(70)
    p = rng.standard_normal(n).astype(dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    rp, rm, rv = p.copy(), m.copy(), v.copy()
    for t in range(1, steps + 1):
        g = (np.sin(3.0 * p.astype(np.float64)) + 0.5 * p).astype(dtype)
        before = p.copy()
        call_nopython(fn, "adam_numba", p, g, m, v, t, 0.01, 0.9, 0.999, 1e-8)
        if np.array_equal(p, before):
            raise CheckFailed(
                "adam_numba left p unchanged. Hint: write the update into p, m and v in "
                "place (p[i] = ..., m[i] = ..., v[i] = ...); a new array you return is "
                "thrown away."
            )
        rg = (np.sin(3.0 * rp.astype(np.float64)) + 0.5 * rp).astype(dtype)
        rp, rm, rv = _adam_ref(rp, rg, rm, rv, t, 0.01, 0.9, 0.999, 1e-8)
        rp, rm, rv = (a.astype(dtype) for a in (rp, rm, rv))
    return (p, m, v), (rp, rm, rv)


@numba_ex.subcheck("four in-place steps of adam_numba match Adam for 1000 parameters")
def _(adam_numba):
    (p, m, v), (rp, rm, rv) = _numba_run(adam_numba)
    expect(
        p,
        rp,
        "p after 4 steps",
        known=[
            WrongAnswer(
                _numba_run_wrong,
                "no bias correction: divide m by 1 - beta1**t and v by 1 - beta2**t.",
            )
        ],
    )
    expect(m, rm, "m after 4 steps")
    expect(v, rv, "v after 4 steps")


def _numba_run_wrong():
    rng = np.random.default_rng(70)
    p = rng.standard_normal(1000)
    m, v = np.zeros_like(p), np.zeros_like(p)
    step = _adam_variant(correct_m=False, correct_v=False)
    for t in range(1, 5):
        p, m, v = step(p, np.sin(3.0 * p) + 0.5 * p, m, v, t, 0.01, 0.9, 0.999, 1e-8)
    return p


@numba_ex.subcheck("adam_numba keeps float32 parameters and state float32")
def _(adam_numba):
    (p, _, v), (rp, _, rv) = _numba_run(adam_numba, np.float32, steps=2, n=64)
    expect(p, rp, "float32 p after 2 steps")
    expect(v, rv, "float32 v after 2 steps")
