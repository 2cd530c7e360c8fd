"""Backends and the one dispatch point.

nnlib has three backends with the same op names and signatures:

``"numpy"``
    the plain NumPy reference. It is the specification: every other backend is judged
    only by agreement with it.
``"cpu"``
    Numba-compiled kernels (``@njit(parallel=True, cache=True)``, ``prange``).
``"cuda"``
    numba-cuda kernels for NVIDIA GPUs (``pip install "nnlib[cuda]"``).

Which backend runs an op is decided here and nowhere else, in this order:

1. the explicit ``backend=`` argument of the call,
2. the innermost ``with nnlib.use_backend(...)`` block,
3. the ``NNLIB_BACKEND`` environment variable,
4. the default, ``"cpu"``.

A backend that cannot run raises :class:`BackendUnavailableError`, saying what is
missing and how to get it. nnlib never falls back silently to another backend.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Callable, Iterator

BACKENDS = ("numpy", "cpu", "cuda")
DEFAULT_BACKEND = "cpu"
ENV_VAR = "NNLIB_BACKEND"

_context_backend: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "nnlib_backend", default=None
)

# op name -> backend name -> implementation. Filled by the op modules (nnlib/ops/*)
# through :func:`register`; read only by :func:`dispatch`.
_REGISTRY: dict[str, dict[str, Callable]] = {}


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here; the message says why and what to do."""


def _check_name(name: object, source: str) -> str:
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"{source} must be one of {', '.join(map(repr, BACKENDS))}; got {name!r}")
    return name


@functools.cache
def _cuda_problem() -> str | None:
    """Why the cuda backend cannot run here, or None when it can.

    The first call imports numba-cuda and makes nnlib's CUDA kernels (see
    :mod:`nnlib._cuda`): nothing of CUDA is imported before the backend is asked for.
    """
    from . import _cuda

    if not _cuda.installed():
        return (
            "the 'cuda' backend needs the numba-cuda package, which is not installed. "
            "Install it with: pip install 'nnlib[cuda]' (CUDA 13 driver) or "
            "pip install 'numba-cuda[cu12]' (CUDA 12 driver); see README.md"
        )
    try:
        cuda = _cuda.load()
    except ImportError as exc:
        return f"the 'cuda' backend could not import numba-cuda: {exc}"
    if _cuda.SIMULATOR:
        return None  # the CUDA simulator runs kernels on the CPU, slowly, for testing
    try:
        available = cuda.is_available()
    except Exception as exc:
        return f"numba-cuda could not initialise CUDA: {exc}"
    if not available:
        return (
            "the 'cuda' backend needs an NVIDIA GPU with a working driver, and "
            "numba.cuda.is_available() is False on this machine. Use backend='cpu', or "
            "set NUMBA_ENABLE_CUDASIM=1 before importing nnlib to run the CUDA kernels "
            "in Numba's (slow) simulator"
        )
    return None


def backend_problem(name: str) -> str | None:
    """Return why backend ``name`` cannot run here, or ``None`` if it can."""
    _check_name(name, "backend")
    if name == "cuda":
        return _cuda_problem()
    if name == "cpu":
        try:
            import numba  # noqa: F401
        except ImportError as exc:
            return f"the 'cpu' backend needs numba ({exc}): pip install numba"
    return None


def available_backends() -> list[str]:
    """The backends that can run on this machine, e.g. ``['numpy', 'cpu']``."""
    return [name for name in BACKENDS if backend_problem(name) is None]


def resolve_backend(backend: str | None = None) -> str:
    """Return the name of the backend an op called with ``backend=backend`` runs on.

    Raises
    ------
    ValueError
        if the name is not one of ``BACKENDS``.
    BackendUnavailableError
        if that backend cannot run on this machine.
    """
    if backend is not None:
        name = _check_name(backend, "backend")
    elif (ctx := _context_backend.get()) is not None:
        name = ctx
    elif (env := os.environ.get(ENV_VAR)) not in (None, ""):
        name = _check_name(env, f"the environment variable {ENV_VAR}")
    else:
        name = DEFAULT_BACKEND
    problem = backend_problem(name)
    if problem is not None:
        raise BackendUnavailableError(problem)
    return name


def get_backend() -> str:
    """The backend an op called without ``backend=`` would run on now."""
    return resolve_backend(None)


@contextlib.contextmanager
def use_backend(backend: str) -> Iterator[str]:
    """Run the ops inside the ``with`` block on ``backend`` (unless a call names another).

    >>> import nnlib
    >>> with nnlib.use_backend("numpy"):
    ...     nnlib.get_backend()
    'numpy'
    """
    name = resolve_backend(backend)  # fail at the `with`, not at the first op
    token = _context_backend.set(name)
    try:
        yield name
    finally:
        _context_backend.reset(token)


def register(op: str, backend: str) -> Callable[[Callable], Callable]:
    """Decorator: make ``fn`` the implementation of ``op`` on ``backend``."""
    _check_name(backend, "backend")

    def decorate(fn: Callable) -> Callable:
        impls = _REGISTRY.setdefault(op, {})
        if backend in impls:
            raise RuntimeError(f"op {op!r} already has a {backend!r} implementation")
        impls[backend] = fn
        return fn

    return decorate


def dispatch(op: str, backend: str | None = None) -> Callable:
    """The implementation of ``op`` on the resolved backend (see the module docstring)."""
    name = resolve_backend(backend)
    try:
        return _REGISTRY[op][name]
    except KeyError:
        raise NotImplementedError(f"op {op!r} has no {name!r} implementation") from None


def registered_ops() -> dict[str, tuple[str, ...]]:
    """Every registered op and the backends that implement it."""
    return {op: tuple(sorted(impls)) for op, impls in sorted(_REGISTRY.items())}
