"""The one renderer of progress events (:mod:`bert_cli.events`) for every long phase.

A command builds a :class:`Phases` (a context manager and the ``progress`` callback its op
gets) and the op reports what it does as plain event dicts:

==============  =================================================================================
field           meaning
==============  =================================================================================
``phase``       what runs: featurize, train, eval, predict, postprocess, extract, tokenize, ...
``split``       optional: which data (train, dev, test); part of the phase's name
``done``        work done so far in ``unit`` (``train`` events count ``step`` of ``total_steps``)
``total``       all the work, when known (the bar then shows an ETA)
``unit``        examples, steps, lines, questions, bytes, documents, instances, ...
``final``       the phase is over (it is also over when ``done`` reaches ``total``)
==============  =================================================================================

On a terminal (stderr a TTY, no ``--quiet``/``--no-progress``) each phase gets ONE rich bar on
stderr with its count, rate and ETA; stdout is never touched. Anywhere else there are no bars
and each phase ends with ONE plain summary line (``train: 48 steps in 5.1s (9.4 steps/s), final
loss 0.3120``), for logs and cron, plus the periodic lines of ``lines`` (the training lines).
"""

from __future__ import annotations

import contextlib
import datetime
import time
from typing import Callable, Iterator, Optional

from rich.filesize import decimal
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn
from rich.text import Text

from . import console

Listener = Callable[[dict], None]

#: Phases whose op already writes its own closing line (no second summary line for them).
SELF_SUMMARIZED = frozenset({"featurize", "read"})


class _Phase:
    def __init__(self, label: str, unit: str, total: Optional[float], done: float, seconds: float | None) -> None:
        now = time.monotonic()
        self.label, self.unit, self.total = label, unit, total
        self.first = done
        self.done = done
        # a phase that reports how long it has run started then; else at its first event
        self.started = now - seconds if seconds else now
        self.finished = False
        self.task = None
        self.extra: dict = {}

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


def _amount(value: float, unit: str) -> str:
    if unit == "bytes":
        return decimal(int(value))
    return f"{int(value)} {unit}" if float(value).is_integer() else f"{value:.1f} {unit}"


def _rate(value: float | None, unit: str) -> str:
    if not value:
        return "?"
    if unit == "bytes":
        return f"{decimal(int(value))}/s"
    return f"{value:.1f} {unit}/s" if value < 100 else f"{value:.0f} {unit}/s"


class Phases:
    """``progress`` callback + context manager: bars on a terminal, summary lines elsewhere.

    ``lines(event)``: plain periodic lines (e.g. the training lines); off a terminal it sees
    every event, on a terminal (bars) at most one ``train`` event per ``line_every_s`` seconds
    (the last step always) and every event without a bar. ``summary_after_s``: phases shorter
    than this end without a summary line (filters such as ``tokenize`` stay silent on small
    input); ``summaries=False``: none at all (the command prints its own).
    ``bars``: None = :func:`bert_cli.console.progress_enabled`. ``listeners`` also get every
    event (the run history recorder).
    """

    def __init__(
        self,
        *,
        lines: Listener | None = None,
        bars: bool | None = None,
        summary_after_s: float = 0.0,
        line_every_s: float = 10.0,
        listeners: tuple[Listener, ...] = (),
        summaries: bool = True,
    ) -> None:
        self.bars = console.progress_enabled() if bars is None else bars
        self.lines = lines
        self.summary_after_s = summary_after_s
        self.line_every_s = line_every_s
        self.listeners = list(listeners)
        self.summaries = summaries
        self.phases: dict[str, _Phase] = {}
        self._rich = None
        self._last_line = 0.0

    # ---------------------------------------------------------------- context

    def __enter__(self) -> "Phases":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)

    def close(self, ok: bool = True) -> None:
        """End every open phase (their summaries when ``ok``) and stop the bars."""
        if ok:
            for key, phase in list(self.phases.items()):
                if not phase.finished:
                    self._finish(key, phase)
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    # ---------------------------------------------------------------- events

    def __call__(self, event: dict) -> None:
        for listener in self.listeners:
            listener(event)
        name = str(event.get("phase") or "")
        done, total, unit = event.get("done"), event.get("total"), event.get("unit")
        if name == "train" and done is None and "step" in event:
            done, total, unit = event["step"], event.get("total_steps"), unit or "steps"
        if name == "start" and "step" in event:  # pretraining's start: the train bar begins here
            name, done, total, unit = "train", event["step"], event.get("total_steps"), "steps"
            event = dict(event, phase="start")
        key = name + (f" {event['split']}" if event.get("split") else "")
        phase = self.phases.get(key)
        if done is not None:
            if phase is None or phase.finished or done < phase.done:
                phase = self._start(key, unit or "items", total, done, event.get("seconds") if done else None)
            self._advance(phase, done, total, event)
        if self.lines is not None and event.get("phase") != "start" and self._line_due(event):
            self.lines(event)
        if phase is not None and not phase.finished and (
            event.get("final") or (phase.total is not None and phase.done >= phase.total)
        ):
            self._finish(key, phase)

    def _line_due(self, event: dict) -> bool:
        if not self.bars:
            return True
        if event.get("phase") != "train":
            return "done" not in event  # the bar shows the progress of the others
        now = time.monotonic()
        last = event.get("step") is not None and event.get("step") == event.get("total_steps")
        if last or now - self._last_line >= self.line_every_s:
            self._last_line = now
            return True
        return False

    # ---------------------------------------------------------------- phases

    def _start(self, key: str, unit: str, total, done, seconds) -> _Phase:
        phase = _Phase(key, unit, total, done, seconds)
        old = self.phases.get(key)
        self.phases[key] = phase
        if self.bars:
            bar = self._bar()
            if old is not None and old.task is not None:
                bar.reset(old.task, total=total, completed=done, description=key)
                phase.task = old.task
            else:
                phase.task = bar.add_task(key, total=total, completed=done, unit=unit, info="")
        return phase

    def _advance(self, phase: _Phase, done, total, event: dict) -> None:
        phase.done = done
        if total is not None:
            phase.total = total
        for name in ("loss", "lines", "features"):
            if event.get(name) is not None:
                phase.extra[name] = event[name]
        if phase.task is not None and self._rich is not None:
            info = f"loss {event['loss']:.4f}" if isinstance(event.get("loss"), float) else ""
            self._rich.update(phase.task, completed=done, total=phase.total, info=info)

    def _finish(self, key: str, phase: _Phase) -> None:
        phase.finished = True
        if phase.task is not None and self._rich is not None:  # the phase did all its work: a full bar
            self._rich.update(phase.task, completed=phase.done, total=max(phase.done, 1))
            self._rich.refresh()
            return
        if not self.summaries or key.split(" ")[0] in SELF_SUMMARIZED or phase.seconds < self.summary_after_s:
            return
        console.info(summary_line(phase))

    def _bar(self):
        if self._rich is None:
            self._rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                _CountColumn(),
                _RateColumn(),
                _EtaColumn(),
                TextColumn("{task.fields[info]}"),
                console=console.stderr(),
                redirect_stdout=False,  # stdout carries data: never through the bar's console
                redirect_stderr=False,
            )
            self._rich.start()
        return self._rich


def summary_line(phase: _Phase) -> str:
    """``train: 48 steps in 5.1s (9.4 steps/s), final loss 0.3120`` (one plain line per phase);
    a phase that began part way (a resumed run) counts what it did: ``train: 32 steps (17-48 of
    48) in 3.4s ...``."""
    seconds = phase.seconds
    work = phase.done - phase.first if phase.done > phase.first else phase.done
    amount = _amount(phase.done, phase.unit)
    if phase.unit == "steps" and 0 < phase.first < phase.done:
        total = f" of {int(phase.total)}" if phase.total is not None else ""
        amount = f"{_amount(work, phase.unit)} ({int(phase.first) + 1}-{int(phase.done)}{total})"
    if phase.unit == "bytes" and "lines" in phase.extra:
        amount = f"{phase.extra['lines']} lines ({amount})"
    text = f"{phase.label}: {amount} in {seconds:.1f}s"
    if seconds > 0 and work:
        text += f" ({_rate(work / seconds, phase.unit)})"
    if isinstance(phase.extra.get("loss"), float):
        text += f", final loss {phase.extra['loss']:.4f}"
    return text


def _task_unit(task) -> str:
    return task.fields.get("unit", "")


class _CountColumn(ProgressColumn):
    """``12/48 steps`` (``12 lines`` while the total is unknown; sizes for bytes)."""

    def render(self, task) -> Text:
        unit = _task_unit(task)
        if unit == "bytes":
            done = _amount(task.completed, unit)
            return Text(f"{done}/{_amount(task.total, unit)}" if task.total is not None else done)
        total = f"/{int(task.total)}" if task.total is not None else ""
        return Text(f"{int(task.completed)}{total} {unit}")


class _RateColumn(ProgressColumn):
    """``9.4 steps/s``"""

    def render(self, task) -> Text:
        speed = task.finished_speed if task.finished else task.speed
        return Text(_rate(speed, _task_unit(task)) if speed else "")


class _EtaColumn(ProgressColumn):
    """``ETA 0:01:05`` while running, ``in 0:02:10`` once finished."""

    max_refresh = 0.5

    def render(self, task) -> Text:
        if task.finished:
            return Text(f"in {datetime.timedelta(seconds=int(task.finished_time or task.elapsed or 0))}")
        left = task.time_remaining
        return Text(f"ETA {datetime.timedelta(seconds=int(left))}" if left is not None else "ETA -:--:--")


def _is_tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def streaming(*, reads_stdin: bool, lines: Listener | None = None, data_on_stdout: bool = True) -> Phases:
    """The renderer of a filter (tokenize, extract, predict): data on stdout, input maybe on stdin.

    No bars when stdout is a terminal (they would tear through the data) or when the input is
    typed at a terminal; a summary line only for runs of a second or more (small inputs in a
    pipeline stay silent). ``lines``: periodic plain lines (off a terminal).
    """
    import sys

    bars = (console.progress_enabled() and not (data_on_stdout and _is_tty(sys.stdout))
            and not (reads_stdin and _is_tty(sys.stdin)))
    return Phases(bars=bars, summary_after_s=1.0, lines=lines)


def count_lines(paths) -> int | None:
    """Lines in regular files (a cheap pass for a progress total); None when one cannot be read."""
    total = 0
    for path in paths:
        try:
            with open(path, "rb") as fh:
                last = b"\n"
                while chunk := fh.read(1 << 20):
                    total += chunk.count(b"\n")
                    last = chunk[-1:]
                total += last != b"\n"
        except OSError:
            return None
    return total


# ============================================================================ transfers


@contextlib.contextmanager
def transfers() -> Iterator["TransferBars"]:
    """Bars for byte transfers (downloads, installs) through :class:`Phases`: one bar per file
    on a terminal, nothing elsewhere (the transfer code says what it wrote itself)."""
    with Phases(summaries=False) as phases:
        yield TransferBars(phases)


class TransferBars:
    """The ``add_task`` / ``update`` surface :func:`bert_cli.models.transfer.fetch` drives, as
    ``bytes`` phase events of :class:`Phases`."""

    def __init__(self, phases: Phases) -> None:
        self.phases = phases
        self.tasks: list[list] = []  # [description, completed, total]

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **_: object) -> int:
        self.tasks.append([description, completed, total])
        self._emit(len(self.tasks) - 1)
        return len(self.tasks) - 1

    def update(self, task: int, *, total: float | None = None, completed: float | None = None,
               advance: float | None = None, **_: object) -> None:
        entry = self.tasks[task]
        if total is not None:
            entry[2] = total
        if completed is not None:
            entry[1] = completed
        if advance is not None:
            entry[1] += advance
        self._emit(task)

    def advance(self, task: int, amount: float) -> None:
        self.update(task, advance=amount)

    def _emit(self, task: int) -> None:
        description, done, total = self.tasks[task]
        self.phases({"phase": description, "done": done, "total": total, "unit": "bytes"})
