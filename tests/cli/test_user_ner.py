"""`bert finetune ner` and `bert predict` on a NER run, as users run them: the installed script,
from a temporary working directory, relative paths.

The data is a tiny synthetic CoNLL task (names, places and companies from fixed lists, so a
one-layer random-init model learns it in a few steps) with a small cased vocabulary in which
``Blackburn`` is two WordPieces (``Black ##burn``): alignment on first pieces is exercised.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import User, error_line

FIRST = ["Jim", "Anna", "Peter", "Maria", "Ken"]
LAST = ["Henson", "Smith", "Blackburn", "Garcia", "Ito"]
LOC = ["Paris", "Berlin", "Spain", "Tokyo", "Oslo"]
ORG = ["Reuters", "Google", "Fiat", "Nokia"]
FILL = "the a visited met in with and said today from to of was at".split()
VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + FIRST + [w for w in LAST if w != "Blackburn"]
         + ["Black", "##burn"] + LOC + ORG + FILL)
CONFIG = dict(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
              intermediate_size=64, max_position_embeddings=64, type_vocab_size=2)


def make_ner_dir(root: Path, seed: int = 0, sizes=(("train", 160), ("dev", 24), ("test", 24))) -> Path:
    """``root/{vocab.txt,bert_config.json,data/{train,dev,test}.txt}`` (CoNLL: word POS tag)."""
    rng = random.Random(seed)

    def sentence():
        words, tags = [], []
        for _ in range(rng.randint(2, 6)):
            r = rng.random()
            if r < 0.2:
                words += [rng.choice(FIRST), rng.choice(LAST)]
                tags += ["B-PER", "I-PER"]
            elif r < 0.35:
                words.append(rng.choice(LOC))
                tags.append("B-LOC")
            elif r < 0.45:
                words.append(rng.choice(ORG))
                tags.append("B-ORG")
            else:
                words.append(rng.choice(FILL))
                tags.append("O")
        return words + ["."], tags + ["O"]

    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for split, n in sizes:
        lines = []
        for _ in range(n):
            words, tags = sentence()
            lines += [f"{w} NN {t}" for w, t in zip(words, tags)] + [""]
        (data / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    (root / "bert_config.json").write_text(json.dumps(CONFIG), encoding="utf-8")
    return root


def ner_args(*extra: str, data: str = "data", out: str = "run") -> list[str]:
    return ["finetune", "ner", "--data-dir", data, "--vocab-file", "vocab.txt", "--bert-config-file",
            "bert_config.json", "--output-dir", out, "--max-seq-length", "32", "--train-batch-size", "16",
            "--learning-rate", "5e-3", "--num-train-epochs", "3", "--seed", "1", "--device", "cpu", *extra]


def read_results(path: Path) -> dict[str, str]:
    return dict(line.split(" = ", 1) for line in path.read_text().splitlines())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained in two legs: 4 steps, then (resumed) to the end with eval, predict, --keep-best f1."""
    user = User(tmp_path_factory.mktemp("ner") / "work")
    user.cwd.mkdir()
    make_ner_dir(user.cwd)
    first = user.run(*ner_args("--do-train", "--max-steps", "4", "--save-checkpoints-steps", "4"))
    assert first.returncode == 0, first.stderr
    second = user.run(*ner_args("--do-train", "--do-eval", "--do-predict", "--keep-best", "f1"))
    assert second.returncode == 0, second.stderr
    return user, first, second


def test_train_eval_predict_resume_and_keep_best(trained):
    user, first, second = trained
    run = user.cwd / "run"
    # the second leg continued the first one: no step before 5 was run again
    assert re.search(r"^resuming from \S*run/model\.ckpt-4 \(step 4 of 30\)$", second.stderr, re.M), second.stderr
    assert "step 4/30" not in second.stderr and "step 30/30" in second.stderr
    assert "the model is uncased" not in first.stderr + second.stderr  # a cased vocabulary
    # eval_results.txt: the keys, and the model learned the task
    results = read_results(run / "eval_results.txt")
    assert set(results) == {"eval_precision", "eval_recall", "eval_f1", "eval_accuracy", "eval_loss", "global_step",
                            "loss"}
    assert float(results["eval_f1"]) > 0.9 and float(results["eval_accuracy"]) > 0.9
    # stdout carries the metrics only; the per-type table goes to stderr and eval_report.txt
    assert "eval_f1 = " in second.stdout and "precision" not in second.stdout.replace("eval_precision", "")
    report = (run / "eval_report.txt").read_text()
    assert re.search(r"^PER\s", report, re.M) and report.splitlines()[0] in second.stderr
    # --keep-best f1: best/ is a complete model folder whose step is the evaluation it kept
    best = read_results(run / "best" / "eval_results.txt")
    assert results["global_step"] == best["global_step"]
    assert json.loads((run / "training_state.json").read_text())["metric"] == "eval_f1"
    info = json.loads((run / "best" / "bert_run.json").read_text())
    assert info["kind"] == "ner" and info["tags"] == ["O", "B-LOC", "B-ORG", "B-PER", "I-PER"]
    assert info["do_lower_case"] is False and info["max_seq_length"] == 32
    assert user.leftovers() == []


def test_test_predictions_are_read_by_conlleval(trained, shared_data):
    user, _, second = trained
    perl = shutil.which("perl")
    if perl is None:
        pytest.skip("perl not installed")
    path = user.cwd / "run" / "test_predictions.txt"
    lines = path.read_text().split("\n")
    gold_lines = (user.cwd / "data" / "test.txt").read_text().split("\n")
    assert len(lines) == len(gold_lines)
    for ours, gold in zip(lines, gold_lines):  # token gold predicted, same sentence breaks
        assert ours.split()[:2] == ([gold.split()[0], gold.split()[2]] if gold else [])
    out = subprocess.run([perl, str(shared_data / "ner" / "conlleval.pl")], input=path.read_text(),
                         capture_output=True, text=True, check=True)
    fb1 = float(re.search(r"FB1:\s+([0-9.]+)", out.stdout).group(1))
    ours = float(re.search(r"^test \(\S+\): precision [0-9.]+, recall [0-9.]+, f1 ([0-9.]+)$", second.stderr,
                           re.M).group(1))
    assert fb1 == pytest.approx(ours, abs=0.006) and fb1 > 90


def test_rerun_does_not_train_again(trained):
    user, _, _ = trained
    before = sorted(p.name for p in (user.cwd / "run").glob("model.ckpt-*"))
    again = user.run(*ner_args("--do-train", "--keep-best", "f1"))
    assert again.returncode == 0, again.stderr
    assert "training already finished (step 30 of 30)" in again.stderr
    assert not re.search(r"^step \d+/30", again.stderr, re.M)
    assert sorted(p.name for p in (user.cwd / "run").glob("model.ckpt-*")) == before


def test_predict_jsonl_entities_with_offsets_into_the_line(trained):
    user, _, _ = trained
    lines = ["  Jim Henson  visited Paris .", "", "Peter Blackburn met Anna Smith at Google today ."]
    (user.cwd / "input.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = user.run("predict", "--model", "run", "input.txt")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 3
    for line, row in zip(lines, rows):
        assert row["tokens"] == line.split() and len(row["tags"]) == len(row["tokens"])
        for entity in row["entities"]:
            assert line[entity["start"]:entity["end"]] == entity["text"]
            assert 0.0 < entity["score"] <= 1.0
    first = [(e["text"], e["type"], e["start"], e["end"]) for e in rows[0]["entities"]]
    assert first == [("Jim Henson", "PER", 2, 12), ("Paris", "LOC", 22, 27)]
    assert rows[1] == {"entities": [], "tokens": [], "tags": []}
    assert [(e["text"], e["type"]) for e in rows[2]["entities"]] == [
        ("Peter Blackburn", "PER"), ("Anna Smith", "PER"), ("Google", "ORG")]
    conll = user.run("predict", "--model", "run", "--format", "conll", "-", input="Jim Henson visited Paris\n")
    assert conll.returncode == 0, conll.stderr
    assert conll.stdout == "Jim B-PER\nHenson I-PER\nvisited O\nParis B-LOC\n\n"


def test_a_dev_tag_unseen_in_train_is_an_error_naming_file_and_line(user):
    make_ner_dir(user.cwd)
    dev = user.cwd / "data" / "dev.txt"
    lines = dev.read_text().split("\n")
    n = next(i for i, line in enumerate(lines) if line.endswith(" O"))
    lines[n] = lines[n][:-2] + " B-FOO"
    dev.write_text("\n".join(lines))
    out = user.run(*ner_args("--do-train", "--do-eval"))
    assert out.returncode == 1
    assert error_line(out.stderr) == f"error: data/dev.txt:{n + 1}: tag 'B-FOO' does not occur in the train split"
    assert out.stdout == ""
    assert not (user.cwd / "run").exists()


def test_an_uncased_model_warns(user):
    """The warning comes first, before the data and the run folder are looked at (here an
    evaluation with nothing trained yet, which is then refused cleanly)."""
    make_ner_dir(user.cwd)
    out = user.run(*ner_args("--do-eval", "--do-lower-case"))
    assert out.returncode == 2
    assert out.stderr.startswith("warning: the model is uncased (its input is lower-cased): NER loses the "
                                 "capitalisation"), out.stderr
    assert error_line(out.stderr).startswith("error: nothing trained to evaluate: run holds no NER run")
    assert out.stdout == "" and not (user.cwd / "run").exists()
