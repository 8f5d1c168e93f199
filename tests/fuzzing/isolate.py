"""Run one fuzz case in a forked child process.

A hang (a FIFO opened for reading blocks in the kernel, where no signal handler runs Python) is killed at the time
limit instead of stopping the whole fuzz run; a memory bomb hits an address-space cap instead of the machine; and the
child's peak memory is its own, not the test runner's. Forking costs about 15 ms and starts with everything
imported, so thousands of cases stay affordable.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

TIME_LIMIT_S = 5.0
PEAK_MEMORY_BOUND_MB = 200
# The safety net, not the property: address space the child may add before allocations fail. Far above the bound,
# so a case that breaks the bound is measured and reported rather than cut short.
MEMORY_CAP_MB = 1536


@dataclass
class Outcome:
    status: str  # "done", "crashed" (an exception escaped the target), "timeout", "died" (killed or no report)
    value: dict = field(default_factory=dict)
    seconds: float = 0.0
    peak_mb: float = 0.0
    error: str = ""

    def problems(self) -> list[str]:
        """What is wrong with how the case ran, whatever the target returned."""
        out = []
        if self.status == "crashed":  # the exception first (it names the failure), then where it came from
            lines = self.error.strip().splitlines()
            out.append(f"crashed: {lines[-1]}\n" + "\n".join(lines[-12:-1]))
        elif self.status != "done":
            out.append(f"{self.status}: {self.error}")
        elif self.seconds >= TIME_LIMIT_S:
            out.append(f"took {self.seconds:.1f} s (limit {TIME_LIMIT_S:g} s)")
        if self.peak_mb > PEAK_MEMORY_BOUND_MB:
            out.append(f"peak memory grew by {self.peak_mb:.0f} MB (bound {PEAK_MEMORY_BOUND_MB} MB)")
        return out


def _status_kb(name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


def _child(fn: Callable[..., dict], args: tuple, cwd: str | None, cap_mb: int, channel) -> None:
    os.environ.pop("SPEEDRUN_DEBUG", None)  # the CLI must turn exceptions into its own exit codes here
    if cwd:
        os.chdir(cwd)
    cap = _status_kb("VmSize") * 1024 + cap_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
    base = _status_kb("VmRSS")
    start = time.perf_counter()
    try:
        report = {"status": "done", "value": fn(*args)}
    except BaseException as exc:  # noqa: BLE001 - whatever escapes is the finding
        report = {"status": "crashed", "error": "".join(traceback.format_exception(exc))[-6000:]}
    report["seconds"] = time.perf_counter() - start
    report["peak_mb"] = max(0, _status_kb("VmHWM") - base) / 1024
    channel.write(json.dumps(report).encode())
    channel.flush()


def run_isolated(fn: Callable[..., dict], *args, cwd: str | None = None, time_limit: float = TIME_LIMIT_S,
                 cap_mb: int = MEMORY_CAP_MB) -> Outcome:
    """`fn(*args)` in a child (working directory `cwd`); its JSON-able return value comes back in the Outcome."""
    with tempfile.TemporaryFile() as channel:  # a file, not a pipe: a big report cannot block the child
        start, parent_kb = time.perf_counter(), _status_kb("VmRSS")
        pid = os.fork()
        if pid == 0:
            try:
                _child(fn, args, cwd, cap_mb, channel)
            finally:
                os._exit(0)
        pidfd = os.pidfd_open(pid)
        try:
            finished, _, _ = select.select([pidfd], [], [], time_limit + 0.5)
        finally:
            os.close(pidfd)
        if not finished:
            os.kill(pid, signal.SIGKILL)
        _, wstatus, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - start
        channel.seek(0)
        raw = channel.read()
    grown = max(0, usage.ru_maxrss - parent_kb) / 1024  # the child's own measure is lost when it is killed
    if not finished:
        return Outcome("timeout", seconds=wall, peak_mb=grown,
                       error=f"killed after {wall:.1f} s (limit {time_limit:g} s)")
    try:
        report = json.loads(raw)
    except ValueError:
        how = (f"signal {os.WTERMSIG(wstatus)}" if os.WIFSIGNALED(wstatus)
               else f"exit {os.waitstatus_to_exitcode(wstatus)}")
        return Outcome("died", seconds=wall, peak_mb=grown, error=f"no report from the child ({how})")
    return Outcome(report["status"], report.get("value") or {}, report["seconds"], report["peak_mb"],
                   report.get("error", ""))
