"""nnlib: a small neural-network library with a NumPy reference and Numba kernels for
the CPU and NVIDIA GPUs, built for the course "How neural networks learn".

>>> import nnlib as nl
>>> nl.functional.relu([-1.0, 0.0, 2.0], backend="numpy")
array([0., 0., 2.])
"""

from importlib.metadata import PackageNotFoundError, version

from . import functional
from ._backend import (
    BACKENDS,
    BackendUnavailableError,
    available_backends,
    get_backend,
    use_backend,
)

try:
    __version__ = version("nnlib")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "__version__",
    "available_backends",
    "functional",
    "get_backend",
    "use_backend",
]
