"""The pages as a reader meets them, read by structure from a build of the bundled runs: what each competition is,
units and rule names on every figure, tracks in budget order, the leaderboard before the rules, a "what changed"
column, headers that do not wrap, and MaxCLIP's unconstrained board ranked within each architecture."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup

from leaderboard.build import build_site

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("layout")
    runs = tmp / "runs"
    shutil.copytree(ROOT / "runs", runs, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp / "site"
    build_site(runs, out, flops=False, charts=False, jobs=1)
    return out


def _soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _text(node) -> str:
    return " ".join(node.get_text(" ", strip=True).split())


def test_index_says_what_each_competition_is(site):
    index = _soup(site / "index.html")
    sections = index.select("section.competition")
    assert len(sections) == 4
    for section in sections:
        what = section.select_one("p.what")
        assert what is not None and len(_text(what)) > 40, section["id"]


def test_index_lists_tracks_by_budget_with_budgets_as_competitions_write_them(site):
    marin = _soup(site / "index.html").select_one("#competition-marin")
    rows = marin.select("tr[data-track]")
    assert [r["data-track"] for r in rows] == ["marin-tiny", "marin-small", "marin-medium", "marin-open"]
    assert [_text(r.select_one("td.budget")) for r in rows] == ["3e18 FLOPs", "6e18 FLOPs", "3e19 FLOPs", "no budget"]
    local = _soup(site / "index.html").select_one("#competition-marin-local")
    assert [r["data-track"] for r in local.select("tr[data-track]")] == [
        "marin-local-tiny", "marin-local-small", "marin-local-medium"]


def test_index_record_names_its_rule_unit_and_date(site):
    row = _soup(site / "index.html").select_one('tr[data-track="digits-classification"]')
    cells = row.select("td")
    assert "samples to Top-1 accuracy (val) ≥ 0.95" in _text(cells[2])  # the rule, not "primary metric"
    record = row.select_one("td.record")
    assert "samples" in _text(record.select_one(".figure"))
    assert record.select_one(".date").get_text() == "2026-11-22"
    lm = _soup(site / "index.html").select_one('tr[data-track="marin-local-tiny"] td.record .figure')
    assert _text(lm).endswith("bits/byte")


def test_track_page_puts_the_leaderboard_before_the_rules(site):
    page = _soup(site / "tracks" / "digits-classification.html")
    order = [s.get("id") for s in page.select("main section")]
    assert order.index("leaderboard") < order.index("rules")
    glance = page.select_one("p.glance")
    assert "32,768 samples" in _text(glance) and "Rules v1.0" in _text(glance)


def test_track_table_has_a_what_changed_column_and_short_headers(site):
    page = _soup(site / "tracks" / "marin-local-tiny.html")
    table = page.select_one("table.leaderboard")
    headers = [_text(th) for th in table.select("thead th")]
    assert headers[2] == "What changed"
    assert all(len(h) <= 32 for h in headers), headers  # at most two short lines, never six
    for row in table.select("tbody tr"):
        assert row.select_one("td.changes") is not None


def test_language_tracks_count_tokens(site):
    table = _soup(site / "tracks" / "marin-local-tiny.html").select_one("table.leaderboard")
    headers = [_text(th) for th in table.select("thead th")]
    assert "Tokens" in headers and "Samples" not in headers
    row = table.select_one('tr[data-run="bytegpt-tiny"]')
    cell = row.select("td")[headers.index("Tokens")]
    assert int(cell["data-value"]) == 8824 * 128  # sequences seen x its 128-byte sequence length
    assert _text(cell) == "1.13M"


def test_settings_track_does_not_repeat_a_column(site):
    table = _soup(site / "tracks" / "maxclip.html").select_one("table.leaderboard")
    for row in table.select("tbody tr"):
        texts = [_text(td) for td in row.select("td")]
        figures = [t for t in texts if "±" in t]
        assert len(figures) == len(set(figures)), texts


def test_p_value_and_speedup_are_explained(site):
    page = _soup(site / "tracks" / "digits-classification.html")
    notes = _text(page.select_one(".table-notes"))
    assert "p-value" in notes and "one-sided t-test" in notes and "α = 0.05" in notes
    comparisons = page.select_one("#comparisons")
    assert "Speedup (wall time)" in [_text(th) for th in comparisons.select("th")]
    assert "depends on the machine" in _text(comparisons)


def test_unconstrained_maxclip_board_ranks_within_each_architecture(site):
    page = _soup(site / "tracks" / "maxclip-open.html")
    tables = page.select("table.leaderboard[data-group]")
    groups = [t["data-group"] for t in tables]
    assert groups == ["ViT-L/14 (OpenCLIP), 224x224", "ViT-B/16 (OpenCLIP), 224x224", "ViT-B/32 (OpenCLIP), 224x224"]
    for table in tables:
        ranks = [int(r.select_one("td")["data-value"]) for r in table.select("tbody tr")]
        assert ranks == list(range(1, len(ranks) + 1))
    b32 = tables[2]
    assert [r["data-run"] for r in b32.select("tbody tr")] == ["datacomp-m-vit-b32", "datacomp-s-vit-b32"]
    # a record per architecture on the index and in the record history
    index_row = _soup(site / "index.html").select_one('tr[data-track="maxclip-open"]')
    assert len(index_row.select("ul.group-records li")) == 3
    history = [_text(li) for li in page.select("#records li")]
    assert len(history) == 3 and any("ViT-B/32" in h and "datacomp-m-vit-b32" in h for h in history)


def test_group_by_must_name_a_text_field_of_the_run(tmp_path):
    track = tmp_path / "maxclip-open"
    shutil.copytree(ROOT / "runs" / "maxclip-open", track)
    data = yaml.safe_load((track / "track.yaml").read_text())
    data["ranking"]["group_by"] = {"field": "model.parameters", "title": "size"}
    (track / "track.yaml").write_text(yaml.safe_dump(data))
    done = subprocess.run([sys.executable, "-m", "speedrun", "validate", str(tmp_path), "--no-flops"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ranking.group_by.field" in done.stdout and "not a text field" in done.stdout, done.stdout
    assert "Traceback" not in done.stdout + done.stderr
