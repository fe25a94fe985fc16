"""Text input read by lines, and the original's ``A ||| B`` sentence pairs (pure Python).

:func:`iter_text_lines` is the one line reader: UTF-8, split on ``\\n`` only (like ``tf.gfile``),
with the invalid-UTF-8 policy of the caller: ``errors="strict"`` (task files, predict input: an
:class:`~bert_cli.errors.InputError` naming the file and line) or ``errors="ignore"``
(``make-pretrain-data``: the bad bytes are dropped, as the original's ``convert_to_unicode``
does, and reported through a callback). :data:`PAIR_RE` is the original ``extract_features.py``
pair separator, used by ``tokenize --pairs``, ``extract`` and ``predict``.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator

from ..errors import InputError

__all__ = ["PAIR_RE", "split_pair", "iter_text_lines"]

#: ``text_a ||| text_b`` (the original ``extract_features.py`` ``read_examples`` regex).
PAIR_RE = re.compile(r"^(.*) \|\|\| (.*)$")
_BOM = "\ufeff"


def split_pair(line: str) -> tuple[str, str | None]:
    """``(text_a, text_b)`` of a stripped line, ``(line, None)`` when it is not an ``A ||| B`` pair."""
    match = PAIR_RE.match(line)
    if match is None:
        return line, None
    return match.group(1), match.group(2)


def iter_text_lines(
    source: str | os.PathLike | Iterable[bytes],
    *,
    name: str | None = None,
    strip_bom: bool = False,
    errors: str = "strict",
    on_invalid_utf8: Callable[[str, int], None] | None = None,
) -> Iterator[str]:
    """The lines of UTF-8 text, split on ``\\n`` only, line endings kept.

    ``source`` is a path (``"-"``: standard input), read in binary, or an iterable of binary
    lines (``name`` names it in messages). ``strip_bom`` drops a UTF-8 byte order mark at the
    start. Invalid UTF-8: ``errors="strict"`` raises InputError with the file and line number;
    ``errors="ignore"`` drops the bad bytes and calls ``on_invalid_utf8(name, line_number)``.
    """
    if errors not in ("strict", "ignore"):
        raise ValueError(f"errors must be 'strict' or 'ignore', not {errors!r}")
    close = None
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        name = name if name is not None else path
        if path == "-":
            lines: Iterable[bytes] = sys.stdin.buffer
        else:
            lines = close = open(path, "rb")  # noqa: SIM115 - closed below, the generator owns it
    else:
        lines = source
    try:
        for lineno, raw in enumerate(lines, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                if errors == "strict":
                    raise InputError(f"not valid UTF-8 (byte {e.start} of the line)", path=name, line=lineno) from None
                text = raw.decode("utf-8", errors="ignore")
                if on_invalid_utf8 is not None:
                    on_invalid_utf8(str(name), lineno)
            if strip_bom and lineno == 1 and text.startswith(_BOM):
                text = text[1:]
            yield text
    finally:
        if close is not None:
            close.close()
