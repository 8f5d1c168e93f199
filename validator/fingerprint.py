"""The content hash that binds a reproduction record to the exact run folder it reproduced.

`content_sha256(run_dir)`: sha256 over every file of the folder except `reproductions/**` (the records themselves)
and Python's `__pycache__/` byte code, in sorted order of their relative POSIX paths, each contributing
`<path>\\0<sha256 of its bytes>\\n`; a symbolic link contributes `<path>\\0link:<its target>\\n` instead of being
followed. Any change to any other file (script, claim, README, logs, config) changes the hash, so a record copied to
another run or kept after the run changed no longer matches.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

EXCLUDED_DIRS = ("reproductions",)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_entries(run_dir: Path) -> list[tuple[str, str]]:
    """(relative POSIX path, 'sha256 of bytes' or 'link:<target>') of every file the hash covers, sorted."""
    root = os.fspath(run_dir)
    out: list[tuple[str, str]] = []
    for folder, dirs, files in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        top = rel_folder == "."
        keep = []
        for d in dirs:
            full = os.path.join(folder, d)
            if d == "__pycache__" or (top and d in EXCLUDED_DIRS):
                continue
            if os.path.islink(full):  # a link to a folder is not walked into: it is recorded as a link
                files.append(d)
                continue
            keep.append(d)
        dirs[:] = keep
        for name in files:
            full = os.path.join(folder, name)
            rel = name if top else f"{rel_folder}/{name}".replace(os.sep, "/")
            if os.path.islink(full):
                out.append((rel, "link:" + os.readlink(full)))
            elif os.path.isfile(full):
                out.append((rel, sha256_file(full)))
    return sorted(out)


def content_sha256(run_dir: Path) -> str:
    """The hash of the run folder's content (see the module's docstring), as 64 hex characters."""
    h = hashlib.sha256()
    for rel, digest in content_entries(run_dir):
        h.update(f"{rel}\0{digest}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()
