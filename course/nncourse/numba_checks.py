"""Sub-checks shared by the Numba kernel exercises, judged by behaviour where possible.

* :func:`add_numba_subchecks` registers four on an exercise: the learner's function is a
  Numba function, compiles in nopython mode, is compiled with ``parallel=True``, and
  Numba really turned a ``prange`` loop into a parallel loop that does the work (not a
  ``prange(1)`` wrapper around a serial loop).
* :func:`expect_no_races` runs the kernel on large inputs several times with every
  thread and compares each run with the reference: a race shows as a wrong or changing
  result. Per-thread partial sums are not a race and pass.
* :func:`expect_every_element_written` catches outputs the kernel never writes (an
  off-by-one ``prange(n - 1)``) in a way that cannot pass by luck: the same call on two
  different inputs, with freed memory filled with NaN between them.

The learner's function is a :class:`~nncourse.learner.LearnerFunction`: its ``facts``
come from where it runs, its ``source`` from the learner's answer cell.
"""

from __future__ import annotations

import ast

import numpy as np

from .checks import CheckFailed, Exercise, expect


def dispatcher(fn, name: str, signature: str):
    """``fn`` if it is a Numba CPU function, else a failure with the decorator to add."""
    facts = fn.facts()
    if facts["kind"] != "numba":
        kind = facts["kind"]
        raise CheckFailed(
            f"{name} is a plain {'function' if kind == 'python' else kind}, not a Numba "
            f"function. Hint: put @njit(parallel=True) on the line above "
            f"`def {name}({signature}):`."
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


def _is_prange(node) -> bool:
    return (
        isinstance(node, ast.For)
        and isinstance(node.iter, ast.Call)
        and (getattr(node.iter.func, "id", getattr(node.iter.func, "attr", None)) == "prange")
    )


def _assigned_names(target) -> set[str]:
    """The names an assignment target binds whole (``a``, ``a, b``), not subscripts."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        return {n for t in target.elts for n in _assigned_names(t)}
    if isinstance(target, ast.Starred):
        return _assigned_names(target.value)
    return set()


def prange_problems(source: str | None) -> dict[str, list[str]]:
    """What the ``prange`` loops in ``source`` get wrong, read from the code:

    * ``"constant"``: a ``prange`` of at most one iteration (``prange(1)``): it cannot run
      in parallel (a constant chunk count such as ``prange(8)`` can);
    * ``"shared"``: writes inside a ``prange`` loop to an array element whose index does
      not depend on the loop's index (threads update the same element at once: a race,
      or a serial loop inside a parallel wrapper doing all the work);
    * ``"serial"``: ``prange`` loops that write into arrays but never at an index that
      depends on the loop's own index: the loop does not split the work (a serial loop
      inside a ``prange`` wrapper, ``k = 1; for _ in prange(k): for i in range(n): ...``).
    """
    problems: dict[str, list[str]] = {"constant": [], "shared": [], "serial": []}
    if not source:
        return problems
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return problems
    for loop in ast.walk(tree):
        if not _is_prange(loop):
            continue
        args = loop.iter.args
        if all(isinstance(a, ast.Constant) for a in args) and (
            len(args) == 1 and isinstance(args[0].value, int) and args[0].value <= 1
        ):  # prange(1): one iteration; a constant chunk count like prange(8) is parallel
            problems["constant"].append(ast.unparse(loop.iter))
        tainted = {n.id for n in ast.walk(loop.target) if isinstance(n, ast.Name)}
        body = ast.Module(body=loop.body, type_ignores=[])
        for _ in range(5):  # names computed from the loop index are per-iteration too
            for node in ast.walk(body):
                if isinstance(node, (ast.Assign, ast.AugAssign, ast.For)):
                    value = node.iter if isinstance(node, ast.For) else node.value
                    used = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
                    if used & tainted:
                        targets = (
                            [node.target]
                            if isinstance(node, (ast.AugAssign, ast.For))
                            else node.targets
                        )
                        # only names assigned whole become per-iteration values: in
                        # `row[j] = z[i, j]`, neither row nor j does
                        for t in targets:
                            tainted |= _assigned_names(t)
        local = {
            t.id
            for node in ast.walk(body)
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        writes, split = 0, 0
        for node in ast.walk(body):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else ([node.target] if isinstance(node, ast.AugAssign) else [])
            )
            for t in targets:
                if not isinstance(t, ast.Subscript) or not isinstance(t.value, ast.Name):
                    continue
                if t.value.id in local:
                    continue  # an array made inside the loop belongs to one iteration
                writes += 1
                index = {n.id for n in ast.walk(t.slice) if isinstance(n, ast.Name)}
                if index & tainted:
                    split += 1
                else:
                    problems["shared"].append(ast.unparse(t))
        if writes and not split:
            problems["serial"].append(ast.unparse(loop.iter))
    return problems


def _copies(args):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def expect_no_races(fn, make_args, reference, what: str, *, runs: int = 5) -> None:
    """Run ``fn(*make_args())`` ``runs`` times (large inputs, all threads) and compare each
    run with ``reference(*args)``: a race gives wrong results, different from run to run.

    The race hint needs evidence: results that differ between runs, or a write that every
    prange iteration shares in the source. A result that is wrong the same way every run
    is reported as a wrong result.
    """
    args = make_args()
    want = reference(*args)
    results, failure = [], None
    for run in range(runs):
        got = fn(*_copies(args))
        results.append(np.array(got, copy=True) if isinstance(got, np.ndarray) else got)
        if failure is None:
            try:
                expect(got, want, f"{what}, run {run + 1} of {runs}")
            except CheckFailed as err:
                failure = err
    if failure is None:
        return
    arrays = [r for r in results if isinstance(r, np.ndarray)]
    varies = len(arrays) > 1 and any(
        a.shape != arrays[0].shape or not np.array_equal(a, arrays[0], equal_nan=True)
        for a in arrays[1:]
    )
    shared = prange_problems(getattr(fn, "source", None))["shared"]
    if not (varies or shared):
        raise failure
    where = (
        f"`{shared[0]}` is written by every prange iteration: threads running different "
        "iterations update the same element at once"
        if shared
        else "several threads write the same element at once"
    )
    evidence = "the result changes from run to run" if varies else "the result is wrong"
    raise CheckFailed(
        f"{failure}\n  Hint: on large inputs with every thread {evidence}: {where} (a race; "
        "updates are lost). Give each prange iteration its own output elements, or its own "
        "partial sums."
    ) from None


def _at_an_end(bad: np.ndarray) -> bool:
    """The True elements of ``bad`` are the first k or the last k in memory order
    (0 < k < size): what a loop over too short a range leaves behind."""
    where = np.flatnonzero(bad.ravel())
    k, n = where.size, bad.size
    if not 0 < k < n:
        return False
    return bool(where[-1] == k - 1 or where[0] == n - k)


def expect_every_element_written(fn, make_args, reference, what: str) -> None:
    """Fail when ``fn`` leaves an output element unwritten (e.g. ``prange(n - 1)``).

    Calls ``fn`` on two different inputs of the same shape, filling freed memory with
    NaN in between, so a stale element can match neither by luck. The "never written"
    hint needs evidence: the wrong elements hold the first call's values or NaN, or they
    are exactly the first or last elements in memory order (a loop that stops one short
    or starts one late). The first two depend on the allocator handing back the freed
    memory, which it need not do; the third does not.
    """
    first_args = make_args(0)
    first = fn(*first_args)
    first = np.array(first, copy=True) if isinstance(first, np.ndarray) else None
    junk = [np.full(a.shape, np.nan, a.dtype) for a in first_args if isinstance(a, np.ndarray)]
    del junk
    args = make_args(1)
    want = reference(*args)
    got = fn(*_copies(args))
    try:
        expect(got, want, what)
    except CheckFailed as err:
        stale = False
        if isinstance(got, np.ndarray) and got.shape == np.shape(want):
            bad = ~np.isclose(got, want, equal_nan=True)
            old = first[bad] if first is not None and first.shape == got.shape else None
            stale = (
                bool(np.isnan(got[bad]).any())
                or (old is not None and bool(np.isclose(got[bad], old, equal_nan=True).any()))
                or _at_an_end(bad)
            )
        if not stale:
            raise
        raise CheckFailed(
            f"{err}\n  Hint: some output elements are never written (they hold what the "
            "memory held before): does your loop run over every index, range(n) and not "
            "range(n - 1)?"
        ) from None


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
        if dispatcher(fn, name, signature).facts()["forceobj"]:
            raise CheckFailed(f"{name} is compiled in object mode (forceobj=True): use @njit.")
        call_nopython(fn, name, *sample())

    @ex.subcheck(f"{name} is compiled with parallel=True")
    def _(fn):
        if not dispatcher(fn, name, signature).facts()["parallel"]:
            raise CheckFailed(
                f"{name} is compiled without parallel=True, so prange runs as a plain range. "
                "Hint: @njit(parallel=True)."
            )

    @ex.subcheck(f"Numba runs {name}'s loop in parallel (a prange loop doing the work)")
    def _(fn):
        facts = dispatcher(fn, name, signature).facts(sample())
        if facts.get("prange_loops") is None:
            raise CheckFailed(
                f"Numba could not compile {name} with parallel=True: {facts.get('compile_error')}"
            )
        if facts["prange_loops"] == 0:
            raise CheckFailed(
                f"Numba found no prange loop to run in parallel. Hint: write {loop_hint} "
                "(from numba import prange); `range` runs serially."
            )
        problems = prange_problems(fn.source)
        if problems["constant"]:
            raise CheckFailed(
                f"your loop `{problems['constant'][0]}` has a fixed number of iterations, so "
                f"one thread does all the work. Hint: write {loop_hint}."
            )
        if problems["serial"]:
            raise CheckFailed(
                f"your `for ... in {problems['serial'][0]}` loop never writes at an index "
                "that depends on its own loop variable, so it does not split the work "
                "between threads: a serial loop inside it does everything (in every "
                f"iteration, or in one). Hint: write {loop_hint}, and index the output with "
                "that loop's variable."
            )


def prange_loops(fn, name: str, *args) -> int:
    """How many ``prange`` loops Numba parallelized compiling ``fn`` for ``args``."""
    facts = fn.facts(args)
    if facts.get("prange_loops") is None:
        raise CheckFailed(
            f"Numba could not compile {name} with parallel=True: {facts.get('compile_error')}"
        )
    return facts["prange_loops"]
