"""numba-cuda, imported once.

``cuda`` is ``numba.cuda`` from the numba-cuda package, or ``None`` when that package is
not installed. Kernels are still *defined* without it (``cuda_jit`` then leaves the
Python function as it is), so ``import nnlib`` works everywhere; they are only launched
after :func:`nnlib._backend.resolve_backend` has checked that the cuda backend can run.
"""

from __future__ import annotations

try:
    import numba_cuda  # noqa: F401  (numba's own built-in numba.cuda is deprecated)
    from numba import cuda
except ImportError:  # pragma: no cover - depends on the install
    cuda = None


def cuda_jit(fn=None, **options):
    """``numba.cuda.jit`` when numba-cuda is installed, otherwise a no-op decorator."""
    if cuda is None:
        return fn if fn is not None else (lambda f: f)
    return cuda.jit(fn, **options) if fn is not None else cuda.jit(**options)
