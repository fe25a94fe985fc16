"""Sets of TFRecord files that appear all together or not at all, with a manifest (no TensorFlow).

``bert make-pretrain-data`` writes its output files through an :class:`OutputSet`; ``bert
pretrain`` checks its input files with :func:`check_record_files`.

**Writing.** Every output file is written under a hidden temporary name beside it
(:class:`~bert_cli.text.tfrecord.TFRecordWriter`). Any exception, ``KeyboardInterrupt``
included, removes all of them: nothing visible changes. On success :meth:`OutputSet.commit`

1. flushes and syncs every file (still under its temporary name);
2. writes the manifest with ``"complete": false``;
3. removes stale files of an earlier run: TFRecord (or empty) files in the manifest's folder
   that the previous manifest lists, or whose name the output pattern produces exactly, and
   that this run does not write (and the hidden temporary files of these names that a killed
   run left);
4. renames every file onto its name;
5. rewrites the manifest with ``"complete": true`` -- last.

A run cut during steps 3-5 (``kill -9``, power loss) leaves a manifest saying
``"complete": false``, which readers refuse; a run cut before leaves the earlier set as it was
(plus, after ``kill -9``, hidden ``.NAME.*.tmp`` files that no reader picks up).

**The manifest** is ``.NAME.manifest.json`` beside the first output file, ``NAME`` being the
output as given (``out.tfrecord``, or the pattern ``out-%05d.tfrecord``). It is hidden, so
globs such as ``out-*`` or ``*`` do not pick it up as data. Its JSON::

    {"format": "bert-pretrain-data-manifest", "version": 1,
     "run_id": "<32 hex digits, new for every run>", "complete": true,
     "created": "2024-05-01T12:00:00Z",
     "pattern": "out-%05d.tfrecord",      # printf pattern of the file names, or null
     "files": [{"name": "out-00000.tfrecord",  # relative to the manifest's folder
                "records": 1234, "bytes": 567890,
                "head_sha256": "<sha256 of the file's first 64 KiB>"}, ...],
     "records": 1234,                      # all files together
     "options": {...}}                     # the options of the run that wrote them

**Reading.** :func:`check_record_files` reads the manifests in the folders of the given files.
A file that a manifest lists, or whose name its pattern produces, belongs to that set; for it:
an incomplete set, a listed file that is missing, a file whose size or first 64 KiB differ
from the manifest (a shard from another run) or a pattern-named file the manifest does not
list (a left-over shard) are errors naming the file. Files of no manifest are not checked.

**Several machines.** A set written in parts (``--num-workers-total N --worker-index I``)
has one part manifest per machine, ``.NAME.part-I-of-N.json``, each listing that machine's
shards; each part is published as above, on its own, and a part run removes only what its
part owns. Readers also require all N parts, consistent: see :mod:`bert_cli.text.shardparts`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable

from ..errors import InputError, NotFoundError
from ..fileio import atomic_write, write_error
from .shardparts import PART_GLOB, Part, check_parts, parse_part_manifest
from .tfrecord import TFRecordWriter, looks_like_tfrecord

__all__ = ["MANIFEST_FORMAT", "OutputSet", "manifest_path", "pattern_matcher", "check_record_files"]

MANIFEST_FORMAT = "bert-pretrain-data-manifest"
MANIFEST_VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"
HEAD_BYTES = 1 << 16

_TEMP = re.compile(r"\.(.+)\.[A-Za-z0-9_]{8}\.tmp")  # tempfile's hidden .NAME.XXXXXXXX.tmp
_SPEC = re.compile(r"%%|%[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]")


def manifest_path(first_output: str | os.PathLike) -> Path:
    """``.NAME.manifest.json`` beside ``first_output`` (a file name or a ``%05d`` pattern)."""
    p = Path(first_output)
    return p.with_name(f".{p.name}{MANIFEST_SUFFIX}")


def pattern_matcher(pattern: str | None) -> Callable[[str], bool]:
    """Whether a file name is exactly ``pattern % numbers`` for some non-negative integers.

    ``pattern`` is a printf pattern of file names (``out-%05d.tfrecord``,
    ``out-%05d-of-%05d.tfrecord``); ``None`` matches nothing.
    """
    numbers = pattern_numbers(pattern)
    return lambda name: numbers(name) is not None


def pattern_numbers(pattern: str | None) -> Callable[[str], tuple[int, ...] | None]:
    """The numbers ``n`` with ``pattern % n == name`` for a file name, or None (see
    :func:`pattern_matcher`)."""
    if not pattern:
        return lambda name: None
    parts, pos = [], 0
    for m in _SPEC.finditer(pattern):
        parts.append(re.escape(pattern[pos : m.start()]))
        parts.append(re.escape("%") if m.group() == "%%" else r"(\s*[0-9a-fA-F]+)")
        pos = m.end()
    parts.append(re.escape(pattern[pos:]))
    regex = re.compile("".join(parts))

    def numbers(name: str) -> tuple[int, ...] | None:
        m = regex.fullmatch(name)
        if m is None:
            return None
        for base in (10, 16, 8):
            try:
                found = tuple(int(g.strip(), base) for g in m.groups())
                if pattern % found == name:
                    return found
            except (TypeError, ValueError):
                continue
        return None

    return numbers


def _fingerprint(path: str | os.PathLike) -> dict:
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
        size = os.fstat(fh.fileno()).st_size
    return {"bytes": size, "head_sha256": hashlib.sha256(head).hexdigest()}


def _is_record_file(path: Path) -> bool:
    """A plain file that is empty or starts like a TFRecord (the only kind removed as stale)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    return path.is_file() and (not head or looks_like_tfrecord(head))


def _same(a: Path, b: Path) -> bool:
    return os.path.abspath(a) == os.path.abspath(b) or (a.exists() and b.exists() and os.path.samefile(a, b))


def _read_manifest(path: Path) -> dict | None:
    """The manifest's JSON; None for a file that is not one; InputError when it is damaged."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(
            f"damaged shard-set manifest ({exc})", path=path,
            hint="rerun `bert make-pretrain-data` to write the set again, or delete the manifest",
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        return None
    files = doc.get("files")
    if not isinstance(files, list) or not all(isinstance(e, dict) and isinstance(e.get("name"), str) for e in files):
        raise InputError("damaged shard-set manifest (no file list)", path=path)
    return doc


class OutputSet:
    """The output files of one run: written under temporary names, published together.

    ``pattern`` is the printf pattern (file name only) that names this kind of output files;
    the files it names that a run does not write are removed as stale at :meth:`commit`.
    ``files`` are the files the run will write, when known before it starts.
    ``part``: this run writes one machine's part of a set (:mod:`bert_cli.text.shardparts`):
    its manifest is the part manifest, and it removes only what that part owns.
    Use as a context manager: leaving the block by an exception removes every temporary file.
    """

    def __init__(
        self, manifest: str | os.PathLike, pattern: str | None, options: dict, files: Iterable[os.PathLike] = (),
        part: Part | None = None,
    ) -> None:
        manifest = Path(manifest)  # .NAME.manifest.json
        #: The outputs as the user named them (``out.tfrecord``, ``out-%05d.tfrecord``).
        self.name = str(manifest.with_name(manifest.name[1 : -len(MANIFEST_SUFFIX)]))
        self.part = part
        self.manifest = manifest if part is None else part.manifest_path(self.name)
        self.files = [Path(f) for f in files]  # planned before writing (for :meth:`claims`)
        self.pattern = pattern
        self.options = options
        self.run_id = uuid.uuid4().hex
        self.writers: list[TFRecordWriter] = []
        self._matches = pattern_matcher(pattern)
        self._numbers = pattern_numbers(pattern)

    def open(self, path: str | os.PathLike) -> TFRecordWriter:
        """A new writer for ``path`` (a hidden temporary file until :meth:`commit`)."""
        writer = TFRecordWriter(path)
        self.writers.append(writer)
        return writer

    def claims(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` is (or would be) written by this run: one of its files, its
        manifest, or a name its pattern produces in the manifest's folder."""
        p = Path(path)
        if any(_same(p, f) for f in [*self.files, *(w.path for w in self.writers), self.manifest]):
            return True
        return _same(p.parent, self.manifest.parent) and self._matches(p.name)

    def abort(self) -> None:
        """Remove every temporary file; nothing visible changes."""
        for writer in self.writers:
            writer.abort()

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def _name(self, path: Path) -> str:
        return os.path.relpath(path, self.manifest.parent)

    def _write_manifest(self, doc: dict) -> None:
        try:
            with atomic_write(self.manifest) as fh:
                json.dump(doc, fh, indent=1)
                fh.write("\n")
        except OSError as exc:
            raise write_error(self.manifest, exc) from None

    def _owned(self, path: Path) -> bool:
        """Whether a stale file is this run's to remove: any, unless it writes one part of a
        set, which owns only the pattern-named files whose shard number is its own."""
        if self.part is None:
            return True
        numbers = self._numbers(path.name)
        return numbers is not None and len(numbers) == 1 and self.part.owns(numbers[0])

    def _other_manifests(self) -> list[Path]:
        """Manifests of the same name that this run makes obsolete: for a whole-set run, every
        part manifest; for a part, the whole-set manifest and the parts of another split."""
        folder = self.manifest.parent
        whole = folder / f".{Path(self.name).name}{MANIFEST_SUFFIX}"
        parts = []
        if folder.is_dir():
            for path in sorted(folder.glob(PART_GLOB)):
                parsed = parse_part_manifest(path.name)
                if parsed is not None and parsed[0] == Path(self.name).name and not _same(path, self.manifest):
                    if self.part is None or parsed[2] != self.part.total:
                        parts.append(path)
        return parts if self.part is None else [whole, *parts]

    def _stale(self) -> list[Path]:
        """Files of an earlier run this run does not write (see the module docstring)."""
        folder = self.manifest.parent
        stale: list[Path] = []
        if self.manifest.is_file():
            try:
                previous = _read_manifest(self.manifest) or {"files": []}
            except InputError:
                previous = {"files": []}
            stale += [folder / e["name"] for e in previous["files"]]
        if self.pattern and folder.is_dir():
            stale += [p for p in sorted(folder.iterdir()) if self._matches(p.name)]
        keep = {os.path.abspath(w.path) for w in self.writers}
        stale = [
            p for p in dict.fromkeys(stale)
            if os.path.abspath(p) not in keep and _same(p.parent, folder) and _is_record_file(p) and self._owned(p)
        ]
        # hidden temporary files of these names left by a killed run (kill -9, power loss)
        scratch = Path(self.name) if self.part is None else Path(f"{self.name}.{self.part.scratch_name}")
        names = {p.name for p in [*stale, *(w.path for w in self.writers), self.manifest, scratch]}
        ours = {os.path.abspath(w.temp_path) for w in self.writers if w.temp_path}
        if folder.is_dir():
            stale += [
                p for p in sorted(folder.iterdir())
                if _TEMP.fullmatch(p.name) and _TEMP.fullmatch(p.name).group(1) in names
                and os.path.abspath(p) not in ours
            ]
        return stale + [m for m in self._other_manifests() if m.is_file()]

    def commit(self, extra: dict | None = None) -> dict:
        """Publish every file and the manifest (see the module docstring); returns the manifest.

        ``extra``: more keys for the manifest (a part's ``"part"`` object)."""
        try:
            for writer in self.writers:
                writer.finish()
            entries = [
                {"name": self._name(w.path), "records": w.records, **_fingerprint(w.temp_path)}
                for w in self.writers
            ]
            doc = {
                "format": MANIFEST_FORMAT,
                "version": MANIFEST_VERSION,
                "run_id": self.run_id,
                "complete": False,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "pattern": self.pattern,
                "files": entries,
                "records": sum(w.records for w in self.writers),
                "options": self.options,
                **(extra or {}),
            }
            self._write_manifest(doc)
            for path in self._stale():
                try:
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise write_error(path, exc) from None
            for writer in self.writers:
                writer.publish()
            doc["complete"] = True
            self._write_manifest(doc)
            return doc
        except BaseException:
            self.abort()
            raise


def check_record_files(files: Iterable[str]) -> None:
    """Check the files that belong to a make-pretrain-data manifest against it (see above).

    InputError naming the file for an incomplete set, a shard from another run or a left-over
    shard; NotFoundError for a listed shard that is missing, or for the missing parts of a set
    written by several machines (:func:`bert_cli.text.shardparts.check_parts`).
    """
    files = [Path(f) for f in files]
    folders = list(dict.fromkeys(f.parent for f in files))
    manifests: list[tuple[Path, dict]] = []
    for folder in folders:
        found = [*folder.glob(f".*{MANIFEST_SUFFIX}"), *folder.glob(PART_GLOB)]
        for mp in sorted(found):
            if mp.name.endswith(MANIFEST_SUFFIX) or parse_part_manifest(mp.name) is not None:
                doc = _read_manifest(mp)
                if doc is not None:
                    manifests.append((mp, doc))
    listed = {os.path.abspath(mp.parent / e["name"]) for mp, doc in manifests for e in doc["files"]}
    in_use: list[tuple[Path, dict, dict, list[Path]]] = []
    for mp, doc in manifests:
        entries = {os.path.abspath(mp.parent / e["name"]): e for e in doc["files"]}
        matches = pattern_matcher(doc.get("pattern"))
        mine = [
            f for f in files
            if os.path.abspath(f) in entries or (_same(f.parent, mp.parent) and matches(f.name))
        ]
        if mine:
            in_use.append((mp, doc, entries, mine))
    names_in_use = {parsed[0] for mp, *_ in in_use if (parsed := parse_part_manifest(mp.name))}
    check_parts(
        (mp, doc) for mp, doc in manifests
        if (parsed := parse_part_manifest(mp.name)) and parsed[0] in names_in_use
    )
    for mp, doc, entries, mine in in_use:
        part = parse_part_manifest(mp.name)
        rerun = (
            "rerun `bert make-pretrain-data` to write the whole set again" if part is None
            else f"rerun `bert make-pretrain-data` with --num-workers-total {part[2]} --worker-index {part[1]}"
        )
        if doc.get("complete") is not True:
            raise InputError(
                "incomplete shard set: the run that wrote it was cut short while publishing",
                path=mp, hint=rerun,
            )
        for e in doc["files"]:
            shard = mp.parent / e["name"]
            if not shard.is_file():
                raise NotFoundError(f"shard {shard} is missing: the shard set in {mp} lists it", hint=rerun)
        for f in mine:
            entry = entries.get(os.path.abspath(f))
            if entry is None:
                if os.path.abspath(f) in listed:
                    continue  # listed by another manifest of the folder
                raise InputError(
                    f"not part of the shard set in {mp} (left over from another run?)",
                    path=f, hint=f"delete it, or {rerun}",
                )
            found = _fingerprint(f)
            if found["bytes"] != entry.get("bytes") or found["head_sha256"] != entry.get("head_sha256"):
                raise InputError(
                    f"does not match the shard set in {mp} (a shard from another run?)",
                    path=f, hint=rerun,
                )
