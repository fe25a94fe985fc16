"""Benchmark: fine-tune real pretrained weights on real MRPC, ours vs transformers + torch.

    python bench/finetune_mrpc.py [--epochs 3] [--max-steps N] [--threads T]
                                  [--variants ours,torch] [--seeds K] [--seed S]
                                  [--precision fp32|bf16] [--xla]

Both sides start from ``../shared/data/hf/all-MiniLM-L6-v2`` (L=6, H=384, uncased) and train
on the real MRPC train set (3668 pairs), evaluating on dev (408 pairs), with the original's
hyper-parameters for this bench: lr 2e-5, batch 32, max_seq_length 128, warmup 10%, weight
decay 0.01, clip 1.0, dropout 0.1, 3 epochs (``int(3668/32*3) = 343`` steps).

* ours: ``bert_cli.ops.finetune.run`` (task mrpc, the real data dir, AdamWeightDecay without
  bias correction and the original schedule, fp32 on CPU, XLA off);
* transformers: ``BertForSequenceClassification`` from the same weights, the very same
  featurized inputs (our WordPiece features), torch ``AdamW`` (eps 1e-6, decay 0.01 except
  bias/LayerNorm; torch's AdamW bias-corrects, the original does not), a linear warmup/decay
  schedule, clip 1.0, shuffled batches of 32 with the last partial batch dropped.

Variants (``--variants``, comma-separated, run in this order):

* ``ours``        -- what ``bert finetune mrpc`` does: each batch cut to its longest example
                     (rounded up to 8; :mod:`bert_cli.engine.padding`, same numbers);
* ``ours-full``   -- ours on the full padded 128 columns (the original's work per batch);
* ``torch``       -- transformers on batches padded to 128 (``run_glue.py``'s default
                     ``pad_to_max_length``), the same work as ``ours-full``;
* ``torch-trim``  -- transformers on batches cut the same way (its best case, what
                     ``DataCollatorWithPadding`` does);
* ``torch-orig``  -- ``torch-trim`` with the original optimizer (Adam without bias correction,
                     :func:`bench.torch_peer.original_adam`, multi-tensor) and schedule
                     (linear decay from step 0) instead of torch's ``AdamW`` and
                     ``get_linear_schedule_with_warmup``: the same recipe as ours.

Both use ``--threads`` CPU threads (default: all cores; TF intra/inter-op and
``torch.set_num_threads``). Reported per run: dev accuracy / F1 and training examples/s
(training loop only: featurization, model loading and evaluation excluded; ours includes its
traces and final checkpoint). With ``--seeds K`` every variant runs with seeds S..S+K-1 (seeds
outermost, so machine drift hits all variants alike), then mean +- std accuracy and median
examples/s. ``--max-steps`` shortens all runs identically (dev metrics then mean little). The
LAST line is ``ours`` / ``torch`` (each tool's default): speed ratio and accuracy difference,
preceded by every other ours-x / torch-y pair.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]  # bench/tokenize.py shadows stdlib
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import HF_DIR, SHARED, VOCAB, require_data, tf_threads  # noqa: E402

MRPC = SHARED / "glue" / "MRPC"

LR, BATCH, SEQ, WARMUP = 2e-5, 32, 128, 0.1


def run_ours(args, out_dir: Path, seed: int, *, trim: bool = True) -> dict:
    from bert_cli.engine import device
    from bert_cli.ops.finetune import FinetuneConfig, run

    engine_property = device.Runtime.__dict__["padding_multiple"]
    if not trim:  # the original's full-length batches
        device.Runtime.padding_multiple = property(lambda self: None)

    config = FinetuneConfig(
        task="mrpc",
        output_dir=out_dir,
        data_dir=MRPC,
        vocab_file=VOCAB,
        bert_config_file=HF_DIR / "config.json",
        init_checkpoint=str(HF_DIR),
        do_lower_case=True,
        do_train=True,
        do_eval=True,
        max_seq_length=SEQ,
        train_batch_size=BATCH,
        eval_batch_size=32,
        learning_rate=LR,
        num_train_epochs=args.epochs,
        warmup_proportion=WARMUP,
        max_steps=args.max_steps,
        save_checkpoints_steps=100000,
        seed=seed,
        device="cpu",
        precision=args.precision,
        xla=args.xla,
    )
    last = {}

    def progress(event):
        if event.get("phase") == "train" and (event["step"] % args.log_every == 0 or event["step"] == event["total_steps"]):
            print(
                f"  ours step {event['step']}/{event['total_steps']} loss {event['loss']:.4f} "
                f"{event['examples_per_s']:.1f} ex/s eta {event['eta_s'] or 0:.0f}s",
                file=sys.stderr,
            )
        last.update(event)

    try:
        result = run(config, progress=progress)
    finally:
        device.Runtime.padding_multiple = engine_property
    return {
        "steps": result["num_train_steps"],
        "train_examples_per_s": result["train_examples_per_s"],
        "train_seconds": result["train_seconds"],
        "accuracy": result["eval"]["eval_accuracy"],
        "f1": result["eval"]["eval_f1"],
        "eval_loss": result["eval"]["eval_loss"],
    }


def run_torch(args, threads: int, seed: int, *, trim: bool = False, original_optimizer: bool = False) -> dict:
    import numpy as np
    import torch
    from transformers import BertForSequenceClassification

    from bench.torch_peer import decay_groups, optimizer_and_schedule, train_steps
    from bert_cli.text.classifier_features import convert_examples
    from bert_cli.text.metrics import accuracy, f1_score
    from bert_cli.text.tasks import get_task
    from bert_cli.text.tokenization import FullTokenizer

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    task = get_task("mrpc")
    tokenizer = FullTokenizer(VOCAB, do_lower_case=True)
    train = convert_examples(task.read(MRPC, "train"), tokenizer, SEQ, task=task)
    dev = convert_examples(task.read(MRPC, "dev"), tokenizer, SEQ, task=task)
    steps = int(len(train) / BATCH * args.epochs)
    if args.max_steps:
        steps = min(steps, args.max_steps)
    model = BertForSequenceClassification.from_pretrained(str(HF_DIR), num_labels=2)
    groups = decay_groups(model)  # decay 0.01 except biases and LayerNorm
    # torch AdamW + linear warmup/decay, or the original's optimizer and schedule (lr decays from step 0)
    optimizer, scheduler = optimizer_and_schedule(groups, LR, steps, int(steps * WARMUP), original=original_optimizer)
    rng = np.random.default_rng(seed)

    from bert_cli.engine.padding import trim_arrays

    def tensors(f, idx, trim=trim):
        batch = {"input_ids": f.input_ids[idx], "input_mask": f.input_mask[idx], "segment_ids": f.segment_ids[idx]}
        batch = trim_arrays(batch, 8 if trim else None)
        return (
            torch.from_numpy(batch["input_ids"]).long(),
            torch.from_numpy(batch["input_mask"]).long(),
            torch.from_numpy(batch["segment_ids"]).long(),
        )

    def loss_of(idx):
        ids, mask, seg = tensors(train, idx)
        labels = torch.from_numpy(train.labels[idx]).long()
        return model(input_ids=ids, attention_mask=mask, token_type_ids=seg, labels=labels).loss

    seconds = train_steps(model, optimizer, scheduler, loss_of, n_train=len(train), batch_size=BATCH, steps=steps,
                          rng=rng, log_every=args.log_every)
    model.eval()
    preds = []
    with torch.inference_mode():
        for start in range(0, len(dev), 32):
            idx = np.arange(start, min(start + 32, len(dev)))
            ids, mask, seg = tensors(dev, idx, trim=False)
            preds += model(input_ids=ids, attention_mask=mask, token_type_ids=seg).logits.argmax(-1).tolist()
    gold = dev.labels.tolist()
    return {
        "steps": steps,
        "train_examples_per_s": steps * BATCH / seconds,
        "train_seconds": seconds,
        "accuracy": accuracy(gold, preds),
        "f1": f1_score(gold, preds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--max-steps", type=int, default=None, help="stop both runs after N optimizer steps")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=12345, help="first seed")
    parser.add_argument("--seeds", type=int, default=1, help="runs per variant, seeds --seed, --seed+1, ...")
    parser.add_argument("--log-every", type=int, default=20, help="progress line every N steps (stderr)")
    parser.add_argument("--variants", default="ours,torch", help="comma-separated: ours, ours-full, torch, torch-trim, torch-orig")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32", help="ours only")
    parser.add_argument("--xla", action=argparse.BooleanOptionalAction, default=False, help="ours only: XLA-compile the train step")
    args = parser.parse_args()
    require_data(HF_DIR / "model.safetensors", VOCAB, MRPC / "train.tsv")
    tf_threads(args.threads)
    steps = int(3668 / BATCH * args.epochs)
    if args.max_steps:
        steps = min(steps, args.max_steps)
    print(
        f"MRPC fine-tune of all-MiniLM-L6-v2: {steps} steps of {BATCH} x {SEQ}, lr {LR}, {args.threads} threads; "
        f"ours {args.precision}, XLA {'on' if args.xla else 'off'}"
    )
    import numpy as np

    variants = args.variants.split(",")
    for variant in variants:
        if variant not in ("ours", "ours-full", "torch", "torch-trim", "torch-orig"):
            sys.exit(f"unknown variant {variant!r}")
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for seed in range(args.seed, args.seed + args.seeds):  # seeds outermost: drift hits all alike
        for variant in variants:
            if variant.startswith("ours"):
                with tempfile.TemporaryDirectory() as tmp:
                    result = run_ours(args, Path(tmp) / "run", seed, trim=variant == "ours")
            else:
                result = run_torch(
                    args, args.threads, seed, trim=variant != "torch", original_optimizer=variant == "torch-orig"
                )
            runs[variant].append(dict(result, seed=seed))
            print(
                f"{variant:11s} seed {seed}: dev accuracy {result['accuracy']:.4f}  f1 {result['f1']:.4f}  "
                f"train {result['train_examples_per_s']:.2f} examples/s "
                f"({result['train_seconds']:.0f}s for {result['steps']} steps)",
                flush=True,
            )
    summary = {}
    for variant, rs in runs.items():
        acc = np.array([r["accuracy"] for r in rs])
        summary[variant] = {
            "seeds": len(rs),
            "accuracy_mean": float(acc.mean()),
            "accuracy_std": float(acc.std(ddof=1)) if len(rs) > 1 else 0.0,
            "f1_mean": float(np.mean([r["f1"] for r in rs])),
            "examples_per_s_median": float(np.median([r["train_examples_per_s"] for r in rs])),
        }
        m = summary[variant]
        print(
            f"{variant:11s} {len(rs)} seed(s): dev accuracy {m['accuracy_mean']:.4f} +- {m['accuracy_std']:.4f}  "
            f"f1 {m['f1_mean']:.4f}  train {m['examples_per_s_median']:.2f} examples/s (median)"
        )
    print(json.dumps({"runs": runs, "summary": summary}, sort_keys=True))
    pairs = [(a, b) for a in runs if a.startswith("ours") for b in runs if b.startswith("torch")]
    pairs.sort(key=lambda p: p == ("ours", "torch"))
    for a, b in pairs:
        ratio = summary[a]["examples_per_s_median"] / summary[b]["examples_per_s_median"]
        gap = 100 * (summary[a]["accuracy_mean"] - summary[b]["accuracy_mean"])
        print(f"{a}/{b}: training speed ratio {ratio:.2f}, dev accuracy difference {gap:+.2f} points")


if __name__ == "__main__":
    main()
