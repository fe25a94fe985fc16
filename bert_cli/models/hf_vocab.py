"""The WordPiece vocabulary of a Hugging Face folder that ships ``tokenizer.json`` but no ``vocab.txt``.

Folders saved by ``tokenizers``/``transformers`` fast tokenizers (all-MiniLM-L6-v2 as shipped,
for one) carry the vocabulary only inside ``tokenizer.json`` (``model.vocab``: token -> id). The
original tokenizer and every command here read a ``vocab.txt`` (one token per line, line number =
id), so :func:`vocab_file_for` writes that file once, derived from ``tokenizer.json``, into the
cache (``<cache>/derived/vocab-<sha256 of tokenizer.json>.txt``): the model folder itself is never
modified (it may be read-only), and the same tokenizer.json always maps to the same file.

Only a WordPiece model with ids ``0..N-1`` (each once) and the ``##`` continuation prefix is
accepted; anything else (BPE, Unigram, gaps in the ids) is an :class:`~bert_cli.errors.InputError`
naming the file. No TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import InputError
from ..fileio import atomic_write

TOKENIZER_JSON = "tokenizer.json"
DERIVED = "derived"


def wordpiece_vocab(tokenizer_json: Path) -> list[str]:
    """The tokens of ``tokenizer.json``'s WordPiece model, in id order."""
    try:
        data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"cannot read the tokenizer: {exc}", path=tokenizer_json) from None
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        kind = model.get("type") if isinstance(model, dict) else None
        raise InputError(
            f"not a WordPiece tokenizer (model type {kind!r}): BERT needs a WordPiece vocabulary",
            path=tokenizer_json,
            hint="pass the model's vocab.txt with --vocab-file",
        )
    if model.get("continuing_subword_prefix", "##") != "##":
        raise InputError(f"WordPiece prefix {model['continuing_subword_prefix']!r} is not '##'", path=tokenizer_json)
    vocab: dict = model["vocab"]
    tokens: list[str | None] = [None] * len(vocab)
    for token, index in vocab.items():
        if not isinstance(index, int) or not 0 <= index < len(tokens) or tokens[index] is not None:
            raise InputError(f"token ids are not 0..{len(tokens) - 1}, each once (at {token!r}: {index!r})",
                             path=tokenizer_json)
        tokens[index] = token
    if any("\n" in t or "\r" in t for t in tokens):  # type: ignore[operator]
        raise InputError("a token contains a line break: it cannot be written as vocab.txt", path=tokenizer_json)
    return tokens  # type: ignore[return-value]


def vocab_file_for(directory: Path, cache_root: Path) -> Path | None:
    """``directory/vocab.txt`` when it exists, else one derived from ``directory/tokenizer.json``
    under ``cache_root``; None when the folder has neither."""
    vocab = directory / "vocab.txt"
    if vocab.is_file():
        return vocab
    source = directory / TOKENIZER_JSON
    if not source.is_file():
        return None
    try:
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:20]
    except OSError as exc:
        raise InputError(f"cannot read the tokenizer: {exc.strerror}", path=source) from None
    derived = cache_root / DERIVED / f"vocab-{digest}.txt"
    if not derived.is_file():
        tokens = wordpiece_vocab(source)
        with atomic_write(derived) as fh:
            fh.write("".join(t + "\n" for t in tokens))
    return derived
