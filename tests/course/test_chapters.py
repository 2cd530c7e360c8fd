"""The lesson notebooks in ``chapters/``: they run top to bottom in a fresh kernel without
error (nbval, lax: cells marked ``# NBVAL_CHECK_OUTPUT`` must reproduce their stored
output), and each has what every chapter promises its reader.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
SANITIZE = Path(str(resources.files("nncourse") / "nbval_sanitize.cfg"))


def _read(path):
    return nbformat.read(path, as_version=4)


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _markdown(nb):
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def test_there_are_chapters():
    assert CHAPTERS, "chapters/ holds no NN_topic.ipynb lesson"


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_chapter_runs_top_to_bottom_in_a_fresh_kernel(chapter):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            f"--nbval-sanitize-with={SANITIZE}",
            "--nbval-cell-timeout=120",
            "-p",
            "no:cacheprovider",
            "-q",
            str(chapter),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_chapter_outputs_are_stored_and_free_of_errors(chapter):
    cells = _code(_read(chapter))
    assert all(c.execution_count for c in cells), "a code cell was never run: execute it"
    counts = [c.execution_count for c in cells]
    assert counts == list(range(1, len(cells) + 1)), "not run top to bottom in one kernel"
    for cell in cells:
        for out in cell.outputs:
            assert out.output_type != "error", f"stored error output in:\n{cell.source}"
            assert not (out.output_type == "stream" and out.name == "stderr"), (
                f"stored stderr output in:\n{cell.source}\n{out.text}"
            )


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_chapter_has_what_every_lesson_promises(chapter):
    nb = _read(chapter)
    figures = sum("image/png" in out.get("data", {}) for c in _code(nb) for out in c.outputs)
    assert figures >= 3, f"{figures} figures; a lesson shows at least three"
    assert any("ipywidgets" in c.source for c in _code(nb)), "no interactive explorer"
    text = _markdown(nb)
    assert "$" in text, "no math"
    assert re.search(r"common mistakes", text, re.I), "no 'Common mistakes' box"
    assert re.search(r"^#+ .*summary", text, re.I | re.M), "no closing summary"
    exercises = f"exercises/{chapter.name}"
    assert exercises in text, f"no pointer to {exercises}"
    assert (ROOT / exercises).exists(), f"{exercises} does not exist"


PREDICT = "**Predict first:**"
ANSWER = "<details><summary>answer</summary>"
# Chapters 1-4 are the foundations, with a prediction before each key experiment;
# the later chapters have at least three.
MIN_PREDICTIONS = {"01": 4, "02": 4, "03": 4, "04": 4}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_predictions_come_before_the_experiment_and_are_answered_after_it(chapter):
    """A 'Predict first' question ends its markdown cell, the code cells after it run the
    experiment, and the next markdown cell opens with a collapsed answer (HTML <details>)."""
    cells = _read(chapter).cells
    prompts = []
    for i, cell in enumerate(cells):
        if cell.cell_type != "markdown" or PREDICT not in cell.source:
            continue
        question = cell.source.split(PREDICT)[-1]
        assert cell.source.count(PREDICT) == 1 and "\n\n" not in question.strip(), (
            f"cell {i}: the prediction must be the last paragraph of its cell:\n{cell.source}"
        )
        assert "?" in question, f"cell {i}: the prediction asks no question"
        code = 0
        for j in range(i + 1, len(cells)):
            if cells[j].cell_type == "code":
                code += 1
                continue
            answer = cells[j].source
            assert code, f"cell {i}: no experiment (code cell) between the question and cell {j}"
            assert answer.startswith(ANSWER) and "</details>" in answer, (
                f"cell {j}: the markdown after the experiment of cell {i} must be the answer, "
                f"'{ANSWER} ... </details>'; it is:\n{answer[:300]}"
            )
            explained = answer[len(ANSWER) : answer.index("</details>")].strip()
            assert len(explained) > 40, f"cell {j}: the answer explains nothing"
            break
        else:
            pytest.fail(f"cell {i}: the prediction is never answered")
        prompts.append(i)
    want = MIN_PREDICTIONS.get(chapter.name[:2], 3)
    assert len(prompts) >= want, f"{len(prompts)} 'Predict first' questions; at least {want}"
