"""Run submitted code: a throwaway copy of the run folder, inside bubblewrap (see bwrap.py), under limits.

Limits: wall time (the whole sandbox is killed), CPU seconds, address space (CPU runs) or resident memory watched
from outside (GPU runs), file size, number of processes, captured output (head and tail kept). Nothing the sandbox
prints is trusted: callers read results from a pipe or from files of the copy, through `read_result`.

Without bubblewrap the code does not run, unless the caller explicitly allowed unsafe runs (`--unsafe-no-sandbox`,
which sets SPEEDRUN_UNSAFE_NO_SANDBOX=1): then it runs with the limits alone, and every outcome says so.
"""

from __future__ import annotations

import os
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import bwrap
from .capture import BoundedStream, Watcher, kill_group

MAX_COPY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 180.0
    memory_bytes: int | None = 6 * 1024**3  # address space on CPU; resident memory, watched, on GPU
    cpu_seconds: int = 600
    file_bytes: int = 256 * 1024**2
    processes: int = 256
    output_bytes: int = 1024**2  # per stream: the first and last half are kept
    tmp_bytes: int = 1024**3
    gpu: bool = False  # NVIDIA device nodes in the sandbox, and no address-space limit


@dataclass
class Outcome:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    sandboxed: bool = True
    cut_bytes: dict = field(default_factory=dict)
    peak_processes: int = 0
    processes_started: int = 0
    process_cap_reached: bool = False
    killed_for_memory: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def memory_exhausted(self) -> bool:
        tail = self.stderr[-4000:]
        return self.killed_for_memory or any(s in tail for s in (
            "MemoryError", "can't allocate memory", "Cannot allocate memory", "std::bad_alloc", "out of memory"))


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


def _env(threads: int) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
        "NO_PROXY": "*",
    }


def _own_processes() -> int:
    uid, n = os.getuid(), 0
    for entry in os.listdir("/proc"):
        try:
            n += entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == uid
        except OSError:
            pass
    return n


def _rlimits(limits: Limits):
    # RLIMIT_NPROC counts every process of the user. Root's own count is exempt, so the cap applies to the sandbox's
    # uid alone; an ordinary user's cap must leave room for the processes they already run.
    processes = limits.processes + (0 if os.geteuid() == 0 else _own_processes())

    def apply() -> None:
        # The group lets a timeout kill bwrap and, with it, the PID namespace holding every descendant.
        os.setsid()
        for res, value in ((resource.RLIMIT_AS, None if limits.gpu else limits.memory_bytes),
                           (resource.RLIMIT_CPU, limits.cpu_seconds), (resource.RLIMIT_FSIZE, limits.file_bytes),
                           (resource.RLIMIT_NPROC, processes), (resource.RLIMIT_CORE, 0)):
            if value is not None:
                try:
                    resource.setrlimit(res, (value, value))
                except (ValueError, OSError):
                    pass
    return apply


def run_python(args: list[str], *, workdir: Path, limits: Limits = Limits(), threads: int = 2,
               extra_env: dict[str, str] | None = None, pass_env: tuple[str, ...] = (), script_path: bool = False,
               tool_files: dict[str, Path] | None = None, readonly: list[Path] = (),
               pass_fds: tuple[int, ...] = (), python: str | None = None) -> Outcome:
    """Run `python -I <args>` in the sandbox with `workdir` as its writable working folder (at bwrap.RUN_DIR inside).
    `pass_env` names variables of this process to keep (device selection, never secrets). `script_path` runs
    `python -E -s` instead, which like `python run.py` puts the script's folder on sys.path. `tool_files` are
    mounted read-only at bwrap.TOOL_DIR/<name>; `pass_fds` stay open in the sandbox (a result pipe). `python` is the
    interpreter, by default this one; a track's environment (validator/environment.py) gives its own."""
    python = [python or sys.executable, *(["-E", "-s"] if script_path else ["-I"]), *args]
    env = _env(threads)
    env.update({k: os.environ[k] for k in pass_env if k in os.environ})
    env.update(extra_env or {})
    bwrap.require()  # raises, saying why and what to do, unless a sandbox starts here or unsafe runs were allowed
    sandboxed = bwrap.unavailable_reason() is None
    if sandboxed:
        if os.geteuid() == 0:
            _hand_over(workdir)
        argv = bwrap.argv(python, workdir, gpu=limits.gpu, tool_files=tool_files or {}, tmp_bytes=limits.tmp_bytes,
                          readonly=list(readonly))
        cwd = "/"
    else:
        tools = {f"{bwrap.TOOL_DIR}/{name}": str(path) for name, path in (tool_files or {}).items()}
        argv, cwd = [tools.get(a, a) for a in python], str(workdir)
        env["TMPDIR"] = env["HOME"] = str(workdir)
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=_rlimits(limits), pass_fds=pass_fds)
    out, err = BoundedStream(proc.stdout, limits.output_bytes), BoundedStream(proc.stderr, limits.output_bytes)
    watcher = Watcher(proc.pid, memory_bytes=limits.memory_bytes if limits.gpu else None)
    timed_out = False
    try:
        proc.wait(timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        # Every path out, an interrupt included, takes the whole sandbox down with it.
        watcher.stop()
        kill_group(proc.pid)
        proc.wait()
        out.join(5)
        err.join(5)
    outcome = Outcome(None if timed_out else proc.returncode, out.text(), err.text(), timed_out=timed_out,
                      sandboxed=sandboxed, cut_bytes={k: s.cut for k, s in (("stdout", out), ("stderr", err)) if s.cut},
                      peak_processes=watcher.peak_processes, processes_started=watcher.highest_pid,
                      process_cap_reached=watcher.peak_processes >= limits.processes - 1,
                      killed_for_memory=watcher.killed_for_memory)
    if not sandboxed:
        outcome.notes.append("UNSAFE: ran without a sandbox (--unsafe-no-sandbox)")
    if outcome.process_cap_reached:
        outcome.notes.append(f"reached the sandbox's cap of {limits.processes} processes "
                             f"(at least {outcome.processes_started:,} started)")
    if outcome.cut_bytes:
        outcome.notes.append("output cut: " + ", ".join(f"{k} {v:,} bytes" for k, v in outcome.cut_bytes.items()))
    return outcome


def _hand_over(workdir: Path) -> None:
    """The sandbox runs as nobody: give it its copy (and only its copy)."""
    for path in [workdir, *workdir.rglob("*")]:
        if not path.is_symlink():
            os.chown(path, bwrap.SANDBOX_UID, bwrap.SANDBOX_UID)


def read_result(workdir: Path, rel: str, limit: int = 16 * 1024**2) -> bytes | None:
    """A file the sandbox wrote, read only if it is a regular file reached without any symbolic link and is no
    larger than `limit`: a submission could leave a link to /etc/shadow where its result should be."""
    path = workdir
    for part in Path(rel).parts:
        path = path / part
        if path.is_symlink():
            return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        return fh.read(limit + 1)[:limit]


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
