"""``bert finetune ner``: token classification (named entities) on CoNLL or JSONL data.

Data (:mod:`bert_cli.text.ner`): ``--data-dir`` with ``train``, ``dev`` (or ``valid``) and
``test`` files in CoNLL (token first, tag in the last column or ``--tag-column``) or JSONL
``{"tokens": [...], "tags": [...]}``; the tag set is discovered from train (a dev/test tag not
in it is an error naming file and line); IOB1 files are converted to IOB2.

Features (:mod:`bert_cli.text.ner_features`): a word's first WordPiece carries its tag, the
other pieces are ``-100`` (out of the loss and the metrics), as the original README describes.
A sentence longer than ``--max-seq-length`` is split into windows every ``--doc-stride``
pieces and each word is predicted from the window where it has the most context (SQuAD's
rule); ``--document-context`` packs the neighbouring sentences of the same document around
a sentence that fits (the BERT paper's CoNLL setup). One training example is one window:
``num_train_steps = int(n_train_windows / train_batch_size * num_train_epochs)``.

Training is the one driver's (:func:`bert_cli.ops.training.finetune`): same optimizer,
schedule, checkpoints, resume, periodic evaluation, ``--keep-best`` (e.g. ``f1``) and early
stopping as ``bert finetune TASK``. In ``output_dir``:

=======================  ====================================================================
``model.ckpt-<step>``    checkpoints in the TF1 layout (encoder + ``output_weights`` [T, H],
                         ``output_bias`` [T]); a rerun resumes from the newest one
``bert_run.json``        kind ``ner``, ``tags``, casing, max_seq_length, doc_stride (with
                         ``vocab.txt`` and ``bert_config.json``): ``bert predict --model DIR``
``eval_results.txt``     ``eval_precision``, ``eval_recall``, ``eval_f1`` (entity level,
                         exactly conlleval), ``eval_accuracy`` (token), ``eval_loss``,
                         ``global_step``, ``loss``
``eval_report.txt``      the per-type table (also printed on stderr)
``test_predictions.txt`` ``token gold predicted`` per line (``token predicted`` for an
                         untagged test file), a blank line after each sentence: conlleval's input
``best/``, ``export/``,  as ``bert finetune TASK`` (``--keep-best``, ``--export-slim``,
``saved_model/``         ``--export-saved-model``: logits and probabilities [B, S, T])
=======================  ====================================================================

Every input problem is raised before training starts.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import console, events, rundir
from ..errors import NotFoundError, UsageError
from ..fileio import atomic_write, check_output_dir
from ..models.hf_files import check_export_target
from ..text import ner_metrics
from ..text.ner import Sentence, load_ner_data
from ..text.ner_features import NerFeature, NerFeatureConfig, featurize
from ..text.tokenization import FullTokenizer
from . import option_specs as S
from . import training
from .finetune import RUN_FORMAT, FinetuneConfig, check_options, metric_key, resolve_model_source
from .schedule import ends_epoch

__all__ = ["NerFinetuneConfig", "run", "featurize_split", "word_predictions", "NER_KIND", "METRICS"]

NER_KIND = "ner"
METRICS = ("eval_precision", "eval_recall", "eval_f1", "eval_accuracy", "eval_loss", "loss")
HEAD = "token classification head (output_weights, output_bias)"


@dataclasses.dataclass(frozen=True)
class NerFinetuneConfig(FinetuneConfig):
    """``bert finetune ner``: the classifier's fields and defaults (declared once, in
    :class:`FinetuneConfig`; ``task`` is ``"ner"``), plus the token-level ones."""

    tag_column: int = S.TAG_COLUMN.field()  # 0-based column of the tag in CoNLL files; -1: the last one
    doc_stride: int = S.NER_DOC_STRIDE.field()  # WordPieces between the starts of a long sentence's windows
    document_context: bool = False  # pack neighbouring sentences of the document around each one


# ============================================================================ data


@dataclasses.dataclass
class Split:
    """One featurized split: its sentences, window features and their arrays."""

    name: str
    path: Path
    sentences: list[Sentence]
    features: list[NerFeature]
    arrays: dict[str, np.ndarray]

    @property
    def labeled(self) -> bool:
        return all(s.tags is not None for s in self.sentences)


def featurize_split(name: str, path: Path, sentences: list[Sentence], tokenizer, tags: Sequence[str],
                    fconfig: NerFeatureConfig, *, keep_features: bool = True) -> Split:
    """Window features of ``sentences`` and their int32 arrays (``labels`` = label ids)."""
    tag_map = {t: i for i, t in enumerate(tags)}
    features = list(featurize(sentences, tokenizer, tag_map, fconfig))
    arrays = {
        key: np.asarray([getattr(f, attr) for f in features], np.int32).reshape(len(features), fconfig.max_seq_length)
        for key, attr in (("input_ids", "input_ids"), ("input_mask", "input_mask"), ("segment_ids", "segment_ids"),
                          ("labels", "label_ids"))
    }
    return Split(name, path, sentences, features if keep_features else [], arrays)


def word_predictions(split: Split, probabilities: np.ndarray) -> list[list[np.ndarray]]:
    """Each word's tag probabilities [T], from the window where it has the most context."""
    from ..text.ner_features import merge_predictions

    return merge_predictions(split.features, probabilities, split.sentences)


def _known_tags(c: NerFinetuneConfig) -> list[str]:
    """The tag set of an existing NER run (evaluate/predict without --do-train)."""
    for folder in (Path(c.output_dir), Path(c.model) if c.model else None):
        info = rundir.load_run_info(folder) if folder is not None and folder.is_dir() else None
        if info is not None and info.get("kind") == NER_KIND:
            return list(info["tags"])
    raise UsageError(f"nothing trained to evaluate: {c.output_dir} holds no NER run (bert_run.json of kind ner)",
                     hint="train first (add --do-train), or pass --model a fine-tuned NER run folder")


def _load_data(c: NerFinetuneConfig, tokenizer, fconfig: NerFeatureConfig, need_dev: bool, progress):
    if c.data_dir is None:
        raise UsageError("finetune ner needs --data-dir (a folder with train/dev/test CoNLL or JSONL files)")
    wanted = (["train"] if c.do_train else []) + (["dev"] if need_dev else []) + (["test"] if c.do_predict else [])
    data = load_ner_data(c.data_dir, tag_column=c.tag_column, splits=wanted,
                         tags=None if c.do_train else _known_tags(c))
    if c.do_predict and "test" not in data.files:
        raise NotFoundError(f"{c.data_dir}: no test file (test.txt/.conll/.jsonl)", hint="add one, or drop --do-predict")
    for split in data.converted:
        console.info(f"{data.files[split]}: IOB1 tags converted to IOB2")
    splits = {}
    for name in wanted:
        started = time.perf_counter()
        split = featurize_split(name, data.files[name], data.splits[name], tokenizer, data.tags, fconfig,
                                keep_features=name != "train")
        seconds = time.perf_counter() - started
        console.info(f"ner {name}: {len(split.sentences)} sentences -> {len(split.arrays['input_ids'])} windows "
                     f"({seconds:.1f}s to featurize)")
        events.emit(progress, phase="featurize", split=name, examples=len(split.arrays["input_ids"]), seconds=seconds)
        splits[name] = split
    if c.do_train and not len(splits["train"].arrays["input_ids"]):
        raise NotFoundError(f"{data.files['train']}: no training sentences")
    return list(data.tags), splits


# ============================================================================ evaluation


def _evaluate(predictor, split: Split, tags: Sequence[str], batch_size: int, global_step: int):
    """``(results, conlleval evaluation, predicted tags per sentence)`` of a labelled split."""
    from ..engine import token_classifier as engine

    logits, eval_loss, loss = engine.evaluate(predictor, split.arrays, batch_size)
    predicted = _tags_of(split, engine.softmax(logits), tags)
    result = ner_metrics.evaluate([s.tags for s in split.sentences], predicted)
    results = {**result.as_dict(), "eval_loss": eval_loss, "loss": loss, "global_step": int(global_step)}
    return results, result, predicted


def _tags_of(split: Split, probabilities: np.ndarray, tags: Sequence[str]) -> list[list[str]]:
    return [[tags[int(np.argmax(p))] for p in words] for words in word_predictions(split, probabilities)]


def _evaluation(c: NerFinetuneConfig, splits: dict, tags, predictor, output_dir: Path, save_best):
    """The driver's periodic evaluation (every N steps or each epoch; keep-best, early stopping)."""
    from ..engine.driver import Evaluation

    by_epoch = c.eval_every_steps is None and bool(c.eval_every_epoch or c.keep_best or c.early_stopping_patience)
    if not (c.eval_every_steps or by_epoch):
        return None
    n_train, dev = len(splits["train"].arrays["input_ids"]), splits["dev"]

    def due(step: int) -> bool:
        return ends_epoch(step, n_train, c.train_batch_size) if by_epoch else step % c.eval_every_steps == 0

    return Evaluation(
        evaluate=lambda step: _evaluate(predictor, dev, tags, c.eval_batch_size, step)[0],
        due=due,
        tracker=rundir.BestTracker.load(output_dir, metric_key(c.keep_best or "eval_loss")),
        state_dir=output_dir,
        on_best=save_best if c.keep_best else None,
        patience=c.early_stopping_patience,
    )


# ============================================================================ one run


def _run_info(c: NerFinetuneConfig, tags: Sequence[str], source) -> dict:
    return {
        "format": RUN_FORMAT, "task": NER_KIND, "kind": NER_KIND, "tags": list(tags), "labels": list(tags),
        "num_labels": len(tags), "max_seq_length": c.max_seq_length, "doc_stride": c.doc_stride,
        "document_context": c.document_context, "do_lower_case": source.do_lower_case, "vocab_file": "vocab.txt",
        "bert_config_file": "bert_config.json", "base_model": source.name, "init_checkpoint": source.checkpoint,
    }


def _run_locked(c: NerFinetuneConfig, source, tags: list[str], splits: dict, runtime, progress) -> dict[str, Any]:
    from ..engine import token_classifier as engine

    output_dir, chief = Path(c.output_dir), runtime.is_chief
    info = _run_info(c, tags, source)
    training.prepare_run_folder(output_dir, info, source, runtime)
    model = engine.build_model(runtime, source.config, len(tags), seed=runtime.seed, random_init=True)
    modules = [model.bert, model.head]
    predictor = engine.TokenPredictor(model, jit_compile=runtime.xla, padding_multiple=runtime.padding_multiple)
    summary: dict[str, Any] = {"task": NER_KIND, "output_dir": str(output_dir), "seed": runtime.seed, "tags": tags}

    def load_init() -> None:
        training.load_initial_weights(functools.partial(engine.load_initial_weights, model), source, summary)

    def save_best(step: int, results) -> None:
        training.save_best(modules, output_dir / rundir.BEST_DIR, step, results, info, source)

    if c.do_train:
        train = splits["train"].arrays
        micro = c.train_batch_size // c.gradient_accumulation_steps
        driver = training.finetune(
            c, runtime, model, engine.loss_fn(model), n_train=len(train["input_ids"]),
            dataset=lambda skip: engine.train_dataset(train, micro, seed=runtime.seed, skip_batches=skip,
                                                      padding_multiple=runtime.padding_multiple),
            load_init=load_init, progress=progress, summary=summary,
            evaluation=_evaluation(c, splits, tags, predictor, output_dir, save_best),
        )
        global_step = driver.global_step
        if c.keep_best:
            global_step = training.restore_best(modules, output_dir, summary, global_step)
    else:
        global_step = training.load_trained(modules, output_dir, summary, load_init=load_init, head=HEAD)
    summary["global_step"] = int(global_step)

    if c.do_eval:
        results, result, _ = _evaluate(predictor, splits["dev"], tags, c.eval_batch_size, global_step)
        report = ner_metrics.format_report(result)
        console.info(f"dev ({splits['dev'].path}):\n{report.rstrip()}")
        if chief:
            console.info(f"wrote {rundir.write_eval_results(output_dir, results)}")
            with atomic_write(output_dir / rundir.EVAL_REPORT_FILE) as fh:
                fh.write(report)
        summary["eval"] = results
        events.emit(progress, phase="eval", step=global_step, metrics=results, final=True)

    if c.do_predict:
        _predict(c, splits["test"], tags, predictor, output_dir, chief, summary)

    if chief and c.export_slim:
        summary["export"] = str(training.export_slim(modules, output_dir / rundir.EXPORT_DIR, info, source))
        console.info(f"wrote the weights-only model folder {summary['export']}")
    if chief and c.export_saved_model:
        summary["saved_model"] = str(engine.export_saved_model(model, output_dir / rundir.SAVED_MODEL_DIR))
        console.info(f"wrote the SavedModel {summary['saved_model']}")
    if chief and c.export_hf is not None:
        from .export_hf import HfExportSpec, export_run_modules

        spec = HfExportSpec(source.vocab_file, source.do_lower_case, tuple(tags), NER_KIND)
        summary["export_hf"] = export_run_modules(modules, c.export_hf, source.config, spec)["path"]
    return summary


def _predict(c: NerFinetuneConfig, test: Split, tags, predictor, output_dir: Path, chief: bool, summary: dict) -> None:
    from ..engine import token_classifier as engine

    started = time.perf_counter()
    logits = predictor.logits_of(test.arrays, c.predict_batch_size)
    predicted = _tags_of(test, engine.softmax(logits), tags)
    seconds = time.perf_counter() - started
    gold = [s.tags for s in test.sentences] if test.labeled else None
    path = output_dir / rundir.NER_PREDICTIONS_FILE
    if chief:
        ner_metrics.write_conll(path, [s.words for s in test.sentences], predicted, gold)
        console.info(f"wrote {path} ({len(predicted)} sentences)")
    summary["predict"] = {"file": str(path), "sentences": len(predicted),
                          "sentences_per_s": len(predicted) / seconds if seconds > 0 else None}
    if gold is not None:
        result = ner_metrics.evaluate(gold, predicted)
        summary["test"] = result.as_dict("test_")
        console.info(f"test ({test.path}): precision {100 * result.precision:.2f}, recall "
                     f"{100 * result.recall:.2f}, f1 {100 * result.f1:.2f}")


# ============================================================================ entry point


def run(config: NerFinetuneConfig, progress: events.Progress | None = None) -> dict[str, Any]:
    """Fine-tune / evaluate / predict NER as configured; returns the final metrics and facts
    (``eval``, ``test``, ``global_step``, training facts). Raises typed errors, input errors
    before any training."""
    c = config
    check_options(c)
    if c.repeat != 1:
        raise UsageError("--repeat is not supported by finetune ner")
    fconfig = NerFeatureConfig(c.max_seq_length, c.doc_stride, c.document_context).validate()
    check_output_dir(c.output_dir)
    check_export_target(c.export_hf, keep=[c.output_dir])
    source = resolve_model_source(c)
    from ..engine.model import check_seq_length

    check_seq_length(source.config, c.max_seq_length)
    if c.keep_best is not None and metric_key(c.keep_best) not in METRICS:
        raise UsageError(f"unknown metric {c.keep_best!r} for --keep-best (ner reports: {', '.join(METRICS)})")
    if source.do_lower_case:
        console.warn("the model is uncased (its input is lower-cased): NER loses the capitalisation it relies "
                     "on; use a cased model (e.g. --model cased-base)")
    tokenizer = FullTokenizer(source.vocab_file, do_lower_case=source.do_lower_case)
    need_dev = bool(c.do_eval or c.eval_every_steps or c.eval_every_epoch or c.keep_best or c.early_stopping_patience)
    from ..cluster import this_process_is_chief

    # The folder is locked before the data is read: a second run on it fails at once.
    with rundir.exclusive(c.output_dir, "finetune ner", enabled=this_process_is_chief()):
        tags, splits = _load_data(c, tokenizer, fconfig, need_dev, progress)
        from ..engine.classifier import validate_features
        from ..engine.device import activity, select_runtime

        for split in splits.values():
            if len(split.arrays["input_ids"]):
                validate_features(source.config, split.arrays, source=str(split.path))
        runtime = select_runtime(c.device, c.precision, c.xla, rundir.run_seed(c.output_dir, c.seed))
        console.info(runtime.describe(activity(train=c.do_train, evaluate=c.do_eval, predict=c.do_predict)))
        runtime.apply_keras_policy()
        return _run_locked(c, source, tags, splits, runtime, progress)
