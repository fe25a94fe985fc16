"""`bert pretrain` scaled out: two worker processes on 127.0.0.1 driven by TF_CONFIG
(MultiWorkerMirroredStrategy) follow the loss curve of one process with the same global batch."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, free_ports

STEPS = 4


def _pretrain(data: Path, config: Path, out: Path, env: dict | None = None, seed: int | None = 3) -> subprocess.Popen:
    args = [
        sys.executable, "-m", "bert_cli", "pretrain", "--input-file", str(data), "--output-dir", str(out),
        "--bert-config-file", str(config), "--do-train", "--num-train-steps", str(STEPS), "--num-warmup-steps", "1",
        "--learning-rate", "1e-3", "--train-batch-size", "8", "--log-every-steps", "1",
        "--device", "cpu", "--precision", "fp32", "--no-xla",
    ] + (["--seed", str(seed)] if seed is not None else [])
    full_env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    full_env.update(env or {})
    return subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _losses(proc: subprocess.Popen) -> tuple[list[float], str]:
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    return [float(x) for x in re.findall(r"^step \d+/\d+\s+loss (\S+)", err, re.M)], err


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "bert_config.json"
    config.write_text(json.dumps({
        "vocab_size": 30522, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 32, "max_position_embeddings": 128, "type_vocab_size": 2,
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
    }))
    return config


def test_two_workers_match_one_process(golden_tfrecord, tmp_path):
    config = _config(tmp_path)
    data = golden_tfrecord
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = [
        _pretrain(data, config, tmp_path / "multi", env={"TF_CONFIG": json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})})
        for i in range(2)
    ]
    (chief, chief_log), (other, _) = [_losses(p) for p in procs]
    single, _ = _losses(_pretrain(data, config, tmp_path / "single"))
    assert "2 workers" in chief_log
    assert len(single) == STEPS and chief == pytest.approx(single, rel=2e-5, abs=1e-5)
    assert (tmp_path / "multi" / f"model.ckpt-{STEPS}.index").is_file()  # the chief wrote the checkpoint


def test_workers_without_a_seed_take_the_chiefs(golden_tfrecord, tmp_path):
    """Each worker draws its own seed when none is given; the cluster must still agree on one
    (the chief's), or the workers' shards of differently shuffled data overlap."""
    config = _config(tmp_path)
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = [
        _pretrain(golden_tfrecord, config, tmp_path / f"worker{i}", seed=None, env={"TF_CONFIG": json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})})
        for i in range(2)
    ]
    (chief, _), _ = [_losses(p) for p in procs]
    seed = json.loads((tmp_path / "worker0" / "seed.json").read_text())["seed"]  # the chief records it
    # one process with the chief's seed sees the same global batches: without the agreement
    # the other worker shuffles with its own draw, and the curves part at the first step
    single, _ = _losses(_pretrain(golden_tfrecord, config, tmp_path / "single", seed=seed))
    assert len(single) == STEPS and chief == pytest.approx(single, rel=2e-5, abs=1e-5)
