"""Compile the modules a JAX submission exported and read XLA's cost analysis: the trusted half of counting.

Run as `python -I jaxcount.py MODULES_JSON --result-fd N`, where MODULES_JSON holds what jaxtrace.py sent. For every
serialised `jax.export.Exported` it deserialises the module, compiles it for the CPU (`jax.jit(exp.call).lower(...)
.compile()`, never executed) and reports, as facts for the parent to judge (jaxrecount.py):

- XLA's `cost_analysis()`: flops and transcendentals, which count what XLA runs after optimisation;
- the custom_call targets in the submitted StableHLO and in the optimised HLO (XLA cannot cost a custom call);
- every `while` loop of the optimised HLO, its known trip count, and whether its body or condition (with everything
  they call) holds a dot or convolution, or any floating-point arithmetic: XLA's cost analysis counts a loop body
  once, whatever its trip count;
- the shapes of the parameters, the batch and the outputs, from the module itself rather than from the submission.

No submitted code runs here: the modules are data. The process is still run in the same bubblewrap sandbox, with
only this file inside, rather than as a plain subprocess: deserialising and compiling hostile bytes goes through
C++ parsers (flatbuffers, MLIR bytecode, XLA) that are not hardened against crafted input, and a crash or an exploit
there must reach nothing but this throwaway process under the sandbox's memory and time caps. The worst it can then
do is forge the facts it reports, which a submission controls anyway through what it exports; see docs/jax.md.

This file imports nothing from `validator` (it runs in the sandbox with only itself) and only the standard library at
import time: the parent imports it for `FRAME` without needing jax.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import re
import sys
import time

FRAME = b"SPEEDRUN-JAXCOUNT "
MAX_MODULE_BYTES = 32 * 1024**2
KINDS = ("forward", "training")
BATCH_KEYS = ("2", "4")  # jaxtrace.BATCHES, as the JSON keys they arrive under

_HEADER = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_OP = re.compile(r"=.*?\s([a-z][a-z0-9\-_]*)\(")
_CALLEE = re.compile(r"\b(?:calls|to_apply|body|condition|true_computation|false_computation|comparator|select|scatter)"
                     r"=%?([\w.\-]+)")
_CALLEE_LIST = re.compile(r"\b(?:calls|branch_computations|called_computations)=\{([^}]*)\}")
_TARGET = re.compile(r'custom_call_target="([^"]*)"')
_TRIP = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')
_STABLEHLO_TARGET = re.compile(r'custom_call\s*@"?([^\s("]+)|call_target_name\s*=\s*"([^"]*)"')
_MATMUL_TARGET = re.compile(r"matmul|conv|gemm|dot|einsum", re.I)
_FLOAT_RESULT = re.compile(r"=\s*\(?\s*(?:bf16|f16|f32|f64|f8\w*|c64|c128)\[")
# Operations that compute (XLA costs them) as opposed to moving, slicing or reshaping data.
_ARITHMETIC = frozenset(
    "add subtract multiply divide dot convolution reduce reduce-window exponential exponential-minus-one log "
    "log-plus-one tanh logistic rsqrt sqrt cbrt power maximum minimum negate abs remainder atan2 sine cosine tan erf "
    "sign floor ceil round-nearest-even round-nearest-afz clamp select-and-scatter scatter map all-reduce "
    "reduce-scatter fft cholesky triangular-solve custom-call".split())


class CountError(Exception):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def hlo_loops(text: str) -> tuple[list[dict], dict[str, int]]:
    """The `while` loops of an optimised HLO module and its custom-call targets. For each loop: its trip count,
    whether a matmul runs in it, and whether any floating-point arithmetic does (a matmul written as a broadcast
    multiply and a sum is no dot, but XLA would count it once all the same). A computation holds either if it or
    anything it calls (fusions, nested calls) does."""
    direct: dict[str, bool] = {}
    floats: dict[str, bool] = {}
    callees: dict[str, set[str]] = {}
    loops: list[tuple[int | None, set[str]]] = []
    targets: dict[str, int] = {}
    current = None
    for line in text.splitlines():
        if not line.startswith(" "):
            header = _HEADER.match(line)
            current = header.group(1) if header else None
            if current:
                direct.setdefault(current, False)
                floats.setdefault(current, False)
                callees.setdefault(current, set())
            continue
        op = _OP.search(line)
        if current is None or op is None:
            continue
        name = op.group(1)
        called = set(_CALLEE.findall(line))
        for group in _CALLEE_LIST.findall(line):
            called |= {c.strip().lstrip("%") for c in group.split(",") if c.strip()}
        callees[current] |= called
        target = _TARGET.search(line)
        if name == "custom-call" and target:
            targets[target.group(1)] = targets.get(target.group(1), 0) + 1
        if name in ("dot", "convolution") or (name == "custom-call" and target and _MATMUL_TARGET.search(target.group(1))):
            direct[current] = True
        if name in _ARITHMETIC and _FLOAT_RESULT.search(line[:line.find(f" {name}(")]):
            floats[current] = True
        if name == "while":
            trip = _TRIP.search(line)
            loops.append((int(trip.group(1)) if trip else None, called))
    def closure(own: dict[str, bool]):
        memo: dict[str, bool] = {}

        def holds(comp: str, stack: frozenset = frozenset()) -> bool:
            if comp not in memo:
                memo[comp] = own.get(comp, False) or any(
                    holds(c, stack | {comp}) for c in callees.get(comp, ()) if c not in stack)
            return memo[comp]
        return holds

    matmul, arithmetic = closure(direct), closure(floats)
    return [{"trip_count": trip, "matmul": any(matmul(c) for c in called),
             "float_ops": any(arithmetic(c) for c in called)} for trip, called in loops], targets


def stablehlo_targets(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for a, b in _STABLEHLO_TARGET.findall(text):
        out[a or b] = out.get(a or b, 0) + 1
    return out


def _shapes(avals) -> list[list]:
    return [[[int(d) for d in a.shape], str(a.dtype)] for a in avals]


def count_module(blob: str) -> dict:
    """XLA's count of one serialised module, and the facts the parent needs to judge it."""
    import jax
    from jax import export

    if not isinstance(blob, str) or len(blob) > MAX_MODULE_BYTES * 4 // 3 + 4:
        raise CountError("flops-bad-trace", "a module is missing or larger than "
                         f"{MAX_MODULE_BYTES // 2**20} MiB")
    try:
        exported = export.deserialize(bytearray(base64.b64decode(blob, validate=True)))
    except (binascii.Error, ValueError) as exc:
        raise CountError("flops-bad-trace", f"a module is not base64 ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - the deserialiser raises anything on hostile bytes
        raise CountError("flops-bad-trace", f"a module is not a serialised jax.export.Exported "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from exc
    if "cpu" not in exported.platforms or exported.nr_devices != 1:
        raise CountError("flops-bad-trace", f"a module was exported for {list(exported.platforms)} on "
                         f"{exported.nr_devices} device(s), not for one CPU")
    args, kwargs = jax.tree_util.tree_unflatten(exported.in_tree, list(exported.in_avals))
    if kwargs or len(args) != 2:
        raise CountError("flops-bad-trace", "a module does not take (params, batch)")
    specs = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), args)
    t0 = time.perf_counter()
    try:
        compiled = jax.jit(exported.call).lower(*specs).compile()
    except Exception as exc:  # noqa: BLE001 - a module XLA refuses is the submission's problem
        raise CountError("flops-bad-trace", f"XLA could not compile a module for the CPU ({type(exc).__name__}: "
                         f"{str(exc)[:300]})") from exc
    seconds = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    hlo = compiled.as_text()
    loops, hlo_targets = hlo_loops(hlo)
    return {
        "flops": float(cost.get("flops", 0.0)), "transcendentals": float(cost.get("transcendentals", 0.0)),
        "params": _shapes(jax.tree_util.tree_leaves(args[0])), "batch": _shapes(jax.tree_util.tree_leaves(args[1])),
        "outputs": _shapes(exported.out_avals), "custom_calls": stablehlo_targets(exported.mlir_module()),
        "hlo_custom_calls": hlo_targets, "loops": loops,
        "conditionals": hlo.count(" conditional("), "compile_seconds": round(seconds, 3),
    }


def count_all(modules: dict) -> dict:
    if not isinstance(modules, dict):
        raise CountError("flops-bad-trace", "no modules")
    out = {}
    for batch in BATCH_KEYS:
        entry = modules.get(batch)
        if not isinstance(entry, dict):
            raise CountError("flops-bad-trace", f"batch {batch} is missing")
        out[batch] = {kind: count_module(entry.get(kind)) for kind in KINDS}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("modules")
    ap.add_argument("--result-fd", type=int, required=True)
    args = ap.parse_args()
    channel = os.fdopen(args.result_fd, "wb")
    t0 = time.perf_counter()
    try:
        import flatbuffers  # noqa: F401 - jax.export needs it to deserialise; say so rather than blame the module

        # XLA's flags change what it counts (xla_cpu_multi_thread_eigen=false: -0.7 % on the bundled model): count
        # with the defaults, so that the figure depends on the jax version alone.
        os.environ.pop("XLA_FLAGS", None)
        import jax

        jax.config.update("jax_platforms", "cpu")
        with open(args.modules, encoding="utf-8") as fh:
            modules = json.load(fh)
        payload = {"ok": True, "jax": jax.__version__, "batches": count_all(modules),
                   "seconds": round(time.perf_counter() - t0, 3)}
    except CountError as exc:
        payload = {"ok": False, "rule": exc.rule, "message": str(exc)}
    except ImportError as exc:
        payload = {"ok": False, "rule": "jax-unavailable", "message": f"jax or flatbuffers cannot be imported in the "
                   f"track's environment ({exc})"}
    except Exception as exc:  # noqa: BLE001 - a clear line instead of a silent crash
        payload = {"ok": False, "rule": "flops-bad-trace", "message": f"{type(exc).__name__}: {str(exc)[:300]}"}
    data = json.dumps(payload).encode()
    channel.write(FRAME + str(len(data)).encode() + b"\n" + data)
    channel.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
