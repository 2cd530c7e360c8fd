"""nl.model_selection.learning_curve: each run is the fit a user would write by hand on a
seeded, nested (optionally stratified) prefix of the pool, scored in evaluation mode."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import nnlib as nl
from nnlib import model_selection as ms


def _data(n=360, seed=0):
    X, y = nl.datasets.blobs(n, centers=3, dim=4, std=2.0, seed=seed)
    return X[: n * 2 // 3], y[: n * 2 // 3], X[n * 2 // 3 :], y[n * 2 // 3 :]


def _mlp(p=0.0):
    layers = [nl.Dense(4, 16), nl.ReLU()]
    if p:
        layers.append(nl.Dropout(p))
    return nl.Sequential([*layers, nl.Dense(16, 3)])


FIT = {"epochs": 3, "batch_size": 16, "backend": "numpy"}


def test_the_docstring_example_runs():
    assert doctest.testmod(ms, raise_on_error=False).failed == 0


def test_every_run_is_the_fit_written_by_hand():
    X, y, Xv, yv = _data()
    curve = ms.learning_curve(
        lambda: _mlp(p=0.3),
        X,
        y,
        train_sizes=[0.25, 60, 1.0],
        validation_data=(Xv, yv),
        seeds=(3, 7),
        optimizer=nl.optim.SGD(lr=0.1, momentum=0.9),
        **FIT,
    )
    np.testing.assert_array_equal(curve.train_sizes, [60, len(X)])  # 0.25 * 240 = 60 once
    assert curve.val_accuracy.shape == curve.train_loss.shape == (2, 2)
    for i, size in enumerate(curve.train_sizes):
        for j, seed in enumerate((3, 7)):
            rows = np.random.default_rng(seed).permutation(len(X))[:size]
            model = _mlp(p=0.3).build(4, seed=seed)
            history = model.fit(
                X[rows],
                y[rows],
                optimizer=nl.optim.SGD(lr=0.1, momentum=0.9),
                validation_data=(Xv, yv),
                seed=seed,
                verbose=0,
                **FIT,
            )
            train, val = model.evaluate(X[rows], y[rows]), model.evaluate(Xv, yv)
            assert curve.train_loss[i, j] == train["loss"]
            assert curve.train_accuracy[i, j] == train["accuracy"]
            assert curve.val_loss[i, j] == val["loss"]
            assert curve.val_accuracy[i, j] == val["accuracy"]
            assert curve.histories[i][j].history["loss"] == history.history["loss"]


def test_the_same_seeds_give_the_same_curve_and_others_another():
    X, y, Xv, yv = _data()

    def run(seeds):
        args = {"train_sizes": [30, 120], "validation_data": (Xv, yv), "seeds": seeds}
        return ms.learning_curve(_mlp, X, y, **args, **FIT)

    a, b, c = run((0, 1)), run((0, 1)), run((2, 5))
    np.testing.assert_array_equal(a.val_loss, b.val_loss)
    assert not np.array_equal(a.val_loss, c.val_loss)


def test_more_data_means_better_validation_accuracy():
    X, y, Xv, yv = _data(n=600)
    curve = ms.learning_curve(
        _mlp,
        X,
        y,
        train_sizes=[12, 400],
        validation_data=(Xv, yv),
        seeds=(0, 1, 2),
        optimizer=nl.optim.Adam(lr=1e-2),
        epochs=20,
        batch_size=12,
        backend="numpy",
    )
    small, large = curve.mean("val_accuracy")
    assert large > small + 0.05, (small, large)
    # a small training set is fitted better than it generalizes
    assert curve.mean("train_accuracy")[0] > small


def test_subsets_are_nested_per_seed_and_stratified_on_request():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    for stratify in (False, True):
        order = ms._order(y, len(y), np.random.default_rng(4), stratify)
        assert sorted(order) == list(range(len(y)))  # a permutation: prefixes are nested
    order = ms._order(y, len(y), np.random.default_rng(4), True)
    for k in (10, 20, 37, 100):
        counts = np.bincount(y[order[:k]], minlength=3)
        np.testing.assert_allclose(counts, k * np.array([0.5, 0.3, 0.2]), atol=1.0)


def test_scores_are_those_of_the_weights_early_stopping_restored():
    X, y, Xv, yv = _data()
    stop = nl.callbacks.EarlyStopping(patience=2, monitor="val_loss", restore_best=True)
    curve = ms.learning_curve(
        _mlp,
        X,
        y,
        train_sizes=[40],
        validation_data=(Xv, yv),
        optimizer=nl.optim.SGD(lr=0.5),  # large enough to overshoot: the last is not the best
        callbacks=[stop],
        epochs=30,
        batch_size=8,
        backend="numpy",
    )
    logged = curve.histories[0][0].history["val_loss"]
    assert curve.val_loss[0, 0] == pytest.approx(min(logged), rel=1e-6)


def test_the_optimizer_given_is_left_untouched_and_each_run_starts_fresh():
    X, y, Xv, yv = _data()
    adam = nl.optim.Adam(lr=3e-3, weight_decay=1e-2, no_decay="bias_and_norm")
    args = {"train_sizes": [50, 100], "validation_data": (Xv, yv), "seeds": (0,), **FIT}
    from_instance = ms.learning_curve(_mlp, X, y, optimizer=adam, **args)
    assert adam.t == 0 and not adam.params  # never bound, never stepped
    from_factory = ms.learning_curve(
        _mlp,
        X,
        y,
        optimizer=lambda: nl.optim.Adam(lr=3e-3, weight_decay=1e-2, no_decay="bias_and_norm"),
        **args,
    )
    np.testing.assert_array_equal(from_instance.val_loss, from_factory.val_loss)


def test_a_regression_curve_has_no_accuracy():
    X, y = nl.datasets.sine(120, seed=0)
    curve = ms.learning_curve(
        lambda: nl.Sequential([nl.Dense(1, 8), nl.Tanh(), nl.Dense(8, 1)]),
        X[:80],
        y[:80],
        train_sizes=[20, 80],
        validation_data=(X[80:], y[80:]),
        seeds=(0, 1),
        loss="mse",
        **FIT,
    )
    assert curve.val_accuracy is None and curve.val_loss.shape == (2, 2)
    assert np.all(curve.std("val_loss") > 0)
    with pytest.raises(ValueError, match="not a classification loss"):
        curve.mean("val_accuracy")


def test_plot_draws_train_and_validation_with_their_bands():
    mpl = pytest.importorskip("matplotlib", reason="plot() needs matplotlib (course extra)")
    mpl.use("Agg")
    X, y, Xv, yv = _data()
    curve = ms.learning_curve(
        _mlp, X, y, train_sizes=[20, 80], validation_data=(Xv, yv), seeds=(0, 1), **FIT
    )
    ax = curve.plot(metric="loss")
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["train", "val"]
    np.testing.assert_allclose(lines[1].get_ydata(), curve.mean("val_loss"))
    assert len(ax.collections) == 2  # the two std bands
    with pytest.raises(ValueError, match="metric must be one of"):
        curve.plot(metric="f1")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"make_model": "mlp"}, TypeError, "make_model must be a callable"),
        ({"make_model": lambda: [nl.Dense(4, 3)]}, TypeError, "must return an nl.Sequential"),
        ({"train_sizes": []}, ValueError, "non-empty"),
        ({"train_sizes": [0]}, ValueError, "not between 1 and the 240"),
        ({"train_sizes": [241]}, ValueError, "not between 1 and the 240"),
        ({"train_sizes": [1.5]}, ValueError, r"fraction must be in \(0, 1\]"),
        ({"train_sizes": [True]}, TypeError, "must hold numbers"),
        ({"seeds": ()}, ValueError, "at least one seed"),
        ({"seeds": (1, 1)}, ValueError, "different from each other"),
        ({"seeds": (-1,)}, ValueError, "ints >= 0"),
        ({"validation_data": None}, TypeError, "pair"),
        ({"optimizer": "adam"}, TypeError, "optimizer must be"),
        ({"optimizer": lambda: "adam"}, TypeError, "returned str"),
        ({"seed": 3}, TypeError, "seed= is not passed to fit"),
        ({"validation_split": 0.2}, TypeError, "validation_split= is not passed"),
        ({"X": np.zeros(240)}, ValueError, r"X must be 2-D"),
        ({"y": np.zeros(10, dtype=int)}, ValueError, "same length; got 240 and 10"),
        ({"y": np.zeros(240), "stratify": True}, ValueError, "integer class labels"),
    ],
)
def test_bad_arguments_are_refused_before_any_training(kwargs, error, match):
    X, y, Xv, yv = _data()
    args = {
        "make_model": _mlp,
        "X": X,
        "y": y,
        "train_sizes": [20],
        "validation_data": (Xv, yv),
        **FIT,
        **kwargs,
    }
    make_model, X, y = args.pop("make_model"), args.pop("X"), args.pop("y")
    with pytest.raises(error, match=match):
        ms.learning_curve(make_model, X, y, **args)
