"""A Llama-architecture decoder, built only to count FLOPs (usually on the meta device).

Only matmul-class ops matter for the count, so rotary embeddings are omitted (elementwise) and RMSNorm is plain
arithmetic. Used by the Marin importer to recompute published FLOPs from a run's model config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

LLAMA3_VOCAB = 128_256


@dataclass(frozen=True)
class LlamaConfig:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    seq_len: int
    vocab: int = LLAMA3_VOCAB
    head_dim: int | None = None
    glu: bool = True
    tie_embeddings: bool = False

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    def to_dict(self) -> dict:
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight


class Attention(nn.Module):
    def __init__(self, c: LlamaConfig) -> None:
        super().__init__()
        self.c = c
        self.q = nn.Linear(c.hidden, c.heads * c.hd, bias=False)
        self.k = nn.Linear(c.hidden, c.kv_heads * c.hd, bias=False)
        self.v = nn.Linear(c.hidden, c.kv_heads * c.hd, bias=False)
        self.o = nn.Linear(c.heads * c.hd, c.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        c = self.c
        q = self.q(x).view(b, t, c.heads, c.hd).transpose(1, 2)
        k = self.k(x).view(b, t, c.kv_heads, c.hd).transpose(1, 2)
        v = self.v(x).view(b, t, c.kv_heads, c.hd).transpose(1, 2)
        if c.kv_heads != c.heads:
            k = k.repeat_interleave(c.heads // c.kv_heads, dim=1)
            v = v.repeat_interleave(c.heads // c.kv_heads, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(y.transpose(1, 2).reshape(b, t, c.heads * c.hd))


class MLP(nn.Module):
    def __init__(self, c: LlamaConfig) -> None:
        super().__init__()
        self.glu = c.glu
        self.up = nn.Linear(c.hidden, c.intermediate, bias=False)
        self.gate = nn.Linear(c.hidden, c.intermediate, bias=False) if c.glu else None
        self.down = nn.Linear(c.intermediate, c.hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.gate(x)) * self.up(x) if self.glu else F.silu(self.up(x))
        return self.down(h)


class Block(nn.Module):
    def __init__(self, c: LlamaConfig) -> None:
        super().__init__()
        self.attn_norm, self.attn = RMSNorm(c.hidden), Attention(c)
        self.mlp_norm, self.mlp = RMSNorm(c.hidden), MLP(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class Llama(nn.Module):
    def __init__(self, c: LlamaConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(c.vocab, c.hidden)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.norm = RMSNorm(c.hidden)
        self.lm_head = nn.Linear(c.hidden, c.vocab, bias=False)
        if c.tie_embeddings:
            self.lm_head.weight = self.embed.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.norm(x))


def build_for_flops(config: LlamaConfig, batch_size: int, device: str = "meta"):
    """The model and one batch of token ids at the training sequence length."""
    with torch.device(device):
        return Llama(config), (torch.zeros(batch_size, config.seq_len, dtype=torch.long),)


def marin_forward_flops_per_token(c: LlamaConfig) -> float:
    """Marin's analytic forward FLOPs per token (its speedrun convention), for comparison."""
    glu_factor = 3 if c.glu else 2
    mlp = 2 * glu_factor * c.hidden * c.intermediate
    qkv = 2 * c.hidden * (c.heads * c.hd + 2 * c.kv_heads * c.hd)
    out = 2 * c.hidden * c.heads * c.hd
    attn = 4 * c.seq_len * c.heads * c.hd + 3 * c.seq_len * c.heads
    return c.layers * (mlp + qkv + out + attn) + 2 * c.hidden * c.vocab
