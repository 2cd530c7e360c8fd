"""``nl.callbacks.Diagnostics``: each statistic against an independent float64 computation
of the same forward and backward pass, the steps it records, its fixed-bin histograms,
its series and dashboard, that it records nothing when it is not there, and its errors.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import nnlib as nl
from nnlib.callbacks import Diagnostics

# Inputs with known saturation: through W1 = I, half the values are +-5 (tanh(5) > 0.97,
# sigmoid(5 * tanh(5)) > 0.97), half are small (tanh, sigmoid far from their ends).
X = np.array(
    [
        [5.0, -5.0, 0.15, -0.25],
        [-5.0, 5.0, -0.25, 0.15],
        [5.0, 5.0, 0.15, 0.15],
        [-5.0, -5.0, -0.25, -0.25],
        [5.0, -5.0, -0.25, 0.15],
        [-5.0, 5.0, 0.15, -0.25],
    ]
)
Y = np.array([0, 1, 2, 0, 1, 2])
W3 = np.array(
    [[0.3, -0.2, 0.1], [-0.4, 0.5, 0.2], [0.6, 0.1, -0.3], [0.2, -0.6, 0.4]], dtype=np.float64
)
LR = 0.1


def _model():
    """Dense(I) -> Tanh -> Dense(5 I) -> Sigmoid -> Dense(W3): every weight fixed."""
    model = nl.Sequential(
        [nl.Dense(4, 4), nl.Tanh(), nl.Dense(4, 4), nl.Sigmoid(), nl.Dense(4, 3)],
        seed=0,
        dtype=np.float64,
    )
    model.build(4)
    weights = (np.eye(4), 5 * np.eye(4), W3)
    biases = (np.zeros(4), np.zeros(4), np.array([0.1, -0.1, 0.0]))
    for layer, W, b in zip(model.layers[::2], weights, biases, strict=True):
        layer.params["W"], layer.params["b"] = W, b
    return model


def _reference():
    """Every layer's output, dL/d(output) and parameter gradients, from the formulas."""
    n = len(X)
    z1 = X @ np.eye(4)
    h1 = np.tanh(z1)
    z2 = h1 @ (5 * np.eye(4))
    h2 = 1 / (1 + np.exp(-z2))
    z3 = h2 @ W3 + np.array([0.1, -0.1, 0.0])
    p = np.exp(z3 - z3.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dz3 = (p - np.eye(3)[Y]) / n  # mean softmax cross-entropy
    dh2 = dz3 @ W3.T
    dz2 = dh2 * h2 * (1 - h2)
    dh1 = dz2 @ (5 * np.eye(4)).T
    dz1 = dh1 * (1 - h1**2)
    outs = [z1, h1, z2, h2, z3]
    douts = [dz1, dh1, dz2, dh2, dz3]
    inputs = {0: X, 2: h1, 4: h2}
    grad_norm = {
        i: math.sqrt(
            (inputs[i].T @ douts[i]).ravel() @ (inputs[i].T @ douts[i]).ravel()
            + douts[i].sum(axis=0) @ douts[i].sum(axis=0)
        )
        for i in inputs
    }
    weights = {
        0: (np.eye(4), np.zeros(4)),
        2: (5 * np.eye(4), np.zeros(4)),
        4: (W3, np.array([0.1, -0.1, 0.0])),
    }
    param_norm = {i: math.sqrt(sum((w * w).sum() for w in weights[i])) for i in weights}
    return outs, douts, grad_norm, param_norm


def _fit(model, diag, *, epochs=1, batch_size=6, backend="numpy", **kw):
    return model.fit(
        X,
        Y,
        optimizer=nl.optim.SGD(lr=LR),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=False,
        verbose=0,
        backend=backend,
        callbacks=[diag] if diag is not None else None,
        **kw,
    )


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_each_statistic_matches_an_independent_forward_and_backward(backend):
    model, diag = _model(), Diagnostics()
    _fit(model, diag, backend=backend)
    outs, douts, grad_norm, param_norm = _reference()
    rows = diag.records
    assert [r["layer"] for r in rows] == [0, 1, 2, 3, 4]
    assert {(r["step"], r["epoch"], r["batch"]) for r in rows} == {(0, 0, 0)}
    for r, y, g in zip(rows, outs, douts, strict=True):
        assert r["act_mean"] == pytest.approx(y.mean(), rel=1e-9, abs=1e-12)
        assert r["act_std"] == pytest.approx(y.std(), rel=1e-9)
        assert r["act_grad_std"] == pytest.approx(g.std(), rel=1e-9)
    # saturation from the definition, and from the construction of X: exactly half
    assert rows[1]["saturation"] == pytest.approx(np.mean(np.abs(outs[1]) > 0.97)) == 0.5
    h2 = outs[3]
    assert rows[3]["saturation"] == pytest.approx(np.mean((h2 < 0.03) | (h2 > 0.97))) == 0.5
    for i in (0, 2, 4):  # Dense layers: no saturation, no dead fraction
        assert math.isnan(rows[i]["saturation"]) and math.isnan(rows[i]["dead_fraction"])
        assert rows[i]["grad_norm"] == pytest.approx(grad_norm[i], rel=1e-9)
        # plain SGD: ||update|| = lr * ||gradient||
        assert rows[i]["update_ratio"] == pytest.approx(LR * grad_norm[i] / param_norm[i], 1e-9)
    for i in (1, 3):
        assert math.isnan(rows[i]["grad_norm"]) and math.isnan(rows[i]["update_ratio"])


@pytest.mark.parametrize(
    ("activation", "inside", "outside"),
    [
        # tanh: |y| > 0.97 is saturated; atanh(0.97) = 2.09
        (nl.Tanh, [1.83, -1.83, 0.1], [2.30, -2.30, 4.0]),  # |tanh| 0.95 / 0.98
        # sigmoid: y < 0.03 or y > 0.97; logit(0.97) = 3.48
        (nl.Sigmoid, [3.18, -3.18, 0.0], [3.89, -3.89, 6.0]),  # 0.96, 0.04 / 0.98, 0.02
    ],
)
def test_saturation_counts_the_values_past_the_threshold(activation, inside, outside):
    x = np.array([inside + outside, outside + inside])  # (2, 6): half the values outside
    model = nl.Sequential([nl.Dense(6, 6), activation()], seed=0, dtype=np.float64)
    model.build(6)
    model.layers[0].params["W"], model.layers[0].params["b"] = np.eye(6), np.zeros(6)
    diag = Diagnostics()
    model.fit(x, [0, 1], epochs=1, batch_size=2, verbose=0, callbacks=[diag])
    assert diag.records[1]["saturation"] == 0.5
    assert math.isnan(diag.records[0]["saturation"])


def test_dead_fraction_of_relu_layers_fused_and_separate():
    model = nl.Sequential(
        [nl.Dense(4, 3, activation="relu"), nl.Dense(3, 4), nl.ReLU(), nl.Dense(4, 3)],
        seed=0,
        dtype=np.float64,
    )
    model.build(4)
    model.layers[0].params["b"] = [-100.0, 0.0, 0.0]  # unit 0 is 0 for every example
    W0, b0 = (model.layers[0].params[k].copy() for k in "Wb")
    W1, b1 = (model.layers[1].params[k].copy() for k in "Wb")
    diag = Diagnostics()
    _fit(model, diag)
    h0 = np.maximum(X @ W0 + b0, 0)
    h2 = np.maximum(h0 @ W1 + b1, 0)
    rows = diag.records
    assert rows[0]["dead_fraction"] == np.mean((h0 <= 0).all(axis=0)) >= 1 / 3
    assert rows[2]["dead_fraction"] == np.mean((h2 <= 0).all(axis=0))
    assert math.isnan(rows[1]["dead_fraction"]) and math.isnan(rows[3]["dead_fraction"])
    assert all(math.isnan(r["saturation"]) for r in rows)


def test_per_batch_records_every_kth_global_step_with_its_epoch_and_batch():
    diag = Diagnostics(5, per="batch")
    _fit(_model(), diag, epochs=3, batch_size=2)  # 3 batches an epoch: steps 0..8
    assert diag.steps.tolist() == [0, 5]
    assert diag.epochs.tolist() == [0, 1]
    assert [(r["step"], r["epoch"], r["batch"]) for r in diag.records[::5]] == [
        (0, 0, 0),
        (5, 1, 2),
    ]
    assert len(diag.records) == 2 * 5
    _fit(diag.model, diag, epochs=1, batch_size=2)  # the steps go on counting: 9, 10, 11
    assert diag.steps.tolist() == [0, 5, 10]
    assert diag.records[-1]["epoch"] == 0 and diag.records[-1]["batch"] == 1


def test_per_epoch_records_the_last_batch_of_every_kth_epoch():
    diag = Diagnostics(2)
    _fit(_model(), diag, epochs=5, batch_size=4)  # 2 batches an epoch
    assert diag.epochs.tolist() == [0, 2, 4]
    assert diag.steps.tolist() == [1, 5, 9]
    assert {r["batch"] for r in diag.records} == {1}


class _Spy(nl.callbacks.Callback):
    """What the model kept after each backward pass, batch by batch."""

    def __init__(self):
        self.kept = []

    def on_after_backward(self, batch, logs):
        self.kept.append((len(self.model.outputs), len(self.model.output_grads)))


def test_outputs_are_kept_only_on_the_recorded_steps_and_never_without_it():
    spy, model = _Spy(), _model()
    diag = Diagnostics(3, per="batch")
    model.fit(
        X,
        Y,
        optimizer=nl.optim.SGD(lr=LR),
        epochs=2,
        batch_size=2,
        shuffle=False,
        verbose=0,
        callbacks=[diag, spy],
    )
    assert spy.kept == [(5, 5) if step % 3 == 0 else (0, 0) for step in range(6)]
    assert not model.record_outputs and not model.record_grads
    assert model.outputs == [] and model.output_grads == []
    # without the callback nothing is kept
    spy, model = _Spy(), _model()
    model.fit(X, Y, epochs=2, batch_size=2, verbose=0, callbacks=[spy])
    assert spy.kept == [(0, 0)] * 6
    assert not model.record_outputs and not model.record_grads and model.outputs == []


def test_histograms_count_every_value_on_fixed_bins():
    diag = Diagnostics(per="batch", histograms=True)
    act_bins, grad_bins = diag.act_bins.copy(), diag.grad_bins.copy()
    _fit(_model(), diag, epochs=2, batch_size=3)
    assert len(diag.records) == 4 * 5
    np.testing.assert_array_equal(diag.act_bins, act_bins)  # the same edges all along
    np.testing.assert_array_equal(diag.grad_bins, grad_bins)
    np.testing.assert_allclose(act_bins, np.linspace(-3, 3, 61))
    np.testing.assert_allclose(np.log10(grad_bins), np.linspace(-12, 3, 61))
    for r in diag.records:
        assert r["act_hist"].shape == (60,) and r["grad_hist"].shape == (60,)
        assert r["act_hist"].sum() == r["grad_hist"].sum() == 3 * (3 if r["layer"] == 4 else 4)
    # the first Dense layer outputs X itself (W = I, b = 0 before the first update):
    # per batch of 3 rows, six values at +-5 (outside: the end bins), 3 at 0.15, 3 at -0.25
    first = diag.records[0]
    counts = np.zeros(60, np.int64)
    rows = X[:3]
    counts[0] = np.sum(rows == -5)
    counts[59] = np.sum(rows == 5)
    counts[31] = np.sum(rows == 0.15)  # [0.1, 0.2)
    counts[27] = np.sum(rows == -0.25)  # [-0.3, -0.2)
    np.testing.assert_array_equal(first["act_hist"], counts)
    assert first["act_clipped"] == 6
    # the gradient magnitudes of the last layer: (p - onehot) / 3, all in (1e-3, 1)
    last = diag.records[4]
    assert last["grad_clipped"] == 0 and last["grad_hist"][: 4 * 9].sum() == 0


def test_histograms_on_given_edges_and_counts_of_values_outside():
    diag = Diagnostics(per="batch", histograms=True, bins={"act": [-1, 0, 1]})
    _fit(_model(), diag)
    first = diag.records[0]  # X: 12 values at +-5 (outside [-1, 1]), 12 small
    assert first["act_clipped"] == 12
    assert first["act_hist"].tolist() == [np.sum(X < 0), np.sum(X > 0)]
    assert len(diag.grad_bins) == 61  # the default gradient bins
    assert len(Diagnostics(histograms=True, bins=8).act_bins) == 9


def test_series_is_steps_by_layers_with_nan_where_a_layer_has_no_value():
    diag = Diagnostics(per="batch", histograms=True)
    _fit(_model(), diag, epochs=3, batch_size=3)
    sat = diag.series("saturation")
    assert sat.shape == (len(diag.steps), 5) == (6, 5)
    assert np.isnan(sat[:, [0, 2, 4]]).all() and not np.isnan(sat[:, [1, 3]]).any()
    np.testing.assert_array_equal(
        diag.series("act_std")[:, 1], [r["act_std"] for r in diag.records if r["layer"] == 1]
    )
    assert diag.series("act_hist").shape == (6, 5, 60)
    assert diag.layer_names[1] == "Tanh()"
    assert "act_grad_std" in diag.table() and "saturation" in diag.table(epoch=1)


def test_dashboard_draws_the_standard_panels():
    pytest.importorskip("matplotlib", reason="the dashboard draws with matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    for histograms in (True, False):
        diag = Diagnostics(per="batch", histograms=histograms)
        _fit(_model(), diag, epochs=2, batch_size=3)
        fig = diag.dashboard()
        assert isinstance(fig, Figure)
        assert len(fig.axes) == 6  # five panels and the heatmap's colorbar
        titles = " ".join(ax.get_title() for ax in fig.axes)
        assert "step 3" in titles and "update" in titles
        plt.close(fig)
    fig = Figure()
    assert diag.dashboard(fig=fig, layers=[0, 1], step=0) is fig
    with pytest.raises(ValueError, match=r"layers must be layer indices in 0\.\.4"):
        diag.dashboard(fig=Figure(), layers=[7])
    with pytest.raises(ValueError, match="step 99 was not recorded"):
        diag.dashboard(fig=Figure(), step=99)


def test_dashboard_without_matplotlib_says_how_to_install_it(monkeypatch):
    diag = Diagnostics()
    _fit(_model(), diag)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    with pytest.raises(ImportError, match="pip install matplotlib"):
        diag.dashboard()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"every": 0}, ValueError, "every must be an int >= 1"),
        ({"every": True}, ValueError, "every must be an int >= 1"),
        ({"every": 1.5}, ValueError, "every must be an int >= 1"),
        ({"per": "step"}, ValueError, "per must be 'epoch'.*got 'step'"),
        ({"histograms": "yes"}, TypeError, "histograms must be True or False"),
        ({"bins": 10}, ValueError, "histograms=False"),
        ({"histograms": True, "bins": 0}, ValueError, "a number of bins >= 1"),
        ({"histograms": True, "bins": {"acts": [0, 1]}}, ValueError, "keys 'act' and 'grad'"),
        ({"histograms": True, "bins": {"act": [1, 0]}}, ValueError, "strictly increasing"),
        ({"histograms": True, "bins": {"grad": [0, 1]}}, ValueError, "positive"),
    ],
)
def test_bad_arguments_are_refused_with_what_was_expected(kwargs, error, message):
    with pytest.raises(error, match=message):
        Diagnostics(**kwargs)


def test_reading_what_was_not_recorded_is_refused():
    diag = Diagnostics()
    with pytest.raises(ValueError, match="nothing recorded yet"):
        diag.dashboard()
    assert diag.table() == "(no diagnostics recorded)"
    _fit(_model(), diag)
    with pytest.raises(KeyError, match="key must be one of"):
        diag.series("saturated")
    with pytest.raises(ValueError, match="histograms=True"):
        diag.series("act_hist")
    with pytest.raises(ValueError, match="epoch 3 was not recorded"):
        diag.table(epoch=3)


@pytest.mark.cuda
def test_records_on_cuda_match_the_reference_backend():
    runs = {}
    for backend in ("numpy", "cuda"):
        diag = Diagnostics(per="batch", histograms=True)
        _fit(_model(), diag, backend=backend, epochs=1, batch_size=3)
        runs[backend] = diag
    for a, b in zip(runs["numpy"].records, runs["cuda"].records, strict=True):
        for key in ("act_mean", "act_std", "act_grad_std", "saturation", "grad_norm"):
            np.testing.assert_allclose(b[key], a[key], rtol=1e-6, atol=1e-12, err_msg=key)
        np.testing.assert_array_equal(b["act_hist"], a["act_hist"])
