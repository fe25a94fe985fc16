"""``bert predict``: classify raw text with a fine-tuned run (JSONL or the original test_results.tsv)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ..ops import option_specs as S
from . import options


class PredictFormat(str, Enum):
    jsonl = "jsonl"
    tsv = "tsv"
    conll = "conll"


class InputFormat(str, Enum):
    lines = "lines"
    csv = "csv"
    tsv = "tsv"
    jsonl = "jsonl"


EPILOG = """Examples:

  echo 'a great movie' | bert predict -m runs/sst2

  bert predict test.tsv -m runs/mrpc --text-a-column 3 --text-b-column 4 -f tsv > test_results.tsv
"""


def predict(
    input_file: Path = typer.Argument(Path("-"), metavar="FILE", help="Text lines or 'A ||| B' pairs, or CSV/TSV/JSONL ('-': stdin)."),
    model: str = typer.Option(..., "--model", "-m", metavar="DIR", rich_help_panel=options.MODEL_PANEL, help="A `bert finetune` output dir (or its export/ or best/)."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", metavar="PATH", rich_help_panel=options.MODEL_PANEL, help="A checkpoint of the run (default: best/, else the newest)."),
    input_format: Optional[InputFormat] = typer.Option(None, "--input-format", metavar="FORMAT", rich_help_panel=options.DATA_PANEL, help="lines | csv | tsv | jsonl (default: from the file extension, else lines)."),
    text_a_column: Optional[str] = typer.Option(None, "--text-a-column", metavar="COLUMN", rich_help_panel=options.DATA_PANEL, help="csv/tsv/jsonl: column of the text (name or 0-based index)."),
    text_b_column: Optional[str] = typer.Option(None, "--text-b-column", metavar="COLUMN", rich_help_panel=options.DATA_PANEL, help="csv/tsv/jsonl: column of the second text."),
    header: bool = options.flag("--header/--no-header", default=True, panel=options.DATA_PANEL, help="csv/tsv: the first row is a header."),
    max_seq_length: Optional[int] = options.option(S.MAX_SEQ_LENGTH, default=None, panel=options.DATA_PANEL, help="Default: the run's."),
    output_format: PredictFormat = typer.Option(PredictFormat.jsonl, "--format", "-f", metavar="jsonl|tsv|conll", rich_help_panel=options.OUTPUT_PANEL, help='jsonl: {"label", "probabilities"} per line ({"entities", "tokens", "tags"} for a NER run); tsv: the original test_results.tsv; conll: "token tag" lines (NER runs).'),
    batch_size: int = options.option(S.PREDICT_BATCH_SIZE_LINES, panel=options.DEVICE_PANEL, help="Lines per model call."),
    device: str = options.DEVICE,
    precision: str = options.PRECISION,
    xla: Optional[bool] = options.XLA,
) -> None:
    """Predict labels for raw text, one output line per input line, in order, streaming."""
    from .. import console
    from ..fileio import naming_errors
    from ..ops.predict import PredictConfig, run
    from ..text.predict_input import guess_format, read_predict_input, read_raw_lines

    def column(value: Optional[str]):
        return int(value) if value is not None and value.isdigit() else value

    examples = read_predict_input(
        str(input_file),
        input_format.value if input_format else None,
        text_a_column=column(text_a_column),
        text_b_column=column(text_b_column),
        header=header,
    )
    plain_lines = (input_format.value if input_format else guess_format(input_file)) == "lines"
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")
    from ..progress import streaming

    with naming_errors("<stdout>"), streaming(reads_stdin=str(input_file) == "-") as progress:
        summary = run(
            PredictConfig(
                model=model,
                output_format=output_format.value,
                batch_size=batch_size,
                max_seq_length=max_seq_length,
                checkpoint=checkpoint,
                device=device,
                precision=precision,
                xla=xla,
            ),
            examples,
            sys.stdout,
            progress,
            texts=read_raw_lines(input_file) if plain_lines else None,  # a NER run's offsets point into them
        )
    console.debug(f"{summary.get('examples')} examples, {summary.get('examples_per_s') or 0.0:.1f} examples/s")
