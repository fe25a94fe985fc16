"""Masked-LM predictions (:func:`create_masked_lm_predictions`), in id space, and what they need:
the instance-shaping options (:class:`PretrainOptions`) and the vocabulary's ids (:class:`VocabIds`).

Everything works on token ids (ids of the vocabulary), which is equivalent to the original's
token strings: ``[CLS]``/``[SEP]`` are recognised by id, ``##`` continuation pieces by a
per-id flag, and the random replacement word is drawn from ``list(vocab.keys())`` exactly as
the original does (any entry, even ``[PAD]`` or ``[unused*]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..errors import InputError
from .draws import randint, shuffle

SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[MASK]")


# ------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class PretrainOptions:
    """The original's flags that shape instances (same names and defaults)."""

    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 10
    do_whole_word_mask: bool = False


@dataclass(frozen=True)
class VocabIds:
    """What the instance logic needs from a vocabulary, in id space."""

    cls_id: int
    sep_id: int
    mask_id: int
    random_word_ids: tuple[int, ...]  # ids of list(vocab.keys()), the original's vocab_words
    is_subword: bytes  # is_subword[id] == 1 when that token starts with "##"

    @classmethod
    def from_vocab(cls, vocab: Mapping[str, int], vocab_file: object = None) -> "VocabIds":
        """Build from a ``token -> id`` mapping; InputError when a special token is missing."""
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise InputError(
                f"vocabulary lacks {', '.join(missing)} (needed for pretraining data)",
                path=vocab_file,
                hint="use a BERT vocab.txt, e.g. the one of `bert download MODEL`",
            )
        size = max(vocab.values()) + 1 if vocab else 0
        flags = bytearray(size)
        for token, index in vocab.items():
            if token.startswith("##"):
                flags[index] = 1
        return cls(
            cls_id=vocab["[CLS]"],
            sep_id=vocab["[SEP]"],
            mask_id=vocab["[MASK]"],
            random_word_ids=tuple(vocab[w] for w in vocab.keys()),
            is_subword=bytes(flags),
        )

def create_masked_lm_predictions(
    ids: list[int], options: PretrainOptions, vocab: VocabIds, rng
) -> tuple[list[int], list[int], list[int]]:
    """Mask ``ids`` as the original: ``(masked ids, positions ascending, original ids there)``.

    Candidates are all positions but [CLS]/[SEP] (with whole-word masking, ``##`` pieces join
    the previous candidate); they are shuffled; ``num_to_predict =
    min(max_predictions_per_seq, max(1, round(len(ids) * masked_lm_prob)))``; a whole word
    that would overshoot the budget is skipped; each chosen position (each WordPiece, even
    under whole-word masking) is [MASK] 80%, kept 10%, a random vocabulary entry 10%.
    """
    cls_id, sep_id = vocab.cls_id, vocab.sep_id
    if options.do_whole_word_mask:
        is_subword = vocab.is_subword
        groups: list[list[int]] = []
        for i, t in enumerate(ids):
            if t == cls_id or t == sep_id:
                continue
            if groups and is_subword[t]:
                groups[-1].append(i)
            else:
                groups.append([i])
        shuffle(groups, rng)
    else:
        if (
            ids[0] == cls_id
            and ids[-1] == sep_id
            and ids.count(cls_id) == 1
            and ids.count(sep_id) == 2
        ):
            # the usual layout [CLS] A [SEP] B [SEP]: the candidates without a scan
            first_sep = ids.index(sep_id)
            cands = [*range(1, first_sep), *range(first_sep + 1, len(ids) - 1)]
        else:
            cands = [i for i, t in enumerate(ids) if t != cls_id and t != sep_id]
        shuffle(cands, rng)

    num_to_predict = min(
        options.max_predictions_per_seq, max(1, int(round(len(ids) * options.masked_lm_prob)))
    )
    output = list(ids)
    positions: list[int] = []
    rand = rng.random
    mask_id = vocab.mask_id
    words = vocab.random_word_ids
    last_word = len(words) - 1

    if options.do_whole_word_mask:
        # Groups are disjoint, so the original's "already covered" check never fires.
        for group in groups:
            if len(positions) >= num_to_predict:
                break
            if len(positions) + len(group) > num_to_predict:
                continue
            for index in group:  # 80/10/10 drawn for each piece
                if rand() < 0.8:
                    output[index] = mask_id
                elif rand() < 0.5:
                    pass  # keep the original token
                else:
                    output[index] = words[randint(rng, 0, last_word)]
                positions.append(index)
    else:
        for index in cands[:num_to_predict]:
            if rand() < 0.8:
                output[index] = mask_id
            elif rand() < 0.5:
                pass
            else:
                output[index] = words[randint(rng, 0, last_word)]
        positions = cands[:num_to_predict]
    positions.sort()
    return output, positions, [ids[p] for p in positions]

