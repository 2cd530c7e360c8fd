"""Loss functions. Each computes the loss and its gradient with respect to the model's
output in one fused op (see :mod:`nnlib.ops.losses` for the formulas).

``loss(out, target) -> float`` stores the gradient; ``loss.backward() -> dout`` returns it
(the same shape as ``out``). ``loss.accumulate(out, target, acc)`` does the same but adds
the loss sum and the number of correct predictions into ``acc`` instead of returning
them: ``fit`` uses it so that nothing is read back from the GPU during an epoch.
``reduction="mean"`` averages (over rows for softmax cross-entropy, over all elements
otherwise, as PyTorch does), ``"sum"`` adds.

Targets are checked once, by :meth:`Loss.prepare`, before training starts:

================================  ===========================  ==============================
name                              model output ``out``         targets
================================  ===========================  ==============================
``"mse"``                         (N, K) any values            (N, K), or (N,) when K == 1
``"bce"``                         (N, 1) probabilities         (N,) or (N, 1) in [0, 1]
``"bce_with_logits"``             (N, 1) logits                (N,) or (N, 1) in [0, 1]
``"softmax_cross_entropy"``       (N, C) logits                (N,) ints in [0, C) or
                                                               (N, C) one-hot
================================  ===========================  ==============================
"""

from __future__ import annotations

import numpy as np

from ._arrays import to_host, zeros_like_on
from ._backend import dispatch
from ._validate import is_device_array

__all__ = ["BCE", "LOSSES", "MSE", "BCEWithLogits", "Loss", "SoftmaxCrossEntropy", "get"]


class Loss:
    op = ""
    classification = False

    def __init__(self, reduction: str = "mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum'; got {reduction!r}")
        self.reduction = reduction
        self.backend = None

    def _count(self, out) -> int:
        return out.size

    def _scale(self, out) -> float:
        n = self._count(out)
        return 1.0 / n if (self.reduction == "mean" and n) else 1.0

    def accumulate(self, out, target, acc) -> None:
        """Add the loss sum and the correct count of ``out`` into ``acc`` (float64, (2,),
        where ``out`` lives); keep the gradient of the (reduced) loss."""
        if self.op != "softmax_cross_entropy" and tuple(target.shape) != tuple(out.shape):
            raise ValueError(
                f"{type(self).__name__}: target shape {tuple(target.shape)} does not match "
                f"the model output {tuple(out.shape)}"
            )
        # SPEEDTIP: the op is looked up once per backend, not at every training step.
        if self.backend is None:
            op = dispatch(self.op, None)
        elif getattr(self, "_resolved", (None,))[0] == self.backend:
            op = self._resolved[1]
        else:
            op = dispatch(self.op, self.backend)
            self._resolved = (self.backend, op)
        self.grad = op(out, target, self._scale(out), acc)

    def __call__(self, out, target) -> float:
        """The loss of ``out`` (N, K) against ``target`` (as :meth:`prepare` takes it);
        keeps the gradient for :meth:`backward`. Both are checked first (shapes, dtypes,
        label ranges); a GPU ``target`` is read back for the check."""
        out = self._check_output(out)
        on_gpu = is_device_array(out)
        host_target = to_host(target) if is_device_array(target) else target
        prepared = self.prepare(host_target, out.shape[1], np.dtype(out.dtype), "target")
        if on_gpu and is_device_array(target) and np.dtype(target.dtype) == prepared.dtype:
            prepared = target  # already right, and already where out is
        if tuple(prepared.shape[:1]) != tuple(out.shape[:1]):
            raise ValueError(
                f"{type(self).__name__}: target must have {out.shape[0]} rows, one per row of "
                f"out {tuple(out.shape)}; got {tuple(np.shape(host_target))}"
            )
        acc = zeros_like_on(out, 2)
        self.accumulate(out, prepared, acc)
        return float(to_host(acc)[0]) * self._scale(out)

    def _check_output(self, out):
        """``out`` must be a 2-D float32/float64 array (host or GPU)."""
        if not is_device_array(out):
            try:
                out = np.asarray(out)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"out must be an array of numbers ({exc})") from None
        if np.dtype(out.dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(
                f"{type(self).__name__}: out must be float32 or float64; got {out.dtype}. "
                "Cast it with out.astype(np.float32)"
            )
        if len(out.shape) != 2:
            raise ValueError(
                f"{type(self).__name__}: out must be 2-D, (N, K) model outputs; got shape "
                f"{tuple(out.shape)}"
            )
        return out if is_device_array(out) else np.ascontiguousarray(out)

    def backward(self):
        """d loss / d out, the shape of the last ``out``."""
        return self.grad

    # ---------------------------------------------------------------- targets
    def prepare(self, y, out_features: int | None, dtype, name: str = "y"):
        """Validate targets ``y`` once; return them in the form the op takes."""
        y = _numeric(y, name)
        if y.ndim == 1 and out_features == 1:
            y = y[:, None]
        if y.ndim != 2 or (out_features is not None and y.shape[1] != out_features):
            raise ValueError(
                f"{name} must have shape (N, {out_features}) for {type(self).__name__} "
                f"(the model has {out_features} outputs); got {y.shape}"
            )
        _check_finite(y, name)
        return np.ascontiguousarray(y, dtype)

    def accuracy(self, out, target) -> float | None:
        return None

    def __repr__(self):
        return f"{type(self).__name__}(reduction={self.reduction!r})"


def _numeric(y, name):
    try:
        y = np.asarray(y)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers ({exc})") from None
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of numbers; got dtype {y.dtype}")
    return y


def _check_finite(a, name):
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(
            f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)}); "
            "clean or impute the data before training"
        )


class MSE(Loss):
    """Mean squared error ``mean((out - y)^2)``."""

    op = "mse"


class _Binary(Loss):
    classification = True

    def prepare(self, y, out_features, dtype, name="y"):
        if out_features != 1:
            raise ValueError(
                f"{type(self).__name__} needs a model with 1 output; it has {out_features}. "
                "For C classes use loss='softmax_cross_entropy'"
            )
        y = super().prepare(y, out_features, dtype, name)
        if ((y < 0) | (y > 1)).any():
            raise ValueError(f"{name} must be in [0, 1] for {type(self).__name__}")
        return y

    def accuracy(self, out, target):
        return float(np.mean((out > self.threshold) == (target > 0.5)))


class BCE(_Binary):
    """Binary cross-entropy of probabilities ``out`` in [0, 1] (e.g. after a Sigmoid).

    ``out`` on the host is checked to be in [0, 1] at every call (a pass over (N, 1));
    on the GPU it is not (that would read back every step).
    """

    op = "bce"
    threshold = 0.5

    def accumulate(self, out, target, acc):
        lo, hi = (out.min(), out.max()) if out.size and not is_device_array(out) else (0, 1)
        if lo < 0 or hi > 1:  # (NaN passes: the loss is NaN then, which fit reports)
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"bce needs probabilities in [0, 1] as model outputs; got {float(bad)!r}. End "
                "the model with a Sigmoid, or use loss='bce_with_logits' on raw outputs "
                "(it is also more stable)"
            )
        super().accumulate(out, target, acc)


class BCEWithLogits(_Binary):
    """Binary cross-entropy of logits ``out`` (the sigmoid is fused in: stable)."""

    op = "bce_with_logits"
    threshold = 0.0


class SoftmaxCrossEntropy(Loss):
    """Softmax fused with cross-entropy: ``-log softmax(out)[label]`` per row."""

    op = "softmax_cross_entropy"
    classification = True

    def _count(self, out):
        return out.shape[0]

    def prepare(self, y, out_features, dtype, name="y"):
        y = _numeric(y, name)
        if y.ndim == 2:  # one-hot
            if y.shape[1] != out_features:
                raise ValueError(
                    f"one-hot {name} must have shape (N, {out_features}); got {y.shape}"
                )
            if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
                raise ValueError(
                    f"{name} of shape (N, C) must be one-hot (a single 1 per row, else 0); "
                    "for soft targets this loss is not the right one"
                )
            y = y.argmax(axis=1)
        if y.ndim != 1:
            raise ValueError(f"{name} must be labels (N,) or one-hot (N, C); got shape {y.shape}")
        if y.dtype.kind == "f":
            raise TypeError(
                f"{name} must hold integer class labels for softmax_cross_entropy; got "
                f"dtype {y.dtype}. Convert with {name}.astype(int)"
            )
        if y.size and (y.min() < 0 or y.max() >= out_features):
            raise ValueError(
                f"{name} labels must be in [0, {out_features}) for a model with "
                f"{out_features} outputs; got labels from {y.min()} to {y.max()}"
            )
        return np.ascontiguousarray(y, np.int64)

    def accumulate(self, out, target, acc):
        if out.ndim != 2 or tuple(target.shape) != (out.shape[0],):
            raise ValueError(
                f"softmax_cross_entropy: out must be (N, C) and labels (N,); got "
                f"{tuple(out.shape)} and {tuple(target.shape)}"
            )
        super().accumulate(out, target, acc)

    def accuracy(self, out, target):
        return float(np.mean(np.asarray(out).argmax(axis=1) == target))


LOSSES = {
    "mse": MSE,
    "mean_squared_error": MSE,
    "bce": BCE,
    "binary_cross_entropy": BCE,
    "bce_with_logits": BCEWithLogits,
    "binary_cross_entropy_with_logits": BCEWithLogits,
    "softmax_cross_entropy": SoftmaxCrossEntropy,
    "cross_entropy": SoftmaxCrossEntropy,
}


def name_of(loss: Loss | None) -> str | None:
    """The name :func:`get` knows ``loss`` by (its first one), or None."""
    for name, cls in LOSSES.items():
        if type(loss) is cls:
            return name
    return None


def get(loss, reduction: str = "mean") -> Loss:
    """A :class:`Loss` from its name (see :data:`LOSSES`) or an instance (returned)."""
    if isinstance(loss, Loss):
        return loss
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)} or a Loss; got {loss!r}")
    return LOSSES[loss](reduction)
