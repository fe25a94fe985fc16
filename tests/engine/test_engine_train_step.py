"""TrainStep: exact gradient accumulation, clipping once per step, fp16/bf16, MirroredStrategy.

The distributed tests run in subprocesses: logical CPU devices and the multi-worker runtime
must be configured before TensorFlow initialises its devices.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, free_ports

tf = pytest.importorskip("tensorflow")

from bert_cli.engine.loss_scale import LossScaler  # noqa: E402
from bert_cli.engine.optimization import AdamWeightDecay, LinearWarmupDecay  # noqa: E402
from bert_cli.engine.train_step import TrainStep  # noqa: E402

# A toy two-layer model shared with the subprocess scripts (same code, same numbers).
TOY = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf

    def toy_data(seed=0, n=8, steps=3):
        rng = np.random.default_rng(seed)
        xs = rng.normal(size=(steps, n, 5)).astype(np.float32)
        ys = rng.integers(0, 3, size=(steps, n)).astype(np.int32)
        return xs, ys

    class Toy(tf.Module):
        \"\"\"Dense(5->8, tanh) -> LayerNorm-free Dense(8->3) softmax classifier; no dropout.\"\"\"

        def __init__(self, seed=1, dtype=tf.float32):
            rng = np.random.default_rng(seed)
            self.w1 = tf.Variable(rng.normal(size=(5, 8)).astype(np.float32) * 0.5)
            self.b1 = tf.Variable(rng.normal(size=(8,)).astype(np.float32) * 0.1)
            self.ln = tf.Variable(np.ones((8,), np.float32))  # name matched by LayerNorm: no decay
            self.w2 = tf.Variable(rng.normal(size=(8, 3)).astype(np.float32) * 0.5)
            self.b2 = tf.Variable(np.zeros((3,), np.float32))
            self.dtype_ = dtype

        def named(self):
            return [("l1/kernel", self.w1), ("l1/bias", self.b1), ("l1/LayerNorm/gamma", self.ln),
                    ("l2/kernel", self.w2), ("l2/bias", self.b2)]

        def loss(self, batch, training):
            x, y = batch
            c = lambda v: tf.cast(v, self.dtype_)
            h = tf.tanh(tf.matmul(c(x), c(self.w1)) + c(self.b1)) * c(self.ln)
            logits = tf.cast(tf.matmul(h, c(self.w2)) + c(self.b2), tf.float32)
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
    """
)
exec(TOY)  # defines toy_data, Toy  # noqa: S102


def run_steps(accum: int, micro: int, *, lr=0.05, steps=3, clip=1.0, dtype=tf.float32, jit=False, scaler=None):
    """Train a fresh toy for ``steps`` optimizer steps on the same data, ``accum`` micro-batches each."""
    xs, ys = toy_data(steps=steps)  # noqa: F821
    model = Toy(dtype=dtype)  # noqa: F821
    optimizer = AdamWeightDecay(model.named())
    step = TrainStep(
        model.loss, optimizer, LinearWarmupDecay(lr, 10, 1), clip_norm=clip,
        accumulation_steps=accum, loss_scaler=scaler, jit_compile=jit,
    )  # fmt: skip
    losses = []
    for s in range(steps):
        for k in range(accum):
            sl = slice(k * micro, (k + 1) * micro)
            losses.append(float(step((tf.constant(xs[s][sl]), tf.constant(ys[s][sl])))))
        step.norms = getattr(step, "norms", []) + [float(step.last["grad_norm"])]
    return model, optimizer, step, losses


def values(model):
    return [v.numpy() for _, v in model.named()]


def test_single_step_matches_manual_clip_and_adam_update():
    """One TrainStep call == tape -> clip_by_global_norm(1.0) -> original Adam update at lr(0)..."""
    xs, ys = toy_data(steps=2)  # noqa: F821
    model, optimizer, step, _ = run_steps(1, 8, steps=2, lr=0.05)
    ref = Toy()  # noqa: F821
    theta = [v.numpy().astype(np.float64) for _, v in ref.named()]
    m = [np.zeros_like(t) for t in theta]
    v = [np.zeros_like(t) for t in theta]
    schedule = LinearWarmupDecay(0.05, 10, 1)
    for s in range(2):
        for var, t in zip([x for _, x in ref.named()], theta):
            var.assign(t.astype(np.float32))
        with tf.GradientTape() as tape:
            loss = ref.loss((tf.constant(xs[s]), tf.constant(ys[s])), True)
        grads = [g.numpy().astype(np.float64) for g in tape.gradient(loss, [x for _, x in ref.named()])]
        norm = np.sqrt(sum(np.sum(g * g) for g in grads))
        grads = [g * min(1.0, 1.0 / norm) for g in grads]
        lr = schedule.at(s)
        for i, (name, _) in enumerate(ref.named()):
            m[i] = 0.9 * m[i] + 0.1 * grads[i]
            v[i] = 0.999 * v[i] + 0.001 * grads[i] ** 2
            upd = m[i] / (np.sqrt(v[i]) + 1e-6) + (0.0 if ("bias" in name or "LayerNorm" in name) else 0.01 * theta[i])
            theta[i] = theta[i] - lr * upd
    assert schedule.at(0) == 0.0  # step 0 has lr 0: only the moments move
    for got, want in zip(values(model), theta):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert int(step.global_step.numpy()) == 2
    assert float(step.last["learning_rate"]) == pytest.approx(schedule.at(1))


@pytest.mark.parametrize("clip", [1.0, 0.05])
def test_accumulation_equals_one_big_batch(clip):
    """K=4 micro-batches of 2 == one batch of 8, over 3 optimizer steps (clip active with 0.05)."""
    big, _, big_step, _ = run_steps(1, 8, clip=clip)
    acc, _, acc_step, losses = run_steps(4, 2, clip=clip)
    assert int(big_step.global_step.numpy()) == int(acc_step.global_step.numpy()) == 3
    # the accumulated gradient itself (Adam alone is blind to a gradient's scale): same norms
    np.testing.assert_allclose(acc_step.norms, big_step.norms, rtol=1e-5)
    assert acc_step.pending_micro_steps == 0
    for a, b in zip(values(acc), values(big)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    if clip == 0.05:
        assert float(acc_step.last["grad_norm"]) > 0.05  # clipping really happened
    # sanity: stepping after every micro-batch (no accumulation) gives something else
    eager, _, _, _ = run_steps(1, 2, steps=3, clip=clip)
    assert max(np.max(np.abs(a - b)) for a, b in zip(values(eager), values(big))) > 1e-3


def test_global_step_counts_optimizer_steps_and_micro_steps_leave_variables_alone():
    xs, ys = toy_data()  # noqa: F821
    model = Toy()  # noqa: F821
    step = TrainStep(model.loss, AdamWeightDecay(model.named()), LinearWarmupDecay(0.1, 10, 0), accumulation_steps=3)
    before = values(model)
    for k in range(2):
        step((tf.constant(xs[0][:2]), tf.constant(ys[0][:2])))
        assert step.pending_micro_steps == k + 1
        assert int(step.global_step.numpy()) == 0
    for a, b in zip(values(model), before):
        np.testing.assert_array_equal(a, b)
    step((tf.constant(xs[0][:2]), tf.constant(ys[0][:2])))
    assert int(step.global_step.numpy()) == 1 and step.pending_micro_steps == 0
    assert any(np.any(a != b) for a, b in zip(values(model), before))
    assert all(not np.any(acc.numpy()) for acc in step.accumulators)


def test_xla_step_matches_plain_step():
    plain, _, _, _ = run_steps(2, 4)
    xla, _, _, _ = run_steps(2, 4, jit=True)
    for a, b in zip(values(xla), values(plain)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_fp16_loss_scaling_skips_non_finite_step_then_recovers():
    w = tf.Variable([1.0, 2.0])
    optimizer = AdamWeightDecay([("w/kernel", w)])
    scaler = LossScaler(initial_scale=1024.0)

    def loss_fn(batch, training):
        return tf.reduce_sum(tf.cast(w, tf.float16) * tf.cast(batch, tf.float16))

    step = TrainStep(loss_fn, optimizer, LinearWarmupDecay(0.1, 10, 0), loss_scaler=scaler)
    step(tf.constant([np.inf, 1.0]))
    assert not bool(step.last["applied"])
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(optimizer.m[0].numpy(), [0.0, 0.0])
    assert int(step.global_step.numpy()) == 0
    assert float(scaler.scale.numpy()) == 512.0
    # a gradient that overflows fp16 only once scaled (512*300 > fp16 max 65504) is also caught
    step(tf.constant([300.0, 0.0]))
    assert not bool(step.last["applied"]) and float(scaler.scale.numpy()) == 256.0
    step(tf.constant([0.5, -0.25]))
    assert bool(step.last["applied"]) and int(step.global_step.numpy()) == 1
    # gradient [0.5, -0.25] unscaled exactly: first Adam step moves each weight by lr*3.162
    np.testing.assert_allclose(optimizer.m[0].numpy(), [0.05, -0.025], rtol=1e-3)
    np.testing.assert_allclose(w.numpy(), [1.0 - 0.1 * (3.16222 + 0.01), 2.0 + 0.1 * (3.16222 - 0.02)], rtol=1e-4)


def test_fp16_accumulation_discards_window_with_overflow():
    model = Toy(dtype=tf.float16)  # noqa: F821
    scaler = LossScaler(initial_scale=2.0**15)
    step = TrainStep(model.loss, AdamWeightDecay(model.named()), LinearWarmupDecay(0.1, 10, 0),
                     accumulation_steps=2, loss_scaler=scaler)  # fmt: skip
    xs, ys = toy_data()  # noqa: F821
    bad = xs[0][:4].copy()
    bad[0, 0] = np.inf
    before = values(model)
    step((tf.constant(bad), tf.constant(ys[0][:4])))
    step((tf.constant(xs[0][4:]), tf.constant(ys[0][4:])))
    assert not bool(step.last["applied"]) and int(step.global_step.numpy()) == 0
    for a, b in zip(values(model), before):
        np.testing.assert_array_equal(a, b)
    assert all(not np.any(acc.numpy()) for acc in step.accumulators)  # window cleared
    step((tf.constant(xs[1][:4]), tf.constant(ys[1][:4])))
    step((tf.constant(xs[1][4:]), tf.constant(ys[1][4:])))
    assert bool(step.last["applied"]) and int(step.global_step.numpy()) == 1


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16])
def test_low_precision_step_runs_on_cpu_and_keeps_float32_variables(dtype):
    scaler = LossScaler() if dtype == tf.float16 else None
    low, _, _, losses = run_steps(1, 8, dtype=dtype, scaler=scaler)
    full, _, _, full_losses = run_steps(1, 8)
    assert all(v.dtype == tf.float32 for _, v in low.named())
    assert all(np.isfinite(x) for x in losses)
    np.testing.assert_allclose(losses, full_losses, rtol=0.05)
    for a, b in zip(values(low), values(full)):
        np.testing.assert_allclose(a, b, atol=0.05)


def test_bad_accumulation_steps():
    model = Toy()  # noqa: F821
    with pytest.raises(ValueError):
        TrainStep(model.loss, AdamWeightDecay(model.named()), LinearWarmupDecay(0.1, 10), accumulation_steps=0)


# ------------------------------------------------------------------------------ distributed

DIST_SCRIPT = TOY + textwrap.dedent(
    """
    import json, sys
    from bert_cli.engine.loss_scale import LossScaler
    from bert_cli.engine.optimization import AdamWeightDecay, LinearWarmupDecay
    from bert_cli.engine.train_step import TrainStep

    def train(strategy, accum, micro_global, steps=3, scaler=False, jit=False, inf_first=False):
        xs, ys = toy_data(steps=steps)
        with strategy.scope():
            model = Toy()
            opt = AdamWeightDecay(model.named())
            ls = LossScaler(initial_scale=64.0) if scaler else None
            step = TrainStep(model.loss, opt, LinearWarmupDecay(0.05, 10, 1), clip_norm=1.0,
                             accumulation_steps=accum, loss_scaler=ls, strategy=strategy, jit_compile=jit)
        losses = []
        for s in range(steps):
            for k in range(accum):
                sl = slice(k * micro_global, (k + 1) * micro_global)
                x = xs[s][sl].copy()
                if inf_first and s == 0:
                    x[0, 0] = np.inf
                y = ys[s][sl]
                n = strategy.num_replicas_in_sync
                if n > 1:  # replica i gets rows [i*b/n, (i+1)*b/n) of the global batch
                    per = len(x) // n
                    batch = strategy.experimental_distribute_values_from_function(
                        lambda ctx: (tf.constant(x[ctx.replica_id_in_sync_group * per:][:per]),
                                     tf.constant(y[ctx.replica_id_in_sync_group * per:][:per])))
                else:
                    batch = (tf.constant(x), tf.constant(y))
                losses.append(float(step(batch)))
            losses.append(float(step.last["grad_norm"]))  # compared too: Adam is scale-blind
        out = {"values": [np.asarray(v.numpy()).tolist() for _, v in model.named()],
               "losses": losses, "global_step": int(step.global_step.numpy())}
        if strategy.num_replicas_in_sync > 1 and hasattr(model.w1, "values"):
            out["replicas_equal"] = all(
                np.array_equal(c.numpy(), v.values[0].numpy()) for _, v in model.named() for c in v.values)
        if ls is not None:
            out["scale"] = float(ls.scale.numpy())
        return out

    def train_keras(strategy, policy=None):
        # Keras 3 layers (what the BERT model is made of), K=2 micro-batches of 4.
        import keras
        from bert_cli.engine.optimization import named_variables
        xs, ys = toy_data(steps=2)
        with strategy.scope():
            model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="tanh", dtype=policy),
                                      keras.layers.LayerNormalization(epsilon=1e-12, dtype=policy),
                                      keras.layers.Dense(3, dtype=policy)])
            model.set_weights([np.random.default_rng(i).normal(size=w.shape).astype(np.float32) * 0.3
                               for i, w in enumerate(model.get_weights())])
            names = ["d1/kernel", "d1/bias", "ln/LayerNorm/gamma", "ln/LayerNorm/beta", "d2/kernel", "d2/bias"]
            def loss_fn(batch, training):
                logits = tf.cast(model(batch[0], training=training), tf.float32)
                return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(batch[1], logits))
            step = TrainStep(loss_fn, AdamWeightDecay(named_variables(model.trainable_variables, names)),
                             LinearWarmupDecay(0.05, 10, 1), accumulation_steps=2, strategy=strategy)
        n = strategy.num_replicas_in_sync
        norms = []
        for s in range(2):
            for k in range(2):
                x, y = xs[s][k * 4:(k + 1) * 4], ys[s][k * 4:(k + 1) * 4]
                if n > 1:
                    per = 4 // n
                    batch = strategy.experimental_distribute_values_from_function(
                        lambda ctx: (tf.constant(x[ctx.replica_id_in_sync_group * per:][:per]),
                                     tf.constant(y[ctx.replica_id_in_sync_group * per:][:per])))
                else:
                    batch = (tf.constant(x), tf.constant(y))
                step(batch)
            norms.append(float(step.last["grad_norm"]))
        return {"values": [np.asarray(v).tolist() for v in model.trainable_variables], "losses": norms,
                "global_step": int(step.global_step.numpy())}
    """
)

MIRRORED_MAIN = textwrap.dedent(
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    default = tf.distribute.get_strategy()
    result = {
        "single": train(default, 1, 8),
        "mirrored": train(mirrored, 1, 8),
        "mirrored_acc": train(mirrored, 2, 4, jit=True),
        "single_fp16": train(default, 1, 8, scaler=True, inf_first=True),
        "mirrored_fp16": train(mirrored, 1, 8, scaler=True, inf_first=True),
        "single_keras": train_keras(default),
        "mirrored_keras": train_keras(mirrored),
        "single_keras_bf16": train_keras(default, "mixed_bfloat16"),
        "mirrored_keras_bf16": train_keras(mirrored, "mixed_bfloat16"),
    }
    print("RESULT " + json.dumps(result))
    """
)


def _run_script(tmp_path: Path, name: str, code: str, env: dict | None = None, timeout: int = 240):
    script = tmp_path / name
    script.write_text(code)
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, str(script)], cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _result(proc, timeout: int = 240) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-4000:]
    line = [x for x in out.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def _assert_same(a: dict, b: dict, rtol=1e-5, atol=1e-6):
    assert a["global_step"] == b["global_step"]
    np.testing.assert_allclose(a["losses"], b["losses"], rtol=rtol, atol=atol)
    for x, y in zip(a["values"], b["values"]):
        np.testing.assert_allclose(np.array(x), np.array(y), rtol=rtol, atol=atol)


def test_mirrored_strategy_on_two_cpus_matches_single_device(tmp_path):
    result = _result(_run_script(tmp_path, "mirrored.py", DIST_SCRIPT + MIRRORED_MAIN))
    _assert_same(result["mirrored"], result["single"])
    # 2 replicas x 2 micro-batches x 2 examples == one device, one batch of 8 (values and grad norms)
    assert result["mirrored_acc"]["global_step"] == 3
    for x, y in zip(result["mirrored_acc"]["values"], result["single"]["values"]):
        np.testing.assert_allclose(np.array(x), np.array(y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result["mirrored_acc"]["losses"][2::3], result["single"]["losses"][1::2], rtol=1e-5)
    assert result["mirrored"]["replicas_equal"] and result["mirrored_acc"]["replicas_equal"]
    # fp16 loss scaler under the strategy: the inf step is skipped and the scale halved on all replicas
    assert result["mirrored_fp16"]["global_step"] == result["single_fp16"]["global_step"] == 2
    assert result["mirrored_fp16"]["scale"] == result["single_fp16"]["scale"] == 32.0
    _assert_same(result["mirrored_fp16"], result["single_fp16"])
    assert result["mirrored_fp16"]["replicas_equal"]
    # Keras 3 layers (their variables unwrapped by named_variables) under the strategy, and bf16
    _assert_same(result["mirrored_keras"], result["single_keras"])
    assert result["single_keras"]["global_step"] == 2
    # bf16 on two replicas against bf16 on one device: the same math except where a sum over the
    # batch is rounded. A kernel's/bias's gradient x^T dy comes out of a bf16 matmul: each replica
    # rounds its 2-row sum, one device its 4-row sum, u = 2**-8 each (bf16 keeps 8 significant
    # bits), then the fp32 all-reduce adds the halves. So the global grad norm agrees to 2u =
    # 2**-7 relative (measured 2.6e-4). The weights moved once (lr 0 at step 0, 0.045 at step 1)
    # by lr * m / sqrt(v) <= 0.045 * 0.19 / sqrt(0.002) = 0.19; Adam's ratio is scale-free, so a
    # gradient change of a few u moves it by a few u of itself: 2**-5 * 0.19 = 6e-3 (4 ulps;
    # measured 2.8e-3). bf16 against fp32 misses that bound (1.3e-2), and so would any replica
    # applying its own half-batch gradient (~lr).
    bf16_two, bf16_one = result["mirrored_keras_bf16"], result["single_keras_bf16"]
    assert bf16_two["global_step"] == bf16_one["global_step"] == 2
    np.testing.assert_allclose(bf16_two["losses"], bf16_one["losses"], rtol=2.0**-7, atol=0)
    for x, y in zip(bf16_two["values"], bf16_one["values"]):
        np.testing.assert_allclose(np.array(x), np.array(y), rtol=0, atol=2.0**-5 * 0.19)
    assert max(np.abs(np.array(x) - np.array(y)).max()
               for x, y in zip(bf16_one["values"], result["single_keras"]["values"])) > 2.0**-5 * 0.19


def test_multi_worker_mirrored_two_processes_match_single_process(tmp_path):
    """Two workers on 127.0.0.1 via TF_CONFIG: select_runtime picks MultiWorkerMirroredStrategy,
    each worker feeds half of every global batch, and both end with the single-process weights."""
    ports = free_ports(2)
    workers = [f"127.0.0.1:{p}" for p in ports]
    code = DIST_SCRIPT + textwrap.dedent(
        """
        import os
        from bert_cli.engine.device import select_runtime
        runtime = select_runtime("cpu", "fp32", xla=False)
        strategy = runtime.strategy
        index = json.loads(os.environ["TF_CONFIG"])["task"]["index"] if "TF_CONFIG" in os.environ else 0
        xs, ys = toy_data(steps=3)
        accum = 2
        with strategy.scope():
            model = Toy()
            step = TrainStep(model.loss, AdamWeightDecay(model.named()), LinearWarmupDecay(0.05, 10, 1),
                             accumulation_steps=accum, strategy=strategy)
        n = runtime.num_replicas
        norms = []
        for s in range(3):
            for k in range(accum):
                x, y = xs[s][k * 4:(k + 1) * 4], ys[s][k * 4:(k + 1) * 4]
                per = 4 // n
                mine = (x[index * per:(index + 1) * per], y[index * per:(index + 1) * per])
                if n > 1:
                    batch = strategy.experimental_distribute_values_from_function(
                        lambda ctx: (tf.constant(mine[0]), tf.constant(mine[1])))
                else:
                    batch = (tf.constant(mine[0]), tf.constant(mine[1]))
                step(batch)
            norms.append(float(step.last["grad_norm"]))
        print("RESULT " + json.dumps({
            "values": [v.numpy().tolist() for _, v in model.named()],
            "global_step": int(step.global_step.numpy()), "banner": runtime.banner,
            "is_chief": runtime.is_chief, "losses": norms}))
        """
    )
    procs = []
    for i in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
        procs.append(_run_script(tmp_path, f"worker{i}.py", code, env={"TF_CONFIG": tf_config}))
    try:
        results = [_result(p, timeout=150) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    model, _, step, _ = run_steps(2, 4)  # the same run in this process, one device
    single = {"values": [v.tolist() for v in values(model)], "global_step": int(step.global_step.numpy()), "losses": step.norms}
    for r in results:
        assert r["banner"] == "bert: training on 2 workers x 1 CPU (MultiWorkerMirroredStrategy, fp32, XLA off)"
        _assert_same(r, single)
    assert [r["is_chief"] for r in results] == [True, False]
