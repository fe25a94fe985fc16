"""The official SQuAD evaluators (v1.1 and v2.0), built in, plus the v2.0 best-threshold search.

Behaviour follows ``evaluate-v1.1.py`` and ``evaluate-v2.0.py`` from the SQuAD site exactly,
including their summation order, so the numbers are bit-for-bit the official ones:

* **Normalization** (both): lower case, drop ``string.punctuation`` characters, replace the
  whole words ``a``/``an``/``the`` by a space, collapse whitespace.
* **v1.1**: exact match and bag-of-tokens F1, the maximum over the gold answers, averaged over
  *every* question of the data set (an unanswered question scores 0 and is reported), as
  percentages: ``{"exact_match": ..., "f1": ...}``.
* **v2.0**: gold answers whose normalized text is empty are dropped; a question with no gold
  answer has the single gold answer ``""`` (only an empty prediction is right). With a
  no-answer probability file, a question whose value is ``> na_prob_thresh`` (default 1.0) is
  scored as if it predicted no answer, and the best thresholds are searched
  (:func:`find_best_thresh`). Output keys, in order: ``exact, f1, total, HasAns_exact,
  HasAns_f1, HasAns_total, NoAns_exact, NoAns_f1, NoAns_total`` and, with null odds,
  ``best_exact, best_exact_thresh, best_f1, best_f1_thresh``.

BERT's ``null_odds.json`` holds ``score_diff`` values (null score minus best span score), not
probabilities; the official evaluator is run with ``--na-prob-file null_odds.json`` all the
same, so the thresholds it reports are on the score_diff scale and can be passed back as
``null_score_diff_threshold``. We do exactly what it does (including the default
``na_prob_thresh`` of 1.0 applied to those score_diff values).

Pure Python, no TensorFlow.
"""

from __future__ import annotations

import collections
import json
import re
import string
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import InputError, NotFoundError

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


# ----------------------------------------------------------------------------- normalization
def normalize_answer(text: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (the official order)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def answer_tokens(text: str) -> list[str]:
    """The v2.0 evaluator's ``get_tokens``: normalized tokens, [] for an empty string."""
    if not text:
        return []
    return normalize_answer(text).split()


# ----------------------------------------------------------------------------- v1.1 scores
def exact_match_v1(prediction: str, ground_truth: str) -> bool:
    """v1.1 exact match: the normalized strings are equal."""
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def f1_v1(prediction: str, ground_truth: str) -> float:
    """v1.1 token F1 (0 when nothing overlaps, including an empty side)."""
    pred_toks = normalize_answer(prediction).split()
    gold_toks = normalize_answer(ground_truth).split()
    common = collections.Counter(pred_toks) & collections.Counter(gold_toks)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def evaluate_v1(dataset: list, predictions: Mapping[str, str], *, missing: list | None = None) -> dict:
    """The official v1.1 evaluation of ``predictions`` (qid -> text) on ``dataset`` (``data``).

    Questions without a prediction score 0; their ids are appended to ``missing`` if given.
    Returns exactly ``{"exact_match": float, "f1": float}``.
    """
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    if missing is not None:
                        missing.append(qa["id"])
                    continue
                ground_truths = [a["text"] for a in qa["answers"]]
                if not ground_truths:  # the official script dies here; score it 0
                    continue
                prediction = predictions[qa["id"]]
                exact_match += max(exact_match_v1(prediction, g) for g in ground_truths)
                f1 += max(f1_v1(prediction, g) for g in ground_truths)
    if total == 0:
        return {"exact_match": 0.0, "f1": 0.0}
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


# ----------------------------------------------------------------------------- v2.0 scores
def compute_exact(a_gold: str, a_pred: str) -> int:
    """v2.0 exact match (1/0)."""
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold: str, a_pred: str) -> float:
    """v2.0 token F1; when either side has no tokens, 1 only if both have none."""
    gold_toks = answer_tokens(a_gold)
    pred_toks = answer_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def qid_to_has_answer(dataset: list) -> dict[str, bool]:
    """qid -> whether the question has at least one gold answer (later duplicates win)."""
    return {qa["id"]: bool(qa["answers"]) for article in dataset for p in article["paragraphs"] for qa in p["qas"]}


def raw_scores_v2(dataset: list, predictions: Mapping[str, str], *, missing: list | None = None):
    """Per-question exact and F1 (before any no-answer threshold), in data-set order."""
    exact_scores: dict[str, int] = {}
    f1_scores: dict[str, float] = {}
    for article in dataset:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                qid = qa["id"]
                gold_answers = [a["text"] for a in qa["answers"] if normalize_answer(a["text"])]
                if not gold_answers:
                    gold_answers = [""]
                if qid not in predictions:
                    if missing is not None:
                        missing.append(qid)
                    continue
                a_pred = predictions[qid]
                exact_scores[qid] = max(compute_exact(a, a_pred) for a in gold_answers)
                f1_scores[qid] = max(compute_f1(a, a_pred) for a in gold_answers)
    return exact_scores, f1_scores


def apply_no_ans_threshold(scores: Mapping[str, float], na_probs: Mapping[str, float],
                           qid_to_has_ans: Mapping[str, bool], na_prob_thresh: float) -> dict[str, float]:
    """Questions with ``na_prob > na_prob_thresh`` are scored as a no-answer prediction."""
    new_scores = {}
    for qid, s in scores.items():
        if na_probs[qid] > na_prob_thresh:
            new_scores[qid] = float(not qid_to_has_ans[qid])
        else:
            new_scores[qid] = s
    return new_scores


def _eval_dict(exact_scores: Mapping[str, float], f1_scores: Mapping[str, float],
               qid_list: list[str] | None = None) -> dict:
    if not qid_list:
        total = len(exact_scores)
        return collections.OrderedDict([
            ("exact", 100.0 * sum(exact_scores.values()) / total),
            ("f1", 100.0 * sum(f1_scores.values()) / total),
            ("total", total),
        ])
    total = len(qid_list)
    return collections.OrderedDict([
        ("exact", 100.0 * sum(exact_scores[k] for k in qid_list) / total),
        ("f1", 100.0 * sum(f1_scores[k] for k in qid_list) / total),
        ("total", total),
    ])


def find_best_thresh(predictions: Mapping[str, str], scores: Mapping[str, float],
                     na_probs: Mapping[str, float], qid_to_has_ans: Mapping[str, bool]) -> tuple[float, float]:
    """The official best-threshold walk: returns ``(best score in %, threshold)``.

    Starts as if every question were answered "no answer" (score = number of unanswerable
    questions), walks the questions by ascending ``na_prob`` (stable sort, data-set order on
    ties), switching each one to its span prediction: +score for an answerable question,
    -1 for an unanswerable one that has a non-empty prediction. The threshold is the
    ``na_prob`` of the question at which the running score last strictly improved (0.0 if it
    never did). A question is then predicted answered iff ``na_prob <= threshold``.
    """
    num_no_ans = sum(1 for k in qid_to_has_ans if not qid_to_has_ans[k])
    cur_score = num_no_ans
    best_score = cur_score
    best_thresh = 0.0
    qid_list = sorted(na_probs, key=lambda k: na_probs[k])
    for qid in qid_list:
        if qid not in scores:
            continue
        if qid_to_has_ans[qid]:
            diff = scores[qid]
        elif predictions[qid]:
            diff = -1
        else:
            diff = 0
        cur_score += diff
        if cur_score > best_score:
            best_score = cur_score
            best_thresh = na_probs[qid]
    return 100.0 * best_score / len(scores), best_thresh


def evaluate_v2(dataset: list, predictions: Mapping[str, str], na_probs: Mapping[str, float] | None = None,
                *, na_prob_thresh: float = 1.0, source: str | Path | None = None) -> dict:
    """The official v2.0 evaluation; with ``na_probs`` (e.g. BERT's null odds) also the best thresholds.

    Unlike the official script (which dies with a KeyError) a question without a prediction,
    or without a null-odds value, raises :class:`InputError` naming the first such id.
    """
    missing: list[str] = []
    exact_raw, f1_raw = raw_scores_v2(dataset, predictions, missing=missing)
    if missing:
        raise InputError(
            f"no prediction for {len(missing)} question(s), e.g. {missing[0]!r}",
            path=source,
            hint="predict the whole file with `bert finetune squad --do-predict`",
        )
    if not exact_raw:
        raise InputError("the data set has no questions", path=source)
    has_na_probs = na_probs is not None
    if na_probs is None:
        na_probs = {k: 0.0 for k in predictions}
    absent = [k for k in exact_raw if k not in na_probs]
    if absent:
        raise InputError(f"no null-odds value for {len(absent)} question(s), e.g. {absent[0]!r}",
                         hint="use the null_odds.json written with these predictions")
    qid_to_has_ans = qid_to_has_answer(dataset)
    has_ans_qids = [k for k, v in qid_to_has_ans.items() if v]
    no_ans_qids = [k for k, v in qid_to_has_ans.items() if not v]
    exact_thresh = apply_no_ans_threshold(exact_raw, na_probs, qid_to_has_ans, na_prob_thresh)
    f1_thresh = apply_no_ans_threshold(f1_raw, na_probs, qid_to_has_ans, na_prob_thresh)
    out = _eval_dict(exact_thresh, f1_thresh)
    if has_ans_qids:
        for k, v in _eval_dict(exact_thresh, f1_thresh, has_ans_qids).items():
            out[f"HasAns_{k}"] = v
    if no_ans_qids:
        for k, v in _eval_dict(exact_thresh, f1_thresh, no_ans_qids).items():
            out[f"NoAns_{k}"] = v
    if has_na_probs:
        best_exact, exact_t = find_best_thresh(predictions, exact_raw, na_probs, qid_to_has_ans)
        best_f1, f1_t = find_best_thresh(predictions, f1_raw, na_probs, qid_to_has_ans)
        out["best_exact"] = best_exact
        out["best_exact_thresh"] = exact_t
        out["best_f1"] = best_f1
        out["best_f1_thresh"] = f1_t
    return out


# ----------------------------------------------------------------------------- files
def _load_json(path: str | Path, what: str, hint: str | None = None) -> Any:
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"{what} not found: {p}", hint=hint)
    try:
        with open(p, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg})", path=p, line=exc.lineno) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=p) from None


def load_dataset(path: str | Path) -> tuple[list, str | None]:
    """The ``data`` list and ``version`` of a SQuAD JSON file; InputError if it is not one."""
    obj = _load_json(path, "SQuAD file")
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        raise InputError('not a SQuAD file (expected an object with a "data" list)', path=path)
    try:
        for article in obj["data"]:
            for p in article["paragraphs"]:
                for qa in p["qas"]:
                    if not isinstance(qa["id"], str) or not isinstance(qa["answers"], list):
                        raise TypeError
                    for a in qa["answers"]:
                        if not isinstance(a["text"], str):
                            raise TypeError
    except (KeyError, TypeError):
        raise InputError("not a SQuAD file (articles need paragraphs -> qas with id and answers)", path=path) from None
    return obj["data"], obj.get("version")


def is_version_2(dataset: list, version: str | None = None) -> bool:
    """True for SQuAD 2.0 data: any question carries ``is_impossible``, or version says 2.x."""
    if version is not None and str(version).lstrip("vV").startswith("2"):
        return True
    return any("is_impossible" in qa for article in dataset for p in article["paragraphs"] for qa in p["qas"])


def load_predictions(path: str | Path, what: str = "predictions file", hint: str | None = None) -> dict[str, str]:
    """A qid -> text JSON object (``predictions.json``)."""
    obj = _load_json(path, what, hint)
    if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
        raise InputError("expected a JSON object of question id -> answer text", path=path)
    return obj


def load_null_odds(path: str | Path, hint: str | None = None) -> dict[str, float]:
    """A qid -> number JSON object (``null_odds.json``)."""
    obj = _load_json(path, "null odds file", hint)
    if not isinstance(obj, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in obj.values()
    ):
        raise InputError("expected a JSON object of question id -> number", path=path)
    return obj


def evaluate(dataset: list, predictions: Mapping[str, str], na_probs: Mapping[str, float] | None = None,
             *, version_2: bool, missing: list | None = None) -> dict:
    """v2.0 or v1.1 evaluation, picked by ``version_2``."""
    if version_2:
        return evaluate_v2(dataset, predictions, na_probs)
    return evaluate_v1(dataset, predictions, missing=missing)


def evaluate_files(dataset_file: str | Path, predictions_file: str | Path,
                   null_odds_file: str | Path | None = None) -> dict:
    """Evaluate files like the official scripts (the version is detected from the data set)."""
    dataset, version = load_dataset(dataset_file)
    predictions = load_predictions(predictions_file)
    if is_version_2(dataset, version):
        odds = load_null_odds(null_odds_file) if null_odds_file is not None else None
        return evaluate_v2(dataset, predictions, odds, source=predictions_file)
    return evaluate_v1(dataset, predictions)


def iter_questions(dataset: Iterable) -> Iterable[dict]:
    """Every ``qa`` object of a ``data`` list, in file order."""
    for article in dataset:
        for p in article["paragraphs"]:
            yield from p["qas"]
