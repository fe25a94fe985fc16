"""What every fine-tuning command (classifier, SQuAD, NER) does around the one training driver.

:mod:`bert_cli.engine.driver` owns the loop; this module turns a command's options into the
driver's: the original's step counts (``num_train_steps = int(n_train / train_batch_size *
num_train_epochs)``, capped by ``--max-steps``; ``num_warmup_steps = int(num_train_steps *
warmup_proportion)``), ``--train-batch-size`` split into ``--gradient-accumulation-steps``
micro-batches, resume-or-initialise, and the summary keys the commands report
(``num_train_steps``, ``train_examples``, ``resumed_from_step``, ``train_seconds``, ...).

It also owns the two ways a fine-tuned head's weights come back for inference: the newest
checkpoint of the run folder (evaluate/predict alone) and ``best/`` (after ``--keep-best``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from .. import console, events, rundir
from ..errors import UsageError
from ..fileio import atomic_directory, require_file
from ..modelconfig import BertConfig, read_model_config
from ..modelsize import check_fits
from . import option_specs as S
from .option_specs import check_fields
from .schedule import epochs_to_steps

__all__ = [
    "TrainingRunFields", "ModelSource", "resolve_model_source", "write_run_files", "save_best", "export_slim",
    "num_train_steps_for", "finetune", "init_summary", "latest_checkpoint", "load_trained", "restore_best",
]


# ============================================================================ the shared options


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingRunFields:
    """The options every fine-tuning config shares (``bert finetune TASK``, ``squad``, ``ner``):
    model files, what to do, the original's training hyper-parameters and the engine's settings.
    Each config inherits them (keyword-only, so its own required fields may come first) and adds
    its own, ``max_seq_length`` included (its default differs per command)."""

    # model: --model NAME|DIR, or the original's three files (explicit files override the model's)
    model: str | None = None
    vocab_file: Path | None = None
    bert_config_file: Path | None = None
    init_checkpoint: str | None = None
    download: bool = False  # fetch a catalogue model that is not cached
    do_lower_case: bool | None = None  # None: from the model's manifest (else True)
    force_casing: bool = False  # allow do_lower_case to contradict the model's casing
    # what to do
    do_train: bool = False
    do_predict: bool = False
    # the original's hyper-parameters (defaults and ranges: bert_cli.ops.option_specs)
    train_batch_size: int = S.TRAIN_BATCH_SIZE.field()
    predict_batch_size: int = S.PREDICT_BATCH_SIZE.field()
    learning_rate: float = S.LEARNING_RATE.field()
    num_train_epochs: float = S.NUM_TRAIN_EPOCHS.field()
    warmup_proportion: float = S.WARMUP_PROPORTION.field()
    save_checkpoints_steps: int = S.SAVE_CHECKPOINTS_STEPS.field()
    keep_checkpoint_max: int = S.KEEP_CHECKPOINTS.field()
    max_steps: int | None = S.MAX_STEPS.field()  # cap on num_train_steps (shortened runs)
    export_hf: Path | None = None  # a Hugging Face model folder (bert_cli.ops.export_hf)
    # engine
    seed: int | None = S.SEED.field()
    device: str = S.DEVICE.field()
    precision: str = S.PRECISION.field()
    xla: bool | None = S.XLA.field()
    gradient_accumulation_steps: int = S.GRADIENT_ACCUMULATION_STEPS.field()
    optimizer: str = S.OPTIMIZER.field()

    def __post_init__(self) -> None:
        check_fields(self)  # each value's range, once (UsageError naming the flag)


# ============================================================================ model files


@dataclasses.dataclass
class ModelSource:
    """The resolved model of a fine-tuning run: files, config, initial weights and casing."""

    vocab_file: Path
    config: BertConfig
    checkpoint: str | None
    weights_format: str  # tf1 | hf | none
    do_lower_case: bool
    name: str


def resolve_model_source(c) -> ModelSource:
    """Vocab, config, initial checkpoint and casing from ``c.model`` and/or the explicit files
    (the one policy: :func:`bert_cli.models.policy.resolve_model_files`); ``c`` is any
    fine-tuning config (``model``, ``vocab_file``, ``bert_config_file``, ``init_checkpoint``,
    ``do_lower_case``, ``force_casing``, ``download``, ``do_train``, ``max_seq_length``)."""
    from ..models.policy import resolve_model_files

    files = resolve_model_files(
        c.model, vocab_file=c.vocab_file, bert_config_file=c.bert_config_file, init_checkpoint=c.init_checkpoint,
        do_lower_case=c.do_lower_case, force_casing=c.force_casing, download=c.download,
    ).require("vocab", "config")
    checkpoint = files.checkpoint
    if checkpoint is not None and files.weights_format == "tf1" and c.init_checkpoint is not None:
        from ..engine.checkpoint import resolve_checkpoint

        checkpoint = resolve_checkpoint(checkpoint)
    config = read_model_config(require_file(Path(files.config_file), "model config"))
    check_fits(config, files.config_file, training=c.do_train, seq_length=c.max_seq_length)
    return ModelSource(Path(files.vocab_file), config, checkpoint, files.weights_format, files.do_lower_case,
                       files.name)


# ============================================================================ the run folder


def write_run_files(directory: Path, info: Mapping[str, Any], source: ModelSource) -> None:
    """bert_run.json + vocab.txt + bert_config.json copies (:func:`bert_cli.rundir.write_run_folder`)."""
    rundir.write_run_folder(directory, info, vocab_file=source.vocab_file, config_json=source.config.to_json())


def prepare_run_folder(directory: Path, info: Mapping[str, Any], source: ModelSource, runtime) -> None:
    """Before a classifier or NER run (chief only): create the folder, refuse one that holds a
    different run, write the run files and record the seed (a resumed run reuses it)."""
    if not runtime.is_chief:
        return
    directory.mkdir(parents=True, exist_ok=True)
    rundir.check_existing_run(directory, info)
    write_run_files(directory, info, source)
    rundir.record_seed(directory, runtime.seed)


def save_best(modules: list, directory: Path, step: int, results: Mapping[str, Any], info, source) -> None:
    """Replace ``best/`` with these weights (a complete model folder) atomically."""
    from ..engine.checkpoint import save_model

    with atomic_directory(directory) as tmp:
        save_model(modules, tmp / "model.ckpt", global_step=step)
        write_run_files(tmp, info, source)
        rundir.write_eval_results(tmp, results)


def export_slim(modules: list, directory: Path, info, source) -> Path:
    """``export/``: weights only (no optimizer slots) + the run folder files, atomically."""
    from ..engine.checkpoint import save_model

    with atomic_directory(directory) as tmp:
        save_model(modules, tmp / "model.ckpt")
        rundir.write_state_file(tmp, "model.ckpt")  # relative: a copied folder still resolves
        write_run_files(tmp, info, source)
    return directory


# ============================================================================ training


def num_train_steps_for(n_train: int, train_batch_size: int, num_train_epochs: float, max_steps: int | None) -> int:
    """The original's ``int(n_train / train_batch_size * num_train_epochs)``, capped by ``max_steps``;
    a run of 0 steps is a usage error."""
    steps = int(n_train / train_batch_size * num_train_epochs)
    if max_steps is not None:
        steps = min(steps, max_steps)
    if steps < 1:
        raise UsageError(
            f"{n_train} training examples make no full batch of {train_batch_size} in "
            f"{num_train_epochs:g} epochs (0 training steps)",
            hint="lower --train-batch-size or raise --num-train-epochs",
        )
    return steps


def load_initial_weights(load: Callable[[str, str], Any], source: ModelSource, summary: dict) -> None:
    """A fine-tuning run's initial weights: ``load(checkpoint, weights_format)`` (the task's engine
    loader, which lets the head be missing), reported in ``summary["init"]``; without a checkpoint
    the model keeps its random weights, and stderr says so."""
    if source.checkpoint is None:
        console.warn("no initial checkpoint: the model starts from random weights")
        summary["init"] = None
        return
    report = load(source.checkpoint, source.weights_format)
    console.info(report.summary())
    summary["init"] = init_summary(report)


def init_summary(report) -> dict[str, Any] | None:
    """The ``init`` entry of a run summary from a :class:`~bert_cli.engine.checkpoint.LoadReport`."""
    if report is None:
        return None
    return {"checkpoint": report.source, "loaded": len(report.loaded), "missing": list(report.missing),
            "unexpected": list(report.unexpected)}


def finetune(c, runtime, model, loss_fn, *, n_train: int, dataset: Callable[[int], Any],
             load_init: Callable[[], None], progress: events.Progress | None, summary: dict,
             evaluation=None, describe: Callable[[int, int], str] | None = None):
    """Train ``model`` on the driver as fine-tuning command ``c`` says; returns the driver.

    ``c`` has the original's training fields (``learning_rate``, ``train_batch_size``,
    ``num_train_epochs``, ``warmup_proportion``, ``save_checkpoints_steps``,
    ``keep_checkpoint_max``, ``gradient_accumulation_steps``, ``optimizer``, ``max_steps``,
    ``output_dir``). ``dataset(skip)`` gives the training micro-batches from micro-batch
    ``skip`` on; it is only called when there are steps left to run. ``load_init()`` loads the
    initial weights when there is no checkpoint to resume. ``describe(steps, warmup)`` is the
    one log line that announces the training.
    """
    from ..engine.driver import Driver, TrainOptions
    from ..engine.optimization import num_warmup_steps_for

    k = c.gradient_accumulation_steps
    if c.train_batch_size % k:
        raise UsageError(
            f"--train-batch-size {c.train_batch_size} is not a multiple of --gradient-accumulation-steps {k}",
            hint=f"use a train batch size that is a multiple of {k}",
        )
    total = num_train_steps_for(n_train, c.train_batch_size, c.num_train_epochs, c.max_steps)
    options = TrainOptions(
        learning_rate=c.learning_rate,
        num_train_steps=total,
        num_warmup_steps=num_warmup_steps_for(total, c.warmup_proportion),
        micro_batch_size=c.train_batch_size // k,
        accumulation_steps=k,
        save_checkpoints_steps=c.save_checkpoints_steps,
        keep_checkpoint_max=c.keep_checkpoint_max,
        optimizer=c.optimizer,
        log_every_steps=1,
        examples_per_epoch=n_train,
        epochs=c.num_train_epochs,
    )
    driver = Driver(runtime, model, loss_fn, options, Path(c.output_dir))
    resumed = driver.restore()
    if resumed is None:
        load_init()
    else:
        console.info(f"resuming from {console.shown_path(driver.resumed_from)} (step {resumed} of {total})")
        summary["resumed_from_step"] = resumed
    summary.update(num_train_steps=total, num_warmup_steps=options.num_warmup_steps, train_examples=n_train)

    def announced(skip: int):
        data = dataset(skip)
        line = describe(total, options.num_warmup_steps) if describe is not None else (
            f"training: {n_train} examples, batch {c.train_batch_size}, "
            f"{epochs_to_steps(c.num_train_epochs, n_train, c.train_batch_size, total)} "
            f"({options.num_warmup_steps} warmup)")
        console.info(line)
        return data

    result = driver.train(announced, progress, evaluation=evaluation)
    seconds = result.get("seconds") or 0.0
    trained = result["steps_run"] * c.train_batch_size
    summary.update(
        train_seconds=seconds,
        train_examples_per_s=trained / seconds if seconds > 0 and trained else None,
        history=result["history"],
    )
    if result["steps_run"]:
        summary["loss"] = result["final_loss"]
    for key in ("stopped_early", "best"):
        if key in result:
            summary[key] = result[key]
    return driver


def latest_checkpoint(output_dir: Path) -> str | None:
    """The newest complete checkpoint of a run folder, or None."""
    from ..engine.checkpoint_manager import CheckpointManager

    output_dir = Path(output_dir)
    return CheckpointManager(output_dir, {}, is_chief=False).latest() if output_dir.is_dir() else None


def load_trained(modules: list, output_dir: Path, summary: dict, *, load_init: Callable[[], None], head: str,
                 verb: str = "evaluating") -> int:
    """Weights for evaluating/predicting without training: the run folder's ``best/`` when it
    kept one (what ``bert predict`` uses), else its newest checkpoint, else the initial
    checkpoint when it has a trained ``head`` (a random head is refused).
    Returns the ``global_step`` to report."""
    from ..engine.checkpoint import list_checkpoint, load_into, read_checkpoint
    from ..models.folder import best_checkpoint

    latest = best_checkpoint(output_dir) or latest_checkpoint(output_dir)
    if latest is not None:
        report = load_into(modules, latest)
        console.info(f"{verb} {console.shown_path(latest)}")
        summary["checkpoint"] = latest
        return int(report.global_step or 0)
    load_init()
    rundir.require_trained_head(summary.get("init"), Path(output_dir), head)
    init = summary["init"]["checkpoint"] if summary.get("init") else None
    if init is not None and Path(str(init) + ".index").is_file() and "global_step" in list_checkpoint(init):
        return int(read_checkpoint(init, ["global_step"])["global_step"])
    return 0


def restore_best(modules: list, output_dir: Path, summary: dict, global_step: int) -> int:
    """Load ``best/`` (``--keep-best``) for the final evaluation/prediction; its global_step.
    When that is not the step training ended at (``global_step``), ``summary["last_step"]``
    says which was (the end-of-run table shows both)."""
    from ..engine.checkpoint import load_into, resolve_checkpoint

    best_dir = Path(output_dir) / rundir.BEST_DIR
    if not (best_dir / "checkpoint").is_file():
        return global_step
    report = load_into(modules, resolve_checkpoint(best_dir))
    tracker_best = summary.get("best")
    if tracker_best:
        console.info(f"restored the best weights (step {tracker_best['step']}, {tracker_best['metric']} "
                     f"{tracker_best['value']:.4f}) for the final evaluation")
    best_step = report.global_step if report.global_step is not None else global_step
    if int(best_step) != int(global_step):
        summary["last_step"] = int(global_step)
    return best_step
