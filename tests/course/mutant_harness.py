"""Shared machinery for the wrong-answer catalogues (``test_grading_mutants*.py``).

One :class:`ExerciseSet` per solution notebook. A mutant replaces one answer cell; it
must fail its own exercise, show its hint, and leave every other exercise *of the same
notebook* passing. The checks are called in-process (no kernel per mutant);
``test_grading.py`` proves the nbval path on the real notebooks.
"""

from __future__ import annotations

import contextlib
import io
import linecache
import textwrap
from collections import Counter
from pathlib import Path

import nbformat
import pytest

import nncourse.learner
from nncourse import EXERCISES, check
from nncourse.notebooks import ANSWER, tagged

SOLUTIONS = Path(__file__).resolve().parents[2] / "solutions"


@contextlib.contextmanager
def prange_counts_kept():
    """Every mutant is graded with the whole set, so the solution's Numba kernel is judged
    again each time, and its parallel diagnostics compile it afresh (half a second to
    two). The count depends only on the function and the sample's types: within this
    block it is kept for functions already seen (a mutant's kernel is a new function,
    compiled as usual)."""
    original = nncourse.learner.prange_loop_count
    seen = {}

    def cached(fn, sample):
        key = (fn.py_func, tuple(type(a).__name__ + str(getattr(a, "dtype", "")) for a in sample))
        if key not in seen:
            seen[key] = original(fn, sample)
        return seen[key]

    nncourse.learner.prange_loop_count = cached
    try:
        yield
    finally:
        nncourse.learner.prange_loop_count = original


def M(source: str) -> str:
    """A mutant's answer-cell source, dedented."""
    return textwrap.dedent(source).strip("\n") + "\n"


def mutate(source: str, *edits: str) -> str:
    """``source`` (a solution's answer cell) with planted defects: ``mutate(src, old, new,
    old2, new2, ...)`` replaces each ``old`` (which must occur exactly once) by ``new``, so
    the catalogue shows the defect itself rather than a whole copy of the answer."""
    if len(edits) % 2:
        raise ValueError("mutate: give (old, new) pairs")
    for old, new in zip(edits[::2], edits[1::2], strict=True):
        count = source.count(old)
        if count != 1:
            raise ValueError(f"mutate: {old!r} occurs {count} times in the solution, not once")
        source = source.replace(old, new)
    return source


_MISSING = object()


def _global_names(fn) -> set[str]:
    """The global names a function reads (its own code and nested code)."""
    code = getattr(getattr(fn, "py_func", None) or fn, "__code__", None)
    names: set[str] = set()
    stack = [code] if code is not None else []
    while stack:
        c = stack.pop()
        names |= set(c.co_names)
        stack += [k for k in c.co_consts if hasattr(k, "co_names")]
    return names


def ids(mutants) -> list[str]:
    return [f"{ex}: {name}" for ex, name, _, _ in mutants]


def _compile(source: str, filename: str):
    """Compile ``source`` so that ``inspect.getsource`` can read it back, as IPython
    allows for a notebook cell (some checks read the learner's source)."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return compile(source, filename, "exec")


def catalogue_tests(exercise_set: ExerciseSet, mutants):
    """The three tests of a catalogue: it is complete, the solutions pass, and each mutant
    fails its own exercise only with its hint. Assign them to ``test_*`` names."""

    def test_catalogue_has_at_least_four_mutants_per_exercise():
        exercise_set.assert_catalogue_complete(mutants)

    def test_the_solutions_pass_every_check():
        exercise_set.assert_solutions_pass()

    @pytest.mark.parametrize(("exercise", "mutant", "source", "hint"), mutants, ids=ids(mutants))
    def test_mutant_fails_its_own_exercise_only_and_shows_its_hint(exercise, mutant, source, hint):
        exercise_set.assert_only_its_own_exercise_fails(exercise, source, hint)

    return (
        test_catalogue_has_at_least_four_mutants_per_exercise,
        test_the_solutions_pass_every_check,
        test_mutant_fails_its_own_exercise_only_and_shows_its_hint,
    )


def alternatives_test(exercise_set: ExerciseSet, alternatives):
    """The test that each correct alternative ``(exercise, name, answer cell source)``
    passes every check of its exercise. Assign it to a ``test_*`` name."""

    @pytest.mark.parametrize(
        ("exercise", "alternative", "source"),
        alternatives,
        ids=[f"{e}: {a}" for e, a, _ in alternatives],
    )
    def test_a_correct_alternative_passes_every_check(exercise, alternative, source):
        ns = exercise_set.solved()
        exec(_compile(source, f"<alternative of answer:{exercise}>"), ns)
        assert exercise_set.verdict(exercise, ns) is None

    return test_a_correct_alternative_passes_every_check


class ExerciseSet:
    """The exercises of ``solutions/<notebook>``, solved in-process.

    ``namespace`` builds the globals the answer cells run in; by default the notebook's
    cells tagged ``setup`` are executed (imports, data). Exercises in ``gpu`` are only
    run when ``with_cuda`` is asked for (the ``cuda`` pytest process).
    """

    def __init__(self, notebook: str, namespace=None, gpu=frozenset()):
        self.path = SOLUTIONS / notebook
        self.gpu = frozenset(gpu)
        self._namespace = namespace
        self._solved = {}
        self._verdicts: dict = {}
        nb = nbformat.read(self.path, as_version=4)
        self.answers = {tagged(c, ANSWER): c.source for c in nb.cells if tagged(c, ANSWER)}
        self.setup = [c.source for c in nb.cells if "setup" in c.metadata.get("tags", [])]

    def names(self, with_cuda: bool = False) -> list[str]:
        return [n for n in self.answers if with_cuda or n not in self.gpu]

    def _fresh(self, with_cuda: bool) -> dict:
        if self._namespace is not None:
            return self._namespace(with_cuda)
        ns = {"check": check}
        for source in self.setup:
            exec(compile(source, f"<setup of {self.path.name}>", "exec"), ns)
        return ns

    def solved(self, with_cuda: bool = False) -> dict:
        """A copy of the globals after every answer cell ran (GPU ones only if asked)."""
        if with_cuda not in self._solved:
            ns = self._fresh(with_cuda)
            for name in self.names(with_cuda):
                exec(_compile(self.answers[name], f"<answer:{name}>"), ns)
            self._solved[with_cuda] = ns
        return dict(self._solved[with_cuda])

    @staticmethod
    def verdict(name: str, ns: dict) -> str | None:
        """The AssertionError message of exercise ``name``, or None if it passes."""
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                check(name, *(ns[f] for f in EXERCISES[name].functions))
        except AssertionError as err:
            return f"{out.getvalue()}\n{err}"
        return None

    def reads(self, name: str, ns: dict) -> set[str]:
        """Every global name exercise ``name``'s functions read, following the functions
        they read in turn (their own code and nested code)."""
        seen: set[str] = set()
        todo = list(EXERCISES[name].functions)
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            todo += sorted(_global_names(ns.get(current)) - seen)
        return seen

    def failures(self, ns: dict, with_cuda: bool = False) -> dict[str, str]:
        """The failing exercises of namespace ``ns``. An exercise none of whose functions
        (or the globals they read) differ from the solved namespace keeps the solution's
        cached verdict: a mutant replaces one answer cell, so only the exercises that can
        see the change are graded again."""
        solved = self.solved(with_cuda)
        changed = {
            k
            for k in ns.keys() | solved.keys()
            if ns.get(k, _MISSING) is not solved.get(k, _MISSING)
        }
        verdicts = {}
        for name in self.names(with_cuda):
            if changed & self.reads(name, solved):
                verdicts[name] = self.verdict(name, ns)
            else:
                key = (name, with_cuda)
                if key not in self._verdicts:
                    self._verdicts[key] = self.verdict(name, solved)
                verdicts[name] = self._verdicts[key]
        return {n: msg for n, msg in verdicts.items() if msg is not None}

    def assert_solutions_pass(self, with_cuda: bool = False) -> None:
        assert self.failures(self.solved(with_cuda), with_cuda) == {}

    def assert_only_its_own_exercise_fails(self, exercise, source, hint, with_cuda=False):
        ns = self.solved(with_cuda)
        exec(_compile(source, f"<mutant of answer:{exercise}>"), ns)
        failing = self.failures(ns, with_cuda)
        assert sorted(failing) == [exercise], failing
        assert "Hint" in failing[exercise] and hint in failing[exercise], failing[exercise]

    def assert_catalogue_complete(self, mutants, at_least: int = 4) -> None:
        counts = Counter(exercise for exercise, *_ in mutants)
        assert set(counts) == set(self.answers), "every exercise needs mutants"
        assert min(counts.values()) >= at_least, counts
