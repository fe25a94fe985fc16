"""The task names ``bert finetune TASK`` takes: constants only, so that the CLI can list them at
start-up without importing the task readers (and numpy). :mod:`bert_cli.text.tasks` implements
each of :data:`TASK_NAMES`; ``squad`` is :mod:`bert_cli.ops.finetune_squad`, ``ner``
:mod:`bert_cli.ops.finetune_ner`.
"""

from __future__ import annotations

__all__ = ["GLUE_TASKS", "GENERIC_FORMATS", "TASK_NAMES", "SQUAD", "NER", "FINETUNE_TASKS"]

#: GLUE and XNLI tasks, in the original ``run_classifier.py`` data layouts.
GLUE_TASKS = ("mrpc", "cola", "mnli", "xnli", "sst2", "qqp", "qnli", "rte", "wnli", "stsb")
#: Your own data: ``--text-column``/``--label-column`` of a CSV, TSV or JSON Lines file.
GENERIC_FORMATS = ("csv", "tsv", "jsonl")
#: Every classification/regression task of :func:`bert_cli.text.tasks.get_task`.
TASK_NAMES = GLUE_TASKS + GENERIC_FORMATS
SQUAD = "squad"
#: Token classification (named entities) on CoNLL/JSONL files.
NER = "ner"
#: What ``bert finetune TASK`` accepts.
FINETUNE_TASKS = (SQUAD, NER) + TASK_NAMES
