"""`speedrun build`: read the produced site by its HTML structure."""

import json
import shutil
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner

from leaderboard import build as build_mod
from speedrun.cli import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def tree(tmp_path):
    """A copy of the bundled runs plus one invalid run and one run with HTML in its description."""
    runs = tmp_path / "runs"
    shutil.copytree(ROOT / "runs" / "digits-classification", runs / "digits-classification",
                    ignore=shutil.ignore_patterns("ast-*", "__pycache__", "reproductions"))
    track = runs / "digits-classification"
    good = track / "mlp-baseline"

    bad = track / "broken-run"
    shutil.copytree(good, bad)
    data = json.loads((bad / "speedrun_analysis.json").read_text())
    data["name"] = "broken-run"
    data["compute"]["samples_seen"] = 99
    (bad / "speedrun_analysis.json").write_text(json.dumps(data))

    sneaky = track / "sneaky"
    shutil.copytree(good, sneaky)
    data = json.loads((sneaky / "speedrun_analysis.json").read_text())
    data["name"] = "sneaky"
    data["description"] = "<script>alert(1)</script> wider MLP"
    for r in data["results"]:  # slightly worse: ranks second
        for p in r["curve"]:
            p["val_top1"] = round(p["val_top1"] - 0.01, 6)
        r["final"]["val_top1"] = r["curve"][-1]["val_top1"]
    (sneaky / "speedrun_analysis.json").write_text(json.dumps(data))
    return runs


def _build(runs, out, monkeypatch, epoch="1700000000"):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
    result = CliRunner().invoke(cli, ["build", "--runs", str(runs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return result


def _soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def test_index_links_each_track(tree, tmp_path, monkeypatch):
    out = tmp_path / "site"
    _build(tree, out, monkeypatch)
    index = _soup(out / "index.html")
    row = index.select_one('tr[data-track="digits-classification"]')
    assert row is not None
    link = row.select_one("a")
    assert link["href"] == "tracks/digits-classification.html"
    assert (out / link["href"]).is_file()
    cells = [td.get_text(strip=True) for td in row.select("td")]
    assert cells[4] == "2"  # ranked runs
    assert cells[5] == "1"  # invalid runs


def test_track_page_ranks_valid_runs_and_lists_invalid_ones(tree, tmp_path, monkeypatch):
    out = tmp_path / "site"
    _build(tree, out, monkeypatch)
    page = _soup(out / "tracks" / "digits-classification.html")
    rows = page.select("table.leaderboard tbody tr")
    assert [r["data-run"] for r in rows] == ["mlp-baseline", "sneaky"]
    assert [r.select("td")[0].get_text(strip=True) for r in rows] == ["1", "2"]
    run_link = rows[0].select_one("a")["href"]
    assert (out / "tracks" / run_link).resolve().is_file()

    invalid = page.select_one("section#invalid")
    assert invalid is not None
    article = invalid.select_one('article[data-run="broken-run"]')
    assert "samples-inconsistent" in article.get_text()
    assert page.select_one("section#rules .version").get_text(strip=True) == "v1.0"


def test_html_is_escaped(tree, tmp_path, monkeypatch):
    out = tmp_path / "site"
    _build(tree, out, monkeypatch)
    html = (out / "runs" / "digits-classification" / "sneaky.html").read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_leaderboard_json_matches_pages(tree, tmp_path, monkeypatch):
    out = tmp_path / "site"
    _build(tree, out, monkeypatch)
    data = json.loads((out / "leaderboard.json").read_text())
    track = next(t for t in data["tracks"] if t["id"] == "digits-classification")
    assert [e["name"] for e in track["entries"]] == ["mlp-baseline", "sneaky"]
    assert track["invalid"][0]["name"] == "broken-run"
    assert track["entries"][0]["figures"][0]["n"] == 3
    assert data["competitions"][0]["tracks"] == ["digits-classification"]


def test_build_is_deterministic(tree, tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    _build(tree, a, monkeypatch)
    _build(tree, b, monkeypatch)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_failed_build_leaves_previous_site(tree, tmp_path, monkeypatch, jobs):
    out = tmp_path / "site"
    _build(tree, out, monkeypatch)
    before = (out / "index.html").read_bytes()

    real_write = build_mod._Writer.write
    calls = {"n": 0}

    def failing_write(self, *args, **kwargs):  # a disk that fills up halfway through the build
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(28, "No space left on device")
        return real_write(self, *args, **kwargs)

    # With two jobs the workers are forked, so they inherit the failing writer and the error crosses back.
    monkeypatch.setattr(build_mod._Writer, "write", failing_write)
    result = CliRunner().invoke(cli, ["build", "--runs", str(tree), "--out", str(out), "--jobs", jobs])
    monkeypatch.setattr(build_mod._Writer, "write", real_write)
    assert result.exit_code == 2
    assert "No space left" in result.output and "Traceback" not in result.output
    assert (out / "index.html").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site.")]


def test_bundled_runs_build(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "site"
    summary = build_mod.build_site(Path("runs"), out)
    assert summary.invalid_runs == 0 and summary.valid_runs >= 1
    assert (out / "index.html").is_file()
