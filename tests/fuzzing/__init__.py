"""Property-based fuzzing of the loader, `speedrun validate`, `speedrun build` and `speedrun import-zip` (issue 11).

Shared by tests/test_fuzz.py (a few hundred cases in every run, 10,000 with `pytest -m slow`) and
benchmarks/fuzz.py (the counts in docs/robustness.md).
"""
