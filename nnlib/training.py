"""Training: one step, and the loop around it.

* :class:`TrainStep` is *the* training step: forward (training mode), loss, backward,
  one optimizer update. ``Sequential.fit`` runs it once per mini-batch and
  ``Sequential.train_on_batch`` once per call, so the two cannot drift apart.
* :func:`fit` is the loop: validation of everything before any kernel runs, the split,
  the shuffling, the callbacks, the progress bar and the epoch logs.

The model's parameters and gradients live in one flat buffer each (its
:class:`~nnlib.params.ParameterStore`); the step binds the optimizer to that store, and
the optimizer updates every parameter in one call on it.
"""

from __future__ import annotations

import math
import numbers

import numba
import numpy as np

from . import callbacks as cb
from . import compiled as compiled_
from . import init as initializers
from . import losses as losses_
from ._arrays import to_backend, to_host, zeros_like_on
from ._backend import resolve_backend
from ._inputs import as_data, check_features, check_int, check_lengths, example_shape
from .layers import BatchNorm1d, Conv2D, Dense, Dropout
from .ops.gather import take_rows
from .optim import Adam, Optimizer

__all__ = ["SERIAL_BELOW", "TrainStep", "TrainingDivergedError", "fit"]

# Below this many elements of elementwise work per step (the Dense outputs N x H and
# the parameters), the step's Numba loops run on one thread: waking a sleeping OpenMP
# thread costs about 8 us a parallel loop on the 2-core reference machine, more than
# the loop's work (a 64-128-10 step ran 2.1x faster on one thread, a 784-256-10 one
# 1.1x; a 784-1024-10 one, 1.3 million elements, the same either way). BLAS keeps its
# own threads.
SERIAL_BELOW = 500_000
# Below this many floating-point operations in a step's matrix products (the Dense
# layers' forward and backward products), BLAS runs them on one thread too: measured on
# the reference machine, one thread was faster for a 64-128-10 step at batch 64 (3.6
# MFLOP: 66 us against 124 us a step) and a 256-256-10 one at batch 64 (26 MFLOP: 267
# against 302 us), two for 784-256-10 at batch 32 (51 MFLOP: 396 against 447 us) and
# above. Needs threadpoolctl (optional) to reach the BLAS library.
BLAS_SERIAL_BELOW = 32_000_000


_BLAS = None  # threadpoolctl's controllers of the loaded OpenBLAS libraries, once found


def _blas_libraries():
    """The OpenBLAS libraries loaded in this process (SciPy's is the one ``np.dot``
    calls inside the kernels), as threadpoolctl controllers; [] without threadpoolctl,
    an optional dependency (the course's environment has it)."""
    global _BLAS
    if _BLAS is None:
        try:
            import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's BLAS, as Numba does)
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS = []
        else:
            _BLAS = ThreadpoolController().select(internal_api="openblas").lib_controllers
    return _BLAS


class _OneThread:
    """``with _OneThread(loops, blas):`` runs a small step's Numba loops (``loops``) and
    its BLAS calls (``blas``) on the calling thread, then restores the thread counts.

    SPEEDTIP: on the 2-core reference machine a 64-128-10 step's five matrix products
    took 60 us with OpenBLAS's two threads and 34 us on one (waking the second thread
    costs more than the product), and the whole compiled step 110 us against 54 us."""

    def __init__(self, loops: bool, blas: bool):
        self.loops, self.blas = loops, blas

    def __enter__(self):
        if self.loops:
            self.threads = numba.get_num_threads()
            numba.set_num_threads(1)
        self.libs = [(lib, lib.num_threads) for lib in _blas_libraries()] if self.blas else []
        for lib, _ in self.libs:
            lib.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        if self.loops:
            numba.set_num_threads(self.threads)
        for lib, n in self.libs:
            lib.set_num_threads(n)
        return False


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite (``fit(check_finite=True)``, the default)."""


def _diverged(epoch, batch, n_batches, optimizer, value) -> TrainingDivergedError:
    where = f"epoch {epoch}" + (f", batch {batch} of {n_batches}" if batch is not None else "")
    return TrainingDivergedError(
        f"the training loss became {value} at {where} (learning rate {optimizer.lr:g}): "
        "training diverged. Try a learning rate 3-10x lower, check the inputs are scaled, "
        "or pass check_finite=False to fit to keep going anyway"
    )


def bind(optimizer: Optimizer, store) -> None:
    """Bind ``optimizer`` to ``store`` unless it already is, to the same buffers (a
    rebind allocates the state again and copies it)."""
    if optimizer.store is not store or optimizer.store_version != store.version:
        optimizer.bind(store)


def check_optimizer(optimizer) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"optimizer must be an nnlib.optim optimizer (e.g. nl.optim.Adam(lr=1e-3)); got "
            f"{type(optimizer).__name__}"
        )
    return optimizer


class TrainStep:
    """One training step of ``model`` with ``loss_fn`` and ``optimizer`` on ``backend``.

    Making it checks the arguments, puts the parameters where the backend computes and
    binds the optimizer to the model's parameter store. Calling it runs a step on a
    batch that is already validated and placed: ``step(X, targets, acc)`` adds the
    batch's loss sum and correct count to ``acc`` (2,) and returns the output (N, K).
    ``step(X, targets, acc, hooks, *args)`` also calls each ``hook(*args)`` between the
    backward pass and the update (``fit``'s ``on_after_backward`` callbacks).

    It also carries the thread policy: a small step runs its Numba loops on one thread
    (see :data:`SERIAL_BELOW`).

    ``compiled=True``: where :func:`nnlib.compiled.plan` can compile the model (cpu
    backend, supported layers, loss and optimizer), a step runs as one compiled call of
    the same kernels (:attr:`fast`); otherwise, or with ``compiled=False``, layer by
    layer. :attr:`path` says which ran last, :attr:`why` why not the compiled one.
    """

    def __init__(
        self,
        model,
        loss_fn: losses_.Loss,
        optimizer: Optimizer,
        backend: str,
        compiled: bool = True,
    ):
        model._require_built("training")
        self.model, self.loss_fn = model, loss_fn
        self.optimizer = check_optimizer(optimizer)
        self.backend = resolve_backend(backend)
        loss_fn.backend = self.backend
        # elementwise work of a step: every parameter, plus the outputs of each Dense (H)
        # and Conv2D (F * OH * OW) per example
        self.work_per_example, width = 0, model.input_features
        self.flops_per_example = 0  # of the Dense layers' products, forward and backward
        for layer in model.layers:
            width = layer.output_features(width)
            if isinstance(layer, (Dense, Conv2D)) and width is not None:
                self.work_per_example += math.prod(np.atleast_1d(width))
            if isinstance(layer, Dense):
                self.flops_per_example += 6 * layer.in_features * layer.out_features
        self.prepare()
        if compiled:
            self.fast, self.why = compiled_.plan(model, loss_fn, self.optimizer, self.backend)
        else:
            self.fast, self.why = None, "compiled=False"
        self.path = None  # "compiled epoch", "compiled step" or "layer by layer", once run

    def compiled_now(self, n: int, hooks=()) -> str:
        """ "" when a step on ``n`` examples runs compiled, else why not."""
        if self.fast is None:
            return self.why
        if hooks:
            return "a callback runs between the backward pass and the update"
        if n == 0:
            return "the batch is empty"
        return self.fast.usable()

    def prepare(self) -> None:
        """Place the parameters for the backend and bind the optimizer to them."""
        model = self.model
        model._set_backend(self.backend)
        model._place(self.backend)
        model.loss = self.loss_fn
        self.optimizer.backend = self.backend
        bind(self.optimizer, model.store)
        self.bound = (model.store, model.store.version)

    def ready(self) -> bool:
        """False when something moved the parameters since :meth:`prepare` (a ``fit``
        on another backend, a rebuild, another optimizer bound to them)."""
        store = self.model.store
        return (
            self.bound == (store, store.version)
            and self.optimizer.store is store
            and self.model.backend == self.backend
        )

    def serial(self, n: int) -> bool:
        """Whether a step on ``n`` examples runs its Numba loops on one thread."""
        work = self.model.store.size + n * self.work_per_example
        return self.backend == "cpu" and work < SERIAL_BELOW

    def serial_blas(self, n: int) -> bool:
        """Whether a step on ``n`` examples runs its matrix products on one thread."""
        return self.backend == "cpu" and n * self.flops_per_example < BLAS_SERIAL_BELOW

    def __call__(self, X, targets, acc, after_backward=(), *args):
        model, loss_fn = self.model, self.loss_fn
        fast = not self.compiled_now(len(X), after_backward)
        with _OneThread(self.serial(len(X)), self.serial_blas(len(X))):
            if fast:
                self.path = "compiled step"
                return self.fast.step(X, targets, acc)
            self.path = "layer by layer"
            out = model._forward(X, training=True)
            loss_fn.accumulate(out, targets, acc)
            model.backward(loss_fn.backward(), input_grad=False)
            for hook in after_backward:  # (callbacks: they may change gradients in place)
                hook(*args)
            self.optimizer.step()  # every parameter in one call, on the flat buffers
        return out

    def epoch(self, X, targets, order, batch_size, acc, check_finite) -> int:
        """Every mini-batch of an epoch as one compiled call (see
        :meth:`nnlib.compiled.CompiledStep.epoch`); the caller checked
        :meth:`compiled_now`. Returns the number of batches run."""
        rows = min(batch_size, len(X))
        with _OneThread(self.serial(rows), self.serial_blas(rows)):
            self.path = "compiled epoch"
            return self.fast.epoch(X, targets, order, batch_size, acc, check_finite)


def train_on_batch(model, X, y, *, loss, optimizer, backend, reduction, compiled=True) -> float:
    """What :meth:`nnlib.Sequential.train_on_batch` does (see there)."""
    model._require_built("train_on_batch()")
    compiled = _check_compiled(compiled)
    step = model._train_plan
    if step is None or not _same_plan(step, loss, optimizer, backend, reduction, compiled):
        if optimizer is None:  # one default Adam, kept between the calls without one
            kept = step is not None and step.default_optimizer
            optimizer = step.optimizer if kept else Adam(lr=1e-3)
            default = True
        else:
            default = False
        step = TrainStep(model, losses_.get(loss, reduction), optimizer, backend, compiled)
        step.loss, step.reduction, step.default_optimizer = loss, reduction, default
        step.compiled = compiled
        model._train_plan = step
    elif not step.ready():
        step.prepare()
    X = as_data(X, "X", model.dtype)
    check_features(X, model)
    targets = step.loss_fn.prepare(y, model.output_width(example_shape(X)), model.dtype)
    check_lengths(X, targets)
    X, targets = to_backend(X, step.backend), to_backend(targets, step.backend)
    acc = zeros_like_on(X, 2)  # [loss sum, correct count], where the data lives
    out = step(X, targets, acc)
    model.training_path = step.path
    return float(to_host(acc)[0]) * step.loss_fn._scale(out)


def _check_compiled(compiled) -> bool:
    if not isinstance(compiled, (bool, np.bool_)):
        raise TypeError(
            f"compiled must be True (a compiled step where the model allows it) or False "
            f"(layer by layer); got {compiled!r}"
        )
    return bool(compiled)


def _same_plan(step, loss, optimizer, backend, reduction, compiled=True) -> bool:
    same_optimizer = step.default_optimizer if optimizer is None else optimizer is step.optimizer
    same_loss = loss is step.loss or (isinstance(loss, str) and loss == step.loss)
    return (
        same_optimizer
        and same_loss
        and reduction == step.reduction
        and resolve_backend(backend) == step.backend
        and compiled is step.compiled
    )


def _hooks(callbacks, name):
    """The callbacks' ``name`` methods, leaving out those that do nothing."""
    base = getattr(cb.Callback, name)
    return [getattr(c, name) for c in callbacks if getattr(type(c), name) is not base]


def fit(
    model,
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
    """What :meth:`nnlib.Sequential.fit` does (see there for the arguments)."""
    # ---- validate everything before any kernel runs
    compiled = _check_compiled(compiled)
    epochs = check_int(epochs, "epochs", 0)
    batch_size = check_int(batch_size, "batch_size", 1)
    optimizer = check_optimizer(Adam(lr=1e-3) if optimizer is None else optimizer)
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
    backend = resolve_backend(backend)
    rng = initializers.rng_from(seed)
    X = as_data(X, "X", model.dtype)
    if not model.built:
        model.build(example_shape(X), seed=rng)
    check_features(X, model)
    width = model.output_width(example_shape(X))
    targets = loss_fn.prepare(y, width, model.dtype)
    check_lengths(X, targets)
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise TypeError("validation_data must be a pair (X_val, y_val)")
        X_val = as_data(validation_data[0], "validation_data[0]", model.dtype)
        y_val = loss_fn.prepare(validation_data[1], width, model.dtype, "y_val")
        if X_val.shape[1:] != X.shape[1:] or len(X_val) != len(y_val):
            each = ", ".join(map(str, X.shape[1:]))
            raise ValueError(
                f"validation_data must be (N_val, {each}) data with N_val targets; "
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
    if epochs > 0:
        _check_batch_norm_batches(model, len(X), batch_size)
    for layer in model.layers:  # each Dropout gets its own stream, derived from seed
        if isinstance(layer, Dropout):
            layer.reseed(rng.integers(2**63))
    # The data, the parameters and the optimizer state go where the backend computes,
    # once: on "cuda" nothing crosses the bus again until the end of fit (except the
    # shuffled order, once per epoch, and the epoch's loss sums, read back once).
    step = TrainStep(model, loss_fn, optimizer, backend, compiled)
    X, targets = to_backend(X, backend), to_backend(targets, backend)
    if X_val is not None:
        X_val, y_val = to_backend(X_val, backend), to_backend(y_val, backend)
    history = cb.History()
    callbacks = [history, *callbacks]
    for c in callbacks:
        c.set_context(model, optimizer)

    batch_begin, batch_end = _hooks(callbacks, "on_batch_begin"), _hooks(callbacks, "on_batch_end")
    after_backward = _hooks(callbacks, "on_after_backward")
    n = len(X)
    n_batches = -(-n // batch_size)
    model.stop_training = False
    # A whole epoch runs as one compiled call when no callback runs between batches.
    per_batch_hooks = bool(batch_begin or batch_end or after_backward)
    why = step.compiled_now(min(n, batch_size), after_backward)
    if why and verbose and compiled and backend == "cpu" and epochs > 0:
        print(f"fit: training layer by layer, not compiled: {why}")
    bar = _progress(epochs, verbose)

    # ---- the loop (its end, the boundary back to the host, runs even on an error)
    try:
        for c in callbacks:
            c.on_train_begin({})
        for epoch in range(epochs):
            for c in callbacks:
                c.on_epoch_begin(epoch, {})
            order = to_backend(rng.permutation(n) if shuffle else np.arange(n), backend)
            acc = zeros_like_on(X, 2)  # [loss sum, correct count], where the data lives
            # SPEEDTIP: on the host the running loss sum is checked after every batch (a float
            # read); on the GPU once an epoch, from the epoch's one read-back
            per_batch = check_finite and isinstance(acc, np.ndarray)
            if not per_batch_hooks and not step.compiled_now(min(n, batch_size)):
                # the whole epoch in one compiled call
                if not step.ready():
                    step.prepare()  # a callback moved the parameters
                done = step.epoch(X, targets, order, batch_size, acc, per_batch)
                if per_batch and not math.isfinite(acc[0]):
                    raise _diverged(epoch, done - 1, n_batches, optimizer, acc[0])
            else:
                hooks = (batch_begin, batch_end, after_backward)
                _batches(step, X, targets, order, batch_size, acc, per_batch, epoch, hooks)
            logs = model._epoch_logs(acc, n, loss_fn, width)  # the epoch's one read-back
            if check_finite and not math.isfinite(logs["loss"]):
                raise _diverged(epoch, None, n_batches, optimizer, logs["loss"])
            if X_val is not None and len(X_val):
                logs.update(
                    {f"val_{k}": v for k, v in model._evaluate(X_val, y_val, loss_fn).items()}
                )
            logs["lr"] = optimizer.lr
            for c in callbacks:
                c.on_epoch_end(epoch, logs)
            if bar is not None:
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)
                bar.update(1)
            if model.stop_training:
                break
        for c in callbacks:
            c.on_train_end({})
    finally:
        if bar is not None:
            bar.close()
        model._set_training(False)
        model._place("numpy")  # back to host memory: the end of fit is an explicit boundary
        bind(optimizer, model.store)
        history.path = model.training_path = step.path
    return history


def _batches(step, X, targets, order, batch_size, acc, per_batch, epoch, hooks) -> None:
    """An epoch batch by batch, each step compiled or layer by layer (see TrainStep),
    with the callbacks' batch hooks between them."""
    batch_begin, batch_end, after_backward = hooks
    n_batches = -(-len(X) // batch_size)
    for b in range(n_batches):
        idx = order[b * batch_size : (b + 1) * batch_size]
        logs = {"batch": b, "n_batches": n_batches, "size": len(idx)}
        for hook in batch_begin:
            hook(b, logs)
        if not step.ready():
            step.prepare()  # a callback moved the parameters
        step(take_rows(X, idx), take_rows(targets, idx), acc, after_backward, b, logs)
        if per_batch and not math.isfinite(acc[0]):
            raise _diverged(epoch, b, n_batches, step.optimizer, acc[0])
        for hook in batch_end:
            hook(b, logs)


def _check_batch_norm_batches(model, n: int, batch_size: int) -> None:
    """Refuse, before training starts, a mini-batch of one example for a BatchNorm1d
    (its variance is undefined); PyTorch would fail at that batch, mid-epoch."""
    bn = [i for i, layer in enumerate(model.layers) if isinstance(layer, BatchNorm1d)]
    smallest = n % batch_size or min(n, batch_size)  # the last mini-batch's size
    if not bn or smallest != 1:
        return
    fits = [b for b in range(2, n + 1) if n % b != 1]
    near = min(fits, key=lambda b: (abs(b - batch_size), b)) if fits else None
    hint = f"a batch_size such as {near}" if near else "at least 2 training examples"
    raise ValueError(
        f"fit: with {n} training examples and batch_size={batch_size} a mini-batch holds a "
        f"single example, and BatchNorm1d (layers[{bn[0]}]) cannot normalize a batch of one "
        f"in training mode (its variance is undefined). Use {hint}, so that every "
        "mini-batch has at least 2 examples, or drop one example"
    )


def _progress(epochs, verbose):
    if not verbose:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional: no bar then
        return None
    return tqdm(total=epochs, unit="epoch", leave=True)
