"""One shard set written by several machines, each its part, with no coordinator (no TensorFlow).

``bert make-pretrain-data --num-workers-total N --worker-index I`` (sharded mode, output
pattern such as ``out-%05d.tfrecord``) reads the whole corpus, cuts it into the same shards as
a single-machine run (they depend only on the text and ``--shard-size-mb``), and processes and
writes only the shards it owns: **shard k belongs to worker k % N** (round-robin, so the
machines get even work whatever the corpus). Shard k is written as ``pattern % k`` with the
same bytes as a single-machine run writes it, so the union of the N parts equals the
single-machine output file for file. (Only a shard whose whole text tokenizes to nothing --
no instance at all -- numbers differently: a single machine skips its number, a worker leaves
a gap.)

**Publication.** Each worker publishes its own shards all together or not at all (as
:class:`~bert_cli.text.shardset.OutputSet` does for a whole set), with a hidden *part
manifest* ``.NAME.part-I-of-N.json`` beside them (``NAME`` being the pattern as given), in
the manifest format of :mod:`bert_cli.text.shardset` plus a ``"part"`` object::

    "part": {"index": I, "total": N,
             "shards": 37,                   # shards in the whole corpus
             "owned": [I, I + N, ...],       # this worker's shard numbers
             "corpus_sha256": "...", "corpus_bytes": 1234,  # the text as read
             "vocab_sha256": "...",
             "options": {...}}               # the options that decide the content

Workers may write into one shared folder or into separate folders (copy them together, or
pass every folder to ``bert pretrain --input-file``). A worker only ever removes what it
owns: its own earlier part, its own stale shards (pattern-named files whose number it owns)
and its hidden temporary files; it also drops the manifest of an earlier single-machine run of
the same name and the part manifests of a split into a different N. A rerun of one worker
replaces only its part. A single-machine run removes every part manifest of its name.

**Reading.** ``bert pretrain`` (:func:`check_parts`) accepts a set written in parts only when
the part manifests of all N workers are found in the folders of its input files, complete,
and consistent (same N, shard count, corpus, vocabulary and options); otherwise it names the
missing workers or the part that does not belong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import InputError, NotFoundError

__all__ = ["Part", "CONTENT_OPTIONS", "PART_GLOB", "parse_part_manifest", "part_record", "check_parts"]

#: The options of ``MakePretrainDataConfig`` that decide the shards' content (paths do not).
CONTENT_OPTIONS = (
    "do_lower_case", "max_seq_length", "max_predictions_per_seq", "masked_lm_prob", "short_seq_prob",
    "dupe_factor", "random_seed", "do_whole_word_mask", "shard_size_mb",
)
PART_GLOB = ".*.part-*-of-*.json"
_PART_NAME = re.compile(r"\.(?P<name>.+)\.part-(?P<index>\d+)-of-(?P<total>\d+)\.json")
_FLAGS = {name: "--" + name.replace("_", "-") for name in CONTENT_OPTIONS}


@dataclass(frozen=True)
class Part:
    """Worker ``index`` (0-based) of ``total`` machines writing one shard set."""

    index: int
    total: int

    def owns(self, shard: int) -> bool:
        return shard % self.total == self.index

    def manifest_path(self, name: str | Path) -> Path:
        """``.NAME.part-I-of-N.json`` beside ``name`` (the output pattern as given)."""
        p = Path(name)
        return p.with_name(f".{p.name}.part-{self.index}-of-{self.total}.json")

    @property
    def scratch_name(self) -> str:
        """The name of the worker's hidden scratch folders (``.NAME.part-I-of-N.XXXX.tmp``)."""
        return f"part-{self.index}-of-{self.total}"


def parse_part_manifest(filename: str) -> tuple[str, int, int] | None:
    """``(NAME, I, N)`` for a part manifest's file name, else None."""
    m = _PART_NAME.fullmatch(filename)
    return None if m is None else (m["name"], int(m["index"]), int(m["total"]))


def part_record(part: Part, *, shards: int, corpus_sha256: str, corpus_bytes: int, vocab_sha256: str,
                options: dict) -> dict:
    """The ``"part"`` object of a part manifest (see the module docstring)."""
    return {
        "index": part.index,
        "total": part.total,
        "shards": shards,
        "owned": [k for k in range(shards) if part.owns(k)],
        "corpus_sha256": corpus_sha256,
        "corpus_bytes": corpus_bytes,
        "vocab_sha256": vocab_sha256,
        "options": {k: options.get(k) for k in CONTENT_OPTIONS},
    }


def _rerun(output: str | Path, total: int, indexes: Iterable[int]) -> str:
    indexes = list(indexes)
    if len(indexes) == 1:
        return f"`bert make-pretrain-data -o {output} --num-workers-total {total} --worker-index {indexes[0]}` with the same corpus and options"
    return (f"`bert make-pretrain-data -o {output} --num-workers-total {total} --worker-index I` for I in"
            f" {', '.join(map(str, indexes))}, with the same corpus and options")


def _differs(ref: dict, other: dict) -> str | None:
    """What makes two ``"part"`` objects parts of different sets, in words; None when they agree."""
    if ref.get("total") != other.get("total"):
        return f"a split into {other.get('total')} machines, not {ref.get('total')}"
    if ref.get("corpus_sha256") != other.get("corpus_sha256") or ref.get("corpus_bytes") != other.get("corpus_bytes"):
        return "another corpus"
    if ref.get("vocab_sha256") != other.get("vocab_sha256"):
        return "another vocabulary"
    a, b = ref.get("options") or {}, other.get("options") or {}
    changed = [_FLAGS.get(k, k) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if changed:
        return "other options (" + ", ".join(changed) + ")"
    if ref.get("shards") != other.get("shards"):
        return f"{other.get('shards')} shards, not {ref.get('shards')}"
    return None


def check_parts(parts: Iterable[tuple[Path, dict]]) -> None:
    """Check that the part manifests of each set name are all there and agree.

    ``parts``: ``(path, manifest)`` of the part manifests of the sets in use (from the folders
    of the input files). NotFoundError naming the missing worker indexes; InputError naming a
    part manifest that is damaged or belongs to another run or split.
    """
    groups: dict[str, list[tuple[Path, dict, int, int]]] = {}
    for path, doc in parts:
        parsed = parse_part_manifest(path.name)
        info = doc.get("part")
        if parsed is None:
            continue
        name, index, total = parsed
        if not isinstance(info, dict) or info.get("index") != index or info.get("total") != total:
            raise InputError("damaged part manifest (its \"part\" does not match its name)", path=path,
                             hint="run " + _rerun(path.parent / name, total, [index]))
        groups.setdefault(name, []).append((path, info, index, total))
    for name, members in groups.items():
        members.sort(key=lambda m: (m[3], m[2], str(m[0])))
        ref_path, ref, _, total = members[0]
        for path, info, index, _ in members[1:]:
            why = _differs(ref, info)
            if why is not None:
                raise InputError(
                    f"part of worker {index} does not belong with {ref_path} (written from {why})",
                    path=path, hint="rerun the out-of-date workers: " + _rerun(path.parent / name, total, [index]),
                )
        present = {index for _, _, index, _ in members}
        missing = [i for i in range(total) if i not in present]
        if missing:
            folders = sorted({str(p.parent) for p, *_ in members})
            who = ", ".join(map(str, missing))
            raise NotFoundError(
                f"the shard set {name} is incomplete: no part from worker{'s' if len(missing) > 1 else ''}"
                f" {who} of {total} (parts found in {', '.join(folders)})",
                hint=f"run {_rerun(Path(folders[0]) / name, total, missing)}, or pass the folder holding"
                " the missing parts to --input-file too",
            )
