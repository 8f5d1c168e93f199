"""Fuzz counts for docs/robustness.md: the cases of tests/test_fuzz.py, counted instead of asserted.

    python benchmarks/fuzz.py                 # 10,000 generated cases, then the fixed hostile ones
    python benchmarks/fuzz.py --cases 400     # quicker
    python benchmarks/fuzz.py --seed 7        # other cases (default seed 0: the same cases every time)

Hypothesis generates damaged analysis files, track files and MaxCLIP ZIPs from the bundled runs (tests/fuzzing/);
each case runs in a forked child under the same properties as the tests: no exception, exit 0 or 1, every problem
naming its file, under 5 s, at most 200 MB of memory growth. Nothing is shrunk and nothing stops the run: every case
is counted. Prints per target the cases, the broken ones, the slowest case and the largest memory growth, then what
the cases were reported as (per rule id), the fixed hostile cases one by one, and each distinct failure with its
smallest example. Exit status: 0 when no case broke a property, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import re
import sys
import tempfile
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from fuzzing import hostile, targets  # noqa: E402
from fuzzing.classes import document_classes, zip_classes  # noqa: E402
from fuzzing.documents import documents  # noqa: E402
from fuzzing.zips import zips  # noqa: E402
from validator.catalog import CATALOG  # noqa: E402

SHARE = {"loader": 0.40, "validate": 0.35, "build": 0.05, "import-zip": 0.20}
RUNNERS = {"loader": targets.run_loader, "validate": targets.run_validate, "build": targets.run_build,
           "import-zip": targets.run_import_zip}
RULE = re.compile(r"\[([a-z0-9][a-z0-9-]*)\]")


class Tally:
    def __init__(self) -> None:
        self.cases, self.broken = Counter(), Counter()
        self.outcomes: dict[str, Counter] = {t: Counter() for t in RUNNERS}
        self.by_class: dict[str, Counter] = {}  # kind of damage -> rule ids (and "cases")
        self.slowest, self.peak = Counter(), Counter()
        self.failures: dict[tuple[str, str], list] = {}  # (target, kind) -> [count, smallest example, detail]

    def record(self, target: str, case, out, broken: list[str], ws) -> list[str]:
        self.cases[target] += 1
        self.slowest[target] = max(self.slowest[target], out.seconds)
        self.peak[target] = max(self.peak[target], out.peak_mb)
        labels = outcome(target, case, out, ws)
        self.outcomes[target].update(labels)
        kinds = set(zip_classes(case) if target == "import-zip" else document_classes(case))
        for kind in kinds:
            self.by_class.setdefault(f"{target}: {kind}", Counter())["cases"] += 1
        alone = [k for k in kinds if " file written as " not in k]
        if len(alone) == 1:  # one kind of damage: what was reported is its doing
            self.by_class[f"{target}: {alone[0]}"].update(["alone", *labels])
        if broken:
            self.broken[target] += 1
            for line in broken:
                kind = re.sub(r"\d+(\.\d+)?", "N", line.splitlines()[0])[:110]
                seen = self.failures.setdefault((target, kind), [0, None, line])
                seen[0] += 1
                if seen[1] is None or len(repr(case)) < len(repr(seen[1])):
                    seen[1], seen[2] = case, line
        return labels


def outcome(target: str, case, out, ws) -> list[str]:
    """What the case was reported as: rule ids, or how the command ended."""
    if out.status != "done":
        return [out.status]
    v = out.value
    if target == "loader":
        return sorted({rule for _, rule, _ in v["problems"]}) or ["loaded clean"]
    if target == "validate":
        if v["exit"] == 0:
            return ["valid"]
        return sorted({rule for _, rule, _ in v["problems"]}) or ["refused, no rule id"]
    if target == "import-zip":
        if v["exit"] == 0:
            return ["accepted"]
        return sorted(set(RULE.findall(v["stdout"] + v["stderr"])) & set(CATALOG)) or ["refused, no rule id"]
    import json

    site = ws.root / "build" / "site"
    board = site / "tracks" / "digits-classification.json"
    if "track.yaml" in case.name:
        page = site / "tracks" / "digits-reconstruction.html"
        found = set(RULE.findall(page.read_text(encoding="utf-8"))) & set(CATALOG) if page.is_file() else set()
        return sorted(found) or [f"build exit {v['exit']}, damaged track valid"]
    if not board.is_file():
        return [f"build exit {v['exit']}, no export"]
    data = json.loads(board.read_text(encoding="utf-8"))
    bad = [r for r in data["invalid"] if r["name"] == "ast-10pct"]
    if bad:
        return sorted({m for e in bad[0]["errors"] for m in RULE.findall(e)} & set(CATALOG)) or ["listed invalid"]
    return [f"build exit {v['exit']}, damaged run ranked"]


def fuzz(ws, tally: Tally, target: str, strategy, n: int, chosen_seed: int) -> None:
    @seed(chosen_seed)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(case):
        out, broken = RUNNERS[target](ws, case)
        tally.record(target, case, out, broken, ws)

    one()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="generated cases in all (default 10,000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="speedrun-fuzz-") as tmp:
        ws = targets.Workspace(Path(tmp) / "ws")
        strategies = {"loader": documents(), "validate": documents(), "build": documents(only=targets.BUILD_BASES),
                      "import-zip": zips()}
        for target, share in SHARE.items():
            fuzz(ws, tally, target, strategies[target], max(1, round(args.cases * share)), args.seed)
        fixed = [("loader", c.edits[0][1], c) for c in hostile.document_cases()]
        fixed += [("validate", c.edits[0][1], c) for c in hostile.document_cases()]
        fixed += [("build", c.edits[0][1], c) for c in hostile.document_cases() if c.base.rel in targets.BUILD_BASES]
        fixed += [(t, c.title, c) for c in hostile.FS_CASES for t in ("validate", "build")]
        fixed += [("validate", f"{c.edits[0][1]} ({c.form})", c) for c in hostile.token_cases()]
        fixed = [(*f, None) for f in fixed] + [("import-zip", t, c, e) for t, c, e in hostile.zip_cases()]
        hostile_lines = []
        for target, title, case, expect in fixed:
            out, broken = RUNNERS[target](ws, case)
            broken += hostile.expected_exit(out, expect)
            labels = outcome(target, case, out, ws)
            hostile_lines.append(f"| {title} | {target} | {', '.join(labels)} | "
                                 + (" ".join("; ".join(broken).split())[:300] if broken else "ok") + " |")
            if broken:
                tally.failures.setdefault((target, title), [1, case, broken[0]])
    elapsed = time.perf_counter() - started

    print(f"speedrun fuzz run: {dt.date.today().isoformat()}, `python benchmarks/fuzz.py --cases {args.cases} "
          f"--seed {args.seed}`, hypothesis {version('hypothesis')}, Python {platform.python_version()}, "
          f"{elapsed:.0f} s")
    print("\n| target | cases | broken | slowest case (s) | largest memory growth (MB) |\n|---|---:|---:|---:|---:|")
    for t in RUNNERS:
        print(f"| {t} | {tally.cases[t]:,} | {tally.broken[t]} | {tally.slowest[t]:.2f} | {tally.peak[t]:.0f} |")
    print(f"| all | {sum(tally.cases.values()):,} | {sum(tally.broken.values())} | "
          f"{max(tally.slowest.values()):.2f} | {max(tally.peak.values()):.0f} |")
    print("\nWhat the generated cases were reported as (cases per rule id; a case may report several):")
    for t, counts in tally.outcomes.items():
        print(f"  {t}: " + ", ".join(f"{k} {v:,}" for k, v in counts.most_common()))
    print("\nEach kind of damage: the cases that carried it, those that carried it alone, and what these were reported "
          "as\n\n| target: kind of damage | cases | alone | alone, reported as (cases) |\n|---|---:|---:|---|")
    for kind, counts in sorted(tally.by_class.items()):
        total, alone = counts.pop("cases"), counts.pop("alone", 0)
        print(f"| {kind} | {total:,} | {alone:,} | " + ", ".join(f"{k} {v:,}" for k, v in counts.most_common(6)) + " |")
    print(f"\nFixed hostile cases ({len(hostile_lines)}):\n")
    print("| case | target | reported as | properties |\n|---|---|---|---|")
    print("\n".join(hostile_lines))
    print(f"\nDistinct failures: {len(tally.failures) or 'none'}")
    for (target, kind), (count, case, line) in sorted(tally.failures.items()):
        print(f"- {target}, {count} case(s): {line[:400]}\n  smallest: {case!r}"[:1500])
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())
