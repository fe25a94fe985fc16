"""Benchmark: fine-tune real pretrained weights on real CoNLL-2003 NER, ours vs transformers + torch.

    python bench/finetune_ner.py [--epochs 3] [--train-sentences N] [--max-steps N]
                                 [--threads T] [--seed S] [--variants ours,torch,torch-orig]

Both sides start from ``../shared/data/hf/all-MiniLM-L6-v2`` (L=6, H=384; an UNCASED model,
so both lose capitalisation alike -- ours warns about it) and train on CoNLL-2003 train
(``../shared/data/ner/conll2003/train.txt``, 14,041 sentences; the first ``--train-sentences``
of them), then score entity precision/recall/F1 (conlleval's, :mod:`bert_cli.text.ner_metrics`)
on valid (dev, 3,250 sentences) and test (3,453). Hyper-parameters, the same on both sides:
max_seq_length 128, batch 32, lr 5e-5, warmup 10%, weight decay 0.01 (not on biases and
LayerNorm), clip 1.0, dropout 0.1, ``int(n_windows / 32 * epochs)`` steps.

* ours: ``bert_cli.ops.finetune_ner.run`` -- exactly ``bert finetune ner`` (fp32 on CPU, XLA off,
  batches cut to their longest window rounded up to 8);
* transformers: ``BertForTokenClassification`` from the same weights on the very same features
  (ours: first WordPiece of each word labelled, ``-100`` elsewhere, the same windows), the
  same batch cut (what ``DataCollatorForTokenClassification`` does), torch ``AdamW`` (eps 1e-6)
  and a linear warmup/decay schedule; its predictions are merged into words and scored by the
  same code as ours;
* torch-orig: transformers with the original optimizer instead (Adam WITHOUT bias correction,
  ``bench/torch_peer.py``, with the original schedule), the same recipe as ours. Without bias correction the first
  updates are ~3x larger, so on short runs (a few dozen steps) ours learns visibly faster than
  ``torch``; compare F1 with ``torch-orig`` there.

Reported: dev and test entity F1 and training examples/s (training loop only: featurization,
model loading and evaluation excluded; ours includes its traces and final checkpoint). The
LAST lines are the speed ratio and the dev/test F1 differences against each peer that ran
(``ours/torch-orig``, then ``ours/torch``).
"""

from __future__ import annotations

import argparse
import itertools
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

CONLL = SHARED / "ner" / "conll2003"
LR, BATCH, SEQ, WARMUP = 5e-5, 32, 128, 0.1


def make_data_dir(root: Path, train_sentences: int | None) -> Path:
    """A data dir with the first N training sentences and the real valid/test files."""
    from bert_cli.text.ner import read_conll

    data = root / "data"
    data.mkdir(parents=True)
    with open(data / "train.txt", "w", encoding="utf-8") as fh:
        for s in itertools.islice(read_conll(CONLL / "train.txt"), train_sentences):
            fh.write("".join(f"{w} {t}\n" for w, t in zip(s.words, s.tags)) + "\n")
    for name in ("valid.txt", "test.txt"):
        os.symlink(CONLL / name, data / name)
    return data


def run_ours(args, data: Path, out_dir: Path) -> dict:
    from bert_cli.ops.finetune_ner import NerFinetuneConfig, run

    config = NerFinetuneConfig(
        task="ner", output_dir=out_dir, data_dir=data, vocab_file=VOCAB, bert_config_file=HF_DIR / "config.json",
        init_checkpoint=str(HF_DIR), do_lower_case=True, do_train=True, do_eval=True, do_predict=True,
        max_seq_length=SEQ, train_batch_size=BATCH, eval_batch_size=32, predict_batch_size=32, learning_rate=LR,
        num_train_epochs=args.epochs, warmup_proportion=WARMUP, max_steps=args.max_steps,
        save_checkpoints_steps=100000, seed=args.seed, device="cpu", precision="fp32", xla=False,
    )

    def progress(event):
        if event.get("phase") == "train" and (event["step"] % args.log_every == 0 or event["step"] == event["total_steps"]):
            print(f"  ours step {event['step']}/{event['total_steps']} loss {event['loss']:.4f} "
                  f"{event['examples_per_s']:.1f} ex/s eta {event['eta_s'] or 0:.0f}s", file=sys.stderr)

    result = run(config, progress=progress)
    return {"steps": result["num_train_steps"], "train_examples": result["train_examples"],
            "train_examples_per_s": result["train_examples_per_s"], "train_seconds": result["train_seconds"],
            "dev_f1": result["eval"]["eval_f1"], "test_f1": result["test"]["test_f1"]}


def run_torch(args, data: Path, *, original_optimizer: bool = False) -> dict:
    import numpy as np
    import torch
    from transformers import BertForTokenClassification

    from bert_cli.engine.padding import trim_arrays
    from bert_cli.engine.token_classifier import softmax
    from bert_cli.ops.finetune_ner import featurize_split, word_predictions
    from bert_cli.text import ner_metrics
    from bert_cli.text.ner import load_ner_data
    from bert_cli.text.ner_features import NerFeatureConfig
    from bert_cli.text.tokenization import FullTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ner = load_ner_data(data)
    tokenizer = FullTokenizer(VOCAB, do_lower_case=True)
    fconfig = NerFeatureConfig(SEQ, 64)
    splits = {name: featurize_split(name, ner.files[name], ner.splits[name], tokenizer, ner.tags, fconfig)
              for name in ("train", "dev", "test")}
    train = splits["train"].arrays
    n_train = len(train["input_ids"])
    steps = int(n_train / BATCH * args.epochs)
    if args.max_steps:
        steps = min(steps, args.max_steps)
    model = BertForTokenClassification.from_pretrained(str(HF_DIR), num_labels=len(ner.tags))
    from bench.torch_peer import decay_groups, optimizer_and_schedule, train_steps

    groups = decay_groups(model)  # the original's weight-decay exclusions (LayerNorm, bias)
    # torch AdamW + linear warmup/decay, or the original's optimizer and schedule, as bert's (bench/torch_peer.py)
    optimizer, scheduler = optimizer_and_schedule(groups, LR, steps, int(steps * WARMUP), original=original_optimizer)
    rng = np.random.default_rng(args.seed)

    def batch_of(arrays, idx):
        b = trim_arrays({k: arrays[k][idx] for k in ("input_ids", "input_mask", "segment_ids", "labels")}, 8)
        b["labels"] = b["labels"][:, :b["input_ids"].shape[1]]
        return {k: torch.from_numpy(np.ascontiguousarray(v)).long() for k, v in b.items()}

    def loss_of(idx):
        b = batch_of(train, idx)
        return model(input_ids=b["input_ids"], attention_mask=b["input_mask"], token_type_ids=b["segment_ids"],
                     labels=b["labels"]).loss

    seconds = train_steps(model, optimizer, scheduler, loss_of, n_train=n_train, batch_size=BATCH, steps=steps,
                          rng=rng, log_every=args.log_every)
    model.eval()
    scores = {}
    for name in ("dev", "test"):
        split, logits = splits[name], []
        with torch.inference_mode():
            for start in range(0, len(split.arrays["input_ids"]), 32):
                b = batch_of(split.arrays, np.arange(start, min(start + 32, len(split.arrays["input_ids"]))))
                out = model(input_ids=b["input_ids"], attention_mask=b["input_mask"],
                            token_type_ids=b["segment_ids"]).logits.numpy()
                logits.append(np.pad(out, [(0, 0), (0, SEQ - out.shape[1]), (0, 0)]))
        words = word_predictions(split, softmax(np.concatenate(logits)))
        predicted = [[ner.tags[int(np.argmax(p))] for p in w] for w in words]
        scores[name] = ner_metrics.evaluate([s.tags for s in split.sentences], predicted).f1
    return {"steps": steps, "train_examples": n_train, "train_examples_per_s": steps * BATCH / seconds,
            "train_seconds": seconds, "dev_f1": scores["dev"], "test_f1": scores["test"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--train-sentences", type=int, default=None, help="train on the first N sentences (default: all)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop both runs after N optimizer steps")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--log-every", type=int, default=50, help="progress line every N steps (stderr)")
    parser.add_argument("--variants", default="ours,torch", help="comma-separated: ours, torch, torch-orig")
    args = parser.parse_args()
    require_data(HF_DIR / "model.safetensors", VOCAB, CONLL / "train.txt")
    variants = args.variants.split(",")
    if not set(variants) <= {"ours", "torch", "torch-orig"}:
        sys.exit(f"unknown variant in {args.variants!r}")

    tf_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data_dir(Path(tmp), args.train_sentences)
        print(f"CoNLL-2003 NER fine-tune of all-MiniLM-L6-v2: {args.train_sentences or 'all'} train sentences, "
              f"{args.epochs:g} epochs of batch {BATCH} x {SEQ}, lr {LR}, {args.threads} threads", flush=True)
        for variant in variants:
            if variant == "ours":
                result = run_ours(args, data, Path(tmp) / "run")
            else:
                result = run_torch(args, data, original_optimizer=variant == "torch-orig")
            results[variant] = result
            print(f"{variant:10s}: dev F1 {100 * result['dev_f1']:.2f}  test F1 {100 * result['test_f1']:.2f}  "
                  f"train {result['train_examples_per_s']:.2f} examples/s ({result['train_seconds']:.0f}s for "
                  f"{result['steps']} steps of {result['train_examples']} windows)", flush=True)
    print(json.dumps(results, sort_keys=True))
    for peer in ("torch-orig", "torch"):  # the line for plain torch (if run) comes last
        if "ours" in results and peer in results:
            ours, other = results["ours"], results[peer]
            print(f"ours/{peer}: training speed ratio "
                  f"{ours['train_examples_per_s'] / other['train_examples_per_s']:.2f}, "
                  f"dev F1 difference {100 * (ours['dev_f1'] - other['dev_f1']):+.2f} points, "
                  f"test F1 difference {100 * (ours['test_f1'] - other['test_f1']):+.2f} points")


if __name__ == "__main__":
    main()
