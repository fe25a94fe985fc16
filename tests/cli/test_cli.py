"""The CLI conventions: no TensorFlow at start-up, error mapping, exit codes, completion."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import pytest
from conftest import ROOT

HEAVY = ("tensorflow", "keras", "torch", "transformers")


def run_bert(*args: str, input: str | bytes | None = None, env: dict | None = None, timeout: float = 60):
    full_env = {k: v for k, v in os.environ.items() if k != "BERT_DEBUG"}
    full_env.update(env or {})
    text = not isinstance(input, bytes)
    return subprocess.run(
        [sys.executable, "-m", "bert_cli", *args],
        input=input,
        capture_output=True,
        text=text,
        env=full_env,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.mark.parametrize("argv", [
    ["--help"], ["tokenize", "--help"], ["tokenize"],
    # a usage error is two lines at once, not a TensorFlow start-up first
    ["finetune", "mrpc", "--data-dir", "nowhere", "-o", "ft", "--do-train", "--learning-rate", "0"],
    ["finetune", "ner", "--data-dir", "nowhere", "-o", "ft", "--do-train", "--train-batch-size", "0"],
    ["pretrain", "-i", "nowhere.tfrecord", "-o", "pt", "--do-train", "--learning-rate", "0"],
])
def test_no_heavy_imports_at_cli_start(argv):
    """`bert --help`, `bert tokenize --help`, `bert tokenize` and usage errors of the training
    commands never import TensorFlow."""
    code = (
        "import io, sys\n"
        "sys.stdin = io.TextIOWrapper(io.BytesIO(b'hello world\\n'))\n"
        "from bert_cli.cli.app import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert "HEAVY=\n" in out.stderr or out.stderr.rstrip().endswith("HEAVY="), out.stderr


def test_help_lists_registered_commands_and_version():
    out = run_bert("--help")
    assert out.returncode == 0
    assert "tokenize" in out.stdout
    ver = run_bert("--version")
    from bert_cli import __version__

    assert ver.returncode == 0 and ver.stdout.strip() == f"bert {__version__}"


def test_missing_vocab_is_exit_3_with_error_and_hint(tmp_path):
    out = run_bert("tokenize", "--vocab-file", str(tmp_path / "nope.txt"), input="hi\n")
    assert out.returncode == 3
    assert out.stderr.startswith("error: ")
    assert "nope.txt" in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stdout == ""


def test_missing_input_file_is_exit_3(tmp_path):
    out = run_bert("tokenize", str(tmp_path / "missing.txt"))
    assert out.returncode == 3
    assert "missing.txt" in out.stderr and "Traceback" not in out.stderr


def test_usage_error_is_exit_2():
    out = run_bert("tokenize", "--format", "nope", input="hi\n")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr


def test_bert_debug_shows_traceback(tmp_path):
    out = run_bert("tokenize", "--vocab-file", str(tmp_path / "nope.txt"), input="hi\n", env={"BERT_DEBUG": "1"})
    assert out.returncode != 0
    assert "Traceback" in out.stderr


def test_interrupt_exits_130():
    """Ctrl-C while `bert tokenize` waits on stdin: exit 130, no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bert_cli", "tokenize"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    proc.stdin.write(b"hello world\n")
    proc.stdin.flush()
    first = proc.stdout.readline()  # streaming: the first line comes before the input ends
    assert first == b"hello world\n"
    proc.send_signal(signal.SIGINT)
    try:
        rc = proc.wait(timeout=30)
    finally:
        proc.kill()
    assert rc == 130
    assert b"Traceback" not in proc.stderr.read()


def test_completion_scripts_are_current():
    sys.path.insert(0, str(ROOT / "completions"))
    try:
        import generate
    finally:
        sys.path.pop(0)
    for shell, name in generate.FILES.items():
        committed = (ROOT / "completions" / name).read_text()
        assert committed == generate.script(shell), f"completions/{name} is stale: run python completions/generate.py"


def test_completion_completes_commands_and_options():
    env = dict(os.environ, _BERT_COMPLETE="complete_bash", COMP_WORDS="bert tok", COMP_CWORD="1")
    out = subprocess.run([sys.executable, "-m", "bert_cli"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert "tokenize" in out.stdout.split()
    env.update(COMP_WORDS="bert tokenize --fo", COMP_CWORD="2")
    out = subprocess.run([sys.executable, "-m", "bert_cli"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert "--format" in out.stdout.split()
    env.update(COMP_WORDS="bert tokenize --format ", COMP_CWORD="3")
    out = subprocess.run([sys.executable, "-m", "bert_cli"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert set(out.stdout.split()) >= {"tokens", "ids", "jsonl"}


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = "python -m pytest -q"
    assert test_cmd in readme
    assert ci.rstrip().splitlines()[-1] == test_cmd
