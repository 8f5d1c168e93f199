"""Real architectures against their published FLOP figures: the table `flops_bench.py` prints.

Each row (tests/conformance/published.py) is counted twice:
* in a fresh process of the track environment's interpreter (transformers installed), as the sandboxed tracer
  counts it but without the sandbox, to time the phases apart: imports (torch, transformers), then the count
  (build on meta, trace forward + backward at batch 1 and forward at batch 2, fvcore cross-check on the second
  core, counting the trace); peak RSS is the process's and its forked cross-check's, whichever is larger;
* through `count_config`, as `speedrun validate --flops` does it: sandbox start, imports and all.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "conformance"))
from published import ROWS  # noqa: E402

TRANSFORMERS = "transformers==5.24.0"


def worker(index: int) -> dict:
    """One row in this process (run with the environment's interpreter)."""
    t0 = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from validator.compute import fromconfig, tracer
    from validator.compute.counting import flops_from_trace

    row = ROWS[index]
    factory = fromconfig.factory(row.spec)
    getattr(transformers, row.spec["architecture"])  # the model's module is imported lazily: an import cost too
    t1 = time.perf_counter()
    counted = flops_from_trace(tracer.trace(factory))
    t2 = time.perf_counter()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    forked = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"imports_s": t1 - t0, "count_s": t2 - t1, "peak_rss_mb": max(own, forked) / 1024, "counted": counted}


def environment():
    from validator.environment import sandbox_env
    from validator.models.track import Environment

    return sandbox_env(SimpleNamespace(id="benchmark", environment=Environment(packages=[TRANSFORMERS])), None,
                       progress=lambda msg: print(f"  {msg}", flush=True))


def table() -> None:
    from validator.compute.recount import count_config

    env = environment()
    print(f"\nReal architectures from their transformers configs ({TRANSFORMERS}), counted on meta, against the "
          f"published figure")
    header = f"  {'model':32} {'ours':>14} {'published':>14} {'unit':22} {'agrees':6} {'count s':>7} " \
             f"{'imports s':>9} {'sandboxed s':>11} {'peak MB':>7}"
    print(header)
    sources = {}
    for i, row in enumerate(ROWS):
        proc = subprocess.run([env.python, __file__, "--worker", str(i)], capture_output=True, text=True,
                              cwd=REPO, timeout=900)
        if proc.returncode != 0:
            print(f"  {row.name:32} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1][:120]}")
            continue
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        t0 = time.perf_counter()
        count_config(REPO, row.spec, env=env)
        sandboxed = time.perf_counter() - t0
        ours = row.ours(out["counted"])
        digits = ".4e" if row.decimals is None else f".{row.decimals + 3}f"
        mark = sources.setdefault(row.source, len(sources) + 1)
        print(f"  {row.name:32} {ours:>14{digits}} {row.published:>14{digits}} {row.unit:22} "
              f"{'yes' if row.agrees(out['counted']) else 'NO':6} {out['count_s']:7.2f} {out['imports_s']:9.2f} "
              f"{sandboxed:11.2f} {out['peak_rss_mb']:7.0f}  [{mark}]")
    for source, mark in sources.items():
        url = next(r.url for r in ROWS if r.source == source)
        print(f"  [{mark}] {source}: {url}")
    print("  targets per model: count < 3 s, peak < 600 MB (imports and the sandbox's start are the library's and "
          "the interpreter's, paid once per count)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(json.dumps(worker(int(sys.argv[2]))))
    else:
        table()
