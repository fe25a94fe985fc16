"""The original BERT tokenizer (``tokenization.py`` of google-research/bert), exact and fast.

Pure Python, no TensorFlow. Behaviour, including the original's quirks:

* ``convert_to_unicode``: bytes are decoded as UTF-8 with invalid bytes dropped.
* Text cleaning drops U+0000, U+FFFD and control characters (categories Cc/Cf except
  ``\\t \\n \\r``); whitespace (space, ``\\t \\n \\r``, category Zs) separates words. Python's
  ``str.split()`` also splits on a few Cc characters (``\\x0b \\x0c \\x1c-\\x1f \\x85``) that the
  original *removes*, so ``"a\\x1cb"`` is the single word ``"ab"`` here, as in the original.
  U+2028/U+2029 do separate words (the original's final ``str.split()`` splits on them).
* CJK ideographs (8 blocks) become words of their own, also for English vocabularies.
* Lower-casing (``do_lower_case``) is ``str.lower()`` on each whitespace-delimited word, then
  NFD and removal of category Mn: accents are stripped ONLY when lower-casing.
* Punctuation (ASCII 33-47, 58-64, 91-96, 123-126 and every Unicode ``P*`` category) is split off.
* WordPiece: greedy longest-match-first with ``##``; a word over 200 characters, or with any
  piece not in the vocabulary, becomes ``[UNK]`` as a whole.
* ``[MASK]`` and other special tokens in raw text are split like any text (``[``, ``mask``,
  ``]``) unless ``keep_special_tokens=True``.

Speed: every step before WordPiece is local to a whitespace-delimited chunk of the raw text
(only the Cc characters listed above must be removed before splitting), so the result of a
chunk is cached in a bounded dict and a line costs one ``str.split()`` and one dict lookup per
chunk. Chunk results are computed by a fast path for ASCII chunks (``translate`` + one regex)
and an exact general path for the rest; both are tested to agree.

This module holds :class:`FullTokenizer` and its caches; the parts live in
:mod:`bert_cli.text.basic_tokenizer` (cleaning, CJK, lower-casing, punctuation; the raw-text
helpers), :mod:`bert_cli.text.wordpiece` and :mod:`bert_cli.text.vocab`.
"""

from __future__ import annotations

from itertools import chain, islice
from pathlib import Path
from typing import Iterable, Mapping

from ..errors import InputError
from .basic_tokenizer import (
    DEFAULT_CACHE_SIZE,
    SPECIAL_TOKENS,
    BasicTokenizer,
    ascii_words,
    chunk_starts,
    convert_to_unicode,
    raw_chunks,
    split_specials,
)
from .vocab import VOCAB_HINT, load_vocab
from .wordpiece import WordpieceTokenizer

__all__ = ["FullTokenizer"]


class FullTokenizer:
    """The original ``FullTokenizer`` (basic + WordPiece) with bounded per-chunk caches.

    ``cache_size`` bounds each cache (entries); when one is full its older half is dropped.
    """

    def __init__(
        self,
        vocab_file: str | Path,
        do_lower_case: bool = True,
        keep_special_tokens: bool = False,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self._setup(load_vocab(vocab_file), do_lower_case, keep_special_tokens, cache_size)
        self.vocab_file = str(vocab_file)

    @classmethod
    def from_vocab(
        cls,
        vocab: Mapping[str, int],
        do_lower_case: bool = True,
        keep_special_tokens: bool = False,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> "FullTokenizer":
        """A tokenizer over an in-memory ``{token: id}`` vocabulary (must contain ``[UNK]``)."""
        if "[UNK]" not in vocab:
            raise InputError("the vocabulary has no [UNK] token", hint=VOCAB_HINT)
        self = cls.__new__(cls)
        self._setup(dict(vocab), do_lower_case, keep_special_tokens, cache_size)
        self.vocab_file = None
        return self

    def _setup(self, vocab: dict[str, int], do_lower_case: bool, keep_special_tokens: bool, cache_size: int) -> None:
        self.vocab = vocab
        self.inv_vocab = {v: k for k, v in vocab.items()}
        self.do_lower_case = bool(do_lower_case)
        self.keep_special_tokens = bool(keep_special_tokens)
        specials = tuple(t for t in SPECIAL_TOKENS if t in vocab) if keep_special_tokens else ()
        self.basic_tokenizer = BasicTokenizer(do_lower_case, keep_special_tokens, specials, cache_size)
        self.wordpiece_tokenizer = WordpieceTokenizer(vocab)
        self._special_re = self.basic_tokenizer._special_re
        self._unk_id = vocab["[UNK]"]
        self._cache_size = max(2, int(cache_size))
        self._tok_cache: dict[str, tuple[str, ...]] = {}
        self._id_cache: dict[str, tuple[int, ...]] = {}
        self._off_cache: dict[str, tuple[tuple[str, int, int, int], ...]] = {}
        self._word_cache: dict[str, tuple[str, ...]] = {}
        self._word_id_cache: dict[str, tuple[int, ...]] = {}

    @property
    def _fast_ascii(self) -> bool:
        return self.basic_tokenizer._fast_ascii

    @_fast_ascii.setter
    def _fast_ascii(self, value: bool) -> None:
        self.basic_tokenizer._fast_ascii = value
        self.clear_cache()

    def clear_cache(self) -> None:
        """Forget every cached chunk (results do not change; only speed does)."""
        for cache in (
            self._tok_cache,
            self._id_cache,
            self._off_cache,
            self._word_cache,
            self._word_id_cache,
            self.basic_tokenizer._cache,
        ):
            cache.clear()

    def _store(self, cache: dict, key: str, value) -> None:
        if len(cache) >= self._cache_size:
            # Drop the older half (insertion order): amortised O(1), keeps recent chunks.
            keep = dict(islice(cache.items(), len(cache) // 2, None))
            cache.clear()
            cache.update(keep)
        cache[key] = value

    # Chunk-level work ---------------------------------------------------------------------------
    def _basic_words(self, chunk: str) -> list[str]:
        """Basic tokens of one raw chunk; plain ASCII words skip the regex."""
        if chunk.isascii() and self.basic_tokenizer._fast_ascii:
            if chunk.isalnum():
                return [chunk.lower() if self.do_lower_case else chunk]
            return ascii_words(chunk, self.do_lower_case)
        return self.basic_tokenizer.chunk_words(chunk)

    def _word_pieces(self, word: str) -> tuple[str, ...]:
        pieces = self._word_cache.get(word)
        if pieces is None:
            pieces = tuple(self.wordpiece_tokenizer.tokenize_word(word))
            self._store(self._word_cache, word, pieces)
        return pieces

    def _word_ids(self, word: str) -> tuple[int, ...]:
        ids = self._word_id_cache.get(word)
        if ids is None:
            vocab = self.vocab
            ids = tuple([vocab[t] for t in self.wordpiece_tokenizer.tokenize_word(word)])
            self._store(self._word_id_cache, word, ids)
        return ids

    def _chunk_tokens(self, chunk: str) -> tuple[str, ...]:
        """WordPieces of one raw chunk (cached)."""
        pieces = self._tok_cache.get(chunk)
        if pieces is None:
            words = self._basic_words(chunk)
            get = self._word_cache.get
            if len(words) == 1:
                pieces = get(words[0]) or self._word_pieces(words[0])
            else:
                pieces = tuple(chain.from_iterable([get(w) or self._word_pieces(w) for w in words]))
            self._store(self._tok_cache, chunk, pieces)
        return pieces

    def _chunk_ids(self, chunk: str) -> tuple[int, ...]:
        """Vocabulary ids of one raw chunk (cached)."""
        ids = self._id_cache.get(chunk)
        if ids is None:
            words = self._basic_words(chunk)
            get = self._word_id_cache.get
            if len(words) == 1:
                ids = get(words[0]) or self._word_ids(words[0])
            else:
                ids = tuple(chain.from_iterable([get(w) or self._word_ids(w) for w in words]))
            self._store(self._id_cache, chunk, ids)
        return ids

    def _chunk_offsets(self, chunk: str) -> tuple[tuple[str, int, int, int], ...]:
        """(wordpiece, id, start, end) for one raw chunk, offsets relative to the chunk."""
        found = self._off_cache.get(chunk)
        if found is not None:
            return found
        out: list[tuple[str, int, int, int]] = []
        vocab = self.vocab
        split_word = self.wordpiece_tokenizer.split_word
        for word, starts, ends in self.basic_tokenizer.chunk_spanned_words(chunk):
            pieces = split_word(word)
            if pieces is None:
                out.append((self.wordpiece_tokenizer.unk_token, self._unk_id, starts[0], ends[-1]))
                continue
            pos = 0
            for piece in pieces:
                length = len(piece) if pos == 0 else len(piece) - 2
                out.append((piece, vocab[piece], starts[pos], ends[pos + length - 1]))
                pos += length
        found = tuple(out)
        self._store(self._off_cache, chunk, found)
        return found

    # Public -------------------------------------------------------------------------------------
    def tokenize(self, text: str | bytes) -> list[str]:
        """WordPiece tokens of raw text (as the original ``FullTokenizer.tokenize``)."""
        if type(text) is not str:
            text = convert_to_unicode(text)
        if self._special_re is not None and "[" in text:
            out: list[str] = []
            for special, segment, _ in split_specials(text, self._special_re):
                out.extend([segment] if special else self._plain_tokens(segment))
            return out
        return self._plain_tokens(text)

    def _plain_tokens(self, text: str) -> list[str]:
        chunks = raw_chunks(text)
        try:
            return list(chain.from_iterable(map(self._tok_cache.__getitem__, chunks)))
        except KeyError:
            get = self._tok_cache.get
            return list(chain.from_iterable([get(c) or self._chunk_tokens(c) for c in chunks]))

    def encode(self, text: str | bytes) -> list[int]:
        """Vocabulary ids of ``tokenize(text)`` (faster than tokenize + convert_tokens_to_ids)."""
        if type(text) is not str:
            text = convert_to_unicode(text)
        if self._special_re is not None and "[" in text:
            return self.convert_tokens_to_ids(self.tokenize(text))
        chunks = raw_chunks(text)
        try:
            return list(chain.from_iterable(map(self._id_cache.__getitem__, chunks)))
        except KeyError:
            get = self._id_cache.get
            return list(chain.from_iterable([get(c) or self._chunk_ids(c) for c in chunks]))

    def encode_with_offsets(self, text: str | bytes) -> list[tuple[str, int, int, int]]:
        """(wordpiece, id, start, end) for each token; offsets are ``str`` indices into ``text``.

        ``text[start:end]`` is the raw text a token came from (for a ``##`` piece, its part of the
        word). Removed characters (controls) are never inside a span's ends; the text of a span
        can differ from the token by case and accents.
        """
        if type(text) is not str:
            text = convert_to_unicode(text)
        if self._special_re is not None and "[" in text:
            out: list[tuple[str, int, int, int]] = []
            for special, segment, base in split_specials(text, self._special_re):
                if special:
                    out.append((segment, self.vocab[segment], base, base + len(segment)))
                else:
                    out.extend(self._plain_offsets(segment, base))
            return out
        return self._plain_offsets(text, 0)

    def _plain_offsets(self, text: str, base: int) -> list[tuple[str, int, int, int]]:
        out: list[tuple[str, int, int, int]] = []
        get = self._off_cache.get
        for chunk, start in chunk_starts(text):
            found = get(chunk) or self._chunk_offsets(chunk)
            s = start + base
            if len(found) == 1:
                p, i, a, e = found[0]
                out.append((p, i, s + a, s + e))
            elif s:
                out.extend([(p, i, s + a, s + e) for p, i, a, e in found])
            else:
                out.extend(found)
        return out

    def tokenize_with_offsets(self, text: str | bytes) -> list[tuple[str, int, int]]:
        """(wordpiece, start, end) with character offsets into the ORIGINAL ``text``."""
        return [(p, s, e) for p, _, s, e in self.encode_with_offsets(text)]

    def tokenize_words(self, words: Iterable[str]) -> tuple[list[str], list[int]]:
        """The README's alignment recipe: ``[CLS]`` + the tokens of each word + ``[SEP]``.

        Returns the tokens and ``orig_to_tok_map`` (index in the tokens of each word's first
        piece): ``["John", "Johanson", "'s", "house"]`` gives ``[CLS] john johan ##son ' s house
        [SEP]`` and ``[1, 2, 4, 6]``.
        """
        tokens = ["[CLS]"]
        orig_to_tok_map: list[int] = []
        for word in words:
            orig_to_tok_map.append(len(tokens))
            tokens.extend(self.tokenize(word))
        tokens.append("[SEP]")
        return tokens, orig_to_tok_map

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        """Ids of tokens (KeyError for a token not in the vocabulary, as the original)."""
        vocab = self.vocab
        return [vocab[t] for t in tokens]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ids (KeyError for an unknown id, as the original)."""
        inv = self.inv_vocab
        return [inv[i] for i in ids]
