"""Checks for the exercises of ``solutions/02_forward_losses.ipynb``."""
