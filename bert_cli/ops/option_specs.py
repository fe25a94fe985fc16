"""Each option's flag, default and valid range, written once.

The commands' config dataclasses take their fields from here (:meth:`Spec.field`) and check
them when they are built (:func:`check_fields` in ``__post_init__``: a :class:`UsageError`
naming the flag); the CLI declares its Typer options from the same specs
(:func:`bert_cli.cli.options.option`), so the defaults shown in ``--help``, the ranges Click
enforces (``min=``/``max=``) and the configs' checks cannot disagree.

A bound Click cannot express (an open one: ``--learning-rate`` > 0, ``--warmup-proportion``
< 1) is left out of the CLI's range and checked by the config alone. Checks between several
options (``nothing to do``, ``--max-seq-length`` against ``--max-query-length``) stay with
the command that owns them.

This module imports nothing heavy: the CLI reads it at start-up.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError

__all__ = ["Spec", "check_fields", "spec_of"]

_MISSING: Any = dataclasses.MISSING


@dataclass(frozen=True)
class Spec:
    """One option: its flag, default and range (``low``/``high`` inclusive unless ``*_open``)."""

    flag: str
    default: Any = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    number: bool = False  # a float (finite); implied by a bound on a non-integer
    optional: bool | None = None  # None allowed (default: when the default is None)
    choices: tuple[str, ...] = ()  # the words a text option takes (any case)

    def but(self, **changes: Any) -> Spec:
        """The same option with another default (or range), e.g. SQuAD's ``--max-seq-length 384``."""
        return dataclasses.replace(self, **changes)

    @property
    def numeric(self) -> bool:
        return self.integer or self.number or self.low is not None or self.high is not None

    @property
    def allows_none(self) -> bool:
        return self.default is None if self.optional is None else self.optional

    def field(self, default: Any = _MISSING, **changes: Any) -> Any:
        """A dataclass field with this spec's default (or ``default``) that :func:`check_fields` checks."""
        spec = self.but(**changes) if changes else self
        if default is not _MISSING:
            spec = spec.but(default=default)
        return dataclasses.field(default=spec.default, metadata={"spec": spec})

    def cli_range(self) -> dict[str, float]:
        """Typer's ``min=``/``max=``: the closed bounds (an open bound is the config's to check)."""
        out: dict[str, float] = {}
        if self.low is not None and not self.low_open:
            out["min"] = self.low
        if self.high is not None and not self.high_open:
            out["max"] = self.high
        return out

    def rule(self) -> str:
        """What a valid value is, in words: ``a positive integer``, ``a number in [0, 1)``."""
        kind = "integer" if self.integer else "number"
        article = "an" if self.integer else "a"
        low, high = self.low, self.high
        if low is not None and high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{article} {kind} in {left}{_num(low)}, {_num(high)}{right}"
        if low is not None:
            if low == 0 and self.low_open or self.integer and low == 1 and not self.low_open:
                return f"a positive {kind}"
            if low == 0:
                return f"a non-negative {kind}"
            return f"{'more than' if self.low_open else 'at least'} {_num(low)}"
        if high is not None:
            return f"{'less than' if self.high_open else 'at most'} {_num(high)}"
        return f"{article} {kind}" if self.integer else "a finite number"

    def check(self, value: Any) -> None:
        """UsageError ``--flag must be RULE, got VALUE`` unless ``value`` is valid."""
        if value is None and self.allows_none:
            return
        if self.choices:
            if not isinstance(value, str) or value.lower() not in self.choices:
                raise UsageError(f"{self.flag} must be one of {' | '.join(self.choices)}, got {value!r}")
            return
        if not self.numeric:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            ok = False
        elif self.integer:
            ok = isinstance(value, int)
        else:
            ok = math.isfinite(value)
        if ok and self.low is not None:
            ok = value > self.low if self.low_open else value >= self.low
        if ok and self.high is not None:
            ok = value < self.high if self.high_open else value <= self.high
        if not ok:
            raise UsageError(f"{self.flag} must be {self.rule()}, got {value!r}")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def check_fields(config: Any) -> None:
    """Check every field of a config dataclass that carries a :class:`Spec` (``__post_init__``)."""
    for f in dataclasses.fields(config):
        spec = f.metadata.get("spec")
        if spec is not None:
            spec.check(getattr(config, f.name))


def spec_of(config_type: Any, name: str) -> Spec | None:
    """The spec of field ``name`` of a config dataclass (None when it has none)."""
    for f in dataclasses.fields(config_type):
        if f.name == name:
            return f.metadata.get("spec")
    return None


def _positive(flag: str, default: Any = None) -> Spec:
    return Spec(flag, default, low=1, integer=True)


# --- model input ------------------------------------------------------------------------------
MAX_SEQ_LENGTH = Spec("--max-seq-length", 128, low=3, integer=True)  # [CLS] A [SEP] B [SEP]

# --- training (pretrain, finetune, finetune squad) ------------------------------------------------
TRAIN_BATCH_SIZE = _positive("--train-batch-size", 32)
EVAL_BATCH_SIZE = _positive("--eval-batch-size", 8)
PREDICT_BATCH_SIZE = _positive("--predict-batch-size", 8)
LEARNING_RATE = Spec("--learning-rate", 5e-5, low=0, low_open=True)
NUM_TRAIN_EPOCHS = Spec("--num-train-epochs", 3.0, low=0, low_open=True)
WARMUP_PROPORTION = Spec("--warmup-proportion", 0.1, low=0, high=1, high_open=True)
SAVE_CHECKPOINTS_STEPS = _positive("--save-checkpoints-steps", 1000)
KEEP_CHECKPOINTS = _positive("--keep-checkpoints", 5)
MAX_STEPS = _positive("--max-steps")
GRADIENT_ACCUMULATION_STEPS = _positive("--gradient-accumulation-steps", 1)
OPTIMIZERS: tuple[str, ...] = ("adamw", "lamb")
OPTIMIZER = Spec("--optimizer", "adamw", choices=OPTIMIZERS)

# --- the engine ---------------------------------------------------------------------------------
SEED = Spec("--seed", None, low=0, integer=True)
DEVICE = Spec("--device", "auto")  # the names are the engine's to check (engine.device)
PRECISION = Spec("--precision", "auto")
XLA = Spec("--xla", None)

# --- finetune -----------------------------------------------------------------------------------
EVAL_EVERY_STEPS = _positive("--eval-every-steps")
EARLY_STOPPING_PATIENCE = _positive("--early-stopping-patience")
REPEAT = _positive("--repeat", 1)

# --- finetune squad -----------------------------------------------------------------------------
SQUAD_MAX_SEQ_LENGTH = MAX_SEQ_LENGTH.but(default=384)
DOC_STRIDE = _positive("--doc-stride", 128)
MAX_QUERY_LENGTH = _positive("--max-query-length", 64)
N_BEST_SIZE = _positive("--n-best-size", 20)
MAX_ANSWER_LENGTH = _positive("--max-answer-length", 30)
NULL_SCORE_DIFF_THRESHOLD = Spec("--null-score-diff-threshold", 0.0, number=True)

# --- finetune ner -------------------------------------------------------------------------------
NER_DOC_STRIDE = DOC_STRIDE.but(default=64)  # WordPieces between the starts of a long sentence's windows
TAG_COLUMN = Spec("--tag-column", -1, integer=True)  # -1: the last column

# --- pretrain -----------------------------------------------------------------------------------
NUM_TRAIN_STEPS = _positive("--num-train-steps", 100000)
NUM_WARMUP_STEPS = Spec("--num-warmup-steps", 10000, low=0, integer=True)
MAX_PREDICTIONS_PER_SEQ = _positive("--max-predictions-per-seq", 20)
MAX_EVAL_STEPS = _positive("--max-eval-steps", 100)
LOG_EVERY_STEPS = _positive("--log-every-steps", 100)

# --- make-pretrain-data -------------------------------------------------------------------------
PRETRAIN_DATA_MAX_SEQ_LENGTH = MAX_SEQ_LENGTH.but(low=5)  # [CLS] A [SEP] B [SEP] with A, B not empty
MASKED_LM_PROB = Spec("--masked-lm-prob", 0.15, low=0, high=1)
SHORT_SEQ_PROB = Spec("--short-seq-prob", 0.1, low=0, high=1)
DUPE_FACTOR = _positive("--dupe-factor", 10)
RANDOM_SEED = Spec("--random-seed", 12345, integer=True)
WORKERS = _positive("--workers", 1)
NUM_OUTPUT_SHARDS = _positive("--num-output-shards")
SHARD_SIZE_MB = Spec("--shard-size-mb", 1.0, low=0, low_open=True)
NUM_WORKERS_TOTAL = _positive("--num-workers-total")  # several machines: N ...
WORKER_INDEX = Spec("--worker-index", None, low=0, integer=True)  # ... and this one, 0 <= I < N

# --- extract, predict -----------------------------------------------------------------------------
EXTRACT_BATCH_SIZE = _positive("--batch-size", 8)
EXTRACT_PRECISION = PRECISION.but(default="fp32")  # the original's values, exactly
PREDICT_BATCH_SIZE_LINES = _positive("--batch-size", 32)
