"""What a model folder holds: its newest checkpoint and its casing (pure Python, no TensorFlow).

Used when resolving ``--model`` (:mod:`bert_cli.models.resolve`), when checking a model before it
is installed (:mod:`bert_cli.models.install`) and when reading a run folder (``bert predict``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..rundir import BEST_DIR, RUN_FILE, SQUAD_RUN_FILE
from . import catalogue

__all__ = ["best_checkpoint", "find_checkpoint", "model_casing", "newest_checkpoint", "read_json_or_empty"]

_STEP = re.compile(r"-(\d+)$")


def find_checkpoint(directory: str | Path) -> tuple[str | None, str]:
    """``(checkpoint, weights_format)`` of a folder: the weights it stands for.

    A fine-tuning run folder (``bert_run.json``) that kept ``best/`` (``--keep-best``) stands for
    its best weights: ``bert predict``, evaluating without training, ``--model RUN`` and
    ``bert download --export-hf RUN`` all take them. Otherwise :func:`newest_checkpoint`.
    """
    best = best_checkpoint(directory)
    return (best, "tf1") if best is not None else newest_checkpoint(directory)


def best_checkpoint(directory: str | Path) -> str | None:
    """The checkpoint in ``best/`` of a fine-tuning run folder that kept one, else None."""
    directory = Path(directory)
    best = directory / BEST_DIR
    if not ((directory / RUN_FILE).is_file() and (best / "checkpoint").is_file()):
        return None
    prefix, fmt = newest_checkpoint(best)
    return prefix if fmt == "tf1" else None


def newest_checkpoint(directory: str | Path) -> tuple[str | None, str]:
    """``(checkpoint, weights_format)``: the newest TF checkpoint of a folder, else safetensors.

    Order: the ``checkpoint`` state file (written by TF savers and checkpoint managers), then
    the ``*ckpt*.index`` file with the highest global step (``model.ckpt-123``; a prefix without
    a step such as ``bert_model.ckpt`` ranks lowest, ties by modification time), then
    ``model.safetensors``; ``(None, "none")`` when there are no weights.
    """
    directory = Path(directory)
    state = directory / "checkpoint"
    if state.is_file():
        prefix = _prefix_from_state(state)
        if prefix is not None:
            candidate = Path(prefix) if Path(prefix).is_absolute() else directory / prefix
            if Path(str(candidate) + ".index").is_file():
                return str(candidate), "tf1"
    indexes = [p for p in directory.glob("*.index") if "ckpt" in p.name]
    if indexes:

        def rank(p: Path):
            m = _STEP.search(p.name[: -len(".index")])
            return (m is not None, int(m.group(1)) if m else -1, p.stat().st_mtime)

        best = max(indexes, key=rank)
        return str(best.with_name(best.name[: -len(".index")])), "tf1"
    safetensors = directory / "model.safetensors"
    if safetensors.is_file():
        return str(safetensors), "hf"
    return None, "none"


def _prefix_from_state(state: Path) -> str | None:
    """``model_checkpoint_path`` of a TF ``checkpoint`` state file (text protobuf)."""
    try:
        text = state.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    m = re.search(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', text, re.MULTILINE)
    return re.sub(r"\\(.)", r"\1", m.group(1)) if m else None


def model_casing(directory: Path, manifest: dict | None = None) -> bool | None:
    """Whether a model folder's vocabulary is lower-cased (None: unknown), from the first that
    tells: ``manifest`` (the cache's manifest.json) > tokenizer_config.json > a run folder's
    bert_run.json/squad_run.json > the catalogue entry named like the folder."""
    value = (manifest or {}).get("do_lower_case")
    if isinstance(value, bool):
        return value
    for name in ("tokenizer_config.json", RUN_FILE, SQUAD_RUN_FILE):  # HF folder, bert run folders
        value = read_json_or_empty(directory / name).get("do_lower_case")
        if isinstance(value, bool):
            return value
    entry = catalogue.find_model(directory.name)
    return entry.do_lower_case if entry is not None else None


def read_json_or_empty(path: Path) -> dict:
    """The JSON object in ``path``; ``{}`` when it is missing, unreadable or not an object."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
