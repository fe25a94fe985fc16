"""WordPiece (:class:`WordpieceTokenizer`): greedy longest-match-first with ``##``; a word over
200 characters, or with any piece not in the vocabulary, becomes ``[UNK]`` as a whole.
Pure Python.
"""

from __future__ import annotations

from typing import Mapping

from .basic_tokenizer import convert_to_unicode, whitespace_tokenize


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
