"""Run folders (``--output-dir`` of ``pretrain``, ``finetune``, ``finetune squad``): their files,
and one run at a time.

**The contract** (what ``bert predict``, ``bert squad-threshold`` and ``--model RUN_DIR`` read
back; the names are here once): :data:`RUN_FILE` ``bert_run.json`` (a fine-tuned classifier:
task, labels, casing, max_seq_length; read by :func:`load_run_info`, written with the model's
``vocab.txt`` and ``bert_config.json`` copies by :func:`write_run_folder`), :data:`SQUAD_RUN_FILE`
``squad_run.json`` (how SQuAD predictions were made), :data:`EVAL_FILE` ``eval_results.txt``
(:func:`format_eval_results`), :data:`TEST_FILE` ``test_results.tsv`` (:func:`format_test_line`),
:data:`SEED_FILE` ``seed.json`` (the seed the run used, also when drawn at random:
:func:`run_seed`, :func:`record_seed`), :data:`HISTORY_FILE` ``history.jsonl`` and
:data:`REPORT_FILE` ``report.html`` (the loss and eval curves, :mod:`bert_cli.runreport`),
``finetune ner``'s :data:`NER_PREDICTIONS_FILE` ``test_predictions.txt`` and
:data:`EVAL_REPORT_FILE` ``eval_report.txt``, and the sub-folders :data:`BEST_DIR` ``best/``, :data:`EXPORT_DIR` ``export/``,
:data:`SAVED_MODEL_DIR` ``saved_model/``.

**Seeds**: a run without ``--seed`` draws one (:func:`run_seed`) and records it in
``seed.json`` before its first checkpoint, so ``--seed N`` repeats it and a rerun that resumes
the folder reuses it (same data order). A folder with checkpoints from before seeds were
recorded keeps running unseeded, as it began.

**One run at a time**: :func:`exclusive` holds an advisory lock (``fcntl.flock``) on
``DIR/.bert.lock`` for the whole run, so a second ``bert`` pointed at the same folder fails at
once, naming who holds it, instead of interleaving checkpoints and result files with the first.
The kernel drops the lock when its process dies (kill -9 included), so a crashed run never
blocks the next one; the file itself stays (deleting a lock file races with the next locker) and
only ever holds the holder's description; a run that fails in a folder it created removes the
folder again when nothing else was written there. Only the chief of a multi-worker cluster
locks: the other workers share its folder and write nothing there.

Pure Python (numpy for the float32 formatting), no TensorFlow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import socket
from pathlib import Path
from typing import Any, Iterator, Mapping

from .errors import ConfigError, UsageError
from .fileio import atomic_write

RUN_FILE = "bert_run.json"
SQUAD_RUN_FILE = "squad_run.json"
EVAL_FILE = "eval_results.txt"
TEST_FILE = "test_results.tsv"
NER_PREDICTIONS_FILE = "test_predictions.txt"  # finetune ner: token gold predicted (conlleval)
EVAL_REPORT_FILE = "eval_report.txt"  # finetune ner: the per-type table
BEST_DIR = "best"
EXPORT_DIR = "export"
SAVED_MODEL_DIR = "saved_model"
LOCK_FILE = ".bert.lock"
STATE_FILE = "training_state.json"  # BestTracker: keep-best / early-stopping state of a run
LOWER_IS_BETTER = ("eval_loss", "loss")
SEED_FILE = "seed.json"
HISTORY_FILE = "history.jsonl"
REPORT_FILE = "report.html"
CHECKPOINT_STATE = "checkpoint"  # the TF1 checkpoint state file: the folder holds a trained run

try:  # POSIX; elsewhere runs are not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def exclusive(directory: str | os.PathLike, command: str, *, enabled: bool = True) -> Iterator[Path]:
    """Create ``directory`` if needed and hold its run lock while the block runs.

    Raises :class:`~bert_cli.errors.UsageError` naming the holder (pid, host, command, start
    time) when another process holds it.
    """
    path = Path(directory)
    if not enabled or fcntl is None:
        yield path
        return
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    lock = path / LOCK_FILE
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            raise UsageError(
                f"{path} is in use by another run ({holder})",
                hint="wait for it to finish, or pass another --output-dir",
            ) from None
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}: bert {command}, since {started}\n".encode(), 0)
        try:
            yield path
        except BaseException:
            if created:  # a run that failed in a folder it made leaves no folder behind
                _remove_if_only_bookkeeping(path)
            raise
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _remove_if_only_bookkeeping(path: Path) -> None:
    """Remove ``path`` when it holds nothing but the lock and the seed record (a failed start)."""
    with contextlib.suppress(OSError):
        names = {p.name for p in path.iterdir()}
        if names <= {LOCK_FILE, SEED_FILE}:
            for name in names:
                (path / name).unlink()
            path.rmdir()


def draw_seed() -> int:
    """A fresh random seed (non-negative, below 2**31: every engine and ``--seed`` accept it)."""
    import secrets

    return secrets.randbelow(2**31 - 1)


def recorded_seed(directory: str | os.PathLike) -> int | None:
    """The seed in ``DIR/seed.json``, or None when there is no (readable) record."""
    path = Path(directory) / SEED_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    seed = data.get("seed") if isinstance(data, dict) else None
    return seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else None


def run_seed(directory: str | os.PathLike, requested: int | None) -> int | None:
    """The seed of a run in ``directory``: ``requested`` (``--seed``) when given, else the one
    recorded there (a resumed run keeps its data order), else a fresh :func:`draw_seed`.

    None only for a folder whose checkpoints predate seed records (unseeded, as it began).
    """
    if requested is not None:
        return requested
    recorded = recorded_seed(directory)
    if recorded is not None:
        return recorded
    if (Path(directory) / CHECKPOINT_STATE).is_file():
        return None
    return draw_seed()


def record_seed(directory: str | os.PathLike, seed: int | None) -> None:
    """Write ``DIR/seed.json`` (atomically) unless it already says ``seed``; nothing for None."""
    if seed is None or recorded_seed(directory) == seed:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    with atomic_write(path / SEED_FILE) as fh:
        fh.write(json.dumps({"seed": seed}) + "\n")


def require_trained_head(init: Mapping[str, Any] | None, output_dir: Path, head: str) -> None:
    """Evaluate/predict-only runs need trained weights: refuse to score a random head.

    ``init`` is the initial-weights report (None: no checkpoint at all). Without this, an
    eval-only rerun pointed at a folder with no checkpoint would overwrite good results with
    the scores of untrained weights.
    """
    if init is None or init.get("missing"):
        what = "no initial checkpoint" if init is None else f"{init['checkpoint']} has no {head}"
        raise UsageError(
            f"nothing trained to evaluate: no checkpoint in {output_dir} and {what}",
            hint="train first (add --do-train), or pass --model a fine-tuned run folder",
        )


# ============================================================================ best so far


@dataclasses.dataclass
class BestTracker:
    """Best value of ``metric`` so far and evaluations without improvement, persisted in
    :data:`STATE_FILE` so that a resumed run keeps its keep-best / early-stopping state."""

    metric: str
    lower_is_better: bool
    best_value: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    stopped_early: bool = False

    def improved(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value < self.best_value if self.lower_is_better else value > self.best_value

    def update(self, value: float, step: int) -> bool:
        """Record an evaluation; True when it is the best so far."""
        if self.improved(value):
            self.best_value, self.best_step, self.bad_evals = float(value), int(step), 0
            return True
        self.bad_evals += 1
        return False

    def save(self, directory: Path) -> None:
        with atomic_write(Path(directory) / STATE_FILE) as fh:
            fh.write(json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, directory: Path, metric: str) -> "BestTracker":
        """The tracker saved in ``directory`` for ``metric``, else a fresh one."""
        tracker = cls(metric, metric in LOWER_IS_BETTER)
        path = Path(directory) / STATE_FILE
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
            if isinstance(data, dict) and data.get("metric") == metric:
                for key in ("best_value", "best_step", "bad_evals", "stopped_early"):
                    if key in data:
                        setattr(tracker, key, data[key])
        return tracker


# ============================================================================ the files


def load_run_info(directory: str | os.PathLike) -> dict | None:
    """``bert_run.json`` of a run/export folder, or None when there is none."""
    path = Path(directory) / RUN_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "labels" not in data:
        raise ConfigError(f"{path}: not a bert fine-tuning run description")
    return data


def write_run_folder(directory: Path, info: Mapping[str, Any], *, vocab_file: Path, config_json: str) -> None:
    """``bert_run.json`` (``info``) + :func:`copy_model_files`: what ``--model DIR`` needs
    besides the weights (atomic writes)."""
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_write(directory / RUN_FILE) as fh:
        fh.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
    copy_model_files(directory, vocab_file=vocab_file, config_json=config_json)


def copy_model_files(directory: Path, *, vocab_file: Path | None, config_json: str) -> Path | None:
    """Copies of the model's vocabulary and config in a run folder, as ``vocab.txt`` and
    ``bert_config.json`` (atomic writes; an identical ``vocab.txt`` is left as it is), so the
    folder works as ``--model DIR``; returns the resolved ``vocab.txt`` (None without one:
    pretraining from TFRecords need not know the vocabulary)."""
    vocab = directory / "vocab.txt"
    if vocab_file is None:
        with atomic_write(directory / "bert_config.json") as fh:
            fh.write(config_json)
        return None
    vocab_file = Path(vocab_file)
    if not vocab.is_file() or vocab_file.resolve() != vocab.resolve():
        data = vocab_file.read_bytes()
        if not vocab.is_file() or vocab.read_bytes() != data:
            with atomic_write(vocab, "wb") as fh:
                fh.write(data)
    with atomic_write(directory / "bert_config.json") as fh:
        fh.write(config_json)
    return vocab.resolve()


RESUME_KEYS = ("task", "labels", "kind", "max_seq_length")  # a rerun must agree on these to resume


def check_existing_run(output_dir: Path, info: Mapping[str, Any], keys: tuple[str, ...] = RESUME_KEYS) -> None:
    """Refuse to resume, in ``output_dir``, a run that disagrees with ``info`` on ``keys``
    (another task, labels or sequence length).

    Only a run that saved a checkpoint has anything to resume: a run that failed before its
    first checkpoint (bad options, 0 training steps) does not claim the folder.
    """
    output_dir = Path(output_dir)
    old = load_run_info(output_dir)
    if old is None or not (output_dir / "checkpoint").is_file():
        return
    for key in keys:
        if old.get(key) != info.get(key):
            raise UsageError(
                f"{output_dir} holds a run with {key} {old.get(key)!r}, not {info.get(key)!r}",
                hint="use a fresh --output-dir (or delete the old run)",
            )


def write_state_file(directory: Path, prefix_name: str) -> None:
    """A relative ``checkpoint`` state file naming ``prefix_name`` (a weights-only export folder
    copied elsewhere still resolves)."""
    with atomic_write(Path(directory) / "checkpoint") as fh:
        fh.write(f'model_checkpoint_path: "{prefix_name}"\nall_model_checkpoint_paths: "{prefix_name}"\n')


def format_eval_results(results: Mapping[str, Any]) -> str:
    """``eval_results.txt``: ``key = value`` lines sorted by key, as the original (integers as
    integers, other numbers as float32 like TF's metrics, anything else as ``str``)."""
    import numpy as np

    lines = []
    for key in sorted(results):
        value = results[key]
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            text = str(int(value))
        elif isinstance(value, (float, np.floating)):
            text = str(np.float32(value))
        else:
            text = str(value)
        lines.append(f"{key} = {text}\n")
    return "".join(lines)


def write_eval_results(directory: Path, results: Mapping[str, Any]) -> Path:
    """Write ``DIR/eval_results.txt`` atomically; returns its path."""
    path = Path(directory) / EVAL_FILE
    with atomic_write(path) as fh:
        fh.write(format_eval_results(results))
    return path


def format_test_line(values: Any) -> str:
    """One ``test_results.tsv`` line: ``"\\t".join(str(float32 p))`` (the score for regression)."""
    import numpy as np

    arr = np.atleast_1d(np.asarray(values, dtype=np.float32))
    return "\t".join(str(v) for v in arr) + "\n"
