"""The one place where typed errors become ``error: ...`` / ``hint: ...`` on stderr and an exit
code (0 ok, 1 failed, 2 usage, 3 not found, 130 interrupted).

Every registered command is wrapped by :func:`guarded`, so the mapping also holds when the app
is driven in-process (``typer.testing.CliRunner``); :func:`bert_cli.cli.app.main` adds the
last-resort handling of interrupts and unexpected exceptions.

Click's own usage errors (an unknown option, a missing or bad value, a value out of range) are
the same two lines, ``error: ...`` and ``hint: see bert COMMAND --help``, exit 2 (no Rich box):
:class:`BertGroup`, the root app's group class, runs Click in non-standalone mode and maps them
with :func:`report_usage`.

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
from typer.core import TyperGroup

from .. import settings
from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, BertError, UsageError
from ..fileio import os_error

# Typer names one of Click's errors publicly (BadParameter); every error Click raises while
# parsing derives from the base of its hierarchy, ClickException.
CLICK_ERROR: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

def report(err: BertError) -> None:
    """Print ``error: message`` and, when there is one, ``hint: next step`` on stderr."""
    from .. import console

    con = console.stderr()
    con.print(f"error: {err.message}", markup=False, style="bold red")
    if err.hint:
        con.print(f"hint: {err.hint}", markup=False, style="cyan")


def report_usage(err: Exception, command_of_args: str | None = None) -> int:
    """A Click error as ``error: ...`` / ``hint: see bert COMMAND --help``; returns its exit code
    (2 for usage errors). Typer's own "no arguments: here is the help" prints nothing more.
    ``command_of_args``: the command the arguments name, for errors Click raises before it has
    a command context (an option missing its value)."""
    code = getattr(err, "exit_code", EXIT_USAGE)
    if type(err).__name__ == "NoArgsIsHelpError":  # the help was printed already (as Typer does)
        return code
    message = err.format_message().strip().rstrip(".")  # type: ignore[attr-defined]
    if message[:1].isupper() and message[1:2].islower():
        message = message[0].lower() + message[1:]
    ctx = getattr(err, "ctx", None)
    command = ctx.command_path if ctx is not None else f"bert {command_of_args}" if command_of_args else "bert"
    report(UsageError(message, hint=f"see {command} --help"))
    return code


RESUMABLE = ("pretrain", "finetune")  # a rerun of the same command goes on from the last checkpoint


def say_interrupted(argv) -> None:
    """One line that says the run was interrupted (and, for a training run, how to go on)."""
    if settings.current().quiet:
        return
    words = [a for a in argv if not str(a).startswith("-")]
    hint = ("rerun the same command: it resumes from the run's last checkpoint, or starts over if none was saved"
            if words and words[0] in RESUMABLE else None)
    try:
        report(BertError("interrupted", hint=hint))
    except (OSError, ValueError):  # stderr gone too
        pass


class BertGroup(TyperGroup):
    """The root app's group: Click's usage errors (and a BertError raised while parsing, such as
    ``--do-train=maybe``) become ``error:`` / ``hint:`` lines on stderr; flags show no metavar."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except CLICK_ERROR as err:
            words = [a for a in (sys.argv[1:] if args is None else args) if not str(a).startswith("-")]
            sys.exit(report_usage(err, next((w for w in words if w in self.commands), None)))
        except BertError as err:
            if settings.env_flag("BERT_DEBUG"):
                raise
            report(err)
            sys.exit(err.exit_code)
        except typer.Abort:
            report(BertError("aborted"))
            sys.exit(EXIT_FAILED)
        if code == EXIT_INTERRUPTED:  # Typer turns Ctrl-C (and SIGTERM, see app.py) into exit 130
            say_interrupted(sys.argv[1:] if args is None else args)
        sys.exit(code if isinstance(code, int) else EXIT_OK)

    def get_params(self, ctx) -> list:
        from .options import without_flag_metavars

        return without_flag_metavars(super().get_params(ctx))


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


def guarded(command: Callable, path: str | None = None) -> Callable:
    """Wrap a command so a BertError exits with its code after :func:`report`, and an OSError
    as :func:`os_error_exit` says (``BERT_DEBUG=1``: re-raise, except a closed stdout pipe).
    A usage error without a hint gets ``see PATH --help`` (``path``: ``bert finetune``), as
    Click's own usage errors do (:func:`report_usage`)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        debug = settings.env_flag("BERT_DEBUG")
        try:
            return command(*args, **kwargs)
        except BertError as err:
            if debug:
                raise
            if path is not None and isinstance(err, UsageError) and not err.hint:
                err.hint = f"see {path} --help"
            report(err)
            raise typer.Exit(err.exit_code) from None
        except OSError as err:
            if debug and not (isinstance(err, BrokenPipeError) and stdout_closed()):
                raise
            raise typer.Exit(os_error_exit(err)) from None

    return wrapper
