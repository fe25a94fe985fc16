"""Small file helpers shared by every command (no TensorFlow)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from .errors import NotFoundError, OutputError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only on success.

    A crash or an exception leaves no half-written ``path`` behind.
    """
    path = Path(path)
    fd, tmp = temp_file_beside(path)
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def make_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A fresh, uniquely named folder in ``parent`` with the permissions of a plain ``mkdir``
    (``0777 & ~umask``; ``tempfile.mkdtemp`` alone makes it private, 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(path, 0o777 & ~_umask())
    return path


def temp_file_beside(path: str | os.PathLike) -> tuple[int, str]:
    """``(fd, name)`` of a new hidden ``.NAME.XXXX.tmp`` file in ``path``'s folder (created if
    needed), with the usual permissions (``0666 & ~umask``; ``mkstemp`` alone makes ``0600``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())
    return fd, tmp


def write_error(path: str | os.PathLike, exc: OSError) -> OutputError:
    """The typed error for an OSError met while writing ``path`` (disk full, read-only ...)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return OutputError(f"cannot write {path}: {reason}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def require_file(path: str | os.PathLike, what: str = "file", hint: str | None = None) -> Path:
    """Return ``path`` as a Path, or raise NotFoundError naming what was expected."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"{what} not found: {p}", hint=hint)
    return p
