"""FLOP counting under the site's convention (2 FLOPs per multiply-accumulate, matmul-class ops only,
forward + backward as executed).

Primary counter: `torch.utils.flop_counter.FlopCounterMode` on the meta device (no weights, no compute; attention
falls back to plain matmuls there, so the count is complete). Cross-check: fvcore `FlopCountAnalysis` (forward only,
one per MAC, so doubled), with handles for the ops it counts as zero by default. This module runs inside the
sandboxed child for submitted models, and in-process for models this repo builds itself (the Marin importer).
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from typing import Any, Callable

import torch
import torch.utils.flop_counter as fc
from torch.utils._python_dispatch import TorchDispatchMode

# Ops that multiply matrices: each must have a formula, or the count would silently miss it.
MATMUL_CLASS = re.compile(
    r"^(mm|bmm|addmm|baddbmm|addbmm|addmv|mv|dot|vdot|matmul|linear|_?conv|convolution|cudnn_convolution|"
    r"_?convolution_backward|einsum|tensordot|_?scaled_dot_product|_flash_attention|_efficient_attention|"
    r"_cudnn_attention|_native_multi_head_attention|_transformer_encoder_layer_fwd|_addmm_activation|"
    r"_int_mm|_scaled_mm|mkldnn_)"
)


class CountingError(Exception):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def _register_cpu_attention_formula() -> None:
    """On CPU tensors SDPA dispatches to a flash kernel with no formula and counts 0 (torch 2.13); give it the
    same formula as the CUDA flash kernel."""
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None or op in fc.flop_registry:
        return

    @fc.register_flop_formula(op, get_raw=True)
    def _cpu_flash(query, key, value, *args, out_val=None, **kwargs):  # noqa: ARG001
        return fc.sdpa_flop_count(query.shape, key.shape, value.shape)

    bwd = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    if bwd is not None and bwd not in fc.flop_registry:
        @fc.register_flop_formula(bwd, get_raw=True)
        def _cpu_flash_bwd(grad_out, query, key, value, *args, out_val=None, **kwargs):  # noqa: ARG001
            return fc.sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape, value.shape)


_register_cpu_attention_formula()


class _OpRecorder(TorchDispatchMode):
    """Records every aten op that reaches dispatch, to find matmul-class ops without a formula."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func._overloadpacket] += 1
        return func(*args, **(kwargs or {}))


def _as_args(inputs: Any) -> tuple[tuple, dict]:
    if isinstance(inputs, dict):
        return (), inputs
    if isinstance(inputs, (list, tuple)):
        return tuple(inputs), {}
    return (inputs,), {}


def _scalar_loss(out: Any) -> torch.Tensor:
    """Reduce any output to a scalar for backward. The loss's own FLOPs are elementwise: not counted anyway."""
    if isinstance(out, torch.Tensor):
        return out.float().sum()
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        tensors = [_scalar_loss(o) for o in out if isinstance(o, (torch.Tensor, list, tuple, dict))]
        tensors = [t for t in tensors if t.requires_grad]
        if tensors:
            return torch.stack(tensors).sum()
    if hasattr(out, "loss") and isinstance(out.loss, torch.Tensor):
        return out.loss
    raise CountingError("flops-bad-output", f"the model returned {type(out).__name__}; return a tensor, a tuple or a dict of tensors")


def count_once(model: torch.nn.Module, inputs: Any) -> dict:
    """Forward and forward+backward FLOPs of one call, with a forward breakdown by module."""
    args, kwargs = _as_args(inputs)
    model.train()
    counter = fc.FlopCounterMode(display=False, depth=3)
    recorder = _OpRecorder()
    with counter, recorder:
        out = model(*args, **kwargs)
        forward = counter.get_total_flops()
        by_module = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
        loss = _scalar_loss(out)
        if not loss.requires_grad:
            raise CountingError("flops-no-gradient", "the model's output does not require grad; no parameter would be trained")
        loss.backward()
    training = counter.get_total_flops()
    missing = sorted(
        {str(op).split(".")[-1] for op in recorder.ops if MATMUL_CLASS.match(str(op).split(".")[-1])
         and op not in fc.flop_registry}
    )
    # Matmul ops that are counted only through their decomposition would show up here too; the registry holds
    # every op that reaches dispatch with a formula, so what remains really is uncounted.
    return {"forward": int(forward), "training": int(training), "by_module": by_module, "missing": missing}


# fvcore handles. fvcore counts one per MAC and only sees the traced graph's ops.
def _fv_sdpa(inputs, outputs):
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(x) for x in inputs[:3])
    *batch, t, e = q
    s, ev = k[-2], v[-1]
    n = 1
    for b in batch:
        n *= b
    return n * t * s * e + n * t * s * ev


def _fv_baddbmm(inputs, outputs):
    from fvcore.nn.jit_handles import get_shape

    b, n, m = get_shape(inputs[1])
    p = get_shape(inputs[2])[-1]
    return b * n * m * p


_FV_NOT_MATMUL = [
    "aten::batch_norm", "aten::group_norm", "aten::layer_norm", "aten::instance_norm",
    "aten::upsample_nearest2d", "aten::upsample_bilinear2d", "aten::adaptive_avg_pool2d", "aten::grid_sampler",
]


def fvcore_forward(model: torch.nn.Module, inputs: Any) -> dict:
    """fvcore's forward count, doubled to FLOPs, with the matmul-class ops it cannot count listed."""
    from fvcore.nn import FlopCountAnalysis

    args, kwargs = _as_args(inputs)
    if kwargs:
        raise CountingError("fvcore-unsupported", "fvcore traces positional inputs only")
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    model.eval()  # jit.trace in train mode warns about dropout nondeterminism; counts are the same
    analysis = FlopCountAnalysis(model, args)
    analysis.set_op_handle("aten::scaled_dot_product_attention", _fv_sdpa)
    analysis.set_op_handle("aten::baddbmm", _fv_baddbmm)
    for name in _FV_NOT_MATMUL:
        analysis.set_op_handle(name, None)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    total = analysis.total()
    unsupported = {k: v for k, v in analysis.unsupported_ops().items()
                   if MATMUL_CLASS.match(k.split("::")[-1]) or k == "prim::PythonOp"}
    model.train()
    return {"forward": int(2 * total), "unsupported": unsupported}


Factory = Callable[[int, str], tuple]


def _build(factory: Factory, batch: int, device: str) -> tuple[torch.nn.Module, Any]:
    try:
        built = factory(batch, device)
    except CountingError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of submitted code is reported, with its type
        raise CountingError("flops-model-failed", f"building the model at batch {batch} on {device} failed: "
                            f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(built, (tuple, list)) or len(built) < 2 or not isinstance(built[0], torch.nn.Module):
        raise CountingError("flops-bad-entrypoint", "the entrypoint must return (model, inputs[, ...]) with an nn.Module first")
    return built[0], built[1]


def _count_on(factory: Factory, device: str) -> dict:
    out = {}
    for batch in (1, 2):
        model, inputs = _build(factory, batch, device)
        try:
            out[batch] = count_once(model, inputs)
        except CountingError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise CountingError("flops-model-failed", f"running the model at batch {batch} on {device} failed: "
                                f"{type(exc).__name__}: {exc}") from exc
        if batch == 1:
            out["parameters"] = sum(p.numel() for p in model.parameters())
            out["trainable_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return out


def count(factory: Factory, *, fvcore: bool = True, fvcore_cpu_max_params: int = 200_000_000) -> dict:
    """Per-sample forward and training FLOPs of a model factory `factory(batch_size, device)`.

    Counts on meta at batch 1 and 2 (linearity check); falls back to real CPU tensors where meta fails (models with
    data-dependent control flow). Raises CountingError with a rule id when no count is possible.
    """
    t0 = time.perf_counter()
    notes: list[str] = []
    device = "meta"
    try:
        counts = _count_on(factory, "meta")
    except CountingError as meta_error:
        if meta_error.rule in ("flops-bad-entrypoint", "flops-bad-output", "flops-no-gradient"):
            raise
        notes.append(f"meta device failed ({meta_error}); counted on real CPU tensors")
        device = "cpu"
        counts = _count_on(factory, "cpu")
    c1, c2 = counts[1], counts[2]
    missing = sorted(set(c1["missing"]) | set(c2["missing"]))
    if missing:
        raise CountingError("flops-op-without-formula",
                            f"matmul-class op(s) without a FLOP formula: {', '.join(missing)}; counting them as 0 "
                            "would under-report compute")
    if c1["training"] == 0:
        raise CountingError("flops-zero", "the model performs no matmul-class operation; nothing to count")
    linear = abs(c2["training"] - 2 * c1["training"]) <= 1e-3 * c2["training"]
    if not linear:
        notes.append(f"FLOPs are not linear in batch size (batch 1: {c1['training']:.6g}, batch 2: {c2['training']:.6g}); "
                     "per-sample figures use the batch-2 count / 2")
    per_forward = c1["forward"] if linear else c2["forward"] / 2
    per_training = c1["training"] if linear else c2["training"] / 2
    result = {
        "device": device,
        "per_sample_forward_flops": per_forward,
        "per_sample_training_flops": per_training,
        "training_forward_ratio": per_training / per_forward if per_forward else None,
        "linear_in_batch": linear,
        "batch_counts": {"1": {"forward": c1["forward"], "training": c1["training"]},
                         "2": {"forward": c2["forward"], "training": c2["training"]}},
        "by_module": c1["by_module"],
        "parameters": counts["parameters"],
        "trainable_parameters": counts["trainable_parameters"],
        "counters": {"torch_flop_counter": {"forward": c1["forward"], "training": c1["training"], "device": device}},
        "notes": notes,
    }
    if fvcore:
        result["counters"]["fvcore"] = _fvcore_cross_check(factory, device, counts["parameters"], fvcore_cpu_max_params)
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result


def _fvcore_cross_check(factory: Factory, device: str, params: int, cpu_max_params: int) -> dict:
    tried = []
    for dev in (["meta"] if device == "meta" else []) + ["cpu"]:
        if dev == "cpu" and params > cpu_max_params:
            tried.append(f"cpu skipped: {params:,} parameters is too many to materialise for a cross-check")
            break
        try:
            model, inputs = _build(factory, 1, dev)
            out = fvcore_forward(model, inputs)
            out["device"] = dev
            if tried:
                out["note"] = "; ".join(tried)
            return out
        except Exception as exc:  # noqa: BLE001 - fvcore's tracer fails in many ways (e.g. convolutions on meta)
            tried.append(f"{dev}: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
    return {"forward": None, "error": "; ".join(tried)}
