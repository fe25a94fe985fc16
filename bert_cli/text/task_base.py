"""The task model shared by every sentence(-pair) classification reader: :class:`InputExample`
and the :class:`Task` base (splits, label ids, the per-split label checks). Pure Python.

:meth:`Task.read` streams (every reader is a generator); opening checks (missing file,
unknown split) happen when it is called. Bad content raises
:class:`~bert_cli.errors.InputError` naming the file and 1-based line; a missing split file
raises :class:`~bert_cli.errors.NotFoundError` with a hint naming the download command.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Union

from ..errors import InputError, NotFoundError, UsageError

Label = Union[str, float, frozenset, None]

SPLITS = ("train", "dev", "test")


@dataclasses.dataclass(frozen=True)
class InputExample:
    """One example: ``label`` is a str (classification), a float (regression), a frozenset of
    str (multi-label) or None (raw prediction input)."""

    guid: str
    text_a: str
    text_b: str | None = None
    label: Label = None

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


def parse_score(text: str, path: Path, line: int) -> float:
    """A finite float regression target (STS-B scores)."""
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"score {text!r} is not a number", path=path, line=line) from None
    if not math.isfinite(value):
        raise InputError(f"score {text!r} is not a finite number", path=path, line=line)
    return value

