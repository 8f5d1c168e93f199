"""Real architectures and the FLOP figures their authors published, with the source of each figure.

Every model here is described by a transformers config (the way a run's `model.config` names it) and counted by the
validator's own path: built by trusted code on the meta device, traced, counted in the parent. Shared by
tests/conformance/test_architectures.py (which asserts each row) and benchmarks/flops_bench.py (which prints them).

Units. torchvision publishes `_ops` in GMACs of one forward pass at 224 x 224, to three decimals; open_clip's
docs/model_profile.csv gives GFLOPs (2 per multiply-accumulate) of one image-text pair, to two decimals. Both
are rounded: a count agrees when it rounds to the published digits. PaLM's formula is exact: training FLOPs per
token = 6N + 12·L·H·Q·T (N: the weights of every matmul, the output layer included; H·Q: the attention width;
T: the sequence length), with no causal discount, the convention this project counts in.
"""

from __future__ import annotations

from dataclasses import dataclass

TORCHVISION = "torchvision model weights' `_ops` (GMACs), torchvision/models/{resnet,vision_transformer}.py"
TORCHVISION_URL = "https://docs.pytorch.org/vision/stable/models.html#table-of-all-available-classification-weights"
OPEN_CLIP = "open_clip docs/model_profile.csv, column gflops (image + text)"
OPEN_CLIP_URL = "https://github.com/mlfoundations/open_clip/blob/main/docs/model_profile.csv"
PALM = "PaLM (Chowdhery et al. 2022), appendix B: 6N + 12·L·H·Q·T training FLOPs per token"
PALM_URL = "https://arxiv.org/abs/2204.02311"
IMAGE = {"pixel_values": [3, 224, 224]}


@dataclass(frozen=True)
class Row:
    name: str
    spec: dict  # a run's model.config
    published: float  # in `unit`
    unit: str  # "GMACs forward" | "GFLOPs forward" | "FLOPs training/sample"
    decimals: int | None  # the published precision; None: an exact formula
    source: str
    url: str
    parameters: int | None = None  # published parameter count, where the source gives one

    def ours(self, counted: dict) -> float:
        """Our count in the published unit."""
        if self.unit == "GMACs forward":
            return counted["per_sample_forward_flops"] / 2e9
        if self.unit == "GFLOPs forward":
            return counted["per_sample_forward_flops"] / 1e9
        return counted["per_sample_training_flops"]

    def agrees(self, counted: dict) -> bool:
        ours = self.ours(counted)
        if self.decimals is None:
            return ours == self.published
        return abs(ours - self.published) <= 0.5 * 10 ** -self.decimals + 1e-12


def _tf(architecture: str, config: dict, inputs: dict) -> dict:
    return {"library": "transformers", "architecture": architecture, "config": config, "inputs": inputs}


def palm_training_flops(n_matmul: int, layers: int, width: int, seq: int) -> int:
    """PaLM's count for one sequence of `seq` tokens."""
    return (6 * n_matmul + 12 * layers * width * seq) * seq


# GPT-2 124M (transformers' defaults): 12 layers, width 768, vocabulary 50,257, 1,024 positions; the output layer
# is tied to the token embedding but is still a matmul. Every Conv1D/Linear weight is a matmul weight.
_GPT2_N = 12 * (768 * 3 * 768 + 768 * 768 + 2 * 768 * 3072) + 768 * 50257
# Llama-2-7B's shape (transformers' LlamaConfig defaults) at 4,096 tokens: 32 layers, width 4,096, SwiGLU 11,008,
# untied 32,000-token output layer.
_LLAMA_N = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008) + 4096 * 32000

ROWS = [
    Row("ResNet-50", _tf("ResNetForImageClassification", {"model_type": "resnet", "num_labels": 1000}, IMAGE),
        4.089, "GMACs forward", 3, TORCHVISION, TORCHVISION_URL, 25_557_032),
    Row("ResNet-101", _tf("ResNetForImageClassification",
                          {"model_type": "resnet", "num_labels": 1000, "depths": [3, 4, 23, 3]}, IMAGE),
        7.801, "GMACs forward", 3, TORCHVISION, TORCHVISION_URL, 44_549_160),
    Row("ViT-B/16", _tf("ViTForImageClassification", {"model_type": "vit", "num_labels": 1000}, IMAGE),
        17.564, "GMACs forward", 3, TORCHVISION, TORCHVISION_URL, 86_567_656),
    Row("ViT-B/32", _tf("ViTForImageClassification", {"model_type": "vit", "num_labels": 1000, "patch_size": 32},
                        IMAGE),
        4.409, "GMACs forward", 3, TORCHVISION, TORCHVISION_URL, 88_224_232),
    Row("CLIP ViT-B/32", _tf("CLIPModel", {"model_type": "clip", "vision_config": {"patch_size": 32}},
                             {"input_ids": [77], **IMAGE}),
        14.78, "GFLOPs forward", 2, OPEN_CLIP, OPEN_CLIP_URL),
    Row("CLIP ViT-B/16", _tf("CLIPModel", {"model_type": "clip", "vision_config": {"patch_size": 16}},
                             {"input_ids": [77], **IMAGE}),
        41.09, "GFLOPs forward", 2, OPEN_CLIP, OPEN_CLIP_URL),
    Row("GPT-2 124M", _tf("GPT2LMHeadModel", {"model_type": "gpt2"}, {"input_ids": [1024]}),
        palm_training_flops(_GPT2_N, 12, 768, 1024), "FLOPs training/sample", None, PALM, PALM_URL),
    Row("Llama-2-7B shape, 4,096 tokens", _tf("LlamaForCausalLM", {"model_type": "llama"}, {"input_ids": [4096]}),
        palm_training_flops(_LLAMA_N, 32, 4096, 4096), "FLOPs training/sample", None, PALM, PALM_URL),
]
