"""Benchmark of ``bert make-pretrain-data``: throughput and peak memory, exact vs sharded.

Builds a corpus of at least ``--size-mb`` MB from the real text in ``../shared/data`` (SQuAD
contexts split into sentences, one document per paragraph; GLUE MRPC/CoLA/SST-2 sentences in
documents of 2-8 sentences; the original sample text), repeated in shuffled document order to
reach the size, in a temporary directory. Then it runs, each in a fresh child process whose
whole process tree is sampled for resident memory (``/proc``, every 50 ms):

1. the exact mode (single process, the original algorithm; whole corpus in memory) on a
   ``--exact-mb`` slice;
2. the sharded mode with 1 worker on a 1/10 slice ("1x");
3. the sharded mode with N workers (``--workers``, default: all cores) on the same slice;
4. the sharded mode with N workers on the full corpus ("10x"): peak memory of the whole
   process tree must stay flat from 1x to 10x.

Each line also gives the CPU seconds of the child and its workers, so a run on a busy
machine (wall time inflated) can still be judged. The last line is the throughput ratio of
(4) to (1). Reference: the original ``create_pretraining_data.py`` makes about 4,100
instances/s on one core.

    python bench/make_pretrain_data.py                 # ~50 MB corpus, all cores
    python bench/make_pretrain_data.py --size-mb 10    # quicker
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BERT_SHARED_DATA", ROOT.parent / "shared" / "data"))
ORIGINAL_INSTANCES_PER_S = 4100

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def _squad_documents(path: Path) -> list[list[str]]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [_sentences(p["context"]) for article in data for p in article["paragraphs"]]


def _tsv_column(path: Path, column: int | str, header: bool = True) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    if header:
        head, rows = rows[0], rows[1:]
        if isinstance(column, str):
            column = head.index(column)
    return [r[column] for r in rows if len(r) > column and r[column].strip()]


def _grouped(sentences: list[str], rng: random.Random) -> list[list[str]]:
    docs, i = [], 0
    while i < len(sentences):
        n = rng.randint(2, 8)
        docs.append(sentences[i : i + n])
        i += n
    return docs


def unique_documents(rng: random.Random) -> list[list[str]]:
    """Every real document and sentence found in the shared data."""
    docs: list[list[str]] = []
    for name in ("squad/dev-v1.1.json", "squad/dev-v2.0.cs224n-split.json"):
        if (SHARED / name).is_file():
            docs += _squad_documents(SHARED / name)
    glue: list[str] = []
    for path, column, header in (
        ("glue/MRPC/train.tsv", 3, True), ("glue/MRPC/train.tsv", 4, True),
        ("glue/MRPC/test.tsv", 3, True), ("glue/MRPC/test.tsv", 4, True),
        ("glue/CoLA/train.tsv", 3, False), ("glue/SST-2/train.tsv", "text", True),
    ):
        if (SHARED / path).is_file():
            glue += _tsv_column(SHARED / path, column, header)
    docs += _grouped(glue, rng)
    sample = SHARED / "text/sample_text.txt"
    if sample.is_file():
        docs += [d.split("\n") for d in sample.read_text(encoding="utf-8").strip().split("\n\n")]
    return [d for d in docs if d]


def build_corpus(path: Path, size_mb: float, seed: int = 0) -> int:
    """Write >= size_mb MB of documents to ``path``; returns the byte count."""
    rng = random.Random(seed)
    docs = unique_documents(rng)
    target = int(size_mb * 1e6)
    written = 0
    with open(path, "w", encoding="utf-8") as fh:
        while written < target:
            order = list(range(len(docs)))
            rng.shuffle(order)
            for i in order:
                text = "\n".join(docs[i]) + "\n\n"
                fh.write(text)
                written += len(text.encode("utf-8"))
                if written >= target:
                    break
    return written


def slice_corpus(src: Path, dst: Path, size_mb: float) -> int:
    """The first ``size_mb`` MB of ``src``, cut at a document boundary."""
    target = int(size_mb * 1e6)
    written = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for line in fin:
            fout.write(line)
            written += len(line)
            if written >= target and line == b"\n":
                break
    return written


# ------------------------------------------------------------------------ measuring a child


def _tree_rss_bytes(root: int) -> int:
    """Sum of VmRSS over ``root`` and all its descendants (Linux /proc)."""
    total, stack, seen = 0, [root], set()
    page = os.sysconf("SC_PAGE_SIZE")
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * page
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def measure(label: str, config: dict) -> dict:
    """Run one make-pretrain-data in a child; its summary plus the tree's peak RSS."""
    cmd = [sys.executable, __file__, "--one", json.dumps(config)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = dict(os.environ, BERT_QUIET="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    done = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_bytes(proc.pid))
            done.wait(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    out, err = proc.communicate()
    done.set()
    thread.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child and its pool workers
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed:\n{err[-3000:]}")
    summary = json.loads(out.strip().splitlines()[-1])
    summary["peak_rss_mb"] = peak / 2**20
    summary["instances_per_s"] = summary["instances"] / summary["seconds"]
    summary["cpu_s"] = cpu_s
    print(
        f"{label:<30} {summary['bytes_read'] / 1e6:6.1f} MB {summary['instances']:>10,} inst "
        f"{summary['seconds']:7.1f} s {summary['instances_per_s']:8,.0f} inst/s "
        f"{summary['bytes_read'] / 1e6 / summary['seconds']:5.2f} MB/s | "
        f"cpu {cpu_s:6.1f} s ({cpu_s / summary['seconds']:4.2f} cores, "
        f"{summary['instances'] / cpu_s:7,.0f} inst/cpu-s) | "
        f"peak RSS (tree) {summary['peak_rss_mb']:6.1f} MB",
        flush=True,
    )
    return summary


def _one(config_json: str) -> None:
    """Child mode: run once, print the summary as JSON on the last stdout line."""
    from bert_cli.ops import make_pretrain_data as mpd

    config = json.loads(config_json)
    config["input_files"] = tuple(config["input_files"])
    config["output_files"] = tuple(config["output_files"])
    config["vocab_file"] = Path(config["vocab_file"])
    summary = mpd.run(mpd.MakePretrainDataConfig(**config))
    print(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=50.0, help="full corpus size (default 50)")
    parser.add_argument("--exact-mb", type=float, default=5.0, help="slice for the exact mode (default 5)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--dupe-factor", type=int, default=10)
    parser.add_argument("--shard-size-mb", type=float, default=1.0)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return _one(args.one)
    vocab = SHARED / "vocab/uncased/vocab.txt"
    if not vocab.is_file():
        raise SystemExit(f"shared data not found at {SHARED} (set BERT_SHARED_DATA)")

    with tempfile.TemporaryDirectory(prefix="bench-pretrain-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        full = tmp / "corpus.txt"
        size = build_corpus(full, args.size_mb)
        small = tmp / "corpus-1x.txt"
        slice_corpus(full, small, args.size_mb / 10)
        exact_in = tmp / "corpus-exact.txt"
        slice_corpus(full, exact_in, args.exact_mb)
        print(f"corpus: {size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s; "
              f"cpu cores: {os.cpu_count()}; workers: {args.workers}; dupe_factor: {args.dupe_factor}",
              flush=True)

        base = dict(vocab_file=str(vocab), dupe_factor=args.dupe_factor, shard_size_mb=args.shard_size_mb)
        exact = measure(
            "exact (1 process)",
            dict(base, input_files=[str(exact_in)], output_files=[str(tmp / "exact.tfrecord")]),
        )
        sharded = dict(base, output_files=[str(tmp / "out-%05d.tfrecord")], num_output_shards=8)
        one = measure("sharded, 1 worker (1x)", dict(sharded, input_files=[str(small)], workers=1))
        small_run = measure(f"sharded, {args.workers} workers (1x)", dict(sharded, input_files=[str(small)], workers=args.workers))
        many = measure(f"sharded, {args.workers} workers (10x)", dict(sharded, input_files=[str(full)], workers=args.workers))

    print(f"crc32c: {exact['crc32c']}; load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"peak RSS, {args.workers} workers: 1x corpus {small_run['peak_rss_mb']:.0f} MB, "
          f"10x corpus {many['peak_rss_mb']:.0f} MB (ratio {many['peak_rss_mb'] / small_run['peak_rss_mb']:.2f})")
    print(f"sharded 1 worker vs exact: {one['instances_per_s'] / exact['instances_per_s']:.2f}x; "
          f"vs the original's ~{ORIGINAL_INSTANCES_PER_S:,} inst/s: "
          f"{many['instances_per_s'] / ORIGINAL_INSTANCES_PER_S:.2f}x with {args.workers} workers")
    print(f"ratio: sharded {args.workers} workers / exact single process = "
          f"{many['instances_per_s'] / exact['instances_per_s']:.2f}x")


if __name__ == "__main__":
    main()
