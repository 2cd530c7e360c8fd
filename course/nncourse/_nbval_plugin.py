"""pytest plugin for running a notebook as JupyterLab would (the course's tests use it):
records each nbval cell's result with its tags.

Loaded with ``-p nncourse._nbval_plugin``; writes one JSON line per cell to the file
named by ``NNCOURSE_GRADE_REPORT``. It also makes nbval notice a dead kernel within a second
instead of waiting for the cell timeout.
"""

from __future__ import annotations

import json
import os
import time
from queue import Empty

import pytest


class KernelDied(RuntimeError):
    pass


def _patch_nbval():
    from nbval.kernel import RunningKernel

    original = RunningKernel.await_reply
    if getattr(original, "_polls_liveness", False):
        return

    def await_reply(self, msg_id, timeout=None):
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        while True:
            left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            try:
                return original(self, msg_id, timeout=max(left, 0.01))
            except Empty:
                if not self.is_alive():
                    raise KernelDied("the kernel died (crashed or was killed)") from None
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    await_reply._polls_liveness = True
    RunningKernel.await_reply = await_reply


_patch_nbval()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    path = os.environ.get("NNCOURSE_GRADE_REPORT")
    cell = getattr(item, "cell", None)
    if path is None or cell is None:
        return
    if report.when == "setup" and report.passed:
        return
    if report.when == "teardown" and report.passed:
        return
    outputs = getattr(item, "test_outputs", None) or []
    stdout = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    errors = [o for o in outputs if o.get("output_type") == "error"]
    # NOTE: after a cell times out nbval marks the later cells xfail, so a failing cell
    # reports "skipped"; the grader counts only "passed" as a pass.
    message = ""
    if call.excinfo is not None:
        message = str(call.excinfo.value)
    elif report.failed:
        message = str(report.longrepr)
    record = {
        "tags": list(cell.get("metadata", {}).get("tags", [])),
        "when": report.when,
        "outcome": report.outcome,
        "stdout": stdout,
        "ename": errors[0]["ename"] if errors else None,
        "evalue": errors[0]["evalue"] if errors else None,
        "message": message[:4000],
    }
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
