"""The one place where typed errors become ``error: ...`` / ``hint: ...`` on stderr and an exit
code (0 ok, 1 failed, 2 usage, 3 not found, 130 interrupted).

Every registered command is wrapped by :func:`guarded`, so the mapping also holds when the app
is driven in-process (``typer.testing.CliRunner``); :func:`bert_cli.cli.app.main` adds the
last-resort handling of interrupts and unexpected exceptions.

Ordinary OS errors (a full disk, a read-only folder, a directory where a file was expected, a
permission) are not bugs: :func:`bert_cli.fileio.os_error` turns them into one ``error:`` line naming the file
(exit 1). A closed stdout pipe (``bert tokenize big.txt | head -1``) is not an error at all:
exit 0, quietly (:func:`os_error_exit`).
"""

from __future__ import annotations

import functools
import os
import select
import sys
from typing import Callable

import typer

from .. import settings
from ..errors import EXIT_FAILED, EXIT_OK, BertError
from ..fileio import os_error

def report(err: BertError) -> None:
    """Print ``error: message`` and, when there is one, ``hint: next step`` on stderr."""
    from .. import console

    con = console.stderr()
    con.print(f"error: {err.message}", markup=False, style="bold red")
    if err.hint:
        con.print(f"hint: {err.hint}", markup=False, style="cyan")


def stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader went away (``| head``)."""
    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(ev & select.POLLERR for _, ev in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush cannot fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def os_error_exit(err: OSError) -> int:
    """The exit code of an OSError that reached the top: 0 for a closed stdout pipe (silently),
    else 1 after :func:`report` of :func:`os_error`."""
    if isinstance(err, BrokenPipeError) and stdout_closed():
        silence_stdout()
        return EXIT_OK
    report(os_error(err))
    return EXIT_FAILED


def guarded(command: Callable) -> Callable:
    """Wrap a command so a BertError exits with its code after :func:`report`, and an OSError
    as :func:`os_error_exit` says (``BERT_DEBUG=1``: re-raise, except a closed stdout pipe)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        debug = settings.env_flag("BERT_DEBUG")
        try:
            return command(*args, **kwargs)
        except BertError as err:
            if debug:
                raise
            report(err)
            raise typer.Exit(err.exit_code) from None
        except OSError as err:
            if debug and not (isinstance(err, BrokenPipeError) and stdout_closed()):
                raise
            raise typer.Exit(os_error_exit(err)) from None

    return wrapper
