"""The original ``BasicTokenizer`` (cleaning, CJK split, lower-casing, punctuation split) and the
raw-text helpers every tokenizer shares: :func:`convert_to_unicode`, the whitespace chunks of
raw text (:func:`raw_chunks`, :func:`chunk_starts`) and the special-token split. Pure Python.

Every step before WordPiece is local to a whitespace-delimited chunk of the raw text (only a
few Cc characters must be removed before splitting). Chunk results are computed by a fast path
for ASCII chunks (``translate`` + one regex, :func:`ascii_words`) and an exact general path for
the rest; both are tested to agree.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable, Sequence

#: The special tokens that ``keep_special_tokens=True`` keeps whole when they appear in raw text.
SPECIAL_TOKENS = ("[UNK]", "[CLS]", "[SEP]", "[MASK]", "[PAD]")

DEFAULT_CACHE_SIZE = 1 << 17

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
# Text helpers
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


def _special_regex(tokens: Iterable[str]) -> re.Pattern | None:
    toks = sorted({t for t in tokens if t}, key=len, reverse=True)
    if not toks:
        return None
    return re.compile("|".join(re.escape(t) for t in toks))


def split_specials(text: str, regex: re.Pattern) -> list[tuple[bool, str, int]]:
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


def raw_chunks(text: str) -> list[str]:
    """Whitespace-delimited chunks of raw text, exactly the original's word boundaries.

    The few Cc characters that ``str.split()`` would split on are removed first.
    """
    if _has_split_controls(text):
        text = text.translate(_SPLIT_CONTROLS_TABLE)
    return text.split()


def chunk_starts(text: str) -> Iterable[tuple[str, int]]:
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


def ascii_words(chunk: str, lower: bool) -> list[str]:
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
            return ascii_words(chunk, self.do_lower_case)
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
            for special, segment, _ in split_specials(text, self._special_re):
                out.extend([segment] if special else self._tokenize_plain(segment))
            return out
        return self._tokenize_plain(text)

    def _tokenize_plain(self, text: str) -> list[str]:
        cache = self._cache
        out: list[str] = []
        for chunk in raw_chunks(text):
            words = cache.get(chunk)
            if words is None:
                words = self.chunk_words(chunk)
                if len(cache) >= self._cache_size:
                    cache.clear()
                cache[chunk] = words
            out.extend(words)
        return out
