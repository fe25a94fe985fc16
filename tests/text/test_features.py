"""Feature layout and pair truncation, against the original's rule and HF ``tokenizers``."""

from __future__ import annotations

import csv
import os
import random

import pytest

from bert_cli.errors import UsageError
from bert_cli.text.features import InputFeatures, build_features, truncate_seq_pair


def test_truncate_pops_from_the_longer_and_from_b_on_a_tie():
    a, b = list("abcde"), list("xyz")
    truncate_seq_pair(a, b, 4)
    # 5+3: a -> 4; 4+3: a -> 3; 3+3 tie: b -> 2; 3+2: a -> 2; 2+2 = 4 done
    assert (a, b) == (list("ab"), list("xy"))
    a, b = list("ab"), list("xy")
    truncate_seq_pair(a, b, 3)
    assert (a, b) == (list("ab"), list("x"))  # tie: pop from B
    a, b = list("abc"), []
    truncate_seq_pair(a, b, 5)
    assert (a, b) == (list("abc"), [])  # already short enough: untouched


def test_truncate_matches_a_step_by_step_restatement():
    rng = random.Random(3)
    for _ in range(500):
        a = list(range(rng.randint(0, 30)))
        b = list(range(100, 100 + rng.randint(0, 30)))
        n = rng.randint(0, 40)
        ea, eb = list(a), list(b)
        while len(ea) + len(eb) > n:
            (ea if len(ea) > len(eb) else eb).pop()
        truncate_seq_pair(a, b, n)
        assert (a, b) == (ea, eb)


def test_single_sequence_layout(uncased_tokenizer):
    tokens = uncased_tokenizer.tokenize("John Johanson's house")
    f = build_features(tokens, None, 10, uncased_tokenizer)
    assert isinstance(f, InputFeatures)
    assert f.tokens == ["[CLS]", "john", "johan", "##son", "'", "s", "house", "[SEP]"]
    assert f.input_ids == [101, 2198, 13093, 3385, 1005, 1055, 2160, 102, 0, 0]
    assert f.input_mask == [1] * 8 + [0, 0]
    assert f.segment_ids == [0] * 10


def test_single_sequence_keeps_first_max_minus_two(uncased_tokenizer):
    tokens = uncased_tokenizer.tokenize("one two three four five six")
    f = build_features(tokens, [], 5, uncased_tokenizer)  # empty B is a single sequence, as `if tokens_b:`
    assert f.tokens == ["[CLS]", "one", "two", "three", "[SEP]"]
    assert len(f.input_ids) == 5 and f.input_mask == [1] * 5


def test_pair_layout_segments_and_truncation(uncased_tokenizer):
    a = uncased_tokenizer.tokenize("one two three four five")
    b = uncased_tokenizer.tokenize("six seven")
    a_copy, b_copy = list(a), list(b)
    f = build_features(a, b, 8, uncased_tokenizer)
    assert a == a_copy and b == b_copy  # the caller's lists are untouched
    # 5 + 2 > 5: pop a, a -> 4, then 4 -> 3 (3 + 2 = 5)
    assert f.tokens == ["[CLS]", "one", "two", "three", "[SEP]", "six", "seven", "[SEP]"]
    assert f.segment_ids == [0, 0, 0, 0, 0, 1, 1, 1]
    assert f.input_mask == [1] * 8
    f = build_features(a, b, 12, uncased_tokenizer)
    assert f.segment_ids == [0] * 7 + [1] * 3 + [0, 0]
    assert f.input_ids[-2:] == [0, 0] and f.input_mask[-2:] == [0, 0]


def test_too_small_max_seq_length_is_a_usage_error(uncased_tokenizer):
    with pytest.raises(UsageError):
        build_features(["a"], ["b"], 2, uncased_tokenizer)
    with pytest.raises(UsageError):
        build_features(["a"], None, 1, uncased_tokenizer)
    assert build_features(["a"], None, 2, uncased_tokenizer).tokens == ["[CLS]", "[SEP]"]


def test_pairs_equal_hf_tokenizers_template(shared_data, uncased_tokenizer, uncased_vocab):
    """Untruncated MRPC pairs: ids and segments equal HF's BERT template ([CLS] A [SEP] B [SEP])."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tokenizers import BertWordPieceTokenizer

    hf = BertWordPieceTokenizer(str(uncased_vocab), lowercase=True)
    with open(shared_data / "glue" / "MRPC" / "dev.tsv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quotechar=None))[1:201]
    for row in rows:
        f = build_features(uncased_tokenizer.tokenize(row[3]), uncased_tokenizer.tokenize(row[4]), 128, uncased_tokenizer)
        enc = hf.encode(row[3], row[4])
        n = len(enc.ids)
        assert f.input_ids[:n] == enc.ids and f.segment_ids[:n] == enc.type_ids
        assert f.input_ids[n:] == [0] * (128 - n) and sum(f.input_mask) == n
