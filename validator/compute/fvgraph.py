"""The forward's matmul-class calls as the graph nodes fvcore's handles read: the cross-check's capture.

fvcore traces with `torch.jit.trace`, which fails on meta for every convolution and is deprecated. This captures the
same calls one level up, at the torch-function level, with a TorchFunctionMode: each call to linear, matmul, mm, bmm,
addmm, baddbmm, einsum, a convolution, scaled_dot_product_attention or multi_head_attention_forward becomes a node
holding the kind `torch.jit.trace` would have recorded and its inputs' shapes and constants, laid out as the jit
graph's (fvcore's handles read them by position). The parent applies fvcore's handles to the nodes
(fvcore_check.py). Like tracer.py, this imports nothing from `validator`: it runs as a tool file in the sandbox.
"""

from __future__ import annotations

import collections
import json
from typing import Any


def _node_value(value: Any) -> dict:
    """An argument as fvcore's handles read a graph value: a tensor's shape, or a JSON-able constant."""
    import torch

    if isinstance(value, torch.Tensor):
        return {"sizes": [int(d) for d in value.shape]}
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
        return {"sizes": None, "list": [_node_value(v) for v in value[:64]]}
    try:
        json.dumps(value)
        return {"sizes": None, "ivalue": value}
    except (TypeError, ValueError):
        return {"sizes": None}


def _function_kinds() -> dict:
    """Python-level torch functions and the graph node kind `torch.jit.trace` would record for each (what fvcore's
    handles are keyed by). multi_head_attention_forward runs its projections inside one call the mode cannot look
    into, so it is recorded whole and counted by a handle of its own."""
    import torch
    import torch.nn.functional as F

    t = torch.Tensor
    kinds = {F.linear: "aten::linear", torch.mm: "aten::mm", t.mm: "aten::mm", torch.bmm: "aten::bmm",
             t.bmm: "aten::bmm", torch.addmm: "aten::addmm", t.addmm: "aten::addmm", torch.baddbmm: "aten::baddbmm",
             t.baddbmm: "aten::baddbmm", torch.einsum: "aten::einsum",
             F.scaled_dot_product_attention: "aten::scaled_dot_product_attention",
             F.multi_head_attention_forward: "speedrun::multi_head_attention"}
    kinds.update({f: "aten::matmul" for f in (torch.matmul, t.matmul, t.__matmul__)})
    kinds.update({f: "aten::_convolution" for f in (F.conv1d, F.conv2d, F.conv3d, torch.conv1d, torch.conv2d,
                                                    torch.conv3d)})
    kinds.update({f: "aten::_convolution_transposed" for f in (F.conv_transpose1d, F.conv_transpose2d,
                                                               F.conv_transpose3d)})
    return kinds


def _node(kind: str, args: tuple, kwargs: dict, out: Any) -> dict:
    """The recorded node, its inputs laid out as the jit graph's are (fvcore's handles read them by position)."""
    if kind == "aten::einsum":
        operands = args[1] if len(args) == 2 and isinstance(args[1], (list, tuple)) else args[1:]
        inputs = [_node_value(args[0]), _node_value(list(operands))]
    elif kind.startswith("aten::_convolution"):
        # aten::_convolution's 12 inputs (x, w, bias, stride, padding, dilation, transposed, output padding, groups,
        # three cudnn flags): fvcore checks there are 12 and reads x, w, `transposed` and the output
        inputs = [_node_value(args[0]), _node_value(args[1] if len(args) > 1 else kwargs.get("weight"))] + \
            [_node_value(None)] * 4 + [_node_value(kind.endswith("transposed"))] + [_node_value(None)] * 5
        kind = "aten::_convolution"
    elif kind == "speedrun::multi_head_attention":
        names = ("query", "key", "value", "embed_dim_to_check", "num_heads")
        inputs = [_node_value(args[i] if i < len(args) else kwargs.get(n)) for i, n in enumerate(names)]
    else:
        # positional, as the graph has them; a weight given by keyword goes where the linear handle reads it
        inputs = [_node_value(a) for a in args] + ([_node_value(kwargs["weight"])] if len(args) == 1 and "weight" in kwargs else [])
    outs = out if isinstance(out, (list, tuple)) else [out]
    return {"kind": kind, "inputs": inputs[:64], "outputs": [_node_value(o) for o in outs[:8]]}


def _capture_class(other_pattern):
    from torch.overrides import TorchFunctionMode

    kinds = _function_kinds()

    class Capture(TorchFunctionMode):
        """Every matmul-class call the forward makes at the torch-function level, as graph nodes for fvcore."""

        def __init__(self) -> None:
            super().__init__()
            self.nodes: list[dict] = []
            self.other: collections.Counter = collections.Counter()

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            kind = kinds.get(func)
            if kind is not None:
                self.nodes.append(_node(kind, args, kwargs, out))
            elif other_pattern.match(getattr(func, "__name__", "")):
                self.other[f"aten::{func.__name__}"] += 1
            return out

    return Capture


def capture(model, args: tuple, kwargs: dict, other_pattern) -> dict:
    """Run the model's forward once and return its nodes, and a count of the other matmul-like calls (named as
    `other_pattern` matches) that no handle reads."""
    recorder = _capture_class(other_pattern)()
    with recorder:
        model(*args, **kwargs)
    return {"nodes": recorder.nodes, "unhandled": dict(recorder.other)}
