"""Gradient checking: compare an analytic backward pass with central differences.

The central difference ``(L(x + eps) - L(x - eps)) / (2 eps)`` has error O(eps^2), so in
float64 with eps = 1e-6 it agrees with a correct gradient to about 1e-8 relative error
(cs231n's rule of thumb: < 1e-7 is right, > 1e-4 is almost certainly a bug).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6):
    """Central-difference gradient of the scalar function ``f`` at ``x``.

    ``x`` : float64 array of any shape (...); it is restored after each nudge.
    Returns an array of the shape of ``x``.
    """
    x = np.array(x, dtype=np.float64)  # a private copy: the caller's array is untouched
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f(x)
        flat[i] = old - eps
        down = f(x)
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def relative_error(a, b) -> float:
    """cs231n's relative error: max of ``|a - b| / max(|a| + |b|, 1e-8)``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))


@dataclass(frozen=True)
class VJPCheck:
    """Result of :func:`check_vjp`."""

    relative_error: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.relative_error <= self.tolerance

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{verdict}: relative error {self.relative_error:.2e} (tolerance {self.tolerance:.0e})"
        )


def check_vjp(
    forward: Callable[[np.ndarray], np.ndarray],
    backward: Callable[[np.ndarray, np.ndarray], np.ndarray],
    x,
    *,
    seed: int = 0,
    eps: float = 1e-6,
    tol: float = 1e-7,
) -> VJPCheck:
    """Check ``backward(dy, x)`` against central differences of ``forward`` at ``x``.

    With a random upstream gradient ``dy`` the scalar ``L(x) = sum(forward(x) * dy)`` has
    gradient ``backward(dy, x)``; both are computed in float64 and compared.
    """
    x = np.array(x, dtype=np.float64)
    dy = np.random.default_rng(seed).standard_normal(np.shape(forward(x)))
    numeric = numerical_gradient(lambda z: float(np.sum(forward(z) * dy)), x, eps)
    analytic = np.asarray(backward(dy, x), dtype=np.float64)
    if analytic.shape != x.shape:
        raise ValueError(f"backward returned shape {analytic.shape}, expected {x.shape}")
    return VJPCheck(relative_error(analytic, numeric), tol)
