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
    wanted = dict(_split(r) for r in core + [r for reqs in extras.values() for r in reqs])
    conda, pip = _environment()
    listed = dict(_split(r) for r in conda + pip)
    listed.pop("python"), listed.pop("pip")
    assert listed == wanted


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
