"""TFRecord files of ``tf.train.Example`` records, in pure Python (no TensorFlow).

The **TFRecord framing** is here: ``length`` (u64 little endian), masked crc32c of those 8
bytes, ``data``, masked crc32c of ``data``; with the atomic :class:`TFRecordWriter` and the
checking readers. The records' protobuf (``tf.train.Example``) is
:mod:`bert_cli.text.example_proto`'s.

crc32c comes from the ``google-crc32c`` package (C, hardware accelerated) when it is
installed, else from a table-driven pure-Python fallback that is correct but slow
(about 100x slower; fine for tests and small files).
"""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path
from typing import IO, Iterator

from ..errors import InputError
from ..fileio import AtomicOutput, temp_file_beside, write_error

__all__ = [
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


class TFRecordWriter(AtomicOutput):
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
