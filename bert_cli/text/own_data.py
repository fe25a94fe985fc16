"""The user's own CSV/TSV/JSONL classification data (``get_task("csv"|"tsv"|"jsonl", ...)``):
:class:`GenericTask`. Pure Python.

The files are ``{split}.{ext}`` in a data dir (or explicit files), with text/label columns by
name or 0-based index. CSV uses the standard csv quoting, TSV the original's literal quotes,
JSONL one JSON object (keys) or array (indexes) per line. Labels are discovered from the
train split (:meth:`GenericTask.resolve_labels`); a blank label in train/dev is an
InputError (in test it means "no label"); multi-label tasks read a delimiter-separated list
(``label_separator``) or a JSON list into a ``frozenset``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from ..errors import InputError, UsageError
from . import metrics as M
from .tables import ColumnRef, iter_records, parse_column, scalar_text
from .task_base import SPLITS, InputExample, Label, Task, parse_score
from .task_names import GENERIC_FORMATS


def _natural_label_order(labels: Iterable[str]) -> tuple[str, ...]:
    """Sorted labels: numerically when all are integers ("2" < "10"), else by string."""
    labels = set(labels)
    try:
        return tuple(sorted(labels, key=lambda s: (int(s), s)))
    except ValueError:
        return tuple(sorted(labels))


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
        self.columns = tuple(parse_column(c) for c in (text_a_column, text_b_column, label_column))
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
            return parse_score(str(raw), path, line)
        if self.is_multilabel:
            if isinstance(raw, list):
                items = [scalar_text(x, "label", path, line) for x in raw]
            else:
                text = scalar_text(raw, "label", path, line)
                items = text.split(self.label_separator) if self.label_separator else [text]
            return frozenset(x.strip() for x in items if x.strip())
        if isinstance(raw, list):
            raise InputError("the label is a list but the task is not multi-label (--multilabel)", path=path, line=line)
        label = scalar_text(raw, "label", path, line).strip()
        if not label:
            raise InputError("empty label (every train/dev example needs one)", path=path, line=line)
        return label

