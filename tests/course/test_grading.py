"""The grading system, proven on the real notebooks.

* the committed notebooks are current (``build --check``), and the build is one source:
  stubs, cleared outputs, locked grade cells, and a learner's changes are never lost;
* the solutions pass strict nbval;
* the unsolved exercises fail every grade cell and nothing else (nbval, lax);
* the grader gives the solutions full marks, never writes to the notebook it grades,
  ignores edited grade cells, and survives a syntax error, an exception, a missing
  answer cell, an infinite loop in a function and in a cell, and a kernel crash.

The mutant catalogue (typical wrong answers) is in ``test_grading_mutants.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import nbformat
import numpy as np
import pytest

from nncourse import EXERCISES, check, notebooks
from nncourse.checks import STUB_MARK
from nncourse.grader import GradingError, grade
from nncourse.notebooks import ANSWER, GRADE, BuildError, tagged

ROOT = Path(__file__).resolve().parents[2]
SOLUTION = ROOT / "solutions" / "01_activations.ipynb"
EXERCISE = ROOT / "exercises" / "01_activations.ipynb"
ALL_SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
SANITIZE = Path(str(resources.files("nncourse") / "nbval_sanitize.cfg"))


def _read(path):
    return nbformat.read(path, as_version=4)


def _cells(nb, prefix):
    return {tagged(c, prefix): c for c in nb.cells if tagged(c, prefix)}


# ------------------------------------------------------------------------------ build


def test_committed_notebooks_are_current():
    problems = notebooks.stale(ROOT)
    assert problems == [], "\n".join(problems) + "\nrun: python -m nncourse build"


def test_build_check_command_exits_0():
    done = subprocess.run(
        [sys.executable, "-m", "nncourse", "build", "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "up to date" in done.stdout


def _copy_tree(tmp_path):
    for folder in ("solutions", "exercises"):
        (tmp_path / folder).mkdir()
        shutil.copy(ROOT / folder / SOLUTION.name, tmp_path / folder / SOLUTION.name)
    return tmp_path


def test_check_detects_a_stale_solution_and_exercise(tmp_path):
    root = _copy_tree(tmp_path)
    nb = _read(root / "solutions" / SOLUTION.name)
    answer = _cells(nb, ANSWER)["relu"]
    answer.source = answer.source.replace("np.maximum(x, 0)", "np.maximum(0, x)")
    nbformat.write(nb, root / "solutions" / SOLUTION.name)
    problems = notebooks.stale(root)
    assert len(problems) == 1 and "stored outputs are not from its current code" in problems[0]

    stub = _read(root / "exercises" / SOLUTION.name)
    stub.cells[0].source += "\n\nAn extra sentence."
    nbformat.write(stub, root / "exercises" / SOLUTION.name)
    assert any("differs from what" in p for p in notebooks.stale(root))


def test_exercise_is_generated_by_the_rules():
    solution, exercise = _read(SOLUTION), _read(EXERCISE)
    assert exercise.metadata.kernelspec.name == "python3"
    assert len(EXERCISES) >= 6
    answers, grades = _cells(exercise, ANSWER), _cells(exercise, GRADE)
    assert list(answers) == list(grades) == notebooks.exercises_of(solution)
    assert set(grades) <= set(EXERCISES)
    for name, cell in grades.items():
        assert cell.metadata["editable"] is False and cell.metadata["deletable"] is False
        assert cell.source == f'check("{name}")', cell.source
    for name, cell in answers.items():
        assert notebooks.BEGIN not in cell.source and notebooks.END not in cell.source
        assert STUB_MARK in cell.source, f"answer:{name} has no stub"
    for cell in exercise.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    # the solution is the same notebook with the regions filled in and outputs stored
    assert [c.cell_type for c in solution.cells] == [c.cell_type for c in exercise.cells]
    assert all(c.execution_count for c in solution.cells if c.cell_type == "code")


def test_stub_source_keeps_the_code_around_the_region():
    source = (
        'def f(x):\n    """Doc."""\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n'
    )
    assert notebooks.stub_source(source, "here") == (
        f'def f(x):\n    """Doc."""\n    raise NotImplementedError("f: your code here {STUB_MARK}")'
    )
    with pytest.raises(BuildError, match="never closed"):
        notebooks.stub_source("### BEGIN SOLUTION\nx = 1\n", "cell 3")
    with pytest.raises(BuildError, match="without"):
        notebooks.stub_source("x = 1\n### END SOLUTION\n", "cell 3")


def test_build_never_overwrites_a_learners_work(tmp_path):
    root = _copy_tree(tmp_path)
    target = root / "exercises" / SOLUTION.name
    nb = _read(target)
    _cells(nb, ANSWER)["relu"].source = "def relu(x):\n    return my_work(x)\n"
    nbformat.write(nb, target)
    work = target.read_bytes()

    with pytest.raises(BuildError, match="NOT overwritten"):
        notebooks.build(root, run=False)
    assert target.read_bytes() == work

    done = notebooks.build(root, run=False, backup=True)
    backups = list(target.parent.glob(f"{target.name}.*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == work
    assert any("kept them in" in line for line in done)
    assert not notebooks.learner_changed(target)
    assert notebooks.stale(root) == []


def test_build_overwrites_an_untouched_exercise_quietly(tmp_path):
    root = _copy_tree(tmp_path)
    assert notebooks.build(root, run=False) == [f"{root / 'exercises' / SOLUTION.name}: up to date"]


# --------------------------------------------------------------------- the check output


def test_check_prints_fixed_float_free_lines_and_nothing_on_stderr(capsys):
    from test_grading_mutants import SET

    ns, names = SET.solved(), SET.names()
    for name in names:
        check(name, *(ns[f] for f in EXERCISES[name].functions))
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    fixed = {f"[{n}] ok   {s.description}" for n, ex in EXERCISES.items() for s in ex.subchecks}
    fixed |= {
        f"[{n}] {len(ex.subchecks)}/{len(ex.subchecks)} checks passed"
        for n, ex in EXERCISES.items()
    }
    assert set(lines) <= fixed, set(lines) - fixed
    assert len(lines) == sum(len(EXERCISES[n].subchecks) + 1 for n in names)
    assert any(re.fullmatch(r"\[softmax\] (\d+)/\1 checks passed", line) for line in lines)


def test_check_stops_an_infinite_loop_at_the_time_limit(monkeypatch, capsys):
    monkeypatch.setenv("NNLIB_CHECK_TIME_LIMIT", "1")

    def tanh_backward(dy, x):
        while True:
            pass

    with pytest.raises(AssertionError, match="stopped after the time limit of 1 s") as err:
        check("tanh_backward", tanh_backward)
    assert "not run: an earlier check hit the time limit" in str(err.value)
    assert "[tanh_backward] 0/4 checks passed" in capsys.readouterr().out


def test_check_names_wrong_arguments():
    with pytest.raises(ValueError, match="no exercise named 'relux'; known: relu"):
        check("relux", abs)
    with pytest.raises(TypeError, match=r"expects 2 function\(s\), \(relu, relu_backward\); got 1"):
        check("relu", abs)


def test_an_exception_in_learner_code_is_shown_with_its_line():
    def softmax(x, axis=-1):
        return x / undefined_total  # noqa: F821

    with pytest.raises(AssertionError, match=r"raised NameError: .*undefined_total.*\(line \d+: "):
        check("softmax", softmax)


# ------------------------------------------------------------------------ nbval, for real


@pytest.mark.slow
@pytest.mark.parametrize("solution", ALL_SOLUTIONS, ids=lambda p: p.name)
def test_solutions_pass_strict_nbval(solution):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval",
            f"--nbval-sanitize-with={SANITIZE}",
            "-p",
            "no:cacheprovider",
            "-q",
            str(solution),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    code_cells = sum(c.cell_type == "code" for c in _read(solution).cells)
    assert f"{code_cells} passed" in done.stdout, done.stdout[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("solution", ALL_SOLUTIONS, ids=lambda p: p.name)
def test_unsolved_exercises_fail_every_grade_cell_and_nothing_else(solution, tmp_path):
    exercise = ROOT / "exercises" / solution.name
    records = _run_nbval(_read(exercise), tmp_path, cell_timeout=60)
    failed = {tuple(r["tags"]) for r in records if r["outcome"] != "passed"}
    grades = {(f"{GRADE}{name}",) for name in notebooks.exercises_of(_read(exercise))}
    assert failed == grades
    for r in records:
        if r["outcome"] != "passed":
            assert r["ename"] == "GradeFailed" and "not done yet" in r["evalue"]
            # the learner sees the verdict only, not the grader's code in a traceback
            assert "nncourse" not in r["message"] and "checks.py" not in r["message"], r


def _run_nbval(nb, workdir: Path, cell_timeout: int) -> list[dict]:
    """Run ``nb`` with nbval (lax) as JupyterLab would; one record per cell (tags, outcome,
    error) from the plugin ``nncourse._nbval_plugin``."""
    notebook = workdir / "run.ipynb"
    notebook.write_text(nbformat.writes(nb))
    report = workdir / "report.jsonl"
    (workdir / "pytest.ini").write_text("[pytest]\n")
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
            "-c",
            str(workdir / "pytest.ini"),
            "--rootdir",
            str(workdir),
            str(notebook),
        ],
        cwd=workdir,
        env=dict(os.environ, NNCOURSE_GRADE_REPORT=str(report)),
        capture_output=True,
        check=False,
    )
    return [json.loads(line) for line in report.read_text().splitlines() if line.strip()]


def _grade_cli(notebook, results, *extra, env=None):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "nncourse",
            "grade",
            str(notebook),
            "--results",
            str(results),
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )


@pytest.mark.slow
def test_grader_gives_the_solutions_full_marks_and_leaves_the_notebook_alone(tmp_path):
    learner = tmp_path / "exercises" / SOLUTION.name
    learner.parent.mkdir()
    shutil.copy(SOLUTION, learner)
    before, mtime = learner.read_bytes(), learner.stat().st_mtime_ns
    done = _grade_cli(learner, tmp_path / "results")
    assert done.returncode == 0, done.stdout + done.stderr
    assert learner.read_bytes() == before and learner.stat().st_mtime_ns == mtime
    result = json.loads((tmp_path / "results" / "01_activations.json").read_text())
    assert result["score"] == result["max_score"] == len(notebooks.exercises_of(_read(SOLUTION)))
    assert {e["status"] for e in result["exercises"]} == {"pass"}
    assert re.search(r"relu_cuda\s+1/1\s+pass", done.stdout)
    assert "total 9/9" in done.stdout


def _broken_learner_notebook():
    """The solutions, broken in every way the grader must survive."""
    nb = _read(SOLUTION)
    answers, grades = _cells(nb, ANSWER), _cells(nb, GRADE)
    answers["relu"].source = "def relu(x)\n    return x\n"  # SyntaxError
    nb.cells.remove(answers["leaky_relu"])  # missing answer cell
    answers["sigmoid"].source = answers["sigmoid"].source.replace(
        "return dy * s * (1 - s)", "return dy * s * (1 - s) * undefined_scale"
    )  # an exception inside the function
    grades["sigmoid"].source = 'print("[sigmoid] 6/6 checks passed")'  # an edited grade cell
    answers["tanh_backward"].source = "def tanh_backward(dy, x):\n    while True:\n        pass\n"
    answers["softmax"].source = "import os\n\nos._exit(1)\n"  # the kernel crashes
    answers["relu_numba"].source = "while True:\n    pass\n"  # the cell never finishes
    nb.cells.remove(grades["relu_cuda"])  # a deleted grade cell changes nothing
    return nb


@pytest.mark.slow
def test_grader_survives_every_kind_of_broken_answer(tmp_path):
    learner = tmp_path / "exercises" / SOLUTION.name
    learner.parent.mkdir()
    nbformat.write(_broken_learner_notebook(), learner)
    before = learner.read_bytes()
    env = dict(os.environ, NNLIB_CHECK_TIME_LIMIT="5")
    done = _grade_cli(learner, tmp_path / "results", "--timeout", "15", env=env)
    assert done.returncode == 0, done.stdout + done.stderr  # graded: a low score is no error
    assert learner.read_bytes() == before
    result = json.loads((tmp_path / "results" / "01_activations.json").read_text())
    status = {e["exercise"]: e["status"] for e in result["exercises"]}
    assert status == {
        "relu": "error",
        "leaky_relu": "missing",
        "sigmoid": "fail",
        "tanh_backward": "fail",
        "elu_backward": "pass",
        "sigmoid_flat": "pass",
        "softmax": "crashed",
        "relu_numba": "timeout",
        "relu_cuda": "pass",
    }, done.stdout
    assert result["score"] == 3
    feedback = {e["exercise"]: "\n".join(e["feedback"]) for e in result["exercises"]}
    assert "SyntaxError" in feedback["relu"]
    assert "no answer cell tagged answer:leaky_relu" in feedback["leaky_relu"]
    assert "NameError" in feedback["sigmoid"] and "undefined_scale" in feedback["sigmoid"]
    assert "stopped after the time limit of 5 s" in feedback["tanh_backward"]
    assert "kernel crashed" in feedback["softmax"]
    assert "ran past the 15 s time limit" in feedback["relu_numba"]
    assert re.search(r"\[relu_cuda\] (\d+)/\1 checks passed", feedback["relu_cuda"])


def test_grade_names_a_missing_notebook(tmp_path):
    done = _grade_cli(tmp_path / "nope.ipynb", tmp_path / "results")
    assert done.returncode == 2 and "no such notebook" in done.stderr


def test_grade_needs_a_solution_to_grade_against(tmp_path):
    stray = tmp_path / "99_unknown.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), stray)
    with pytest.raises(GradingError, match=r"cannot tell which exercise set 99_unknown\.ipynb is"):
        grade(stray, root=ROOT)


def test_reset_restores_one_exercise_and_keeps_the_others(tmp_path):
    learner = tmp_path / "exercises" / SOLUTION.name
    learner.parent.mkdir()
    nb = _read(SOLUTION)
    nb.cells.remove(_cells(nb, ANSWER)["leaky_relu"])  # deleted by accident
    nbformat.write(nb, learner)
    work = learner.read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "nncourse", "reset", str(learner), "softmax", "leaky_relu"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    backups = list(learner.parent.glob("*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == work
    after, stubs = _cells(_read(learner), ANSWER), _cells(_read(EXERCISE), ANSWER)
    assert after["softmax"].source == stubs["softmax"].source
    assert after["leaky_relu"].source == stubs["leaky_relu"].source
    assert after["relu"].source == _cells(_read(SOLUTION), ANSWER)["relu"].source
    cells = _read(learner).cells
    assert tagged(cells[cells.index(after["leaky_relu"]) + 1], GRADE) == "leaky_relu"

    refused = subprocess.run(
        [sys.executable, "-m", "nncourse", "reset", str(learner), "softmaks"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert refused.returncode == 2 and "has: relu, leaky_relu" in refused.stderr


def test_statistical_check_accepts_the_right_rate_and_rejects_a_wrong_one():
    from nncourse.checks import CheckFailed, expect_rate

    keep = np.random.default_rng(0).random(100_000) < 0.8  # a dropout mask, keep rate 0.8
    expect_rate(int(keep.sum()), keep.size, 0.8, "kept units")
    with pytest.raises(CheckFailed, match=r"kept units: \d+ of 100000 .* expected a rate of 0.2"):
        expect_rate(int(keep.sum()), keep.size, 0.2, "kept units")  # drop rate used as keep rate
    with pytest.raises(CheckFailed):
        expect_rate(int(keep.sum()), keep.size, 0.79, "kept units")  # 0.01 off is 8 s.e.
