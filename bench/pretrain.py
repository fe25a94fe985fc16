"""Benchmark: masked-LM + next-sentence pretraining steps, ours vs transformers + torch.

    python bench/pretrain.py [--config small|base2|LxHxAxI] [--steps 20] [--batch 32] [--runs 3]
                             [--precision fp32|bf16] [--xla] [--dropout 0.1] [--threads T]
                             [--variants ours,torch-gather,torch]

Both sides get exactly the same work:

* data: TFRecords written by ``bert make-pretrain-data`` (``--text``, default the original's
  ``sample_text.txt``; uncased vocabulary; seq 128, 20 predictions, dupe factor 10), read in
  the order our engine reads them (:func:`bert_cli.engine.pretrain.train_dataset`, seed 0);
  torch gets those very batches, in that order (materialised before its clock starts);
* model: ``--config`` -- ``small`` L=4/H=256/A=4/I=1024, ``base2`` BERT-Base-shaped with 2
  layers (L=2/H=768/A=12/I=3072), or ``LxHxAxI``; vocabulary 30522; gelu (tanh form on both
  sides: transformers ``gelu_new``); dropout ``--dropout`` (0.1 as BERT);
* weights: one random init (our ``PretrainingModel``, seed 0) written as a TF1 checkpoint;
  ours loads it as ``--init-checkpoint``, torch gets it through the engine's HF <-> TF1 table
  (:func:`bench.torch_peer.copy_tf1_into_torch`);
* optimizer: the original's AdamWeightDecay (no bias correction, eps 1e-6, weight decay 0.01
  except LayerNorm/bias), clip by global norm 1.0, lr ``--lr`` with ``--warmup`` linear warmup
  steps then linear decay to 0 at ``--steps`` (:mod:`bench.torch_peer`).

Variants (run interleaved, ``--runs`` times each, in this order):

* ``ours``          -- ``bert pretrain`` as the command runs it (:func:`bert_cli.ops.pretrain.run`),
                       in-process (``--device cpu``, ``--precision``, ``--xla``), with a
                       progress event every step (loss synced every step, as torch's ``item()``);
* ``torch-gather``  -- ``BertForPreTraining``'s modules, masked-LM head applied to the 20 masked
                       positions only (as the original and ours): ``bert`` -> gather ->
                       ``cls.predictions`` -> the original's weighted loss; the same work as ours;
* ``torch``         -- ``BertForPreTraining(..., labels=, next_sentence_label=)`` as shipped:
                       vocabulary logits at all 128 positions (6.4x the head's work), -100 labels.

Reported per run: steady steps/s and examples/s (steps 2..N: the first step, which traces or
compiles, is reported apart), the first step's seconds, and the loss at step N (mean of the
last 5 steps too). Precision bf16: ours ``--precision bf16`` (bf16 compute, float32
variables), torch ``autocast(cpu, bfloat16)``. The max |loss difference| per step between ours
and each torch variant is printed: with ``--dropout 0`` it shows both sides compute the same
function (the float32 curves agree to ~1e-5 relative); with dropout the masks differ.

The LAST line is the ratio of our median steady steps/s to the faster torch variant's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]  # bench/tokenize.py shadows stdlib
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import SHARED, VOCAB, require_data, tf_threads  # noqa: E402

SAMPLE_TEXT = SHARED / "text" / "sample_text.txt"
SEQ, PRED = 128, 20
CONFIGS = {"small": (4, 256, 4, 1024), "base2": (2, 768, 12, 3072)}
VARIANTS = ("ours", "torch-gather", "torch")


def parse_config(text: str, dropout: float):
    from bert_cli.modelconfig import BertConfig

    if text in CONFIGS:
        L, H, A, I = CONFIGS[text]
    else:
        try:
            L, H, A, I = (int(x) for x in text.lower().split("x"))
        except ValueError:
            sys.exit(f"--config {text!r}: use small, base2 or LxHxAxI (e.g. 4x256x4x1024)")
    return BertConfig(
        vocab_size=30522, hidden_size=H, num_hidden_layers=L, num_attention_heads=A, intermediate_size=I,
        type_vocab_size=2, max_position_embeddings=512,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
    )  # fmt: skip


def make_data(tmp: Path, text: Path) -> Path:
    """TFRecords from ``bert make-pretrain-data`` (the installed script, as a user runs it)."""
    out = tmp / "data.tfrecord"
    cmd = [
        sys.executable, "-m", "bert_cli", "make-pretrain-data", "-i", str(text), "-o", str(out),
        "--vocab-file", str(VOCAB), "--do-lower-case", "--max-seq-length", str(SEQ),
        "--max-predictions-per-seq", str(PRED), "--dupe-factor", "10", "--random-seed", "12345",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return out


def write_init(config, prefix: Path) -> dict:
    """One random init (our PretrainingModel, seed 0), written as a TF1 checkpoint; the arrays."""
    from bert_cli.engine.checkpoint import write_checkpoint
    from bert_cli.engine.pretrain import PretrainingModel

    model = PretrainingModel(config, seed=0)
    arrays = {name: var.numpy() for name, var in model.tf1_variables().items()}
    write_checkpoint(prefix, arrays)
    return arrays


def run_ours(args, config, data: Path, init: Path, out_dir: Path) -> dict:
    """``bert pretrain`` as the command runs it (``bert_cli.ops.pretrain.run``), in this process."""
    from bert_cli.ops.pretrain import PretrainConfig, run

    config_file = out_dir.parent / f"{out_dir.name}-bert_config.json"
    config_file.write_text(config.to_json(), encoding="utf-8")
    command = PretrainConfig(
        input_file=str(data),
        output_dir=out_dir,
        bert_config_file=config_file,
        init_checkpoint=str(init),
        do_train=True,
        train_batch_size=args.batch,
        learning_rate=args.lr,
        num_train_steps=args.steps,
        num_warmup_steps=args.warmup,
        max_seq_length=SEQ,
        max_predictions_per_seq=PRED,
        save_checkpoints_steps=10**9,
        keep_checkpoints=1,
        device="cpu",
        precision=args.precision,
        xla=args.xla,
        seed=0,
        log_every_steps=1,
    )
    losses, seconds = [], []

    def progress(event):
        if event.get("phase") == "train":
            losses.append(float(event["loss"]))
            seconds.append(float(event["seconds"]))

    run(command, progress)
    return _result(losses, seconds, args.batch)


def torch_batches(args, config, data: Path) -> list[dict]:
    """The first ``--steps`` batches exactly as our engine reads them, as torch tensors."""
    import torch

    from bert_cli.engine.pretrain import train_dataset

    ds = train_dataset([str(data)], config, batch_size=args.batch, max_seq_length=SEQ, max_predictions_per_seq=PRED, seed=0)
    batches = []
    for batch in ds.take(args.steps):
        b = {k: v.numpy() for k, v in batch.items()}
        ids = torch.from_numpy(b["input_ids"]).long()
        positions = torch.from_numpy(b["masked_lm_positions"]).long()
        label_ids = torch.from_numpy(b["masked_lm_ids"]).long()
        weights = torch.from_numpy(b["masked_lm_weights"]).float()
        labels = torch.full_like(ids, -100)  # transformers' convention: -100 = not predicted
        real = weights > 0
        rows = torch.arange(ids.shape[0])[:, None].expand_as(positions)
        labels[rows[real], positions[real]] = label_ids[real]
        batches.append(
            dict(
                input_ids=ids,
                attention_mask=torch.from_numpy(b["input_mask"]).long(),
                token_type_ids=torch.from_numpy(b["segment_ids"]).long(),
                positions=positions,
                label_ids=label_ids,
                weights=weights,
                labels=labels,
                next_sentence_label=torch.from_numpy(b["next_sentence_labels"]).long().reshape(-1),
            )
        )
    return batches


def run_torch(args, config, arrays: dict, batches: list[dict], *, gather: bool) -> dict:
    import contextlib

    import torch
    import torch.nn.functional as F
    import transformers

    from bench.torch_peer import copy_tf1_into_torch, decay_groups, original_adam, original_schedule

    torch.manual_seed(0)
    model = transformers.BertForPreTraining(transformers.BertConfig(**config.to_hf_config()))
    copy_tf1_into_torch(model, arrays)
    model.train()
    optimizer = original_adam(decay_groups(model), args.lr)
    scheduler = original_schedule(optimizer, args.steps, args.warmup)
    autocast = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.precision == "bf16" else contextlib.nullcontext
    )

    def loss_of(b):
        if not gather:  # as shipped: logits at every position
            return model(
                input_ids=b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"],
                labels=b["labels"], next_sentence_label=b["next_sentence_label"],
            ).loss  # fmt: skip
        seq, pooled = model.bert(
            input_ids=b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"]
        )[:2]
        x = torch.gather(seq, 1, b["positions"][:, :, None].expand(-1, -1, seq.shape[-1]))  # [B, P, H]
        logits = model.cls.predictions(x).float()  # [B, P, V]
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), b["label_ids"].reshape(-1), reduction="none")
        w = b["weights"].reshape(-1)
        mlm = (w * nll).sum() / (w.sum() + 1e-5)
        nsp = F.cross_entropy(model.cls.seq_relationship(pooled).float(), b["next_sentence_label"])
        return mlm + nsp

    losses, seconds = [], []
    began = time.perf_counter()
    for b in batches:
        with autocast():
            loss = loss_of(b)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.item()))
        seconds.append(time.perf_counter() - began)
    return _result(losses, seconds, args.batch)


def _result(losses: list[float], seconds: list[float], batch: int) -> dict:
    n = len(seconds)
    steady = (n - 1) / (seconds[-1] - seconds[0]) if n > 1 else 1 / seconds[0]
    return {
        "steps": n,
        "steps_per_s": steady,
        "examples_per_s": steady * batch,
        "first_step_s": seconds[0],
        "total_s": seconds[-1],
        "loss_last": losses[-1],
        "loss_last5": statistics.fmean(losses[-5:]),
        "losses": losses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="small", help="small (L4/H256), base2 (L2/H768) or LxHxAxI")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per run (N)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3, help="runs per variant, interleaved; medians reported")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--xla", action=argparse.BooleanOptionalAction, default=False, help="ours: XLA-compile the step")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=None, help="warmup steps (default: 10%% of --steps)")
    parser.add_argument("--dropout", type=float, default=0.1, help="hidden and attention dropout (0: exact loss check)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--text", type=Path, default=SAMPLE_TEXT, help="pretraining text for make-pretrain-data")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS))
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = args.steps // 10
    variants = args.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            sys.exit(f"unknown variant {v!r}")
    require_data(VOCAB, args.text)
    tf = tf_threads(args.threads)
    import torch

    torch.set_num_threads(args.threads)

    config = parse_config(args.config, args.dropout)
    with tempfile.TemporaryDirectory(prefix="bench-pretrain-") as tmp_name:
        tmp = Path(tmp_name)
        data = make_data(tmp, args.text)
        arrays = write_init(config, tmp / "init" / "model.ckpt")
        batches = torch_batches(args, config, data) if any(v.startswith("torch") for v in variants) else []
        print(
            f"pretraining L={config.num_hidden_layers}/H={config.hidden_size}/A={config.num_attention_heads}/"
            f"I={config.intermediate_size}, V={config.vocab_size}: {args.steps} steps of {args.batch} x {SEQ} "
            f"({PRED} predictions), lr {args.lr}, warmup {args.warmup}, dropout {args.dropout}, {args.precision}, "
            f"ours XLA {'on' if args.xla else 'off'}; {args.threads} threads, {os.cpu_count()} CPUs; "
            f"TF {tf.__version__}, torch {torch.__version__}",
            flush=True,
        )
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        for r in range(args.runs):  # interleaved: machine drift hits every variant alike
            for v in variants:
                if v == "ours":
                    result = run_ours(args, config, data, tmp / "init" / "model.ckpt", tmp / f"ours-{r}")
                else:
                    result = run_torch(args, config, arrays, batches, gather=v == "torch-gather")
                runs[v].append(result)
                print(
                    f"run {r + 1} {v:12s} {result['steps_per_s']:7.3f} steps/s {result['examples_per_s']:8.2f} ex/s  "
                    f"first step {result['first_step_s']:6.2f}s  loss@{result['steps']} {result['loss_last']:.4f}",
                    flush=True,
                )

    summary = {}
    for v, rs in runs.items():
        summary[v] = {
            "steps_per_s": statistics.median(r["steps_per_s"] for r in rs),
            "examples_per_s": statistics.median(r["examples_per_s"] for r in rs),
            "first_step_s": statistics.median(r["first_step_s"] for r in rs),
            "loss_last": statistics.median(r["loss_last"] for r in rs),
            "loss_last5": statistics.median(r["loss_last5"] for r in rs),
        }
    print(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "summary": summary, "runs": runs}, sort_keys=True))
    print(f"medians of {args.runs} run(s):")
    for v, m in summary.items():
        print(
            f"{v:12s} {m['steps_per_s']:7.3f} steps/s {m['examples_per_s']:8.2f} examples/s  first step "
            f"{m['first_step_s']:6.2f}s  loss at step {args.steps} {m['loss_last']:.4f} (last 5: {m['loss_last5']:.4f})"
        )
    if "ours" in runs:
        for v in runs:
            if v != "ours":
                diff = max(abs(a - b) for a, b in zip(runs["ours"][0]["losses"], runs[v][0]["losses"]))
                print(f"max |loss(ours) - loss({v})| per step, run 1: {diff:.2e}")
    peers = [v for v in runs if v != "ours"]
    if "ours" in runs and peers:
        for v in sorted(peers, key=lambda v: summary[v]["steps_per_s"]):
            print(f"ratio ours / {v} (steady steps/s) = {summary['ours']['steps_per_s'] / summary[v]['steps_per_s']:.2f}")


if __name__ == "__main__":
    main()
