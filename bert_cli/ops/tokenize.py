"""The work of ``bert tokenize``: one output line per input line, in order, streaming.

Pure Python (no TensorFlow). Input lines arrive as bytes; only the trailing newline
(``\\n`` or ``\\r\\n``) is removed and invalid UTF-8 is dropped, as the original's
``convert_to_unicode``. Output formats (one line each):

* ``tokens``: space-separated WordPieces;
* ``ids``: space-separated vocabulary ids;
* ``jsonl``: ``{"tokens": [...], "ids": [...], "offsets": [[start, end], ...]}`` where the
  offsets are character (code point) offsets into the decoded input line:
  ``line[start:end]`` is the text a token came from (case and accents may differ; for a
  ``##`` piece its part of the word).

``pairs``: lines ``A ||| B`` (the regex ``^(.*) \\|\\|\\| (.*)$`` of ``extract_features.py``,
matched on the stripped line); a line without `` ||| `` is a single sentence. Without
``max_seq_length`` a pair prints as ``A-tokens ||| B-tokens`` (``tokens``/``ids``) or, in
``jsonl``, with extra ``tokens_b``/``ids_b``/``offsets_b`` keys (present only for pair lines;
all offsets are into the whole input line).

``max_seq_length``: ``[CLS] A [SEP] (B [SEP])`` truncated as the original (pairs: pop from the
longer side, tie from B; single: first ``max_seq_length - 2`` tokens). ``tokens``/``ids`` print
that sequence unpadded; ``jsonl`` gives ``tokens``, ``input_ids``, ``input_mask``,
``segment_ids`` (padded to ``max_seq_length``) and ``offsets`` (``null`` for ``[CLS]``/``[SEP]``).

``workers > 1``: a process pool over batches of lines, at most ``2 * workers`` batches in
flight (constant memory), results written in input order; the workers ignore Ctrl-C (the
parent stops the pool) and have exited when :func:`run_tokenize` returns or raises.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import stat
import time
from collections import deque
import dataclasses
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator, TextIO

from ..errors import BertError, UsageError
from ..text.features import build_features, truncate_seq_pair
from ..text.lines import PAIR_RE
from ..text.tokenization import FullTokenizer
from . import option_specs as S
from .option_specs import check_fields

__all__ = ["TokenizeConfig", "run_tokenize", "FORMATS", "BATCH_LINES", "load_tokenizer", "LineFormatter"]

FORMATS = ("tokens", "ids", "jsonl")
#: Lines per task sent to a worker process.
BATCH_LINES = 1000
PAIR_SEPARATOR = " ||| "


@dataclass(frozen=True)
class TokenizeConfig:
    """Options of ``bert tokenize`` (see the module docstring)."""

    vocab_file: Path | None = None  # None (and no model) -> the packaged Google uncased vocab
    do_lower_case: bool | None = None  # None: the model's, else lower-case (models.policy)
    model: str | None = None  # --model NAME|DIR: vocabulary and casing (models.policy.tokenizer_files)
    force_casing: bool = False
    output_format: str = "tokens"  # tokens | ids | jsonl
    pairs: bool = False
    max_seq_length: int | None = S.MAX_SEQ_LENGTH.field(None)
    keep_special_tokens: bool = False
    workers: int = S.WORKERS.field()

    def __post_init__(self) -> None:
        check_fields(self)  # each value's range, once (UsageError naming the flag)


def validate(config: TokenizeConfig) -> None:
    """UsageError for options out of range (before any input is read)."""
    if config.output_format not in FORMATS:
        raise UsageError(f"unknown format {config.output_format!r}; choose one of {', '.join(FORMATS)}")


def with_model_files(config: TokenizeConfig) -> TokenizeConfig:
    """``config`` with its vocabulary and casing resolved (the one policy:
    :func:`bert_cli.models.policy.tokenizer_files`); ``model`` is then spent."""
    from ..models.policy import tokenizer_files

    vocab, lower = tokenizer_files(config.model, vocab_file=config.vocab_file, do_lower_case=config.do_lower_case,
                                   force_casing=config.force_casing)
    return dataclasses.replace(config, vocab_file=vocab, do_lower_case=lower, model=None)


def load_tokenizer(config: TokenizeConfig) -> FullTokenizer:
    """The tokenizer of ``config`` (NotFoundError / InputError for a bad vocab file)."""
    if config.model is not None or config.vocab_file is None or config.do_lower_case is None:
        config = with_model_files(config)
    return FullTokenizer(config.vocab_file, do_lower_case=config.do_lower_case,
                         keep_special_tokens=config.keep_special_tokens)


def decode_line(raw: bytes) -> str:
    """Remove the trailing ``\\n`` / ``\\r\\n`` only; decode UTF-8 dropping invalid bytes."""
    if raw.endswith(b"\n"):
        raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
    return raw.decode("utf-8", "ignore")


def _dumps(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


class LineFormatter:
    """Turns one decoded input line into one output line (without the newline)."""

    def __init__(self, tokenizer: FullTokenizer, config: TokenizeConfig) -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.tokens = 0  # running count of tokens written
        # str(id) for every id: the ids format is a join of cached strings.
        self._id_str = [str(i) for i in range(max(tokenizer.vocab.values(), default=0) + 1)]

    def ids_text(self, ids: list[int]) -> str:
        return " ".join(map(self._id_str.__getitem__, ids))

    def split_pair(self, line: str) -> tuple[tuple[str, int], tuple[str, int] | None]:
        """((text_a, offset_a), (text_b, offset_b) or None) as ``extract_features.read_examples``."""
        if not self.config.pairs:
            return (line, 0), None
        stripped = line.strip()
        base = len(line) - len(line.lstrip())
        m = PAIR_RE.match(stripped)
        if m is None:
            return (stripped, base), None
        return (m.group(1), base + m.start(1)), (m.group(2), base + m.start(2))

    def format(self, line: str) -> str:
        cfg = self.config
        if cfg.max_seq_length is not None:
            return self._format_features(line)
        fmt = cfg.output_format
        if not cfg.pairs:
            if fmt == "tokens":
                toks = self.tokenizer.tokenize(line)
                self.tokens += len(toks)
                return " ".join(toks)
            if fmt == "ids":
                ids = self.tokenizer.encode(line)
                self.tokens += len(ids)
                return self.ids_text(ids)
        (text_a, off_a), b = self.split_pair(line)
        if fmt == "jsonl":
            obj = self._json_part(text_a, off_a, "")
            if b is not None:
                obj.update(self._json_part(b[0], b[1], "_b"))
            return _dumps(obj)
        parts = [text_a] if b is None else [text_a, b[0]]
        if fmt == "tokens":
            seqs = [self.tokenizer.tokenize(p) for p in parts]
            self.tokens += sum(map(len, seqs))
            return PAIR_SEPARATOR.join(" ".join(s) for s in seqs)
        seqs_ids = [self.tokenizer.encode(p) for p in parts]
        self.tokens += sum(map(len, seqs_ids))
        return PAIR_SEPARATOR.join(self.ids_text(s) for s in seqs_ids)

    def _json_part(self, text: str, base: int, suffix: str) -> dict:
        found = self.tokenizer.encode_with_offsets(text)
        self.tokens += len(found)
        return {
            "tokens" + suffix: [t for t, _, _, _ in found],
            "ids" + suffix: [i for _, i, _, _ in found],
            "offsets" + suffix: [[s + base, e + base] for _, _, s, e in found],
        }

    def _format_features(self, line: str) -> str:
        cfg = self.config
        max_len = cfg.max_seq_length
        (text_a, off_a), b = self.split_pair(line)
        if cfg.output_format != "jsonl":  # no offsets needed: the cached fast path
            a = [(t, 0, 0) for t in self.tokenizer.tokenize(text_a)]
            bb = [] if b is None else [(t, 0, 0) for t in self.tokenizer.tokenize(b[0])]
        else:
            a = [(t, s + off_a, e + off_a) for t, _, s, e in self.tokenizer.encode_with_offsets(text_a)]
            bb = [] if b is None else [(t, s + b[1], e + b[1]) for t, _, s, e in self.tokenizer.encode_with_offsets(b[0])]
        if bb:
            truncate_seq_pair(a, bb, max_len - 3)
        else:
            a = a[: max_len - 2]
        feats = build_features([t for t, _, _ in a], [t for t, _, _ in bb], max_len, self.tokenizer)
        n = len(feats.tokens)
        self.tokens += n
        if cfg.output_format == "tokens":
            return " ".join(feats.tokens)
        if cfg.output_format == "ids":
            return self.ids_text(feats.input_ids[:n])
        offsets: list[list[int] | None] = [None, *([s, e] for _, s, e in a), None]
        if bb:
            offsets += [*([s, e] for _, s, e in bb), None]
        return _dumps(
            {
                "tokens": feats.tokens,
                "input_ids": feats.input_ids,
                "input_mask": feats.input_mask,
                "segment_ids": feats.segment_ids,
                "offsets": offsets,
            }
        )


def _flushes_each_line(out: TextIO) -> bool:
    """Flush after every line unless ``out`` is a regular file (pipes, terminals: streaming)."""
    try:
        mode = os.fstat(out.fileno()).st_mode
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False
    return not stat.S_ISREG(mode)


def run_tokenize(config: TokenizeConfig, inputs: Iterable[bytes], out: TextIO, *, flush: bool | None = None,
                 progress: Callable[[dict], None] | None = None, total_bytes: int | None = None) -> dict:
    """Tokenize every input line to ``out``; return ``{"lines", "tokens", "bytes"}``.

    Streaming and constant memory: each line is written before the next is read. ``flush``:
    flush ``out`` after every line (every batch with workers) so a reader sees each line at
    once; None (default) does so unless ``out`` is a regular file. Pass False when the input
    can never block (regular files): a pipeline then runs at full speed. Raises NotFoundError /
    InputError for the vocab and UsageError for bad options, before reading any input.
    ``progress`` gets ``{"phase": "tokenize", "done": bytes read, "total": total_bytes,
    "unit": "bytes", "lines"}`` every few thousand lines and at the end (``final``).
    """
    validate(config)
    config = with_model_files(config)  # the worker processes get resolved files
    tokenizer = load_tokenizer(config)
    if flush is None:
        flush = _flushes_each_line(out)
    started = time.perf_counter()

    def report(lines: int, nbytes: int, final: bool = False) -> None:
        if progress is not None:
            progress({"phase": "tokenize", "done": nbytes, "total": total_bytes, "unit": "bytes", "lines": lines,
                      "seconds": time.perf_counter() - started, "final": final})

    if config.workers > 1:
        summary = _run_parallel(config, inputs, out, flush, report)
        report(summary["lines"], summary["bytes"], final=True)
        return summary
    formatter = LineFormatter(tokenizer, config)
    flush = out.flush if flush else None
    write = out.write
    lines = nbytes = 0
    for raw in inputs:
        lines += 1
        nbytes += len(raw)
        write(formatter.format(decode_line(raw)) + "\n")
        if flush is not None:
            flush()
        if not lines & 4095:
            report(lines, nbytes)
    out.flush()
    report(lines, nbytes, final=True)
    return {"lines": lines, "tokens": formatter.tokens, "bytes": nbytes}


# ----------------------------------------------------------------------------------------------
# Worker processes
# ----------------------------------------------------------------------------------------------

_WORKER: LineFormatter | None = None


def _init_worker(config: TokenizeConfig) -> None:
    """Pool initializer: ignore Ctrl-C (the parent stops the pool) and build the tokenizer once."""
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER = LineFormatter(load_tokenizer(config), config)


def _work(batch: list[bytes]) -> tuple[str, int]:
    """Output text of a batch of lines and its token count."""
    assert _WORKER is not None
    before = _WORKER.tokens
    text = "".join([_WORKER.format(decode_line(raw)) + "\n" for raw in batch])
    return text, _WORKER.tokens - before


def _batches(inputs: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    it = iter(inputs)
    while batch := list(islice(it, size)):
        yield batch


def _run_parallel(config: TokenizeConfig, inputs: Iterable[bytes], out: TextIO, flush_each: bool,
                  report: Callable[[int, int], None]) -> dict:
    """Batches through a process pool, written in input order.

    A ``concurrent.futures`` pool rather than ``multiprocessing.Pool``: when the work stops early
    (a closed stdout pipe, Ctrl-C, SIGTERM), ``Pool.terminate`` can deadlock on a result-queue lock
    held by a worker blocked on a full pipe; here the queued batches are cancelled, the running
    ones finish (a fraction of a second) and every worker exits before this returns or raises.
    """
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    workers = config.workers
    flush = out.flush if flush_each else None
    lines = nbytes = tokens = 0
    pending: deque = deque()

    def drain_one() -> None:
        nonlocal tokens
        text, count = pending.popleft().result()
        tokens += count
        out.write(text)
        if flush is not None:
            flush()

    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),  # no fork of a process that may hold threads
        initializer=_init_worker,
        initargs=(config,),
    )
    try:
        for batch in _batches(inputs, BATCH_LINES):
            lines += len(batch)
            nbytes += sum(map(len, batch))
            pending.append(pool.submit(_work, batch))
            report(lines, nbytes)
            while len(pending) >= 2 * workers or (pending and pending[0].done()):
                drain_one()
        while pending:
            drain_one()
    except BrokenProcessPool as exc:
        raise BertError(f"a tokenizer worker process died ({exc})", hint="retry with fewer --workers") from None
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
    out.flush()
    return {"lines": lines, "tokens": tokens, "bytes": nbytes}
