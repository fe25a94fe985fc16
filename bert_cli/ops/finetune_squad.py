"""``bert finetune squad``: the original ``run_squad.py`` (SQuAD 1.1 / 2.0 train and predict).

Same math and files as the original: the training examples are shuffled with
``random.Random(12345)``; ``num_train_steps = int(len(train_examples) / train_batch_size *
num_train_epochs)`` (examples, not features); ``num_warmup_steps = int(num_train_steps *
warmup_proportion)``; the training features are streamed to ``train.tf_record`` and read back
with ``repeat + shuffle(100) + drop_remainder``; the loss is ``(CE(start) + CE(end)) / 2``.
In ``output_dir``:

==========================  ===============================================================
``model.ckpt-<step>``       checkpoints in the TF1 layout (weights incl. ``cls/squad/*``, Adam
                            slots, ``global_step``); rerunning the same command resumes from
                            the newest one (a finished run does no further steps)
``train.tf_record``         the training features (the original's ``FeatureWriter`` layout)
``raw_logits.jsonl``        one line per predict feature: unique_id, start/end logits
``predictions.json``        qid -> answer (the original's files, ``json.dumps(indent=4)``)
``nbest_predictions.json``  qid -> [{text, probability, start_logit, end_logit}, ...]
``null_odds.json``          qid -> score_diff (``version_2_with_negative`` only)
``squad_run.json``          how the predictions were made (``bert squad-threshold --apply``)
``vocab.txt``,              copies of the model's vocabulary and config (``squad_run.json``
``bert_config.json``        names this vocab.txt, so the run folder is self-contained)
==========================  ===============================================================

Prediction streams: the predict file's features are generated lazily and batched straight
into the model; their logits go to ``raw_logits.jsonl``; ``write_predictions`` then re-runs
the (deterministic) featurization in lock-step with that file. Memory stays at one batch.

All input problems (missing or malformed files, lengths against the model, options) are
raised before training starts.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
import time
from pathlib import Path
from typing import Any

from .. import console, events, rundir
from ..errors import ConfigError, InputError, UsageError
from ..fileio import atomic_write, check_output_dir
from ..models.hf_files import check_export_target
from ..text import squad_metrics
from ..text.squad import FeaturizeConfig, ReadStats, SquadExample, convert_examples_to_features, load_squad_json
from ..text.squad import question_ids, read_squad_examples, write_features
from ..text.squad_logits import RAW_LOGITS_FILE, RawLogitsWriter, read_raw_logits
from ..text.squad_predict import (
    PredictionConfig,
    make_run_info,
    write_prediction_files,
    write_predictions,
    write_run_info,
)
from ..text.tokenization import FullTokenizer
from . import option_specs as S
from . import training
from .schedule import epochs_to_steps

__all__ = ["SquadFinetuneConfig", "run", "TRAIN_RECORD_FILE", "TRAIN_RECORD_INFO", "TRAIN_SHUFFLE_SEED"]


TRAIN_RECORD_FILE = "train.tf_record"
TRAIN_RECORD_INFO = "train.tf_record.json"
TRAIN_SHUFFLE_SEED = 12345  # the original's random.Random(12345) over the training examples


@dataclasses.dataclass(frozen=True)
class SquadFinetuneConfig(training.TrainingRunFields):
    """Options of ``bert finetune squad`` (the original ``run_squad.py`` flags and defaults); the
    model, training and engine options are :class:`~bert_cli.ops.training.TrainingRunFields`."""

    output_dir: Path
    train_file: Path | None = None
    predict_file: Path | None = None
    version_2_with_negative: bool = False
    # featurization / prediction (defaults and ranges: bert_cli.ops.option_specs)
    max_seq_length: int = S.SQUAD_MAX_SEQ_LENGTH.field()
    doc_stride: int = S.DOC_STRIDE.field()
    max_query_length: int = S.MAX_QUERY_LENGTH.field()
    n_best_size: int = S.N_BEST_SIZE.field()
    max_answer_length: int = S.MAX_ANSWER_LENGTH.field()
    null_score_diff_threshold: float = S.NULL_SCORE_DIFF_THRESHOLD.field()
    first_answer_only: bool = False  # train on files whose questions have several answers (dev-style)


# ============================================================================ helpers


def _check_options(c: SquadFinetuneConfig) -> FeaturizeConfig:
    """Option errors (UsageError) before anything is read; returns the featurization settings."""
    if not (c.do_train or c.do_predict):
        raise UsageError("nothing to do: pass at least one of --do-train, --do-predict")
    if c.do_train and c.train_file is None:
        raise UsageError("--do-train needs --train-file (e.g. train-v1.1.json)")
    if c.do_predict and c.predict_file is None:
        raise UsageError("--do-predict needs --predict-file (e.g. dev-v1.1.json)")
    # (each value's own range was checked when the config was built: check_fields)
    if c.model is None and (c.vocab_file is None or c.bert_config_file is None):
        raise UsageError(
            "no model: pass --model NAME|DIR, or --vocab-file and --bert-config-file (and --init-checkpoint)",
            hint="bert download --list",
        )
    return FeaturizeConfig(c.max_seq_length, c.doc_stride, c.max_query_length).validate()


def _check_model(config, tokenizer: FullTokenizer, max_seq_length: int) -> None:
    """Sequence length and vocabulary size against the model (ConfigError)."""
    from ..engine.model import check_seq_length

    check_seq_length(config, max_seq_length)
    if len(tokenizer.vocab) > config.vocab_size:
        raise ConfigError(
            f"the vocabulary has {len(tokenizer.vocab)} tokens but the model only {config.vocab_size} embeddings",
            hint="use the vocab.txt that belongs to the model",
        )


def _load_questions(path: Path, what: str) -> list:
    """The ``data`` list of a SQuAD file with at least one question and unique ids (InputError)."""
    data = load_squad_json(path)
    if not question_ids(data, path):
        paragraphs = sum(len(entry.get("paragraphs") or ()) for entry in data if isinstance(entry, dict))
        raise InputError(f"no questions to {what} ({len(data)} article(s), {paragraphs} paragraph(s))", path=path)
    return data


def _read_training_examples(c: SquadFinetuneConfig) -> list[SquadExample]:
    stats = ReadStats()
    data = _load_questions(c.train_file, "train on")
    examples = read_squad_examples(c.train_file, is_training=True, version_2_with_negative=c.version_2_with_negative,
                                   stats=stats, data=data, first_answer_only=c.first_answer_only)
    if not examples:
        raise InputError(f"no training examples: the answers of all {stats.questions} question(s) were not "
                         "found in their paragraphs", path=c.train_file)
    random.Random(TRAIN_SHUFFLE_SEED).shuffle(examples)  # the original's pre-shuffle
    return examples


def _has_answers(data: list) -> bool:
    """True when every question carries an answers list and some are scorable (a dev file)."""
    qas = list(squad_metrics.iter_questions(data))
    if not qas or not all(isinstance(qa.get("answers"), list) for qa in qas):
        return False
    return any(qa["answers"] or qa.get("is_impossible") for qa in qas)


def _reporting(features, report, every: int = 64):
    """Yield ``features``; ``report(questions begun)`` every ``every`` features (progress)."""
    for n, feature in enumerate(features, 1):
        if report is not None and n % every == 0:
            report(feature.example_index + 1)
        yield feature


# ============================================================================ training data


def _record_info(c: SquadFinetuneConfig, featurize: FeaturizeConfig, vocab: Path, lower: bool, n: int) -> dict:
    train = Path(c.train_file)
    stat = train.stat()
    return {
        "train_file": str(train.resolve()), "train_file_size": stat.st_size, "train_file_mtime": stat.st_mtime,
        "vocab_file": str(vocab), "do_lower_case": lower, "max_seq_length": featurize.max_seq_length,
        "doc_stride": featurize.doc_stride, "max_query_length": featurize.max_query_length,
        "version_2_with_negative": c.version_2_with_negative, "first_answer_only": c.first_answer_only,
        "examples": n,
    }


def _ensure_train_records(c: SquadFinetuneConfig, featurize: FeaturizeConfig, examples: list[SquadExample],
                          tokenizer: FullTokenizer, vocab: Path, lower: bool,
                          progress: events.Progress | None) -> tuple[Path, int]:
    """``train.tf_record`` (streamed, atomic), reused when written with the same settings; returns
    the path and the number of features."""
    output_dir = Path(c.output_dir)
    path, info_path = output_dir / TRAIN_RECORD_FILE, output_dir / TRAIN_RECORD_INFO
    info = _record_info(c, featurize, vocab, lower, len(examples))
    if path.is_file() and info_path.is_file():
        try:
            old = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict) and {k: v for k, v in old.items() if k != "features"} == info:
            console.info(f"reusing {path} ({old.get('features')} features)")
            return path, int(old.get("features", 0))
    started = time.perf_counter()
    features = convert_examples_to_features(examples, tokenizer, featurize.max_seq_length, featurize.doc_stride,
                                            featurize.max_query_length, is_training=True)
    report = events.counter(progress, "featurize", len(examples), unit="questions", split="train")
    count = write_features(path, _reporting(features, report), is_training=True)
    seconds = time.perf_counter() - started
    with atomic_write(info_path) as fh:
        fh.write(json.dumps({**info, "features": count}, indent=2) + "\n")
    console.info(f"wrote {path}: {len(examples)} examples -> {count} features ({seconds:.1f}s)")
    events.emit(progress, phase="featurize", split="train", examples=len(examples), features=count, seconds=seconds,
                done=len(examples), total=len(examples), unit="questions", final=True)
    return path, count


# ============================================================================ steps


def _train(c: SquadFinetuneConfig, featurize: FeaturizeConfig, examples: list[SquadExample], tokenizer, vocab: Path,
           model, source, runtime, progress: events.Progress | None, summary: dict) -> int:
    """Train (or resume) to num_train_steps on the one driver; returns the final global_step."""
    from ..engine import squad_model as engine

    n_train = len(examples)
    k = c.gradient_accumulation_steps

    def dataset(skip: int):
        record, n_features = _ensure_train_records(c, featurize, examples, tokenizer, vocab, source.do_lower_case,
                                                   progress)
        summary["train_features"] = n_features
        return engine.train_dataset(record, featurize.max_seq_length, c.train_batch_size // k, seed=runtime.seed,
                                    skip_batches=skip)

    def describe(steps: int, warmup: int) -> str:
        return (f"training: {n_train} examples ({summary.get('train_features')} features), batch {c.train_batch_size}, "
                f"{epochs_to_steps(c.num_train_epochs, n_train, c.train_batch_size, steps)} ({warmup} warmup)")

    driver = training.finetune(c, runtime, model, engine.loss_fn(model), n_train=n_train, dataset=dataset,
                               load_init=lambda: _load_init(model, source, summary), progress=progress,
                               summary=summary, describe=describe)
    return driver.global_step


def _load_init(model, source, summary: dict) -> None:
    from ..engine import squad_model as engine

    training.load_initial_weights(functools.partial(engine.load_initial_weights, model), source, summary)


def _load_for_predict(c: SquadFinetuneConfig, model, source, summary: dict) -> None:
    """Predict-only: the newest checkpoint of output_dir, else the initial checkpoint."""
    summary["global_step"] = training.load_trained(
        [model.bert, model.head], Path(c.output_dir), summary, load_init=lambda: _load_init(model, source, summary),
        head="SQuAD head (cls/squad/*)", verb="predicting with")


def _predict(c: SquadFinetuneConfig, featurize: FeaturizeConfig, examples: list[SquadExample], data: list,
             tokenizer, vocab: Path, lower: bool, model, runtime, progress: events.Progress | None, summary: dict) -> None:
    from ..engine import squad_model as engine

    output_dir = Path(c.output_dir)
    predictor = engine.SquadPredictor(model, jit_compile=runtime.xla)

    def features():
        return convert_examples_to_features(examples, tokenizer, featurize.max_seq_length, featurize.doc_stride,
                                            featurize.max_query_length, is_training=False)

    started = time.perf_counter()
    logits_path = output_dir / RAW_LOGITS_FILE
    with RawLogitsWriter(logits_path) as writer:
        report = events.counter(progress, "predict", len(examples), unit="questions")
        for result in predictor.raw_results(_reporting(features(), report), c.predict_batch_size):
            writer.write(result)
            if writer.count % (50 * c.predict_batch_size) == 0:
                events.emit(progress, phase="predict", features=writer.count)
        n_features = writer.count
    seconds = time.perf_counter() - started
    events.emit(progress, phase="predict", features=n_features, seconds=seconds, final=True,
                done=len(examples), total=len(examples), unit="questions")
    console.info(f"wrote {logits_path}: {len(examples)} questions, {n_features} features ({seconds:.1f}s)")

    config = PredictionConfig(n_best_size=c.n_best_size, max_answer_length=c.max_answer_length, do_lower_case=lower,
                              version_2_with_negative=c.version_2_with_negative,
                              null_score_diff_threshold=c.null_score_diff_threshold)
    report = events.counter(progress, "postprocess", len(examples), unit="questions")
    preds = write_predictions(examples, _reporting(features(), report), read_raw_logits(logits_path), config)
    events.emit(progress, phase="postprocess", done=len(examples), total=len(examples), unit="questions", final=True)
    paths = write_prediction_files(output_dir, preds)
    info = make_run_info(Path(c.predict_file).resolve(), vocab, featurize, config)
    paths["run_info"] = write_run_info(output_dir, info)
    paths["raw_logits"] = logits_path
    for path in paths.values():
        console.info(f"wrote {path}")
    summary["predict"] = {
        "questions": len(examples),
        "features": n_features,
        "seconds": seconds,
        "features_per_s": n_features / seconds if seconds > 0 else None,
        "files": {k: str(v) for k, v in paths.items()},
        "all_null": preds.all_null,
    }
    if _has_answers(data):
        if squad_metrics.is_version_2(data):
            odds = preds.null_odds if c.version_2_with_negative else None
            metrics = squad_metrics.evaluate_v2(data, preds.predictions, odds, source=paths["predictions"])
        else:
            metrics = squad_metrics.evaluate_v1(data, preds.predictions)
        summary["metrics"] = metrics
        events.emit(progress, phase="eval", metrics=metrics, final=True)


# ============================================================================ entry point


def run(config: SquadFinetuneConfig, progress: events.Progress | None = None) -> dict[str, Any]:
    """Train and/or predict SQuAD as configured; returns facts and (with answers) the metrics.

    ``progress(event)`` gets dicts: ``phase`` "featurize" (split, examples, features, seconds),
    "train" (step, total_steps, epoch, epochs, loss, learning_rate, examples_per_s, eta_s),
    "predict" (features[, seconds, final]), "eval" (metrics, final). The returned dict has
    ``output_dir``, ``global_step``, training facts (``num_train_steps``, ``train_examples``,
    ``train_features``, ``resumed_from_step``, ...), ``predict`` (files, counts) and, when the
    predict file has answers, ``metrics`` (v1.1: exact_match, f1; v2.0: the official keys incl.
    best_exact/best_f1 and their thresholds). Raises typed errors, input errors before training.
    """
    c = config
    featurize = _check_options(c)
    check_output_dir(c.output_dir)
    check_export_target(c.export_hf, keep=[c.output_dir])
    from ..cluster import this_process_is_chief

    # The folder is locked first: a second run on it fails at once, before reading any data.
    with rundir.exclusive(c.output_dir, "finetune squad", enabled=this_process_is_chief()):
        return _prepare_and_run(c, featurize, progress)


def _prepare_and_run(c: SquadFinetuneConfig, featurize: FeaturizeConfig, progress: events.Progress | None) -> dict[str, Any]:
    """Read every input (a bad file fails before any training and before TensorFlow loads), then
    train and/or predict (the output folder is locked)."""
    source = training.resolve_model_source(c)
    tokenizer = FullTokenizer(source.vocab_file, do_lower_case=source.do_lower_case)

    # Read every input first: a bad file fails before any training (and before TensorFlow loads).
    train_examples = _read_training_examples(c) if c.do_train else None
    predict_data = _load_questions(c.predict_file, "predict") if c.do_predict else None
    predict_examples = (read_squad_examples(c.predict_file, is_training=False, data=predict_data)
                        if c.do_predict else None)
    if predict_data is not None and not c.version_2_with_negative and squad_metrics.is_version_2(predict_data):
        console.warn(f"{c.predict_file} is a SQuAD 2.0 file (unanswerable questions) but --version-2-with-negative "
                     "is off: every question gets an answer")
    _check_model(source.config, tokenizer, c.max_seq_length)
    if train_examples is not None:
        events.emit(progress, phase="read", split="train", examples=len(train_examples))
    if predict_examples is not None:
        events.emit(progress, phase="read", split="predict", examples=len(predict_examples))

    from ..engine.device import activity, select_runtime

    runtime = select_runtime(c.device, c.precision, c.xla, rundir.run_seed(c.output_dir, c.seed))
    console.info(runtime.describe(activity(train=c.do_train, predict=c.do_predict)))
    runtime.apply_keras_policy()
    return _run_locked(c, featurize, source, tokenizer, train_examples, predict_examples, predict_data,
                       runtime, progress)


def _run_locked(c, featurize, source, tokenizer, train_examples, predict_examples, predict_data, runtime,
                progress) -> dict[str, Any]:
    from ..engine import squad_model as engine

    output_dir = Path(c.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if runtime.is_chief:
        vocab = rundir.copy_model_files(output_dir, vocab_file=source.vocab_file, config_json=source.config.to_json())
        rundir.record_seed(output_dir, runtime.seed)
    else:
        vocab = source.vocab_file.resolve()

    model = engine.build_model(runtime, source.config, seed=runtime.seed, random_init=True)
    summary: dict[str, Any] = {"output_dir": str(output_dir), "seed": runtime.seed,
                               "version_2_with_negative": c.version_2_with_negative}
    if c.do_train:
        assert train_examples is not None
        summary["global_step"] = _train(c, featurize, train_examples, tokenizer, vocab, model, source, runtime,
                                        progress, summary)
    else:
        _load_for_predict(c, model, source, summary)
        summary.setdefault("global_step", 0)
    if c.do_predict and runtime.is_chief:
        assert predict_examples is not None and predict_data is not None
        _predict(c, featurize, predict_examples, predict_data, tokenizer, vocab, source.do_lower_case, model,
                 runtime, progress, summary)
    if c.export_hf is not None and runtime.is_chief:
        from .export_hf import HfExportSpec, export_run_modules

        spec = HfExportSpec(source.vocab_file, source.do_lower_case, kind="squad")
        summary["export_hf"] = export_run_modules([model.bert, model.head], c.export_hf, source.config, spec)["path"]
    return summary
