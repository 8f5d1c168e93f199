"""Every bundled run says in one line what it changes against the run it builds on (`changes`), and a run.py that
writes its analysis writes that same line, so a rerun keeps it."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import yaml

from validator.fingerprint import content_sha256

ROOT = Path(__file__).resolve().parents[1]
RUNS = sorted(p.parent for p in (ROOT / "runs").glob("*/*/speedrun_analysis.json"))


def _bound_by_a_reproduction(run: Path) -> bool:
    """A reproduction record binds the folder's whole content: adding a line would un-reproduce the run, so such a
    run keeps its analysis until maintainers reproduce it again."""
    digest = content_sha256(run)
    return any(json.loads(r.read_text()).get("content_sha256") == digest for r in run.glob("reproductions/*.json"))


def _written_by_script(run: Path) -> str | None:
    """The `changes` of the analysis dict run.py writes, if it writes one: a literal, or an f-string of the script's
    module-level constants (the ast-* runs differ only in their TARGET line)."""
    script = run / "run.py"
    if not script.is_file():
        return None
    tree = ast.parse(script.read_text(encoding="utf-8"))
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys = {k.value: v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant)}
            if "schema_version" in keys and "changes" in keys:
                expression = ast.Expression(keys["changes"])
                return eval(compile(expression, str(script), "eval"), {"__builtins__": {}}, constants)  # noqa: S307
    return None


def test_every_bundled_run_says_what_it_changes():
    assert len(RUNS) >= 20
    kept = []
    for run in RUNS:
        analysis = json.loads((run / "speedrun_analysis.json").read_text(encoding="utf-8"))
        if _bound_by_a_reproduction(run):
            kept.append(run.name)
            continue
        changes = analysis.get("changes")
        assert isinstance(changes, str) and 20 <= len(changes) <= 200 and "\n" not in changes, run
        assert not changes.startswith("TODO"), run
        track = yaml.safe_load((run.parent / "track.yaml").read_text(encoding="utf-8"))
        if (run / "run.py").is_file() and not track.get("constrained"):
            assert _written_by_script(run) == changes, f"{run}: run.py does not write the committed changes"
    assert sorted(kept) == ["bytegpt-tiny", "mlp-baseline"]
