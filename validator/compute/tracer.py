"""Record what a model executes, as data: the sandboxed half of FLOP counting.

Run inside the sandbox as `python -I tracer.py ENTRYPOINT --result-fd N [--no-fvcore]`. It imports the submission,
builds the model at batch 1 and 2 (meta device first, real CPU tensors where meta fails), and records every operator
the forward and backward passes dispatch: its name and, for the ops torch has a FLOP formula for, the shapes of its
arguments and the modules it ran in. For the fvcore cross-check it records the forward's matmul-class calls, as the
graph nodes fvcore's handles read, with their shapes. The trace goes to the parent on a pipe as one framed JSON document.

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
    missing = _module_not_found(exc)
    if missing is not None and str(missing).startswith("speedrun: undeclared import"):  # importguard.PREFIX
        return TraceError("env-undeclared-import", f"{what} failed: {missing}")
    if missing is not None:
        return TraceError("env-module-missing", f"{what} failed: {text}: the track's environment lacks module "
                          f"{missing.name!r} (no declared package provides it)")
    return TraceError("flops-model-failed", f"{what} failed: {text}")


def _module_not_found(exc: BaseException) -> ModuleNotFoundError | None:
    """The ModuleNotFoundError behind a failure; libraries often re-raise it as another error (lazy imports)."""
    for _ in range(8):
        if exc is None or isinstance(exc, ModuleNotFoundError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _build(factory: Factory, batch: int, device: str):
    import torch

    try:
        # On meta, meta is also the default device: a model built without `device=` (a library's constructor, a
        # script that ignores the argument) costs nothing instead of its weights' size in real memory.
        with (torch.device("meta") if device == "meta" else contextlib.nullcontext()), \
                (_speedups().skip_init_on_meta() if device == "meta" else contextlib.nullcontext()):
            built = factory(batch, device)
    except TraceError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of submitted code is reported, with its type
        raise _failure(exc, f"building the model at batch {batch} on {device}") from exc
    if not isinstance(built, (tuple, list)) or len(built) < 2 or not isinstance(built[0], torch.nn.Module):
        raise TraceError("flops-bad-entrypoint", "the entrypoint must return (model, inputs[, ...]) with an nn.Module first")
    return built[0], built[1]


def _importguard():
    if __package__:
        from . import importguard
    else:
        import importguard  # type: ignore[no-redef]
    return importguard


def _fvgraph():
    """The fvcore cross-check's graph capture, beside this file in the sandbox."""
    if __package__:
        from . import fvgraph
    else:
        import fvgraph  # type: ignore[no-redef]
    return fvgraph


def _speedups():
    """Imported late: it imports torch. In the sandbox this file runs as a script beside speedups.py."""
    if __package__:
        from . import speedups
    else:
        import speedups  # type: ignore[no-redef]
    return speedups


def _record_on(factory: Factory, device: str, batches: tuple[int, ...] = (1, 2)) -> dict:
    out: dict = {}
    for batch in batches:
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


def _side_job(factory: Factory, fvcore: bool, fvcore_cpu_max_params: int) -> dict:
    """What the second core does while the first records batch 1's training pass: the linearity check's batch-2
    forward on meta, and the fvcore cross-check's graph."""
    out: dict = {}
    try:
        out["2"] = _record_on(factory, "meta", (2,))["2"]
    except Exception:  # noqa: BLE001 - the main process records it again, and reports any failure itself
        pass
    if fvcore:
        out["fvcore"] = fvcore_graph(factory, fvcore_cpu_max_params)
    return out


def trace(factory: Factory, *, fvcore: bool = True, fvcore_cpu_max_params: int = 200_000_000) -> dict:
    """Everything the parent needs to count `factory(batch_size, device)`'s FLOPs, as JSON-able data."""
    t0 = time.perf_counter()
    speedups = _speedups()
    speedups.predisable_dynamo_wrappers()
    with speedups.fast_checks():
        side = speedups.Background(lambda: _side_job(factory, fvcore, fvcore_cpu_max_params))
        try:
            notes: list[str] = []
            device = "meta"
            try:
                batches = _record_on(factory, "meta", (1,))
            except TraceError as meta_error:
                if meta_error.rule in ("flops-bad-entrypoint", "flops-bad-output", "flops-no-gradient", "sandbox-memory",
                                       "env-undeclared-import", "env-module-missing"):
                    raise
                notes.append(f"meta device failed ({meta_error}); counted on real CPU tensors")
                device = "cpu"
                batches = _record_on(factory, "cpu")
            extra = side.result()
            if "2" not in batches:
                batches["2"] = extra["2"] if isinstance(extra.get("2"), dict) else _record_on(factory, "meta", (2,))["2"]
            result = {"device": device, "batches": {k: batches[k] for k in ("1", "2")}, "notes": notes,
                      "parameters": batches["parameters"], "trainable_parameters": batches["trainable_parameters"]}
            if fvcore:
                result["fvcore"] = extra.get("fvcore") or {"error": extra.get("error") or "the cross-check did not run"}
        finally:
            side.cancel()
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result


def fvcore_graph(factory: Factory, cpu_max_params: int) -> dict:
    """The forward's matmul-class calls as the graph nodes fvcore's handles read, captured at the torch-function
    level (torch.jit.trace, fvcore's own tracer, fails on meta for any convolution and is deprecated): on meta,
    or on real CPU tensors at batch 1 where the model cannot run on meta, unless it is too large to materialise."""
    tried, params = [], None
    for dev in ("meta", "cpu"):
        if dev == "cpu" and params is not None and params > cpu_max_params:
            tried.append(f"cpu skipped: {params:,} parameters is too many to materialise for a cross-check")
            break
        try:
            model, inputs = _build(factory, 1, dev)
            params = sum(p.numel() for p in model.parameters())
            args, kwargs = _as_args(inputs)
            model.train()
            out = {"device": dev, **_fvgraph().capture(model, args, kwargs, MATMUL_CLASS)}
            if tried:
                out["note"] = "; ".join(tried)
            return out
        except Exception as exc:  # noqa: BLE001 - the model may not run on meta (data-dependent code)
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


def _from_config(path: str) -> Factory:
    """The factory of a run's model.config, built by trusted code (fromconfig.py): no run file is imported."""
    if __package__:
        from . import fromconfig
    else:
        import fromconfig  # type: ignore[no-redef]
    try:
        with open(path, encoding="utf-8") as fh:
            return fromconfig.factory(json.load(fh))
    except fromconfig.ConfigError as exc:
        raise TraceError("model-config-invalid", str(exc)) from exc
    except ModuleNotFoundError as exc:
        raise TraceError("env-module-missing", f"model.config.library needs {exc.name!r}, which this track's "
                         "environment does not install: declare it in track.yaml environment.packages") from exc


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("entrypoint", nargs="?")
    ap.add_argument("--config", help="a JSON file holding a run's model.config: build it with fromconfig.py instead")
    ap.add_argument("--result-fd", type=int, required=True)
    ap.add_argument("--no-fvcore", action="store_true")
    ap.add_argument("--allowed-imports", help="JSON list of the modules the track allows (importguard.py)")
    args = ap.parse_args()
    channel = os.fdopen(args.result_fd, "wb")
    sys.stdout = sys.stderr  # the submission's prints go to the log, never near the trace
    try:
        import torch

        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
        if args.allowed_imports is not None:
            _importguard().install(json.loads(args.allowed_imports), [os.getcwd()])  # cwd: the run's copy
        factory = _from_config(args.config) if args.config else load_entrypoint(args.entrypoint)
        payload = {"ok": True, **trace(factory, fvcore=not args.no_fvcore)}
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
