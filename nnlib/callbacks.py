"""Callbacks: code that ``fit`` runs at fixed points of training.

Hooks, in the order ``fit`` calls them (``logs`` is a dict):

    on_train_begin(logs)
      on_epoch_begin(epoch, logs)
        on_batch_begin(batch, logs)       logs: batch, n_batches, size
        on_after_backward(batch, logs)    gradients are ready, parameters not yet updated
        on_batch_end(batch, logs)         parameters updated; logs: loss
      on_epoch_end(epoch, logs)           logs: loss, accuracy, val_loss, val_accuracy, lr
    on_train_end(logs)

``self.model`` and ``self.optimizer`` are set before ``on_train_begin``. Setting
``self.model.stop_training = True`` ends training after the current epoch.

NOTE: the parameters and gradients are views of one flat buffer each (the model's
:class:`~nnlib.params.ParameterStore`; the optimizer updates them all in one call).
``on_after_backward`` may change the gradients in place (``g *= 0.5``); putting an
array in a layer's slot (``layer.grads["W"] = g2``) copies its values into the view.
"""

from __future__ import annotations

import csv
import math

import numpy as np

from ._arrays import copy, to_host
from ._validate import check_scalar
from .layers import ReLU

__all__ = [
    "CSVLogger",
    "Callback",
    "Diagnostics",
    "EarlyStopping",
    "History",
    "LearningRateScheduler",
]


class Callback:
    model = None
    optimizer = None

    def set_context(self, model, optimizer):
        self.model, self.optimizer = model, optimizer

    def on_train_begin(self, logs): ...
    def on_epoch_begin(self, epoch, logs): ...
    def on_batch_begin(self, batch, logs): ...
    def on_after_backward(self, batch, logs): ...
    def on_batch_end(self, batch, logs): ...
    def on_epoch_end(self, epoch, logs): ...
    def on_train_end(self, logs): ...


class History(Callback):
    """What ``fit`` returns: ``history.history["loss"]`` etc., one entry per epoch.

    ``history["val_loss"]`` is short for ``history.history["val_loss"]``.
    """

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs):
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __getitem__(self, key):
        return self.history[key]

    def __repr__(self):
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"


class CSVLogger(Callback):
    """Append each epoch's logs to a CSV file at ``path`` (one header row)."""

    def __init__(self, path):
        self.path = path

    def on_train_begin(self, logs):
        self._file = open(self.path, "w", newline="")  # closed in on_train_end
        self._writer = None

    def on_epoch_end(self, epoch, logs):
        row = {"epoch": epoch, **logs}
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=list(row))
            self._writer.writeheader()
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs):
        self._file.close()


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs in a row without ``monitor`` improving by ``min_delta``.

    ``monitor`` defaults to ``"val_loss"`` when there is validation data, else ``"loss"``;
    a name ending in ``accuracy`` is maximised, anything else minimised. With
    ``restore_best=True`` the weights of the best epoch are put back at the end.
    """

    def __init__(self, patience: int = 5, *, monitor=None, min_delta=0.0, restore_best=False):
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be an int >= 0; got {patience!r}")
        self.patience, self.monitor, self.min_delta = patience, monitor, float(min_delta)
        self.restore_best = restore_best

    def on_train_begin(self, logs):
        self.best, self.best_epoch, self.wait, self.best_weights = None, None, 0, None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs):
        key = self.monitor or ("val_loss" if "val_loss" in logs else "loss")
        if key not in logs:
            raise KeyError(f"EarlyStopping: monitor {key!r} is not logged; have {sorted(logs)}")
        value = logs[key]
        sign = -1.0 if key.endswith("accuracy") else 1.0  # minimise sign * value
        if self.best is None or sign * value < sign * self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_weights = {k: copy(v) for k, v in self.model.parameters().items()}
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = True
                self.stopped_epoch = epoch

    def on_train_end(self, logs):
        if self.restore_best and self.best_weights is not None:
            self.model.set_parameters(self.best_weights)


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate each epoch from ``schedule(epoch, base_lr)``
    (e.g. :class:`nnlib.optim.CosineAnnealingLR`); the rate is logged as ``lr``."""

    def __init__(self, schedule):
        if not callable(schedule):
            raise TypeError(f"schedule must be callable (epoch, base_lr) -> lr; got {schedule!r}")
        self.schedule = schedule

    def on_train_begin(self, logs):
        self.base_lr = self.optimizer.lr

    def on_epoch_begin(self, epoch, logs):
        lr = self.schedule(epoch, self.base_lr)
        try:
            lr = check_scalar(lr, "lr", positive=True)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"LearningRateScheduler: the schedule gave the learning rate {lr!r} for epoch "
                f"{epoch} ({err}); a learning rate must be a finite number > 0"
            ) from None
        self.optimizer.lr = lr


class Diagnostics(Callback):
    """Per-layer health of training, measured on the last batch of every ``every``-th epoch.

    ``records`` is a list of dicts, one per (epoch, layer), with:

    ``act_mean``, ``act_std``  mean and standard deviation of the layer's output;
    ``dead_fraction``          for ReLU layers (and Dense with a fused ReLU): the
                               fraction of units that are 0 for every example of the batch;
    ``grad_norm``              the L2 norm of all the layer's parameter gradients;
    ``update_ratio``           ||update|| / ||weights|| of the optimizer step (~1e-3 is
                               healthy; much larger is unstable, much smaller stalls).
    """

    def __init__(self, every: int = 1):
        self.every = every
        self.records: list[dict] = []

    def _active(self, logs):
        return self._epoch % self.every == 0 and logs["batch"] == logs["n_batches"] - 1

    def on_epoch_begin(self, epoch, logs):
        self._epoch = epoch

    def on_batch_begin(self, batch, logs):
        self.model.record_outputs = self._active(logs)

    def on_after_backward(self, batch, logs):
        if not self._active(logs):
            return
        self._rows = []
        self._before = []
        for i, (layer, out) in enumerate(zip(self.model.layers, self.model.outputs, strict=False)):
            out = to_host(out).astype(np.float64)  # opt-in diagnostics may read back
            relu = isinstance(layer, ReLU) or getattr(layer, "activation", None) == "relu"
            grads = [to_host(g).astype(np.float64) for g in layer.grads.values()]
            self._rows.append(
                {
                    "epoch": self._epoch,
                    "layer": i,
                    "name": repr(layer),
                    "act_mean": float(out.mean()) if out.size else math.nan,
                    "act_std": float(out.std()) if out.size else math.nan,
                    "dead_fraction": float(np.mean((out <= 0).all(axis=0))) if relu else math.nan,
                    "grad_norm": math.sqrt(sum(float((g * g).sum()) for g in grads))
                    if grads
                    else math.nan,
                }
            )
            self._before.append([to_host(p).astype(np.float64) for p in layer.params.values()])

    def on_batch_end(self, batch, logs):
        if not self._active(logs):
            return
        self.model.record_outputs = False
        for row, layer, before in zip(self._rows, self.model.layers, self._before, strict=False):
            after = [to_host(p).astype(np.float64) for p in layer.params.values()]
            step = math.sqrt(
                sum(float(((a - b) ** 2).sum()) for a, b in zip(after, before, strict=False))
            )
            norm = math.sqrt(sum(float((b * b).sum()) for b in before))
            row["update_ratio"] = step / norm if before and norm > 0 else math.nan
            self.records.append(row)

    def table(self, epoch: int | None = None) -> str:
        """The records of ``epoch`` (default: the last one) as a text table."""
        if not self.records:
            return "(no diagnostics recorded)"
        epoch = self.records[-1]["epoch"] if epoch is None else epoch
        keys = ("act_mean", "act_std", "dead_fraction", "grad_norm", "update_ratio")
        lines = [f"{'layer':<36}" + "".join(f"{k:>14}" for k in keys)]
        for r in self.records:
            if r["epoch"] == epoch:
                lines.append(f"{r['name']:<36}" + "".join(f"{r[k]:>14.4g}" for k in keys))
        return "\n".join(lines)
