"""``bert tokenize``: WordPiece-tokenize lines for shell pipelines (no TensorFlow)."""

from __future__ import annotations

import os
import stat
import sys
from enum import Enum
from pathlib import Path
from typing import Iterator, Optional

import typer

from ..ops import option_specs as S
from . import options


class Format(str, Enum):
    tokens = "tokens"
    ids = "ids"
    jsonl = "jsonl"


def _auto_workers(paths: list[Path]) -> int:
    """All cores for big regular files; one process for pipes and small inputs (lower latency)."""
    total = sum(p.stat().st_size for p in paths if str(p) != "-" and p.is_file())
    return max(1, os.cpu_count() or 1) if total >= 8 * 1024 * 1024 else 1


def _lines(paths: list[Path]) -> Iterator[bytes]:
    from ..fileio import require_file

    for path in paths:
        if str(path) == "-":
            yield from sys.stdin.buffer
            continue
        with open(require_file(path, "input file"), "rb") as fh:
            yield from fh


EPILOG = """Examples:

  echo 'Hello, world!' | bert tokenize

  bert tokenize -m cased-base -f jsonl --pairs pairs.txt > tokens.jsonl
"""


def tokenize(
    files: Optional[list[Path]] = typer.Argument(
        None, metavar="FILE", help="Input files, one text per line ('-' or nothing: stdin).", show_default=False
    ),
    vocab_file: Optional[Path] = options.VOCAB_FILE,
    do_lower_case: Optional[bool] = options.DO_LOWER_CASE,
    force_casing: bool = options.FORCE_CASING,
    model: Optional[str] = options.MODEL,
    output_format: Format = typer.Option(Format.tokens, "--format", "-f", metavar="tokens|ids|jsonl", rich_help_panel=options.OUTPUT_PANEL, help="tokens: WordPieces; ids: vocab ids; jsonl: tokens, ids and character offsets."),
    pairs: bool = options.flag("--pairs", panel=options.DATA_PANEL, help="Lines are 'A ||| B' sentence pairs (as extract_features.py)."),
    max_seq_length: Optional[int] = options.MAX_SEQ_LENGTH,
    keep_special_tokens: bool = options.flag("--keep-special-tokens", panel=options.DATA_PANEL, help="Keep [MASK], [SEP], ... in the text whole (the original splits them)."),
    workers: Optional[int] = options.option(S.WORKERS, "-j", default=None, panel=options.DEVICE_PANEL, help="Processes (default: all cores for inputs over 8 MB, else 1). Output order is kept."),
) -> None:
    """Tokenize text lines: one output line per input line, in order, streaming.

    Default vocabulary: Google's uncased BERT vocab, shipped with bert (works offline).
    """
    from ..ops.tokenize import TokenizeConfig, run_tokenize

    paths = list(files or [Path("-")])
    config = TokenizeConfig(
        vocab_file=vocab_file,
        do_lower_case=do_lower_case,
        model=model,
        force_casing=force_casing,
        output_format=output_format.value,
        pairs=pairs,
        max_seq_length=max_seq_length,
        keep_special_tokens=keep_special_tokens,
        workers=workers or _auto_workers(paths),
    )
    # Flush per line only for a live stdin (a terminal or a pipe); files and file redirects
    # are written in big blocks, which is 2-3x faster.
    interactive = any(str(p) == "-" for p in paths) and not stat.S_ISREG(os.fstat(0).st_mode)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")
    from .. import console
    from ..fileio import naming_errors
    from ..progress import streaming

    reads_stdin = any(str(p) == "-" for p in paths)
    total = None if reads_stdin else sum(p.stat().st_size for p in paths if p.is_file())
    with naming_errors("<stdout>"), streaming(reads_stdin=reads_stdin) as progress:
        summary = run_tokenize(config, _lines(paths), sys.stdout, flush=None if interactive else False,
                               progress=progress, total_bytes=total)
    console.debug(f"tokenized {summary.get('lines', 0)} lines")
