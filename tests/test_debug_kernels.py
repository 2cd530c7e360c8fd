"""The debug build of the cpu kernels (``NNLIB_DEBUG_KERNELS=1``) really checks bounds.

``NUMBA_BOUNDSCHECK=1`` does not check an index inside a ``prange`` loop of a
``parallel=True`` function, so nnlib's switch compiles every cpu kernel serially with
``boundscheck=True``. Each case runs in a fresh interpreter, because the switch is read
once, when nnlib is imported (and the normal build must not see a debug one).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

# A registered cpu kernel called directly, past the public API (which would refuse
# this): relu's kernel writes x.size elements into an output with half as many.
OUT_OF_BOUNDS = """
import numpy as np
import nnlib.functional
from nnlib.ops._launch import KERNELS
x = np.ones(64, np.float64)
out = np.zeros(32, np.float64)
try:
    KERNELS["relu", "cpu"](x, out)
except IndexError as exc:
    print("IndexError:", exc)
else:
    print("no error")
"""

OPTIONS = """
import nnlib.functional
from nnlib.ops import activations
from nnlib.ops._launch import KERNELS
kernel, helper = KERNELS["relu", "cpu"], activations._relu_cpu
print(sorted(kernel.targetoptions.items()))
print(type(kernel._cache).__name__)
print(sorted(helper.targetoptions.items()))
print(type(helper._cache).__name__)
"""


def _python(code: str, debug: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NNLIB_DEBUG_KERNELS"}
    if debug:
        env["NNLIB_DEBUG_KERNELS"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_debug_build_raises_index_error_on_an_out_of_bounds_kernel_call():
    assert _python(OUT_OF_BOUNDS, debug=True).startswith("IndexError:")


def test_the_debug_build_is_serial_bounds_checked_and_uncached():
    kernel_opts, kernel_cache, helper_opts, helper_cache = (
        _python(OPTIONS, debug=True).strip().splitlines()
    )
    assert "('parallel', False)" in kernel_opts and "('boundscheck', True)" in kernel_opts
    assert kernel_cache == "NullCache"
    assert "('boundscheck', True)" in helper_opts and "('inline', 'always')" in helper_opts
    assert helper_cache == "NullCache"


def test_without_the_switch_the_kernels_are_parallel_and_cached():
    kernel_opts, kernel_cache, helper_opts, helper_cache = (
        _python(OPTIONS, debug=False).strip().splitlines()
    )
    assert "('parallel', True)" in kernel_opts and "('boundscheck', True)" not in kernel_opts
    assert kernel_cache == "FunctionCache"
    assert "('boundscheck', True)" not in helper_opts and helper_cache == "FunctionCache"


# Every numba dispatcher nnlib defines at module level or records in KERNELS.
ALL_DISPATCHERS = """
import sys
import nnlib, nnlib.functional, nnlib.training, nnlib.layers, nnlib.model
from numba.core.registry import CPUDispatcher
from nnlib.ops._launch import KERNELS
found = {f"KERNELS[{op!r}]": k for (op, b), k in KERNELS.items() if b == "cpu"}
for name, module in list(sys.modules.items()):
    if name == "nnlib" or name.startswith("nnlib."):
        for attr, value in vars(module).items():
            if isinstance(value, CPUDispatcher):
                found[f"{name}.{attr}"] = value
for where, d in sorted(found.items()):
    checked = d.targetoptions.get("boundscheck") is True
    serial = not d.targetoptions.get("parallel")
    uncached = type(d._cache).__name__ == "NullCache"
    if not (checked and serial and uncached):
        print(where, d.targetoptions, type(d._cache).__name__)
print(len(found), "dispatchers")
"""


def test_under_the_switch_every_cpu_dispatcher_of_nnlib_is_a_debug_build():
    lines = _python(ALL_DISPATCHERS, debug=True).strip().splitlines()
    assert lines[-1].endswith("dispatchers") and int(lines[-1].split()[0]) > 20, lines
    assert lines[:-1] == [], "not compiled as a debug build:\n" + "\n".join(lines[:-1])


def test_nnlib_info_says_when_the_switch_is_on():
    code = "from nnlib.__main__ import info; print(info())"
    assert "DEBUG build (NNLIB_DEBUG_KERNELS=1)" in _python(code, debug=True)
    normal = _python(code, debug=False)
    assert "DEBUG" not in normal and "numba threading layer" in normal
