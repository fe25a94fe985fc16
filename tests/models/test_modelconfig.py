"""BertConfig: the original bert_config.json keys/defaults, validation, and HF config.json."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bert_cli.errors import ConfigError, NotFoundError
from bert_cli.modelconfig import BertConfig

GOOGLE_KEYS = {
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
    "type_vocab_size", "initializer_range",
}


@pytest.mark.parametrize(
    "folder, expected",
    [
        ("uncased_L-12_H-768_A-12.index-only", dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)),
        ("chinese_L-12_H-768_A-12.index-only", dict(vocab_size=21128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)),
        ("uncased_L-8_H-512_A-8.index-only", dict(vocab_size=30522, hidden_size=512, num_hidden_layers=8, num_attention_heads=8, intermediate_size=2048)),
    ],
)
def test_shared_google_configs(shared_data, folder, expected):
    path = shared_data / "checkpoints" / folder / "bert_config.json"
    config = BertConfig.from_json_file(path)
    for key, value in expected.items():
        assert getattr(config, key) == value
    assert config.hidden_act == "gelu" and config.gelu_form == "tanh"  # Google's gelu = tanh form
    assert config.type_vocab_size == 2 and config.max_position_embeddings == 512
    assert config.layer_norm_eps == 1e-12
    # Round trip: the Google keys come back with the file's values; extra keys
    # (directionality, pooler_* in the Chinese config) are ignored, not kept.
    raw = json.loads(path.read_text(encoding="utf-8"))
    out = config.to_dict()
    assert set(out) == GOOGLE_KEYS
    assert out == {k: raw[k] for k in GOOGLE_KEYS}
    assert BertConfig.from_dict(json.loads(config.to_json())) == config


def test_original_defaults():
    config = BertConfig(vocab_size=100)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert config.intermediate_size == 3072 and config.hidden_act == "gelu"
    assert config.hidden_dropout_prob == 0.1 and config.attention_probs_dropout_prob == 0.1
    assert config.max_position_embeddings == 512 and config.initializer_range == 0.02
    assert config.type_vocab_size == 16  # class default of the original (released configs say 2)
    assert BertConfig.from_dict({"vocab_size": 100}) == config
    assert config.head_size == 64


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(hidden_size=100, num_attention_heads=12), "not a multiple"),
        (dict(hidden_act="swish"), "unsupported hidden_act"),
        (dict(num_hidden_layers=0), "must be positive"),
        (dict(vocab_size=-5), "must be positive"),
        (dict(hidden_size=76.5), "must be an integer"),
        (dict(hidden_dropout_prob=1.5), "probability"),
        (dict(initializer_range=0), "positive number"),
        (dict(gelu_form="exact"), "gelu_form"),
    ],
)
def test_validation(changes, message):
    data = {"vocab_size": 100, **changes}
    with pytest.raises(ConfigError, match=message):
        BertConfig.from_dict(data)


def test_activations_accepted():
    for act in ("linear", "relu", "gelu", "tanh"):
        assert BertConfig(vocab_size=10, hidden_act=act).hidden_act == act


def test_missing_vocab_size_and_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="vocab_size"):
        BertConfig.from_dict({"hidden_size": 768})
    bad = tmp_path / "bert_config.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON") as info:
        BertConfig.from_json_file(bad)
    assert str(bad) in str(info.value)
    bad.write_text(json.dumps({"vocab_size": 10, "hidden_size": 10, "num_attention_heads": 3}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bert_config\.json: .*not a multiple"):
        BertConfig.from_json_file(bad)
    with pytest.raises(NotFoundError):
        BertConfig.from_json_file(tmp_path / "absent.json")


def test_integral_floats_are_accepted():
    assert BertConfig.from_dict({"vocab_size": 100.0, "hidden_size": 768.0}).hidden_size == 768


def test_hf_config_minilm(shared_data):
    path = shared_data / "hf" / "all-MiniLM-L6-v2" / "config.json"
    config = BertConfig.from_hf_json_file(path)
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (30522, 384, 6)
    assert (config.num_attention_heads, config.intermediate_size) == (12, 1536)
    assert config.hidden_act == "gelu" and config.gelu_form == "erf"  # HF "gelu" = exact erf
    assert config.layer_norm_eps == 1e-12
    # Writing it as bert_config.json keeps the erf meaning in the extra key.
    assert config.to_dict()["gelu_form"] == "erf"
    assert BertConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "act, expected",
    [("gelu", ("gelu", "erf")), ("gelu_new", ("gelu", "tanh")), ("gelu_pytorch_tanh", ("gelu", "tanh")), ("relu", ("relu", "tanh"))],
)
def test_hf_activation_mapping(act, expected):
    config = BertConfig.from_hf_config({"vocab_size": 10, "hidden_size": 8, "num_attention_heads": 2, "hidden_act": act})
    assert (config.hidden_act, config.gelu_form) == expected
    assert config.type_vocab_size == 2  # HF's default when the key is absent


def test_hf_config_round_trip_and_refusals():
    config = BertConfig(vocab_size=99, hidden_size=32, num_attention_heads=4, layer_norm_eps=1e-6)
    hf = config.to_hf_config()
    assert hf["hidden_act"] == "gelu_new" and hf["layer_norm_eps"] == 1e-6
    assert BertConfig.from_hf_config(hf) == config
    with pytest.raises(ConfigError, match="not BERT"):
        BertConfig.from_hf_config({"vocab_size": 10, "model_type": "roberta"})
    with pytest.raises(ConfigError, match="position_embedding_type"):
        BertConfig.from_hf_config({"vocab_size": 10, "position_embedding_type": "relative_key"})
    with pytest.raises(ConfigError, match="hidden_act"):
        BertConfig.from_hf_config({"vocab_size": 10, "hidden_act": "silu"})


def test_config_is_frozen():
    config = BertConfig(vocab_size=10)
    with pytest.raises(Exception):
        config.hidden_size = 5  # type: ignore[misc]
    assert config.replace(hidden_size=24, num_attention_heads=4).hidden_size == 24


def test_no_tensorflow_import():
    code = "import sys, bert_cli.modelconfig; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_read_model_config_tells_the_two_formats_apart_by_keys(shared_data, tmp_path):
    from bert_cli.modelconfig import read_model_config

    hf = read_model_config(shared_data / "hf" / "all-MiniLM-L6-v2" / "config.json")
    google = read_model_config(shared_data / "vocab" / "uncased" / "bert_config.json")
    assert (hf.hidden_size, hf.num_hidden_layers, hf.gelu_form) == (384, 6, "erf")  # HF "gelu" = erf
    assert (google.hidden_size, google.gelu_form) == (768, "tanh")  # Google "gelu" = tanh
    renamed = tmp_path / "bert_config.json"  # the keys decide, not the file name
    renamed.write_text((shared_data / "hf" / "all-MiniLM-L6-v2" / "config.json").read_text())
    assert read_model_config(renamed).gelu_form == "erf"
