"""How big a model a ``BertConfig`` describes, and whether it can fit this machine (pure Python).

A ``bert_config.json`` with ``num_hidden_layers: 1e9`` or a ``vocab_size`` of a trillion is valid
JSON with positive integers, yet building it would grow until the machine runs out of memory.
:func:`check_fits` refuses such a config with a :class:`ConfigError` naming the file and the
estimate, before any tensor is allocated.

Formulas (H hidden_size, L num_hidden_layers, N num_attention_heads, I intermediate_size,
V vocab_size, P max_position_embeddings, T type_vocab_size, S sequence length)::

    embeddings      V*H + P*H + T*H + 2H                     (word, position, type, LayerNorm)
    one layer       4(H*H + H) + 2H + (H*I + I) + (I*H + H) + 2H
                    = 4H^2 + 2HI + 9H + I                    (Q K V O, LayerNorm, FFN, LayerNorm)
    pooler          H*H + H
    MLM + NSP heads H*H + H + 2H + V + 2H + 2               (transform, LayerNorm, bias, NSP)

For Google's BERT-Base Uncased this is 110,106,428 parameters, the count of its released
checkpoint. Memory is then, in float32 (4 bytes):

- inference: the weights, 4 bytes per parameter, plus the activations of one sequence;
- training: 16 bytes per parameter (weights, gradients and the two Adam/LAMB slots) plus the
  activations kept for the backward pass of one sequence, per layer about
  ``S*(10H + 2I) + 2.5*N*S^2`` floats (inputs of the dense layers, LayerNorms, GELU, dropout
  masks, the attention scores and probabilities).

Activations are counted for ONE sequence on purpose: the estimate is a lower bound of what any
run needs on one machine (a batch may be split over replicas, workers or accumulation steps),
so a config is refused only when it certainly cannot fit, never a large but feasible one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .modelconfig import BertConfig

__all__ = ["parameter_count", "memory_estimate", "physical_memory", "check_fits", "human_bytes"]

BYTES_PER_FLOAT = 4
TRAINING_BYTES_PER_PARAMETER = 16  # weights + gradients + 2 optimizer slots, float32


def parameter_count(config: "BertConfig", *, heads: bool = True) -> int:
    """Parameters of the encoder and pooler, plus the MLM/NSP heads when ``heads``."""
    H, L, I, V = config.hidden_size, config.num_hidden_layers, config.intermediate_size, config.vocab_size
    embeddings = (V + config.max_position_embeddings + config.type_vocab_size) * H + 2 * H
    layer = 4 * H * H + 2 * H * I + 9 * H + I
    pooler = H * H + H
    total = embeddings + L * layer + pooler
    if heads:
        total += H * H + H + 2 * H + V + 2 * H + 2
    return total


def activation_floats(config: "BertConfig", seq_length: int, *, training: bool) -> int:
    """Floats of activations for one sequence of ``seq_length`` tokens (see the module doc)."""
    S, H, I, N = seq_length, config.hidden_size, config.intermediate_size, config.num_attention_heads
    if training:
        per_layer = S * (10 * H + 2 * I) + (5 * N * S * S) // 2
        return config.num_hidden_layers * per_layer + S * H * 4
    # Inference keeps only a few live tensors at a time: the widest of them, a few times over.
    return 4 * max(S * I, N * S * S, S * H)


def memory_estimate(config: "BertConfig", *, training: bool, seq_length: int | None = None) -> int:
    """Bytes a run needs at least: weights (and for training gradients and slots) + activations."""
    S = seq_length if seq_length is not None else min(config.max_position_embeddings, 128)
    per_parameter = TRAINING_BYTES_PER_PARAMETER if training else BYTES_PER_FLOAT
    return parameter_count(config) * per_parameter + activation_floats(config, S, training=training) * BYTES_PER_FLOAT


def physical_memory() -> int | None:
    """Bytes of RAM of this machine (``SC_PHYS_PAGES * SC_PAGE_SIZE``); None where unknown."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    if pages <= 0 or page_size <= 0:
        return None
    return pages * page_size


def human_bytes(n: int) -> str:
    """``1.5 GiB``-style text; astronomically large values in powers of ten."""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            break
        value /= 1024
    if value >= 1e6:
        return f"{value:.2e} {unit}"
    return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"


def check_fits(
    config: "BertConfig",
    source: str | os.PathLike,
    *,
    training: bool = False,
    seq_length: int | None = None,
    memory: int | None = None,
) -> None:
    """Raise :class:`ConfigError` naming ``source`` when the model cannot fit in ``memory``
    (default: this machine's RAM); does nothing where the machine's memory is unknown."""
    available = physical_memory() if memory is None else memory
    if available is None:
        return
    need = memory_estimate(config, training=training, seq_length=seq_length)
    if need <= available:
        return
    params = parameter_count(config)
    what = "training needs at least" if training else "the model needs at least"
    raise ConfigError(
        f"{source}: this model cannot fit in memory: {params:,} parameters "
        f"(L={config.num_hidden_layers}, H={config.hidden_size}, I={config.intermediate_size}, "
        f"vocab_size={config.vocab_size}); {what} {human_bytes(need)} but this machine has {human_bytes(available)}",
        hint="check num_hidden_layers, hidden_size, intermediate_size and vocab_size in the config",
    )
