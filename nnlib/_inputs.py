"""Checks of what users pass to a model (``Sequential`` and the training step): done in
Python at the API boundary, so that the kernels below can trust their inputs."""

from __future__ import annotations

import numbers

import numpy as np


def as_data(X, name, dtype):
    """``X`` as a C-contiguous (N, D) array of ``dtype``; NaN/inf rejected."""
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of numbers; got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, shape (N, D); got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype)
    if not np.isfinite(arr).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(
            f"{name} contains NaN or inf (first at index {bad}); clean or impute it first"
        )
    return arr


def check_int(value, name, minimum):
    """``value`` as an int >= ``minimum`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return int(value)


def check_features(X, model, what="X"):
    """``X`` (N, D) must have the model's D columns (any D without a Dense layer)."""
    if model.input_features is not None and X.shape[1] != model.input_features:
        raise ValueError(
            f"{what} must have {model.input_features} features (columns) for this model; got "
            f"shape {X.shape}"
        )


def check_lengths(X, targets, what=("X", "y")):
    if len(targets) != len(X):
        raise ValueError(
            f"{what[0]} and {what[1]} must have the same length; got {len(X)} and {len(targets)}"
        )
