"""The one way the engine turns Python into a TensorFlow graph: :func:`compiled`.

``compiled(fn, ...)`` is ``tf.function`` with **AutoGraph off** and ``reduce_retracing`` on.
The engine's model, losses, train step and inference forwards branch and loop only on Python
values (layers, variables, flags, the replica count) and use TF ops (``tf.where``, ``tf.cond``)
for anything that depends on a tensor, so AutoGraph's source rewrite of every function reached
from the step only costs time: on a tiny MRPC run (``bert finetune mrpc``, 2-core AVX2 CPU)
the first training step took 5.9 s with it and 1.9-2.6 s without, for the same graph, and the
whole command (train 16 steps + evaluate) 12.6 s vs 10.0 s (medians of 3, interleaved). A Python
``if`` on a tensor now fails at trace time ("using a tf.Tensor as a Python bool"), which is
the point: the engine must not grow graph control flow by accident.
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

__all__ = ["compiled"]


def compiled(fn: Callable, *, jit_compile: bool = False, input_signature: Any = None) -> Callable:
    """``tf.function(fn)`` without AutoGraph; ``jit_compile`` turns XLA on; an
    ``input_signature`` fixes the argument specs (one trace for every batch shape)."""
    return tf.function(fn, input_signature=input_signature, jit_compile=bool(jit_compile), autograph=False,
                       reduce_retracing=True)
