"""Checks for the exercises of ``solutions/04_gradient_descent.ipynb``."""
