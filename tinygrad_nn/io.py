"""Checkpoints: ``save(obj, path)`` / ``load(path)`` in the safetensors format.

A checkpoint is a state dict of a model or an optimizer (or any nesting of dicts, lists and
tuples of arrays, Tensors, numbers, bools, strings and None). The arrays become the file's
tensors, named by their dotted path (``0.weight``, ``state.0.exp_avg``), so any safetensors
reader sees plain tensors; the nesting and the scalar values are kept as JSON in the file's
metadata under the key ``"tinygrad_nn"``.

Saving is atomic: the file is written under a temporary name in the same directory, flushed to
disk, and only then renamed over ``path``, so a crash mid-save leaves the old file whole.
Loading never runs code (there is no pickle anywhere) and refuses anything that is not a
well-formed safetensors file with a :class:`CheckpointError` naming the file and what is wrong.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import stat
import sys
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy

from .tensor import Tensor

__all__ = ["save", "load", "CheckpointError"]

META_KEY = "tinygrad_nn"
FORMAT_VERSION = 1
_MAX_HEADER = 100_000_000  # the safetensors format's own limit
_MAX_DEPTH = 100

# safetensors dtype names <-> numpy (explicitly little-endian, the format's byte order)
_DTYPES = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
}
_SAVABLE_KINDS = "biuf"

_SIGNATURES = [
    (b"PK\x03\x04", "looks like a zip archive (PyTorch's torch.save format, or a .npz)"),
    (b"\x93NUMPY", "looks like a numpy .npy file (load it with np.load)"),
    (b"\x89HDF\r\n\x1a\n", "looks like an HDF5 file (Keras .h5?)"),
    (b"\x1f\x8b", "looks like a gzip-compressed file; decompress it first"),
]


class CheckpointError(ValueError):
    """A file that :func:`load` refuses; ``path`` is the file, ``reason`` what is wrong."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot load checkpoint {path!r}: {reason}")


# ---------------------------------------------------------------------------------------- save
def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` (e.g. ``model.state_dict()`` or ``optimizer.state_dict()``) to ``path`` as
    safetensors, atomically: ``path`` is either left as it was or holds the whole new file.

    Arrays and Tensors are stored as tensors (Tensors come back as numpy arrays); dicts (with
    str or int keys), lists, tuples, None, bools, ints, floats and strings are kept in the
    metadata. Anything else is a TypeError naming where it is.
    """
    arrays: dict[str, np.ndarray] = {}
    root = _encode(obj, [], arrays, set())
    meta = {
        META_KEY: json.dumps(
            {"version": FORMAT_VERSION, "root": root}, separators=(",", ":"), allow_nan=False
        )
    }
    # safetensors.numpy.save_file would do its own temp-and-rename, but without our fsync and
    # under names nobody could recognise after a crash; so we take the bytes and write them.
    _atomic_write(_fspath(path, "save"), lambda: safetensors.numpy.save(arrays, metadata=meta))


def _encode(obj: Any, path: list[str], arrays: dict[str, np.ndarray], active: set[int]) -> Any:
    """The JSON node describing ``obj``; arrays go into ``arrays`` under their dotted path."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int) and not isinstance(obj, np.generic):
        return int(obj)
    if isinstance(obj, float) and not isinstance(obj, np.generic):
        return obj if math.isfinite(obj) else {"float": repr(obj)}
    if isinstance(obj, (np.ndarray, Tensor, np.generic)):
        arr = obj.data if isinstance(obj, Tensor) else np.asarray(obj)
        where = ".".join(path) or "the object"
        if arr.dtype.kind not in _SAVABLE_KINDS or arr.dtype.itemsize > 8:
            raise TypeError(
                f"save: cannot store the array at {where} of dtype {arr.dtype}; "
                "savable dtypes are bool, (u)int8-64 and float16/32/64"
            )
        name = ".".join(path) or "tensor"
        if name in arrays:
            n = 1
            while f"{name}#{n}" in arrays:
                n += 1
            name = f"{name}#{n}"
        arrays[name] = arr.astype(arr.dtype.newbyteorder("<"), order="C", copy=False)
        node: dict[str, Any] = {"array": name}
        if isinstance(obj, np.generic):
            node["scalar"] = True
        return node
    if isinstance(obj, (dict, list, tuple)):
        if id(obj) in active:
            raise ValueError(f"save: {'.'.join(path) or 'the object'} contains itself")
        if len(path) >= _MAX_DEPTH:
            raise ValueError(f"save: nesting deeper than {_MAX_DEPTH} levels at {'.'.join(path)}")
        active.add(id(obj))
        try:
            if isinstance(obj, dict):
                items = []
                for k, v in obj.items():
                    if isinstance(k, bool) or not isinstance(k, (str, int)):
                        raise TypeError(
                            f"save: dict keys must be str or int, got {k!r} "
                            f"({type(k).__name__}) in {'.'.join(path) or 'the dict'}"
                        )
                    key = k if isinstance(k, str) else int(k)
                    items.append([key, _encode(v, [*path, str(k)], arrays, active)])
                return {"odict" if isinstance(obj, OrderedDict) else "dict": items}
            kind = "tuple" if isinstance(obj, tuple) else "list"
            return {kind: [_encode(v, [*path, str(i)], arrays, active) for i, v in enumerate(obj)]}
        finally:
            active.discard(id(obj))
    raise TypeError(
        f"save: cannot store a {type(obj).__name__} at {'.'.join(path) or 'the top level'}; "
        "a checkpoint holds dicts, lists, tuples, arrays, Tensors, numbers, bools, strings, None"
    )


def _atomic_write(path: str, make_bytes: Callable[[], bytes]) -> None:
    """Write ``make_bytes()`` to a fresh file beside ``path``, fsync it, then rename it over
    ``path``. On any error the fresh file is removed and ``path`` is untouched."""
    target = os.path.abspath(path)
    directory, base = os.path.split(target)
    if os.path.isdir(target):
        raise IsADirectoryError(f"save: {path!r} is a directory")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"save: the directory {directory!r} does not exist")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, as for any new file
            break
        except FileExistsError:
            continue
    try:
        with open(fd, "wb") as f:
            with contextlib.suppress(OSError):  # keep the mode of the file being replaced
                os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
            f.write(make_bytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sys.platform != "win32":  # make the rename itself durable
        with contextlib.suppress(OSError):
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


def _fspath(path: Any, fname: str) -> str:
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(
            f"{fname}: path must be a str or os.PathLike, got {type(path).__name__}"
        ) from None


# ---------------------------------------------------------------------------------------- load
def load(path: str | os.PathLike[str]) -> Any:
    """Read a checkpoint written by :func:`save`: the same structure, with writable numpy arrays
    of the saved dtypes (an OrderedDict for a state dict), so ``model.load_state_dict(load(p))``
    works. A safetensors file from elsewhere loads as an OrderedDict of its tensors.

    Raises :class:`CheckpointError` (a ValueError) for a missing, empty, truncated, corrupted or
    foreign file. Nothing in the file is ever executed.
    """
    name = _fspath(path, "load")
    try:
        f = open(name, "rb")
    except FileNotFoundError:
        raise CheckpointError(name, "no such file") from None
    except IsADirectoryError:
        raise CheckpointError(name, "it is a directory, not a checkpoint file") from None
    except OSError as e:
        raise CheckpointError(name, f"cannot open it ({e.strerror or e})") from None
    with f:
        if stat.S_ISDIR(os.fstat(f.fileno()).st_mode):  # Windows opens directories
            raise CheckpointError(name, "it is a directory, not a checkpoint file")
        size = os.fstat(f.fileno()).st_size
        head = f.read(9)
        header_len = _check_prefix(name, head, size)
        f.seek(0)
        data = f.read()
    header = _parse_header(name, data, header_len)
    try:
        raw = safetensors.deserialize(data)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # SafetensorError, or a Rust panic (a BaseException in pyo3)
        raise CheckpointError(name, f"corrupted safetensors data ({e})") from None
    del data
    arrays: dict[str, np.ndarray] = {}
    for key, info in raw:
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise CheckpointError(
                name, f"tensor {key!r} has dtype {info['dtype']}, which numpy cannot hold"
            )
        arr = np.frombuffer(info["data"], dtype=dtype).reshape(info["shape"])
        if not dtype.isnative:
            arr = arr.astype(dtype.newbyteorder("="))
        if not arr.flags.writeable:
            arr = arr.copy()
        arrays[key] = arr
    meta = header.get("__metadata__") or {}
    if META_KEY not in meta:
        order = sorted(arrays, key=lambda k: header[k]["data_offsets"][0])
        return OrderedDict((k, arrays[k]) for k in order)
    return _decode_metadata(name, meta[META_KEY], arrays)


def _check_prefix(name: str, head: bytes, size: int) -> int:
    """The header length that the first 8 bytes give, or a CheckpointError saying what the
    file is. ``head`` is the first 9 bytes: a safetensors header starts with ``{``."""
    if size == 0:
        raise CheckpointError(name, "the file is empty (0 bytes); was a save or copy cut short?")
    n = int.from_bytes(head[:8], "little") if size >= 8 else 0
    if head[8:9] == b"{" and 2 <= n <= _MAX_HEADER:
        if n > size - 8:
            raise CheckpointError(
                name,
                f"truncated (or a corrupted length): its header should "
                f"take {n} bytes but only {size - 8} follow the length",
            )
        return n
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise CheckpointError(
            name,
            "it looks like a pickle file (PyTorch .pt/.pth, joblib?); tinygrad_nn never "
            "loads pickles, because unpickling can run arbitrary code. Convert it to "
            "safetensors where it was made (e.g. safetensors.torch.save_file)",
        )
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            raise CheckpointError(name, f"it {what}, not a safetensors file")
    if size < 9:
        raise CheckpointError(name, f"it has only {size} bytes, too few for a safetensors file")
    raise CheckpointError(
        name,
        "not a safetensors file (it should start with an 8-byte header length and a JSON header)",
    )


def _parse_header(name: str, data: bytes, n: int) -> dict[str, Any]:
    """The JSON header, checked enough to name the problem before safetensors parses it."""
    raw = data[8 : 8 + n]
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(name, f"corrupted header: not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(name, "corrupted header: not a JSON object")
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise CheckpointError(
                    name, "corrupted header: __metadata__ must map strings to strings"
                )
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int and o >= 0 for o in offsets)
            or offsets[0] > offsets[1]
        ):
            raise CheckpointError(name, f"corrupted header: bad entry for tensor {key!r}")
        end = max(end, offsets[1])
    have = len(data) - 8 - n
    if have < end:
        raise CheckpointError(
            name,
            f"truncated: its header describes {end} bytes of tensor data "
            f"but only {have} are there; was a save or copy cut short?",
        )
    if have > end:
        raise CheckpointError(
            name, f"corrupted: {have - end} unexpected bytes after the tensor data"
        )
    return header


def _decode_metadata(name: str, text: str, arrays: dict[str, np.ndarray]) -> Any:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise CheckpointError(name, f"corrupted metadata: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or "root" not in doc:
        raise CheckpointError(name, "corrupted metadata: no structure in it")
    version = doc.get("version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            name,
            f"written in format version {version!r}; this tinygrad_nn "
            f"reads version {FORMAT_VERSION}",
        )
    used: set[str] = set()
    try:
        obj = _decode(doc["root"], arrays, used, 0)
    except _Malformed as e:
        raise CheckpointError(name, f"corrupted metadata: {e}") from None
    unused = sorted(set(arrays) - used)
    if unused:
        raise CheckpointError(
            name,
            f"corrupted metadata: it does not mention the tensors "
            f"{unused[:5]}{' ...' if len(unused) > 5 else ''}",
        )
    return obj


class _Malformed(Exception):
    pass


def _decode(node: Any, arrays: dict[str, np.ndarray], used: set[str], depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise _Malformed(f"nested deeper than {_MAX_DEPTH} levels")
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise _Malformed(f"unknown node {str(node)[:80]}")
    if "array" in node and (len(node) == 1 or "scalar" in node):
        key = node["array"]
        if not isinstance(key, str) or key not in arrays:
            raise _Malformed(f"it names a tensor {str(key)[:80]!r} that the file lacks")
        if key in used:
            raise _Malformed(f"it names the tensor {key[:80]!r} twice")
        used.add(key)
        scalar = node.get("scalar", False)
        if scalar is not False and (scalar is not True or arrays[key].shape != ()):
            raise _Malformed(f"bad scalar mark on tensor {key[:80]!r}")
        return arrays[key][()] if scalar else arrays[key]
    if len(node) != 1:
        raise _Malformed(f"unknown node {str(node)[:80]}")
    ((kind, value),) = node.items()
    if kind == "float" and value in ("nan", "inf", "-inf"):
        return float(value)
    if kind in ("list", "tuple") and isinstance(value, list):
        items = [_decode(v, arrays, used, depth + 1) for v in value]
        return tuple(items) if kind == "tuple" else items
    if kind in ("dict", "odict") and isinstance(value, list):
        out: dict[Any, Any] = OrderedDict() if kind == "odict" else {}
        for pair in value:
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or isinstance(pair[0], bool)
                or not isinstance(pair[0], (str, int))
            ):
                raise _Malformed(f"bad dict entry {str(pair)[:80]}")
            if pair[0] in out:
                raise _Malformed(f"the dict key {str(pair[0])[:80]!r} appears twice")
            out[pair[0]] = _decode(pair[1], arrays, used, depth + 1)
        return out
    raise _Malformed(f"unknown node {str(node)[:80]}")
