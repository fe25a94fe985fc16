"""Task heads on top of :class:`~bert_cli.engine.model.BertModel`, and the original losses.

Kept apart from the encoder so that a model can be built with exactly the heads a checkpoint
or a task needs. Variable names are the original's (see :mod:`bert_cli.engine.checkpoint`):

==============================  ===================================================  ==========
head                            variables                                            original
==============================  ===================================================  ==========
:class:`PretrainingHeads` MLM   ``cls/predictions/transform/dense/{kernel,bias}``,   run_pretraining
                                ``cls/predictions/transform/LayerNorm/{beta,gamma}``,
                                ``cls/predictions/output_bias`` [V]; output weights
                                are the (tied) word-embedding table
:class:`PretrainingHeads` NSP   ``cls/seq_relationship/output_weights`` [2, H],      run_pretraining
                                ``cls/seq_relationship/output_bias`` [2]
:class:`ClassifierHead`         ``output_weights`` [num_labels, H], ``output_bias``  run_classifier
                                (top scope)
:class:`SquadHead`              ``cls/squad/output_weights`` [2, H],                 run_squad
                                ``cls/squad/output_bias`` [2]
==============================  ===================================================  ==========

Dimension legend: B batch, S sequence, H hidden, V vocabulary, P masked positions per sequence,
C classes. Logits and losses are float32.
"""

from __future__ import annotations

import tensorflow as tf

from ..modelconfig import BertConfig
from .model import Dense, Initializer, LayerNorm, dropout, get_activation, make_variable

# ----------------------------------------------------------------------------- heads


class PretrainingHeads(tf.Module):
    """Masked-LM and next-sentence heads (``cls/...``)."""

    # The tied embedding table belongs to the encoder: do not track it twice.
    _TF_MODULE_IGNORED_PROPERTIES = tf.Module._TF_MODULE_IGNORED_PROPERTIES | frozenset({"_word_embeddings"})

    def __init__(
        self, config: BertConfig, word_embeddings: tf.Variable, *, seed: int | None = None, random_init: bool = True
    ) -> None:
        super().__init__(name="cls")
        H = config.hidden_size
        init = Initializer(config.initializer_range, None if seed is None else seed + 1_000_003, random=random_init)
        self._word_embeddings = word_embeddings  # [V, H], shared with BertModel
        self.transform = Dense("cls/predictions/transform/dense", H, H, init, activation=get_activation(config))
        self.transform_layer_norm = LayerNorm("cls/predictions/transform/LayerNorm", H, config.layer_norm_eps)
        self.output_bias = make_variable(init.zeros([config.vocab_size]), "cls/predictions/output_bias")  # [V]
        self.nsp_weights = make_variable(init.normal([2, H]), "cls/seq_relationship/output_weights")  # [2, H]
        self.nsp_bias = make_variable(init.zeros([2]), "cls/seq_relationship/output_bias")  # [2]

    def mlm_logits(self, sequence_output: tf.Tensor, positions: tf.Tensor | None = None) -> tf.Tensor:
        """Vocabulary logits at ``positions`` [B, P] ([B, P, V]), or at every position ([B, S, V])."""
        x = sequence_output if positions is None else gather_indexes(sequence_output, positions)
        shape = tf.shape(x)  # [B, P|S, H]
        x = tf.reshape(x, [-1, shape[-1]])  # [M, H]
        x = self.transform_layer_norm(self.transform(x))  # [M, H]
        logits = tf.matmul(x, self._word_embeddings, transpose_b=True) + self.output_bias  # [M, V]
        return tf.reshape(logits, tf.concat([shape[:-1], [-1]], axis=0))

    def nsp_logits(self, pooled_output: tf.Tensor) -> tf.Tensor:
        """Next-sentence logits [B, 2]; label 0 = IsNext, 1 = random."""
        return tf.matmul(pooled_output, self.nsp_weights, transpose_b=True) + self.nsp_bias


class ClassifierHead(tf.Module):
    """``run_classifier``'s head: dropout 0.1 (training) on the pooled output, then a linear layer.

    Its variables live at the TOP scope (``output_weights``, ``output_bias``), initialised with
    stddev 0.02 whatever the config says, as in the original.
    """

    def __init__(
        self, hidden_size: int, num_labels: int, *, seed: int | None = None, dropout_prob: float = 0.1
    ) -> None:
        super().__init__(name="classifier")
        init = Initializer(0.02, None if seed is None else seed + 2_000_003)
        self.output_weights = make_variable(init.normal([num_labels, hidden_size]), "output_weights")  # [C, H]
        self.output_bias = make_variable(init.zeros([num_labels]), "output_bias")  # [C]
        self.dropout_prob = dropout_prob

    def __call__(self, pooled_output: tf.Tensor, *, training: bool = False) -> tf.Tensor:
        x = dropout(pooled_output, self.dropout_prob, training)  # [B, H]
        return tf.matmul(x, self.output_weights, transpose_b=True) + self.output_bias  # [B, C]


class SquadHead(tf.Module):
    """``run_squad``'s span head: start/end logits from every token (no dropout)."""

    def __init__(self, hidden_size: int, *, seed: int | None = None) -> None:
        super().__init__(name="squad")
        init = Initializer(0.02, None if seed is None else seed + 3_000_017)
        self.output_weights = make_variable(init.normal([2, hidden_size]), "cls/squad/output_weights")  # [2, H]
        self.output_bias = make_variable(init.zeros([2]), "cls/squad/output_bias")  # [2]

    def __call__(self, sequence_output: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        logits = tf.einsum("bsh,kh->kbs", sequence_output, self.output_weights)  # [2, B, S]
        logits = logits + self.output_bias[:, None, None]
        return logits[0], logits[1]  # start [B, S], end [B, S]


# ----------------------------------------------------------------------------- helpers & losses


def gather_indexes(sequence_tensor: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
    """Rows of [B, S, H] at ``positions`` [B, P] -> [B, P, H] (the original's flat-offset gather)."""
    positions = tf.cast(positions, tf.int32)
    return tf.gather(sequence_tensor, positions, batch_dims=1)


def _nll(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """-log softmax(logits)[label], per example (the original's one-hot x log_probs sum)."""
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    depth = tf.shape(logits)[-1]
    return -tf.reduce_sum(tf.one_hot(tf.cast(labels, tf.int32), depth, dtype=tf.float32) * log_probs, axis=-1)


def mlm_loss(
    logits: tf.Tensor, label_ids: tf.Tensor, label_weights: tf.Tensor, total_weight: tf.Tensor | None = None
) -> tf.Tensor:
    """``sum(w * nll) / (sum(w) + 1e-5)`` over all masked slots (padding slots have w = 0).

    ``total_weight`` replaces ``sum(w)`` in the denominator: a replica that holds part of a
    global batch passes the weight sum of the whole global batch, so that the replicas' losses
    add up to the loss of the global batch.
    """
    w = tf.reshape(tf.cast(label_weights, tf.float32), [-1])
    nll = tf.reshape(_nll(logits, label_ids), [-1])
    denominator = tf.reduce_sum(w) if total_weight is None else total_weight
    return tf.reduce_sum(w * nll) / (denominator + 1e-5)


def nsp_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Mean next-sentence cross-entropy."""
    return tf.reduce_mean(_nll(logits, tf.reshape(labels, [-1])))


def classifier_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Mean classification cross-entropy."""
    return tf.reduce_mean(_nll(logits, tf.reshape(labels, [-1])))


def squad_loss(start_logits, end_logits, start_positions, end_positions) -> tf.Tensor:
    """(CE(start) + CE(end)) / 2, each a mean over the batch."""
    start = tf.reduce_mean(_nll(start_logits, start_positions))
    end = tf.reduce_mean(_nll(end_logits, end_positions))
    return (start + end) / 2.0
