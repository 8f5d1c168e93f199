"""Name the kinds of damage a generated case carries, so that benchmarks/fuzz.py can say, per kind, how many cases
tried it and which rule ids caught them (the table in docs/robustness.md)."""

from __future__ import annotations

from .documents import DocCase
from .zips import HOSTILE_NAMES, ZipCase

FROZEN = ("run.py", "frozen.json", "_reference/")
OWN = ("speedrun_analysis.json", "README.md", "PENDING.md", "logs/")


def _raw(token: str) -> str:
    if token.startswith("[&b"):
        return "YAML alias bomb"
    if token.startswith(("[[", '{"a": ')):
        return "deep nesting (up to 3,000 levels)"
    if token in ("[]", "{}", "null", "[]]"):
        return "empty list, mapping or null"
    if "<<" in token:
        return "YAML merge key"
    if "&" in token or "*" in token:
        return "YAML anchor / alias (incl. recursive, undefined)"
    if token.startswith("!"):
        return "YAML tag (!!binary, !!set, !!python/..., custom)"
    if token.startswith("1000") or "chars)" in token:
        return "4,301-digit integer"
    if token.lstrip("-").lower() in ("nan", "infinity", "1e999", "1e+400", ".nan", ".inf", "1e-400", "-0"):
        return "NaN / Infinity / overflowing literal"
    if token.startswith("{?") or token.startswith("{1:"):
        return "YAML complex or non-string keys"
    if token.startswith('"\\'):
        return "escaped lone surrogate / NUL"
    return "YAML implicit types (dates, octal, sexagesimal, yes/off)"


def document_classes(case: DocCase) -> list[str]:
    out = [f"{case.base.kind} file written as {case.form}"]
    if case.form == "yaml" and case.name.endswith(".json") or case.form == "json" and not case.name.endswith(".json"):
        out.append("JSON text under a YAML name or the reverse")
    for edit in case.edits:
        how = edit[0]
        if how == "raw":
            out.append(_raw(str(edit[2])))
        elif how == "number":
            out.append("hostile number (2**64, 1e308, -0.0, NaN, inf, bool)")
        elif how in ("replace", "to-list", "to-string"):
            out.append("type swap / random value (text, unicode, long strings)")
        else:
            out.append({"delete": "key or item deleted", "rename": "key renamed", "duplicate-key": "key duplicated",
                        "wrap": "value wrapped in lists", "repeat": "list repeated (up to 100,000 items)",
                        "hostile": f"fixed: {edit[1]}"}.get(how, how))
    for edit in case.byte_edits:
        out.append({"truncate": "truncated", "insert": "random bytes inserted", "flip": "a byte flipped",
                    "prefix": "BOM or YAML directive prefixed", "utf-16": "re-encoded as UTF-16",
                    "crlf": "CRLF line ends", "tabs": "tabs for indentation", "pad": "padded to the size limit",
                    "whole": "replaced whole (empty, scalar, list, multi-document, random bytes)"}[edit[0]])
    return out


def zip_classes(case: ZipCase) -> list[str]:
    out = []
    if case.wrapper:
        out.append("wrapper folder")
    if "config.yaml" in case.dropped and not case.extras:
        out.append("only editable/... entries")
    elif case.dropped:
        out.append("some of the submission left out")
    names = [e.name for e in case.extras]
    for extra in case.extras:
        name = extra.name
        if extra.kind != "file":
            out.append(f"{extra.kind} entry")
        if ".." in name.split("/") or ".." in name.split("\\"):
            out.append("'..' in an entry name")
        elif name.startswith(("/", "~")) or name[1:2] == ":":
            out.append("absolute or drive-letter name")
        elif "\\" in name:
            out.append("backslash in a name")
        elif any(n.startswith(name.rstrip("/") + "/") for n in names if n != name):
            out.append("a file and a folder of one name")
        elif name.startswith(FROZEN):
            out.append("frozen file in the ZIP")
        elif name.rsplit("/", 1)[-1] in OWN or name.startswith("logs/"):
            out.append("the run's own record (analysis, README, logs)")
        elif name not in HOSTILE_NAMES:
            out.append("random entry name")
        else:
            out.append("other hostile name (duplicate, '.', '//', long, NUL, unicode)")
        if len(extra.content) >= 10**5:
            out.append("megabytes of zeros " + ("deflated (bomb)" if extra.deflate else "stored"))
    if len(set(names)) < len(names):
        out.append("duplicate entries")
    if case.damage:
        out.append(f"archive damaged: {case.damage[0]}")
    return out or ["the real submission, unchanged"]
