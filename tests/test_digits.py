"""The capstone recipe (benchmarks/digits_mlp.py) reaches 97% test accuracy on the
bundled digits: an MLP learns real images, with a leak-free split and scaling."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from digits_mlp import train_digits


@pytest.mark.slow
def test_digits_recipe_reaches_97_percent_on_the_test_split():
    _, accuracy, _ = train_digits(seed=0, backend="cpu")
    assert accuracy >= 0.97, accuracy
