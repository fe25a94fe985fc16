"""``bert tokenize``'s engine: formats, order with workers, offsets, pairs, streaming, errors."""

from __future__ import annotations

import io
import json
import os
import select

import pytest

from bert_cli.errors import InputError, NotFoundError, UsageError
from bert_cli.ops import tokenize as ops
from bert_cli.ops.tokenize import TokenizeConfig, run_tokenize
from bert_cli.text.features import truncate_seq_pair
from bert_cli.text.basic_tokenizer import _strip_accents

LINES = [
    "John Johanson's house [MASK].\n",
    "UNwant\u00e9d, running ||| the second   sentence is here\r\n",
    "中文 and İstanbul ΟΔΟΣ\n",
    "\n",
    "no newline at the end",
]


def run(lines, **kw) -> tuple[list[str], dict]:
    out = io.StringIO()
    summary = run_tokenize(TokenizeConfig(vocab_file=kw.pop("vocab_file", None), **kw), (l.encode() for l in lines), out)
    text = out.getvalue()
    assert text.endswith("\n") or not lines
    return text.split("\n")[:-1], summary


def test_tokens_and_ids_formats(uncased_tokenizer):
    out, summary = run(LINES)
    assert len(out) == len(LINES)
    assert out[0] == "john johan ##son ' s house [ mask ] ."
    assert out[3] == ""
    assert out[4] == "no new ##line at the end"
    ids, _ = run(LINES, output_format="ids")
    for line, text_ids in zip(LINES, ids):
        assert text_ids == " ".join(map(str, uncased_tokenizer.encode(line.rstrip("\r\n"))))
    assert summary == {"lines": 5, "tokens": sum(len(o.split()) for o in out), "bytes": sum(len(l.encode()) for l in LINES)}


def test_jsonl_offsets_slice_back_to_the_input_line(shared_data):
    lines = (shared_data / "text" / "sample_text.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    lines += LINES
    out, _ = run(lines, output_format="jsonl")
    assert len(out) == len(lines)
    checked = 0
    for line, row in zip(lines, map(json.loads, out)):
        line = line.rstrip("\r\n")
        assert len(row["tokens"]) == len(row["ids"]) == len(row["offsets"])
        for token, (s, e) in zip(row["tokens"], row["offsets"]):
            piece = token[2:] if token.startswith("##") else token
            assert _strip_accents(line[s:e].lower()) == piece, (line, token, s, e)
            checked += 1
    assert checked > 500


def test_invalid_utf8_dropped_and_only_the_newline_stripped():
    out = io.StringIO()
    run_tokenize(TokenizeConfig(None, output_format="jsonl"), [b"caf\xc3\xa9 \xff ok\r\n", b"a\rb\n"], out)
    first, second = map(json.loads, out.getvalue().splitlines())
    assert first["tokens"] == ["cafe", "ok"] and first["offsets"] == [[0, 4], [6, 8]]
    assert second["tokens"] == ["a", "b"]  # a lone \r inside the line is just whitespace


def test_pairs_without_max_seq_length():
    out, _ = run(LINES, pairs=True)
    assert out[1] == "unwanted , running ||| the second sentence is here"
    assert out[0] == "john johan ##son ' s house [ mask ] ."  # no ' ||| ': a single sentence
    rows = [json.loads(r) for r in run(LINES, pairs=True, output_format="jsonl")[0]]
    line = LINES[1].rstrip("\r\n")
    assert rows[1]["tokens_b"] == ["the", "second", "sentence", "is", "here"]
    assert [line[s:e] for s, e in rows[1]["offsets_b"]] == ["the", "second", "sentence", "is", "here"]
    assert [line[s:e] for s, e in rows[1]["offsets"]] == ["UNwant\u00e9d", ",", "running"]
    assert "tokens_b" not in rows[0]


def test_max_seq_length_truncates_pairs_as_the_original(uncased_tokenizer):
    text_a = "one two three four five six seven"
    text_b = "eight nine ten"
    for max_len in (3, 4, 5, 6, 8, 13):
        out, _ = run([f"{text_a} ||| {text_b}\n"], pairs=True, max_seq_length=max_len, output_format="jsonl")
        row = json.loads(out[0])
        a, b = uncased_tokenizer.tokenize(text_a), uncased_tokenizer.tokenize(text_b)
        truncate_seq_pair(a, b, max_len - 3)
        # As the original: a B truncated to nothing leaves no second [SEP] (`if tokens_b:`).
        second = [*b, "[SEP]"] if b else []
        assert row["tokens"] == ["[CLS]", *a, "[SEP]", *second]
        n = len(row["tokens"])
        assert row["segment_ids"] == [0] * (len(a) + 2) + [1] * len(second) + [0] * (max_len - n)
        assert len(row["input_ids"]) == len(row["input_mask"]) == max_len
        assert row["offsets"][0] is None and row["offsets"][-1] is None
        toks, _ = run([f"{text_a} ||| {text_b}\n"], pairs=True, max_seq_length=max_len)
        assert toks[0].split() == row["tokens"]  # tokens format: the same sequence, unpadded
        ids, _ = run([f"{text_a} ||| {text_b}\n"], pairs=True, max_seq_length=max_len, output_format="ids")
        assert ids[0] == " ".join(map(str, row["input_ids"][: len(row["tokens"])]))


def test_max_seq_length_single_keeps_the_first_tokens():
    out, _ = run(["a b c d e f\n"], max_seq_length=5)
    assert out == ["[CLS] a b c [SEP]"]


def test_workers_keep_the_order(monkeypatch, shared_data):
    lines = (shared_data / "text" / "sample_text.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    monkeypatch.setattr(ops, "BATCH_LINES", 7)  # many small batches over two processes
    for fmt in ("ids", "jsonl"):
        one, s1 = run(lines, output_format=fmt)
        two, s2 = run(lines, output_format=fmt, workers=2)
        assert two == one and s1 == s2 and s1["lines"] == len(lines)


def test_streaming_writes_each_line_before_reading_the_next():
    read_fd, write_fd = os.pipe()
    out = io.TextIOWrapper(os.fdopen(write_fd, "wb"), encoding="utf-8")

    def inputs():
        yield b"first line\n"
        ready, _, _ = select.select([read_fd], [], [], 5)
        assert ready, "the first output line was not written before the second input line was read"
        assert os.read(read_fd, 100) == b"first line\n"
        raise RuntimeError("input failed")

    with pytest.raises(RuntimeError, match="input failed"):
        run_tokenize(TokenizeConfig(None), inputs(), out)
    out.close()
    os.close(read_fd)


def test_keep_special_tokens():
    out, _ = run(["a [MASK] b [SEP]\n"], keep_special_tokens=True)
    assert out == ["a [MASK] b [SEP]"]


def test_cased_and_chinese_vocabularies(shared_data):
    cased = shared_data / "vocab" / "cased" / "vocab.txt"
    line_of = {t: i for i, t in enumerate(cased.read_text(encoding="utf-8").splitlines())}
    # case and accent kept ("Café" is one cased entry); CJK split per character; 歌 is not in it
    out, _ = run(["Café 谷歌\n"], vocab_file=cased, do_lower_case=False)
    assert out == ["Café 谷 [UNK]"]
    ids, _ = run(["Café 谷歌\n"], vocab_file=cased, do_lower_case=False, output_format="ids")
    assert ids == [" ".join(str(line_of[t]) for t in ("Café", "谷", "[UNK]"))]
    lowered, _ = run(["Café 谷歌\n"], vocab_file=cased, do_lower_case=True)
    assert lowered == ["cafe 谷 [UNK]"]  # lower-casing strips the accent
    out, _ = run(["谷歌BERT\n"], vocab_file=shared_data / "vocab" / "chinese" / "vocab.txt")
    assert out[0].split()[:2] == ["谷", "歌"]


def test_errors(tmp_path):
    with pytest.raises(NotFoundError) as err:
        run([], vocab_file=tmp_path / "nope.txt")
    assert err.value.exit_code == 3 and "nope.txt" in str(err.value)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(InputError, match="empty.txt"):
        run([], vocab_file=tmp_path / "empty.txt")
    (tmp_path / "nounk.txt").write_text("a\nb\n")
    with pytest.raises(InputError, match="nounk.txt"):
        run([], vocab_file=tmp_path / "nounk.txt")
    with pytest.raises(UsageError):
        run([], output_format="xml")
    with pytest.raises(UsageError):
        run([], workers=0)
    with pytest.raises(UsageError):
        run([], pairs=True, max_seq_length=2)


class CountingOut(io.StringIO):
    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


@pytest.mark.parametrize("flush, expected", [(None, 1), (False, 1), (True, 4)])
def test_flush_policy(flush, expected):
    out = CountingOut()
    run_tokenize(TokenizeConfig(None), [b"a\n", b"b\n", b"c\n"], out, flush=flush)
    assert out.getvalue() == "a\nb\nc\n"
    assert out.flushes == expected  # per line (+ the final one) only when asked or a pipe/tty


def test_no_tensorflow_import():
    import subprocess
    import sys

    code = "import sys, bert_cli.ops.tokenize, bert_cli.text.features; assert 'tensorflow' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
