"""Small synthetic data sets for the course. Every generator takes ``seed`` (int,
Generator or None) and returns ``(X, y)``: ``X`` float32 of shape (n, D), ``y`` int64
labels of shape (n,) (float32 targets (n, 1) for :func:`sine`). Examples come in random
order, so any slice of them holds every class.
"""

from __future__ import annotations

import numbers

import numpy as np

from .init import rng_from

__all__ = ["blobs", "circles", "moons", "sine", "spirals", "xor"]


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
