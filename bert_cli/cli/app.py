"""The ``bert`` program: the root app with every command registered, and the one place where
errors become ``error: ...`` / ``hint: ...`` on stderr and an exit code
(0 ok, 1 failed, 2 usage, 3 not found, 130 interrupted).

Nothing here (or in any ``bert_cli.cli`` module) imports TensorFlow: commands import their
work lazily inside the command function, so ``bert --help`` and ``bert tokenize`` stay fast.
"""

from __future__ import annotations

import os
import sys

from .. import settings
from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, BertError
from . import commands  # noqa: F401  (registers the subcommands on the root app)
from .root import app

__all__ = ["app", "main"]


def _report(err: BertError) -> None:
    from .. import console

    con = console.stderr()
    con.print(f"error: {err.message}", markup=False, style="bold red")
    if err.hint:
        con.print(f"hint: {err.hint}", markup=False, style="cyan")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app and map typed errors to exit codes."""
    debug = settings.env_flag("BERT_DEBUG")
    try:
        app(args=argv, prog_name="bert")
    except BertError as err:
        if debug:
            raise
        _report(err)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # `bert tokenize big.txt | head`: the reader went away; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except Exception as err:  # a bug: say so briefly, traceback only with BERT_DEBUG=1
        if debug:
            raise
        _report(BertError(f"unexpected {type(err).__name__}: {err}", hint="rerun with BERT_DEBUG=1 for the traceback and report it"))
        sys.exit(EXIT_FAILED)
