"""Model inputs from WordPiece tokens, as the original (pure Python, no TensorFlow).

The layout shared by the classifier, SQuAD-free feature extraction and ``bert tokenize
--max-seq-length``: ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``, segment 0 for ``[CLS]``, A
and the first ``[SEP]``, segment 1 for B and the final ``[SEP]``, padded with id 0, mask 0 and
segment 0 up to ``max_seq_length``. Pairs are truncated by popping one token at a time from
the end of the longer sequence (on a tie, from B); a single sequence keeps its first
``max_seq_length - 2`` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from ..errors import UsageError

__all__ = ["InputFeatures", "build_features", "truncate_seq_pair", "check_max_seq_length"]


class _TokenToIds(Protocol):
    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]: ...


@dataclass(frozen=True)
class InputFeatures:
    """One example's model inputs; ``tokens`` are unpadded (``[CLS]`` ... ``[SEP]``)."""

    input_ids: list[int]
    input_mask: list[int]
    segment_ids: list[int]
    tokens: list[str]


def truncate_seq_pair(tokens_a: list, tokens_b: list, max_length: int) -> None:
    """Pop from the end of the longer list until ``len(a) + len(b) <= max_length`` (tie: B).

    In place, one token at a time, as the original ``_truncate_seq_pair``. A negative
    ``max_length`` empties both lists.
    """
    while len(tokens_a) + len(tokens_b) > max_length:
        if not tokens_a and not tokens_b:
            return
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()


def check_max_seq_length(max_seq_length: int, pair: bool) -> None:
    """UsageError unless there is room for the special tokens (2 single, 3 for a pair)."""
    least = 3 if pair else 2
    if max_seq_length < least:
        what = "sentence pairs" if pair else "single sentences"
        raise UsageError(f"max_seq_length must be at least {least} for {what} (got {max_seq_length})")


def build_features(
    tokens_a: Sequence[str],
    tokens_b: Sequence[str] | None,
    max_seq_length: int,
    tokenizer: _TokenToIds,
) -> InputFeatures:
    """``[CLS] A [SEP] (B [SEP])`` truncated as the original, ids from ``tokenizer``, padded.

    The caller's lists are not modified. An empty or None ``tokens_b`` means a single
    sequence (as the original's ``if tokens_b:``).
    """
    tokens_a = list(tokens_a)
    tokens_b = list(tokens_b) if tokens_b else []
    check_max_seq_length(max_seq_length, bool(tokens_b))
    if tokens_b:
        truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
    else:
        tokens_a = tokens_a[: max_seq_length - 2]

    tokens = ["[CLS]", *tokens_a, "[SEP]"]
    segment_ids = [0] * len(tokens)
    if tokens_b:
        tokens += [*tokens_b, "[SEP]"]
        segment_ids += [1] * (len(tokens_b) + 1)

    input_ids = list(tokenizer.convert_tokens_to_ids(tokens))
    input_mask = [1] * len(input_ids)
    pad = max_seq_length - len(input_ids)
    input_ids += [0] * pad
    input_mask += [0] * pad
    segment_ids += [0] * pad
    return InputFeatures(input_ids=input_ids, input_mask=input_mask, segment_ids=segment_ids, tokens=tokens)
