"""Save and load: one file holds the architecture, the parameters and optionally the
optimizer; the round trip is exact; bad files give clear errors; saving is atomic."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import nnlib as nl
from nnlib.io import FORMAT_VERSION, ModelFileError


def _model(seed=0, dtype=np.float32):
    return nl.Sequential(
        [
            nl.Dense(4, 16, init="he"),
            nl.PReLU(per_feature=True),
            nl.Dropout(0.2),
            nl.Dense(16, 8, activation="relu"),
            nl.LeakyReLU(0.05),
            nl.ELU(0.5),
            nl.Dense(8, 3),
        ],
        seed=seed,
        dtype=dtype,
    )


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    return X, (X[:, 0] > X[:, 1]).astype(np.int64) + (X[:, 2] > 1)


def _steps(model, opt, X, y, n):
    """n full-batch training steps without dropout randomness (eval-mode forward)."""
    loss = nl.losses.get("softmax_cross_entropy")
    opt.bind(model.parameters(), model.gradients())
    for _ in range(n):
        out = model.forward(X, training=False)
        loss(out, loss.prepare(y, 3, model.dtype))
        model.backward(loss.backward())
        opt.step()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_restores_architecture_parameters_and_predictions(tmp_path, dtype):
    X, y = _data()
    model = _model(dtype=dtype)
    model.fit(X, y, loss="softmax_cross_entropy", epochs=3, batch_size=16, seed=0, verbose=0)
    path = model.save(tmp_path / "m.npz")
    back = nl.load(path, backend="numpy")
    assert [type(a) for a in back.layers] == [type(b) for b in model.layers]
    assert back.dtype == model.dtype
    assert back.layers[4].alpha == 0.05 and back.layers[5].alpha == 0.5
    assert back.layers[2].p == 0.2 and back.layers[3].activation == "relu"
    for name, value in model.parameters().items():
        np.testing.assert_array_equal(back.parameters()[name], value)
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X, backend="numpy"))


def test_loaded_model_runs_on_any_available_backend(tmp_path):
    X, _ = _data()
    model = _model()
    nl.save(model, tmp_path / "m.npz")
    ref = model.forward(X)
    for backend in nl.available_backends():
        back = nl.load(tmp_path / "m.npz", backend=backend)
        assert back.backend == backend
        out = back.predict(X)
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: nl.optim.Adam(lr=1e-2),
        lambda: nl.optim.AdamW(lr=1e-2, betas=(0.8, 0.99)),
        lambda: nl.optim.SGD(lr=0.1, momentum=0.9, nesterov=True),
        lambda: nl.optim.RMSprop(lr=1e-2, momentum=0.5),
    ],
    ids=["Adam", "AdamW", "SGD", "RMSprop"],
)
def test_resuming_from_a_file_continues_the_same_trajectory(tmp_path, make):
    X, y = _data()
    straight, opt = _model(), make()
    _steps(straight, opt, X, y, 10)

    first, opt1 = _model(), make()
    _steps(first, opt1, X, y, 4)
    nl.save(first, tmp_path / "ckpt.npz", optimizer=opt1)
    resumed, opt2 = nl.load(tmp_path / "ckpt.npz", backend="numpy")
    assert type(opt2) is type(opt1) and opt2.t == 4 and opt2.lr == opt1.lr
    assert [getattr(opt2, k) for k in opt1.hyper_names] == [
        getattr(opt1, k) for k in opt1.hyper_names
    ]
    _steps(resumed, opt2, X, y, 6)
    for name, value in straight.parameters().items():
        np.testing.assert_allclose(resumed.parameters()[name], value, rtol=1e-6, atol=1e-7)


def test_without_an_optimizer_load_returns_the_model_only(tmp_path):
    nl.save(_model(), tmp_path / "m.npz")
    assert isinstance(nl.load(tmp_path / "m.npz"), nl.Sequential)


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    good = _model(seed=1)
    nl.save(good, path)
    before = path.read_bytes()

    def broken(file, **arrays):
        file.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        nl.save(_model(seed=2), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"], "a temporary file was left behind"
    monkeypatch.undo()
    np.testing.assert_array_equal(nl.load(path).parameters()["0.W"], good.parameters()["0.W"])


def _rewrite(path, edit):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(arrays["__nnlib__"].tobytes())
    edit(header, arrays)
    arrays["__nnlib__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **arrays)


def test_bad_files_give_clear_errors_never_a_crash(tmp_path):
    path = tmp_path / "m.npz"
    nl.save(_model(), path, optimizer=nl.optim.Adam().bind(*_binding()))

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        nl.load(truncated)

    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not a readable nnlib model file"):
        nl.load(text)

    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ModelFileError, match="not an nnlib model file"):
        nl.load(other)

    newer = tmp_path / "newer.npz"
    newer.write_bytes(path.read_bytes())
    _rewrite(newer, lambda h, a: h.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ModelFileError, match="Upgrade nnlib"):
        nl.load(newer)

    shapes = tmp_path / "shapes.npz"
    shapes.write_bytes(path.read_bytes())
    _rewrite(shapes, lambda h, a: a.update({"param/0.W": np.zeros((5, 16), np.float32)}))
    with pytest.raises(ModelFileError, match=r"'0\.W'.*shape \(5, 16\).*\(4, 16\)"):
        nl.load(shapes)

    layer = tmp_path / "layer.npz"
    layer.write_bytes(path.read_bytes())
    _rewrite(layer, lambda h, a: h["layers"][1].update({"class": "Conv2d"}))
    with pytest.raises(ModelFileError, match="cannot build"):
        nl.load(layer)

    with pytest.raises(FileNotFoundError, match="no file"):
        nl.load(tmp_path / "missing.npz")


def test_loading_never_unpickles(tmp_path):
    path = tmp_path / "m.npz"
    nl.save(_model(), path)
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            with z.open(name) as member:
                assert b"\x80\x04" not in member.read(64)[:2], f"{name} is a pickle"
    with np.load(path, allow_pickle=False) as f:
        assert all(f[k].dtype != object for k in f.files)


def _binding():
    m = _model()
    return m.parameters(), m.gradients()


def test_save_names_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="model must be an nnlib Sequential"):
        nl.save("model", tmp_path / "m.npz")
    with pytest.raises(TypeError, match="optimizer must be one of"):
        nl.save(_model(), tmp_path / "m.npz", optimizer="adam")
    with pytest.raises(nl.NotBuiltError):
        nl.save(nl.Sequential([nl.Dense(3)]), tmp_path / "m.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nl.save(_model(), tmp_path / "nope" / "m.npz")


# ---------------------------------------------------------------------------- hostile files


def test_a_small_file_claiming_a_huge_model_is_refused_before_allocating(tmp_path):
    import tracemalloc

    path = tmp_path / "m.npz"
    nl.save(_model(), path)
    huge = tmp_path / "huge.npz"
    huge.write_bytes(path.read_bytes())

    def one_huge_layer(header, arrays):
        dense = {"in_features": 50_000, "out_features": 50_000, "init": "he", "activation": None}
        header["layers"] = [{"class": "Dense", "config": dense}]
        for k in [k for k in arrays if k.startswith("param/") and not k.startswith("param/0.")]:
            del arrays[k]

    _rewrite(huge, one_huge_layer)
    tracemalloc.start()
    with pytest.raises(
        ModelFileError, match=r"has shape \(4, 16\); its layer needs \(50000, 50000\)"
    ):
        nl.load(huge)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50e6, f"load allocated {peak / 1e6:.0f} MB for a {huge.stat().st_size} B file"


def test_an_array_header_claiming_more_than_its_bytes_is_refused(tmp_path):
    import io
    import zipfile

    path = tmp_path / "m.npz"
    nl.save(_model(), path)
    header = io.BytesIO()  # an .npy header that claims 10^10 rows, then 64 bytes of data
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10_000_000_000, 16)}
    )
    crafted = tmp_path / "crafted.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(crafted, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "param/0.W.npy":
                data = header.getvalue() + bytes(64)
            dst.writestr(info, data)
    with pytest.raises(ModelFileError, match="claims shape"):
        nl.load(crafted)


def test_an_npy_file_is_not_a_model_file(tmp_path):
    npy = tmp_path / "weights.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ModelFileError, match="not a readable nnlib model file"):
        nl.load(npy)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda o: o["hyper"].update(lr=-1), "lr must be > 0"),
        (lambda o: o["hyper"].update(lr="fast"), "lr must be a real number"),
        (lambda o: o["hyper"].update(betas=[0.9]), "betas must be a pair"),
        (lambda o: o["hyper"].update(__class__="x"), "no hyper-parameter|unexpected keyword"),
    ],
)
def test_optimizer_hyper_parameters_in_a_file_are_validated(tmp_path, edit, match):
    path = tmp_path / "m.npz"
    nl.save(_model(), path, optimizer=nl.optim.Adam().bind(*_binding()))
    _rewrite(path, lambda h, a: edit(h["optimizer"]))
    with pytest.raises(ModelFileError, match=match):
        nl.load(path)


def test_an_optimizer_state_of_the_wrong_shape_in_a_file_is_an_error_not_a_reset(tmp_path):
    path = tmp_path / "m.npz"
    nl.save(_model(), path, optimizer=nl.optim.Adam().bind(*_binding()))
    _rewrite(path, lambda h, a: a.update({"optimizer/0.W/exp_avg": np.zeros((2, 2), np.float32)}))
    with pytest.raises(ModelFileError, match=r"restored state of '0\.W'"):
        nl.load(path)


def test_save_keeps_a_files_permissions_and_writes_through_a_symlink(tmp_path):
    import os
    import stat

    target = tmp_path / "models" / "m.npz"
    target.parent.mkdir()
    nl.save(_model(seed=1), target)
    os.chmod(target, 0o640)
    link = tmp_path / "latest.npz"
    link.symlink_to(target)
    nl.save(_model(seed=2), link)
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    np.testing.assert_array_equal(
        nl.load(target).parameters()["0.W"], _model(seed=2).parameters()["0.W"]
    )
    fresh = tmp_path / "new.npz"
    umask = os.umask(0o022)
    try:
        nl.save(_model(), fresh)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
