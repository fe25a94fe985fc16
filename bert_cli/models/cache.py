"""The local cache of models and datasets.

Layout (``<cache>`` is ``bert_cli.settings.current().resolved_cache_dir``: ``--cache-dir`` >
``$BERT_CACHE`` > the platform's user cache dir)::

    <cache>/models/<name>/            one folder per model: bert_config.json, vocab.txt, the
                                      checkpoint (or HF config.json + model.safetensors) and
                                      manifest.json
    <cache>/datasets/<name>/          task files (train.tsv, dev-v1.1.json, ...) + manifest.json
    <cache>/.downloads/<kind>-<name>/ transfers in progress (``*.part`` files, resumable)
    <cache>/.staging/                 folders being assembled; renamed into place when complete
    <cache>/.locks/<kind>-<name>.lock one lock per model/dataset (two ``bert download`` of the
                                      same model never both work)

A folder under ``models/`` or ``datasets/`` is complete exactly when its ``manifest.json``
exists: it is written last, inside the staging folder, before the rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from ..errors import NotFoundError, UsageError
from ..fileio import atomic_write, make_temp_dir, replace_directory

MANIFEST = "manifest.json"
MODELS = "models"
DATASETS = "datasets"
_HASH_CHUNK = 1024 * 1024


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def describe_files(folder: Path) -> dict[str, dict]:
    """``{relative path: {"sha256", "size"}}`` for every file under ``folder`` but the manifest."""
    files: dict[str, dict] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel == MANIFEST:
            continue
        files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return files


@dataclass(frozen=True)
class VerifyResult:
    name: str
    path: Path
    ok: bool
    checked: int
    problems: tuple[str, ...]


class Cache:
    """Paths, locks and manifests of one cache root."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()

    # paths ---------------------------------------------------------------------------------
    def folder(self, kind: str, name: str) -> Path:
        return self.root / kind / name

    def model_dir(self, name: str) -> Path:
        return self.folder(MODELS, name)

    def dataset_dir(self, name: str) -> Path:
        return self.folder(DATASETS, name)

    def downloads_dir(self, kind: str, name: str) -> Path:
        return self.root / ".downloads" / f"{kind}-{name}"

    def lock_path(self, kind: str, name: str) -> Path:
        return self.root / ".locks" / f"{kind}-{name}.lock"

    # state ---------------------------------------------------------------------------------
    def is_cached(self, kind: str, name: str) -> bool:
        return (self.folder(kind, name) / MANIFEST).is_file()

    def read_manifest(self, kind: str, name: str) -> dict:
        return read_manifest(self.folder(kind, name))

    def entries(self, kind: str) -> list[str]:
        """Names of the complete folders of one kind, sorted."""
        base = self.root / kind
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / MANIFEST).is_file())

    def check_writable(self) -> None:
        """Make sure the root is (or can become) a folder this process may write into.

        UsageError naming the path otherwise (a file given as ``--cache-dir``, a read-only or
        uncreatable folder), so nothing is transferred only to fail when it is stored.
        """
        root = self.root
        hint = "pass --cache-dir DIR (or set BERT_CACHE) naming a folder you can write to"
        blocker = next((p for p in (root, *root.parents) if p.exists() or p.is_symlink()), None)
        if blocker is not None and not blocker.is_dir():
            where = "" if blocker == root else f" ({blocker} is a file)"
            raise UsageError(f"the cache folder {root} is not a folder{where}", hint=hint)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"cannot create the cache folder {root}: {err.strerror or err}", hint=hint) from None
        if not os.access(root, os.W_OK | os.X_OK):
            raise UsageError(f"the cache folder {root} is not writable", hint=hint)

    # locking -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, kind: str, name: str, on_wait=None, timeout: float = -1) -> Iterator[None]:
        """Hold the lock of one model/dataset; ``on_wait()`` is called once if someone else has it."""
        import filelock

        self.check_writable()
        path = self.lock_path(kind, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(path))
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            if on_wait is not None:
                on_wait()
            lock.acquire(timeout=timeout)
        try:
            yield
        finally:
            lock.release()

    # assembling ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def staging(self, kind: str, name: str) -> Iterator[Path]:
        """A fresh empty folder on the cache's file system; removed on exit unless installed."""
        base = self.root / ".staging"
        base.mkdir(parents=True, exist_ok=True)
        path = make_temp_dir(base, prefix=f"{kind}-{name}.")  # becomes <kind>/<name>: usual permissions
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            _rmdir_if_empty(base)

    def install(self, staged: Path, kind: str, name: str, manifest: dict) -> Path:
        """Write ``manifest.json`` into ``staged`` and rename it to ``<kind>/<name>`` (replacing any).

        The old folder, if any, is first renamed aside, so a reader sees either the old complete
        folder or the new complete one.
        """
        manifest = dict(manifest)
        manifest.setdefault("name", name)
        manifest.setdefault("kind", kind[:-1])  # "models" -> "model"
        manifest.setdefault("downloaded_at", now_iso())
        manifest["files"] = describe_files(staged)
        manifest["size"] = sum(f["size"] for f in manifest["files"].values())
        write_manifest(staged, manifest)
        target = self.folder(kind, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        return replace_directory(staged, target)

    def remove(self, kind: str, name: str) -> Path:
        """Delete a cached folder (and its partial downloads); NotFoundError if absent."""
        target = self.folder(kind, name)
        if not target.exists():
            raise NotFoundError(f"{kind[:-1]} '{name}' is not in the cache ({self.root})", hint="bert download --list")
        aside = target.with_name(f".{name}.removing.{os.getpid()}")
        os.replace(target, aside)
        shutil.rmtree(aside, ignore_errors=True)
        self.discard_downloads(kind, name)
        return target

    @contextlib.contextmanager
    def tidy_on_error(self, kind: str, name: str) -> Iterator[None]:
        """On an exception, drop the download folder unless it holds resumable bytes
        (our ``*.part`` files, the Hub client's ``*.incomplete`` files, finished Hub files)."""
        try:
            yield
        except BaseException:
            folder = self.downloads_dir(kind, name)
            if folder.is_dir() and not any(_resumable(p) for p in folder.rglob("*")):
                self.discard_downloads(kind, name)
            raise

    def discard_downloads(self, kind: str, name: str) -> None:
        shutil.rmtree(self.downloads_dir(kind, name), ignore_errors=True)
        _rmdir_if_empty(self.root / ".downloads")

    def verify(self, kind: str, name: str) -> VerifyResult:
        """Re-hash every file the manifest lists; report missing, resized and changed files."""
        folder = self.folder(kind, name)
        if not folder.exists():
            raise NotFoundError(f"{kind[:-1]} '{name}' is not in the cache ({self.root})", hint=f"bert download {name}")
        manifest = read_manifest(folder)
        problems: list[str] = []
        files = manifest.get("files") or {}
        for rel, info in sorted(files.items()):
            path = folder / rel
            if not path.is_file():
                problems.append(f"{rel}: missing")
                continue
            if info.get("size") is not None and path.stat().st_size != info["size"]:
                problems.append(f"{rel}: size {path.stat().st_size} != {info['size']}")
                continue
            if sha256_file(path) != info.get("sha256"):
                problems.append(f"{rel}: sha256 differs from the manifest")
        return VerifyResult(name, folder, not problems, len(files), tuple(problems))


def read_manifest(folder: Path) -> dict:
    """The manifest of a cache folder; NotFoundError if it is absent or unreadable."""
    path = Path(folder) / MANIFEST
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise NotFoundError(f"no {MANIFEST} in {folder} (incomplete download?)", hint=f"bert download --force {Path(folder).name}") from None
    except (OSError, ValueError) as err:
        raise NotFoundError(f"unreadable {path}: {err}", hint=f"bert download --force {Path(folder).name}") from None
    if not isinstance(data, dict):
        raise NotFoundError(f"unreadable {path}: not a JSON object", hint=f"bert download --force {Path(folder).name}")
    return data


def write_manifest(folder: Path, manifest: dict) -> None:
    with atomic_write(Path(folder) / MANIFEST) as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
        fh.write("\n")


def _resumable(path: Path) -> bool:
    """A partial or finished download worth keeping (not bookkeeping such as locks or .gitignore)."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    if path.name.endswith((".part", ".incomplete")):
        return True
    return ".cache" not in path.parts and not path.name.endswith((".lock", ".metadata"))


def _rmdir_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()
