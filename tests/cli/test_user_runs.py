"""Training runs as users start them: the installed `bert` script, from a temporary working
directory, with relative ``--output-dir`` paths, interrupted for real and rerun.

Covers the run-folder promises: resume (the README's first command included), never a
non-finite checkpoint, a failed run does not claim its folder, one run per folder at a time,
kill -9 / Ctrl-C at any moment and a rerun ends where an uninterrupted run ends.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import checkpoint_state, error_line, read_tensors, wait_for


# dropout off: a resumed run is then bit-for-bit the uninterrupted one (dropout masks are not
# part of a checkpoint, as in the original Estimator)
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
TINY_PRETRAIN_CONFIG = {
    "vocab_size": 30522, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
    "intermediate_size": 32, "max_position_embeddings": 64, "type_vocab_size": 2, **NO_DROPOUT,
}


# ----------------------------------------------------------------------------- pretraining


@pytest.fixture(scope="module")
def pretrain_data(tmp_path_factory) -> Path:
    """A small pretraining TFRecord from the bundled sample text (seq 64, 10 predictions)."""
    from conftest import User

    user = User(tmp_path_factory.mktemp("data"))
    out = user.run("make-pretrain-data", "-o", "d.tfrecord", "--max-seq-length", "64",
                   "--max-predictions-per-seq", "10", "--dupe-factor", "2")
    assert out.returncode == 0, out.stderr
    return user.cwd / "d.tfrecord"


def pretrain_args(steps: int, *extra: str) -> list[str]:
    return ["pretrain", "-i", "data/d.tfrecord", "-o", "runs/run", "--bert-config-file", "data/tiny.json",
            "--max-seq-length", "64", "--max-predictions-per-seq", "10", "--train-batch-size", "8",
            "--learning-rate", "1e-3", "--num-warmup-steps", "2", "--num-train-steps", str(steps), "--seed", "1",
            "--device", "cpu", "--do-train", *extra]


@pytest.fixture
def pretrain_user(user, pretrain_data):
    (user.cwd / "data").mkdir()
    os.symlink(pretrain_data, user.cwd / "data" / "d.tfrecord")
    (user.cwd / "data" / "tiny.json").write_text(json.dumps(TINY_PRETRAIN_CONFIG))
    return user


def test_readme_first_command_resumes_for_real_and_its_figures_hold(user, repo_root):
    """The README's first command, as written (after the install), from a fresh folder."""
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    line = next(ln for ln in readme.splitlines() if ln.startswith("python3 -m venv") and "bert pretrain" in ln)
    command = line.split("pip install -e . && ", 1)[1]
    promised = re.search(r"about ([0-9.]+) -> ([0-9.]+)", readme)
    assert promised, "the README states the MLM accuracy figures of its first command"
    env = dict(user.env, PATH=f"{Path(user.exe).parent}{os.pathsep}{os.environ['PATH']}")
    out = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=user.cwd, env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    accuracies = [float(x) for x in re.findall(r"^masked_lm_accuracy = ([0-9.]+)$", out.stdout, re.M)]
    assert len(accuracies) == 2, out.stdout
    run = user.cwd / "demo" / "run"
    # the second leg resumed from the first leg's checkpoint and trained steps 151-300
    assert re.search(r"^resuming from \S*demo/run/model\.ckpt-150 \(global_step 150\)$", out.stderr, re.M), out.stderr
    assert "step 300/300" in out.stderr and "step 100/300" not in out.stderr
    assert checkpoint_state(run) == ["model.ckpt-150", "model.ckpt-300"]
    assert "global_step = 300" in (run / "eval_results.txt").read_text()
    # the figures the README promises (MLM accuracy after each leg), within run-to-run noise
    for got, stated in zip(accuracies, map(float, promised.groups())):
        assert abs(got - stated) <= 0.05, (accuracies, promised.groups())
    assert accuracies[1] > accuracies[0] + 0.05


def test_pretrain_kill_9_then_rerun_equals_an_uninterrupted_run(pretrain_user):
    user = pretrain_user
    steps = 24
    full = user.run(*pretrain_args(steps, "--save-checkpoints-steps", "4"))
    assert full.returncode == 0, full.stderr
    os.rename(user.cwd / "runs" / "run", user.cwd / "runs" / "full")

    proc = user.popen(*pretrain_args(steps, "--save-checkpoints-steps", "4"))
    run = user.cwd / "runs" / "run"
    wait_for(lambda: any(int(p.rsplit("-", 1)[1]) >= 8 for p in checkpoint_state(run)), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cut = max(int(p.rsplit("-", 1)[1]) for p in checkpoint_state(run))
    assert cut < steps, "the run was killed before its end"

    again = user.run(*pretrain_args(steps, "--save-checkpoints-steps", "4"))
    assert again.returncode == 0, again.stderr
    assert re.search(rf"resuming from \S*runs/run/model\.ckpt-{cut} ", again.stderr), again.stderr
    ours = read_tensors(run / f"model.ckpt-{steps}")
    reference = read_tensors(user.cwd / "runs" / "full" / f"model.ckpt-{steps}")
    assert ours.keys() == reference.keys()
    for name in reference:
        np.testing.assert_array_equal(ours[name], reference[name], err_msg=name)
    assert user.leftovers() == []


def test_pretrain_never_checkpoints_a_diverged_run(pretrain_user):
    user = pretrain_user
    out = user.run(*pretrain_args(6, "--learning-rate", "1e30", "--save-checkpoints-steps", "1"))
    assert out.returncode == 1
    line = error_line(out.stderr)
    assert re.search(r"not finite at step \d|loss is (nan|inf) at step \d", line), line
    run = user.cwd / "runs" / "run"
    saved = checkpoint_state(run)
    assert ("no checkpoint was written" in line) == (saved == [])
    if saved:
        assert f"last good checkpoint is {run / saved[-1]}" in line
    for prefix in saved:  # every checkpoint that exists is finite
        assert all(np.isfinite(v).all() for v in read_tensors(run / prefix).values() if v.dtype.kind == "f")
    assert not any(run.glob("model.ckpt-6.*"))


def test_one_run_per_folder_and_the_lock_dies_with_its_holder(pretrain_user):
    user = pretrain_user
    first = user.popen(*pretrain_args(100000, "--save-checkpoints-steps", "5"))
    run = user.cwd / "runs" / "run"
    wait_for(lambda: bool(checkpoint_state(run)), first)
    second = user.run(*pretrain_args(10))
    assert second.returncode == 2
    line = error_line(second.stderr)
    assert f"is in use by another run (pid {first.pid} " in line and "bert pretrain" in line, line
    first.send_signal(signal.SIGKILL)
    first.wait()
    # kill -9 released the lock: the next run takes the folder and resumes
    third = user.run(*pretrain_args(int(checkpoint_state(run)[-1].rsplit("-", 1)[1]) + 2))
    assert third.returncode == 0, third.stderr
    assert "resuming from" in third.stderr


# ----------------------------------------------------------------------------- SQuAD


def test_squad_kill_9_then_rerun_equals_an_uninterrupted_run(user, shared_data, uncased_vocab):
    data = shared_data / "squad" / "subsets" / "allennlp-models_squad.json"
    if not data.is_file():
        pytest.skip(f"{data} not found")
    (user.cwd / "tiny.json").write_text(json.dumps({**TINY_PRETRAIN_CONFIG, "max_position_embeddings": 128,
                                                     "hidden_size": 16}))
    vocab = uncased_vocab

    def args(out: str) -> list[str]:
        return ["finetune", "squad", "--train-file", user.rel(data), "--vocab-file", user.rel(vocab),
                "--bert-config-file", "tiny.json", "-o", out, "--do-train", "--first-answer-only",
                "--max-seq-length", "128", "--doc-stride", "64", "--max-query-length", "32",
                "--train-batch-size", "2", "--num-train-epochs", "12", "--learning-rate", "2e-3",
                "--save-checkpoints-steps", "5", "--seed", "1", "--device", "cpu"]

    full = user.run(*args("full"))
    assert full.returncode == 0, full.stderr
    final = max(int(p.rsplit("-", 1)[1]) for p in checkpoint_state(user.cwd / "full"))
    proc = user.popen(*args("run"))
    run = user.cwd / "run"
    wait_for(lambda: any(int(p.rsplit("-", 1)[1]) >= 10 for p in checkpoint_state(run)), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cut = max(int(p.rsplit("-", 1)[1]) for p in checkpoint_state(run))
    assert cut < final
    again = user.run(*args("run"))
    assert again.returncode == 0, again.stderr
    assert re.search(rf"resuming from \S*run/model\.ckpt-{cut}\b", again.stderr), again.stderr
    ours, reference = read_tensors(run / f"model.ckpt-{final}"), read_tensors(user.cwd / "full" / f"model.ckpt-{final}")
    for name in reference:
        np.testing.assert_array_equal(ours[name], reference[name], err_msg=name)
