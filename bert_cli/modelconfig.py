"""``BertConfig``: the model hyper-parameters of ``bert_config.json`` (pure Python, no TensorFlow).

Same JSON keys and defaults as the original ``modeling.BertConfig``:

=============================  =======  ====================================================
key                            default  meaning
=============================  =======  ====================================================
``vocab_size``                 (none)   rows of the word-embedding table
``hidden_size``                768      H, width of every layer
``num_hidden_layers``          12       L, Transformer blocks
``num_attention_heads``        12       N, heads per attention layer (D = H / N)
``intermediate_size``          3072     I, width of the feed-forward layer
``hidden_act``                 "gelu"   linear / relu / gelu / tanh (encoder FFN and MLM head)
``hidden_dropout_prob``        0.1      dropout on embeddings and every residual branch
``attention_probs_dropout_prob`` 0.1    dropout on the attention probabilities
``max_position_embeddings``    512      longest sequence the model can take
``type_vocab_size``            16       rows of the token-type table (released configs say 2)
``initializer_range``          0.02     stddev of the truncated-normal initializer
=============================  =======  ====================================================

Two extra fields are not in Google's files:

- ``gelu_form``: which function ``"gelu"`` means. In Google's ``bert_config.json`` it is the tanh
  approximation (``"tanh"``, the default, what the released checkpoints were trained with); in a
  Hugging Face ``config.json`` ``"gelu"`` is the exact erf form (``"erf"``), and ``"gelu_new"`` /
  ``"gelu_pytorch_tanh"`` are the tanh form. :meth:`BertConfig.from_hf_config` keeps the meaning
  of the file it reads.
- ``layer_norm_eps``: 1e-12 as in the original (HF's ``layer_norm_eps``).

:meth:`BertConfig.to_dict` writes them only when they differ from Google's meaning, so a Google
config round-trips to the same keys. Unknown keys (``directionality``, ``pooler_type``, ... in the
Chinese and multilingual configs) are accepted and ignored, like the original.

The file readers (:meth:`BertConfig.from_json_file`, :meth:`BertConfig.from_hf_json_file`,
:func:`read_model_config`) also refuse a config whose weights alone cannot fit this machine's
memory (``num_hidden_layers: 1e9``, ...), naming the file and the estimate
(:func:`bert_cli.modelsize.check_fits`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Mapping

from .errors import ConfigError, NotFoundError
from .modelsize import check_fits

ACTIVATIONS = ("linear", "relu", "gelu", "tanh")
GELU_FORMS = ("tanh", "erf")

# Hugging Face ``hidden_act`` -> (our hidden_act, gelu_form).
_HF_ACTIVATIONS = {
    "gelu": ("gelu", "erf"),
    "gelu_new": ("gelu", "tanh"),
    "gelu_pytorch_tanh": ("gelu", "tanh"),
    "gelu_fast": ("gelu", "tanh"),
    "relu": ("relu", "tanh"),
    "tanh": ("tanh", "tanh"),
    "linear": ("linear", "tanh"),
}

_INT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)
_PROB_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob")


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Hyper-parameters of a BERT model; validated on construction (raises ConfigError)."""

    vocab_size: int
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 16
    initializer_range: float = 0.02
    gelu_form: str = "tanh"
    layer_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"bert config: {name} must be an integer, got {value!r}")
            if value <= 0:
                raise ConfigError(f"bert config: {name} must be positive, got {value}")
        for name in _PROB_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
                raise ConfigError(f"bert config: {name} must be a probability in [0, 1), got {value!r}")
        for name in ("initializer_range", "layer_norm_eps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 or math.isinf(value):
                raise ConfigError(f"bert config: {name} must be a positive number, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"bert config: hidden_size ({self.hidden_size}) is not a multiple of "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(
                f"bert config: unsupported hidden_act {self.hidden_act!r} (expected one of {', '.join(ACTIVATIONS)})"
            )
        if self.gelu_form not in GELU_FORMS:
            raise ConfigError(f"bert config: gelu_form must be 'tanh' or 'erf', got {self.gelu_form!r}")

    # ----------------------------------------------------------------------------- derived
    @property
    def head_size(self) -> int:
        """D = H / N."""
        return self.hidden_size // self.num_attention_heads

    # ----------------------------------------------------------------------------- readers
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BertConfig":
        """A config from a ``bert_config.json`` mapping; unknown keys are ignored."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"bert config: expected a JSON object, got {type(data).__name__}")
        if "vocab_size" not in data:
            raise ConfigError("bert config: missing required key 'vocab_size'")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        # JSON writers sometimes emit 768.0; accept integral floats for integer fields.
        for name in _INT_FIELDS:
            value = kwargs.get(name)
            if isinstance(value, float) and value.is_integer():
                kwargs[name] = int(value)
        return cls(**kwargs)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "BertConfig":
        """Read a Google ``bert_config.json``."""
        data = _read_json(path)
        try:
            config = cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc.message}", hint=exc.hint) from None
        check_fits(config, path)
        return config

    @classmethod
    def from_hf_config(cls, data: Mapping[str, Any]) -> "BertConfig":
        """A config from a Hugging Face ``config.json`` mapping (``model_type`` bert).

        HF ``"gelu"`` is the exact erf GELU; ``"gelu_new"``/``"gelu_pytorch_tanh"`` the tanh form.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"config.json: expected a JSON object, got {type(data).__name__}")
        model_type = data.get("model_type", "bert")
        if model_type != "bert":
            raise ConfigError(f"config.json: model_type {model_type!r} is not BERT")
        position_type = data.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ConfigError(
                f"config.json: position_embedding_type {position_type!r} is not supported (absolute only)"
            )
        act = data.get("hidden_act", "gelu")
        if act not in _HF_ACTIVATIONS:
            raise ConfigError(
                f"config.json: unsupported hidden_act {act!r} (expected one of {', '.join(_HF_ACTIVATIONS)})"
            )
        hidden_act, gelu_form = _HF_ACTIVATIONS[act]
        keys = {f.name for f in dataclasses.fields(cls)} - {"hidden_act", "gelu_form"}
        merged = {k: v for k, v in data.items() if k in keys}
        merged.setdefault("type_vocab_size", 2)  # HF's default, not Google's class default 16
        merged.update(hidden_act=hidden_act, gelu_form=gelu_form)
        return cls.from_dict(merged)

    @classmethod
    def from_hf_json_file(cls, path: str | os.PathLike) -> "BertConfig":
        """Read a Hugging Face ``config.json``."""
        data = _read_json(path)
        try:
            config = cls.from_hf_config(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc.message.removeprefix('config.json: ')}", hint=exc.hint) from None
        check_fits(config, path)
        return config

    # ----------------------------------------------------------------------------- writers
    def to_dict(self) -> dict[str, Any]:
        """Google's keys; ``gelu_form``/``layer_norm_eps`` only when they differ from Google's."""
        data = dataclasses.asdict(self)
        if self.gelu_form == "tanh":
            del data["gelu_form"]
        if self.layer_norm_eps == 1e-12:
            del data["layer_norm_eps"]
        return data

    def to_json(self) -> str:
        """The config as ``bert_config.json`` text (sorted keys, 2-space indent, newline)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_hf_config(self) -> dict[str, Any]:
        """A Hugging Face ``config.json`` mapping with the same meaning (gelu tanh -> gelu_new)."""
        data = dataclasses.asdict(self)
        del data["gelu_form"]
        if self.hidden_act == "gelu":
            data["hidden_act"] = "gelu" if self.gelu_form == "erf" else "gelu_new"
        data.update(model_type="bert", position_embedding_type="absolute", architectures=["BertModel"])
        return data

    def replace(self, **changes: Any) -> "BertConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


_HF_KEYS = ("model_type", "architectures", "transformers_version")


def is_hf_config(data: Mapping[str, Any]) -> bool:
    """True for a Hugging Face ``config.json`` mapping, False for a Google ``bert_config.json``."""
    return any(key in data for key in _HF_KEYS)


def read_model_config(path: str | os.PathLike) -> BertConfig:
    """A :class:`BertConfig` from a Google ``bert_config.json`` or a Hugging Face ``config.json``,
    told apart by their keys (HF files carry ``model_type`` / ``architectures`` /
    ``transformers_version``), so "gelu" keeps the meaning of the file it came from (tanh for
    Google, the exact erf form for HF)."""
    data = _read_json(path)
    if isinstance(data, Mapping) and is_hf_config(data):
        return BertConfig.from_hf_json_file(path)
    return BertConfig.from_json_file(path)


def _read_json(path: str | os.PathLike) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise NotFoundError(f"model config not found: {path}", hint="pass the model's bert_config.json") from None
    except (OSError, ValueError) as exc:  # JSON and Unicode errors are ValueErrors
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
