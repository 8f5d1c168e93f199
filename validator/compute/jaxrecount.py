"""Count a JAX run: export its model in one sandbox, let XLA cost the modules in another, judge here, cache it.

1. jaxtrace.py runs the submission's `build_for_flops(batch_size)` in the sandbox and sends back serialised
   `jax.export.Exported` modules (forward and training step at batch 1 and 2). Untrusted data.
2. jaxcount.py, in a second sandbox that holds no submitted code, compiles them for the CPU and reports XLA's cost
   analysis with the facts needed to trust it (custom calls, loops, shapes).
3. This module judges those facts (jaxjudge.py) into the dict `counting.flops_from_trace` returns, so
   `accounting.account` treats a JAX count like a torch one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from ..fingerprint import content_entries
from .bwrap import TOOL_DIR, SandboxUnavailable
from .jaxcount import FRAME as COUNT_FRAME
from .jaxjudge import JudgeError, judge
from .jaxtrace import FRAME as EXPORT_FRAME
from .recount import MAX_TRACE_BYTES, FlopsFailure, _PipeReader
from .sandbox import Limits, Workspace, run_python

HERE = Path(__file__).parent
# XLA's count over the torch count of the same architecture (model.config): XLA also counts the norms, softmax,
# rotary, activations and loss the torch convention leaves out (+3.69 % training, +3.81 % forward on the bundled
# byte-level Llama of width 64, a share that shrinks as width and sequence grow), and never fewer matmuls.
CROSS_CHECK = (0.99, 1.10)
EXPORT_RULES = {"flops-entrypoint-missing", "flops-bad-entrypoint", "flops-model-failed", "flops-bad-output",
                "sandbox-memory", "jax-unavailable", "env-undeclared-import", "env-module-missing"}
COUNT_RULES = {"flops-bad-trace", "jax-unavailable", "sandbox-memory"}


def count_jax_in_sandbox(run_dir: Path, entrypoint: str, limits: Limits = Limits(), env=None,
                         cache_dir: Path | None = None) -> dict:
    """XLA's count of a JAX run's training step, per sample (or an earlier count of identical inputs from
    `cache_dir`). `env` is the track's SandboxEnv (validator/environment.py): its interpreter must have jax.
    Raises FlopsFailure with a rule id."""
    if env is None:
        from ..environment import SandboxEnv

        env = SandboxEnv(python=sys.executable)
    key = cache_key(run_dir, entrypoint, env) if cache_dir else None
    if key:
        try:
            return json.loads((cache_dir / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    exported = _sandboxed(run_dir, "jaxtrace.py", [entrypoint, *_guard(env)], EXPORT_FRAME, EXPORT_RULES, limits,
                          env, "exporting the model", tools=("importguard.py",))
    result = count_exported(exported, limits, env)
    if key:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp_file = cache_dir / f".{key}.{os.getpid()}.tmp"
        tmp_file.write_text(json.dumps(result), encoding="utf-8")
        tmp_file.replace(cache_dir / f"{key}.json")
    return result


def count_exported(exported: dict, limits: Limits, env) -> dict:
    """Steps 2 and 3: what jaxtrace.py sent (untrusted), compiled and costed by XLA in a sandbox of its own, judged."""
    if env is None:
        from ..environment import SandboxEnv

        env = SandboxEnv(python=sys.executable)
    with tempfile.TemporaryDirectory(prefix="speedrun-jaxcount-") as tmp:
        work = Path(tmp) / "count"
        work.mkdir()
        (work / "modules.json").write_text(json.dumps(exported.get("batches")), encoding="utf-8")
        report = _sandboxed(work, "jaxcount.py", ["modules.json"], COUNT_FRAME, COUNT_RULES, limits, env,
                            "compiling the exported modules", copy=False)
    try:
        result = judge(report, exported.get("parameters"))
    except JudgeError as exc:
        raise FlopsFailure(exc.rule, str(exc)) from exc
    result["seconds"] = round(sum(x for x in (exported.get("seconds"), report.get("seconds"))
                                  if isinstance(x, (int, float))), 3)
    return result


def count_jax(run_dir: Path, entrypoint: str, config, limits: Limits, cache_dir: Path | None, env, problems) -> dict:
    """XLA's count of a JAX run; with `config` (the run's model.config) also the torch count of the same architecture,
    reported beside it and compared: a warning (flops-counters-disagree) when they are further apart than XLA's
    extra elementwise work explains. The XLA count is the one used."""
    counted = count_jax_in_sandbox(run_dir, entrypoint, limits, env, cache_dir)
    if config is None:
        return counted
    from .recount import count_config

    try:
        torch_count = count_config(run_dir, config.model_dump(mode="json"), limits, False, cache_dir, env)
    except FlopsFailure as exc:
        problems.warn("$.model.config", exc.rule, f"the torch cross-check of model.config failed: {exc}",
                      "give model.config for the same architecture as the entrypoint, or leave it out")
        return counted
    xla, torch = counted["per_sample_training_flops"], torch_count["per_sample_training_flops"]
    ratio = xla / torch if torch else float("inf")
    counted["counters"]["torch_config"] = {"forward": torch_count["per_sample_forward_flops"], "training": torch,
                                           "parameters": torch_count["parameters"], "xla_over_torch": ratio}
    low, high = CROSS_CHECK
    if not low <= ratio <= high:
        problems.warn("$.model.config", "flops-counters-disagree",
                      f"training FLOPs per sample: XLA {xla:.6g}, torch from model.config {torch:.6g} (XLA/torch "
                      f"{ratio:.4f}, outside {low}-{high})", "model.config may describe another model than the "
                      "entrypoint builds; the XLA count is used, a maintainer should look")
    if torch_count["parameters"] != counted["parameters"]:
        problems.warn("$.model.config", "flops-counters-disagree",
                      f"model.config builds {torch_count['parameters']:,} parameters, the JAX entrypoint "
                      f"{counted['parameters']:,}", "give model.config for the architecture the entrypoint builds")
    return counted


def cache_key(run_dir: Path, entrypoint: str, env) -> str:
    """The files the sandbox would see, the entrypoint, the environment and the counting code."""
    h = hashlib.sha256()
    identity = env.identity() if hasattr(env, "identity") else json.dumps(sorted(getattr(env, "packages", {}).items()))
    for part in ("jax", entrypoint, str(env.python), identity, _code_version()):
        h.update(part.encode() + b"\0")
    for rel, digest in content_entries(run_dir):
        if not rel.startswith("logs/") and not digest.startswith("link:"):
            h.update(f"{rel}\0{digest}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _code_version() -> str:
    code = "".join((HERE / f).read_text(encoding="utf-8") for f in ("jaxtrace.py", "jaxcount.py", "jaxjudge.py"))
    return hashlib.sha256(code.encode()).hexdigest()


def _guard(env) -> list[str]:
    """The track's import guard for the submission's process (validator/environment.py), when it restricts imports."""
    from .. import environment

    make = getattr(environment, "guard_argument", None)
    guard = make(env) if make is not None and getattr(env, "allowed_imports", None) is not None else None
    return ["--allowed-imports", guard] if guard is not None else []


def _sandboxed(folder: Path, tool: str, args: list[str], frame: bytes, rules: set[str], limits: Limits, env,
               what: str, copy: bool = True, tools: tuple[str, ...] = ()) -> dict:
    """Run one of our tool files in the sandbox on `folder` (a throwaway copy of it unless `copy` is False) and
    return the one framed document it wrote on its result pipe."""
    read, write = os.pipe()
    try:
        with (Workspace(folder) if copy else _Same(folder)) as ws:
            reader = _PipeReader(read)
            outcome = run_python([f"{TOOL_DIR}/{tool}", *args, "--result-fd", str(write)], workdir=ws, limits=limits,
                                 tool_files={t: HERE / t for t in (tool, *tools) if (HERE / t).is_file()},
                                 pass_fds=(write,), python=env.python,
                                 readonly=list(env.readonly))
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
        raise FlopsFailure("sandbox-timeout", f"{what} did not finish within {limits.timeout_s:.0f} s")
    if reader.size > MAX_TRACE_BYTES:
        raise FlopsFailure("flops-bad-trace", f"{what}: the result was larger than {MAX_TRACE_BYTES // 2**20} MiB")
    payload = unframe(data, frame)
    if payload is None:
        if outcome.memory_exhausted or outcome.returncode in (-9, 137):
            raise FlopsFailure("sandbox-memory", f"{what} exceeded the sandbox's memory limit")
        if data:
            raise FlopsFailure("flops-bad-trace", f"{what}: the result channel held something other than one "
                               "document (submitted code wrote to it, or it was too large)")
        tail = [ln for ln in outcome.stderr.strip().splitlines() if ln.strip()][-1:] or ["no output"]
        raise FlopsFailure("sandbox-crashed", f"{what}: the process died (exit {outcome.returncode}): {tail[0][:300]}")
    if not payload.get("ok"):
        rule = payload.get("rule") if payload.get("rule") in rules else "flops-bad-trace"
        raise FlopsFailure(rule, str(payload.get("message", "no message"))[:1500])
    return payload


class _Same:
    """The folder itself as the sandbox's working folder (the counter's input is ours, written for it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __enter__(self) -> Path:
        return self.folder

    def __exit__(self, *exc) -> None:
        pass


def unframe(data: bytes, frame: bytes) -> dict | None:
    """The one framed document on a channel, or None if there is not exactly one."""
    if not data.startswith(frame):
        return None
    header, _, body = data[len(frame):].partition(b"\n")
    if not header.isdigit() or int(header) != len(body):
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
