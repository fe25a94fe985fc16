"""The original BERT optimizer, learning-rate schedule and clipping.

This is the TF2 twin of google-research/bert ``optimization.py`` (see
``original-behaviour.md`` §d.2); what matters and differs from the usual Keras optimizers:

* :class:`AdamWeightDecay` has **no bias correction**, epsilon **1e-6** and a *decoupled*
  weight decay that is added to the Adam update before the learning rate multiplies it::

      m = b1*m + (1-b1)*g            v = b2*v + (1-b2)*g*g
      update = m / (sqrt(v) + eps) + wd*theta        (wd term skipped for excluded names)
      theta -= lr * update

  Keras ``AdamW`` (and the Hugging Face / Model Garden TF ports) subclass Adam and therefore
  *do* bias-correct; the first steps of a fine-tuning run differ a lot (step 1 of Keras Adam
  moves every weight by ~lr, the original by ~lr*0.1/sqrt(0.001) ~= 3.16*lr).
* Weight-decay exclusions are ``re.search`` of ``LayerNorm``, ``layer_norm``, ``bias`` on the
  variable's **TF1 name** (``bert/encoder/layer_0/attention/output/LayerNorm/gamma``). Keras 3
  variable names are not TF1 paths, so the caller passes the names explicitly: an optimizer
  is built from ``(name, variable)`` pairs (:func:`named_variables` helps) and its gradients are
  given in the same order.
* The slots ``m``/``v`` are float32 zeros and are exposed by name (``<name>/adam_m``,
  ``<name>/adam_v``) through :meth:`AdamWeightDecay.slot_variables`, so a checkpoint writer can
  save and restore them under the original's names.
* :func:`learning_rate` is the original schedule: linear decay to 0 over ``num_train_steps``
  **computed from step 0**, replaced during warmup by ``init_lr*step/warmup``; step 0 has
  lr 0 and the lr *jumps* to ``init_lr*(1-W/T)`` at the end of warmup.
  :func:`learning_rate_py` is its pure-Python twin (tests, ETA, logging).
* :func:`clip_by_global_norm` clips all gradients together to norm 1.0 (``None`` kept).
* ``global_step`` is *not* owned by the optimizer: the training step increments it
  (:mod:`bert_cli.engine.train_step`), as the original did.

Why a plain ``tf.Module`` and not a ``keras.optimizers.Optimizer`` subclass: the Keras 3
optimizer owns its ``iterations`` counter, derives slot names from Keras paths, applies bias
correction in Adam and weight decay with its own name matching; bending all four is more
code and more magic than the ~40 lines of arithmetic here. The module creates its slots
eagerly at construction (so nothing is created inside a ``tf.function``); built under
``strategy.scope()`` the slots become MirroredVariables. :meth:`apply_gradients` follows the
protocol Keras' own TF optimizer uses: from a replica context it hops to the cross-replica
context with ``maybe_merge_call`` and updates every variable with
``strategy.extended.update`` (one ``assign_sub`` per device copy), which works under the
default strategy, ``MirroredStrategy``, ``MultiWorkerMirroredStrategy`` and ``TPUStrategy``
and inside ``tf.function`` / XLA. Gradients must already be all-reduced by the caller
(:class:`~bert_cli.engine.train_step.TrainStep` does it once per optimizer step).

LAMB (:class:`Lamb`, ``--optimizer lamb``) is the "common BERT LAMB" (You et al. 2019 as in
TF-Addons / Model Garden / NVIDIA): Adam moments **with** bias correction (as in the LAMB
paper; ``bias_correction=False`` turns it off), the same decoupled weight decay and
exclusions, and a per-variable trust ratio ``||theta|| / ||update||`` (1.0 when either norm
is 0). Variables excluded from weight decay are also excluded from the trust ratio (ratio
1.0), the TF-Addons/Model Garden default (``exclude_from_layer_adaptation`` defaults to the
weight-decay exclusions). Its slots are ``<name>/lamb_m`` and ``<name>/lamb_v``.

fp16 needs dynamic loss scaling (:class:`bert_cli.engine.loss_scale.LossScaler`). Skipping a step is branch-free: :meth:`AdamWeightDecay.apply_gradients` takes an ``apply``
boolean and keeps ``theta``, ``m`` and ``v`` unchanged (``tf.where``) when it is false; a
``tf.cond`` around a cross-replica update is not supported by ``MirroredStrategy``.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

import tensorflow as tf

EXCLUDE_FROM_WEIGHT_DECAY: tuple[str, ...] = ("LayerNorm", "layer_norm", "bias")
"""The original's exclusion patterns (``re.search`` on the TF1 variable name)."""

OPTIMIZERS: tuple[str, ...] = ("adamw", "lamb")
"""Names accepted by :func:`create_optimizer` (the ``--optimizer`` choices)."""


# --------------------------------------------------------------------------------------------
# Learning-rate schedule
# --------------------------------------------------------------------------------------------


def _check_schedule(init_lr: float, num_train_steps: int, num_warmup_steps: int) -> None:
    if num_train_steps <= 0:
        raise ValueError(f"num_train_steps must be positive, got {num_train_steps}")
    if num_warmup_steps < 0:
        raise ValueError(f"num_warmup_steps must be >= 0, got {num_warmup_steps}")
    if not math.isfinite(init_lr) or init_lr < 0:
        raise ValueError(f"init_lr must be a finite number >= 0, got {init_lr}")


def learning_rate_py(step: int, init_lr: float, num_train_steps: int, num_warmup_steps: int = 0) -> float:
    """The original schedule in pure Python: warmup ``init_lr*step/W``, then linear decay.

    The decay ``init_lr*(1 - min(step, T)/T)`` is computed from step 0, so the lr jumps from
    ``init_lr*(W-1)/W`` to ``init_lr*(1-W/T)`` at ``step == W``. ``lr(0) == 0`` and
    ``lr(step >= T) == 0``.
    """
    _check_schedule(init_lr, num_train_steps, num_warmup_steps)
    step = max(int(step), 0)
    if step < num_warmup_steps:
        return init_lr * step / num_warmup_steps
    return init_lr * (1.0 - min(step, num_train_steps) / num_train_steps)


def learning_rate(step, init_lr: float, num_train_steps: int, num_warmup_steps: int = 0) -> tf.Tensor:
    """The original schedule as float32 tf ops on an integer ``step`` (graph/XLA friendly).

    Same arithmetic as ``tf.compat.v1.train.polynomial_decay(power=1, end=0)`` followed by
    the original's warmup blend, all in float32.
    """
    _check_schedule(init_lr, num_train_steps, num_warmup_steps)
    step = tf.cast(step, tf.int64)
    step_f = tf.cast(step, tf.float32)
    total = tf.constant(float(num_train_steps), tf.float32)
    decayed = init_lr * (1.0 - tf.minimum(step_f, total) / total)
    if num_warmup_steps == 0:
        return decayed
    warm = init_lr * (step_f / tf.constant(float(num_warmup_steps), tf.float32))
    return tf.where(step < num_warmup_steps, warm, decayed)


class LinearWarmupDecay:
    """A callable schedule object: ``schedule(step) -> float32 tensor``, ``schedule.at(step)``."""

    def __init__(self, init_lr: float, num_train_steps: int, num_warmup_steps: int = 0) -> None:
        _check_schedule(init_lr, num_train_steps, num_warmup_steps)
        self.init_lr = float(init_lr)
        self.num_train_steps = int(num_train_steps)
        self.num_warmup_steps = int(num_warmup_steps)

    def __call__(self, step) -> tf.Tensor:
        return learning_rate(step, self.init_lr, self.num_train_steps, self.num_warmup_steps)

    def at(self, step: int) -> float:
        """Pure-Python value at ``step`` (no TensorFlow op)."""
        return learning_rate_py(step, self.init_lr, self.num_train_steps, self.num_warmup_steps)

    def __repr__(self) -> str:
        return (
            f"LinearWarmupDecay(init_lr={self.init_lr}, num_train_steps={self.num_train_steps}, "
            f"num_warmup_steps={self.num_warmup_steps})"
        )


def num_warmup_steps_for(num_train_steps: int, warmup_proportion: float) -> int:
    """``int(num_train_steps * warmup_proportion)``, the original's rounding."""
    return int(num_train_steps * warmup_proportion)


# --------------------------------------------------------------------------------------------
# Clipping
# --------------------------------------------------------------------------------------------


def clip_by_global_norm(grads: Sequence[tf.Tensor | None], clip_norm: float | None = 1.0):
    """Clip all gradients together to global norm ``clip_norm``; ``None`` entries pass through.

    Returns ``(clipped_grads, global_norm)``. ``clip_norm=None`` only measures the norm.
    The norm is that of ``tf.clip_by_global_norm`` (non-finite when a gradient is).
    """
    present = [g for g in grads if g is not None]
    if not present:
        return list(grads), tf.constant(0.0, tf.float32)
    norm = tf.linalg.global_norm(present)
    if clip_norm is None:
        return list(grads), norm
    clipped, _ = tf.clip_by_global_norm(present, clip_norm, use_norm=norm)
    it = iter(clipped)
    return [None if g is None else next(it) for g in grads], norm


# --------------------------------------------------------------------------------------------
# Variables with names
# --------------------------------------------------------------------------------------------


def as_tf_variable(variable) -> tf.Variable:
    """The ``tf.Variable`` behind ``variable`` (Keras 3 variables wrap one in ``.value``)."""
    if isinstance(variable, tf.Variable):
        return variable
    inner = getattr(variable, "value", None)
    if isinstance(inner, tf.Variable):
        return inner
    raise TypeError(f"not a TensorFlow variable: {variable!r}")


def named_variables(variables: Iterable, names: Iterable[str] | None = None) -> list[tuple[str, tf.Variable]]:
    """Pair variables with names: explicit ``names`` or, failing that, each variable's ``path``/``name``.

    Returns ``[(name, tf.Variable)]``; duplicate names are an error (slots are keyed by name).
    """
    variables = list(variables)
    if names is None:
        names = [_default_name(v) for v in variables]
    names = list(names)
    if len(names) != len(variables):
        raise ValueError(f"{len(names)} names for {len(variables)} variables")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate variable name {name!r}")
        seen.add(name)
    return [(n, as_tf_variable(v)) for n, v in zip(names, variables)]


def _default_name(variable) -> str:
    name = getattr(variable, "path", None) or variable.name
    return name[:-2] if name.endswith(":0") else name


def excluded(name: str, patterns: Sequence[str]) -> bool:
    """True when any pattern ``re.search``-matches ``name`` (the original's rule)."""
    return any(re.search(p, name) is not None for p in patterns)


# --------------------------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------------------------


class _SlotOptimizer(tf.Module):
    """Shared machinery: named variables, the options (the original's defaults), float32 m/v
    slots, Adam's moving averages, the gated update and the distributed apply."""

    slot_suffixes: tuple[str, str] = ("adam_m", "adam_v")

    def __init__(
        self,
        variables: Iterable[tuple[str, object]],
        *,
        weight_decay_rate: float = 0.01,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-6,
        exclude_from_weight_decay: Sequence[str] = EXCLUDE_FROM_WEIGHT_DECAY,
        name: str | None = None,  # None: the class's name (AdamWeightDecay, Lamb)
    ) -> None:
        super().__init__(name=type(self).__name__ if name is None else name)
        pairs = [(n, as_tf_variable(v)) for n, v in variables]
        names = [n for n, _ in pairs]
        if len(set(names)) != len(names):
            raise ValueError("variable names must be unique")
        self.names: list[str] = names
        self.variables_: list[tf.Variable] = [v for _, v in pairs]
        self.weight_decay_rate = float(weight_decay_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.exclude_from_weight_decay = tuple(exclude_from_weight_decay)
        self.decays: list[bool] = [
            self.weight_decay_rate > 0 and not excluded(n, self.exclude_from_weight_decay) for n in names
        ]
        m_suffix, v_suffix = self.slot_suffixes
        self.m: list[tf.Variable] = []
        self.v: list[tf.Variable] = []
        for n, var in pairs:
            self.m.append(self._zeros_like(var, f"{n}/{m_suffix}"))
            self.v.append(self._zeros_like(var, f"{n}/{v_suffix}"))

    @staticmethod
    def _zeros_like(var: tf.Variable, name: str) -> tf.Variable:
        # Slot names are TF1 paths with "/", not valid op names: keep them in slot_variables().
        return tf.Variable(
            tf.zeros(var.shape, tf.float32),
            trainable=False,
            name=re.sub(r"[^A-Za-z0-9_.\-]", "_", name),
        )

    def slot_variables(self) -> dict[str, tf.Variable]:
        """``{"<name>/adam_m": var, "<name>/adam_v": var, ...}`` for checkpoint writers."""
        m_suffix, v_suffix = self.slot_suffixes
        out: dict[str, tf.Variable] = {}
        for n, m, v in zip(self.names, self.m, self.v):
            out[f"{n}/{m_suffix}"] = m
            out[f"{n}/{v_suffix}"] = v
        return out

    def reset_slots(self) -> None:
        """Zero every slot (the original never restores slots from ``init_checkpoint``)."""
        for s in self.m + self.v:
            s.assign(tf.zeros_like(s))

    def apply_gradients(self, grads: Sequence[tf.Tensor | None], learning_rate, *, step=None, apply=None) -> None:
        """Apply one update; ``grads`` are in the constructor's variable order (``None`` skips).

        ``learning_rate`` is a float or scalar tensor. ``step`` is the number of updates
        applied before this one (``global_step``; only LAMB's bias correction reads it).
        ``apply`` (scalar bool tensor) leaves everything unchanged when false (fp16 overflow);
        None, the default, always applies, with no select pass over the weights. Gradients
        must already be summed across replicas. Works in eager, ``tf.function``, replica and
        cross-replica contexts.
        """
        grads = list(grads)
        if len(grads) != len(self.variables_):
            raise ValueError(f"{len(grads)} gradients for {len(self.variables_)} variables")
        lr = tf.cast(learning_rate, tf.float32)
        step = tf.constant(0, tf.int64) if step is None else tf.cast(step, tf.int64)
        apply = None if apply is None else tf.cast(apply, tf.bool)  # None: no select passes at all
        if tf.distribute.in_cross_replica_context():
            self._distributed_apply(tf.distribute.get_strategy(), grads, lr, step, apply)
        else:
            tf.__internal__.distribute.interim.maybe_merge_call(
                self._distributed_apply, tf.distribute.get_strategy(), grads, lr, step, apply
            )

    def _distributed_apply(self, strategy, grads, lr, step, apply) -> None:
        for i, grad in enumerate(grads):
            if grad is None:
                continue
            strategy.extended.update(
                self.variables_[i],
                self._update_one,
                args=(grad, lr, step, apply, i),
                group=False,
            )

    @staticmethod
    def _gated(apply, new, old):
        """``new``, or ``old`` where the (fp16) step is skipped; no extra pass when ``apply`` is None."""
        return new if apply is None else tf.where(apply, new, old)

    def _update_one(self, var, grad, lr, step, apply, index: int):
        # Inside ``extended.update``: ``var`` is this device's copy; reading and assigning the
        # MirroredVariable slots in this update context touch this device's copy only.
        raise NotImplementedError

    def _moments(self, grad, index: int):
        """``(m, v, next_m, next_v)`` of variable ``index``: its slots' values and Adam's moving
        averages updated with ``grad`` (float32)."""
        grad = tf.cast(grad, tf.float32)
        m = tf.convert_to_tensor(self.m[index])
        v = tf.convert_to_tensor(self.v[index])
        next_m = self.beta_1 * m + (1.0 - self.beta_1) * grad
        next_v = self.beta_2 * v + (1.0 - self.beta_2) * tf.square(grad)
        return m, v, next_m, next_v

    def _commit(self, var, index: int, apply, moments, delta):
        """Store the new moments and ``var -= delta``; everything stays as it was where ``apply``
        is False (a skipped fp16 step)."""
        m, v, next_m, next_v = moments
        return tf.group(
            self.m[index].assign(self._gated(apply, next_m, m)),
            self.v[index].assign(self._gated(apply, next_v, v)),
            var.assign_sub(self._gated(apply, delta, tf.zeros_like(delta))),
        )


class AdamWeightDecay(_SlotOptimizer):
    """The original ``AdamWeightDecayOptimizer``: Adam without bias correction + decoupled decay.

    ``AdamWeightDecay(named_vars)`` where ``named_vars`` is ``[(tf1_name, variable), ...]``;
    then ``apply_gradients(grads, lr)`` with grads in that order.
    """

    slot_suffixes = ("adam_m", "adam_v")

    def _update_one(self, var, grad, lr, step, apply, index: int):
        moments = self._moments(grad, index)
        _, _, next_m, next_v = moments
        update = next_m / (tf.sqrt(next_v) + self.epsilon)
        if self.decays[index]:
            update += self.weight_decay_rate * tf.convert_to_tensor(var)
        return self._commit(var, index, apply, moments, lr * update)


class Lamb(_SlotOptimizer):
    """LAMB: Adam moments (bias-corrected by default) + decoupled decay + layer-wise trust ratio.

    ``theta -= lr * r * update`` with ``r = ||theta|| / ||update||`` (1.0 when either norm is
    zero, or when the name matches ``exclude_from_layer_adaptation``, which defaults to the
    weight-decay exclusions). ``step`` passed to :meth:`apply_gradients` is the number of
    updates already applied (``global_step``); bias correction uses ``t = step + 1``.
    """

    slot_suffixes = ("lamb_m", "lamb_v")

    def __init__(
        self,
        variables: Iterable[tuple[str, object]],
        *,
        exclude_from_layer_adaptation: Sequence[str] | None = None,
        bias_correction: bool = True,
        **options,  # weight_decay_rate, beta_1, beta_2, epsilon, exclude_from_weight_decay, name
    ) -> None:
        super().__init__(variables, **options)
        self.bias_correction = bool(bias_correction)
        self.exclude_from_layer_adaptation = tuple(
            self.exclude_from_weight_decay if exclude_from_layer_adaptation is None else exclude_from_layer_adaptation
        )
        self.adapts: list[bool] = [not excluded(n, self.exclude_from_layer_adaptation) for n in self.names]

    def _update_one(self, var, grad, lr, step, apply, index: int):
        theta = tf.convert_to_tensor(var)
        moments = self._moments(grad, index)
        _, _, next_m, next_v = moments
        m_hat, v_hat = next_m, next_v
        if self.bias_correction:
            t = tf.cast(step + 1, tf.float32)
            m_hat = next_m / (1.0 - tf.pow(self.beta_1, t))
            v_hat = next_v / (1.0 - tf.pow(self.beta_2, t))
        update = m_hat / (tf.sqrt(v_hat) + self.epsilon)
        if self.decays[index]:
            update += self.weight_decay_rate * theta
        ratio = tf.constant(1.0, tf.float32)
        if self.adapts[index]:
            w_norm = tf.norm(theta)
            u_norm = tf.norm(update)
            ratio = tf.where((w_norm > 0) & (u_norm > 0), w_norm / tf.maximum(u_norm, 1e-30), 1.0)
        return self._commit(var, index, apply, moments, lr * ratio * update)


def create_optimizer(
    name: str,
    variables: Iterable[tuple[str, object]],
    *,
    weight_decay_rate: float = 0.01,
    epsilon: float = 1e-6,
) -> _SlotOptimizer:
    """``"adamw"`` -> :class:`AdamWeightDecay`, ``"lamb"`` -> :class:`Lamb` (call under ``strategy.scope()``)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key in ("adamw", "adam", "adamweightdecay"):
        return AdamWeightDecay(variables, weight_decay_rate=weight_decay_rate, epsilon=epsilon)
    if key == "lamb":
        return Lamb(variables, weight_decay_rate=weight_decay_rate, epsilon=epsilon)
    raise ValueError(f"unknown optimizer {name!r} (choose from {', '.join(OPTIMIZERS)})")
