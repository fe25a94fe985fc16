"""Read TF1 checkpoint bundles (``PREFIX.index`` + ``PREFIX.data-NNNNN-of-MMMMM``) safely.

TensorFlow's reader opens the index eagerly but the data files only when a tensor is read, and
then fails with ``IndexError: Read less bytes than requested`` (a truncated data file), a bare
``OpError`` (a missing one) or ``DataLossError`` (flipped bytes: each tensor has a crc32c).
:class:`BundleReader` turns all of them into errors that name the file:

- a missing ``.data-*`` shard is a :class:`NotFoundError` (exit 3) when the reader is opened;
- data files smaller than the tensors the index lists (truncated) are a :class:`CheckpointError`
  when the reader is opened, before any model is built;
- a damaged index (bad magic, block checksum) is a :class:`CheckpointError` when it is opened;
- a tensor whose bytes fail their checksum is a :class:`CheckpointError` naming the data file
  and the tensor when it is read (:meth:`BundleReader.read` reads a list of them up front).

``need_data=False`` opens an index alone (``list_checkpoint`` works on index-only checkpoints,
such as the reference copies of Google's released indexes).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import tensorflow as tf

from ..errors import CheckpointError, NotFoundError

__all__ = ["BundleReader", "data_files"]

# What TensorFlow's checkpoint reader (C++ behind pybind) raises on damaged files.
_READ_ERRORS = (tf.errors.OpError, ValueError, IndexError, RuntimeError, OSError, SystemError)
_DAMAGED_HINT = "the checkpoint files are truncated or corrupt: copy or download them again"
_SHARD = re.compile(r"\.data-(\d{5})-of-(\d{5})$")


def data_files(prefix: str) -> tuple[list[str], list[str]]:
    """``(present, missing)`` data shards of a checkpoint prefix.

    The shard count comes from the names found (``-of-MMMMM``); with none found, the single
    shard ``PREFIX.data-00000-of-00001`` every checkpoint written here has is missing.
    """
    directory, base = os.path.split(prefix)
    found: dict[int, str] = {}
    total = 1
    for path in Path(directory or ".").glob(f"{_glob_escape(base)}.data-*-of-*"):
        match = _SHARD.search(path.name)
        if match and path.name[: match.start()] == base:
            found[int(match.group(1))] = os.path.join(directory, path.name)
            total = max(total, int(match.group(2)))
    names = [f"{prefix}.data-{i:05d}-of-{total:05d}" for i in range(total)]
    present = [n for n in names if os.path.isfile(n)]
    missing = [n for n in names if not os.path.isfile(n)]
    return present, missing


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


class BundleReader:
    """A checked ``tf.train.CheckpointReader`` for ``prefix`` (see the module docstring)."""

    def __init__(self, prefix: str, *, need_data: bool = True) -> None:
        self.prefix = prefix
        try:
            self._reader = tf.train.load_checkpoint(prefix)
            self._shapes = {k: tuple(v) for k, v in self._reader.get_variable_to_shape_map().items()}
            dtypes = self._reader.get_variable_to_dtype_map()
        except _READ_ERRORS as exc:
            raise CheckpointError(
                f"cannot read checkpoint {prefix}: {_first_line(exc)}", hint=_DAMAGED_HINT
            ) from None
        self.data_files: list[str] = []
        if need_data:
            self._check_data(dtypes)

    @property
    def where(self) -> str:
        """The data file (or ``PREFIX.data-*`` when sharded), for messages."""
        return self.data_files[0] if len(self.data_files) == 1 else f"{self.prefix}.data-*"

    def _check_data(self, dtypes) -> None:
        present, missing = data_files(self.prefix)
        if missing:
            raise NotFoundError(
                f"checkpoint data file not found: {missing[0]} (the index {self.prefix}.index is there)",
                hint="copy the .data-* file(s) together with the .index file",
            )
        self.data_files = present
        listed = 0
        for name, shape in self._shapes.items():
            dtype = dtypes.get(name)
            if dtype is None or dtype == tf.string:
                continue  # string tensors have no fixed size
            listed += int(np.prod(shape, dtype=np.int64)) * dtype.size
        size = sum(os.path.getsize(f) for f in present)
        if size < listed:
            raise CheckpointError(
                f"{self.where}: truncated checkpoint data: {size:,} bytes, but the index lists "
                f"{listed:,} bytes of tensors",
                hint=_DAMAGED_HINT,
            )

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """``{name: shape}`` of every tensor (from the index)."""
        return dict(self._shapes)

    def get(self, name: str) -> np.ndarray:
        """One tensor; a damaged data file is a :class:`CheckpointError` naming it."""
        try:
            return np.asarray(self._reader.get_tensor(name))
        except _READ_ERRORS as exc:
            raise CheckpointError(
                f"{self.where}: damaged checkpoint data: cannot read {name} ({_first_line(exc)})",
                hint=_DAMAGED_HINT,
            ) from None

    def read(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        """``{name: array}`` for ``names``, every one read (and checksum-checked) before returning."""
        return {name: self.get(name) for name in names}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
