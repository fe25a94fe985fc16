"""A run folder that kept ``best/`` stands for its best weights, wherever it is used: evaluating
without training, ``bert predict``, ``bert download --export-hf RUN`` and ``--model RUN``."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import User, make_task_dir

tf = pytest.importorskip("tensorflow")


def finetune_args(*extra: str) -> list[str]:
    return ["finetune", "mrpc", "--data-dir", "task/data", "--vocab-file", "task/vocab.txt",
            "--bert-config-file", "task/bert_config.json", "-o", "run", "--max-seq-length", "24",
            "--train-batch-size", "16", "--learning-rate", "3e-3", "--seed", "1", "--device", "cpu", *extra]


@pytest.fixture(scope="module")
def kept(tmp_path_factory) -> tuple[User, int]:
    """best/ from the first 4 steps (evaluated every 2), then 4 more steps without evaluation:
    the newest checkpoint (step 8) is certainly not the kept one."""
    user = User(tmp_path_factory.mktemp("best"))
    make_task_dir(user.cwd / "task", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    first = user.run(*finetune_args("--do-train", "--do-eval", "--max-steps", "4", "--eval-every-steps", "2",
                                    "--keep-best", "accuracy"))
    assert first.returncode == 0, first.stderr
    more = user.run(*finetune_args("--do-train", "--max-steps", "8"))
    assert more.returncode == 0, more.stderr
    best_step = int(re.search(r"global_step = (\d+)", (user.cwd / "run/best/eval_results.txt").read_text())[1])
    assert best_step in (2, 4) and (user.cwd / "run/model.ckpt-8.index").is_file()
    # the first leg's table: the metrics are the kept weights', and it says where training ended
    if best_step == 4:
        assert re.search(r"^global_step\s+4\s*$", first.stderr, re.M), first.stderr
    else:
        assert re.search(r"^global_step\s+2 \(the best/ weights; training ended at step 4\)", first.stderr, re.M)
        assert re.search(r"^final training loss\s+[0-9.]+ \(step 4\)", first.stderr, re.M), first.stderr
    assert re.search(r"^checkpoint\s+run/model\.ckpt-4\s*$", first.stderr, re.M), first.stderr
    return user, best_step


def _tensor(prefix, name: str) -> np.ndarray:
    return tf.train.load_checkpoint(str(prefix)).get_tensor(name)


def test_evaluating_without_training_scores_the_kept_weights(kept):
    user, best_step = kept
    out = user.run(*finetune_args("--do-eval", "--json"))
    assert out.returncode == 0, out.stderr
    assert re.search(r"^evaluating run/best/model\.ckpt$", out.stderr, re.M), out.stderr  # as the user named it
    assert "cuInit" not in out.stderr  # --device cpu hides the GPUs quietly
    assert json.loads(out.stdout)["global_step"] == best_step
    assert f"global_step = {best_step}" in (user.cwd / "run/eval_results.txt").read_text()


def test_export_hf_of_the_run_folder_exports_the_kept_weights(kept):
    from safetensors.numpy import load_file

    user, best_step = kept
    out = user.run("download", "--export-hf", "run", "hf")
    assert out.returncode == 0, out.stderr
    exported = load_file(str(user.cwd / "hf/model.safetensors"))["classifier.weight"]  # [labels, H]
    best = _tensor(user.cwd / "run/best/model.ckpt", "output_weights")
    newest = _tensor(user.cwd / "run/model.ckpt-8", "output_weights")
    assert not np.array_equal(best, newest)
    np.testing.assert_array_equal(exported, best)


def test_predict_uses_the_kept_weights_too(kept):
    user, best_step = kept
    out = user.run("--verbose", "predict", "--model", "run", input="a great movie ||| fine\n")
    assert out.returncode == 0, out.stderr
    assert re.search(r"run/best/model\.ckpt\b", out.stderr), out.stderr


def test_a_broken_jsonl_line_is_named_with_its_real_column(tmp_path):
    """`bert finetune ner` on JSONL data: the error names file, line and the column in that line
    (json.loads of the line with its newline used to say "column 1": the next line's)."""
    user = User(tmp_path)
    make_task_dir(user.cwd / "task")
    data = user.cwd / "ner"
    data.mkdir()
    good = '{"tokens": ["a", "great", "day"], "tags": ["O", "B-X", "O"]}'
    broken = '{"tokens": ["an", "awful", "day"], "tags": ["O", "O", "O"]'  # no closing brace
    (data / "train.jsonl").write_text(f"{good}\n{broken}\n{good}\n")
    for split in ("dev", "test"):
        (data / f"{split}.jsonl").write_text(f"{good}\n")
    out = user.run("finetune", "ner", "--data-dir", "ner", "--vocab-file", "task/vocab.txt", "--bert-config-file",
                   "task/bert_config.json", "-o", "run", "--do-train", "--max-steps", "1", "--max-seq-length", "32",
                   "--device", "cpu")
    assert out.returncode == 1, out.stderr
    assert re.search(rf"^error: ner/train\.jsonl:2: invalid JSON: .* \(column {len(broken) + 1}\)$", out.stderr,
                     re.M), out.stderr
    assert not (user.cwd / "run").exists() or not any((user.cwd / "run").glob("model.ckpt*"))


def test_the_end_table_of_a_kept_best_run_says_where_training_ended(tmp_path):
    from bert_cli.cli.summary import summary_rows

    for step in (2, 8):  # the best step's periodic checkpoint is still there too
        (tmp_path / f"model.ckpt-{step}.index").write_bytes(b"")
    (tmp_path / "best").mkdir()
    result = {"seed": 1, "global_step": 2, "best": {"metric": "eval_accuracy", "step": 2}, "last_step": 8}
    rows = dict(summary_rows(result, tmp_path, final_loss=0.25))
    assert rows["global_step"] == "2 (the best/ weights; training ended at step 8)"
    assert rows["final training loss"] == "0.2500 (step 8)"
    assert rows["checkpoint"].endswith("model.ckpt-8")
    # a rerun with nothing left to train sends no training events: the result says where it ended
    rerun = dict(summary_rows(result, tmp_path))
    assert rerun["global_step"] == "2 (the best/ weights; training ended at step 8)"
    assert rerun["checkpoint"].endswith("model.ckpt-8") and "final training loss" not in rerun
    plain = dict(summary_rows({"seed": 1, "global_step": 8}, tmp_path, final_loss=0.25))
    assert plain["global_step"] == "8" and plain["final training loss"] == "0.2500"
