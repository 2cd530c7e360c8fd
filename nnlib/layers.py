"""Layers. Each owns its ``forward`` and ``backward``, so the chain rule stays visible:

* ``forward(x) -> y`` computes the output and keeps what the backward pass needs;
* ``backward(dy) -> dx`` takes the gradient of the loss with respect to ``y`` and returns
  the one with respect to ``x``, filling ``layer.grads`` on the way.

Parameters and their gradients are dicts keyed by name: ``dense.params["W"]``,
``dense.grads["W"]``. Shapes: N batch, D input features, H output features; images are
(N, C, H, W) (channels first, as PyTorch), and ``Flatten`` turns them into rows.

A layer is built from the shape of one input example, ``in_features``: the width D (an
int) for rows, the tuple (C, H, W) for images (None while unknown), and returns the shape
of one output example.

The math is not here: every layer calls an op by name (through the functional API or
:func:`nnlib._backend.dispatch`), and the op runs on the layer's backend.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import functional as F
from . import init as initializers
from ._backend import dispatch
from ._validate import is_device_array
from .ops.dense import ACTIVATIONS
from .ops.dropout import device_rng, device_uniform
from .params import Slots

__all__ = [
    "ELU",
    "BatchNorm1d",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "PReLU",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
]


def _resolved(layer, op: str):
    """The implementation of ``op`` on ``layer.backend``.

    SPEEDTIP: once the backend is fixed (``Sequential`` sets it), the look-up is done once
    and kept, instead of resolving the backend again at every call of a training step.
    """
    if layer.backend is None:  # follows use_backend() and NNLIB_BACKEND at each call
        return dispatch(op, None)
    cache = layer.__dict__.setdefault("_resolved_ops", {})
    fn = cache.get((op, layer.backend))
    if fn is None:
        fn = cache[op, layer.backend] = dispatch(op, layer.backend)
    return fn


def _host(a) -> bool:
    # SPEEDTIP: a type check first; the GPU-array check is the slower one.
    return type(a) is np.ndarray or not is_device_array(a)


class NotBuiltError(RuntimeError):
    """A layer or model was used before its parameters exist."""


class Layer:
    """Base class. Subclasses fill ``params``/``grads`` in :meth:`build`.

    ``params`` and ``grads`` are :class:`nnlib.params.Slots`: once built, assigning an
    array to a name copies its values into the layer's own array (its shape must match),
    and assigning a whole dict does so for each name. Inside a model those arrays are
    views of the model's one flat parameter and gradient buffers.

    Every subclass is registered by its class name (:data:`LAYERS`), and describes itself
    with :meth:`get_config`: ``type(layer)(**layer.get_config())`` builds the same
    layer, which is how a saved model is rebuilt.
    """

    #: the backend the layer's ops run on (None: resolved at each call); set by Sequential
    backend: str | None = None
    #: True: the output has the shape of the input (elementwise layers, Dropout); a layer
    #: that changes it (Conv2D, MaxPool2D, Flatten) says False and keeps ``input_shape``,
    #: the shape of one input example once known (None before), from which a model learns
    #: the shape of its input
    keeps_shape: bool = True
    input_shape: tuple | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            LAYERS[cls.__name__] = cls

    def __init__(self):
        self._params, self._grads = Slots(), Slots()
        self._buffers = Slots()
        self.training = True
        self.built = True  # layers without parameters are always built

    @property
    def params(self) -> Slots:
        """The parameters by name, e.g. ``{"W": (D, H), "b": (H,)}``."""
        return self._params

    @params.setter
    def params(self, values: dict) -> None:
        _fill(self._params, values, f"{self!r}.params")

    @property
    def grads(self) -> Slots:
        """The gradients of the last backward pass, named and shaped like ``params``."""
        return self._grads

    @grads.setter
    def grads(self, values: dict) -> None:
        _fill(self._grads, values, f"{self!r}.grads")

    @property
    def buffers(self) -> Slots:
        """State that is not learned but is saved with the model, by name (e.g.
        BatchNorm1d's ``{"running_mean": (D,), "running_var": (D,)}``). The optimizer never
        sees it; the model moves it to its backend with the parameters."""
        return self._buffers

    @buffers.setter
    def buffers(self, values: dict) -> None:
        _fill(self._buffers, values, f"{self!r}.buffers")

    def get_config(self) -> dict:
        """The constructor arguments that rebuild this layer (JSON-able values)."""
        if type(self).__init__ is not Layer.__init__:
            raise TypeError(
                f"{type(self).__name__} takes constructor arguments but does not describe "
                "itself: define get_config() to return them (a dict), so that "
                f"{type(self).__name__}(**layer.get_config()) rebuilds it"
            )
        return {}

    # ``in_features`` is the width of the input (None if unknown); returns the output width.
    def build(self, in_features: int | None, rng: np.random.Generator, dtype) -> int | None:
        self.built = True
        return in_features

    def output_features(self, in_features: int | None) -> int | None:
        """The output width for an input of width ``in_features`` (None: unknown)."""
        return in_features

    def parameter_shapes(self, in_features: int | None) -> dict[str, tuple]:
        """The shapes of the parameters :meth:`build` makes for inputs ``in_features``
        wide, by name (known before anything is allocated)."""
        return {}

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def _kept(self, name: str):
        """What ``forward`` kept for ``backward`` (``x``, ``y``, ``mask``), or a clear error
        when ``forward`` has not run."""
        try:
            return self.__dict__[name]
        except KeyError:
            raise RuntimeError(
                f"{self!r}.backward was called before forward: run forward(x) first (backward "
                "uses what forward kept)"
            ) from None

    def __call__(self, x):
        return self.forward(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


#: every Layer subclass by class name (filled as they are defined), for loading
LAYERS: dict[str, type[Layer]] = {}


def layer_from_config(spec: dict) -> Layer:
    """The layer ``{"class": name, "config": {...}}`` describes (see :meth:`Layer.get_config`)."""
    cls = LAYERS.get(spec["class"])
    if cls is None:
        raise ValueError(f"unknown layer class {spec['class']!r}; nnlib knows {sorted(LAYERS)}")
    return cls(**spec["config"])


def _refuse_images(layer, in_features) -> None:
    """Layers of rows (Dense, BatchNorm1d) built on images: say to flatten them first."""
    if isinstance(in_features, tuple):
        raise ValueError(
            f"{layer!r} takes rows (N, D), but its input is images (N, C, H, W) = (N, "
            f"{', '.join(map(str, in_features))}): put nl.Flatten() before it"
        )


def _fill(slots: Slots, values: dict, what: str) -> None:
    """Put ``values`` (name -> array) into ``slots``: all new names (while building) or
    exactly the names it has (copied into the arrays there)."""
    if slots and set(values) != set(slots):
        raise ValueError(
            f"{what} has the names {sorted(slots)}; got {sorted(values)}. Assign each array "
            "by name (layer.params['W'] = ...): a built layer keeps its parameters"
        )
    for name, value in values.items():
        slots[name] = value


# ---------------------------------------------------------------------------- Dense


class Dense(Layer):
    """Fully connected layer: ``y = act(x @ W + b)``.

    Parameters
    ----------
    in_features : int
        D, the width of the input. ``Dense(H)`` (one number) leaves D to be inferred
        when the model is built.
    out_features : int
        H, the width of the output.
    init : str or callable
        initializer of ``W`` (D, H): a name of :data:`nnlib.init.INITIALIZERS`
        (``"he"``, ``"xavier"``, ...) or ``f(shape, dtype=, seed=)``.
    bias_init : str or callable
        initializer of ``b`` (H,), zeros by default.
    activation : None or "relu"
        an activation fused into the same kernel (faster than ``Dense`` + ``ReLU``).
    seed : int, Generator or None
        build the parameters now from this seed. Without it they are built with the
        model (``Sequential.build`` or ``fit``), from the model's seed.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int | None = None,
        *,
        init="xavier",
        bias_init="zeros",
        activation: str | None = None,
        seed=None,
        dtype=np.float32,
    ):
        super().__init__()
        if out_features is None:
            in_features, out_features = None, in_features
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0
            ):
                raise ValueError(f"Dense: {name} must be a positive int; got {value!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"Dense: activation must be one of {list(ACTIVATIONS)}; got {activation!r}"
            )
        self.in_features, self.out_features = in_features, out_features
        self.init, self.bias_init = initializers.get(init), initializers.get(bias_init)
        self.init_name = init if isinstance(init, str) else getattr(init, "__name__", "custom")
        self.activation, self._act = activation, ACTIVATIONS[activation]
        self.built = False
        if seed is not None and in_features is not None:
            self.build(in_features, initializers.rng_from(seed), dtype)

    def output_features(self, in_features):
        return self.out_features

    def parameter_shapes(self, in_features):
        d = self.in_features if self.in_features is not None else in_features
        return {"W": (d, self.out_features), "b": (self.out_features,)}

    def get_config(self) -> dict:
        # NOTE: a custom initializer (a callable) is saved as "xavier": it only matters
        # for building, and a loaded model's values replace what it drew.
        init = self.init_name if self.init_name in initializers.INITIALIZERS else "xavier"
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "init": init,
            "activation": self.activation,
        }

    def build(self, in_features, rng, dtype):
        if self.built:
            return self.out_features
        _refuse_images(self, in_features)
        if in_features is None:
            in_features = self.in_features
        if in_features is None:
            raise NotBuiltError(
                f"{self!r}: the input width is unknown; give Dense(in_features, "
                "out_features) or build the model with model.build(input_dim)"
            )
        if self.in_features is not None and self.in_features != in_features:
            raise ValueError(
                f"{self!r} expects {self.in_features} input features; got {in_features}"
            )
        self.in_features = in_features
        shapes = self.parameter_shapes(in_features)
        self.params = {
            "W": np.ascontiguousarray(self.init(shapes["W"], dtype=dtype, seed=rng), dtype),
            "b": np.ascontiguousarray(self.bias_init(shapes["b"], dtype=dtype, seed=rng)),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.built = True
        return self.out_features

    def forward(self, x):
        """``x`` (N, D) -> ``y`` (N, H)."""
        if not self.built:
            raise NotBuiltError(f"{self!r} is not built: build its model first")
        W = self.params["W"]
        if x.ndim != 2 or x.shape[1] != W.shape[0]:
            raise ValueError(
                f"{self!r}: input must have shape (N, {W.shape[0]}); got {tuple(x.shape)}"
            )
        if np.dtype(x.dtype) != np.dtype(W.dtype):
            raise TypeError(f"{self!r}: input must have dtype {W.dtype}; got {x.dtype}")
        if _host(x):  # the kernels take C-contiguous rows (GPU arrays are)
            x = np.ascontiguousarray(x)
        self.x = x
        self.y = _resolved(self, "dense_forward")(x, W, self.params["b"], self._act)
        return self.y

    def backward(self, dy, *, need_dx: bool = True):
        """``dy`` (N, H) -> ``dx`` (N, D); fills ``grads["W"]`` (D, H), ``grads["b"]`` (H,).

        ``need_dx=False`` skips the product that computes ``dx`` and returns None: the
        first layer of a model does not need the gradient of its input (the data).
        """
        y = self._kept("y")
        if not (isinstance(dy, np.ndarray) or is_device_array(dy)):
            raise TypeError(f"{self!r}: dy must be an array; got {type(dy).__name__}")
        if tuple(dy.shape) != tuple(y.shape):
            raise ValueError(f"{self!r}: dy must have shape {self.y.shape}; got {dy.shape}")
        if np.dtype(dy.dtype) != np.dtype(self.y.dtype):
            raise TypeError(f"{self!r}: dy must have dtype {self.y.dtype}; got {dy.dtype}")
        host = _host(dy)
        if host:
            dy = np.ascontiguousarray(dy)
        W, gW, gb = self.params["W"], self.grads.get("W"), self.grads.get("b")
        # SPEEDTIP: the gradients are written into the existing arrays when they fit (same
        # shape, dtype and place as the data): no new arrays every step.
        fits = (
            gW is not None
            and gb is not None
            and tuple(gW.shape) == tuple(W.shape)
            and tuple(gb.shape) == (W.shape[1],)
            and np.dtype(gW.dtype) == np.dtype(dy.dtype) == np.dtype(gb.dtype)
            and _host(gW) == host == _host(gb)
        )
        dx, dW, db = _resolved(self, "dense_backward")(
            dy, self.x, W, self.y, self._act, int(need_dx), (gW, gb) if fits else None
        )
        self.grads["W"], self.grads["b"] = dW, db
        return dx

    def __repr__(self) -> str:
        act = f", activation={self.activation!r}" if self.activation else ""
        return f"Dense({self.in_features}, {self.out_features}, init={self.init_name!r}{act})"


# ---------------------------------------------------------------------------- Flatten


class Flatten(Layer):
    """Images to rows: ``x`` (N, C, H, W) -> ``y`` (N, C*H*W), in C order (y[n, (c*H + i)*W
    + j] = x[n, c, i, j]); the backward pass reshapes the gradient back. Rows (N, D) pass
    through unchanged. Both directions are views: nothing is copied on the host.

    ``input_shape``: (C, H, W), the shape of one input image, if the model should know
    it before it is built (it is learnt at build otherwise, and saved with the model).
    """

    keeps_shape = False

    def __init__(self, input_shape=None):
        super().__init__()
        if input_shape is not None:
            if not (
                isinstance(input_shape, (tuple, list))
                and len(input_shape) == 3
                and all(
                    isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0
                    for d in input_shape
                )
            ):
                raise ValueError(
                    f"Flatten: input_shape must be (C, H, W), three positive ints; got "
                    f"{input_shape!r}"
                )
            input_shape = tuple(int(d) for d in input_shape)
        self.input_shape = input_shape

    def get_config(self) -> dict:
        return {"input_shape": None if self.input_shape is None else list(self.input_shape)}

    def output_features(self, in_features):
        if isinstance(in_features, tuple):
            return math.prod(in_features)
        return in_features

    def build(self, in_features, rng, dtype):
        if in_features is None:
            in_features = self.input_shape
        elif self.input_shape is not None and in_features != self.input_shape:
            raise ValueError(f"{self!r} expects input images {self.input_shape}; got {in_features}")
        elif isinstance(in_features, tuple):
            self.input_shape = in_features
        return self.output_features(in_features)

    def forward(self, x):
        if x.ndim < 2:
            raise ValueError(
                f"{self!r}: input must be a batch (N, ...) with at least 2 dimensions; got "
                f"shape {tuple(x.shape)}"
            )
        self.x_shape = tuple(x.shape)
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))

    def backward(self, dy):
        shape = self._kept("x_shape")
        if tuple(dy.shape) != (shape[0], math.prod(shape[1:])):
            raise ValueError(
                f"{self!r}: dy must have shape {(shape[0], math.prod(shape[1:]))} (the output "
                f"of the last forward); got {tuple(dy.shape)}"
            )
        return dy.reshape(shape)

    def __repr__(self) -> str:
        return (
            "Flatten()" if self.input_shape is None else f"Flatten(input_shape={self.input_shape})"
        )


# ---------------------------------------------------------------------------- Conv2D


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{what} must be a positive int; got {value!r}")
    return int(value)


def _image_shape(value, what: str):
    """``value`` as (C, H, W), three positive ints, or None."""
    if value is None:
        return None
    if not (isinstance(value, (tuple, list)) and len(value) == 3):
        raise ValueError(f"{what} must be (C, H, W), three positive ints; got {value!r}")
    return tuple(_positive_int(d, what) for d in value)


def _check_image_input(layer, x, channels, dtype):
    """The checks of an image layer's forward: an (N, C, H, W) array of ``channels``
    channels (None: any) and of ``dtype`` (None: any float)."""
    if not (isinstance(x, np.ndarray) or is_device_array(x)):
        raise TypeError(f"{layer!r}: x must be an array; got {type(x).__name__}")
    if x.ndim != 4:
        hint = (
            ": put the rows back into images first, e.g. x.reshape(-1, C, H, W)"
            if x.ndim == 2
            else (": for one image (C, H, W) pass x[None]" if x.ndim == 3 else "")
        )
        raise ValueError(
            f"{layer!r} expects (N, C, H, W) images (channels first, as PyTorch); got "
            f"shape {tuple(x.shape)}{hint}"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{layer!r} expects images with {channels} channels, (N, {channels}, H, W); got "
            f"shape {tuple(x.shape)} ({x.shape[1]} channels)"
        )
    if dtype is not None and np.dtype(x.dtype) != np.dtype(dtype):
        raise TypeError(
            f"{layer!r}: input must have dtype {np.dtype(dtype)}; got {np.dtype(x.dtype)}. "
            f"Convert it with .astype(np.{np.dtype(dtype)})"
        )
    return np.ascontiguousarray(x) if _host(x) else x


def _check_dy(layer, dy, y):
    if not (isinstance(dy, np.ndarray) or is_device_array(dy)):
        raise TypeError(f"{layer!r}: dy must be an array; got {type(dy).__name__}")
    if tuple(dy.shape) != tuple(y.shape):
        raise ValueError(
            f"{layer!r}: dy must have the shape of the last forward's output, "
            f"{tuple(y.shape)}; got {tuple(dy.shape)}"
        )
    if np.dtype(dy.dtype) != np.dtype(y.dtype):
        raise TypeError(f"{layer!r}: dy must have dtype {y.dtype}; got {dy.dtype}")
    return np.ascontiguousarray(dy) if _host(dy) else dy


class Conv2D(Layer):
    """2-D convolution over (N, C, H, W) images: ``y = act(conv(x, W) + b)``, with
    ``y[n, f, i, j] = b[f] + sum_{c,u,v} W[f, c, u, v] * xpad[n, c, i*s + u, j*s + v]``
    (a cross-correlation, as in every deep-learning library; the math and the kernels
    are in :mod:`nnlib.ops.conv`).

    Parameters ``W`` (F, C, KH, KW) (PyTorch's OIHW) and ``b`` (F,). The output is
    (N, F, OH, OW), ``OH = (H + 2p - KH) // stride + 1`` (and OW likewise).

    Parameters
    ----------
    out_channels : int
        F, the number of filters.
    kernel_size : int or (int, int)
        KH x KW (one int: square).
    in_channels : int or None
        C; None infers it from the input when the model is built.
    stride : int >= 1
    padding : "valid", "same" or int >= 0
        "valid": no padding; "same": (k - 1) // 2 zeros on each side (square kernels of
        odd size k), so the output is ceil(H / stride) x ceil(W / stride); an int: that
        many zeros on each side.
    activation : None or "relu"
        fused into the same kernel (faster than ``Conv2D`` + ``ReLU``).
    init, bias_init : str or callable
        initializers of ``W`` (He by default, fan_in = C * KH * KW) and ``b``.
    seed : int, Generator or None
        build the parameters now (needs ``input_shape``); else with the model.
    input_shape : (C, H, W) or None
        the shape of one input image, if the model should know it before it is built
        (learnt at build otherwise, and saved with the model).
    """

    keeps_shape = False

    def __init__(
        self,
        out_channels: int,
        kernel_size,
        *,
        in_channels: int | None = None,
        stride: int = 1,
        padding="valid",
        activation: str | None = None,
        init="he",
        bias_init="zeros",
        seed=None,
        dtype=np.float32,
        input_shape=None,
    ):
        super().__init__()
        self.out_channels = _positive_int(out_channels, "Conv2D: out_channels")
        if isinstance(kernel_size, (tuple, list)) and len(kernel_size) == 2:
            kh, kw = (_positive_int(k, "Conv2D: kernel_size") for k in kernel_size)
        elif isinstance(kernel_size, (tuple, list)):
            raise ValueError(f"Conv2D: kernel_size must be an int or (kh, kw); got {kernel_size!r}")
        else:
            kh = kw = _positive_int(kernel_size, "Conv2D: kernel_size")
        self.kernel_size = (kh, kw)
        if in_channels is not None:
            in_channels = _positive_int(in_channels, "Conv2D: in_channels")
        self.stride = _positive_int(stride, "Conv2D: stride")
        if padding == "same" and (kh != kw or kh % 2 == 0):
            raise ValueError(
                f"Conv2D: padding='same' needs a square kernel of odd size ((k - 1) // 2 "
                f"zeros each side); got kernel_size {kh}x{kw}. Give padding as an int"
            )
        if padding == "valid":
            self.pad = 0
        elif padding == "same":
            self.pad = (kh - 1) // 2
        elif (
            isinstance(padding, numbers.Integral) and not isinstance(padding, bool) and padding >= 0
        ):
            self.pad = int(padding)
        else:
            raise ValueError(
                f"Conv2D: padding must be 'valid', 'same' or an int >= 0; got {padding!r}"
            )
        self.padding = padding if isinstance(padding, str) else int(padding)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"Conv2D: activation must be one of {list(ACTIVATIONS)}; got {activation!r}"
            )
        self.activation, self._act = activation, ACTIVATIONS[activation]
        self.init, self.bias_init = initializers.get(init), initializers.get(bias_init)
        self.init_name = init if isinstance(init, str) else getattr(init, "__name__", "custom")
        self.bias_init_name = bias_init if isinstance(bias_init, str) else "zeros"
        self.input_shape = _image_shape(input_shape, "Conv2D: input_shape")
        if self.input_shape is not None and in_channels not in (None, self.input_shape[0]):
            raise ValueError(
                f"Conv2D: in_channels={in_channels} disagrees with input_shape "
                f"{self.input_shape} (C = {self.input_shape[0]})"
            )
        self.in_channels = in_channels
        self.built = False
        if seed is not None and self.input_shape is not None:
            self.build(self.input_shape, initializers.rng_from(seed), dtype)

    def _out_shape(self, shape):
        (kh, kw), s, p = self.kernel_size, self.stride, self.pad
        return (
            self.out_channels,
            (shape[1] + 2 * p - kh) // s + 1,
            (shape[2] + 2 * p - kw) // s + 1,
        )

    def output_features(self, in_features):
        shape = in_features if in_features is not None else self.input_shape
        return self._out_shape(shape) if isinstance(shape, tuple) else None

    def parameter_shapes(self, in_features):
        c = self.in_channels
        if c is None and isinstance(in_features, tuple):
            c = in_features[0]
        return {"W": (self.out_channels, c, *self.kernel_size), "b": (self.out_channels,)}

    def get_config(self) -> dict:
        # NOTE: a custom initializer (a callable) is saved as "he": it only matters for
        # building, and a loaded model's values replace what it drew.
        init = self.init_name if self.init_name in initializers.INITIALIZERS else "he"
        bias = self.bias_init_name if self.bias_init_name in initializers.INITIALIZERS else "zeros"
        return {
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "in_channels": self.in_channels,
            "stride": self.stride,
            "padding": self.padding,
            "activation": self.activation,
            "init": init,
            "bias_init": bias,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
        }

    def build(self, in_features, rng, dtype):
        if self.built:
            return self._out_shape(self.input_shape)
        if in_features is None:
            in_features = self.input_shape
        if in_features is None:
            raise NotBuiltError(
                f"{self!r}: the shape of the input images is unknown; build the model with "
                "model.build((C, H, W)), fit it, or give Conv2D(..., input_shape=(C, H, W))"
            )
        if not isinstance(in_features, tuple):
            raise ValueError(
                f"{self!r} takes images (N, C, H, W), but its input is rows of {in_features} "
                "features: give the model images (e.g. X.reshape(-1, 1, 8, 8) for the digits), "
                "or move the layer before any Flatten/Dense"
            )
        shape = _image_shape(in_features, f"{self!r}: the input shape")
        if self.input_shape is not None and shape != self.input_shape:
            raise ValueError(f"{self!r} expects input images {self.input_shape}; got {shape}")
        if self.in_channels is not None and shape[0] != self.in_channels:
            raise ValueError(
                f"{self!r} expects {self.in_channels} input channels, but its input is "
                f"images (C, H, W) = {shape}: make them agree (or leave in_channels=None)"
            )
        (kh, kw), p = self.kernel_size, self.pad
        if kh > shape[1] + 2 * p or kw > shape[2] + 2 * p:
            raise ValueError(
                f"{self!r}: the {kh}x{kw} kernel is larger than its padded input, "
                f"{shape[1] + 2 * p}x{shape[2] + 2 * p} (images {shape} with padding {p}): use "
                "a smaller kernel, more padding, or put the layer before the pooling that "
                "shrinks the images this much"
            )
        self.input_shape, self.in_channels = shape, shape[0]
        shapes = self.parameter_shapes(shape)
        self.params = {
            "W": np.ascontiguousarray(self.init(shapes["W"], dtype=dtype, seed=rng), dtype),
            "b": np.ascontiguousarray(self.bias_init(shapes["b"], dtype=dtype, seed=rng), dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.built = True
        return self._out_shape(shape)

    def forward(self, x):
        """``x`` (N, C, H, W) -> ``y`` (N, F, OH, OW)."""
        if not self.built:
            raise NotBuiltError(f"{self!r} is not built: build its model first")
        W = self.params["W"]
        x = _check_image_input(self, x, self.in_channels, W.dtype)
        (kh, kw), p = self.kernel_size, self.pad
        if kh > x.shape[2] + 2 * p or kw > x.shape[3] + 2 * p:
            raise ValueError(
                f"{self!r}: the {kh}x{kw} kernel is larger than the padded input, "
                f"{x.shape[2] + 2 * p}x{x.shape[3] + 2 * p} (x of shape {tuple(x.shape)}, "
                f"padding {p}): give larger images"
            )
        self.x = x
        op = _resolved(self, "conv2d_forward")
        self.y = op(x, W, self.params["b"], self.stride, p, self._act)
        return self.y

    def backward(self, dy, *, need_dx: bool = True):
        """``dy`` (N, F, OH, OW) -> ``dx`` (N, C, H, W); fills ``grads["W"]`` (F, C, KH, KW)
        and ``grads["b"]`` (F,). ``need_dx=False`` skips ``dx`` and returns None."""
        y = self._kept("y")
        dy = _check_dy(self, dy, y)
        host = _host(dy)
        W, gW, gb = self.params["W"], self.grads.get("W"), self.grads.get("b")
        # SPEEDTIP: the gradients are written into the layer's own arrays (views of the
        # model's gradient store) when they fit: a step allocates no gradient arrays.
        fits = (
            gW is not None
            and gb is not None
            and tuple(gW.shape) == tuple(W.shape)
            and tuple(gb.shape) == (W.shape[0],)
            and np.dtype(gW.dtype) == np.dtype(dy.dtype) == np.dtype(gb.dtype)
            and _host(gW) == host == _host(gb)
        )
        dx, dW, db = _resolved(self, "conv2d_backward")(
            dy,
            self.x,
            W,
            y,
            self.stride,
            self.pad,
            self._act,
            int(need_dx),
            (gW, gb) if fits else None,
        )
        self.grads["W"], self.grads["b"] = dW, db
        return dx

    def __repr__(self) -> str:
        kh, kw = self.kernel_size
        kernel = kh if kh == kw else (kh, kw)
        extra = "" if self.stride == 1 else f", stride={self.stride}"
        extra += "" if self.padding == "valid" else f", padding={self.padding!r}"
        extra += f", activation={self.activation!r}" if self.activation else ""
        return f"Conv2D({self.out_channels}, {kernel}{extra})"


# ---------------------------------------------------------------------------- MaxPool2D


class MaxPool2D(Layer):
    """Max pooling over k x k windows at stride s (default k) of (N, C, H, W) images:
    ``y[n, c, i, j] = max_{u,v < k} x[n, c, i*s + u, j*s + v]``, (N, C, OH, OW) with
    ``OH = (H - k) // s + 1``. The forward pass keeps the position of each window's
    maximum (the first one in row-major order on ties), and the backward pass routes
    ``dy`` there (0 to the rest of the window).

    The windows must tile the input, ``(H - k) % s == 0`` and the same for W: a window
    that would leave the last rows or columns out is refused, with what to do.
    """

    keeps_shape = False

    def __init__(self, pool_size: int = 2, stride: int | None = None, *, input_shape=None):
        super().__init__()
        self.pool_size = _positive_int(pool_size, "MaxPool2D: pool_size")
        self.stride = (
            self.pool_size if stride is None else _positive_int(stride, "MaxPool2D: stride")
        )
        self.input_shape = _image_shape(input_shape, "MaxPool2D: input_shape")
        if self.input_shape is not None:
            self._check_tiles(self.input_shape)

    def _check_tiles(self, shape):
        k, s = self.pool_size, self.stride
        for axis, size in (("H", shape[-2]), ("W", shape[-1])):
            if size < k:
                raise ValueError(
                    f"{self!r}: the {k}x{k} window is larger than its input images, "
                    f"{shape[-2]}x{shape[-1]} (shape {tuple(shape)}): use a smaller pool_size"
                )
            if (size - k) % s:
                left = (size - k) % s
                raise ValueError(
                    f"{self!r}: {k}x{k} windows at stride {s} do not tile its input, images "
                    f"of shape {tuple(shape)}: (H - pool_size) % stride must be 0, and for "
                    f"{axis}={size} it is {left}, which would leave {left} rows/columns out. "
                    f"Crop or pad the images to {axis}={size - left} or {size - left + s} "
                    "(e.g. padding='same' on the convolution before), or choose a pool_size "
                    "and stride that tile them"
                )

    def _out_shape(self, shape):
        k, s = self.pool_size, self.stride
        return (shape[0], (shape[1] - k) // s + 1, (shape[2] - k) // s + 1)

    def output_features(self, in_features):
        shape = in_features if in_features is not None else self.input_shape
        return self._out_shape(shape) if isinstance(shape, tuple) else None

    def get_config(self) -> dict:
        return {
            "pool_size": self.pool_size,
            "stride": self.stride,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
        }

    def build(self, in_features, rng, dtype):
        if in_features is None:
            in_features = self.input_shape
        if in_features is None:
            return None
        if not isinstance(in_features, tuple):
            raise ValueError(
                f"{self!r} takes images (N, C, H, W), but its input is rows of {in_features} "
                "features: give the model images, or move the layer before any Flatten/Dense"
            )
        shape = _image_shape(in_features, f"{self!r}: the input shape")
        if self.input_shape is not None and shape != self.input_shape:
            raise ValueError(f"{self!r} expects input images {self.input_shape}; got {shape}")
        self._check_tiles(shape)
        self.input_shape = shape
        return self._out_shape(shape)

    def forward(self, x):
        """``x`` (N, C, H, W) -> ``y`` (N, C, OH, OW)."""
        x = _check_image_input(self, x, None, None)
        if not (np.dtype(x.dtype).kind == "f"):
            raise TypeError(f"{self!r}: input must be float32 or float64; got {x.dtype}")
        self._check_tiles(tuple(x.shape))
        y, self.argmax = _resolved(self, "maxpool2d_forward")(x, self.pool_size, self.stride)
        self.x_shape, self.y = tuple(x.shape), y
        return y

    def backward(self, dy):
        """``dy`` (N, C, OH, OW) -> ``dx`` (N, C, H, W): each ``dy`` to its window's maximum."""
        y = self._kept("y")
        dy = _check_dy(self, dy, y)
        op = _resolved(self, "maxpool2d_backward")
        return op(dy, self.argmax, self.x_shape, self.pool_size, self.stride)

    def __repr__(self) -> str:
        if self.stride == self.pool_size:
            return f"MaxPool2D({self.pool_size})"
        return f"MaxPool2D({self.pool_size}, stride={self.stride})"


# ---------------------------------------------------------------------------- activations


class _Elementwise(Layer):
    """An activation from :mod:`nnlib.functional`: ``y = f(x)``, ``dx = f_backward(dy, x)``."""

    fn = staticmethod(F.relu)
    fn_backward = staticmethod(F.relu_backward)

    def _scalars(self):
        return {}

    def forward(self, x):
        self.x = x
        return self.fn(x, backend=self.backend, **self._scalars())

    def backward(self, dy):
        return self.fn_backward(dy, self._kept("x"), backend=self.backend, **self._scalars())


class ReLU(_Elementwise):
    """``max(x, 0)``."""


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``."""

    fn, fn_backward = staticmethod(F.sigmoid), staticmethod(F.sigmoid_backward)


class Tanh(_Elementwise):
    """``tanh(x)``."""

    fn, fn_backward = staticmethod(F.tanh), staticmethod(F.tanh_backward)


class GELU(_Elementwise):
    """``x * Phi(x)``, Phi the standard normal CDF (the exact form, not the tanh one)."""

    fn, fn_backward = staticmethod(F.gelu), staticmethod(F.gelu_backward)


class SiLU(_Elementwise):
    """``x * sigmoid(x)`` (also called swish)."""

    fn, fn_backward = staticmethod(F.silu), staticmethod(F.silu_backward)


class LeakyReLU(_Elementwise):
    """``x`` where ``x > 0``, else ``alpha * x`` (alpha fixed)."""

    fn, fn_backward = staticmethod(F.leaky_relu), staticmethod(F.leaky_relu_backward)

    def __init__(self, alpha: float = 0.01):
        super().__init__()
        self.alpha = alpha

    def _scalars(self):
        return {"alpha": self.alpha}

    def get_config(self) -> dict:
        return {"alpha": float(self.alpha)}

    def __repr__(self):
        return f"LeakyReLU(alpha={self.alpha})"


class ELU(LeakyReLU):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``."""

    fn, fn_backward = staticmethod(F.elu), staticmethod(F.elu_backward)

    def __init__(self, alpha: float = 1.0):
        super().__init__(alpha)

    def __repr__(self):
        return f"ELU(alpha={self.alpha})"


class Softmax(Layer):
    """Softmax over the features (the last axis). For training a classifier prefer a
    plain output layer and ``loss="softmax_cross_entropy"``: fused, and stable."""

    def forward(self, x):
        self.x = x
        return F.softmax(x, axis=-1, backend=self.backend)

    def backward(self, dy):
        return F.softmax_backward(dy, self._kept("x"), axis=-1, backend=self.backend)


class PReLU(Layer):
    """Parametric ReLU: ``x`` where ``x > 0``, else ``alpha * x``, alpha learned.

    ``params["alpha"]`` has shape () (one slope), or (D,) with ``per_feature=True``.
    """

    def __init__(self, alpha: float = 0.25, *, per_feature: bool = False):
        super().__init__()
        self.alpha0, self.per_feature = float(alpha), per_feature
        self.built = False
        if not per_feature:
            self.build(None, None, np.float32)

    def build(self, in_features, rng, dtype):
        if self.built:
            return in_features
        if self.per_feature and in_features is None:
            raise NotBuiltError("PReLU(per_feature=True) needs the input width to be known")
        shape = self.parameter_shapes(in_features)["alpha"]
        self.params = {"alpha": np.full(shape, self.alpha0, dtype)}
        self.grads = {"alpha": np.zeros(shape, dtype)}
        self.built = True
        return in_features

    def forward(self, x):
        if not self.built:
            raise NotBuiltError(f"{self!r} is not built: build its model first")
        self.x = x
        return F.prelu(x, self.params["alpha"], backend=self.backend)

    def backward(self, dy):
        x, alpha = self._kept("x"), self.params["alpha"]
        dx, dalpha = F.prelu_backward(dy, x, alpha, backend=self.backend)
        self.grads["alpha"] = dalpha.reshape(self.params["alpha"].shape)
        return dx

    def parameter_shapes(self, in_features):
        return {"alpha": (in_features,) if self.per_feature else ()}

    def get_config(self) -> dict:
        return {"alpha": self.alpha0, "per_feature": self.per_feature}

    def __repr__(self):
        return f"PReLU(alpha={self.alpha0}, per_feature={self.per_feature})"


# ---------------------------------------------------------------------------- Dropout


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability ``p`` and scale the
    kept ones by ``1 / (1 - p)``; in evaluation, pass the input through unchanged.

    ``seed``: int or Generator for the masks; by default the model (or ``fit(seed=)``)
    gives the layer its own stream.
    """

    def __init__(self, p: float = 0.5, *, seed=None):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be a number in [0, 1); got {p!r}")
        self.p = float(p)
        self.rng = initializers.rng_from(seed) if seed is not None else None
        self.device_states = None  # the GPU's generators, made from rng when first needed
        self.frozen_u = None  # set by gradcheck: reuse one mask for every forward pass

    def build(self, in_features, rng, dtype):
        if self.rng is None:
            self.reseed(rng.integers(2**63))
        return in_features

    def reseed(self, seed) -> None:
        """Restart the layer's random stream (host and GPU) from ``seed``."""
        self.rng, self.device_states = initializers.rng_from(seed), None

    def _uniform(self, x):
        """U[0, 1) numbers of the shape of ``x``, drawn where ``x`` lives."""
        if self.rng is None:
            self.rng = np.random.default_rng()
        if is_device_array(x):
            if self.device_states is None:
                self.device_states = device_rng(int(self.rng.integers(2**63)))
            return device_uniform(self.device_states, tuple(x.shape))
        return self.rng.random(tuple(x.shape))  # float64: the same mask on numpy and cpu

    def forward(self, x):
        if not self.training or self.p == 0:
            self.mask = None
            return x
        if self.frozen_u is not None and self.frozen_u.shape == tuple(x.shape):
            u = self.frozen_u
        else:
            u = self._uniform(x)
        y, self.mask = dispatch("dropout", self.backend)(x, u, self.p)
        return y

    def backward(self, dy):
        if self._kept("mask") is None:
            return dy
        return dispatch("dropout_backward", self.backend)(dy, self.mask)

    def get_config(self) -> dict:
        return {"p": self.p}

    def __repr__(self):
        return f"Dropout(p={self.p})"


# ---------------------------------------------------------------------------- BatchNorm1d


class BatchNorm1d(Layer):
    """Batch normalization of each feature over the batch (PyTorch's ``BatchNorm1d``).

    ``y = gamma * (x - mean) / sqrt(var + eps) + beta`` for ``x`` (N, D). In training
    (``layer.training``, set by the model: ``fit``, ``train_on_batch``, ``gradcheck``)
    ``mean`` and ``var`` (D,) are the batch's, with the biased variance, and the running
    statistics are updated: ``running = (1 - momentum) * running + momentum * stat``,
    with the unbiased variance (N / (N - 1)) in ``running_var``. In evaluation
    (``predict``, ``evaluate``) the running statistics normalize and stay unchanged.

    Parameters ``gamma`` (D,) = 1 and ``beta`` (D,) = 0; buffers (saved with the model,
    not learned) ``running_mean`` (D,) = 0 and ``running_var`` (D,) = 1, in the model's
    dtype, on its backend.

    Parameters
    ----------
    num_features : int or None
        D; None infers it from the layer before when the model is built.
    momentum : float in [0, 1]
        the weight of the new batch in the running statistics.
    eps : float > 0
        added to the variance before the square root.

    A training batch needs at least 2 examples (one has no variance): ``fit`` refuses a
    ``batch_size`` whose last mini-batch would hold a single example.
    """

    def __init__(self, num_features: int | None = None, *, momentum: float = 0.1, eps=1e-5):
        super().__init__()
        if num_features is not None and (
            isinstance(num_features, bool)
            or not isinstance(num_features, numbers.Integral)
            or num_features <= 0
        ):
            raise ValueError(
                f"BatchNorm1d: num_features must be a positive int (or None, to infer it); "
                f"got {num_features!r}"
            )
        for name, value in (("momentum", momentum), ("eps", eps)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"BatchNorm1d: {name} must be a number; got {value!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"BatchNorm1d: momentum must be in [0, 1]; got {momentum!r}")
        if not (eps > 0 and np.isfinite(eps)):
            raise ValueError(f"BatchNorm1d: eps must be a finite number > 0; got {eps!r}")
        self.num_features = None if num_features is None else int(num_features)
        self.momentum, self.eps = float(momentum), float(eps)
        self.built = False

    def output_features(self, in_features):
        return self.num_features if self.num_features is not None else in_features

    def parameter_shapes(self, in_features):
        d = self.num_features if self.num_features is not None else in_features
        return {"gamma": (d,), "beta": (d,)}

    def get_config(self) -> dict:
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps}

    def build(self, in_features, rng, dtype):
        if self.built:
            return self.num_features
        _refuse_images(self, in_features)
        if in_features is None and self.num_features is None:
            raise NotBuiltError(
                f"{self!r}: the number of features is unknown; give BatchNorm1d(num_features) "
                "or build the model with model.build(input_dim)"
            )
        if None not in (in_features, self.num_features) and in_features != self.num_features:
            raise ValueError(
                f"{self!r} expects {self.num_features} features, but the layer before it "
                f"outputs {in_features}: make them agree (or leave num_features=None)"
            )
        d = self.num_features = self.num_features or in_features
        self.params = {"gamma": np.ones(d, dtype), "beta": np.zeros(d, dtype)}
        self.grads = {"gamma": np.zeros(d, dtype), "beta": np.zeros(d, dtype)}
        self.buffers = {"running_mean": np.zeros(d, dtype), "running_var": np.ones(d, dtype)}
        self.built = True
        return d

    def forward(self, x):
        """``x`` (N, D) -> ``y`` (N, D); N >= 2 in training mode."""
        if not self.built:
            raise NotBuiltError(f"{self!r} is not built: build its model first")
        gamma = self.params["gamma"]
        if not (isinstance(x, np.ndarray) or is_device_array(x)):
            raise TypeError(f"{self!r}: x must be an array; got {type(x).__name__}")
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(
                f"{self!r}: input must have shape (N, {self.num_features}), one column per "
                f"feature it was built with; got {tuple(x.shape)}"
            )
        if np.dtype(x.dtype) != np.dtype(gamma.dtype):
            raise TypeError(f"{self!r}: input must have dtype {gamma.dtype}; got {x.dtype}")
        training = bool(self.training)
        if training and x.shape[0] < 2:
            raise ValueError(
                f"{self!r}: a training batch needs at least 2 examples (the variance of a "
                f"single example is undefined); got {x.shape[0]}. Use batches of 2 or more, "
                "or evaluation mode (model.predict, or layer.training = False) for one example"
            )
        if _host(x):  # the kernels take C-contiguous rows (GPU arrays are)
            x = np.ascontiguousarray(x)
        rm, rv = self.buffers["running_mean"], self.buffers["running_var"]
        self.x, self.trained = x, training
        y, self.mean, self.inv_std = _resolved(self, "batch_norm")(
            x, gamma, self.params["beta"], rm, rv, self.momentum, self.eps, int(training)
        )
        return y

    def backward(self, dy):
        """``dy`` (N, D) -> ``dx`` (N, D); fills ``grads["gamma"]``, ``grads["beta"]`` (D,).

        The mode is the one of the forward pass: in training the batch statistics depend
        on every example, and ``dx`` has the mean terms of the compact form.
        """
        x = self._kept("x")
        if not (isinstance(dy, np.ndarray) or is_device_array(dy)):
            raise TypeError(f"{self!r}: dy must be an array; got {type(dy).__name__}")
        if tuple(dy.shape) != tuple(x.shape):
            raise ValueError(f"{self!r}: dy must have shape {tuple(x.shape)}; got {dy.shape}")
        if np.dtype(dy.dtype) != np.dtype(x.dtype):
            raise TypeError(f"{self!r}: dy must have dtype {x.dtype}; got {dy.dtype}")
        if _host(dy):
            dy = np.ascontiguousarray(dy)
        dx, dgamma, dbeta = _resolved(self, "batch_norm_backward")(
            dy, x, self.params["gamma"], self.mean, self.inv_std, int(self.trained)
        )
        self.grads["gamma"], self.grads["beta"] = dgamma, dbeta  # copied into the store
        return dx

    def __repr__(self):
        return f"BatchNorm1d({self.num_features}, momentum={self.momentum}, eps={self.eps})"
