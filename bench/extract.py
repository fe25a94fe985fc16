"""Benchmark: BERT-Base inference (the ``extract``/``predict`` forward) vs transformers + torch.

    python bench/extract.py [--batch-size 32] [--seq-length 128] [--runs 5] [--layers 12]

Same CPU, same shapes, random weights (BERT-Base: V=30522, H=768, L=12, N=12, I=3072), the
same random input ids with some padding. Ours runs as one ``tf.function`` with a fixed
signature (:func:`bert_cli.engine.model.inference_function`) in float32 and in bfloat16
compute (float32 variables), with XLA off and on; transformers runs ``BertModel`` in eval mode
under ``torch.inference_mode()`` (float32, its default attention). Each variant is warmed up
once, then timed ``--runs`` times, interleaved; medians are reported as examples/second.
Before timing, our float32 output is checked against torch's on the same weights (copied
through the TF1-name table), so both sides compute the same function.
The LAST line is the ratio of our best float32 variant to transformers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# bench/ holds a ``tokenize.py`` that would shadow the stdlib module: keep bench/ off the path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--layers", type=int, default=12, help="fewer for a quick look")
    parser.add_argument("--skip", default="", help="comma-separated variants to skip (e.g. tf-bf16-xla)")
    args = parser.parse_args()

    import tensorflow as tf
    import torch
    import transformers

    from bert_cli.engine import checkpoint as ck
    from bert_cli.engine.model import BertModel, inference_function
    from bert_cli.modelconfig import BertConfig

    config = BertConfig(vocab_size=30522, num_hidden_layers=args.layers, type_vocab_size=2)
    B, S = args.batch_size, args.seq_length
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, config.vocab_size, (B, S)).astype(np.int32)
    mask = np.ones((B, S), np.int32)
    mask[::3, S // 2 :] = 0  # a third of the batch half padded
    seg = np.zeros((B, S), np.int32)
    seg[:, S // 3 :] = 1

    ours32 = BertModel(config, seed=0)
    ours16 = BertModel(config, random_init=False, compute_dtype=tf.bfloat16)
    ck.load_into(ours16, {n: v.numpy() for n, v in ck.tf1_names(ours32).items()})

    hf_config = transformers.BertConfig(**config.to_hf_config())
    theirs = transformers.BertModel(hf_config).eval()
    state = theirs.state_dict()
    for name, var in ck.tf1_names(ours32).items():  # same weights on both sides
        hf = _hf_name(name)
        value = var.numpy().T if name.endswith("kernel") else var.numpy()
        state[hf].copy_(torch.from_numpy(np.ascontiguousarray(value)))

    t_ids, t_mask, t_seg = (tf.constant(a) for a in (ids, mask, seg))
    p_ids, p_mask, p_seg = (torch.from_numpy(a.astype(np.int64)) for a in (ids, mask, seg))

    variants = {
        "tf-fp32": _tf_runner(inference_function(ours32, jit_compile=False), t_ids, t_mask, t_seg),
        "tf-fp32-xla": _tf_runner(inference_function(ours32, jit_compile=True), t_ids, t_mask, t_seg),
        "tf-bf16": _tf_runner(inference_function(ours16, jit_compile=False), t_ids, t_mask, t_seg),
        "tf-bf16-xla": _tf_runner(inference_function(ours16, jit_compile=True), t_ids, t_mask, t_seg),
        "torch-fp32": _torch_runner(theirs, p_ids, p_mask, p_seg),
    }
    for skip in filter(None, args.skip.split(",")):
        variants.pop(skip, None)

    # same function on both sides (float32 within 1e-3; bfloat16 only reported)
    ref = variants["torch-fp32"]() if "torch-fp32" in variants else None
    for name, run in variants.items():
        if ref is None or name == "torch-fp32":
            continue
        diff = float(np.abs(run() - ref).max())
        print(f"check: max |{name} - torch-fp32| on sequence_output = {diff:.2e}", file=sys.stderr)
        if "fp32" in name and diff > 1e-3:
            sys.exit(f"{name} differs from torch by {diff}: not benchmarking different functions")

    times: dict[str, list[float]] = {k: [] for k in variants}
    for name, run in variants.items():  # warm-up (tracing, XLA compile, oneDNN primitives)
        run()
    for _ in range(args.runs):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)

    print(f"BERT-Base-shaped forward, L={config.num_hidden_layers}, batch {B}, seq {S}, "
          f"{os.cpu_count()} CPUs, TF {tf.__version__}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), medians of {args.runs} runs")
    rates = {}
    for name, values in times.items():
        med = statistics.median(values)
        rates[name] = B / med
        print(f"{name:12s} {rates[name]:8.2f} examples/s   (median {med * 1000:8.1f} ms, min {min(values) * 1000:8.1f} ms)")
    ours = max((v, k) for k, v in rates.items() if k.startswith("tf-fp32"))
    if "torch-fp32" in rates:
        print(f"ratio {ours[1]} / torch-fp32 = {ours[0] / rates['torch-fp32']:.2f}")


def _tf_runner(forward, ids, mask, seg):
    def run():
        return forward(ids, mask, seg)["sequence_output"].numpy()

    return run


def _torch_runner(model, ids, mask, seg):
    import torch

    def run():
        with torch.inference_mode():
            return model(input_ids=ids, attention_mask=mask, token_type_ids=seg).last_hidden_state.numpy()

    return run


def _hf_name(tf1: str) -> str:
    """TF1 name -> transformers BertModel state_dict key (encoder only)."""
    name = tf1.removeprefix("bert/")
    name = name.replace("layer_", "layer.").replace("/", ".")
    for old, new in (("kernel", "weight"), ("gamma", "weight"), ("beta", "bias")):
        if name.endswith(old):
            name = name[: -len(old)] + new
    if name.endswith("_embeddings"):
        name += ".weight"
    return name


if __name__ == "__main__":
    main()
