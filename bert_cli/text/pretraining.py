"""Masked-LM / next-sentence pretraining instances, as the original ``create_pretraining_data.py``.

Pure Python (no TensorFlow). Two ways to run it, both built from the same per-document and
masking functions:

**Exact mode** (:func:`create_training_records`) reproduces the original's output bit for bit:
the whole corpus is held in memory, one ``random.Random(seed)`` drives every draw in the
original's order (document shuffle; per document the short-target draw, the ``a_end`` draw,
the random-next coin, up to 10 tries for a different random document, ``random_start``,
the front/back truncation coins, the candidate shuffle, the 80/10/10 draws per WordPiece and
the random-word index), and the instances are shuffled once at the end.

**Sharded mode** (:func:`iter_shards` + :func:`process_shard`) scales to corpora that do not
fit in memory. The document stream is cut, at document boundaries, into shards of about
``shard_chars`` characters (at least 2 documents each, so a random next document always
exists). Each shard is processed on its own, by the same code as the exact mode, with its
own ``random.Random`` seeded from ``sha256(seed, shard index)``. It differs from the exact
mode in three ways, and only these:

* documents are shuffled **within their shard**, not across the corpus;
* the random "next sentence" document is drawn **from the same shard**, not from the whole
  corpus;
* instances are shuffled **within their shard** (all ``dupe_factor`` copies of a document
  end up in the same shard's output).

Shard boundaries depend only on the input and ``shard_chars``, so the output depends only on
the seed and the shard size, never on how many worker processes ran the shards.

Documents and shards come from :mod:`bert_cli.text.documents`, the masking and the options from
:mod:`bert_cli.text.masking` (everything works on token ids), the original's random draws from
:mod:`bert_cli.text.draws`.
"""

from __future__ import annotations

import hashlib
import random
from array import array
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from .documents import document_chars, tokenize_documents
from .draws import randint, shuffle
from .masking import PretrainOptions, VocabIds, create_masked_lm_predictions
from .example_proto import (
    Feature,
    feature_entry,
    float_feature,
    int64_feature,
    int64_feature_from_packed,
    packed_varints,
    varint_table,
)
from .tfrecord import frame_record

__all__ = [
    "Instance",
    "Stats",
    "create_instances_from_document",
    "truncate_seq_pair",
    "create_training_instances",
    "create_training_records",
    "InstanceSerializer",
    "shard_seed",
    "process_shard",
    "ShardResult",
]


class Instance:
    """One training instance, in id space (tokens already masked)."""

    __slots__ = ("input_ids", "len_a", "masked_lm_positions", "masked_lm_ids", "is_random_next")

    def __init__(self, input_ids, len_a, masked_lm_positions, masked_lm_ids, is_random_next):
        self.input_ids: list[int] = input_ids  # [CLS] A [SEP] B [SEP], after masking
        self.len_a: int = len_a  # len(tokens_a)
        self.masked_lm_positions: list[int] = masked_lm_positions  # ascending
        self.masked_lm_ids: list[int] = masked_lm_ids  # the original ids at those positions
        self.is_random_next: bool = is_random_next

    @property
    def segment_ids(self) -> list[int]:
        n_a = self.len_a + 2
        return [0] * n_a + [1] * (len(self.input_ids) - n_a)

    def __repr__(self) -> str:
        return (
            f"Instance(input_ids={self.input_ids}, len_a={self.len_a}, "
            f"masked_lm_positions={self.masked_lm_positions}, "
            f"masked_lm_ids={self.masked_lm_ids}, is_random_next={self.is_random_next})"
        )


@dataclass
class Stats:
    """Counters of one run (or one shard)."""

    documents: int = 0
    instances: int = 0
    tokens: int = 0  # real tokens in the instances, [CLS]/[SEP] included, padding excluded
    masked: int = 0  # masked positions (predictions)
    random_next: int = 0
    single_document_shards: int = 0

    def add(self, other: "Stats") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


# ------------------------------------------------------------------------- instance creation


def truncate_seq_pair(tokens_a: list, tokens_b: list, max_num_tokens: int, rng) -> None:
    """Trim the longer list (tie: ``tokens_b``) one token at a time, in place, until the pair
    fits; each step deletes from the front when ``rng.random() < 0.5``, else from the back."""
    rand = rng.random
    a_lo, a_hi, b_lo, b_hi = 0, len(tokens_a), 0, len(tokens_b)
    while (a_hi - a_lo) + (b_hi - b_lo) > max_num_tokens:
        if a_hi - a_lo > b_hi - b_lo:
            if rand() < 0.5:
                a_lo += 1
            else:
                a_hi -= 1
        else:
            if rand() < 0.5:
                b_lo += 1
            else:
                b_hi -= 1
    if a_lo or a_hi != len(tokens_a):
        tokens_a[:] = tokens_a[a_lo:a_hi]
    if b_lo or b_hi != len(tokens_b):
        tokens_b[:] = tokens_b[b_lo:b_hi]



def create_instances_from_document(
    all_documents: Sequence[Sequence[list[int]]],
    document_index: int,
    options: PretrainOptions,
    vocab: VocabIds,
    rng: random.Random,
) -> list[Instance]:
    """The original's ``create_instances_from_document``, in id space (same draws, same order)."""
    document = all_documents[document_index]
    max_num_tokens = options.max_seq_length - 3
    rand = rng.random

    target_seq_length = max_num_tokens
    if rand() < options.short_seq_prob:
        target_seq_length = randint(rng, 2, max_num_tokens)

    instances: list[Instance] = []
    chunk: list[list[int]] = []
    current_length = 0
    i = 0
    n_segments = len(document)
    while i < n_segments:
        segment = document[i]
        chunk.append(segment)
        current_length += len(segment)
        if i == n_segments - 1 or current_length >= target_seq_length:
            a_end = 1
            if len(chunk) >= 2:
                a_end = randint(rng, 1, len(chunk) - 1)
            tokens_a: list[int] = []
            for j in range(a_end):
                tokens_a.extend(chunk[j])

            tokens_b: list[int] = []
            if len(chunk) == 1 or rand() < 0.5:
                is_random_next = True
                target_b_length = target_seq_length - len(tokens_a)
                last_doc = len(all_documents) - 1
                for _ in range(10):
                    random_document_index = randint(rng, 0, last_doc)
                    if random_document_index != document_index:
                        break
                random_document = all_documents[random_document_index]
                random_start = randint(rng, 0, len(random_document) - 1)
                for j in range(random_start, len(random_document)):
                    tokens_b.extend(random_document[j])
                    if len(tokens_b) >= target_b_length:
                        break
                i -= len(chunk) - a_end  # put the unused segments back
            else:
                is_random_next = False
                for j in range(a_end, len(chunk)):
                    tokens_b.extend(chunk[j])
            truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)

            ids = [vocab.cls_id, *tokens_a, vocab.sep_id, *tokens_b, vocab.sep_id]
            masked, positions, labels = create_masked_lm_predictions(ids, options, vocab, rng)
            instances.append(Instance(masked, len(tokens_a), positions, labels, is_random_next))
            chunk = []
            current_length = 0
        i += 1
    return instances


def _iter_instances(
    all_documents: list[list[list[int]]],
    options: PretrainOptions,
    vocab: VocabIds,
    rng: random.Random,
    on_document: Callable[[int], None] | None = None,
) -> Iterator[Instance]:
    """Shuffle the documents, then ``dupe_factor`` rounds of per-document instances."""
    shuffle(all_documents, rng)
    done = 0
    for _ in range(options.dupe_factor):
        for document_index in range(len(all_documents)):
            yield from create_instances_from_document(
                all_documents, document_index, options, vocab, rng
            )
            done += 1
            if on_document is not None and done % 1000 == 0:
                on_document(done)


def create_training_instances(
    all_documents: list[list[list[int]]],
    options: PretrainOptions,
    vocab: VocabIds,
    rng: random.Random,
    on_document: Callable[[int], None] | None = None,
) -> list[Instance]:
    """The original's ``create_training_instances`` after tokenization.

    Shuffles ``all_documents`` in place, runs ``dupe_factor`` rounds over the documents and
    shuffles the instances. ``on_document(n)`` is called every 1000 documents processed.
    """
    instances = list(_iter_instances(all_documents, options, vocab, rng, on_document))
    shuffle(instances, rng)
    return instances


# ------------------------------------------------------------------------------ serialization


class InstanceSerializer:
    """Turn instances into serialized ``tf.train.Example`` s with the original's features.

    Features, in order: ``input_ids, input_mask, segment_ids, masked_lm_positions,
    masked_lm_ids, masked_lm_weights (float), next_sentence_labels``; padded with 0 (0.0 for
    the weights) to ``max_seq_length`` / ``max_predictions_per_seq``.

    The map entries that depend only on lengths (mask, segments, weights, label) are cached,
    and the id lists are packed straight from a varint table, padding being zero bytes (the
    varint of 0 is one ``0x00`` byte).
    """

    def __init__(self, max_seq_length: int, max_predictions_per_seq: int) -> None:
        self.max_seq_length = max_seq_length
        self.max_predictions_per_seq = max_predictions_per_seq
        self._table = varint_table()
        self._prefix = {
            key: feature_entry(key, Feature(b""))[2:-1]  # key field + the value's tag
            for key in ("input_ids", "masked_lm_positions", "masked_lm_ids")
        }
        self._mask: dict[int, bytes] = {}
        self._segments: dict[tuple[int, int], bytes] = {}
        self._weights: dict[int, bytes] = {}
        self._nsp = (
            feature_entry("next_sentence_labels", int64_feature([0])),
            feature_entry("next_sentence_labels", int64_feature([1])),
        )

    def features(self, instance: Instance) -> dict[str, Feature]:
        """The seven features (slow path, for inspection and tests)."""
        L, P = self.max_seq_length, self.max_predictions_per_seq
        n, n_a, k = len(instance.input_ids), instance.len_a + 2, len(instance.masked_lm_positions)
        return {
            "input_ids": int64_feature(instance.input_ids + [0] * (L - n)),
            "input_mask": int64_feature([1] * n + [0] * (L - n)),
            "segment_ids": int64_feature([0] * n_a + [1] * (n - n_a) + [0] * (L - n)),
            "masked_lm_positions": int64_feature(instance.masked_lm_positions + [0] * (P - k)),
            "masked_lm_ids": int64_feature(instance.masked_lm_ids + [0] * (P - k)),
            "masked_lm_weights": float_feature([1.0] * k + [0.0] * (P - k)),
            "next_sentence_labels": int64_feature([int(instance.is_random_next)]),
        }

    def _packed(self, values: list[int], pad: int) -> bytes:
        """Varints of ``values`` (vocabulary ids or positions, all >= 0) and ``pad`` zeros."""
        table = self._table
        try:
            payload = b"".join([table[v] for v in values])
        except IndexError:  # an id past the table (a vocabulary over 131,072 entries)
            payload = packed_varints(values)
        return payload + bytes(pad)

    def _int64_entry(self, key: str, payload: bytes) -> bytes:
        """The map entry of an Int64List feature whose packed payload is given."""
        table = self._table
        if len(payload) + 64 >= len(table):
            return feature_entry(key, int64_feature_from_packed(payload))
        inner = b"\x0a" + table[len(payload)] + payload
        feature = b"\x1a" + table[len(inner)] + inner
        body = self._prefix[key] + table[len(feature)] + feature
        return b"\x0a" + table[len(body)] + body

    def serialize(self, instance: Instance) -> bytes:
        """The serialized ``tf.train.Example``."""
        L, P = self.max_seq_length, self.max_predictions_per_seq
        ids = instance.input_ids
        n = len(ids)
        if n > L:
            raise ValueError(f"instance of {n} tokens exceeds max_seq_length {L}")
        n_a = instance.len_a + 2
        positions = instance.masked_lm_positions
        k = len(positions)
        mask = self._mask.get(n)
        if mask is None:
            mask = self._mask[n] = feature_entry("input_mask", int64_feature([1] * n + [0] * (L - n)))
        segments = self._segments.get((n_a, n))
        if segments is None:
            segments = self._segments[(n_a, n)] = feature_entry(
                "segment_ids", int64_feature([0] * n_a + [1] * (n - n_a) + [0] * (L - n))
            )
        weights = self._weights.get(k)
        if weights is None:
            weights = self._weights[k] = feature_entry(
                "masked_lm_weights", float_feature([1.0] * k + [0.0] * (P - k))
            )
        if L <= 128:  # every position is a one-byte varint
            positions_payload = bytes(positions) + bytes(P - k)
        else:
            positions_payload = self._packed(positions, P - k)
        body = b"".join(
            (
                self._int64_entry("input_ids", self._packed(ids, L - n)),
                mask,
                segments,
                self._int64_entry("masked_lm_positions", positions_payload),
                self._int64_entry("masked_lm_ids", self._packed(instance.masked_lm_ids, P - k)),
                weights,
                self._nsp[1 if instance.is_random_next else 0],
            )
        )
        return b"\x0a" + packed_varints([len(body)]) + body

    def framed(self, instance: Instance) -> bytes:
        """The TFRecord (framed, with checksums) of the instance."""
        return frame_record(self.serialize(instance))


def create_training_records(
    all_documents: list[list[list[int]]],
    options: PretrainOptions,
    vocab: VocabIds,
    rng: random.Random,
    on_document: Callable[[int, int], None] | None = None,
) -> tuple[list[bytes], Stats]:
    """Exact mode: the framed TFRecords of all instances, in the original's output order.

    ``on_document(documents_done, instances_made)`` is called every 1000 documents processed.

    Each instance is serialized as soon as it is made (serializing draws nothing from the rng,
    and the final shuffle draws the same numbers whatever the list holds), so only the compact
    records are kept in memory.
    """
    serializer = InstanceSerializer(options.max_seq_length, options.max_predictions_per_seq)
    serialize = serializer.serialize
    stats = Stats(documents=len(all_documents))
    records: list[bytes] = []
    append = records.append
    tokens = masked = random_next = 0
    counted = None if on_document is None else (lambda done: on_document(done, len(records)))
    for inst in _iter_instances(all_documents, options, vocab, rng, counted):
        tokens += len(inst.input_ids)
        masked += len(inst.masked_lm_positions)
        random_next += inst.is_random_next
        append(frame_record(serialize(inst)))
    shuffle(records, rng)
    stats.instances, stats.tokens, stats.masked, stats.random_next = (
        len(records), tokens, masked, random_next
    )
    return records, stats


# ---------------------------------------------------------------------------------- sharding


def shard_seed(seed: int, shard_index: int) -> int:
    """The seed of one shard's ``random.Random``: stable across Python versions and runs."""
    digest = hashlib.sha256(f"bert-pretrain-data:{seed}:{shard_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass
class ShardResult:
    """What a worker sends back: the shard's framed records (in output order) and counters.

    The records travel as one ``bytes`` plus their sizes: far cheaper to pickle and to hold
    than a list of small ``bytes`` objects.
    """

    index: int
    data: bytes = b""
    sizes: array = field(default_factory=lambda: array("L"))
    stats: Stats = field(default_factory=Stats)
    chars: int = 0

    @property
    def records(self) -> Iterator[memoryview]:
        """Each framed record, in order."""
        view = memoryview(self.data)
        offset = 0
        for size in self.sizes:
            yield view[offset : offset + size]
            offset += size


def process_shard(
    shard_index: int,
    documents: Sequence[Sequence[str]],
    seed: int,
    options: PretrainOptions,
    tokenizer,
    vocab: VocabIds,
) -> ShardResult:
    """Sharded mode: tokenize one shard's raw documents and make its framed records.

    Same algorithm as the exact mode applied to the shard alone, with the shard's own rng.
    """
    chars = sum(document_chars(d) for d in documents)
    all_documents = tokenize_documents(documents, tokenizer)
    result = ShardResult(index=shard_index, chars=chars)
    if not all_documents:
        return result
    rng = random.Random(shard_seed(seed, shard_index))
    records, stats = create_training_records(all_documents, options, vocab, rng)
    stats.single_document_shards = int(len(all_documents) == 1)
    result.sizes = array("L", map(len, records))
    result.data = b"".join(records)
    result.stats = stats
    return result


# Per-process state of a sharded-mode worker (set by :func:`init_worker`).
_WORKER: dict = {}


def init_worker(vocab_file: str, do_lower_case: bool, options: PretrainOptions) -> None:
    """Pool initializer: load the tokenizer once per worker process."""
    from .tokenization import FullTokenizer

    tokenizer = FullTokenizer(vocab_file, do_lower_case=do_lower_case)
    _WORKER.update(
        tokenizer=tokenizer,
        vocab=VocabIds.from_vocab(tokenizer.vocab, vocab_file),
        options=options,
    )


def worker_process_shard(args: tuple[int, list[list[str]], int]) -> ShardResult:
    """Pool task: :func:`process_shard` with the worker's tokenizer."""
    shard_index, documents, seed = args
    return process_shard(
        shard_index, documents, seed, _WORKER["options"], _WORKER["tokenizer"], _WORKER["vocab"]
    )
