"""The one training driver on a toy task: counting, checkpoints, resume, evaluation, NaN guard.

The commands' own tests (pretrain, finetune, SQuAD, NER) run it on BERT; here a two-weight
linear model makes every number checkable by hand.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bert_cli import rundir  # noqa: E402
from bert_cli.engine.checkpoint import read_checkpoint  # noqa: E402
from bert_cli.engine.device import select_runtime  # noqa: E402
from bert_cli.engine.driver import Driver, Evaluation, TrainOptions  # noqa: E402
from bert_cli.errors import TrainingDivergedError, UsageError  # noqa: E402


class Toy(tf.Module):
    def __init__(self) -> None:
        super().__init__(name="toy")
        self.w = tf.Variable([0.0, 0.0], name="w")

    def tf1_variables(self):
        return {"toy/w": self.w}

    def loss(self, batch, training):
        pred = tf.reduce_sum(batch["x"] * self.w, axis=-1)
        return tf.reduce_mean(tf.square(pred - batch["y"]))


def stream(skip: int, *, poison_at: int | None = None) -> tf.data.Dataset:
    """Micro-batch i (of 2 examples) is a function of i alone; ``poison_at`` makes one NaN."""

    def batch(i):
        x = tf.stack([tf.cast(i % 3, tf.float32) + 1.0, 1.0])
        x = tf.stack([x, x * 0.5])
        y = tf.reduce_sum(x * tf.constant([2.0, -1.0]), axis=-1)
        if poison_at is not None:
            y = tf.where(tf.equal(i, poison_at), tf.constant(np.nan, tf.float32), y)
        return {"x": x, "y": y}

    return tf.data.Dataset.range(skip, 10**6).map(batch)


def make(tmp_path, steps: int = 6, *, k: int = 1, save: int = 2, log: int = 1):
    runtime = select_runtime("cpu", "fp32", False, 0)
    with runtime.scope():
        model = Toy()
    options = TrainOptions(learning_rate=0.05, num_train_steps=steps, num_warmup_steps=0, micro_batch_size=2,
                           accumulation_steps=k, save_checkpoints_steps=save, keep_checkpoint_max=None,
                           optimizer="adamw", log_every_steps=log, examples_per_epoch=8, epochs=steps * 2 * k / 8)
    return Driver(runtime, model, model.loss, options, tmp_path / "run"), model


def test_counts_checkpoints_and_reports(tmp_path):
    driver, model = make(tmp_path, steps=5, k=2, save=2, log=2)
    events: list[dict] = []
    summary = driver.train(stream, events.append)
    assert summary["steps_run"] == 5 and driver.global_step == 5
    assert [e["step"] for e in events if e["phase"] == "train"] == [2, 4, 5]
    assert [e["step"] for e in events if e["phase"] == "checkpoint"] == [2, 4, 5]
    last = [e for e in events if e["phase"] == "train"][-1]
    assert last["epoch"] == pytest.approx(5 * 4 / 8) and last["eta_s"] == 0
    saved = read_checkpoint(str(tmp_path / "run" / "model.ckpt-5"), ["toy/w", "global_step"])
    assert int(saved["global_step"]) == 5
    np.testing.assert_array_equal(saved["toy/w"], model.w.numpy())
    assert abs(summary["final_loss"]) < 50 and summary["examples_per_s"] > 0


def test_resume_continues_the_stream_exactly(tmp_path):
    straight, model_a = make(tmp_path / "a", steps=6, save=3)
    straight.train(stream)

    class Killed(Exception):
        pass

    def kill_at_4(event):
        if event["phase"] == "train" and event["step"] == 4:
            raise Killed  # step 4 ran, its checkpoint was never written

    first, _ = make(tmp_path / "b", steps=6, save=3)
    with pytest.raises(Killed):
        first.train(stream, kill_at_4)
    resumed, model_b = make(tmp_path / "b", steps=6, save=3)
    assert resumed.restore() == 3
    events: list[dict] = []
    resumed.train(stream, events.append)
    assert [e["step"] for e in events if e["phase"] == "train"] == [4, 5, 6]
    np.testing.assert_array_equal(model_a.w.numpy(), model_b.w.numpy())


def test_early_stopping_keeps_the_best_and_a_rerun_does_not_train_on(tmp_path):
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.1, 0.9])
    best: list[int] = []

    def evaluation(directory):
        return Evaluation(evaluate=lambda step: {"eval_f1": next(scores), "global_step": step},
                          due=lambda step: True, tracker=rundir.BestTracker.load(directory, "eval_f1"),
                          state_dir=directory, on_best=lambda step, results: best.append(step), patience=2)

    driver, _ = make(tmp_path, steps=6)
    summary = driver.train(stream, evaluation=evaluation(tmp_path))
    assert best == [1, 2] and summary["stopped_early"] and driver.global_step == 4
    assert summary["best"] == {"metric": "eval_f1", "value": 0.7, "step": 2}
    assert (tmp_path / "run" / "model.ckpt-4.index").is_file()  # the stopping step is saved
    state = json.loads((tmp_path / rundir.STATE_FILE).read_text())
    assert state["stopped_early"] and state["best_step"] == 2

    again, _ = make(tmp_path, steps=6)
    again.restore()
    assert again.train(stream, evaluation=evaluation(tmp_path))["steps_run"] == 0


def test_a_diverged_loss_stops_before_it_is_checkpointed(tmp_path):
    driver, _ = make(tmp_path, steps=6, save=2)
    with pytest.raises(TrainingDivergedError, match="step 3"):
        driver.train(lambda skip: stream(skip, poison_at=2))
    assert sorted(p.name for p in (tmp_path / "run").glob("*.index")) == ["model.ckpt-2.index"]


def test_a_batch_that_does_not_split_over_the_replicas_is_a_usage_error(tmp_path):
    runtime = select_runtime("cpu", "fp32", False, 0)
    with runtime.scope():
        model = Toy()
    options = TrainOptions(learning_rate=0.1, num_train_steps=1, num_warmup_steps=0, micro_batch_size=0,
                           accumulation_steps=1, save_checkpoints_steps=1, keep_checkpoint_max=1, optimizer="adamw")
    with pytest.raises(UsageError, match="cannot be split"):
        Driver(runtime, model, model.loss, options, tmp_path)
