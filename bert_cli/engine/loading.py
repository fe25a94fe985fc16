"""Build a bare encoder (:class:`BertModel`) and load its weights, whatever layout they come in.

:func:`load_encoder` is how ``bert extract`` (:mod:`bert_cli.ops.extract`) gets its model, from
the files of the one model policy (:func:`bert_cli.models.policy.resolve_model_files`). The
commands that add a head load through their engine module instead (``finetune``:
:func:`bert_cli.engine.classifier.load_initial_weights`, ``finetune squad``:
:mod:`bert_cli.engine.squad_model`, ``finetune ner``: :mod:`bert_cli.engine.token_classifier`,
``pretrain``: :mod:`bert_cli.engine.pretrain`; ``predict``
reads a run folder with :func:`bert_cli.ops.predict.load_classifier`), on the same checkpoint
readers (:mod:`bert_cli.engine.checkpoint`, :mod:`bert_cli.engine.hf_weights`)::

    config, model, report = load_encoder(model_files=resolve_model_files("base-uncased"))
    config, model, report = load_encoder(config_file="bert_config.json", init_checkpoint="DIR/bert_model.ckpt")
    config, model, report = load_encoder(config_file="hf/config.json", init_checkpoint="hf/model.safetensors")

- The config is a Google ``bert_config.json`` or a Hugging Face ``config.json``, told apart by
  their keys (HF files carry ``model_type`` / ``architectures`` / ``transformers_version``), so
  "gelu" keeps the meaning of the file it was read from (tanh for Google, erf for HF).
- The weights are a TF1 checkpoint (prefix, ``.index`` file or directory) or HF safetensors
  (``model.safetensors``, a sharded ``.index.json``, or a folder holding one), told apart by the
  path, or by ``model_files.weights_format``.
- Weight files are opened and checked (a damaged safetensors header, a missing or truncated TF1
  data file) before the model is built; damaged TF1 tensors fail their checksum when read, every
  one read before any is assigned (:mod:`bert_cli.engine.checkpoint_reader`).
- Every encoder weight must be present (:class:`CheckpointError` otherwise) except the pooler,
  which some Hugging Face exports drop: a missing pooler is re-initialised randomly, with a
  warning, and listed in ``report.missing``. Checkpoint weights the encoder does not use (MLM/NSP
  heads, classifier layers) and optimizer slots are reported by ``console.debug``.
- Without any weights (no ``init_checkpoint`` and no ``model_files``) the model keeps its random
  initialisation and the report is ``None`` (pretraining from scratch).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import tensorflow as tf

from .. import console
from ..errors import NotFoundError, UsageError
from ..modelconfig import BertConfig, read_model_config
from ..models.policy import weights_format_of
from .checkpoint import LoadReport, load_into, resolve_checkpoint
from .checkpoint_reader import BundleReader
from .model import BertModel, Initializer

__all__ = [
    "load_encoder", "pooler_missing", "POOLER_PREFIX",
]

POOLER_PREFIX = "bert/pooler/"


def _pick_sources(config_file, init_checkpoint, model_files) -> tuple[Path, str | None, str]:
    """``(config file, checkpoint or None, weights format)``; explicit arguments win."""
    if config_file is None and model_files is None:
        raise UsageError("load_encoder needs a config_file or model_files")
    config_path = Path(config_file if config_file is not None else model_files.config_file)
    if init_checkpoint is not None:
        return config_path, str(init_checkpoint), weights_format_of(init_checkpoint)
    if model_files is None:
        return config_path, None, "none"
    if model_files.weights_format == "none" or model_files.checkpoint is None:
        raise NotFoundError(
            f"model folder {model_files.directory} has no weights (no TF checkpoint, no model.safetensors)",
            hint=f"bert download --force {model_files.name}",
        )
    return config_path, str(model_files.checkpoint), model_files.weights_format


def load_encoder(
    *,
    config_file: str | os.PathLike | None = None,
    init_checkpoint: str | os.PathLike | None = None,
    model_files: Any = None,
    compute_dtype: Any = tf.float32,
    allow_missing: bool | Iterable[str] = False,
) -> tuple[BertConfig, BertModel, LoadReport | None]:
    """Build the encoder and load its weights; returns ``(config, model, report)``.

    ``model_files`` is a :class:`bert_cli.models.policy.ResolvedModel` (or anything with its
    ``config_file``, ``checkpoint``, ``weights_format``, ``directory``, ``name``); ``config_file`` /
    ``init_checkpoint`` override its fields. ``allow_missing`` (True, or name prefixes) lets
    encoder weights absent from the checkpoint keep a random initialisation instead of raising
    :class:`CheckpointError`. The report is None when no weights were loaded.
    """
    config_path, checkpoint, fmt = _pick_sources(config_file, init_checkpoint, model_files)
    config = read_model_config(config_path)
    if checkpoint is None:
        model = BertModel(config, compute_dtype=compute_dtype)
        console.debug(f"built {config.num_hidden_layers}-layer encoder with random weights (no checkpoint)")
        return config, model, None

    # Damaged or missing weight files fail here, before the model is built.
    if fmt == "hf":
        from .hf_weights import find_weights_file, read_hf_weights

        weights_file = find_weights_file(checkpoint)
        source: Any = read_hf_weights(weights_file)
        description: str | None = str(weights_file)
    else:
        source, description = resolve_checkpoint(checkpoint), None
        BundleReader(source)  # index readable, data files present and not truncated
    # Skip the (slow) random draws unless some weights may stay at their initial values.
    model = BertModel(config, random_init=bool(allow_missing), compute_dtype=compute_dtype)
    report = load_into(model, source, allow_missing=_allowed_prefixes(allow_missing), description=description)
    _init_missing_pooler(model, report)
    console.debug(report.summary())
    if report.optimizer:
        console.debug(f"set aside {len(report.optimizer)} optimizer variables (Adam slots, global_step)")
    return config, model, report


def _allowed_prefixes(allow_missing: bool | Iterable[str]) -> bool | tuple[str, ...]:
    if allow_missing is True:
        return True
    extra = () if allow_missing is False else tuple(allow_missing)
    return (POOLER_PREFIX, *extra)


def pooler_missing(report: LoadReport | None) -> bool:
    """True when the checkpoint had no pooler (it was initialised randomly)."""
    return report is not None and any(name.startswith(POOLER_PREFIX) for name in report.missing)


def _init_missing_pooler(model: BertModel, report: LoadReport) -> None:
    """Give a pooler the checkpoint lacked the original's random init (not zeros)."""
    if not pooler_missing(report):
        return
    init = Initializer(model.config.initializer_range)
    model.pooler.kernel.assign(init.normal(model.pooler.kernel.shape))
    model.pooler.bias.assign(init.zeros(model.pooler.bias.shape))
    console.warn(f"{report.source} has no pooler weights: the pooler was initialised randomly")
