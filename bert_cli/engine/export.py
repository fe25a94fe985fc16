"""Export the encoder as a TensorFlow SavedModel with a serving signature.

``serving_default`` takes ``input_ids``, ``input_mask``, ``segment_ids`` (int32 [batch, seq])
and returns ``pooled_output`` [batch, H] and ``sequence_output`` [batch, seq, H] (float32)::

    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](input_ids=ids, input_mask=mask, segment_ids=seg)

``bert_config.json`` is written beside ``saved_model.pb`` for reference.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import tensorflow as tf

from ..errors import UsageError
from .model import BertModel


class _Serving(tf.Module):
    """The exported object: the model's variables plus one traced function."""

    def __init__(self, model: BertModel) -> None:
        super().__init__(name="serving")
        self.model = model
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
        out = self.model(input_ids, input_mask, segment_ids, training=False)
        return {"pooled_output": out.pooled_output, "sequence_output": out.sequence_output}


def export_saved_model(model: BertModel, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``model`` as a SavedModel directory at ``path`` (atomically: temp dir, then rename)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise UsageError(f"{path} already exists", hint="choose another directory or pass overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        serving = _Serving(model)
        tf.saved_model.save(serving, str(tmp), signatures={"serving_default": serving.serve})
        (tmp / "bert_config.json").write_text(model.config.to_json(), encoding="utf-8")
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path
