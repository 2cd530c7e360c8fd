"""Optimizers and learning-rate schedules, with PyTorch's update rules.

An optimizer is created with its hyper-parameters only; :meth:`Optimizer.bind` (called
by ``fit``) hands it the model's parameters and gradients, two dicts keyed by name.
:meth:`Optimizer.step` then updates every parameter in place with one fused op per
tensor (``sgd_update``, ``rmsprop_update``, ``adam_update``; the formulas are in
:mod:`nnlib.ops.optim`):

SGD       g = grad + wd p;  b = mu b + (1 - dampening) g  (b = g at step 1);
          p -= lr (g + mu b)  (Nesterov)  or  p -= lr b  (momentum)  or  p -= lr g
RMSprop   g = grad + wd p;  s = alpha s + (1 - alpha) g^2;  p -= lr g / (sqrt(s) + eps)
          (with momentum: b = mu b + g / (sqrt(s) + eps); p -= lr b)
Adam      g = grad + wd p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
          p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
AdamW     as Adam, but the decay is decoupled: p *= 1 - lr wd, and g = grad

``state_dict()`` / ``load_state_dict()`` save and restore hyper-parameters, the step
count and the state arrays (copies).
"""

from __future__ import annotations

import copy
import math

import numpy as np

from ._arrays import like, to_host, zeros_like
from ._backend import dispatch
from ._validate import check_scalar

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "ConstantLR",
    "CosineAnnealingLR",
    "ExponentialLR",
    "Optimizer",
    "RMSprop",
    "StepLR",
]


def _nonneg(value, name):
    value = check_scalar(value, name)
    if value < 0:
        raise ValueError(f"{name} must be >= 0; got {value}")
    return value


def _unit(value, name):
    value = check_scalar(value, name)
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1); got {value}")
    return value


class Optimizer:
    """Base class. Subclasses list their state arrays in ``state_names``."""

    state_names: tuple[str, ...] = ()
    hyper_names: tuple[str, ...] = ("lr",)

    def __init__(self, lr: float):
        self.lr = check_scalar(lr, "lr", positive=True)
        self.t = 0  # steps taken
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.backend = None

    def bind(self, params: dict, grads: dict) -> Optimizer:
        """Use the parameters ``params`` and their gradients ``grads`` (dicts by name).

        State already present for a name of the same shape is kept (so a restored
        ``state_dict`` or a second ``fit`` continue where they left off).
        """
        self.params, self.grads = params, grads
        for name, p in params.items():
            old = self.state.get(name)
            if old is None or any(
                tuple(a.shape) != tuple(p.shape) or a.dtype != p.dtype for a in old.values()
            ):
                self.state[name] = {s: zeros_like(p) for s in self.state_names}
            else:  # kept, and moved to where the parameter lives (host or GPU)
                self.state[name] = {s: like(a, p) for s, a in old.items()}
        return self

    def step(self) -> None:
        """Update every bound parameter in place from its current gradient."""
        if not self.params:
            raise RuntimeError(
                "the optimizer has no parameters: bind it with optimizer.bind(model.parameters(), "
                "model.gradients()) or pass it to model.fit"
            )
        self.t += 1
        for name, p in self.params.items():
            self._update(p, self.grads[name], self.state[name])

    def _update(self, p, g, state):
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Hyper-parameters, step count and copies of the state arrays (NumPy arrays)."""
        return {
            "hyper": {k: getattr(self, k) for k in self.hyper_names},
            "t": self.t,
            "state": {
                k: {s: np.array(to_host(a)) for s, a in v.items()} for k, v in self.state.items()
            },
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (copies are taken)."""
        for k, v in state["hyper"].items():
            setattr(self, k, v)
        self.t = int(state["t"])
        self.state = copy.deepcopy(state["state"])

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.hyper_names)
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum and L2 decay."""

    state_names = ("momentum_buffer",)
    hyper_names = ("lr", "momentum", "dampening", "weight_decay", "nesterov")

    def __init__(self, lr=0.01, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(lr)
        self.momentum = _unit(momentum, "momentum")
        self.dampening = _unit(dampening, "dampening")
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening = 0 (as in PyTorch)")
        self.nesterov = bool(nesterov)

    def _update(self, p, g, state):
        dispatch("sgd_update", self.backend)(
            p,
            g,
            state["momentum_buffer"],
            self.lr,
            self.momentum,
            self.dampening,
            self.weight_decay,
            int(self.nesterov),
            int(self.t == 1),
        )


class RMSprop(Optimizer):
    """RMSprop (PyTorch's default alpha=0.99, eps=1e-8), optional momentum."""

    state_names = ("square_avg", "momentum_buffer")
    hyper_names = ("lr", "alpha", "eps", "weight_decay", "momentum")

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0):
        super().__init__(lr)
        self.alpha = _unit(alpha, "alpha")
        self.eps = check_scalar(eps, "eps", positive=True)
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        self.momentum = _unit(momentum, "momentum")

    def _update(self, p, g, state):
        dispatch("rmsprop_update", self.backend)(
            p,
            g,
            state["square_avg"],
            state["momentum_buffer"],
            self.lr,
            self.alpha,
            self.eps,
            self.weight_decay,
            self.momentum,
        )


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` is an L2 term added to the gradient."""

    state_names = ("exp_avg", "exp_avg_sq")
    hyper_names = ("lr", "betas", "eps", "weight_decay")
    decoupled = 0

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(lr)
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2); got {betas!r}")
        self.betas = (_unit(betas[0], "betas[0]"), _unit(betas[1], "betas[1]"))
        self.eps = check_scalar(eps, "eps", positive=True)
        self.weight_decay = _nonneg(weight_decay, "weight_decay")

    def _update(self, p, g, state):
        dispatch("adam_update", self.backend)(
            p,
            g,
            state["exp_avg"],
            state["exp_avg_sq"],
            self.lr,
            self.betas[0],
            self.betas[1],
            self.eps,
            self.weight_decay,
            self.decoupled,
            self.t,
        )


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * wd``."""

    decoupled = 1

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(lr, betas, eps, weight_decay)


# ---------------------------------------------------------------------------- schedules
# A schedule maps (epoch, base_lr) to the learning rate of that epoch (epoch counts from
# 0). Use one with nnlib.callbacks.LearningRateScheduler. The closed forms equal
# PyTorch's StepLR, ExponentialLR and CosineAnnealingLR stepped once per epoch.


class ConstantLR:
    """``base_lr`` for every epoch."""

    def __call__(self, epoch: int, base_lr: float) -> float:
        return base_lr


class StepLR:
    """``base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, step_size: int, gamma: float = 0.1):
        if not isinstance(step_size, int) or step_size <= 0:
            raise ValueError(f"step_size must be a positive int; got {step_size!r}")
        self.step_size, self.gamma = step_size, check_scalar(gamma, "gamma", positive=True)

    def __call__(self, epoch, base_lr):
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR:
    """``base_lr * gamma ** epoch``."""

    def __init__(self, gamma: float):
        self.gamma = check_scalar(gamma, "gamma", positive=True)

    def __call__(self, epoch, base_lr):
        return base_lr * self.gamma**epoch


class CosineAnnealingLR:
    """``eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``."""

    def __init__(self, T_max: int, eta_min: float = 0.0):
        if not isinstance(T_max, int) or T_max <= 0:
            raise ValueError(f"T_max must be a positive int; got {T_max!r}")
        self.T_max, self.eta_min = T_max, _nonneg(eta_min, "eta_min")

    def __call__(self, epoch, base_lr):
        return (
            self.eta_min
            + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        )
