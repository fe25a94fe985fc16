"""Trim a batch's all-padding tail before it reaches the model.

The original pads every example to ``max_seq_length`` and runs the whole padded block through
the encoder. The padded positions cannot change any real output: each is masked out of
attention with ``-10000`` added to its score, which ``exp`` turns into exactly 0.0 in float32
(scores are always float32 here), and everything else in BERT is per position. So cutting the
columns that are padding in *every* example of a batch gives the same numbers for the real
tokens (up to float summation order) and costs a fraction of the compute: GLUE pairs average
~50 WordPiece tokens against a ``max_seq_length`` of 128.

Batches are cut to the last real position of their longest example, rounded up to a multiple
(``Runtime.padding_multiple``: 8 on CPU/GPU, 64 under XLA, which compiles one program per
shape; TPUs need static shapes and keep the full length). Only the batch's composition decides
its length, so the data order, the batches and resume are exactly the original's.

Works on dicts of ``[B, S]`` arrays (``input_ids``, ``input_mask``, ``segment_ids``); other
entries (labels) pass through.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

SEQUENCE_KEYS = ("input_ids", "input_mask", "segment_ids")


def trimmed_length(input_mask: np.ndarray, multiple: int) -> int:
    """Columns to keep of a ``[B, S]`` mask: last real position + 1, rounded up, at most S."""
    mask = np.asarray(input_mask)
    seq = mask.shape[1]
    if mask.size == 0:
        return seq
    real = np.flatnonzero(mask.any(axis=0))
    last = int(real[-1]) + 1 if len(real) else 1
    return min(seq, -(-last // multiple) * multiple)


def trim_arrays(batch: Mapping[str, Any], multiple: int | None) -> dict[str, Any]:
    """numpy: ``batch`` with its sequence arrays cut to :func:`trimmed_length` columns."""
    out = dict(batch)
    if not multiple:
        return out
    length = trimmed_length(batch["input_mask"], multiple)
    for key in SEQUENCE_KEYS:
        if key in out:
            out[key] = np.asarray(out[key])[:, :length]
    return out


def trim_dataset(dataset, multiple: int | None):
    """tf.data: map every batch through the same cut (unchanged when ``multiple`` is None)."""
    if not multiple:
        return dataset
    import tensorflow as tf

    def trim(batch):
        mask = tf.cast(batch["input_mask"], tf.int32)
        seq = tf.shape(mask)[1]
        positions = tf.range(1, seq + 1, dtype=tf.int32)  # 1-based, so "no real token" gives 0
        last = tf.maximum(tf.reduce_max(mask * positions[tf.newaxis, :]), 1)
        length = tf.minimum(seq, (last + multiple - 1) // multiple * multiple)
        return {key: (value[:, :length] if key in SEQUENCE_KEYS else value) for key, value in batch.items()}

    return dataset.map(trim, num_parallel_calls=1, deterministic=True)
