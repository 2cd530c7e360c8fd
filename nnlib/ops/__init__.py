"""Op families. Each module keeps one concept's NumPy reference, Numba CPU kernel and
CUDA kernel side by side and registers them with :func:`nnlib._backend.register`."""

from . import activations, batchnorm, conv, dense, dropout, gather, losses, optim, softmax  # noqa: F401
