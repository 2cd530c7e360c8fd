"""Preprocessing: splits that are disjoint, complete and (optionally) stratified; scalers
whose statistics come from the training split only; one-hot; mini-batches."""

from __future__ import annotations

import numpy as np
import pytest

import nnlib as nl
from nnlib.preprocessing import (
    MinMaxScaler,
    NotFittedError,
    StandardScaler,
    batches,
    one_hot,
    train_test_split,
    train_val_test_split,
)


def _data(n=103, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    # unbalanced classes, and a feature that remembers the example's index
    y = rng.choice(classes, n, p=np.linspace(1, 2, classes) / np.linspace(1, 2, classes).sum())
    X = np.c_[np.arange(n), rng.normal(size=(n, 2))].astype(np.float32)
    return X, y


def _ids(X):
    return X[:, 0].astype(int)


@pytest.mark.parametrize("stratify", [False, True])
def test_split_is_disjoint_complete_and_sized(stratify):
    X, y = _data()
    (X_tr, y_tr), (X_te, y_te) = train_test_split(X, y, 0.25, stratify=stratify, seed=1)
    ids_tr, ids_te = _ids(X_tr), _ids(X_te)
    assert not set(ids_tr) & set(ids_te)
    assert sorted(np.r_[ids_tr, ids_te]) == list(range(len(X)))
    assert len(X_te) == round(0.25 * len(X))
    np.testing.assert_array_equal(y_tr, y[ids_tr])
    np.testing.assert_array_equal(y_te, y[ids_te])


def test_stratified_split_keeps_each_class_proportion():
    X, y = _data(n=997, classes=5, seed=2)
    _, (_, y_te) = train_test_split(X, y, 0.3, stratify=True, seed=0)
    for c in range(5):
        expected = 0.3 * np.sum(y == c)
        assert abs(np.sum(y_te == c) - expected) <= 1, c


def test_split_is_repeatable_with_a_seed_and_differs_without():
    X, y = _data()
    a = train_test_split(X, y, seed=7)[1][0]
    b = train_test_split(X, y, seed=7)[1][0]
    c = train_test_split(X, y, seed=8)[1][0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_three_way_split():
    X, y = _data(n=200)
    train, val, test = train_val_test_split(X, y, 0.2, 0.1, stratify=True, seed=0)
    sizes = [len(s[0]) for s in (train, val, test)]
    assert sizes == [140, 40, 20]
    ids = np.concatenate([_ids(s[0]) for s in (train, val, test)])
    assert sorted(ids) == list(range(200))


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [({"test_size": 0}, "test_size"), ({"test_size": 1.5}, "test_size")],
)
def test_split_names_bad_arguments(kwargs, text):
    X, y = _data()
    with pytest.raises(ValueError, match=text):
        train_test_split(X, y, **kwargs)
    with pytest.raises(ValueError, match="y has 3 entries but X has 103"):
        train_test_split(X, y[:3])
    with pytest.raises(ValueError, match="leave something to train on"):
        train_val_test_split(X, y, 0.5, 0.5)


def test_standard_scaler_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    X_tr = rng.normal(5, 2, (500, 3)).astype(np.float32)
    X_te = rng.normal(-3, 7, (100, 3)).astype(np.float32)
    scaler = StandardScaler().fit(X_tr)
    Z_tr, Z_te = scaler.transform(X_tr), scaler.transform(X_te)
    np.testing.assert_allclose(Z_tr.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(Z_tr.std(0), 1, atol=1e-5)
    # the test split is transformed with the training mean and std, not its own
    np.testing.assert_allclose(Z_te, (X_te - X_tr.mean(0)) / X_tr.std(0), rtol=1e-4, atol=1e-4)
    assert Z_te.dtype == np.float32
    np.testing.assert_allclose(scaler.inverse_transform(Z_te), X_te, rtol=1e-5, atol=1e-4)


def test_scalers_survive_a_constant_feature():
    X = np.c_[np.ones(10), np.arange(10.0)]
    for scaler in (StandardScaler(), MinMaxScaler()):
        Z = scaler.fit_transform(X)
        assert np.all(np.isfinite(Z)) and np.all(Z[:, 0] == Z[0, 0])


def test_min_max_scaler_maps_the_training_range():
    rng = np.random.default_rng(1)
    X = rng.uniform(-4, 9, (50, 2))
    Z = MinMaxScaler((-1, 1)).fit(X).transform(X)
    np.testing.assert_allclose(Z.min(0), -1)
    np.testing.assert_allclose(Z.max(0), 1)
    s = MinMaxScaler().fit(X)
    np.testing.assert_allclose(s.inverse_transform(s.transform(X)), X)


def test_scalers_refuse_to_transform_before_fit_or_another_width():
    for scaler in (StandardScaler(), MinMaxScaler()):
        with pytest.raises(NotFittedError, match=r"call fit.*training split"):
            scaler.transform(np.zeros((2, 2)))
        scaler.fit(np.zeros((4, 2)))
        with pytest.raises(ValueError, match="3 features, but the scaler was fitted on 2"):
            scaler.transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2-D array"):
        StandardScaler().fit(np.zeros(5))


def test_one_hot():
    out = one_hot(np.array([2, 0, 1, 2]))
    np.testing.assert_array_equal(out, np.eye(3, dtype=np.float32)[[2, 0, 1, 2]])
    assert one_hot(np.array([0, 1]), 5).shape == (2, 5)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.1"):
        one_hot(np.array([0, 2]), 2)
    with pytest.raises(ValueError, match="integer labels"):
        one_hot(np.array([0.5, 1.0]))


def test_batches_cover_every_example_once_per_epoch():
    X, y = _data(n=50)
    seen = [(_ids(xb), yb) for xb, yb in batches(X, y, 16, seed=3)]
    assert [len(ids) for ids, _ in seen] == [16, 16, 16, 2]
    ids = np.concatenate([ids for ids, _ in seen])
    assert sorted(ids) == list(range(50)) and list(ids) != list(range(50))
    for ids_b, yb in seen:
        np.testing.assert_array_equal(yb, y[ids_b])
    again = np.concatenate([_ids(xb) for xb, _ in batches(X, y, 16, seed=3)])
    np.testing.assert_array_equal(ids, again)
    assert [len(b) for b in batches(X, batch_size=16, drop_last=True)] == [16, 16, 16]
    plain = np.concatenate([_ids(b) for b in batches(X, batch_size=7, shuffle=False)])
    assert list(plain) == list(range(50))
    with pytest.raises(ValueError, match="batch_size must be an int >= 1; got 0"):
        next(batches(X, y, 0))


def test_the_digits_recipe_is_leak_free_end_to_end():
    X, y = nl.datasets.load_digits()
    (X_tr, _), _ = nl.preprocessing.train_test_split(X, y, stratify=True, seed=0)
    scaler = nl.preprocessing.StandardScaler().fit(X_tr)
    np.testing.assert_allclose(scaler.mean_, X_tr.mean(0), rtol=1e-6, atol=1e-6)
    assert not np.allclose(scaler.mean_, X.mean(0), rtol=0, atol=1e-6)


@pytest.mark.parametrize("value", [0.1, 0.7, 1 / 3, 1e6 / 7, -2.5e-9, 0.0])
@pytest.mark.parametrize("n", [3, 10, 1000])
def test_a_constant_column_maps_to_zero_despite_rounding(value, n):
    # The mean of n copies of 0.1 is not exactly 0.1, so the column's computed std is
    # ~1e-16 instead of 0; dividing by it used to turn the constant column into +-1.
    X = np.c_[np.full(n, value), np.arange(n, dtype=np.float64)]
    for dtype in (np.float64, np.float32):
        Z = StandardScaler().fit_transform(X.astype(dtype))
        np.testing.assert_allclose(Z[:, 0], 0, atol=1e-6)
        np.testing.assert_allclose(Z[:, 1].std(), 1, rtol=1e-5)
        M = MinMaxScaler((0, 1)).fit_transform(X.astype(dtype))
        np.testing.assert_array_equal(M[:, 0], 0)
    scaler = StandardScaler().fit(X)
    assert scaler.scale_[0] == 1.0
    np.testing.assert_allclose(
        scaler.inverse_transform(scaler.transform(X)), X, rtol=1e-12, atol=1e-12
    )


def test_a_column_that_varies_a_little_is_still_scaled():
    # The threshold is relative to the values' size: tiny values that really vary, and a
    # spread of a millionth of the mean, are features, not rounding noise.
    X = np.c_[[1e-20, 2e-20, 3e-20, 4e-20], 1e3 + np.array([0.0, 1e-3, 2e-3, 3e-3])]
    Z = StandardScaler().fit_transform(X)
    np.testing.assert_allclose(Z.std(0), 1, rtol=1e-6)
    M = MinMaxScaler().fit_transform(X)
    np.testing.assert_allclose(M.min(0), 0, atol=1e-9)
    np.testing.assert_allclose(M.max(0), 1, rtol=1e-9)


def test_a_near_constant_column_from_rounding_maps_to_the_range_low_end():
    # 0.1 + 0.2 and 0.3 differ by one rounding step: the same value, not a feature.
    X = np.c_[[0.1 + 0.2, 0.3, 0.3, 0.1 + 0.2], [0.0, 1.0, 2.0, 3.0]]
    np.testing.assert_array_equal(MinMaxScaler((-1, 1)).fit_transform(X)[:, 0], -1)
    np.testing.assert_allclose(StandardScaler().fit_transform(X)[:, 0], 0, atol=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_scalers_refuse_to_fit_on_nan_or_inf(bad):
    X = np.c_[[1.0, 2.0, bad], [0.0, 1.0, 2.0]]
    for scaler in (StandardScaler(), MinMaxScaler()):
        with pytest.raises(ValueError, match=r"X must be finite.*column 0"):
            scaler.fit(X)


def test_standard_scaler_handles_huge_and_tiny_values():
    # squaring 1e200 overflows and squaring 1e-310 underflows: neither may reach the output
    X = np.c_[[-1e200, 1e200, 0.0, 5e199], [1e-310, 2e-310, 3e-310, 4e-310]]
    scaler = StandardScaler().fit(X)
    Z = scaler.transform(X)
    assert np.all(np.isfinite(Z))
    np.testing.assert_allclose(Z.std(0), 1, rtol=1e-9)
    np.testing.assert_allclose(scaler.inverse_transform(Z), X, rtol=1e-9)


@pytest.mark.parametrize(
    "feature_range", [(0, np.inf), (np.nan, 1), (-1e308, 1e308), (1,), "ab", (0, 1, 2)]
)
def test_min_max_scaler_checks_the_feature_range(feature_range):
    with pytest.raises(ValueError, match=r"feature_range must be \(low, high\)"):
        MinMaxScaler(feature_range)


def test_min_max_scaler_takes_a_subnormal_range_without_overflow():
    # found by the property suite: (hi - lo) / 5e-324 overflowed to inf (then inf * 0 = nan)
    X = np.array([[5e-324, 1.0], [0.0, 3.0]])
    scaler = nl.preprocessing.MinMaxScaler().fit(X)
    out = scaler.transform(X)
    np.testing.assert_array_equal(out, [[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(scaler.inverse_transform(out), X)
