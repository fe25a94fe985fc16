"""The tokenizer against the original's documented behaviour, real vocabularies, a plain
re-statement of the original algorithm (an oracle written from the spec, character by
character, no caches or fast paths) and Hugging Face ``tokenizers`` as an independent
implementation."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import sys
import unicodedata
from pathlib import Path

import pytest

from bert_cli.errors import InputError, NotFoundError
from bert_cli.text import basic_tokenizer as tkn
from bert_cli.text.basic_tokenizer import BasicTokenizer, convert_to_unicode
from bert_cli.text.tokenization import FullTokenizer
from bert_cli.text.vocab import load_vocab, packaged_vocab_path
from bert_cli.text.wordpiece import WordpieceTokenizer

# The original repository's unit-test vocabulary.
TEST_VOCAB = ["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ","]


def write_vocab(path: Path, tokens: list[str]) -> Path:
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------
# An oracle: the original algorithm stated plainly (from original-behaviour.md §d.3)
# ------------------------------------------------------------------------------------------


ORACLE_CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]


def _oracle_is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in ORACLE_CJK)


def oracle_basic(text: str, lower: bool) -> list[str]:
    cleaned = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ord(ch) in (0, 0xFFFD) or (ch not in "\t\n\r" and cat in ("Cc", "Cf")):
            continue
        cleaned.append(" " if (ch in " \t\n\r" or cat == "Zs") else ch)
    padded = "".join(f" {c} " if _oracle_is_cjk(ord(c)) else c for c in cleaned)
    words: list[str] = []
    for token in padded.split():
        if lower:
            token = unicodedata.normalize("NFD", token.lower())
            token = "".join(c for c in token if unicodedata.category(c) != "Mn")
        current = ""
        for c in token:
            cp = ord(c)
            punct = 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126
            if punct or unicodedata.category(c).startswith("P"):
                words += [current, c]
                current = ""
            else:
                current += c
        words.append(current)
    return " ".join(words).split()


def oracle_wordpiece(word: str, vocab: dict) -> list[str]:
    if len(word) > 200:
        return ["[UNK]"]
    out, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = ("##" if start else "") + word[start:end]
            if piece in vocab:
                out.append(piece)
                start = end
                break
        else:
            return ["[UNK]"]
    return out


def oracle_full(text: str, vocab: dict, lower: bool) -> list[str]:
    return [p for w in oracle_basic(text, lower) for p in oracle_wordpiece(w, vocab)]


# ------------------------------------------------------------------------------------------
# Real text from the shared data
# ------------------------------------------------------------------------------------------


def real_lines(data: Path, limit: int = 3000) -> list[str]:
    """MRPC sentences, CoLA sentences and SQuAD contexts/questions (incl. non-ASCII text)."""
    lines: list[str] = []
    with open(data / "glue" / "MRPC" / "train.tsv", encoding="utf-8-sig", newline="") as fh:
        for i, row in enumerate(csv.reader(fh, delimiter="\t", quotechar=None)):
            if i and i <= 600:
                lines += [row[3], row[4]]
    with open(data / "glue" / "CoLA" / "dev.tsv", encoding="utf-8", newline="") as fh:
        lines += [row[3] for row in csv.reader(fh, delimiter="\t", quotechar=None)][:400]
    squad = json.loads((data / "squad" / "dev-v1.1.json").read_text(encoding="utf-8"))
    for article in squad["data"]:
        for para in article["paragraphs"]:
            lines.append(para["context"])
            lines += [qa["question"] for qa in para["qas"][:2]]
    return lines[:limit]


@pytest.fixture(scope="module")
def lines(shared_data) -> list[str]:
    out = real_lines(shared_data)
    assert sum(not line.isascii() for line in out) > 50  # the general path gets real work too
    return out


# ------------------------------------------------------------------------------------------
# The original's documented cases (its test_tokenization.py and README)
# ------------------------------------------------------------------------------------------


def test_full_tokenizer_original_case(tmp_path):
    tok = FullTokenizer(write_vocab(tmp_path / "vocab.txt", TEST_VOCAB))
    tokens = tok.tokenize("UNwant\u00E9d,running")
    assert tokens == ["un", "##want", "##ed", ",", "runn", "##ing"]
    assert tok.convert_tokens_to_ids(tokens) == [7, 4, 5, 10, 8, 9]
    assert tok.encode("UNwant\u00E9d,running") == [7, 4, 5, 10, 8, 9]
    assert tok.convert_ids_to_tokens([7, 4, 5, 10, 8, 9]) == tokens


def test_from_vocab_matches_file(tmp_path):
    vocab = {t: i for i, t in enumerate(TEST_VOCAB)}
    tok = FullTokenizer.from_vocab(vocab)
    assert tok.tokenize("UNwant\u00E9d,running") == ["un", "##want", "##ed", ",", "runn", "##ing"]
    with pytest.raises(InputError):
        FullTokenizer.from_vocab({"a": 0})


def test_chinese():
    assert BasicTokenizer().tokenize("ah\u535A\u63A8zz") == ["ah", "\u535A", "\u63A8", "zz"]


def test_basic_tokenizer_lower():
    tok = BasicTokenizer(do_lower_case=True)
    assert tok.tokenize(" \tHeLLo!how  \n Are yoU?  ") == ["hello", "!", "how", "are", "you", "?"]
    assert tok.tokenize("H\u00E9llo") == ["hello"]


def test_basic_tokenizer_no_lower_keeps_case_and_accents():
    tok = BasicTokenizer(do_lower_case=False)
    assert tok.tokenize(" \tHeLLo!how  \n Are yoU?  ") == ["HeLLo", "!", "how", "Are", "yoU", "?"]
    assert tok.tokenize("H\u00E9llo") == ["H\u00E9llo"]


def test_wordpiece_tokenizer():
    vocab = {t: i for i, t in enumerate(TEST_VOCAB[:10])}
    tok = WordpieceTokenizer(vocab=vocab)
    assert tok.tokenize("") == []
    assert tok.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert tok.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]


def test_character_predicates():
    for c in (" ", "\t", "\r", "\n", "\u00A0"):
        assert tkn._is_whitespace(c)
    for c in ("A", "-"):
        assert not tkn._is_whitespace(c)
    assert tkn._is_control("\u0005")
    for c in ("A", " ", "\t", "\r", "\U0001F4A9"):
        assert not tkn._is_control(c)
    for c in ("-", "$", "`", "."):
        assert tkn._is_punctuation(c)
    for c in ("A", " "):
        assert not tkn._is_punctuation(c)


def test_readme_alignment_recipe(uncased_tokenizer):
    tokens, orig_to_tok_map = uncased_tokenizer.tokenize_words(["John", "Johanson", "'s", "house"])
    assert tokens == ["[CLS]", "john", "johan", "##son", "'", "s", "house", "[SEP]"]
    assert orig_to_tok_map == [1, 2, 4, 6]


def test_readme_example_with_real_vocab(uncased_tokenizer):
    # With the real uncased vocab "unwanted" is one token (the 11-token test vocab splits it).
    assert uncased_tokenizer.tokenize("UNwant\u00e9d, running") == ["unwanted", ",", "running"]


def test_mask_in_raw_text_is_split_like_the_original(uncased_tokenizer):
    assert uncased_tokenizer.tokenize("the [MASK] sat") == ["the", "[", "mask", "]", "sat"]


# ------------------------------------------------------------------------------------------
# Vocabulary loading
# ------------------------------------------------------------------------------------------


def test_real_vocab_facts(shared_data, uncased_vocab):
    counts = {"uncased": 30522, "cased": 28996, "multi_cased": 119547, "chinese": 21128}
    for name, n in counts.items():
        path = shared_data / "vocab" / name / "vocab.txt"
        vocab = load_vocab(path)
        assert max(vocab.values()) == n - 1
        assert len(path.read_bytes().split(b"\n")) - 1 == n
    uncased = load_vocab(uncased_vocab)
    assert [uncased[t] for t in ("[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [100, 101, 102, 103]
    assert uncased["[PAD]"] == 0


def test_packaged_vocab_is_google_uncased(uncased_vocab):
    data = packaged_vocab_path().read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert digest.startswith("07eced37") and digest.endswith("38a3")
    assert data == (uncased_vocab).read_bytes()


def test_duplicate_token_last_index_wins_first_position_kept(tmp_path):
    vocab = load_vocab(write_vocab(tmp_path / "v.txt", ["[UNK]", "a", "b", "a", "  c \r"]))
    assert vocab == {"[UNK]": 0, "a": 3, "b": 2, "c": 4}
    assert list(vocab) == ["[UNK]", "a", "b", "c"]


def test_vocab_without_trailing_newline_and_empty_lines(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"[UNK]\n\nx\xffy")  # invalid UTF-8 dropped, the empty line takes an index
    assert load_vocab(path) == {"[UNK]": 0, "": 1, "xy": 2}


def test_vocab_errors(tmp_path):
    with pytest.raises(NotFoundError) as err:
        load_vocab(tmp_path / "missing.txt")
    assert "missing.txt" in str(err.value) and err.value.exit_code == 3
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(InputError) as err:
        load_vocab(empty)
    assert "empty.txt" in str(err.value)
    no_unk = write_vocab(tmp_path / "nounk.txt", ["a", "b"])
    with pytest.raises(InputError) as err:
        FullTokenizer(no_unk)
    assert "nounk.txt" in str(err.value) and "[UNK]" in str(err.value)


# ------------------------------------------------------------------------------------------
# Real vocabularies and scripts
# ------------------------------------------------------------------------------------------


def test_chinese_vocab_splits_one_character_at_a_time(shared_data):
    tok = FullTokenizer(shared_data / "vocab" / "chinese" / "vocab.txt", do_lower_case=True)
    text = "谷歌发布了BERT模型。"
    tokens = tok.tokenize(text)
    assert tokens[:5] == ["谷", "歌", "发", "布", "了"]
    assert tokens[-3:] == ["模", "型", "。"]
    assert all(t != "[UNK]" for t in tokens)
    assert tokens == oracle_full(text, tok.vocab, True)


def test_japanese_kana_stays_a_word_kanji_split(shared_data):
    tok = FullTokenizer(shared_data / "vocab" / "multi_cased" / "vocab.txt", do_lower_case=False)
    text = "東京はひらがなとカタカナ"
    basic = tok.basic_tokenizer.tokenize(text)
    assert basic == ["東", "京", "はひらがなとカタカナ"]  # only the ideographs are CJK-split
    assert tok.tokenize(text) == oracle_full(text, tok.vocab, False)
    assert tok.tokenize(text)[:2] == ["東", "京"]


def test_thai_and_arabic(shared_data):
    tok = FullTokenizer(shared_data / "vocab" / "multi_cased" / "vocab.txt", do_lower_case=False)
    for text in ("ภาษาไทยไม่มีการเว้นวรรค", "اللغة العربية جميلة، أليس كذلك؟"):
        assert tok.tokenize(text) == oracle_full(text, tok.vocab, False)
    assert tok.tokenize("كذلك؟")[-1] == "؟"  # Arabic question mark is punctuation (Po)


def test_accents_stripped_only_when_lower_casing(shared_data, uncased_vocab):
    lower = FullTokenizer(uncased_vocab, do_lower_case=True)
    cased = FullTokenizer(shared_data / "vocab" / "cased" / "vocab.txt", do_lower_case=False)
    assert lower.tokenize("Café Müller") == ["cafe", "muller"]
    assert cased.basic_tokenizer.tokenize("Café Müller") == ["Café", "Müller"]
    assert cased.tokenize("Café") == oracle_full("Café", cased.vocab, False)
    assert "é" in "".join(cased.tokenize("Café"))


def test_control_characters_nul_and_replacement_char(uncased_tokenizer):
    assert uncased_tokenizer.tokenize("a\x1cb") == uncased_tokenizer.tokenize("ab") == ["ab"]  # str.split() trap
    assert uncased_tokenizer.tokenize("a\x85b c\x0bd") == ["ab", "cd"]
    assert uncased_tokenizer.tokenize("he\x00llo wor\ufffdld") == ["hello", "world"]
    assert uncased_tokenizer.tokenize("zero\u200bwidth") == uncased_tokenizer.tokenize("zerowidth")  # Cf removed
    assert uncased_tokenizer.tokenize("tab\there\r\nnew") == ["tab", "here", "new"]
    assert uncased_tokenizer.tokenize("line\u2028sep") == ["line", "sep"]  # Zl kept by cleaning, split


def test_lower_casing_that_changes_length_keeps_offsets_right(uncased_tokenizer):
    text = "İstanbul İİ x"
    found = uncased_tokenizer.tokenize_with_offsets(text)
    assert [t for t, _, _ in found] == uncased_tokenizer.tokenize(text) == oracle_full(text, uncased_tokenizer.vocab, True)
    assert found[0] == ("istanbul", 0, 8)
    assert found[-1] == ("x", 12, 13)


def test_final_sigma_follows_python_lower_like_the_original():
    # str.lower() of the whole word gives the final form (HF tokenizers does not).
    assert BasicTokenizer().tokenize("ΟΔΟΣ. ΣΑΣ") == ["οδος", ".", "σας"]


def test_long_words(uncased_tokenizer):
    assert uncased_tokenizer.tokenize("x" * 201) == ["[UNK]"]
    assert uncased_tokenizer.tokenize("a" * 200) != ["[UNK]"]
    assert uncased_tokenizer.tokenize("a" * 200) == oracle_full("a" * 200, uncased_tokenizer.vocab, True)
    assert uncased_tokenizer.tokenize("ok " + "y" * 201 + " ok") == ["ok", "[UNK]", "ok"]


def test_unknown_piece_makes_the_whole_word_unk(tmp_path):
    tok = FullTokenizer(write_vocab(tmp_path / "v.txt", TEST_VOCAB))
    assert tok.tokenize("wantx want") == ["[UNK]", "want"]


def test_bytes_input_drops_invalid_utf8(uncased_tokenizer):
    assert convert_to_unicode(b"caf\xc3\xa9 \xff\xfeok") == "café ok"
    assert uncased_tokenizer.tokenize(b"caf\xc3\xa9 \xff\xfeok") == ["cafe", "ok"]
    assert uncased_tokenizer.encode(b"caf\xc3\xa9") == uncased_tokenizer.encode("café")
    with pytest.raises(ValueError):
        convert_to_unicode(3)


def test_keep_special_tokens(uncased_tokenizer):
    keep = FullTokenizer(packaged_vocab_path(), keep_special_tokens=True)
    text = "a [MASK] b[SEP]c [mask] [unused0]"
    assert keep.tokenize(text) == ["a", "[MASK]", "b", "[SEP]", "c", "[", "mask", "]", "[", "unused", "##0", "]"]
    assert keep.encode(text) == keep.convert_tokens_to_ids(keep.tokenize(text))
    found = keep.tokenize_with_offsets(text)
    assert [(t, text[s:e]) for t, s, e in found[:4]] == [("a", "a"), ("[MASK]", "[MASK]"), ("b", "b"), ("[SEP]", "[SEP]")]
    assert uncased_tokenizer.tokenize("[CLS]") == ["[", "cl", "##s", "]"]
    basic = BasicTokenizer(keep_special_tokens=True)
    assert basic.tokenize("x [PAD] [UNK]") == ["x", "[PAD]", "[UNK]"]


def test_separator_set_is_exactly_the_originals():
    """Python whitespace = the original's separators (incl. U+2028/9) + the Cc it deletes."""
    ws = {chr(i) for i in range(sys.maxunicode + 1) if chr(i).isspace()}
    deleted = {c for c in ws if tkn._is_control(c)}
    assert deleted == set(tkn._SPLIT_CONTROLS)
    separators = {c for c in ws if tkn._CHUNK_RE.fullmatch(c) is None}
    assert separators == ws - deleted
    assert all(tkn._is_whitespace(c) or unicodedata.category(c) in ("Zl", "Zp") for c in separators)


# ------------------------------------------------------------------------------------------
# Against the oracle, HF tokenizers and the general path
# ------------------------------------------------------------------------------------------

TRICKY = (
    list("aZé9 ,.'-$") + ["\t", "\n", "\r", "\x00", "\x1c", "\x1f", "\x0b", "\x85", "\x7f", "\x05", "\ufffd"]
    + ["\u200b", "\ufeff", "\u00ad", "\u2028", "\u2029", "\u3000", "\u00a0", "\u2003"]
    + ["İ", "Σ", "ς", "ß", "ﬁ", "e\u0301", "\u0301", "\u0323", "Å", "Ǆ", "ǅ", "Ⅷ"]
    + ["中", "文", "\u3400", "\U00020000", "\uf900", "\U0002A700", "\U0002B740", "\U0002B820", "\U0002F800", "か", "カ", "한", "ก", "\u0e31", "ع", "؟", "।", "¿", "«", "»"]
    + ["€", "°", "😀", "\U0001F4A9", "[MASK]", "##", "\ud7a3", "\U000E0001", "\u0f39", "\U0001d165"]
)


def _random_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(TRICKY) for _ in range(rng.randint(0, 25))) for _ in range(n)]


@pytest.mark.parametrize("lower", [True, False])
def test_fuzz_against_the_oracle(lower, shared_data):
    vocab_name = "uncased" if lower else "multi_cased"
    tok = FullTokenizer(shared_data / "vocab" / vocab_name / "vocab.txt", do_lower_case=lower, cache_size=64)
    basic = BasicTokenizer(do_lower_case=lower)
    for text in _random_texts(3000, seed=7 if lower else 8):
        expected_basic = oracle_basic(text, lower)
        assert basic.tokenize(text) == expected_basic, repr(text)
        expected = [p for w in expected_basic for p in oracle_wordpiece(w, tok.vocab)]
        assert tok.tokenize(text) == expected, repr(text)
        assert tok.encode(text) == tok.convert_tokens_to_ids(expected)
        found = tok.tokenize_with_offsets(text)
        assert [t for t, _, _ in found] == expected, repr(text)
        last = 0
        for _, s, e in found:
            assert last <= s < e <= len(text), repr(text)
            last = s


def test_real_lines_against_the_oracle(lines, uncased_tokenizer):
    for text in lines[:1500]:
        assert uncased_tokenizer.tokenize(text) == oracle_full(text, uncased_tokenizer.vocab, True), text


def test_real_lines_identical_ids_to_hf_tokenizers(lines, uncased_vocab):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tokenizers import BertWordPieceTokenizer
    from tokenizers.models import WordPiece

    vocab_path = str(uncased_vocab)
    hf = BertWordPieceTokenizer(vocab_path, lowercase=True, strip_accents=None, clean_text=True, handle_chinese_chars=True)
    hf._tokenizer.model = WordPiece.from_file(vocab_path, unk_token="[UNK]", max_input_chars_per_word=200)
    ours = FullTokenizer(vocab_path)
    hf_ids = [e.ids for e in hf.encode_batch(lines, add_special_tokens=False)]
    mismatched = [text for text, ids in zip(lines, hf_ids) if ours.encode(text) != ids]
    assert mismatched == []


def test_fast_ascii_path_equals_general_path(lines, uncased_vocab):
    vocab_path = uncased_vocab
    fast = FullTokenizer(vocab_path)
    general = FullTokenizer(vocab_path)
    general._fast_ascii = False
    ascii_lines = [t for t in lines if t.isascii()] + ["Ctrl\x01chars\x7f in\x02 ASCII!", "[MASK] a$b^c"]
    assert len(ascii_lines) > 1000
    for text in ascii_lines:
        assert fast.tokenize(text) == general.tokenize(text), text
        assert fast.encode(text) == general.encode(text), text
        assert fast.tokenize_with_offsets(text) == general.tokenize_with_offsets(text), text


def test_cased_fast_path_equals_general_path(lines, shared_data):
    vocab_path = shared_data / "vocab" / "cased" / "vocab.txt"
    fast = FullTokenizer(vocab_path, do_lower_case=False)
    general = FullTokenizer(vocab_path, do_lower_case=False)
    general._fast_ascii = False
    for text in lines[:800]:
        assert fast.tokenize(text) == general.tokenize(text) == oracle_full(text, fast.vocab, False), text


def test_offsets_slice_back_to_the_token_text(lines, uncased_tokenizer):
    checked = 0
    for text in lines:
        for token, s, e in uncased_tokenizer.tokenize_with_offsets(text):
            if token == "[UNK]":
                continue
            piece = token[2:] if token.startswith("##") else token
            assert tkn._strip_accents(text[s:e].lower()) == piece, (text, token, s, e)
            checked += 1
    assert checked > 50000


def test_bounded_cache_gives_the_same_results(lines, uncased_tokenizer):
    small = FullTokenizer(packaged_vocab_path(), cache_size=16)
    for text in lines[:300]:
        assert small.encode(text) == uncased_tokenizer.encode(text)
        assert small.tokenize(text) == uncased_tokenizer.tokenize(text)
        assert small.tokenize_with_offsets(text) == uncased_tokenizer.tokenize_with_offsets(text)
    for cache in (small._tok_cache, small._id_cache, small._off_cache, small._word_cache, small._word_id_cache):
        assert len(cache) <= 16
