"""``bert predict --model NER_RUN``: named entities in raw text, one result per input line, streamed.

:func:`bert_cli.ops.predict.run` hands a run whose ``bert_run.json`` has kind ``ner`` (from
``bert finetune ner``) to :func:`run` here.

Words: each input line is split at whitespace (the CoNLL convention the model was trained on:
punctuation that is glued to a word stays part of it, so ``"Henson,"`` is one word); each
word keeps its character offsets into the line (Python ``str`` indices, i.e. code points).
The words are featurized exactly as in training (first-WordPiece alignment, windows of the
run's ``max_seq_length`` every ``doc_stride`` pieces for long lines, each word predicted in
its max-context window; no document context: every line stands alone) and every word gets
the tag of highest probability.

Entities are the chunks of the predicted tags as conlleval reads them
(:func:`~bert_cli.text.ner_metrics.extract_chunks`: an ``I-X`` after ``O`` starts a chunk).
Output per input line, in order, flushed after every batch:

* ``jsonl`` (default): ``{"entities": [{"text", "type", "start", "end", "score"}], "tokens":
  [...], "tags": [...]}``; ``start``/``end`` are character offsets into the line (``end``
  exclusive, ``line[start:end] == text``); ``score`` is the **mean** over the entity's words
  of the probability of the predicted tag (rounded to 4 decimals);
* ``conll``: ``token tag`` lines, a blank line after each input line (also after an empty one).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from .. import console
from ..errors import NotFoundError, UsageError
from ..modelconfig import BertConfig
from ..text.ner import Sentence
from ..text.ner_features import NerFeatureConfig
from ..text.ner_metrics import conll_token, extract_chunks
from ..text.tokenization import FullTokenizer
from .finetune_ner import featurize_split, word_predictions

__all__ = ["FORMATS", "run", "words_with_offsets"]

FORMATS = ("jsonl", "conll")
_WORD_RE = re.compile(r"\S+")


def words_with_offsets(line: str) -> list[tuple[str, int, int]]:
    """``(word, start, end)`` of each whitespace-separated word of ``line``."""
    return [(m.group(), m.start(), m.end()) for m in _WORD_RE.finditer(line)]


def _entities(line: str, spans: list[tuple[str, int, int]], tags: list[str], scores: list[float]) -> list[dict]:
    out = []
    for kind, first, last in extract_chunks(tags):
        start, end = spans[first][1], spans[last - 1][2]
        out.append({"text": line[start:end], "type": kind, "start": start, "end": end,
                    "score": round(sum(scores[first:last]) / (last - first), 4)})
    return out


def _format(fmt: str, line: str, spans, tags: list[str], scores: list[float]) -> str:
    if fmt == "conll":
        return "".join(f"{conll_token(w)} {t}\n" for (w, _, _), t in zip(spans, tags)) + "\n"
    result = {"entities": _entities(line, spans, tags, scores), "tokens": [w for w, _, _ in spans], "tags": tags}
    return json.dumps(result, ensure_ascii=False) + "\n"


def run(config, directory: Path, info: dict, checkpoint: str, texts: Iterable[str], out: IO[str],
        progress: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Tag every text of ``texts`` into ``out`` (streamed, in order) with the NER run in
    ``directory`` (``info``: its bert_run.json; ``checkpoint``: the weights to use);
    ``config`` is :class:`bert_cli.ops.predict.PredictConfig`."""
    fmt = config.output_format.lower()
    if fmt not in FORMATS:
        raise UsageError(f"a NER run writes {' or '.join(FORMATS)}, not {config.output_format!r}",
                         hint="pass --format jsonl or --format conll")
    if config.batch_size < 1:
        raise UsageError(f"--batch-size must be a positive integer, got {config.batch_size}")
    tags = [str(t) for t in info.get("tags") or ()]
    if not tags:
        raise NotFoundError(f"{directory}: bert_run.json lists no tags (an incomplete NER run folder)")
    files = {}
    for key, default in (("bert_config_file", "bert_config.json"), ("vocab_file", "vocab.txt")):
        files[key] = directory / str(info.get(key, default))
        if not files[key].is_file():
            raise NotFoundError(f"{directory} has no {files[key].name} (an incomplete run folder)")
    model_config = BertConfig.from_json_file(files["bert_config_file"])
    fconfig = NerFeatureConfig(int(config.max_seq_length or info.get("max_seq_length") or 128),
                               int(info.get("doc_stride") or 64)).validate()

    from ..engine import token_classifier as engine
    from ..engine.device import select_runtime
    from ..engine.model import check_seq_length

    check_seq_length(model_config, fconfig.max_seq_length)
    runtime = select_runtime(config.device, config.precision, config.xla)
    console.info(runtime.describe("predicting"))
    model = engine.build_model(runtime, model_config, len(tags), seed=None, random_init=False)
    console.debug(engine.load_weights(model, checkpoint).summary())
    predictor = engine.TokenPredictor(model, jit_compile=runtime.xla, padding_multiple=runtime.padding_multiple)
    tokenizer = FullTokenizer(files["vocab_file"], do_lower_case=bool(info.get("do_lower_case", False)))

    started, count = time.perf_counter(), 0
    it = iter(texts)
    while batch := list(itertools.islice(it, config.batch_size)):
        spans = [words_with_offsets(line) for line in batch]
        sentences = [Sentence(tuple(w for w, _, _ in s), None, i, "<input>", (0,) * len(s))
                     for i, s in enumerate(spans) if s]
        words: list = []
        if sentences:
            split = featurize_split("predict", Path("<input>"), sentences, tokenizer, tags, fconfig)
            logits = predictor.logits_of(split.arrays, config.batch_size)
            words = word_predictions(split, engine.softmax(logits))
        per_word = iter(words)
        for line, s in zip(batch, spans):
            probs = next(per_word) if s else []
            best = [int(p.argmax()) for p in probs]
            out.write(_format(fmt, line, s, [tags[b] for b in best], [float(p[b]) for p, b in zip(probs, best)]))
        out.flush()
        count += len(batch)
        if progress is not None:
            elapsed = time.perf_counter() - started
            progress({"phase": "predict", "examples": count, "examples_per_s": count / elapsed if elapsed > 0 else None})
    seconds = time.perf_counter() - started
    return {"examples": count, "seconds": seconds, "examples_per_s": count / seconds if seconds > 0 and count else None,
            "checkpoint": checkpoint, "format": fmt}
