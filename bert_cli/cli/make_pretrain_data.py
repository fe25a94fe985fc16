"""``bert make-pretrain-data``: masked-LM / next-sentence TFRecords from raw text (no TensorFlow)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from ..ops import option_specs as S
from . import options


def _progress():
    """A bar per phase on a terminal, else throttled one-line progress on stderr (each line says
    only what is known in its phase)."""
    from .. import console
    from ..progress import Phases

    last = [0.0]

    def show(event: dict) -> None:
        now = time.monotonic()
        if event.get("phase") != "done" and now - last[0] < 2.0:
            return
        last[0] = now
        console.info(progress_line(event))

    phases = Phases(lines=show, summaries=False)

    def progress(event: dict) -> None:
        phases({**event, **_counts(event)})

    return phases, progress


def _counts(event: dict) -> dict:
    """``done``/``total``/``unit`` of a make-pretrain-data event (for its bar)."""
    phase = event.get("phase")
    if phase == "read":
        return {"done": event.get("bytes", 0), "unit": "bytes"}
    if phase == "create":
        return {"done": event.get("documents", 0), "total": event.get("total_documents"), "unit": "documents"}
    if phase == "write":
        return {"done": event.get("instances", 0), "total": event.get("total_instances"), "unit": "instances"}
    if phase == "shard":
        return {"done": event.get("documents", 0), "unit": "documents"}
    return {}


def progress_line(event: dict) -> str:
    """The progress line of one event of :func:`bert_cli.ops.make_pretrain_data.run`."""
    phase, docs, made = event.get("phase", ""), event.get("documents", 0), event.get("instances", 0)
    speed = f"{event.get('mb_per_s', 0.0):.2f} MB/s"
    if phase == "read":
        return f"reading: {docs} documents, {speed}"
    if phase == "create":
        return f"making instances: {docs}/{event.get('total_documents', '?')} documents, {made} instances"
    if phase == "write":
        return f"writing: {made}/{event.get('total_instances', '?')} instances"
    if phase == "shard":
        return f"shard {event.get('shards', 0)}: {docs} documents, {made} instances written, {speed}"
    return f"{phase}: {docs} documents, {made} instances, {speed}"


EPILOG = """Examples:

  bert make-pretrain-data -o demo.tfrecord

  bert make-pretrain-data -i 'corpus/*.txt' -m uncased-base -j 8 -o 'shards/out-%05d.tfrecord'
"""


def make_pretrain_data(
    input_file: Optional[list[str]] = typer.Option(None, "--input-file", "-i", metavar="FILES", rich_help_panel=options.DATA_PANEL, help="Text: one sentence per line, blank lines between documents. Files, globs or comma lists; '-' for stdin. Repeatable. Default: the bundled sample text (offline demo)."),
    output_file: list[str] = typer.Option(..., "--output-file", "-o", metavar="FILES", rich_help_panel=options.OUTPUT_PANEL, help="TFRecord file(s) (comma list: round-robin), or a pattern such as out-%05d.tfrecord (sharded mode)."),
    vocab_file: Optional[Path] = options.VOCAB_FILE,
    do_lower_case: Optional[bool] = options.DO_LOWER_CASE,
    force_casing: bool = options.FORCE_CASING,
    model: Optional[str] = options.MODEL,
    max_seq_length: int = options.option(S.PRETRAIN_DATA_MAX_SEQ_LENGTH, panel=options.DATA_PANEL, help="Tokens per instance, with [CLS] and two [SEP]."),
    max_predictions_per_seq: int = options.option(S.MAX_PREDICTIONS_PER_SEQ, panel=options.DATA_PANEL, help="Most masked tokens per instance."),
    masked_lm_prob: float = options.option(S.MASKED_LM_PROB, panel=options.DATA_PANEL, help="Share of the tokens to mask."),
    short_seq_prob: float = options.option(S.SHORT_SEQ_PROB, panel=options.DATA_PANEL, help="Share of instances made shorter than --max-seq-length."),
    dupe_factor: int = options.option(S.DUPE_FACTOR, panel=options.DATA_PANEL, help="Passes over the input, each with other masks."),
    random_seed: int = options.option(S.RANDOM_SEED, panel=options.DATA_PANEL, help="Seed of the masks and sentence pairs."),
    do_whole_word_mask: bool = options.flag("--do-whole-word-mask", panel=options.DATA_PANEL, help="Mask whole words (all ## pieces of a word together)."),
    workers: int = options.option(S.WORKERS, "-j", panel=options.DEVICE_PANEL, help="Processes. >1 selects the sharded, bounded-memory mode."),
    num_output_shards: Optional[int] = options.option(S.NUM_OUTPUT_SHARDS, panel=options.OUTPUT_PANEL, help="Sharded mode: number of output files."),
    shard_size_mb: float = options.option(S.SHARD_SIZE_MB, panel=options.OUTPUT_PANEL, help="Sharded mode: millions of characters of text per shard. The output depends only on it and --random-seed."),
    num_workers_total: Optional[int] = options.option(S.NUM_WORKERS_TOTAL, panel=options.DEVICE_PANEL, help="Several machines, no coordinator: N machines each write their part of one shard set (shard k on worker k % N). Needs --worker-index and an output pattern; give all the same corpus and options."),
    worker_index: Optional[int] = options.option(S.WORKER_INDEX, panel=options.DEVICE_PANEL, help="This machine's part, 0 <= I < --num-workers-total; `bert pretrain` takes the set once all N parts are there."),
    json_output: bool = options.JSON,
) -> None:
    """Create pretraining TFRecords exactly as the original create_pretraining_data.py.

    The default mode reproduces the original's instances bit for bit (and, like it, holds the
    corpus in memory). --workers N, --num-output-shards K or an output pattern select the
    sharded mode: bounded memory, parallel, deterministic for a given seed and shard size, with
    random next sentences and shuffling drawn within each shard. --num-workers-total N
    --worker-index I split one sharded run (output pattern) across N machines.
    """
    from .. import console
    from ..ops.make_pretrain_data import MakePretrainDataConfig, run

    if not input_file:
        from ..resources import path as resource_path

        input_file = [str(resource_path("sample_text.txt"))]
        console.info(f"no --input-file: using the bundled sample text {input_file[0]}")
    phases, progress = _progress()
    with phases:
        summary = run(
            MakePretrainDataConfig(
                input_files=tuple(input_file),
                output_files=tuple(output_file),
                vocab_file=vocab_file,
                do_lower_case=do_lower_case,
                model=model,
                force_casing=force_casing,
                max_seq_length=max_seq_length,
                max_predictions_per_seq=max_predictions_per_seq,
                masked_lm_prob=masked_lm_prob,
                short_seq_prob=short_seq_prob,
                dupe_factor=dupe_factor,
                random_seed=random_seed,
                do_whole_word_mask=do_whole_word_mask,
                workers=workers,
                num_output_shards=num_output_shards,
                shard_size_mb=shard_size_mb,
                num_workers_total=num_workers_total,
                worker_index=worker_index,
            ),
            progress=progress,
        )
    if json_output:
        typer.echo(json.dumps(summary))
        return
    part = ""
    if summary.get("num_workers_total") is not None:
        part = (f" (worker {summary['worker_index']} of {summary['num_workers_total']}: {summary.get('shards')}"
                f" of the {summary.get('total_shards')} shards)")
    console.info(
        f"wrote {summary.get('instances')} instances ({summary.get('tokens')} tokens, "
        f"{summary.get('masked')} masked) to {len(summary.get('files', []))} file(s){part}"
    )
    for path in summary.get("files", []):
        typer.echo(path)
