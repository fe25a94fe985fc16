"""stderr output: logs, warnings, progress. stdout is reserved for data.

Use :func:`info`, :func:`warn`, :func:`debug` for messages and :func:`progress` for a rich
progress bar that only shows on a terminal and honours ``--quiet``/``--no-progress``.
``NO_COLOR`` (set and not empty, as https://no-color.org says) turns every text style off, not
only colours: rich alone would still print bold (``ESC[1m``) around ``error:`` lines.
"""

from __future__ import annotations

import os
import sys

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


def shown_path(path) -> str:
    """A path as messages show it: relative to the working directory when it lies below it
    (the way users pass ``-o run``), else as it is."""
    text = str(path)
    if not os.path.isabs(text):
        return text
    try:
        rel = os.path.relpath(text)
    except ValueError:  # another drive (Windows)
        return text
    return text if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


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
