"""Dynamic loss scaling for fp16 training: scale the loss, unscale the gradients, skip the step
(and halve the scale) when a gradient is not finite, double the scale after ``growth_interval``
good steps. bf16 and fp32 need none; variables always stay float32. The optimizer's side of a
skipped step (nothing applied, branch-free) is :mod:`bert_cli.engine.optimization`'s.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

__all__ = ["LossScaler"]


class LossScaler(tf.Module):
    """Dynamic loss scaling for float16 training (variables stay float32).

    In the step: ``loss_scaler.scale_loss(loss)`` before the gradient, ``unscale(grads)``
    after it, ``all_finite(grads)`` to decide whether to apply, then ``update(finite)``:
    a non-finite step halves the scale (not below ``min_scale``) and resets the good-step
    count; ``growth_interval`` consecutive finite steps double it. Defaults match Keras'
    ``LossScaleOptimizer`` (initial 2**15, growth every 2000 steps). Build it under
    ``strategy.scope()``; :meth:`update` works in replica (via merge_call) and cross-replica
    contexts.
    """

    def __init__(
        self,
        initial_scale: float = 2.0**15,
        growth_interval: int = 2000,
        factor: float = 2.0,
        min_scale: float = 1.0,
        name: str = "LossScaler",
    ) -> None:
        super().__init__(name=name)
        if initial_scale <= 0 or growth_interval <= 0 or factor <= 1:
            raise ValueError("initial_scale > 0, growth_interval > 0 and factor > 1 are required")
        self.growth_interval = int(growth_interval)
        self.factor = float(factor)
        self.min_scale = float(min_scale)
        self.scale = tf.Variable(float(initial_scale), trainable=False, dtype=tf.float32, name="loss_scale")
        self.good_steps = tf.Variable(0, trainable=False, dtype=tf.int64, name="good_steps")

    def scale_loss(self, loss: tf.Tensor) -> tf.Tensor:
        return tf.cast(loss, tf.float32) * tf.convert_to_tensor(self.scale)

    def unscale(self, grads: Sequence[tf.Tensor | None]) -> list[tf.Tensor | None]:
        inv = 1.0 / tf.convert_to_tensor(self.scale)
        return [None if g is None else tf.cast(g, tf.float32) * inv for g in grads]

    @staticmethod
    def all_finite(grads: Sequence[tf.Tensor | None]) -> tf.Tensor:
        """Scalar bool: every gradient entry is finite."""
        checks = [tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None]
        return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)

    def update(self, finite) -> None:
        """Grow or shrink the scale after a step whose gradients were ``finite``."""
        finite = tf.cast(finite, tf.bool)
        if tf.distribute.in_cross_replica_context():
            self._distributed_update(tf.distribute.get_strategy(), finite)
        else:
            tf.__internal__.distribute.interim.maybe_merge_call(
                self._distributed_update, tf.distribute.get_strategy(), finite
            )

    def _distributed_update(self, strategy, finite) -> None:
        strategy.extended.update(self.scale, self._update_scale, args=(finite,), group=False)

    def _update_scale(self, scale_var, finite):
        good = tf.convert_to_tensor(self.good_steps) + 1
        scale = tf.convert_to_tensor(scale_var)
        grow = finite & (good >= self.growth_interval)
        new_scale = tf.where(
            finite,
            tf.where(grow, scale * self.factor, scale),
            tf.maximum(scale / self.factor, self.min_scale),
        )
        new_good = tf.where(finite & ~grow, good, tf.zeros_like(good))
        return tf.group(scale_var.assign(new_scale), self.good_steps.assign(new_good))
