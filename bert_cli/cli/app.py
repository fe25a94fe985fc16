"""The ``bert`` program: the root app with every command registered, and the entry point.

Typed errors are mapped to exit codes by :mod:`bert_cli.cli.handling`; :func:`main` adds the
last resort for interrupts (130), a closed stdout pipe (0) and unexpected exceptions (1, with
the traceback only under ``BERT_DEBUG=1``).

Nothing here (or in any ``bert_cli.cli`` module) imports TensorFlow: commands import their
work lazily inside the command function, so ``bert --help`` and ``bert tokenize`` stay fast.
"""

from __future__ import annotations

import os
import sys

from .. import settings
from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, BertError
from . import commands  # noqa: F401  (registers the subcommands on the root app)
from .handling import report
from .root import app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    debug = settings.env_flag("BERT_DEBUG")
    try:
        app(args=argv, prog_name="bert")
    except BertError as err:  # raised outside a command (e.g. a global option's callback)
        if debug:
            raise
        report(err)
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
        report(BertError(f"unexpected {type(err).__name__}: {err}", hint="rerun with BERT_DEBUG=1 for the traceback and report it"))
        sys.exit(EXIT_FAILED)
