"""Read a submitted file only when it is a regular file inside its folder, with the size cap checked before reading.

A run folder comes from a stranger: its analysis file may be a link to /etc/passwd (whose text would then be
quoted in a public comment), to /dev/zero (read without end), a FIFO (open() waits for a writer forever) or a
folder. Each gets a problem instead, and nothing of a refused file is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .problems import Problems


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def refusal(path: Path, root: Path) -> tuple[str, str, str] | None:
    """(rule, message, hint) when `path` must not be read, else None. `root` is the folder it must stay in."""
    name = path.name
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "file-missing", f"{name} does not exist", "add the file or fix the path"
    except OSError as exc:
        return "unreadable", f"cannot read {name}: {exc.strerror or exc}", "check the file's permissions"
    if stat.S_ISLNK(st.st_mode):
        real = os.path.realpath(path)
        if not _inside(real, os.path.realpath(root)):
            return ("path-escape", f"{name} is a link to a file outside its folder; it was not read",
                    "replace the link by the file itself")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return "broken-link", f"{name} is a symbolic link to a file that does not exist", \
                "replace the link by the file itself"
        except OSError as exc:  # a loop of links, say
            return "unreadable", f"cannot read {name}: {exc.strerror or exc}", "replace the link by the file itself"
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device")
        return "not-regular-file", f"{name} is {kind}, not a regular file; it was not read", \
            f"make {name} a plain file"
    return None


def read_capped(path: Path, root: Path, limit: int, problems: Problems, hint: str = "") -> bytes | None:
    """The bytes of `path`, or None with one problem recorded (at `$`): refused as above, or larger than `limit`.

    The file is opened non-blocking and checked again on its descriptor, so a file swapped for a FIFO between the
    check and the open cannot stall the reader either."""
    why = refusal(path, root)
    if why:
        problems.error("$", *why)
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        problems.error("$", "unreadable", f"cannot read file: {exc.strerror or exc}", "check the file's permissions")
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            problems.error("$", "not-regular-file", f"{path.name} is not a regular file; it was not read",
                           f"make {path.name} a plain file")
            return None
        if st.st_size > limit:
            problems.error("$", "file-too-large", f"file is {st.st_size:,} bytes; the limit is {limit:,}",
                           hint or "make the file smaller")
            return None
        raw = fh.read(limit + 1)  # a file still growing is cut here, not read on
    if len(raw) > limit:
        problems.error("$", "file-too-large", f"file is over {limit:,} bytes, the limit", hint or "make the file smaller")
        return None
    return raw
