"""The pure-Python side of a Hugging Face export: ``config.json``, tokenizer files, the target.

A model folder in the Hugging Face layout is ``model.safetensors`` (the tensors:
:mod:`bert_cli.engine.hf_export`) plus what this module writes:

========================  =====================================================================
``config.json``           :meth:`BertConfig.to_hf_config` + ``architectures`` (the head, below);
                          a classifier adds ``id2label``/``label2id`` (the run's labels) and
                          ``problem_type``
``vocab.txt``             the model's WordPiece vocabulary, as it is
``tokenizer_config.json`` ``BertTokenizer`` with the run's / model's ``do_lower_case``
``special_tokens_map.json`` ``[UNK] [SEP] [PAD] [CLS] [MASK]``
========================  =====================================================================

The head (transformers' class in ``architectures``) follows the weights and the run:

==============================  ===============================================================
``BertForSequenceClassification``  top-level ``output_weights``/``output_bias`` (``bert finetune``
                                   classification, regression, multi-label)
``BertForTokenClassification``     the same tensors, a run of kind ``ner`` (one tag per token)
``BertForQuestionAnswering``       ``cls/squad/*`` (``bert finetune squad``)
``BertForPreTraining``             ``cls/predictions/*`` + ``cls/seq_relationship/*`` (``bert
                                   pretrain``, Google's released checkpoints)
``BertModel``                      the encoder alone
==============================  ===============================================================

Pure Python, no TensorFlow.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import UsageError
from ..fileio import check_output_dir
from ..modelconfig import BertConfig

__all__ = [
    "HfExportSpec", "ARCHITECTURES", "TOKEN_KINDS", "architecture_for", "hf_config", "tokenizer_config",
    "write_text_files", "check_export_target", "WEIGHTS_FILE",
]

WEIGHTS_FILE = "model.safetensors"
SEQUENCE = "BertForSequenceClassification"
TOKEN = "BertForTokenClassification"
QA = "BertForQuestionAnswering"
PRETRAINING = "BertForPreTraining"
ENCODER = "BertModel"
ARCHITECTURES = (SEQUENCE, TOKEN, QA, PRETRAINING, ENCODER)
TOKEN_KINDS = ("ner", "token_classification", "tagging")  # run kinds with one label per token
_PROBLEM_TYPES = {
    "classification": "single_label_classification",
    "regression": "regression",
    "multilabel": "multi_label_classification",
}
SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                  "mask_token": "[MASK]"}
_EXPORT_FILES = frozenset({WEIGHTS_FILE, "config.json", "vocab.txt", "tokenizer_config.json",
                           "special_tokens_map.json"})


@dataclass(frozen=True)
class HfExportSpec:
    """What an export needs besides the weights: the vocabulary and casing, and for a task head
    its labels and kind (``classification`` | ``regression`` | ``multilabel`` | ``ner`` |
    ``squad``; None for a pretraining or encoder export)."""

    vocab_file: Path | None
    do_lower_case: bool
    labels: tuple[str, ...] = ()
    kind: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # more config.json keys (e.g. bert_cli facts)


def architecture_for(names: Iterable[str], kind: str | None = None) -> str:
    """transformers' class for a set of TF1 weight names (and the run's kind)."""
    names = set(names)
    if kind == "squad" or any(n.startswith("cls/squad/") for n in names):
        return QA
    if kind in TOKEN_KINDS:
        return TOKEN
    if kind in _PROBLEM_TYPES or "output_weights" in names:
        return SEQUENCE
    if any(n.startswith("cls/predictions/") for n in names) and any(n.startswith("cls/seq_relationship/") for n in names):
        return PRETRAINING
    return ENCODER


def hf_config(config: BertConfig, architecture: str, spec: HfExportSpec, num_labels: int | None = None) -> dict:
    """The ``config.json`` mapping of an export (labels from the run; ``num_labels`` from the head
    when the run named none, e.g. regression's one output)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}")
    data = config.to_hf_config()
    data["architectures"] = [architecture]
    data["pad_token_id"] = 0
    if architecture in (SEQUENCE, TOKEN):
        labels = list(spec.labels)
        count = num_labels if num_labels is not None else len(labels)
        if len(labels) != count:
            labels = [f"LABEL_{i}" for i in range(count)]
        data["id2label"] = {str(i): str(label) for i, label in enumerate(labels)}
        data["label2id"] = {str(label): i for i, label in enumerate(labels)}
        if architecture == SEQUENCE and spec.kind in _PROBLEM_TYPES:
            data["problem_type"] = _PROBLEM_TYPES[spec.kind]
    data.update(spec.extra)
    return data


def tokenizer_config(do_lower_case: bool, model_max_length: int) -> dict:
    """``tokenizer_config.json`` for transformers' ``BertTokenizer``: Google's basic tokenizer
    (lower case and strip accents exactly when ``do_lower_case``; CJK characters split)."""
    return {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": bool(do_lower_case),
        "strip_accents": None,  # follows do_lower_case, as Google's tokenizer
        "tokenize_chinese_chars": True,
        "do_basic_tokenize": True,
        "model_max_length": int(model_max_length),
        "clean_up_tokenization_spaces": True,
        **SPECIAL_TOKENS,
    }


def write_text_files(folder: Path, config_json: dict, spec: HfExportSpec, model_max_length: int) -> list[str]:
    """``config.json`` and (with a vocabulary) ``vocab.txt``, ``tokenizer_config.json`` and
    ``special_tokens_map.json`` in ``folder`` (a temporary folder the caller renames)."""
    written = ["config.json"]
    _write_json(folder / "config.json", config_json)
    if spec.vocab_file is not None:
        (folder / "vocab.txt").write_bytes(Path(spec.vocab_file).read_bytes())
        _write_json(folder / "tokenizer_config.json", tokenizer_config(spec.do_lower_case, model_max_length))
        _write_json(folder / "special_tokens_map.json", dict(SPECIAL_TOKENS))
        written += ["vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]
    return written


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def check_export_target(path: str | os.PathLike | None, *, flag: str = "--export-hf",
                        keep: Iterable[str | os.PathLike] = ()) -> Path | None:
    """Refuse (before any work) an export folder that would destroy something else: a file, a
    folder holding files other than a previous export's, the working directory, or a folder
    that is or contains one of ``keep`` (the run's output folder). An earlier export is replaced
    (a rerun of the same command updates it); the parent must be writable."""
    if path is None:
        return None
    target = Path(path)
    resolved = target.resolve()
    for other, name in ((Path.cwd(), "the working folder"), *((Path(k), str(k)) for k in keep)):
        if other.resolve() == resolved or resolved in other.resolve().parents:
            raise UsageError(f"{flag} {target}: the export would replace {name}",
                             hint="give the export a folder of its own, e.g. OUTPUT_DIR/hf")
    if target.exists() and not target.is_dir():
        raise UsageError(f"{flag} {target}: a file is in the way (the export is a folder)",
                         hint="choose another folder name")
    if target.is_dir():
        foreign = sorted(p.name for p in target.iterdir() if p.name not in _EXPORT_FILES)
        if foreign:
            raise UsageError(
                f"{flag} {target}: the folder holds other files ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}); an export only replaces an earlier export",
                hint="choose a new or empty folder",
            )
    check_output_dir(target.parent)  # the export is staged beside the target, then renamed
    return target
