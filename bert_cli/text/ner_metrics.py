"""Entity-level NER metrics exactly as the official CoNLL ``conlleval`` script (version
2004-01-26), its report, and a writer of the ``token gold predicted`` files it reads.
Pure Python, no TensorFlow.

:func:`evaluate` runs conlleval's own algorithm over ``(gold, predicted)`` tag sequences,
one sequence per sentence, with a sentence boundary (conlleval's blank line: both tags ``O``,
not counted as a token) between sentences:

* a tag is split at its FIRST hyphen into prefix and type (``B-PER`` -> ``B``, ``PER``; ``O``
  and hyphen-less tags have type ``""``; a type ``"0"`` counts as ``""``, as in Perl);
* a chunk STARTS at ``B`` after anything; at ``I`` after ``O`` (an ill-formed ``I-`` starts a
  chunk, as IOB1); at ``E`` after ``E`` or ``O``; at ``I`` after ``E``; at ``[`` or ``]``; and
  at any non-``O`` tag whose type differs from the previous tag's type (a type change inside
  a chunk starts a new one);
* a chunk ENDS before ``B`` or ``O`` after ``B``/``I``; before ``E``/``I``/``O`` after ``E``;
  after ``[``/``]``; and whenever the type changes after a non-``O`` tag;
* a predicted chunk is correct when gold and predicted chunks start together with the same
  type and end together (conlleval's running ``inCorrect`` state, reproduced step by step);
* token accuracy counts tokens whose full tags are equal.

Precision, recall and F1 are fractions (conlleval prints percentages); a zero denominator
gives 0.0. :func:`format_conlleval` prints conlleval's exact text; :func:`format_report` a
per-type table.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..fileio import atomic_write

__all__ = [
    "ChunkScore",
    "NerEvaluation",
    "evaluate",
    "extract_chunks",
    "format_conlleval",
    "format_report",
    "percents",
    "write_conll",
]

_BOUNDARY = ("O", "")


def _split(tag: str) -> tuple[str, str]:
    """conlleval's ``/^([^-]*)-(.*)$/`` split, with Perl's ``"0"`` type being false."""
    prefix, sep, kind = tag.partition("-")
    if not sep:
        return tag, ""
    return prefix, ("" if kind == "0" else kind)


def _end_of_chunk(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    if prev in ("B", "I") and tag in ("B", "O"):
        return True
    if prev == "E" and tag in ("E", "I", "O"):
        return True
    if prev not in ("O", ".") and prev_type != kind:
        return True
    return prev in ("]", "[")


def _start_of_chunk(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    if tag == "B" and prev in ("B", "I", "O"):
        return True
    if prev == "O" and tag in ("I", "E"):
        return True
    if prev == "E" and tag in ("E", "I"):
        return True
    if tag not in ("O", ".") and prev_type != kind:
        return True
    return tag in ("[", "]")


@dataclasses.dataclass(frozen=True)
class ChunkScore:
    """Counts and scores of one chunk type (or of all): gold chunks, predicted chunks, correct."""

    gold: int
    predicted: int
    correct: int

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclasses.dataclass(frozen=True)
class NerEvaluation:
    """conlleval's counts: ``overall`` and ``per_type`` chunk scores, tokens, correct tags."""

    overall: ChunkScore
    per_type: dict[str, ChunkScore]
    tokens: int
    correct_tags: int

    @property
    def accuracy(self) -> float:
        return self.correct_tags / self.tokens if self.tokens else 0.0

    @property
    def precision(self) -> float:
        return self.overall.precision

    @property
    def recall(self) -> float:
        return self.overall.recall

    @property
    def f1(self) -> float:
        return self.overall.f1

    def as_dict(self, prefix: str = "eval_") -> dict[str, float]:
        """``{eval_precision, eval_recall, eval_f1, eval_accuracy}`` (fractions)."""
        return {f"{prefix}precision": self.precision, f"{prefix}recall": self.recall,
                f"{prefix}f1": self.f1, f"{prefix}accuracy": self.accuracy}


def evaluate(gold: Iterable[Sequence[str]], predicted: Iterable[Sequence[str]]) -> NerEvaluation:
    """conlleval over sentences of gold and predicted tags (see the module doc).

    ValueError when the two sides differ in sentence count or a sentence's length.
    """
    found_correct: Counter = Counter()
    found_guessed: Counter = Counter()
    correct_chunk: Counter = Counter()
    tokens = correct_tags = 0
    in_correct = False
    last_c, last_c_type = "O", ""
    last_g, last_g_type = "O", ""

    def step(c: str, c_type: str, g: str, g_type: str) -> None:
        nonlocal in_correct, last_c, last_c_type, last_g, last_g_type
        end_c = _end_of_chunk(last_c, c, last_c_type, c_type)
        end_g = _end_of_chunk(last_g, g, last_g_type, g_type)
        if in_correct:
            if end_c and end_g and last_g_type == last_c_type:
                in_correct = False
                correct_chunk[last_c_type] += 1
            elif end_c != end_g or g_type != c_type:
                in_correct = False
        start_c = _start_of_chunk(last_c, c, last_c_type, c_type)
        start_g = _start_of_chunk(last_g, g, last_g_type, g_type)
        if start_c and start_g and g_type == c_type:
            in_correct = True
        if start_c:
            found_correct[c_type] += 1
        if start_g:
            found_guessed[g_type] += 1
        last_c, last_c_type, last_g, last_g_type = c, c_type, g, g_type

    for sentence, (gold_tags, pred_tags) in enumerate(_zip_strict(gold, predicted)):
        if len(gold_tags) != len(pred_tags):
            raise ValueError(f"sentence {sentence}: {len(gold_tags)} gold tags but {len(pred_tags)} predicted")
        for c_tag, g_tag in zip(gold_tags, pred_tags):
            c, c_type = _split(c_tag)
            g, g_type = _split(g_tag)
            step(c, c_type, g, g_type)
            tokens += 1
            correct_tags += c == g and c_type == g_type
        step(*_BOUNDARY, *_BOUNDARY)  # the blank line after each sentence
    if in_correct:
        correct_chunk[last_c_type] += 1
    types = sorted(set(found_correct) | set(found_guessed))
    per_type = {t: ChunkScore(found_correct[t], found_guessed[t], correct_chunk[t]) for t in types}
    overall = ChunkScore(sum(found_correct.values()), sum(found_guessed.values()), sum(correct_chunk.values()))
    return NerEvaluation(overall, per_type, tokens, correct_tags)


def _zip_strict(a: Iterable, b: Iterable) -> Iterable[tuple]:
    sentinel = object()
    ia, ib = iter(a), iter(b)
    count = 0
    while True:
        x, y = next(ia, sentinel), next(ib, sentinel)
        if x is sentinel or y is sentinel:
            if x is not y:
                more = "gold" if y is sentinel else "predicted"
                raise ValueError(f"more {more} sentences than the other side (both sides agree on {count})")
            return
        count += 1
        yield x, y


def extract_chunks(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The chunks of one sentence as conlleval sees them: ``(type, start, end)``, end exclusive."""
    chunks: list[tuple[str, int, int]] = []
    last, last_type = "O", ""
    start: int | None = None
    for i, tag in enumerate([*tags, "O"]):
        prefix, kind = _split(tag)
        if start is not None and _end_of_chunk(last, prefix, last_type, kind):
            chunks.append((last_type, start, i))
            start = None
        if i < len(tags) and _start_of_chunk(last, prefix, last_type, kind):
            start = i
        last, last_type = prefix, kind
    return chunks


# ============================================================================= reports
def percents(score: ChunkScore) -> tuple[float, float, float]:
    """Precision, recall and FB1 in percent, computed in conlleval's order of operations."""
    precision = 100 * score.correct / score.predicted if score.predicted else 0.0
    recall = 100 * score.correct / score.gold if score.gold else 0.0
    fb1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, fb1


def format_conlleval(result: NerEvaluation) -> str:
    """The text the conlleval script prints (without ``-l``), byte for byte."""
    o = result.overall
    lines = [(f"processed {result.tokens} tokens with {o.gold} phrases; found: {o.predicted} phrases; "
              f"correct: {o.correct}.")]
    if result.tokens:
        p, r, f = percents(o)
        lines.append(f"accuracy: {100 * result.correct_tags / result.tokens:6.2f}%; precision: {p:6.2f}%; "
                     f"recall: {r:6.2f}%; FB1: {f:6.2f}")
    for kind in _perl_sorted_types(result.per_type):
        s = result.per_type[kind]
        p, r, f = percents(s)
        lines.append(f"{kind:>17}: precision: {p:6.2f}%; recall: {r:6.2f}%; FB1: {f:6.2f}  {s.predicted}")
    return "\n".join(lines) + "\n"


def _perl_sorted_types(per_type: dict[str, ChunkScore]) -> list[str]:
    """conlleval's type list: the sorted keys of both count tables, a repeat dropped unless
    the previous key is false in Perl (``""``), so a typeless chunk tag is listed twice."""
    keys = sorted([t for t, s in per_type.items() if s.gold] + [t for t, s in per_type.items() if s.predicted])
    out: list[str] = []
    last = None
    for key in keys:
        if not last or last != key:
            out.append(key)
        last = key
    return out


def format_report(result: NerEvaluation) -> str:
    """A per-type table (percentages, as conlleval) with gold/predicted/correct chunk counts."""
    width = max([len("overall"), *(len(t) for t in result.per_type)])
    head = f"{'type':<{width}}  precision  recall      f1   gold  predicted  correct"
    rows = [head, "-" * len(head)]

    def row(name: str, s: ChunkScore) -> str:
        p, r, f = percents(s)
        return (f"{name:<{width}}  {p:9.2f}  {r:6.2f}  {f:6.2f}"
                f"  {s.gold:5d}  {s.predicted:9d}  {s.correct:7d}")

    rows += [row(t or "(none)", s) for t, s in result.per_type.items()]
    rows += ["-" * len(head), row("overall", result.overall),
             f"token accuracy: {100 * result.accuracy:.2f}% of {result.tokens} tokens"]
    return "\n".join(rows) + "\n"


def conll_token(word: str) -> str:
    """A word as one conlleval column: whitespace inside becomes ``_``; an empty word ``_``."""
    return "_".join(word.split()) or "_"


def write_conll(path: str | Path, words: Iterable[Sequence[str]], predicted: Iterable[Sequence[str]],
                gold: Iterable[Sequence[str]] | None = None) -> int:
    """Write ``token gold predicted`` lines (``token predicted`` without gold), a blank line
    after each sentence, atomically; returns the number of sentences. conlleval reads it."""
    count = 0
    golds = iter(gold) if gold is not None else None
    with atomic_write(path) as fh:
        for sentence_words, pred in _zip_strict(words, predicted):
            g = next(golds) if golds is not None else None
            if len(pred) != len(sentence_words) or (g is not None and len(g) != len(sentence_words)):
                raise ValueError(f"sentence {count}: {len(sentence_words)} words but tags of another length")
            for i, word in enumerate(sentence_words):
                fh.write(f"{conll_token(word)} {g[i]} {pred[i]}\n" if g is not None else f"{conll_token(word)} {pred[i]}\n")
            fh.write("\n")
            count += 1
    return count
