"""The task registry: :func:`get_task` names every sentence(-pair) classification or regression
task. Pure Python, no TensorFlow.

* the GLUE/XNLI readers, the original ``run_classifier.py`` rules: :mod:`bert_cli.text.glue`;
* the user's own CSV/TSV/JSONL files: :mod:`bert_cli.text.own_data`;
* the shared model (:class:`~bert_cli.text.task_base.Task`, ``InputExample``):
  :mod:`bert_cli.text.task_base`; the table readers: :mod:`bert_cli.text.tables`;
* the raw input of ``bert predict``: :mod:`bert_cli.text.predict_input`.
"""

from __future__ import annotations

from ..errors import UsageError
from .glue import glue_task
from .own_data import GenericTask
from .task_base import Task
from .task_names import GENERIC_FORMATS, GLUE_TASKS, TASK_NAMES

_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli"}


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
    if key not in GLUE_TASKS:
        raise UsageError(f"unknown task {name!r} (tasks: {', '.join(TASK_NAMES)})")
    return glue_task(key, **given)

