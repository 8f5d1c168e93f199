"""Which run a run page compares itself with (its diff view), and why, from a track's gathered data.

The most telling comparison comes first: a declared baseline is what the authors changed (data-selection runs
keep the baseline's training and change what it sees); a record is compared with the record it beat, so the diff
is the step that made the record; any other run with the record standing on its date, the run it tried to beat.
"""

from __future__ import annotations


def _key(item: dict) -> tuple[str, str]:
    # the order of stats.record_history: by date, then name, so "the record before" means the same thing here
    return item["date"], item["name"]


def compared_with(track: dict, entry: dict) -> dict:
    """{"name", "reason", "date"} of the run to compare `entry` with, or {"name": None, "note"} when there is
    none. `reason` is "baseline", "beaten" (the record this run took over) or "standing" (the record on its date
    that it did not beat)."""
    runs = {e["name"]: e for e in track["entries"] + track["unranked"]}
    base = entry.get("baseline_run")
    if base and base != entry["name"] and base in runs:
        return {"name": base, "reason": "baseline", "date": runs[base]["date"]}
    # A track ranked within groups (groups.py) has a record history per group: only the run's own group counts.
    records = sorted((r for r in track.get("records") or [] if r.get("group") == entry.get("group")), key=_key)
    names = [r["name"] for r in records]
    if entry["name"] in names:
        i = names.index(entry["name"])
        if i == 0:
            where = f"in its group ({entry['group']})" if entry.get("group") else "on this track"
            return {"name": None, "note": f"The first record {where}, with no baseline: there is no earlier run "
                                          "to compare its training script with."}
        return {"name": records[i - 1]["name"], "reason": "beaten", "date": entry["date"]}
    # Runs of one day are not ordered by the hour, so the record set on the run's own date counts as standing.
    standing = [r for r in records if r["date"] <= entry["date"] and r["name"] in runs]
    if not standing:
        return {"name": None, "note": "No baseline and no record on this track on or before this run's date: "
                                      "there is no run to compare its training script with."}
    return {"name": standing[-1]["name"], "reason": "standing", "date": entry["date"]}
