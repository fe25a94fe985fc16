"""TFRecord files of ``tf.train.Example`` records, in pure Python (no TensorFlow).

Two formats are hand-encoded here:

* the **protobuf** of ``tf.train.Example`` -> ``Features`` -> ``map<string, Feature>``, where a
  ``Feature`` holds one of ``BytesList`` (field 1), ``FloatList`` (field 2, packed float32) or
  ``Int64List`` (field 3, packed varints; negative values as 10-byte two's complement);
* the **TFRecord framing**: ``length`` (u64 little endian), masked crc32c of those 8 bytes,
  ``data``, masked crc32c of ``data``.

A :class:`Feature` is a ``bytes`` subclass holding its serialized ``tf.train.Feature`` message,
so building an example is a few byte concatenations. Map entries are written in the order of
the mapping (the original ``create_pretraining_data.py`` used an ``OrderedDict`` too); protobuf
readers do not care about the order.

crc32c comes from the ``google-crc32c`` package (C, hardware accelerated) when it is
installed, else from a table-driven pure-Python fallback that is correct but slow
(about 100x slower; fine for tests and small files).
"""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path
from typing import IO, Iterator, Mapping, Sequence

from ..errors import InputError
from ..fileio import temp_file_beside, write_error

__all__ = [
    "Feature",
    "int64_feature",
    "float_feature",
    "bytes_feature",
    "encode_example",
    "decode_example",
    "packed_varints",
    "varint_table",
    "int64_feature_from_packed",
    "feature_entry",
    "example_from_entries",
    "frame_record",
    "masked_crc32c",
    "crc32c",
    "TFRecordWriter",
    "looks_like_tfrecord",
    "read_records",
    "verify_records",
    "CRC32C_IMPLEMENTATION",
]

# --------------------------------------------------------------------------------------- crc32c

_CRC_MASK_DELTA = 0xA282EAD8


def _make_crc32c_table() -> list[int]:
    poly = 0x82F63B78  # Castagnoli, reflected
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


def _crc32c_pure(data: bytes) -> int:
    """crc32c of ``data``, one byte at a time (the fallback)."""
    table = _CRC_TABLE
    crc = 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


_CRC_TABLE = _make_crc32c_table()

try:  # pragma: no branch - which branch runs depends on the environment
    import google_crc32c as _gcrc

    crc32c = _gcrc.value
    CRC32C_IMPLEMENTATION = f"google-crc32c ({_gcrc.implementation})"
except ImportError:  # pragma: no cover - exercised only without the package
    crc32c = _crc32c_pure
    CRC32C_IMPLEMENTATION = "pure-python (slow; pip install google-crc32c)"


def masked_crc32c(data: bytes) -> int:
    """The TFRecord checksum: crc32c rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _CRC_MASK_DELTA) & 0xFFFFFFFF


# ------------------------------------------------------------------------------------- varints

_VARINT_TABLE_SIZE = 1 << 17  # covers every id of the multilingual vocabulary (119,547)
_varint_table: list[bytes] | None = None


def _varint(value: int) -> bytes:
    """Base-128 varint; negative numbers as their 64-bit two's complement (10 bytes)."""
    value = int(value)
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _table() -> list[bytes]:
    global _varint_table
    if _varint_table is None:
        one = [bytes((i,)) for i in range(0x80)]
        two = [bytes(((i & 0x7F) | 0x80, i >> 7)) for i in range(0x80, 1 << 14)]
        three = [
            bytes(((i & 0x7F) | 0x80, ((i >> 7) & 0x7F) | 0x80, i >> 14))
            for i in range(1 << 14, _VARINT_TABLE_SIZE)
        ]
        _varint_table = one + two + three
    return _varint_table


def _packed_varints(values: Sequence[int]) -> bytes:
    """Concatenated varints of ``values`` (the payload of a packed repeated int64)."""
    if not values:
        return b""
    low, high = min(values), max(values)
    if low >= 0:
        if high < 0x80:
            return bytes(values)
        if high < _VARINT_TABLE_SIZE:
            table = _table()
            return b"".join([table[v] for v in values])
    return b"".join([_varint(v) for v in values])


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    n = len(payload)
    return tag + _varint_fast(n) + payload


# ------------------------------------------------------------------------------------- encoding

_TAG_1_LEN = b"\x0a"  # field 1, wire type 2 (length-delimited)
_TAG_2_LEN = b"\x12"
_TAG_3_LEN = b"\x1a"


class Feature(bytes):
    """A serialized ``tf.train.Feature`` message (build it with the ``*_feature`` helpers)."""

    __slots__ = ()


def int64_feature(values: Sequence[int]) -> Feature:
    """``Feature(int64_list=Int64List(value=values))``."""
    if not isinstance(values, (list, tuple)):
        values = list(values)
    inner = _length_delimited(_TAG_1_LEN, _packed_varints(values)) if values else b""
    return Feature(_length_delimited(_TAG_3_LEN, inner))


def float_feature(values: Sequence[float]) -> Feature:
    """``Feature(float_list=FloatList(value=values))`` (values are stored as float32)."""
    if not isinstance(values, (list, tuple)):
        values = list(values)
    inner = (
        _length_delimited(_TAG_1_LEN, struct.pack(f"<{len(values)}f", *values)) if values else b""
    )
    return Feature(_length_delimited(_TAG_2_LEN, inner))


def bytes_feature(values: Sequence[bytes]) -> Feature:
    """``Feature(bytes_list=BytesList(value=values))``; ``str`` values are UTF-8 encoded."""
    parts = []
    for v in values:
        if isinstance(v, str):
            v = v.encode("utf-8")
        parts.append(_length_delimited(_TAG_1_LEN, bytes(v)))
    return Feature(_length_delimited(_TAG_1_LEN, b"".join(parts)))


_key_prefixes: dict[str, bytes] = {}


def _key_prefix(key: str) -> bytes:
    """The map entry's key field followed by the value's tag (cached per key)."""
    prefix = _key_prefixes.get(key)
    if prefix is None:
        prefix = _length_delimited(_TAG_1_LEN, key.encode("utf-8")) + _TAG_2_LEN
        if len(_key_prefixes) < 4096:
            _key_prefixes[key] = prefix
    return prefix


def _varint_fast(n: int) -> bytes:
    return _table()[n] if 0 <= n < _VARINT_TABLE_SIZE else _varint(n)


def encode_example(features: Mapping[str, Feature]) -> bytes:
    """A serialized ``tf.train.Example``; the mapping's order is kept."""
    entries = []
    for key, feature in features.items():
        if not isinstance(feature, Feature):
            raise TypeError(f"feature {key!r} must be built with int64/float/bytes_feature")
        entries.append(feature_entry(key, feature))
    return example_from_entries(entries)


# Lower-level pieces for hot loops (e.g. pretraining data): build the map entries of an
# Example once where they do not change, and join them per record.


def packed_varints(values: Sequence[int]) -> bytes:
    """The varints of ``values`` back to back (the payload of a packed ``Int64List``)."""
    return _packed_varints(values if isinstance(values, (list, tuple)) else list(values))


def varint_table() -> list[bytes]:
    """``varint_table()[n]`` is the varint of ``n`` for ``0 <= n < 2**17``."""
    return _table()


def int64_feature_from_packed(payload: bytes) -> Feature:
    """An ``Int64List`` feature from an already packed payload (see :func:`packed_varints`)."""
    inner = _length_delimited(_TAG_1_LEN, payload) if payload else b""
    return Feature(_length_delimited(_TAG_3_LEN, inner))


def feature_entry(key: str, feature: Feature) -> bytes:
    """One serialized ``feature`` map entry of ``Features`` (tag and length included)."""
    prefix = _key_prefix(key)
    value_len = _varint_fast(len(feature))
    entry_len = len(prefix) + len(value_len) + len(feature)
    return b"".join((_TAG_1_LEN, _varint_fast(entry_len), prefix, value_len, feature))


def example_from_entries(entries: Sequence[bytes]) -> bytes:
    """A serialized ``tf.train.Example`` from :func:`feature_entry` outputs, in order."""
    return _length_delimited(_TAG_1_LEN, b"".join(entries))


# ------------------------------------------------------------------------------------- decoding


class _DecodeError(ValueError):
    pass


def _read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _DecodeError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes, pos: int, end: int) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) for each field of the message in ``buf[pos:end]``.

    Length-delimited values are returned as ``(start, stop)`` offsets into ``buf``.
    """
    while pos < end:
        key, pos = _read_varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos, end)
        elif wire == 2:
            n, pos = _read_varint(buf, pos, end)
            if pos + n > end:
                raise _DecodeError("length-delimited field runs past its message")
            value = (pos, pos + n)
            pos += n
        elif wire == 5:
            if pos + 4 > end:
                raise _DecodeError("truncated fixed32")
            value = buf[pos : pos + 4]
            pos += 4
        elif wire == 1:
            if pos + 8 > end:
                raise _DecodeError("truncated fixed64")
            value = buf[pos : pos + 8]
            pos += 8
        else:
            raise _DecodeError(f"unsupported wire type {wire}")
        yield field, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _decode_list(buf: bytes, kind: int, start: int, stop: int) -> list:
    out: list = []
    for field, wire, value in _fields(buf, start, stop):
        if field != 1:
            continue
        if kind == 1:  # BytesList
            if wire != 2:
                raise _DecodeError("BytesList value is not length-delimited")
            out.append(bytes(buf[value[0] : value[1]]))
        elif kind == 2:  # FloatList, packed or not
            if wire == 2:
                a, b = value
                if (b - a) % 4:
                    raise _DecodeError("packed FloatList length is not a multiple of 4")
                out.extend(struct.unpack(f"<{(b - a) // 4}f", buf[a:b]))
            elif wire == 5:
                out.append(struct.unpack("<f", value)[0])
            else:
                raise _DecodeError("bad FloatList encoding")
        else:  # Int64List, packed or not
            if wire == 2:
                pos, b = value
                while pos < b:
                    v, pos = _read_varint(buf, pos, b)
                    out.append(_signed64(v))
            elif wire == 0:
                out.append(_signed64(value))
            else:
                raise _DecodeError("bad Int64List encoding")
    return out


def _decode_feature(buf: bytes, start: int, stop: int) -> list:
    values: list = []
    for field, wire, value in _fields(buf, start, stop):
        if field in (1, 2, 3) and wire == 2:
            values = _decode_list(buf, field, *value)  # oneof: the last one wins
    return values


def decode_example(data: bytes) -> dict[str, list]:
    """Parse a serialized ``tf.train.Example`` into ``{name: list of int | float | bytes}``.

    Raises :class:`InputError` when ``data`` is not a valid Example.
    """
    buf = bytes(data)
    out: dict[str, list] = {}
    try:
        for f1, w1, v1 in _fields(buf, 0, len(buf)):
            if f1 != 1 or w1 != 2:
                continue
            for f2, w2, v2 in _fields(buf, *v1):  # Features
                if f2 != 1 or w2 != 2:
                    continue
                key, values = "", []
                for f3, w3, v3 in _fields(buf, *v2):  # map entry
                    if f3 == 1 and w3 == 2:
                        key = buf[v3[0] : v3[1]].decode("utf-8")
                    elif f3 == 2 and w3 == 2:
                        values = _decode_feature(buf, *v3)
                out[key] = values
    except (_DecodeError, UnicodeDecodeError, struct.error) as exc:
        raise InputError(f"not a serialized tf.train.Example ({exc})") from None
    return out


# ------------------------------------------------------------------------------------- framing


def frame_record(data: bytes) -> bytes:
    """One TFRecord: length, masked crc of the length, data, masked crc of the data."""
    header = struct.pack("<Q", len(data))
    return b"".join(
        (
            header,
            struct.pack("<I", masked_crc32c(header)),
            data,
            struct.pack("<I", masked_crc32c(data)),
        )
    )


class TFRecordWriter:
    """Write TFRecords to ``path`` atomically.

    Records go to a hidden temporary file beside ``path`` (permissions ``0666 & ~umask``);
    :meth:`close` renames it onto ``path``. For a set of files that must appear together,
    :meth:`finish` each (flush, sync, close) and then :meth:`publish` each (rename).
    Leaving a ``with`` block by an exception, or calling :meth:`abort`, removes the temporary
    file, so a crash never leaves a half-written or empty ``path`` behind. An ``OSError``
    (disk full, read-only folder ...) removes it too and is raised as
    :class:`~bert_cli.errors.OutputError` naming ``path``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._tmp: str | None = None
        self._fh: IO[bytes] | None = None
        try:
            fd, self._tmp = temp_file_beside(self.path)
        except OSError as exc:
            raise write_error(self.path, exc) from None
        self._fh = os.fdopen(fd, "wb", buffering=1 << 20)
        self.records = 0
        self.bytes = 0

    @property
    def temp_path(self) -> str | None:
        """The temporary file (until :meth:`publish` or :meth:`abort`)."""
        return self._tmp

    def write(self, record: bytes) -> None:
        """Append one record (a serialized Example, or any bytes)."""
        self.write_framed(frame_record(record))

    def write_framed(self, framed: bytes, count: int = 1) -> None:
        """Append bytes already framed by :func:`frame_record` (``count`` records)."""
        if self._fh is None:
            raise ValueError(f"TFRecordWriter for {self.path} is closed")
        with self._failing():
            self._fh.write(framed)
        self.records += count
        self.bytes += len(framed)

    @contextlib.contextmanager
    def _failing(self) -> Iterator[None]:
        """On any exception: discard the temporary file; an OSError becomes OutputError."""
        try:
            yield
        except OSError as exc:
            self.abort()
            raise write_error(self.path, exc) from None
        except BaseException:
            self.abort()
            raise

    def finish(self) -> None:
        """Flush and sync the records into the temporary file and close it (not yet visible)."""
        if self._fh is None:
            return
        with self._failing():
            self._fh.flush()
            os.fsync(self._fh.fileno())
            fh, self._fh = self._fh, None
            fh.close()

    def publish(self) -> None:
        """:meth:`finish`, then rename the temporary file onto ``path``."""
        self.finish()
        if self._tmp is None:
            return
        with self._failing():
            os.replace(self._tmp, self.path)
            self._tmp = None

    def close(self) -> None:
        """Flush, sync and rename the temporary file onto ``path``."""
        self.publish()

    def abort(self) -> None:
        """Discard everything written (always removes the temporary file); ``path`` is left as
        it was."""
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError):  # a failing flush (disk full): the fd still closes
                fh.close()
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def __enter__(self) -> "TFRecordWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:  # a writer dropped without close() leaves nothing behind
        with contextlib.suppress(Exception):
            self.abort()


def looks_like_tfrecord(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) starts with a valid TFRecord header."""
    if len(head) < 12:
        return False
    return masked_crc32c(head[:8]) == struct.unpack("<I", head[8:12])[0]


def read_records(path: str | os.PathLike) -> Iterator[bytes]:
    """Yield the data of each record of a TFRecord file, checking both masked crc32c.

    Raises :class:`InputError` (naming the file, the record number and byte offset) on a
    truncated file or a checksum mismatch. Compressed (GZIP/ZLIB) files are not supported.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        index = 0
        while True:
            offset = fh.tell()
            header = fh.read(12)
            if not header:
                return
            where = f"record {index} at byte {offset}"
            if len(header) < 12:
                raise InputError(f"truncated TFRecord header ({where})", path=path)
            (length,) = struct.unpack("<Q", header[:8])
            (length_crc,) = struct.unpack("<I", header[8:])
            if masked_crc32c(header[:8]) != length_crc:
                raise InputError(
                    f"corrupt TFRecord: length checksum mismatch ({where})",
                    path=path,
                    hint="the file is damaged or not a TFRecord file (GZIP-compressed files are not supported)",
                )
            data = fh.read(length)
            footer = fh.read(4)
            if len(data) < length or len(footer) < 4:
                raise InputError(f"truncated TFRecord ({where})", path=path)
            if masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                raise InputError(f"corrupt TFRecord: data checksum mismatch ({where})", path=path)
            yield data
            index += 1


def verify_records(path: str | os.PathLike) -> int:
    """The number of records of a TFRecord file, every length and data checksum verified.

    Raises :class:`InputError` naming the file, the record and its byte offset at the first
    truncated or corrupt record (see :func:`read_records`); reads the whole file.
    """
    count = 0
    for _ in read_records(path):
        count += 1
    return count
