"""The shared comparison helper: passes within the tolerance table, explains failures."""

from __future__ import annotations

import numpy as np
import pytest

from nnlib.testing import assert_close, tolerance


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_within_tolerance_passes_and_beyond_fails(dtype):
    atol, rtol = tolerance(dtype)
    want = np.array([0.0, 1.0, -3.0], dtype)
    assert_close(want + np.asarray(0.5 * atol, dtype), want)
    with pytest.raises(AssertionError, match=r"1 of 3 elements differ"):
        assert_close(want * np.array([1, 1, 1 + 10 * rtol], dtype), want)


def test_failure_message_names_the_worst_element():
    want = np.array([[0.0, 2.0], [4.0, 8.0]], np.float32)
    got = np.array([[1.0, 2.0], [4.0, 8.5]], np.float32)
    with pytest.raises(AssertionError) as info:
        assert_close(got, want, name="y")
    msg = str(info.value)
    assert "y: 2 of 4 elements differ" in msg
    assert "max abs error 1.000e+00" in msg and "max rel error inf" in msg
    assert "worst at index (0, 0): expected np.float32(0.0), got np.float32(1.0)" in msg


def test_shape_and_dtype_mismatches_are_reported():
    with pytest.raises(AssertionError, match=r"shape \(2,\), expected \(3,\)"):
        assert_close(np.zeros(2), np.zeros(3))
    with pytest.raises(AssertionError, match=r"dtype float32, expected float64"):
        assert_close(np.zeros(2, np.float32), np.zeros(2))
