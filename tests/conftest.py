"""Shared fixtures and the rules for CUDA tests.

Tests marked ``cuda`` launch CUDA kernels. They run on a real GPU, or under Numba's CUDA
simulator when ``NUMBA_ENABLE_CUDASIM=1`` is set before numba is imported (``make test``
runs them so, in a second pytest process). Anywhere else they are skipped, and the skip
says why.

``make test`` runs the kernel and model tests a third time with ``NNLIB_DEBUG_KERNELS=1``
(every cpu kernel serial and bounds-checked, see :mod:`nnlib.ops._launch`); the few
tests about the normal build itself are skipped there. Hypothesis runs under the
``nnlib`` profile below: derandomized (the same examples on every run), no deadline.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from nnlib._backend import backend_problem
from nnlib.ops._launch import DEBUG_KERNELS

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"

# Derandomized, so a failure is the same on every machine and every run; no deadline,
# because the first example of a property may compile kernels. Each property sets its own
# max_examples (the suite's time budget is in tests/test_properties.py).
settings.register_profile(
    "nnlib",
    derandomize=True,
    deadline=None,
    max_examples=25,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("NNLIB_HYPOTHESIS_PROFILE", "nnlib"))

# Tests of the normal (parallel, cached) build of the cpu kernels: the debug build is
# neither, on purpose.
NORMAL_BUILD_ONLY = ("test_kernels.py::test_cpu_kernel_is_parallel_nopython_and_cached",)


def pytest_collection_modifyitems(config, items):
    if not DEBUG_KERNELS:
        return
    skip = pytest.mark.skip(
        reason="NNLIB_DEBUG_KERNELS=1 compiles the cpu kernels serially and uncached; "
        "this test checks the normal parallel, cached build"
    )
    for item in items:
        if item.nodeid.split("/")[-1].split("[")[0] in NORMAL_BUILD_ONLY:
            item.add_marker(skip)


def pytest_runtest_setup(item):
    if item.get_closest_marker("cuda") is not None:
        problem = backend_problem("cuda")
        if problem is not None:
            pytest.skip(f"cuda backend unavailable: {problem}")


def pytest_report_header(config):
    problem = backend_problem("cuda")
    where = "CUDA simulator" if SIMULATOR else "GPU"
    lines = [f"nnlib cuda backend: {'available (' + where + ')' if problem is None else problem}"]
    if DEBUG_KERNELS:
        lines.append("nnlib cpu kernels: debug build (serial, bounds-checked, uncached)")
    return lines


@pytest.fixture
def transfers(monkeypatch):
    """Counts of the host-to-device (``to_device``) and device-to-host (``to_host``)
    copies made during the test (CUDA tests: real GPU or simulator)."""
    from numba import cuda

    counts = {"to_device": 0, "to_host": 0}
    to_device = cuda.to_device
    device_array_type = type(cuda.device_array(1))
    copy_to_host = device_array_type.copy_to_host

    def counting_to_device(*a, **kw):
        counts["to_device"] += 1
        return to_device(*a, **kw)

    def counting_copy_to_host(self, *a, **kw):
        counts["to_host"] += 1
        return copy_to_host(self, *a, **kw)

    monkeypatch.setattr(cuda, "to_device", counting_to_device)
    monkeypatch.setattr(device_array_type, "copy_to_host", counting_copy_to_host)
    return counts
