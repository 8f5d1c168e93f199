"""Loss computation (editable). Reference: the symmetric InfoNCE loss of CLIP with a learnable temperature.

Contract with the frozen run.py: `build_loss(config)` returns an nn.Module whose forward(image_emb, text_emb) takes
the L2-normalised embeddings of one batch of pairs (row i of each is a pair) and returns a scalar loss. Its own
parameters (here the temperature) are trained by the update in update.py. `describe()` is optional: what it returns
is logged and kept in the analysis.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class ClipLoss(nn.Module):
    def __init__(self, temperature_init: float = 0.07, max_logit_scale: float = 100.0) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature_init)))
        self.max_log_scale = math.log(max_logit_scale)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        scale = self.logit_scale.clamp(max=self.max_log_scale).exp()
        logits = scale * image @ text.T
        target = torch.arange(len(image), device=image.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    def describe(self) -> dict:
        scale = self.logit_scale.detach().clamp(max=self.max_log_scale).exp().item()
        return {"name": "symmetric InfoNCE (CLIP), learnable temperature", "temperature": round(1.0 / scale, 6)}


def build_loss(config: dict) -> nn.Module:
    return ClipLoss(**config)
