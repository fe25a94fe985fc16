"""The history of a training run and its ``report.html`` (loss and eval curves as inline SVG).

:class:`HistoryRecorder` listens to the progress events of ``finetune``, ``finetune squad``
and ``pretrain`` (``train``: step, loss, learning_rate; ``eval``: step, metrics/results) and
appends one JSON line per event to ``DIR/history.jsonl`` as they come, so a run killed and
resumed keeps the curve of its first part (:func:`read_history` keeps the newest entry of each
step). :func:`write_report` draws ``DIR/report.html`` from it: one self-contained page, no
JavaScript, no network, no plotting library. Pure Python.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from .fileio import atomic_write
from .rundir import HISTORY_FILE, REPORT_FILE

__all__ = ["HistoryRecorder", "read_history", "write_report", "svg_chart"]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)  # numpy scalars
        except (TypeError, ValueError):
            return None
    value = float(value)
    return value if math.isfinite(value) else None


class HistoryRecorder:
    """A progress listener that appends train/eval points to ``DIR/history.jsonl``.

    ``enabled=False`` (a non-chief worker) records nothing. The file is opened at the first
    point (the run folder exists by then) and closed by :meth:`close`.
    """

    def __init__(self, directory: str | os.PathLike, *, enabled: bool = True) -> None:
        self.path = Path(directory) / HISTORY_FILE
        self.enabled = enabled
        self._fh = None

    def __call__(self, event: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        phase = event.get("phase")
        if phase == "train" and _number(event.get("loss")) is not None and "step" in event:
            point = {"kind": "train", "step": int(event["step"]), "loss": _number(event["loss"])}
            lr = _number(event.get("learning_rate"))
            if lr is not None:
                point["learning_rate"] = lr
        elif phase == "eval" and (event.get("metrics") or event.get("results")):
            values = event.get("metrics") or event.get("results") or {}
            metrics = {str(k): _number(v) for k, v in values.items() if k != "global_step" and _number(v) is not None}
            step = event.get("step", values.get("global_step"))
            point = {"kind": "eval", "step": int(step) if _number(step) is not None else None, "metrics": metrics}
        else:
            return
        try:
            if self._fh is None:
                if not self.path.parent.is_dir():
                    return
                self._fh = open(self.path, "a", encoding="utf-8")
            self._fh.write(json.dumps(point) + "\n")
            self._fh.flush()
        except OSError:  # the history is a convenience: never fail a run over it
            self.enabled = False

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_history(directory: str | os.PathLike) -> dict[str, list[dict]]:
    """``{"train": [...], "eval": [...]}`` sorted by step, the newest entry of each step kept
    (a resumed run redoes the steps after its last checkpoint); unreadable lines are skipped."""
    path = Path(directory) / HISTORY_FILE
    points: dict[str, dict] = {"train": {}, "eval": {}}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {"train": [], "eval": []}
    for n, line in enumerate(text.splitlines()):
        try:
            point = json.loads(line)
        except ValueError:
            continue
        if isinstance(point, dict) and point.get("kind") in points:
            step = point.get("step")
            points[point["kind"]][step if step is not None else f"#{n}"] = point
    return {kind: sorted(by_step.values(), key=lambda p: (p.get("step") is None, p.get("step") or 0))
            for kind, by_step in points.items()}


# ============================================================================ SVG


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def svg_chart(title: str, series: Mapping[str, list[tuple[float, float]]], *, width: int = 640,
              height: int = 260, x_label: str = "step") -> str:
    """A line chart of ``series`` (name -> [(x, y), ...]) as an inline ``<svg>`` element."""
    colours = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
    pts = [p for values in series.values() for p in values]
    left, right, top, bottom = 60, 150, 28, 36
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
           f'<text x="{left}" y="18" font-weight="bold">{html.escape(title)}</text>']
    if not pts:
        out.append(f'<text x="{left}" y="{height // 2}">no points</text></svg>')
        return "\n".join(out)
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - (abs(y0) or 1) * 0.1, y1 + (abs(y1) or 1) * 0.1
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for t in _ticks(y0, y1):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" font-size="11">{_fmt(t)}</text>')
    for t in _ticks(x0, x1):
        out.append(f'<text x="{sx(t):.1f}" y="{top + ph + 16}" text-anchor="middle" font-size="11">{_fmt(t)}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 4}" text-anchor="middle" font-size="11">'
               f'{html.escape(x_label)}</text>')
    for i, (name, values) in enumerate(series.items()):
        colour = colours[i % len(colours)]
        if len(values) == 1:
            x, y = values[0]
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>')
        elif values:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        ly = top + 14 + 16 * i
        out.append(f'<line x1="{left + pw + 10}" x2="{left + pw + 26}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{colour}" stroke-width="2"/>'
                   f'<text x="{left + pw + 30}" y="{ly}" font-size="11">{html.escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


# ============================================================================ the page


def write_report(directory: str | os.PathLike, title: str, rows: list[tuple[str, str]]) -> Path:
    """``DIR/report.html``: ``rows`` (what the end-of-run table shows) and the curves of
    ``history.jsonl`` (training loss, learning rate, each eval metric); returns its path."""
    directory = Path(directory)
    history = read_history(directory)
    train = history["train"]
    charts = []
    if train:
        charts.append(svg_chart("training loss", {"loss": [(p["step"], p["loss"]) for p in train]}))
        lr = [(p["step"], p["learning_rate"]) for p in train if "learning_rate" in p]
        if lr:
            charts.append(svg_chart("learning rate", {"learning_rate": lr}))
    evals = [p for p in history["eval"] if p.get("step") is not None]
    names = sorted({k for p in evals for k in p.get("metrics", {})})
    losses = [k for k in names if "loss" in k]
    others = [k for k in names if k not in losses]
    for group, label in ((losses, "eval losses"), (others, "eval metrics")):
        if group:
            charts.append(svg_chart(label, {k: [(p["step"], p["metrics"][k]) for p in evals if k in p["metrics"]]
                                            for k in group}))
    table = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    body = "\n".join(f"<figure>{c}</figure>" for c in charts) or "<p>No training history was recorded.</p>"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}th{{text-align:left;padding-right:2em}}
figure{{margin:1em 0}}svg text{{font-family:sans-serif}}</style></head>
<body><h1>{html.escape(title)}</h1>
<table>
{table}
</table>
{body}
<p><small>{len(train)} training points, {len(evals)} evaluations, from {HISTORY_FILE}.</small></p>
</body></html>
"""
    path = directory / REPORT_FILE
    with atomic_write(path) as fh:
        fh.write(page)
    return path
