"""CheckpointManager: TF1 layout, slots + global_step round trip, keep-N, kill -9 safety."""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bert_cli.engine.checkpoint_manager import CheckpointManager  # noqa: E402
from bert_cli.errors import CheckpointError, NotFoundError  # noqa: E402

def make_tensors(seed: int = 0) -> dict[str, tf.Variable]:
    """A few TF1-named weights, their Adam slots and a global_step, like a training run's."""
    rng = np.random.default_rng(seed)
    out: dict[str, tf.Variable] = {}
    for name, shape in (
        ("bert/embeddings/word_embeddings", (7, 4)),
        ("bert/encoder/layer_0/attention/self/query/kernel", (4, 4)),
        ("cls/predictions/output_bias", (7,)),
    ):
        out[name] = tf.Variable(rng.normal(size=shape).astype(np.float32))
        out[name + "/adam_m"] = tf.Variable(rng.normal(size=shape).astype(np.float32))
        out[name + "/adam_v"] = tf.Variable(rng.random(size=shape).astype(np.float32))
    out["global_step"] = tf.Variable(0, dtype=tf.int64)
    return out


def snapshot(tensors) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in tensors.items()}


def test_save_restore_round_trip_with_slots_and_global_step(tmp_path):
    tensors = make_tensors()
    tensors["global_step"].assign(7)
    manager = CheckpointManager(tmp_path, tensors)
    path = manager.save(7)
    assert path == str(tmp_path / "model.ckpt-7")
    saved = snapshot(tensors)

    listed = dict(tf.train.list_variables(path))  # TF's own reader, original names
    assert set(listed) == set(tensors)
    assert listed["global_step"] == []
    assert tf.train.load_checkpoint(path).get_variable_to_dtype_map()["global_step"] == tf.int64

    for var in tensors.values():  # clobber everything
        var.assign(tf.zeros_like(var))
    fresh = CheckpointManager(tmp_path, lambda: tensors)  # callable form
    assert fresh.latest() == path
    assert fresh.restore() == 7
    for name, value in saved.items():
        np.testing.assert_array_equal(tensors[name].numpy(), value, err_msg=name)


def test_global_step_written_from_save_argument_when_not_in_mapping(tmp_path):
    tensors = make_tensors()
    del tensors["global_step"]
    path = CheckpointManager(tmp_path, tensors).save(42)
    assert int(tf.train.load_checkpoint(path).get_tensor("global_step")) == 42
    assert CheckpointManager(tmp_path, tensors).restore() == 42


def test_keep_prunes_oldest_and_state_file_lists_the_kept(tmp_path):
    tensors = make_tensors()
    manager = CheckpointManager(tmp_path, tensors, keep=2)
    for step in (1, 2, 3):
        tensors["global_step"].assign(step)
        manager.save(step)
    assert not (tmp_path / "model.ckpt-1.index").exists()
    assert not list(tmp_path.glob("model.ckpt-1.data-*"))
    assert manager.checkpoints == [str(tmp_path / "model.ckpt-2"), str(tmp_path / "model.ckpt-3")]
    # TF's own reader of the state file agrees.
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["model.ckpt-2", "model.ckpt-3"]
    assert '"model.ckpt-2"' in (tmp_path / "checkpoint").read_text()  # relative, like Estimator
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "model.ckpt-3")
    # keep=None keeps everything
    keep_all = CheckpointManager(tmp_path / "all", tensors, keep=None)
    for step in range(1, 8):
        keep_all.save(step)
    assert len(keep_all.checkpoints) == 7


def test_uncommitted_and_temporary_files_are_ignored_and_cleaned(tmp_path):
    tensors = make_tensors()
    tensors["global_step"].assign(1)
    CheckpointManager(tmp_path, tensors).save(1)
    # A complete-looking model.ckpt-2 that the state file never named (crash before the commit)
    for f in tmp_path.glob("model.ckpt-1.*"):
        shutil.copy(f, tmp_path / f.name.replace("ckpt-1", "ckpt-2"))
    # A save cut off while writing its temporary bundle
    (tmp_path / ".model.ckpt-3.tmp-deadbeef.index").write_bytes(b"\0" * 10)
    (tmp_path / ".model.ckpt-3.tmp-deadbeef.data-00000-of-00001").write_bytes(b"\0" * 10)
    manager = CheckpointManager(tmp_path, tensors)
    assert manager.latest() == str(tmp_path / "model.ckpt-1")
    assert not list(tmp_path.glob(".model.ckpt-3.tmp-*"))
    assert manager.restore() == 1


def test_not_chief_writes_nothing(tmp_path):
    manager = CheckpointManager(tmp_path / "out", make_tensors(), is_chief=False)
    assert manager.save(5) is None
    assert not (tmp_path / "out").exists()
    assert manager.latest() is None and manager.restore() is None


def test_restore_refuses_incompatible_checkpoints(tmp_path):
    tensors = make_tensors()
    CheckpointManager(tmp_path, tensors).save(3)
    before = snapshot(tensors)
    extra = dict(tensors, **{"bert/pooler/dense/kernel": tf.Variable(np.ones((4, 4), np.float32))})
    with pytest.raises(CheckpointError, match="not in it: bert/pooler/dense/kernel"):
        CheckpointManager(tmp_path, extra).restore()
    reshaped = dict(tensors, **{"cls/predictions/output_bias": tf.Variable(np.ones((9,), np.float32))})
    reshaped["global_step"].assign(99)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        CheckpointManager(tmp_path, reshaped).restore()
    assert int(tensors["global_step"].numpy()) == 99  # nothing was assigned by the failed restore
    tensors["global_step"].assign(int(before["global_step"]))
    with pytest.raises(NotFoundError):
        CheckpointManager(tmp_path, tensors).restore(str(tmp_path / "model.ckpt-999"))


# The child process gets make_tensors' own source (no test module is imported by another).
KILL_DURING_SAVE = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import tensorflow as tf
    from bert_cli.engine import checkpoint_manager as cm
    """
) + inspect.getsource(make_tensors) + textwrap.dedent(
    """

    out = sys.argv[1]
    tensors = make_tensors()
    manager = cm.CheckpointManager(out, tensors, keep=1)
    tensors["global_step"].assign(1)
    manager.save(1)
    # Second save: data and index are complete, the process dies before the state file commit.
    cm.CheckpointManager._write_state = lambda self, paths: os.kill(os.getpid(), signal.SIGKILL)
    tensors["global_step"].assign(2)
    for var in tensors.values():
        if var.dtype == tf.float32:
            var.assign(var + 1.0)
    manager.save(2)
    print("not reached")
    """
)


def test_kill_9_during_save_keeps_the_previous_checkpoint(tmp_path, repo_root):
    """A real SIGKILL after the new bundle is on disk but before it is committed: the old
    checkpoint is still the latest (and, with keep=1, was not pruned), and restores."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", KILL_DURING_SAVE, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=repo_root,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (out / "model.ckpt-2.index").exists()  # the uncommitted bundle is there...
    tensors = make_tensors()
    expected = snapshot(tensors)
    manager = CheckpointManager(out, tensors, keep=1)
    assert manager.latest() == str(out / "model.ckpt-1")  # ...but never picked up
    for var in tensors.values():
        var.assign(tf.zeros_like(var))
    assert manager.restore() == 1
    for name, value in expected.items():
        if name != "global_step":
            np.testing.assert_array_equal(tensors[name].numpy(), value, err_msg=name)
    # The next save commits normally and prunes the old one.
    manager.save(3)
    assert manager.checkpoints == [str(out / "model.ckpt-3")]
    assert os.path.exists(str(out / "model.ckpt-3.index")) and not (out / "model.ckpt-1.index").exists()
