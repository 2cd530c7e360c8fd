"""nnlib.metrics against scikit-learn (the definitions it copies), the Wilson interval
against its closed form and by its coverage, the ECE on constructions whose value is
known, and the refusals of bad inputs."""

from __future__ import annotations

import doctest
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnlib.metrics as metrics

sk = pytest.importorskip("sklearn.metrics", reason="scikit-learn is a test dependency")
calibration = pytest.importorskip("sklearn.calibration")
stats = pytest.importorskip("scipy.stats")

AVERAGES = [None, "micro", "macro", "weighted"]


def test_doctest():
    assert doctest.testmod(metrics, raise_on_error=False).failed == 0


def quiet(f, *args, **kwargs):
    """``f(...)`` with scikit-learn's and nnlib's zero-division warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return f(*args, **kwargs)


def label_sets():
    """(y_true, y_pred) pairs: random, a class missing from y_pred, a class only in
    y_pred, labels that are not 0..C-1, one class, two classes."""
    rng = np.random.default_rng(0)
    out = []
    for n, c in [(50, 4), (200, 7), (9, 3)]:
        y_true = rng.integers(0, c, n)
        y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, c, n))
        out.append((y_true, y_pred))
    y_true = rng.integers(0, 5, 80)
    y_pred = np.where(y_true == 3, 2, y_true)  # class 3 never predicted
    out.append((y_true, y_pred))
    out.append((rng.integers(0, 3, 40), rng.integers(0, 4, 40)))  # 3 only predicted
    out.append((rng.choice([-2, 5, 11], 30), rng.choice([-2, 5, 11], 30)))
    out.append((np.zeros(10, int), np.zeros(10, int)))
    out.append((rng.integers(0, 2, 30), rng.integers(0, 2, 30)))
    return out


SETS = label_sets()


@pytest.mark.parametrize("y_true, y_pred", SETS)
def test_accuracy_and_confusion_matrix_match_sklearn(y_true, y_pred):
    assert metrics.accuracy_score(y_true, y_pred) == sk.accuracy_score(y_true, y_pred)
    assert metrics.accuracy_score(y_true, y_pred, normalize=False) == sk.accuracy_score(
        y_true, y_pred, normalize=False
    )
    for normalize in (None, "true", "pred", "all"):
        ours = metrics.confusion_matrix(y_true, y_pred, normalize=normalize)
        np.testing.assert_allclose(
            ours, quiet(sk.confusion_matrix, y_true, y_pred, normalize=normalize), rtol=1e-15
        )
    labels = [*np.union1d(y_true, y_pred)[::-1].tolist(), 99]  # reversed, plus an absent one
    for normalize in (None, "true"):
        np.testing.assert_allclose(
            metrics.confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize),
            quiet(sk.confusion_matrix, y_true, y_pred, labels=labels, normalize=normalize),
        )
    subset = [int(y_true[0])]  # the examples of other classes are left out
    np.testing.assert_array_equal(
        metrics.confusion_matrix(y_true, y_pred, labels=subset),
        quiet(sk.confusion_matrix, y_true, y_pred, labels=subset),
    )


@pytest.mark.parametrize("y_true, y_pred", SETS)
@pytest.mark.parametrize("average", AVERAGES)
@pytest.mark.parametrize("zero_division", ["warn", 0, 1, np.nan])
def test_precision_recall_f_match_sklearn(y_true, y_pred, average, zero_division):
    kw = dict(average=average, zero_division=zero_division)
    for name in ("precision_score", "recall_score", "f1_score"):
        ours = quiet(getattr(metrics, name), y_true, y_pred, **kw)
        np.testing.assert_allclose(ours, quiet(getattr(sk, name), y_true, y_pred, **kw))
    for beta in (0.5, 2.0):
        np.testing.assert_allclose(
            quiet(metrics.fbeta_score, y_true, y_pred, beta=beta, **kw),
            quiet(sk.fbeta_score, y_true, y_pred, beta=beta, **kw),
        )
    labels = [int(y_true[0]), 99]  # a subset and an absent class
    ours = quiet(metrics.precision_recall_fscore_support, y_true, y_pred, labels=labels, **kw)
    theirs = quiet(sk.precision_recall_fscore_support, y_true, y_pred, labels=labels, **kw)
    for a, b in zip(ours, theirs, strict=True):
        if b is None:
            assert a is None
        else:
            np.testing.assert_allclose(a, b)


@pytest.mark.parametrize("y_true, y_pred", [s for s in SETS if len(np.union1d(*s)) <= 2])
@pytest.mark.parametrize("pos_label", [0, 1])
def test_binary_average_matches_sklearn(y_true, y_pred, pos_label):
    for name in ("precision_score", "recall_score", "f1_score"):
        ours = quiet(getattr(metrics, name), y_true, y_pred, pos_label=pos_label)
        assert ours == quiet(getattr(sk, name), y_true, y_pred, pos_label=pos_label)


def test_zero_division_warns_only_when_asked():
    y_true, y_pred = [0, 1, 2, 2], [0, 1, 1, 1]  # class 2 never predicted
    with pytest.warns(metrics.UndefinedMetricWarning, match="Precision is ill-defined"):
        p = metrics.precision_score(y_true, y_pred, average=None)
    assert p[2] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert metrics.precision_score(y_true, y_pred, average=None, zero_division=1)[2] == 1
        assert np.isnan(
            metrics.precision_score(y_true, y_pred, average=None, zero_division=np.nan)[2]
        )
        # NaN is left out of the average, as scikit-learn does
        assert metrics.precision_score(
            y_true, y_pred, average="macro", zero_division=np.nan
        ) == pytest.approx((1 + 1 / 3) / 2)
        metrics.recall_score(y_true, y_pred, average=None)  # recall is defined: no warning


@pytest.mark.parametrize("y_true, y_pred", SETS[:5])
@pytest.mark.parametrize("digits", [2, 4])
def test_classification_report_matches_sklearn(y_true, y_pred, digits):
    assert quiet(metrics.classification_report, y_true, y_pred, digits=digits) == quiet(
        sk.classification_report, y_true, y_pred, digits=digits
    )
    names = [f"class {c}" for c in np.union1d(y_true, y_pred)]
    ours = quiet(
        metrics.classification_report, y_true, y_pred, target_names=names, output_dict=True
    )
    theirs = quiet(sk.classification_report, y_true, y_pred, target_names=names, output_dict=True)
    assert ours.keys() == theirs.keys()
    for k in ours:
        np.testing.assert_allclose(
            list(ours[k].values()) if isinstance(ours[k], dict) else ours[k],
            list(theirs[k].values()) if isinstance(theirs[k], dict) else theirs[k],
        )
    labels = np.union1d(y_true, y_pred)[:2].tolist()  # a subset: "micro avg", not accuracy
    assert quiet(metrics.classification_report, y_true, y_pred, labels=labels) == quiet(
        sk.classification_report, y_true, y_pred, labels=labels
    )


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 60).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(-3, 5), min_size=n, max_size=n),
            st.lists(st.integers(-3, 5), min_size=n, max_size=n),
        )
    )
)
def test_properties_against_sklearn(pair):
    y_true, y_pred = pair
    cm = metrics.confusion_matrix(y_true, y_pred)
    np.testing.assert_array_equal(cm, quiet(sk.confusion_matrix, y_true, y_pred))
    assert cm.sum() == len(y_true) and np.trace(cm) == metrics.accuracy_score(
        y_true, y_pred, normalize=False
    )
    # micro-averaged precision, recall and F1 of single-label data are the accuracy
    acc = metrics.accuracy_score(y_true, y_pred)
    for name in ("precision_score", "recall_score", "f1_score"):
        assert quiet(getattr(metrics, name), y_true, y_pred, average="micro") == pytest.approx(acc)
    np.testing.assert_allclose(
        quiet(metrics.f1_score, y_true, y_pred, average="macro"),
        quiet(sk.f1_score, y_true, y_pred, average="macro"),
    )


# ---------------------------------------------------------------------------- calibration
@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("n_bins", [1, 5, 10])
def test_calibration_curve_matches_sklearn(strategy, n_bins):
    rng = np.random.default_rng(2)
    p = rng.random(300)
    p[:5] = [0.0, 1.0, 0.2, 0.4, 0.6]  # the edges: bins are (a, b], 0 in the first
    y = (rng.random(300) < p).astype(int)
    ours = metrics.calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
    theirs = calibration.calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14)


def test_ece_is_the_weighted_gap_of_the_calibration_curve():
    rng = np.random.default_rng(3)
    p = rng.random(500) ** 2
    y = (rng.random(500) < np.sqrt(p)).astype(int)  # under-confident
    prob_true, prob_pred = calibration.calibration_curve(y, p, n_bins=10)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], p), minlength=10)
    expected = np.sum(counts[counts > 0] / 500 * np.abs(prob_true - prob_pred))
    assert metrics.expected_calibration_error(y, p) == pytest.approx(expected, rel=1e-12)


def test_ece_of_a_calibrated_construction_is_zero():
    # in bin b, 100 examples of confidence (b + 0.5) / 10, of which exactly that fraction
    # are right: every bin's accuracy equals its confidence
    conf = np.repeat((np.arange(10) + 0.5) / 10, 100)
    right = np.concatenate([np.arange(100) < 10 * b + 5 for b in range(10)])
    assert metrics.expected_calibration_error(right.astype(int), conf) == pytest.approx(
        0, abs=1e-12
    )
    # multiclass: 3 classes, the top one has that confidence (bins 4..9, where it is the
    # top) and is the label that often
    keep = conf > 0.4
    c, r = conf[keep], right[keep]
    probs = np.stack([(1 - c) / 2, c, (1 - c) / 2], axis=1)
    labels = np.where(r, 1, 2)
    assert metrics.expected_calibration_error(labels, probs) == pytest.approx(0, abs=1e-12)
    # an over-confident model: says 0.9, right half the time
    assert metrics.expected_calibration_error([1, 0] * 50, [0.9] * 100) == pytest.approx(0.4)


# ---------------------------------------------------------------------------- Wilson
def wilson(k, n, confidence):
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    p = k / n
    center = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return center - half, center + half


@pytest.mark.parametrize(
    "k, n, confidence",
    [(0, 10, 0.95), (10, 10, 0.95), (50, 100, 0.95), (7, 9, 0.9), (990, 1000, 0.99)],
)
def test_wilson_interval_closed_form(k, n, confidence):
    y_true = np.zeros(n, int)
    y_pred = np.where(np.arange(n) < k, 0, 1)
    acc, low, high = metrics.accuracy_interval(y_true, y_pred, confidence=confidence)
    lo, hi = wilson(k, n, confidence)
    assert acc == k / n
    assert low == pytest.approx(max(lo, 0), abs=1e-12) and high == pytest.approx(
        min(hi, 1), abs=1e-12
    )
    assert 0 <= low <= acc <= high <= 1 and high > low  # never of zero width, unlike Wald


def test_wilson_known_values():
    # 10 of 10: [1 / (1 + z^2 / 10), 1], z = 1.959964
    _, low, high = metrics.accuracy_interval([1] * 10, [1] * 10)
    assert high == 1 and low == pytest.approx(10 / (10 + 1.959963984540054**2), rel=1e-12)
    # 50 of 100: symmetric about 1/2
    _, low, high = metrics.accuracy_interval([0] * 100, [0] * 50 + [1] * 50)
    assert low + high == pytest.approx(1, abs=1e-15) and high - 0.5 == pytest.approx(
        0.0961, abs=1e-4
    )


def test_wilson_covers_about_its_level():
    """Coverage by simulation at n = 20, p = 0.9 (where Wald covers far less), from the
    exact binomial probabilities of every k (no sampling noise)."""
    n, p = 20, 0.9
    covered = 0.0
    for k in range(n + 1):
        _, low, high = metrics.accuracy_interval(np.zeros(n, int), (np.arange(n) >= k).astype(int))
        covered += stats.binom.pmf(k, n, p) * (low <= p <= high)
    assert covered > 0.92
    wald = sum(
        stats.binom.pmf(k, n, p) * (abs(k / n - p) <= 1.96 * math.sqrt(k / n * (1 - k / n) / n))
        for k in range(n + 1)
    )
    assert wald < 0.9  # the reason for Wilson
    rng = np.random.default_rng(4)  # and a sampled check of the whole function
    hits = 0
    for _ in range(400):
        right = rng.random(30) < 0.8
        _, low, high = metrics.accuracy_interval(np.zeros(30, int), (~right).astype(int))
        hits += low <= 0.8 <= high
    assert 0.9 <= hits / 400 <= 0.99


# ---------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: metrics.accuracy_score([0, 1], [0]), ValueError, "same length; got 2 and 1"),
        (lambda: metrics.accuracy_score([], []), ValueError, "y_true is empty"),
        (lambda: metrics.accuracy_score(["a", "b"], [0, 1]), TypeError, "integer class labels"),
        (lambda: metrics.accuracy_score([0, 1], [0.2, 0.9]), ValueError, r"argmax|> 0\.5"),
        (lambda: metrics.accuracy_score(np.eye(3), [0, 1, 2]), ValueError, r"argmax\(axis=1\)"),
        (lambda: metrics.accuracy_score([[0], [1]], [0, 1]), ValueError, r"ravel\(\)"),
        (
            lambda: metrics.confusion_matrix([0, 1], [0, 1], normalize="rows"),
            ValueError,
            "normalize",
        ),
        (lambda: metrics.confusion_matrix([0, 1], [0, 1], labels=[]), ValueError, "at least one"),
        (lambda: metrics.confusion_matrix([0, 1], [0, 1], labels=[7]), ValueError, "in y_true"),
        (lambda: metrics.confusion_matrix([0, 1], [0, 1], labels=[0, 0]), ValueError, "different"),
        (lambda: metrics.f1_score([0, 1, 2], [0, 1, 2]), ValueError, "average='binary'"),
        (lambda: metrics.f1_score([0, 1], [0, 1], pos_label=3), ValueError, "pos_label=3"),
        (lambda: metrics.f1_score([0, 1], [0, 1], average="samples"), ValueError, "multilabel"),
        (lambda: metrics.f1_score([0, 1], [0, 1], zero_division=2), ValueError, "zero_division"),
        (lambda: metrics.accuracy_interval([0], [0], confidence=95), ValueError, "confidence"),
        (lambda: metrics.calibration_curve([0, 1], [0.5, 1.5]), ValueError, r"\[0, 1\]"),
        (lambda: metrics.calibration_curve([0, 1, 2], [0.5, 0.5, 0.5]), ValueError, "binary"),
        (
            lambda: metrics.calibration_curve([0, 1], [0.5, 0.5], strategy="x"),
            ValueError,
            "strategy",
        ),
        (
            lambda: metrics.expected_calibration_error([0, 3], np.full((2, 3), 1 / 3)),
            ValueError,
            "0..2",
        ),
        (lambda: metrics.expected_calibration_error([0, 1], [0.5, np.nan]), ValueError, "index 1"),
        (
            lambda: metrics.expected_calibration_error([0, 1], [0.5, 0.5], n_bins=0),
            ValueError,
            "n_bins",
        ),
    ],
)
def test_bad_inputs_are_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_lists_bools_and_integral_floats_are_accepted():
    assert metrics.accuracy_score([True, False], [1.0, 0.0]) == 1.0
    np.testing.assert_array_equal(metrics.confusion_matrix((0, 1), [1, 1]), [[0, 1], [0, 1]])
