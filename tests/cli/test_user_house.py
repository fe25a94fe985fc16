"""House rules as a user meets them: cheap checks run before TensorFlow is loaded, and the
run-folder contract read back by ``bert predict`` (the installed ``bert``, relative paths).

A fake ``tensorflow`` package that refuses to import is put first on ``PYTHONPATH``: any
TensorFlow import on these paths would end in "unexpected ImportError" instead of the error line.
"""

from __future__ import annotations

import os

from conftest import error_line

VOCAB = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n"


def _no_tensorflow(user) -> dict:
    fake = user.cwd / ".." / "fake-tf" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("TensorFlow must not be imported here")\n')
    path = [str(fake.parent.resolve()), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in path if p)}


def test_extract_reports_a_damaged_config_before_loading_tensorflow(user):
    model = user.cwd / "model"
    model.mkdir()
    (model / "vocab.txt").write_text(VOCAB)
    (model / "bert_config.json").write_text('{"hidden_size": 8}\n')
    (model / "model.safetensors").write_bytes(b"not used: the config is refused first")
    (user.cwd / "in.txt").write_text("hello world\n")

    run = user.run("extract", "--model", "model", "in.txt", "-o", "out.jsonl", env=_no_tensorflow(user))

    assert run.returncode == 1, run.stderr
    assert error_line(run.stderr) == "error: model/bert_config.json: bert config: missing required key 'vocab_size'"
    assert run.stdout == ""
    assert not (user.cwd / "out.jsonl").exists() and user.leftovers() == []


def test_predict_names_a_damaged_run_description_before_loading_tensorflow(user):
    run_dir = user.cwd / "run"
    run_dir.mkdir()
    (run_dir / "bert_run.json").write_text('{"task": "mrpc"')  # cut short
    (run_dir / "vocab.txt").write_text(VOCAB)

    run = user.run("predict", "--model", "run", input="hello world\n", env=_no_tensorflow(user))

    assert run.returncode == 1, run.stderr
    assert error_line(run.stderr).startswith("error: run/bert_run.json: not valid JSON")
    assert run.stdout == ""
    assert sorted(p.name for p in run_dir.iterdir()) == ["bert_run.json", "vocab.txt"]
