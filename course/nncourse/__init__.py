"""Autograded exercises: the checks behind the grade cells, the notebook build, the grader.

* :func:`check` is what a grade cell calls: ``check("softmax", softmax)``.
* ``python -m nnlib.grading build [--check]`` generates ``exercises/`` from ``solutions/``.
* ``python -m nnlib.grading grade [NOTEBOOK ...]`` (``make grade``) grades notebooks.

Each exercise set registers its checks in its own module, imported here. Exercise names
are unique across the whole course.
"""

# (importing a module registers the exercises of its notebook)
from . import (
    activations,  # noqa: F401  01_activations
    backprop,  # noqa: F401  03_backprop
    forward_losses,  # noqa: F401  02_forward_losses
    gradient_descent,  # noqa: F401  04_gradient_descent
)
from .checks import EXERCISES, check

__all__ = ["EXERCISES", "check"]
