"""`speedrun new`: a run folder to start from, copied from the track's starter run or frozen reference.

The copy keeps the starter's code but not its words: the description, notes and `changes` the copied script writes
become placeholders (`PLACEHOLDER_MARK`), which `speedrun validate` refuses until the participant fills or removes
them (`placeholder_problems`), so a new run never goes out under the baseline's description.
"""

from __future__ import annotations

import ast
import itertools
import re
import shutil
from pathlib import Path

import yaml

from .checker import Checker
from .discover import ANALYSIS_NAMES, is_track_dir, run_dirs_of
from .models import RunAnalysis
from .policy import CHANGES_HINT
from .problems import InvalidInput, Problem, Problems

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
LEFT_BEHIND = ("logs", "reproductions", "__pycache__", *ANALYSIS_NAMES)

PLACEHOLDER_MARK = "TODO (speedrun new):"
PLACEHOLDERS = {
    "description": f"{PLACEHOLDER_MARK} the approach in a few sentences.",
    "changes": f"{PLACEHOLDER_MARK} what this run changes against the run it builds on, in one line.",
    "notes": f"{PLACEHOLDER_MARK} instabilities or anything a reader should know; or remove this line.",
}


def is_placeholder(value: object) -> bool:
    return isinstance(value, str) and value.strip().startswith(PLACEHOLDER_MARK)


def placeholder_problems(analysis: RunAnalysis, file: str) -> list[Problem]:
    """Text still as `speedrun new` left it: `placeholder-text` for the description and notes, `changes-missing` for
    `changes` (a pull request must also not leave it out: validator/policy.py)."""
    problems = Problems(file)
    if is_placeholder(analysis.changes):
        problems.error("$.changes", "changes-missing", "changes is still the placeholder `speedrun new` wrote",
                       CHANGES_HINT)
    for field in ("description", "notes"):
        if is_placeholder(getattr(analysis, field)):
            problems.error(f"$.{field}", "placeholder-text",
                           f"{field} is still the placeholder `speedrun new` wrote",
                           f"write the run's own {field} where run.py sets it (or in the config on a constrained "
                           "track), then rerun run.py" + ("; or remove the line" if field == "notes" else ""))
    return problems.items


def available_tracks(runs_dir: Path) -> list[tuple[str, str]]:
    """(id, title) of every valid track under `runs_dir`, for a message that names the choices."""
    out = []
    if runs_dir.is_dir():
        for d in sorted(p for p in runs_dir.iterdir() if p.is_dir() and is_track_dir(p)):
            track = Checker().check_track(d).track
            if track is not None:
                out.append((track.id, track.title))
    return out


def _unknown_track(runs_dir: Path, track_id: str) -> InvalidInput:
    tracks = available_tracks(runs_dir)
    if not tracks:
        return InvalidInput(f"--track {track_id!r}: there is no {runs_dir / track_id}/track.yaml, and {runs_dir}/ "
                            "holds no track; run from the repository's root or pass --runs")
    listed = "".join(f"\n  {i}: {t}" for i, t in tracks)
    return InvalidInput(f"--track {track_id!r}: there is no {runs_dir / track_id}/track.yaml; pass one of the "
                        f"tracks under {runs_dir}/ with --track:{listed}")


def scaffold(runs_dir: Path, track_id: str, name: str, team: str | None = None,
             author: str | None = None) -> tuple[Path, list[str]]:
    if not NAME.match(name):
        raise InvalidInput(f"run name {name!r}: use lowercase letters, digits, '.', '_' or '-' (at most 64)")
    track_dir = runs_dir / track_id
    if "/" in track_id or not (track_dir / "track.yaml").is_file():
        raise _unknown_track(runs_dir, track_id)
    result = Checker().check_track(track_dir)
    if result.track is None:
        raise InvalidInput(f"{track_dir}/track.yaml is invalid; see `speedrun validate {track_dir}`")
    track = result.track
    target = track_dir / name
    if target.exists():
        raise InvalidInput(f"{target} already exists; choose another name")
    notes = []
    if track.constrained is not None:
        source = track_dir / track.constrained.reference
        notes.append(f"copied the frozen reference; change only {', '.join(track.constrained.editable)} "
                     f"and {track.constrained.config}")
    else:
        candidates = [track.starter] if track.starter else [d.name for d in run_dirs_of(track_dir)
                                                           if any((d / n).is_file() for n in ANALYSIS_NAMES)
                                                           and (d / "run.py").is_file()]
        if not candidates or not (track_dir / candidates[0]).is_dir():
            raise InvalidInput(f"{track_dir}/track.yaml::$.starter: the track has no starter run to copy; "
                               "copy a run folder by hand or ask the organizers to set `starter`")
        source = track_dir / candidates[0]
        notes.append(f"copied {candidates[0]}'s run.py and README.md; change the approach, then train")
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*LEFT_BEHIND))
    script = target / "run.py"
    if track.constrained is not None:
        _config_placeholders(target / track.constrained.config)
    elif script.is_file():
        text = script.read_text(encoding="utf-8")
        for const, value in (("TEAM", team), ("AUTHORS", author)):
            if value is None:
                continue
            literal = repr(value) if const == "TEAM" else repr([{"name": value}])
            text, n = re.subn(rf"^{const}\s*=.*$", f"{const} = {literal}", text, count=1, flags=re.M)
            if not n:
                notes.append(f"run.py has no {const} constant: set the {const.lower()} in the analysis it writes")
        text, missed = _script_placeholders(text)
        notes += [f"run.py writes no {m} the scaffold could mark: add it to the analysis it writes" for m in missed]
        script.write_text(text, encoding="utf-8")
    readme = target / "README.md"
    readme.write_text(f"# {name}\n\nDescribe the approach here: what changed against the starting point and why.\n"
                      "Figures belong in speedrun_analysis.json, written by run.py.\n", encoding="utf-8")
    return target, notes


def _analysis_dict(tree: ast.AST) -> ast.Dict | None:
    """The dict literal run.py writes as its analysis: the one with a "schema_version" key."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "schema_version"
                                              for k in node.keys):
            return node
    return None


def _script_placeholders(text: str) -> tuple[str, list[str]]:
    """run.py with the placeholders in its analysis dict: description, notes and changes replaced (changes added
    after the description when the starter has none). Edits go by the parsed positions, so a value written over
    several lines or as an f-string is replaced whole."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text, ["analysis"]
    found = _analysis_dict(tree)
    if found is None:
        return text, ["analysis dict"]
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(lineno: int, col: int) -> int:  # ast columns are UTF-8 byte offsets
        return starts[lineno - 1] + len(lines[lineno - 1].encode("utf-8")[:col].decode("utf-8"))

    edits: list[tuple[int, int, str]] = []
    values = {k.value: v for k, v in zip(found.keys, found.values) if isinstance(k, ast.Constant)}
    for field in ("description", "notes", "changes"):
        if field in values:
            v = values[field]
            edits.append((offset(v.lineno, v.col_offset), offset(v.end_lineno, v.end_col_offset),
                          repr(PLACEHOLDERS[field])))
    missed = [f for f in ("description",) if f not in values]
    if "changes" not in values and "description" in values:
        v = values["description"]
        end = offset(v.end_lineno, v.end_col_offset)
        comma = text.index(",", end) + 1 if text[end:].lstrip().startswith(",") else end
        indent = " " * next(k for k in found.keys if isinstance(k, ast.Constant) and k.value == "description").col_offset
        edits.append((comma, comma, f"\n{indent}\"changes\": {PLACEHOLDERS['changes']!r},"))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text, missed


def _config_placeholders(config: Path) -> None:
    """A constrained track's frozen run.py takes description, notes and changes from the config's `submission`: mark them
    there, keeping the config's leading comment (yaml drops comments)."""
    if not config.is_file():
        return
    raw = config.read_text(encoding="utf-8")
    data = yaml.safe_load(raw)
    sub = data.get("submission") if isinstance(data, dict) else None
    if not isinstance(sub, dict):
        return
    sub["description"] = PLACEHOLDERS["description"]
    sub["notes"] = PLACEHOLDERS["notes"]
    sub["changes"] = PLACEHOLDERS["changes"]
    header = "".join(itertools.takewhile(lambda line: line.startswith("#"), raw.splitlines(keepends=True)))
    config.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
