"""``bert extract`` (ops.extract) and ``engine.loading.load_encoder``.

References: transformers (PyTorch) hidden states for the same weights (a tiny random model written
in the TF1 layout and read by ``load_tf_weights_in_bert``; the real all-MiniLM-L6-v2), the
``tokenizers`` package for the token layout, and the original's JSON writer
(``json.dumps(OrderedDict)``) for the bytes of every line.
"""

from __future__ import annotations

import collections
import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bert_cli.engine import checkpoint as ck  # noqa: E402
from bert_cli.engine.heads import PretrainingHeads  # noqa: E402
from bert_cli.engine.loading import load_encoder, pooler_missing  # noqa: E402
from bert_cli.modelconfig import read_model_config  # noqa: E402
from bert_cli.engine.model import BertModel  # noqa: E402
from bert_cli.errors import CheckpointError, ConfigError, NotFoundError, UsageError  # noqa: E402
from bert_cli.modelconfig import BertConfig  # noqa: E402
from bert_cli.ops import extract as ex  # noqa: E402
from bert_cli.ops import extract_sinks as sinks  # noqa: E402

SMALL_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "dog", "##s", "a",
               "中", ".", "!", "runs", "big"]
LINES = [
    b"The cat sat on the mat.\n",
    b"the dogs ||| a cat runs !\n",
    b"\n",  # a blank line is an example too: [CLS] [SEP]
    "\u4e2d big cat\n".encode("utf-8"),
    b"dog\n",
]
EXPECTED_TOKENS = [
    ["[CLS]", "the", "cat", "sat", "on", "the", "mat", ".", "[SEP]"],
    ["[CLS]", "the", "dog", "##s", "[SEP]", "a", "cat", "runs", "!", "[SEP]"],
    ["[CLS]", "[SEP]"],
    ["[CLS]", "\u4e2d", "big", "cat", "[SEP]"],
    ["[CLS]", "dog", "[SEP]"],
]


def rounded_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


def run_jsonl(config: ex.ExtractConfig, lines) -> list[str]:
    out = io.StringIO()
    summary = ex.run(config, lines, out)
    text = out.getvalue()
    assert summary["lines"] == text.count("\n")
    return text.splitlines(keepends=True)


# ----------------------------------------------------------------------------- a tiny model folder


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A model folder (vocab.txt, bert_config.json, TF1 checkpoint) with a tiny random model."""
    folder = tmp_path_factory.mktemp("tiny-extract")
    (folder / "vocab.txt").write_text("\n".join(SMALL_VOCAB) + "\n", encoding="utf-8")
    config = BertConfig(vocab_size=len(SMALL_VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, type_vocab_size=2, initializer_range=0.3)
    (folder / "bert_config.json").write_text(config.to_json(), encoding="utf-8")
    ck.save_model(BertModel(config, seed=5), folder / "bert_model.ckpt")
    return folder


def tiny_config(tiny_dir: Path, **kwargs) -> ex.ExtractConfig:
    kwargs.setdefault("xla", False)
    kwargs.setdefault("batch_size", 2)
    kwargs.setdefault("max_seq_length", 16)
    return ex.ExtractConfig(model=str(tiny_dir), **kwargs)


@pytest.fixture(scope="module")
def tiny_jsonl(tiny_dir) -> list[str]:
    return run_jsonl(tiny_config(tiny_dir, layers="-1,0"), LINES)


# ----------------------------------------------------------------------------- JSON layout


def original_dumps(index, tokens, values, layers) -> str:
    """The original extract_features.py writer: OrderedDicts and json.dumps defaults."""
    output_json = collections.OrderedDict()
    output_json["linex_index"] = index
    all_features = []
    for i, token in enumerate(tokens):
        all_layers = []
        for j, layer_index in enumerate(layers):
            layer = collections.OrderedDict()
            layer["index"] = layer_index
            layer["values"] = [round(float(x), 6) for x in values[j][i : i + 1].flat]
            all_layers.append(layer)
        features = collections.OrderedDict()
        features["token"] = token
        features["layers"] = all_layers
        all_features.append(features)
    output_json["features"] = all_features
    return json.dumps(output_json) + "\n"


def test_json_line_is_byte_for_byte_the_original():
    values = np.array([[[0.1234567, -2.0, 1.5e-5], [1e-7, -4e-7, 12.3456789]]], np.float32)  # [1 layer, 2 tok, 3]
    line = sinks.format_features_line(7, ["[CLS]", "\u00e9t\u00e9"], values, [-1])
    expected = (
        '{"linex_index": 7, "features": ['
        '{"token": "[CLS]", "layers": [{"index": -1, "values": [0.123457, -2.0, 1.5e-05]}]}, '
        '{"token": "\\u00e9t\\u00e9", "layers": [{"index": -1, "values": [0.0, -0.0, 12.345679]}]}]}\n'
    )
    assert line == expected
    assert line == original_dumps(7, ["[CLS]", "\u00e9t\u00e9"], values, [-1])
    embedding = sinks.format_embedding_line(3, np.array([0.5, -1e-9], np.float32))
    assert embedding == '{"linex_index": 3, "embedding": [0.5, -0.0]}\n'


def test_vectorized_rounding_is_pythons_round_bit_for_bit():
    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.normal(size=100_000), rng.normal(size=20_000) * 1e-5, rng.normal(size=20_000) * 1e4,
        rng.integers(-2**20, 2**20, 50_000) / 2.0 ** rng.integers(0, 30, 50_000),  # thousands of exact ties
        [0.0078125, -0.0078125, 0.5078125, 5e-7, -5e-7, 2.5e-6, -0.0, 3.4e38, 1e-45, np.inf, -np.inf],
    ]).astype(np.float32)
    ties = sum((x * 1e6) % 1 == 0.5 for x in values.tolist())
    assert ties > 1000
    ours = sinks.round6(values).tolist()
    assert [repr(x) for x in ours] == [repr(round(x, 6)) for x in values.tolist()]


def test_run_keeps_input_order_layout_and_the_original_bytes(tiny_jsonl):
    assert len(tiny_jsonl) == len(LINES)
    for i, line in enumerate(tiny_jsonl):
        data = json.loads(line, object_pairs_hook=collections.OrderedDict)
        assert list(data) == ["linex_index", "features"] and data["linex_index"] == i
        assert [f["token"] for f in data["features"]] == EXPECTED_TOKENS[i]
        for feature in data["features"]:
            assert list(feature) == ["token", "layers"]
            assert [(list(layer), layer["index"]) for layer in feature["layers"]] == [
                (["index", "values"], -1), (["index", "values"], 0)]
            assert all(len(layer["values"]) == 16 for layer in feature["layers"])
        tokens = [f["token"] for f in data["features"]]
        values = np.array([[f["layers"][j]["values"] for f in data["features"]] for j in range(2)])
        assert line == original_dumps(i, tokens, values, [-1, 0])  # rounding is idempotent


def test_values_equal_a_direct_unpadded_forward(tiny_dir, tiny_jsonl):
    """Batching, padding rows, the last short batch and segment ids change nothing."""
    config, model, _ = load_encoder(config_file=tiny_dir / "bert_config.json", init_checkpoint=tiny_dir)
    vocab = {t: i for i, t in enumerate(SMALL_VOCAB)}
    for i, tokens in enumerate(EXPECTED_TOKENS):
        ids = np.array([[vocab[t] for t in tokens]])
        first_sep = tokens.index("[SEP]")
        seg = np.array([[0] * (first_sep + 1) + [1] * (len(tokens) - first_sep - 1)])
        out = model(ids, np.ones_like(ids), seg)
        data = json.loads(tiny_jsonl[i])
        for j, layer in enumerate((-1, 0)):
            ours = np.array([f["layers"][j]["values"] for f in data["features"]])
            assert rounded_diff(ours, out.all_encoder_layers[layer][0]) <= 2e-6


def test_xla_gives_the_same_values(tiny_dir, tiny_jsonl):
    lines = run_jsonl(tiny_config(tiny_dir, layers="-1,0", xla=True, batch_size=8), LINES)
    for a, b in zip(lines, tiny_jsonl):
        va = [layer["values"] for f in json.loads(a)["features"] for layer in f["layers"]]
        vb = [layer["values"] for f in json.loads(b)["features"] for layer in f["layers"]]
        assert rounded_diff(va, vb) <= 2e-6


def test_npz_round_trip_equals_jsonl(tiny_dir, tiny_jsonl, tmp_path):
    path = tmp_path / "sub" / "features.npz"
    summary = ex.run(tiny_config(tiny_dir, layers="-1,0", output_format="npz", output=path), LINES)
    assert summary["lines"] == 5 and summary["tokens"] == sum(map(len, EXPECTED_TOKENS))
    assert not [p for p in path.parent.iterdir() if p.name != "features.npz"]  # no temp files left
    z = np.load(path)  # allow_pickle=False: plain arrays only
    assert sorted(z.files) == ["layers", "offsets", "tokens", "values"]
    assert z["layers"].tolist() == [-1, 0]
    assert z["offsets"].tolist() == list(np.cumsum([0] + [len(t) for t in EXPECTED_TOKENS]))
    assert z["values"].dtype == np.float32 and z["values"].shape == (summary["tokens"], 2, 16)
    for i, line in enumerate(tiny_jsonl):
        a, b = z["offsets"][i], z["offsets"][i + 1]
        assert z["tokens"][a:b].tolist() == EXPECTED_TOKENS[i]
        data = json.loads(line)
        for j in range(2):
            jsonl_values = np.array([f["layers"][j]["values"] for f in data["features"]])
            assert rounded_diff(z["values"][a:b, j], jsonl_values) <= 5.01e-7


def test_pooled_vectors_mean_and_cls(tiny_dir, tmp_path):
    tokens_npz = tmp_path / "t.npz"
    ex.run(tiny_config(tiny_dir, layers="-1,-2", output_format="npz", output=tokens_npz), LINES)
    z = np.load(tokens_npz)
    offsets, values = z["offsets"], z["values"]
    expected = {
        "mean": np.stack([values[a:b].mean(axis=0).reshape(-1) for a, b in zip(offsets[:-1], offsets[1:])]),
        "cls": np.stack([values[a].reshape(-1) for a in offsets[:-1]]),
    }
    for pooling in ("mean", "cls"):
        path = tmp_path / f"{pooling}.npz"
        ex.run(tiny_config(tiny_dir, layers="-1,-2", output_format="npz", output=path, pooling=pooling), LINES)
        p = np.load(path)
        assert p["embeddings"].shape == (5, 32) and str(p["pooling"]) == pooling and p["layers"].tolist() == [-1, -2]
        assert rounded_diff(p["embeddings"], expected[pooling]) <= 1e-6
        lines = run_jsonl(tiny_config(tiny_dir, layers="-1,-2", pooling=pooling), LINES)
        for i, line in enumerate(lines):
            data = json.loads(line, object_pairs_hook=collections.OrderedDict)
            assert list(data) == ["linex_index", "embedding"] and data["linex_index"] == i
            assert rounded_diff(data["embedding"], p["embeddings"][i]) <= 5.01e-7
    # with pooling, --layers defaults to the last layer alone
    lines = run_jsonl(tiny_config(tiny_dir, pooling="mean"), LINES[:1])
    assert rounded_diff(json.loads(lines[0])["embedding"], expected["mean"][0][:16]) <= 1e-6


def test_jsonl_to_an_output_file(tiny_dir, tiny_jsonl, tmp_path):
    path = tmp_path / "out.jsonl"
    summary = ex.run(tiny_config(tiny_dir, layers="-1,0", output=path), LINES)
    assert summary["output"] == str(path)
    assert path.read_text(encoding="utf-8") == "".join(tiny_jsonl)


def test_input_files_and_progress(tiny_dir, tiny_jsonl, tmp_path):
    (tmp_path / "a.txt").write_bytes(b"".join(LINES[:2]))
    (tmp_path / "b.txt").write_bytes(b"".join(LINES[2:]))
    seen = []
    out = io.StringIO()
    ex.run(tiny_config(tiny_dir, layers="-1,0"), ex.read_input_lines([tmp_path / "a.txt", tmp_path / "b.txt"]), out,
           progress=seen.append)
    assert out.getvalue() == "".join(tiny_jsonl)  # line numbers run on across files
    assert [p["lines"] for p in seen] == [2, 4, 5] and seen[-1]["tokens"] == sum(map(len, EXPECTED_TOKENS))
    with pytest.raises(NotFoundError):
        ex.read_input_lines([tmp_path / "a.txt", tmp_path / "missing.txt"])


def test_parse_line_as_the_original():
    assert ex.parse_line(b"  a b ||| c d \n") == ("a b", "c d")
    assert ex.parse_line("a|||b") == ("a|||b", None)
    assert ex.parse_line("a ||| b ||| c") == ("a ||| b", "c")  # greedy first group
    assert ex.parse_line(b"caf\xc3\xa9 \xff!") == ("caf\u00e9 !", None)  # invalid UTF-8 bytes dropped
    assert ex.parse_line("\n") == ("", None)
    assert ex.parse_layers("-1, -2") == (-1, -2) and ex.parse_layers(None) == (-1, -2, -3, -4)
    assert ex.parse_layers(None, "mean") == (-1,)


def test_errors_are_typed(tiny_dir, tmp_path):
    empty = io.StringIO()
    assert ex.run(tiny_config(tiny_dir, layers="-1"), [], empty)["lines"] == 0  # no input: no output, no error
    assert empty.getvalue() == ""
    with pytest.raises(UsageError, match="layer index -3 is out of range"):
        ex.run(tiny_config(tiny_dir), LINES, io.StringIO())  # default -1..-4 on a 2-layer model
    with pytest.raises(UsageError, match="layer index 2"):
        ex.run(tiny_config(tiny_dir, layers="2"), LINES, io.StringIO())
    with pytest.raises(UsageError, match="comma-separated"):
        ex.run(tiny_config(tiny_dir, layers="-1,x"), LINES, io.StringIO())
    with pytest.raises(ConfigError, match="max_position_embeddings=32"):
        ex.run(tiny_config(tiny_dir, layers="-1", max_seq_length=33), LINES, io.StringIO())
    with pytest.raises(UsageError, match="--output"):
        ex.run(tiny_config(tiny_dir, layers="-1", output_format="npz"), LINES, io.StringIO())
    with pytest.raises(UsageError, match="pooling"):
        ex.run(tiny_config(tiny_dir, pooling="max"), LINES, io.StringIO())
    with pytest.raises(UsageError, match="--init-checkpoint"):
        ex.run(ex.ExtractConfig(vocab_file=tiny_dir / "vocab.txt", bert_config_file=tiny_dir / "bert_config.json"),
               LINES, io.StringIO())
    big_vocab = tmp_path / "vocab.txt"
    big_vocab.write_text("\n".join(SMALL_VOCAB + ["extra"]) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="vocab_size is 18"):
        ex.run(tiny_config(tiny_dir, layers="-1", vocab_file=big_vocab), LINES, io.StringIO())


# ----------------------------------------------------------------------------- load_encoder


def test_load_encoder_reads_the_original_run_pretraining_output(shared_data):
    folder = shared_data / "checkpoints" / "tf1-tiny-random"
    config, model, report = load_encoder(config_file=folder / "bert_config.json", init_checkpoint=folder)
    assert config.gelu_form == "tanh" and config.hidden_size == 4
    assert report.missing == [] and len(report.loaded) == len(ck.tf1_names(model))
    assert report.unexpected and all(n.startswith("cls/") for n in report.unexpected)
    assert report.optimizer and "global_step" in report.optimizer
    stored = ck.read_checkpoint(folder, ["bert/encoder/layer_1/output/dense/kernel"])
    np.testing.assert_array_equal(model.layers[1].output_dense.kernel.numpy(),
                                  stored["bert/encoder/layer_1/output/dense/kernel"])


def test_config_kind_is_detected_by_keys(tmp_path):
    data = {"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 16, "hidden_act": "gelu"}
    (tmp_path / "google.json").write_text(json.dumps(data))
    (tmp_path / "hf.json").write_text(json.dumps({**data, "model_type": "bert"}))
    assert read_model_config(tmp_path / "google.json").gelu_form == "tanh"
    assert read_model_config(tmp_path / "hf.json").gelu_form == "erf"
    with pytest.raises(NotFoundError):
        read_model_config(tmp_path / "none.json")


def test_load_encoder_missing_weights(tmp_path):
    config = BertConfig(vocab_size=12, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, type_vocab_size=2)
    (tmp_path / "bert_config.json").write_text(config.to_json())
    tensors = ck.model_tensors(BertModel(config, seed=1))
    no_layer = {k: v for k, v in tensors.items() if "layer_0/output/dense/kernel" not in k}
    ck.write_checkpoint(tmp_path / "a" / "model.ckpt", no_layer)
    with pytest.raises(CheckpointError, match="not in the checkpoint"):
        load_encoder(config_file=tmp_path / "bert_config.json", init_checkpoint=tmp_path / "a")
    no_pooler = {k: v for k, v in tensors.items() if not k.startswith("bert/pooler/")}
    ck.write_checkpoint(tmp_path / "b" / "model.ckpt", no_pooler)
    _, model, report = load_encoder(config_file=tmp_path / "bert_config.json", init_checkpoint=tmp_path / "b")
    assert pooler_missing(report) and np.abs(model.pooler.kernel.numpy()).max() > 0  # re-initialised, not zeros
    np.testing.assert_array_equal(model.embeddings.word_embeddings.numpy(), tensors["bert/embeddings/word_embeddings"])
    (tmp_path / "b" / "vocab.txt").write_text("\n".join(SMALL_VOCAB[:12]) + "\n")
    (tmp_path / "b" / "bert_config.json").write_text(config.to_json())
    with pytest.raises(ConfigError, match="no pooler"):
        config = ex.ExtractConfig(model=str(tmp_path / "b"), pooling="pooler", max_seq_length=16, xla=False)
        ex.run(config, [b"cat"], io.StringIO())


# ----------------------------------------------------------------------------- transformers parity


def hf_tokenizer(shared_data):
    """The `tokenizers` package's BERT tokenizer for the uncased vocab (no padding, no truncation)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(shared_data / "hf" / "all-MiniLM-L6-v2" / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


def mrpc_rows(shared_data, n: int) -> list[tuple[str, str]]:
    with open(shared_data / "glue" / "MRPC" / "dev.tsv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(r[3], r[4]) for r in rows[1 : n + 1]]


def test_jsonl_equals_transformers_hidden_states_tf1(shared_data, tmp_path, uncased_vocab):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    vocab_file = uncased_vocab
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48, max_position_embeddings=64, type_vocab_size=2)
    model = BertModel(config, seed=11)
    heads = PretrainingHeads(config, model.word_embeddings, seed=11)
    prefix = ck.save_model([model, heads], tmp_path / "model.ckpt-1", global_step=1)
    (tmp_path / "bert_config.json").write_text(config.to_json())
    hf_config = transformers.BertConfig(**config.to_hf_config())
    theirs = transformers.BertForPreTraining(hf_config)
    transformers.load_tf_weights_in_bert(theirs, hf_config, prefix)
    theirs.eval()

    rows = mrpc_rows(shared_data, 3)
    lines = [rows[0][0], f"{rows[1][0]} ||| {rows[1][1]}", f"{rows[2][0]} ||| {rows[2][1]}"]
    max_seq_length = 40  # the pairs are truncated, the single sentence is not
    result = run_jsonl(ex.ExtractConfig(vocab_file=vocab_file, bert_config_file=tmp_path / "bert_config.json",
                                        init_checkpoint=prefix, layers="-1,-2", max_seq_length=max_seq_length,
                                        batch_size=2, xla=False), [s.encode() for s in lines])
    hf_tok = hf_tokenizer(shared_data)
    vocab = {t: i for i, t in enumerate(vocab_file.read_text(encoding="utf-8").splitlines())}
    for i, line in enumerate(result):
        data = json.loads(line)
        tokens = [f["token"] for f in data["features"]]
        if i == 0:
            assert tokens == hf_tok.encode(rows[0][0]).tokens  # the layout of an independent tokenizer
        else:
            assert len(tokens) == max_seq_length and tokens.count("[SEP]") == 2
        first_sep = tokens.index("[SEP]")
        ids = torch.tensor([[vocab[t] for t in tokens]])
        seg = torch.tensor([[0] * (first_sep + 1) + [1] * (len(tokens) - first_sep - 1)])
        with torch.no_grad():
            hidden = theirs.bert(input_ids=ids, token_type_ids=seg, output_hidden_states=True).hidden_states
        for j, layer in enumerate((-1, -2)):
            ours = np.array([f["layers"][j]["values"] for f in data["features"]])
            ref = hidden[config.num_hidden_layers + 1 + layer][0].numpy()  # hidden_states[0] = embeddings
            assert rounded_diff(ours, ref) <= 1e-5, (i, layer)


@pytest.fixture(scope="module")
def minilm_with_vocab(minilm, uncased_vocab, tmp_path_factory):
    """A model folder for the real all-MiniLM-L6-v2 (HF layout) with the vocab.txt it ships without."""
    folder = tmp_path_factory.mktemp("minilm")
    for name in ("config.json", "model.safetensors", "tokenizer_config.json"):
        os.symlink(minilm / name, folder / name)
    os.symlink(uncased_vocab, folder / "vocab.txt")
    return folder


def test_minilm_through_load_encoder(minilm_with_vocab):
    from bert_cli.models.resolve import resolve_model

    folder = minilm_with_vocab
    files = resolve_model(str(folder))
    assert files.weights_format == "hf" and files.do_lower_case is True
    config, model, report = load_encoder(model_files=files)
    assert config.gelu_form == "erf" and config.num_hidden_layers == 6
    assert report.missing == [] and report.unexpected == [] and not pooler_missing(report)


def test_minilm_sentence_vectors_equal_transformers(shared_data, minilm_with_vocab, minilm_transformers, tmp_path):
    import torch

    folder, theirs = minilm_with_vocab, minilm_transformers
    rows = mrpc_rows(shared_data, 3)
    lines = [rows[0][0], rows[1][1], f"{rows[2][0]} ||| {rows[2][1]}"]
    path = tmp_path / "mean.npz"
    ex.run(ex.ExtractConfig(model=str(folder), pooling="mean", output_format="npz", output=path, batch_size=2,
                            xla=False), [s.encode() for s in lines])
    pooler_lines = run_jsonl(ex.ExtractConfig(model=str(folder), pooling="pooler", batch_size=2, xla=False),
                             [s.encode() for s in lines])
    ours_mean = np.load(path)["embeddings"]
    tok = hf_tokenizer(shared_data)
    for i, line in enumerate(lines):
        enc = tok.encode(*line.split(" ||| ")) if " ||| " in line else tok.encode(line)
        with torch.no_grad():
            out = theirs(input_ids=torch.tensor([enc.ids]), token_type_ids=torch.tensor([enc.type_ids]),
                         attention_mask=torch.tensor([enc.attention_mask]))
        ref_mean = out.last_hidden_state[0].numpy().mean(axis=0)  # no padding: mean over every token
        assert rounded_diff(ours_mean[i], ref_mean) <= 1e-5, i
        assert rounded_diff(json.loads(pooler_lines[i])["embedding"], out.pooler_output[0].numpy()) <= 1e-5, i
