"""TF1 checkpoints: exact names/shapes of Google's releases, loading the original's output,
bit-exact round trips, and Hugging Face safetensors weights."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bert_cli.engine import checkpoint as ck  # noqa: E402
from bert_cli.engine import hf_weights as hw  # noqa: E402
from bert_cli.engine.heads import ClassifierHead, PretrainingHeads, SquadHead  # noqa: E402
from bert_cli.engine.model import BertModel  # noqa: E402
from bert_cli.errors import CheckpointError, NotFoundError  # noqa: E402
from bert_cli.modelconfig import BertConfig  # noqa: E402

TINY = BertConfig(
    vocab_size=30, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=12,
    max_position_embeddings=16, type_vocab_size=2,
)


def pretraining_model(config, **kwargs):
    model = BertModel(config, **kwargs)
    return model, PretrainingHeads(config, model.word_embeddings, **kwargs)


@pytest.mark.parametrize(
    "folder, count",
    [
        ("uncased_L-12_H-768_A-12.index-only", 206),
        ("chinese_L-12_H-768_A-12.index-only", 206),
        ("uncased_L-8_H-512_A-8.index-only", 142),
    ],
)
def test_names_and_shapes_equal_released_index(shared_data, folder, count):
    """A model + pretraining heads built from the released config has exactly the released
    variables (the released files hold weights only: no global_step, no Adam slots)."""
    root = shared_data / "checkpoints" / folder
    config = BertConfig.from_json_file(root / "bert_config.json")
    modules = pretraining_model(config, random_init=False)  # zeros: fast to build
    ours = {name: tuple(var.shape.as_list()) for name, var in ck.tf1_names(modules).items()}
    released = ck.list_checkpoint(root / "bert_model.ckpt")
    assert len(released) == count
    assert ours == released
    assert sum(int(np.prod(s)) for s in ours.values()) == sum(int(np.prod(s)) for s in released.values())
    if folder.startswith("uncased_L-12"):
        assert sum(int(np.prod(s)) for s in released.values()) == 110_106_428


def test_written_medium_checkpoint_lists_the_released_names(shared_data, tmp_path):
    """Write a real BERT-Medium checkpoint (165 MB, zeros) and list it with TF's own reader."""
    root = shared_data / "checkpoints" / "uncased_L-8_H-512_A-8.index-only"
    config = BertConfig.from_json_file(root / "bert_config.json")
    prefix = ck.save_model(pretraining_model(config, random_init=False), tmp_path / "model.ckpt-1", global_step=1)
    written = {n: tuple(s) for n, s in tf.train.list_variables(prefix)}
    released = {n: tuple(s) for n, s in tf.train.list_variables(str(root / "bert_model.ckpt"))}
    assert written == {**released, "global_step": ()}  # 142 released weights + the Estimator step


@pytest.fixture(scope="module")
def tiny_random(shared_data):
    return shared_data / "checkpoints" / "tf1-tiny-random"


def test_load_original_run_pretraining_checkpoint(tiny_random):
    config = BertConfig.from_json_file(tiny_random / "bert_config.json")
    model, heads = pretraining_model(config, seed=0)
    report = ck.load_into([model, heads], tiny_random, load_slots=True)  # a directory resolves
    assert report.missing == [] and report.unexpected == []
    assert len(report.loaded) == 46 and report.global_step == 20
    assert len(report.optimizer) == 93 and len(report.slots) == 92
    reader = tf.train.load_checkpoint(str(tiny_random / "bert_model.ckpt"))
    for name, var in ck.tf1_names(model, heads).items():
        np.testing.assert_array_equal(var.numpy(), reader.get_tensor(name))
    np.testing.assert_array_equal(
        report.slots["bert/pooler/dense/kernel/adam_m"], reader.get_tensor("bert/pooler/dense/kernel/adam_m")
    )
    out = model(np.array([[2, 5, 7, 3, 0]]), np.array([[1, 1, 1, 1, 0]]))
    assert np.isfinite(out.sequence_output.numpy()).all()
    assert "global_step 20" in report.summary()


def test_pretraining_checkpoint_into_classifier(tiny_random):
    """Fine-tuning start: the classifier head is missing from the checkpoint, cls/ is unused."""
    config = BertConfig.from_json_file(tiny_random / "bert_config.json")
    model = BertModel(config, seed=0)
    clf = ClassifierHead(config.hidden_size, 3, seed=0)
    before = clf.output_weights.numpy().copy()
    with pytest.raises(CheckpointError, match="output_bias, output_weights") as info:
        ck.load_into([model, clf], tiny_random)
    assert info.value.hint
    report = ck.load_into([model, clf], tiny_random, allow_missing=("output_",))
    assert report.missing == ["output_bias", "output_weights"]
    assert len(report.unexpected) == 7 and all(n.startswith("cls/") for n in report.unexpected)
    np.testing.assert_array_equal(clf.output_weights.numpy(), before)
    with pytest.raises(CheckpointError, match="not used by the model"):
        ck.load_into([model, clf], tiny_random, allow_missing=True, allow_unexpected=False)


def test_mirrored_strategy_load_and_save(tiny_random, tmp_path):
    """Variables created under a distribution strategy keep their names and load/save."""
    config = BertConfig.from_json_file(tiny_random / "bert_config.json")
    strategy = tf.distribute.MirroredStrategy(["CPU:0"])
    with strategy.scope():
        modules = pretraining_model(config, seed=0)
    report = ck.load_into(modules, tiny_random)
    assert report.missing == [] and report.unexpected == []
    prefix = ck.save_model(modules, tmp_path / "model.ckpt-20", global_step=report.global_step)
    original = ck.read_checkpoint(tiny_random)
    again = ck.read_checkpoint(prefix)
    assert set(again) == {n for n in original if not n.endswith(("/adam_m", "/adam_v"))}
    for name, value in again.items():
        assert value.tobytes() == original[name].tobytes(), name


def test_shape_mismatch_is_an_error(tiny_random):
    config = BertConfig.from_json_file(tiny_random / "bert_config.json").replace(intermediate_size=20)
    model = BertModel(config, random_init=False)
    with pytest.raises(CheckpointError, match=r"shape mismatches: bert/encoder/layer_0/intermediate/dense/bias: checkpoint \[16\]"):
        ck.load_into(model, tiny_random, allow_missing=True)
    assert not model.embeddings.word_embeddings.numpy().any()  # nothing assigned before the check


def test_round_trip_bit_exact_with_slots(tmp_path):
    model, heads = pretraining_model(TINY, seed=11)
    squad = SquadHead(TINY.hidden_size, seed=11)
    rng = np.random.default_rng(0)
    names = ck.tf1_names(model, heads, squad)
    for var in names.values():  # non-trivial values everywhere, incl. LayerNorm and biases
        var.assign(rng.standard_normal(var.shape.as_list()).astype(np.float32))
    slots = {f"{n}/adam_{k}": rng.random(v.shape.as_list(), dtype=np.float32) for n, v in names.items() for k in "mv"}
    prefix = ck.save_model([model, heads, squad], tmp_path / "run" / "model.ckpt-42", global_step=42, optimizer_slots=slots)

    # the exact TF1 layout, readable by TF's own readers
    assert tf.train.latest_checkpoint(str(tmp_path / "run")) == prefix
    listed = dict(tf.train.list_variables(prefix))
    assert len(listed) == len(names) * 3 + 1 and listed["global_step"] == []
    dtypes = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
    assert dtypes["global_step"] == tf.int64
    assert {d for n, d in dtypes.items() if n != "global_step"} == {tf.float32}
    assert listed["cls/squad/output_weights"] == [2, TINY.hidden_size]
    assert listed["cls/seq_relationship/output_weights"] == [2, TINY.hidden_size]
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]

    model2, heads2 = pretraining_model(TINY, seed=99)
    squad2 = SquadHead(TINY.hidden_size, seed=99)
    report = ck.load_into([model2, heads2, squad2], prefix + ".index", load_slots=True)
    assert report.missing == [] and report.unexpected == [] and report.global_step == 42
    names2 = ck.tf1_names(model2, heads2, squad2)
    for name, var in names.items():
        assert var.numpy().tobytes() == names2[name].numpy().tobytes(), name
    assert set(report.slots) == set(slots)
    for name, value in slots.items():
        assert report.slots[name].tobytes() == value.tobytes()

    # a second save updates the state file; both stay listed
    second = ck.save_model([model, heads, squad], tmp_path / "run" / "model.ckpt-43", global_step=43)
    state = tf.train.get_checkpoint_state(str(tmp_path / "run"))
    assert state.model_checkpoint_path.endswith("model.ckpt-43")
    assert [p.rsplit("/", 1)[-1] for p in state.all_model_checkpoint_paths] == ["model.ckpt-42", "model.ckpt-43"]
    assert ck.resolve_checkpoint(tmp_path / "run") == second


def test_raw_write_read_and_errors(tmp_path):
    tensors = {"a/b": np.arange(6, dtype=np.float32).reshape(2, 3), "global_step": np.int64(5)}
    prefix = ck.write_checkpoint(tmp_path / "x.ckpt", tensors)
    assert ck.list_checkpoint(prefix) == {"a/b": (2, 3), "global_step": ()}
    back = ck.read_checkpoint(prefix)
    np.testing.assert_array_equal(back["a/b"], tensors["a/b"])
    assert back["global_step"] == 5
    with pytest.raises(NotFoundError):
        ck.resolve_checkpoint(tmp_path / "nothing")
    with pytest.raises(CheckpointError):
        ck.save_model(BertModel(TINY, random_init=False), tmp_path / "y", optimizer_slots={"nope/adam_m": np.zeros(1)})
    (tmp_path / "broken.ckpt.index").write_bytes(b"not an index")
    with pytest.raises(CheckpointError, match="cannot read"):
        ck.list_checkpoint(tmp_path / "broken.ckpt")


def test_table_matches_variable_names():
    model, heads = pretraining_model(TINY, random_init=False)
    modules = [model, heads, ClassifierHead(8, 2), SquadHead(8)]
    for name, var in ck.tf1_names(modules).items():
        assert var.name == name + ":0"
    assert len(ck.tf1_names(modules)) == sum(len(m.trainable_variables) for m in modules)


# ----------------------------------------------------------------------------- Hugging Face


def test_read_minilm_safetensors(minilm):
    raw = hw.read_safetensors(minilm / "model.safetensors")
    assert len(raw) == 104  # 103 weights + the position_ids buffer
    weights = hw.read_hf_weights(minilm)
    assert len(weights) == 103 and "embeddings.position_ids" not in weights
    assert sum(a.size for a in weights.values()) == 22_713_216  # 22.7M parameters
    q = weights["bert/encoder/layer_0/attention/self/query/kernel"]
    np.testing.assert_array_equal(q, raw["encoder.layer.0.attention.self.query.weight"].T)  # [out,in] -> [in,out]
    ffn = weights["bert/encoder/layer_5/intermediate/dense/kernel"]
    assert ffn.shape == (384, 1536)
    np.testing.assert_array_equal(weights["bert/embeddings/LayerNorm/gamma"], raw["embeddings.LayerNorm.weight"])
    config, model, report = hw.load_hf_model(minilm)
    assert config.gelu_form == "erf"
    assert report.missing == [] and report.unexpected == [] and len(report.loaded) == 103
    np.testing.assert_array_equal(model.layers[3].output_dense.kernel.numpy(), raw["encoder.layer.3.output.dense.weight"].T)


def test_hf_prefixed_gamma_beta_names_and_bf16(tmp_path):
    """google-bert/* style: ``bert.`` prefix, heads, old LayerNorm.gamma/beta names, bf16 storage."""
    from safetensors.numpy import save_file

    model, heads = pretraining_model(TINY, seed=5)
    hf = {}
    for hf_name, tf1, transpose in hw.HF_TABLE:
        rows = [hf_name.format(i=i) for i in range(TINY.num_hidden_layers)] if "{i}" in hf_name else [hf_name]
        for i, name in enumerate(rows):
            key = tf1.format(i=i)
            var = ck.tf1_names(model, heads).get(key)
            if var is None:
                continue
            value = var.numpy() + 0.5  # distinguishable from the model's own values
            if not name.startswith("cls."):
                name = "bert." + name
            name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
            hf[name] = np.ascontiguousarray(value.T if transpose else value)
    hf["cls.predictions.decoder.weight"] = hf["bert.embeddings.word_embeddings.weight"]
    hf["bert.embeddings.position_ids"] = np.arange(16, dtype=np.int64)[None]
    save_file(hf, str(tmp_path / "model.safetensors"))
    expected = {n: v.numpy() + 0.5 for n, v in ck.tf1_names(model, heads).items()}
    fresh = pretraining_model(TINY, random_init=False)
    report = hw.load_hf_into(fresh, tmp_path)
    assert report.missing == [] and report.unexpected == []
    for name, var in ck.tf1_names(fresh).items():
        np.testing.assert_array_equal(var.numpy(), expected[name], err_msg=name)

    # bf16 (numpy has no such dtype): widened to float32, exact for bf16-representable values
    values = np.array([[1.5, -2.0, 0.15625], [3.0, 0.0, -0.5]], np.float32)
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}}).encode()
    payload = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    (tmp_path / "bf16.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + payload)
    np.testing.assert_array_equal(hw.read_safetensors(tmp_path / "bf16.safetensors")["w"], values)


def test_hf_errors(tmp_path):
    with pytest.raises(NotFoundError):
        hw.find_weights_file(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match="safetensors"):
        hw.find_weights_file(tmp_path)
    assert hw.hf_to_tf1("bert.encoder.layer.11.output.LayerNorm.gamma") == (
        "bert/encoder/layer_11/output/LayerNorm/gamma", False)
    assert hw.hf_to_tf1("something.else") == ("something.else", False)  # reported as unexpected
