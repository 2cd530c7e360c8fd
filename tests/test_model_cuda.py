"""Training on the cuda backend: agreement with the reference backend, and the data,
parameters and optimizer state staying on the GPU for the whole fit.

These run on a GPU, or under Numba's CUDA simulator (``make test`` does so, in its own
process); the sizes are tiny because the simulator runs every GPU thread in Python.
"""

from __future__ import annotations

import numpy as np
import pytest

import nnlib as nl

pytestmark = [
    pytest.mark.cuda,
    # NOTE: the GPU generator of Dropout (xoroshiro128+) relies on wrapping uint64
    # arithmetic; the simulator runs it with NumPy scalars, which warn on the wrap.
    pytest.mark.filterwarnings("ignore:.*overflow encountered in scalar:RuntimeWarning"),
]


def _data(n=12):
    X, y = nl.datasets.blobs(n, centers=3, dim=3, seed=0)
    return X, y


def _model(dropout=0.0):
    layers = [nl.Dense(3, 5, init="he", activation="relu"), nl.Tanh()]
    if dropout:
        layers.append(nl.Dropout(dropout))
    return nl.Sequential([*layers, nl.Dense(5, 3)], seed=0)


def test_fit_on_cuda_matches_the_reference_backend():
    """(Every optimizer's CUDA kernel is compared with the reference in
    test_training_ops.py; one is enough here.)"""
    X, y = _data()
    runs = {}
    for backend in ("numpy", "cuda"):
        model = _model()
        history = model.fit(
            X,
            y,
            optimizer=nl.optim.AdamW(lr=0.01),
            epochs=2,
            batch_size=6,
            validation_split=0.25,
            seed=0,
            verbose=0,
            backend=backend,
        )
        runs[backend] = history, model
    (h_ref, m_ref), (h, m) = runs["numpy"], runs["cuda"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(h[key], h_ref[key], rtol=1e-4, err_msg=key)
    for name, p in m.parameters().items():
        assert isinstance(p, np.ndarray), "the parameters come back to the host after fit"
        np.testing.assert_allclose(p, m_ref.parameters()[name], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(
        m.predict_proba(X, backend="cuda"), m_ref.predict_proba(X), rtol=1e-4, atol=1e-6
    )


def _count_transfers(monkeypatch):
    """Count host-to-device and device-to-host copies."""
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


def test_no_host_device_copy_per_step(monkeypatch):
    """Copies happen per fit and per epoch, never per step: doubling the number of steps
    of an epoch leaves the count of copies unchanged."""
    X, y = _data(8)
    counts = _count_transfers(monkeypatch)
    seen = []
    for batch_size in (8, 2):  # 1 and 4 steps per epoch
        for key in counts:
            counts[key] = 0
        _model(dropout=0.2).fit(
            X,
            y,
            optimizer=nl.optim.Adam(lr=0.01),
            epochs=1,
            batch_size=batch_size,
            seed=0,
            verbose=0,
            backend="cuda",
            callbacks=[nl.callbacks.EarlyStopping(patience=3, restore_best=True)],
        )
        seen.append(dict(counts))
    assert seen[0] == seen[1], seen
    assert seen[0]["to_device"] > 0  # the counter does see the copies of fit


def test_dropout_on_cuda_is_seeded_inverted_and_trains():
    X, y = _data()
    results = []
    for _ in range(2):
        model = _model(dropout=0.5)
        history = model.fit(X, y, epochs=1, batch_size=6, seed=3, verbose=0, backend="cuda")
        results.append((history["loss"], model.parameters()["0.W"]))
    assert results[0][0] == results[1][0]  # the same seed: the same GPU masks
    np.testing.assert_array_equal(results[0][1], results[1][1])
    layer = nl.Dropout(0.25, seed=0)
    layer.backend = "cuda"
    from numba import cuda

    y_d = layer.forward(cuda.to_device(np.ones((8, 40), np.float32))).copy_to_host()
    assert set(np.unique(y_d)) <= {0.0, np.float32(1 / 0.75)}
    assert 0.1 < (y_d == 0).mean() < 0.4
