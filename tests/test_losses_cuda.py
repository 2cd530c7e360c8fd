"""The fused softmax cross-entropy CUDA kernel (``softmax_cross_entropy_cuda`` in
nnlib/ops/losses.py) against the NumPy reference, at the shapes where its mapping of
rows to lanes could go wrong.

The kernel gives each row a group of ``ce_lanes(C)`` lanes (the power of two >= C, at
most a warp), packs several rows into a block and loops over the rows with a grid
stride; the lanes combine their max, sum and first argmax with warp shuffles, and each
block adds its loss and correct count to ``acc`` once. So: C = 1 (one lane, no
shuffle), C = 10 (16 lanes, two rows a warp), C just below, at and above a warp, N not
a multiple of the rows a block, N = 1, more rows than the grid covers, ties for the
maximum (np.argmax takes the first), logits of +-1e4 and masked (-inf) logits.

Under Numba's CUDA simulator a "warp" is 8 lanes wide (small blocks keep it fast); one
test runs the GPU's 32-lane warps by setting the module's constants. Its compilation to
PTX for an H100 (float32 and float64) is checked in tests/test_kernels.py.

The first version (``softmax_cross_entropy_first_cuda``: one thread a row, the CPU's row
loop) is run by the same checks (``version="first"``), but for those about the tuned
kernel's mapping of rows to lanes and blocks.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SIMULATOR

import nnlib.functional  # noqa: F401  (registers every kernel)
from nnlib._backend import dispatch
from nnlib._validate import is_device_array
from nnlib.ops import losses
from nnlib.ops._launch import first_version
from nnlib.testing import assert_close, to_host

pytestmark = pytest.mark.cuda

DTYPES = [pytest.param(np.float32, id="f32"), pytest.param(np.float64, id="f64")]
LOSS_RTOL = {np.float32: 1e-5, np.float64: 1e-10}
VERSIONS = ["tuned", "first"]

# (N, C): C around the group widths (1, 2^k, a warp of 8 under the simulator, 32 on a
# GPU); N = 1, and N that leave the last block part empty.
SHAPES = [(1, 1), (13, 1), (1, 10), (7, 3), (9, 10), (5, 8), (6, 9), (5, 31), (4, 32), (5, 33)]
SHAPES += [(3, 100)] if SIMULATOR else [(37, 100), (1000, 10), (300, 1000), (8192, 10)]


def _check(z, labels, scale=0.5, acc0=(1.5, 2.0), device=True, version="tuned"):
    """Run the cuda op (the tuned kernel, or the first version) and the float64
    reference; compare the loss sum, the count and the gradient. Returns the host
    gradient."""
    from numba import cuda

    dtype = z.dtype.type
    want_acc, got_acc = np.array(acc0, np.float64), np.array(acc0, np.float64)
    want = dispatch("softmax_cross_entropy", "numpy")(z.astype(np.float64), labels, scale, want_acc)
    if version == "first":
        op = first_version("softmax_cross_entropy")
    else:
        op = dispatch("softmax_cross_entropy", "cuda")
    if device:
        acc_d = cuda.to_device(got_acc)
        got = op(cuda.to_device(z), cuda.to_device(labels), scale, acc_d)
        assert is_device_array(got), "GPU arrays in, but the gradient came back to the host"
        got_acc = acc_d.copy_to_host()
    else:
        got = op(z, labels, scale, got_acc)
        assert isinstance(got, np.ndarray), "host arrays in, but the gradient stayed on the GPU"
    got = to_host(got)
    assert np.isfinite(got_acc).all() and np.isfinite(got).all()
    np.testing.assert_allclose(got_acc[0], want_acc[0], rtol=LOSS_RTOL[dtype], err_msg="loss sum")
    assert got_acc[1] == want_acc[1], f"correct count {got_acc[1]}, expected {want_acc[1]}"
    assert_close(got, want.astype(dtype), name="grad")
    return got


def _logits(shape, dtype, seed=0):
    rng = np.random.default_rng([seed, *shape])
    z = (rng.standard_normal(shape) * 3).astype(dtype)
    return z, rng.integers(0, shape[1], shape[0])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference(shape, dtype, version):
    z, labels = _logits(shape, dtype)
    z[:, 0] += 2.0  # some rows predicted right, so the count is exercised
    labels[::2] = 0
    _check(z, labels, version=version)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 1), (9, 10), (8, 33)], ids=str)
def test_host_arrays_in_host_arrays_out(shape, dtype, version):
    z, labels = _logits(shape, dtype, seed=1)
    _check(z, labels, scale=1.0, acc0=(0.0, 0.0), device=False, version=version)


@pytest.mark.parametrize("c", [1, 10, 33])
def test_more_rows_than_the_grid(c, monkeypatch):
    """A grid of 2 blocks: the grid-stride loop makes several trips, the last one
    partly past the end of the batch."""
    monkeypatch.setattr(losses, "CE_MAX_BLOCKS", 2)
    rows_per_block = losses.CE_THREADS // losses.ce_lanes(c)
    z, labels = _logits((5 * rows_per_block + 3, c), np.float32, seed=2)
    _check(z, labels)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [3, 10, 33, 70])
def test_ties_take_the_first_maximum(c, dtype, version):
    """Small integer logits tie often, within a lane, across lanes and across the
    kernel's 4-wide chunks; np.argmax's rule (the first maximum) decides the count."""
    rng = np.random.default_rng(c)
    z = rng.integers(-1, 2, (12, c)).astype(dtype)
    z[0] = 1  # all equal: the argmax is column 0
    z[1, -1] = 5  # the maximum only in the last column
    z[2] = 0
    z[2, [0, -1]] = 3  # column 0 and the last tie
    z[3] = 0
    z[3, [c // 2, c - 1]] = 3  # two tied maxima past column 0
    labels = np.argmax(z, axis=1)
    labels[4:] = (labels[4:] + np.arange(8)) % c  # right for some rows, wrong for others
    if c > 1:  # a label on a later tied column is wrong: argmax takes the first
        labels[2], labels[3] = c - 1, c - 1
    _check(z, labels, version=version)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [2, 10, 33])
def test_huge_logits_stay_finite(c, dtype, version):
    rng = np.random.default_rng(5)
    z = (rng.choice([-1e4, 1e4], (9, c)) + rng.standard_normal((9, c))).astype(dtype)
    z[0] = 1e4  # a row of ties at the top
    labels = rng.integers(0, c, 9)
    _check(z, labels, version=version)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [3, 10, 33])
def test_masked_logits(c, dtype, version):
    """-inf logits (masked classes) count as probability 0, also when a lane sees only
    -inf, or column 0 (where every lane starts) is -inf."""
    z, labels = _logits((8, c), dtype, seed=3)
    z[:, 0] = -np.inf
    z[1, 1:-1] = -np.inf  # only the last column is finite
    z[2, : c // 2] = -np.inf
    labels[:] = c - 1
    _check(z, labels, version=version)


@pytest.mark.skipif(not SIMULATOR, reason="a GPU runs 32-lane warps already")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 1), (9, 10), (3, 33), (2, 100)], ids=str)
def test_gpu_warp_width_under_the_simulator(shape, dtype, monkeypatch):
    """The GPU's configuration (32-lane warps, 2 warps a block here): shuffles at
    offsets 16 and 8, 16-lane groups for C = 10, a block sum over 2 warps."""
    monkeypatch.setattr(losses, "CE_WARP", 32)
    monkeypatch.setattr(losses, "CE_THREADS", 64)
    monkeypatch.setattr(losses, "CE_WARPS", 2)
    monkeypatch.setattr(losses, "CE_MAX_BLOCKS", 2)
    z, labels = _logits(shape, dtype, seed=4)
    z[:, 0] += 2.0
    labels[::2] = 0
    _check(z, labels)


def test_launch_configuration():
    """ce_lanes: a row's group of lanes is the power of two >= C, at most a warp."""
    warp = losses.CE_WARP
    assert [losses.ce_lanes(c) for c in (1, 2, 3, 5)] == [1, 2, 4, min(8, warp)]
    assert losses.ce_lanes(10) == min(16, warp)
    assert losses.ce_lanes(1000) == warp
    assert losses.CE_THREADS % warp == 0 and losses.CE_WARPS == losses.CE_THREADS // warp
