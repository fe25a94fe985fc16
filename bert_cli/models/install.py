"""Installing a model into the cache: a catalogue model from Google's zip or the Hub mirror
(:func:`download_model`, also used by ``--model NAME --download``), a local folder or zip
(:func:`install_local`) or any URL (:func:`install_url`).

Every path stages the files on the cache's file system, checks them (a model folder, the
catalogue's shape) and installs them in one rename with a ``manifest.json``. Messages go to
stderr through :mod:`bert_cli.console`. Pure Python, no TensorFlow.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

from .. import console, settings
from ..errors import ChecksumError, DownloadError, InputError, NotFoundError, UsageError
from ..progress import transfers
from . import catalogue, checks, transfer
from .archive import extract_zip
from .cache import MODELS, Cache
from .catalogue import ModelEntry
from .folder import find_checkpoint, model_casing

__all__ = ["download_model", "install_local", "install_url", "check_model_folder", "bert_config_from_hf", "HUB_FILES"]


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
        if settings.current().offline:
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
    with transfers() as bar, cache.tidy_on_error(MODELS, entry.name):
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
    missing = [f for f in ("vocab.txt",) if not (folder / f).is_file()]
    if not any((folder / c).is_file() for c in ("bert_config.json", "config.json")):
        missing.append("bert_config.json")
    if missing:
        raise DownloadError(f"{what} does not hold a BERT model: no {' or '.join(missing)}")
    checkpoint, fmt = find_checkpoint(folder)
    if fmt == "tf1" and not any(Path(checkpoint).parent.glob(Path(checkpoint).name + ".data-*")):
        raise DownloadError(f"{what}: checkpoint {Path(checkpoint).name} has an .index but no .data-* file")


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
        with transfers() as bar, cache.tidy_on_error(MODELS, name):
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
    check_model_folder(stage, what=origin)
    entry = catalogue.find_model(name)
    if entry is not None:
        checks.check_catalogue_model(stage, entry, what=origin)
    if lower is None:
        lower = model_casing(stage) if entry is None else entry.do_lower_case
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
