"""A YAML reader for untrusted files: the core schema only, refused duplicates, and bounded work.

PyYAML's SafeLoader still builds `bytes` (!!binary) and `set`s (!!set) that nothing downstream can handle, expands
aliases without limit (a 300-byte file of nested aliases becomes gigabytes) and recurses once per nesting level.
Here the document is composed into nodes first and checked (tags, depth, aliases, expanded size) before anything
is built from it.
"""

from __future__ import annotations

import re
from collections.abc import Hashable

import yaml

# Composing costs about 15 us a value even in libyaml: at this size a refusal or a parse still takes well under a
# second. Track files are a few KB; a YAML analysis with full curves is tens of KB.
MAX_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_ALIASES = 100
# Aliases may re-use a few anchored blocks, not multiply the document: the expanded tree may exceed the written one
# by at most this many nodes.
MAX_ALIAS_NODES = 10_000
MAX_INT_DIGITS = 40

_CORE = "tag:yaml.org,2002:"
ALLOWED_TAGS = frozenset(_CORE + t for t in ("null", "bool", "int", "float", "str", "seq", "map", "timestamp",
                                            "merge"))


class YamlRefused(Exception):
    """A document refused before construction: (rule, message, hint)."""

    def __init__(self, rule: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.rule, self.message, self.hint = rule, message, hint


class DuplicateKey(yaml.constructor.ConstructorError):
    """A repeated mapping key; other ConstructorErrors are parse errors."""


class StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when PyYAML has it: 3x faster
    """SafeLoader refusing duplicate keys and reading `3e18` as a number."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False):
    # Duplicates are judged among the mapping's own keys: a key that overrides one brought in by a merge (`<<: *b`)
    # is YAML's way of saying "like b, but", not a mistake.
    own: set = set()
    for key_node, _value in node.value:
        if key_node.tag == _CORE + "merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(None, None, "found a list or mapping used as a key",
                                                    key_node.start_mark)
        if key in own:
            raise DuplicateKey(None, None, f"duplicate key {str(key)[:80]!r}", key_node.start_mark)
        own.add(key)
    loader.flatten_mapping(node)  # merged pairs first, the mapping's own after: its own win
    out = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(None, None, "found a list or mapping used as a key",
                                                    key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

# YAML 1.1 (PyYAML) reads `3e18` as a string; YAML 1.2 and JSON read it as a number. Budgets are written that way.
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _line(node: yaml.Node) -> str:
    return f" at line {node.start_mark.line + 1}" if node.start_mark else ""


def _check(root: yaml.Node) -> None:
    """Walk the node graph once, iteratively (no recursion to exhaust): tags, depth, integer size, and how far the
    aliases expand the document."""
    written = 0
    expanded: dict[int, int] = {}  # node id -> size once fully expanded
    aliases = 0
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        children = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            expanded[key] = 1 + sum(expanded[id(c)] for c in children)
            continue
        if key in seen:  # a second reference to a node: an alias
            aliases += 1
            if aliases > MAX_ALIASES:
                raise YamlRefused("yaml-aliases", f"more than {MAX_ALIASES} aliases", "write the values out")
            if key not in expanded:
                raise YamlRefused("yaml-aliases", f"an alias refers to its own anchor{_line(node)}",
                                  "write the values out")
            continue
        seen.add(key)
        written += 1
        if depth > MAX_DEPTH:
            raise YamlRefused("too-deep", f"nesting is deeper than {MAX_DEPTH} levels{_line(node)}",
                              "flatten the document; no field of the format nests this deep")
        if node.tag not in ALLOWED_TAGS:
            raise YamlRefused("yaml-tag", f"tag {node.tag!r}{_line(node)} is not allowed",
                              "use plain YAML values: strings, numbers, booleans, lists and mappings")
        if node.tag == _CORE + "int" and len(re.sub(r"[^0-9a-fA-F]", "", str(node.value))) > MAX_INT_DIGITS:
            raise YamlRefused("number-too-large", f"an integer{_line(node)} has more than {MAX_INT_DIGITS} digits",
                              "write large numbers in scientific notation, such as 3e19")
        stack.append((node, depth, True))
        stack += [(c, depth + 1, False) for c in reversed(children)]
    total = expanded.get(id(root), written)
    if total > written + MAX_ALIAS_NODES:
        raise YamlRefused("yaml-aliases", f"aliases expand the document from {written:,} to {total:,} values",
                          "write the values out instead of nesting aliases")


def load(text: str):
    """The document's data. Raises YamlRefused, DuplicateKey or yaml.YAMLError; never builds more than it checked."""
    loader = StrictLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise YamlRefused("too-deep", f"nesting is deeper than {MAX_DEPTH} levels",
                              "flatten the document; no field of the format nests this deep") from None
        if node is None:
            return None
        _check(node)
        try:
            return loader.construct_document(node)
        except (KeyError, IndexError, TypeError, ValueError, OverflowError, AttributeError) as exc:
            # A core tag on a value it cannot hold (`!!bool maybe`, `!!int ''`, `!!map [1]`, a 13th month): PyYAML's
            # constructors raise whatever their first failing step does.
            raise YamlRefused("parse-error", f"a value cannot be read as the type its tag or form names "
                              f"({type(exc).__name__})", "write plain values; dates as YYYY-MM-DD") from None
    finally:
        loader.dispose()
