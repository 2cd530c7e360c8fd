"""``Sequential``: a stack of layers. It builds them, runs the forward and backward
passes, holds the parameters (one :class:`~nnlib.params.ParameterStore`), predicts,
evaluates, and saves and loads itself. Training (``fit``, ``train_on_batch``) is in
:mod:`nnlib.training`; these methods call it.

The public methods validate everything (shapes, dtypes, labels, NaN/inf, arguments)
before any kernel runs; the layers and ops below them trust what they are given.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from . import callbacks as cb
from . import functional as F
from . import init as initializers
from . import io, training
from . import losses as losses_
from ._arrays import assign, to_backend, to_host, zeros_like_on
from ._backend import resolve_backend
from ._inputs import as_data, check_features, check_int, check_lengths, describe, example_shape
from ._validate import is_device_array
from .layers import (
    BatchNorm1d,
    Conv2D,
    Dense,
    Layer,
    NotBuiltError,
    Sigmoid,
    Softmax,
    layer_from_config,
)
from .optim import OPTIMIZERS, Optimizer, optimizer_from_config
from .params import ParameterStore

__all__ = ["Sequential", "load", "save"]


def _example_shape_arg(shape):
    """``input_dim`` as build takes it: None, a width D (int) or (C, H, W) (a tuple)."""
    if shape is None:
        return None
    if isinstance(shape, (tuple, list)):
        if len(shape) != 3:
            raise ValueError(
                f"input_dim must be a width D (an int) or an image shape (C, H, W); got {shape!r}"
            )
        return tuple(check_int(d, "input_dim", 1) for d in shape)
    return check_int(shape, "input_dim", 1)


class Sequential:
    """Layers applied one after the other.

    Parameters
    ----------
    layers : list of Layer
    seed : int, Generator or None
        builds the parameters now (if every input width is known); otherwise they are
        built by :meth:`build` or at the start of :meth:`fit` from ``fit``'s seed.
    dtype : float32 (default) or float64
    """

    def __init__(self, layers, *, seed=None, dtype=np.float32):
        layers = list(layers)
        if not layers:
            raise ValueError("Sequential needs at least one layer; got an empty list")
        seen = {}
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be an nnlib Layer; got {type(layer).__name__}")
            if id(layer) in seen:
                raise ValueError(
                    f"layers[{i}] is the same {layer!r} object as layers[{seen[id(layer)]}]: a "
                    "layer keeps what its forward pass needs for backward, so each position "
                    "needs its own instance (make a new one, e.g. nl.ReLU() twice)"
                )
            seen[id(layer)] = i
        if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"dtype must be float32 or float64; got {np.dtype(dtype)}")
        self.layers, self.dtype = layers, np.dtype(dtype)
        self.backend = None
        self.loss = None
        self.stop_training = False
        self.record_outputs = False
        self.outputs: list = []
        # with record_grads, backward keeps dL/d(output of layer i) in output_grads[i]
        self.record_grads = False
        self.output_grads: list = []
        self.store: ParameterStore | None = None  # made by build()
        self._train_plan = None  # the training.TrainStep train_on_batch keeps
        #: how the last fit or train_on_batch ran: "compiled epoch", "compiled step" or
        #: "layer by layer" (None before any)
        self.training_path = None
        self._check_chain()
        # built now when nothing is left to infer: every input width known and a seed (or
        # every Dense seeded: the rest needs no randomness), or no layer left to build
        dense_ready = all(layer.built for layer in layers if isinstance(layer, Dense))
        widths_known = self.input_features is not None
        if ((seed is not None or dense_ready) and widths_known) or all(l.built for l in layers):
            self.build(seed=seed)

    # ------------------------------------------------------------------ structure
    @property
    def input_features(self):
        """The shape of one input example: a width D (rows), or (C, H, W) (images), from
        the first layer that fixes it (a Dense, a BatchNorm1d given its num_features, an
        image layer once it knows its input); None when it is left to infer."""
        for layer in self.layers:
            if isinstance(layer, Dense):
                return layer.in_features
            if isinstance(layer, BatchNorm1d) and layer.num_features is not None:
                return layer.num_features
            if not layer.keeps_shape:  # Conv2D, MaxPool2D, Flatten: known once built
                return layer.input_shape
        return None

    @property
    def output_features(self):
        return self.output_width(self.input_features)

    def output_width(self, in_features):
        """The output width for inputs of shape ``in_features`` (a width D, or (C, H, W)
        for images; a model without Dense layers keeps the shape of its input)."""
        width = in_features
        for layer in self.layers:
            width = layer.output_features(width)
        return width

    def _check_chain(self):
        width, source = None, None
        for i, layer in enumerate(self.layers):
            expects = {Dense: "in_features", BatchNorm1d: "num_features"}.get(type(layer))
            if expects is not None and isinstance(width, tuple):
                raise ValueError(
                    f"layers do not chain: layers[{i}] {layer!r} takes rows (N, D), but "
                    f"layers[{source}] outputs {describe(width)}: put nl.Flatten() before it"
                )
            if expects is not None:
                if width is not None and getattr(layer, expects) not in (None, width):
                    raise ValueError(
                        f"layers do not chain: layers[{i}] {layer!r} expects "
                        f"{getattr(layer, expects)} input features, but layers[{source}] "
                        f"outputs {width}"
                    )
                source = i
            elif not layer.keeps_shape:
                source = i
            width = layer.output_features(width)

    @property
    def built(self) -> bool:
        return self.store is not None and all(layer.built for layer in self.layers)

    def build(self, input_dim=None, *, seed=None) -> Sequential:
        """Create the parameters of every layer, drawing them from ``seed``.

        ``input_dim``: the shape of one input example when the first layer does not fix
        it: a width D for rows (N, D), or ``(C, H, W)`` for images (N, C, H, W).
        """
        rng = initializers.rng_from(seed)
        input_dim = _example_shape_arg(input_dim)
        if input_dim is not None and self.input_features not in (None, input_dim):
            raise ValueError(
                f"the model expects {self.input_features} input features; got {input_dim}"
            )
        width = input_dim if input_dim is not None else self.input_features
        for layer in self.layers:
            width = layer.build(width, rng, self.dtype)
        self._gather("numpy")
        return self

    def _gather(self, backend) -> None:
        """Copy every layer's parameters and gradients into a new
        :class:`~nnlib.params.ParameterStore` and point the layers at its views."""
        named = [
            (f"{i}.{k}", layer, k) for i, layer in enumerate(self.layers) for k in layer.params
        ]
        shapes = {name: tuple(layer.params[k].shape) for name, layer, k in named}
        store = ParameterStore(shapes, self.dtype, backend)
        for name, layer, k in named:
            assign(store.params[name], layer.params[k])
            if k in layer.grads:
                assign(store.grads[name], layer.grads[k])
        self.store = store
        self._point_layers()

    def _point_layers(self) -> None:
        for i, layer in enumerate(self.layers):
            for k in layer.params:
                layer.params.point(k, self.store.params[f"{i}.{k}"])
                layer.grads.point(k, self.store.grads[f"{i}.{k}"])

    def _require_built(self, what):
        if not self.built:
            raise NotBuiltError(
                f"{what}: the model is not built yet. Call model.build(input_dim, seed=...) "
                "or model.fit(...) first (or give every Dense a seed)"
            )

    def parameter_shapes(self, input_dim=None) -> dict[str, tuple]:
        """Every parameter's shape by name (as :meth:`parameters` names them), for input
        examples of shape ``input_dim`` (D or (C, H, W)), without building anything."""
        width = _example_shape_arg(input_dim)
        if width is None:
            width = self.input_features
        shapes = {}
        for i, layer in enumerate(self.layers):
            for k, shape in layer.parameter_shapes(width).items():
                shapes[f"{i}.{k}"] = tuple(shape)
            width = layer.output_features(width)
        return shapes

    def parameters(self) -> dict[str, np.ndarray]:
        """Every parameter by name, ``"<layer index>.<name>"`` (e.g. ``"0.W"``): live arrays."""
        self._require_built("parameters()")
        return {
            f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()
        }

    def gradients(self) -> dict[str, np.ndarray]:
        """The gradients of the last backward pass, named like :meth:`parameters`."""
        self._require_built("gradients()")
        return {
            f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads.items()
        }

    def buffers(self) -> dict:
        """Every layer's buffers (state saved with the model but not learned, such as
        BatchNorm1d's running statistics), named like :meth:`parameters`: live arrays."""
        self._require_built("buffers()")
        return {
            f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.buffers.items()
        }

    def set_parameters(self, values: dict) -> None:
        """Copy ``values`` (a dict like :meth:`parameters`) into the parameters, in place."""
        params = self.parameters()
        for name, v in values.items():
            if name not in params or tuple(v.shape) != tuple(params[name].shape):
                raise ValueError(f"set_parameters: no parameter {name!r} of shape {v.shape}")
            assign(params[name], v)

    def _place(self, backend: str) -> None:
        """Move the parameter store to where ``backend`` computes (an explicit copy,
        done when training starts on another backend and at the end of ``fit``)."""
        if self.store.to(backend):
            self._point_layers()
        for layer in self.layers:  # buffers live where the parameters do
            for k, v in layer.buffers.items():
                if is_device_array(v) != (backend == "cuda"):
                    layer.buffers.point(k, to_backend(v, backend))

    def astype(self, dtype) -> Sequential:
        """A deep copy of the model with every parameter (and gradient) cast to ``dtype``."""
        self._place("numpy")  # (a copy of host arrays)
        clone = copy.deepcopy(self)
        clone.dtype, clone._train_plan = np.dtype(dtype), None
        for layer in clone.layers:
            for slots in (layer.params, layer.grads, layer.buffers):
                for k, v in slots.items():
                    slots.point(k, np.asarray(v, dtype=dtype, order="C"))  # 0-d stays 0-d
        if clone.built:
            clone._gather("numpy")
        return clone

    def _set_backend(self, backend):
        self.backend = resolve_backend(backend)
        for layer in self.layers:
            layer.backend = self.backend

    def _set_training(self, training: bool):
        for layer in self.layers:
            layer.training = training

    # ------------------------------------------------------------------ passes
    def forward(self, x, *, training: bool = False):
        """``x`` (N, D) -> output (N, K), through every layer. Validates ``x``."""
        self._require_built("forward()")
        x = as_data(x, "x", self.dtype)
        return self._forward(x, training)

    def _forward(self, x, training):
        self._set_training(training)
        if self.backend is None:
            self._set_backend(None)
        check_features(x, self)
        self.outputs = []
        for layer in self.layers:
            x = layer.forward(x)
            if self.record_outputs:
                self.outputs.append(x)
        return x

    def backward(self, dout, *, input_grad: bool = True):
        """Back-propagate ``dout`` (N, K) through every layer; fills each layer's grads.

        Returns the gradient with respect to the model's input, or None with
        ``input_grad=False``: training needs only the parameters' gradients, and when the
        first layer is a Dense or a Conv2D the product that computes its input's gradient
        is skipped (``fit`` and ``train_on_batch`` do this).
        """
        record = self.record_grads
        if record:
            self.output_grads = [None] * len(self.layers)
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            if record:
                self.output_grads[i] = dout
            if i == 0 and not input_grad and isinstance(layer, (Dense, Conv2D)):
                return layer.backward(dout, need_dx=False)
            dout = layer.backward(dout)
        return dout

    __call__ = forward

    # ------------------------------------------------------------------ training
    def fit(
        self,
        X,
        y,
        *,
        loss="softmax_cross_entropy",
        optimizer: Optimizer | None = None,
        epochs: int = 1,
        batch_size: int = 32,
        shuffle: bool = True,
        validation_split: float = 0.0,
        validation_data=None,
        seed=None,
        callbacks=None,
        verbose: int = 1,
        backend: str | None = None,
        reduction: str = "mean",
        check_finite: bool = True,
        compiled: bool = True,
    ) -> cb.History:
        """Train the model; return a :class:`nnlib.callbacks.History`.

        Parameters
        ----------
        X : array (N, D)
        y : targets for ``loss`` (see :mod:`nnlib.losses`): labels (N,) or one-hot (N, C)
            for ``"softmax_cross_entropy"``, (N,) or (N, K) values otherwise.
        loss : name or :class:`nnlib.losses.Loss`
        optimizer : an :mod:`nnlib.optim` optimizer (default: ``Adam(lr=1e-3)``)
        epochs : int >= 0
        batch_size : int >= 1; 1 is stochastic, >= N is full-batch, between is mini-batch
        shuffle : reshuffle the training examples every epoch (seeded by ``seed``)
        validation_split : fraction in [0, 1) of (X, y) held out, chosen at random
            (seeded), for ``val_loss``/``val_accuracy``
        validation_data : ``(X_val, y_val)`` instead of ``validation_split``
        seed : int, Generator or None: the split, the shuffling, the dropout masks and
            (if the model is not built yet) the initial weights
        callbacks : list of :class:`nnlib.callbacks.Callback`
        verbose : 0 silent, 1 a progress bar (tqdm) over epochs
        backend : "numpy", "cpu" or "cuda" (see :func:`nnlib.use_backend`)
        reduction : "mean" or "sum", of the loss over the batch
        check_finite : stop with :class:`nnlib.training.TrainingDivergedError` as soon
            as the training loss is NaN or infinite (after the batch on the host, at the
            end of the epoch on the GPU). ``False`` trains on regardless.
        compiled : True (default): on the cpu backend, a model built from the layers,
            losses and optimizers :mod:`nnlib.compiled` supports trains by a compiled
            step (the same kernels, with no Python between the layers), a whole epoch
            per call when no callback runs between batches; any other model trains layer
            by layer, with a one-line note saying why at ``verbose=1``. ``False``: layer
            by layer, the readable path. The two train identically.
            ``history.path`` (and ``model.training_path``) says which ran:
            ``"compiled epoch"``, ``"compiled step"`` or ``"layer by layer"``.
        """
        return training.fit(
            self,
            X,
            y,
            loss=loss,
            optimizer=optimizer,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=shuffle,
            validation_split=validation_split,
            validation_data=validation_data,
            seed=seed,
            callbacks=callbacks,
            verbose=verbose,
            backend=backend,
            reduction=reduction,
            check_finite=check_finite,
            compiled=compiled,
        )

    def train_on_batch(
        self,
        X,
        y,
        *,
        loss="softmax_cross_entropy",
        optimizer: Optimizer | None = None,
        backend: str | None = None,
        reduction: str = "mean",
        compiled: bool = True,
    ) -> float:
        """One training step on the batch ``(X, y)``: forward (training mode), loss,
        backward, one optimizer update. Returns the batch's loss (a float).

        The same step as one batch of :meth:`fit`, for a training loop of your own. The
        first call prepares the step (checks the arguments, binds the optimizer, puts the
        parameters where the backend computes); later calls with the same loss,
        optimizer, backend and reduction check only ``X`` and ``y`` and run the step.
        The first layer's input gradient (a Dense or Conv2D) is not computed (nothing
        uses it).

        The parameters, gradients and optimizer state then live in one flat buffer each
        (the dicts hold views of it: same names and shapes), so that the optimizer
        updates them all in one call. On "cuda" these buffers are on the GPU and stay
        there between calls (``model.parameters()`` then gives GPU arrays); a later
        ``fit`` brings them back to the host at its end.

        Parameters
        ----------
        X : array (N, D)
        y : targets for ``loss`` (as in :meth:`fit`)
        loss : name or :class:`nnlib.losses.Loss`
        optimizer : an :mod:`nnlib.optim` optimizer; pass the same one at every call (it
            holds the state). Default: an ``Adam(lr=1e-3)`` made at the first call and
            kept for the calls without one.
        backend : "numpy", "cpu" or "cuda"
        reduction : "mean" or "sum"
        compiled : True (default): one compiled call where the model allows it (as in
            :meth:`fit`); ``False``: layer by layer. ``model.training_path`` says which ran.
        """
        return training.train_on_batch(
            self,
            X,
            y,
            loss=loss,
            optimizer=optimizer,
            backend=backend,
            reduction=reduction,
            compiled=compiled,
        )

    # ------------------------------------------------------------------ inference
    def _predict_raw(self, X, batch_size):
        outs = [
            to_host(self._forward(X[i : i + batch_size], training=False))
            for i in range(0, len(X), batch_size)
        ]
        if not outs:
            return np.zeros((0, self.output_width(example_shape(X))), self.dtype)
        return np.concatenate(outs)

    def _epoch_logs(self, acc, n, loss_fn, width) -> dict:
        """Loss (and accuracy) of ``n`` examples (outputs ``width`` wide) from the sums in
        ``acc``."""
        total, correct = (float(v) for v in to_host(acc))
        per_example = 1 if isinstance(loss_fn, losses_.SoftmaxCrossEntropy) else None
        count = n * (per_example or width)
        logs = {"loss": total / count if loss_fn.reduction == "mean" else total}
        if loss_fn.classification:
            logs["accuracy"] = correct / n
        return logs

    def _evaluate(self, X, targets, loss_fn, batch_size=1024):
        acc = zeros_like_on(X, 2)
        for i in range(0, len(X), batch_size):
            out = self._forward(X[i : i + batch_size], training=False)
            loss_fn.accumulate(out, targets[i : i + batch_size], acc)  # slices: views
        return self._epoch_logs(acc, len(X), loss_fn, self.output_width(example_shape(X)))

    def _prepare_inference(self, X, backend, what):
        self._require_built(what)
        if backend is not None or self.backend is None:
            self._set_backend(backend)
        X = as_data(X, "X", self.dtype)
        check_features(X, self)
        return X

    def evaluate(self, X, y, *, loss=None, batch_size: int = 1024, backend=None) -> dict:
        """``{"loss": ..., "accuracy": ...}`` on (X, y) in evaluation mode (no dropout).

        ``loss`` defaults to the one of the last ``fit``; ``accuracy`` is given for the
        classification losses only.
        """
        batch_size = check_int(batch_size, "batch_size", 1)
        X = self._prepare_inference(X, backend, "evaluate()")
        if len(X) == 0:
            raise ValueError("evaluate: X is empty (0 rows); there is nothing to evaluate")
        if loss is None and self.loss is None:
            raise ValueError("evaluate: pass loss=... (the model has not been fit yet)")
        loss_fn = losses_.get(loss, "mean") if loss is not None else copy.copy(self.loss)
        loss_fn.backend = self.backend
        targets = loss_fn.prepare(y, self.output_width(example_shape(X)), self.dtype)
        check_lengths(X, targets)
        return self._evaluate(X, targets, loss_fn, batch_size)

    def predict_proba(self, X, *, batch_size: int = 1024, backend=None):
        """Class probabilities (N, C): softmax of the output for
        ``softmax_cross_entropy``, sigmoid for ``bce_with_logits``, the output itself for
        ``bce`` (it already is a probability) and when the last layer is a Softmax."""
        batch_size = check_int(batch_size, "batch_size", 1)
        X = self._prepare_inference(X, backend, "predict_proba()")
        out = self._predict_raw(X, batch_size)
        if isinstance(self.loss, losses_.SoftmaxCrossEntropy):
            return F.softmax(out, backend=self.backend)
        if isinstance(self.loss, losses_.BCEWithLogits):
            return F.sigmoid(out, backend=self.backend)
        if self.loss is None or isinstance(self.loss, losses_.MSE):
            if not isinstance(self.layers[-1], (Softmax, Sigmoid)):
                raise ValueError(
                    "predict_proba: the model is not a classifier (fit it with a "
                    "classification loss, or end it with Softmax/Sigmoid)"
                )
        return out

    def predict(self, X, *, batch_size: int = 1024, backend=None):
        """Class labels (N,) for a classifier (fit with a classification loss); the raw
        output (N, K) otherwise (e.g. a regression fit with ``"mse"``)."""
        batch_size = check_int(batch_size, "batch_size", 1)
        if self.loss is not None and self.loss.classification:
            proba = self.predict_proba(X, batch_size=batch_size, backend=backend)
            if proba.shape[1] == 1:
                return (proba[:, 0] > 0.5).astype(np.int64)
            return proba.argmax(axis=1)
        X = self._prepare_inference(X, backend, "predict()")
        return self._predict_raw(X, batch_size)

    # ------------------------------------------------------------------ saving
    def get_config(self) -> dict:
        """The dtype and every layer's class and :meth:`~nnlib.Layer.get_config`: what
        :meth:`from_config` rebuilds the (unbuilt) model from."""
        return {
            "dtype": self.dtype.name,
            "layers": [
                {"class": type(layer).__name__, "config": layer.get_config()}
                for layer in self.layers
            ],
        }

    @classmethod
    def from_config(cls, config: dict) -> Sequential:
        """The model :meth:`get_config` describes, built (with placeholder values)."""
        layers = [layer_from_config(spec) for spec in config["layers"]]
        return cls(layers, dtype=np.dtype(config["dtype"])).build(seed=0)

    def save(self, path, optimizer: Optimizer | None = None) -> Path:
        """Write the model (architecture and parameters) and, if given, ``optimizer``
        (its hyper-parameters, step count and state) to one file at ``path`` (see
        :mod:`nnlib.io`). Returns the path written."""
        if optimizer is not None and type(optimizer) not in OPTIMIZERS.values():
            raise TypeError(
                f"save: optimizer must be one of {', '.join(OPTIMIZERS)}; "
                f"got {type(optimizer).__name__}"
            )
        self._require_built("save()")
        try:
            config = self.get_config()
        except TypeError as err:
            raise TypeError(f"save: {err}") from None
        arrays = {f"param/{k}": np.array(to_host(v)) for k, v in self.parameters().items()}
        arrays.update({f"buffer/{k}": np.array(to_host(v)) for k, v in self.buffers().items()})
        header = {
            **config,
            "loss": losses_.name_of(self.loss),
            "loss_reduction": getattr(self.loss, "reduction", None),
            "optimizer": None,
        }
        if optimizer is not None:
            state = optimizer.state_dict()
            header["optimizer"] = {
                "class": type(optimizer).__name__,
                "hyper": {
                    k: list(v) if isinstance(v, tuple) else v for k, v in state["hyper"].items()
                },
                "t": state["t"],
                "state": {k: sorted(v) for k, v in state["state"].items()},
            }
            for k, v in state["state"].items():
                for s, a in v.items():
                    arrays[f"optimizer/{k}/{s}"] = a
        return io.write(path, header, arrays)

    @classmethod
    def load(cls, path, *, backend: str | None = None):
        """Read a file written by :meth:`save`: the model, or ``(model, optimizer)`` when
        an optimizer was saved with it. ``backend`` places the model on that backend
        (default: the usual resolution, see :func:`nnlib.get_backend`)."""
        header, arrays = io.read(path)
        saved = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
        try:
            layers = [layer_from_config(spec) for spec in header["layers"]]
            model = cls(layers, dtype=np.dtype(header["dtype"]))
            # NOTE: checked against the arrays stored before anything is allocated: a
            # small file cannot make load allocate what its header claims
            needed = model.parameter_shapes()
        except (KeyError, TypeError, ValueError, NotBuiltError) as err:
            raise io.ModelFileError(
                f"load: {path} describes a model nnlib cannot build: {err}"
            ) from None
        if set(saved) != set(needed):
            raise io.ModelFileError(
                f"load: {path} holds parameters {sorted(saved)}, but its layers need "
                f"{sorted(needed)}"
            )
        for name, value in saved.items():
            if value.shape != needed[name]:
                raise io.ModelFileError(
                    f"load: parameter {name!r} in {path} has shape {value.shape}; its layer "
                    f"needs {needed[name]}"
                )
        if not model.built:
            model.build(seed=0)
        model.set_parameters({k: v.astype(model.dtype) for k, v in saved.items()})
        held = {k[len("buffer/") :]: v for k, v in arrays.items() if k.startswith("buffer/")}
        buffers = model.buffers()
        if set(held) != set(buffers):
            raise io.ModelFileError(
                f"load: {path} holds buffers {sorted(held)}, but its layers need {sorted(buffers)}"
            )
        for name, value in held.items():
            if value.shape != tuple(buffers[name].shape):
                raise io.ModelFileError(
                    f"load: buffer {name!r} in {path} has shape {value.shape}; its layer "
                    f"needs {tuple(buffers[name].shape)}"
                )
            assign(buffers[name], value.astype(buffers[name].dtype))
        if header.get("loss"):
            model.loss = losses_.get(header["loss"], header.get("loss_reduction") or "mean")
        model._set_backend(backend)
        if header.get("optimizer") is None:
            return model
        spec = header["optimizer"]
        try:
            hyper = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["hyper"].items()}
            opt = optimizer_from_config(spec["class"], hyper)
            state = {
                k: {s: arrays[f"optimizer/{k}/{s}"] for s in names}
                for k, names in spec["state"].items()
            }
            opt.load_state_dict({"hyper": hyper, "t": spec["t"], "state": state})
            opt.backend = model.backend
            opt.bind(model.store)  # the state must fit the parameters: checked here
        except (KeyError, TypeError, ValueError) as err:
            raise io.ModelFileError(
                f"load: {path} holds an optimizer nnlib cannot restore: {err}"
            ) from None
        return model, opt

    def __repr__(self):
        inner = ",\n    ".join(repr(layer) for layer in self.layers)
        return f"Sequential([\n    {inner},\n])"


def save(model: Sequential, path, optimizer: Optimizer | None = None) -> Path:
    """Write ``model`` (and ``optimizer``, if given) to one file: see :meth:`Sequential.save`."""
    if not isinstance(model, Sequential):
        raise TypeError(f"save: model must be an nnlib Sequential; got {type(model).__name__}")
    return model.save(path, optimizer)


def load(path, *, backend: str | None = None):
    """Read a file written by :func:`save`: see :meth:`Sequential.load`."""
    return Sequential.load(path, backend=backend)
