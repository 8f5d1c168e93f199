"""The fvcore cross-check, computed by trusted code: fvcore's own FLOP handles applied to the graph nodes the
tracer recorded (kind, input and output shapes, constants), as `FlopCountAnalysis.total()` would apply them to the
traced graph. The handles read nodes through a small interface (`isCompleteTensor`, `type().sizes()`,
`toIValue()`, `node().inputs()`), which `_Value` provides from the recorded data.
"""

from __future__ import annotations

from numbers import Number
from typing import Any

import numpy as np

MAX_NODES = 100_000
_NOT_MATMUL = ("aten::batch_norm", "aten::group_norm", "aten::layer_norm", "aten::instance_norm",
               "aten::upsample_nearest2d", "aten::upsample_bilinear2d", "aten::adaptive_avg_pool2d", "aten::grid_sampler")


class _Bad(Exception):
    pass


class _Value:
    """One recorded TorchScript value, answering the calls fvcore's handles make."""

    def __init__(self, data: Any, depth: int = 0) -> None:
        if not isinstance(data, dict) or depth > 1:
            raise _Bad("a node input is not a recorded value")
        sizes = data.get("sizes")
        if sizes is not None and (not isinstance(sizes, list) or len(sizes) > 16 or not all(
                isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**48 for d in sizes)):
            raise _Bad(f"shape {str(sizes)[:80]}")
        self._sizes = sizes
        self._ivalue = data.get("ivalue")
        self._list = [_Value(v, depth + 1) for v in data.get("list") or []][:64]

    def isCompleteTensor(self) -> bool:  # noqa: N802 - fvcore's name
        return self._sizes is not None

    def type(self) -> "_Value":
        return self

    def sizes(self) -> list[int]:
        return list(self._sizes or [])

    def toIValue(self) -> Any:  # noqa: N802
        return self._ivalue

    def node(self) -> "_Value":
        return self

    def inputs(self) -> list["_Value"]:
        return self._list


def _sdpa(inputs, outputs):
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(x) for x in inputs[:3])
    *batch, t, e = q
    s, ev = k[-2], v[-1]
    n = 1
    for b in batch:
        n *= b
    return n * t * s * e + n * t * s * ev


def _multi_head_attention(inputs, outputs):
    """F.multi_head_attention_forward (nn.MultiheadAttention, training path), in MACs as the jit graph's own ops
    would give them: q, k and v projections, the two attention matmuls, the output projection. Shapes are
    (L, N, E) for the query and (S, N, E) for key and value, as the module passes them."""
    from fvcore.nn.jit_handles import get_shape

    (length, n, e), (s, _, ek), (_, _, ev) = (get_shape(x) for x in inputs[:3])
    return n * (length * e * e + s * ek * e + s * ev * e + 2 * length * s * e + length * e * e)


def _baddbmm(inputs, outputs):
    from fvcore.nn.jit_handles import get_shape

    b, n, m = get_shape(inputs[1])
    p = get_shape(inputs[2])[-1]
    return b * n * m * p


def _einsum(inputs, outputs):
    """fvcore's einsum handle allocates zero arrays of the recorded shapes; the shapes are untrusted, so give
    numpy's path optimiser zero-strided views instead (no memory, same answer)."""
    from fvcore.nn.jit_handles import get_shape

    equation = str(inputs[0].toIValue()).replace(" ", "")
    shapes = [get_shape(v) for v in inputs[1].node().inputs()]
    arrays = [np.broadcast_to(np.zeros(()), s) for s in shapes]
    for line in np.einsum_path(equation, *arrays, optimize="optimal")[1].split("\n"):
        if "optimized flop" in line.lower():
            return int(float(line.split(":")[-1]) / 2)  # numpy counts 2 per MAC; fvcore counts MACs
    raise _Bad("einsum path without a FLOP figure")


def _handles() -> dict:
    from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS

    handles = dict(_DEFAULT_SUPPORTED_OPS)
    handles.update({"aten::scaled_dot_product_attention": _sdpa, "aten::baddbmm": _baddbmm, "aten::einsum": _einsum,
                    "speedrun::multi_head_attention": _multi_head_attention})
    handles.update({name: (lambda inputs, outputs: 0) for name in _NOT_MATMUL})
    return handles


def fvcore_from_graph(graph: Any) -> dict:
    """fvcore's forward count, doubled to FLOPs, with the matmul-class ops it cannot count listed."""
    if not isinstance(graph, dict):
        return {"forward": None, "error": "the cross-check's graph is malformed"}
    if "error" in graph:
        return {"forward": None, "error": str(graph["error"])[:600]}
    nodes, handles, total = graph.get("nodes"), _handles(), 0
    if not isinstance(nodes, list) or len(nodes) > MAX_NODES:
        return {"forward": None, "error": "the cross-check's graph is malformed"}
    try:
        for node in nodes:
            handle = handles.get(node.get("kind")) if isinstance(node, dict) else None
            if handle is None:
                raise _Bad(f"node kind {str(node)[:60]} has no handle")
            counted = handle([_Value(v) for v in node.get("inputs", [])][:64], [_Value(v) for v in node.get("outputs", [])][:8])
            values = counted.values() if hasattr(counted, "values") else [counted]
            for v in values:
                if not isinstance(v, Number) or v < 0:
                    raise _Bad(f"{node['kind']} gave {v!r}")
                total += int(v)
    except Exception as exc:  # noqa: BLE001 - fvcore's handles assert on what they read; untrusted shapes included
        return {"forward": None, "error": f"the cross-check's graph could not be counted: {type(exc).__name__}: {str(exc)[:160]}"}
    unhandled = graph.get("unhandled") if isinstance(graph.get("unhandled"), dict) else {}
    out = {"forward": 2 * total, "device": graph.get("device") if graph.get("device") in ("meta", "cpu") else None,
           "unsupported": {str(k)[:80]: int(v) for k, v in list(unhandled.items())[:50] if isinstance(v, int)}}
    if graph.get("note"):
        out["note"] = str(graph["note"])[:600]
    return out
