"""The check framework behind the one-line grade cells: ``check("relu", relu, relu_backward)``.

An exercise is a list of named sub-checks. :func:`check` runs each one, prints one fixed
line per sub-check and a summary (``[relu] 5/5 checks passed``), and raises
``AssertionError`` when anything failed, with the diagnostics in the message. The printed
lines never hold floats, timings or addresses, so a solved notebook's output is the same
on every machine and strict nbval can compare it; numbers appear only in failure messages.

Each sub-check runs under a time limit (``NNLIB_CHECK_TIME_LIMIT`` seconds, default 30),
with warnings recorded instead of printed (stderr stays empty; a ``RuntimeWarning`` such
as an overflow in ``exp`` fails the sub-check, because it means the code is not
numerically safe).
"""

from __future__ import annotations

import math
import os
import signal
import threading
import traceback
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

import nncourse
import nnlib
from nnlib.testing import assert_close, to_host, tolerance

STUB_MARK = "(exercise not done yet)"


def time_limit_s() -> int:
    """Seconds one sub-check may run: ``NNLIB_CHECK_TIME_LIMIT`` or 30."""
    raw = os.environ.get("NNLIB_CHECK_TIME_LIMIT", "30")
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(
            f"NNLIB_CHECK_TIME_LIMIT must be a whole number of seconds; got {raw!r}"
        ) from None
    return value


class CheckFailed(AssertionError):
    """A sub-check's verdict: the message is the diagnostic shown to the learner."""


class _TimeLimitExceeded(BaseException):
    # NOTE: a BaseException, so a learner's `except Exception:` cannot swallow it.
    pass


@dataclass(frozen=True)
class WrongAnswer:
    """A known wrong answer: ``fn`` computes it (same arguments as the learner's code)."""

    fn: Callable
    hint: str


@dataclass(frozen=True)
class SubCheck:
    description: str
    run: Callable  # run(*learner_functions); raises AssertionError on a wrong answer


@dataclass
class Exercise:
    """One graded exercise: the functions the learner writes and the sub-checks."""

    name: str
    functions: tuple[str, ...]
    subchecks: list[SubCheck] = field(default_factory=list)
    # (exception type, text in its message, hint) for errors learners typically hit
    error_hints: list[tuple[type, str, str]] = field(default_factory=list)
    # extra fixed lines printed before the summary, e.g. where a CUDA kernel ran
    notes: Callable[[], list[str]] | None = None

    def subcheck(self, description: str):
        """Decorator: register ``fn(*learner_functions)`` as a sub-check."""

        def register(fn):
            self.subchecks.append(SubCheck(description, fn))
            return fn

        return register


EXERCISES: dict[str, Exercise] = {}


def exercise(name: str, functions: Sequence[str]) -> Exercise:
    """Create and register an exercise."""
    if name in EXERCISES:
        raise ValueError(f"exercise {name!r} is defined twice")
    EXERCISES[name] = ex = Exercise(name, tuple(functions))
    return ex


# --------------------------------------------------------------------------- comparing


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"[:120]


def matches(got, wrong) -> bool:
    try:
        wrong = to_host(wrong)
        return got.shape == wrong.shape and bool(
            np.allclose(got, wrong, rtol=1e-5, atol=1e-8, equal_nan=True)
        )
    except Exception:  # a wrong answer that cannot even be computed matches nothing
        return False


def expect(
    got,
    want,
    what: str,
    *,
    inputs: dict | None = None,
    known: Sequence[WrongAnswer] = (),
    args: tuple = (),
) -> None:
    """Raise :class:`CheckFailed` unless ``got`` matches ``want`` within the tolerance table.

    ``inputs``: named input arrays of the shape of ``want``; the failure message shows
    their values at the worst element (the smallest counterexample for an elementwise
    function). ``known``: wrong answers to recognise, each computed from ``args``.
    """
    if got is None:
        raise CheckFailed(
            f"{what}: your function returned None, expected {_describe(want)}. "
            "Did you forget `return`?"
        )
    if not isinstance(got, np.ndarray) and not hasattr(got, "copy_to_host"):
        raise CheckFailed(f"{what}: expected a NumPy array, got {_describe(got)}")
    got = to_host(got)
    if got.dtype != want.dtype and got.shape == want.shape:
        raise CheckFailed(
            f"{what}: dtype {got.dtype}, expected {want.dtype} (the input's dtype). "
            "Hint: build the result with the input's dtype, e.g. np.empty_like(x) or "
            "x.dtype.type(...) for constants; do not let a float64 constant upcast it."
        )
    try:
        assert_close(got, want, name=what)
    except AssertionError as err:
        message = str(err)
        if inputs and got.shape == want.shape and got.size:
            atol, rtol = tolerance(want.dtype)
            bad = ~np.isclose(got, want, atol=atol, rtol=rtol, equal_nan=True)
            err_abs = np.nan_to_num(np.abs(got.astype(np.float64) - want), nan=np.inf)
            worst = np.unravel_index(np.argmax(np.where(bad, err_abs, -1.0)), got.shape)
            shown = ", ".join(f"{k} = {np.asarray(v)[worst].item()!r}" for k, v in inputs.items())
            message += (
                f"\n  counterexample: {shown} -> expected {want[worst].item()!r}, "
                f"got {got[worst].item()!r}"
            )
        for wrong in known:
            if matches(got, quiet(wrong.fn, *args)):
                message += f"\n  Hint: {wrong.hint}"
                break
        raise CheckFailed(message) from None


def expect_rate(hits: int, n: int, p: float, what: str, *, sigmas: float = 5.0) -> None:
    """Fail unless ``hits / n`` is within ``sigmas`` binomial standard errors of ``p``.

    For statistical checks (a dropout mask's keep rate, a sampler's frequencies) run with
    a fixed seed: 5 standard errors make a false alarm a one-in-a-million event while a
    wrong rate (e.g. dropping instead of keeping) is still far outside.
    """
    if not 0 < p < 1 or n <= 0:
        raise ValueError(f"expect_rate: need 0 < p < 1 and n > 0; got p={p!r}, n={n!r}")
    se = math.sqrt(p * (1 - p) / n)
    if abs(hits / n - p) > sigmas * se:
        raise CheckFailed(
            f"{what}: {hits} of {n} ({hits / n:.4f}), expected a rate of {p} within "
            f"{sigmas:g} standard errors ({sigmas * se:.4f})"
        )


def expect_property(holds: Callable, strategy, what: str, *, max_examples: int = 150) -> None:
    """Fail with the smallest input that breaks ``holds`` (a property of the learner's code).

    Hypothesis searches ``strategy`` for an input where ``holds(input)`` is false (or
    raises) and shrinks it to a minimal one, which the failure message shows. The search
    is derandomized, so the verdict and the counterexample are the same on every run.
    """
    from hypothesis import HealthCheck, find, settings
    from hypothesis.errors import NoSuchExample

    def breaks(example) -> bool:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return not holds(example)
            except Exception:
                return True

    config = settings(
        derandomize=True,
        database=None,
        deadline=None,
        max_examples=max_examples,
        suppress_health_check=list(HealthCheck),
    )
    try:
        example = find(strategy, breaks, settings=config)
    except NoSuchExample:
        return
    with np.printoptions(precision=17):
        raise CheckFailed(
            f"{what}: fails for this input (shrunk to a smallest case):\n  {example!r}"
        )


def quiet(fn, *args):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args)
        except Exception:
            return None


def expect_unchanged(x, before, name: str, fn_name: str) -> None:
    """Fail when the learner's function wrote into its input."""
    if not np.array_equal(to_host(x), before, equal_nan=True):
        raise CheckFailed(
            f"{fn_name} changed its input {name}. Hint: never write into an argument; "
            "build a new array for the result (e.g. np.maximum(x, 0) or np.where(...))."
        )


# ----------------------------------------------------------------------------- running


@contextmanager
def _time_limit(seconds: int):
    """Raise _TimeLimitExceeded after ``seconds`` (main thread with SIGALRM only)."""
    usable = (
        seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise _TimeLimitExceeded

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def is_stub(fn) -> bool:
    """True when ``fn`` is still the generated stub (it raises the exercise's marker)."""
    code = getattr(getattr(fn, "py_func", fn), "__code__", None)
    return code is not None and any(isinstance(c, str) and STUB_MARK in c for c in code.co_consts)


# the folders of nnlib and of this package: frames in them are not the learner's code
_OUR_CODE = tuple(
    os.path.dirname(os.path.abspath(module.__file__)) + os.sep for module in (nnlib, nncourse)
)


def _where_in_learner_code(err: BaseException) -> str:
    """`line N: source` of the deepest frame outside nnlib, this grader and numpy, if any."""
    frames = traceback.extract_tb(err.__traceback__)
    for frame in reversed(frames):
        path = os.path.abspath(frame.filename)
        if not path.startswith(_OUR_CODE) and "site-packages" not in path:
            return f" (line {frame.lineno}: {(frame.line or '').strip()})"
    return ""


def _run_one(ex: Exercise, sub: SubCheck, functions, limit: int) -> tuple[str | None, bool]:
    """Run one sub-check: (failure message or None, whether the time limit stopped it)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with _time_limit(limit):
                sub.run(*functions)
        except _TimeLimitExceeded:
            return (
                f"stopped after the time limit of {limit} s. Does your code loop forever "
                "(a while loop whose condition never changes, a wrong loop variable)?",
                True,
            )
        except AssertionError as err:
            return str(err), False
        except NotImplementedError as err:
            return f"not written yet: {err}", False
        except Exception as err:
            message = f"your code raised {type(err).__name__}: {err}{_where_in_learner_code(err)}"
            for kind, text, hint in ex.error_hints:
                if isinstance(err, kind) and text in str(err):
                    message += f"\n  Hint: {hint}"
                    break
            return message, False
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    if runtime:
        return (
            f"NumPy warned: {runtime[0].message}. Hint: a numerically safe version never "
            "overflows or divides by zero; rewrite the formula so every intermediate "
            "value stays finite.",
            False,
        )
    return None, False


def check(name: str, *functions) -> None:
    """Grade exercise ``name`` with the learner's ``functions``; see the module docstring.

    Prints one line per sub-check and a summary; raises ``AssertionError`` if any failed.
    """
    if name not in EXERCISES:
        raise ValueError(f"check: no exercise named {name!r}; known: {', '.join(EXERCISES)}")
    ex = EXERCISES[name]
    if len(functions) != len(ex.functions):
        raise TypeError(
            f"check({name!r}, ...) expects {len(ex.functions)} function(s), "
            f"({', '.join(ex.functions)}); got {len(functions)}"
        )
    stubs = [n for n, fn in zip(ex.functions, functions, strict=True) if is_stub(fn)]
    failures: list[tuple[str, str]] = []
    if stubs:
        for sub in ex.subchecks:
            print(f"[{name}] FAIL {sub.description}")
        print(f"[{name}] 0/{len(ex.subchecks)} checks passed")
        raise AssertionError(
            f"[{name}] not done yet: {' and '.join(stubs)} still "
            f"{'raises' if len(stubs) == 1 else 'raise'} NotImplementedError. "
            "Replace the `raise NotImplementedError(...)` line in the answer cell with "
            "your code, run that cell, then run this one again."
        )
    limit = time_limit_s()
    stopped = False
    for sub in ex.subchecks:
        if stopped:
            failures.append((sub.description, "not run: an earlier check hit the time limit"))
            print(f"[{name}] FAIL {sub.description}")
            continue
        message, stopped = _run_one(ex, sub, functions, limit)
        if message is None:
            print(f"[{name}] ok   {sub.description}")
        else:
            failures.append((sub.description, message))
            print(f"[{name}] FAIL {sub.description}")
    for line in ex.notes() if ex.notes else ():
        print(f"[{name}] {line}")
    passed = len(ex.subchecks) - len(failures)
    print(f"[{name}] {passed}/{len(ex.subchecks)} checks passed")
    if failures:
        details = "\n".join(f"- {desc}:\n  {msg}" for desc, msg in failures)
        raise AssertionError(
            f"[{name}] {len(failures)} of {len(ex.subchecks)} checks failed\n{details}"
        )
