"""One count wherever it runs (issue 12, part 3): attention is counted the same way on every backend, and a model
built without `device=` is still counted on meta.

On meta, scaled_dot_product_attention falls back to its math path: two matmuls forward, four backward. On CPU tensors
it runs a flash kernel whose backward formula also charges the recomputed scores (five matmuls), which made a GPT's
training count 2.2 % higher on CPU than on meta. The convention is the math path's, on every backend: the
attention backward is charged twice its forward, and FlashAttention's recompute is not charged.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from validator.compute.counting import count

D, HEADS, LAYERS, SEQ, VOCAB = 64, 4, 2, 128, 256


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv, self.proj = nn.Linear(D, 3 * D, bias=False), nn.Linear(D, D, bias=False)
        self.up, self.down = nn.Linear(D, 4 * D, bias=False), nn.Linear(4 * D, D, bias=False)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, HEADS, D // HEADS).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, D)
        x = x + self.proj(y)
        return x + self.down(F.gelu(self.up(x)))


class _GPT(nn.Module):
    def __init__(self, data_dependent: bool) -> None:
        super().__init__()
        self.data_dependent = data_dependent
        self.embed = nn.Embedding(VOCAB, D)
        self.blocks = nn.ModuleList(_Block() for _ in range(LAYERS))
        self.head = nn.Linear(D, VOCAB, bias=False)

    def forward(self, idx):
        if self.data_dependent and idx.max().item() > VOCAB:  # .item() cannot run on meta: counted on CPU tensors
            raise ValueError("token out of range")
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def _count(data_dependent: bool) -> dict:
    def factory(batch: int, device: str):
        with torch.device(device):
            return _GPT(data_dependent), torch.zeros(batch, SEQ, dtype=torch.long)

    return count(factory, fvcore=False)


def test_cpu_fallback_counts_attention_like_meta():
    on_meta, on_cpu = _count(False), _count(True)
    assert on_meta["device"] == "meta" and on_cpu["device"] == "cpu"
    assert on_cpu["per_sample_forward_flops"] == on_meta["per_sample_forward_flops"]
    assert on_cpu["per_sample_training_flops"] == on_meta["per_sample_training_flops"]


def test_training_count_is_palm_formula_on_cpu():
    """6N + 12·L·H·Q·T per token (N: matmul weights, the head included) is the math path's exact count."""
    n = LAYERS * (3 * D * D + D * D + 8 * D * D) + D * VOCAB
    per_token = 6 * n + 12 * LAYERS * D * SEQ
    assert _count(True)["per_sample_training_flops"] == per_token * SEQ


# A model built without `device=`: a library's constructor, or a script that ignores the argument. ViT-bigG built
# that way hit the sandbox's memory limit; on meta, meta is now the default device too.
IGNORES_DEVICE = '''
import torch.nn as nn
import torch


def build_for_flops(batch_size, device="meta"):
    model = nn.Sequential(*[nn.Linear(8192, 8192, bias=False) for _ in range(40)])  # 2.7e9 weights: 10.7 GB real
    return model, torch.zeros(batch_size, 8192, device=device)
'''


def test_model_built_without_device_is_counted_on_meta(tmp_path):
    from validator.compute import bwrap
    from validator.compute.recount import count_in_sandbox

    if bwrap.unavailable_reason() is not None:
        import pytest

        pytest.skip(f"no sandbox here: {bwrap.unavailable_reason()}")
    (tmp_path / "model.py").write_text(IGNORES_DEVICE, encoding="utf-8")
    counted = count_in_sandbox(tmp_path, "model.py:build_for_flops", fvcore=False)
    assert counted["device"] == "meta"
    assert counted["per_sample_forward_flops"] == 40 * 2 * 8192 * 8192
