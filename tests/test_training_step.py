"""The parameter store, the one training step behind fit and train_on_batch, layers and
optimizers that describe themselves, and a module graph without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import nnlib as nl
from nnlib.params import ParameterStore

NNLIB = Path(nl.__file__).resolve().parent


def _mlp(seed=0):
    return nl.Sequential(
        [nl.Dense(5, 16, init="he", activation="relu"), nl.PReLU(), nl.Dense(16, 3)], seed=seed
    )


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5)).astype(np.float32), rng.integers(0, 3, n)


# ---------------------------------------------------------------------------- the store


def test_every_parameter_and_gradient_is_a_view_of_one_flat_buffer():
    model = _mlp()
    store = model.store
    assert store.size == 5 * 16 + 16 + 1 + 16 * 3 + 3
    assert list(store.params) == list(model.parameters())
    for name, p in model.parameters().items():
        assert np.shares_memory(p, store.flat_params), name
        assert np.shares_memory(model.gradients()[name], store.flat_grads), name
    store.flat_params[:] = np.arange(store.size)  # written through the flat buffer...
    seen = np.concatenate([p.ravel() for p in model.parameters().values()])
    np.testing.assert_array_equal(seen, np.arange(store.size))  # ...seen in every layer


def test_a_store_view_has_its_slice_and_shape():
    store = ParameterStore({"a": (2, 3), "b": (4,), "c": ()}, np.float64)
    assert store.size == 11
    buffer = np.arange(11.0)
    np.testing.assert_array_equal(store.view(buffer, "b"), [6, 7, 8, 9])
    assert store.view(buffer, "a").shape == (2, 3) and store.view(buffer, "c").shape == ()
    assert float(store.view(buffer, "c")) == 10


def test_assigning_a_parameter_copies_into_the_store_and_checks_the_shape():
    model = _mlp()
    dense = model.layers[0]
    view = dense.params["W"]
    dense.params["W"] = np.ones((5, 16))  # float64 in: cast, copied into the view
    assert dense.params["W"] is view and view.dtype == np.float32
    assert (model.store.view(model.store.flat_params, "0.W") == 1).all()
    with pytest.raises(ValueError, match=r"'b' must keep its shape \(16,\); got .*\(15,\)"):
        dense.params["b"] = np.zeros(15, np.float32)
    with pytest.raises(ValueError, match=r"names \['W', 'b'\]; got \['W'\]"):
        dense.params = {"W": np.zeros((5, 16))}
    dense.params = {"W": np.zeros((5, 16)), "b": np.full(16, 2.0)}  # every name: copied
    assert dense.params["W"] is view and (dense.params["b"] == 2).all()


# ---------------------------------------------------------------------------- the optimizer


OPTIMIZERS = {
    "sgd": lambda: nl.optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "rmsprop": lambda: nl.optim.RMSprop(lr=0.01, momentum=0.5, weight_decay=0.01),
    "adam": lambda: nl.optim.Adam(lr=0.01, weight_decay=0.01),
    "adamw": lambda: nl.optim.AdamW(lr=0.01),
}


@pytest.mark.parametrize("kind", OPTIMIZERS)
@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_one_update_on_the_flat_buffers_equals_one_update_per_tensor(kind, backend):
    rng = np.random.default_rng(3)
    flat_model, tensor_model = _mlp(), _mlp()
    flat_opt, tensor_opt = OPTIMIZERS[kind](), OPTIMIZERS[kind]()
    flat_opt.backend = tensor_opt.backend = backend
    flat_opt.bind(flat_model.store)
    params = {k: v.copy() for k, v in tensor_model.parameters().items()}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    tensor_opt.bind(params, grads)
    for _ in range(3):
        for name, g in flat_model.gradients().items():
            g[...] = rng.standard_normal(g.shape)
            grads[name][...] = g
        flat_opt.step(), tensor_opt.step()
    for name, p in params.items():
        np.testing.assert_array_equal(flat_model.parameters()[name], p, err_msg=name)


def test_the_optimizer_makes_one_update_call_a_step_for_the_whole_model(monkeypatch):
    from nnlib import optim

    calls = []
    real = optim.dispatch
    monkeypatch.setattr(
        optim, "dispatch", lambda op, backend: calls.append(op) or real(op, backend)
    )
    X, y = _data()
    model = _mlp()
    model.fit(X, y, epochs=1, batch_size=8, verbose=0, seed=0, backend="cpu")  # 4 steps
    assert calls == ["adam_update"] * 4
    calls.clear()
    model.train_on_batch(X, y, backend="cpu")
    assert calls == ["adam_update"]


def test_loading_the_state_of_another_model_is_refused_before_any_kernel():
    X, y = _data()
    small, big = _mlp(), nl.Sequential([nl.Dense(5, 64), nl.Dense(64, 3)], seed=0)
    opt_small, opt_big = nl.optim.Adam(), nl.optim.Adam()
    small.train_on_batch(X, y, optimizer=opt_small, backend="cpu")
    big.train_on_batch(X, y, optimizer=opt_big, backend="cpu")
    with pytest.raises(ValueError, match="the state is for parameters"):
        opt_small.load_state_dict(opt_big.state_dict())
    state = opt_small.state_dict()
    state["state"]["0.W"]["exp_avg"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"state\['0.W'\] must hold"):
        opt_small.load_state_dict(state)
    with pytest.raises(ValueError, match="what state_dict\\(\\) returns"):
        opt_small.load_state_dict({"t": 1})
    small.train_on_batch(X, y, optimizer=opt_small, backend="cpu")  # still trains
    assert opt_small.t == 2


def test_a_restored_state_continues_the_same_trajectory():
    X, y = _data()
    model, twin = _mlp(), _mlp()
    opt, twin_opt = nl.optim.Adam(lr=0.01), nl.optim.Adam(lr=0.01)
    for _ in range(2):
        model.train_on_batch(X, y, optimizer=opt, backend="cpu")
        twin.train_on_batch(X, y, optimizer=twin_opt, backend="cpu")
    saved = opt.state_dict()
    model.train_on_batch(X, y, optimizer=opt, backend="cpu")
    opt.load_state_dict(saved)  # back one step: into the flat state buffers
    model.set_parameters(twin.parameters())
    for m, o in ((model, opt), (twin, twin_opt)):
        m.train_on_batch(X, y, optimizer=o, backend="cpu")
    for name, p in twin.parameters().items():
        np.testing.assert_array_equal(model.parameters()[name], p, err_msg=name)


# ---------------------------------------------------------------------------- one step


def test_fit_runs_small_steps_on_one_thread_as_train_on_batch_does(monkeypatch):
    import numba

    threads = []
    real = numba.set_num_threads
    monkeypatch.setattr(numba, "set_num_threads", lambda n: threads.append(n) or real(n))
    X, y = _data()
    before = numba.get_num_threads()
    _mlp().fit(X, y, epochs=1, batch_size=16, verbose=0, seed=0, backend="cpu")
    assert threads[::2] == [1, 1] and threads[1::2] == [before, before]  # 2 steps
    threads.clear()
    _mlp().train_on_batch(X, y, backend="cpu")
    assert threads == [1, before]
    assert numba.get_num_threads() == before


class _FakeBlas:
    """Stands for a threadpoolctl controller of an OpenBLAS library: records the calls."""

    def __init__(self):
        self.num_threads, self.calls = 2, []

    def set_num_threads(self, n):
        self.calls.append(n)
        self.num_threads = n


def test_a_small_step_runs_its_matrix_products_on_one_blas_thread(monkeypatch):
    from nnlib import training

    blas = _FakeBlas()
    monkeypatch.setattr(training, "_blas_libraries", lambda: [blas])
    X, y = _data(n=64)
    small = nl.Sequential([nl.Dense(5, 16, activation="relu"), nl.Dense(16, 3)], seed=0)
    small.train_on_batch(X, y, backend="cpu")  # 64 * 6 * (5*16 + 16*3) flops: tiny
    assert blas.calls == [1, 2] and blas.num_threads == 2  # one thread, then restored
    blas.calls.clear()
    small.fit(X, y, epochs=2, batch_size=16, verbose=0, seed=0, backend="cpu")
    assert blas.calls == [1, 2, 1, 2]  # once per compiled epoch
    blas.calls.clear()
    wide = nl.Sequential([nl.Dense(5, 4096), nl.Dense(4096, 3)], seed=0)  # 64*6*(5+3)*4096
    wide.train_on_batch(X, y, backend="cpu")  # = 12.6 MFLOP ...
    assert blas.calls == [1, 2]
    wide.train_on_batch(np.tile(X, (4, 1)), np.tile(y, 4), backend="cpu")  # ... x4: 50
    assert blas.calls == [1, 2]  # left to BLAS's threads
    assert training.BLAS_SERIAL_BELOW == 32_000_000


def test_train_on_batch_follows_a_fit_on_another_backend():
    X, y = _data()
    model, twin = _mlp(), _mlp()
    opt, twin_opt = nl.optim.SGD(lr=0.1, momentum=0.9), nl.optim.SGD(lr=0.1, momentum=0.9)
    model.train_on_batch(X, y, optimizer=opt, backend="cpu")
    twin.train_on_batch(X, y, optimizer=twin_opt, backend="cpu")
    model.fit(X, y, optimizer=opt, batch_size=32, shuffle=False, verbose=0, backend="numpy")
    twin.train_on_batch(X, y, optimizer=twin_opt, backend="numpy")
    model.train_on_batch(X, y, optimizer=opt, backend="cpu")  # rebinds, keeps the momentum
    twin.train_on_batch(X, y, optimizer=twin_opt, backend="cpu")
    assert opt.t == twin_opt.t == 3
    for name, p in twin.parameters().items():
        np.testing.assert_allclose(model.parameters()[name], p, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------- configs


LAYERS = [
    nl.Dense(4, 6, init="he", activation="relu"),
    nl.Dense(6),
    nl.ReLU(),
    nl.Sigmoid(),
    nl.Tanh(),
    nl.Softmax(),
    nl.LeakyReLU(0.2),
    nl.ELU(0.7),
    nl.PReLU(0.1, per_feature=True),
    nl.Dropout(0.3),
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: type(layer).__name__)
def test_every_layer_describes_itself_in_a_config_that_round_trips(layer):
    config = layer.get_config()
    again = type(layer)(**config)
    assert again.get_config() == config
    assert repr(again) == repr(layer)
    assert nl.layers.LAYERS[type(layer).__name__] is type(layer)


def test_a_custom_layer_with_arguments_must_describe_itself_to_be_saved(tmp_path):
    class Scale(nl.Layer):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return x * self.factor

    model = nl.Sequential([nl.Dense(3, 2), Scale(2.0)], seed=0)
    with pytest.raises(TypeError, match=r"Scale takes constructor arguments.*define get_config"):
        model.save(tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_every_optimizer_rebuilds_from_its_config(kind):
    opt = OPTIMIZERS[kind]()
    again = nl.optim.optimizer_from_config(type(opt).__name__, opt.get_config())
    assert type(again) is type(opt) and repr(again) == repr(opt)


# ---------------------------------------------------------------------------- module graph


def _imports(path: Path) -> set[str]:
    """The nnlib modules a module imports at its top level (not inside functions)."""
    package = ".".join(("nnlib", *path.relative_to(NNLIB).with_suffix("").parts))
    package = package.removesuffix(".__init__")
    here = package if path.name == "__init__.py" else package.rsplit(".", 1)[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            base = here
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            module = f"{base}.{node.module}" if node.level else node.module
            if node.level and node.module is None:
                module = base
            if module and module.startswith("nnlib"):
                found.add(module)
                found.update(f"{module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("nnlib"))
    return found


def test_nnlib_modules_import_each_other_without_a_cycle():
    modules = {}
    for path in NNLIB.rglob("*.py"):
        name = ".".join(("nnlib", *path.relative_to(NNLIB).with_suffix("").parts))
        modules[name.removesuffix(".__init__")] = path
    graph = {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}
    # NOTE: `from . import x` in a submodule names its own package too; that edge is not
    # followed (the package's __init__ imports its submodules), nor the edges to "nnlib"
    done, stack = set(), []

    def visit(m):
        if m in stack:
            raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(m) :], m]))
        if m in done:
            return
        stack.append(m)
        for n in sorted(graph[m]):
            own_package = m.startswith(n + ".") and modules[n].name == "__init__.py"
            if not (n == "nnlib" or own_package):
                visit(n)
        stack.pop()
        done.add(m)

    for m in sorted(graph):
        if m != "nnlib":
            visit(m)
    assert "nnlib.model" not in graph["nnlib.io"]
    assert "nnlib.io" in graph["nnlib.model"]


def test_astype_keeps_every_parameter_shape_and_gives_the_clone_its_own_store():
    model = _mlp()
    clone = model.astype(np.float64)
    for name, p in model.parameters().items():
        q = clone.parameters()[name]
        assert q.shape == p.shape and q.dtype == np.float64, name  # PReLU's alpha stays 0-d
        np.testing.assert_array_equal(q, p.astype(np.float64))
        assert np.shares_memory(q, clone.store.flat_params)
        assert not np.shares_memory(q, model.store.flat_params)
