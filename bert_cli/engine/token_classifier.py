"""Token classification (NER) on the BERT encoder: model, input pipeline, inference, exports.

The model is the encoder's sequence output, dropout (``hidden_dropout_prob``, training only)
and one linear layer applied at every position -- the sentence classifier's head
(:class:`~bert_cli.engine.heads.ClassifierHead`: ``output_weights`` [T, H], ``output_bias``
[T] at the top scope, stddev 0.02) used per token instead of on the pooled output. The
original never shipped this head; its README describes the data side (label the first
WordPiece of each word), which :mod:`bert_cli.text.ner_features` implements.

Loss: softmax cross-entropy at every position whose label is not ``-100``
(:data:`~bert_cli.text.ner_features.IGNORE_LABEL`: continuation pieces, [CLS]/[SEP], document
context and padding), **averaged over the labelled positions of the micro-batch** (summed
NLL / number of labelled tokens; 0 for a micro-batch without any). This is what
``torch.nn.CrossEntropyLoss(ignore_index=-100)`` computes, so runs compare with transformers'
``BertForTokenClassification``. Under distribution each replica averages over its own share
of the micro-batch (the driver then means over replicas and micro-batches).

Input pipeline: training repeats, shuffles and batches with ``drop_remainder``; a resumed run
skips the batches already seen. Unlike the classifier's ``shuffle(100)`` (the original's), the
shuffle buffer holds the whole training set, reshuffled every epoch (seeded): CoNLL files are in
document order, and a 100-window buffer fed the model one document (one sports table, one
news story) at a time -- the short-run bench lost about 10 F1 points to transformers' random
sampler that way. Sentences are small, so the whole set fits.
With the runtime's ``padding_multiple`` a batch's all-padding tail is cut
(:mod:`bert_cli.engine.padding`); labels are cut to the logits' length in the loss (the cut
positions are padding, labelled ``-100``).

Dimension legend: B batch, S sequence, H hidden, T tags, N examples. Logits are float32.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import tensorflow as tf

from ..errors import UsageError
from ..modelconfig import BertConfig
from .checkpoint import LoadReport, load_into, save_model, tf1_names
from .functions import compiled
from .heads import ClassifierHead
from .model import BertModel
from .padding import trim_arrays, trim_dataset

__all__ = [
    "IGNORE_LABEL",
    "TokenClassifierModel",
    "TokenPredictor",
    "build_model",
    "evaluate",
    "export_saved_model",
    "load_initial_weights",
    "loss_fn",
    "save_weights",
    "softmax",
    "train_dataset",
]

IGNORE_LABEL = -100  # the same value as text.ner_features.IGNORE_LABEL (engine does not import text)
FEATURE_KEYS = ("input_ids", "input_mask", "segment_ids")
TRAIN_KEYS = FEATURE_KEYS + ("labels",)


# ============================================================================ model


class TokenClassifierModel(tf.Module):
    """BERT encoder + a per-token :class:`ClassifierHead` over ``num_tags`` tags."""

    def __init__(self, config: BertConfig, num_tags: int, *, seed: int | None = None, random_init: bool = True,
                 compute_dtype=tf.float32) -> None:
        super().__init__(name="token_classifier_model")
        if num_tags < 1:
            raise UsageError("token classification needs at least one tag")
        self.config = config
        self.num_tags = int(num_tags)
        self.bert = BertModel(config, seed=seed, random_init=random_init, compute_dtype=compute_dtype)
        self.head = ClassifierHead(config.hidden_size, self.num_tags, seed=seed,
                                   dropout_prob=config.hidden_dropout_prob)

    def tf1_variables(self) -> dict[str, tf.Variable]:
        """``{TF1 name: variable}`` of the encoder and the head (checkpoint names)."""
        return tf1_names(self.bert, self.head)

    def logits(self, input_ids, input_mask, segment_ids, *, training: bool = False) -> tf.Tensor:
        """[B, S, T] float32 logits of every position."""
        sequence = self.bert(input_ids, input_mask, segment_ids, training=training).sequence_output  # [B, S, H]
        sequence = tf.cast(sequence, tf.float32)
        shape = tf.shape(sequence)
        flat = tf.reshape(sequence, [-1, self.config.hidden_size])  # [B*S, H]
        logits = self.head(flat, training=training)  # [B*S, T]
        return tf.reshape(logits, [shape[0], shape[1], self.num_tags])

    @staticmethod
    def loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """Mean cross-entropy over the positions labelled != -100 (see the module doc)."""
        seq = tf.shape(logits)[1]
        labels = tf.cast(labels[:, :seq], tf.int32)  # [B, S] (cut as the inputs were)
        weights = tf.cast(tf.not_equal(labels, IGNORE_LABEL), tf.float32)  # [B, S]
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(labels, 0), logits=logits)  # [B, S]
        return tf.reduce_sum(nll * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def build_model(runtime, config: BertConfig, num_tags: int, *, seed: int | None,
                random_init: bool = True) -> TokenClassifierModel:
    """A :class:`TokenClassifierModel` built under ``runtime.scope()`` in its compute dtype."""
    with runtime.scope():
        return TokenClassifierModel(config, num_tags, seed=seed, random_init=random_init,
                                    compute_dtype=runtime.compute_dtype)


def load_initial_weights(model: TokenClassifierModel, checkpoint: str, weights_format: str) -> LoadReport:
    """Encoder weights (and the head when the source has one of the same shape) from a TF1
    checkpoint or HF safetensors; a missing ``output_*`` head is newly initialised."""
    modules = [model.bert, model.head]
    if weights_format == "hf":
        from .hf_weights import load_hf_into

        return load_hf_into(modules, checkpoint, allow_missing=("output_",))
    return load_into(modules, checkpoint, allow_missing=("output_",))


def load_weights(model: TokenClassifierModel, checkpoint: str) -> LoadReport:
    """Every weight of a fine-tuned NER checkpoint (encoder and head must all be there)."""
    return load_into([model.bert, model.head], checkpoint)


# ============================================================================ training


def loss_fn(model: TokenClassifierModel):
    """``loss(batch, training)`` of one micro-batch for :class:`~bert_cli.engine.driver.Driver`."""

    def loss(batch, training):
        logits = model.logits(batch["input_ids"], batch["input_mask"], batch["segment_ids"], training=training)
        return model.loss(logits, batch["labels"])

    return loss


def train_dataset(arrays: Mapping[str, Any], micro_batch_size: int, *, seed: int | None = None, skip_batches: int = 0,
                  padding_multiple: int | None = None) -> tf.data.Dataset:
    """shuffle(whole set, reshuffled each epoch) -> repeat -> batch(drop_remainder=True) of
    ``input_ids``, ``input_mask``, ``segment_ids`` and ``labels`` (all int32 [B, S]);
    ``skip_batches`` first (resume)."""
    data = {k: np.asarray(arrays[k], np.int32) for k in TRAIN_KEYS}
    ds = tf.data.Dataset.from_tensor_slices(data)
    ds = ds.shuffle(buffer_size=max(len(data["input_ids"]), 1), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(micro_batch_size, drop_remainder=True)
    if skip_batches:
        ds = ds.skip(skip_batches)
    return trim_dataset(ds, padding_multiple).prefetch(2)


# ============================================================================ inference


class TokenPredictor:
    """A compiled forward pass (no dropout): ids/mask/segments [B, S] -> logits [B, S, T].

    One trace for every shape (``[None, None]`` int32 signature); with ``padding_multiple``
    each batch's all-padding tail is cut before the model and the logits are padded back with
    zeros, so callers always get ``[B, S, T]`` for their ``S``.
    """

    def __init__(self, model: TokenClassifierModel, *, jit_compile: bool = False,
                 padding_multiple: int | None = None) -> None:
        self.model = model
        self.padding_multiple = padding_multiple
        spec = tf.TensorSpec([None, None], tf.int32)

        def forward(input_ids, input_mask, segment_ids):
            return model.logits(input_ids, input_mask, segment_ids, training=False)

        self._fn = compiled(forward, input_signature=[spec, spec, spec], jit_compile=jit_compile)

    def logits(self, input_ids, input_mask, segment_ids) -> np.ndarray:
        """float32 numpy [B, S, T] for one batch."""
        full = {"input_ids": np.asarray(input_ids, np.int32), "input_mask": np.asarray(input_mask, np.int32),
                "segment_ids": np.asarray(segment_ids, np.int32)}
        batch = trim_arrays(full, self.padding_multiple)
        out = self._fn(*(tf.convert_to_tensor(batch[k]) for k in FEATURE_KEYS)).numpy()  # [B, S', T]
        seq = full["input_ids"].shape[1]
        if out.shape[1] < seq:
            out = np.pad(out, [(0, 0), (0, seq - out.shape[1]), (0, 0)])
        return out

    def logits_of(self, arrays: Mapping[str, Any], batch_size: int) -> np.ndarray:
        """Logits [N, S, T] of every example of ``arrays``, in order, ``batch_size`` at a time."""
        ids = np.asarray(arrays["input_ids"])
        out = [self.logits(ids[i:i + batch_size], np.asarray(arrays["input_mask"])[i:i + batch_size],
                           np.asarray(arrays["segment_ids"])[i:i + batch_size])
               for i in range(0, len(ids), batch_size)]
        if not out:
            return np.zeros([0, ids.shape[1] if ids.ndim == 2 else 0, self.model.num_tags], np.float32)
        return np.concatenate(out, axis=0)


def softmax(logits: np.ndarray) -> np.ndarray:
    """float32 softmax over the last axis (numpy)."""
    logits = np.asarray(logits, np.float32)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def evaluate(predictor: TokenPredictor, arrays: Mapping[str, Any], batch_size: int) -> tuple[np.ndarray, float, float]:
    """``(logits [N, S, T], eval_loss, loss)``: ``eval_loss`` is the mean cross-entropy over every
    labelled position of the set, ``loss`` the mean of the per-batch losses (the Estimator's)."""
    logits = predictor.logits_of(arrays, batch_size)
    labels = np.asarray(arrays["labels"])
    mask = labels != IGNORE_LABEL
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, np.maximum(labels, 0)[..., None], axis=-1)[..., 0] * mask  # [N, S]
    batch_losses = [float(nll[i:i + batch_size].sum() / max(mask[i:i + batch_size].sum(), 1))
                    for i in range(0, len(labels), batch_size)]
    eval_loss = float(nll.sum() / max(mask.sum(), 1))
    return logits, eval_loss, float(np.mean(batch_losses)) if batch_losses else 0.0


# ============================================================================ exports


def save_weights(model: TokenClassifierModel, prefix: str | os.PathLike, *, global_step: int | None = None) -> str:
    """Weights only (no Adam slots), TF1 names; ``checkpoint`` state file beside it."""
    return save_model([model.bert, model.head], prefix, global_step=global_step)


def export_saved_model(model: TokenClassifierModel, path: str | os.PathLike) -> Path:
    """A SavedModel whose ``serving_default`` maps int32 ``input_ids``/``input_mask``/
    ``segment_ids`` [B, S] to ``logits`` and ``probabilities`` [B, S, T] (atomic; an existing
    export is replaced)."""
    from . import export

    def outputs(input_ids, input_mask, segment_ids) -> dict:
        logits = model.logits(input_ids, input_mask, segment_ids, training=False)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

    return export.export_saved_model(model.bert, path, overwrite=True, outputs=outputs, modules=[model.head])
