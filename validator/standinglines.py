"""A run's standing on its track's board, rendered for the text and markdown reports.

The figures come in as plain data (speedrun/standing.py ranks them: the validator never imports the leaderboard):
{"track", "figures": [{"label", "kind", "mean", "std", "n"}], "rank", "of", "record": {"name", "kind", "mean",
"std", "n"} | None, "beats_record": bool | None, "group": {"title", "name"} | None (grouped tracks rank within it), "significance": {"test", "alpha", "against", "reference", "metric",
"p_value", "significant", "note"} | None}.
"""

from __future__ import annotations

from .mdsafe import code, prose


def figure_text(fig: dict) -> str:
    """`11,034 ± 210` for sample counts, `0.9629 ± 0.004` for metrics; `not reached` when a seed has no figure."""
    if fig.get("mean") is None:
        return "not reached" if fig.get("kind") == "samples_to_threshold" else "–"
    samples = fig.get("kind") == "samples_to_threshold"
    value = f"{fig['mean']:,.0f}" if samples else f"{fig['mean']:.4g}"
    # One seed has no spread to show: "± 0" would claim a precision nobody measured.
    spread = " (1 seed)" if fig.get("n") == 1 else (f" ± {fig['std'] or 0:,.0f}" if samples
                                                    else f" ± {fig['std'] or 0:.2g}")
    return value + spread + (" samples" if samples else "")


def rank_text(s: dict, name=lambda n: n) -> str:
    if "error" in s:
        return f"not computed ({s['error']})"
    if s["rank"] is None:
        return (f"would not be ranked on {s['track']}: no figure under its primary rule "
                f"({s['figures'][0]['label']}); {s['of']} run(s) are ranked")
    group = s.get("group")
    within = f" among runs of {group['title']} {name(group['name'])}" if group else ""
    return f"would rank {s['rank']} of {s['of']} on {s['track']}{within}"


def record_text(s: dict, name=lambda n: n) -> str:
    rec = s["record"]
    if rec is None:
        return "no other run is ranked yet" + (": it would set the first record" if s["beats_record"] else "")
    verdict = "beats it" if s["beats_record"] else "does not beat it"
    return f"current record {name(rec['name'])} ({figure_text(rec)}): {verdict}"


def significance_text(s: dict, name=lambda n: n, words=lambda t: t) -> str | None:
    sig = s["significance"]
    if sig is None:
        return None
    if sig["against"] == "threshold":
        what = f"final {words(sig['metric'])} against the threshold {sig['reference']:g}"
    else:
        what = f"the ranking figure against the record {name(str(sig['reference']))}"
    p = "p not computed" if sig["p_value"] is None else f"p = {sig['p_value']:.3g}"
    verdict = "significant" if sig["significant"] else "not significant"
    note = f" ({sig['note']})" if sig.get("note") else ""
    return f"record claim ({sig['test']}, {what}, α = {sig['alpha']:g}): {p}, {verdict}{note}"


def text_lines(s: dict) -> list[str]:
    if "error" in s:
        return [f"standing: {rank_text(s)}"]
    figures = "; ".join(f"{f['label']}: {figure_text(f)}" for f in s["figures"])
    lines = [f"ranking: {figures}", f"standing: {rank_text(s)}; {record_text(s)}"]
    sig = significance_text(s)
    return lines + ([sig] if sig else [])


def _words(text: str) -> str:
    """Track text (rule labels, metric names) made safe for a table cell; the comparison signs it holds have no
    meaning to GitHub, so they stay plain rather than become code spans."""
    out = prose(text, table=True)
    for sign in "≥≤±":
        out = out.replace(f"`{sign}`", sign)
    return out


def markdown_lines(s: dict) -> list[str]:
    """A table for the PR comment. Labels and ids come from the track file and run names from submissions: both go
    through validator/mdsafe.py; the figures are numbers this tool formatted."""
    cell = lambda n: code(n, table=True)  # noqa: E731
    if "error" in s:
        return [f"Standing on {cell(s['track'])}: {prose(rank_text(s))}.", ""]
    lines = [f"| standing on {cell(s['track'])} | |", "|---|---|"]
    lines += [f"| {_words(f['label'])} | {figure_text(f)} |" for f in s["figures"]]
    lines.append(f"| would-be rank | {_words(rank_text(s))} |")
    lines.append(f"| record | {record_text(s, name=cell)} |")
    sig = significance_text(s, name=cell, words=_words)
    if sig:
        against = "threshold" if s["significance"]["against"] == "threshold" else "record"
        lines.append(f"| significance (against the {against}) | {sig} |")
    return lines + [""]
