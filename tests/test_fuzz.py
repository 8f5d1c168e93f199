"""Property-based fuzzing of the loader, `speedrun validate`, `speedrun build` and `speedrun import-zip` (issue 11).

Hypothesis damages the bundled runs' real analysis files, track files and a MaxCLIP ZIP (tests/fuzzing/), and every
case runs in a forked child (tests/fuzzing/isolate.py). Whatever the input, each case must: raise nothing and exit 0
or 1 (never 2, never "internal error"); name, in every problem, the file it is about; finish in under 5 s; grow
memory by at most 200 MB. `build` must still write the site with the untouched runs ranked; a refused ZIP must
write nothing, and no ZIP may write outside its run folder.

Every run tries a few hundred cases (derandomized, so a failure reproduces); `pytest -m slow` tries 10,000.
`python benchmarks/fuzz.py` runs the same cases and prints the counts that docs/robustness.md quotes.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from fuzzing import hostile, targets
from fuzzing.documents import documents
from fuzzing.zips import zips

# No example database: what a run tries depends on the code alone, not on what an earlier run left behind.
_COMMON = {"database": None, "deadline": None, "suppress_health_check": list(HealthCheck), "print_blob": False}
settings.register_profile("ci", derandomize=True, **_COMMON)
settings.register_profile("slow", **_COMMON)
CI = settings.get_profile("ci")
SLOW = settings.get_profile("slow")
# Cases per target: every run, then `pytest -m slow` (10,000 in all).
EXAMPLES = {"loader": (100, 4000), "validate": (80, 3500), "build": (15, 500), "import-zip": (50, 2000)}


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> targets.Workspace:
    return targets.Workspace(tmp_path_factory.mktemp("fuzz") / "ws")


def _holds(result) -> None:
    _outcome, broken = result
    assert not broken, "\n".join(broken)


def _loader(ws, case):
    _holds(targets.run_loader(ws, case))


def _validate(ws, case):
    _holds(targets.run_validate(ws, case))


def _build(ws, case):
    _holds(targets.run_build(ws, case))


def _import_zip(ws, case):
    _holds(targets.run_import_zip(ws, case))


BUILD_DOCUMENTS = documents(only=targets.BUILD_BASES)


@settings(CI, max_examples=EXAMPLES["loader"][0])
@given(case=documents())
def test_loader(ws, case):
    _loader(ws, case)


@settings(CI, max_examples=EXAMPLES["validate"][0])
@given(case=documents())
def test_validate(ws, case):
    _validate(ws, case)


@settings(CI, max_examples=EXAMPLES["build"][0])
@given(case=BUILD_DOCUMENTS)
def test_build(ws, case):
    _build(ws, case)


@settings(CI, max_examples=EXAMPLES["import-zip"][0])
@given(case=zips())
def test_import_zip(ws, case):
    _import_zip(ws, case)


@pytest.mark.slow
@settings(SLOW, max_examples=EXAMPLES["loader"][1])
@given(case=documents())
def test_loader_slow(ws, case):
    _loader(ws, case)


@pytest.mark.slow
@settings(SLOW, max_examples=EXAMPLES["validate"][1])
@given(case=documents())
def test_validate_slow(ws, case):
    _validate(ws, case)


@pytest.mark.slow
@settings(SLOW, max_examples=EXAMPLES["build"][1])
@given(case=BUILD_DOCUMENTS)
def test_build_slow(ws, case):
    _build(ws, case)


@pytest.mark.slow
@settings(SLOW, max_examples=EXAMPLES["import-zip"][1])
@given(case=zips())
def test_import_zip_slow(ws, case):
    _import_zip(ws, case)


@pytest.mark.parametrize("case", hostile.document_cases(), ids=lambda c: c.edits[0][1])
def test_hostile_document(ws, case):
    _loader(ws, case)
    _validate(ws, case)
    if case.base.rel in targets.BUILD_BASES:
        _build(ws, case)


@pytest.mark.parametrize("case", hostile.token_cases(), ids=lambda c: f"{c.form} {c.edits[0][1]}")
def test_each_hostile_token_alone(ws, case):
    _validate(ws, case)


@pytest.mark.parametrize("case", hostile.FS_CASES, ids=lambda c: c.title)
def test_hostile_special_file(ws, case):
    _validate(ws, case)
    _build(ws, case)


@pytest.mark.parametrize("title,case,expect", hostile.zip_cases(), ids=[t for t, _, _ in hostile.zip_cases()])
def test_hostile_zip(ws, title, case, expect):
    outcome, broken = targets.run_import_zip(ws, case)
    broken += hostile.expected_exit(outcome, expect)  # a ZIP of only editable/... must import: exit 0
    assert not broken, "\n".join(broken)
