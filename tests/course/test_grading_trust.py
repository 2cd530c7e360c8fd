"""The trusted verdict (``make grade``): computed in the grader's process, so an answer
cell cannot cheat it; and the grader copes with what learners do to notebooks.

Each test grades a small course (a few exercises of ``solutions/02_forward_losses.ipynb``,
no Numba, so a kernel run takes seconds) through the grader's own entry points:
:func:`nncourse.grader.grade` and ``python -m nncourse grade``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from nncourse import check
from nncourse.grader import grade
from nncourse.notebooks import ANSWER, GRADE, META, make_exercise, tagged

ROOT = Path(__file__).resolve().parents[2]
SET = "02_forward_losses.ipynb"


def _course(tmp_path: Path, keep) -> tuple[Path, nbformat.NotebookNode]:
    """A course folder holding only the exercises ``keep`` of set 02; returns it and the
    solution notebook."""
    nb = nbformat.read(ROOT / "solutions" / SET, as_version=4)
    nb.cells = [c for c in nb.cells if (tagged(c, ANSWER) or tagged(c, GRADE)) in (*keep, None)]
    for folder in ("solutions", "exercises"):
        (tmp_path / folder).mkdir()
    nbformat.write(nb, tmp_path / "solutions" / SET)
    nbformat.write(make_exercise(nb, SET), tmp_path / "exercises" / SET)
    return tmp_path, nb


def _answer(nb, name: str):
    return next(c for c in nb.cells if tagged(c, ANSWER) == name)


def _status(result) -> dict[str, str]:
    return {e["exercise"]: e["status"] for e in result["exercises"]}


def _feedback(result) -> dict[str, str]:
    return {e["exercise"]: "\n".join(e["feedback"]) for e in result["exercises"]}


def _cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "nncourse", "grade", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


CHEATS = {
    # a correct answer, with cheats that act on every exercise graded after it
    "dense_forward": """
        import nncourse
        import nncourse.checks as C
        C.expect = lambda *a, **k: None                      # the check module's helpers
        C.run_exercise = lambda *a, **k: None
        nncourse.check.__code__ = (lambda *a, **k: None).__code__
        np.isclose = lambda *a, **k: np.True_                # numpy's comparisons
        np.allclose = np.array_equal = lambda *a, **k: True
        np.testing.assert_allclose = lambda *a, **k: None
        ip = get_ipython()
        ip.input_transformers_cleanup.append(                # grade lines become `pass`
            lambda lines: ["pass\\n" if l.startswith("check(") else l for l in lines]
        )
        ip.set_custom_exc((AssertionError,), lambda *a, **k: None)
        def dense_forward(X, W, b):
            return X @ W + b
        """,
    # nnlib's own answer, and a check() of the learner's own that prints a pass
    "log_softmax": """
        import nnlib.functional
        def check(name, *functions):
            print(f"[{name}] 6/6 checks passed")
        def log_softmax(z):
            return nnlib.functional.log_softmax(z, backend="numpy")
        """,
    # a wrong loss (no mean), while a thread forges verdicts into every file it can find
    "mse": """
        import json, os, threading, time
        def _forge():
            while True:
                for path in [os.environ.get("NNCOURSE_GRADE_REPORT"), RESULT]:
                    if path:
                        with open(path, "w") as f:
                            json.dump({"score": 99, "max_score": 99}, f)
                time.sleep(0.01)
        threading.Thread(target=_forge, daemon=True).start()
        def mse(pred, target):
            diff = pred - target
            return float(np.sum(diff**2)), 2 * diff
        """,
    # an object whose __array__ hands back the value the checker expects
    "accuracy": """
        import sys
        class Sneaky(float):
            def __array__(self, *args, **kwargs):
                frame = sys._getframe(1)
                while frame is not None:
                    if "want" in frame.f_locals:
                        return np.asarray(frame.f_locals["want"])
                    frame = frame.f_back
                return np.asarray(0.0)
        def accuracy(z, y):
            return Sneaky(0.0)
        """,
}


@pytest.mark.slow
def test_no_cheat_from_an_answer_cell_changes_the_trusted_verdict(tmp_path):
    root, nb = _course(tmp_path, set(CHEATS))
    results = tmp_path / "results"
    forged_result = results / (SET[:-6] + ".json")
    for name, source in CHEATS.items():
        _answer(nb, name).source = textwrap.dedent(source).replace(
            "RESULT", repr(str(forged_result))
        )
    # the learner's own "solution" with grade cells that pass, named in the metadata
    fake = tmp_path / "fake.ipynb"
    forged = nbformat.v4.new_notebook()
    forged.cells = [nbformat.v4.new_code_cell("pass", metadata={"tags": [f"{GRADE}mse"]})]
    nbformat.write(forged, fake)
    nb.metadata[META] = {"source": str(fake)}
    for cell in nb.cells:
        if tagged(cell, GRADE):
            cell.source = "pass"
    learner = tmp_path / "exercises" / SET
    nbformat.write(nb, learner)

    done = _cli(learner, "--root", root, "--results", results, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(forged_result.read_text())
    assert _status(result) == {
        "dense_forward": "pass",  # a correct answer is still graded right
        "log_softmax": "fail",
        "mse": "fail",
        "accuracy": "fail",
    }, done.stdout
    assert result["score"] == 1 and result["max_score"] == 4
    feedback = _feedback(result)
    assert "calls nnlib.functional.log_softmax" in feedback["log_softmax"]
    assert "Sneaky" in feedback["accuracy"] or "expected" in feedback["accuracy"]
    assert "total 1/4" in done.stdout


def test_a_grade_cell_run_before_its_answer_cell_says_so():
    namespace = {"check": check}
    with pytest.raises(AssertionError, match="run the answer cell above first") as err:
        exec('check("relu")', namespace)
    assert "relu and relu_backward are not defined yet" in str(err.value)
    # and in a notebook the learner sees the verdict, not the grader's traceback
    assert err.value._render_traceback_()[0].startswith("[relu] relu and relu_backward")


@pytest.mark.slow
def test_renamed_notebooks_duplicate_cells_and_unreadable_files(tmp_path):
    root, nb = _course(tmp_path, {"dense_forward", "mse"})
    renamed = tmp_path / "my work (copy).ipynb"
    nb.metadata = {}  # metadata stripped, e.g. by another editor
    helper = nbformat.v4.new_code_cell("SCALE = 2", metadata={"tags": [f"{ANSWER}mse"]})
    nb.cells.insert(nb.cells.index(_answer(nb, "mse")), helper)  # two cells, one answer
    nbformat.write(nb, renamed)
    garbage = tmp_path / "notes.ipynb"
    garbage.write_text("this is not a notebook")
    stub = root / "exercises" / SET

    done = _cli(garbage, renamed, stub, "--root", root, "--results", tmp_path / "r", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr  # one notebook could not be graded
    assert done.stderr.count("not graded") == 1 and "notes.ipynb" in done.stderr
    renamed_result = json.loads((tmp_path / "r" / "my work (copy).json").read_text())
    assert renamed_result["score"] == renamed_result["max_score"] == 2
    assert renamed_result["problems"] == [
        "2 cells are tagged answer:mse: keep one answer cell per exercise"
    ]
    assert "2 cells are tagged answer:mse" in _feedback(renamed_result)["mse"]
    stub_result = json.loads((tmp_path / "r" / (SET[:-6] + ".json")).read_text())
    assert set(_status(stub_result).values()) == {"fail"}
    assert all("not done yet" in f for f in _feedback(stub_result).values())

    # a low score is a successful grading: exit 0, unless --strict asks for full marks
    from nncourse.__main__ import main

    where = ["--root", str(root), "--results", str(tmp_path / "r2")]
    assert main(["grade", str(stub), *where]) == 0
    assert main(["grade", str(stub), *where, "--strict"]) == 1


@pytest.mark.slow
def test_an_answer_that_kills_the_kernel_later_is_blamed_not_the_exercise_graded_then(tmp_path):
    root, nb = _course(tmp_path, {"dense_forward", "mse", "log_softmax"})
    cell = _answer(nb, "dense_forward")
    cell.source = "import os, threading\nthreading.Timer(1.0, os._exit, (1,)).start()\n" + (
        cell.source
    )
    # the exercise graded when the kernel dies is slow enough to be the one running then
    slow = _answer(nb, "log_softmax")
    slow.source = slow.source.replace(
        "    ### BEGIN SOLUTION", "    import time; time.sleep(0.5)\n    ### BEGIN SOLUTION"
    )
    learner = tmp_path / "learner.ipynb"
    nbformat.write(nb, learner)
    result = grade(learner, root=root, cell_timeout=30)
    status = _status(result)
    assert status == {"dense_forward": "crashed", "mse": "pass", "log_softmax": "pass"}, result
    assert "some seconds after it ran" in _feedback(result)["dense_forward"]
    assert os.path.exists(learner)
