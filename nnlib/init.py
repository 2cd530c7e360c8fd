"""Weight initializers. Each returns a new array of ``shape`` and ``dtype``.

For a dense weight of shape (D, H) (D inputs, H outputs): ``fan_in = D``,
``fan_out = H``; for a convolution's weight of shape (F, C, KH, KW) (PyTorch's OIHW):
``fan_in = C * KH * KW``, ``fan_out = F * KH * KW`` (PyTorch's convention: each output
sums over C * KH * KW inputs). Every initializer takes ``seed``: an int, a
``numpy.random.Generator`` (it is advanced, so consecutive layers differ), or None
(fresh OS entropy: not reproducible).

=====================  ============================================================
name                   distribution
=====================  ============================================================
zeros, constant        0, or ``value``
uniform, normal        U(low, high), N(mean, std^2)
xavier_uniform         U(-a, a),  a = gain * sqrt(6 / (fan_in + fan_out))   (Glorot)
xavier_normal          N(0, s^2), s = gain * sqrt(2 / (fan_in + fan_out))
he_uniform             U(-a, a),  a = gain * sqrt(3 / fan),  gain = sqrt(2)  (Kaiming)
he_normal              N(0, s^2), s = gain / sqrt(fan),      fan = fan_in or fan_out
lecun_uniform/normal   He with gain 1 and fan_in (for SELU/tanh-like units)
=====================  ============================================================

The ``gain`` of an activation (PyTorch's ``calculate_gain``) is in :func:`gain`.
Short names for ``Dense(init=...)``: ``"he"`` = he_normal, ``"xavier"``/``"glorot"`` =
xavier_uniform, ``"lecun"`` = lecun_normal.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "INITIALIZERS",
    "constant",
    "gain",
    "get",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "normal",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]


def rng_from(seed) -> np.random.Generator:
    """A Generator from an int seed, a Generator (returned as is) or None."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise TypeError(
        f"seed must be an int, a numpy.random.Generator or None; got {type(seed).__name__}"
    )


def gain(activation: str = "linear", param: float | None = None) -> float:
    """The recommended gain for ``activation`` (as ``torch.nn.init.calculate_gain``)."""
    gains = {
        "linear": 1.0,
        "identity": 1.0,
        "sigmoid": 1.0,
        "tanh": 5.0 / 3.0,
        "relu": math.sqrt(2.0),
        "selu": 0.75,
    }
    if activation == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if activation not in gains:
        raise ValueError(
            f"activation must be one of {[*sorted(gains), 'leaky_relu']}; got {activation!r}"
        )
    return gains[activation]


def _fans(shape) -> tuple[int, int]:
    if len(shape) < 1:
        raise ValueError(f"fan_in/fan_out need a shape with at least 1 axis; got {shape}")
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 4:  # (F, C, KH, KW): a convolution's filters (PyTorch's OIHW)
        f, c, kh, kw = shape
        return c * kh * kw, f * kh * kw
    if len(shape) != 2:
        raise ValueError(
            f"fan_in/fan_out are defined for 1-D, 2-D (D, H) dense and 4-D (F, C, KH, KW) "
            f"convolution weights; got a shape with {len(shape)} axes, {tuple(shape)}"
        )
    return shape[0], shape[1]  # (D, H): nnlib stores dense weights as (in, out)


def _fan(shape, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out'; got {mode!r}")
    return _fans(shape)[0 if mode == "fan_in" else 1]


def zeros(shape, dtype=np.float32, seed=None):
    """All zeros."""
    return np.zeros(shape, dtype)


def constant(shape, value: float = 0.0, dtype=np.float32, seed=None):
    """Every entry ``value``."""
    return np.full(shape, value, dtype)


def uniform(shape, low: float = -0.05, high: float = 0.05, dtype=np.float32, seed=None):
    """U(low, high)."""
    return rng_from(seed).uniform(low, high, shape).astype(dtype)


def normal(shape, mean: float = 0.0, std: float = 0.05, dtype=np.float32, seed=None):
    """N(mean, std^2)."""
    return rng_from(seed).normal(mean, std, shape).astype(dtype)


def xavier_uniform(shape, gain: float = 1.0, dtype=np.float32, seed=None):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(shape)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, -a, a, dtype, seed)


def xavier_normal(shape, gain: float = 1.0, dtype=np.float32, seed=None):
    """N(0, s^2) with s = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(shape)
    return normal(shape, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), dtype, seed)


def he_uniform(shape, gain: float = math.sqrt(2.0), mode="fan_in", dtype=np.float32, seed=None):
    """U(-a, a) with a = gain * sqrt(3 / fan)."""
    a = gain * math.sqrt(3.0 / _fan(shape, mode))
    return uniform(shape, -a, a, dtype, seed)


def he_normal(shape, gain: float = math.sqrt(2.0), mode="fan_in", dtype=np.float32, seed=None):
    """N(0, s^2) with s = gain / sqrt(fan)."""
    return normal(shape, 0.0, gain / math.sqrt(_fan(shape, mode)), dtype, seed)


def lecun_uniform(shape, dtype=np.float32, seed=None):
    """U(-a, a) with a = sqrt(3 / fan_in)."""
    return he_uniform(shape, 1.0, "fan_in", dtype, seed)


def lecun_normal(shape, dtype=np.float32, seed=None):
    """N(0, 1 / fan_in)."""
    return he_normal(shape, 1.0, "fan_in", dtype, seed)


INITIALIZERS = {
    "zeros": zeros,
    "constant": constant,
    "uniform": uniform,
    "normal": normal,
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "glorot_uniform": xavier_uniform,
    "glorot_normal": xavier_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "kaiming_uniform": he_uniform,
    "kaiming_normal": he_normal,
    "lecun_uniform": lecun_uniform,
    "lecun_normal": lecun_normal,
    "he": he_normal,
    "kaiming": he_normal,
    "xavier": xavier_uniform,
    "glorot": xavier_uniform,
    "lecun": lecun_normal,
}


def get(init):
    """The initializer called ``init`` (a name of :data:`INITIALIZERS`), or ``init``
    itself when it is a callable ``f(shape, dtype=..., seed=...)``."""
    if callable(init):
        return init
    if not isinstance(init, str) or init not in INITIALIZERS:
        raise ValueError(f"init must be one of {sorted(INITIALIZERS)} or a callable; got {init!r}")
    return INITIALIZERS[init]
