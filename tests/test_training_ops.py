"""The training ops (dense, losses, optimizer updates, dropout) on every backend agree
with the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
from cases import DTYPES, SIMULATOR

from nnlib._backend import dispatch
from nnlib.testing import assert_close

BACKENDS = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]

# NOTE: a dot product of D float32 terms carries about D * eps32 of rounding relative to
# sum |terms|, and BLAS sums in another order than NumPy's reference; on top of the
# elementwise table this allows 1e-5 absolute (the inputs are O(1), D <= 70).
MATMUL_TOL = {np.float32: (1e-5, 1e-4), np.float64: (1e-12, 1e-10)}

DENSE_SHAPES = [(1, 1, 1), (5, 3, 4), (33, 17, 9), (64, 70, 10)]
if SIMULATOR:
    DENSE_SHAPES = [(1, 1, 1), (5, 3, 4), (9, 6, 5)]  # (9, 6, 5): several 4x4 tiles, ragged


def _close(got, want, dtype, tol=None, name="result"):
    got = got.copy_to_host() if hasattr(got, "copy_to_host") else np.asarray(got)
    if tol is None:
        assert_close(got, np.asarray(want).astype(dtype), name=name)
    else:
        atol, rtol = tol[dtype]
        np.testing.assert_allclose(got, want, atol=atol, rtol=rtol, err_msg=name)
        assert got.dtype == np.dtype(dtype), f"{name}: dtype {got.dtype}"


def _rand(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", [0, 1], ids=["identity", "relu"])
@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=str)
def test_dense_matches_reference(shape, act, dtype, backend):
    n, d, h = shape
    rng = np.random.default_rng([n, d, h, act])
    x, W, b = _rand(rng, (n, d), dtype), _rand(rng, (d, h), dtype), _rand(rng, (h,), dtype)
    dy = _rand(rng, (n, h), dtype)
    ref = lambda *a: dispatch("dense_forward", "numpy")(*(np.float64(0) + v for v in a), act)  # noqa: E731
    y_ref = ref(x, W, b)
    y = dispatch("dense_forward", backend)(x, W, b, act)
    _close(y, y_ref, dtype, MATMUL_TOL, "y")
    y_host = y_ref.astype(dtype)
    grads_ref = dispatch("dense_backward", "numpy")(
        dy.astype(np.float64), x.astype(np.float64), W.astype(np.float64), y_host, act
    )
    grads = dispatch("dense_backward", backend)(dy, x, W, y_host, act)
    for name, got, want in zip(("dx", "dW", "db"), grads, grads_ref, strict=False):
        _close(got, want, dtype, MATMUL_TOL, name)


@pytest.mark.parametrize("backend", ["numpy", *BACKENDS])
@pytest.mark.parametrize("act", [0, 1], ids=["identity", "relu"])
def test_dense_backward_without_dx_and_into_given_gradients(act, backend):
    """need_dx=0 skips dx (None) and leaves dW, db unchanged; grads_out are written in
    place and returned."""
    n, d, h = DENSE_SHAPES[-1]
    rng = np.random.default_rng(7)
    x, W = _rand(rng, (n, d), np.float32), _rand(rng, (d, h), np.float32)
    y = np.maximum(_rand(rng, (n, h), np.float32), 0)
    dy = _rand(rng, (n, h), np.float32)
    op = dispatch("dense_backward", backend)
    full = [np.asarray(getattr(a, "copy_to_host", lambda a=a: a)()) for a in op(dy, x, W, y, act)]
    gW, gb = np.full((d, h), np.nan, np.float32), np.full(h, np.nan, np.float32)
    dx, dW, db = op(dy, x, W, y, act, 0, (gW, gb))
    assert dx is None
    assert dW is gW and db is gb
    np.testing.assert_array_equal(gW, full[1])
    np.testing.assert_array_equal(gb, full[2])


LOSS_SHAPES = [(1, 1), (7, 3), (64, 10)] if not SIMULATOR else [(1, 1), (7, 3)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1.0, 0.25])
@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=str)
@pytest.mark.parametrize("op", ["softmax_cross_entropy", "mse", "bce", "bce_with_logits"])
def test_loss_matches_reference(op, shape, scale, dtype, backend):
    rng = np.random.default_rng(list(shape))
    z = _rand(rng, shape, dtype, 3.0)
    if op == "softmax_cross_entropy":
        z[0, 0] = 80.0  # a large logit: exp would overflow float32 without the max shift
        target = rng.integers(0, shape[1], shape[0])
    elif op == "bce":
        z = rng.uniform(0.01, 0.99, shape).astype(dtype)
        z.flat[0] = 0.0  # log(0): clamped at -100 like PyTorch
        target = rng.uniform(0, 1, shape).astype(dtype)
    else:
        target = _rand(rng, shape, dtype) if op == "mse" else rng.uniform(0, 1, shape)
        target = target.astype(dtype)
    want_acc, got_acc = np.array([1.5, 2.0]), np.array([1.5, 2.0])  # ops add to acc
    want_grad = dispatch(op, "numpy")(np.float64(0) + z, target, scale, want_acc)
    if backend == "cuda":
        from numba import cuda

        acc_d = cuda.to_device(got_acc)
        got_grad = dispatch(op, backend)(cuda.to_device(z), cuda.to_device(target), scale, acc_d)
        got_acc = acc_d.copy_to_host()
    else:
        got_grad = dispatch(op, backend)(z, target, scale, got_acc)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    assert np.isfinite(got_acc).all()
    np.testing.assert_allclose(got_acc[0], want_acc[0], rtol=rtol, err_msg=f"{op} total")
    assert got_acc[1] == want_acc[1], f"{op}: correct count"
    if op != "mse":
        assert want_acc[1] > 2.0 or shape[0] == 1  # the count is exercised
    _close(got_grad, want_grad, dtype, name=f"{op} grad")


def _opt_args(op, p):
    shape = p.shape
    rng = np.random.default_rng(7)
    state = [np.abs(rng.standard_normal(shape)).astype(p.dtype) for _ in range(2)]
    if op == "sgd_update":
        return [
            (state[:1], [0.1, 0.9, 0.0, 0.01, nesterov, first])
            for nesterov in (0, 1)
            for first in (0, 1)
        ] + [(state[:1], [0.1, 0.0, 0.0, 0.0, 0, 1]), (state[:1], [0.1, 0.5, 0.3, 0.0, 0, 0])]
    if op == "rmsprop_update":
        return [(state, [0.01, 0.99, 1e-8, wd, mom]) for wd in (0.0, 0.1) for mom in (0.0, 0.9)]
    return [
        (state, [1e-3, 0.9, 0.999, 1e-8, wd, decoupled, t])
        for wd in (0.0, 0.01)
        for decoupled in (0, 1)
        for t in (1, 10)
    ]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (3, 5), (257,)] if SIMULATOR else [(1,), (3, 5), (1000,)])
@pytest.mark.parametrize("op", ["sgd_update", "rmsprop_update", "adam_update"])
def test_optimizer_update_matches_reference(op, shape, dtype, backend):
    rng = np.random.default_rng(3)
    p0, g = _rand(rng, shape, dtype), _rand(rng, shape, dtype)
    for state, scalars in _opt_args(op, p0):
        p_ref, st_ref = p0.astype(np.float64), [s.astype(np.float64) for s in state]
        dispatch(op, "numpy")(p_ref, g.astype(np.float64), *st_ref, *scalars)
        p, st = p0.copy(), [s.copy() for s in state]
        if backend == "cuda":
            from numba import cuda

            p_d, g_d, st_d = cuda.to_device(p), cuda.to_device(g), [cuda.to_device(s) for s in st]
            dispatch(op, backend)(p_d, g_d, *st_d, *scalars)
            p, st = p_d.copy_to_host(), [s.copy_to_host() for s in st_d]
        else:
            dispatch(op, backend)(p, g, *st, *scalars)
        _close(p, p_ref, dtype, name=f"{op} {scalars} param")
        for i, (s, s_ref) in enumerate(zip(st, st_ref, strict=False)):
            _close(s, s_ref, dtype, name=f"{op} {scalars} state {i}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5])
def test_dropout_matches_reference(p, dtype, backend):
    rng = np.random.default_rng(11)
    x, dy = _rand(rng, (9, 31), dtype), _rand(rng, (9, 31), dtype)
    u = rng.random((9, 31))
    y_ref, mask_ref = dispatch("dropout", "numpy")(x, u, p)
    y, mask = dispatch("dropout", backend)(x, u, p)
    _close(y, y_ref, dtype, name="y")
    _close(mask, mask_ref, dtype, name="mask")
    np.testing.assert_array_equal(np.asarray(mask_ref) == 0, u < p)  # the reference: u < p drops
    _close(dispatch("dropout_backward", backend)(dy, mask_ref), dy * mask_ref, dtype, name="dx")


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_on_batch_then_fit_agree_with_the_reference(backend):
    """Sequential.train_on_batch (flat buffers on the host; the GPU path on cuda)
    followed by a fit trains like the NumPy reference."""
    import nnlib as nl

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((6, 3)).astype(np.float32), rng.integers(0, 2, 6)
    results = {}
    for b in ("numpy", backend):
        model = nl.Sequential([nl.Dense(3, 4, activation="relu"), nl.Dense(4, 2)], seed=0)
        opt = nl.optim.Adam(lr=1e-2)
        losses = [model.train_on_batch(X, y, optimizer=opt, backend=b) for _ in range(3)]
        model.fit(X, y, optimizer=opt, batch_size=6, shuffle=False, verbose=0, backend=b)
        results[b] = losses, {k: np.asarray(v) for k, v in model.parameters().items()}
    (ref_losses, ref), (losses, got) = results["numpy"], results[backend]
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    for name, p in ref.items():
        _close(got[name], p, np.float32, MATMUL_TOL, name)
