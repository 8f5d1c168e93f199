"""Conformance: real architectures, described by their transformers configs, counted by the validator's own path
(`model.config`: trusted code builds the model on meta in the sandbox, the parent counts the trace) against the
figure their authors published (tests/conformance/published.py names each source).

Needs transformers in a track environment: installed once per machine into the environment cache from the package
index. Without the index (an offline machine) the module skips, saying so; in CI (`CI` set) it fails instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from published import ROWS, Row  # noqa: E402

from validator.compute import bwrap  # noqa: E402
from validator.compute.recount import count_config  # noqa: E402
from validator.models.track import Environment  # noqa: E402

TRANSFORMERS = "transformers==5.24.0"


@pytest.fixture(scope="module")
def env():
    from validator.environment import EnvironmentFailure, sandbox_env

    if bwrap.unavailable_reason() is not None and not bwrap.unsafe_allowed():
        pytest.skip(f"no sandbox here: {bwrap.unavailable_reason()}")
    track = SimpleNamespace(id="conformance", environment=Environment(packages=[TRANSFORMERS]))
    try:
        return sandbox_env(track, None)
    except EnvironmentFailure as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{TRANSFORMERS} could not be installed here: {exc}")


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_count_matches_published_figure(env, row: Row):
    counted = count_config(Path("."), row.spec, env=env)
    assert counted["source"] == "config" and counted["device"] == "meta"
    assert row.agrees(counted), f"{row.name}: ours {row.ours(counted)!r} vs published {row.published!r} ({row.source})"
    # Both counters work on meta and agree (fvcore counts MACs; doubled here)
    assert counted["counters"]["fvcore"]["device"] == "meta"
    assert counted["counters"]["fvcore"]["forward"] == counted["per_sample_forward_flops"]
    if row.parameters is not None:
        assert counted["parameters"] == row.parameters
