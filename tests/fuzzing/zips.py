"""Hypothesis strategies for hostile MaxCLIP ZIP submissions, made from the real siglip-sigmoid run.

A case zips the run's editable folder and config (maybe under a wrapper folder, maybe with some left out), adds
entries with hostile names ('..', absolute, backslashes, drive letters, duplicates, a file and a folder of one name,
frozen or own files), kinds (folders, symbolic links, entries flagged encrypted) and contents (empty, random,
megabytes of zeros stored or deflated), and may then damage the archive's bytes.
"""

from __future__ import annotations

import functools
import io
import stat
import warnings
import zipfile
from dataclasses import dataclass, field

from hypothesis import strategies as st

from .documents import RUNS

SOURCE = RUNS / "maxclip" / "siglip-sigmoid"


@functools.lru_cache(maxsize=None)
def base_entries() -> tuple[tuple[str, bytes], ...]:
    files = sorted((SOURCE / "editable").rglob("*.py")) + [SOURCE / "config.yaml"]
    return tuple((p.relative_to(SOURCE).as_posix(), p.read_bytes()) for p in files)


HOSTILE_NAMES = ["../evil.py", "/etc/evil.py", "editable/../../evil.py", "editable\\..\\evil.py", "C:/evil.py",
                 "c:evil.py", "editable/x", "editable/x/y", "editable/", "editable//loss.py", "./editable/loss.py",
                 "editable/loss.py/", "editable/loss.py", "config.yaml", "speedrun_analysis.json", "README.md",
                 "PENDING.md", "run.py", "frozen.json", "_reference/run.py", "logs/seed0.log",
                 "editable/__pycache__/x.pyc",
                 "editable/" + "a" * 300 + ".py", "editable/" + "/".join(["d"] * 60) + "/x.py", "editable/\u00e9.py",
                 "editable/ ", "editable/.", "editable/..", "~/x", "editable/x\x00.py", "submission/editable/loss.py"]
SEGMENTS = ["editable", "..", ".", "", "loss.py", "config.yaml", "speedrun_analysis.json", "README.md", "a\\b", "C:",
            "_reference", "logs", "x" * 255]
NAMES = st.one_of(
    st.sampled_from(HOSTILE_NAMES),
    st.lists(st.one_of(st.sampled_from(SEGMENTS), st.text(min_size=1, max_size=12)), min_size=1, max_size=4)
    .map("/".join),
    st.text(min_size=1, max_size=20).map(lambda t: "editable/" + t),
)
CONTENTS = st.one_of(
    st.sampled_from([b"", b"print('hi')\n", b"import os\nos.system('true')\n", b"\x00\xff" * 8]),
    st.binary(max_size=300),
    st.builds(lambda n: b"\x00" * n, st.sampled_from([10**5, 10**6, 3 * 10**6])),
)


@dataclass(frozen=True)
class Extra:
    name: str
    kind: str  # "file", "dir", "symlink" or "encrypted"
    content: bytes = field(repr=False)
    deflate: bool

    def __repr__(self) -> str:
        what = self.content if len(self.content) <= 24 else f"{len(self.content):,} bytes"
        return f"Extra({self.name!r}, {self.kind}, {what!r}, {'deflated' if self.deflate else 'stored'})"

    def _repr_pretty_(self, printer, _cycle) -> None:  # Hypothesis prints a falsifying example with this, not repr()
        printer.text(repr(self))


EXTRAS = st.builds(Extra, NAMES, st.sampled_from(["file", "file", "dir", "symlink", "encrypted"]), CONTENTS,
                   st.booleans())
DAMAGE = st.one_of(
    st.none(),
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("prefix"), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("whole"), st.binary(max_size=300)),
)


def _add(zf: zipfile.ZipFile, extra: Extra) -> None:
    info = zipfile.ZipInfo(extra.name + ("/" if extra.kind == "dir" and not extra.name.endswith("/") else ""))
    info.compress_type = zipfile.ZIP_DEFLATED if extra.deflate else zipfile.ZIP_STORED
    if extra.kind == "symlink":
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, b"/etc/passwd" if not extra.content else extra.content[:64])
        return
    if extra.kind == "dir":
        info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
        zf.writestr(info, b"")
        return
    zf.writestr(info, extra.content)


def _flag_encrypted(raw: bytes, names: set[str]) -> bytes:
    """Set the 'encrypted' bit of these entries in the central directory and their local headers (zipfile clears
    flag_bits when it writes): flagged only, the data is plain, and an importer must refuse it unread."""
    out = bytearray(raw)
    at = out.find(b"PK\x01\x02")
    while at >= 0:
        size = int.from_bytes(out[at + 28:at + 30], "little")
        if out[at + 46:at + 46 + size].decode("utf-8", "replace") in names:
            out[at + 8] |= 0x1
            local = int.from_bytes(out[at + 42:at + 46], "little")
            out[local + 6] |= 0x1
        at = out.find(b"PK\x01\x02", at + 46 + size)
    return bytes(out)


@dataclass
class ZipCase:
    wrapper: str
    dropped: list  # base entries left out
    extras: list
    extras_first: bool
    damage: tuple | None
    content: bytes = field(repr=False)

    def __repr__(self) -> str:
        return (f"ZipCase(wrapper={self.wrapper!r}, dropped={self.dropped!r}, extras={self.extras!r}, "
                f"extras_first={self.extras_first}, damage={self.damage!r}, {len(self.content):,} bytes)")

    def _repr_pretty_(self, printer, _cycle) -> None:  # Hypothesis prints a falsifying example with this, not repr()
        printer.text(repr(self))


def make_zip(wrapper: str, dropped: list, extras: list, extras_first: bool = False, damage: tuple | None = None,
             base: list | None = None) -> ZipCase:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        warnings.simplefilter("ignore")  # "Duplicate name": duplicates are one of the cases
        for extra in extras if extras_first else []:
            _add(zf, extra)
        for name, data in base_entries() if base is None else base:
            if name not in dropped:
                zf.writestr(wrapper + name, data)
        for extra in [] if extras_first else extras:
            _add(zf, extra)
    raw = _flag_encrypted(buf.getvalue(), {e.name for e in extras if e.kind == "encrypted"})
    if damage is not None:
        kind, *args = damage
        at = int(args[0] * len(raw)) if isinstance(args[0], float) else 0
        raw = {"truncate": lambda: raw[:at], "prefix": lambda: args[0] + raw, "whole": lambda: args[0],
               "flip": lambda: raw[:at] + bytes([raw[at] ^ args[1]]) + raw[at + 1:] if at < len(raw) else raw}[kind]()
    return ZipCase(wrapper, dropped, extras, extras_first, damage, raw)


@st.composite
def zips(draw) -> ZipCase:
    names = [n for n, _ in base_entries()]
    return make_zip(draw(st.sampled_from(["", "", "submission/", "a/b/"])),
                    sorted(draw(st.sets(st.sampled_from(names), max_size=len(names)))),
                    draw(st.lists(EXTRAS, max_size=4)), draw(st.booleans()), draw(DAMAGE))
