"""One compiled training step: loss -> gradients -> (accumulate) -> all-reduce -> clip -> apply.

:class:`TrainStep` is the piece every trainer (pretraining, classifier, SQuAD) shares. Given

* ``loss_fn(batch, training) -> scalar`` (the per-example **mean** loss of the batch it gets),
* an optimizer from :mod:`bert_cli.engine.optimization` (it carries the named variables),
* a schedule ``lr(global_step)``, a clip norm (1.0 as the original), ``accumulation_steps``,
* an optional :class:`~bert_cli.engine.loss_scale.LossScaler` (fp16) and a
  ``tf.distribute`` strategy (``None`` = the default strategy),

``step(batch)`` runs one **micro-batch** and returns its loss (float32 scalar, the mean over
replicas). Every ``accumulation_steps``-th call also applies one optimizer update and
increments ``global_step``. So ``global_step`` counts optimizer steps, as in the original
(incremented by the step, not the optimizer).

Design and why
--------------
* **Exact accumulation.** Each micro-batch loss is multiplied by ``1/(K*R)`` (K micro-batches,
  R replicas) before differentiation and the gradients are *summed*: over the K micro-batches
  in per-replica accumulators and over replicas by one all-reduce. The result is the gradient
  of the mean loss over the ``K*R*b`` examples, i.e. the same update as one batch of ``K*b``
  on one device (up to float rounding), provided ``loss_fn`` returns a per-batch mean and the
  batches are full (the original drops remainders). Clipping, the optimizer update, the
  loss-scale update and the ``global_step`` increment happen once per K micro-batches.
* **Accumulators are per replica** (``ON_READ`` variables, aggregation SUM, float32): micro
  steps never communicate; the all-reduce happens once per optimizer step.
* **Two compiled functions, chosen in Python**: ``micro`` (accumulate) and ``final``
  (accumulate the last micro-batch, all-reduce, unscale-check, clip, apply). With K=1 only
  ``final`` exists and no accumulator is allocated. Choosing in Python avoids a ``tf.cond``
  around a cross-replica update, which ``MirroredStrategy`` does not support.
* **Distribution**: the step runs ``strategy.run`` on a per-replica batch (an element of
  ``strategy.experimental_distribute_dataset(...)``, see
  :meth:`bert_cli.engine.device.Runtime.distribute`). The gradients are summed with the
  replica context's ``all_reduce`` (as Keras does), then clipped by their global norm -- the
  global norm of the global-batch gradient, identical to the single-device run. (The original
  on TPU clipped per shard *before* the cross-replica sum; clipping after the sum is what
  makes multi-device runs reproduce single-device ones.) The optimizer applies the update
  through ``merge_call`` + ``extended.update`` on every device copy.
* **fp16**: the scaled loss is differentiated, gradients are unscaled right away (accumulators
  hold true float32 gradients), and a non-finite gradient anywhere skips the whole update
  (variables, slots and ``global_step`` unchanged, accumulators cleared) and halves the scale.
* **XLA**: with one replica the whole step is compiled with ``jit_compile``; with several,
  only the per-replica loss+gradient function is (XLA cannot compile cross-device
  collectives issued by ``MirroredStrategy`` from inside the function).
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

from .functions import compiled
from .loss_scale import LossScaler
from .optimization import clip_by_global_norm

LossFn = Callable[[Any, bool], tf.Tensor]


class TrainStep:
    """A compiled training step with gradient accumulation, clipping, loss scaling, distribution.

    Build it (and the optimizer, loss scaler and model) under ``strategy.scope()``. Then call
    ``step(batch)`` once per micro-batch; it returns the micro-batch loss. After each call,
    ``step.last`` holds a dict of tensors: ``loss`` and, on calls that finished an optimizer
    step, ``learning_rate``, ``grad_norm`` (before clipping) and ``applied`` (false when fp16
    overflow skipped the update).
    """

    def __init__(
        self,
        loss_fn: LossFn,
        optimizer,
        schedule: Callable[[tf.Tensor], tf.Tensor],
        *,
        clip_norm: float | None = 1.0,
        accumulation_steps: int = 1,
        loss_scaler: LossScaler | None = None,
        strategy: tf.distribute.Strategy | None = None,
        jit_compile: bool = False,
        global_step: tf.Variable | None = None,
    ) -> None:
        if accumulation_steps < 1:
            raise ValueError(f"accumulation_steps must be >= 1, got {accumulation_steps}")
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.schedule = schedule
        self.clip_norm = clip_norm
        self.accumulation_steps = int(accumulation_steps)
        self.loss_scaler = loss_scaler
        self.strategy = strategy or tf.distribute.get_strategy()
        self.jit_compile = bool(jit_compile)
        self.variables: list[tf.Variable] = list(optimizer.variables_)
        self.num_replicas = int(self.strategy.num_replicas_in_sync)
        with self.strategy.scope():
            if global_step is None:
                global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.global_step = global_step
            self.accumulators: list[tf.Variable] = []
            if self.accumulation_steps > 1:
                self.accumulators = [
                    tf.Variable(
                        tf.zeros(v.shape, tf.float32),
                        trainable=False,
                        synchronization=tf.VariableSynchronization.ON_READ,
                        aggregation=tf.VariableAggregation.SUM,
                        name="grad_accum",
                    )
                    for v in self.variables
                ]
        self._check_scope()
        self._micro_count = 0
        self.last: dict[str, tf.Tensor] = {}
        self._grads_fn = self._replica_grads
        if self.jit_compile and self.num_replicas > 1:
            self._grads_fn = compiled(self._replica_grads, jit_compile=True)
        outer_jit = self.jit_compile and self.num_replicas == 1
        self._final_fn = compiled(self._final, jit_compile=outer_jit)
        self._micro_fn = compiled(self._micro, jit_compile=outer_jit)

    # ---------------------------------------------------------------- public

    def __call__(self, batch) -> tf.Tensor:
        """Run one micro-batch; every ``accumulation_steps``-th call applies an update."""
        if self._micro_count + 1 >= self.accumulation_steps:
            self.last = self._final_fn(batch)
            self._micro_count = 0
        else:
            self.last = self._micro_fn(batch)
            self._micro_count += 1
        return self.last["loss"]

    @property
    def pending_micro_steps(self) -> int:
        """Micro-batches accumulated since the last optimizer step (0 at a step boundary)."""
        return self._micro_count

    def reset_accumulation(self) -> None:
        """Drop accumulated micro-batch gradients (e.g. after restoring a checkpoint)."""
        self._micro_count = 0
        for acc in self.accumulators:
            acc.assign(tf.zeros_like(acc))

    # ---------------------------------------------------------------- compiled bodies

    def _micro(self, batch) -> dict[str, tf.Tensor]:
        loss = self.strategy.run(self._replica_micro, args=(batch,))
        return {"loss": self._mean(loss)}

    def _final(self, batch) -> dict[str, tf.Tensor]:
        out = self.strategy.run(self._replica_final, args=(batch,))
        result = {"loss": self._mean(out["loss"])}
        for key in ("learning_rate", "grad_norm", "applied"):
            result[key] = self.strategy.experimental_local_results(out[key])[0]
        return result

    def _mean(self, per_replica_loss) -> tf.Tensor:
        return self.strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica_loss, axis=None)

    # ---------------------------------------------------------------- replica context

    def _replica_grads(self, batch):
        """Loss and this replica's share of the gradient of the global mean loss."""
        with tf.GradientTape() as tape:
            loss = tf.cast(self.loss_fn(batch, True), tf.float32)
            scaled = loss / float(self.accumulation_steps * self.num_replicas)
            if self.loss_scaler is not None:
                scaled = self.loss_scaler.scale_loss(scaled)
        grads = tape.gradient(scaled, self.variables)
        if self.loss_scaler is not None:
            grads = self.loss_scaler.unscale(grads)
        grads = [None if g is None else tf.cast(tf.convert_to_tensor(g), tf.float32) for g in grads]
        return loss, grads

    def _replica_micro(self, batch):
        loss, grads = self._grads_fn(batch)
        for acc, g in zip(self.accumulators, grads):
            if g is not None:
                acc.assign_add(g)
        return loss

    def _replica_final(self, batch):
        loss, grads = self._grads_fn(batch)
        if self.accumulators:
            grads = [
                tf.convert_to_tensor(acc) if g is None else tf.convert_to_tensor(acc) + g
                for acc, g in zip(self.accumulators, grads)
            ]
            for acc in self.accumulators:
                acc.assign(tf.zeros_like(acc))
        grads = self._all_reduce(grads)
        finite = LossScaler.all_finite(grads) if self.loss_scaler is not None else tf.constant(True)
        grads, norm = clip_by_global_norm(grads, self.clip_norm)
        step = tf.convert_to_tensor(self.global_step)
        lr = tf.cast(self.schedule(step), tf.float32)
        gate = finite if self.loss_scaler is not None else None  # fp32/bf16: never skipped
        self.optimizer.apply_gradients(grads, lr, step=step, apply=gate)
        if self.loss_scaler is not None:
            self.loss_scaler.update(finite)
        self._increment_global_step(finite)
        return {"loss": loss, "learning_rate": lr, "grad_norm": norm, "applied": finite}

    def _all_reduce(self, grads):
        if self.num_replicas == 1:
            return grads
        present = [g for g in grads if g is not None]
        reduced = iter(tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, present))
        return [None if g is None else next(reduced) for g in grads]

    def _increment_global_step(self, finite) -> None:
        def bump(strategy, finite):
            strategy.extended.update(
                self.global_step,
                lambda var, f: var.assign_add(tf.cast(f, tf.int64)),
                args=(finite,),
                group=False,
            )

        tf.__internal__.distribute.interim.maybe_merge_call(bump, self.strategy, finite)

    # ---------------------------------------------------------------- checks

    def _check_scope(self) -> None:
        """Variables of a distributed run must have been created under ``strategy.scope()``."""
        if not _is_distributed(self.strategy):
            return
        owned = list(self.variables) + list(self.optimizer.m) + list(self.optimizer.v) + [self.global_step]
        if self.loss_scaler is not None:
            owned += [self.loss_scaler.scale, self.loss_scaler.good_steps]
        for var in owned:
            if not self.strategy.extended.variable_created_in_scope(var):
                raise ValueError(
                    f"variable {var.name} was not created under strategy.scope(); build the model, "
                    "optimizer and loss scaler inside `with runtime.strategy.scope():`"
                )


def _is_distributed(strategy) -> bool:
    """False for the default (no-op) strategy, whose variables are plain variables."""
    return type(strategy).__name__ != "_DefaultDistributionStrategy"
