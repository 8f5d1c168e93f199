"""ZIP submissions (`speedrun import-zip`) on a copy of the MaxCLIP constrained track: which archives are unpacked,
which are refused (with a rule id, and nothing written), and the pending state an unpacked run carries until the
organizers train it. Every archive is a real ZIP built with zipfile; the few that lie are patched byte by byte."""

from __future__ import annotations

import json
import shutil
import struct
import unicodedata
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from speedrun.cli import cli
from validator import zipentries

ROOT = Path(__file__).resolve().parents[1]
TRACK = ROOT / "runs" / "maxclip"
LOSS = (TRACK / "siglip-sigmoid" / "editable" / "loss.py").read_text(encoding="utf-8")


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture()
def track(tmp_path) -> Path:
    """runs/maxclip with one trained run, copied into tmp_path/runs."""
    runs = tmp_path / "runs"
    runs.mkdir()
    keep = {"_reference", "clip-infonce", "track.yaml", "frozen.json", "README.md"}
    shutil.copytree(TRACK, runs / "maxclip", ignore=lambda d, names: [
        n for n in names if n == "__pycache__" or (Path(d) == TRACK and n not in keep)])
    return runs / "maxclip"


def make_zip(path: Path, entries: dict[str, str | bytes] | list[tuple[str, str | bytes]],
             method: int = zipfile.ZIP_DEFLATED) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names some tests build on purpose
        with zipfile.ZipFile(path, "w", compression=method) as zf:
            for name, content in (entries.items() if isinstance(entries, dict) else entries):
                zf.writestr(name, content)
    return path


def snapshot(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def import_zip(z: Path, track: Path, name: str = "sub"):
    return invoke("import-zip", str(z), "--track", track.name, "--name", name, "--runs", str(track.parent))


def refused(z: Path, track: Path, rule: str, entry: str | None = None) -> str:
    before = snapshot(track.parent)
    result = import_zip(z, track, "refused")
    assert result.exit_code == 1, result.output
    assert f"[{rule}]" in result.output, result.output
    assert "nothing was written" in result.output and "fix:" in result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    if entry is not None:
        assert f"{z}::$entries[{entry!r}]" in result.output, result.output
    assert snapshot(track.parent) == before
    return result.output


# ------------------------------------------------------------------------------------------------- wrappers


def test_zip_of_the_editable_folder_alone_keeps_its_paths(track, tmp_path):
    """Every entry under `editable/` shares that top folder, but it is the run's own folder, not a wrapper."""
    z = make_zip(tmp_path / "sub.zip", {"editable/loss.py": LOSS})
    result = import_zip(z, track)
    assert result.exit_code == 0, result.output
    run = track / "sub"
    assert (run / "editable" / "loss.py").read_text(encoding="utf-8") == LOSS
    assert (run / "config.yaml").read_bytes() == (track / "_reference" / "config.yaml").read_bytes()
    assert not (run / "loss.py").exists()


@pytest.mark.parametrize("entries", [
    {"my-submission/editable/loss.py": LOSS},
    {"my-submission/": "", "my-submission/editable/": "", "my-submission/editable/loss.py": LOSS,
     "my-submission/config.yaml": "loss: {}\nupdate: {}\n"},
])
def test_a_wrapper_folder_is_stripped(track, tmp_path, entries):
    with zipfile.ZipFile(tmp_path / "sub.zip", "w") as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
    result = import_zip(tmp_path / "sub.zip", track)
    assert result.exit_code == 0, result.output
    assert (track / "sub" / "editable" / "loss.py").read_text(encoding="utf-8") == LOSS


# ------------------------------------------------------------------------------------------------ conflicts


@pytest.mark.parametrize("entries, entry", [
    ({"editable/x": "a", "editable/x/y": "b"}, "editable/x"),  # a file and a folder of one name
    ({"editable/x/y": "b", "editable/x": "a"}, "editable/x"),
    ([("editable/loss.py", "a"), ("editable/loss.py", "b")], "editable/loss.py"),  # zipfile allows duplicates
    ({"editable/Loss.py": "a", "editable/loss.py": "b"}, "editable/loss.py"),  # one file on macOS and Windows
    ({unicodedata.normalize("NFC", "editable/é.py"): "a", unicodedata.normalize("NFD", "editable/é.py"): "b"},
     unicodedata.normalize("NFD", "editable/é.py")),
    ({"editable/x/": "", "editable/x": "a"}, "editable/x"),  # a folder entry and a file entry
    ({"editable/loss.py/evil.py": "a"}, "editable/loss.py/evil.py"),  # the reference has a file there
    ({"editable/LOSS.py": "a"}, "editable/LOSS.py"),  # beside the reference's editable/loss.py, one name on macOS
])
def test_entries_that_name_one_path_twice_are_refused(track, tmp_path, entries, entry):
    refused(make_zip(tmp_path / "dup.zip", entries), track, "zip-entry-conflict", entry)


@pytest.mark.parametrize("name", ["editable/./loss.py", "editable//loss.py", "./editable/loss.py",
                                  "editable/lo\x1bss.py", "editable/../editable/loss.py"])
def test_names_that_are_not_plain_relative_paths_are_refused(track, tmp_path, name):
    refused(make_zip(tmp_path / "odd.zip", {name: LOSS}), track, "zip-unsafe-entry", name)


def test_compression_methods_without_an_output_bound_are_refused(track, tmp_path):
    z = make_zip(tmp_path / "bz.zip", {"editable/loss.py": LOSS}, method=zipfile.ZIP_BZIP2)
    assert "compression" in refused(z, track, "zip-unsafe-entry", "editable/loss.py")


# ------------------------------------------------------------------------------------------ size and shape


def test_too_many_files(track, tmp_path, monkeypatch):
    monkeypatch.setattr(zipentries, "MAX_FILES", 3)
    z = make_zip(tmp_path / "many.zip", {f"editable/m{i}.py": "x = 1\n" for i in range(4)})
    assert "4 files; the limit is 3" in refused(z, track, "zip-too-many-files")


def test_too_large(track, tmp_path, monkeypatch):
    monkeypatch.setattr(zipentries, "MAX_TOTAL_BYTES", 10_000)
    z = make_zip(tmp_path / "big.zip", {"editable/data.bin": bytes(range(256)) * 50}, method=zipfile.ZIP_STORED)
    assert "12,800 bytes" in refused(z, track, "zip-too-large")


def test_compression_ratio_of_a_bomb(track, tmp_path):
    z = make_zip(tmp_path / "bomb.zip", {"editable/zeros.py": b"\0" * (4 << 20)})
    refused(z, track, "zip-ratio-too-high")


@pytest.mark.parametrize("content", [b"", b"not a zip at all\n", b"PK\x03\x04" + b"\0" * 40])
def test_a_file_that_is_not_a_zip(track, tmp_path, content):
    z = tmp_path / "sub.zip"
    z.write_bytes(content)
    refused(z, track, "zip-unreadable")


def test_a_truncated_zip(track, tmp_path):
    z = make_zip(tmp_path / "cut.zip", {"editable/loss.py": LOSS, "config.yaml": "loss: {}\n"})
    z.write_bytes(z.read_bytes()[:-30])
    refused(z, track, "zip-unreadable")


def _lie_about_size(z: Path, declared: int, crc: int | None = None) -> None:
    """Rewrite the uncompressed size (and optionally the CRC) of the first entry in its local header and in the
    central directory, as a hostile archiver would."""
    data = bytearray(z.read_bytes())
    for signature, crc_at, size_at in ((b"PK\x03\x04", 14, 22), (b"PK\x01\x02", 16, 24)):
        at = data.index(signature)
        if crc is not None:
            struct.pack_into("<I", data, at + crc_at, crc)
        struct.pack_into("<I", data, at + size_at, declared)
    z.write_bytes(bytes(data))


def test_entries_that_decompress_past_their_declared_size_are_cut_off(track, tmp_path):
    real = b"x = 1\n" * 200_000
    z = make_zip(tmp_path / "liar.zip", {"editable/loss.py": real})
    _lie_about_size(z, 600)
    assert zipfile.ZipFile(z).infolist()[0].file_size == 600
    refused(z, track, "zip-unreadable", "editable/loss.py")

    # With a CRC that matches the first 600 bytes, the archive is self-consistent: no more than those are written.
    _lie_about_size(z, 600, zlib.crc32(real[:600]))
    result = import_zip(z, track)
    assert result.exit_code == 0, result.output
    assert (track / "sub" / "editable" / "loss.py").read_bytes() == real[:600]


def test_streaming_copy_stops_at_the_limit(tmp_path):
    z = make_zip(tmp_path / "s.zip", {"a": b"y" * 100_000})
    with zipfile.ZipFile(z) as zf, zf.open("a") as src, open(tmp_path / "out", "wb") as out:
        with pytest.raises(zipentries.Overflow):
            zipentries.copy_bounded(src, out, 50_000)
    assert (tmp_path / "out").stat().st_size <= 50_000


# ---------------------------------------------------------------------------------------- claims, pending


def _raised_analysis() -> str:
    data = json.loads((TRACK / "clip-infonce" / "speedrun_analysis.json").read_text(encoding="utf-8"))
    for result in data["results"]:
        for point in result["curve"]:
            for k in ("zeroshot_top1", "retrieval_r1"):
                point[k] = round(point[k] + 0.2, 3)
        result["final"] = {k: v for k, v in result["curve"][-1].items() if k != "samples"}
    data["name"] = "refused"
    return json.dumps(data)


@pytest.mark.parametrize("claim", ["speedrun_analysis.json", "sub/speedrun_analysis.json", "speedrun_analysis.yaml",
                                   "README.md", "logs/seed0.log", "reproductions/r.json"])
def test_a_zip_cannot_carry_results(track, tmp_path, claim):
    entries = {"editable/loss.py": LOSS, "config.yaml": "loss: {}\n", claim: _raised_analysis()}
    if claim.startswith("sub/"):
        entries = {f"sub/{k}" if not k.startswith("sub/") else k: v for k, v in entries.items()}
    refused(make_zip(tmp_path / "claim.zip", entries), track, "zip-claims-results", claim)


def _pending_run(track: Path, tmp_path: Path, name: str = "sub") -> Path:
    z = make_zip(tmp_path / f"{name}.zip", {"editable/loss.py": LOSS})
    result = import_zip(z, track, name)
    assert result.exit_code == 0, result.output
    assert "pending" in result.output
    return track / name


def test_an_imported_run_is_pending_not_valid(track, tmp_path):
    run = _pending_run(track, tmp_path)
    marker = (run / "PENDING.md").read_text(encoding="utf-8")
    assert "sub.zip" in marker and "python run.py" in marker
    assert not (run / "speedrun_analysis.json").exists()

    result = invoke("validate", str(run), "--no-flops", "--format", "json")
    assert result.exit_code == 0, result.output
    checked = json.loads(result.output)["runs"][0]
    assert checked["pending"] is True and checked["valid"] is False and checked["errors"] == []
    assert [w["rule"] for w in checked["warnings"]] == ["zip-pending"]
    text = invoke("validate", str(track), "--no-flops")
    assert text.exit_code == 0, text.output
    assert "sub (maxclip): pending" in text.output and "1 pending" in text.output

    # pending does not excuse frozen code: the check still runs on the unpacked folder
    (run / "run.py").write_text("SAMPLES_SEEN = 1\n", encoding="utf-8")
    result = invoke("validate", str(run), "--no-flops")
    assert result.exit_code == 1 and "frozen-file-modified" in result.output


def test_a_folder_without_analysis_or_marker_is_still_missing_its_analysis(track, tmp_path):
    run = _pending_run(track, tmp_path)
    (run / "PENDING.md").unlink()
    result = invoke("validate", str(run), "--no-flops")
    assert result.exit_code == 1 and "missing-analysis" in result.output


def test_the_leaderboard_lists_a_pending_run_without_ranking_it(track, tmp_path):
    _pending_run(track, tmp_path)
    site = tmp_path / "site"
    result = invoke("build", "--runs", str(track.parent), "--out", str(site), "--no-flops", "--no-charts",
                    "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 0, result.output
    board = json.loads((site / "tracks" / "maxclip.json").read_text(encoding="utf-8"))
    assert [e["name"] for e in board["entries"]] == ["clip-infonce"]
    assert [r["name"] for r in board["invalid"]] == []
    assert board["pending"] == ["sub"]
    page = (site / "tracks" / "maxclip.html").read_text(encoding="utf-8")
    assert 'id="pending"' in page and "sub" in page
