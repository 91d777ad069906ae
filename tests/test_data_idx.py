"""The IDX reader: round trips, and every kind of malformed file refused with a clear message."""

import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_nn.data.idx import IDXFormatError, decode_idx, encode_idx, read_idx, write_idx

DTYPES = [np.uint8, np.int8, np.dtype(">i2"), np.dtype("<i4"), np.float32, np.dtype(">f8")]


def small_idx() -> bytes:
    return encode_idx(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


def test_header_layout_is_big_endian():
    data = encode_idx(np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int16))
    assert data[:4] == bytes([0, 0, 0x0B, 2])
    assert struct.unpack(">II", data[4:12]) == (2, 3)
    assert struct.unpack(">6h", data[12:]) == (1, 2, 3, 4, 5, 6)


@pytest.mark.parametrize("use_gzip", [False, True])
def test_write_then_read_file(tmp_path, use_gzip):
    array = np.arange(60, dtype=np.float32).reshape(3, 4, 5) / 7
    path = tmp_path / "a.idx"
    write_idx(path, array, gzip=use_gzip)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == use_gzip
    out = read_idx(path)
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, array)
    out[0, 0, 0] = -1  # a fresh, writable array
    np.testing.assert_array_equal(read_idx(str(path)), array)


def test_gzip_is_detected_by_magic_not_by_name(tmp_path):
    raw = small_idx()
    (tmp_path / "looks-gzipped.gz").write_bytes(raw)
    (tmp_path / "looks-raw").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / "looks-gzipped.gz"), read_idx(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / "looks-raw"), read_idx(raw))


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from(DTYPES),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    ),
    st.booleans(),
)
def test_roundtrip(array, compress):
    data = encode_idx(array)
    if compress:
        data = gzip.compress(data)
    out = read_idx(data)
    assert out.shape == array.shape
    assert out.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(out, array)


def test_write_refuses_what_idx_cannot_hold(tmp_path):
    with pytest.raises(TypeError, match="int64"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError, match="bool"):
        encode_idx(np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="dimensions"):
        encode_idx(np.float32(1.0))


def check_refused(data: bytes, *fragments: str) -> IDXFormatError:
    with pytest.raises(IDXFormatError) as info:
        read_idx(data)
    for fragment in fragments:
        assert fragment in str(info.value)
    return info.value


def test_bad_magic_is_shown_in_hex():
    check_refused(b"\x12\x34\x08\x01" + bytes(8), "bad magic bytes 12 34 08 01", "<bytes>")


def test_html_page_is_named_as_text():
    check_refused(b"<html><body>404</body></html>", "bad magic bytes 3c 68 74 6d", "'<htm'")


def test_unknown_type_code():
    check_refused(b"\x00\x00\x07\x01" + bytes(8), "unknown type code 0x07", "0x08 ubyte")


def test_zero_dimensions():
    check_refused(b"\x00\x00\x08\x00", "0 dimensions")


def test_truncated_header():
    check_refused(small_idx()[:9], "header truncated", "16-byte header", "9 bytes")


def test_too_short_for_magic():
    check_refused(b"\x00\x00", "too short (2 bytes)", "magic number")


def test_truncated_data():
    check_refused(small_idx()[:-3], "size mismatch", "2x3x4", "need 40 bytes", "3 bytes missing")


def test_extra_bytes():
    check_refused(small_idx() + b"\x00", "need 40 bytes, but there are 41", "1 byte extra")


def test_wrong_dims():
    data = bytes([0, 0, 0x08, 2]) + struct.pack(">II", 3, 4) + bytes(15)
    check_refused(data, "dims 3x4 of ubyte", "need 24 bytes, but there are 27", "3 bytes extra")
    data = bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 3) + bytes(3)
    check_refused(data, "dims 3 of int (4 bytes each)", "need 20 bytes")


def test_empty_file(tmp_path):
    path = tmp_path / "empty-idx1-ubyte"
    path.write_bytes(b"")
    err = check_refused_path(path, "empty file")
    assert err.name == str(path)
    check_refused(gzip.compress(b""), "empty file", "gzip")


def check_refused_path(path, *fragments: str) -> IDXFormatError:
    with pytest.raises(IDXFormatError) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value)
    return info.value


def test_corrupt_gzip(tmp_path):
    packed = bytearray(gzip.compress(small_idx() * 50))
    packed[12] ^= 0xFF
    path = tmp_path / "bad.gz"
    path.write_bytes(bytes(packed))
    check_refused_path(path, "corrupt gzip stream")


def test_truncated_gzip(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(small_idx())[:-6])
    check_refused_path(path, "truncated gzip stream")


def test_bad_gzip_checksum():
    packed = bytearray(gzip.compress(small_idx()))
    packed[-8] ^= 1  # the CRC-32 of the trailer
    check_refused(bytes(packed), "corrupt gzip stream", "CRC")


def members(raw: bytes, *cuts: int) -> bytes:
    """``raw`` gzipped as one member per piece between ``cuts``, joined as ``cat a.gz b.gz``."""
    bounds = [0, *cuts, len(raw)]
    return b"".join(gzip.compress(raw[a:b]) for a, b in zip(bounds, bounds[1:]))


def test_multi_member_gzip_is_read_whole(tmp_path):
    raw = small_idx()
    # an empty member first, a member boundary inside the magic number and one inside the dims
    packed = members(raw, 0, 2, 9, 20)
    assert gzip.decompress(packed) == raw
    path = tmp_path / "cat.gz"
    path.write_bytes(packed)
    np.testing.assert_array_equal(read_idx(path), read_idx(raw))
    # zero padding after the last member is skipped, as gzip -d and Python's gzip do
    np.testing.assert_array_equal(read_idx(packed + bytes(5)), read_idx(raw))


def test_multi_member_gzip_still_refuses_what_is_wrong():
    raw = small_idx()
    check_refused(members(raw, 10)[:-6], "truncated gzip stream")  # the last member cut
    check_refused(members(raw, 10)[:-45], "truncated gzip stream")  # cut in its header
    check_refused(members(raw, len(raw)) + gzip.compress(b"x"), "1 byte extra at the end")
    check_refused(members(raw, 10) + b"junk", "not another gzip member")


def test_error_is_a_value_error():
    assert issubclass(IDXFormatError, ValueError)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


def test_decode_idx_accepts_memoryview():
    out = decode_idx(memoryview(small_idx()), "m")
    assert out.shape == (2, 3, 4)


def damaged(draw) -> bytes:
    """Valid IDX bytes (maybe gzipped), then truncated, extended or with bytes overwritten."""
    array = draw(
        hnp.arrays(
            dtype=st.sampled_from(DTYPES),
            shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
        )
    )
    data = bytearray(encode_idx(array))
    if draw(st.booleans()):
        data = bytearray(gzip.compress(bytes(data)))
    how = draw(st.sampled_from(["cut", "extend", "flip", "none"]))
    if how == "cut":
        del data[draw(st.integers(0, len(data))) :]
    elif how == "extend":
        data += draw(st.binary(min_size=1, max_size=8))
    elif how == "flip":
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=64),
        st.binary(max_size=64).map(lambda b: b"\x1f\x8b" + b),
        st.binary(max_size=64).map(lambda b: b"\x00\x00" + b),
        st.composite(damaged)(),
    )
)
def test_fuzz_only_documented_errors(data):
    try:
        out = read_idx(data)
    except IDXFormatError as exc:
        assert type(exc) is IDXFormatError
        assert str(exc).startswith("<bytes>: ")
    else:
        assert isinstance(out, np.ndarray) and out.ndim >= 1


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    import gzip
    import tracemalloc

    header = b"\x00\x00\x08\x01" + (16).to_bytes(4, "big")  # says: 16 bytes follow
    bomb = gzip.compress(header + bytes(16) + bytes(200_000_000), compresslevel=9)
    path = tmp_path / "bomb.gz"
    path.write_bytes(bomb)
    tracemalloc.start()
    try:
        with pytest.raises(IDXFormatError, match="extra|size|bytes"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000  # far below the 200 MB the stream would inflate to
