"""Is this file text? A look at its first 64 KiB (no TensorFlow).

Commands that read plain text (``bert make-pretrain-data``) refuse, with an error naming the
file, what is clearly not text: a TFRecord (e.g. the output of an earlier run picked up by a
glob), a binary file (NUL bytes), or a file that is mostly invalid UTF-8 (binary, or another
encoding). A few invalid bytes in real text are still accepted (and dropped, as the original
does).
"""

from __future__ import annotations

import os

from ..errors import InputError
from .tfrecord import looks_like_tfrecord

__all__ = ["HEAD_BYTES", "read_head", "check_text"]

HEAD_BYTES = 1 << 16
_TEXT_HINT = "pass plain text files: one sentence per line, blank lines between documents"


def read_head(path: str | os.PathLike) -> bytes:
    """The first :data:`HEAD_BYTES` of ``path``; InputError naming it when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read(HEAD_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=path) from None


def check_text(name: str | os.PathLike, head: bytes) -> None:
    """InputError naming ``name`` unless ``head`` (its first bytes) looks like UTF-8 text."""
    if looks_like_tfrecord(head):
        raise InputError("not text: this is a TFRecord file", path=name, hint=_TEXT_HINT)
    if b"\0" in head:
        raise InputError("not text: a binary file (it holds NUL bytes)", path=name, hint=_TEXT_HINT)
    bad = len(head) - len(head.decode("utf-8", errors="ignore").encode("utf-8"))
    if bad > max(3, len(head) // 10):
        raise InputError(
            f"not UTF-8 text: {bad} of its first {len(head)} bytes are invalid UTF-8 (binary, or another encoding?)",
            path=name,
            hint="convert it to UTF-8 (e.g. iconv -t UTF-8), or pass plain text files",
        )
