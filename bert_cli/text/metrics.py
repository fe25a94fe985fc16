"""Classification and regression metrics for sentence(-pair) tasks (pure Python + numpy).

The GLUE metrics of each task (:attr:`bert_cli.text.task_base.Task.metric_names`) are computed by
:func:`compute_metrics` from gold and predicted values:

==============  ==============================================================
``accuracy``    fraction of exact matches (class ids, labels or label sets)
``f1``          binary F1 of the positive class (id 1, i.e. label ``"1"``)
``mcc``         Matthews correlation (multi-class form; 0.0 when undefined)
``pearson``     Pearson correlation (0.0 when a side is constant)
``spearman``    Spearman rank correlation, ties get their average rank
``micro_f1``    multi-label micro-averaged F1 over (example, label) pairs
``exact_match`` multi-label subset accuracy (the whole label set must match)
==============  ==============================================================

Conventions follow scikit-learn / scipy where those are defined, except that an undefined
value (a zero denominator) is reported as ``0.0`` instead of NaN, so an eval file never holds
NaN. Empty or length-mismatched inputs raise :class:`ValueError` (a caller bug, not user input).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence

import numpy as np

ACCURACY = "accuracy"
F1 = "f1"
MCC = "mcc"
PEARSON = "pearson"
SPEARMAN = "spearman"
MICRO_F1 = "micro_f1"
EXACT_MATCH = "exact_match"


# ----------------------------------------------------------------------------- helpers
def _pair(y_true: Iterable, y_pred: Iterable) -> tuple[list, list]:
    """Materialize both sides as lists and check that they are non-empty and aligned."""
    t, p = _as_list(y_true), _as_list(y_pred)
    if len(t) != len(p):
        raise ValueError(f"{len(t)} gold values but {len(p)} predictions")
    if not t:
        raise ValueError("no examples to score")
    return t, p


def _as_list(values: Iterable) -> list:
    """A list of plain Python values (numpy scalars become Python scalars)."""
    if isinstance(values, np.ndarray):
        return values.tolist()
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def _safe_div(num: float, den: float) -> float:
    """``num / den``, or 0.0 when ``den`` is 0."""
    return float(num) / float(den) if den else 0.0


# ----------------------------------------------------------------------------- single-label
def accuracy(y_true: Iterable, y_pred: Iterable) -> float:
    """Fraction of positions where prediction equals gold."""
    t, p = _pair(y_true, y_pred)
    return sum(1 for a, b in zip(t, p) if a == b) / len(t)


def f1_score(y_true: Iterable, y_pred: Iterable, positive: Hashable = 1) -> float:
    """Binary F1 of the ``positive`` class (MRPC/QQP: class id 1 = label ``"1"``).

    0.0 when there are no true positives (scikit-learn's ``zero_division=0``).
    """
    t, p = _pair(y_true, y_pred)
    tp = sum(1 for a, b in zip(t, p) if a == positive and b == positive)
    fp = sum(1 for a, b in zip(t, p) if a != positive and b == positive)
    fn = sum(1 for a, b in zip(t, p) if a == positive and b != positive)
    return _safe_div(2 * tp, 2 * tp + fp + fn)


def matthews_corrcoef(y_true: Iterable, y_pred: Iterable) -> float:
    """Matthews correlation coefficient (multi-class form, = the binary phi coefficient).

    With ``C`` the confusion matrix, ``t_k``/``p_k`` the true/predicted counts of class ``k``,
    ``c`` the correct count and ``s`` the total::

        MCC = (c*s - sum t_k p_k) / sqrt((s^2 - sum p_k^2) (s^2 - sum t_k^2))

    0.0 when the denominator is 0 (e.g. a constant prediction), as scikit-learn.
    """
    t, p = _pair(y_true, y_pred)
    classes = sorted(set(t) | set(p), key=repr)
    index = {c: i for i, c in enumerate(classes)}
    conf = np.zeros((len(classes), len(classes)), dtype=np.float64)
    for a, b in zip(t, p):
        conf[index[a], index[b]] += 1
    t_sum, p_sum = conf.sum(axis=1), conf.sum(axis=0)
    correct, total = np.trace(conf), conf.sum()
    cov_ytyp = correct * total - float(np.dot(t_sum, p_sum))
    cov_ypyp = total * total - float(np.dot(p_sum, p_sum))
    cov_ytyt = total * total - float(np.dot(t_sum, t_sum))
    den = cov_ypyp * cov_ytyt
    if den == 0:
        return 0.0
    return float(cov_ytyp / math.sqrt(den))


# ----------------------------------------------------------------------------- regression
def _floats(y_true: Iterable, y_pred: Iterable) -> tuple[np.ndarray, np.ndarray]:
    t, p = _pair(y_true, y_pred)
    a, b = np.asarray(t, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("correlation of non-finite values (NaN or infinity)")
    return a, b


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    da, db = a - a.mean(), b - b.mean()
    den = math.sqrt(float(np.dot(da, da)) * float(np.dot(db, db)))
    if den == 0:
        return 0.0
    r = float(np.dot(da, db)) / den
    return max(-1.0, min(1.0, r))


def pearson(y_true: Iterable, y_pred: Iterable) -> float:
    """Pearson correlation; 0.0 when either side is constant (scipy would give NaN)."""
    return _pearson(*_floats(y_true, y_pred))


def rankdata(values: Sequence[float]) -> np.ndarray:
    """1-based ranks with ties given the average of the ranks they span (scipy's 'average')."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    start = 0
    while start < len(x):
        end = start
        while end + 1 < len(x) and sorted_x[end + 1] == sorted_x[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def spearman(y_true: Iterable, y_pred: Iterable) -> float:
    """Spearman rank correlation: Pearson of the average ranks; 0.0 when a side is constant."""
    a, b = _floats(y_true, y_pred)
    return _pearson(rankdata(a), rankdata(b))


# ----------------------------------------------------------------------------- multi-label
def _label_sets(values: Iterable) -> list[frozenset]:
    """Label sets from sets/lists of labels or from rows of a 0/1 indicator matrix."""
    if isinstance(values, np.ndarray) and values.ndim == 2:
        return [frozenset(np.flatnonzero(row).tolist()) for row in values]
    out = []
    for v in values:
        if isinstance(v, np.ndarray):
            out.append(frozenset(np.flatnonzero(v).tolist()))
        else:
            out.append(frozenset(v))
    return out


def multilabel_micro_f1(y_true: Iterable, y_pred: Iterable) -> float:
    """Micro-averaged F1 over all (example, label) decisions; 0.0 with no true positives.

    Each item is a set (or list) of labels, or a 0/1 indicator row (then labels are indexes).
    """
    t, p = _pair(_label_sets(y_true), _label_sets(y_pred))
    tp = sum(len(a & b) for a, b in zip(t, p))
    fp = sum(len(b - a) for a, b in zip(t, p))
    fn = sum(len(a - b) for a, b in zip(t, p))
    return _safe_div(2 * tp, 2 * tp + fp + fn)


def multilabel_exact_match(y_true: Iterable, y_pred: Iterable) -> float:
    """Fraction of examples whose predicted label set equals the gold set exactly."""
    t, p = _pair(_label_sets(y_true), _label_sets(y_pred))
    return sum(1 for a, b in zip(t, p) if a == b) / len(t)


# ----------------------------------------------------------------------------- dispatch
METRICS: Mapping[str, Callable[[Iterable, Iterable], float]] = {
    ACCURACY: accuracy,
    F1: f1_score,
    MCC: matthews_corrcoef,
    PEARSON: pearson,
    SPEARMAN: spearman,
    MICRO_F1: multilabel_micro_f1,
    EXACT_MATCH: multilabel_exact_match,
}


def compute_metrics(names: Iterable[str], y_true: Iterable, y_pred: Iterable) -> dict[str, float]:
    """``{name: value}`` for every metric in ``names`` (e.g. a task's ``metric_names``).

    For classification pass class ids (``f1`` counts id 1 as positive), for regression floats,
    for multi-label sets of labels or 0/1 indicator rows.
    """
    t = y_true if _is_matrix(y_true) else _as_list(y_true)  # iterate generators once
    p = y_pred if _is_matrix(y_pred) else _as_list(y_pred)
    results = {}
    for name in names:
        try:
            fn = METRICS[name]
        except KeyError:
            raise ValueError(f"unknown metric {name!r} (known: {', '.join(METRICS)})") from None
        results[name] = fn(t, p)
    return results


def _is_matrix(values: object) -> bool:
    return isinstance(values, np.ndarray) and values.ndim == 2
