"""``bert squad-threshold``: score SQuAD predictions; for 2.0 find (and apply) the best null threshold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from . import options


EPILOG = """Examples:

  bert squad-threshold --predict-file dev-v2.0.json --output-dir runs/squad2

  bert squad-threshold --predict-file dev-v2.0.json --output-dir runs/squad2 --apply
"""


def squad_threshold(
    predict_file: Path = typer.Option(..., "--predict-file", metavar="FILE", help="The SQuAD JSON the predictions answer (with gold answers)."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", metavar="DIR", help="Run folder of `bert finetune squad --do-predict`."),
    predictions: Optional[Path] = typer.Option(None, "--predictions", metavar="FILE", help="predictions.json (default: in --output-dir)."),
    null_odds: Optional[Path] = typer.Option(None, "--null-odds", metavar="FILE", help="null_odds.json (default: in --output-dir)."),
    apply: bool = options.flag("--apply", help="Rewrite predictions.json for the best-F1 threshold from the saved logits (no model run)."),
    json_output: bool = options.JSON,
) -> None:
    """Print the best-F1 `--null-score-diff-threshold` the official SQuAD 2.0 evaluator reports.

    stdout: the threshold as a plain number (`--json`: every metric). A v1.1 predict file is
    simply scored: its metrics are printed as JSON, like the official evaluate-v1.1.py.
    """
    from .. import console
    from ..ops.squad_threshold import SquadThresholdConfig, run

    if output_dir is None and predictions is None:
        from ..errors import UsageError

        raise UsageError("give --output-dir (a predict run folder) or --predictions FILE")
    result = run(
        SquadThresholdConfig(
            predict_file=predict_file,
            output_dir=output_dir,
            predictions_file=predictions,
            null_odds_file=null_odds,
            apply=apply,
        )
    )
    if json_output or not result["version_2"]:
        shown = result if json_output else result["metrics"]
        typer.echo(json.dumps(shown, indent=None if not json_output else 2))
        return
    typer.echo(repr(float(result["best_f1_thresh"])))
    metrics = result["metrics"]
    console.info(
        f"best_f1 = {metrics['best_f1']:.4f} at threshold {metrics['best_f1_thresh']!r}; "
        f"best_exact = {metrics['best_exact']:.4f} at {metrics['best_exact_thresh']!r}"
    )
    if result["applied"]:
        new = result["new_metrics"] or {}
        console.info(f"rewrote {result['predictions_file']}: exact = {new.get('exact')}, f1 = {new.get('f1')}")
