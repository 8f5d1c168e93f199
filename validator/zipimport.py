"""Unpack a MaxCLIP-style ZIP submission (editable folder + hyperparameter config) over a constrained track's frozen
reference. Every entry is checked before anything is written; the run folder appears only when all is well.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from .checker import Checker
from .frozen import check_run, is_editable
from .problems import InvalidInput, Problems

MAX_FILES = 2000
MAX_TOTAL_BYTES = 200 * 1024 * 1024
MAX_RATIO = 200  # compressed-to-uncompressed, against zip bombs
OWN_FILES = ("README.md", "speedrun_analysis.json", "speedrun_analysis.yaml")


def _entry_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "uses '..'"
    if info.flag_bits & 0x1:
        return "is encrypted"
    return None


def _common_root(names: list[str]) -> str:
    """A single top folder shared by every entry (how most tools zip a folder), else ''."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        return tops.pop() + "/"
    return ""


def import_zip(zip_path: Path, track_dir: Path, name: str) -> Path:
    import re

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
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(f"{zip_path}: not a readable ZIP file ({exc})") from exc
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if len(infos) > MAX_FILES:
            raise InvalidInput(f"{zip_path}: {len(infos)} files; the limit is {MAX_FILES}")
        total = sum(i.file_size for i in infos)
        packed = sum(i.compress_size for i in infos) or 1
        if total > MAX_TOTAL_BYTES or total / packed > MAX_RATIO:
            raise InvalidInput(f"{zip_path}: unpacks to {total:,} bytes (ratio {total / packed:.0f}:1); the limits are "
                               f"{MAX_TOTAL_BYTES:,} bytes and {MAX_RATIO}:1")
        root = _common_root([i.filename for i in infos])
        planned: list[tuple[zipfile.ZipInfo, str]] = []
        for info in archive.infolist():
            why = _entry_problem(info)
            if why:
                problems.error(f"$entries['{info.filename}']", "zip-unsafe-entry", f"{info.filename} {why}",
                               "zip only regular files with relative paths inside the editable folder")
        for info in infos:
            rel = info.filename[len(root):] if root else info.filename
            if _entry_problem(info):
                continue
            if not (is_editable(rel, constrained) or rel in OWN_FILES):
                problems.error(f"$entries['{info.filename}']", "zip-frozen-file",
                               f"{rel} is not in the editable folder or the config",
                               f"a submission may contain only {', '.join(constrained.editable + [constrained.config])}")
                continue
            planned.append((info, rel))
        if problems.items:
            raise InvalidInput(_summary(zip_path, problems))

        with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=track_dir) as tmp:
            staging = Path(tmp) / name
            shutil.copytree(reference, staging, symlinks=False)
            for info, rel in planned:
                dest = staging / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, length=1 << 20)
            check_run(staging, track_dir, constrained, problems)
            if any(p.severity == "error" for p in problems.items):
                raise InvalidInput(_summary(zip_path, problems))
            staging.rename(target)
    return target


def _summary(zip_path: Path, problems: Problems) -> str:
    lines = [f"{zip_path}: refused, nothing was written"]
    lines += [f"  {p.line()}\n    fix: {p.hint}" for p in problems.items]
    return "\n".join(lines)
