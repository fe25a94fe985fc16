"""The original BERT optimizer, schedule, clipping and loss scaling against hand-computed numbers.

Every expectation is recomputed here with NumPy from the formulas of original-behaviour.md §d.2
(no bias correction, eps 1e-6, decoupled decay added to the update, exclusions by name).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bert_cli.engine import optimization as opt  # noqa: E402
from bert_cli.engine.loss_scale import LossScaler  # noqa: E402

B1, B2, EPS, WD = 0.9, 0.999, 1e-6, 0.01


def numpy_adamw(theta, m, v, g, lr, decay: bool):
    """One step of the original AdamWeightDecayOptimizer, float64."""
    m = B1 * m + (1 - B1) * g
    v = B2 * v + (1 - B2) * g * g
    update = m / (np.sqrt(v) + EPS)
    if decay:
        update = update + WD * theta
    return theta - lr * update, m, v


def numpy_lamb(theta, m, v, g, lr, t: int, decay: bool, adapt: bool, bias_correction=True):
    m = B1 * m + (1 - B1) * g
    v = B2 * v + (1 - B2) * g * g
    m_hat, v_hat = (m / (1 - B1**t), v / (1 - B2**t)) if bias_correction else (m, v)
    update = m_hat / (np.sqrt(v_hat) + EPS)
    if decay:
        update = update + WD * theta
    ratio = 1.0
    if adapt:
        wn, un = np.linalg.norm(theta), np.linalg.norm(update)
        ratio = wn / un if wn > 0 and un > 0 else 1.0
    return theta - lr * ratio * update, m, v


NAMES = [
    "bert/encoder/layer_0/attention/self/query/kernel",  # decayed
    "bert/encoder/layer_0/attention/self/query/bias",  # excluded: bias
    "bert/encoder/layer_0/output/LayerNorm/gamma",  # excluded: LayerNorm
    "head/layer_norm/beta",  # excluded: layer_norm
    "cls/seq_relationship/output_weights",  # decayed
]


def make_vars(rng):
    shapes = [(3, 4), (4,), (4,), (4,), (2, 4)]
    return [rng.normal(size=s).astype(np.float32) for s in shapes]


def test_exclusions_follow_the_original_regex_list():
    assert opt.EXCLUDE_FROM_WEIGHT_DECAY == ("LayerNorm", "layer_norm", "bias")
    flags = [opt.excluded(n, opt.EXCLUDE_FROM_WEIGHT_DECAY) for n in NAMES]
    assert flags == [False, True, True, True, False]
    # re.search, not a full match or a suffix test
    assert opt.excluded("cls/predictions/output_bias", opt.EXCLUDE_FROM_WEIGHT_DECAY)


def test_adam_weight_decay_matches_hand_computed_steps_with_exclusions():
    rng = np.random.default_rng(0)
    init = make_vars(rng)
    variables = [tf.Variable(x) for x in init]
    optimizer = opt.AdamWeightDecay(list(zip(NAMES, variables)))
    assert optimizer.decays == [True, False, False, False, True]

    theta = [x.astype(np.float64) for x in init]
    m = [np.zeros_like(x) for x in theta]
    v = [np.zeros_like(x) for x in theta]
    for step, lr in enumerate([1e-2, 5e-3, 2e-3]):
        grads = [rng.normal(size=x.shape) for x in theta]
        optimizer.apply_gradients([tf.constant(g, tf.float32) for g in grads], lr)
        for i in range(len(theta)):
            theta[i], m[i], v[i] = numpy_adamw(theta[i], m[i], v[i], grads[i], lr, decay=optimizer.decays[i])
        for i, var in enumerate(variables):
            np.testing.assert_allclose(var.numpy(), theta[i], rtol=1e-5, atol=1e-6, err_msg=f"step {step} {NAMES[i]}")
    slots = optimizer.slot_variables()
    for i, name in enumerate(NAMES):
        np.testing.assert_allclose(slots[f"{name}/adam_m"].numpy(), m[i], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(slots[f"{name}/adam_v"].numpy(), v[i], rtol=1e-5, atol=1e-9)
        assert slots[f"{name}/adam_m"].dtype == tf.float32


def test_weight_decay_changes_decayed_variables_only():
    """Zero gradient: only weight decay moves theta, and only for non-excluded names."""
    values = [np.full((2, 2), 3.0, np.float32), np.full((2,), 3.0, np.float32)]
    variables = [tf.Variable(x) for x in values]
    optimizer = opt.AdamWeightDecay([("dense/kernel", variables[0]), ("dense/bias", variables[1])])
    optimizer.apply_gradients([tf.zeros((2, 2)), tf.zeros((2,))], 0.5)
    np.testing.assert_allclose(variables[0].numpy(), 3.0 - 0.5 * WD * 3.0, rtol=1e-6)
    np.testing.assert_allclose(variables[1].numpy(), 3.0)


def test_first_step_has_no_bias_correction_and_differs_from_keras_adamw():
    """Step 1: m=0.1g, v=0.001g^2 so |update| = 0.1/sqrt(0.001) ~= 3.162; Keras AdamW gives ~1."""
    import keras

    g = np.array([0.5, -2.0, 4.0], np.float32)
    ours = tf.Variable(np.zeros(3, np.float32))
    opt.AdamWeightDecay([("w/kernel", ours)]).apply_gradients([tf.constant(g)], 1.0)
    expected = -(0.1 * g) / (np.sqrt(0.001 * g * g) + EPS)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(np.abs(ours.numpy()), 0.1 / math.sqrt(0.001), rtol=1e-4)

    theirs = keras.Variable(np.zeros(3, np.float32))
    adamw = keras.optimizers.AdamW(learning_rate=1.0, weight_decay=WD, beta_1=B1, beta_2=B2, epsilon=EPS)
    adamw.apply_gradients([(tf.constant(g), theirs)])
    np.testing.assert_allclose(np.abs(np.asarray(theirs)), 1.0, rtol=1e-4)  # bias corrected
    assert np.max(np.abs(ours.numpy() - np.asarray(theirs))) > 2.0


def test_slots_can_be_restored_and_are_used():
    rng = np.random.default_rng(1)
    theta0 = rng.normal(size=(3,)).astype(np.float32)
    m0 = rng.normal(size=(3,)).astype(np.float32) * 0.1
    v0 = rng.random(3).astype(np.float32) * 0.01
    g = rng.normal(size=(3,)).astype(np.float32)
    var = tf.Variable(theta0)
    optimizer = opt.AdamWeightDecay([("x/kernel", var)])
    optimizer.slot_variables()["x/kernel/adam_m"].assign(m0)
    optimizer.slot_variables()["x/kernel/adam_v"].assign(v0)
    optimizer.apply_gradients([tf.constant(g)], 0.1)
    expected, _, _ = numpy_adamw(theta0.astype(np.float64), m0, v0, g, 0.1, decay=True)
    np.testing.assert_allclose(var.numpy(), expected, rtol=1e-5)
    optimizer.reset_slots()
    assert not np.any(optimizer.m[0].numpy()) and not np.any(optimizer.v[0].numpy())


def test_apply_false_leaves_everything_unchanged_and_none_grads_skip():
    a, b = tf.Variable([1.0, 2.0]), tf.Variable([3.0])
    optimizer = opt.AdamWeightDecay([("a/kernel", a), ("b/kernel", b)])
    optimizer.apply_gradients([tf.constant([np.inf, 1.0]), tf.constant([1.0])], 0.1, apply=tf.constant(False))
    np.testing.assert_array_equal(a.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(optimizer.m[0].numpy(), [0.0, 0.0])
    np.testing.assert_array_equal(optimizer.v[1].numpy(), [0.0])
    optimizer.apply_gradients([None, tf.constant([1.0])], 0.1)
    np.testing.assert_array_equal(a.numpy(), [1.0, 2.0])
    assert b.numpy()[0] < 3.0


def test_apply_gradients_inside_tf_function_matches_eager():
    rng = np.random.default_rng(2)
    x0 = rng.normal(size=(4, 3)).astype(np.float32)
    grads = [rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3)]
    eager_var, graph_var = tf.Variable(x0), tf.Variable(x0)
    eager = opt.AdamWeightDecay([("k/kernel", eager_var)])
    graph = opt.AdamWeightDecay([("k/kernel", graph_var)])

    @tf.function(jit_compile=True)
    def step(g, lr):
        graph.apply_gradients([g], lr)

    for g in grads:
        eager.apply_gradients([tf.constant(g)], 0.01)
        step(tf.constant(g), tf.constant(0.01))
    np.testing.assert_allclose(graph_var.numpy(), eager_var.numpy(), rtol=1e-6, atol=1e-7)


def test_named_variables_and_keras_variables():
    import keras

    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    pairs = opt.named_variables(layer.trainable_variables, ["d/kernel", "d/bias"])
    assert [n for n, _ in pairs] == ["d/kernel", "d/bias"]
    assert all(isinstance(v, tf.Variable) for _, v in pairs)
    optimizer = opt.AdamWeightDecay(pairs)
    optimizer.apply_gradients([tf.ones((3, 2)), tf.ones((2,))], 0.1)
    assert np.allclose(np.asarray(layer.bias), -0.1 * 0.1 / (math.sqrt(0.001) + EPS))
    with pytest.raises(ValueError, match="duplicate"):
        opt.named_variables(layer.trainable_variables, ["x", "x"])
    with pytest.raises(ValueError):
        opt.named_variables(layer.trainable_variables, ["x"])


# ------------------------------------------------------------------------------ schedule


def test_schedule_warmup_jump_and_ends():
    init, total, warm = 1e-4, 100, 10
    lr = [opt.learning_rate_py(s, init, total, warm) for s in range(0, 121)]
    assert lr[0] == 0.0
    assert lr[5] == pytest.approx(init * 5 / 10)
    assert lr[9] == pytest.approx(init * 0.9)
    # the jump: decay computed from step 0, so step W gives init*(1-W/T), not init
    assert lr[10] == pytest.approx(init * (1 - 10 / 100))
    assert lr[11] == pytest.approx(init * (1 - 11 / 100))
    assert lr[10] < init
    assert lr[100] == 0.0 and lr[120] == 0.0
    # the tf twin (float32) agrees everywhere, also at the discontinuity
    steps = tf.range(0, 121, dtype=tf.int64)
    tf_lr = opt.learning_rate(steps, init, total, warm).numpy()
    np.testing.assert_allclose(tf_lr, lr, rtol=1e-6, atol=1e-12)
    # jump with default 10% warmup: 0.9 * init
    T = 1000
    W = opt.num_warmup_steps_for(T, 0.1)
    assert W == 100
    assert opt.learning_rate_py(W - 1, 2e-5, T, W) == pytest.approx(2e-5 * 0.99)
    assert opt.learning_rate_py(W, 2e-5, T, W) == pytest.approx(2e-5 * 0.9)


def test_schedule_decay_matches_keras_polynomial_decay_after_warmup():
    import keras

    reference = keras.optimizers.schedules.PolynomialDecay(3e-5, 50, end_learning_rate=0.0, power=1.0)
    schedule = opt.LinearWarmupDecay(3e-5, 50, 5)
    for step in range(5, 60):
        assert float(schedule(tf.constant(step, tf.int64))) == pytest.approx(float(reference(step)), rel=1e-6, abs=1e-12)
        assert schedule.at(step) == pytest.approx(float(reference(step)), rel=1e-6, abs=1e-12)


def test_schedule_without_warmup_and_bad_arguments():
    assert opt.learning_rate_py(0, 1.0, 10, 0) == 1.0
    assert float(opt.learning_rate(0, 1.0, 10, 0)) == 1.0
    with pytest.raises(ValueError):
        opt.learning_rate_py(0, 1.0, 0, 0)
    with pytest.raises(ValueError):
        opt.LinearWarmupDecay(1.0, 10, -1)


# ------------------------------------------------------------------------------ clipping


def test_clip_by_global_norm_over_all_grads():
    a = np.array([3.0, 0.0], np.float32)
    b = np.array([[0.0, 4.0]], np.float32)  # global norm 5
    clipped, norm = opt.clip_by_global_norm([tf.constant(a), None, tf.constant(b)], 1.0)
    assert float(norm) == pytest.approx(5.0)
    assert clipped[1] is None
    np.testing.assert_allclose(clipped[0].numpy(), a / 5.0, rtol=1e-6)
    np.testing.assert_allclose(clipped[2].numpy(), b / 5.0, rtol=1e-6)
    total = math.sqrt(sum(float(np.sum(c.numpy() ** 2)) for c in clipped if c is not None))
    assert total == pytest.approx(1.0, rel=1e-6)
    small = [tf.constant([0.3, 0.4])]
    unchanged, norm = opt.clip_by_global_norm(small, 1.0)
    assert float(norm) == pytest.approx(0.5)
    np.testing.assert_allclose(unchanged[0].numpy(), [0.3, 0.4], rtol=1e-6)


# ------------------------------------------------------------------------------ LAMB


def test_lamb_trust_ratio_bias_correction_and_exclusions():
    rng = np.random.default_rng(3)
    init = make_vars(rng)
    init[3] = np.zeros(4, np.float32)  # zero weights: ratio 1 (also excluded)
    variables = [tf.Variable(x) for x in init]
    lamb = opt.Lamb(list(zip(NAMES, variables)))
    assert lamb.adapts == [True, False, False, False, True]
    assert "bert/encoder/layer_0/output/LayerNorm/gamma/lamb_m" in lamb.slot_variables()
    theta = [x.astype(np.float64) for x in init]
    m = [np.zeros_like(x) for x in theta]
    v = [np.zeros_like(x) for x in theta]
    for step in range(3):
        grads = [rng.normal(size=x.shape) for x in theta]
        lamb.apply_gradients([tf.constant(g, tf.float32) for g in grads], 0.01, step=step)
        for i in range(len(theta)):
            theta[i], m[i], v[i] = numpy_lamb(
                theta[i], m[i], v[i], grads[i], 0.01, step + 1, decay=lamb.decays[i], adapt=lamb.adapts[i]
            )
    for i, var in enumerate(variables):
        np.testing.assert_allclose(var.numpy(), theta[i], rtol=2e-5, atol=1e-6, err_msg=NAMES[i])


def test_lamb_step_size_is_lr_times_weight_norm():
    """With the trust ratio the update has norm lr*||theta|| whatever the gradient scale."""
    w0 = np.array([[3.0, 4.0]], np.float32)  # ||w|| = 5
    for scale in (1e-3, 1e3):
        w = tf.Variable(w0)
        opt.Lamb([("w/kernel", w)], weight_decay_rate=0.0).apply_gradients([tf.constant([[1.0, -2.0]]) * scale], 0.1)
        assert np.linalg.norm(w.numpy() - w0) == pytest.approx(0.1 * 5.0, rel=1e-4)


def test_lamb_without_bias_correction():
    w0 = np.array([1.0, -2.0, 0.5], np.float32)
    g = np.array([0.3, 0.1, -0.2])
    w = tf.Variable(w0)
    opt.Lamb([("w/kernel", w)], bias_correction=False).apply_gradients([tf.constant(g, tf.float32)], 0.05)
    expected, _, _ = numpy_lamb(w0.astype(np.float64), 0.0, 0.0, g, 0.05, 1, True, True, bias_correction=False)
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-5)


def test_create_optimizer():
    w = tf.Variable([1.0])
    assert isinstance(opt.create_optimizer("adamw", [("w", w)]), opt.AdamWeightDecay)
    assert isinstance(opt.create_optimizer("LAMB", [("w", w)]), opt.Lamb)
    with pytest.raises(ValueError, match="unknown optimizer"):
        opt.create_optimizer("sgd", [("w", w)])


# ------------------------------------------------------------------------------ loss scaling


def test_loss_scaler_grows_halves_and_floors():
    scaler = LossScaler(initial_scale=8.0, growth_interval=3, min_scale=2.0)
    assert float(scaler.scale_loss(tf.constant(1.5))) == 12.0
    np.testing.assert_allclose(scaler.unscale([tf.constant([16.0])])[0].numpy(), [2.0])
    assert bool(scaler.all_finite([tf.constant([1.0]), None]))
    assert not bool(scaler.all_finite([tf.constant([1.0, np.nan])]))
    history = []
    for finite in [True, True, True, True, False, False, False, True]:
        scaler.update(tf.constant(finite))
        history.append((float(scaler.scale.numpy()), int(scaler.good_steps.numpy())))
    assert history == [(8.0, 1), (8.0, 2), (16.0, 0), (16.0, 1), (8.0, 0), (4.0, 0), (2.0, 0), (2.0, 1)]
