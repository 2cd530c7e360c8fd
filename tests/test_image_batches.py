"""A model takes image batches (N, C, H, W) as well as rows (N, D): the per-example shape
is a width D or a tuple (C, H, W), layers are built from it, and ``Flatten`` turns
images into rows."""

from __future__ import annotations

import numpy as np
import pytest

import nnlib as nl

RNG = np.random.default_rng(0)
X_ROWS = RNG.normal(size=(40, 12)).astype(np.float32)
X_IMAGES = X_ROWS.reshape(40, 3, 2, 2)
Y = RNG.integers(0, 4, size=40)


def _mlp(first):
    return nl.Sequential([first, nl.Dense(8, activation="relu"), nl.Dropout(0.3), nl.Dense(4)])


def test_flatten_is_a_c_order_reshape_both_ways():
    x = RNG.normal(size=(2, 3, 4, 5))
    layer = nl.Flatten()
    y = layer.forward(x)
    assert y.shape == (2, 60)
    # y[n, (c*H + i)*W + j] = x[n, c, i, j]
    assert y[1, (2 * 4 + 3) * 5 + 1] == x[1, 2, 3, 1]
    assert np.shares_memory(y, x)  # a view: nothing copied
    dy = RNG.normal(size=(2, 60))
    dx = layer.backward(dy)
    assert dx.shape == x.shape and dx[1, 2, 3, 1] == dy[1, (2 * 4 + 3) * 5 + 1]
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 60\)"):
        layer.backward(dy[:, :59])


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_a_model_on_images_trains_exactly_as_on_the_same_pixels_as_rows(backend):
    on_rows, on_images = _mlp(nl.Flatten()), _mlp(nl.Flatten())
    h_rows = on_rows.fit(X_ROWS, Y, epochs=3, batch_size=8, seed=3, verbose=0, backend=backend)
    h_img = on_images.fit(X_IMAGES, Y, epochs=3, batch_size=8, seed=3, verbose=0, backend=backend)
    assert h_img.history["loss"] == h_rows.history["loss"]
    for name, value in on_rows.parameters().items():
        np.testing.assert_array_equal(on_images.parameters()[name], value)
    assert on_images.input_features == (3, 2, 2)
    np.testing.assert_array_equal(on_images.predict(X_IMAGES), on_rows.predict(X_ROWS))


def test_build_takes_an_image_shape_and_flatten_can_fix_it_up_front():
    model = _mlp(nl.Flatten()).build((3, 2, 2), seed=0)
    assert model.parameter_shapes()["1.W"] == (12, 8)
    fixed = _mlp(nl.Flatten(input_shape=(3, 2, 2)))
    assert fixed.input_features == (3, 2, 2)
    assert fixed.parameter_shapes()["1.W"] == (12, 8)
    with pytest.raises(ValueError, match=r"image shape \(C, H, W\)"):
        _mlp(nl.Flatten()).build((3, 4), seed=0)
    with pytest.raises(ValueError, match="three positive ints"):
        nl.Flatten(input_shape=(3, 0, 2))


def test_wrong_layouts_are_refused_with_the_reshape_to_use():
    model = _mlp(nl.Flatten()).build((3, 2, 2), seed=0)
    with pytest.raises(ValueError, match=r"images \(N, C, H, W\) = \(N, 3, 2, 2\).*X\.reshape\("):
        model.predict(X_ROWS)
    rows = nl.Sequential([nl.Dense(12, 4)], seed=0)
    with pytest.raises(
        ValueError, match=r"rows \(N, D\) of D = 12 features.*reshape\(len\(X\), -1\)"
    ):
        rows.predict(X_IMAGES)
    with pytest.raises(ValueError, match=r"put nl\.Flatten\(\) before it"):
        nl.Sequential([nl.Dense(4)]).fit(X_IMAGES, Y, verbose=0)
    with pytest.raises(ValueError, match=r"put nl\.Flatten\(\) before it"):
        nl.Sequential([nl.BatchNorm1d(), nl.Dense(4)]).fit(X_IMAGES, Y, verbose=0)
    with pytest.raises(ValueError, match=r"2-D rows \(N, D\) or 4-D images.*reshape"):
        model.predict(X_ROWS[:, :, None])
    with pytest.raises(ValueError, match=r"validation_data must be \(N_val, 3, 2, 2\)"):
        _mlp(nl.Flatten()).fit(
            X_IMAGES, Y, validation_data=(X_IMAGES[:, :, :1], Y), verbose=0, epochs=1
        )


def test_an_image_model_saves_and_loads_with_its_input_shape(tmp_path):
    model = _mlp(nl.Flatten())
    model.fit(X_IMAGES, Y, epochs=1, seed=0, verbose=0)
    loaded = nl.load(model.save(tmp_path / "m.npz"))
    assert loaded.input_features == (3, 2, 2)
    np.testing.assert_array_equal(loaded.predict(X_IMAGES), model.predict(X_IMAGES))


def test_gradcheck_holds_dropout_masks_of_image_shape():
    model = nl.Sequential(
        [nl.Dropout(0.2), nl.Flatten(), nl.Dense(6, activation="relu"), nl.Dense(4)]
    ).build((3, 2, 2), seed=1)
    assert nl.gradcheck(model, X_IMAGES[:6], Y[:6]).passed


@pytest.mark.cuda
def test_fit_batches_image_data_on_the_gpu():
    """take_rows gathers whole images on the device (it used to take 1-D or 2-D only)."""

    def make():
        return nl.Sequential([nl.Flatten(), nl.Dense(8, activation="relu"), nl.Dense(4)])

    cpu, gpu = make(), make()
    h_cpu = cpu.fit(X_IMAGES, Y, epochs=1, batch_size=16, seed=2, verbose=0, backend="numpy")
    h_gpu = gpu.fit(X_IMAGES, Y, epochs=1, batch_size=16, seed=2, verbose=0, backend="cuda")
    np.testing.assert_allclose(h_gpu.history["loss"], h_cpu.history["loss"], rtol=1e-4)
