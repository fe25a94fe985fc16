"""Small file helpers shared by every command (no TensorFlow).

:func:`atomic_write` writes a file under a temporary name and renames it on success;
:func:`check_writable_file` / :func:`check_output_dir` fail early (before any work) when an
output cannot be written: an ``-o`` that is a directory, an ``--output-dir`` that is a file,
a parent that is a file, a read-only or unwritable folder.
"""

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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename in (None, tmp):
            err.filename = str(path)  # a full disk names the file the user asked for, not the temp
        raise


@contextlib.contextmanager
def naming_errors(name: str | os.PathLike) -> Iterator[None]:
    """Give an OSError raised inside without a file name (a full disk on ``write``) ``name``,
    so its message can say which file could not be written."""
    try:
        yield
    except OSError as err:
        if err.filename is None:
            err.filename = str(name)
        raise


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


def check_writable_file(path: str | os.PathLike) -> Path:
    """OutputError now, before any work, unless a file can be written at ``path``.

    Checks what a later :func:`atomic_write` needs: ``path`` is not a directory and its
    folder exists or can be created, and is writable (a free disk cannot be checked ahead).
    """
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"cannot write {p}: it is a directory", hint=f"give a file path, e.g. {p / 'NAME'}")
    _check_can_create_in(p.parent, p)
    return p


def check_output_dir(path: str | os.PathLike) -> Path:
    """OutputError now, before any work, unless ``path`` is (or can be made) a writable folder."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"cannot use {p} as the output folder: it is a file",
                          hint="give a folder (it is created when missing)")
    _check_can_create_in(p, p)
    return p


def _check_can_create_in(folder: Path, target: Path) -> None:
    """``folder`` (or its nearest existing ancestor, where the missing part will be created) is a
    writable directory; else OutputError naming ``target`` and the reason."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write {target}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        reason = "Read-only file system" if _read_only(existing) else "Permission denied"
        raise OutputError(f"cannot write {target}: {existing}: {reason}")


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False
