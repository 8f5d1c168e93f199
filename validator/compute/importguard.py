"""Refuse, at run time, imports the track does not declare: the half of the import check that sees what no parser
can (`importlib.import_module(name)`, `__import__`); validator/imports.py is the static half.

Only imports made by code in a file under one of `roots` (the run's copy) are checked, so the libraries a track
declares import their own dependencies freely (transformers imports huggingface_hub). The standard library is always
allowed; so are modules found under `roots` (the run's own). An undeclared module that exists raises
ModuleNotFoundError starting with PREFIX; one that exists nowhere fails the ordinary way.

This is a rule, not a wall: the sandbox is the security boundary. Code can route an import through another library
(pickle, a plugin loader) or undo the guard; what it imports still runs only inside the sandbox.

This file imports nothing from `validator`: it runs in the sandbox beside tracer.py. As a launcher:
`python importguard.py ALLOWED_JSON ROOT SCRIPT [ARGS...]` installs the guard and runs SCRIPT as __main__.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.abc
import json
import os
import runpy
import sys
import threading

PREFIX = "speedrun: undeclared import"
_MACHINERY = (os.path.dirname(importlib.__file__) + os.sep, "<frozen importlib", os.path.abspath(__file__))


class Guard(importlib.abc.MetaPathFinder):
    def __init__(self, allowed: list[str], roots: list[str]) -> None:
        self.allowed = frozenset(allowed) | frozenset(sys.stdlib_module_names) | {"__main__"}
        self.roots = tuple(os.path.realpath(r) + os.sep for r in roots)
        self.local = threading.local()
        self.seen: dict[str, bool] = {}  # realpath is a system call per folder: once per file is enough

    def _under_roots(self, filename: str | None) -> bool:
        if not filename or filename.startswith("<"):
            return False
        known = self.seen.get(filename)
        if known is None:
            known = self.seen[filename] = (os.path.realpath(filename) + os.sep).startswith(self.roots)
        return known

    def check(self, name: str, caller: str | None) -> None:
        """Raise if `caller` (a file) imports the top-level module of `name` and the track does not allow it."""
        top = name.partition(".")[0]
        if top in self.allowed or getattr(self.local, "busy", False) or not self._under_roots(caller):
            return
        self.local.busy = True
        try:
            where = self._where(top)
        finally:
            self.local.busy = False
        if where is None or self._under_roots(where):
            return  # nowhere (the import fails as usual) or the run's own module
        rel = os.path.relpath(caller, self.roots[0]) if self._under_roots(caller) else caller
        raise ModuleNotFoundError(f"{PREFIX} {top!r} (imported by {rel}): the track's environment does not "
                                  "declare it", name=top)

    def _where(self, top: str) -> str | None:
        """Where the module would come from: its file or folder, '' when it has none, None when it does not exist."""
        module = sys.modules.get(top)
        if module is not None:
            return getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", [])), "")
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            try:
                spec = finder.find_spec(top, None)
            except Exception:  # noqa: BLE001 - a finder that fails finds nothing
                spec = None
            if spec is not None:
                return spec.origin if spec.has_location else next(iter(spec.submodule_search_locations or []), "")
        return None

    def find_spec(self, fullname, path=None, target=None):
        """Imports that bypass __import__ and import_module (importlib.util.find_spec and the like)."""
        if "." not in fullname:
            self.check(fullname, _caller(sys._getframe(1)))
        return None


def _caller(frame) -> str | None:
    """The file of the nearest frame outside the import machinery and this file."""
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith(_MACHINERY):
            return name
        frame = frame.f_back
    return None


def install(allowed: list[str] | None, roots: list[str]) -> Guard | None:
    """Check every import made by code under `roots` against `allowed` (None: no restriction)."""
    if allowed is None:
        return None
    guard = Guard(allowed, roots)
    sys.meta_path.insert(0, guard)
    original_import, original_import_module = builtins.__import__, importlib.import_module

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0:
            guard.check(name, sys._getframe(1).f_code.co_filename)
        return original_import(name, globals, locals, fromlist, level)

    def guarded_import_module(name, package=None):
        if not name.startswith("."):
            guard.check(name, sys._getframe(1).f_code.co_filename)
        return original_import_module(name, package)

    builtins.__import__ = guarded_import
    importlib.import_module = guarded_import_module
    return guard


def main(argv: list[str]) -> None:
    allowed, root, script = json.loads(argv[1]), argv[2], os.path.abspath(argv[3])
    install(allowed, [root])
    sys.argv = argv[3:]
    sys.path[0] = os.path.dirname(script)  # as `python SCRIPT` would have it, not this file's folder
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv)
