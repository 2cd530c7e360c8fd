"""Shared fixtures and the rules for CUDA tests.

Tests marked ``cuda`` launch CUDA kernels. They run on a real GPU, or under Numba's CUDA
simulator when ``NUMBA_ENABLE_CUDASIM=1`` is set before numba is imported (``make test``
runs them so, in a second pytest process). Anywhere else they are skipped, and the skip
says why.
"""

from __future__ import annotations

import os

import pytest

from nnlib._backend import backend_problem

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def pytest_runtest_setup(item):
    if item.get_closest_marker("cuda") is not None:
        problem = backend_problem("cuda")
        if problem is not None:
            pytest.skip(f"cuda backend unavailable: {problem}")


def pytest_report_header(config):
    problem = backend_problem("cuda")
    where = "CUDA simulator" if SIMULATOR else "GPU"
    return f"nnlib cuda backend: {'available (' + where + ')' if problem is None else problem}"
