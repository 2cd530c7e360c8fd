"""Optimizers and learning-rate schedules, with PyTorch's update rules.

An optimizer is created with its hyper-parameters only. :meth:`Optimizer.bind` hands it
what to update:

* a model's :class:`nnlib.params.ParameterStore` (``fit`` and ``train_on_batch`` do
  this): the optimizer then keeps each state in one flat buffer beside the store's, and
  :meth:`Optimizer.step` updates every parameter with **one** fused op call on the flat
  buffers;
* or two dicts keyed by name, parameters and their gradients (any arrays of yours):
  :meth:`Optimizer.step` then makes one call per tensor.

The optimizer is the only code that updates the parameters. The fused ops are
``sgd_update``, ``rmsprop_update`` and ``adam_update``; their formulas are in
:mod:`nnlib.ops.optim`:

SGD       g = grad + wd p;  b = mu b + (1 - dampening) g  (b = g at step 1);
          p -= lr (g + mu b)  (Nesterov)  or  p -= lr b  (momentum)  or  p -= lr g
RMSprop   g = grad + wd p;  s = alpha s + (1 - alpha) g^2;  p -= lr g / (sqrt(s) + eps)
          (with momentum: b = mu b + g / (sqrt(s) + eps); p -= lr b)
Adam      g = grad + wd p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
          p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
AdamW     as Adam, but the decay is decoupled: p *= 1 - lr wd, and g = grad

Excluding parameters from weight decay: every optimizer takes ``no_decay=``, PyTorch's
parameter group with ``weight_decay=0`` for the parameters it names (their update is the
formula above with wd = 0; every other parameter's is unchanged):

* ``None`` (the default, as in PyTorch): every parameter is decayed;
* ``"bias_and_norm"``, the usual recipe: every parameter with at most one dimension is
  not decayed (Dense biases ``b``, BatchNorm1d's ``gamma`` and ``beta``, PReLU's
  ``alpha``), the weight matrices are;
* a list of names as ``model.parameters()`` gives them, e.g. ``["0.b", "2.b"]``;
* a callable ``(name, array) -> bool``, True for a parameter not to decay.

The names are resolved when the optimizer is bound (:attr:`Optimizer.no_decay_names`);
a name the model does not have is an error. On a model's flat buffers the optimizer makes
a per-element mask once, at bind time, so that one fused call still updates every
parameter; with ``no_decay=None`` (or nothing excluded) no mask is made or read.

``state_dict()`` / ``load_state_dict()`` save and restore hyper-parameters, the step
count and the state arrays (copies). ``no_decay`` is saved as given (``None``,
``"bias_and_norm"`` or the list of names), a callable as the names it chose when bound.
"""

from __future__ import annotations

import copy
import math
import numbers

import numpy as np

from ._arrays import assign, like, to_host, zeros_like
from ._backend import dispatch
from ._validate import check_scalar, is_device_array
from .params import ParameterStore

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


NO_DECAY_RULES = ("bias_and_norm",)
_NO_DECAY_KINDS = (
    "None (decay every parameter), 'bias_and_norm' (decay no parameter of at most one "
    "dimension: biases, BatchNorm1d's gamma and beta, PReLU's alpha), a list of parameter "
    "names as model.parameters() names them, e.g. ['0.b'], or a callable (name, array) -> "
    "bool, True for a parameter not to decay"
)


def _check_no_decay(spec):
    """``spec`` as the optimizer keeps it (a list or tuple becomes a tuple of names), or
    an error naming what was expected."""
    if spec is None or callable(spec):
        return spec
    if isinstance(spec, str):
        if spec not in NO_DECAY_RULES:
            raise ValueError(
                f"no_decay={spec!r} is not a rule nnlib knows (it knows {list(NO_DECAY_RULES)});"
                f" to name parameters pass a list, e.g. no_decay=[{spec!r}]"
            )
        return spec
    if isinstance(spec, (list, tuple)):
        bad = [x for x in spec if not isinstance(x, str)]
        if bad:
            raise TypeError(
                "no_decay: a list of parameter names must hold strings such as '0.b'; got "
                + ", ".join(f"{x!r} ({type(x).__name__})" for x in bad)
            )
        return tuple(spec)
    raise TypeError(f"no_decay must be {_NO_DECAY_KINDS}; got {type(spec).__name__} {spec!r}")


def _no_decay_names(spec, params: dict) -> tuple[str, ...]:
    """The names in ``params`` (in its order) that ``spec`` excludes from weight decay."""
    if spec is None:
        return ()
    if spec == "bias_and_norm":
        return tuple(name for name, p in params.items() if len(p.shape) <= 1)
    if callable(spec):
        chosen = []
        for name, p in params.items():
            answer = spec(name, p)
            if not isinstance(answer, (bool, np.bool_)):
                raise TypeError(
                    f"no_decay: the callable must return True (do not decay) or False; for "
                    f"{name!r} it returned {type(answer).__name__} {answer!r}"
                )
            if answer:
                chosen.append(name)
        return tuple(chosen)
    unknown = [name for name in spec if name not in params]
    if unknown:
        raise ValueError(
            f"no_decay names parameters the model does not have: {unknown}; its parameters "
            f"are {list(params)} (as model.parameters() names them)"
        )
    named = set(spec)
    return tuple(name for name in params if name in named)


def _unit(value, name):
    value = check_scalar(value, name)
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1); got {value}")
    return value


class Optimizer:
    """Base class. Subclasses list their state arrays in ``state_names`` and their
    constructor arguments in ``hyper_names``; each is registered by class name
    (:data:`OPTIMIZERS`) so a saved optimizer can be rebuilt."""

    state_names: tuple[str, ...] = ()
    hyper_names: tuple[str, ...] = ("lr", "no_decay")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            OPTIMIZERS[cls.__name__] = cls

    def __init__(self, lr: float, *, no_decay=None):
        self.lr = check_scalar(lr, "lr", positive=True)
        self.t = 0  # steps taken
        #: the bound parameters not decayed (resolved from ``no_decay`` by bind)
        self.no_decay_names: tuple[str, ...] = ()
        self._decay_mask = None  # (P,) uint8, 1 = decayed, with a store and an exclusion
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self._bound: dict = {}  # name -> (param, grad) as checked by bind
        self._restored = False  # state from load_state_dict, not yet checked by bind
        self.store: ParameterStore | None = None  # what bind() was given, if a store
        self.store_version = None  # the store's version when bound (its buffers then)
        self.flat_state: dict[str, object] = {}  # state name -> (P,) buffer, with a store
        self.backend = None
        self.no_decay = no_decay

    @property
    def no_decay(self):
        """Which parameters are not decayed: ``None``, ``"bias_and_norm"``, a tuple of
        names or a callable (see :mod:`nnlib.optim`). Setting it on a bound optimizer
        resolves it against the bound parameters at once."""
        return self._no_decay

    @no_decay.setter
    def no_decay(self, spec):
        spec = _check_no_decay(spec)
        if self.params:
            self._resolve_decay(spec)
        self._no_decay = spec

    def _resolve_decay(self, spec, names=None) -> None:
        """Resolve ``spec`` against the bound parameters (unless ``names`` already did):
        the names, and with a store the per-element mask, made once, where the store
        lives (None if nothing is excluded)."""
        if names is None:
            names = _no_decay_names(spec, self.params)
        mask = None
        if names and self.store is not None:
            store = self.store
            host = np.ones(store.size, np.uint8)
            for name in names:
                start, stop, _ = store.slices[name]
                host[start:stop] = 0
            mask = like(host, store.flat_params)
        self.no_decay_names, self._decay_mask = names, mask

    def bind(self, params, grads: dict | None = None) -> Optimizer:
        """Use ``params``: a :class:`~nnlib.params.ParameterStore`, or a dict of
        parameters by name with ``grads``, their gradients (a dict with the same names
        and shapes).

        State already present for a name of the same shape is kept (so a restored
        ``state_dict`` or a second ``fit`` continue where they left off), moved to where
        the parameter lives (host or GPU).
        """
        if isinstance(params, ParameterStore):
            if grads is not None:
                raise TypeError("bind(store): a ParameterStore holds its gradients; pass it alone")
            store = params
            old = self.state
            names = _no_decay_names(self._no_decay, store.params)  # checked before any change
            self._check_restored(store.params)
            self.store_version = store.version
            self.store, self.params, self.grads = store, store.params, store.grads
            self.flat_state = {s: store.zeros() for s in self.state_names}
            self.state = {}
            for name, p in store.params.items():
                views = {s: store.view(self.flat_state[s], name) for s in self.state_names}
                kept = old.get(name)
                if kept is not None and _same_layout(kept, p, self.state_names, False):
                    for s in self.state_names:
                        assign(views[s], _moved(kept[s], p))
                self.state[name] = views
            self._resolve_decay(self._no_decay, names)
            return self
        if not isinstance(params, dict) or not isinstance(grads, dict):
            raise TypeError(
                "bind needs a ParameterStore, or two dicts (parameters and gradients by name); "
                f"got {type(params).__name__} and {type(grads).__name__}"
            )
        for name, p in params.items():
            _check_pair(name, p, grads.get(name))
        names = _no_decay_names(self._no_decay, params)  # checked before any change
        self._check_restored(params)
        self.store, self.flat_state = None, {}
        self.params, self.grads = params, grads
        self._bound = {name: (p, grads[name]) for name, p in params.items()}
        for name, p in params.items():
            old = self.state.get(name)
            if old is not None and _same_layout(old, p, self.state_names, False):
                self.state[name] = {s: _moved(a, p) for s, a in old.items()}
            else:
                self.state[name] = {s: zeros_like(p) for s in self.state_names}
        self._resolve_decay(self._no_decay, names)
        return self

    def _check_restored(self, params: dict) -> None:
        """A state restored by :meth:`load_state_dict` before binding must fit ``params``
        (it is not silently reset)."""
        if not self._restored:
            return
        if set(self.state) != set(params):
            raise ValueError(
                f"bind: the restored optimizer state is for parameters {sorted(self.state)}, "
                f"not {sorted(params)}: restore the state of an optimizer of this model"
            )
        for name, p in params.items():
            if not _same_layout(self.state[name], p, self.state_names, check_dtype=False):
                raise ValueError(
                    f"bind: the restored state of {name!r} does not have its shape {tuple(p.shape)}"
                )
        self._restored = False

    def step(self) -> None:
        """Update every bound parameter in place from its current gradient: one fused
        call on the flat buffers when bound to a store, one call per tensor otherwise."""
        if not self.params:
            raise RuntimeError(
                "the optimizer has no parameters: pass it to model.fit or "
                "model.train_on_batch, or bind it with optimizer.bind(params, grads)"
            )
        self.t += 1
        wd = getattr(self, "weight_decay", 0.0)
        if self.store is not None:  # (nnlib's own buffers: checked when they were made)
            store, mask = self.store, self._decay_mask if wd else None
            self._update(store.flat_params, store.flat_grads, self.flat_state, wd, mask)
            return
        for name, p in self.params.items():
            g = self.grads.get(name)
            checked = self._bound.get(name, (None, None))
            if checked[0] is not p or checked[1] is not g:  # checked again only if replaced
                _check_pair(name, p, g)
                if not _same_layout(self.state[name], p, self.state_names):
                    raise ValueError(
                        f"step: params[{name!r}] was replaced by an array of another shape or "
                        f"dtype, {tuple(p.shape)} {p.dtype}, than its optimizer state: bind "
                        "the optimizer again (optimizer.bind(params, grads))"
                    )
                self._bound[name] = (p, g)
        excluded = set(self.no_decay_names)
        for name, p in self.params.items():  # a whole tensor is decayed or not
            self._update(p, self.grads[name], self.state[name], 0.0 if name in excluded else wd)

    def _update(self, p, g, state, wd, mask=None):
        """One fused update of ``p`` with weight decay ``wd`` (0 for an excluded tensor),
        ``mask``: None, or the flat buffers' per-element decay mask."""
        raise NotImplementedError

    def get_config(self) -> dict:
        """The constructor arguments (the hyper-parameters) that rebuild this optimizer.
        ``no_decay``: as given, a tuple as a list; a callable, once bound, as the list
        of names it chose."""
        config = {k: getattr(self, k) for k in self.hyper_names}
        spec = config.get("no_decay")
        if isinstance(spec, tuple):
            config["no_decay"] = list(spec)
        elif callable(spec) and self.params:
            config["no_decay"] = list(self.no_decay_names)
        return config

    def state_dict(self) -> dict:
        """Hyper-parameters, step count and copies of the state arrays (NumPy arrays)."""
        if callable(self._no_decay) and not self.params:
            raise ValueError(
                "state_dict: no_decay is a callable, which is saved as the names it chooses, "
                "and those are known once the optimizer is bound (model.fit, "
                "model.train_on_batch or optimizer.bind); bind it first, or pass a list of names"
            )
        return {
            "hyper": self.get_config(),
            "t": self.t,
            "state": {
                k: {s: np.array(to_host(a)) for s, a in v.items()} for k, v in self.state.items()
            },
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (its arrays are copied).

        When the optimizer is bound, the state must hold exactly the bound parameters'
        names, each with every state array in the parameter's shape.
        """
        if not isinstance(state, dict) or not {"hyper", "t", "state"} <= set(state):
            raise ValueError(
                "load_state_dict needs what state_dict() returns: a dict with 'hyper', 't' "
                f"and 'state'; got {type(state).__name__}"
                + (f" with keys {sorted(state)}" if isinstance(state, dict) else "")
            )
        arrays = state["state"]
        if self.params:
            if set(arrays) != set(self.params):
                raise ValueError(
                    f"load_state_dict: the state is for parameters {sorted(arrays)}, but the "
                    f"optimizer is bound to {sorted(self.params)}: load the state of an "
                    "optimizer of the same model"
                )
            for name, p in self.params.items():
                if not _same_layout(arrays[name], p, self.state_names, check_dtype=False):
                    raise ValueError(
                        f"load_state_dict: state[{name!r}] must hold {list(self.state_names)}, "
                        f"each of shape {tuple(p.shape)}; got "
                        f"{ {s: tuple(np.shape(a)) for s, a in arrays[name].items()} }"
                    )
        t = state["t"]
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
            raise ValueError(f"load_state_dict: 't' must be an int >= 0; got {t!r}")
        hyper = state["hyper"]
        unknown = set(hyper) - set(self.hyper_names)
        if unknown:
            raise ValueError(
                f"load_state_dict: {type(self).__name__} has no hyper-parameter "
                f"{sorted(unknown)} (it has {list(self.hyper_names)})"
            )
        try:  # validated as the constructor validates them (no_decay against the model)
            checked = type(self)(**{**self.get_config(), **hyper})
            if self.params:
                _no_decay_names(checked.no_decay, self.params)
        except (TypeError, ValueError) as err:
            raise ValueError(f"load_state_dict: a bad hyper-parameter: {err}") from None
        for k in hyper:
            setattr(self, k, getattr(checked, k))
        self.t = int(t)
        if self.params:  # into the arrays the update uses (flat views or the bound state)
            for name, held in self.state.items():
                for s in self.state_names:
                    assign(held[s], np.asarray(arrays[name][s]))
        else:  # kept until bind, which checks it against the parameters
            self.state = copy.deepcopy(arrays)
            self._restored = True

    def __repr__(self):
        shown = [k for k in self.hyper_names if k != "no_decay" or self.no_decay is not None]
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in shown)
        return f"{type(self).__name__}({args})"


#: every Optimizer subclass by class name (filled as they are defined), for loading
OPTIMIZERS: dict[str, type[Optimizer]] = {}


def optimizer_from_config(name: str, config: dict) -> Optimizer:
    """The optimizer of class ``name`` (see :data:`OPTIMIZERS`) built from ``config``."""
    cls = OPTIMIZERS.get(name)
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}; nnlib knows {sorted(OPTIMIZERS)}")
    return cls(**config)


def _moved(a, p):
    """State array ``a`` with the dtype of ``p``, where ``p`` lives (``a`` itself when it
    already is)."""
    if np.dtype(a.dtype) != np.dtype(p.dtype):
        a = np.ascontiguousarray(to_host(a), p.dtype)
    return like(a, p)


def _check_pair(name, p, g) -> None:
    """A parameter and its gradient the per-tensor update can take: float32/float64
    arrays of one shape and dtype, in one place, C-contiguous (the update is done in
    place: a copy would be updated instead of ``p``), ``p`` writeable."""
    for what, a in ((f"params[{name!r}]", p), (f"grads[{name!r}]", g)):
        if a is None:
            raise ValueError(f"bind: {what} is missing: give every parameter its gradient")
        if not (isinstance(a, np.ndarray) or is_device_array(a)):
            raise TypeError(f"bind: {what} must be an array; got {type(a).__name__}")
        if np.dtype(a.dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"bind: {what} must be float32 or float64; got {a.dtype}")
        if isinstance(a, np.ndarray) and not a.flags.c_contiguous:
            raise ValueError(
                f"bind: {what} must be C-contiguous (it is updated in place); got a strided "
                "or F-ordered array. Bind np.ascontiguousarray(...) and keep using that array"
            )
    if tuple(g.shape) != tuple(p.shape) or np.dtype(g.dtype) != np.dtype(p.dtype):
        raise ValueError(
            f"bind: grads[{name!r}] must have the shape and dtype of params[{name!r}], "
            f"{tuple(p.shape)} {p.dtype}; got {tuple(g.shape)} {g.dtype}"
        )
    if isinstance(p, np.ndarray) and not p.flags.writeable:
        raise ValueError(f"bind: params[{name!r}] is read-only; the optimizer updates it in place")
    if is_device_array(p) != is_device_array(g):
        raise ValueError(
            f"bind: params[{name!r}] and grads[{name!r}] must both be on the host or both on "
            "the GPU"
        )


def _same_layout(state: dict, p, names, check_dtype: bool = True) -> bool:
    """True if ``state`` holds every one of ``names``, each shaped (and typed) like ``p``."""
    return set(state) == set(names) and all(
        tuple(np.shape(a)) == tuple(p.shape) and (not check_dtype or a.dtype == p.dtype)
        for a in state.values()
    )


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum and L2 decay
    (``weight_decay``, added to the gradient). ``no_decay``: the parameters not decayed,
    default None (all decayed); ``"bias_and_norm"`` is the usual recipe (see
    :mod:`nnlib.optim`)."""

    state_names = ("momentum_buffer",)
    hyper_names = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "no_decay")

    def __init__(
        self,
        lr=0.01,
        momentum=0.0,
        dampening=0.0,
        weight_decay=0.0,
        nesterov=False,
        *,
        no_decay=None,
    ):
        super().__init__(lr, no_decay=no_decay)
        self.momentum = _unit(momentum, "momentum")
        self.dampening = _unit(dampening, "dampening")
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening = 0 (as in PyTorch)")
        self.nesterov = bool(nesterov)

    def _update(self, p, g, state, wd, mask=None):
        dispatch("sgd_update", self.backend)(
            p,
            g,
            state["momentum_buffer"],
            self.lr,
            self.momentum,
            self.dampening,
            wd,
            int(self.nesterov),
            int(self.t == 1),
            mask=mask,
        )


class RMSprop(Optimizer):
    """RMSprop (PyTorch's default alpha=0.99, eps=1e-8), optional momentum and L2 decay.
    ``no_decay``: the parameters not decayed, default None (all decayed);
    ``"bias_and_norm"`` is the usual recipe (see :mod:`nnlib.optim`)."""

    state_names = ("square_avg", "momentum_buffer")
    hyper_names = ("lr", "alpha", "eps", "weight_decay", "momentum", "no_decay")

    def __init__(
        self, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, *, no_decay=None
    ):
        super().__init__(lr, no_decay=no_decay)
        self.alpha = _unit(alpha, "alpha")
        self.eps = check_scalar(eps, "eps", positive=True)
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        self.momentum = _unit(momentum, "momentum")

    def _update(self, p, g, state, wd, mask=None):
        dispatch("rmsprop_update", self.backend)(
            p,
            g,
            state["square_avg"],
            state["momentum_buffer"],
            self.lr,
            self.alpha,
            self.eps,
            wd,
            self.momentum,
            mask=mask,
        )


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` is an L2 term added to the gradient.
    ``no_decay``: the parameters not decayed, default None (all decayed);
    ``"bias_and_norm"`` is the usual recipe (see :mod:`nnlib.optim`)."""

    state_names = ("exp_avg", "exp_avg_sq")
    hyper_names = ("lr", "betas", "eps", "weight_decay", "no_decay")
    decoupled = 0

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *, no_decay=None):
        super().__init__(lr, no_decay=no_decay)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(
                f"betas must be a pair (beta1, beta2), e.g. (0.9, 0.999); got {betas!r}"
            )
        self.betas = (_unit(betas[0], "betas[0]"), _unit(betas[1], "betas[1]"))
        self.eps = check_scalar(eps, "eps", positive=True)
        self.weight_decay = _nonneg(weight_decay, "weight_decay")

    def _update(self, p, g, state, wd, mask=None):
        dispatch("adam_update", self.backend)(
            p,
            g,
            state["exp_avg"],
            state["exp_avg_sq"],
            self.lr,
            self.betas[0],
            self.betas[1],
            self.eps,
            wd,
            self.decoupled,
            self.t,
            mask=mask,
        )


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * wd``.

    ``no_decay``: the parameters not decayed. The default None decays every parameter, as
    PyTorch's default does; the usual recipe, ``no_decay="bias_and_norm"``, leaves the
    biases and BatchNorm1d's gamma and beta (every parameter of at most one dimension)
    undecayed: ``AdamW(lr=1e-3, weight_decay=1e-2, no_decay="bias_and_norm")``.
    """

    decoupled = 1

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, *, no_decay=None):
        super().__init__(lr, betas, eps, weight_decay, no_decay=no_decay)


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
