"""A Llama-architecture decoder, built only to count FLOPs (usually on the meta device), and Marin's configs read as one.

Only matmul-class ops matter for the count, so rotary embeddings are omitted (elementwise) and RMSNorm is plain
arithmetic. The norm variants Marin's configs switch on (qk-norm, hybrid norm, an input-embedding norm) and biases
are built, so the module and its parameter count are the config's, though none of them adds a matmul: the count is
the same with or without them. Used by the Marin importer and by the validator's `model.config` path (library
"marin") to recount published FLOPs from a run's model config, with no submitted code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

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
    qk_norm: bool = False  # RMSNorm of each head's query and key (Qwen3, `use_qk_norm`)
    hybrid_norm: bool = False  # RMSNorm after the attention and after the MLP, before each residual add
    input_embedding_norm: bool = False  # RMSNorm after the token embedding
    bias: bool = False  # biases on the projections (`use_bias`): an add, not a matmul

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
        self.q = nn.Linear(c.hidden, c.heads * c.hd, bias=c.bias)
        self.k = nn.Linear(c.hidden, c.kv_heads * c.hd, bias=c.bias)
        self.v = nn.Linear(c.hidden, c.kv_heads * c.hd, bias=c.bias)
        self.o = nn.Linear(c.heads * c.hd, c.hidden, bias=c.bias)
        self.q_norm, self.k_norm = (RMSNorm(c.hd), RMSNorm(c.hd)) if c.qk_norm else (None, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        c = self.c
        q = self.q(x).view(b, t, c.heads, c.hd).transpose(1, 2)
        k = self.k(x).view(b, t, c.kv_heads, c.hd).transpose(1, 2)
        v = self.v(x).view(b, t, c.kv_heads, c.hd).transpose(1, 2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if c.kv_heads != c.heads:
            k = k.repeat_interleave(c.heads // c.kv_heads, dim=1)
            v = v.repeat_interleave(c.heads // c.kv_heads, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(y.transpose(1, 2).reshape(b, t, c.heads * c.hd))


class MLP(nn.Module):
    def __init__(self, c: LlamaConfig) -> None:
        super().__init__()
        self.glu = c.glu
        self.up = nn.Linear(c.hidden, c.intermediate, bias=c.bias)
        self.gate = nn.Linear(c.hidden, c.intermediate, bias=c.bias) if c.glu else None
        self.down = nn.Linear(c.intermediate, c.hidden, bias=c.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.gate(x)) * self.up(x) if self.glu else F.silu(self.up(x))
        return self.down(h)


class Block(nn.Module):
    def __init__(self, c: LlamaConfig) -> None:
        super().__init__()
        self.attn_norm, self.attn = RMSNorm(c.hidden), Attention(c)
        self.mlp_norm, self.mlp = RMSNorm(c.hidden), MLP(c)
        self.post_attn_norm, self.post_mlp_norm = (RMSNorm(c.hidden), RMSNorm(c.hidden)) if c.hybrid_norm else (None, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attn(self.attn_norm(x))
        x = x + (self.post_attn_norm(a) if self.post_attn_norm is not None else a)
        m = self.mlp(self.mlp_norm(x))
        return x + (self.post_mlp_norm(m) if self.post_mlp_norm is not None else m)


class Llama(nn.Module):
    def __init__(self, c: LlamaConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(c.vocab, c.hidden)
        self.embed_norm = RMSNorm(c.hidden) if c.input_embedding_norm else None
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.norm = RMSNorm(c.hidden)
        self.lm_head = nn.Linear(c.hidden, c.vocab, bias=False)
        if c.tie_embeddings:
            self.lm_head.weight = self.embed.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)
        if self.embed_norm is not None:
            x = self.embed_norm(x)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.norm(x))


def build_for_flops(config: LlamaConfig, batch_size: int, device: str = "meta"):
    """The model and one batch of token ids at the training sequence length."""
    with torch.device(device):
        return Llama(config), (torch.zeros(batch_size, config.seq_len, dtype=torch.long),)


def marin_forward_flops_per_token(c: LlamaConfig) -> float:
    """Marin's analytic forward FLOPs per token, operation for operation as Levanter's `lm_flops_per_token` computes
    them for a speedrun (GLU, one expert, no window), so that float rounding matches too. Two departures from this
    site's convention: a softmax term (3 per score) beside the two attention products, and a head size of
    hidden / heads whatever the config's head_dim."""
    head_dim = c.hidden / c.heads
    mlp = 2 * (3 if c.glu else 2) * c.hidden * c.intermediate
    qkv_proj = 2 * c.hidden * (c.heads * head_dim + 2 * c.kv_heads * head_dim)
    dense_proj = 2 * c.hidden * c.hidden
    s = c.seq_len
    key_query_logits = 2 * s**2 * c.heads * head_dim
    softmax = 3 * s * s * c.heads  # Levanter's "mask" term
    mask_value = 2 * s * s * head_dim * c.heads
    attn = (key_query_logits + softmax + mask_value) / s
    return c.layers * (mlp + qkv_proj + dense_proj) + c.layers * attn + 2 * c.hidden * c.vocab


def marin_model_flops(c: LlamaConfig, tokens: int) -> float:
    """Marin's published `model_flops`: 3 x forward FLOPs per token (forward + backward) x total tokens, multiplied
    in Marin's order."""
    per_token = marin_forward_flops_per_token(c)
    per_token *= 3
    return per_token * tokens


# ------------------------------------------------------------------------------- Marin's configs read as a Llama
#
# A result file's `run_info.model_config` is `dataclasses.asdict` of Levanter's LlamaConfig, Qwen3Config or a speedrun's
# own config class, and does not name the class. `marin_config` rebuilds a Llama only when every key is one of these:
# READ (the shapes it builds from, and the norm and bias switches it builds: elementwise, so they leave the count as
# it is, but the module and its parameter count are the config's), HARMLESS (cannot change which matmuls run; each
# says why) or CONDITIONAL (harmless only when off, or for a sliding window when it covers the whole sequence).
# Any other key may change the matmuls (a new Levanter option, an MoE, a linear-attention layer) and is refused by
# name, never guessed: add one here only with the reason it is harmless. (Qwen3Config norms queries and keys whatever
# `use_qk_norm` says; as the dict does not say it is a Qwen3, the rebuild follows the key: no matmul either way.)

READ = {
    "hidden_dim", "intermediate_dim", "num_layers", "num_heads", "num_kv_heads", "head_dim",
    "seq_len", "max_seq_len",  # older and newer spellings of the model's sequence length
    "tie_word_embeddings", "use_bias", "activation_function",
    "hybrid_norm", "use_qk_norm", "qk_norm", "input_embedding_norm",
    "vocab_size",  # not in Marin's files (Marin always uses Llama 3's 128,256 tokens); a byte-level model gives 256
}

HARMLESS = {
    "attn_backend": "which kernel computes attention (splash, flash, reference JAX): the same two products per head",
    "use_flash_attention": "the older spelling of attn_backend: the same products",
    "flash_attention_block_size": "the tile size of a blockwise attention kernel: the same products, tiled",
    "upcast_attn": "attention scores in fp32: precision, not operations",
    "cross_entropy_block_size": "the loss computed in vocabulary blocks: the same lm_head matmul, tiled",
    "gradient_checkpointing": "recomputes activations in the backward pass: hardware FLOPs, which neither Marin's "
                              "model FLOPs nor this site's convention count",
    "scan_layers": "the layers compiled as one scanned loop: the same operations",
    "initializer_range": "the initial weight scale",
    "layer_norm_epsilon": "a constant inside each norm",
    "use_layer_norm_weight": "whether norms have a learned scale: elementwise",
    "rope": "rotary embedding settings (theta, scaling): elementwise rotations of queries and keys",
    "reference_checkpoint": "the Hugging Face checkpoint used for export; the training data's tokenizer is Marin's "
                            "Llama 3 one",
}


def _off(value: Any) -> bool:
    """A switch that is off: Levanter writes False or None, the hackable transformer's gate mode "none"."""
    return value is None or value is False or value == "none"


def _window_active(config: dict, seq_len: int | None) -> bool:
    """Levanter applies a window only with use_sliding_window on and a window shorter than the sequence."""
    window = config.get("sliding_window")
    if _off(config.get("use_sliding_window")) or window is None:
        return False
    return not (isinstance(window, int) and not isinstance(window, bool) and seq_len is not None and window >= seq_len)


# key -> (harmless when, what it does when on)
CONDITIONAL = {
    "use_sliding_window": (lambda c, s: not _window_active(c, s),
                           "sliding_window shorter than the sequence: windowed attention computes fewer scores "
                           "than a Llama's full attention"),
    "sliding_window": (lambda c, s: not _window_active(c, s),
                       "a window shorter than the sequence with use_sliding_window on: fewer attention scores"),
    "max_window_layers": (lambda c, s: not _window_active(c, s), "which layers use the sliding window"),
    "use_gated_attention": (lambda c, s: _off(c.get("use_gated_attention")),
                            "an attention output gate: an extra projection per layer, not a Llama's"),
    "use_gated_deltanet": (lambda c, s: _off(c.get("use_gated_deltanet")),
                           "gated DeltaNet layers replace attention: not a Llama's matmuls"),
    "use_attention_sink": (lambda c, s: _off(c.get("use_attention_sink")),
                           "attention sinks change the attention computation"),
    "use_mup": (lambda c, s: _off(c.get("use_mup")), "muP reparametrisation: not verified to keep a Llama's matmuls"),
    "base_dim": (lambda c, s: c.get("base_dim") is None, "a muP base width: not verified"),
    "tokenizer": (lambda c, s: c.get("tokenizer") is None or "vocab_size" in c,
                  "a tokenizer other than Llama 3's may have another vocabulary (the lm_head's width): give "
                  "vocab_size"),
}


def refusals(config: dict, seq_len: int | None) -> list[str]:
    """Why `config` may not be a Llama's matmuls: one phrase per offending key, each naming it; [] when it is."""
    out = [f"{key}={config[key]!r} ({why})" for key, (ok, why) in CONDITIONAL.items()
           if key in config and not ok(config, seq_len)]
    unknown = sorted(set(config) - READ - set(HARMLESS) - set(CONDITIONAL))
    if unknown:
        shown = ", ".join(unknown[:8]) + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
        out.append(f"unknown key(s) {shown} (may change the matmuls; never guessed)")
    return out


_ACTIVATIONS = {"silu", "swish", "swiglu", "gelu", "gelu_new", "quick_gelu", "relu", "tanh"}  # elementwise, inside the GLU


def _positive_int(config: dict, key: str) -> int | None:
    value = config.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def marin_config(model_config: Any, seq_len: int | None = None) -> tuple[LlamaConfig | None, str]:
    """The Llama with exactly the matmuls of a Marin model config (`run_info.model_config` of a result file), or None
    and the reason, naming the key. `seq_len`, when given, is the training sequence length (Marin's
    `train_seq_len`, a run's `inputs.input_ids[0]`); otherwise the config's max_seq_len (or older seq_len).
    Which keys are accepted and why: READ, HARMLESS and CONDITIONAL above."""
    if not isinstance(model_config, dict):
        return None, f"the model config is a {type(model_config).__name__}, not a mapping of Marin's config keys"
    seqs = {model_config[k] for k in ("max_seq_len", "seq_len") if model_config.get(k) is not None}
    if seq_len is None:
        if len(seqs) != 1:
            return None, ("max_seq_len and seq_len disagree" if seqs else "no max_seq_len (or seq_len): the sequence "
                          "length is needed for the attention")
        seq_len = next(iter(seqs))
    if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len <= 0:
        return None, f"sequence length {seq_len!r} is not a positive integer"
    problems = refusals(model_config, seq_len)
    if problems:
        return None, "not a Llama's matmuls: " + "; ".join(problems)
    dims = {k: _positive_int(model_config, k) for k in
            ("hidden_dim", "intermediate_dim", "num_layers", "num_heads", "num_kv_heads")}
    bad = [k for k, v in dims.items() if v is None]
    if model_config.get("head_dim") is not None and _positive_int(model_config, "head_dim") is None:
        bad.append("head_dim")
    if model_config.get("vocab_size") is not None and _positive_int(model_config, "vocab_size") is None:
        bad.append("vocab_size")
    if bad:
        return None, f"{', '.join(bad)} missing or not a positive integer"
    if dims["num_heads"] % dims["num_kv_heads"]:
        return None, f"num_kv_heads={dims['num_kv_heads']} does not divide num_heads={dims['num_heads']}"
    act = model_config.get("activation_function")
    if act is None:
        # Never guessed: a ReLU² MLP (modded-nanogpt style) names none and has two matrices where SwiGLU has three
        return None, "no activation_function: whether the MLP has SwiGLU's three matrices or two is unknown"
    if act not in _ACTIVATIONS:
        return None, f"activation_function={act!r} is not one this rebuild knows to be elementwise"
    switches = ("tie_word_embeddings", "use_bias", "hybrid_norm", "use_qk_norm", "input_embedding_norm")
    odd = [k for k in switches if model_config.get(k) not in (None, True, False)]
    if odd or not (model_config.get("qk_norm") is None or isinstance(model_config.get("qk_norm"), (bool, dict))):
        return None, f"{', '.join(odd or ['qk_norm'])} is not a switch (true, false or null)"
    return LlamaConfig(
        hidden=dims["hidden_dim"], intermediate=dims["intermediate_dim"], layers=dims["num_layers"],
        heads=dims["num_heads"], kv_heads=dims["num_kv_heads"], seq_len=seq_len,
        vocab=model_config.get("vocab_size") or LLAMA3_VOCAB, head_dim=model_config.get("head_dim"),
        tie_embeddings=bool(model_config.get("tie_word_embeddings")), bias=bool(model_config.get("use_bias")),
        # Levanter's qk-norm is `use_qk_norm`; the hackable transformer's is a norm config (null when off)
        qk_norm=bool(model_config.get("use_qk_norm")) or bool(model_config.get("qk_norm")),
        hybrid_norm=bool(model_config.get("hybrid_norm")),
        input_embedding_norm=bool(model_config.get("input_embedding_norm")),
    ), ""

