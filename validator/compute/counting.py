"""FLOP counting under the site's convention (2 FLOPs per multiply-accumulate, matmul-class ops only,
forward + backward as executed), computed by trusted code from a trace.

The trace (validator/compute/tracer.py) lists the operators a model dispatched with their argument shapes; it is
made in the sandbox for submitted models and in-process for models this repo builds itself (the Marin importer).
This module turns it into FLOPs with torch's own formulas (`torch.utils.flop_counter`), applied here to meta tensors
of the recorded shapes, and cross-checks the forward pass with fvcore's handles applied to the recorded graph nodes.
It never imports submitted code, and it treats the trace as untrusted data: bounded, type-checked, and any
malformed part is a `flops-bad-trace` problem, never an exception.
"""

from __future__ import annotations

import collections
from typing import Any, Callable

import torch
import torch.utils.flop_counter as fc

from . import speedups  # noqa: F401 - registers the CPU attention formula, as in the tracer
from .tracer import MATMUL_CLASS, TraceError

MAX_CALLS = 200_000
MAX_DIMS = 16
MAX_DIM = 2**48
REGISTRY = {str(packet): packet for packet in fc.flop_registry}


class CountingError(Exception):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def _bad(what: str) -> CountingError:
    return CountingError("flops-bad-trace", f"the model's trace is malformed: {what}")


def _decode(value: Any, depth: int = 0) -> Any:
    """A recorded argument back as the formulas expect it: meta tensors of the recorded shape cost no memory."""
    if depth > 8:
        raise _bad("arguments nested too deeply")
    if isinstance(value, dict) and "t" in value:
        shape = value["t"]
        if not isinstance(shape, list) or len(shape) > MAX_DIMS or \
                not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < MAX_DIM for d in shape):
            raise _bad(f"tensor shape {str(shape)[:80]}")
        dtype = getattr(torch, str(value.get("d")), None)
        return torch.empty(shape, dtype=dtype if isinstance(dtype, torch.dtype) else torch.float32, device="meta")
    if isinstance(value, dict):
        return str(value.get("r", ""))[:80]
    if isinstance(value, list):
        return [_decode(v, depth + 1) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise _bad(f"unexpected value {type(value).__name__}")


def _call_flops(call: dict) -> int:
    packet = REGISTRY.get(call.get("op"))
    if packet is None:
        raise _bad(f"{str(call.get('op'))[:60]!r} is not an operator with a FLOP formula")
    args, pairs, out = _decode(call.get("args", [])), _decode(call.get("kwargs", [])), _decode(call.get("out"))
    if not isinstance(args, list) or not isinstance(pairs, list) or \
            not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
        raise _bad("arguments are not a list and keyword pairs")
    kwargs = dict(pairs)
    try:
        flops = fc.flop_registry[packet](*args, **kwargs, out_val=out)
    except Exception as exc:  # noqa: BLE001 - recorded arguments the formula cannot read
        raise _bad(f"{call['op']}: {type(exc).__name__}: {str(exc)[:120]}") from exc
    if not isinstance(flops, int) or flops < 0:
        raise _bad(f"{call['op']} gave {flops!r} FLOPs")
    if "attention" in call["op"] and call["op"].endswith("_backward"):
        flops = _without_recompute(call["op"], args, flops)
    return flops


def _without_recompute(op: str, args: list, flops: int) -> int:
    """An attention backward as the math path executes it, on every backend: four matmuls, twice the forward.
    Fused kernels' formulas also charge the recomputed scores, q·kᵀ: 2·B·Sq·Sk·(3·Dq + 2·Dv) in all, of which
    2·B·Sq·Sk·(2·Dq + 2·Dv) remain without it. Left as the formula gave it when the head sizes are unreadable."""
    first = 0 if op.startswith("flex_attention") else 1  # the others take grad_out first
    q, v = (args[first:first + 3] + [None, None, None])[0:3:2]
    if not (isinstance(q, torch.Tensor) and isinstance(v, torch.Tensor) and q.dim() >= 2 and v.dim() >= 2):
        return flops
    dq, dv = q.shape[-1], v.shape[-1]
    return flops * 2 * (dq + dv) // (3 * dq + 2 * dv)


def _tally(batch: dict) -> dict:
    """Forward and training FLOPs of one recorded batch, the forward breakdown by module, and formula-less ops."""
    calls, seen = batch.get("calls"), batch.get("seen")
    if not isinstance(calls, list) or not isinstance(seen, list) or len(calls) > MAX_CALLS or len(seen) > MAX_CALLS:
        raise _bad("calls or seen ops missing or too many")
    forward = backward = 0
    by_module: dict[str, int] = collections.defaultdict(int)
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("n"), int) or not 1 <= call["n"] <= 10**9 \
                or call.get("phase") not in ("forward", "backward"):
            raise _bad("a call without a valid phase or count")
        flops = _call_flops(call) * call["n"]
        if call["phase"] == "forward":
            forward += flops
            for module in call.get("modules") or []:
                by_module[str(module)[:200]] += flops
        else:
            backward += flops
    missing = sorted({str(op).split(".")[-1] for op in seen
                      if MATMUL_CLASS.match(str(op).split(".")[-1]) and str(op) not in REGISTRY})
    # Matmul ops counted only through their decomposition never reach the recorder undecomposed, so what
    # remains here really is uncounted.
    return {"forward": forward, "training": forward + backward, "by_module": dict(by_module), "missing": missing}


def flops_from_trace(trace: Any) -> dict:
    """Per-sample forward and training FLOPs from a tracer's trace. Raises CountingError with a rule id."""
    if not isinstance(trace, dict) or not isinstance(trace.get("batches"), dict):
        raise _bad("no batches")
    batches = trace["batches"]
    if not isinstance(batches.get("1"), dict) or not isinstance(batches.get("2"), dict):
        raise _bad("batch 1 or 2 missing")
    c1, c2 = _tally(batches["1"]), _tally(batches["2"])
    device = trace.get("device") if trace.get("device") in ("meta", "cpu") else "unknown"
    notes = [str(n)[:500] for n in trace.get("notes", [])[:10]] if isinstance(trace.get("notes"), list) else []
    missing = sorted(set(c1["missing"]) | set(c2["missing"]))
    if missing:
        raise CountingError("flops-op-without-formula",
                            f"matmul-class op(s) without a FLOP formula: {', '.join(missing)}; counting them as 0 "
                            "would under-report compute")
    if c1["training"] == 0:
        raise CountingError("flops-zero", "the model performs no matmul-class operation; nothing to count")
    linear = abs(c2["forward"] - 2 * c1["forward"]) <= 1e-3 * c2["forward"]
    per_forward, per_training = c1["forward"], c1["training"]
    if not linear:
        # A fixed part (independent of batch) would be charged to every sample at batch 1: use the marginal cost.
        marginal = c2["forward"] - c1["forward"]
        notes.append(f"forward FLOPs are not linear in batch size (batch 1: {c1['forward']:.6g}, batch 2: "
                     f"{c2['forward']:.6g}); per-sample figures use the marginal cost of one more sample")
        per_training = per_training * marginal / per_forward if per_forward else per_training
        per_forward = marginal
    params = [trace.get(k) for k in ("parameters", "trainable_parameters")]
    if not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in params):
        raise _bad("parameter counts")
    result = {
        "device": device,
        "per_sample_forward_flops": per_forward,
        "per_sample_training_flops": per_training,
        "training_forward_ratio": per_training / per_forward if per_forward else None,
        "linear_in_batch": linear,
        "batch_counts": {"1": {"forward": c1["forward"], "training": c1["training"]},
                         "2": {"forward": c2["forward"]}},
        "by_module": c1["by_module"],
        "parameters": params[0],
        "trainable_parameters": params[1],
        "counters": {"torch_flop_counter": {"forward": c1["forward"], "training": c1["training"], "device": device}},
        "notes": notes,
    }
    if "fvcore" in trace:
        from .fvcore_check import fvcore_from_graph

        result["counters"]["fvcore"] = fvcore_from_graph(trace["fvcore"])
    if isinstance(trace.get("seconds"), (int, float)):
        result["seconds"] = trace["seconds"]
    return result


Factory = Callable[[int, str], tuple]


def count(factory: Factory, *, fvcore: bool = True, fvcore_cpu_max_params: int = 200_000_000) -> dict:
    """Count a model this process may run itself (trusted code, never a submission): trace it here, then count
    the trace exactly as a sandboxed trace is counted."""
    from .tracer import trace

    try:
        recorded = trace(factory, fvcore=fvcore, fvcore_cpu_max_params=fvcore_cpu_max_params)
    except TraceError as exc:
        raise CountingError(exc.rule, str(exc)) from exc
    return flops_from_trace(recorded)
