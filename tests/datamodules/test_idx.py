import gzip
import struct

import numpy as np
import pytest
from hybridzoo.datamodules.idx import IDXError, encode_idx, parse_idx, read_idx, write_idx


def test_parse_hand_written_header():
    # magic 0x00000803 = uint8, 3 dims; sizes 2, 2, 3 big-endian; then 12 bytes of data.
    data = b"\x00\x00\x08\x03" + struct.pack(">III", 2, 2, 3) + bytes(range(12))
    arr = parse_idx(data)
    assert arr.dtype == np.uint8 and arr.shape == (2, 2, 3)
    np.testing.assert_array_equal(arr.ravel(), np.arange(12))


def test_parse_big_endian_int32_and_float():
    data = b"\x00\x00\x0c\x01" + struct.pack(">I", 2) + struct.pack(">ii", -5, 70000)
    np.testing.assert_array_equal(parse_idx(data), [-5, 70000])
    data = b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + struct.pack(">f", 1.5)
    assert parse_idx(data).dtype == np.float32 and parse_idx(data)[0] == 1.5


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_round_trip_plain_and_gzip(tmp_path, dtype, name):
    arr = (np.arange(60).reshape(3, 4, 5) - 7).astype(dtype)
    path = write_idx(tmp_path / name, arr)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_gzip_detected_by_content_not_name(tmp_path):
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3)
    path = tmp_path / "plain-name-idx2-ubyte"
    path.write_bytes(gzip.compress(encode_idx(arr)))
    np.testing.assert_array_equal(read_idx(path), arr)


def test_wrong_magic_number(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(IDXError, match="bad IDX magic number"):
        read_idx(path)
    with pytest.raises(IDXError, match="bad IDX magic number"):  # unknown type code 0x07
        parse_idx(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")


def test_truncated_files(tmp_path):
    good = encode_idx(np.zeros((4, 5), dtype=np.uint8))
    with pytest.raises(IDXError, match="truncated IDX file"):
        parse_idx(good[:3])
    with pytest.raises(IDXError, match="truncated IDX header"):
        parse_idx(good[:9])
    with pytest.raises(IDXError, match="truncated IDX data"):
        parse_idx(good[:-1])
    with pytest.raises(IDXError, match="trailing bytes"):
        parse_idx(good + b"\x00")
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(IDXError, match="gzip"):
        read_idx(path)
    path.write_bytes(gzip.compress(good[:-2]))
    with pytest.raises(IDXError, match="truncated IDX data"):
        read_idx(path)


def test_bad_arguments():
    with pytest.raises(TypeError, match="data"):
        parse_idx("not bytes")
    with pytest.raises(TypeError, match="array"):
        encode_idx([1, 2])
    with pytest.raises(ValueError, match="dtype"):
        encode_idx(np.zeros(2, dtype=np.uint16))


def test_header_whose_size_overflows_int64_is_an_idx_error(tmp_path):
    # 65536**4 = 2**64 elements: an int64 product wraps to 0 and matched the empty body
    data = b"\x00\x00\x08\x04" + struct.pack(">4I", 65536, 65536, 65536, 65536)
    with pytest.raises(IDXError, match="truncated IDX data"):
        parse_idx(data)
    path = tmp_path / "huge-idx4-ubyte"
    path.write_bytes(data + b"\x00" * 16)
    with pytest.raises(IDXError, match="huge-idx4-ubyte: truncated IDX data"):
        read_idx(path)


def test_corrupt_gzip_body_is_an_idx_error(tmp_path):
    path = write_idx(tmp_path / "x.idx.gz", np.arange(2000, dtype=np.uint8).reshape(20, 100) % 7)
    data = bytearray(path.read_bytes())
    for i in range(12, 40):  # inside the deflate stream, after the 10-byte gzip header
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IDXError, match="corrupt or truncated gzip"):  # was a bare zlib.error
        read_idx(path)
