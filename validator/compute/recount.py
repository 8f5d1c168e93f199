"""Count a submitted model in the sandbox: trace it there, count the trace here, cache the result.

The tracer runs inside bubblewrap on a throwaway copy of the run folder; its trace comes back on a pipe of its own,
as one length-framed document, and trusted code counts it. Counts are cached by everything they depend on.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import tempfile
import threading
from pathlib import Path

from ..environment import guard_argument
from ..fingerprint import content_entries
from .bwrap import TOOL_DIR, SandboxUnavailable
from .sandbox import Limits, Workspace, run_python
from .tracer import FRAME

# Rules a failed trace may name; anything else a sandbox reports is taken as the model failing.
TRACE_RULES = {"model-config-invalid", "env-module-missing", "env-undeclared-import", "flops-entrypoint-missing", "flops-bad-entrypoint", "flops-model-failed", "flops-op-without-formula",
               "flops-bad-output", "flops-no-gradient", "flops-zero", "sandbox-memory", "fvcore-unsupported"}


class FlopsFailure(Exception):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def cache_key(run_dir: Path, entrypoint: str, fvcore: bool, env=None) -> str:
    """Everything the count depends on: the files the sandbox would see, the entrypoint, the counting code and the
    track's environment (interpreter, installed versions, allowed imports)."""
    h = hashlib.sha256()
    for part in (entrypoint, str(fvcore), _code_version(), env.identity() if env is not None else ""):
        h.update(part.encode() + b"\0")
    for rel, digest in content_entries(run_dir):  # the sandbox's copy skips logs and links
        if not rel.startswith("logs/") and not digest.startswith("link:"):
            h.update(f"{rel}\0{digest}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _code_version() -> str:
    """torch, fvcore and the counting code: read once per process, not once per run."""
    code = "".join((Path(__file__).parent / f).read_text(encoding="utf-8")
                   for f in ("counting.py", "tracer.py", "speedups.py", "fvcore_check.py", "fromconfig.py", "llama.py", "fvgraph.py",
                             "importguard.py"))
    return hashlib.sha256(f"{_version('torch')}\0{_version('fvcore')}\0{code}".encode()).hexdigest()


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def count_in_sandbox(run_dir: Path, entrypoint: str, limits: Limits = Limits(), fvcore: bool = True,
                     cache_dir: Path | None = None, env=None) -> dict:
    """Count a run's FLOPs in the sandboxed child (or take an earlier count of identical inputs from `cache_dir`).
    Raises FlopsFailure with a rule id."""
    key = cache_key(run_dir, entrypoint, fvcore, env) if cache_dir else None
    if key:
        cached = cache_dir / f"{key}.json"
        try:
            return json.loads(cached.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    result = _count_in_sandbox(run_dir, entrypoint, limits, fvcore, env)
    if key:
        _store(cache_dir, key, result)
    return result


def count_config(run_dir: Path, model_config: dict, limits: Limits = Limits(), fvcore: bool = True,
                 cache_dir: Path | None = None, env=None) -> dict:
    """Count a run's `model.config`: the model is built by trusted code (fromconfig.py) in the sandbox's interpreter
    (the track's environment, `env`), in a working folder that holds only the config, so no file of the run is
    imported. Raises FlopsFailure with a rule id. The result's "source" is "config"."""
    spec = json.dumps(model_config, sort_keys=True)
    key = None
    if cache_dir:
        env_id = f"{getattr(env, 'python', '')}\0{sorted((getattr(env, 'packages', None) or {}).items())}"
        key = hashlib.sha256(f"config\0{spec}\0{fvcore}\0{_code_version()}\0{env_id}".encode()).hexdigest()
        try:
            return json.loads((cache_dir / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    with tempfile.TemporaryDirectory(prefix="speedrun-config-") as tmp:
        work = Path(tmp) / "run"
        work.mkdir()
        (work / "model_config.json").write_text(spec, encoding="utf-8")
        result = _trace_and_count(work, ["--config", "model_config.json"], limits, fvcore, env)
    result["source"] = "config"
    if key:
        _store(cache_dir, key, result)
    return result


def _store(cache_dir: Path, key: str, result: dict) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{key}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(result), encoding="utf-8")
    tmp.replace(cache_dir / f"{key}.json")


def _count_in_sandbox(run_dir: Path, entrypoint: str, limits: Limits, fvcore: bool, env=None) -> dict:
    """Trace the entrypoint in the sandbox, on a throwaway copy of the run folder, then count the trace here."""
    try:
        with Workspace(run_dir) as ws:
            result = _trace_and_count(ws, [entrypoint], limits, fvcore, env)
    except OSError as exc:
        raise FlopsFailure("sandbox-crashed", f"could not prepare the sandbox: {exc}") from exc
    result["source"] = "entrypoint"
    return result


def _trace_and_count(workdir: Path, tracer_args: list[str], limits: Limits, fvcore: bool, env=None) -> dict:
    """Run the tracer in the sandbox on `workdir`, then count its trace here. The trace comes back on a pipe of its
    own; whatever the submission prints, or writes where a result might be expected, is never read as one."""
    from .counting import CountingError, flops_from_trace  # torch: only when a count is asked for

    tools = {name: Path(__file__).parent / name
             for name in ("tracer.py", "speedups.py", "fromconfig.py", "llama.py", "fvgraph.py", "importguard.py")}
    guard = guard_argument(env) if env is not None else None
    read, write = os.pipe()
    try:
        args = [f"{TOOL_DIR}/tracer.py", *tracer_args, "--result-fd", str(write)] + ([] if fvcore else ["--no-fvcore"])
        args += ["--allowed-imports", guard] if guard is not None else []
        reader = _PipeReader(read)
        outcome = run_python(args, workdir=workdir, limits=limits, tool_files=tools, pass_fds=(write,),
                             readonly=[Path(__file__).resolve().parents[1], *getattr(env, "readonly", ())],
                             python=getattr(env, "python", None))
        os.close(write)
        write = -1
        data = reader.result()
    except SandboxUnavailable as exc:
        raise FlopsFailure("sandbox-unavailable", str(exc)) from exc
    except OSError as exc:
        raise FlopsFailure("sandbox-crashed", f"could not prepare the sandbox: {exc}") from exc
    finally:
        if write >= 0:
            os.close(write)
    if outcome.timed_out:
        raise FlopsFailure("sandbox-timeout", f"FLOP counting did not finish within {limits.timeout_s:.0f} s; "
                           "the entrypoint must build the model quickly (on the meta device, no data loading)")
    payload = _unframe(data)
    if payload is None:
        if outcome.memory_exhausted or outcome.returncode in (-9, 137):
            raise FlopsFailure("sandbox-memory", f"the model exceeded the sandbox's {limits.memory_bytes / 2**30:.0f} GiB "
                               "memory limit; build it on the device the entrypoint is given (meta)")
        if data:
            raise FlopsFailure("flops-bad-trace", "the counting process's result channel held something other than "
                               "one trace (submitted code wrote to it)")
        tail = [ln for ln in outcome.stderr.strip().splitlines() if ln.strip()][-1:] or ["no output"]
        raise FlopsFailure("sandbox-crashed", f"the counting process died (exit {outcome.returncode}): {tail[0][:300]}")
    if not payload.get("ok"):
        rule = payload.get("rule") if payload.get("rule") in TRACE_RULES else "flops-model-failed"
        raise FlopsFailure(rule, str(payload.get("message", "no message"))[:1000])
    try:
        result = flops_from_trace(payload)
    except CountingError as exc:
        raise FlopsFailure(exc.rule, str(exc)) from exc
    result["sandbox"] = {"isolated": outcome.sandboxed, "notes": outcome.notes,
                         "peak_processes": outcome.peak_processes}
    return result


MAX_TRACE_BYTES = 64 * 1024**2


class _PipeReader:
    """Drain the result pipe while the sandbox runs (a full pipe would block the tracer), up to a cap."""

    def __init__(self, fd: int) -> None:
        self.fd, self.chunks, self.size = fd, [], 0
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        try:
            while chunk := os.read(self.fd, 1 << 16):
                if self.size <= MAX_TRACE_BYTES:
                    self.chunks.append(chunk)
                self.size += len(chunk)
        finally:
            os.close(self.fd)

    def result(self) -> bytes:
        self.thread.join(10)
        return b"".join(self.chunks) if self.size <= MAX_TRACE_BYTES else b""


def _unframe(data: bytes) -> dict | None:
    """The one framed document on the channel, or None if there is not exactly one."""
    if not data.startswith(FRAME):
        return None
    header, _, body = data[len(FRAME):].partition(b"\n")
    if not header.isdigit() or int(header) != len(body):
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
