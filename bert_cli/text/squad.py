"""SQuAD v1.1 / v2.0 examples and their featurization, exactly as the original ``run_squad.py``.

Reading (:func:`read_squad_examples`)
    Each paragraph is split on whitespace (space, tab, CR, LF and U+202F) into ``doc_tokens``,
    with a character -> word map. Every question of a paragraph shares that paragraph's
    ``doc_tokens`` list (one object, so memory grows with paragraphs, not questions). For
    training, a question must have exactly one answer unless it is impossible (v2.0); an
    answer whose whitespace-normalized text is not found in its word span is skipped with a
    warning ("Could not find answer") and counted in :class:`ReadStats`; impossible questions
    get start = end = -1 and the text "". For prediction every question is kept as is.

Featurization (:func:`convert_examples_to_features`)
    A **generator**: features come out one at a time in ``unique_id`` order (from
    1000000000), grouped by example, so the 10570-question dev set never needs its whole
    feature set in memory. Query truncated to ``max_query_length``; ``_improve_answer_span``;
    ``max_tokens_for_doc = max_seq_length - len(query) - 3``; sliding windows advancing by
    ``min(length, doc_stride)`` that stop at the document end; the max-context rule
    ``min(left, right) + 0.01 * length``; training positions offset by ``len(query) + 2``,
    and 0/0 (the [CLS] position) for impossible questions or answers outside the window.

    The prediction writer (:mod:`bert_cli.text.squad_predict`) needs per-feature metadata
    (tokens, token_to_orig_map, token_is_max_context, example index). We do **not** store it:
    featurization is deterministic, so the writer simply runs this generator again over the
    same examples, in lock-step with the saved logits (see ``squad_predict``). Memory stays at
    one example's features; the cost is a second tokenization pass.

The TFRecord layout of one feature is the original's (:func:`feature_to_record`):
``unique_ids, input_ids, input_mask, segment_ids`` and, for training, ``start_positions,
end_positions, is_impossible``.

Pure Python, no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Iterator, Protocol, Sequence

from .. import console
from ..errors import InputError, NotFoundError, UsageError

FIRST_UNIQUE_ID = 1000000000
DEFAULT_MAX_SEQ_LENGTH = 384
DEFAULT_DOC_STRIDE = 128
DEFAULT_MAX_QUERY_LENGTH = 64


class WordPieceTokenizer(Protocol):
    """What featurization needs from ``tokenization.FullTokenizer``."""

    def tokenize(self, text: str) -> list[str]: ...

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]: ...


# ----------------------------------------------------------------------------- examples
@dataclasses.dataclass
class SquadExample:
    """One question over a whitespace-tokenized paragraph (positions are word indexes)."""

    qas_id: str
    question_text: str
    doc_tokens: list[str]
    orig_answer_text: str | None = None
    start_position: int | None = None
    end_position: int | None = None
    is_impossible: bool = False


@dataclasses.dataclass
class ReadStats:
    """What :func:`read_squad_examples` kept and skipped."""

    questions: int = 0
    examples: int = 0
    impossible: int = 0
    skipped_answer_not_found: int = 0
    skipped_ids: list[str] = dataclasses.field(default_factory=list)


def is_whitespace(c: str) -> bool:
    """The original's whitespace test: space, \\t, \\r, \\n and U+202F (narrow no-break space)."""
    return c == " " or c == "\t" or c == "\r" or c == "\n" or ord(c) == 0x202F


def split_paragraph(text: str) -> tuple[list[str], list[int]]:
    """Whitespace-split ``text`` into words; also the word index of every character."""
    doc_tokens: list[str] = []
    char_to_word_offset: list[int] = []
    prev_is_whitespace = True
    for c in text:
        if is_whitespace(c):
            prev_is_whitespace = True
        else:
            if prev_is_whitespace:
                doc_tokens.append(c)
            else:
                doc_tokens[-1] += c
            prev_is_whitespace = False
        char_to_word_offset.append(len(doc_tokens) - 1)
    return doc_tokens, char_to_word_offset


def answer_word_span(doc_tokens: list[str], char_to_word_offset: list[int], answer_text: str,
                     answer_start: int) -> tuple[int, int] | None:
    """The (start, end) word span of a character-level answer, or None when the original
    would skip it ("Could not find answer": the whitespace-normalized answer text is not a
    substring of the joined words). Raises IndexError/TypeError for offsets off the text.
    """
    if not isinstance(answer_start, int) or isinstance(answer_start, bool) or answer_start < 0:
        raise TypeError("answer_start must be a non-negative integer")
    start = char_to_word_offset[answer_start]
    end = char_to_word_offset[answer_start + len(answer_text) - 1]
    actual_text = " ".join(doc_tokens[start:end + 1])
    cleaned_answer_text = " ".join(answer_text.split())
    if actual_text.find(cleaned_answer_text) == -1:
        return None
    return start, end


def load_squad_json(path: str | Path) -> list:
    """The ``data`` list of a SQuAD JSON file (NotFoundError / InputError naming the file)."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"SQuAD file not found: {p}")
    try:
        with open(p, encoding="utf-8") as fh:
            obj = json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg})", path=p, line=exc.lineno) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=p) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        raise InputError('not a SQuAD file (expected an object with a "data" list)', path=p)
    return obj["data"]


def read_squad_examples(path: str | Path, is_training: bool, version_2_with_negative: bool = False,
                        stats: ReadStats | None = None, data: list | None = None,
                        first_answer_only: bool = False) -> list[SquadExample]:
    """Read a SQuAD JSON file into examples, as the original ``read_squad_examples``.

    ``data`` may pass an already-loaded ``data`` list (``path`` is then only used in messages).
    ``is_impossible`` is only read when ``version_2_with_negative`` (as the original).
    ``first_answer_only`` (not in the original, off by default) lets training read dev-style
    files whose questions have several answers, using the first one.
    """
    stats = stats if stats is not None else ReadStats()
    if data is None:
        data = load_squad_json(path)
    examples: list[SquadExample] = []
    try:
        for entry in data:
            for paragraph in entry["paragraphs"]:
                context = paragraph["context"]
                if not isinstance(context, str):
                    raise InputError("a paragraph context is not a string", path=path)
                doc_tokens, char_to_word_offset = split_paragraph(context)
                for qa in paragraph["qas"]:
                    stats.questions += 1
                    example = _read_question(qa, doc_tokens, char_to_word_offset, is_training,
                                             version_2_with_negative, path, stats, first_answer_only)
                    if example is not None:
                        examples.append(example)
    except (KeyError, TypeError) as exc:
        raise InputError(f"not a SQuAD file (missing or malformed field {exc})", path=path) from None
    stats.examples = len(examples)
    if stats.skipped_answer_not_found:
        console.warn(f"{path}: skipped {stats.skipped_answer_not_found} question(s) whose answer text "
                     f"could not be found in the paragraph (e.g. {stats.skipped_ids[0]!r})")
    return examples


def _read_question(qa: dict, doc_tokens: list[str], char_to_word_offset: list[int], is_training: bool,
                   version_2_with_negative: bool, path, stats: ReadStats,
                   first_answer_only: bool = False) -> SquadExample | None:
    qas_id = qa["id"]
    question_text = qa["question"]
    if not isinstance(question_text, str):
        raise InputError(f"question {qas_id!r}: the question is not a string", path=path)
    if not is_training:
        return SquadExample(str(qas_id), question_text, doc_tokens)
    is_impossible = bool(qa.get("is_impossible", False)) if version_2_with_negative else False
    if is_impossible:
        stats.impossible += 1
        return SquadExample(str(qas_id), question_text, doc_tokens, "", -1, -1, True)
    answers = qa["answers"]
    if len(answers) != 1 and not (first_answer_only and answers):
        raise _answer_count_error(qas_id, qa, len(answers), path)
    answer = answers[0]
    text = answer["text"]
    try:
        span = answer_word_span(doc_tokens, char_to_word_offset, text, answer["answer_start"])
    except (IndexError, TypeError):
        raise InputError(f"question {qas_id!r}: answer_start {answer['answer_start']!r} with text "
                         f"{text!r} lies outside the paragraph", path=path) from None
    if span is None:
        console.debug(f"Could not find answer for {qas_id!r}: {text!r}")
        stats.skipped_answer_not_found += 1
        stats.skipped_ids.append(str(qas_id))
        return None
    return SquadExample(str(qas_id), question_text, doc_tokens, text, span[0], span[1], False)


def _answer_count_error(qas_id, qa: dict, count: int, path) -> InputError:
    """Why a training question without exactly one answer cannot be used, naming the flag that helps."""
    where = f"question {qas_id!r}"
    if qa.get("is_impossible"):
        return InputError(f"{where} is marked is_impossible (a SQuAD 2.0 file): pass --version-2-with-negative",
                          path=path)
    if count > 1:
        return InputError(f"{where} has {count} answers; training needs exactly 1 answer per question: pass "
                          "--first-answer-only to train on the first answer of each", path=path,
                          hint="dev files list several gold answers per question; training files have one")
    return InputError(f"{where} has no answer; training needs exactly 1 answer per question", path=path,
                      hint="for SQuAD 2.0 mark unanswerable questions with is_impossible and pass "
                           "--version-2-with-negative")


def question_ids(data: list, path: str | Path) -> list[str]:
    """The id of every question of a SQuAD ``data`` list, in file order.

    Raises InputError naming ``path`` for a malformed file or a duplicate id: predictions.json,
    null_odds.json and the scores are keyed by id, so a repeated id would silently lose an answer.
    """
    ids: list[str] = []
    seen: set[str] = set()
    try:
        for entry in data:
            for paragraph in entry["paragraphs"]:
                for qa in paragraph["qas"]:
                    qid = str(qa["id"])
                    if qid in seen:
                        raise InputError(f"duplicate question id {qid!r}: every question needs its own id",
                                         path=path)
                    seen.add(qid)
                    ids.append(qid)
    except (KeyError, TypeError) as exc:
        raise InputError(f"not a SQuAD file (missing or malformed field {exc})", path=path) from None
    return ids


# ----------------------------------------------------------------------------- features
@dataclasses.dataclass(frozen=True)
class DocSpan:
    """A window of the WordPiece-tokenized document: ``length`` tokens from ``start``."""

    start: int
    length: int


@dataclasses.dataclass
class SquadFeature:
    """One window of one example, ready for the model (and for ``write_predictions``)."""

    unique_id: int
    example_index: int
    doc_span_index: int
    tokens: list[str]
    token_to_orig_map: dict[int, int]
    token_is_max_context: dict[int, bool]
    input_ids: list[int]
    input_mask: list[int]
    segment_ids: list[int]
    start_position: int | None = None
    end_position: int | None = None
    is_impossible: bool = False


@dataclasses.dataclass(frozen=True)
class FeaturizeConfig:
    """The original's featurization flags (defaults as ``run_squad.py``)."""

    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH
    doc_stride: int = DEFAULT_DOC_STRIDE
    max_query_length: int = DEFAULT_MAX_QUERY_LENGTH

    def validate(self) -> "FeaturizeConfig":
        """UsageError unless max_seq_length > max_query_length + 3 and doc_stride >= 1."""
        if self.max_query_length < 1:
            raise UsageError(f"--max-query-length must be at least 1 (got {self.max_query_length})")
        if self.max_seq_length <= self.max_query_length + 3:
            raise UsageError(
                f"--max-seq-length ({self.max_seq_length}) must be greater than "
                f"--max-query-length ({self.max_query_length}) + 3"
            )
        if self.doc_stride < 1:
            raise UsageError(f"--doc-stride must be at least 1 (got {self.doc_stride})")
        return self


def doc_spans_for(num_tokens: int, max_tokens_for_doc: int, doc_stride: int) -> list[DocSpan]:
    """The original's sliding windows over ``num_tokens`` document tokens."""
    spans: list[DocSpan] = []
    start_offset = 0
    while start_offset < num_tokens:
        length = min(num_tokens - start_offset, max_tokens_for_doc)
        spans.append(DocSpan(start_offset, length))
        if start_offset + length == num_tokens:
            break
        start_offset += min(length, doc_stride)
    return spans


def check_is_max_context(doc_spans: Sequence[DocSpan], cur_span_index: int, position: int) -> bool:
    """Whether span ``cur_span_index`` is the one giving token ``position`` the most context.

    Score = min(left context, right context) + 0.01 * span length; the first best span wins.
    """
    best_score = None
    best_span_index = None
    for span_index, doc_span in enumerate(doc_spans):
        end = doc_span.start + doc_span.length - 1
        if position < doc_span.start or position > end:
            continue
        num_left_context = position - doc_span.start
        num_right_context = end - position
        score = min(num_left_context, num_right_context) + 0.01 * doc_span.length
        if best_score is None or score > best_score:
            best_score = score
            best_span_index = span_index
    return cur_span_index == best_span_index


def improve_answer_span(doc_tokens: Sequence[str], input_start: int, input_end: int,
                        tokenizer: WordPieceTokenizer, orig_answer_text: str) -> tuple[int, int]:
    """The tightest sub-span of [input_start, input_end] whose tokens equal the tokenized answer."""
    tok_answer_text = " ".join(tokenizer.tokenize(orig_answer_text))
    for new_start in range(input_start, input_end + 1):
        for new_end in range(input_end, new_start - 1, -1):
            if " ".join(doc_tokens[new_start:new_end + 1]) == tok_answer_text:
                return new_start, new_end
    return input_start, input_end


class _DocTokenCache:
    """WordPiece tokens of the last paragraph seen (questions of one paragraph are consecutive
    and share their ``doc_tokens`` list, so each paragraph is tokenized once)."""

    def __init__(self, tokenizer: WordPieceTokenizer) -> None:
        self.tokenizer = tokenizer
        self._key: list[str] | None = None
        self._value: tuple[list[int], list[int], list[str]] | None = None

    def get(self, doc_tokens: list[str]) -> tuple[list[int], list[int], list[str]]:
        if self._key is not doc_tokens or self._value is None:
            tok_to_orig_index: list[int] = []
            orig_to_tok_index: list[int] = []
            all_doc_tokens: list[str] = []
            for i, token in enumerate(doc_tokens):
                orig_to_tok_index.append(len(all_doc_tokens))
                for sub_token in self.tokenizer.tokenize(token):
                    tok_to_orig_index.append(i)
                    all_doc_tokens.append(sub_token)
            self._key = doc_tokens
            self._value = (tok_to_orig_index, orig_to_tok_index, all_doc_tokens)
        return self._value


def convert_examples_to_features(examples: Iterable[SquadExample], tokenizer: WordPieceTokenizer,
                                 max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
                                 doc_stride: int = DEFAULT_DOC_STRIDE,
                                 max_query_length: int = DEFAULT_MAX_QUERY_LENGTH,
                                 is_training: bool = False) -> Iterator[SquadFeature]:
    """The features of ``examples`` in order, exactly as the original, as a lazy iterator.

    The lengths are validated at once (UsageError), before anything is tokenized.
    """
    FeaturizeConfig(max_seq_length, doc_stride, max_query_length).validate()
    return _generate_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length, is_training)


def _generate_features(examples: Iterable[SquadExample], tokenizer: WordPieceTokenizer, max_seq_length: int,
                       doc_stride: int, max_query_length: int, is_training: bool) -> Iterator[SquadFeature]:
    cache = _DocTokenCache(tokenizer)
    unique_id = FIRST_UNIQUE_ID
    for example_index, example in enumerate(examples):
        for feature in _example_features(example, example_index, tokenizer, cache, max_seq_length,
                                         doc_stride, max_query_length, is_training, unique_id):
            yield feature
            unique_id += 1


def featurize(examples: Iterable[SquadExample], tokenizer: WordPieceTokenizer, config: FeaturizeConfig,
              is_training: bool = False) -> Iterator[SquadFeature]:
    """:func:`convert_examples_to_features` with a :class:`FeaturizeConfig`."""
    return convert_examples_to_features(examples, tokenizer, config.max_seq_length, config.doc_stride,
                                        config.max_query_length, is_training)


def _example_features(example: SquadExample, example_index: int, tokenizer: WordPieceTokenizer,
                      cache: _DocTokenCache, max_seq_length: int, doc_stride: int, max_query_length: int,
                      is_training: bool, first_unique_id: int) -> Iterator[SquadFeature]:
    query_tokens = tokenizer.tokenize(example.question_text)[:max_query_length]
    tok_to_orig_index, orig_to_tok_index, all_doc_tokens = cache.get(example.doc_tokens)

    tok_start_position = tok_end_position = None
    if is_training and example.is_impossible:
        tok_start_position = tok_end_position = -1
    if is_training and not example.is_impossible:
        tok_start_position = orig_to_tok_index[example.start_position]
        if example.end_position < len(example.doc_tokens) - 1:
            tok_end_position = orig_to_tok_index[example.end_position + 1] - 1
        else:
            tok_end_position = len(all_doc_tokens) - 1
        tok_start_position, tok_end_position = improve_answer_span(
            all_doc_tokens, tok_start_position, tok_end_position, tokenizer, example.orig_answer_text)

    max_tokens_for_doc = max_seq_length - len(query_tokens) - 3  # [CLS], [SEP], [SEP]
    doc_spans = doc_spans_for(len(all_doc_tokens), max_tokens_for_doc, doc_stride)
    doc_offset = len(query_tokens) + 2

    for doc_span_index, doc_span in enumerate(doc_spans):
        tokens = ["[CLS]", *query_tokens, "[SEP]"]
        segment_ids = [0] * len(tokens)
        token_to_orig_map: dict[int, int] = {}
        token_is_max_context: dict[int, bool] = {}
        for i in range(doc_span.length):
            split_token_index = doc_span.start + i
            token_to_orig_map[len(tokens)] = tok_to_orig_index[split_token_index]
            token_is_max_context[len(tokens)] = check_is_max_context(doc_spans, doc_span_index, split_token_index)
            tokens.append(all_doc_tokens[split_token_index])
            segment_ids.append(1)
        tokens.append("[SEP]")
        segment_ids.append(1)

        input_ids = list(tokenizer.convert_tokens_to_ids(tokens))
        input_mask = [1] * len(input_ids)
        padding = max_seq_length - len(input_ids)
        input_ids += [0] * padding
        input_mask += [0] * padding
        segment_ids += [0] * padding

        start_position = end_position = None
        if is_training and not example.is_impossible:
            doc_start = doc_span.start
            doc_end = doc_span.start + doc_span.length - 1
            if tok_start_position >= doc_start and tok_end_position <= doc_end:
                start_position = tok_start_position - doc_start + doc_offset
                end_position = tok_end_position - doc_start + doc_offset
            else:
                start_position = end_position = 0
        if is_training and example.is_impossible:
            start_position = end_position = 0

        yield SquadFeature(
            unique_id=first_unique_id + doc_span_index,
            example_index=example_index,
            doc_span_index=doc_span_index,
            tokens=tokens,
            token_to_orig_map=token_to_orig_map,
            token_is_max_context=token_is_max_context,
            input_ids=input_ids,
            input_mask=input_mask,
            segment_ids=segment_ids,
            start_position=start_position,
            end_position=end_position,
            is_impossible=example.is_impossible,
        )


# ----------------------------------------------------------------------------- serialization
def feature_to_record(feature: SquadFeature, is_training: bool) -> bytes:
    """One feature as a serialized ``tf.train.Example`` in the original ``FeatureWriter`` layout."""
    from .example_proto import encode_example, int64_feature

    features = OrderedDict()
    features["unique_ids"] = int64_feature([feature.unique_id])
    features["input_ids"] = int64_feature(feature.input_ids)
    features["input_mask"] = int64_feature(feature.input_mask)
    features["segment_ids"] = int64_feature(feature.segment_ids)
    if is_training:
        features["start_positions"] = int64_feature([feature.start_position])
        features["end_positions"] = int64_feature([feature.end_position])
        features["is_impossible"] = int64_feature([1 if feature.is_impossible else 0])
    return encode_example(features)


def write_features(path: str | Path, features: Iterable[SquadFeature], is_training: bool) -> int:
    """Write features to a TFRecord file (atomically); returns how many were written."""
    from .tfrecord import TFRecordWriter

    count = 0
    with TFRecordWriter(path) as writer:
        for feature in features:
            writer.write(feature_to_record(feature, is_training))
            count += 1
    return count
