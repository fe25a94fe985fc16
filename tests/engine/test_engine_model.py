"""The encoder and heads: the original modeling.py numerics, checked against numpy formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bert_cli.engine import heads as H  # noqa: E402
from bert_cli.engine.checkpoint import tf1_names  # noqa: E402
from bert_cli.engine.export import export_saved_model  # noqa: E402
from bert_cli.engine.model import (  # noqa: E402
    BertModel,
    LayerNorm,
    check_inputs,
    gelu_erf,
    gelu_tanh,
    inference_function,
)
from bert_cli.errors import ConfigError, InputError, UsageError  # noqa: E402
from bert_cli.modelconfig import BertConfig  # noqa: E402

TINY = BertConfig(
    vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=24,
    max_position_embeddings=20, type_vocab_size=2,
)


@pytest.fixture(scope="module")
def model():
    return BertModel(TINY, seed=7)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(1)
    ids = rng.integers(1, TINY.vocab_size, (3, 12)).astype(np.int32)
    seg = np.zeros_like(ids)
    seg[:, 6:] = 1
    mask = np.ones_like(ids)
    mask[1, 8:] = 0
    mask[2, 4:] = 0
    return ids, mask, seg


def test_gelu_forms():
    x = np.linspace(-6, 6, 101).astype(np.float32)
    tanh_form = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    erf_form = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(gelu_tanh(tf.constant(x)).numpy(), tanh_form, atol=1e-6)
    np.testing.assert_allclose(gelu_erf(tf.constant(x)).numpy(), erf_form, atol=1e-6)
    assert np.abs(tanh_form - erf_form).max() > 1e-4  # the two meanings of "gelu" differ


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_gelu_gradients_are_the_derivative(dtype):
    """The hand-written gradients equal autodiff of the plain formulas, and a central
    finite difference in float64."""
    x = tf.constant(np.linspace(-7, 7, 281), dtype)
    atol = 5e-6 if dtype == tf.float32 else 1e-12  # float32: 1 - tanh^2 near |x| = 7 rounds

    def tanh_formula(v):
        return 0.5 * v * (1 + tf.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * tf.pow(v, 3))))

    def erf_formula(v):
        return 0.5 * v * (1 + tf.math.erf(v / math.sqrt(2)))

    for fn, formula in ((gelu_tanh, tanh_formula), (gelu_erf, erf_formula)):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            ours, reference = fn(x), formula(x)
        np.testing.assert_allclose(tape.gradient(ours, x).numpy(), tape.gradient(reference, x).numpy(), atol=atol)
        np.testing.assert_allclose(
            tape.gradient(ours, x, output_gradients=tf.cos(x)).numpy(),  # a non-constant upstream gradient
            (tape.gradient(reference, x) * tf.cos(x)).numpy(),
            atol=atol,
        )
        if dtype == tf.float64:
            h = 1e-6
            numeric = (formula(x + h) - formula(x - h)) / (2 * h)
            np.testing.assert_allclose(tape.gradient(ours, x).numpy(), numeric.numpy(), atol=1e-8)


def test_layer_norm_epsilon_is_1e_12():
    ln = LayerNorm("t/LayerNorm", 4, 1e-12)
    x = np.array([[1.0, 1.0 + 1e-3, 1.0 - 1e-3, 1.0]], np.float32)  # variance 5e-7: eps 1e-3 would swamp it
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-12)
    np.testing.assert_allclose(ln(tf.constant(x)).numpy(), expected, rtol=2e-3)


def test_variables_carry_tf1_names_and_init(model):
    names = tf1_names(model)
    assert len(names) == 5 + 16 * TINY.num_hidden_layers + 2
    assert {v.name[:-2] for v in model.trainable_variables} == set(names)
    assert all(v.dtype == tf.float32 for v in model.trainable_variables)
    for name, var in names.items():
        value = var.numpy()
        if name.endswith("/bias") or name.endswith("/beta"):
            assert not value.any(), name
        elif name.endswith("/gamma"):
            assert (value == 1).all(), name
        else:  # truncated normal, cut at 2 stddev
            assert np.abs(value).max() <= 2 * TINY.initializer_range + 1e-7, name
    big = np.concatenate([names[n].numpy().ravel() for n in names if n.endswith(("kernel", "_embeddings"))])
    assert 0.85 * 0.02 < big.std() < 0.91 * 0.02  # std of N(0, s) truncated at 2s is 0.88 s


def test_seed_reproducible():
    a = BertModel(TINY, seed=3).word_embeddings.numpy()
    b = BertModel(TINY, seed=3).word_embeddings.numpy()
    c = BertModel(TINY, seed=4).word_embeddings.numpy()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not BertModel(TINY, random_init=False).word_embeddings.numpy().any()


def test_outputs_and_shapes(model, batch):
    ids, mask, seg = batch
    out = model(ids, mask, seg)
    assert out.sequence_output.shape == (3, 12, 16) and out.pooled_output.shape == (3, 16)
    assert len(out.all_encoder_layers) == 2 and out.embedding_output.shape == (3, 12, 16)
    np.testing.assert_array_equal(out.sequence_output.numpy(), out.all_encoder_layers[-1].numpy())
    # pooler = tanh(dense(first token)), computed here with numpy
    first = out.sequence_output.numpy()[:, 0]
    pooled = np.tanh(first @ model.pooler.kernel.numpy() + model.pooler.bias.numpy())
    np.testing.assert_allclose(out.pooled_output.numpy(), pooled, atol=1e-6)
    # post-LN: every layer output has mean 0 / var 1 per token (gamma 1, beta 0 at init)
    x = out.all_encoder_layers[0].numpy()
    np.testing.assert_allclose(x.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(x.var(-1), 1, atol=1e-3)


def test_embeddings_match_numpy(model, batch):
    ids, mask, seg = batch
    emb = model.embeddings
    s = ids.shape[1]
    x = emb.word_embeddings.numpy()[ids] + emb.token_type_embeddings.numpy()[seg] + emb.position_embeddings.numpy()[:s]
    x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12)
    np.testing.assert_allclose(model(ids, mask, seg).embedding_output.numpy(), x, atol=1e-5)


def test_padding_is_masked_on_keys_only(model, batch):
    ids, mask, seg = batch
    base = model(ids, mask, seg).sequence_output.numpy()
    changed = ids.copy()
    changed[2, 4:] = 7  # change only padded tokens of example 2
    again = model(changed, mask, seg).sequence_output.numpy()
    np.testing.assert_allclose(again[2, :4], base[2, :4], atol=1e-6)  # real tokens don't see padding
    assert np.abs(again[2, 4:] - base[2, 4:]).max() > 1e-3  # padded queries are still computed
    no_mask = model(ids, None, seg).sequence_output.numpy()  # default mask = all ones
    np.testing.assert_array_equal(no_mask[0], base[0])
    assert np.abs(no_mask[2] - base[2]).max() > 1e-3


def test_dropout_only_when_training(model, batch):
    ids, mask, seg = batch
    a = model(ids, mask, seg).sequence_output.numpy()
    b = model(ids, mask, seg, training=False).sequence_output.numpy()
    np.testing.assert_array_equal(a, b)
    c = model(ids, mask, seg, training=True).sequence_output.numpy()
    assert np.abs(c - a).max() > 1e-3
    no_dropout = BertModel(TINY.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0), seed=7)
    np.testing.assert_allclose(no_dropout(ids, mask, seg, training=True).sequence_output.numpy(), a, atol=1e-6)


def test_inference_function_matches_eager(model, batch):
    ids, mask, seg = batch
    eager = model(ids, mask, seg)
    for jit in (True, False):
        forward = inference_function(model, jit_compile=jit, all_layers=True)
        out = forward(tf.constant(ids), tf.constant(mask), tf.constant(seg))
        np.testing.assert_allclose(out["sequence_output"].numpy(), eager.sequence_output.numpy(), atol=1e-5)
        np.testing.assert_allclose(out["pooled_output"].numpy(), eager.pooled_output.numpy(), atol=1e-5)
        assert out["all_encoder_layers"].shape == (2, 3, 12, 16)
        # other shapes reuse the same trace (fixed signature)
        forward(tf.constant(ids[:1, :5]), tf.constant(mask[:1, :5]), tf.constant(seg[:1, :5]))
        assert forward.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_mixed_precision_close_to_float32(model, batch, dtype):
    ids, mask, seg = batch
    low = BertModel(TINY, seed=7, compute_dtype=dtype)
    assert all(v.dtype == tf.float32 for v in low.trainable_variables)
    ref = model(ids, mask, seg)
    out = low(ids, mask, seg)
    assert out.sequence_output.dtype == tf.float32
    want = ref.sequence_output.numpy()
    diff = np.abs(out.sequence_output.numpy() - want).max()
    # The error budget: the residual stream is re-normalised (LayerNorm, values O(1)) after the
    # embeddings and after each of the 2 sublayers of every layer: 2L + 1 = 5 points where it is
    # rounded to the low dtype, each off by at most half an ulp (u = eps / 2) of the largest
    # value, and LayerNorm passes earlier errors on with gain ~1. So max|diff| <= (2L + 1) u
    # max|ref|: fp16 (eps 2**-10 = 9.8e-4) 7.1e-3, bf16 (eps 2**-7) 5.6e-2 for max|ref| ~ 2.9
    # (measured: 2.7e-3 and 1.3e-2). The final rounding alone leaves more than u max|ref| / 10
    # somewhere among the 576 outputs: a "low precision" model that really ran in fp32 fails.
    eps = float(np.finfo(np.float16).eps) if dtype == "float16" else 2.0**-7
    u_max = (eps / 2) * np.abs(want).max()
    assert 0.1 * u_max < diff < (2 * TINY.num_hidden_layers + 1) * u_max, (diff, u_max)


def test_input_checks(model):
    ok = np.array([[1, 2, 3]])
    check_inputs(TINY, ok, np.zeros_like(ok), np.ones_like(ok))
    with pytest.raises(InputError, match=r"input_ids contains 50.*vocab_size=50") as info:
        check_inputs(TINY, np.array([[1, 50]]), source="train.tf_record")
    assert "train.tf_record" in str(info.value) and info.value.hint
    with pytest.raises(InputError, match="contains -1"):
        check_inputs(TINY, np.array([[1, -1]]))
    with pytest.raises(InputError, match=r"segment_ids contains 2.*type_vocab_size"):
        check_inputs(TINY, ok, np.array([[0, 1, 2]]))
    with pytest.raises(InputError, match="input_mask"):
        check_inputs(TINY, ok, None, np.array([[1, 2, 0]]))
    with pytest.raises(InputError, match="shape"):
        check_inputs(TINY, ok, np.zeros((1, 4), int))
    with pytest.raises(ConfigError, match="sequence length 21") as info:
        check_inputs(TINY, np.ones((1, 21), int))
    assert "--max-seq-length 20" in info.value.hint
    # the model itself refuses a sequence longer than its position table, before computing
    with pytest.raises(ConfigError, match="max_position_embeddings=20"):
        model(np.ones((1, 21), np.int32))
    with pytest.raises(InputError):
        model(np.ones((21,), np.int32))


def test_bad_compute_dtype():
    with pytest.raises(ConfigError):
        BertModel(TINY, compute_dtype="int32")


# ----------------------------------------------------------------------------- heads


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_pretraining_heads_numpy(model, batch):
    ids, mask, seg = batch
    heads = H.PretrainingHeads(TINY, model.word_embeddings, seed=1)
    heads.output_bias.assign(tf.random.normal([TINY.vocab_size]))
    out = model(ids, mask, seg)
    positions = np.array([[1, 3, 0], [2, 2, 5], [0, 1, 2]])
    logits = heads.mlm_logits(out.sequence_output, positions).numpy()
    assert logits.shape == (3, 3, TINY.vocab_size)
    seq = out.sequence_output.numpy()
    picked = np.take_along_axis(seq, positions[..., None], axis=1)  # [B, P, H]
    t = picked @ heads.transform.kernel.numpy() + heads.transform.bias.numpy()
    t = 0.5 * t * (1 + np.tanh(math.sqrt(2 / math.pi) * (t + 0.044715 * t**3)))
    t = (t - t.mean(-1, keepdims=True)) / np.sqrt(t.var(-1, keepdims=True) + 1e-12)
    expected = t @ model.word_embeddings.numpy().T + heads.output_bias.numpy()  # tied output weights
    np.testing.assert_allclose(logits, expected, atol=1e-5)

    labels = np.array([[4, 5, 0], [6, 7, 8], [1, 0, 0]])
    weights = np.array([[1, 1, 0], [1, 1, 1], [1, 0, 0]], np.float32)
    nll = -np.take_along_axis(_log_softmax(expected), labels[..., None], -1)[..., 0]
    want = (weights * nll).sum() / (weights.sum() + 1e-5)
    assert H.mlm_loss(logits, labels, weights).numpy() == pytest.approx(want, rel=1e-5)

    nsp = heads.nsp_logits(out.pooled_output).numpy()
    np.testing.assert_allclose(nsp, out.pooled_output.numpy() @ heads.nsp_weights.numpy().T, atol=1e-6)
    y = np.array([0, 1, 0])
    want = -_log_softmax(nsp)[np.arange(3), y].mean()
    assert H.nsp_loss(nsp, y).numpy() == pytest.approx(want, rel=1e-5)
    # the tied table is not a variable of the heads (no double counting for optimizers)
    assert all(v is not model.word_embeddings for v in heads.trainable_variables)
    assert len(heads.trainable_variables) == 7


def test_classifier_and_squad_heads(model, batch):
    ids, mask, seg = batch
    out = model(ids, mask, seg)
    clf = H.ClassifierHead(TINY.hidden_size, 3, seed=0)
    assert [v.name[:-2] for v in clf.trainable_variables] == ["output_bias", "output_weights"]
    logits = clf(out.pooled_output).numpy()
    np.testing.assert_allclose(logits, out.pooled_output.numpy() @ clf.output_weights.numpy().T, atol=1e-6)
    assert np.abs(clf(out.pooled_output, training=True).numpy() - logits).max() > 0  # dropout 0.1
    y = np.array([2, 0, 1])
    assert H.classifier_loss(logits, y).numpy() == pytest.approx(-_log_softmax(logits)[np.arange(3), y].mean(), rel=1e-5)

    squad = H.SquadHead(TINY.hidden_size, seed=0)
    squad.output_bias.assign([0.5, -0.25])
    start, end = squad(out.sequence_output)
    seq = out.sequence_output.numpy()
    np.testing.assert_allclose(start.numpy(), seq @ squad.output_weights.numpy()[0] + 0.5, atol=1e-5)
    np.testing.assert_allclose(end.numpy(), seq @ squad.output_weights.numpy()[1] - 0.25, atol=1e-5)
    sp, ep = np.array([1, 2, 0]), np.array([3, 2, 1])
    ce_s = -_log_softmax(start.numpy())[np.arange(3), sp].mean()
    ce_e = -_log_softmax(end.numpy())[np.arange(3), ep].mean()
    assert H.squad_loss(start, end, sp, ep).numpy() == pytest.approx((ce_s + ce_e) / 2, rel=1e-5)


def test_gather_indexes():
    seq = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    pos = np.array([[3, 0], [1, 1]])
    np.testing.assert_array_equal(H.gather_indexes(tf.constant(seq), pos).numpy(), seq[np.arange(2)[:, None], pos])


# ----------------------------------------------------------------------------- export


def test_export_saved_model(model, batch, tmp_path):
    ids, mask, seg = batch
    path = export_saved_model(model, tmp_path / "export")
    assert (path / "saved_model.pb").is_file() and (path / "bert_config.json").is_file()
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    got = serve(input_ids=tf.constant(ids), input_mask=tf.constant(mask), segment_ids=tf.constant(seg))
    assert set(got) == {"pooled_output", "sequence_output"}
    ref = model(ids, mask, seg)
    np.testing.assert_allclose(got["sequence_output"].numpy(), ref.sequence_output.numpy(), atol=1e-6)
    np.testing.assert_allclose(got["pooled_output"].numpy(), ref.pooled_output.numpy(), atol=1e-6)
    with pytest.raises(UsageError):
        export_saved_model(model, path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left behind
