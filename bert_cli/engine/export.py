"""Export a model as a TensorFlow SavedModel with a documented serving signature.

``serving_default`` takes ``input_ids``, ``input_mask``, ``segment_ids`` (int32 [batch, seq],
the features ``bert tokenize --max-seq-length`` prints; any batch size and sequence length up
to ``max_position_embeddings``) and returns float32 tensors: the encoder gives
``pooled_output`` [B, H] and ``sequence_output`` [B, S, H]; a fine-tuned classifier
(:func:`bert_cli.engine.classifier.export_saved_model`) gives ``logits`` [B, C] and
``probabilities`` [B, C] (softmax; sigmoid for multi-label; regression: ``scores`` [B]),
plus ``outputs``, the same values under the name earlier exports used. Plain TensorFlow
serves it, no ``bert_cli`` needed::

    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](input_ids=ids, input_mask=mask, segment_ids=seg)
    labels = open(loaded.labels_file.asset_path.numpy()).read().splitlines()  # a classifier

Beside ``saved_model.pb``: ``bert_config.json`` (the model) and ``signature.json`` (inputs and
outputs with dtype, shape and meaning, the labels, how to call it); a classifier's label names
are also in ``assets/labels.txt`` (one per line, in the order of the output columns), tracked
as the asset ``labels_file``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable, Mapping, Sequence

import tensorflow as tf

from ..errors import UsageError
from ..fileio import atomic_directory
from .functions import compiled
from .model import BertModel

SIGNATURE = "serving_default"
SIGNATURE_FILE = "signature.json"
LABELS_FILE = "labels.txt"
INPUTS = {
    "input_ids": "WordPiece ids: [CLS] A [SEP] (B [SEP]), then 0 (padding)",
    "input_mask": "1 for real tokens, 0 for padding",
    "segment_ids": "0 for [CLS] A [SEP], 1 for B [SEP] (0 for padding)",
}
ENCODER_OUTPUTS = {
    "pooled_output": "tanh(dense([CLS] vector)) [B, H]",
    "sequence_output": "last layer's vector of every token [B, S, H]",
}


class Serving(tf.Module):
    """The exported object: the modules' variables plus one traced function.

    ``outputs(input_ids, input_mask, segment_ids) -> dict`` computes the signature's outputs;
    ``modules`` are tracked so that every variable it reads is saved.
    """

    def __init__(self, modules: Sequence[tf.Module], outputs: Callable[..., dict]) -> None:
        super().__init__(name="serving")
        self.modules = list(modules)
        self._outputs = outputs
        spec = tf.TensorSpec([None, None], tf.int32)
        signature = [tf.TensorSpec.from_spec(spec, name=name) for name in INPUTS]
        self.serve = compiled(self._serve, input_signature=signature)

    def _serve(self, input_ids, input_mask, segment_ids):
        return self._outputs(input_ids, input_mask, segment_ids)


def encoder_outputs(model: BertModel) -> Callable[..., dict]:
    """The encoder signature: ``pooled_output`` [B, H] and ``sequence_output`` [B, S, H]."""

    def outputs(input_ids, input_mask, segment_ids) -> dict:
        out = model(input_ids, input_mask, segment_ids, training=False)
        return {"pooled_output": out.pooled_output, "sequence_output": out.sequence_output}

    return outputs


def describe_signature(serving: Serving, meanings: Mapping[str, str], labels: Sequence[str] | None,
                       config) -> dict:
    """The ``signature.json`` mapping: every input and output with dtype, shape and meaning."""
    concrete = serving.serve.get_concrete_function()

    def spec(tensor) -> dict:
        return {"dtype": tensor.dtype.name, "shape": tensor.shape.as_list()}

    inputs = {name: {"dtype": "int32", "shape": [None, None], "meaning": text} for name, text in INPUTS.items()}
    outputs = {name: {**spec(t), "meaning": meanings.get(name, "")} for name, t in sorted(concrete.structured_outputs.items())}
    data = {
        "signature": SIGNATURE,
        "inputs": inputs,
        "outputs": outputs,
        "max_position_embeddings": config.max_position_embeddings,
        "usage": f"tf.saved_model.load(DIR).signatures[{SIGNATURE!r}](input_ids=..., input_mask=..., segment_ids=...)",
    }
    if labels is not None:
        data["labels"] = [str(label) for label in labels]
        data["labels_file"] = f"assets/{LABELS_FILE}"
    return data


def export_saved_model(
    model: BertModel,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    outputs: Callable[..., dict] | None = None,
    modules: Sequence[tf.Module] = (),
    labels: Sequence[str] | None = None,
    meanings: Mapping[str, str] | None = None,
) -> Path:
    """Write a SavedModel directory at ``path`` (atomically: temp dir, then rename).

    By default the signature returns the encoder outputs of ``model``; a task passes its own
    ``outputs`` function, the extra ``modules`` (heads) it reads, the ``meanings`` of its outputs
    for ``signature.json`` and its ``labels`` (written to ``assets/labels.txt``).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise UsageError(f"{path} already exists", hint="choose another directory or pass overwrite")
    with atomic_directory(path) as tmp:
        serving = Serving([model, *modules], outputs or encoder_outputs(model))
        staging = tmp / ".staging"
        if labels is not None:  # an asset: copied into assets/ and reachable as loaded.labels_file
            staging.mkdir()
            (staging / LABELS_FILE).write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
            serving.labels_file = tf.saved_model.Asset(str(staging / LABELS_FILE))
        tf.saved_model.save(serving, str(tmp), signatures={SIGNATURE: serving.serve})
        shutil.rmtree(staging, ignore_errors=True)
        (tmp / "bert_config.json").write_text(model.config.to_json(), encoding="utf-8")
        described = describe_signature(serving, meanings or ENCODER_OUTPUTS, labels, model.config)
        (tmp / SIGNATURE_FILE).write_text(json.dumps(described, indent=2) + "\n", encoding="utf-8")
    return path


# Output names of a classifier's serving signature per kind, with their meaning (signature.json).
CLASSIFIER_OUTPUTS = {
    "classification": {"logits": "[B, C] scores before softmax", "probabilities": "[B, C] softmax(logits)"},
    "multilabel": {"logits": "[B, C] scores before sigmoid", "probabilities": "[B, C] sigmoid(logits), one per label"},
    "regression": {"logits": "[B, 1] the score", "scores": "[B] the predicted score"},
}


def export_classifier(model, path: str | os.PathLike, *, labels: Sequence[str] | None = None) -> Path:
    """A fine-tuned classifier (:class:`~bert_cli.engine.classifier.ClassifierModel`): its
    ``serving_default`` maps the three inputs to ``logits`` and ``probabilities`` (regression:
    ``scores``), plus ``outputs`` (the same values, the name earlier exports used); ``labels``
    name the columns (``assets/labels.txt``, ``signature.json``). An existing export is replaced."""
    meanings = dict(CLASSIFIER_OUTPUTS[model.kind])
    main = list(meanings)[1]
    meanings["outputs"] = f"the same values as {main} (the name earlier exports used)"

    def outputs(input_ids, input_mask, segment_ids) -> dict:
        logits = model.logits(input_ids, input_mask, segment_ids, training=False)
        values = model.outputs(logits)
        return {"logits": logits, main: values, "outputs": tf.identity(values)}

    return export_saved_model(model.bert, path, overwrite=True, outputs=outputs, modules=[model.head],
                              labels=list(labels) if labels is not None else None, meanings=meanings)
