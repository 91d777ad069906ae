"""MNIST: 70,000 handwritten digits, 28x28 grey pixels, labels 0-9 (LeCun, Cortes and Burges).

:func:`load_mnist` finds the four official IDX files (gzipped or not), checks each against its
published SHA-256 and returns numpy arrays. Where it looks, in order:

1. the ``path`` argument;
2. the directory named by the environment variable ``TINYGRAD_NN_DATA`` (or its ``mnist/``);
3. the user cache, ``$XDG_CACHE_HOME/tinygrad_nn/mnist`` (default ``~/.cache/tinygrad_nn/mnist``);
4. failing those, and if ``download=True``, the mirrors in :data:`MIRRORS`, tried in turn. A
   download is verified before it is written, atomically, into the cache.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np

from tinygrad_nn.data.idx import IDXFormatError, decode_idx, read_raw_bytes

__all__ = [
    "ENV_VAR",
    "MIRRORS",
    "SHA256",
    "ChecksumError",
    "MNISTNotFoundError",
    "cache_dir",
    "load_mnist",
]

#: Base URLs holding ``<name>.gz`` for the four files, tried in this order.
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

#: SHA-256 of each file's uncompressed bytes, as published with the raw MNIST files.
SHA256: Mapping[str, str] = MappingProxyType(
    {
        TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    }
)

ENV_VAR = "TINYGRAD_NN_DATA"
NIELSEN_VALIDATION = 10_000
_CHUNK = 1 << 16

Arrays = tuple[np.ndarray, np.ndarray]


class ChecksumError(ValueError):
    """A file's uncompressed bytes do not have the published SHA-256 digest."""

    def __init__(self, source: str, file: str, expected: str, actual: str, note: str = "") -> None:
        self.source, self.file, self.expected, self.actual = source, file, expected, actual
        super().__init__(
            f"{source}: SHA-256 mismatch for {file}: expected {expected}, got {actual}. "
            f"The data is corrupt or not the official MNIST file.{note}"
        )


class MNISTNotFoundError(FileNotFoundError):
    """The MNIST files are in none of the places looked at, and could not be downloaded."""


def cache_dir() -> Path:
    """The user cache for MNIST: ``$XDG_CACHE_HOME/tinygrad_nn/mnist``, else under ``~/.cache``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "tinygrad_nn" / "mnist"


def _search_dirs(path: str | os.PathLike | None) -> list[tuple[Path, str]]:
    """(directory, why it is looked at) in search order, without repeats."""
    dirs: list[tuple[Path, str]] = []
    if path is not None:
        dirs += [(Path(path), "path argument"), (Path(path) / "mnist", "path argument")]
    env = os.environ.get(ENV_VAR, "")
    if env:
        dirs += [(Path(env), f"${ENV_VAR}"), (Path(env) / "mnist", f"${ENV_VAR}")]
    dirs.append((cache_dir(), "user cache"))
    unique: dict[Path, str] = {}
    for directory, why in dirs:
        unique.setdefault(directory, why)
    return list(unique.items())


def _find(name: str, dirs: list[tuple[Path, str]]) -> Path | None:
    for directory, _ in dirs:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _verify(raw: bytes, source: str, name: str, expected: str, note: str = "") -> None:
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected.lower():
        raise ChecksumError(source, name, expected.lower(), actual, note)


def _get(url: str, name: str, timeout: float, progress: bool) -> bytes:
    """The whole body at ``url``, with a progress bar on stderr."""
    import urllib.request  # here, not at the top: only downloads pay its ~15 ms import

    from tqdm import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "tinygrad_nn"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        chunks: list[bytes] = []
        bar = tqdm(
            total=total,
            desc=name,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            disable=not progress,
            leave=False,
        )
        with bar:
            while chunk := response.read(_CHUNK):
                chunks.append(chunk)
                bar.update(len(chunk))
    data = b"".join(chunks)
    if total is not None and len(data) != total:
        raise OSError(f"incomplete download: got {len(data)} of {total} bytes")
    return data


def _write_atomic(directory: Path, filename: str, data: bytes) -> Path:
    """Write ``data`` to ``directory/filename`` so that it is either complete or absent."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{filename}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / filename)
    except BaseException:
        os.unlink(tmp)
        raise
    return directory / filename


def _download(
    name: str,
    mirrors: list[str],
    expected: str,
    target: Path,
    timeout: float,
    progress: bool,
    failures: list[str],
) -> Path | None:
    """Fetch ``name`` from the first mirror that serves it intact, into ``target``.

    Each failure is appended to ``failures``. A mirror that succeeds moves to the front of
    ``mirrors`` so that the next file is asked of it first. Returns None if every mirror failed.
    """
    from http.client import HTTPException

    bad: ChecksumError | None = None
    for mirror in list(mirrors):
        url = f"{mirror.rstrip('/')}/{name}.gz"
        try:
            data = _get(url, name, timeout, progress)
            raw = read_raw_bytes(data, name=url)
            _verify(raw, url, name, expected, " The download was discarded.")
        except ChecksumError as exc:
            bad = bad or exc
            failures.append(f"{url}: SHA-256 mismatch (expected {exc.expected}, got {exc.actual})")
            continue
        except (OSError, HTTPException, IDXFormatError, ValueError) as exc:
            failures.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        mirrors.remove(mirror)
        mirrors.insert(0, mirror)
        filename = f"{name}.gz" if data[:2] == b"\x1f\x8b" else name
        return _write_atomic(target, filename, data)
    if bad is not None:
        note = " It was not written to the cache. All attempts:\n  " + "\n  ".join(failures)
        raise ChecksumError(bad.source, name, bad.expected, bad.actual, note)
    return None


def _not_found(missing: list[str], dirs: list[tuple[Path, str]], why: list[str]) -> Exception:
    looked = "\n".join(f"  {d}  ({reason})" for d, reason in dirs)
    return MNISTNotFoundError(
        f"MNIST files not found: {', '.join(m + '[.gz]' for m in missing)}.\n"
        f"Looked in:\n{looked}\n" + "\n".join(why) + "\n"
        f"Put the four files {', '.join(FILES)} (gzipped or not) in {cache_dir()}, "
        f"or in a directory named by ${ENV_VAR}, or pass it as load_mnist(path)."
    )


def _locate(
    path: str | os.PathLike | None,
    download: bool,
    mirrors: Sequence[str] | None,
    checksums: Mapping[str, str],
    timeout: float,
    progress: bool,
) -> dict[str, Path]:
    dirs = _search_dirs(path)
    found = {name: _find(name, dirs) for name in FILES}
    missing = [name for name, where in found.items() if where is None]
    if not missing:
        return found  # type: ignore[return-value]
    if not download:
        raise _not_found(missing, dirs, ["Downloading is off (download=False)."])
    order = [mirrors] if isinstance(mirrors, str) else list(MIRRORS if mirrors is None else mirrors)
    failures: list[str] = []
    for name in missing:
        where = _download(name, order, checksums[name], cache_dir(), timeout, progress, failures)
        if where is None:
            tried = "\n  ".join(failures) if failures else "(no mirrors given)"
            why = f"Downloading {name}.gz failed on every mirror. Attempts:\n  {tried}"
            raise _not_found(missing, dirs, [why])
        found[name] = where
    return found  # type: ignore[return-value]


def _read(path: Path, name: str, expected: str) -> np.ndarray:
    raw = read_raw_bytes(path)
    _verify(raw, str(path), name, expected, " Delete it and load again to fetch a fresh copy.")
    return decode_idx(raw, str(path))


def load_mnist(
    path: str | os.PathLike | None = None,
    *,
    flatten: bool = True,
    normalize: bool = True,
    nielsen_split: bool = False,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    checksums: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    progress: bool = True,
) -> tuple[Arrays, Arrays] | tuple[Arrays, Arrays, Arrays]:
    """Load MNIST as ``(x_train, y_train), (x_test, y_test)``.

    Images: float32 in [0, 1] (pixel / 255), shape (N, 784) or, with ``flatten=False``,
    (N, 28, 28); ``normalize=False`` keeps the raw uint8 pixels 0-255. Labels: int64 in 0-9.
    N is 60,000 for training and 10,000 for test.

    ``nielsen_split=True`` returns ``(train, validation, test)`` instead, where validation is the
    last 10,000 training images (views, not copies) and train the first 50,000, the split used
    in Michael Nielsen's "Neural Networks and Deep Learning".

    The search order is in the module docstring. ``mirrors`` (default :data:`MIRRORS`) are base
    URLs; each is asked for ``<name>.gz`` with a ``timeout`` in seconds. ``checksums`` maps the
    four file names to SHA-256 hex digests of their uncompressed bytes (default :data:`SHA256`).

    Raises :class:`ChecksumError` for a file (or download) with the wrong digest,
    :class:`MNISTNotFoundError` if the files are neither found nor downloadable (the message lists
    where it looked and why each mirror failed), and ``ValueError`` (e.g.
    :class:`~tinygrad_nn.data.idx.IDXFormatError`) for files of the wrong format or sizes.
    """
    checksums = SHA256 if checksums is None else checksums
    paths = _locate(path, download, mirrors, checksums, timeout, progress)
    arrays = {name: _read(paths[name], name, checksums[name]) for name in FILES}

    def split(images_name: str, labels_name: str) -> Arrays:
        images, labels = arrays[images_name], arrays[labels_name]
        if images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(
                f"{paths[images_name]}: expected 3-D uint8 images, got {images.ndim}-D "
                f"{images.dtype} of shape {images.shape}"
            )
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise ValueError(
                f"{paths[labels_name]}: expected 1-D uint8 labels, got {labels.ndim}-D "
                f"{labels.dtype} of shape {labels.shape}"
            )
        if len(images) != len(labels):
            raise ValueError(
                f"{images_name} holds {len(images)} images but {labels_name} holds "
                f"{len(labels)} labels ({paths[images_name]}, {paths[labels_name]})"
            )
        if flatten:
            images = images.reshape(len(images), -1)
        if normalize:
            images = images.astype(np.float32)
            images /= np.float32(255)
        return images, labels.astype(np.int64)

    train = split(TRAIN_IMAGES, TRAIN_LABELS)
    test = split(TEST_IMAGES, TEST_LABELS)
    if not nielsen_split:
        return train, test
    n = len(train[0])
    if n <= NIELSEN_VALIDATION:
        raise ValueError(
            f"nielsen_split needs more than {NIELSEN_VALIDATION} training images, got {n}"
        )
    cut = n - NIELSEN_VALIDATION
    x, y = train
    return (x[:cut], y[:cut]), (x[cut:], y[cut:]), test
