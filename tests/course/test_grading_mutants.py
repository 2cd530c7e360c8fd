"""The catalogue of typical wrong answers (mutants), checked in-process.

Each mutant replaces one answer cell of ``solutions/01_activations.ipynb``. It must fail
its own exercise, show its hint, and leave every other exercise passing. The checks are
called directly (no kernel per mutant); ``test_grading.py`` proves the nbval path on the
real notebooks. The CUDA mutants run in the ``cuda`` pytest process (GPU or simulator).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from mutant_harness import ExerciseSet, M, ids

from nncourse import check


def _globals(with_cuda: bool) -> dict:
    from numba import njit, prange

    ns = {"np": np, "njit": njit, "prange": prange, "check": check}
    if with_cuda:
        import numba_cuda  # noqa: F401  (numba's own built-in numba.cuda is deprecated)
        from numba import cuda

        ns["cuda"] = cuda
    return ns


SET = ExerciseSet("01_activations.ipynb", namespace=_globals, gpu={"relu_cuda"})

# (exercise, mutant, answer cell source, text the feedback must show)
MUTANTS = [
    # ------------------------------------------------------------------ relu
    (
        "relu",
        "backward ignores dy",
        M("""
        def relu(x):
            return np.maximum(x, 0)
        def relu_backward(dy, x):
            return (x > 0).astype(x.dtype)
        """),
        "multiply it by the upstream gradient dy",
    ),
    (
        "relu",
        "relu'(0) = 1",
        M("""
        def relu(x):
            return np.maximum(x, 0)
        def relu_backward(dy, x):
            return np.where(x >= 0, dy, 0)
        """),
        "differs only where x == 0",
    ),
    (
        "relu",
        "forward in place",
        M("""
        def relu(x):
            x[x < 0] = 0
            return x
        def relu_backward(dy, x):
            return np.where(x > 0, dy, 0)
        """),
        "relu changed its input x",
    ),
    (
        "relu",
        "forward is abs",
        M("""
        def relu(x):
            return np.abs(x)
        def relu_backward(dy, x):
            return np.where(x > 0, dy, 0)
        """),
        "your output equals |x|",
    ),
    (
        "relu",
        "float32 upcast",
        M("""
        def relu(x):
            return x * (x > 0).astype(np.float64)
        def relu_backward(dy, x):
            return np.where(x > 0, dy, 0)
        """),
        "dtype float64, expected float32",
    ),
    # ------------------------------------------------------------ leaky_relu
    (
        "leaky_relu",
        "slope on the wrong side",
        M("""
        def leaky_relu(x, alpha=0.01):
            return np.where(x > 0, alpha * x, x)
        def leaky_relu_backward(dy, x, alpha=0.01):
            return np.where(x > 0, dy, alpha * dy)
        """),
        "the slope alpha is on the wrong side",
    ),
    (
        "leaky_relu",
        "alpha hard-coded",
        M("""
        def leaky_relu(x, alpha=0.01):
            return np.where(x > 0, x, 0.01 * x)
        def leaky_relu_backward(dy, x, alpha=0.01):
            return np.where(x > 0, dy, alpha * dy)
        """),
        "use the alpha argument",
    ),
    (
        "leaky_relu",
        "backward of relu",
        M("""
        def leaky_relu(x, alpha=0.01):
            return np.where(x > 0, x, alpha * x)
        def leaky_relu_backward(dy, x, alpha=0.01):
            return np.where(x > 0, dy, 0)
        """),
        "your result equals relu_backward",
    ),
    (
        "leaky_relu",
        "backward slope 1 at 0",
        M("""
        def leaky_relu(x, alpha=0.01):
            return np.where(x > 0, x, alpha * x)
        def leaky_relu_backward(dy, x, alpha=0.01):
            return np.where(x >= 0, dy, alpha * dy)
        """),
        "differs only where x == 0",
    ),
    (
        "leaky_relu",
        "backward ignores dy",
        M("""
        def leaky_relu(x, alpha=0.01):
            return np.where(x > 0, x, alpha * x)
        def leaky_relu_backward(dy, x, alpha=0.01):
            return np.where(x > 0, 1.0, alpha)
        """),
        "multiply it by dy",
    ),
    # --------------------------------------------------------------- sigmoid
    (
        "sigmoid",
        "naive formula overflows",
        M("""
        def sigmoid(x):
            return 1 / (1 + np.exp(-x))
        def sigmoid_backward(dy, x):
            s = sigmoid(x)
            return dy * s * (1 - s)
        """),
        "exp(-x) overflows",
    ),
    (
        "sigmoid",
        "np.where evaluates both branches",
        M("""
        def sigmoid(x):
            return np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x)))
        def sigmoid_backward(dy, x):
            e = np.exp(-np.abs(x))
            s = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
            return dy * s * (1 - s)
        """),
        "np.where evaluates both branches",
    ),
    (
        "sigmoid",
        "derivative s*(1+s)",
        M("""
        def sigmoid(x):
            e = np.exp(-np.abs(x))
            return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        def sigmoid_backward(dy, x):
            s = sigmoid(x)
            return dy * s * (1 + s)
        """),
        "s * (1 + s): the derivative is s * (1 - s)",
    ),
    (
        "sigmoid",
        "derivative applied to x",
        M("""
        def sigmoid(x):
            e = np.exp(-np.abs(x))
            return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        def sigmoid_backward(dy, x):
            return dy * x * (1 - x)
        """),
        "takes s = sigmoid(x), not x",
    ),
    (
        "sigmoid",
        "sign flipped",
        M("""
        def sigmoid(x):
            e = np.exp(-np.abs(x))
            return np.where(x >= 0, e / (1 + e), 1 / (1 + e))
        def sigmoid_backward(dy, x):
            s = sigmoid(x)
            return dy * s * (1 - s)
        """),
        "your output equals sigmoid(-x)",
    ),
    # --------------------------------------------------------- tanh_backward
    (
        "tanh_backward",
        "1 - x**2",
        M("""
        def tanh_backward(dy, x):
            return dy * (1 - x**2)
        """),
        "apply tanh first",
    ),
    (
        "tanh_backward",
        "not squared",
        M("""
        def tanh_backward(dy, x):
            return dy * (1 - np.tanh(x))
        """),
        "the tanh is squared",
    ),
    (
        "tanh_backward",
        "ignores dy",
        M("""
        def tanh_backward(dy, x):
            return 1 - np.tanh(x) ** 2
        """),
        "multiply it by dy",
    ),
    (
        "tanh_backward",
        "cosh overflows",
        M("""
        def tanh_backward(dy, x):
            return dy / np.cosh(x) ** 2
        """),
        "cosh(x) overflows",
    ),
    (
        "tanh_backward",
        "plus instead of minus",
        M("""
        def tanh_backward(dy, x):
            return dy * (1 + np.tanh(x) ** 2)
        """),
        "with a minus",
    ),
    # --------------------------------------------------------------- softmax
    (
        "softmax",
        "no max shift",
        M("""
        def softmax(x, axis=-1):
            e = np.exp(x)
            return e / e.sum(axis=axis, keepdims=True)
        """),
        "subtract the max along the axis first",
    ),
    (
        "softmax",
        "wrong axis",
        M("""
        def softmax(x, axis=-1):
            e = np.exp(x - x.max(axis=0, keepdims=True))
            return e / e.sum(axis=0, keepdims=True)
        """),
        "your output equals softmax over axis 0",
    ),
    (
        "softmax",
        "normalised over the whole array",
        M("""
        def softmax(x, axis=-1):
            e = np.exp(x - x.max())
            return e / e.sum()
        """),
        "sums to 1 over the whole array",
    ),
    (
        "softmax",
        "global max",
        M("""
        def softmax(x, axis=-1):
            e = np.exp(x - x.max())
            return e / e.sum(axis=axis, keepdims=True)
        """),
        "you subtracted the max of the whole array",
    ),
    (
        "softmax",
        "sum without keepdims",
        M("""
        def softmax(x, axis=-1):
            e = np.exp(x - x.max(axis=axis, keepdims=True))
            return e / e.sum(axis=axis)
        """),
        "keepdims=True",
    ),
    # ------------------------------------------------------------ relu_numba
    (
        "relu_numba",
        "range instead of prange",
        M("""
        @njit(parallel=True)
        def relu_numba(x):
            out = np.empty_like(x)
            for i in range(x.size):
                out[i] = x[i] if x[i] > 0 else 0
            return out
        """),
        "Numba found no prange loop",
    ),
    (
        "relu_numba",
        "not parallel=True",
        M("""
        @njit
        def relu_numba(x):
            out = np.empty_like(x)
            for i in prange(x.size):
                out[i] = x[i] if x[i] > 0 else 0
            return out
        """),
        "compiled without parallel=True",
    ),
    (
        "relu_numba",
        "no decorator",
        M("""
        def relu_numba(x):
            out = np.empty_like(x)
            for i in prange(x.size):
                out[i] = x[i] if x[i] > 0 else 0
            return out
        """),
        "not a Numba function",
    ),
    (
        "relu_numba",
        "float64 output",
        M("""
        @njit(parallel=True)
        def relu_numba(x):
            out = np.empty(x.size)
            for i in prange(x.size):
                out[i] = x[i] if x[i] > 0 else 0
            return out
        """),
        "dtype float64, expected float32",
    ),
    (
        "relu_numba",
        "min instead of max",
        M("""
        @njit(parallel=True)
        def relu_numba(x):
            out = np.empty_like(x)
            for i in prange(x.size):
                out[i] = x[i] if x[i] < 0 else 0
            return out
        """),
        "your output equals min(x, 0)",
    ),
]

_LAUNCHER = """
def relu_gpu(x):
    threads = 256
    blocks = (x.size + threads - 1) // threads
    x_gpu = cuda.to_device(x)
    out_gpu = cuda.device_array_like(x_gpu)
    relu_kernel[blocks, threads](x_gpu, out_gpu)
    return out_gpu.copy_to_host()
"""
_KERNEL = """
@cuda.jit
def relu_kernel(x, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = x[i] if x[i] > 0 else 0
"""

CUDA_MUTANTS = [
    (
        "relu_cuda",
        "no bounds guard",
        M("""
        @cuda.jit
        def relu_kernel(x, out):
            i = cuda.grid(1)
            out[i] = x[i] if x[i] > 0 else 0
        """)
        + _LAUNCHER,
        "if i < x.size",
    ),
    (
        "relu_cuda",
        "too few blocks (floor division)",
        _KERNEL
        + M("""
        def relu_gpu(x):
            threads = 256
            blocks = x.size // threads
            x_gpu = cuda.to_device(x)
            out_gpu = cuda.device_array_like(x_gpu)
            if blocks:
                relu_kernel[blocks, threads](x_gpu, out_gpu)
            return out_gpu.copy_to_host()
        """),
        "round up",
    ),
    (
        "relu_cuda",
        "index ignores the block",
        M("""
        @cuda.jit
        def relu_kernel(x, out):
            i = cuda.threadIdx.x
            if i < x.size:
                out[i] = x[i] if x[i] > 0 else 0
        """)
        + _LAUNCHER,
        "i = cuda.grid(1)",
    ),
    (
        "relu_cuda",
        "float64 output",
        _KERNEL
        + M("""
        def relu_gpu(x):
            threads = 256
            blocks = (x.size + threads - 1) // threads
            out_gpu = cuda.device_array(x.size)
            relu_kernel[blocks, threads](cuda.to_device(x), out_gpu)
            return out_gpu.copy_to_host()
        """),
        "dtype float64, expected float32",
    ),
    (
        "relu_cuda",
        "min instead of max",
        M("""
        @cuda.jit
        def relu_kernel(x, out):
            i = cuda.grid(1)
            if i < x.size:
                out[i] = x[i] if x[i] < 0 else 0
        """)
        + _LAUNCHER,
        "your output equals min(x, 0)",
    ),
]


def test_catalogue_has_at_least_four_mutants_per_exercise():
    SET.assert_catalogue_complete(MUTANTS + CUDA_MUTANTS)


def test_the_solutions_pass_every_check():
    SET.assert_solutions_pass()


@pytest.mark.parametrize(("exercise", "mutant", "source", "hint"), MUTANTS, ids=ids(MUTANTS))
def test_mutant_fails_its_own_exercise_only_and_shows_its_hint(exercise, mutant, source, hint):
    SET.assert_only_its_own_exercise_fails(exercise, source, hint)


@pytest.mark.cuda
def test_cuda_solution_passes_and_says_where_it_ran():
    ns = SET.solved(with_cuda=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        check("relu_cuda", ns["relu_kernel"], ns["relu_gpu"])
    assert "[relu_cuda] 5/5 checks passed" in out.getvalue()
    assert "[relu_cuda] ran under the CUDA simulator" in out.getvalue() or (
        "[relu_cuda] ran on the GPU" in out.getvalue()
    )


@pytest.mark.cuda
@pytest.mark.parametrize(
    ("exercise", "mutant", "source", "hint"), CUDA_MUTANTS, ids=ids(CUDA_MUTANTS)
)
def test_cuda_mutant_fails_its_own_exercise_only_and_shows_its_hint(exercise, mutant, source, hint):
    SET.assert_only_its_own_exercise_fails(exercise, source, hint, with_cuda=True)
