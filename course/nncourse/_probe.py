"""The kernel side of the trusted grader (``make grade``); see :mod:`nncourse.remote`.

The grader loads this (and :mod:`nncourse.learner`, which needs only numpy) in the
learner's kernel before any learner code runs, on their own: not the ``nncourse``
package, which imports nnlib and numba, so the notebook's first cell still chooses
numba's settings (``NUMBA_ENABLE_CUDASIM``) as it does in JupyterLab. Then it asks
it, one request at a time, to call one of the learner's functions on inputs the grader
chose. It answers with data only (arrays, numbers, names): what the function returned,
which arguments it changed or returned, the nnlib functions it entered, the warnings
and errors it raised. It computes no verdict: there is none here to tamper with.
"""

from __future__ import annotations

import builtins
import importlib
import traceback
import warnings

import numpy as np

try:
    from . import learner
except ImportError:  # loaded on its own by the grader's bootstrap (see remote.BOOTSTRAP)
    import _nncourse_learner as learner  # type: ignore[no-redef]


def _namespace() -> dict:
    from IPython import get_ipython

    return get_ipython().user_ns


def _resolve(ref: str):
    """A function passed as an argument: ``learner:NAME`` or ``module:qualname``."""
    where, _, name = ref.partition(":")
    if where == "learner":
        return _namespace()[name]
    target = importlib.import_module(where)
    for part in name.split("."):
        target = getattr(target, part)
    return target


def _where(err: BaseException) -> str:
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if frame.filename.startswith("<") or "ipykernel" in frame.filename:
            return f" (line {frame.lineno}: {(frame.line or '').strip()})"
    return ""


def _error(err: BaseException) -> dict:
    try:
        from numba.core.errors import NumbaError

        numba = isinstance(err, NumbaError)
    except ImportError:  # pragma: no cover - numba is a core dependency
        numba = False
    return {
        "type": type(err).__name__,
        "builtin": isinstance(getattr(builtins, type(err).__name__, None), type),
        "numba": numba,
        "message": str(err),
        "where": _where(err),
    }


def serve(path: str) -> None:
    """Answer the request at ``path`` (``.json`` + ``.npz``) into ``path + ".out"``."""
    payload, arrays = learner.read_message(path)
    out_arrays: dict = {}
    answer: dict = {}
    caught: list = []
    try:
        fn = _namespace().get(payload["name"])
        if fn is None:
            raise NameError(f"name {payload['name']!r} is not defined")
        op = payload["op"]
        args = learner.decode(payload["args"], arrays, _resolve)
        kwargs = learner.decode(payload.get("kwargs", {"d": {}}), arrays, _resolve)
        if op == "facts":
            answer["facts"] = learner.function_facts(fn, args if payload.get("sample") else None)
            answer["facts"]["params"] = learner.parameter_names(fn, 64)
        elif op == "launch":
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                after = learner.cuda_launch(
                    fn, tuple(payload["grid"]), tuple(payload["block"]), args, payload.get("prefix")
                )
            answer["result"] = learner.encode(after, out_arrays, "r")
        else:
            with warnings.catch_warnings(record=True) as caught, np.errstate(**payload["errstate"]):
                warnings.simplefilter("always")
                call = learner.call_and_watch(fn, args, kwargs)
            answer["result"] = learner.encode(call.result, out_arrays, "r")
            answer["modified"] = call.modified
            answer["modified_at"] = call.modified_at
            watched = [a for a in _arrays_in(args, kwargs)]
            for i in call.modified_at:
                out_arrays[f"m{i}"] = watched[i]
            answer["aliased"] = call.aliased
            answer["nnlib_calls"] = call.nnlib_calls
    except BaseException as err:
        answer = {"error": _error(err)}
    answer["warnings"] = [
        [w.category.__name__, str(w.message)] for w in caught if issubclass(w.category, Warning)
    ]
    learner.write_message(path + ".out", answer, out_arrays)


def _arrays_in(args, kwargs):
    return [a for value in (*args, *kwargs.values()) for _, a in learner.leaves(value)]
