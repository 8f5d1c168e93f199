"""`speedrun reproduce`: rerun a run's script in a fresh sandboxed copy and compare with its claim.

The script contract (CONTRIBUTING.md): `python run.py --seeds S... --device cpu|cuda --out DIR` writes
`DIR/speedrun_analysis.json` and `DIR/logs/`. Each seed runs on its own, so progress shows seed by seed; with
`nproc > 1` the script is started under torchrun. A claim that `speedrun validate` rejects is refused before
anything runs. Nothing in the run folder changes unless `record` is asked for and
the reproduction agrees; the record then names the run (`<track>/<run>`) and the content hash of its folder
(validator/fingerprint.py), so the site counts it only for that run as it was reproduced.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .checker import Checker, load_validated
from .compute.bwrap import TOOL_DIR
from .compute.sandbox import Limits, Workspace, read_result, run_python
from .environment import EnvironmentFailure, SandboxEnv, guard_argument, sandbox_env
from .discover import ANALYSIS_NAMES
from .fingerprint import content_sha256
from .models import RunAnalysis, Track
from .problems import InvalidInput, Problems


@dataclass
class SeedOutcome:
    seed: int
    ok: bool
    seconds: float
    deltas: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    hardware: str | None = None


@dataclass
class Reproduction:
    run: str
    track: str
    device: str
    nproc: int
    seeds: list[SeedOutcome]
    tolerance: dict
    versions: dict
    verdict: str = "reproduced"
    reasons: list[str] = field(default_factory=list)
    recorded: str | None = None
    # What the record is bound to: the run folder's content hash (validator/fingerprint.py) when the rerun started,
    # and where the maintainers' workflow says it came from (the reviewed head commit, the PR, the workflow run).
    content_sha256: str | None = None
    head_sha: str | None = None
    pr: int | None = None
    workflow_run: str | None = None

    def to_dict(self) -> dict:
        return {
            "run": f"{self.track}/{self.run}", "content_sha256": self.content_sha256,
            "head_sha": self.head_sha, "pr": self.pr, "workflow_run": self.workflow_run,
            "track": self.track, "verdict": self.verdict, "reasons": self.reasons,
            "device": self.device, "nproc": self.nproc,
            "hardware": next((s.hardware for s in self.seeds if s.hardware), None),
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tolerance": self.tolerance, "versions": self.versions,
            "wall_time_seconds": round(sum(s.seconds for s in self.seeds), 2),
            "seeds": [{"seed": s.seed, "ok": s.ok, "seconds": round(s.seconds, 2), "deltas": s.deltas,
                       "problems": s.problems} for s in self.seeds],
            "deltas": [d for s in self.seeds for d in s.deltas],
            "recorded": self.recorded,
        }


def load_claim(run_dir: Path, checker: Checker) -> tuple[RunAnalysis, Track]:
    file, analysis, track = checker.load_claim(run_dir)
    if analysis.files.script is None:
        raise InvalidInput(f"{file}::$.files.script: the run names no script (a cited result cannot be rerun)")
    # A rerun only confirms a claim that stands on its own: one its logs contradict (metric-log-mismatch) could
    # still land inside the track's tolerance and be recorded as reproduced.
    errors = checker.check_run(run_dir).errors
    if errors:
        raise InvalidInput(f"{errors[0].line()}; the claim is invalid ({len(errors)} error(s)) and is not rerun: "
                           f"run `speedrun validate {run_dir}` and fix it first")
    return analysis, track


def _environment(run_dir: Path, checker: Checker, track: Track, progress) -> SandboxEnv:
    """The track's declared environment, installed (or taken from the cache), or InvalidInput saying why not."""
    found, _ = checker._track_for(run_dir, track.id)
    track_dir = found.path if found is not None else run_dir.parent
    try:
        return sandbox_env(track, track_dir, progress)
    except EnvironmentFailure as exc:
        raise InvalidInput(f"{track_dir}/track.yaml::$.environment: {exc} [{exc.rule}]; the track's organizers must "
                           "fix it (`speedrun env install` shows the error)") from None


def _compare(claimed: RunAnalysis, fresh: RunAnalysis, seed: int, track: Track) -> tuple[list[dict], list[str]]:
    tol = track.tolerance
    deltas, problems = [], []
    claims = {(r.seed, r.setting): r for r in claimed.results if r.seed == seed}
    got = {(r.seed, r.setting): r for r in fresh.results if r.seed == seed}
    for key, want in sorted(claims.items(), key=lambda kv: str(kv[0])):
        label = f"seed {seed}" + (f" setting {key[1]}" if key[1] else "")
        have = got.get(key)
        if have is None:
            problems.append(f"{label}: the rerun produced no result")
            continue
        for metric, value in sorted(want.final.items()):
            if metric not in have.final:
                problems.append(f"{label}: the rerun did not report {metric}")
                continue
            delta = have.final[metric] - value
            ok = abs(delta) <= tol.metric_abs
            deltas.append({"seed": seed, "setting": key[1], "metric": metric, "claimed": value,
                           "reproduced": have.final[metric], "delta": delta, "ok": ok})
            if not ok:
                problems.append(f"{label}: {metric} {have.final[metric]:.4f} vs claimed {value:.4f} "
                                f"(|Δ| {abs(delta):.4f} > tolerance {tol.metric_abs})")
        if [p.samples for p in want.curve] != [p.samples for p in have.curve]:
            problems.append(f"{label}: curve checkpoints differ ({[p.samples for p in have.curve]})")
    want_samples = max([claimed.compute.samples_seen] + [r.samples_seen or 0 for r in claims.values()])
    have_samples = max([fresh.compute.samples_seen] + [r.samples_seen or 0 for r in got.values()])
    if want_samples and abs(have_samples / want_samples - 1) > tol.samples_rel:
        problems.append(f"seed {seed}: samples seen {have_samples:,} vs claimed {want_samples:,}")
    return deltas, problems


def _versions() -> dict:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    try:
        import torch

        out["torch"] = torch.__version__
        out["cuda"] = torch.version.cuda  # the build's CUDA; the parent never initialises a device itself
    except ImportError:
        out["torch"] = None
    return out


OUT_NAME = ".reproduction"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "unknown"


def reproduce(run_dir: Path, checker: Checker, *, device: str = "cpu", nproc: int = 1, seeds: list[int] | None = None,
              timeout_s: float = 3600.0, record: bool = False, head_sha: str | None = None, pr: int | None = None,
              workflow_run: str | None = None, progress: Callable[[str], None] = lambda _m: None) -> Reproduction:
    claimed, track = load_claim(run_dir, checker)
    wanted = seeds or sorted(set(claimed.seeds))
    missing = [s for s in wanted if s not in claimed.seeds]
    if missing:
        raise InvalidInput(f"seed(s) {missing} are not among the run's claimed seeds {sorted(set(claimed.seeds))}")
    if nproc < 1:
        raise InvalidInput("--nproc must be at least 1")
    # CUDA maps a huge virtual address space: GPU runs get a resident-memory cap watched from outside instead of
    # an address-space limit. torchrun's rendezvous uses the sandbox's own loopback; nothing else is reachable.
    gpu = device.startswith("cuda")
    limits = Limits(timeout_s=timeout_s, memory_bytes=(64 if gpu else 8) * 1024**3, gpu=gpu,
                    cpu_seconds=int(timeout_s * max(1, nproc) * 4), processes=256 * max(1, nproc))
    result = Reproduction(run_dir.name, track.id, device, nproc, [], track.tolerance.model_dump(), _versions())
    result.content_sha256 = content_sha256(run_dir)  # the content that is rerun: a record is bound to it
    result.head_sha, result.pr, result.workflow_run = head_sha, pr, workflow_run
    script = claimed.files.script
    env = _environment(run_dir, checker, track, progress)
    guard = guard_argument(env)
    # The script runs under the import guard (compute/importguard.py), started as a launcher: "." is the run's copy.
    guarded = [f"{TOOL_DIR}/importguard.py", guard, "."] if guard is not None else []
    tools = {"importguard.py": Path(__file__).parent / "compute" / "importguard.py"} if guard is not None else None
    for seed in wanted:
        progress(f"seed {seed}: training ({device}{f', {nproc} processes' if nproc > 1 else ''}) ...")
        t0 = time.perf_counter()
        with Workspace(run_dir, skip=("logs", "reproductions") + ANALYSIS_NAMES) as ws:
            launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else []
            outcome = run_python([*launcher, *guarded, script, "--seeds", str(seed), "--device", device,
                                  "--out", OUT_NAME], tool_files=tools, readonly=list(env.readonly), python=env.python,
                                 workdir=ws, limits=limits, threads=max(1, 2 // nproc),
                                 pass_env=("CUDA_VISIBLE_DEVICES", "NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST",
                                           "NVSHMEM_DISABLE_NVLS", "LD_LIBRARY_PATH"), script_path=True)
            seconds = time.perf_counter() - t0
            fresh = None
            problems: list[str] = []
            if outcome.timed_out:
                problems.append(f"timed out after {timeout_s:.0f} s")
            elif outcome.returncode != 0:
                tail = [ln for ln in outcome.stderr.strip().splitlines() if ln.strip()][-1:] or ["no output"]
                problems.append(f"the script failed (exit {outcome.returncode}): {tail[0][:300]}")
            else:
                # Only a regular file reached without links: the sandbox may have left a link to a secret there.
                name, data = next(((n, d) for n in ANALYSIS_NAMES
                                   if (d := read_result(ws, f"{OUT_NAME}/{n}")) is not None), (None, None))
                if data is None:
                    problems.append("the script wrote no speedrun_analysis.json into --out")
                else:
                    file = ws.parent / name
                    file.write_bytes(data)
                    p = Problems(f"{OUT_NAME}/{name}")
                    fresh = load_validated(file, "run", p)
                    if fresh is None:
                        problems.append(f"the rerun's analysis is invalid: {p.items[0].line() if p.items else '?'}")
            deltas: list[dict] = []
            if fresh is not None:
                deltas, more = _compare(claimed, fresh, seed, track)
                problems += more
            hardware = fresh.compute.hardware.accelerator if fresh is not None else None
            if outcome.process_cap_reached:
                problems.append(f"the script reached the sandbox's cap of {limits.processes} processes")
        outcome_seed = SeedOutcome(seed, not problems, seconds, deltas, problems, hardware)
        result.seeds.append(outcome_seed)
        worst = max((abs(d["delta"]) for d in deltas), default=math.nan)
        progress(f"seed {seed}: {'agrees' if outcome_seed.ok else 'DISAGREES'} in {seconds:.1f} s"
                 + (f" (largest |Δ| {worst:.4f}, tolerance {track.tolerance.metric_abs})" if deltas else "")
                 + ("" if outcome_seed.ok else f": {'; '.join(problems)}"))
    failed = [s for s in result.seeds if not s.ok]
    if failed:
        result.verdict = "failed" if any(not s.deltas for s in failed) else "disagrees"
        result.reasons = [p for s in failed for p in s.problems]
    if record and result.verdict == "reproduced" and content_sha256(run_dir) != result.content_sha256:
        result.reasons.append("the run folder changed while it was reproduced; nothing recorded")
    elif record and result.verdict == "reproduced":
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
        hardware = _slug(next((s.hardware for s in result.seeds if s.hardware), device))
        target = run_dir / "reproductions" / f"{stamp}-{hardware}{f'-x{nproc}' if nproc > 1 else ''}.json"
        if not _write_record(target, result):
            result.reasons.append(f"{target.parent} or {target.name} is not a plain folder or file; nothing recorded")
    return result


def _write_record(target: Path, result: Reproduction) -> bool:
    """Write the record as a new plain file, never through a link the run folder (PR content) may have put there."""
    folder = target.parent
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        return False
    folder.mkdir(exist_ok=True)
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        return False
    result.recorded = str(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(target, flags, 0o644), "w", encoding="utf-8") as fh:
        fh.write(json.dumps(result.to_dict(), indent=2) + "\n")
    return True
