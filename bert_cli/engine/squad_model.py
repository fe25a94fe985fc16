"""SQuAD span model on the BERT encoder: model, TFRecord input pipeline, training, logits inference.

The model is the original ``run_squad.py`` ``create_model``: the encoder's sequence output
and :class:`~bert_cli.engine.heads.SquadHead` (``cls/squad/output_weights`` [2, H],
``cls/squad/output_bias`` [2]) giving start and end logits over every position; the loss is
``(CE(start) + CE(end)) / 2`` (:func:`~bert_cli.engine.heads.squad_loss`).

Training is the one driver's (:mod:`bert_cli.engine.driver`) with :func:`loss_fn`: the model's
"logits" are ``[B, 2, S]`` (start, end) and its "labels" ``[B, 2]`` (start_position,
end_position). The training features come from the
``train.tf_record`` file written by :func:`bert_cli.text.squad.write_features`, read as the
original's ``input_fn_builder``: ``repeat -> shuffle(100) -> batch(drop_remainder=True)``.

Prediction streams: :meth:`SquadPredictor.raw_results` batches any iterable of
:class:`~bert_cli.text.squad.SquadFeature` (e.g. the featurization generator) and yields one
:class:`~bert_cli.text.squad_logits.RawResult` per feature, in order, so the whole feature
set of a large predict file is never held in memory.

Dimension legend: B batch, S sequence, H hidden.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from ..modelconfig import BertConfig
from ..text.squad_logits import RawResult
from .checkpoint import LoadReport, load_into, tf1_names
from .functions import compiled
from .heads import SquadHead, squad_loss
from .model import BertModel

__all__ = [
    "SquadModel",
    "SquadPredictor",
    "build_model",
    "load_initial_weights",
    "load_weights",
    "loss_fn",
    "train_dataset",
]


# ============================================================================ model


class SquadModel(tf.Module):
    """BERT encoder + :class:`SquadHead`; ``logits`` are ``[B, 2, S]`` float32 (start, end)."""

    def __init__(self, config: BertConfig, *, seed: int | None = None, random_init: bool = True,
                 compute_dtype=tf.float32) -> None:
        super().__init__(name="squad_model")
        self.config = config
        self.bert = BertModel(config, seed=seed, random_init=random_init, compute_dtype=compute_dtype)
        self.head = SquadHead(config.hidden_size, seed=seed)

    def tf1_variables(self) -> dict[str, tf.Variable]:
        """``{TF1 name: variable}`` of the encoder and the head (checkpoint names)."""
        return tf1_names(self.bert, self.head)

    def start_end_logits(self, input_ids, input_mask, segment_ids, *, training: bool = False):
        """``(start [B, S], end [B, S])`` float32 logits."""
        sequence = self.bert(input_ids, input_mask, segment_ids, training=training).sequence_output
        start, end = self.head(tf.cast(sequence, tf.float32))
        return start, end

    def logits(self, input_ids, input_mask, segment_ids, *, training: bool = False) -> tf.Tensor:
        """``[B, 2, S]``: start and end logits stacked (what the loss takes)."""
        start, end = self.start_end_logits(input_ids, input_mask, segment_ids, training=training)
        return tf.stack([start, end], axis=1)

    def loss(self, logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """``(CE(start) + CE(end)) / 2`` with ``labels`` [B, 2] = (start_position, end_position)."""
        labels = tf.cast(labels, tf.int32)
        return squad_loss(logits[:, 0], logits[:, 1], labels[:, 0], labels[:, 1])


def build_model(runtime, config: BertConfig, *, seed: int | None, random_init: bool = True) -> SquadModel:
    """A :class:`SquadModel` built under ``runtime.scope()`` in the runtime's compute dtype."""
    with runtime.scope():
        return SquadModel(config, seed=seed, random_init=random_init, compute_dtype=runtime.compute_dtype)


def load_initial_weights(model: SquadModel, checkpoint: str, weights_format: str) -> LoadReport:
    """Encoder weights (and the span head when present) from a TF1 checkpoint or HF safetensors;
    a missing ``cls/squad/*`` head is newly initialised, as the original's fine-tuning."""
    modules = [model.bert, model.head]
    if weights_format == "hf":
        from .hf_weights import load_hf_into

        return load_hf_into(modules, checkpoint, allow_missing=("cls/squad/",))
    return load_into(modules, checkpoint, allow_missing=("cls/squad/",))


def load_weights(model: SquadModel, checkpoint: str) -> LoadReport:
    """Every weight of a fine-tuned SQuAD checkpoint (encoder and head must all be there)."""
    return load_into([model.bert, model.head], checkpoint)


# ============================================================================ input pipeline


def _record_spec(seq_length: int) -> dict[str, tf.io.FixedLenFeature]:
    return {
        "unique_ids": tf.io.FixedLenFeature([], tf.int64),
        "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
        "start_positions": tf.io.FixedLenFeature([], tf.int64),
        "end_positions": tf.io.FixedLenFeature([], tf.int64),
    }


def _decode_training_record(record: tf.Tensor, seq_length: int) -> dict[str, tf.Tensor]:
    example = tf.io.parse_single_example(record, _record_spec(seq_length))
    return {
        "input_ids": tf.cast(example["input_ids"], tf.int32),
        "input_mask": tf.cast(example["input_mask"], tf.int32),
        "segment_ids": tf.cast(example["segment_ids"], tf.int32),
        "labels": tf.cast(tf.stack([example["start_positions"], example["end_positions"]]), tf.int32),
    }


def train_dataset(record_file: str | os.PathLike, seq_length: int, batch_size: int, *, seed: int | None = None,
                  skip_batches: int = 0) -> tf.data.Dataset:
    """The training features of a ``train.tf_record``: repeat -> shuffle(100) -> batch(drop_remainder).

    Batches are dicts of int32 ``input_ids``, ``input_mask``, ``segment_ids`` [B, S] and
    ``labels`` [B, 2] (start, end). ``skip_batches`` drops that many batches first (resume).
    """
    ds = tf.data.TFRecordDataset(str(record_file))
    ds = ds.repeat().shuffle(buffer_size=100, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda r: _decode_training_record(r, seq_length), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    if skip_batches:
        ds = ds.skip(skip_batches)
    return ds.prefetch(2)


# ============================================================================ training


def loss_fn(model: SquadModel):
    """``loss(batch, training)`` of one batch for :class:`~bert_cli.engine.driver.Driver`."""

    def loss(batch, training):
        logits = model.logits(batch["input_ids"], batch["input_mask"], batch["segment_ids"], training=training)
        return model.loss(logits, batch["labels"])

    return loss


# ============================================================================ inference


class SquadPredictor:
    """A compiled inference forward pass (no dropout): ids/mask/segments -> start, end logits."""

    def __init__(self, model: SquadModel, *, jit_compile: bool = False) -> None:
        self.model = model
        spec = tf.TensorSpec([None, None], tf.int32)

        def forward(input_ids, input_mask, segment_ids):
            return model.start_end_logits(input_ids, input_mask, segment_ids, training=False)

        self._fn = compiled(forward, input_signature=[spec, spec, spec], jit_compile=jit_compile)

    def logits(self, input_ids, input_mask, segment_ids) -> tuple[np.ndarray, np.ndarray]:
        """``(start [B, S], end [B, S])`` float32 numpy arrays."""
        start, end = self._fn(
            tf.convert_to_tensor(np.asarray(input_ids), tf.int32),
            tf.convert_to_tensor(np.asarray(input_mask), tf.int32),
            tf.convert_to_tensor(np.asarray(segment_ids), tf.int32),
        )
        return start.numpy(), end.numpy()

    def raw_results(self, features: Iterable[Any], batch_size: int) -> Iterator[RawResult]:
        """One :class:`RawResult` per feature, in order; ``features`` is consumed lazily,
        ``batch_size`` at a time (the last batch may be smaller; no padding examples)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        batch: list[Any] = []
        for feature in features:
            batch.append(feature)
            if len(batch) == batch_size:
                yield from self._batch_results(batch)
                batch = []
        if batch:
            yield from self._batch_results(batch)

    def _batch_results(self, batch: list[Any]) -> Iterator[RawResult]:
        start, end = self.logits(
            [f.input_ids for f in batch], [f.input_mask for f in batch], [f.segment_ids for f in batch]
        )
        for i, feature in enumerate(batch):
            yield RawResult(int(feature.unique_id), start[i].tolist(), end[i].tolist())

