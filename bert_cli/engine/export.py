"""Export the encoder as a TensorFlow SavedModel with a serving signature.

``serving_default`` takes ``input_ids``, ``input_mask``, ``segment_ids`` (int32 [batch, seq])
and returns ``pooled_output`` [batch, H] and ``sequence_output`` [batch, seq, H] (float32)::

    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](input_ids=ids, input_mask=mask, segment_ids=seg)

``bert_config.json`` is written beside ``saved_model.pb`` for reference.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import tensorflow as tf

from ..errors import UsageError
from ..fileio import atomic_directory
from .model import BertModel


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
        self.serve = tf.function(
            self._serve,
            input_signature=[
                tf.TensorSpec.from_spec(spec, name="input_ids"),
                tf.TensorSpec.from_spec(spec, name="input_mask"),
                tf.TensorSpec.from_spec(spec, name="segment_ids"),
            ],
        )

    def _serve(self, input_ids, input_mask, segment_ids):
        return self._outputs(input_ids, input_mask, segment_ids)


def encoder_outputs(model: BertModel) -> Callable[..., dict]:
    """The encoder signature: ``pooled_output`` [B, H] and ``sequence_output`` [B, S, H]."""

    def outputs(input_ids, input_mask, segment_ids) -> dict:
        out = model(input_ids, input_mask, segment_ids, training=False)
        return {"pooled_output": out.pooled_output, "sequence_output": out.sequence_output}

    return outputs


def export_saved_model(
    model: BertModel,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    outputs: Callable[..., dict] | None = None,
    modules: Sequence[tf.Module] = (),
) -> Path:
    """Write a SavedModel directory at ``path`` (atomically: temp dir, then rename).

    By default the signature returns the encoder outputs of ``model``; a task passes its own
    ``outputs`` function and the extra ``modules`` (heads) it reads.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise UsageError(f"{path} already exists", hint="choose another directory or pass overwrite")
    with atomic_directory(path) as tmp:
        serving = Serving([model, *modules], outputs or encoder_outputs(model))
        tf.saved_model.save(serving, str(tmp), signatures={"serving_default": serving.serve})
        (tmp / "bert_config.json").write_text(model.config.to_json(), encoding="utf-8")
    return path
