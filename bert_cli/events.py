"""Progress events: how the long-running work reports to whoever shows it (the CLI's renderer).

A command's ``run(config, progress=None)`` calls ``progress(event)`` with plain dicts (``phase``
and the phase's values); :func:`emit` does nothing when no one listens. Long phases also say
how far they are: ``done`` and (when known) ``total`` in ``unit``, and ``final`` at their end
(:func:`counter` makes such a callback); :mod:`bert_cli.progress` draws them. Pure Python.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["Progress", "emit", "counter"]

#: A listener for progress events (each a dict with at least ``phase``).
Progress = Callable[[dict], None]


def emit(progress: Progress | None, **event: Any) -> None:
    """Send ``event`` to ``progress`` when there is one."""
    if progress is not None:
        progress(event)


def counter(progress: Progress | None, phase: str, total: int | None = None, *, unit: str = "examples",
            **fields: Any) -> Callable[[int], None] | None:
    """A ``done -> None`` callback reporting ``phase`` progress (None when no one listens)."""
    if progress is None:
        return None

    def report(done: int) -> None:
        progress({"phase": phase, "done": done, "total": total, "unit": unit, **fields})

    return report
