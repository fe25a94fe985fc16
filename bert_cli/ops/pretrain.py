"""``bert pretrain``: masked-LM + next-sentence pretraining (the original ``run_pretraining.py``).

:class:`PretrainConfig` holds the options (the original's flag names and defaults, plus the
runtime ones); :func:`run` validates them, then hands over to
:func:`bert_cli.engine.pretrain.pretrain` (TensorFlow is imported only then, so building the
CLI stays fast).

What a run does, in order:

1. expand ``input_file`` (comma list and/or globs) and check the first record of every file
   (features present, lengths equal to ``max_seq_length`` / ``max_predictions_per_seq``);
2. pick the runtime (device, precision, XLA, seed), build BERT + pretraining heads and the
   optimizer (``adamw``: the original AdamWeightDecay; ``lamb``);
3. resume from the newest complete ``output_dir/model.ckpt-<step>`` if there is one (weights,
   Adam slots, ``global_step`` and the data position), else load ``init_checkpoint`` (weights
   and its ``global_step``; Adam slots start at zero);
4. check the first batches against the config (ids < ``vocab_size`` ...), then train until
   ``global_step == num_train_steps``: each step takes ``gradient_accumulation_steps`` batches
   of ``train_batch_size`` (global, across replicas) examples; a checkpoint every
   ``save_checkpoints_steps`` and at the end (``keep_checkpoints`` kept); TensorBoard scalars in
   ``output_dir/train``; ``progress`` events every ``log_every_steps``;
5. evaluate ``max_eval_steps`` batches read in file order, write ``output_dir/eval_results.txt``
   (sorted ``key = value`` lines) and scalars in ``output_dir/eval``.

Rerunning the same command after an interruption (even ``kill -9``) continues from the last
checkpoint: same steps, same batches.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from .. import rundir
from ..errors import UsageError
from ..events import Progress
from ..fileio import check_output_dir, require_file
from ..modelconfig import read_model_config
from ..models.policy import weights_format_of
from ..modelsize import check_fits
from ..text.shardset import check_record_files
from .make_pretrain_data import STDIN, expand_input_files

__all__ = ["PretrainConfig", "run", "validate", "OPTIMIZERS"]


OPTIMIZERS: tuple[str, ...] = ("adamw", "lamb")


@dataclass(frozen=True)
class PretrainConfig:
    """Options of ``bert pretrain`` (names and defaults of the original ``run_pretraining.py``)."""

    input_file: str  # TFRecord paths: comma list and/or globs
    output_dir: Path
    bert_config_file: Path
    init_checkpoint: str | None = None
    do_train: bool = False
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


def validate(config: PretrainConfig) -> None:
    """Raise :class:`UsageError` for contradictory or out-of-range options (no file access)."""
    if not config.do_train and not config.do_eval:
        raise UsageError("at least one of --do-train or --do-eval is required", hint="add --do-train and/or --do-eval")
    positive = {
        "train-batch-size": config.train_batch_size,
        "eval-batch-size": config.eval_batch_size,
        "num-train-steps": config.num_train_steps,
        "max-seq-length": config.max_seq_length,
        "max-predictions-per-seq": config.max_predictions_per_seq,
        "save-checkpoints-steps": config.save_checkpoints_steps,
        "max-eval-steps": config.max_eval_steps,
        "gradient-accumulation-steps": config.gradient_accumulation_steps,
        "log-every-steps": config.log_every_steps,
    }
    for name, value in positive.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"--{name} must be a positive integer, got {value!r}")
    if config.num_warmup_steps < 0:
        raise UsageError(f"--num-warmup-steps must be >= 0, got {config.num_warmup_steps}")
    if not (isinstance(config.learning_rate, (int, float)) and math.isfinite(config.learning_rate) and config.learning_rate > 0):
        raise UsageError(f"--learning-rate must be a positive number, got {config.learning_rate!r}")
    if config.keep_checkpoints is not None and config.keep_checkpoints < 1:
        raise UsageError(f"--keep-checkpoints must be >= 1, got {config.keep_checkpoints}")
    if config.optimizer.lower() not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {config.optimizer!r}", hint=f"use --optimizer {' | '.join(OPTIMIZERS)}")
    if config.seed is not None and (isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0):
        raise UsageError(f"--seed must be a non-negative integer, got {config.seed!r}")


def input_files(spec: str) -> list[str]:
    """The TFRecord files named by ``spec`` (comma list, globs sorted); stdin is refused, and
    files of a make-pretrain-data shard set are checked against its manifest."""
    files = expand_input_files([spec])
    if STDIN in files:
        raise UsageError("--input-file cannot be stdin for pretraining", hint="pass TFRecord files or a glob")
    check_record_files(files)  # a shard set of make-pretrain-data must be whole and of one run
    return files


def run(config: PretrainConfig, progress: Progress | None = None) -> dict:
    """Validate, then pretrain and/or evaluate; returns a JSON-serialisable summary.

    Summary keys: ``output_dir``, ``device``, ``initial_global_step``, ``resumed_from``,
    ``init_checkpoint``, ``train`` (``start_step``, ``steps_run``, ``final_loss``, ``seconds``,
    ``examples_per_s``), ``eval`` (the eval_results values), ``eval_results`` (path),
    ``global_step``, ``checkpoint`` (latest prefix). ``progress(event)``: see
    :func:`bert_cli.engine.pretrain.pretrain`.
    """
    validate(config)
    check_output_dir(config.output_dir)
    files = input_files(config.input_file)
    config_file = require_file(config.bert_config_file, "bert config", hint="pass the model's bert_config.json")
    bert_config = read_model_config(config_file)
    check_fits(bert_config, config_file, training=config.do_train, seq_length=config.max_seq_length)
    from ..engine.checkpoint import resolve_checkpoint
    from ..engine.device import this_process_is_chief
    from ..engine.pretrain import PretrainPlan, pretrain

    init, init_format = None, "tf1"
    if config.init_checkpoint:
        init_format = weights_format_of(config.init_checkpoint)
        init = resolve_checkpoint(config.init_checkpoint) if init_format == "tf1" else str(config.init_checkpoint)
    # The plan takes every option of the same name as it is, plus what was resolved above.
    same = {f.name: getattr(config, f.name) for f in dataclasses.fields(PretrainPlan) if hasattr(config, f.name)}
    plan = PretrainPlan(
        **{
            **same,
            "input_files": tuple(files),
            "output_dir": Path(config.output_dir),
            "bert_config": bert_config,
            "init_checkpoint": init,
            "init_weights_format": init_format,
            "learning_rate": float(config.learning_rate),
            "optimizer": config.optimizer.lower(),
            "seed": rundir.run_seed(config.output_dir, config.seed),  # drawn when not given, reused on resume
        }
    )
    with rundir.exclusive(plan.output_dir, "pretrain", enabled=this_process_is_chief()):
        return pretrain(plan, progress)
