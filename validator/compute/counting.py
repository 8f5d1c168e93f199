"""FLOP counting under the site's convention (2 FLOPs per multiply-accumulate, matmul-class ops only,
forward + backward as executed).

Primary counter: `torch.utils.flop_counter.FlopCounterMode` on the meta device (no weights, no compute; attention
falls back to plain matmuls there, so the count is complete). Cross-check: fvcore `FlopCountAnalysis` (forward only,
one per MAC, so doubled), with handles for the ops it counts as zero by default. This module runs inside the
sandboxed child for submitted models, and in-process for models this repo builds itself (the Marin importer).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import select
import threading
import time
from typing import Any, Callable

import torch
import torch.utils.flop_counter as fc

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


_RANDOM_INIT = ("normal_", "uniform_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
                "xavier_normal_", "orthogonal_", "sparse_")


class fast_checks:
    """`torch._check(cond)` imports torch.fx.experimental.symbolic_shapes (and sympy: 0.6 s on torch 2.13) even when
    `cond` is a plain True. Answer that case directly; everything else goes to torch's own function."""

    def __enter__(self):
        self._original = torch._check_with

        def check_with(error_type, cond, message, __original=self._original):
            if cond is True:
                return None
            return __original(error_type, cond, message)

        torch._check_with = check_with
        return self

    def __exit__(self, *exc):
        torch._check_with = self._original


class skip_init_on_meta:
    """Random initialisation of meta tensors does nothing, yet its first call imports torch._dynamo (1.5 s on
    torch 2.13). Skip it for meta tensors only; real tensors are initialised as usual."""

    def __enter__(self):
        self._saved = []
        for owner, names in ((torch.nn.init, _RANDOM_INIT), (torch.Tensor, ("normal_", "uniform_", "random_"))):
            for name in names:
                original = getattr(owner, name, None)
                if original is None:
                    continue
                self._saved.append((owner, name, original))

                def patched(tensor, *args, __original=original, **kwargs):
                    if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                        return tensor
                    return __original(tensor, *args, **kwargs)

                setattr(owner, name, patched)
        return self

    def __exit__(self, *exc):
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)


class _RecordingCounter(fc.FlopCounterMode):
    """FlopCounterMode that also remembers every op it saw, to find matmul-class ops without a formula.
    Recording inside the counter avoids a second dispatch mode (about 20 % of the count's time on meta)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seen: set = set()

    def _count_flops(self, func_packet, out, args, kwargs):
        self.seen.add(func_packet)
        return super()._count_flops(func_packet, out, args, kwargs)


def _predisable_dynamo_wrappers() -> int:
    """torch wraps many meta kernels and refs in `torch._disable_dynamo`, whose first call imports torch._dynamo
    (1.5-2 s on torch 2.13) only to mark the function as not-to-be-compiled. The counting child never compiles, so
    resolve each wrapper to its plain function up front. Returns how many were resolved."""
    import sys
    import types

    from torch import _compile

    probe = _compile._disable_dynamo(lambda: None)
    code = probe.__code__
    resolved = 0
    seen: set[int] = set()

    def visit(root) -> None:
        # Follow __wrapped__ and closure cells: decorators hide the wrapper in either.
        nonlocal resolved
        stack = [root]
        while stack:
            obj = stack.pop()
            if isinstance(obj, functools.partial):
                obj = obj.func
            if not isinstance(obj, types.FunctionType) or id(obj) in seen:
                continue
            seen.add(id(obj))
            if obj.__code__ is code:
                cells = dict(zip(obj.__code__.co_freevars, obj.__closure__ or ()))
                fn = cells["fn"].cell_contents if "fn" in cells else None
                if fn is not None and getattr(fn, "__dynamo_disable", None) is None:
                    try:
                        fn.__dynamo_disable = fn
                        resolved += 1
                    except (AttributeError, TypeError):
                        pass
            wrapped = getattr(obj, "__wrapped__", None)
            if wrapped is not None:
                stack.append(wrapped)
            for cell in obj.__closure__ or ():
                try:
                    stack.append(cell.cell_contents)
                except ValueError:  # empty cell
                    pass

    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(("torch._refs", "torch._decomp", "torch._meta_registrations",
                                                  "torch._prims", "torch.nn.init", "torch.utils.flop_counter",
                                                  "torch.utils._python_dispatch", "torch.utils.module_tracker")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, type):
                for attr in list(vars(value).values()):
                    visit(attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr)
            else:
                visit(value)
    for table in (getattr(torch._decomp, "decomposition_table", {}), getattr(torch._decomp, "meta_table", {})):
        for value in list(table.values()):
            visit(value)
    for op_packet in list(getattr(torch.ops.aten, "__dict__", {}).values()):
        for overload_name in getattr(op_packet, "_dir", []) or []:
            overload = getattr(op_packet, overload_name, None)
            for kernel in getattr(overload, "py_kernels", {}).values():
                visit(kernel)
    return resolved


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


def count_once(model: torch.nn.Module, inputs: Any, backward: bool = True) -> dict:
    """Forward and (if `backward`) forward+backward FLOPs of one call, with a forward breakdown by module."""
    args, kwargs = _as_args(inputs)
    model.train()
    counter = _RecordingCounter(display=False, depth=3 if backward else 1)
    training = None
    with counter:
        out = model(*args, **kwargs)
        forward = counter.get_total_flops()
        by_module = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
        if backward:
            loss = _scalar_loss(out)
            if not loss.requires_grad:
                raise CountingError("flops-no-gradient",
                                    "the model's output does not require grad; no parameter would be trained")
            loss.backward()
            training = int(counter.get_total_flops())
    missing = sorted(
        {str(op).split(".")[-1] for op in counter.seen if MATMUL_CLASS.match(str(op).split(".")[-1])
         and op not in fc.flop_registry}
    )
    # Matmul ops that are counted only through their decomposition would show up here too; the registry holds
    # every op that reaches dispatch with a formula, so what remains really is uncounted.
    return {"forward": int(forward), "training": training, "by_module": by_module, "missing": missing}


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


def _fv_zero(inputs, outputs):
    return 0


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
        # set_op_handle(name, None) only marks the op ignored; fvcore 0.1.5 still finds its default handle first.
        analysis.set_op_handle(name, _fv_zero)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    total = analysis.total()
    unsupported = {k: v for k, v in analysis.unsupported_ops().items()
                   if MATMUL_CLASS.match(k.split("::")[-1]) or k == "prim::PythonOp"}
    model.train()
    return {"forward": int(2 * total), "unsupported": unsupported}


Factory = Callable[[int, str], tuple]

_OUT_OF_MEMORY = ("can't allocate memory", "cannot allocate memory", "out of memory", "bad_alloc")


def _failure(exc: BaseException, what: str) -> CountingError:
    """A CountingError for submitted code that raised: memory exhaustion gets its own rule."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, MemoryError) or any(s in text.lower() for s in _OUT_OF_MEMORY):
        return CountingError("sandbox-memory", f"{what} ran out of memory ({text.splitlines()[0][:200]})")
    return CountingError("flops-model-failed", f"{what} failed: {text}")


def _build(factory: Factory, batch: int, device: str) -> tuple[torch.nn.Module, Any]:
    try:
        if device == "meta":
            with skip_init_on_meta():
                built = factory(batch, device)
        else:
            built = factory(batch, device)
    except CountingError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of submitted code is reported, with its type
        raise _failure(exc, f"building the model at batch {batch} on {device}") from exc
    if not isinstance(built, (tuple, list)) or len(built) < 2 or not isinstance(built[0], torch.nn.Module):
        raise CountingError("flops-bad-entrypoint", "the entrypoint must return (model, inputs[, ...]) with an nn.Module first")
    return built[0], built[1]


def _count_on(factory: Factory, device: str) -> dict:
    out = {}
    for batch in (1, 2):
        model, inputs = _build(factory, batch, device)
        try:
            # Training FLOPs at batch 1; forward only at batch 2 for the linearity check (backward ops are linear
            # in batch size whenever the forward ones are, and this saves a third of the time).
            out[batch] = count_once(model, inputs, backward=batch == 1)
        except CountingError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _failure(exc, f"running the model at batch {batch} on {device}") from exc
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
    _predisable_dynamo_wrappers()
    with fast_checks():
        return _count(factory, fvcore, fvcore_cpu_max_params, t0)


def _count(factory: Factory, fvcore: bool, fvcore_cpu_max_params: int, t0: float) -> dict:
    notes: list[str] = []
    background = _Background(lambda: _fvcore_cross_check(factory, fvcore_cpu_max_params)) if fvcore else None
    try:
        return _count_with(factory, background, notes, t0)
    finally:
        if background is not None:
            background.cancel()


def _count_with(factory: Factory, background: "_Background | None", notes: list[str], t0: float) -> dict:
    device = "meta"
    try:
        counts = _count_on(factory, "meta")
    except CountingError as meta_error:
        if meta_error.rule in ("flops-bad-entrypoint", "flops-bad-output", "flops-no-gradient", "sandbox-memory"):
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
    linear = abs(c2["forward"] - 2 * c1["forward"]) <= 1e-3 * c2["forward"]
    per_forward, per_training = c1["forward"], c1["training"]
    if not linear:
        # A fixed part (independent of batch) would be charged to every sample at batch 1: use the marginal cost.
        marginal = c2["forward"] - c1["forward"]
        notes.append(f"forward FLOPs are not linear in batch size (batch 1: {c1['forward']:.6g}, batch 2: "
                     f"{c2['forward']:.6g}); per-sample figures use the marginal cost of one more sample")
        per_training = per_training * marginal / per_forward if per_forward else per_training
        per_forward = marginal
    result = {
        "device": device,
        "per_sample_forward_flops": per_forward,
        "per_sample_training_flops": per_training,
        "training_forward_ratio": per_training / per_forward if per_forward else None,
        "linear_in_batch": linear,
        "batch_counts": {"1": {"forward": c1["forward"], "training": c1["training"]},
                         "2": {"forward": c2["forward"]}},
        "by_module": c1["by_module"],
        "parameters": counts["parameters"],
        "trainable_parameters": counts["trainable_parameters"],
        "counters": {"torch_flop_counter": {"forward": c1["forward"], "training": c1["training"], "device": device}},
        "notes": notes,
    }
    if background is not None:
        result["counters"]["fvcore"] = background.result()
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result


def _fvcore_cross_check(factory: Factory, cpu_max_params: int) -> dict:
    """fvcore's forward count on meta, or on real CPU tensors at batch 1 where its tracer fails on meta
    (convolutions), unless the model is too large to materialise."""
    tried = []
    params = None
    for dev in ("meta", "cpu"):
        if dev == "cpu" and params is not None and params > cpu_max_params:
            tried.append(f"cpu skipped: {params:,} parameters is too many to materialise for a cross-check")
            break
        try:
            model, inputs = _build(factory, 1, dev)
            params = sum(p.numel() for p in model.parameters())
            out = fvcore_forward(model, inputs)
            out["device"] = dev
            if tried:
                out["note"] = "; ".join(tried)
            return out
        except Exception as exc:  # noqa: BLE001 - fvcore's tracer fails in many ways (e.g. convolutions on meta)
            tried.append(f"{dev}: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
    return {"forward": None, "error": "; ".join(tried)}


class _Background:
    """Run a JSON-returning job in a forked process, so the cross-check uses the second core while the main count
    runs. Falls back to running it in-process (at `result()`) where forking is unsafe (threads) or unavailable."""

    def __init__(self, job: Callable[[], dict], timeout_s: float = 300.0) -> None:
        self.job, self.timeout_s, self.pid, self.fd = job, timeout_s, None, None
        if not hasattr(os, "fork") or threading.active_count() > 1:
            return
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the forked process: do the job, hand back JSON, never return into the caller's code
            os.close(read)
            try:
                payload = json.dumps(job())
            except BaseException as exc:  # noqa: BLE001
                payload = json.dumps({"forward": None, "error": f"{type(exc).__name__}: {exc}"})
            with os.fdopen(write, "w") as fh:
                fh.write(payload)
            os._exit(0)
        os.close(write)
        self.pid, self.fd = pid, read

    def result(self) -> dict:
        if self.pid is None:
            return self.job()
        chunks, deadline = [], time.monotonic() + self.timeout_s
        while True:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                self.cancel()
                return {"forward": None, "error": f"fvcore cross-check did not finish within {self.timeout_s:.0f} s"}
            chunk = os.read(self.fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(self.fd)
        os.waitpid(self.pid, 0)
        self.pid = None
        try:
            return json.loads(b"".join(chunks) or b"{}") or {"forward": None, "error": "cross-check process died"}
        except json.JSONDecodeError:
            return {"forward": None, "error": "cross-check process returned garbage"}

    def cancel(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            os.close(self.fd)
            self.pid = None
