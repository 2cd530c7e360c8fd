"""MNIST-style loaders, against fixture IDX files served from 127.0.0.1 (no test touches
the internet): download and parse, checksum failure, mirror fallback, cache hit,
interrupted transfer, gzipped and plain files, the offline path, malformed files."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import struct
import threading

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
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(FILES)
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
    assert list((tmp_path / "mnist").iterdir()) == []


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
