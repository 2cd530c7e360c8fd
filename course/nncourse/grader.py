"""Grade a learner's exercise notebook with nbval, without ever writing to it.

1. The canonical notebook is generated afresh from the solution notebook (the same
   :func:`~nncourse.notebooks.make_exercise` as the build), so edited or deleted grade
   cells change nothing.
2. Each answer cell of the learner (found by its ``answer:<exercise>`` tag, never by its
   position) replaces the stub of the same tag; a missing one leaves the stub.
3. nbval (``--nbval-lax``, this Python environment) runs that copy in a temporary folder;
   a small plugin records each cell's result and tags.
4. An exercise scores its points when its grade cell passes. A kernel crash or a cell
   that cannot be interrupted kills the kernel: that exercise is marked, its answer is
   replaced by the stub and the notebook is run again, so the others are still graded.

The result is a score table on stdout and ``results/<notebook name>.json``.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from .notebooks import ANSWER, GRADE, META, CourseRootNotFound, course_root, make_exercise, tagged

DEFAULT_CELL_TIMEOUT = 120


@dataclass
class ExerciseResult:
    exercise: str
    points: int
    max_points: int
    status: str  # pass | fail | error | timeout | crashed | missing
    feedback: list[str] = field(default_factory=list)


def solution_for(learner_path: Path, learner_nb, root: Path | None = None) -> Path:
    """The solution notebook a learner's notebook was generated from.

    Looked for in the course's folder (``root``, else :func:`course_root`'s answer), under
    the name the notebook recorded and then under its own file name; also beside the
    notebook's own folder (``exercises/../solutions/``), so a notebook graded from outside
    the course's folder is still found.
    """
    recorded = learner_nb.metadata.get(META, {}).get("source")
    near = [learner_path.resolve().parent.parent / recorded] if recorded else []
    try:
        course = course_root(root)
    except CourseRootNotFound:
        found = [c for c in near if c.exists()]
        if found:
            return found[0]
        raise
    candidates = [course / recorded] if recorded else []
    candidates += [*near, course / "solutions" / learner_path.name]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"no solution notebook for {learner_path}: looked for "
        f"{', '.join(str(c) for c in candidates)}. Grade notebooks from exercises/, "
        "keeping their file names."
    )


def assemble(canonical, learner_nb, replaced: set[str] = frozenset()):
    """The canonical notebook with the learner's answer cells put in (by tag).

    Returns ``(notebook, missing)`` where ``missing`` lists exercises whose answer cell
    the learner's notebook does not have. Exercises in ``replaced`` keep the stub.
    """
    nb = copy.deepcopy(canonical)
    answers: dict[str, list[str]] = {}
    for cell in learner_nb.cells:
        name = tagged(cell, ANSWER)
        if name is not None and cell.cell_type == "code":
            answers.setdefault(name, []).append(cell.source)
    missing = []
    for cell in nb.cells:
        name = tagged(cell, ANSWER)
        if name is None or name in replaced:
            continue
        if name in answers:
            cell.source = "\n\n".join(answers[name])
        else:
            missing.append(name)
    return nb, missing


def _run_nbval(nb, workdir: Path, cell_timeout: int) -> list[dict]:
    notebook = workdir / "graded.ipynb"
    notebook.write_text(nbformat.writes(nb))
    report = workdir / "report.jsonl"
    report.unlink(missing_ok=True)
    (workdir / "pytest.ini").write_text("[pytest]\n")
    env = dict(os.environ, NNCOURSE_GRADE_REPORT=str(report))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            f"--nbval-cell-timeout={cell_timeout}",
            "-p",
            "nncourse._nbval_plugin",
            "-p",
            "no:cacheprovider",
            "-q",
            "--no-header",
            "-c",
            str(workdir / "pytest.ini"),
            "--rootdir",
            str(workdir),
            str(notebook),
        ],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    if not report.exists():
        return []
    return [json.loads(line) for line in report.read_text().splitlines() if line.strip()]


def _exercise_of(record) -> tuple[str | None, str | None]:
    tags = record["tags"]
    for prefix, kind in ((ANSWER, "answer"), (GRADE, "grade")):
        for tag in tags:
            if tag.startswith(prefix):
                return tag[len(prefix) :], kind
    return None, None


def _kernel_lost(record) -> bool:
    text = record["message"]
    return "kernel died" in text or "Failed to interrupt" in text or "waiting for output" in text


def _first_line(text: str) -> str:
    return next((line for line in text.strip().splitlines() if line.strip()), "")


def grade(
    path: Path, *, cell_timeout: int = DEFAULT_CELL_TIMEOUT, root: Path | None = None
) -> dict:
    """Grade the notebook at ``path``; returns the result (also what the JSON holds).

    ``root``: the course's folder, where the solution notebooks are (default:
    :func:`~nncourse.notebooks.course_root` finds it).
    """
    path = Path(path)
    before = path.read_bytes()
    learner = nbformat.reads(before.decode(), as_version=4)
    solution_path = solution_for(path, learner, root)
    canonical = make_exercise(nbformat.read(solution_path, as_version=4), solution_path.name)
    names = [tagged(c, GRADE) for c in canonical.cells if tagged(c, GRADE)]
    points = {
        tagged(c, GRADE): int(c.metadata.get(META, {}).get("points", 1))
        for c in canonical.cells
        if tagged(c, GRADE)
    }
    killed: dict[str, str] = {}
    general: list[str] = []
    with tempfile.TemporaryDirectory(prefix="nnlib-grade-") as tmp:
        for _attempt in range(len(names) + 1):
            nb, missing = assemble(canonical, learner, replaced=set(killed))
            records = _run_nbval(nb, Path(tmp), cell_timeout)
            lost = next((r for r in records if r["outcome"] == "failed" and _kernel_lost(r)), None)
            if lost is None:
                break
            name, _ = _exercise_of(lost)
            if name is None or name in killed:
                general.append(
                    f"the kernel died outside any exercise: {_first_line(lost['message'])}"
                )
                break
            why = (
                "the kernel crashed while running it"
                if "kernel died" in lost["message"]
                else f"it ran past the {cell_timeout} s cell time limit and could not be stopped"
            )
            killed[name] = (
                f"not graded: {why}. Your other exercises were graded in a fresh kernel "
                "without this answer."
            )
    if path.read_bytes() != before:  # pragma: no cover - a bug guard: we never write to it
        raise RuntimeError(f"the grader changed {path}; please report this")

    by_exercise: dict[str, dict[str, dict]] = {}
    for record in records:
        name, kind = _exercise_of(record)
        if name is None:
            if record["outcome"] == "failed" and not record["message"].startswith("Kernel dead"):
                general.append(f"a setup cell failed: {_first_line(record['message'])}")
            continue
        by_exercise.setdefault(name, {})[kind] = record
    results = []
    for name in names:
        cells = by_exercise.get(name, {})
        answer, graded = cells.get("answer"), cells.get("grade")
        feedback: list[str] = []
        if name in killed:
            status = "crashed" if "crashed" in killed[name] else "timeout"
            feedback.append(killed[name])
        elif name in missing:
            status = "missing"
            feedback.append(
                f"no answer cell tagged {ANSWER}{name} in your notebook: graded the empty "
                "stub. Restore the cell (see exercises/README.md) and put your code in it."
            )
        elif (
            answer is not None
            and answer["outcome"] != "passed"
            and not (graded is not None and graded["outcome"] == "passed")
        ):
            timed_out = "Timeout" in answer["message"]
            status = "timeout" if timed_out else "error"
            if timed_out:
                feedback.append(
                    f"your answer cell ran past the {cell_timeout} s time limit and was "
                    "interrupted: does it loop forever?"
                )
            else:
                feedback.append(
                    f"your answer cell raised {answer['ename']}: {answer['evalue']}"
                    if answer["ename"]
                    else f"your answer cell failed: {_first_line(answer['message'])}"
                )
        else:
            status = "pass" if graded is not None and graded["outcome"] == "passed" else "fail"
            if answer is not None and answer["outcome"] != "passed":
                feedback.append(
                    "note: your answer cell ended in an error after defining what the checks "
                    f"need: {answer['ename'] or _first_line(answer['message'])}"
                )
        if status in ("crashed", "missing"):
            pass  # the grade cell ran the stub: its output says nothing new
        elif status in ("error", "timeout") and graded is not None:
            if graded["outcome"] != "passed" and graded["evalue"]:
                feedback.append(
                    f"so the grade cell failed too: {graded['ename']}: "
                    f"{_first_line(graded['evalue'])}"
                )
        elif graded is not None:
            feedback += [line for line in graded["stdout"].splitlines() if line.strip()]
            if graded["outcome"] != "passed" and graded["evalue"]:
                feedback += graded["evalue"].splitlines()
            elif graded["outcome"] != "passed" and status == "fail":
                feedback.append(_first_line(graded["message"]))
        elif status == "fail":
            feedback.append("the grade cell did not run")
        results.append(
            ExerciseResult(
                name, points[name] if status == "pass" else 0, points[name], status, feedback
            )
        )
    return {
        "notebook": str(path),
        "solution": str(solution_path),
        "score": sum(r.points for r in results),
        "max_score": sum(r.max_points for r in results),
        "exercises": [asdict(r) for r in results],
        "problems": general,
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
