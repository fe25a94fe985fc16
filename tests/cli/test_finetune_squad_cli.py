"""`bert finetune squad` then `bert squad-threshold` through the real CLI (tiny model, real SQuAD excerpts)."""

from __future__ import annotations

import json

from conftest import SQUAD_TINY_CONFIG
from typer.testing import CliRunner

from bert_cli.cli.app import app
from bert_cli.text.vocab import packaged_vocab_path


def test_finetune_squad_v2_then_threshold_apply(squad2_subset, tmp_path):
    data = squad2_subset
    config = tmp_path / "bert_config.json"
    config.write_text(json.dumps(SQUAD_TINY_CONFIG))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "finetune", "squad", "--train-file", str(data), "--predict-file", str(data), "--version-2-with-negative",
        "--first-answer-only", "--output-dir", str(out), "--vocab-file", str(packaged_vocab_path()), "--bert-config-file", str(config),
        "--do-train", "--do-predict", "--max-seq-length", "128", "--doc-stride", "64", "--max-query-length", "32",
        "--train-batch-size", "4", "--predict-batch-size", "3", "--num-train-epochs", "20", "--learning-rate", "2e-3",
        "--seed", "1", "--device", "cpu", "--json",
    ])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert {"exact", "f1", "best_f1", "best_f1_thresh"} <= set(metrics)
    for name in ("predictions.json", "nbest_predictions.json", "null_odds.json", "raw_logits.jsonl"):
        assert (out / name).is_file(), name

    result = CliRunner().invoke(app, [
        "squad-threshold", "--predict-file", str(data), "--output-dir", str(out), "--apply", "--json",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["applied"] and summary["best_f1_thresh"] == metrics["best_f1_thresh"]
    assert summary["new_metrics"]["f1"] == metrics["best_f1"]
