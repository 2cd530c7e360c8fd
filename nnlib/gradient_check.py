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


def relative_error(a, b, floor: float = 1e-8) -> float:
    """cs231n's relative error: max of ``|a - b| / max(|a| + |b|, floor)``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)))


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


# ---------------------------------------------------------------------------- models


@dataclass(frozen=True)
class GradCheck:
    """Result of :func:`gradcheck`: relative error per parameter tensor."""

    errors: dict
    tolerance: float

    @property
    def passed(self) -> bool:
        return all(e <= self.tolerance for e in self.errors.values())

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    def __str__(self) -> str:
        lines = [f"{'parameter':<14}{'rel. error':>12}  verdict"]
        for name, err in self.errors.items():
            lines.append(f"{name:<14}{err:>12.2e}  {'ok' if err <= self.tolerance else 'FAIL'}")
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(
            f"{verdict}: max relative error {self.max_error:.2e} (tolerance {self.tolerance:.0e})"
        )
        return "\n".join(lines)


def gradcheck(
    model, X, y, *, loss="softmax_cross_entropy", eps=1e-6, tol=1e-6, seed=0, backend=None
) -> GradCheck:
    """Check a model's backward pass against central differences, in float64.

    Works on a float64 copy of ``model`` (the model itself is untouched), in training
    mode with every Dropout mask drawn once from ``seed`` and then held fixed, so the
    loss is a deterministic function of the parameters. For every parameter tensor the
    analytic gradient is compared with the numerical one; ``print(result)`` gives the
    table and a PASS/FAIL verdict. ``X`` (N, D) should be small: each parameter entry
    costs two forward passes.
    """
    from . import losses as losses_
    from ._inputs import as_data
    from .layers import Dropout
    from .model import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be an nnlib Sequential; got {type(model).__name__}")
    model._require_built("gradcheck")
    m = model.astype(np.float64)
    m._set_backend(backend if backend is not None else model.backend)
    loss_fn = losses_.get(loss)
    loss_fn.backend = m.backend
    X = as_data(X, "X", np.float64)
    targets = loss_fn.prepare(y, m.output_features, np.float64)
    if len(targets) != len(X):
        raise ValueError(f"X and y must have the same length; got {len(X)} and {len(targets)}")
    rng = np.random.default_rng(seed)
    widths, width = [], m.input_features
    for layer in m.layers:
        widths.append(width)
        width = layer.output_features(width)
    for layer, w_in in zip(m.layers, widths, strict=False):
        if isinstance(layer, Dropout):
            layer.frozen_u = rng.random((len(X), *np.atleast_1d(w_in)))

    def loss_value() -> float:
        return float(loss_fn(m._forward(X, training=True), targets))

    loss0 = loss_value()
    m.backward(loss_fn.backward())
    analytic = {k: np.array(v) for k, v in m.gradients().items()}
    # NOTE: a central difference carries the rounding noise of the two losses, about
    # eps64 * |L| / eps. A gradient that is exactly 0 (the bias of a Dense right before a
    # BatchNorm1d: the normalization removes any shift) is measured as that noise, which
    # the relative error with its 1e-8 floor calls a FAIL (1e-10 / 1e-8). The floor is
    # raised so that a difference of ``noise`` (8 ulps of L, over eps) is within ``tol``.
    noise = 8 * np.finfo(np.float64).eps * max(1.0, abs(loss0)) / eps
    floor = max(1e-8, noise / tol)
    errors = {}
    for name, p in m.parameters().items():

        def f(values, p=p):
            p[...] = values
            return loss_value()

        original = p.copy()
        numeric = numerical_gradient(f, original, eps)
        p[...] = original
        errors[name] = relative_error(analytic[name], numeric, floor)
    return GradCheck(errors, tol)
