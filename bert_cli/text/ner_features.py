"""Token classification features: word -> WordPiece alignment, windows over long sentences,
optional document context, and the inverse (window predictions -> one tag per word).
Pure Python, no TensorFlow.

Alignment (:func:`align_words`), as the original README's Tokenization section
    Each word is tokenized on its own with the project's ``FullTokenizer``; its FIRST
    WordPiece carries the word's tag, its other pieces get label id ``-100``
    (:data:`IGNORE_LABEL`) and are left out of the loss and the metrics. ``orig_to_tok_map[i]``
    is the index of word ``i``'s first piece: ``John Johanson 's house`` -> ``[CLS] john
    johan ##son ' s house [SEP]``, ``[1, 2, 4, 6]``. A word that yields no piece at all (only
    characters the tokenizer removes, e.g. U+200B) becomes ``[UNK]`` so that every word keeps
    a position and a prediction.

Windows (:func:`featurize`), as ``run_squad.py`` does for documents
    A sentence whose pieces do not fit ``max_seq_length - 2`` is never cut: it is split into
    windows of ``max_seq_length - 2`` WordPieces advancing by ``doc_stride`` **WordPieces**
    (so a window may begin or end inside a word; a word belongs to the windows holding its
    first piece). Each word's prediction is taken from ONE window: the one where its first
    piece has the most context, score ``min(left, right) + 0.01 * window length`` with the
    first best window winning (the SQuAD "max context" rule, :func:`check_is_max_context`).
    Every first-piece position of a window is labeled (all windows train); ``max_context``
    marks the positions whose prediction counts.

Document context (``document_context=True``, the BERT paper's CoNLL setup)
    A sentence that fits is surrounded by the WordPieces of its neighbours in the same
    document (same file and ``doc_id``), previous sentences on the left and following ones on
    the right, balanced, up to ``max_seq_length - 2`` pieces; context pieces are labeled
    ``-100`` and never predicted. Longer sentences get windows without context.

Every feature has ``input_ids``, ``input_mask``, ``segment_ids`` (all 0), ``label_ids``, and,
per position, ``word_ids`` (the word index at first-piece positions of the target sentence,
``-1`` elsewhere) and ``max_context`` (1 where this window's prediction for that word counts).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol, TypeVar

from ..errors import UsageError
from .ner import Sentence
from .squad import DocSpan, check_is_max_context, doc_spans_for

__all__ = [
    "IGNORE_LABEL",
    "NerFeature",
    "NerFeatureConfig",
    "align_words",
    "featurize",
    "merge_predictions",
    "word_pieces",
]

IGNORE_LABEL = -100
NO_WORD = -1
UNK = "[UNK]"

T = TypeVar("T")


class Tokenizer(Protocol):
    def tokenize(self, text: str) -> list[str]: ...

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]: ...


@dataclasses.dataclass(frozen=True)
class NerFeatureConfig:
    """``max_seq_length`` (with [CLS] and [SEP]), ``doc_stride`` in WordPieces, document context."""

    max_seq_length: int = 128
    doc_stride: int = 64
    document_context: bool = False

    def validate(self) -> NerFeatureConfig:
        if self.max_seq_length < 3:
            raise UsageError(f"--max-seq-length must be at least 3 (got {self.max_seq_length})")
        if self.doc_stride < 1:
            raise UsageError(f"--doc-stride must be at least 1 (got {self.doc_stride})")
        return self


@dataclasses.dataclass
class NerFeature:
    """One window of one sentence, padded to ``max_seq_length``."""

    sentence_index: int
    window_index: int
    input_ids: list[int]
    input_mask: list[int]
    segment_ids: list[int]
    label_ids: list[int]
    word_ids: list[int]
    max_context: list[int]

    def predicted_words(self) -> list[tuple[int, int]]:
        """``(position, word index)`` of the words whose prediction this window gives."""
        return [(p, w) for p, (w, m) in enumerate(zip(self.word_ids, self.max_context)) if m]


# ============================================================================= alignment
def word_pieces(tokenizer: Tokenizer, words: Sequence[str]) -> tuple[list[str], list[int]]:
    """The WordPieces of ``words`` (each tokenized alone) and the index of each word's first
    piece in them (no [CLS]/[SEP]). A word without pieces becomes ``[UNK]``."""
    pieces: list[str] = []
    first: list[int] = []
    for word in words:
        first.append(len(pieces))
        pieces.extend(tokenizer.tokenize(word) or [UNK])
    return pieces, first


def align_words(tokenizer: Tokenizer, words: Sequence[str]) -> tuple[list[str], list[int]]:
    """The README recipe: ``[CLS]`` + pieces + ``[SEP]`` and ``orig_to_tok_map``."""
    pieces, first = word_pieces(tokenizer, words)
    return ["[CLS]", *pieces, "[SEP]"], [i + 1 for i in first]


def piece_labels(num_pieces: int, first: Sequence[int], tag_ids: Sequence[int] | None) -> list[int]:
    """Label id per piece: the word's tag id on its first piece, ``-100`` elsewhere."""
    labels = [IGNORE_LABEL] * num_pieces
    if tag_ids is not None:
        for pos, tag in zip(first, tag_ids):
            labels[pos] = tag
    return labels


# ============================================================================= featurization
def featurize(sentences: Sequence[Sentence], tokenizer: Tokenizer, tag_map: Mapping[str, int],
              config: NerFeatureConfig = NerFeatureConfig()) -> Iterator[NerFeature]:
    """Features of ``sentences`` in order (a generator); see the module doc.

    Sentences without tags (prediction input) get label ids ``-100`` everywhere. A tag not in
    ``tag_map`` is a KeyError (check tags with :func:`~bert_cli.text.ner.check_known_tags`).
    """
    config.validate()
    cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    cache = _PieceCache(sentences, tokenizer)
    budget = config.max_seq_length - 2
    for index, sentence in enumerate(sentences):
        ids, first = cache.get(index)
        tag_ids = None if sentence.tags is None else [tag_map[t] for t in sentence.tags]
        labels = piece_labels(len(ids), first, tag_ids)
        if config.document_context and len(ids) <= budget:
            left, right = _context(cache, index, budget - len(ids))
            spans = [DocSpan(0, len(ids))]
        else:
            left, right = [], []
            spans = doc_spans_for(len(ids), budget, config.doc_stride)
        first_at = {pos: w for w, pos in enumerate(first)}
        for window, span in enumerate(spans):
            end = span.start + span.length
            body_ids = ids[span.start:end]
            n_left = 1 + len(left)
            input_ids = [cls_id, *left, *body_ids, *right, sep_id]
            label_ids = [IGNORE_LABEL] * n_left + labels[span.start:end]
            word_ids = [NO_WORD] * n_left
            max_context = [0] * n_left
            for pos in range(span.start, end):
                word = first_at.get(pos, NO_WORD)
                word_ids.append(word)
                max_context.append(int(word != NO_WORD and check_is_max_context(spans, window, pos)))
            tail = len(right) + 1
            label_ids += [IGNORE_LABEL] * tail
            word_ids += [NO_WORD] * tail
            max_context += [0] * tail
            used = len(input_ids)
            pad = config.max_seq_length - used
            yield NerFeature(
                sentence_index=index,
                window_index=window,
                input_ids=input_ids + [0] * pad,
                input_mask=[1] * used + [0] * pad,
                segment_ids=[0] * config.max_seq_length,
                label_ids=label_ids + [IGNORE_LABEL] * pad,
                word_ids=word_ids + [NO_WORD] * pad,
                max_context=max_context + [0] * pad,
            )


class _PieceCache:
    """Piece ids and first-piece indexes of sentences, computed once each (context reuses them)."""

    def __init__(self, sentences: Sequence[Sentence], tokenizer: Tokenizer) -> None:
        self.sentences = sentences
        self.tokenizer = tokenizer
        self._cache: dict[int, tuple[list[int], list[int]]] = {}
        self._low = 0

    def get(self, index: int) -> tuple[list[int], list[int]]:
        found = self._cache.get(index)
        if found is None:
            pieces, first = word_pieces(self.tokenizer, self.sentences[index].words)
            found = (self.tokenizer.convert_tokens_to_ids(pieces), first)
            self._cache[index] = found
            # sentences are visited in order: forget those far behind (context looks back a little)
            while self._low < index - 64:
                self._cache.pop(self._low, None)
                self._low += 1
        return found

    def same_doc(self, a: int, b: int) -> bool:
        sa, sb = self.sentences[a], self.sentences[b]
        return sa.doc_id == sb.doc_id and sa.path == sb.path


def _context(cache: _PieceCache, index: int, room: int) -> tuple[list[int], list[int]]:
    """Up to ``room`` piece ids of the neighbours of sentence ``index`` (same document):
    ``(left, right)``, balanced, each side filling what the other cannot use."""
    if room <= 0:
        return [], []
    left = _gather(cache, index, -1, room)
    right = _gather(cache, index, +1, room)
    take_left = min(len(left), room // 2)
    take_right = min(len(right), room - take_left)
    take_left = min(len(left), room - take_right)
    return left[len(left) - take_left:], right[:take_right]


def _gather(cache: _PieceCache, index: int, step: int, room: int) -> list[int]:
    """Piece ids of up to ``room`` pieces of consecutive neighbours in direction ``step``."""
    parts: list[list[int]] = []
    total = 0
    other = index + step
    while 0 <= other < len(cache.sentences) and total < room and cache.same_doc(index, other):
        ids = cache.get(other)[0]
        parts.append(ids)
        total += len(ids)
        other += step
    if step < 0:
        parts.reverse()
    return [i for part in parts for i in part]


# ============================================================================= inverse
def merge_predictions(features: Sequence[NerFeature], predictions: Sequence[Sequence[T]],
                      sentences: Sequence[Sentence]) -> list[list[T]]:
    """One prediction per word of each sentence, from the windows' per-position predictions.

    ``predictions[k][p]`` is anything (a tag id, a probability vector) for position ``p`` of
    ``features[k]``; each word takes the value at its first piece in its max-context window.
    ValueError when the features do not give every word exactly one prediction.
    """
    if len(features) != len(predictions):
        raise ValueError(f"{len(features)} features but {len(predictions)} predictions")
    out: list[list] = [[None] * len(s.words) for s in sentences]
    counts = [[0] * len(s.words) for s in sentences]
    for feature, values in zip(features, predictions):
        row = out[feature.sentence_index]
        for pos, word in feature.predicted_words():
            row[word] = values[pos]
            counts[feature.sentence_index][word] += 1
    for index, words in enumerate(counts):
        bad = [w for w, c in enumerate(words) if c != 1]
        if bad:
            raise ValueError(f"sentence {index}: word {bad[0]} has {words[bad[0]]} predictions (expected 1)")
    return out
