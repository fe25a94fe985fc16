"""Shared fixtures. Tests that read ../shared/data skip, with a reason, when it is absent."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
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
    The environment has no ``BERT_*`` settings and no ``TF_CPP_MIN_LOG_LEVEL``, a private cache (``.cache`` in ``cwd``) and no
    colour, so stderr's first line is exactly what a user reads.
    """

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.exe = bert_executable()
        # A user's shell, not this test process's: no BERT_* settings, and no TF_CPP_MIN_LOG_LEVEL
        # (set here when a test imported the engine in-process; a user who sets it asks for logs).
        env = {k: v for k, v in os.environ.items()
               if (not k.startswith("BERT_") or k == "BERT_SHARED_DATA") and k != "TF_CPP_MIN_LOG_LEVEL"}
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


# --- a tiny separable classification task (MRPC format, small vocab, random-init model) -------

TASK_FILLER = "the cat dog sat on mat a big small red blue house tree runs jumps over under near far old new".split()
TASK_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + TASK_FILLER + ["great", "awful"]
TASK_CONFIG = dict(
    vocab_size=len(TASK_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    max_position_embeddings=64, type_vocab_size=2,
)


def make_task_dir(root: Path, seed: int = 0, n_train: int = 256, n_dev: int = 64, n_test: int = 32,
                  **config_changes) -> Path:
    """``root/{vocab.txt,bert_config.json,data/{train,dev,test}.tsv}``: MRPC-format files where
    label 1 <=> sentence A contains "great" (else "awful"); a model learns it in a few steps."""
    import json
    import random

    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "vocab.txt").write_text("\n".join(TASK_VOCAB) + "\n", encoding="utf-8")
    (root / "bert_config.json").write_text(json.dumps({**TASK_CONFIG, **config_changes}), encoding="utf-8")

    def sentence(key: str) -> str:
        words = [rng.choice(TASK_FILLER) for _ in range(rng.randint(4, 10))]
        words.insert(rng.randint(0, len(words)), key)
        return " ".join(words)

    def rows(n: int) -> list[tuple[str, ...]]:
        out = []
        for i in range(n):
            label = rng.randint(0, 1)
            b = " ".join(rng.choice(TASK_FILLER) for _ in range(6))
            out.append((str(label), str(i), str(i + 1), sentence("great" if label else "awful"), b))
        return out

    data = root / "data"
    data.mkdir(exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        lines = ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"] + ["\t".join(r) for r in rows(n)]
        (data / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    test = ["index\t#1 ID\t#2 ID\t#1 String\t#2 String"] + [
        "\t".join((str(i),) + r[1:]) for i, r in enumerate(rows(n_test))
    ]
    (data / "test.tsv").write_text("\n".join(test) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def task_maker():
    """:func:`make_task_dir`, for tests that build the tiny classification task."""
    return make_task_dir


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


# === shared paths, tokenizer and models (one copy each; wt-hyg) ==============================

GOLDEN_NAME = "pretraining-golden/sample_text.uncased.seq128.pred20.mlm015.seed12345.dupe5.tfrecord"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout's root folder (holds bert_cli/, tests/, README.md)."""
    return ROOT


@pytest.fixture(scope="session")
def golden_tfrecord(shared_data) -> Path:
    """The ORIGINAL create_pretraining_data.py's output on text/sample_text.txt (uncased vocab,
    lower case, seq 128, 20 predictions, mlm 0.15, short 0.1, seed 12345, dupe 5): 60 examples."""
    path = shared_data / GOLDEN_NAME
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def uncased_vocab(shared_data) -> Path:
    """Google's BERT-Base Uncased vocab.txt from the reference data (30522 lines)."""
    return shared_data / "vocab" / "uncased" / "vocab.txt"


@pytest.fixture(scope="session")
def uncased_tokenizer():
    """``FullTokenizer`` over the packaged uncased vocab (identical to Google's), lower-casing."""
    from bert_cli.text.tokenization import FullTokenizer
    from bert_cli.text.vocab import packaged_vocab_path

    return FullTokenizer(packaged_vocab_path(), do_lower_case=True)


@pytest.fixture(scope="session")
def minilm_model(minilm):
    """``(config, model, report)``: the real MiniLM weights loaded by the engine (TensorFlow)."""
    pytest.importorskip("tensorflow")
    from bert_cli.engine import hf_weights

    return hf_weights.load_hf_model(minilm)


@pytest.fixture(scope="session")
def minilm_transformers(minilm):
    """transformers' own ``BertModel`` of the real MiniLM (eager attention, eval mode)."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("torch")
    theirs = transformers.BertModel.from_pretrained(str(minilm), attn_implementation="eager")
    theirs.eval()
    return theirs


# === a tiny SQuAD model (random init, the packaged uncased vocab; wt-hyg) =====================

SQUAD_TINY_CONFIG = dict(
    vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    max_position_embeddings=128, type_vocab_size=2,
)


# === an independent SQuAD 2.0 evaluation (evaluate-v2.0.py restated in numpy; wt-hyg) =========


def reference_squad_v2(qas: list[dict], predictions: dict, null_odds: dict, na_prob_thresh: float = 1.0) -> dict:
    """The official v2.0 metrics of ``predictions`` with ``null_odds`` as its na-prob file, computed
    apart from bert_cli: own normalisation and token F1, no-answer scoring above ``na_prob_thresh``,
    and the best thresholds by brute force over every odds value (answered iff odds <= t; the
    first strict maximum wins, as the official walk; tied odds aside). ``qas``: the data set's
    questions in order (``squad_metrics.iter_questions``)."""
    import collections
    import re
    import string

    import numpy as np

    table = str.maketrans("", "", string.punctuation)

    def norm(s):
        return " ".join(re.sub(r"\b(?:a|an|the)\b", " ", s.lower().translate(table)).split())

    def f1(gold, pred):
        g, p = norm(gold).split(), norm(pred).split()
        if not g or not p:
            return float(g == p)
        same = sum((collections.Counter(g) & collections.Counter(p)).values())
        return 0.0 if same == 0 else 2 * same / (len(g) + len(p))

    preds = [predictions[qa["id"]] for qa in qas]
    has = np.array([bool(qa["answers"]) for qa in qas])
    golds = [[a["text"] for a in qa["answers"] if norm(a["text"])] or [""] for qa in qas]
    raw = {
        "exact": np.array([max(float(norm(g) == norm(p)) for g in gs) for gs, p in zip(golds, preds)]),
        "f1": np.array([max(f1(g, p) for g in gs) for gs, p in zip(golds, preds)]),
    }
    na = np.array([float(null_odds[qa["id"]]) for qa in qas])
    nonempty = np.array([bool(p) for p in preds])
    out: dict = {}
    scored = {k: np.where(na > na_prob_thresh, (~has).astype(float), v) for k, v in raw.items()}
    for prefix, rows in (("", slice(None)), ("HasAns_", has), ("NoAns_", ~has)):
        if prefix and not np.asarray(rows).any():
            continue
        out[f"{prefix}exact"] = 100.0 * scored["exact"][rows].mean()
        out[f"{prefix}f1"] = 100.0 * scored["f1"][rows].mean()
        out[f"{prefix}total"] = int(np.ones(len(qas))[rows].sum())
    for key in ("exact", "f1"):
        answered = np.where(has, raw[key], np.where(nonempty, 0.0, 1.0))
        null = (~has).astype(float)
        best, best_t = null.sum(), 0.0
        for t in np.sort(na):
            score = np.where(na <= t, answered, null).sum()
            if score > best + 1e-9:
                best, best_t = score, float(t)
        out[f"best_{key}"] = 100.0 * best / len(qas)
        out[f"best_{key}_thresh"] = best_t
    return out


# === the download tests' local HTTP server (tests/download_server.py; wt-hyg) ================


@pytest.fixture
def server():
    """A started :class:`download_server.FakeServer` on 127.0.0.1 (closed after the test)."""
    from download_server import FakeServer

    srv = FakeServer()
    yield srv
    srv.close()


# -- training runs: checkpoint state, tensors, waiting on a running `bert` -------------------------


def checkpoint_state(run: Path) -> list[str]:
    """Prefixes listed in the ``checkpoint`` state file (all_model_checkpoint_paths)."""
    if not (run / "checkpoint").is_file():
        return []
    return re.findall(r'all_model_checkpoint_paths: "([^"]+)"', (run / "checkpoint").read_text())


def read_tensors(prefix: Path) -> dict[str, np.ndarray]:
    tf = pytest.importorskip("tensorflow")
    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def wait_for(predicate, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"bert ended early (rc {proc.returncode}): {proc.stderr.read().decode()[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("condition not met in time")
