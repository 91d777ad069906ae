"""The IDX format of the MNIST files: a small header, then one big-endian array.

Layout (all integers big-endian)::

    byte 0-1   0x00 0x00                      (the magic number's two zero bytes)
    byte 2     type code                      0x08 uint8, 0x09 int8, 0x0B int16,
                                              0x0C int32, 0x0D float32, 0x0E float64
    byte 3     ndim                           number of dimensions, >= 1
    4 * ndim   dims                           uint32 each, slowest-varying first
    rest       prod(dims) * itemsize bytes    the items in C (row-major) order

A file may be gzipped; that is told by its first two bytes (1f 8b), not by its name.
"""

from __future__ import annotations

import gzip as _gzip
import io
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IDXFormatError", "decode_idx", "encode_idx", "read_idx", "read_raw_bytes", "write_idx"]

GZIP_MAGIC = b"\x1f\x8b"

#: type code -> (big-endian dtype, name used in the IDX description)
IDX_TYPES: dict[int, tuple[np.dtype, str]] = {
    0x08: (np.dtype(">u1"), "ubyte"),
    0x09: (np.dtype(">i1"), "byte"),
    0x0B: (np.dtype(">i2"), "short"),
    0x0C: (np.dtype(">i4"), "int"),
    0x0D: (np.dtype(">f4"), "float"),
    0x0E: (np.dtype(">f8"), "double"),
}
_CODE_OF_KIND = {(dt.kind, dt.itemsize): code for code, (dt, _) in IDX_TYPES.items()}
_KNOWN = ", ".join(f"0x{code:02X} {name}" for code, (_, name) in IDX_TYPES.items())

Source = str | os.PathLike | bytes | bytearray | memoryview


class IDXFormatError(ValueError):
    """The bytes are not a well-formed IDX file (or gzipped IDX file).

    ``name`` is the file (or ``"<bytes>"``) the message is about.
    """

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


def _nbytes(n: int) -> str:
    return "1 byte" if n == 1 else f"{n} bytes"


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def _name_of(source: Source, name: str | None) -> str:
    if name is not None:
        return name
    return "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source)


def read_raw_bytes(source: Source, *, name: str | None = None) -> bytes:
    """The uncompressed bytes of ``source``: a path, or the file's bytes.

    Gzip is detected by the magic bytes 1f 8b. A damaged gzip stream raises :class:`IDXFormatError`
    naming ``name`` (default: the path, or ``"<bytes>"``); a path that cannot be opened raises the
    usual ``OSError`` (e.g. ``FileNotFoundError``).
    """
    name = _name_of(source, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        data = Path(source).read_bytes()
    if data[:2] == GZIP_MAGIC:
        data = _gunzip_bounded(data, name)
        if not data:
            raise IDXFormatError(name, "empty file (the gzip stream holds 0 bytes)")
    return data


def _gunzip_bounded(data: bytes, name: str) -> bytes:
    """Decompress a gzip file, but never more than its IDX header says the file holds (plus
    one byte, so that extra data is still seen): a gzip bomb cannot exhaust memory.

    A gzip file may hold several members one after the other (``cat a.gz b.gz``, pigz, appending
    with ``gzip -c >>``): their contents are joined, as ``gzip -d`` does. Python's gzip reader
    does the work, so zero padding after a member is skipped and anything else there refused.
    """
    stream = _gzip.GzipFile(fileobj=io.BytesIO(data))
    out = bytearray()

    def fill(target: int) -> bool:
        """Inflate until ``out`` holds ``target`` bytes; False if the data ends first."""
        while len(out) < target:
            chunk = stream.read(min(target - len(out), 1 << 24))
            if not chunk:
                return False
            out.extend(chunk)
        return True

    try:
        limit = 4 + 1024  # not an IDX header: enough for decode_idx to say what is wrong
        if fill(4) and out[:2] == b"\x00\x00" and out[2] in IDX_TYPES and out[3] > 0:
            header = 4 + 4 * out[3]
            if fill(header):
                dims = struct.unpack(f">{out[3]}I", out[4:header])
                limit = header + IDX_TYPES[out[2]][0].itemsize * math.prod(dims) + 1
        fill(limit)
    except EOFError:
        problem = "truncated gzip stream (it ends before its last block)"
        raise IDXFormatError(name, problem) from None
    except (_gzip.BadGzipFile, zlib.error) as exc:
        if "Not a gzipped file" in str(exc):
            problem = f"the bytes after a gzip member are not another gzip member ({exc})"
        else:
            problem = f"corrupt gzip stream ({exc})"
        raise IDXFormatError(name, problem) from None
    return bytes(out)


def decode_idx(data: bytes | bytearray | memoryview, name: str = "<bytes>") -> np.ndarray:
    """Parse uncompressed IDX bytes into a new native-endian, writable array of shape ``dims``."""
    data = memoryview(data).cast("B")
    size = len(data)
    if size == 0:
        raise IDXFormatError(name, "empty file (0 bytes)")
    if size < 4:
        raise IDXFormatError(
            name, f"too short ({_nbytes(size)}) to hold the 4-byte magic number: {_hex(data)}"
        )
    magic = bytes(data[:4])
    if magic[:2] != b"\x00\x00":
        shown = f"bad magic bytes {_hex(magic)}"
        if all(32 <= b < 127 for b in magic):
            shown += f" (text {magic.decode('ascii')!r}: an HTML page or a text file?)"
        raise IDXFormatError(
            name, f"{shown}; an IDX file starts with 00 00, a type code and the number of dims"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_TYPES:
        raise IDXFormatError(
            name, f"unknown type code 0x{code:02X} in magic bytes {_hex(magic)} (known: {_KNOWN})"
        )
    if ndim == 0:
        raise IDXFormatError(name, f"magic bytes {_hex(magic)} give 0 dimensions (need >= 1)")
    header = 4 + 4 * ndim
    if size < header:
        raise IDXFormatError(
            name,
            f"header truncated: {ndim} dims need a {header}-byte header, file has {size} bytes",
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype, type_name = IDX_TYPES[code]
    expected = header + math.prod(dims) * dtype.itemsize
    if size != expected:
        shape = "x".join(map(str, dims))
        diff = size - expected
        what = (
            f"{_nbytes(-diff)} missing (truncated?)"
            if diff < 0
            else f"{_nbytes(diff)} extra at the end"
        )
        raise IDXFormatError(
            name,
            f"size mismatch: dims {shape} of {type_name} ({_nbytes(dtype.itemsize)} each) and a "
            f"{header}-byte header need {expected} bytes, but there are {size}: {what}",
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def read_idx(source: Source, *, name: str | None = None) -> np.ndarray:
    """Read an IDX file, gzipped or raw, from a path or from its bytes.

    Returns a native-endian array of the file's dtype and shape. Raises :class:`IDXFormatError`
    (a ``ValueError``) naming the file and the problem if the bytes are not a valid IDX file,
    and ``OSError`` only if a path cannot be opened. Nothing is ever unpickled.
    """
    name = _name_of(source, name)
    return decode_idx(read_raw_bytes(source, name=name), name)


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes (uncompressed) of ``array``: header, then the items big-endian in C order.

    The dtype must be one IDX can hold (uint8, int8, int16, int32, float32, float64) and the
    array must have at least one dimension, each below 2**32.
    """
    array = np.asarray(array)
    code = _CODE_OF_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise TypeError(f"write_idx: IDX cannot store dtype {array.dtype} (types: {_KNOWN})")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx: IDX needs 1 to 255 dimensions, got {array.ndim}")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"write_idx: every dimension must be < 2**32, got shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_TYPES[code][0]).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray, *, gzip: bool = False) -> None:
    """Write ``array`` to ``path`` as an IDX file (see :func:`encode_idx`), gzipped if ``gzip``."""
    data = encode_idx(array)
    if gzip:
        data = _gzip.compress(data, mtime=0)
    Path(path).write_bytes(data)
