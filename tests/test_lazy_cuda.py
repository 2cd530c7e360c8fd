"""``import nnlib`` imports no CUDA code until the cuda backend is asked for.

Each check runs in a fresh Python process: what a module has imported cannot be undone
in this one. The kernels are still defined beside their reference and cpu version; they
are made (``numba.cuda.jit``) when the backend loads (see nnlib/_cuda.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

CUDA_MODULES = textwrap.dedent(
    """
    import sys

    def cuda_modules():
        return sorted(
            n for n in sys.modules
            if n in ("numba_cuda", "numba.cuda")
            or n.startswith(("numba_cuda.", "numba.cuda."))
        )
    """
)


def _run(code, simulator=False):
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", CUDA_MODULES + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_import_and_a_cpu_training_step_import_no_cuda_code():
    out = _run(
        """
        import numpy as np
        import nnlib
        from nnlib._validate import is_device_array

        assert cuda_modules() == [], cuda_modules()
        X, y = nnlib.datasets.blobs(16, centers=3, dim=4, seed=0)
        model = nnlib.Sequential(
            [nnlib.Dense(4, 8, activation="relu"), nnlib.Dropout(0.1), nnlib.Dense(8, 3)],
            seed=0,
        )
        model.train_on_batch(X, y, optimizer=nnlib.optim.Adam(lr=0.01), backend="cpu")
        model.fit(X, y, optimizer=nnlib.optim.SGD(lr=0.1), epochs=1, batch_size=8, verbose=0)
        for backend in ("numpy", "cpu"):
            nnlib.functional.softmax(X, backend=backend)
            nnlib.functional.gelu_backward(X, X, backend=backend)
        assert not is_device_array(X)
        assert cuda_modules() == [], cuda_modules()
        print("clean")
        """
    )
    assert "clean" in out


def test_the_oracle_sees_numba_cuda():
    """The check above can fail: asking for the backend loads numba.cuda."""
    out = _run(
        """
        import nnlib
        from nnlib import _cuda

        nnlib.available_backends()
        print("installed" if _cuda.installed() else "not installed", len(cuda_modules()))
        """
    )
    state, count = out.split()
    assert (int(count) > 0) == (state == "installed"), out


@pytest.mark.parametrize(
    "ask",
    [
        "nnlib.functional.relu(np.ones(3), backend='cuda')",
        "nnlib.use_backend('cuda').__enter__()",
        "nnlib._backend.resolve_backend('cuda')",
        # touching a kernel (a launch of nnlib._arrays.zero_cuda) loads the backend too
        "zero_cuda[1, 4](A); assert (A == 0).all()",
    ],
    ids=["op", "use_backend", "resolve_backend", "kernel"],
)
def test_the_first_use_makes_every_kernel_under_the_simulator(ask):
    pytest.importorskip("numba_cuda")
    out = _run(
        f"""
        import numpy as np
        import nnlib
        from nnlib import _cuda
        from nnlib.ops import dense
        from nnlib.ops._launch import FIRST_VERSIONS, KERNELS

        assert not _cuda.loaded() and cuda_modules() == []
        assert all(isinstance(KERNELS[k], _cuda.Lazy) for k in KERNELS if k[1] == "cuda")
        from nnlib._arrays import zero_cuda

        A = np.ones(4)
        {ask}
        assert _cuda.loaded()
        kernels = {{**KERNELS, **FIRST_VERSIONS}}
        stand_ins = [k for k, v in kernels.items() if isinstance(v, _cuda.Lazy)]
        assert stand_ins == [], stand_ins
        assert not isinstance(dense.gemm_cuda, _cuda.Lazy)
        assert not isinstance(dense._load_strip, _cuda.Lazy)  # a device function
        assert dense.cuda is _cuda.cuda and dense.cuda.__name__ == "numba.cuda"
        print(nnlib.functional.sigmoid(np.zeros(2), backend="cuda"))
        """,
        simulator=True,
    )
    assert "[0.5 0.5]" in out
