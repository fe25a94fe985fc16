"""Run folders (``--output-dir`` of ``pretrain``, ``finetune``, ``finetune squad``): one run at a time.

:func:`exclusive` holds an advisory lock (``fcntl.flock``) on ``DIR/.bert.lock`` for the whole
run, so a second ``bert`` pointed at the same folder fails at once, naming who holds it,
instead of interleaving checkpoints and result files with the first. The kernel drops the lock
when its process dies (kill -9 included), so a crashed run never blocks the next one; the file
itself stays (deleting a lock file races with the next locker) and only ever holds the
holder's description; a run that fails in a folder it created removes the folder again when
nothing else was written there. Only the chief of a multi-worker cluster locks: the other workers share
its folder and write nothing there.

No TensorFlow here.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
from pathlib import Path
from typing import Any, Iterator, Mapping

from .errors import UsageError

LOCK_FILE = ".bert.lock"

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
                with contextlib.suppress(OSError):
                    lock.unlink()
                    path.rmdir()  # only when empty
            raise
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


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
