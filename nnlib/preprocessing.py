"""Preparing data for training: splits, scaling, one-hot labels, mini-batches, and a
seeded augmentation of image batches (:func:`random_shift`).

Names and behaviour follow scikit-learn's where it has the same tool, so what you learn
here carries over.

**Fit scalers on the training split only.** The test set stands in for data the model
has never seen; if its mean and spread leak into the preprocessing, the test score is
optimistic. The right order is::

    (X_tr, y_tr), (X_te, y_te) = train_test_split(X, y, test_size=0.2, stratify=True, seed=0)
    scaler = StandardScaler().fit(X_tr)          # statistics of the training split
    X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)

:func:`train_test_split` returns the training split first, and a scaler cannot transform
anything before it was fitted, so the leak-free order is the natural one.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .init import rng_from

__all__ = [
    "MinMaxScaler",
    "NotFittedError",
    "StandardScaler",
    "batches",
    "one_hot",
    "random_shift",
    "train_test_split",
    "train_val_test_split",
]


class NotFittedError(RuntimeError):
    """A scaler was used before ``fit``."""


def _features(X, name="X") -> np.ndarray:
    X = np.asarray(X)
    if X.dtype.kind not in "fiu" or X.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of numbers (examples x features); "
            f"got shape {X.shape} and dtype {X.dtype}"
        )
    return X


def _finite_features(X, who) -> np.ndarray:
    """``X`` checked as :func:`_features` does, with at least one example and no NaN or inf
    (a single one would make every statistic of its column NaN)."""
    X = _features(X)
    if len(X) == 0:
        raise ValueError(f"{who}: X has no examples; pass the training split, shape (n, D)")
    if X.dtype.kind == "f" and not np.all(np.isfinite(X)):
        rows, cols = np.nonzero(~np.isfinite(X))
        raise ValueError(
            f"{who}: X must be finite; column {cols[0]} holds {X[rows[0], cols[0]]} (row "
            f"{rows[0]}, and {len(rows) - 1} more). Remove or impute those values before fitting"
        )
    return X


def _constant_columns(low, high, dtype) -> np.ndarray:
    """True for each feature whose values are equal up to rounding, shape (D,).

    ``low`` and ``high`` are the column minimum and maximum, shape (D,). A column counts
    as constant when its range is within 10 rounding steps of its largest magnitude
    (``high - low <= 10 * eps * max(|low|, |high|)``, ``eps`` of the input's float dtype):
    0.1 + 0.2 and 0.3 are one value. The bound is relative, so tiny values that really
    vary (1e-20, 2e-20) are still a feature. Unlike scikit-learn's test on the variance,
    it uses the exact minimum and maximum, so it does not depend on the number of examples.
    """
    eps = np.finfo(dtype if np.dtype(dtype).kind == "f" else np.float64).eps
    return high - low <= 10 * eps * np.maximum(np.abs(low), np.abs(high))


def _labels(y, n=None, name="y") -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must be a 1-D array of integer labels; got shape {y.shape}, dtype {y.dtype}"
        )
    if n is not None and len(y) != n:
        raise ValueError(f"{name} has {len(y)} labels but X has {n} examples")
    return y


def _fraction(value, name) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise ValueError(f"{name} must be a fraction strictly between 0 and 1; got {value!r}")
    return float(value)


def _split_indices(y, n, fraction, stratify, rng) -> tuple[np.ndarray, np.ndarray]:
    """(keep, take): ``take`` holds round(fraction * n) examples, per class if stratified."""
    if not stratify:
        perm = rng.permutation(n)
        k = round(fraction * n)
        return np.sort(perm[k:]), np.sort(perm[:k])
    # Per class, take round(fraction * class size) examples; then fix the rounding so the
    # total matches the unstratified count, adjusting the classes whose share rounded most.
    classes, counts = np.unique(y, return_counts=True)
    exact = fraction * counts
    take = np.floor(exact).astype(int)
    short = round(fraction * n) - take.sum()
    for c in np.argsort(-(exact - take), kind="stable")[: max(short, 0)]:
        take[c] += 1
    keep_idx, take_idx = [], []
    for c, k in zip(classes, take, strict=True):
        members = rng.permutation(np.flatnonzero(y == c))
        take_idx.append(members[:k])
        keep_idx.append(members[k:])
    return np.sort(np.concatenate(keep_idx)), np.sort(np.concatenate(take_idx))


def train_test_split(X, y, test_size: float = 0.2, *, stratify: bool = False, seed=None):
    """Split ``(X, y)`` into ``(X_train, y_train), (X_test, y_test)``.

    ``test_size`` is the fraction that goes to the test split (rounded to whole
    examples). With ``stratify=True`` each class keeps its proportion in both splits (to
    within one example per class). ``seed`` makes the split repeatable. The order of the
    examples inside each split is their original order.

    NOTE: scikit-learn's function returns the flat ``X_train, X_test, y_train, y_test``;
    nnlib pairs each split's features with its labels, the layout that
    :func:`nnlib.datasets.load_mnist` returns and ``fit(..., validation_data=)`` takes.
    """
    X = np.asarray(X)
    y = _labels(y, len(X)) if stratify else np.asarray(y)
    if len(y) != len(X):
        raise ValueError(f"y has {len(y)} entries but X has {len(X)} examples")
    keep, take = _split_indices(
        y, len(X), _fraction(test_size, "test_size"), stratify, rng_from(seed)
    )
    return (X[keep], y[keep]), (X[take], y[take])


def train_val_test_split(
    X, y, val_size: float = 0.15, test_size: float = 0.15, *, stratify: bool = False, seed=None
):
    """Three disjoint splits ``(train), (val), (test)``, each an ``(X, y)`` pair.

    ``val_size`` and ``test_size`` are fractions of the whole data set.
    """
    val_size, test_size = _fraction(val_size, "val_size"), _fraction(test_size, "test_size")
    if val_size + test_size >= 1:
        raise ValueError(
            f"val_size + test_size must leave something to train on; got {val_size} + {test_size}"
        )
    rng = rng_from(seed)
    rest, test = train_test_split(X, y, test_size, stratify=stratify, seed=rng)
    train, val = train_test_split(*rest, val_size / (1 - test_size), stratify=stratify, seed=rng)
    return train, val, test


class _Scaler:
    """``fit`` learns per-feature statistics; ``transform`` applies them."""

    _fitted = ("",)

    def fit_transform(self, X):
        return self.fit(X).transform(X)

    def _check_fitted(self, what):
        if any(getattr(self, name, None) is None for name in self._fitted):
            raise NotFittedError(
                f"{type(self).__name__}.{what}: call fit(X_train) first, on the training split only"
            )

    def _check_width(self, X, what):
        X = _features(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"{type(self).__name__}.{what}: X has {X.shape[1]} features, but the scaler "
                f"was fitted on {self.n_features_in_}"
            )
        return X


class StandardScaler(_Scaler):
    """Standardize each feature: ``(X - mean_) / scale_``, statistics from ``fit``.

    ``scale_`` is the population standard deviation (ddof=0, as scikit-learn); a feature
    that is constant in the training data (up to rounding, see :func:`_constant_columns`)
    gets ``scale_ = 1``, so it becomes 0, never NaN and never the +-1 that dividing its
    rounding noise (a std of ~1e-16) by itself would give. ``fit`` refuses NaN and inf.
    Output dtype: float32 input stays float32, anything else becomes float64.
    """

    _fitted = ("mean_", "scale_")

    def __init__(self):
        self.mean_ = self.scale_ = None
        self.n_features_in_ = None

    def fit(self, X) -> StandardScaler:
        X = _finite_features(X, "StandardScaler.fit")
        dtype, X = X.dtype, X.astype(np.float64)
        # NOTE: the statistics are taken of X / size (values in [-1, 1]) and scaled back,
        # so squaring cannot overflow (1e200) or underflow (1e-200); a constant column
        # divides to exactly +-1, so its mean is exact and it transforms to exactly 0.
        size = np.abs(X).max(axis=0)
        size = np.where(size > 0, size, 1.0)
        mean, std = (X / size).mean(axis=0) * size, (X / size).std(axis=0) * size
        constant = _constant_columns(X.min(axis=0), X.max(axis=0), dtype) | (std == 0)
        self.mean_, self.scale_ = mean, np.where(constant, 1.0, std)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        self._check_fitted("transform")
        X = self._check_width(X, "transform")
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        return ((X - self.mean_) / self.scale_).astype(dtype)

    def inverse_transform(self, X):
        self._check_fitted("inverse_transform")
        X = self._check_width(X, "inverse_transform")
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        return (X * self.scale_ + self.mean_).astype(dtype)


class MinMaxScaler(_Scaler):
    """Rescale each feature to ``feature_range`` (default [0, 1]) using the training
    minimum and maximum. Values outside the training range map outside the range (no
    clipping, as scikit-learn). A feature that is constant in the training data (up to
    rounding, see :func:`_constant_columns`) maps to the range's lower end. ``fit``
    refuses NaN and inf."""

    _fitted = ("data_min_", "data_max_")

    def __init__(self, feature_range=(0.0, 1.0)):
        try:
            lo, hi = (float(v) for v in feature_range)
        except (TypeError, ValueError):
            lo = hi = float("nan")
        if not (lo < hi and np.isfinite(hi - lo)):
            raise ValueError(
                "feature_range must be (low, high), two finite numbers with low < high; "
                f"got {feature_range!r}"
            )
        self.feature_range = (lo, hi)
        self.data_min_ = self.data_max_ = None
        self.n_features_in_ = None

    def fit(self, X) -> MinMaxScaler:
        X = _finite_features(X, "MinMaxScaler.fit")
        dtype, X = X.dtype, X.astype(np.float64)
        self.data_min_, self.data_max_ = X.min(axis=0), X.max(axis=0)
        constant = _constant_columns(self.data_min_, self.data_max_, dtype)
        # the training range of each feature, shape (D,); 0 where it is constant
        self._span = np.where(constant, 0.0, self.data_max_ - self.data_min_)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        self._check_fitted("transform")
        X = self._check_width(X, "transform")
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        lo, hi = self.feature_range
        # NOTE: the position in the training range first, (X - min) / span, in [0, 1] on
        # the training data: (hi - lo) / span would overflow for a subnormal span (5e-324).
        # A constant feature (span 0) gets 0, so it lands exactly on ``lo``.
        span = self._span
        where = np.divide(X - self.data_min_, span, out=np.zeros(X.shape), where=span > 0)
        return (where * (hi - lo) + lo).astype(dtype)

    def inverse_transform(self, X):
        self._check_fitted("inverse_transform")
        X = self._check_width(X, "inverse_transform")
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        lo, hi = self.feature_range
        # divides only by hi - lo, which __init__ checked is finite and > 0
        return ((X - lo) / (hi - lo) * self._span + self.data_min_).astype(dtype)


def one_hot(y, num_classes: int | None = None, dtype=np.float32) -> np.ndarray:
    """Integer labels (n,) to one-hot rows (n, num_classes): row i has a 1 at ``y[i]``.

    ``num_classes`` defaults to ``y.max() + 1``; labels outside ``0..num_classes-1`` are
    an error.
    """
    y = _labels(y)
    if num_classes is None:
        num_classes = int(y.max()) + 1 if len(y) else 0
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, numbers.Integral)
        or (num_classes < 0)
    ):
        raise ValueError(f"num_classes must be an int >= 0; got {num_classes!r}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"labels must lie in 0..{num_classes - 1}; got values from {y.min()} to {y.max()}"
        )
    out = np.zeros((len(y), num_classes), dtype)
    out[np.arange(len(y)), y] = 1
    return out


def batches(
    X, y=None, batch_size: int = 32, *, shuffle: bool = True, seed=None, drop_last: bool = False
):
    """Iterate over mini-batches ``(X_batch, y_batch)`` (or ``X_batch`` without ``y``).

    One pass is one epoch: every example appears exactly once, in a random order if
    ``shuffle`` (repeatable with ``seed``). The last batch is smaller when the batch size
    does not divide the data, unless ``drop_last``.
    """
    X = np.asarray(X)
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, numbers.Integral)
        or (batch_size <= 0)
    ):
        raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
    if y is not None and len(y) != len(X):
        raise ValueError(f"y has {len(y)} entries but X has {len(X)} examples")
    n = len(X)
    order = rng_from(seed).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield X[idx] if y is None else (X[idx], np.asarray(y)[idx])


def _image_shape(X, image_shape) -> tuple[int, int]:
    """(H, W) of the images in ``X``, (N, H, W) or (N, H * W), checked against
    ``image_shape``; a flattened batch without ``image_shape`` must be square."""
    if image_shape is not None:
        ok = (
            isinstance(image_shape, (tuple, list))
            and len(image_shape) == 2
            and all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0
                for v in image_shape
            )
        )
        if not ok:
            raise ValueError(
                f"random_shift: image_shape must be a pair of positive ints (H, W), e.g. "
                f"(8, 8); got {image_shape!r}"
            )
        image_shape = (int(image_shape[0]), int(image_shape[1]))
    if 0 in X.shape[1:]:
        raise ValueError(f"random_shift: X's images have no pixels; got shape {X.shape}")
    if X.ndim == 3:
        if image_shape is not None and image_shape != X.shape[1:]:
            raise ValueError(
                f"random_shift: X holds images of shape {X.shape[1:]}, but image_shape is "
                f"{image_shape}; leave image_shape out for an (N, H, W) batch"
            )
        return X.shape[1], X.shape[2]
    if image_shape is None:
        side = math.isqrt(X.shape[1])
        if side * side != X.shape[1]:
            raise ValueError(
                f"random_shift: X has {X.shape[1]} features per row, not a square image; "
                "pass image_shape=(H, W) with H * W equal to it"
            )
        return side, side
    if image_shape[0] * image_shape[1] != X.shape[1]:
        raise ValueError(
            f"random_shift: image_shape {image_shape} has {image_shape[0] * image_shape[1]} "
            f"pixels, but X has {X.shape[1]} features per row"
        )
    return image_shape


def random_shift(
    X, max_shift: int = 2, *, image_shape=None, seed=None, fill=0.0, return_shifts: bool = False
):
    """Shift each image of a batch by a random whole number of pixels (data augmentation).

    Image ``n`` is moved ``dy[n]`` rows down and ``dx[n]`` columns right (negative: up,
    left), each drawn uniformly from ``-max_shift .. max_shift``, independently for
    every image and axis: ``out[n, y + dy, x + dx] = X[n, y, x]``. Pixels moved past the
    border are dropped; the pixels uncovered are set to ``fill``. A shift of 0 leaves
    an image as it is.

    Parameters
    ----------
    X : (N, H * W) flattened images (the rows of ``nl.datasets.digits``) or (N, H, W)
    max_shift : int, 0 <= max_shift < min(H, W)
    image_shape : (H, W) of a flattened batch; default: a square image (8 x 8 for 64
        features). Not needed for (N, H, W).
    seed : int, numpy.random.Generator or None; the same int gives the same shifts (a
        Generator is advanced, so the next call draws new ones)
    fill : the value of the uncovered pixels (0.0, the digits' background)
    return_shifts : also return the shifts, an int64 array (N, 2) of (dy, dx)

    Returns a new array of the shape and dtype of ``X`` (``X`` is not changed), and the
    shifts if asked. Augment the training split only, after splitting: the validation
    and test images stay as they are. Vectorized NumPy: 1797 8 x 8 digits take about a
    millisecond.
    """
    X = np.asarray(X)
    if X.dtype.kind not in "fiu":
        raise TypeError(f"random_shift: X must hold numbers (float or int); got dtype {X.dtype}")
    if X.ndim not in (2, 3):
        raise ValueError(
            "random_shift: X must be a batch of images, (N, H * W) flattened or (N, H, W); "
            f"got shape {X.shape}"
        )
    H, W = _image_shape(X, image_shape)
    if (
        isinstance(max_shift, bool)
        or not isinstance(max_shift, numbers.Integral)
        or not 0 <= max_shift < min(H, W)
    ):
        raise ValueError(
            f"random_shift: max_shift must be an int in 0..{min(H, W) - 1} (a whole number "
            f"of pixels, less than the {H} x {W} image); got {max_shift!r}"
        )
    if isinstance(fill, bool) or not isinstance(fill, numbers.Real):
        raise TypeError(f"random_shift: fill must be a number; got {type(fill).__name__}")
    if X.dtype.kind in "iu":
        info = np.iinfo(X.dtype)
        if not (np.isfinite(fill) and fill == int(fill) and info.min <= fill <= info.max):
            raise ValueError(
                f"random_shift: fill={fill!r} cannot be stored in X's dtype {X.dtype}; pass "
                f"a whole number in {info.min}..{info.max}, or a float X"
            )
    if not isinstance(return_shifts, bool):
        raise TypeError(f"random_shift: return_shifts must be True or False; got {return_shifts!r}")
    rng = rng_from(seed)
    n, s = len(X), int(max_shift)
    shifts = rng.integers(-s, s + 1, size=(n, 2))
    images = X.reshape(n, H, W)
    # the images framed by s pixels of fill, then read back at (y - dy, x - dx)
    framed = np.full((n, H + 2 * s, W + 2 * s), fill, X.dtype)
    framed[:, s : s + H, s : s + W] = images
    rows = np.arange(H) - shifts[:, :1] + s  # (N, H)
    cols = np.arange(W) - shifts[:, 1:] + s  # (N, W)
    out = framed[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    out = out.reshape(X.shape)
    return (out, shifts) if return_shifts else out
