"""Jinja rendering of the gathered leaderboard data into pages (path -> content)."""

from __future__ import annotations

from importlib import resources

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def _num(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    return f"{value:,.1f}"


def _sci(value) -> str:
    return "–" if value is None else f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"


def _fig(fig: dict, kind: str = "") -> str:
    """mean ± std, formatted for the rule: samples as whole numbers, metrics with four decimals."""
    if fig is None or fig.get("mean") is None:
        return "not reached" if kind == "samples_to_threshold" else "–"
    fmt = (lambda v: f"{v:,.0f}") if kind == "samples_to_threshold" else (lambda v: f"{v:.4f}")
    text = fmt(fig["mean"])
    if fig.get("n", 0) > 1 and fig.get("std") is not None:
        text += f" ± {fmt(fig['std'])}"
    return text


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("leaderboard", "templates"),
        autoescape=select_autoescape(["html", "xml"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(num=_num, sci=_sci, fig=_fig)
    return env


def _static() -> dict[str, bytes]:
    base = resources.files("leaderboard").joinpath("static")
    return {f"static/{p.name}": p.read_bytes() for p in sorted(base.iterdir(), key=lambda p: p.name) if p.is_file()}


def render_pages(data: dict, built_at: str | None) -> dict[str, str | bytes]:
    env = environment()
    common = {"built_at": built_at}
    files: dict[str, str | bytes] = {}
    files["index.html"] = env.get_template("index.html").render(data=data, root="", **common)
    for track in data["tracks"]:
        files[f"tracks/{track['id']}.html"] = env.get_template("track.html").render(track=track, root="../", **common)
        for entry in track["entries"] + track["unranked"]:
            files[f"runs/{track['id']}/{entry['name']}.html"] = env.get_template("run.html").render(
                track=track, entry=entry, root="../../", **common)
    files.update(_static())
    return files
