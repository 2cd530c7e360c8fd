"""The README's Python examples run as written, in order, in one namespace (in a scratch
folder: an example may write files)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 4, "the README lost its examples"
    namespace: dict = {}
    moons = digits = None
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
        if "datasets.moons(" in block:  # the moons example really learns
            moons = namespace["model"].evaluate(namespace["X"], namespace["y"])
        if "load_digits(" in block:  # and so does the digits one, reloaded from its file
            digits = namespace["model"].evaluate(namespace["X_te"], namespace["y_te"])
    out = capsys.readouterr().out
    assert "'accuracy'" in out and "PASS" in out
    assert moons is not None and moons["accuracy"] >= 0.95, moons
    assert digits is not None and digits["accuracy"] >= 0.95, digits
