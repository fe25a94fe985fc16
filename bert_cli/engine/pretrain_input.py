"""The pretraining input pipelines: a training stream that resumes exactly, and the original's eval input.

Training input and exact resume
-------------------------------
The original reads: file list -> ``repeat`` -> ``shuffle(len(files))`` -> sloppy
``parallel_interleave`` (cycle ``min(4, n_files)``) -> ``shuffle(100)`` -> batch (drop
remainder) -> int64 to int32. Its order is random and not reproducible, so a restarted run
could neither skip what it had seen nor know where it stood.

Here the example stream is a deterministic function of ``(seed, file list)`` made of *epochs*:
epoch ``e`` shuffles the file list with seed ``f(seed, e)``, interleaves the files
deterministically (cycle ``min(4, n_files)``, one record from each in turn) and shuffles the
records in a buffer of 100 with seed ``f(seed, e)``; the epochs are concatenated, batched
(drop remainder), parsed and cast to int32, and prefetched. An optimizer step consumes
``gradient_accumulation_steps x train_batch_size`` examples, so a run resumed at
``global_step = g`` skips ``g x K x B`` examples: whole epochs are skipped for free (the number
of records per epoch is counted once from the TFRecord headers) and the rest of the current
epoch with ``Dataset.skip``. The resumed run therefore sees exactly the batches the
uninterrupted run would have seen: no lost or repeated steps.

Within an epoch this is the original's pipeline; across the epoch boundary the file shuffle and
the record buffer restart (the original's ``repeat`` came before the file shuffle, letting
epochs blend by up to 100 records) -- statistically the same thing.

Under fp16 a step whose gradients overflow is skipped (``global_step`` does not advance) but its
examples were consumed; a run resumed after such skips is shifted by that many batches. The
loss scale is not in the (original-layout) checkpoint either: it restarts at 2**15.

Dropout draws from TensorFlow's stateful generator, which a new process restarts, so a resumed
run matches the uninterrupted one bit for bit only with dropout 0 (weights, slots, step and
data position are always exact).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import tensorflow as tf

from ..errors import InputError
from ..modelconfig import BertConfig
from .pretrain_data import count_records, make_parser

__all__ = ["FILE_SHUFFLE_CYCLE", "RECORD_SHUFFLE_BUFFER", "WINDOW_WEIGHT", "eval_dataset", "train_dataset",
           "with_window_weight"]

FILE_SHUFFLE_CYCLE = 4  # the original's min(4, n_files)
RECORD_SHUFFLE_BUFFER = 100  # the original's shuffle(buffer_size=100)


# ============================================================================ datasets


_PIPELINE_GLOBAL_SEED = 20181011  # any fixed non-zero value (a (0, op-seed tensor) pair breaks get_seed)


@contextlib.contextmanager
def _pinned_global_seed() -> Iterator[None]:
    """Trace dataset functions under a fixed global seed, then restore the previous one.

    ``Dataset.shuffle(seed=s)`` also depends on the global seed; pinning it here makes the
    data order a function of the data seed alone, whatever else the process seeded.
    """
    from tensorflow.python.eager import context  # the only way to read the current global seed

    previous = context.global_seed()
    tf.random.set_seed(_PIPELINE_GLOBAL_SEED)
    try:
        yield
    finally:
        tf.random.set_seed(previous)


def train_dataset(
    files: Sequence[str],
    config: BertConfig,
    *,
    batch_size: int,
    max_seq_length: int,
    max_predictions_per_seq: int,
    seed: int,
    start_example: int = 0,
    num_records: int | None = None,
    accumulation_steps: int = 1,
) -> tf.data.Dataset:
    """The training stream from example ``start_example`` on (see the module docstring).

    ``num_records`` (records per epoch) is counted from the files when resuming and not given.
    Every batch carries :data:`WINDOW_WEIGHT` (see :func:`with_window_weight`) for the
    ``accumulation_steps`` batches of one optimizer step.
    """
    files = [str(f) for f in files]
    n_files = len(files)
    cycle = min(FILE_SHUFFLE_CYCLE, n_files)
    first_epoch, offset = 0, 0
    if start_example > 0:
        if num_records is None:
            num_records = count_records(files)
        if num_records <= 0:
            raise InputError("the input files hold no records", path=files[0])
        first_epoch, offset = divmod(int(start_example), num_records)
    seed = int(seed) % (2**31 - 1)

    @tf.autograph.experimental.do_not_convert
    def epoch(e: tf.Tensor) -> tf.data.Dataset:
        epoch_seed = tf.constant(seed, tf.int64) * 1_000_003 + e
        names = tf.data.Dataset.from_tensor_slices(files).shuffle(n_files, seed=epoch_seed, reshuffle_each_iteration=False)
        records = names.interleave(
            tf.data.TFRecordDataset,
            cycle_length=cycle,
            block_length=1,
            num_parallel_calls=cycle,
            deterministic=True,
        )
        return records.shuffle(RECORD_SHUFFLE_BUFFER, seed=epoch_seed + 1, reshuffle_each_iteration=False)

    with _pinned_global_seed():
        ds = tf.data.Dataset.range(first_epoch, 2**62).flat_map(epoch)
    if offset:
        ds = ds.skip(offset)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(make_parser(config, max_seq_length, max_predictions_per_seq), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return with_window_weight(ds, accumulation_steps).prefetch(tf.data.AUTOTUNE)


# The masked-LM weight of one optimizer step's batch, per micro-batch: [B], every entry the same.
WINDOW_WEIGHT = "masked_lm_window_weight"


def with_window_weight(ds: tf.data.Dataset, accumulation_steps: int) -> tf.data.Dataset:
    """Give every (global) batch ``WINDOW_WEIGHT``: the sum of ``masked_lm_weights`` over the
    ``accumulation_steps`` consecutive batches of its optimizer step, divided by their number.

    The masked-LM loss is normalized by the weight of the whole step's batch, not of each part:
    K micro-batches (and R replicas) then give exactly the gradient of one K x bigger batch, as
    ``--gradient-accumulation-steps`` promises (a per-part ratio would weigh a part with few
    masked tokens as much as one with many). A column of the batch, so a replica's share has it.
    """
    k = int(accumulation_steps)

    def add(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        weights = batch["masked_lm_weights"]
        total = tf.reduce_sum(weights) / float(k)
        return {**batch, WINDOW_WEIGHT: tf.ones_like(weights[..., 0]) * total}

    if k == 1:
        return ds.map(add)  # sequential: deterministic by construction
    return ds.batch(k, drop_remainder=True).map(add).unbatch()


def eval_dataset(
    files: Sequence[str],
    config: BertConfig,
    *,
    batch_size: int,
    max_seq_length: int,
    max_predictions_per_seq: int,
    max_eval_steps: int,
) -> tf.data.Dataset:
    """The original eval input: files read in order, repeated, ``max_eval_steps`` full batches."""
    ds = tf.data.TFRecordDataset([str(f) for f in files]).repeat()
    ds = ds.batch(batch_size, drop_remainder=True).take(max_eval_steps)
    ds = ds.map(make_parser(config, max_seq_length, max_predictions_per_seq), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
