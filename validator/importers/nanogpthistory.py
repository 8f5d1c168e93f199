"""modded-nanogpt's world-record history: the table under '## World record history' in its README.md, one row per
record (`# | Record time | Description | Date | Log | Contributors`), read as published."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from ..problems import InvalidInput

_ROW = re.compile(r"^\s*(\d+)\s*\|")
_TIME = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(minutes?|hours?|seconds?)\b")
_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600}


@dataclass(frozen=True)
class Record:
    number: int
    time_text: str  # as published, e.g. '2.992 minutes'
    seconds: float
    decimals: int  # the precision the README publishes the time to
    unit: str  # 'minute', 'hour', 'second'
    description: str
    url: str | None
    date: dt.date
    log: str | None  # first link into records/, relative to the repository root
    contributors: str
    line: int

    def published(self, seconds: float) -> str:
        """A time in seconds written as this row writes its own ('2.992' minutes): the comparison a test makes."""
        return f"{seconds / UNIT_SECONDS[self.unit]:.{self.decimals}f}"


def _text(cell: str) -> tuple[str, str | None]:
    m = _LINK.search(cell)
    return (_LINK.sub(lambda x: x[1], cell).strip(), m[2] if m else None)


def read_history(readme: Path) -> list[Record]:
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{readme}: cannot be read ({exc}); pass the root of a modded-nanogpt checkout") from None
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().lower() == "## world record history"), None)
    if start is None:
        raise InvalidInput(f"{readme}: no '## World record history' section; is this modded-nanogpt's README.md?")
    out = []
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if line.startswith("## "):
            break
        if not _ROW.match(line):
            continue
        cells = [c.strip() for c in line.split("|")]
        where = f"{readme}:{i + 1}"
        if len(cells) < 6:
            raise InvalidInput(f"{where}: a record row needs 6 cells (# | time | description | date | log | "
                               f"contributors), found {len(cells)}")
        number, time_cell, desc_cell, date_cell, log_cell = cells[:5]
        contributors = " | ".join(cells[5:]).strip()
        m = _TIME.match(time_cell)
        if not m:
            raise InvalidInput(f"{where}: record time {time_cell!r} is not '<number> minutes|hours|seconds'")
        unit = m[2].rstrip("s")
        decimals = len(m[1].split(".")[1]) if "." in m[1] else 0
        try:
            date = dt.datetime.strptime(date_cell, "%m/%d/%y").date()
        except ValueError:
            raise InvalidInput(f"{where}: date {date_cell!r} is not MM/DD/YY") from None
        description, url = _text(desc_cell)
        logs = [target for _, target in _LINK.findall(log_cell) if target.startswith("records/")]
        out.append(Record(int(number), time_cell, float(m[1]) * UNIT_SECONDS[unit], decimals, unit, description, url,
                          date, logs[0] if logs else None, _text(contributors)[0], i + 1))
    if not out:
        raise InvalidInput(f"{readme}:{start + 1}: the world record history has no rows")
    return out
