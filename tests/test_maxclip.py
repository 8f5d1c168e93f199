"""The MaxCLIP tracks as shipped: the constrained track (frozen reference, three settings, ranking by the mean over
settings, ZIP submissions) and its unconstrained board of cited results.

Only the first test recounts FLOPs in the sandbox; the others use --no-flops on a temporary copy of the track.
"""

import json
import shutil
import statistics
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from speedrun.cli import cli

ROOT = Path(__file__).resolve().parents[1]
TRACK = ROOT / "runs" / "maxclip"
OPEN = ROOT / "runs" / "maxclip-open"
RUNS = ("clip-infonce", "siglip-sigmoid")
SETTINGS = ("small", "medium", "large")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def report(result) -> dict:
    return json.loads(result.output[result.output.index("{"):])


def analysis(run_dir: Path) -> dict:
    return json.loads((run_dir / "speedrun_analysis.json").read_text(encoding="utf-8"))


def hand_score(data: dict, metric: str = "zeroshot_top1") -> float:
    """The settings-mean figure by hand: per seed, the mean over the three settings; then the mean over seeds."""
    per_seed = []
    for seed in data["seeds"]:
        finals = {r["setting"]: r["final"][metric] for r in data["results"] if r["seed"] == seed}
        assert set(finals) == set(SETTINGS)
        per_seed.append(sum(finals[s] for s in SETTINGS) / len(SETTINGS))
    return sum(per_seed) / len(per_seed)


@pytest.fixture()
def track_copy(tmp_path) -> Path:
    """runs/maxclip copied into tmp_path/runs, so tests may add and break runs freely."""
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(TRACK, runs / "maxclip", ignore=shutil.ignore_patterns("__pycache__"))
    return runs / "maxclip"


def test_track_and_both_runs_validate_with_the_flop_recount():
    result = invoke("validate", str(TRACK), "--format", "json")
    assert result.exit_code == 0, result.output
    payload = report(result)
    assert [t["errors"] for t in payload["tracks"]] == [[]]
    runs = {Path(r["path"]).name: r for r in payload["runs"]}
    assert set(runs) == set(RUNS)
    for name, run in runs.items():
        assert run["valid"] and run["errors"] == [] and run["warnings"] == [], (name, run)
        compute = run["compute"]
        assert compute["verdict"] == "pass"
        assert compute["claim_ratio"] == pytest.approx(1.0, abs=0.01)
        assert compute["samples_seen"] == 8192
        # the recount sees the same two-tower model in both runs: the model is frozen
        assert compute["per_sample_training_flops"] == runs["clip-infonce"]["compute"]["per_sample_training_flops"]


def test_runs_report_every_seed_and_setting_on_the_track_dataset():
    import yaml

    track = yaml.safe_load((TRACK / "track.yaml").read_text())
    assert [s["id"] for s in track["settings"]] == list(SETTINGS)
    assert [s["train_samples"] for s in track["settings"]] == [256, 1024, 4096]
    assert track["ranking"]["primary"]["kind"] == "settings_mean"
    assert track["submission_policy"] == {"max_submissions": 1, "window_days": 14, "fix_window_hours": 48}
    teams = set()
    for name in RUNS:
        data = analysis(TRACK / name)
        teams.add(data["team"])
        assert data["dataset"]["checksum"] == track["dataset"]["checksum"]
        assert sorted((r["seed"], r["setting"]) for r in data["results"]) == \
            sorted((s, x) for s in (0, 1, 2) for x in SETTINGS)
        assert all(r["curve"][-1]["samples"] == 8192 for r in data["results"])
    assert len(teams) == len(RUNS)  # rate limits are per team


def test_build_ranks_by_the_mean_over_settings(track_copy, tmp_path):
    result = invoke("build", "--runs", str(track_copy.parent), "--out", str(tmp_path / "site"), "--no-flops",
                    "--no-charts", "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 0, result.output
    board = json.loads((tmp_path / "site" / "tracks" / "maxclip.json").read_text())
    expected = sorted(RUNS, key=lambda n: -hand_score(analysis(TRACK / n)))
    assert [e["name"] for e in board["entries"]] == expected
    assert [e["rank"] for e in board["entries"]] == [1, 2]
    for entry in board["entries"]:
        data = analysis(TRACK / entry["name"])
        primary = entry["figures"][0]
        assert primary["rule"] == "settings_mean"
        assert primary["mean"] == pytest.approx(hand_score(data), abs=1e-12)
        assert primary["n"] == 3
        everything = [r["final"]["zeroshot_top1"] for r in data["results"]]
        assert primary["mean"] == pytest.approx(statistics.fmean(everything), abs=1e-12)  # complete grid: same mean
        assert entry["figures"][1]["mean"] == pytest.approx(hand_score(data, "retrieval_r1"), abs=1e-12)


def test_a_modified_frozen_file_fails(track_copy):
    run = track_copy / "tampered"
    shutil.copytree(track_copy / "clip-infonce", run)
    data = analysis(run)
    data.update(name="tampered", team="sneaky")
    (run / "speedrun_analysis.json").write_text(json.dumps(data, indent=2))
    script = (run / "run.py").read_text()
    assert "SAMPLES_SEEN = 8192" in script
    (run / "run.py").write_text(script.replace("SAMPLES_SEEN = 8192", "SAMPLES_SEEN = 16384"))
    result = invoke("validate", str(run), "--no-flops", "--format", "json")
    assert result.exit_code == 1, result.output
    errors = {(e["rule"], e["path"]) for e in report(result)["runs"][0]["errors"]}
    assert errors == {("frozen-file-modified", "$files['run.py']")}

    # an edit inside editable/ and the config is allowed
    shutil.copy(track_copy / "_reference" / "run.py", run / "run.py")
    (run / "editable" / "loss.py").write_text((run / "editable" / "loss.py").read_text() + "\n# tweak\n")
    assert invoke("validate", str(run), "--no-flops").exit_code == 0


def test_a_run_missing_the_large_setting_is_listed_but_not_ranked(track_copy, tmp_path):
    run = track_copy / "no-large"
    shutil.copytree(track_copy / "clip-infonce", run)
    data = analysis(run)
    data.update(name="no-large", team="partial-team")
    data["results"] = [r for r in data["results"] if r["setting"] != "large"]
    (run / "speedrun_analysis.json").write_text(json.dumps(data, indent=2))

    result = invoke("validate", str(run), "--no-flops", "--format", "json")
    assert result.exit_code == 0, result.output
    checked = report(result)["runs"][0]
    assert checked["valid"] and checked["errors"] == []
    assert {w["rule"] for w in checked["warnings"]} == {"missing-setting"}

    result = invoke("build", "--runs", str(track_copy.parent), "--out", str(tmp_path / "site"), "--no-flops",
                    "--no-charts", "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 0, result.output
    board = json.loads((tmp_path / "site" / "tracks" / "maxclip.json").read_text())
    ranks = {e["name"]: e["rank"] for e in board["entries"]}
    assert ranks["no-large"] is None
    assert sorted(r for n, r in ranks.items() if n != "no-large") == [1, 2]
    assert [e["name"] for e in board["entries"]][-1] == "no-large"


def test_zip_of_editable_and_config_imports_as_a_pending_run(track_copy, tmp_path):
    source = TRACK / "siglip-sigmoid"
    z = tmp_path / "siglip.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for path in sorted((source / "editable").rglob("*.py")):
            zf.write(path, f"submission/{path.relative_to(source).as_posix()}")
        zf.write(source / "config.yaml", "submission/config.yaml")
    result = invoke("import-zip", str(z), "--track", "maxclip", "--name", "siglip-zipped",
                    "--runs", str(track_copy.parent))
    assert result.exit_code == 0, result.output
    assert "frozen files intact" in result.output and "pending" in result.output
    run = track_copy / "siglip-zipped"
    assert (run / "editable" / "loss.py").read_bytes() == (source / "editable" / "loss.py").read_bytes()
    assert (run / "config.yaml").read_bytes() == (source / "config.yaml").read_bytes()
    assert (run / "run.py").read_bytes() == (TRACK / "_reference" / "run.py").read_bytes()
    assert not (run / "speedrun_analysis.json").exists()

    # a ZIP that carries a frozen file is refused and writes nothing
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.write(source / "config.yaml", "config.yaml")
        zf.writestr("run.py", "SAMPLES_SEEN = 1\n")
    result = invoke("import-zip", str(bad), "--track", "maxclip", "--name", "evil", "--runs", str(track_copy.parent))
    assert result.exit_code == 1 and "zip-frozen-file" in result.output
    assert not (track_copy / "evil").exists()


def test_open_board_cites_every_result():
    result = invoke("validate", str(OPEN), "--no-flops", "--format", "json")
    assert result.exit_code == 0, result.output
    runs = report(result)["runs"]
    assert len(runs) >= 2 and all(r["valid"] for r in runs)
    for r in runs:
        data = analysis(Path.cwd() / r["path"])  # report paths are relative to the working directory
        assert data["files"]["script"] is None and data["seeds"] == [0]
        assert data["source"]["url"].startswith("https://arxiv.org/abs/")
        value = data["results"][0]["final"]["imagenet_zeroshot_top1"]
        assert f"{value * 100:.1f}%" in data["notes"]  # the quoted sentence carries the figure
