"""The sandboxed child: `python -I -m validator.compute.child ENTRYPOINT [--no-fvcore]`.

Runs in a throwaway copy of the run folder. It imports the submission's code (the parent never does), counts FLOPs
and prints one line `SPEEDRUN_RESULT <json>` on its real stdout; whatever the submission prints goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import traceback

RESULT_PREFIX = "SPEEDRUN_RESULT "


def _emit(stream, payload: dict) -> None:
    stream.write(RESULT_PREFIX + json.dumps(payload) + "\n")
    stream.flush()


def _load_entrypoint(spec: str):
    from validator.compute.counting import CountingError

    file, _, func = spec.partition(":")
    path = os.path.abspath(file)
    if not os.path.isfile(path):
        raise CountingError("flops-entrypoint-missing", f"entrypoint file {file!r} does not exist")
    sys.path.insert(0, os.path.dirname(path))
    module_spec = importlib.util.spec_from_file_location("speedrun_submission", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["speedrun_submission"] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - submitted code fails in any way; report it as such
        raise CountingError("flops-model-failed", f"importing {file} failed: {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, func, None)
    if not callable(fn):
        raise CountingError("flops-entrypoint-missing", f"{file} has no function {func!r}")
    return lambda batch, device: fn(batch_size=batch, device=device)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("entrypoint")
    ap.add_argument("--no-fvcore", action="store_true")
    args = ap.parse_args()
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # the submission's prints must not be mistaken for the result
    try:
        import torch

        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
        from validator.compute.counting import CountingError, count

        try:
            factory = _load_entrypoint(args.entrypoint)
            result = count(factory, fvcore=not args.no_fvcore)
            _emit(real_stdout, {"ok": True, **result})
        except CountingError as exc:
            _emit(real_stdout, {"ok": False, "rule": exc.rule, "message": str(exc)})
        except MemoryError:
            _emit(real_stdout, {"ok": False, "rule": "sandbox-memory", "message": "the model ran out of memory"})
    except Exception as exc:  # noqa: BLE001 - last resort: a clear line instead of a silent crash
        traceback.print_exc()
        _emit(real_stdout, {"ok": False, "rule": "flops-model-failed", "message": f"{type(exc).__name__}: {exc}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
