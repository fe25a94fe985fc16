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
``saved_model/``      (``export_saved_model``) a SavedModel: ids/mask/segments -> logits,
                      probabilities (:mod:`bert_cli.engine.export`: signature.json, labels.txt)
``export_hf``         (any folder) the model in the Hugging Face layout (:mod:`bert_cli.ops.export_hf`)
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
import functools
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import console, events, rundir
from ..errors import NotFoundError, UsageError
from ..fileio import atomic_write, check_output_dir
from ..models.hf_files import check_export_target
from ..text import metrics as M
from ..text.classifier_features import ClassifierFeatures, convert_examples, format_example_log, task_kind
from ..text.task_base import Task
from ..text.tasks import get_task
from ..text.tokenization import FullTokenizer
from . import option_specs as S
from . import training
from .schedule import ends_epoch
from .training import ModelSource, resolve_model_source

__all__ = ["FinetuneConfig", "run", "resolve_model_source", "make_run_info", "check_options", "metric_key"]

RUN_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(training.TrainingRunFields):
    """Options of ``bert finetune TASK`` (the original's names and defaults, plus extras); the
    model, training and engine options are :class:`~bert_cli.ops.training.TrainingRunFields`."""

    task: str
    output_dir: Path
    data_dir: Path | None = None
    task_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # get_task(**options)
    do_eval: bool = False
    # the original's hyper-parameters (defaults and ranges: bert_cli.ops.option_specs)
    max_seq_length: int = S.MAX_SEQ_LENGTH.field()
    eval_batch_size: int = S.EVAL_BATCH_SIZE.field()
    # extras
    eval_every_steps: int | None = S.EVAL_EVERY_STEPS.field()
    eval_every_epoch: bool = False
    keep_best: str | None = None  # metric name (accuracy, f1, eval_loss, ...) -> best/
    early_stopping_patience: int | None = S.EARLY_STOPPING_PATIENCE.field()  # evaluations without improvement
    export_slim: bool = False
    export_saved_model: bool = False
    repeat: int = S.REPEAT.field()  # K runs with seeds seed, seed+1, ... (mean and spread)


# ============================================================================ helpers


def check_options(c: FinetuneConfig) -> None:
    """Option errors (UsageError) before anything is read (also ``finetune ner``'s)."""
    from ..text.task_names import FINETUNE_TASKS

    if str(c.task).lower() not in FINETUNE_TASKS:
        raise UsageError(f"unknown task {c.task!r} (tasks: {', '.join(FINETUNE_TASKS)})",
                         hint="your own data: csv, tsv or jsonl with --data-dir")
    if not (c.do_train or c.do_eval or c.do_predict):
        raise UsageError("nothing to do: pass at least one of --do-train, --do-eval, --do-predict")
    # (each value's own range was checked when the config was built: check_fields)
    if c.eval_every_steps and c.eval_every_epoch:
        raise UsageError("use either --eval-every-steps or --eval-every-epoch, not both")
    periodic = c.eval_every_steps or c.eval_every_epoch or c.keep_best or c.early_stopping_patience
    if periodic and not c.do_train:
        raise UsageError("periodic evaluation, --keep-best and --early-stopping need --do-train")
    if c.model is None and (c.vocab_file is None or c.bert_config_file is None):
        raise UsageError(
            "no model: pass --model NAME|DIR, or --vocab-file and --bert-config-file (and --init-checkpoint)",
            hint=(f"to go on with the run in {c.output_dir}, pass --model {c.output_dir}"
                  if (Path(c.output_dir) / rundir.RUN_FILE).is_file() else "bert download --list"),
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


def make_run_info(c: FinetuneConfig, task: Task, source: ModelSource) -> dict:
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


def _run_once(c: FinetuneConfig, source: ModelSource, tokenizer, data: _Data, runtime, progress) -> dict[str, Any]:
    from ..engine import classifier as engine

    task = data.task
    kind = task_kind(task)
    output_dir = Path(c.output_dir)
    chief = runtime.is_chief
    info = make_run_info(c, task, source)
    training.prepare_run_folder(output_dir, info, source, runtime)

    model = engine.build_model(runtime, source.config, task.num_labels, kind=kind, seed=runtime.seed,
                               random_init=True)
    modules = [model.bert, model.head]
    summary: dict[str, Any] = {"task": task.name, "output_dir": str(output_dir), "seed": runtime.seed}
    predictor = engine.Predictor(model, jit_compile=runtime.xla, padding_multiple=runtime.padding_multiple)

    def load_init() -> None:
        training.load_initial_weights(functools.partial(engine.load_initial_weights, model), source, summary)

    if c.do_train:
        assert data.train is not None
        evaluation = _evaluation(c, task, data, predictor, output_dir, info, source, model, progress)
        driver = training.finetune(
            c, runtime, model, engine.loss_fn(model), n_train=len(data.train),
            dataset=lambda skip: engine.train_dataset(data.train, c.train_batch_size // c.gradient_accumulation_steps,
                                                      seed=runtime.seed, skip_batches=skip,
                                                      padding_multiple=runtime.padding_multiple),
            load_init=load_init, progress=progress, summary=summary, evaluation=evaluation,
        )
        global_step = driver.global_step
        if c.keep_best:
            global_step = training.restore_best(modules, output_dir, summary, global_step)
    else:
        global_step = training.load_trained(modules, output_dir, summary, load_init=load_init,
                                            head="classifier head (output_weights, output_bias)", verb="evaluating")
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
        export = training.export_slim(modules, output_dir / rundir.EXPORT_DIR, info, source)
        summary["export"] = str(export)
        console.info(f"wrote the weights-only model folder {export}")
    if chief and c.export_saved_model:
        path = engine.export_saved_model(model, output_dir / rundir.SAVED_MODEL_DIR, labels=info["labels"])
        summary["saved_model"] = str(path)
        console.info(f"wrote the SavedModel {path}")
    if chief and c.export_hf is not None:
        from .export_hf import HfExportSpec, export_run_modules

        spec = HfExportSpec(source.vocab_file, source.do_lower_case, tuple(map(str, info["labels"])), kind)
        summary["export_hf"] = export_run_modules([model.bert, model.head], c.export_hf, source.config, spec)["path"]
    return summary


def _evaluation(c: FinetuneConfig, task: Task, data: _Data, predictor, output_dir: Path, info, source, model,
                progress: events.Progress | None):
    """The driver's periodic evaluation (every N steps or each epoch; keep-best, early stopping)."""
    from ..engine import classifier as engine
    from ..engine.driver import Evaluation

    by_epoch = c.eval_every_steps is None and bool(c.eval_every_epoch or c.keep_best or c.early_stopping_patience)
    if not (c.eval_every_steps or by_epoch):
        return None
    assert data.train is not None and data.dev is not None
    n_train, every = len(data.train), c.eval_every_steps

    def due(step: int) -> bool:
        return ends_epoch(step, n_train, c.train_batch_size) if by_epoch else step % every == 0

    def on_best(step: int, results) -> None:
        if c.keep_best:
            training.save_best([model.bert, model.head], output_dir / rundir.BEST_DIR, step, results, info, source)

    def unknown_metric() -> Exception:
        return UsageError(f"unknown metric {c.keep_best!r} for --keep-best "
                          f"(task {task.name} reports: {', '.join(available_metrics(task))})")

    return Evaluation(
        evaluate=lambda step: _eval_results(task, data.dev, engine.evaluate(
            predictor, data.dev, c.eval_batch_size, events.counter(progress, "eval", len(data.dev))), step),
        due=due,
        tracker=rundir.BestTracker.load(output_dir, metric_key(c.keep_best or "eval_loss")),
        state_dir=output_dir,
        on_best=on_best,
        patience=c.early_stopping_patience,
        unknown_metric=unknown_metric,
    )


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
    check_options(c)
    check_output_dir(c.output_dir)
    if check_export_target(c.export_hf, keep=[c.output_dir]) and c.repeat > 1:
        raise UsageError("--export-hf writes one model, --repeat makes several",
                         hint=f"export the seed you pick afterwards: bert download --export-hf {c.output_dir}/seed-N DIR")
    from ..cluster import this_process_is_chief

    # The folder is locked first: a second run on it fails at once, before reading any data.
    with rundir.exclusive(c.output_dir, "finetune", enabled=this_process_is_chief()):
        return _prepare_and_run(c, progress)


def _prepare_and_run(c: FinetuneConfig, progress: events.Progress | None) -> dict[str, Any]:
    """Resolve the model, read and featurize every split (input errors before any training),
    then every --repeat run (the output folder is locked)."""
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

    for name, features in (("train", data.train), ("dev", data.dev), ("test", data.test)):
        if features is not None and len(features):
            engine.validate_features(source.config, features, source=str(data.task.split_path(data.data_dir, name)))
    return _run_all(c, source, tokenizer, data, progress)


def _run_all(c: FinetuneConfig, source: ModelSource, tokenizer, data: _Data, progress) -> dict[str, Any]:
    """Every --repeat run of one validated configuration (the output folder is locked)."""
    from ..cluster import this_process_is_chief
    from ..engine.device import activity, select_runtime

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
        if c.repeat > 1:  # each run has its own folder; "run" / "run_done" let listeners follow it
            console.info(f"run {i + 1} of {c.repeat} (seed {seed}) -> {cfg.output_dir}")
            events.emit(progress, phase="run", output_dir=str(cfg.output_dir), seed=seed, run=i + 1, runs=c.repeat)
        runs.append(_run_once(cfg, source, tokenizer, data, runtime, progress))
        if c.repeat > 1:
            events.emit(progress, phase="run_done", output_dir=str(cfg.output_dir), result=runs[-1])
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
