"""`bert squad-threshold` through the real CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bert_cli.cli.app import app
from bert_cli.text import squad_metrics


def test_v11_prints_the_official_scores(shared_data):
    result = CliRunner().invoke(
        app,
        [
            "squad-threshold",
            "--predict-file", str(shared_data / "squad" / "dev-v1.1.json"),
            "--predictions", str(shared_data / "squad" / "predictions.v1.1.bert-ensemble.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"exact_match": 86.20624408703878, "f1": 92.19557978351145}


def test_v2_prints_best_f1_threshold_as_a_plain_number(shared_data, tmp_path):
    predict_file = shared_data / "squad" / "dev-v2.0.cs224n-split.json"
    data, _ = squad_metrics.load_dataset(predict_file)
    preds, odds = {}, {}
    for i, (qid, answers) in enumerate(
        (qa["id"], [a["text"] for a in qa["answers"]])
        for article in data for para in article["paragraphs"] for qa in para["qas"]
    ):
        # answer right on every 3rd, wrong text otherwise; null odds rank answerable ones lower
        preds[qid] = answers[0] if answers and i % 3 else "wrong guess"
        odds[qid] = (i % 7) - 3.0 + (0.0 if answers else 2.5)
    (tmp_path / "predictions.json").write_text(json.dumps(preds))
    (tmp_path / "null_odds.json").write_text(json.dumps(odds))

    result = CliRunner().invoke(
        app, ["squad-threshold", "--predict-file", str(predict_file), "--output-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    expected = squad_metrics.evaluate_v2(data, preds, odds)
    assert float(result.stdout.strip()) == expected["best_f1_thresh"]

    result = CliRunner().invoke(
        app, ["squad-threshold", "--predict-file", str(predict_file), "--output-dir", str(tmp_path), "--json"]
    )
    assert json.loads(result.stdout)["metrics"]["best_f1"] == expected["best_f1"]


def test_missing_run_dir_files_is_exit_3(shared_data, tmp_path):
    result = CliRunner().invoke(
        app,
        ["squad-threshold", "--predict-file", str(shared_data / "squad" / "dev-v1.1.json"), "--output-dir", str(tmp_path)],
    )
    assert result.exit_code == 3


def test_v11_official_scores_through_the_installed_script(user, shared_data):
    """As a user runs it: relative paths from another folder; stdout is the JSON and nothing else."""
    out = user.run("squad-threshold", "--predict-file", user.rel(shared_data / "squad" / "dev-v1.1.json"),
                   "--predictions", user.rel(shared_data / "squad" / "predictions.v1.1.bert-ensemble.json"))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"exact_match": 86.20624408703878, "f1": 92.19557978351145}
    assert list(user.cwd.iterdir()) == []  # scoring writes nothing
