"""Classification metrics, with scikit-learn's names, arguments, defaults and definitions.

>>> import nnlib as nl
>>> y_true, y_pred = [0, 1, 2, 2, 1], [0, 2, 2, 2, 1]
>>> nl.metrics.accuracy_score(y_true, y_pred)
0.8
>>> nl.metrics.confusion_matrix(y_true, y_pred)  # rows: the true class
array([[1, 0, 0],
       [0, 1, 1],
       [0, 0, 2]])
>>> round(nl.metrics.f1_score(y_true, y_pred, average="macro"), 4)
0.8222

Every function here is a count over the N examples (a ``np.bincount`` or two), O(N) and
memory-bound: plain NumPy is as fast as a kernel would be, so there is no Numba or CUDA
version. They take host arrays (lists too); call ``nl.to_host`` (or ``.copy_to_host()``)
on GPU arrays first.

What differs from scikit-learn, on purpose:

* labels are integers (what ``model.predict`` returns): an int or bool array, or floats
  with integer values. Strings are refused (map them with ``np.unique(y,
  return_inverse=True)``).
* empty inputs are refused (scikit-learn returns NaN with a RuntimeWarning, or an empty
  matrix); ``sample_weight`` and the multilabel averages (``"samples"``) are not offered.

Two functions scikit-learn does not have: :func:`accuracy_interval` (the Wilson score
interval of an accuracy) and :func:`expected_calibration_error`.

Glossary: N examples, C classes (or the ``labels`` given), B bins.
"""

from __future__ import annotations

import math
import numbers
import warnings
from statistics import NormalDist

import numpy as np

__all__ = [
    "UndefinedMetricWarning",
    "accuracy_interval",
    "accuracy_score",
    "calibration_curve",
    "classification_report",
    "confusion_matrix",
    "expected_calibration_error",
    "f1_score",
    "fbeta_score",
    "precision_recall_fscore_support",
    "precision_score",
    "recall_score",
]

AVERAGES = (None, "binary", "micro", "macro", "weighted")


class UndefinedMetricWarning(UserWarning):
    """A score is 0/0 (e.g. the precision of a class never predicted) and was set to the
    value of ``zero_division``; scikit-learn's warning of the same name. Pass
    ``zero_division=0`` (or 1, or ``np.nan``) to say which value you want and silence it."""


# ---------------------------------------------------------------------------- checks
def _labels(y, name: str) -> np.ndarray:
    """``y`` as a 1-D int64 array of class labels, or an error saying what to do."""
    try:
        arr = np.asarray(y)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of integer class labels ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold integer class labels (as model.predict returns); got dtype "
            f"{arr.dtype}. Map other labels to 0..C-1 first: np.unique({name}, "
            "return_inverse=True)[1]"
        )
    if arr.ndim != 1:
        hint = ""
        if arr.ndim == 2 and arr.shape[1] == 1:
            hint = f"; a column: pass {name}.ravel()"
        elif arr.ndim == 2:
            hint = f"; one-hot rows or probabilities: pass {name}.argmax(axis=1)"
        raise ValueError(f"{name} must be 1-D, shape (N,); got shape {arr.shape}{hint}")
    if len(arr) == 0:
        raise ValueError(f"{name} is empty (0 labels): there is nothing to score")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name} must hold integer class labels; got {arr[i]!r} at index {i}. For "
                f"probabilities use {name}.argmax(axis=1) (or > 0.5 for one column)"
            )
    return arr.astype(np.int64)


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true and y_pred must have the same length; got {len(y_true)} and {len(y_pred)}"
        )
    return y_true, y_pred


def _label_list(labels) -> np.ndarray:
    if isinstance(labels, numbers.Integral):
        raise TypeError(f"labels must be a list of class labels, e.g. [0, 1, 2]; got {labels!r}")
    arr = _labels(labels, "labels") if len(np.atleast_1d(labels)) else np.zeros(0, np.int64)
    if len(arr) == 0:
        raise ValueError("labels must hold at least one label; got an empty list")
    values, counts = np.unique(arr, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"labels must be different from each other; {values[counts > 1]} repeat")
    return arr


def _probabilities(p, name: str, ndim=(1,)) -> np.ndarray:
    try:
        arr = np.asarray(p)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of probabilities ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of probabilities; got dtype {arr.dtype}")
    if arr.ndim not in ndim:
        shapes = " or ".join({1: "(N,)", 2: "(N, C)"}[d] for d in ndim)
        raise ValueError(f"{name} must have shape {shapes}; got shape {arr.shape}")
    if len(arr) == 0:
        raise ValueError(f"{name} is empty (0 rows): there is nothing to score")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > 1)
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must hold probabilities in [0, 1]; got {arr[i]!r} at index "
            f"{i[0] if len(i) == 1 else i}. Pass softmax/sigmoid outputs (model.predict_proba), "
            "not logits"
        )
    return arr


def _check_zero_division(zero_division) -> float:
    """The value a 0/0 score takes: 0 for "warn" (which also warns), 0, 1 or NaN."""
    if isinstance(zero_division, str) and zero_division == "warn":
        return 0.0
    if isinstance(zero_division, numbers.Real) and not isinstance(zero_division, bool):
        if zero_division in (0, 1):
            return float(zero_division)
        if math.isnan(zero_division):
            return math.nan
    raise ValueError(f'zero_division must be "warn", 0, 1 or np.nan; got {zero_division!r}')


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return int(value)


def _codes(y, labels) -> np.ndarray:
    """Each label's position in ``labels`` (N,), C = len(labels) for a label not in it."""
    order = np.argsort(labels, kind="stable")
    ranked = labels[order]
    at = np.minimum(np.searchsorted(ranked, y), len(labels) - 1)
    return np.where(ranked[at] == y, order[at], len(labels))


def _counts(y_true, y_pred, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each label l (C,): true positives #(y_true = y_pred = l), predicted #(y_pred
    = l) and true #(y_true = l). Examples of other labels count for no label."""
    C = len(labels)
    t, p = _codes(y_true, labels), _codes(y_pred, labels)
    tp = np.bincount(t[t == p], minlength=C + 1)[:C]
    return tp, np.bincount(p, minlength=C + 1)[:C], np.bincount(t, minlength=C + 1)[:C]


# ---------------------------------------------------------------------------- scores
def accuracy_score(y_true, y_pred, *, normalize: bool = True) -> float:
    """The fraction of examples with ``y_pred == y_true`` (with ``normalize=False``: their
    number). ``y_true``, ``y_pred``: integer labels (N,)."""
    y_true, y_pred = _pair(y_true, y_pred)
    correct = int(np.count_nonzero(y_true == y_pred))
    return correct / len(y_true) if normalize else correct


def confusion_matrix(y_true, y_pred, *, labels=None, normalize=None) -> np.ndarray:
    """The confusion matrix ``cm`` (C, C): ``cm[i, j]`` is the number of examples of
    true class ``labels[i]`` predicted as ``labels[j]`` (rows = true class, as
    scikit-learn).

    Parameters
    ----------
    y_true, y_pred : integer labels (N,)
    labels : the classes and their order (C,); default the sorted labels present in
        either. Examples whose true or predicted label is not in ``labels`` are left out;
        a class given but absent gives a row and column of zeros (so that matrices of
        several batches or models line up).
    normalize : None (counts, int64), ``"true"`` (each row divided by its sum: row i is
        the distribution of the predictions for class i, its diagonal the recall),
        ``"pred"`` (each column divided by its sum: the diagonal is the precision) or
        ``"all"`` (divided by the total). A row or column summing to 0 stays 0.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    if normalize not in (None, "true", "pred", "all"):
        raise ValueError(f'normalize must be None, "true", "pred" or "all"; got {normalize!r}')
    if labels is None:
        labels = np.union1d(y_true, y_pred)
    else:
        labels = _label_list(labels)
        if not np.isin(labels, y_true).any():
            raise ValueError(
                f"labels {labels.tolist()}: at least one of them must be in y_true (it holds "
                f"{np.unique(y_true).tolist()[:20]})"
            )
    C = len(labels)
    t, p = _codes(y_true, labels), _codes(y_pred, labels)
    keep = (t < C) & (p < C)
    cm = np.bincount(t[keep] * C + p[keep], minlength=C * C).reshape(C, C).astype(np.int64)
    if normalize is None:
        return cm
    axis = {"true": 1, "pred": 0, "all": None}[normalize]
    total = cm.sum(axis=axis, keepdims=axis is not None)
    with np.errstate(invalid="ignore", divide="ignore"):  # a 0/0 row: 0, as scikit-learn
        return np.nan_to_num(cm / total)


def _warn(metric: str, modifier: str, size: int) -> None:
    where = "due to" if size == 1 else "in labels with"
    warnings.warn(
        f"{metric} is ill-defined and being set to 0.0 {where} no {modifier} samples. Use "
        "`zero_division` parameter to control this behavior.",
        UndefinedMetricWarning,
        stacklevel=4,
    )


def _divide(num, den, metric, modifier, warn_for, zero_division) -> np.ndarray:
    """num / den elementwise, ``zero_division``'s value where den == 0 (scikit-learn's
    ``_prf_divide``)."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    zero = den == 0
    out = num / np.where(zero, 1.0, den)
    if zero.any():
        out[zero] = _check_zero_division(zero_division)
        if isinstance(zero_division, str) and metric in warn_for:
            _warn(metric.capitalize(), modifier, len(out))
    return out


def _nanaverage(a, weights=None) -> float:
    """The (weighted) mean of ``a`` leaving out its NaNs; NaN when all are NaN; the plain
    mean when all weights are 0 (scikit-learn's ``_nanaverage``)."""
    keep = ~np.isnan(a)
    if not keep.any():
        return math.nan
    a = a[keep]
    if weights is None or np.sum(weights[keep]) == 0:
        return float(np.mean(a))
    return float(np.average(a, weights=weights[keep]))


def precision_recall_fscore_support(
    y_true,
    y_pred,
    *,
    beta: float = 1.0,
    labels=None,
    pos_label=1,
    average=None,
    warn_for=("precision", "recall", "f-score"),
    zero_division="warn",
):
    """Precision, recall, F-beta score and support, per class or averaged.

    For a class l: precision = TP / (TP + FP) (of the examples predicted l, the fraction
    that are l), recall = TP / (TP + FN) (of the examples of class l, the fraction found),
    F-beta = (1 + beta^2) TP / ((1 + beta^2) TP + beta^2 FN + FP) (the weighted harmonic
    mean of the two; beta = 1: F1), support = TP + FN (the number of examples of l).

    Parameters
    ----------
    y_true, y_pred : integer labels (N,)
    beta : float >= 0, the weight of recall in the F-score
    labels : the classes to score and their order (C,); default the sorted labels present
        in either. With ``"micro"``, a subset leaves the other classes out of the sums.
    pos_label : the class scored with ``average="binary"``
    average : None (one score per class, arrays (C,)), ``"binary"`` (the class
        ``pos_label`` only; only for at most two labels), ``"micro"`` (TP, FP and FN
        summed over the classes first: for single-label data precision = recall = F =
        accuracy), ``"macro"`` (the mean of the per-class scores), ``"weighted"`` (their
        mean weighted by support)
    warn_for : the scores whose 0/0 warns (with ``zero_division="warn"``)
    zero_division : the value of a 0/0 score: ``"warn"`` (0 and an
        :class:`UndefinedMetricWarning`), 0, 1 or ``np.nan`` (left out of the average)

    Returns
    -------
    precision, recall, fbeta : arrays (C,), or floats when ``average`` is given
    support : int array (C,), or None when ``average`` is given
    """
    y_true, y_pred = _pair(y_true, y_pred)
    _check_zero_division(zero_division)
    if average not in AVERAGES:
        hint = " (multilabel targets, which nnlib's metrics do not take)" * (average == "samples")
        raise ValueError(f"average must be one of {list(AVERAGES)}; got {average!r}{hint}")
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not beta >= 0:
        raise ValueError(f"beta must be a number >= 0; got {beta!r}")
    present = np.union1d(y_true, y_pred)
    if average == "binary":
        if len(present) > 2:
            raise ValueError(
                f"average='binary' needs at most two labels, but y_true and y_pred hold "
                f"{len(present)} ({present.tolist()[:10]}): choose another average, one of "
                "[None, 'micro', 'macro', 'weighted']"
            )
        if isinstance(pos_label, bool) or not isinstance(pos_label, numbers.Integral):
            raise ValueError(f"pos_label must be an integer class label; got {pos_label!r}")
        if pos_label not in present and len(present) >= 2:
            raise ValueError(
                f"pos_label={pos_label} is not a valid label. It should be one of "
                f"{present.tolist()}"
            )
        labels = np.array([int(pos_label)])
    else:
        if pos_label not in (None, 1):
            warnings.warn(
                f"Note that pos_label (set to {pos_label!r}) is ignored when average != "
                f"'binary' (got {average!r}). You may use labels=[pos_label] to specify a "
                "single positive class.",
                UserWarning,
                stacklevel=2,
            )
        labels = present if labels is None else _label_list(labels)
    tp, pred, true = _counts(y_true, y_pred, labels)
    if average == "micro":
        tp, pred, true = (np.array([v.sum()]) for v in (tp, pred, true))
    precision = _divide(tp, pred, "precision", "predicted", warn_for, zero_division)
    recall = _divide(tp, true, "recall", "true", warn_for, zero_division)
    if math.isinf(beta):
        fscore = recall
    elif beta == 0:
        fscore = precision
    else:
        b2 = float(beta) ** 2
        fscore = _divide(
            (1 + b2) * tp, b2 * true + pred, "f-score", "true nor predicted", warn_for,
            zero_division,
        )  # fmt: skip
    if average is None:
        return precision, recall, fscore, true
    weights = true if average == "weighted" else None
    return (
        _nanaverage(precision, weights),
        _nanaverage(recall, weights),
        _nanaverage(fscore, weights),
        None,
    )


def precision_score(
    y_true, y_pred, *, labels=None, pos_label=1, average="binary", zero_division="warn"
):
    """TP / (TP + FP): see :func:`precision_recall_fscore_support` (note the default
    ``average="binary"``, as scikit-learn; pass ``average="macro"`` for several classes)."""
    p, _, _, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
        warn_for=("precision",), zero_division=zero_division,
    )  # fmt: skip
    return p


def recall_score(
    y_true, y_pred, *, labels=None, pos_label=1, average="binary", zero_division="warn"
):
    """TP / (TP + FN): see :func:`precision_recall_fscore_support` (default
    ``average="binary"``)."""
    _, r, _, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
        warn_for=("recall",), zero_division=zero_division,
    )  # fmt: skip
    return r


def fbeta_score(
    y_true, y_pred, *, beta, labels=None, pos_label=1, average="binary", zero_division="warn"
):
    """(1 + beta^2) TP / ((1 + beta^2) TP + beta^2 FN + FP): see
    :func:`precision_recall_fscore_support` (default ``average="binary"``)."""
    _, _, f, _ = precision_recall_fscore_support(
        y_true, y_pred, beta=beta, labels=labels, pos_label=pos_label, average=average,
        warn_for=("f-score",), zero_division=zero_division,
    )  # fmt: skip
    return f


def f1_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary", zero_division="warn"):
    """2 TP / (2 TP + FN + FP), the harmonic mean of precision and recall: see
    :func:`precision_recall_fscore_support` (default ``average="binary"``)."""
    return fbeta_score(
        y_true, y_pred, beta=1.0, labels=labels, pos_label=pos_label, average=average,
        zero_division=zero_division,
    )  # fmt: skip


def classification_report(
    y_true,
    y_pred,
    *,
    labels=None,
    target_names=None,
    digits: int = 2,
    output_dict: bool = False,
    zero_division="warn",
):
    """Precision, recall, F1 and support of every class, then the accuracy and the macro
    and weighted averages: scikit-learn's text table (or, with ``output_dict=True``, its
    dict of dicts). The ``accuracy`` line is the micro average, named ``micro avg`` when
    ``labels`` leaves out a class present in the data.

    ``target_names``: a name per class of ``labels`` (default the labels as text).
    """
    y_true, y_pred = _pair(y_true, y_pred)
    digits = _check_int(digits, "digits", 0)
    present = np.union1d(y_true, y_pred)
    labels_given = labels is not None
    labels = _label_list(labels) if labels_given else present
    micro_is_accuracy = not labels_given or set(labels.tolist()) >= set(present.tolist())
    if target_names is None:
        target_names = [str(v) for v in labels]
    else:
        target_names = [str(v) for v in target_names]
        if len(target_names) != len(labels):
            raise ValueError(
                f"target_names must hold one name per class: {len(labels)} classes "
                f"({labels.tolist()[:10]}), {len(target_names)} names. Pass labels= to "
                "choose the classes"
            )
    headers = ["precision", "recall", "f1-score", "support"]
    p, r, f1, s = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=zero_division
    )
    rows = list(zip(target_names, p, r, f1, s, strict=True))
    if output_dict:
        report = {
            name: dict(zip(headers, [float(v) for v in row], strict=True)) for name, *row in rows
        }
    else:
        width = max(max(len(n) for n in target_names), len("weighted avg"), digits)
        report = ("{:>{width}s} " + " {:>9}" * 4).format("", *headers, width=width) + "\n\n"
        row_fmt = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
        for row in rows:
            report += row_fmt.format(*row, width=width, digits=digits)
        report += "\n"
    for average in ("micro", "macro", "weighted"):
        heading = "accuracy" if average == "micro" and micro_is_accuracy else f"{average} avg"
        avg_p, avg_r, avg_f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=zero_division
        )
        scores = [avg_p, avg_r, avg_f1, np.sum(s)]
        if output_dict:
            report[heading] = dict(zip(headers, [float(v) for v in scores], strict=True))
        elif heading == "accuracy":
            fmt = "{:>{width}s} " + " {:>9.{digits}}" * 2 + " {:>9.{digits}f}" + " {:>9}\n"
            report += fmt.format(heading, "", "", *scores[2:], width=width, digits=digits)
        else:
            report += row_fmt.format(heading, *scores, width=width, digits=digits)
    if output_dict and "accuracy" in report:
        report["accuracy"] = report["accuracy"]["precision"]
    return report


# ---------------------------------------------------------------------------- uncertainty
def accuracy_interval(y_true, y_pred, *, confidence: float = 0.95):
    """The accuracy and its Wilson score confidence interval: ``(accuracy, low, high)``.

    With k correct of n, p = k / n and z the two-sided normal quantile of ``confidence``
    (z = 1.96 for 0.95), the interval is the set of true accuracies q for which
    |p - q| <= z sqrt(q (1 - q) / n), solved for q:

    .. math::

        \\frac{p + z^2 / (2n)}{1 + z^2 / n} \\pm
        \\frac{z}{1 + z^2 / n} \\sqrt{\\frac{p (1 - p)}{n} + \\frac{z^2}{4 n^2}}

    Why Wilson and not the normal approximation p ± z sqrt(p (1 - p) / n) (Wald): Wald
    uses the variance at the estimate p, which is 0 at p = 0 or 1, so 10 of 10 correct
    gives the interval [1, 1], and near 1 it spills above 1; its actual coverage at small
    n or p near 0 or 1 is far below the nominal 95%. Wilson uses the variance at each
    candidate q, stays inside [0, 1], is never of zero width, and covers close to the
    nominal level even for n of 10 (Brown, Cai & DasGupta 2001, "Interval estimation for
    a binomial proportion"). A test accuracy near 1 on a few hundred images is exactly
    that case.

    The examples are assumed independent draws from the data the accuracy is meant for.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, numbers.Real)
        or not 0 < confidence < 1
    ):
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95; got {confidence!r}")
    n = len(y_true)
    p = np.count_nonzero(y_true == y_pred) / n
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    scale = 1 + z * z / n
    center = (p + z * z / (2 * n)) / scale
    half = z / scale * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # NOTE: the interval contains p (low = 0 at k = 0 and high = 1 at k = n exactly, which
    # rounding would miss by an ulp)
    return p, min(max(0.0, center - half), p), max(min(1.0, center + half), p)


def _binary_truth(y_true, pos_label) -> np.ndarray:
    """``y_true == pos_label`` (bool, (N,)); ``pos_label=None`` means 1 for labels in
    {0, 1} or {-1, 1} (scikit-learn's rule)."""
    values = np.unique(y_true)
    if len(values) > 2:
        raise ValueError(
            f"y_true must be binary (two classes); got labels {values.tolist()[:10]}. For a "
            "multiclass model pass y_true = (pred == y) and y_prob = the top probability"
        )
    if pos_label is None:
        if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {-1, 1}):
            raise ValueError(
                f"y_true holds labels {values.tolist()}, not 0/1 or -1/1: pass pos_label= "
                "(the class whose probability y_prob is)"
            )
        pos_label = 1
    return y_true == pos_label


def _bin_ids(y_prob, n_bins, strategy) -> np.ndarray:
    """Each probability's bin (N,): bin b holds (edge[b], edge[b + 1]], the first bin
    also 0 (scikit-learn's ``calibration_curve``)."""
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.percentile(y_prob, np.linspace(0, 100, n_bins + 1))
    else:
        raise ValueError(f'strategy must be "uniform" or "quantile"; got {strategy!r}')
    return np.searchsorted(edges[1:-1], y_prob)


def calibration_curve(y_true, y_prob, *, pos_label=None, n_bins: int = 5, strategy="uniform"):
    """The reliability diagram of a binary classifier: ``(prob_true, prob_pred)``.

    The probabilities ``y_prob`` (N,) are put into ``n_bins`` bins (``"uniform"``: of
    width 1 / n_bins on [0, 1]; ``"quantile"``: holding about the same number of
    examples); for each bin that is not empty, ``prob_true`` is the fraction of its
    examples that are positive and ``prob_pred`` the mean of its probabilities. A
    calibrated model has ``prob_true ≈ prob_pred``. Both (B',), B' <= n_bins.

    For a multiclass model pass ``y_true = (pred == y)`` and ``y_prob`` = the top
    probability (the model's confidence).
    """
    y_true = _labels(y_true, "y_true")
    y_prob = _probabilities(y_prob, "y_prob")
    if len(y_true) != len(y_prob):
        raise ValueError(
            f"y_true and y_prob must have the same length; got {len(y_true)} and {len(y_prob)}"
        )
    n_bins = _check_int(n_bins, "n_bins", 1)
    truth = _binary_truth(y_true, pos_label)
    ids = _bin_ids(y_prob, n_bins, strategy)
    total = np.bincount(ids, minlength=n_bins)
    hit = total > 0
    prob_true = np.bincount(ids, weights=truth, minlength=n_bins)[hit] / total[hit]
    prob_pred = np.bincount(ids, weights=y_prob, minlength=n_bins)[hit] / total[hit]
    return prob_true, prob_pred


def expected_calibration_error(y_true, y_prob, n_bins: int = 10) -> float:
    """The expected calibration error (Guo et al. 2017): sum over B uniform bins of
    (n_b / N) |accuracy_b - confidence_b|.

    * ``y_prob`` (N, C), the class probabilities, and ``y_true`` (N,) the labels: the
      confidence of an example is its top probability, and it is correct when its
      argmax is ``y_true`` (the usual multiclass ECE);
    * or ``y_prob`` (N,), the probability of the positive class, and ``y_true`` (N,) in
      {0, 1}: then accuracy_b and confidence_b are :func:`calibration_curve`'s
      ``prob_true`` and ``prob_pred`` (bins (b/B, (b+1)/B], 0 in the first).

    0 for a calibrated model (in every bin the fraction right equals the mean confidence);
    at most 1. With few examples a bin's fraction is noisy, so even a calibrated model
    scores about sqrt(B / N) rather than 0.
    """
    n_bins = _check_int(n_bins, "n_bins", 1)
    y_true = _labels(y_true, "y_true")
    y_prob = _probabilities(y_prob, "y_prob", ndim=(1, 2))
    if len(y_true) != len(y_prob):
        raise ValueError(
            f"y_true and y_prob must have the same length; got {len(y_true)} and {len(y_prob)}"
        )
    if y_prob.ndim == 2:
        if y_true.min() < 0 or y_true.max() >= y_prob.shape[1]:
            raise ValueError(
                f"y_true must hold class indices 0..{y_prob.shape[1] - 1} for y_prob of shape "
                f"{y_prob.shape}; got labels from {y_true.min()} to {y_true.max()}"
            )
        correct = (y_prob.argmax(axis=1) == y_true).astype(np.float64)
        confidence = y_prob.max(axis=1)
    else:
        if not np.isin(y_true, (0, 1)).all():
            raise ValueError(
                f"y_true must be 0/1 with y_prob of shape (N,); got labels "
                f"{np.unique(y_true).tolist()[:10]}. For a multiclass model pass y_prob of "
                "shape (N, C)"
            )
        correct, confidence = y_true.astype(np.float64), y_prob
    ids = _bin_ids(confidence, n_bins, "uniform")
    gap = np.bincount(ids, weights=correct - confidence, minlength=n_bins)
    return float(np.abs(gap).sum() / len(y_true))  # sum_b |n_b acc_b - n_b conf_b| / N
