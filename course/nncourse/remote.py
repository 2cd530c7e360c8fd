"""The learner's kernel, driven from the grader's own process (``make grade``).

:class:`KernelSession` starts a fresh Jupyter kernel in a private folder, runs the
notebook's setup cells and the learner's answer cells in it, and then serves
:class:`RemoteFunction` calls: the grader chooses the inputs, the kernel calls the
learner's function on them (:mod:`nncourse._probe`) and sends back arrays and numbers
only (``.npz`` read with ``allow_pickle=False``, never a pickle). Every sub-check, every
reference value and every comparison runs here, in the grader's process, so nothing the
learner's code patches in its kernel (numpy, the check module, IPython's exception
handling or input transformers) changes a verdict, and no report file exists for it to
write into.
"""

from __future__ import annotations

import builtins
import itertools
import os
import queue
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .learner import Call, LearnerFunction, decode, encode, leaves, read_message, write_message

_HERE = Path(__file__).resolve().parent
# Loads learner.py and _probe.py as modules of their own (not the nncourse package, which
# imports nnlib and numba): the notebook's setup cell must still come first for numba.
BOOTSTRAP = f"""
import importlib.util as _nncourse_util, sys as _nncourse_sys
for _nncourse_name, _nncourse_file in (
    ("_nncourse_learner", {str(_HERE / "learner.py")!r}),
    ("__nncourse_probe__", {str(_HERE / "_probe.py")!r}),
):
    _nncourse_spec = _nncourse_util.spec_from_file_location(_nncourse_name, _nncourse_file)
    _nncourse_module = _nncourse_util.module_from_spec(_nncourse_spec)
    _nncourse_sys.modules[_nncourse_name] = _nncourse_module
    _nncourse_spec.loader.exec_module(_nncourse_module)
__nncourse_probe__ = _nncourse_sys.modules["__nncourse_probe__"]
del _nncourse_util, _nncourse_sys, _nncourse_name, _nncourse_file, _nncourse_spec, _nncourse_module
"""


class KernelLost(BaseException):
    """The kernel died, or could not be interrupted. ``phase`` is the session's phase
    then (e.g. ``("grade", "relu")``); ``elapsed`` the seconds since the kernel started.

    NOTE: a BaseException, so that the sub-checks' ``except Exception`` never takes it
    for a wrong answer.
    """

    def __init__(self, phase: tuple, how: str, elapsed: float):
        super().__init__(f"{how} ({phase[0]} {phase[1] or ''})".strip())
        self.phase, self.how, self.elapsed = phase, how, elapsed


@dataclass
class CellResult:
    status: str  # ok | error | timeout
    ename: str = ""
    evalue: str = ""


class KernelSession:
    """One fresh kernel in ``workdir``. Use as a context manager (the kernel is shut
    down on exit)."""

    def __init__(self, workdir: Path, cell_timeout: float):
        self.workdir = Path(workdir)
        self.cell_timeout = cell_timeout
        self.km = self.kc = None
        self.started = 0.0
        self._requests = itertools.count()
        # what the session is doing, for KernelLost: ("setup"|"answer"|"grade", exercise)
        self.phase: tuple = ("start", None)

    def __enter__(self):
        from jupyter_client.manager import start_new_kernel

        env = {k: v for k, v in os.environ.items() if not k.startswith("NNCOURSE_GRADE")}
        # NOTE: the kernel's Numba uses threads; pin nothing, the grader waits anyway.
        self.km, self.kc = start_new_kernel(
            kernel_name="python3",
            cwd=str(self.workdir),
            env=env,
            startup_timeout=60,
            # the kernel process's own stderr holds only the kernel's start-up chatter;
            # what the learner's code prints comes over the kernel's messages
            stderr=subprocess.DEVNULL,
        )
        self.started = time.monotonic()
        result = self.run_cell(BOOTSTRAP)
        if result.status != "ok":
            raise RuntimeError(f"the grader could not start in the kernel: {result.evalue}")
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.km is not None:
            try:
                self.kc.stop_channels()
                self.km.shutdown_kernel(now=True)
            except Exception:  # a dead kernel: nothing left to stop
                pass
            self.km = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def alive(self) -> bool:
        return self.km is not None and self.km.is_alive()

    def _lost(self, how: str):
        return KernelLost(self.phase, how, self.elapsed)

    def run_cell(self, code: str, timeout: float | None = None) -> CellResult:
        """Run ``code``; interrupt it after ``timeout`` s (default: the cell time limit)."""
        timeout = self.cell_timeout if timeout is None else timeout
        msg_id = self.kc.execute(code, store_history=False, allow_stdin=False, stop_on_error=False)
        deadline = time.monotonic() + timeout
        result = CellResult("ok")
        interrupted = False
        try:
            while True:
                try:
                    msg = self.kc.get_iopub_msg(timeout=0.1)
                except queue.Empty:
                    if not self.km.is_alive():
                        raise self._lost("the kernel died") from None
                    if time.monotonic() > deadline:
                        if interrupted:
                            raise self._lost("the kernel could not be interrupted") from None
                        self.km.interrupt_kernel()
                        interrupted = True
                        result = CellResult("timeout")
                        deadline = time.monotonic() + 5
                    continue
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "error" and result.status == "ok":
                    result = CellResult("error", content["ename"], content["evalue"])
                elif kind == "status" and content["execution_state"] == "idle":
                    return result
        except KernelLost:
            raise
        except BaseException:
            # the grader's own time limit (or Ctrl-C) while the learner's code runs: stop
            # it, so the kernel is free for the next request
            self._interrupt(msg_id)
            raise

    def _interrupt(self, msg_id):
        self.km.interrupt_kernel()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                if not self.km.is_alive():
                    break
                continue
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
            ):
                return
        self.close()  # it would not stop: the next request raises KernelLost

    def request(self, payload: dict, arrays: dict) -> tuple[dict, dict]:
        """Send one request to the probe; returns its answer (data and arrays)."""
        if not self.alive():
            raise self._lost("the kernel had died")
        path = str(self.workdir / f".request-{next(self._requests)}")
        write_message(path, payload, arrays)
        try:
            result = self.run_cell(f"__nncourse_probe__.serve({path!r})")
            if result.status == "timeout":
                raise TimeoutError
            try:
                return read_message(path + ".out")
            except (OSError, ValueError) as err:
                raise RuntimeError(
                    f"no answer came back from your kernel ({type(err).__name__}); does "
                    "your code change IPython, numpy's file functions or the working folder?"
                ) from None
        finally:
            for suffix in (".json", ".npz", ".out.json", ".out.npz"):
                Path(path + suffix).unlink(missing_ok=True)


def _rebuild_error(error: dict) -> Exception:
    """The learner's exception, as an exception of this process (type by name)."""
    message = error["message"]
    if error.get("numba"):
        from numba.core.errors import NumbaError

        err = NumbaError(message)
    elif error.get("builtin") and isinstance(getattr(builtins, error["type"], None), type):
        kind = getattr(builtins, error["type"])
        err = kind(message) if issubclass(kind, Exception) else RuntimeError(message)
    else:
        err = type(error["type"], (Exception,), {})(message)
    err.learner_where = error.get("where", "")
    return err


def _encode_arg(value):
    """Functions passed as arguments go by name: the learner's own, or a module's."""
    if isinstance(value, RemoteFunction):
        return {"fn": f"learner:{value.name}"}
    if callable(value) and not isinstance(value, np.ndarray) and hasattr(value, "__qualname__"):
        return {"fn": f"{value.__module__}:{value.__qualname__}"}
    return None


def _encode_args(value, arrays):
    special = _encode_arg(value)
    if special is not None:
        return special
    if isinstance(value, tuple):
        return {"t": [_encode_args(v, arrays) for v in value]}
    if isinstance(value, list):
        return {"l": [_encode_args(v, arrays) for v in value]}
    if isinstance(value, dict):
        return {"d": {k: _encode_args(v, arrays) for k, v in value.items()}}
    return encode(value, arrays, "a")


class RemoteFunction(LearnerFunction):
    """The learner's function in the learner's kernel, called from the grader."""

    def __init__(
        self, name: str, session: KernelSession, exercise=None, source=None, cell_source=None
    ):
        super().__init__(name, exercise)
        self.session = session
        self._source = source
        self._cell_source = cell_source
        self._facts: dict = {}

    @property
    def source(self):
        return self._source

    @property
    def scan_source(self):
        return self._cell_source if self._cell_source is not None else self._source

    def _ask(self, op: str, args=(), kwargs=None, **extra) -> dict:
        arrays: dict = {}
        payload = {
            "op": op,
            "name": self.name,
            "args": _encode_args(tuple(args), arrays),
            "kwargs": _encode_args(dict(kwargs or {}), arrays),
            "errstate": np.geterr(),
            **extra,
        }
        answer, out = self.session.request(payload, arrays)
        for category, message in answer.get("warnings", []):
            kind = getattr(builtins, category, None)
            if not (isinstance(kind, type) and issubclass(kind, Warning)):
                kind = UserWarning
            warnings.warn(message, kind, stacklevel=3)
        if "error" in answer:
            raise _rebuild_error(answer["error"])
        return answer, out

    def call(self, args, kwargs):
        answer, out = self._ask("call", args, kwargs)
        # in-place updates come back into the grader's own argument arrays
        watched = [a for value in (*args, *kwargs.values()) for _, a in leaves(value)]
        for i in answer["modified_at"]:
            new = out[f"m{i}"]
            if new.shape == watched[i].shape:
                np.copyto(watched[i], new, casting="unsafe")
        return Call(
            decode(answer["result"], out),
            answer["modified"],
            answer["aliased"],
            answer["nnlib_calls"],
            answer["modified_at"],
        )

    def launch(self, grid, block, *args, prefix=None):
        grid = list(grid) if isinstance(grid, (tuple, list)) else [grid]
        block = list(block) if isinstance(block, (tuple, list)) else [block]
        answer, out = self._ask("launch", args, grid=grid, block=block, prefix=prefix)
        return decode(answer["result"], out)

    def facts(self, sample=None):
        key = "sample" if sample is not None else "plain"
        if key not in self._facts:
            answer, _ = self._ask(
                "facts", tuple(sample) if sample is not None else (), sample=sample is not None
            )
            self._facts[key] = answer["facts"]
        return self._facts[key]
