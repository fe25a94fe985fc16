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
from dataclasses import dataclass
from pathlib import Path

from .. import rundir
from ..errors import UsageError
from ..events import Progress
from ..fileio import check_output_dir, require_file
from ..modelconfig import read_model_config
from ..models.hf_files import check_export_target
from ..models.policy import weights_format_of
from ..modelsize import check_fits
from ..text.shardset import check_record_files
from . import option_specs as S
from .make_pretrain_data import STDIN, expand_input_files
from .option_specs import OPTIMIZERS, check_fields

__all__ = ["PretrainConfig", "run", "validate", "OPTIMIZERS"]


@dataclass(frozen=True)
class PretrainConfig:
    """Options of ``bert pretrain`` (names and defaults of the original ``run_pretraining.py``)."""

    input_file: str  # TFRecord paths: comma list and/or globs
    output_dir: Path
    bert_config_file: Path | None = None  # None: the model's (--model), else the bundled demo BERT
    init_checkpoint: str | None = None
    model: str | None = None  # --model NAME|DIR: fills the config and checkpoint not given
    download: bool = False  # fetch a catalogue --model that is not cached
    do_train: bool = False
    do_eval: bool = False
    # defaults and ranges: bert_cli.ops.option_specs
    train_batch_size: int = S.TRAIN_BATCH_SIZE.field()
    eval_batch_size: int = S.EVAL_BATCH_SIZE.field()
    learning_rate: float = S.LEARNING_RATE.field()
    num_train_steps: int = S.NUM_TRAIN_STEPS.field()
    num_warmup_steps: int = S.NUM_WARMUP_STEPS.field()
    max_seq_length: int = S.MAX_SEQ_LENGTH.field()
    max_predictions_per_seq: int = S.MAX_PREDICTIONS_PER_SEQ.field()
    save_checkpoints_steps: int = S.SAVE_CHECKPOINTS_STEPS.field()
    max_eval_steps: int = S.MAX_EVAL_STEPS.field()
    keep_checkpoints: int | None = S.KEEP_CHECKPOINTS.field(optional=True)  # None: keep all
    device: str = S.DEVICE.field()
    precision: str = S.PRECISION.field()
    xla: bool | None = S.XLA.field()
    seed: int | None = S.SEED.field()
    gradient_accumulation_steps: int = S.GRADIENT_ACCUMULATION_STEPS.field()
    optimizer: str = S.OPTIMIZER.field()
    log_every_steps: int = S.LOG_EVERY_STEPS.field()
    export_hf: Path | None = None  # a Hugging Face model folder (bert_cli.ops.export_hf) ...
    vocab_file: Path | None = None  # ... with this vocabulary (default: --model's) ...
    do_lower_case: bool | None = None  # ... and casing (default: --model's, else lower-case)

    def __post_init__(self) -> None:
        check_fields(self)  # each value's range, once (UsageError naming the flag)


def validate(config: PretrainConfig) -> None:
    """Raise :class:`UsageError` for options that contradict each other (each value's own range
    was checked when the config was built; no file access)."""
    if not config.do_train and not config.do_eval:
        raise UsageError("at least one of --do-train or --do-eval is required", hint="add --do-train and/or --do-eval")


def with_model_files(config: PretrainConfig) -> PretrainConfig:
    """``config`` with ``bert_config_file`` and ``init_checkpoint`` filled from ``--model`` (the
    one policy: :func:`bert_cli.models.policy.resolve_model_files`; explicit files win), else the
    bundled tiny demo config when neither is given."""
    bert_config_file, init_checkpoint = config.bert_config_file, config.init_checkpoint
    if config.model is not None:
        from ..models.policy import resolve_model_files

        files = resolve_model_files(config.model, bert_config_file=bert_config_file, init_checkpoint=init_checkpoint,
                                    download=config.download, tokenizes=False)
        bert_config_file, init_checkpoint = files.config_file, files.checkpoint
        if config.vocab_file is None:  # for --export-hf's tokenizer files
            config = dataclasses.replace(config, vocab_file=files.vocab_file)
        if config.do_lower_case is None:
            config = dataclasses.replace(config, do_lower_case=files.do_lower_case)
    if bert_config_file is None:
        from .. import console
        from ..resources import path as resource_path

        bert_config_file = resource_path("demo_bert_config.json")
        console.info("no --bert-config-file or --model: pretraining the bundled tiny demo BERT (2 layers, hidden 64)")
    return dataclasses.replace(config, bert_config_file=bert_config_file, init_checkpoint=init_checkpoint)


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
    config = with_model_files(config)
    check_output_dir(config.output_dir)
    check_export_target(config.export_hf, keep=[config.output_dir])
    files = input_files(config.input_file)
    config_file = require_file(config.bert_config_file, "bert config", hint="pass the model's bert_config.json")
    bert_config = read_model_config(config_file)
    check_fits(bert_config, config_file, training=config.do_train, seq_length=config.max_seq_length)
    from ..engine.checkpoint import resolve_checkpoint
    from ..cluster import this_process_is_chief
    from ..engine.pretrain import PretrainPlan, pretrain

    init, init_format = None, "tf1"
    if config.init_checkpoint:
        init_format = weights_format_of(config.init_checkpoint)
        init = resolve_checkpoint(config.init_checkpoint) if init_format == "tf1" else str(config.init_checkpoint)
    plan = PretrainPlan(
        input_files=tuple(files),
        output_dir=Path(config.output_dir),
        bert_config=bert_config,
        init_checkpoint=init,
        init_weights_format=init_format,
        options=dataclasses.replace(config, learning_rate=float(config.learning_rate),
                                    optimizer=config.optimizer.lower(),
                                    seed=rundir.run_seed(config.output_dir, config.seed)),  # drawn when not given, reused on resume
    )
    with rundir.exclusive(plan.output_dir, "pretrain", enabled=this_process_is_chief()):
        summary = pretrain(plan, progress)
        if summary.get("checkpoint") and this_process_is_chief():  # the run folder works as --model DIR
            rundir.copy_model_files(plan.output_dir, vocab_file=config.vocab_file, config_json=bert_config.to_json())
        checkpoint, weights = (summary["checkpoint"], "tf1") if summary.get("checkpoint") else (init, init_format)
        if config.export_hf is not None and checkpoint and this_process_is_chief():
            from .export_hf import HfExportSpec, export_run_checkpoint

            spec = HfExportSpec(config.vocab_file, True if config.do_lower_case is None else config.do_lower_case)
            summary["export_hf"] = export_run_checkpoint(checkpoint, weights, config.export_hf, bert_config, spec)["path"]
        return summary
