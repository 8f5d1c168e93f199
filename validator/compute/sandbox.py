"""Run untrusted code in a child process: a throwaway copy of the run folder, isolated interpreter (`-I`), scrubbed
environment, address-space/CPU/file-size limits, a timeout that kills the whole process group, and no network where
`unshare -rn` works. The real protection is the CI job boundary (a throwaway VM with a read-only token); this keeps
one bad submission from taking the job, or the other runs, down with it.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

MAX_COPY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 180.0
    memory_bytes: int | None = 6 * 1024**3  # None: no address-space limit (CUDA reserves terabytes of it)
    cpu_seconds: int = 600
    file_bytes: int = 256 * 1024**2
    network: bool = False
    # A PID namespace kills whatever the child leaves behind, but CUDA cannot initialise inside one (error 304 on
    # the NVIDIA driver), so GPU runs go without it.
    pid_namespace: bool = True


@dataclass
class Outcome:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    isolated_network: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def memory_exhausted(self) -> bool:
        tail = self.stderr[-4000:]
        return any(s in tail for s in ("MemoryError", "can't allocate memory", "Cannot allocate memory",
                                       "std::bad_alloc", "out of memory"))


@functools.lru_cache(maxsize=1)
def network_isolation_available() -> bool:
    if not shutil.which("unshare"):
        return False
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.lru_cache(maxsize=1)
def pid_namespace_available() -> bool:
    try:
        return subprocess.run(["unshare", "-rn", "--pid", "--fork", "--kill-child", "true"],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def copy_run_folder(run_dir: Path, dest: Path, skip: tuple[str, ...] = ("logs", "reproductions")) -> None:
    """Copy regular files only (no symlinks), skipping logs, within a size cap, so the child cannot touch the original."""
    total = 0
    for src in sorted(run_dir.rglob("*")):
        rel = src.relative_to(run_dir)
        if rel.parts[0] in skip or src.is_symlink() or not src.is_file() or "__pycache__" in rel.parts:
            continue
        total += src.stat().st_size
        if total > MAX_COPY_BYTES:
            raise OSError(f"run folder is larger than {MAX_COPY_BYTES // 2**20} MiB")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)


def _scrubbed_env(home: Path, threads: int) -> dict[str, str]:
    env = {
        "PATH": os.pathsep.join(p for p in ("/usr/local/bin", "/usr/bin", "/bin") if os.path.isdir(p)),
        "HOME": str(home),
        "TMPDIR": str(home / ".tmp"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
        "NO_PROXY": "*",
    }
    (home / ".tmp").mkdir(exist_ok=True)
    return env


def _limit(limits: Limits):
    def apply() -> None:
        os.setsid()  # own process group, so a timeout kills every descendant
        for res, value in (
            (resource.RLIMIT_AS, limits.memory_bytes),
            (resource.RLIMIT_CPU, limits.cpu_seconds),
            (resource.RLIMIT_FSIZE, limits.file_bytes),
            (resource.RLIMIT_CORE, 0),
        ):
            if value is None:
                continue
            try:
                resource.setrlimit(res, (value, value))
            except (ValueError, OSError):
                pass
    return apply


def run_python(args: list[str], *, workdir: Path, limits: Limits = Limits(), threads: int = 2,
               extra_env: dict[str, str] | None = None, pass_env: tuple[str, ...] = (),
               script_path: bool = False) -> Outcome:
    """Run `python -I <args>` in `workdir` under the limits. `pass_env` names variables of this process to keep
    (device selection, never secrets). `script_path` runs `python -E -s` instead, which like `python run.py` puts
    the script's folder on sys.path (-I leaves it off since Python 3.11), so a run may import its own modules."""
    argv = [sys.executable, *(["-E", "-s"] if script_path else ["-I"]), *args]
    isolated = False
    if not limits.network and network_isolation_available():
        # A new network namespace (no network) and PID namespace: when the child exits or is killed, the kernel
        # kills every process it left behind, even ones that escaped the process group with setsid().
        pid = limits.pid_namespace and pid_namespace_available()
        argv = ["unshare", "-rn", *(["--pid", "--fork", "--kill-child"] if pid else []), *argv]
        isolated = True
    env = _scrubbed_env(workdir, threads)
    env.update({k: os.environ[k] for k in pass_env if k in os.environ})
    env.update(extra_env or {})
    proc = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace", preexec_fn=_limit(limits))
    try:
        out, err = proc.communicate(timeout=limits.timeout_s)
        return Outcome(proc.returncode, out, err, isolated_network=isolated)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            # A descendant outside the group still holds the pipes open: stop reading rather than wait for it.
            for stream in (proc.stdout, proc.stderr):
                stream.close()
            proc.wait(timeout=5)
            out, err = "", ""
        return Outcome(None, out, err, timed_out=True, isolated_network=isolated)


class Workspace:
    """A temporary copy of a run folder, removed afterwards."""

    def __init__(self, run_dir: Path, skip: tuple[str, ...] = ("logs", "reproductions")) -> None:
        self.run_dir = run_dir
        self.skip = skip
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> Path:
        self._tmp = tempfile.TemporaryDirectory(prefix="speedrun-sandbox-")
        path = Path(self._tmp.name) / "run"
        path.mkdir()
        copy_run_folder(self.run_dir, path, self.skip)
        return path

    def __exit__(self, *exc) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
