"""Render progress events of long-running commands as plain lines on stderr (cron-friendly)."""

from __future__ import annotations

import json
from typing import Callable

import typer


def print_metrics(metrics: dict, as_json: bool) -> None:
    """Final metrics on stdout: sorted ``key = value`` lines (as eval_results.txt), or one JSON object."""
    if as_json:
        typer.echo(json.dumps(metrics, default=float))
        return
    for key, value in sorted(metrics.items()):
        typer.echo(f"{key} = {value}")


def training_progress() -> Callable[[dict], None]:
    """A callback for trainer events (``phase``: start, train, checkpoint, eval, ...)."""
    from .. import console

    def show(event: dict) -> None:
        phase = event.get("phase")
        if phase == "train":  # ("start": the trainer prints the banner and what it resumed itself)
            parts = [f"step {event['step']}/{event.get('total_steps', '?')}", f"loss {event['loss']:.4f}"]
            if "learning_rate" in event:
                parts.append(f"lr {event['learning_rate']:.3g}")
            if "examples_per_s" in event:
                parts.append(f"{event['examples_per_s']:.1f} examples/s")
            if event.get("eta_s") is not None:
                parts.append(f"ETA {event['eta_s']:.0f}s")
            console.info("  ".join(parts))
        elif phase == "featurize":
            console.debug(f"{event.get('split')}: {event.get('examples')} examples featurized")
        elif phase == "checkpoint":
            console.debug(f"saved {event['path']}")
        elif phase == "eval":
            results = event.get("results") or event.get("metrics") or {}
            console.info("eval: " + ", ".join(f"{k} = {v:.4f}" if isinstance(v, float) else f"{k} = {v}" for k, v in sorted(results.items())))
        elif event.get("message"):
            console.info(str(event["message"]))

    return show
