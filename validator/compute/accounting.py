"""Recompute a run's compute and judge its claim. Gate on the recomputed number, never the claim.

Total = per-sample training FLOPs x samples that got a gradient
      + per-sample forward FLOPs x samples only scored (if the track counts forward-only passes)
      + per-sample forward FLOPs x evaluation samples (if the track counts evaluation).
All figures are for one training run (one seed, one setting); with several seeds the largest is used.
"""

from __future__ import annotations

from pathlib import Path

from ..models import RunAnalysis, Track
from ..problems import Problems
from ..environment import EnvironmentFailure, sandbox_env
from .jaxrecount import count_jax
from .recount import FlopsFailure, count_config, count_in_sandbox
from .sandbox import Limits

PASS_BAND = 0.05
REVIEW_BAND = 0.25
COUNTERS_AGREE = 0.01
PARAMS_AGREE = 0.01



def _per_seed_max(run: RunAnalysis, attr: str) -> int:
    base = getattr(run.compute, attr)
    values = [getattr(r, attr) for r in run.results if getattr(r, attr) is not None]
    return max([base, *values])


def normalise_claim(run: RunAnalysis, counted: dict) -> tuple[float | None, str | None]:
    """The claim in the site's convention, and a note if it had to be converted."""
    flops = run.compute.flops
    if flops is None:
        return None, None
    ratio = counted["training_forward_ratio"] or 3.0
    conv = flops.convention
    if conv == "speedrun-v1":
        return flops.claimed, None
    if conv == "fvcore-macs":
        return flops.claimed * 2 * ratio, (f"claim given in fvcore MACs of the forward pass; normalised x2 (MAC = 2 FLOPs) "
                                           f"x{ratio:.3f} (measured training/forward ratio)")
    if conv == "forward-only":
        return flops.claimed * ratio, f"claim given as forward-only FLOPs; normalised x{ratio:.3f} (measured training/forward ratio)"
    return flops.claimed, "claim given as 6ND, an approximation; compared as is"


def _looks_like(ratio: float, counted: dict) -> str | None:
    """Name the convention a speedrun-v1 claim was probably made in, when it is off by a telltale factor."""
    r = counted["training_forward_ratio"] or 3.0
    for factor, what in ((1 / (2 * r), "fvcore MACs of the forward pass"), (1 / r, "forward-only FLOPs"),
                         (0.5, "multiply-accumulates (MACs) of forward + backward")):
        if abs(ratio / factor - 1) <= 0.02:
            return what
    return None


def account(run_dir: Path, run: RunAnalysis, track: Track, problems: Problems, limits: Limits = Limits(),
            fvcore: bool = True, cache_dir: Path | None = None, track_dir: Path | None = None,
            progress=None) -> dict | None:
    """Recount, total and judge one run; record problems. Returns the compute report, or None if nothing was counted."""
    entry, config = run.model.entrypoint, run.model.config
    flops_track = track.budget is not None and track.budget.kind == "flops"
    if entry is None and config is None:
        if flops_track and track.board == "standard":
            problems.error("$.model.entrypoint", "flops-no-entrypoint",
                           "a FLOPs-budget track recomputes every claim, but the run names no entrypoint or config",
                           "add model.entrypoint 'run.py:build_for_flops' returning (model, inputs), or model.config "
                           "naming a known architecture; see CONTRIBUTING.md")
        return None
    try:  # the track's declared packages: installed on first use, cached afterwards
        env = sandbox_env(track, track_dir or run_dir.parent, progress)
    except EnvironmentFailure as exc:
        problems.error("$.track", exc.rule, str(exc), _FAILURE_HINTS[exc.rule])
        return {"verdict": "fail", "error": {"rule": exc.rule, "message": str(exc)}}
    where = "$.model.config" if entry is None else "$.model.entrypoint"
    try:
        if entry is None:
            counted = count_config(run_dir, config.model_dump(mode="json"), limits, fvcore, cache_dir, env)
        elif run.model.framework == "jax":  # XLA's count; model.config, if given, only cross-checks it
            counted = count_jax(run_dir, entry, config, limits, cache_dir, env, problems)
        else:
            counted = count_in_sandbox(run_dir, entry, limits, fvcore, cache_dir, env)
    except FlopsFailure as exc:
        problems.error(where, exc.rule, str(exc), _FAILURE_HINTS.get(exc.rule, "see CONTRIBUTING.md"))
        return {"verdict": "fail", "error": {"rule": exc.rule, "message": str(exc)}}

    notes = list(counted.get("notes", []))
    samples_seen = _per_seed_max(run, "samples_seen")
    forward_only = _per_seed_max(run, "forward_only_samples")
    per_fwd, per_train = counted["per_sample_forward_flops"], counted["per_sample_training_flops"]
    counts = track.budget.counts if track.budget else None
    eval_samples = _eval_samples(run, track)
    # floats: totals pass 2**64 quickly, and JSON consumers (Vega, JavaScript) cannot hold bigger integers
    evaluation = float(per_fwd * eval_samples)
    total = float(per_train * samples_seen)
    if counts is None or counts.forward_only:
        total += float(per_fwd * forward_only)
    if counts is not None and counts.evaluation:
        total += evaluation

    fv = counted["counters"].get("fvcore", {})
    if fv.get("forward") is not None:
        agree = abs(fv["forward"] / per_fwd - 1) if per_fwd else 1.0
        if agree > COUNTERS_AGREE:
            problems.warn(where, "flops-counters-disagree",
                          f"forward FLOPs per sample: torch FlopCounterMode {per_fwd:.6g}, fvcore x2 {fv['forward']:.6g} "
                          f"({agree:.1%} apart)", "an op one counter misses; the torch count is used, a maintainer should look")
        if fv.get("unsupported"):
            notes.append("fvcore could not count: " + ", ".join(f"{k} x{v}" for k, v in sorted(fv["unsupported"].items())))
    elif fvcore and "error" in fv:
        notes.append(f"fvcore cross-check unavailable: {fv['error']}")

    claimed_params = run.model.parameters
    same_model = not claimed_params or any(abs(claimed_params / n - 1) <= PARAMS_AGREE
                                           for n in (counted["parameters"], counted["trainable_parameters"]) if n)
    if not same_model:
        problems.error("$.model.parameters", "parameters-mismatch",
                       f"the run claims {claimed_params:,} parameters but the entrypoint's model has {counted['parameters']:,}",
                       "report the parameter count of the model you trained, built by the entrypoint")

    claimed, claim_note = normalise_claim(run, counted)
    if claim_note:
        notes.append(claim_note)
    ratio = claimed / total if claimed is not None and total else None
    verdict = "pass"
    if ratio is not None:
        off = abs(ratio - 1)
        # A different model explains any ratio; only the claimed model can have been counted in another convention.
        guess = _looks_like(ratio, counted) if run.compute.flops.convention == "speedrun-v1" and same_model else None
        if off > PASS_BAND and guess:
            verdict = "fail"
            problems.error("$.compute.flops.claimed", "flops-claim-convention",
                           f"claimed {claimed:.4g} FLOPs is {ratio:.3f} x the recomputed {total:.4g}: it looks like {guess}",
                           "claim forward + backward FLOPs at 2 per multiply-accumulate, or declare compute.flops.convention")
        elif off > REVIEW_BAND:
            verdict = "fail"
            problems.error("$.compute.flops.claimed", "flops-claim-mismatch",
                           f"claimed {claimed:.4g} FLOPs but the recount gives {total:.4g} (ratio {ratio:.3f}, more than "
                           f"{REVIEW_BAND:.0%} off)", "recount with `speedrun flops` and claim that number")
        elif off > PASS_BAND:
            verdict = "needs-review"
            problems.warn("$.compute.flops.claimed", "flops-claim-needs-review",
                          f"claimed {claimed:.4g} FLOPs vs recomputed {total:.4g} (ratio {ratio:.3f}, "
                          f"{PASS_BAND:.0%}-{REVIEW_BAND:.0%} off)", "explain the difference in notes, or claim the recount")
    elif flops_track and run.compute.flops is None:
        verdict = "needs-review"

    budget = None
    if track.budget is not None:
        used = total if track.budget.kind == "flops" else samples_seen
        budget = {"kind": track.budget.kind, "limit": track.budget.limit, "used": used,
                  "fraction": used / track.budget.limit}
        if track.budget.kind == "flops" and total > track.budget.limit:
            verdict = "fail"
            problems.error("$.compute", "over-budget",
                           f"recomputed {total:.4g} FLOPs exceeds the track's budget of {track.budget.limit:.4g}",
                           "train on fewer samples or a smaller model")

    return {
        "per_sample_forward_flops": per_fwd,
        "per_sample_training_flops": per_train,
        "samples_seen": samples_seen,
        "forward_only_samples": forward_only,
        "evaluation_samples": eval_samples,
        "evaluation_flops": evaluation,
        "total_training_flops": total,
        "claimed_flops": claimed,
        "claim_convention": run.compute.flops.convention if run.compute.flops else None,
        "claim_ratio": ratio,
        "parameters": counted["parameters"],
        "counters": counted["counters"],
        "by_module": counted["by_module"],
        "device": counted["device"],
        "linear_in_batch": counted["linear_in_batch"],
        "budget": budget,
        "verdict": verdict,
        "notes": notes,
        "seconds": counted.get("seconds"),
        "source": counted.get("source", "entrypoint"),
        "sandbox": counted.get("sandbox"),
    }


def _eval_samples(run: RunAnalysis, track: Track) -> int:
    """Evaluation samples of one training run: the primary metric's split, once per curve point."""
    metric = track.metric(track.primary_metric)
    size = getattr(track.dataset.splits, metric.split, None) or 0
    points = max((len(r.curve) for r in run.results), default=0)
    return size * points


_FAILURE_HINTS = {
    "flops-entrypoint-missing": "model.entrypoint must be 'file.py:function' naming a function in the run folder",
    "flops-bad-entrypoint": "return (model, inputs) where model is an nn.Module and inputs a tensor, tuple or dict",
    "flops-model-failed": "build_for_flops(batch_size, device) must build the model and one batch on `device`",
    "flops-op-without-formula": "use standard torch ops (linear, matmul, conv, scaled_dot_product_attention)",
    "flops-bad-output": "return a tensor (or a tuple/dict of tensors) from forward",
    "flops-no-gradient": "the model must have trainable parameters that the output depends on",
    "flops-zero": "the model must contain at least one linear, matmul, conv or attention op",
    "sandbox-timeout": "build on the meta device and avoid loading data in the entrypoint",
    "sandbox-memory": "build on the device passed in (meta) instead of allocating real tensors",
    "sandbox-crashed": "run `speedrun flops RUN_DIR` locally to see the full error",
    "sandbox-unavailable": "install bubblewrap (`apt-get install bubblewrap`) where submitted code is run",
    "flops-bad-trace": "let the entrypoint build the model and return it; do not write to the counter's channel",
    "env-undeclared-import": "the track does not declare this package: remove the import, or ask the track's organizers "
                             "to declare it in track.yaml environment.packages (docs/environments.md)",
    "env-module-missing": "no package of the track's environment provides this module: fix the module name, or ask the "
                          "track's organizers to declare the package in track.yaml environment.packages "
                          "(docs/environments.md)",
    "env-install-failed": "the track's organizers must fix track.yaml environment.packages (a version that exists as a "
                          "wheel for this Python, a matching index_url) and check it with `speedrun env install`",
    "env-lock-invalid": "the track's organizers must rerun `speedrun env lock runs/<track>` and commit environment.lock",
    "jax-custom-call": "use jax.numpy and lax operations XLA can cost; no custom calls (LAPACK, Pallas, cuDNN)",
    "jax-loop": "unroll loops that run matmuls: a Python for loop, or lax.scan(..., unroll=True); see docs/jax.md",
    "jax-unavailable": "declare jax and flatbuffers in the track's environment (track.yaml environment.packages)",
    "model-config-invalid": "name a model class of the library and give its config.json keys; see CONTRIBUTING.md",
}
