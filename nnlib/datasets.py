"""Data sets for the course and for your own projects.

* Generated toy sets: every generator takes ``seed`` (int, Generator or None) and returns
  ``(X, y)``: ``X`` float32 of shape (n, D), ``y`` int64 labels of shape (n,) (float32
  targets (n, 1) for :func:`sine`). Examples come in random order, so any slice of them
  holds every class.
* :func:`load_digits`: 1,797 real 8x8 handwritten digits, bundled (no network needed).
"""

from __future__ import annotations

import hashlib
import io
import numbers
from importlib import resources
from pathlib import Path

import numpy as np

from .init import rng_from

__all__ = ["blobs", "circles", "load_digits", "moons", "sine", "spirals", "xor"]

# SHA-256 of nnlib/data/digits.npz; load_digits refuses a file that does not match.
DIGITS_SHA256 = "b2dab7b501728c22e9119ad76740b2e17c77a231e42d1e592380d90886f1a05e"


class DataIntegrityError(RuntimeError):
    """A data file is not the one nnlib expects (corrupt, truncated or replaced)."""


def _verified_bytes(path, expected: str) -> bytes:
    data = path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise DataIntegrityError(
            f"{path} is corrupt: its SHA-256 is {got}, expected {expected}. "
            "Reinstall nnlib (pip install --force-reinstall nnlib, or git checkout the file "
            "in a source tree)."
        )
    return data


def load_digits(*, images: bool = False, path=None):
    """The UCI handwritten digits: ``(X, y)``, 1,797 examples of 10 classes.

    ``X`` is float32 with pixel values 0..16, shape (1797, 64), or (1797, 8, 8) with
    ``images=True``; ``y`` is int64 in 0..9. Divide by 16 (or standardize, fitting on the
    training split only) before training. The file ships inside the package and its
    checksum is verified on every load. Source: Alpaydin & Kaynak, UCI Machine Learning
    Repository (CC BY 4.0); see ``nnlib/data/README.md``. ``path`` reads another copy of
    the file (it must have the same checksum).
    """
    path = resources.files("nnlib") / "data" / "digits.npz" if path is None else Path(path)
    with np.load(io.BytesIO(_verified_bytes(path, DIGITS_SHA256)), allow_pickle=False) as f:
        pixels, labels = f["images"], f["labels"]
    X = pixels.astype(np.float32)
    if not images:
        X = X.reshape(len(X), -1)
    return X, labels.astype(np.int64)


def _check(n, noise, min_n=1):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < min_n:
        raise ValueError(f"n must be an int >= {min_n}; got {n!r}")
    if not isinstance(noise, numbers.Real) or noise < 0:
        raise ValueError(f"noise must be a number >= 0; got {noise!r}")


def _finish(X, y, rng):
    perm = rng.permutation(len(X))
    return np.ascontiguousarray(X[perm], np.float32), np.ascontiguousarray(y[perm], np.int64)


def moons(n: int = 1000, noise: float = 0.1, seed=None):
    """Two interleaving half circles (2 classes, 2 features), Gaussian noise of std ``noise``."""
    _check(n, noise)
    rng = rng_from(seed)
    n0 = n // 2
    t0, t1 = np.linspace(0, np.pi, n0), np.linspace(0, np.pi, n - n0)
    X = np.concatenate(
        [np.c_[np.cos(t0), np.sin(t0)], np.c_[1 - np.cos(t1), 0.5 - np.sin(t1)]]
    ) + rng.normal(0, noise, (n, 2))
    y = np.r_[np.zeros(n0), np.ones(n - n0)]
    return _finish(X, y, rng)


def circles(n: int = 1000, noise: float = 0.05, factor: float = 0.5, seed=None):
    """A circle inside a larger one (2 classes); ``factor`` is the inner radius."""
    _check(n, noise)
    rng = rng_from(seed)
    n0 = n // 2
    t0 = np.linspace(0, 2 * np.pi, n0, endpoint=False)
    t1 = np.linspace(0, 2 * np.pi, n - n0, endpoint=False)
    X = np.concatenate([np.c_[np.cos(t0), np.sin(t0)], factor * np.c_[np.cos(t1), np.sin(t1)]])
    X = X + rng.normal(0, noise, (n, 2))
    return _finish(X, np.r_[np.zeros(n0), np.ones(n - n0)], rng)


def xor(n: int = 1000, noise: float = 0.1, seed=None):
    """Points around the four corners (+-1, +-1); class 1 where the signs differ."""
    _check(n, noise)
    rng = rng_from(seed)
    corners = rng.integers(0, 2, (n, 2)) * 2 - 1
    X = corners + rng.normal(0, noise, (n, 2))
    return _finish(X, (corners[:, 0] != corners[:, 1]).astype(np.int64), rng)


def spirals(n: int = 1000, classes: int = 3, noise: float = 0.2, seed=None):
    """``classes`` interleaved spiral arms (cs231n's toy problem)."""
    _check(n, noise)
    rng = rng_from(seed)
    y = np.arange(n) % classes
    r = np.concatenate([np.linspace(0.0, 1, np.sum(y == k)) for k in range(classes)])
    y = np.sort(y)
    t = y * (2 * np.pi / classes) + r * 4 + rng.normal(0, noise, n)
    return _finish(np.c_[r * np.sin(t), r * np.cos(t)], y, rng)


def blobs(n: int = 1000, centers: int = 3, dim: int = 2, std: float = 1.0, seed=None):
    """Gaussian blobs around ``centers`` random centres in [-10, 10]^dim."""
    _check(n, std)
    rng = rng_from(seed)
    c = rng.uniform(-10, 10, (centers, dim))
    y = rng.integers(0, centers, n)
    return _finish(c[y] + rng.normal(0, std, (n, dim)), y, rng)


def sine(n: int = 200, noise: float = 0.1, seed=None):
    """Regression: ``x`` uniform in [-pi, pi], ``y = sin(x) + noise``; X (n, 1), y (n, 1)."""
    _check(n, noise)
    rng = rng_from(seed)
    x = rng.uniform(-np.pi, np.pi, (n, 1))
    y = np.sin(x) + rng.normal(0, noise, (n, 1))
    return x.astype(np.float32), y.astype(np.float32)
