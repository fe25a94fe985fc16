"""Task inputs and the lines a user reads, through the installed `bert` from a temporary folder
with relative paths: blank labels in one's own CSV/TSV/JSONL data, bad SQuAD files (no
questions, several answers, SQuAD 2.0 without its flag, duplicate ids), the device banner of
runs that do not train, the epochs -> steps line under --max-steps, and extract's XLA default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import error_line

from bert_cli.text.vocab import packaged_vocab_path

PACKAGED_VOCAB = packaged_vocab_path()
WORDS = ["good", "bad", "movie", "film", "plot", "great", "awful"]
TINY = dict(vocab_size=5 + len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=32, type_vocab_size=2)
SQUAD_TINY = dict(TINY, vocab_size=30522, max_position_embeddings=128)
SQUAD_ID = "5733be284776f4190066117e"  # the v1.1 excerpt's question with 3 gold answers
DUPLICATE_ID = "5733be284776f41900661182"  # shared by two questions of the v2.0 excerpt as shipped


def tiny_model(user) -> list[str]:
    """A random-init model of the right size (vocab.txt + bert_config.json) in the user's folder."""
    (user.cwd / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    (user.cwd / "bert_config.json").write_text(json.dumps(TINY))
    return ["--vocab-file", "vocab.txt", "--bert-config-file", "bert_config.json", "--device", "cpu"]


def write_rows(path: Path, fmt: str, rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    else:
        sep = "," if fmt == "csv" else "\t"
        path.write_text("".join(f"{t}{sep}{lab}\n" for t, lab in [("text", "label")] + rows))


GOOD_ROWS = [("good movie", "pos"), ("bad film", "neg"), ("great plot", "pos"), ("awful movie", "neg")] * 2


def finetune_own(user, fmt: str, *args: str):
    return user.run("finetune", fmt, "--data-dir", "data", "--output-dir", "run", *tiny_model(user),
                    "--text-a-column", "text", "--label-column", "label", "--max-seq-length", "16",
                    "--train-batch-size", "2", "--eval-batch-size", "4", *args)


# ----------------------------------------------------------------------------- blank labels


@pytest.mark.parametrize(
    "fmt, split, blank, line",
    [("csv", "train", "", 3), ("tsv", "dev", "   ", 4), ("jsonl", "train", " ", 2)],
)
def test_blank_label_in_own_data_is_an_input_error(user, fmt, split, blank, line):
    for name in ("train", "dev"):
        rows = list(GOOD_ROWS)
        if name == split:
            rows[line - (1 if fmt == "jsonl" else 2)] = ("plot", blank)
        write_rows(user.cwd / "data" / f"{name}.{fmt}", fmt, rows)
    result = finetune_own(user, fmt, "--do-train", "--do-eval", "--max-steps", "1")
    assert result.returncode == 1, result.stderr
    assert error_line(result.stderr) == f"error: data/{split}.{fmt}:{line}: empty label (every train/dev example needs one)"
    assert result.stdout == ""
    assert not (user.cwd / "run").exists()
    assert user.leftovers() == []


# ----------------------------------------------------------------------------- banner, steps line


def test_steps_line_shows_the_cap_and_banner_names_what_the_run_does(user):
    for name in ("train", "dev"):
        write_rows(user.cwd / "data" / f"{name}.csv", "csv", GOOD_ROWS)
    result = finetune_own(user, "csv", "--do-train", "--num-train-epochs", "3", "--max-steps", "2")
    assert result.returncode == 0, result.stderr
    # 8 examples / batch 2 * 3 epochs = 12 steps, of which --max-steps runs 2
    assert "training: 8 examples, batch 2, 3 epochs = 12 steps, capped at 2 by --max-steps (0 warmup)" in result.stderr
    assert "bert: training on 1 CPU" in result.stderr
    assert "global_step = 2" in result.stdout

    result = finetune_own(user, "csv", "--do-eval")  # evaluates the checkpoint just written
    assert result.returncode == 0, result.stderr
    assert "bert: evaluating on 1 CPU" in result.stderr
    assert "training on" not in result.stderr
    assert "eval_accuracy = " in result.stdout


# ----------------------------------------------------------------------------- SQuAD input


def squad_model(user) -> list[str]:
    (user.cwd / "bert_config.json").write_text(json.dumps(SQUAD_TINY))
    return ["--vocab-file", user.rel(PACKAGED_VOCAB), "--bert-config-file", "bert_config.json", "--device", "cpu",
            "--max-seq-length", "128", "--doc-stride", "64", "--max-query-length", "32", "--train-batch-size", "2",
            "--max-steps", "1"]


def squad(user, *args: str):
    return user.run("finetune", "squad", "--output-dir", "run", *squad_model(user), *args)


def test_squad_file_without_paragraphs_is_bad_input_not_usage(user):
    Path(user.cwd / "empty.json").write_text(json.dumps({"version": "1.1", "data": [{"title": "x", "paragraphs": []}]}))
    result = squad(user, "--train-file", "empty.json", "--do-train")
    assert result.returncode == 1, result.stderr
    assert error_line(result.stderr) == "error: empty.json: no questions to train on (1 article(s), 0 paragraph(s))"
    assert not (user.cwd / "run").exists()


def test_predicting_no_questions_is_an_error_not_a_global_step(user):
    Path(user.cwd / "empty.json").write_text(json.dumps({"version": "1.1", "data": [{"title": "x", "paragraphs": []}]}))
    result = squad(user, "--predict-file", "empty.json", "--do-predict")
    assert result.returncode == 1, result.stderr
    assert error_line(result.stderr) == "error: empty.json: no questions to predict (1 article(s), 0 paragraph(s))"
    assert result.stdout == ""  # no "global_step = 0" posing as a result
    assert not (user.cwd / "run").exists()
    result = user.run("squad-threshold", "--predict-file", "empty.json", "--output-dir", "run")
    assert result.returncode == 1, result.stderr
    assert error_line(result.stderr) == "error: empty.json: no questions to score"


def test_training_on_several_answers_names_first_answer_only(user, shared_data):
    data = user.rel(shared_data / "squad" / "subsets" / "allennlp-models_squad.json")
    result = squad(user, "--train-file", data, "--do-train")
    assert result.returncode == 1, result.stderr
    line = error_line(result.stderr)
    assert line.startswith(f"error: {data}: question '{SQUAD_ID}' has 3 answers")
    assert "--first-answer-only" in line
    assert not (user.cwd / "run").exists()


def test_squad2_file_without_its_flag_names_version_2_with_negative(user, squad2_subset):
    data = user.rel(squad2_subset)
    result = squad(user, "--train-file", data, "--do-train", "--first-answer-only")
    assert result.returncode == 1, result.stderr
    line = error_line(result.stderr)
    assert line == (f"error: {data}: question '{DUPLICATE_ID}-unanswerable' is marked is_impossible "
                    "(a SQuAD 2.0 file): pass --version-2-with-negative")
    assert not (user.cwd / "run").exists()


@pytest.mark.parametrize("mode", ["--do-train", "--do-predict"])
def test_duplicate_question_ids_are_an_input_error(user, shared_data, mode):
    data = user.rel(shared_data / "squad" / "subsets" / "allennlp-models_squad2.json")  # the real file as shipped
    flag = "--train-file" if mode == "--do-train" else "--predict-file"
    result = squad(user, flag, data, mode, "--version-2-with-negative", "--first-answer-only")
    assert result.returncode == 1, result.stderr
    assert error_line(result.stderr) == (f"error: {data}: duplicate question id '{DUPLICATE_ID}': "
                                         "every question needs its own id")
    assert result.stdout == ""
    assert not (user.cwd / "run").exists()


def test_squad_threshold_refuses_duplicate_ids(user, shared_data):
    data = user.rel(shared_data / "squad" / "subsets" / "allennlp-models_squad2.json")
    result = user.run("squad-threshold", "--predict-file", data, "--output-dir", "run")
    assert result.returncode == 1, result.stderr
    assert error_line(result.stderr) == f"error: {data}: duplicate question id '{DUPLICATE_ID}': every question needs its own id"


# ----------------------------------------------------------------------------- extract's XLA


def test_extract_help_and_banner_agree_on_xla(user, shared_data):
    help_text = user.run("extract", "--help")
    assert help_text.returncode == 0
    assert "off for CPU" in " ".join(help_text.stdout.split())  # the measured default (engine/device.py)
    ckpt = user.rel(shared_data / "checkpoints" / "tf1-tiny-random")
    result = user.run("extract", "--model", ckpt, "--max-seq-length", "8", "--device", "cpu", "--pooling", "cls",
                      input="unk unk\n")
    assert result.returncode == 0, result.stderr
    assert "bert: extracting features on 1 CPU (fp32, XLA off)" in result.stderr
    assert len(result.stdout.splitlines()) == 1
