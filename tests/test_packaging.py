"""The two ways to install agree, and the setup files say what the README promises."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

ROOT = Path(__file__).resolve().parents[1]


def _split(requirement: str) -> tuple[str, str]:
    """'numpy>=1.24,<2.5' -> ('numpy', '<2.5,>=1.24') with extras dropped, bounds sorted."""
    m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(.*)", requirement)
    assert m, requirement
    name = m.group(1).lower().replace("_", "-")
    bounds = ",".join(sorted(b.replace(" ", "") for b in m.group(3).split(",") if b.strip()))
    return name, bounds


def _pyproject():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return data["dependencies"], data["optional-dependencies"]


def _course_pyproject():
    return tomllib.loads((ROOT / "course" / "pyproject.toml").read_text())


def _environment():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = [], []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += [p for p in dep["pip"] if not p.startswith("-e")]
        else:
            conda.append(dep)
    return conda, pip


def test_environment_yml_lists_the_same_packages_and_bounds_as_pyproject():
    core, extras = _pyproject()
    course = [r for r in _course_pyproject()["project"]["dependencies"] if _split(r)[0] != "nnlib"]
    wanted = {}
    for r in core + [r for reqs in extras.values() for r in reqs] + course:
        name, bounds = _split(r)
        assert wanted.setdefault(name, bounds) == bounds, f"{name}: {bounds} and {wanted[name]}"
    conda, pip = _environment()
    listed = dict(_split(r) for r in conda + pip)
    listed.pop("python"), listed.pop("pip")
    assert listed == wanted


def test_environment_yml_installs_nnlib_and_the_course():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    (pip,) = [dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict)]
    assert "-e ." in pip and "-e ./course" in pip


def test_numpy_is_capped_below_2_5_for_numba_cuda():
    core, _ = _pyproject()
    assert "<2.5" in dict(_split(r) for r in core)["numpy"].split(",")


def test_core_install_needs_only_numpy_scipy_numba():
    core, extras = _pyproject()
    assert sorted(_split(r)[0] for r in core) == ["numba", "numpy", "scipy"]
    assert {"cuda", "course", "test"} <= set(extras)
    assert "numba-cuda[cu13]>=0.30" in extras["test"]  # PTX compiles in CI need NVVM


def test_ci_runs_make_test_and_nothing_else():
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert lines[-1] == "make test"
    assert all(line.startswith(("set ", "cd ")) for line in lines[:-1]), lines


def test_readme_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_screen = readme[: readme.index("make test") + 200]
    assert "make lab" in first_screen


def test_nnlib_is_only_the_library_and_the_grader_is_its_own_distribution():
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert root["tool"]["setuptools"]["packages"]["find"]["include"] == ["nnlib*"]
    assert not any("grading" in p for p in root["tool"]["setuptools"]["package-data"]["nnlib"])
    assert not (ROOT / "nnlib" / "grading").exists()
    course = _course_pyproject()
    assert course["project"]["name"] == "nnlib-course"
    assert course["tool"]["setuptools"]["packages"]["find"]["include"] == ["nncourse*"]
    assert course["tool"]["setuptools"]["package-data"]["nncourse"] == ["*.cfg"]
    assert (ROOT / "course" / "nncourse" / "nbval_sanitize.cfg").is_file()
    needs = {_split(r)[0] for r in course["project"]["dependencies"]}
    assert {"nnlib", "nbformat", "nbclient", "ipykernel", "nbval", "hypothesis"} <= needs


def test_nnlib_never_imports_the_course():
    for path in sorted((ROOT / "nnlib").rglob("*.py")):
        text = path.read_text()
        assert "nncourse" not in text and "nbformat" not in text, path.relative_to(ROOT)


def test_make_installs_both_and_grades_with_nncourse():
    makefile = (ROOT / "Makefile").read_text()
    stamp = re.search(r"^\$\(VENV\)/\.installed-%: (.*?)\|", makefile, re.M)
    assert stamp and stamp.group(1).split() == ["pyproject.toml", "course/pyproject.toml"]
    assert re.search(r'-e "\.\[\$\(subst -,\$\(comma\),\$\*\)\]" -e \./course', makefile)
    assert "$(BIN)/python -m nncourse grade $(NB)" in makefile
    assert "nnlib.grading" not in makefile
