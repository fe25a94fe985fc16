"""`bert make-pretrain-data` through the real CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bert_cli.cli.app import app
from bert_cli.resources import path as resource_path
from bert_cli.text.example_proto import decode_example
from bert_cli.text.tfrecord import read_records


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


def test_bundled_sample_text_is_the_default_input(user, shared_data, golden_tfrecord):
    """No --input-file: the bundled sample text (the original's sample_text.txt), uncased by
    default; with the golden file's --dupe-factor 5 (all else default) the same 60 instances."""
    bundled = resource_path("sample_text.txt").read_bytes()
    assert bundled == (shared_data / "text" / "sample_text.txt").read_bytes()
    run = user.run("make-pretrain-data", "-o", "out/demo.tfrecord", "--dupe-factor", "5")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "out/demo.tfrecord\n"
    assert "bundled sample text" in run.stderr and "Traceback" not in run.stderr
    ours = [decode_example(r) for r in read_records(user.cwd / "out" / "demo.tfrecord")]
    golden = [decode_example(r) for r in read_records(golden_tfrecord)]
    assert len(ours) == len(golden) == 60
    assert ours == golden
    # the output and its hidden manifest (written last: the set is complete), nothing else
    assert sorted(p.name for p in (user.cwd / "out").iterdir()) == [".demo.tfrecord.manifest.json", "demo.tfrecord"]
    assert user.leftovers() == []
