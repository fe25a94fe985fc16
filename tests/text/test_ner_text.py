"""Token classification text layer: readers, splits, tags, IOB1 -> IOB2, alignment, windows,
document context, merging window predictions back to words."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bert_cli.errors import InputError, NotFoundError, UsageError
from bert_cli.text import ner
from bert_cli.text.ner_features import (
    IGNORE_LABEL,
    NerFeatureConfig,
    align_words,
    featurize,
    merge_predictions,
)
from bert_cli.text.squad import check_is_max_context, doc_spans_for
from bert_cli.text.tokenization import FullTokenizer

TAGS = ("O", "B-LOC", "B-PER", "I-LOC", "I-PER")
TAG_MAP = {t: i for i, t in enumerate(TAGS)}


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _sentence(words, tags=None, doc_id=0):
    return ner.Sentence(tuple(words), None if tags is None else tuple(tags), doc_id, "x.txt", tuple(range(1, len(words) + 1)))


@pytest.fixture(scope="module")
def tiny_tokenizer():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "john", "johan", "##son", "'", "s", "house", "w", "##x", "##y"]
    return FullTokenizer.from_vocab({t: i for i, t in enumerate(vocab)})


# ----------------------------------------------------------------------------- real CoNLL-2003
def test_reads_real_conll2003_splits_with_their_counts(shared_data):
    data = ner.load_ner_data(shared_data / "ner" / "conll2003")
    assert {s: len(v) for s, v in data.splits.items()} == {"train": 14041, "dev": 3250, "test": 3453}
    assert data.files["dev"].name == "valid.txt"
    assert data.converted == ()  # already IOB2
    counts = Counter(t for s in data.splits["train"] for t in s.tags)
    assert counts == {"B-LOC": 7140, "B-PER": 6600, "B-ORG": 6321, "B-MISC": 3438, "I-PER": 4528,
                      "I-ORG": 3704, "I-LOC": 1157, "I-MISC": 1155, "O": 169578}
    assert data.tags == ("O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER")
    first = data.splits["train"][0]
    assert first.words[:3] == ("EU", "rejects", "German") and first.tags[:3] == ("B-ORG", "O", "B-MISC")
    assert first.lines == tuple(range(1, 10))
    for split in data.splits.values():
        for s in split:
            ner.validate_iob2(s)


def test_real_dev_windows_give_every_word_its_gold_tag_back(shared_data):
    """Featurize the real dev split in short windows: merging each window's label ids back
    gives every word exactly its gold tag (the first-piece/max-context bookkeeping is exact)."""
    tok = FullTokenizer(shared_data / "vocab" / "cased" / "vocab.txt", do_lower_case=False)
    data = ner.load_ner_data(shared_data / "ner" / "conll2003", splits=("dev",))
    sentences = data.splits["dev"]
    tag_map = {t: i for i, t in enumerate(data.tags)}
    features = list(featurize(sentences, tok, tag_map, NerFeatureConfig(max_seq_length=24, doc_stride=8)))
    assert len(features) > len(sentences)  # some sentences needed several windows
    merged = merge_predictions(features, [f.label_ids for f in features], sentences)
    assert merged == [[tag_map[t] for t in s.tags] for s in sentences]


# ----------------------------------------------------------------------------- CoNLL reader
def test_conll_docstart_blank_lines_and_document_ids(tmp_path):
    path = _write(tmp_path / "train.txt", "-DOCSTART- -X- -X- O\n\nEU NNP B-ORG\nrejects VBZ O\n\n\n"
                  "Peter NNP B-PER\n-DOCSTART- -X- -X- O\nBRUSSELS NNP B-LOC\n  \nx\tNN\tO\n")
    sentences = list(ner.read_conll(path))
    assert [s.words for s in sentences] == [("EU", "rejects"), ("Peter",), ("BRUSSELS",), ("x",)]
    assert [s.doc_id for s in sentences] == [0, 0, 1, 1]
    assert [s.lines for s in sentences] == [(3, 4), (7,), (9,), (11,)]
    assert sentences[0].tags == ("B-ORG", "O")


def test_conll_tag_column(tmp_path):
    path = _write(tmp_path / "a.conll", "EU B-ORG NNP\nrejects O VBZ\n")
    (s,) = ner.read_conll(path, tag_column=1)
    assert s.tags == ("B-ORG", "O")
    with pytest.raises(InputError, match=r"a.conll:1: no column 5"):
        list(ner.read_conll(path, tag_column=5))


@pytest.mark.parametrize("text, line, message", [
    ("EU NNP B-ORG\nrejects O\n", 2, "2 columns, but the sentence so far has 3"),
    ("EU B-ORG\nrejects\n", 2, "1 column, but the sentence so far has 2"),
    ("\nEU\nrejects O\n", 2, "one column only"),
])
def test_conll_bad_lines_name_file_and_line(tmp_path, text, line, message):
    path = _write(tmp_path / "train.txt", text)
    with pytest.raises(InputError, match=message) as info:
        list(ner.read_conll(path))
    assert info.value.path == str(path) and info.value.line == line


def test_conll_columns_may_change_between_sentences_and_unlabeled_reads_tokens(tmp_path):
    path = _write(tmp_path / "test.txt", "EU NNP B-ORG\n\nPeter B-PER\n")
    assert [s.tags for s in ner.read_conll(path)] == [("B-ORG",), ("B-PER",)]
    plain = _write(tmp_path / "raw.txt", "EU\nrejects\n\nPeter\n")
    sentences, converted = ner.read_sentences(plain, labeled=None)
    assert not converted
    assert [(s.words, s.tags) for s in sentences] == [(("EU", "rejects"), None), (("Peter",), None)]


def test_empty_file_is_an_input_error(tmp_path):
    path = _write(tmp_path / "train.txt", "\n-DOCSTART- O\n\n")
    with pytest.raises(InputError, match="no sentences"):
        ner.read_sentences(path)


# ----------------------------------------------------------------------------- JSONL reader
def test_jsonl_reader_and_document_ids(tmp_path):
    rows = [{"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"], "doc_id": "a"},
            {"tokens": ["Peter"], "tags": ["B-PER"], "doc_id": "a"},
            {"tokens": ["Bonn"], "tags": ["B-LOC"], "doc_id": "b"}]
    path = _write(tmp_path / "train.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    sentences, _ = ner.read_sentences(path)
    assert [(s.words, s.tags, s.doc_id, s.lines) for s in sentences] == [
        (("EU", "rejects"), ("B-ORG", "O"), 0, (1, 1)), (("Peter",), ("B-PER",), 0, (2,)), (("Bonn",), ("B-LOC",), 1, (3,))]


@pytest.mark.parametrize("row, message", [
    ('{"tokens": ["a", "b"], "tags": ["O"]}', "2 tokens but 1 tags"),
    ('{"tokens": ["a"]}', 'no "tags" list'),
    ('{"tokens": ["a", 3], "tags": ["O", "O"]}', '"tokens" must be a list of strings'),
    ('["a"]', "expected a JSON object"),
    ('{"tokens": [', "invalid JSON"),
])
def test_jsonl_bad_lines_name_file_and_line(tmp_path, row, message):
    path = _write(tmp_path / "dev.jsonl", '{"tokens": ["x"], "tags": ["O"]}\n' + row + "\n")
    with pytest.raises(InputError, match=message) as info:
        ner.read_sentences(path)
    assert info.value.line == 2 and str(path) in str(info.value)


# ----------------------------------------------------------------------------- splits and tags
def test_split_discovery(tmp_path):
    _write(tmp_path / "train.txt", "Bonn B-LOC\nis O\n")
    _write(tmp_path / "valid.jsonl", '{"tokens": ["Bonn", "x"], "tags": ["B-LOC", "O"]}\n')
    _write(tmp_path / "test.conll", "Bonn\n")
    _write(tmp_path / "notes.txt", "ignored\n")
    data = ner.load_ner_data(tmp_path)
    assert {k: v.name for k, v in data.files.items()} == {"train": "train.txt", "dev": "valid.jsonl", "test": "test.conll"}
    assert data.splits["test"][0].tags is None  # a test file without tags is prediction input
    _write(tmp_path / "dev.txt", "Bonn B-LOC\n")
    with pytest.raises(UsageError, match="more than one dev file"):
        ner.find_split_files(tmp_path)


def test_original_conll2003_file_names(tmp_path):
    for name in ("eng.train", "eng.testa", "eng.testb"):
        _write(tmp_path / name, "-DOCSTART- -X- O O\n\nBonn NNP I-NP I-LOC\n")
    data = ner.load_ner_data(tmp_path)
    assert set(data.splits) == {"train", "dev", "test"}
    assert data.converted == ("train", "dev", "test")  # the original files are IOB1
    assert data.tags == ("B-LOC",)


def test_missing_train_is_not_found(tmp_path):
    _write(tmp_path / "dev.txt", "Bonn B-LOC\n")
    with pytest.raises(NotFoundError, match="no train file"):
        ner.load_ner_data(tmp_path)


def test_dev_tag_not_in_train_names_file_and_line(tmp_path):
    _write(tmp_path / "train.txt", "Bonn B-LOC\nis O\n")
    _write(tmp_path / "dev.txt", "Bonn B-LOC\n\nPeter B-PER\n")
    with pytest.raises(InputError, match=r"dev.txt:3: tag 'B-PER' does not occur in the train split") as info:
        ner.load_ner_data(tmp_path, splits=("train", "dev"))
    assert "known tags: O B-LOC" in info.value.hint


def test_tag_order_is_O_first_then_sorted():
    sents = [_sentence("abc", ["I-PER", "O", "B-LOC"]), _sentence("d", ["B-PER"])]
    assert ner.discover_tags(sents) == ("O", "B-LOC", "B-PER", "I-PER")
    assert ner.discover_tags([_sentence("a", ["X"])]) == ("X",)


# ----------------------------------------------------------------------------- IOB1 -> IOB2
def test_iob1_to_iob2():
    iob1 = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "I-ORG", "I-ORG", "B-ORG"]
    iob2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-ORG"]
    assert ner.iob2_errors(iob1) == [0, 3, 6]
    assert ner.iob1_to_iob2(iob1) == iob2
    assert ner.iob1_to_iob2(iob2) == iob2 and ner.iob2_errors(iob2) == []
    assert ner.is_iob1([["O"], iob1]) and not ner.is_iob1([iob2])
    assert not ner.is_iob1([iob1, ["S-PER", "O"]])  # IOBES is left alone


def test_validate_iob2_names_the_line():
    s = ner.Sentence(("a", "b", "c"), ("O", "B-LOC", "I-PER"), 0, "dev.txt", (7, 8, 9))
    with pytest.raises(InputError, match=r"dev.txt:9: tag 'I-PER' after 'B-LOC' is not IOB2"):
        ner.validate_iob2(s)


def test_iob1_file_is_converted_when_read(tmp_path):
    path = _write(tmp_path / "train.txt", "Peter I-PER\nBlackburn I-PER\nand O\nJim I-PER\n\nBonn I-LOC\n")
    sentences, converted = ner.read_sentences(path)
    assert converted
    assert [s.tags for s in sentences] == [("B-PER", "I-PER", "O", "B-PER"), ("B-LOC",)]


# ----------------------------------------------------------------------------- alignment
def test_readme_alignment_example_with_the_real_uncased_vocab(uncased_vocab):
    tok = FullTokenizer(uncased_vocab, do_lower_case=True)
    tokens, orig_to_tok_map = align_words(tok, ["John", "Johanson", "'s", "house"])
    assert tokens == ["[CLS]", "john", "johan", "##son", "'", "s", "house", "[SEP]"]
    assert orig_to_tok_map == [1, 2, 4, 6]
    s = _sentence(["John", "Johanson", "'s", "house"], ["B-PER", "I-PER", "O", "O"])
    (f,) = featurize([s], tok, TAG_MAP, NerFeatureConfig(max_seq_length=10))
    assert f.input_ids[:8] == tok.convert_tokens_to_ids(tokens) and f.input_ids[8:] == [0, 0]
    assert f.input_mask == [1] * 8 + [0] * 2 and f.segment_ids == [0] * 10
    assert f.label_ids == [-100, TAG_MAP["B-PER"], TAG_MAP["I-PER"], -100, TAG_MAP["O"], -100, TAG_MAP["O"], -100, -100, -100]
    assert f.word_ids == [-1, 0, 1, -1, 2, -1, 3, -1, -1, -1]
    assert f.max_context == [0, 1, 1, 0, 1, 0, 1, 0, 0, 0]


def test_word_without_pieces_becomes_unk(tiny_tokenizer):
    tokens, mapping = align_words(tiny_tokenizer, ["john", "\u200b", "house"])
    assert tokens == ["[CLS]", "john", "[UNK]", "house", "[SEP]"] and mapping == [1, 2, 3]


def test_unlabeled_sentences_have_no_labels(tiny_tokenizer):
    (f,) = featurize([_sentence(["john", "house"])], tiny_tokenizer, TAG_MAP, NerFeatureConfig(max_seq_length=6))
    assert f.label_ids == [IGNORE_LABEL] * 6 and f.word_ids[:3] == [-1, 0, 1]


# ----------------------------------------------------------------------------- windows
def test_long_sentence_every_word_predicted_once_from_its_max_context_window(tiny_tokenizer):
    """300 words (1 to 3 pieces each) at max_seq_length 32: windows may start inside a word;
    each word gets exactly one prediction, from the window that gives its first piece the most
    context under the SQuAD rule."""
    words = [["w", "wx", "wxy"][i % 3] for i in range(300)]  # pieces: w | w ##x | w ##x ##y
    s = _sentence(words, ["O"] * 300)
    config = NerFeatureConfig(max_seq_length=32, doc_stride=7)
    features = list(featurize([s], tiny_tokenizer, {"O": 0}, config))
    pieces = sum(len(tiny_tokenizer.tokenize(w)) for w in words)
    spans = doc_spans_for(pieces, 30, 7)
    assert len(features) == len(spans) > 10
    assert all(len(f.input_ids) == 32 and f.input_ids[0] == 2 and 3 in f.input_ids for f in features)
    first_piece, pos = [], 0
    for w in words:
        first_piece.append(pos)
        pos += len(tiny_tokenizer.tokenize(w))
    best = {w: next(k for k in range(len(spans)) if check_is_max_context(spans, k, p)) for w, p in enumerate(first_piece)}
    # a prediction per (window, position) that says where it came from
    predictions = [[(k, f.word_ids[p]) for p in range(32)] for k, f in enumerate(features)]
    (merged,) = merge_predictions(features, predictions, [s])
    assert merged == [(best[w], w) for w in range(300)]
    assert sum(sum(f.max_context) for f in features) == 300
    # words near a window edge take their prediction from a window where they are central
    assert any(best[w] != min(k for k, sp in enumerate(spans) if sp.start <= p < sp.start + sp.length)
               for w, p in enumerate(first_piece))


def test_merge_refuses_missing_windows(tiny_tokenizer):
    s = _sentence(["w"] * 50, ["O"] * 50)
    features = list(featurize([s], tiny_tokenizer, {"O": 0}, NerFeatureConfig(max_seq_length=16, doc_stride=4)))
    with pytest.raises(ValueError, match="has 0 predictions"):
        merge_predictions(features[:-1], [f.label_ids for f in features[:-1]], [s])


def test_bad_window_config_is_a_usage_error(tiny_tokenizer):
    with pytest.raises(UsageError, match="--doc-stride"):
        list(featurize([_sentence(["w"])], tiny_tokenizer, {}, NerFeatureConfig(doc_stride=0)))


# ----------------------------------------------------------------------------- document context
def test_document_context_packs_neighbours_of_the_same_document(tiny_tokenizer):
    t = tiny_tokenizer.convert_tokens_to_ids
    sents = [_sentence(["john"], ["B-PER"], 0), _sentence(["house", "house"], ["O", "O"], 1),
             _sentence(["johanson"], ["I-PER"], 1), _sentence(["s", "'"], ["O", "O"], 1), _sentence(["w"], ["O"], 2)]
    config = NerFeatureConfig(max_seq_length=8, document_context=True)
    features = list(featurize(sents, tiny_tokenizer, TAG_MAP, config))
    assert [f.sentence_index for f in features] == [0, 1, 2, 3, 4]
    middle = features[2]  # johanson = johan ##son, room for 4 context pieces: 2 left, 2 right
    assert middle.input_ids == t(["[CLS]", "house", "house", "johan", "##son", "s", "'", "[SEP]"])
    assert middle.label_ids == [-100, -100, -100, TAG_MAP["I-PER"], -100, -100, -100, -100]
    assert middle.word_ids == [-1, -1, -1, 0, -1, -1, -1, -1] and middle.max_context == [0, 0, 0, 1, 0, 0, 0, 0]
    # the first sentence of a document only has right context; neighbours of other documents never come in
    assert features[1].input_ids == t(["[CLS]", "house", "house", "johan", "##son", "s", "'", "[SEP]"])
    assert features[1].label_ids[1:3] == [TAG_MAP["O"]] * 2 and features[1].label_ids[3:] == [-100] * 5
    assert features[0].input_ids == t(["[CLS]", "john", "[SEP]"]) + [0] * 5
    merged = merge_predictions(features, [f.label_ids for f in features], sents)
    assert merged == [[TAG_MAP[x] for x in s.tags] for s in sents]
