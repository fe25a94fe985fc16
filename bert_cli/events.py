"""Progress events: how the long-running work reports to whoever shows it (the CLI's renderer).

A command's ``run(config, progress=None)`` calls ``progress(event)`` with plain dicts (``phase``
and the phase's values); :func:`emit` does nothing when no one listens. Pure Python.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["Progress", "emit"]

#: A listener for progress events (each a dict with at least ``phase``).
Progress = Callable[[dict], None]


def emit(progress: Progress | None, **event: Any) -> None:
    """Send ``event`` to ``progress`` when there is one."""
    if progress is not None:
        progress(event)
