"""The catalogue: every model Google's original BERT README released, and the public task data.

Each model has a short name users type (``uncased-base``), the directory name of its original
zip (``uncased_L-12_H-768_A-12``, also accepted as a name), its casing (recorded from the
README, never guessed from a path), its sizes, the Google zip URL and a Hugging Face Hub mirror.

URLs can be redirected (mirrors, tests):

* ``BERT_GOOGLE_BASE_URL`` replaces ``https://storage.googleapis.com/bert_models``; a zip's URL
  is ``{base}/{date}/{directory}.zip``.
* ``BERT_DATASET_BASE_URL`` replaces every dataset file's host and path; a file's URL becomes
  ``{base}/{dataset name}/{file name of the original URL}``.

Pure Python, no TensorFlow.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field

GOOGLE_BASE_URL = "https://storage.googleapis.com/bert_models"

# Vocabulary sizes of the released vocab.txt files (line counts).
_VOCAB_UNCASED = 30522
_VOCAB_CASED = 28996
_VOCAB_MULTI_CASED = 119547
_VOCAB_MULTI_UNCASED = 105879
_VOCAB_CHINESE = 21128


def normalize(name: str) -> str:
    """Key used for look-ups: case-insensitive, ``_`` and ``-`` equivalent, no surrounding space."""
    return name.strip().lower().replace("_", "-")


@dataclass(frozen=True)
class ModelEntry:
    """One released model."""

    name: str
    directory: str  # the original zip's directory name, e.g. "uncased_L-12_H-768_A-12"
    date: str  # the release folder on storage.googleapis.com, e.g. "2018_10_18"
    do_lower_case: bool
    layers: int
    hidden: int
    heads: int
    vocab_size: int
    hf_repo: str
    description: str
    aliases: tuple[str, ...] = ()
    accept_directory_name: bool = True  # False when another entry owns the same directory name
    zip_sha256: str | None = None  # only where verified; otherwise sha256 is recorded at download time
    intermediate: int = 0  # 0: 4 * hidden (every released BERT)
    max_position: int = 512
    type_vocab: int = 2

    @property
    def intermediate_size(self) -> int:
        return self.intermediate or 4 * self.hidden

    def zip_url(self, base: str | None = None) -> str:
        """The Google zip URL, under ``base`` or ``$BERT_GOOGLE_BASE_URL`` when given."""
        base = (base or os.environ.get("BERT_GOOGLE_BASE_URL") or GOOGLE_BASE_URL).rstrip("/")
        return f"{base}/{self.date}/{self.directory}.zip"

    @property
    def casing(self) -> str:
        return "uncased" if self.do_lower_case else "cased"

    @property
    def encoder_parameters(self) -> int:
        """Parameters of the encoder (embeddings, layers, pooler), as a Hub ``BertModel`` has."""
        h, i, v = self.hidden, self.intermediate_size, self.vocab_size
        embeddings = (v + self.max_position + self.type_vocab) * h + 2 * h
        layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h
        pooler = h * h + h
        return embeddings + self.layers * layer + pooler

    @property
    def parameters(self) -> int:
        """Parameters of the released checkpoint: the encoder plus the MLM and NSP heads."""
        h, v = self.hidden, self.vocab_size
        mlm = (h * h + h) + 2 * h + v  # transform dense, LayerNorm, output bias (decoder is tied)
        nsp = 2 * h + 2
        return self.encoder_parameters + mlm + nsp

    def bert_config(self) -> dict:
        """The ``bert_config.json`` the original release ships for this model."""
        return {
            "attention_probs_dropout_prob": 0.1,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "hidden_size": self.hidden,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_position,
            "num_attention_heads": self.heads,
            "num_hidden_layers": self.layers,
            "type_vocab_size": self.type_vocab,
            "vocab_size": self.vocab_size,
        }

    def config_mismatches(self, config) -> list[str]:
        """Where a model config (anything with ``hidden_size``, ``num_hidden_layers``, ...) contradicts
        this entry's sizes, e.g. ``["hidden_size 384 (catalogue: 768)"]``; empty when it agrees."""
        expected = {
            "num_hidden_layers": self.layers,
            "hidden_size": self.hidden,
            "num_attention_heads": self.heads,
            "vocab_size": self.vocab_size,
        }
        found = {key: getattr(config, key, None) for key in expected}
        return [f"{key} {found[key]} (catalogue: {value})" for key, value in expected.items() if found[key] != value]

    def names(self) -> tuple[str, ...]:
        """Every name this entry answers to (short name, aliases, directory name)."""
        extra = (self.directory,) if self.accept_directory_name else ()
        return (self.name, *self.aliases, *extra)


@dataclass(frozen=True)
class DatasetFile:
    """One file of a dataset: where it comes from and, where verified, its sha256."""

    url: str
    sha256: str | None = None

    @property
    def filename(self) -> str:
        return self.url.split("?")[0].rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DatasetEntry:
    """Public task data fetched into ``<cache>/datasets/<name>/`` in the layout finetuning reads."""

    name: str
    kind: str  # "squad" (copy), "glue-mrpc" (original formatting recipe), "glue-zip" (extract)
    description: str
    files: tuple[DatasetFile, ...]
    outputs: tuple[str, ...]  # the files the dataset folder holds once installed
    zip_folder: str = ""  # glue-zip: the folder inside the zip holding the .tsv files
    aliases: tuple[str, ...] = field(default=())

    def url(self, f: DatasetFile, base: str | None = None) -> str:
        """A file's URL, under ``base`` or ``$BERT_DATASET_BASE_URL`` when given."""
        base = base or os.environ.get("BERT_DATASET_BASE_URL")
        if base:
            return f"{base.rstrip('/')}/{self.name}/{f.filename}"
        return f.url

    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


def _google(name, directory, date, lower, layers, hidden, heads, vocab, hf, description, aliases=(), accept_dir=True):
    return ModelEntry(
        name=name,
        directory=directory,
        date=date,
        do_lower_case=lower,
        layers=layers,
        hidden=hidden,
        heads=heads,
        vocab_size=vocab,
        hf_repo=hf,
        description=description,
        aliases=tuple(aliases),
        accept_directory_name=accept_dir,
    )


_ORIGINAL = (
    _google("uncased-base", "uncased_L-12_H-768_A-12", "2018_10_18", True, 12, 768, 12, _VOCAB_UNCASED,
            "google-bert/bert-base-uncased", "BERT-Base, Uncased"),
    _google("uncased-large", "uncased_L-24_H-1024_A-16", "2018_10_18", True, 24, 1024, 16, _VOCAB_UNCASED,
            "google-bert/bert-large-uncased", "BERT-Large, Uncased"),
    _google("cased-base", "cased_L-12_H-768_A-12", "2018_10_18", False, 12, 768, 12, _VOCAB_CASED,
            "google-bert/bert-base-cased", "BERT-Base, Cased"),
    _google("cased-large", "cased_L-24_H-1024_A-16", "2018_10_18", False, 24, 1024, 16, _VOCAB_CASED,
            "google-bert/bert-large-cased", "BERT-Large, Cased"),
    _google("multi-cased-base", "multi_cased_L-12_H-768_A-12", "2018_11_23", False, 12, 768, 12, _VOCAB_MULTI_CASED,
            "google-bert/bert-base-multilingual-cased", "BERT-Base, Multilingual Cased (104 languages)"),
    _google("multi-uncased-base", "multilingual_L-12_H-768_A-12", "2018_11_03", True, 12, 768, 12, _VOCAB_MULTI_UNCASED,
            "google-bert/bert-base-multilingual-uncased", "BERT-Base, Multilingual Uncased (102 languages; not recommended)"),
    _google("chinese-base", "chinese_L-12_H-768_A-12", "2018_11_03", True, 12, 768, 12, _VOCAB_CHINESE,
            "google-bert/bert-base-chinese", "BERT-Base, Chinese (Simplified and Traditional)"),
    _google("wwm-uncased-large", "wwm_uncased_L-24_H-1024_A-16", "2019_05_30", True, 24, 1024, 16, _VOCAB_UNCASED,
            "google-bert/bert-large-uncased-whole-word-masking", "BERT-Large, Uncased (Whole Word Masking)"),
    _google("wwm-cased-large", "wwm_cased_L-24_H-1024_A-16", "2019_05_30", False, 24, 1024, 16, _VOCAB_CASED,
            "google-bert/bert-large-cased-whole-word-masking", "BERT-Large, Cased (Whole Word Masking)"),
)

# The 24 small BERTs of 2020 ("Well-Read Students Learn Better"), all uncased, A = H / 64.
_SMALL_ALIASES = {(2, 128): ("tiny",), (4, 256): ("mini",), (4, 512): ("small",), (8, 512): ("medium",)}
_SMALL_NAMES = {(2, 128): "Tiny", (4, 256): "Mini", (4, 512): "Small", (8, 512): "Medium", (12, 768): "Base"}


def _small(layers: int, hidden: int) -> ModelEntry:
    heads = hidden // 64
    directory = f"uncased_L-{layers}_H-{hidden}_A-{heads}"
    label = _SMALL_NAMES.get((layers, hidden))
    description = f"Small BERT L={layers} H={hidden} A={heads}, uncased" + (f" (BERT-{label})" if label else "")
    return _google(
        f"uncased-L-{layers}-H-{hidden}",
        directory,
        "2020_02_20",
        True,
        layers,
        hidden,
        heads,
        _VOCAB_UNCASED,
        f"google/bert_uncased_L-{layers}_H-{hidden}_A-{heads}",
        description,
        _SMALL_ALIASES.get((layers, hidden), ()),
        # uncased_L-12_H-768_A-12 names the original BERT-Base release (2018); keep it there.
        accept_dir=(layers, hidden) != (12, 768),
    )


_SMALL = tuple(_small(layers, hidden) for layers in (2, 4, 6, 8, 10, 12) for hidden in (128, 256, 512, 768))

MODELS: tuple[ModelEntry, ...] = _ORIGINAL + _SMALL

_SQUAD = "https://rajpurkar.github.io/SQuAD-explorer/dataset"
DATASETS: tuple[DatasetEntry, ...] = (
    DatasetEntry(
        name="squad-v1.1",
        kind="squad",
        description="SQuAD v1.1 train and dev (JSON)",
        files=(
            DatasetFile(f"{_SQUAD}/train-v1.1.json"),
            # sha256 of the official dev set, as kept in the project's reference data (4,854,279 bytes).
            DatasetFile(f"{_SQUAD}/dev-v1.1.json", "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9"),
        ),
        outputs=("train-v1.1.json", "dev-v1.1.json"),
        aliases=("squad", "squad-v1"),
    ),
    DatasetEntry(
        name="squad-v2.0",
        kind="squad",
        description="SQuAD v2.0 train and dev (JSON)",
        files=(DatasetFile(f"{_SQUAD}/train-v2.0.json"), DatasetFile(f"{_SQUAD}/dev-v2.0.json")),
        outputs=("train-v2.0.json", "dev-v2.0.json"),
        aliases=("squad-v2", "squad2"),
    ),
    DatasetEntry(
        name="glue-mrpc",
        kind="glue-mrpc",
        description="GLUE MRPC (train/dev/test.tsv, built from the MSR corpus as download_glue_data.py)",
        files=(
            DatasetFile("https://dl.fbaipublicfiles.com/senteval/senteval_data/msr_paraphrase_train.txt"),
            DatasetFile("https://dl.fbaipublicfiles.com/senteval/senteval_data/msr_paraphrase_test.txt"),
            DatasetFile("https://dl.fbaipublicfiles.com/glue/data/mrpc_dev_ids.tsv"),
        ),
        outputs=("train.tsv", "dev.tsv", "test.tsv"),
        aliases=("mrpc",),
    ),
    DatasetEntry(
        name="glue-cola",
        kind="glue-zip",
        description="GLUE CoLA (train/dev/test.tsv)",
        files=(DatasetFile("https://dl.fbaipublicfiles.com/glue/data/CoLA.zip"),),
        outputs=("train.tsv", "dev.tsv", "test.tsv"),
        zip_folder="CoLA",
        aliases=("cola",),
    ),
)


def _index(entries) -> dict[str, object]:
    table: dict[str, object] = {}
    for entry in entries:
        for n in entry.names():
            table.setdefault(normalize(n), entry)
    return table


_MODEL_INDEX = _index(MODELS)
_HF_INDEX = {normalize(m.hf_repo): m for m in MODELS}
_DATASET_INDEX = _index(DATASETS)


def find_model(name: str) -> ModelEntry | None:
    """The entry for a short name, alias, original directory name or Hub id; None if unknown."""
    key = normalize(name)
    return _MODEL_INDEX.get(key) or _HF_INDEX.get(key)  # type: ignore[return-value]


def find_dataset(name: str) -> DatasetEntry | None:
    """The dataset entry for a name or alias; None if unknown."""
    return _DATASET_INDEX.get(normalize(name))  # type: ignore[return-value]


def model_names(include_aliases: bool = True) -> list[str]:
    """Short names (and aliases) of every catalogue model, in catalogue order."""
    out: list[str] = []
    for m in MODELS:
        out.append(m.name)
        if include_aliases:
            out.extend(m.aliases)
    return out


def dataset_names() -> list[str]:
    return [d.name for d in DATASETS]


def close_matches(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """Up to ``n`` candidates that look like ``name`` (difflib, case-insensitive)."""
    by_key = {normalize(c): c for c in candidates}
    return [by_key[k] for k in difflib.get_close_matches(normalize(name), list(by_key), n=n, cutoff=0.6)]


def human_count(n: int) -> str:
    """``110106428`` -> ``110M``; ``4385920`` -> ``4.4M``."""
    if n >= 100_000_000:
        return f"{n / 1e6:.0f}M"
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e3:.0f}K"
