"""Backend resolution: argument > context manager > NNLIB_BACKEND > "cpu"; no fallback."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import nnlib
import nnlib.functional as F
from nnlib._backend import BackendUnavailableError, backend_problem, dispatch, resolve_backend

CUDA_MISSING = backend_problem("cuda") is not None


def test_default_is_cpu(monkeypatch):
    monkeypatch.delenv("NNLIB_BACKEND", raising=False)
    assert nnlib.get_backend() == "cpu"


def test_resolution_order(monkeypatch):
    monkeypatch.setenv("NNLIB_BACKEND", "numpy")
    assert resolve_backend() == "numpy"  # environment beats the default
    with nnlib.use_backend("cpu"):
        assert resolve_backend() == "cpu"  # context beats the environment
        assert resolve_backend("numpy") == "numpy"  # argument beats the context
        with nnlib.use_backend("numpy"):
            assert resolve_backend() == "numpy"  # the innermost context wins
        assert resolve_backend() == "cpu"  # and is undone on exit
    assert resolve_backend() == "numpy"


def test_context_is_restored_after_an_exception(monkeypatch):
    monkeypatch.delenv("NNLIB_BACKEND", raising=False)
    with pytest.raises(ZeroDivisionError), nnlib.use_backend("numpy"):
        1 / 0  # noqa: B018
    assert nnlib.get_backend() == "cpu"


def test_each_op_runs_on_the_backend_it_resolves_to(monkeypatch):
    calls = []
    real = dispatch("relu", "numpy")
    monkeypatch.setitem(
        nnlib._backend._REGISTRY["relu"], "numpy", lambda x: calls.append(1) or real(x)
    )
    with nnlib.use_backend("numpy"):
        F.relu(np.ones(3))
    F.relu(np.ones(3), backend="cpu")
    assert calls == [1]


@pytest.mark.parametrize("bad", ["gpu", "CPU", "", 3])
def test_unknown_backend_names_are_rejected(bad):
    with pytest.raises(ValueError, match="backend must be one of 'numpy', 'cpu', 'cuda'"):
        F.relu(np.ones(2), backend=bad)


def test_bad_environment_variable_names_the_variable(monkeypatch):
    monkeypatch.setenv("NNLIB_BACKEND", "tpu")
    with pytest.raises(ValueError, match=r"NNLIB_BACKEND must be one of .* got 'tpu'"):
        F.relu(np.ones(2))


@pytest.mark.skipif(not CUDA_MISSING, reason="the cuda backend is available here")
def test_unavailable_cuda_raises_and_never_falls_back(monkeypatch):
    with pytest.raises(BackendUnavailableError, match="cuda"):
        F.relu(np.ones(2), backend="cuda")
    with pytest.raises(BackendUnavailableError), nnlib.use_backend("cuda"):
        pass
    monkeypatch.setenv("NNLIB_BACKEND", "cuda")
    with pytest.raises(BackendUnavailableError, match=r"NUMBA_ENABLE_CUDASIM|numba-cuda"):
        F.sigmoid(np.ones(2))
    assert "cuda" not in nnlib.available_backends()


def test_missing_numba_cuda_says_how_to_install_it():
    """Run in a child process where importing numba_cuda fails, as after `pip install .`."""
    code = (
        "import sys; sys.modules['numba_cuda'] = None\n"
        "import numpy as np, nnlib\n"
        "try:\n"
        "    nnlib.functional.relu(np.ones(2), backend='cuda')\n"
        "except nnlib.BackendUnavailableError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "numba-cuda" in out.stdout and "pip install" in out.stdout


def test_available_backends_lists_the_reference_and_cpu():
    assert nnlib.available_backends()[:2] == ["numpy", "cpu"]


@pytest.mark.parametrize("simulator", ["0", "1"])
def test_info_command_reports_the_runtime(simulator):
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": simulator}
    out = subprocess.run(
        [sys.executable, "-m", "nnlib", "info"], capture_output=True, text=True, check=True, env=env
    ).stdout
    for needle in ("numpy", "numba", "threading layer", "threads:", "cuda", "backends:"):
        assert needle in out, needle
    if simulator == "1":
        assert "cuda device: the CUDA simulator" in out
