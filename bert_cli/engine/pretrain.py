"""Masked-LM + next-sentence pretraining: the original ``run_pretraining.py`` in TensorFlow 2.

Pieces (each usable alone):

* :mod:`bert_cli.engine.pretrain_data` -- the input files: their shape, checksums, record
  count, parsing and id checks before any training.
* :func:`train_dataset` / :func:`eval_dataset` -- the input pipelines (below).
* :class:`PretrainingModel` -- :class:`~bert_cli.engine.model.BertModel` + tied
  :class:`~bert_cli.engine.heads.PretrainingHeads`; ``loss = masked-LM (weighted) + NSP`` exactly
  as the original; eval metric sums.
* :func:`pretrain` -- the run: runtime, model, optimizer, :class:`TrainStep`, checkpoints,
  TensorBoard summaries, progress callback, eval and ``eval_results.txt``.

Training input and exact resume
-------------------------------
The original reads: file list -> ``repeat`` -> ``shuffle(len(files))`` -> sloppy
``parallel_interleave`` (cycle ``min(4, n_files)``) -> ``shuffle(100)`` -> batch (drop
remainder) -> int64 to int32. Its order is random and not reproducible, so a restarted run
could neither skip what it had seen nor know where it stood.

Here the example stream is a deterministic function of ``(seed, file list)`` made of *epochs*:
epoch ``e`` shuffles the file list with seed ``f(seed, e)``, interleaves the files
deterministically (cycle ``min(4, n_files)``, one record from each in turn) and shuffles the
records in a buffer of 100 with seed ``f(seed, e)``; the epochs are concatenated, batched
(drop remainder), parsed and cast to int32, and prefetched. An optimizer step consumes
``gradient_accumulation_steps x train_batch_size`` examples, so a run resumed at
``global_step = g`` skips ``g x K x B`` examples: whole epochs are skipped for free (the number
of records per epoch is counted once from the TFRecord headers) and the rest of the current
epoch with ``Dataset.skip``. The resumed run therefore sees exactly the batches the
uninterrupted run would have seen: no lost or repeated steps.

Within an epoch this is the original's pipeline; across the epoch boundary the file shuffle and
the record buffer restart (the original's ``repeat`` came before the file shuffle, letting
epochs blend by up to 100 records) -- statistically the same thing.

Under fp16 a step whose gradients overflow is skipped (``global_step`` does not advance) but its
examples were consumed; a run resumed after such skips is shifted by that many batches. The
loss scale is not in the (original-layout) checkpoint either: it restarts at 2**15.

Dropout draws from TensorFlow's stateful generator, which a new process restarts, so a resumed
run matches the uninterrupted one bit for bit only with dropout 0 (weights, slots, step and
data position are always exact).

Init checkpoint and ``global_step``
-----------------------------------
Precedence, as the original Estimator: a complete checkpoint in ``output_dir`` wins (weights,
Adam slots and ``global_step`` restored: a resume); otherwise ``init_checkpoint`` gives the
weights (never the Adam slots: they start at zero, as in the original) and, when it has one,
its ``global_step``, so a checkpoint written by ``run_pretraining.py`` at step 20 continues at
step 21 with the learning-rate schedule where it was. (The original's ``init_from_checkpoint``
restored trainable variables only and started from 0 unless the checkpoint sat in
``output_dir``; Google's released ``bert_model.ckpt`` files have no ``global_step``, so they
start at 0 either way.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

from .. import console
from ..errors import InputError, UsageError
from ..events import Progress
from ..modelconfig import BertConfig
from ..rundir import EVAL_FILE, record_seed, write_eval_results
from .checkpoint import GLOBAL_STEP, load_into, tf1_names
from .checkpoint_manager import CheckpointManager
from .checkpoint_reader import BundleReader
from .heads import PretrainingHeads, mlm_loss, nsp_loss
from .model import BertModel, check_seq_length
from .pretrain_data import (
    check_first_batches,
    count_records,
    data_error,
    inspect_input_files,
    make_parser,
    verify_input_files,
)


EVAL_KEYS = (
    "global_step",
    "loss",
    "masked_lm_accuracy",
    "masked_lm_loss",
    "next_sentence_accuracy",
    "next_sentence_loss",
)
FILE_SHUFFLE_CYCLE = 4  # the original's min(4, n_files)
RECORD_SHUFFLE_BUFFER = 100  # the original's shuffle(buffer_size=100)


# ============================================================================ datasets


_PIPELINE_GLOBAL_SEED = 20181011  # any fixed non-zero value (a (0, op-seed tensor) pair breaks get_seed)


@contextlib.contextmanager
def _pinned_global_seed() -> Iterator[None]:
    """Trace dataset functions under a fixed global seed, then restore the previous one.

    ``Dataset.shuffle(seed=s)`` also depends on the global seed; pinning it here makes the
    data order a function of the data seed alone, whatever else the process seeded.
    """
    from tensorflow.python.eager import context  # the only way to read the current global seed

    previous = context.global_seed()
    tf.random.set_seed(_PIPELINE_GLOBAL_SEED)
    try:
        yield
    finally:
        tf.random.set_seed(previous)


def train_dataset(
    files: Sequence[str],
    config: BertConfig,
    *,
    batch_size: int,
    max_seq_length: int,
    max_predictions_per_seq: int,
    seed: int,
    start_example: int = 0,
    num_records: int | None = None,
    accumulation_steps: int = 1,
) -> tf.data.Dataset:
    """The training stream from example ``start_example`` on (see the module docstring).

    ``num_records`` (records per epoch) is counted from the files when resuming and not given.
    Every batch carries :data:`WINDOW_WEIGHT` (see :func:`with_window_weight`) for the
    ``accumulation_steps`` batches of one optimizer step.
    """
    files = [str(f) for f in files]
    n_files = len(files)
    cycle = min(FILE_SHUFFLE_CYCLE, n_files)
    first_epoch, offset = 0, 0
    if start_example > 0:
        if num_records is None:
            num_records = count_records(files)
        if num_records <= 0:
            raise InputError("the input files hold no records", path=files[0])
        first_epoch, offset = divmod(int(start_example), num_records)
    seed = int(seed) % (2**31 - 1)

    @tf.autograph.experimental.do_not_convert
    def epoch(e: tf.Tensor) -> tf.data.Dataset:
        epoch_seed = tf.constant(seed, tf.int64) * 1_000_003 + e
        names = tf.data.Dataset.from_tensor_slices(files).shuffle(n_files, seed=epoch_seed, reshuffle_each_iteration=False)
        records = names.interleave(
            tf.data.TFRecordDataset,
            cycle_length=cycle,
            block_length=1,
            num_parallel_calls=cycle,
            deterministic=True,
        )
        return records.shuffle(RECORD_SHUFFLE_BUFFER, seed=epoch_seed + 1, reshuffle_each_iteration=False)

    with _pinned_global_seed():
        ds = tf.data.Dataset.range(first_epoch, 2**62).flat_map(epoch)
    if offset:
        ds = ds.skip(offset)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(make_parser(config, max_seq_length, max_predictions_per_seq), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return with_window_weight(ds, accumulation_steps).prefetch(tf.data.AUTOTUNE)


# The masked-LM weight of one optimizer step's batch, per micro-batch: [B], every entry the same.
WINDOW_WEIGHT = "masked_lm_window_weight"


def with_window_weight(ds: tf.data.Dataset, accumulation_steps: int) -> tf.data.Dataset:
    """Give every (global) batch ``WINDOW_WEIGHT``: the sum of ``masked_lm_weights`` over the
    ``accumulation_steps`` consecutive batches of its optimizer step, divided by their number.

    The masked-LM loss is normalized by the weight of the whole step's batch, not of each part:
    K micro-batches (and R replicas) then give exactly the gradient of one K x bigger batch, as
    ``--gradient-accumulation-steps`` promises (a per-part ratio would weigh a part with few
    masked tokens as much as one with many). A column of the batch, so a replica's share has it.
    """
    k = int(accumulation_steps)

    def add(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        weights = batch["masked_lm_weights"]
        total = tf.reduce_sum(weights) / float(k)
        return {**batch, WINDOW_WEIGHT: tf.ones_like(weights[..., 0]) * total}

    if k == 1:
        return ds.map(add, deterministic=True)
    return ds.batch(k, drop_remainder=True).map(add, deterministic=True).unbatch()


def eval_dataset(
    files: Sequence[str],
    config: BertConfig,
    *,
    batch_size: int,
    max_seq_length: int,
    max_predictions_per_seq: int,
    max_eval_steps: int,
) -> tf.data.Dataset:
    """The original eval input: files read in order, repeated, ``max_eval_steps`` full batches."""
    ds = tf.data.TFRecordDataset([str(f) for f in files]).repeat()
    ds = ds.batch(batch_size, drop_remainder=True).take(max_eval_steps)
    ds = ds.map(make_parser(config, max_seq_length, max_predictions_per_seq), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


# ============================================================================ model


# The model has no data-dependent Python control flow: tracing it without AutoGraph's source
# conversion gives the same graph and saves seconds per process (13 s of a 21 s first trace
# on a loaded 2-core machine for a 2-layer model).
_plain_graph = tf.autograph.experimental.do_not_convert


class PretrainingModel(tf.Module):
    """BERT encoder + masked-LM / next-sentence heads, the original ``model_fn``'s maths."""

    def __init__(self, config: BertConfig, *, seed: int | None = None, compute_dtype=tf.float32) -> None:
        super().__init__(name="pretraining")
        self.config = config
        self.bert = BertModel(config, seed=seed, compute_dtype=compute_dtype)
        self.heads = PretrainingHeads(config, self.bert.word_embeddings, seed=seed)

    def tf1_variables(self) -> dict[str, tf.Variable]:
        """``{TF1 name: variable}`` of the encoder and both heads."""
        return tf1_names(self.bert, self.heads)

    @_plain_graph
    def logits(self, batch: Mapping[str, tf.Tensor], training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        """(masked-LM logits [B, P, V], next-sentence logits [B, 2]), float32."""
        out = self.bert(batch["input_ids"], batch["input_mask"], batch["segment_ids"], training=training)
        mlm = self.heads.mlm_logits(out.sequence_output, batch["masked_lm_positions"])
        nsp = self.heads.nsp_logits(out.pooled_output)
        return tf.cast(mlm, tf.float32), tf.cast(nsp, tf.float32)

    @_plain_graph
    def loss(self, batch: Mapping[str, tf.Tensor], training: bool = True) -> tf.Tensor:
        """``masked_lm_loss + next_sentence_loss`` (the original's ``total_loss``).

        With R replicas each holding 1/R of the global batch, the masked-LM loss of a replica is
        ``R * sum(w * nll) / sum over ALL replicas of w``: the replicas' mean is then exactly the
        loss of the global batch, as one device would compute it (a per-replica ratio would not be).
        A training batch brings that denominator along (:data:`WINDOW_WEIGHT`, averaged over the
        micro-batches of its optimizer step, so that accumulation is exact too).
        """
        mlm, nsp = self.logits(batch, training)
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync if ctx is not None else 1
        if WINDOW_WEIGHT in batch:
            total = tf.cast(batch[WINDOW_WEIGHT][0], tf.float32)
            mlm_term = replicas * mlm_loss(mlm, batch["masked_lm_ids"], batch["masked_lm_weights"], total_weight=total)
        elif replicas == 1:
            mlm_term = mlm_loss(mlm, batch["masked_lm_ids"], batch["masked_lm_weights"])
        else:
            weights = tf.cast(batch["masked_lm_weights"], tf.float32)
            total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(weights))
            mlm_term = replicas * mlm_loss(mlm, batch["masked_lm_ids"], weights, total_weight=total)
        return mlm_term + nsp_loss(nsp, batch["next_sentence_labels"])

    @_plain_graph
    def eval_sums(self, batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Per-batch sums behind the original ``metric_fn`` (weighted by ``masked_lm_weights``)."""
        mlm, nsp = self.logits(batch, False)
        ids = tf.cast(batch["masked_lm_ids"], tf.int32)
        weights = tf.cast(batch["masked_lm_weights"], tf.float32)
        mlm_nll = -tf.reduce_sum(tf.one_hot(ids, tf.shape(mlm)[-1]) * tf.nn.log_softmax(mlm, axis=-1), axis=-1)
        mlm_hit = tf.cast(tf.equal(tf.argmax(mlm, axis=-1, output_type=tf.int32), ids), tf.float32)
        labels = tf.reshape(tf.cast(batch["next_sentence_labels"], tf.int32), [-1])
        nsp_nll = -tf.reduce_sum(tf.one_hot(labels, 2) * tf.nn.log_softmax(nsp, axis=-1), axis=-1)
        nsp_hit = tf.cast(tf.equal(tf.argmax(nsp, axis=-1, output_type=tf.int32), labels), tf.float32)
        batch_loss = mlm_loss(mlm, ids, weights) + nsp_loss(nsp, labels)
        return {
            "mlm_weight": tf.reduce_sum(weights),
            "mlm_loss": tf.reduce_sum(weights * mlm_nll),
            "mlm_correct": tf.reduce_sum(weights * mlm_hit),
            "nsp_count": tf.cast(tf.size(labels), tf.float32),
            "nsp_loss": tf.reduce_sum(nsp_nll),
            "nsp_correct": tf.reduce_sum(nsp_hit),
            "batch_loss": batch_loss,
            "batches": tf.constant(1.0),
        }


def eval_metrics(sums: Mapping[str, float], global_step: int) -> dict[str, float | int]:
    """The original's ``eval_results`` from accumulated :meth:`PretrainingModel.eval_sums`."""

    def ratio(a: str, b: str) -> float:
        return float(sums[a] / sums[b]) if sums[b] > 0 else 0.0

    return {
        "global_step": int(global_step),
        "loss": ratio("batch_loss", "batches"),
        "masked_lm_accuracy": ratio("mlm_correct", "mlm_weight"),
        "masked_lm_loss": ratio("mlm_loss", "mlm_weight"),
        "next_sentence_accuracy": ratio("nsp_correct", "nsp_count"),
        "next_sentence_loss": ratio("nsp_loss", "nsp_count"),
    }


# ============================================================================ the run


@dataclasses.dataclass(frozen=True)
class PretrainPlan:
    """Everything :func:`pretrain` needs, already validated (built by ``bert_cli.ops.pretrain``)."""

    input_files: tuple[str, ...]
    output_dir: Path
    bert_config: BertConfig
    init_checkpoint: str | None = None
    init_weights_format: str = "tf1"  # "tf1" (a checkpoint prefix) | "hf" (model.safetensors)
    do_train: bool = True
    do_eval: bool = False
    train_batch_size: int = 32
    eval_batch_size: int = 8
    learning_rate: float = 5e-5
    num_train_steps: int = 100000
    num_warmup_steps: int = 10000
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    save_checkpoints_steps: int = 1000
    max_eval_steps: int = 100
    keep_checkpoints: int | None = 5
    device: str = "auto"
    precision: str = "auto"
    xla: bool | None = None
    seed: int | None = None
    gradient_accumulation_steps: int = 1
    optimizer: str = "adamw"
    log_every_steps: int = 100

    @property
    def data_seed(self) -> int:
        """The seed of the training data order (``seed``, or 0 when none was given)."""
        return 0 if self.seed is None else int(self.seed)


class _Run:
    """State of one pretraining run (model, optimizer, step, checkpoints)."""

    def __init__(self, plan: PretrainPlan, progress: Progress | None) -> None:
        from .device import activity, select_runtime
        from .optimization import LinearWarmupDecay, create_optimizer
        from .train_step import TrainStep

        self.plan = plan
        self.progress = progress
        self.runtime = select_runtime(plan.device, plan.precision, plan.xla, plan.seed)
        console.info(self.runtime.describe(activity(train=plan.do_train, evaluate=plan.do_eval)))
        replicas = self.runtime.num_replicas
        for name, size in (("train_batch_size", plan.train_batch_size), ("eval_batch_size", plan.eval_batch_size)):
            if size % replicas:
                raise UsageError(
                    f"--{name.replace('_', '-')} {size} is not divisible by the {replicas} replicas",
                    hint=f"use a multiple of {replicas}",
                )
        with self.runtime.scope():
            self.model = PretrainingModel(plan.bert_config, seed=plan.seed, compute_dtype=self.runtime.compute_dtype)
            self.names = self.model.tf1_variables()
            self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.optimizer = create_optimizer(plan.optimizer, list(self.names.items()))
            self.schedule = LinearWarmupDecay(plan.learning_rate, plan.num_train_steps, plan.num_warmup_steps)
            self.step = TrainStep(
                self.model.loss,
                self.optimizer,
                self.schedule,
                clip_norm=1.0,
                accumulation_steps=plan.gradient_accumulation_steps,
                loss_scaler=self.runtime.make_loss_scaler(),
                strategy=self.runtime.strategy,
                jit_compile=self.runtime.xla,
                global_step=self.global_step,
            )
        self.manager = CheckpointManager(
            plan.output_dir,
            self.checkpoint_tensors,
            keep=plan.keep_checkpoints,
            is_chief=self.runtime.is_chief,
        )
        self.resumed_from: str | None = None
        self.initial_step = 0

    def checkpoint_tensors(self) -> dict[str, tf.Variable]:
        """Weights by TF1 name + optimizer slots + ``global_step``: the original layout."""
        return {**self.names, **self.optimizer.slot_variables(), GLOBAL_STEP: self.global_step}

    def emit(self, **event: Any) -> None:
        if self.progress is not None:
            self.progress(event)

    # ------------------------------------------------------------------ restore

    def restore(self) -> None:
        """Resume from ``output_dir`` or initialise from ``init_checkpoint`` (see the module doc)."""
        latest = self.manager.latest()
        if latest is not None:
            step = self.manager.restore(latest)
            self.resumed_from = latest
            console.info(f"resuming from {latest} (global_step {step})")
        elif self.plan.init_checkpoint:
            modules = [self.model.bert, self.model.heads]
            if self.plan.init_weights_format == "hf":  # HF encoders usually ship without MLM/NSP heads
                from .hf_weights import load_hf_into

                report = load_hf_into(modules, self.plan.init_checkpoint, allow_missing=("cls/",))
            else:
                report = load_into(modules, self.plan.init_checkpoint, allow_missing=("cls/",))
            console.info(report.summary())
            if report.missing:
                console.warn(f"{len(report.missing)} head weights start from random values: {', '.join(report.missing[:4])}")
            if report.global_step is not None:
                self.global_step.assign(report.global_step)
                console.info(f"continuing the init checkpoint's global_step {report.global_step} (Adam slots start at zero)")
        elif not self.plan.do_train:
            raise UsageError(
                f"nothing to evaluate: no checkpoint in {self.plan.output_dir} and no --init-checkpoint",
                hint="train first (--do-train) or pass --init-checkpoint",
            )
        self.initial_step = int(self.global_step.numpy())

    # ------------------------------------------------------------------ training

    def train(self) -> dict[str, Any]:
        plan = self.plan
        K, B, T = plan.gradient_accumulation_steps, plan.train_batch_size, plan.num_train_steps
        start = int(self.global_step.numpy())
        summary: dict[str, Any] = {"start_step": start, "steps_run": 0}
        if start >= T:
            console.info(f"global_step {start} >= num_train_steps {T}: nothing to train")
            return summary
        check_first_batches(plan.input_files, plan.bert_config, plan.max_seq_length, plan.max_predictions_per_seq)
        ds = train_dataset(
            plan.input_files,
            plan.bert_config,
            batch_size=B,
            max_seq_length=plan.max_seq_length,
            max_predictions_per_seq=plan.max_predictions_per_seq,
            seed=plan.data_seed,
            start_example=start * K * B,
            accumulation_steps=K,
        )
        iterator = iter(self.runtime.distribute(ds))
        writer = self._writer("train")
        fp16 = self.step.loss_scaler is not None
        self.emit(phase="start", step=start, total_steps=T, resumed_from=self.resumed_from, banner=self.runtime.banner)

        gs = start
        last_saved = start if self.resumed_from else None
        next_save = (start // plan.save_checkpoints_steps + 1) * plan.save_checkpoints_steps
        losses: list[tf.Tensor] = []
        window_start, window_step, began = time.perf_counter(), gs, time.perf_counter()
        final_loss = float("nan")
        while gs < T:
            for _ in range(K):
                try:
                    batch = next(iterator)
                except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as exc:
                    raise data_error(exc, plan.input_files) from None
                losses.append(self.step(batch))
            gs += 1
            boundary = gs % plan.log_every_steps == 0 or gs >= T or gs >= next_save
            if not boundary:
                continue
            if fp16:  # skipped (overflow) steps do not count: re-read the real step
                gs = int(self.global_step.numpy())
            window_loss = float(tf.add_n(losses).numpy()) / len(losses) if losses else final_loss
            if not fp16:  # a diverged step is never logged as progress, let alone checkpointed
                self.manager.check_loss(window_loss, gs)
            if gs % plan.log_every_steps == 0 or gs >= T:
                final_loss = window_loss
                now = time.perf_counter()
                steps = max(gs - window_step, 1)
                eps = steps * K * B / max(now - window_start, 1e-9)
                lr = float(self.step.last["learning_rate"].numpy()) if "learning_rate" in self.step.last else 0.0
                losses.clear()
                window_start, window_step = now, gs
                self._scalars(writer, gs, {"loss": final_loss, "learning_rate": lr, "examples/sec": eps})
                self.emit(phase="train", step=gs, total_steps=T, loss=final_loss, learning_rate=lr,
                          examples_per_s=eps, seconds=now - began)
            if gs >= next_save or gs >= T:
                path = self.manager.save(gs)
                last_saved = gs
                next_save = (gs // plan.save_checkpoints_steps + 1) * plan.save_checkpoints_steps
                if path:
                    self.emit(phase="checkpoint", step=gs, path=path)
        if last_saved != gs:
            self.manager.save(gs)
        if writer is not None:
            writer.flush()
        seconds = time.perf_counter() - began
        run_steps = gs - start
        summary.update(
            steps_run=run_steps,
            final_loss=final_loss,
            seconds=round(seconds, 3),
            examples_per_s=run_steps * K * B / seconds if seconds > 0 else 0.0,
        )
        return summary

    # ------------------------------------------------------------------ evaluation

    def evaluate(self) -> dict[str, Any]:
        plan = self.plan
        check_first_batches(plan.input_files, plan.bert_config, plan.max_seq_length, plan.max_predictions_per_seq)
        ds = eval_dataset(
            plan.input_files,
            plan.bert_config,
            batch_size=plan.eval_batch_size,
            max_seq_length=plan.max_seq_length,
            max_predictions_per_seq=plan.max_predictions_per_seq,
            max_eval_steps=plan.max_eval_steps,
        )
        strategy = self.runtime.strategy

        @tf.autograph.experimental.do_not_convert
        def step(batch):
            per_replica = strategy.run(self.model.eval_sums, args=(batch,))
            return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

        compiled = self.runtime.function(step)
        parts: list[dict[str, tf.Tensor]] = []
        try:
            for batch in self.runtime.distribute(ds):
                parts.append(compiled(batch))
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as exc:
            raise data_error(exc, plan.input_files) from None
        if not parts:
            raise InputError(
                f"no full eval batch of {plan.eval_batch_size} examples",
                path=plan.input_files[0],
                hint="lower --eval-batch-size",
            )
        sums = {k: float(np.sum([np.float64(p[k].numpy()) for p in parts])) for k in parts[0]}
        step_value = int(self.global_step.numpy())
        results = eval_metrics(sums, step_value)
        if self.runtime.is_chief:
            write_eval_results(plan.output_dir, results)
            self._scalars(self._writer("eval"), step_value, {k: v for k, v in results.items() if k != "global_step"})
        self.emit(phase="eval", step=step_value, results=results, batches=len(parts))
        return results

    # ------------------------------------------------------------------ summaries

    def _writer(self, name: str):
        if not self.runtime.is_chief:
            return None
        return tf.summary.create_file_writer(str(self.plan.output_dir / name))

    @staticmethod
    def _scalars(writer, step: int, values: Mapping[str, float]) -> None:
        if writer is None:
            return
        with writer.as_default(step=step):
            for key, value in values.items():
                write_scalar(key, value, step)
        writer.flush()


def write_scalar(tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar through ``tf.summary.write`` (what ``tf.summary.scalar`` does,
    without needing the ``tensorboard`` package installed to *write* event files)."""
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step, metadata=metadata)


def pretrain(plan: PretrainPlan, progress: Progress | None = None) -> dict[str, Any]:
    """Run pretraining and/or evaluation; returns a JSON-serialisable summary.

    ``progress(event)`` receives dicts with ``phase``: ``start`` (step, total_steps,
    resumed_from, banner), ``train`` (step, total_steps, loss, learning_rate, examples_per_s,
    seconds) every ``log_every_steps``, ``checkpoint`` (step, path), ``eval`` (step, results).
    """
    if not plan.do_train and not plan.do_eval:
        raise UsageError("at least one of --do-train or --do-eval is required")
    inspect_input_files(plan.input_files, plan.max_seq_length, plan.max_predictions_per_seq)
    verify_input_files(plan.input_files)
    check_seq_length(plan.bert_config, plan.max_seq_length)
    if plan.init_checkpoint and plan.init_weights_format == "tf1":
        BundleReader(plan.init_checkpoint)  # missing or truncated files fail before the model is built
    elif plan.init_checkpoint:
        from .hf_weights import check_weights_file

        check_weights_file(plan.init_checkpoint)
    run = _Run(plan, progress)
    run.restore()  # before the output folder is made: a damaged checkpoint leaves nothing behind
    if run.runtime.is_chief:
        plan.output_dir.mkdir(parents=True, exist_ok=True)
        record_seed(plan.output_dir, plan.seed)  # before the first checkpoint: a resume reuses it
    result: dict[str, Any] = {
        "output_dir": str(plan.output_dir),
        "device": run.runtime.banner,
        "initial_global_step": run.initial_step,
        "seed": plan.seed,
        "resumed_from": run.resumed_from,
        "init_checkpoint": plan.init_checkpoint if run.resumed_from is None else None,
    }
    if plan.do_train:
        result["train"] = run.train()
    if plan.do_eval:
        result["eval"] = run.evaluate()
        result["eval_results"] = str(plan.output_dir / EVAL_FILE)
    result["global_step"] = int(run.global_step.numpy())
    result["checkpoint"] = run.manager.latest()
    return result


__all__ = [
    "EVAL_KEYS",
    "PretrainPlan",
    "PretrainingModel",
    "eval_dataset",
    "eval_metrics",
    "pretrain",
    "train_dataset",
]
