"""Autograded exercises: the checks behind the grade cells, the notebook build, the grader.

* :func:`check` is what a grade cell calls: ``check("softmax", softmax)``.
* ``python -m nnlib.grading build [--check]`` generates ``exercises/`` from ``solutions/``.
* ``python -m nnlib.grading grade [NOTEBOOK ...]`` (``make grade``) grades notebooks.
"""

from . import activations  # noqa: F401  (registers the exercises of 01_activations)
from .checks import EXERCISES, check

__all__ = ["EXERCISES", "check"]
