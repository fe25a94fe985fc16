"""``bert predict --model RUN_DIR``: a fine-tuned classifier on raw text, streamed (a NER run:
:mod:`bert_cli.ops.predict_ner`).

``RUN_DIR`` is the ``output_dir`` of ``bert finetune`` (or its ``export/`` or ``best/``
folder): ``bert_run.json`` says the task's labels, casing and ``max_seq_length``; the weights
come from ``best/`` when the run kept one, else the newest checkpoint (or ``checkpoint``).

Input examples come from :func:`bert_cli.text.predict_input.read_predict_input` (lines, ``A ||| B``
pairs, CSV/TSV/JSONL columns, stdin). The model is loaded once; examples are read, featurized
and run ``batch_size`` at a time and every result is written (and flushed) as soon as its
batch is done, in input order:

* ``jsonl`` (default): ``{"label": L, "probabilities": {label: p, ...}}`` per input;
  ``{"score": x}`` for regression; ``{"labels": [...], "probabilities": {...}}`` for
  multi-label (labels with p >= 0.5);
* ``tsv``: the original ``test_results.tsv`` lines (tab-separated probabilities).

Probabilities are the float32 values of the model, written with the shortest decimal that
reads back to the same float32 (so they equal the ``test_results.tsv`` / eval values).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from .. import console, rundir
from ..errors import ConfigError, NotFoundError, UsageError
from ..modelconfig import BertConfig
from ..text.classifier_features import convert_examples
from ..text.task_base import InputExample
from ..text.tokenization import FullTokenizer
from . import option_specs as S
from .option_specs import check_fields

__all__ = ["PredictConfig", "run", "FORMATS", "load_classifier", "LoadedClassifier"]

FORMATS = ("jsonl", "tsv")
RUN_HINT = "fine-tune first: bert finetune TASK --do-train --output-dir DIR, then --model DIR"


@dataclasses.dataclass(frozen=True)
class PredictConfig:
    """Options of ``bert predict``."""

    model: str  # a run folder (bert finetune's output_dir / export / best) or a cached name
    output_format: str = "jsonl"  # jsonl | tsv
    batch_size: int = S.PREDICT_BATCH_SIZE_LINES.field()
    max_seq_length: int | None = S.MAX_SEQ_LENGTH.field(None)  # default: the run's
    checkpoint: str | None = None  # explicit checkpoint prefix (default: best/, else latest)
    device: str = S.DEVICE.field()
    precision: str = S.PRECISION.field()
    xla: bool | None = S.XLA.field()

    def __post_init__(self) -> None:
        check_fields(self)  # each value's range, once (UsageError naming the flag)


@dataclasses.dataclass
class LoadedClassifier:
    """A fine-tuned run ready to predict."""

    directory: Path
    info: dict
    config: BertConfig
    tokenizer: FullTokenizer
    model: Any  # engine.classifier.ClassifierModel
    predictor: Any  # engine.classifier.Predictor
    checkpoint: str
    runtime: Any

    @property
    def labels(self) -> list[str]:
        return list(self.info.get("labels") or [])

    @property
    def kind(self) -> str:
        return str(self.info.get("kind", "classification"))


def _run_directory(model: str) -> tuple[Path, dict]:
    path = Path(model).expanduser()
    if not path.is_dir():
        from ..models.resolve import resolve_model

        path = resolve_model(model).directory
    info = rundir.load_run_info(path)
    if info is None:
        raise NotFoundError(f"{path} is not a fine-tuned classifier (no {rundir.RUN_FILE})", hint=RUN_HINT)
    return path, info


def _pick_checkpoint(directory: Path, explicit: str | None) -> str:
    from ..engine.checkpoint import resolve_checkpoint

    if explicit is not None:
        return resolve_checkpoint(explicit)
    from ..models.folder import find_checkpoint  # best/ when the run kept one

    prefix, fmt = find_checkpoint(directory)
    if prefix is None or fmt != "tf1":
        raise NotFoundError(f"no checkpoint in {directory}", hint=RUN_HINT)
    return prefix


def load_classifier(
    model: str,
    *,
    checkpoint: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    xla: bool | None = None,
    runtime=None,
) -> LoadedClassifier:
    """Load a fine-tuned run folder: config, tokenizer, model weights and a compiled forward."""
    directory, info = _run_directory(model)
    config_file = directory / str(info.get("bert_config_file", "bert_config.json"))
    vocab_file = directory / str(info.get("vocab_file", "vocab.txt"))
    for f, what in ((config_file, "bert_config.json"), (vocab_file, "vocab.txt")):
        if not f.is_file():
            raise NotFoundError(f"{directory} has no {what} (an incomplete run folder)", hint=RUN_HINT)
    config = BertConfig.from_json_file(config_file)
    prefix = _pick_checkpoint(directory, checkpoint)
    kind = str(info.get("kind", "classification"))
    num_labels = int(info.get("num_labels") or len(info.get("labels") or []) or 1)
    if kind != "regression" and len(info.get("labels") or []) != num_labels:
        raise ConfigError(f"{directory / rundir.RUN_FILE}: labels and num_labels disagree")

    from ..engine import classifier as engine
    from ..engine.checkpoint import load_into
    from ..engine.device import select_runtime

    if runtime is None:
        runtime = select_runtime(device, precision, xla)
        console.info(runtime.describe("predicting"))
    model_obj = engine.build_model(runtime, config, num_labels, kind=kind, seed=None, random_init=False)
    report = load_into([model_obj.bert, model_obj.head], prefix)
    console.debug(report.summary())
    tokenizer = FullTokenizer(vocab_file, do_lower_case=bool(info.get("do_lower_case", True)))
    predictor = engine.Predictor(model_obj, jit_compile=runtime.xla, padding_multiple=runtime.padding_multiple)
    return LoadedClassifier(directory, info, config, tokenizer, model_obj, predictor, prefix, runtime)


def _short_float(value: Any) -> float:
    """The shortest decimal that reads back to the same float32."""
    return float(str(np.float32(value)))


def format_json_line(kind: str, labels: list[str], output: Any) -> str:
    """One JSONL result (see the module docstring)."""
    if kind == "regression":
        return json.dumps({"score": _short_float(output)}, ensure_ascii=False) + "\n"
    probs = {label: _short_float(p) for label, p in zip(labels, np.asarray(output))}
    if kind == "multilabel":
        chosen = [label for label, p in zip(labels, np.asarray(output)) if p >= 0.5]
        return json.dumps({"labels": chosen, "probabilities": probs}, ensure_ascii=False) + "\n"
    best = labels[int(np.argmax(output))]
    return json.dumps({"label": best, "probabilities": probs}, ensure_ascii=False) + "\n"


def _batches(examples: Iterable[InputExample], size: int) -> Iterator[list[InputExample]]:
    it = iter(examples)
    while True:
        batch = list(itertools.islice(it, size))
        if not batch:
            return
        yield batch


def run(
    config: PredictConfig,
    inputs: Iterable[InputExample],
    out: IO[str],
    progress: Callable[[dict], None] | None = None,
    *,
    texts: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Predict every example of ``inputs`` into ``out`` (streamed, in order); returns counts
    and speed: ``{"examples", "seconds", "examples_per_s", "checkpoint", "format"}``.

    A NER run (``bert_run.json`` kind ``ner``) goes to :func:`bert_cli.ops.predict_ner.run`,
    which tags ``texts`` (the raw input lines, so that character offsets point into them), or
    the ``text_a`` of ``inputs`` when there are none.
    """
    from .finetune_ner import NER_KIND

    directory, info = _run_directory(config.model)
    if info.get("kind") == NER_KIND:
        from .predict_ner import run as run_ner

        lines = texts if texts is not None else (example.text_a for example in inputs)
        return run_ner(config, directory, info, _pick_checkpoint(directory, config.checkpoint), lines, out, progress)
    fmt = config.output_format.lower()
    if fmt not in FORMATS:
        raise UsageError(f"unknown output format {config.output_format!r} (use {' or '.join(FORMATS)})")
    loaded = load_classifier(
        config.model, checkpoint=config.checkpoint, device=config.device, precision=config.precision, xla=config.xla
    )
    max_seq_length = int(config.max_seq_length or loaded.info.get("max_seq_length") or 128)
    from ..engine.classifier import outputs_from_logits
    from ..engine.model import check_seq_length

    check_seq_length(loaded.config, max_seq_length)
    kind, labels = loaded.kind, loaded.labels
    started = time.perf_counter()
    count = 0
    for batch in _batches(inputs, config.batch_size):
        features = convert_examples(batch, loaded.tokenizer, max_seq_length, kind=kind, num_labels=max(len(labels), 1),
                                    with_labels=False)
        logits = loaded.predictor.logits(features.input_ids, features.input_mask, features.segment_ids)
        outputs = outputs_from_logits(kind, logits)
        for row in outputs:
            out.write(rundir.format_test_line(row) if fmt == "tsv" else format_json_line(kind, labels, row))
        out.flush()
        count += len(batch)
        if progress is not None:
            elapsed = time.perf_counter() - started
            progress({"phase": "predict", "examples": count, "examples_per_s": count / elapsed if elapsed > 0 else None,
                      "done": count, "unit": "examples"})
    seconds = time.perf_counter() - started
    rate = count / seconds if seconds > 0 and count else None
    if rate is not None:
        console.debug(f"predicted {count} examples in {seconds:.2f}s ({rate:.1f} examples/s)")
    return {
        "examples": count,
        "seconds": seconds,
        "examples_per_s": rate,
        "checkpoint": loaded.checkpoint,
        "format": fmt,
    }
