"""The nnlib model file: one archive that holds a model's description and arrays.

    nl.save(model, "digits.nnlib.npz", optimizer=opt)
    model, opt = nl.load("digits.nnlib.npz")            # or backend="cuda", ...

(:func:`nnlib.save` and :func:`nnlib.load` live with :class:`nnlib.Sequential`; this
module is the file format only and knows nothing of models.)

The file is a NumPy ``.npz`` archive: the arrays (parameters as ``param/<name>``,
optimizer state as ``optimizer/<name>/<state>``) and one JSON header (``__nnlib__``) with
the format name and version, the nnlib version that wrote it, the dtype, the layers
(class and :meth:`~nnlib.Layer.get_config`), the loss of the last ``fit`` and the
optimizer's class, hyper-parameters and step count. Nothing is pickled, so loading a
file cannot run code, and a file can be inspected with ``numpy.load`` alone.

Saving writes a temporary file next to the target and renames it over the target only
once it is complete: an interrupted save leaves the previous file intact.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFileError", "read", "write"]

FORMAT = "nnlib.Sequential"
FORMAT_VERSION = 1
_HEADER = "__nnlib__"


class ModelFileError(ValueError):
    """The file is not a model nnlib can load: not an nnlib file, corrupt, or too new."""


def write(path, header: dict, arrays: dict) -> Path:
    """Write ``header`` (a JSON-able dict) and ``arrays`` (name -> array) to ``path``
    atomically; the format's name and version and the nnlib version are added to the
    header. Returns the path written."""
    path = Path(path)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "nnlib_version": _version(),
        **header,
    }
    arrays = {**arrays, _HEADER: np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    _write_atomically(path, arrays)
    return path


def _write_atomically(path: Path, arrays: dict) -> None:
    # NOTE: a symlink is written through (its target is replaced, the link kept), and an
    # existing file keeps its permissions; a new one gets the usual ones (0666 - umask)
    path = Path(os.path.realpath(path)) if path.is_symlink() else path
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"save: the folder {folder} does not exist")
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)  # atomic: readers see the old file or the new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_sizes(path: Path) -> None:
    """Every array in the archive at ``path`` is as large as its stored bytes, checked
    from the array headers before anything is read: a small file cannot make ``load``
    allocate what a header claims. (nnlib stores its arrays uncompressed.)"""
    size = path.stat().st_size
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.file_size > size:
                raise ModelFileError(
                    f"load: {path}: {info.filename} claims {info.file_size} bytes, more than "
                    f"the whole file ({size}): not a file nl.save wrote"
                )
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                else:
                    raise ModelFileError(f"load: {path}: {info.filename} has npy format {version}")
            if math.prod(shape) * dtype.itemsize > info.file_size:
                raise ModelFileError(
                    f"load: {path}: {info.filename} claims shape {shape} of {dtype}, more than "
                    f"its {info.file_size} stored bytes (corrupt or crafted)"
                )


def _version() -> str:
    from . import __version__

    return __version__


def read(path) -> tuple[dict, dict]:
    """The header and the arrays of the model file at ``path``; :class:`ModelFileError`
    if it is not one (corrupt, truncated, another archive, or a newer format)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load: no file {path}")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"load: {path} is not a readable nnlib model file (an .npz archive, as nl.save "
            "writes; corrupt or truncated?)"
        )
    try:
        _check_sizes(path)
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
