"""The shared "every output element written" check gives its hint whatever the allocator
hands back: the planted defect leaves zeros (fresh memory), not the freed NaNs."""

from __future__ import annotations

import numpy as np
import pytest
from numba import prange

from nncourse.checks import CheckFailed
from nncourse.numba_checks import expect_every_element_written


def _relu(x):
    return np.maximum(x, 0.0)


def _make(seed):
    return (np.random.default_rng(seed).uniform(0.5, 2.0, 101),)  # every output > 0


@pytest.mark.parametrize(
    "skipped", [np.s_[-1:], np.s_[:1], np.s_[-3:]], ids=["last", "first", "last three"]
)
def test_an_unwritten_end_gets_the_hint_even_when_it_holds_zeros(skipped):
    calls = []

    def short_loop(x):
        # the first call's memory held garbage, the second's is fresh from the operating
        # system (zeros): neither the first call's values nor the freed NaNs come back
        calls.append(None)
        out = np.full_like(x, 7.0) if len(calls) == 1 else np.zeros_like(x)
        written = np.ones(x.size, bool)
        written[skipped] = False
        out[written] = _relu(x[written])
        return out

    with pytest.raises(CheckFailed, match="some output elements are never written"):
        expect_every_element_written(short_loop, _make, _relu, "short_loop(x)")


def test_a_wrong_value_in_the_middle_gets_no_such_hint():
    def wrong(x):
        out = _relu(x)
        out[50] = -x[50]  # a wrong formula at one element: the value follows the input
        return out

    with pytest.raises(CheckFailed) as err:
        expect_every_element_written(wrong, _make, _relu, "wrong(x)")
    assert "never written" not in str(err.value)


def test_a_correct_function_passes():
    expect_every_element_written(_relu, _make, _relu, "relu(x)")


def _columns_serial(dY):  # a plain range loop; each slice's .sum() Numba parallelizes
    out = np.empty(dY.shape[1])
    for j in range(dY.shape[1]):
        out[j] = dY[:, j].sum()
    return out


def _columns_prange(dY):
    out = np.empty(dY.shape[1])
    for j in prange(dY.shape[1]):
        out[j] = dY[:, j].sum()
    return out


def _maximum(x):  # an array expression: Numba parallelizes it, the learner wrote no loop
    return np.maximum(x, 0.0)


@pytest.mark.parametrize(
    "fn, want",
    [(_columns_serial, 0), (_columns_prange, 1), (_maximum, 0)],
    ids=["range loop of slice sums", "prange loop", "array expression"],
)
def test_only_the_learners_own_prange_loops_count(fn, want):
    from numba import njit

    from nncourse.learner import prange_loop_count

    sample = (np.ones((5, 3)),) if fn is not _maximum else (np.ones(5),)
    assert prange_loop_count(njit(fn), sample) == (want, None)
