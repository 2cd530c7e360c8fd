"""BatchNorm1d and the batch_norm ops: against the math (an independent float64 formula
and finite differences), the backends against each other, the running statistics,
training and evaluation modes, bad input, and the layer in fit, gradcheck, save/load.

The independent formulas: the forward pass per feature with Python's ``statistics``
module (exact sums), and the backward pass as cs231n's staged graph (the chain rule
through mean, variance, square root and inverse, one node at a time), not the compact
form the ops implement.
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest

import nnlib as nl
from nnlib import functional as F
from nnlib._backend import dispatch
from nnlib.gradient_check import check_vjp, numerical_gradient, relative_error
from nnlib.testing import assert_close

EPS = 1e-5
SHAPES = [(2, 1), (5, 7), (33, 17), (64, 70)]


def _rand(shape, seed, scale=3.0, offset=0.0, dtype=np.float64):
    rng = np.random.default_rng([seed, *shape])
    return (rng.standard_normal(shape) * scale + offset).astype(dtype)


def _params(d, seed=1, dtype=np.float64):
    rng = np.random.default_rng([seed, d])
    return (rng.uniform(0.5, 2.0, d).astype(dtype), rng.standard_normal(d).astype(dtype))


def math_forward(x, gamma, beta, eps=EPS):
    """y (N, D), the batch mean and the biased variance (D,), per feature from the
    definition, with exactly rounded sums (statistics.fmean / pvariance)."""
    x = np.asarray(x, np.float64)
    mean = np.array([statistics.fmean(col) for col in x.T])
    var = np.array([statistics.pvariance(col) for col in x.T])  # divided by N
    y = np.asarray(gamma, np.float64) * (x - mean) / np.sqrt(var + eps) + beta
    return y, mean, var


def math_backward(dy, x, gamma, eps=EPS):
    """cs231n's staged backward pass through y = gamma * (x - mu) / sqrt(var + eps) + beta."""
    x, dy, gamma = (np.asarray(a, np.float64) for a in (x, dy, gamma))
    n = x.shape[0]
    mu = x.sum(axis=0) / n
    xmu = x - mu
    var = (xmu**2).sum(axis=0) / n
    sqrtvar = np.sqrt(var + eps)
    ivar = 1 / sqrtvar
    xhat = xmu * ivar
    dbeta, dgamma = dy.sum(axis=0), (dy * xhat).sum(axis=0)
    dxhat = dy * gamma
    divar = (dxhat * xmu).sum(axis=0)
    dxmu = dxhat * ivar
    dsqrtvar = -divar / sqrtvar**2
    dvar = 0.5 * dsqrtvar / sqrtvar
    dxmu = dxmu + 2 * xmu * dvar / n  # through var = mean(xmu ** 2)
    dmu = -dxmu.sum(axis=0)
    return dxmu + dmu / n, dgamma, dbeta


def _host(a):
    return a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)


# ---------------------------------------------------------------------------- the math


def test_the_independent_formulas_can_fail():
    """The oracles detect the classic mistakes: the unbiased variance in the forward pass
    and the backward pass without the mean terms."""
    x, dy = _rand((6, 3), 0), _rand((6, 3), 1)
    gamma, beta = _params(3)
    y, _, _ = math_forward(x, gamma, beta)
    var_unbiased = x.var(axis=0, ddof=1)
    y_bad = gamma * (x - x.mean(axis=0)) / np.sqrt(var_unbiased + EPS) + beta
    assert relative_error(y_bad, y) > 1e-3
    dx, _, _ = math_backward(dy, x, gamma)
    dx_bad = dy * gamma / np.sqrt(x.var(axis=0) + EPS)  # the mean terms forgotten
    assert relative_error(dx_bad, dx) > 1e-2


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_and_backward_match_the_math(shape, dtype, backend):
    d = shape[1]
    x, dy = _rand(shape, 2, dtype=dtype), _rand(shape, 3, dtype=dtype)
    gamma, beta = _params(d, dtype=dtype)
    y_want, mean_want, var_want = math_forward(x, gamma, beta)
    rm, rv = np.zeros(d, dtype), np.ones(d, dtype)
    y, mean, inv_std = dispatch("batch_norm", backend)(x, gamma, beta, rm, rv, 0.1, EPS, 1)
    assert_close(y, y_want.astype(dtype), name="y")
    assert_close(mean, mean_want.astype(dtype), name="mean")
    assert_close(inv_std, (1 / np.sqrt(var_want + EPS)).astype(dtype), name="inv_std")
    dx, dgamma, dbeta = dispatch("batch_norm_backward", backend)(dy, x, gamma, mean, inv_std, 1)
    for name, got, want in zip(
        ("dx", "dgamma", "dbeta"), (dx, dgamma, dbeta), math_backward(dy, x, gamma), strict=True
    ):
        assert_close(got, want.astype(dtype), name=name)


def test_float32_keeps_its_digits_when_the_mean_is_large():
    """A mean 1000x the spread: the cpu kernel's two-pass variance in float64 sums stays
    within the float32 tolerance (E[x^2] - mean^2 in float32 would lose every digit; the
    float32 reference, whose sums are float32, is off by about 1e-3 here)."""
    x = _rand((256, 9), 4, scale=1.0, offset=1000.0, dtype=np.float32)
    gamma, beta = _params(9, dtype=np.float32)
    y, _, _ = dispatch("batch_norm", "cpu")(x, gamma, beta, None, None, 0.1, EPS, 1)
    y_want, _, _ = math_forward(x, gamma, beta)
    assert_close(y, y_want.astype(np.float32), name="y")


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_gradients_match_finite_differences(backend):
    """dx by check_vjp; dgamma and dbeta by central differences of sum(y * dy)."""
    x, dy = _rand((7, 4), 5), _rand((7, 4), 6)
    gamma, beta = _params(4)

    def fwd(z, g=gamma, b=beta):
        return F.batch_norm(z, g, b, backend=backend)

    def bwd(dy, z):
        return F.batch_norm_backward(dy, z, gamma, backend=backend)[0]

    result = check_vjp(fwd, bwd, x, seed=11)
    assert result.passed, result
    _, dgamma, dbeta = F.batch_norm_backward(dy, x, gamma, backend=backend)
    num_gamma = numerical_gradient(lambda g: float(np.sum(fwd(x, g=g) * dy)), gamma)
    num_beta = numerical_gradient(lambda b: float(np.sum(fwd(x, b=b) * dy)), beta)
    assert relative_error(dgamma, num_gamma) < 1e-7
    assert relative_error(dbeta, num_beta) < 1e-7


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_evaluation_mode_uses_the_running_statistics_and_its_gradient(backend):
    x, dy = _rand((5, 3), 7), _rand((5, 3), 8)
    gamma, beta = _params(3)
    rm, rv = np.array([0.5, -1.0, 2.0]), np.array([4.0, 0.25, 1.0])
    kept = rm.copy(), rv.copy()
    y = F.batch_norm(x, gamma, beta, running_mean=rm, running_var=rv, training=False)
    assert_close(y, gamma * (x - rm) / np.sqrt(rv + EPS) + beta, name="y")
    np.testing.assert_array_equal(rm, kept[0])
    np.testing.assert_array_equal(rv, kept[1])
    # the statistics are constants: dx = dy * gamma / sqrt(running_var + eps)
    args = {"running_mean": rm, "running_var": rv, "training": False, "backend": backend}
    dx, dgamma, dbeta = F.batch_norm_backward(dy, x, gamma, **args)
    assert_close(dx, dy * gamma / np.sqrt(rv + EPS), name="dx")
    assert_close(dgamma, (dy * (x - rm) / np.sqrt(rv + EPS)).sum(axis=0), name="dgamma")
    assert_close(dbeta, dy.sum(axis=0), name="dbeta")
    result = check_vjp(
        lambda z: F.batch_norm(z, gamma, beta, running_mean=rm, running_var=rv, training=False),
        lambda g, z: F.batch_norm_backward(g, z, gamma, **args)[0],
        x,
    )
    assert result.passed, result


# ---------------------------------------------------------------------------- running stats


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_running_statistics_over_several_steps(dtype, backend):
    """running = (1 - momentum) * running + momentum * stat, the variance unbiased."""
    d, momentum = 6, 0.3
    rm, rv = np.zeros(d, dtype), np.ones(d, dtype)
    want_m, want_v = np.zeros(d), np.ones(d)
    gamma, beta = _params(d, dtype=dtype)
    for step, n in enumerate((4, 9, 2, 5)):
        x = _rand((n, d), 10 + step, offset=step, dtype=dtype)
        F.batch_norm(
            x, gamma, beta, running_mean=rm, running_var=rv, momentum=momentum, backend=backend
        )
        cols = x.astype(np.float64).T
        want_m = (1 - momentum) * want_m + momentum * np.array([statistics.fmean(c) for c in cols])
        want_v = (1 - momentum) * want_v + momentum * np.array(
            [statistics.variance(c) for c in cols]
        )
        assert_close(rm, want_m.astype(dtype), name=f"running_mean, step {step}")
        assert_close(rv, want_v.astype(dtype), name=f"running_var, step {step}")


def test_the_layer_trains_on_batch_statistics_and_evaluates_on_running_ones():
    layer = nl.BatchNorm1d(momentum=0.5)
    layer.build(3, None, np.float64)
    x = _rand((8, 3), 12, offset=4.0)
    layer.training = True
    y_train = layer.forward(x)
    y_want, mean, _ = math_forward(x, np.ones(3), np.zeros(3))
    assert_close(y_train, y_want, name="training output")
    rm, rv = layer.buffers["running_mean"].copy(), layer.buffers["running_var"].copy()
    assert_close(rm, 0.5 * mean, name="running_mean")
    assert_close(rv, 0.5 + 0.5 * x.var(axis=0, ddof=1), name="running_var")
    layer.training = False
    y_eval = layer.forward(x)
    assert_close(y_eval, (x - rm) / np.sqrt(rv + EPS), name="evaluation output")
    assert np.abs(y_eval - y_train).max() > 0.1  # the running statistics are not the batch's
    np.testing.assert_array_equal(layer.buffers["running_mean"], rm)  # unchanged in eval
    np.testing.assert_array_equal(layer.buffers["running_var"], rv)
    one = layer.forward(x[:1])  # a single example is fine in evaluation
    assert_close(one, y_eval[:1], name="one example")


# ---------------------------------------------------------------------------- backends


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [1, 0])
def test_cpu_agrees_with_the_reference(training, dtype):
    """NOTE: the reference runs in float64 on the same inputs and is rounded to the dtype:
    the kernels sum in float64, so they are closer to the exact value than a float32
    NumPy reference (whose float32 sums over 513 rows are off by ~3e-5 relative)."""
    x, dy = _rand((513, 37), 13, dtype=dtype), _rand((513, 37), 14, dtype=dtype)
    gamma, beta = _params(37, dtype=dtype)
    out = {}
    for backend, t in (("numpy", np.float64), ("cpu", dtype)):
        a = [np.asarray(v, t) for v in (x, dy, gamma, beta)]
        rm, rv = np.full(37, 0.5, t), np.full(37, 2.0, t)
        fwd = dispatch("batch_norm", backend)(a[0], a[2], a[3], rm, rv, 0.1, EPS, training)
        bwd = dispatch("batch_norm_backward", backend)(a[1], a[0], a[2], *fwd[1:], training)
        out[backend] = (*fwd, rm, rv, *bwd)
    names = ("y", "mean", "inv_std", "running_mean", "running_var", "dx", "dgamma", "dbeta")
    for name, got, want in zip(names, out["cpu"], out["numpy"], strict=True):
        assert_close(got, np.asarray(want).astype(dtype), name=name)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_non_contiguous_input_and_inputs_not_modified(backend):
    base = _rand((10, 12), 15)
    gamma, beta = _params(6)
    for x in (base[::2, ::2], base[:, :6].T.copy().T, np.asfortranarray(base[:, 1:7])):
        kept = x.copy(), gamma.copy(), beta.copy()
        rm, rv = np.zeros(6), np.ones(6)
        y = F.batch_norm(x, gamma, beta, running_mean=rm, running_var=rv, backend=backend)
        assert_close(y, math_forward(np.ascontiguousarray(x), gamma, beta)[0], name="y")
        dy = _rand(x.shape, 16)
        dx, _, _ = F.batch_norm_backward(dy, x, gamma, backend=backend)
        assert_close(dx, math_backward(dy, x, gamma)[0], name="dx")
        for a, b in zip((x, gamma, beta), kept, strict=True):
            np.testing.assert_array_equal(a, b)


def _cuda_case(dtype):
    x, dy = _rand((5, 7), 17, dtype=dtype), _rand((5, 7), 18, dtype=dtype)
    gamma, beta = _params(7, dtype=dtype)
    return x, dy, gamma, beta


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_agrees_with_the_reference_on_the_gpu(dtype):
    """GPU arrays in, GPU arrays out; the running statistics updated where they live."""
    from numba import cuda

    x, dy, gamma, beta = _cuda_case(dtype)
    for training in (1, 0):
        rm, rv = np.full(7, 0.5, dtype), np.full(7, 2.0, dtype)
        want = dispatch("batch_norm", "numpy")(x, gamma, beta, rm, rv, 0.1, EPS, training)
        want_bwd = dispatch("batch_norm_backward", "numpy")(dy, x, gamma, *want[1:], training)
        d = [cuda.to_device(a) for a in (x, gamma, beta)]
        d_rm, d_rv = cuda.to_device(np.full(7, 0.5, dtype)), cuda.to_device(np.full(7, 2.0, dtype))
        got = dispatch("batch_norm", "cuda")(*d, d_rm, d_rv, 0.1, EPS, training)
        assert all(hasattr(a, "copy_to_host") for a in got), "GPU arrays give GPU arrays"
        got_bwd = dispatch("batch_norm_backward", "cuda")(
            cuda.to_device(dy), d[0], d[1], *got[1:], training
        )
        names = ("y", "mean", "inv_std", "dx", "dgamma", "dbeta")
        for name, g, w in zip(names, (*got, *got_bwd), (*want, *want_bwd), strict=True):
            assert_close(_host(g), w, name=f"{name} (training={training})")
        assert_close(d_rm.copy_to_host(), rm, name="running_mean")
        assert_close(d_rv.copy_to_host(), rv, name="running_var")


@pytest.mark.cuda
def test_cuda_functional_with_host_arrays_writes_the_running_statistics_back():
    x, dy, gamma, beta = _cuda_case(np.float32)
    rm, rv = np.zeros(7, np.float32), np.ones(7, np.float32)
    y = F.batch_norm(x, gamma, beta, running_mean=rm, running_var=rv, backend="cuda")
    assert isinstance(y, np.ndarray)
    y_want, mean, _ = math_forward(x, gamma, beta)
    assert_close(y, y_want.astype(np.float32), name="y")
    assert_close(rm, (0.1 * mean).astype(np.float32), name="running_mean")
    dx, _, _ = F.batch_norm_backward(dy, x, gamma, backend="cuda")
    assert_close(dx, math_backward(dy, x, gamma)[0].astype(np.float32), name="dx")


# ---------------------------------------------------------------------------- bad input


def test_a_training_batch_of_one_is_refused():
    x = np.ones((1, 3))
    gamma, beta = np.ones(3), np.zeros(3)
    with pytest.raises(ValueError, match=r"at least 2 examples.*got a batch of 1"):
        F.batch_norm(x, gamma, beta)
    layer = nl.BatchNorm1d(3)
    layer.build(3, None, np.float64)
    with pytest.raises(ValueError, match=r"at least 2 examples.*evaluation mode"):
        layer.forward(x)
    np.testing.assert_array_equal(layer.buffers["running_mean"], np.zeros(3))  # untouched
    model = nl.Sequential([nl.Dense(3, 4), nl.BatchNorm1d(), nl.Dense(4, 2)], seed=0)
    with pytest.raises(ValueError, match="at least 2 examples"):
        model.train_on_batch(np.ones((1, 3)), [0])


def test_fit_refuses_a_last_mini_batch_of_one_before_training():
    model = nl.Sequential([nl.Dense(3, 4), nl.BatchNorm1d(), nl.Dense(4, 2)], seed=0)
    before = {k: v.copy() for k, v in model.parameters().items()}
    X, y = _rand((33, 3), 19), np.arange(33) % 2
    with pytest.raises(ValueError, match=r"33 training examples and batch_size=16.*layers\[1\]"):
        model.fit(X, y, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="batch_size=1 "):
        model.fit(X, y, batch_size=1, verbose=0)
    for k, v in model.parameters().items():
        np.testing.assert_array_equal(v, before[k])  # nothing trained
    model.fit(X, y, batch_size=16, validation_split=0.1, verbose=0, seed=0)  # 30: 16 + 14


def test_wrong_features_dtype_shape_and_arguments_are_refused():
    with pytest.raises(ValueError, match="layers do not chain"):
        nl.Sequential([nl.Dense(3, 4), nl.BatchNorm1d(5), nl.Dense(4, 2)])
    with pytest.raises(
        ValueError, match=r"BatchNorm1d\(5.*expects 5 input features, but layers\[0\] outputs 4"
    ):
        nl.Sequential([nl.Dense(3, 4), nl.BatchNorm1d(5)], seed=0)
    layer = nl.BatchNorm1d(4)
    layer.build(4, None, np.float32)
    with pytest.raises(ValueError, match=r"shape \(N, 4\).*got \(6, 5\)"):
        layer.forward(np.ones((6, 5), np.float32))
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        layer.forward(np.ones(4, np.float32))
    with pytest.raises(TypeError, match="dtype float32; got float64"):
        layer.forward(np.ones((6, 4)))
    with pytest.raises(TypeError, match="must be an array"):
        layer.forward([[1.0] * 4] * 2)
    layer.forward(np.ones((6, 4), np.float32) * np.arange(6, dtype=np.float32)[:, None])
    with pytest.raises(ValueError, match=r"dy must have shape \(6, 4\)"):
        layer.backward(np.ones((6, 3), np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        nl.BatchNorm1d(2).backward(np.ones((2, 2)))
    for kwargs, err in [
        ({"num_features": 0}, ValueError),
        ({"num_features": 2.5}, ValueError),
        ({"momentum": 1.5}, ValueError),
        ({"momentum": "0.1"}, TypeError),
        ({"eps": 0.0}, ValueError),
        ({"eps": float("inf")}, ValueError),
    ]:
        with pytest.raises(err):
            nl.BatchNorm1d(**kwargs)
    x, g = np.ones((4, 3)), np.ones(3)
    for kwargs, err, match in [
        ({"gamma": np.ones(2)}, ValueError, r"gamma must have shape \(D,\) = \(3,\)"),
        ({"x": np.ones(3)}, ValueError, "x must be 2-D"),
        ({"running_mean": np.zeros(3)}, ValueError, "both running_mean and running_var"),
        (
            {"running_mean": np.zeros(3, np.float32), "running_var": np.ones(3, np.float32)},
            TypeError,
            "running_mean must have the dtype of x",
        ),
        ({"training": False}, ValueError, "evaluation mode.*running_mean"),
        ({"training": 1}, TypeError, "training must be True or False"),
        ({"momentum": -0.1}, ValueError, "momentum must be in"),
        ({"eps": -1.0}, ValueError, "eps must be > 0"),
    ]:
        args = {"x": x, "gamma": g, "beta": g, **kwargs}
        with pytest.raises(err, match=match):
            F.batch_norm(args.pop("x"), args.pop("gamma"), args.pop("beta"), **args)
    read_only = np.zeros(3)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        F.batch_norm(x, g, g, running_mean=read_only, running_var=np.ones(3))
    with pytest.raises(ValueError, match="dy must have the shape of x"):
        F.batch_norm_backward(np.ones((4, 2)), x, g)


# ---------------------------------------------------------------------------- in a model


def _bn_model(dtype=np.float32, seed=0):
    return nl.Sequential(
        [nl.Dense(4, 16), nl.BatchNorm1d(), nl.Tanh(), nl.Dense(16, 3)], seed=seed, dtype=dtype
    )


def test_a_model_with_batchnorm_trains_and_passes_gradcheck():
    X, y = nl.datasets.blobs(96, centers=3, dim=4, seed=0)
    model = _bn_model()
    history = model.fit(
        X, y, optimizer=nl.optim.SGD(lr=0.1), epochs=8, batch_size=16, seed=0, verbose=0
    )
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert model.evaluate(X, y)["accuracy"] > 0.9
    rm = model.buffers()["1.running_mean"]
    assert isinstance(rm, np.ndarray) and np.abs(rm).max() > 0  # updated, back on the host
    result = nl.gradcheck(model, X[:8], y[:8])
    assert result.passed, result
    assert "1.gamma" in result.errors and "1.beta" in result.errors


class _BatchNormWithoutMeanTerms(nl.BatchNorm1d):
    """A classic bug: the backward pass as if the statistics were constants."""

    def backward(self, dy):
        super().backward(dy)
        return dy * self.params["gamma"] * self.inv_std


def test_gradcheck_fails_on_a_batchnorm_without_the_mean_terms():
    X, y = nl.datasets.blobs(8, centers=3, dim=4, seed=1)
    layers = [nl.Dense(4, 6), _BatchNormWithoutMeanTerms(), nl.Tanh(), nl.Dense(6, 3)]
    result = nl.gradcheck(nl.Sequential(layers, seed=0), X, y)
    assert not result.passed
    assert result.errors["0.W"] > 1e-3 and result.errors["3.W"] < 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_load_round_trip_predicts_identically(tmp_path, dtype):
    X, y = nl.datasets.blobs(64, centers=3, dim=4, seed=2)
    model = _bn_model(dtype)
    model.fit(X, y, epochs=2, batch_size=16, seed=0, verbose=0)
    back = nl.load(model.save(tmp_path / "bn.npz"), backend="cpu")
    assert (
        repr(back.layers[1]) == repr(model.layers[1]) == "BatchNorm1d(16, momentum=0.1, eps=1e-05)"
    )
    for name, value in model.buffers().items():
        np.testing.assert_array_equal(back.buffers()[name], value)
        assert back.buffers()[name].dtype == dtype
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))
    cast = model.astype(np.float64)
    assert cast.buffers()["1.running_var"].dtype == np.float64
    np.testing.assert_allclose(cast.predict_proba(X), model.predict_proba(X), rtol=1e-4, atol=1e-6)


def test_momentum_and_eps_are_saved():
    layer = nl.BatchNorm1d(momentum=0.25, eps=1e-3)
    model = nl.Sequential([nl.Dense(2, 3), layer], seed=0)
    spec = model.get_config()["layers"][1]
    assert spec == {
        "class": "BatchNorm1d",
        "config": {"num_features": 3, "momentum": 0.25, "eps": 0.001},
    }
    assert model.parameter_shapes() == {"0.W": (2, 3), "0.b": (3,), "1.gamma": (3,), "1.beta": (3,)}


class _WhereBuffersLive(nl.callbacks.Callback):
    """Records, after every batch, whether each buffer of the model is a GPU array."""

    def __init__(self):
        self.seen = []

    def on_batch_end(self, batch, logs):
        self.seen.append([hasattr(v, "copy_to_host") for v in self.model.buffers().values()])


@pytest.mark.cuda
def test_fit_on_cuda_matches_the_reference_and_keeps_the_statistics_on_the_gpu(transfers):
    """The running statistics live on the GPU during fit and come back at its end; the
    copies between host and GPU are per fit and per epoch, never per step (twice the
    steps, the same count)."""
    X, y = nl.datasets.blobs(12, centers=3, dim=3, seed=0)
    counts = transfers
    runs, copies = {}, []
    for backend, batch_size in (("numpy", 6), ("cuda", 6), ("cuda", 3)):
        model = nl.Sequential([nl.Dense(3, 5), nl.BatchNorm1d(), nl.Tanh(), nl.Dense(5, 3)], seed=0)
        where = _WhereBuffersLive()
        for key in counts:
            counts[key] = 0
        history = model.fit(
            X,
            y,
            optimizer=nl.optim.SGD(lr=0.1),
            epochs=1,
            batch_size=batch_size,
            seed=0,
            verbose=0,
            backend=backend,
            callbacks=[where],
        )
        assert where.seen == [[backend == "cuda"] * 2] * (12 // batch_size)
        if backend == "cuda":
            copies.append(dict(counts))
        runs.setdefault(backend, (history, model))
    assert copies[0] == copies[1], copies
    assert copies[0]["to_device"] > 0  # the counter does see the copies of fit
    (h_ref, m_ref), (h, m) = runs["numpy"], runs["cuda"]
    np.testing.assert_allclose(h["loss"], h_ref["loss"], rtol=1e-4)
    for name, v in m_ref.buffers().items():
        assert isinstance(m.buffers()[name], np.ndarray), "buffers come back to the host"
        np.testing.assert_allclose(m.buffers()[name], v, rtol=1e-4, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(
        m.predict_proba(X, backend="cuda"), m_ref.predict_proba(X), rtol=1e-4, atol=1e-6
    )


def test_a_leading_batchnorm_gives_the_model_its_input_width():
    alone = nl.Sequential([nl.BatchNorm1d(3)], seed=0)
    assert alone.built and alone.input_features == 3
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    assert alone.forward(x, training=True).shape == (4, 3)
    with pytest.raises(ValueError, match=r"Dense\(4, 3.*expects 4 input features, but layers\[0\]"):
        nl.Sequential([nl.BatchNorm1d(5), nl.Dense(4, 3)])


@pytest.mark.parametrize("dtype", [np.float16, np.complex64, object, "U3"])
def test_every_array_argument_of_the_functional_ops_checks_its_dtype(dtype):
    x, g = np.ones((4, 3), np.float32), np.ones(3, np.float32)
    for op, names, args in [
        (F.batch_norm, ("x", "gamma", "beta"), [x, g, g]),
        (F.batch_norm_backward, ("dy", "x", "gamma"), [x, x, g]),
    ]:
        for i, name in enumerate(names):
            bad = list(args)
            bad[i] = np.zeros(args[i].shape, dtype)
            with pytest.raises(TypeError, match=f"^{name} must be a float32 or float64 array"):
                op(*bad, backend="cpu")
    with pytest.raises(TypeError, match="dy must have the dtype of x, float32; got float64"):
        F.batch_norm_backward(x.astype(np.float64), x, g, backend="cpu")
