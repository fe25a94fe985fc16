"""`bert pretrain` through the real CLI: option errors surface before any TensorFlow work."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bert_cli.cli.app import app


def tiny_config(path):
    path.write_text(json.dumps({
        "vocab_size": 30522, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 32, "max_position_embeddings": 128, "type_vocab_size": 2,
    }))
    return path


def test_missing_config_file_is_exit_3(golden_tfrecord, tmp_path):
    result = CliRunner().invoke(app, [
        "pretrain", "--input-file", str(golden_tfrecord), "--output-dir", str(tmp_path), "--do-train",
        "--bert-config-file", str(tmp_path / "missing.json"),
    ])
    assert result.exit_code == 3
    assert "missing.json" in result.stderr


def test_data_length_mismatch_is_a_clear_error(golden_tfrecord, tmp_path):
    result = CliRunner().invoke(app, [
        "pretrain", "--input-file", str(golden_tfrecord), "--output-dir", str(tmp_path / "run"),
        "--bert-config-file", str(tiny_config(tmp_path / "bert_config.json")),
        "--do-train", "--num-train-steps", "1", "--max-seq-length", "64",
    ])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "--max-seq-length 128" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_model_is_exit_3(tmp_path, monkeypatch):
    monkeypatch.setenv("BERT_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, [
        "pretrain", "--input-file", "x", "--output-dir", str(tmp_path / "run"), "--model", "no-such-model",
        "--do-train",  # (options are checked first: without --do-train/--do-eval it is a usage error)
    ])
    assert result.exit_code == 3
