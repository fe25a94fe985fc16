"""Run folders as users go on with them: a pretraining run is a model folder, a second run on a
busy folder is refused before it reads anything, and an evaluation of a fine-tuned folder is told
to pass it as ``--model`` (all through the installed ``bert``, relative paths)."""

from __future__ import annotations

import json
import time

from conftest import error_line


def test_a_pretraining_run_folder_works_as_a_model(user, task_maker):
    """`bert pretrain` leaves bert_config.json (and the model's vocab.txt when it has one) beside
    its checkpoints, so `--model RUN` works for the next command, here `bert extract`."""
    task = task_maker(user.cwd / "task")
    out = user.run("make-pretrain-data", "-i", "-", "-o", "data.tfrecord", "--vocab-file", "task/vocab.txt", "--max-seq-length", "24",
                   "--max-predictions-per-seq", "4", "--dupe-factor", "1",
                   input="the cat sat on the mat\nthe dog runs over the cat\n\nthe mat is red\na big dog is old\n\n" * 30)
    assert out.returncode == 0, out.stderr
    pretrain = user.run("pretrain", "-i", "data.tfrecord", "-o", "run", "--bert-config-file", "task/bert_config.json",
                        "--max-seq-length", "24", "--max-predictions-per-seq", "4", "--train-batch-size", "4",
                        "--num-train-steps", "2", "--num-warmup-steps", "0", "--do-train", "--device", "cpu")
    assert pretrain.returncode == 0, pretrain.stderr
    assert (user.cwd / "run" / "bert_config.json").is_file()
    written, given = (json.loads(p.read_text()) for p in (user.cwd / "run" / "bert_config.json", task / "bert_config.json"))
    assert {key: written[key] for key in given} == given
    extract = user.run("extract", "--model", "run", "--vocab-file", "task/vocab.txt", "--max-seq-length", "16",
                       "--pooling", "cls", input="the cat sat .\n")
    assert extract.returncode == 0, extract.stderr
    vector = json.loads(extract.stdout)["embedding"]
    assert len(vector) == json.loads((task / "bert_config.json").read_text())["hidden_size"]


def test_a_second_run_on_a_busy_folder_is_refused_before_it_reads_the_data(user, task_maker):
    task_maker(user.cwd / "task")
    args = ["finetune", "mrpc", "--data-dir", "task/data", "--vocab-file", "task/vocab.txt",
            "--bert-config-file", "task/bert_config.json", "-o", "run", "--max-seq-length", "24",
            "--train-batch-size", "16", "--device", "cpu", "--do-train", "--seed", "1"]
    first = user.popen(*args, "--num-train-epochs", "200", "--save-checkpoints-steps", "100000")
    try:
        deadline = time.monotonic() + 300
        while not (user.cwd / "run" / "bert_run.json").is_file():  # the first run holds the folder
            assert first.poll() is None and time.monotonic() < deadline, "the first run ended early"
            time.sleep(0.2)
        started = time.monotonic()
        second = user.run(*args)
        seconds = time.monotonic() - started
    finally:
        first.kill()
        first.wait()
    assert second.returncode == 2
    assert "is in use by another run" in error_line(second.stderr)
    assert "examples" not in second.stderr and "bert: training" not in second.stderr, second.stderr  # nothing read
    assert second.stdout == ""
    assert seconds < 60, seconds


def test_evaluating_a_fine_tuned_folder_without_model_names_it(user, task_maker):
    task_maker(user.cwd / "task")
    (user.cwd / "run").mkdir()
    (user.cwd / "run" / "bert_run.json").write_text(json.dumps({"task": "mrpc", "labels": ["0", "1"]}))
    out = user.run("finetune", "mrpc", "--data-dir", "task/data", "-o", "run", "--do-eval")
    assert out.returncode == 2
    assert error_line(out.stderr).startswith("error: no model: pass --model NAME|DIR")
    assert "hint: to go on with the run in run, pass --model run" in out.stderr
