"""Checks for the exercises of ``solutions/03_backprop.ipynb``."""
