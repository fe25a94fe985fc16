"""What ``TF_CONFIG`` says about a multi-worker cluster: how many workers, which one this process
is, and whether it is the chief (the one that writes checkpoints, logs and results).

Pure Python (no TensorFlow), so that the CLI and ``ops`` can ask "am I the chief?" without
loading the engine; :mod:`bert_cli.engine.device` builds the strategy from the same parse.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Mapping

from .errors import UsageError

__all__ = ["ClusterInfo", "parse_tf_config", "this_process_is_chief"]



@dataclasses.dataclass(frozen=True)
class ClusterInfo:
    """What ``TF_CONFIG`` says about the multi-worker cluster."""

    num_workers: int
    task_type: str | None
    task_index: int | None

    @property
    def is_chief(self) -> bool:
        """The chief writes checkpoints and logs: ``chief`` task, or worker 0 when there is no chief."""
        if self.task_type is None:
            return True
        return self.task_type == "chief" or (self.task_type == "worker" and self.task_index == 0)


def parse_tf_config(text: str | None) -> ClusterInfo | None:
    """Parse a ``TF_CONFIG`` value; ``None`` when unset/empty. Counts ``chief`` + ``worker`` tasks.

    Raises :class:`UsageError` for malformed JSON or a task outside the cluster.
    """
    if text is None or not text.strip():
        return None
    hint = 'TF_CONFIG must look like {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}'
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"TF_CONFIG is not valid JSON: {exc.msg} (column {exc.colno})", hint=hint) from None
    if not isinstance(config, Mapping):
        raise UsageError("TF_CONFIG must be a JSON object", hint=hint)
    cluster = config.get("cluster") or {}
    task = config.get("task") or {}
    if not isinstance(cluster, Mapping) or not isinstance(task, Mapping):
        raise UsageError("TF_CONFIG 'cluster' and 'task' must be JSON objects", hint=hint)
    workers = _addresses(cluster, "worker", hint)
    chiefs = _addresses(cluster, "chief", hint)
    task_type = task.get("type")
    task_index = task.get("index")
    if task_type is not None:
        if task_type not in cluster:
            raise UsageError(f"TF_CONFIG task type {task_type!r} is not in the cluster", hint=hint)
        if not isinstance(task_index, int) or not 0 <= task_index < len(cluster[task_type]):
            raise UsageError(
                f"TF_CONFIG task index {task_index!r} is out of range for {len(cluster[task_type])} "
                f"{task_type} task(s)",
                hint=hint,
            )
    return ClusterInfo(num_workers=len(workers) + len(chiefs), task_type=task_type, task_index=task_index)


def this_process_is_chief() -> bool:
    """True unless ``TF_CONFIG`` makes this process a non-chief worker (only the chief writes)."""
    cluster = parse_tf_config(os.environ.get("TF_CONFIG"))
    return cluster is None or cluster.is_chief


def _addresses(cluster: Mapping, key: str, hint: str) -> list[str]:
    value = cluster.get(key) or []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise UsageError(f"TF_CONFIG cluster.{key} must be a list of 'host:port' strings", hint=hint)
    return value
