"""Checks of what users pass to a model (``Sequential`` and the training step): done in
Python at the API boundary, so that the kernels below can trust their inputs."""

from __future__ import annotations

import numbers

import numpy as np


def as_data(X, name, dtype):
    """``X`` as a C-contiguous array of ``dtype``, rows (N, D) or images (N, C, H, W);
    NaN/inf rejected."""
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of numbers; got dtype {arr.dtype}")
    if arr.ndim not in (2, 4):
        raise ValueError(
            f"{name} must be 2-D rows (N, D) or 4-D images (N, C, H, W); got shape {arr.shape}"
            + (
                f". For one-channel images use {name}.reshape(len({name}), 1, H, W)"
                if arr.ndim == 3
                else ""
            )
        )
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


def example_shape(X):
    """The shape of one example of ``X``: its width D for rows (N, D), the tuple
    (C, H, W) for images (N, C, H, W). Layers are built from it."""
    return int(X.shape[1]) if X.ndim == 2 else tuple(int(d) for d in X.shape[1:])


def describe(shape) -> str:
    """``shape`` (of one example) in words, for messages."""
    if isinstance(shape, tuple):
        return f"images (N, C, H, W) = (N, {', '.join(map(str, shape))})"
    return f"rows (N, D) of D = {shape} features"


def check_features(X, model, what="X"):
    """``X`` must have the model's per-example shape: its D columns, or its (C, H, W)
    images (anything when no layer fixes it)."""
    expected = model.input_features
    got = example_shape(X)
    if expected is None or got == expected:
        return
    hint = ""
    if isinstance(expected, tuple) and not isinstance(got, tuple):
        if int(np.prod(expected)) == got:
            each = ", ".join(map(str, expected))
            hint = f". Reshape the rows into images: {what}.reshape(-1, {each})"
    elif isinstance(got, tuple) and not isinstance(expected, tuple):
        if int(np.prod(got)) == expected:
            hint = f". Flatten the images into rows: {what}.reshape(len({what}), -1)"
    raise ValueError(
        f"{what} must be {describe(expected)} for this model; got shape {tuple(X.shape)}{hint}"
    )


def check_lengths(X, targets, what=("X", "y")):
    if len(targets) != len(X):
        raise ValueError(
            f"{what[0]} and {what[1]} must have the same length; got {len(X)} and {len(targets)}"
        )
