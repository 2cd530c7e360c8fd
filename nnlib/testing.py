"""Tolerances and comparisons shared by the tests, the benchmarks and the grader.

One table, with an absolute and a relative term per dtype: ``|got - want| <= atol +
rtol * |want|`` elementwise (the rule of ``numpy.testing.assert_allclose``).
"""

from __future__ import annotations

import numpy as np

# float32: the kernels and the reference may round in a different order (a sum over a
# row, exp evaluated by another libm); a few hundred ulps (eps32 = 1.2e-7) covers that.
# float64: eps64 = 2.2e-16; scipy's erfc and libm's erfc differ by a few ulps, and sums
# of thousands of terms by a few more: 1e-10 relative leaves room and still catches any
# wrong formula.
TOLERANCES: dict[np.dtype, tuple[float, float]] = {
    np.dtype(np.float32): (1e-6, 2e-5),  # (atol, rtol)
    np.dtype(np.float64): (1e-12, 1e-10),
}


def tolerance(dtype) -> tuple[float, float]:
    """``(atol, rtol)`` for comparing arrays of ``dtype``."""
    return TOLERANCES[np.dtype(dtype)]


def to_host(a) -> np.ndarray:
    """A NumPy array from a NumPy or GPU array."""
    return a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)


def assert_close(got, want, *, dtype=None, name: str = "result") -> None:
    """Assert ``got`` matches ``want`` within the tolerance of ``dtype``.

    On failure the message gives the shapes and dtypes, the max absolute and relative
    error and the worst element, expected vs got.
    """
    got, want = to_host(got), np.asarray(want)
    dtype = np.dtype(dtype if dtype is not None else want.dtype)
    if got.shape != want.shape:
        raise AssertionError(f"{name}: shape {got.shape}, expected {want.shape}")
    if got.dtype != want.dtype:
        raise AssertionError(f"{name}: dtype {got.dtype}, expected {want.dtype}")
    atol, rtol = tolerance(dtype)
    if got.size == 0:
        return
    bad = ~np.isclose(got, want, atol=atol, rtol=rtol, equal_nan=True)
    if bad.any():
        want64 = want.astype(np.float64)
        err = np.abs(got.astype(np.float64) - want64)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(err == 0, 0.0, err / np.abs(want64))  # inf where want is 0
        worst = np.unravel_index(np.argmax(np.where(bad, err, -1)), got.shape)
        raise AssertionError(
            f"{name}: {bad.sum()} of {got.size} elements differ beyond atol={atol}, "
            f"rtol={rtol}; max abs error {err.max():.3e}, max rel error {rel.max():.3e}; "
            f"worst at index {tuple(int(i) for i in worst)}: expected {want[worst]!r}, "
            f"got {got[worst]!r}"
        )
