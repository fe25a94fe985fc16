"""Benchmark: bert's pure-Python tokenizer vs Hugging Face ``tokenizers`` (one thread).

    python bench/tokenize.py [--data DIR] [--runs 5]

The text is every real sentence of the shared reference data (GLUE MRPC/CoLA/SST-2 text
columns, SQuAD contexts and questions) and the vocabulary is Google's uncased vocab.txt.
It first checks that both give identical ids on all of the text (HF configured as the
original: lower-casing + accent stripping, CJK split, WordPiece with 200 chars per word, no
special tokens added), then times both, interleaved, each run from a cold start (a fresh
bert tokenizer, so its chunk cache starts empty). HF is timed as ``encode_batch`` (one
thread: RAYON_NUM_THREADS=1), per-line ``encode`` and ``encode_batch_fast`` where it exists;
the ratio on the LAST line is against the fastest of them.
"""

from __future__ import annotations

import os
import sys

# This file is named like the stdlib ``tokenize`` module: keep its folder off the import path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
os.environ["RAYON_NUM_THREADS"] = "1"  # must be set before tokenizers is imported
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bert_cli.text.tokenization import FullTokenizer  # noqa: E402

# (file, text columns, has header)
GLUE_FILES = [
    ("MRPC/train.tsv", (3, 4), True),
    ("MRPC/dev.tsv", (3, 4), True),
    ("MRPC/test.tsv", (3, 4), True),
    ("CoLA/train.tsv", (3,), False),
    ("CoLA/val.tsv", (3,), False),
    ("CoLA/dev.tsv", (3,), False),
    ("CoLA/test.tsv", (1,), True),
    ("SST-2/train.tsv", (0,), True),
    ("SST-2/dev.tsv", (0,), True),
    ("SST-2/test.tsv", (1,), True),
]
SQUAD_FILES = ["dev-v1.1.json", "dev-v2.0.cs224n-split.json"]


def load_texts(data: Path) -> list[str]:
    """All real sentences of the shared data, one text per item, in a fixed order."""
    texts: list[str] = []
    for name, cols, header in GLUE_FILES:
        path = data / "glue" / name
        if not path.is_file():
            continue
        with open(path, encoding="utf-8-sig", newline="") as fh:
            rows = csv.reader(fh, delimiter="\t", quotechar=None)
            for i, row in enumerate(rows):
                if header and i == 0:
                    continue
                texts.extend(row[c] for c in cols if c < len(row))
    for name in SQUAD_FILES:
        path = data / "squad" / name
        if not path.is_file():
            continue
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
            for paragraph in article["paragraphs"]:
                texts.append(paragraph["context"])
                texts.extend(qa["question"] for qa in paragraph["qas"])
    return texts


def hf_tokenizer(vocab: Path):
    """``BertWordPieceTokenizer`` configured as the original (200 chars per word, like it)."""
    from tokenizers import BertWordPieceTokenizer
    from tokenizers.models import WordPiece

    tok = BertWordPieceTokenizer(
        str(vocab), lowercase=True, strip_accents=None, clean_text=True, handle_chinese_chars=True
    )
    tok._tokenizer.model = WordPiece.from_file(str(vocab), unk_token="[UNK]", max_input_chars_per_word=200)
    return tok


def time_it(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="shared reference data")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each (median reported)")
    args = parser.parse_args(argv)

    vocab = args.data / "vocab" / "uncased" / "vocab.txt"
    if not vocab.is_file():
        print(f"error: {vocab} not found (give --data DIR)", file=sys.stderr)
        return 3
    texts = load_texts(args.data)
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    mb = nbytes / 1e6
    print(f"text: {len(texts)} lines, {mb:.2f} MB, {sum(not t.isascii() for t in texts)} non-ASCII lines")

    hf = hf_tokenizer(vocab)
    ours = FullTokenizer(vocab, do_lower_case=True)
    hf_ids = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    our_ids = [ours.encode(t) for t in texts]
    bad = [i for i, (a, b) in enumerate(zip(our_ids, hf_ids)) if a != b]
    print(f"lines with different ids (bert vs hf tokenizers): {len(bad)} of {len(texts)}")
    for i in bad[:5]:
        print(f"  line {i}: {texts[i][:120]!r}")
        print(f"    bert: {ours.convert_ids_to_tokens(our_ids[i])[:40]}")
        print(f"    hf:   {ours.convert_ids_to_tokens(hf_ids[i])[:40]}")
    tok_ok = all(ours.tokenize(t) == ours.convert_ids_to_tokens(ids) for t, ids in zip(texts, our_ids))
    print(f"tokenize() agrees with encode(): {tok_ok}")

    # Each bert run builds a fresh tokenizer inside the timed region: cold cache + vocab load.
    runners = {
        "bert encode (ids)": lambda: _bert_encode(vocab, texts),
        "bert tokenize (strings)": lambda: _bert_tokenize(vocab, texts),
        "hf encode_batch": lambda: hf.encode_batch(texts, add_special_tokens=False),
        "hf encode per line": lambda: [hf.encode(t, add_special_tokens=False) for t in texts],
    }
    if hasattr(hf._tokenizer, "encode_batch_fast"):
        runners["hf encode_batch_fast"] = lambda: hf._tokenizer.encode_batch_fast(texts, add_special_tokens=False)

    walls: dict[str, list[float]] = {name: [] for name in runners}
    cpus: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(max(1, args.runs)):
        for name, fn in runners.items():
            wall, cpu = time_it(fn)
            walls[name].append(wall)
            cpus[name].append(cpu)
    speeds = {name: mb / statistics.median(ts) for name, ts in walls.items()}
    cpu_speeds = {name: mb / statistics.median(ts) for name, ts in cpus.items()}
    print(f"{'':26s} {'wall MB/s':>10s} {'CPU MB/s':>10s}   (medians of {args.runs} interleaved runs)")
    for name in runners:
        print(f"{name:26s} {speeds[name]:10.2f} {cpu_speeds[name]:10.2f}")
    best_hf = max((s, n) for n, s in speeds.items() if n.startswith("hf"))
    best_hf_cpu = max(s for n, s in cpu_speeds.items() if n.startswith("hf"))
    print(f"fastest hf (wall): {best_hf[1]}")
    print(f"CPU-time ratio bert/hf_tokenizers: {cpu_speeds['bert encode (ids)'] / best_hf_cpu:.1f}x")
    print(f"ratio bert/hf_tokenizers: {speeds['bert encode (ids)'] / best_hf[0]:.1f}x")
    return 0


def _bert_encode(vocab: Path, texts: list[str]) -> None:
    encode = FullTokenizer(vocab).encode
    for t in texts:
        encode(t)


def _bert_tokenize(vocab: Path, texts: list[str]) -> None:
    tokenize = FullTokenizer(vocab).tokenize
    for t in texts:
        tokenize(t)


if __name__ == "__main__":
    sys.exit(main())
