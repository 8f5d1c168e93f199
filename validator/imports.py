"""Which top-level modules a run may import, and the static half of the check (the runtime half is
validator/compute/importguard.py, for imports no parser can see).

Allowed: the standard library, the tool's own runtime (torch, numpy), modules and packages inside the run folder, and
the import names of the packages the track declares (environment.packages, plus environment.imports). The scan parses
the run's code with `ast` and never executes it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import stat
import sys
from functools import lru_cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .models.track import TOOL_RUNTIME, Environment
from .problems import Problems

ALWAYS = frozenset(sys.stdlib_module_names) | frozenset(TOOL_RUNTIME)

# Import names of common packages whose distribution name differs, for when the package is not installed where the
# validator can read its file list (a static check before any install).
ALIASES: dict[str, tuple[str, ...]] = {
    "scikit-learn": ("sklearn",), "pyyaml": ("yaml", "_yaml"), "pillow": ("PIL",), "beautifulsoup4": ("bs4",),
    "open-clip-torch": ("open_clip", "open_clip_train"), "opencv-python": ("cv2",), "opencv-python-headless": ("cv2",),
    "protobuf": ("google",), "python-dateutil": ("dateutil",), "huggingface-hub": ("huggingface_hub",),
    "scikit-image": ("skimage",), "pytorch-lightning": ("pytorch_lightning",), "lightning": ("lightning",),
}

SKIP_FOLDERS = {"logs", "reproductions", "__pycache__"}  # the sandbox's copy leaves logs and records out too
MAX_FILE_BYTES = 2 * 1024**2
MAX_FILES = 1000


def _is_module_name(name: str) -> bool:
    return name.isidentifier() and not name.startswith("__")


def distribution_modules(dist: importlib.metadata.Distribution) -> set[str]:
    """Top-level modules an installed distribution provides: top_level.txt where the wheel has one, else the
    first folder or file name of each installed file (RECORD)."""
    text = dist.read_text("top_level.txt")
    if text:
        return {n.strip() for n in text.splitlines() if _is_module_name(n.strip())}
    names = set()
    for f in dist.files or []:
        parts = f.parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith((".dist-info", ".egg-info", ".data")):
            continue
        head = parts[0] if len(parts) > 1 else parts[0].split(".")[0] if parts[0].endswith((".py", ".so", ".pyd")) else ""
        if _is_module_name(head):
            names.add(head)
    return names


def find_distribution(name: str, path: list[str]) -> importlib.metadata.Distribution | None:
    """The distribution an interpreter with import path `path` would use (the first on the path)."""
    return next(iter(importlib.metadata.distributions(name=canonicalize_name(name), path=path)), None)


def allowed_imports(environment: Environment, path: list[str] | None = None) -> frozenset[str]:
    """Every top-level module a run of a track with `environment` may import. `path` is the import path of the
    interpreter the run gets (a track's virtual environment first); by default this interpreter's."""
    if path is None:  # every run of a tree asks: read the installed files once per track
        return _allowed_here(tuple(environment.packages), tuple(environment.imports))
    return _allowed(environment.packages, environment.imports, path)


@lru_cache(maxsize=64)
def _allowed_here(packages: tuple[str, ...], imports: tuple[str, ...]) -> frozenset[str]:
    return _allowed(list(packages), list(imports), list(sys.path))


def _allowed(packages: list[str], imports: list[str], path: list[str]) -> frozenset[str]:
    names = set(ALWAYS) | set(imports)
    for text in packages:
        dist_name = canonicalize_name(Requirement(text).name)
        names |= set(ALIASES.get(dist_name, ()))
        names.add(dist_name.replace("-", "_"))
        dist = find_distribution(dist_name, path)
        if dist is not None:
            names |= distribution_modules(dist)
    return frozenset(names)


def _python_files(run_dir: Path) -> list[Path]:
    """Regular .py files of the run folder (no links, no FIFOs: reading one would block), within caps."""
    out: list[Path] = []
    pending = [run_dir]
    while pending and len(out) < MAX_FILES:
        folder = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in SKIP_FOLDERS and not (folder == run_dir and entry.name.startswith(".")):
                    pending.append(Path(entry.path))
            elif entry.name.endswith(".py"):
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_size <= MAX_FILE_BYTES:
                    out.append(Path(entry.path))
    return sorted(out)


def _local(name: str, folders: tuple[Path, ...]) -> bool:
    """A module or package of the run itself (the script's folder is on its import path, and so is the file's)."""
    return any((f / f"{name}.py").is_file() or (f / name).is_dir() for f in folders)


_HANDLES_MISSING = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


class _Imports(ast.NodeVisitor):
    """Absolute imports, except those inside a `try` that handles ImportError: the code copes without the module
    (the runtime guard makes such an import fail the way a missing package would)."""

    def __init__(self) -> None:
        self.found: list[tuple[str, int]] = []

    def visit_Try(self, node: ast.Try) -> None:
        names = set()
        for handler in node.handlers:
            kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            names |= {k.id if isinstance(k, ast.Name) else "" for k in kinds if k is not None} | (
                {"BaseException"} if handler.type is None else set())
        if not names & _HANDLES_MISSING:
            self.generic_visit(node)
            return
        for child in node.handlers + node.orelse + node.finalbody:
            self.visit(child)

    visit_TryStar = visit_Try

    def visit_Import(self, node: ast.Import) -> None:
        self.found += [(alias.name.split(".")[0], node.lineno) for alias in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self.found.append((node.module.split(".")[0], node.lineno))


def imported_modules(file: Path) -> list[tuple[str, int]]:
    """(top-level module, line) of each absolute import statement; [] if the file does not parse (the runtime guard
    still sees what it imports)."""
    try:
        tree = ast.parse(file.read_bytes(), filename=str(file))
        visitor = _Imports()
        visitor.visit(tree)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OSError):
        return []
    return sorted(visitor.found, key=lambda t: t[1])


def check_run(run_dir: Path, allowed: frozenset[str], problems: Problems) -> None:
    """Report every import of a module the track does not allow, once per file and module (rule undeclared-import)."""
    for file in _python_files(run_dir):
        rel = file.relative_to(run_dir).as_posix()
        reported: set[str] = set()
        for name, line in imported_modules(file):
            if name in allowed or name in reported or _local(name, (run_dir, file.parent)):
                continue
            reported.add(name)
            problems.error(f"$files['{rel}']", "undeclared-import",
                           f"{rel} line {line} imports {name!r}, which the track's environment does not declare",
                           "declare it in track.yaml environment.packages (organizer) or remove the import; "
                           "see docs/environments.md")
