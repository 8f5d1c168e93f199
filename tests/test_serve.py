"""`speedrun serve`: build from a local folder or an fsspec URL and serve over HTTP on localhost."""

import shutil
import urllib.request
from pathlib import Path

import fsspec
import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner

from leaderboard.serve import Leaderboard
from speedrun.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        return resp.read().decode("utf-8")


def _check(board: Leaderboard) -> None:
    index = BeautifulSoup(_get(board.url + "index.html"), "html.parser")
    assert index.select_one('tr[data-track="digits-classification"] a')["href"] == "tracks/digits-classification.html"
    track = BeautifulSoup(_get(board.url + "tracks/digits-classification.html"), "html.parser")
    assert [r["data-run"] for r in track.select("table.leaderboard tbody tr")] == ["mlp-baseline"]
    assert '"entries"' in _get(board.url + "tracks/digits-classification.json")


def test_serves_a_local_folder(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(ROOT / "runs" / "digits-classification", runs / "digits-classification")
    board = Leaderboard(str(runs), port=0, charts=False).start()
    try:
        _check(board)
    finally:
        board.close()


@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_serves_an_fsspec_url(scheme, tmp_path):
    src = ROOT / "runs" / "digits-classification"
    if scheme == "memory":
        fs = fsspec.filesystem("memory")
        base = f"/bucket-{tmp_path.name}/runs"
        for path in src.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                fs.pipe(f"{base}/digits-classification/{path.relative_to(src).as_posix()}", path.read_bytes())
        url = f"memory://{base}"
    else:
        shutil.copytree(src, tmp_path / "runs" / "digits-classification")
        url = f"file://{tmp_path / 'runs'}"
    board = Leaderboard(url, port=0, charts=False).start()
    try:
        _check(board)
    finally:
        board.close()


def test_bad_storage_path_is_one_line_exit_1(tmp_path):
    result = CliRunner().invoke(cli, ["serve", "--storage-path", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "no such folder" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["serve", "--storage-path", "memory://empty-bucket-xyz"])
    assert result.exit_code == 1 and "nothing there" in result.output
