"""The catalogue of typical wrong answers (mutants), checked in-process.

Each mutant is an edit of one answer cell of ``solutions/01_activations.ipynb``
(``mutate(SET.answers[name], old, new)``), so the planted defect is what the catalogue
shows. It must fail its own exercise, show its hint, and leave every other exercise
passing. The checks are called directly (no kernel per mutant); ``test_grading.py``
proves the nbval path on the real notebooks. The CUDA mutants run in the ``cuda`` pytest
process (GPU or simulator).

``ALTERNATIVES`` are correct answers written differently from the solutions; each must
pass every check.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from mutant_harness import ExerciseSet, M, _compile, ids, mutate

from nncourse import check


def _globals(with_cuda: bool) -> dict:
    from numba import njit, prange

    import nnlib

    ns = {"np": np, "njit": njit, "prange": prange, "check": check, "nnlib": nnlib}
    if with_cuda:
        import numba_cuda  # noqa: F401  (numba's own built-in numba.cuda is deprecated)
        from numba import cuda

        ns["cuda"] = cuda
    return ns


SET = ExerciseSet("01_activations.ipynb", namespace=_globals, gpu={"relu_cuda"})
A = SET.answers

# (exercise, mutant, answer cell source, text the feedback must show)
MUTANTS = [
    # ------------------------------------------------------------------ relu
    (
        "relu",
        "backward ignores dy",
        mutate(A["relu"], "return np.where(x > 0, dy, 0)", "return (x > 0).astype(x.dtype)"),
        "multiply it by the upstream gradient dy",
    ),
    (
        "relu",
        "relu'(0) = 1 (x >= 0)",
        mutate(A["relu"], "np.where(x > 0, dy, 0)", "np.where(x >= 0, dy, 0)"),
        "differs only where x == 0",
    ),
    (
        "relu",
        "forward in place",
        mutate(A["relu"], "return np.maximum(x, 0)", "x[x < 0] = 0\n    return x"),
        "relu changed its argument x in place",
    ),
    (
        "relu",
        "forward is abs, backward right",
        mutate(A["relu"], "np.maximum(x, 0)", "np.abs(x)"),
        "your output equals |x|",
    ),
    (
        "relu",
        "forward upcasts float32",
        mutate(A["relu"], "np.maximum(x, 0)", "x * (x > 0).astype(np.float64)"),
        "dtype float64, expected float32",
    ),
    (
        "relu",
        "backward zeroes dy in place",
        mutate(A["relu"], "return np.where(x > 0, dy, 0)", "dy[x <= 0] = 0\n    return dy"),
        "relu_backward changed its argument dy in place",
    ),
    (
        "relu",
        "backward upcasts float32",
        mutate(A["relu"], "np.where(x > 0, dy, 0)", "dy * (x > 0).astype(float)"),
        "dtype float64, expected float32",
    ),
    (
        "relu",
        "2-D only (double loop)",
        mutate(
            A["relu"],
            "return np.maximum(x, 0)",
            "out = np.zeros_like(x)\n"
            "    for i in range(x.shape[0]):\n"
            "        for j in range(x.shape[1]):\n"
            "            out[i, j] = max(x[i, j], 0)\n"
            "    return out",
        ),
        "your code assumes a 2-D array",
    ),
    (
        "relu",
        "returns x itself when nothing is negative",
        mutate(
            A["relu"], "return np.maximum(x, 0)", "return x if (x > 0).all() else np.maximum(x, 0)"
        ),
        "relu returned its argument x itself",
    ),
    (
        "relu",
        "x + |x| overflows",
        mutate(A["relu"], "np.maximum(x, 0)", "(x + np.abs(x)) / 2"),
        "x + |x| is twice x and overflows",
    ),
    # ------------------------------------------------------------ leaky_relu
    (
        "leaky_relu",
        "slope on the wrong side",
        mutate(
            A["leaky_relu"],
            "np.where(x > 0, x, alpha * x)",
            "np.where(x > 0, alpha * x, x)",
            "np.where(x > 0, dy, alpha * dy)",
            "np.where(x > 0, alpha * dy, dy)",
        ),
        "the slope alpha is on the wrong side",
    ),
    (
        "leaky_relu",
        "alpha hard-coded",
        mutate(A["leaky_relu"], "np.where(x > 0, x, alpha * x)", "np.where(x > 0, x, 0.01 * x)"),
        "use the alpha argument",
    ),
    (
        "leaky_relu",
        "backward of relu",
        mutate(A["leaky_relu"], "np.where(x > 0, dy, alpha * dy)", "np.where(x > 0, dy, 0)"),
        "your result equals relu_backward",
    ),
    (
        "leaky_relu",
        "backward slope 1 at 0",
        mutate(
            A["leaky_relu"], "np.where(x > 0, dy, alpha * dy)", "np.where(x >= 0, dy, alpha * dy)"
        ),
        "differs only where x == 0",
    ),
    (
        "leaky_relu",
        "backward ignores dy",
        mutate(A["leaky_relu"], "np.where(x > 0, dy, alpha * dy)", "np.where(x > 0, 1.0, alpha)"),
        "multiply it by dy",
    ),
    (
        "leaky_relu",
        "backward scales dy in place",
        mutate(
            A["leaky_relu"],
            "return np.where(x > 0, dy, alpha * dy)",
            "dy[x <= 0] *= alpha\n    return dy",
        ),
        "leaky_relu_backward changed its argument dy in place",
    ),
    (
        "leaky_relu",
        "backward upcasts float32",
        mutate(
            A["leaky_relu"],
            "np.where(x > 0, dy, alpha * dy)",
            "dy * np.where(x > 0, 1.0, alpha)",
        ),
        "dtype float64, expected float32",
    ),
    (
        "leaky_relu",
        "returns x itself when nothing is negative",
        mutate(
            A["leaky_relu"],
            "return np.where(x > 0, x, alpha * x)",
            "return x if (x > 0).all() else np.where(x > 0, x, alpha * x)",
        ),
        "leaky_relu returned its argument x itself",
    ),
    # --------------------------------------------------------------- sigmoid
    (
        "sigmoid",
        "naive formula overflows",
        mutate(
            A["sigmoid"],
            "return np.where(x >= 0, 1 / (1 + e), e / (1 + e))",
            "return 1 / (1 + np.exp(-x))",
        ),
        "exp(-x) overflows",
    ),
    (
        "sigmoid",
        "np.where evaluates both branches",
        mutate(
            A["sigmoid"],
            "return np.where(x >= 0, 1 / (1 + e), e / (1 + e))",
            "return np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x)))",
        ),
        "np.where evaluates both branches",
    ),
    (
        "sigmoid",
        "derivative s*(1+s)",
        mutate(A["sigmoid"], "return dy * s * (1 - s)", "return dy * s * (1 + s)"),
        "s * (1 + s): the derivative is s * (1 - s)",
    ),
    (
        "sigmoid",
        "derivative applied to x",
        mutate(A["sigmoid"], "return dy * s * (1 - s)", "return dy * x * (1 - x)"),
        "takes s = sigmoid(x), not x",
    ),
    (
        "sigmoid",
        "sign flipped",
        mutate(A["sigmoid"], "1 / (1 + e), e / (1 + e)", "e / (1 + e), 1 / (1 + e)"),
        "your output equals sigmoid(-x)",
    ),
    (
        "sigmoid",
        "1 - 1 / (1 + e) cancels for x < 0",
        mutate(A["sigmoid"], "e / (1 + e))", "1 - 1 / (1 + e))"),
        "loses every digit",
    ),
    (
        "sigmoid",
        "backward in place",
        mutate(A["sigmoid"], "return dy * s * (1 - s)", "dy *= s * (1 - s)\n    return dy"),
        "sigmoid_backward changed its argument dy in place",
    ),
    (
        "sigmoid",
        "upcasts float32",
        mutate(A["sigmoid"], "np.exp(-np.abs(x))", "np.exp(-np.abs(x.astype(float)))"),
        "dtype float64, expected float32",
    ),
    # --------------------------------------------------------- tanh_backward
    (
        "tanh_backward",
        "1 - x**2",
        mutate(A["tanh_backward"], "np.tanh(x) ** 2", "x**2"),
        "apply tanh first",
    ),
    (
        "tanh_backward",
        "not squared",
        mutate(A["tanh_backward"], "np.tanh(x) ** 2", "np.tanh(x)"),
        "the tanh is squared",
    ),
    (
        "tanh_backward",
        "ignores dy",
        mutate(
            A["tanh_backward"], "return dy * (1 - np.tanh(x) ** 2)", "return 1 - np.tanh(x) ** 2"
        ),
        "multiply it by dy",
    ),
    (
        "tanh_backward",
        "cosh overflows",
        mutate(A["tanh_backward"], "dy * (1 - np.tanh(x) ** 2)", "dy / np.cosh(x) ** 2"),
        "cosh(x) overflows",
    ),
    (
        "tanh_backward",
        "plus instead of minus",
        mutate(A["tanh_backward"], "(1 - np.tanh(x) ** 2)", "(1 + np.tanh(x) ** 2)"),
        "with a minus",
    ),
    (
        "tanh_backward",
        "in place",
        mutate(
            A["tanh_backward"],
            "return dy * (1 - np.tanh(x) ** 2)",
            "dy *= 1 - np.tanh(x) ** 2\n    return dy",
        ),
        "tanh_backward changed its argument dy in place",
    ),
    (
        "tanh_backward",
        "upcasts float32",
        mutate(A["tanh_backward"], "np.tanh(x) ** 2", "np.tanh(x.astype(float)) ** 2"),
        "dtype float64, expected float32",
    ),
    # ---------------------------------------------------------- elu_backward
    (
        "elu_backward",
        "the -1 kept: the function, not its derivative",
        mutate(A["elu_backward"], "np.exp(np.minimum(x, 0)))", "np.expm1(np.minimum(x, 0)))"),
        "the -1 is a constant",
    ),
    (
        "elu_backward",
        "alpha dropped",
        mutate(A["elu_backward"], "dy * alpha * np.exp", "dy * np.exp"),
        "alpha is missing on the negative side",
    ),
    (
        "elu_backward",
        "slope 1 at x = 0 (x >= 0)",
        mutate(A["elu_backward"], "np.where(x > 0,", "np.where(x >= 0,"),
        "differs only where x == 0",
    ),
    (
        "elu_backward",
        "exp(x) overflows in the branch np.where also evaluates",
        mutate(A["elu_backward"], "np.exp(np.minimum(x, 0))", "np.exp(x)"),
        "np.where evaluates both branches",
    ),
    (
        "elu_backward",
        "elu(x) + 1 instead of elu(x) + alpha",
        mutate(
            A["elu_backward"],
            "dy * alpha * np.exp(np.minimum(x, 0))",
            "dy * (alpha * np.expm1(np.minimum(x, 0)) + 1)",
        ),
        "not elu(x) + 1",
    ),
    (
        "elu_backward",
        "ignores dy",
        mutate(A["elu_backward"], "np.where(x > 0, dy, dy * alpha", "np.where(x > 0, 1.0, alpha"),
        "multiply it by the upstream gradient dy",
    ),
    (
        "elu_backward",
        "scales dy in place",
        mutate(
            A["elu_backward"],
            "return np.where(x > 0, dy, dy * alpha * np.exp(np.minimum(x, 0)))",
            "dy[x <= 0] *= alpha * np.exp(x[x <= 0])\n    return dy",
        ),
        "elu_backward changed its argument dy in place",
    ),
    (
        "elu_backward",
        "upcasts float32",
        mutate(A["elu_backward"], "dy * alpha * np.exp", "dy * np.float64(alpha) * np.exp"),
        "dtype float64, expected float32",
    ),
    # ---------------------------------------------------------- sigmoid_flat
    (
        "sigmoid_flat",
        "computed in float64 whatever the dtype",
        mutate(
            A["sigmoid_flat"],
            "one = dtype(1)",
            "one = 1.0",
            "np.exp(-dtype(x))",
            "np.exp(-x)",
        ),
        "your value is float64's for every dtype",
    ),
    (
        "sigmoid_flat",
        "analysis with eps, not eps / 2",
        mutate(
            A["sigmoid_flat"], "    one = dtype(1)\n", "    return -np.log(np.finfo(dtype).eps)\n"
        ),
        "rounds to 1 already at half of that",
    ),
    (
        "sigmoid_flat",
        "the exact form e / (1 + e)^2 (zero only at underflow)",
        mutate(
            A["sigmoid_flat"],
            "        s = one / (one + np.exp(-dtype(x)))\n        return s * (one - s) == 0",
            "        e = np.exp(-dtype(x))\n        return e / (one + e) ** 2 == 0",
        ),
        "where exp(-x) underflows to 0",
    ),
    (
        "sigmoid_flat",
        "a scan in whole steps",
        mutate(
            A["sigmoid_flat"],
            "    lo, hi = 0.0, 1000.0",
            "    return next(float(k) for k in range(1, 1000) if flat(k))\n"
            "    lo, hi = 0.0, 1000.0",
        ),
        "search finer",
    ),
    (
        "sigmoid_flat",
        "float32's number for every dtype",
        mutate(A["sigmoid_flat"], "    one = dtype(1)\n", "    return 16.64\n"),
        "same x for every dtype",
    ),
    (
        "sigmoid_flat",
        "returns an array, not a number",
        mutate(A["sigmoid_flat"], "    return hi", "    return np.array([hi])"),
        "return float(...)",
    ),
    # --------------------------------------------------------------- softmax
    (
        "softmax",
        "no max shift",
        mutate(A["softmax"], "e = np.exp(z)", "e = np.exp(x)"),
        "subtract the max along the axis first",
    ),
    (
        "softmax",
        "wrong axis",
        mutate(
            A["softmax"],
            "x.max(axis=axis, keepdims=True)",
            "x.max(axis=0, keepdims=True)",
            "e.sum(axis=axis, keepdims=True)",
            "e.sum(axis=0, keepdims=True)",
        ),
        "your output equals softmax over axis 0",
    ),
    (
        "softmax",
        "normalised over the whole array",
        mutate(
            A["softmax"],
            "x.max(axis=axis, keepdims=True)",
            "x.max()",
            "e.sum(axis=axis, keepdims=True)",
            "e.sum()",
        ),
        "sums to 1 over the whole array",
    ),
    (
        "softmax",
        "global max",
        mutate(A["softmax"], "x.max(axis=axis, keepdims=True)", "x.max()"),
        "you subtracted the max of the whole array",
    ),
    (
        "softmax",
        "sum without keepdims",
        mutate(A["softmax"], "e.sum(axis=axis, keepdims=True)", "e.sum(axis=axis)"),
        "keepdims=True",
    ),
    (
        "softmax",
        "default axis=1",
        mutate(A["softmax"], "def softmax(x, axis=-1):", "def softmax(x, axis=1):"),
        "the default is axis=-1",
    ),
    (
        "softmax",
        "shifts the caller's x in place",
        mutate(
            A["softmax"],
            "z = x - x.max(axis=axis, keepdims=True)",
            "x -= x.max(axis=axis, keepdims=True)\n    z = x",
        ),
        "softmax changed its argument x in place",
    ),
    (
        "softmax",
        "subtracts the mean, not the max",
        mutate(A["softmax"], "x.max(axis=axis, keepdims=True)", "x.mean(axis=axis, keepdims=True)"),
        "overflow",
    ),
    # ------------------------------------------------------------ relu_numba
    (
        "relu_numba",
        "range instead of prange",
        mutate(A["relu_numba"], "prange(x.size)", "range(x.size)"),
        "Numba found no prange loop",
    ),
    (
        "relu_numba",
        "not parallel=True",
        mutate(A["relu_numba"], "@njit(parallel=True)", "@njit"),
        "compiled without parallel=True",
    ),
    (
        "relu_numba",
        "no decorator",
        mutate(A["relu_numba"], "@njit(parallel=True)\n", ""),
        "not a Numba function",
    ),
    (
        "relu_numba",
        "float64 output",
        mutate(A["relu_numba"], "np.empty_like(x)", "np.empty(x.size)"),
        "dtype float64, expected float32",
    ),
    (
        "relu_numba",
        "min instead of max",
        mutate(A["relu_numba"], "x[i] > 0 else 0", "x[i] < 0 else 0"),
        "your output equals min(x, 0)",
    ),
    (
        "relu_numba",
        "off by one: prange(x.size - 1)",
        mutate(A["relu_numba"], "prange(x.size)", "prange(x.size - 1)"),
        "some output elements are never written",
    ),
    (
        "relu_numba",
        "prange(1) around a serial loop",
        mutate(
            A["relu_numba"],
            "    for i in prange(x.size):\n        out[i] = x[i] if x[i] > 0 else 0",
            "    for _ in prange(1):\n"
            "        for i in range(x.size):\n"
            "            out[i] = x[i] if x[i] > 0 else 0",
        ),
        "has a fixed number of iterations",
    ),
    (
        "relu_numba",
        "prange(k) with k = 1 around a serial loop",
        mutate(
            A["relu_numba"],
            "    for i in prange(x.size):\n        out[i] = x[i] if x[i] > 0 else 0",
            "    k = 1\n"
            "    for _ in prange(k):\n"
            "        for i in range(x.size):\n"
            "            out[i] = x[i] if x[i] > 0 else 0",
        ),
        "does not split the work",
    ),
    (
        "relu_numba",
        "kernel writes into x",
        mutate(
            A["relu_numba"],
            "out[i] = x[i] if x[i] > 0 else 0",
            "if x[i] < 0:\n            x[i] = 0\n        out[i] = x[i]",
        ),
        "relu_numba changed its argument x in place",
    ),
]

CUDA_MUTANTS = [
    (
        "relu_cuda",
        "no bounds guard",
        mutate(
            A["relu_cuda"],
            "    if i < x.size:  # the last block may reach past the end\n"
            "        out[i] = x[i] if x[i] > 0 else 0",
            "    out[i] = x[i] if x[i] > 0 else 0",
        ),
        "if i < x.size",
    ),
    (
        "relu_cuda",
        "too few blocks (floor division)",
        mutate(
            A["relu_cuda"],
            "blocks = (x.size + threads - 1) // threads",
            "blocks = max(x.size // threads, 1)",
        ),
        "round up",
    ),
    (
        "relu_cuda",
        "index ignores the block",
        mutate(A["relu_cuda"], "i = cuda.grid(1)", "i = cuda.threadIdx.x"),
        "i = cuda.grid(1)",
    ),
    (
        "relu_cuda",
        "float64 output",
        mutate(A["relu_cuda"], "cuda.device_array_like(x_gpu)", "cuda.device_array(x.size)"),
        "dtype float64, expected float32",
    ),
    (
        "relu_cuda",
        "min instead of max",
        mutate(A["relu_cuda"], "x[i] > 0 else 0", "x[i] < 0 else 0"),
        "your output equals min(x, 0)",
    ),
    (
        "relu_cuda",
        "fixed grid [4, 256]",
        mutate(A["relu_cuda"], "relu_kernel[blocks, threads]", "relu_kernel[4, 256]"),
        "the first 1024 of 1100 elements are right",
    ),
    (
        "relu_cuda",
        "one block of 1024 threads",
        mutate(A["relu_cuda"], "relu_kernel[blocks, threads]", "relu_kernel[1, 1024]"),
        "round up",
    ),
    (
        "relu_cuda",
        "returns the device array",
        mutate(A["relu_cuda"], "return out_gpu.copy_to_host()", "return out_gpu"),
        "you returned a GPU device array",
    ),
    (
        "relu_cuda",
        "kernel writes into x",
        mutate(
            A["relu_cuda"],
            "out[i] = x[i] if x[i] > 0 else 0",
            "if x[i] < 0:\n            x[i] = 0\n        out[i] = x[i]",
        ),
        "relu_kernel changed its input x",
    ),
]

# (exercise, alternative, answer cell source): correct answers written differently
ALTERNATIVES = [
    (
        "relu",
        "boolean mask product",
        M("""
        def relu(x):
            return x * (x > 0)
        def relu_backward(dy, x):
            return dy * (x > 0)
        """),
    ),
    (
        "relu",
        "np.clip and a where with zeros_like",
        M("""
        def relu(x):
            return np.clip(x, 0, None)
        def relu_backward(dy, x):
            return np.where(x > 0, dy, np.zeros_like(dy))
        """),
    ),
    (
        "relu",
        "copy, then zero the negatives of the copy",
        M("""
        def relu(x):
            out = x.copy()
            out[out < 0] = 0
            return out
        def relu_backward(dy, x):
            dx = dy.copy()
            dx[x <= 0] = 0
            return dx
        """),
    ),
    (
        "leaky_relu",
        "maximum(x, alpha * x) and a scaled copy",
        M("""
        def leaky_relu(x, alpha=0.01):
            return np.maximum(x, alpha * x)
        def leaky_relu_backward(dy, x, alpha=0.01):
            return dy * np.where(x > 0, 1, alpha).astype(dy.dtype)
        """),
    ),
    (
        "sigmoid",
        "exp(-logaddexp(0, -x)) and the symmetric derivative",
        M("""
        def sigmoid(x):
            return np.exp(-np.logaddexp(0, -x))
        def sigmoid_backward(dy, x):
            e = np.exp(-np.abs(x))
            return dy * e / (1 + e) ** 2
        """),
    ),
    (
        "sigmoid",
        "boolean masks into a new array",
        M("""
        def sigmoid(x):
            out = np.empty_like(x)
            pos = x >= 0
            out[pos] = 1 / (1 + np.exp(-x[pos]))
            e = np.exp(x[~pos])
            out[~pos] = e / (1 + e)
            return out
        def sigmoid_backward(dy, x):
            s = sigmoid(x)
            return dy * s - dy * s * s
        """),
    ),
    (
        "tanh_backward",
        "(1 - t) * (1 + t)",
        M("""
        def tanh_backward(dy, x):
            t = np.tanh(x)
            return dy * (1 - t) * (1 + t)
        """),
    ),
    (
        "softmax",
        "exp(x - logsumexp)",
        M("""
        def softmax(x, axis=-1):
            m = x.max(axis=axis, keepdims=True)
            lse = m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))
            return np.exp(x - lse)
        """),
    ),
    (
        "softmax",
        "moveaxis to the end and back",
        M("""
        def softmax(x, axis=-1):
            z = np.moveaxis(x, axis, -1)
            e = np.exp(z - z.max(axis=-1, keepdims=True))
            return np.moveaxis(e / e.sum(axis=-1, keepdims=True), -1, axis)
        """),
    ),
    (
        "elu_backward",
        "elu(x) + alpha on the negative side, from nnlib's elu",
        M("""
        def elu_backward(dy, x, alpha=1.0):
            neg = alpha * np.expm1(np.minimum(x, 0))  # elu(x) where x <= 0
            return dy * np.where(x > 0, 1, neg + alpha).astype(dy.dtype)
        """),
    ),
    (
        "elu_backward",
        "boolean masks into a copy",
        M("""
        def elu_backward(dy, x, alpha=1.0):
            dx = dy.copy()
            neg = x <= 0
            dx[neg] = dy[neg] * alpha * np.exp(x[neg])
            return dx
        """),
    ),
    (
        "sigmoid_flat",
        "analysis: 1 + exp(-x) rounds to 1 once exp(-x) <= eps / 2",
        M("""
        def sigmoid_flat_from(dtype):
            return float(np.log(2 / np.finfo(dtype).eps))
        """),
    ),
    (
        "sigmoid_flat",
        "a scan in steps of 0.01",
        M("""
        def sigmoid_flat_from(dtype):
            xs = np.arange(0, 120, 0.01).astype(dtype)
            one = dtype(1)
            s = one / (one + np.exp(-xs))
            return float(xs[np.argmax(s * (one - s) == 0)])
        """),
    ),
    (
        "relu_numba",
        "a flat loop over chunks, preallocated with np.empty",
        M("""
        @njit(parallel=True)
        def relu_numba(x):
            out = np.empty(x.shape, dtype=x.dtype)
            n = x.size
            chunk = 1024
            for c in prange((n + chunk - 1) // chunk):
                for i in range(c * chunk, min((c + 1) * chunk, n)):
                    out[i] = max(x[i], 0)
            return out
        """),
    ),
    (
        "relu_numba",
        "zeros_like and a conditional write",
        M("""
        @njit(parallel=True)
        def relu_numba(x):
            out = np.zeros_like(x)
            for i in prange(x.shape[0]):
                if x[i] > 0:
                    out[i] = x[i]
            return out
        """),
    ),
]

CUDA_ALTERNATIVES = [
    (
        "relu_cuda",
        "grid-stride loop on a capped grid of 128-thread blocks",
        M("""
        import math

        @cuda.jit
        def relu_kernel(x, out):
            start = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
            for i in range(start, x.shape[0], cuda.gridsize(1)):
                out[i] = max(x[i], 0)

        def relu_gpu(x):
            threads = 128
            blocks = min(math.ceil(x.size / threads), 8)
            out = cuda.device_array_like(x)
            relu_kernel[blocks, threads](cuda.to_device(x), out)
            return out.copy_to_host()
        """),
    ),
]


def test_catalogue_has_at_least_four_mutants_per_exercise():
    SET.assert_catalogue_complete(MUTANTS + CUDA_MUTANTS)


def test_the_solutions_pass_every_check():
    SET.assert_solutions_pass()


@pytest.mark.parametrize(("exercise", "mutant", "source", "hint"), MUTANTS, ids=ids(MUTANTS))
def test_mutant_fails_its_own_exercise_only_and_shows_its_hint(exercise, mutant, source, hint):
    SET.assert_only_its_own_exercise_fails(exercise, source, hint)


def _failures_with(source: str, with_cuda: bool = False) -> dict[str, str]:
    ns = SET.solved(with_cuda)
    exec(_compile(source, "<answer cell under test>"), ns)
    return SET.failures(ns, with_cuda)


@pytest.mark.parametrize(
    ("exercise", "alternative", "source"),
    ALTERNATIVES,
    ids=[f"{ex}: {name}" for ex, name, _ in ALTERNATIVES],
)
def test_correct_alternative_passes_every_check(exercise, alternative, source):
    assert _failures_with(source) == {}


def test_relu_that_calls_nnlib_is_named_and_fails():
    source = mutate(
        A["relu"], "return np.maximum(x, 0)", 'return nnlib.functional.relu(x, backend="numpy")'
    )
    failing = _failures_with(source)
    assert sorted(failing) == ["relu"], failing
    assert "your relu calls nnlib.functional.relu" in failing["relu"], failing["relu"]
    assert "scores 0" in failing["relu"]


def test_a_wrong_forward_is_not_blamed_on_a_right_backward():
    failing = _failures_with(mutate(A["relu"], "np.maximum(x, 0)", "np.abs(x)"))
    message = failing["relu"]
    assert "FAIL relu_backward passes a float64 gradient check" in message
    assert "your relu_backward equals the correct derivative" in message
    assert "it is your forward pass relu that is wrong" in message
    assert "derive f'(x) again" not in message


def test_a_wrong_backward_is_told_to_derive_again():
    source = mutate(A["relu"], "return np.where(x > 0, dy, 0)", "return (x > 0).astype(x.dtype)")
    message = _failures_with(source)["relu"]
    assert "Hint: derive f'(x) again on paper and multiply it by dy" in message


@pytest.mark.cuda
def test_cuda_solution_passes_and_says_where_it_ran():
    ns = SET.solved(with_cuda=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        check("relu_cuda", ns["relu_kernel"], ns["relu_gpu"])
    assert "[relu_cuda] 7/7 checks passed" in out.getvalue()
    assert "[relu_cuda] ran under the CUDA simulator" in out.getvalue() or (
        "[relu_cuda] ran on the GPU" in out.getvalue()
    )
    assert (
        "[relu_cuda] relu_gpu was checked at n = 1, 1000, 1100 and 100000 (2049 under"
        in out.getvalue()
    )


@pytest.mark.cuda
@pytest.mark.parametrize(
    ("exercise", "mutant", "source", "hint"), CUDA_MUTANTS, ids=ids(CUDA_MUTANTS)
)
def test_cuda_mutant_fails_its_own_exercise_only_and_shows_its_hint(exercise, mutant, source, hint):
    SET.assert_only_its_own_exercise_fails(exercise, source, hint, with_cuda=True)


@pytest.mark.cuda
@pytest.mark.parametrize(
    ("exercise", "alternative", "source"),
    CUDA_ALTERNATIVES,
    ids=[f"{ex}: {name}" for ex, name, _ in CUDA_ALTERNATIVES],
)
def test_cuda_correct_alternative_passes_every_check(exercise, alternative, source):
    assert _failures_with(source, with_cuda=True) == {}
