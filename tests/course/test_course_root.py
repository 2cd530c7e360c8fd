"""Where the grader finds the course: the folder it is given (``--root``), else
``$NNCOURSE_ROOT``, else the nearest folder holding ``exercises/`` and ``solutions/`` from
the current directory upwards; never from where the grader itself is installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nncourse import notebooks
from nncourse.notebooks import CourseRootNotFound, course_root

ROOT = Path(__file__).resolve().parents[2]
NAME = "01_activations.ipynb"


@pytest.fixture
def course(tmp_path):
    """A copy of one solution and its exercise in a course folder of its own."""
    root = tmp_path / "course"
    for folder in ("solutions", "exercises"):
        (root / folder).mkdir(parents=True)
        shutil.copy(ROOT / folder / NAME, root / folder / NAME)
    return root


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working directory with no course in it or above it, and no $NNCOURSE_ROOT."""
    monkeypatch.delenv(notebooks.ROOT_ENV, raising=False)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_a_given_root_is_used(course, elsewhere):
    assert course_root(course) == course
    assert notebooks.solution_paths(course) == [course / "solutions" / NAME]
    assert notebooks.stale(course) == []


def test_the_environment_variable_is_used(course, elsewhere, monkeypatch):
    monkeypatch.setenv(notebooks.ROOT_ENV, str(course))
    assert course_root() == course
    assert notebooks.stale() == []


def test_a_given_root_wins_over_the_environment_variable(course, elsewhere, monkeypatch):
    monkeypatch.setenv(notebooks.ROOT_ENV, str(elsewhere))
    assert course_root(course) == course


def test_the_course_is_discovered_from_a_subfolder(course, elsewhere, monkeypatch):
    deep = course / "exercises" / "my" / "work"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert course_root() == course.resolve()
    monkeypatch.chdir(course)
    assert course_root() == course.resolve()


def test_the_nearest_course_folder_wins(course, monkeypatch):
    monkeypatch.delenv(notebooks.ROOT_ENV, raising=False)
    inner = course / "exercises" / "inner"
    for folder in ("exercises", "solutions"):
        (inner / folder).mkdir(parents=True)
    monkeypatch.chdir(inner / "exercises")
    assert course_root() == inner.resolve()


def test_no_course_found_says_what_was_looked_for_where_and_what_to_do(elsewhere):
    # NOTE: the grader is installed inside this repository, so finding the course from
    # the grader's own file would succeed here: this proves it does not.
    with pytest.raises(CourseRootNotFound) as err:
        course_root()
    message = str(err.value)
    assert "exercises/ and solutions/" in message
    assert str(elsewhere.resolve()) in message and "every folder above it" in message
    assert "--root" in message and "NNCOURSE_ROOT" in message
    with pytest.raises(FileNotFoundError):  # the base class callers may already catch
        notebooks.stale()


def test_a_given_root_that_is_not_a_course_is_refused(course, elsewhere, monkeypatch):
    shutil.rmtree(course / "solutions")
    with pytest.raises(CourseRootNotFound, match=r"--root: .* has no solutions/"):
        course_root(course)
    monkeypatch.setenv(notebooks.ROOT_ENV, str(elsewhere))
    with pytest.raises(
        CourseRootNotFound, match=r"NNCOURSE_ROOT: .* has no exercises/ and no solutions/"
    ):
        course_root()


def _cli(*args, cwd, env=None):
    return subprocess.run(
        [sys.executable, "-m", "nncourse", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )


def test_the_command_line_takes_root_and_explains_a_missing_course(course, elsewhere):
    done = _cli("build", "--check", "--root", str(course), cwd=elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "up to date" in done.stdout

    lost = _cli("build", "--check", cwd=elsewhere)
    assert lost.returncode == 2, lost.stdout + lost.stderr
    assert "build: no course folder found" in lost.stderr and "--root" in lost.stderr
    lost = _cli("grade", cwd=elsewhere)
    assert lost.returncode == 2 and "grade: no course folder found" in lost.stderr
    assert "Traceback" not in lost.stderr
