"""Which entries of a ZIP submission may be unpacked, and where. Everything here judges the archive's central
directory only, so a refusal happens before a single byte is written; `copy_bounded` then keeps the limits while
the entries are streamed out, whatever the directory declared.
"""

from __future__ import annotations

import stat
import unicodedata
import zipfile
from pathlib import Path

from .frozen import RUN_OWN, RUN_OWN_DIRS, is_editable
from .models.track import Constrained
from .problems import Problems

MAX_FILES = 2000
MAX_TOTAL_BYTES = 200 * 1024 * 1024
MAX_RATIO = 200  # uncompressed to compressed, against zip bombs
# zipfile bounds each read's output for stored and deflated entries only; bzip2 and lzma inflate a whole chunk at once.
METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
CHUNK = 64 * 1024
ONLY = "a submission is the editable folder and the config"


class Overflow(Exception):
    """An entry streamed past the bytes allowed for it."""


def where(name: str) -> str:
    return f"$entries[{name!r}]"


def is_dir(info: zipfile.ZipInfo) -> bool:
    return info.filename.endswith("/")  # ZipInfo.is_dir() indexes the name, and a hostile entry's may be empty


def _unsafe(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if not name.strip("/"):
        return "has an empty name"
    # Past these the file system refuses the path while unpacking (ENAMETOOLONG), after the checks said yes.
    if len(name.encode("utf-8", "surrogateescape")) > 1024 or any(
            len(part.encode("utf-8", "surrogateescape")) > 255 for part in name.split("/")):
        return "has a name too long for a file system (255 bytes a part, 1,024 in all)"
    path = name[:-1] if is_dir(info) else name
    parts = path.split("/")
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "has a control character in its name"
    if ".." in parts:
        return "uses '..'"
    if "." in parts or "" in parts:
        return "is not a plain relative path (a '.' or an empty folder name in it)"
    if info.flag_bits & 0x1:
        return "is encrypted"
    if not is_dir(info) and info.compress_type not in METHODS:
        return f"uses compression method {info.compress_type}; only stored and deflated entries are unpacked"
    return None


def check_limits(infos: list[zipfile.ZipInfo], problems: Problems) -> None:
    """Count and sizes as the central directory declares them; the copy enforces them again while streaming."""
    files = [i for i in infos if not is_dir(i)]
    if len(files) > MAX_FILES:
        problems.error("$entries", "zip-too-many-files", f"{len(files):,} files; the limit is {MAX_FILES:,}",
                       f"{ONLY}: leave data, checkpoints and caches out")
    total = sum(i.file_size for i in files)
    packed = sum(i.compress_size for i in files) or 1
    if total > MAX_TOTAL_BYTES:
        problems.error("$entries", "zip-too-large", f"unpacks to {total:,} bytes; the limit is {MAX_TOTAL_BYTES:,}",
                       f"{ONLY}: leave data, checkpoints and logs out")
    elif total / packed > MAX_RATIO:
        problems.error("$entries", "zip-ratio-too-high",
                       f"unpacks to {total:,} bytes from {packed:,} (ratio {total / packed:.0f}:1); the limit is "
                       f"{MAX_RATIO}:1", "zip source files as they are; a ratio this high is a zip bomb's")


def _wrapper(names: list[str], constrained: Constrained) -> str:
    """The top folder that every entry sits in when a tool zipped the submission's folder, else ''. A ZIP of
    `editable/` alone also shares one top folder, but its entries are already the run's paths: nothing to strip."""
    if not names or all(is_editable(n, constrained) for n in names):
        return ""
    tops = {n.split("/", 1)[0] for n in names}
    return tops.pop() + "/" if len(tops) == 1 and all("/" in n for n in names) else ""


def plan(infos: list[zipfile.ZipInfo], constrained: Constrained, reference: Path,
         problems: Problems) -> list[tuple[zipfile.ZipInfo, str]]:
    """Each file entry that may be unpacked, with its path in the run folder; every refusal goes to `problems`."""
    safe = []
    for info in infos:
        why = _unsafe(info)
        if why:
            problems.error(where(info.filename), "zip-unsafe-entry", f"{info.filename!r} {why}",
                           "zip only regular files, with plain relative paths, stored or deflated, unencrypted")
        else:
            safe.append(info)
    root = _wrapper([i.filename for i in safe if not is_dir(i)], constrained)
    entries = [(i, i.filename[len(root):]) for i in safe if i.filename.startswith(root)]
    entries = [(i, rel.rstrip("/")) for i, rel in entries if rel.rstrip("/")]
    planned = []
    allowed = ", ".join(constrained.editable + [constrained.config])
    for info, rel in entries:
        if is_dir(info):
            continue
        if rel in RUN_OWN or (rel.split("/", 1)[0] in RUN_OWN_DIRS and "/" in rel):
            problems.error(where(info.filename), "zip-claims-results", f"{rel} belongs to the run's record (results, "
                           "logs, reproductions, write-up), which organizers write when they train it",
                           f"{ONLY}; leave results out: they come from the organizers' training")
        elif not is_editable(rel, constrained):
            problems.error(where(info.filename), "zip-frozen-file",
                           f"{rel} is not in the editable folder or the config", f"a submission may contain only "
                           f"{allowed}")
        else:
            planned.append((info, rel))
    _conflicts(entries, reference, problems)
    return planned


def _key(rel: str) -> str:
    """One path as a case-insensitive, normalising filesystem (macOS, Windows) sees it."""
    return unicodedata.normalize("NFC", rel).casefold()


def _conflicts(entries: list[tuple[zipfile.ZipInfo, str]], reference: Path, problems: Problems) -> None:
    """Two entries for one path, a file where another entry needs a folder, or a clash with the reference."""
    ours = {_key(p.relative_to(reference).as_posix()): p for p in reference.rglob("*")}
    files: dict[str, str] = {}
    folders: dict[str, str] = {}
    for info, rel in entries:
        key = _key(rel)
        parts = key.split("/")
        for i in range(1, len(parts)):
            folders.setdefault("/".join(parts[:i]), info.filename)
        if is_dir(info):
            folders.setdefault(key, info.filename)
            continue
        if key in files:
            clash = f"names the same file as {files[key]!r}" + ("" if files[key] == info.filename else
                                                                 " on a case-insensitive or normalising filesystem")
            problems.error(where(info.filename), "zip-entry-conflict", f"{info.filename!r} {clash}",
                           "keep one entry per file, each name spelled once")
            continue
        files[key] = info.filename
        theirs = ours.get(key)
        if theirs is not None and (theirs.is_dir() or theirs.relative_to(reference).as_posix() != rel):
            what = "a folder" if theirs.is_dir() else f"{theirs.relative_to(reference).as_posix()}, spelled otherwise"
            problems.error(where(info.filename), "zip-entry-conflict", f"{info.filename!r} names {what} in the "
                           "reference", "use the reference's names exactly")
        for i in range(1, len(parts)):
            above = ours.get("/".join(parts[:i]))
            if above is not None and not above.is_dir():
                problems.error(where(info.filename), "zip-entry-conflict", f"{info.filename!r} needs a folder where "
                               f"the reference has the file {above.relative_to(reference).as_posix()}",
                               "use the reference's names exactly")
                break
    for key, name in files.items():
        if key in folders:
            problems.error(where(name), "zip-entry-conflict", f"{name!r} is a file, and {folders[key]!r} needs a "
                           "folder of that name", "keep either the file or the folder")


def copy_bounded(src, out, limit: int) -> int:
    """zipfile stops at the declared size today; counting here keeps the limit ours rather than the library's."""
    copied = 0
    while chunk := src.read(CHUNK):
        copied += len(chunk)
        if copied > limit:
            raise Overflow(limit)
        out.write(chunk)
    return copied
