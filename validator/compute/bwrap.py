"""The isolation tool: bubblewrap (`bwrap`, Debian/Ubuntu package `bubblewrap`).

The sandbox sees a minimal root: the system's read-only `/usr` (and `/etc`, `/sys`), the Python installation
read-only, the run's throwaway copy (the only writable place besides a private `/tmp`), and for GPU runs the NVIDIA
device nodes. The repository, other runs, the site, caches and home folders are simply absent, and so is any Unix
socket that lives in them. New PID, network, IPC, UTS and cgroup namespaces: no network but the sandbox's own
loopback (enough for torchrun's rendezvous), and every process still alive when the sandbox ends dies with it.

Started as root, bwrap sets up the mounts with its privileges and then `setpriv` drops to an unprivileged uid with
no capabilities and no_new_privs before any submitted code runs, so root-only files stay unreadable. Started as an
ordinary user, bwrap uses a user namespace and the code runs as that user.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

SANDBOX_UID = 65534  # nobody
RUN_DIR = "/sandbox/run"
TOOL_DIR = "/sandbox/tool"


class SandboxUnavailable(Exception):
    """Submitted code would have to run without isolation."""


def bwrap_path() -> str | None:
    # SPEEDRUN_BWRAP lets a test play a machine without bubblewrap; it can only take isolation away, never add.
    override = os.environ.get("SPEEDRUN_BWRAP")
    return override if override is not None and os.access(override, os.X_OK) else (
        None if override is not None else shutil.which("bwrap"))


def _python_paths() -> list[str]:
    """Folders the interpreter needs: its prefixes and the import path's library folders. Import-path entries inside
    the project or the current folder (a source checkout, a test folder) stay out: the sandbox must not see them."""
    private = [os.path.realpath(p) for p in (Path(__file__).resolve().parents[2], os.getcwd())]
    keep: list[str] = []
    for entry in [sys.prefix, sys.base_prefix, *sys.path]:
        if not entry or not os.path.isdir(entry):
            continue
        path = os.path.realpath(entry)
        inside = any(path == p or path.startswith(p + "/") for p in private)
        if path == "/" or (inside and entry not in (sys.prefix, sys.base_prefix) and "site-packages" not in path):
            continue
        if not any(path == k or path.startswith(k + "/") for k in keep):
            keep = [k for k in keep if not k.startswith(path + "/")] + [path]
    return sorted(keep)


def _parents(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def argv(command: list[str], workdir: Path, *, gpu: bool, tool_files: dict[str, Path], tmp_bytes: int,
         readonly: list[Path] = ()) -> list[str]:
    """The bwrap command line that runs `command` with `workdir` mounted read-write at RUN_DIR."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
    root = os.geteuid() == 0
    args = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session"]
    if not root:
        args += ["--unshare-user"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc", "--ro-bind", "/sys", "/sys",
             "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp",
             # shared memory for DataLoader workers and NCCL: private and capped like /tmp
             "--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/dev/shm"]
    if gpu:
        for dev in sorted(Path("/dev").glob("nvidia*")):
            args += ["--dev-bind", str(dev), str(dev)]
    made: set[str] = {"/usr", "/etc", "/sys", "/tmp", "/dev", "/proc"}
    binds = [("--ro-bind", p, p) for p in _python_paths()] + [("--ro-bind", str(p), str(p)) for p in readonly]
    binds += [("--ro-bind", str(src), f"{TOOL_DIR}/{name}") for name, src in sorted(tool_files.items())]
    binds += [("--bind", str(workdir), RUN_DIR)]  # the one writable mount besides the tmpfs folders
    for how, src, dest in binds:
        for parent in _parents(dest):  # bwrap would make them 0700, which nobody could not enter
            if parent not in made:
                args += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        args += [how, src, dest]
    args += ["--chdir", RUN_DIR]
    if root:
        # Mounts need root; the code must not have it. setpriv switches to nobody with no capabilities left
        # (a uid change from 0 clears them) and no way back (no_new_privs).
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--",
                 "setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "--no-new-privs"]
    else:
        args += ["--"]
    return args + command


@functools.lru_cache(maxsize=4)
def _probe(bwrap: str | None, root: bool) -> str | None:
    """None when a sandbox starts here, else why not."""
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    if root and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is missing, so the sandbox could not drop root"
    probe = Path("/tmp") if os.access("/tmp", os.W_OK) else Path.cwd()
    try:
        cmd = argv([sys.executable, "-I", "-c", "import os; os.getuid()"], probe, gpu=False, tool_files={},
                   tmp_bytes=1 << 20)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError, SandboxUnavailable) as exc:
        return f"bwrap could not start: {exc}"
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1][:300]
        return f"bwrap could not start a sandbox here ({why})"
    return None


def unavailable_reason() -> str | None:
    return _probe(bwrap_path(), os.geteuid() == 0)


UNSAFE_ENV = "SPEEDRUN_UNSAFE_NO_SANDBOX"
INSTALL_HINT = ("install it (Debian/Ubuntu: `sudo apt-get install bubblewrap`; on Ubuntu 24.04 also "
                "`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`), or pass --unsafe-no-sandbox to run "
                "submitted code without isolation on a machine you do not mind it touching")


def unsafe_allowed() -> bool:
    return os.environ.get(UNSAFE_ENV) == "1"


def require() -> None:
    """Raise SandboxUnavailable, saying why and what to do, unless a sandbox can start or unsafe runs were asked for."""
    reason = unavailable_reason()
    if reason is not None and not unsafe_allowed():
        raise SandboxUnavailable(f"refusing to run submitted code without a sandbox: {reason}; {INSTALL_HINT}")
