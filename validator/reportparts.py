"""What every report format shares: the comment marker, a run's status word, number formatting and the compute
lines (validator/reporter.py renders text, json and GitHub annotations; validator/mdreport.py the PR comment)."""

from __future__ import annotations

from .problems import Problem

COMMENT_MARKER = "<!-- speedrun-report -->"


def _status(valid: bool, warnings: list[Problem], pending: bool = False) -> str:
    if pending:
        return "pending (organizers train it)"
    if not valid:
        return "invalid"
    return "valid, needs review" if warnings else "valid"


def _g(value) -> str:
    return "–" if value is None else f"{value:.4g}"


FLOPS_FROM_ENTRYPOINT = ("FLOPs counted from the submitted entrypoint: unverified until a maintainers' reproduction "
                         "confirms it")
FLOPS_FROM_CONFIG = "FLOPs counted by trusted code from the model config"


def flops_provenance(c: dict) -> str:
    """Who made a count: trusted code from a model config (`"source": "config"`), or the submission's entrypoint."""
    return FLOPS_FROM_CONFIG if c.get("source") == "config" else FLOPS_FROM_ENTRYPOINT


def compute_lines(c: dict, verdict_label: str = "verdict") -> list[str]:
    """Recomputed compute, for terminals and comments. Inside a run's report the compute verdict is labelled
    `compute`: a bare "verdict: pass" above an invalid run's errors reads as the run's verdict."""
    if not c:
        return []
    if "error" in c:
        return [f"compute: not counted ({c['error']['rule']})"]
    lines = [
        f"per-sample FLOPs: forward {_g(c['per_sample_forward_flops'])}, training {_g(c['per_sample_training_flops'])} "
        f"(counted on {c['device']})",
        f"samples seen {c['samples_seen']:,}" + (f", forward-only {c['forward_only_samples']:,}" if c['forward_only_samples'] else ""),
        f"total training FLOPs: recomputed {_g(c['total_training_flops'])}, claimed {_g(c['claimed_flops'])}"
        + (f" (ratio {c['claim_ratio']:.3f})" if c.get("claim_ratio") is not None else ""),
        flops_provenance(c),
    ]
    counters = c.get("counters", {})
    fv = counters.get("fvcore", {})
    if fv:
        lines.append(f"counters (forward/sample): torch {_g(counters['torch_flop_counter']['forward'])}, "
                     f"fvcore x2 {_g(fv.get('forward'))}")
    if c.get("budget"):
        b = c["budget"]
        lines.append(f"budget: {_g(b['used'])} of {_g(b['limit'])} {b['kind']} ({b['fraction']:.1%})")
    lines += [f"note: {n}" for n in c.get("notes", [])]
    lines += [f"sandbox: {n}" for n in (c.get("sandbox") or {}).get("notes", [])]
    lines.append(f"{verdict_label}: {c['verdict']}")
    return lines
