"""Hugging Face BERT weights (``model.safetensors`` + ``config.json``) without torch.

Reads the layout of the Hub's ``google-bert/*`` repos and of sentence-transformers BERT models
(names with or without the ``bert.`` prefix, ``LayerNorm.weight/bias`` or the older
``gamma/beta``) with the ``safetensors`` numpy API, and renames every tensor to its TF1 name
(:data:`HF_TABLE`), transposing Linear weights from torch's [out, in] to TF's [in, out]. The
result is a plain ``{tf1 name: array}`` dict that :func:`bert_cli.engine.checkpoint.load_into`
loads with the same checks as a TF1 checkpoint.

The writing direction (:mod:`bert_cli.engine.hf_export`) inverts the same :data:`HF_TABLE` and
:data:`HF_TIED`, so the two cannot drift apart.

The config keeps HF's meaning of ``hidden_act``: "gelu" is the exact erf GELU there
(:meth:`BertConfig.from_hf_config`).
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, NotFoundError
from ..modelconfig import BertConfig

# (HF name, TF1 name, transpose). Layer rows use "{i}".
HF_TABLE = (
    ("embeddings.word_embeddings.weight", "bert/embeddings/word_embeddings", False),
    ("embeddings.token_type_embeddings.weight", "bert/embeddings/token_type_embeddings", False),
    ("embeddings.position_embeddings.weight", "bert/embeddings/position_embeddings", False),
    ("embeddings.LayerNorm.weight", "bert/embeddings/LayerNorm/gamma", False),
    ("embeddings.LayerNorm.bias", "bert/embeddings/LayerNorm/beta", False),
    ("encoder.layer.{i}.attention.self.query.weight", "bert/encoder/layer_{i}/attention/self/query/kernel", True),
    ("encoder.layer.{i}.attention.self.query.bias", "bert/encoder/layer_{i}/attention/self/query/bias", False),
    ("encoder.layer.{i}.attention.self.key.weight", "bert/encoder/layer_{i}/attention/self/key/kernel", True),
    ("encoder.layer.{i}.attention.self.key.bias", "bert/encoder/layer_{i}/attention/self/key/bias", False),
    ("encoder.layer.{i}.attention.self.value.weight", "bert/encoder/layer_{i}/attention/self/value/kernel", True),
    ("encoder.layer.{i}.attention.self.value.bias", "bert/encoder/layer_{i}/attention/self/value/bias", False),
    ("encoder.layer.{i}.attention.output.dense.weight", "bert/encoder/layer_{i}/attention/output/dense/kernel", True),
    ("encoder.layer.{i}.attention.output.dense.bias", "bert/encoder/layer_{i}/attention/output/dense/bias", False),
    ("encoder.layer.{i}.attention.output.LayerNorm.weight", "bert/encoder/layer_{i}/attention/output/LayerNorm/gamma", False),
    ("encoder.layer.{i}.attention.output.LayerNorm.bias", "bert/encoder/layer_{i}/attention/output/LayerNorm/beta", False),
    ("encoder.layer.{i}.intermediate.dense.weight", "bert/encoder/layer_{i}/intermediate/dense/kernel", True),
    ("encoder.layer.{i}.intermediate.dense.bias", "bert/encoder/layer_{i}/intermediate/dense/bias", False),
    ("encoder.layer.{i}.output.dense.weight", "bert/encoder/layer_{i}/output/dense/kernel", True),
    ("encoder.layer.{i}.output.dense.bias", "bert/encoder/layer_{i}/output/dense/bias", False),
    ("encoder.layer.{i}.output.LayerNorm.weight", "bert/encoder/layer_{i}/output/LayerNorm/gamma", False),
    ("encoder.layer.{i}.output.LayerNorm.bias", "bert/encoder/layer_{i}/output/LayerNorm/beta", False),
    ("pooler.dense.weight", "bert/pooler/dense/kernel", True),
    ("pooler.dense.bias", "bert/pooler/dense/bias", False),
    ("cls.predictions.transform.dense.weight", "cls/predictions/transform/dense/kernel", True),
    ("cls.predictions.transform.dense.bias", "cls/predictions/transform/dense/bias", False),
    ("cls.predictions.transform.LayerNorm.weight", "cls/predictions/transform/LayerNorm/gamma", False),
    ("cls.predictions.transform.LayerNorm.bias", "cls/predictions/transform/LayerNorm/beta", False),
    ("cls.predictions.bias", "cls/predictions/output_bias", False),
    ("cls.seq_relationship.weight", "cls/seq_relationship/output_weights", False),  # [2, H] both sides
    ("cls.seq_relationship.bias", "cls/seq_relationship/output_bias", False),
    ("classifier.weight", "output_weights", False),  # [C, H] both sides
    ("classifier.bias", "output_bias", False),
    ("qa_outputs.weight", "cls/squad/output_weights", False),  # [2, H] both sides
    ("qa_outputs.bias", "cls/squad/output_bias", False),
)
# Tied copies: (HF name, the TF1 weight it shares). Read: skipped (the weight comes from its own
# row); written: a copy of that weight, so every tensor of BertForPreTraining's state dict is there.
HF_TIED = (
    ("cls.predictions.decoder.weight", "bert/embeddings/word_embeddings"),
    ("cls.predictions.decoder.bias", "cls/predictions/output_bias"),
)
# Buffers and tied copies that carry no weight of their own.
HF_SKIPPED = ("embeddings.position_ids", *(hf for hf, _ in HF_TIED))

_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
_FIXED = {hf: (tf1, t) for hf, tf1, t in HF_TABLE if "{i}" not in hf}
_PER_LAYER = {hf.split("{i}.", 1)[1]: (tf1, t) for hf, tf1, t in HF_TABLE if "{i}" in hf}


def normalize_hf_name(name: str) -> str:
    """Drop the ``bert.`` prefix and spell old ``LayerNorm.gamma/beta`` as ``weight/bias``."""
    if name.startswith("bert."):
        name = name[len("bert."):]
    return re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name))


def hf_to_tf1(name: str) -> tuple[str, bool] | None:
    """``(tf1 name, transpose)`` for an HF tensor name; None for buffers/tied copies.

    Unknown names come back unchanged (transpose False) so the loader reports them.
    """
    name = normalize_hf_name(name)
    if name in HF_SKIPPED:
        return None
    if name in _FIXED:
        return _FIXED[name]
    match = _LAYER.match(name)
    if match and match.group(2) in _PER_LAYER:
        tf1, transpose = _PER_LAYER[match.group(2)]
        return tf1.format(i=int(match.group(1))), transpose
    return name, False


# ----------------------------------------------------------------------------- files


def find_weights_file(path: str | os.PathLike) -> Path:
    """``model.safetensors`` in a directory (or the file itself)."""
    p = Path(path)
    if p.is_file():
        return p
    for candidate in ("model.safetensors", "model.safetensors.index.json"):
        if (p / candidate).is_file():
            return p / candidate
    if (p / "pytorch_model.bin").is_file():
        raise CheckpointError(
            f"{p} has only pytorch_model.bin; bert reads Hugging Face weights from model.safetensors",
            hint="convert it once with transformers (model.save_pretrained(dir, safe_serialization=True))",
        )
    raise NotFoundError(f"no model.safetensors in {p}")


def read_hf_config(path: str | os.PathLike) -> BertConfig:
    """The :class:`BertConfig` of an HF model directory (its ``config.json``)."""
    p = Path(path)
    config_file = p / "config.json" if p.is_dir() else p.parent / "config.json"
    return BertConfig.from_hf_json_file(config_file)


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of one ``.safetensors`` file (or a sharded ``.index.json``) as numpy arrays.

    bfloat16 tensors (numpy has no such dtype) are widened to float32; float16 stays float16.
    """
    path = Path(path)
    if path.name.endswith(".index.json"):
        tensors: dict[str, np.ndarray] = {}
        for shard in _shards(path):
            tensors.update(read_safetensors(shard))
        return tensors
    header = _safetensors_header(path)
    if any(isinstance(v, dict) and v.get("dtype") == "BF16" for v in header.values()):
        return _read_with_bf16(path, header)
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise CheckpointError(f"cannot read {path}: {exc}") from None


def _shards(index: Path) -> list[Path]:
    """The shard files a sharded ``model.safetensors.index.json`` names (all must exist)."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        shards = sorted({str(name) for name in weight_map.values()})
    except FileNotFoundError:
        raise NotFoundError(f"weights index not found: {index}") from None
    except (OSError, ValueError, AttributeError) as exc:  # JSON/Unicode errors; not an object
        raise CheckpointError(f"{index}: not a safetensors index ({exc or 'no weight_map'})") from None
    if not shards:
        raise CheckpointError(f"{index}: its weight_map names no shard files")
    paths = [index.parent / name for name in shards]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise NotFoundError(f"safetensors shard not found: {missing[0]} (named by {index})")
    return paths


def _safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header, its length checked against the file size first (a damaged length must
    not make us allocate it), and its entries checked to lie inside the file."""
    try:
        file_size = path.stat().st_size
        with open(path, "rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise CheckpointError(f"{path}: not a safetensors file ({file_size} bytes, shorter than its header)")
            (size,) = struct.unpack("<Q", prefix)
            if size > file_size - 8:
                raise CheckpointError(
                    f"{path}: damaged safetensors file: its header length {size:,} exceeds the file size {file_size:,}",
                    hint="the file is truncated or corrupt: download it again",
                )
            header = json.loads(fh.read(size))
    except FileNotFoundError:
        raise NotFoundError(f"weights file not found: {path}") from None
    except (OSError, ValueError) as exc:  # JSON and Unicode errors are ValueErrors
        raise CheckpointError(f"{path}: not a safetensors file ({exc})") from None
    if not isinstance(header, dict) or not all(isinstance(v, dict) for v in header.values()):
        raise CheckpointError(f"{path}: not a safetensors file (its header is not a JSON object of tensors)")
    data_size = file_size - 8 - size
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        offsets = meta.get("data_offsets")
        if (
            not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size
        ):
            raise CheckpointError(
                f"{path}: damaged safetensors file: tensor {name!r} has data offsets {offsets!r} outside "
                f"its {data_size:,} data bytes",
                hint="the file is truncated or corrupt: download it again",
            )
    return header


def _read_with_bf16(path: Path, header: dict[str, Any]) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    tensors = {}
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        base = 8 + size
        with safe_open(str(path), framework="np") as f:
            for name, meta in header.items():
                if name == "__metadata__":
                    continue
                if meta["dtype"] != "BF16":
                    tensors[name] = f.get_tensor(name)
                    continue
                start, end = meta["data_offsets"]
                fh.seek(base + start)
                raw = np.frombuffer(fh.read(end - start), dtype="<u2").astype(np.uint32) << 16
                tensors[name] = raw.view(np.float32).reshape(meta["shape"])
    return tensors


def read_hf_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{tf1 name: float32 array}`` from HF BERT weights (directory or file), transposed as TF."""
    weights_file = find_weights_file(path)
    out: dict[str, np.ndarray] = {}
    for name, array in read_safetensors(weights_file).items():
        mapped = hf_to_tf1(name)
        if mapped is None:
            continue
        tf1, transpose = mapped
        if tf1 in out:
            raise CheckpointError(f"{weights_file}: two tensors map to {tf1!r} (one is {name!r})")
        array = np.asarray(array)
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32, copy=False)
        out[tf1] = np.ascontiguousarray(array.T) if transpose else array
    return out


def check_weights_file(path: str | os.PathLike) -> None:
    """Fail now (naming the file) when the safetensors file of ``path`` is missing or damaged."""
    found = find_weights_file(path)
    for part in _shards(found) if found.name.endswith(".index.json") else [found]:
        _safetensors_header(part)


def load_hf_into(modules: Any, path: str | os.PathLike, **kwargs: Any):
    """Load HF weights into a model/heads with :func:`checkpoint.load_into`'s checks."""
    from .checkpoint import load_into

    return load_into(modules, read_hf_weights(path), description=str(find_weights_file(path)), **kwargs)


def load_hf_model(path: str | os.PathLike, *, compute_dtype=None, allow_missing: Any = False):
    """Build a :class:`BertModel` from an HF directory; returns ``(config, model, report)``."""
    import tensorflow as tf

    from .model import BertModel

    config = read_hf_config(path)
    model = BertModel(config, random_init=False, compute_dtype=compute_dtype or tf.float32)
    report = load_hf_into(model, path, allow_missing=allow_missing)
    return config, model, report
