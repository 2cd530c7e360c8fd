"""benchmarks/bench_cuda.py: it runs without a GPU (every row skipped, with the reason),
its validations pass under the CUDA simulator, its validator can fail, and its counters
see every kernel launch and every host/device copy, so that fit can be shown to make
none per step."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_cuda.py"


def _bench():
    if "bench_cuda" not in sys.modules:  # NOTE: dataclasses look their module up there
        spec = importlib.util.spec_from_file_location("bench_cuda", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_cuda"] = module
        spec.loader.exec_module(module)
    return sys.modules["bench_cuda"]


def _run(tmp_path, *args, simulator):
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    else:
        env["CUDA_VISIBLE_DEVICES"] = ""  # NOTE: hides a GPU too, so the test is the same anywhere
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())["rows"], proc.stdout


def test_without_a_gpu_every_row_is_skipped_with_the_reason(tmp_path):
    rows, stdout = _run(tmp_path, "--quick", simulator=False)
    names = {r["name"] for r in rows}
    assert {"copy (kernel)", "relu", "softmax_cross_entropy", "matmul", "train_step"} <= names
    for r in rows:
        assert r["status"] == "skipped", r
        assert "no CUDA GPU available" in r["reason"], r
        assert r["reason"] in stdout


@pytest.mark.cuda
def test_every_validation_passes_under_the_simulator(tmp_path):
    rows, _ = _run(tmp_path, "--validate-only", simulator=True)
    for r in rows:
        assert r["status"] == "validated", r
    assert {"bias_relu_forward", "bias_relu_backward"} <= {r["name"] for r in rows}
    first = {"matmul (first version)", "softmax_cross_entropy (first version)"}
    assert first <= {r["name"] for r in rows}  # validated beside the tuned kernels
    assert any(r["name"] == "matmul" and r["size"] == "1x1x1" for r in rows)
    (step,) = [r for r in rows if r["name"] == "train_step"]
    assert step["extra"]["copies/step"] == 0  # the data and the accumulator live on the GPU
    assert step["extra"]["launches/step"] > 0


def test_the_validator_rejects_a_wrong_result():
    bench = _bench()
    rng = np.random.default_rng(0)
    want = rng.standard_normal((5, 7)).astype(np.float32)
    bench.check("same", want.copy(), want)
    wrong = want.copy()
    wrong[3, 4] += 1e-3  # far beyond float32's tolerance for numbers of size ~1
    with pytest.raises(AssertionError, match=r"\(3, 4\)"):
        bench.check("wrong", wrong, want)
    with pytest.raises(AssertionError, match="shape"):
        bench.check("transposed", want.T, want)
    # the matmul bound: the exact product passes, one perturbed element fails
    A = rng.standard_normal((17, 9)).astype(np.float32)
    B = rng.standard_normal((9, 5)).astype(np.float32)
    exact = A.astype(np.float64) @ B.astype(np.float64)
    bench.check("gemm", (A @ B), exact, bound=bench.gemm_bound(A, B))
    off = (A @ B).copy()
    off[16, 0] += 1e-2
    with pytest.raises(AssertionError, match=r"worst element \(16, 0\)"):
        bench.check("gemm", off, exact, bound=bench.gemm_bound(A, B))
    with pytest.raises(AssertionError, match="non-finite"):
        bench.check("gemm", np.full_like(off, np.nan), exact, bound=bench.gemm_bound(A, B))


@pytest.mark.cuda
@pytest.mark.parametrize("first", [False, True], ids=["tuned", "first version"])
def test_a_wrong_kernel_makes_its_row_invalid(monkeypatch, first):
    """The matmul row (and the first version's) with a gemm that computes
    op(A) @ op(B).T: the validation fails."""
    bench = _bench()
    from nnlib.ops import dense

    real = dense._gemm
    monkeypatch.setattr(
        dense, "_gemm", lambda A, B, ta, tb, *rest, **kw: real(A, B, ta, 1 - tb, *rest, **kw)
    )
    ctx = bench.Context(SimpleNamespace(validate_only=True, quick=True), "no peers")
    row = bench.Row("matmul (first version)" if first else "matmul", "5x5x5", "correct")

    def run():
        if first:
            bench.run_first_version(row, ctx, "matmul", (5, 5, 5))
        else:
            bench.run_matmul(row, ctx, 5, 5, 5)

    with pytest.raises(AssertionError, match="matmul"):
        run()
    monkeypatch.setattr(dense, "_gemm", real)
    run()
    assert row.status == "validated"


@pytest.mark.cuda
def test_the_counters_see_every_launch_and_every_copy():
    bench = _bench()
    from numba import cuda

    kernel = bench._copy_kernel()
    x = np.arange(8, dtype=np.float32)
    with bench.count_launches() as launches, bench.count_transfers() as copies:
        d_x = cuda.to_device(x)  # 1 to the device
        d_out = cuda.device_array(8, np.float32)
        d_out.copy_to_device(x)  # 2: from a host array
        kernel[1, 8](d_x, d_out)  # device arrays only: no copy
        host_out = np.empty(8, np.float32)
        kernel[1, 8](d_x, host_out)  # 3 and 1: an implicit copy in, and back out
        d_out.copy_to_host()  # 2 to the host
        d_x.copy_to_device(d_out)  # device to device: no host copy
    assert launches["launches"] == 2
    assert copies == {"to_device": 3, "to_host": 2}
    np.testing.assert_array_equal(host_out, x)


@pytest.mark.cuda
@pytest.mark.filterwarnings("ignore:.*overflow encountered in scalar:RuntimeWarning")
def test_fit_on_cuda_copies_nothing_per_step():
    """Doubling... quadrupling the steps of an epoch leaves every kind of host/device
    copy unchanged, implicit kernel-argument copies included, while the launches grow."""
    import nnlib as nl

    bench = _bench()
    X, y = nl.datasets.blobs(8, centers=3, dim=3, seed=0)
    seen = []
    for batch_size in (8, 2):  # 1 and 4 steps per epoch
        model = nl.Sequential(
            [nl.Dense(3, 5, init="he", activation="relu"), nl.Dropout(0.2), nl.Dense(5, 3)],
            seed=0,
        )
        with bench.count_launches() as launches, bench.count_transfers() as copies:
            model.fit(
                X,
                y,
                optimizer=nl.optim.Adam(lr=0.01),
                epochs=1,
                batch_size=batch_size,
                seed=0,
                verbose=0,
                backend="cuda",
            )
        seen.append((dict(copies), launches["launches"]))
    (copies_1, launches_1), (copies_4, launches_4) = seen
    assert copies_1 == copies_4, seen
    assert copies_1["to_device"] > 0 and copies_1["to_host"] > 0  # the copies of fit are seen
    assert launches_4 > launches_1
