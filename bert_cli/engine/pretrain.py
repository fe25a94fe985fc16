"""Masked-LM + next-sentence pretraining: the original ``run_pretraining.py`` in TensorFlow 2.

Pieces (each usable alone):

* :mod:`bert_cli.engine.pretrain_data` -- the input files: their shape, checksums, record
  count, parsing and id checks before any training.
* :mod:`bert_cli.engine.pretrain_input` -- the input pipelines (exact resume).
* :class:`PretrainingModel` -- :class:`~bert_cli.engine.model.BertModel` + tied
  :class:`~bert_cli.engine.heads.PretrainingHeads`; ``loss = masked-LM (weighted) + NSP`` exactly
  as the original; eval metric sums.
* :func:`pretrain` -- the run: the model and its data on the one training driver
  (:mod:`bert_cli.engine.driver`: optimizer, checkpoints, resume, TensorBoard, progress), then
  eval and ``eval_results.txt``.

Training input and exact resume: :mod:`bert_cli.engine.pretrain_input`.

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

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import tensorflow as tf

from .. import console
from ..errors import InputError, UsageError
from ..events import Progress
from ..modelconfig import BertConfig
from ..rundir import EVAL_FILE, record_seed, write_eval_results
from .checkpoint import load_into, tf1_names
from .checkpoint_reader import BundleReader
from .driver import scalars
from .heads import PretrainingHeads, mlm_loss, nsp_loss
from .model import BertModel, check_seq_length
from .pretrain_data import check_first_batches, data_error, inspect_input_files, verify_input_files
from .pretrain_input import WINDOW_WEIGHT, eval_dataset, train_dataset


EVAL_KEYS = (
    "global_step",
    "loss",
    "masked_lm_accuracy",
    "masked_lm_loss",
    "next_sentence_accuracy",
    "next_sentence_loss",
)

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
    """Everything :func:`pretrain` needs, already validated (built by ``bert_cli.ops.pretrain``):
    what was resolved (files, config, initial weights) and the command's options as they are.

    ``options`` is ``bert pretrain``'s config (:class:`bert_cli.ops.pretrain.PretrainConfig`,
    whose defaults and checks are :mod:`bert_cli.ops.option_specs`'); its fields read as the
    plan's own (``plan.train_batch_size``, ``plan.learning_rate``, ...), so no option is declared
    twice.
    """

    input_files: tuple[str, ...]
    output_dir: Path
    bert_config: BertConfig
    init_checkpoint: str | None
    init_weights_format: str  # "tf1" (a checkpoint prefix) | "hf" (model.safetensors)
    options: Any

    def __getattr__(self, name: str) -> Any:  # only for names the plan itself does not have
        if name.startswith("__") or name == "options":
            raise AttributeError(name)
        return getattr(self.options, name)

    @property
    def data_seed(self) -> int:
        """The seed of the training data order (``seed``, or 0 when none was given)."""
        return 0 if self.seed is None else int(self.seed)


class _Run:
    """One pretraining run: the model and its data on the one training driver."""

    def __init__(self, plan: PretrainPlan, progress: Progress | None) -> None:
        from .device import activity, select_runtime
        from .driver import Driver, TrainOptions

        self.plan = plan
        self.progress = progress
        self.runtime = select_runtime(plan.device, plan.precision, plan.xla, plan.seed)
        if self.runtime.seed != plan.seed:  # a worker of a cluster: the chief's seed
            self.plan = plan = dataclasses.replace(plan, options=dataclasses.replace(plan.options, seed=self.runtime.seed))
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
        options = TrainOptions(
            learning_rate=plan.learning_rate,
            num_train_steps=plan.num_train_steps,
            num_warmup_steps=plan.num_warmup_steps,
            micro_batch_size=plan.train_batch_size,  # pretrain: each step takes K whole batches
            accumulation_steps=plan.gradient_accumulation_steps,
            save_checkpoints_steps=plan.save_checkpoints_steps,
            keep_checkpoint_max=plan.keep_checkpoints,
            optimizer=plan.optimizer,
            log_every_steps=plan.log_every_steps,
            tensorboard=True,
        )
        self.driver = Driver(self.runtime, self.model, self.model.loss, options, plan.output_dir,
                             data_error=lambda exc: data_error(exc, plan.input_files))
        self.resumed_from: str | None = None
        self.initial_step = 0

    # ------------------------------------------------------------------ restore

    def restore(self) -> None:
        """Resume from ``output_dir`` or initialise from ``init_checkpoint`` (see the module doc)."""
        step = self.driver.restore()
        if step is not None:
            self.resumed_from = self.driver.resumed_from
            console.info(f"resuming from {console.shown_path(self.resumed_from)} (global_step {step})")
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
                self.driver.set_global_step(report.global_step)
                console.info(f"continuing the init checkpoint's global_step {report.global_step} (Adam slots start at zero)")
        elif not self.plan.do_train:
            raise UsageError(
                f"nothing to evaluate: no checkpoint in {self.plan.output_dir} and no --init-checkpoint",
                hint="train first (--do-train) or pass --init-checkpoint",
            )
        self.initial_step = self.driver.global_step

    # ------------------------------------------------------------------ training

    def train(self) -> dict[str, Any]:
        plan = self.plan
        B = plan.train_batch_size

        def dataset(skip: int) -> tf.data.Dataset:
            check_first_batches(plan.input_files, plan.bert_config, plan.max_seq_length, plan.max_predictions_per_seq)
            return train_dataset(
                plan.input_files,
                plan.bert_config,
                batch_size=B,
                max_seq_length=plan.max_seq_length,
                max_predictions_per_seq=plan.max_predictions_per_seq,
                seed=plan.data_seed,
                start_example=skip * B,
                accumulation_steps=plan.gradient_accumulation_steps,
            )

        result = self.driver.train(dataset, self.progress)
        summary = {"start_step": result["start_step"], "steps_run": result["steps_run"]}
        if result["steps_run"]:
            summary.update(final_loss=result["final_loss"], seconds=result["seconds"],
                           examples_per_s=result["examples_per_s"])
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
                self.emit(phase="eval", done=len(parts), total=plan.max_eval_steps, unit="batches")
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as exc:
            raise data_error(exc, plan.input_files) from None
        if not parts:
            raise InputError(
                f"no full eval batch of {plan.eval_batch_size} examples",
                path=plan.input_files[0],
                hint="lower --eval-batch-size",
            )
        sums = {k: float(np.sum([np.float64(p[k].numpy()) for p in parts])) for k in parts[0]}
        step_value = self.driver.global_step
        results = eval_metrics(sums, step_value)
        if self.runtime.is_chief:
            write_eval_results(plan.output_dir, results)
            writer = tf.summary.create_file_writer(str(plan.output_dir / "eval"))
            scalars(writer, step_value, {k: v for k, v in results.items() if k != "global_step"})
        self.emit(phase="eval", step=step_value, results=results, batches=len(parts), final=True)
        return results

    def emit(self, **event: Any) -> None:
        if self.progress is not None:
            self.progress(event)


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
    result["global_step"] = run.driver.global_step
    result["checkpoint"] = run.driver.manager.latest()
    return result


__all__ = [
    "EVAL_KEYS",
    "PretrainPlan",
    "PretrainingModel",
    "eval_metrics",
    "pretrain",
]
