"""``bert make-pretrain-data`` against the original ``create_pretraining_data.py``, beyond the
one golden file (which has no whole-word masking and no sharding).

:func:`original_instances` below is written from the original's algorithm (google-research/bert,
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

from bert_cli.text.tfrecord import decode_example, read_records

GOLDEN = "pretraining-golden/sample_text.uncased.seq128.pred20.mlm015.seed12345.dupe5.tfrecord"
SEQ, PRED, PROB, SHORT, SEED = 128, 20, 0.15, 0.1, 12345


# -- the original's algorithm, written out -------------------------------------------------------


def original_documents(lines, tokenizer) -> list[list[list[str]]]:
    """Blank lines separate documents; each non-blank line is tokenized; empty ones dropped."""
    documents: list[list[list[str]]] = [[]]
    for line in lines:
        line = line.strip()
        if not line:
            documents.append([])
        tokens = tokenizer.tokenize(line)
        if tokens:
            documents[-1].append(tokens)
    return [d for d in documents if d]


def original_instances(documents, vocab_words, rng, *, dupe=5, wwm=False, seq=SEQ, pred=PRED, prob=PROB, short=SHORT):
    """``create_training_instances`` after reading: shuffle documents, ``dupe`` rounds, shuffle."""
    documents = list(documents)
    rng.shuffle(documents)
    instances = []
    for _ in range(dupe):
        for index in range(len(documents)):
            instances.extend(_from_document(documents, index, vocab_words, rng, wwm, seq, pred, prob, short))
    rng.shuffle(instances)
    return instances


def _from_document(documents, index, vocab_words, rng, wwm, seq, pred, prob, short):
    document = documents[index]
    max_tokens = seq - 3
    target = max_tokens
    if rng.random() < short:
        target = rng.randint(2, max_tokens)
    out, chunk, length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [t for segment in chunk[:a_end] for t in segment]
            tokens_b = []
            if len(chunk) == 1 or rng.random() < 0.5:
                is_random_next = True
                for _ in range(10):
                    other = rng.randint(0, len(documents) - 1)
                    if other != index:
                        break
                random_document = documents[other]
                for segment in random_document[rng.randint(0, len(random_document) - 1):]:
                    tokens_b.extend(segment)
                    if len(tokens_b) >= target - len(tokens_a):
                        break
                i -= len(chunk) - a_end
            else:
                is_random_next = False
                tokens_b = [t for segment in chunk[a_end:] for t in segment]
            while len(tokens_a) + len(tokens_b) > max_tokens:
                longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
                if rng.random() < 0.5:
                    del longer[0]
                else:
                    longer.pop()
            tokens = ["[CLS]", *tokens_a, "[SEP]", *tokens_b, "[SEP]"]
            segments = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
            masked, positions, labels = _mask(tokens, vocab_words, rng, wwm, pred, prob)
            out.append((masked, segments, positions, labels, is_random_next))
            chunk, length = [], 0
        i += 1
    return out


def word_groups(tokens: list[str]) -> list[list[int]]:
    """The original's candidates: every position but [CLS]/[SEP]; under whole-word masking a
    ``##`` piece joins the candidate before it (whatever lies between, even a [SEP])."""
    groups: list[list[int]] = []
    for i, token in enumerate(tokens):
        if token in ("[CLS]", "[SEP]"):
            continue
        if groups and token.startswith("##"):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def budget(n_tokens: int, pred: int = PRED, prob: float = PROB) -> int:
    return min(pred, max(1, int(round(n_tokens * prob))))


def _mask(tokens, vocab_words, rng, wwm, pred, prob):
    candidates = word_groups(tokens) if wwm else [[i] for i, t in enumerate(tokens) if t not in ("[CLS]", "[SEP]")]
    rng.shuffle(candidates)
    n = budget(len(tokens), pred, prob)
    output, chosen, covered = list(tokens), [], set()
    for group in candidates:
        if len(chosen) >= n:
            break
        if len(chosen) + len(group) > n or covered & set(group):
            continue
        for i in group:
            covered.add(i)
            if rng.random() < 0.8:
                output[i] = "[MASK]"
            elif rng.random() < 0.5:
                output[i] = tokens[i]
            else:
                output[i] = vocab_words[rng.randint(0, len(vocab_words) - 1)]
            chosen.append(i)
    chosen.sort()
    return output, chosen, [tokens[i] for i in chosen]


def as_features(instance, vocab: dict[str, int], seq: int = SEQ, pred: int = PRED) -> dict[str, list]:
    """The original's ``write_instance_to_example_files`` features of one instance."""
    tokens, segments, positions, labels, is_random_next = instance
    pad, k = seq - len(tokens), len(positions)
    return {
        "input_ids": [vocab[t] for t in tokens] + [0] * pad,
        "input_mask": [1] * len(tokens) + [0] * pad,
        "segment_ids": segments + [0] * pad,
        "masked_lm_positions": positions + [0] * (pred - k),
        "masked_lm_ids": [vocab[t] for t in labels] + [0] * (pred - k),
        "masked_lm_weights": [1.0] * k + [0.0] * (pred - k),
        "next_sentence_labels": [int(is_random_next)],
    }


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
