"""Watching a sandboxed process from outside: bounded output capture and a poll of its process tree.

Output: a submission can print without end; keeping all of it grew the parent to gigabytes. A stream keeps its
first and last `limit / 2` bytes and counts what it dropped.

Processes: the watcher walks the tree under the sandbox every `interval` seconds, records the peak number of live
processes and the highest PID the sandbox's own PID namespace handed out (a lower bound on how many it ever started,
short-lived ones included), and kills the tree when its resident memory passes the limit (GPU runs cannot use an
address-space limit, CUDA reserves terabytes of it).
"""

from __future__ import annotations

import os
import signal
import threading
from collections import deque


class BoundedStream:
    def __init__(self, stream, limit: int) -> None:
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_bytes = 0
        self.total = 0
        self.half = max(1, limit // 2)
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:
        try:
            while chunk := stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536):
                self.total += len(chunk)
                room = self.half - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
                    chunk = chunk[room:]
                if chunk:
                    self.tail.append(chunk)
                    self.tail_bytes += len(chunk)
                    while self.tail_bytes - len(self.tail[0]) >= self.half:
                        self.tail_bytes -= len(self.tail.popleft())
        except (OSError, ValueError):
            pass

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def cut(self) -> int:
        return self.total - len(self.head) - min(self.tail_bytes, self.half)

    def text(self) -> str:
        tail = b"".join(self.tail)[-self.half:] if self.tail else b""
        head = self.head.decode("utf-8", "replace")
        if self.cut:
            return f"{head}\n[... {self.cut:,} bytes of output cut ...]\n{tail.decode('utf-8', 'replace')}"
        return head + tail.decode("utf-8", "replace")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except (OSError, ValueError):
        pass
    return out


def tree(root: int) -> list[int]:
    seen, stack = [], [root]
    while stack and len(seen) < 100_000:
        pid = stack.pop()
        seen.append(pid)
        stack += _children(pid)
    return seen


def _status(pid: int) -> tuple[int, int]:
    """(resident bytes, the PID inside the innermost PID namespace) of one process; (0, 0) if it is gone."""
    rss = nspid = 0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("NSpid:"):
                    nspid = int(line.split()[-1])
    except (OSError, ValueError, IndexError):
        pass
    return rss, nspid


class Watcher:
    def __init__(self, root: int, *, memory_bytes: int | None, interval: float = 0.1) -> None:
        self.root, self.memory_bytes, self.interval = root, memory_bytes, interval
        self.peak_processes = self.highest_pid = 0
        self.killed_for_memory = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            pids = tree(self.root)[1:]  # the first is bwrap itself, outside the namespace
            rss = 0
            for pid in pids:
                r, ns = _status(pid)
                rss += r
                self.highest_pid = max(self.highest_pid, ns)
            self.peak_processes = max(self.peak_processes, len(pids))
            if self.memory_bytes is not None and rss > self.memory_bytes:
                self.killed_for_memory = True
                kill_group(self.root)
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
