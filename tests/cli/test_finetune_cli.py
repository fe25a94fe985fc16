"""`bert finetune` and `bert predict` through the real CLI on a tiny separable task."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bert_cli.cli.app import app


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, task_maker):
    root = task_maker(tmp_path_factory.mktemp("cli-task"))
    out = root / "run"
    result = CliRunner().invoke(app, [
        "finetune", "mrpc", "--data-dir", str(root / "data"), "--output-dir", str(out),
        "--vocab-file", str(root / "vocab.txt"), "--bert-config-file", str(root / "bert_config.json"),
        "--do-train", "--do-eval", "--max-seq-length", "24", "--train-batch-size", "16",
        "--learning-rate", "3e-3", "--num-train-epochs", "4", "--seed", "1", "--device", "cpu", "--json",
    ])
    assert result.exit_code == 0, result.output
    return root, out, json.loads(result.stdout)


def test_finetune_prints_final_metrics_as_json(run_dir):
    _, out, metrics = run_dir
    assert metrics["eval_accuracy"] >= 0.9
    assert metrics["global_step"] == int(256 / 16 * 4)
    assert (out / "eval_results.txt").read_text().splitlines()[0].startswith("eval_accuracy = ")


def test_predict_raw_lines_in_order(run_dir):
    _, out, _ = run_dir
    lines = "the cat great sat on mat ||| a dog\nthe awful dog runs far ||| a cat\n"
    result = CliRunner().invoke(app, ["predict", "--model", str(out), "-"], input=lines)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["label"] for r in rows] == ["1", "0"]
    assert all(abs(sum(r["probabilities"].values()) - 1.0) < 1e-5 for r in rows)


def test_finetune_missing_dev_file_is_exit_3(run_dir, tmp_path):
    root, _, _ = run_dir
    (tmp_path / "train.tsv").write_text((root / "data" / "train.tsv").read_text())
    result = CliRunner().invoke(app, [
        "finetune", "mrpc", "--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "run"),
        "--vocab-file", str(root / "vocab.txt"), "--bert-config-file", str(root / "bert_config.json"),
        "--do-eval", "--max-seq-length", "24",
    ])
    assert result.exit_code == 3
    assert "dev.tsv" in result.stderr
