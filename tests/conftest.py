"""Shared paths and helpers for the validator's tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
FIXTURE_RUNS = REPO / "tests" / "fixtures" / "runs"
FIXTURE_TRACKS = FIXTURE_RUNS / "tracks"
VALID_DIR = FIXTURE_RUNS / "valid"
INVALID_DIR = FIXTURE_RUNS / "invalid"


def case_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir())


def expectation(case: Path) -> dict:
    return yaml.safe_load((case / "expect.yaml").read_text(encoding="utf-8"))


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def at_repo_root(monkeypatch) -> Path:
    """Run with the working directory at the repository root, as CI does."""
    monkeypatch.chdir(REPO)
    return REPO
