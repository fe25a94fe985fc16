"""Damaged files and impossible configs, as a user meets them: the installed `bert`, relative paths.

Every case must end with exit 1 (3 for a missing file), one `error:` line naming the damaged
file, no traceback, nothing on stdout and nothing half-written on disk.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
from pathlib import Path

import pytest

from conftest import error_line

TINY_CKPT = "checkpoints/tf1-tiny-random"
DATA = "d.tfrecord"
CKPT_DATA = "damaged/bert_model.ckpt.data-00000-of-00001"
CKPT_INDEX = "damaged/bert_model.ckpt.index"


def _make_data(user, shared_data: Path, vocab: str, seq: int, preds: int) -> None:
    """A tiny pretraining TFRecord (the sample text) made by the CLI itself."""
    made = user.run(
        "make-pretrain-data", "-i", user.rel(shared_data / "text" / "sample_text.txt"), "--vocab-file", vocab,
        "-o", DATA, "--max-seq-length", seq, "--max-predictions-per-seq", preds, "--dupe-factor", 1,
    )
    assert made.returncode == 0, made.stderr


def _flip(path: Path, start: int, step: int) -> None:
    data = bytearray(path.read_bytes())
    for i in range(start, len(data), step):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate_data(d: Path) -> None:
    f = d / "bert_model.ckpt.data-00000-of-00001"
    f.write_bytes(f.read_bytes()[:4000])


def _remove_data(d: Path) -> None:
    (d / "bert_model.ckpt.data-00000-of-00001").unlink()


def _flip_data(d: Path) -> None:
    _flip(d / "bert_model.ckpt.data-00000-of-00001", 100, 50)


def _flip_index(d: Path) -> None:
    _flip(d / "bert_model.ckpt.index", 200, 97)


@pytest.mark.parametrize(
    "damage, code, names, words",
    [
        (_truncate_data, 1, CKPT_DATA, "truncated"),
        (_remove_data, 3, CKPT_DATA, "not found"),
        (_flip_data, 1, CKPT_DATA, "damaged"),
        (_flip_index, 1, "damaged/bert_model.ckpt", "cannot read checkpoint"),
    ],
    ids=["truncated-data", "missing-data", "flipped-data", "flipped-index"],
)
def test_pretrain_from_a_damaged_init_checkpoint(user, shared_data, damage, code, names, words):
    copy = user.cwd / "damaged"
    shutil.copytree(shared_data / TINY_CKPT, copy)
    for f in copy.iterdir():
        f.chmod(0o644)
    damage(copy)
    _make_data(user, shared_data, "damaged/vocab.txt", 16, 2)

    r = user.run(
        "pretrain", "-i", DATA, "-o", "out", "--bert-config-file", "damaged/bert_config.json",
        "--init-checkpoint", "damaged/bert_model.ckpt", "--do-train", "--train-batch-size", 2,
        "--num-train-steps", 21, "--num-warmup-steps", 0, "--max-seq-length", 16, "--max-predictions-per-seq", 2,
    )
    line = error_line(r.stderr)
    assert r.returncode == code, r.stderr
    assert names in line and words in line, line
    assert r.stdout == ""
    assert not (user.cwd / "out").exists()  # nothing written, not even an empty output folder
    assert user.leftovers() == []


@pytest.mark.parametrize("damage", ["cut", "flipped"])
def test_pretrain_on_a_damaged_tfrecord(user, shared_data, damage):
    _make_data(user, shared_data, user.rel(shared_data / "vocab" / "uncased" / "vocab.txt"), 64, 10)
    data = (user.cwd / DATA).read_bytes()
    if damage == "cut":  # `head -c N d.tfrecord > bad.tfrecord`, cutting a later record short
        bad = data[: len(data) * 2 // 3]
    else:  # one flipped byte inside a later record's data
        bad = bytearray(data)
        bad[len(data) // 2] ^= 0xFF
    (user.cwd / "bad.tfrecord").write_bytes(bytes(bad))
    (user.cwd / "tiny.json").write_text(json.dumps({
        "vocab_size": 30522, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 32, "max_position_embeddings": 64, "type_vocab_size": 2,
    }))

    r = user.run(
        "pretrain", "-i", "bad.tfrecord", "-o", "out", "--bert-config-file", "tiny.json", "--do-train",
        "--train-batch-size", 2, "--num-train-steps", 20, "--num-warmup-steps", 0,
        "--max-seq-length", 64, "--max-predictions-per-seq", 10,
    )
    line = error_line(r.stderr)
    assert r.returncode == 1, r.stderr
    assert line.startswith("error: bad.tfrecord: "), line
    assert ("truncated" if damage == "cut" else "checksum") in line, line
    assert r.stdout == ""
    assert not (user.cwd / "out").exists()
    assert user.leftovers() == []


def _huge_header_length(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:8] = struct.pack("<Q", 2**62)
    path.write_bytes(bytes(data))


def _header_not_an_object(path: Path) -> None:
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = b"[1, 2, 3]".ljust(size)
    path.write_bytes(data[:8] + header + data[8 + size :])


@pytest.mark.parametrize("damage", [_huge_header_length, _header_not_an_object], ids=["length-2^62", "json-array"])
def test_extract_with_a_damaged_safetensors(user, shared_data, minilm, damage):
    model = user.cwd / "m"
    shutil.copytree(minilm, model)
    for f in model.iterdir():
        f.chmod(0o644)
    shutil.copy(shared_data / "vocab" / "uncased" / "vocab.txt", model / "vocab.txt")
    damage(model / "model.safetensors")
    (user.cwd / "in.txt").write_text("hello world\n")

    r = user.run("extract", "--model", "m", "in.txt", "-o", "out.jsonl")
    line = error_line(r.stderr)
    assert r.returncode == 1, r.stderr
    assert line.startswith("error: m/model.safetensors: "), line
    assert r.stdout == ""
    assert not (user.cwd / "out.jsonl").exists()
    assert user.leftovers() == []


@pytest.mark.parametrize(
    "change",
    [{"num_hidden_layers": 1e9}, {"vocab_size": 10**13}, {"hidden_size": 2**20, "num_attention_heads": 2}],
    ids=["layers-1e9", "vocab-1e13", "hidden-2^20"],
)
def test_pretrain_refuses_a_config_that_cannot_fit(user, shared_data, change):
    _make_data(user, shared_data, user.rel(shared_data / "vocab" / "uncased" / "vocab.txt"), 64, 10)
    config = {
        "vocab_size": 30522, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 32, "max_position_embeddings": 64, "type_vocab_size": 2, **change,
    }
    (user.cwd / "big.json").write_text(json.dumps(config))

    r = user.run(
        "pretrain", "-i", DATA, "-o", "out", "--bert-config-file", "big.json", "--do-train",
        "--train-batch-size", 2, "--num-train-steps", 1, "--max-seq-length", 64, "--max-predictions-per-seq", 10,
        timeout=120,
    )
    line = error_line(r.stderr)
    assert r.returncode == 1, r.stderr
    assert line.startswith("error: big.json: this model cannot fit in memory"), line
    assert "parameters" in line and "this machine has" in line, line
    assert not (user.cwd / "out").exists()


# ----------------------------------------------------------------------------- the size estimate


def test_parameter_count_matches_real_models(shared_data, minilm):
    from bert_cli.modelconfig import read_model_config
    from bert_cli.modelsize import parameter_count

    base = read_model_config(shared_data / "vocab" / "uncased" / "bert_config.json")
    assert parameter_count(base) == 110_106_428  # the released BERT-Base checkpoint's index
    # MiniLM ships the encoder and pooler only: count its safetensors tensors (header alone).
    data = (minilm / "model.safetensors").read_bytes()[:200_000]
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    shipped = sum(
        math.prod(meta["shape"])
        for name, meta in header.items()
        if name != "__metadata__" and not name.endswith("position_ids")
    )
    assert parameter_count(read_model_config(minilm / "config.json"), heads=False) == shipped


def test_training_needs_more_than_inference():
    from bert_cli.errors import ConfigError
    from bert_cli.modelconfig import BertConfig
    from bert_cli.modelsize import check_fits, memory_estimate, parameter_count

    config = BertConfig(vocab_size=30522, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                        intermediate_size=4096)
    weights = parameter_count(config) * 4
    memory = 2 * weights  # room for the weights, not for gradients and two Adam slots
    check_fits(config, "large.json", memory=memory)
    with pytest.raises(ConfigError, match=r"^large\.json: this model cannot fit in memory: .*training needs at least"):
        check_fits(config, "large.json", training=True, seq_length=128, memory=memory)
    assert memory_estimate(config, training=True, seq_length=512) > 16 * parameter_count(config)
