"""The raw logits of SQuAD prediction: :class:`RawResult` and the ``raw_logits.jsonl`` file.

Raw logits file (``raw_logits.jsonl``): one JSON object per feature, in prediction order:
``{"unique_id": 1000000000, "start_logits": [...], "end_logits": [...]}`` with every position
of the ``max_seq_length`` window (padding included: the top-n selection sees it). Values are
float32 (the model's precision), written with 9 significant digits, which restores the exact
float32 value on reading (:func:`read_raw_logits` rounds back to float32), so re-running
``write_predictions`` from the file gives exactly what the live run gave.

Pure Python, no TensorFlow.
"""

from __future__ import annotations

import json
from array import array
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Sequence

from ..errors import InputError, NotFoundError
from ..fileio import AtomicOutput, atomic_write

__all__ = ["RAW_LOGITS_FILE", "RawResult", "RawLogitsWriter", "format_raw_result", "read_raw_logits",
           "write_raw_logits"]

RAW_LOGITS_FILE = "raw_logits.jsonl"


class RawResult(NamedTuple):
    """The model's output for one feature."""

    unique_id: int
    start_logits: Sequence[float]
    end_logits: Sequence[float]


def _as_float32(values: Iterable[float]) -> list[float]:
    return array("f", values).tolist()


def format_raw_result(result: RawResult) -> str:
    """One ``raw_logits.jsonl`` line (without the newline); logits rounded to float32."""
    start = ",".join("%.9g" % v for v in _as_float32(result.start_logits))
    end = ",".join("%.9g" % v for v in _as_float32(result.end_logits))
    return f'{{"unique_id": {int(result.unique_id)}, "start_logits": [{start}], "end_logits": [{end}]}}'


class RawLogitsWriter(AtomicOutput):
    """Append :class:`RawResult` lines to ``raw_logits.jsonl``; the file appears atomically on close."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._cm = atomic_write(self.path, "w")
        self._fh = self._cm.__enter__()
        self.count = 0

    def write(self, result: RawResult) -> None:
        self._fh.write(format_raw_result(result) + "\n")
        self.count += 1

    def close(self) -> None:
        if self._cm is not None:
            cm, self._cm = self._cm, None
            cm.__exit__(None, None, None)

    def abort(self) -> None:
        """Drop the partial file."""
        if self._cm is not None:
            cm, self._cm = self._cm, None
            cm.__exit__(RuntimeError, RuntimeError("aborted"), None)  # atomic_write drops its temp file


def write_raw_logits(path: str | Path, results: Iterable[RawResult]) -> int:
    """Write every result to ``path`` (atomically); returns the count."""
    with RawLogitsWriter(path) as writer:
        for result in results:
            writer.write(result)
        return writer.count


def read_raw_logits(path: str | Path) -> Iterator[RawResult]:
    """Stream the results of a ``raw_logits.jsonl`` file (values restored to exact float32)."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"raw logits file not found: {p}",
                            hint="run `bert finetune squad --do-predict` to write it")
    with open(p, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                result = RawResult(int(obj["unique_id"]), _as_float32(obj["start_logits"]),
                                   _as_float32(obj["end_logits"]))
            except (ValueError, KeyError, TypeError):
                raise InputError("not a raw-logits line (unique_id, start_logits, end_logits)",
                                 path=p, line=line_no) from None
            if len(result.start_logits) != len(result.end_logits) or not result.start_logits:
                raise InputError("start_logits and end_logits differ in length", path=p, line=line_no)
            yield result
