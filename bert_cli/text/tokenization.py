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
"""

from __future__ import annotations

import re
import unicodedata
from itertools import chain, islice
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..errors import InputError, NotFoundError

__all__ = [
    "BasicTokenizer",
    "FullTokenizer",
    "WordpieceTokenizer",
    "convert_to_unicode",
    "load_vocab",
    "packaged_vocab_path",
    "whitespace_tokenize",
    "SPECIAL_TOKENS",
]

#: The special tokens that ``keep_special_tokens=True`` keeps whole when they appear in raw text.
SPECIAL_TOKENS = ("[UNK]", "[CLS]", "[SEP]", "[MASK]", "[PAD]")

DEFAULT_CACHE_SIZE = 1 << 17
_VOCAB_HINT = "give a BERT vocab.txt (one token per line), e.g. --vocab-file uncased_L-12_H-768_A-12/vocab.txt"

# --------------------------------------------------------------------------------------------
# Character classes (the original's predicates, plus cached lookups for the hot paths)
# --------------------------------------------------------------------------------------------

_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)

#: Characters Python's ``str.split()`` treats as whitespace but the original deletes (Cc).
_SPLIT_CONTROLS = "\x0b\x0c\x1c\x1d\x1e\x1f\x85"
_SPLIT_CONTROLS_TABLE = {ord(c): None for c in _SPLIT_CONTROLS}
#: Word separators of the original: Python whitespace minus the Cc characters above.
_SEPARATORS = "\t\n\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_CHUNK_RE = re.compile(f"[^{_SEPARATORS}]+")

#: ASCII characters the original deletes (controls other than \t \n \r, and NUL).
_ASCII_DELETE_TABLE = {i: None for i in list(range(0, 9)) + [11, 12] + list(range(14, 32)) + [127]}
_ASCII_PUNCT = r"!-/:-@\[-`{-~"
_ASCII_WORD_RE = re.compile(f"[{_ASCII_PUNCT}]|[^{_ASCII_PUNCT}]+")


def _is_whitespace(char: str) -> bool:
    """The original's whitespace: space, tab, newline, carriage return, category Zs."""
    if char in " \t\n\r":
        return True
    return unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    """The original's control characters: categories Cc and Cf, except tab, newline, CR."""
    if char in "\t\n\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char: str) -> bool:
    """ASCII 33-47, 58-64, 91-96, 123-126 (``$``, ``^``, ... too) and Unicode ``P*``."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_chinese_char(cp: int) -> bool:
    """A code point in one of the CJK ideograph blocks the original pads with spaces."""
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


# Character classes of the general path, cached per character.
_KEEP, _DELETE, _CJK = 0, 1, 2
_CHAR_CLASS: dict[str, int] = {}
# Per-character class after lower-casing: 0 word char, 1 punctuation, 2 whitespace.
_WORD, _PUNCT, _SPACE = 0, 1, 2
_PUNCT_CLASS: dict[str, int] = {}
# Per-character ``lower()`` + NFD + drop Mn (used only to map offsets back).
_LOWER_STRIP: dict[str, str] = {}


def _char_class(char: str) -> int:
    """Deleted by the cleaning step, a CJK ideograph, or kept (cached)."""
    cls = _CHAR_CLASS.get(char)
    if cls is None:
        cp = ord(char)
        if cp == 0 or cp == 0xFFFD or _is_control(char):
            cls = _DELETE
        elif _is_chinese_char(cp):
            cls = _CJK
        else:
            cls = _KEEP
        _CHAR_CLASS[char] = cls
    return cls


def _punct_class(char: str) -> int:
    """Word character, punctuation (split off alone) or whitespace (separator), cached."""
    cls = _PUNCT_CLASS.get(char)
    if cls is None:
        cls = _PUNCT if _is_punctuation(char) else _SPACE if char.isspace() else _WORD
        _PUNCT_CLASS[char] = cls
    return cls


def _strip_accents(text: str) -> str:
    """NFD, then drop category Mn (the original's ``_run_strip_accents``)."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFD", text)
    return "".join(c for c in text if unicodedata.category(c) != "Mn")


def _lower_strip_char(char: str) -> str:
    out = _LOWER_STRIP.get(char)
    if out is None:
        out = _LOWER_STRIP[char] = _strip_accents(char.lower())
    return out


# --------------------------------------------------------------------------------------------
# Vocabulary and text helpers
# --------------------------------------------------------------------------------------------


def convert_to_unicode(text: str | bytes) -> str:
    """``str`` unchanged; ``bytes`` decoded as UTF-8 with invalid bytes dropped (as the original)."""
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray)):
        return bytes(text).decode("utf-8", "ignore")
    raise ValueError(f"Unsupported string type: {type(text)}")


def whitespace_tokenize(text: str) -> list[str]:
    """The original's ``whitespace_tokenize``: ``str.split()``."""
    return text.split()


def packaged_vocab_path() -> Path:
    """Google's uncased BERT vocabulary shipped with ``bert`` (works offline)."""
    from ..resources import path

    return path("uncased_vocab.txt")


def load_vocab(path: str | Path) -> dict[str, int]:
    """Read a vocab.txt as the original: one token per line, ``strip()``, index = line number.

    On duplicate tokens the last index wins while the token keeps its first position in
    iteration order. Lines are split on ``\\n`` only (as ``tf.gfile``); invalid UTF-8 is dropped.

    Raises NotFoundError when the file is missing, InputError when it is empty or has no ``[UNK]``.
    """
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"vocabulary file not found: {p}", hint=_VOCAB_HINT)
    data = p.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    vocab: dict[str, int] = {}
    for index, line in enumerate(lines):
        vocab[line.decode("utf-8", "ignore").strip()] = index
    if not vocab:
        raise InputError("the vocabulary file is empty", path=p, hint=_VOCAB_HINT)
    if "[UNK]" not in vocab:
        raise InputError("the vocabulary has no [UNK] token; is this a BERT vocab.txt?", path=p, hint=_VOCAB_HINT)
    return vocab


def _special_regex(tokens: Iterable[str]) -> re.Pattern | None:
    toks = sorted({t for t in tokens if t}, key=len, reverse=True)
    if not toks:
        return None
    return re.compile("|".join(re.escape(t) for t in toks))


def _split_specials(text: str, regex: re.Pattern) -> list[tuple[bool, str, int]]:
    """Cut ``text`` into (is_special, segment, start) parts around the special tokens."""
    parts: list[tuple[bool, str, int]] = []
    pos = 0
    for m in regex.finditer(text):
        if m.start() > pos:
            parts.append((False, text[pos : m.start()], pos))
        parts.append((True, m.group(), m.start()))
        pos = m.end()
    if pos < len(text):
        parts.append((False, text[pos:], pos))
    return parts


def _has_split_controls(text: str) -> bool:
    """Whether ``text`` holds a Cc character that ``str.split()`` splits on (7 fast scans)."""
    return (
        "\x1c" in text
        or "\x1d" in text
        or "\x1e" in text
        or "\x1f" in text
        or "\x0b" in text
        or "\x0c" in text
        or "\x85" in text
    )


def _chunks(text: str) -> list[str]:
    """Whitespace-delimited chunks of raw text, exactly the original's word boundaries.

    The few Cc characters that ``str.split()`` would split on are removed first.
    """
    if _has_split_controls(text):
        text = text.translate(_SPLIT_CONTROLS_TABLE)
    return text.split()


def _chunk_starts(text: str) -> Iterable[tuple[str, int]]:
    """(chunk, start offset) of each raw chunk of ``text`` (chunks may hold deleted controls)."""
    if _has_split_controls(text):
        return [(m.group(), m.start()) for m in _CHUNK_RE.finditer(text)]
    out = []
    pos = 0
    find = text.find
    for chunk in text.split():
        pos = find(chunk, pos)
        out.append((chunk, pos))
        pos += len(chunk)
    return out


# --------------------------------------------------------------------------------------------
# Basic tokenization of one chunk (raw text without separator whitespace)
# --------------------------------------------------------------------------------------------

# A "spanned word" is (word, starts, ends): starts[k]/ends[k] are the character offsets in the
# chunk of the raw text that produced character k of the (lower-cased, accent-stripped) word.
SpannedWord = tuple[str, Sequence[int], Sequence[int]]


def _ascii_words(chunk: str, lower: bool) -> list[str]:
    """Fast path for an ASCII chunk: delete controls, lower-case, split off punctuation."""
    if not chunk.isprintable():
        chunk = chunk.translate(_ASCII_DELETE_TABLE)
    if lower:
        chunk = chunk.lower()
    return _ASCII_WORD_RE.findall(chunk)


def _ascii_spanned_words(chunk: str, lower: bool) -> list[SpannedWord] | None:
    """Fast path with offsets for an ASCII chunk without control characters (else None)."""
    if not chunk.isprintable():
        return None
    if lower:
        chunk = chunk.lower()
    out: list[SpannedWord] = []
    for m in _ASCII_WORD_RE.finditer(chunk):
        s, e = m.span()
        out.append((m.group(), range(s, e), range(s + 1, e + 1)))
    return out


def _lower_with_spans(word: str, idx: list[int]) -> tuple[str, Sequence[int], Sequence[int]]:
    """``lower()`` + NFD + drop Mn on the whole word (exact), with per-character raw offsets."""
    text = _strip_accents(word.lower())
    starts: list[int] = []
    for c, i in zip(word, idx):
        starts.extend([i] * len(_lower_strip_char(c)))
    if len(starts) == len(text):
        # Same length as the per-character transform (also when final-sigma lower-casing or
        # canonical reordering changed a character): map position by position.
        return text, starts, [i + 1 for i in starts]
    n = len(text)  # should not happen; fall back to the span of the whole word
    return text, [idx[0]] * n, [idx[-1] + 1] * n


def _general_spanned_words(chunk: str, lower: bool) -> list[SpannedWord]:
    """The exact path for any chunk: clean, split CJK, lower + strip accents, split punctuation."""
    pieces: list[tuple[str, list[int]]] = []
    buf: list[str] = []
    idx: list[int] = []
    for i, c in enumerate(chunk):
        cls = _CHAR_CLASS.get(c)
        if cls is None:
            cls = _char_class(c)
        if cls == _KEEP:
            buf.append(c)
            idx.append(i)
        elif cls == _CJK:
            if buf:
                pieces.append(("".join(buf), idx))
                buf, idx = [], []
            pieces.append((c, [i]))
    if buf:
        pieces.append(("".join(buf), idx))

    out: list[SpannedWord] = []
    for word, widx in pieces:
        if lower:
            text, starts, ends = _lower_with_spans(word, widx)
        else:
            text, starts, ends = word, widx, [i + 1 for i in widx]
        run = 0
        for k, c in enumerate(text):
            cls = _PUNCT_CLASS.get(c)
            if cls is None:
                cls = _punct_class(c)
            if cls == _WORD:
                continue
            if k > run:
                out.append((text[run:k], starts[run:k], ends[run:k]))
            if cls == _PUNCT:
                out.append((c, starts[k : k + 1], ends[k : k + 1]))
            run = k + 1
        if len(text) > run:
            out.append((text[run:], starts[run:], ends[run:]))
    return out


class BasicTokenizer:
    """The original ``BasicTokenizer``: cleaning, CJK split, lower-casing, punctuation split.

    ``keep_special_tokens=True`` keeps ``special_tokens`` (default :data:`SPECIAL_TOKENS`) whole
    wherever they appear in the raw text (case-sensitive); the original has no such option.
    """

    def __init__(
        self,
        do_lower_case: bool = True,
        keep_special_tokens: bool = False,
        special_tokens: Iterable[str] = (),
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.do_lower_case = bool(do_lower_case)
        self.keep_special_tokens = bool(keep_special_tokens)
        self.special_tokens = tuple(special_tokens) or (SPECIAL_TOKENS if keep_special_tokens else ())
        self._special_re = _special_regex(self.special_tokens) if keep_special_tokens else None
        self._fast_ascii = True  # tests switch this off to compare with the general path
        self._cache_size = max(1, int(cache_size))
        self._cache: dict[str, list[str]] = {}

    # Chunk-level work (no caching) ------------------------------------------------------------
    def chunk_words(self, chunk: str) -> list[str]:
        """Basic tokens of one whitespace-free chunk of raw text."""
        if self._fast_ascii and chunk.isascii():
            return _ascii_words(chunk, self.do_lower_case)
        return [w for w, _, _ in _general_spanned_words(chunk, self.do_lower_case)]

    def chunk_spanned_words(self, chunk: str) -> list[SpannedWord]:
        """Basic tokens of one chunk with per-character offsets into the chunk."""
        if self._fast_ascii and chunk.isascii():
            out = _ascii_spanned_words(chunk, self.do_lower_case)
            if out is not None:
                return out
        return _general_spanned_words(chunk, self.do_lower_case)

    # Public -------------------------------------------------------------------------------------
    def tokenize(self, text: str | bytes) -> list[str]:
        """Basic tokens of ``text`` (as the original ``BasicTokenizer.tokenize``)."""
        text = convert_to_unicode(text)
        if self._special_re is not None and "[" in text:
            out: list[str] = []
            for special, segment, _ in _split_specials(text, self._special_re):
                out.extend([segment] if special else self._tokenize_plain(segment))
            return out
        return self._tokenize_plain(text)

    def _tokenize_plain(self, text: str) -> list[str]:
        cache = self._cache
        out: list[str] = []
        for chunk in _chunks(text):
            words = cache.get(chunk)
            if words is None:
                words = self.chunk_words(chunk)
                if len(cache) >= self._cache_size:
                    cache.clear()
                cache[chunk] = words
            out.extend(words)
        return out


# --------------------------------------------------------------------------------------------
# WordPiece
# --------------------------------------------------------------------------------------------


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece with the ``##`` continuation prefix (the original's)."""

    def __init__(self, vocab: Mapping[str, int], unk_token: str = "[UNK]", max_input_chars_per_word: int = 200) -> None:
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        # No vocabulary entry is longer than this, so longer candidates need no lookup.
        self._max_token_len = max((len(t) for t in vocab), default=1) or 1

    def split_word(self, word: str) -> list[str] | None:
        """WordPieces of one basic token, or None when it becomes ``[UNK]``."""
        n = len(word)
        if n > self.max_input_chars_per_word:
            return None
        vocab = self.vocab
        if word in vocab:
            return [word]
        pieces: list[str] = []
        start = 0
        limit = self._max_token_len
        while start < n:
            end = min(n, start + limit)
            while start < end:
                sub = word[start:end] if start == 0 else "##" + word[start:end]
                if sub in vocab:
                    break
                end -= 1
            else:
                return None
            pieces.append(sub)
            start = end
        return pieces

    def tokenize_word(self, word: str) -> list[str]:
        """WordPieces of one basic token (``[UNK]`` if it cannot be covered)."""
        pieces = self.split_word(word)
        return [self.unk_token] if pieces is None else pieces

    def tokenize(self, text: str | bytes) -> list[str]:
        """WordPieces of whitespace-separated, already basic-tokenized text (as the original)."""
        out: list[str] = []
        for word in whitespace_tokenize(convert_to_unicode(text)):
            out.extend(self.tokenize_word(word))
        return out


# --------------------------------------------------------------------------------------------
# FullTokenizer
# --------------------------------------------------------------------------------------------


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
            raise InputError("the vocabulary has no [UNK] token", hint=_VOCAB_HINT)
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
            return _ascii_words(chunk, self.do_lower_case)
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
            for special, segment, _ in _split_specials(text, self._special_re):
                out.extend([segment] if special else self._plain_tokens(segment))
            return out
        return self._plain_tokens(text)

    def _plain_tokens(self, text: str) -> list[str]:
        chunks = _chunks(text)
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
        chunks = _chunks(text)
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
            for special, segment, base in _split_specials(text, self._special_re):
                if special:
                    out.append((segment, self.vocab[segment], base, base + len(segment)))
                else:
                    out.extend(self._plain_offsets(segment, base))
            return out
        return self._plain_offsets(text, 0)

    def _plain_offsets(self, text: str, base: int) -> list[tuple[str, int, int, int]]:
        out: list[tuple[str, int, int, int]] = []
        get = self._off_cache.get
        for chunk, start in _chunk_starts(text):
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
