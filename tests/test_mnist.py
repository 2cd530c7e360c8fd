"""MNIST-style loaders, against fixture IDX files served from 127.0.0.1 (no test touches
the internet): download and parse, checksum failure, mirror fallback, cache hit,
interrupted transfer, gzipped and plain files, the offline path, malformed files; and a
file nnlib did not write (another copy of MNIST in the user's folder) is read or refused,
never deleted or changed."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

from nnlib import datasets

N_TRAIN, N_TEST = 5, 3


def _idx(array: np.ndarray) -> bytes:
    return (
        struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.astype(np.uint8).tobytes()
    )


def _fixture():
    rng = np.random.default_rng(0)
    raw = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (N_TRAIN, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, N_TRAIN),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (N_TEST, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, N_TEST),
    }
    files = {f"{name}.gz": gzip.compress(_idx(a)) for name, a in raw.items()}
    return raw, files


RAW, FILES = _fixture()


class _Server:
    """Serves ``routes[path] = bytes``; ``/cut/...`` promises more bytes than it sends."""

    def __init__(self):
        self.routes, self.requests = {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                cut = self.path.startswith("/cut/")
                self.send_header("Content-Length", str(len(body) * (2 if cut else 1)))
                self.end_headers()
                self.wfile.write(body)
                if cut:
                    self.wfile.flush()
                    self.close_connection = True

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def fake_mnist(monkeypatch, server):
    """The 'mnist' set pointed at the local server, with the fixture files' checksums."""
    spec = {
        "mirrors": [f"{server.url}/a/", f"{server.url}/b/"],
        "files": {name: "sha256:" + hashlib.sha256(b).hexdigest() for name, b in FILES.items()},
    }
    monkeypatch.setitem(datasets.IDX_SETS, "mnist", spec)
    return spec


def _serve(server, prefix, files=FILES):
    for name, body in files.items():
        server.routes[f"/{prefix}/{name}"] = body


def _check_arrays(result):
    (X_tr, y_tr), (X_te, y_te) = result
    assert X_tr.shape == (N_TRAIN, 784) and X_te.shape == (N_TEST, 784)
    assert X_tr.dtype == np.float32 and y_tr.dtype == np.int64
    np.testing.assert_allclose(
        X_tr, RAW["train-images-idx3-ubyte"].reshape(N_TRAIN, 784) / 255, rtol=1e-6
    )
    np.testing.assert_array_equal(y_tr, RAW["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(y_te, RAW["t10k-labels-idx1-ubyte"])
    assert 0 <= X_tr.min() and X_tr.max() <= 1


def test_download_parses_and_caches(tmp_path, server, fake_mnist):
    _serve(server, "a")
    _check_arrays(datasets.load_mnist(cache_dir=tmp_path))
    # the four files, and the tag that marks the folder as nnlib's own cache
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(
        [*FILES, "CACHEDIR.TAG"]
    )
    assert len(server.requests) == 4
    # a cache hit makes no request at all
    _check_arrays(datasets.load_mnist(cache_dir=tmp_path))
    assert len(server.requests) == 4


def test_environment_variable_sets_the_cache(tmp_path, server, fake_mnist, monkeypatch):
    _serve(server, "a")
    monkeypatch.setenv("NNLIB_DATA", str(tmp_path / "env"))
    datasets.load_mnist()
    assert (tmp_path / "env" / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_falls_back_to_the_next_mirror(tmp_path, server, fake_mnist):
    _serve(server, "b")  # mirror a answers 404 for everything
    _check_arrays(datasets.load_mnist(cache_dir=tmp_path))
    assert any(r.startswith("/a/") for r in server.requests)


def test_a_wrong_checksum_leaves_no_file_and_says_what_failed(tmp_path, server, fake_mnist):
    bad = dict(FILES, **{"t10k-images-idx3-ubyte.gz": gzip.compress(b"tampered")})
    _serve(server, "a", bad)
    with pytest.raises(datasets.DownloadError) as err:
        datasets.load_mnist(cache_dir=tmp_path)
    message = str(err.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "checksum mismatch" in message
    assert f"{server.url}/a/t10k-images-idx3-ubyte.gz" in message
    assert f"{server.url}/b/t10k-images-idx3-ubyte.gz" in message
    assert "by hand" in message and str(tmp_path / "mnist") in message
    left = [p.name for p in (tmp_path / "mnist").iterdir()]
    assert "t10k-images-idx3-ubyte.gz" not in left
    assert not [n for n in left if n.endswith(".part")], left


def test_an_interrupted_transfer_leaves_no_file(tmp_path, server, fake_mnist):
    fake_mnist["mirrors"] = [f"{server.url}/cut/"]
    _serve(server, "cut")
    with pytest.raises(datasets.DownloadError, match="interrupted"):
        datasets.load_mnist(cache_dir=tmp_path)
    assert [p.name for p in (tmp_path / "mnist").iterdir()] == ["CACHEDIR.TAG"]


def test_a_corrupt_cached_file_is_fetched_again(tmp_path, server, fake_mnist):
    _serve(server, "a")
    datasets.load_mnist(cache_dir=tmp_path)
    (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    _check_arrays(datasets.load_mnist(cache_dir=tmp_path))
    assert server.requests.count("/a/train-labels-idx1-ubyte.gz") == 2


def test_offline_path_reads_gzipped_and_plain_files_without_network(tmp_path, server, fake_mnist):
    for name, body in FILES.items():
        if "labels" in name:
            (tmp_path / name.removesuffix(".gz")).write_bytes(gzip.decompress(body))
        else:
            (tmp_path / name).write_bytes(body)
    _check_arrays(datasets.load_mnist(path=tmp_path))
    assert server.requests == []


def test_offline_path_with_a_missing_file_explains_how_to_get_it(tmp_path, fake_mnist):
    with pytest.raises(FileNotFoundError, match=r"(?s)train-images-idx3-ubyte.gz.*by hand"):
        datasets.load_mnist(path=tmp_path)


def test_malformed_idx_files_give_clear_errors(tmp_path):
    bad = tmp_path / "x-idx3-ubyte"
    bad.write_bytes(b"\x12\x34\x56\x78" + bytes(20))
    with pytest.raises(ValueError, match="not an IDX file"):
        datasets.read_idx(bad)
    short = tmp_path / "short-idx1-ubyte"
    short.write_bytes(_idx(np.arange(10))[:-3])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        datasets.read_idx(short)
    np.testing.assert_array_equal(
        datasets.read_idx(_write(tmp_path / "ok.gz", gzip.compress(_idx(np.arange(7))))),
        np.arange(7),
    )


def _write(path, data):
    path.write_bytes(data)
    return path


def test_a_header_promising_more_than_max_bytes_is_refused_before_reading(tmp_path):
    # a gzip of a header that claims 10^6 images of 28x28 (784 MB) over a few bytes
    header = struct.pack(">BBBBIII", 0, 0, 0x08, 3, 10**6, 28, 28)
    bomb = _write(tmp_path / "train-images-idx3-ubyte.gz", gzip.compress(header + bytes(64)))
    with pytest.raises(ValueError, match=r"784000000 bytes of data\), more than the 100 bytes"):
        datasets.read_idx(bomb, max_bytes=100)
    with pytest.raises(ValueError, match="more than the 188160000 bytes"):
        datasets.read_idx(bomb, max_bytes=datasets.MNIST_MAX_BYTES)
    with pytest.raises(ValueError, match="more than the 188160000 bytes"):  # what load_* read
        datasets._mnist_array("mnist", bomb.name, bomb)
    with pytest.raises(ValueError, match="truncated or corrupt"):  # no limit: read, then refused
        datasets.read_idx(bomb)
    small = _write(tmp_path / "ok", _idx(np.arange(7)))
    np.testing.assert_array_equal(datasets.read_idx(small, max_bytes=7), np.arange(7))
    with pytest.raises(ValueError, match="more than the 6 bytes"):
        datasets.read_idx(small, max_bytes=6)


def test_fashion_mnist_has_its_own_cache_folder_and_mirrors():
    spec = datasets.IDX_SETS["fashion_mnist"]
    assert set(spec["files"]) == set(datasets.IDX_SETS["mnist"]["files"])
    assert spec["mirrors"] and spec["files"] != datasets.IDX_SETS["mnist"]["files"]


@pytest.mark.parametrize("name", sorted(datasets.IDX_SETS))
def test_published_files_are_pinned_by_sha256(name):
    # every real file is pinned by a full SHA-256 digest, and no two files share one
    digests = list(datasets.IDX_SETS[name]["files"].values())
    for d in digests:
        algorithm, _, hexdigest = d.partition(":")
        assert algorithm == "sha256"
        assert len(hexdigest) == 64 and int(hexdigest, 16) >= 0
    assert len(set(digests)) == len(digests)


# ------------------------------------------------- files nnlib did not write: never changed
# Another copy of MNIST: the same IDX contents gzipped again by the user (another
# compression level, no timestamp), so valid files whose SHA-256 is not the published one.
MINE = {
    name: gzip.compress(gzip.decompress(b), compresslevel=1, mtime=0) for name, b in FILES.items()
}
MISMATCH = (
    r"its SHA-256 is [0-9a-f]{64}, the published file's is [0-9a-f]{64}: "
    r"it may be another copy of MNIST"
)


def _place(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (folder / name).write_bytes(body)
    return folder


def _snapshot(folder):
    """Every file in ``folder``: its bytes and its modification time in ns."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_path_reads_another_copy_of_mnist_with_a_warning_and_keeps_it(tmp_path, server, fake_mnist):
    folder = _place(tmp_path / "mine", MINE)
    before = _snapshot(folder)
    with pytest.warns(datasets.ChecksumWarning, match=MISMATCH) as caught:
        _check_arrays(datasets.load_mnist(path=folder))
    assert len(caught) == 4 and all(str(folder) in str(w.message) for w in caught)
    assert _snapshot(folder) == before
    assert server.requests == []


@pytest.mark.parametrize("how", ["NNLIB_DATA", "cache_dir"])
def test_a_users_own_folder_is_read_never_changed(tmp_path, server, fake_mnist, monkeypatch, how):
    # The user points nnlib at their folder, which already holds their MNIST: nnlib did not
    # create <folder>/mnist, so it is the user's, not nnlib's cache.
    _serve(server, "a")
    home = tmp_path / "datasets"
    folder = _place(home / "mnist", MINE)
    before = _snapshot(folder)
    with pytest.warns(datasets.ChecksumWarning, match=MISMATCH):
        if how == "NNLIB_DATA":
            monkeypatch.setenv("NNLIB_DATA", str(home))
            result = datasets.load_mnist()
        else:
            result = datasets.load_mnist(cache_dir=home)
    _check_arrays(result)
    assert _snapshot(folder) == before
    assert server.requests == []


def test_a_file_missing_from_a_users_folder_is_downloaded_beside_theirs(
    tmp_path, server, fake_mnist
):
    _serve(server, "a")
    missing = "t10k-labels-idx1-ubyte.gz"
    folder = _place(tmp_path / "mnist", {n: b for n, b in MINE.items() if n != missing})
    before = _snapshot(folder)
    with pytest.warns(datasets.ChecksumWarning, match=MISMATCH):
        _check_arrays(datasets.load_mnist(cache_dir=tmp_path))
    after = _snapshot(folder)
    assert after.pop(missing)[0] == FILES[missing]
    assert after == before
    assert server.requests == [f"/a/{missing}"]


def _bad_labels():
    return gzip.compress(_idx(np.array([3, 10, 1, 2, 0])), mtime=0)


@pytest.mark.parametrize(
    ("filename", "body", "text"),
    [
        (
            "train-labels-idx1-ubyte.gz",
            _bad_labels(),
            r"labels must lie in 0\.\.9.*got values from 0 to 10",
        ),
        (
            "train-images-idx3-ubyte.gz",
            gzip.compress(b"\x12\x34\x56\x78" + bytes(20)),
            "not an IDX file",
        ),
        (
            "train-images-idx3-ubyte.gz",
            gzip.compress(_idx(np.zeros((5, 28, 28)))[:-7]),
            "truncated or corrupt",
        ),
        (
            "train-images-idx3-ubyte.gz",
            gzip.compress(_idx(np.zeros((5, 8, 8)))),
            r"images of 28x28.*\(5, 8, 8\)",
        ),
        ("t10k-labels-idx1-ubyte.gz", gzip.compress(_idx(np.zeros((3, 2)))), r"1-D.*\(3, 2\)"),
    ],
    ids=["label 10", "bad magic", "short data", "8x8 images", "2-D labels"],
)
def test_another_file_that_is_not_valid_mnist_is_refused_and_kept(
    tmp_path, fake_mnist, filename, body, text
):
    folder = _place(tmp_path / "mine", dict(MINE, **{filename: body}))
    before = _snapshot(folder)
    with (
        pytest.warns(datasets.ChecksumWarning, match=MISMATCH),
        pytest.raises(ValueError, match=text) as err,
    ):
        datasets.load_mnist(path=folder)
    assert str(folder / filename) in str(err.value) and "published file" in str(err.value)
    assert _snapshot(folder) == before


def _corrupt_deflate(body: bytes) -> bytes:
    """``body`` with one byte of its deflate stream flipped so that zlib itself rejects it
    (not only the CRC check at the end)."""
    for i in range(12, len(body) - 8):
        bad = body[:i] + bytes([body[i] ^ 0xFF]) + body[i + 1 :]
        try:
            gzip.decompress(bad)
        except zlib.error:
            return bad
        except (OSError, EOFError):
            continue
    raise AssertionError("no single-byte flip makes zlib fail")


@pytest.mark.parametrize("damage", ["deflate", "truncated", "bad header", "cut in IDX header"])
def test_a_damaged_gzip_file_gives_a_clear_error_and_is_kept(tmp_path, fake_mnist, damage):
    name = "train-images-idx3-ubyte.gz"
    body = {
        "deflate": _corrupt_deflate(FILES[name]),
        "truncated": FILES[name][: len(FILES[name]) // 2],
        "bad header": b"\x1f\x8b\x07" + FILES[name][3:],  # compression method 7 does not exist
        "cut in IDX header": gzip.compress(_idx(np.zeros((5, 28, 28)))[:9]),
    }[damage]
    folder = _place(tmp_path / "mine", dict(MINE, **{name: body}))
    before = _snapshot(folder)
    with pytest.raises(ValueError) as err, pytest.warns(datasets.ChecksumWarning):
        datasets.load_mnist(path=folder)
    message = str(err.value)
    assert str(folder / name) in message
    assert "corrupt" in message or "truncated" in message
    assert "copy" in message  # what to do: get a fresh copy
    assert _snapshot(folder) == before
    with pytest.raises(ValueError, match=r"corrupt|truncated"):
        datasets.read_idx(folder / name)


def test_a_plain_idx_file_cut_inside_its_header_is_a_clear_error(tmp_path):
    cut = _write(tmp_path / "x-idx3-ubyte", _idx(np.zeros((2, 3, 4)))[:9])
    with pytest.raises(ValueError, match=r"x-idx3-ubyte.*truncated"):
        datasets.read_idx(cut)


def test_nnlib_tags_the_cache_folder_it_creates(tmp_path, server, fake_mnist):
    _serve(server, "a")
    datasets.load_mnist(cache_dir=tmp_path)
    tag = (tmp_path / "mnist" / "CACHEDIR.TAG").read_text()
    assert tag.startswith("Signature: 8a477f597d28d172789f06886806bc55") and "nnlib" in tag


def test_the_own_cache_replaces_a_corrupt_copy_atomically(
    tmp_path, server, fake_mnist, monkeypatch
):
    _serve(server, "a")
    datasets.load_mnist(cache_dir=tmp_path)
    target = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    target.write_bytes(b"garbage")
    replaced, real_replace = [], datasets.os.replace

    def spy(src, dst):
        # the corrupt copy is still in place until the verified download replaces it
        replaced.append((Path(src).parent, Path(dst), Path(dst).read_bytes()))
        real_replace(src, dst)

    monkeypatch.setattr(datasets.os, "replace", spy)
    _check_arrays(datasets.load_mnist(cache_dir=tmp_path))
    assert replaced == [(target.parent, target, b"garbage")]
    assert target.read_bytes() == FILES[target.name]


def test_the_own_cache_keeps_a_corrupt_copy_when_no_mirror_delivers(tmp_path, server, fake_mnist):
    _serve(server, "a")
    datasets.load_mnist(cache_dir=tmp_path)
    target = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    target.write_bytes(b"garbage")
    server.routes.clear()
    with pytest.raises(datasets.DownloadError, match=r"train-labels-idx1-ubyte\.gz"):
        datasets.load_mnist(cache_dir=tmp_path)
    assert target.read_bytes() == b"garbage"


def test_the_own_cache_offline_reads_another_copy_with_a_warning(tmp_path, server, fake_mnist):
    _serve(server, "a")
    datasets.load_mnist(cache_dir=tmp_path)
    target = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    target.write_bytes(MINE[target.name])
    before = _snapshot(target.parent)
    with pytest.warns(datasets.ChecksumWarning, match=MISMATCH):
        _check_arrays(datasets.load_mnist(cache_dir=tmp_path, download=False))
    assert _snapshot(target.parent) == before
    assert len(server.requests) == 4


def test_a_file_another_program_writes_during_the_download_is_kept(
    tmp_path, server, fake_mnist, monkeypatch
):
    # In a user's folder the download is moved into place only if the name is still free.
    _serve(server, "a")
    missing = "t10k-labels-idx1-ubyte.gz"
    folder = _place(tmp_path / "mnist", {n: b for n, b in MINE.items() if n != missing})
    real_link = datasets.os.link

    def link_after_another_program(src, dst):
        Path(dst).write_bytes(MINE[missing])  # another program got there first
        real_link(src, dst)

    monkeypatch.setattr(datasets.os, "link", link_after_another_program)
    with (
        pytest.warns(datasets.ChecksumWarning),
        pytest.raises(datasets.DownloadError, match="appeared while downloading"),
    ):
        datasets.load_mnist(cache_dir=tmp_path)
    assert (folder / missing).read_bytes() == MINE[missing]
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]


def test_a_users_folder_without_hard_links_still_gets_the_missing_file(
    tmp_path, server, fake_mnist, monkeypatch
):
    _serve(server, "a")
    missing = "train-images-idx3-ubyte.gz"
    folder = _place(tmp_path / "mnist", {n: b for n, b in MINE.items() if n != missing})
    before = _snapshot(folder)

    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")  # what FAT file systems say

    monkeypatch.setattr(datasets.os, "link", no_links)
    with pytest.warns(datasets.ChecksumWarning):
        _check_arrays(datasets.load_mnist(cache_dir=tmp_path))
    after = _snapshot(folder)
    assert after.pop(missing)[0] == FILES[missing] and after == before
