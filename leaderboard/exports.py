"""Machine-readable exports: `leaderboard.json` (all tracks), `tracks/<id>.json`, `tracks/<id>.csv`, and an Atom
feed of new records (`records.atom`). The pydantic models below are the exports' documented format; `speedrun
schemas` writes their JSON Schema to `schemas/leaderboard.schema.json`.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Literal
from xml.sax.saxutils import escape

from pydantic import BaseModel, ConfigDict, Field

EXPORT_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FigureExport(_Strict):
    rule: str = Field(description="Ranking rule kind (final_metric, samples_to_threshold, ...).")
    label: str = Field(description="Human-readable rule, e.g. 'samples to Top-1 accuracy (val) ≥ 0.95'.")
    mean: float | None = Field(description="Mean over seeds; null if not reached or incomplete.")
    std: float | None = Field(description="Sample standard deviation over seeds.")
    n: int = Field(description="Number of seeds (or seed x setting results) aggregated.")


class MetricExport(_Strict):
    mean: float | None = Field(description="Mean final value over seeds.")
    std: float | None = Field(description="Sample standard deviation over seeds.")
    n: int = Field(description="Number of values.")


class EntryExport(_Strict):
    rank: int | None = Field(description="Rank on the track (shared ranks on ties); null if valid but not ranked.")
    name: str = Field(description="Run folder name.")
    team: str = Field(description="Team.")
    authors: list[str] = Field(description="Author names.")
    date: str = Field(description="Date the run finished (YYYY-MM-DD).")
    parameters: int = Field(description="Trainable parameters as claimed (checked against the entrypoint's model).")
    samples_seen: int = Field(description="Training samples that contributed a gradient, per seed.")
    claimed_flops: float | None = Field(description="Training FLOPs the run claims.")
    recomputed_flops: float | None = Field(description="Training FLOPs recomputed by the validator; null if not counted.")
    status: Literal["validated", "reproduced", "self-reported"] = Field(description="Verification status.")
    figures: list[FigureExport] = Field(description="The track's ranking figures, primary first.")
    metrics: dict[str, MetricExport] = Field(description="Final metrics by id.")
    p_value: float | None = Field(description="p-value of the record-claim test, where the track has one.")
    group: str | None = Field(description="The group the run is ranked within (the track's ranking.group_by, e.g. "
                                          "its architecture); null on tracks ranked as one list.")
    changes: str | None = Field(description="What the run changed against the run it builds on, in its own words.")
    url: str = Field(description="Run page, relative to the site root.")


class InvalidExport(_Strict):
    name: str = Field(description="Run folder name.")
    errors: list[str] = Field(description="Problems as `file::$.path: message [rule]`.")


class TrackExport(_Strict):
    format_version: Literal[1] = Field(description="Export format version.")
    id: str = Field(description="Track id.")
    title: str = Field(description="Track title.")
    competition: str = Field(description="Competition id.")
    rules_version: str = Field(description="Version of the track's rules the ranking used.")
    primary_metric: str = Field(description="Id of the primary metric.")
    direction: Literal["higher", "lower"] = Field(description="Whether higher or lower primary values are better.")
    budget: dict | None = Field(description="The track's budget: kind, limit, counts.")
    entries: list[EntryExport] = Field(description="Valid runs, ranked ones first in rank order.")
    invalid: list[InvalidExport] = Field(description="Invalid runs with their problems.")
    pending: list[str] = Field(description="Runs waiting for the organizers to train them (ZIP submissions): listed, "
                                           "not ranked.")
    records: list[dict] = Field(description="Record history: date, name, mean, p_value, group (null unless the track "
                                            "ranks within groups, which each keep their own history).")


class LeaderboardExport(_Strict):
    format_version: Literal[1] = Field(description="Export format version.")
    built_at: str | None = Field(description="Build time from SOURCE_DATE_EPOCH (ISO 8601), or null.")
    competitions: list[dict] = Field(description="Competitions: id, title, url, description (one sentence), tracks "
                                                 "(ids, smallest budget first).")
    tracks: list[TrackExport] = Field(description="Every valid track.")
    invalid_tracks: list[str] = Field(description="Ids of tracks whose track.yaml is invalid.")


def track_export(track: dict) -> dict:
    primary = next(m for m in track["metrics"] if m["id"] == track["primary_metric"])

    def entry(e: dict) -> dict:
        return {
            "rank": e["rank"], "name": e["name"], "team": e["team"], "authors": [a["name"] for a in e["authors"]],
            "date": e["date"], "parameters": e["parameters"], "samples_seen": e["samples_seen"],
            "claimed_flops": e["claimed_flops"], "recomputed_flops": e["recomputed_flops"], "status": e["status"],
            "figures": [{"rule": r["kind"], "label": r["label"], "mean": f["mean"], "std": f["std"], "n": f["n"]}
                        for r, f in zip(track["ranking"], e["figures"])],
            "metrics": {k: {"mean": v["mean"], "std": v["std"], "n": v["n"]} for k, v in e["metrics"].items()},
            "p_value": (e.get("significance") or {}).get("p_value"),
            "group": e.get("group"), "changes": e.get("changes"),
            "url": f"runs/{track['id']}/{e['name']}.html",
        }

    data = {
        "format_version": EXPORT_VERSION, "id": track["id"], "title": track["title"],
        "competition": track["competition"]["id"], "rules_version": track["rules_version"],
        "primary_metric": track["primary_metric"], "direction": primary["direction"], "budget": track["budget"],
        "entries": [entry(e) for e in track["entries"] + track["unranked"]],
        "invalid": [{"name": r["name"], "errors": [f"{p['file']}::{p['path']}: {p['message']} [{p['rule']}]"
                                                   for p in r["errors"]]} for r in track["invalid"]],
        "pending": [r["name"] for r in track.get("pending", [])],
        "records": track["records"],
    }
    return TrackExport.model_validate(data).model_dump(mode="json")


def _csv(track: dict, exported: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    metric_ids = [m["id"] for m in track["metrics"]]
    writer.writerow(["rank", "name", "team", "date", "parameters", "samples_seen", "claimed_flops", "recomputed_flops",
                     "status", *[f"rule{i + 1}_{r['kind']}_mean" for i, r in enumerate(track["ranking"])],
                     *[f"rule{i + 1}_{r['kind']}_std" for i, r in enumerate(track["ranking"])],
                     *[f"{m}_mean" for m in metric_ids], *[f"{m}_std" for m in metric_ids], "p_value", "group"])
    for e in exported["entries"]:
        writer.writerow([e["rank"] if e["rank"] is not None else "", _text(e["name"]), _text(e["team"]), e["date"],
                         e["parameters"],
                         e["samples_seen"], _c(e["claimed_flops"]), _c(e["recomputed_flops"]), e["status"],
                         *[_c(f["mean"]) for f in e["figures"]], *[_c(f["std"]) for f in e["figures"]],
                         *[_c(e["metrics"].get(m, {}).get("mean")) for m in metric_ids],
                         *[_c(e["metrics"].get(m, {}).get("std")) for m in metric_ids], _c(e["p_value"]),
                         _text(e["group"])])
    return buf.getvalue()


def _text(value) -> str:
    """A submission's text for a CSV cell. Spreadsheets run a cell that starts with = + - @ (or a tab or carriage
    return before one) as a formula: such a cell gets a leading apostrophe, which they show as text."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


def _c(v) -> str:
    return "" if v is None else repr(v) if isinstance(v, float) else str(v)


def _atom(data: dict, built_at: str | None) -> str:
    """New records across all tracks, newest first. Dates come from the runs, so the feed is reproducible."""
    items = []
    for track in data["tracks"]:
        if not track["valid"]:
            continue
        label = track["ranking"][0]["label"]
        for r in track["records"]:
            items.append((r["date"], track, r, label))
    items.sort(key=lambda i: (i[0], i[1]["id"], i[2]["name"]), reverse=True)
    updated = built_at or (f"{items[0][0]}T00:00:00Z" if items else "1970-01-01T00:00:00Z")
    out = ['<?xml version="1.0" encoding="utf-8"?>', '<feed xmlns="http://www.w3.org/2005/Atom">',
           "<title>Speedrun records</title>", "<id>tag:speedrun,2026:records</id>",
           f"<updated>{updated}</updated>", '<link href="index.html"/>']
    for date, track, r, label in items:
        value = f"{r['mean']:,.4g}"
        out += ["<entry>",
                f"<title>{escape(track['title'])}: {escape(r['name'])} ({escape(label)} {value})</title>",
                f"<id>tag:speedrun,2026:{escape(track['id'])}/{escape(r['name'])}</id>",
                f"<updated>{date}T00:00:00Z</updated>",
                f'<link href="runs/{escape(track["id"])}/{escape(r["name"])}.html"/>',
                f"<summary>New record on {escape(track['title'])}: {escape(label)} = {value}"
                + (f" (p = {r['p_value']:.3g})" if r.get("p_value") is not None else "") + "</summary>",
                "</entry>"]
    out.append("</feed>")
    return "\n".join(out) + "\n"


def track_files(track: dict) -> dict[str, str]:
    """One track's export files, `tracks/<id>.json` and `.csv` (none for an invalid track)."""
    if not track["valid"]:
        return {}
    exported = track_export(track)
    return {f"tracks/{track['id']}.json": _dumps(exported), f"tracks/{track['id']}.csv": _csv(track, exported)}


def site_files(data: dict, exported: list[str], built_at: str | None) -> dict[str, str]:
    """`leaderboard.json`, from the tracks' export texts (`tracks/<id>.json`, already validated), and the feed."""
    board = LeaderboardExport.model_validate({
        "format_version": EXPORT_VERSION, "built_at": built_at, "competitions": data["competitions"],
        "tracks": [], "invalid_tracks": [t["id"] for t in data["tracks"] if not t["valid"]],
    }).model_dump(mode="json")
    del board["tracks"]
    # Spliced rather than parsed and dumped again: "tracks" sorts last, and compact JSON has no indentation to
    # adjust, so this is byte for byte what json.dumps of the whole would write (a test holds it to that).
    text = _dumps(board).rstrip("\n")
    text = text[:-1] + ',"tracks":[' + ",".join(t.rstrip("\n") for t in exported) + "]}\n"
    return {"leaderboard.json": text, "records.atom": _atom(data, built_at)}


def _dumps(value) -> str:
    # Compact: with `indent`, json falls back from its C encoder to pure Python, 5x slower on a big leaderboard.
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
