"""select_runtime: device/strategy/precision/XLA choice, TF_CONFIG parsing, seeding, TPU probing.

The real two-worker MultiWorkerMirroredStrategy run is in test_engine_train_step.py.
"""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bert_cli import cluster  # noqa: E402
from bert_cli.engine import device as dev  # noqa: E402
from bert_cli.errors import EXIT_NOT_FOUND, EXIT_USAGE, NotFoundError, UsageError  # noqa: E402

HAS_GPU = bool(tf.config.list_physical_devices("GPU"))
no_gpu = pytest.mark.skipif(HAS_GPU, reason="this machine has a GPU")


@no_gpu
def test_auto_on_this_cpu_machine():
    runtime = dev.select_runtime(environ={})
    assert runtime.banner == "bert: training on 1 CPU (fp32, XLA off)"
    assert (runtime.device, runtime.precision, runtime.compute_dtype) == ("cpu", "fp32", "float32")
    assert runtime.num_replicas == 1 and runtime.num_workers == 1 and runtime.is_chief
    assert runtime.strategy is tf.distribute.get_strategy()
    assert runtime.strategy_name == "default"
    assert not runtime.loss_scaling and runtime.make_loss_scaler() is None
    assert runtime.keras_policy == "float32"
    assert runtime.describe("predicting") == "bert: predicting on 1 CPU (fp32, XLA off)"
    with pytest.raises(dataclasses_frozen_error()):
        runtime.xla = True  # type: ignore[misc]


def dataclasses_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


@no_gpu
def test_cpu_precisions_and_xla_flag():
    bf16 = dev.select_runtime("cpu", "bf16", xla=True, environ={})
    assert bf16.banner == "bert: training on 1 CPU (bf16, XLA on)"
    assert bf16.compute_dtype == "bfloat16" and bf16.keras_policy == "mixed_bfloat16" and not bf16.loss_scaling
    fp16 = dev.select_runtime("cpu", "float16", environ={})  # alias; allowed on CPU with a warning
    assert fp16.precision == "fp16" and fp16.loss_scaling
    assert fp16.banner == "bert: training on 1 CPU (fp16 + loss scaling, XLA off)"
    scaler = fp16.make_loss_scaler()
    assert float(scaler.scale.numpy()) == 2.0**15
    # the runtime's tf.function carries the XLA flag: the traced graph must be compiled (or not)
    assert bf16.xla is True and fp16.xla is False
    for runtime, on in ((bf16, True), (fp16, False)):
        fn = runtime.function(lambda x: x * 2.0)
        traced = fn.get_concrete_function(tf.constant(2.0))
        assert traced.function_def.attr["_XlaMustCompile"].b is on
        assert float(fn(tf.constant(2.0))) == 4.0
    # an explicit jit_compile still wins over the runtime's choice
    forced = fp16.function(lambda x: x + 1.0, jit_compile=True).get_concrete_function(tf.constant(1.0))
    assert forced.function_def.attr["_XlaMustCompile"].b is True


@no_gpu
def test_device_gpu_without_gpu_is_not_found_with_hint():
    with pytest.raises(NotFoundError) as info:
        dev.select_runtime("gpu", environ={})
    assert info.value.exit_code == EXIT_NOT_FOUND
    assert "--device cpu" in info.value.hint


@pytest.mark.parametrize("kwargs", [{"device": "npu"}, {"precision": "fp8"}, {"seed": -1}])
def test_bad_names_are_usage_errors(kwargs):
    with pytest.raises(UsageError) as info:
        dev.select_runtime(environ={}, **kwargs)
    assert info.value.exit_code == EXIT_USAGE


def test_precision_resolution_table():
    assert dev._resolve_precision("auto", "tpu") == "bf16"
    assert dev._resolve_precision("auto", "gpu") == "fp16"
    assert dev._resolve_precision("auto", "cpu") == "fp32"
    assert dev._resolve_precision("fp32", "gpu") == "fp32"
    with pytest.raises(UsageError, match="TPU"):
        dev._resolve_precision("fp16", "tpu")


def test_banner_formats():
    assert (
        dev._banner("gpu", 4, 1, 4, "MirroredStrategy", "fp16", True)
        == "bert: training on 4 GPUs (MirroredStrategy, fp16 + loss scaling, XLA on)"
    )
    assert (
        dev._banner("cpu", 2, 2, 1, "MultiWorkerMirroredStrategy", "fp32", False)
        == "bert: training on 2 workers x 1 CPU (MultiWorkerMirroredStrategy, fp32, XLA off)"
    )
    assert dev._banner("tpu", 8, 1, 8, "TPUStrategy", "bf16", True) == "bert: training on 8 TPU cores (TPUStrategy, bf16, XLA on)"


class _Resolver:
    calls: list = []

    def __init__(self, tpu=None):
        _Resolver.calls.append(tpu)
        raise ValueError("Please provide a TPU Name to connect to.")


@no_gpu
def test_tpu_is_only_probed_when_asked_or_hinted(monkeypatch):
    _Resolver.calls = []
    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", _Resolver)
    dev.select_runtime(environ={})
    dev.select_runtime("cpu", environ={"TPU_NAME": "my-tpu"})
    assert _Resolver.calls == []  # plain CPU machine: no probe at all
    runtime = dev.select_runtime(environ={"TPU_NAME": "my-tpu"})  # hinted, unresolvable: falls back
    assert _Resolver.calls == ["my-tpu"] and runtime.device == "cpu"
    dev.select_runtime(environ={"COLAB_TPU_ADDR": "10.0.0.2:8470"})
    assert _Resolver.calls[-1] == "grpc://10.0.0.2:8470"
    with pytest.raises(NotFoundError) as info:
        dev.select_runtime("tpu", environ={})
    assert "TPU_NAME" in info.value.hint


# ------------------------------------------------------------------------------ TF_CONFIG


def test_parse_tf_config():
    assert cluster.parse_tf_config(None) is None
    assert cluster.parse_tf_config("  ") is None
    two = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}
    info = cluster.parse_tf_config(json.dumps(two))
    assert (info.num_workers, info.task_type, info.task_index, info.is_chief) == (2, "worker", 1, False)
    with_chief = {"cluster": {"chief": ["h:1"], "worker": ["h:2", "h:3"]}, "task": {"type": "chief", "index": 0}}
    info = cluster.parse_tf_config(json.dumps(with_chief))
    assert info.num_workers == 3 and info.is_chief
    one = {"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 0}}
    assert cluster.parse_tf_config(json.dumps(one)).num_workers == 1


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2]",
        json.dumps({"cluster": {"worker": "h:1"}}),
        json.dumps({"cluster": {"worker": ["h:1"]}, "task": {"type": "ps", "index": 0}}),
        json.dumps({"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 3}}),
    ],
)
def test_bad_tf_config_is_a_usage_error(text):
    with pytest.raises(UsageError) as info:
        cluster.parse_tf_config(text)
    assert "TF_CONFIG" in str(info.value) and info.value.hint


@no_gpu
def test_single_worker_tf_config_keeps_the_default_strategy():
    one = json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}})
    runtime = dev.select_runtime(environ={"TF_CONFIG": one})
    assert runtime.num_workers == 1 and runtime.strategy is tf.distribute.get_strategy()


# ------------------------------------------------------------------------------ seeding


def _draws():
    return random.random(), float(np.random.rand()), float(tf.random.uniform(()))


def test_seed_makes_python_numpy_and_tf_reproducible():
    dev.select_runtime(seed=1234, environ={})
    first = _draws()
    dev.select_runtime(seed=1234, environ={})
    assert _draws() == first
    dev.select_runtime(seed=4321, environ={})
    assert _draws() != first


def test_distribute_is_identity_for_the_default_strategy():
    runtime = dev.select_runtime(environ={})
    if runtime.num_replicas > 1:
        pytest.skip("several devices: distribute() really splits")
    ds = tf.data.Dataset.range(4).batch(2)
    assert runtime.distribute(ds) is ds
    assert runtime.global_batch_size(32) == 32 * runtime.num_replicas


def test_tensorflow_stays_quiet_in_processes_started_by_one_that_imported_the_engine(repo_root):
    """The engine sets TF_CPP_MIN_LOG_LEVEL to import TensorFlow quietly; a child process (a shard
    worker, a `bert` run by a program or a test that imported the engine) inherits it and must not
    take it for the user's "show me the logs at this level" (it printed TensorFlow's start-up
    chatter before `error:` lines)."""
    import subprocess
    import sys

    code = ("import subprocess, sys\nimport bert_cli.engine\n"
            "child = subprocess.run([sys.executable, '-c', 'import bert_cli.engine'], capture_output=True, text=True)\n"
            "sys.stdout.write(child.stderr)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "BERT_QUIETED_TF", "BERT_VERBOSE")}
    env["PYTHONPATH"] = str(repo_root)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "", out.stdout[:500]
