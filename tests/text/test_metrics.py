"""Metrics against hand-worked values and independent numpy formulations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from bert_cli.text import metrics as M


# ----------------------------------------------------------------------------- independent references
def _ref_rank(x: list[float]) -> list[float]:
    """Average ranks by counting (no sorting): rank = #smaller + (#equal + 1) / 2."""
    return [sum(v < xi for v in x) + (sum(v == xi for v in x) + 1) / 2 for xi in x]


def _ref_mcc_gorodkin(t: list[int], p: list[int]) -> float:
    """Gorodkin's K-category correlation written with the explicit triple sums."""
    k = max(max(t), max(p)) + 1
    c = np.zeros((k, k))
    for a, b in zip(t, p):
        c[a, b] += 1
    num = sum(c[i, i] * c[j, m] - c[i, j] * c[m, i] for i, j, m in itertools.product(range(k), repeat=3))
    den1 = sum(c[i, :].sum() * sum(c[j, :].sum() for j in range(k) if j != i) for i in range(k))
    den2 = sum(c[:, i].sum() * sum(c[:, j].sum() for j in range(k) if j != i) for i in range(k))
    return 0.0 if den1 * den2 == 0 else num / math.sqrt(den1 * den2)


# ----------------------------------------------------------------------------- accuracy / F1 / MCC
def test_accuracy_hand_value():
    assert M.accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
    assert M.accuracy(["a", "b"], ["a", "b"]) == 1.0
    assert M.accuracy(np.array([0, 1, 2]), np.array([0, 1, 1])) == pytest.approx(2 / 3)


def test_f1_hand_value():
    # tp=2 (idx 0, 4), fp=1 (idx 3), fn=1 (idx 1): F1 = 4 / 6
    assert M.f1_score([1, 1, 0, 0, 1], [1, 0, 0, 1, 1]) == pytest.approx(2 / 3)
    # precision 1/3, recall 1/1 -> 2*(1/3)/(4/3) = 0.5
    assert M.f1_score([0, 0, 1], [1, 1, 1]) == pytest.approx(0.5)
    assert M.f1_score(["1", "0"], ["1", "1"], positive="1") == pytest.approx(2 / 3)


def test_f1_no_positives_is_zero_not_nan():
    assert M.f1_score([0, 0, 0], [0, 0, 0]) == 0.0


def test_mcc_hand_value_binary():
    # tp=2 tn=1 fp=1 fn=1: (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6
    assert M.matthews_corrcoef([1, 1, 0, 0, 1], [1, 0, 0, 1, 1]) == pytest.approx(1 / 6)
    assert M.matthews_corrcoef([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(1.0)
    assert M.matthews_corrcoef([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)


def test_mcc_undefined_is_zero_like_sklearn():
    assert M.matthews_corrcoef([0, 1, 1, 0], [1, 1, 1, 1]) == 0.0
    assert M.matthews_corrcoef([1, 1], [1, 1]) == 0.0


def test_mcc_binary_equals_phi_coefficient_on_random_data():
    rng = np.random.default_rng(0)
    for _ in range(20):
        t = rng.integers(0, 2, size=50)
        p = np.where(rng.random(50) < 0.7, t, 1 - t)
        expected = np.corrcoef(t.astype(float), p.astype(float))[0, 1]
        assert M.matthews_corrcoef(t, p) == pytest.approx(expected, abs=1e-12)


def test_mcc_multiclass_matches_gorodkin_formula():
    rng = np.random.default_rng(1)
    for _ in range(10):
        t = rng.integers(0, 3, size=40).tolist()
        p = [x if rng.random() < 0.6 else int(rng.integers(0, 3)) for x in t]
        assert M.matthews_corrcoef(t, p) == pytest.approx(_ref_mcc_gorodkin(t, p), abs=1e-12)


# ----------------------------------------------------------------------------- correlations
def test_pearson_matches_numpy_corrcoef():
    rng = np.random.default_rng(2)
    a = rng.normal(size=100)
    b = a * 0.5 + rng.normal(size=100)
    assert M.pearson(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-12)
    assert M.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert M.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_rankdata_average_ties():
    assert M.rankdata([10, 20, 20, 30]).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert M.rankdata([3, 3, 3]).tolist() == [2.0, 2.0, 2.0]
    x = [0.5, 0.1, 0.5, 0.9, 0.1, 0.1]
    assert M.rankdata(x).tolist() == _ref_rank(x)


def test_spearman_hand_value_with_ties():
    # ranks a = [1, 2.5, 2.5, 4], b = [1, 2, 3, 4]: Pearson of the ranks
    a, b = [1, 2, 2, 3], [1, 2, 3, 4]
    ra, rb = np.array([1, 2.5, 2.5, 4]), np.array([1, 2, 3, 4.0])
    expected = float(np.corrcoef(ra, rb)[0, 1])
    assert expected == pytest.approx(0.9486832980505138)
    assert M.spearman(a, b) == pytest.approx(expected, abs=1e-12)
    # no ties: 1 - 6 sum d^2 / (n (n^2 - 1)); d = [0, 1, -1, 0, 0] -> 1 - 12/120
    assert M.spearman([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]) == pytest.approx(0.9)


def test_spearman_matches_independent_ranking_on_random_ties():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 6, size=60).astype(float)  # many ties, as STS-B scores have
    b = a + rng.integers(-2, 3, size=60)
    expected = np.corrcoef(_ref_rank(a.tolist()), _ref_rank(b.tolist()))[0, 1]
    assert M.spearman(a, b) == pytest.approx(expected, abs=1e-12)


def test_constant_input_correlation_is_zero_not_nan():
    assert M.pearson([1, 1, 1], [1, 2, 3]) == 0.0
    assert M.spearman([1, 2, 3], [4, 4, 4]) == 0.0


def test_non_finite_values_rejected():
    with pytest.raises(ValueError):
        M.pearson([1.0, float("nan")], [1.0, 2.0])


# ----------------------------------------------------------------------------- multi-label
def test_multilabel_micro_f1_and_exact_match_hand_values():
    gold = [{"a", "b"}, {"c"}, set()]
    pred = [{"a"}, {"c", "a"}, set()]
    # tp: a, c = 2; fp: a (ex 2) = 1; fn: b = 1 -> 4 / 6
    assert M.multilabel_micro_f1(gold, pred) == pytest.approx(2 / 3)
    assert M.multilabel_exact_match(gold, pred) == pytest.approx(1 / 3)


def test_multilabel_indicator_rows_equal_sets():
    gold = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0]])
    pred = np.array([[1, 0, 0], [1, 0, 1], [0, 0, 0]])
    assert M.multilabel_micro_f1(gold, pred) == pytest.approx(2 / 3)
    assert M.multilabel_exact_match(gold, pred) == pytest.approx(1 / 3)
    assert M.compute_metrics([M.MICRO_F1], gold, pred) == {M.MICRO_F1: pytest.approx(2 / 3)}


# ----------------------------------------------------------------------------- dispatch and errors
def test_compute_metrics_by_name():
    out = M.compute_metrics([M.ACCURACY, M.F1, M.MCC], [1, 1, 0, 0, 1], [1, 0, 0, 1, 1])
    assert out == {
        M.ACCURACY: pytest.approx(0.6),
        M.F1: pytest.approx(2 / 3),
        M.MCC: pytest.approx(1 / 6),
    }


def test_bad_calls_raise_value_error():
    with pytest.raises(ValueError, match="2 gold values but 1"):
        M.accuracy([1, 0], [1])
    with pytest.raises(ValueError, match="no examples"):
        M.accuracy([], [])
    with pytest.raises(ValueError, match="unknown metric"):
        M.compute_metrics(["bleu"], [1], [1])


def test_mrpc_dev_all_positive_baseline(shared_data):
    """Predicting "paraphrase" everywhere on the real MRPC dev set: 279/408 and F1 558/687."""
    from bert_cli.text.tasks import get_task

    task = get_task("mrpc")
    gold = [task.label_id(e.label) for e in task.read(shared_data / "glue" / "MRPC", "dev")]
    out = M.compute_metrics(task.metric_names, gold, [1] * len(gold))
    assert out == {M.ACCURACY: pytest.approx(279 / 408), M.F1: pytest.approx(558 / 687)}
    assert M.matthews_corrcoef(gold, [1] * len(gold)) == 0.0
