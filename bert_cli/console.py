"""stderr output: logs, warnings, progress. stdout is reserved for data.

Use :func:`info`, :func:`warn`, :func:`debug` for messages and :func:`progress` for a rich
progress bar that only shows on a terminal and honours ``--quiet``/``--no-progress``.
``NO_COLOR`` (set and not empty, as https://no-color.org says) turns every text style off, not
only colours: rich alone would still print bold (``ESC[1m``) around ``error:`` lines.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

from . import settings

_console = None


def stderr():
    """The rich Console on stderr (created on first use)."""
    global _console
    if _console is None or _console.file is not sys.stderr:
        from rich.console import Console

        plain = {"color_system": None} if os.environ.get("NO_COLOR", "") != "" else {}
        _console = Console(stderr=True, highlight=False, soft_wrap=True, **plain)
    return _console


def info(message: str) -> None:
    if not settings.current().quiet:
        stderr().print(message, markup=False)


def debug(message: str) -> None:
    s = settings.current()
    if s.verbose and not s.quiet:
        stderr().print(message, markup=False, style="dim")


def warn(message: str) -> None:
    if not settings.current().quiet:
        stderr().print(f"warning: {message}", markup=False, style="yellow")


def progress_enabled() -> bool:
    s = settings.current()
    return s.progress and not s.quiet and sys.stderr.isatty()


@contextlib.contextmanager
def progress(*columns: str, transient: bool = False) -> Iterator[object]:
    """A rich ``Progress`` on stderr, or a no-op stand-in when progress is off.

    ``columns`` picks presets: "bytes" (size, speed, ETA) or "count" (n/total, rate, ETA).
    The yielded object has ``add_task(description, total=...)`` and ``update/advance``.
    """
    if not progress_enabled():
        yield _NullProgress()
        return
    from rich import progress as rp

    cols = [rp.TextColumn("{task.description}"), rp.BarColumn()]
    if "bytes" in columns:
        cols += [rp.DownloadColumn(), rp.TransferSpeedColumn(), rp.TimeRemainingColumn()]
    else:
        cols += [rp.MofNCompleteColumn(), rp.TimeElapsedColumn(), rp.TimeRemainingColumn()]
    with rp.Progress(*cols, console=stderr(), transient=transient) as bar:
        yield bar


class _NullProgress:
    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, *args, **kwargs) -> None:
        pass

    def advance(self, *args, **kwargs) -> None:
        pass
