"""`bert squad-threshold`'s work: scoring a run directory, best thresholds, --apply."""

from __future__ import annotations

import json
import random
from array import array
from pathlib import Path

import pytest

from bert_cli.errors import InputError, NotFoundError, UsageError
from bert_cli.ops.squad_threshold import SquadThresholdConfig, read_run_info, run
from bert_cli.text import squad_metrics
from bert_cli.text.squad import FeaturizeConfig, convert_examples_to_features, read_squad_examples
from bert_cli.text.squad_logits import RawResult, write_raw_logits
from bert_cli.text.squad_predict import (
    PredictionConfig,
    apply_threshold,
    make_run_info,
    write_prediction_files,
    write_predictions,
    write_run_info,
)

SEQ, STRIDE, QUERY = 64, 16, 16


def _predict_run(shared_data, out_dir, subset, version_2, seed=3):
    """What `bert finetune squad --do-predict` leaves behind, with random float32 logits."""
    from bert_cli.text.tokenization import FullTokenizer

    vocab = shared_data / "vocab/uncased/vocab.txt"
    predict_file = subset if isinstance(subset, Path) else shared_data / "squad/subsets" / subset
    tokenizer = FullTokenizer(str(vocab), do_lower_case=True)
    examples = read_squad_examples(predict_file, is_training=False)
    features = list(convert_examples_to_features(examples, tokenizer, SEQ, STRIDE, QUERY))
    rng = random.Random(seed)
    results = []
    for f in features:  # [CLS] logits drawn higher so that null and span scores compete
        start, end = ([rng.gauss(7, 3)] + [rng.gauss(0, 2) for _ in range(SEQ - 1)] for _ in range(2))
        results.append(RawResult(f.unique_id, array("f", start).tolist(), array("f", end).tolist()))
    cfg = PredictionConfig(version_2_with_negative=version_2)
    outputs = write_predictions(examples, features, results, cfg)
    write_prediction_files(out_dir, outputs)
    write_raw_logits(out_dir / "raw_logits.jsonl", results)
    write_run_info(out_dir, make_run_info(predict_file, vocab, FeaturizeConfig(SEQ, STRIDE, QUERY), cfg))
    return predict_file, outputs


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_v2_scores_and_finds_thresholds(shared_data, squad2_subset, tmp_path):
    predict_file, outputs = _predict_run(shared_data, tmp_path, squad2_subset, True)
    result = run(SquadThresholdConfig(predict_file=predict_file, output_dir=tmp_path))
    data, _ = squad_metrics.load_dataset(predict_file)
    expected = squad_metrics.evaluate_v2(data, outputs.predictions, outputs.null_odds)
    assert result["version_2"] and not result["applied"] and result["new_metrics"] is None
    assert result["metrics"] == expected
    assert result["best_f1_thresh"] == expected["best_f1_thresh"]
    assert result["best_f1_thresh"] in set(outputs.null_odds.values()) | {0.0}


def test_v2_apply_rewrites_predictions_for_the_best_f1_threshold(shared_data, squad2_subset, tmp_path):
    predict_file, outputs = _predict_run(shared_data, tmp_path, squad2_subset, True, seed=11)
    before = (tmp_path / "predictions.json").read_text(encoding="utf-8")
    result = run(SquadThresholdConfig(predict_file=predict_file, output_dir=tmp_path, apply=True))
    thresh = result["best_f1_thresh"]
    new_preds = _load(tmp_path / "predictions.json")
    # re-running write_predictions from the raw logits makes the same decision as thresholding
    # the saved n-best lists and null odds directly
    assert new_preds == apply_threshold(outputs.nbest, outputs.null_odds, thresh)
    assert result["applied"] and _load(tmp_path / "squad_run.json")["null_score_diff_threshold"] == thresh
    data, _ = squad_metrics.load_dataset(predict_file)
    assert result["new_metrics"] == squad_metrics.evaluate_v2(data, new_preds, outputs.null_odds)
    # with this seed the best threshold is below 0 and turns some answers into ""
    assert thresh < 0.0 and new_preds != outputs.predictions
    assert (tmp_path / "predictions.json").read_text(encoding="utf-8") != before
    assert {q for q, t in new_preds.items() if t == ""} == {q for q, v in outputs.null_odds.items() if v > thresh}


def test_explicit_files_win_over_output_dir(shared_data, squad2_subset, tmp_path):
    run_dir = tmp_path / "run"
    predict_file, outputs = _predict_run(shared_data, run_dir, squad2_subset, True)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({k: "" for k in outputs.predictions}), encoding="utf-8")
    result = run(SquadThresholdConfig(predict_file=predict_file, output_dir=run_dir, predictions_file=other))
    assert result["predictions_file"] == str(other)
    assert result["metrics"]["HasAns_exact"] == 0.0


def test_v1_is_just_scored(shared_data, tmp_path):
    predict_file, outputs = _predict_run(shared_data, tmp_path, "allennlp-models_squad.json", False)
    assert not (tmp_path / "null_odds.json").exists()
    result = run(SquadThresholdConfig(predict_file=predict_file, output_dir=tmp_path))
    data, _ = squad_metrics.load_dataset(predict_file)
    assert result["metrics"] == squad_metrics.evaluate_v1(data, outputs.predictions)
    assert set(result["metrics"]) == {"exact_match", "f1"} and result["best_f1_thresh"] is None
    with pytest.raises(UsageError, match="SQuAD 2.0"):
        run(SquadThresholdConfig(predict_file=predict_file, output_dir=tmp_path, apply=True))


def test_missing_files_name_the_predict_command(shared_data, squad2_subset, tmp_path):
    predict_file = squad2_subset
    with pytest.raises(NotFoundError) as err:
        run(SquadThresholdConfig(predict_file=predict_file, output_dir=tmp_path))
    assert "predictions.json" in str(err.value) and "bert finetune squad --do-predict" in err.value.hint
    _predict_run(shared_data, tmp_path, squad2_subset, True)
    (tmp_path / "raw_logits.jsonl").unlink()
    with pytest.raises(NotFoundError, match="raw logits"):
        run(SquadThresholdConfig(predict_file=predict_file, output_dir=tmp_path, apply=True))
    with pytest.raises(NotFoundError):
        run(SquadThresholdConfig(predict_file=tmp_path / "nope.json", output_dir=tmp_path))
    (tmp_path / "squad_run.json").write_text("{}", encoding="utf-8")
    with pytest.raises(InputError, match="missing key"):
        read_run_info(tmp_path)
