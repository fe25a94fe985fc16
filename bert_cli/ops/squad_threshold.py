"""``bert squad-threshold``: score SQuAD predictions and find (and optionally apply) the best
v2.0 ``null_score_diff_threshold``.

The run directory written by ``bert finetune squad --do-predict`` (``output_dir``)::

    predictions.json          qid -> answer text            (json.dumps(indent=4), as the original)
    nbest_predictions.json    qid -> [{text, probability, start_logit, end_logit}, ...]
    null_odds.json            qid -> score_diff             (SQuAD 2.0 only)
    raw_logits.jsonl          one line per feature: {"unique_id", "start_logits", "end_logits"}
                              (see bert_cli.text.squad_predict)
    squad_run.json            how the predictions were made: {"predict_file", "vocab_file",
                              "do_lower_case", "max_seq_length", "doc_stride", "max_query_length",
                              "n_best_size", "max_answer_length", "version_2_with_negative",
                              "null_score_diff_threshold"}  (squad_predict.make_run_info / write_run_info)

No featurization metadata is stored: featurization is deterministic, so ``--apply``
re-featurizes ``predict_file`` with the vocabulary and settings of ``squad_run.json`` and
re-runs ``write_predictions`` on the saved raw logits with the best-F1 threshold, then
rewrites ``predictions.json`` atomically (and records the new threshold in
``squad_run.json``). Nothing needs the model.

v1.1 predict files are simply scored (exact_match, f1); there is no threshold to find.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .. import console, rundir
from ..errors import InputError, NotFoundError, UsageError
from ..fileio import atomic_write, check_output_dir
from ..text import squad_metrics
from ..text.squad import FeaturizeConfig, question_ids
from ..text.squad_logits import RAW_LOGITS_FILE
from ..text.squad_predict import (
    NULL_ODDS_FILE,
    PREDICTIONS_FILE,
    PredictionConfig,
    predictions_from_logits,
    write_run_info,
)

PREDICT_HINT = "run `bert finetune squad --do-predict --output-dir DIR` first, then pass that DIR"

_RUN_KEYS = ("vocab_file", "do_lower_case", "max_seq_length", "doc_stride", "max_query_length",
             "n_best_size", "max_answer_length")


@dataclasses.dataclass(frozen=True)
class SquadThresholdConfig:
    """What ``bert squad-threshold`` was asked to do."""

    predict_file: Path
    output_dir: Path | None = None
    predictions_file: Path | None = None  # explicit files win over output_dir
    null_odds_file: Path | None = None
    apply: bool = False  # rewrite predictions.json for the best-F1 threshold from the raw logits


def _resolve(explicit: Path | None, output_dir: Path | None, name: str, what: str) -> Path:
    if explicit is not None:
        path = Path(explicit)
    elif output_dir is not None:
        path = Path(output_dir) / name
    else:
        raise UsageError(f"give --output-dir or the {what} file explicitly", hint=PREDICT_HINT)
    if not path.is_file():
        raise NotFoundError(f"{what} not found: {path}", hint=PREDICT_HINT)
    return path


def read_run_info(output_dir: str | Path) -> dict:
    """``squad_run.json`` of a run directory, checked for the keys ``--apply`` needs."""
    path = Path(output_dir) / rundir.SQUAD_RUN_FILE
    if not path.is_file():
        raise NotFoundError(f"run settings not found: {path}", hint=PREDICT_HINT)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", path=path) from None
    missing = [k for k in _RUN_KEYS if not isinstance(info, dict) or k not in info]
    if missing:
        raise InputError(f"missing key(s): {', '.join(missing)}", path=path, hint=PREDICT_HINT)
    return info


def _load_tokenizer(vocab_file: str, do_lower_case: bool):
    from ..text.tokenization import FullTokenizer

    path = Path(vocab_file)
    if not path.is_file():
        raise NotFoundError(f"vocabulary of the run not found: {path}",
                            hint="squad_run.json names the vocab.txt used by the predict step")
    return FullTokenizer(str(path), do_lower_case=bool(do_lower_case))


def run(config: SquadThresholdConfig) -> dict:
    """Score the predictions; for SQuAD 2.0 find the best thresholds and optionally apply the best-F1 one.

    Returns ``{"version_2": bool, "best_f1_thresh": float|None, "metrics": {...},
    "applied": bool, "new_metrics": {...}|None, "predictions_file": str}``.
    """
    if config.apply and config.output_dir is not None:
        check_output_dir(config.output_dir)
    dataset, version = squad_metrics.load_dataset(config.predict_file)
    if not question_ids(dataset, config.predict_file):
        raise InputError("no questions to score", path=config.predict_file)
    version_2 = squad_metrics.is_version_2(dataset, version)
    predictions_file = _resolve(config.predictions_file, config.output_dir, PREDICTIONS_FILE, "predictions")
    predictions = squad_metrics.load_predictions(predictions_file, hint=PREDICT_HINT)
    result = {"version_2": version_2, "best_f1_thresh": None, "metrics": None, "applied": False,
              "new_metrics": None, "predictions_file": str(predictions_file)}

    if not version_2:
        if config.apply:
            raise UsageError("--apply needs a SQuAD 2.0 predict file (v1.1 has no null answers)")
        missing: list[str] = []
        result["metrics"] = squad_metrics.evaluate_v1(dataset, predictions, missing=missing)
        if missing:
            console.warn(f"{len(missing)} question(s) have no prediction and score 0 (e.g. {missing[0]!r})")
        return result

    null_odds_file = _resolve(config.null_odds_file, config.output_dir, NULL_ODDS_FILE, "null odds")
    null_odds = squad_metrics.load_null_odds(null_odds_file, hint=PREDICT_HINT)
    metrics = squad_metrics.evaluate_v2(dataset, predictions, null_odds, source=predictions_file)
    result["metrics"] = metrics
    result["best_f1_thresh"] = metrics["best_f1_thresh"]
    if config.apply:
        target = Path(config.output_dir) / PREDICTIONS_FILE if config.output_dir is not None else predictions_file
        result["new_metrics"] = _apply(config, metrics["best_f1_thresh"], target, dataset, null_odds)
        result["applied"] = True
        result["predictions_file"] = str(target)
    return result


def _apply(config: SquadThresholdConfig, threshold: float, predictions_file: Path, dataset: list,
           null_odds: dict) -> dict:
    if config.output_dir is None:
        raise UsageError("--apply needs --output-dir (the run directory with raw_logits.jsonl and squad_run.json)",
                         hint=PREDICT_HINT)
    output_dir = Path(config.output_dir)
    info = read_run_info(output_dir)
    logits_file = output_dir / RAW_LOGITS_FILE
    if not logits_file.is_file():
        raise NotFoundError(f"raw logits not found: {logits_file}", hint=PREDICT_HINT)
    tokenizer = _load_tokenizer(info["vocab_file"], info["do_lower_case"])
    featurize = FeaturizeConfig(int(info["max_seq_length"]), int(info["doc_stride"]),
                                int(info["max_query_length"])).validate()
    predict = PredictionConfig(n_best_size=int(info["n_best_size"]),
                               max_answer_length=int(info["max_answer_length"]),
                               do_lower_case=bool(info["do_lower_case"]),
                               version_2_with_negative=True,
                               null_score_diff_threshold=float(threshold))
    console.info(f"re-deciding answers with null_score_diff_threshold = {threshold}")
    outputs = predictions_from_logits(config.predict_file, logits_file, tokenizer, featurize, predict)
    with atomic_write(predictions_file, "w") as fh:
        fh.write(json.dumps(outputs.predictions, indent=4) + "\n")
    info["null_score_diff_threshold"] = float(threshold)
    write_run_info(output_dir, info)
    return squad_metrics.evaluate_v2(dataset, outputs.predictions, null_odds, source=predictions_file)
