"""``bert predict``: classify raw text with a fine-tuned run (JSONL or the original test_results.tsv)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

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


def predict(
    input_file: Path = typer.Argument(Path("-"), help="Text lines or 'A ||| B' pairs, or CSV/TSV/JSONL ('-': stdin)."),
    model: str = typer.Option(..., "--model", "-m", help="A `bert finetune` output dir (or its export/ or best/)."),
    input_format: Optional[InputFormat] = typer.Option(None, "--input-format", help="lines | csv | tsv | jsonl (default: from the file extension, else lines)."),
    text_a_column: Optional[str] = typer.Option(None, "--text-a-column", help="csv/tsv/jsonl: column of the text (name or 0-based index)."),
    text_b_column: Optional[str] = typer.Option(None, "--text-b-column", help="csv/tsv/jsonl: column of the second text."),
    header: bool = typer.Option(True, "--header/--no-header", help="csv/tsv: the first row is a header."),
    output_format: PredictFormat = typer.Option(PredictFormat.jsonl, "--format", "-f", help='jsonl: {"label", "probabilities"} per line ({"entities", "tokens", "tags"} for a NER run); tsv: the original test_results.tsv; conll: "token tag" lines (NER runs).'),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    max_seq_length: Optional[int] = typer.Option(None, "--max-seq-length", min=3, help="Default: the run's."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="A checkpoint of the run (default: best/, else the newest)."),
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
    with naming_errors("<stdout>"):
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
            texts=read_raw_lines(input_file) if plain_lines else None,  # a NER run's offsets point into them
        )
    console.debug(f"{summary.get('examples')} examples, {summary.get('examples_per_s') or 0.0:.1f} examples/s")
