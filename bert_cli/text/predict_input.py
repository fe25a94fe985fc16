"""The raw input of ``bert predict`` (:func:`read_predict_input`). Pure Python.

Plain lines (``A ||| B`` pairs, the original ``extract_features.py`` regex) or CSV/TSV/JSONL
with column options; streamed, no labels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import NotFoundError, UsageError
from .lines import iter_text_lines, split_pair
from .tables import ColumnRef, iter_records, parse_column
from .task_base import InputExample
from .task_names import GENERIC_FORMATS


def read_text_lines(path: str | Path, *, skip_blank: bool = False) -> Iterator[InputExample]:
    """One example per line, as the original ``extract_features.py`` ``read_examples``.

    Each line is stripped; ``A ||| B`` (regex ``^(.*) \\|\\|\\| (.*)$``) gives a pair. guids are
    ``"0"``, ``"1"``, ... in order. Blank lines are kept as empty examples (so output line i
    matches input line i, as in the original) unless ``skip_blank``.
    """
    unique_id = 0
    for text in iter_text_lines(path, strip_bom=True):
        line = text.strip()
        if skip_blank and not line:
            continue
        text_a, text_b = split_pair(line)
        yield InputExample(str(unique_id), text_a, text_b)
        unique_id += 1


def read_raw_lines(path: str | Path) -> Iterator[str]:
    """Each line of a text file (``"-"``: stdin) exactly as written, without its line ending
    (``\\n`` or ``\\r\\n``): not stripped, no ``|||`` pairs (``bert predict`` on a NER run,
    whose character offsets point into the line)."""
    for text in iter_text_lines(path, strip_bom=True):
        yield text.removesuffix("\n").removesuffix("\r")


def guess_format(path: str | Path) -> str:
    """``csv``/``tsv``/``jsonl`` from the file extension, else ``lines``."""
    suffix = Path(str(path)).suffix.lower()
    return {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "lines")


def read_predict_input(
    path: str | Path,
    file_format: str | None = None,
    *,
    text_a_column: ColumnRef | None = None,
    text_b_column: ColumnRef | None = None,
    header: bool = True,
    skip_blank: bool = False,
) -> Iterator[InputExample]:
    """Stream unlabeled examples for ``bert predict`` (``path`` ``"-"`` = stdin).

    ``file_format``: ``lines`` (see :func:`read_text_lines`), ``csv``, ``tsv`` or ``jsonl``;
    ``None`` guesses from the extension. Table formats need ``text_a_column``; guids count
    examples from ``"0"``. Raises NotFoundError now for a missing file.
    """
    fmt = (file_format or guess_format(path)).lower()
    if fmt not in ("lines",) + GENERIC_FORMATS:
        raise UsageError(f"unknown input format {fmt!r} (use lines, csv, tsv or jsonl)")
    if str(path) != "-" and not Path(path).is_file():
        raise NotFoundError(f"input file not found: {path}")
    if fmt == "lines":
        if text_a_column is not None or text_b_column is not None:
            raise UsageError("column options need a csv, tsv or jsonl input (--input-format)")
        return read_text_lines(path, skip_blank=skip_blank)
    if text_a_column is None:
        raise UsageError(f"a {fmt} input needs --text-a-column")
    columns = (parse_column(text_a_column), parse_column(text_b_column), None)
    if fmt == "jsonl":
        header = False
    return _table_examples(Path(path), fmt, columns, header)


def _table_examples(path: Path, fmt: str, columns: Sequence[ColumnRef | None], header: bool) -> Iterator[InputExample]:
    for n, (_line, text_a, text_b, _label) in enumerate(
        iter_records(path, fmt, columns, header=header, label_optional=True)
    ):
        yield InputExample(str(n), text_a, text_b)
