"""``bert make-pretrain-data``: masked-LM / next-sentence TFRecords from raw text (no TensorFlow).

Input: one sentence per line, blank lines between documents (the original's format).

**Exact mode** (the default: one worker, no shard count, no ``%`` pattern) reproduces the
original ``create_pretraining_data.py`` bit for bit: same instances, same order, same
round-robin over a comma-separated list of output files. Like the original it holds the
whole corpus and all instances in memory.

**Sharded mode** (``workers > 1``, ``num_output_shards`` given, or an output pattern such as
``out-%05d.tfrecord``) streams the corpus in shards of about ``shard_size_mb`` of text,
processes them in parallel worker processes, and writes them in shard order, so memory stays
flat whatever the corpus size and the output depends only on the seed and the shard size
(not on the worker count). It differs from the exact mode as documented in
:mod:`bert_cli.text.pretraining`: documents, random next documents and instances are
shuffled/drawn within a shard. Output files:

* a pattern with ``num_output_shards=K``: ``pattern % i`` for ``i < K``, round-robin;
* a pattern alone: one file per shard, ``pattern % i`` numbered in shard order;
* one plain file with ``K``: ``stem-00000-of-0000K.suffix`` ..., round-robin;
* a list of plain files: round-robin over them.

**Several machines** (``num_workers_total=N, worker_index=I``, sharded mode with a pattern
alone): each machine reads the whole corpus, processes only the shards it owns (shard k
belongs to worker k % N) and writes them under the same names and with the same bytes as a
single-machine run; the union of the N parts is the single-machine set. Each part is
published on its own with a part manifest: see :mod:`bert_cli.text.shardparts`.

In both modes the output files appear all together or not at all, with a manifest
(``.NAME.manifest.json``) written last: see :mod:`bert_cli.text.shardset`. An interrupt or an
error leaves no temporary file. Worker processes ignore Ctrl-C and die with the parent
(:mod:`bert_cli.workers`). Inputs that are outputs of the same run are refused, and so are
inputs that are not text (TFRecords, binary files).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator

from .. import console
from ..errors import InputError, NotFoundError, UsageError
from ..events import Progress
from ..fileio import check_writable_file, require_file
from ..text import documents as docs
from ..text import masking
from ..text import pretraining as pt
from ..text.lines import iter_text_lines
from ..text.shardparts import Part
from ..text.shardset import OutputSet, manifest_path
from ..text.sniff import HEAD_BYTES, check_text, read_head
from ..text.tfrecord import CRC32C_IMPLEMENTATION
from . import option_specs as S
from .make_pretrain_parts import NumberedShards, check_part_options, part_manifest
from .option_specs import check_fields
from .shard_pool import shard_results

__all__ = ["MakePretrainDataConfig", "run", "expand_input_files", "output_paths", "is_sharded"]


STDIN = "-"


@dataclass(frozen=True)
class MakePretrainDataConfig:
    """Options of ``bert make-pretrain-data`` (the original's flag names and defaults)."""

    input_files: tuple[str, ...]  # paths, globs or comma lists; "-" = stdin
    output_files: tuple[str, ...]  # paths or comma lists, or one pattern with %d / %05d
    vocab_file: Path | None = None  # None (and no model): Google's uncased vocabulary shipped with bert
    do_lower_case: bool | None = None  # None: the model's, else lower-case (models.policy)
    model: str | None = None  # --model NAME|DIR: vocabulary and casing (models.policy.tokenizer_files)
    force_casing: bool = False
    # defaults and ranges: bert_cli.ops.option_specs
    max_seq_length: int = S.PRETRAIN_DATA_MAX_SEQ_LENGTH.field()
    max_predictions_per_seq: int = S.MAX_PREDICTIONS_PER_SEQ.field()
    masked_lm_prob: float = S.MASKED_LM_PROB.field()
    short_seq_prob: float = S.SHORT_SEQ_PROB.field()
    dupe_factor: int = S.DUPE_FACTOR.field()
    random_seed: int = S.RANDOM_SEED.field()
    do_whole_word_mask: bool = False
    workers: int = S.WORKERS.field()
    num_output_shards: int | None = S.NUM_OUTPUT_SHARDS.field()
    shard_size_mb: float = S.SHARD_SIZE_MB.field()  # sharded mode: text per shard (millions of characters)
    num_workers_total: int | None = S.NUM_WORKERS_TOTAL.field()  # several machines: N, each writing its part ...
    worker_index: int | None = S.WORKER_INDEX.field()  # ... this one's index, 0 <= I < N

    def __post_init__(self) -> None:
        check_fields(self)  # each value's range, once (UsageError naming the flag)

    @property
    def part(self) -> Part | None:
        """This machine's part of a set written by several machines, or None (the whole set)."""
        if self.num_workers_total is None or self.worker_index is None:
            return None
        return Part(self.worker_index, self.num_workers_total)

    @property
    def options(self) -> masking.PretrainOptions:
        return masking.PretrainOptions(
            max_seq_length=self.max_seq_length,
            max_predictions_per_seq=self.max_predictions_per_seq,
            masked_lm_prob=self.masked_lm_prob,
            short_seq_prob=self.short_seq_prob,
            dupe_factor=self.dupe_factor,
            do_whole_word_mask=self.do_whole_word_mask,
        )


# ---------------------------------------------------------------------------------- checking


def _split(entries: Iterable[str]) -> list[str]:
    return [part.strip() for entry in entries for part in str(entry).split(",") if part.strip()]


def expand_input_files(entries: Iterable[str]) -> list[str]:
    """Comma-split, then glob (sorted) each entry; ``-`` is stdin. NotFoundError if none."""
    out: list[str] = []
    for entry in _split(entries):
        if entry == STDIN:
            out.append(STDIN)
        elif glob.has_magic(entry):
            matches = sorted(p for p in glob.glob(os.path.expanduser(entry)) if os.path.isfile(p))
            if not matches:
                raise NotFoundError(f"no input file matches {entry!r}")
            out.extend(matches)
        else:
            out.append(str(require_file(os.path.expanduser(entry), "input file")))
    if not out:
        raise UsageError("no input file given", hint="pass one or more text files, or - for stdin")
    return out


def _is_pattern(path: str) -> bool:
    return "%" in path


def _check_pattern(pattern: str) -> None:
    try:
        a, b = pattern % 0, pattern % 1
    except (TypeError, ValueError):
        raise UsageError(
            f"output pattern {pattern!r} must hold exactly one integer field such as %05d"
        ) from None
    if a == b:
        raise UsageError(f"output pattern {pattern!r} gives the same name for every shard")
    if os.path.dirname(a) != os.path.dirname(b):
        raise UsageError(f"output pattern {pattern!r}: the shard number must be in the file name, not the folder")


def is_sharded(config: MakePretrainDataConfig) -> bool:
    """Sharded mode when several workers, a shard count, or an output pattern is given."""
    outputs = _split(config.output_files)
    return (
        config.workers > 1
        or config.num_output_shards is not None
        or config.num_workers_total is not None
        or any(_is_pattern(p) for p in outputs)
    )


def validate(config: MakePretrainDataConfig) -> None:
    """UsageError for options contradicting each other (each value's own range was checked
    when the config was built)."""
    outputs = _split(config.output_files)
    if not outputs:
        raise UsageError("no output file given")
    patterns = [p for p in outputs if _is_pattern(p)]
    if patterns and len(outputs) > 1:
        raise UsageError("give either one output pattern (with %05d) or a list of files, not both")
    if patterns:
        _check_pattern(patterns[0])
    check_part_options(
        config.num_workers_total, config.worker_index,
        pattern_output=len(outputs) == 1 and _is_pattern(outputs[0]), num_output_shards=config.num_output_shards,
    )
    k = config.num_output_shards
    if k is not None and not patterns and len(outputs) > 1 and len(outputs) != k:
        raise UsageError(
            f"--num-output-shards {k} does not match the {len(outputs)} output files given"
        )


def output_paths(config: MakePretrainDataConfig) -> list[Path] | str:
    """The round-robin output files, or the per-shard pattern (a ``str``)."""
    outputs = _split(config.output_files)
    k = config.num_output_shards
    if len(outputs) == 1 and _is_pattern(outputs[0]):
        if k is None:
            return outputs[0]
        return [Path(outputs[0] % i) for i in range(k)]
    if k is not None and len(outputs) == 1 and k > 1:
        p = Path(outputs[0])
        suffix = "".join(p.suffixes) if p.suffixes else ""
        stem = p.name[: len(p.name) - len(suffix)] if suffix else p.name
        return [p.with_name(f"{stem}-{i:05d}-of-{k:05d}{suffix}") for i in range(k)]
    return [Path(o) for o in outputs]


def output_set(config: MakePretrainDataConfig) -> OutputSet:
    """The run's :class:`OutputSet`: its planned files, manifest and file-name pattern."""
    outputs = _split(config.output_files)
    paths = output_paths(config)
    first = Path(outputs[0])
    if isinstance(paths, str) or _is_pattern(outputs[0]):
        pattern: str | None = first.name  # stale shards: any name of the pattern
    elif len(paths) > 1 and len(outputs) == 1:  # stem-00000-of-0000K.suffix
        suffix = "".join(first.suffixes)
        pattern = f"{first.name[: len(first.name) - len(suffix)]}-%05d-of-%05d{suffix}"
    else:
        pattern = None
    options = {
        f.name: str(getattr(config, f.name)) if isinstance(getattr(config, f.name), Path) else getattr(config, f.name)
        for f in dataclasses.fields(config)
    }
    return OutputSet(
        manifest_path(first), pattern, options, files=[] if isinstance(paths, str) else paths, part=config.part
    )


def check_inputs(inputs: list[str], outputs: OutputSet) -> None:
    """UsageError for an input that this run writes; InputError for one that is not text."""
    for name in inputs:
        if name != STDIN and outputs.claims(name):
            raise UsageError(
                f"input file {name} is also an output of this run",
                hint="write --output-file to another file or folder, or narrow --input-file",
            )
    for name in inputs:
        if name != STDIN:
            check_text(name, read_head(name))


def load_tokenizer(config: MakePretrainDataConfig):
    """The FullTokenizer and its VocabIds; NotFoundError / InputError for a bad vocabulary."""
    from ..text.tokenization import FullTokenizer

    vocab_file = require_file(
        config.vocab_file,
        "vocabulary file",
        hint="pass --vocab-file with the vocab.txt of the model you will pretrain",
    )
    tokenizer = FullTokenizer(str(vocab_file), do_lower_case=config.do_lower_case)
    if not tokenizer.vocab:
        raise InputError("the vocabulary is empty", path=vocab_file)
    return tokenizer, masking.VocabIds.from_vocab(tokenizer.vocab, vocab_file)


# ----------------------------------------------------------------------------------- reading


class _Reader:
    """The corpus as a stream of raw documents; counts bytes and warns once on bad UTF-8."""

    def __init__(self, inputs: list[str], stdin: IO | None, digest: bool = False) -> None:
        self.inputs = inputs
        self.stdin = stdin
        self.bytes = 0
        self.invalid_utf8_lines = 0
        self.sha256 = hashlib.sha256() if digest else None  # of the text read (a part's identity)

    def _lines(self, lines: Iterable) -> Iterator[bytes]:
        for raw in lines:
            if isinstance(raw, str):  # a text-mode stdin stand-in
                raw = raw.encode("utf-8", errors="surrogateescape")
            self.bytes += len(raw)
            if self.sha256 is not None:
                self.sha256.update(raw)
            yield raw

    def _sources(self) -> Iterator[tuple[str, Iterable[bytes]]]:
        for name in self.inputs:
            if name == STDIN:
                stream = self.stdin if self.stdin is not None else sys.stdin
                stream = getattr(stream, "buffer", stream)
                if hasattr(stream, "peek"):
                    check_text("<stdin>", stream.peek(HEAD_BYTES)[:HEAD_BYTES])
                yield "<stdin>", self._lines(stream)
            else:
                with open(name, "rb") as fh:
                    yield name, self._lines(fh)

    def _invalid(self, name: str, line: int) -> None:
        self.invalid_utf8_lines += 1
        if self.invalid_utf8_lines == 1:
            console.warn(
                f"{name}:{line}: invalid UTF-8; the bad bytes are dropped (as the original does)"
                " - further such lines are counted in the summary"
            )

    def documents(self) -> Iterator[list[str]]:
        lines = (
            line.strip()
            for name, source in self._sources()
            for line in iter_text_lines(source, name=name, errors="ignore", on_invalid_utf8=self._invalid)
        )
        return docs.iter_documents(lines)


def _empty_corpus(inputs: list[str]) -> InputError:
    where = "<stdin>" if inputs == [STDIN] else (inputs[0] if len(inputs) == 1 else None)
    return InputError(
        "no text to make instances from: the input is empty or has no tokens",
        path=where,
        hint="the input must hold one sentence per line, with blank lines between documents",
    )


def _warn_single_document() -> None:
    console.warn(
        "the corpus has a single document: random next sentences come from that same document"
        " (as the original does); add more documents separated by blank lines"
    )


# -------------------------------------------------------------------------------------- runs


def with_model_files(config: MakePretrainDataConfig) -> MakePretrainDataConfig:
    """``config`` with its vocabulary and casing resolved (the one policy:
    :func:`bert_cli.models.policy.tokenizer_files`)."""
    from ..models.policy import tokenizer_files

    vocab, lower = tokenizer_files(config.model, vocab_file=config.vocab_file, do_lower_case=config.do_lower_case,
                                   force_casing=config.force_casing)
    return dataclasses.replace(config, vocab_file=vocab, do_lower_case=lower, model=None)


def run(
    config: MakePretrainDataConfig, progress: Progress | None = None, stdin: IO | None = None
) -> dict:
    """Make the TFRecords; returns a summary dict (JSON-serialisable).

    ``progress(dict)`` gets ``phase, documents, instances, bytes, mb_per_s, seconds`` (plus
    ``total_documents`` while creating instances in exact mode, ``shards`` in sharded mode).
    """
    validate(config)
    config = with_model_files(config)
    for output in _split(config.output_files):
        check_writable_file(output)
    inputs = expand_input_files(config.input_files)
    outputs = output_set(config)
    check_inputs(inputs, outputs)
    tokenizer, vocab = load_tokenizer(config)
    started = time.perf_counter()
    reader = _Reader(inputs, stdin, digest=config.part is not None)
    with outputs:  # any exception (Ctrl-C included) removes every temporary file
        if is_sharded(config):
            summary = _run_sharded(config, reader, tokenizer, vocab, progress, started, outputs)
        else:
            summary = _run_exact(config, reader, tokenizer, vocab, progress, started, outputs)
    summary.update(
        manifest=str(outputs.manifest),
        input_files=inputs,
        bytes_read=reader.bytes,
        invalid_utf8_lines=reader.invalid_utf8_lines,
        seconds=round(time.perf_counter() - started, 3),
        crc32c=CRC32C_IMPLEMENTATION,
    )
    return summary


def _report(progress: Progress | None, started: float, reader: _Reader, **values) -> None:
    if progress is None:
        return
    seconds = time.perf_counter() - started
    progress(
        dict(
            values,
            bytes=reader.bytes,
            seconds=seconds,
            mb_per_s=reader.bytes / 1e6 / seconds if seconds > 0 else 0.0,
        )
    )


def _summary(mode: str, stats: pt.Stats, files: list[str], records_per_file: list[int]) -> dict:
    out = stats.as_dict()
    out.update(
        mode=mode,
        files=files,
        records_per_file=records_per_file,
        masked_fraction=round(stats.masked / stats.tokens, 6) if stats.tokens else 0.0,
        random_next_fraction=round(stats.random_next / stats.instances, 6)
        if stats.instances
        else 0.0,
    )
    return out


def _run_exact(config, reader, tokenizer, vocab, progress, started, outputs: OutputSet) -> dict:
    """The original algorithm, whole corpus in memory, one rng."""
    options = config.options
    paths = output_paths(config)
    assert not isinstance(paths, str)
    writers = [outputs.open(p) for p in paths]

    all_documents: list[list[list[int]]] = []
    for document in reader.documents():
        all_documents.extend(docs.tokenize_documents([document], tokenizer, tokenizer.vocab))
        if len(all_documents) % 1000 == 0:
            _report(progress, started, reader, phase="read", documents=len(all_documents))
    if not all_documents:
        raise _empty_corpus(reader.inputs)
    if len(all_documents) == 1:
        _warn_single_document()
    n_docs = len(all_documents)

    def on_document(done: int, made: int) -> None:
        _report(
            progress, started, reader, phase="create", documents=done,
            total_documents=n_docs * options.dupe_factor, instances=made,
        )

    rng = random.Random(config.random_seed)
    records, stats = pt.create_training_records(all_documents, options, vocab, rng, on_document)
    del all_documents
    for i, record in enumerate(records):
        writers[i % len(writers)].write_framed(record)
        if (i + 1) % 20000 == 0:
            _report(
                progress, started, reader, phase="write", documents=n_docs, instances=i + 1,
                total_instances=stats.instances,
            )
    outputs.commit()
    _report(progress, started, reader, phase="done", documents=n_docs, instances=stats.instances)
    return _summary("exact", stats, [str(p) for p in paths], [w.records for w in writers])


def _run_sharded(config, reader, tokenizer, vocab, progress, started, outputs: OutputSet) -> dict:
    """Streamed shards, processed independently, written in shard order."""
    paths = output_paths(config)
    stats = pt.Stats()
    shards = 0
    files: list[str] = []
    records_per_file: list[int] = []
    writers = [] if isinstance(paths, str) else [outputs.open(p) for p in paths]
    next_writer = 0
    part = config.part
    numbered = NumberedShards(reader.documents(), max(1, int(config.shard_size_mb * 1e6)), part)
    results = shard_results(config, numbered, tokenizer, vocab, outputs.manifest.parent, outputs.name,
                            scratch_name=part and part.scratch_name)
    with contextlib.closing(results):
        for result in results:
            shards += 1
            stats.add(result.stats)
            if isinstance(paths, str):
                if result.sizes:  # a part numbers its files by shard, as a whole run does without empty shards
                    writer = outputs.open(Path(paths % (len(files) if part is None else result.index)))
                    writer.write_framed(result.data, len(result.sizes))
                    writer.finish()  # closed, still under its temporary name
                    files.append(str(writer.path))
                    records_per_file.append(len(result.sizes))
            else:
                for record in result.records:
                    writers[next_writer].write_framed(record)
                    next_writer = (next_writer + 1) % len(writers)
            del result
            _report(
                progress, started, reader, phase="shard", shards=shards,
                documents=stats.documents, instances=stats.instances,
            )
    if stats.instances == 0 and (part is None or numbered.total == 0):
        raise _empty_corpus(reader.inputs)  # the caller's OutputSet removes the temporary files
    if part is not None and not files:
        console.warn(f"worker {part.index} of {part.total} wrote no shard: the corpus makes {numbered.total}"
                     " shard(s); its part is published empty")
    if writers:
        files = [str(w.path) for w in writers]
        records_per_file = [w.records for w in writers]
        empty = sum(1 for n in records_per_file if n == 0)
        if empty:
            console.warn(f"{empty} of {len(writers)} output files got no instance (more files than instances)")
    outputs.commit(None if part is None else part_manifest(
        part, numbered, reader.sha256.hexdigest(), reader.bytes, config.vocab_file, outputs.options))
    if stats.documents == 1:
        _warn_single_document()
    elif stats.single_document_shards:
        console.warn(
            f"{stats.single_document_shards} shard(s) held a single document after tokenization:"
            " their random next sentences come from the same document"
        )
    summary = _summary("sharded", stats, files, records_per_file)
    summary.update(shards=shards, workers=config.workers, shard_size_mb=config.shard_size_mb)
    if part is not None:
        summary.update(total_shards=numbered.total, worker_index=part.index, num_workers_total=part.total)
    return summary
