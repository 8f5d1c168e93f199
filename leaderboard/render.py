"""Jinja rendering of the gathered leaderboard data into pages (path -> content)."""

from __future__ import annotations

import functools
import math
import os
from importlib import resources
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from . import charts as ch
from .diffview import diff_view
from .moduletable import module_table
from . import presentation

PAGE_SIZE = 100  # table rows per track page; bigger tracks continue on numbered pages
INLINE_FILE_BYTES = 64 * 1024  # of one file on a run page; a longer file shows its head and its tail
INLINE_PAGE_BYTES = 384 * 1024  # of all files on one run page, so no page nears 1 MB


def _num(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    return f"{value:,.1f}"


def _sci(value) -> str:
    return "–" if value is None else f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"


def _pct(value) -> str:
    return "–" if value is None else f"{value:.1%}"


def _p(value) -> str:
    return "–" if value is None else f"{value:.2g}" if value >= 1e-4 else f"{value:.1e}"


def _flat(value, prefix: str = "") -> list[tuple[str, str]]:
    """A nested config as (dotted key, value) rows."""
    if isinstance(value, dict):
        rows = []
        for k, v in value.items():
            rows += _flat(v, f"{prefix}.{k}" if prefix else str(k))
        return rows
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        rows = []
        for i, v in enumerate(value):
            rows += _flat(v, f"{prefix}[{i}]")
        return rows
    if value is None or value == [] or value == {}:
        return []
    return [(prefix, ", ".join(map(str, value)) if isinstance(value, list) else str(value))]


_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Environment(Environment):
    """Looks `a.b` up as a key first when `a` is a plain dict (all the site's data is): Jinja tries the attribute
    first and pays for an AttributeError on each of the ~200 lookups of every run page. Names of dict methods
    (`items`, `values`, ...) keep Jinja's order, so templates mean exactly what they meant."""

    def getattr(self, obj, attribute):
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


@functools.lru_cache(maxsize=1)
def environment() -> Environment:
    env = _Environment(
        loader=PackageLoader("leaderboard", "templates"),
        autoescape=select_autoescape(["html", "xml"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(num=_num, sci=_sci, fig=presentation.mean_std, pct=_pct, pval=_p, flat=_flat, budget=presentation.budget_text,
                       figunit=presentation.figure_text, compact=presentation.compact,
                       header=presentation.rule_header)
    return env


def _static() -> dict[str, bytes]:
    base = resources.files("leaderboard").joinpath("static")
    return {f"static/{p.name}": p.read_bytes() for p in sorted(base.iterdir(), key=lambda p: p.name) if p.is_file()}


CHARTS = (
    ("curves", ch.curves_spec,
     f"metric against samples seen: the leading runs (up to {ch.MAX_CURVE_RUNS}), a line each"),
    ("flops", ch.flops_spec, "metric against training FLOPs with the Pareto frontier"),
    ("records", ch.records_spec, "record progression over time"),
)


def _all_track_charts(tracks: list[dict], enabled: bool) -> dict[str, tuple[list[dict], dict[str, str]]]:
    """Chart blocks and SVG fallbacks of every valid track."""
    if not enabled:
        return {}
    jobs = []
    for track in tracks:
        if not track["valid"]:
            continue
        for key, build, alt_text in CHARTS:
            spec = build(track)
            if spec is not None:
                jobs.append((track["id"], key, alt_text, spec))
    svgs = [ch.to_svg(job[3]) for job in jobs]  # vl-convert serialises internally: threads would not help
    out: dict[str, tuple[list[dict], dict[str, str]]] = {}
    for (track_id, key, alt_text, spec), svg in zip(jobs, svgs):
        blocks, files = out.setdefault(track_id, ([], {}))
        files[f"tracks/{track_id}/{key}.svg"] = svg
        blocks.append({"key": key, "svg": f"{track_id}/{key}.svg", "alt": alt_text,
                       "spec": Markup(ch.spec_json(spec))})
    return out


def _run_charts(track: dict, entry: dict) -> dict[str, Markup]:
    metric = next(m for m in track["metrics"] if m["id"] == track["primary_metric"])
    series = []
    for c in entry["curves"]:
        pts = [(p["samples"], p[metric["id"]]) for p in c["points"] if metric["id"] in p]
        if pts:
            series.append((f"seed {c['seed']}" + (f" ({c['setting']})" if c["setting"] else ""), pts))
    out = {"curves": Markup(ch.curves_svg(series, metric["name"])) if series else Markup("")}
    traces = {}
    for c in entry["curves"]:
        for name, values in (c.get("trace") or {}).items():
            if values:
                step = max(1, len(values) // 200)
                traces.setdefault(name, []).append(
                    (f"seed {c['seed']}", [(i + 1, v) for i, v in enumerate(values)][::step]))
    out["traces"] = {name: Markup(ch.curves_svg(s, name).replace("samples seen", "step"))
                     for name, s in sorted(traces.items())}
    return out


def render_site(data: dict, built_at: str | None, bundle_name: str | None):
    """The pages that need every track (the index) and the static assets (the Vega bundle aside)."""
    env = environment()
    yield "index.html", env.get_template("index.html").render(data=data, root="", built_at=built_at,
                                                              vega_bundle=bundle_name)
    yield from _static().items()


def render_track(track: dict, built_at: str | None, bundle_name: str | None, track_dir: Path | None = None,
                 source_url: str | None = None):
    """One track's pages, chart SVGs and run pages; they need nothing from other tracks, so tracks render in
    parallel. Charts are drawn when `bundle_name` is set (the pages load that bundle). Run pages show the run's
    files read from `track_dir`, and link to them under `source_url` when given."""
    env = environment()
    common = {"built_at": built_at, "vega_bundle": bundle_name, "source_url": source_url}
    track_tpl, run_tpl = env.get_template("track.html"), env.get_template("run.html")
    if not track["valid"]:  # a page with the errors of its track.yaml
        yield f"tracks/{track['id']}.html", track_tpl.render(track=track, root="../", rows=[], page=1, pages=1,
                                                             charts=[], **common)
        return
    blocks, svgs = _all_track_charts([track], bundle_name is not None).get(track["id"], ([], {}))
    yield from svgs.items()
    entries = track["entries"]
    pages = max(1, math.ceil(len(entries) / PAGE_SIZE))
    for page in range(1, pages + 1):
        name = f"tracks/{track['id']}.html" if page == 1 else f"tracks/{track['id']}-page{page}.html"
        yield name, track_tpl.render(
            track=track, root="../", rows=entries[(page - 1) * PAGE_SIZE: page * PAGE_SIZE], page=page,
            pages=pages, charts=blocks if page == 1 else [], **common)
    by_name = {e["name"]: e for e in track["entries"] + track["unranked"]}
    for entry in track["entries"] + track["unranked"]:
        yield f"runs/{track['id']}/{entry['name']}.html", run_tpl.render(
            track=track, entry=entry, root="../../", run_charts=_run_charts(track, entry),
            experiment=_experiment_of(track, entry, by_name), diff=diff_view(track_dir, track, entry),
            modules=module_table(entry["compute"]["by_module"] if entry["compute"] else None),
            files=file_views(track_dir / entry["name"] if track_dir else None, entry["files"]), **common)


def file_views(run_dir: Path | None, files: list[dict]) -> list[dict]:
    """Each file with the text a run page shows: whole when short, else head and tail; binary files by size only.
    The page carries the files itself, rather than copies beside it: a big leaderboard would otherwise write tens
    of thousands of files and folders, and browsers download a .py file instead of showing it."""
    budget = INLINE_PAGE_BYTES
    out = []
    for f in files:
        view = {**f, "text": None, "note": ""}
        out.append(view)
        if run_dir is None:
            view["note"] = "not included in this build"
            continue
        limit = min(INLINE_FILE_BYTES, budget)
        if limit <= 0:
            view["note"] = f"{f['bytes']:,} bytes, not shown: the page already shows {INLINE_PAGE_BYTES // 1024} KiB"
            continue
        try:
            with open(run_dir / f["path"], "rb") as fh:
                head = fh.read(limit if f["bytes"] <= limit else limit // 2)
                tail = b""
                if f["bytes"] > limit:
                    fh.seek(-(limit // 2), os.SEEK_END)
                    tail = fh.read()
        except OSError as exc:
            view["note"] = f"unreadable: {exc.strerror or exc}"
            continue
        if b"\x00" in head or b"\x00" in tail:
            view["note"] = f"binary file, {f['bytes']:,} bytes"
            continue
        text = head.decode("utf-8", errors="replace")
        if tail:
            text += (f"\n\n[... {f['bytes'] - len(head) - len(tail):,} bytes not shown ...]\n\n"
                     + tail.decode("utf-8", errors="replace"))
        view["text"] = text
        budget -= len(head) + len(tail)
    return out


def _experiment_of(track: dict, entry: dict, by_name: dict) -> dict | None:
    if not entry.get("experiment"):
        return None
    exp = next((x for x in track["experiments"] if x["id"] == entry["experiment"]["id"]), None)
    if exp is None:
        return None
    return {**exp, "members": [by_name[n] for n in exp["runs"] if n in by_name]}
