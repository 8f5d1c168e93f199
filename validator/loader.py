"""Read JSON and YAML documents into plain data, reporting every defect with its location.

JSON's NaN/Infinity extensions, YAML's .nan/.inf, duplicate keys and binary files are all problems here, so the
schema and model layers only ever see finite numbers and text.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from .problems import Problems, json_path

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024


class _NonFinite:
    """Stands in for NaN/Infinity until the walk reports it."""

    def __init__(self, text: str) -> None:
        self.text = text


class _DuplicateKey(Exception):
    pass


def _pairs_no_duplicates(pairs):
    seen: dict = {}
    for k, v in pairs:
        if k in seen:
            raise _DuplicateKey(k)
        seen[k] = v
    return seen


class _StrictYamlLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


class _DuplicateYamlKey(yaml.constructor.ConstructorError):
    """Raised for a repeated mapping key; other ConstructorErrors (unknown tags) are parse errors."""


def _construct_mapping(loader: _StrictYamlLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    out = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(None, None, "found a list or mapping used as a key",
                                                    key_node.start_mark)
        if key in out:
            raise _DuplicateYamlKey(None, None, f"duplicate key {key!r}", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_StrictYamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

# YAML 1.1 (PyYAML) reads `3e18` as a string; YAML 1.2 and JSON read it as a number. Budgets are written that way.
_StrictYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _normalise(value: Any, parts: list, problems: Problems) -> Any:
    """Replace non-finite numbers by None (reported), dates by ISO strings, and non-string keys by strings."""
    if isinstance(value, _NonFinite) or (isinstance(value, float) and not math.isfinite(value)):
        text = value.text if isinstance(value, _NonFinite) else repr(value)
        problems.error(
            json_path(parts), "non-finite", f"{text} is not a finite number",
            "write a finite number; a run that diverged should say so in 'notes' and report its last finite value",
        )
        return None
    if isinstance(value, dict):
        return {str(k): _normalise(v, [*parts, str(k)], problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v, [*parts, i], problems) for i, v in enumerate(value)]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def load_document(path: Path, display: str, problems: Problems) -> Any | None:
    """Parse `path` (JSON, or YAML by suffix). Returns None, with problems recorded, if it cannot be read at all."""
    return load_document_text(path, display, problems)[0]


def load_document_text(path: Path, display: str, problems: Problems) -> tuple[Any | None, str | None]:
    """`load_document`, plus the JSON text itself when it is clean JSON (finite numbers, no duplicate keys), so a
    caller can hand that text straight to a JSON-mode validator; None for YAML or for anything that was reported."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.error("$", "unreadable", f"cannot read file: {exc.strerror or exc}", "check the file's permissions")
        return None, None
    if len(raw) > MAX_DOCUMENT_BYTES:
        problems.error(
            "$", "file-too-large", f"file is {len(raw):,} bytes; the limit is {MAX_DOCUMENT_BYTES:,}",
            "keep curves at the track's checkpoints; put dense logs under logs/",
        )
        return None, None
    if b"\x00" in raw:
        problems.error("$", "not-text", "file is binary, not UTF-8 text", f"regenerate {path.name} with run.py")
        return None, None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.error(
            "$", "not-text", f"file is not valid UTF-8 (byte {exc.start})", f"save {path.name} as UTF-8"
        )
        return None, None

    if path.suffix == ".json":
        try:
            seen_non_finite: list[str] = []

            def non_finite(token: str) -> _NonFinite:
                seen_non_finite.append(token)
                return _NonFinite(token)

            def number(token: str) -> float | _NonFinite:
                value = float(token)
                return value if math.isfinite(value) else non_finite(token)  # 1e999 overflows to infinity

            data = json.loads(text, object_pairs_hook=_pairs_no_duplicates, parse_constant=non_finite,
                              parse_float=number)
        except _DuplicateKey as exc:
            problems.error("$", "duplicate-key", f"key {exc.args[0]!r} appears twice in one object", "keep one of them")
            return None, None
        except json.JSONDecodeError as exc:
            problems.error(
                "$", "parse-error", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                "fix the syntax (a trailing comma or a missing quote is the usual cause)",
            )
            return None, None
    else:
        try:
            data = yaml.load(text, Loader=_StrictYamlLoader)  # noqa: S506 - SafeLoader subclass
        except _DuplicateYamlKey as exc:
            where = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
            problems.error("$", "duplicate-key", f"{exc.problem}{where}", "keep one of them")
            return None, None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problems.error(
                "$", "parse-error", f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}",
                "fix the syntax (indentation and unquoted ':' are the usual causes)",
            )
            return None, None

    if data is None:
        problems.error("$", "empty-document", "file is empty", f"regenerate {path.name} with run.py")
        return None, None
    if path.suffix == ".json" and not seen_non_finite:
        # JSON keys are strings and JSON has no dates: with no NaN/Infinity (spelled out, or a literal too big for a
        # float) there is nothing to normalise, and the walk costs more than the parse on big trees.
        return data, text
    return _normalise(data, [], problems), None


def lenient_mapping(name: str, text: str) -> dict:
    """A document as plain data for checks that must not fail on a broken claim (the validator reports that):
    JSON or YAML by `name`'s extension; {} when it does not parse or is not a mapping."""
    try:
        data = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}
