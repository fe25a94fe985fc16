"""What the side-by-side benches share on the transformers + torch side.

* :func:`original_adam` -- the original BERT optimizer in torch (Adam WITHOUT bias correction,
  epsilon 1e-6, decoupled weight decay added to the update), multi-tensor (``torch._foreach_*``)
  like torch's own AdamW, so the peer is not slowed by a Python loop per parameter;
* :func:`decay_groups` -- the original's weight-decay exclusions (``LayerNorm``, ``bias``);
* :func:`original_schedule` -- the original learning-rate schedule (linear warmup, then linear
  decay computed from step 0; lr(0) = 0) as a torch ``LambdaLR``, from the same pure-Python
  function our engine is tested against (:func:`bert_cli.engine.optimization.learning_rate_py`);
* :func:`copy_tf1_into_torch` -- load ``{TF1 name: array}`` weights (a checkpoint we wrote,
  or ``tf1_names(model)``) into a transformers BERT module through the engine's own HF <-> TF1
  name table, so both sides start from the very same numbers.

Imported by ``bench/finetune_mrpc.py``, ``bench/pretrain.py`` and ``bench/squad_predict.py`` as
``bench.torch_peer`` (the repository root is on ``sys.path``; ``bench/`` itself is kept off it
because ``bench/tokenize.py`` would shadow the stdlib module).
"""

from __future__ import annotations

from typing import Mapping

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
