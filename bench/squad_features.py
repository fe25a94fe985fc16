"""Benchmark: featurize the full SQuAD v1.1 dev set (10570 questions) with the real vocabulary.

Prints questions/second, features, and the peak resident memory of the process, e.g.::

    python bench/squad_features.py                       # defaults to ../shared/data
    python bench/squad_features.py --serialize           # also encode every feature as a tf.train.Example
    python bench/squad_features.py --predict             # also run write_predictions on random logits

Featurization is a generator, so the peak memory is the parsed JSON + examples, not the
~10.8k features (each 384 ids).
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predict-file", type=Path, default=SHARED / "squad" / "dev-v1.1.json")
    parser.add_argument("--vocab", type=Path, default=SHARED / "vocab" / "uncased" / "vocab.txt")
    parser.add_argument("--max-seq-length", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--max-query-length", type=int, default=64)
    parser.add_argument("--serialize", action="store_true", help="also encode each feature as a record")
    parser.add_argument("--predict", action="store_true", help="also run write_predictions on random logits")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from bert_cli.text.squad import convert_examples_to_features, feature_to_record, read_squad_examples
    from bert_cli.text.tokenization import FullTokenizer

    tokenizer = FullTokenizer(str(args.vocab), do_lower_case=True)
    t0 = time.perf_counter()
    examples = read_squad_examples(args.predict_file, is_training=False)
    t_read = time.perf_counter() - t0

    def features():
        return convert_examples_to_features(examples, tokenizer, args.max_seq_length, args.doc_stride,
                                            args.max_query_length, is_training=False)

    t1, c1 = time.perf_counter(), time.process_time()
    n_features = 0
    n_bytes = 0
    for feature in features():
        n_features += 1
        if args.serialize:
            n_bytes += len(feature_to_record(feature, is_training=False))
    t_feat, c_feat = time.perf_counter() - t1, time.process_time() - c1
    q = len(examples)
    print(f"read      {q} questions in {t_read:.2f} s")
    print(f"featurize {q} questions -> {n_features} features in {t_feat:.2f} s wall ({c_feat:.2f} s CPU) = "
          f"{q / t_feat:.0f} questions/s wall, {q / c_feat:.0f} per CPU-second"
          + (f" (with serialization, {n_bytes / 2**20:.1f} MiB of records)" if args.serialize else ""))

    if args.predict:
        from bert_cli.text.squad_logits import RawResult
        from bert_cli.text.squad_predict import PredictionConfig, write_predictions

        rng = random.Random(0)
        pool = [[rng.gauss(0, 1) for _ in range(args.max_seq_length)] for _ in range(257)]

        def results():  # a pool of random rows, so generating logits costs nothing
            for i in range(n_features):
                yield RawResult(1000000000 + i, pool[i % 257], pool[(i * 7 + 3) % 257])

        t2, c2 = time.perf_counter(), time.process_time()
        out = write_predictions(examples, features(), results(), PredictionConfig())
        t_pred, c_pred = time.perf_counter() - t2, time.process_time() - c2
        print(f"write_predictions (incl. re-featurizing) {len(out.predictions)} questions in {t_pred:.2f} s wall "
              f"({c_pred:.2f} s CPU) = {q / t_pred:.0f} questions/s wall, {q / c_pred:.0f} per CPU-second")
    print(f"peak RSS {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
