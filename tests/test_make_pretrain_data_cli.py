"""`bert make-pretrain-data` through the real CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bert_cli.cli.app import app
from bert_cli.text.tfrecord import decode_example, read_records


def test_cli_reproduces_the_original_output(shared_data, golden_tfrecord, tmp_path, uncased_vocab):
    out = tmp_path / "out.tfrecord"
    result = CliRunner().invoke(app, [
        "make-pretrain-data", "--input-file", str(shared_data / "text" / "sample_text.txt"),
        "--output-file", str(out), "--vocab-file", str(uncased_vocab),
        "--do-lower-case", "--dupe-factor", "5", "--json",
    ])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["instances"] == 60
    ours = [decode_example(r) for r in read_records(out)]
    golden = [decode_example(r) for r in read_records(golden_tfrecord)]
    assert ours == golden


def test_bundled_sample_text_is_the_default_input(tmp_path):
    out = tmp_path / "demo.tfrecord"
    result = CliRunner().invoke(app, ["make-pretrain-data", "-o", str(out), "--dupe-factor", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert len(list(read_records(out))) > 0
    assert "bundled sample text" in result.stderr
