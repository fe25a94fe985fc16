"""Data files shipped inside the package (see README.md in this folder)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
UNCASED_VOCAB = "uncased_vocab.txt"  # Google's uncased BERT vocabulary: the default of tokenizing commands


def path(name: str) -> Path:
    """Absolute path of a bundled file (``uncased_vocab.txt``, ``sample_text.txt``, ...)."""
    return HERE / name
