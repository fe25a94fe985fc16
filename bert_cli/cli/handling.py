"""The one place where typed errors become ``error: ...`` / ``hint: ...`` on stderr and an exit
code (0 ok, 1 failed, 2 usage, 3 not found, 130 interrupted).

Every registered command is wrapped by :func:`guarded`, so the mapping also holds when the app
is driven in-process (``typer.testing.CliRunner``); :func:`bert_cli.cli.app.main` adds the
last-resort handling of interrupts, broken pipes and unexpected exceptions.
"""

from __future__ import annotations

import functools
from typing import Callable

import typer

from .. import settings
from ..errors import BertError


def report(err: BertError) -> None:
    """Print ``error: message`` and, when there is one, ``hint: next step`` on stderr."""
    from .. import console

    con = console.stderr()
    con.print(f"error: {err.message}", markup=False, style="bold red")
    if err.hint:
        con.print(f"hint: {err.hint}", markup=False, style="cyan")


def guarded(command: Callable) -> Callable:
    """Wrap a command so a BertError exits with its code after :func:`report` (``BERT_DEBUG=1``: re-raise)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except BertError as err:
            if settings.env_flag("BERT_DEBUG"):
                raise
            report(err)
            raise typer.Exit(err.exit_code) from None

    return wrapper
