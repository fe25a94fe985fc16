"""The built-in official SQuAD evaluators (v1.1, v2.0) and the v2.0 best-threshold search."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from conftest import reference_squad_v2

from bert_cli.errors import InputError, NotFoundError
from bert_cli.text import squad_metrics as m


def _dataset(questions):
    """A one-paragraph SQuAD ``data`` list from (qid, [gold texts]) pairs."""
    qas = [{"id": qid, "question": "?", "answers": [{"text": t, "answer_start": 0} for t in golds]}
           for qid, golds in questions]
    return [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]


# ------------------------------------------------------------------ normalization and scores
def test_normalize_answer_official_rules():
    assert m.normalize_answer("The  Eiffel-Tower, in   Paris!") == "eiffeltower in paris"
    # articles only as whole words; punctuation is removed before articles
    assert m.normalize_answer("Theater an-the a") == "theater anthe"
    assert m.normalize_answer("  A\tcat\n") == "cat"


def test_v1_and_v2_token_f1():
    assert m.f1_v1("Paris", "Paris France") == pytest.approx(2 / 3)
    assert m.f1_v1("", "Paris") == 0
    assert m.compute_f1("", "") == 1  # v2: both empty is right
    assert m.compute_f1("Paris", "") == 0
    # gold [cat, cat, sat] vs pred [cat, cat, cat]: 2 shared (Counter min), P = R = 2/3
    assert m.compute_f1("the cat the cat sat", "cat cat cat") == pytest.approx(2 / 3)


# ------------------------------------------------------------------ v1.1 on the real dev set
def test_v1_official_numbers_on_bert_ensemble(shared_data):
    result = m.evaluate_files(shared_data / "squad/dev-v1.1.json",
                              shared_data / "squad/predictions.v1.1.bert-ensemble.json")
    assert result == {"exact_match": 86.20624408703878, "f1": 92.19557978351145}


def test_v1_unanswered_questions_score_zero():
    data = _dataset([("a", ["Paris"]), ("b", ["London"])])
    missing = []
    assert m.evaluate_v1(data, {"a": "paris"}, missing=missing) == {"exact_match": 50.0, "f1": 50.0}
    assert missing == ["b"]


# ------------------------------------------------------------------ v2.0 by hand
HAND = [("q1", ["the Eiffel Tower", "Eiffel Tower"]), ("q2", ["Paris France"]), ("q3", []),
        ("q4", []), ("q5", ["1858"])]
HAND_PREDS = {"q1": "Eiffel tower", "q2": "Paris", "q3": "", "q4": "London", "q5": ""}
HAND_ODDS = {"q1": -3.0, "q2": -1.0, "q3": 2.0, "q4": 0.5, "q5": 1.5}


def test_v2_hand_computed_metrics_and_thresholds():
    out = m.evaluate_v2(_dataset(HAND), HAND_PREDS, HAND_ODDS)
    # per question exact/f1: q1 1/1, q2 0/(2/3), q3 1/1, q4 0/0, q5 0/0
    assert list(out) == ["exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total",
                         "NoAns_exact", "NoAns_f1", "NoAns_total",
                         "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"]
    assert out["exact"] == pytest.approx(40.0)
    assert out["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1) / 5)
    assert out["total"] == 5
    assert out["HasAns_exact"] == pytest.approx(100 / 3)
    assert out["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert (out["HasAns_total"], out["NoAns_total"]) == (3, 2)
    assert out["NoAns_exact"] == pytest.approx(50.0) and out["NoAns_f1"] == pytest.approx(50.0)
    # walk by odds: start 2 (two no-answer questions); q1 +1 -> 3 (best, -3.0); q2 +0 / +2/3;
    # q4 -1 (answers "London" to an unanswerable); q5 +0; q3 +0
    assert out["best_exact"] == pytest.approx(60.0) and out["best_exact_thresh"] == -3.0
    assert out["best_f1"] == pytest.approx(100 * (3 + 2 / 3) / 5) and out["best_f1_thresh"] == -1.0
    # conftest's independent evaluation (used on real text below) agrees with these hand numbers
    assert reference_squad_v2(list(m.iter_questions(_dataset(HAND))), HAND_PREDS, HAND_ODDS) == pytest.approx(out)


def test_v2_na_prob_thresh_applies_to_score_diff_values():
    # q4 answered "London" wrongly but its null odds 1.5 > 1.0, so the official evaluator scores it
    # as a no-answer prediction (right); q1 with odds 1.2 loses its correct answer.
    odds = dict(HAND_ODDS, q4=1.5, q1=1.2)
    out = m.evaluate_v2(_dataset(HAND), HAND_PREDS, odds)
    assert out["exact"] == pytest.approx(100 * (0 + 0 + 1 + 1 + 0) / 5)
    without = m.evaluate_v2(_dataset(HAND), HAND_PREDS)
    assert without["exact"] == pytest.approx(40.0) and "best_f1" not in without


def test_v2_threshold_walk_ties_follow_file_order():
    data = _dataset([("na", []), ("ok", ["yes"])])
    preds = {"na": "something", "ok": "yes"}
    # equal odds: the official walk visits them in the odds file's order
    first_wrong = m.evaluate_v2(data, preds, {"na": 0.5, "ok": 0.5})
    first_right = m.evaluate_v2(data, preds, {"ok": 0.5, "na": 0.5})
    assert (first_wrong["best_exact"], first_wrong["best_exact_thresh"]) == (50.0, 0.0)
    assert (first_right["best_exact"], first_right["best_exact_thresh"]) == (100.0, 0.5)


def test_v2_missing_prediction_or_odds_is_a_typed_error():
    with pytest.raises(InputError, match="no prediction"):
        m.evaluate_v2(_dataset(HAND), {"q1": "x"}, HAND_ODDS)
    odds = dict(HAND_ODDS)
    del odds["q3"]
    with pytest.raises(InputError, match="null-odds"):
        m.evaluate_v2(_dataset(HAND), HAND_PREDS, odds)


# ------------------------------------------------------------------ v2.0 on real text vs an independent computation
def test_v2_real_text_synthetic_predictions_match_independent_computation(shared_data):
    path = shared_data / "squad/dev-v2.0.cs224n-split.json"
    dataset, version = m.load_dataset(path)
    assert m.is_version_2(dataset, version)
    rng = random.Random(1234)
    qas = list(m.iter_questions(dataset))
    assert len(qas) == 6078 and sum(not qa["answers"] for qa in qas) == 3168
    preds, odds = {}, {}
    for i, qa in enumerate(qas):
        golds = [a["text"] for a in qa["answers"]]
        roll = rng.random()
        if golds:
            preds[qa["id"]] = "" if roll < 0.15 else golds[0].split()[0] if roll < 0.35 else golds[0]
        else:
            preds[qa["id"]] = "" if roll < 0.6 else rng.choice(["the answer", "1990", "Paris"])
        odds[qa["id"]] = rng.gauss(-1.0 if golds else 1.0, 2.0)  # informative, so the best threshold is inside

    out = m.evaluate_v2(dataset, preds, odds)
    expected = reference_squad_v2(qas, preds, odds)  # conftest: restated apart from bert_cli

    n = len(qas)
    assert list(out) == list(expected)
    assert out["total"] == n and out["HasAns_total"] == n - 3168 and out["NoAns_total"] == 3168
    for key, value in expected.items():
        if key.endswith("_thresh"):
            assert out[key] == value, key
        else:
            assert out[key] == pytest.approx(value, abs=1e-9), key
    na = np.array(list(odds.values()))
    for key in ("best_exact_thresh", "best_f1_thresh"):
        assert na.min() < out[key] < na.max()


# ------------------------------------------------------------------ files
def test_files_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [', encoding="utf-8")
    with pytest.raises(InputError, match="bad.json"):
        m.load_dataset(bad)
    with pytest.raises(NotFoundError):
        m.load_dataset(tmp_path / "nope.json")
    notsquad = tmp_path / "x.json"
    notsquad.write_text(json.dumps({"data": [{"paragraphs": [{"qas": [{"question": "?"}]}]}]}), encoding="utf-8")
    with pytest.raises(InputError, match="not a SQuAD file"):
        m.load_dataset(notsquad)
    preds = tmp_path / "p.json"
    preds.write_text(json.dumps({"a": 3}), encoding="utf-8")
    with pytest.raises(InputError, match="question id -> answer text"):
        m.load_predictions(preds)


def test_version_detection(shared_data):
    v1, ver1 = m.load_dataset(shared_data / "squad/dev-v1.1.json")
    assert not m.is_version_2(v1, ver1)
    sub2, ver2 = m.load_dataset(shared_data / "squad/subsets/allennlp-models_squad2.json")
    assert ver2 is None and m.is_version_2(sub2, ver2)
