"""JSON Schemas and reference docs generated from the pydantic models, and validation against them.

`schemas/*.json` and `docs/reference/*.md` are outputs of this module, committed and never edited by hand;
`speedrun schemas --check` fails when they drift from the models.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import BaseModel

from .models import RunAnalysis, Track
from .problems import Problems, json_path

SCHEMA_BASE_URL = "https://speedrun.dev/schemas/"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

MODELS: dict[str, type[BaseModel]] = {"track": Track, "run": RunAnalysis}


def json_schema(name: str) -> dict[str, Any]:
    model = MODELS[name]
    schema = model.model_json_schema(mode="validation")
    return {"$schema": DRAFT, "$id": f"{SCHEMA_BASE_URL}{name}.schema.json", **schema}


def _render_json(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _type_of(prop: dict, defs: dict) -> str:
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in prop:
        return " or ".join(_type_of(p, defs) for p in prop["anyOf"])
    if "oneOf" in prop:
        return " or ".join(_type_of(p, defs) for p in prop["oneOf"])
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    if "enum" in prop:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    t = prop.get("type", "any")
    if t == "array":
        return f"list of {_type_of(prop.get('items', {}), defs)}"
    if t == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"map of {_type_of(prop['additionalProperties'], defs)}"
    return str(t)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def reference_markdown(name: str) -> str:
    """One table per object type: field, type, required, description."""
    schema = json_schema(name)
    defs = schema.get("$defs", {})
    title = {"track": "Track file (`runs/<track>/track.yaml`)", "run": "Run analysis (`speedrun_analysis.json`)"}[name]
    lines = [
        f"# {title}",
        "",
        f"Generated from the pydantic models by `speedrun schemas`; do not edit. JSON Schema: `schemas/{name}.schema.json`.",
        "",
    ]
    objects = [(schema["title"], schema)] + sorted(defs.items())
    for obj_name, obj in objects:
        if "properties" not in obj:
            continue
        lines += [f"## {obj_name}", ""]
        if obj.get("description"):
            lines += [_md_cell(obj["description"]), ""]
        lines += ["| field | type | required | description |", "|---|---|---|---|"]
        required = set(obj.get("required", []))
        for field, prop in obj["properties"].items():
            default = f" Default: `{json.dumps(prop['default'])}`." if "default" in prop else ""
            lines.append(
                f"| `{field}` | {_md_cell(_type_of(prop, defs))} | {'yes' if field in required else 'no'} | "
                f"{_md_cell(prop.get('description', ''))}{default} |"
            )
        if isinstance(obj.get("additionalProperties"), dict):
            lines.append(
                f"| *(any other key)* | {_type_of(obj['additionalProperties'], defs)} | no | a metric id and its value |"
            )
        lines.append("")
    return "\n".join(lines)


def generated_files() -> dict[str, str]:
    """Relative path -> exact content of every generated file."""
    out = {}
    for name in MODELS:
        out[f"schemas/{name}.schema.json"] = _render_json(json_schema(name))
        out[f"docs/reference/{name}.md"] = reference_markdown(name)
    return out


def write(root: Path) -> list[str]:
    written = []
    for rel, content in generated_files().items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text(encoding="utf-8") != content:
            target.write_text(content, encoding="utf-8")
            written.append(rel)
    return written


def drift(root: Path) -> list[str]:
    """Generated files that are missing or differ from what the models produce."""
    return [
        rel for rel, content in generated_files().items()
        if not (root / rel).is_file() or (root / rel).read_text(encoding="utf-8") != content
    ]


@lru_cache(maxsize=None)
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = json_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


# jsonschema keyword -> (rule id, hint)
_KEYWORD_RULES = {
    "required": ("missing-field", "add the field; `speedrun schemas` documents every field"),
    "additionalProperties": ("unknown-field", "remove the field or fix its spelling; see docs/reference/"),
    "type": ("wrong-type", "use the type the schema names (numbers unquoted, lists in [])"),
    "minimum": ("out-of-range", "use a value inside the allowed range"),
    "exclusiveMinimum": ("out-of-range", "use a value inside the allowed range"),
    "maximum": ("out-of-range", "use a value inside the allowed range"),
    "exclusiveMaximum": ("out-of-range", "use a value inside the allowed range"),
    "minItems": ("too-few-items", "add at least the required number of entries"),
    "minProperties": ("too-few-items", "add at least one entry"),
    "minLength": ("empty-value", "write a non-empty value"),
    "enum": ("invalid-value", "use one of the allowed values"),
    "const": ("invalid-value", "use the allowed value"),
    "pattern": ("invalid-format", "match the pattern the schema gives"),
    "format": ("invalid-format", "use the format the schema names (dates as YYYY-MM-DD)"),
}


def _leaf_errors(error: jsonschema.ValidationError):
    """Descend into anyOf/oneOf to the most specific error, as a user would read it."""
    if error.context:
        best = jsonschema.exceptions.best_match(error.context)
        yield from _leaf_errors(best)
    else:
        yield error


def validate(name: str, data: Any, problems: Problems, skip_paths: frozenset[str] = frozenset()) -> bool:
    """Validate `data` against schema `name`, recording problems. True if it is valid."""
    ok = True
    for error in sorted(_validator(name).iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        for leaf in _leaf_errors(error):
            path = json_path(leaf.absolute_path)
            if path in skip_paths:
                continue  # already reported (non-finite number replaced by null)
            ok = False
            rule, hint = _KEYWORD_RULES.get(leaf.validator, ("schema", "see docs/reference/"))
            message = leaf.message
            if leaf.validator == "additionalProperties":
                extras = sorted(set(leaf.instance) - set(leaf.schema.get("properties", {})))
                for extra in extras:
                    problems.error(json_path([*leaf.absolute_path, extra]), rule, f"unknown field {extra!r}", hint)
                continue
            if leaf.validator == "required":
                missing = leaf.message.split("'")[1] if "'" in leaf.message else ""
                problems.error(
                    json_path([*leaf.absolute_path, missing]) if missing else path, rule,
                    f"required field {missing!r} is missing" if missing else message, hint,
                )
                continue
            if len(message) > 200:
                message = message[:197] + "..."
            problems.error(path, rule, message, hint)
    return ok
