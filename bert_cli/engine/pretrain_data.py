"""Pretraining input files (``make-pretrain-data``'s TFRecords): checks before any training, and
the parser of their records. Used by :mod:`bert_cli.engine.pretrain`.

* :func:`inspect_input_files` -- pure-Python look at the first record of every input file:
  missing features and a ``max_seq_length`` / ``max_predictions_per_seq`` that differs from the
  data are clear :class:`~bert_cli.errors.InputError` s (not a parse failure mid-run).
* :func:`check_first_batches` -- ids of the first batches against the model config
  (``input_ids``/``masked_lm_ids`` < ``vocab_size`` and the rest) BEFORE any training: the
  original silently trained on garbage (or NaN) with a vocabulary that does not match the data.
  Every later batch is range-checked inside the input pipeline too (cheap, on the host).
* :func:`make_parser` -- serialized examples to the int32 feature dict; :func:`data_error`
  turns a pipeline failure into an InputError naming the files.
"""

from __future__ import annotations

import dataclasses
import os
import re
import struct
from typing import Sequence

import tensorflow as tf

from .. import console
from ..errors import InputError
from ..modelconfig import BertConfig
from ..text.example_proto import decode_example
from ..text.tfrecord import read_records, verify_records
from .model import check_inputs, check_range, check_seq_length

__all__ = [
    "FEATURES", "DataShape", "inspect_input_files", "verify_input_files", "count_records", "feature_spec",
    "make_parser", "check_first_batches", "data_error",
]

FEATURES: tuple[str, ...] = (
    "input_ids",
    "input_mask",
    "segment_ids",
    "masked_lm_positions",
    "masked_lm_ids",
    "masked_lm_weights",
    "next_sentence_labels",
)
SEQ_FEATURES = ("input_ids", "input_mask", "segment_ids")
PRED_FEATURES = ("masked_lm_positions", "masked_lm_ids", "masked_lm_weights")
_DATA_CHECK_TAG = "bert-data-check"


# ============================================================================ input files


@dataclasses.dataclass(frozen=True)
class DataShape:
    """Feature lengths found in the data: sequence length and masked positions per sequence."""

    max_seq_length: int
    max_predictions_per_seq: int


def inspect_input_files(
    files: Sequence[str], max_seq_length: int, max_predictions_per_seq: int
) -> DataShape:
    """Check every file's first record has the original features with the expected lengths.

    Pure Python (reads one record per file). Raises :class:`InputError` naming the file for a
    missing feature, a length that differs from ``max_seq_length`` /
    ``max_predictions_per_seq``, or when no file has any record.
    """
    found: DataShape | None = None
    for path in files:
        first = _first_record(path)
        if first is None:
            console.warn(f"{path}: no records")
            continue
        try:
            example = decode_example(first)
        except ValueError as exc:
            raise InputError(f"record 0 is not a tf.train.Example ({exc})", path=path) from None
        missing = [name for name in FEATURES if name not in example]
        if missing:
            raise InputError(
                f"not pretraining data: features {', '.join(missing)} are missing (it has {', '.join(sorted(example)) or 'none'})",
                path=path,
                hint="make the input with `bert make-pretrain-data`",
            )
        seq = {len(example[n]) for n in SEQ_FEATURES}
        pred = {len(example[n]) for n in PRED_FEATURES}
        if len(seq) != 1 or len(pred) != 1:
            raise InputError("inconsistent feature lengths in record 0", path=path)
        shape = DataShape(seq.pop(), pred.pop())
        if shape.max_seq_length != max_seq_length:
            raise InputError(
                f"the data has sequences of length {shape.max_seq_length} but --max-seq-length is {max_seq_length}",
                path=path,
                hint=f"pass --max-seq-length {shape.max_seq_length} (the value the data was made with)",
            )
        if shape.max_predictions_per_seq != max_predictions_per_seq:
            raise InputError(
                f"the data has {shape.max_predictions_per_seq} masked positions per sequence but "
                f"--max-predictions-per-seq is {max_predictions_per_seq}",
                path=path,
                hint=f"pass --max-predictions-per-seq {shape.max_predictions_per_seq} (the value the data was made with)",
            )
        found = shape
    if found is None:
        raise InputError(f"the input files hold no records: {', '.join(files)}", hint="check --input-file")
    return found


VERIFY_MAX_BYTES = 1 << 30  # inputs up to 1 GiB in all are checksummed before training


def verify_input_files(files: Sequence[str], max_bytes: int = VERIFY_MAX_BYTES) -> None:
    """Check the framing and both crc32c of every record BEFORE training, when the files are
    small enough (``max_bytes`` in all) to read through quickly; larger inputs are checked as
    they are read (:func:`data_error` then names the damaged file). Raises :class:`InputError`
    naming the file, record and byte offset."""
    if sum(os.path.getsize(f) for f in files) > max_bytes:
        console.debug(f"input files exceed {max_bytes} bytes: records are checksummed as they are read")
        return
    for path in files:
        verify_records(path)


def _first_record(path: str) -> bytes | None:
    for record in read_records(path):
        return record
    return None


def count_records(files: Sequence[str]) -> int:
    """Number of records in the TFRecord files, from their length headers (no data read)."""
    total = 0
    for path in files:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            offset = 0
            while offset < size:
                header = fh.read(8)
                if len(header) < 8:
                    raise InputError(f"truncated TFRecord at byte {offset}", path=path)
                (length,) = struct.unpack("<Q", header)
                offset += 16 + length
                if offset > size:
                    raise InputError(f"truncated TFRecord at record {total} (byte {offset - 16 - length})", path=path)
                fh.seek(offset)
                total += 1
    return total


# ============================================================================ parsing & checks


def feature_spec(max_seq_length: int, max_predictions_per_seq: int) -> dict[str, tf.io.FixedLenFeature]:
    """The original's ``name_to_features``."""
    S, P = max_seq_length, max_predictions_per_seq
    return {
        "input_ids": tf.io.FixedLenFeature([S], tf.int64),
        "input_mask": tf.io.FixedLenFeature([S], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([S], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([P], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([P], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([P], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def make_parser(config: BertConfig, max_seq_length: int, max_predictions_per_seq: int, *, checks: bool = True):
    """A function: serialized batch [B] -> dict of int32 / float32 features, range-checked."""
    spec = feature_spec(max_seq_length, max_predictions_per_seq)
    limits = {
        "input_ids": config.vocab_size,
        "masked_lm_ids": config.vocab_size,
        "segment_ids": config.type_vocab_size,
        "masked_lm_positions": max_seq_length,
        "input_mask": 2,
        "next_sentence_labels": 2,
    }

    @tf.autograph.experimental.do_not_convert
    def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        features = tf.io.parse_example(serialized, spec)
        asserts = []
        if checks:
            for name, limit in limits.items():
                value = features[name]
                ok = tf.logical_and(tf.reduce_min(value) >= 0, tf.reduce_max(value) < limit)
                asserts.append(
                    tf.debugging.Assert(
                        ok,
                        [f"{_DATA_CHECK_TAG}: {name} outside [0, {limit})", tf.reduce_min(value), tf.reduce_max(value)],
                    )
                )
        with tf.control_dependencies(asserts):
            return {
                name: tf.identity(tf.cast(t, tf.int32) if t.dtype == tf.int64 else t) for name, t in features.items()
            }

    return parse


def check_first_batches(
    files: Sequence[str],
    config: BertConfig,
    max_seq_length: int,
    max_predictions_per_seq: int,
    *,
    batch_size: int = 64,
    num_batches: int = 2,
) -> None:
    """Check the first records (in file order) against the model config BEFORE any training.

    ``input_ids``/``segment_ids``/``input_mask`` with :func:`~bert_cli.engine.model.check_inputs`,
    ``masked_lm_ids`` < ``vocab_size``, ``masked_lm_positions`` < ``max_seq_length`` and NSP
    labels in {0, 1}. Raises :class:`InputError` naming the files.
    """
    check_seq_length(config, max_seq_length)
    source = files[0] if len(files) == 1 else f"{files[0]} (+{len(files) - 1} more)"
    parse = make_parser(config, max_seq_length, max_predictions_per_seq, checks=False)
    ds = tf.data.TFRecordDataset(list(files)).batch(batch_size).take(num_batches).map(parse)
    vocab_hint = "the data was made with another vocabulary than the model's bert_config.json (vocab_size)"
    try:
        batches = list(ds.as_numpy_iterator())
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as exc:
        raise data_error(exc, files) from None
    for batch in batches:
        check_inputs(config, batch["input_ids"], batch["segment_ids"], batch["input_mask"], source=source)
        check_range(batch["masked_lm_ids"], "masked_lm_ids", config.vocab_size, "vocab_size", source, vocab_hint)
        check_range(batch["masked_lm_positions"], "masked_lm_positions", max_seq_length, "max_seq_length", source)
        check_range(batch["next_sentence_labels"], "next_sentence_labels", 2, "two classes", source)


def data_error(exc: tf.errors.OpError, files: Sequence[str]) -> InputError:
    """Turn a failure of the input pipeline into an InputError naming the files (for damaged
    records, the damaged file: TensorFlow's message has only the byte offset)."""
    text = str(exc)
    where = files[0] if len(files) == 1 else f"{files[0]} (+{len(files) - 1} more)"
    if isinstance(exc, tf.errors.DataLossError):
        for path in files:
            try:
                verify_records(path)
            except InputError as damaged:
                return damaged
        detail = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\].*$", "", text.splitlines()[0] if text else "")
        return InputError(f"damaged TFRecord data ({detail or type(exc).__name__})", path=where)
    match = re.search(re.escape(_DATA_CHECK_TAG) + r": (\w+) outside \[0, (\d+)\)\] \[(-?\d+)\] \[(-?\d+)\]", text)
    if match:
        name, limit, lo, hi = match.groups()
        bad = lo if int(lo) < 0 else hi
        return InputError(
            f"a batch has {name} outside [0, {limit}) (found {bad})",
            path=where,
            hint="the data was made with another vocabulary or --max-seq-length than this model",
        )
    return InputError(f"cannot read the input: {text.splitlines()[0] if text else type(exc).__name__}", path=where)
