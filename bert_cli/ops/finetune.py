"""``bert finetune TASK``: the original ``run_classifier.py`` (train / eval / predict) and more.

Same math and files as the original: ``num_train_steps = int(n_train / train_batch_size *
num_train_epochs)``, ``num_warmup_steps = int(num_train_steps * warmup_proportion)``, the
AdamWeightDecay optimizer and schedule, training input ``repeat + shuffle(100) +
drop_remainder``, eval/predict in order without padding; in ``output_dir``:

====================  =====================================================================
``model.ckpt-<step>`` checkpoints in the TF1 layout (weights, Adam slots, ``global_step``);
                      a rerun on the same ``output_dir`` resumes from the newest one
``eval_results.txt``  sorted ``key = value`` lines: ``eval_accuracy``, ``eval_loss``,
                      ``global_step``, ``loss`` and the task's GLUE metrics (``eval_f1``,
                      ``eval_mcc``, ``eval_pearson``, ``eval_spearman``, ...)
``test_results.tsv``  one line per test example: tab-separated class probabilities
                      (``str`` of float32 values, as the original; the score for regression)
``bert_run.json``     what ``bert predict --model OUTPUT_DIR`` needs (task, labels, casing,
                      max_seq_length, ...) with ``vocab.txt`` and ``bert_config.json`` copies
``best/``             (``keep_best``) weights of the best evaluation + its eval_results.txt
``export/``           (``export_slim``) weights-only ``model.ckpt`` (no Adam slots) + config,
                      vocab and bert_run.json: a small model folder for ``--model``
``saved_model/``      (``export_saved_model``) a SavedModel: ids/mask/segments -> logits, outputs
``seed-<s>/``         (``repeat > 1``) one complete run per seed; ``repeat_results.json`` has
                      the mean and spread of every metric
====================  =====================================================================

Beyond the original: evaluation every N steps or each epoch, keeping the best checkpoint (by
any reported metric; it is restored before the final evaluation/prediction), early stopping,
and K-seed repeats. All input problems (missing/ragged files, unknown labels, empty splits,
sequence length above the model's limit) are raised before training starts: every split that
will be needed is read and featurized first.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import console, events, rundir
from ..errors import NotFoundError, UsageError
from ..fileio import atomic_directory, atomic_write, check_output_dir, require_file
from ..modelconfig import BertConfig, read_model_config
from ..modelsize import check_fits
from ..text import metrics as M
from ..text.classifier_features import ClassifierFeatures, convert_examples, format_example_log, task_kind
from ..text.task_base import Task
from ..text.tasks import get_task
from ..text.tokenization import FullTokenizer
from .schedule import ends_epoch, epochs_to_steps

__all__ = ["FinetuneConfig", "run", "resolve_model_source", "make_run_info"]

STATE_FILE = "training_state.json"
RUN_FORMAT = 1
LOWER_IS_BETTER = ("eval_loss", "loss")


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Options of ``bert finetune TASK`` (the original's names and defaults, plus extras)."""

    task: str
    output_dir: Path
    data_dir: Path | None = None
    task_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # get_task(**options)
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
    do_eval: bool = False
    do_predict: bool = False
    # the original's hyper-parameters
    max_seq_length: int = 128
    train_batch_size: int = 32
    eval_batch_size: int = 8
    predict_batch_size: int = 8
    learning_rate: float = 5e-5
    num_train_epochs: float = 3.0
    warmup_proportion: float = 0.1
    save_checkpoints_steps: int = 1000
    keep_checkpoint_max: int = 5
    # extras
    max_steps: int | None = None  # cap on num_train_steps (shortened runs)
    eval_every_steps: int | None = None
    eval_every_epoch: bool = False
    keep_best: str | None = None  # metric name (accuracy, f1, eval_loss, ...) -> best/
    early_stopping_patience: int | None = None  # evaluations without improvement
    export_slim: bool = False
    export_saved_model: bool = False
    repeat: int = 1  # K runs with seeds seed, seed+1, ... (mean and spread)
    # engine
    seed: int | None = None
    device: str = "auto"
    precision: str = "auto"
    xla: bool | None = None
    gradient_accumulation_steps: int = 1
    optimizer: str = "adamw"


# ============================================================================ helpers


def _check_options(c: FinetuneConfig) -> None:
    if not (c.do_train or c.do_eval or c.do_predict):
        raise UsageError("nothing to do: pass at least one of --do-train, --do-eval, --do-predict")
    positives = {
        "max_seq_length": c.max_seq_length,
        "train_batch_size": c.train_batch_size,
        "eval_batch_size": c.eval_batch_size,
        "predict_batch_size": c.predict_batch_size,
        "save_checkpoints_steps": c.save_checkpoints_steps,
        "keep_checkpoint_max": c.keep_checkpoint_max,
        "repeat": c.repeat,
        "gradient_accumulation_steps": c.gradient_accumulation_steps,
    }
    for name, value in positives.items():
        if not isinstance(value, int) or value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
    if not (math.isfinite(c.learning_rate) and c.learning_rate > 0):
        raise UsageError(f"--learning-rate must be a positive number, got {c.learning_rate}")
    if not (math.isfinite(c.num_train_epochs) and c.num_train_epochs > 0):
        raise UsageError(f"--num-train-epochs must be a positive number, got {c.num_train_epochs}")
    if not 0.0 <= c.warmup_proportion < 1.0:
        raise UsageError(f"--warmup-proportion must be in [0, 1), got {c.warmup_proportion}")
    for name in ("max_steps", "eval_every_steps", "early_stopping_patience"):
        value = getattr(c, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
    if c.eval_every_steps and c.eval_every_epoch:
        raise UsageError("use either --eval-every-steps or --eval-every-epoch, not both")
    periodic = c.eval_every_steps or c.eval_every_epoch or c.keep_best or c.early_stopping_patience
    if periodic and not c.do_train:
        raise UsageError("periodic evaluation, --keep-best and --early-stopping need --do-train")
    if c.model is None and (c.vocab_file is None or c.bert_config_file is None):
        raise UsageError(
            "no model: pass --model NAME|DIR, or --vocab-file and --bert-config-file (and --init-checkpoint)",
            hint="bert download --list",
        )


def metric_key(name: str) -> str:
    """``accuracy`` -> ``eval_accuracy``; ``eval_f1`` stays; ``loss`` stays (the Estimator's)."""
    name = name.strip().lower().replace("-", "_")
    if name in ("loss", "global_step") or name.startswith("eval_"):
        return name
    return "eval_" + name


def available_metrics(task: Task) -> tuple[str, ...]:
    """Keys a run of ``task`` reports in eval_results.txt (besides global_step)."""
    keys = ["eval_loss", "loss"]
    if task_kind(task) == "classification":
        keys.append("eval_accuracy")
    keys += [metric_key(m) for m in task.metric_names]
    return tuple(dict.fromkeys(keys))


def _json_value(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, frozenset, set)):
        return [_json_value(v) for v in value]
    return value


# ============================================================================ model files


@dataclasses.dataclass
class _ModelSource:
    vocab_file: Path
    config: BertConfig
    checkpoint: str | None
    weights_format: str  # tf1 | hf | none
    do_lower_case: bool
    name: str


def _read_bert_config(path: Path) -> BertConfig:
    return read_model_config(require_file(path, "model config"))


def resolve_model_source(c: FinetuneConfig) -> _ModelSource:
    """Vocab, config, initial checkpoint and casing from --model and/or the explicit files
    (the one policy: :func:`bert_cli.models.policy.resolve_model_files`)."""
    from ..models.policy import resolve_model_files

    files = resolve_model_files(
        c.model, vocab_file=c.vocab_file, bert_config_file=c.bert_config_file, init_checkpoint=c.init_checkpoint,
        do_lower_case=c.do_lower_case, force_casing=c.force_casing, download=c.download,
    ).require("vocab", "config")
    checkpoint = files.checkpoint
    if checkpoint is not None and files.weights_format == "tf1" and c.init_checkpoint is not None:
        from ..engine.checkpoint import resolve_checkpoint

        checkpoint = resolve_checkpoint(checkpoint)
    config = _read_bert_config(Path(files.config_file))
    check_fits(config, files.config_file, training=c.do_train, seq_length=c.max_seq_length)
    return _ModelSource(Path(files.vocab_file), config, checkpoint, files.weights_format, files.do_lower_case,
                        files.name)


# ============================================================================ data


@dataclasses.dataclass
class _Data:
    task: Task
    data_dir: Path
    train: ClassifierFeatures | None
    dev: ClassifierFeatures | None
    test: ClassifierFeatures | None


def _featurize(task: Task, data_dir: Path, split: str, tokenizer, max_seq_length: int, progress) -> ClassifierFeatures:
    started = time.perf_counter()

    def on_example(i, example, features):
        if i < 5:
            console.debug(format_example_log(example, features))
        if (i + 1) % 256 == 0:
            events.emit(progress, phase="featurize", split=split, done=i + 1, unit="examples")

    features = convert_examples(task.read(data_dir, split), tokenizer, max_seq_length, task=task, on_example=on_example)
    seconds = time.perf_counter() - started
    if features.truncated:
        console.debug(f"{split}: {features.truncated} of {len(features)} examples truncated to {max_seq_length} tokens")
    console.info(f"{task.name} {split}: {len(features)} examples ({seconds:.1f}s to featurize)")
    events.emit(progress, phase="featurize", split=split, examples=len(features), seconds=seconds,
                done=len(features), unit="examples", final=True)
    return features


def load_data(c: FinetuneConfig, tokenizer, progress: events.Progress | None, *, need_dev: bool) -> _Data:
    """Read and featurize every split the run will need (errors before any training)."""
    options = {k: v for k, v in dict(c.task_options).items() if v is not None}
    task = get_task(c.task, **options)
    if c.data_dir is None and not ("files" in options and task.name in ("csv", "tsv", "jsonl")):
        raise UsageError(f"task {task.name} needs --data-dir (the folder with its split files)")
    data_dir = Path(c.data_dir) if c.data_dir is not None else Path(".")
    if c.data_dir is not None and not data_dir.is_dir():
        raise NotFoundError(f"data folder not found: {data_dir}", hint=task.download_hint)
    # Missing files first, all at once, before the (slow) reading.
    wanted = (["train"] if c.do_train else []) + (["dev"] if need_dev else []) + (["test"] if c.do_predict else [])
    for split in wanted:
        path = task.split_path(data_dir, split)
        if not path.is_file():
            raise NotFoundError(f"{task.name} {split} file not found: {path}", hint=task.download_hint)
    task = task.resolve_labels(data_dir)
    train = _featurize(task, data_dir, "train", tokenizer, c.max_seq_length, progress) if c.do_train else None
    dev = _featurize(task, data_dir, "dev", tokenizer, c.max_seq_length, progress) if need_dev else None
    test = _featurize(task, data_dir, "test", tokenizer, c.max_seq_length, progress) if c.do_predict else None
    return _Data(task, data_dir, train, dev, test)


# ============================================================================ run description


def make_run_info(c: FinetuneConfig, task: Task, source: _ModelSource) -> dict:
    """The ``bert_run.json`` mapping (file names are relative to the run folder)."""
    return {
        "format": RUN_FORMAT,
        "task": task.name,
        "task_options": _json_value({k: v for k, v in dict(c.task_options).items() if v is not None}),
        "labels": list(task.labels or ()),
        "num_labels": task.num_labels,
        "kind": task_kind(task),
        "is_regression": bool(task.is_regression),
        "is_multilabel": bool(task.is_multilabel),
        "metric_names": list(task.metric_names),
        "max_seq_length": c.max_seq_length,
        "do_lower_case": source.do_lower_case,
        "vocab_file": "vocab.txt",
        "bert_config_file": "bert_config.json",
        "base_model": source.name,
        "init_checkpoint": source.checkpoint,
    }


def _write_run_folder(directory: Path, info: Mapping[str, Any], source: _ModelSource) -> None:
    """bert_run.json + vocab.txt + bert_config.json copies (:func:`bert_cli.rundir.write_run_folder`)."""
    rundir.write_run_folder(directory, info, vocab_file=source.vocab_file, config_json=source.config.to_json())


def _check_existing_run(output_dir: Path, info: Mapping[str, Any]) -> None:
    """Refuse to resume a run of another task/labels/model shape in the same output_dir.

    Only a run that saved a checkpoint has anything to resume: a run that failed before its
    first checkpoint (bad options, 0 training steps) does not claim the folder.
    """
    old = rundir.load_run_info(output_dir)
    if old is None or not (output_dir / "checkpoint").is_file():
        return
    for key in ("task", "labels", "kind", "max_seq_length"):
        if old.get(key) != info.get(key):
            raise UsageError(
                f"{output_dir} holds a run with {key} {old.get(key)!r}, not {info.get(key)!r}",
                hint="use a fresh --output-dir (or delete the old run)",
            )


# ============================================================================ training state


@dataclasses.dataclass
class _BestTracker:
    """Best metric so far and evaluations without improvement (persisted for resume)."""

    metric: str
    lower_is_better: bool
    best_value: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    stopped_early: bool = False

    def improved(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value < self.best_value if self.lower_is_better else value > self.best_value

    def update(self, value: float, step: int) -> bool:
        if self.improved(value):
            self.best_value, self.best_step, self.bad_evals = float(value), int(step), 0
            return True
        self.bad_evals += 1
        return False

    def save(self, directory: Path) -> None:
        with atomic_write(directory / STATE_FILE) as fh:
            fh.write(json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, directory: Path, metric: str) -> "_BestTracker":
        tracker = cls(metric, metric in LOWER_IS_BETTER)
        path = directory / STATE_FILE
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
            if data.get("metric") == metric:
                for key in ("best_value", "best_step", "bad_evals", "stopped_early"):
                    if key in data:
                        setattr(tracker, key, data[key])
        return tracker


# ============================================================================ one run


def _eval_results(task: Task, features: ClassifierFeatures, out, global_step: int) -> dict[str, Any]:
    from ..engine.classifier import predictions_from_outputs

    kind = task_kind(task)
    preds = predictions_from_outputs(kind, out.outputs)
    gold = features.labels
    results: dict[str, Any] = {"eval_loss": out.eval_loss, "loss": out.loss, "global_step": int(global_step)}
    if kind == "classification":
        results["eval_accuracy"] = M.accuracy(gold.tolist(), preds.tolist())
    names = list(task.metric_names)
    if names:
        gold_arg = gold if kind == "multilabel" else gold.tolist()
        pred_arg = preds if kind == "multilabel" else preds.tolist()
        for name, value in M.compute_metrics(names, gold_arg, pred_arg).items():
            results[metric_key(name)] = value
    return results


def _save_best(model, directory: Path, step: int, results: Mapping[str, Any], info, source) -> None:
    """Replace ``best/`` with this model's weights (a complete model folder) atomically."""
    from ..engine.classifier import save_weights

    with atomic_directory(directory) as tmp:
        save_weights(model, tmp / "model.ckpt", global_step=step)
        _write_run_folder(tmp, info, source)
        rundir.write_eval_results(tmp, results)


def _rewrite_state_file(directory: Path, prefix_name: str) -> None:
    """A relative ``checkpoint`` state file (a folder copied elsewhere still resolves)."""
    with atomic_write(directory / "checkpoint") as fh:
        fh.write(f'model_checkpoint_path: "{prefix_name}"\nall_model_checkpoint_paths: "{prefix_name}"\n')


def _run_once(c: FinetuneConfig, source: _ModelSource, tokenizer, data: _Data, runtime, progress) -> dict[str, Any]:
    from ..engine import classifier as engine
    from ..engine.checkpoint import load_into
    from ..engine.checkpoint_manager import CheckpointManager
    from ..engine.optimization import num_warmup_steps_for

    task = data.task
    kind = task_kind(task)
    output_dir = Path(c.output_dir)
    chief = runtime.is_chief
    info = make_run_info(c, task, source)
    if chief:
        output_dir.mkdir(parents=True, exist_ok=True)
        _check_existing_run(output_dir, info)
        _write_run_folder(output_dir, info, source)
        rundir.record_seed(output_dir, runtime.seed)

    model = engine.build_model(runtime, source.config, task.num_labels, kind=kind, seed=runtime.seed,
                               random_init=True)
    summary: dict[str, Any] = {"task": task.name, "output_dir": str(output_dir), "seed": runtime.seed}
    predictor = engine.Predictor(model, jit_compile=runtime.xla, padding_multiple=runtime.padding_multiple)

    def load_init() -> None:
        if source.checkpoint is None:
            console.warn("no initial checkpoint: the model starts from random weights")
            summary["init"] = None
            return
        report = engine.load_initial_weights(model, source.checkpoint, source.weights_format)
        console.info(report.summary())
        summary["init"] = {
            "checkpoint": report.source,
            "loaded": len(report.loaded),
            "missing": list(report.missing),
            "unexpected": list(report.unexpected),
        }

    global_step = 0
    if c.do_train:
        assert data.train is not None
        n_train = len(data.train)
        num_train_steps = int(n_train / c.train_batch_size * c.num_train_epochs)
        if c.max_steps is not None:
            num_train_steps = min(num_train_steps, c.max_steps)
        if num_train_steps < 1:
            raise UsageError(
                f"{n_train} training examples make no full batch of {c.train_batch_size} in "
                f"{c.num_train_epochs} epochs (0 training steps)",
                hint="lower --train-batch-size or raise --num-train-epochs",
            )
        options = engine.TrainOptions(
            learning_rate=c.learning_rate,
            num_train_steps=num_train_steps,
            num_warmup_steps=num_warmup_steps_for(num_train_steps, c.warmup_proportion),
            train_batch_size=c.train_batch_size,
            accumulation_steps=c.gradient_accumulation_steps,
            save_checkpoints_steps=c.save_checkpoints_steps,
            keep_checkpoint_max=c.keep_checkpoint_max,
            optimizer=c.optimizer,
            seed=runtime.seed,
        )
        trainer = engine.Trainer(runtime, model, options, output_dir)
        resumed = trainer.restore()
        if resumed is None:
            load_init()
        else:
            console.info(f"resuming from {trainer.manager.latest()} (step {resumed} of {num_train_steps})")
            summary["resumed_from_step"] = resumed
        steps_per_epoch = n_train / c.train_batch_size
        eval_every = c.eval_every_steps
        by_epoch = eval_every is None and bool(c.eval_every_epoch or c.keep_best or c.early_stopping_patience)
        tracker = None
        if eval_every or by_epoch:
            tracker = _BestTracker.load(output_dir, metric_key(c.keep_best or "eval_loss"))
        console.info(
            f"training: {n_train} examples, batch {c.train_batch_size}, "
            f"{epochs_to_steps(c.num_train_epochs, n_train, c.train_batch_size, num_train_steps)} "
            f"({options.num_warmup_steps} warmup)"
        )
        throughput = engine.Throughput()
        started = time.perf_counter()
        trained_examples = 0
        history = []
        if tracker is not None and tracker.stopped_early:
            console.info(f"this run stopped early at step {trainer.global_step}; not training further")
        else:
            for result in trainer.steps(data.train):
                throughput.add(result.examples)
                trained_examples += result.examples
                rate = throughput.rate()
                remaining = (num_train_steps - result.step) * c.train_batch_size
                events.emit(
                    progress,
                    phase="train",
                    step=result.step,
                    total_steps=num_train_steps,
                    epoch=result.step / steps_per_epoch,
                    epochs=c.num_train_epochs,
                    loss=result.loss,
                    learning_rate=result.learning_rate,
                    examples_per_s=rate,
                    eta_s=remaining / rate if rate > 0 else None,
                )
                due = (ends_epoch(result.step, n_train, c.train_batch_size) if by_epoch
                       else bool(eval_every) and result.step % eval_every == 0)
                if tracker is not None and (due or result.step >= num_train_steps):
                    out = engine.evaluate(predictor, data.dev, c.eval_batch_size,
                                          events.counter(progress, "eval", len(data.dev)))
                    results = _eval_results(task, data.dev, out, result.step)
                    history.append(results)
                    events.emit(progress, phase="eval", step=result.step, metrics=results)
                    console.info(f"step {result.step}: " + ", ".join(
                        f"{k} {v:.4f}" for k, v in sorted(results.items()) if k != "global_step"))
                    assert tracker is not None
                    if tracker.metric not in results:
                        raise UsageError(
                            f"unknown metric {c.keep_best!r} for --keep-best "
                            f"(task {task.name} reports: {', '.join(available_metrics(task))})"
                        )
                    improved = tracker.update(float(results[tracker.metric]), result.step)
                    if improved and c.keep_best and chief:
                        _save_best(model, output_dir / rundir.BEST_DIR, result.step, results, info, source)
                    if c.early_stopping_patience and tracker.bad_evals >= c.early_stopping_patience:
                        tracker.stopped_early = True
                        if chief:
                            trainer.save()
                            tracker.save(output_dir)
                        console.info(
                            f"early stopping at step {result.step}: no {tracker.metric} improvement in "
                            f"{tracker.bad_evals} evaluations (best {tracker.best_value:.4f} at step {tracker.best_step})"
                        )
                        break
                    if chief:
                        tracker.save(output_dir)
        seconds = time.perf_counter() - started
        global_step = trainer.global_step
        summary.update(
            num_train_steps=num_train_steps,
            train_examples=n_train,
            train_seconds=seconds,
            train_examples_per_s=trained_examples / seconds if seconds > 0 and trained_examples else None,
            history=history,
        )
        if tracker is not None:
            summary["stopped_early"] = tracker.stopped_early
            summary["best"] = {"metric": tracker.metric, "value": tracker.best_value, "step": tracker.best_step}
            best_dir = output_dir / rundir.BEST_DIR
            if c.keep_best and (best_dir / "checkpoint").is_file():
                from ..engine.checkpoint import resolve_checkpoint

                report = load_into([model.bert, model.head], resolve_checkpoint(best_dir))
                global_step = report.global_step if report.global_step is not None else global_step
                console.info(f"restored the best weights (step {tracker.best_step}, {tracker.metric} "
                             f"{tracker.best_value:.4f}) for the final evaluation")
    else:
        latest = CheckpointManager(output_dir, {}, is_chief=False).latest() if output_dir.is_dir() else None
        if latest is not None:
            report = load_into([model.bert, model.head], latest)
            global_step = report.global_step or 0
            console.info(f"evaluating {latest}")
            summary["checkpoint"] = latest
        else:
            load_init()
            rundir.require_trained_head(summary.get("init"), output_dir, "classifier head (output_weights, output_bias)")
            if source.checkpoint is not None and source.weights_format == "tf1":
                from ..engine.checkpoint import list_checkpoint, read_checkpoint

                if "global_step" in list_checkpoint(source.checkpoint):
                    global_step = int(read_checkpoint(source.checkpoint, ["global_step"])["global_step"])
    summary["global_step"] = int(global_step)

    if c.do_eval:
        assert data.dev is not None
        out = engine.evaluate(predictor, data.dev, c.eval_batch_size, events.counter(progress, "eval", len(data.dev)))
        results = _eval_results(task, data.dev, out, global_step)
        if chief:
            path = rundir.write_eval_results(output_dir, results)
            console.info(f"wrote {path}")
        summary["eval"] = results
        events.emit(progress, phase="eval", step=global_step, metrics=results, final=True)

    if c.do_predict:
        assert data.test is not None
        started = time.perf_counter()
        logits = predictor.logits_of(data.test, c.predict_batch_size,
                                     events.counter(progress, "predict", len(data.test)))
        outputs = engine.outputs_from_logits(kind, logits)
        seconds = time.perf_counter() - started
        if chief:
            with atomic_write(output_dir / rundir.TEST_FILE) as fh:
                for row in outputs:
                    fh.write(rundir.format_test_line(row))
            console.info(f"wrote {output_dir / rundir.TEST_FILE} ({len(outputs)} lines)")
        summary["predict"] = {
            "file": str(output_dir / rundir.TEST_FILE),
            "examples": len(outputs),
            "examples_per_s": len(outputs) / seconds if seconds > 0 else None,
        }

    if chief and c.export_slim:
        export = output_dir / rundir.EXPORT_DIR
        with atomic_directory(export) as tmp:
            engine.save_weights(model, tmp / "model.ckpt")
            _rewrite_state_file(tmp, "model.ckpt")
            _write_run_folder(tmp, info, source)
        summary["export"] = str(export)
        console.info(f"wrote the weights-only model folder {export}")
    if chief and c.export_saved_model:
        path = engine.export_saved_model(model, output_dir / rundir.SAVED_MODEL_DIR)
        summary["saved_model"] = str(path)
        console.info(f"wrote the SavedModel {path}")
    return summary


# ============================================================================ entry point


def _aggregate(runs: list[dict]) -> dict[str, Any]:
    keys = sorted({k for r in runs for k, v in (r.get("eval") or {}).items() if isinstance(v, (int, float))})
    mean, std, values = {}, {}, {}
    for key in keys:
        xs = [float(r["eval"][key]) for r in runs if key in (r.get("eval") or {})]
        values[key] = xs
        mean[key] = float(np.mean(xs))
        std[key] = float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0
    return {"mean": mean, "std": std, "min": {k: min(v) for k, v in values.items()},
            "max": {k: max(v) for k, v in values.items()}}


def run(config: FinetuneConfig, progress: events.Progress | None = None) -> dict[str, Any]:
    """Fine-tune / evaluate / predict as configured; returns the final metrics and facts.

    ``progress(event)`` gets dicts: ``phase`` "featurize" (split, examples), "train" (step,
    total_steps, epoch, epochs, loss, learning_rate, examples_per_s, eta_s), "eval" (step,
    metrics[, final]). Raises typed errors (bad input before any training).
    """
    c = config
    _check_options(c)
    check_output_dir(c.output_dir)
    source = resolve_model_source(c)
    from ..engine.model import check_seq_length

    check_seq_length(source.config, c.max_seq_length)
    if c.keep_best is not None:
        key = metric_key(c.keep_best)
        if key == "global_step":
            raise UsageError("--keep-best needs a metric such as accuracy, f1 or eval_loss")
    tokenizer = FullTokenizer(source.vocab_file, do_lower_case=source.do_lower_case)
    need_dev = bool(c.do_eval or c.eval_every_steps or c.eval_every_epoch or c.keep_best or c.early_stopping_patience)
    data = load_data(c, tokenizer, progress, need_dev=need_dev)
    if c.keep_best is not None and metric_key(c.keep_best) not in available_metrics(data.task):
        raise UsageError(
            f"unknown metric {c.keep_best!r} for --keep-best "
            f"(task {data.task.name} reports: {', '.join(available_metrics(data.task))})"
        )
    from ..engine import classifier as engine
    from ..engine.device import this_process_is_chief

    for name, features in (("train", data.train), ("dev", data.dev), ("test", data.test)):
        if features is not None and len(features):
            engine.validate_features(source.config, features, source=str(data.task.split_path(data.data_dir, name)))

    with rundir.exclusive(c.output_dir, "finetune", enabled=this_process_is_chief()):
        return _run_all(c, source, tokenizer, data, progress)


def _run_all(c: FinetuneConfig, source: _ModelSource, tokenizer, data: _Data, progress) -> dict[str, Any]:
    """Every --repeat run of one validated configuration (the output folder is locked)."""
    from ..engine.device import activity, select_runtime, this_process_is_chief

    base_seed = rundir.run_seed(c.output_dir, c.seed)  # drawn (and recorded) when not given
    if c.repeat > 1 and this_process_is_chief():
        rundir.record_seed(c.output_dir, base_seed)
    runs = []
    for i in range(c.repeat):
        seed = None if base_seed is None else base_seed + i
        runtime = select_runtime(c.device, c.precision, c.xla, seed)
        if i == 0:
            console.info(runtime.describe(activity(train=c.do_train, evaluate=c.do_eval, predict=c.do_predict)))
        runtime.apply_keras_policy()
        cfg = c if c.repeat == 1 else dataclasses.replace(c, output_dir=Path(c.output_dir) / f"seed-{seed}")
        if c.repeat > 1:
            console.info(f"run {i + 1} of {c.repeat} (seed {seed}) -> {cfg.output_dir}")
        runs.append(_run_once(cfg, source, tokenizer, data, runtime, progress))
    if c.repeat == 1:
        return runs[0]
    summary = {"task": data.task.name, "output_dir": str(c.output_dir), "repeat": c.repeat,
               "seeds": [r["seed"] for r in runs], "runs": runs, **_aggregate(runs)}
    out = Path(c.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "repeat_results.json") as fh:
        slim = {k: v for k, v in summary.items() if k != "runs"}
        slim["runs"] = [{"seed": r["seed"], "output_dir": r["output_dir"], "eval": r.get("eval")} for r in runs]
        fh.write(json.dumps(slim, indent=2, sort_keys=True) + "\n")
    return summary
