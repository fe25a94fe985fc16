"""``bert extract``: contextual features per token (the original extract_features.py)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ..ops import option_specs as S
from . import options


class ExtractFormat(str, Enum):
    jsonl = "jsonl"
    npz = "npz"


class Pooling(str, Enum):
    cls = "cls"
    mean = "mean"
    pooler = "pooler"


EPILOG = """Examples:

  echo 'Hello world ||| Second sentence' | bert extract -m uncased-base --layers -1

  bert extract sentences.txt -m uncased-base --pooling mean -f npz -o vectors.npz
"""


def extract(
    files: Optional[list[Path]] = typer.Argument(None, metavar="FILE", help="Input: one sentence or 'A ||| B' pair per line ('-' or nothing: stdin).", show_default=False),
    input_file: Optional[Path] = typer.Option(None, "--input-file", "-i", metavar="FILE", rich_help_panel=options.DATA_PANEL, help="Input file (the original's flag; same as the argument)."),
    max_seq_length: int = options.option(S.MAX_SEQ_LENGTH, panel=options.DATA_PANEL, help="Tokens per line, with [CLS]/[SEP]."),
    model: Optional[str] = options.MODEL,
    download: bool = options.DOWNLOAD,
    vocab_file: Optional[Path] = options.VOCAB_FILE,
    bert_config_file: Optional[Path] = options.BERT_CONFIG_FILE,
    init_checkpoint: Optional[str] = options.INIT_CHECKPOINT,
    do_lower_case: Optional[bool] = options.DO_LOWER_CASE,
    force_casing: bool = options.FORCE_CASING,
    layers: Optional[str] = typer.Option(None, "--layers", metavar="LIST", rich_help_panel=options.OUTPUT_PANEL, help="Comma list of layer indexes; negative from the top (default -1,-2,-3,-4; with --pooling: -1)."),
    pooling: Optional[Pooling] = typer.Option(None, "--pooling", metavar="cls|mean|pooler", rich_help_panel=options.OUTPUT_PANEL, help="One vector per line instead of per token: cls, mean (over real tokens) or pooler."),
    output_format: ExtractFormat = typer.Option(ExtractFormat.jsonl, "--format", "-f", metavar="jsonl|npz", rich_help_panel=options.OUTPUT_PANEL, help="jsonl: the original's JSON lines; npz: compact float32 arrays (needs --output)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", "--output-file", metavar="FILE", rich_help_panel=options.OUTPUT_PANEL, help="Write here (atomically) instead of stdout."),
    batch_size: int = options.option(S.EXTRACT_BATCH_SIZE, panel=options.DEVICE_PANEL, help="Lines per model call."),
    device: str = options.DEVICE,
    precision: str = options.option(S.EXTRACT_PRECISION, metavar="NAME", panel=options.DEVICE_PANEL, help="fp32 (default, exact values) | bf16 | fp16 | auto."),
    xla: Optional[bool] = options.XLA,
) -> None:
    """Extract per-token hidden states (or pooled sentence vectors) from a BERT model.

    JSON lines identical in format to the original extract_features.py: linex_index,
    features[].token, layers[].index, values rounded to 6 decimals; in input order, streamed.
    """
    from .. import console
    from ..fileio import naming_errors
    from ..ops import extract as ex

    paths = [str(p) for p in (files or [])] + ([str(input_file)] if input_file else [])
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")
    from ..progress import count_lines, streaming

    last = [0]

    def periodic(event: dict) -> None:
        if event.get("done", 0) - last[0] >= 1000:
            last[0] = event["done"]
            console.info(f"{event['done']} lines, {event.get('lines_per_s') or 0.0:.1f} lines/s")

    sources = paths or ["-"]
    total = None if "-" in sources else count_lines(sources)
    with naming_errors("<stdout>"), streaming(reads_stdin=total is None, lines=periodic, data_on_stdout=output is None) as phases:
        def progress(event: dict) -> None:
            phases({**event, "phase": "extract", "done": event.get("lines", 0), "total": total, "unit": "lines"})

        summary = ex.run(
            ex.ExtractConfig(
                model=model,
                vocab_file=vocab_file,
                bert_config_file=bert_config_file,
                init_checkpoint=init_checkpoint,
                do_lower_case=do_lower_case,
                force_casing=force_casing,
                download=download,
                layers=layers,
                max_seq_length=max_seq_length,
                batch_size=batch_size,
                output_format=output_format.value,
                pooling=pooling.value if pooling else None,
                output=output,
                device=device,
                precision=precision,
                xla=xla,
            ),
            ex.read_input_lines(sources),
            sys.stdout,
            progress=progress,
        )
    console.debug(f"{summary.get('lines')} lines, {summary.get('lines_per_s') or 0.0:.1f} lines/s")
