"""Sentence(-pair) classification tasks: the GLUE/XNLI readers, generic CSV/TSV/JSONL tasks
and the raw-text readers of ``bert predict``. Pure Python, no TensorFlow.

GLUE/XNLI readers (:func:`get_task`)
    The original ``run_classifier.py`` rules, byte for byte: every TSV is read with
    ``csv.reader(delimiter="\\t", quotechar=None)`` (quotes are literal: ``"b\\tc"`` is the two
    fields ``"b`` and ``c"``), from a UTF-8 file split on ``\\n`` only, as ``tf.gfile`` did. A
    UTF-8 BOM stays on the first line (MRPC's header has one; headers are skipped anyway).
    Header rules, columns, guids (``"{set}-{i}"`` with ``i`` the 0-based line index, or
    ``"{set}-{line[0]}"``) and the forced test labels (``"0"`` for MRPC/CoLA,
    ``"contradiction"`` for MNLI) are the original processors'. MNLI's mismatched splits,
    XNLI's test split and SST-2/QQP/QNLI/RTE/WNLI/STS-B are beyond the original and follow
    the GLUE files' layouts; their unlabeled test splits get the first label (``0.0`` for
    STS-B) as a placeholder, as the original does for its own test splits.

Generic tasks (``get_task("csv"|"tsv"|"jsonl", ...)``)
    The user's own files ``{split}.{ext}`` in a data dir (or explicit files), with text/label
    columns by name or 0-based index. CSV uses the standard csv quoting, TSV the original's
    literal quotes, JSONL one JSON object (keys) or array (indexes) per line. Labels are
    discovered from the train split (:meth:`Task.resolve_labels`); a blank label in train/dev
    is an InputError (in test it means "no label"); multi-label tasks read a
    delimiter-separated list (``label_separator``) or a JSON list into a ``frozenset``.

Raw input for ``bert predict`` (:func:`read_predict_input`)
    Plain lines (``A ||| B`` pairs, the original ``extract_features.py`` regex) or
    CSV/TSV/JSONL with column options; streamed, no labels.

Every reader is a generator (it streams); opening checks (missing file, unknown split or
column options) happen when :meth:`Task.read` is called. Bad content raises
:class:`~bert_cli.errors.InputError` naming the file and 1-based line; a missing split file
raises :class:`~bert_cli.errors.NotFoundError` with a hint naming the download command.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Union

from ..errors import InputError, NotFoundError, UsageError
from . import metrics as M
from .lines import iter_text_lines, split_pair
from .task_names import GENERIC_FORMATS, TASK_NAMES

Label = Union[str, float, frozenset, None]
ColumnRef = Union[int, str]

SPLITS = ("train", "dev", "test")


@dataclasses.dataclass(frozen=True)
class InputExample:
    """One example: ``label`` is a str (classification), a float (regression), a frozenset of
    str (multi-label) or None (raw prediction input)."""

    guid: str
    text_a: str
    text_b: str | None = None
    label: Label = None


# ============================================================================= low-level IO
def read_tsv(path: str | Path, *, strip_bom: bool = False) -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` per line, as the original's ``csv.reader(delimiter="\\t", quotechar=None)``.

    Quotes are literal, so one line is always one row; a blank line yields ``[]``.
    """
    reader = csv.reader(iter_text_lines(path, strip_bom=strip_bom), delimiter="\t", quotechar=None)
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as e:
        raise InputError(f"unreadable TSV row: {e}", path=path, line=reader.line_num) from None


def read_csv(path: str | Path, *, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """``(first line, fields)`` per record of a standard CSV file (quoted fields may span lines)."""
    reader = csv.reader(iter_text_lines(path, strip_bom=True), delimiter=delimiter)
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as e:
        raise InputError(f"unreadable CSV record: {e}", path=path, line=start) from None


def read_jsonl(path: str | Path) -> Iterator[tuple[int, object]]:
    """``(line, value)`` per non-blank line of a JSON Lines file."""
    for lineno, text in enumerate(iter_text_lines(path, strip_bom=True), 1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", path=path, line=lineno) from None
        if not isinstance(value, (dict, list)):
            raise InputError("expected a JSON object or array on each line", path=path, line=lineno)
        yield lineno, value


# ============================================================================= Task base
class Task:
    """A sentence(-pair) classification or regression task.

    Attributes: ``name``; ``labels`` (tuple of str, in label-id order; ``None`` for a generic
    task before :meth:`resolve_labels`; empty for regression); ``is_regression``;
    ``is_multilabel``; ``split_files`` (split -> file name relative to the data dir);
    ``metric_names`` (GLUE metrics, names from :mod:`bert_cli.text.metrics`);
    ``download_hint`` (the command that fetches the data, or None).
    """

    name: str
    labels: tuple[str, ...] | None
    is_regression: bool = False
    is_multilabel: bool = False
    split_files: Mapping[str, str]
    metric_names: tuple[str, ...]
    download_hint: str | None = None

    # ----------------------------------------------------------------- public API
    @property
    def splits(self) -> tuple[str, ...]:
        """The split names :meth:`read` accepts."""
        return tuple(self.split_files)

    @property
    def num_labels(self) -> int:
        """Output units of the classifier head (1 for regression)."""
        if self.is_regression:
            return 1
        if self.labels is None:
            raise UsageError(f"task {self.name!r} has no labels yet; call resolve_labels(data_dir) first")
        return len(self.labels)

    def split_path(self, data_dir: str | Path, split: str) -> Path:
        """Where ``split`` lives under ``data_dir`` (UsageError for an unknown split)."""
        if split not in self.split_files:
            raise UsageError(f"task {self.name!r} has no split {split!r} (splits: {', '.join(self.split_files)})")
        return Path(data_dir) / self.split_files[split]

    def read(self, data_dir: str | Path, split: str) -> Iterator[InputExample]:
        """Stream the examples of ``split`` in file order.

        Raises NotFoundError (missing file) now; InputError (bad rows, unknown labels, no
        examples) while iterating.
        """
        path = self.split_path(data_dir, split)
        if not path.is_file():
            raise NotFoundError(f"{self.name} {split} file not found: {path}", hint=self.download_hint)
        return self._checked(self._examples(path, split), path, split)

    def resolve_labels(self, data_dir: str | Path) -> Task:
        """This task with its labels known (generic tasks discover them from train)."""
        return self

    def label_map(self) -> dict[str, int]:
        """``{label: id}`` in :attr:`labels` order (the original's ``label_map``)."""
        if self.labels is None:
            raise UsageError(f"task {self.name!r} has no labels yet; call resolve_labels(data_dir) first")
        return {label: i for i, label in enumerate(self.labels)}

    def label_id(self, label: Label) -> int | float | tuple[int, ...]:
        """The training target of ``label``: class id, float score, or multi-hot tuple."""
        if self.is_regression:
            return float(label)  # type: ignore[arg-type]
        mapping = self.label_map()
        try:
            if self.is_multilabel:
                ids = {mapping[x] for x in label}  # type: ignore[union-attr]
                return tuple(1 if i in ids else 0 for i in range(len(mapping)))
            return mapping[label]  # type: ignore[index]
        except (KeyError, TypeError):
            raise InputError(f"label {label!r} is not one of the task's labels {list(mapping)}") from None

    # ----------------------------------------------------------------- internals
    def _examples(self, path: Path, split: str) -> Iterator[tuple[int, InputExample]]:
        raise NotImplementedError

    def _checked(self, rows: Iterator[tuple[int, InputExample]], path: Path, split: str) -> Iterator[InputExample]:
        """Check every label against :attr:`labels` and that the split is not empty."""
        known = None if self.labels is None or self.is_regression else frozenset(self.labels)
        count = 0
        for line, example in rows:
            if known is not None and example.label is not None and (split != "test" or self._check_test_labels):
                self._check_label(example.label, known, path, line)
            count += 1
            yield example
        if count == 0:
            raise InputError(f"no examples in the {split} split" + self._empty_reason(), path=path)

    _check_test_labels = False

    def _check_label(self, label: Label, known: frozenset, path: Path, line: int) -> None:
        values = label if isinstance(label, frozenset) else (label,)
        for value in values:
            if value not in known:
                raise InputError(
                    f"unknown label {value!r} for task {self.name} (labels: {', '.join(self.labels or ())})",
                    path=path,
                    line=line,
                )

    def _empty_reason(self) -> str:
        return ""


def _require_columns(row: Sequence, needed: int, path: Path, line: int, what: str = "tab-separated") -> None:
    if len(row) < needed:
        raise InputError(f"expected at least {needed} {what} columns, found {len(row)}", path=path, line=line)


def _parse_score(text: str, path: Path, line: int) -> float:
    """A finite float regression target (STS-B scores)."""
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"score {text!r} is not a number", path=path, line=line) from None
    if not math.isfinite(value):
        raise InputError(f"score {text!r} is not a finite number", path=path, line=line)
    return value


# ============================================================================= GLUE / XNLI
@dataclasses.dataclass(frozen=True)
class TsvLayout:
    """How one split file of a GLUE-style task is laid out (column indexes are 0-based)."""

    file: str
    guid_prefix: str
    text_a: int
    text_b: int | None = None
    label: int | None = None  # None: every example gets forced_label
    forced_label: str | float | None = None
    header: bool = True
    guid_column: int | None = None  # None: guid uses the 0-based line index
    language: str | None = None  # keep only rows whose column 0 equals it (XNLI)
    aliases: tuple[tuple[str, str], ...] = ()

    @property
    def min_columns(self) -> int:
        """Columns a row needs; a negative (from the end) label column must be a column of its own."""
        used = [c for c in (self.text_a, self.text_b, self.label, self.guid_column) if c is not None and c >= 0]
        if self.language is not None:
            used.append(0)
        needed = max(used) + 1
        if self.label is not None and self.label < 0:
            needed = max(needed + (-self.label), -self.label)
        return needed


class GlueTask(Task):
    """A task with fixed TSV layouts per split (the GLUE tasks and XNLI)."""

    def __init__(
        self,
        name: str,
        labels: Sequence[str],
        layouts: Mapping[str, TsvLayout],
        metric_names: Sequence[str],
        *,
        is_regression: bool = False,
        download_hint: str | None = None,
        empty_reason: str = "",
        check_test_labels: bool = False,
    ) -> None:
        self.name = name
        self.labels = tuple(labels)
        self.layouts = dict(layouts)
        self.split_files = {split: layout.file for split, layout in self.layouts.items()}
        self.metric_names = tuple(metric_names)
        self.is_regression = is_regression
        self.download_hint = download_hint
        self._empty = empty_reason
        self._check_test_labels = check_test_labels

    def __repr__(self) -> str:
        return f"GlueTask({self.name!r})"

    def _empty_reason(self) -> str:
        return self._empty

    def _examples(self, path: Path, split: str) -> Iterator[tuple[int, InputExample]]:
        layout = self.layouts[split]
        aliases = dict(layout.aliases)
        needed = layout.min_columns
        for line, row in read_tsv(path):
            i = line - 1  # the original's enumerate() index: one row per line
            if (layout.header and i == 0) or not row:
                continue
            if layout.language is not None and row[0] != layout.language:
                continue
            _require_columns(row, needed, path, line)
            key = row[layout.guid_column] if layout.guid_column is not None else i
            yield line, InputExample(
                guid=f"{layout.guid_prefix}-{key}",
                text_a=row[layout.text_a],
                text_b=None if layout.text_b is None else row[layout.text_b],
                label=self._label(row, layout, aliases, path, line),
            )

    def _label(self, row: list[str], layout: TsvLayout, aliases: dict, path: Path, line: int) -> Label:
        if layout.label is None:
            return layout.forced_label
        text = row[layout.label]
        if self.is_regression:
            return _parse_score(text, path, line)
        return aliases.get(text, text)


_NLI = ("contradiction", "entailment", "neutral")
_BINARY = ("0", "1")
_RTE = ("entailment", "not_entailment")


def _glue_hint(name: str) -> str:
    return f"bert download glue-{name}"


def _mrpc() -> GlueTask:
    def lay(split: str) -> TsvLayout:
        if split == "test":
            return TsvLayout("test.tsv", "test", 3, 4, forced_label="0")
        return TsvLayout(f"{split}.tsv", split, 3, 4, label=0)

    return GlueTask("mrpc", _BINARY, {s: lay(s) for s in SPLITS}, (M.ACCURACY, M.F1), download_hint=_glue_hint("mrpc"))


def _cola() -> GlueTask:
    layouts = {
        "train": TsvLayout("train.tsv", "train", 3, label=1, header=False),
        "dev": TsvLayout("dev.tsv", "dev", 3, label=1, header=False),
        "test": TsvLayout("test.tsv", "test", 1, forced_label="0"),
    }
    return GlueTask("cola", _BINARY, layouts, (M.MCC,), download_hint=_glue_hint("cola"))


def _mnli() -> GlueTask:
    def labeled(file: str, prefix: str) -> TsvLayout:
        return TsvLayout(file, prefix, 8, 9, label=-1, guid_column=0)

    def unlabeled(file: str, prefix: str) -> TsvLayout:
        return TsvLayout(file, prefix, 8, 9, forced_label="contradiction", guid_column=0)

    layouts = {
        "train": labeled("train.tsv", "train"),
        "dev": labeled("dev_matched.tsv", "dev_matched"),
        "dev_mismatched": labeled("dev_mismatched.tsv", "dev_mismatched"),
        "test": unlabeled("test_matched.tsv", "test"),
        "test_mismatched": unlabeled("test_mismatched.tsv", "test_mismatched"),
    }
    return GlueTask("mnli", _NLI, layouts, (M.ACCURACY,), download_hint=_glue_hint("mnli"))


def _xnli(language: str = "zh") -> GlueTask:
    if not language or "/" in language or "\t" in language:
        raise UsageError(f"invalid XNLI language {language!r} (a code such as zh, de, fr)")
    layouts = {
        "train": TsvLayout(
            f"multinli/multinli.train.{language}.tsv", "train", 0, 1, label=2, aliases=(("contradictory", "contradiction"),)
        ),
        "dev": TsvLayout("xnli.dev.tsv", "dev", 6, 7, label=1, language=language),
        "test": TsvLayout("xnli.test.tsv", "test", 6, 7, label=1, language=language),
    }
    return GlueTask(
        "xnli",
        _NLI,
        layouts,
        (M.ACCURACY,),
        download_hint="bert download xnli",
        empty_reason=f" (no rows for language {language!r}; see --language)",
        check_test_labels=True,
    )


def _indexed_pair(name: str, labels: Sequence[str], a: int, b: int, label: int, test_a: int, test_b: int, metrics: Sequence[str]) -> GlueTask:
    """Tasks whose rows start with an id column used in the guid (QQP, QNLI, RTE, WNLI)."""
    layouts = {
        "train": TsvLayout("train.tsv", "train", a, b, label=label, guid_column=0),
        "dev": TsvLayout("dev.tsv", "dev", a, b, label=label, guid_column=0),
        "test": TsvLayout("test.tsv", "test", test_a, test_b, forced_label=labels[0], guid_column=0),
    }
    return GlueTask(name, labels, layouts, metrics, download_hint=_glue_hint(name))


def _sst2() -> GlueTask:
    layouts = {
        "train": TsvLayout("train.tsv", "train", 0, label=1),
        "dev": TsvLayout("dev.tsv", "dev", 0, label=1),
        "test": TsvLayout("test.tsv", "test", 1, forced_label="0"),
    }
    return GlueTask("sst2", _BINARY, layouts, (M.ACCURACY,), download_hint=_glue_hint("sst2"))


def _stsb() -> GlueTask:
    layouts = {
        "train": TsvLayout("train.tsv", "train", 7, 8, label=9, guid_column=0),
        "dev": TsvLayout("dev.tsv", "dev", 7, 8, label=9, guid_column=0),
        "test": TsvLayout("test.tsv", "test", 7, 8, forced_label=0.0, guid_column=0),
    }
    return GlueTask(
        "stsb", (), layouts, (M.PEARSON, M.SPEARMAN), is_regression=True, download_hint=_glue_hint("stsb")
    )


_GLUE_FACTORIES = {
    "mrpc": _mrpc,
    "cola": _cola,
    "mnli": _mnli,
    "xnli": _xnli,
    "sst2": _sst2,
    "qqp": lambda: _indexed_pair("qqp", _BINARY, 3, 4, 5, 1, 2, (M.ACCURACY, M.F1)),
    "qnli": lambda: _indexed_pair("qnli", _RTE, 1, 2, 3, 1, 2, (M.ACCURACY,)),
    "rte": lambda: _indexed_pair("rte", _RTE, 1, 2, 3, 1, 2, (M.ACCURACY,)),
    "wnli": lambda: _indexed_pair("wnli", _BINARY, 1, 2, 3, 1, 2, (M.ACCURACY,)),
    "stsb": _stsb,
}
_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli"}


# ============================================================================= generic tasks
def _parse_column(ref: ColumnRef | None) -> ColumnRef | None:
    """An int index stays an int; a string of digits becomes a candidate index (kept as str)."""
    if ref is None or isinstance(ref, int):
        if isinstance(ref, int) and ref < 0:
            raise UsageError(f"column index {ref} must be >= 0")
        return ref
    ref = str(ref)
    if not ref:
        raise UsageError("empty column name")
    return ref


def _natural_label_order(labels: Iterable[str]) -> tuple[str, ...]:
    """Sorted labels: numerically when all are integers ("2" < "10"), else by string."""
    labels = set(labels)
    try:
        return tuple(sorted(labels, key=lambda s: (int(s), s)))
    except ValueError:
        return tuple(sorted(labels))


class _Columns:
    """Column references of one file resolved against its header (or by index)."""

    def __init__(self, text_a: int | str, text_b: int | str | None, label: int | str | None) -> None:
        self.text_a, self.text_b, self.label = text_a, text_b, label

    @classmethod
    def resolve(
        cls, refs: Sequence[ColumnRef | None], header: list[str] | None, path: Path, *, label_optional: bool
    ) -> _Columns:
        out: list[int | str | None] = []
        for n, ref in enumerate(refs):
            if ref is None:
                out.append(None)
            elif isinstance(ref, int):
                out.append(ref)
            elif header is not None and ref in header:
                out.append(header.index(ref))
            elif ref.isdigit():
                out.append(int(ref))
            elif header is None:
                raise UsageError(f"column {ref!r} is a name but the file has no header; use a 0-based index")
            elif n == 2 and label_optional:
                out.append(None)
            else:
                raise InputError(f"column {ref!r} not in the header ({', '.join(header)})", path=path, line=1)
        return cls(*out)  # type: ignore[arg-type]


class GenericTask(Task):
    """The user's own CSV/TSV/JSONL data: ``{split}.{ext}`` files (or ``files``) in a data dir."""

    def __init__(
        self,
        file_format: str,
        *,
        text_a_column: ColumnRef,
        text_b_column: ColumnRef | None = None,
        label_column: ColumnRef | None = None,
        header: bool = True,
        label_separator: str | None = None,
        multilabel: bool = False,
        regression: bool = False,
        labels: Sequence[str] | None = None,
        files: Mapping[str, str | Path] | None = None,
        name: str | None = None,
    ) -> None:
        if file_format not in GENERIC_FORMATS:
            raise UsageError(f"unknown file format {file_format!r} (use one of: {', '.join(GENERIC_FORMATS)})")
        if label_separator == "":
            raise UsageError("--label-separator must not be empty")
        if regression and (multilabel or label_separator):
            raise UsageError("a task cannot be both regression and multi-label")
        if label_column is None:
            raise UsageError("a generic task needs a label column (--label-column)")
        self.name = name or file_format
        self.file_format = file_format
        self.columns = tuple(_parse_column(c) for c in (text_a_column, text_b_column, label_column))
        self.header = header if file_format != "jsonl" else False
        self.label_separator = label_separator
        self.is_multilabel = multilabel or label_separator is not None
        self.is_regression = regression
        self.labels = () if regression else (None if labels is None else tuple(str(x) for x in labels))
        self.split_files = {s: str(p) for s, p in (files or {s: f"{s}.{file_format}" for s in SPLITS}).items()}
        self.metric_names = (
            (M.PEARSON, M.SPEARMAN) if regression else (M.MICRO_F1, M.EXACT_MATCH) if self.is_multilabel else (M.ACCURACY,)
        )
        self.download_hint = None
        if self.labels is not None and not regression and len(set(self.labels)) != len(self.labels):
            raise UsageError(f"duplicate labels in {list(self.labels)}")

    def __repr__(self) -> str:
        return f"GenericTask({self.file_format!r}, columns={self.columns}, labels={self.labels})"

    def with_labels(self, labels: Sequence[str]) -> GenericTask:
        """A copy of this task with a fixed label list (e.g. the one stored with a run)."""
        clone = object.__new__(GenericTask)
        clone.__dict__.update(self.__dict__)
        clone.labels = tuple(str(x) for x in labels)
        return clone

    def discover_labels(self, data_dir: str | Path) -> tuple[str, ...]:
        """All labels of the train split, sorted (numerically when all are integers)."""
        seen: set[str] = set()
        for example in self.read(data_dir, "train"):
            label = example.label
            seen.update(label if isinstance(label, frozenset) else (label,))  # type: ignore[arg-type]
        if not seen:
            path = self.split_path(data_dir, "train")
            raise InputError("no labels in the train split", path=path)
        return _natural_label_order(seen)

    def resolve_labels(self, data_dir: str | Path) -> GenericTask:
        if self.labels is not None:
            return self
        return self.with_labels(self.discover_labels(data_dir))

    def _examples(self, path: Path, split: str) -> Iterator[tuple[int, InputExample]]:
        label_optional = split == "test"
        for line, text_a, text_b, raw_label in iter_records(
            path, self.file_format, self.columns, header=self.header, label_optional=label_optional, prefix=split
        ):
            if label_optional and isinstance(raw_label, str) and not raw_label.strip():
                raw_label = None  # a blank cell in the (unlabeled) test split: no label
            label = None if raw_label is None else self._parse_label(raw_label, path, line)
            yield line, InputExample(f"{split}-{line}", text_a, text_b, label)

    def _parse_label(self, raw: object, path: Path, line: int) -> Label:
        if self.is_regression:
            if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
                raise InputError(f"score {raw!r} is not a number", path=path, line=line)
            return _parse_score(str(raw), path, line)
        if self.is_multilabel:
            if isinstance(raw, list):
                items = [_scalar_text(x, "label", path, line) for x in raw]
            else:
                text = _scalar_text(raw, "label", path, line)
                items = text.split(self.label_separator) if self.label_separator else [text]
            return frozenset(x.strip() for x in items if x.strip())
        if isinstance(raw, list):
            raise InputError("the label is a list but the task is not multi-label (--multilabel)", path=path, line=line)
        label = _scalar_text(raw, "label", path, line).strip()
        if not label:
            raise InputError("empty label (every train/dev example needs one)", path=path, line=line)
        return label


def _scalar_text(value: object, what: str, path: Path, line: int) -> str:
    """A JSON value used as text: strings as is, numbers via str(); anything else is an error."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise InputError(f"the {what} must be a string, not {json.dumps(value)}", path=path, line=line)


def iter_records(
    path: Path,
    file_format: str,
    columns: Sequence[ColumnRef | None],
    *,
    header: bool,
    label_optional: bool,
    prefix: str = "",
) -> Iterator[tuple[int, str, str | None, object]]:
    """``(line, text_a, text_b, raw_label)`` of a CSV/TSV/JSONL file; blank rows are skipped.

    ``columns`` = (text_a, text_b or None, label or None). A missing label is ``None`` when
    ``label_optional``; any other missing column is an InputError at its line.
    """
    if file_format == "jsonl":
        yield from _iter_jsonl(path, columns, label_optional)
        return
    rows = read_csv(path) if file_format == "csv" else read_tsv(path, strip_bom=True)
    what = "comma-separated" if file_format == "csv" else "tab-separated"
    cols: _Columns | None = None
    if not header:
        cols = _Columns.resolve(columns, None, path, label_optional=label_optional)
    for line, row in rows:
        if not row or (len(row) == 1 and not row[0].strip() and file_format == "csv"):
            continue
        if cols is None:
            cols = _Columns.resolve(columns, [c.strip() for c in row], path, label_optional=label_optional)
            continue
        text_cols = [c for c in (cols.text_a, cols.text_b) if c is not None]
        _require_columns(row, max(text_cols) + 1, path, line, what)
        label = None
        if cols.label is not None:
            if int(cols.label) < len(row):
                label = row[int(cols.label)]
            elif not label_optional:
                _require_columns(row, int(cols.label) + 1, path, line, what)
        yield line, row[int(cols.text_a)], None if cols.text_b is None else row[int(cols.text_b)], label


def _iter_jsonl(path: Path, columns: Sequence[ColumnRef | None], label_optional: bool) -> Iterator[tuple[int, str, str | None, object]]:
    def get(value: object, ref: ColumnRef, line: int, optional: bool) -> object:
        if isinstance(value, dict):
            key = str(ref)
            if key in value and value[key] is not None:
                return value[key]
        else:
            index = ref if isinstance(ref, int) else int(ref) if str(ref).isdigit() else None
            if index is None:
                raise InputError(f"column {ref!r} is a name but the line is a JSON array", path=path, line=line)
            if index < len(value) and value[index] is not None:  # type: ignore[arg-type]
                return value[index]  # type: ignore[index]
        if optional:
            return None
        raise InputError(f"missing {ref!r}", path=path, line=line)

    text_a_ref, text_b_ref, label_ref = columns
    for line, value in read_jsonl(path):
        text_a = _scalar_text(get(value, text_a_ref, line, False), "text", path, line)  # type: ignore[arg-type]
        text_b = None
        if text_b_ref is not None:
            text_b = _scalar_text(get(value, text_b_ref, line, False), "text", path, line)
        label = None if label_ref is None else get(value, label_ref, line, label_optional)
        yield line, text_a, text_b, label


# ============================================================================= registry
def get_task(name: str, **options: object) -> Task:
    """The task called ``name`` (case-insensitive; ``sst-2``/``sts-b`` accepted).

    Options: ``language`` (XNLI, default ``"zh"``); for ``csv``/``tsv``/``jsonl`` the
    :class:`GenericTask` keywords (``text_a_column``, ``text_b_column``, ``label_column``,
    ``header``, ``label_separator``, ``multilabel``, ``regression``, ``labels``, ``files``).
    Options left as ``None`` are ignored, so a CLI can pass all its flags through.
    """
    key = _ALIASES.get(name.lower(), name.lower())
    given = {k: v for k, v in options.items() if v is not None}
    if key in GENERIC_FORMATS:
        try:
            return GenericTask(key, **given)  # type: ignore[arg-type]
        except TypeError as e:
            raise UsageError(f"task {key}: {e}") from None
    if key not in _GLUE_FACTORIES:
        raise UsageError(f"unknown task {name!r} (tasks: {', '.join(TASK_NAMES)})")
    if key == "xnli":
        language = given.pop("language", "zh")
        _no_options(key, given)
        return _xnli(str(language))
    _no_options(key, given)
    return _GLUE_FACTORIES[key]()


def _no_options(name: str, given: Mapping[str, object]) -> None:
    if given:
        raise UsageError(f"task {name} takes no option(s) {', '.join(sorted(given))}")


# ============================================================================= predict input
def read_text_lines(path: str | Path, *, skip_blank: bool = False) -> Iterator[InputExample]:
    """One example per line, as the original ``extract_features.py`` ``read_examples``.

    Each line is stripped; ``A ||| B`` (regex ``^(.*) \\|\\|\\| (.*)$``) gives a pair. guids are
    ``"0"``, ``"1"``, ... in order. Blank lines are kept as empty examples (so output line i
    matches input line i, as in the original) unless ``skip_blank``.
    """
    unique_id = 0
    for text in iter_text_lines(path, strip_bom=True):
        line = text.strip()
        if skip_blank and not line:
            continue
        text_a, text_b = split_pair(line)
        yield InputExample(str(unique_id), text_a, text_b)
        unique_id += 1


def guess_format(path: str | Path) -> str:
    """``csv``/``tsv``/``jsonl`` from the file extension, else ``lines``."""
    suffix = Path(str(path)).suffix.lower()
    return {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "lines")


def read_predict_input(
    path: str | Path,
    file_format: str | None = None,
    *,
    text_a_column: ColumnRef | None = None,
    text_b_column: ColumnRef | None = None,
    header: bool = True,
    skip_blank: bool = False,
) -> Iterator[InputExample]:
    """Stream unlabeled examples for ``bert predict`` (``path`` ``"-"`` = stdin).

    ``file_format``: ``lines`` (see :func:`read_text_lines`), ``csv``, ``tsv`` or ``jsonl``;
    ``None`` guesses from the extension. Table formats need ``text_a_column``; guids count
    examples from ``"0"``. Raises NotFoundError now for a missing file.
    """
    fmt = (file_format or guess_format(path)).lower()
    if fmt not in ("lines",) + GENERIC_FORMATS:
        raise UsageError(f"unknown input format {fmt!r} (use lines, csv, tsv or jsonl)")
    if str(path) != "-" and not Path(path).is_file():
        raise NotFoundError(f"input file not found: {path}")
    if fmt == "lines":
        if text_a_column is not None or text_b_column is not None:
            raise UsageError("column options need a csv, tsv or jsonl input (--input-format)")
        return read_text_lines(path, skip_blank=skip_blank)
    if text_a_column is None:
        raise UsageError(f"a {fmt} input needs --text-a-column")
    columns = (_parse_column(text_a_column), _parse_column(text_b_column), None)
    if fmt == "jsonl":
        header = False
    return _table_examples(Path(path), fmt, columns, header)


def _table_examples(path: Path, fmt: str, columns: Sequence[ColumnRef | None], header: bool) -> Iterator[InputExample]:
    for n, (_line, text_a, text_b, _label) in enumerate(
        iter_records(path, fmt, columns, header=header, label_optional=True)
    ):
        yield InputExample(str(n), text_a, text_b)
