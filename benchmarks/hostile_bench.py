"""How long, and how much memory, the validator takes to refuse each hostile file issue 11 lists.

    python benchmarks/hostile_bench.py

Each case is built as real files in a temporary copy of the digits track and judged in this process by the library
(`Checker`, no FLOP counting), so the time is the validator's, not Python's start-up. The target is well under a
second per case, with memory bounded; the table prints the rule that caught each case.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from validator.checker import Checker  # noqa: E402

TRACK = REPO / "runs" / "digits-classification"
BOMB = "\n".join(['a: &a ["x","x","x","x","x","x","x","x","x"]']
                 + [f"{c}: &{c} [{','.join(['*' + p] * 9)}]" for p, c in zip("abcdef", "bcdefg")]) + "\n"


def _analysis(name: str, make):
    def edit(run: Path, _track: Path) -> None:
        (run / "speedrun_analysis.json").unlink()
        make(run / name)
    return edit


def _track_text(old: str, new: str):
    def edit(_run: Path, track: Path) -> None:
        path = track / "track.yaml"
        path.write_text(path.read_text().replace(old, new))
    return edit


def _track_file(make):
    def edit(_run: Path, track: Path) -> None:
        (track / "track.yaml").unlink()
        make(track / "track.yaml")
    return edit


MULTIPLES = "dataset_multiples: [1, 2, 4, 8, 16, 32]"
CASES = {
    "YAML alias bomb, 7 levels of 9 (253 bytes)": _analysis("speedrun_analysis.yaml", lambda p: p.write_text(BOMB)),
    "analysis linked to /dev/zero": _analysis("speedrun_analysis.json", lambda p: os.symlink("/dev/zero", p)),
    "analysis is a FIFO": _analysis("speedrun_analysis.json", os.mkfifo),
    "analysis linked to /etc/passwd": _analysis("speedrun_analysis.json", lambda p: os.symlink("/etc/passwd", p)),
    "dangling analysis link": _analysis("speedrun_analysis.json", lambda p: os.symlink("gone.json", p)),
    "JSON nested 1,000 deep": _analysis("speedrun_analysis.json", lambda p: p.write_text("[" * 1000 + "]" * 1000)),
    "JSON nested 1,000,000 deep": _analysis("speedrun_analysis.json",
                                            lambda p: p.write_text("[" * 10**6 + "]" * 10**6)),
    "4,301-digit integer": _analysis("speedrun_analysis.json", lambda p: p.write_text("[" + "9" * 4301 + "]")),
    "YAML !!binary": _analysis("speedrun_analysis.yaml", lambda p: p.write_text("notes: !!binary aGVsbG8=\n")),
    "YAML !!set": _analysis("speedrun_analysis.yaml", lambda p: p.write_text("notes: !!set {a}\n")),
    "5 MB of JSON whitespace": _analysis("speedrun_analysis.json", lambda p: p.write_text(" " * (5 * 2**20 + 1))),
    "track: 100,000 checkpoints": _track_text(MULTIPLES, "samples: [" + ", ".join(map(str, range(1, 100_001))) + "]"),
    "track: 1,000 checkpoints": _track_text(MULTIPLES, "samples: [" + ", ".join(map(str, range(1, 1001))) + "]"),
    "track: dataset_multiples 1e308": _track_text(MULTIPLES, "dataset_multiples: [1, 1e308]"),
    "track.yaml is a folder": _track_file(lambda p: p.mkdir()),
    "track.yaml is a FIFO": _track_file(os.mkfifo),
    "track.yaml dangling link": _track_file(lambda p: os.symlink("gone.yaml", p)),
    "track.yaml alias bomb": _track_file(lambda p: p.write_text(BOMB)),
}


def main() -> int:
    worst = 0.0
    print(f"{'case':46} {'seconds':>8} {'peak MB':>8}  rule(s)")
    for name, edit in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            track = Path(tmp) / TRACK.name
            track.mkdir()
            shutil.copy(TRACK / "track.yaml", track / "track.yaml")
            run = track / "mlp-baseline"
            shutil.copytree(TRACK / "mlp-baseline", run, ignore=shutil.ignore_patterns("reproductions", "__pycache__"))
            edit(run, track)
            tracemalloc.start()
            t0 = time.perf_counter()
            checker = Checker()
            result = checker.check_run(run)
            problems = [*checker.check_track(track).problems, *result.problems]
            seconds = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        worst = max(worst, seconds)
        rules = sorted({p.rule for p in problems if p.severity == "error"})
        print(f"{name:46} {seconds:8.3f} {peak:8.1f}  {', '.join(rules)}")
    print(f"slowest case: {worst:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
