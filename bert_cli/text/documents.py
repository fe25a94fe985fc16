"""Pretraining text before instances: documents from lines (:func:`iter_documents`), shards of
documents for the sharded mode (:func:`iter_shards`) and documents tokenized into ids
(:func:`tokenize_documents`). Pure Python.
"""

from __future__ import annotations

from collections import deque
from typing import Iterable, Iterator, Mapping, Sequence

from ..errors import InputError


def iter_documents(lines: Iterable[str]) -> Iterator[list[str]]:
    """Group stripped lines into documents (blank line = new document); no empty documents.

    Documents run on across file boundaries, as in the original (which only starts a new
    document at a blank line).
    """
    document: list[str] = []
    for line in lines:
        if line:
            document.append(line)
        elif document:
            yield document
            document = []
    if document:
        yield document


def document_chars(document: Sequence[str]) -> int:
    return sum(len(line) for line in document) + len(document)


def iter_shards(
    documents: Iterable[list[str]], shard_chars: int, min_documents: int = 2
) -> Iterator[list[list[str]]]:
    """Cut a document stream into shards of about ``shard_chars`` characters.

    A shard is closed at the first document boundary at or past ``shard_chars``, once it has
    ``min_documents`` documents. The generator reads only ``min_documents`` documents ahead,
    so that the last shard never ends up with fewer than ``min_documents`` documents (unless
    the whole stream has fewer): it holds at most one shard plus that look-ahead.
    """
    lookahead: deque[list[str]] = deque()
    shard: list[list[str]] = []
    size = 0
    for document in documents:
        lookahead.append(document)
        if len(lookahead) <= min_documents:
            continue
        doc = lookahead.popleft()
        shard.append(doc)
        size += document_chars(doc)
        if size >= shard_chars and len(shard) >= min_documents:
            yield shard
            shard, size = [], 0
    shard.extend(lookahead)
    if shard:
        yield shard


def tokenize_documents(
    documents: Iterable[Sequence[str]], tokenizer, vocab: Mapping[str, int] | None = None
) -> list[list[list[int]]]:
    """Tokenize each line of each document into ids; drop lines and documents left empty."""
    vocab = tokenizer.vocab if vocab is None else vocab
    encode = getattr(tokenizer, "encode", None)  # FullTokenizer's text -> ids fast path
    if encode is None:
        tokenize = tokenizer.tokenize

        def encode(line: str) -> list[int]:
            try:
                return [vocab[t] for t in tokenize(line)]
            except KeyError as exc:
                raise InputError(
                    f"the tokenizer produced {exc.args[0]!r}, which is not in the vocabulary"
                ) from None

    out: list[list[list[int]]] = []
    for document in documents:
        segments = [ids for ids in map(encode, document) if ids]
        if segments:
            out.append(segments)
    return out

