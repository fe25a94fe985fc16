"""``bert make-pretrain-data`` against the original ``create_pretraining_data.py``, beyond the
one golden file (which has no whole-word masking and no sharding).

:func:`original_pretraining.original_instances` (``tests/original_pretraining.py``) is written from the original's algorithm (google-research/bert,
``create_training_instances`` / ``create_instances_from_document`` /
``create_masked_lm_predictions`` / ``truncate_seq_pair``), on token *strings* and with the plain
``random.Random`` calls the original makes, independently of ``bert_cli.text.pretraining``. It
is first checked against the golden output of the real original; then:

* ``--do-whole-word-mask`` through the installed ``bert`` must equal it with the original's
  whole-word grouping (a ``##`` piece joins the previous candidate), and its masks must satisfy
  the invariants only whole-word masking satisfies;
* the sharded mode must be what its documentation says: each shard is the exact algorithm run
  on that shard's documents alone, with the shard's own seed (``shard_seed(seed, index)``).
"""

from __future__ import annotations

import json
import random

import pytest

from original_pretraining import as_features, budget, original_documents, original_instances, word_groups

from bert_cli.text.example_proto import decode_example
from bert_cli.text.tfrecord import read_records

GOLDEN = "pretraining-golden/sample_text.uncased.seq128.pred20.mlm015.seed12345.dupe5.tfrecord"
SEED = 12345


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(shared_data):
    """Paths of the real text and vocab, their tokenizer and the vocab words in file order."""
    from bert_cli.text.tokenization import FullTokenizer

    vocab_file = shared_data / "vocab" / "uncased" / "vocab.txt"
    tokenizer = FullTokenizer(vocab_file, do_lower_case=True)
    text = shared_data / "text" / "sample_text.txt"
    lines = text.read_text(encoding="utf-8").split("\n")
    return dict(vocab_file=vocab_file, text=text, tokenizer=tokenizer, lines=lines, words=list(tokenizer.vocab.keys()))


def expected(real, documents, seed, **options) -> list[dict]:
    instances = original_instances(documents, real["words"], random.Random(seed), **options)
    return [as_features(inst, real["tokenizer"].vocab) for inst in instances]


def read(path) -> list[dict]:
    return [decode_example(r) for r in read_records(path)]


def make_data(user, real, *args: str):
    run = user.run(
        "make-pretrain-data", "-i", user.rel(real["text"]), "--vocab-file", user.rel(real["vocab_file"]),
        "--do-lower-case", "--dupe-factor", "5", *args,
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    return run


# -- the reference is the original ---------------------------------------------------------------


def test_the_written_out_algorithm_reproduces_the_original_golden_output(shared_data, real):
    documents = original_documents(real["lines"], real["tokenizer"])
    assert len(documents) == 3
    golden = read(shared_data / GOLDEN)
    assert expected(real, documents, SEED) == golden and len(golden) == 60


# -- whole-word masking --------------------------------------------------------------------------


def test_whole_word_masking_matches_the_original_algorithm(user, real):
    run = make_data(user, real, "-o", "wwm.tfrecord", "--do-whole-word-mask")
    assert run.stdout == "wwm.tfrecord\n" and user.leftovers() == []
    ours = read(user.cwd / "wwm.tfrecord")
    documents = original_documents(real["lines"], real["tokenizer"])
    assert ours == expected(real, documents, SEED, wwm=True)
    assert ours != expected(real, documents, SEED)  # the flag changes the data


def test_whole_word_masks_cover_whole_words_within_the_budget(user, real):
    make_data(user, real, "-o", "wwm.tfrecord", "--do-whole-word-mask", "--random-seed", "7")
    inv = {i: t for t, i in real["tokenizer"].vocab.items()}
    whole_multi_piece = 0
    for example in read(user.cwd / "wwm.tfrecord"):
        n = sum(example["input_mask"])
        k = int(sum(example["masked_lm_weights"]))
        positions, labels = example["masked_lm_positions"][:k], example["masked_lm_ids"][:k]
        tokens = [inv[i] for i in example["input_ids"][:n]]
        for p, label in zip(positions, labels):
            tokens[p] = inv[label]  # the text before masking
        masked = set(positions)
        limit = budget(n)
        assert positions == sorted(masked) and 1 <= k <= limit
        assert not any(tokens[p] in ("[CLS]", "[SEP]") for p in masked)
        for group in word_groups(tokens):
            inside = masked & set(group)
            assert not inside or inside == set(group), (tokens, group, sorted(masked))  # all pieces or none
            if not inside:
                # a word is left out only when it no longer fit: skipped words are larger than
                # what was left of the budget when they came up (so larger than what is left now)
                assert len(group) > limit - k, (group, k, limit)
            elif len(group) > 1:
                whole_multi_piece += 1
    assert whole_multi_piece >= 5  # the sample text has words of several pieces, and some got masked


# -- sharded mode: each shard is the exact algorithm on its own documents, with its own seed ---------


def test_one_shard_is_the_exact_algorithm_with_the_shard_seed(user, real):
    from bert_cli.text.pretraining import shard_seed

    run = make_data(user, real, "-o", "sharded.tfrecord", "--num-output-shards", "1", "--json")
    summary = json.loads(run.stdout)
    assert summary["mode"] == "sharded" and summary["shards"] == 1 and summary["files"] == ["sharded.tfrecord"]
    documents = original_documents(real["lines"], real["tokenizer"])
    ours = read(user.cwd / "sharded.tfrecord")
    assert ours == expected(real, documents, shard_seed(SEED, 0))
    exact = make_data(user, real, "-o", "exact.tfrecord", "--random-seed", str(shard_seed(SEED, 0)))
    assert exact.stdout == "exact.tfrecord\n" and read(user.cwd / "exact.tfrecord") == ours


def documented_shards(raw_documents: list[list[str]], shard_chars: int) -> list[list[list[str]]]:
    """The documented cut: a shard closes at the first document boundary at or past
    ``shard_chars`` characters (line lengths + one per line) once it holds 2 documents; the
    last shard is never left with fewer than 2 documents."""
    head, tail = raw_documents[:-2], raw_documents[-2:]  # the last 2 always go to the last shard
    shards, shard, size = [], [], 0
    for document in head:
        shard.append(document)
        size += sum(len(line) + 1 for line in document)
        if size >= shard_chars and len(shard) >= 2:
            shards.append(shard)
            shard, size = [], 0
    shard.extend(tail)
    if shard:
        shards.append(shard)
    return shards


def test_every_shard_is_the_exact_algorithm_on_its_documents(real, tmp_path):
    from bert_cli.ops import make_pretrain_data as mpd
    from bert_cli.text.pretraining import shard_seed

    base = [d for d in "\n".join(real["lines"]).split("\n\n") if d.strip()]
    raw = []  # 12 documents: the sample's 3, with their lines rotated 4 ways
    for turn in range(4):
        for document in base:
            lines = [line.strip() for line in document.split("\n") if line.strip()]
            raw.append(lines[turn % len(lines):] + lines[: turn % len(lines)])
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(d) for d in raw) + "\n", encoding="utf-8")
    shard_mb = 0.003
    summary = mpd.run(
        mpd.MakePretrainDataConfig(
            input_files=(str(corpus),), output_files=(str(tmp_path / "s-%02d.tfrecord"),),
            vocab_file=real["vocab_file"], dupe_factor=2, random_seed=SEED, shard_size_mb=shard_mb,
        )
    )
    shards = documented_shards(raw, int(shard_mb * 1e6))
    assert summary["mode"] == "sharded" and summary["shards"] == len(shards) >= 3
    assert [len(s) for s in shards] != [len(raw)]
    for index, shard in enumerate(shards):
        documents = original_documents([line for d in shard for line in [*d, ""]], real["tokenizer"])
        ours = read(tmp_path / f"s-{index:02d}.tfrecord")
        assert ours == expected(real, documents, shard_seed(SEED, index), dupe=2), f"shard {index}"
