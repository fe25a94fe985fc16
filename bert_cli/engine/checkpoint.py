"""Google's TF1 checkpoints: read, write and load by the original variable names.

A checkpoint is a prefix (``DIR/bert_model.ckpt``, ``DIR/model.ckpt-1000``) with
``PREFIX.index`` and ``PREFIX.data-00000-of-00001`` beside it, and usually a ``checkpoint``
state file in ``DIR`` naming the latest prefix. Files written here have the exact layout of the
original ``run_pretraining.py`` / ``run_classifier.py`` output (names, shapes, float32 weights,
int64 ``global_step``, optional ``<name>/adam_m`` ``<name>/adam_v`` slots), so Google's code,
``tf.train.list_variables`` / ``load_checkpoint`` and transformers' ``load_tf_weights_in_bert``
read them.

The mapping between TF1 names and this package's variables is DATA: the ``*_TABLE`` lists
below, one row per weight, ``(tf1 name, attribute path)``. :func:`tf1_names` walks them over a
model and its heads; :func:`load_into` is the one checked loop that loads by name (shapes
asserted, optimizer slots and ``global_step`` set aside, unmatched names reported on both
sides, like the original's ``get_assignment_map_from_checkpoint`` but loud).

API::

    write_checkpoint(prefix, tensors) -> prefix          # raw name -> array, exact names
    read_checkpoint(prefix) -> {name: np.ndarray}
    list_checkpoint(prefix) -> {name: shape tuple}
    resolve_checkpoint(path) -> prefix                   # DIR, PREFIX, PREFIX.index
    tf1_names(*modules) -> {tf1 name: tf.Variable}
    load_into(modules, source, *, allow_missing=False) -> LoadReport
    save_model(modules, prefix, *, global_step=None, optimizer_slots=None) -> prefix
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import tensorflow as tf

from .. import console
from ..errors import CheckpointError, NotFoundError
from ..fileio import atomic_write
from .checkpoint_reader import BundleReader
from .heads import ClassifierHead, PretrainingHeads, SquadHead
from .model import BertModel

# ----------------------------------------------------------------------------- the name table

EMBEDDINGS_TABLE = (
    ("bert/embeddings/word_embeddings", "embeddings.word_embeddings"),
    ("bert/embeddings/token_type_embeddings", "embeddings.token_type_embeddings"),
    ("bert/embeddings/position_embeddings", "embeddings.position_embeddings"),
    ("bert/embeddings/LayerNorm/beta", "embeddings.layer_norm.beta"),
    ("bert/embeddings/LayerNorm/gamma", "embeddings.layer_norm.gamma"),
)
# Rows for one encoder block; "{i}" is the layer index (``bert/encoder/layer_{i}/...``, ``layers[i]``).
LAYER_TABLE = (
    ("attention/self/query/kernel", "attention.query.kernel"),
    ("attention/self/query/bias", "attention.query.bias"),
    ("attention/self/key/kernel", "attention.key.kernel"),
    ("attention/self/key/bias", "attention.key.bias"),
    ("attention/self/value/kernel", "attention.value.kernel"),
    ("attention/self/value/bias", "attention.value.bias"),
    ("attention/output/dense/kernel", "attention.output_dense.kernel"),
    ("attention/output/dense/bias", "attention.output_dense.bias"),
    ("attention/output/LayerNorm/beta", "attention.layer_norm.beta"),
    ("attention/output/LayerNorm/gamma", "attention.layer_norm.gamma"),
    ("intermediate/dense/kernel", "intermediate.kernel"),
    ("intermediate/dense/bias", "intermediate.bias"),
    ("output/dense/kernel", "output_dense.kernel"),
    ("output/dense/bias", "output_dense.bias"),
    ("output/LayerNorm/beta", "layer_norm.beta"),
    ("output/LayerNorm/gamma", "layer_norm.gamma"),
)
POOLER_TABLE = (
    ("bert/pooler/dense/kernel", "pooler.kernel"),
    ("bert/pooler/dense/bias", "pooler.bias"),
)
PRETRAINING_TABLE = (
    ("cls/predictions/transform/dense/kernel", "transform.kernel"),
    ("cls/predictions/transform/dense/bias", "transform.bias"),
    ("cls/predictions/transform/LayerNorm/beta", "transform_layer_norm.beta"),
    ("cls/predictions/transform/LayerNorm/gamma", "transform_layer_norm.gamma"),
    ("cls/predictions/output_bias", "output_bias"),
    ("cls/seq_relationship/output_weights", "nsp_weights"),
    ("cls/seq_relationship/output_bias", "nsp_bias"),
)
CLASSIFIER_TABLE = (
    ("output_weights", "output_weights"),
    ("output_bias", "output_bias"),
)
SQUAD_TABLE = (
    ("cls/squad/output_weights", "output_weights"),
    ("cls/squad/output_bias", "output_bias"),
)

SLOT_SUFFIXES = ("/adam_m", "/adam_v")
GLOBAL_STEP = "global_step"
# Other optimizer bookkeeping some TF1 checkpoints carry; never model weights.
_OPTIMIZER_NAME = re.compile(r"(^|/)(AdamWeightDecayOptimizer(_\d+)?|Adam(_\d+)?|beta[12]_power|global_step)(/|$)")


def _table_rows(module: Any) -> list[tuple[str, str]]:
    if isinstance(module, BertModel):
        rows = list(EMBEDDINGS_TABLE)
        for i in range(len(module.layers)):
            rows += [(f"bert/encoder/layer_{i}/{name}", f"layers.{i}.{path}") for name, path in LAYER_TABLE]
        return rows + list(POOLER_TABLE)
    if isinstance(module, PretrainingHeads):
        return list(PRETRAINING_TABLE)
    if isinstance(module, ClassifierHead):
        return list(CLASSIFIER_TABLE)
    if isinstance(module, SquadHead):
        return list(SQUAD_TABLE)
    raise TypeError(f"no TF1 name table for {type(module).__name__}")


def _getattr_path(module: Any, path: str) -> tf.Variable:
    obj = module
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def tf1_names(*modules: Any) -> dict[str, tf.Variable]:
    """``{TF1 name: variable}`` for a model and its heads (or dicts of that form, merged).

    Accepts :class:`BertModel`, :class:`PretrainingHeads`, :class:`ClassifierHead`,
    :class:`SquadHead`, mappings ``name -> variable``, and lists/tuples of those.
    """
    names: dict[str, tf.Variable] = {}
    for module in _flatten(modules):
        if isinstance(module, Mapping):
            rows = dict(module)
        else:
            rows = {name: _getattr_path(module, path) for name, path in _table_rows(module)}
        for name, var in rows.items():
            if name in names and names[name] is not var:
                raise CheckpointError(f"two variables claim the checkpoint name {name!r}")
            names[name] = var
    return names


def _flatten(items: Iterable[Any]) -> Iterable[Any]:
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from _flatten(item)
        else:
            yield item


# ----------------------------------------------------------------------------- raw files


def resolve_checkpoint(path: str | os.PathLike) -> str:
    """The checkpoint prefix for a prefix, a ``.index``/``.data-*`` file, or a directory.

    A directory resolves through its ``checkpoint`` state file (latest), else its only
    ``*.index`` file. Raises NotFoundError naming what was looked for.
    """
    p = str(path)
    if p.endswith(".index"):
        p = p[: -len(".index")]
    p = re.sub(r"\.data-\d{5}-of-\d{5}$", "", p)
    if os.path.isfile(p + ".index"):
        return p
    if os.path.isdir(p):
        latest = tf.train.latest_checkpoint(p)
        if latest and os.path.isfile(latest + ".index"):
            return latest
        indexes = sorted(Path(p).glob("*.index"))
        if len(indexes) == 1:
            return str(indexes[0])[: -len(".index")]
        if len(indexes) > 1:
            raise NotFoundError(
                f"{p} holds {len(indexes)} checkpoints and no 'checkpoint' state file",
                hint=f"pass one prefix, e.g. {str(indexes[-1])[: -len('.index')]}",
            )
    raise NotFoundError(
        f"checkpoint not found: {path}",
        hint="pass a checkpoint prefix (DIR/bert_model.ckpt, without .index) or its directory",
    )


def list_checkpoint(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of every tensor in a checkpoint (the index alone is enough)."""
    prefix = resolve_checkpoint(path)
    return dict(sorted(BundleReader(prefix, need_data=False).shapes().items()))


def read_checkpoint(path: str | os.PathLike, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """``{name: array}`` for every tensor (or just ``names``) of a checkpoint.

    Missing or damaged files are NotFoundError / CheckpointError naming the file
    (:class:`~bert_cli.engine.checkpoint_reader.BundleReader`).
    """
    reader = BundleReader(resolve_checkpoint(path))
    wanted = sorted(reader.shapes()) if names is None else list(names)
    unknown = [name for name in wanted if name not in reader.shapes()]
    if unknown:
        raise CheckpointError(f"{reader.prefix}: no tensor named {_short(unknown)}")
    return reader.read(wanted)


def write_checkpoint(prefix: str | os.PathLike, tensors: Mapping[str, Any], *, update_state: bool = True) -> str:
    """Write ``tensors`` under their exact names (``tf.raw_ops.SaveV2``); return the prefix.

    Files appear atomically: the bundle is written under a temporary prefix, then its data
    file and finally its index are renamed into place. With ``update_state`` the directory's
    ``checkpoint`` state file is updated so ``tf.train.latest_checkpoint(dir)`` finds it.
    """
    prefix = os.fspath(prefix)
    if not tensors:
        raise CheckpointError("refusing to write an empty checkpoint")
    directory = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(directory, exist_ok=True)
    names = sorted(tensors)
    values = [_as_tensor(tensors[name]) for name in names]
    tmp = os.path.join(directory, f".{os.path.basename(prefix)}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with tf.device("CPU:0"):
            tf.raw_ops.SaveV2(
                prefix=tmp, tensor_names=names, shape_and_slices=[""] * len(names), tensors=values
            )
        data_files = sorted(Path(directory).glob(os.path.basename(tmp) + ".data-*"))
        for data in data_files:
            os.replace(data, prefix + data.name[len(os.path.basename(tmp)) :])
        os.replace(tmp + ".index", prefix + ".index")
    finally:
        for leftover in Path(directory).glob(os.path.basename(tmp) + "*"):
            leftover.unlink(missing_ok=True)
    if update_state:
        _update_state_file(directory, prefix)
    return prefix


def _as_tensor(value: Any) -> tf.Tensor:
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return tf.convert_to_tensor(value)
    return tf.convert_to_tensor(np.asarray(value))


def _update_state_file(directory: str, prefix: str) -> None:
    """Point the ``checkpoint`` state file at ``prefix`` (kept relative, like Estimator)."""
    state = tf.train.get_checkpoint_state(directory)
    previous = list(state.all_model_checkpoint_paths) if state else []
    rel = os.path.relpath(os.path.abspath(prefix), directory)
    paths = [p for p in previous if p not in (rel, prefix)] + [rel]

    def quoted(text: str) -> str:  # a text-proto string literal
        return json.dumps(text, ensure_ascii=False)

    lines = [f"model_checkpoint_path: {quoted(rel)}"] + [f"all_model_checkpoint_paths: {quoted(p)}" for p in paths]
    state_file = os.path.join(directory, "checkpoint")
    with atomic_write(state_file) as fh:
        fh.write("\n".join(lines) + "\n")
    os.chmod(state_file, 0o644)  # like TF's own state file (the temp file was 0600)


# ----------------------------------------------------------------------------- loading


def is_optimizer_name(name: str) -> bool:
    """True for Adam slots (``.../adam_m``, ``.../adam_v``), ``global_step`` and the like."""
    return name.endswith(SLOT_SUFFIXES) or bool(_OPTIMIZER_NAME.search(name))


@dataclasses.dataclass
class LoadReport:
    """What :func:`load_into` did.

    ``loaded``: model names given values; ``missing``: model names absent from the source
    (left at their initial values); ``unexpected``: source weights no model variable takes;
    ``optimizer``: slot/step names set aside; ``global_step`` when present; ``slots``: slot
    arrays when asked for.
    """

    source: str
    loaded: list[str]
    missing: list[str]
    unexpected: list[str]
    optimizer: list[str]
    global_step: int | None = None
    slots: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"loaded {len(self.loaded)} weights from {self.source}"]
        if self.missing:
            parts.append(f"{len(self.missing)} not in the checkpoint (kept initial values): {_short(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unused: {_short(self.unexpected)}")
        if self.global_step is not None:
            parts.append(f"global_step {self.global_step}")
        return "; ".join(parts)


def _short(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _allowed(name: str, allow: bool | Iterable[str]) -> bool:
    if isinstance(allow, bool):
        return allow
    return any(name.startswith(prefix) for prefix in allow)


class _MappingSource:
    """A dict of arrays that looks like a checkpoint reader."""

    def __init__(self, tensors: Mapping[str, Any], description: str) -> None:
        self.tensors = tensors
        self.description = description

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(np.shape(v)) for k, v in self.tensors.items()}

    def get(self, name: str) -> np.ndarray:
        return np.asarray(self.tensors[name])


class _CheckpointSource:
    def __init__(self, prefix: str) -> None:
        self.reader = BundleReader(prefix)  # missing or truncated data files fail here
        self.description = prefix

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return self.reader.shapes()

    def get(self, name: str) -> np.ndarray:
        return self.reader.get(name)  # a damaged tensor is a CheckpointError naming the file


def load_into(
    modules: Any,
    source: str | os.PathLike | Mapping[str, Any],
    *,
    allow_missing: bool | Iterable[str] = False,
    allow_unexpected: bool = True,
    load_slots: bool = False,
    description: str | None = None,
) -> LoadReport:
    """Assign checkpoint (or ``{tf1 name: array}``) values to model variables by TF1 name.

    Checks everything before assigning anything: a shape mismatch is always a CheckpointError;
    model variables absent from the source are an error unless ``allow_missing`` is True or
    lists their name prefixes (e.g. ``("output_", "cls/")`` when fine-tuning from a
    pretraining checkpoint); source weights no variable takes are reported in ``unexpected``
    (an error only with ``allow_unexpected=False``). Adam slots and ``global_step`` are never
    loaded into the model: their names are reported, ``global_step`` returned, and with
    ``load_slots`` the slot arrays too (to resume training).
    """
    targets = tf1_names(modules) if not isinstance(modules, Mapping) else dict(modules)
    if isinstance(source, Mapping):
        src: Any = _MappingSource(source, description or "weights")
    else:
        src = _CheckpointSource(resolve_checkpoint(source))
        if description:
            src.description = description
    shapes = src.shapes()

    optimizer = sorted(n for n in shapes if is_optimizer_name(n))
    weights = {n: s for n, s in shapes.items() if not is_optimizer_name(n)}
    missing = sorted(n for n in targets if n not in weights)
    unexpected = sorted(n for n in weights if n not in targets)
    mismatched = [
        f"{n}: checkpoint {list(weights[n])} vs model {targets[n].shape.as_list()}"
        for n in sorted(targets)
        if n in weights and tuple(weights[n]) != tuple(targets[n].shape.as_list())
    ]
    if mismatched:
        raise CheckpointError(
            f"{src.description}: {len(mismatched)} shape mismatches: {_short(mismatched, 4)}",
            hint="the bert_config.json does not match this checkpoint",
        )
    not_allowed = [n for n in missing if not _allowed(n, allow_missing)]
    if not_allowed:
        raise CheckpointError(
            f"{src.description}: {len(not_allowed)} model weights are not in the checkpoint: {_short(not_allowed)}"
            + (f" (it has {len(unexpected)} other weights: {_short(unexpected, 3)})" if unexpected else ""),
            hint="check that the checkpoint and bert_config.json belong to the same model",
        )
    if unexpected and not allow_unexpected:
        raise CheckpointError(
            f"{src.description}: {len(unexpected)} checkpoint weights are not used by the model: {_short(unexpected)}"
        )

    # Read (and checksum) every needed tensor before assigning any: a damaged file fails here,
    # with the model untouched.
    loaded = [name for name in sorted(targets) if name in weights]
    values = {name: src.get(name) for name in loaded}
    for name in loaded:
        var = targets[name]
        var.assign(values.pop(name).astype(var.dtype.as_numpy_dtype, copy=False))
        console.debug(f"  {name} {list(weights[name])} *INIT_FROM_CKPT*")

    report = LoadReport(src.description, loaded, missing, unexpected, optimizer)
    if GLOBAL_STEP in shapes:
        report.global_step = int(src.get(GLOBAL_STEP))
    if load_slots:
        report.slots = {n: src.get(n) for n in optimizer if n.endswith(SLOT_SUFFIXES)}
    return report


# ----------------------------------------------------------------------------- saving


def model_tensors(modules: Any) -> dict[str, np.ndarray]:
    """``{TF1 name: float32 array}`` of every variable of a model and its heads."""
    return {name: np.asarray(var.numpy(), dtype=np.float32) for name, var in tf1_names(modules).items()}


def save_model(
    modules: Any,
    prefix: str | os.PathLike,
    *,
    global_step: int | None = None,
    optimizer_slots: Mapping[str, Any] | None = None,
    update_state: bool = True,
) -> str:
    """Write a model (and heads) in the original TF1 layout; return the prefix.

    ``global_step`` is written as an int64 scalar when given (Estimator checkpoints have it;
    Google's released ``bert_model.ckpt`` files do not). ``optimizer_slots`` maps
    ``<tf1 name>/adam_m`` / ``/adam_v`` to arrays of the variable's shape.
    """
    # Variables go to SaveV2 as tensors: no extra numpy copy of a 440 MB model.
    tensors: dict[str, Any] = {
        name: tf.cast(var.read_value(), tf.float32) for name, var in tf1_names(modules).items()
    }
    for name, value in (optimizer_slots or {}).items():
        base = next((name[: -len(s)] for s in SLOT_SUFFIXES if name.endswith(s)), None)
        if base is None or base not in tensors:
            raise CheckpointError(f"optimizer slot {name!r} does not belong to a model weight")
        value = tf.cast(_as_tensor(value), tf.float32)
        if value.shape != tensors[base].shape:
            raise CheckpointError(
                f"optimizer slot {name!r} has shape {value.shape.as_list()}, expected {tensors[base].shape.as_list()}"
            )
        tensors[name] = value
    if global_step is not None:
        tensors[GLOBAL_STEP] = np.asarray(global_step, dtype=np.int64)
    return write_checkpoint(prefix, tensors, update_state=update_state)
