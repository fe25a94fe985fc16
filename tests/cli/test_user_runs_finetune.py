"""Fine-tuning runs as users start them: the installed `bert`, relative ``--output-dir``,
resumed, pruned, refused, and interrupted for real (kill -9, Ctrl-C, SIGTERM) then rerun to
the same weights as an uninterrupted run. (Split from ``test_user_runs.py`` so that the two
halves run on different test workers.)"""

from __future__ import annotations

import json
import re
import signal

import numpy as np
import pytest

from conftest import checkpoint_state, error_line, read_tensors, wait_for

# dropout off: a resumed run is then bit-for-bit the uninterrupted one
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


# ----------------------------------------------------------------------------- fine-tuning


def finetune_args(*extra: str) -> list[str]:
    return ["finetune", "mrpc", "--data-dir", "task/data", "--vocab-file", "task/vocab.txt",
            "--bert-config-file", "task/bert_config.json", "-o", "run", "--max-seq-length", "24",
            "--train-batch-size", "16", "--learning-rate", "3e-3", "--seed", "1", "--device", "cpu", *extra]


def test_finetune_relative_output_dir_resumes_prunes_and_evaluates_the_trained_weights(user, task_maker):
    task_maker(user.cwd / "task")
    first = user.run(*finetune_args("--do-train", "--num-train-epochs", "1", "--save-checkpoints-steps", "4",
                                    "--keep-checkpoints", "2"))
    assert first.returncode == 0, first.stderr
    assert checkpoint_state(user.cwd / "run") == ["model.ckpt-12", "model.ckpt-16"]
    second = user.run(*finetune_args("--do-train", "--do-eval", "--num-train-epochs", "3",
                                     "--save-checkpoints-steps", "4", "--keep-checkpoints", "2", "--json"))
    assert second.returncode == 0, second.stderr
    assert re.search(r"^resuming from \S*run/model\.ckpt-16 \(step 16 of 48\)$", second.stderr, re.M), second.stderr
    assert checkpoint_state(user.cwd / "run") == ["model.ckpt-44", "model.ckpt-48"]
    trained = json.loads(second.stdout)
    assert trained["global_step"] == 48 and trained["eval_accuracy"] >= 0.9
    # evaluating alone scores the trained checkpoint, not the init weights with a random head
    (user.cwd / "run" / "eval_results.txt").unlink()
    alone = user.run(*finetune_args("--do-eval", "--json"))
    assert alone.returncode == 0, alone.stderr
    assert re.search(r"^evaluating \S*run/model\.ckpt-48$", alone.stderr, re.M), alone.stderr
    evaluated = json.loads(alone.stdout)
    assert evaluated["global_step"] == 48
    assert evaluated["eval_accuracy"] == pytest.approx(trained["eval_accuracy"])
    assert "global_step = 48" in (user.cwd / "run" / "eval_results.txt").read_text()


def test_evaluating_a_folder_with_nothing_trained_is_refused(user, task_maker):
    task_maker(user.cwd / "task")
    out = user.run(*finetune_args("--do-eval"))
    assert out.returncode == 2
    assert "nothing trained to evaluate" in error_line(out.stderr)
    assert not (user.cwd / "run" / "eval_results.txt").exists()


def test_a_failed_finetune_does_not_claim_its_folder(user, task_maker):
    task_maker(user.cwd / "task")
    bad = user.run(*finetune_args("--do-train", "--train-batch-size", "512", "--num-train-epochs", "1", "--max-seq-length", "20"))
    assert bad.returncode == 2
    assert "0 training steps" in error_line(bad.stderr)
    fixed = user.run(*finetune_args("--do-train", "--max-steps", "2"))
    assert fixed.returncode == 0, fixed.stderr
    assert checkpoint_state(user.cwd / "run") == ["model.ckpt-2"]


INTERRUPTED_ARGS = ("--do-train", "--num-train-epochs", "2", "--save-checkpoints-steps", "4")


@pytest.fixture(scope="module")
def uninterrupted_finetune(tmp_path_factory, task_maker) -> dict[str, np.ndarray]:
    """The final checkpoint of the same fine-tune run without interruption (built once)."""
    from conftest import User

    user = User(tmp_path_factory.mktemp("uninterrupted"))
    task_maker(user.cwd / "task", **NO_DROPOUT)
    full = user.run(*finetune_args(*INTERRUPTED_ARGS))
    assert full.returncode == 0, full.stderr
    return read_tensors(user.cwd / "run" / "model.ckpt-32")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["kill-9", "ctrl-c", "sigterm"])
def test_finetune_interrupted_then_rerun_equals_an_uninterrupted_run(user, task_maker, uninterrupted_finetune, sig):
    task_maker(user.cwd / "task", **NO_DROPOUT)
    args = finetune_args(*INTERRUPTED_ARGS)
    proc = user.popen(*args)
    run = user.cwd / "run"
    wait_for(lambda: any(int(p.rsplit("-", 1)[1]) >= 8 for p in checkpoint_state(run)), proc)
    proc.send_signal(sig)
    rc = proc.wait(timeout=60)
    if sig != signal.SIGKILL:  # Ctrl-C and SIGTERM (timeout, schedulers): exit 130, cleanly
        assert rc == 130
        stderr = proc.stderr.read().decode()
        assert "Traceback" not in stderr
        assert stderr.splitlines()[-2:] == ["error: interrupted",
                                            "hint: rerun the same command: it resumes from the run's last "
                                            "checkpoint, or starts over if none was saved"], stderr
        # the steps run since the last periodic checkpoint are saved, not lost
        saved = re.search(r"^interrupted at step (\d+): (?:saved run/)?model\.ckpt-(\d+)", stderr, re.M)
        assert saved and saved[1] == saved[2] and int(saved[1]) >= 8, stderr
        assert checkpoint_state(run)[-1] == f"model.ckpt-{saved[1]}"
    assert user.leftovers() == []
    again = user.run(*args)
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stderr
    if sig != signal.SIGKILL:
        assert re.search(rf"^resuming from run/model\.ckpt-{saved[1]} \(step {saved[1]} of 32\)$", again.stderr,
                         re.M), again.stderr
    ours = read_tensors(run / "model.ckpt-32")
    assert ours.keys() == uninterrupted_finetune.keys()
    for name, reference in uninterrupted_finetune.items():
        np.testing.assert_array_equal(ours[name], reference, err_msg=name)
