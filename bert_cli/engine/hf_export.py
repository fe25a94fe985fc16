"""Write a model in the Hugging Face layout (``model.safetensors`` + ``config.json`` + tokenizer).

The writing twin of :mod:`bert_cli.engine.hf_weights`: every TF1 name goes to its transformers
name through the SAME table (:data:`~bert_cli.engine.hf_weights.HF_TABLE`, inverted here, Linear
kernels transposed back to torch's [out, in]), so reading an export back gives the very tensors
that were written. Encoder weights get transformers' ``bert.`` prefix under a task head (no
prefix for a plain ``BertModel``); the head follows the weights and the run
(:func:`bert_cli.models.hf_files.architecture_for`):

- ``BertForSequenceClassification`` / ``BertForTokenClassification``: ``classifier.weight``
  [C, H] and ``classifier.bias`` from the top-level ``output_weights`` / ``output_bias``;
- ``BertForQuestionAnswering``: ``qa_outputs.*`` from ``cls/squad/*``;
- (transformers' token-level classes have no pooler: ``bert/pooler/*`` stays out of those two);
- ``BertForPreTraining``: ``cls.predictions.transform.*``, ``cls.predictions.bias`` and
  ``cls.seq_relationship.*``. The tied ``cls.predictions.decoder.{weight,bias}``
  (:data:`~bert_cli.engine.hf_weights.HF_TIED`) are not written, as transformers'
  ``save_pretrained`` leaves them out: ``from_pretrained`` ties them to the word embeddings and
  ``cls.predictions.bias`` (a copy would add a [V, H] tensor, 94 MB for BERT-Base);
- ``BertModel``: the encoder and pooler.

Weights of another head are left out (said on stderr); Adam slots and ``global_step`` never go.
Files are written in a temporary folder beside the target, which then replaces it in one rename
(:func:`bert_cli.fileio.atomic_directory`): a failure leaves no partial export behind.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import console
from ..errors import CheckpointError
from ..fileio import atomic_directory
from ..modelconfig import BertConfig
from ..models import hf_files
from ..models.hf_files import (
    ENCODER,
    PRETRAINING,
    QA,
    SEQUENCE,
    TOKEN,
    WEIGHTS_FILE,
    HfExportSpec,
)
from .hf_weights import HF_TABLE

__all__ = ["tf1_to_hf", "hf_state_dict", "write_hf_model", "export_modules", "export_checkpoint", "read_weights"]

_FIXED = {tf1: (hf, t) for hf, tf1, t in HF_TABLE if "{i}" not in hf}
_PER_LAYER = {tf1.split("{i}/", 1)[1]: (hf, t) for hf, tf1, t in HF_TABLE if "{i}" in hf}
_LAYER = re.compile(r"^bert/encoder/layer_(\d+)/(.+)$")
ENCODER_SCOPE = "bert/"
# TF1 name prefixes of each head's weights (besides the encoder's ``bert/...``).
HEAD_SCOPES = {
    SEQUENCE: ("output_weights", "output_bias"),
    TOKEN: ("output_weights", "output_bias"),
    QA: ("cls/squad/",),
    PRETRAINING: ("cls/predictions/", "cls/seq_relationship/"),
    ENCODER: (),
}
# Heads whose transformers class has no pooler (``add_pooling_layer=False``): it stays out.
WITHOUT_POOLER = (TOKEN, QA)
POOLER_SCOPE = "bert/pooler/"
# transformers names a head must have.
HEAD_REQUIRED = {
    SEQUENCE: ("classifier.weight", "classifier.bias"),
    TOKEN: ("classifier.weight", "classifier.bias"),
    QA: ("qa_outputs.weight", "qa_outputs.bias"),
    PRETRAINING: ("cls.predictions.bias", "cls.predictions.transform.dense.weight", "cls.seq_relationship.weight"),
    ENCODER: (),
}


def tf1_to_hf(name: str) -> tuple[str, bool] | None:
    """``(HF name without the bert. prefix, transpose)`` for a TF1 weight name; None when the
    table has no row for it (the exact inverse of :func:`bert_cli.engine.hf_weights.hf_to_tf1`)."""
    if name in _FIXED:
        return _FIXED[name]
    match = _LAYER.match(name)
    if match and match.group(2) in _PER_LAYER:
        hf, transpose = _PER_LAYER[match.group(2)]
        return hf.format(i=int(match.group(1))), transpose
    return None


def hf_state_dict(tensors: Mapping[str, Any], architecture: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """``({transformers name: float32 array}, left-out TF1 names)`` for one architecture."""
    from .checkpoint import is_optimizer_name

    prefix = "" if architecture == ENCODER else "bert."
    scopes = HEAD_SCOPES[architecture]
    out: dict[str, np.ndarray] = {}
    left_out: list[str] = []
    for name in sorted(tensors):
        if is_optimizer_name(name):
            continue
        encoder = name.startswith(ENCODER_SCOPE)
        if architecture in WITHOUT_POOLER and name.startswith(POOLER_SCOPE):
            continue  # trained by no one here, and not part of the transformers class
        if not encoder and not name.startswith(scopes):
            left_out.append(name)
            continue
        mapped = tf1_to_hf(name)
        if mapped is None:
            raise CheckpointError(f"no Hugging Face name for the weight {name!r} (not a BERT weight bert knows)")
        hf, transpose = mapped
        array = np.asarray(tensors[name], dtype=np.float32)
        out[(prefix if encoder else "") + hf] = np.ascontiguousarray(array.T if transpose else array)
    missing = [name for name in HEAD_REQUIRED[architecture] if name not in out]
    if missing:
        raise CheckpointError(f"cannot export a {architecture}: the weights have no {', '.join(missing)}")
    if not any(name.startswith(prefix + "embeddings.") for name in out):
        raise CheckpointError("cannot export: the weights have no BERT encoder (bert/embeddings/...)")
    return out, left_out


def _check_shapes(config: BertConfig, state: Mapping[str, np.ndarray], prefix: str) -> None:
    """The config must describe the weights (transformers would refuse them later)."""
    word = state.get(prefix + "embeddings.word_embeddings.weight")
    want = (config.vocab_size, config.hidden_size)
    if word is not None and tuple(word.shape) != want:
        raise CheckpointError(f"the word embeddings are {list(word.shape)} but the config says {list(want)}",
                              hint="the bert_config.json does not match these weights")
    layers = {int(m.group(1)) for m in (re.match(rf"^{re.escape(prefix)}encoder\.layer\.(\d+)\.", n) for n in state) if m}
    if layers and len(layers) != config.num_hidden_layers:
        raise CheckpointError(f"the weights have {len(layers)} layers but the config says {config.num_hidden_layers}",
                              hint="the bert_config.json does not match these weights")


def write_hf_model(
    tensors: Mapping[str, Any], path: str | os.PathLike, config: BertConfig, spec: HfExportSpec,
    *, architecture: str | None = None,
) -> dict[str, Any]:
    """Write ``{TF1 name: array}`` as a Hugging Face model folder at ``path`` (atomically; an
    earlier folder there is replaced). Returns what was written (path, architecture, files)."""
    from safetensors.numpy import save

    arch = architecture or hf_files.architecture_for(tensors, spec.kind)
    state, left_out = hf_state_dict(tensors, arch)
    _check_shapes(config, state, "" if arch == ENCODER else "bert.")
    num_labels = int(state["classifier.weight"].shape[0]) if arch in (SEQUENCE, TOKEN) else None
    config_json = hf_files.hf_config(config, arch, spec, num_labels)
    if left_out:
        console.info(f"not exported with the {arch} head: {', '.join(left_out[:4])}"
                     + (f" ... ({len(left_out)} weights)" if len(left_out) > 4 else ""))
    target = Path(path)
    with atomic_directory(target) as tmp:
        # bytes, then an ordinary file (safetensors' own save_file makes it private, 0600)
        (tmp / WEIGHTS_FILE).write_bytes(save(state, metadata={"format": "pt"}))
        files = [WEIGHTS_FILE, *hf_files.write_text_files(tmp, config_json, spec, config.max_position_embeddings)]
    if spec.vocab_file is None:
        console.warn(f"{target}: no vocabulary known, so no vocab.txt / tokenizer_config.json: copy the model's "
                     "vocab.txt there to load a tokenizer")
    return {"path": str(target), "architecture": arch, "tensors": len(state), "files": files}


def export_modules(modules: Any, path: str | os.PathLike, config: BertConfig, spec: HfExportSpec) -> dict[str, Any]:
    """Export a model in memory (encoder and heads, e.g. ``[model.bert, model.head]``)."""
    from .checkpoint import model_tensors

    return write_hf_model(model_tensors(modules), path, config, spec)


def read_weights(checkpoint: str, weights_format: str) -> dict[str, np.ndarray]:
    """``{TF1 name: array}`` of a TF1 checkpoint (without Adam slots) or HF safetensors."""
    if weights_format == "hf":
        from .hf_weights import read_hf_weights

        return read_hf_weights(checkpoint)
    from .checkpoint import is_optimizer_name, list_checkpoint, read_checkpoint

    names = [n for n in list_checkpoint(checkpoint) if not is_optimizer_name(n)]
    return read_checkpoint(checkpoint, names)


def export_checkpoint(
    checkpoint: str, weights_format: str, path: str | os.PathLike, config: BertConfig, spec: HfExportSpec
) -> dict[str, Any]:
    """Export the weights of a checkpoint on disk (TF1 prefix/folder, or safetensors)."""
    result = write_hf_model(read_weights(checkpoint, weights_format), path, config, spec)
    result["source"] = str(checkpoint)
    return result
