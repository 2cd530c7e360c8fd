"""nnlib: a small neural-network library with a NumPy reference and Numba kernels for
the CPU and NVIDIA GPUs, built for the course "How neural networks learn".

>>> import nnlib as nl
>>> nl.functional.relu([-1.0, 0.0, 2.0], backend="numpy")
array([0., 0., 2.])
"""

import os
from importlib.metadata import PackageNotFoundError, version

# NOTE: the cpu backend alternates BLAS calls (np.dot inside @njit, OpenBLAS's threads)
# with Numba parallel loops (OpenMP's threads). By default idle OpenMP threads spin for a
# while after each parallel loop, stealing the cores BLAS is about to use: on a 2-core
# machine that made a small training step ~100x slower. PASSIVE makes them sleep instead.
# It must be set before Numba loads its OpenMP runtime; an explicit setting is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# NOTE: the same holds for OpenBLAS (the BLAS of the NumPy and SciPy wheels): after each
# call its idle threads spin for 2^28 cycles (~0.1 s) before sleeping, taking the cores
# from the Numba loops between two products, and NumPy and SciPy each load their own
# OpenBLAS, whose spinning threads then fight each other. 2^4 cycles makes them sleep
# at once: on the 2-core machine the median 784-1024-10 training step went from 17.6 ms
# to 8.9 ms. OpenBLAS reads it when it loads: NumPy's only if nnlib is imported first.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from . import (
    callbacks,
    compiled,
    datasets,
    functional,
    init,
    losses,
    metrics,
    model_selection,
    optim,
    params,
    preprocessing,
    training,
    tuning,
)
from ._backend import (
    BACKENDS,
    BackendUnavailableError,
    available_backends,
    get_backend,
    use_backend,
)
from .gradient_check import GradCheck, gradcheck
from .layers import (
    ELU,
    GELU,
    BatchNorm1d,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    LeakyReLU,
    MaxPool2D,
    NotBuiltError,
    PReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
)
from .model import Sequential, load, save

try:
    __version__ = version("nnlib")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "BACKENDS",
    "ELU",
    "GELU",
    "BackendUnavailableError",
    "BatchNorm1d",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GradCheck",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "NotBuiltError",
    "PReLU",
    "ReLU",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "__version__",
    "available_backends",
    "callbacks",
    "compiled",
    "datasets",
    "functional",
    "get_backend",
    "gradcheck",
    "init",
    "load",
    "losses",
    "metrics",
    "model_selection",
    "optim",
    "params",
    "preprocessing",
    "save",
    "training",
    "tuning",
    "use_backend",
]
