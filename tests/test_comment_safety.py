"""Strings a submission chose cannot take effect in the PR comment: no mention, reference, link, image, raw HTML or
marker of theirs survives, and none of them can close the code span it is shown in.

The comment is rendered with cmark-gfm (GitHub's own Markdown parser, raw HTML let through so it is visible), then
read the way GitHub's post-processing reads it: mentions, issue references and emoji only count in text outside
`<code>`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cmarkgfm
import pytest
import yaml
from bs4 import BeautifulSoup
from click.testing import CliRunner
from cmarkgfm.cmark import Options

from speedrun.cli import cli
from validator import bot
from validator.mdsafe import clean, code, image, prose
from validator.problems import Problem
from validator.reporter import COMMENT_MARKER, markdown
from validator.result import Report, RunResult, TrackResult

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "runs" / "digits-classification"

EVIL = ("@octocat ![x](https://evil.example/x.png) [click](https://evil.example) `code` `` ` `` ``` "
        "<img src=x> <a href=https://evil.example>a</a> <details><summary>s</summary> <!-- speedrun-report --> "
        "#123 GH-7 www.evil.example https://evil.example :smile: &#64;octocat\n# heading\nline2 | pipe \u202eevil")
# Folder names cannot hold '/', so the run's own folder name carries what fits.
EVIL_FOLDER = "evil @octocat ![x](evil.png) `a` ``` <img src=x> | \n #1"
LIVE_OUTSIDE_CODE = re.compile(r"@\w|#\d|\bgh-\d|https?:|www\.|:[a-z0-9_+-]+:|`", re.IGNORECASE)
TEMPLATE_TAGS = {"h2", "h3", "p", "strong", "code", "table", "thead", "tbody", "tr", "th", "td", "hr", "sub"}


def render(md: str) -> BeautifulSoup:
    html = cmarkgfm.github_flavored_markdown_to_html(md, options=Options.CMARK_OPT_UNSAFE)
    return BeautifulSoup(html, "html.parser")


def text_outside_code(soup: BeautifulSoup) -> list[str]:
    return [s for s in soup.find_all(string=True) if s.find_parent("code") is None]


def assert_inert(md: str, allowed_tags: set[str] = TEMPLATE_TAGS) -> BeautifulSoup:
    """What GitHub would make live in `md` is only what the report's template put there."""
    soup = render(md)
    tags = {t.name for t in soup.find_all(True)}
    assert tags <= allowed_tags, f"tags from a submission: {tags - allowed_tags}\n{md}"
    assert md.count("<!--") == 1 and md.startswith(COMMENT_MARKER), md
    for piece in text_outside_code(soup):
        assert not LIVE_OUTSIDE_CODE.search(piece), f"live outside a code span: {piece!r}\n{md}"
    _assert_tables_keep_their_columns(md)
    return soup


def _assert_tables_keep_their_columns(md: str) -> None:
    """cmark-gfm splits a row at every `|` not preceded by a backslash: each row has its header's cell count."""
    width = None
    for line in md.splitlines():
        if not line.startswith("|"):
            width = None
            continue
        cells = len(re.findall(r"(?<!\\)\|", line))
        width = width or cells
        assert cells == width, f"a cell broke out of its column: {line}"


def code_texts(soup: BeautifulSoup) -> str:
    return "\n".join(c.get_text() for c in soup.find_all("code"))


@pytest.fixture()
def hostile_tree(tmp_path, monkeypatch):
    """A runs tree whose track (as a PR could edit it) and whose new run carry hostile strings everywhere."""
    track = tmp_path / "runs" / "digits-classification"
    track.mkdir(parents=True)
    shutil.copy(DIGITS / "track.yaml", track / "track.yaml")
    spec = yaml.safe_load((track / "track.yaml").read_text())
    spec["metrics"][0]["name"] = EVIL
    spec["title"] = EVIL
    spec["rules_version"] = EVIL
    (track / "track.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    run = track / EVIL_FOLDER
    shutil.copytree(DIGITS / "mlp-baseline", run, ignore=shutil.ignore_patterns("__pycache__"))
    claim = json.loads((run / "speedrun_analysis.json").read_text())
    claim.update(team=EVIL, description=EVIL)
    claim["authors"][0]["name"] = EVIL
    claim["dataset"].update(name=EVIL, version=EVIL)
    claim["model"]["architecture"] = EVIL
    claim["training"]["optimizer"]["name"] = EVIL
    claim["evaluation"]["metrics"].append(EVIL)
    claim["results"][0]["final"][EVIL] = 0.5
    (run / "speedrun_analysis.json").write_text(json.dumps(claim, indent=2))
    monkeypatch.chdir(tmp_path)
    return run


def test_a_hostile_run_and_track_render_inert(hostile_tree):
    result = CliRunner().invoke(cli, ["validate", "--no-flops", "--format", "markdown", "runs/digits-classification"])
    assert result.exit_code == 1, result.output
    md = result.stdout
    soup = assert_inert(md)
    shown = code_texts(soup)
    # The hostile strings are shown (quoted by the rules), not dropped.
    for rule in ("dataset-mismatch", "unknown-metric", "name-mismatch"):
        assert f"`{rule}`" in md
    assert "@octocat ![x](https://evil.example/x.png) [click](https://evil.example)" in shown
    assert "<img src=x>" in shown and "`` ` `` ```" in shown
    assert "evil @octocat ![x](evil.png) `a` ``` <img src=x> | #1" in shown  # the folder, newline gone
    assert not any(line.startswith(("# heading", "line2")) for line in md.splitlines())
    assert "\u202e" not in md


def test_policy_and_track_problems_render_inert():
    bad_path = f"runs/t/{EVIL_FOLDER}/x.md"
    report = Report(
        runs=[RunResult(path=Path("x"), display=EVIL_FOLDER, name=EVIL, track_id=EVIL,
                        problems=[Problem(EVIL, EVIL, "invalid-format", EVIL, EVIL)])],
        tracks=[TrackResult(path=Path("t"), display=EVIL, track_id=EVIL, track=None,
                            problems=[Problem("track.yaml", EVIL, "invalid-format", f"title {EVIL!r}", EVIL)])],
        policy=[Problem(bad_path, "$", "pr-outside-run", f"{bad_path} is outside your run folder", EVIL)],
    )
    md = markdown(report, images={EVIL_FOLDER: f"https://example.org/pr/{EVIL}.png"})
    soup = assert_inert(md, TEMPLATE_TAGS | {"img"})
    (img,) = soup.find_all("img")
    assert img["src"].startswith("https://example.org/pr/") and " " not in img["src"]
    assert not re.search(r"[@\[\]()<>`]", img.get("alt", "")), img
    assert "runs/t/evil @octocat ![x](evil.png)" in code_texts(soup)


@pytest.mark.parametrize("value", ["`", "``", "```", "a`b", "` `", "````x````", "\\`", "x\\", "|`|", "`|`", "\\|",
                                   "a\\\\|b", " lead", "trail ", "<!-- speedrun-report -->", ""])
def test_a_code_span_holds_whatever_is_in_it(value):
    row = f"| a | b |\n|---|---|\n| {code(value, table=True)} | end |\n"
    soup = render(row)
    cells = soup.find_all("td")
    assert [c.get_text() for c in cells][1] == "end", row
    (span,) = cells[0].find_all("code")
    assert cells[0].get_text() == span.get_text(), f"text escaped the code span: {row}"
    shown = span.get_text().strip()
    expected = clean(value).replace("<!--", "<! --").strip()
    # cmark-gfm drops the backslash of a `\|` the value itself held before its pipe: display only, never a breakout.
    assert shown.replace("\\", "") == expected.replace("\\", ""), row


def test_prose_keeps_plain_messages_as_they_are_and_quotes_the_rest():
    plain = "name is 'mlp-baseline' but the folder is 'wider-mlp' (1,024 samples): set name to 'wider-mlp'"
    assert prose(plain) == plain
    assert prose("metric '@bob' is not one of the track's ['a']") == (
        "metric `'@bob'` is not one of the track's `['a']`")
    assert prose("see https://x.example and www.x.example or GH-12 or #4") == (
        "see `https://x.example` and `www.x.example` or `GH-12` or `#4`")


def test_control_and_bidi_characters_are_removed():
    assert clean("a\nb\r\nc\u202ed\u200be\x00f\tg") == "a b c d e f g"
    assert len(clean("x" * 1000)) == 200


def test_an_image_address_cannot_be_closed_early():
    md = f"{COMMENT_MARKER}\n{image('curves of x) ![y](https://evil.example/y.png', 'https://e.example/a (b)).png')}\n"
    soup = assert_inert(md, TEMPLATE_TAGS | {"img"})
    (img,) = soup.find_all("img")
    assert img["src"] == "https://e.example/a%20%28b%29%29.png"


@pytest.mark.parametrize("shift", range(0, 80, 7))
def test_truncation_never_leaves_a_code_span_open(shift):
    """The bot cuts long reports to GitHub's limit; a cut inside a code span would set its content free."""
    line = f"| error | `x` | {code(EVIL, table=True, limit=2000)} | fix |"
    body = "\n".join([COMMENT_MARKER, "## Speedrun validation", "", "y" * shift, "", "| | rule | problem | fix |",
                      "|---|---|---|---|"] + [line] * (2 * bot.MAX_BODY_CHARS // len(line)))
    out = bot.prepare_body(body)
    assert len(out) <= bot.MAX_BODY_CHARS and "truncated" in out
    assert_inert(out, TEMPLATE_TAGS | {"em"})  # the truncation note is in italics


def test_the_text_report_prints_no_terminal_escapes():
    """A run name with an ANSI sequence (clear screen, fake green line) must not reach the terminal as one."""
    from validator.problems import Problem
    from validator.reporter import text
    from validator.result import Report, RunResult

    hostile = "run\x1b[2J\x1b[32mall valid\x1b[0m\rX"
    report = Report(runs=[RunResult(path=Path(hostile), display=hostile, name=hostile, track_id="t",
                                    problems=[Problem(hostile, "$.name", "bad-name", f"bad {hostile}", "fix")])])
    out = text(report)
    assert "\x1b" not in out and "\r" not in out
    assert "all valid" in out  # the words stay, only the control characters go
