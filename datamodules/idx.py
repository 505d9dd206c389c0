"""Reading and writing IDX files, the format of MNIST (optionally gzip-compressed).

An IDX file is a 4-byte magic number ``00 00 <dtype code> <ndim>``, then ``ndim`` big-endian
``uint32`` sizes, then the array in C order, big-endian. See http://yann.lecun.com/exdb/mnist/.
Compression is detected from the gzip magic bytes, not from the file name.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

#: IDX type code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """The bytes are not a well-formed IDX file (bad magic number, truncated, trailing data)."""


def parse_idx(data: bytes, *, name: str = "data") -> np.ndarray:
    """Decode the bytes of an (uncompressed) IDX file into an array in native byte order.

    Args:
        data: the file's bytes.
        name: what to call the input in error messages (e.g. the file path).

    Returns:
        Array of shape ``(d_0, ..., d_{ndim-1})`` with the file's dtype (``uint8`` for MNIST).

    Raises:
        IDXError: wrong magic number, unknown type code, truncated header or data, trailing bytes.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 4:
        raise IDXError(f"{name}: truncated IDX file ({len(data)} bytes, the magic number alone takes 4)")
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0 or code not in IDX_DTYPES:
        raise IDXError(
            f"{name}: bad IDX magic number 0x{data[:4].hex()} (expected 0x0000 followed by a type code in "
            f"{sorted(hex(c) for c in IDX_DTYPES)} and the number of dimensions); is it an IDX file?"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(
            f"{name}: truncated IDX header: {ndim} dimensions need {header} bytes, file has {len(data)}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_DTYPES[code]
    # Python ints: np.prod in int64 wraps for huge headers (4 × 65536 gives 0) and lets them pass
    expected = math.prod(shape) * dtype.itemsize
    body = len(data) - header
    if body < expected:
        raise IDXError(
            f"{name}: truncated IDX data: shape {shape} of {dtype.name} needs {expected} bytes, "
            f"file holds {body}"
        )
    if body > expected:
        raise IDXError(
            f"{name}: {body - expected} unexpected trailing bytes after the IDX array of shape {shape}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header, count=expected // dtype.itemsize).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not, and return its array (native byte order).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IDXError: the file (after decompression) is not a well-formed IDX file, or the gzip stream
            is truncated/corrupt.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        # a damaged deflate body raises zlib.error, which is neither an OSError nor a ValueError
        except (EOFError, OSError, gzip.BadGzipFile, zlib.error) as err:
            raise IDXError(f"{path}: corrupt or truncated gzip stream: {err}") from err
    return parse_idx(raw, name=str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """Encode an array as IDX bytes (dtypes: uint8, int8, int16, int32, float32, float64)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"array must be a numpy.ndarray, got {type(array).__name__}")
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise ValueError(
            f"array has dtype {array.dtype}, which IDX cannot store; use one of "
            f"{sorted(d.name for d in _CODES)}"
        )
    if array.ndim > 255:
        raise ValueError(f"array has {array.ndim} dimensions, IDX stores at most 255")
    code = _CODES[native]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzip it when ``compress`` (default: the name ends in ``.gz``)."""
    path = Path(path)
    data = encode_idx(array)
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        # mtime=0 makes the bytes (and so their sha256) reproducible.
        data = gzip.compress(data, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
