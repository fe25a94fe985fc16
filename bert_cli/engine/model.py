"""The BERT encoder, numerically the original ``modeling.py``, in TensorFlow 2.

Why ``tf.Module`` and not Keras 3 layers
----------------------------------------
Google's checkpoints address every weight by a TF1 name (``bert/encoder/layer_3/attention/self/
query/kernel``). Keras 3 names variables itself (``dense_7/kernel``, paths from layer-creation
order) and offers no TF1 variable scopes, so a Keras model would need a name translation that
breaks whenever a layer is added or built in another order. With ``tf.Module`` + ``tf.Variable``
we choose each variable's name and shape exactly, and the checkpoint table
(:mod:`bert_cli.engine.checkpoint`) maps TF1 names to attributes one to one. Nothing is lost:

- ``tf.distribute``: variables created under ``strategy.scope()`` become mirrored variables;
  ``model.trainable_variables`` (from tf.Module) feeds any optimizer / ``GradientTape``.
- speed: the forward is plain TF ops, so ``tf.function`` (and XLA ``jit_compile``) trace it
  without Keras' per-call bookkeeping (see :func:`inference_function`).
- mixed precision: variables are always float32; ``compute_dtype=tf.bfloat16`` (or float16)
  casts weights at use, as Keras' mixed policies do, and keeps LayerNorm and softmax in float32.
- SavedModel export works on tf.Module directly (:mod:`bert_cli.engine.export`).

Dimension legend (shape comments below):
    B batch size, S sequence length, H hidden size, N attention heads, D head size (H / N),
    I intermediate (FFN) size, V vocabulary size, T token-type vocabulary size, P max positions.

Numerics follow the original exactly: GELU is the tanh approximation for Google configs (the
exact erf form when a Hugging Face config says "gelu"), LayerNorm epsilon 1e-12 inside the
sqrt, attention scores scaled by 1/sqrt(D) with the additive mask ``(1 - mask) * -10000.0``
built from the *to* mask only, dropout on the attention probabilities, post-LN residuals,
truncated-normal initialisation (cut at 2 stddev, like TF1) with stddev ``initializer_range``
and zero biases. Dropout only runs when ``training=True``.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import numpy as np
import tensorflow as tf

from ..errors import ConfigError, InputError
from ..modelconfig import BertConfig
from .functions import compiled

# ----------------------------------------------------------------------------- activations


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# Both GELUs carry their analytic derivative (``tf.custom_gradient``): autodiff through the
# formula builds ~10 elementwise passes over each [B*S, I] activation, the closed form 4-5,
# which made the backward pass of a CPU fine-tune ~15% faster. Values are unchanged.
@tf.custom_gradient
def gelu_tanh(x: tf.Tensor):
    """Google's GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (modeling.py ``gelu``)."""
    x2 = tf.square(x)
    t = tf.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x2 * x))
    cdf = 0.5 * (1.0 + t)

    def grad(dy):  # d/dx = cdf + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
        dt = (1.0 - tf.square(t)) * (_SQRT_2_OVER_PI * (1.0 + 0.134145 * x2))
        return dy * (cdf + 0.5 * x * dt)

    return x * cdf, grad


@tf.custom_gradient
def gelu_erf(x: tf.Tensor):
    """The exact GELU, x * Phi(x) (what a Hugging Face config means by "gelu")."""
    cdf = 0.5 * tf.math.erfc(x * -_INV_SQRT_2)  # erfc: no cancellation for x << 0

    def grad(dy):  # d/dx = Phi(x) + x phi(x)
        pdf = tf.exp(-0.5 * tf.square(x)) * _INV_SQRT_2PI
        return dy * (cdf + x * pdf)

    return x * cdf, grad


def get_activation(config: BertConfig) -> Callable[[tf.Tensor], tf.Tensor] | None:
    """The function named by ``config.hidden_act`` (None for "linear")."""
    if config.hidden_act == "gelu":
        return gelu_erf if config.gelu_form == "erf" else gelu_tanh
    return {"relu": tf.nn.relu, "tanh": tf.tanh, "linear": None}[config.hidden_act]


# ----------------------------------------------------------------------------- initialisation


class Initializer:
    """Truncated normal (cut at 2 stddev, TF1's ``truncated_normal_initializer``) and zeros.

    ``random=False`` gives zeros instead (a model whose weights are loaded next builds in
    a fraction of the time: BERT-Base's 110M truncated-normal draws take seconds on CPU).
    With ``seed=None`` it draws from TF's global generator (``tf.random.set_seed`` applies);
    with an int seed every variable gets its own stateless stream ``(seed, n)``, n counting the
    variables in creation order, so the same seed always builds the same weights.
    """

    def __init__(self, stddev: float, seed: int | None = None, *, random: bool = True) -> None:
        self.stddev = stddev
        self.seed = seed
        self.random = random
        self._count = 0

    def normal(self, shape: Sequence[int], stddev: float | None = None) -> tf.Tensor:
        stddev = self.stddev if stddev is None else stddev
        self._count += 1
        if not self.random:  # weights about to be loaded: skip the (slow) sampling
            return tf.zeros(shape, tf.float32)
        if self.seed is None:
            return tf.random.truncated_normal(shape, stddev=stddev, dtype=tf.float32)
        return tf.random.stateless_truncated_normal(
            shape, seed=[self.seed, self._count], stddev=stddev, dtype=tf.float32
        )

    @staticmethod
    def zeros(shape: Sequence[int]) -> tf.Tensor:
        return tf.zeros(shape, tf.float32)


def make_variable(value: tf.Tensor, name: str) -> tf.Variable:
    """A trainable float32 variable named exactly ``name`` (a TF1 checkpoint name)."""
    return tf.Variable(value, name=name, trainable=True, dtype=tf.float32)


# ----------------------------------------------------------------------------- small layers


class Dense(tf.Module):
    """y = act(x W + b); ``kernel`` [in, out], ``bias`` [out] (TF1 ``tf.layers.dense``)."""

    def __init__(self, scope: str, in_dim: int, out_dim: int, init: Initializer, activation=None) -> None:
        super().__init__(name=None)
        self.kernel = make_variable(init.normal([in_dim, out_dim]), f"{scope}/kernel")
        self.bias = make_variable(init.zeros([out_dim]), f"{scope}/bias")
        self.activation = activation

    def __call__(self, x: tf.Tensor) -> tf.Tensor:  # x [M, in] -> [M, out]
        # bias_add (not "+") lets grappler fuse it into the MatMul kernel.
        y = tf.nn.bias_add(tf.matmul(x, tf.cast(self.kernel, x.dtype)), tf.cast(self.bias, x.dtype))
        return y if self.activation is None else self.activation(y)


class LayerNorm(tf.Module):
    """LayerNorm over the last axis, epsilon inside the sqrt (TF1 ``contrib.layers.layer_norm``).

    Always computed in float32; the result is cast back to the input's dtype.
    """

    def __init__(self, scope: str, dim: int, eps: float) -> None:
        super().__init__(name=None)
        self.beta = make_variable(tf.zeros([dim]), f"{scope}/beta")
        self.gamma = make_variable(tf.ones([dim]), f"{scope}/gamma")
        self.eps = eps

    def __call__(self, x: tf.Tensor) -> tf.Tensor:  # x [..., H]
        x32 = tf.cast(x, tf.float32)
        mean, variance = tf.nn.moments(x32, axes=[-1], keepdims=True)
        y = (x32 - mean) * tf.math.rsqrt(variance + self.eps) * self.gamma + self.beta
        return tf.cast(y, x.dtype)


def dropout(x: tf.Tensor, rate: float, training: bool) -> tf.Tensor:
    """Inverted dropout, only when training and rate > 0."""
    if not training or rate <= 0.0:
        return x
    return tf.nn.dropout(x, rate=rate)


# ----------------------------------------------------------------------------- BERT blocks


class Embeddings(tf.Module):
    """word + token type + position embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig, init: Initializer) -> None:
        super().__init__(name=None)
        H = config.hidden_size
        self.word_embeddings = make_variable(
            init.normal([config.vocab_size, H]), "bert/embeddings/word_embeddings"
        )  # [V, H]
        self.token_type_embeddings = make_variable(
            init.normal([config.type_vocab_size, H]), "bert/embeddings/token_type_embeddings"
        )  # [T, H]
        self.position_embeddings = make_variable(
            init.normal([config.max_position_embeddings, H]), "bert/embeddings/position_embeddings"
        )  # [P, H]
        self.layer_norm = LayerNorm("bert/embeddings/LayerNorm", H, config.layer_norm_eps)
        self.dropout_prob = config.hidden_dropout_prob

    def __call__(self, input_ids, segment_ids, compute_dtype, training: bool) -> tf.Tensor:
        S = tf.shape(input_ids)[1]
        words = tf.gather(self.word_embeddings, input_ids)  # [B, S, H]
        # The original multiplies a one-hot [B*S, T] by the table: the same numbers as a gather.
        types = tf.gather(self.token_type_embeddings, segment_ids)  # [B, S, H]
        positions = self.position_embeddings[:S]  # [S, H], broadcast over B
        x = self.layer_norm(words + types + positions)  # LayerNorm in float32
        return dropout(tf.cast(x, compute_dtype), self.dropout_prob, training)


class SelfAttention(tf.Module):
    """Multi-head self-attention + output projection, dropout, residual, LayerNorm (post-LN)."""

    def __init__(self, config: BertConfig, scope: str, init: Initializer) -> None:
        super().__init__(name=None)
        H = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_size = config.head_size
        self.query = Dense(f"{scope}/self/query", H, H, init)
        self.key = Dense(f"{scope}/self/key", H, H, init)
        self.value = Dense(f"{scope}/self/value", H, H, init)
        self.output_dense = Dense(f"{scope}/output/dense", H, H, init)
        self.layer_norm = LayerNorm(f"{scope}/output/LayerNorm", H, config.layer_norm_eps)
        self.attention_dropout = config.attention_probs_dropout_prob
        self.hidden_dropout = config.hidden_dropout_prob

    def _heads(self, x: tf.Tensor, B, S) -> tf.Tensor:  # [B*S, H] -> [B, N, S, D]
        x = tf.reshape(x, [B, S, self.num_heads, self.head_size])
        return tf.transpose(x, [0, 2, 1, 3])

    def __call__(self, x: tf.Tensor, mask_adder: tf.Tensor, B, S, training: bool) -> tf.Tensor:
        # x [B*S, H]; mask_adder [B, 1, 1, S] float32 (0 = attend, -10000 = padding)
        q = self._heads(self.query(x), B, S)  # [B, N, S, D]
        k = self._heads(self.key(x), B, S)  # [B, N, S, D]
        v = self._heads(self.value(x), B, S)  # [B, N, S, D]
        scores = tf.matmul(q, k, transpose_b=True)  # [B, N, S, S]
        scores = tf.cast(scores, tf.float32) * (1.0 / math.sqrt(self.head_size)) + mask_adder
        probs = tf.cast(tf.nn.softmax(scores, axis=-1), x.dtype)  # [B, N, S, S]
        probs = dropout(probs, self.attention_dropout, training)
        context = tf.matmul(probs, v)  # [B, N, S, D]
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [B * S, self.num_heads * self.head_size])
        out = dropout(self.output_dense(context), self.hidden_dropout, training)  # [B*S, H]
        return self.layer_norm(out + x)


class TransformerLayer(tf.Module):
    """One encoder block: attention, then FFN Dense(I, act) -> Dense(H), dropout, residual LN."""

    def __init__(self, config: BertConfig, index: int, init: Initializer) -> None:
        super().__init__(name=None)
        scope = f"bert/encoder/layer_{index}"
        H, I = config.hidden_size, config.intermediate_size
        self.attention = SelfAttention(config, f"{scope}/attention", init)
        self.intermediate = Dense(f"{scope}/intermediate/dense", H, I, init, activation=get_activation(config))
        self.output_dense = Dense(f"{scope}/output/dense", I, H, init)
        self.layer_norm = LayerNorm(f"{scope}/output/LayerNorm", H, config.layer_norm_eps)
        self.hidden_dropout = config.hidden_dropout_prob

    def __call__(self, x: tf.Tensor, mask_adder: tf.Tensor, B, S, training: bool) -> tf.Tensor:
        x = self.attention(x, mask_adder, B, S, training)  # [B*S, H]
        h = self.intermediate(x)  # [B*S, I]
        h = dropout(self.output_dense(h), self.hidden_dropout, training)  # [B*S, H]
        return self.layer_norm(h + x)


class BertOutputs(NamedTuple):
    """What :class:`BertModel` returns (float32, whatever the compute dtype)."""

    sequence_output: tf.Tensor  # [B, S, H], the last layer
    pooled_output: tf.Tensor  # [B, H], tanh(Dense(sequence_output[:, 0]))
    all_encoder_layers: tuple  # L x [B, S, H], output of each block (extract_features)
    embedding_output: tf.Tensor  # [B, S, H], after embedding LayerNorm (and dropout)


class BertModel(tf.Module):
    """The BERT encoder + pooler (``bert/...`` variables).

    ``model(input_ids, input_mask, segment_ids, training=False)`` -> :class:`BertOutputs`.
    ``input_mask`` defaults to all ones and ``segment_ids`` to all zeros, as in the original.
    ``seed`` makes the initial weights reproducible; ``random_init=False`` builds zeros fast
    when a checkpoint is loaded next. ``compute_dtype`` bfloat16/float16 runs the matmuls in
    that precision over float32 variables.
    Inputs are int [B, S]; validate data once with :func:`check_inputs` (cheap, numpy), since
    an out-of-range id is an error on CPU but silently zeros on GPU.
    """

    def __init__(
        self, config: BertConfig, *, seed: int | None = None, random_init: bool = True, compute_dtype=tf.float32
    ) -> None:
        super().__init__(name="bert")
        self.config = config
        self.compute_dtype = tf.dtypes.as_dtype(compute_dtype)
        if self.compute_dtype not in (tf.float32, tf.bfloat16, tf.float16):
            raise ConfigError(f"compute dtype must be float32, bfloat16 or float16, got {self.compute_dtype.name}")
        init = Initializer(config.initializer_range, seed, random=random_init)
        self.embeddings = Embeddings(config, init)
        self.layers = [TransformerLayer(config, i, init) for i in range(config.num_hidden_layers)]
        self.pooler = Dense("bert/pooler/dense", config.hidden_size, config.hidden_size, init, activation=tf.tanh)

    @property
    def word_embeddings(self) -> tf.Variable:
        """The [V, H] table, shared with the MLM head's output layer."""
        return self.embeddings.word_embeddings

    def __call__(self, input_ids, input_mask=None, segment_ids=None, *, training: bool = False) -> BertOutputs:
        input_ids = tf.convert_to_tensor(input_ids)
        static_s = input_ids.shape[1] if input_ids.shape.rank == 2 else None
        if input_ids.shape.rank is not None and input_ids.shape.rank != 2:
            raise InputError(f"input_ids must be [batch, seq_length], got shape {input_ids.shape}")
        if static_s is not None:
            check_seq_length(self.config, static_s)
        if input_mask is None:
            input_mask = tf.ones_like(input_ids)
        if segment_ids is None:
            segment_ids = tf.zeros_like(input_ids)
        B, S = tf.shape(input_ids)[0], tf.shape(input_ids)[1]
        dtype = self.compute_dtype

        # Additive mask from the *to* positions only: [B, 1, 1, S]; padded queries still attend.
        to_mask = tf.cast(tf.reshape(input_mask, [B, 1, 1, S]), tf.float32)
        mask_adder = (1.0 - to_mask) * -10000.0

        x = self.embeddings(input_ids, segment_ids, dtype, training)  # [B, S, H]
        embedding_output = x
        x = tf.reshape(x, [B * S, self.config.hidden_size])  # [B*S, H], as the original's 2D trick
        layers = []
        for layer in self.layers:
            x = layer(x, mask_adder, B, S, training)
            layers.append(x)

        def as_3d(t):  # [B*S, H] -> [B, S, H] float32
            return tf.cast(tf.reshape(t, [B, S, self.config.hidden_size]), tf.float32)

        all_layers = tuple(as_3d(t) for t in layers)
        sequence_output = all_layers[-1]
        first_token = tf.cast(sequence_output[:, 0, :], dtype)  # [B, H]
        pooled_output = tf.cast(self.pooler(first_token), tf.float32)  # [B, H]
        return BertOutputs(sequence_output, pooled_output, all_layers, tf.cast(embedding_output, tf.float32))


# ----------------------------------------------------------------------------- fast inference


def inference_function(model: BertModel, *, jit_compile: bool = True, all_layers: bool = False):
    """A ``tf.function`` forward with a fixed signature (int32 [None, None] x 3), no retracing.

    Returns a dict with ``sequence_output`` and ``pooled_output`` (plus ``all_encoder_layers``
    stacked [L, B, S, H] when ``all_layers``). With ``jit_compile`` on, a long BERT-Base
    extract measured ~1.5x faster than plain graph mode on a 2-core AVX-512 CPU (bench/extract.py),
    but slower on a 2-core AVX2 one (``bert extract`` leaves it to the engine's default). XLA
    compiles once per new input shape (seconds for BERT-Base), so feed fixed shapes: pad to
    ``max_seq_length`` and, ideally, pad the last batch too.
    """
    spec = tf.TensorSpec([None, None], tf.int32)

    def forward(input_ids, input_mask, segment_ids):
        out = model(input_ids, input_mask, segment_ids, training=False)
        result = {"sequence_output": out.sequence_output, "pooled_output": out.pooled_output}
        if all_layers:
            result["all_encoder_layers"] = tf.stack(out.all_encoder_layers)
        return result

    return compiled(forward, input_signature=[spec, spec, spec], jit_compile=jit_compile)


# ----------------------------------------------------------------------------- input checks


def check_seq_length(config: BertConfig, max_seq_length: int) -> None:
    """ConfigError when sequences are longer than the model's position table."""
    if max_seq_length > config.max_position_embeddings:
        raise ConfigError(
            f"cannot use sequence length {max_seq_length}: the model only has "
            f"max_position_embeddings={config.max_position_embeddings} positions",
            hint=f"use --max-seq-length {config.max_position_embeddings} or less",
        )


def check_inputs(
    config: BertConfig,
    input_ids,
    segment_ids=None,
    input_mask=None,
    *,
    source: str | None = None,
) -> None:
    """Validate a batch (or a whole dataset) of features before any computation.

    The original silently produced NaNs / garbage for ids outside the tables; this raises
    :class:`InputError` (data) or :class:`ConfigError` (sequence length) instead. Cheap: one
    min/max per array. ``source`` names the file the features came from, for the message.
    """
    ids = np.asarray(input_ids)
    if ids.ndim != 2:
        raise InputError(f"input_ids must be [batch, seq_length], got shape {ids.shape}", path=source)
    check_seq_length(config, ids.shape[1])
    check_range(ids, "input_ids", config.vocab_size, "vocab_size", source,
                 hint="the vocabulary file does not match the model's bert_config.json")
    if segment_ids is not None:
        seg = np.asarray(segment_ids)
        _check_shape(seg, ids.shape, "segment_ids", source)
        check_range(seg, "segment_ids", config.type_vocab_size, "type_vocab_size", source)
    if input_mask is not None:
        mask = np.asarray(input_mask)
        _check_shape(mask, ids.shape, "input_mask", source)
        if mask.size and not np.isin(mask, (0, 1)).all():
            raise InputError("input_mask must contain only 0 and 1", path=source)


def _check_shape(a: np.ndarray, shape, what: str, source) -> None:
    if a.shape != shape:
        raise InputError(f"{what} has shape {a.shape}, expected {shape} like input_ids", path=source)


def check_range(a: np.ndarray, what: str, limit: int, limit_name: str, source, hint: str | None = None) -> None:
    """InputError unless every value of the integer array ``a`` is in ``[0, limit)`` (named
    ``limit_name`` in the message, with ``source`` and ``hint``)."""
    if a.size == 0:
        return
    if not np.issubdtype(a.dtype, np.integer):
        raise InputError(f"{what} must be integers, got {a.dtype}", path=source)
    lo, hi = int(a.min()), int(a.max())
    if lo < 0 or hi >= limit:
        bad = lo if lo < 0 else hi
        raise InputError(f"{what} contains {bad}, outside [0, {limit}) ({limit_name}={limit})", path=source, hint=hint)
