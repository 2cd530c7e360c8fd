"""The learning-rate range test: the schedule, the smoothing, the early stop and the
suggestion from their definitions (on loss curves built by hand), the exact restore of
the model and the optimizer however the test ends, and a real curve on the digits."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

import nnlib as nl
import nnlib.tuning as tuning
from nnlib.tuning import lr_find

BACKENDS = ["numpy", "cpu"]


def test_doctest():
    assert doctest.testmod(tuning, raise_on_error=False).failed == 0


@pytest.fixture(scope="module")
def digits():
    X, y = nl.datasets.load_digits()
    return X[:600] / 16, y[:600]


def mlp(seed=0, extras=True):
    """A small model with every kind of hidden state: BatchNorm's running statistics and
    Dropout's random stream."""
    layers = [nl.Dense(64, 32), nl.BatchNorm1d(), nl.ReLU()]
    if extras:
        layers += [nl.Dropout(0.2)]
    return nl.Sequential([*layers, nl.Dense(32, 10)], seed=seed)


def fake_step(model, loss_of_lr, optimizer_box):
    """A training step that returns ``loss_of_lr(lr)`` and changes nothing."""

    def step(X, y, *, loss, optimizer, backend):
        optimizer_box.append(optimizer)
        return float(loss_of_lr(optimizer.lr))

    return step


def ema(losses, beta):
    """fastai's smoothed loss, written out."""
    out, avg = [], 0.0
    for i, v in enumerate(losses):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** (i + 1)))
    return np.array(out)


# ---------------------------------------------------------------------------- the schedule
def test_lrs_are_geometric_from_start_to_end(digits, monkeypatch):
    X, y = digits
    model = mlp()
    monkeypatch.setattr(model, "train_on_batch", fake_step(model, lambda lr: 1.0, []))
    found = lr_find(model, X, y, start_lr=1e-5, end_lr=1.0, num_steps=41, diverge_factor=math.inf)
    assert len(found.lrs) == 41 and found.lrs[0] == 1e-5 and found.lrs[-1] == 1.0
    ratios = found.lrs[1:] / found.lrs[:-1]
    np.testing.assert_allclose(ratios, 10 ** (5 / 40), rtol=1e-12)


def test_the_lr_is_set_on_the_optimizer_before_each_step(digits, monkeypatch):
    X, y = digits
    model, seen = mlp(), []
    opt = nl.optim.SGD(lr=0.123, momentum=0.9)
    monkeypatch.setattr(
        model, "train_on_batch", fake_step(model, lambda lr: seen.append(lr) or 1.0, [])
    )
    found = lr_find(model, X, y, optimizer=opt, num_steps=10, diverge_factor=math.inf)
    np.testing.assert_array_equal(seen, found.lrs)
    assert opt.lr == 0.123


def test_smoothed_is_the_bias_corrected_ema(digits, monkeypatch):
    X, y = digits
    model = mlp()
    rng = np.random.default_rng(1)
    values = iter(rng.uniform(1, 2, 50))
    monkeypatch.setattr(model, "train_on_batch", fake_step(model, lambda lr: next(values), []))
    found = lr_find(model, X, y, num_steps=50, smoothing=0.9, diverge_factor=math.inf)
    np.testing.assert_allclose(found.smoothed, ema(found.losses, 0.9), rtol=1e-13)
    assert found.smoothed[0] == found.losses[0]  # the bias correction: no pull towards 0


def test_stops_when_the_smoothed_loss_passes_diverge_factor_times_its_minimum(digits, monkeypatch):
    X, y = digits
    model = mlp()
    curve = lambda lr: 1.0 if lr < 1e-2 else 1.0 + 100 * (lr - 1e-2)  # noqa: E731
    monkeypatch.setattr(model, "train_on_batch", fake_step(model, curve, []))
    found = lr_find(model, X, y, num_steps=100, smoothing=0.5)
    lrs = 1e-7 * (10.0 / 1e-7) ** (np.arange(100) / 99)
    s = ema([curve(lr) for lr in lrs], 0.5)
    first = int(np.argmax(s > 4 * np.minimum.accumulate(s)))  # the first step past 4x
    assert found.diverged and len(found.lrs) == first + 1
    np.testing.assert_allclose(found.smoothed, s[: first + 1], rtol=1e-13)


def test_stops_at_a_nan_loss(digits, monkeypatch):
    X, y = digits
    model = mlp()
    curve = lambda lr: math.nan if lr > 1e-3 else 1.0  # noqa: E731
    monkeypatch.setattr(model, "train_on_batch", fake_step(model, curve, []))
    found = lr_find(model, X, y, num_steps=50)
    assert found.diverged and math.isnan(found.losses[-1]) and found.lrs[-2] <= 1e-3
    assert np.isfinite(found.losses[:-1]).all()


# ---------------------------------------------------------------------------- the suggestion
@pytest.mark.parametrize("center", [-4.3, -2.0, -0.6])
def test_suggestion_is_the_steepest_descent_of_a_known_curve(digits, monkeypatch, center):
    """loss = 2 - tanh((log10 lr - c) / 0.5) falls fastest against log lr at lr = 10^c."""
    X, y = digits
    model = mlp()
    curve = lambda lr: 2 - math.tanh((math.log10(lr) - center) / 0.5)  # noqa: E731
    monkeypatch.setattr(model, "train_on_batch", fake_step(model, curve, []))
    found = lr_find(model, X, y, num_steps=100, smoothing=0.0, diverge_factor=math.inf)
    step = 8 / 99  # log10(10 / 1e-7) / (num_steps - 1)
    assert abs(math.log10(found.suggestion) - center) <= step + 1e-9
    assert found.min_loss_lr == found.lrs[-1]  # the curve falls all the way


def test_suggestion_follows_the_documented_rule_on_a_smoothed_noisy_curve(digits, monkeypatch):
    X, y = digits
    model = mlp()
    rng = np.random.default_rng(3)
    noise = iter(rng.normal(0, 0.05, 80))
    curve = lambda lr: 2 - math.tanh(math.log10(lr) + 3) + next(noise)  # noqa: E731
    monkeypatch.setattr(model, "train_on_batch", fake_step(model, curve, []))
    found = lr_find(model, X, y, num_steps=80, smoothing=0.9, diverge_factor=math.inf)
    s = ema(found.losses, 0.9)[8:-5]  # skip num_steps // 10 first, 5 last
    lrs = found.lrs[8:-5]
    slopes = np.diff(s) / np.diff(np.log(lrs))
    assert found.suggestion == lrs[np.argmin(slopes)]


def test_suggestion_skips_the_first_points(digits, monkeypatch):
    X, y = digits
    model = mlp()
    values = iter([10.0] + [1.0] * 20 + [0.5] * 29)  # a cliff at step 0, a step at 20
    monkeypatch.setattr(model, "train_on_batch", fake_step(model, lambda lr: next(values), []))
    found = lr_find(model, X, y, num_steps=50, smoothing=0.0, diverge_factor=math.inf)
    assert found.suggestion == found.lrs[20]  # the cliff is among the 50 // 10 skipped


def test_no_suggestion_when_the_loss_never_falls(digits, monkeypatch):
    X, y = digits
    model = mlp()
    monkeypatch.setattr(model, "train_on_batch", fake_step(model, lambda lr: 1 + lr, []))
    found = lr_find(model, X, y, num_steps=30, smoothing=0.0, diverge_factor=math.inf)
    assert found.suggestion is None
    assert found.min_loss_lr == found.lrs[0]


# ---------------------------------------------------------------------------- restoring
def snapshot(model, opt):
    return (
        {k: np.array(v) for k, v in model.parameters().items()},
        {k: np.array(v) for k, v in model.gradients().items()},
        {k: np.array(v) for k, v in model.buffers().items()},
        opt.state_dict() if opt.params else None,
        (opt.lr, opt.t),
    )


def assert_same(a, b):
    for da, db in zip(a[:3], b[:3], strict=True):
        assert da.keys() == db.keys()
        for k in da:
            assert da[k].tobytes() == db[k].tobytes(), k  # bitwise
    if a[3] is not None:
        assert a[3]["t"] == b[3]["t"] and a[3]["hyper"] == b[3]["hyper"]
        for k, v in a[3]["state"].items():
            for s in v:
                assert v[s].tobytes() == b[3]["state"][k][s].tobytes(), (k, s)
    assert a[4] == b[4]


def twins(opt_kind, X, y, backend):
    """Two identical models and optimizers, trained a little (non-zero state)."""
    out = []
    for _ in range(2):
        model = mlp(seed=0)
        if opt_kind == "sgd":
            opt = nl.optim.SGD(lr=0.05, momentum=0.9)
        else:
            opt = nl.optim.Adam(lr=1e-3)
        model.fit(X, y, optimizer=opt, epochs=1, batch_size=100, seed=0, verbose=0)
        for _ in range(2):  # a train_on_batch plan kept by the model, as a user's loop has
            model.train_on_batch(X[:50], y[:50], optimizer=opt, backend=backend)
        out.append((model, opt))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opt_kind", ["sgd", "adam"])
@pytest.mark.parametrize("ending", ["normal", "diverges", "raises"])
def test_model_and_optimizer_are_restored_exactly(digits, monkeypatch, backend, opt_kind, ending):
    X, y = digits
    (model, opt), (twin, twin_opt) = twins(opt_kind, X, y, backend)
    before = snapshot(model, opt)
    predictions = model.predict_proba(X)
    kwargs = dict(optimizer=opt, num_steps=12, batch_size=32, seed=1, backend=backend)
    if ending == "diverges":
        found = lr_find(model, X, y, start_lr=1.0, end_lr=1e8, **kwargs)
        assert found.diverged and len(found.lrs) < 12
    elif ending == "raises":
        real, calls = model.train_on_batch, []

        def failing(*args, **kw):
            calls.append(1)
            if len(calls) == 6:
                raise KeyError("planted")
            return real(*args, **kw)

        monkeypatch.setattr(model, "train_on_batch", failing)
        with pytest.raises(KeyError, match="planted"):
            lr_find(model, X, y, **kwargs)
        monkeypatch.undo()
    else:
        found = lr_find(model, X, y, **kwargs)
        assert len(found.lrs) == 12
    assert_same(before, snapshot(model, opt))
    np.testing.assert_array_equal(model.predict_proba(X), predictions)
    # what was not compared above (the kept step, Dropout's stream, the optimizer's
    # binding): the model trains on exactly as its twin that never saw lr_find
    for _ in range(3):
        a = model.train_on_batch(X[:64], y[:64], optimizer=opt, backend=backend)
        b = twin.train_on_batch(X[:64], y[:64], optimizer=twin_opt, backend=backend)
        assert a == b
    assert_same(snapshot(model, opt), snapshot(twin, twin_opt))


def test_a_fresh_optimizer_stays_unbound(digits):
    X, y = digits
    model, opt = mlp(), nl.optim.SGD(lr=0.1, momentum=0.9)
    lr_find(model, X, y, optimizer=opt, num_steps=5, backend="numpy")
    assert opt.params == {} and opt.state == {} and opt.t == 0 and opt.lr == 0.1


def test_an_unbuilt_model_is_built_from_x_and_the_seed_and_left_with_those_weights(digits):
    X, y = digits
    layers = lambda: [nl.Dense(None, 16), nl.ReLU(), nl.Dense(16, 10)]  # noqa: E731
    model, twin = nl.Sequential(layers()), nl.Sequential(layers())
    assert not model.built
    lr_find(model, X, y, num_steps=5, seed=7, backend="numpy")
    assert model.built
    twin.build(64, seed=7)  # fit's build: from X's width and the seed
    for k, v in twin.parameters().items():
        assert model.parameters()[k].tobytes() == v.tobytes()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_real_curve_on_the_digits_falls_then_rises(digits, backend):
    X, y = digits
    model = mlp(extras=False)
    found = lr_find(
        model, X, y, optimizer=nl.optim.SGD(momentum=0.9), start_lr=1e-4, end_lr=100.0,
        num_steps=60, batch_size=64, seed=0, backend=backend,
    )  # fmt: skip
    s = found.smoothed
    low = int(np.argmin(s))
    assert 0 < low < len(s) - 1
    assert s[low] < s[0] - 0.5 and s[-1] > s[low] + 0.5  # falls, then rises
    assert found.lrs[0] < found.suggestion < found.min_loss_lr


def test_plot(digits, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, y = digits
    model = mlp()
    curve = lambda lr: 2 - math.tanh(math.log10(lr) + 3)  # noqa: E731
    monkeypatch.setattr(model, "train_on_batch", fake_step(model, curve, []))
    found = lr_find(model, X, y, num_steps=40, smoothing=0.0)
    ax = found.plot()
    assert ax.get_xscale() == "log"
    assert any("suggestion" in t.get_text() for t in ax.get_legend().get_texts())
    plt.close(ax.figure)


# ---------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(start_lr=1.0, end_lr=0.1), "start_lr must be smaller than end_lr"),
        (dict(start_lr=1.0, end_lr=1.0), "start_lr must be smaller than end_lr"),
        (dict(start_lr=-1.0), "start_lr must be a number > 0"),
        (dict(end_lr=math.inf), "end_lr must be finite"),
        (dict(num_steps=1), "num_steps must be an int >= 2"),
        (dict(batch_size=0), "batch_size must be an int >= 1"),
        (dict(smoothing=1.0), r"smoothing must be in \[0, 1\)"),
        (dict(diverge_factor=1.0), "diverge_factor must be a number > 1"),
        (dict(optimizer="adam"), "optimizer must be an nnlib.optim optimizer"),
        (dict(loss="hinge"), "loss must be one of"),
    ],
)
def test_bad_arguments_are_refused_before_anything_changes(digits, kwargs, match):
    X, y = digits
    model = nl.Sequential([nl.Dense(None, 8), nl.ReLU(), nl.Dense(8, 10)])
    with pytest.raises((ValueError, TypeError), match=match):
        lr_find(model, X, y, **kwargs)
    assert not model.built


def test_bad_data_is_refused(digits):
    X, y = digits
    with pytest.raises(ValueError, match="X and y must have the same length; got 600 and 599"):
        lr_find(mlp(), X, y[:-1])
    with pytest.raises(TypeError, match=r"model must be an nl\.Sequential"):
        lr_find([nl.Dense(64, 10)], X, y)
    with pytest.raises(ValueError, match="BatchNorm1d"):
        lr_find(mlp(), X, y, batch_size=1)
