"""Final metrics on stdout and the plain training lines on stderr (cron-friendly).

The bars and per-phase summary lines are :mod:`bert_cli.progress`; the end-of-run table
and report are :mod:`bert_cli.cli.summary`.
"""

from __future__ import annotations

import json
from typing import Callable

import typer


def print_metrics(metrics: dict, as_json: bool, extra: dict | None = None) -> None:
    """Final metrics on stdout: sorted ``key = value`` lines (as eval_results.txt), or one JSON
    object (with ``extra`` too, e.g. the run's seed)."""
    if as_json:
        typer.echo(json.dumps({**metrics, **(extra or {})}, default=float))
        return
    for key, value in sorted(metrics.items()):
        typer.echo(f"{key} = {value}")


def training_line(event: dict) -> None:
    """The plain stderr line of a trainer event (``phase``: train, checkpoint, eval, ...)."""
    from .. import console

    phase = event.get("phase")
    if phase == "train" and "loss" in event:  # ("start": the trainer prints the banner and what it resumed itself)
        parts = [f"step {event['step']}/{event.get('total_steps', '?')}", f"loss {event['loss']:.4f}"]
        if "learning_rate" in event:
            parts.append(f"lr {event['learning_rate']:.3g}")
        if "examples_per_s" in event:
            parts.append(f"{event['examples_per_s']:.1f} examples/s")
        if event.get("eta_s") is not None:
            parts.append(f"ETA {event['eta_s']:.0f}s")
        console.info("  ".join(parts))
    elif phase == "featurize" and "examples" in event:
        console.debug(f"{event.get('split')}: {event.get('examples')} examples featurized")
    elif phase == "checkpoint":
        console.debug(f"saved {event['path']}")
    elif phase == "eval" and (event.get("results") or event.get("metrics")):
        results = event.get("results") or event.get("metrics") or {}
        console.info("eval: " + ", ".join(f"{k} = {v:.4f}" if isinstance(v, float) else f"{k} = {v}" for k, v in sorted(results.items())))
    elif event.get("message"):
        console.info(str(event["message"]))


def training_progress() -> Callable[[dict], None]:
    """A progress renderer with the training lines (close it, or use it as a context manager)."""
    from ..progress import Phases

    return Phases(lines=training_line)
