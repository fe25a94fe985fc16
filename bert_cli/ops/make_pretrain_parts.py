"""``bert make-pretrain-data`` on several machines: one machine's part of a shard set (no TensorFlow).

The options (``--num-workers-total N --worker-index I``), the shards a machine owns (shard k
belongs to worker k % N) and its part manifest; the set's layout, publication and checks are
:mod:`bert_cli.text.shardparts`.
"""

from __future__ import annotations

import hashlib
import os
from typing import Iterable, Iterator

from ..errors import UsageError
from ..fileio import os_error
from ..text.documents import iter_shards
from ..text.shardparts import Part, part_record

__all__ = ["check_part_options", "NumberedShards", "part_manifest"]


def check_part_options(
    num_workers_total: int | None, worker_index: int | None, *, pattern_output: bool, num_output_shards: int | None
) -> Part | None:
    """The machine's :class:`Part` (None for a whole-set run); UsageError unless both options
    are given, in range (``N >= 1``, ``0 <= I < N``), with one output pattern alone."""
    n, i = num_workers_total, worker_index
    if n is None and i is None:
        return None
    if n is None or i is None:
        given, missing = ("--worker-index", "--num-workers-total") if n is None else ("--num-workers-total", "--worker-index")
        raise UsageError(f"{given} needs {missing}", hint="pass both: --num-workers-total N --worker-index I (0 <= I < N)")
    if n < 1:
        raise UsageError(f"--num-workers-total must be at least 1, got {n}")
    if not 0 <= i < n:
        raise UsageError(f"--worker-index must be in 0..{n - 1} for --num-workers-total {n}, got {i}")
    if not pattern_output or num_output_shards is not None:
        raise UsageError(
            "--num-workers-total needs one output pattern such as out-%05d.tfrecord (one file per shard),"
            " without --num-output-shards",
            hint=f"e.g. -o data/out-%05d.tfrecord --num-workers-total {n} --worker-index {i}",
        )
    return Part(i, n)


class NumberedShards:
    """The ``(number, documents)`` shards of a document stream that ``part`` owns (all of them
    for None); :attr:`total` counts every shard seen, owned or not."""

    def __init__(self, documents: Iterable[list[str]], shard_chars: int, part: Part | None) -> None:
        self.documents = documents
        self.shard_chars = shard_chars
        self.part = part
        self.total = 0

    def __iter__(self) -> Iterator[tuple[int, list[list[str]]]]:
        for index, shard in enumerate(iter_shards(self.documents, self.shard_chars)):
            self.total = index + 1
            if self.part is None or self.part.owns(index):
                yield index, shard


def _file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise os_error(exc) from None
    return digest.hexdigest()


def part_manifest(part: Part, shards: NumberedShards, corpus_sha256: str, corpus_bytes: int, vocab_file,
                  options: dict) -> dict:
    """The extra manifest keys of a machine's part (``{"part": {...}}``)."""
    return {"part": part_record(
        part, shards=shards.total, corpus_sha256=corpus_sha256, corpus_bytes=corpus_bytes,
        vocab_sha256=_file_sha256(vocab_file), options=options,
    )}
