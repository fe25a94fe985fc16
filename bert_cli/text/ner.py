"""Token classification (NER) data: CoNLL and JSONL readers, split discovery, the tag set and
the IOB1 -> IOB2 conversion. Pure Python, no TensorFlow.

Formats
    **CoNLL** (``.txt``, ``.conll``, ``.tsv`` or no recognised extension): one token per line,
    columns separated by spaces and/or tabs, the token in the first column and the tag in the
    last one (or in column ``tag_column``, 0-based; negative counts from the end). A blank (or
    whitespace-only) line ends a sentence. A line whose first column is ``-DOCSTART-`` ends the
    sentence too, is skipped, and starts a new document: each :class:`Sentence` keeps the
    0-based id of its document (``doc_id``; a file without ``-DOCSTART-`` is one document).
    Every line of one sentence must have the same number of columns.

    **JSONL** (``.jsonl``): one object per line, ``{"tokens": [...], "tags": [...]}`` with
    lists of strings of the same length; an optional ``"doc_id"`` (any JSON scalar) groups
    consecutive lines into documents (a new value starts a new document). Blank lines are
    skipped.

    Unlabeled input (``labeled=False``: prediction input, or a test split without tags) reads
    only the tokens: the first CoNLL column, the JSONL ``"tokens"``.

Splits (:func:`find_split_files`)
    A data dir holds ``train``, ``dev`` (or ``valid``) and ``test`` files, each with one of the
    extensions above (``train.txt``, ``dev.conll``, ``test.jsonl``, ...), or the original
    CoNLL-2003 names ``eng.train``, ``eng.testa`` (dev) and ``eng.testb`` (test). Two
    candidates for one split (``dev.txt`` and ``valid.txt``) are a UsageError.

Tags
    The tag set comes from the train split: ``"O"`` first, then the others sorted
    (:func:`discover_tags`); a dev/test tag not in it is an InputError naming file and line
    (:func:`check_known_tags`). Chunk tags are ``O`` or ``B-TYPE``/``I-TYPE``; a file in which
    an ``I-TYPE`` starts a chunk (after ``O``, another type, or at a sentence start) is IOB1
    and is converted to IOB2 (:func:`iob1_to_iob2`); conversion leaves valid IOB2 unchanged.
    Files with ``E-``/``S-`` tags (IOBES) are left as they are.

Bad content raises :class:`~bert_cli.errors.InputError` naming the file and 1-based line.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ..errors import InputError, NotFoundError, UsageError
from .lines import iter_text_lines
from .tables import read_jsonl

__all__ = [
    "DOCSTART",
    "NerData",
    "Sentence",
    "check_known_tags",
    "discover_tags",
    "find_split_files",
    "iob1_to_iob2",
    "iob2_errors",
    "is_iob1",
    "load_ner_data",
    "read_conll",
    "read_jsonl_sentences",
    "read_sentences",
    "split_tag",
    "validate_iob2",
]

DOCSTART = "-DOCSTART-"
OUTSIDE = "O"
CONLL_EXTENSIONS = (".txt", ".conll", ".tsv")
JSONL_EXTENSIONS = (".jsonl",)
SPLIT_NAMES = {
    "train": ("train", "eng.train"),
    "dev": ("dev", "valid", "eng.testa"),
    "test": ("test", "eng.testb"),
}
_COLUMN_RE = re.compile(r"[^ \t\r\n]+")
_DATA_HINT = "give --data-dir a folder with train.txt (CoNLL) or train.jsonl, and dev/test files beside it"


@dataclasses.dataclass(frozen=True)
class Sentence:
    """One sentence: its words, their tags (None when unlabeled), its document and where it was.

    ``lines[i]`` is the 1-based line of word ``i`` in ``path`` (all equal for JSONL).
    """

    words: tuple[str, ...]
    tags: tuple[str, ...] | None
    doc_id: int
    path: str
    lines: tuple[int, ...]

    def with_tags(self, tags: Sequence[str]) -> Sentence:
        return dataclasses.replace(self, tags=tuple(tags))


# ============================================================================= readers
def read_conll(path: str | Path, *, tag_column: int = -1, labeled: bool = True) -> Iterator[Sentence]:
    """The sentences of a CoNLL file (streamed); see the module doc for the format."""
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    ncols = 0
    doc_id = 0
    doc_used = False

    def flush() -> Sentence | None:
        nonlocal ncols, doc_used
        if not words:
            return None
        sentence = Sentence(tuple(words), tuple(tags) if labeled else None, doc_id, str(path), tuple(lines))
        words.clear(), tags.clear(), lines.clear()
        ncols = 0
        doc_used = True
        return sentence

    for lineno, text in enumerate(iter_text_lines(path, strip_bom=True), 1):
        cols = _COLUMN_RE.findall(text)
        if not cols or cols[0] == DOCSTART:
            done = flush()
            if done is not None:
                yield done
            if cols and doc_used:
                doc_id += 1
                doc_used = False
            continue
        if ncols and len(cols) != ncols:
            raise InputError(
                f"{len(cols)} column{'s' * (len(cols) != 1)}, but the sentence so far has {ncols} (line {lines[0]} on)",
                path=path, line=lineno, hint="every line of a sentence needs the same columns; end sentences with a blank line",
            )
        ncols = len(cols)
        if labeled:
            if len(cols) < 2:
                raise InputError("one column only: expected a token and a tag", path=path, line=lineno,
                                 hint="CoNLL lines are 'token ... tag', separated by spaces or tabs")
            try:
                tag = cols[tag_column]
            except IndexError:
                raise InputError(f"no column {tag_column} for the tag ({len(cols)} columns)", path=path,
                                 line=lineno, hint="--tag-column counts from 0; -1 is the last column") from None
            if tag_column % len(cols) == 0:
                raise InputError(f"the tag column {tag_column} is the token column", path=path, line=lineno)
            tags.append(tag)
        words.append(cols[0])
        lines.append(lineno)
    done = flush()
    if done is not None:
        yield done


def read_jsonl_sentences(path: str | Path, *, labeled: bool = True) -> Iterator[Sentence]:
    """The sentences of a JSONL file ``{"tokens": [...], "tags": [...]}`` (streamed)."""
    doc_id = -1
    last_doc: object = object()
    for lineno, obj in read_jsonl(path):
        if not isinstance(obj, dict):
            raise InputError('expected a JSON object {"tokens": [...], "tags": [...]}', path=path, line=lineno)
        words = _string_list(obj, "tokens", path, lineno)
        if not words:
            raise InputError('"tokens" is empty', path=path, line=lineno)
        tags = None
        if labeled:
            tags = _string_list(obj, "tags", path, lineno)
            if len(tags) != len(words):
                raise InputError(f'{len(words)} tokens but {len(tags)} tags', path=path, line=lineno)
        doc = obj.get("doc_id")
        if doc_id < 0 or doc != last_doc:
            doc_id += 1
            last_doc = doc
        yield Sentence(tuple(words), None if tags is None else tuple(tags), doc_id, str(path),
                       (lineno,) * len(words))


def _string_list(obj: dict, key: str, path: str | Path, line: int) -> list[str]:
    value = obj.get(key)
    if value is None:
        raise InputError(f'no "{key}" list', path=path, line=line,
                         hint='each line must be {"tokens": [...], "tags": [...]}')
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f'"{key}" must be a list of strings', path=path, line=line)
    return value


def is_jsonl(path: str | Path) -> bool:
    return Path(path).suffix.lower() in JSONL_EXTENSIONS


def read_sentences(path: str | Path, *, tag_column: int = -1, labeled: bool | None = True,
                   convert_iob1: bool = True) -> tuple[list[Sentence], bool]:
    """All sentences of one file, by its extension; returns ``(sentences, converted_from_iob1)``.

    ``labeled=None`` reads tags when the file has them (a CoNLL first line with two or more
    columns, a JSONL first object with ``"tags"``). An empty file is an InputError.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"{path}: no such file", hint=_DATA_HINT)
    if labeled is None:
        labeled = _has_tags(path)
    if is_jsonl(path):
        sentences = list(read_jsonl_sentences(path, labeled=labeled))
    else:
        sentences = list(read_conll(path, tag_column=tag_column, labeled=labeled))
    if not sentences:
        raise InputError("no sentences", path=path, hint=_DATA_HINT)
    converted = False
    if labeled and convert_iob1 and is_iob1(s.tags for s in sentences):
        sentences = [s.with_tags(iob1_to_iob2(s.tags)) for s in sentences]
        converted = True
    return sentences, converted


def _has_tags(path: Path) -> bool:
    for text in iter_text_lines(path, strip_bom=True):
        if not text.strip():
            continue
        if is_jsonl(path):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError:
                return True  # let the reader report the line
            return isinstance(obj, dict) and "tags" in obj
        cols = _COLUMN_RE.findall(text)
        if cols[0] != DOCSTART:
            return len(cols) >= 2
    return True


# ============================================================================= splits
def find_split_files(data_dir: str | Path) -> dict[str, Path]:
    """``{split: file}`` for the splits present in ``data_dir`` (see the module doc)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise NotFoundError(f"{data_dir}: no such folder", hint=_DATA_HINT)
    found: dict[str, Path] = {}
    for split, stems in SPLIT_NAMES.items():
        candidates = []
        for stem in stems:
            names = [stem] if stem.startswith("eng.") else [stem + ext for ext in CONLL_EXTENSIONS + JSONL_EXTENSIONS]
            candidates.extend(data_dir / n for n in names if (data_dir / n).is_file())
        if len(candidates) > 1:
            raise UsageError(f"{data_dir}: more than one {split} file ({', '.join(p.name for p in candidates)})",
                             hint="keep one file per split")
        if candidates:
            found[split] = candidates[0]
    return found


@dataclasses.dataclass
class NerData:
    """The splits of a data dir, their files, the train tag set and which files were IOB1."""

    tags: tuple[str, ...]
    splits: dict[str, list[Sentence]]
    files: dict[str, Path]
    converted: tuple[str, ...] = ()


def load_ner_data(data_dir: str | Path, *, tag_column: int = -1, splits: Iterable[str] = ("train", "dev", "test"),
                  tags: Sequence[str] | None = None) -> NerData:
    """Read ``splits`` of a data dir; the tag set comes from train unless ``tags`` is given
    (a resumed run or prediction). ``train`` and ``dev`` must be labeled; ``test`` may not be."""
    splits = tuple(splits)
    files = find_split_files(data_dir)
    needed = [s for s in splits if s in ("train", "dev")] + ([] if tags is not None else ["train"])
    for split in dict.fromkeys(needed):
        if split not in files:
            names = ", ".join(f"{stem}.txt/.conll/.jsonl" for stem in SPLIT_NAMES[split] if "." not in stem)
            raise NotFoundError(f"{data_dir}: no {split} file ({names})", hint=_DATA_HINT)
    data: dict[str, list[Sentence]] = {}
    converted = []
    for split in dict.fromkeys(("train",) * (tags is None) + splits):
        if split not in files:
            continue
        sentences, conv = read_sentences(files[split], tag_column=tag_column, labeled=None if split == "test" else True)
        data[split] = sentences
        if conv:
            converted.append(split)
    tag_set = tuple(tags) if tags is not None else discover_tags(data["train"])
    for split in splits:
        if split != "train" and split in data:
            check_known_tags(data[split], tag_set)
    return NerData(tag_set, {s: data[s] for s in splits if s in data}, {s: files[s] for s in splits if s in files},
                   tuple(converted))


# ============================================================================= tags
def discover_tags(sentences: Iterable[Sentence]) -> tuple[str, ...]:
    """The tags of labeled sentences: ``"O"`` first (when present), then the others sorted."""
    seen: set[str] = set()
    for s in sentences:
        if s.tags is not None:
            seen.update(s.tags)
    rest = sorted(seen - {OUTSIDE})
    return ((OUTSIDE,) if OUTSIDE in seen else ()) + tuple(rest)


def check_known_tags(sentences: Iterable[Sentence], tags: Sequence[str]) -> None:
    """InputError at the first tag not in ``tags`` (naming the file and line)."""
    known = frozenset(tags)
    for s in sentences:
        if s.tags is None:
            continue
        for i, tag in enumerate(s.tags):
            if tag not in known:
                raise InputError(f"tag {tag!r} does not occur in the train split",
                                 path=s.path, line=s.lines[i],
                                 hint=f"known tags: {' '.join(tags)}; fix the tag or add examples of it to train")


def split_tag(tag: str) -> tuple[str, str]:
    """``(prefix, type)`` of a chunk tag: ``"B-PER"`` -> ``("B", "PER")``, ``"O"`` -> ``("O", "")``.

    As ``conlleval``: the prefix is what precedes the FIRST hyphen; without a hyphen the whole
    tag is the prefix.
    """
    prefix, sep, kind = tag.partition("-")
    return (prefix, kind) if sep else (tag, "")


def _starts_chunk_as_i(prev: str, tag: str) -> bool:
    """Whether ``tag`` is an ``I-`` tag that starts a chunk after ``prev`` (IOB1 style)."""
    prefix, kind = split_tag(tag)
    if prefix != "I":
        return False
    prev_prefix, prev_kind = split_tag(prev)
    return prev_prefix not in ("B", "I") or prev_kind != kind


def iob2_errors(tags: Sequence[str]) -> list[int]:
    """Positions where ``tags`` is not IOB2: an ``I-X`` that starts a chunk."""
    return [i for i, tag in enumerate(tags) if _starts_chunk_as_i(tags[i - 1] if i else OUTSIDE, tag)]


def validate_iob2(sentence: Sentence) -> None:
    """InputError (file and line) at the first IOB2 violation of a labeled sentence."""
    if sentence.tags is None:
        return
    bad = iob2_errors(sentence.tags)
    if bad:
        i = bad[0]
        prev = sentence.tags[i - 1] if i else "the sentence start"
        raise InputError(f"tag {sentence.tags[i]!r} after {prev!r} is not IOB2 (a chunk must start with B-)",
                         path=sentence.path, line=sentence.lines[i])


def is_iob1(tag_sequences: Iterable[Sequence[str] | None]) -> bool:
    """Whether the sequences are IOB1: some ``I-X`` starts a chunk, and no ``E-``/``S-`` tags."""
    found = False
    for tags in tag_sequences:
        if tags is None:
            continue
        if any(t[:2] in ("E-", "S-") for t in tags):
            return False
        found = found or bool(iob2_errors(tags))
    return found


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """IOB1 -> IOB2: every ``I-X`` that starts a chunk becomes ``B-X``; IOB2 is unchanged."""
    out = list(tags)
    for i in iob2_errors(tags):
        out[i] = "B-" + split_tag(tags[i])[1]
    return out
