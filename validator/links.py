"""Symbolic links inside a run folder: every one is listed, and one that leads outside the folder is refused.

A run folder may hold links between its own files; one that leaves the folder could make the validator read (and
echo) a file of the machine it runs on, so it is an error before anything is read.
"""

from __future__ import annotations

import os
from pathlib import Path

from .problems import Problems


def symlink_escapes(run_dir: Path, problems: Problems) -> frozenset[str]:
    """Report any symlink in the run folder that points outside it; return every symlink's relative path."""
    root: Path | None = None
    links: list[str] = []
    pending, subfolders = [(str(run_dir), "")], []
    while pending:
        folder, prefix = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            # DirEntry answers from the directory listing itself: no stat per file on the common, link-free path.
            if entry.is_symlink():
                links.append(rel)
                root = root or Path(os.path.realpath(run_dir))
                real = Path(os.path.realpath(entry.path))
                if real != root and root not in real.parents:
                    problems.error(f"$files['{rel}']", "path-escape", f"symlink {rel!r} points outside the run folder",
                                   "replace the link by the file itself")
            elif entry.is_dir(follow_symlinks=False):
                subfolders.append((entry.path, f"{rel}/"))
        pending += reversed(subfolders)  # depth first, in name order
        subfolders = []
    return frozenset(links)
