"""Property checks report the counterexample Hypothesis shrank, and pass correct code."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st

from nncourse.checks import CheckFailed, expect_property


def test_a_true_property_passes():
    expect_property(lambda v: abs(v) >= 0, st.floats(-1e6, 1e6), "abs is non-negative")


def test_a_false_property_fails_with_the_shrunk_counterexample():
    with pytest.raises(CheckFailed, match=r"x < 10: fails for this input .*\n  10\b"):
        expect_property(lambda v: v < 10, st.integers(0, 10**6), "x < 10")


def test_an_exception_counts_as_a_failure_and_warnings_stay_quiet(recwarn):
    with pytest.raises(CheckFailed, match=r"(?s)finite exp: fails .*710"):
        expect_property(
            lambda v: np.isfinite(np.exp(np.float64(v))), st.integers(0, 2000), "finite exp"
        )
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
