"""A track's declared environment: the interpreter submitted code runs with in the sandbox.

A track declares the packages its runs may import (track.yaml `environment`, docs/environments.md). When this
interpreter already satisfies them, runs use it as it is. Otherwise the packages are installed, once, into a virtual
environment on top of this interpreter (`--system-site-packages`: torch and the rest come from the host, never
reinstalled), cached under `$SPEEDRUN_CACHE/envs` (default `~/.cache/speedrun/envs`) by everything it depends on.
A file lock keeps two processes from building one environment at once; an environment is built under a temporary
name and renamed into place when complete, so a half-built one is never used.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from packaging.requirements import Requirement

from .envlock import EnvironmentFailure, inputs_digest, pip_args, read_lock, run_pip, unsatisfied, write_constraints
from .imports import allowed_imports, find_distribution

__all__ = ["EnvironmentFailure", "SandboxEnv", "cache_root", "guard_argument", "sandbox_env"]

CACHE_ENV = "SPEEDRUN_CACHE"
MARKER = "speedrun-env.json"  # written last, before the rename: an environment without it is not one


@dataclass(frozen=True)
class SandboxEnv:
    python: str  # the interpreter to run in the sandbox
    readonly: tuple[Path, ...] = ()  # folders the sandbox must see read-only for that interpreter (a venv)
    allowed_imports: frozenset[str] | None = None  # top-level modules a run may import; None: no restriction
    description: str = "this interpreter"
    packages: dict[str, str] = field(default_factory=dict)  # declared distribution -> installed version

    def identity(self) -> str:
        """What a count made in this environment depends on (a FLOP-count cache key includes it)."""
        doc = [self.python, sorted(self.packages.items()), sorted(self.allowed_imports or ["*"])]
        return hashlib.sha256(json.dumps(doc).encode()).hexdigest()


def guard_argument(env: SandboxEnv) -> str | None:
    """The allowed modules as the import guard takes them (JSON; the guard adds the standard library itself), or
    None for an unrestricted environment."""
    if env.allowed_imports is None:
        return None
    return json.dumps(sorted(n for n in env.allowed_imports if n not in sys.stdlib_module_names))


def cache_root() -> Path:
    base = os.environ.get(CACHE_ENV)
    return (Path(base) if base else Path.home() / ".cache" / "speedrun") / "envs"


_made: dict[str, SandboxEnv] = {}


def sandbox_env(track, track_dir: Path | None, progress: Callable[[str], None] | None = None) -> SandboxEnv:
    """The environment a run of `track` (stored in `track_dir`) runs in, created and cached on first use.
    Raises EnvironmentFailure (rule env-install-failed or env-lock-invalid) when it cannot be made. Without a track
    (`None`) nothing is declared and nothing restricted: this interpreter as it is."""
    if track is None:
        return SandboxEnv(python=sys.executable)
    environment = track.environment
    pins = read_lock(track_dir, environment)
    key = _key(environment, pins)
    memo = f"{cache_root()}\0{key}"
    if memo not in _made:
        _made[memo] = _host(environment, pins) or _venv(track.id, environment, pins, key, progress or (lambda _m: None))
    return _made[memo]


@lru_cache(maxsize=1)
def _host_digest() -> str:
    """Every distribution this interpreter has: a virtual environment on top of it is only valid for that set."""
    # A set: run from a source checkout, the checkout's own .egg-info on sys.path lists the tool a second time, and
    # the key must not depend on the folder a process started in (a test and `speedrun env install` disagreed)
    dists = sorted({f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()})
    return hashlib.sha256("\n".join(dists).encode()).hexdigest()


def _key(environment, pins: list[str] | None) -> str:
    doc = {"inputs": inputs_digest(environment), "pins": pins, "python": sys.version,
           "executable": os.path.realpath(sys.executable), "host": _host_digest()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _versions(environment, path: list[str]) -> dict[str, str]:
    out = {}
    for text in environment.packages:
        dist = find_distribution(Requirement(text).name, path)
        out[Requirement(text).name] = dist.version if dist else "missing"
    return out


def _host(environment, pins: list[str] | None) -> SandboxEnv | None:
    """This interpreter, when it already has everything (and exactly the locked versions): no install at all."""
    if unsatisfied(environment.packages, sys.path):
        return None
    for pin in pins or []:
        name, version = pin.split("==", 1)
        try:
            if importlib.metadata.version(name) != version:
                return None
        except importlib.metadata.PackageNotFoundError:
            return None
    return SandboxEnv(python=sys.executable, allowed_imports=allowed_imports(environment),
                      description="this interpreter", packages=_versions(environment, sys.path))


def _site(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _venv(track_id: str, environment, pins: list[str] | None, key: str, progress) -> SandboxEnv:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{track_id}-{key[:16]}"
    if not (final / MARKER).is_file():
        with _locked(root / f"{final.name}.lock", progress):
            if not (final / MARKER).is_file():  # another process may have built it while this one waited
                _build(final, environment, pins, progress)
    path = [str(_site(final)), *sys.path]
    packages = _versions(environment, path)
    return SandboxEnv(python=str(final / "bin" / "python"), readonly=(final,),
                      allowed_imports=allowed_imports(environment, path),
                      description=f"virtual environment {final} ({', '.join(f'{k} {v}' for k, v in packages.items())})",
                      packages=packages)


@contextlib.contextmanager
def _locked(path: Path, progress):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another process installing the same environment ({path.stem}) ...")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock, also when the process dies


def _build(final: Path, environment, pins: list[str] | None, progress) -> None:
    for stale in final.parent.glob(f".build-{final.name}-*"):  # left by a process that died (this one holds the lock)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".build-{final.name}-", dir=final.parent))
    try:
        t0 = time.perf_counter()
        wanted = pins if pins is not None else environment.packages
        progress(f"installing {', '.join(wanted) or 'nothing'} into {final} (first use; cached afterwards) ...")
        made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(tmp)],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if made.returncode != 0:
            raise EnvironmentFailure("env-install-failed", f"python -m venv failed: {made.stderr.strip()[-300:]}")
        if wanted:
            # This pip, pointed at the new interpreter: the environment needs no pip of its own. Wheels only, and the
            # host's torch and numpy pinned (a dependency asking for another torch fails instead of pulling one).
            args = ["--python", str(tmp / "bin" / "python"), "install", "--no-compile", "--no-warn-script-location",
                    *(["--no-deps"] if pins is not None else []), *pip_args(environment, write_constraints(tmp)), *wanted]
            run_pip(args, environment.packages)
        missing = unsatisfied(environment.packages, [str(_site(tmp)), *sys.path])
        if missing:
            hint = "regenerate the lock with `speedrun env lock`" if pins is not None else "check the declared versions"
            raise EnvironmentFailure("env-install-failed", f"the installed packages do not satisfy {', '.join(missing)}; "
                                     f"{hint}")
        installed = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions(path=[str(_site(tmp))])}
        (tmp / MARKER).write_text(json.dumps({"packages": environment.packages, "lock": pins, "installed": installed,
                                              "python": sys.version, "seconds": round(time.perf_counter() - t0, 1)},
                                             indent=2), encoding="utf-8")
        _readable(tmp)
        os.rename(tmp, final)
        progress(f"environment ready in {time.perf_counter() - t0:.1f} s: {final}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _readable(folder: Path) -> None:
    """The sandbox runs as nobody: everything must be readable (and folders enterable) by others."""
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        path.chmod(mode | 0o444 | (0o111 if path.is_dir() or mode & 0o100 else 0))
