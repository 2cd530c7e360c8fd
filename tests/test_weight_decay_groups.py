"""Excluding parameters from weight decay (``no_decay=``) on every optimizer: PyTorch's
parameter group with ``weight_decay=0``.

The oracle is an independent float64 step of PyTorch's formulas (torch.optim's
single-tensor SGD, RMSprop, Adam and AdamW), run per parameter with wd for a decayed
parameter and 0 for an excluded one.
"""

from __future__ import annotations

import numpy as np
import pytest

import nnlib as nl
from nnlib._backend import dispatch

BIAS_AND_NORM = ["0.b", "2.gamma", "2.beta", "3.alpha", "4.b"]  # every parameter of ndim <= 1


def _model(dtype=np.float64, seed=0):
    layers = [nl.Dense(4, 6), nl.Tanh(), nl.BatchNorm1d(6), nl.PReLU(), nl.Dense(6, 3)]
    return nl.Sequential(layers, seed=seed, dtype=dtype)


# ---------------------------------------------------------------------------- the oracle


def _torch_step(kind, hp, p, g, st, wd, t):
    """One step of PyTorch's rule for one parameter, in float64; ``st`` is updated."""
    lr = hp["lr"]
    if kind == "sgd":
        mu, damp = hp["momentum"], hp["dampening"]
        d = g + wd * p
        if mu != 0:
            st["buf"] = d.copy() if t == 1 else mu * st["buf"] + (1 - damp) * d
            d = d + mu * st["buf"] if hp["nesterov"] else st["buf"]
        return p - lr * d
    if kind == "rmsprop":
        g = g + wd * p
        st["sq"] = hp["alpha"] * st["sq"] + (1 - hp["alpha"]) * g * g
        avg = np.sqrt(st["sq"]) + hp["eps"]
        if hp["momentum"] > 0:
            st["buf"] = hp["momentum"] * st["buf"] + g / avg
            return p - lr * st["buf"]
        return p - lr * g / avg
    b1, b2 = hp["betas"]
    if kind == "adamw":
        p = p * (1 - lr * wd)
    else:
        g = g + wd * p
    st["m"] = b1 * st["m"] + (1 - b1) * g
    st["v"] = b2 * st["v"] + (1 - b2) * g * g
    denom = np.sqrt(st["v"]) / np.sqrt(1 - b2**t) + hp["eps"]
    return p - lr / (1 - b1**t) * st["m"] / denom


CASES = {
    "sgd": (nl.optim.SGD, {"lr": 0.1, "momentum": 0.0, "dampening": 0.0, "nesterov": False}),
    "sgd_momentum": (
        nl.optim.SGD,
        {"lr": 0.1, "momentum": 0.9, "dampening": 0.2, "nesterov": False},
    ),
    "sgd_nesterov": (
        nl.optim.SGD,
        {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": True},
    ),
    "rmsprop": (nl.optim.RMSprop, {"lr": 0.01, "alpha": 0.9, "eps": 1e-8, "momentum": 0.0}),
    "rmsprop_momentum": (
        nl.optim.RMSprop,
        {"lr": 0.01, "alpha": 0.9, "eps": 1e-8, "momentum": 0.5},
    ),
    "adam": (nl.optim.Adam, {"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-8}),
    "adamw": (nl.optim.AdamW, {"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-8}),
}
WD = 0.3  # large, so that a decay applied or missed shows at once


def _kind(case):
    return case.split("_")[0]


def _make(case, **extra):
    cls, hp = CASES[case]
    return cls(**hp, weight_decay=WD, **extra)


def _grads(rng, params, steps):
    return [{k: rng.standard_normal(p.shape) for k, p in params.items()} for _ in range(steps)]


def _oracle(case, params0, grads, excluded):
    _, hp = CASES[case]
    kind = _kind(case)
    out = {}
    for name, p in params0.items():
        p = np.array(p, np.float64)
        st = {s: np.zeros_like(p) for s in ("buf", "sq", "m", "v")}
        wd = 0.0 if name in excluded else WD
        for t, g in enumerate(grads, start=1):
            p = _torch_step(kind, hp, p, g[name], st, wd, t)
        out[name] = p
    return out


def _run_flat(model, opt, grads, backend):
    opt.backend = backend
    opt.bind(model.store)
    for g in grads:
        for name, view in model.gradients().items():
            view[...] = g[name]
        opt.step()
    return {k: np.array(v) for k, v in model.parameters().items()}


# ---------------------------------------------------------------------------- the math


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("case", CASES)
def test_excluded_parameters_follow_pytorchs_rule_with_wd_zero(case, backend):
    """Flat buffers (what fit uses), 3 steps so the momentum and moment state count."""
    model = _model()
    params0 = {k: v.copy() for k, v in model.parameters().items()}
    grads = _grads(np.random.default_rng(1), params0, 3)
    opt = _make(case, no_decay="bias_and_norm")
    got = _run_flat(model, opt, grads, backend)
    assert opt.no_decay_names == tuple(BIAS_AND_NORM)
    want = _oracle(case, params0, grads, set(BIAS_AND_NORM))
    decayed_anyway = _oracle(case, params0, grads, set())
    for name in params0:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-14, err_msg=name)
        if name in BIAS_AND_NORM:  # the oracle tells the two rules apart
            assert np.abs(want[name] - decayed_anyway[name]).max() > 1e-6, name


@pytest.mark.parametrize("case", CASES)
def test_the_per_tensor_path_honours_no_decay_too(case):
    model = _model()
    params = {k: v.copy() for k, v in model.parameters().items()}
    params0 = {k: v.copy() for k, v in params.items()}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    steps = _grads(np.random.default_rng(2), params, 3)
    opt = _make(case, no_decay=["0.b", "4.W"])
    opt.backend = "cpu"
    opt.bind(params, grads)
    for g in steps:
        for name in grads:
            grads[name][...] = g[name]
        opt.step()
    want = _oracle(case, params0, steps, {"0.b", "4.W"})
    for name in params:
        np.testing.assert_allclose(params[name], want[name], rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("case", ["sgd_nesterov", "rmsprop_momentum", "adam", "adamw"])
@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_flat_and_per_tensor_updates_are_identical_with_an_exclusion(case, backend):
    flat_model = _model(np.float32)
    params = {k: v.copy() for k, v in flat_model.parameters().items()}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    steps = _grads(np.random.default_rng(3), params, 3)
    got = _run_flat(flat_model, _make(case, no_decay="bias_and_norm"), steps, backend)
    opt = _make(case, no_decay="bias_and_norm")
    opt.backend = backend
    opt.bind(params, grads)
    for g in steps:
        for name in grads:
            grads[name][...] = g[name]
        opt.step()
    for name, p in params.items():
        np.testing.assert_array_equal(got[name], p, err_msg=name)


@pytest.mark.parametrize("case", ["sgd_momentum", "rmsprop_momentum", "adam", "adamw"])
def test_cpu_and_numpy_agree_with_an_exclusion(case):
    model_np, model_cpu = _model(np.float32), _model(np.float32)
    steps = _grads(np.random.default_rng(4), model_np.parameters(), 3)
    want = _run_flat(model_np, _make(case, no_decay="bias_and_norm"), steps, "numpy")
    got = _run_flat(model_cpu, _make(case, no_decay="bias_and_norm"), steps, "cpu")
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("case", CASES)
def test_no_decay_none_is_the_update_it_was(case, monkeypatch):
    """No mask is made or passed, and the result is bitwise that of the op called as it
    was before (positional arguments only) on the flat buffers."""
    from nnlib import optim

    model, twin = _model(np.float32), _model(np.float32)
    steps = _grads(np.random.default_rng(5), model.parameters(), 3)
    seen = []
    real = optim.dispatch

    def spy(op, backend):
        fn = real(op, backend)
        return lambda *a, **k: seen.append(k.get("mask")) or fn(*a, **k)

    monkeypatch.setattr(optim, "dispatch", spy)
    opt = _make(case)
    got = _run_flat(model, opt, steps, "cpu")
    assert opt.no_decay is None and opt.no_decay_names == () and seen == [None] * 3
    _, hp = CASES[case]
    store, kind = twin.store, _kind(case)
    state = [store.zeros() for _ in range(1 if kind == "sgd" else 2)]
    for t, g in enumerate(steps, start=1):
        for name, view in twin.gradients().items():
            view[...] = g[name]
        if kind == "sgd":
            args = (hp["lr"], hp["momentum"], hp["dampening"], WD, int(hp["nesterov"]), int(t == 1))
            op = "sgd_update"
        elif kind == "rmsprop":
            args, op = (hp["lr"], hp["alpha"], hp["eps"], WD, hp["momentum"]), "rmsprop_update"
        else:
            b1, b2 = hp["betas"]
            args = (hp["lr"], b1, b2, hp["eps"], WD, int(kind == "adamw"), t)
            op = "adam_update"
        real(op, "cpu")(store.flat_params, store.flat_grads, *state, *args)
    for name, p in twin.parameters().items():
        np.testing.assert_array_equal(got[name], p, err_msg=name)


def test_with_zero_gradients_adamw_shrinks_exactly_the_decayed_parameters():
    model = _model()
    before = {k: v.copy() for k, v in model.parameters().items()}
    opt = nl.optim.AdamW(lr=0.1, weight_decay=0.5, no_decay=["4.W", "0.b"])
    opt.backend = "cpu"
    opt.bind(model.store)
    model.store.flat_grads[:] = 0
    for _ in range(4):
        opt.step()
    for name, p in model.parameters().items():
        factor = 1.0 if name in ("4.W", "0.b") else (1 - 0.1 * 0.5) ** 4
        np.testing.assert_allclose(p, before[name] * factor, rtol=1e-14, err_msg=name)


def test_weight_decay_zero_makes_the_exclusion_irrelevant():
    a, b = _model(), _model()
    steps = _grads(np.random.default_rng(6), a.parameters(), 2)
    got = _run_flat(a, nl.optim.SGD(lr=0.1, momentum=0.9, no_decay="bias_and_norm"), steps, "cpu")
    want = _run_flat(b, nl.optim.SGD(lr=0.1, momentum=0.9), steps, "cpu")
    for name in got:
        np.testing.assert_array_equal(got[name], want[name])


# ---------------------------------------------------------------------------- resolution


def test_the_three_ways_to_name_parameters():
    model = _model()
    names = list(model.parameters())
    for spec, want in [
        (None, []),
        ("bias_and_norm", BIAS_AND_NORM),
        (["4.b", "0.b"], ["0.b", "4.b"]),  # in the model's order
        (("0.W",), ["0.W"]),
        (lambda name, p: name.endswith(".b"), ["0.b", "4.b"]),
        (lambda name, p: bool(p.size == 1), ["3.alpha"]),
    ]:
        opt = nl.optim.Adam(no_decay=spec).bind(model.store)
        assert list(opt.no_decay_names) == want, spec
        mask = opt._decay_mask
        if want:
            for name in names:
                start, stop, _ = model.store.slices[name]
                assert (mask[start:stop] == (name not in want)).all(), (spec, name)
        else:
            assert mask is None, spec


def test_a_per_feature_prelu_alpha_is_a_1d_parameter():
    model = nl.Sequential([nl.Dense(3, 4), nl.PReLU(per_feature=True)], seed=0)
    opt = nl.optim.SGD(no_decay="bias_and_norm").bind(model.store)
    assert opt.no_decay_names == ("0.b", "1.alpha")


def test_train_on_batch_makes_one_update_call_with_the_mask(monkeypatch):
    from nnlib import optim

    calls = []
    real = optim.dispatch
    monkeypatch.setattr(
        optim, "dispatch", lambda op, backend: calls.append(op) or real(op, backend)
    )
    X, y = nl.datasets.blobs(16, centers=3, dim=4, seed=0)
    model = _model(np.float32)
    opt = nl.optim.AdamW(lr=0.01, no_decay="bias_and_norm")
    model.train_on_batch(X, y, optimizer=opt, backend="cpu")
    model.train_on_batch(X, y, optimizer=opt, backend="cpu")
    assert calls == ["adam_update"] * 2
    assert opt.no_decay_names == tuple(BIAS_AND_NORM) and opt._decay_mask is not None


def test_setting_no_decay_on_a_bound_optimizer_resolves_it_at_once():
    model = _model()
    opt = nl.optim.SGD(weight_decay=0.1).bind(model.store)
    assert opt._decay_mask is None
    opt.no_decay = ["2.gamma"]
    assert opt.no_decay == ("2.gamma",) and opt.no_decay_names == ("2.gamma",)
    assert int((opt._decay_mask == 0).sum()) == 6
    with pytest.raises(ValueError, match=r"does not have: \['9.b'\]"):
        opt.no_decay = ["9.b"]
    assert opt.no_decay == ("2.gamma",)  # unchanged by the refused value


# ---------------------------------------------------------------------------- save / load


@pytest.mark.parametrize(
    "spec, saved",
    [
        (None, None),
        ("bias_and_norm", "bias_and_norm"),
        (["0.b", "4.b"], ["0.b", "4.b"]),
        (lambda name, p: name.startswith("2."), ["2.gamma", "2.beta"]),
    ],
    ids=["none", "rule", "names", "callable"],
)
def test_save_and_load_round_trip_no_decay(spec, saved, tmp_path):
    X, y = nl.datasets.blobs(16, centers=3, dim=4, seed=0)
    model, twin = _model(np.float32), _model(np.float32)
    opt = nl.optim.AdamW(lr=0.01, weight_decay=0.2, no_decay=spec)
    twin_opt = nl.optim.AdamW(lr=0.01, weight_decay=0.2, no_decay=spec)
    for m, o in ((model, opt), (twin, twin_opt)):
        m.train_on_batch(X, y, optimizer=o, backend="cpu")
    assert opt.state_dict()["hyper"]["no_decay"] == saved  # what is saved: names, not code
    model.save(tmp_path / "m.npz", opt)
    loaded, loaded_opt = nl.load(tmp_path / "m.npz", backend="cpu")
    assert loaded_opt.no_decay_names == opt.no_decay_names
    assert loaded_opt.no_decay == (tuple(saved) if isinstance(saved, list) else saved)
    for m, o in ((loaded, loaded_opt), (twin, twin_opt)):
        for _ in range(2):
            m.train_on_batch(X, y, optimizer=o, backend="cpu")
    for name, p in twin.parameters().items():
        np.testing.assert_array_equal(loaded.parameters()[name], p, err_msg=name)


def test_load_state_dict_carries_no_decay_in_memory():
    model = _model()
    source = nl.optim.SGD(lr=0.1, weight_decay=0.1, no_decay=["0.b"]).bind(model.store)
    target = nl.optim.SGD(lr=0.1, weight_decay=0.1).bind(_model().store)
    target.load_state_dict(source.state_dict())
    assert target.no_decay == ("0.b",) and target.no_decay_names == ("0.b",)
    assert target._decay_mask is not None
    unbound = nl.optim.SGD(lr=0.1, weight_decay=0.1)
    unbound.load_state_dict(source.state_dict())  # resolved when bound
    assert unbound.bind(_model().store).no_decay_names == ("0.b",)
    state = source.state_dict()
    state["hyper"]["no_decay"] = ["7.W"]
    with pytest.raises(ValueError, match=r"bad hyper-parameter.*\['7.W'\].*'0.W', '0.b'"):
        target.load_state_dict(state)
    assert target.no_decay == ("0.b",)


def test_a_callable_is_saved_only_once_bound():
    opt = nl.optim.Adam(no_decay=lambda name, p: True)
    with pytest.raises(ValueError, match=r"state_dict: no_decay is a callable.*bind it first"):
        opt.state_dict()
    opt.bind(_model().store)
    assert opt.state_dict()["hyper"]["no_decay"] == list(_model().parameters())


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "spec, error, match",
    [
        (
            5,
            TypeError,
            r"no_decay must be None .*'bias_and_norm' .*a list of parameter names.*; got int 5",
        ),
        ({"0.b"}, TypeError, "no_decay must be None.*got set"),
        ("bias", ValueError, r"'bias' is not a rule nnlib knows .*no_decay=\['bias'\]"),
        ("0.b", ValueError, r"to name parameters pass a list, e.g. no_decay=\['0.b'\]"),
        (["0.b", 3], TypeError, r"must hold strings such as '0.b'; got 3 \(int\)"),
    ],
)
def test_a_bad_no_decay_is_refused_by_every_optimizer(spec, error, match):
    for cls in (nl.optim.SGD, nl.optim.RMSprop, nl.optim.Adam, nl.optim.AdamW):
        with pytest.raises(error, match=match):
            cls(no_decay=spec)


def test_an_unknown_name_is_refused_at_bind_naming_it_and_the_models_names():
    model = _model()
    opt = nl.optim.RMSprop(no_decay=["0.b", "5.b", "bias"])
    with pytest.raises(
        ValueError, match=r"does not have: \['5.b', 'bias'\]; its parameters are \['0.W', '0.b'"
    ):
        opt.bind(model.store)
    assert opt.store is None and not opt.params  # nothing bound
    X, y = nl.datasets.blobs(8, centers=3, dim=4, seed=0)
    with pytest.raises(ValueError, match=r"\['5.b', 'bias'\]"):
        model.fit(X, y, optimizer=opt, epochs=1, verbose=0, backend="cpu")


def test_a_callable_must_answer_true_or_false():
    opt = nl.optim.SGD(no_decay=lambda name, p: p.ndim)
    with pytest.raises(TypeError, match=r"return True .* for '0.W' it returned int 2"):
        opt.bind(_model().store)


def test_a_mask_of_the_wrong_size_or_dtype_is_refused_by_the_op():
    p, g, b = np.zeros(5), np.zeros(5), np.zeros(5)
    for mask in (np.ones(4, np.uint8), np.ones(5, np.float64)):
        with pytest.raises(
            ValueError, match="mask must be a uint8 array of the parameter's size 5"
        ):
            dispatch("sgd_update", "cpu")(p, g, b, 0.1, 0.0, 0.0, 0.1, 0, 1, mask=mask)


# ---------------------------------------------------------------------------- cuda


@pytest.mark.cuda
@pytest.mark.parametrize("op", ["sgd_update", "rmsprop_update", "adam_update"])
def test_cuda_kernels_take_the_mask(op):
    from numba import cuda

    rng = np.random.default_rng(8)
    n = 7
    p0, g = rng.standard_normal(n), rng.standard_normal(n)
    state = [np.abs(rng.standard_normal(n)) for _ in range(1 if op == "sgd_update" else 2)]
    mask = np.array([1, 0, 1, 1, 0, 0, 1], np.uint8)
    scalars = {
        "sgd_update": [0.1, 0.9, 0.0, 0.3, 1, 0],
        "rmsprop_update": [0.01, 0.9, 1e-8, 0.3, 0.5],
        "adam_update": [0.01, 0.8, 0.9, 1e-8, 0.3, 1, 2],
    }[op]
    p_ref, st_ref = p0.copy(), [s.copy() for s in state]
    dispatch(op, "numpy")(p_ref, g, *st_ref, *scalars, mask=mask)
    unmasked = p0.copy()
    dispatch(op, "numpy")(unmasked, g, *[s.copy() for s in state], *scalars)
    assert not np.allclose(p_ref[mask == 0], unmasked[mask == 0])  # the mask is exercised
    p_d, g_d = cuda.to_device(p0), cuda.to_device(g)
    st_d = [cuda.to_device(s) for s in state]
    dispatch(op, "cuda")(p_d, g_d, *st_d, *scalars, mask=cuda.to_device(mask))
    np.testing.assert_allclose(p_d.copy_to_host(), p_ref, rtol=1e-12)
    for s_d, s_ref in zip(st_d, st_ref, strict=True):
        np.testing.assert_allclose(s_d.copy_to_host(), s_ref, rtol=1e-12)
    host = p0.copy()  # host arrays on cuda: copied there and back, no mask
    dispatch(op, "cuda")(host, g, *[s.copy() for s in state], *scalars)
    np.testing.assert_allclose(host, unmasked, rtol=1e-12)


@pytest.mark.cuda
def test_train_on_batch_on_cuda_keeps_the_mask_on_the_gpu_and_matches_numpy():
    from nnlib._validate import is_device_array

    X, y = nl.datasets.blobs(6, centers=3, dim=3, seed=0)
    runs = {}
    for backend in ("numpy", "cuda"):
        model = nl.Sequential([nl.Dense(3, 4), nl.Tanh(), nl.Dense(4, 3)], seed=0)
        opt = nl.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.5, no_decay="bias_and_norm")
        for _ in range(2):
            model.train_on_batch(X, y, optimizer=opt, backend=backend)
        runs[backend] = model, opt
    assert is_device_array(runs["cuda"][1]._decay_mask)
    for name, p in runs["numpy"][0].parameters().items():
        got = runs["cuda"][0].parameters()[name]
        got = got.copy_to_host() if is_device_array(got) else got
        np.testing.assert_allclose(got, p, rtol=1e-4, atol=1e-6, err_msg=name)
