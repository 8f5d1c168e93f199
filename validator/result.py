"""Outcome of checking one run or one track file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .models import RunAnalysis, Track
from .problems import Problem


@dataclass
class TrackResult:
    path: Path
    display: str
    track_id: str
    track: Track | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def valid(self) -> bool:
        return self.track is not None and not self.errors


@dataclass
class RunResult:
    path: Path
    display: str
    name: str
    track_id: str | None
    analysis: RunAnalysis | None = None
    track: Track | None = None
    problems: list[Problem] = field(default_factory=list)
    # Filled by compute accounting (issue 3) and reproduction; plain dicts so reporters stay format-agnostic.
    compute: dict | None = None

    @property
    def errors(self) -> list[Problem]:
        return sorted(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> list[Problem]:
        return sorted(p for p in self.problems if p.severity == "warning")

    @property
    def valid(self) -> bool:
        return self.analysis is not None and not self.errors

    @property
    def pending(self) -> bool:
        """Code without results yet (a ZIP submission organizers have still to train): neither valid nor invalid."""
        return self.analysis is None and not self.errors and any(p.rule == "zip-pending" for p in self.problems)


@dataclass
class Report:
    runs: list[RunResult] = field(default_factory=list)
    tracks: list[TrackResult] = field(default_factory=list)
    # Pull-request policy problems (speedrun validate --changed), about the change rather than one run.
    policy: list[Problem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return (all(r.valid or r.pending for r in self.runs) and all(t.valid for t in self.tracks)
                and not any(p.severity == "error" for p in self.policy))
