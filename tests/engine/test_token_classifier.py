"""The NER engine's training input and loss (bert_cli.engine.token_classifier)."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bert_cli.engine import token_classifier as tc  # noqa: E402


def _arrays(n: int, seq: int = 8) -> dict[str, np.ndarray]:
    ids = np.zeros([n, seq], np.int32)
    ids[:, 0] = np.arange(n)  # the window's index, to follow it through the pipeline
    return {"input_ids": ids, "input_mask": np.ones([n, seq], np.int32), "segment_ids": np.zeros([n, seq], np.int32),
            "labels": np.zeros([n, seq], np.int32)}


def _order(ds, batches: int) -> list[int]:
    return [int(i) for b in ds.take(batches) for i in b["input_ids"][:, 0].numpy()]


def test_training_order_is_a_permutation_of_the_whole_set_each_epoch():
    # CoNLL files are in document order: a 100-window buffer (the classifier's) would feed one
    # document at a time. The whole set is the buffer, so window 0's batch reaches far ahead.
    n, batch = 1000, 20
    order = _order(tc.train_dataset(_arrays(n), batch, seed=3), 2 * n // batch)
    first, second = order[:n], order[n:]
    assert sorted(first) == list(range(n)) and sorted(second) == list(range(n))
    assert first != second  # reshuffled every epoch
    assert max(first[:batch]) > 500  # shuffle(100) keeps the first batch among the first 120 windows
    assert np.mean(first[:100]) == pytest.approx((n - 1) / 2, abs=120)


def test_training_order_is_seeded_and_resume_skips_exactly():
    arrays = _arrays(300)
    full = _order(tc.train_dataset(arrays, 16, seed=7), 30)
    assert full == _order(tc.train_dataset(arrays, 16, seed=7), 30)
    assert full != _order(tc.train_dataset(arrays, 16, seed=8), 30)
    assert _order(tc.train_dataset(arrays, 16, seed=7, skip_batches=11), 19) == full[11 * 16:]


def test_loss_averages_over_labelled_positions_only():
    logits = tf.constant(np.random.default_rng(0).normal(size=[2, 4, 3]), tf.float32)
    labels = tf.constant([[-100, 2, 0, -100], [1, -100, -100, -100]], tf.int32)
    log_probs = tf.nn.log_softmax(logits).numpy()
    expected = -(log_probs[0, 1, 2] + log_probs[0, 2, 0] + log_probs[1, 0, 1]) / 3
    assert float(tc.TokenClassifierModel.loss(logits, labels)) == pytest.approx(expected, rel=1e-6)
    assert float(tc.TokenClassifierModel.loss(logits, tf.fill([2, 4], -100))) == 0.0
