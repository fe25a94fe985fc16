"""The root ``bert`` Typer app and its global options (registered commands: ``commands.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .. import __version__, settings
from .handling import BertGroup

app = typer.Typer(
    name="bert",
    cls=BertGroup,
    help="Google's original BERT workflows on TensorFlow 2: download, tokenize, pretrain, "
    "finetune, predict, SQuAD and feature extraction.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"bert {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", envvar="BERT_QUIET", help="Only errors on stderr."),
    verbose: bool = typer.Option(False, "--verbose", "-v", envvar="BERT_VERBOSE", help="More detail on stderr."),
    no_progress: bool = typer.Option(
        False, "--no-progress", envvar="BERT_NO_PROGRESS", help="No progress bars (off anyway when stderr is not a terminal)."
    ),
    offline: bool = typer.Option(
        False, "--offline", envvar="BERT_OFFLINE", help="Use only what is cached; never touch the network."
    ),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", metavar="DIR", envvar="BERT_CACHE", help="Model and dataset cache (default: the user cache dir)."
    ),
) -> None:
    """Global options; they apply to every command."""
    settings.configure(
        settings.Settings(
            quiet=quiet, verbose=verbose and not quiet, progress=not no_progress, offline=offline, cache_dir=cache_dir
        )
    )
