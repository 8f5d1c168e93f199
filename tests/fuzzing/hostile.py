"""The hostile inputs issue 11 names, as fixed cases run through the same targets and properties as the generated
ones: special files where a document should be, documents that are bombs or past Python's limits, and ZIP layouts."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from .documents import RUNS, Base, DocCase
from .tokens import HUGE_INT, JSON_TOKENS, YAML_TOKENS, bomb
from .zips import Extra, ZipCase, make_zip

RUN = Base("run", "digits-classification/ast-10pct/speedrun_analysis.json", None)
TRACK = Base("track", "digits-reconstruction/track.yaml", None)


@dataclass
class FsCase:
    """A special file (link, FIFO, folder) where a run's analysis file or a track's track.yaml should be."""
    title: str
    base: Base
    name: str
    make: Callable[[Path], None] = field(repr=False)

    def __repr__(self) -> str:
        return f"FsCase({self.title!r})"

    def _repr_pretty_(self, printer, _cycle) -> None:  # Hypothesis prints a falsifying example with this, not repr()
        printer.text(repr(self))


def _link(to: str) -> Callable[[Path], None]:
    return lambda p: p.symlink_to(to)


FS_CASES = [
    FsCase("analysis file is a symlink to /dev/zero", RUN, "speedrun_analysis.json", _link("/dev/zero")),
    FsCase("analysis file is a FIFO", RUN, "speedrun_analysis.json", os.mkfifo),
    FsCase("analysis file is a symlink to /etc/passwd (.json)", RUN, "speedrun_analysis.json", _link("/etc/passwd")),
    FsCase("analysis file is a symlink to /etc/passwd (.yaml)", RUN, "speedrun_analysis.yaml", _link("/etc/passwd")),
    FsCase("analysis file is a dangling symlink", RUN, "speedrun_analysis.json", _link("no-such-file.json")),
    FsCase("analysis file is a folder", RUN, "speedrun_analysis.json", Path.mkdir),
    FsCase("track.yaml is a folder", TRACK, "track.yaml", Path.mkdir),
    FsCase("track.yaml is a FIFO", TRACK, "track.yaml", os.mkfifo),
    FsCase("track.yaml is a dangling symlink", TRACK, "track.yaml", _link("no-such-track.yaml")),
    FsCase("track.yaml is a symlink to /dev/zero", TRACK, "track.yaml", _link("/dev/zero")),
]

ALIAS_BOMB = (b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
              + b"".join(f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n".encode() for p, c in zip("abcdefgh", "bcdefghi")))


def _run_doc(**changes) -> dict:
    data = json.loads((RUNS / RUN.rel).read_text(encoding="utf-8"))
    return {**data, **changes}


def _track_doc(**changes) -> dict:
    data = yaml.safe_load((RUNS / TRACK.rel).read_text(encoding="utf-8"))
    return {**data, **changes}


def _case(title: str, base: Base, name: str, content: bytes) -> DocCase:
    return DocCase(base, [("hostile", title)], "yaml" if name.endswith((".yaml", ".yml")) else "json", name, [],
                   content)


def document_cases() -> list[DocCase]:
    nested = json.dumps(_run_doc(notes="fzdeep")).replace('"fzdeep"', "[" * 1000 + "]" * 1000)
    huge = json.dumps(_run_doc(seeds="fzhuge")).replace('"fzhuge"', f"[{HUGE_INT}]")
    ranking = _track_doc()["ranking"]
    listed = {**ranking["primary"], "kind": [ranking["primary"]["kind"]]}
    return [
        _case(f"{len(ALIAS_BOMB)}-byte YAML alias bomb (analysis)", RUN, "speedrun_analysis.yaml", ALIAS_BOMB),
        _case(f"{len(ALIAS_BOMB)}-byte YAML alias bomb (track.yaml)", TRACK, "track.yaml", ALIAS_BOMB),
        _case("track with a 100,000-entry checkpoints.samples list", TRACK, "track.yaml",
              yaml.safe_dump(_track_doc(checkpoints={"samples": list(range(1, 100_001))})).encode()),
        _case("track with a 5,000-entry checkpoints.samples list (within the size limit)", TRACK, "track.yaml",
              yaml.safe_dump(_track_doc(checkpoints={"samples": list(range(1, 5001))}), default_flow_style=True,
                             width=10**6).encode()),
        _case("checkpoints.dataset_multiples: [1e308]", TRACK, "track.yaml",
              yaml.safe_dump(_track_doc(checkpoints={"dataset_multiples": ["fz"]})).replace("fz", "1e308").encode()),
        _case("JSON nested 1,000 deep", RUN, "speedrun_analysis.json", nested.encode()),
        _case("a 4,301-digit integer (JSON)", RUN, "speedrun_analysis.json", huge.encode()),
        _case("a 4,301-digit integer (YAML)", RUN, "speedrun_analysis.yaml", huge.encode()),
        _case("YAML !!binary", RUN, "speedrun_analysis.yaml",
              yaml.safe_dump(_run_doc(notes="fz")).replace("notes: fz", "notes: !!binary aGVsbG8=").encode()),
        _case("YAML !!set", RUN, "speedrun_analysis.yaml",
              yaml.safe_dump(_run_doc(seeds="fz"), width=4096).replace("seeds: fz", "seeds: !!set {0, 1, 2}").encode()),
        _case("YAML date that does not exist (2024-02-30)", RUN, "speedrun_analysis.yaml",
              yaml.safe_dump(_run_doc(date="fz")).replace("date: fz", "date: 2024-02-30").encode()),
        *[_case(f"YAML core tag on a value it cannot hold ({tag})", RUN, "speedrun_analysis.yaml",
                yaml.safe_dump(_run_doc(notes="fz")).replace("notes: fz", f"notes: {tag}").encode())
          for tag in ("!!bool maybe", "!!float ''", "!!map [1]")],
        _case("a list where the ranking rule's kind should be", TRACK, "track.yaml",
              yaml.safe_dump(_track_doc(ranking={**ranking, "primary": listed})).encode()),
        _case("a lone surrogate escape (\\ud800) in a text field", RUN, "speedrun_analysis.json",
              json.dumps(_run_doc(notes="x\ud800y")).encode()),
        _case("CSV formula injection in team and name", RUN, "speedrun_analysis.json",
              json.dumps(_run_doc(team="=HYPERLINK(\"http://x\")", description="@SUM(A1)")).encode()),
    ]


def token_cases() -> list[DocCase]:
    """Each raw token the generator splices in, alone, as a run's `notes` (a free-text field): what catches it."""
    out = []
    for form, tokens in (("json", JSON_TOKENS + ["[" * 40 + "]" * 40]),
                         ("yaml", YAML_TOKENS + ["[" * 40 + "]" * 40, bomb(0, 9, 9), bomb(0, 3, 3)])):
        for token in tokens:
            text = (json.dumps(_run_doc(notes="fz"), indent=1) if form == "json"
                    else yaml.safe_dump(_run_doc(notes="fz"), width=4096))
            text = text.replace('"notes": "fz"', f'"notes": {token}').replace("notes: fz", f"notes: {token}")
            shown = token if len(token) <= 40 else f"{token[:30]}... ({len(token):,} chars)"
            out.append(_case(f"notes: {shown}", RUN, f"speedrun_analysis.{form}", text.encode()))
    return out


def zip_cases() -> list[tuple[str, ZipCase, int | None]]:
    """(title, case, the exit status it must have where the properties alone do not settle it, else None)."""
    analysis = (RUNS / "maxclip" / "siglip-sigmoid" / "speedrun_analysis.json").read_bytes()

    def extra(name: str, content: bytes = b"x = 1\n", kind: str = "file", deflate: bool = False) -> Extra:
        return Extra(name, kind, content, deflate)

    return [
        ("ZIP with only editable/... entries", make_zip("", ["config.yaml"], []), 0),
        ("ZIP with editable/x and editable/x/y", make_zip("", [], [extra("editable/x"), extra("editable/x/y")]), 1),
        ("ZIP with editable/x/y then editable/x", make_zip("", [], [extra("editable/x/y"), extra("editable/x")]), 1),
        ("ZIP carrying its own speedrun_analysis.json",
         make_zip("submission/", [], [extra("submission/speedrun_analysis.json", analysis, deflate=True)]), None),
        ("ZIP with a symbolic link entry", make_zip("", [], [extra("editable/link.py", b"/etc/passwd", "symlink")]), 1),
        ("ZIP with a '..' entry", make_zip("", [], [extra("editable/../../evil.py")]), 1),
        ("ZIP with an absolute entry", make_zip("", [], [extra("/tmp/evil.py")]), 1),
        ("ZIP with a duplicate entry", make_zip("", [], [extra("editable/loss.py")]), None),
        ("ZIP bomb (3 MB of zeros, deflated)", make_zip("", [], [extra("editable/z.py", b"\0" * 3 * 10**6,
                                                                        deflate=True)]), 1),
        ("ZIP with an entry flagged encrypted", make_zip("", [], [extra("editable/secret.py", kind="encrypted")]), 1),
        ("ZIP with a 300-character entry name", make_zip("", [], [extra("editable/" + "a" * 300 + ".py")]), 1),
        ("ZIP with an entry whose name is empty", make_zip("", [], [extra("")]), 1),
        ("not a ZIP at all", make_zip("", [], [], damage=("whole", b"PK\x03\x04 garbage")), 1),
    ]


def expected_exit(out, expect: int | None) -> list[str]:
    if expect is None or out.status != "done" or out.value["exit"] == expect:
        return []
    return [f"exit {out.value['exit']}, not {expect}: {(out.value['stderr'] or out.value['stdout'])[:400]}"]
