"""Robust HTTP transfer of one file: streaming, resume, retries, checksum, atomic rename.

:func:`fetch` downloads ``url`` to ``dest``:

* bytes stream into ``dest + ".part"``; ``dest`` appears (by rename) only when complete and,
  when ``expected_sha256`` is given, verified;
* an existing ``.part`` (an earlier run was interrupted) is resumed with an HTTP ``Range``
  request; a server that ignores Range gets a fresh start;
* connection errors, timeouts, truncated bodies, HTTP 5xx/429/408 are retried with exponential
  backoff (``BERT_DOWNLOAD_RETRIES``, default 5; ``BERT_DOWNLOAD_BACKOFF`` seconds, default 1);
* a host name that does not resolve (offline, no DNS, a typo in a mirror URL) fails at once:
  retrying will not bring the network back;
* other HTTP errors (404, 403, 401, 410, ...) fail at once with a clear :class:`RemoteError`.

No TensorFlow, no global state: a :class:`requests.Session` with timeouts is made per call unless
one is passed in.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .. import __version__
from ..errors import ChecksumError, DownloadError, UsageError

CHUNK = 256 * 1024
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
OFFLINE_HINT = "check your network, or use --offline with a cached model"
_STATUS_TEXT = {
    401: "authentication required",
    403: "access denied",
    404: "not found on the server",
    410: "gone from the server",
}


class RemoteError(DownloadError):
    """The server answered with an HTTP error that retrying will not fix."""

    def __init__(self, message: str, status: int, url: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.status = status
        self.url = url


class _Retryable(Exception):
    """Internal: a failure worth another attempt."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry."""

    retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 30.0
    connect_timeout: float = 15.0
    read_timeout: float = 60.0

    @classmethod
    def from_env(cls, **overrides) -> "RetryPolicy":
        """Defaults, then ``BERT_DOWNLOAD_RETRIES``/``_BACKOFF``/``_TIMEOUT``, then ``overrides``."""
        values: dict = {}
        for field_name, var, *rule in _ENV_SETTINGS:
            text = os.environ.get(var, "").strip()
            if text:
                values[field_name] = _env_number(var, text, *rule)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), self.max_backoff)
        return min(self.backoff * (2 ** (attempt - 1)), self.max_backoff)


# RetryPolicy field, environment variable, type, zero allowed, what it must be, an example value
_ENV_SETTINGS = (
    ("retries", "BERT_DOWNLOAD_RETRIES", int, True, "a whole number of retries, 0 or more", "5"),
    ("backoff", "BERT_DOWNLOAD_BACKOFF", float, True, "a number of seconds, 0 or more", "1"),
    ("read_timeout", "BERT_DOWNLOAD_TIMEOUT", float, False, "a number of seconds above 0", "60"),
)


def _env_number(var: str, text: str, kind: type, zero_ok: bool, what: str, example: str) -> int | float:
    """``text`` (the value of ``$var``) as ``kind``; UsageError naming the variable when it is
    not a finite number in range."""
    import math

    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise UsageError(f"{var} must be {what}, not {text!r}", hint=f"unset {var} for the default, or set e.g. {var}={example}")
    return value


@dataclass(frozen=True)
class FetchResult:
    path: Path
    sha256: str
    size: int
    resumed_from: int  # bytes already on disk when the first request went out
    attempts: int
    content_type: str | None = None  # the server's Content-Type (None when nothing was sent again)


def new_session() -> "requests.Session":  # noqa: F821
    import requests

    session = requests.Session()
    session.headers["User-Agent"] = f"bert-cli/{__version__}"
    return session


def part_path(dest: str | os.PathLike) -> Path:
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def fetch(
    url: str,
    dest: str | os.PathLike,
    expected_sha256: str | None = None,
    *,
    session=None,
    policy: RetryPolicy | None = None,
    retries: int | None = None,
    backoff: float | None = None,
    progress=None,
    description: str | None = None,
    sleep=time.sleep,
) -> FetchResult:
    """Download ``url`` to ``dest`` (see the module docstring); return its size and sha256.

    ``progress`` has rich's ``add_task``/``update`` surface (:class:`bert_cli.progress.TransferBars`).
    Raises :class:`RemoteError` (HTTP errors), :class:`~bert_cli.errors.ChecksumError`
    (the bytes are not the expected ones; nothing is kept) or
    :class:`~bert_cli.errors.DownloadError` (still failing after the retries; the ``.part``
    file is kept so the next run resumes).
    """
    policy = policy or RetryPolicy.from_env(retries=retries, backoff=backoff)
    dest = Path(dest)
    part = part_path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    own_session = session is None
    session = session or new_session()
    resumed_from = part.stat().st_size if part.exists() else 0
    task = None
    attempt = 0
    try:
        while True:
            attempt += 1
            try:
                digest, size, task, content_type = _attempt(url, part, session, policy, progress, description or dest.name, task)
                break
            except _Retryable as err:
                if attempt > policy.retries:
                    kept = part.exists() and part.stat().st_size > 0
                    raise DownloadError(
                        f"download failed after {attempt} attempt{'s' if attempt > 1 else ''}: {url}: {err}",
                        hint="run the same command again to resume the partial download" if kept else None,
                    ) from None
                sleep(policy.delay(attempt, getattr(err, "retry_after", None)))
    finally:
        if own_session:
            session.close()
    if expected_sha256 and digest != expected_sha256.lower():
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise ChecksumError(
            f"checksum mismatch for {url}: got sha256 {digest}, expected {expected_sha256.lower()}",
            hint="the file was deleted; run the command again, or report a changed upstream file",
        )
    os.replace(part, dest)
    return FetchResult(dest, digest, size, resumed_from, attempt, content_type)


def _attempt(url, part: Path, session, policy: RetryPolicy, progress, description, task):
    """One request: resume or start, stream to ``part``; returns (sha256, size, task, content type)."""
    import requests

    offset = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = session.get(url, headers=headers, stream=True, timeout=(policy.connect_timeout, policy.read_timeout))
    except (requests.ConnectionError, requests.Timeout) as err:
        unresolved = name_resolution_failure(err)
        if unresolved is not None:
            raise unresolved_error(url, unresolved) from None
        raise _Retryable(describe(err)) from None
    except requests.RequestException as err:  # invalid URL, too many redirects, ...
        raise DownloadError(f"cannot download {url}: {_short(err)}") from None
    with response:
        status = response.status_code
        if status == 416 and offset:
            total = _content_range_total(response.headers.get("Content-Range"))
            if total == offset:  # the partial file is already complete
                return _hash_file(part).hexdigest(), offset, task, None
            part.unlink()
            raise _Retryable("the server refused to resume; starting again")
        if status in RETRY_STATUS:
            err = _Retryable(f"HTTP {status}")
            err.retry_after = response.headers.get("Retry-After")  # type: ignore[attr-defined]
            raise err
        if status >= 400:
            what = _STATUS_TEXT.get(status, "HTTP error")
            raise RemoteError(f"{what} (HTTP {status}): {url}", status=status, url=url)
        if status == 206 and offset:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink()
                raise _Retryable("the server resumed at the wrong offset; starting again")
            total = _content_range_total(response.headers.get("Content-Range"))
            mode = "ab"
        else:  # 200: a full body (a server that ignores Range restarts from 0)
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        digest = _hash_file(part) if mode == "ab" else hashlib.sha256()
        if task is None:
            task = progress.add_task(description, total=total, completed=offset) if progress is not None else None
        elif progress is not None:
            progress.update(task, total=total, completed=offset)
        position = offset
        chunks = _chunks(response)
        with open(part, mode) as fh:
            while True:
                try:
                    chunk = next(chunks, None)
                except _read_errors() as err:
                    raise _Retryable(f"connection lost after {position} bytes: {describe(err)}") from None
                if chunk is None:
                    break
                fh.write(chunk)
                digest.update(chunk)
                position += len(chunk)
                if progress is not None:
                    progress.update(task, completed=position)
        if total is not None and position != total:
            raise _Retryable(f"connection closed after {position} of {total} bytes")
    return digest.hexdigest(), position, task, response.headers.get("Content-Type")


def _read_errors() -> tuple[type[BaseException], ...]:
    import requests
    import urllib3

    return (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


def _chunks(response):
    """The body's bytes as they arrive.

    ``read1`` (urllib3 >= 2.3) hands over every byte received before a connection drops, so a
    resume starts exactly where the data stopped; ``iter_content`` may discard a partial chunk.
    """
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    if read1 is None or response.headers.get("Content-Encoding", "identity") not in ("identity", ""):
        yield from (c for c in response.iter_content(CHUNK) if c)
        return
    while True:
        chunk = read1(CHUNK)
        if not chunk:
            return
        yield chunk


def _hash_file(path: Path):
    """A sha256 object fed with the bytes already in ``path`` (to continue a resumed transfer)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest


_RANGE = re.compile(r"bytes\s+(\d+|\*)-?(\d*)/(\d+|\*)")


def _content_range_start(value: str | None) -> int | None:
    m = _RANGE.match(value or "")
    return int(m.group(1)) if m and m.group(1) != "*" else None


def _content_range_total(value: str | None) -> int | None:
    m = _RANGE.match(value or "")
    return int(m.group(3)) if m and m.group(3) != "*" else None


def _short(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text if len(text) < 300 else text[:297] + "..."


# ---------------------------------------------------------------------------------------------
# what went wrong on the network, in words
# ---------------------------------------------------------------------------------------------


def _chain(err: BaseException):
    """``err`` and every exception behind it (causes, contexts, urllib3's ``reason``, args)."""
    seen: set[int] = set()
    stack: list = [err]
    while stack:
        e = stack.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack += [e.__cause__, e.__context__, getattr(e, "reason", None), *getattr(e, "args", ())]


def name_resolution_failure(err: BaseException) -> socket.gaierror | None:
    """The DNS failure behind a connection error (no network, unknown host), else None."""
    return next((e for e in _chain(err) if isinstance(e, socket.gaierror)), None)


def unresolved_error(url: str, err: socket.gaierror) -> DownloadError:
    """The one message for a host that does not resolve: complete, with the offline hint."""
    host = urlsplit(url).hostname or url
    reason = err.strerror or str(err) or "unknown host"
    return DownloadError(f"cannot resolve host '{host}' ({reason}): {url}", hint=OFFLINE_HINT)


def describe(err: BaseException) -> str:
    """A connection error in a few words ("connection refused by 127.0.0.1:9", "read timed out"),
    instead of urllib3's nested reprs; the exception's own text when nothing better is known."""
    import urllib3

    for e in _chain(err):
        if isinstance(e, urllib3.exceptions.NewConnectionError):
            cause = next((c for c in _chain(e) if isinstance(c, OSError) and c.strerror), None)
            where = f"{e.conn.host}:{e.conn.port}" if getattr(e, "conn", None) is not None else "the server"
            return f"cannot connect to {where}: {cause.strerror if cause else 'connection failed'}"
    for e in _chain(err):
        if isinstance(e, (TimeoutError, urllib3.exceptions.TimeoutError)) or type(e).__name__.endswith("Timeout"):
            return "the server did not answer in time"
    return _short(err)


def check_resolvable(url: str) -> None:
    """Fail at once (DownloadError, offline hint) when ``url``'s host does not resolve.

    For clients that retry connection errors on their own (the Hub's): a missing network is not
    worth 20 s of retries. Skipped when a proxy handles ``url`` (the proxy resolves the host).
    """
    import requests

    parts = urlsplit(url)
    host = parts.hostname
    if not host or requests.utils.get_environ_proxies(url):
        return
    try:
        socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise unresolved_error(url, err) from None
    except (OSError, UnicodeError, ValueError):
        return  # let the request itself report anything else


# ---------------------------------------------------------------------------------------------
# Hugging Face Hub
# ---------------------------------------------------------------------------------------------


def hub_endpoint() -> str | None:
    """``$HF_ENDPOINT`` read now (``huggingface_hub`` reads it once, at import)."""
    return os.environ.get("HF_ENDPOINT") or None


def hub_offline() -> bool:
    """``$HF_HUB_OFFLINE`` read now."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no", "off")


def fetch_hub_file(
    repo_id: str,
    filename: str,
    local_dir: str | os.PathLike,
    *,
    revision: str = "main",
    token: str | bool | None = None,
    policy: RetryPolicy | None = None,
    sleep=time.sleep,
) -> Path:
    """Download one file of a Hub model repo into ``local_dir``; return its path.

    Goes through ``huggingface_hub.hf_hub_download`` (so ``HF_ENDPOINT``, ``HF_TOKEN`` / the
    stored login, proxies and the Hub's own resume apply), retried like :func:`fetch` on
    connection errors and HTTP 5xx; a Hub host that does not resolve fails at once. Hub errors
    become :class:`RemoteError` (404 for a missing repo, revision or file; 401/403 for gated or
    private repos) or :class:`DownloadError`. The Hub client's own log lines (its retries) go to
    ``bert --verbose`` output only. This is the one place the Hub is called: tests may replace it.
    """
    import requests
    from huggingface_hub import hf_hub_download
    from huggingface_hub import errors as hf_errors

    policy = policy or RetryPolicy.from_env()
    url = f"{(hub_endpoint() or 'https://huggingface.co').rstrip('/')}/{repo_id}/resolve/{revision}/{filename}"
    check_resolvable(url)
    attempt = 0
    while True:
        attempt += 1
        try:
            with _hub_logs_to_console():
                path = hf_hub_download(
                    repo_id,
                    filename,
                    revision=revision,
                    local_dir=str(local_dir),
                    endpoint=hub_endpoint(),
                    token=token,
                )
            return Path(path)
        except hf_errors.LocalEntryNotFoundError as err:  # (a subclass of EntryNotFoundError) the Hub was not reached
            unresolved = name_resolution_failure(err)
            if unresolved is not None:
                raise unresolved_error(url, unresolved) from None
            problem = describe(err.__cause__) if err.__cause__ is not None else _short(err)
        except hf_errors.EntryNotFoundError:
            raise RemoteError(f"{repo_id} (revision {revision}) has no file {filename}", 404, url) from None
        except hf_errors.GatedRepoError:
            raise RemoteError(
                f"{repo_id} is gated: accept its terms on the Hub first", 403, url, hint="huggingface-cli login (or set HF_TOKEN)"
            ) from None
        except hf_errors.RevisionNotFoundError:
            raise RemoteError(f"revision '{revision}' not found in {repo_id}", 404, url) from None
        except hf_errors.RepositoryNotFoundError:
            raise RemoteError(
                f"Hub repository not found (or private): {repo_id}", 404, url, hint="huggingface-cli login (or set HF_TOKEN) for a private repo"
            ) from None
        except hf_errors.OfflineModeIsEnabled:
            raise DownloadError(f"HF_HUB_OFFLINE is set: cannot fetch {repo_id}/{filename}") from None
        except hf_errors.HfHubHTTPError as err:
            status = err.response.status_code if err.response is not None else 0
            if status and status not in RETRY_STATUS:
                raise RemoteError(f"{_STATUS_TEXT.get(status, 'HTTP error')} (HTTP {status}): {url}", status, url) from None
            problem = f"HTTP {status}" if status else describe(err)
        except (hf_errors.FileMetadataError, requests.RequestException, OSError) as err:
            unresolved = name_resolution_failure(err)
            if unresolved is not None:
                raise unresolved_error(url, unresolved) from None
            problem = describe(err)
        if attempt > policy.retries:
            raise DownloadError(f"Hub download failed after {attempt} attempts: {url}: {problem}")
        sleep(policy.delay(attempt))


class _ToConsole(logging.Handler):
    """Hands the Hub client's log records to :func:`bert_cli.console.debug` (shown with --verbose)."""

    def emit(self, record: logging.LogRecord) -> None:
        from .. import console

        with contextlib.suppress(Exception):
            console.debug(f"huggingface_hub: {record.getMessage()}")


@contextlib.contextmanager
def _hub_logs_to_console():
    """While the Hub client runs, its own stderr handler ("Retrying in 1s [Retry 1/5]", repr'd
    exceptions) is swapped for :class:`_ToConsole`; restored afterwards."""
    logger = logging.getLogger("huggingface_hub")
    handlers, propagate = logger.handlers[:], logger.propagate
    logger.handlers[:] = [_ToConsole()]
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers[:] = handlers
        logger.propagate = propagate
