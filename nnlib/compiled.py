"""A training step, or a whole epoch of steps, as one compiled call (cpu backend).

The readable path, :class:`nnlib.training.TrainStep`, runs a step as a chain of Python
calls: each layer's forward, the loss, each layer's backward in reverse, one optimizer
update. Between two kernels Python checks arguments, looks up the next op and allocates
the outputs; on a small network (64-128-10, batch 64) that costs as much as the kernels.

This module writes, for the model's *structure* (the kinds of its layers, the loss and
the optimizer; not the widths, which are passed in), one Python function that calls the
*same* cpu kernels, in the same order, with the same arguments, and compiles it with
Numba. So the compiled step trains exactly as the readable one does (the tests check
it), and it runs no Python between the layers:

* every buffer (each layer's output and its gradient, the dropout masks and their
  uniform numbers) is allocated once, for the largest batch seen, and reused; a smaller
  batch uses the front of each buffer;
* the parameters, gradients and optimizer state are the model's flat buffers (its
  :class:`~nnlib.params.ParameterStore` and the optimizer's ``flat_state``);
* each Dropout layer draws its uniform numbers from its own ``numpy.random.Generator``,
  passed into the compiled code (Numba draws the same stream as NumPy), so the masks
  are those of the readable path;
* the epoch function gathers each shuffled mini-batch into a buffer and runs the step,
  for every batch of the epoch, in one call.

The generated source is a file in nnlib's cache folder (``NNLIB_CACHE_DIR``, or
``~/.cache/nnlib``), compiled with ``cache=True``: the second process that trains the
same structure loads it instead of compiling. Its name holds a fingerprint of nnlib's
kernel files, so a changed kernel gives a new file (Numba's own cache checks only the
file that defines a function). Read the step that runs with
``nl.compiled.source(model, loss, optimizer)``.

What it supports: ``Dense`` (with or without its fused ReLU), ``ReLU``, ``LeakyReLU``,
``ELU``, ``Sigmoid``, ``Tanh``, ``GELU``, ``SiLU`` and ``Dropout`` layers on rows
(N, D); the softmax cross-entropy, MSE, BCE and BCE-with-logits losses; ``SGD`` (with
momentum or Nesterov), ``RMSprop``, ``Adam`` and ``AdamW``, with weight decay and
``no_decay``. Anything else is trained by the readable path (:func:`plan` says why).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numba
import numpy as np

from . import layers as L
from . import losses as losses_
from . import optim

__all__ = ["CompiledStep", "cache_dir", "plan", "source"]

# The layers the compiled step runs, by class (exact classes: a subclass may change what
# forward or backward does), and the cpu kernels of each elementwise activation.
ACTIVATION_OPS = {
    L.ReLU: "relu",
    L.LeakyReLU: "leaky_relu",
    L.ELU: "elu",
    L.Sigmoid: "sigmoid",
    L.Tanh: "tanh",
    L.GELU: "gelu",
    L.SiLU: "silu",
}
WITH_ALPHA = ("leaky_relu", "elu")
LOSS_OPS = {
    losses_.SoftmaxCrossEntropy: "softmax_cross_entropy",
    losses_.MSE: "mse",
    losses_.BCE: "bce",
    losses_.BCEWithLogits: "bce_with_logits",
}
POINTWISE_KIND = {"mse": 0, "bce": 1, "bce_with_logits": 2}  # as nnlib.ops.losses
OPTIMIZERS = (optim.SGD, optim.RMSprop, optim.Adam, optim.AdamW)


def _supported_names() -> str:
    names = ["Dense", *(c.__name__ for c in ACTIVATION_OPS), "Dropout"]
    return ", ".join(names)


# ---------------------------------------------------------------------- the plan


def plan(model, loss_fn, optimizer, backend: str):
    """``(CompiledStep, "")`` when the compiled step can train ``model`` with
    ``loss_fn`` and ``optimizer`` on ``backend``, else ``(None, reason)``: one line
    saying why the readable path trains it."""
    if backend != "cpu":
        return None, f"the compiled step runs on the cpu backend only, not on {backend!r}"
    if not isinstance(model.input_features, int):
        return None, "the compiled step takes rows (N, D), not images"
    for i, layer in enumerate(model.layers):
        if type(layer) is not L.Dense and type(layer) not in ACTIVATION_OPS:
            if type(layer) is not L.Dropout:
                return None, (
                    f"layers[{i}] {layer!r} is not one the compiled step runs "
                    f"({_supported_names()})"
                )
    if not any(type(layer) is L.Dense for layer in model.layers):
        return None, "the model has no Dense layer (no parameters to train)"
    if type(loss_fn) not in LOSS_OPS:
        return None, f"the loss {loss_fn!r} is not one the compiled step runs"
    if type(optimizer) not in OPTIMIZERS:
        return None, (
            f"the optimizer {type(optimizer).__name__} is not one the compiled step runs "
            "(SGD, RMSprop, Adam, AdamW)"
        )
    return CompiledStep(model, loss_fn, optimizer), ""


def source(model, loss="softmax_cross_entropy", optimizer=None) -> str:
    """The Python source of the compiled step that trains ``model`` (built) with
    ``loss`` and ``optimizer`` (default ``Adam``), or a line saying why there is none."""
    model._require_built("source()")
    loss_fn = losses_.get(loss)
    step, reason = plan(model, loss_fn, optimizer or optim.Adam(), "cpu")
    return step.source if step is not None else f"# no compiled step: {reason}\n"


# ---------------------------------------------------------------------- generated code


class _Writer:
    """The generated function's lines, and the integer slots it reads from ``d``."""

    def __init__(self):
        self.lines: list[str] = []
        self.ints: list[tuple] = []  # what each d[k] holds (filled by CompiledStep)

    def int_slot(self, *what) -> str:
        """A slot of ``d``: ("width", k), ("ws"|"gs"|"us", k) the offset of a buffer of
        width k in that workspace, or ("param", name) a parameter's offset in P."""
        self.ints.append(what)
        return f"d[{len(self.ints) - 1}]"

    def __call__(self, line: str = "") -> None:
        self.lines.append(line)


def _structure(model, loss_fn, optimizer):
    """What the generated code depends on: a tuple, the key of the generated file."""
    layers = []
    for layer in model.layers:
        if type(layer) is L.Dense:
            layers.append(("dense", layer._act))
        elif type(layer) is L.Dropout:
            layers.append(("dropout", layer.p > 0))
        else:
            layers.append(("act", ACTIVATION_OPS[type(layer)]))
    return (tuple(layers), LOSS_OPS[type(loss_fn)], type(optimizer).__name__)


def _generate(structure, header: str):
    """The source of ``step`` and ``epoch`` for ``structure``, and the meaning of the
    slots of ``d`` (the widths and offsets, passed in at run time)."""
    layers, loss_op, opt_name = structure
    w = _Writer()
    n_layers = len(layers)
    widths = [w.int_slot("width", k) for k in range(n_layers + 1)]
    # the first layer with parameters: nothing below it needs a gradient
    lowest = min((i for i, (kind, _) in enumerate(layers) if kind == "dense"), default=n_layers)
    kernels = set()
    fwd, bwd = [], []
    # a{i}: the input of layer i (a0 is X), g{i}: its gradient; f suffix: a flat view
    cur = 0  # the index of the activation that feeds the next layer
    views, rngs = [], []
    for i, (kind, arg) in enumerate(layers):
        src, dst = cur, i + 1
        if kind == "dropout" and not arg:  # p = 0: the layer passes its input on
            fwd.append(f"    # layers[{i}]: Dropout(p=0) passes its input on")
            continue
        cur = dst
        views.append(("act", dst))
        if kind == "dense":
            kernels.update(("dense_forward", "dense_backward"))
            views.append(("dense", i, src, dst))
            fwd.append(
                f"    dense_forward(a{src}, W{i}, b{i}, {arg}, a{dst})  # layers[{i}]: Dense"
            )
            need_dx = int(i > lowest)
            dx = f"g{src}" if need_dx else f"a{src}[:0]"
            bwd.append(
                f"    dense_backward(g{dst}, a{src}, W{i}, a{dst}, {arg}, g{dst}, {dx}, "
                f"dW{i}, db{i}, {need_dx})  # layers[{i}]: dz written over g{dst}"
            )
        elif kind == "act":
            kernels.update((arg, f"{arg}_backward"))
            alpha = f", fa[{i}]" if arg in WITH_ALPHA else ""
            fwd.append(f"    {arg}(a{src}f{alpha}, a{dst}f)  # layers[{i}]")
            if i > lowest:
                bwd.append(f"    {arg}_backward(g{dst}f, a{src}f{alpha}, g{src}f)  # layers[{i}]")
        else:  # dropout, p > 0
            kernels.update(("dropout", "dropout_backward"))
            r = len(rngs)
            rngs.append(f"rng{r}")
            views.append(("mask", i, dst))
            fwd += [
                f"    # layers[{i}]: Dropout, uniform numbers drawn from its Generator",
                f"    for j in range(u{i}.size):",
                f"        u{i}[j] = rng{r}.random()",
                f"    dropout(a{src}f, u{i}, hp[HP_DROP + {i}], a{dst}f, m{i})",
            ]
            if i > lowest:
                bwd.append(f"    dropout_backward(g{dst}f, m{i}, g{src}f)  # layers[{i}]")
    out = cur
    kernels.add(loss_op)
    opt_op = {"SGD": "sgd_update", "RMSprop": "rmsprop_update"}.get(opt_name, "adam_update")
    kernels.add(opt_op)
    n_state = 1 if opt_name == "SGD" else 2
    state = ", ".join(f"S{k}" for k in range(n_state))

    # ---- the views, then the passes
    body = ["    n = X.shape[0]"]
    body.append(
        "    " + ", ".join(f"w{k}" for k in range(n_layers + 1)) + " = " + ", ".join(widths)
    )
    body += ["    a0 = X", "    a0f = X.reshape(n * w0)"]
    for v in views:
        if v[0] == "act":
            k = v[1]
            oa, og = w.int_slot("ws", k), w.int_slot("gs", k)
            body += [
                f"    a{k}f = ws[{oa} : {oa} + n * w{k}]",
                f"    a{k} = a{k}f.reshape(n, w{k})",
                f"    g{k}f = gs[{og} : {og} + n * w{k}]",
                f"    g{k} = g{k}f.reshape(n, w{k})",
            ]
        elif v[0] == "dense":
            _, i, src, dst = v
            ow, ob = w.int_slot("param", f"{i}.W"), w.int_slot("param", f"{i}.b")
            body += [
                f"    W{i} = P[{ow} : {ow} + w{src} * w{dst}].reshape(w{src}, w{dst})",
                f"    b{i} = P[{ob} : {ob} + w{dst}]",
                f"    dW{i} = G[{ow} : {ow} + w{src} * w{dst}].reshape(w{src}, w{dst})",
                f"    db{i} = G[{ob} : {ob} + w{dst}]",
            ]
        else:  # mask
            _, i, dst = v
            om, ou = w.int_slot("ws", dst), w.int_slot("us", dst)
            body += [
                f"    m{i} = ws[{om} : {om} + n * w{dst}]",
                f"    u{i} = us[{ou} : {ou} + n * w{dst}]",
            ]
    if loss_op == "softmax_cross_entropy":
        count, loss_call = "n", f"softmax_cross_entropy(a{out}, Y, sb[0], acc, g{out})"
    else:
        count = f"n * w{out}"
        kind = POINTWISE_KIND[loss_op]
        loss_call = f"{loss_op}(a{out}f, Y.reshape(n * w{out}), sb[0], {kind}, acc, g{out}f)"
    body += ["    # ---- forward (training mode)", *fwd]
    body += [
        "    # ---- the loss: adds the batch's loss sum and correct count to acc, and",
        f"    # writes g{out} = d(loss) / d(a{out}); the scale rounded to the data's dtype",
        f"    sb[0] = 1.0 / ({count}) if ip[IP_MEAN] == 1 else 1.0",
        f"    {loss_call}",
        "    # ---- backward, last layer first",
        *reversed(bwd),
        "    # ---- the update: every parameter in one call, on the flat buffers",
        "    t = ip[IP_T] + 1",
        "    ip[IP_T] = t",
    ]
    if opt_name == "SGD":
        body.append(
            "    sgd_update(P, G, S0, mask, hp[0], hp[1], hp[2], hp[3], ip[IP_FLAG], "
            "1 if t == 1 else 0, ip[IP_MASKED])"
        )
    elif opt_name == "RMSprop":
        body.append(
            "    rmsprop_update(P, G, S0, S1, mask, hp[0], hp[1], hp[2], hp[3], hp[4], "
            "ip[IP_MASKED])"
        )
    else:
        body.append(
            "    adam_update(P, G, S0, S1, mask, hp[0], hp[1], hp[2], hp[3], hp[4], "
            "ip[IP_FLAG], t, ip[IP_MASKED])"
        )
    body.append(f"    return a{out}")

    rng_args = "".join(f", {r}" for r in rngs)
    common = f"P, G, {state}, mask, ws, gs, us, d, fa, hp, ip, sb, acc{rng_args}"
    targets_row = (
        "            Y[r] = Yall[order[lo + r]]"
        if loss_op == "softmax_cross_entropy"
        else "            Y[r, :] = Yall[order[lo + r], :]"
    )
    y_view = (
        "        Y = ys[:n]"
        if loss_op == "softmax_cross_entropy"
        else "        Y = ys[: n * Yall.shape[1]].reshape(n, Yall.shape[1])"
    )
    src = [
        header,
        "import numpy as np",
        "from numba import njit",
        "",
        "from nnlib.compiled import (",
        "    HP_DROP, IP_FLAG, IP_MASKED, IP_MEAN, IP_T, STEP_OPTIONS, kernels",
        ")",
        "",
        ", ".join(sorted(kernels))
        + " = kernels("
        + ", ".join(f'"{k}"' for k in sorted(kernels))
        + ")",
        "",
        "",
        "# NOTE: inlined into train (one function for LLVM to optimize, compiled once)",
        '@njit(inline="always")',
        f"def step(X, Y, {common}):",
        '    """One training step on the batch X (n, w0) with targets Y; returns the output."""',
        *body,
        "",
        "",
        "@njit(**STEP_OPTIONS)",
        f"def train(Xall, Yall, order, batch, gather, check, xs, ys, {common}):",
        '    """Mini-batch steps. ``gather``: the batches are the rows order[lo:lo + batch] of',
        "    Xall and Yall, copied into xs and ys (an epoch); else one step on all of Xall.",
        "    Returns the number of batches run: fewer than all when ``check`` and the loss",
        '    sum in acc became NaN or infinite."""',
        "    N = order.size if gather else Xall.shape[0]",
        "    D = Xall.shape[1]",
        "    nb = (N + batch - 1) // batch",
        "    for b in range(nb):",
        "        X, Y = Xall, Yall",
        "        if gather:",
        "            lo = b * batch",
        "            n = min(batch, N - lo)",
        "            X = xs[: n * D].reshape(n, D)",
        "    " + y_view,
        "            for r in range(n):",
        "                X[r, :] = Xall[order[lo + r], :]",
        "    " + targets_row,
        f"        step(X, Y, {common})",
        "        if check and not np.isfinite(acc[0]):",
        "            return b + 1",
        "    return nb",
        "",
    ]
    out_slot = w.ints.index(("ws", out))  # where the output lives in ws
    return "\n".join(src), w.ints, out_slot


# ---------------------------------------------------------------------- the shared names
# The generated module imports these: the slots of ``ip`` and ``hp``, the compile
# options, and the kernels.

IP_T, IP_MASKED, IP_MEAN, IP_FLAG = 0, 1, 2, 3  # step count, decay mask used, mean, flag
HP_DROP = 8  # hp[HP_DROP + i]: layers[i]'s dropout p (hp[0:8]: the optimizer's)


def _step_options():
    from .ops._launch import DEBUG_KERNELS

    if DEBUG_KERNELS:  # as the kernels: bounds-checked, not cached
        return {"cache": False, "boundscheck": True}
    return {"cache": True}


STEP_OPTIONS = _step_options()


def kernels(*ops):
    """The cpu kernels of ``ops`` (compiled Numba functions), in order."""
    from .ops._launch import KERNELS

    KERNELS_NEEDED = [KERNELS[op, "cpu"] for op in ops]
    return KERNELS_NEEDED if len(ops) > 1 else KERNELS_NEEDED[0]


def cache_dir() -> Path:
    """Where the generated steps are written: ``NNLIB_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/nnlib`` (``~/.cache/nnlib``), else a folder in the temp dir."""
    env = os.environ.get("NNLIB_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nnlib"


_FINGERPRINT = None


def _fingerprint() -> str:
    """A hash of the kernel files, this file, and the versions the compiled code depends
    on: a new one when any of them changes."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        from .ops._launch import DEBUG_KERNELS

        here = Path(__file__).parent
        h = hashlib.sha256()
        for path in [*sorted((here / "ops").glob("*.py")), here / "compiled.py"]:
            h.update(path.read_bytes())
        h.update(f"{numba.__version__} {np.__version__} {DEBUG_KERNELS}".encode())
        _FINGERPRINT = h.hexdigest()[:12]
    return _FINGERPRINT


_MODULES: dict[str, object] = {}  # file name -> the loaded module


def _write_once(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it is there (atomically: another process may
    be writing the same file). A file of the same name holds the same text."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".py")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _load(text: str, key: str):
    """The module of the generated ``text`` (written to the cache folder once)."""
    name = f"step_{key}"
    if name in _MODULES:
        return _MODULES[name]
    folder = cache_dir() / "steps"
    try:
        _write_once(folder / f"{name}.py", text)
    except OSError:  # the cache folder is not writable: a private one for this process
        folder = Path(tempfile.mkdtemp(prefix="nnlib-steps-"))
        _write_once(folder / f"{name}.py", text)
    spec = importlib.util.spec_from_file_location(f"nnlib._steps.{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    _MODULES[name] = module
    return module


# ---------------------------------------------------------------------- the step


class CompiledStep:
    """The compiled training step (and epoch) of one model, loss and optimizer.

    Made by :func:`plan`. :meth:`step` and :meth:`epoch` take data already validated by
    ``fit`` or ``train_on_batch`` (the same checks as the readable path), on the host.
    """

    def __init__(self, model, loss_fn, optimizer):
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.structure = _structure(model, loss_fn, optimizer)
        key_text = repr(self.structure)
        key = hashlib.sha256(f"{key_text} {_fingerprint()}".encode()).hexdigest()[:16]
        names = " -> ".join(repr(layer) for layer in model.layers)
        header = (
            "# A training step generated by nnlib.compiled (do not edit: regenerated when\n"
            f"# nnlib's kernels change; kernels fingerprint {_fingerprint()}).\n"
            f"# Structure: {key_text}\n"
            f"# First made for: {names}, {loss_fn!r}, {type(optimizer).__name__}\n"
        )
        self.source, self.slots, self.out_slot = _generate(self.structure, header)
        self.module = _load(self.source, key)
        self.rows = 0  # the batch size the buffers hold
        self.dtype = model.dtype
        self.fa = np.zeros(len(model.layers), self.dtype)  # activation alphas, data dtype
        self.sb = np.zeros(1, self.dtype)  # the loss scale, in the data's dtype
        self.no_mask = np.zeros(1, np.uint8)  # stands for "no decay mask" (never read)
        self.no_order = np.zeros(0, np.int64)  # stands for "no shuffled order" (one step)
        self._dropouts = [layer for layer in model.layers if type(layer) is L.Dropout]

    # ---- the buffers
    def _buffers(self, rows: int) -> None:
        """Allocate every buffer for batches of up to ``rows`` examples (once, and again
        only for a larger batch), and the slots of ``d`` that point into them."""
        if rows <= self.rows:
            return
        model = self.model
        widths, width = [model.input_features], model.input_features
        for layer in model.layers:
            width = layer.output_features(width)
            widths.append(width)
        values, sizes = [], {"ws": 0, "gs": 0, "us": 0}
        for kind, arg in self.slots:
            if kind == "width":
                values.append(widths[arg])
            elif kind == "param":
                values.append(model.store.slices[arg][0])
            else:  # a buffer of rows x widths[arg] in workspace ``kind``
                values.append(sizes[kind])
                sizes[kind] += rows * widths[arg]
        self.d, self.widths = np.array(values, np.int64), widths
        self.ws = np.empty(sizes["ws"], self.dtype)
        self.gs = np.empty(sizes["gs"], self.dtype)
        self.us = np.empty(sizes["us"], np.float64)
        self.xs = np.empty(rows * widths[0], self.dtype)
        self.ys_labels = np.empty(rows, np.int64)
        self.ys_values = np.empty(rows * widths[-1], self.dtype)
        self.rows = rows

    def _args(self):
        """The arguments after the data: buffers, the optimizer's state and scalars."""
        model, opt = self.model, self.optimizer
        store = model.store
        hp = np.zeros(8 + len(model.layers))
        ip = np.zeros(4, np.int64)
        wd = float(getattr(opt, "weight_decay", 0.0))
        mask = opt._decay_mask if wd else None
        if isinstance(opt, optim.SGD):
            hp[:4] = opt.lr, opt.momentum, opt.dampening, wd
            ip[IP_FLAG] = int(opt.nesterov)
            state = (opt.flat_state["momentum_buffer"],)
        elif isinstance(opt, optim.RMSprop):
            hp[:5] = opt.lr, opt.alpha, opt.eps, wd, opt.momentum
            state = (opt.flat_state["square_avg"], opt.flat_state["momentum_buffer"])
        else:
            hp[:5] = opt.lr, opt.betas[0], opt.betas[1], opt.eps, wd
            ip[IP_FLAG] = opt.decoupled
            state = (opt.flat_state["exp_avg"], opt.flat_state["exp_avg_sq"])
        for i, layer in enumerate(model.layers):
            if type(layer) is L.Dropout:
                hp[HP_DROP + i] = layer.p
            elif type(layer) in (L.LeakyReLU, L.ELU):
                self.fa[i] = layer.alpha  # rounded to the data's dtype, as the layer's is
        ip[IP_T] = opt.t
        ip[IP_MASKED] = int(mask is not None)
        ip[IP_MEAN] = int(self.loss_fn.reduction == "mean")
        for layer in self._dropouts:
            if layer.p > 0 and layer.rng is None:
                layer.rng = np.random.default_rng()
        rngs = [layer.rng for layer in self._dropouts if layer.p > 0]
        return (
            (
                store.flat_params,
                store.flat_grads,
                *state,
                self.no_mask if mask is None else mask,
                self.ws,
                self.gs,
                self.us,
                self.d,
                self.fa,
                hp,
                ip,
                self.sb,
            ),
            rngs,
            ip,
        )

    def usable(self) -> str:
        """ "" when the next step can be compiled, else why not (a state that the
        readable path must handle: recorded outputs, a frozen dropout mask)."""
        model = self.model
        if model.record_outputs or model.record_grads:
            return "the model records its outputs or gradients (Diagnostics)"
        for layer in self._dropouts:
            if layer.frozen_u is not None:
                return "a Dropout layer has a frozen mask (gradcheck)"
        return ""

    def _start(self):
        self.model._set_training(True)

    def step(self, X, Y, acc):
        """One step on the batch ``X`` (n, D) with prepared targets ``Y``; adds the loss
        sum and correct count to ``acc``; returns the output (n, K), a view of a buffer."""
        self._start()
        self._buffers(len(X))
        args, rngs, ip = self._args()
        X, Y = np.ascontiguousarray(X), np.ascontiguousarray(Y)
        ys = self.ys_labels if Y.ndim == 1 else self.ys_values
        try:
            self.module.train(
                X, Y, self.no_order, len(X), False, False, self.xs, ys, *args, acc, *rngs
            )
        finally:
            self.optimizer.t = int(ip[IP_T])
        n, k = len(X), self.widths[-1]
        start = self.d[self.out_slot]
        return self.ws[start : start + n * k].reshape(n, k)

    def epoch(self, X, Y, order, batch_size: int, acc, check_finite: bool) -> int:
        """Every mini-batch ``order[lo:lo + batch_size]`` of ``X`` and ``Y`` in one call.
        Returns the number of batches run (fewer when the loss became non-finite)."""
        self._start()
        self._buffers(min(batch_size, len(order)))
        args, rngs, ip = self._args()
        ys = self.ys_labels if Y.ndim == 1 else self.ys_values
        try:
            done = self.module.train(
                np.ascontiguousarray(X),
                np.ascontiguousarray(Y),
                np.ascontiguousarray(order, np.int64),
                int(batch_size),
                True,
                bool(check_finite),
                self.xs,
                ys,
                *args,
                acc,
                *rngs,
            )
        finally:
            self.optimizer.t = int(ip[IP_T])
        return int(done)
