"""`bert make-pretrain-data`: exact instances (golden file), masking, sharded mode, bad inputs."""

from __future__ import annotations

import io
import random
from collections import Counter
from pathlib import Path

import pytest
from original_pretraining import masked_lm_predictions, original_instances

from bert_cli.errors import InputError, NotFoundError, UsageError
from bert_cli.ops import make_pretrain_data as mpd
from bert_cli.text import documents as text_docs
from bert_cli.text import example_proto as ep
from bert_cli.text import masking
from bert_cli.text import pretraining as pt
from bert_cli.text.lines import iter_text_lines
from bert_cli.text import tfrecord as tfr

FEATURES = [
    "input_ids",
    "input_mask",
    "segment_ids",
    "masked_lm_positions",
    "masked_lm_ids",
    "masked_lm_weights",
    "next_sentence_labels",
]


# --------------------------------------------------------------------------- a toy tokenizer

TOY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
    "the", "cat", "sat", "on", "mat", "un", "##believ", "##able", "dog", "##s", "run", "##ning",
    "fast", "a", "bird", "fl", "##ew", "over", "hill", "##top", "##s", "quick", "brown", "fox",
]  # "##s" twice: the original's vocab_words keeps the first position, the last id


class ToyTokenizer:
    """Whitespace split: the text already holds WordPieces (``un ##believ ##able``)."""

    def __init__(self, words=TOY_VOCAB):
        self.vocab = {}
        for i, w in enumerate(words):
            self.vocab[w] = i

    def tokenize(self, text):
        return text.split()


TOY_WORDS = [
    ["un", "##believ", "##able"], ["dog", "##s"], ["run", "##ning"], ["fl", "##ew"],
    ["hill", "##top", "##s"], ["the"], ["cat"], ["sat"], ["on"], ["mat"], ["fast"], ["a"],
    ["bird"], ["over"], ["quick"], ["brown"], ["fox"],
]


def toy_corpus(n_docs: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        doc = []
        for _ in range(rng.randint(1, 8)):
            words = [rng.choice(TOY_WORDS) for _ in range(rng.randint(1, 12))]
            doc.append(" ".join(p for w in words for p in w))
        docs.append(doc)
    return docs


# ------------------------------------------------- an independent reference (string space)


def reference_instances(documents, vocab_words, opts, rng):
    """The independent reference (``tests/original_pretraining.py``) with these options, as
    ``(tokens, positions, labels, segments, is_random_next)``."""
    instances = original_instances(
        [[list(line) for line in d] for d in documents], vocab_words, rng, dupe=opts.dupe_factor,
        wwm=opts.do_whole_word_mask, seq=opts.max_seq_length, pred=opts.max_predictions_per_seq,
        prob=opts.masked_lm_prob, short=opts.short_seq_prob,
    )
    return [(tokens, positions, labels, segments, rnd) for tokens, segments, positions, labels, rnd in instances]


def reference_mask(tokens, vocab_words, opts, rng):
    return masked_lm_predictions(tokens, vocab_words, rng, opts.do_whole_word_mask, opts.max_predictions_per_seq,
                                 opts.masked_lm_prob)


@pytest.mark.parametrize("wwm", [False, True])
@pytest.mark.parametrize("seq,short", [(24, 0.1), (12, 0.5), (64, 0.0)])
def test_matches_an_independent_reference(wwm, seq, short):
    tok = ToyTokenizer()
    raw = toy_corpus(25, seed=seq)
    docs = text_docs.tokenize_documents(raw, tok)
    opts = masking.PretrainOptions(
        max_seq_length=seq, max_predictions_per_seq=5, short_seq_prob=short, dupe_factor=3,
        do_whole_word_mask=wwm,
    )
    vocab = masking.VocabIds.from_vocab(tok.vocab)
    ours = pt.create_training_instances(docs, opts, vocab, random.Random(7))
    str_docs = [[line.split() for line in d] for d in raw]
    ref = reference_instances(str_docs, list(tok.vocab.keys()), opts, random.Random(7))
    assert len(ours) == len(ref) > 50
    for inst, (tokens, positions, labels, segs, rnd) in zip(ours, ref):
        assert inst.input_ids == [tok.vocab[t] for t in tokens]
        assert inst.masked_lm_positions == positions
        assert inst.masked_lm_ids == [tok.vocab[t] for t in labels]
        assert inst.segment_ids == segs
        assert inst.is_random_next == rnd


def test_truncate_seq_pair_longer_side_tie_goes_to_b():
    class Coins:  # front, back, front, ...
        def __init__(self):
            self.n = 0

        def random(self):
            self.n += 1
            return 0.0 if self.n % 2 else 0.9

    a, b = list("abcdef"), list("xyz")
    pt.truncate_seq_pair(a, b, 6, Coins())
    assert a == list("cde") and b == list("xyz")  # the longer side only: front, back, front
    a, b = list("ab"), list("xy")
    pt.truncate_seq_pair(a, b, 3, Coins())
    assert a == list("ab") and b == list("y")  # tie -> tokens_b, front


# ------------------------------------------------------------------------- whole-word masking


def test_whole_word_masking_covers_whole_words_and_draws_per_piece():
    tok = ToyTokenizer()
    docs = text_docs.tokenize_documents(toy_corpus(40, seed=3), tok)
    opts = masking.PretrainOptions(max_seq_length=32, max_predictions_per_seq=6, dupe_factor=20,
                              do_whole_word_mask=True)
    vocab = masking.VocabIds.from_vocab(tok.vocab)
    instances = pt.create_training_instances(docs, opts, vocab, random.Random(1))
    sub = {i for w, i in tok.vocab.items() if w.startswith("##")}
    mixed_words = 0
    for inst in instances:
        original = list(inst.input_ids)
        for p, label in zip(inst.masked_lm_positions, inst.masked_lm_ids):
            original[p] = label
        # the original's groups: a ## piece joins the previous candidate (even across [SEP])
        groups = []
        for i, t in enumerate(original):
            if t in (vocab.cls_id, vocab.sep_id):
                continue
            if groups and t in sub:
                groups[-1].append(i)
            else:
                groups.append([i])
        masked = set(inst.masked_lm_positions)
        n = min(6, max(1, round(len(original) * 0.15)))
        assert len(masked) <= n
        for g in groups:
            assert set(g) <= masked or not set(g) & masked, (g, masked)
            if len(g) > 1 and set(g) <= masked:
                kinds = {inst.input_ids[i] == vocab.mask_id for i in g}
                mixed_words += len(kinds) == 2
    # 80/10/10 is drawn per piece: some masked words have [MASK] on one piece but not another
    assert mixed_words > 10


def test_whole_word_group_over_budget_is_skipped():
    tok = ToyTokenizer()
    vocab = masking.VocabIds.from_vocab(tok.vocab)
    ids = [tok.vocab[t] for t in "[CLS] un ##believ ##able [SEP] hill ##top ##s [SEP]".split()]
    opts = masking.PretrainOptions(max_predictions_per_seq=2, do_whole_word_mask=True)
    for seed in range(20):
        _, positions, _ = masking.create_masked_lm_predictions(ids, opts, vocab, random.Random(seed))
        assert positions == [], positions  # both words have 3 pieces > the budget (1)
    opts = masking.PretrainOptions(max_predictions_per_seq=3, masked_lm_prob=1.0, do_whole_word_mask=True)
    _, positions, _ = masking.create_masked_lm_predictions(ids, opts, vocab, random.Random(0))
    assert positions in ([1, 2, 3], [5, 6, 7])


def test_random_word_can_be_any_vocab_entry():
    tok = ToyTokenizer()
    vocab = masking.VocabIds.from_vocab(tok.vocab)
    # vocab_words has one "##s", at its first position, whose id is the last line's
    first = TOY_VOCAB.index("##s")
    assert len(vocab.random_word_ids) == len(TOY_VOCAB) - 1
    assert vocab.random_word_ids[first] == TOY_VOCAB.index("##s", first + 1)
    ids = [tok.vocab[t] for t in ("[CLS] " + "the " * 40 + "[SEP] " + "cat " * 40 + "[SEP]").split()]
    opts = masking.PretrainOptions(max_predictions_per_seq=20)
    seen = Counter()
    for seed in range(400):
        out, positions, _ = masking.create_masked_lm_predictions(ids, opts, vocab, random.Random(seed))
        seen.update(out[p] for p in positions)
    assert {0, 2, 3, 4} <= set(seen)  # [PAD], [CLS], [SEP] and [MASK] all drawn as random words


# ------------------------------------------------------------------------ sharding structure


def test_shard_reader_holds_at_most_one_shard_plus_lookahead():
    consumed = 0

    def documents():
        nonlocal consumed
        for i in range(1000):
            consumed += 1
            yield [f"{i:04d}" * 10]  # 40 characters + 1 per line

    emitted = 0
    sizes = []
    for shard in text_docs.iter_shards(documents(), shard_chars=500):
        emitted += len(shard)
        sizes.append(len(shard))
        # everything read so far is in this shard, in earlier shards, or in the 2-doc look-ahead
        assert consumed - emitted <= 2
        del shard
    assert emitted == consumed == 1000
    assert set(sizes[:-1]) == {13} and 2 <= sizes[-1] <= 13  # 13 * 41 >= 500 > 12 * 41


def test_shards_keep_two_documents_when_possible():
    docs = [["a" * 100]] * 5
    assert [len(s) for s in text_docs.iter_shards(iter(docs), shard_chars=50)] == [2, 3]
    assert [len(s) for s in text_docs.iter_shards(iter(docs[:1]), shard_chars=50)] == [1]
    assert list(text_docs.iter_shards(iter([]), shard_chars=50)) == []


def test_documents_and_invalid_utf8():
    seen = []
    lines = [b"  one \n", b"two\xff\xfe\n", b"\n", b"\n", b"\t\n", b"three\r\n", b"\n"]
    text = [line.strip() for line in iter_text_lines(lines, name="f.txt", errors="ignore",
                                                     on_invalid_utf8=lambda n, i: seen.append((n, i)))]
    assert text == ["one", "two", "", "", "", "three", ""]
    assert seen == [("f.txt", 2)]
    assert list(text_docs.iter_documents(text)) == [["one", "two"], ["three"]]


# --------------------------------------------------------------------------- with the real data


@pytest.fixture(scope="module")
def tokenization():
    return pytest.importorskip("bert_cli.text.tokenization")


def _config(shared_data, out, **kw) -> mpd.MakePretrainDataConfig:
    values = dict(
        input_files=(str(shared_data / "text/sample_text.txt"),),
        output_files=(str(out),),
        vocab_file=shared_data / "vocab/uncased/vocab.txt",
    )
    values.update(kw)
    return mpd.MakePretrainDataConfig(**values)


def _read(paths) -> list[dict]:
    return [ep.decode_example(r) for p in paths for r in tfr.read_records(p)]


def test_golden_exact(shared_data, golden_tfrecord, tokenization, tmp_path):
    """All 60 examples, all 7 features, identical to the original's output."""
    golden = _read([golden_tfrecord])
    assert len(golden) == 60
    progress = []
    summary = mpd.run(_config(shared_data, tmp_path / "out.tfrecord", dupe_factor=5), progress.append)
    ours = _read([tmp_path / "out.tfrecord"])
    assert len(ours) == 60
    for i, (g, o) in enumerate(zip(golden, ours)):
        assert list(o) == FEATURES
        for name in FEATURES:
            assert o[name] == g[name], (i, name)
    assert summary["mode"] == "exact" and summary["instances"] == 60 and summary["documents"] == 3
    assert summary["files"] == [str(tmp_path / "out.tfrecord")] and summary["records_per_file"] == [60]
    assert progress and progress[-1]["instances"] == 60

    # a comma list of outputs gets the same instances round-robin
    a, b = tmp_path / "a.tfrecord", tmp_path / "b.tfrecord"
    mpd.run(_config(shared_data, f"{a},{b}", dupe_factor=5))
    assert _read([a]) == golden[0::2] and _read([b]) == golden[1::2]


def test_statistics_on_sample_text(shared_data, tokenization, tmp_path):
    cfg = _config(shared_data, tmp_path / "s.tfrecord", dupe_factor=60, random_seed=99)
    summary = mpd.run(cfg)
    examples = _read([tmp_path / "s.tfrecord"])
    mask_id, kinds = 103, Counter()
    for ex in examples:
        n = sum(ex["input_mask"])
        k = int(sum(ex["masked_lm_weights"]))
        assert k == min(20, max(1, int(round(n * 0.15))))  # exactly the original's budget
        assert ex["masked_lm_positions"][k:] == [0] * (20 - k)
        assert ex["input_ids"][0] == 101 and ex["input_ids"][n - 1] == 102
        for p, label in zip(ex["masked_lm_positions"][:k], ex["masked_lm_ids"][:k]):
            got = ex["input_ids"][p]
            kinds["mask" if got == mask_id else "keep" if got == label else "random"] += 1
    total = sum(kinds.values())
    assert total == summary["masked"] > 10000
    assert abs(kinds["mask"] / total - 0.8) < 0.015
    assert abs(kinds["keep"] / total - 0.1) < 0.012
    assert abs(kinds["random"] / total - 0.1) < 0.012
    assert 0.1 < summary["masked_fraction"] < 0.16
    nsp = sum(ex["next_sentence_labels"][0] for ex in examples) / len(examples)
    assert 0.4 < nsp < 0.6 and abs(nsp - summary["random_next_fraction"]) < 1e-6


@pytest.fixture()
def corpus(shared_data, tmp_path) -> Path:
    """Real sentences (sample_text lines) rearranged into 150 documents."""
    lines = [l for l in (shared_data / "text/sample_text.txt").read_text().splitlines() if l.strip()]
    rng = random.Random(5)
    docs = ["\n".join(rng.sample(lines, rng.randint(1, 6))) for _ in range(150)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(docs) + "\n")
    return path


def test_sharded_mode_is_deterministic_across_worker_counts(shared_data, tokenization, tmp_path, corpus):
    common = dict(input_files=(str(corpus),), dupe_factor=2, shard_size_mb=0.004)
    one = mpd.run(_config(shared_data, tmp_path / "w1-%03d.tfrecord", num_output_shards=3, **common))
    two = mpd.run(_config(shared_data, tmp_path / "w2-%03d.tfrecord", num_output_shards=3, workers=2, **common))
    assert one["mode"] == two["mode"] == "sharded" and one["shards"] == two["shards"] > 5
    assert one["instances"] == two["instances"] and two["workers"] == 2
    for i in range(3):
        assert (tmp_path / f"w1-{i:03d}.tfrecord").read_bytes() == (tmp_path / f"w2-{i:03d}.tfrecord").read_bytes()
    # a different seed gives different data; the same seed in per-shard-file mode the same instances
    other = mpd.run(_config(shared_data, tmp_path / "s-%03d.tfrecord", random_seed=1, **common))
    assert other["instances"] != one["instances"] or _read(other["files"]) != _read(one["files"])
    per_shard = mpd.run(_config(shared_data, tmp_path / "p-%03d.tfrecord", **common))
    assert len(per_shard["files"]) == per_shard["shards"] == one["shards"]
    assert sorted(map(repr, _read(per_shard["files"]))) == sorted(map(repr, _read(one["files"])))
    for ex in _read(one["files"]):
        assert list(ex) == FEATURES and len(ex["input_ids"]) == 128


def test_sharded_single_shard_names_and_stdin(shared_data, tokenization, tmp_path):
    data = (shared_data / "text/sample_text.txt").read_bytes()
    summary = mpd.run(
        _config(shared_data, tmp_path / "o.tfrecord", input_files=("-",), num_output_shards=2, dupe_factor=5),
        stdin=io.BytesIO(data),
    )
    assert summary["files"] == [str(tmp_path / "o-00000-of-00002.tfrecord"), str(tmp_path / "o-00001-of-00002.tfrecord")]
    assert summary["bytes_read"] == len(data) and summary["shards"] == 1
    exact = mpd.run(_config(shared_data, tmp_path / "e.tfrecord", input_files=("-",), dupe_factor=5), stdin=io.BytesIO(data))
    assert exact["instances"] == 60


# ------------------------------------------------------------------------------- bad inputs


def test_invalid_utf8_is_dropped_with_one_warning(shared_data, golden_tfrecord, tokenization, tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(mpd.console, "warn", warnings.append)
    clean = (shared_data / "text/sample_text.txt").read_bytes()
    dirty = clean.replace(b"Gold, surely!", b"Gold,\xff surely!\xc3").replace(b"This was nearly", b"This\xfe was nearly")
    (tmp_path / "dirty.txt").write_bytes(dirty)
    s = mpd.run(_config(shared_data, tmp_path / "d.tfrecord", input_files=(str(tmp_path / "dirty.txt"),), dupe_factor=5))
    assert len(warnings) == 1 and f"{tmp_path / 'dirty.txt'}:" in warnings[0] and "UTF-8" in warnings[0]
    line = dirty.split(b"\n").index(next(l for l in dirty.split(b"\n") if b"\xfe" in l)) + 1
    assert warnings[0].split(":")[1] == str(line)
    assert s["invalid_utf8_lines"] == 2
    assert _read([tmp_path / "d.tfrecord"]) == _read([golden_tfrecord])


def test_empty_corpus_is_an_error_and_writes_nothing(shared_data, tokenization, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n   \n\x0c\n")
    for kw in ({}, {"num_output_shards": 2}, {"workers": 2}):
        with pytest.raises(InputError, match="no text"):
            mpd.run(_config(shared_data, tmp_path / "out" / "x.tfrecord", input_files=(str(empty),), **kw))
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_single_document_warns_and_uses_itself(shared_data, uncased_tokenizer, tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(mpd.console, "warn", warnings.append)
    one = tmp_path / "one.txt"
    one.write_text("the cat sat on the mat.\nthe dog ran away.\nbirds fly south.\n")
    s = mpd.run(_config(shared_data, tmp_path / "o.tfrecord", input_files=(str(one),), max_seq_length=12, dupe_factor=3))
    assert any("single document" in w for w in warnings)
    # the same instances as the plain reference (its "random next" document is the only one: itself)
    tok = uncased_tokenizer
    opts = masking.PretrainOptions(max_seq_length=12, dupe_factor=3)  # max_predictions, mlm and short-seq: defaults
    doc = [tok.tokenize(line) for line in one.read_text().splitlines()]
    ref = reference_instances([doc], list(tok.vocab), opts, random.Random(12345))
    ours = _read([tmp_path / "o.tfrecord"])
    assert s["instances"] == len(ours) == len(ref) == 6
    assert any(rnd for *_, rnd in ref)  # some B segments were drawn from the document itself
    for ex, (tokens, positions, labels, segs, rnd) in zip(ours, ref):
        n = len(tokens)
        assert ex["input_ids"] == [tok.vocab[t] for t in tokens] + [0] * (12 - n)
        assert ex["input_mask"] == [1] * n + [0] * (12 - n)
        assert ex["segment_ids"] == segs + [0] * (12 - n)
        k = len(positions)
        assert ex["masked_lm_positions"] == positions + [0] * (20 - k)
        assert ex["masked_lm_ids"] == [tok.vocab[t] for t in labels] + [0] * (20 - k)
        assert ex["masked_lm_weights"] == [1.0] * k + [0.0] * (20 - k)
        assert ex["next_sentence_labels"] == [int(rnd)]


def test_vocab_without_special_tokens(shared_data, tokenization, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\ncat\n")
    with pytest.raises(InputError, match=r"vocab.txt: vocabulary lacks \[MASK\]"):
        mpd.run(_config(shared_data, tmp_path / "o.tfrecord", vocab_file=vocab))
    with pytest.raises(NotFoundError):
        mpd.run(_config(shared_data, tmp_path / "o.tfrecord", vocab_file=tmp_path / "missing.txt"))
    assert not (tmp_path / "o.tfrecord").exists()


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"max_seq_length": 4}, "at least 5"),
        ({"max_predictions_per_seq": 0}, "max-predictions"),
        ({"masked_lm_prob": 1.5}, "masked-lm-prob"),
        ({"short_seq_prob": -0.1}, "short-seq-prob"),
        ({"dupe_factor": 0}, "dupe-factor"),
        ({"workers": 0}, "workers"),
        ({"num_output_shards": 0}, "num-output-shards"),
        ({"output_files": ("a-%s-%d.tfrecord",)}, "pattern"),
        ({"output_files": ("a-%05d.tfrecord,b.tfrecord",)}, "pattern"),
        ({"output_files": ("a.tfrecord,b.tfrecord",), "num_output_shards": 3}, "does not match"),
    ],
)
def test_usage_errors(shared_data, tmp_path, kw, match):
    with pytest.raises(UsageError, match=match):
        mpd.run(_config(shared_data, tmp_path / "o.tfrecord", **kw))


def test_missing_inputs(shared_data, tmp_path):
    with pytest.raises(NotFoundError, match="input file"):
        mpd.run(_config(shared_data, tmp_path / "o.tfrecord", input_files=(str(tmp_path / "nope.txt"),)))
    with pytest.raises(NotFoundError, match="no input file matches"):
        mpd.run(_config(shared_data, tmp_path / "o.tfrecord", input_files=(str(tmp_path / "*.nope"),)))


def test_input_expansion(tmp_path):
    for name in ("b.txt", "a.txt", "c.md"):
        (tmp_path / name).write_text("x\n")
    got = mpd.expand_input_files([f"{tmp_path}/*.txt,{tmp_path / 'c.md'}", "-"])
    assert got == [str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), str(tmp_path / "c.md"), "-"]


@pytest.mark.parametrize("seq,preds", [(16, 4), (200, 30)])
def test_fast_serializer_matches_the_generic_encoder(seq, preds):
    """The hand-packed records decode like example_proto.encode_example of the same features."""
    ser = pt.InstanceSerializer(seq, preds)
    rng = random.Random(seq)
    for _ in range(30):
        n = rng.randint(5, seq)
        len_a = rng.randint(1, n - 4)
        ids = [rng.randrange(0, 250_000) for _ in range(n)]  # ids past the varint table too
        k = rng.randint(0, min(preds, n))
        positions = sorted(rng.sample(range(n), k))
        inst = pt.Instance(ids, len_a, positions, [ids[p] for p in positions], rng.random() < 0.5)
        fast = ep.decode_example(ser.serialize(inst))
        slow = ep.decode_example(ep.encode_example(ser.features(inst)))
        assert fast == slow and list(fast) == FEATURES
        assert fast["input_ids"] == ids + [0] * (seq - n)
        assert fast["segment_ids"] == [0] * (len_a + 2) + [1] * (n - len_a - 2) + [0] * (seq - n)
        assert fast["masked_lm_weights"] == [1.0] * k + [0.0] * (preds - k)
        assert fast["next_sentence_labels"] == [int(inst.is_random_next)]


@pytest.mark.parametrize(
    "text",
    [
        "[CLS] the cat [SEP] sat on [SEP] mat [SEP]",  # an extra [SEP] in the text
        "[CLS] the [CLS] cat [SEP] dog ##s [SEP] run",  # odd layouts: every non-special is a candidate
        "un ##believ ##able [SEP] ##s the [CLS] ##s",
    ],
)
@pytest.mark.parametrize("wwm", [False, True])
def test_masking_odd_layouts_like_the_reference(text, wwm):
    tok = ToyTokenizer()
    vocab = masking.VocabIds.from_vocab(tok.vocab)
    opts = masking.PretrainOptions(max_predictions_per_seq=3, masked_lm_prob=0.4, do_whole_word_mask=wwm)
    tokens = text.split()
    for seed in range(30):
        out, positions, labels = masking.create_masked_lm_predictions(
            [tok.vocab[t] for t in tokens], opts, vocab, random.Random(seed)
        )
        ref_out, ref_pos, ref_labels = reference_mask(tokens, list(tok.vocab), opts, random.Random(seed))
        assert out == [tok.vocab[t] for t in ref_out]
        assert positions == ref_pos and labels == [tok.vocab[t] for t in ref_labels]
