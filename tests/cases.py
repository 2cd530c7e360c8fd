"""What the backend-agreement tests run: ops, backends, dtypes and shapes.

Shapes are drawn from a seeded generator, plus the edge cases: empty, one element,
odd sizes that don't fill a GPU block, a large array, and non-contiguous views.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SIMULATOR

# The non-reference backends, each judged against "numpy".
BACKENDS = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
DTYPES = [np.float32, np.float64]

# Elementwise activations and their extra arguments.
ELEMENTWISE = {
    "relu": {},
    "leaky_relu": {"alpha": 0.1},
    "elu": {"alpha": 0.7},
    "sigmoid": {},
    "tanh": {},
    "gelu": {},
    "silu": {},
}
ROWWISE = ("softmax", "log_softmax")


def _random_shapes(seed=1234, count=4):
    rng = np.random.default_rng(seed)
    return [
        tuple(int(n) for n in rng.integers(1, 12, size=rng.integers(1, 5))) for _ in range(count)
    ]


SHAPES = [(0,), (1,), (1, 1), (3, 0), (0, 4), (7,), (33, 17), (2, 3, 5), (257,), *_random_shapes()]
LARGE_SHAPES = [(100_003,), (513, 1027)]
if SIMULATOR:
    # The simulator runs every GPU thread as a Python thread, slowly: keep the arrays
    # small, but still wider than one block (256 threads) and one row-block (128).
    SHAPES = [(0,), (1,), (3, 0), (7,), (3, 5), (2, 3, 2)]
    LARGE_SHAPES = [(2, 300)]


def reference(op, *args, **kw):
    """The reference result, computed in float64 and rounded to the inputs' dtype.

    NOTE: float32 kernels accumulate sums in float64, so they are closer to the exact
    value than a float32 NumPy reference is; comparing both with the float64 reference
    keeps the tolerance tight without blaming the kernel for NumPy's rounding.
    """
    import nnlib.functional as F

    dtype = args[-1].dtype
    result = getattr(F, op)(*(np.asarray(a, np.float64) for a in args), backend="numpy", **kw)
    if isinstance(result, tuple):
        return tuple(np.asarray(r).astype(dtype) for r in result)
    return result.astype(dtype)


def make_input(shape, dtype, seed=0, scale=3.0):
    """Seeded test data with both signs, away from the kink at 0 only by chance."""
    rng = np.random.default_rng([seed, *shape])
    return (rng.standard_normal(shape) * scale).astype(dtype)


def views(x):
    """Non-contiguous views of x (a transpose, a strided slice), when x allows them."""
    out = []
    if x.ndim >= 2 and x.shape[0] > 1 and x.shape[1] > 1:
        out.append(("transposed", x.T))
    if x.ndim >= 1 and x.shape[0] > 2:
        out.append(("every-other", x[::2]))
    return out


def conv_data(case, dtype, seed=0):
    """``x, W, b, stride, pad`` for a convolution case ``(N, C, H, W, F, KH, KW, s, p)``,
    standard normal values (shared by the cpu and cuda convolution tests)."""
    N, C, H, Wd, Fo, KH, KW, s, p = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, Wd)).astype(dtype)
    W = rng.standard_normal((Fo, C, KH, KW)).astype(dtype)
    b = rng.standard_normal(Fo).astype(dtype)
    return x, W, b, s, p
