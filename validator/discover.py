"""Turn the paths a user gives into track folders and run folders."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .problems import SpeedrunError

TRACK_FILE = "track.yaml"
ANALYSIS_NAMES = ("speedrun_analysis.json", "speedrun_analysis.yaml", "speedrun_analysis.yml")


# lexists, not is_file: a track.yaml or analysis file that is a folder, a FIFO or a dangling link still says what
# the folder is meant to be, and the loader then names what is wrong with that file.
def is_track_dir(path: Path) -> bool:
    return os.path.lexists(path / TRACK_FILE)


def is_run_dir(path: Path) -> bool:
    return analysis_file(path) is not None


def analysis_file(run_dir: Path) -> Path | None:
    """The run's analysis file, whatever kind of file it turns out to be (the loader says), or None."""
    return next((run_dir / n for n in ANALYSIS_NAMES if os.path.lexists(run_dir / n)), None)


def run_dirs_of(track_dir: Path) -> list[Path]:
    """Run folders of a track: every visible subfolder. `_reference` and other `_`/`.` names are not runs."""
    return sorted(
        p for p in track_dir.iterdir()
        if p.is_dir() and not p.is_symlink() and not p.name.startswith(("_", ".")) and p.name != TRACK_FILE
    )


@dataclass
class Targets:
    tracks: list[Path] = field(default_factory=list)
    runs: list[Path] = field(default_factory=list)
    # Folders under a runs root that hold runs but no track.yaml.
    orphans: list[Path] = field(default_factory=list)
    _seen: set = field(default_factory=set, repr=False)  # keeps adding O(1) for trees of thousands of runs

    def add_track(self, track_dir: Path) -> None:
        if ("track", track_dir) not in self._seen:
            self._seen.add(("track", track_dir))
            self.tracks.append(track_dir)
        for run in run_dirs_of(track_dir):
            self.add_run(run)

    def add_run(self, run_dir: Path) -> None:
        if ("run", run_dir) not in self._seen:
            self._seen.add(("run", run_dir))
            self.runs.append(run_dir)


def discover(paths: list[Path]) -> Targets:
    targets = Targets()
    for raw in paths:
        path = raw
        if not os.path.lexists(path):
            raise SpeedrunError(f"{raw}: no such file or folder")
        if not path.is_dir():  # a file, or a FIFO or link named like one: judged by its name
            if path.name in ANALYSIS_NAMES:
                path = path.parent
            elif path.name == TRACK_FILE:
                targets.add_track(path.parent)
                continue
            else:
                raise SpeedrunError(
                    f"{raw}: give a run folder, a track folder, a runs/ folder, {TRACK_FILE} or {ANALYSIS_NAMES[0]}"
                )
        if is_track_dir(path):
            targets.add_track(path)
        elif is_run_dir(path) or is_track_dir(path.parent):
            targets.add_run(path)
        else:
            subdirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
            track_subdirs = [p for p in subdirs if is_track_dir(p)]
            if track_subdirs:
                for sub in subdirs:
                    if is_track_dir(sub):
                        targets.add_track(sub)
                    else:
                        targets.orphans.append(sub)
            else:
                # An empty or unrelated folder is judged as a run, so the user hears what is missing.
                targets.add_run(path)
    return targets
