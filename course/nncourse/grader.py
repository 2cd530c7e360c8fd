"""Grade a learner's exercise notebook: the trusted verdict, computed in this process.

1. The exercise set is found in the grader's own registry, the course's
   ``solutions/NN_*.ipynb``: by the notebook's file name, else by the exercises its
   answer cells are tagged with. Never from the learner's notebook metadata. The
   canonical notebook is generated afresh from it (the build's
   :func:`~nncourse.notebooks.make_exercise`), so edited or deleted grade cells change
   nothing.
2. A fresh kernel (:class:`~nncourse.remote.KernelSession`) runs the canonical setup
   cells and the learner's answer cells (found by their ``answer:<exercise>`` tags, never
   by position; a missing one leaves the stub). Grade cells are not run there.
3. Each exercise's sub-checks run here, in the grader's process, with the learner's
   functions as :class:`~nncourse.remote.RemoteFunction`: the grader chooses the inputs,
   the kernel calls the learner's code and sends back arrays and numbers only, and the
   grader compares them with its own reference. Nothing the learner's code patches in
   its kernel reaches a verdict.
4. A kernel crash or a cell that cannot be interrupted is blamed on the answer that
   caused it, found by running answers in fresh kernels (also for an answer that kills
   the kernel some time after it ran); the others are graded without it.

The result is a score table on stdout and ``results/<notebook name>.json``.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from .checks import EXERCISES, STUB_MARK, run_exercise
from .learner import function_source
from .notebooks import ANSWER, GRADE, META, CourseRootNotFound, course_root, make_exercise, tagged
from .remote import KernelLost, KernelSession, RemoteFunction

DEFAULT_CELL_TIMEOUT = 120


class GradingError(Exception):
    """A notebook could not be graded at all (not a wrong answer)."""


@dataclass
class ExerciseResult:
    exercise: str
    points: int
    max_points: int
    status: str  # pass | fail | error | timeout | crashed | missing
    feedback: list[str] = field(default_factory=list)


def _answer_tags(nb) -> set[str]:
    return {name for c in nb.cells if (name := tagged(c, ANSWER)) and c.cell_type == "code"}


def solution_for(learner_path: Path, learner_nb, root: Path | None = None) -> Path:
    """The solution notebook of the exercise set a learner's notebook belongs to.

    Looked up in the course's registry, ``solutions/NN_*.ipynb`` of the course's folder
    (``root``, else :func:`course_root`'s answer, else the folder above the notebook's):
    first by the notebook's file name, then by the exercise names of its answer cells.
    The notebook's own metadata is never trusted for it.
    """
    try:
        course = course_root(root)
    except CourseRootNotFound:
        course = learner_path.resolve().parent.parent
        if not (course / "solutions").is_dir():
            raise
    registry = sorted((course / "solutions").glob("[0-9][0-9]_*.ipynb"))
    by_name = [p for p in registry if p.name == learner_path.name]
    if by_name:
        return by_name[0]
    answers = _answer_tags(learner_nb)
    scored = []
    for candidate in registry:
        tags = _answer_tags(nbformat.read(candidate, as_version=4))
        if answers & tags:
            scored.append((len(answers & tags), candidate))
    if scored:
        return max(scored)[1]
    raise GradingError(
        f"cannot tell which exercise set {learner_path.name} is: its name is not one of "
        f"{', '.join(p.name for p in registry) or 'the course notebooks'} and none of its "
        "cells is tagged answer:<exercise>. Grade the notebook under its original name."
    )


@dataclass
class Plan:
    """What to run: the canonical setup cells and, per exercise, the learner's answer."""

    names: list[str]
    points: dict[str, int]
    setup: list[str]
    answers: dict[str, str]
    stubs: dict[str, str]
    missing: list[str]
    duplicates: dict[str, int]

    @classmethod
    def of(cls, canonical, learner) -> Plan:
        names = [n for c in canonical.cells if (n := tagged(c, GRADE))]
        points = {
            tagged(c, GRADE): int(c.metadata.get(META, {}).get("points", 1))
            for c in canonical.cells
            if tagged(c, GRADE)
        }
        setup = [
            c.source
            for c in canonical.cells
            if c.cell_type == "code" and tagged(c, ANSWER) is None and tagged(c, GRADE) is None
        ]
        stubs = {tagged(c, ANSWER): c.source for c in canonical.cells if tagged(c, ANSWER)}
        given: dict[str, list[str]] = {}
        for cell in learner.cells:
            name = tagged(cell, ANSWER)
            if name is not None and cell.cell_type == "code":
                given.setdefault(name, []).append(cell.source)
        answers = {n: "\n\n".join(given[n]) if n in given else stubs[n] for n in stubs}
        missing = [n for n in stubs if n not in given]
        duplicates = {n: len(given[n]) for n in stubs if len(given.get(n, ())) > 1}
        return cls(names, points, setup, answers, stubs, missing, duplicates)


def _first_line(text: str) -> str:
    return next((line for line in text.strip().splitlines() if line.strip()), "")


def _grade_exercise(session, plan: Plan, name: str, answer_cell) -> ExerciseResult:
    ex = EXERCISES[name]
    points = plan.points[name]
    source = plan.answers[name]
    feedback: list[str] = []
    if name in plan.duplicates:
        feedback.append(
            f"{plan.duplicates[name]} cells are tagged {ANSWER}{name}: graded their code "
            "joined in notebook order. Keep one answer cell per exercise."
        )
    if name in plan.missing:
        feedback.append(
            f"no answer cell tagged {ANSWER}{name} in your notebook: graded the empty "
            "stub. Restore the cell (see exercises/README.md) and put your code in it."
        )
        return ExerciseResult(name, 0, points, "missing", feedback)
    if answer_cell.status == "timeout":
        feedback.append(
            f"your answer cell ran past the {session.cell_timeout:g} s time limit and was "
            "interrupted: does it loop forever?"
        )
        return ExerciseResult(name, 0, points, "timeout", feedback)
    sources = {f: function_source(source, f) for f in ex.functions}
    stubs = [f for f, src in sources.items() if src is not None and STUB_MARK in src]
    # the static scan for nnlib's own version reads each function's code with the
    # imports before it (the setup cells', ``import nnlib.functional as F``, and the
    # answer cell's): what the grade cell's quick feedback scans too, plus the imports
    imports = "\n".join(
        line
        for cell in (*plan.setup, source)
        for line in cell.splitlines()
        if line.startswith(("import ", "from "))
    )
    functions = [
        RemoteFunction(f, session, ex, sources[f], f"{imports}\n{sources[f] or ''}")
        for f in ex.functions
    ]
    if not stubs:
        undefined = []
        for fn in functions:
            try:
                fn.facts()
            except NameError:
                undefined.append(fn.name)
        if undefined:
            status = "error" if answer_cell.status == "error" else "fail"
            if answer_cell.status == "error":
                feedback.append(
                    f"your answer cell raised {answer_cell.ename}: {answer_cell.evalue}"
                )
            feedback.append(
                f"your answer cell does not define {' and '.join(undefined)} (the name the "
                "exercise asks for)."
            )
            return ExerciseResult(name, 0, points, status, feedback)
    if answer_cell.status == "error":
        feedback.append(
            "note: your answer cell ended in an error after defining what the checks need: "
            f"{answer_cell.ename}: {_first_line(answer_cell.evalue)}"
        )
    session.phase = ("grade", name)
    outcome = run_exercise(ex, functions, stubs)
    message = outcome.message
    if message is None:
        return ExerciseResult(name, points, points, "pass", feedback + outcome.lines)
    return ExerciseResult(name, 0, points, "fail", feedback + outcome.lines + message.splitlines())


def _run_answers(session, plan: Plan, include, problems: list[str]) -> dict:
    session.phase = ("setup", None)
    for source in plan.setup:
        result = session.run_cell(source)
        if result.status != "ok":
            problems.append(f"a setup cell failed: {result.ename}: {_first_line(result.evalue)}")
    cells = {}
    for name in plan.names:
        session.phase = ("answer", name)
        cells[name] = session.run_cell(plan.answers[name] if name in include else plan.stubs[name])
    return cells


def _grade_once(plan: Plan, workdir: Path, timeout, skip: dict, problems: list) -> list:
    with KernelSession(workdir, timeout) as session:
        include = [n for n in plan.names if n not in skip]
        cells = _run_answers(session, plan, include, problems)
        results = []
        for name in plan.names:
            if name in skip:
                status, why = skip[name]
                results.append(ExerciseResult(name, 0, plan.points[name], status, [why]))
            else:
                results.append(_grade_exercise(session, plan, name, cells[name]))
        return results


def _dies(plan: Plan, workdir: Path, timeout, answers, grade_name, until: float) -> bool:
    """Does a fresh kernel with only ``answers`` (grading ``grade_name``, if given) die
    within ``until`` seconds of its start?"""
    try:
        with KernelSession(workdir, timeout) as session:
            cells = _run_answers(session, plan, answers, [])
            if grade_name is not None:
                _grade_exercise(session, plan, grade_name, cells[grade_name])
            while session.elapsed < until:
                if not session.alive():
                    return True
                time.sleep(0.1)
            return not session.alive()
    except KernelLost:
        return True


CRASHED = (
    "not graded: the kernel crashed while {what}. Your other exercises were graded in a "
    "fresh kernel without this answer."
)


def _blame(lost: KernelLost, plan: Plan, workdir: Path, timeout, skip: dict):
    """(exercise, (status, reason)) to blame for a lost kernel, or None (a setup cell)."""
    kind, name = lost.phase
    if kind not in ("answer", "grade") or name is None:
        return None
    if "interrupted" in lost.how:
        return name, (
            "timeout",
            f"not graded: it ran past the {timeout:g} s cell time limit and could not be "
            "stopped. Your other exercises were graded in a fresh kernel without this answer.",
        )
    if kind == "answer":
        return name, ("crashed", CRASHED.format(what="running your answer cell"))
    until = min(lost.elapsed + 1.0, 60.0)
    if _dies(plan, workdir, timeout, [name], name, until):
        return name, ("crashed", CRASHED.format(what="your answer was being graded"))
    # It survives alone: another answer kills the kernel some time after it ran.
    suspects = [n for n in plan.names if n != name and n not in skip]
    proven = False
    while len(suspects) > 1:
        half = suspects[: len(suspects) // 2]
        if _dies(plan, workdir, timeout, half, None, until):
            suspects, proven = half, True
        else:
            suspects, proven = suspects[len(half) :], False
    if suspects and (proven or _dies(plan, workdir, timeout, suspects, None, until)):
        return suspects[0], (
            "crashed",
            CRASHED.format(
                what="a later exercise was graded: your answer makes it die some seconds "
                "after it ran (found by running it alone)"
            ),
        )
    return name, ("crashed", CRASHED.format(what="your answer was being graded"))


def grade(
    path: Path, *, cell_timeout: int = DEFAULT_CELL_TIMEOUT, root: Path | None = None
) -> dict:
    """Grade the notebook at ``path``; returns the result (also what the JSON holds).

    ``root``: the course's folder, where the solution notebooks are (default:
    :func:`~nncourse.notebooks.course_root` finds it). Raises :class:`GradingError` when
    the notebook cannot be graded at all.
    """
    path = Path(path)
    before = path.read_bytes()
    try:
        learner = nbformat.reads(before.decode(), as_version=4)
    except Exception as err:
        raise GradingError(f"{path} is not a readable notebook: {err}") from None
    solution_path = solution_for(path, learner, root)
    canonical = make_exercise(nbformat.read(solution_path, as_version=4), solution_path.name)
    plan = Plan.of(canonical, learner)
    skip: dict[str, tuple[str, str]] = {}
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="nnlib-grade-") as tmp:
        for _attempt in range(len(plan.names) + 1):
            problems = []
            try:
                results = _grade_once(plan, Path(tmp), cell_timeout, skip, problems)
                break
            except KernelLost as lost:
                blamed = _blame(lost, plan, Path(tmp), cell_timeout, skip)
                if blamed is None or blamed[0] in skip:
                    raise GradingError(
                        f"the kernel died outside any exercise: {lost.how}"
                    ) from None
                skip[blamed[0]] = blamed[1]
    if path.read_bytes() != before:  # pragma: no cover - a bug guard: we never write to it
        raise RuntimeError(f"the grader changed {path}; please report this")
    problems += [
        f"{count} cells are tagged {ANSWER}{n}: keep one answer cell per exercise"
        for n, count in plan.duplicates.items()
    ]
    return {
        "notebook": str(path),
        "solution": str(solution_path),
        "score": sum(r.points for r in results),
        "max_score": sum(r.max_points for r in results),
        "exercises": [asdict(r) for r in results],
        "problems": problems,
    }


def _reason(r: dict) -> str:
    if r["status"] == "pass":
        return ""
    if r["status"] == "fail":
        if any("not done yet" in f for f in r["feedback"]):
            return "not done yet"
        summary = [f for f in r["feedback"] if f.endswith("checks passed")]
        return summary[0].split("] ", 1)[-1] if summary else _first_line("\n".join(r["feedback"]))
    return r["feedback"][0] if r["feedback"] else ""


def table(result: dict, *, details: bool = True) -> str:
    """The score table (exercise, points, result, why), then the feedback of each miss."""
    rows = [("exercise", "points", "result")]
    rows += [
        (r["exercise"], f"{r['points']}/{r['max_points']}", r["status"])
        for r in result["exercises"]
    ]
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    reasons = [""] + [_reason(r) for r in result["exercises"]]
    lines = [f"{result['notebook']}"]
    for row, reason in zip(rows, reasons, strict=True):
        lines.append(
            ("  " + "  ".join(row[i].ljust(width[i]) for i in range(3)) + "  " + reason).rstrip()
        )
    lines.append(f"  total {result['score']}/{result['max_score']}")
    lines += [f"  problem: {p}" for p in result["problems"]]
    if details:
        for r in result["exercises"]:
            if r["status"] != "pass":
                lines.append(f"\n--- {r['exercise']}: {r['status']}")
                lines += [f"  {line}" for line in r["feedback"]]
    return "\n".join(lines)


def write_result(result: dict, results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    out = results_dir / (Path(result["notebook"]).stem + ".json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    return out
