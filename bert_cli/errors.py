"""Typed errors and the exit-code table.

Every failure the user can cause or meet is raised as a :class:`BertError` subclass
carrying a one-line message and, where there is one, a hint naming the next command.
The CLI maps them to ``error: ...`` / ``hint: ...`` on stderr and ``exit_code`` in one
place (:mod:`bert_cli.cli.handling`; :func:`bert_cli.cli.app.main` adds interrupts and the
last resort); ordinary OS errors become typed errors naming the file in
:func:`bert_cli.fileio.os_error`.

Exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 130 interrupted.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INTERRUPTED = 130


class BertError(Exception):
    """Base class: a failure with a message for humans and an optional hint."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(BertError):
    """Options that contradict each other or are out of range."""

    exit_code = EXIT_USAGE


class NotFoundError(BertError):
    """A file, model or checkpoint that does not exist."""

    exit_code = EXIT_NOT_FOUND


class InputError(BertError):
    """Bad content in an input file; names the file and, when known, the line."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message, hint)
        self.path = None if path is None else str(path)
        self.line = line


class OutputError(BertError):
    """An output file or folder that cannot be written (a directory, a read-only place, a full
    disk); names the file."""


class ConfigError(BertError):
    """An invalid model configuration (bert_config.json / config.json)."""


class CheckpointError(BertError):
    """A checkpoint that does not match the model (names, shapes)."""


class TrainingDivergedError(BertError):
    """The loss or the weights became NaN or infinite; nothing non-finite is ever saved."""


class DownloadError(BertError):
    """A transfer that failed after its retries."""


class ChecksumError(DownloadError):
    """A file whose sha256 does not match the expected value."""
