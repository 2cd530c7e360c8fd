"""The public objects above the kernels check what they are given: losses called
directly, optimizers (bind, step, load_state_dict), layers' forward and backward, the
model's construction, evaluation and training loop. Each wrong input gives a Python
exception naming the argument; none reaches a kernel (where it could crash the
interpreter or corrupt memory)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import nnlib as nl


def _mlp(seed=0):
    return nl.Sequential([nl.Dense(4, 8, activation="relu"), nl.Dense(8, 3)], seed=seed)


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)).astype(np.float32), rng.integers(0, 3, n)


# ---------------------------------------------------------------------------- losses


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("labels", [[0, 1, 3], [0, -1, 2], [0, 1, 99]])
def test_softmax_cross_entropy_called_directly_refuses_labels_out_of_range(backend, labels):
    loss = nl.losses.SoftmaxCrossEntropy()
    loss.backend = backend
    out = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        loss(out, np.array(labels))


@pytest.mark.parametrize(
    ("out", "target", "error", "match"),
    [
        (np.zeros((3, 3), np.float32), np.array([0, 1]), ValueError, "3 rows"),
        (np.zeros(3, np.float32), np.array([0, 1, 2]), ValueError, "must be 2-D"),
        (np.zeros((3, 3), np.int64), np.array([0, 1, 2]), TypeError, "float32 or float64"),
        (np.zeros((3, 3), np.float32), np.array([0.0, 1.0, 2.0]), TypeError, "integer class"),
    ],
)
def test_a_loss_called_directly_names_what_is_wrong(out, target, error, match):
    with pytest.raises(error, match=match):
        nl.losses.SoftmaxCrossEntropy()(out, target)


def test_a_loss_called_directly_agrees_with_the_reference():
    rng = np.random.default_rng(0)
    out = rng.standard_normal((5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    shifted = out - out.max(axis=1, keepdims=True)
    expected = np.mean(np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(5), labels])
    for backend in ("numpy", "cpu"):
        loss = nl.losses.SoftmaxCrossEntropy()
        loss.backend = backend
        assert loss(out, labels) == pytest.approx(expected, rel=1e-12)
        assert loss(out, np.eye(4)[labels]) == pytest.approx(expected, rel=1e-12)  # one-hot


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_bce_refuses_outputs_that_are_not_probabilities(backend):
    loss = nl.losses.BCE()
    loss.backend = backend
    with pytest.raises(ValueError, match="bce_with_logits"):
        loss(np.array([[0.5], [1.7]], np.float32), np.array([0, 1]))
    assert loss(np.array([[0.5], [0.5]]), np.array([0, 1])) == pytest.approx(np.log(2))


# ---------------------------------------------------------------------------- optimizers


@pytest.mark.parametrize(
    ("params", "grads", "match"),
    [
        ({"w": np.zeros(3)}, {"w": np.zeros(4)}, r"shape and dtype of params\['w'\]"),
        ({"w": np.zeros(3)}, {"w": np.zeros(3, np.float32)}, "shape and dtype"),
        ({"w": np.zeros(3)}, {}, r"grads\['w'\] is missing"),
        ({"w": np.zeros((3, 4), order="F")}, {"w": np.zeros((3, 4))}, "C-contiguous"),
        ({"w": np.zeros((3, 4))[:, ::2]}, {"w": np.zeros((3, 2))}, "C-contiguous"),
        ({"w": np.zeros(3, np.int64)}, {"w": np.zeros(3, np.int64)}, "float32 or float64"),
    ],
)
def test_bind_refuses_what_the_update_could_not_take(params, grads, match):
    with pytest.raises((ValueError, TypeError), match=match):
        nl.optim.SGD(lr=0.1).bind(params, grads)


def test_a_parameter_replaced_after_bind_is_checked_at_step():
    p, g = np.zeros(3), np.ones(3)
    params, grads = {"w": p}, {"w": g}
    opt = nl.optim.SGD(lr=0.5).bind(params, grads)
    opt.step()
    np.testing.assert_array_equal(p, [-0.5, -0.5, -0.5])
    grads["w"] = np.ones(5)
    with pytest.raises(ValueError, match="shape and dtype"):
        opt.step()
    grads["w"] = 2 * np.ones(3)  # a replacement that fits is used
    opt.step()
    np.testing.assert_array_equal(p, [-1.5, -1.5, -1.5])


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: nl.optim.Adam(betas=0.9), "betas must be a pair"),
        (lambda: nl.optim.Adam(lr=-1), "lr must be > 0"),
        (lambda: nl.optim.SGD(lr=float("nan")), "lr must be finite"),
        (lambda: nl.optim.SGD(lr="0.1"), "lr must be a real number"),
    ],
)
def test_optimizer_arguments_are_checked(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()


@pytest.mark.parametrize(
    ("hyper", "match"),
    [
        ({"lr": -1.0}, "lr must be > 0"),
        ({"lr": "fast"}, "lr must be a real number"),
        ({"betas": (0.9,)}, "betas must be a pair"),
        ({"momentum": 0.9}, "no hyper-parameter"),
    ],
)
def test_load_state_dict_validates_hyper_parameters(hyper, match):
    X, y = _data()
    model, opt = _mlp(), nl.optim.Adam()
    model.train_on_batch(X, y, optimizer=opt, backend="cpu")
    state = opt.state_dict()
    state["hyper"] = {**state["hyper"], **hyper}
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(state)
    assert opt.lr == 1e-3


def test_a_restored_state_that_does_not_fit_the_model_is_an_error_not_a_reset():
    X, y = _data()
    other = nl.Sequential([nl.Dense(4, 5), nl.Dense(5, 3)], seed=0)
    saved = nl.optim.Adam()
    other.train_on_batch(X, y, optimizer=saved, backend="cpu")
    fresh = nl.optim.Adam()
    fresh.load_state_dict(saved.state_dict())  # not bound yet: kept for bind to check
    with pytest.raises(ValueError, match=r"restored state of '0\.W'"):
        _mlp().train_on_batch(X, y, optimizer=fresh, backend="cpu")


# ---------------------------------------------------------------------------- layers


@pytest.mark.parametrize(
    "layer",
    [nl.Dense(4, 3, seed=0), nl.ReLU(), nl.Tanh(), nl.Softmax(), nl.Dropout(0.5)],
    ids=lambda layer: type(layer).__name__,
)
def test_backward_before_forward_says_to_run_forward_first(layer):
    with pytest.raises(RuntimeError, match="before forward: run forward"):
        layer.backward(np.zeros((2, 3), np.float32))


def test_dense_backward_checks_dy():
    dense = nl.Dense(4, 3, seed=0)
    dense.forward(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3\)"):
        dense.backward(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="dy must have dtype float32"):
        dense.backward(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="dy must be an array"):
        dense.backward([[0.0] * 3] * 2)


def test_a_shorter_bias_cannot_be_put_into_a_dense_layer():
    dense = nl.Dense(4, 3, seed=0)
    with pytest.raises(ValueError, match=r"'b' must keep its shape \(3,\)"):
        dense.params["b"] = np.zeros(2, np.float32)
    x = np.ones((64, 4), np.float32)
    np.testing.assert_array_equal(dense.forward(x), x @ dense.params["W"])  # bias still 0


# ---------------------------------------------------------------------------- the model


def test_a_layer_used_twice_in_one_model_is_refused():
    relu = nl.ReLU()
    with pytest.raises(ValueError, match=r"layers\[3\] is the same ReLU\(\) object as layers\[1\]"):
        nl.Sequential([nl.Dense(4, 8), relu, nl.Dense(8, 8), relu])


def test_an_empty_model_is_refused_with_a_message():
    with pytest.raises(ValueError, match="at least one layer"):
        nl.Sequential([])


def test_a_model_without_dense_layers_takes_any_width():
    X = np.array([[-1.0, 2.0, 0.5]], np.float32)
    model = nl.Sequential([nl.ReLU()])
    np.testing.assert_array_equal(model.forward(X), [[0.0, 2.0, 0.5]])
    logs = model.evaluate(X, [1], loss="softmax_cross_entropy", backend="numpy")
    assert logs["accuracy"] == 1.0
    with pytest.raises(RuntimeError, match="no parameters"):  # nothing to train
        model.fit(X, [1], verbose=0, backend="numpy")


def test_evaluate_on_an_empty_set_says_so():
    model = _mlp()
    with pytest.raises(ValueError, match="X is empty"):
        model.evaluate(np.zeros((0, 4), np.float32), np.zeros(0, int), loss="cross_entropy")


# ---------------------------------------------------------------------------- training


def test_fit_stops_on_a_diverging_loss_and_names_the_epoch_and_batch():
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((64, 4)) * 1e3).astype(np.float32)
    y = rng.normal(size=(64, 1)).astype(np.float32)
    model = nl.Sequential([nl.Dense(4, 16), nl.Tanh(), nl.Dense(16, 1)], seed=0)
    with (
        np.errstate(all="ignore"),
        pytest.raises(nl.training.TrainingDivergedError, match=r"epoch \d+, batch \d+ of 4.*lower"),
    ):
        model.fit(
            X,
            y,
            loss="mse",
            optimizer=nl.optim.SGD(lr=1e6),
            epochs=5,
            batch_size=16,
            verbose=0,
            backend="cpu",
        )
    assert all(isinstance(p, np.ndarray) for p in model.parameters().values())
    with np.errstate(all="ignore"):  # on request it trains on
        history = model.fit(
            X,
            y,
            loss="mse",
            optimizer=nl.optim.SGD(lr=1e6),
            epochs=2,
            batch_size=16,
            verbose=0,
            backend="cpu",
            check_finite=False,
        )
    assert not np.isfinite(history["loss"][-1])


@pytest.mark.parametrize("lr", [-0.1, float("nan"), 0.0, "slow"])
def test_a_schedule_giving_a_bad_learning_rate_is_an_error(lr):
    X, y = _data()
    scheduler = nl.callbacks.LearningRateScheduler(lambda epoch, base: lr if epoch else base)
    with pytest.raises(ValueError, match="for epoch 1"):
        _mlp().fit(X, y, epochs=3, verbose=0, callbacks=[scheduler], backend="cpu")


# ---------------------------------------------------------------------------- no crash


CRASHERS = {
    "loss labels = C": "nl.losses.SoftmaxCrossEntropy()(np.zeros((4, 3), np.float32), "
    "np.array([0, 1, 2, 3]))",
    "loss labels < 0": "nl.losses.SoftmaxCrossEntropy()(np.zeros((4, 3), np.float32), "
    "np.array([0, -1, -7, -100000]))",
    "state of another model": "m = nl.Sequential([nl.Dense(4, 2)], seed=0)\n"
    "o = nl.optim.Adam(); m.train_on_batch(np.zeros((2, 4), np.float32), [0, 1], optimizer=o)\n"
    "big = nl.Sequential([nl.Dense(4, 64)], seed=0); ob = nl.optim.Adam()\n"
    "big.train_on_batch(np.zeros((2, 4), np.float32), [0, 1], optimizer=ob)\n"
    "o.load_state_dict(ob.state_dict())",
    "grads of another shape": "p = {'w': np.zeros(4, np.float32)}\n"
    "nl.optim.Adam().bind(p, {'w': np.zeros(1, np.float32)}).step()",
    "short bias": "d = nl.Dense(8, 4096, seed=0); d.params['b'] = np.zeros(3, np.float32)\n"
    "d.forward(np.ones((512, 8), np.float32))",
    "relu_backward dy shorter": "import nnlib.functional as F\n"
    "F.relu_backward(np.ones(3, np.float32), np.ones(100000, np.float32), backend='cpu')",
    "softmax_backward rows": "import nnlib.functional as F\n"
    "F.softmax_backward(np.ones((2, 5), np.float32), np.ones((4096, 5), np.float32))",
    "prelu alpha width": "import nnlib.functional as F\n"
    "F.prelu(np.ones((512, 64), np.float32), np.ones(3, np.float32), backend='cpu')",
    "prelu_backward dy": "import nnlib.functional as F\n"
    "x = np.ones((512, 64), np.float32)\n"
    "F.prelu_backward(np.ones((2, 64), np.float32), x, np.ones(64, np.float32))",
    "dense forward width": "nl.Dense(8, 4, seed=0).forward(np.ones((512, 3), np.float32))",
    "PReLU layer width": "m = nl.Sequential([nl.Dense(3, 8), nl.PReLU(per_feature=True)], seed=0)\n"
    "m.layers[1].forward(np.ones((512, 2), np.float32))",
    "set_parameters shape": "m = nl.Sequential([nl.Dense(3, 8)], seed=0)\n"
    "m.set_parameters({'0.W': np.zeros((1, 1), np.float32)})",
    "one_hot label": "nl.preprocessing.one_hot(np.array([0, 5, -3]), 3)",
    "batches lengths": "list(nl.preprocessing.batches(np.zeros((10, 2)), np.zeros(4), 3))",
}


@pytest.mark.parametrize("case", CRASHERS)
def test_wrong_shapes_give_a_python_exception_never_a_signal(case):
    code = f"import numpy as np, nnlib as nl\n{CRASHERS[case]}"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])  # not -11 / -6
    assert proc.stderr.strip().splitlines()[-1].startswith(("ValueError", "TypeError"))
