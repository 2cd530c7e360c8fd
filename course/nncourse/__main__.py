"""Command line: ``python -m nncourse build|grade|reset``.

``build [--check] [--backup] [--no-run] [NAME ...]``
    Execute the solution notebooks and regenerate the exercise notebooks from them.
    ``--check`` changes nothing and exits 1 if any committed notebook is stale.
``grade [NOTEBOOK ...] [--results DIR] [--timeout S] [--strict]``
    Grade exercise notebooks (default: every ``exercises/NN_*.ipynb``). Exits 0 when every
    notebook was graded, whatever the scores; 1 when a notebook could not be graded (the
    others are still graded); 2 for a wrong command line. ``--strict`` (for CI): also
    exit 1 unless every exercise scored full points.
``reset NOTEBOOK EXERCISE ...``
    Put the original stub back into those exercises' answer cells, keeping every other
    cell (a backup copy is kept beside the notebook).

Every command takes ``--root FOLDER``, the course's folder (the one holding
``exercises/`` and ``solutions/``). Without it: ``$NNCOURSE_ROOT``, else the nearest such
folder from the current directory upwards.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import grader, notebooks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nncourse",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--root",
        type=Path,
        default=None,
        help="the course's folder, holding exercises/ and solutions/ (default: "
        f"${notebooks.ROOT_ENV}, else the nearest such folder above the current directory)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", parents=[where], help="regenerate exercises/ from solutions/")
    b.add_argument("names", nargs="*", help="notebooks to build, e.g. 01_activations")
    b.add_argument("--check", action="store_true", help="only report stale notebooks")
    b.add_argument(
        "--backup", action="store_true", help="back up a changed exercise, then overwrite it"
    )
    b.add_argument("--no-run", action="store_true", help="do not execute the solutions")
    g = sub.add_parser("grade", parents=[where], help="grade exercise notebooks")
    g.add_argument("notebooks", nargs="*", type=Path)
    g.add_argument("--results", type=Path, default=Path("results"), help="folder for the JSON")
    g.add_argument(
        "--timeout", type=int, default=grader.DEFAULT_CELL_TIMEOUT, help="seconds per cell"
    )
    g.add_argument(
        "--strict", action="store_true", help="exit 1 unless every exercise scores full points"
    )
    r = sub.add_parser(
        "reset", parents=[where], help="put the original stub back into some answer cells"
    )
    r.add_argument("notebook", type=Path)
    r.add_argument("exercises", nargs="*", help="exercise names, e.g. softmax")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except notebooks.CourseRootNotFound as err:
        print(f"{args.command}: {err}", file=sys.stderr)
        return 2


def _run(args) -> int:
    if args.command == "reset":
        try:
            for line in notebooks.reset(args.notebook, args.exercises, root=args.root):
                print(line)
        except (notebooks.BuildError, FileNotFoundError) as err:
            print(f"reset: {err}", file=sys.stderr)
            return 2
        return 0

    if args.command == "build":
        if args.check:
            problems = notebooks.stale(args.root, names=args.names)
            for p in problems:
                print(f"stale: {p}")
            if problems:
                print("Rebuild with: python -m nncourse build")
                return 1
            print("notebooks are up to date")
            return 0
        try:
            for line in notebooks.build(
                args.root, names=args.names, backup=args.backup, run=not args.no_run
            ):
                print(line)
        except notebooks.BuildError as err:
            print(f"build stopped: {err}", file=sys.stderr)
            return 1
        return 0

    paths = args.notebooks or sorted(
        (notebooks.course_root(args.root) / "exercises").glob("[0-9][0-9]_*.ipynb")
    )
    if not paths:
        print("no exercise notebooks to grade", file=sys.stderr)
        return 2
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        print(f"grade: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    ungraded, all_full = 0, True
    for path in paths:
        try:
            result = grader.grade(path, cell_timeout=args.timeout, root=args.root)
        except (grader.GradingError, notebooks.BuildError, OSError) as err:
            print(f"grade: {path}: not graded: {err}\n", file=sys.stderr)
            ungraded += 1
            continue
        print(grader.table(result))
        print(f"result written to {grader.write_result(result, args.results)}\n")
        all_full &= result["score"] == result["max_score"]
    if ungraded:
        return 1
    return 1 if args.strict and not all_full else 0


if __name__ == "__main__":
    sys.exit(main())
