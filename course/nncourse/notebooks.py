"""Build exercise notebooks from solution notebooks (one source), and check they are current.

A solution notebook ``solutions/NN_topic.ipynb`` is the source. In it

* an **answer cell** is tagged ``answer:<exercise>``; its solution code sits between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (indented like the code). Lines between
  ``### BEGIN OMITTED`` and ``### END OMITTED`` are left out of the exercise with no stub
  in their place: what the learner is to choose and write (a kernel's decorator, say);
* a **grade cell** is tagged ``grade:<exercise>`` and is one line, ``check(...)``.

:func:`make_exercise` turns it into ``exercises/NN_topic.ipynb``: each solution region
becomes ``raise NotImplementedError(...)``, outputs are cleared, the kernelspec is
``python3`` and grade cells are locked (``editable: false, deletable: false``).
:func:`build` also executes the solution notebook so its outputs are stored, and records
a hash of the code it ran, so :func:`stale` can tell without running anything whether
the committed notebooks still match their source.

The course's folder (the one holding ``solutions/`` and ``exercises/``) is found by
:func:`course_root`: the folder it is given (``--root``), else ``$NNCOURSE_ROOT``, else the
nearest folder from the current directory upwards that holds both. Never from where this
package is installed: an installed grader has no notebooks beside it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import nbformat

from .checks import STUB_MARK

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
OMIT_BEGIN, OMIT_END = "### BEGIN OMITTED", "### END OMITTED"
ANSWER, GRADE = "answer:", "grade:"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
# NOTE: our key in notebook metadata. It keeps the name it had when the grader lived in
# nnlib: exercise notebooks built before the move (a learner's work among them) still
# carry it, and the build tells a learner's changes from a stale build by it.
META = "nnlib_grading"
ROOT_ENV = "NNCOURSE_ROOT"
COURSE_FOLDERS = ("exercises", "solutions")


class BuildError(Exception):
    """A solution notebook breaks a rule of the build, or a learner's work is in the way."""


class CourseRootNotFound(FileNotFoundError):
    """No course folder (one holding ``exercises/`` and ``solutions/``) was given or found."""


def _is_course(folder: Path) -> bool:
    return all((folder / name).is_dir() for name in COURSE_FOLDERS)


def course_root(root: str | os.PathLike | None = None) -> Path:
    """The course's folder: the one that holds ``exercises/`` and ``solutions/``.

    ``root`` if given (the ``--root`` option), else ``$NNCOURSE_ROOT`` if set, else the
    nearest folder that holds both, from the current directory upwards. A folder given
    either way must hold both. Raises :class:`CourseRootNotFound` saying what was looked
    for, where, and what to do.
    """
    wanted = " and ".join(f"{name}/" for name in COURSE_FOLDERS)
    if root is not None or os.environ.get(ROOT_ENV):
        given, how = (root, "--root") if root is not None else (os.environ[ROOT_ENV], ROOT_ENV)
        folder = Path(given).expanduser().absolute()
        lacking = [f"{name}/" for name in COURSE_FOLDERS if not (folder / name).is_dir()]
        if lacking:
            raise CourseRootNotFound(
                f"{how}: expected the course's folder, one that holds {wanted}; "
                f"{folder} has no {' and no '.join(lacking)}. Give the folder of the course's "
                "repository (the one with exercises/ and solutions/ in it)."
            )
        return folder
    start = Path.cwd().resolve()
    for folder in (start, *start.parents):
        if _is_course(folder):
            return folder
    raise CourseRootNotFound(
        f"no course folder found: looked for a folder that holds {wanted} in {start} and "
        f"in every folder above it. Run the command from inside the course's repository, "
        f"or pass --root FOLDER, or set {ROOT_ENV}=FOLDER."
    )


def tagged(cell, prefix: str) -> str | None:
    """The exercise name of a cell tagged ``<prefix><name>``, or None."""
    for tag in cell.get("metadata", {}).get("tags", []):
        if tag.startswith(prefix):
            return tag[len(prefix) :]
    return None


def exercises_of(nb) -> list[str]:
    """Exercise names in notebook order, from the grade cells' tags."""
    return [name for cell in nb.cells if (name := tagged(cell, GRADE))]


def stub_source(source: str, where: str) -> str:
    """``source`` with each solution region replaced by ``raise NotImplementedError``, and
    each omitted region left out."""
    out, inside, omitting, function = [], False, False, where
    for number, line in enumerate(source.splitlines(), 1):
        stripped = line.strip()
        if match := re.match(r"\s*def (\w+)\(", line):
            function = match.group(1)
        if stripped in (OMIT_BEGIN, OMIT_END):
            if inside or omitting == (stripped == OMIT_BEGIN):
                raise BuildError(f"{where}, line {number}: {stripped} out of place")
            omitting = stripped == OMIT_BEGIN
        elif omitting:
            continue
        elif stripped == BEGIN:
            if inside:
                raise BuildError(f"{where}, line {number}: {BEGIN} inside another region")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(
                f'{indent}raise NotImplementedError("{function}: your code here {STUB_MARK}")'
            )
        elif stripped == END:
            if not inside:
                raise BuildError(f"{where}, line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside or omitting:
        opened, closer = (BEGIN, END) if inside else (OMIT_BEGIN, OMIT_END)
        raise BuildError(f"{where}: {opened} is never closed by {closer}")
    return "\n".join(out)


def sources_hash(nb) -> str:
    """sha256 of the cell types and sources: what a learner (or an author) edits."""
    digest = hashlib.sha256()
    for cell in nb.cells:
        digest.update(json.dumps([cell.cell_type, cell.source]).encode())
    return digest.hexdigest()


def make_exercise(solution, solution_name: str):
    """The exercise notebook generated from a solution notebook (a pure function)."""
    nb = copy.deepcopy(solution)
    graded = exercises_of(nb)
    for index, cell in enumerate(nb.cells):
        where = f"{solution_name}, cell {index}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
            answer = tagged(cell, ANSWER)
            if any(mark in cell.source for mark in (BEGIN, END, OMIT_BEGIN, OMIT_END)):
                if answer is None:
                    raise BuildError(f"{where} has a solution region but no answer:<name> tag")
                cell.source = stub_source(cell.source, where)
            if answer is not None and answer not in graded:
                raise BuildError(f"{where}: answer:{answer} has no grade:{answer} cell")
            if tagged(cell, GRADE):
                cell.metadata["editable"] = False
                cell.metadata["deletable"] = False
    nb.metadata = {
        "kernelspec": dict(KERNELSPEC),
        "language_info": {"name": "python"},
        META: {"source": f"solutions/{solution_name}"},
    }
    nb.metadata[META]["sources_sha256"] = sources_hash(nb)
    return nb


def dumps(nb) -> str:
    return nbformat.writes(nb) + "\n"


def execute(solution_path: Path, timeout: int = 600):
    """Run a solution notebook top to bottom (nbclient) and record what code it ran."""
    from nbclient import NotebookClient

    nb = nbformat.read(solution_path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(solution_path.parent)}},
    )
    client.execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nb.metadata.setdefault(META, {})["executed_sources_sha256"] = sources_hash(nb)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return nb


def learner_changed(path: Path) -> bool:
    """True when the exercise notebook at ``path`` holds edits made after it was built."""
    if not path.exists():
        return False
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # unreadable: treat as someone's work, never overwrite blindly
        return True
    recorded = nb.metadata.get(META, {}).get("sources_sha256")
    return recorded != sources_hash(nb)


def write_exercise(path: Path, nb, *, backup: bool = False) -> str:
    """Write a generated exercise notebook without losing a learner's changes.

    Returns what was done, as a sentence. A notebook with changes is refused
    (:class:`BuildError`), or, with ``backup=True``, first copied to ``<name>.<time>.bak``.
    """
    text = dumps(nb)
    if path.exists() and path.read_text() == text:
        return f"{shown(path)}: up to date"
    if learner_changed(path):
        if not backup:
            raise BuildError(
                f"{shown(path)} has changes made after it was generated (your answers?), so it "
                "was NOT overwritten. Move it elsewhere, or run the build with --backup to "
                "keep a copy beside it and regenerate it."
            )
        saved = path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
        shutil.copy2(path, saved)
        path.write_text(text)
        return f"{shown(path)}: had changes; kept them in {shown(saved)}, then regenerated it"
    path.write_text(text)
    return f"{shown(path)}: written"


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def solution_paths(root: Path | None = None, names=()) -> list[Path]:
    """The solution notebooks ``solutions/NN_*.ipynb`` (those in ``names``, if any)."""
    paths = sorted((course_root(root) / "solutions").glob("[0-9][0-9]_*.ipynb"))
    if names:
        paths = [p for p in paths if p.stem in names or p.name in names]
    return paths


def build(
    root: Path | None = None, names=(), *, backup: bool = False, run: bool = True
) -> list[str]:
    """Execute each solution notebook (if ``run``) and regenerate its exercise notebook.

    ``root``: the course's folder (default: :func:`course_root` finds it).
    """
    root = course_root(root)
    done = []
    for solution in solution_paths(root, names):
        if run:
            nb = execute(solution)
            solution.write_text(dumps(nb))
            done.append(f"{shown(solution)}: executed, outputs stored")
        nb = nbformat.read(solution, as_version=4)
        exercise = make_exercise(nb, solution.name)
        done.append(write_exercise(root / "exercises" / solution.name, exercise, backup=backup))
    return done


def stale(root: Path | None = None, names=()) -> list[str]:
    """What is out of date among the committed notebooks (empty: all current).

    ``root``: the course's folder (default: :func:`course_root` finds it).
    """
    root = course_root(root)
    problems = []
    solutions = solution_paths(root, names)
    if not solutions:
        problems.append(f"no solution notebooks found in {root / 'solutions'}")
    for solution in solutions:
        nb = nbformat.read(solution, as_version=4)
        ran = nb.metadata.get(META, {}).get("executed_sources_sha256")
        unrun = [
            i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.execution_count is None
        ]
        if ran != sources_hash(nb) or unrun:
            problems.append(
                f"{shown(solution)}: its stored outputs are not from its current code "
                "(edited or never executed since)"
            )
        exercise = root / "exercises" / solution.name
        if not exercise.exists():
            problems.append(f"{shown(exercise)}: missing")
        elif exercise.read_text() != dumps(make_exercise(nb, solution.name)):
            problems.append(f"{shown(exercise)}: differs from what {solution.name} generates")
    return problems


def reset(path: Path, names, *, root: Path | None = None) -> list[str]:
    """Put the original stub back into the answer cells of ``names`` in a learner's notebook.

    Every other cell is kept as it is. The notebook is first copied to
    ``<name>.<time>.bak``. A deleted answer cell is re-inserted above its grade cell.
    ``root``: the course's folder (default: :func:`course_root` finds it).
    """
    path = Path(path)
    root = course_root(root)
    learner = nbformat.read(path, as_version=4)
    recorded = learner.metadata.get(META, {}).get("source", f"solutions/{path.name}")
    solution = root / recorded
    if not solution.exists():
        raise BuildError(f"no solution notebook {solution} to take the stubs of {path} from")
    canonical = make_exercise(nbformat.read(solution, as_version=4), solution.name)
    stubs = {tagged(c, ANSWER): c for c in canonical.cells if tagged(c, ANSWER)}
    unknown = [n for n in names if n not in stubs]
    if unknown or not names:
        raise BuildError(
            f"reset: name the exercises to reset; {path.name} has: {', '.join(stubs)}"
            + (f" (not {', '.join(unknown)})" if unknown else "")
        )
    saved = path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
    shutil.copy2(path, saved)
    done = [f"kept a copy of {shown(path)} in {shown(saved)}"]
    for name in names:
        cells = [c for c in learner.cells if tagged(c, ANSWER) == name]
        if cells:
            first = learner.cells.index(cells[0])
            for cell in cells:
                learner.cells.remove(cell)
        else:
            grades = [i for i, c in enumerate(learner.cells) if tagged(c, GRADE) == name]
            first = grades[0] if grades else len(learner.cells)
        learner.cells.insert(first, copy.deepcopy(stubs[name]))
        done.append(f"{name}: answer cell reset to the original stub")
    path.write_text(dumps(learner))
    return done
