"""Checks of time tracks (docs/time-tracks.md): the run trained on the track's reference hardware, states the
training time its ranking reads, and fits the artifact size limit. Registered with rules.CHECKS on import."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .models.rankrules import TIME_RULES
from .rules import RunContext, check


def _same_device(a: str, b: str) -> bool:
    """nvidia-smi's names compared as words: case and spacing differ between tools, the device does not."""
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


@check
def reference_hardware(ctx: RunContext) -> None:
    ref, declared = ctx.track.hardware, ctx.run.compute.hardware
    if ref is None:
        return
    if not _same_device(declared.accelerator, ref.accelerator) or declared.count != ref.count:
        ctx.problems.error(
            "$.compute.hardware", "hardware-mismatch",
            f"the run trained on {declared.count} x {declared.accelerator!r}; track {ctx.track.id!r} times runs on "
            f"its reference hardware, {ref.count} x {ref.accelerator!r}",
            f"train on {ref.count} x {ref.accelerator} and declare it in compute.hardware "
            "(a time only compares with times on the same machine)")


@check
def training_times(ctx: RunContext) -> None:
    """A time rule ranks by each seed's training time: a seed without one could not be ranked, so it is refused
    here rather than dropped silently from the board."""
    rules = [ctx.track.ranking.primary, *ctx.track.ranking.tie_breakers]
    time_rules = [r for r in rules if r.kind in TIME_RULES]
    if not time_rules:
        return
    for i, result in enumerate(ctx.run.results):
        if result.train_time_seconds is None:
            ctx.problems.error(
                f"$.results[{i}].train_time_seconds", "time-missing",
                f"seed {result.seed} states no training time; track {ctx.track.id!r} ranks by "
                f"{time_rules[0].kind.replace('_', ' ')}",
                "have run.py time training (synchronised, evaluation excluded) and write each seed's "
                "train_time_seconds")
        if any(getattr(r, "timing", None) == "first_reached" for r in time_rules):
            for j, point in enumerate(result.curve):
                if point.train_time_seconds is None:
                    ctx.problems.error(
                        f"$.results[{i}].curve[{j}].train_time_seconds", "time-missing",
                        f"curve point {j} of seed {result.seed} states no training time; the track ranks by the "
                        "time its curve first reaches the target",
                        "write train_time_seconds beside samples at every evaluation")
                    break


def code_bytes(run_dir: Path) -> int:
    """Bytes of every regular .py file in the run folder, as on disk: the code half of an artifact. Links are not
    followed (a link could point at anything) and count nothing; rules.files already refuses links that leave."""
    total = 0
    for folder, dirs, names in os.walk(run_dir, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d != "reproductions")
        for name in names:
            if not name.endswith(".py"):
                continue
            st = os.lstat(os.path.join(folder, name))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


@check
def artifact_size(ctx: RunContext) -> None:
    limit = ctx.track.artifact_limit_bytes
    if limit is None:
        return
    if ctx.run.artifact is None:
        ctx.problems.error(
            "$.artifact", "artifact-missing",
            f"track {ctx.track.id!r} limits the artifact to {limit:,} bytes, but the run does not declare the size "
            "of its compressed weights",
            "have run.py write artifact: {compressed_weights_bytes: <bytes of the compressed weights>}")
        return
    code = code_bytes(ctx.run_dir)
    weights = ctx.run.artifact.compressed_weights_bytes
    if code + weights > limit:
        ctx.problems.error(
            "$.artifact.compressed_weights_bytes", "artifact-too-large",
            f"code ({code:,} bytes of .py files) plus compressed weights ({weights:,} bytes) is {code + weights:,} "
            f"bytes, over the track's limit of {limit:,}",
            f"shrink the code or the weights by {code + weights - limit:,} bytes")
