"""Judge what the XLA counter reported (jaxcount.py) and turn it into a count like `counting.flops_from_trace`'s.

The report is data from a process that parsed hostile bytes, so it is bounded and type-checked like any trace, and
everything that would make XLA's figure dishonest is refused with a rule id rather than counted:

- `jax-custom-call`: a custom_call other than the sharding and placement annotations below. XLA's cost analysis gives
  a custom call no FLOPs (a LAPACK solve, a Pallas kernel, a cuDNN attention would all count 0).
- `jax-loop`: a `while` loop whose body or condition does floating-point arithmetic (a dot, a convolution, or the
  elementwise multiply and sum a matmul can be written as). XLA counts a loop body once, whatever its trip count
  (measured: `lax.scan` over 4 layers counted 0.252 of the unrolled forward); loops of integer work only (the
  random number generator's threefry rounds) are allowed and noted.
- `flops-bad-trace`: modules that are not what they claim: a forward that is not a scalar loss, a training step that
  does not return a gradient for every parameter, batch-2 modules whose inputs are batch 1's, parameter counts that
  differ from the modules' own, figures that are not finite.
"""

from __future__ import annotations

import math
from typing import Any

# custom_call targets that only annotate sharding or placement: no arithmetic, nothing for XLA to cost.
ALLOWED_CUSTOM_CALLS = frozenset({"Sharding", "SPMDFullToShardShape", "SPMDShardToFullShape",
                                  "annotate_device_placement", "MoveToHost", "MoveToDevice"})
LINEAR_TOLERANCE = 1e-3
MAX_FLOPS = 1e30
from .jaxcount import BATCH_KEYS, KINDS

SMALL, LARGE = BATCH_KEYS
RATIO = int(LARGE) // int(SMALL)


class JudgeError(Exception):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def _bad(what: str) -> JudgeError:
    return JudgeError("flops-bad-trace", f"the exported JAX modules are malformed: {what}")


def _shapes(value: Any, what: str) -> list[tuple[tuple[int, ...], str]]:
    if not isinstance(value, list) or len(value) > 100_000:
        raise _bad(f"{what} is not a list of shapes")
    out = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], list) and isinstance(item[1], str)
                and len(item[0]) <= 16 and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**48
                                              for d in item[0])):
            raise _bad(f"a shape of {what}")
        out.append((tuple(item[0]), item[1][:20]))
    return out


def _flops(module: dict, what: str) -> float:
    value = module.get("flops")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or \
            not 0 <= value <= MAX_FLOPS:
        raise _bad(f"the {what} FLOPs are {str(value)[:40]}")
    return float(value)


def _check_module(module: Any, what: str, notes: list[str]) -> dict:
    if not isinstance(module, dict):
        raise _bad(f"the {what} module's report is missing")
    for key in ("custom_calls", "hlo_custom_calls"):
        targets = module.get(key)
        if not isinstance(targets, dict):
            raise _bad(f"the {what} module's custom calls")
        refused = sorted(str(t)[:80] for t in targets if t not in ALLOWED_CUSTOM_CALLS)
        if refused:
            raise JudgeError("jax-custom-call", f"the {what} module calls custom_call target(s) XLA cannot cost: "
                             f"{', '.join(refused[:10])}; they would count as 0 FLOPs")
    loops = module.get("loops")
    if not isinstance(loops, list) or not all(isinstance(x, dict) for x in loops):
        raise _bad(f"the {what} module's loops")
    heavy = [x for x in loops if x.get("matmul") is not False or x.get("float_ops") is not False]
    if heavy:
        trips = ", ".join(str(x.get("trip_count") if isinstance(x.get("trip_count"), int) else "unknown")
                          for x in heavy[:10])
        matmuls = sum(x.get("matmul") is not False for x in heavy)
        raise JudgeError("jax-loop", f"the {what} module has {len(heavy)} while loop(s) doing floating-point work "
                         f"({matmuls} with a matmul; trip count {trips}); XLA's cost analysis counts a loop body "
                         "once, whatever its trip count")
    if loops and what == f"training at batch {SMALL}":
        notes.append(f"{len(loops)} while loop(s) of integer work only (e.g. the random number generator's rounds) "
                     "are counted once by XLA: no floating-point operation is missed")
    return {"flops": _flops(module, what), "params": _shapes(module.get("params"), "params"),
            "batch": _shapes(module.get("batch"), "batch"), "outputs": _shapes(module.get("outputs"), "outputs")}


def judge(report: Any, claimed_parameters: Any) -> dict:
    """Per-sample forward and training FLOPs from the counter's report. Raises JudgeError with a rule id."""
    batches = report.get("batches") if isinstance(report, dict) else None
    if not isinstance(batches, dict) or not all(isinstance(batches.get(b), dict) for b in BATCH_KEYS):
        raise _bad(f"batch {SMALL} or {LARGE} missing")
    notes: list[str] = []
    m = {(b, k): _check_module(batches[b].get(k), f"{k} at batch {b}", notes) for b in BATCH_KEYS for k in KINDS}
    params = m[SMALL, "forward"]["params"]
    for (b, k), mod in m.items():
        if mod["params"] != params:
            raise _bad(f"the {k} module at batch {b} takes other parameters than the forward at batch {SMALL}")
        if mod["batch"] != m[b, "forward"]["batch"]:
            raise _bad(f"the {k} module at batch {b} takes another batch than the forward at batch {b}")
        if not mod["outputs"] or mod["outputs"][0][0] != ():
            raise _bad(f"the {k} module at batch {b} does not return a scalar loss first")
        if k == "forward" and len(mod["outputs"]) != 1:
            raise _bad(f"the forward module at batch {b} returns more than the loss")
        if k == "training" and [s for s, _ in mod["outputs"][1:]] != [s for s, _ in params]:
            raise _bad(f"the training module at batch {b} does not return one gradient per parameter")
    if m[SMALL, "forward"]["batch"] == m[LARGE, "forward"]["batch"]:
        raise _bad(f"the batch-{LARGE} modules take the same batch as the batch-{SMALL} ones")
    counted = sum(math.prod(s) for s, _ in params)
    if claimed_parameters != counted:
        raise _bad(f"the sandbox reported {str(claimed_parameters)[:30]} parameters, the modules take {counted:,}")
    small = {k: m[SMALL, k]["flops"] for k in KINDS}
    large = {k: m[LARGE, k]["flops"] for k in KINDS}
    if min(small.values()) <= 0:
        raise JudgeError("flops-zero", "XLA counts no floating-point operation in the model")
    linear = all(abs(large[k] - RATIO * small[k]) <= LINEAR_TOLERANCE * large[k] for k in KINDS)
    per = {k: small[k] / int(SMALL) for k in KINDS}
    if not linear:
        # A part independent of the batch would be charged to every sample: use the marginal cost of a sample.
        per = {k: (large[k] - small[k]) / (int(LARGE) - int(SMALL)) for k in KINDS}
        notes.append(f"XLA's counts are not linear in batch size (forward {small['forward']:.6g} / "
                     f"{large['forward']:.6g}, training {small['training']:.6g} / {large['training']:.6g} at batch "
                     f"{SMALL} / {LARGE}); per-sample figures use the marginal cost of one more sample")
        if min(per.values()) <= 0:
            raise _bad(f"batch {LARGE} costs no more than batch {SMALL}")
    if any(isinstance(b, dict) and b.get("conditionals") for b in batches[SMALL].values()):
        notes.append("the model has conditionals: XLA counts the costliest branch of each")
    extra = batches[SMALL]["training"].get("transcendentals")
    xla = {"forward": per["forward"], "training": per["training"], "device": "cpu",
           "jax": str(report.get("jax", ""))[:20],
           "transcendentals": extra / int(SMALL) if isinstance(extra, (int, float)) else None}
    return {
        "device": "cpu", "per_sample_forward_flops": per["forward"], "per_sample_training_flops": per["training"],
        "training_forward_ratio": per["training"] / per["forward"], "linear_in_batch": linear,
        "batch_counts": {SMALL: dict(small), LARGE: dict(large)},
        "by_module": {}, "parameters": counted, "trainable_parameters": counted,
        "counters": {"xla": xla}, "notes": notes, "source": "entrypoint",
    }
