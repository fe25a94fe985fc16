"""SQuAD answers from start/end logits: the original ``write_predictions``, plus the raw-logits file.

:func:`write_predictions` follows ``run_squad.py`` step by step:

1. per feature, the top ``n_best_size`` start and end indexes (stable sort by logit, descending,
   over every position including padding);
2. drop pairs out of range, outside the document (not in ``token_to_orig_map``), whose start is
   not in its max-context window, with end < start, or longer than ``max_answer_length``;
3. v2.0: ``score_null`` = the minimum over the features of ``start[0] + end[0]``, and one null
   candidate from that feature;
4. candidates sorted by ``start + end`` logit (stable), then, up to ``n_best_size`` distinct
   texts: WordPiece de-tokenization (``" ##"`` then ``"##"`` removed, whitespace collapsed) and
   :func:`get_final_text`, which projects the text back onto the original characters;
5. v2.0: ``""`` added if absent; an empty list gets the nonce ``"empty"`` (logits 0.0);
6. ``probability`` = softmax over ``start + end`` of the n-best;
7. v1.1: the answer is the first n-best text. v2.0: ``score_diff = score_null -
   best_non_null.start_logit - best_non_null.end_logit`` goes to the null odds and the answer
   is ``""`` iff ``score_diff > null_score_diff_threshold``.

**One deliberate difference.** When every n-best entry is the null answer (no valid span at
all) the original dies with ``AttributeError`` (google-research/bert #211, #417). We do not
crash: the answer is ``""`` and, as in the community fix (PR #477), ``score_diff`` is taken as
``null_score_diff_threshold + 1.0``; unlike that fix we also record it in the null odds so the
file has one value per question. Such questions are counted in ``SquadPredictions.all_null``.
Likewise an example with no feature at all (an empty paragraph) gets ``""`` (v2.0) or
``"empty"`` (v1.1) instead of an IndexError.

Features and logits are consumed as **streams**: ``features`` is any iterable in example
order (typically :func:`bert_cli.text.squad.convert_examples_to_features` run again over
the same examples: featurization is deterministic, so no metadata needs to be stored), and
``results`` is either a mapping ``unique_id -> RawResult`` or an iterable in (roughly) the
same order, such as :func:`read_raw_logits`. Memory stays at one example.

The raw logits file (``raw_logits.jsonl``) is :mod:`bert_cli.text.squad_logits`'s.

Pure Python, no TensorFlow.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
from pathlib import Path
from typing import Iterable, Iterator, Mapping, NamedTuple, Sequence

from .. import console
from ..errors import InputError
from ..fileio import atomic_write
from ..rundir import SQUAD_RUN_FILE
from .squad import FeaturizeConfig, SquadExample, SquadFeature, convert_examples_to_features
from .squad_logits import RawResult, read_raw_logits

PREDICTIONS_FILE = "predictions.json"
NBEST_FILE = "nbest_predictions.json"
NULL_ODDS_FILE = "null_odds.json"

DEFAULT_N_BEST_SIZE = 20
DEFAULT_MAX_ANSWER_LENGTH = 30


class _Prelim(NamedTuple):
    feature_index: int
    start_index: int
    end_index: int
    start_logit: float
    end_logit: float


class _NBest(NamedTuple):
    text: str
    start_logit: float
    end_logit: float


@dataclasses.dataclass(frozen=True)
class PredictionConfig:
    """The original's prediction flags (defaults as ``run_squad.py``)."""

    n_best_size: int = DEFAULT_N_BEST_SIZE
    max_answer_length: int = DEFAULT_MAX_ANSWER_LENGTH
    do_lower_case: bool = True
    version_2_with_negative: bool = False
    null_score_diff_threshold: float = 0.0


@dataclasses.dataclass
class SquadPredictions:
    """The three outputs, as ordered dicts in example order (what the files hold)."""

    predictions: "collections.OrderedDict[str, str]"
    nbest: "collections.OrderedDict[str, list]"
    null_odds: "collections.OrderedDict[str, float]"
    all_null: int = 0
    version_2_with_negative: bool = False


# ----------------------------------------------------------------------------- small pieces
def get_best_indexes(logits: Sequence[float], n_best_size: int) -> list[int]:
    """Indexes of the ``n_best_size`` largest logits, largest first, ties in index order."""
    order = sorted(range(len(logits)), key=logits.__getitem__, reverse=True)
    return order[:n_best_size]


def compute_softmax(scores: Sequence[float]) -> list[float]:
    """Softmax in plain float arithmetic, as the original (max-shifted exp, then divide)."""
    if not scores:
        return []
    max_score = max(scores)
    exp_scores = [math.exp(s - max_score) for s in scores]
    total_sum = 0.0
    for x in exp_scores:
        total_sum += x
    return [x / total_sum for x in exp_scores]


def detokenize(tokens: Sequence[str]) -> str:
    """Join WordPieces into text: ``" ##"`` and ``"##"`` removed, whitespace collapsed."""
    text = " ".join(tokens)
    text = text.replace(" ##", "").replace("##", "")
    return " ".join(text.strip().split())


def _strip_spaces(text: str) -> tuple[str, dict[int, int]]:
    ns_chars = []
    ns_to_s_map: dict[int, int] = {}
    for i, c in enumerate(text):
        if c == " ":
            continue
        ns_to_s_map[len(ns_chars)] = i
        ns_chars.append(c)
    return "".join(ns_chars), ns_to_s_map


def get_final_text(pred_text: str, orig_text: str, do_lower_case: bool, basic_tokenizer=None) -> str:
    """Project the normalized ``pred_text`` back onto ``orig_text`` (e.g. "steve smith" in
    "Steve Smith's" gives "Steve Smith"); ``orig_text`` unchanged whenever the alignment fails.
    """
    if basic_tokenizer is None:
        from .basic_tokenizer import BasicTokenizer

        basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
    tok_text = " ".join(basic_tokenizer.tokenize(orig_text))

    start_position = tok_text.find(pred_text)
    if start_position == -1:
        console.debug(f"Unable to find text: {pred_text!r} in {orig_text!r}")
        return orig_text
    end_position = start_position + len(pred_text) - 1

    orig_ns_text, orig_ns_to_s_map = _strip_spaces(orig_text)
    tok_ns_text, tok_ns_to_s_map = _strip_spaces(tok_text)
    if len(orig_ns_text) != len(tok_ns_text):
        console.debug(f"Length not equal after stripping spaces: {orig_ns_text!r} vs {tok_ns_text!r}")
        return orig_text

    tok_s_to_ns_map = {tok_index: i for i, tok_index in tok_ns_to_s_map.items()}

    orig_start_position = None
    if start_position in tok_s_to_ns_map:
        orig_start_position = orig_ns_to_s_map.get(tok_s_to_ns_map[start_position])
    if orig_start_position is None:
        console.debug("Couldn't map start position")
        return orig_text

    orig_end_position = None
    if end_position in tok_s_to_ns_map:
        orig_end_position = orig_ns_to_s_map.get(tok_s_to_ns_map[end_position])
    if orig_end_position is None:
        console.debug("Couldn't map end position")
        return orig_text

    return orig_text[orig_start_position:orig_end_position + 1]


def span_text(example: SquadExample, feature: SquadFeature, start_index: int, end_index: int,
              do_lower_case: bool, basic_tokenizer=None) -> str:
    """The answer text for feature tokens ``start_index..end_index`` (steps 4-5 of the writer)."""
    tok_text = detokenize(feature.tokens[start_index:end_index + 1])
    orig_doc_start = feature.token_to_orig_map[start_index]
    orig_doc_end = feature.token_to_orig_map[end_index]
    orig_text = " ".join(example.doc_tokens[orig_doc_start:orig_doc_end + 1])
    return get_final_text(tok_text, orig_text, do_lower_case, basic_tokenizer)


# ----------------------------------------------------------------------------- grouping
def _group_features(features: Iterable[SquadFeature], num_examples: int) -> Iterator[list[SquadFeature]]:
    """One list per example index 0..num_examples-1 (empty for an example without features)."""
    expected = 0
    current: list[SquadFeature] = []
    for feature in features:
        if feature.example_index < expected or feature.example_index >= num_examples:
            raise InputError(f"feature {feature.unique_id} belongs to example {feature.example_index}, "
                             f"out of order or out of range (expected >= {expected} and < {num_examples})")
        while feature.example_index > expected:
            yield current
            current = []
            expected += 1
        current.append(feature)
    while expected < num_examples:
        yield current
        current = []
        expected += 1


class _ResultLookup:
    """unique_id -> RawResult from a mapping, or lazily from an iterable (buffering out-of-order)."""

    def __init__(self, results: Mapping[int, RawResult] | Iterable[RawResult]) -> None:
        if isinstance(results, Mapping):
            self._buffer = dict(results)
            self._source: Iterator[RawResult] | None = None
        else:
            self._buffer = {}
            self._source = iter(results)

    def pop(self, unique_id: int) -> RawResult:
        found = self._buffer.pop(unique_id, None)
        while found is None and self._source is not None:
            result = next(self._source, None)
            if result is None:
                self._source = None
                break
            if result.unique_id == unique_id:
                found = result
            else:
                self._buffer[result.unique_id] = result
        if found is None:
            raise InputError(f"no logits for feature {unique_id}",
                             hint="the logits do not match these features; re-run `bert finetune squad --do-predict`")
        return _as_python_floats(found)


def _as_python_floats(result: RawResult) -> RawResult:
    """Logits as lists of Python floats (numpy float32 arrays would add in float32 and not
    serialize to JSON; the original converts with ``float(x)`` too)."""
    start, end = result.start_logits, result.end_logits
    if type(start) is list and type(end) is list:
        return result

    def to_list(values):
        return values.tolist() if hasattr(values, "tolist") else [float(v) for v in values]

    return RawResult(int(result.unique_id), to_list(start), to_list(end))


# ----------------------------------------------------------------------------- write_predictions
def write_predictions(examples: Sequence[SquadExample], features: Iterable[SquadFeature],
                      results: Mapping[int, RawResult] | Iterable[RawResult],
                      config: PredictionConfig = PredictionConfig()) -> SquadPredictions:
    """The original ``write_predictions`` (returns the outputs; :func:`write_prediction_files` saves them)."""
    if config.do_lower_case is None:
        raise ValueError("do_lower_case must be set")
    from .basic_tokenizer import BasicTokenizer

    basic = BasicTokenizer(do_lower_case=config.do_lower_case)
    lookup = _ResultLookup(results)
    out = SquadPredictions(collections.OrderedDict(), collections.OrderedDict(), collections.OrderedDict(),
                           version_2_with_negative=config.version_2_with_negative)
    for example, example_features in zip(examples, _group_features(features, len(examples))):
        ex_results = [lookup.pop(f.unique_id) for f in example_features]
        nbest_json, best_text, score_diff, all_null = _predict_example(example, example_features, ex_results,
                                                                       config, basic)
        out.all_null += all_null
        out.predictions[example.qas_id] = best_text
        out.nbest[example.qas_id] = nbest_json
        if config.version_2_with_negative:
            out.null_odds[example.qas_id] = score_diff
    if out.all_null:
        console.warn(f"{out.all_null} question(s) had no valid answer span at all; predicted \"\" "
                     "(the original run_squad.py crashes here)")
    return out


def _prelim_predictions(features: Sequence[SquadFeature], results: Sequence[RawResult], config: PredictionConfig):
    prelim: list[_Prelim] = []
    score_null = 1000000  # large and positive
    min_null_feature_index = 0
    null_start_logit = 0
    null_end_logit = 0
    for feature_index, (feature, result) in enumerate(zip(features, results)):
        start_indexes = get_best_indexes(result.start_logits, config.n_best_size)
        end_indexes = get_best_indexes(result.end_logits, config.n_best_size)
        if config.version_2_with_negative:
            feature_null_score = result.start_logits[0] + result.end_logits[0]
            if feature_null_score < score_null:
                score_null = feature_null_score
                min_null_feature_index = feature_index
                null_start_logit = result.start_logits[0]
                null_end_logit = result.end_logits[0]
        num_tokens = len(feature.tokens)
        orig_map = feature.token_to_orig_map
        max_context = feature.token_is_max_context
        for start_index in start_indexes:
            if start_index >= num_tokens or start_index not in orig_map:
                continue
            if not max_context.get(start_index, False):
                continue
            for end_index in end_indexes:
                if end_index >= num_tokens or end_index not in orig_map:
                    continue
                if end_index < start_index or end_index - start_index + 1 > config.max_answer_length:
                    continue
                prelim.append(_Prelim(feature_index, start_index, end_index,
                                      result.start_logits[start_index], result.end_logits[end_index]))
    if config.version_2_with_negative:
        prelim.append(_Prelim(min_null_feature_index, 0, 0, null_start_logit, null_end_logit))
    prelim.sort(key=lambda p: p.start_logit + p.end_logit, reverse=True)
    return prelim, score_null, null_start_logit, null_end_logit


def _predict_example(example: SquadExample, features: Sequence[SquadFeature], results: Sequence[RawResult],
                     config: PredictionConfig, basic) -> tuple[list, str, float | None, int]:
    prelim, score_null, null_start_logit, null_end_logit = _prelim_predictions(features, results, config)

    seen: set[str] = set()
    nbest: list[_NBest] = []
    for pred in prelim:
        if len(nbest) >= config.n_best_size:
            break
        if pred.start_index > 0:  # a span
            final_text = span_text(example, features[pred.feature_index], pred.start_index, pred.end_index,
                                   config.do_lower_case, basic)
            if final_text in seen:
                continue
        else:
            final_text = ""
        seen.add(final_text)
        nbest.append(_NBest(final_text, pred.start_logit, pred.end_logit))

    if config.version_2_with_negative and "" not in seen:
        nbest.append(_NBest("", null_start_logit, null_end_logit))
    if not nbest:
        nbest.append(_NBest("empty", 0.0, 0.0))

    total_scores = [e.start_logit + e.end_logit for e in nbest]
    best_non_null = next((e for e in nbest if e.text), None)
    probs = compute_softmax(total_scores)
    nbest_json = []
    for entry, prob in zip(nbest, probs):
        output = collections.OrderedDict()
        output["text"] = entry.text
        output["probability"] = prob
        output["start_logit"] = entry.start_logit
        output["end_logit"] = entry.end_logit
        nbest_json.append(output)

    if not config.version_2_with_negative:
        return nbest_json, nbest_json[0]["text"], None, 0
    if best_non_null is None:  # every n-best entry is null: the original crashes here
        return nbest_json, "", config.null_score_diff_threshold + 1.0, 1
    score_diff = score_null - best_non_null.start_logit - best_non_null.end_logit
    text = "" if score_diff > config.null_score_diff_threshold else best_non_null.text
    return nbest_json, text, score_diff, 0


def apply_threshold(nbest: Mapping[str, list], null_odds: Mapping[str, float], threshold: float) -> dict[str, str]:
    """Re-decide v2.0 answers for a new ``null_score_diff_threshold`` from saved n-best lists and
    null odds (the same decision as :func:`write_predictions`, without the logits)."""
    out = collections.OrderedDict()
    for qid, entries in nbest.items():
        best = next((e["text"] for e in entries if e["text"]), None)
        out[qid] = "" if best is None or null_odds[qid] > threshold else best
    return out


# ----------------------------------------------------------------------------- files
def make_run_info(predict_file: str | Path, vocab_file: str | Path, featurize_config: FeaturizeConfig,
                  prediction_config: PredictionConfig) -> dict:
    """The content of ``squad_run.json``: everything needed to re-run ``write_predictions``
    from ``raw_logits.jsonl`` without the model (``bert squad-threshold --apply``)."""
    return {
        "predict_file": str(predict_file),
        "vocab_file": str(vocab_file),
        "do_lower_case": bool(prediction_config.do_lower_case),
        "max_seq_length": featurize_config.max_seq_length,
        "doc_stride": featurize_config.doc_stride,
        "max_query_length": featurize_config.max_query_length,
        "n_best_size": prediction_config.n_best_size,
        "max_answer_length": prediction_config.max_answer_length,
        "version_2_with_negative": bool(prediction_config.version_2_with_negative),
        "null_score_diff_threshold": float(prediction_config.null_score_diff_threshold),
    }


def write_run_info(output_dir: str | Path, info: dict) -> Path:
    """Write ``squad_run.json`` atomically (see :func:`make_run_info`)."""
    path = Path(output_dir) / SQUAD_RUN_FILE
    with atomic_write(path, "w") as fh:
        fh.write(json.dumps(info, indent=2) + "\n")
    return path


def _dump_json(path: Path, obj) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(json.dumps(obj, indent=4) + "\n")


def write_prediction_files(output_dir: str | Path, preds: SquadPredictions) -> dict[str, Path]:
    """Write ``predictions.json``, ``nbest_predictions.json`` and (v2.0) ``null_odds.json``
    atomically, formatted as the original (``json.dumps(..., indent=4)`` + newline)."""
    output_dir = Path(output_dir)
    paths = {"predictions": output_dir / PREDICTIONS_FILE, "nbest": output_dir / NBEST_FILE}
    _dump_json(paths["predictions"], preds.predictions)
    _dump_json(paths["nbest"], preds.nbest)
    if preds.version_2_with_negative:
        paths["null_odds"] = output_dir / NULL_ODDS_FILE
        _dump_json(paths["null_odds"], preds.null_odds)
    return paths


def predictions_from_logits(predict_file: str | Path, logits_file: str | Path, tokenizer,
                            featurize_config: FeaturizeConfig = FeaturizeConfig(),
                            prediction_config: PredictionConfig = PredictionConfig()) -> SquadPredictions:
    """Re-run :func:`write_predictions` without the model: re-read ``predict_file``,
    re-featurize it with ``tokenizer`` (deterministic, so the features match the saved
    logits' ``unique_id``\\ s) and stream the saved logits."""
    from .squad import read_squad_examples

    examples = read_squad_examples(predict_file, is_training=False)
    features = convert_examples_to_features(examples, tokenizer, featurize_config.max_seq_length,
                                            featurize_config.doc_stride, featurize_config.max_query_length,
                                            is_training=False)
    return write_predictions(examples, features, read_raw_logits(logits_file), prediction_config)
