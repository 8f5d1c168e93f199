"""Marin conformance: every real result file imports; Llama files recount within 0.5 % of the published FLOPs."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from speedrun.cli import cli
from validator.compute.llama import LlamaConfig, marin_forward_flops_per_token
from validator.importers.marin import choose_track, import_file, llama_config, read_results

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference" / "marin"
FILES = sorted(REFERENCE.glob("*.json")) if REFERENCE.is_dir() else []
TRACKS = {"marin-tiny": 3e18, "marin-small": 6e18, "marin-medium": 3e19, "marin-open": None}

pytestmark = pytest.mark.skipif(not FILES, reason=f"Marin reference files not found at {REFERENCE}")


@pytest.fixture()
def runs(tmp_path):
    runs = tmp_path / "runs"
    for track in TRACKS:
        shutil.copytree(ROOT / "runs" / track, runs / track, ignore=shutil.ignore_patterns("[!t]*"))
    return runs


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name.split(".")[0])
def test_every_reference_file_imports(path, runs):
    imported = import_file(path, runs, "auto", TRACKS)
    assert len(imported) == len(read_results(path))
    for item in imported:
        analysis = json.loads((item.path / "speedrun_analysis.json").read_text())
        info = read_results(path)[0]
        assert analysis["results"][0]["final"]["c4_en_bpb"] == pytest.approx(info["eval/paloma/c4_en/bpb"])
        assert analysis["compute"]["flops"]["claimed"] == pytest.approx(info["model_flops"])
        if path.name.startswith("llama_"):
            assert item.rebuilt, item.note
            assert abs(item.ratio - 1) <= 0.005, (path.name, item.ratio)
            assert analysis["model"]["entrypoint"] == "model.py:build_for_flops"
            assert (item.path / "model.py").is_file()
        else:
            # other architectures are never guessed
            assert not item.rebuilt
            assert "entrypoint" not in analysis["model"]
            assert not (item.path / "model.py").exists()
            assert "self-reported" in analysis["notes"]


def test_llama_runs_land_on_the_right_boards(runs):
    placed = {i.name: i.track for f in FILES for i in import_file(f, runs, "auto", TRACKS)}
    assert placed["llama_50m_gpu"] == "marin-tiny"
    assert placed["llama_75m"] == "marin-tiny"
    assert placed["llama_1_4b_8xh200"] == "marin-open"  # 1.25e20 is over every budget


def test_marin_formula_reproduces_published_flops_exactly():
    for path in FILES:
        info = read_results(path)[0]
        config, _ = llama_config(info["model_config"])
        if config is None:
            continue
        formula = 3 * marin_forward_flops_per_token(config) * info["total_tokens"]
        assert formula == pytest.approx(info["model_flops"], rel=1e-9)


def test_imported_tree_validates_with_recounted_flops(runs, monkeypatch):
    for f in FILES:
        import_file(f, runs, "auto", TRACKS)
    monkeypatch.chdir(runs.parent)
    result = CliRunner().invoke(cli, ["validate", "runs", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    by_name = {Path(r["path"]).name: r for r in report["runs"]}
    assert by_name["llama_75m"]["compute"]["verdict"] == "pass"
    assert by_name["llama_75m"]["compute"]["claim_ratio"] == pytest.approx(1, abs=0.005)
    assert "compute" not in by_name["hackable_transformer_gdn__130m"]


def test_choose_track_picks_the_smallest_budget_that_fits():
    assert choose_track(1e18, TRACKS) == "marin-tiny"
    assert choose_track(5e18, TRACKS) == "marin-small"
    assert choose_track(2e19, TRACKS) == "marin-medium"
    assert choose_track(1e21, TRACKS) == "marin-open"


def test_llama_config_refuses_other_architectures():
    config, reason = llama_config({"hidden_dim": 64, "intermediate_dim": 128, "num_layers": 2, "num_heads": 2,
                                   "seq_len": 32, "activation_function": "silu", "use_gated_deltanet": True})
    assert config is None and "use_gated_deltanet" in reason
    config, _ = llama_config({"hidden_dim": 64, "intermediate_dim": 128, "num_layers": 2, "num_heads": 2,
                              "num_kv_heads": 1, "seq_len": 32, "activation_function": "silu"})
    assert config == LlamaConfig(hidden=64, intermediate=128, layers=2, heads=2, kv_heads=1, seq_len=32)


def test_cli_import_and_bad_input(runs, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["import", "marin", str(FILES[0]), "--track", "auto", "--runs", str(runs)])
    assert result.exit_code == 0, result.output
    assert "imported 1 run(s)" in result.output
    again = runner.invoke(cli, ["import", "marin", str(FILES[0]), "--track", "auto", "--runs", str(runs)])
    assert again.exit_code == 2 and "--force" in again.output

    bad = tmp_path / "bad.json"
    bad.write_text('{"runs": [{"nope": 1}]}')
    result = runner.invoke(cli, ["import", "marin", str(bad), "--track", "auto", "--runs", str(runs)])
    assert result.exit_code == 1
    assert "bad.json::$.runs" in result.output and "Traceback" not in result.output

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = runner.invoke(cli, ["import", "marin", str(broken), "--track", "auto", "--runs", str(runs)])
    assert result.exit_code == 1 and "broken.json" in result.output
