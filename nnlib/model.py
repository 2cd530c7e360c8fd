"""``Sequential``: a stack of layers, and the training loop (``fit``, ``evaluate``,
``predict``, ``predict_proba``).

The public methods validate everything (shapes, dtypes, labels, NaN/inf, arguments)
before any kernel runs; the layers and ops below them trust what they are given.
"""

from __future__ import annotations

import copy
import numbers

import numba
import numpy as np

from . import callbacks as cb
from . import functional as F
from . import init as initializers
from . import losses as losses_
from ._arrays import assign, empty_on, to_backend, to_host, zeros_like_on
from ._backend import resolve_backend
from .layers import Dense, Dropout, Layer, NotBuiltError
from .ops.gather import take_rows
from .optim import Optimizer

__all__ = ["Sequential"]


def _as_data(X, name, dtype):
    """``X`` as a C-contiguous (N, D) array of ``dtype``; NaN/inf rejected."""
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of numbers; got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, shape (N, D); got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype)
    if not np.isfinite(arr).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(
            f"{name} contains NaN or inf (first at index {bad}); clean or impute it first"
        )
    return arr


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return int(value)


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
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be an nnlib Layer; got {type(layer).__name__}")
        if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"dtype must be float32 or float64; got {np.dtype(dtype)}")
        self.layers, self.dtype = layers, np.dtype(dtype)
        self.backend = None
        self.loss = None
        self.stop_training = False
        self.record_outputs = False
        self.outputs: list = []
        self._train_plan = None  # what train_on_batch prepared (see _TrainStep)
        self._check_chain()
        dense_ready = all(layer.built for layer in layers if isinstance(layer, Dense))
        if (seed is not None or dense_ready) and self.input_features is not None:
            self.build(seed=seed)  # (with every Dense seeded, the rest needs no randomness)

    # ------------------------------------------------------------------ structure
    @property
    def input_features(self):
        for layer in self.layers:
            if isinstance(layer, Dense):
                return layer.in_features
        return None

    @property
    def output_features(self):
        width = self.input_features
        for layer in self.layers:
            width = layer.output_features(width)
        return width

    def _check_chain(self):
        width, source = None, None
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dense):
                if width is not None and layer.in_features not in (None, width):
                    raise ValueError(
                        f"layers do not chain: layers[{i}] {layer!r} expects "
                        f"{layer.in_features} input features, but layers[{source}] outputs "
                        f"{width}"
                    )
                source = i
            width = layer.output_features(width)

    @property
    def built(self) -> bool:
        return all(layer.built for layer in self.layers)

    def build(self, input_dim: int | None = None, *, seed=None) -> Sequential:
        """Create the parameters of every layer (input width ``input_dim`` if the first
        Dense does not give it), drawing them from ``seed``."""
        rng = initializers.rng_from(seed)
        if input_dim is not None and self.input_features not in (None, input_dim):
            raise ValueError(
                f"the model expects {self.input_features} input features; got {input_dim}"
            )
        width = input_dim if input_dim is not None else self.input_features
        for layer in self.layers:
            width = layer.build(width, rng, self.dtype)
        return self

    def _require_built(self, what):
        if not self.built:
            raise NotBuiltError(
                f"{what}: the model is not built yet. Call model.build(input_dim, seed=...) "
                "or model.fit(...) first (or give every Dense a seed)"
            )

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

    def set_parameters(self, values: dict) -> None:
        """Copy ``values`` (a dict like :meth:`parameters`) into the parameters, in place."""
        params = self.parameters()
        for name, v in values.items():
            if name not in params or tuple(v.shape) != tuple(params[name].shape):
                raise ValueError(f"set_parameters: no parameter {name!r} of shape {v.shape}")
            assign(params[name], v)

    def _place(self, backend: str) -> None:
        """Move every parameter and gradient to where ``backend`` computes (an explicit
        copy, done at the start and the end of ``fit`` only)."""
        for layer in self.layers:
            layer.params = {k: to_backend(v, backend) for k, v in layer.params.items()}
            layer.grads = {k: to_backend(v, backend) for k, v in layer.grads.items()}

    def astype(self, dtype) -> Sequential:
        """A deep copy of the model with every parameter (and gradient) cast to ``dtype``."""
        clone = copy.deepcopy(self)
        clone.dtype = np.dtype(dtype)
        for layer in clone.layers:
            layer.params = {k: np.ascontiguousarray(v, dtype) for k, v in layer.params.items()}
            layer.grads = {k: np.ascontiguousarray(v, dtype) for k, v in layer.grads.items()}
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
        x = _as_data(x, "x", self.dtype)
        return self._forward(x, training)

    def _forward(self, x, training):
        self._set_training(training)
        if self.backend is None:
            self._set_backend(None)
        if x.shape[1] != self.input_features:
            raise ValueError(
                f"X must have {self.input_features} features (columns); got shape {x.shape}"
            )
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
        first layer is a Dense the product that computes its input's gradient is skipped
        (``fit`` and ``train_on_batch`` do this).
        """
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            if i == 0 and not input_grad and isinstance(layer, Dense):
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
        """
        # ---- validate everything before any kernel runs
        epochs = _check_int(epochs, "epochs", 0)
        batch_size = _check_int(batch_size, "batch_size", 1)
        if optimizer is None:
            from .optim import Adam

            optimizer = Adam(lr=1e-3)
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer must be an nnlib.optim optimizer (e.g. nl.optim.Adam(lr=1e-3)); got "
                f"{type(optimizer).__name__}"
            )
        loss_fn = losses_.get(loss, reduction)
        if isinstance(validation_split, bool) or not (
            isinstance(validation_split, numbers.Real) and 0 <= validation_split < 1
        ):
            raise ValueError(f"validation_split must be in [0, 1); got {validation_split!r}")
        if validation_split and validation_data is not None:
            raise ValueError("give validation_split or validation_data, not both")
        callbacks = list(callbacks or [])
        for c in callbacks:
            if not isinstance(c, cb.Callback):
                raise TypeError(f"callbacks must be nnlib Callbacks; got {type(c).__name__}")
        self._set_backend(backend)
        rng = initializers.rng_from(seed)
        X = _as_data(X, "X", self.dtype)
        if not self.built:
            self.build(X.shape[1], seed=rng)
        if X.shape[1] != self.input_features:
            raise ValueError(
                f"X must have {self.input_features} features (columns) for this model; got "
                f"shape {X.shape}"
            )
        targets = loss_fn.prepare(y, self.output_features, self.dtype)
        if len(targets) != len(X):
            raise ValueError(f"X and y must have the same length; got {len(X)} and {len(targets)}")
        if validation_data is not None:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
                raise TypeError("validation_data must be a pair (X_val, y_val)")
            X_val = _as_data(validation_data[0], "validation_data[0]", self.dtype)
            y_val = loss_fn.prepare(validation_data[1], self.output_features, self.dtype, "y_val")
            if X_val.shape[1] != X.shape[1] or len(X_val) != len(y_val):
                raise ValueError(
                    f"validation_data must be (N_val, {X.shape[1]}) data with N_val targets; "
                    f"got {X_val.shape} and {len(y_val)} targets"
                )
        elif validation_split:
            n_val = round(len(X) * validation_split)
            perm = rng.permutation(len(X))
            val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
            X_val, y_val = X[val_idx], targets[val_idx]
            X, targets = X[train_idx], targets[train_idx]
        else:
            X_val = y_val = None
        if len(X) == 0 and epochs > 0:
            raise ValueError("no training examples left (X is empty after the validation split)")
        loss_fn.backend = self.backend
        self.loss = loss_fn
        for layer in self.layers:  # each Dropout gets its own stream, derived from seed
            if isinstance(layer, Dropout):
                layer.reseed(rng.integers(2**63))
        # The data, the parameters and the optimizer state go where the backend computes,
        # once: on "cuda" nothing crosses the bus again until the end of fit (except the
        # shuffled order, once per epoch, and the epoch's loss sums, read back once).
        X, targets = to_backend(X, self.backend), to_backend(targets, self.backend)
        if X_val is not None:
            X_val, y_val = to_backend(X_val, self.backend), to_backend(y_val, self.backend)
        self._place(self.backend)
        optimizer.backend = self.backend
        optimizer.bind(self.parameters(), self.gradients())
        flat = _FlatBuffers(self, optimizer, self.backend) if self.parameters() else None
        history = cb.History()
        callbacks = [history, *callbacks]
        for c in callbacks:
            c.set_context(self, optimizer)

        # ---- the loop
        n = len(X)
        n_batches = -(-n // batch_size)
        self.stop_training = False
        bar = _progress(epochs, verbose)
        for c in callbacks:
            c.on_train_begin({})
        for epoch in range(epochs):
            for c in callbacks:
                c.on_epoch_begin(epoch, {})
            order = to_backend(rng.permutation(n) if shuffle else np.arange(n), self.backend)
            acc = zeros_like_on(X, 2)  # [loss sum, correct count], where the data lives
            for b in range(n_batches):
                idx = order[b * batch_size : (b + 1) * batch_size]
                logs = {"batch": b, "n_batches": n_batches, "size": len(idx)}
                for c in callbacks:
                    c.on_batch_begin(b, logs)
                if flat is not None and not flat.still_flat(self):
                    flat.flatten(self)  # a callback replaced parameters or state
                xb, yb = take_rows(X, idx), take_rows(targets, idx)
                out = self._forward(xb, training=True)
                loss_fn.accumulate(out, yb, acc)
                self.backward(loss_fn.backward(), input_grad=False)
                if flat is not None:
                    flat.gather_grads(self)
                optimizer.grads = self.gradients()
                for c in callbacks:  # NOTE: they may change the gradients in place only
                    c.on_after_backward(b, logs)
                if flat is None:
                    optimizer.step()  # (it says that there is nothing to train)
                else:
                    flat.update()  # every parameter in one call
                for c in callbacks:
                    c.on_batch_end(b, logs)
            logs = self._epoch_logs(acc, n, loss_fn)  # the one read-back of the epoch
            if X_val is not None and len(X_val):
                logs.update(
                    {f"val_{k}": v for k, v in self._evaluate(X_val, y_val, loss_fn).items()}
                )
            logs["lr"] = optimizer.lr
            for c in callbacks:
                c.on_epoch_end(epoch, logs)
            if bar is not None:
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)
                bar.update(1)
            if self.stop_training:
                break
        for c in callbacks:
            c.on_train_end({})
        if bar is not None:
            bar.close()
        self._set_training(False)
        self._place("numpy")  # back to host memory: the end of fit is an explicit boundary
        optimizer.bind(self.parameters(), self.gradients())
        return history

    def train_on_batch(
        self,
        X,
        y,
        *,
        loss="softmax_cross_entropy",
        optimizer: Optimizer | None = None,
        backend: str | None = None,
        reduction: str = "mean",
    ) -> float:
        """One training step on the batch ``(X, y)``: forward (training mode), loss,
        backward, one optimizer update. Returns the batch's loss (a float).

        The same step as one batch of :meth:`fit`, for a training loop of your own. The
        first call prepares the step (checks the arguments, binds the optimizer, puts the
        parameters where the backend computes); later calls with the same loss,
        optimizer, backend and reduction check only ``X`` and ``y`` and run the step.
        The first Dense layer's input gradient is not computed (nothing uses it).

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
        """
        plan = self._train_plan
        if plan is None or not plan.matches(self, loss, optimizer, backend, reduction):
            plan = self._train_plan = _TrainStep(self, loss, optimizer, backend, reduction)
        X = _as_data(X, "X", self.dtype)
        targets = plan.loss_fn.prepare(y, self.output_features, self.dtype)
        if X.shape[1] != self.input_features:
            raise ValueError(
                f"X must have {self.input_features} features (columns) for this model; got "
                f"shape {X.shape}"
            )
        if len(targets) != len(X):
            raise ValueError(f"X and y must have the same length; got {len(X)} and {len(targets)}")
        return plan.step(self, X, targets)

    # ------------------------------------------------------------------ inference
    def _predict_raw(self, X, batch_size):
        outs = [
            to_host(self._forward(X[i : i + batch_size], training=False))
            for i in range(0, len(X), batch_size)
        ]
        if not outs:
            return np.zeros((0, self.output_features), self.dtype)
        return np.concatenate(outs)

    def _epoch_logs(self, acc, n, loss_fn) -> dict:
        """Loss (and accuracy) of ``n`` examples from the sums in ``acc``."""
        total, correct = (float(v) for v in to_host(acc))
        per_example = 1 if isinstance(loss_fn, losses_.SoftmaxCrossEntropy) else None
        count = n * (per_example or self.output_features)
        logs = {"loss": total / count if loss_fn.reduction == "mean" else total}
        if loss_fn.classification:
            logs["accuracy"] = correct / n
        return logs

    def _evaluate(self, X, targets, loss_fn, batch_size=1024):
        acc = zeros_like_on(X, 2)
        for i in range(0, len(X), batch_size):
            out = self._forward(X[i : i + batch_size], training=False)
            loss_fn.accumulate(out, targets[i : i + batch_size], acc)  # slices: views
        return self._epoch_logs(acc, len(X), loss_fn)

    def _prepare_inference(self, X, backend, what):
        self._require_built(what)
        if backend is not None or self.backend is None:
            self._set_backend(backend)
        X = _as_data(X, "X", self.dtype)
        if X.shape[1] != self.input_features:
            raise ValueError(
                f"X must have {self.input_features} features (columns); got shape {X.shape}"
            )
        return X

    def evaluate(self, X, y, *, loss=None, batch_size: int = 1024, backend=None) -> dict:
        """``{"loss": ..., "accuracy": ...}`` on (X, y) in evaluation mode (no dropout).

        ``loss`` defaults to the one of the last ``fit``; ``accuracy`` is given for the
        classification losses only.
        """
        batch_size = _check_int(batch_size, "batch_size", 1)
        X = self._prepare_inference(X, backend, "evaluate()")
        if loss is None and self.loss is None:
            raise ValueError("evaluate: pass loss=... (the model has not been fit yet)")
        loss_fn = losses_.get(loss, "mean") if loss is not None else copy.copy(self.loss)
        loss_fn.backend = self.backend
        targets = loss_fn.prepare(y, self.output_features, self.dtype)
        if len(targets) != len(X):
            raise ValueError(f"X and y must have the same length; got {len(X)} and {len(targets)}")
        return self._evaluate(X, targets, loss_fn, batch_size)

    def predict_proba(self, X, *, batch_size: int = 1024, backend=None):
        """Class probabilities (N, C): softmax of the output for
        ``softmax_cross_entropy``, sigmoid for ``bce_with_logits``, the output itself for
        ``bce`` (it already is a probability) and when the last layer is a Softmax."""
        batch_size = _check_int(batch_size, "batch_size", 1)
        X = self._prepare_inference(X, backend, "predict_proba()")
        out = self._predict_raw(X, batch_size)
        if isinstance(self.loss, losses_.SoftmaxCrossEntropy):
            return F.softmax(out, backend=self.backend)
        if isinstance(self.loss, losses_.BCEWithLogits):
            return F.sigmoid(out, backend=self.backend)
        if self.loss is None or isinstance(self.loss, losses_.MSE):
            last = type(self.layers[-1]).__name__
            if last not in ("Softmax", "Sigmoid"):
                raise ValueError(
                    "predict_proba: the model is not a classifier (fit it with a "
                    "classification loss, or end it with Softmax/Sigmoid)"
                )
        return out

    def predict(self, X, *, batch_size: int = 1024, backend=None):
        """Class labels (N,) for a classifier (fit with a classification loss); the raw
        output (N, K) otherwise (e.g. a regression fit with ``"mse"``)."""
        batch_size = _check_int(batch_size, "batch_size", 1)
        if self.loss is not None and self.loss.classification:
            proba = self.predict_proba(X, batch_size=batch_size, backend=backend)
            if proba.shape[1] == 1:
                return (proba[:, 0] > 0.5).astype(np.int64)
            return proba.argmax(axis=1)
        X = self._prepare_inference(X, backend, "predict()")
        return self._predict_raw(X, batch_size)

    def save(self, path, optimizer=None):
        """Write the model (and ``optimizer``, if given) to one file: see :func:`nnlib.save`."""
        from .io import save

        return save(self, path, optimizer)

    def __repr__(self):
        inner = ",\n    ".join(repr(layer) for layer in self.layers)
        return f"Sequential([\n    {inner},\n])"


# Below this many elements of elementwise work per step (the Dense outputs N x H and
# the parameters), the step's Numba loops run on one thread: waking a sleeping OpenMP
# thread costs about 8 us a parallel loop on the 2-core reference machine, more than
# the loop's work (a 64-128-10 step ran 2.1x faster on one thread, a 784-256-10 one
# 1.1x; a 784-1024-10 one, 1.3 million elements, the same either way). BLAS keeps its
# own threads.
SERIAL_BELOW = 500_000


def _view(flat, start, values):
    """The view of 1-D ``flat`` from ``start`` with the shape of ``values``, filled with
    them (host or GPU arrays, either way)."""
    view = flat[start : start + values.size].reshape(tuple(values.shape))
    assign(view, values)
    return view


class _FlatBuffers:
    """The parameters, their gradients and the optimizer's state, in one flat buffer each.

    SPEEDTIP: every parameter, its gradient and each of its optimizer states is moved
    into one flat buffer (on the GPU for "cuda"), and the layers' and the optimizer's
    dicts hold views into them (same names, same shapes): the optimizer then updates
    every parameter in one kernel call (one launch on the GPU) on the flat buffers
    instead of one call per parameter. Its update rules are elementwise, so this equals
    the per-parameter update exactly.

    NOTE: a slice of a 1-D GPU array and a reshape of it are views too (numba-cuda's
    ``DeviceNDArray`` and the simulator's stand-in alike), so nothing is copied
    between host and device per step.
    """

    def __init__(self, model, optimizer, backend):
        self.optimizer, self.backend = optimizer, backend
        self.flatten(model)

    def flatten(self, model):
        """Copy every parameter, gradient and state array into new flat buffers and
        point the model's and the optimizer's dicts at views of them."""
        opt = self.optimizer
        opt.bind(model.parameters(), model.gradients())  # state for every parameter
        params, grads = model.parameters(), model.gradients()
        dtype = np.dtype(next(iter(params.values())).dtype)
        total = sum(p.size for p in params.values())
        P, G = empty_on(self.backend, total, dtype), empty_on(self.backend, total, dtype)
        S = {s: empty_on(self.backend, total, dtype) for s in opt.state_names}
        self.views, offset = {}, 0
        for name, p in params.items():
            self.views[name] = (_view(P, offset, p), _view(G, offset, grads[name]))
            state = opt.state[name]
            opt.state[name] = {s: _view(S[s], offset, state[s]) for s in opt.state_names}
            offset += p.size
        for i, layer in enumerate(model.layers):
            for k in layer.params:
                layer.params[k], layer.grads[k] = self.views[f"{i}.{k}"]
        opt.bind(model.parameters(), model.gradients())
        self.buffers = (P, G, S)
        # the views, and where the model and the optimizer keep them
        self.links = [
            (layer, k, self.views[f"{i}.{k}"][0], f"{i}.{k}", dict(opt.state[f"{i}.{k}"]))
            for i, layer in enumerate(model.layers)
            for k in layer.params
        ]

    def still_flat(self, model) -> bool:
        """True while every parameter and state array is still the view made here
        (``fit``, ``load``, ``astype`` or another ``bind`` may have replaced them)."""
        state = self.optimizer.state
        if len(self.links) != sum(len(layer.params) for layer in model.layers):
            return False
        for layer, k, view, name, views in self.links:
            if layer.params.get(k) is not view:
                return False
            held = state.get(name)
            if held is None or any(held.get(s) is not v for s, v in views.items()):
                return False
        return True

    def gather_grads(self, model):
        """Layers that made new gradient arrays (instead of writing into the views) have
        them copied into the flat buffer, and their dicts pointed back at the views."""
        for i, layer in enumerate(model.layers):
            for k, g in layer.grads.items():
                view = self.views[f"{i}.{k}"][1]
                if g is not view:
                    assign(view, g)
                    layer.grads[k] = view

    def update(self):
        """One optimizer step of every parameter: one kernel call on the flat buffers
        (after :meth:`gather_grads`)."""
        P, G, S = self.buffers
        self.optimizer.t += 1
        self.optimizer._update(P, G, S)


class _TrainStep:
    """What :meth:`Sequential.train_on_batch` prepares once and reuses at every call:
    the checked arguments, and the parameters in flat buffers (see :class:`_FlatBuffers`)."""

    def __init__(self, model, loss, optimizer, backend, reduction):
        model._require_built("train_on_batch()")
        self.default_optimizer = optimizer is None
        if optimizer is None:
            previous = model._train_plan
            if previous is not None and previous.default_optimizer:
                optimizer = previous.optimizer  # keep its state
            else:
                from .optim import Adam

                optimizer = Adam(lr=1e-3)
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer must be an nnlib.optim optimizer (e.g. nl.optim.Adam(lr=1e-3)); got "
                f"{type(optimizer).__name__}"
            )
        self.loss_fn = losses_.get(loss, reduction)
        self.loss, self.reduction, self.optimizer = loss, reduction, optimizer
        model._set_backend(backend)
        self.backend = model.backend
        self.loss_fn.backend = self.backend
        model.loss = self.loss_fn
        model._place(self.backend)
        optimizer.backend = self.backend
        optimizer.bind(model.parameters(), model.gradients())
        self.flat = _FlatBuffers(model, optimizer, self.backend) if model.parameters() else None
        # elementwise work of a step: every parameter, plus H per example for each Dense
        self.work = sum(p.size for p in model.parameters().values())
        self.work_per_example = sum(
            layer.out_features for layer in model.layers if isinstance(layer, Dense)
        )

    def matches(self, model, loss, optimizer, backend, reduction) -> bool:
        if optimizer is None:
            same_optimizer = self.default_optimizer
        else:
            same_optimizer = optimizer is self.optimizer
        same_loss = loss is self.loss or (isinstance(loss, str) and loss == self.loss)
        return (
            same_optimizer
            and same_loss
            and reduction == self.reduction
            and resolve_backend(backend) == self.backend
        )

    def step(self, model, X, targets) -> float:
        if self.flat is not None and not self.flat.still_flat(model):
            model._set_backend(self.backend)  # (a fit on another backend moved them)
            self.optimizer.backend = self.backend
            self.flat.flatten(model)  # back into flat buffers, where the backend computes
        X, targets = to_backend(X, self.backend), to_backend(targets, self.backend)
        acc = zeros_like_on(X, 2)  # [loss sum, correct count], where the data lives
        threads = None
        if self.backend == "cpu" and self.work + len(X) * self.work_per_example < SERIAL_BELOW:
            threads = numba.get_num_threads()
            numba.set_num_threads(1)
        try:
            out = model._forward(X, training=True)
            self.loss_fn.accumulate(out, targets, acc)
            model.backward(self.loss_fn.backward(), input_grad=False)
            if self.flat is None:  # no parameters: the optimizer says so
                self.optimizer.grads = model.gradients()
                self.optimizer.step()
            else:
                self.flat.gather_grads(model)
                self.flat.update()  # every parameter in one call
        finally:
            if threads is not None:
                numba.set_num_threads(threads)
        return float(to_host(acc)[0]) * self.loss_fn._scale(out)


def _progress(epochs, verbose):
    if not verbose:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional: no bar then
        return None
    return tqdm(total=epochs, unit="epoch", leave=True)
