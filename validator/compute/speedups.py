"""Start-up shortcuts for the tracer (each saves a second or more of torch's lazy imports) and a forked helper that
runs the fvcore trace on the second core. Like tracer.py, this imports nothing from `validator`."""

from __future__ import annotations

import functools
import json
import os
import select
import threading
import time
from typing import Callable

import torch
import torch.utils.flop_counter as fc


def register_cpu_attention_formula() -> None:
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


register_cpu_attention_formula()


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


def predisable_dynamo_wrappers() -> int:
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


class Background:
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
