"""Read JSON and YAML documents into plain data, reporting every defect with its location.

JSON's NaN/Infinity extensions, YAML's .nan/.inf, duplicate keys and binary files are all problems here, so the
schema and model layers only ever see finite numbers and text.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from . import yamlsafe
from .problems import Problems, json_path
from .reading import read_capped

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
MAX_DEPTH = yamlsafe.MAX_DEPTH
MAX_INT_DIGITS = yamlsafe.MAX_INT_DIGITS


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


# JSON's \uD800 and YAML's \uD800 / \U0000D800 escapes decode to half a character, which passes every check and
# then stops the build at the first write of the text. Only a text holding such an escape pays for the test.
_SURROGATE_ESCAPE = re.compile(r"\\(?:u[dD][89a-fA-F][0-9a-fA-F]{2}|U0000[dD][89a-fA-F][0-9a-fA-F]{2})")


def _encodable(data: Any) -> bool:
    try:
        json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def load_document(path: Path, display: str, problems: Problems, root: Path | None = None) -> Any | None:
    """Parse `path` (JSON, or YAML by suffix). Returns None, with problems recorded, if it cannot be read at all."""
    return load_document_text(path, display, problems, root)[0]


class _TooLarge(Exception):
    pass


def _int(token: str) -> int:
    if len(token) > MAX_INT_DIGITS + 1:  # Python itself refuses past 4,300 digits, with a ValueError
        raise _TooLarge
    return int(token)


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # unrolled: linear, no backtracking
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_EMPTY_PAIR = re.compile(r"\[\]|\{\}")


def _json_too_deep(text: str) -> bool:
    """Whether the JSON text nests deeper than MAX_DEPTH, decided before parsing: the parser, and every walk after
    it, recurses once per level. Strings are cut out (they may hold brackets); a short bracket string is then peeled
    of its innermost pairs once per level (each pass in C), a long one summed as +1/-1 steps."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if len(brackets) > 50_000:
        import numpy as np  # a linear prefix sum: 32 peeling passes over megabytes cost seconds

        codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
        steps = (codes == ord("[")).astype(np.int32) + (codes == ord("{")) - (codes == ord("]")) - (codes == ord("}"))
        return bool(np.cumsum(steps).max() > MAX_DEPTH)
    for _ in range(MAX_DEPTH):
        peeled = _EMPTY_PAIR.sub("", brackets)
        if peeled == brackets:
            return False  # empty, or malformed: the parser says which
        brackets = peeled
    return bool(brackets)


def _parse_json(text: str, problems: Problems) -> tuple[Any, bool] | None:
    """(data, whether it holds NaN/Infinity), or None with the problem recorded."""
    seen_non_finite: list[str] = []

    def non_finite(token: str) -> _NonFinite:
        seen_non_finite.append(token)
        return _NonFinite(token)

    def number(token: str) -> float | _NonFinite:
        value = float(token)
        return value if math.isfinite(value) else non_finite(token)  # 1e999 overflows to infinity

    if _json_too_deep(text):
        problems.error("$", "too-deep", f"nesting is deeper than {MAX_DEPTH} levels",
                       "flatten the document; no field of the format nests this deep")
        return None
    try:
        data = json.loads(text, object_pairs_hook=_pairs_no_duplicates, parse_constant=non_finite,
                          parse_float=number, parse_int=_int)
    except _DuplicateKey as exc:
        problems.error("$", "duplicate-key", f"key {str(exc.args[0])[:80]!r} appears twice in one object",
                       "keep one of them")
        return None
    except _TooLarge:
        problems.error("$", "number-too-large", f"an integer has more than {MAX_INT_DIGITS} digits",
                       "write large numbers in scientific notation, such as 3e19")
        return None
    except json.JSONDecodeError as exc:
        problems.error(
            "$", "parse-error", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            "fix the syntax (a trailing comma or a missing quote is the usual cause)",
        )
        return None
    except RecursionError:
        problems.error("$", "too-deep", f"nesting is deeper than {MAX_DEPTH} levels",
                       "flatten the document; no field of the format nests this deep")
        return None
    return data, bool(seen_non_finite)


_FAILED = object()


def _parse_yaml(text: str, problems: Problems) -> Any:
    """The data (None for an empty document), or _FAILED with the problem recorded."""
    try:
        return yamlsafe.load(text)
    except yamlsafe.YamlRefused as exc:
        problems.error("$", exc.rule, exc.message, exc.hint)
    except yamlsafe.DuplicateKey as exc:
        where = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        problems.error("$", "duplicate-key", f"{str(exc.problem)[:120]}{where}", "keep one of them")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problems.error(
            "$", "parse-error", f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}",
            "fix the syntax (indentation and unquoted ':' are the usual causes)",
        )
    except (ValueError, OverflowError) as exc:  # a scalar the core schema resolves but cannot build (2024-13-45)
        problems.error("$", "parse-error", f"invalid YAML value: {str(exc)[:120]}",
                       "fix the value (dates are YYYY-MM-DD)")
    return _FAILED


def load_document_text(path: Path, display: str, problems: Problems,
                       root: Path | None = None) -> tuple[Any | None, str | None]:
    """`load_document`, plus the JSON text itself when it is clean JSON (finite numbers, no duplicate keys), so a
    caller can hand that text straight to a JSON-mode validator; None for YAML or for anything that was reported.

    Only a regular file inside `root` (default: the file's own folder) is read, and only up to the size limit."""
    raw = read_capped(path, root if root is not None else path.parent, MAX_DOCUMENT_BYTES, problems,
                      "keep curves at the track's checkpoints; put dense logs under logs/")
    if raw is None:
        return None, None
    if path.suffix != ".json" and len(raw) > yamlsafe.MAX_BYTES:
        problems.error("$", "file-too-large", f"file is {len(raw):,} bytes; the limit for YAML is "
                       f"{yamlsafe.MAX_BYTES:,}", "keep a track file short (checkpoints as dataset_multiples); write a large analysis as JSON")
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

    non_finite = False
    if path.suffix == ".json":
        parsed = _parse_json(text, problems)
        if parsed is None:
            return None, None
        data, non_finite = parsed
    else:
        data = _parse_yaml(text, problems)
        if data is _FAILED:
            return None, None

    if data is None:
        problems.error("$", "empty-document", "file is empty", f"regenerate {path.name} with run.py")
        return None, None
    if _SURROGATE_ESCAPE.search(text) and not _encodable(data):
        problems.error("$", "not-text", "a \\u escape is half of a UTF-16 pair (a lone surrogate), which no UTF-8 file "
                       "can hold", "write the character itself, or both halves of its escape")
        return None, None
    if path.suffix == ".json" and not non_finite:
        # JSON keys are strings and JSON has no dates: with no NaN/Infinity (spelled out, or a literal too big for a
        # float) there is nothing to normalise, and the walk costs more than the parse on big trees.
        return data, text
    return _normalise(data, [], problems), None


def lenient_mapping(name: str, text: str) -> dict:
    """A document as plain data for checks that must not fail on a broken claim (the validator reports that):
    JSON or YAML by `name`'s extension, through the same bounded parsers; {} when it is refused, does not parse or
    is not a mapping."""
    problems = Problems(name)
    if name.endswith(".json"):
        parsed = _parse_json(text, problems)
        data = parsed[0] if parsed else None
    else:
        data = _parse_yaml(text, problems)
    return data if isinstance(data, dict) else {}
