"""Hypothesis strategies for hostile analysis and track files, made by mutating the real ones under runs/.

A case starts from a bundled document, edits its parsed tree (delete, duplicate or rename keys, swap types, hostile
numbers, deep nesting, long or odd text, YAML tags, anchors and merge keys, spliced in as raw tokens), writes it as
JSON or YAML, then may damage the bytes (truncation, random bytes, BOMs, UTF-16, CRLF, padding past the size limit).
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hypothesis import strategies as st

from .tokens import JSON_TOKENS, NUMBERS, STRINGS, WHOLE, YAML_TOKENS, bomb

RUNS = Path(__file__).resolve().parents[2] / "runs"
LIMIT = 5 * 1024 * 1024  # validator.loader.MAX_DOCUMENT_BYTES, restated so a change there is noticed here


@dataclass(frozen=True)
class Base:
    kind: str  # "run" or "track"
    rel: str  # path under runs/
    data: object = field(repr=False, compare=False)

    def _repr_pretty_(self, printer, _cycle) -> None:  # Hypothesis prints a falsifying example with this, not repr()
        printer.text(repr(self))


@functools.lru_cache(maxsize=None)
def bases() -> tuple[Base, ...]:
    found = [Base("run", p.relative_to(RUNS).as_posix(), json.loads(p.read_text(encoding="utf-8")))
             for p in sorted(RUNS.glob("*/*/speedrun_analysis.json"))]
    found += [Base("track", p.relative_to(RUNS).as_posix(), yaml.safe_load(p.read_text(encoding="utf-8")))
              for p in sorted(RUNS.glob("*/track.yaml"))]
    return tuple(found)


class Dup(dict):
    """A mapping that serialises one of its keys twice (both json and the YAML dumper go through items())."""

    def __init__(self, data: dict, extra: list) -> None:
        super().__init__(data)
        self.extra = extra

    def items(self):
        return list(super().items()) + self.extra


class _Dumper(yaml.CSafeDumper):
    pass


_Dumper.add_representer(Dup, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items()))


def _tokens(form: str, tag: int):
    nest = st.integers(1, 3000).map(lambda d: "[" * d + "]" * d)
    nest_maps = st.integers(1, 1500).map(lambda d: '{"a": ' * d + "1" + "}" * d)
    pool = [st.sampled_from(JSON_TOKENS), nest, nest_maps]
    if form == "yaml":
        pool += [st.sampled_from(YAML_TOKENS), st.builds(bomb, st.just(tag), st.integers(2, 9), st.integers(2, 9))]
    return st.one_of(pool)


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40),
                    st.sampled_from(NUMBERS), st.sampled_from(STRINGS))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=5), st.dictionaries(st.text(max_size=10), SCALARS, max_size=5),
                   st.builds(lambda c, n: c * n, st.sampled_from(["x", "\u00e9", "\U0001f600", "\n", "a b "]),
                             st.integers(1000, 300_000)))


def _paths(node, prefix=()):
    yield prefix
    children = dict.items(node) if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from _paths(child, (*prefix, key))


def _edit(draw, box: list, form: str, raws: list) -> tuple:
    path = draw(st.sampled_from(list(_paths(box[0]))))
    chain = [(box, 0)]  # (container, key) from the box holding the root down to the chosen node
    for step in path:
        chain.append((chain[-1][0][chain[-1][1]], step))
    parent, key = chain[-1]
    node = parent[key]
    how = draw(st.sampled_from(["delete", "replace", "number", "raw", "wrap", "repeat", "rename", "duplicate-key",
                                "to-list", "to-string"]))
    if how == "delete" and parent is not box:
        parent.pop(key)
        return (how, path)
    if how == "rename" and isinstance(parent, dict):
        new = draw(st.one_of(st.sampled_from([str(key).upper(), f"{key}_", f" {key}", ""]), st.text(max_size=12)))
        parent[new] = parent.pop(key)
        return (how, path, new)
    if how == "duplicate-key" and isinstance(parent, dict):
        extra = (key, draw(VALUES))
        if isinstance(parent, Dup):
            parent.extra.append(extra)
        else:
            holder, at = chain[-2]
            holder[at] = Dup(parent, [extra])
        return (how, path, extra[1] if len(repr(extra[1])) <= 80 else type(extra[1]).__name__)
    if how == "repeat" and isinstance(node, list) and node:
        times = draw(st.integers(2, 100_000 if not isinstance(node[0], (dict, list)) else 300))
        parent[key] = (node * (times // len(node) + 1))[:times]
        return (how, path, times)
    if how == "raw":
        raws.append(draw(_tokens(form, len(raws))))
        parent[key] = f"fzraw{len(raws) - 1}fz"
        return (how, path, raws[-1] if len(raws[-1]) <= 80 else f"{raws[-1][:60]}... ({len(raws[-1])} chars)")
    how = how if how in ("number", "wrap", "to-list", "to-string") else "replace"  # what did not apply here
    value = {"number": lambda: draw(st.sampled_from(NUMBERS)), "wrap": lambda: [node] * draw(st.integers(1, 3)),
             "to-list": lambda: list(node.values()) if isinstance(node, dict) else [node],
             "to-string": lambda: json.dumps(node, default=str)[:200]}.get(how, lambda: draw(VALUES))()
    parent[key] = value
    shown = value if len(repr(value)) <= 80 else f"{type(value).__name__} of {len(value)}"
    return (how, path, shown)


def serialise(data, form: str, raws: list[str], style: int) -> bytes:
    try:
        if form == "json":
            text = json.dumps(data, indent=[None, 2, 1][style % 3], ensure_ascii=style > 2)
        else:
            text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=style > 2,
                             default_flow_style=None if style == 1 else False, width=[80, 4096, 20][style % 3])
    except (ValueError, yaml.YAMLError):  # a lone surrogate, say: the JSON escapes it
        text = json.dumps(data)
    for i, raw in enumerate(raws):
        for quoted in (f'"fzraw{i}fz"', f"'fzraw{i}fz'", f"fzraw{i}fz"):
            text = text.replace(quoted, raw)
    return text.encode("utf-8", "surrogatepass")


BYTE_EDITS = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("prefix"), st.sampled_from([b"\xef\xbb\xbf", b"\xef\xbb\xbf\xef\xbb\xbf", b"\xff\xfe",
                                                  b"\xfe\xff", b"%YAML 1.1\n---\n", b"%YAML 9.9\n---\n"])),
    st.tuples(st.just("utf-16")), st.tuples(st.just("crlf")), st.tuples(st.just("tabs")),
    st.tuples(st.just("pad"), st.sampled_from([LIMIT - 64, LIMIT + 1])),
    st.tuples(st.just("whole"), st.one_of(st.sampled_from(WHOLE), st.binary(max_size=200))),
)


def damage(raw: bytes, edit: tuple) -> bytes:
    kind, *args = edit
    at = int(args[0] * len(raw)) if args and isinstance(args[0], float) else 0
    if kind == "truncate":
        return raw[:at]
    if kind == "insert":
        return raw[:at] + args[1] + raw[at:]
    if kind == "flip":
        return raw[:at] + bytes([raw[at] ^ args[1]]) + raw[at + 1:] if at < len(raw) else raw
    if kind == "prefix":
        return args[0] + raw
    if kind == "utf-16":
        return raw.decode("utf-8", "replace").encode("utf-16", "surrogatepass")
    if kind == "crlf":
        return raw.replace(b"\n", b"\r\n")
    if kind == "tabs":
        return raw.replace(b"\n  ", b"\n\t")
    if kind == "pad":
        return raw + b"\n" * max(0, args[0] - len(raw))
    return args[0]  # "whole"


@dataclass
class DocCase:
    base: Base
    edits: list
    form: str
    name: str  # the file name it is written as, in the base document's folder
    byte_edits: list
    content: bytes = field(repr=False)

    def __repr__(self) -> str:
        head = self.content[:160] + (b"..." if len(self.content) > 160 else b"")
        return (f"DocCase({self.base.rel!r} as {self.name!r} ({self.form}), edits={self.edits!r}, "
                f"byte_edits={[e if len(repr(e)) < 80 else e[0] for e in self.byte_edits]!r}, "
                f"{len(self.content):,} bytes: {head!r})")

    def _repr_pretty_(self, printer, _cycle) -> None:  # Hypothesis prints a falsifying example with this, not repr()
        printer.text(repr(self))


@st.composite
def documents(draw, only: tuple[str, ...] | None = None) -> DocCase:
    """A damaged document; `only`: the paths under runs/ of the documents it may start from (default: all)."""
    base = draw(st.sampled_from([b for b in bases() if only is None or b.rel in only]))
    form = draw(st.sampled_from(["json", "yaml"]))
    box, raws = [copy.deepcopy(base.data)], []
    edits = [_edit(draw, box, form, raws) for _ in range(draw(st.integers(0, 4)))]
    raw = serialise(box[0], form, raws, draw(st.integers(0, 5)))
    byte_edits = draw(st.lists(BYTE_EDITS, max_size=2))
    for edit in byte_edits:
        raw = damage(raw, edit)
    if base.kind == "track":
        name = "track.yaml"
    else:
        names = ["speedrun_analysis.json"] if form == "json" else ["speedrun_analysis.yaml", "speedrun_analysis.yml"]
        name = draw(st.sampled_from(names + ["speedrun_analysis.json", "speedrun_analysis.yaml"]))
    return DocCase(base, edits, form, name, byte_edits, raw)
