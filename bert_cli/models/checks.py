"""Is what was fetched what was asked for? Checks on downloaded files before they are installed.

A mirror or a dataset host can answer with something else than the file: an HTML page (a login
wall, a "moved" notice, a proxy's error page served with HTTP 200), or another model. These
checks refuse such files with a :class:`~bert_cli.errors.DownloadError` naming the source, so
nothing wrong is ever installed under a catalogue name. Pure Python, no TensorFlow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ConfigError, DownloadError
from .catalogue import ModelEntry

_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body")


def looks_like_html(path: str | os.PathLike, content_type: str | None = None) -> bool:
    """True when the server said ``text/html`` or the file starts like an HTML page."""
    if content_type and content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
        return True
    with open(path, "rb") as fh:
        head = fh.read(512)
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").lower().startswith(_HTML_STARTS)


def check_fetched(path: str | os.PathLike, url: str, content_type: str | None = None) -> None:
    """A downloaded file is not an HTML page, and a ``.json`` file parses as JSON."""
    path = Path(path)
    if looks_like_html(path, content_type):
        raise DownloadError(
            f"{url} answered with an HTML page, not {path.name}",
            hint="the URL (or a proxy or mirror in front of it) no longer serves the file; check it in a browser",
        )
    if path.suffix.lower() == ".json":
        try:
            with open(path, encoding="utf-8") as fh:
                json.load(fh)
        except (UnicodeDecodeError, ValueError) as err:
            raise DownloadError(f"{url} did not serve valid JSON for {path.name}: {err}") from None


def check_catalogue_model(folder: str | os.PathLike, entry: ModelEntry, what: str) -> None:
    """The model config in ``folder`` has the sizes the catalogue records for ``entry``
    (layers, hidden size, heads, vocabulary size); DownloadError naming each difference."""
    from ..modelconfig import read_model_config

    folder = Path(folder)
    config_file = next((folder / n for n in ("bert_config.json", "config.json") if (folder / n).is_file()), None)
    if config_file is None:
        return  # check_model_folder reports the missing config
    try:
        config = read_model_config(config_file)
    except ConfigError as err:
        reason = err.message.replace(f"{config_file}: ", "")
        raise DownloadError(f"{what}: {config_file.name} is not a usable BERT config: {reason}") from None
    mismatches = entry.config_mismatches(config)
    if mismatches:
        raise DownloadError(
            f"{what} is not {entry.name}: its {config_file.name} has {', '.join(mismatches)}; nothing was installed",
            hint="check the mirror (BERT_GOOGLE_BASE_URL, HF_ENDPOINT), or install the model under a name of its own "
            "with --name NAME",
        )
