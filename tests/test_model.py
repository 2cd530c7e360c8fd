"""Layers, losses, optimizers, initializers, fit and gradcheck, end to end.

Oracles: the NumPy reference backend (every layer on every backend), central
differences (gradcheck, which is shown to fail on a wrong gradient), and optimizer
steps computed by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnlib as nl
from nnlib.testing import assert_close

BACKENDS = ["numpy", "cpu"]  # the cuda backend of the layers comes with their CUDA kernels


def _every_layer_model(seed=0, dtype=np.float32):
    return nl.Sequential(
        [
            nl.Dense(4, 8, init="he"),
            nl.ReLU(),
            nl.Dense(8, 8, init="xavier_normal", activation="relu"),
            nl.PReLU(per_feature=True),
            nl.Dense(8, 7, init="lecun"),
            nl.LeakyReLU(0.1),
            nl.Dropout(0.3),
            nl.Dense(7, 6),
            nl.ELU(0.7),
            nl.Tanh(),
            nl.Sigmoid(),
            nl.Dense(6, 3),
            nl.Softmax(),
        ],
        seed=seed,
        dtype=dtype,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_layer_agrees_with_the_reference_backend(dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 4)).astype(dtype)
    dout = rng.standard_normal((16, 3)).astype(dtype)
    results = {}
    for backend in ("numpy", "cpu"):
        model = _every_layer_model(dtype=dtype)
        model._set_backend(backend)
        for layer in model.layers:
            if isinstance(layer, nl.Dropout):
                layer.frozen_u = np.random.default_rng(1).random((16, 7))
        out = model.forward(X, training=True)
        dx = model.backward(dout)
        results[backend] = (out, dx, model.gradients())
    (out_ref, dx_ref, g_ref), (out, dx, g) = results["numpy"], results["cpu"]
    tol = {"atol": 1e-5, "rtol": 1e-4} if dtype == np.float32 else {"atol": 1e-12, "rtol": 1e-9}
    np.testing.assert_allclose(out, out_ref, **tol)
    np.testing.assert_allclose(dx, dx_ref, **tol)
    assert g.keys() == g_ref.keys() and "3.alpha" in g
    for name in g:
        assert g[name].dtype == np.dtype(dtype), name
        np.testing.assert_allclose(g[name], g_ref[name], err_msg=name, **tol)


def test_parameters_and_gradients_are_inspectable_by_name():
    model = nl.Sequential([nl.Dense(2, 3, seed=0), nl.PReLU(), nl.Dense(3, 1, seed=1)])
    assert list(model.parameters()) == ["0.W", "0.b", "1.alpha", "2.W", "2.b"]
    assert model.layers[0].params["W"].shape == (2, 3)
    assert model.layers[0].grads["b"].shape == (3,)
    assert model.parameters()["1.alpha"].shape == ()


# ---------------------------------------------------------------------------- gradcheck

MLPS = {
    "tanh-ce": (lambda: [nl.Dense(4, 5), nl.Tanh(), nl.Dense(5, 3)], "softmax_cross_entropy"),
    "relu-sigmoid-dropout-ce": (
        lambda: [
            nl.Dense(4, 6, init="he"),
            nl.ReLU(),
            nl.Dropout(0.4),
            nl.Dense(6, 6),
            nl.Sigmoid(),
            nl.Dense(6, 3),
        ],
        "softmax_cross_entropy",
    ),
    "fused-prelu-elu-leaky-logits": (
        lambda: [
            nl.Dense(4, 5, activation="relu"),
            nl.PReLU(per_feature=True),
            nl.Dense(5, 4),
            nl.ELU(),
            nl.Dense(4, 4),
            nl.LeakyReLU(0.2),
            nl.Dense(4, 1),
        ],
        "bce_with_logits",
    ),
    "sigmoid-bce": (lambda: [nl.Dense(4, 3), nl.Tanh(), nl.Dense(3, 1), nl.Sigmoid()], "bce"),
    "deep-tanh-mse": (
        lambda: [
            nl.Dense(4, 4),
            nl.Tanh(),
            nl.Dense(4, 4),
            nl.Tanh(),
            nl.Dense(4, 4),
            nl.Tanh(),
            nl.Dense(4, 2),
        ],
        "mse",
    ),
    "softmax-layer-mse": (lambda: [nl.Dense(4, 3), nl.Softmax()], "mse"),
}


def _targets(loss, n, k, rng):
    if loss == "softmax_cross_entropy":
        return rng.integers(0, k, n)
    if loss in ("bce", "bce_with_logits"):
        return rng.integers(0, 2, n)
    return rng.standard_normal((n, k))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", MLPS)
def test_gradcheck_passes_on_mlps(name, backend):
    layers, loss = MLPS[name]
    model = nl.Sequential(layers(), seed=3)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((6, 4))
    y = _targets(loss, 6, model.output_features, rng)
    result = nl.gradcheck(model, X, y, loss=loss, backend=backend)
    assert result.passed, str(result)
    assert result.max_error < 1e-6
    assert set(result.errors) == set(model.parameters())
    assert "PASS" in str(result)
    assert model.parameters()["0.W"].dtype == np.float32  # the model itself is untouched


class _ReLUWithoutMask(nl.ReLU):
    """A classic bug: the backward pass forgets the derivative of the ReLU."""

    def backward(self, dy):
        return dy


class _TanhWrongDerivative(nl.Tanh):
    """Another: d tanh = 1 - tanh^2 written as 1 - x^2."""

    def backward(self, dy):
        return dy * (1 - self.x**2)


@pytest.mark.parametrize("bad", [_ReLUWithoutMask, _TanhWrongDerivative])
def test_gradcheck_fails_on_a_wrong_gradient(bad):
    model = nl.Sequential([nl.Dense(3, 6, init="normal"), bad(), nl.Dense(6, 2)], seed=0)
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((8, 3)) * 2, rng.integers(0, 2, 8)
    result = nl.gradcheck(model, X, y, loss="softmax_cross_entropy", backend="numpy")
    assert not result.passed
    assert result.errors["0.W"] > 1e-3  # the layer below the bug gets a wrong gradient
    assert result.errors["2.W"] < 1e-6  # the layer above it is still right
    assert "FAIL" in str(result)


# ---------------------------------------------------------------------------- optimizers


def _run(opt, steps, p0=1.0, g=2.0, backend="numpy"):
    p = np.array([p0])
    opt.backend = backend
    opt.bind({"w": p}, {"w": np.array([g])})
    trajectory = []
    for _ in range(steps):
        opt.step()
        trajectory.append(float(p[0]))
    return trajectory


@pytest.mark.parametrize("backend", BACKENDS)
def test_optimizer_steps_match_hand_computed_ones(backend):
    # constant gradient g = 2 on a parameter starting at p = 1
    approx = lambda v: pytest.approx(v, rel=1e-9, abs=1e-12)  # noqa: E731
    assert _run(nl.optim.SGD(lr=0.1), 3, backend=backend) == approx([0.8, 0.6, 0.4])
    # momentum 0.9: buffers 2, 3.8, 5.42; steps 0.2, 0.38, 0.542
    assert _run(nl.optim.SGD(lr=0.1, momentum=0.9), 3, backend=backend) == approx(
        [0.8, 0.42, -0.122]
    )
    # Nesterov: buffers 2, 3.8; step directions 2 + 0.9 * 2 = 3.8 and 2 + 0.9 * 3.8 = 5.42
    assert _run(nl.optim.SGD(lr=0.1, momentum=0.9, nesterov=True), 2, backend=backend) == approx(
        [0.62, 0.078]
    )
    # L2 decay: g = 2 + 0.1 * 1 = 2.1
    assert _run(nl.optim.SGD(lr=0.1, weight_decay=0.1), 1, backend=backend) == approx([0.79])
    # Adam with a constant gradient: m_hat = g and v_hat = g^2 exactly, so every step is
    # lr * g / (|g| + eps)
    step = 0.1 * 2 / (2 + 1e-8)
    assert _run(nl.optim.Adam(lr=0.1), 3, backend=backend) == approx(
        [1 - step, 1 - 2 * step, 1 - 3 * step]
    )
    # Adam's L2 decay changes the gradient, not the step size (for one step): 1 - step
    assert _run(nl.optim.Adam(lr=0.1, weight_decay=0.5), 1, backend=backend) == approx(
        [1 - 0.1 * 3 / (3 + 1e-8)]
    )
    # AdamW: first p *= 1 - lr * wd = 0.99, then the Adam step
    assert _run(nl.optim.AdamW(lr=0.1, weight_decay=0.1), 1, backend=backend) == approx(
        [0.99 - step]
    )
    # RMSprop: s = 0.01 * 4 = 0.04, p = 1 - 0.01 * 2 / (0.2 + eps)
    assert _run(nl.optim.RMSprop(lr=0.01), 1, backend=backend) == approx([1 - 0.02 / (0.2 + 1e-8)])
    # RMSprop with momentum 0.5: b1 = g / d1, b2 = 0.5 b1 + g / d2
    d1, d2 = math.sqrt(0.04) + 1e-8, math.sqrt(0.99 * 0.04 + 0.04) + 1e-8
    b1, b2 = 2 / d1, 0.5 * 2 / d1 + 2 / d2
    assert _run(nl.optim.RMSprop(lr=0.01, momentum=0.5), 2, backend=backend) == approx(
        [1 - 0.01 * b1, 1 - 0.01 * b1 - 0.01 * b2]
    )


def test_optimizer_state_can_be_saved_and_restored():
    X, y = nl.datasets.blobs(64, centers=3, seed=0)

    def fresh():
        return nl.Sequential([nl.Dense(2, 8), nl.ReLU(), nl.Dense(8, 3)], seed=0)

    kw = {"epochs": 2, "batch_size": 16, "verbose": 0, "shuffle": False}
    model, opt = fresh(), nl.optim.Adam(lr=0.01)
    model.fit(X, y, optimizer=opt, **kw)
    saved_params = {k: v.copy() for k, v in model.parameters().items()}
    saved_state = opt.state_dict()
    model.fit(X, y, optimizer=opt, **kw)
    final = {k: v.copy() for k, v in model.parameters().items()}
    # restore both, into a new model and a new optimizer, and redo the second fit
    model2, opt2 = fresh(), nl.optim.Adam(lr=0.5)
    model2.set_parameters(saved_params)
    opt2.load_state_dict(saved_state)
    assert opt2.lr == 0.01 and opt2.t == 2 * 4
    model2.fit(X, y, optimizer=opt2, **kw)
    for k in final:
        np.testing.assert_array_equal(model2.parameters()[k], final[k], err_msg=k)
    # and the saved state is a copy, not a view of the live one
    assert not np.array_equal(saved_state["state"]["0.W"]["exp_avg"], opt.state["0.W"]["exp_avg"])


def test_learning_rate_schedules():
    assert [nl.optim.StepLR(2, 0.5)(e, 1.0) for e in range(5)] == [1, 1, 0.5, 0.5, 0.25]
    assert [nl.optim.ExponentialLR(0.5)(e, 2.0) for e in range(3)] == [2, 1, 0.5]
    cos = [nl.optim.CosineAnnealingLR(4, eta_min=0.1)(e, 1.0) for e in range(5)]
    want = [0.1 + 0.9 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(5)]
    assert cos == pytest.approx(want) and cos[0] == 1.0 and cos[4] == pytest.approx(0.1)
    X, y = nl.datasets.xor(40, seed=0)
    model = nl.Sequential([nl.Dense(2, 4), nl.Tanh(), nl.Dense(4, 2)], seed=0)
    history = model.fit(
        X,
        y,
        optimizer=nl.optim.SGD(lr=0.4),
        epochs=5,
        verbose=0,
        callbacks=[nl.callbacks.LearningRateScheduler(nl.optim.StepLR(2, 0.5))],
    )
    assert history["lr"] == pytest.approx([0.4, 0.4, 0.2, 0.2, 0.1])


# ---------------------------------------------------------------------------- initializers


@pytest.mark.parametrize(
    ("name", "std"),
    [
        ("xavier_uniform", math.sqrt(2 / (400 + 300))),
        ("xavier_normal", math.sqrt(2 / (400 + 300))),
        ("he_uniform", math.sqrt(2 / 400)),
        ("he_normal", math.sqrt(2 / 400)),
        ("lecun_normal", math.sqrt(1 / 400)),
        ("lecun_uniform", math.sqrt(1 / 400)),
    ],
)
def test_initializer_scale(name, std):
    w = nl.init.get(name)((400, 300), seed=0)
    assert w.dtype == np.float32 and w.shape == (400, 300)
    assert w.std() == pytest.approx(std, rel=0.02)
    assert abs(w.mean()) < 0.01 * std * 10
    np.testing.assert_array_equal(w, nl.init.get(name)((400, 300), seed=0))  # seeded


def test_initializer_options():
    assert nl.init.he_normal((400, 100), mode="fan_out", seed=1).std() == pytest.approx(
        math.sqrt(2 / 100), rel=0.02
    )
    assert nl.init.xavier_uniform((300, 300), gain=nl.init.gain("tanh"), seed=1).std() == (
        pytest.approx(5 / 3 * math.sqrt(1 / 300), rel=0.02)
    )
    assert nl.init.gain("relu") == pytest.approx(math.sqrt(2))
    assert nl.init.gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    np.testing.assert_array_equal(nl.init.constant((2, 2), 3.0), np.full((2, 2), 3.0))
    np.testing.assert_array_equal(nl.init.zeros((3,)), np.zeros(3))
    gen = np.random.default_rng(5)
    a, b = nl.init.normal((3,), seed=gen), nl.init.normal((3,), seed=gen)
    assert not np.array_equal(a, b)  # a Generator is advanced, not reset
    u = nl.init.uniform((1000,), -2, 3, seed=0)
    assert u.min() >= -2 and u.max() < 3


# ---------------------------------------------------------------------------- training


def _moons_model():
    return nl.Sequential(
        [nl.Dense(2, 32, init="he"), nl.ReLU(), nl.Dropout(0.1), nl.Dense(32, 2)], seed=0
    )


def test_numpy_and_cpu_backends_train_alike_from_one_seed():
    X, y = nl.datasets.moons(200, noise=0.2, seed=1)
    runs = {}
    for backend in BACKENDS:
        model = _moons_model()
        history = model.fit(
            X,
            y,
            optimizer=nl.optim.Adam(lr=1e-2),
            epochs=3,
            batch_size=16,
            validation_split=0.25,
            seed=7,
            verbose=0,
            backend=backend,
        )
        runs[backend] = history, model.parameters()
    (h_ref, p_ref), (h, p) = runs["numpy"], runs["cpu"]
    for key in ("loss", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(h[key], h_ref[key], rtol=1e-4, err_msg=key)
    for name in p:
        np.testing.assert_allclose(p[name], p_ref[name], rtol=1e-3, atol=1e-5, err_msg=name)


def test_the_readme_example_runs_and_learns_the_moons():
    X, y = nl.datasets.moons(n=1000, noise=0.2, seed=0)
    model = nl.Sequential(
        [
            nl.Dense(2, 64, init="he"),
            nl.ReLU(),
            nl.Dropout(0.1),
            nl.Dense(64, 2, init="xavier"),
        ]
    )
    history = model.fit(
        X,
        y,
        loss="softmax_cross_entropy",
        optimizer=nl.optim.Adam(lr=1e-2),
        epochs=50,
        batch_size=32,
        validation_split=0.2,
        seed=0,
        callbacks=[nl.callbacks.EarlyStopping(patience=5, restore_best=True)],
        backend="cpu",
        verbose=0,
    )
    assert isinstance(history, nl.callbacks.History)
    result = model.evaluate(X, y)
    assert set(result) == {"loss", "accuracy"}
    assert result["accuracy"] > 0.95 and result["loss"] < 0.2
    assert history["val_loss"][0] > min(history["val_loss"])  # it learned


def test_an_mlp_learns_two_moons_to_97_percent_on_held_out_data():
    X, y = nl.datasets.moons(1000, noise=0.1, seed=0)
    X_test, y_test = nl.datasets.moons(1000, noise=0.1, seed=1)
    model = nl.Sequential(
        [
            nl.Dense(2, 32, init="he", activation="relu"),
            nl.Dense(32, 32),
            nl.Tanh(),
            nl.Dense(32, 2),
        ],
        seed=0,
    )
    model.fit(X, y, optimizer=nl.optim.Adam(lr=1e-2), epochs=30, batch_size=32, seed=0, verbose=0)
    accuracy = float(np.mean(model.predict(X_test) == y_test))
    assert accuracy >= 0.97, accuracy
    proba = model.predict_proba(X_test)
    assert proba.shape == (1000, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert model.evaluate(X_test, y_test)["accuracy"] == pytest.approx(accuracy)


@pytest.mark.parametrize(
    ("loss", "y_kind", "out"),
    [
        ("softmax_cross_entropy", "onehot", 2),
        ("bce_with_logits", "labels", 1),
        ("bce", "labels", 1),
    ],
)
def test_fit_with_other_losses_and_target_forms(loss, y_kind, out):
    X, y = nl.datasets.xor(400, noise=0.1, seed=0)
    targets = np.eye(2)[y] if y_kind == "onehot" else y
    layers = [nl.Dense(2, 16, init="he"), nl.ReLU(), nl.Dense(16, out)]
    if loss == "bce":
        layers.append(nl.Sigmoid())
    model = nl.Sequential(layers, seed=0)
    history = model.fit(
        X, targets, loss=loss, optimizer=nl.optim.Adam(lr=0.02), epochs=20, verbose=0, seed=0
    )
    assert history["accuracy"][-1] > 0.95
    assert np.mean(model.predict(X) == y) > 0.95


def test_regression_on_the_noisy_sine():
    X, y = nl.datasets.sine(256, noise=0.05, seed=0)
    model = nl.Sequential([nl.Dense(1, 32), nl.Tanh(), nl.Dense(32, 1)], seed=0)
    history = model.fit(
        X, y, loss="mse", optimizer=nl.optim.Adam(lr=0.01), epochs=60, batch_size=32, verbose=0
    )
    assert history["loss"][-1] < 0.02 < history["loss"][0]
    assert "accuracy" not in history.history
    assert model.predict(X).shape == (256, 1)


def test_batch_size_one_and_full_batch_and_sum_reduction():
    X, y = nl.datasets.blobs(30, centers=2, seed=0)
    for batch_size in (1, 30, 1000):
        model = nl.Sequential([nl.Dense(2, 2)], seed=0)
        history = model.fit(
            X, y, optimizer=nl.optim.SGD(lr=0.01), epochs=2, batch_size=batch_size, verbose=0
        )
        assert len(history["loss"]) == 2
    # sum reduction = mean reduction with the learning rate multiplied by N (plain SGD)
    params = []
    for reduction, lr in (("mean", 0.3), ("sum", 0.01)):
        model = nl.Sequential([nl.Dense(2, 2)], seed=0)
        model.fit(
            X,
            y,
            optimizer=nl.optim.SGD(lr=lr),
            epochs=1,
            batch_size=30,
            reduction=reduction,
            verbose=0,
        )
        params.append(model.parameters()["0.W"].copy())
    np.testing.assert_allclose(params[0], params[1], rtol=1e-5)


def test_early_stopping_restores_the_best_weights():
    X, y = nl.datasets.moons(200, noise=0.3, seed=0)
    model = nl.Sequential([nl.Dense(2, 64), nl.ReLU(), nl.Dense(64, 2)], seed=0)
    stop = nl.callbacks.EarlyStopping(patience=2, restore_best=True)
    history = model.fit(
        X,
        y,
        optimizer=nl.optim.SGD(lr=2.0),  # far too large: the validation loss soon rises
        epochs=40,
        validation_split=0.3,
        seed=0,
        verbose=0,
        callbacks=[stop],
    )
    assert len(history.epoch) < 40 and stop.stopped_epoch == history.epoch[-1]
    best = int(np.argmin(history["val_loss"]))
    assert stop.best_epoch == best and len(history.epoch) == best + 2 + 1  # patience 2
    # re-evaluate the held-out part: the restored weights give the best validation loss
    rng = np.random.default_rng(0)
    perm = rng.permutation(200)
    val = np.sort(perm[:60])
    assert model.evaluate(X[val], y[val])["loss"] == pytest.approx(min(history["val_loss"]))


def test_validation_data_history_and_csv_logger(tmp_path):
    X, y = nl.datasets.circles(120, seed=0)
    Xv, yv = nl.datasets.circles(60, seed=1)
    model = nl.Sequential([nl.Dense(2, 8), nl.Tanh(), nl.Dense(8, 2)], seed=0)
    path = tmp_path / "log.csv"
    history = model.fit(
        X,
        y,
        validation_data=(Xv, yv),
        epochs=3,
        verbose=0,
        callbacks=[nl.callbacks.CSVLogger(path)],
    )
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,loss,accuracy,val_loss,val_accuracy,lr" and len(lines) == 4


def test_diagnostics_report_every_layer():
    X, y = nl.datasets.spirals(150, seed=0)
    model = nl.Sequential(
        [
            nl.Dense(2, 16, init="he"),
            nl.ReLU(),
            nl.Dense(16, 16, activation="relu"),
            nl.Dense(16, 3),
        ],
        seed=0,
    )
    diag = nl.callbacks.Diagnostics()
    model.fit(X, y, optimizer=nl.optim.SGD(lr=0.1), epochs=2, verbose=0, callbacks=[diag])
    assert len(diag.records) == 2 * 4
    last = [r for r in diag.records if r["epoch"] == 1]
    relu, dense_relu, dense = last[1], last[2], last[3]
    assert 0 <= relu["dead_fraction"] <= 1 and 0 <= dense_relu["dead_fraction"] <= 1
    assert math.isnan(dense["dead_fraction"])
    assert dense["grad_norm"] > 0 and 0 < dense["update_ratio"] < 1
    assert math.isnan(relu["grad_norm"]) and relu["act_mean"] >= 0
    assert "update_ratio" in diag.table()
    # a dead ReLU layer is reported as dead
    dead = nl.Sequential([nl.Dense(2, 4, bias_init="zeros"), nl.ReLU(), nl.Dense(4, 3)], seed=0)
    dead.layers[0].params["b"][:] = -100.0
    diag = nl.callbacks.Diagnostics()
    dead.fit(X, y, optimizer=nl.optim.SGD(lr=0.1), epochs=1, verbose=0, callbacks=[diag])
    assert diag.records[1]["dead_fraction"] == 1.0


def test_progress_bar_is_shown_with_verbose_and_not_without(capsys):
    X, y = nl.datasets.xor(20, seed=0)
    model = nl.Sequential([nl.Dense(2, 2)], seed=0)
    model.fit(X, y, epochs=2, verbose=0)
    assert capsys.readouterr().err == ""
    model.fit(X, y, epochs=2, verbose=1)
    assert "epoch" in capsys.readouterr().err


def test_datasets_are_seeded_float32_and_int():
    for make in (nl.datasets.moons, nl.datasets.circles, nl.datasets.xor, nl.datasets.spirals):
        X, y = make(101, seed=3)
        assert X.dtype == np.float32 and X.shape == (101, 2)
        assert y.dtype == np.int64 and y.shape == (101,)
        np.testing.assert_array_equal(X, make(101, seed=3)[0])
    X, y = nl.datasets.blobs(50, centers=4, dim=3, seed=0)
    assert X.shape == (50, 3) and set(np.unique(y)) <= {0, 1, 2, 3}
    assert len(np.unique(nl.datasets.spirals(90, classes=3, seed=0)[1])) == 3


# ---------------------------------------------------------------------------- bad input


def _fitted():
    return nl.Sequential([nl.Dense(2, 4), nl.ReLU(), nl.Dense(4, 3)], seed=0)


X_OK = np.zeros((8, 2), np.float32)
Y_OK = np.zeros(8, int)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1; got 0"),
        ({"epochs": -1}, ValueError, "epochs must be an int >= 0; got -1"),
        ({"loss": "hinge"}, ValueError, r"loss must be one of \[.*'mse'.*got 'hinge'"),
        ({"y": np.array([0, 1, 2, 3] * 2)}, ValueError, r"labels must be in \[0, 3\)"),
        ({"y": np.full(8, 1.0)}, TypeError, "integer class labels.*float64"),
        ({"y": np.zeros(7, int)}, ValueError, "same length"),
        ({"y": np.ones((8, 3))}, ValueError, "one-hot"),
        ({"X": np.zeros((8, 5))}, ValueError, r"2 features.*\(8, 5\)"),
        ({"X": np.array([["a", "b"]] * 8)}, TypeError, "X must be an array of numbers"),
        ({"X": np.zeros(8)}, ValueError, r"X must be 2-D rows \(N, D\) or 4-D images"),
        ({"X": np.where(np.eye(8, 2), np.nan, 0)}, ValueError, r"NaN or inf .*\(0, 0\)"),
        ({"optimizer": "adam"}, TypeError, "optimizer must be an nnlib.optim optimizer"),
        ({"validation_split": 1.0}, ValueError, r"validation_split must be in \[0, 1\)"),
        ({"loss": "bce"}, ValueError, "1 output"),
        ({"loss": "mse"}, ValueError, r"y must have shape \(N, 3\)"),
    ],
)
def test_fit_rejects_bad_input_before_any_kernel_runs(kwargs, error, match):
    args = {"X": X_OK, "y": Y_OK, **kwargs}
    with pytest.raises(error, match=match):
        _fitted().fit(args.pop("X"), args.pop("y"), verbose=0, **args)


def test_layers_that_do_not_chain_are_rejected():
    with pytest.raises(ValueError, match=r"layers\[2\] Dense\(5, 2.*expects 5 .*layers\[0\].*4"):
        nl.Sequential([nl.Dense(3, 4), nl.ReLU(), nl.Dense(5, 2)])


def test_a_model_used_before_it_is_built_says_so():
    model = nl.Sequential([nl.Dense(4), nl.ReLU(), nl.Dense(2)])
    for use in (model.parameters, lambda: model.predict(X_OK)):
        with pytest.raises(nl.NotBuiltError, match="not built"):
            use()
    model.build(2, seed=0)
    assert model.predict_proba is not None and model.parameters()["0.W"].shape == (2, 4)
    with pytest.raises(ValueError, match="evaluate: pass loss"):
        model.evaluate(X_OK, Y_OK)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: nl.Dense(2, 3, init="glorious"), r"init must be one of \[.*'he'"),
        (lambda: nl.Dense(0, 3), "in_features must be a positive int"),
        (lambda: nl.Dense(2, 3, activation="tanh"), "activation must be one of"),
        (lambda: nl.Dropout(1.0), r"p must be a number in \[0, 1\)"),
        (lambda: nl.optim.Adam(lr=-1), "lr must be > 0"),
        (lambda: nl.optim.SGD(nesterov=True), "nesterov=True needs momentum"),
        (lambda: nl.losses.get("mse", reduction="max"), "reduction must be 'mean' or 'sum'"),
        (lambda: nl.init.he_normal((3, 2), mode="fan_middle"), "mode must be 'fan_in'"),
        (lambda: nl.init.normal((2,), seed="x"), "seed must be an int"),
    ],
)
def test_bad_arguments_are_named(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_dense_rejects_a_wrong_input_shape_or_dtype():
    dense = nl.Dense(3, 2, seed=0)
    with pytest.raises(ValueError, match=r"input must have shape \(N, 3\); got \(4, 2\)"):
        dense.forward(np.zeros((4, 2), np.float32))
    with pytest.raises(TypeError, match="input must have dtype float32; got float64"):
        dense.forward(np.zeros((4, 3)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_takes_non_contiguous_input(backend):
    dense = nl.Dense(3, 2, seed=0)
    dense.backend = backend
    x = np.arange(24, dtype=np.float32).reshape(8, 3)
    y = dense.forward(x[::2])  # a strided view
    np.testing.assert_allclose(y, x[::2] @ dense.params["W"], rtol=1e-6)
    dx = dense.backward(np.ones((8, 2), np.float32)[::2])
    np.testing.assert_allclose(dx, np.ones((4, 2)) @ dense.params["W"].T, rtol=1e-6)


def test_dropout_is_inverted_and_off_in_evaluation():
    layer = nl.Dropout(0.25, seed=0)
    layer.backend = "cpu"
    x = np.ones((200, 50), np.float32)
    y = layer.forward(x)
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    assert y.mean() == pytest.approx(1.0, abs=0.03)  # the expectation is kept
    np.testing.assert_array_equal(layer.backward(x), y)  # same mask
    layer.training = False
    assert layer.forward(x) is x


def test_loss_values_by_hand():
    z = np.array([[0.0, 0.0], [1000.0, 0.0]])
    ce = nl.losses.get("softmax_cross_entropy")
    ce.backend = "cpu"
    assert ce(z, np.array([0, 1])) == pytest.approx((math.log(2) + 1000) / 2)
    np.testing.assert_allclose(ce.backward(), [[-0.25, 0.25], [0.5, -0.5]])
    mse = nl.losses.get("mse", reduction="sum")
    assert mse(np.array([[1.0], [3.0]]), np.array([[0.0], [1.0]])) == 5.0
    bce = nl.losses.get("bce_with_logits")
    assert bce(np.array([[0.0]]), np.array([[1.0]])) == pytest.approx(math.log(2))
    assert bce(np.array([[-800.0]]), np.array([[1.0]])) == pytest.approx(800.0)


# ---------------------------------------------------------------------------- PyTorch


def _torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed; the torch oracle is off")


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "mse", "bce", "bce_with_logits"])
def test_losses_and_gradients_match_pytorch(loss):
    torch = _torch()
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 3 if loss != "bce" else 1))
    if loss == "softmax_cross_entropy":
        y = rng.integers(0, 3, 6)
        fn = lambda a, b: torch.nn.functional.cross_entropy(a, b)  # noqa: E731
    elif loss == "mse":
        y = rng.standard_normal((6, 3))
        fn = torch.nn.functional.mse_loss
    elif loss == "bce":
        z = 1 / (1 + np.exp(-z))
        y = rng.uniform(0, 1, (6, 1))
        fn = torch.nn.functional.binary_cross_entropy
    else:
        y = rng.uniform(0, 1, (6, 3))
        fn = torch.nn.functional.binary_cross_entropy_with_logits
    for backend in BACKENDS:
        ours = nl.losses.get(loss)
        ours.backend = backend
        value = ours(z, y)
        zt = torch.tensor(z, requires_grad=True)
        want = fn(zt, torch.tensor(y))
        want.backward()
        assert value == pytest.approx(want.item(), rel=1e-10)
        assert_close(ours.backward(), zt.grad.numpy())


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda: nl.optim.SGD(lr=0.05), lambda p: __import__("torch").optim.SGD(p, lr=0.05)),
        (
            lambda: nl.optim.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
            lambda p: __import__("torch").optim.SGD(
                p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01
            ),
        ),
        (
            lambda: nl.optim.RMSprop(lr=0.01, momentum=0.5, weight_decay=0.01),
            lambda p: __import__("torch").optim.RMSprop(
                p, lr=0.01, momentum=0.5, weight_decay=0.01
            ),
        ),
        (
            lambda: nl.optim.Adam(lr=0.01, weight_decay=0.01),
            lambda p: __import__("torch").optim.Adam(p, lr=0.01, weight_decay=0.01),
        ),
        (
            lambda: nl.optim.AdamW(lr=0.01, weight_decay=0.1),
            lambda p: __import__("torch").optim.AdamW(p, lr=0.01, weight_decay=0.1),
        ),
    ],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_50_step_optimizer_trajectories_match_pytorch(ours, theirs, backend):
    torch = _torch()
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 5))
    w0 = rng.standard_normal(5)
    # a quadratic bowl f(w) = |A w|^2 / 2, gradient A^T A w
    w = w0.copy()
    opt = ours()
    opt.backend = backend
    grad = np.zeros(5)
    opt.bind({"w": w}, {"w": grad})
    wt = torch.tensor(w0, requires_grad=True)
    topt = theirs([wt])
    At = torch.tensor(A)
    for _ in range(50):
        grad[...] = A.T @ A @ w
        opt.step()
        topt.zero_grad()
        (0.5 * (At @ wt).pow(2).sum()).backward()
        topt.step()
        np.testing.assert_allclose(w, wt.detach().numpy(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------- threads


def _mlp(seed=0):
    return nl.Sequential(
        [nl.Dense(5, 16, init="he", activation="relu"), nl.PReLU(), nl.Dense(16, 3)], seed=seed
    )


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_train_on_batch_equals_fit_steps_on_the_same_batches(backend, optimizer):
    make = {
        "adam": lambda: nl.optim.AdamW(lr=1e-2, weight_decay=0.1),
        "sgd": lambda: nl.optim.SGD(lr=0.1, momentum=0.9, nesterov=True),
        "rmsprop": lambda: nl.optim.RMSprop(lr=1e-2, momentum=0.5),
    }[optimizer]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    fitted, stepped = _mlp(), _mlp()
    opt_fit, opt_step = make(), make()
    for i in range(4):
        xb, yb = X[10 * i : 10 * i + 10], y[10 * i : 10 * i + 10]
        h = fitted.fit(
            xb, yb, optimizer=opt_fit, batch_size=10, shuffle=False, verbose=0, backend=backend
        )
        loss = stepped.train_on_batch(xb, yb, optimizer=opt_step, backend=backend)
        assert loss == pytest.approx(h.history["loss"][0], rel=1e-6)
    for name, p in fitted.parameters().items():
        np.testing.assert_array_equal(stepped.parameters()[name], p, err_msg=name)
        np.testing.assert_array_equal(stepped.gradients()[name], fitted.gradients()[name])
    assert opt_step.t == opt_fit.t == 4
    for name, state in opt_fit.state_dict()["state"].items():
        for s, a in state.items():
            np.testing.assert_array_equal(opt_step.state_dict()["state"][name][s], a)


def test_train_on_batch_keeps_a_default_optimizer_and_follows_replaced_parameters():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8, 5)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    model, twin = _mlp(), _mlp()
    opt = nl.optim.Adam(lr=1e-3)
    for _ in range(2):
        model.train_on_batch(X, y)  # one default Adam, kept between calls
        twin.train_on_batch(X, y, optimizer=opt)
    assert model._train_plan.optimizer.t == 2
    # parameters replaced behind the step's back (as a load or astype does) are followed
    new_w = np.ones((5, 16), np.float32)
    for m in (model, twin):
        m.layers[0].params["W"] = new_w.copy()
        m.train_on_batch(X, y, optimizer=None if m is model else opt)
    for name, p in twin.parameters().items():
        np.testing.assert_array_equal(model.parameters()[name], p, err_msg=name)
    assert not np.array_equal(model.parameters()["0.W"], new_w)  # it was trained


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((np.zeros((4, 4), np.float32), [0, 1, 2, 0]), ValueError, "5 features|got shape"),
        ((np.zeros((4, 5), np.float32), [0, 1, 2]), ValueError, "N targets|same length"),
        ((np.full((4, 5), np.nan), [0, 1, 2, 0]), ValueError, "NaN"),
        ((np.zeros((4, 5), np.float32), [0, 1, 2, 3]), ValueError, "labels must be in"),
    ],
)
def test_train_on_batch_checks_every_batch(args, error, match):
    model = _mlp()
    model.train_on_batch(np.zeros((4, 5), np.float32), [0, 1, 2, 0])
    before = {k: v.copy() for k, v in model.parameters().items()}
    with pytest.raises(error, match=match):
        model.train_on_batch(*args)
    for k, v in model.parameters().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(TypeError, match="optimizer must be"):
        model.train_on_batch(np.zeros((4, 5), np.float32), [0, 1, 2, 0], optimizer="adam")


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_without_the_input_gradient_gives_the_same_parameter_gradients(backend):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((6, 5)).astype(np.float32)
    dout = rng.standard_normal((6, 3)).astype(np.float32)
    grads = []
    for input_grad in (True, False):
        model = _mlp()
        model._set_backend(backend)
        model.forward(X, training=True)
        dx = model.backward(dout, input_grad=input_grad)
        assert (dx is None) == (not input_grad)
        grads.append({k: np.array(v) for k, v in model.gradients().items()})
    for name, g in grads[0].items():
        np.testing.assert_array_equal(grads[1][name], g, err_msg=name)


@pytest.mark.parametrize(
    ("var", "given", "expected"),
    [
        ("OMP_WAIT_POLICY", None, "PASSIVE"),
        ("OMP_WAIT_POLICY", "ACTIVE", "ACTIVE"),
        ("OPENBLAS_THREAD_TIMEOUT", None, "4"),
        ("OPENBLAS_THREAD_TIMEOUT", "28", "28"),
    ],
)
def test_importing_nnlib_makes_idle_openmp_threads_sleep_unless_told_otherwise(
    var, given, expected
):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != var}
    if given is not None:
        env[var] = given
    code = f"import os, nnlib; print(os.environ['{var}'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected
