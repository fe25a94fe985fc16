"""Zip archives of models and datasets, unpacked safely (no member lands outside the target).

Pure Python, no TensorFlow.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import DownloadError

__all__ = ["extract_zip"]


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
