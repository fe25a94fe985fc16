"""The original scripts' flags work everywhere, hyphenated (``--vocab_file`` -> ``--vocab-file``).

The flag names below are those defined by google-research/bert's five scripts (names only).
Every one must be an option of the command that replaces its script; boolean flags also take
the original's ``--flag=true`` / ``--flag=false``; and the original README's own command lines,
translated one to one, get past option parsing (they fail later, on the tiny files given here,
with a typed error and nothing written).
"""

from __future__ import annotations

import json
import os

import pytest
import typer.main

from bert_cli.cli.app import app
from conftest import error_line

ORIGINAL_FLAGS = {
    "run_classifier.py": (
        "data_dir", "bert_config_file", "task_name", "vocab_file", "output_dir", "init_checkpoint",
        "do_lower_case", "max_seq_length", "do_train", "do_eval", "do_predict", "train_batch_size",
        "eval_batch_size", "predict_batch_size", "learning_rate", "num_train_epochs", "warmup_proportion",
        "save_checkpoints_steps", "iterations_per_loop", "use_tpu", "tpu_name", "tpu_zone", "gcp_project",
        "master", "num_tpu_cores",
    ),
    "run_squad.py": (
        "bert_config_file", "vocab_file", "output_dir", "train_file", "predict_file", "init_checkpoint",
        "do_lower_case", "max_seq_length", "doc_stride", "max_query_length", "do_train", "do_predict",
        "train_batch_size", "predict_batch_size", "learning_rate", "num_train_epochs", "warmup_proportion",
        "save_checkpoints_steps", "iterations_per_loop", "n_best_size", "max_answer_length", "use_tpu",
        "tpu_name", "tpu_zone", "gcp_project", "master", "num_tpu_cores", "verbose_logging",
        "version_2_with_negative", "null_score_diff_threshold",
    ),
    "run_pretraining.py": (
        "bert_config_file", "input_file", "output_dir", "init_checkpoint", "max_seq_length",
        "max_predictions_per_seq", "do_train", "do_eval", "train_batch_size", "eval_batch_size",
        "learning_rate", "num_train_steps", "num_warmup_steps", "save_checkpoints_steps",
        "iterations_per_loop", "max_eval_steps", "use_tpu", "tpu_name", "tpu_zone", "gcp_project", "master",
        "num_tpu_cores",
    ),
    "create_pretraining_data.py": (
        "input_file", "output_file", "vocab_file", "do_lower_case", "do_whole_word_mask", "max_seq_length",
        "max_predictions_per_seq", "random_seed", "dupe_factor", "masked_lm_prob", "short_seq_prob",
    ),
    "extract_features.py": (
        "input_file", "output_file", "layers", "bert_config_file", "max_seq_length", "init_checkpoint",
        "vocab_file", "do_lower_case", "batch_size", "use_tpu", "master", "num_tpu_cores",
        "use_one_hot_embeddings",
    ),
}
# The original's DEFINE_bool flags: they take --flag=true / --flag=false.
BOOLEAN_FLAGS = {
    "do_lower_case", "do_train", "do_eval", "do_predict", "use_tpu", "verbose_logging",
    "version_2_with_negative", "do_whole_word_mask", "use_one_hot_embeddings",
}
# Flags that exist only so that old command lines run: they stay out of --help.
COMPATIBILITY_ONLY = {
    "task_name", "iterations_per_loop", "use_tpu", "tpu_name", "tpu_zone", "gcp_project", "master",
    "num_tpu_cores", "verbose_logging", "use_one_hot_embeddings",
}
COMMAND = {
    "run_classifier.py": "finetune",
    "run_squad.py": "finetune",
    "run_pretraining.py": "pretrain",
    "create_pretraining_data.py": "make-pretrain-data",
    "extract_features.py": "extract",
}
# What each command needs besides the flag under test to parse at all.
REQUIRED = {
    "finetune": ["mrpc", "--output-dir", "out"],
    "pretrain": ["--input-file", "data.tfrecord", "--output-dir", "out"],
    "make-pretrain-data": ["--output-file", "out.tfrecord"],
    "extract": [],
}
PAIRS = [(script, flag) for script, flags in ORIGINAL_FLAGS.items() for flag in flags]
BOOLEAN_PAIRS = [(script, flag) for script, flag in PAIRS if flag in BOOLEAN_FLAGS]


def hyphenated(flag: str) -> str:
    return "--" + flag.replace("_", "-")


def click_command(script: str):
    return typer.main.get_command(app).commands[COMMAND[script]]


def param_of(command, option: str):
    for param in command.params:
        if option in list(param.opts) + list(param.secondary_opts):
            return param
    return None


@pytest.mark.parametrize("script,flag", PAIRS, ids=[f"{s}:{f}" for s, f in PAIRS])
def test_every_original_flag_is_an_option_of_its_command(script, flag):
    command = click_command(script)
    param = param_of(command, hyphenated(flag))
    assert param is not None, f"bert {COMMAND[script]} does not accept {hyphenated(flag)} ({script} --{flag})"
    if flag in COMPATIBILITY_ONLY:
        assert param.hidden, f"{hyphenated(flag)} is a compatibility flag: keep it out of --help"


@pytest.mark.parametrize("script,flag", BOOLEAN_PAIRS, ids=[f"{s}:{f}" for s, f in BOOLEAN_PAIRS])
@pytest.mark.parametrize("value,expected", [("true", True), ("False", False)])
def test_boolean_flags_take_the_originals_true_false_values(script, flag, value, expected):
    command = click_command(script)
    name = COMMAND[script]
    ctx = command.make_context(name, [*REQUIRED[name], f"{hyphenated(flag)}={value}"])
    assert ctx.params[param_of(command, hyphenated(flag)).name] is expected


def test_extract_output_file_is_the_output_option():
    command = typer.main.get_command(app).commands["extract"]
    ctx = command.make_context("extract", ["--output-file", "features.jsonl"])
    assert str(ctx.params["output"]) == "features.jsonl"


# --- the original README's command lines, translated one to one, run as a user runs them -----

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog", "sat", "ran", "a", "is", "here", "end", "."]
CONFIG = dict(vocab_size=len(VOCAB), hidden_size=8, num_hidden_layers=4, num_attention_heads=2, intermediate_size=8,
              max_position_embeddings=512, type_vocab_size=2)


@pytest.fixture
def base_dir(user):
    """A BERT_BASE_DIR with vocab.txt and bert_config.json but no bert_model.ckpt."""
    folder = user.cwd / "uncased_L-12_H-768_A-12"
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    (folder / "bert_config.json").write_text(json.dumps(CONFIG), encoding="utf-8")
    return "uncased_L-12_H-768_A-12"


def entries(user) -> set[str]:
    return {p.name for p in user.cwd.iterdir()} - {".cache"}


def test_readme_run_classifier_mrpc_line(user, base_dir):
    result = user.run(
        "finetune", "--task-name=MRPC", "--do-train=true", "--do-eval=true", "--data-dir=glue_data/MRPC",
        f"--vocab-file={base_dir}/vocab.txt", f"--bert-config-file={base_dir}/bert_config.json",
        f"--init-checkpoint={base_dir}/bert_model.ckpt", "--max-seq-length=128", "--train-batch-size=32",
        "--learning-rate=2e-5", "--num-train-epochs=3.0", "--output-dir=mrpc_output/",
    )
    assert result.returncode == 3, result.stderr
    assert f"{base_dir}/bert_model.ckpt" in error_line(result.stderr)
    assert result.stdout == ""
    assert entries(user) == {base_dir}
    assert user.leftovers() == []


def test_readme_run_squad_tpu_line(user, base_dir):
    result = user.run(
        "finetune", "squad", f"--vocab-file={base_dir}/vocab.txt", f"--bert-config-file={base_dir}/bert_config.json",
        f"--init-checkpoint={base_dir}/bert_model.ckpt", "--do-train=True", "--train-file=squad/train-v1.1.json",
        "--do-predict=True", "--predict-file=squad/dev-v1.1.json", "--train-batch-size=24", "--learning-rate=3e-5",
        "--num-train-epochs=2.0", "--max-seq-length=384", "--doc-stride=128", "--output-dir=squad_large/",
        "--use-tpu=True", "--tpu-name=my-tpu",
    )
    assert result.returncode == 3, result.stderr
    assert "bert_model.ckpt" in error_line(result.stderr) or "train-v1.1.json" in error_line(result.stderr)
    assert result.stdout == ""
    assert entries(user) == {base_dir}


def test_readme_create_pretraining_data_and_run_pretraining_lines(user, base_dir):
    (user.cwd / "sample_text.txt").write_text(
        "the cat sat .\nthe dog ran .\nthe cat ran .\n\nthe dog sat .\na cat is here .\nthe end .\n", encoding="utf-8"
    )
    made = user.run(
        "make-pretrain-data", "--input-file=./sample_text.txt", "--output-file=tf_examples.tfrecord",
        f"--vocab-file={base_dir}/vocab.txt", "--do-lower-case=True", "--max-seq-length=128",
        "--max-predictions-per-seq=20", "--masked-lm-prob=0.15", "--random-seed=12345", "--dupe-factor=5",
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.split() == ["tf_examples.tfrecord"]
    assert (user.cwd / "tf_examples.tfrecord").stat().st_size > 0

    result = user.run(
        "pretrain", "--input-file=tf_examples.tfrecord", "--output-dir=pretraining_output", "--do-train=True",
        "--do-eval=True", f"--bert-config-file={base_dir}/bert_config.json",
        f"--init-checkpoint={base_dir}/bert_model.ckpt", "--train-batch-size=32", "--max-seq-length=128",
        "--max-predictions-per-seq=20", "--num-train-steps=20", "--num-warmup-steps=10", "--learning-rate=2e-5",
        "--iterations-per-loop=1000",
    )
    assert result.returncode == 3, result.stderr
    assert f"{base_dir}/bert_model.ckpt" in error_line(result.stderr)
    assert "warning: --iterations-per-loop has no effect here" in result.stderr
    assert result.stdout == ""
    assert not (user.cwd / "pretraining_output").exists()
    assert user.leftovers() == []


def test_readme_extract_features_line(user, base_dir):
    (user.cwd / "input.txt").write_text("Who was Jim Henson ? ||| Jim Henson was a puppeteer\n", encoding="utf-8")
    result = user.run(
        "extract", "--input-file=input.txt", "--output-file=output.jsonl", f"--vocab-file={base_dir}/vocab.txt",
        f"--bert-config-file={base_dir}/bert_config.json", f"--init-checkpoint={base_dir}/bert_model.ckpt",
        "--layers=-1,-2,-3,-4", "--max-seq-length=128", "--batch-size=8",
        "--use-tpu=False", "--num-tpu-cores=8", "--use-one-hot-embeddings=False",
    )
    assert result.returncode == 3, result.stderr
    assert f"{base_dir}/bert_model.ckpt" in error_line(result.stderr)
    assert "warning: --num-tpu-cores has no effect here" in result.stderr
    assert "use-one-hot" not in result.stderr  # false: nothing to say
    assert result.stdout == ""
    assert entries(user) == {base_dir, "input.txt"}
    assert user.leftovers() == []


# --- what the compatibility flags refuse (usage errors, exit 2, before anything is read) -----


@pytest.mark.parametrize(
    "args,message",
    [
        (["finetune", "mrpc", "--use-tpu", "--device", "cpu"], "error: --use-tpu contradicts --device cpu"),
        (["finetune", "mrpc", "--do-train=maybe"], "error: --do-train takes true or false, not 'maybe'"),
        (["finetune", "--task-name", "cola", "sst2"], "error: TASK 'sst2' and --task-name 'cola' disagree"),
        (["finetune"], "error: missing TASK"),
    ],
    ids=["use-tpu-vs-device", "bad-boolean", "two-tasks", "no-task"],
)
def test_compatibility_flags_refuse_contradictions(user, args, message):
    result = user.run(*args, "--output-dir", "out")
    assert result.returncode == 2, result.stderr
    assert error_line(result.stderr) == message
    assert result.stdout == ""
    assert entries(user) == set()


# --- what the TPU flags mean (in-process: no TPU here, and resolving one needs the network) ---


def test_use_tpu_with_tpu_name_selects_that_tpu(monkeypatch, capsys):
    from bert_cli.cli import original_flags

    monkeypatch.setenv("TPU_NAME", "")  # restored (or removed) after the test
    monkeypatch.delenv("TPU_NAME")
    assert original_flags.apply("auto", use_tpu=True, tpu_name="my-tpu", num_tpu_cores=8) == "tpu"
    assert os.environ["TPU_NAME"] == "my-tpu"
    assert "--num-tpu-cores has no effect here" in capsys.readouterr().err


def test_tpu_name_without_use_tpu_is_ignored_as_in_the_original(monkeypatch, capsys):
    from bert_cli.cli import original_flags

    monkeypatch.setenv("TPU_NAME", "")  # restored (or removed) after the test
    monkeypatch.delenv("TPU_NAME")
    assert original_flags.apply("auto", master="grpc://10.0.0.2:8470") == "auto"
    assert "TPU_NAME" not in os.environ
    assert "--master is ignored without --use-tpu" in capsys.readouterr().err
