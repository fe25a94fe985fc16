"""Task readers: the real GLUE files, hand-made fixtures in the exact GLUE/XNLI layouts,
generic CSV/TSV/JSONL tasks, predict input and the error paths (file + 1-based line)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bert_cli.errors import InputError, NotFoundError, UsageError
from bert_cli.text import metrics as M
from bert_cli.text.predict_input import read_predict_input, read_text_lines
from bert_cli.text.tables import read_tsv
from bert_cli.text.task_base import InputExample
from bert_cli.text.tasks import get_task


def write_tsv(path: Path, rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


def original_rows(path: Path) -> list[list[str]]:
    """The original's ``_read_tsv``, independently: csv.reader, tab, no quote character."""
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter="\t", quotechar=None))


# ============================================================================= real GLUE files
def test_mrpc_real_counts_and_original_equivalence(shared_data):
    task = get_task("mrpc")
    data = shared_data / "glue" / "MRPC"
    expected_counts = {"train": (3668, 2474), "dev": (408, 279), "test": (1725, 0)}
    for split, (rows, positive) in expected_counts.items():
        examples = list(task.read(data, split))
        assert len(examples) == rows
        assert sum(e.label == "1" for e in examples) == positive
        # the original MrpcProcessor rules, re-derived from the raw rows
        lines = original_rows(data / f"{split}.tsv")
        expected = [
            InputExample(f"{split}-{i}", line[3], line[4], "0" if split == "test" else line[0])
            for i, line in enumerate(lines)
            if i > 0
        ]
        assert examples == expected
    assert Counter(e.label for e in task.read(data, "test")) == {"0": 1725}


def test_mrpc_header_keeps_bom_and_quotes_are_literal(shared_data):
    path = shared_data / "glue" / "MRPC" / "dev.tsv"
    first = next(read_tsv(path))
    assert first == (1, ["\ufeffQuality", "#1 ID", "#2 ID", "#1 String", "#2 String"])
    dev = list(get_task("mrpc").read(path.parent, "dev"))
    assert dev[0].text_b.startswith('"The foodservice pie business')  # opening quote kept, no merge
    assert dev[0].guid == "dev-1"


def test_cola_real_dev_and_test(shared_data):
    task = get_task("cola")
    data = shared_data / "glue" / "CoLA"
    dev = list(task.read(data, "dev"))
    assert len(dev) == 1043 and sum(e.label == "1" for e in dev) == 721
    assert dev[0] == InputExample("dev-0", "The sailors rode the breeze clear of the rocks.", None, "1")
    test = list(task.read(data, "test"))
    assert test[0] == InputExample("test-1", "Bill whistled past the house.", None, "0")  # header skipped
    assert len(test) == len(original_rows(data / "test.tsv")) - 1
    assert {e.label for e in test} == {"0"}
    assert task.metric_names == (M.MCC,)


def test_sst2_real_files_with_changed_header(shared_data):
    task = get_task("SST-2")
    data = shared_data / "glue" / "SST-2"
    assert sum(1 for _ in task.read(data, "train")) == 67349
    dev = list(task.read(data, "dev"))
    assert len(dev) == 872 and sum(e.label == "1" for e in dev) == 444
    assert dev[0].text_a == "it 's a charming and often affecting journey . "
    test = list(task.read(data, "test"))
    assert test[0].text_a == "uneasy mishmash of styles and genres ." and test[0].label == "0"


# ============================================================================= MNLI / XNLI fixtures
MNLI_TRAIN_HEADER = (
    "index promptID pairID genre sentence1_binary_parse sentence2_binary_parse "
    "sentence1_parse sentence2_parse sentence1 sentence2 label1 gold_label"
).split()
MNLI_DEV_HEADER = MNLI_TRAIN_HEADER[:-1] + "label2 label3 label4 label5 gold_label".split()
MNLI_TEST_HEADER = MNLI_TRAIN_HEADER[:10]


def mnli_row(index: str, s1: str, s2: str, *labels: str) -> list[str]:
    return [index, "31193", "31193n", "government", "( ( x ) )", "( y )", "(ROOT x)", "(ROOT y)", s1, s2, *labels]


@pytest.fixture
def mnli_dir(tmp_path: Path) -> Path:
    write_tsv(tmp_path / "train.tsv", [MNLI_TRAIN_HEADER, mnli_row("0", 'He said "yes', "x y", "neutral", "neutral"),
                                       mnli_row("1", "a", "b", "entailment", "entailment")])
    write_tsv(tmp_path / "dev_matched.tsv", [MNLI_DEV_HEADER, mnli_row("7", "c", "d", *["contradiction"] * 6)])
    write_tsv(tmp_path / "dev_mismatched.tsv", [MNLI_DEV_HEADER, mnli_row("9", "e", "f", *["neutral"] * 5, "entailment")])
    write_tsv(tmp_path / "test_matched.tsv", [MNLI_TEST_HEADER, mnli_row("0", "g", "h")])
    write_tsv(tmp_path / "test_mismatched.tsv", [MNLI_TEST_HEADER, mnli_row("5", "i", "j")])
    return tmp_path


def test_mnli_fixture_all_splits(mnli_dir):
    task = get_task("mnli")
    assert task.labels == ("contradiction", "entailment", "neutral")
    assert task.splits == ("train", "dev", "dev_mismatched", "test", "test_mismatched")
    train = list(task.read(mnli_dir, "train"))
    assert train == [
        InputExample("train-0", 'He said "yes', "x y", "neutral"),
        InputExample("train-1", "a", "b", "entailment"),
    ]
    assert list(task.read(mnli_dir, "dev")) == [InputExample("dev_matched-7", "c", "d", "contradiction")]
    assert list(task.read(mnli_dir, "dev_mismatched")) == [InputExample("dev_mismatched-9", "e", "f", "entailment")]
    assert list(task.read(mnli_dir, "test")) == [InputExample("test-0", "g", "h", "contradiction")]
    assert list(task.read(mnli_dir, "test_mismatched")) == [InputExample("test_mismatched-5", "i", "j", "contradiction")]


def test_mnli_row_without_label_column_is_ragged(mnli_dir):
    write_tsv(mnli_dir / "train.tsv", [MNLI_TRAIN_HEADER, mnli_row("0", "a", "b", "neutral", "neutral"), mnli_row("1", "a", "b")])
    with pytest.raises(InputError) as err:
        list(get_task("mnli").read(mnli_dir, "train"))
    assert err.value.line == 3 and f"{mnli_dir / 'train.tsv'}:3:" in str(err.value)
    assert "at least 11" in str(err.value)


XNLI_HEADER = (
    "language gold_label sentence1_binary_parse sentence2_binary_parse sentence1_parse sentence2_parse "
    "sentence1 sentence2 promptID pairID genre label1 label2 label3 label4 label5"
).split()


def xnli_row(lang: str, label: str, s1: str, s2: str) -> list[str]:
    return [lang, label, "", "", "", "", s1, s2, "1", "1a", "facetoface", label, label, label, label, label]


@pytest.fixture
def xnli_dir(tmp_path: Path) -> Path:
    write_tsv(tmp_path / "multinli" / "multinli.train.zh.tsv",
              [["premise", "hypo", "label"], ["你好", "世界", "contradictory"], ["甲", "乙", "entailment"]])
    write_tsv(tmp_path / "multinli" / "multinli.train.de.tsv", [["premise", "hypo", "label"], ["Hallo", "Welt", "neutral"]])
    rows = [XNLI_HEADER, xnli_row("en", "neutral", "a", "b"), xnli_row("zh", "entailment", "中", "文"),
            xnli_row("de", "contradiction", "c", "d"), xnli_row("zh", "neutral", "天", "地")]
    write_tsv(tmp_path / "xnli.dev.tsv", rows)
    write_tsv(tmp_path / "xnli.test.tsv", rows[:3])
    return tmp_path


def test_xnli_original_setup(xnli_dir):
    task = get_task("xnli")
    assert task.split_files["train"] == "multinli/multinli.train.zh.tsv"
    assert list(task.read(xnli_dir, "train")) == [
        InputExample("train-1", "你好", "世界", "contradiction"),  # "contradictory" renamed
        InputExample("train-2", "甲", "乙", "entailment"),
    ]
    # rows of other languages skipped; guids keep the file's row index
    assert list(task.read(xnli_dir, "dev")) == [
        InputExample("dev-2", "中", "文", "entailment"),
        InputExample("dev-4", "天", "地", "neutral"),
    ]
    assert list(task.read(xnli_dir, "test")) == [InputExample("test-2", "中", "文", "entailment")]


def test_xnli_language_option(xnli_dir):
    task = get_task("xnli", language="de")
    assert list(task.read(xnli_dir, "train")) == [InputExample("train-1", "Hallo", "Welt", "neutral")]
    assert list(task.read(xnli_dir, "dev")) == [InputExample("dev-3", "c", "d", "contradiction")]
    with pytest.raises(InputError, match="no rows for language 'fr'"):
        list(get_task("xnli", language="fr").read(xnli_dir, "dev"))
    with pytest.raises(NotFoundError) as err:
        get_task("xnli", language="fr").read(xnli_dir, "train")
    assert err.value.hint == "bert download xnli"


# ============================================================================= other GLUE layouts
def test_qqp_qnli_rte_wnli_fixtures(tmp_path):
    qqp = tmp_path / "QQP"
    write_tsv(qqp / "train.tsv", [["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                                  ["133273", "213221", "213222", 'How is "life"?', "Why?", "1"]])
    write_tsv(qqp / "test.tsv", [["id", "question1", "question2"], ["0", "q1", "q2"]])
    assert list(get_task("qqp").read(qqp, "train")) == [InputExample("train-133273", 'How is "life"?', "Why?", "1")]
    assert list(get_task("qqp").read(qqp, "test")) == [InputExample("test-0", "q1", "q2", "0")]
    assert get_task("qqp").metric_names == (M.ACCURACY, M.F1)

    for name, label, labels in (("qnli", "not_entailment", ("entailment", "not_entailment")),
                                ("rte", "entailment", ("entailment", "not_entailment")),
                                ("wnli", "1", ("0", "1"))):
        d = tmp_path / name
        first = ["index", "question", "sentence", "label"] if name == "qnli" else ["index", "sentence1", "sentence2", "label"]
        write_tsv(d / "dev.tsv", [first, ["3", "A?", "B.", label]])
        write_tsv(d / "test.tsv", [first[:3], ["4", "C?", "D."]])
        task = get_task(name)
        assert task.labels == labels and task.metric_names == (M.ACCURACY,)
        assert list(task.read(d, "dev")) == [InputExample("dev-3", "A?", "B.", label)]
        assert list(task.read(d, "test")) == [InputExample("test-4", "C?", "D.", labels[0])]


STSB_HEADER = "index genre filename year old_index source1 source2 sentence1 sentence2 score".split()


def test_stsb_regression_fixture(tmp_path):
    write_tsv(tmp_path / "train.tsv", [STSB_HEADER, ["0", "main-captions", "MSRvid", "2012test", "0001", "none", "none",
                                                     "A plane is taking off.", "An air plane is taking off.", "5.000"],
                                       ["1", "main-news", "x", "2012", "2", "none", "none", "a", "b", "0.8"]])
    write_tsv(tmp_path / "test.tsv", [STSB_HEADER[:9], ["0", "g", "f", "y", "o", "s", "s", "c", "d"]])
    task = get_task("sts-b")
    assert task.is_regression and task.num_labels == 1 and task.metric_names == (M.PEARSON, M.SPEARMAN)
    train = list(task.read(tmp_path, "train"))
    assert train[0] == InputExample("train-0", "A plane is taking off.", "An air plane is taking off.", 5.0)
    assert train[1].label == 0.8 and task.label_id(train[1].label) == 0.8
    assert list(task.read(tmp_path, "test")) == [InputExample("test-0", "c", "d", 0.0)]


@pytest.mark.parametrize("score", ["high", "nan", ""])
def test_stsb_non_numeric_score(tmp_path, score):
    write_tsv(tmp_path / "dev.tsv", [STSB_HEADER, ["0", "g", "f", "y", "o", "s", "s", "a", "b", "1.0"],
                                     ["1", "g", "f", "y", "o", "s", "s", "a", "b", score]])
    with pytest.raises(InputError) as err:
        list(get_task("stsb").read(tmp_path, "dev"))
    assert err.value.line == 3 and str(err.value).startswith(f"{tmp_path / 'dev.tsv'}:3: score")


# ============================================================================= errors
MRPC_HEADER = ["\ufeffQuality", "#1 ID", "#2 ID", "#1 String", "#2 String"]


def test_literal_quotes_never_merge_lines(tmp_path):
    write_tsv(tmp_path / "train.tsv", [MRPC_HEADER, ["1", "1", "2", '"Open quote', 'x "a\tb" y'],
                                       ["0", "3", "4", "c", 'd"']])
    examples = list(get_task("mrpc").read(tmp_path, "train"))
    # '"a\tb"' is NOT one quoted field: the tab splits it (5 fields -> 6), text_b = 'x "a'
    assert [(e.text_a, e.text_b, e.label) for e in examples] == [('"Open quote', 'x "a', "1"), ("c", 'd"', "0")]


def test_ragged_row_names_file_and_line(tmp_path):
    write_tsv(tmp_path / "dev.tsv", [MRPC_HEADER, ["1", "1", "2", "a", "b"], ["0", "3", "4", "only text_a"]])
    with pytest.raises(InputError) as err:
        list(get_task("mrpc").read(tmp_path, "dev"))
    assert (err.value.path, err.value.line) == (str(tmp_path / "dev.tsv"), 3)
    assert "expected at least 5 tab-separated columns, found 4" in str(err.value)


def test_unknown_label_in_train_and_dev(tmp_path):
    write_tsv(tmp_path / "train.tsv", [MRPC_HEADER, ["1", "1", "2", "a", "b"], ["yes", "3", "4", "c", "d"]])
    with pytest.raises(InputError, match=r"train\.tsv:3: unknown label 'yes'"):
        list(get_task("mrpc").read(tmp_path, "train"))
    write_tsv(tmp_path / "dev.tsv", [["gj04", "2", "", "text"]])
    with pytest.raises(InputError, match=r"dev\.tsv:1: unknown label '2'"):
        list(get_task("cola").read(tmp_path, "dev"))


def test_empty_split_and_missing_file(tmp_path):
    write_tsv(tmp_path / "dev.tsv", [MRPC_HEADER])
    with pytest.raises(InputError, match="no examples in the dev split") as err:
        list(get_task("mrpc").read(tmp_path, "dev"))
    assert err.value.path == str(tmp_path / "dev.tsv")
    with pytest.raises(NotFoundError) as err:
        get_task("mrpc").read(tmp_path, "train")  # raised at call time, not at iteration
    assert err.value.hint == "bert download glue-mrpc" and "train.tsv" in str(err.value)


def test_invalid_utf8_is_an_input_error_streamed(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes(b"h\th\th\th\th\n1\t1\t2\ta\tb\n0\t3\t4\t\xff\xfe\td\n")
    examples = get_task("mrpc").read(tmp_path, "train")
    assert next(examples).text_a == "a"  # streaming: the bad line is not read yet
    with pytest.raises(InputError) as err:
        next(examples)
    assert err.value.line == 3 and "UTF-8" in str(err.value)


def test_registry_usage_errors():
    with pytest.raises(UsageError, match="unknown task 'squad'"):
        get_task("squad")
    with pytest.raises(UsageError, match="takes no option"):
        get_task("mrpc", language="de")
    with pytest.raises(UsageError, match="no split 'dev_mismatched'"):
        get_task("mrpc").read(".", "dev_mismatched")
    assert get_task("mrpc", language=None).name == "mrpc"  # None options are ignored


def test_label_ids_follow_label_order():
    task = get_task("mnli")
    assert task.label_map() == {"contradiction": 0, "entailment": 1, "neutral": 2}
    assert task.label_id("neutral") == 2 and task.num_labels == 3
    with pytest.raises(InputError):
        task.label_id("contradictory")


# ============================================================================= generic tasks
def test_generic_csv_with_quotes_header_names_and_discovery(tmp_path):
    (tmp_path / "train.csv").write_text(
        'id,review,label\n1,"Great, really ""great""",pos\n2,"two\nlines",neg\n3,meh,neutral\n', encoding="utf-8"
    )
    (tmp_path / "dev.csv").write_text("id,review,label\n9,ok,pos\n10,bad,awful\n", encoding="utf-8")
    task = get_task("csv", text_a_column="review", label_column="label")
    assert task.labels is None
    train = list(task.read(tmp_path, "train"))
    assert train[0] == InputExample("train-2", 'Great, really "great"', None, "pos")
    assert train[1].text_a == "two\nlines" and train[2].guid == "train-5"  # guid = first line of the record
    resolved = task.resolve_labels(tmp_path)
    assert resolved.labels == ("neg", "neutral", "pos") and resolved.metric_names == (M.ACCURACY,)
    with pytest.raises(InputError, match=r"dev\.csv:3: unknown label 'awful'"):
        list(resolved.read(tmp_path, "dev"))


def test_generic_labels_sorted_numerically_and_stable(tmp_path):
    write_tsv(tmp_path / "train.tsv", [["10", "x"], ["2", "y"], ["1", "z"], ["2", '"q']])
    task = get_task("tsv", text_a_column="1", label_column=0, header=False)
    assert task.discover_labels(tmp_path) == ("1", "2", "10")
    assert list(task.read(tmp_path, "train"))[3].text_a == '"q'  # TSV: literal quotes


def test_generic_multilabel_separator_and_jsonl_lists(tmp_path):
    write_tsv(tmp_path / "train.tsv", [["text", "tags"], ["a", "sports, news"], ["b", "news"], ["c", ""]])
    task = get_task("tsv", text_a_column="text", label_column="tags", label_separator=",")
    examples = list(task.read(tmp_path, "train"))
    assert [e.label for e in examples] == [frozenset({"sports", "news"}), frozenset({"news"}), frozenset()]
    task = task.resolve_labels(tmp_path)
    assert task.is_multilabel and task.labels == ("news", "sports")
    assert task.label_id(examples[0].label) == (1, 1) and task.metric_names == (M.MICRO_F1, M.EXACT_MATCH)

    lines = [{"q": "x", "p": "y", "labels": ["b", "a"]}, {"q": "z", "p": "w", "labels": []}]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    jtask = get_task("jsonl", text_a_column="q", text_b_column="p", label_column="labels", multilabel=True)
    assert list(jtask.read(tmp_path, "train")) == [
        InputExample("train-1", "x", "y", frozenset({"a", "b"})),
        InputExample("train-2", "z", "w", frozenset()),
    ]


def test_generic_jsonl_errors_and_test_without_labels(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"t": "a", "y": 1}\n{"t": "b"}\n', encoding="utf-8")
    task = get_task("jsonl", text_a_column="t", label_column="y")
    with pytest.raises(InputError, match=r"train\.jsonl:2: missing 'y'"):
        list(task.read(tmp_path, "train"))
    (tmp_path / "test.jsonl").write_text('{"t": "a"}\n{"t": "b", "y": 0}\n', encoding="utf-8")
    assert [e.label for e in task.read(tmp_path, "test")] == [None, "0"]
    (tmp_path / "dev.jsonl").write_text('{"t": "a", "y": 1}\n{"t": \n', encoding="utf-8")
    with pytest.raises(InputError, match=r"dev\.jsonl:2: invalid JSON"):
        list(task.read(tmp_path, "dev"))


def test_generic_column_errors(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\nhello,1\nworld\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"train\.csv:1: column 'sentence' not in the header"):
        list(get_task("csv", text_a_column="sentence", label_column="label").read(tmp_path, "train"))
    with pytest.raises(InputError, match=r"train\.csv:3: expected at least 2 comma-separated columns, found 1"):
        list(get_task("csv", text_a_column="text", label_column="label").read(tmp_path, "train"))
    with pytest.raises(UsageError, match="no header"):
        list(get_task("csv", text_a_column="text", label_column="1", header=False).read(tmp_path, "train"))
    with pytest.raises(UsageError, match="label column"):
        get_task("csv", text_a_column="text")


def test_generic_regression_and_explicit_files(tmp_path):
    (tmp_path / "scores.csv").write_text("a,b,s\nx,y,3.5\nz,w,oops\n", encoding="utf-8")
    task = get_task("csv", text_a_column="a", text_b_column="b", label_column="s", regression=True,
                    files={"train": tmp_path / "scores.csv"})
    examples = task.read("/nonexistent", "train")  # an absolute file ignores the data dir
    assert next(examples) == InputExample("train-2", "x", "y", 3.5)
    with pytest.raises(InputError, match=r"scores\.csv:3: score 'oops' is not a number"):
        next(examples)


def test_stored_labels_fix_the_order(tmp_path):
    (tmp_path / "train.csv").write_text("t,l\na,b\n", encoding="utf-8")
    task = get_task("csv", text_a_column="t", label_column="l", labels=["b", "a"])
    assert task.resolve_labels(tmp_path).labels == ("b", "a") and task.label_id("a") == 1


# ============================================================================= predict input
def test_predict_lines_pairs_and_blank_lines(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("Who was Jim Henson ? ||| Jim Henson was a puppeteer\n\n  single sentence  \na ||| b ||| c\n",
                    encoding="utf-8")
    assert list(read_text_lines(path)) == [
        InputExample("0", "Who was Jim Henson ?", "Jim Henson was a puppeteer"),
        InputExample("1", ""),  # kept, as the original: output line i = input line i
        InputExample("2", "single sentence"),
        InputExample("3", "a ||| b", "c"),  # greedy first group, like the original regex
    ]
    assert [e.guid for e in read_predict_input(path, skip_blank=True)] == ["0", "1", "2"]


def test_predict_tables(tmp_path):
    (tmp_path / "in.csv").write_text('q,p\n"a, b",c\nd,e\n', encoding="utf-8")
    assert list(read_predict_input(tmp_path / "in.csv", text_a_column="q", text_b_column="p")) == [
        InputExample("0", "a, b", "c"), InputExample("1", "d", "e")]
    (tmp_path / "in.data").write_text('{"s": "hello"}\n["x"]\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"in\.data:2: column 's' is a name but the line is a JSON array"):
        list(read_predict_input(tmp_path / "in.data", "jsonl", text_a_column="s"))
    with pytest.raises(UsageError, match="--text-a-column"):
        read_predict_input(tmp_path / "in.csv")
    with pytest.raises(NotFoundError):
        read_predict_input(tmp_path / "missing.txt")


def test_text_layer_does_not_import_tensorflow():
    code = "import sys, bert_cli.text.tasks, bert_cli.text.predict_input, bert_cli.text.metrics; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
