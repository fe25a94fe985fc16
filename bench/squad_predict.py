"""Benchmark: SQuAD v1.1 dev prediction with the real MiniLM, ours vs transformers + torch.

    python bench/squad_predict.py [--questions 200] [--batch 8] [--runs 3] [--threads T]
                                  [--xla | --no-xla] [--precision fp32|bf16]

The first ``--questions`` questions of ``../shared/data/squad/dev-v1.1.json`` (all 10570 with
``--questions 0``), the real ``all-MiniLM-L6-v2`` encoder (L=6, H=384, as shipped) and ONE span
head (random, stddev 0.02, seed 0: no trained SQuAD head exists offline), identical on both
sides: the encoder from the safetensors file, the head written with it into a checkpoint
``model.ckpt-1`` of the run folder, and the same arrays copied into transformers'
``BertForQuestionAnswering`` (:func:`bench.torch_peer.copy_tf1_into_torch`). max_seq_length
384, doc_stride 128, max_query_length 64, n_best 20, max_answer_length 30 (the original's).

What is counted
---------------
* ours -- ``bert finetune squad --do-predict --model MiniLM`` as a user runs it, in-process
  (:func:`bert_cli.ops.finetune_squad.run`, ``--device cpu``): from the start of the predict
  phase (featurization, streamed into the model batch by batch, incl. the first batch's
  trace/compile, raw logits written to ``raw_logits.jsonl``) to the end of post-processing
  (``write_predictions`` + the prediction files + the official v1.1 scores). Reading the JSON,
  building and loading the model are reported apart ("whole command").
* transformers -- our featurization output (featurized once more, timed) fed to
  ``BertForQuestionAnswering`` in eval mode under ``torch.inference_mode()`` in batches of
  ``--batch`` (padded to 384 like ours), then our ``write_predictions`` on its logits (timed):
  featurize + model + post-processing, the same three parts; no files written.

Both sides' predictions are compared (same weights, so they should agree but for near ties).
Reported: questions/s and features/s per side (medians of ``--runs`` interleaved runs); the
LAST line is ours / transformers in questions/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]  # bench/tokenize.py shadows stdlib
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench.common import HF_DIR, SHARED, VOCAB, require_data, tf_threads  # noqa: E402

DEV = SHARED / "squad" / "dev-v1.1.json"
SEQ, STRIDE, QUERY = 384, 128, 64


def subset(n: int, out: Path) -> int:
    """The first ``n`` questions of the dev set (article/paragraph order kept); 0 = all."""
    data = json.loads(DEV.read_text(encoding="utf-8"))
    if n <= 0:
        out.write_text(json.dumps(data), encoding="utf-8")
        return sum(len(p["qas"]) for a in data["data"] for p in a["paragraphs"])
    kept, left = [], n
    for article in data["data"]:
        paragraphs = []
        for p in article["paragraphs"]:
            if left <= 0:
                break
            qas = p["qas"][:left]
            left -= len(qas)
            paragraphs.append(dict(p, qas=qas))
        if paragraphs:
            kept.append(dict(article, paragraphs=paragraphs))
        if left <= 0:
            break
    out.write_text(json.dumps(dict(data, data=kept)), encoding="utf-8")
    return n - left


def weights() -> dict:
    """MiniLM's encoder + one random span head (seed 0), as ``{TF1 name: array}``."""
    from bert_cli.engine.hf_weights import read_hf_weights

    arrays = read_hf_weights(HF_DIR)
    rng = np.random.default_rng(0)
    hidden = arrays["bert/embeddings/word_embeddings"].shape[1]
    arrays["cls/squad/output_weights"] = (rng.standard_normal((2, hidden)) * 0.02).astype(np.float32)
    arrays["cls/squad/output_bias"] = np.zeros(2, np.float32)
    return arrays


def run_ours(args, predict_file: Path, run_dir: Path) -> dict:
    from bert_cli.ops.finetune_squad import SquadFinetuneConfig, run

    config = SquadFinetuneConfig(
        output_dir=run_dir,
        predict_file=predict_file,
        model=str(HF_DIR),
        do_predict=True,
        predict_batch_size=args.batch,
        device="cpu",
        precision=args.precision,
        xla=args.xla,
    )
    marks: dict[str, float] = {}
    facts: dict = {}

    def progress(event):
        now = time.perf_counter()
        if event.get("phase") == "predict" and event.get("final"):
            marks["predict_start"] = now - float(event["seconds"])
            marks["model_end"] = now
            facts["features"] = int(event["features"])
        elif event.get("phase") == "eval":
            marks["post_end"] = now

    began = time.perf_counter()
    summary = run(config, progress)
    ended = time.perf_counter()
    predictions = json.loads(Path(summary["predict"]["files"]["predictions"]).read_text(encoding="utf-8"))
    return {
        "seconds": marks["post_end"] - marks["predict_start"],
        "featurize_model_s": marks["model_end"] - marks["predict_start"],
        "post_s": marks["post_end"] - marks["model_end"],
        "command_s": ended - began,
        "questions": summary["predict"]["questions"],
        "features": facts["features"],
        "metrics": summary.get("metrics"),
        "predictions": predictions,
    }


def run_torch(args, predict_file: Path, arrays: dict) -> dict:
    import torch
    import transformers

    from bench.torch_peer import copy_tf1_into_torch
    from bert_cli.text.squad import convert_examples_to_features, read_squad_examples
    from bert_cli.text.squad_predict import PredictionConfig, RawResult, write_predictions
    from bert_cli.text.tokenization import FullTokenizer

    model = transformers.BertForQuestionAnswering(transformers.BertConfig.from_json_file(str(HF_DIR / "config.json")))
    copy_tf1_into_torch(model, arrays)
    model.eval()
    examples = read_squad_examples(predict_file, is_training=False)
    tokenizer = FullTokenizer(VOCAB, do_lower_case=True)

    t0 = time.perf_counter()
    features = list(convert_examples_to_features(examples, tokenizer, SEQ, STRIDE, QUERY, is_training=False))
    t1 = time.perf_counter()
    results = []
    with torch.inference_mode():
        for start in range(0, len(features), args.batch):
            batch = features[start : start + args.batch]
            ids, mask, seg = (
                torch.tensor([getattr(f, k) for f in batch], dtype=torch.long)
                for k in ("input_ids", "input_mask", "segment_ids")
            )
            if args.precision == "bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = model(input_ids=ids, attention_mask=mask, token_type_ids=seg)
            else:
                out = model(input_ids=ids, attention_mask=mask, token_type_ids=seg)
            s, e = out.start_logits.float().numpy(), out.end_logits.float().numpy()
            results += [RawResult(int(f.unique_id), s[i].tolist(), e[i].tolist()) for i, f in enumerate(batch)]
    t2 = time.perf_counter()
    preds = write_predictions(examples, features, results, PredictionConfig(do_lower_case=True))
    t3 = time.perf_counter()
    return {
        "seconds": t3 - t0,
        "featurize_s": t1 - t0,
        "model_s": t2 - t1,
        "post_s": t3 - t2,
        "questions": len(examples),
        "features": len(features),
        "predictions": dict(preds.predictions),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=200, help="first N dev questions (0: all 10570)")
    parser.add_argument("--batch", type=int, default=8, help="predict batch size (ours: --predict-batch-size, default 8)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--xla", action=argparse.BooleanOptionalAction, default=None, help="ours (default: the CLI's)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    args = parser.parse_args()
    require_data(HF_DIR / "model.safetensors", VOCAB, DEV)
    tf = tf_threads(args.threads)
    import torch

    torch.set_num_threads(args.threads)

    from bert_cli.engine.checkpoint import write_checkpoint

    with tempfile.TemporaryDirectory(prefix="bench-squad-") as tmp_name:
        tmp = Path(tmp_name)
        predict_file = tmp / "dev-subset.json"
        n = subset(args.questions, predict_file)
        arrays = weights()
        run_dir = tmp / "run"
        write_checkpoint(run_dir / "model.ckpt-1", {**arrays, "global_step": np.int64(1)})
        print(
            f"SQuAD v1.1 dev, {n} questions, all-MiniLM-L6-v2 + random span head, seq {SEQ}, batch {args.batch}, "
            f"{args.precision}, ours XLA {'default' if args.xla is None else ('on' if args.xla else 'off')}; "
            f"{args.threads} threads, {os.cpu_count()} CPUs; TF {tf.__version__}, torch {torch.__version__}",
            flush=True,
        )
        runs: dict[str, list[dict]] = {"ours": [], "transformers": []}
        for r in range(args.runs):
            for side in runs:
                res = run_ours(args, predict_file, run_dir) if side == "ours" else run_torch(args, predict_file, arrays)
                runs[side].append(res)
                parts = (
                    f"featurize+model {res['featurize_model_s']:.1f}s, post {res['post_s']:.1f}s; whole command {res['command_s']:.1f}s"
                    if side == "ours"
                    else f"featurize {res['featurize_s']:.1f}s, model {res['model_s']:.1f}s, post {res['post_s']:.1f}s"
                )
                print(
                    f"run {r + 1} {side:12s} {res['questions'] / res['seconds']:7.2f} questions/s "
                    f"{res['features'] / res['seconds']:7.2f} features/s  ({res['seconds']:.1f}s: {parts})",
                    flush=True,
                )
    ours, theirs = runs["ours"][0]["predictions"], runs["transformers"][0]["predictions"]
    same = sum(ours[k] == theirs.get(k) for k in ours)
    print(f"same answer text on both sides: {same}/{len(ours)} questions")
    summary = {}
    for side, rs in runs.items():
        summary[side] = {
            "seconds": statistics.median(r["seconds"] for r in rs),
            "questions": rs[0]["questions"],
            "features": rs[0]["features"],
        }
        m = summary[side]
        m["questions_per_s"] = m["questions"] / m["seconds"]
        m["features_per_s"] = m["features"] / m["seconds"]
    print(json.dumps({"summary": summary, "runs": [{k: v for k, v in r.items() if k != "predictions"}
                                                    for rs in runs.values() for r in rs]}, sort_keys=True))
    for side, m in summary.items():
        print(f"{side:12s} {m['questions_per_s']:7.2f} questions/s {m['features_per_s']:7.2f} features/s "
              f"(median {m['seconds']:.1f}s of {args.runs})")
    print(f"ratio ours / transformers (questions/s) = "
          f"{summary['ours']['questions_per_s'] / summary['transformers']['questions_per_s']:.2f}")


if __name__ == "__main__":
    main()
