"""Model update (editable). Reference: AdamW, decoupled weight decay on matrices only, linear warm-up then cosine
decay to zero.

Contract with the frozen run.py: `build_update(model, loss_fn, config, total_steps)` returns an object whose
`step(loss)` performs one update from the batch loss (zero the gradients, backward, optimizer step, schedule), and
whose `describe()` returns {"optimizer": {name, learning_rate, weight_decay, params}, "schedule": {name,
warmup_steps, params}} for the analysis. The loss module's parameters (e.g. the temperature) are trained too.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


class Update:
    def __init__(self, model: nn.Module, loss_fn: nn.Module, lr: float = 2e-3, weight_decay: float = 0.1,
                 betas: tuple[float, float] = (0.9, 0.98), eps: float = 1e-6, warmup_steps: int = 6,
                 grad_clip: float | None = None, total_steps: int = 1) -> None:
        params = [p for p in list(model.parameters()) + list(loss_fn.parameters()) if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        self.params = params
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=tuple(betas), eps=eps)
        self.grad_clip = grad_clip
        self.config = {"lr": lr, "weight_decay": weight_decay, "betas": list(betas), "eps": eps,
                       "warmup_steps": warmup_steps, "grad_clip": grad_clip, "total_steps": total_steps}

        def factor(step: int) -> float:
            if step < warmup_steps:
                return (step + 1) / warmup_steps
            progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, factor)

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.opt.step()
        self.sched.step()

    def describe(self) -> dict:
        c = self.config
        return {
            "optimizer": {"name": "AdamW", "learning_rate": c["lr"], "weight_decay": c["weight_decay"],
                          "params": {"betas": c["betas"], "eps": c["eps"], "grad_clip": c["grad_clip"],
                                     "weight_decay_on": "matrices and conv kernels only"}},
            "schedule": {"name": "linear warm-up + cosine decay to 0", "warmup_steps": c["warmup_steps"],
                         "params": {"total_steps": c["total_steps"]}},
        }


def build_update(model: nn.Module, loss_fn: nn.Module, config: dict, total_steps: int) -> Update:
    return Update(model, loss_fn, total_steps=total_steps, **config)
