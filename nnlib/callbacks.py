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
import numbers

import numpy as np

from ._arrays import copy, to_host
from ._validate import check_scalar
from .layers import Dense, ReLU, Sigmoid, Tanh

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
        #: how fit trained, at its end: "compiled epoch", "compiled step" or "layer by layer"
        self.path = None

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


#: an output of a tanh layer with ``|y|`` above this, or of a sigmoid layer with ``y``
#: below ``1 - SATURATION`` or above ``SATURATION``, counts as saturated (the derivative
#: there is below 0.06 for tanh, below 0.03 for the sigmoid: almost no gradient passes)
SATURATION = 0.97
#: default histogram bins: activations on [-3, 3]; activation-gradient magnitudes |g| on
#: [1e-12, 1e3], log-spaced (a quarter decade a bin)
DEFAULT_BINS = 60
ACT_RANGE = (-3.0, 3.0)
GRAD_RANGE = (1e-12, 1e3)

_SCALARS = (
    "act_mean",
    "act_std",
    "act_grad_std",
    "dead_fraction",
    "saturation",
    "grad_norm",
    "update_ratio",
)
_HISTOGRAMS = ("act_hist", "grad_hist")


def _kind(layer) -> str | None:
    """The activation whose output ``layer`` gives: "relu", "tanh", "sigmoid" or None."""
    if isinstance(layer, ReLU):
        return "relu"
    if isinstance(layer, Tanh):
        return "tanh"
    if isinstance(layer, Sigmoid):
        return "sigmoid"
    act = getattr(layer, "activation", None)  # an activation fused into a Dense
    return act if act in ("relu", "tanh", "sigmoid") else None


def _edges(value, name: str, *, positive: bool) -> np.ndarray:
    try:
        edges = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        edges = None
    if (
        edges is None
        or edges.ndim != 1
        or len(edges) < 2
        or not np.isfinite(edges).all()
        or not (np.diff(edges) > 0).all()
        or (positive and edges[0] <= 0)
    ):
        what = "positive, " if positive else ""
        example = "np.geomspace(1e-12, 1e3, 61)" if positive else "np.linspace(-3, 3, 61)"
        raise ValueError(
            f"Diagnostics: {name} must be the bin edges, at least 2 finite, {what}strictly "
            f"increasing numbers (e.g. {example}); got {value!r}"
        )
    return edges


def _bins(bins) -> tuple[np.ndarray, np.ndarray]:
    """(activation edges, gradient-magnitude edges) from ``Diagnostics(bins=...)``."""
    n_act = n_grad = DEFAULT_BINS
    given = {}
    if isinstance(bins, dict):
        unknown = set(bins) - {"act", "grad"}
        if unknown:
            raise ValueError(
                f"Diagnostics: bins may have the keys 'act' and 'grad' (the bin edges of the "
                f"activations and of the gradient magnitudes); got the keys {sorted(bins)}"
            )
        given = bins
    elif bins is not None:
        if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or bins < 1:
            raise ValueError(
                "Diagnostics: bins must be None (the defaults), a number of bins >= 1, or a "
                f"dict {{'act': edges, 'grad': edges}}; got {bins!r}"
            )
        n_act = n_grad = int(bins)
    act = (
        _edges(given["act"], "bins['act']", positive=False)
        if "act" in given
        else np.linspace(*ACT_RANGE, n_act + 1)
    )
    grad = (
        _edges(given["grad"], "bins['grad']", positive=True)
        if "grad" in given
        else np.geomspace(*GRAD_RANGE, n_grad + 1)
    )
    return act, grad


def _histogram(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, int]:
    """Counts of ``values`` on ``edges``, values outside them put in the end bins, and how
    many were outside (NaN counts nowhere)."""
    lo, hi = edges[0], edges[-1]
    clipped = int(np.count_nonzero((values < lo) | (values > hi)))
    counts, _ = np.histogram(np.clip(values, lo, hi), bins=edges)
    return counts.astype(np.int64), clipped


def _fraction(mask: np.ndarray) -> float:
    return float(np.count_nonzero(mask)) / mask.size if mask.size else math.nan


def _std(a) -> float:
    return float(a.std()) if a is not None and a.size else math.nan


class Diagnostics(Callback):
    """Per-layer health of training: activations, their gradients, dead and saturated
    units, and the size of the updates, recorded on chosen training steps.

    Parameters
    ----------
    every : int
        record every ``every``-th epoch (``per="epoch"``) or training step (``per="batch"``).
    per : "epoch" or "batch"
        ``"epoch"``: the last batch of epochs 0, every, 2 * every, ...; ``"batch"``:
        training steps 0, every, 2 * every, ..., counted over every ``fit`` this callback
        takes part in.
    histograms : bool
        also count each layer's outputs and output gradients into fixed bins
        (``act_hist``, ``grad_hist``).
    bins : None, int or dict
        the histogram bins (only with ``histograms=True``). None: :data:`DEFAULT_BINS` bins
        on [-3, 3] for the activations and log-spaced on [1e-12, 1e3] for the gradient
        magnitudes |dL/dy|; an int: that many bins on the same ranges; a dict
        ``{"act": edges, "grad": edges}`` (either key): your own increasing edges. The
        edges are fixed when the callback is made (``act_bins``, ``grad_bins``), so
        histograms of different steps, layers and runs can be compared bin by bin; the
        gradient bins are log-spaced because activation gradients span many decades (a
        vanishing gradient moves left a decade or more a layer).

    ``records`` is a list of dicts, one per (recorded step, layer), with:

    ``step``, ``epoch``, ``batch``  when (``step`` counts training steps from 0);
    ``layer``, ``name``         the layer's index in the model and its ``repr``;
    ``act_mean``, ``act_std``   mean and standard deviation of the layer's output y (N, H);
    ``act_grad_std``            standard deviation of dL/dy, the gradient arriving at the
                                layer's output in the backward pass (for the last layer,
                                the gradient of the loss with respect to the model output);
    ``dead_fraction``           for ReLU layers (and Dense with a fused ReLU): the fraction
                                of units that are 0 for every example of the batch, else NaN;
    ``saturation``              for Tanh layers: the fraction of the outputs with
                                ``|y| > 0.97``; for Sigmoid layers: with ``y < 0.03`` or
                                ``y > 0.97`` (:data:`SATURATION`); NaN for other layers;
    ``grad_norm``               the L2 norm of all the layer's parameter gradients (NaN
                                for a layer without parameters);
    ``update_ratio``            ||update|| / ||weights|| of the optimizer step, all the
                                layer's parameters together (~1e-3 is healthy; much larger
                                is unstable, much smaller stalls).

    With ``histograms=True`` also ``act_hist`` (counts of y on ``act_bins``), ``grad_hist``
    (counts of |dL/dy| on ``grad_bins``) and ``act_clipped``, ``grad_clipped``: how many
    values fell outside the edges; they are counted in the first or last bin, so each
    histogram sums to the N * H values of the layer's output (exact zeros of the gradient
    are in the first bin). The statistics are taken in float64 from host copies.

    :meth:`series` gives one statistic as a (recorded steps, layers) array, with
    :attr:`steps` for its rows (a heatmap of layer x step); :meth:`table` prints one step;
    :meth:`dashboard` draws the standard figure.

    It costs nothing on the steps it does not record: the model keeps its outputs
    (``model.record_outputs``) and output gradients (``model.record_grads``) only on the
    steps it records, and the copies to the host are made only then.
    """

    def __init__(self, every: int = 1, *, per: str = "epoch", histograms: bool = False, bins=None):
        if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
            raise ValueError(
                "Diagnostics: every must be an int >= 1 (record every every-th epoch or step); "
                f"got {every!r}"
            )
        if per not in ("epoch", "batch"):
            raise ValueError(
                "Diagnostics: per must be 'epoch' (the last batch of every every-th epoch) or "
                f"'batch' (every every-th training step); got {per!r}"
            )
        if not isinstance(histograms, (bool, np.bool_)):
            raise TypeError(f"Diagnostics: histograms must be True or False; got {histograms!r}")
        if bins is not None and not histograms:
            raise ValueError(
                f"Diagnostics: bins={bins!r} is given but histograms=False; pass "
                "histograms=True to record histograms, or leave bins out"
            )
        self.every, self.per, self.histograms = int(every), per, bool(histograms)
        self.act_bins, self.grad_bins = _bins(bins)
        self.records: list[dict] = []
        self._step = 0  # training steps seen, over every fit
        self._epoch = 0
        self._now = False  # recording this step
        self._flags = (False, False)  # the model's record flags before fit
        self._labels: dict[int, tuple[str, str | None, bool]] = {}  # layer: (label, kind, plain)

    # ------------------------------------------------------------------ recording
    def _active(self, logs) -> bool:
        if self.per == "batch":
            return self._step % self.every == 0
        return self._epoch % self.every == 0 and logs["batch"] == logs["n_batches"] - 1

    def on_train_begin(self, logs):
        self._flags = (self.model.record_outputs, self.model.record_grads)
        self._now = False

    def on_epoch_begin(self, epoch, logs):
        self._epoch = epoch

    def on_batch_begin(self, batch, logs):
        self._now = self._active(logs)
        if self._now:
            self.model.record_outputs = self.model.record_grads = True

    def on_after_backward(self, batch, logs):
        if not self._now:
            return
        model = self.model
        outs, douts = model.outputs, model.output_grads
        self._rows, self._before = [], []
        for i, layer in enumerate(model.layers):
            # opt-in diagnostics may read back: host copies, on the steps recorded only
            y = to_host(outs[i]).astype(np.float64) if i < len(outs) else None
            g = douts[i] if i < len(douts) else None
            g = to_host(g).astype(np.float64) if g is not None else None
            kind = _kind(layer)
            grads = [to_host(v).astype(np.float64) for v in layer.grads.values()]
            row = {
                "step": self._step,
                "epoch": self._epoch,
                "batch": batch,
                "layer": i,
                "name": repr(layer),
                "act_mean": float(y.mean()) if y is not None and y.size else math.nan,
                "act_std": _std(y),
                "act_grad_std": _std(g),
                "dead_fraction": math.nan,
                "saturation": math.nan,
                "grad_norm": math.sqrt(sum(float((v * v).sum()) for v in grads))
                if grads
                else math.nan,
            }
            if y is not None and y.size:
                if kind == "relu":
                    row["dead_fraction"] = float(np.mean((y <= 0).all(axis=0)))
                elif kind == "tanh":
                    row["saturation"] = _fraction(np.abs(y) > SATURATION)
                elif kind == "sigmoid":
                    row["saturation"] = _fraction((y < 1 - SATURATION) | (y > SATURATION))
            if self.histograms:
                empty = np.zeros(0)
                row["act_hist"], row["act_clipped"] = _histogram(
                    empty if y is None else y.ravel(), self.act_bins
                )
                row["grad_hist"], row["grad_clipped"] = _histogram(
                    empty if g is None else np.abs(g.ravel()), self.grad_bins
                )
            label = f"{i} {type(layer).__name__}"
            if isinstance(layer, Dense) and kind is not None:
                label += f"+{kind}"
            self._labels[i] = (label, kind, isinstance(layer, Dense) and kind is None)
            self._rows.append(row)
            self._before.append([to_host(p).astype(np.float64) for p in layer.params.values()])

    def on_batch_end(self, batch, logs):
        if self._now:
            self._now = False
            model = self.model
            model.record_outputs, model.record_grads = self._flags
            if not self._flags[0]:
                model.outputs = []  # drop the references (GPU memory on cuda)
            if not self._flags[1]:
                model.output_grads = []
            for row, layer, before in zip(self._rows, model.layers, self._before, strict=False):
                after = [to_host(p).astype(np.float64) for p in layer.params.values()]
                step = math.sqrt(
                    sum(float(((a - b) ** 2).sum()) for a, b in zip(after, before, strict=False))
                )
                norm = math.sqrt(sum(float((b * b).sum()) for b in before))
                row["update_ratio"] = step / norm if before and norm > 0 else math.nan
                self.records.append(row)
            self._rows = self._before = []
        self._step += 1

    def on_train_end(self, logs):
        self.model.record_outputs, self.model.record_grads = self._flags

    # ------------------------------------------------------------------ reading
    @property
    def steps(self) -> np.ndarray:
        """The recorded training steps, in order (the rows of :meth:`series`)."""
        return np.array(list(dict.fromkeys(r["step"] for r in self.records)), dtype=np.int64)

    @property
    def epochs(self) -> np.ndarray:
        """The epoch of each recorded step (same length as :attr:`steps`)."""
        first = {}
        for r in self.records:
            first.setdefault(r["step"], r["epoch"])
        return np.array(list(first.values()), dtype=np.int64)

    @property
    def layer_names(self) -> list[str]:
        """The name of each layer index (the columns of :meth:`series`)."""
        names = {r["layer"]: r["name"] for r in self.records}
        return [names.get(i, "") for i in range(1 + max(names, default=-1))]

    def series(self, key: str) -> np.ndarray:
        """One statistic over training: a float array (len(steps), n_layers), NaN where a
        layer has no value (``saturation`` of a ReLU layer, say). Row ``k`` is the step
        ``steps[k]``, column ``i`` layer ``i``: what a heatmap of layer x step draws.

        ``key`` is one of ``act_mean``, ``act_std``, ``act_grad_std``, ``dead_fraction``,
        ``saturation``, ``grad_norm``, ``update_ratio``, or (recorded with
        ``histograms=True``) ``act_hist`` or ``grad_hist``, which give (len(steps),
        n_layers, n_bins) arrays of counts.
        """
        if key not in _SCALARS + _HISTOGRAMS:
            raise KeyError(
                f"Diagnostics.series: key must be one of {list(_SCALARS + _HISTOGRAMS)}; "
                f"got {key!r}"
            )
        if key in _HISTOGRAMS and not self.histograms:
            raise ValueError(
                f"Diagnostics.series({key!r}): no histograms were recorded; make the callback "
                "with Diagnostics(histograms=True)"
            )
        steps = self.steps
        row_of = {s: k for k, s in enumerate(steps.tolist())}
        shape = (len(steps), len(self.layer_names))
        if key in _HISTOGRAMS:
            shape += (len(self.act_bins if key == "act_hist" else self.grad_bins) - 1,)
        out = np.full(shape, np.nan)
        for r in self.records:
            out[row_of[r["step"]], r["layer"]] = r[key]
        return out

    def _last_step(self, epoch=None, step=None) -> int:
        if step is not None:
            if step not in set(self.steps.tolist()):
                raise ValueError(
                    f"Diagnostics: step {step!r} was not recorded; recorded steps: "
                    f"{self.steps.tolist()}"
                )
            return step
        rows = self.records if epoch is None else [r for r in self.records if r["epoch"] == epoch]
        if not rows:
            raise ValueError(
                f"Diagnostics: epoch {epoch!r} was not recorded; recorded epochs: "
                f"{sorted(set(self.epochs.tolist()))}"
            )
        return rows[-1]["step"]

    def table(self, epoch: int | None = None, *, step: int | None = None) -> str:
        """The records of one step as a text table: ``step``, else the last recorded step
        of ``epoch``, else the last recorded step."""
        if not self.records:
            return "(no diagnostics recorded)"
        step = self._last_step(epoch, step)
        rows = [r for r in self.records if r["step"] == step]
        width = max(len(r["name"]) for r in rows) + 2
        lines = [f"{'layer':<{width}}" + "".join(f"{k:>14}" for k in _SCALARS)]
        for r in rows:
            lines.append(f"{r['name']:<{width}}" + "".join(f"{r[k]:>14.4g}" for k in _SCALARS))
        return "\n".join(lines)

    # ------------------------------------------------------------------ drawing
    def dashboard(self, *, step: int | None = None, layers=None, fig=None, figsize=(15, 8)):
        """Draw the standard figure of the records; returns the matplotlib ``Figure``.

        Five panels: the activation histograms of each layer and the histograms of its
        output-gradient magnitudes |dL/dy| (at ``step``, default the last recorded one;
        they need ``histograms=True``), ``act_std`` and ``act_grad_std`` by layer (same
        step), a heatmap of layer x step of the saturated fraction (tanh, sigmoid) or the
        dead fraction (ReLU), with its colorbar, and ``update_ratio`` over the steps for
        each layer with parameters, against the 1e-3 rule of thumb.

        ``layers``: the layer indices of the first three panels; default, every layer but
        a plain ``Dense`` (the activations), or every layer if that leaves none. ``fig``:
        draw into this (empty) figure instead of a new pyplot figure of ``figsize``. In a
        notebook, end the cell with ``plt.show()`` (or a ``;``) so it shows once.

        Needs matplotlib, imported only here (``pip install matplotlib``).
        """
        try:
            import matplotlib  # noqa: F401  (optional: only the dashboard draws)
        except ImportError as err:
            raise ImportError(
                "Diagnostics.dashboard() draws with matplotlib, which is not installed here; "
                "install it with `pip install matplotlib` (the course extra has it: "
                '`pip install -e ".[course]"`). The numbers themselves are in '
                "diag.records, diag.series(key) and diag.table()."
            ) from err
        if not self.records:
            raise ValueError(
                "Diagnostics.dashboard(): nothing recorded yet; pass the callback to fit "
                "first (model.fit(..., callbacks=[diag]))"
            )
        step = self._last_step(None, step)
        n_layers = len(self.layer_names)
        if layers is None:
            layers = [i for i in range(n_layers) if not self._labels.get(i, ("", None, 1))[2]]
            layers = layers or list(range(n_layers))
        else:
            layers = list(layers)
            bad = [
                i for i in layers if not isinstance(i, numbers.Integral) or not 0 <= i < n_layers
            ]
            if bad or not layers:
                raise ValueError(
                    f"Diagnostics.dashboard: layers must be layer indices in 0..{n_layers - 1}; "
                    f"got {layers!r}"
                )
        if fig is None:
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=figsize)
        fig.set_layout_engine("constrained")  # room for the labels and the colorbar
        label = {i: self._labels.get(i, (f"{i}", None, False))[0] for i in range(n_layers)}
        colors = _colors(len(layers))
        rows = {r["layer"]: r for r in self.records if r["step"] == step}
        grid = fig.add_gridspec(2, 3)
        ax_act, ax_grad, ax_std = (fig.add_subplot(grid[0, k]) for k in range(3))
        ax_heat, ax_upd = fig.add_subplot(grid[1, :2]), fig.add_subplot(grid[1, 2])

        # histograms of the chosen step
        for ax, key, edges, what in (
            (ax_act, "act_hist", self.act_bins, "activations y"),
            (ax_grad, "grad_hist", self.grad_bins, "activation gradients |dL/dy|"),
        ):
            ax.set_title(f"{what}, step {step}")
            if not self.histograms:
                ax.text(
                    0.5,
                    0.5,
                    "no histograms recorded:\nDiagnostics(histograms=True)",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                )
                continue
            for i, color in zip(layers, colors, strict=True):
                counts = rows[i][key] if i in rows else None
                if counts is not None and counts.sum():
                    ax.stairs(counts / counts.sum(), edges, color=color, label=label[i])
            ax.set_ylabel("fraction of the values")
            if key == "grad_hist":
                ax.set_xscale("log")
            ax.set_xlabel("(values outside the edges are in the end bins)", fontsize=8)
        if self.histograms:
            ax_act.legend(fontsize=7, ncol=2 if len(layers) > 6 else 1)

        # std by layer
        xs = np.arange(len(layers))
        for key, style in (("act_std", "o-"), ("act_grad_std", "s--")):
            ys = [rows[i][key] if i in rows else math.nan for i in layers]
            ax_std.plot(xs, ys, style, label=key)
        ax_std.set_yscale("log")
        ax_std.set_xticks(xs, [label[i] for i in layers], rotation=90, fontsize=7)
        ax_std.set_title(f"std by layer, step {step}")
        ax_std.legend(fontsize=8)

        # saturated or dead fraction, layer x step
        steps = self.steps
        frac = self.series("saturation")
        dead = self.series("dead_fraction")
        frac = np.where(np.isnan(frac), dead, frac)
        shown = [i for i in range(n_layers) if not np.isnan(frac[:, i]).all()]
        ax_heat.set_title("saturated (tanh |y| > 0.97, sigmoid) or dead (ReLU) fraction")
        if shown:
            mesh = ax_heat.pcolormesh(
                _cell_edges(steps),
                np.arange(len(shown) + 1),
                frac[:, shown].T,
                vmin=0.0,
                vmax=1.0,
                cmap="magma",
            )
            ax_heat.set_yticks(np.arange(len(shown)) + 0.5, [label[i] for i in shown], fontsize=7)
            ax_heat.invert_yaxis()  # the input side on top
            fig.colorbar(mesh, ax=ax_heat, label="fraction")
        else:
            ax_heat.text(
                0.5,
                0.5,
                "no tanh, sigmoid or ReLU layer",
                ha="center",
                va="center",
                transform=ax_heat.transAxes,
            )
        ax_heat.set_xlabel("training step")

        # update-to-data ratio over the steps
        ratio = self.series("update_ratio")
        with_params = [i for i in range(n_layers) if not np.isnan(ratio[:, i]).all()]
        style = "o-" if len(steps) < 30 else "-"
        for i, color in zip(with_params, _colors(len(with_params)), strict=True):
            ax_upd.plot(steps, ratio[:, i], style, ms=3, color=color, label=label[i])
        ax_upd.axhline(1e-3, color="k", ls="--", lw=1, label="1e-3")
        ax_upd.set_yscale("log")
        ax_upd.set_xlabel("training step")
        ax_upd.set_title("update / weight ratio")
        ax_upd.legend(fontsize=7, ncol=2 if len(with_params) > 6 else 1)
        return fig


def _colors(n: int) -> list:
    """``n`` colours from the input side (dark) to the output side (light)."""
    from matplotlib import colormaps

    return [colormaps["viridis"](k / max(n - 1, 1) * 0.9) for k in range(n)]


def _cell_edges(x: np.ndarray) -> np.ndarray:
    """Edges of heatmap cells centred on the increasing values ``x``."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 1:
        return np.array([x[0] - 0.5, x[0] + 0.5])
    mid = (x[1:] + x[:-1]) / 2
    return np.concatenate([[x[0] - (mid[0] - x[0])], mid, [x[-1] + (x[-1] - mid[-1])]])
