"""``resolve_model``: folders (with or without a manifest), cached names, errors and completion."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from bert_cli import settings
from bert_cli.errors import EXIT_NOT_FOUND, EXIT_USAGE, NotFoundError, UsageError
from bert_cli.models.cache import Cache
from bert_cli.models.folder import find_checkpoint
from bert_cli.models.resolve import ModelFiles, complete_model_name, inspect_directory, resolve_model


@pytest.fixture
def cache(tmp_path):
    """A fresh cache as the global setting (restored afterwards)."""
    before = settings.current()
    settings.configure(settings.Settings(cache_dir=tmp_path / "cache"))
    yield Cache(tmp_path / "cache")
    settings.configure(before)


def make_model(folder, *, vocab=True, config="bert_config.json", ckpts=("bert_model.ckpt",), extra=None):
    folder.mkdir(parents=True, exist_ok=True)
    if vocab:
        (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n")
    if config:
        (folder / config).write_text(json.dumps({"hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 6}))
    for prefix in ckpts:
        (folder / f"{prefix}.index").write_bytes(b"i")
        (folder / f"{prefix}.data-00000-of-00001").write_bytes(b"d")
    for name, text in (extra or {}).items():
        (folder / name).write_text(text)
    return folder


def test_real_tf1_checkpoint_folder(shared_data):
    folder = shared_data / "checkpoints" / "tf1-tiny-random"
    files = resolve_model(str(folder))
    assert files == ModelFiles(
        directory=folder,
        name="tf1-tiny-random",
        vocab_file=folder / "vocab.txt",
        config_file=folder / "bert_config.json",
        checkpoint=str(folder / "bert_model.ckpt"),
        weights_format="tf1",
        do_lower_case=None,  # no manifest, no tokenizer_config.json, not a catalogue directory name
    )


def test_folder_without_vocab_is_a_clear_error(shared_data):
    with pytest.raises(NotFoundError) as err:
        resolve_model(str(shared_data / "checkpoints" / "uncased_L-8_H-512_A-8.index-only"))
    assert "no vocab.txt" in err.value.message and err.value.exit_code == EXIT_NOT_FOUND


def test_casing_from_the_catalogue_entry_named_like_the_folder(shared_data, tmp_path, uncased_vocab):
    folder = tmp_path / "uncased_L-8_H-512_A-8"
    shutil.copytree(shared_data / "checkpoints" / "uncased_L-8_H-512_A-8.index-only", folder)
    (folder / "vocab.txt").write_bytes(uncased_vocab.read_bytes())
    files = inspect_directory(folder)
    assert files.do_lower_case is True and files.checkpoint == str(folder / "bert_model.ckpt")
    cased = make_model(tmp_path / "cased_L-12_H-768_A-12")
    assert inspect_directory(cased).do_lower_case is False


def test_hf_folder_uses_config_json_safetensors_and_tokenizer_casing(shared_data, tmp_path, monkeypatch, uncased_vocab):
    folder = tmp_path / "minilm"
    shutil.copytree(shared_data / "hf" / "all-MiniLM-L6-v2", folder)
    monkeypatch.setenv("BERT_CACHE", str(tmp_path / "cache"))
    # as shipped (no vocab.txt): the vocabulary comes from tokenizer.json, derived into the cache
    derived = inspect_directory(folder).vocab_file
    assert derived.parent == tmp_path / "cache" / "derived" and not (folder / "vocab.txt").exists()
    assert derived.read_bytes() == (shared_data / "vocab" / "uncased" / "vocab.txt").read_bytes()
    (folder / "tokenizer.json").unlink()
    with pytest.raises(NotFoundError, match="no vocab.txt"):
        inspect_directory(folder)
    (folder / "vocab.txt").write_bytes(uncased_vocab.read_bytes())
    files = inspect_directory(folder)
    assert files.vocab_file == folder / "vocab.txt"
    assert files.weights_format == "hf" and files.checkpoint == str(folder / "model.safetensors")
    assert files.config_file == folder / "config.json"
    assert files.do_lower_case is json.loads((folder / "tokenizer_config.json").read_text())["do_lower_case"] is True


def test_manifest_casing_wins(tmp_path):
    folder = make_model(tmp_path / "uncased_L-2_H-128_A-2", extra={"manifest.json": json.dumps({"name": "x", "do_lower_case": False})})
    folder.joinpath("tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    files = inspect_directory(folder)
    assert files.do_lower_case is False and files.name == "x"


def test_missing_config_is_a_clear_error(tmp_path):
    folder = make_model(tmp_path / "m", config=None)
    with pytest.raises(NotFoundError, match="no bert_config.json"):
        inspect_directory(folder)


def test_vocab_and_config_only_has_no_weights(tmp_path):
    files = inspect_directory(make_model(tmp_path / "m", ckpts=()))
    assert files.checkpoint is None and files.weights_format == "none"


def test_newest_checkpoint_by_step_and_state_file(tmp_path):
    folder = make_model(tmp_path / "run", ckpts=("bert_model.ckpt", "model.ckpt-900", "model.ckpt-1000", "model.ckpt-50"))
    assert find_checkpoint(folder) == (str(folder / "model.ckpt-1000"), "tf1")
    (folder / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-900"\nall_model_checkpoint_paths: "model.ckpt-900"\n')
    assert find_checkpoint(folder) == (str(folder / "model.ckpt-900"), "tf1")
    (folder / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-12345"\n')  # stale: no such files
    assert find_checkpoint(folder) == (str(folder / "model.ckpt-1000"), "tf1")
    (folder / "checkpoint").write_text(f'model_checkpoint_path: "{folder / "model.ckpt-50"}"\n')  # absolute
    assert find_checkpoint(folder) == (str(folder / "model.ckpt-50"), "tf1")


def test_tf2_checkpoint_names_and_mtime_tie_break(tmp_path):
    folder = make_model(tmp_path / "tf2", ckpts=("ckpt-3", "ckpt-12"))
    assert find_checkpoint(folder) == (str(folder / "ckpt-12"), "tf1")
    plain = make_model(tmp_path / "plain", ckpts=("a.ckpt", "b.ckpt"))
    old = time.time() - 100
    os.utime(plain / "b.ckpt.index", (old, old))
    assert find_checkpoint(plain) == (str(plain / "a.ckpt"), "tf1")


def test_tf1_weights_win_over_safetensors(tmp_path):
    folder = make_model(tmp_path / "both")
    (folder / "model.safetensors").write_bytes(b"x")
    assert find_checkpoint(folder)[1] == "tf1"


def test_cached_name_resolves_through_the_cache(cache):
    folder = make_model(cache.model_dir("uncased-L-2-H-128"), extra={"manifest.json": json.dumps({"name": "uncased-L-2-H-128", "do_lower_case": True})})
    for name in ("uncased-L-2-H-128", "tiny", "uncased_L-2_H-128_A-2", "google/bert_uncased_L-2_H-128_A-2"):
        files = resolve_model(name)
        assert files.directory == folder and files.name == "uncased-L-2-H-128" and files.do_lower_case is True
    mine = make_model(cache.model_dir("mine"), extra={"manifest.json": json.dumps({"name": "mine"})})
    assert resolve_model("mine").directory == mine and resolve_model("mine").do_lower_case is None


def test_catalogue_name_not_cached_says_how_to_download(cache):
    with pytest.raises(NotFoundError) as err:
        resolve_model("cased-base")
    assert err.value.exit_code == EXIT_NOT_FOUND
    assert "not downloaded" in err.value.message and err.value.hint.startswith("bert download cased-base")


def test_incomplete_cache_folder_is_not_used(cache):
    make_model(cache.model_dir("cased-base"))  # no manifest.json: an interrupted install
    with pytest.raises(NotFoundError, match="not downloaded"):
        resolve_model("cased-base")


def test_unknown_name_lists_close_matches(cache):
    with pytest.raises(NotFoundError) as err:
        resolve_model("uncased-bas")
    assert "did you mean uncased-base" in err.value.message and err.value.hint == "bert download --list"
    with pytest.raises(NotFoundError) as err:
        resolve_model("qqqqqq")
    assert "did you mean" not in err.value.message


def test_missing_folder_and_file_arguments(cache, tmp_path):
    with pytest.raises(NotFoundError, match="model folder not found"):
        resolve_model(str(tmp_path / "nope"))
    with pytest.raises(NotFoundError, match="model folder not found"):
        resolve_model("./nope/model")
    (tmp_path / "model.zip").write_bytes(b"PK")
    with pytest.raises(UsageError) as err:
        resolve_model(str(tmp_path / "model.zip"))
    assert err.value.exit_code == EXIT_USAGE and "--name" in err.value.hint


def test_offline_never_downloads(cache, monkeypatch):
    settings.configure(settings.Settings(cache_dir=cache.root, offline=True))

    def boom(*args, **kwargs):  # pragma: no cover - must not be called
        raise AssertionError("download attempted while offline")

    monkeypatch.setattr("bert_cli.models.install.download_model", boom)
    with pytest.raises(NotFoundError) as err:
        resolve_model("tiny", download=True)
    assert "offline" in err.value.message


def test_completion_of_model_names(cache):
    assert complete_model_name("ti") == ["tiny"]
    assert {"uncased-base", "uncased-large", "uncased-L-2-H-128"} <= set(complete_model_name("unc"))
    assert "cased-base" in complete_model_name("CA")
    make_model(cache.model_dir("my-model"), extra={"manifest.json": "{}"})
    assert complete_model_name("my") == ["my-model"]
    assert len(complete_model_name("")) == 33 + 4 + 1  # names, aliases, the cached local model
