"""write_predictions (the original run_squad.py logic) on hand-made features and real SQuAD text."""

from __future__ import annotations

import json
import math
import random
from array import array

import pytest

from bert_cli.errors import InputError
from bert_cli.text.squad import (
    FeaturizeConfig,
    SquadExample,
    SquadFeature,
    convert_examples_to_features,
    read_squad_examples,
)
from bert_cli.text.squad_logits import RawLogitsWriter, RawResult, read_raw_logits, write_raw_logits
from bert_cli.text.squad_predict import (
    PredictionConfig,
    apply_threshold,
    compute_softmax,
    detokenize,
    get_best_indexes,
    get_final_text,
    predictions_from_logits,
    write_prediction_files,
    write_predictions,
)

# "Steve Smith's dog ran (fast)." as the original would featurize it for the question "who"
DOC = ["Steve", "Smith's", "dog", "ran", "(fast)."]
TOKENS = ["[CLS]", "who", "[SEP]", "steve", "smith", "'", "s", "dog", "ran", "(", "fast", ")", ".", "[SEP]"]
ORIG = {3: 0, 4: 1, 5: 1, 6: 1, 7: 2, 8: 3, 9: 4, 10: 4, 11: 4, 12: 4}
SEQ = 16  # two padding positions


def _feature(uid=1000000000, example_index=0, span_index=0, max_context=None):
    mc = {i: True for i in ORIG} if max_context is None else max_context
    return SquadFeature(uid, example_index, span_index, list(TOKENS), dict(ORIG), mc,
                        [0] * SEQ, [1] * len(TOKENS) + [0] * 2, [0] * SEQ)


def _logits(peaks, base=-10.0):
    values = [base] * SEQ
    for i, v in peaks.items():
        values[i] = v
    return values


EXAMPLE = SquadExample("q1", "who", DOC)
# top-3 starts: 14 (padding), 1 (question), 3; top-3 ends: 2 ([SEP]), 4, 10
START = _logits({14: 7.0, 1: 6.0, 3: 5.0, 10: 4.0, 0: 1.0})
END = _logits({2: 6.0, 4: 5.0, 10: 3.0, 6: 2.0, 0: 1.5})


def test_small_pieces():
    assert get_best_indexes([1.0, 3.0, 3.0, 2.0], 3) == [1, 2, 3]  # stable on ties
    assert compute_softmax([]) == []
    assert compute_softmax([1000.0, 1000.0]) == [0.5, 0.5]
    assert detokenize(["john", "##son", "'", "s", "##"]) == "johnson ' s"
    assert detokenize(["##a", "b", "  ##c"]) == "a b c"


def test_get_final_text_projects_onto_original_characters():
    assert get_final_text("steve smith", "Steve Smith's", True) == "Steve Smith"
    assert get_final_text("1895", "(1895-1943).", True) == "1895"
    assert get_final_text("nowhere", "Steve Smith's", True) == "Steve Smith's"  # not found: the span
    # accent stripping with a combining mark changes the length: alignment fails, span returned
    assert get_final_text("cafe", "cafe\u0301s", True) == "cafe\u0301s"
    assert get_final_text("Steve", "Steve Smith's", False) == "Steve"


def test_v1_nbest_filters_and_probabilities():
    out = write_predictions([EXAMPLE], [_feature()], [RawResult(1000000000, START, END)],
                            PredictionConfig(n_best_size=3))
    # start 10 is not in the top 3 starts; pairs with start 14/1 or end 2 are invalid
    nbest = out.nbest["q1"]
    assert [e["text"] for e in nbest] == ["Steve Smith", "Steve Smith's dog ran (fast"]
    assert [(e["start_logit"], e["end_logit"]) for e in nbest] == [(5.0, 5.0), (5.0, 3.0)]
    p = 1 / (1 + math.exp(-2.0))
    assert [e["probability"] for e in nbest] == pytest.approx([p, 1 - p])
    assert list(nbest[0]) == ["text", "probability", "start_logit", "end_logit"]
    assert out.predictions == {"q1": "Steve Smith"} and out.null_odds == {}
    short = write_predictions([EXAMPLE], [_feature()], {1000000000: RawResult(1000000000, START, END)},
                              PredictionConfig(n_best_size=3, max_answer_length=5))
    assert [e["text"] for e in short.nbest["q1"]] == ["Steve Smith"]


def test_start_must_be_max_context():
    not_max = {i: i != 3 for i in ORIG}
    out = write_predictions([EXAMPLE], [_feature(max_context=not_max)], [RawResult(1000000000, START, END)],
                            PredictionConfig(n_best_size=4))
    # start 3 is dropped; the 4th best start (10) comes in: (10, 10) "fast"
    assert [e["text"] for e in out.nbest["q1"]] == ["fast"]


def test_v1_no_valid_span_gives_the_empty_nonce():
    out = write_predictions([EXAMPLE], [_feature()], [RawResult(1000000000, START, END)],
                            PredictionConfig(n_best_size=2))
    assert out.nbest["q1"] == [{"text": "empty", "probability": 1.0, "start_logit": 0.0, "end_logit": 0.0}]
    assert out.predictions["q1"] == "empty"


def test_v2_null_score_and_threshold():
    cfg = PredictionConfig(n_best_size=3, version_2_with_negative=True)
    out = write_predictions([EXAMPLE], [_feature()], [RawResult(1000000000, START, END)], cfg)
    assert [e["text"] for e in out.nbest["q1"]] == ["Steve Smith", "Steve Smith's dog ran (fast", ""]
    assert out.nbest["q1"][2]["start_logit"] == 1.0 and out.nbest["q1"][2]["end_logit"] == 1.5
    assert out.null_odds["q1"] == pytest.approx(2.5 - 10.0)
    assert out.predictions["q1"] == "Steve Smith"
    strict = write_predictions([EXAMPLE], [_feature()], [RawResult(1000000000, START, END)],
                               PredictionConfig(n_best_size=3, version_2_with_negative=True,
                                                null_score_diff_threshold=-8.0))
    assert strict.predictions["q1"] == ""  # -7.5 > -8.0
    assert apply_threshold(out.nbest, out.null_odds, -8.0) == strict.predictions


def test_v2_min_null_over_features_and_dedup():
    # two windows over the same tokens (as if overlapping): null score from the smaller one,
    # duplicate texts from the second window are dropped
    f1, f2 = _feature(1000000000, 0, 0), _feature(1000000001, 0, 1)
    r1 = RawResult(1000000000, START, END)
    r2 = RawResult(1000000001, _logits({3: 4.5, 0: -2.0}), _logits({4: 4.5, 0: 0.5}))
    out = write_predictions([EXAMPLE], [f1, f2], [r2, r1],  # results out of order are fine
                            PredictionConfig(n_best_size=5, version_2_with_negative=True))
    texts = [e["text"] for e in out.nbest["q1"]]
    assert texts.count("Steve Smith") == 1 and texts[0] == "Steve Smith"
    null = [e for e in out.nbest["q1"] if e["text"] == ""]
    assert len(null) == 1 and (null[0]["start_logit"], null[0]["end_logit"]) == (-2.0, 0.5)
    assert out.null_odds["q1"] == pytest.approx(-1.5 - 10.0)


def test_v2_all_null_does_not_crash():
    cfg = PredictionConfig(n_best_size=2, version_2_with_negative=True, null_score_diff_threshold=0.25)
    out = write_predictions([EXAMPLE], [_feature()], [RawResult(1000000000, START, END)], cfg)
    assert [e["text"] for e in out.nbest["q1"]] == [""]
    assert out.predictions["q1"] == "" and out.null_odds["q1"] == 1.25 and out.all_null == 1


def test_example_without_features_and_missing_logits():
    empty = SquadExample("q0", "who", [])
    out = write_predictions([empty, EXAMPLE], [_feature(example_index=1)], [RawResult(1000000000, START, END)],
                            PredictionConfig(n_best_size=3, version_2_with_negative=True))
    assert out.predictions == {"q0": "", "q1": "Steve Smith"}
    with pytest.raises(InputError, match="no logits for feature 1000000000"):
        write_predictions([EXAMPLE], [_feature()], [], PredictionConfig())


def test_output_files_match_the_original_format(tmp_path):
    out = write_predictions([EXAMPLE], [_feature()], [RawResult(1000000000, START, END)],
                            PredictionConfig(n_best_size=3, version_2_with_negative=True))
    paths = write_prediction_files(tmp_path, out)
    assert sorted(p.name for p in paths.values()) == ["nbest_predictions.json", "null_odds.json", "predictions.json"]
    text = (tmp_path / "predictions.json").read_text(encoding="utf-8")
    assert text == json.dumps({"q1": "Steve Smith"}, indent=4) + "\n"
    assert json.loads((tmp_path / "nbest_predictions.json").read_text())["q1"][0]["text"] == "Steve Smith"


def test_raw_logits_round_trip_is_exact_float32(tmp_path):
    rng = random.Random(5)
    results = [RawResult(1000000000 + i, array("f", [rng.gauss(0, 3) for _ in range(7)]).tolist(),
                         array("f", [rng.gauss(0, 3) for _ in range(7)]).tolist()) for i in range(5)]
    path = tmp_path / "raw_logits.jsonl"
    assert write_raw_logits(path, results) == 5
    assert list(read_raw_logits(path)) == results
    partial = tmp_path / "partial.jsonl"
    with pytest.raises(ValueError):
        with RawLogitsWriter(partial) as writer:
            writer.write(results[0])
            raise ValueError("model failed")
    assert not partial.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["raw_logits.jsonl"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"unique_id": 1, "start_logits": [1.0]}\n', encoding="utf-8")
    with pytest.raises(InputError, match="bad.jsonl:1"):
        list(read_raw_logits(bad))


# ------------------------------------------------------------------ real text
def test_rerun_from_saved_logits_equals_live_run(uncased_tokenizer, shared_data, tmp_path):
    path = shared_data / "squad/subsets/allennlp-models_squad2.json"
    fcfg = FeaturizeConfig(64, 16, 16)
    pcfg = PredictionConfig(version_2_with_negative=True, null_score_diff_threshold=-0.5)
    examples = read_squad_examples(path, is_training=False)
    features = list(convert_examples_to_features(examples, uncased_tokenizer, 64, 16, 16))
    assert len(features) > len(examples)  # several windows per paragraph
    rng = random.Random(7)
    results = [RawResult(f.unique_id, array("f", [rng.gauss(0, 2) for _ in range(64)]).tolist(),
                         array("f", [rng.gauss(0, 2) for _ in range(64)]).tolist()) for f in features]
    live = write_predictions(examples, features, results, pcfg)
    write_raw_logits(tmp_path / "raw_logits.jsonl", results)
    again = predictions_from_logits(path, tmp_path / "raw_logits.jsonl", uncased_tokenizer, fcfg, pcfg)
    assert again.predictions == live.predictions
    assert again.nbest == live.nbest and again.null_odds == live.null_odds


def test_gold_peaked_logits_give_the_gold_spans_on_dev_articles(uncased_tokenizer, shared_data):
    """Logits peaked on each question's first gold answer, through the whole writer, give back
    exactly the text of that token span; the score is then ~100 (all misses are annotations
    that cut a word, e.g. "5" in "50", which no token span can express)."""
    from bert_cli.text import squad_metrics
    from bert_cli.text.squad import split_paragraph, answer_word_span
    from bert_cli.text.squad_predict import span_text

    data = json.loads((shared_data / "squad/dev-v1.1.json").read_text(encoding="utf-8"))["data"][:3]
    examples = read_squad_examples("dev-v1.1.json", is_training=False, data=data)
    gold_word_spans = {}
    for article in data:
        for para in article["paragraphs"]:
            words, offsets = split_paragraph(para["context"])
            for qa in para["qas"]:
                a = qa["answers"][0]
                gold_word_spans[qa["id"]] = (a["text"], answer_word_span(words, offsets, a["text"], a["answer_start"]))
    train_like = [SquadExample(e.qas_id, e.question_text, e.doc_tokens, gold_word_spans[e.qas_id][0],
                               *gold_word_spans[e.qas_id][1]) for e in examples]
    results, features, expected = {}, [], {}
    for f in convert_examples_to_features(train_like, uncased_tokenizer, 384, 128, 64, is_training=True):
        start, end = [0.0] * 384, [0.0] * 384
        if f.start_position:
            start[f.start_position] = end[f.end_position] = 10.0
            if f.token_is_max_context[f.start_position]:
                expected[examples[f.example_index].qas_id] = span_text(
                    examples[f.example_index], f, f.start_position, f.end_position, True)
        results[f.unique_id] = RawResult(f.unique_id, start, end)
        features.append(f)
    out = write_predictions(examples, features, results, PredictionConfig())
    assert len(out.predictions) == len(examples) > 500
    assert len(expected) > 0.99 * len(examples)
    assert {q: out.predictions[q] for q in expected} == expected
    score = squad_metrics.evaluate_v1(data, out.predictions)
    assert score["exact_match"] > 98.0 and score["f1"] > 98.0


def test_numpy_float32_logits_are_summed_as_python_floats():
    np = pytest.importorskip("numpy")
    start = np.array(START, dtype=np.float32) + np.float32(0.1)
    end = np.array(END, dtype=np.float32) + np.float32(0.2)
    cfg = PredictionConfig(n_best_size=3, version_2_with_negative=True)
    from_np = write_predictions([EXAMPLE], [_feature()], [RawResult(1000000000, start, end)], cfg)
    from_lists = write_predictions([EXAMPLE], [_feature()],
                                   [RawResult(1000000000, [float(x) for x in start], [float(x) for x in end])], cfg)
    assert from_np.nbest == from_lists.nbest and from_np.null_odds == from_lists.null_odds
    assert type(from_np.null_odds["q1"]) is float
    json.dumps(from_np.nbest)  # serializable
