"""Sentence(-pair) classifier / regressor on the BERT encoder: model, input pipeline, loops.

The model is the original ``run_classifier.py`` ``create_model``: the pooled output, dropout
0.1 in training only, one linear layer with ``output_weights`` [C, H] / ``output_bias`` [C]
at the top scope (:class:`~bert_cli.engine.heads.ClassifierHead`). Losses per task kind:

==================  ====================================  =======================================
kind                loss (per example, then batch mean)   outputs
==================  ====================================  =======================================
classification      -log softmax(logits)[label]           softmax probabilities [B, C]
regression          (logit - score)^2  (C = 1)            the score [B]
multilabel          mean sigmoid cross-entropy over C     sigmoid probabilities [B, C]
==================  ====================================  =======================================

Only classification exists in the original; the other two are the usual extensions
(GLUE STS-B regression is MSE in every later BERT code base).

Input pipeline (as the original's ``input_fn_builder``): training takes the in-memory arrays,
``repeat()``, ``shuffle(100)`` (seeded) and ``batch(drop_remainder=True)``; evaluation and
prediction batch in order with ``drop_remainder=False`` and no padding examples (the
original's CPU/GPU path). A resumed run skips the batches already consumed, so with a seed a
run killed and resumed sees the same batches as an uninterrupted one.

Training is the one driver's (:mod:`bert_cli.engine.driver`): this module gives it the model,
:func:`loss_fn` and :func:`train_dataset`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from ..errors import UsageError
from ..modelconfig import BertConfig
from .checkpoint import LoadReport, load_into, save_model, tf1_names
from .functions import compiled
from .heads import ClassifierHead, classifier_loss
from .model import BertModel, check_inputs, check_seq_length
from .padding import trim_arrays, trim_dataset

KINDS = ("classification", "regression", "multilabel")
FEATURE_KEYS = ("input_ids", "input_mask", "segment_ids")


# ============================================================================ model


class ClassifierModel(tf.Module):
    """BERT encoder + :class:`ClassifierHead` (``num_labels`` outputs; 1 for regression)."""

    def __init__(
        self,
        config: BertConfig,
        num_labels: int,
        *,
        kind: str = "classification",
        seed: int | None = None,
        random_init: bool = True,
        compute_dtype=tf.float32,
    ) -> None:
        super().__init__(name="classifier_model")
        if kind not in KINDS:
            raise ValueError(f"unknown task kind {kind!r} (one of {', '.join(KINDS)})")
        if kind == "regression":
            num_labels = 1
        if num_labels < 1:
            raise UsageError("a classification task needs at least one label")
        self.config = config
        self.kind = kind
        self.num_labels = int(num_labels)
        self.bert = BertModel(config, seed=seed, random_init=random_init, compute_dtype=compute_dtype)
        # The original hard-codes the head's dropout at 0.1, which is hidden_dropout_prob in every
        # released config; following the config lets a dropout-free config train (and resume)
        # deterministically.
        self.head = ClassifierHead(config.hidden_size, self.num_labels, seed=seed,
                                   dropout_prob=config.hidden_dropout_prob)

    def tf1_variables(self) -> dict[str, tf.Variable]:
        """``{TF1 name: variable}`` of the encoder and the head (checkpoint names)."""
        return tf1_names(self.bert, self.head)

    def logits(self, input_ids, input_mask, segment_ids, *, training: bool = False) -> tf.Tensor:
        """[B, C] float32 logits."""
        pooled = self.bert(input_ids, input_mask, segment_ids, training=training).pooled_output
        return tf.cast(self.head(pooled, training=training), tf.float32)

    def per_example_loss(self, logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """[B] float32 loss of each example (see the module table)."""
        if self.kind == "classification":
            log_probs = tf.nn.log_softmax(logits, axis=-1)
            one_hot = tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), self.num_labels, dtype=tf.float32)
            return -tf.reduce_sum(one_hot * log_probs, axis=-1)
        if self.kind == "regression":
            return tf.square(logits[:, 0] - tf.cast(labels, tf.float32))
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, tf.float32), logits=logits)
        return tf.reduce_mean(bce, axis=-1)

    def loss(self, logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        """Mean loss of the batch (classification: exactly :func:`heads.classifier_loss`)."""
        if self.kind == "classification":
            return classifier_loss(logits, labels)
        return tf.reduce_mean(self.per_example_loss(logits, labels))

    def outputs(self, logits: tf.Tensor) -> tf.Tensor:
        """Probabilities [B, C] (softmax or sigmoid) or scores [B] (regression)."""
        if self.kind == "classification":
            return tf.nn.softmax(logits, axis=-1)
        if self.kind == "regression":
            return logits[:, 0]
        return tf.sigmoid(logits)


# ============================================================================ input pipeline


def _as_arrays(features: Any) -> dict[str, np.ndarray]:
    arrays = features.arrays() if hasattr(features, "arrays") else dict(features)
    return {k: np.asarray(v) for k, v in arrays.items()}


def train_dataset(
    features: Any,
    batch_size: int,
    *,
    seed: int | None = None,
    skip_batches: int = 0,
    padding_multiple: int | None = None,
) -> tf.data.Dataset:
    """repeat -> shuffle(100) -> batch(drop_remainder=True), as the original's training input.

    ``skip_batches`` drops that many batches first (resume). Batches are dicts of
    ``input_ids``, ``input_mask``, ``segment_ids`` (int32) and ``labels``; with
    ``padding_multiple`` their all-padding tail is cut (:mod:`bert_cli.engine.padding`).
    """
    ds = tf.data.Dataset.from_tensor_slices(_as_arrays(features))
    ds = ds.repeat().shuffle(buffer_size=100, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    if skip_batches:
        ds = ds.skip(skip_batches)
    return trim_dataset(ds, padding_multiple).prefetch(2)


def inference_dataset(features: Any, batch_size: int) -> tf.data.Dataset:
    """In order, ``drop_remainder=False``, no padding examples (the original's CPU/GPU path)."""
    arrays = {k: v for k, v in _as_arrays(features).items() if k in FEATURE_KEYS}
    return tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size, drop_remainder=False).prefetch(2)


# ============================================================================ inference


class Predictor:
    """A compiled forward pass: ``predictor.logits(ids, mask, segments)`` -> numpy [B, C].

    One trace for every batch size (``[None, None]`` int32 signature). ``jit_compile``
    follows the runtime's XLA flag; with ``padding_multiple`` each batch's all-padding tail is
    cut first (:mod:`bert_cli.engine.padding`; same logits, less work).
    """

    def __init__(self, model: ClassifierModel, *, jit_compile: bool = False, padding_multiple: int | None = None) -> None:
        self.model = model
        self.padding_multiple = padding_multiple
        spec = tf.TensorSpec([None, None], tf.int32)

        def forward(input_ids, input_mask, segment_ids):
            return model.logits(input_ids, input_mask, segment_ids, training=False)

        self._fn = compiled(forward, input_signature=[spec, spec, spec], jit_compile=jit_compile)

    def logits(self, input_ids, input_mask, segment_ids) -> np.ndarray:
        batch = {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids}
        batch = trim_arrays({k: np.asarray(v) for k, v in batch.items()}, self.padding_multiple)
        return self._fn(
            tf.convert_to_tensor(batch["input_ids"], tf.int32),
            tf.convert_to_tensor(batch["input_mask"], tf.int32),
            tf.convert_to_tensor(batch["segment_ids"], tf.int32),
        ).numpy()

    def logits_of(self, features: Any, batch_size: int, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Logits of every example, in order, batched by ``batch_size``; ``on_batch(n)`` after
        each batch with the number of examples done so far (progress)."""
        out = []
        done = 0
        for batch in inference_dataset(features, batch_size):
            out.append(self.logits(batch["input_ids"], batch["input_mask"], batch["segment_ids"]))
            done += len(out[-1])
            if on_batch is not None:
                on_batch(done)
        if not out:
            return np.zeros([0, self.model.num_labels], np.float32)
        return np.concatenate(out, axis=0)


def outputs_from_logits(kind: str, logits: np.ndarray) -> np.ndarray:
    """numpy twin of :meth:`ClassifierModel.outputs` (float32; exactly the TF values)."""
    t = tf.convert_to_tensor(logits, tf.float32)
    if kind == "classification":
        return tf.nn.softmax(t, axis=-1).numpy()
    if kind == "regression":
        return t[:, 0].numpy()
    return tf.sigmoid(t).numpy()


@dataclasses.dataclass
class EvalOutput:
    """Logits [N, C], outputs (probabilities [N, C] / scores [N]), per-example losses [N],
    ``eval_loss`` (mean per example) and ``loss`` (mean of per-batch means, the Estimator's)."""

    logits: np.ndarray
    outputs: np.ndarray
    per_example_loss: np.ndarray
    eval_loss: float
    loss: float


def evaluate(predictor: Predictor, features: Any, batch_size: int,
             on_batch: Callable[[int], None] | None = None) -> EvalOutput:
    """Forward every example in order and compute the losses the original reports
    (``on_batch``: see :meth:`Predictor.logits_of`)."""
    model = predictor.model
    arrays = _as_arrays(features)
    logits = predictor.logits_of(arrays, batch_size, on_batch)
    per_example = model.per_example_loss(tf.constant(logits), tf.constant(arrays["labels"])).numpy()
    batch_means = [float(np.mean(per_example[i : i + batch_size])) for i in range(0, len(per_example), batch_size)]
    return EvalOutput(
        logits=logits,
        outputs=outputs_from_logits(model.kind, logits),
        per_example_loss=per_example,
        eval_loss=float(np.mean(per_example)) if len(per_example) else 0.0,
        loss=float(np.mean(batch_means)) if batch_means else 0.0,
    )


def predictions_from_outputs(kind: str, outputs: np.ndarray, threshold: float = 0.5):
    """Predicted class ids [N] / scores [N] / multi-hot [N, C] from :attr:`EvalOutput.outputs`."""
    if kind == "classification":
        return np.argmax(outputs, axis=-1)
    if kind == "regression":
        return outputs
    return (outputs >= threshold).astype(np.int32)


# ============================================================================ building & loading


def build_model(runtime, config: BertConfig, num_labels: int, *, kind: str, seed: int | None, random_init: bool = True):
    """A :class:`ClassifierModel` built under ``runtime.scope()`` in the runtime's compute dtype."""
    with runtime.scope():
        return ClassifierModel(
            config, num_labels, kind=kind, seed=seed, random_init=random_init, compute_dtype=runtime.compute_dtype
        )


def load_initial_weights(model: ClassifierModel, checkpoint: str, weights_format: str) -> LoadReport:
    """Load encoder weights (and the head when the source has it) from a TF1 checkpoint or HF
    safetensors. The head (``output_*``) may be missing: it is then newly initialised, as
    the original's fine-tuning from a pretraining checkpoint."""
    modules = [model.bert, model.head]
    if weights_format == "hf":
        from .hf_weights import load_hf_into

        return load_hf_into(modules, checkpoint, allow_missing=("output_",))
    return load_into(modules, checkpoint, allow_missing=("output_",))


# ============================================================================ training


def loss_fn(model: ClassifierModel):
    """``loss(batch, training)`` of one batch for :class:`~bert_cli.engine.driver.Driver`."""

    def loss(batch, training):
        logits = model.logits(batch["input_ids"], batch["input_mask"], batch["segment_ids"], training=training)
        return model.loss(logits, batch["labels"])

    return loss


# ============================================================================ exports


def save_weights(model: ClassifierModel, prefix: str | os.PathLike, *, global_step: int | None = None) -> str:
    """Weights only (no Adam slots), TF1 names; ``checkpoint`` state file beside it."""
    return save_model([model.bert, model.head], prefix, global_step=global_step)


def export_saved_model(model: ClassifierModel, path: str | os.PathLike, *, labels=None) -> Path:
    """A SavedModel serving ``logits`` and ``probabilities`` (regression: ``scores``), labels in
    its assets: :func:`bert_cli.engine.export.export_classifier`."""
    from .export import export_classifier

    return export_classifier(model, path, labels=labels)


def validate_features(config: BertConfig, features: Any, source: str | None = None) -> None:
    """Sequence length and id ranges of featurized data against the model (before training)."""
    arrays = _as_arrays(features)
    check_seq_length(config, arrays["input_ids"].shape[1])
    check_inputs(config, arrays["input_ids"], arrays["segment_ids"], arrays["input_mask"], source=source)


def config_summary(model: ClassifierModel) -> Mapping[str, Any]:
    """A few numbers for logs."""
    params = sum(int(np.prod(v.shape)) for v in model.tf1_variables().values())
    return {"parameters": params, "num_labels": model.num_labels, "kind": model.kind}
