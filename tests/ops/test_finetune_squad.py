"""``bert finetune squad`` end to end on a tiny model (random init, the packaged uncased vocab) and
the real SQuAD excerpts in shared/data/squad/subsets: the training labels point at the answers,
the model overfits the 5 v1.1 questions (official EM/F1), an interrupted run resumes and a
finished one does no extra step, v2.0 writes null_odds.json that ``bert squad-threshold --apply``
uses, predict-only reloads the fine-tuned checkpoint, and bad input fails before training."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import SQUAD_TINY_CONFIG, reference_squad_v2

tf = pytest.importorskip("tensorflow")

from bert_cli.errors import ConfigError, InputError, NotFoundError, UsageError  # noqa: E402
from bert_cli.ops import finetune_squad as fs  # noqa: E402
from bert_cli.ops import squad_threshold  # noqa: E402
from bert_cli.text import squad_metrics  # noqa: E402
from bert_cli.text.squad import convert_examples_to_features, read_squad_examples  # noqa: E402
from bert_cli.text.squad_metrics import normalize_answer  # noqa: E402
from bert_cli.text.squad_logits import read_raw_logits  # noqa: E402
from bert_cli.text.vocab import packaged_vocab_path  # noqa: E402

VOCAB = packaged_vocab_path()
CONFIG = SQUAD_TINY_CONFIG
SEQ, STRIDE, QUERY = 128, 64, 32
BATCH, EPOCHS, LR = 4, 80.0, 2e-3
STEPS = int(5 / BATCH * EPOCHS)  # the original's count, over EXAMPLES (5 questions): 100
NBEST_KEYS = ["text", "probability", "start_logit", "end_logit"]


def squad_file(shared_data: Path, name: str) -> Path:
    path = shared_data / "squad" / "subsets" / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def config_file(root: Path) -> Path:
    path = root / "bert_config.json"
    path.write_text(json.dumps(CONFIG), encoding="utf-8")
    return path


def make_config(root: Path, out: Path, data: Path, **changes) -> fs.SquadFinetuneConfig:
    values = dict(
        output_dir=out, train_file=data, predict_file=data, vocab_file=VOCAB, bert_config_file=config_file(root),
        do_train=True, do_predict=True, first_answer_only=True, max_seq_length=SEQ, doc_stride=STRIDE,
        max_query_length=QUERY, train_batch_size=BATCH, predict_batch_size=3, num_train_epochs=EPOCHS,
        learning_rate=LR, seed=1, device="cpu", save_checkpoints_steps=40,
    )
    values.update(changes)
    return fs.SquadFinetuneConfig(**values)


class Events(list):
    def __call__(self, event: dict) -> None:
        self.append(event)

    def of(self, phase: str) -> list[dict]:
        return [e for e in self if e.get("phase") == phase]


def answers_of(data: Path) -> dict[str, list[str]]:
    dataset, _ = squad_metrics.load_dataset(data)
    return {qa["id"]: [a["text"] for a in qa["answers"]] for qa in squad_metrics.iter_questions(dataset)}


# ============================================================================ v1.1: train, resume, predict


@pytest.fixture(scope="module")
def v1_run(tmp_path_factory, shared_data):
    """Train 40 steps (interrupted), rerun the full command (resumes to 100 and predicts), rerun again."""
    data = squad_file(shared_data, "allennlp-models_squad.json")
    root = tmp_path_factory.mktemp("squad_v1")
    out = root / "run"
    first = Events()
    partial = fs.run(make_config(root, out, data, do_predict=False, max_steps=40), progress=first)
    second = Events()
    full = fs.run(make_config(root, out, data), progress=second)
    ckpt = out / f"model.ckpt-{STEPS}.index"
    stamp = ckpt.stat().st_mtime_ns
    third = Events()
    again = fs.run(make_config(root, out, data), progress=third)
    return dict(data=data, root=root, out=out, partial=partial, full=full, again=again, events=(first, second, third),
                ckpt_stamp=(stamp, ckpt.stat().st_mtime_ns))


def test_step_counts_follow_examples_not_features(v1_run):
    full = v1_run["full"]
    assert full["train_examples"] == 5
    assert full["train_features"] > 5  # some contexts need two windows at 128 tokens
    assert full["num_train_steps"] == STEPS == 100
    assert full["num_warmup_steps"] == int(STEPS * 0.1)
    assert full["global_step"] == STEPS


def test_interrupted_run_resumes_and_finished_run_does_no_step(v1_run):
    first, second, third = v1_run["events"]
    assert [e["step"] for e in first.of("train")] == list(range(1, 41))
    assert v1_run["partial"]["global_step"] == 40
    assert v1_run["full"]["resumed_from_step"] == 40
    assert [e["step"] for e in second.of("train")] == list(range(41, STEPS + 1))
    assert third.of("train") == []
    assert v1_run["again"]["resumed_from_step"] == STEPS
    assert v1_run["again"]["global_step"] == STEPS
    assert v1_run["ckpt_stamp"][0] == v1_run["ckpt_stamp"][1]  # nothing re-saved
    assert not (v1_run["out"] / f"model.ckpt-{STEPS + 1}.index").exists()
    # the same weights predict the same answers
    assert v1_run["again"]["metrics"] == v1_run["full"]["metrics"]


def test_train_record_labels_point_at_the_answers(v1_run, uncased_tokenizer):
    """train.tf_record holds the pre-shuffled examples' features; the labelled span is the answer."""
    data, out = v1_run["data"], v1_run["out"]
    tokenizer = uncased_tokenizer
    inv = {i: t for t, i in tokenizer.vocab.items()}
    examples = read_squad_examples(data, is_training=True, first_answer_only=True)
    random.Random(12345).shuffle(examples)
    expected = list(convert_examples_to_features(examples, tokenizer, SEQ, STRIDE, QUERY, is_training=True))
    records = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(out / "train.tf_record"))]
    assert len(records) == len(expected) == v1_run["full"]["train_features"]
    inside = 0
    for rec, feat in zip(records, expected):
        f = rec.features.feature
        ids = list(f["input_ids"].int64_list.value)
        assert ids == feat.input_ids
        start, end = f["start_positions"].int64_list.value[0], f["end_positions"].int64_list.value[0]
        assert (start, end) == (feat.start_position, feat.end_position)
        if start == 0:
            continue  # the answer is outside this window: [CLS]
        inside += 1
        text = " ".join(inv[i] for i in ids[start : end + 1]).replace(" ##", "")
        answer = examples[feat.example_index].orig_answer_text
        assert normalize_answer(text) == normalize_answer(answer)
    assert inside >= 5  # every question has its answer in at least one window


def test_overfits_the_training_questions(v1_run):
    metrics = v1_run["full"]["metrics"]
    assert set(metrics) == {"exact_match", "f1"}
    assert metrics["exact_match"] >= 60.0, metrics
    predictions = json.loads((v1_run["out"] / "predictions.json").read_text(encoding="utf-8"))
    answers = answers_of(v1_run["data"])
    assert list(predictions) == list(answers)
    hits = sum(normalize_answer(predictions[q]) in {normalize_answer(a) for a in answers[q]} for q in answers)
    assert hits / len(answers) * 100.0 == pytest.approx(metrics["exact_match"])
    # the returned metrics are the official evaluation of the written file
    assert squad_metrics.evaluate_files(v1_run["data"], v1_run["out"] / "predictions.json") == metrics


def test_prediction_files_have_the_original_structure(v1_run):
    out = v1_run["out"]
    nbest = json.loads((out / "nbest_predictions.json").read_text(encoding="utf-8"))
    predictions = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    assert list(nbest) == list(predictions)
    for qid, entries in nbest.items():
        assert 1 <= len(entries) <= 20
        for entry in entries:
            assert list(entry) == NBEST_KEYS
        assert entries[0]["text"] == predictions[qid]
        assert sum(e["probability"] for e in entries) == pytest.approx(1.0)
        scores = [e["start_logit"] + e["end_logit"] for e in entries]
        assert scores == sorted(scores, reverse=True)
    assert not (out / "null_odds.json").exists()  # v1.1
    raw = list(read_raw_logits(out / "raw_logits.jsonl"))
    assert [r.unique_id for r in raw] == list(range(1000000000, 1000000000 + len(raw)))
    assert all(len(r.start_logits) == len(r.end_logits) == SEQ for r in raw)
    info = json.loads((out / "squad_run.json").read_text(encoding="utf-8"))
    assert info["max_seq_length"] == SEQ and info["doc_stride"] == STRIDE and info["max_query_length"] == QUERY
    assert info["do_lower_case"] is True and info["version_2_with_negative"] is False
    assert Path(info["vocab_file"]).read_bytes() == VOCAB.read_bytes()
    # bert squad-threshold scores the run folder the same (v1.1: no threshold)
    scored = squad_threshold.run(squad_threshold.SquadThresholdConfig(predict_file=v1_run["data"], output_dir=out))
    assert scored["metrics"] == v1_run["full"]["metrics"]


def test_predict_only_reloads_the_fine_tuned_checkpoint(v1_run, tmp_path):
    out = v1_run["out"]
    before = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    summary = fs.run(make_config(v1_run["root"], out, v1_run["data"], do_train=False, train_file=None,
                                 predict_batch_size=8))
    assert summary["checkpoint"].endswith(f"model.ckpt-{STEPS}")
    assert summary["global_step"] == STEPS
    assert json.loads((out / "predictions.json").read_text(encoding="utf-8")) == before
    assert summary["metrics"] == v1_run["full"]["metrics"]


def test_predictor_streams_in_order_whatever_the_batch(tmp_path, shared_data, uncased_tokenizer):
    """raw_results consumes the feature generator lazily and gives the same logits for any batch size."""
    from bert_cli.engine.device import select_runtime
    from bert_cli.engine.squad_model import SquadPredictor, build_model
    from bert_cli.modelconfig import BertConfig

    data = squad_file(shared_data, "allennlp-models_squad.json")
    tokenizer = uncased_tokenizer
    examples = read_squad_examples(data, is_training=False)
    runtime = select_runtime("cpu", "fp32", False, 3)
    model = build_model(runtime, BertConfig.from_json_file(config_file(tmp_path)), seed=3)
    predictor = SquadPredictor(model)
    pulled = []

    def features():
        for f in convert_examples_to_features(examples, tokenizer, SEQ, STRIDE, QUERY):
            pulled.append(f.unique_id)
            yield f

    stream = predictor.raw_results(features(), 2)
    first = next(stream)
    assert len(pulled) == 2  # one batch, not the whole set
    rest = list(stream)
    one = list(predictor.raw_results(features(), 1))
    by_batch = [first, *rest]
    assert [r.unique_id for r in by_batch] == [r.unique_id for r in one]
    for a, b in zip(by_batch, one):
        np.testing.assert_allclose(a.start_logits, b.start_logits, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a.end_logits, b.end_logits, rtol=1e-4, atol=1e-5)


# ============================================================================ v2.0


def test_v2_writes_null_odds_and_squad_threshold_applies(tmp_path, squad2_subset):
    data = squad2_subset
    events = Events()
    out = tmp_path / "run"
    summary = fs.run(make_config(tmp_path, out, data, version_2_with_negative=True, max_steps=30), progress=events)
    assert summary["global_step"] == 30
    answers = answers_of(data)
    null_odds = json.loads((out / "null_odds.json").read_text(encoding="utf-8"))
    assert list(null_odds) == list(answers)
    assert all(isinstance(v, float) for v in null_odds.values())
    # 6 questions incl. 1 impossible (its id made unique: the shipped file reuses an answerable one's id)
    assert summary["train_examples"] == 6
    assert summary["predict"]["questions"] == 6
    records = [tf.train.Example.FromString(r.numpy()).features.feature
               for r in tf.data.TFRecordDataset(str(out / "train.tf_record"))]
    impossible = [f for f in records if f["is_impossible"].int64_list.value[0] == 1]
    assert impossible and all(f["start_positions"].int64_list.value[0] == 0 == f["end_positions"].int64_list.value[0]
                              for f in impossible)  # unanswerable: the [CLS] position
    metrics = summary["metrics"]
    predictions = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    # the original's rule at --null-score-diff-threshold 0: no answer iff its null odds are above 0
    assert all((predictions[q] == "") == (null_odds[q] > 0.0) for q in answers)
    # the returned metrics are the official v2.0 evaluation of the written files, restated apart
    dataset, _ = squad_metrics.load_dataset(data)
    expected = reference_squad_v2(list(squad_metrics.iter_questions(dataset)), predictions, null_odds)
    assert list(metrics) == list(expected)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-9), key
    assert (metrics["total"], metrics["HasAns_total"], metrics["NoAns_total"]) == (6, 5, 1) and len(answers) == 6
    assert squad_metrics.evaluate_files(data, out / "predictions.json", out / "null_odds.json") == metrics
    nbest = json.loads((out / "nbest_predictions.json").read_text(encoding="utf-8"))
    assert all(list(e) == NBEST_KEYS for entries in nbest.values() for e in entries)
    assert all(any(e["text"] == "" for e in entries) for entries in nbest.values())  # v2 adds the null answer

    result = squad_threshold.run(squad_threshold.SquadThresholdConfig(predict_file=data, output_dir=out, apply=True))
    assert result["applied"] is True
    assert result["best_f1_thresh"] == pytest.approx(metrics["best_f1_thresh"])
    assert result["new_metrics"]["f1"] == pytest.approx(metrics["best_f1"])
    info = json.loads((out / "squad_run.json").read_text(encoding="utf-8"))
    assert info["null_score_diff_threshold"] == pytest.approx(metrics["best_f1_thresh"])


# ============================================================================ errors before training


def _assert_nothing_ran(out: Path) -> None:
    assert not out.exists() or not any(out.glob("model.ckpt-*"))


@pytest.mark.parametrize(
    "changes, error, words",
    [
        (dict(max_seq_length=35, max_query_length=32), UsageError, "max-query-length"),
        (dict(max_seq_length=256), ConfigError, "max_position_embeddings=128"),
        (dict(do_train=False, do_predict=False), UsageError, "nothing to do"),
        (dict(train_file=None), UsageError, "--train-file"),
    ],
)
def test_bad_options_fail_before_training(tmp_path, shared_data, changes, error, words):
    data = squad_file(shared_data, "allennlp-models_squad.json")
    out = tmp_path / "run"
    with pytest.raises(error, match=words):
        fs.run(make_config(tmp_path, out, data, **changes))
    _assert_nothing_ran(out)


def test_bad_files_fail_before_training(tmp_path, shared_data):
    data = squad_file(shared_data, "allennlp-models_squad.json")
    out = tmp_path / "run"
    with pytest.raises(NotFoundError):
        fs.run(make_config(tmp_path, out, tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [\n  {"title": oops}\n]}', encoding="utf-8")
    with pytest.raises(InputError) as info:
        fs.run(make_config(tmp_path, out, data, predict_file=bad))  # the predict file is read before training
    assert "bad.json" in str(info.value)
    with pytest.raises(InputError, match="exactly 1 answer"):  # dev-style file without first_answer_only
        fs.run(make_config(tmp_path, out, data, first_answer_only=False))
    _assert_nothing_ran(out)


def test_init_from_an_encoder_checkpoint_adds_a_new_span_head(tmp_path, shared_data):
    """A pretraining-style checkpoint (encoder only) initialises the encoder; cls/squad/* starts fresh."""
    from bert_cli.engine.checkpoint import read_checkpoint, save_model, tf1_names
    from bert_cli.engine.model import BertModel
    from bert_cli.modelconfig import BertConfig

    data = squad_file(shared_data, "allennlp-models_squad.json")
    encoder = BertModel(BertConfig.from_json_file(config_file(tmp_path)), seed=7)
    prefix = save_model([encoder], tmp_path / "init" / "bert_model.ckpt")
    out = tmp_path / "run"
    summary = fs.run(make_config(tmp_path, out, data, init_checkpoint=str(prefix), do_predict=False, max_steps=1,
                                 learning_rate=1e-9, warmup_proportion=0.0))
    assert summary["init"]["missing"] == ["cls/squad/output_bias", "cls/squad/output_weights"]
    assert summary["init"]["loaded"] == len(tf1_names(encoder))
    name = "bert/embeddings/word_embeddings"
    after = read_checkpoint(str(out / "model.ckpt-1"), [name])[name]
    np.testing.assert_allclose(after, read_checkpoint(str(prefix), [name])[name], atol=1e-6)  # lr ~ 0
