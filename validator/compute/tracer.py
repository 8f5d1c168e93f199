"""Record what a model executes, as data: the sandboxed half of FLOP counting.

Run inside the sandbox as `python -I tracer.py ENTRYPOINT --result-fd N [--no-fvcore]`. It imports the submission,
builds the model at batch 1 and 2 (meta device first, real CPU tensors where meta fails), and records every operator
the forward and backward passes dispatch: its name and, for the ops torch has a FLOP formula for, the shapes of its
arguments and the modules it ran in. For the fvcore cross-check it records the traced graph's matmul-class nodes with
their input shapes. The trace goes to the parent on a pipe as one framed JSON document.

Nothing here counts FLOPs or judges anything: the parent does that, from the trace, in a process that never imports
submitted code (validator/compute/counting.py). A submission can patch anything in this process, so the trace is a
claim about the model like any other; what it cannot do any more is patch the counter or the verdict.

This file imports nothing from `validator`: it runs where the tool's package may be absent.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.util
import json
import os
import re
import sys
import time
from typing import Any, Callable

FRAME = b"SPEEDRUN-TRACE "

# Ops that multiply matrices: each must have a formula, or the count would silently miss it.
MATMUL_CLASS = re.compile(
    r"^(mm|bmm|addmm|baddbmm|addbmm|addmv|mv|dot|vdot|matmul|linear|_?conv|convolution|cudnn_convolution|"
    r"_?convolution_backward|einsum|tensordot|_?scaled_dot_product|_flash_attention|_efficient_attention|"
    r"_cudnn_attention|_native_multi_head_attention|_transformer_encoder_layer_fwd|_addmm_activation|"
    r"_int_mm|_scaled_mm|mkldnn_)"
)
FVCORE_KINDS = ("aten::scaled_dot_product_attention", "aten::baddbmm")  # beyond fvcore's own handles


class TraceError(Exception):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def encode(value: Any) -> Any:
    """An operator argument as JSON: tensors become their shape and dtype, everything else a plain value."""
    import torch

    if isinstance(value, torch.Tensor):
        return {"t": [int(d) for d in value.shape], "d": str(value.dtype).removeprefix("torch.")}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"r": repr(value)[:80]}


def _as_args(inputs: Any) -> tuple[tuple, dict]:
    if isinstance(inputs, dict):
        return (), inputs
    if isinstance(inputs, (list, tuple)):
        return tuple(inputs), {}
    return (inputs,), {}


def _scalar_loss(out: Any):
    """Reduce any output to a scalar for backward. The loss's own FLOPs are elementwise: not counted anyway."""
    import torch

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
    raise TraceError("flops-bad-output", f"the model returned {type(out).__name__}; return a tensor, a tuple or a dict of tensors")


def _recorder_class():
    import torch.utils.flop_counter as fc

    class Recorder(fc.FlopCounterMode):
        """FlopCounterMode's dispatch and decomposition rules, recording each call instead of counting it, so
        the trace holds exactly the calls the counter would have counted."""

        def __init__(self) -> None:
            super().__init__(display=False, depth=None)
            self.seen: set[str] = set()
            self.calls: collections.Counter = collections.Counter()
            self.phase = "forward"

        def _count_flops(self, func_packet, out, args, kwargs):
            name = str(func_packet)
            self.seen.add(name)
            if func_packet in self.flop_registry:
                parents = sorted(set(self.mod_tracker.parents)) if self.phase == "forward" else []
                kw = [[str(k), encode(v)] for k, v in sorted(kwargs.items())]
                key = json.dumps([name, self.phase, encode(list(args)), kw, encode(out), parents])
                self.calls[key] += 1
            return out

    return Recorder


def record_once(model, inputs: Any, backward: bool = True) -> dict:
    """The calls of one forward (and, if `backward`, one backward) pass, aggregated by identical call."""
    args, kwargs = _as_args(inputs)
    model.train()
    recorder = _recorder_class()()
    with recorder:
        out = model(*args, **kwargs)
        if backward:
            loss = _scalar_loss(out)
            if not loss.requires_grad:
                raise TraceError("flops-no-gradient", "the model's output does not require grad; no parameter would be trained")
            recorder.phase = "backward"
            loss.backward()
    calls = [dict(zip(("op", "phase", "args", "kwargs", "out", "modules"), json.loads(k)), n=n)
             for k, n in sorted(recorder.calls.items())]
    return {"calls": calls, "seen": sorted(recorder.seen)}


Factory = Callable[[int, str], tuple]
_OUT_OF_MEMORY = ("can't allocate memory", "cannot allocate memory", "out of memory", "bad_alloc")


def _failure(exc: BaseException, what: str) -> TraceError:
    """A TraceError for submitted code that raised: memory exhaustion gets its own rule."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, MemoryError) or any(s in text.lower() for s in _OUT_OF_MEMORY):
        return TraceError("sandbox-memory", f"{what} ran out of memory ({text.splitlines()[0][:200]})")
    return TraceError("flops-model-failed", f"{what} failed: {text}")


def _build(factory: Factory, batch: int, device: str):
    import torch

    try:
        with _speedups().skip_init_on_meta() if device == "meta" else contextlib.nullcontext():
            built = factory(batch, device)
    except TraceError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of submitted code is reported, with its type
        raise _failure(exc, f"building the model at batch {batch} on {device}") from exc
    if not isinstance(built, (tuple, list)) or len(built) < 2 or not isinstance(built[0], torch.nn.Module):
        raise TraceError("flops-bad-entrypoint", "the entrypoint must return (model, inputs[, ...]) with an nn.Module first")
    return built[0], built[1]


def _speedups():
    """Imported late: it imports torch. In the sandbox this file runs as a script beside speedups.py."""
    if __package__:
        from . import speedups
    else:
        import speedups  # type: ignore[no-redef]
    return speedups


def _record_on(factory: Factory, device: str) -> dict:
    out: dict = {}
    for batch in (1, 2):
        model, inputs = _build(factory, batch, device)
        try:
            # Training at batch 1; forward only at batch 2 for the linearity check (backward ops are linear in
            # batch size whenever the forward ones are, and this saves a third of the time).
            out[str(batch)] = record_once(model, inputs, backward=batch == 1)
        except TraceError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _failure(exc, f"running the model at batch {batch} on {device}") from exc
        if batch == 1:
            out["parameters"] = sum(p.numel() for p in model.parameters())
            out["trainable_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return out


def trace(factory: Factory, *, fvcore: bool = True, fvcore_cpu_max_params: int = 200_000_000) -> dict:
    """Everything the parent needs to count `factory(batch_size, device)`'s FLOPs, as JSON-able data."""
    t0 = time.perf_counter()
    speedups = _speedups()
    speedups.predisable_dynamo_wrappers()
    with speedups.fast_checks():
        background = speedups.Background(lambda: fvcore_graph(factory, fvcore_cpu_max_params)) if fvcore else None
        try:
            notes: list[str] = []
            device = "meta"
            try:
                batches = _record_on(factory, "meta")
            except TraceError as meta_error:
                if meta_error.rule in ("flops-bad-entrypoint", "flops-bad-output", "flops-no-gradient", "sandbox-memory"):
                    raise
                notes.append(f"meta device failed ({meta_error}); counted on real CPU tensors")
                device = "cpu"
                batches = _record_on(factory, "cpu")
            result = {"device": device, "batches": {k: batches[k] for k in ("1", "2")}, "notes": notes,
                      "parameters": batches["parameters"], "trainable_parameters": batches["trainable_parameters"]}
            if background is not None:
                result["fvcore"] = background.result()
        finally:
            if background is not None:
                background.cancel()
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result


def _graph_value(value, depth: int = 0) -> dict:
    """A TorchScript value as fvcore's handles read it: its shape, its constant, or the list it was built from."""
    out: dict = {"sizes": value.type().sizes() if value.isCompleteTensor() else None}
    node = value.node()
    if node.kind() == "prim::Constant":
        try:
            constant = value.toIValue()
            json.dumps(constant)
            out["ivalue"] = constant
        except (RuntimeError, TypeError, ValueError):
            pass
    elif node.kind() == "prim::ListConstruct" and depth == 0:
        out["list"] = [_graph_value(v, 1) for v in node.inputs()]
    return out


def fvcore_graph(factory: Factory, cpu_max_params: int) -> dict:
    """The graph fvcore traces, reduced to the nodes a FLOP handle reads: on meta, or on real CPU tensors at
    batch 1 where fvcore's tracer fails on meta (convolutions), unless the model is too large to materialise."""
    import warnings

    from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS
    import torch

    wanted = set(_DEFAULT_SUPPORTED_OPS) | set(FVCORE_KINDS)
    tried, params = [], None
    for dev in ("meta", "cpu"):
        if dev == "cpu" and params is not None and params > cpu_max_params:
            tried.append(f"cpu skipped: {params:,} parameters is too many to materialise for a cross-check")
            break
        try:
            model, inputs = _build(factory, 1, dev)
            params = sum(p.numel() for p in model.parameters())
            args, kwargs = _as_args(inputs)
            if kwargs:
                raise TraceError("fvcore-unsupported", "fvcore traces positional inputs only")
            model.eval()  # jit.trace in train mode warns about dropout nondeterminism; counts are the same
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                graph, _ = torch.jit._get_trace_graph(model, args)
            nodes, other = [], collections.Counter()
            for node in graph.nodes():
                kind = node.kind()
                if kind == "prim::PythonOp":
                    kind += "." + node.pyname()
                if kind in wanted:
                    nodes.append({"kind": kind, "inputs": [_graph_value(v) for v in node.inputs()],
                                  "outputs": [_graph_value(v) for v in node.outputs()]})
                elif MATMUL_CLASS.match(kind.split("::")[-1]) or kind.startswith("prim::PythonOp"):
                    other[kind] += 1
            out = {"device": dev, "nodes": nodes, "unhandled": dict(other)}
            if tried:
                out["note"] = "; ".join(tried)
            return out
        except Exception as exc:  # noqa: BLE001 - fvcore's tracer fails in many ways (e.g. convolutions on meta)
            tried.append(f"{dev}: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
    return {"error": "; ".join(tried)}


def load_entrypoint(spec: str) -> Factory:
    file, _, func = spec.partition(":")
    path = os.path.abspath(file)
    if not os.path.isfile(path):
        raise TraceError("flops-entrypoint-missing", f"entrypoint file {file!r} does not exist")
    sys.path.insert(0, os.path.dirname(path))
    module_spec = importlib.util.spec_from_file_location("speedrun_submission", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["speedrun_submission"] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - submitted code fails in any way; report it as such
        raise _failure(exc, f"importing {file}") from exc
    fn = getattr(module, func, None)
    if not callable(fn):
        raise TraceError("flops-entrypoint-missing", f"{file} has no function {func!r}")
    return lambda batch, device: fn(batch_size=batch, device=device)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("entrypoint")
    ap.add_argument("--result-fd", type=int, required=True)
    ap.add_argument("--no-fvcore", action="store_true")
    args = ap.parse_args()
    channel = os.fdopen(args.result_fd, "wb")
    sys.stdout = sys.stderr  # the submission's prints go to the log, never near the trace
    try:
        import torch

        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
        payload = {"ok": True, **trace(load_entrypoint(args.entrypoint), fvcore=not args.no_fvcore)}
    except TraceError as exc:
        payload = {"ok": False, "rule": exc.rule, "message": str(exc)}
    except MemoryError:
        payload = {"ok": False, "rule": "sandbox-memory", "message": "the model ran out of memory"}
    except Exception as exc:  # noqa: BLE001 - last resort: a clear line instead of a silent crash
        import traceback

        traceback.print_exc()
        payload = {"ok": False, "rule": "flops-model-failed", "message": f"{type(exc).__name__}: {exc}"}
    data = json.dumps(payload).encode()
    channel.write(FRAME + str(len(data)).encode() + b"\n" + data)
    channel.flush()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the script's folder off the path
    sys.exit(main())
