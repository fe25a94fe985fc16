"""Pick the device, distribution strategy, precision and XLA flag for a run.

One entry point, :func:`select_runtime`, called once at the start of a command (before any
other TensorFlow work: hiding GPUs and the multi-worker runtime must be set up before TF
initialises its devices). It returns a frozen :class:`Runtime`:

==================================  =============================================================
situation                           strategy
==================================  =============================================================
``--device tpu``, or ``auto`` with  ``TPUStrategy`` on the resolved TPU. A resolver is only tried
``TPU_NAME`` / ``COLAB_TPU_ADDR`` / when asked or hinted by the environment: never a slow probe on
``KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS``  a plain CPU machine.
``TF_CONFIG`` with several workers  ``MultiWorkerMirroredStrategy`` (CPU or GPU per worker)
several GPUs                        ``MirroredStrategy`` over all of them
one GPU, or CPU                     the default strategy (``--device cpu`` hides the GPUs)
==================================  =============================================================

Precision ``auto``: bf16 on TPU, fp16 (+ dynamic loss scaling) on GPU, fp32 on CPU. bf16 also
works on CPU; fp16 on CPU works but is slow (a warning says so); fp16 on TPU is refused.
Variables always stay float32; :attr:`Runtime.keras_policy` is the Keras mixed-precision
policy name the model should compute in (:meth:`Runtime.apply_keras_policy` sets it globally).

XLA ``None`` (auto): on for TPU and GPU, off for CPU. It is the ``jit_compile`` flag the
trainers pass to ``tf.function`` (:meth:`Runtime.function`, ``TrainStep(jit_compile=...)``).
Off on CPU is measured, not assumed (2-core AVX2 CPU without avx512, TF 2.21, shared and
loaded, XLA on/off runs interleaved): ``bench/pretrain.py --variants ours --config small
--steps 20`` took 163 / 236 s with XLA on vs 157 / 168 s off (first step, the compile,
43-55 s vs 27 s; steady steps/s 0.21 / 0.13 on vs 0.20 / 0.18 off: no steady gain to pay the
compile back); ``bench/finetune_mrpc.py --variants ours --max-steps 40`` (MiniLM) trained at
2.37 ex/s with XLA on (639 s whole command) vs 6.63 ex/s off (221 s). ``bert extract`` follows
the same default (it used to compile on CPU too): on the same CPU it measured 16 lines 24.6 s
on vs 23.3 s off and 512 lines 60.3 s on vs 34.3 s off (medians of 3, MiniLM, ``--pooling
mean``). GPU/TPU: not measured here (no such machine was available).

CPU thread pools: TensorFlow's defaults (intra-op and inter-op threads = all cores;
``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS`` change them). Measured against the usual
advice for oneDNN (inter-op 1): on a 2-core AVX2 CPU it made ``bench/finetune_mrpc.py --variants
ours --max-steps 30 --threads 2`` train at 10.3 and 10.7 examples/s vs 12.5 and 12.1 with the
default (``TF_NUM_INTEROP_THREADS=1`` vs ``2``, runs interleaved; again after the AutoGraph
change: 12.6 vs 14.5), and a MiniLM forward (batch 8 x 384) was the same within the machine's
noise (medians 797/758/755 vs 746/801/763 ms per batch). The backward pass has independent
branches that a second inter-op thread runs at once.

``seed`` seeds Python ``random``, NumPy and TensorFlow (``keras.utils.set_random_seed``);
``deterministic=True`` also enables TensorFlow op determinism. Under ``TF_CONFIG`` every worker
takes the chief's seed (:attr:`Runtime.seed`), so seeds drawn per process cannot split the
cluster's data order.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping

from . import quiet_probe
from ..cluster import parse_tf_config
from ..errors import NotFoundError, UsageError

DEVICES: tuple[str, ...] = ("auto", "cpu", "gpu", "tpu")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
TPU_ENV_HINTS: tuple[str, ...] = ("TPU_NAME", "COLAB_TPU_ADDR", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS")

_COMPUTE_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_KERAS_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
_PRECISION_ALIASES = {
    "fp32": "fp32", "float32": "fp32", "32": "fp32",
    "bf16": "bf16", "bfloat16": "bf16", "mixed_bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "16": "fp16", "mixed_float16": "fp16",
    "auto": "auto",
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Runtime
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Runtime:
    """The chosen strategy, device and precision of a run (see :func:`select_runtime`)."""

    strategy: Any
    device: str  # "cpu" | "gpu" | "tpu"
    num_replicas: int
    num_workers: int
    devices_per_worker: int
    precision: str  # "fp32" | "bf16" | "fp16"
    compute_dtype: str  # "float32" | "bfloat16" | "float16"
    xla: bool
    seed: int | None
    banner: str
    strategy_name: str = "default"  # "default", "MirroredStrategy", "MultiWorkerMirroredStrategy", ...
    is_chief: bool = True

    @property
    def loss_scaling(self) -> bool:
        """fp16 needs dynamic loss scaling; bf16 and fp32 do not."""
        return self.precision == "fp16"

    @property
    def padding_multiple(self) -> int | None:
        """Batches are cut to their longest example rounded up to this (see
        :mod:`bert_cli.engine.padding`): 8, or 64 under XLA (one compile per shape); None on TPU,
        which needs static shapes."""
        if self.device == "tpu":
            return None
        return 64 if self.xla else 8

    @property
    def keras_policy(self) -> str:
        """Keras mixed-precision policy name: float32, mixed_bfloat16 or mixed_float16."""
        return _KERAS_POLICIES[self.precision]

    def scope(self):
        """``with runtime.scope():`` build the model, optimizer, loss scaler and train step."""
        return self.strategy.scope()

    def apply_keras_policy(self) -> None:
        """Set the global Keras dtype policy to :attr:`keras_policy`."""
        import keras

        keras.config.set_dtype_policy(self.keras_policy)

    def make_loss_scaler(self):
        """A :class:`~bert_cli.engine.loss_scale.LossScaler` (built in scope) for fp16, else None."""
        if not self.loss_scaling:
            return None
        from .loss_scale import LossScaler

        with self.scope():
            return LossScaler()

    def global_batch_size(self, per_replica_batch_size: int) -> int:
        return per_replica_batch_size * self.num_replicas

    def distribute(self, dataset):
        """Split a dataset batched with the **global** batch size across the replicas.

        Unchanged under the default strategy; otherwise
        ``strategy.experimental_distribute_dataset`` (each element is a per-replica value that
        :class:`~bert_cli.engine.train_step.TrainStep` accepts).
        """
        if not _is_distributed(self.strategy):
            return dataset
        if self.num_workers > 1:
            # Shard by element after the global batch is split into per-replica parts, so the
            # workers together see exactly the global batches one process would (FILE sharding,
            # tf.data's default guess, would give each worker other files and other batches).
            import tensorflow as tf

            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
            dataset = dataset.with_options(options)
        return self.strategy.experimental_distribute_dataset(dataset)

    def function(self, fn: Callable, *, jit_compile: bool | None = None) -> Callable:
        """``fn`` compiled (:func:`~bert_cli.engine.functions.compiled`); XLA as the runtime's
        unless ``jit_compile`` says otherwise."""
        from .functions import compiled

        return compiled(fn, jit_compile=self.xla if jit_compile is None else jit_compile)

    def describe(self, verb: str = "training") -> str:
        """The banner with another verb: ``runtime.describe("predicting")``."""
        return self.banner.replace("bert: training on", f"bert: {verb} on", 1)


def activity(*, train: bool, evaluate: bool = False, predict: bool = False) -> str:
    """The verb for :meth:`Runtime.describe` of a run with these phases: "training" whenever it
    trains, else "evaluating", "predicting" or "evaluating and predicting"."""
    if train:
        return "training"
    return " and ".join(verb for verb, on in (("evaluating", evaluate), ("predicting", predict)) if on) or "running"


def select_runtime(
    device: str = "auto",
    precision: str = "auto",
    xla: bool | None = None,
    seed: int | None = None,
    *,
    deterministic: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Runtime:
    """Choose strategy, precision and XLA for this machine (see the module docstring).

    ``environ`` defaults to ``os.environ`` (tests pass their own). Raises
    :class:`UsageError` for unknown names or impossible combinations and
    :class:`NotFoundError` when the requested device is absent.
    """
    env = os.environ if environ is None else environ
    device = _normalise_device(device)
    precision = _normalise_precision(precision)

    import tensorflow as tf

    _seed_everything(seed, deterministic)

    cluster = parse_tf_config(env.get("TF_CONFIG"))
    strategy, kind, workers, per_worker, name = None, None, 1, 1, "default"

    if device == "tpu" or (device == "auto" and any(env.get(k) for k in TPU_ENV_HINTS)):
        strategy, per_worker = _try_tpu(env, required=device == "tpu")
        if strategy is not None:
            kind, name = "tpu", "TPUStrategy"
    if strategy is None:
        with quiet_probe():  # hiding the GPUs initialises CUDA too: its errors are the probe's
            if device == "cpu":
                _hide_gpus(tf)
            gpus = [] if device == "cpu" else tf.config.list_physical_devices("GPU")
        if device == "gpu" and not gpus:
            raise NotFoundError(
                "--device gpu: TensorFlow sees no GPU",
                hint="check `nvidia-smi` and that the CUDA build of TensorFlow is installed "
                "(pip install 'tensorflow[and-cuda]'), or run with --device cpu",
            )
        kind = "gpu" if gpus else "cpu"
        per_worker = max(len(gpus), 1)
        if cluster is not None and cluster.num_workers > 1:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
            workers, name = cluster.num_workers, "MultiWorkerMirroredStrategy"
            if seed is not None:  # one seed for the whole cluster: the chief's
                seed = _chief_seed(tf, strategy, seed)
                _seed_everything(seed, deterministic)
        elif len(gpus) > 1:
            strategy, name = tf.distribute.MirroredStrategy(), "MirroredStrategy"
        elif device == "cpu" and tf.config.list_logical_devices("GPU"):
            # GPUs were initialised before we could hide them: pin the work to the CPU.
            strategy, name = tf.distribute.OneDeviceStrategy("/cpu:0"), "OneDeviceStrategy"
        else:
            strategy = tf.distribute.get_strategy()

    precision = _resolve_precision(precision, kind)
    if xla is None:
        xla = kind in ("tpu", "gpu")
    num_replicas = int(strategy.num_replicas_in_sync)
    banner = _banner(kind, num_replicas, workers, per_worker, name, precision, bool(xla))
    return Runtime(
        strategy=strategy,
        device=kind,
        num_replicas=num_replicas,
        num_workers=workers,
        devices_per_worker=per_worker,
        precision=precision,
        compute_dtype=_COMPUTE_DTYPES[precision],
        xla=bool(xla),
        seed=seed,
        banner=banner,
        strategy_name=name,
        is_chief=True if cluster is None else cluster.is_chief,
    )


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _normalise_device(device: str) -> str:
    value = (device or "auto").strip().lower()
    if value not in DEVICES:
        raise UsageError(f"unknown device {device!r}", hint=f"use --device {' | '.join(DEVICES)}")
    return value


def _normalise_precision(precision: str) -> str:
    value = _PRECISION_ALIASES.get((precision or "auto").strip().lower())
    if value is None:
        raise UsageError(f"unknown precision {precision!r}", hint=f"use --precision {' | '.join(PRECISIONS)}")
    return value


def _resolve_precision(precision: str, kind: str) -> str:
    if precision == "auto":
        return {"tpu": "bf16", "gpu": "fp16", "cpu": "fp32"}[kind]
    if precision == "fp16" and kind == "tpu":
        raise UsageError("fp16 is not supported on TPU", hint="use --precision bf16 (the TPU default)")
    if precision == "fp16" and kind == "cpu":
        from .. import console

        console.warn("fp16 on CPU is slow and gains nothing; --precision bf16 or fp32 is the better choice")
    return precision


def _seed_everything(seed: int | None, deterministic: bool) -> None:
    import tensorflow as tf

    if seed is not None:
        if not isinstance(seed, int) or seed < 0:
            raise UsageError(f"--seed must be a non-negative integer, got {seed!r}")
        import keras

        keras.utils.set_random_seed(seed)  # python random, numpy, tf (and keras' seed generator)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def _chief_seed(tf, strategy, seed: int) -> int:
    """The seed of global replica 0 (the chief's first device), on every worker.

    A run without ``--seed`` draws one per process; workers that drew different ones would
    shuffle the training data differently, and the per-worker shards of those different orders
    overlap (some examples twice, others never). One all-reduce in which only replica 0
    contributes its seed makes the cluster agree (a given ``--seed`` is the same everywhere
    anyway).
    """

    def contribution():
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return tf.where(tf.equal(replica, 0), tf.constant(seed, tf.int64), tf.constant(0, tf.int64))

    total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(contribution), axis=None)
    return int(total.numpy())


def _hide_gpus(tf) -> None:
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # devices already initialised: select_runtime falls back to OneDeviceStrategy
        pass


def _try_tpu(env: Mapping[str, str], *, required: bool):
    """``(TPUStrategy, cores_per_worker)`` or ``(None, 1)``; raises when ``required`` and absent."""
    import tensorflow as tf

    tpu = env.get("TPU_NAME") or env.get("COLAB_TPU_ADDR") or ""
    if env.get("COLAB_TPU_ADDR") and not env.get("TPU_NAME"):
        tpu = "grpc://" + env["COLAB_TPU_ADDR"]
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    except Exception as exc:  # noqa: BLE001 - any failure means "no usable TPU"
        if required:
            raise NotFoundError(
                f"--device tpu: no TPU could be resolved ({type(exc).__name__}: {exc})".splitlines()[0],
                hint="set TPU_NAME to your TPU's name or address, or run with --device auto",
            ) from None
        from .. import console

        console.warn(f"a TPU was hinted by the environment but could not be resolved; not using it ({exc})".splitlines()[0])
        return None, 1
    return strategy, int(strategy.num_replicas_in_sync)


def _is_distributed(strategy) -> bool:
    return type(strategy).__name__ != "_DefaultDistributionStrategy"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _banner(kind: str, replicas: int, workers: int, per_worker: int, name: str, precision: str, xla: bool) -> str:
    unit = kind.upper()
    if workers > 1:
        where = f"{_plural(workers, 'worker')} x {_plural(per_worker, unit)}"
    elif kind == "tpu":
        where = f"{replicas} TPU cores"
    else:
        where = _plural(max(replicas, 1), unit)
    parts = []
    if name not in ("default", "OneDeviceStrategy"):
        parts.append(name)
    parts.append(precision + (" + loss scaling" if precision == "fp16" else ""))
    parts.append("XLA on" if xla else "XLA off")
    return f"bert: training on {where} ({', '.join(parts)})"
