"""How a model's quality depends on the amount of training data: the learning curve.

>>> import nnlib as nl
>>> X, y = nl.datasets.blobs(600, centers=3, seed=0)
>>> curve = nl.model_selection.learning_curve(
...     lambda: nl.Sequential([nl.Dense(2, 16), nl.ReLU(), nl.Dense(16, 3)]),
...     X[:400], y[:400], train_sizes=[20, 100, 400], validation_data=(X[400:], y[400:]),
...     seeds=(0, 1), epochs=5, batch_size=20, verbose=0)
>>> curve.train_sizes
array([ 20, 100, 400])
>>> curve.val_accuracy.shape  # one row per size, one column per seed
(3, 2)

Each run trains a new model (from ``make_model``) on the first ``n`` examples of a
seeded shuffle of ``(X, y)``, so for one seed the training sets are nested: the set of
100 contains the set of 20. The seed also draws the initial weights, the shuffling and
the dropout masks, so a run is reproducible and several seeds show the spread.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .model import Sequential
from .optim import Adam, Optimizer

METRICS = ("loss", "accuracy")


@dataclass
class LearningCurve:
    """The result of :func:`learning_curve`: one row per training-set size, one column
    per seed. Every score was measured in evaluation mode (no dropout, BatchNorm's
    running statistics) on the model as it stood after ``fit`` (after a restore by
    ``EarlyStopping(restore_best=True)``, if one was given). ``train_*`` is measured on
    the run's own training subset, ``val_*`` on ``validation_data``."""

    train_sizes: np.ndarray  # (S,) int
    seeds: tuple  # (R,)
    train_loss: np.ndarray  # (S, R)
    val_loss: np.ndarray  # (S, R)
    train_accuracy: np.ndarray | None  # (S, R); None for a regression loss
    val_accuracy: np.ndarray | None
    histories: list = field(repr=False)  # S lists of R Histories

    def _scores(self, name: str) -> np.ndarray:
        names = [f"{s}_{m}" for s in ("train", "val") for m in METRICS]
        if name not in names:
            raise ValueError(f"name must be one of {names}; got {name!r}")
        scores = getattr(self, name)
        if scores is None:
            raise ValueError(f"{name}: the loss is not a classification loss (no accuracy)")
        return scores

    def mean(self, name: str) -> np.ndarray:
        """The mean over the seeds of ``name`` (e.g. ``"val_accuracy"``): (S,)."""
        return self._scores(name).mean(axis=1)

    def std(self, name: str) -> np.ndarray:
        """The standard deviation over the seeds (ddof=1; 0 with one seed): (S,)."""
        scores = self._scores(name)
        if scores.shape[1] < 2:
            return np.zeros(len(scores))
        return scores.std(axis=1, ddof=1)

    def plot(self, ax=None, metric: str = "accuracy", *, logx: bool = True):
        """Train and validation ``metric`` against the training-set size: the mean over
        the seeds, with a band of one standard deviation. Returns the axes."""
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {list(METRICS)}; got {metric!r}")
        import matplotlib.pyplot as plt  # the course's dependency, not the library's

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.8))
        n = self.train_sizes
        for split, style in (("train", "--"), ("val", "-")):
            name = f"{split}_{metric}"
            mean, std = self.mean(name), self.std(name)
            (line,) = ax.plot(n, mean, style, marker="o", ms=3, label=split)
            ax.fill_between(n, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        if logx:
            ax.set_xscale("log")
        seeds = len(self.seeds)
        ax.set(
            xlabel="training examples",
            ylabel=metric,
            title=f"learning curve (mean ± std over {seeds} seed{'s' * (seeds > 1)})",
        )
        ax.legend()
        return ax


def _sizes(train_sizes, n: int) -> np.ndarray:
    """``train_sizes`` (ints in [1, n] or fractions in (0, 1]) as sorted, unique ints."""
    values = np.atleast_1d(np.asarray(train_sizes, dtype=object))
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"train_sizes must be a non-empty list of sizes; got {train_sizes!r}")
    sizes = []
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"train_sizes must hold numbers; got {v!r}")
        if isinstance(v, numbers.Integral):
            if not 1 <= v <= n:
                raise ValueError(
                    f"train_sizes: {int(v)} is not between 1 and the {n} examples of X"
                )
            sizes.append(int(v))
        else:
            if not 0 < v <= 1:
                raise ValueError(
                    f"train_sizes: a fraction must be in (0, 1]; got {v!r} (give an int "
                    "for a number of examples)"
                )
            sizes.append(max(1, round(float(v) * n)))
    return np.array(sorted(set(sizes)), dtype=np.int64)


def _seeds(seeds) -> tuple:
    seeds = (seeds,) if isinstance(seeds, numbers.Integral) else tuple(seeds)
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise ValueError(f"seeds must be ints >= 0; got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be different from each other; got {seeds}")
    return tuple(int(s) for s in seeds)


def _new_optimizer(optimizer) -> Callable[[], Optimizer]:
    """A factory of fresh optimizers (no state, not bound) from what the user gave."""
    if optimizer is None:
        return lambda: Adam(lr=1e-3)
    if isinstance(optimizer, Optimizer):
        config = optimizer.get_config()
        config["no_decay"] = optimizer.no_decay  # as given (a callable stays one)
        return lambda: type(optimizer)(**config)
    if callable(optimizer):

        def made():
            opt = optimizer()
            if not isinstance(opt, Optimizer):
                raise TypeError(
                    "optimizer: the callable must return an nnlib.optim optimizer; it "
                    f"returned {type(opt).__name__}"
                )
            return opt

        return made
    raise TypeError(
        "optimizer must be an nnlib.optim optimizer, a callable returning one, or None; "
        f"got {type(optimizer).__name__}"
    )


def _order(y, n: int, rng, stratify: bool) -> np.ndarray:
    """A seeded order of the n examples; stratified, every prefix holds the classes in
    (about) their proportions in y."""
    perm = rng.permutation(n)
    if not stratify:
        return perm
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.dtype.kind not in "biu":
        raise ValueError(
            "stratify=True needs integer class labels y of shape (N,); got "
            f"{labels.dtype} of shape {labels.shape}"
        )
    labels = labels[perm]
    position = np.empty(n)  # the k-th example of a class of size c sits at (k + 0.5) / c
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        position[where] = (np.arange(len(where)) + 0.5) / len(where)
    return perm[np.argsort(position, kind="stable")]


def learning_curve(
    make_model: Callable[[], Sequential],
    X,
    y,
    *,
    train_sizes,
    validation_data,
    seeds=(0,),
    stratify: bool = False,
    optimizer=None,
    **fit_kwargs,
) -> LearningCurve:
    """Train a new model for every training-set size and seed; return the
    :class:`LearningCurve` of their train and validation scores.

    Parameters
    ----------
    make_model : callable with no arguments returning a new :class:`nnlib.Sequential`
        (a new object each call). Its weights are drawn again from each run's seed.
    X, y : the pool of training examples, (N, D) and its targets (N,) or (N, K)
    train_sizes : list of ints in [1, N] (numbers of examples) or fractions in (0, 1]
    validation_data : ``(X_val, y_val)``, held out from the pool: every run is scored on it
    seeds : ints; each gives one run per size (its subset, weights, shuffling, dropout)
    stratify : draw every training subset with the classes in the proportions of ``y``
        (integer labels only)
    optimizer : an :mod:`nnlib.optim` optimizer, rebuilt fresh for every run from its
        hyper-parameters; or a callable with no arguments returning a new one; default
        ``Adam(lr=1e-3)``
    **fit_kwargs : passed on to :meth:`nnlib.Sequential.fit` (``epochs``, ``batch_size``,
        ``loss``, ``callbacks``, ``backend``, ...). ``verbose`` defaults to 0.
    """
    if not callable(make_model):
        raise TypeError(
            "make_model must be a callable returning a new nl.Sequential (e.g. lambda: "
            f"nl.Sequential([...])); got {type(make_model).__name__}"
        )
    for name in ("seed", "validation_split", "validation_data", "optimizer"):
        if name in fit_kwargs:
            raise TypeError(
                f"learning_curve: {name}= is not passed to fit; use seeds=, "
                "validation_data= and optimizer= of learning_curve"
            )
    if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
        raise TypeError("validation_data must be a pair (X_val, y_val)")
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, shape (N, D); got shape {X.shape}")
    n = len(X)
    if y.ndim == 0 or len(y) != n:
        raise ValueError(
            f"X and y must have the same length; got {n} and {y.shape[0] if y.ndim else 'a scalar'}"
        )
    sizes, seeds = _sizes(train_sizes, n), _seeds(seeds)
    new_optimizer = _new_optimizer(optimizer)
    fit_kwargs.setdefault("verbose", 0)
    X_val, y_val = validation_data
    orders = [_order(y, n, np.random.default_rng(s), stratify) for s in seeds]

    shape = (len(sizes), len(seeds))
    scores = {f"{s}_{m}": np.full(shape, np.nan) for s in ("train", "val") for m in METRICS}
    histories = [[None] * len(seeds) for _ in sizes]
    classify = True
    for i, size in enumerate(sizes):
        for j, seed in enumerate(seeds):
            model = make_model()
            if not isinstance(model, Sequential):
                raise TypeError(
                    f"make_model must return an nl.Sequential; it returned {type(model).__name__}"
                )
            rows = orders[j][:size]
            model.build(X.shape[1], seed=seed)
            history = model.fit(
                X[rows],
                y[rows],
                optimizer=new_optimizer(),
                validation_data=(X_val, y_val),
                seed=seed,
                **fit_kwargs,
            )
            histories[i][j] = history
            for split, (Xs, ys) in (("train", (X[rows], y[rows])), ("val", (X_val, y_val))):
                result = model.evaluate(Xs, ys)
                scores[f"{split}_loss"][i, j] = result["loss"]
                classify = classify and "accuracy" in result
                if "accuracy" in result:
                    scores[f"{split}_accuracy"][i, j] = result["accuracy"]
    return LearningCurve(
        train_sizes=sizes,
        seeds=seeds,
        train_loss=scores["train_loss"],
        val_loss=scores["val_loss"],
        train_accuracy=scores["train_accuracy"] if classify else None,
        val_accuracy=scores["val_accuracy"] if classify else None,
        histories=histories,
    )


__all__ = ["LearningCurve", "learning_curve"]
