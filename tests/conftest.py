"""Shared fixtures. Tests that read ../shared/data skip, with a reason, when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# bert_cli.engine switches TensorFlow's oneDNN kernels on before importing it; tests that import
# TensorFlow first must get the same kernels.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

SHARED_DATA = Path(os.environ.get("BERT_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the real reference data; skips the test when it is not beside the checkout."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (set BERT_SHARED_DATA)")
    return SHARED_DATA


def free_ports(n: int) -> list[int]:
    """``n`` TCP ports on 127.0.0.1 that were free a moment ago (for multi-process tests)."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# --- the user harness: the installed `bert` script, run from a temporary working directory ----


def bert_executable() -> str:
    """The installed ``bert`` console script of the interpreter running the tests."""
    import shutil
    import sys

    beside = Path(sys.executable).parent / "bert"
    if beside.is_file():
        return str(beside)
    found = shutil.which("bert")
    if found is None:
        pytest.skip("the `bert` console script is not installed (pip install -e .)")
    return found


class User:
    """Runs ``bert`` as a user types it: the installed script, in ``cwd``, with relative paths.

    ``run`` returns the CompletedProcess; ``popen`` starts it for interruption tests.
    ``rel(path)`` turns any path (e.g. under ``../shared``) into one relative to ``cwd``.
    The environment has no ``BERT_DEBUG``, a private cache (``.cache`` in ``cwd``) and no
    colour, so stderr's first line is exactly what a user reads.
    """

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.exe = bert_executable()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BERT_") or k == "BERT_SHARED_DATA"}
        env.update(NO_COLOR="1", BERT_CACHE=str(cwd / ".cache"), PYTHONUNBUFFERED="1", COLUMNS="200")
        self.env = env

    def rel(self, path: str | os.PathLike) -> str:
        return os.path.relpath(Path(path).resolve(), self.cwd)

    def _env(self, env: dict | None) -> dict:
        full = dict(self.env)
        full.update(env or {})
        return full

    def run(self, *args: str, input: str | bytes | None = None, env: dict | None = None, timeout: float = 600):
        import subprocess

        return subprocess.run(
            [self.exe, *map(str, args)], input=input, capture_output=True, text=not isinstance(input, bytes),
            env=self._env(env), timeout=timeout, cwd=self.cwd,
        )

    def popen(self, *args: str, env: dict | None = None, **kwargs):
        import subprocess

        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen([self.exe, *map(str, args)], cwd=self.cwd, env=self._env(env), **kwargs)

    def leftovers(self, folder: str | os.PathLike = ".") -> list[str]:
        """Hidden temporary files (``.*.tmp*``) anywhere under ``folder`` (relative to cwd)."""
        root = self.cwd / folder
        return sorted(str(p.relative_to(self.cwd)) for p in root.rglob(".*") if ".tmp" in p.name)


def error_line(stderr: str) -> str:
    """The ``error: ...`` line of a failed run; fails the test on a traceback or 'unexpected'."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert lines, f"no error: line in stderr:\n{stderr}"
    assert "unexpected" not in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def user(tmp_path) -> User:
    """A :class:`User` whose working directory is a fresh temporary folder."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    return User(cwd)


@pytest.fixture(scope="session")
def minilm(shared_data) -> Path:
    """The real all-MiniLM-L6-v2 folder exactly as shipped (no vocab.txt)."""
    path = shared_data / "hf" / "all-MiniLM-L6-v2"
    if not (path / "model.safetensors").is_file():
        pytest.skip(f"MiniLM weights not found at {path}")
    return path


@pytest.fixture(scope="session")
def squad2_subset(shared_data, tmp_path_factory) -> Path:
    """The real SQuAD 2.0 excerpt (squad/subsets/allennlp-models_squad2.json) with unique question ids.

    As shipped, its unanswerable question reuses the id of an answerable one; `bert` refuses
    duplicate ids (predictions and scores are keyed by id), so this copy gives the unanswerable
    question its own id (``<id>-unanswerable``); all else is the real file's content.
    """
    import json

    source = shared_data / "squad" / "subsets" / "allennlp-models_squad2.json"
    if not source.is_file():
        pytest.skip(f"{source} not found")
    data = json.loads(source.read_text(encoding="utf-8"))
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if qa.get("is_impossible"):
                    qa["id"] = f"{qa['id']}-unanswerable"
    path = tmp_path_factory.mktemp("squad2") / "allennlp-models_squad2.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
