"""`bert extract` through the real CLI on the original's tiny TF1 checkpoint."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bert_cli.cli.app import app


def test_extract_jsonl_in_input_order(shared_data):
    ckpt = shared_data / "checkpoints" / "tf1-tiny-random"
    lines = "unk ||| unk unk\n\nunk unk unk\n"
    result = CliRunner().invoke(app, [
        "extract", "--model", str(ckpt), "--layers", "-1,-2", "--max-seq-length", "8", "--batch-size", "2",
    ], input=lines)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["linex_index"] for r in rows] == [0, 1, 2]
    assert [f["token"] for f in rows[1]["features"]] == ["[CLS]", "[SEP]"]
    first = rows[0]["features"][0]
    assert first["token"] == "[CLS]"
    assert [layer["index"] for layer in first["layers"]] == [-1, -2]
    assert len(first["layers"][0]["values"]) == 4  # hidden size of the tiny checkpoint


def test_extract_layer_out_of_range_is_a_usage_error(shared_data):
    ckpt = shared_data / "checkpoints" / "tf1-tiny-random"
    result = CliRunner().invoke(app, ["extract", "--model", str(ckpt), "--layers", "-5"], input="a\n")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
