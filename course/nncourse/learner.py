"""The learner's functions as the sub-checks see them, wherever they run.

A sub-check never holds the learner's function itself: it gets a
:class:`LearnerFunction`. Calling it calls the learner's function, and also checks the
part of every exercise's contract that is the same everywhere:

* **inputs are never modified**: every array argument (``dy`` included) is compared with
  a copy taken before the call; an exercise names the arguments it lets a function
  update in place (``exercise(..., mutates={"adam_numba": ("p", "m", "v")})``);
* **the result is new memory**: an array in the result that shares memory with an
  argument (``return x`` when nothing is negative, ``x.reshape(...)``) fails;
* **the graded function does not call nnlib's own version** of itself
  (``nnlib.functional.relu`` in ``relu``).

Two kinds exist. :class:`LocalFunction` wraps a function in this process: the grade
cell's quick in-notebook feedback. The trusted grader (``make grade``) uses
:class:`nncourse.remote.RemoteFunction`, which runs the learner's function in the
learner's kernel and brings back only arrays and numbers (:func:`encode` and
:func:`decode`, also used there), so the verdict is computed in the grader's own process.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import sys
import textwrap
from dataclasses import dataclass, field

import numpy as np

# --------------------------------------------------------------------- values, encoded
# Only arrays, numbers, strings, None and tuples/lists/dicts of them cross between the
# learner's kernel and the grader: never pickles, never objects.

ITERATOR_LIMIT = 100_000


class Unsupported:
    """A value that cannot be brought back as data (an object of the learner's)."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self):
        return f"<a {self.type_name} object>"


class DeviceResult:
    """A GPU array returned where a host (NumPy) array was asked for; ``host`` is a copy."""

    def __init__(self, host: np.ndarray):
        self.host = host

    def __repr__(self):
        return f"<a GPU device array of shape {self.host.shape}>"


class Iterated(list):
    """What an iterator (e.g. a generator) produced, item by item."""


def _is_device_array(value) -> bool:
    return hasattr(value, "copy_to_host")  # numba.cuda device arrays, simulator ones too


def encode(value, arrays: dict, prefix: str = "v"):
    """``value`` as JSON-able data; its arrays go into ``arrays`` under fresh keys."""

    def put(array):
        key = f"{prefix}{len(arrays)}"
        arrays[key] = array
        return key

    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            return {"obj": f"array of dtype {value.dtype}"}
        return {"a": put(value)}
    if isinstance(value, np.generic):
        return {"g": put(np.asarray(value))}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"v": value}
    if isinstance(value, tuple):
        return {"t": [encode(v, arrays, prefix) for v in value]}
    if isinstance(value, list):
        return {"l": [encode(v, arrays, prefix) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"d": {k: encode(v, arrays, prefix) for k, v in value.items()}}
    if _is_device_array(value):
        return {"dev": put(value.copy_to_host())}
    if hasattr(value, "__next__") and hasattr(value, "__iter__"):
        items = []
        for item in value:
            items.append(encode(item, arrays, prefix))
            if len(items) >= ITERATOR_LIMIT:
                break
        return {"it": items}
    if isinstance(value, (range, set, frozenset)):
        return {"it": [encode(v, arrays, prefix) for v in value]}
    return {"obj": type(value).__name__}


def decode(data, arrays, resolve=None):
    """The value :func:`encode` described; ``resolve(name)`` turns ``{"fn": name}`` into
    a function (only in the learner's kernel, for functions passed as arguments)."""
    (kind, body), *_ = data.items()
    if kind == "a":
        return arrays[body]
    if kind == "g":
        return arrays[body][()]
    if kind == "v":
        return body
    if kind == "t":
        return tuple(decode(v, arrays, resolve) for v in body)
    if kind == "l":
        return [decode(v, arrays, resolve) for v in body]
    if kind == "d":
        return {k: decode(v, arrays, resolve) for k, v in body.items()}
    if kind == "dev":
        return DeviceResult(arrays[body])
    if kind == "it":
        return Iterated(decode(v, arrays, resolve) for v in body)
    if kind == "fn" and resolve is not None:
        return resolve(body)
    return Unsupported(str(body))


def leaves(value, path="") -> list[tuple[str, np.ndarray]]:
    """The arrays in a (nested) value, each with a readable path like ``params[0]``."""
    if isinstance(value, np.ndarray):
        return [(path, value)]
    if isinstance(value, (tuple, list)):
        return [leaf for i, v in enumerate(value) for leaf in leaves(v, f"{path}[{i}]")]
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in leaves(v, f"{path}[{k!r}]")]
    return []


def write_message(path: str, payload: dict, arrays: dict) -> None:
    """One message: ``path.json`` (the structure) and ``path.npz`` (its arrays)."""
    np.savez(path + ".npz", **arrays)
    with open(path + ".json", "w") as f:
        json.dump(payload, f, allow_nan=True)


def read_message(path: str) -> tuple[dict, dict]:
    with open(path + ".json") as f:
        payload = json.load(f)
    with np.load(path + ".npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return payload, arrays


# -------------------------------------------------------------------- calling, guarded

_NNLIB_DIR = None


def _nnlib_dir() -> str:
    global _NNLIB_DIR
    if _NNLIB_DIR is None:
        import nnlib

        _NNLIB_DIR = os.path.dirname(os.path.abspath(nnlib.__file__)) + os.sep
    return _NNLIB_DIR


def _qualified(code) -> str:
    """``nnlib.functional.relu`` for a code object in nnlib's package."""
    module = os.path.relpath(code.co_filename, os.path.dirname(_nnlib_dir().rstrip(os.sep)))
    module = module.removesuffix(".py").replace(os.sep, ".").removesuffix(".__init__")
    return f"{module}.{getattr(code, 'co_qualname', code.co_name)}"


def is_numba_dispatcher(fn) -> bool:
    return type(fn).__name__ in ("CPUDispatcher", "CUDADispatcher", "FakeCUDAKernel") or hasattr(
        fn, "py_func"
    )


def invoke(fn, args: tuple, kwargs: dict):
    """Call ``fn``; returns ``(result, nnlib_calls)``, the nnlib functions it entered.

    The calls are seen with a profile hook (Python functions only: a Numba function
    calling nnlib's kernels is caught by :func:`nnlib_references` instead).
    """
    if is_numba_dispatcher(fn):
        return fn(*args, **kwargs), []
    where = _nnlib_dir()
    ours = os.path.dirname(os.path.abspath(__file__)) + os.sep
    seen: list[str] = []
    depth = [0]

    def hook(frame, event, arg):
        # Only the outermost entry into nnlib counts: what nnlib calls inside is its own,
        # and so is what the grader's reference functions (passed as arguments) call.
        filename = frame.f_code.co_filename
        inside = filename.startswith(where) or filename.startswith(ours)
        if event == "call" and inside:
            if depth[0] == 0 and filename.startswith(where):
                seen.append(_qualified(frame.f_code))
            depth[0] += 1
        elif event == "return" and inside:
            depth[0] -= 1

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        result = fn(*args, **kwargs)
    finally:
        sys.setprofile(previous)
    return result, seen


def copy_args(value):
    """A deep copy of the arrays in a (nested) argument value; everything else as is."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, tuple):
        return tuple(copy_args(v) for v in value)
    if isinstance(value, list):
        return [copy_args(v) for v in value]
    if isinstance(value, dict):
        return {k: copy_args(v) for k, v in value.items()}
    return value


def changed(before, after) -> bool:
    if before.shape != after.shape:
        return True
    # the plain comparison first: equal_nan is several times slower on large arrays
    return not (np.array_equal(before, after) or np.array_equal(before, after, equal_nan=True))


def parameter_names(fn, count: int) -> list[str]:
    """The names of ``fn``'s first ``count`` positional parameters (``argument 3`` if
    unknown)."""
    try:
        params = [
            p.name
            for p in inspect.signature(getattr(fn, "py_func", fn)).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    return [params[i] if i < len(params) else f"argument {i + 1}" for i in range(count)]


@dataclass
class Call:
    """What one call did, as data: brought back from wherever the function ran."""

    result: object
    # "dy", "params[0]": arguments whose arrays the call changed, and those the result
    # shares memory with
    modified: list[str] = field(default_factory=list)
    aliased: list[str] = field(default_factory=list)
    nnlib_calls: list[str] = field(default_factory=list)
    # the positions (in the order of watched_arrays) of the changed arrays
    modified_at: list[int] = field(default_factory=list)


def watched_arrays(fn_params: list[str], args: tuple, kwargs: dict):
    """Every array in the arguments, with its name (``dy``, ``params[0]``), in order."""
    named = list(zip(fn_params, args, strict=True)) + list(kwargs.items())
    return [(f"{name}{path}", array) for name, value in named for path, array in leaves(value)]


def call_and_watch(fn, args: tuple, kwargs: dict) -> Call:
    """Call ``fn`` in this process, seeing which arguments it changes or returns."""
    watched = watched_arrays(parameter_names(fn, len(args)), args, kwargs)
    before = [array.copy() for _, array in watched]
    result, nnlib_calls = invoke(fn, args, kwargs)
    modified_at = [
        i
        for i, ((_, array), old) in enumerate(zip(watched, before, strict=True))
        if changed(old, array)
    ]
    aliased = sorted(
        {
            name
            for _, out in leaves(result)
            for name, array in watched
            if out.size and np.shares_memory(out, array)
        }
    )
    return Call(result, [watched[i][0] for i in modified_at], aliased, nnlib_calls, modified_at)


class CheckFailed(AssertionError):
    """A sub-check's verdict: the message is the diagnostic shown to the learner."""


IN_PLACE_HINT = (
    "In-place operators (dy *= mask, x[x < 0] = 0, x -= x.max()) write into the caller's "
    "array; build a new one instead (np.where(...), np.maximum(x, 0), x - x.max(...))."
)


class LearnerFunction:
    """A function the learner wrote, as a sub-check calls it; see the module docstring.

    ``fn(*args)`` returns the result (arrays, numbers, tuples, lists of them); it fails
    the sub-check when the call changed an argument it may not change, returned an
    argument's memory, or called nnlib's version of the graded function.
    """

    def __init__(self, name: str, exercise=None):
        self.name = name
        self.mutates = frozenset(exercise.mutates.get(name, ())) if exercise else frozenset()
        self.may_alias = frozenset(exercise.may_alias) if exercise else frozenset()
        self.forbidden = frozenset(exercise.forbidden) if exercise else frozenset()

    # what a kind provides -------------------------------------------------------------
    def call(self, args: tuple, kwargs: dict) -> Call:
        raise NotImplementedError

    def launch(self, grid, block, *args, prefix=None) -> tuple:
        """Launch a CUDA kernel on copies of host arrays ``args``; returns them after.

        ``prefix[i]``, if given, passes only the first ``prefix[i]`` elements of argument
        ``i`` (a view into the rest of the buffer, so writes past the end are seen).
        """
        raise NotImplementedError

    def facts(self, sample: tuple | None = None) -> dict:
        """What kind of function it is: ``kind`` (``"python"``, ``"numba"``, ``"cuda"``
        or a type's name), ``parallel``, ``forceobj``, ``simulator`` and, given a sample
        argument tuple, ``prange_loops`` (parallelized prange loops; None and
        ``compile_error`` when Numba could not compile it)."""
        raise NotImplementedError

    @property
    def source(self) -> str | None:
        """The learner's source of this function (None when it cannot be found)."""
        raise NotImplementedError

    @property
    def scan_source(self) -> str | None:
        """The code scanned for references to nnlib's own version (its source here; the
        whole answer cell, with the setup cells' imports, in the trusted grader)."""
        return self.source

    # the shared contract ----------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        call = self.call(args, kwargs)
        self.enforce(call)
        return call.result

    def enforce(self, call: Call) -> None:
        if not hasattr(self, "_static_refs"):
            self._static_refs = nnlib_references(self.scan_source or "", self.forbidden)
        forbidden = [c for c in call.nnlib_calls if reaches(c, self.forbidden)]
        forbidden += self._static_refs
        if forbidden:
            raise CheckFailed(
                f"your {self.name} calls {forbidden[0]}: that is nnlib's answer to this very "
                "exercise, so this exercise scores 0. Hint: write it yourself (with NumPy), "
                "without calling nnlib."
            )
        bad = [m for m in call.modified if m.split("[", 1)[0] not in self.mutates]
        if bad:
            raise CheckFailed(
                f"{self.name} changed its argument {bad[0]} in place: the caller's array is "
                f"not yours to change. Hint: {IN_PLACE_HINT}"
            )
        if call.aliased and self.name not in self.may_alias:
            raise CheckFailed(
                f"{self.name} returned its argument {call.aliased[0]} itself (or a view of "
                "it), not a new array: the caller's array and your result are then the same "
                "memory, and changing one changes the other. Hint: return a new array, "
                "e.g. np.maximum(x, 0) or x.copy()."
            )


def function_source(cell_source: str, name: str) -> str | None:
    """The ``def name(...)`` block (with its decorators) in a cell's source."""
    try:
        tree = ast.parse(cell_source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            return textwrap.dedent("\n".join(cell_source.splitlines()[first - 1 : node.end_lineno]))
    return None


def reaches(dotted: str, forbidden) -> bool:
    """True when ``nnlib.optim.Adam.step`` names one of ``forbidden`` (``adam``): any part
    after ``nnlib``, compared without case."""
    wanted = {f.lower() for f in forbidden}
    return any(part.lower() in wanted for part in dotted.split(".")[1:])


def nnlib_references(source: str, forbidden) -> list[str]:
    """``nnlib.functional.relu``-style names in ``source`` (a function's code, or a
    cell's) that reach nnlib's function of a name in ``forbidden``: ``F.relu`` after
    ``import nnlib.functional as F``, ``nnlib.functional.relu``, ``from nnlib... import
    relu``, ``nnlib.optim.Adam``. A static check: it sees calls a profile hook cannot
    (from inside a Numba function)."""
    if not source or not forbidden:
        return []
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return []
    aliases = dict(NNLIB_ALIASES)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "nnlib":
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else "nnlib"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "nnlib":
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        if isinstance(node, (ast.Attribute, ast.Name)):
            dotted = _dotted(node)
            if dotted is None:
                continue
            head, _, rest = dotted.partition(".")
            if head in aliases:
                full = aliases[head] + (f".{rest}" if rest else "")
                if reaches(full, forbidden) and full not in found:
                    found.append(full)
    return found


# names the course's setup cells bind to nnlib (``import nnlib.functional as F``)
NNLIB_ALIASES = {"nnlib": "nnlib", "F": "nnlib.functional"}


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


class LocalFunction(LearnerFunction):
    """The learner's function in this very process (the grade cell's quick feedback)."""

    def __init__(self, name: str, fn, exercise=None):
        super().__init__(name, exercise)
        self.fn = fn

    def call(self, args, kwargs):
        return call_and_watch(self.fn, args, kwargs)

    def launch(self, grid, block, *args, prefix=None):
        return cuda_launch(self.fn, grid, block, args, prefix)

    def facts(self, sample=None):
        return function_facts(self.fn, sample)

    @property
    def source(self):
        try:
            return textwrap.dedent(inspect.getsource(getattr(self.fn, "py_func", self.fn)))
        except (OSError, TypeError):
            return None


# ------------------------------------------------- introspection (run where fn lives)


def cuda_launch(kernel, grid, block, args, prefix=None) -> tuple:
    """Copy host arrays to the device, launch ``kernel[grid, block]``, copy them back."""
    import numba_cuda  # noqa: F401  (numba's own built-in numba.cuda is deprecated)
    from numba import cuda

    buffers = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
    passed = [
        b[: prefix[i]] if prefix is not None and prefix[i] is not None else b
        for i, b in enumerate(buffers)
    ]
    kernel[grid, block](*passed)
    cuda.synchronize()
    return tuple(b.copy_to_host() if _is_device_array(b) else b for b in buffers)


def function_facts(fn, sample=None) -> dict:
    kind = type(fn).__name__
    facts = {"kind": kind, "parallel": False, "forceobj": False, "simulator": False}
    if kind == "CPUDispatcher":
        facts["kind"] = "numba"
        facts["parallel"] = bool(fn.targetoptions.get("parallel"))
        facts["forceobj"] = bool(fn.targetoptions.get("forceobj"))
    elif kind in ("CUDADispatcher", "FakeCUDAKernel"):
        facts["kind"] = "cuda"
        facts["simulator"] = kind == "FakeCUDAKernel"
    elif inspect.isfunction(fn):
        facts["kind"] = "python"
    if sample is not None and facts["kind"] == "numba":
        facts["prange_loops"], facts["compile_error"] = prange_loop_count(fn, sample)
    return facts


_PRANGE_LOOPS: dict = {}


def prange_loop_count(fn, sample) -> tuple[int | None, str | None]:
    """How many of the learner's own ``prange`` loops Numba parallelized compiling
    ``fn.py_func`` for ``sample``: (count, None), or (None, the first line of Numba's
    error).

    Remembered per function code and argument types: a compile with ``parallel=True``
    takes a second or two.
    """
    from numba import typeof

    try:
        key = (fn.py_func.__code__, tuple(str(typeof(a)) for a in sample))
    except Exception:  # an argument Numba cannot type: compile (and fail) below
        key = None
    if key is not None and key in _PRANGE_LOOPS:
        return _PRANGE_LOOPS[key]
    result = _count_prange_loops(fn, sample)
    if key is not None:
        _PRANGE_LOOPS[key] = result
    return result


def _count_prange_loops(fn, sample):
    import warnings

    from numba import njit
    from numba.core.errors import NumbaError

    fresh = njit(parallel=True)(fn.py_func)  # the learner's own may be cached or serial
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no transformation for parallel" is our verdict
        try:
            fresh(*copy_args(tuple(sample)))
        except NumbaError as err:
            return None, str(err).strip().splitlines()[0]
    diagnostics = fresh.get_metadata(fresh.signatures[0])["parfor_diagnostics"]
    # Only the learner's own loops count: Numba also makes parallel loops of its own
    # ("internal" prange patterns) for NumPy reductions such as a slice's .sum() inside a
    # plain range loop, and array expressions; neither is a prange the learner wrote.
    count = sum(
        1
        for p in diagnostics.get_parfors()
        if any(pattern[:2] == ("prange", "user") for pattern in getattr(p, "patterns", ()))
    )
    return count, None
