"""Entity-level NER metrics against the official conlleval script, the report and the writer."""

from __future__ import annotations

import random
import re
import shutil
import subprocess

import pytest

from bert_cli.text import ner
from bert_cli.text import ner_metrics as m


def _conlleval(script, path) -> str:
    with open(path, "rb") as fh:
        done = subprocess.run(["perl", str(script)], stdin=fh, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


@pytest.fixture(scope="module")
def conlleval(shared_data):
    if shutil.which("perl") is None:
        pytest.skip("perl is not installed")
    return shared_data / "ner" / "conlleval.pl"


def _corrupt(gold: list[list[str]], types: list[str], seed: int) -> list[list[str]]:
    """Deterministic damage of the kinds conlleval has rules for."""
    rng = random.Random(seed)
    out = []
    for tags in gold:
        pred = list(tags)
        for i, tag in enumerate(pred):
            r = rng.random()
            if r < 0.03:  # random tag swap
                pred[i] = rng.choice(["O"] + [f"{p}-{t}" for p in "BI" for t in types])
            elif r < 0.05 and tag.startswith("B-"):  # ill-formed I- starting a chunk
                pred[i] = "I-" + tag[2:]
            elif r < 0.07 and tag.startswith("I-"):  # type change inside a chunk
                pred[i] = "I-" + rng.choice([t for t in types if t != tag[2:]])
            elif r < 0.08 and tag == "O":  # a spurious chunk, sometimes an ill-formed one
                pred[i] = rng.choice("BI") + "-" + rng.choice(types)
            elif r < 0.09 and tag.startswith("I-"):  # a chunk cut in two
                pred[i] = "B-" + tag[2:]
        out.append(pred)
    return out


def _parse(text: str) -> dict:
    """The numbers conlleval prints: counts, overall and per type."""
    head = re.search(r"processed (\d+) tokens with (\d+) phrases; found: (\d+) phrases; correct: (\d+)\.", text)
    overall = re.search(r"accuracy:\s+([\d.]+)%; precision:\s+([\d.]+)%; recall:\s+([\d.]+)%; FB1:\s+([\d.]+)", text)
    types = {t: tuple(map(float, v[:3])) + (int(v[3]),) for t, *v in
             re.findall(r"^\s*(\S+): precision:\s+([\d.]+)%; recall:\s+([\d.]+)%; FB1:\s+([\d.]+)\s+(\d+)$", text, re.MULTILINE)}
    return {"counts": tuple(map(int, head.groups())), "overall": tuple(map(float, overall.groups())), "types": types}


# ----------------------------------------------------------------------------- vs conlleval.pl
def test_real_dev_with_corrupted_predictions_matches_conlleval(shared_data, conlleval, tmp_path):
    sentences, _ = ner.read_sentences(shared_data / "ner" / "conll2003" / "valid.txt")
    gold = [list(s.tags) for s in sentences]
    pred = _corrupt(gold, ["LOC", "MISC", "ORG", "PER"], seed=13)
    path = tmp_path / "predictions.txt"
    assert m.write_conll(path, [s.words for s in sentences], pred, gold) == 3250
    printed = _conlleval(conlleval, path)
    ours = m.evaluate(gold, pred)
    want = _parse(printed)
    o = ours.overall
    assert want["counts"] == (ours.tokens, o.gold, o.predicted, o.correct) == (51362, 5942, o.predicted, o.correct)
    assert 0.5 < ours.f1 < 0.95  # the damage is real
    assert want["overall"] == tuple(round(100 * x, 2) for x in (ours.accuracy, ours.precision, ours.recall, ours.f1))
    assert set(want["types"]) == set(ours.per_type) == {"LOC", "MISC", "ORG", "PER"}
    for kind, (p, r, f, found) in want["types"].items():
        s = ours.per_type[kind]
        assert (p, r, f, found) == (round(100 * s.precision, 2), round(100 * s.recall, 2), round(100 * s.f1, 2), s.predicted)
    assert m.format_conlleval(ours) == printed  # byte for byte


def test_fuzzed_tag_schemes_match_conlleval(conlleval, tmp_path):
    """Random sequences over every prefix conlleval has a rule for (B I E O [ ] . and
    unknown ones, hyphen-less tags, hyphens inside types): the same counts and text."""
    rng = random.Random(7)
    tags = ["O", "B-A", "I-A", "E-A", "S-A", "E", "[", "]", "B-B", "I-B", "E-B", "[-A", "]-B", ".-A", "B", "I", "X-A",
            "B-A-x", "I-A-x", "I-0", "B-0"]
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(400)]
    pred = [[t if rng.random() < 0.5 else rng.choice(tags) for t in g] for g in gold]
    path = tmp_path / "fuzz.txt"
    m.write_conll(path, [[f"w{i}" for i in range(len(g))] for g in gold], pred, gold)
    printed = _conlleval(conlleval, path)
    ours = m.format_conlleval(m.evaluate(gold, pred))
    assert printed.count("\n                 : precision") == 2  # Perl lists the "" type twice
    assert ours == printed


# ----------------------------------------------------------------------------- rules by hand
def test_ill_formed_i_and_type_changes_follow_conlleval():
    assert m.extract_chunks(["I-PER", "I-PER", "O", "B-LOC", "I-ORG", "I-ORG", "B-ORG"]) == [
        ("PER", 0, 2), ("LOC", 3, 4), ("ORG", 4, 6), ("ORG", 6, 7)]
    gold = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]]
    result = m.evaluate(gold, [["I-PER", "I-PER", "O", "B-LOC", "I-ORG"]])
    # I-PER starting the chunk still matches; LOC cut by a type change does not
    assert (result.overall.gold, result.overall.predicted, result.overall.correct) == (2, 3, 1)
    assert result.per_type["PER"].correct == 1 and result.per_type["LOC"].correct == 0
    assert result.per_type["ORG"] == m.ChunkScore(gold=0, predicted=1, correct=0)
    assert result.tokens == 5 and result.correct_tags == 3
    assert result.accuracy == pytest.approx(0.6)
    assert result.precision == pytest.approx(1 / 3) and result.recall == pytest.approx(0.5)
    assert result.f1 == pytest.approx(0.4)


def test_chunks_never_cross_sentences():
    # a chunk at the end of one sentence and an I- at the start of the next are two chunks
    result = m.evaluate([["O", "B-PER"], ["I-PER", "O"]], [["O", "B-PER"], ["I-PER", "O"]])
    assert (result.overall.gold, result.overall.correct) == (2, 2)
    # without the boundary it would be one chunk
    assert m.evaluate([["O", "B-PER", "I-PER", "O"]], [["O", "B-PER", "I-PER", "O"]]).overall.gold == 1


def test_empty_and_mismatched_inputs():
    result = m.evaluate([["O"]], [["O"]])
    assert (result.precision, result.recall, result.f1, result.accuracy) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="2 gold tags but 1 predicted"):
        m.evaluate([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="more gold sentences"):
        m.evaluate([["O"], ["O"]], [["O"]])


def test_as_dict_uses_eval_names():
    result = m.evaluate([["B-PER", "O"]], [["B-PER", "B-LOC"]])
    assert result.as_dict() == {"eval_precision": 0.5, "eval_recall": 1.0, "eval_f1": pytest.approx(2 / 3),
                                "eval_accuracy": 0.5}


# ----------------------------------------------------------------------------- report and writer
def test_format_report_table():
    result = m.evaluate([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "O"]])
    lines = m.format_report(result).splitlines()
    assert lines[0].split() == ["type", "precision", "recall", "f1", "gold", "predicted", "correct"]
    assert lines[2].split() == ["LOC", "0.00", "0.00", "0.00", "1", "0", "0"]
    assert lines[3].split() == ["PER", "100.00", "100.00", "100.00", "1", "1", "1"]
    assert lines[5].split() == ["overall", "100.00", "50.00", "66.67", "2", "1", "1"]
    assert lines[6] == "token accuracy: 75.00% of 4 tokens"


def test_write_conll_lines_and_no_leftovers(tmp_path):
    path = tmp_path / "out.txt"
    m.write_conll(path, [["New York", "x"], [""]], [["B-LOC", "O"], ["O"]], [["B-LOC", "O"], ["O"]])
    assert path.read_text() == "New_York B-LOC B-LOC\nx O O\n\n_ O O\n\n"
    m.write_conll(path, [["a"]], [["B-PER"]])
    assert path.read_text() == "a B-PER\n\n"
    with pytest.raises(ValueError):
        m.write_conll(tmp_path / "bad.txt", [["a", "b"]], [["O"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
