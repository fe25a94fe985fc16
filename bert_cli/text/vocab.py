"""BERT vocabularies: :func:`load_vocab` reads a vocab.txt as the original does, and
:func:`packaged_vocab_path` is Google's uncased vocabulary shipped with ``bert``. Pure Python.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError, NotFoundError

#: The hint of every "no usable vocabulary" error.
VOCAB_HINT = "give a BERT vocab.txt (one token per line), e.g. --vocab-file uncased_L-12_H-768_A-12/vocab.txt"


def packaged_vocab_path() -> Path:
    """Google's uncased BERT vocabulary shipped with ``bert`` (works offline)."""
    from ..resources import UNCASED_VOCAB, path

    return path(UNCASED_VOCAB)


def load_vocab(path: str | Path) -> dict[str, int]:
    """Read a vocab.txt as the original: one token per line, ``strip()``, index = line number.

    On duplicate tokens the last index wins while the token keeps its first position in
    iteration order. Lines are split on ``\\n`` only (as ``tf.gfile``); invalid UTF-8 is dropped.

    Raises NotFoundError when the file is missing, InputError when it is empty or has no ``[UNK]``.
    """
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"vocabulary file not found: {p}", hint=VOCAB_HINT)
    data = p.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    vocab: dict[str, int] = {}
    for index, line in enumerate(lines):
        vocab[line.decode("utf-8", "ignore").strip()] = index
    if not vocab:
        raise InputError("the vocabulary file is empty", path=p, hint=VOCAB_HINT)
    if "[UNK]" not in vocab:
        raise InputError("the vocabulary has no [UNK] token; is this a BERT vocab.txt?", path=p, hint=VOCAB_HINT)
    return vocab
