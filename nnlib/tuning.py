"""The learning-rate range test (Leslie Smith 2015, "Cyclical learning rates for training
neural networks"; fastai's ``lr_find``).

>>> import nnlib as nl
>>> X, y = nl.datasets.blobs(400, centers=3, seed=0)
>>> model = nl.Sequential([nl.Dense(2, 16), nl.ReLU(), nl.Dense(16, 3)])
>>> found = nl.tuning.lr_find(model, X, y, num_steps=60, batch_size=32, seed=0)
>>> float(found.lrs[0]), len(found.lrs) <= 60
(1e-07, True)
>>> 1e-7 <= found.suggestion <= 10.0
True

Train for ``num_steps`` mini-batches while the learning rate rises exponentially from
``start_lr`` to ``end_lr``, recording each batch's loss. Too small a rate and the loss
does not move; a good one and it falls fast; too large and it blows up. The rate where
the (smoothed) loss falls fastest is a good learning rate to train with; fastai's other
rule of thumb is a tenth of the rate at the minimum (``min_loss_lr / 10``).

The test is a probe, not training: the model's parameters, gradients and buffers
(BatchNorm's running statistics), its layers' random streams and the optimizer's state,
step count and learning rate are put back exactly (bitwise) when it ends, however it ends
(the loss diverging, an exception, Ctrl-C).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from . import init as initializers
from . import losses as losses_
from ._arrays import assign, copy
from ._inputs import as_data, check_int
from ._validate import is_device_array
from .layers import BatchNorm1d, Dropout
from .model import Sequential
from .optim import Adam, Optimizer

__all__ = ["LRFinder", "lr_find"]

#: the suggestion skips the last SKIP_END points (fastai's ``lr_find``): the blow-up at
#: the end of a diverged run makes steep, meaningless slopes there
SKIP_END = 5


@dataclass
class LRFinder:
    """The result of :func:`lr_find`. K <= ``num_steps`` steps were taken (fewer when
    the loss diverged)."""

    lrs: np.ndarray  # (K,) the learning rate of each step
    losses: np.ndarray  # (K,) each step's batch loss (before its update)
    smoothed: np.ndarray  # (K,) the bias-corrected exponential moving average of losses
    num_steps: int  # the number of steps asked for
    diverged: bool  # stopped early: the smoothed loss passed diverge_factor x its minimum

    @property
    def suggestion(self) -> float | None:
        """The learning rate where the smoothed loss falls fastest against log(lr).

        Exactly (as fastai's "steep" suggestion): leave out the first ``num_steps // 10``
        points (the start of the moving average is noisy) and the last :data:`SKIP_END`
        (the blow-up); if fewer than 3 points are left, use every point. On those points
        take the slopes between neighbours, (s[i+1] - s[i]) / (log lr[i+1] - log lr[i]),
        and return ``lrs[i]`` of the most negative one (the left end of the steepest
        segment). None when no slope is negative (the loss never fell: try a wider range
        or more steps) or fewer than 2 finite points were recorded.
        """
        lrs, s = self.lrs, self.smoothed
        first, last = self.num_steps // 10, len(s) - SKIP_END
        if last - first < 3:
            first, last = 0, len(s)
        lrs, s = lrs[first:last], s[first:last]
        finite = np.isfinite(s)
        if finite.sum() < 2:
            return None
        if not finite.all():  # a NaN/inf loss ends the run: keep what came before it
            stop = int(np.argmin(finite))
            lrs, s = lrs[:stop], s[:stop]
            if len(s) < 2:
                return None
        slopes = np.diff(s) / np.diff(np.log(lrs))
        i = int(np.argmin(slopes))
        return float(lrs[i]) if slopes[i] < 0 else None

    @property
    def min_loss_lr(self) -> float:
        """The learning rate at the minimum of the smoothed loss (fastai suggests a tenth
        of it)."""
        s = np.where(np.isfinite(self.smoothed), self.smoothed, np.inf)
        return float(self.lrs[int(np.argmin(s))])

    def plot(self, ax=None, *, raw: bool = True):
        """The loss against the learning rate (log axis): the smoothed curve, the raw
        batch losses faintly (``raw``), the suggestion marked. Returns the axes."""
        import matplotlib.pyplot as plt  # the course's dependency, not the library's

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.8))
        if raw:
            ax.plot(self.lrs, self.losses, color="0.7", lw=0.8, label="batch loss")
        ax.plot(self.lrs, self.smoothed, color="C0", label="smoothed")
        lr = self.suggestion
        if lr is not None:
            y = self.smoothed[int(np.argmin(np.abs(self.lrs - lr)))]
            ax.plot([lr], [y], "o", color="C3", label=f"suggestion {lr:.2g}")
        finite = self.smoothed[np.isfinite(self.smoothed)]
        if len(finite):  # the blow-up at the end would squash the interesting part
            low, high = finite.min(), finite[: max(1, len(finite) - SKIP_END)].max()
            pad = 0.05 * (high - low) or 0.05 * abs(high) or 0.05
            ax.set_ylim(low - pad, high + pad)
        ax.set_xscale("log")
        ax.set(xlabel="learning rate", ylabel="loss", title="learning-rate range test")
        ax.legend()
        return ax


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a number > 0; got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return float(value)


class _Saved:
    """Everything a training step can change in ``model`` and ``optimizer``, saved so
    that :meth:`restore` puts it back exactly: the attributes of the model, its parameter
    store, its layers, its kept training step and loss, and of the optimizer (the same
    objects, so that views held elsewhere stay live); the contents of their dicts and lists
    (the layers' parameter slots, the optimizer's state); the values of the arrays updated in
    place (the flat parameters and gradients, the buffers, the optimizer's state); and
    the state of every random generator."""

    def __init__(self, model, optimizer, loss):
        plan = model._train_plan
        objects = [model, model.store, *model.layers, optimizer, plan, model.loss, loss]
        if plan is not None:
            objects += [plan.loss_fn, plan.optimizer]
        seen, self.objects = set(), []
        for o in objects:
            if o is not None and id(o) not in seen and hasattr(o, "__dict__"):
                seen.add(id(o))
                self.objects.append(o)
        self.attributes = [(o, dict(vars(o))) for o in self.objects]
        self.dicts = [
            (d, dict(d)) for o in self.objects for d in vars(o).values() if isinstance(d, dict)
        ]
        self.dicts += [  # the optimizer's state: {name: {state name: array}}
            (d, dict(d)) for o in self.objects if isinstance(o, Optimizer) for d in o.state.values()
        ]
        self.lists = [
            (v, list(v)) for o in self.objects for v in vars(o).values() if isinstance(v, list)
        ]
        arrays = [model.store.flat_params, model.store.flat_grads]
        for layer in model.layers:
            arrays += list(layer.buffers.values())
            if isinstance(layer, Dropout) and layer.device_states is not None:
                arrays.append(layer.device_states)
        for o in self.objects:
            if isinstance(o, Optimizer):
                arrays += list(o.flat_state.values())
                if o.store is None:  # per-tensor state (else views of flat_state)
                    arrays += [a for v in o.state.values() for a in v.values()]
        self.values = [(a, copy(a)) for a in arrays if _is_array(a)]
        self.generators = [
            (g, g.bit_generator.state)
            for o in self.objects
            for g in vars(o).values()
            if isinstance(g, np.random.Generator)
        ]

    def restore(self) -> None:
        for d, items in self.dicts:
            dict.clear(d)  # (dict's own methods: Slots.__setitem__ would copy values)
            dict.update(d, items)
        for v, items in self.lists:
            v[:] = items
        for o, attributes in self.attributes:
            vars(o).clear()
            vars(o).update(attributes)
        for a, saved in self.values:
            assign(a, saved)
        for g, state in self.generators:
            g.bit_generator.state = state


def _is_array(a) -> bool:
    return isinstance(a, np.ndarray) or is_device_array(a)


def lr_find(
    model: Sequential,
    X,
    y,
    *,
    loss="softmax_cross_entropy",
    optimizer: Optimizer | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    batch_size: int = 64,
    smoothing: float = 0.98,
    diverge_factor: float = 4.0,
    seed=None,
    backend: str | None = None,
) -> LRFinder:
    """Run the learning-rate range test on ``model``; return an :class:`LRFinder`.

    Step i (0 <= i < num_steps) trains one mini-batch with learning rate
    ``start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))``: a geometric sequence from
    ``start_lr`` to ``end_lr``, set on the optimizer's ``lr`` before the step, through
    ``model.train_on_batch`` (the same step as ``fit``, on any backend). The mini-batches
    of ``batch_size`` examples (all of them, if fewer) are taken in order from one seeded
    shuffle of (X, y), wrapping around to its start when it runs out.

    The smoothed loss is fastai's bias-corrected exponential moving average:
    ``avg_i = smoothing * avg_{i-1} + (1 - smoothing) * loss_i`` (avg_{-1} = 0) and
    ``smoothed_i = avg_i / (1 - smoothing ** (i + 1))``. The test stops early, after
    recording the step, when ``smoothed_i > diverge_factor * min(smoothed_0..i)`` or the
    loss is NaN or infinite (``diverge_factor=math.inf`` never stops early; the rule
    assumes a positive loss, as every nnlib loss is).

    Afterwards the model and the optimizer are exactly as before the call (see
    :mod:`nnlib.tuning`), also when the loss diverged or an exception was raised. A model
    not built yet is built first from X's shape and ``seed``, as ``fit`` builds it (the
    same initial weights as ``fit(seed=seed)``), and is left built with those weights.

    Parameters
    ----------
    model : :class:`nnlib.Sequential`
    X : array (N, D) or images (N, C, H, W)
    y : targets for ``loss`` (N,) or (N, K), as in :meth:`~nnlib.Sequential.fit`
    loss : name or :class:`nnlib.losses.Loss` (mean over the batch)
    optimizer : the optimizer you will train with (its hyper-parameters, e.g. momentum,
        shape the curve); its learning rate is overridden during the test and restored
        after it. Default: a new ``Adam()`` (``fit``'s default), thrown away afterwards.
    start_lr, end_lr : 0 < start_lr < end_lr
    num_steps : int >= 2, the number of mini-batches (and learning rates)
    batch_size : int >= 1
    smoothing : the moving average's factor in [0, 1); 0 keeps the raw losses
    diverge_factor : number > 1, or ``math.inf``
    seed : int, Generator or None: the shuffle, the dropout masks and (if not built)
        the initial weights
    backend : "numpy", "cpu" or "cuda" (see :func:`nnlib.use_backend`)
    """
    # ---- validate everything before anything changes
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be an nl.Sequential; got {type(model).__name__}")
    start_lr, end_lr = _positive(start_lr, "start_lr"), _positive(end_lr, "end_lr")
    if not start_lr < end_lr:
        raise ValueError(
            f"start_lr must be smaller than end_lr; got start_lr={start_lr:g}, "
            f"end_lr={end_lr:g} (the test raises the rate, e.g. from 1e-7 to 10)"
        )
    num_steps = check_int(num_steps, "num_steps", 2)
    batch_size = check_int(batch_size, "batch_size", 1)
    if (
        isinstance(smoothing, bool)
        or not isinstance(smoothing, numbers.Real)
        or not 0 <= smoothing < 1
    ):
        raise ValueError(f"smoothing must be in [0, 1), e.g. 0.98; got {smoothing!r}")
    if (
        isinstance(diverge_factor, bool)
        or not isinstance(diverge_factor, numbers.Real)
        or not diverge_factor > 1
    ):
        raise ValueError(
            f"diverge_factor must be a number > 1 (or math.inf, never stop early); got "
            f"{diverge_factor!r}"
        )
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(
            "optimizer must be an nnlib.optim optimizer (e.g. nl.optim.SGD(momentum=0.9)) or "
            f"None; got {type(optimizer).__name__}"
        )
    losses_.get(loss)  # a bad name is refused here, before the model is built
    X = as_data(X, "X", model.dtype)
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != len(X):
        got = len(y) if y.ndim else "a scalar"
        raise ValueError(f"X and y must have the same length; got {len(X)} and {got}")
    if len(X) == 0:
        raise ValueError("X is empty (0 rows): the test needs examples to train on")
    size = min(batch_size, len(X))
    if size == 1 and any(isinstance(layer, BatchNorm1d) for layer in model.layers):
        raise ValueError(
            "lr_find: a mini-batch of one example cannot go through BatchNorm1d in "
            "training mode (its variance is undefined); use batch_size >= 2 and at least "
            "2 examples"
        )
    rng = initializers.rng_from(seed)
    if not model.built:  # as fit does: the same weights as fit(seed=seed)
        model.build(X.shape[1] if X.ndim == 2 else tuple(X.shape[1:]), seed=rng)
    optimizer = Adam() if optimizer is None else optimizer

    lrs = start_lr * (end_lr / start_lr) ** (np.arange(num_steps) / (num_steps - 1))
    lrs[-1] = end_lr  # (exactly, not within rounding)
    saved = _Saved(model, optimizer, loss)
    raw, smoothed = [], []
    diverged = False
    try:
        for layer in model.layers:  # each Dropout its own stream, as fit gives them
            if isinstance(layer, Dropout):
                layer.reseed(rng.integers(2**63))
        order = rng.permutation(len(X))
        avg, best = 0.0, math.inf
        for i, lr in enumerate(lrs):
            idx = order[np.arange(i * size, (i + 1) * size) % len(X)]
            optimizer.lr = float(lr)
            value = model.train_on_batch(
                X[idx], y[idx], loss=loss, optimizer=optimizer, backend=backend
            )
            avg = smoothing * avg + (1 - smoothing) * value
            s = avg / (1 - smoothing ** (i + 1))
            raw.append(value)
            smoothed.append(s)
            best = min(best, s)
            if not math.isfinite(s) or s > diverge_factor * best:
                diverged = True
                break
    finally:
        saved.restore()
    return LRFinder(
        lrs=lrs[: len(raw)].copy(),
        losses=np.array(raw, dtype=np.float64),
        smoothed=np.array(smoothed, dtype=np.float64),
        num_steps=num_steps,
        diverged=diverged,
    )
