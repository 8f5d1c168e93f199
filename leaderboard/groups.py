"""Boards within a track. Most tracks rank every run in one list; a track whose ranking names `group_by` (MaxCLIP's
unconstrained board, by model architecture) ranks within each group instead, because its rules only compare runs
of one architecture. Each board gets its own ranks, record, record history and record-claim tests."""

from __future__ import annotations

from collections.abc import Callable

from validator.models.run import RunAnalysis
from validator.models.track import Track

from .ranking import rank

UNGROUPED = "(not given)"


def group_of(run: RunAnalysis, field: str) -> str:
    """The value at `field` (a dotted path the track model has checked names a text field), or UNGROUPED."""
    value: object = run
    for part in field.split("."):
        value = getattr(value, part, None)
    return value.strip() if isinstance(value, str) and value.strip() else UNGROUPED


def boards(track: Track, analyses: dict[str, RunAnalysis], entries: list[dict]) -> list[tuple[str | None, list[dict]]]:
    """(group, ranked entries) per board, best board first; entries are renumbered within their group and carry
    `group`. Ungrouped tracks give one board, (None, ranked entries), with the ranks `rank` gave."""
    ranked = [e for e in entries if e["rank"] is not None]
    spec = track.ranking.group_by
    if spec is None:
        for e in entries:
            e["group"] = None
        return [(None, ranked)]
    names: dict[str, list[str]] = {}
    for e in entries:
        e["group"] = group_of(analyses[e["name"]], spec.field)
        names.setdefault(e["group"], []).append(e["name"])
    by_name = {e["name"]: e for e in entries}
    for members in names.values():
        for r in rank({n: analyses[n] for n in members}, track):
            by_name[r.name]["rank"] = r.rank
    # Groups in the order of their best run (entries come best first), so the strongest board leads the page.
    order = list(dict.fromkeys(e["group"] for e in ranked))
    return [(g, sorted((e for e in ranked if e["group"] == g), key=lambda e: (e["rank"], e["name"]))) for g in order]


def per_board(parts: list[tuple[str | None, list[dict]]], work: Callable[[list[dict]], list]) -> list[dict]:
    """Run `work` (record history, significance) on each board's entries; what it returns is tagged with the group."""
    out = []
    for group, members in parts:
        out += [{**(r if isinstance(r, dict) else r.__dict__), "group": group} for r in work(members) or []]
    return out
