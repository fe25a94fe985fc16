"""Low-level readers of task tables: TSV (the original's literal quotes), standard CSV and
JSON Lines, and :func:`iter_records`, the column-resolving record stream shared by the
user's own tasks (:mod:`bert_cli.text.own_data`) and ``bert predict`` input
(:mod:`bert_cli.text.predict_input`). Pure Python.

Column references are a header name or a 0-based index (:data:`ColumnRef`). Bad content raises
:class:`~bert_cli.errors.InputError` naming the file and 1-based line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Union

from ..errors import InputError, UsageError
from .lines import iter_text_lines

ColumnRef = Union[int, str]


def read_tsv(path: str | Path, *, strip_bom: bool = False) -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` per line, as the original's ``csv.reader(delimiter="\\t", quotechar=None)``.

    Quotes are literal, so one line is always one row; a blank line yields ``[]``.
    """
    reader = csv.reader(iter_text_lines(path, strip_bom=strip_bom), delimiter="\t", quotechar=None)
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as e:
        raise InputError(f"unreadable TSV row: {e}", path=path, line=reader.line_num) from None


def read_csv(path: str | Path, *, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """``(first line, fields)`` per record of a standard CSV file (quoted fields may span lines)."""
    reader = csv.reader(iter_text_lines(path, strip_bom=True), delimiter=delimiter)
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as e:
        raise InputError(f"unreadable CSV record: {e}", path=path, line=start) from None


def read_jsonl(path: str | Path) -> Iterator[tuple[int, object]]:
    """``(line, value)`` per non-blank line of a JSON Lines file."""
    for lineno, text in enumerate(iter_text_lines(path, strip_bom=True), 1):
        if not text.strip():
            continue
        try:
            value = json.loads(text.rstrip("\r\n"))  # else an error at the end reads "column 1" (of the next line)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", path=path, line=lineno) from None
        if not isinstance(value, (dict, list)):
            raise InputError("expected a JSON object or array on each line", path=path, line=lineno)
        yield lineno, value

def require_columns(row: Sequence, needed: int, path: Path, line: int, what: str = "tab-separated") -> None:
    if len(row) < needed:
        raise InputError(f"expected at least {needed} {what} columns, found {len(row)}", path=path, line=line)


def parse_column(ref: ColumnRef | None) -> ColumnRef | None:
    """An int index stays an int; a string of digits becomes a candidate index (kept as str)."""
    if ref is None or isinstance(ref, int):
        if isinstance(ref, int) and ref < 0:
            raise UsageError(f"column index {ref} must be >= 0")
        return ref
    ref = str(ref)
    if not ref:
        raise UsageError("empty column name")
    return ref


class _Columns:
    """Column references of one file resolved against its header (or by index)."""

    def __init__(self, text_a: int | str, text_b: int | str | None, label: int | str | None) -> None:
        self.text_a, self.text_b, self.label = text_a, text_b, label

    @classmethod
    def resolve(
        cls, refs: Sequence[ColumnRef | None], header: list[str] | None, path: Path, *, label_optional: bool
    ) -> _Columns:
        out: list[int | str | None] = []
        for n, ref in enumerate(refs):
            if ref is None:
                out.append(None)
            elif isinstance(ref, int):
                out.append(ref)
            elif header is not None and ref in header:
                out.append(header.index(ref))
            elif ref.isdigit():
                out.append(int(ref))
            elif header is None:
                raise UsageError(f"column {ref!r} is a name but the file has no header; use a 0-based index")
            elif n == 2 and label_optional:
                out.append(None)
            else:
                raise InputError(f"column {ref!r} not in the header ({', '.join(header)})", path=path, line=1)
        return cls(*out)  # type: ignore[arg-type]

def scalar_text(value: object, what: str, path: Path, line: int) -> str:
    """A JSON value used as text: strings as is, numbers via str(); anything else is an error."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise InputError(f"the {what} must be a string, not {json.dumps(value)}", path=path, line=line)


def iter_records(
    path: Path,
    file_format: str,
    columns: Sequence[ColumnRef | None],
    *,
    header: bool,
    label_optional: bool,
    prefix: str = "",
) -> Iterator[tuple[int, str, str | None, object]]:
    """``(line, text_a, text_b, raw_label)`` of a CSV/TSV/JSONL file; blank rows are skipped.

    ``columns`` = (text_a, text_b or None, label or None). A missing label is ``None`` when
    ``label_optional``; any other missing column is an InputError at its line.
    """
    if file_format == "jsonl":
        yield from _iter_jsonl(path, columns, label_optional)
        return
    rows = read_csv(path) if file_format == "csv" else read_tsv(path, strip_bom=True)
    what = "comma-separated" if file_format == "csv" else "tab-separated"
    cols: _Columns | None = None
    if not header:
        cols = _Columns.resolve(columns, None, path, label_optional=label_optional)
    for line, row in rows:
        if not row or (len(row) == 1 and not row[0].strip() and file_format == "csv"):
            continue
        if cols is None:
            cols = _Columns.resolve(columns, [c.strip() for c in row], path, label_optional=label_optional)
            continue
        text_cols = [c for c in (cols.text_a, cols.text_b) if c is not None]
        require_columns(row, max(text_cols) + 1, path, line, what)
        label = None
        if cols.label is not None:
            if int(cols.label) < len(row):
                label = row[int(cols.label)]
            elif not label_optional:
                require_columns(row, int(cols.label) + 1, path, line, what)
        yield line, row[int(cols.text_a)], None if cols.text_b is None else row[int(cols.text_b)], label


def _iter_jsonl(path: Path, columns: Sequence[ColumnRef | None], label_optional: bool) -> Iterator[tuple[int, str, str | None, object]]:
    def get(value: object, ref: ColumnRef, line: int, optional: bool) -> object:
        if isinstance(value, dict):
            key = str(ref)
            if key in value and value[key] is not None:
                return value[key]
        else:
            index = ref if isinstance(ref, int) else int(ref) if str(ref).isdigit() else None
            if index is None:
                raise InputError(f"column {ref!r} is a name but the line is a JSON array", path=path, line=line)
            if index < len(value) and value[index] is not None:  # type: ignore[arg-type]
                return value[index]  # type: ignore[index]
        if optional:
            return None
        raise InputError(f"missing {ref!r}", path=path, line=line)

    text_a_ref, text_b_ref, label_ref = columns
    for line, value in read_jsonl(path):
        text_a = scalar_text(get(value, text_a_ref, line, False), "text", path, line)  # type: ignore[arg-type]
        text_b = None
        if text_b_ref is not None:
            text_b = scalar_text(get(value, text_b_ref, line, False), "text", path, line)
        label = None if label_ref is None else get(value, label_ref, line, label_optional)
        yield line, text_a, text_b, label

