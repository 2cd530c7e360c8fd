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


def _prelu_model():
    return nl.Sequential([nl.Dense(3, 5), nl.PReLU(5), nl.Dense(5, 3)], seed=0)


@pytest.mark.parametrize(
    "make", [lambda: _model(dropout=0.2), _prelu_model], ids=["dropout", "prelu"]
)
def test_no_host_device_copy_per_step(transfers, make):
    """Copies happen per fit and per epoch, never per step: doubling the number of steps
    of an epoch leaves the count of copies unchanged (PReLU's alpha gradient included)."""
    X, y = _data(8)
    counts = transfers
    seen = []
    for batch_size in (8, 2):  # 1 and 4 steps per epoch
        for key in counts:
            counts[key] = 0
        make().fit(
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


# ---------------------------------------------------------------------------- one update a step


def _count_optimizer_launches(monkeypatch):
    """Count the launches of the three optimizer kernels (``kernel[grid, block](...)``)."""
    from numba import config

    from nnlib.ops._launch import KERNELS

    kernels = [KERNELS[op, "cuda"] for op in ("sgd_update", "rmsprop_update", "adam_update")]
    counts = {"launches": 0}
    if config.ENABLE_CUDASIM:  # the simulator's kernel[grid, block] is the kernel itself
        from numba.cuda.simulator.kernel import FakeCUDAKernel as cls

        def kernel_of(launch):
            return launch
    else:
        from numba.cuda.dispatcher import _LaunchConfiguration as cls

        def kernel_of(launch):
            return launch.dispatcher

    call = cls.__call__

    def counting_call(self, *args):
        if any(kernel_of(self) is k for k in kernels):
            counts["launches"] += 1
        return call(self, *args)

    monkeypatch.setattr(cls, "__call__", counting_call)
    return counts


def _prelu_model():
    """5 parameter tensors: W (3, 5), b (5,), alpha (), W (5, 3), b (3,)."""
    return nl.Sequential([nl.Dense(3, 5, init="he"), nl.PReLU(), nl.Dense(5, 3)], seed=0)


# One optimizer of each kernel and each set of state buffers (none; b; s and b; m and v).
# NOTE: every rule of every optimizer kernel is checked against the reference in
# tests/test_training_ops.py; here what is checked is the flat-buffer path around them,
# and the simulator makes each case cost seconds.
OPTIMIZERS = {
    "sgd": lambda: nl.optim.SGD(lr=0.1),
    "nesterov": lambda: nl.optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "rmsprop_momentum": lambda: nl.optim.RMSprop(lr=0.01, momentum=0.5, weight_decay=0.01),
    "adamw": lambda: nl.optim.AdamW(lr=0.01, weight_decay=0.1),
}


def test_train_on_batch_makes_one_optimizer_launch_per_step(monkeypatch):
    X, y = _data(8)
    model, opt = _prelu_model(), nl.optim.Adam(lr=0.01)
    assert len(model.parameters()) == 5
    counts = _count_optimizer_launches(monkeypatch)
    for step in range(1, 4):
        model.train_on_batch(X, y, optimizer=opt, backend="cuda")
        assert counts["launches"] == step
    # every parameter, gradient and state array is a view of one flat GPU buffer each
    from nnlib._validate import is_device_array

    P, G = model.store.flat_params, model.store.flat_grads
    S = opt.flat_state
    assert all(is_device_array(a) for a in (P, G, *S.values()))
    assert P.size == sum(p.size for p in model.parameters().values())
    P.copy_to_device(np.arange(P.size, dtype=P.dtype))  # written through the flat buffer...
    seen = np.concatenate([p.copy_to_host().ravel() for p in model.parameters().values()])
    np.testing.assert_array_equal(seen, np.arange(P.size))  # ...and seen in every parameter


def test_fit_makes_one_optimizer_launch_per_step(monkeypatch):
    X, y = _data(8)
    counts = _count_optimizer_launches(monkeypatch)
    _model().fit(X, y, epochs=2, batch_size=2, seed=0, verbose=0, backend="cuda")  # 4 tensors
    assert counts["launches"] == 2 * 4  # 2 epochs of 4 steps


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_train_on_batch_on_cuda_follows_the_reference_trajectory(kind):
    X, y = _data(8)
    models = {}
    for backend in ("numpy", "cuda"):
        model, opt = _prelu_model(), OPTIMIZERS[kind]()
        losses = [model.train_on_batch(X, y, optimizer=opt, backend=backend) for _ in range(3)]
        models[backend] = model, opt, losses
    (ref, ref_opt, ref_losses), (model, opt, losses) = models["numpy"], models["cuda"]
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    for name, p in model.parameters().items():
        np.testing.assert_allclose(
            p.copy_to_host(), ref.parameters()[name], rtol=1e-5, atol=1e-6, err_msg=name
        )
    assert opt.t == ref_opt.t == 3
    for name, state in ref_opt.state_dict()["state"].items():
        for s, a in state.items():
            np.testing.assert_allclose(
                opt.state_dict()["state"][name][s], a, rtol=1e-5, atol=1e-6, err_msg=(name, s)
            )


def test_fit_on_cuda_with_a_schedule_and_decay_follows_the_reference():
    X, y = _data(8)
    runs = {}
    for backend in ("numpy", "cuda"):
        model, opt = _prelu_model(), nl.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01)
        history = model.fit(
            X,
            y,
            optimizer=opt,
            epochs=3,
            batch_size=4,
            shuffle=False,
            verbose=0,
            backend=backend,
            callbacks=[nl.callbacks.LearningRateScheduler(nl.optim.StepLR(1, gamma=0.5))],
        )
        runs[backend] = model, history
    (ref, h_ref), (model, h) = runs["numpy"], runs["cuda"]
    assert h["lr"] == h_ref["lr"] == [0.1, 0.05, 0.025]
    np.testing.assert_allclose(h["loss"], h_ref["loss"], rtol=1e-5)
    for name, p in model.parameters().items():
        np.testing.assert_allclose(p, ref.parameters()[name], rtol=1e-5, atol=1e-6, err_msg=name)


class _LastGpuValues(nl.callbacks.Callback):
    def on_batch_end(self, batch, logs):
        self.seen = {k: v.copy_to_host() for k, v in self.model.parameters().items()}


def test_after_fit_the_parameters_are_the_gpu_values_on_the_host(tmp_path):
    X, y = _data(8)
    model, opt = _prelu_model(), nl.optim.AdamW(lr=0.01)
    model.train_on_batch(X, y, optimizer=opt, backend="cuda")  # flat on the GPU first
    last = _LastGpuValues()
    model.fit(
        X, y, optimizer=opt, epochs=1, batch_size=4, verbose=0, backend="cuda", callbacks=[last]
    )
    for name, p in model.parameters().items():
        assert isinstance(p, np.ndarray), name
        np.testing.assert_array_equal(p, last.seen[name], err_msg=name)
    for name, g in model.gradients().items():
        assert isinstance(g, np.ndarray), name
    for state in opt.state.values():
        assert all(isinstance(a, np.ndarray) for a in state.values())
    # train_on_batch after fit moves everything back into flat GPU buffers and goes on
    model.train_on_batch(X, y, optimizer=opt, backend="cuda")
    assert opt.t == 4
    P = model.store.flat_params
    assert model.parameters()["1.alpha"].copy_to_host() == P.copy_to_host()[20]


def test_save_and_load_after_training_on_cuda(tmp_path):
    X, y = _data(8)
    model, opt = _prelu_model(), nl.optim.Adam(lr=0.01)
    for _ in range(2):
        model.train_on_batch(X, y, optimizer=opt, backend="cuda")
    path = tmp_path / "m.nnlib.npz"
    model.save(path, opt)
    loaded, loaded_opt = nl.load(path, backend="cuda")
    for name, p in loaded.parameters().items():
        np.testing.assert_array_equal(p, model.parameters()[name].copy_to_host(), err_msg=name)
    assert loaded_opt.t == 2
    # both go on from the same state: the same next step
    model.train_on_batch(X, y, optimizer=opt, backend="cuda")
    loaded.train_on_batch(X, y, optimizer=loaded_opt, backend="cuda")
    for name, p in loaded.parameters().items():
        np.testing.assert_array_equal(
            p.copy_to_host(), model.parameters()[name].copy_to_host(), err_msg=name
        )
    # a state restored into the running optimizer (new host arrays) is followed too
    params, saved = {k: v.copy_to_host() for k, v in model.parameters().items()}, opt.state_dict()
    model.train_on_batch(X, y, optimizer=opt, backend="cuda")
    after = {k: v.copy_to_host() for k, v in model.parameters().items()}
    model.set_parameters(params)
    opt.load_state_dict(saved)
    model.train_on_batch(X, y, optimizer=opt, backend="cuda")
    assert opt.t == 4
    for name, p in model.parameters().items():
        np.testing.assert_array_equal(p.copy_to_host(), after[name], err_msg=name)
