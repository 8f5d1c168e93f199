"""The run page's diff view (which run it compares with, and the diff of the training scripts), its FLOPs-by-module
table and its breadcrumb, read from built pages by their HTML structure."""

import difflib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from leaderboard import build as build_mod
from leaderboard.render import render_track
from leaderboard.trackdata import gather

ROOT = Path(__file__).resolve().parents[1]
TRACK = "digits-classification"


def _variant(track: Path, name: str, date: str, delta: float, script: str | None = None) -> Path:
    """A copy of mlp-baseline named `name`, dated `date`, its accuracy moved by `delta` (in its logs too, or the
    claim would not be valid), and its run.py replaced by `script` when given."""
    run = track / name
    shutil.copytree(track / "mlp-baseline", run, ignore=shutil.ignore_patterns("reproductions"))
    data = json.loads((run / "speedrun_analysis.json").read_text())
    data["name"], data["date"] = name, date
    for r in data["results"]:
        for p in r["curve"]:
            p["val_top1"] = round(min(1.0, p["val_top1"] + delta), 6)
        r["final"]["val_top1"] = r["curve"][-1]["val_top1"]
    (run / "speedrun_analysis.json").write_text(json.dumps(data))
    for log in (run / "logs").glob("*.log"):
        log.write_text(re.sub(r"(val_top1 )(\d\.\d+)", lambda m: f"{m[1]}{min(1.0, float(m[2]) + delta):.4f}",
                              log.read_text()))
    if script is not None:
        (run / "run.py").write_text(script)
    return run


@pytest.fixture()
def runs(tmp_path):
    """mlp-baseline (the first record), ast-5pct (declares mlp-baseline its baseline), `faster` (a day later, a
    better run with an edited script: the next record) and `slower` (later still, worse, the same script as
    `faster`)."""
    runs = tmp_path / "runs"
    shutil.copytree(ROOT / "runs" / TRACK, runs / TRACK, ignore=shutil.ignore_patterns(
        "ast-10pct", "ast-15pct", "ast-20pct", "__pycache__", "reproductions"))
    track = runs / TRACK
    base = (track / "mlp-baseline" / "run.py").read_text()
    edited = base.replace("hidden", "width").replace('"""Digits MLP baseline', '"""Digits MLP, a wider one')
    _variant(track, "faster", "2026-11-23", 0.01, edited)
    _variant(track, "slower", "2026-11-24", -0.01, edited)
    return runs


def _build(runs: Path, out: Path, monkeypatch, flops: bool = False) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    build_mod.build_site(runs, out, flops=flops, jobs=1, charts=False)


def _page(out: Path, run: str) -> BeautifulSoup:
    return BeautifulSoup((out / "runs" / TRACK / f"{run}.html").read_text(encoding="utf-8"), "html.parser")


def _shown_diff(page: BeautifulSoup) -> list[tuple[str, str]]:
    return [(span["class"][0], span.get_text().rstrip("\n")) for span in page.select("#diff pre.diff code > span")]


def test_each_run_says_which_run_it_is_compared_with_and_why(runs, tmp_path, monkeypatch):
    out = tmp_path / "site"
    _build(runs, out, monkeypatch)

    def compared(run: str) -> tuple[str, str | None]:
        p = _page(out, run).select_one("#diff p.compared")
        return (" ".join(p.get_text().split()), p.a["href"]) if p else ("", None)

    assert compared("ast-5pct") == ("Compared with its baseline mlp-baseline.", "mlp-baseline.html")
    assert compared("faster") == ("Compared with mlp-baseline, the record it beat on 2026-11-23.",
                                  "mlp-baseline.html")
    assert compared("slower") == ("Compared with faster, the record standing on 2026-11-24, which this run did "
                                  "not beat.", "faster.html")
    first = _page(out, "mlp-baseline").select_one("#diff")
    assert compared("mlp-baseline") == ("", None) and first.select("pre.diff") == []
    assert first.select_one("p.note").get_text(strip=True).startswith("The first record on this track")
    meta = _page(out, "faster").select_one("dl.meta")
    assert [a["href"] for a in meta.find("dt", string="Compared with").find_next_sibling("dd").select("a")] == \
        ["mlp-baseline.html", "#diff"]


def test_the_diff_is_the_unified_diff_of_the_scripts_with_its_lines_marked(runs, tmp_path, monkeypatch):
    out = tmp_path / "site"
    _build(runs, out, monkeypatch)
    track = runs / TRACK
    old = (track / "mlp-baseline" / "run.py").read_text().splitlines()
    new = (track / "faster" / "run.py").read_text().splitlines()
    expected = list(difflib.unified_diff(old, new, "mlp-baseline/run.py", "faster/run.py", n=3, lineterm=""))
    page = _page(out, "faster")
    shown = _shown_diff(page)
    assert [text for _, text in shown] == expected
    kinds = {kind for kind, _ in shown}
    assert {"add", "del", "hunk", "ctx", "file"} == kinds
    assert all(text.startswith("+") for kind, text in shown if kind == "add")
    assert all(text.startswith("-") for kind, text in shown if kind == "del")
    assert all(text.startswith("@@") for kind, text in shown if kind == "hunk")
    added = sum(1 for line in expected[2:] if line.startswith("+"))
    removed = sum(1 for line in expected[2:] if line.startswith("-"))
    stat = page.select_one("#diff p.diffstat")
    assert (stat.select_one(".added").get_text(), stat.select_one(".removed").get_text()) == \
        (f"+{added}", f"−{removed}")
    assert added and removed


def test_identical_scripts_are_said_to_be_identical(runs, tmp_path, monkeypatch):
    out = tmp_path / "site"
    _build(runs, out, monkeypatch)
    diff = _page(out, "slower").select_one("#diff")
    assert diff.select("pre.diff") == []
    assert diff.select_one("p.identical").get_text(strip=True) == "The training scripts are identical (run.py)."


def test_a_very_large_diff_is_cut_and_says_how_much_is_left_out(runs, tmp_path, monkeypatch):
    from leaderboard.diffview import DIFF_MAX_LINES

    track = runs / TRACK
    (track / "faster" / "run.py").write_text("".join(f"changed line {i}\n" for i in range(1000)))
    out = tmp_path / "site"
    _build(runs, out, monkeypatch)
    page = _page(out, "faster")
    old = (track / "mlp-baseline" / "run.py").read_text().splitlines()
    total = len(list(difflib.unified_diff(old, [f"changed line {i}" for i in range(1000)], lineterm="")))
    assert len(_shown_diff(page)) == DIFF_MAX_LINES
    notes = [p.get_text(" ", strip=True) for p in page.select("#diff p.note")]
    assert notes == [f"{total - DIFF_MAX_LINES:,} more lines of the diff are not shown: the page shows its first "
                     f"{DIFF_MAX_LINES}."]
    assert page.select_one("#diff .added").get_text() == "+1,000"  # the counts are of the whole diff


def test_a_script_that_cannot_be_read_gives_a_note_and_the_other_pages_still_build(runs, tmp_path):
    """The compared run's script turns into a link out of its folder (or goes missing) between gathering and
    rendering: that page says why there is no diff, shows nothing of the file, and every run page is written."""
    data = gather(runs)
    track = next(t for t in data["tracks"] if t["id"] == TRACK)
    base_script = runs / TRACK / "mlp-baseline" / "run.py"
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET\n")
    base_script.unlink()
    os.symlink(secret, base_script)
    (runs / TRACK / "faster" / "run.py").unlink()
    pages = dict(render_track(track, None, None, runs / TRACK))
    names = {"ast-5pct", "faster", "slower", "mlp-baseline"}
    assert {f"runs/{TRACK}/{n}.html" for n in names} <= set(pages)

    def note(run: str) -> str:
        diff = BeautifulSoup(pages[f"runs/{TRACK}/{run}.html"], "html.parser").select_one("#diff")
        assert diff.select("pre.diff") == []
        return diff.select_one("p.note").get_text(" ", strip=True)

    assert note("ast-5pct") == ("No diff: mlp-baseline's run.py could not be read (run.py is a link to a file "
                                "outside its folder; it was not read).")
    assert note("faster") == "No diff: this run's run.py could not be read (run.py does not exist)."
    assert "TOP SECRET" not in pages[f"runs/{TRACK}/ast-5pct.html"]


def test_the_track_is_linked_once_from_a_run_page(runs, tmp_path, monkeypatch):
    out = tmp_path / "site"
    _build(runs, out, monkeypatch)
    page = _page(out, "faster")
    links = page.select(f'a[href="../../tracks/{TRACK}.html"]')
    assert len(links) == 1
    assert links[0].find_parent("p")["class"] == ["crumbs"] and links[0].find_parent("main") is not None
    assert page.select("header.site a[href*='tracks/']") == []


# ------------------------------------------------------------------------------- forward FLOPs by module

# The counter's figures for the bundled marin-local-tiny/bytegpt-hf-tiny (`speedrun build` with FLOPs): every
# module on the call stack is credited, and "Global" is the whole forward pass.
HF_TINY = {"GPT2LMHeadModel": 37748736, "Global": 37748736, "GPT2LMHeadModel.transformer": 33554432,
           "GPT2LMHeadModel.lm_head": 4194304}
for _i in (0, 1):
    _h = f"GPT2LMHeadModel.transformer.h.{_i}"
    HF_TINY.update({_h: 16777216, f"{_h}.attn": 8388608, f"{_h}.mlp": 8388608, f"{_h}.attn.c_attn": 3145728,
                    f"{_h}.attn.c_proj": 1048576, f"{_h}.mlp.c_fc": 4194304, f"{_h}.mlp.c_proj": 4194304})


def test_module_rows_read_as_a_tree_with_the_total_once_and_shares():
    from leaderboard.moduletable import module_table

    table = module_table(HF_TINY)
    assert (table["total"], table["model"]) == (37748736, "GPT2LMHeadModel")
    rows = [(r["depth"], r["label"], r["flops"], round(r["share"] * 100, 1)) for r in table["rows"]]
    assert rows[:7] == [(0, "transformer", 33554432, 88.9), (1, "h[0]", 16777216, 44.4),
                        (2, "attn", 8388608, 22.2), (3, "c_attn", 3145728, 8.3), (3, "c_proj", 1048576, 2.8),
                        (3, "(its own operations)", 4194304, 11.1), (2, "mlp", 8388608, 22.2)]
    assert rows[-1] == (0, "lm_head", 4194304, 11.1)
    assert all(r["path"] != "Global" and r["label"] not in ("Global", "GPT2LMHeadModel") for r in table["rows"])
    assert sum(r["flops"] for r in table["rows"] if r["depth"] == 0) == table["total"]


def test_a_wrapper_that_repeats_its_only_child_is_one_row():
    from leaderboard.moduletable import module_table

    table = module_table({"Global": 10, "Net": 10, "Net.body": 8, "Net.body.0": 8, "Net.head": 2})
    assert [(r["depth"], r["label"], r["path"]) for r in table["rows"]] == \
        [(0, "body[0]", "Net.body.0"), (0, "head", "Net.head")]
    assert module_table({})["rows"] == [] and module_table(None)["rows"] == []


# marin-tiny/llama_50m_gpu's figures: four blocks with the same breakdown
LLAMA_50M = {"Global": 56975425536, "Llama": 56975425536, "Llama.lm_head": 50432311296}
for _i in range(4):
    _b = f"Llama.blocks.{_i}"
    LLAMA_50M.update({_b: 1635778560, f"{_b}.attn": 1107296256, f"{_b}.mlp": 528482304})
    LLAMA_50M.update({f"{_b}.attn.{p}": 75497472 for p in "qkvo"})
    LLAMA_50M.update({f"{_b}.mlp.{p}": 176160768 for p in ("gate", "up", "down")})


def test_layers_alike_in_every_figure_share_one_row_with_their_sum():
    from leaderboard.moduletable import module_table

    table = module_table(LLAMA_50M)
    rows = [(r["depth"], r["label"], r["flops"]) for r in table["rows"]]
    assert rows[:3] == [(0, "lm_head", 50432311296), (0, "blocks[0–3] (4 alike)", 4 * 1635778560),
                        (1, "attn", 4 * 1107296256)]
    assert len(rows) == 12 and table["grouped"]
    assert sum(r["flops"] for r in table["rows"] if r["depth"] == 0) == table["total"]
    assert table["rows"][1]["path"] == "Llama.blocks.0 and 3 alike"
    two = {k: v for k, v in LLAMA_50M.items() if not k.startswith(("Llama.blocks.2", "Llama.blocks.3"))}
    two["Global"] = two["Llama"] = 50432311296 + 2 * 1635778560
    assert [r["label"] for r in module_table(two)["rows"] if r["depth"] == 0][1:] == ["blocks[0]", "blocks[1]"]


def test_the_run_page_module_table_has_no_repeated_totals(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    shutil.copytree(ROOT / "runs" / TRACK, runs / TRACK, ignore=shutil.ignore_patterns(
        "ast-*", "__pycache__", "reproductions"))
    out = tmp_path / "site"
    _build(runs, out, monkeypatch, flops=True)
    compute = _page(out, "mlp-baseline").select_one("#compute")
    table = compute.select_one("table.modules")
    rows = [[td.get_text(strip=True) for td in tr.select("td")] for tr in table.select("tbody tr")]
    total = compute.find("dt", string="Per sample").find_next_sibling("dd").get_text()
    forward = re.search(r"forward (\S+) FLOPs", total)[1]
    assert table.caption.get_text(" ", strip=True).startswith(f"Whole model (Sequential): {forward} forward FLOPs")
    names = [r[0] for r in rows]
    assert "Global" not in names and "Sequential" not in names and len(set(names)) == len(names)
    assert [r[2] for r in rows] == ["86.5%", "13.5%"]
    assert [r[0] for r in rows] == ["[0]", "[2]"]
    assert [td["title"] for td in table.select("tbody td:first-child")] == ["Sequential.0", "Sequential.2"]


def test_on_a_phone_the_diff_scrolls_in_its_own_box(runs, tmp_path, monkeypatch):
    """At 400 px a diff of long lines scrolls sideways inside its box; the page itself does not widen."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed")
    long_lines = "".join(f"value_{i} = {'x' * 150!r}  # a line far wider than a phone\n" for i in range(5))
    (runs / TRACK / "faster" / "run.py").write_text(long_lines)
    out = tmp_path / "site"
    _build(runs, out, monkeypatch)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 400, "height": 800})
            page.goto((out / "runs" / TRACK / "faster.html").as_uri())
            assert page.evaluate("document.documentElement.scrollWidth") <= 400
            box = page.evaluate("(() => { const e = document.querySelector('#diff pre.diff');"
                                " return [e.scrollWidth, e.clientWidth, getComputedStyle(e).overflowX]; })()")
            assert box[0] > box[1] and box[2] == "auto"
            added = page.evaluate("getComputedStyle(document.querySelector('#diff pre.diff span.add'))"
                                  ".backgroundColor")
            assert added not in ("rgba(0, 0, 0, 0)", "transparent")
        finally:
            browser.close()


def test_a_constrained_run_is_diffed_on_the_files_it_may_change(tmp_path, monkeypatch):
    """On MaxCLIP only editable/** and config.yaml may differ from the frozen reference, so those are what the
    diff shows (run.py is frozen and identical by rule): siglip-sigmoid against the record clip-infonce."""
    runs = tmp_path / "runs"
    shutil.copytree(ROOT / "runs" / "maxclip", runs / "maxclip", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "site"
    _build(runs, out, monkeypatch)
    page = BeautifulSoup((out / "runs" / "maxclip" / "siglip-sigmoid.html").read_text(encoding="utf-8"),
                         "html.parser")
    headers = [text for kind, text in _shown_diff(page) if kind == "file"]
    assert "--- clip-infonce/editable/loss.py" in headers and "+++ siglip-sigmoid/config.yaml" in headers
    assert not any("run.py" in h for h in headers)
    root = runs / "maxclip"
    expected = list(difflib.unified_diff((root / "clip-infonce/editable/loss.py").read_text().splitlines(),
                                         (root / "siglip-sigmoid/editable/loss.py").read_text().splitlines(),
                                         "clip-infonce/editable/loss.py", "siglip-sigmoid/editable/loss.py",
                                         n=3, lineterm=""))
    shown = [text for _, text in _shown_diff(page)]
    start = shown.index(expected[0])
    assert shown[start:start + len(expected)] == expected
    assert "identical" not in page.select_one("#diff").get_text()
