"""The model catalogue against the original README's release list and the real released files."""

from __future__ import annotations

import hashlib
import json

import pytest

from bert_cli.models import catalogue
from bert_cli.models.catalogue import DATASETS, MODELS, find_dataset, find_model

# The download links of google-research/bert's README, verbatim.
README_URLS = {
    "uncased-base": "https://storage.googleapis.com/bert_models/2018_10_18/uncased_L-12_H-768_A-12.zip",
    "uncased-large": "https://storage.googleapis.com/bert_models/2018_10_18/uncased_L-24_H-1024_A-16.zip",
    "cased-base": "https://storage.googleapis.com/bert_models/2018_10_18/cased_L-12_H-768_A-12.zip",
    "cased-large": "https://storage.googleapis.com/bert_models/2018_10_18/cased_L-24_H-1024_A-16.zip",
    "multi-cased-base": "https://storage.googleapis.com/bert_models/2018_11_23/multi_cased_L-12_H-768_A-12.zip",
    "multi-uncased-base": "https://storage.googleapis.com/bert_models/2018_11_03/multilingual_L-12_H-768_A-12.zip",
    "chinese-base": "https://storage.googleapis.com/bert_models/2018_11_03/chinese_L-12_H-768_A-12.zip",
    "wwm-uncased-large": "https://storage.googleapis.com/bert_models/2019_05_30/wwm_uncased_L-24_H-1024_A-16.zip",
    "wwm-cased-large": "https://storage.googleapis.com/bert_models/2019_05_30/wwm_cased_L-24_H-1024_A-16.zip",
    "tiny": "https://storage.googleapis.com/bert_models/2020_02_20/uncased_L-2_H-128_A-2.zip",
    "mini": "https://storage.googleapis.com/bert_models/2020_02_20/uncased_L-4_H-256_A-4.zip",
    "small": "https://storage.googleapis.com/bert_models/2020_02_20/uncased_L-4_H-512_A-8.zip",
    "medium": "https://storage.googleapis.com/bert_models/2020_02_20/uncased_L-8_H-512_A-8.zip",
}


@pytest.fixture(autouse=True)
def _no_url_overrides(monkeypatch):
    monkeypatch.delenv("BERT_GOOGLE_BASE_URL", raising=False)
    monkeypatch.delenv("BERT_DATASET_BASE_URL", raising=False)


def test_every_release_is_listed_once():
    assert len(MODELS) == 9 + 24
    names = [n.lower() for m in MODELS for n in (m.name, *m.aliases)]
    assert len(names) == len(set(names))
    grid = {(m.layers, m.hidden) for m in MODELS if m.date == "2020_02_20"}
    assert grid == {(layer, h) for layer in (2, 4, 6, 8, 10, 12) for h in (128, 256, 512, 768)}


@pytest.mark.parametrize("name, url", sorted(README_URLS.items()))
def test_zip_urls_are_the_readme_links(name, url):
    assert find_model(name).zip_url() == url


def test_every_name_alias_and_directory_resolves():
    for m in MODELS:
        for n in m.names():
            assert find_model(n) is m, n
            assert find_model(n.upper()) is m
        assert find_model(m.hf_repo) is m
    # the original directory name of BERT-Base Uncased is the 2018 release, not the 2020 re-upload
    assert find_model("uncased_L-12_H-768_A-12").name == "uncased-base"
    assert find_model("uncased-L-12-H-768").date == "2020_02_20"
    assert find_model("uncased_L-2_H-128_A-2").name == "uncased-L-2-H-128"
    assert find_model("nope") is None


def test_casing_follows_the_release_notes():
    cased = {m.name for m in MODELS if not m.do_lower_case}
    assert cased == {"cased-base", "cased-large", "multi-cased-base", "wwm-cased-large"}
    assert all(m.do_lower_case for m in MODELS if m.date == "2020_02_20")  # the small BERTs are uncased
    for m in MODELS:  # the directory name agrees (it is never used to decide)
        assert ("uncased" in m.directory or m.directory.startswith(("multilingual", "chinese"))) == m.do_lower_case


def test_heads_are_hidden_over_64():
    assert all(m.heads * 64 == m.hidden and m.intermediate_size == 4 * m.hidden for m in MODELS)


def test_hub_mirrors():
    assert find_model("uncased-base").hf_repo == "google-bert/bert-base-uncased"
    assert find_model("wwm-cased-large").hf_repo == "google-bert/bert-large-cased-whole-word-masking"
    assert find_model("multi-uncased-base").hf_repo == "google-bert/bert-base-multilingual-uncased"
    assert find_model("tiny").hf_repo == "google/bert_uncased_L-2_H-128_A-2"
    assert find_model("uncased-L-10-H-256").hf_repo == "google/bert_uncased_L-10_H-256_A-4"


def test_parameter_count_of_bert_base_matches_the_released_checkpoint():
    # tf.train.list_variables on Google's uncased_L-12_H-768_A-12 checkpoint: 110,106,428 (shared data README)
    assert find_model("uncased-base").parameters == 110_106_428
    assert find_model("uncased-base").encoder_parameters == 109_482_240  # BertModel without the MLM/NSP heads


@pytest.mark.parametrize(
    "name, config",
    [
        ("uncased-base", "vocab/uncased/bert_config.json"),
        ("chinese-base", "vocab/chinese/bert_config.json"),
        ("uncased_L-8_H-512_A-8", "checkpoints/uncased_L-8_H-512_A-8.index-only/bert_config.json"),
    ],
)
def test_sizes_match_the_released_bert_config(shared_data, name, config):
    released = json.loads((shared_data / config).read_text())
    ours = find_model(name).bert_config()
    for key, value in ours.items():
        assert released[key] == value, key


@pytest.mark.parametrize(
    "name, vocab", [("uncased-base", "uncased"), ("cased-base", "cased"), ("multi-cased-base", "multi_cased"), ("chinese-base", "chinese")]
)
def test_vocab_sizes_match_the_released_vocab_files(shared_data, name, vocab):
    # count "\n" only, as the original loader reads lines (the Chinese vocab holds U+2028 tokens)
    lines = (shared_data / "vocab" / vocab / "vocab.txt").read_bytes().rstrip(b"\n").split(b"\n")
    assert find_model(name).vocab_size == len(lines)


def test_google_base_url_is_overridable(monkeypatch):
    monkeypatch.setenv("BERT_GOOGLE_BASE_URL", "http://127.0.0.1:9/mirror/")
    assert find_model("tiny").zip_url() == "http://127.0.0.1:9/mirror/2020_02_20/uncased_L-2_H-128_A-2.zip"


def test_datasets_and_their_public_urls(monkeypatch):
    assert {d.name for d in DATASETS} == {"glue-mrpc", "glue-cola", "squad-v1.1", "squad-v2.0"}
    squad = find_dataset("squad-v1.1")
    assert [squad.url(f) for f in squad.files] == [
        "https://rajpurkar.github.io/SQuAD-explorer/dataset/train-v1.1.json",
        "https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v1.1.json",
    ]
    mrpc = find_dataset("mrpc")
    assert {f.filename for f in mrpc.files} == {"msr_paraphrase_train.txt", "msr_paraphrase_test.txt", "mrpc_dev_ids.tsv"}
    assert find_dataset("glue-cola").files[0].url == "https://dl.fbaipublicfiles.com/glue/data/CoLA.zip"
    monkeypatch.setenv("BERT_DATASET_BASE_URL", "http://127.0.0.1:9/data")
    assert squad.url(squad.files[1]) == "http://127.0.0.1:9/data/squad-v1.1/dev-v1.1.json"


def test_known_checksum_is_the_official_squad_dev_set(shared_data):
    (dev,) = [f for f in find_dataset("squad-v1.1").files if f.filename == "dev-v1.1.json"]
    assert hashlib.sha256((shared_data / "squad" / "dev-v1.1.json").read_bytes()).hexdigest() == dev.sha256
    # no other checksum is claimed without having been verified
    assert all(m.zip_sha256 is None for m in MODELS)


def test_close_matches_for_typos():
    assert catalogue.close_matches("uncased-bse", catalogue.model_names())[0] == "uncased-base"
    assert catalogue.close_matches("TINY", catalogue.model_names()) == ["tiny"]
    assert catalogue.close_matches("zzzzzz", catalogue.model_names()) == []


def test_human_count():
    assert catalogue.human_count(110_106_428) == "110M"
    assert catalogue.human_count(4_433_468) == "4.4M"
