"""The one model-files policy, as users meet it: the real all-MiniLM-L6-v2 folder exactly as
shipped (``tokenizer.json``, no ``vocab.txt``; ``model.safetensors``), given by a RELATIVE path to
every command; explicit files overriding the folder's; one casing rule everywhere."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import error_line

LINES = ["John Johanson's house is in Zürich.", "The quick brown fox jumps over the lazy dog!"]


def test_tokenize_reads_the_vocabulary_from_tokenizer_json(user, minilm):
    tokenizers = pytest.importorskip("tokenizers")
    assert not (minilm / "vocab.txt").exists()  # as shipped
    out = user.run("tokenize", "--model", user.rel(minilm), "--format", "ids", input="\n".join(LINES) + "\n")
    assert out.returncode == 0, out.stderr
    reference = tokenizers.Tokenizer.from_file(str(minilm / "tokenizer.json"))
    reference.no_padding()
    reference.no_truncation()
    expected = [" ".join(map(str, reference.encode(line, add_special_tokens=False).ids)) for line in LINES]
    assert out.stdout.splitlines() == expected
    assert not (minilm / "vocab.txt").exists()


def test_explicit_vocab_file_overrides_the_folder(user, minilm, shared_data):
    # a tiny vocabulary of our own: ids differ from the folder's, so the override is visible
    (user.cwd / "v.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nworld\n")
    out = user.run("tokenize", "--model", user.rel(minilm), "--vocab-file", "v.txt", "--format", "ids",
                   input="hello there world\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "4 1 5\n"


def test_casing_contradiction_is_refused_by_every_tokenizing_command_unless_forced(user, minilm):
    out = user.run("tokenize", "--model", user.rel(minilm), "--no-do-lower-case", input="Hello\n")
    assert out.returncode == 2
    assert "is uncased" in error_line(out.stderr) and "--force-casing" in out.stderr
    forced = user.run("tokenize", "--model", user.rel(minilm), "--no-do-lower-case", "--force-casing",
                      input="Hello\n")
    assert forced.returncode == 0 and forced.stdout == "[UNK]\n"  # no upper-case entry in an uncased vocab
    mpd = user.run("make-pretrain-data", "--model", user.rel(minilm), "--no-do-lower-case", "-o", "d.tfrecord")
    assert mpd.returncode == 2 and "is uncased" in error_line(mpd.stderr)
    assert not (user.cwd / "d.tfrecord").exists()


def test_a_cased_vocabulary_with_unknown_casing_is_taken_as_cased(user, shared_data):
    vocab = user.rel(shared_data / "vocab" / "cased" / "vocab.txt")
    out = user.run("tokenize", "--vocab-file", vocab, input="John Johanson\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "John Johan ##son\n"
    assert "taken as cased" in out.stderr
    lowered = user.run("tokenize", "--vocab-file", vocab, "--do-lower-case", input="John Johanson\n")
    assert lowered.stdout != out.stdout and "taken as cased" not in lowered.stderr
    uncased = user.run("tokenize", "--vocab-file", user.rel(shared_data / "vocab" / "uncased" / "vocab.txt"),
                       input="John Johanson\n")
    assert uncased.stdout == "john johan ##son\n" and "taken as cased" not in uncased.stderr


def test_extract_runs_the_folder_as_shipped_and_matches_transformers(user, minilm):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    (user.cwd / "in.txt").write_text(LINES[1] + "\n")
    out = user.run("extract", "--model", user.rel(minilm), "-i", "in.txt", "--layers", "-1", "--device", "cpu",
                   "--no-xla")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    ours = np.array([f["layers"][0]["values"] for f in row["features"]])
    tok = transformers.AutoTokenizer.from_pretrained(str(minilm))
    model = transformers.BertModel.from_pretrained(str(minilm), attn_implementation="eager").eval()
    enc = tok(LINES[1], return_tensors="pt")
    assert [f["token"] for f in row["features"]] == tok.convert_ids_to_tokens(enc["input_ids"][0])
    with torch.no_grad():
        theirs = model(**enc).last_hidden_state[0].numpy()
    # values are written rounded to 6 decimals, as the original extract_features.py
    assert np.abs(ours - theirs).max() <= 5e-6 + 2e-6 * np.abs(theirs).max()


def test_finetune_and_pretrain_start_from_the_folder_weights(user, minilm, task_maker):
    task_maker(user.cwd / "task")
    ft = user.run("finetune", "mrpc", "--model", user.rel(minilm), "--data-dir", "task/data", "-o", "run",
                  "--do-train", "--max-steps", "1", "--max-seq-length", "32", "--train-batch-size", "8",
                  "--device", "cpu")
    assert ft.returncode == 0, ft.stderr
    assert re.search(r"loaded 10[0-9] weights from \S*model\.safetensors", ft.stderr), ft.stderr
    assert (user.cwd / "run" / "vocab.txt").read_text().splitlines()[:3] == ["[PAD]", "[unused0]", "[unused1]"]

    data = user.run("make-pretrain-data", "--model", user.rel(minilm), "-o", "d.tfrecord", "--max-seq-length", "32",
                    "--max-predictions-per-seq", "5", "--dupe-factor", "1")
    assert data.returncode == 0, data.stderr
    common = ["-i", "d.tfrecord", "--max-seq-length", "32", "--max-predictions-per-seq", "5", "--num-train-steps",
              "1", "--train-batch-size", "4", "--device", "cpu", "--do-train"]
    by_model = user.run("pretrain", "--model", user.rel(minilm), "-o", "p1", *common)
    assert by_model.returncode == 0, by_model.stderr
    by_file = user.run("pretrain", "--init-checkpoint", user.rel(minilm / "model.safetensors"),
                       "--bert-config-file", user.rel(minilm / "config.json"), "-o", "p2", *common)
    assert by_file.returncode == 0, by_file.stderr
    for out in (by_model, by_file):
        assert re.search(r"loaded 103 weights from \S*model\.safetensors", out.stderr), out.stderr
        assert "cls/predictions" in out.stderr  # the MLM/NSP heads are new: said, not hidden
