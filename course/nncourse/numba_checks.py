"""Sub-checks shared by the Numba kernel exercises: the learner's function is a Numba
function, compiles in nopython mode, is compiled with ``parallel=True``, and Numba
really turned a ``prange`` loop into a parallel loop.

:func:`add_numba_subchecks` registers the four on an exercise, given the function's name
and a sample argument tuple to compile it with.
"""

from __future__ import annotations

import warnings

from .checks import CheckFailed, Exercise

# NOTE: compiling with parallel=True takes a second or two: the diagnostics of one
# learner function are computed once per kernel session.
_PRANGE_LOOPS: dict = {}


def dispatcher(fn, name: str, signature: str):
    """``fn`` if it is a Numba CPU function, else a failure with the decorator to add."""
    from numba.core.registry import CPUDispatcher

    if not isinstance(fn, CPUDispatcher):
        raise CheckFailed(
            f"{name} is a plain {type(fn).__name__}, not a Numba function. Hint: put "
            f"@njit(parallel=True) on the line above `def {name}({signature}):`."
        )
    return fn


def call_nopython(fn, name: str, *args):
    """``fn(*args)``; a Numba typing or lowering error becomes a failure with a hint."""
    from numba.core.errors import NumbaError

    try:
        return fn(*args)
    except NumbaError as err:
        first = str(err).strip().splitlines()[0]
        raise CheckFailed(
            f"Numba could not compile {name} in nopython mode: {first}. Hint: use only "
            "NumPy arrays, numbers and loops inside; no lists of mixed types, no Python objects."
        ) from None


def prange_loops(fn, name: str, *args) -> int:
    """How many ``prange`` loops Numba parallelized when compiling ``fn`` for ``args``."""
    from numba import njit

    code = fn.py_func.__code__
    if code not in _PRANGE_LOOPS:
        # A fresh copy with parallel=True: the learner's own may be cached or serial.
        fresh = njit(parallel=True)(fn.py_func)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no transformation for parallel" is our verdict
            call_nopython(fresh, name, *args)
        diagnostics = fresh.get_metadata(fresh.signatures[0])["parfor_diagnostics"]
        _PRANGE_LOOPS[code] = sum(
            1
            for p in diagnostics.get_parfors()
            if any(pattern[0] == "prange" for pattern in getattr(p, "patterns", ()))
        )
    return _PRANGE_LOOPS[code]


def add_numba_subchecks(ex: Exercise, name: str, signature: str, sample, loop_hint: str):
    """Register the four Numba sub-checks on ``ex`` (whose one function is ``name``).

    ``sample()`` returns an argument tuple to compile with; ``loop_hint`` says which loop
    to write with ``prange``, e.g. "`for i in prange(z.shape[0]):` over the rows".
    """

    @ex.subcheck(f"{name} is a Numba function (@njit)")
    def _(fn):
        dispatcher(fn, name, signature)

    @ex.subcheck(f"{name} compiles in nopython mode")
    def _(fn):
        fn = dispatcher(fn, name, signature)
        if fn.targetoptions.get("forceobj"):
            raise CheckFailed(f"{name} is compiled in object mode (forceobj=True): use @njit.")
        call_nopython(fn, name, *sample())

    @ex.subcheck(f"{name} is compiled with parallel=True")
    def _(fn):
        if not dispatcher(fn, name, signature).targetoptions.get("parallel"):
            raise CheckFailed(
                f"{name} is compiled without parallel=True, so prange runs as a plain range. "
                "Hint: @njit(parallel=True)."
            )

    @ex.subcheck(f"Numba runs {name}'s loop in parallel (a prange loop)")
    def _(fn):
        if prange_loops(dispatcher(fn, name, signature), name, *sample()) == 0:
            raise CheckFailed(
                f"Numba found no prange loop to run in parallel. Hint: write {loop_hint} "
                "(from numba import prange); `range` runs serially."
            )
