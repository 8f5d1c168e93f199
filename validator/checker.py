"""Check tracks and runs: load, JSON Schema, pydantic model, then the cross-field rules."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable

from pydantic import BaseModel, ValidationError

from . import frozen, schemas
from .compute.accounting import account
from .compute.sandbox import Limits
from .discover import ANALYSIS_NAMES, TRACK_FILE, Targets, analysis_file, discover, is_track_dir
from .loader import load_document_text
from .models import RunAnalysis, Track
from .problems import InvalidInput, Problems, json_path
from .result import Report, RunResult, TrackResult
from .links import symlink_escapes
from .rules import RunContext, run_checks


def display_path(path: Path) -> str:
    """Paths relative to the working directory when inside it: that is what users typed and what CI shows."""
    text = str(path)
    if not path.is_absolute():
        return text
    cwd = os.getcwd()
    if text.startswith(cwd + os.sep):  # the common case, without relpath's normalising
        return text[len(cwd) + 1:]
    try:
        return os.path.relpath(text, cwd)
    except ValueError:
        return text


def _to_model(model: type[BaseModel], data: object, problems: Problems) -> BaseModel | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = [p for p in err["loc"] if not (isinstance(p, str) and p in {"function-after", "tagged-union"})]
            msg = err["msg"].removeprefix("Value error, ")
            problems.error(json_path(loc), "invalid-model", msg, "see docs/reference/ for the field's rules")
        return None


def load_validated(path: Path, name: str, problems: Problems) -> BaseModel | None:
    """Parse, schema-check and build the model of one document; None if any step fails."""
    before = len(problems.items)
    data, text = load_document_text(path, problems.file, problems)
    if data is None:
        return None
    skip = frozenset(p.path for p in problems.items[before:] if p.rule == "non-finite")
    model = schemas.MODELS[name]
    if not skip:
        # Fast path: the models generate the schema, and strict JSON-mode validation accepts what the schema does
        # (no string-to-number coercion). Only a document that fails pays for jsonschema's path-precise report.
        try:
            return model.model_validate_json(text if text is not None else json.dumps(data), strict=True)
        except ValidationError:
            pass
    if not schemas.validate(name, data, problems, skip) or skip:
        return None
    return _to_model(model, data, problems)


class Checker:
    """Checks runs against their tracks; caches each track so a runs/ tree loads every track.yaml once."""

    def __init__(self, tracks_root: Path | None = None, *, flops: bool = False, limits: Limits | None = None,
                 progress: Callable[[str], None] | None = None, flops_cache: Path | None = None) -> None:
        self.tracks_root = tracks_root
        self.flops = flops
        self.flops_cache = flops_cache
        self.limits = limits or Limits()
        self.progress = progress or (lambda _msg: None)
        self._tracks: dict[Path, TrackResult] = {}

    def check_track(self, track_dir: Path) -> TrackResult:
        known = self._tracks.get(track_dir)  # as given: every run of a big tree asks again, and resolve() is slow
        if known is not None:
            return known
        key = track_dir.resolve()
        if key in self._tracks:
            self._tracks[track_dir] = self._tracks[key]
            return self._tracks[key]
        file = track_dir / TRACK_FILE
        problems = Problems(display_path(file))
        track = load_validated(file, "track", problems)
        if track is not None and track.id != track_dir.name:
            problems.error("$.id", "track-id-mismatch", f"id is {track.id!r} but the folder is {track_dir.name!r}",
                           f"set id to {track_dir.name!r} or rename the folder")
        if track is not None and track.constrained is not None:
            frozen.check_track(track_dir, track.constrained, problems)
        result = TrackResult(track_dir, display_path(track_dir), track.id if track else track_dir.name, track,
                             problems.items)
        self._tracks[key] = self._tracks[track_dir] = result
        return result

    def _track_for(self, run_dir: Path, track_id: str | None) -> tuple[TrackResult | None, bool]:
        """The run's track and whether the run sits inside that track's folder."""
        parent = run_dir.parent
        if is_track_dir(parent):
            return self.check_track(parent), True
        roots = [r for r in (self.tracks_root, parent.parent) if r is not None]
        if track_id:
            for root in roots:
                if is_track_dir(root / track_id):
                    return self.check_track(root / track_id), False
        return None, False

    def check_run(self, run_dir: Path) -> RunResult:
        result = RunResult(run_dir, display_path(run_dir), run_dir.name, None)
        found = [n for n in ANALYSIS_NAMES if os.path.lexists(run_dir / n)]
        if not found:
            track, _ = self._track_for(run_dir, None)
            p = Problems(display_path(run_dir / frozen.PENDING_FILE))
            if not frozen.check_pending(run_dir, track, p):  # a ZIP submission the organizers have yet to train
                p = Problems(display_path(run_dir / ANALYSIS_NAMES[0]))
                p.error("$", "missing-analysis", "the run folder has no speedrun_analysis.json (or .yaml)",
                        "run your run.py: it writes the analysis file; see CONTRIBUTING.md")
            result.track_id = track.track_id if track else None
            result.problems = p.items
            return result
        file = run_dir / found[0]
        problems = Problems(display_path(file))
        if len(found) > 1:
            problems.error("$", "ambiguous-analysis", f"the run folder has {' and '.join(found)}",
                           "keep exactly one analysis file")
        symlinks = symlink_escapes(run_dir, problems)
        analysis = load_validated(file, "run", problems)
        result.analysis = analysis
        track_result, inside = self._track_for(run_dir, analysis.track if analysis else None)
        result.track_id = track_result.track_id if track_result else (analysis.track if analysis else None)
        if analysis is not None:
            if track_result is None:
                problems.error("$.track", "unknown-track", f"track {analysis.track!r} does not exist",
                               "put the run under runs/<track>/ of an existing track (see runs/*/track.yaml)")
            elif track_result.track is None or track_result.errors:
                problems.error("$.track", "track-invalid", f"track {track_result.track_id!r} has errors; "
                               "the run cannot be judged against it", f"fix {track_result.display}/{TRACK_FILE} first")
            else:
                track = track_result.track
                result.track = track
                if inside and analysis.track != track.id:
                    problems.error("$.track", "track-mismatch",
                                   f"track is {analysis.track!r} but the run sits in track folder {track.id!r}",
                                   f"set track to {track.id!r} or move the folder")
                run_checks(RunContext(run_dir, analysis, track, problems, symlinks))
                if track.constrained is not None:
                    frozen.check_run(run_dir, track_result.path, track.constrained, problems)
                # An undeclared import would only fail again in the sandbox: no count, no install for it.
                entry_broken = any(p.path == "$.model.entrypoint" or p.rule == "undeclared-import"
                                   for p in problems.items)
                if self.flops and not entry_broken:
                    self.progress(f"counting FLOPs of {result.display} in the sandbox ...")
                    result.compute = account(run_dir, analysis, track, problems, self.limits,
                                             cache_dir=self.flops_cache, track_dir=track_result.path,
                                             progress=self.progress)
        result.problems = problems.items
        return result

    def load_claim(self, run_dir: Path) -> tuple[Path, RunAnalysis, Track]:
        """A run folder's analysis file, its valid model and its valid track, or InvalidInput saying what is wrong."""
        file = analysis_file(run_dir)
        if file is None:
            raise InvalidInput(f"{run_dir}: no speedrun_analysis.json; nothing is claimed yet (run its run.py first)")
        problems = Problems(display_path(file))
        analysis = load_validated(file, "run", problems)
        if analysis is None:
            first = problems.items[0].line() if problems.items else "unreadable"
            raise InvalidInput(f"{first}; run `speedrun validate {run_dir}` for every problem")
        track_result, _ = self._track_for(run_dir, analysis.track)
        if track_result is None or track_result.track is None or not track_result.valid:
            raise InvalidInput(f"{display_path(file)}::$.track: track {analysis.track!r} not found or invalid "
                               "(pass --tracks, or fix its track.yaml)")
        return file, analysis, track_result.track

    def check_orphan(self, folder: Path) -> TrackResult:
        """A folder under a runs root that holds runs but no track.yaml: a track that is all error."""
        p = Problems(display_path(folder / TRACK_FILE))
        p.error("$", "missing-track-file", f"{display_path(folder)} has no {TRACK_FILE}",
                "add the track's rules or move its runs under an existing track")
        return TrackResult(folder, display_path(folder), folder.name, None, p.items)

    def check_targets(self, targets: Targets) -> Report:
        report = Report()
        for track_dir in targets.tracks:
            report.tracks.append(self.check_track(track_dir))
        for orphan in targets.orphans:
            report.tracks.append(self.check_orphan(orphan))
        for run_dir in targets.runs:
            report.runs.append(self.check_run(run_dir))
        return report

    def check_paths(self, paths: Iterable[Path]) -> Report:
        return self.check_targets(discover(list(paths)))
