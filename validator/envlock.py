"""pip for a track's environment: its arguments, the lock file (`runs/<track>/environment.lock`), and the check that
what is installed satisfies what was declared.

The lock pins, exactly, every distribution that must be installed on top of the host interpreter that wrote it
(`speedrun env lock`, which asks pip for a dry-run report). Installs then take the lock as it is (`--no-deps`), so a
track's runs are judged with the same versions everywhere. pip installs wheels only (`--only-binary :all:`): no
package's build code ever runs outside the sandbox.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .imports import find_distribution
from .models.track import TOOL_RUNTIME, Environment

LOCK_FILE = "environment.lock"
PIP_TIMEOUT_S = 1800


class EnvironmentFailure(Exception):
    """A track's environment could not be made; `rule` is its rule id, `package` the package pip names, if any."""

    def __init__(self, rule: str, message: str, package: str | None = None) -> None:
        super().__init__(message)
        self.rule, self.package = rule, package


def inputs_digest(environment: Environment) -> str:
    """What the lock was resolved from: the declared packages and indexes (not the aliases, which pip never sees)."""
    doc = {"packages": sorted(environment.packages), "index_url": environment.index_url,
           "extra_index_urls": environment.extra_index_urls}
    return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def host_versions() -> dict[str, str]:
    """The tool's own runtime as installed here; pip may never replace it (a torch from the index is a CUDA build)."""
    out = {}
    for name in TOOL_RUNTIME:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def pip_args(environment: Environment, constraints: Path) -> list[str]:
    args = ["--disable-pip-version-check", "--no-input", "--only-binary", ":all:", "-c", str(constraints)]
    if environment.index_url:
        args += ["--index-url", environment.index_url]
    for url in environment.extra_index_urls:
        args += ["--extra-index-url", url]
    return args


def write_constraints(folder: Path) -> Path:
    path = folder / "host-constraints.txt"
    path.write_text("".join(f"{n}=={v}\n" for n, v in sorted(host_versions().items())), encoding="utf-8")
    return path


def run_pip(args: list[str], packages: list[str]) -> None:
    """Run pip; on failure raise EnvironmentFailure naming the package pip names and its last error line."""
    try:
        done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                              timeout=PIP_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise EnvironmentFailure("env-install-failed", f"pip did not finish within {PIP_TIMEOUT_S} s") from None
    if done.returncode == 0:
        return
    lines = [ln.strip() for ln in (done.stderr + "\n" + done.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")] or lines or [f"exit {done.returncode}"]
    last = errors[-1].removeprefix("ERROR:").strip()[:400]
    flat = last.lower().replace("_", "-").replace(".", "-")
    package = next((p for p in packages if canonicalize_name(Requirement(p).name) in flat), None)
    what = package or ", ".join(packages)
    raise EnvironmentFailure("env-install-failed", f"installing {what} failed: {last}", package)


def resolve(environment: Environment) -> list[str]:
    """Exact pins of everything pip would install on top of this interpreter for the declared packages."""
    with tempfile.TemporaryDirectory(prefix="speedrun-lock-") as tmp:
        report = Path(tmp) / "report.json"
        args = ["install", "--dry-run", "--quiet", "--report", str(report),
                *pip_args(environment, write_constraints(Path(tmp))), *environment.packages]
        run_pip(args, environment.packages)
        data = json.loads(report.read_text(encoding="utf-8"))
    pins = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in data.get("install", []))
    return sorted(pins, key=lambda p: canonicalize_name(p.split("==")[0]))


def lock_text(track_id: str, environment: Environment, pins: list[str]) -> str:
    host = ", ".join(f"{n} {v}" for n, v in sorted(host_versions().items()))
    return (f"# speedrun environment lock for track {track_id}: written by `speedrun env lock`; do not edit.\n"
            f"# Everything installed on top of the host interpreter (python {sys.version.split()[0]}, {host}).\n"
            f"# inputs: {inputs_digest(environment)}\n" + "".join(f"{p}\n" for p in pins))


def read_lock(track_dir: Path | None, environment: Environment) -> list[str] | None:
    """The lock's pins, None when the track has no lock file. A lock written for other declared packages, or one
    that is not a list of exact pins, is refused: it would install something nobody declared."""
    file = track_dir / LOCK_FILE if track_dir is not None else None
    if file is None or not file.is_file():
        return None
    text = file.read_text(encoding="utf-8", errors="replace")
    digest = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("# inputs:")), None)
    if digest != inputs_digest(environment):
        raise EnvironmentFailure("env-lock-invalid", f"{file} was written for other declared packages than "
                                 "track.yaml's environment (it is stale)")
    pins = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            req = Requirement(line.strip())
        except InvalidRequirement:
            req = None
        spec = list(req.specifier) if req else []
        if req is None or req.url or req.marker or len(spec) != 1 or spec[0].operator != "==":
            raise EnvironmentFailure("env-lock-invalid", f"{file} line {n}: {line.strip()[:80]!r} is not an exact "
                                     "pin 'name==version'")
        pins.append(line.strip())
    return pins


def unsatisfied(requirements: list[str], path: list[str]) -> list[str]:
    """Requirements (followed through their dependencies) that the distributions on `path` do not satisfy."""
    missing, seen = [], set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        dist = find_distribution(req.name, path)
        if dist is None or not req.specifier.contains(dist.version, prereleases=True):
            missing.append(f"{req} (found {dist.version if dist else 'nothing'})")
            continue
        for e in sorted(req.extras) or [""]:
            if (canonicalize_name(req.name), e) in seen:
                continue
            seen.add((canonicalize_name(req.name), e))
            for text in dist.requires or []:
                try:
                    todo.append((Requirement(text), e))
                except InvalidRequirement:
                    pass
    return sorted(set(missing))


def write_lock(track_dir: Path, track_id: str, environment: Environment,
               progress: Callable[[str], None] = lambda _m: None) -> tuple[Path, list[str]]:
    progress(f"resolving {', '.join(environment.packages) or 'no packages'} against this interpreter ...")
    pins = resolve(environment) if environment.packages else []
    target = track_dir / LOCK_FILE
    tmp = track_dir / f".{LOCK_FILE}.tmp"
    tmp.write_text(lock_text(track_id, environment, pins), encoding="utf-8")
    tmp.replace(target)
    return target, pins
