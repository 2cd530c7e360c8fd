"""Data sets for the course and for your own projects.

* Generated toy sets: every generator takes ``seed`` (int, Generator or None) and returns
  ``(X, y)``: ``X`` float32 of shape (n, D), ``y`` int64 labels of shape (n,) (float32
  targets (n, 1) for :func:`sine`). Examples come in random order, so any slice of them
  holds every class.
* :func:`load_digits`: 1,797 real 8x8 handwritten digits, bundled (no network needed).
* :func:`load_mnist`, :func:`load_fashion_mnist`: 70,000 28x28 images each, downloaded
  once into a cache folder and verified. nnlib never deletes or changes a file it did not
  write: another copy of MNIST in your folder is read (with a warning) or refused.
"""

from __future__ import annotations

import hashlib
import io
import math
import numbers
import os
import warnings
from importlib import resources
from pathlib import Path

import numpy as np

from .init import rng_from

__all__ = [
    "blobs",
    "circles",
    "data_home",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "moons",
    "read_idx",
    "sine",
    "spirals",
    "xor",
]

# SHA-256 of nnlib/data/digits.npz; load_digits refuses a file that does not match.
DIGITS_SHA256 = "b2dab7b501728c22e9119ad76740b2e17c77a231e42d1e592380d90886f1a05e"


class DataIntegrityError(RuntimeError):
    """A data file is not the one nnlib expects (corrupt, truncated or replaced)."""


def _verified_bytes(path, expected: str) -> bytes:
    data = path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise DataIntegrityError(
            f"{path} is corrupt: its SHA-256 is {got}, expected {expected}. "
            "Reinstall nnlib (pip install --force-reinstall nnlib, or git checkout the file "
            "in a source tree)."
        )
    return data


def load_digits(*, images: bool = False, path=None):
    """The UCI handwritten digits: ``(X, y)``, 1,797 examples of 10 classes.

    ``X`` is float32 with pixel values 0..16, shape (1797, 64), or (1797, 8, 8) with
    ``images=True``; ``y`` is int64 in 0..9. Divide by 16 (or standardize, fitting on the
    training split only) before training. The file ships inside the package and its
    checksum is verified on every load. Source: Alpaydin & Kaynak, UCI Machine Learning
    Repository (CC BY 4.0); see ``nnlib/data/README.md``. ``path`` reads another copy of
    the file (it must have the same checksum).
    """
    path = resources.files("nnlib") / "data" / "digits.npz" if path is None else Path(path)
    with np.load(io.BytesIO(_verified_bytes(path, DIGITS_SHA256)), allow_pickle=False) as f:
        pixels, labels = f["images"], f["labels"]
    X = pixels.astype(np.float32)
    if not images:
        X = X.reshape(len(X), -1)
    return X, labels.astype(np.int64)


def _check(n, noise, min_n=1):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < min_n:
        raise ValueError(f"n must be an int >= {min_n}; got {n!r}")
    if not isinstance(noise, numbers.Real) or noise < 0:
        raise ValueError(f"noise must be a number >= 0; got {noise!r}")


def _count(value, name, min_value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < min_value:
        raise ValueError(f"{name} must be an int >= {min_value}; got {value!r}")


def _finish(X, y, rng):
    perm = rng.permutation(len(X))
    return np.ascontiguousarray(X[perm], np.float32), np.ascontiguousarray(y[perm], np.int64)


def moons(n: int = 1000, noise: float = 0.1, seed=None):
    """Two interleaving half circles (2 classes, 2 features), Gaussian noise of std ``noise``."""
    _check(n, noise)
    rng = rng_from(seed)
    n0 = n // 2
    t0, t1 = np.linspace(0, np.pi, n0), np.linspace(0, np.pi, n - n0)
    X = np.concatenate(
        [np.c_[np.cos(t0), np.sin(t0)], np.c_[1 - np.cos(t1), 0.5 - np.sin(t1)]]
    ) + rng.normal(0, noise, (n, 2))
    y = np.r_[np.zeros(n0), np.ones(n - n0)]
    return _finish(X, y, rng)


def circles(n: int = 1000, noise: float = 0.05, factor: float = 0.5, seed=None):
    """A circle inside a larger one (2 classes); ``factor`` is the inner radius."""
    _check(n, noise)
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not 0 < factor < 1:
        raise ValueError(f"factor must be a number in (0, 1), the inner radius; got {factor!r}")
    rng = rng_from(seed)
    n0 = n // 2
    t0 = np.linspace(0, 2 * np.pi, n0, endpoint=False)
    t1 = np.linspace(0, 2 * np.pi, n - n0, endpoint=False)
    X = np.concatenate([np.c_[np.cos(t0), np.sin(t0)], factor * np.c_[np.cos(t1), np.sin(t1)]])
    X = X + rng.normal(0, noise, (n, 2))
    return _finish(X, np.r_[np.zeros(n0), np.ones(n - n0)], rng)


def xor(n: int = 1000, noise: float = 0.1, seed=None):
    """Points around the four corners (+-1, +-1); class 1 where the signs differ."""
    _check(n, noise)
    rng = rng_from(seed)
    corners = rng.integers(0, 2, (n, 2)) * 2 - 1
    X = corners + rng.normal(0, noise, (n, 2))
    return _finish(X, (corners[:, 0] != corners[:, 1]).astype(np.int64), rng)


def spirals(n: int = 1000, classes: int = 3, noise: float = 0.2, seed=None):
    """``classes`` interleaved spiral arms (cs231n's toy problem)."""
    _check(n, noise)
    _count(classes, "classes", 2)
    rng = rng_from(seed)
    y = np.arange(n) % classes
    r = np.concatenate([np.linspace(0.0, 1, np.sum(y == k)) for k in range(classes)])
    y = np.sort(y)
    t = y * (2 * np.pi / classes) + r * 4 + rng.normal(0, noise, n)
    return _finish(np.c_[r * np.sin(t), r * np.cos(t)], y, rng)


def blobs(n: int = 1000, centers: int = 3, dim: int = 2, std: float = 1.0, seed=None):
    """Gaussian blobs around ``centers`` random centres in [-10, 10]^dim."""
    _check(n, std)
    _count(centers, "centers", 1)
    _count(dim, "dim", 1)
    rng = rng_from(seed)
    c = rng.uniform(-10, 10, (centers, dim))
    y = rng.integers(0, centers, n)
    return _finish(c[y] + rng.normal(0, std, (n, dim)), y, rng)


def sine(n: int = 200, noise: float = 0.1, seed=None):
    """Regression: ``x`` uniform in [-pi, pi], ``y = sin(x) + noise``; X (n, 1), y (n, 1)."""
    _check(n, noise)
    rng = rng_from(seed)
    x = rng.uniform(-np.pi, np.pi, (n, 1))
    y = np.sin(x) + rng.normal(0, noise, (n, 1))
    return x.astype(np.float32), y.astype(np.float32)


# --------------------------------------------------------------------- MNIST-style sets
# The standard IDX files, downloaded on demand into a cache folder. Mirrors are tried in
# order; every file is checked against its SHA-256 ("algorithm:hex", the digests that
# TensorFlow Datasets publishes for these exact files) before it is kept. The authors
# publish MD5s (torchvision's: MNIST f68b3c2d..., Fashion-MNIST 8d4fb7e6...): the same
# files, but SHA-256 is the digest that resists a deliberately altered mirror.
IDX_SETS = {
    "mnist": {
        "mirrors": [
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ],
        "files": {
            "train-images-idx3-ubyte.gz": (
                "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
            ),
            "train-labels-idx1-ubyte.gz": (
                "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
            ),
            "t10k-images-idx3-ubyte.gz": (
                "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
            ),
            "t10k-labels-idx1-ubyte.gz": (
                "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
            ),
        },
    },
    "fashion_mnist": {
        "mirrors": [
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ],
        "files": {
            "train-images-idx3-ubyte.gz": (
                "sha256:3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
            ),
            "train-labels-idx1-ubyte.gz": (
                "sha256:a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
            ),
            "t10k-images-idx3-ubyte.gz": (
                "sha256:346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
            ),
            "t10k-labels-idx1-ubyte.gz": (
                "sha256:67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
            ),
        },
    },
}
DATA_ENV = "NNLIB_DATA"


TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}

# nnlib's own cache folder is one that nnlib created and tagged with this file (the Cache
# Directory Tagging Specification, https://bford.info/cachedir/, which backup tools
# honour). Only there may nnlib replace a corrupt copy; every other folder is the user's.
CACHE_TAG = "CACHEDIR.TAG"
CACHE_TAG_TEXT = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by nnlib.\n"
    "# nnlib downloads data sets into this folder and may replace a corrupt copy here;\n"
    "# it never changes a file in a folder without this tag.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)


class DownloadError(OSError):
    """No mirror delivered a file with the right checksum."""


class ChecksumWarning(UserWarning):
    """A data file's checksum is not the published one; nnlib reads it if its contents are
    valid, and leaves it as it is."""


def data_home(cache_dir=None) -> Path:
    """Where downloaded data sets live: ``cache_dir``, else ``$NNLIB_DATA``, else
    ``~/.cache/nnlib``.

    Each set has its own folder inside, e.g. ``<data_home>/mnist``. When nnlib creates
    that folder it tags it as nnlib's own cache (a ``CACHEDIR.TAG`` file): only there does
    it replace a corrupt copy (atomically, with a verified download). A set folder that
    already existed without the tag (your own MNIST files, where ``$NNLIB_DATA`` or
    ``cache_dir`` points) is yours: nnlib reads the files, downloads only the missing
    ones, and never deletes or overwrites anything in it.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path.home() / ".cache" / "nnlib"


def _is_own_cache(folder: Path) -> bool:
    try:
        text = (folder / CACHE_TAG).read_text(errors="replace")
    except OSError:
        return False
    return text.startswith(CACHE_TAG_TEXT.split("\n")[0]) and "created by nnlib" in text


def _own_cache(folder: Path) -> bool:
    """Create ``folder`` as nnlib's own (tagged) cache if it does not exist yet; whether
    it is nnlib's own cache."""
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        pass  # nnlib did not create it now: it is nnlib's only if an earlier call tagged it
    else:
        (folder / CACHE_TAG).write_text(CACHE_TAG_TEXT)
    return _is_own_cache(folder)


def _digest(path: Path, checksum: str) -> tuple[str, str]:
    algorithm, _, expected = checksum.partition(":")
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest(), expected


def _download(url, target: Path, checksum, timeout, verbose, *, replace: bool) -> None:
    """Fetch ``url`` into ``target`` atomically: a temporary file in the same folder is
    moved into place only when it is complete and its checksum matches. ``replace``
    (nnlib's own cache only) may replace a corrupt ``target``; otherwise an existing
    ``target`` is never overwritten."""
    import http.client
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        _stream(url, fd, target.name, timeout, verbose)
        got, want = _digest(Path(tmp), checksum)
        if got != want:
            algorithm = checksum.partition(":")[0]
            raise OSError(f"checksum mismatch ({algorithm} {got}, expected {want})")
        if replace:
            os.replace(tmp, target)  # atomic: the file is there whole, or not at all
        else:
            _create(Path(tmp), target)
    except http.client.HTTPException as err:  # e.g. IncompleteRead: the server hung up
        raise OSError(f"transfer interrupted ({type(err).__name__})") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _create(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target`` only if ``target`` does not exist."""
    # NOTE: a hard link fails if the target exists, so a file that another program wrote
    # meanwhile is never overwritten (a check then a rename could race with it).
    try:
        os.link(tmp, target)
        return
    except FileExistsError:
        pass
    except OSError:  # no hard links on this file system (FAT, some network shares)
        if not target.exists():
            os.replace(tmp, target)
            return
    raise OSError(f"{target} appeared while downloading; nnlib left it as it is: call again")


def _stream(url, fd, name, timeout, verbose) -> None:
    import urllib.request

    with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
        expected_size = resp.headers.get("Content-Length")
        bar = _bar(name, expected_size, verbose)
        received = 0
        while block := resp.read(1 << 16):
            out.write(block)
            received += len(block)
            if bar is not None:
                bar.update(len(block))
        if bar is not None:
            bar.close()
    if expected_size is not None and received != int(expected_size):
        raise OSError(f"transfer interrupted: {received} of {expected_size} bytes")


def _bar(name, size, verbose):
    if not verbose:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=int(size) if size else None, unit="B", unit_scale=True, desc=name)


def _fetch(name, folder: Path, own: bool, timeout, verbose, download: bool) -> dict:
    """Each file of set ``name`` in ``folder``, downloading what is missing. ``own``: the
    folder is nnlib's own cache, where a corrupt copy may be replaced."""
    spec = IDX_SETS[name]
    found = {}
    for filename, checksum in spec["files"].items():
        target = folder / filename
        plain = folder / filename.removesuffix(".gz")
        kept = ""
        if target.exists():
            got, want = _digest(target, checksum)
            if got == want:
                found[filename] = target
                continue
            if not (own and download):
                # NOTE: a file nnlib did not write (or cannot replace now): read it if its
                # contents are valid MNIST, refuse it otherwise, but never change it.
                warnings.warn(_mismatch(name, target, got, want, own), ChecksumWarning, 4)
                found[filename] = target
                continue
            # nnlib's own cache holds a corrupt copy: a verified download replaces it below
            kept = f"\n(the corrupt copy {target} was left as it is)"
        elif plain.exists():
            found[filename] = plain  # unpacked by hand: checked by its IDX header instead
            continue
        elif not download:
            raise FileNotFoundError(_by_hand(name, filename, folder, []))
        problems = []
        for mirror in spec["mirrors"]:
            try:
                _download(mirror + filename, target, checksum, timeout, verbose, replace=own)
                break
            except OSError as err:  # URLError, HTTPError, timeouts, bad checksum
                problems.append(f"{mirror + filename}: {err}")
        else:
            raise DownloadError(_by_hand(name, filename, folder, problems) + kept)
        found[filename] = target
    return found


def _mismatch(name, path, got, want, own) -> str:
    title = TITLES.get(name, name)
    if own:
        todo = "call again with download=True to replace it with the published file"
    else:
        todo = (
            "to use the published file instead, replace it with a copy from any of "
            f"{', '.join(IDX_SETS[name]['mirrors'])}"
        )
    return (
        f"{path}: its SHA-256 is {got}, the published file's is {want}: it may be another "
        f"copy of {title} (gzipped again, for example). nnlib reads it if its contents are "
        f"valid {title} and leaves it as it is; {todo}."
    )


def _by_hand(name, filename, folder, problems) -> str:
    tried = "".join(f"\n  - {p}" for p in problems)
    head = (
        f"could not download {filename} of {name}; tried:{tried}"
        if problems
        else f"{filename} of {name} is not in {folder} (and downloading is off)"
    )
    return (
        f"{head}\nTo install it by hand, download the four files "
        f"({', '.join(IDX_SETS[name]['files'])}) from any of "
        f"{', '.join(IDX_SETS[name]['mirrors'])} into {folder} (or any folder and pass "
        f"path=that folder), or set {DATA_ENV} to a folder that holds them."
    )


def read_idx(path, *, max_bytes: int | None = None) -> np.ndarray:
    """An array from an IDX file (the MNIST format), gzipped or not.

    A file that is not IDX, is truncated, or whose gzip stream is corrupt raises
    ``ValueError`` naming the file. The file is read in blocks, never more than its header
    promises, so a header claiming terabytes costs only the bytes the file holds.
    ``max_bytes``: refuse, before reading any data, a header that promises more bytes
    of data than this (a small gzip file can expand about a thousand times: the MNIST
    loaders pass the most a real file of theirs holds).
    """
    import gzip
    import zlib

    path = Path(path)
    with open(path, "rb") as f:
        packed = f.read(2) == b"\x1f\x8b"
        f.seek(0)
        try:
            return _parse_idx(gzip.GzipFile(fileobj=f) if packed else f, path, max_bytes)
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise ValueError(
                f"{path}: a corrupt or truncated gzip file ({err}). It was damaged or not "
                "copied whole: replace it with a fresh copy"
            ) from None


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _parse_idx(stream, path, max_bytes=None) -> np.ndarray:
    magic = _read(stream, 4)
    if len(magic) < 4 or magic[0] or magic[1] or magic[2] not in _IDX_TYPES or not magic[3]:
        raise ValueError(
            f"{path}: not an IDX file (bad magic number {magic.hex()}; an IDX file starts "
            "with 00 00, a type code and the number of dimensions)"
        )
    ndim, dtype = magic[3], np.dtype(_IDX_TYPES[magic[2]])
    dims = _read(stream, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(
            f"{path}: the IDX header promises {ndim} dimensions but the file ends after "
            f"{len(dims)} of their {4 * ndim} bytes: truncated or corrupt"
        )
    shape = tuple(int.from_bytes(dims[i : i + 4], "big") for i in range(0, 4 * ndim, 4))
    size = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if max_bytes is not None and size > max_bytes:
        raise ValueError(
            f"{path}: the IDX header says shape {shape} ({size} bytes of data), more than "
            f"the {max_bytes} bytes this file may hold: corrupt, or not the data set it "
            "is named for"
        )
    data = _read(stream, size + 1)  # one byte more: to see trailing data (and the gzip CRC)
    if len(data) != size:
        holds = f"{len(data)}" if len(data) < size else "more"
        raise ValueError(
            f"{path}: IDX header says shape {shape} ({size} bytes of data) but the file "
            f"holds {holds}: truncated or corrupt"
        )
    return np.frombuffer(data, dtype).reshape(shape)


def _read(stream, n: int) -> bytes:
    """Up to ``n`` bytes of ``stream``, read in blocks of at most 16 MiB."""
    blocks = []
    while n > 0 and (block := stream.read(min(n, 1 << 24))):
        blocks.append(block)
        n -= len(block)
    return b"".join(blocks)


# The most data one file of an MNIST-style set may hold: its largest, the 60,000
# training images of 28x28 bytes, is 47 MB (45 MiB); four times that leaves room for a
# larger set of the same format.
MNIST_MAX_BYTES = 4 * 60_000 * 28 * 28


def _mnist_array(name, filename, path) -> np.ndarray:
    """The array of one file of set ``name``, checked to be MNIST-shaped: images uint8
    (n, 28, 28), labels uint8 (n,) in 0..9."""
    a = read_idx(path, max_bytes=MNIST_MAX_BYTES)
    if "images" in filename and (a.dtype != np.uint8 or a.ndim != 3 or a.shape[1:] != (28, 28)):
        raise ValueError(
            f"{path}: {TITLES.get(name, name)} images must be uint8 images of 28x28 pixels, "
            f"shape (n, 28, 28); the file holds shape {a.shape}, dtype {a.dtype}"
        )
    if "labels" in filename:
        if a.dtype != np.uint8 or a.ndim != 1:
            raise ValueError(
                f"{path}: labels must be a 1-D uint8 array, shape (n,); the file holds "
                f"shape {a.shape}, dtype {a.dtype}"
            )
        if len(a) and a.max() > 9:
            raise ValueError(
                f"{path}: labels must lie in 0..9; got values from {a.min()} to {a.max()}"
            )
    return a


def _load_idx_set(name, path, cache_dir, download, timeout, verbose):
    if path is not None:
        folder, download, own = Path(path).expanduser(), False, False
        if not folder.is_dir():
            raise FileNotFoundError(f"path must be a folder holding the {name} files; got {path}")
    else:
        folder = data_home(cache_dir) / name
        own = _own_cache(folder) if download else _is_own_cache(folder)
    arrays = {}
    for filename, p in _fetch(name, folder, own, timeout, verbose, download).items():
        try:
            arrays[filename] = _mnist_array(name, filename, p)
        except ValueError as err:
            again = ", or delete it and call again to download it" if download else ""
            raise ValueError(
                f"{err}\n{p} is not a valid copy of the published file {filename} of "
                f"{TITLES.get(name, name)}: replace it with the published file from any of "
                f"{', '.join(IDX_SETS[name]['mirrors'])}{again}. nnlib left it as it is."
            ) from None
    out = []
    for split in ("train", "t10k"):
        images = arrays[f"{split}-images-idx3-ubyte.gz"]
        labels = arrays[f"{split}-labels-idx1-ubyte.gz"]
        if len(images) != len(labels):
            raise ValueError(
                f"{name} {split}: {images.shape} images do not match {labels.shape} labels"
            )
        X = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
        out.append((X, labels.astype(np.int64)))
    return tuple(out)


def load_mnist(*, path=None, cache_dir=None, download=True, timeout=60.0, verbose=False):
    """MNIST handwritten digits: ``(X_train, y_train), (X_test, y_test)``.

    60,000 + 10,000 images of 28x28 pixels; ``X`` float32 (n, 784) scaled to [0, 1],
    ``y`` int64 in 0..9. The four IDX files are downloaded once into
    ``<cache>/mnist`` (``cache_dir``, else ``$NNLIB_DATA``, else ``~/.cache/nnlib``) from
    the first mirror that works, and checked against their published checksums; later
    calls read the cache without touching the network. ``path=`` reads the files
    (gzipped or not) from a folder instead and never downloads.

    nnlib never deletes or changes a file it did not write (see :func:`data_home` for
    which folder is nnlib's own cache). A file whose checksum is not the published one
    (another copy of MNIST, gzipped again) gives a :class:`ChecksumWarning` and is read if
    its contents are valid MNIST (IDX header, byte count, images uint8 (n, 28, 28), labels
    in 0..9); otherwise ``ValueError`` names the file and what to do.
    """
    return _load_idx_set("mnist", path, cache_dir, download, timeout, verbose)


def load_fashion_mnist(*, path=None, cache_dir=None, download=True, timeout=60.0, verbose=False):
    """Fashion-MNIST (Zalando): 10 classes of clothing, same format and arguments as
    :func:`load_mnist` (cached in ``<cache>/fashion_mnist``)."""
    return _load_idx_set("fashion_mnist", path, cache_dir, download, timeout, verbose)
