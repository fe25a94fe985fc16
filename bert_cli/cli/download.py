"""``bert download``: models and datasets into the local cache (thin: options -> config -> ops)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional, Tuple

import typer

from . import options


class Source(str, Enum):
    auto = "auto"
    google = "google"
    hf = "hf"


def _complete_name(incomplete: str) -> list[str]:
    from ..models.resolve import complete_download_name

    return complete_download_name(incomplete)


def _complete_cached(incomplete: str) -> list[str]:
    from ..models.cache import DATASETS, MODELS
    from ..models.resolve import current_cache

    cache = current_cache()
    return [n for n in cache.entries(MODELS) + cache.entries(DATASETS) if n.startswith(incomplete)]


_CACHE = "Cache"
_SOURCE = "Source (the Hub, a local folder, .zip or URL)"

EPILOG = """Examples:

  bert download --list

  bert download uncased-base glue-mrpc
"""


def download(
    names: Optional[list[str]] = typer.Argument(
        None,
        metavar="NAME|DIR|URL",
        help="Catalogue models (uncased-base, tiny, ...), datasets (glue-mrpc, squad-v1.1, ...), "
        "or a local model folder / .zip / URL to install.",
        autocompletion=_complete_name,
        show_default=False,
    ),
    list_: bool = options.flag("--list", "-l", panel=_CACHE, help="Print the catalogue and what is cached."),
    json_output: bool = options.flag("--json", panel=options.OUTPUT_PANEL, help="Print results as JSON on stdout (for scripts)."),
    source: Source = typer.Option(
        Source.auto, "--source", metavar="SOURCE", rich_help_panel=_SOURCE, help="google: the original zip; hf: the Hugging Face Hub mirror; auto: Google, else the Hub."
    ),
    force: bool = options.flag("--force", "-f", panel=_CACHE, help="Download again even if cached (replaces the cached copy)."),
    remove: Optional[list[str]] = typer.Option(
        None, "--remove", metavar="NAME", rich_help_panel=_CACHE, help="Delete a cached model or dataset.", autocompletion=_complete_cached
    ),
    verify: Optional[list[str]] = typer.Option(
        None, "--verify", metavar="NAME", rich_help_panel=_CACHE, help="Re-check the sha256 of every file of a cached model or dataset.",
        autocompletion=_complete_cached,
    ),
    name: Optional[str] = typer.Option(None, "--name", metavar="NAME", rich_help_panel=_SOURCE, help="Cache name for a local folder, .zip or URL (default: its file name)."),
    sha256: Optional[str] = typer.Option(None, "--sha256", metavar="HEX", rich_help_panel=_SOURCE, help="Expected sha256 of a .zip URL; a mismatch is refused."),
    do_lower_case: Optional[bool] = options.flag(
        "--do-lower-case/--no-do-lower-case",
        default=None,
        panel=_SOURCE,
        help="Record the casing of a local folder, .zip or URL model (catalogue models know theirs).",
    ),
    revision: str = typer.Option("main", "--revision", metavar="REV", rich_help_panel=_SOURCE, help="Hub revision (branch, tag or commit) for --source hf."),
    offline: bool = options.flag("--offline", panel=_CACHE, help="Only report what is cached; never touch the network."),
    export_hf: Optional[Tuple[str, Path]] = options.DOWNLOAD_EXPORT_HF,
) -> None:
    """Download models and datasets into the cache; print their folders on stdout.

    `$(bert download cased-base)` is the model's folder. The cache is --cache-dir, else $BERT_CACHE, else the user cache dir. Progress goes to stderr, on a terminal only.

    `bert download --export-hf SOURCE DIR` writes a cached model, a model folder or a `bert finetune`/`pretrain` run folder in the Hugging Face layout (transformers' from_pretrained reads DIR).
    """
    from ..errors import UsageError
    from ..ops.download import DownloadConfig, run_download

    actions = [a for a, on in (("list", list_), ("remove", bool(remove)), ("verify", bool(verify)),
                               ("export-hf", bool(export_hf))) if on]
    if len(actions) > 1:
        raise UsageError("give only one of --list, --remove, --verify, --export-hf")
    if export_hf:
        if names:
            raise UsageError(f"--export-hf takes SOURCE DIR as its values; extra arguments: {' '.join(names)}")
        from ..ops.export_hf import export_model

        result = export_model(export_hf[0], export_hf[1], do_lower_case=do_lower_case)
        typer.echo(json.dumps(result, indent=2) if json_output else result["path"])
        return
    action = actions[0] if actions else "fetch"
    targets = tuple(remove or verify or names or ())
    if action != "fetch" and names:
        raise UsageError(f"--{action} takes its names as values (e.g. --{action} NAME); extra arguments: {' '.join(names)}")
    config = DownloadConfig(
        names=targets,
        action=action,
        source=source.value,
        force=force,
        offline=offline,
        name=name,
        sha256=sha256.lower() if sha256 else None,
        do_lower_case=do_lower_case,
        revision=revision,
    )
    report = run_download(config)
    if action == "list":
        _print_rows(report.rows, report.cache_dir, json_output)
    elif json_output:
        typer.echo(json.dumps(report.items, indent=2))
    elif action == "fetch":
        for path in report.paths:
            typer.echo(str(path))
    failure = report.failure()
    if failure is not None:
        raise failure


def _print_rows(rows: list[dict], cache_dir: Path, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"cache_dir": str(cache_dir), "entries": rows}, indent=2))
        return
    from ..models.catalogue import human_count

    table = [("NAME", "SIZE", "PARAMS", "CASING", "CACHED", "ALSO KNOWN AS")]
    for r in rows:
        cached = "yes" if r["cached"] else "-"
        if r["kind"] == "model":
            size = f"L-{r['layers']} H-{r['hidden']} A-{r['heads']}" if r.get("layers") else "?"
            params = human_count(r["parameters"]) if r.get("parameters") else "-"
            also = [*r["aliases"], *([r["directory"]] if r["directory"] != r["name"] else [])]
            table.append((r["name"], size, params, r["casing"], cached, ", ".join(also)))
        else:
            table.append((r["name"], "dataset", "-", "-", cached, ", ".join(r["aliases"])))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    from .. import console

    console.info(f"cache: {cache_dir}")
