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
import numbers
import os
import signal
import sys
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

from .learner import CheckFailed, DeviceResult, LearnerFunction, LocalFunction, Unsupported

__all__ = ["CheckFailed", "LearnerFunction"]

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


SUFFIXES = ("_numba", "_kernel", "_gpu", "_cuda")


def base_names(functions) -> tuple[str, ...]:
    """``relu_numba`` -> ``relu_numba``, ``relu``: the names of nnlib's own versions."""
    names = []
    for name in functions:
        names.append(name)
        for suffix in SUFFIXES:
            if name.endswith(suffix):
                names.append(name.removesuffix(suffix))
    return tuple(dict.fromkeys(names))


@dataclass
class Exercise:
    """One graded exercise: the functions the learner writes and the sub-checks.

    ``mutates``: per function, the arguments it is meant to update in place (all others
    must be left unchanged). ``may_alias``: functions whose result may be an argument's
    memory. ``forbidden``: names of nnlib functions or classes the learner's code may not
    call (default: the exercise's function names, also without a ``_numba`` or ``_gpu``
    suffix).
    """

    name: str
    functions: tuple[str, ...]
    subchecks: list[SubCheck] = field(default_factory=list)
    mutates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    may_alias: frozenset[str] = frozenset()
    forbidden: tuple[str, ...] = ()
    # (exception type, text in its message, hint) for errors learners typically hit
    error_hints: list[tuple[type, str, str]] = field(default_factory=list)
    # extra fixed lines printed before the summary, e.g. where a CUDA kernel ran: given
    # the facts() of the exercise's first function
    notes: Callable[[dict], list[str]] | None = None

    def subcheck(self, description: str):
        """Decorator: register ``fn(*learner_functions)`` as a sub-check."""

        def register(fn):
            self.subchecks.append(SubCheck(description, fn))
            return fn

        return register


EXERCISES: dict[str, Exercise] = {}


def exercise(
    name: str,
    functions: Sequence[str],
    *,
    mutates: dict[str, Sequence[str]] | None = None,
    may_alias: Sequence[str] = (),
    forbidden: Sequence[str] | None = None,
) -> Exercise:
    """Create and register an exercise (see :class:`Exercise` for the options)."""
    if name in EXERCISES:
        raise ValueError(f"exercise {name!r} is defined twice")
    EXERCISES[name] = ex = Exercise(
        name,
        tuple(functions),
        mutates={k: tuple(v) for k, v in (mutates or {}).items()},
        may_alias=frozenset(may_alias),
        forbidden=tuple(base_names(functions) if forbidden is None else forbidden),
    )
    return ex


# --------------------------------------------------------------------------- comparing


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"[:120]


def kind_of(value) -> str:
    """What a learner's function returned, for a message: "an array of shape ...", "a dict"."""
    if isinstance(value, Unsupported):
        return repr(value)
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


def unpack(result, names, fn_name: str) -> list:
    """The pieces of a tuple result ``(a, b, ...)``, named ``names`` in the message."""
    wanted = f"a tuple ({', '.join(names)})"
    if result is None:
        raise CheckFailed(f"{fn_name} returned None, expected {wanted}. Did you forget `return`?")
    if not isinstance(result, (tuple, list)) or len(result) != len(names):
        got = kind_of(result)
        if isinstance(result, (tuple, list)):
            got += f" of length {len(result)}"
        raise CheckFailed(
            f"{fn_name} returned {got}, expected {wanted}. Hint: end with "
            f"`return {', '.join(names)}`."
        )
    return list(result)


def config_keys(config, keys, example, fn_name: str, note: str = "") -> None:
    """``config`` must be a dict with exactly ``keys`` (a budget exercise's answer); the
    failure names the missing and unknown keys and shows ``example``."""
    if not isinstance(config, dict):
        raise CheckFailed(
            f"{fn_name}() returned {kind_of(config)}, expected a dict with the keys "
            f"{', '.join(keys)}.\n  Hint: return {example!r} with your values."
        )
    missing = [k for k in keys if k not in config]
    extra = [k for k in config if k not in keys]
    if missing or extra:
        raise CheckFailed(
            f"{fn_name}() has keys {sorted(map(str, config))}; expected exactly "
            f"{', '.join(keys)}"
            + (f" (missing: {', '.join(missing)})" if missing else "")
            + (f" (unknown: {', '.join(map(str, extra))})" if extra else "")
            + f".\n  Hint: every key is needed, e.g. {example!r}{note}."
        )


def as_number(got, what: str) -> float:
    """``got`` as a float; a failure unless it is one real number (a 0-d array counts)."""
    if isinstance(got, np.ndarray) and got.shape == ():
        got = got[()]
    ok = isinstance(got, (numbers.Real, np.integer, np.floating)) and not isinstance(
        got, (bool, np.bool_)
    )
    if not ok:
        raise CheckFailed(
            f"{what}: expected a number, got {kind_of(got)}. Hint: return float(...)."
        )
    return float(got)


def matches(got, wrong) -> bool:
    """True when ``got`` is the wrong answer ``wrong``: same shape, equal within the
    grading tolerance of ``got``'s dtype (a close fingerprint, not a rough likeness)."""
    try:
        got, wrong = np.asarray(to_host(got)), np.asarray(to_host(wrong))
        if got.shape != wrong.shape:
            return False
        try:
            atol, rtol = tolerance(got.dtype)
        except KeyError:  # integers, booleans: exact
            atol, rtol = 0.0, 0.0
        return bool(np.allclose(got, wrong, rtol=rtol, atol=atol, equal_nan=True))
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
    device_ok: bool = False,
) -> None:
    """Raise :class:`CheckFailed` unless ``got`` matches ``want`` within the tolerance table.

    ``inputs``: named input arrays of the shape of ``want``; the failure message shows
    their values at the worst element (the smallest counterexample for an elementwise
    function). ``known``: wrong answers to recognise, each computed from ``args``.
    ``device_ok``: a GPU device array is an acceptable result (else a host array is asked).
    """
    if got is None:
        raise CheckFailed(
            f"{what}: your function returned None, expected {_describe(want)}. "
            "Did you forget `return`?"
        )
    if isinstance(got, DeviceResult) or (hasattr(got, "copy_to_host") and not device_ok):
        raise CheckFailed(
            f"{what}: you returned a GPU device array; a host (NumPy) array is asked for. "
            "Hint: copy the result back before returning it: `return out.copy_to_host()`."
        )
    if isinstance(got, Unsupported):
        raise CheckFailed(f"{what}: expected a NumPy array, got {got!r}")
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


# ----------------------------------------------------- the contract, for any exercise

# every shape an elementwise or row-wise function should take besides a plain 2-D one:
# 1-D, 3-D and empty ones
SHAPES = ((7,), (2, 3, 4), (0,), (2, 0, 3))
DTYPES = (np.float64, np.float32)


def ends_of_range(dtype) -> np.ndarray:
    """The largest, the smallest normal and subnormal numbers of ``dtype``, both signs
    (and 1, -1, 0): inputs for "exact over the whole range"."""
    f = np.finfo(dtype)
    values = [f.max, -f.max, f.max / 3, -f.max / 3, f.tiny, -f.tiny]
    values += [f.smallest_subnormal, -f.smallest_subnormal, 1.0, -1.0, 0.0]
    return np.array(values, dtype=dtype)


def expect_shapes(fn, make_args, reference, what: str, *, shapes=SHAPES, dtypes=DTYPES):
    """``fn`` is right on every shape of ``shapes``, the dtypes taken in turn.

    ``make_args(shape, dtype, i)`` returns ``(args, named)``: the argument tuple and the
    named input arrays to show at the worst element (or None). ``what`` is a call such as
    ``"relu(x)"``; the failure names the shape.
    """
    for i, shape in enumerate(shapes):
        dtype = dtypes[i % len(dtypes)]
        args, named = make_args(shape, dtype, i)
        expect(fn(*args), reference(*args), f"{what} for x of shape {shape}", inputs=named)


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
    where = getattr(err, "learner_where", None)  # an error brought back from the kernel
    if where is not None:
        return where
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


class GradeFailed(AssertionError):
    """A grade cell's verdict. In a notebook it shows the verdict lines only: IPython
    prints ``_render_traceback_()`` instead of a traceback through the grader's code."""

    def _render_traceback_(self):
        return str(self).splitlines()


@dataclass
class Outcome:
    """An exercise's verdict: the fixed lines to print and the failed sub-checks."""

    lines: list[str]
    failures: list[tuple[str, str]]
    total: int
    stubs: list[str]

    @property
    def message(self) -> str | None:
        """The AssertionError message (None when every sub-check passed)."""
        name = self.lines[-1].split("]", 1)[0].lstrip("[")
        if self.stubs:
            verb = "raises" if len(self.stubs) == 1 else "raise"
            return (
                f"[{name}] not done yet: {' and '.join(self.stubs)} still {verb} "
                "NotImplementedError. Replace the `raise NotImplementedError(...)` line in the "
                "answer cell with your code, run that cell, then run this one again."
            )
        if not self.failures:
            return None
        details = "\n".join(f"- {desc}:\n  {msg}" for desc, msg in self.failures)
        return f"[{name}] {len(self.failures)} of {self.total} checks failed\n{details}"


def run_exercise(ex: Exercise, functions: Sequence[LearnerFunction], stubs=()) -> Outcome:
    """Run every sub-check of ``ex`` on the learner's ``functions`` (wherever they run)."""
    name, total = ex.name, len(ex.subchecks)
    lines: list[str] = []
    failures: list[tuple[str, str]] = []
    if stubs:
        lines += [f"[{name}] FAIL {sub.description}" for sub in ex.subchecks]
        lines.append(f"[{name}] 0/{total} checks passed")
        return Outcome(
            lines, [(s.description, "not done yet") for s in ex.subchecks], total, list(stubs)
        )
    limit = time_limit_s()
    stopped = False
    facts = {}
    for sub in ex.subchecks:
        if stopped:
            failures.append((sub.description, "not run: an earlier check hit the time limit"))
            lines.append(f"[{name}] FAIL {sub.description}")
            continue
        message, stopped = _run_one(ex, sub, functions, limit)
        if message is None:
            lines.append(f"[{name}] ok   {sub.description}")
        else:
            failures.append((sub.description, message))
            lines.append(f"[{name}] FAIL {sub.description}")
    if ex.notes:
        try:
            facts = functions[0].facts()
        except Exception:
            facts = {}
        lines += [f"[{name}] {line}" for line in ex.notes(facts)]
    lines.append(f"[{name}] {total - len(failures)}/{total} checks passed")
    return Outcome(lines, failures, total, [])


def _caller_functions(ex: Exercise, depth: int = 2) -> list:
    """The learner's functions, looked up in the namespace of the grade cell's caller."""
    namespace = sys._getframe(depth).f_globals
    missing = [f for f in ex.functions if f not in namespace]
    if missing:
        raise GradeFailed(
            f"[{ex.name}] {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
            "defined yet: run the answer cell above first (click in it, Shift+Enter), then "
            "run this cell again."
        )
    return [namespace[f] for f in ex.functions]


def check(name: str, *functions) -> None:
    """Grade exercise ``name``; see the module docstring.

    ``check("relu")`` finds the learner's functions by name in the notebook;
    ``check("relu", relu, relu_backward)`` is given them. Prints one line per sub-check
    and a summary; raises ``AssertionError`` if any failed. This is the quick feedback in
    the notebook: ``make grade`` computes the trusted verdict in its own process.
    """
    __tracebackhide__ = True
    if name not in EXERCISES:
        raise ValueError(f"check: no exercise named {name!r}; known: {', '.join(EXERCISES)}")
    ex = EXERCISES[name]
    if not functions:
        functions = _caller_functions(ex)
    if len(functions) != len(ex.functions):
        raise TypeError(
            f"check({name!r}, ...) expects {len(ex.functions)} function(s), "
            f"({', '.join(ex.functions)}); got {len(functions)}"
        )
    stubs = [n for n, fn in zip(ex.functions, functions, strict=True) if is_stub(fn)]
    wrapped = [LocalFunction(n, fn, ex) for n, fn in zip(ex.functions, functions, strict=True)]
    outcome = run_exercise(ex, wrapped, stubs)
    for line in outcome.lines:
        print(line)
    if outcome.message is not None:
        raise GradeFailed(outcome.message)
