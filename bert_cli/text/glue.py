"""The GLUE and XNLI tasks (:func:`glue_task`). Pure Python.

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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from ..errors import UsageError
from . import metrics as M
from .tables import read_tsv, require_columns
from .task_base import SPLITS, InputExample, Label, Task, parse_score


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
            require_columns(row, needed, path, line)
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
            return parse_score(text, path, line)
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

def glue_task(key: str, **given: object) -> GlueTask:
    """The GLUE/XNLI task ``key`` (one of :data:`~bert_cli.text.task_names.GLUE_TASKS`); XNLI takes ``language``
    (default ``"zh"``), the others no option."""
    if key == "xnli":
        language = given.pop("language", "zh")
        _no_options(key, given)
        return _xnli(str(language))
    _no_options(key, given)
    return _GLUE_FACTORIES[key]()


def _no_options(name: str, given: Mapping[str, object]) -> None:
    if given:
        raise UsageError(f"task {name} takes no option(s) {', '.join(sorted(given))}")

