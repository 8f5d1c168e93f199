"""The sticky PR comment bot against a fake GitHub REST API on localhost (no network beyond loopback)."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

import speedrun.comment
from validator import bot
from validator.reporter import COMMENT_MARKER

REPO = "speedrun-org/speedrun"
TOKEN = "ghs_test_token_that_must_never_be_printed"
SHA = "a" * 40
OTHER_SHA = "b" * 40
BOT = {"login": "github-actions[bot]", "type": "Bot"}
HUMAN = {"login": "mallory", "type": "User"}


class FakeGitHub:
    """In-memory state plus a ThreadingHTTPServer implementing exactly the endpoints the bot uses."""

    def __init__(self):
        self.pulls: dict[int, dict] = {}
        self.comments: dict[int, list[dict]] = {}
        self.files: dict[int, list[dict]] = {}  # the files each PR changes, as /pulls/N/files lists them
        self.next_id = 1000
        self.requests: list[tuple[str, str]] = []
        self.writes = 0
        self.fail_with: int | None = None  # answer every request with this status
        self.redirects: dict[str, str] = {}  # path -> Location, answered with 302 before the auth check
        self.auth_seen: list[str | None] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def add_pr(self, number: int, sha: str = SHA, state: str = "open") -> None:
        self.pulls[number] = {"number": number, "state": state, "head": {"sha": sha, "ref": "feature"}}
        self.comments.setdefault(number, [])
        self.files.setdefault(number, [{"filename": "runs/digits-classification/mine/run.py", "status": "added"}])

    def add_comment(self, pr: int, body: str, user: dict) -> int:
        self.next_id += 1
        self.comments[pr].append({"id": self.next_id, "body": body, "user": dict(user)})
        return self.next_id

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _send(self, status: int, payload, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict:
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n) or b"{}")

            def _dispatch(self, method: str) -> None:
                parts = urlsplit(self.path)
                with fake.lock:
                    fake.requests.append((method, self.path))
                    fake.auth_seen.append(self.headers.get("Authorization"))
                if parts.path in fake.redirects:
                    return self._send(302, {}, {"Location": fake.url + fake.redirects[parts.path]})
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"message": "Bad credentials"})
                if self.headers.get("Accept") != "application/vnd.github+json" \
                        or self.headers.get("X-GitHub-Api-Version") != "2022-11-28" \
                        or not self.headers.get("User-Agent"):
                    return self._send(400, {"message": "missing API headers"})
                if fake.fail_with:
                    return self._send(fake.fail_with, {"message": "Server Error"})
                prefix = f"/repos/{REPO}"
                path = parts.path
                if not path.startswith(prefix + "/"):
                    return self._send(404, {"message": "Not Found"})
                rest = path[len(prefix):]
                with fake.lock:
                    if method == "GET" and (m := re.fullmatch(r"/pulls/(\d+)", rest)):
                        pull = fake.pulls.get(int(m[1]))
                        return self._send(200, pull) if pull else self._send(404, {"message": "Not Found"})
                    if method == "GET" and (m := re.fullmatch(r"/pulls/(\d+)/files", rest)):
                        q = parse_qs(parts.query)
                        per_page, page = min(int(q.get("per_page", ["30"])[0]), 100), int(q.get("page", ["1"])[0])
                        items = fake.files.get(int(m[1]), [])
                        headers = {}
                        if page * per_page < len(items):
                            headers["Link"] = f'<{fake.url}{path}?per_page={per_page}&page={page + 1}>; rel="next"'
                        return self._send(200, items[(page - 1) * per_page: page * per_page], headers)
                    if (m := re.fullmatch(r"/issues/(\d+)/comments", rest)):
                        pr = int(m[1])
                        if pr not in fake.comments:
                            return self._send(404, {"message": "Not Found"})
                        if method == "GET":
                            q = parse_qs(parts.query)
                            per_page = min(int(q.get("per_page", ["30"])[0]), 100)
                            page = int(q.get("page", ["1"])[0])
                            items = fake.comments[pr]
                            chunk = items[(page - 1) * per_page: page * per_page]
                            headers = {}
                            if page * per_page < len(items):
                                nxt = f"{fake.url}{path}?per_page={per_page}&page={page + 1}"
                                headers["Link"] = f'<{nxt}>; rel="next"'
                            return self._send(200, chunk, headers)
                        if method == "POST":
                            fake.writes += 1
                            fake.next_id += 1
                            c = {"id": fake.next_id, "body": self._body()["body"], "user": dict(BOT)}
                            fake.comments[pr].append(c)
                            return self._send(201, c)
                    if method == "PATCH" and (m := re.fullmatch(r"/issues/comments/(\d+)", rest)):
                        cid = int(m[1])
                        for items in fake.comments.values():
                            for c in items:
                                if c["id"] == cid:
                                    fake.writes += 1
                                    c["body"] = self._body()["body"]
                                    return self._send(200, c)
                        return self._send(404, {"message": "Not Found"})
                return self._send(404, {"message": "Not Found"})

            def do_GET(self):
                self._dispatch("GET")

            def do_POST(self):
                self._dispatch("POST")

            def do_PATCH(self):
                self._dispatch("PATCH")

        return Handler


@pytest.fixture
def gh():
    fake = FakeGitHub()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


@pytest.fixture
def report(tmp_path):
    path = tmp_path / "report.md"
    path.write_text(f"{COMMENT_MARKER}\n## Speedrun validation\n\n**valid**\n", encoding="utf-8")
    return path


def invoke(gh, *, pr="7", sha=SHA, body_file, token=TOKEN, extra=()):
    env = {"GITHUB_TOKEN": token, "GITHUB_API_URL": gh.url}
    args = ["--repo", REPO, "--pr", pr, "--head-sha", sha, "--body-file", str(body_file), *extra]
    result = CliRunner().invoke(speedrun.comment.comment, args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert TOKEN not in result.output
    return result


def test_first_run_creates_second_run_updates_the_same_comment(gh, report):
    gh.add_pr(7)
    first = invoke(gh, body_file=report)
    assert first.exit_code == 0, first.output
    assert re.fullmatch(r"created comment \d+\n", first.output)
    cid = int(first.output.split()[-1])

    report.write_text(f"{COMMENT_MARKER}\n## Speedrun validation\n\n**invalid**\n", encoding="utf-8")
    second = invoke(gh, body_file=report)
    assert second.exit_code == 0, second.output
    assert second.output == f"updated comment {cid}\n"
    assert len(gh.comments[7]) == 1
    assert "**invalid**" in gh.comments[7][0]["body"]


def test_a_humans_comment_with_the_marker_is_not_hijacked(gh, report):
    gh.add_pr(7)
    human = gh.add_comment(7, f"quoting the bot: {COMMENT_MARKER} ha", HUMAN)
    result = invoke(gh, body_file=report)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("created comment ")
    assert gh.comments[7][0] == {"id": human, "body": f"quoting the bot: {COMMENT_MARKER} ha", "user": HUMAN}
    assert len(gh.comments[7]) == 2


def test_a_bot_comment_without_the_marker_is_left_alone(gh, report):
    gh.add_pr(7)
    gh.add_comment(7, "some other bot", BOT)
    assert invoke(gh, body_file=report).output.startswith("created comment ")
    assert gh.comments[7][0]["body"] == "some other bot"


def test_the_sticky_comment_on_page_two_is_found(gh, report):
    gh.add_pr(7)
    for i in range(100):
        gh.add_comment(7, f"chatter {i}", HUMAN)
    sticky = gh.add_comment(7, f"{COMMENT_MARKER}\nold report", BOT)
    for i in range(5):
        gh.add_comment(7, f"more chatter {i}", HUMAN)
    result = invoke(gh, body_file=report)
    assert result.exit_code == 0, result.output
    assert result.output == f"updated comment {sticky}\n"
    assert len(gh.comments[7]) == 106
    pages = [p for m, p in gh.requests if m == "GET" and "/comments" in p]
    assert any("page=2" in p for p in pages) and all("per_page=100" in p for p in pages)


def test_pagination_stops_at_the_last_page(gh, report):
    gh.add_pr(7)
    for i in range(150):
        gh.add_comment(7, f"chatter {i}", HUMAN)
    assert invoke(gh, body_file=report).output.startswith("created comment ")
    pages = [p for m, p in gh.requests if m == "GET" and "/comments" in p]
    assert len(pages) == 2


def test_head_sha_mismatch_is_refused_and_nothing_is_written(gh, report):
    gh.add_pr(7, sha=OTHER_SHA)
    result = invoke(gh, body_file=report)
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "refused" in result.output and "bbbbbbbbbbbb" in result.output
    assert gh.writes == 0 and gh.comments[7] == []
    assert [m for m, _ in gh.requests] == ["GET"]


def test_closed_pr_is_refused(gh, report):
    gh.add_pr(7, state="closed")
    result = invoke(gh, body_file=report)
    assert result.exit_code == 1 and "closed" in result.output
    assert gh.writes == 0


def test_unknown_pr_is_refused(gh, report):
    result = invoke(gh, pr="4242", body_file=report)
    assert result.exit_code == 1 and "not a pull request" in result.output
    assert gh.writes == 0


@pytest.mark.parametrize("pr", ["0", "12a", "1; rm -rf", "99999999", "", "-1", "007", " 7", "7\n", "٧"])
def test_invalid_pr_numbers_are_refused_before_any_request(gh, report, pr):
    gh.add_pr(7)
    result = invoke(gh, pr=pr, body_file=report)
    assert result.exit_code == 1, result.output
    assert "invalid PR number" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert gh.requests == []


@pytest.mark.parametrize("text", ["0", "12a", "1; rm -rf", "99999999", "01", "1.0", "+1", "1 ", "7\n"])
def test_valid_pr_number_rejects(text):
    with pytest.raises(bot.BotError):
        bot.valid_pr_number(text)


@pytest.mark.parametrize("text,number", [("1", 1), ("42", 42), ("9999999", 9999999)])
def test_valid_pr_number_accepts(text, number):
    assert bot.valid_pr_number(text) == number


def test_a_server_error_exits_2_with_a_clear_line(gh, report):
    gh.add_pr(7)
    gh.fail_with = 500
    result = invoke(gh, body_file=report)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "HTTP 500" in lines[0] and "Server Error" in lines[0] and f"/repos/{REPO}/pulls/7" in lines[0]


def test_bad_credentials_exit_2_without_the_token(gh, report):
    gh.add_pr(7)
    result = invoke(gh, body_file=report, token="ghs_wrong")
    assert result.exit_code == 2
    assert "HTTP 401" in result.output and "Bad credentials" in result.output
    assert "ghs_wrong" not in result.output


@pytest.mark.parametrize("token", ["", "   "])
def test_missing_token_exits_2(gh, report, token):
    gh.add_pr(7)
    result = invoke(gh, body_file=report, token=token)
    assert result.exit_code == 2
    assert result.output.strip() == "error: GITHUB_TOKEN is not set"
    assert gh.requests == []


def test_unreachable_api_exits_2(report):
    result = CliRunner().invoke(
        speedrun.comment.comment,
        ["--repo", REPO, "--pr", "7", "--head-sha", SHA, "--body-file", str(report),
         "--api-url", "http://127.0.0.1:9"],
        env={"GITHUB_TOKEN": TOKEN})
    assert result.exit_code == 2
    assert "cannot connect" in result.output and "Traceback" not in result.output


def test_token_is_not_sent_over_plain_http_to_a_remote_host(report):
    result = CliRunner().invoke(
        speedrun.comment.comment,
        ["--repo", REPO, "--pr", "7", "--head-sha", SHA, "--body-file", str(report),
         "--api-url", "http://api.github.example"],
        env={"GITHUB_TOKEN": TOKEN})
    assert result.exit_code == 2 and "must be https" in result.output


@pytest.mark.parametrize("args,needle", [
    (["--repo", "not-a-repo"], "OWNER/NAME"),
    (["--repo", "a/b/c"], "OWNER/NAME"),
    (["--repo", "owner/.."], "OWNER/NAME"),
    (["--head-sha", "abc123"], "40"),
    (["--head-sha", "A" * 40], "40"),
])
def test_usage_errors_exit_2(gh, report, args, needle):
    base = {"--repo": REPO, "--pr": "7", "--head-sha": SHA, "--body-file": str(report)}
    base[args[0]] = args[1]
    argv = [x for kv in base.items() for x in kv]
    result = CliRunner().invoke(speedrun.comment.comment, argv, env={"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": gh.url})
    assert result.exit_code == 2
    assert needle in result.output and "Traceback" not in result.output
    assert gh.requests == []


def test_missing_body_file_exits_2(gh, tmp_path):
    gh.add_pr(7)
    result = invoke(gh, body_file=tmp_path / "nope.md")
    assert result.exit_code == 2 and "cannot read" in result.output
    assert gh.requests == []


def test_a_symlinked_body_file_is_refused(gh, report, tmp_path):
    gh.add_pr(7)
    secret = tmp_path / "secret.txt"
    secret.write_text("GITHUB_TOKEN=" + TOKEN, encoding="utf-8")
    link = tmp_path / "link.md"
    link.symlink_to(secret)
    result = invoke(gh, body_file=link)
    assert result.exit_code == 2 and "symbolic link" in result.output
    assert gh.requests == []


def test_a_directory_as_body_file_is_a_usage_error(gh, tmp_path):
    gh.add_pr(7)
    result = invoke(gh, body_file=tmp_path)
    assert result.exit_code == 2
    assert gh.requests == []


def test_the_invalid_pr_text_is_not_echoed(gh, report):
    result = invoke(gh, pr="GITHUB_TOKEN=ghs_leak", body_file=report)
    assert result.exit_code == 1 and "ghs_leak" not in result.output


def test_marker_is_added_when_missing(gh, tmp_path):
    gh.add_pr(7)
    body = tmp_path / "plain.md"
    body.write_text("no marker here\n", encoding="utf-8")
    assert invoke(gh, body_file=body).exit_code == 0
    assert gh.comments[7][0]["body"].startswith(COMMENT_MARKER)
    # and the next run finds it again
    assert invoke(gh, body_file=body).output.startswith("updated comment ")
    assert len(gh.comments[7]) == 1


def test_long_bodies_are_truncated_with_a_note(gh, tmp_path):
    gh.add_pr(7)
    body = tmp_path / "long.md"
    body.write_text("x" * 200_000, encoding="utf-8")
    assert invoke(gh, body_file=body).exit_code == 0
    posted = gh.comments[7][0]["body"]
    assert len(posted) <= bot.MAX_BODY_CHARS
    assert posted.startswith(COMMENT_MARKER)
    assert "truncated" in posted


def test_prepare_body_keeps_marker_and_limit():
    short = bot.prepare_body("hello")
    assert short == f"{COMMENT_MARKER}\nhello"
    marker_late = "y" * 70_000 + COMMENT_MARKER
    out = bot.prepare_body(marker_late)
    assert len(out) <= bot.MAX_BODY_CHARS and COMMENT_MARKER in out and "truncated" in out
    exact = COMMENT_MARKER + "z" * (bot.MAX_BODY_CHARS - len(COMMENT_MARKER))
    assert bot.prepare_body(exact) == exact


def test_the_token_does_not_follow_a_redirect(gh):
    """The token is an unredirected header: urllib drops it when it follows a redirect (which may change host)."""
    gh.redirects["/repos/elsewhere/moved/pulls/7"] = f"/repos/{REPO}/pulls/7"
    gh.add_pr(7)
    client = bot.GitHubClient(gh.url, TOKEN)
    with pytest.raises(bot.ApiError) as info:
        client.request("GET", "/repos/elsewhere/moved/pulls/7")
    assert info.value.status == 401 and TOKEN not in str(info.value)
    assert gh.auth_seen == [f"Bearer {TOKEN}", None]


@pytest.mark.parametrize("changed", [
    {"filename": ".github/workflows/validate.yml", "status": "modified"},
    {"filename": ".github/scripts/x.sh", "status": "added"},
    {"filename": "runs/t/r/moved.yml", "previous_filename": ".github/workflows/tests.yml", "status": "renamed"},
])
def test_a_pr_that_changes_the_workflows_gets_a_fixed_comment_not_its_report(gh, tmp_path, changed):
    """On pull_request GitHub runs the PR's own validate.yml, so that PR chose its report: none of it is posted."""
    gh.add_pr(7)
    gh.files[7] = [{"filename": f"runs/t/r/f{i}.txt", "status": "added"} for i in range(150)] + [changed]
    body = tmp_path / "forged.md"
    body.write_text(f"{COMMENT_MARKER}\n**✅ All submissions are valid.** @octocat ![x](https://evil.example/x.png)\n")
    result = invoke(gh, body_file=body)
    assert result.exit_code == 0, result.output
    posted = gh.comments[7][0]["body"]
    assert posted == bot.WORKFLOWS_CHANGED_BODY
    assert "valid." not in posted and "@octocat" not in posted and "evil" not in posted
    assert any("/files" in p and "page=2" in p for _, p in gh.requests), "the file on page 2 was looked at"


def test_a_pr_with_no_workflow_change_gets_its_report(gh, report):
    gh.add_pr(7)
    gh.files[7] = [{"filename": "runs/t/r/.github/not-the-root.yml", "status": "added"}]
    assert invoke(gh, body_file=report).exit_code == 0
    assert gh.comments[7][0]["body"] == report.read_text()
