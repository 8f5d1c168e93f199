"""Export what a JAX model computes, as data: the sandboxed half of counting a JAX run.

Run inside the sandbox as `python -I jaxtrace.py ENTRYPOINT --result-fd N`. It imports the submission, calls its
`build_for_flops(batch_size)` for batch sizes 2 and 4, which returns `(loss_fn, params, batch)`, and exports with
abstract shapes only (no array of the model's size is ever made) two functions per batch size:

- `forward`:  `loss_fn(params, batch) -> scalar`
- `training`: `jax.value_and_grad(loss_fn)(params, batch) -> (scalar, grads)`

each as `jax.export.export(jax.jit(f))(*avals)`, serialised (StableHLO bytecode in a flatbuffer) and sent to the parent
base64-encoded in one framed JSON document, with the parameter count the submission sees.

Nothing here counts or judges: no FLOP figure is sent. The parent hands the modules to a second process that never
imports submitted code (jaxcount.py), which compiles them for the CPU and reads XLA's cost analysis. A submission
can patch anything in this process, so the modules are a claim about the model like a torch trace is.

This file imports nothing from `validator`: it runs where the tool's package may be absent.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import sys
import time
from typing import Any

FRAME = b"SPEEDRUN-JAX "
# Not batch 1: XLA rewrites a dot whose contraction has size 1 (the weight gradient of a one-sample batch) into an
# elementwise multiply, counting half the FLOPs (a 64-128-10 MLP's training step: 31,586 at batch 1, 40,926 per
# sample at any batch from 2 to 16). Batch 2 and 4 are the smallest where every count is linear.
BATCHES = (2, 4)


class ExportError(Exception):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def _failure(exc: BaseException, what: str) -> ExportError:
    text = f"{type(exc).__name__}: {exc}"
    low = text.lower()
    if isinstance(exc, MemoryError) or "out of memory" in low or "cannot allocate memory" in low:
        return ExportError("sandbox-memory", f"{what} ran out of memory ({text.splitlines()[0][:200]})")
    missing = exc
    for _ in range(8):  # the ModuleNotFoundError behind a failure, as tracer.py finds it
        if missing is None or isinstance(missing, ModuleNotFoundError):
            break
        missing = missing.__cause__ or missing.__context__
    if isinstance(missing, ModuleNotFoundError) and str(missing).startswith("speedrun: undeclared import"):
        return ExportError("env-undeclared-import", f"{what} failed: {missing}")  # importguard.PREFIX
    if isinstance(missing, ModuleNotFoundError):
        return ExportError("env-module-missing", f"{what} failed: {text[:300]}: the track's environment lacks module "
                           f"{missing.name!r} (no declared package provides it)")
    return ExportError("flops-model-failed", f"{what} failed: {text[:1500]}")


def load_entrypoint(spec: str):
    file, _, func = spec.partition(":")
    path = os.path.abspath(file)
    if not os.path.isfile(path):
        raise ExportError("flops-entrypoint-missing", f"entrypoint file {file!r} does not exist")
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
        raise ExportError("flops-entrypoint-missing", f"{file} has no function {func!r}")
    return fn


def _abstract(tree: Any):
    """Every leaf as a jax.ShapeDtypeStruct: real arrays are accepted but only their shape and dtype are kept."""
    import jax

    def leaf(x):
        if not (hasattr(x, "shape") and hasattr(x, "dtype")):
            raise ExportError("flops-bad-entrypoint", f"a leaf of params or batch is {type(x).__name__}, not an "
                              "array or jax.ShapeDtypeStruct")
        return jax.ShapeDtypeStruct(tuple(int(d) for d in x.shape), x.dtype)

    return jax.tree_util.tree_map(leaf, tree)


def export_batch(fn, batch_size: int) -> dict:
    """The forward and training modules of one batch size, serialised and base64-encoded."""
    import jax
    from jax import export

    try:
        built = fn(batch_size=batch_size)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _failure(exc, f"build_for_flops(batch_size={batch_size})") from exc
    if not isinstance(built, (tuple, list)) or len(built) != 3 or not callable(built[0]):
        raise ExportError("flops-bad-entrypoint", "build_for_flops(batch_size) must return (loss_fn, params, batch)")
    loss_fn, params, batch = built[0], _abstract(built[1]), _abstract(built[2])
    out = {"parameters": sum(int(_size(a.shape)) for a in jax.tree_util.tree_leaves(params))}
    try:
        value = jax.eval_shape(loss_fn, params, batch)
    except Exception as exc:  # noqa: BLE001
        raise _failure(exc, f"tracing loss_fn at batch {batch_size}") from exc
    if not hasattr(value, "shape") or tuple(value.shape) != ():
        raise ExportError("flops-bad-output", f"loss_fn returned {getattr(value, 'shape', type(value).__name__)}; "
                          "it must return a scalar loss")
    for name, f in (("forward", loss_fn), ("training", jax.value_and_grad(loss_fn))):
        try:
            exported = export.export(jax.jit(f), platforms=["cpu"])(params, batch)
            blob = exported.serialize()
        except Exception as exc:  # noqa: BLE001
            raise _failure(exc, f"exporting the {name} step at batch {batch_size}") from exc
        out[name] = base64.b64encode(bytes(blob)).decode("ascii")
    return out


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def trace(fn) -> dict:
    t0 = time.perf_counter()
    batches = {str(b): export_batch(fn, b) for b in BATCHES}
    return {"batches": batches, "parameters": batches[str(BATCHES[0])]["parameters"], "seconds": round(time.perf_counter() - t0, 3)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("entrypoint")
    ap.add_argument("--result-fd", type=int, required=True)
    ap.add_argument("--allowed-imports", help="JSON list of the modules the track allows (importguard.py)")
    args = ap.parse_args()
    channel = os.fdopen(args.result_fd, "wb")
    sys.stdout = sys.stderr  # the submission's prints go to the log, never near the result
    try:
        try:
            import flatbuffers  # noqa: F401 - Exported.serialize needs it; jax does not depend on it
            import jax
        except ImportError as exc:
            raise ExportError("jax-unavailable", f"jax cannot be imported in the run's environment ({exc}); the "
                              "track's environment must declare jax and flatbuffers") from exc
        jax.config.update("jax_platforms", "cpu")
        if args.allowed_imports is not None:  # the track's declared packages, checked as the submission imports
            import importguard

            importguard.install(json.loads(args.allowed_imports), [os.getcwd()])  # cwd: the run's copy
        payload = {"ok": True, "jax": jax.__version__, **trace(load_entrypoint(args.entrypoint))}
    except ExportError as exc:
        payload = {"ok": False, "rule": exc.rule, "message": str(exc)}
    except MemoryError:
        payload = {"ok": False, "rule": "sandbox-memory", "message": "the model ran out of memory"}
    except Exception as exc:  # noqa: BLE001 - last resort: a clear line instead of a silent crash
        import traceback

        traceback.print_exc()
        payload = {"ok": False, "rule": "flops-model-failed", "message": f"{type(exc).__name__}: {exc}"[:1500]}
    data = json.dumps(payload).encode()
    channel.write(FRAME + str(len(data)).encode() + b"\n" + data)
    channel.flush()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the tool folder (importguard) off
    sys.exit(main())
