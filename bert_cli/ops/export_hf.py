"""``--export-hf DIR``: a model out of ``bert`` in the Hugging Face layout.

Two ways in, one writer (:mod:`bert_cli.engine.hf_export`):

- at the end of a run: ``bert finetune TASK ... --export-hf DIR`` (the weights the final
  evaluation used, labels from the run), ``bert finetune squad ... --export-hf DIR`` and
  ``bert pretrain ... --export-hf DIR`` (:func:`export_run_modules`, :func:`export_run_checkpoint`);
- after the fact: ``bert download --export-hf SOURCE DIR`` (:func:`export_model`), where SOURCE
  is a cached model NAME, a model folder (TF1 checkpoint or safetensors) or a run folder
  (``bert finetune`` / ``finetune squad`` / ``pretrain`` output, or its ``best/`` / ``export/``):
  its newest checkpoint, with the labels and casing the run recorded.

transformers then loads DIR with ``AutoModelFor...from_pretrained(DIR)`` /
``AutoTokenizer.from_pretrained(DIR)`` (sentence-transformers and keras-hub read the same
layout). The target is checked before any work (:func:`bert_cli.models.hf_files.check_export_target`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import console, rundir
from ..errors import NotFoundError
from ..modelconfig import read_model_config
from ..models.hf_files import HfExportSpec, check_export_target

__all__ = ["HfExportSpec", "export_model", "export_run_modules", "export_run_checkpoint", "spec_of_folder"]


def spec_of_folder(directory: Path | None, vocab_file: Path | None, do_lower_case: bool) -> HfExportSpec:
    """Labels and kind from a run folder's ``bert_run.json``, vocabulary and casing as resolved
    (the head itself follows the weights: ``cls/squad/*`` is a SQuAD run's)."""
    labels: tuple[str, ...] = ()
    kind = None
    info = rundir.load_run_info(directory) if directory is not None else None
    if info is not None:
        labels = tuple(str(label) for label in info.get("labels") or ())
        kind = info.get("kind")
    return HfExportSpec(vocab_file=vocab_file, do_lower_case=do_lower_case, labels=labels, kind=kind)


def _report(result: dict[str, Any]) -> dict[str, Any]:
    console.info(f"wrote the Hugging Face model folder {result['path']} ({result['architecture']}, "
                 f"{result['tensors']} tensors)")
    return result


def export_run_modules(modules: Any, target: str | os.PathLike, config, spec: HfExportSpec) -> dict[str, Any]:
    """At the end of a fine-tuning run: the model in memory (encoder + head)."""
    from ..engine.hf_export import export_modules

    return _report(export_modules(modules, target, config, spec))


def export_run_checkpoint(checkpoint: str, weights_format: str, target: str | os.PathLike, config,
                          spec: HfExportSpec) -> dict[str, Any]:
    """At the end of a pretraining run: its newest checkpoint."""
    from ..engine.hf_export import export_checkpoint

    return _report(export_checkpoint(checkpoint, weights_format, target, config, spec))


def export_model(source: str, target: str | os.PathLike, *, do_lower_case: bool | None = None,
                 force_casing: bool = False) -> dict[str, Any]:
    """``bert download --export-hf SOURCE DIR``: a cached model, model folder or run folder."""
    from ..models.policy import resolve_model_files
    from ..models.resolve import resolve_model

    # A vocabulary is optional (a pretraining run folder has none): tokenizer files when there is one.
    has_vocab = resolve_model(source, need_vocab=False).vocab_file is not None
    files = resolve_model_files(source, do_lower_case=do_lower_case, force_casing=force_casing, tokenizes=has_vocab)
    if files.checkpoint is None:
        raise NotFoundError(f"model {files.name} has no weights (no TF1 checkpoint, no model.safetensors)",
                            hint="a run folder has them once it has trained: bert finetune ... --do-train")
    check_export_target(target, keep=[files.directory] if files.directory is not None else [])
    config = read_model_config(files.config_file)
    spec = spec_of_folder(files.directory, files.vocab_file, files.do_lower_case)
    result = export_run_checkpoint(files.checkpoint, files.weights_format, Path(target), config, spec)
    result["name"] = files.name
    return result
