"""What the side-by-side benches share on the transformers + torch side.

* :func:`original_adam` -- the original BERT optimizer in torch (Adam WITHOUT bias correction,
  epsilon 1e-6, decoupled weight decay added to the update), multi-tensor (``torch._foreach_*``)
  like torch's own AdamW, so the peer is not slowed by a Python loop per parameter;
* :func:`decay_groups` -- the original's weight-decay exclusions (``LayerNorm``, ``bias``);
* :func:`original_schedule` -- the original learning-rate schedule (linear warmup, then linear
  decay computed from step 0; lr(0) = 0) as a torch ``LambdaLR``, from the same pure-Python
  function our engine is tested against (:func:`bert_cli.engine.optimization.learning_rate_py`);
* :func:`optimizer_and_schedule` -- torch's ``AdamW`` and linear warmup/decay (each tool's
  default), or the original's two above (the same recipe as ours);
* :func:`train_steps` -- the fine-tuning peers' training loop (reshuffled epochs of fixed-size
  batches, clip 1.0, a progress line every N steps);
* :func:`copy_tf1_into_torch` -- load ``{TF1 name: array}`` weights (a checkpoint we wrote,
  or ``tf1_names(model)``) into a transformers BERT module through the engine's own HF <-> TF1
  name table, so both sides start from the very same numbers.

Imported by ``bench/finetune_mrpc.py``, ``bench/finetune_ner.py``, ``bench/pretrain.py`` and
``bench/squad_predict.py`` as
``bench.torch_peer`` (the repository root is on ``sys.path``; ``bench/`` itself is kept off it
because ``bench/tokenize.py`` would shadow the stdlib module).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Mapping

import numpy as np

NO_DECAY = ("LayerNorm", "layer_norm", "bias")  # the original's re.search patterns, on HF names


def original_adam(params, lr: float):
    """torch twin of the original ``AdamWeightDecayOptimizer``: Adam WITHOUT bias correction,
    decoupled decay added to the update (``p -= lr * (m / (sqrt(v) + eps) + decay * p)``).

    ``params``: parameters or param groups (each group may set ``weight_decay``; default 0).
    """
    import torch

    class OriginalAdamW(torch.optim.Optimizer):
        def __init__(self, params, lr):
            super().__init__(params, dict(lr=lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0))

        @torch.no_grad()
        def step(self):
            for group in self.param_groups:
                b1, b2 = group["betas"]
                params = [p for p in group["params"] if p.grad is not None]
                if not params:
                    continue
                grads = [p.grad for p in params]
                for p in params:
                    if not self.state[p]:
                        self.state[p]["m"], self.state[p]["v"] = torch.zeros_like(p), torch.zeros_like(p)
                ms = [self.state[p]["m"] for p in params]
                vs = [self.state[p]["v"] for p in params]
                torch._foreach_mul_(ms, b1)
                torch._foreach_add_(ms, grads, alpha=1 - b1)
                torch._foreach_mul_(vs, b2)
                torch._foreach_addcmul_(vs, grads, grads, value=1 - b2)
                denom = torch._foreach_sqrt(vs)
                torch._foreach_add_(denom, group["eps"])
                update = torch._foreach_div(ms, denom)
                if group["weight_decay"]:
                    torch._foreach_add_(update, params, alpha=group["weight_decay"])
                torch._foreach_add_(params, update, alpha=-group["lr"])

    return OriginalAdamW(params, lr)


def decay_groups(model, weight_decay: float = 0.01) -> list[dict]:
    """Two param groups: decay 0.01, and none for names matching the original's exclusions."""
    named = list(model.named_parameters())  # tied weights appear once
    excluded = [any(x in n for x in NO_DECAY) for n, _ in named]
    return [
        {"params": [p for (_, p), ex in zip(named, excluded) if not ex], "weight_decay": weight_decay},
        {"params": [p for (_, p), ex in zip(named, excluded) if ex], "weight_decay": 0.0},
    ]


def original_schedule(optimizer, num_train_steps: int, num_warmup_steps: int):
    """``LambdaLR`` with the original schedule: the optimizer's k-th step uses lr(k), lr(0) = 0."""
    import torch

    from bert_cli.engine.optimization import learning_rate_py

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_py(step, 1.0, num_train_steps, num_warmup_steps)
    )


def optimizer_and_schedule(groups, lr: float, num_train_steps: int, num_warmup_steps: int, *, original: bool):
    """``(optimizer, scheduler)``: torch ``AdamW`` (eps 1e-6) with transformers'
    ``get_linear_schedule_with_warmup``, or, when ``original``, :func:`original_adam` with
    :func:`original_schedule` (lr decays from step 0), the same recipe as ours."""
    if original:
        optimizer = original_adam(groups, lr)
        return optimizer, original_schedule(optimizer, num_train_steps, num_warmup_steps)
    import torch
    from transformers import get_linear_schedule_with_warmup

    optimizer = torch.optim.AdamW(groups, lr=lr, eps=1e-6)
    return optimizer, get_linear_schedule_with_warmup(optimizer, num_warmup_steps, num_train_steps)


def train_steps(model, optimizer, scheduler, loss_of: Callable, *, n_train: int, batch_size: int, steps: int,
                rng: np.random.Generator, log_every: int) -> float:
    """The fine-tuning peers' training loop; returns its seconds.

    Each step takes the next ``batch_size`` example indices of a stream of ``rng.permutation``
    epochs (a new one is appended when fewer are left, so no batch is partial), ``loss_of(idx)``
    -> loss, backward, clip to global norm 1.0, optimizer and scheduler step. A progress line
    (loss, examples/s) goes to stderr every ``log_every`` steps and after the last one.
    """
    import torch

    model.train()
    order = np.array([], dtype=np.int64)
    started = time.perf_counter()
    for step in range(1, steps + 1):
        if len(order) < batch_size:
            order = np.concatenate([order, rng.permutation(n_train)])
        idx, order = order[:batch_size], order[batch_size:]
        loss = loss_of(idx)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        if step % log_every == 0 or step == steps:
            rate = step * batch_size / (time.perf_counter() - started)
            print(f"  torch step {step}/{steps} loss {loss.item():.4f} {rate:.1f} ex/s", file=sys.stderr)
    return time.perf_counter() - started


def copy_tf1_into_torch(model, tensors: Mapping[str, np.ndarray], *, require_all: bool = True) -> list[str]:
    """Copy ``{TF1 name: array}`` into a transformers BERT module (``BertModel``,
    ``BertForPreTraining``, ``BertForQuestionAnswering``, ...). Returns the torch keys that got
    no value (their tied twins excepted); raises when ``require_all`` and some did."""
    import torch

    from bert_cli.engine.hf_weights import HF_SKIPPED, hf_to_tf1, normalize_hf_name

    state = model.state_dict()
    missing = []
    for key, target in state.items():
        hf = normalize_hf_name(key)
        if hf in HF_SKIPPED:
            continue
        mapped = hf_to_tf1(hf)
        if mapped is None or mapped[0] not in tensors:
            missing.append(key)
            continue
        name, transpose = mapped
        value = np.asarray(tensors[name], dtype=np.float32)
        value = value.T if transpose else value
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(f"{key}: shape {tuple(target.shape)} vs {name} {value.shape}")
        with torch.no_grad():
            target.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    if missing and require_all:
        raise ValueError(f"no value for {missing[:6]}")
    return missing
