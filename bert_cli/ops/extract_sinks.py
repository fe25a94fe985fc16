"""Where ``bert extract`` writes its results: the original's JSONL lines and the ``.npz`` file
(spooled to a temporary file so memory stays constant, written atomically).

See :mod:`bert_cli.ops.extract` for the formats.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Sequence

import numpy as np

from ..fileio import atomic_write

__all__ = ["JsonlSink", "NpzSink", "Spool", "format_embedding_line", "format_features_line", "round6", "write_npz"]


def round6(values: np.ndarray) -> np.ndarray:
    """``round(float(x), 6)`` for every float32 ``x``, vectorized and bit for bit the same doubles.

    Why it is exact: ``x * 1e6`` is exact in float64 (24 + 14 significant bits), ``rint`` rounds
    half to even as ``round`` does, and the division is correctly rounded to the double nearest
    ``k / 10**6``, which is what ``round`` returns. (About 10x faster than calling ``round``.)
    """
    return np.rint(np.asarray(values, dtype=np.float32).astype(np.float64) * 1e6) / 1e6


def format_features_line(index: int, tokens: Sequence[str], values: np.ndarray, layers: Sequence[int]) -> str:
    """The original's JSON line; ``values`` [n_layers, n_tokens, H] for the real tokens."""
    rows = round6(values).tolist()
    features = [
        {"token": token, "layers": [{"index": layer, "values": rows[j][t]} for j, layer in enumerate(layers)]}
        for t, token in enumerate(tokens)
    ]
    return json.dumps({"linex_index": index, "features": features}) + "\n"


def format_embedding_line(index: int, vector: np.ndarray) -> str:
    """``{"linex_index": i, "embedding": [...]}`` with values rounded as the original's."""
    return json.dumps({"linex_index": index, "embedding": round6(vector).tolist()}) + "\n"


# ----------------------------------------------------------------------------- npz writer


class Spool:
    """Rows of one float32 array appended to a temporary file (constant memory)."""

    def __init__(self, directory: Path, row_shape: tuple[int, ...]) -> None:
        self.file = tempfile.TemporaryFile(dir=directory, prefix=".bert-extract-", suffix=".spool")
        self.rows = 0
        self.row_shape = row_shape

    def append(self, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array, dtype="<f4")
        self.file.write(array.tobytes())
        self.rows += array.shape[0]

    def write_npy(self, zf: zipfile.ZipFile, name: str) -> None:
        header = {"descr": "<f4", "fortran_order": False, "shape": (self.rows, *self.row_shape)}
        self.file.seek(0)
        with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            shutil.copyfileobj(self.file, member, 16 * 1024 * 1024)

    def close(self) -> None:
        self.file.close()


def write_npz(path: Path, arrays: dict[str, np.ndarray], spools: dict[str, Spool]) -> None:
    """A ``.npz`` (uncompressed, as ``np.savez``) from small arrays and spooled big ones, atomically."""
    with atomic_write(path, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
        for name, spool in spools.items():
            spool.write_npy(zf, name)


# ----------------------------------------------------------------------------- sinks


class JsonlSink:
    def __init__(self, out: IO[str], layers: Sequence[int], pooling: str | None) -> None:
        self.out, self.layers, self.pooling = out, tuple(layers), pooling

    def add(self, index: int, tokens: list[str], values: np.ndarray | None, vector: np.ndarray | None) -> None:
        if self.pooling:
            self.out.write(format_embedding_line(index, vector))
        else:
            self.out.write(format_features_line(index, tokens, values, self.layers))

    def end_batch(self) -> None:
        self.out.flush()


class NpzSink:
    def __init__(self, path: Path, layers: Sequence[int], pooling: str | None, row_shape: tuple[int, ...]) -> None:
        self.path, self.layers, self.pooling = path, tuple(layers), pooling
        path.parent.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(path.parent, row_shape)
        self.tokens: list[str] = []
        self.offsets = [0]

    def add(self, index: int, tokens: list[str], values: np.ndarray | None, vector: np.ndarray | None) -> None:
        if self.pooling:
            self.spool.append(np.asarray(vector)[None])
        else:
            self.spool.append(np.transpose(values, (1, 0, 2)))  # [n_tokens, n_layers, H]
            self.tokens.extend(tokens)
            self.offsets.append(len(self.tokens))

    def end_batch(self) -> None:
        pass

    def finish(self) -> None:
        layers = self.layers if self.pooling != "pooler" else ()
        arrays: dict[str, np.ndarray] = {"layers": np.asarray(layers, np.int64)}
        if self.pooling:
            arrays["pooling"] = np.asarray(self.pooling)
            write_npz(self.path, arrays, {"embeddings": self.spool})
        else:
            arrays["offsets"] = np.asarray(self.offsets, np.int64)
            arrays["tokens"] = np.asarray(self.tokens, dtype=str)
            write_npz(self.path, arrays, {"values": self.spool})

    def close(self) -> None:
        self.spool.close()
