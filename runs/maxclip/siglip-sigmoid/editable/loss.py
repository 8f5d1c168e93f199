"""Loss computation (editable): the pairwise sigmoid loss of SigLIP (Zhai et al., "Sigmoid Loss for Language Image
Pre-Training", arXiv:2303.15343) with a learnable temperature and bias.

Every (image i, text j) pair of the batch is scored independently: logit = exp(t') * <x_i, y_j> + b, label +1 if
i == j and -1 otherwise, loss = -sum log sigmoid(label * logit) / batch size. No softmax over the batch, so there is
no normalisation across pairs. Same contract as the reference: build_loss(config) -> nn.Module, forward(image_emb,
text_emb) -> scalar; its parameters are trained by editable/update.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class SigmoidLoss(nn.Module):
    def __init__(self, temperature_init: float = 0.1, bias_init: float = -10.0) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature_init)))
        self.logit_bias = nn.Parameter(torch.tensor(float(bias_init)))

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        logits = self.logit_scale.exp() * image @ text.T + self.logit_bias
        labels = 2 * torch.eye(len(image), device=image.device, dtype=logits.dtype) - 1
        return -F.logsigmoid(labels * logits).sum() / len(image)

    def describe(self) -> dict:
        return {"name": "pairwise sigmoid (SigLIP), learnable temperature and bias",
                "temperature": round(1.0 / self.logit_scale.detach().exp().item(), 6),
                "bias": round(self.logit_bias.detach().item(), 6)}


def build_loss(config: dict) -> nn.Module:
    return SigmoidLoss(**config)
