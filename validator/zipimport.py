"""Unpack a MaxCLIP-style ZIP submission (editable folder + hyperparameter config) over a constrained track's frozen
reference. Every entry is judged before anything is written (validator/zipentries.py); the run folder appears only
when all is well, and it is pending: the ZIP brings code, never results, and organizers train it.
"""

from __future__ import annotations

import errno
import re
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

from . import zipentries
from .checker import Checker
from .fingerprint import sha256_file
from .frozen import PENDING_FILE, check_run
from .problems import InvalidInput, Problems, SpeedrunError

# What a damaged or hostile archive raises while it is read; OSError for seeks to offsets the file does not have.
READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError)
# ... but these say the machine cannot write, which no fix to the ZIP would change.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)
ZIP_IT = "zip the editable folder and the config again, e.g. `zip -r sub.zip editable config.yaml`"


def import_zip(zip_path: Path, track_dir: Path, name: str) -> Path:
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", name):
        raise InvalidInput(f"--name {name!r}: use lowercase letters, digits, '.', '_' or '-' (at most 64)")
    track_result = Checker().check_track(track_dir)
    if track_result.track is None:
        raise InvalidInput(f"{track_dir}/track.yaml is missing or invalid")
    constrained = track_result.track.constrained
    if constrained is None:
        raise InvalidInput(f"{track_dir}/track.yaml::$.constrained: ZIP submissions need a constrained track")
    reference = track_dir / constrained.reference
    target = track_dir / name
    if target.exists():
        raise InvalidInput(f"{target} already exists; choose another --name")

    problems = Problems(str(zip_path))
    try:
        archive = zipfile.ZipFile(zip_path)
        infos = archive.infolist()
    except READ_ERRORS as exc:
        problems.error("$", "zip-unreadable", f"not a readable ZIP file ({exc})", ZIP_IT)
        raise InvalidInput(_summary(zip_path, problems)) from None
    with archive:
        zipentries.check_limits(infos, problems)
        if problems.items:  # an archive past the limits is not worth judging entry by entry
            raise InvalidInput(_summary(zip_path, problems))
        planned = zipentries.plan(infos, constrained, reference, problems)
        if problems.items:
            raise InvalidInput(_summary(zip_path, problems))

        with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=track_dir) as tmp:
            staging = Path(tmp) / name
            shutil.copytree(reference, staging, symlinks=False)
            _unpack(archive, planned, staging, problems)
            if problems.items:
                raise InvalidInput(_summary(zip_path, problems))
            (staging / PENDING_FILE).write_text(_pending_note(zip_path, track_dir.name), encoding="utf-8")
            check_run(staging, track_dir, constrained, problems)
            if any(p.severity == "error" for p in problems.items):
                raise InvalidInput(_summary(zip_path, problems))
            staging.rename(target)
    return target


def _unpack(archive: zipfile.ZipFile, planned: list[tuple[zipfile.ZipInfo, str]], staging: Path,
            problems: Problems) -> None:
    """Stream each entry out, counting bytes against its declared size and the archive's total: the central
    directory that the limits were checked on is the sender's word, not a fact."""
    budget = zipentries.MAX_TOTAL_BYTES
    for info, rel in planned:
        dest = staging / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        limit = min(info.file_size, budget)
        with open(dest, "wb") as out:
            try:
                with archive.open(info) as src:
                    budget -= zipentries.copy_bounded(src, out, limit)
            except zipentries.Overflow:
                problems.error(zipentries.where(info.filename), "zip-too-large",
                               f"{info.filename!r} unpacks past {limit:,} bytes (declared {info.file_size:,})",
                               f"{ZIP_IT}; an entry larger than it declares is a zip bomb's")
            except READ_ERRORS as exc:
                if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
                    raise SpeedrunError(f"cannot write {dest}: {exc.strerror}") from None
                problems.error(zipentries.where(info.filename), "zip-unreadable",
                               f"{info.filename!r} cannot be unpacked ({exc})", ZIP_IT)
        if problems.items:
            return


def _pending_note(zip_path: Path, track: str) -> str:
    digest = sha256_file(zip_path)
    return (f"# Pending: not trained yet\n\n"
            f"Unpacked by `speedrun import-zip` from `{zip_path.name}` (sha256 `{digest}`) over the frozen reference "
            f"of track `{track}`.\nIt holds code and a config, no results: `speedrun validate` reports it as pending "
            f"and the leaderboard lists it without a rank.\n\n"
            f"Organizers train it here with the frozen `python run.py`, which writes `speedrun_analysis.json` and "
            f"`logs/`; delete this file in the commit that adds them.\n")


def _summary(zip_path: Path, problems: Problems) -> str:
    lines = [f"{zip_path}: refused, nothing was written"]
    lines += [f"  {p.line()}\n    fix: {p.hint}" for p in problems.items]
    return "\n".join(lines)
