"""Small file helpers shared by every command (no TensorFlow).

:func:`atomic_write` writes a file under a temporary name and renames it on success;
:func:`atomic_directory` does the same for a whole folder (:func:`replace_directory` swaps it in);
:func:`check_writable_file` / :func:`check_output_dir` fail early (before any work) when an
output cannot be written: an ``-o`` that is a directory, an ``--output-dir`` that is a file,
a parent that is a file, a read-only or unwritable folder. :class:`AtomicOutput` is the
``with`` contract of the streaming writers (close on success, abort on an exception).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import IO, Iterator, Self

from .errors import BertError, NotFoundError, OutputError


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
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename in (None, tmp):
            err.filename = str(path)  # a full disk names the file the user asked for, not the temp
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """A fresh hidden folder beside ``path`` (``.NAME.tmp-XXXX``) to fill; on success it replaces
    ``path`` (:func:`replace_directory`), on any failure it is removed and ``path`` is untouched.

    A crash or an exception never leaves a half-written ``path``: readers see the old complete
    folder or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(path.parent, prefix=f".{path.name}.tmp-")
    try:
        yield tmp
        replace_directory(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def replace_directory(staged: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Rename the complete folder ``staged`` to ``target`` (same file system), replacing any folder
    there: the old one is first renamed aside (``.NAME.old-XXXX``), and removed once the new one
    is in place (put back if the rename fails), so ``target`` is never missing or mixed."""
    staged, target = Path(staged), Path(target)
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
    try:
        os.replace(staged, target)
    except BaseException:
        if old is not None:
            with contextlib.suppress(OSError):
                os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


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


class AtomicOutput:
    """A streaming writer whose file appears on :meth:`close` and is discarded by :meth:`abort`
    (the subclass defines both); a ``with`` block closes it on success and aborts it on any
    exception, so a failure never leaves a half-written file."""

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


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


#: errno values that can only come from writing (so the message says "cannot write FILE").
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG})
_HINTS = {
    errno.ENOSPC: "free some disk space, or write to another disk",
    errno.EDQUOT: "free some disk space (disk quota exceeded), or write to another disk",
    errno.EROFS: "write to a writable folder",
    errno.EACCES: "check the file's and its folder's permissions",
    errno.EPERM: "check the file's and its folder's permissions",
}


def os_error(err: OSError) -> BertError:
    """An ordinary OS failure as a typed error naming the file (the one mapping, used by the CLI
    for whatever reaches it and by writers that know their file): ``cannot write FILE: No space
    left on device``, ``FILE: Is a directory``, ``FILE: Permission denied``, ..."""
    reason = err.strerror or str(err) or type(err).__name__
    name = err.filename
    if name is not None and err.filename2 is not None:
        name = f"{name} -> {err.filename2}"
    hint = _HINTS.get(err.errno)
    if err.errno in _WRITE_ERRNOS:
        return OutputError(f"cannot write {name}: {reason}" if name is not None else f"cannot write: {reason}", hint)
    return BertError(f"{name}: {reason}" if name is not None else reason, hint)


def write_error(path: str | os.PathLike, exc: OSError) -> BertError:
    """:func:`os_error` for an OSError met while writing ``path`` (which names the file)."""
    exc.filename, exc.filename2 = str(path), None  # the output, never its hidden temporary file
    error = os_error(exc)
    if not isinstance(error, OutputError):
        error = OutputError(f"cannot write {path}: {exc.strerror or exc}", error.hint)
    return error


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
