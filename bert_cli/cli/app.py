"""The ``bert`` program: the root app with every command registered, and the entry point.

Typed errors and OS errors are mapped to exit codes by :mod:`bert_cli.cli.handling`; :func:`main`
adds SIGTERM handled as Ctrl-C, and the last resort for interrupts (130), a closed stdout pipe
(0) and unexpected exceptions (1, with the traceback only under ``BERT_DEBUG=1``).

Nothing here (or in any ``bert_cli.cli`` module) imports TensorFlow: commands import their
work lazily inside the command function, so ``bert --help`` and ``bert tokenize`` stay fast.
"""

from __future__ import annotations

import os
import signal
import sys

from .. import settings
from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, BertError
from . import commands  # noqa: F401  (registers the subcommands on the root app)
from .handling import os_error_exit, report, say_interrupted, silence_stdout
from .root import app

__all__ = ["app", "main"]


def interrupt_on_sigterm() -> None:
    """Handle SIGTERM (``timeout``, job schedulers, ``kill``) as Ctrl-C: KeyboardInterrupt in the
    main thread, so every cleanup path runs (temporary files removed) and the exit code is 130.

    A forked child process inherits the handler; there it puts the default back and dies of the
    signal, as if the handler had never been installed (spawned children start with the default).
    """
    owner = os.getpid()

    def on_sigterm(signum, frame):
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)


def _flush_stdout(code: int | str | None) -> int | str | None:
    """Flush what a command left buffered; returns the exit code. An interrupted run's unwritten
    output is dropped (a stuck reader cannot hold the exit); a reader that already went away is
    not an error; a full disk is (exit 1)."""
    if code == EXIT_INTERRUPTED:
        silence_stdout()
        return code
    try:
        sys.stdout.flush()
    except OSError as err:
        if err.filename is None:
            err.filename = "<stdout>"
        failed = os_error_exit(err)
        silence_stdout()  # the interpreter's own last flush must not fail again
        return failed or code
    except ValueError:  # stdout closed
        pass
    return code


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    debug = settings.env_flag("BERT_DEBUG")
    interrupt_on_sigterm()
    try:
        app(args=argv, prog_name="bert")
    except SystemExit as done:
        sys.exit(_flush_stdout(done.code))
    except BertError as err:  # raised outside a command (e.g. a global option's callback)
        if debug:
            raise
        report(err)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        say_interrupted(sys.argv[1:] if argv is None else argv)
        sys.exit(EXIT_INTERRUPTED)
    except OSError as err:  # outside a command; a closed stdout pipe: 0, quietly
        sys.exit(os_error_exit(err))
    except Exception as err:  # a bug: say so briefly, traceback only with BERT_DEBUG=1
        if debug:
            raise
        report(BertError(f"unexpected {type(err).__name__}: {err}", hint="rerun with BERT_DEBUG=1 for the traceback and report it"))
        sys.exit(EXIT_FAILED)
