"""A track's declared environment: the interpreter submitted code runs with in the sandbox.

PLACEHOLDER while issue 12's environment work lands: every track gets this interpreter. The finished module
installs a track's declared packages into a cached virtual environment and answers with its interpreter.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class SandboxEnv:
    python: str  # the interpreter to run in the sandbox
    readonly: tuple[Path, ...] = ()  # folders the sandbox must see read-only for that interpreter (a venv)
    allowed_imports: frozenset[str] | None = None  # top-level modules a run may import; None: no restriction
    description: str = "this interpreter"
    packages: dict[str, str] = field(default_factory=dict)  # declared distribution -> installed version


def sandbox_env(track, track_dir: Path | None, progress=None) -> SandboxEnv:
    """The environment a run of `track` (stored in `track_dir`) runs in, created and cached on first use."""
    return SandboxEnv(python=sys.executable)
