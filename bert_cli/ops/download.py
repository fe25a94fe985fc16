"""``bert download``: fetch catalogue models and datasets into the cache, install local models,
list, remove and verify what is cached.

The CLI builds a :class:`DownloadConfig` and calls :func:`run_download`; other commands call
:func:`download_model` (through ``bert_cli.models.resolve``). Messages go to stderr through
:mod:`bert_cli.console`; nothing here writes to stdout. No TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .. import console, settings
from ..errors import ChecksumError, DownloadError, InputError, NotFoundError, UsageError
from ..models import catalogue
from ..models.cache import DATASETS, MODELS, Cache, sha256_file
from ..models.catalogue import DatasetEntry, ModelEntry
from ..models import checks, transfer

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


def download_model(
    model: ModelEntry | str,
    *,
    source: str = "auto",
    force: bool = False,
    cache: Cache | None = None,
    revision: str = "main",
) -> Path:
    """Fetch a catalogue model into the cache (under its lock) and return its folder.

    ``source``: ``google`` (the original zip), ``hf`` (the Hub mirror) or ``auto`` (Google,
    falling back to the Hub when the Google transfer fails). A second process asking for the
    same model waits for the first and then finds it cached.
    """
    entry = catalogue.find_model(model) if isinstance(model, str) else model
    if entry is None:
        raise NotFoundError(f"unknown model '{model}'", hint="bert download --list")
    cache = cache or Cache(settings.current().resolved_cache_dir)
    name = entry.name
    with cache.lock(MODELS, name, on_wait=lambda: console.info(f"{name}: another download is running; waiting for it")):
        if cache.is_cached(MODELS, name) and not force:
            console.info(f"{name}: already in the cache")
            return cache.model_dir(name)
        if _offline():
            raise NotFoundError(f"offline: '{name}' is not in the cache ({cache.root})", hint=f"bert download {name}   (without --offline)")
        if force:
            cache.discard_downloads(MODELS, name)
        if source == "hf":
            return _install_hub(cache, name, entry.hf_repo, entry=entry, revision=revision)
        try:
            return _install_google(cache, entry)
        except ChecksumError:
            raise
        except DownloadError as google_err:
            if source == "google" or transfer.hub_offline():
                raise
            console.warn(f"{name}: Google download failed ({google_err.message}); trying the Hub mirror {entry.hf_repo}")
            try:
                return _install_hub(cache, name, entry.hf_repo, entry=entry, revision=revision)
            except DownloadError as hub_err:
                raise DownloadError(
                    f"could not download {name}: Google: {google_err.message}; Hub: {hub_err.message}",
                    hint=google_err.hint or hub_err.hint,
                ) from None


def _model_manifest(entry: ModelEntry | None, **extra) -> dict:
    manifest: dict = {"kind": "model"}
    if entry is not None:
        manifest.update(
            catalogue_name=entry.name,
            directory=entry.directory,
            do_lower_case=entry.do_lower_case,
            layers=entry.layers,
            hidden=entry.hidden,
            heads=entry.heads,
            vocab_size=entry.vocab_size,
            parameters=entry.parameters,
            hf_repo=entry.hf_repo,
        )
    manifest.update({k: v for k, v in extra.items() if v is not None})
    return manifest


def _install_google(cache: Cache, entry: ModelEntry) -> Path:
    url = entry.zip_url()
    zip_path = cache.downloads_dir(MODELS, entry.name) / f"{entry.directory}.zip"
    with console.progress("bytes") as bar, cache.tidy_on_error(MODELS, entry.name):
        result = transfer.fetch(url, zip_path, entry.zip_sha256, progress=bar, description=entry.name)
    try:
        checks.check_fetched(result.path, url, result.content_type)
        with cache.staging(MODELS, entry.name) as stage:
            extract_zip(result.path, stage)
            check_model_folder(stage, what=url)
            checks.check_catalogue_model(stage, entry, what=url)
            manifest = _model_manifest(entry, source="google", url=url, archive_sha256=result.sha256)
            path = cache.install(stage, MODELS, entry.name, manifest)
    finally:
        cache.discard_downloads(MODELS, entry.name)  # a bad archive is not resumable; a good one is unpacked
    console.info(f"{entry.name}: downloaded to {path}")
    return path


HUB_FILES = ("config.json", "vocab.txt", "model.safetensors", "tokenizer_config.json")


def _install_hub(cache: Cache, name: str, repo_id: str, *, entry: ModelEntry | None, revision: str = "main") -> Path:
    """Fetch config.json, vocab.txt, model.safetensors (and tokenizer_config.json) from the Hub."""
    if transfer.hub_offline():
        raise DownloadError(f"HF_HUB_OFFLINE is set: cannot fetch {repo_id} from the Hub")
    workdir = cache.downloads_dir(MODELS, name) / "hub"
    _hub_progress_bars(console.progress_enabled())
    fetched: dict[str, Path] = {}
    with cache.tidy_on_error(MODELS, name):
        _fetch_hub_files(repo_id, workdir, revision, fetched)
    try:  # the fetched files are used (or refused) once: never kept for a resume
        with cache.staging(MODELS, name) as stage:
            for filename, path in fetched.items():
                shutil.copyfile(path, stage / filename)
            config = _read_json_object(stage / "config.json", "config.json")
            text = bert_config_from_hf(config)
            with open(stage / "bert_config.json", "w", encoding="utf-8") as fh:
                fh.write(text if text.endswith("\n") else text + "\n")
            check_model_folder(stage, what=repo_id)
            if entry is not None:
                checks.check_catalogue_model(stage, entry, what=f"the Hub repo {repo_id}")
            lower = entry.do_lower_case if entry is not None else _tokenizer_casing(stage)
            manifest = _model_manifest(
                entry,
                source="hf",
                url=f"{(transfer.hub_endpoint() or 'https://huggingface.co').rstrip('/')}/{repo_id}",
                hf_repo=repo_id,
                revision=revision,
                do_lower_case=lower,
            )
            path = cache.install(stage, MODELS, name, manifest)
    finally:
        cache.discard_downloads(MODELS, name)
    console.info(f"{name}: downloaded from the Hub ({repo_id}) to {path}")
    return path


def _fetch_hub_files(repo_id: str, workdir: Path, revision: str, fetched: dict[str, Path]) -> None:
    for filename in HUB_FILES:
        try:
            fetched[filename] = transfer.fetch_hub_file(repo_id, filename, workdir, revision=revision)
        except transfer.RemoteError as err:
            if err.status != 404 or filename in ("config.json", "vocab.txt"):
                raise
            if filename == "model.safetensors":
                fetched[filename] = _hub_pytorch_weights(repo_id, workdir, revision)


def _hub_pytorch_weights(repo_id: str, workdir: Path, revision: str) -> Path:
    """A repo without model.safetensors: fetch pytorch_model.bin and convert it (needs torch)."""
    bin_path = transfer.fetch_hub_file(repo_id, "pytorch_model.bin", workdir, revision=revision)
    try:
        import torch
        from safetensors.torch import save_file
    except ImportError:
        raise DownloadError(
            f"{repo_id} has no model.safetensors, only pytorch_model.bin, and converting it needs torch",
            hint="pip install torch, or use --source google",
        ) from None
    state = torch.load(bin_path, map_location="cpu", weights_only=True)
    out = workdir / "model.safetensors"
    save_file({k: v.detach().clone().contiguous() for k, v in state.items()}, str(out), metadata={"format": "pt"})
    return out


def _hub_progress_bars(enabled: bool) -> None:
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    (enable_progress_bars if enabled else disable_progress_bars)()


def bert_config_from_hf(config: dict) -> str:
    """``bert_config.json`` text with the meaning of a Hugging Face ``config.json``.

    HF's ``"gelu"`` is the exact erf form while Google's is the tanh approximation, so the
    derived file records ``gelu_form`` (see :mod:`bert_cli.modelconfig`) instead of copying keys.
    """
    from ..errors import ConfigError
    from ..modelconfig import BertConfig

    try:
        return BertConfig.from_hf_config(config).to_json()
    except ConfigError as err:
        raise DownloadError(f"config.json is not a usable BERT config: {err.message}") from None


def _tokenizer_casing(folder: Path) -> bool | None:
    path = folder / "tokenizer_config.json"
    if not path.is_file():
        return None
    value = _read_json_object(path, path.name).get("do_lower_case")
    return value if isinstance(value, bool) else None


def _read_json_object(path: Path, what: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as err:
        raise DownloadError(f"unreadable {what}: {err}") from None
    if not isinstance(data, dict):
        raise DownloadError(f"unreadable {what}: not a JSON object")
    return data


def check_model_folder(folder: Path, what: str) -> None:
    """A model folder has vocab.txt, a config and (when it ships weights) a complete checkpoint."""
    from ..models.resolve import find_checkpoint

    missing = [f for f in ("vocab.txt",) if not (folder / f).is_file()]
    if not any((folder / c).is_file() for c in ("bert_config.json", "config.json")):
        missing.append("bert_config.json")
    if missing:
        raise DownloadError(f"{what} does not hold a BERT model: no {' or '.join(missing)}")
    checkpoint, fmt = find_checkpoint(folder)
    if fmt == "tf1" and not any(Path(checkpoint).parent.glob(Path(checkpoint).name + ".data-*")):
        raise DownloadError(f"{what}: checkpoint {Path(checkpoint).name} has an .index but no .data-* file")


# ---------------------------------------------------------------------------------------------
# local folders, zip files and URLs
# ---------------------------------------------------------------------------------------------


def _local_name(source: str, name: str | None) -> str:
    if name is None:
        base = source.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        name = base[: -len(".zip")] if base.lower().endswith(".zip") else base
    name = name.strip()
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise UsageError(f"invalid model name {name!r}: use letters, digits, '-', '_' or '.'", hint="--name NAME")
    entry = catalogue.find_model(name)
    return entry.name if entry is not None else name  # e.g. a Google zip fetched by hand


def install_local(
    source: Path,
    *,
    cache: Cache | None = None,
    name: str | None = None,
    do_lower_case: bool | None = None,
    force: bool = False,
) -> Path:
    """Copy a model folder, or unpack a model zip, into ``<cache>/models/<name>``."""
    cache = cache or Cache(settings.current().resolved_cache_dir)
    source = Path(source).expanduser()
    name = _local_name(source.name, name)
    with cache.lock(MODELS, name, on_wait=lambda: console.info(f"{name}: another install is running; waiting for it")):
        if cache.is_cached(MODELS, name) and not force:
            raise UsageError(f"'{name}' is already in the cache ({cache.model_dir(name)})", hint="add --force to replace it, or pick another --name")
        with cache.staging(MODELS, name) as stage:
            if source.is_dir():
                _copy_model_folder(source, stage)
            elif zipfile.is_zipfile(source):
                extract_zip(source, stage)
            else:
                raise InputError("not a model folder or a zip archive", path=source)
            path = _install_staged_model(cache, stage, name, str(source.resolve()), "local", do_lower_case, None)
    console.info(f"{name}: installed from {source} to {path}")
    return path


def install_url(
    url: str,
    *,
    cache: Cache | None = None,
    name: str | None = None,
    sha256: str | None = None,
    do_lower_case: bool | None = None,
    force: bool = False,
) -> Path:
    """Download a model zip from any URL (resumable, verified when ``sha256`` is given) and install it."""
    cache = cache or Cache(settings.current().resolved_cache_dir)
    name = _local_name(url, name)
    with cache.lock(MODELS, name, on_wait=lambda: console.info(f"{name}: another download is running; waiting for it")):
        if cache.is_cached(MODELS, name) and not force:
            console.info(f"{name}: already in the cache")
            return cache.model_dir(name)
        if force:
            cache.discard_downloads(MODELS, name)
        zip_path = cache.downloads_dir(MODELS, name) / "model.zip"
        with console.progress("bytes") as bar, cache.tidy_on_error(MODELS, name):
            result = transfer.fetch(url, zip_path, sha256, progress=bar, description=name)
        try:
            checks.check_fetched(result.path, url, result.content_type)
            with cache.staging(MODELS, name) as stage:
                extract_zip(result.path, stage)
                path = _install_staged_model(cache, stage, name, url, "url", do_lower_case, result.sha256)
        finally:
            cache.discard_downloads(MODELS, name)
    console.info(f"{name}: downloaded to {path}")
    return path


def _install_staged_model(cache, stage: Path, name: str, origin: str, source: str, lower, archive_sha256) -> Path:
    from ..models.resolve import _casing

    check_model_folder(stage, what=origin)
    entry = catalogue.find_model(name)
    if entry is not None:
        checks.check_catalogue_model(stage, entry, what=origin)
    if lower is None:
        lower = _casing(stage, {}) if entry is None else entry.do_lower_case
        if lower is None:
            console.warn(
                f"{name}: casing unknown (no tokenizer_config.json); record it with --do-lower-case or "
                "--no-do-lower-case, or pass it to each command"
            )
    manifest = _model_manifest(entry, source=source, url=origin, do_lower_case=lower, archive_sha256=archive_sha256)
    return cache.install(stage, MODELS, name, manifest)


def _copy_model_folder(source: Path, stage: Path) -> None:
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if path.is_symlink() or any(part.startswith(".") for part in rel.parts) or rel.as_posix() == "manifest.json":
            continue
        if path.is_dir():
            (stage / rel).mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, stage / rel)


# ---------------------------------------------------------------------------------------------
# zip archives
# ---------------------------------------------------------------------------------------------


def _member_parts(member: zipfile.ZipInfo) -> tuple[str, ...]:
    """The path parts of a member, or DownloadError if it would land outside the target folder."""
    raw = member.filename.replace("\\", "/")
    pure = PurePosixPath(raw)
    parts = tuple(p for p in pure.parts if p not in ("", "."))
    mode = member.external_attr >> 16
    if raw.startswith("/") or (parts and ":" in parts[0]) or ".." in parts or stat.S_ISLNK(mode):
        raise DownloadError(f"refusing archive member that would escape the target folder: {member.filename!r}")
    return parts


def extract_zip(archive: Path, target: Path, *, strip_top: bool = True) -> list[Path]:
    """Safely unpack ``archive`` into ``target``; returns the files written.

    Refuses (DownloadError) members with absolute paths, ``..`` or symlinks (zip-slip), and
    corrupt or truncated archives. A single top folder (``uncased_L-12_H-768_A-12/``) is
    stripped, so the files land directly in ``target``; ``__MACOSX`` and ``.DS_Store`` are skipped.
    """
    target = Path(target)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            parts = {m.filename: _member_parts(m) for m in zf.infolist()}
            members = [m for m in members if parts[m.filename] and parts[m.filename][0] != "__MACOSX" and parts[m.filename][-1] != ".DS_Store"]
            if not members:
                raise DownloadError(f"{archive.name}: the archive holds no files")
            tops = {parts[m.filename][0] for m in members}
            strip = strip_top and len(tops) == 1 and all(len(parts[m.filename]) > 1 for m in members)
            written = []
            root = target.resolve()
            for m in members:
                rel = parts[m.filename][1:] if strip else parts[m.filename]
                dest = target.joinpath(*rel)
                if not dest.resolve().is_relative_to(root):
                    raise DownloadError(f"refusing archive member that would escape the target folder: {m.filename!r}")
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(m) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1024 * 1024)
                written.append(dest)
            return written
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise DownloadError(f"{Path(archive).name} is not a valid zip archive (truncated or corrupt download?): {err}") from None


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
        with console.progress("bytes") as bar, cache.tidy_on_error(DATASETS, name):
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
