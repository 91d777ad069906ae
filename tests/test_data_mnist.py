"""The MNIST loader: the real files in shared/, the search order, checksums, and downloads.

Downloads are tested against a local HTTP server on 127.0.0.1 serving small fake MNIST files;
an autouse fixture points HOME, XDG_CACHE_HOME and MIRRORS away from the user's machine and the
network, so no test here can reach the internet or touch the real cache.
"""

import gzip
import hashlib
import http.server
import socket
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from tinygrad_nn.data import mnist
from tinygrad_nn.data.idx import IDXFormatError, encode_idx
from tinygrad_nn.data.mnist import (
    ENV_VAR,
    FILES,
    SHA256,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    ChecksumError,
    MNISTNotFoundError,
    cache_dir,
    load_mnist,
)

DEFAULT_MIRRORS = mnist.MIRRORS
SHARED = Path(__file__).resolve().parents[2] / "shared/data/mnist"
needs_shared = pytest.mark.skipif(
    not all((SHARED / f"{name}.gz").is_file() for name in FILES),
    reason=f"the shared MNIST files are not at {SHARED}",
)


def _fake_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        TRAIN_IMAGES: rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        TRAIN_LABELS: rng.integers(0, 10, 30, dtype=np.uint8),
        mnist.TEST_IMAGES: rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        TEST_LABELS: rng.integers(0, 10, 10, dtype=np.uint8),
    }


FAKE = _fake_arrays()
FAKE_RAW = {name: encode_idx(array) for name, array in FAKE.items()}
FAKE_SUMS = {name: hashlib.sha256(raw).hexdigest() for name, raw in FAKE_RAW.items()}


def corrupted(raw: bytes) -> bytes:
    data = bytearray(raw)
    data[-1] ^= 0xFF
    return bytes(data)


def write_fake(directory: Path, compress: bool = True, raw: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in (raw or FAKE_RAW).items():
        if compress:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return directory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real cache, no environment variable, and a default mirror where nothing listens."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(mnist, "MIRRORS", (f"http://127.0.0.1:{free_port()}/",))


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_request(self, code="-", size="-"):
        self.requests.append(self.path)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A local HTTP server; yields (base URL, list of requested paths)."""
    root = tmp_path_factory.mktemp("mirror")
    write_fake(root / "good")
    bad_images = dict(FAKE_RAW, **{TRAIN_IMAGES: corrupted(FAKE_RAW[TRAIN_IMAGES])})
    write_fake(root / "bad-images", raw=bad_images)
    bad_labels = dict(FAKE_RAW, **{TRAIN_LABELS: corrupted(FAKE_RAW[TRAIN_LABELS])})
    write_fake(root / "bad-labels", raw=bad_labels)
    (root / "truncated").mkdir()
    for name, data in FAKE_RAW.items():
        (root / "truncated" / f"{name}.gz").write_bytes(gzip.compress(data)[:-10])
    requests: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def assert_fake(train, test):
    (x, y), (xt, yt) = train, test
    assert x.shape == (30, 784) and xt.shape == (10, 784)
    np.testing.assert_array_equal(x, FAKE[TRAIN_IMAGES].reshape(30, 784) / np.float32(255))
    np.testing.assert_array_equal(y, FAKE[TRAIN_LABELS])
    np.testing.assert_array_equal(yt, FAKE[TEST_LABELS])


def cache_contents() -> list[str]:
    directory = cache_dir()
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# ---- the real MNIST files -------------------------------------------------------------------


@pytest.fixture(scope="module")
def real():
    if not SHARED.is_dir():
        pytest.skip(f"the shared MNIST files are not at {SHARED}")
    return load_mnist(SHARED, download=False, progress=False)


@needs_shared
def test_real_shapes_and_dtypes(real):
    (x, y), (xt, yt) = real
    assert x.shape == (60000, 784) and xt.shape == (10000, 784)
    assert y.shape == (60000,) and yt.shape == (10000,)
    assert x.dtype == xt.dtype == np.float32
    assert y.dtype == yt.dtype == np.int64
    assert 0 <= x.min() and x.max() <= 1 and x.max() == 1


@needs_shared
def test_real_labels_and_statistics(real):
    (x, y), (_, yt) = real
    assert y[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]
    assert yt[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert float(x.mean(dtype=np.float64)) == pytest.approx(0.13066, abs=5e-6)
    assert float(x.std(dtype=np.float64)) == pytest.approx(0.30811, abs=5e-6)


@needs_shared
def test_real_nielsen_split(real):
    train, validation, test = load_mnist(SHARED, nielsen_split=True, download=False)
    assert train[0].shape == (50000, 784) and train[1].shape == (50000,)
    assert validation[0].shape == (10000, 784) and validation[1].shape == (10000,)
    assert test[0].shape == (10000, 784)
    np.testing.assert_array_equal(validation[1], real[0][1][50000:])
    np.testing.assert_array_equal(train[0][:100], real[0][0][:100])


@needs_shared
def test_real_one_flipped_byte_is_refused(tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in FILES:
        if name != TEST_LABELS:
            (copy / f"{name}.gz").symlink_to(SHARED / f"{name}.gz")
    raw = bytearray(gzip.decompress((SHARED / f"{TEST_LABELS}.gz").read_bytes()))
    raw[5000] ^= 0x01
    (copy / TEST_LABELS).write_bytes(bytes(raw))
    with pytest.raises(ChecksumError) as info:
        load_mnist(copy, download=False)
    message = str(info.value)
    assert str(copy / TEST_LABELS) in message
    assert SHA256[TEST_LABELS] in message
    assert hashlib.sha256(bytes(raw)).hexdigest() in message
    assert info.value.file == TEST_LABELS


@needs_shared
def test_real_through_env_var_subfolder(tmp_path, monkeypatch):
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "mnist").symlink_to(SHARED)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "datasets"))
    (x, y), (xt, yt) = load_mnist(download=False, flatten=False, normalize=False)
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert y[:5].tolist() == [5, 0, 4, 1, 9]


# ---- where the files are looked for -----------------------------------------------------------


def test_path_argument_raw_or_gzipped(tmp_path):
    assert_fake(*load_mnist(write_fake(tmp_path / "gz"), checksums=FAKE_SUMS))
    assert_fake(*load_mnist(write_fake(tmp_path / "raw", compress=False), checksums=FAKE_SUMS))


def test_flatten_and_normalize_options(tmp_path):
    directory = write_fake(tmp_path / "d")
    (x, y), (xt, _) = load_mnist(directory, flatten=False, normalize=False, checksums=FAKE_SUMS)
    assert x.shape == (30, 28, 28) and xt.shape == (10, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, FAKE[TRAIN_IMAGES])
    assert y.dtype == np.int64


def test_env_var_directory_and_subfolder(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(write_fake(tmp_path / "flat")))
    assert_fake(*load_mnist(checksums=FAKE_SUMS, download=False))
    write_fake(tmp_path / "nested" / "mnist")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nested"))
    assert_fake(*load_mnist(checksums=FAKE_SUMS, download=False))


def test_xdg_cache(tmp_path):
    assert cache_dir() == tmp_path / "xdg" / "tinygrad_nn" / "mnist"
    write_fake(cache_dir())
    assert_fake(*load_mnist(checksums=FAKE_SUMS, download=False))


def test_home_cache_without_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "tinygrad_nn" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dirs/are/ignored")
    assert cache_dir() == tmp_path / "home" / ".cache" / "tinygrad_nn" / "mnist"
    write_fake(cache_dir())
    assert_fake(*load_mnist(checksums=FAKE_SUMS, download=False))


def test_path_argument_comes_first(tmp_path, monkeypatch):
    other = {name: encode_idx(np.zeros_like(array)) for name, array in FAKE.items()}
    other_sums = {name: hashlib.sha256(raw).hexdigest() for name, raw in other.items()}
    write_fake(cache_dir(), raw=other)
    monkeypatch.setenv(ENV_VAR, str(write_fake(tmp_path / "env", raw=other)))
    assert_fake(*load_mnist(write_fake(tmp_path / "arg"), checksums=FAKE_SUMS))
    (x, _), _ = load_mnist(checksums=other_sums)  # the env var before the cache: both zeros
    assert not x.any()


def test_not_found_without_download_lists_places(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    with pytest.raises(MNISTNotFoundError) as info:
        load_mnist(tmp_path / "arg", download=False)
    message = str(info.value)
    for place in (tmp_path / "arg", tmp_path / "env", tmp_path / "env" / "mnist", cache_dir()):
        assert str(place) in message
    assert "download=False" in message and ENV_VAR in message
    assert all(name in message for name in FILES)
    assert isinstance(info.value, FileNotFoundError)


def test_images_and_labels_must_agree(tmp_path):
    raw = dict(FAKE_RAW, **{TRAIN_LABELS: encode_idx(FAKE[TRAIN_LABELS][:29])})
    sums = {name: hashlib.sha256(data).hexdigest() for name, data in raw.items()}
    with pytest.raises(ValueError, match="holds 30 images but train-labels-idx1-ubyte holds 29"):
        load_mnist(write_fake(tmp_path / "d", raw=raw), checksums=sums)


def test_malformed_file_is_refused(tmp_path):
    directory = write_fake(tmp_path / "d")
    (directory / f"{TEST_LABELS}.gz").write_bytes(gzip.compress(b"not an idx file")[:-4])
    with pytest.raises(IDXFormatError, match="truncated gzip stream"):
        load_mnist(directory, checksums=FAKE_SUMS)


def test_nielsen_split_needs_enough_images(tmp_path):
    with pytest.raises(ValueError, match="more than 10000"):
        load_mnist(write_fake(tmp_path / "d"), checksums=FAKE_SUMS, nielsen_split=True)


# ---- downloads, from a local server ------------------------------------------------------------


def test_download_writes_the_cache_then_loads_from_it(server, capsys):
    url, requests = server
    before = len(requests)
    assert_fake(*load_mnist(mirrors=[f"{url}/good/"], checksums=FAKE_SUMS, progress=True))
    assert cache_contents() == sorted(f"{name}.gz" for name in FILES)
    assert len(requests) == before + 4
    assert capsys.readouterr().out == ""
    assert_fake(*load_mnist(checksums=FAKE_SUMS, download=False))
    assert_fake(*load_mnist(mirrors=[f"{url}/good/"], checksums=FAKE_SUMS))
    assert len(requests) == before + 4  # the cache was used, the server not asked again


def test_only_missing_files_are_downloaded(server, tmp_path):
    url, requests = server
    directory = write_fake(tmp_path / "d")
    (directory / f"{TEST_LABELS}.gz").unlink()
    before = len(requests)
    assert_fake(*load_mnist(directory, mirrors=[f"{url}/good"], checksums=FAKE_SUMS))
    assert requests[before:] == [f"/good/{TEST_LABELS}.gz"]
    assert cache_contents() == [f"{TEST_LABELS}.gz"]


def test_corrupt_download_leaves_nothing_in_the_cache(server):
    url, _ = server
    with pytest.raises(ChecksumError) as info:
        load_mnist(mirrors=[f"{url}/bad-images/"], checksums=FAKE_SUMS, progress=False)
    message = str(info.value)
    assert TRAIN_IMAGES in message and f"{url}/bad-images/{TRAIN_IMAGES}.gz" in message
    assert FAKE_SUMS[TRAIN_IMAGES] in message
    assert hashlib.sha256(corrupted(FAKE_RAW[TRAIN_IMAGES])).hexdigest() in message
    assert "not written to the cache" in message
    assert cache_contents() == []
    assert not cache_dir().exists()


def test_corrupt_second_file_keeps_only_verified_files(server):
    url, _ = server
    with pytest.raises(ChecksumError, match=TRAIN_LABELS):
        load_mnist(mirrors=[f"{url}/bad-labels/"], checksums=FAKE_SUMS, progress=False)
    assert cache_contents() == [f"{TRAIN_IMAGES}.gz"]  # verified, complete, no partial files


def test_corrupt_first_mirror_falls_through_to_a_good_one(server):
    url, _ = server
    mirrors = [f"{url}/bad-labels/", f"{url}/good/"]
    assert_fake(*load_mnist(mirrors=mirrors, checksums=FAKE_SUMS, progress=False))
    assert cache_contents() == sorted(f"{name}.gz" for name in FILES)


def test_dead_first_mirror_falls_through(server):
    url, _ = server
    mirrors = [f"http://127.0.0.1:{free_port()}/mnist/", f"{url}/good/"]
    assert_fake(*load_mnist(mirrors=mirrors, checksums=FAKE_SUMS, timeout=5, progress=False))
    assert cache_contents() == sorted(f"{name}.gz" for name in FILES)


def test_404_mirror_falls_through_and_the_good_one_is_asked_first_after(server):
    url, requests = server
    before = len(requests)
    assert_fake(*load_mnist(mirrors=[f"{url}/nothing/", f"{url}/good/"], checksums=FAKE_SUMS))
    assert requests[before:] == [f"/nothing/{TRAIN_IMAGES}.gz", f"/good/{TRAIN_IMAGES}.gz"] + [
        f"/good/{name}.gz" for name in FILES[1:]
    ]


def test_all_mirrors_failing_gives_the_offline_error(server, tmp_path):
    url, _ = server
    dead = f"http://127.0.0.1:{free_port()}/"
    mirrors = [dead, f"{url}/nothing/", f"{url}/truncated/"]
    with pytest.raises(MNISTNotFoundError) as info:
        load_mnist(tmp_path / "arg", mirrors=mirrors, checksums=FAKE_SUMS, progress=False)
    message = str(info.value)
    assert f"{dead}{TRAIN_IMAGES}.gz" in message and "URLError" in message
    assert f"{url}/nothing/{TRAIN_IMAGES}.gz" in message and "404" in message
    assert f"{url}/truncated/{TRAIN_IMAGES}.gz" in message and "truncated gzip" in message
    assert str(tmp_path / "arg") in message and str(cache_dir()) in message
    assert not cache_dir().exists()


def test_default_mirrors_are_used_and_injectable(monkeypatch, server):
    url, _ = server
    monkeypatch.setattr(mnist, "MIRRORS", (f"{url}/good/",))
    assert_fake(*load_mnist(checksums=FAKE_SUMS, progress=False))


def test_no_mirrors_at_all():
    with pytest.raises(MNISTNotFoundError, match="no mirrors"):
        load_mnist(mirrors=[], checksums=FAKE_SUMS)


def test_published_digests_match_shared_sums():
    sums = SHARED / "SHA256SUMS"
    if not sums.is_file():
        pytest.skip(f"no {sums}")
    published = dict(line.split()[::-1] for line in sums.read_text().splitlines() if line)
    assert published == dict(SHA256)


def test_default_mirrors_are_https_base_urls():
    assert len(DEFAULT_MIRRORS) >= 2
    assert all(m.startswith("https://") and m.endswith("/") for m in DEFAULT_MIRRORS)
