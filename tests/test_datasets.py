"""The data sets: generated toy sets (seeded, typed, every class present) and the bundled
handwritten digits (shape, classes, checksum verified on load)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import nnlib as nl
from nnlib import datasets

CLASSIFICATION = {
    "moons": (datasets.moons, 2, 2),
    "circles": (datasets.circles, 2, 2),
    "xor": (datasets.xor, 2, 2),
    "spirals": (lambda **kw: datasets.spirals(classes=4, **kw), 2, 4),
    "blobs": (lambda **kw: datasets.blobs(centers=3, dim=5, **kw), 5, 3),
}


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_generated_set_is_seeded_typed_and_balanced(name):
    make, dim, classes = CLASSIFICATION[name]
    X, y = make(n=301, seed=3)
    assert X.dtype == np.float32 and X.shape == (301, dim) and X.flags.c_contiguous
    assert y.dtype == np.int64 and y.shape == (301,)
    assert set(np.unique(y)) == set(range(classes))
    X2, y2 = make(n=301, seed=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = make(n=301, seed=4)
    assert not np.array_equal(X, X3)
    assert set(np.unique(y[:60])) == set(range(classes)), "examples are not shuffled"


def test_xor_labels_follow_the_sign_rule_without_noise():
    X, y = datasets.xor(n=200, noise=0.0, seed=0)
    np.testing.assert_array_equal(y, (np.sign(X[:, 0]) != np.sign(X[:, 1])).astype(np.int64))


def test_circles_inner_radius_is_the_factor():
    X, y = datasets.circles(n=200, noise=0.0, factor=0.3, seed=0)
    r = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(r[y == 0], 1.0, rtol=1e-5)
    np.testing.assert_allclose(r[y == 1], 0.3, rtol=1e-5)


def test_sine_is_a_regression_set():
    X, y = datasets.sine(n=50, noise=0.0, seed=0)
    assert X.shape == y.shape == (50, 1) and X.dtype == y.dtype == np.float32
    np.testing.assert_allclose(y, np.sin(X), atol=1e-6)


@pytest.mark.parametrize(("kwargs", "text"), [({"n": 0}, "n must be"), ({"noise": -1}, "noise")])
def test_bad_arguments_are_named(kwargs, text):
    with pytest.raises(ValueError, match=text):
        datasets.moons(**kwargs)


@pytest.mark.parametrize(
    ("make", "kwargs", "text"),
    [
        (datasets.spirals, {"classes": 1}, r"classes must be an int >= 2; got 1"),
        (datasets.spirals, {"classes": 2.5}, r"classes must be an int >= 2; got 2.5"),
        (datasets.blobs, {"centers": 0}, r"centers must be an int >= 1; got 0"),
        (datasets.blobs, {"dim": 0}, r"dim must be an int >= 1; got 0"),
        (datasets.circles, {"factor": 1.5}, r"factor must be a number in \(0, 1\).*got 1.5"),
        (datasets.sine, {"n": -3}, r"n must be an int >= 1; got -3"),
    ],
)
def test_generator_specific_arguments_are_checked(make, kwargs, text):
    with pytest.raises(ValueError, match=text):
        make(**kwargs)


def test_load_digits_is_the_uci_set():
    X, y = nl.datasets.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16 and np.all(X == np.round(X))
    counts = np.bincount(y)
    assert len(counts) == 10 and counts.min() >= 170 and counts.max() <= 185
    images, y2 = nl.datasets.load_digits(images=True)
    assert images.shape == (1797, 8, 8)
    np.testing.assert_array_equal(images.reshape(1797, 64), X)
    np.testing.assert_array_equal(y, y2)


def test_load_digits_classes_differ_in_their_mean_image():
    # A zero has an empty centre and a one a full central column: the data are digits.
    images, y = nl.datasets.load_digits(images=True)
    zero, one = images[y == 0].mean(0), images[y == 1].mean(0)
    assert zero[3:5, 3:5].mean() < 4 < one[3:5, 3:5].mean()


def test_load_digits_refuses_a_corrupt_file(tmp_path):
    from importlib import resources

    good = resources.files("nnlib") / "data" / "digits.npz"
    bad = tmp_path / "digits.npz"
    shutil.copy(str(good), bad)
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(datasets.DataIntegrityError, match=r"corrupt.*SHA-256"):
        datasets.load_digits(path=bad)
    shutil.copy(str(good), bad)
    assert datasets.load_digits(path=bad)[0].shape == (1797, 64)


def test_the_wheel_ships_the_digits_and_their_attribution(tmp_path):
    # `pip install .` installs what the wheel holds: build one from a copy of the sources
    # (offline, with the setuptools already installed) and look inside.
    import hashlib
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    shutil.copytree(root / "nnlib", src / "nnlib", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q"),
            *("--no-index", "-w", str(tmp_path / "dist"), str(src)),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, f"building the wheel failed:\n{built.stdout}\n{built.stderr}"
    (wheel,) = (tmp_path / "dist").glob("nnlib-*.whl")
    with zipfile.ZipFile(wheel) as z:
        digits = z.read("nnlib/data/digits.npz")
        readme = z.read("nnlib/data/README.md").decode()
    assert hashlib.sha256(digits).hexdigest() == datasets.DIGITS_SHA256
    assert "CC BY 4.0" in readme and "Alpaydin" in readme
