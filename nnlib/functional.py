"""The functional API: activation functions and their backward passes.

Every function takes ``backend=None`` (see :mod:`nnlib._backend` for how it is
resolved) and runs the same op on the NumPy reference, the Numba CPU kernels or the
CUDA kernels. ``f_backward(dy, x)`` returns the vector-Jacobian product
``dy * f'(x)``: the gradient of the loss with respect to ``x``, given the gradient
``dy`` with respect to ``f(x)``.

Arrays
------
``x`` : array of any shape ``(...)``, float32 or float64, contiguous or not. Integer
    and boolean input is converted to float64. Inputs are never modified.
``dy`` : the same shape and dtype as ``x``.
Results have the shape and dtype of ``x``. On the cuda backend a NumPy input gives a
NumPy result (copied to the GPU and back); a GPU array (e.g. from
``numba.cuda.to_device``) gives a GPU array and stays on the device.

Derivatives at 0 (ReLU family): the slope of the negative side, as in PyTorch:
``relu'(0) = 0``, ``leaky_relu'(0) = alpha``, ``prelu'(0) = alpha``, ``elu'(0) = alpha``.
NaN propagates (``relu(nan) = nan``, as ``np.maximum`` and PyTorch), and the derivative
at NaN is NaN. GELU and SiLU keep their relative precision in the tails and take their
limits at +-inf (``gelu(-inf) = -0``, ``gelu'(inf) = 1``, ...).

Every function checks its arguments before a kernel runs (shapes, dtypes, where they
live, ``axis``, ``alpha``) and raises a ``TypeError``/``ValueError`` naming the argument.
0-size inputs give 0-size results.
"""

from __future__ import annotations

import numpy as np

from . import ops  # noqa: F401  (importing the op modules registers their kernels)
from ._backend import dispatch, resolve_backend
from ._validate import as_float_array, check_axis, check_like, check_scalar, is_device_array

__all__ = [
    "batch_norm",
    "batch_norm_backward",
    "conv2d",
    "conv2d_backward",
    "elu",
    "elu_backward",
    "gelu",
    "gelu_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "log_softmax",
    "log_softmax_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "prelu",
    "prelu_backward",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "silu",
    "silu_backward",
    "softmax",
    "softmax_backward",
    "tanh",
    "tanh_backward",
]


def _impl(op: str, backend: str | None, x):
    """The implementation of ``op`` for input ``x``; GPU arrays need the cuda backend."""
    name = resolve_backend(backend)
    if is_device_array(x) and name != "cuda":
        raise TypeError(
            f"{op}: the input is a GPU array but the backend is {name!r}; pass "
            "backend='cuda', or copy the array to the host with .copy_to_host()"
        )
    return dispatch(op, name)


def _unary(op: str, x, backend, *scalars, axis=None):
    """``op(x, *scalars)``, or ``op(x, axis=axis)`` for the ops along an axis."""
    x = as_float_array(x, "x")
    kw = {} if axis is None else {"axis": check_axis(axis, x.ndim)}
    return _impl(op, backend, x)(x, *scalars, **kw)


def _unary_backward(op: str, dy, x, backend, *scalars, axis=None):
    """``op(dy, x, *scalars)``, or ``op(dy, x, axis=axis)``; ``dy`` checked against x."""
    x = as_float_array(x, "x")
    dy = check_like(dy, x)
    kw = {} if axis is None else {"axis": check_axis(axis, x.ndim)}
    return _impl(op, backend, x)(dy, x, *scalars, **kw)


# ------------------------------------------------------------------------- ReLU family


def relu(x, *, backend: str | None = None):
    """Rectified linear unit, ``max(x, 0)`` elementwise. ``x``: (...) -> (...)."""
    return _unary("relu", x, backend)


def relu_backward(dy, x, *, backend: str | None = None):
    """``dy * relu'(x)``: ``dy`` where ``x > 0``, else 0 (also at ``x == 0``)."""
    return _unary_backward("relu_backward", dy, x, backend)


def leaky_relu(x, alpha: float = 0.01, *, backend: str | None = None):
    """Leaky ReLU: ``x`` where ``x > 0``, else ``alpha * x``. ``x``: (...) -> (...)."""
    return _unary("leaky_relu", x, backend, check_scalar(alpha, "alpha"))


def leaky_relu_backward(dy, x, alpha: float = 0.01, *, backend: str | None = None):
    """``dy`` where ``x > 0``, else ``alpha * dy`` (also at ``x == 0``)."""
    return _unary_backward("leaky_relu_backward", dy, x, backend, check_scalar(alpha, "alpha"))


def _check_prelu_alpha(alpha, x):
    """alpha as an array of x's dtype, shape () or (1,) (one slope) or (D,), C-contiguous,
    where x lives; a number (shape ()) may be given on the host for a GPU x."""
    alpha = as_float_array(alpha, "alpha")
    on_gpu, x_on_gpu = is_device_array(alpha), is_device_array(x)
    if on_gpu and not x_on_gpu:
        raise TypeError(
            "alpha is a GPU array but x is in host memory: pass both on the GPU, or copy "
            "alpha to the host with alpha.copy_to_host()"
        )
    if x_on_gpu and not on_gpu and alpha.ndim > 0:
        # NOTE: one number goes with the launch (as leaky_relu's alpha does); an array
        # would be a host-to-device copy at every call, which nnlib never does implicitly.
        raise TypeError(
            f"alpha of shape {tuple(alpha.shape)} is in host memory but x is a GPU array: "
            "copy alpha to the GPU once (numba.cuda.to_device(alpha)) and pass that"
        )
    if np.dtype(alpha.dtype) != np.dtype(x.dtype):
        if on_gpu:
            raise TypeError(
                f"alpha must have the dtype of x, {np.dtype(x.dtype)}; got "
                f"{np.dtype(alpha.dtype)}. Make alpha with x's dtype, e.g. "
                f"numba.cuda.to_device(alpha_host.astype(np.{np.dtype(x.dtype)}))"
            )
        alpha = alpha.astype(x.dtype)
    elif not on_gpu:
        alpha = np.asarray(alpha, order="C")  # NOTE: keeps a 0-d alpha 0-d
    if alpha.ndim == 0 or tuple(alpha.shape) == (1,):
        return alpha
    # NOTE: tuple(): the CUDA simulator's GPU arrays reject a negative index of their shape
    features = tuple(x.shape)[-1] if x.ndim else None
    if alpha.ndim != 1 or alpha.shape[0] != features:
        raise ValueError(
            "alpha must be a single number (shape () or (1,)) or one per feature, shape "
            f"(D,) with D = x.shape[-1] = {features}; got shape {tuple(alpha.shape)}"
        )
    return alpha


def prelu(x, alpha, *, backend: str | None = None):
    """Parametric ReLU: ``x`` where ``x > 0``, else ``alpha * x``, with a learnable alpha.

    Parameters
    ----------
    x : array (..., D)
    alpha : float or array of shape (), (1,) or (D,)
        one slope for everything (shape () or, as PyTorch's ``PReLU(num_parameters=1)``,
        (1,)), or one per feature (the last axis of ``x``). Cast to the dtype of ``x``;
        a number may be given for a GPU ``x``, an array must live where ``x`` lives.
    """
    x = as_float_array(x, "x")
    alpha = _check_prelu_alpha(alpha, x)
    return _impl("prelu", backend, x)(x, alpha)


def prelu_backward(dy, x, alpha, *, backend: str | None = None):
    """Gradients of PReLU: returns ``(dx, dalpha)``.

    ``dx`` (..., D) is ``dy`` where ``x > 0`` else ``alpha * dy``; ``dalpha`` has the
    shape of ``alpha`` and sums ``dy * x`` over the elements where ``x <= 0`` (per feature
    when ``alpha`` has shape (D,)).
    """
    x = as_float_array(x, "x")
    dy = check_like(dy, x)
    alpha = _check_prelu_alpha(alpha, x)
    return _impl("prelu_backward", backend, x)(dy, x, alpha)


def elu(x, alpha: float = 1.0, *, backend: str | None = None):
    """Exponential linear unit: ``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    return _unary("elu", x, backend, check_scalar(alpha, "alpha"))


def elu_backward(dy, x, alpha: float = 1.0, *, backend: str | None = None):
    """``dy`` where ``x > 0``, else ``dy * alpha * exp(x)`` (``alpha * dy`` at 0)."""
    return _unary_backward("elu_backward", dy, x, backend, check_scalar(alpha, "alpha"))


# ------------------------------------------------------------------------- S-shaped


def sigmoid(x, *, backend: str | None = None):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, computed without overflow for any x."""
    return _unary("sigmoid", x, backend)


def sigmoid_backward(dy, x, *, backend: str | None = None):
    """``dy * s * (1 - s)`` with ``s = sigmoid(x)``."""
    return _unary_backward("sigmoid_backward", dy, x, backend)


def tanh(x, *, backend: str | None = None):
    """Hyperbolic tangent, elementwise. ``x``: (...) -> (...)."""
    return _unary("tanh", x, backend)


def tanh_backward(dy, x, *, backend: str | None = None):
    """``dy * (1 - tanh(x)**2)``."""
    return _unary_backward("tanh_backward", dy, x, backend)


# ------------------------------------------------------------------------- smooth ReLUs


def gelu(x, *, backend: str | None = None):
    """Gaussian error linear unit (exact): ``x * Phi(x)``, Phi the normal CDF."""
    return _unary("gelu", x, backend)


def gelu_backward(dy, x, *, backend: str | None = None):
    """``dy * (Phi(x) + x * phi(x))``, phi the standard normal density."""
    return _unary_backward("gelu_backward", dy, x, backend)


def silu(x, *, backend: str | None = None):
    """Sigmoid linear unit (swish): ``x * sigmoid(x)``."""
    return _unary("silu", x, backend)


def silu_backward(dy, x, *, backend: str | None = None):
    """``dy * s * (1 + x * (1 - s))`` with ``s = sigmoid(x)``."""
    return _unary_backward("silu_backward", dy, x, backend)


# ------------------------------------------------------------------------- softmax


def softmax(x, axis: int = -1, *, backend: str | None = None):
    """Softmax along ``axis``: ``exp(x - max) / sum(exp(x - max))``.

    ``x``: (..., C, ...) -> same shape; every slice along ``axis`` sums to 1.
    Stable for logits of any magnitude (the max is subtracted first).
    """
    return _unary("softmax", x, backend, axis=axis)


def softmax_backward(dy, x, axis: int = -1, *, backend: str | None = None):
    """``y * (dy - sum(dy * y, axis))`` with ``y = softmax(x, axis)``."""
    return _unary_backward("softmax_backward", dy, x, backend, axis=axis)


def log_softmax(x, axis: int = -1, *, backend: str | None = None):
    """``log(softmax(x, axis))`` computed as ``x - max - log(sum(exp(x - max)))``."""
    return _unary("log_softmax", x, backend, axis=axis)


def log_softmax_backward(dy, x, axis: int = -1, *, backend: str | None = None):
    """``dy - softmax(x, axis) * sum(dy, axis)``."""
    return _unary_backward("log_softmax_backward", dy, x, backend, axis=axis)


# ------------------------------------------------------------------------- batch norm


def _check_feature_vector(v, name, x, *, cast=True):
    """``v`` as a (D,) array of x's dtype where x lives (D = x.shape[1]); ``cast``: a host
    array of another float dtype is converted (a copy), else refused."""
    v = as_float_array(v, name)
    on_gpu = is_device_array(x)
    if is_device_array(v) != on_gpu:
        if on_gpu:  # NOTE: nnlib never copies to the GPU implicitly
            raise TypeError(
                f"{name} is in host memory but x is a GPU array: copy {name} to the GPU once "
                f"(numba.cuda.to_device({name})) and pass that"
            )
        raise TypeError(
            f"{name} is a GPU array but x is in host memory: pass both on the GPU, or copy "
            f"{name} to the host with {name}.copy_to_host()"
        )
    d = x.shape[1]
    if tuple(v.shape) != (d,):
        raise ValueError(
            f"{name} must have shape (D,) = ({d},), one value per feature of x (shape "
            f"{tuple(x.shape)}); got shape {tuple(v.shape)}"
        )
    if np.dtype(v.dtype) != np.dtype(x.dtype):
        if on_gpu or not cast:
            raise TypeError(
                f"{name} must have the dtype of x, {np.dtype(x.dtype)}; got "
                f"{np.dtype(v.dtype)}. Make it with x's dtype (.astype(np.{np.dtype(x.dtype)}))"
            )
        v = v.astype(x.dtype)
    return v


def _check_batch_norm(x, gamma, running_mean, running_var, training, eps, what):
    """The checks shared by :func:`batch_norm` and :func:`batch_norm_backward`."""
    x = as_float_array(x, "x")
    if x.ndim != 2:
        raise ValueError(
            f"{what}: x must be 2-D, shape (N, D) (N examples, D features); got shape "
            f"{tuple(x.shape)}"
        )
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{what}: training must be True or False; got {training!r}")
    eps = check_scalar(eps, "eps", positive=True)
    gamma = _check_feature_vector(gamma, "gamma", x)
    if (running_mean is None) != (running_var is None):
        raise ValueError(
            f"{what}: give both running_mean and running_var, or neither; got only "
            f"{'running_mean' if running_var is None else 'running_var'}"
        )
    if running_mean is not None:
        running_mean = _check_feature_vector(running_mean, "running_mean", x, cast=False)
        running_var = _check_feature_vector(running_var, "running_var", x, cast=False)
    n = x.shape[0]
    if training and n < 2:
        raise ValueError(
            f"{what}: training mode needs a batch of at least 2 examples to compute the "
            f"variance of each feature; got a batch of {n}. Pass a larger batch, or use "
            "training=False (with running_mean and running_var) for a single example"
        )
    if not training and running_mean is None:
        raise ValueError(
            f"{what}: evaluation mode (training=False) normalizes with running_mean and "
            "running_var; pass them (or use training=True to use the batch's statistics)"
        )
    return x, gamma, running_mean, running_var, bool(training), eps


def batch_norm(
    x,
    gamma,
    beta,
    *,
    running_mean=None,
    running_var=None,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
    backend: str | None = None,
):
    """Batch normalization of each feature over the batch (PyTorch's definitions).

    ``y = gamma * (x - mean) / sqrt(var + eps) + beta``, where in training mode ``mean``
    and ``var`` are the batch's, per feature, with the biased variance (divided by N),
    and in evaluation mode the running statistics.

    Parameters
    ----------
    x : array (N, D)
        N >= 2 in training mode.
    gamma, beta : arrays (D,)
        the scale and the shift; cast to the dtype of ``x`` (on the host).
    running_mean, running_var : arrays (D,) of x's dtype, or None
        in training mode, if given, updated in place:
        ``running = (1 - momentum) * running + momentum * batch_stat``, with the
        unbiased variance (N / (N - 1)) in ``running_var``. Required in evaluation mode,
        where they normalize and stay unchanged. GPU arrays for a GPU ``x``.
    training : bool
    momentum : float in [0, 1]
    eps : float > 0, added to the variance

    Returns ``y`` (N, D), with the dtype of ``x``.
    """
    x, gamma, running_mean, running_var, training, eps = _check_batch_norm(
        x, gamma, running_mean, running_var, training, eps, "batch_norm"
    )
    beta = _check_feature_vector(beta, "beta", x)
    momentum = check_scalar(momentum, "momentum")
    if not 0 <= momentum <= 1:
        raise ValueError(f"batch_norm: momentum must be in [0, 1]; got {momentum}")
    if training and running_mean is not None and not is_device_array(running_mean):
        for name, v in (("running_mean", running_mean), ("running_var", running_var)):
            if not v.flags.writeable:
                raise ValueError(
                    f"batch_norm: {name} is read-only, but training mode updates it in "
                    "place; pass a writeable copy (np.array(...)) or training=False"
                )
    op = _impl("batch_norm", backend, x)
    y, _, _ = op(x, gamma, beta, running_mean, running_var, momentum, eps, int(training))
    return y


def batch_norm_backward(
    dy,
    x,
    gamma,
    *,
    running_mean=None,
    running_var=None,
    training: bool = True,
    eps: float = 1e-5,
    backend: str | None = None,
):
    """Gradients of :func:`batch_norm`: returns ``(dx, dgamma, dbeta)``.

    With ``xhat = (x - mean) * inv_std`` and ``dxhat = dy * gamma``:
    ``dgamma = sum_n dy * xhat`` and ``dbeta = sum_n dy`` (D,); in training mode (the
    statistics depend on every example) the compact form
    ``dx = inv_std / N * (N * dxhat - sum_n dxhat - xhat * sum_n dxhat * xhat)`` (N, D);
    in evaluation mode ``dx = dxhat * inv_std``.

    ``dy`` (N, D) has the shape and dtype of ``x``; the other arguments are those of the
    forward call. In training mode the batch statistics are computed again from ``x``
    (a layer keeps them from its forward pass instead: :class:`nnlib.BatchNorm1d`);
    ``running_mean``/``running_var`` are read (evaluation mode) and never changed.
    """
    x, gamma, running_mean, running_var, training, eps = _check_batch_norm(
        x, gamma, running_mean, running_var, training, eps, "batch_norm_backward"
    )
    dy = check_like(dy, x)
    # The statistics the forward pass normalized with, from the forward op (its y is not
    # used; gamma stands in for beta). NOTE: no running statistics go to it in training
    # mode, so nothing is updated here.
    stats = (None, None) if training else (running_mean, running_var)
    _, mean, inv_std = _impl("batch_norm", backend, x)(
        x, gamma, gamma, *stats, 0.0, eps, int(training)
    )
    return _impl("batch_norm_backward", backend, x)(dy, x, gamma, mean, inv_std, int(training))


# ------------------------------------------------------------------------- convolution
# Images are NCHW, (N, C, H, W), as in PyTorch; the math is in nnlib/ops/conv.py.


def _check_images(x, name: str, what: str):
    """``x`` as a float (N, C, H, W) batch of images, or an error saying how to get one."""
    x = as_float_array(x, name)
    if x.ndim != 4:
        hint = (
            f"; for one image (C, H, W) pass {name}[None]"
            if x.ndim == 3
            else f"; flat rows (N, D) become images with {name}.reshape(N, C, H, W)"
            if x.ndim == 2
            else ""
        )
        raise ValueError(
            f"{what}: {name} must be a batch of images, shape (N, C, H, W) (NCHW, as "
            f"PyTorch); got shape {tuple(x.shape)}{hint}"
        )
    return x


def _check_int(value, name: str, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{what}: {name} must be an int >= {low}; got {value!r}")
    return int(value)


def _same_place_and_dtype(a, name: str, x, what: str):
    """``a`` (a host or GPU array) where ``x`` lives, with its dtype (host arrays cast)."""
    a = as_float_array(a, name)
    if is_device_array(a) != is_device_array(x):
        where = "on the GPU" if is_device_array(x) else "in host memory"
        raise TypeError(
            f"{what}: {name} must live where x lives ({where}); copy it there first "
            "(numba.cuda.to_device(...) or .copy_to_host())"
        )
    if np.dtype(a.dtype) != np.dtype(x.dtype):
        if is_device_array(a):
            raise TypeError(
                f"{what}: {name} must have the dtype of x, {np.dtype(x.dtype)}; got "
                f"{np.dtype(a.dtype)}. Make it with .astype(np.{np.dtype(x.dtype)})"
            )
        a = a.astype(x.dtype)
    return a


def _padding(padding, KH: int, KW: int, what: str) -> int:
    """The zeros added on each side: an int >= 0, "valid" (0) or "same" (odd kernels)."""
    if padding == "valid":
        return 0
    if padding == "same":
        if KH % 2 == 0 or KW % 2 == 0 or KH != KW:
            raise ValueError(
                f"{what}: padding='same' needs a square kernel of odd size ((k - 1) // 2 "
                f"zeros each side); got a {KH}x{KW} kernel. Give padding as an int instead"
            )
        return (KH - 1) // 2
    if isinstance(padding, str):
        raise ValueError(f"{what}: padding must be 'valid', 'same' or an int >= 0; got {padding!r}")
    return _check_int(padding, "padding", what, 0)


def _check_conv(x, W, stride, padding, what):
    """The checks shared by :func:`conv2d` and :func:`conv2d_backward`."""
    x = _check_images(x, "x", what)
    W = as_float_array(W, "W")
    if W.ndim != 4:
        raise ValueError(
            f"{what}: W must be 4-D, shape (F, C, KH, KW) (out channels, in channels, "
            f"kernel height, kernel width: PyTorch's OIHW); got shape {tuple(W.shape)}"
        )
    W = _same_place_and_dtype(W, "W", x, what)
    F, C, KH, KW = (int(d) for d in W.shape)
    N, Cx, H, Wd = (int(d) for d in x.shape)
    if C != Cx:
        raise ValueError(
            f"{what}: W has {C} input channels (W.shape[1]) but x has {Cx} (x.shape[1], "
            f"x of shape {tuple(x.shape)}): make W of shape ({F}, {Cx}, {KH}, {KW})"
        )
    stride = _check_int(stride, "stride", what, 1)
    pad = _padding(padding, KH, KW, what)
    if KH > H + 2 * pad or KW > Wd + 2 * pad:
        raise ValueError(
            f"{what}: the {KH}x{KW} kernel is larger than the padded input, "
            f"{H + 2 * pad}x{Wd + 2 * pad} ({H}x{Wd} images with padding={pad}): use a "
            "smaller kernel, more padding or larger images"
        )
    out = (N, F, (H + 2 * pad - KH) // stride + 1, (Wd + 2 * pad - KW) // stride + 1)
    return x, W, stride, pad, out


def conv2d(x, W, b=None, *, stride: int = 1, padding=0, backend: str | None = None):
    """2-D convolution (cross-correlation, as every deep-learning library):
    ``y[n, f, i, j] = b[f] + sum_{c,u,v} W[f, c, u, v] * xpad[n, c, i*s + u, j*s + v]``.

    Parameters
    ----------
    x : array (N, C, H, W)
        a batch of images (NCHW).
    W : array (F, C, KH, KW)
        F filters over the C channels (PyTorch's OIHW layout).
    b : array (F,) or None
        the bias of each output channel; None: no bias.
    stride : int >= 1
    padding : int >= 0, "valid" (0) or "same" ((k - 1) // 2 zeros on each side, odd k)

    Returns ``y`` (N, F, OH, OW), ``OH = (H + 2 * padding - KH) // stride + 1`` (and
    ``OW`` likewise), with the dtype of ``x``. W and b (host arrays) are cast to it.
    """
    x, W, stride, pad, out = _check_conv(x, W, stride, padding, "conv2d")
    F = out[1]
    if b is None:
        from ._arrays import zeros_like_on

        b = zeros_like_on(x, (F,), np.dtype(x.dtype))
    b = _same_place_and_dtype(b, "b", x, "conv2d")
    if tuple(b.shape) != (F,):
        raise ValueError(
            f"conv2d: b must have shape (F,) = ({F},), one bias per filter of W; got shape "
            f"{tuple(b.shape)}"
        )
    return _impl("conv2d_forward", backend, x)(x, W, b, stride, pad, 0)


def conv2d_backward(dy, x, W, *, stride: int = 1, padding=0, backend: str | None = None):
    """Gradients of :func:`conv2d`: returns ``(dx, dW, db)``.

    ``dy`` (N, F, OH, OW) is the gradient with respect to ``y``; ``x``, ``W``, ``stride``
    and ``padding`` are those of the forward call. ``db = sum_{n,i,j} dy`` (F,),
    ``dW[f, c, u, v] = sum_{n,i,j} dy[n, f, i, j] * xpad[n, c, i*s + u, j*s + v]``
    (F, C, KH, KW) and ``dx`` (N, C, H, W) collects from every window that covers each
    pixel ``dy[n, f, i, j] * W[f, c, u, v]`` (the transposed convolution).
    """
    x, W, stride, pad, out = _check_conv(x, W, stride, padding, "conv2d_backward")
    dy = as_float_array(dy, "dy")
    if tuple(dy.shape) != out:
        raise ValueError(
            f"conv2d_backward: dy must have the shape of conv2d's output, (N, F, OH, OW) = "
            f"{out} for x of shape {tuple(x.shape)}, W of shape {tuple(W.shape)}, "
            f"stride={stride}, padding={pad}; got {tuple(dy.shape)}"
        )
    dy = _same_place_and_dtype(dy, "dy", x, "conv2d_backward")
    # NOTE: without an activation the op never reads y: dy stands in for it.
    return _impl("conv2d_backward", backend, x)(dy, x, W, dy, stride, pad, 0, 1)


def _check_pool(x, pool_size, stride, what):
    x = _check_images(x, "x", what)
    k = _check_int(pool_size, "pool_size", what, 1)
    s = k if stride is None else _check_int(stride, "stride", what, 1)
    H, Wd = int(x.shape[2]), int(x.shape[3])
    for axis, size in (("H", H), ("W", Wd)):
        if size < k:
            raise ValueError(
                f"{what}: the {k}x{k} pool window is larger than the input, {H}x{Wd} "
                f"(x of shape {tuple(x.shape)}): use a smaller pool_size"
            )
        if (size - k) % s:
            fit = size - (size - k) % s
            raise ValueError(
                f"{what}: {k}x{k} windows at stride {s} do not tile {axis}={size} "
                f"(x of shape {tuple(x.shape)}): (size - pool_size) % stride = "
                f"{(size - k) % s}, so the last {(size - k) % s} rows/columns would be "
                f"left out. Crop or pad the images to {axis}={fit} or {fit + s}, or "
                "choose a pool_size and stride that tile them"
            )
    return x, k, s


def max_pool2d(x, pool_size: int = 2, stride: int | None = None, *, backend: str | None = None):
    """Max pooling: ``y[n, c, i, j] = max_{u,v < k} x[n, c, i*s + u, j*s + v]``.

    ``x`` (N, C, H, W) -> ``y`` (N, C, OH, OW), ``OH = (H - k) // s + 1``; ``pool_size``
    k, ``stride`` s (default k). The windows must tile the input: ``(H - k) % s == 0``
    (and for W), else a ValueError says how to crop or pad.
    """
    x, k, s = _check_pool(x, pool_size, stride, "max_pool2d")
    y, _ = _impl("maxpool2d_forward", backend, x)(x, k, s)
    return y


def max_pool2d_backward(
    dy, x, pool_size: int = 2, stride: int | None = None, *, backend: str | None = None
):
    """Gradient of :func:`max_pool2d`: ``dy`` (N, C, OH, OW) goes to the maximum of each
    window (the first one in row-major order on ties), 0 elsewhere; returns ``dx``
    (N, C, H, W). The maxima are found again from ``x``."""
    x, k, s = _check_pool(x, pool_size, stride, "max_pool2d_backward")
    op = _impl("maxpool2d_forward", backend, x)
    _, argmax = op(x, k, s)
    dy = as_float_array(dy, "dy")
    if tuple(dy.shape) != tuple(argmax.shape):
        raise ValueError(
            f"max_pool2d_backward: dy must have the shape of max_pool2d's output, "
            f"{tuple(argmax.shape)} for x of shape {tuple(x.shape)}, pool_size={k}, "
            f"stride={s}; got {tuple(dy.shape)}"
        )
    dy = _same_place_and_dtype(dy, "dy", x, "max_pool2d_backward")
    return _impl("maxpool2d_backward", backend, x)(dy, argmax, tuple(x.shape), k, s)
