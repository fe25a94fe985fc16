"""Training checkpoints in the original TF1 layout, with kill -9 safe saving and exact resume.

:class:`CheckpointManager` is what every trainer (pretraining, classifier, SQuAD) uses to write
``DIR/model.ckpt-<step>`` and to continue after an interruption. A checkpoint holds exactly
what the original Estimator runs wrote: the model weights under their TF1 names, the optimizer
slots (``<name>/adam_m``, ``<name>/adam_v``; ``lamb_m``/``lamb_v`` for LAMB) and an int64
``global_step``, so ``tf.train.list_variables``, Google's scripts and transformers read them.

Crash safety (``kill -9`` at any instant)
-----------------------------------------
A save happens in three steps, each of which leaves the directory consistent:

1. the tensors are written under a hidden temporary prefix (``.model.ckpt-N.tmp-XXXX``), then
   the data file and, last, the index are renamed onto ``model.ckpt-N`` (this is
   :func:`bert_cli.engine.checkpoint.write_checkpoint`);
2. only then is the ``checkpoint`` state file rewritten -- atomically (temp file + rename) --
   to name ``model.ckpt-N`` as the latest;
3. only after that are checkpoints beyond ``keep`` deleted (and removed from the state file).

:meth:`CheckpointManager.latest` trusts nothing but the state file, and only entries whose
index exists. A process killed during step 1 or 2 leaves at most an orphan that no state file
names (the previous checkpoint stays the latest); the next manager on the directory removes
hidden temporary leftovers. A process killed during step 3 leaves an extra old checkpoint
that the next save prunes.

Resume
------
:meth:`CheckpointManager.restore` assigns every variable of the mapping -- weights, slots and
``global_step`` -- from the latest checkpoint and returns its step. A name missing from the
checkpoint or a shape that differs is a :class:`~bert_cli.errors.CheckpointError` before
anything is assigned (e.g. resuming an AdamW run with ``--optimizer lamb``).

Only the chief writes (``is_chief=False`` makes :meth:`save` a no-op returning None); every
worker restores.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import tensorflow as tf

from .. import console
from ..errors import CheckpointError, NotFoundError, TrainingDivergedError
from ..fileio import atomic_write
from .checkpoint import GLOBAL_STEP, write_checkpoint
from .checkpoint_reader import BundleReader

TensorSource = Callable[[], Mapping[str, tf.Variable]] | Mapping[str, tf.Variable]

STATE_FILE = "checkpoint"


class CheckpointManager:
    """Save, find and restore ``<directory>/<prefix>-<step>`` checkpoints (TF1 layout).

    ``tensors`` maps checkpoint names to variables (or is a zero-argument callable returning
    that mapping, evaluated at every save/restore). When it has no ``global_step`` entry the
    step given to :meth:`save` is written as ``global_step`` (int64). ``keep`` is how many of
    the newest checkpoints to keep (``None``: all).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        tensors: TensorSource,
        *,
        keep: int | None = 5,
        prefix: str = "model.ckpt",
        is_chief: bool = True,
    ) -> None:
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be >= 1 or None, got {keep}")
        if not prefix or "/" in prefix or os.sep in prefix:
            raise ValueError(f"prefix must be a plain file name, got {prefix!r}")
        # Absolute from here on: ``tf.train.get_checkpoint_state`` already joins the state file's
        # relative entries onto the directory it was given, so a relative directory would be
        # joined twice (``r/run/r/run/model.ckpt-40``) and a rerun would not find its checkpoints.
        self.directory = Path(os.path.abspath(directory))
        self._tensors = tensors
        self.keep = keep
        self.prefix = prefix
        self.is_chief = is_chief
        if is_chief and self.directory.is_dir():
            self._remove_temporaries()

    # ------------------------------------------------------------------ public API

    def tensors(self) -> dict[str, tf.Variable]:
        """The current ``{checkpoint name: variable}`` mapping."""
        source = self._tensors() if callable(self._tensors) else self._tensors
        return dict(source)

    def path_for(self, step: int) -> str:
        """``<directory>/<prefix>-<step>``."""
        return str(self.directory / f"{self.prefix}-{int(step)}")

    @property
    def checkpoints(self) -> list[str]:
        """Complete checkpoints named by the state file, oldest first (absolute prefixes)."""
        return [p for p in self._state_paths() if _complete(p)]

    def latest(self) -> str | None:
        """The newest COMPLETE checkpoint named by the ``checkpoint`` state file, or None.

        A checkpoint whose files exist but which the state file does not name (a save cut off
        by a crash) is never returned.
        """
        paths = self.checkpoints
        return paths[-1] if paths else None

    def save(self, step: int) -> str | None:
        """Write ``<prefix>-<step>``; returns its path (None when this worker is not the chief).

        Order: data, index (both renamed from a temporary prefix), then the state file
        (atomic), then pruning to ``keep``.
        """
        if not self.is_chief:
            return None
        step = int(step)
        values: dict[str, object] = {name: _read(var) for name, var in self.tensors().items()}
        _check_finite(values, step, self.latest())
        if GLOBAL_STEP not in values:
            values[GLOBAL_STEP] = np.asarray(step, dtype=np.int64)
        else:
            values[GLOBAL_STEP] = tf.cast(values[GLOBAL_STEP], tf.int64)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path_for(step)
        write_checkpoint(path, values, update_state=False)
        kept = [p for p in self._state_paths() if p != path and _complete(p)] + [path]
        removed: list[str] = []
        if self.keep is not None and len(kept) > self.keep:
            removed, kept = kept[: -self.keep], kept[-self.keep :]
        self._write_state(kept)
        for old in removed:
            _delete_checkpoint(old)
        return path

    def check_loss(self, loss: float, step: int) -> None:
        """Stop a diverged run: a NaN/infinite training ``loss`` at ``step`` is an error that
        names the last good checkpoint (the NaN guard every trainer calls before it saves)."""
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"the training loss is {loss} at step {step}; nothing was saved after it: {_kept(self.latest())}",
                hint="lower --learning-rate (or use --precision fp32), then rerun: it resumes from the last good checkpoint",
            )

    def restore(self, prefix: str | None = None) -> int | None:
        """Assign every variable from ``prefix`` (default: :meth:`latest`); return its step.

        Returns None when there is nothing to restore (no complete checkpoint). The step is
        the checkpoint's ``global_step`` (or, without one, the ``-<step>`` of its name).
        """
        if prefix is None:
            prefix = self.latest()
            if prefix is None:
                return None
        elif not _complete(prefix):
            raise NotFoundError(f"checkpoint not found: {prefix}", hint="pass a prefix such as DIR/model.ckpt-1000")
        targets = self.tensors()
        reader = BundleReader(prefix)  # damaged or missing files: errors naming them
        shapes = reader.shapes()
        self._check_compatible(prefix, targets, shapes)
        values = reader.read(targets)  # every tensor checksummed before any is assigned
        for name, var in targets.items():
            var.assign(values.pop(name).astype(var.dtype.as_numpy_dtype, copy=False))
        if GLOBAL_STEP in shapes:
            return int(reader.get(GLOBAL_STEP))
        match = re.search(r"-(\d+)$", prefix)
        return int(match.group(1)) if match else 0

    # ------------------------------------------------------------------ internals

    def _check_compatible(self, prefix: str, targets: Mapping[str, tf.Variable], shapes) -> None:
        missing = sorted(n for n in targets if n not in shapes)
        if missing:
            shown = ", ".join(missing[:5]) + (f", ... ({len(missing) - 5} more)" if len(missing) > 5 else "")
            hint = "was it written with another --optimizer or model config? use a fresh --output-dir"
            raise CheckpointError(f"{prefix}: {len(missing)} variables to resume are not in it: {shown}", hint=hint)
        bad = [
            f"{n}: checkpoint {list(shapes[n])} vs model {targets[n].shape.as_list()}"
            for n in sorted(targets)
            if list(shapes[n]) != targets[n].shape.as_list()
        ]
        if bad:
            raise CheckpointError(
                f"{prefix}: {len(bad)} shape mismatches: {'; '.join(bad[:4])}",
                hint="the bert_config.json differs from the run that wrote this checkpoint; use a fresh --output-dir",
            )

    def _state_paths(self) -> list[str]:
        """Absolute prefixes listed in the state file (all_model_checkpoint_paths, then the latest)."""
        state_file = self.directory / STATE_FILE
        if not state_file.is_file():
            return []
        try:
            state = tf.train.get_checkpoint_state(str(self.directory))
        except Exception as exc:  # noqa: BLE001 - a corrupt state file means "no checkpoint"
            console.warn(f"ignoring unreadable {state_file}: {str(exc).splitlines()[0] if str(exc) else exc}")
            return []
        if state is None:
            return []
        paths = [self._absolute(p) for p in state.all_model_checkpoint_paths]
        latest = self._absolute(state.model_checkpoint_path) if state.model_checkpoint_path else None
        if latest is not None:
            paths = [p for p in paths if p != latest] + [latest]
        return paths

    def _absolute(self, path: str) -> str:
        return path if os.path.isabs(path) else str(self.directory / path)

    def _write_state(self, paths: list[str]) -> None:
        """Rewrite the state file (relative paths, like Estimator) atomically."""
        rel = [os.path.relpath(p, self.directory) for p in paths]

        def quoted(text: str) -> str:  # a text-proto string literal
            return json.dumps(text, ensure_ascii=False)

        lines = [f"model_checkpoint_path: {quoted(rel[-1])}"] + [f"all_model_checkpoint_paths: {quoted(p)}" for p in rel]
        state_file = self.directory / STATE_FILE
        with atomic_write(state_file) as fh:
            fh.write("\n".join(lines) + "\n")
        os.chmod(state_file, 0o644)

    def _remove_temporaries(self) -> None:
        """Delete hidden temporary files a killed save left behind (never a named checkpoint)."""
        patterns = (f".{self.prefix}-*.tmp-*", f".{STATE_FILE}.*.tmp")
        for pattern in patterns:
            for leftover in self.directory.glob(pattern):
                try:
                    leftover.unlink()
                except OSError:
                    pass


def _read(var) -> tf.Tensor:
    """A variable's current value as a tensor (float variables as float32)."""
    value = tf.convert_to_tensor(var.read_value() if hasattr(var, "read_value") else var)
    return tf.cast(value, tf.float32) if value.dtype.is_floating else value


def _check_finite(values: Mapping[str, object], step: int, last_good: str | None) -> None:
    """Refuse to write weights or optimizer slots that hold NaN or infinity.

    A diverged run (``--learning-rate 1e30``) must never leave a checkpoint that the next run
    would resume from; the error names the step and the last good checkpoint instead.
    """
    bad = [
        name
        for name, value in values.items()
        if value.dtype.is_floating and not bool(tf.reduce_all(tf.math.is_finite(value)))
    ]
    if bad:
        raise TrainingDivergedError(
            f"the weights are not finite at step {step} ({len(bad)} tensors, e.g. {bad[0]}); "
            f"nothing was saved: {_kept(last_good)}",
            hint="lower --learning-rate (or use --precision fp32), then rerun: it resumes from the last good checkpoint",
        )


def _kept(last_good: str | None) -> str:
    return f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written"


def _complete(prefix: str) -> bool:
    """True when the index and at least one data file of ``prefix`` exist."""
    if not os.path.isfile(prefix + ".index"):
        return False
    parent = Path(prefix).parent
    return any(parent.glob(Path(prefix).name + ".data-*"))


def _delete_checkpoint(prefix: str) -> None:
    """Remove a checkpoint's index first (it stops being complete), then its other files."""
    path = Path(prefix)
    files = [Path(prefix + ".index")] + sorted(path.parent.glob(path.name + ".data-*")) + [Path(prefix + ".meta")]
    for f in files:
        try:
            f.unlink()
        except FileNotFoundError:
            pass
