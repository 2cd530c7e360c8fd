"""The course's grader (distribution ``nnlib-course``): the checks behind the grade
cells, the notebook build, the grader. It lives beside nnlib, not in it: nnlib never
imports it.

* :func:`check` is what a grade cell calls: ``check("softmax", softmax)``.
* ``python -m nncourse build [--check]`` generates ``exercises/`` from ``solutions/``.
* ``python -m nncourse grade [NOTEBOOK ...]`` (``make grade``) grades notebooks.
* ``python -m nncourse reset NOTEBOOK EXERCISE ...`` starts exercises over.

The course's folder (``exercises/`` and ``solutions/``) is ``--root``, ``$NNCOURSE_ROOT``
or the nearest one above the current directory (:func:`~nncourse.notebooks.course_root`).

Each exercise set registers its checks in its own module, imported here. Exercise names
are unique across the whole course.
"""

# (importing a module registers the exercises of its notebook)
from . import (
    activations,  # noqa: F401  01_activations
    backprop,  # noqa: F401  03_backprop
    capstone,  # noqa: F401  07_capstone
    forward_losses,  # noqa: F401  02_forward_losses
    gradient_descent,  # noqa: F401  04_gradient_descent
    initialization,  # noqa: F401  05_initialization
    overfitting,  # noqa: F401  06_overfitting
)
from .checks import EXERCISES, check

__all__ = ["EXERCISES", "check"]
