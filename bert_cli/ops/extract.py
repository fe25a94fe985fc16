"""``bert extract``: the original ``extract_features.py`` on the TF2 engine.

Input: text lines (files or stdin, bytes decoded as UTF-8 with bad bytes dropped, then
``str.strip()``), one example per line, ``unique_id`` = line number from 0 across all inputs.
A line matching ``^(.*) \\|\\|\\| (.*)$`` is a pair ``A ||| B``; anything else (blank lines
included) is one sentence. Tokens are laid out ``[CLS] A [SEP] (B [SEP])`` and pairs truncated
as the original (:mod:`bert_cli.text.features`). The model runs in inference mode on batches of
``batch_size`` rows (the last one padded with empty rows that are dropped after) whose
all-padding tail columns are cut (:mod:`bert_cli.engine.padding`: to the longest line rounded up
to 64 under XLA, so XLA compiles at most ``max_seq_length / 64`` programs; the real tokens'
values are the same); the next batch is tokenized while the model runs.

``layers`` index the encoder blocks as the original's ``all_encoder_layers[layer_index]``:
``-1`` is the last block, ``0`` the first (the embedding output is not a layer here).

Outputs (one result per input line, in input order):

``jsonl`` (default), byte for byte the original's file: per line::

    {"linex_index": 0, "features": [{"token": "[CLS]", "layers": [{"index": -1, "values": [0.1, ...]}, ...]}, ...]}

(``json.dumps`` with its default separators and ``ensure_ascii``, keys in that order, every
value ``round(float(x), 6)``, only the real tokens: ``[CLS]``, the WordPieces, ``[SEP]``).

``npz``: one ``numpy.savez``-style file (written atomically to ``output``) holding

============  ==========================  ===================================================
array         shape / dtype               meaning
============  ==========================  ===================================================
``layers``    [n_layers] int64            the requested layer indexes, in order
``offsets``   [N + 1] int64               line i's tokens are rows ``offsets[i]:offsets[i+1]``
``tokens``    [T] unicode                 all lines' tokens, concatenated
``values``    [T, n_layers, H] float32    each token's vector in each requested layer (unrounded)
============  ==========================  ===================================================

Read it back with::

    z = np.load("features.npz")
    a, b = z["offsets"][i], z["offsets"][i + 1]
    tokens, vectors = z["tokens"][a:b], z["values"][a:b]     # vectors[t, j] = token t in layer z["layers"][j]

Sentence vectors (``pooling``): one vector per line instead of one per token.

- ``mean``: the average over the line's real tokens (``[CLS]`` and ``[SEP]`` included, padding
  excluded; what sentence-transformers' mean pooling computes);
- ``cls``: the ``[CLS]`` token's vector;
- ``pooler``: BERT's pooled output, ``tanh(Dense(CLS of the last layer))`` (what the
  classifier reads); ``layers`` does not apply.

With pooling, ``layers`` defaults to ``-1`` (the last layer) instead of ``-1,-2,-3,-4``; with
several layers the per-layer vectors are concatenated in ``layers`` order (size n_layers x H).
JSONL: ``{"linex_index": i, "embedding": [...]}`` (rounded to 6 decimals as above); npz:
``embeddings`` [N, D] float32 (unrounded), plus ``layers`` and ``pooling``.

:func:`run` returns ``{"lines", "tokens", "seconds", "lines_per_s", "format", "pooling", "output"}``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from .. import console
from ..errors import ConfigError, UsageError
from .extract_sinks import JsonlSink, NpzSink, format_embedding_line, format_features_line, round6
from ..fileio import atomic_write, check_writable_file, naming_errors, require_file
from ..text.features import InputFeatures, build_features
from ..text.lines import split_pair
from ..text.basic_tokenizer import convert_to_unicode
from ..text.tokenization import FullTokenizer
from . import option_specs as S
from .option_specs import check_fields

__all__ = [
    "ExtractConfig", "run", "FORMATS", "POOLINGS", "DEFAULT_LAYERS",
    "parse_layers", "parse_line", "read_input_lines", "format_features_line", "format_embedding_line", "round6",
]

FORMATS = ("jsonl", "npz")
POOLINGS = ("cls", "mean", "pooler")
DEFAULT_LAYERS = (-1, -2, -3, -4)
DEFAULT_POOLING_LAYERS = (-1,)


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    """Options of ``bert extract``.

    Give ``model`` (a cached NAME or a model folder) or the three files ``vocab_file``,
    ``bert_config_file`` and ``init_checkpoint``; explicit files override the model's.
    """

    model: str | None = None
    vocab_file: str | os.PathLike | None = None
    bert_config_file: str | os.PathLike | None = None  # Google bert_config.json or HF config.json
    init_checkpoint: str | os.PathLike | None = None  # TF1 prefix/dir, or model.safetensors
    do_lower_case: bool | None = None  # default: the model's casing (see bert_cli.models.policy)
    force_casing: bool = False
    download: bool = False  # fetch a catalogue model that is not cached
    layers: str | Sequence[int] | None = None  # "-1,-2,-3,-4" (tokens) / "-1" (pooling) when None
    max_seq_length: int = S.MAX_SEQ_LENGTH.field()
    batch_size: int = S.EXTRACT_BATCH_SIZE.field()
    output_format: str = "jsonl"  # jsonl | npz
    pooling: str | None = None  # None (per token) | cls | mean | pooler
    output: str | os.PathLike | None = None  # file to write (atomically); None: jsonl to ``out``
    device: str = S.DEVICE.field()
    precision: str = S.EXTRACT_PRECISION.field()  # fp32 keeps the original's values; bf16/fp16 are faster, less exact
    xla: bool | None = S.XLA.field()  # None: the engine's default (engine.device: off on CPU)

    def __post_init__(self) -> None:
        check_fields(self)  # each value's range, once (UsageError naming the flag)


# ----------------------------------------------------------------------------- input


def read_input_lines(paths: Sequence[str | os.PathLike]) -> Iterator[bytes]:
    """The raw lines of each file in turn; ``-`` is stdin. Every file is checked now (NotFoundError)."""
    checked = [p if str(p) == "-" else require_file(p, "input file") for p in paths]
    return _read_lines(checked)


def _read_lines(paths: Sequence[str | os.PathLike]) -> Iterator[bytes]:
    for path in paths:
        if str(path) == "-":
            yield from sys.stdin.buffer
            continue
        with open(path, "rb") as fh:
            yield from fh


def parse_line(line: str | bytes) -> tuple[str, str | None]:
    """``(text_a, text_b)`` of one input line, as the original's ``read_examples``."""
    return split_pair(convert_to_unicode(line).strip())


def parse_layers(layers: str | Sequence[int] | None, pooling: str | None = None) -> tuple[int, ...]:
    """Layer indexes from ``"-1,-2"`` or a sequence; the default depends on ``pooling``."""
    if layers is None:
        return DEFAULT_POOLING_LAYERS if pooling else DEFAULT_LAYERS
    if isinstance(layers, str):
        parts = [p.strip() for p in layers.split(",")]
        try:
            values = tuple(int(p) for p in parts)
        except ValueError:
            raise UsageError(
                f"--layers must be comma-separated integers such as -1,-2,-3,-4, got {layers!r}"
            ) from None
    else:
        values = tuple(int(v) for v in layers)
    if not values:
        raise UsageError("--layers needs at least one layer index", hint="e.g. --layers -1")
    return values


def check_layers(layers: Sequence[int], num_layers: int) -> None:
    """UsageError unless every index is valid for ``all_encoder_layers[index]``."""
    bad = [i for i in layers if not -num_layers <= i < num_layers]
    if bad:
        raise UsageError(
            f"layer index {bad[0]} is out of range: the model has {num_layers} layers "
            f"(use {-num_layers}..{num_layers - 1}; -1 is the last)",
            hint=f"e.g. --layers -1,-2 or --layers 0,{num_layers - 1}",
        )


# ----------------------------------------------------------------------------- batches


@dataclasses.dataclass
class _Batch:
    start: int  # linex_index of the first row
    features: list[InputFeatures]
    input_ids: np.ndarray  # [batch_size, S] int32, rows past len(features) are padding
    input_mask: np.ndarray
    segment_ids: np.ndarray


def _featurize(lines: Iterable[str | bytes], tokenizer: FullTokenizer, max_seq_length: int) -> Iterator[InputFeatures]:
    for line in lines:
        text_a, text_b = parse_line(line)
        tokens_a = tokenizer.tokenize(text_a)
        tokens_b = tokenizer.tokenize(text_b) if text_b else None
        yield build_features(tokens_a, tokens_b, max_seq_length, tokenizer)


def _batches(features: Iterator[InputFeatures], batch_size: int, max_seq_length: int) -> Iterator[_Batch]:
    start = 0
    while True:
        chunk = list(itertools.islice(features, batch_size))
        if not chunk:
            return
        shape = (batch_size, max_seq_length)
        ids, mask, seg = (np.zeros(shape, np.int32) for _ in range(3))
        for row, f in enumerate(chunk):
            ids[row], mask[row], seg[row] = f.input_ids, f.input_mask, f.segment_ids
        yield _Batch(start, chunk, ids, mask, seg)
        start += len(chunk)


def _pipelined(batches: Iterator[_Batch], compute: Callable[[_Batch], Any]) -> Iterator[tuple[_Batch, Any]]:
    """``(batch, compute(batch))`` in order; the model runs batch k+1 (in a thread, TF releases the
    GIL) while the caller formats batch k and the next batch is tokenized."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bert-extract") as pool:
        pending: list[tuple[_Batch, concurrent.futures.Future]] = []
        for batch in batches:
            pending.append((batch, pool.submit(compute, batch)))
            if len(pending) > 1:
                done, future = pending.pop(0)
                yield done, future.result()
        for done, future in pending:
            yield done, future.result()


# ----------------------------------------------------------------------------- the command


def _check_options(config: ExtractConfig) -> tuple[str, str | None, tuple[int, ...]]:
    fmt = (config.output_format or "jsonl").lower()
    if fmt not in FORMATS:
        raise UsageError(f"unknown output format {config.output_format!r} (use {' or '.join(FORMATS)})")
    pooling = config.pooling.lower() if config.pooling else None
    if pooling is not None and pooling not in POOLINGS:
        raise UsageError(f"unknown pooling {config.pooling!r} (use {', '.join(POOLINGS)})")
    if pooling == "pooler" and config.layers is not None:
        raise UsageError("--layers does not apply to --pooling pooler (it reads the last layer's [CLS])")
    if fmt == "npz" and config.output is None:
        raise UsageError("--format npz writes a file: give --output FILE.npz")
    if config.output is not None:
        check_writable_file(config.output)
    return fmt, pooling, parse_layers(config.layers, pooling)


def _model_sources(config: ExtractConfig):
    """The one model-files policy (:func:`bert_cli.models.policy.resolve_model_files`); extract
    needs a vocabulary, a config and weights."""
    from ..models.policy import resolve_model_files

    files = resolve_model_files(
        config.model, vocab_file=config.vocab_file, bert_config_file=config.bert_config_file,
        init_checkpoint=config.init_checkpoint, do_lower_case=config.do_lower_case,
        force_casing=config.force_casing, download=config.download,
    )
    return files.require("vocab", "config", "checkpoint")


def _peek(lines: Iterable[str | bytes]) -> Iterator[str | bytes] | None:
    """The same lines, or None when there are none (then no model is loaded)."""
    it = iter(lines)
    try:
        first = next(it)
    except StopIteration:
        return None
    return itertools.chain([first], it)


def run(
    config: ExtractConfig,
    lines: Iterable[str | bytes],
    out: IO[str] | None = None,
    progress: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Extract features for every line of ``lines`` (streamed, in input order).

    JSONL goes to ``config.output`` (atomically) or else to ``out``; npz needs ``config.output``.
    ``progress`` gets ``{"lines", "tokens", "lines_per_s"}`` after every batch. Returns the
    summary described in the module docstring.

    No input lines: nothing on ``out``, an empty file at ``config.output`` (npz: zero rows), and
    the weights are not loaded (the options and model files are still checked).
    """
    fmt, pooling, layers = _check_options(config)
    if config.output is None and out is None:
        raise UsageError("no output: give --output FILE or an output stream")
    model_files = _model_sources(config)
    vocab_file, config_file, lower = model_files.vocab_file, model_files.config_file, model_files.do_lower_case

    from ..modelconfig import read_model_config

    bert_config = read_model_config(config_file)  # cheap checks before the weights are read
    check_layers(layers, bert_config.num_hidden_layers)
    from ..engine.model import check_seq_length

    check_seq_length(bert_config, config.max_seq_length)
    tokenizer = FullTokenizer(vocab_file, do_lower_case=lower)
    if tokenizer.vocab and max(tokenizer.vocab.values()) >= bert_config.vocab_size:
        raise ConfigError(
            f"{vocab_file} has ids up to {max(tokenizer.vocab.values())} but the model's vocab_size is "
            f"{bert_config.vocab_size}",
            hint="the vocabulary file does not belong to this model",
        )
    lines = _peek(lines)
    if lines is None:
        lines, forward, runtime = [], None, None  # nothing to compute
    else:
        forward, runtime = _load_forward(config, model_files, config_file, pooling)
        console.info(runtime.describe("extracting features"))
    from ..engine.padding import trim_arrays

    positions = [i % bert_config.num_hidden_layers for i in layers]  # index into stacked layers
    need_layers = pooling != "pooler"

    def compute(batch: _Batch) -> np.ndarray:
        """[n, B, S', H] selected layers (or [B, H] pooled output), padding rows dropped (S' <= S)."""
        cut = trim_arrays(
            {"input_ids": batch.input_ids, "input_mask": batch.input_mask, "segment_ids": batch.segment_ids},
            runtime.padding_multiple,
        )
        result = forward(cut["input_ids"], cut["input_mask"], cut["segment_ids"])
        n = len(batch.features)
        if not need_layers:
            return result["pooled_output"].numpy()[:n]
        stacked = result["all_encoder_layers"].numpy()  # [L, B, S, H]
        return stacked[positions, :n]

    started = time.perf_counter()
    count = tokens = 0
    batches = _batches(_featurize(lines, tokenizer, config.max_seq_length), config.batch_size, config.max_seq_length)

    def consume(sink) -> None:
        nonlocal count, tokens
        for batch, output in _pipelined(batches, compute):
            for row, feature in enumerate(batch.features):
                n_tok = len(feature.tokens)
                values = vector = None
                if pooling is None:
                    values = output[:, row, :n_tok]  # [n_layers, n_tokens, H]
                else:
                    vector = _pool(pooling, output, row, n_tok)
                sink.add(batch.start + row, feature.tokens, values, vector)
                tokens += n_tok
            sink.end_batch()
            count += len(batch.features)
            if progress is not None:
                elapsed = time.perf_counter() - started
                progress({"lines": count, "tokens": tokens, "lines_per_s": count / elapsed if elapsed > 0 else None})

    if fmt == "npz":
        hidden = bert_config.hidden_size
        row_shape = (hidden,) if pooling == "pooler" else (len(layers) * hidden,) if pooling else (len(layers), hidden)
        with naming_errors(config.output):  # the spool beside it fills the same disk
            sink = NpzSink(Path(config.output), layers, pooling, row_shape)
            try:
                consume(sink)
                sink.finish()
            finally:
                sink.close()
    elif config.output is not None:
        with atomic_write(config.output) as fh:
            consume(JsonlSink(fh, layers, pooling))
    else:
        consume(JsonlSink(out, layers, pooling))

    seconds = time.perf_counter() - started
    rate = count / seconds if seconds > 0 else None
    speed = f", {rate:.1f} lines/s" if rate else ""
    console.debug(f"extracted {count} lines ({tokens} tokens) in {seconds:.2f}s{speed}")
    return {
        "lines": count,
        "tokens": tokens,
        "seconds": seconds,
        "lines_per_s": rate,
        "format": fmt,
        "pooling": pooling,
        "output": None if config.output is None else str(config.output),
    }


def _pool(pooling: str, output: np.ndarray, row: int, n_tok: int) -> np.ndarray:
    """One line's sentence vector: layers concatenated in order (``pooler``: the pooled output)."""
    if pooling == "pooler":
        return output[row]
    if pooling == "cls":
        return output[:, row, 0].reshape(-1)  # [n_layers * H]
    real = output[:, row, :n_tok].astype(np.float64)  # [n_layers, n_tokens, H]
    return real.mean(axis=1).astype(np.float32).reshape(-1)


def _load_forward(config: ExtractConfig, model_files, config_file: Path, pooling: str | None):
    """The runtime and a compiled forward returning all layers (and the pooled output)."""
    from ..engine.device import select_runtime
    from ..engine.loading import load_encoder, pooler_missing
    from ..engine.model import inference_function

    runtime = select_runtime(config.device, config.precision, config.xla)
    _, model, report = load_encoder(
        config_file=config_file,
        model_files=model_files,
        compute_dtype=runtime.compute_dtype,
    )
    if pooling == "pooler" and pooler_missing(report):
        raise ConfigError(
            "--pooling pooler: this checkpoint has no pooler weights",
            hint="use --pooling cls or --pooling mean",
        )
    return inference_function(model, jit_compile=runtime.xla, all_layers=pooling != "pooler"), runtime
