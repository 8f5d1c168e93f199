"""The fuzz targets (loader, validate, build, import-zip): a scratch copy of runs/ to damage, what each case runs in
its child process, and one case end to end (place the damaged file, run, check, put the original back).

What runs in the child returns plain data; properties.py checks it in the parent, so hypothesis can shrink a case.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .documents import RUNS, DocCase
from .isolate import Outcome, run_isolated
from .properties import PASSWD, check_build, check_import_zip, check_loader, check_validate
from .zips import ZipCase

ANALYSIS = ("speedrun_analysis.json", "speedrun_analysis.yaml", "speedrun_analysis.yml")
# A small tree for `speedrun build`: the run and the track file that cases replace, and a run that must stay ranked.
BUILD_TREE = {"digits-classification": ["mlp-baseline", "ast-10pct"], "digits-reconstruction": ["autoencoder-baseline"]}
BUILD_BASES = ("digits-classification/ast-10pct/speedrun_analysis.json", "digits-reconstruction/track.yaml")
ZIP_NAME = "fuzzed"


class Workspace:
    """Scratch copies: `runs/` (every bundled track) for validate and import-zip, `build/runs/` for build."""

    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.copytree(RUNS, root / "runs", ignore=shutil.ignore_patterns("__pycache__"), symlinks=True)
        for track, runs in BUILD_TREE.items():
            (root / "build" / "runs" / track).mkdir(parents=True)
            shutil.copy(RUNS / track / "track.yaml", root / "build" / "runs" / track)
            for run in runs:
                shutil.copytree(RUNS / track / run, root / "build" / "runs" / track / run)
        (root / "scratch").mkdir()
        self._warm()

    def _warm(self) -> None:
        """Run validate and build once here, on untouched copies: every forked case then starts with the CLI's lazy
        imports done and the templates compiled, instead of paying a second for them."""
        here = os.getcwd()
        try:
            os.chdir(self.root)
            validate_child("runs/digits-classification/mlp-baseline")
            os.chdir(self.root / "build")
            build_child()
        finally:
            os.chdir(here)
        _remove(self.root / "build" / "site")

    def place(self, tree: Path, case: DocCase) -> str:
        """Write the case's document where its base lives in `tree`; its path relative to the tree's parent."""
        target = tree / Path(case.base.rel).parent / case.name
        if case.base.kind == "run":
            for name in ANALYSIS:
                (target.parent / name).unlink(missing_ok=True)
        _remove(target)
        if hasattr(case, "make"):
            case.make(target)
        else:
            target.write_bytes(case.content)
        return target.relative_to(tree.parent).as_posix()

    def restore(self, tree: Path, case: DocCase) -> None:
        folder = tree / Path(case.base.rel).parent
        _remove(folder / case.name)
        shutil.copy(RUNS / case.base.rel, folder / Path(case.base.rel).name)

    def snapshot(self) -> set[str]:
        out = set()
        for folder, dirs, files in os.walk(self.root):
            rel = os.path.relpath(folder, self.root)
            out.update(os.path.normpath(os.path.join(rel, n)) for n in dirs + files)
        return out


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def _cli(*args: str) -> dict:
    from click.testing import CliRunner

    from speedrun.cli import cli

    result = CliRunner().invoke(cli, list(args))
    return {"exit": result.exit_code, "stdout": result.stdout, "stderr": result.stderr}


# --- what runs in the child -----------------------------------------------------------------------------------


def loader_child(path: str, display: str) -> dict:
    from validator.loader import load_document_text
    from validator.problems import Problems

    problems = Problems(display)
    data, _text = load_document_text(Path(path), display, problems)
    return {"none": data is None, "problems": [[p.file, p.rule, p.severity] for p in problems.items],
            "not_plain": _not_plain(data)}


def _not_plain(data) -> str:
    """Why `data` is not what the loader promises the schema layer (JSON data: text, finite numbers), or ''."""
    stack, seen = [(data, "$")], set()
    while stack:
        node, where = stack.pop()
        if isinstance(node, (dict, list)):
            if id(node) in seen:
                return f"{where}: shared or cyclic structure"
            seen.add(id(node))
            if isinstance(node, dict) and any(not isinstance(k, str) for k in node):
                return f"{where}: non-string key"
            items = node.items() if isinstance(node, dict) else enumerate(node)
            stack += [(v, f"{where}[{k!r}]") for k, v in items]
            stack += [(k, f"{where} key {k[:40]!r}") for k in (node if isinstance(node, dict) else ())]
        elif isinstance(node, str):
            try:
                node.encode("utf-8")  # a lone surrogate ("\ud800" in JSON) is not text any page can be written with
            except UnicodeEncodeError:
                return f"{where}: text with a lone surrogate"
        elif not (node is None or isinstance(node, (bool, int, float))):
            return f"{where}: {type(node).__name__}"
    try:
        json.dumps(data, allow_nan=False).encode("utf-8")
    except (ValueError, UnicodeError, RecursionError) as exc:
        return f"not JSON data: {type(exc).__name__}: {str(exc)[:200]}"
    return ""


def validate_child(target: str) -> dict:
    out = _cli("validate", target, "--no-flops", "--format", "json")
    try:
        report = json.loads(out["stdout"])
    except ValueError:
        report = None
    problems = []
    for item in (report or {}).get("tracks", []) + (report or {}).get("runs", []):
        problems += [[p["file"], p["rule"], severity] for severity in ("errors", "warnings")
                     for p in item.get(severity, [])]
    return {**out, "stdout": out["stdout"][-3000:], "report": report is not None, "problems": problems,
            "echoed_passwd": PASSWD in out["stdout"] + out["stderr"]}


def build_child() -> dict:
    out = _cli("build", "--runs", "runs", "--out", "site", "--no-flops", "--no-charts", "--jobs", "1",
               "--cache-dir", "cache")
    return {**out, "echoed_passwd": PASSWD in out["stdout"] + out["stderr"]}


def import_zip_child(zip_path: str) -> dict:
    return _cli("import-zip", zip_path, "--track", "maxclip", "--name", ZIP_NAME, "--runs", "runs")


# --- one case, end to end (the tests and benchmarks/fuzz.py share these) -------------------------------------


def run_loader(ws: Workspace, case: DocCase) -> tuple[Outcome, list[str]]:
    path = ws.root / "scratch" / case.name
    path.write_bytes(case.content)
    out = run_isolated(loader_child, str(path), case.name)
    return out, check_loader(out, case.name)


def run_validate(ws: Workspace, case: DocCase) -> tuple[Outcome, list[str]]:
    document = ws.place(ws.root / "runs", case)
    target = document.rsplit("/", 1)[0]
    try:
        out = run_isolated(validate_child, target, cwd=str(ws.root))
    finally:
        ws.restore(ws.root / "runs", case)
    return out, check_validate(out, document)


def run_build(ws: Workspace, case: DocCase) -> tuple[Outcome, list[str]]:
    build = ws.root / "build"
    _remove(build / "site")
    document = ws.place(build / "runs", case)
    try:
        out = run_isolated(build_child, cwd=str(build))
        bad = check_build(out, build, document, len(BUILD_TREE))
    finally:
        ws.restore(build / "runs", case)
        for leftover in build.glob(".site*"):
            _remove(leftover)
    return out, bad


def run_import_zip(ws: Workspace, case: ZipCase) -> tuple[Outcome, list[str]]:
    zip_path = ws.root.parent / f"{ws.root.name}-case.zip"  # outside the workspace: the snapshot skips it
    zip_path.write_bytes(case.content)
    before = ws.snapshot()
    out = run_isolated(import_zip_child, str(zip_path), cwd=str(ws.root))
    new = sorted(ws.snapshot() - before)
    for path in sorted(new, key=len):
        _remove(ws.root / path)
    return out, check_import_zip(out, new, os.path.join("runs", "maxclip", ZIP_NAME), str(zip_path))
