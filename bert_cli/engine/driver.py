"""The one training driver: pretraining, sentence classification, SQuAD and NER all train here.

A task brings what is its own -- the model (a ``tf.Module`` with ``tf1_variables()``), the
loss of one micro-batch, the training stream and, optionally, an evaluation -- and
:class:`Driver` does the rest, once for every task:

* the optimizer (:func:`~bert_cli.engine.optimization.create_optimizer`: AdamWeightDecay or
  LAMB), the original's linear warmup + decay schedule, clipping at global norm 1.0;
* the compiled step with exact gradient accumulation, fp16 loss scaling and distribution
  (:class:`~bert_cli.engine.train_step.TrainStep`);
* checkpoints in the TF1 layout (weights, optimizer slots, ``global_step``) every
  ``save_checkpoints_steps`` and after the last step, resume from the newest one
  (:class:`~bert_cli.engine.checkpoint_manager.CheckpointManager`);
* the NaN guard: a non-finite loss stops the run before anything is checkpointed;
* progress events (``start``, ``train``, ``checkpoint``, ``eval``) with throughput and ETA,
  TensorBoard scalars on request;
* periodic evaluation with keep-best and early stopping
  (:class:`~bert_cli.rundir.BestTracker`, persisted so a resumed run knows its best).

One optimizer step consumes ``accumulation_steps`` micro-batches of ``micro_batch_size``
examples (all replicas together). How a command maps its batch flags onto these two numbers
is the command's business (finetune splits ``--train-batch-size`` into K micro-batches;
pretrain takes K batches of ``--train-batch-size``); the driver only counts.

The stream is a function of the step: ``dataset(skip)`` must return the micro-batches from
micro-batch ``skip`` on, so a run resumed at ``global_step = g`` continues with micro-batch
``g x K`` -- exactly the batches the uninterrupted run would have seen.

The loop synchronises with the device (reads the loss) only at *boundaries*: every
``log_every_steps`` steps, at checkpoints, evaluations and the last step. Under fp16 a step
whose gradients overflow is skipped (``global_step`` does not advance); the real step is re-read
at each boundary.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import tensorflow as tf

from .. import console
from ..errors import TrainingDivergedError, UsageError
from ..events import Progress, emit
from ..rundir import BestTracker
from .checkpoint import GLOBAL_STEP
from .checkpoint_manager import CheckpointManager
from .optimization import LinearWarmupDecay, create_optimizer
from .train_step import TrainStep

__all__ = ["Driver", "Evaluation", "TrainOptions", "write_scalar"]

LossFn = Callable[[Any, bool], tf.Tensor]
DatasetFn = Callable[[int], tf.data.Dataset]  # micro-batches skipped -> global micro-batches


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """How to train (the command has already computed the step counts, as the original; the
    options' defaults are :mod:`bert_cli.ops.option_specs`', not repeated here)."""

    learning_rate: float
    num_train_steps: int
    num_warmup_steps: int
    micro_batch_size: int  # examples per micro-batch, all replicas together
    accumulation_steps: int  # micro-batches per optimizer step
    save_checkpoints_steps: int
    keep_checkpoint_max: int | None  # None: keep all
    optimizer: str  # adamw | lamb
    weight_decay_rate: float = 0.01  # the original's constants

    clip_norm: float | None = 1.0
    log_every_steps: int = 1  # progress event (and device sync) every N steps
    tensorboard: bool = False  # scalars under OUTPUT_DIR/train
    examples_per_epoch: int | None = None  # for the ``epoch`` of progress events
    epochs: float | None = None  # the run's length in epochs (reported as is)

    @property
    def examples_per_step(self) -> int:
        return self.micro_batch_size * self.accumulation_steps


@dataclasses.dataclass
class Evaluation:
    """Periodic evaluation during training: ``evaluate(step) -> results`` when ``due(step)``
    (and after the last step); keep-best and early stopping on ``tracker.metric``.

    ``on_best(step, results)`` is called (on the chief) each time the metric improves;
    ``patience`` evaluations without improvement stop the run. The tracker is saved in
    ``state_dir`` after every evaluation.
    """

    evaluate: Callable[[int], Mapping[str, Any]]
    due: Callable[[int], bool]
    tracker: BestTracker
    state_dir: Path
    on_best: Callable[[int, Mapping[str, Any]], None] | None = None
    patience: int | None = None
    unknown_metric: Callable[[], Exception] | None = None  # the error when results lack the metric


class Driver:
    """Optimizer, compiled step, checkpoints and the loop of one training run.

    Build under nothing: the driver enters ``runtime.scope()`` itself. ``model`` must already
    have been built under that scope (every command builds it with the runtime).
    """

    def __init__(
        self,
        runtime,
        model,
        loss_fn: LossFn,
        options: TrainOptions,
        output_dir: str | os.PathLike,
        *,
        data_error: Callable[[Exception], Exception] | None = None,
    ) -> None:
        k = int(options.accumulation_steps)
        if k < 1:
            raise UsageError(f"gradient accumulation steps must be >= 1, got {k}")
        replicas = runtime.num_replicas
        if options.micro_batch_size < 1 or options.micro_batch_size % replicas:
            raise UsageError(
                f"a batch of {options.micro_batch_size} examples cannot be split evenly over {replicas} replicas",
                hint=f"use a train batch size that is a multiple of {replicas * k if k > 1 else replicas}",
            )
        self.runtime = runtime
        self.model = model
        self.options = options
        self.output_dir = Path(output_dir)
        self.data_error = data_error
        self.names = dict(model.tf1_variables())
        self.schedule = LinearWarmupDecay(options.learning_rate, options.num_train_steps, options.num_warmup_steps)
        with runtime.scope():
            self.global_step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.optimizer = create_optimizer(
                options.optimizer, list(self.names.items()), weight_decay_rate=options.weight_decay_rate
            )
            self.loss_scaler = runtime.make_loss_scaler()
            self.step_fn = TrainStep(
                loss_fn,
                self.optimizer,
                self.schedule,
                clip_norm=options.clip_norm,
                accumulation_steps=k,
                loss_scaler=self.loss_scaler,
                strategy=runtime.strategy,
                jit_compile=runtime.xla,
                global_step=self.global_step_var,
            )
        self.manager = CheckpointManager(
            self.output_dir, self.checkpoint_tensors, keep=options.keep_checkpoint_max, is_chief=runtime.is_chief
        )
        self.resumed_from: str | None = None

    # ------------------------------------------------------------------ state

    def checkpoint_tensors(self) -> dict[str, tf.Variable]:
        """Weights by TF1 name + optimizer slots + ``global_step``: the original layout."""
        return {**self.names, **self.optimizer.slot_variables(), GLOBAL_STEP: self.global_step_var}

    @property
    def global_step(self) -> int:
        return int(self.global_step_var.numpy())

    def set_global_step(self, step: int) -> None:
        """Continue an init checkpoint's ``global_step`` (the schedule resumes where it was)."""
        self.global_step_var.assign(int(step))

    def restore(self) -> int | None:
        """Resume from the newest checkpoint of the output folder (weights, slots, step); its
        step, or None when there is none (the caller then loads its initial weights)."""
        latest = self.manager.latest()
        if latest is None:
            return None
        step = self.manager.restore(latest)
        self.step_fn.reset_accumulation()
        self.resumed_from = latest
        return step

    def save(self) -> str | None:
        """Checkpoint now (``model.ckpt-<global_step>``); None on non-chief workers."""
        return self.manager.save(self.global_step)

    # ------------------------------------------------------------------ the loop

    def train(
        self,
        dataset: DatasetFn,
        progress: Progress | None = None,
        *,
        evaluation: Evaluation | None = None,
    ) -> dict[str, Any]:
        """Run optimizer steps from ``global_step`` to ``num_train_steps``; returns a summary
        (``start_step``, ``steps_run``, ``final_loss``, ``seconds``, ``examples_per_s``,
        ``history`` of evaluations, ``stopped_early``, ``best``)."""
        opts = self.options
        k, total = opts.accumulation_steps, opts.num_train_steps
        start = self.global_step
        summary: dict[str, Any] = {"start_step": start, "steps_run": 0, "history": []}
        tracker = evaluation.tracker if evaluation is not None else None
        if start >= total:
            console.info(f"training already finished (step {start} of {total})")
            return self._finish(summary, tracker)
        if tracker is not None and tracker.stopped_early:
            console.info(f"this run stopped early at step {start}; not training further")
            return self._finish(summary, tracker)

        iterator = iter(self.runtime.distribute(dataset(start * k)))
        writer = self._writer("train") if opts.tensorboard else None
        fp16 = self.loss_scaler is not None
        emit(progress, phase="start", step=start, total_steps=total, resumed_from=self.resumed_from,
             banner=self.runtime.banner)
        save_every = opts.save_checkpoints_steps
        gs, last_saved = start, (start if self.resumed_from else None)
        next_save = (start // save_every + 1) * save_every
        losses: list[tf.Tensor] = []
        marks: collections.deque[tuple[float, int]] = collections.deque(maxlen=21)
        began = time.perf_counter()
        marks.append((began, start))
        final_loss = float("nan")
        try:
            while gs < total:
                for _ in range(k):
                    losses.append(self.step_fn(self._next(iterator)))
                gs += 1
                due_eval = evaluation is not None and (evaluation.due(gs) or gs >= total)
                logged = gs % opts.log_every_steps == 0 or gs >= total
                if not (logged or due_eval or gs >= next_save):
                    continue
                if fp16:  # skipped (overflow) steps do not count: re-read the real step
                    gs = self.global_step
                window_loss = float(tf.add_n(losses).numpy()) / len(losses) if losses else final_loss
                losses.clear()
                if not fp16:  # a diverged step is never logged as progress, let alone checkpointed
                    self.manager.check_loss(window_loss, gs)
                final_loss = window_loss
                if logged:
                    self._report(progress, writer, gs, window_loss, marks, began)
                if gs >= next_save or gs >= total:
                    self._save(progress, gs)
                    last_saved = gs
                    next_save = (gs // save_every + 1) * save_every
                if due_eval and self._evaluate(evaluation, progress, gs, summary):
                    if last_saved != gs:
                        self._save(progress, gs)
                        last_saved = gs
                    break
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM (see cli.app): keep the steps already run
            self._save_on_interrupt(progress, losses, last_saved)
            raise
        if last_saved != gs:
            self._save(progress, gs)
        if writer is not None:
            writer.flush()
        seconds = time.perf_counter() - began
        steps_run = gs - start
        summary.update(
            steps_run=steps_run,
            final_loss=final_loss,
            seconds=round(seconds, 3),
            examples_per_s=steps_run * opts.examples_per_step / seconds if seconds > 0 else 0.0,
        )
        return self._finish(summary, tracker)

    # ------------------------------------------------------------------ pieces

    def _next(self, iterator):
        try:
            return next(iterator)
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as exc:
            if self.data_error is None:
                raise
            raise self.data_error(exc) from None

    def _report(self, progress, writer, gs: int, loss: float, marks, began: float) -> None:
        opts = self.options
        now = time.perf_counter()
        marks.append((now, gs))
        (t0, s0), (t1, s1) = marks[0], marks[-1]
        rate = (s1 - s0) * opts.examples_per_step / (t1 - t0) if t1 > t0 else 0.0
        last = self.step_fn.last
        lr = float(last["learning_rate"].numpy()) if "learning_rate" in last else 0.0
        event: dict[str, Any] = dict(
            step=gs, total_steps=opts.num_train_steps, loss=loss, learning_rate=lr, examples_per_s=rate,
            seconds=now - began,
            eta_s=(opts.num_train_steps - gs) * opts.examples_per_step / rate if rate > 0 else None,
        )
        if opts.examples_per_epoch:
            event.update(epoch=gs * opts.examples_per_step / opts.examples_per_epoch, epochs=opts.epochs)
        if writer is not None:
            _scalars(writer, gs, {"loss": loss, "learning_rate": lr, "examples/sec": rate})
        emit(progress, phase="train", **event)

    def _save_on_interrupt(self, progress, pending: list, last_saved: int | None) -> None:
        """Checkpoint the optimizer steps run since the last save, then let the interrupt go on.

        The step counter is the ``global_step`` variable, which the compiled step updates with
        the weights, so it is right wherever the interrupt landed (between micro-batches,
        during a save or an evaluation); half-accumulated gradients are not checkpointed and
        the rerun feeds those micro-batches again. Nothing is saved when a pending loss or a
        weight is not finite (the NaN guard), or when a second interrupt cuts the save short.
        """
        gs = self.global_step
        if last_saved == gs:
            console.info(f"interrupted at step {gs}: model.ckpt-{gs} is saved")
            return
        if gs == 0:  # no step run: nothing to keep
            return
        try:
            if pending and self.loss_scaler is None and not math.isfinite(float(tf.add_n(pending).numpy())):
                return
            path = self.manager.save(gs)
        except TrainingDivergedError:
            return
        if path:
            console.info(f"interrupted at step {gs}: saved {console.shown_path(path)}")
            emit(progress, phase="checkpoint", step=gs, path=path)

    def _save(self, progress, gs: int) -> None:
        path = self.manager.save(gs)
        if path:
            emit(progress, phase="checkpoint", step=gs, path=path)

    def _evaluate(self, evaluation: Evaluation, progress, gs: int, summary: dict) -> bool:
        """One periodic evaluation; True when early stopping ends the run."""
        results = dict(evaluation.evaluate(gs))
        summary["history"].append(results)
        emit(progress, phase="eval", step=gs, metrics=results)
        console.info(f"step {gs}: " + ", ".join(
            f"{k} {v:.4f}" for k, v in sorted(results.items()) if k != "global_step" and isinstance(v, float)))
        tracker = evaluation.tracker
        if tracker.metric not in results:
            if evaluation.unknown_metric is not None:
                raise evaluation.unknown_metric()
            raise UsageError(f"unknown metric {tracker.metric!r}")
        chief = self.runtime.is_chief
        if tracker.update(float(results[tracker.metric]), gs) and evaluation.on_best is not None and chief:
            evaluation.on_best(gs, results)
        stop = bool(evaluation.patience) and tracker.bad_evals >= evaluation.patience
        if stop:
            tracker.stopped_early = True
            console.info(
                f"early stopping at step {gs}: no {tracker.metric} improvement in {tracker.bad_evals} "
                f"evaluations (best {tracker.best_value:.4f} at step {tracker.best_step})"
            )
        if chief:
            tracker.save(evaluation.state_dir)
        return stop

    def _finish(self, summary: dict, tracker: BestTracker | None) -> dict:
        if tracker is not None:
            summary["stopped_early"] = tracker.stopped_early
            summary["best"] = {"metric": tracker.metric, "value": tracker.best_value, "step": tracker.best_step}
        return summary

    def _writer(self, name: str):
        if not self.runtime.is_chief:
            return None
        return tf.summary.create_file_writer(str(self.output_dir / name))


def _scalars(writer, step: int, values: Mapping[str, float]) -> None:
    with writer.as_default(step=step):
        for key, value in values.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                write_scalar(key, value, step)
    writer.flush()


def write_scalar(tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar through ``tf.summary.write`` (what ``tf.summary.scalar`` does,
    without needing the ``tensorboard`` package installed to *write* event files)."""
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step, metadata=metadata)


def scalars(writer, step: int, values: Mapping[str, float]) -> None:
    """Write ``values`` as TensorBoard scalars at ``step`` (no-op without a writer)."""
    if writer is not None:
        _scalars(writer, step, values)
