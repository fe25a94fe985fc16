"""``bert extract``: contextual features per token (the original extract_features.py)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from . import options


class ExtractFormat(str, Enum):
    jsonl = "jsonl"
    npz = "npz"


class Pooling(str, Enum):
    cls = "cls"
    mean = "mean"
    pooler = "pooler"


def extract(
    files: Optional[list[Path]] = typer.Argument(None, help="Input: one sentence or 'A ||| B' pair per line ('-' or nothing: stdin).", show_default=False),
    input_file: Optional[Path] = typer.Option(None, "--input-file", "-i", help="Input file (the original's flag; same as the argument)."),
    model: Optional[str] = options.MODEL,
    download: bool = options.DOWNLOAD,
    vocab_file: Optional[Path] = options.VOCAB_FILE,
    bert_config_file: Optional[Path] = options.BERT_CONFIG_FILE,
    init_checkpoint: Optional[str] = options.INIT_CHECKPOINT,
    do_lower_case: Optional[bool] = options.DO_LOWER_CASE,
    force_casing: bool = options.FORCE_CASING,
    layers: Optional[str] = typer.Option(None, "--layers", help="Comma list of layer indexes; negative from the top (default -1,-2,-3,-4; with --pooling: -1)."),
    max_seq_length: int = typer.Option(128, "--max-seq-length", min=3),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    output_format: ExtractFormat = typer.Option(ExtractFormat.jsonl, "--format", "-f", help="jsonl: the original's JSON lines; npz: compact float32 arrays (needs --output)."),
    pooling: Optional[Pooling] = typer.Option(None, "--pooling", help="One vector per line instead of per token: cls, mean (over real tokens) or pooler."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", "--output-file", help="Write here (atomically) instead of stdout."),
    device: str = options.DEVICE,
    precision: str = typer.Option("fp32", "--precision", help="fp32 (default, exact values) | bf16 | fp16 | auto."),
    xla: Optional[bool] = options.EXTRACT_XLA,
    use_tpu: bool = options.USE_TPU,
    tpu_name: Optional[str] = options.TPU_NAME,
    tpu_zone: Optional[str] = options.TPU_ZONE,
    gcp_project: Optional[str] = options.GCP_PROJECT,
    master: Optional[str] = options.MASTER,
    num_tpu_cores: Optional[int] = options.NUM_TPU_CORES,
    use_one_hot_embeddings: bool = options.USE_ONE_HOT_EMBEDDINGS,
) -> None:
    """Extract per-token hidden states (or pooled sentence vectors) from a BERT model.

    JSON lines identical in format to the original extract_features.py: linex_index,
    features[].token, layers[].index, values rounded to 6 decimals; in input order, streamed.
    """
    from .. import console
    from ..fileio import naming_errors
    from ..ops import extract as ex
    from . import original_flags

    device = original_flags.apply(
        device, use_tpu=use_tpu, tpu_name=tpu_name, master=master, tpu_zone=tpu_zone, gcp_project=gcp_project,
        num_tpu_cores=num_tpu_cores, use_one_hot_embeddings=use_one_hot_embeddings,
    )

    paths = [str(p) for p in (files or [])] + ([str(input_file)] if input_file else [])
    if model is not None and download:
        from ..models.resolve import resolve_model

        resolve_model(model, download=True)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")
    from .progress import count_lines, streaming

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
