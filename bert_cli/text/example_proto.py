"""The protobuf of ``tf.train.Example`` records, hand-encoded in pure Python (no TensorFlow).

``tf.train.Example`` -> ``Features`` -> ``map<string, Feature>``, where a ``Feature`` holds one
of ``BytesList`` (field 1), ``FloatList`` (field 2, packed float32) or ``Int64List`` (field 3,
packed varints; negative values as 10-byte two's complement).

A :class:`Feature` is a ``bytes`` subclass holding its serialized ``tf.train.Feature`` message,
so building an example is a few byte concatenations. Map entries are written in the order of
the mapping (the original ``create_pretraining_data.py`` used an ``OrderedDict`` too); protobuf
readers do not care about the order. The files that hold such records: :mod:`bert_cli.text.tfrecord`.
"""

from __future__ import annotations

import struct
from typing import Iterator, Mapping, Sequence

from ..errors import InputError

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
]

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
