"""Classifier examples -> fixed-length model inputs as numpy arrays (pure Python + numpy).

The original ``run_classifier.py`` ``convert_single_example``: WordPiece both texts with the
task's tokenizer, lay them out as ``[CLS] A [SEP] (B [SEP])`` with the original truncation
(:func:`bert_cli.text.features.build_features`) and map the label to its training target:

==================  =====================================  ====================================
task kind           ``labels`` array                       from
==================  =====================================  ====================================
classification      int32 [N], the label's id              ``Task.label_map`` (labels order)
regression          float32 [N], the score                 the float label
multi-label         float32 [N, C], multi-hot              the label set
==================  =====================================  ====================================

Unlabeled examples (``bert predict`` input) get target 0. The whole split is kept in memory
(MRPC's 3668 pairs at 128 tokens take 5 MB), which is what lets the trainer build a seeded,
resumable tf.data pipeline straight from the arrays; no intermediate TFRecord file is needed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from .features import build_features, check_max_seq_length
from .task_base import InputExample, Task

__all__ = ["ClassifierFeatures", "convert_examples", "task_kind", "KINDS"]

KINDS = ("classification", "regression", "multilabel")


def task_kind(task: Task) -> str:
    """``classification``, ``regression`` or ``multilabel``."""
    if task.is_regression:
        return "regression"
    if task.is_multilabel:
        return "multilabel"
    return "classification"


@dataclasses.dataclass
class ClassifierFeatures:
    """A split's model inputs: int32 [N, S] ``input_ids``/``input_mask``/``segment_ids``,
    ``labels`` (see the module table), ``guids`` (list of str) and ``truncated`` (how many
    examples lost tokens to ``max_seq_length``)."""

    input_ids: np.ndarray
    input_mask: np.ndarray
    segment_ids: np.ndarray
    labels: np.ndarray
    guids: list[str]
    truncated: int = 0

    def __len__(self) -> int:
        return len(self.guids)

    def arrays(self) -> dict[str, np.ndarray]:
        """``{input_ids, input_mask, segment_ids, labels}`` (what the tf.data pipeline takes)."""
        return {
            "input_ids": self.input_ids,
            "input_mask": self.input_mask,
            "segment_ids": self.segment_ids,
            "labels": self.labels,
        }

    def slice(self, start: int, stop: int) -> "ClassifierFeatures":
        """Examples ``start:stop`` (a view, no copy)."""
        return ClassifierFeatures(
            self.input_ids[start:stop],
            self.input_mask[start:stop],
            self.segment_ids[start:stop],
            self.labels[start:stop],
            self.guids[start:stop],
        )


def _empty_labels(kind: str, num_labels: int, n: int) -> np.ndarray:
    if kind == "classification":
        return np.zeros([n], np.int32)
    if kind == "regression":
        return np.zeros([n], np.float32)
    return np.zeros([n, num_labels], np.float32)


def convert_examples(
    examples: Iterable[InputExample],
    tokenizer,
    max_seq_length: int,
    *,
    task: Task | None = None,
    kind: str = "classification",
    num_labels: int = 1,
    with_labels: bool = True,
    on_example: Callable[[int, InputExample, object], None] | None = None,
) -> ClassifierFeatures:
    """Featurize ``examples`` in order (streams the iterable, fills numpy arrays).

    ``task`` gives the label mapping (and ``kind``/``num_labels``); without it, or with
    ``with_labels=False``, every target is 0 (prediction input). ``on_example(i, example,
    features)`` is called for each example (logging the first few, progress).
    """
    if task is not None:
        kind = task_kind(task)
        num_labels = task.num_labels
    if kind not in KINDS:
        raise ValueError(f"unknown task kind {kind!r}")
    check_max_seq_length(max_seq_length, pair=False)
    ids: list[list[int]] = []
    masks: list[list[int]] = []
    segments: list[list[int]] = []
    targets: list = []
    guids: list[str] = []
    truncated = 0
    tokenize = tokenizer.tokenize
    for i, example in enumerate(examples):
        tokens_a = tokenize(example.text_a)
        tokens_b = tokenize(example.text_b) if example.text_b else None
        features = build_features(tokens_a, tokens_b, max_seq_length, tokenizer)
        if len(features.tokens) < len(tokens_a) + (len(tokens_b) + 1 if tokens_b else 0) + 2:
            truncated += 1
        ids.append(features.input_ids)
        masks.append(features.input_mask)
        segments.append(features.segment_ids)
        guids.append(example.guid)
        if with_labels and task is not None and example.label is not None:
            targets.append(task.label_id(example.label))
        else:
            targets.append(None)
        if on_example is not None:
            on_example(i, example, features)
    n = len(guids)
    labels = _empty_labels(kind, num_labels, n)
    for i, target in enumerate(targets):
        if target is not None:
            labels[i] = target
    shape = [n, max_seq_length]
    return ClassifierFeatures(
        input_ids=np.asarray(ids, np.int32).reshape(shape),
        input_mask=np.asarray(masks, np.int32).reshape(shape),
        segment_ids=np.asarray(segments, np.int32).reshape(shape),
        labels=labels,
        guids=guids,
        truncated=truncated,
    )


def format_example_log(example: InputExample, features, label_text: Sequence[str] | None = None) -> str:
    """The original's ``*** Example ***`` log lines for one example (guid, tokens, ids, mask, segments)."""
    n = len(features.tokens)
    lines = [
        "*** Example ***",
        f"guid: {example.guid}",
        "tokens: " + " ".join(features.tokens),
        "input_ids: " + " ".join(str(x) for x in features.input_ids[: max(n, 1)]),
        "input_mask: " + " ".join(str(x) for x in features.input_mask[: max(n, 1)]),
        "segment_ids: " + " ".join(str(x) for x in features.segment_ids[: max(n, 1)]),
    ]
    if example.label is not None:
        lines.append(f"label: {example.label}")
    return "\n".join(lines)
