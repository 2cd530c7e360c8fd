"""Save a trained model (and optionally its optimizer) to one file, and load it back.

    nl.save(model, "digits.nnlib.npz", optimizer=opt)
    model, opt = nl.load("digits.nnlib.npz")            # or backend="cuda", ...

The file is a NumPy ``.npz`` archive: the arrays (parameters as ``param/<name>``,
optimizer state as ``optimizer/<name>/<state>``) and one JSON header (``__nnlib__``) with
the format name and version, the nnlib version that wrote it, the dtype, the layers
(class and constructor arguments), the loss of the last ``fit`` and the optimizer's
class, hyper-parameters and step count. Nothing is pickled, so loading a file cannot run
code, and a file can be inspected with ``numpy.load`` alone.

Saving writes a temporary file next to the target and renames it over the target only
once it is complete: an interrupted save leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import layers as L
from . import losses as losses_
from . import optim
from ._arrays import to_host
from .init import INITIALIZERS
from .model import Sequential

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFileError", "load", "save"]

FORMAT = "nnlib.Sequential"
FORMAT_VERSION = 1
_HEADER = "__nnlib__"

_LAYERS = {
    cls.__name__: cls
    for cls in (
        L.Dense,
        L.ReLU,
        L.LeakyReLU,
        L.PReLU,
        L.ELU,
        L.Sigmoid,
        L.Tanh,
        L.Softmax,
        L.Dropout,
    )
}
_OPTIMIZERS = {cls.__name__: cls for cls in (optim.SGD, optim.RMSprop, optim.Adam, optim.AdamW)}


class ModelFileError(ValueError):
    """The file is not a model nnlib can load: not an nnlib file, corrupt, or too new."""


def _layer_config(i, layer) -> dict:
    name = type(layer).__name__
    if _LAYERS.get(name) is not type(layer):
        raise TypeError(
            f"save: layers[{i}] is a {name}; nnlib can save these layers: {', '.join(_LAYERS)}"
        )
    if isinstance(layer, L.Dense):
        init = layer.init_name if layer.init_name in INITIALIZERS else "xavier"
        config = {
            "in_features": layer.in_features,
            "out_features": layer.out_features,
            "init": init,  # (only used to build; the saved values replace it)
            "activation": layer.activation,
        }
    elif isinstance(layer, L.PReLU):
        config = {"alpha": layer.alpha0, "per_feature": layer.per_feature}
    elif isinstance(layer, L.LeakyReLU):  # (ELU too: both keep alpha)
        config = {"alpha": float(layer.alpha)}
    elif isinstance(layer, L.Dropout):
        config = {"p": layer.p}
    else:
        config = {}
    return {"class": name, "config": config}


def _loss_name(loss) -> str | None:
    if loss is None:
        return None
    for name, cls in losses_.LOSSES.items():
        if type(loss) is cls:
            return name
    return None


def save(model: Sequential, path, optimizer: optim.Optimizer | None = None) -> Path:
    """Write ``model`` (architecture and parameters) and, if given, ``optimizer`` (its
    hyper-parameters, step count and state) to ``path``. Returns the path written."""
    if not isinstance(model, Sequential):
        raise TypeError(f"save: model must be an nnlib Sequential; got {type(model).__name__}")
    if optimizer is not None and type(optimizer).__name__ not in _OPTIMIZERS:
        raise TypeError(
            f"save: optimizer must be one of {', '.join(_OPTIMIZERS)}; "
            f"got {type(optimizer).__name__}"
        )
    model._require_built("save()")
    path = Path(path)
    arrays = {f"param/{k}": np.array(to_host(v)) for k, v in model.parameters().items()}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "nnlib_version": _version(),
        "dtype": model.dtype.name,
        "layers": [_layer_config(i, layer) for i, layer in enumerate(model.layers)],
        "loss": _loss_name(model.loss),
        "loss_reduction": getattr(model.loss, "reduction", None),
        "optimizer": None,
    }
    if optimizer is not None:
        state = optimizer.state_dict()
        header["optimizer"] = {
            "class": type(optimizer).__name__,
            "hyper": {k: list(v) if isinstance(v, tuple) else v for k, v in state["hyper"].items()},
            "t": state["t"],
            "state": {k: sorted(v) for k, v in state["state"].items()},
        }
        for k, v in state["state"].items():
            for s, a in v.items():
                arrays[f"optimizer/{k}/{s}"] = a
    arrays[_HEADER] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    _write_atomically(path, arrays)
    return path


def _write_atomically(path: Path, arrays: dict) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"save: the folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: readers see the old file or the new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _version() -> str:
    from . import __version__

    return __version__


def _read(path: Path) -> tuple[dict, dict]:
    if not path.is_file():
        raise FileNotFoundError(f"load: no file {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as err:
        raise ModelFileError(
            f"load: {path} is not a readable nnlib model file (corrupt or truncated?): {err}"
        ) from None
    if _HEADER not in arrays:
        raise ModelFileError(f"load: {path} is an .npz archive but not an nnlib model file")
    try:
        header = json.loads(arrays.pop(_HEADER).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"load: {path} has a corrupt header: {err}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"load: {path} is not an nnlib model file (format {FORMAT!r})")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"load: {path} was written by nnlib {header.get('nnlib_version')} in file format "
            f"{version}; this nnlib ({_version()}) reads format {FORMAT_VERSION} and older. "
            "Upgrade nnlib (pip install -U nnlib) to load it."
        )
    return header, arrays


def load(path, *, backend: str | None = None):
    """Read a file written by :func:`save`: the model, or ``(model, optimizer)`` when an
    optimizer was saved with it. ``backend`` places the model on that backend (default:
    the usual resolution, see :func:`nnlib.get_backend`)."""
    path = Path(path)
    header, arrays = _read(path)
    try:
        layers = [_LAYERS[spec["class"]](**spec["config"]) for spec in header["layers"]]
        model = Sequential(layers, dtype=np.dtype(header["dtype"]))
        model.build(seed=0)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"load: {path} describes a model nnlib cannot build: {err}") from None
    params = model.parameters()
    saved = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
    if set(saved) != set(params):
        raise ModelFileError(
            f"load: {path} holds parameters {sorted(saved)}, but its layers need {sorted(params)}"
        )
    for name, value in saved.items():
        if value.shape != params[name].shape:
            raise ModelFileError(
                f"load: parameter {name!r} in {path} has shape {value.shape}; its layer needs "
                f"{params[name].shape}"
            )
    model.set_parameters({k: v.astype(model.dtype) for k, v in saved.items()})
    if header.get("loss"):
        model.loss = losses_.get(header["loss"], header.get("loss_reduction") or "mean")
    model._set_backend(backend)
    if header.get("optimizer") is None:
        return model
    spec = header["optimizer"]
    try:
        opt = _OPTIMIZERS[spec["class"]]()
        hyper = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["hyper"].items()}
        state = {
            k: {s: arrays[f"optimizer/{k}/{s}"] for s in names}
            for k, names in spec["state"].items()
        }
        opt.load_state_dict({"hyper": hyper, "t": spec["t"], "state": state})
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(
            f"load: {path} holds an optimizer nnlib cannot restore: {err}"
        ) from None
    return model, opt
