"""``bert predict`` on a run folder: output formats, streaming order, batching, regression,
multi-label, and errors. The run folders here hold small random models written with the
engine; the probabilities are checked against an independent numpy forward pass."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bert_cli.engine.classifier import ClassifierModel, save_weights  # noqa: E402
from bert_cli.errors import NotFoundError, UsageError  # noqa: E402
from bert_cli.modelconfig import BertConfig  # noqa: E402
from bert_cli.ops import predict as pr  # noqa: E402
from bert_cli.text.classifier_features import convert_examples  # noqa: E402
from bert_cli.text.predict_input import read_predict_input  # noqa: E402
from bert_cli.text.task_base import InputExample  # noqa: E402
from bert_cli.text.tokenization import FullTokenizer  # noqa: E402

WORDS = "the cat dog sat on mat a big small red blue house tree runs great awful".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
CONFIG = BertConfig(
    vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
    max_position_embeddings=32, type_vocab_size=2, hidden_act="gelu",
)
LINES = ["the cat sat", "a big red house ||| the dog runs", "", "great tree", "awful mat ||| blue", "zebra"]


def make_run(path, kind="classification", labels=("neg", "pos", "mid"), seed=5):
    num = 1 if kind == "regression" else len(labels)
    model = ClassifierModel(CONFIG, num, kind=kind, seed=seed)
    # larger head weights so that probabilities are far from uniform
    model.bert.pooler.kernel.assign(model.bert.pooler.kernel * 40.0)
    model.head.output_weights.assign(model.head.output_weights * 60.0)
    save_weights(model, path / "model.ckpt-3", global_step=3)
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    (path / "bert_config.json").write_text(CONFIG.to_json(), encoding="utf-8")
    info = {
        "format": 1, "task": "tsv", "labels": [] if kind == "regression" else list(labels), "num_labels": num,
        "kind": kind, "is_regression": kind == "regression", "is_multilabel": kind == "multilabel",
        "max_seq_length": 12, "do_lower_case": True, "vocab_file": "vocab.txt", "bert_config_file": "bert_config.json",
    }
    (path / "bert_run.json").write_text(json.dumps(info), encoding="utf-8")
    return model


def numpy_logits(model: ClassifierModel, features) -> np.ndarray:
    """An independent forward pass in numpy (float64) from the model's variables."""
    v = {k: val.numpy().astype(np.float64) for k, val in model.tf1_variables().items()}
    ids, mask, seg = features.input_ids, features.input_mask, features.segment_ids
    S = ids.shape[1]

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * v[p + "/gamma"] + v[p + "/beta"]

    def dense(x, p):
        return x @ v[p + "/kernel"] + v[p + "/bias"]

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))

    x = v["bert/embeddings/word_embeddings"][ids] + v["bert/embeddings/token_type_embeddings"][seg]
    x = ln(x + v["bert/embeddings/position_embeddings"][:S], "bert/embeddings/LayerNorm")
    heads, d = CONFIG.num_attention_heads, CONFIG.head_size
    adder = (1.0 - mask[:, None, None, :]) * -10000.0
    for i in range(CONFIG.num_hidden_layers):
        p = f"bert/encoder/layer_{i}/"

        def split(t):
            return t.reshape(t.shape[0], S, heads, d).transpose(0, 2, 1, 3)

        q, k, val = (split(dense(x, p + f"attention/self/{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + adder
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ val).transpose(0, 2, 1, 3).reshape(x.shape)
        x = ln(dense(ctx, p + "attention/output/dense") + x, p + "attention/output/LayerNorm")
        h = dense(gelu(dense(x, p + "intermediate/dense")), p + "output/dense")
        x = ln(h + x, p + "output/LayerNorm")
    pooled = np.tanh(dense(x[:, 0], "bert/pooler/dense"))
    return pooled @ v["output_weights"].T + v["output_bias"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    model = make_run(path)
    return path, model


def lines_file(tmp_path, lines=LINES):
    f = tmp_path / "input.txt"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return f


def predict(path, inputs, **kwargs):
    buf = io.StringIO()
    result = pr.run(pr.PredictConfig(model=str(path), device="cpu", **kwargs), inputs, buf)
    return buf.getvalue(), result


def test_jsonl_matches_independent_forward(run_dir, tmp_path):
    path, model = run_dir
    text, result = predict(path, read_predict_input(lines_file(tmp_path)), batch_size=4)
    rows = [json.loads(line) for line in text.splitlines()]
    assert result["examples"] == len(rows) == len(LINES)  # blank line kept: output i <-> input i
    tokenizer = FullTokenizer(path / "vocab.txt")
    features = convert_examples(read_predict_input(lines_file(tmp_path)), tokenizer, 12, with_labels=False)
    logits = numpy_logits(model, features)
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    labels = ["neg", "pos", "mid"]
    for row, probs in zip(rows, expected):
        assert list(row) == ["label", "probabilities"]
        assert list(row["probabilities"]) == labels
        np.testing.assert_allclose([row["probabilities"][k] for k in labels], probs, atol=2e-5)
        assert row["label"] == labels[int(np.argmax(probs))]
    assert np.ptp(expected, axis=0).max() > 50 * 2e-5  # inputs differ far beyond the tolerance (order matters)


def test_tsv_format_and_batch_independence(run_dir, tmp_path):
    path, _ = run_dir
    f = lines_file(tmp_path)
    tsv, _ = predict(path, read_predict_input(f), output_format="tsv", batch_size=1)
    jsonl, _ = predict(path, read_predict_input(f), batch_size=64)
    tsv_rows = [[float(x) for x in line.split("\t")] for line in tsv.splitlines()]
    json_rows = [list(json.loads(line)["probabilities"].values()) for line in jsonl.splitlines()]
    assert len(tsv_rows) == len(json_rows) == len(LINES)
    for a, b in zip(tsv_rows, json_rows):
        assert len(a) == 3 and sum(a) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(a, b, atol=1e-6)
    for line in tsv.splitlines():
        assert all(field == str(np.float32(field)) for field in line.split("\t"))


def test_streams_results_batch_by_batch(run_dir):
    """The first batch is written before the input iterator is exhausted."""
    path, _ = run_dir
    buf = io.StringIO()
    seen_when_third_batch_read = []

    def inputs():
        for i in range(10):
            if i == 4:
                seen_when_third_batch_read.append(buf.getvalue().count("\n"))
            yield InputExample(str(i), f"the cat {'great' if i % 2 else 'awful'}")

    pr.run(pr.PredictConfig(model=str(path), device="cpu", batch_size=2), inputs(), buf)
    assert seen_when_third_batch_read == [4]
    assert buf.getvalue().count("\n") == 10


def test_regression_and_multilabel(tmp_path):
    reg = tmp_path / "reg"
    reg.mkdir()
    model = make_run(reg, kind="regression")
    text, _ = predict(reg, read_predict_input(lines_file(tmp_path, ["the cat", "a dog ||| red"])))
    rows = [json.loads(line) for line in text.splitlines()]
    tokenizer = FullTokenizer(reg / "vocab.txt")
    features = convert_examples(
        [InputExample("0", "the cat"), InputExample("1", "a dog", "red")], tokenizer, 12, kind="regression", with_labels=False
    )
    expected = numpy_logits(model, features)[:, 0]
    assert [list(r) for r in rows] == [["score"], ["score"]]
    np.testing.assert_allclose([r["score"] for r in rows], expected, rtol=1e-4, atol=1e-4)

    ml = tmp_path / "ml"
    ml.mkdir()
    names = ("x", "y", "z")
    ml_model = make_run(ml, kind="multilabel", labels=names)
    ml_lines = LINES[:2] + LINES[3:]  # single sentences and pairs
    text, _ = predict(ml, read_predict_input(lines_file(tmp_path, ml_lines)))
    rows = [json.loads(line) for line in text.splitlines()]
    features = convert_examples(read_predict_input(lines_file(tmp_path, ml_lines)), FullTokenizer(ml / "vocab.txt"), 12,
                                kind="multilabel", with_labels=False)
    logits = numpy_logits(ml_model, features)
    expected = 1.0 / (1.0 + np.exp(-logits))  # one sigmoid per label
    assert len(rows) == len(ml_lines)
    for row, probs in zip(rows, expected):
        assert list(row) == ["labels", "probabilities"] and list(row["probabilities"]) == list(names)
        np.testing.assert_allclose([row["probabilities"][k] for k in names], probs, atol=2e-5)
        assert row["labels"] == [k for k, p in zip(names, probs) if p >= 0.5]
    softmax = np.exp(logits - logits.max(-1, keepdims=True))
    softmax /= softmax.sum(-1, keepdims=True)
    assert np.abs(softmax - expected).max() > 50 * 2e-5  # a softmax would not pass
    assert np.ptp(expected, axis=0).max() > 50 * 2e-5  # inputs differ far beyond the tolerance (order matters)


def test_errors(run_dir, tmp_path):
    path, _ = run_dir
    with pytest.raises(NotFoundError, match="bert_run.json"):
        predict(tmp_path, [InputExample("0", "x")])
    with pytest.raises(UsageError, match="format"):
        predict(path, [InputExample("0", "x")], output_format="xml")
    from bert_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="max_position_embeddings"):
        predict(path, [InputExample("0", "x")], max_seq_length=64)
