"""``bert download``: fetch catalogue models and datasets into the cache, install local models,
list, remove and verify what is cached.

The CLI builds a :class:`DownloadConfig` and calls :func:`run_download`. Models are installed by
:mod:`bert_cli.models.install` (which ``--model NAME --download`` uses too); datasets here.
Messages go to stderr through :mod:`bert_cli.console`; nothing here writes to stdout. No
TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .. import console, settings
from ..errors import ChecksumError, DownloadError, InputError, NotFoundError, UsageError
from ..models import catalogue, checks, transfer
from ..models.archive import extract_zip
from ..models.cache import DATASETS, MODELS, Cache, sha256_file
from ..models.catalogue import DatasetEntry
from ..models.install import download_model, install_local, install_url
from ..progress import transfers

SOURCES = ("auto", "google", "hf")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
ACTIONS = ("fetch", "list", "remove", "verify")


@dataclass(frozen=True)
class DownloadConfig:
    """Everything ``bert download`` was asked to do."""

    names: tuple[str, ...] = ()
    action: str = "fetch"  # fetch | list | remove | verify
    source: str = "auto"  # auto (Google zip, else the Hub) | google | hf
    force: bool = False
    offline: bool = False  # on top of the global --offline / BERT_OFFLINE
    name: str | None = None  # cache name for a local folder / zip / URL source
    sha256: str | None = None  # expected sha256 of a zip or URL source
    do_lower_case: bool | None = None  # casing to record for a local / URL source
    revision: str = "main"  # Hub revision for --source hf
    cache_dir: Path | None = None  # None: the global setting


@dataclass
class DownloadReport:
    """What happened, for the CLI to render: ``items`` (fetch/remove/verify) or ``rows`` (list)."""

    action: str
    cache_dir: Path
    items: list[dict] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [Path(i["path"]) for i in self.items if i.get("path")]

    @property
    def ok(self) -> bool:
        return all(i.get("ok", True) for i in self.items)

    def failure(self) -> ChecksumError | None:
        """For ``--verify``: the error to exit with (1) when an entry no longer matches its manifest."""
        bad = [i for i in self.items if not i.get("ok", True)]
        if not bad:
            return None
        names = ", ".join(i["name"] for i in bad)
        return ChecksumError(f"verification failed: {names}", hint=f"bert download --force {bad[0]['name']}")


def run_download(config: DownloadConfig) -> DownloadReport:
    """The one entry point of ``bert download``."""
    if config.action not in ACTIONS:
        raise UsageError(f"unknown action {config.action!r}")
    if config.source not in SOURCES:
        raise UsageError(f"--source must be one of {', '.join(SOURCES)}, not {config.source!r}")
    cache = Cache(config.cache_dir or settings.current().resolved_cache_dir)
    report = DownloadReport(config.action, cache.root)
    if config.action == "list":
        report.rows = catalogue_rows(cache)
        return report
    if not config.names:
        raise UsageError("name a model or dataset", hint="bert download --list")
    if config.action == "fetch":
        _check_fetch_options(config)
        transfer.RetryPolicy.from_env()  # a malformed BERT_DOWNLOAD_* is a usage error before anything is touched
        cache.check_writable()  # before any transfer
    with _os_errors_named():
        if config.action == "remove":
            report.items = [_remove(cache, n) for n in config.names]
        elif config.action == "verify":
            report.items = [_verify(cache, n) for n in config.names]
        else:
            report.items = [_fetch_one(cache, n, config) for n in config.names]
    return report


@contextlib.contextmanager
def _os_errors_named():
    """A plain OS error (disk full, permission denied) as one ``error:`` line naming the file."""
    try:
        yield
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        raise DownloadError(f"{err.strerror or err}{where}") from None


# ---------------------------------------------------------------------------------------------
# fetch
# ---------------------------------------------------------------------------------------------


def _offline(config: DownloadConfig | None = None) -> bool:
    return settings.current().offline or bool(config and config.offline)


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def _local_source(text: str) -> Path | None:
    """The local folder or zip ``text`` names, or None. A bare catalogue name (``tiny``) means the
    catalogue model even if a file of that name sits in the working directory; ``./tiny`` does not."""
    path = Path(text).expanduser()
    if not path.exists():
        return None
    path_like = text.startswith((".", "~", "/")) or "/" in text or "\\" in text or text.lower().endswith(".zip")
    if not path_like and (catalogue.find_model(text) or catalogue.find_dataset(text)):
        return None
    return path


def _check_fetch_options(config: DownloadConfig) -> None:
    if config.sha256 is not None and not _SHA256.fullmatch(config.sha256):
        raise UsageError(f"--sha256 takes the 64 hexadecimal digits of a sha256 sum, not {config.sha256!r}", hint="sha256sum FILE")
    local = [n for n in config.names if _is_url(n) or _local_source(n) is not None]
    if (config.name or config.sha256) and (len(config.names) != 1 or not local):
        raise UsageError("--name and --sha256 apply to a single local folder, zip file or URL")
    if config.do_lower_case is not None and not local:
        raise UsageError("--do-lower-case/--no-do-lower-case records the casing of a local or URL model only")
    if config.force and _offline(config):
        raise UsageError("--force needs the network; it cannot be combined with offline mode")


def _fetch_one(cache: Cache, text: str, config: DownloadConfig) -> dict:
    if _is_url(text):
        if _offline(config):
            raise UsageError(f"offline mode is on: cannot download {text}")
        path = install_url(
            text, cache=cache, name=config.name, sha256=config.sha256, do_lower_case=config.do_lower_case, force=config.force
        )
        return _item(path, "model", "downloaded")
    local = _local_source(text)
    if local is not None:
        path = install_local(local, cache=cache, name=config.name, do_lower_case=config.do_lower_case, force=config.force)
        return _item(path, "model", "installed")
    model = catalogue.find_model(text)
    dataset = catalogue.find_dataset(text) if model is None else None
    entry = model or dataset
    kind = MODELS if model is not None else DATASETS
    key = entry.name if entry is not None else text
    if entry is None and cache.is_cached(MODELS, key):  # installed under a name of its own (--name)
        kind = MODELS
        if config.force:
            origin = cache.read_manifest(MODELS, key).get("url")
            raise UsageError(
                f"'{key}' was installed from {origin or 'a local source'}; --force cannot fetch it again by name",
                hint=f"bert download {origin or 'SOURCE'} --name {key} --force",
            )
    if cache.is_cached(kind, key) and not config.force:
        if _offline(config):
            console.info(f"offline: using the cached {kind[:-1]} '{key}'")
        else:
            console.info(f"{key}: already in the cache")
        return _item(cache.folder(kind, key), kind[:-1], "cached", name=key)
    if entry is None:
        candidates = catalogue.model_names() + catalogue.dataset_names() + cache.entries(MODELS)
        close = catalogue.close_matches(text, candidates)
        suggestion = f"; did you mean {', '.join(close)}?" if close else ""
        raise NotFoundError(f"unknown model or dataset '{text}'{suggestion}", hint="bert download --list")
    if _offline(config):
        raise NotFoundError(
            f"offline: '{key}' is not in the cache ({cache.root})", hint=f"bert download {key}   (without --offline)"
        )
    if model is not None:
        path = download_model(model, source=config.source, force=config.force, cache=cache, revision=config.revision)
    else:
        if config.source == "hf":
            raise UsageError("datasets come from their original hosts; --source hf applies to models only")
        path = download_dataset(dataset, force=config.force, cache=cache)
    return _item(path, kind[:-1], "downloaded", name=key)


def _item(path: Path, kind: str, status: str, name: str | None = None, **extra) -> dict:
    return {"name": name or Path(path).name, "kind": kind, "status": status, "path": str(path), **extra}


# ---------------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------------


def download_dataset(dataset: DatasetEntry | str, *, force: bool = False, cache: Cache | None = None) -> Path:
    """Fetch a dataset's public files into ``<cache>/datasets/<name>/`` in the layout finetuning reads."""
    entry = catalogue.find_dataset(dataset) if isinstance(dataset, str) else dataset
    if entry is None:
        raise NotFoundError(f"unknown dataset '{dataset}'", hint="bert download --list")
    cache = cache or Cache(settings.current().resolved_cache_dir)
    name = entry.name
    with cache.lock(DATASETS, name, on_wait=lambda: console.info(f"{name}: another download is running; waiting for it")):
        if cache.is_cached(DATASETS, name) and not force:
            return cache.dataset_dir(name)
        if force:
            cache.discard_downloads(DATASETS, name)
        workdir = cache.downloads_dir(DATASETS, name)
        fetched: dict[str, Path] = {}
        sums: dict[str, str] = {}
        types: dict[str, str | None] = {}
        with transfers() as bar, cache.tidy_on_error(DATASETS, name):
            for f in entry.files:
                dest = workdir / f.filename
                if dest.is_file() and (f.sha256 is None or sha256_file(dest) == f.sha256):
                    sums[entry.url(f)] = sha256_file(dest)  # finished by an earlier, interrupted run
                else:
                    result = transfer.fetch(entry.url(f), dest, f.sha256, progress=bar, description=f.filename)
                    sums[entry.url(f)], types[f.filename] = result.sha256, result.content_type
                fetched[f.filename] = dest
        try:
            for f in entry.files:  # an HTML page or broken JSON is never installed as the data
                checks.check_fetched(fetched[f.filename], entry.url(f), types.get(f.filename))
            with cache.staging(DATASETS, name) as stage:
                _build_dataset(entry, fetched, stage)
                missing = [o for o in entry.outputs if not (stage / o).is_file()]
                if missing:
                    raise DownloadError(f"{name}: the downloaded files did not yield {', '.join(missing)}")
                manifest = {"kind": "dataset", "source": "url", "urls": [entry.url(f) for f in entry.files], "source_sha256": sums}
                path = cache.install(stage, DATASETS, name, manifest)
        finally:
            cache.discard_downloads(DATASETS, name)
    console.info(f"{name}: downloaded to {path}")
    return path


def _build_dataset(entry: DatasetEntry, fetched: dict[str, Path], stage: Path) -> None:
    if entry.kind == "squad":
        for filename, path in fetched.items():
            shutil.copyfile(path, stage / filename)
    elif entry.kind == "glue-mrpc":
        format_mrpc(
            fetched["msr_paraphrase_train.txt"], fetched["msr_paraphrase_test.txt"], fetched["mrpc_dev_ids.tsv"], stage
        )
    elif entry.kind == "glue-zip":
        raw = stage / ".raw"
        (archive,) = fetched.values()
        extract_zip(archive, raw, strip_top=False)
        folder = raw / entry.zip_folder if (raw / entry.zip_folder).is_dir() else raw
        for out in entry.outputs:
            if (folder / out).is_file():
                os.replace(folder / out, stage / out)
        shutil.rmtree(raw, ignore_errors=True)
    else:  # pragma: no cover - the catalogue only has the kinds above
        raise DownloadError(f"unknown dataset kind {entry.kind!r}")


MRPC_TEST_HEADER = "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n"


def format_mrpc(train_txt: Path, test_txt: Path, dev_ids_tsv: Path, out_dir: Path) -> dict[str, int]:
    """Build GLUE's MRPC ``train/dev/test.tsv`` from the MSR Paraphrase corpus files.

    The same recipe as GLUE's ``download_glue_data.py``: pairs whose ``(#1 ID, #2 ID)`` is in the
    dev id list go to dev.tsv, the others to train.tsv, both under the corpus header (kept as is,
    UTF-8 BOM included); test.tsv numbers the test pairs and drops their label. Fields are the
    tab-split of each stripped line. Returns the row counts.
    """
    dev_ids = set()
    with open(dev_ids_tsv, encoding="utf-8") as fh:
        for line in fh:
            fields = line.strip().split("\t")
            if len(fields) == 2:
                dev_ids.add(tuple(fields))
    counts = {"train": 0, "dev": 0, "test": 0}
    out_dir = Path(out_dir)
    with open(train_txt, encoding="utf-8") as src, open(out_dir / "train.tsv", "w", encoding="utf-8", newline="\n") as train, open(
        out_dir / "dev.tsv", "w", encoding="utf-8", newline="\n"
    ) as dev:
        header = src.readline()
        train.write(header)
        dev.write(header)
        for lineno, fields in _mrpc_rows(src, train_txt):
            label, id1, id2, s1, s2 = fields
            split = "dev" if (id1, id2) in dev_ids else "train"
            (dev if split == "dev" else train).write(f"{label}\t{id1}\t{id2}\t{s1}\t{s2}\n")
            counts[split] += 1
    with open(test_txt, encoding="utf-8") as src, open(out_dir / "test.tsv", "w", encoding="utf-8", newline="\n") as test:
        src.readline()
        test.write(MRPC_TEST_HEADER)
        for index, (_, fields) in enumerate(_mrpc_rows(src, test_txt)):
            _, id1, id2, s1, s2 = fields
            test.write(f"{index}\t{id1}\t{id2}\t{s1}\t{s2}\n")
            counts["test"] += 1
    return counts


def _mrpc_rows(fh, path: Path):
    for lineno, line in enumerate(fh, start=2):
        if not line.strip():
            continue
        fields = line.strip().split("\t")
        if len(fields) != 5:
            raise InputError(f"expected 5 tab-separated fields, found {len(fields)}", path=path, line=lineno)
        yield lineno, fields


# ---------------------------------------------------------------------------------------------
# list, remove, verify
# ---------------------------------------------------------------------------------------------


def catalogue_rows(cache: Cache) -> list[dict]:
    """One row per catalogue model, cached local model and dataset (for ``--list``)."""
    rows: list[dict] = []
    for m in catalogue.MODELS:
        cached = cache.is_cached(MODELS, m.name)
        rows.append(
            {
                "name": m.name,
                "kind": "model",
                "aliases": list(m.aliases),
                "directory": m.directory,
                "layers": m.layers,
                "hidden": m.hidden,
                "heads": m.heads,
                "parameters": m.parameters,
                "do_lower_case": m.do_lower_case,
                "casing": m.casing,
                "description": m.description,
                "url": m.zip_url(),
                "hf_repo": m.hf_repo,
                "cached": cached,
                "path": str(cache.model_dir(m.name)) if cached else None,
            }
        )
    known = {m.name for m in catalogue.MODELS}
    for name in cache.entries(MODELS):
        if name in known:
            continue
        with contextlib.suppress(NotFoundError):
            manifest = cache.read_manifest(MODELS, name)
            lower = manifest.get("do_lower_case")
            rows.append(
                {
                    "name": name,
                    "kind": "model",
                    "aliases": [],
                    "directory": name,
                    "layers": _config_value(cache.model_dir(name), "num_hidden_layers"),
                    "hidden": _config_value(cache.model_dir(name), "hidden_size"),
                    "heads": _config_value(cache.model_dir(name), "num_attention_heads"),
                    "parameters": None,
                    "do_lower_case": lower,
                    "casing": "uncased" if lower is True else "cased" if lower is False else "unknown",
                    "description": f"local model ({manifest.get('source', 'local')}: {manifest.get('url', '')})",
                    "url": manifest.get("url"),
                    "hf_repo": manifest.get("hf_repo"),
                    "cached": True,
                    "path": str(cache.model_dir(name)),
                }
            )
    for d in catalogue.DATASETS:
        cached = cache.is_cached(DATASETS, d.name)
        rows.append(
            {
                "name": d.name,
                "kind": "dataset",
                "aliases": list(d.aliases),
                "description": d.description,
                "files": list(d.outputs),
                "urls": [d.url(f) for f in d.files],
                "cached": cached,
                "path": str(cache.dataset_dir(d.name)) if cached else None,
            }
        )
    return rows


def _config_value(folder: Path, key: str):
    for filename in ("bert_config.json", "config.json"):
        with contextlib.suppress(OSError, ValueError):
            with open(folder / filename, encoding="utf-8") as fh:
                value = json.load(fh).get(key)
            if value is not None:
                return value
    return None


def _cached_kind(cache: Cache, text: str) -> tuple[str, str]:
    """``(kind, name)`` of a cached model or dataset named ``text``; NotFoundError otherwise."""
    model = catalogue.find_model(text)
    dataset = catalogue.find_dataset(text)
    for kind, key in (
        (MODELS, model.name if model else text),
        (DATASETS, dataset.name if dataset else text),
    ):
        if cache.folder(kind, key).exists():
            return kind, key
    hint = f"bert download {model.name if model else dataset.name}" if (model or dataset) else "bert download --list"
    raise NotFoundError(f"'{text}' is not in the cache ({cache.root})", hint=hint)


def _remove(cache: Cache, text: str) -> dict:
    kind, name = _cached_kind(cache, text)
    with cache.lock(kind, name, on_wait=lambda: console.info(f"{name}: a download is running; waiting for it")):
        path = cache.remove(kind, name)
    console.info(f"removed {path}")
    return _item(path, kind[:-1], "removed", name=name)


def _verify(cache: Cache, text: str) -> dict:
    kind, name = _cached_kind(cache, text)
    with cache.lock(kind, name):
        result = cache.verify(kind, name)
    if result.ok:
        console.info(f"{name}: {result.checked} files match their manifest sha256")
    else:
        for problem in result.problems:
            console.warn(f"{name}: {problem}")
    return _item(result.path, kind[:-1], "ok" if result.ok else "corrupt", name=name, ok=result.ok, checked=result.checked, problems=list(result.problems))
