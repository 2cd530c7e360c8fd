"""nnlib's wheel is the library alone, and a core install of it works.

The wheel is built offline from a copy of the sources (as ``pip install .`` would build
it). It must hold no grading code: the course's grader is its own distribution
(``nnlib-course``, in ``course/``). It is then installed with ``--no-deps --no-index``
into a fresh virtual environment that sees numpy, scipy, numba and llvmlite only (links
to the test environment's copies, through a ``.pth`` file), none of the extras: there
``import nnlib``, ``python -m nnlib info`` and the README's training example work, and
the course, numba-cuda and nbformat are absent.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ("numpy", "scipy", "numba", "llvmlite")  # nnlib's dependencies and numba's


def _run(*args, cwd, env=None):
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "nnlib", src / "nnlib", ignore=shutil.ignore_patterns("__pycache__"))
    built = _run(
        *(sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q"),
        *("--no-index", "-w", str(tmp / "dist"), str(src)),
        cwd=tmp,
    )
    assert built.returncode == 0, f"building the wheel failed:\n{built.stdout}\n{built.stderr}"
    (path,) = (tmp / "dist").glob("nnlib-*.whl")
    return path


def _core_links(folder: Path) -> Path:
    """A folder of links to just numpy, scipy, numba and llvmlite (with their bundled
    libraries and metadata) from this test environment's site-packages."""
    folder.mkdir()
    for name in CORE:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
        package = Path(next(iter(spec.submodule_search_locations)))
        site = package.parent
        for path in [package, *site.glob(f"{name}.libs"), *site.glob(f"{name}-*.dist-info")]:
            (folder / path.name).symlink_to(path, target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def core_venv(wheel, tmp_path_factory):
    """(python, env, scratch folder) of a fresh venv holding the wheel and the core only."""
    tmp = tmp_path_factory.mktemp("venv")
    venv = tmp / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=tmp)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = _run(
        str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp
    ).stdout.strip()
    (Path(site) / "nnlib_core_deps.pth").write_text(f"{_core_links(tmp / 'core')}\n")
    # NOTE: this environment's pip installs into the venv (--python): a venv made with its
    # own pip takes several seconds longer.
    installed = _run(
        *(sys.executable, "-m", "pip", "--python", str(python), "install", "-q"),
        *("--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)),
        cwd=tmp,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "NNLIB_BACKEND", "NUMBA_ENABLE_CUDASIM")
    }
    env["PYTHONNOUSERSITE"] = "1"
    scratch = tmp / "scratch"  # not the repository: its nnlib/ must not be importable
    scratch.mkdir()
    return python, env, scratch


def test_the_wheel_holds_no_grading_code(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        sources = {n: z.read(n).decode() for n in names if n.endswith(".py")}
        top_level = z.read("nnlib-0.1.0.dist-info/top_level.txt").decode().split()
    assert top_level == ["nnlib"]
    assert "nnlib/__init__.py" in names and "nnlib/data/digits.npz" in names
    assert not [n for n in names if "nncourse" in n or "grading" in n or n.endswith(".cfg")]
    for name, text in sources.items():
        assert "nncourse" not in text, f"{name} names the course's package"
        assert not re.search(r"\bnbformat\b", text), f"{name} uses nbformat"
        assert not re.search(r"\bgrading\b", text), f"{name} mentions a grading module"


def test_a_core_install_imports_and_reports_the_missing_cuda_backend(core_venv):
    python, env, scratch = core_venv
    imported = _run(str(python), "-c", "import nnlib; print(nnlib.__file__)", cwd=scratch, env=env)
    assert imported.returncode == 0, imported.stderr
    assert str(python.parent.parent) in imported.stdout  # the installed copy, not the sources

    info = _run(str(python), "-m", "nnlib", "info", cwd=scratch, env=env)
    assert info.returncode == 0, info.stdout + info.stderr
    assert re.search(r"^  cpu +available$", info.stdout, re.M), info.stdout
    assert re.search(r"^  cuda +unavailable: .*needs the numba-cuda package", info.stdout, re.M), (
        info.stdout
    )


@pytest.mark.slow  # the cpu kernels compile from scratch in the fresh venv
def test_a_core_install_trains_the_readme_example(core_venv):
    python, env, scratch = core_venv
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    (example,) = [b for b in blocks if "datasets.moons(" in b]
    script = scratch / "readme_example.py"
    script.write_text(
        example + "\nassert model.evaluate(X, y)['accuracy'] >= 0.95, model.evaluate(X, y)\n"
    )
    trained = _run(str(python), str(script), cwd=scratch, env=env)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "'accuracy'" in trained.stdout


def test_a_core_install_has_none_of_the_extras(core_venv):
    python, env, scratch = core_venv
    probe = (
        "import importlib\n"
        "for name in ('nncourse', 'numba_cuda', 'nbformat'):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError:\n"
        "        print(name, 'absent')\n"
        "    else:\n"
        "        print(name, 'IMPORTED')\n"
    )
    done = _run(str(python), "-c", probe, cwd=scratch, env=env)
    assert done.returncode == 0, done.stderr
    absent = ["nncourse absent", "numba_cuda absent", "nbformat absent"]
    assert done.stdout.splitlines() == absent, done.stdout
