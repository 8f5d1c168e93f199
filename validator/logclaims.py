"""Metric values an analysis claims, held against what the run's logs recorded (CONTRIBUTING.md, "Logs").

A log states a value on a line that starts with `seed N` (then `setting S` on tracks with settings), followed by
`name value` pairs: `seed 0 step 16 samples 1024 loss 2.2568 val_top1 0.2876`. Only the track's metric ids and
`samples` are read; every other word is free text. A curve point is backed by the last line of its seed (and
setting) stating its sample count and the metric; a final value by the last line of its seed stating the metric.
Which seed a line belongs to is its prefix, and a file whose name names a seed (`seed0.log`) holds only that seed's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Callable

from .models import RunAnalysis, Track
from .problems import Problems

# At column 0 only: logs often end with the script's own source, whose indented f-strings must not count.
_SEED_LINE = re.compile(r"^seed[ =:][ \t]*(-?\d+)(?![\w.])[:,]?(?:[ \t]+setting[ =:][ \t]*([\w.-]+))?(.*)$", re.M)
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_SEP = r"(?:=|:\s*|\s+)"
# Not preceded by a name character, so `best_val_top1` is not `val_top1`; not followed by one or by `%`, so a
# percentage is never read as the fraction the analysis holds.
_SAMPLES = re.compile(rf"(?<![\w.-])samples(?:_seen)?{_SEP}(\d[\d,]*\d|\d)(?![\w.%])")
_FILE_SEED = re.compile(r"(?<![a-z])seed[-_]?(\d+)(?!\d)", re.I)
LOG_LIMIT = 50 * 2**20


def read(run_dir: Path, rels: list[str], inside: Callable[[str], bool]) -> list[tuple[int, str, str | None]]:
    """(index in files.logs, path, text) of each named log; text is None when the path is not a file inside the run.

    A log over the limit is read up to it, not skipped: skipping would let a padded log switch the checks off."""
    out = []
    for i, rel in enumerate(rels):
        path, text = run_dir / rel, None
        if inside(rel) and path.is_file():
            with path.open("rb") as fh:
                text = fh.read(LOG_LIMIT).decode("utf-8", errors="replace")
        out.append((i, rel, text))
    return out


@dataclass(frozen=True)
class Statement:
    log: str
    line: int
    seed: int
    setting: str | None
    samples: int | None
    values: dict[str, str]  # metric id -> the number as printed: its digits are the log's precision


@dataclass(frozen=True)
class Claim:
    path: str
    metric: str
    value: float
    seed: int
    setting: str | None
    samples: int | None  # None for a final value


def statements(log: str, text: str, metrics: list[str]) -> list[Statement]:
    """Every line of one log that states at least one of `metrics`, in file order."""
    if not metrics:
        return []
    names = "|".join(re.escape(m) for m in sorted(metrics, key=len, reverse=True))
    value_re = re.compile(rf"(?<![\w.-])({names}){_SEP}({_NUMBER})(?![\w.%])")
    out, line, pos = [], 1, 0
    for m in _SEED_LINE.finditer(text):
        line += text.count("\n", pos, m.start())
        pos = m.start()
        rest = m.group(3)
        values = {v.group(1): v.group(2) for v in value_re.finditer(rest)}
        if values:
            s = _SAMPLES.search(rest)
            out.append(Statement(log, line, int(m.group(1)), m.group(2),
                                 int(s.group(1).replace(",", "")) if s else None, values))
    return out


def file_seed(log: str) -> int | None:
    """The seed a log's file name says it belongs to (`seed0.log`, `train-seed-3.txt`), if it names one."""
    m = _FILE_SEED.search(PurePosixPath(log).name)
    return int(m.group(1)) if m else None


def _half_unit(d: Decimal) -> Decimal:
    return Decimal(5).scaleb(d.as_tuple().exponent - 1)


def agrees(claimed: float, printed: str) -> bool:
    """Whether the claim and the printed number can be roundings of one measurement.

    Decimal, not float: the printed digits are the precision, and a boundary must not move with binary noise.
    The claim's own rounding counts too (0.2876504 is 0.287650 in an analysis and 0.2877 in a log), but never more
    than the log's: an analysis rounded coarser than its log must not buy room to move a value.
    """
    logged, claim = Decimal(printed), Decimal(repr(float(claimed)))
    half = _half_unit(logged)
    return abs(claim - logged) < half + min(_half_unit(claim), half)


def claims(run: RunAnalysis, track: Track) -> list[Claim]:
    known = {m.id for m in track.metrics}  # other ids are `unknown-metric`'s to report
    out = []
    for i, r in enumerate(run.results):
        for j, point in enumerate(r.curve):
            out += [Claim(f"$.results[{i}].curve[{j}].{k}", k, v, r.seed, r.setting, point.samples)
                    for k, v in (point.model_extra or {}).items() if k in known]
        out += [Claim(f"$.results[{i}].final.{k}", k, v, r.seed, r.setting, None)
                for k, v in r.final.items() if k in known]
    return out


def _index(track: Track, logs: list[tuple[str, str]]) -> tuple[dict, dict]:
    """(seed, setting, metric, samples or None) -> the line backing it; lines in a file named for another seed apart.

    Later lines overwrite earlier ones: a resumed run that evaluated a checkpoint twice stands by its later value,
    and a final value is the last one logged, whatever its samples."""
    metrics = [m.id for m in track.metrics]
    own: dict[tuple, Statement] = {}
    astray: dict[tuple, Statement] = {}
    for log, text in logs:
        named = file_seed(log)
        for s in statements(log, text, metrics):
            target = own if named is None or named == s.seed else astray
            for metric in s.values:
                target[(s.seed, s.setting, metric, None)] = s
                if s.samples is not None:
                    target[(s.seed, s.setting, metric, s.samples)] = s
    return own, astray


def _key(c: Claim) -> tuple:
    return (c.seed, c.setting, c.metric, c.samples)


def find(run: RunAnalysis, track: Track, logs: list[tuple[str, str]]) -> list[tuple[Claim, Statement | None]]:
    """Each claimed value with the log line that backs it (None when no log states it)."""
    own, _ = _index(track, logs)
    return [(c, own.get(_key(c))) for c in claims(run, track)]


def check(run: RunAnalysis, track: Track, logs: list[tuple[str, str]], problems: Problems) -> None:
    """Report each claimed value its logs contradict or do not state; `logs` holds (path, text) of every log."""
    own, astray = _index(track, logs)
    for c in claims(run, track):
        who = f"seed {c.seed}" + (f" setting {c.setting}" if c.setting else "")
        at = f" at {c.samples:,} samples" if c.samples is not None else " (final)"
        found = own.get(_key(c))
        if found is not None:
            if not agrees(c.value, found.values[c.metric]):
                problems.error(c.path, "metric-log-mismatch",
                               f"{c.metric} = {c.value}{at} for {who}, but {found.log} line {found.line} recorded "
                               f"{found.values[c.metric]}",
                               "claim what the logs recorded (to their printed precision): regenerate the analysis "
                               "with the run that wrote the logs")
            continue
        looked = [log for log, _ in logs if file_seed(log) in (None, c.seed)]
        where = ", ".join(looked[:3]) + (f" and {len(looked) - 3} more" if len(looked) > 3 else "")
        where = where or "no log (every log's file name names another seed)"
        message = f"no log line states {c.metric}{at} for {who}; looked in {where}"
        elsewhere = astray.get(_key(c))
        if elsewhere is not None:
            message += (f"; {elsewhere.log} line {elsewhere.line} does, but that file's name says it is seed "
                        f"{file_seed(elsewhere.log)}'s log")
        form = f"{who} ..." + (f" samples {c.samples}" if c.samples is not None else "") + f" {c.metric} <value>"
        problems.error(c.path, "metric-not-in-log", message,
                       f"have run.py log `{form}` (CONTRIBUTING.md, \"Logs\"), in the log of that seed, or list "
                       "files that are not this run's training logs under files.artifacts")
