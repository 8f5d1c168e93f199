"""`speedrun new`: a run folder to start from, copied from the track's starter run or frozen reference."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from .checker import Checker
from .discover import ANALYSIS_NAMES, run_dirs_of
from .problems import InvalidInput

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
LEFT_BEHIND = ("logs", "reproductions", "__pycache__", *ANALYSIS_NAMES)


def scaffold(track_dir: Path, name: str, team: str | None = None, author: str | None = None) -> tuple[Path, list[str]]:
    if not NAME.match(name):
        raise InvalidInput(f"run name {name!r}: use lowercase letters, digits, '.', '_' or '-' (at most 64)")
    result = Checker().check_track(track_dir)
    if result.track is None:
        raise InvalidInput(f"{track_dir}/track.yaml is missing or invalid; see `speedrun validate {track_dir}`")
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
    if script.is_file():
        text = script.read_text(encoding="utf-8")
        for const, value in (("TEAM", team), ("AUTHORS", author)):
            if value is None:
                continue
            literal = repr(value) if const == "TEAM" else repr([{"name": value}])
            text, n = re.subn(rf"^{const}\s*=.*$", f"{const} = {literal}", text, count=1, flags=re.M)
            if not n:
                notes.append(f"run.py has no {const} constant: set the {const.lower()} in the analysis it writes")
        script.write_text(text, encoding="utf-8")
    readme = target / "README.md"
    readme.write_text(f"# {name}\n\nDescribe the approach here: what changed against the starting point and why.\n"
                      "Figures belong in speedrun_analysis.json, written by run.py.\n", encoding="utf-8")
    return target, notes
