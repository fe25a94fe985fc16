"""The end of a training run as a person reads it: a small table on stderr (final metrics, the
seed, where everything was written) and ``report.html`` with the curves in the run folder.

Used by ``finetune``, ``finetune squad`` and ``pretrain``::

    with training_run("finetune", output_dir) as run:
        result = ops_run(config, progress=run.progress)
        run.finish(result)

:func:`training_run` combines the progress renderer (:class:`~bert_cli.progress.Phases`
with the training lines) and the history recorder (:class:`~bert_cli.runreport.HistoryRecorder`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Mapping

from .. import console, rundir, settings


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _checkpoint(output_dir: Path, step: Any) -> str | None:
    prefix = output_dir / f"model.ckpt-{step}"
    return str(prefix) if Path(f"{prefix}.index").is_file() else None


def summary_rows(result: Mapping[str, Any], output_dir: Path, *, final_loss: float | None = None) -> list[tuple[str, str]]:
    """``(name, value)`` rows of a run's result dict (finetune, finetune squad or pretrain).

    ``final_loss``: the last training step's loss, as the progress events said (else the
    result's ``loss``). When the run kept its best weights (``--keep-best``), ``global_step`` is
    the best step's and ``last_step`` the one training ended at: the rows say both, and list
    that last step's checkpoint.
    """
    rows: list[tuple[str, str]] = []
    seed = result.get("seed")
    rows.append(("seed", f"{seed} (repeat with --seed {seed})" if seed is not None else "none (unseeded run)"))
    global_step = result.get("global_step")
    final_step = result.get("last_step")
    ended_elsewhere = final_step is not None and global_step is not None and int(final_step) != int(global_step)
    if global_step is not None:
        kept = f" (the best/ weights; training ended at step {final_step})" if ended_elsewhere and result.get("best") else ""
        rows.append(("global_step", f"{global_step}{kept}"))
    train = result.get("train") if isinstance(result.get("train"), Mapping) else {}
    loss = train.get("final_loss", final_loss if final_loss is not None else result.get("loss"))
    if isinstance(loss, float) and loss == loss:
        rows.append(("final training loss", f"{loss:.4f}" + (f" (step {final_step})" if ended_elsewhere else "")))
    metrics = result.get("eval") or result.get("metrics") or {}
    for key, value in sorted(metrics.items()):
        if key != "global_step" and isinstance(value, (int, float)):
            rows.append((key, _value(value)))
    files: list[tuple[str, str]] = []
    last = final_step if ended_elsewhere else global_step  # the newest weights, not best/'s
    checkpoint = result.get("checkpoint") or _checkpoint(output_dir, last)
    if checkpoint:
        files.append(("checkpoint", str(checkpoint)))
    if result.get("eval") and (output_dir / rundir.EVAL_FILE).is_file():
        files.append(("eval results", str(output_dir / rundir.EVAL_FILE)))
    predict = result.get("predict") or {}
    if predict.get("file"):
        files.append(("test predictions", str(predict["file"])))
    for name, path in sorted((predict.get("files") or {}).items()):
        files.append((name.replace("_", " "), str(path)))
    if result.get("best"):
        best = result["best"]
        if (output_dir / rundir.BEST_DIR).is_dir():
            files.append((f"best ({best.get('metric')} at step {best.get('step')})", str(output_dir / rundir.BEST_DIR)))
    for key, label in (("export", "weights-only export"), ("saved_model", "SavedModel")):
        if result.get(key):
            files.append((label, str(result[key])))
    return rows + [(name, console.shown_path(path)) for name, path in files]


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    """The rows as a two-column table on stderr (nothing with --quiet)."""
    if settings.current().quiet or not rows:
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(name, value)
    console.stderr().print(table)


class TrainingRun:
    """Progress bars/lines, the recorded history and the closing summary of one run."""

    def __init__(self, command: str, output_dir: Path) -> None:
        from ..cluster import this_process_is_chief
        from ..runreport import HistoryRecorder
        from ..progress import Phases
        from .render import training_line

        self.command = command
        self.output_dir = Path(output_dir)
        self.chief = this_process_is_chief()
        self.recorder = HistoryRecorder(self.output_dir, enabled=self.chief)
        self.last_loss: float | None = None
        self.progress = Phases(lines=training_line, listeners=(self._record, self._remember))

    def _record(self, event: dict) -> None:
        """History into the run folder; each run of ``--repeat`` (events "run" and "run_done")
        gets its own ``history.jsonl`` and ``report.html`` in its ``seed-N/`` folder."""
        from ..runreport import HistoryRecorder

        phase = event.get("phase")
        if phase == "run":
            self.recorder.close()
            self.recorder = HistoryRecorder(Path(event["output_dir"]), enabled=self.chief)
        elif phase == "run_done":
            self.recorder.close()
            folder = Path(event["output_dir"])
            if self.chief and folder.is_dir():
                self._report(folder, summary_rows(event["result"], folder))
        else:
            self.recorder(event)

    def _remember(self, event: dict) -> None:
        if event.get("phase") == "train" and isinstance(event.get("loss"), float):
            self.last_loss = event["loss"]

    def _report(self, folder: Path, rows: list[tuple[str, str]]) -> Path | None:
        from ..runreport import write_report

        try:
            return write_report(folder, f"bert {self.command}: {folder}", rows)
        except OSError as exc:
            console.warn(f"could not write {folder / rundir.REPORT_FILE}: {exc}")
            return None

    def finish(self, result: Mapping[str, Any]) -> None:
        """Close the bars, write ``report.html`` (chief, when history was recorded; a ``--repeat``
        run wrote one per seed) and show the table."""
        self.progress.close()
        self.recorder.close()
        rows = summary_rows(result, self.output_dir, final_loss=self.last_loss)
        if self.chief and "runs" not in result and self.output_dir.is_dir():
            path = self._report(self.output_dir, rows)
            if path is not None:
                rows.append(("report", str(path)))
        print_table(f"bert {self.command}: done", rows)


@contextlib.contextmanager
def training_run(command: str, output_dir: Path) -> Iterator[TrainingRun]:
    """A :class:`TrainingRun` whose bars and history file are closed on every way out."""
    run = TrainingRun(command, output_dir)
    try:
        yield run
    finally:
        run.progress.close(ok=False)
        run.recorder.close()
