"""The sticky PR comment: a tiny GitHub REST client (stdlib only) and the find-or-update logic.

Runs in `comment.yml` (a `workflow_run` job with a write token) on data from an artifact that a pull request's own
job produced, so everything read from that artifact is attacker-controlled: the PR number is validated here, the
head SHA to compare with comes from the triggering run (not the artifact), and the comment only lands if the PR is
still open at exactly that SHA.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from . import __version__
from .reporter import COMMENT_MARKER

MAX_BODY_CHARS = 65_000  # GitHub refuses comment bodies over 65,536 characters
PER_PAGE = 100
MAX_PAGES = 100  # 10,000 comments; a PR with more is not one this bot should be paging through
USER_AGENT = f"speedrun-comment-bot/{__version__}"
API_VERSION = "2022-11-28"

MAX_FILE_PAGES = 30  # the API lists at most 3,000 files of a pull request
# On `pull_request`, GitHub runs the workflow files of the PR's merge commit: a PR that changes .github/ wrote its own
# validate job, and so the report in its artifact. The comment then says so, in trusted words, instead.
WORKFLOWS_PREFIX = ".github/"
WORKFLOWS_CHANGED_BODY = (
    f"{COMMENT_MARKER}\n## Speedrun validation\n\n**⚠️ Not validated by this bot.** This pull request changes files "
    "under `.github/`, so the workflow that checked it was its own copy, and its report is not shown. A submission "
    "changes only its run folder; a maintainer reviews changes to the workflows.\n")

PR_NUMBER_RE = re.compile(r"^[1-9][0-9]{0,6}$")
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
_NEXT_RE = re.compile(r'<[^>]*>\s*;\s*rel="?next"?')


class BotError(Exception):
    """Anything that stops the comment. Its message is one line, safe to print (never the token)."""


class Refused(BotError):
    """The request is not acceptable (bad PR number, SHA mismatch, closed PR): exit 1."""


class ApiError(BotError):
    """The API or the network failed, or the call was malformed: exit 2."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def valid_pr_number(text: str) -> int:
    """The PR number from an artifact, checked: 1 to 9,999,999, digits only, no sign, space or leading zero."""
    if not isinstance(text, str) or not PR_NUMBER_RE.fullmatch(text):
        # The text itself is not echoed: it comes from an artifact and could be anything (a file's contents too).
        size = len(text) if isinstance(text, str) else 0
        raise Refused(f"invalid PR number ({size} characters): expected 1-7 digits, no leading zero")
    return int(text)


def valid_head_sha(text: str) -> str:
    if not isinstance(text, str) or not SHA_RE.fullmatch(text):
        raise ApiError("invalid head SHA: expected 40 lowercase hex characters")
    return text


def valid_repo(text: str) -> str:
    if not isinstance(text, str) or not REPO_RE.fullmatch(text) or text.split("/", 1)[1] in {".", ".."}:
        raise ApiError(f"invalid repository {str(text)[:60]!r}: expected OWNER/NAME")
    return text


def valid_api_url(url: str) -> str:
    """https only; plain http is accepted for a loopback address (tests, local proxies) and nowhere else."""
    parsed = urllib.parse.urlsplit(url or "")
    host = (parsed.hostname or "").lower()
    if not host or parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise ApiError(f"invalid API URL {str(url)[:80]!r}")
    if parsed.scheme == "https" or (parsed.scheme == "http" and host in _LOOPBACK):
        return url.rstrip("/")
    raise ApiError(f"refusing to send a token to {url[:80]!r}: the API URL must be https")


def prepare_body(body: str) -> str:
    """Marker first if missing, then cut to GitHub's limit with a note; the marker always survives the cut."""
    if COMMENT_MARKER not in body:
        body = f"{COMMENT_MARKER}\n{body}"
    if len(body) <= MAX_BODY_CHARS:
        return body
    note = (f"\n\n---\n*Report truncated: {len(body):,} characters is over GitHub's comment limit. "
            "The full report is in the workflow run's job summary and its `speedrun-report` artifact.*\n")
    # Room for the marker, and the cut at a line end: the report opens and closes every code span on one line, and a
    # span cut open would set the submitted text inside it free (mentions, links, images).
    head = body[: MAX_BODY_CHARS - len(note) - len(COMMENT_MARKER) - 1]
    head = head[: max(head.rfind("\n"), 0)]
    if COMMENT_MARKER not in head:
        head = f"{COMMENT_MARKER}\n{head}"
    return head + note


class GitHubClient:
    """Just enough of the REST API: JSON in, JSON out, errors as `ApiError` with status and GitHub's message."""

    def __init__(self, api_url: str, token: str, timeout: float = 30.0):
        if not token:
            raise ApiError("no token")
        self.api_url = valid_api_url(api_url)
        self._token = token
        self.timeout = timeout

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def request(self, method: str, path: str, payload: dict | None = None) -> tuple[Any, dict[str, str]]:
        url = self.api_url + path
        data = json.dumps(payload).encode("utf-8") if payload is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/vnd.github+json")
        req.add_header("X-GitHub-Api-Version", API_VERSION)
        req.add_header("User-Agent", USER_AGENT)
        if data is not None:
            req.add_header("Content-Type", "application/json; charset=utf-8")
        # Unredirected: urllib would otherwise carry the token along a redirect to another host.
        req.add_unredirected_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
                headers = {k.lower(): v for k, v in resp.headers.items()}
        except urllib.error.HTTPError as exc:
            message = ""
            try:
                detail = json.loads(exc.read().decode("utf-8", "replace") or "{}")
                message = str(detail.get("message", "")) if isinstance(detail, dict) else ""
            except (ValueError, OSError):
                pass
            message = " ".join((message or exc.reason or "").split())[:200]
            raise ApiError(self._redact(f"GitHub API {method} {path}: HTTP {exc.code}: {message}"),
                           status=exc.code) from None
        except urllib.error.URLError as exc:
            raise ApiError(self._redact(f"GitHub API {method} {path}: cannot connect: {exc.reason}")) from None
        except (OSError, ValueError) as exc:  # timeouts, resets, malformed URLs
            raise ApiError(self._redact(f"GitHub API {method} {path}: {type(exc).__name__}: {exc}")) from None
        if not raw:
            return None, headers
        try:
            return json.loads(raw.decode("utf-8")), headers
        except ValueError:
            raise ApiError(f"GitHub API {method} {path}: response is not JSON") from None


def _has_next(headers: dict[str, str]) -> bool:
    return bool(_NEXT_RE.search(headers.get("link", "")))


def find_sticky_comment(client: GitHubClient, repo: str, pr: int) -> int | None:
    """The id of the oldest comment a bot wrote with the marker in it, walking every page; None if there is none.

    A human's comment that quotes the marker is never picked: only `user.type == "Bot"` counts.
    """
    for page in range(1, MAX_PAGES + 1):
        comments, headers = client.request("GET", f"/repos/{repo}/issues/{pr}/comments?per_page={PER_PAGE}&page={page}")
        if not isinstance(comments, list):
            raise ApiError(f"GitHub API: listing comments of #{pr} did not return a list")
        for c in comments:
            if not isinstance(c, dict):
                continue
            user = c.get("user") or {}
            if COMMENT_MARKER in (c.get("body") or "") and isinstance(user, dict) and user.get("type") == "Bot":
                return int(c["id"])
        if not comments or not _has_next(headers):
            return None
    raise ApiError(f"#{pr} has more than {MAX_PAGES * PER_PAGE} comments; not paging further")


def changes_workflows(client: GitHubClient, repo: str, pr: int) -> bool:
    """Whether the pull request adds, changes, renames or deletes anything under .github/. A list longer than the API
    returns counts as a yes: what cannot be seen cannot be cleared."""
    for page in range(1, MAX_FILE_PAGES + 1):
        files, headers = client.request("GET", f"/repos/{repo}/pulls/{pr}/files?per_page={PER_PAGE}&page={page}")
        if not isinstance(files, list):
            raise ApiError(f"GitHub API: listing the files of #{pr} did not return a list")
        for f in files:
            names = (f.get("filename"), f.get("previous_filename")) if isinstance(f, dict) else ()
            if any(isinstance(n, str) and n.startswith(WORKFLOWS_PREFIX) for n in names):
                return True
        if not files or not _has_next(headers):
            return False
    return True


def upsert_comment(api_url: str, repo: str, token: str, pr: int | str, head_sha: str,
                   body: str) -> tuple[str, int]:
    """Create or update the one sticky report comment on `pr`; returns ("created"|"updated", comment id).

    Refuses (`Refused`) unless the PR exists, is open and its head is exactly `head_sha`, so a report about an
    older push never lands on a PR that has moved on, and a forged PR number cannot aim at somebody else's PR.
    A PR that changes .github/ gets `WORKFLOWS_CHANGED_BODY` instead of `body` (see there).
    """
    repo = valid_repo(repo)
    number = valid_pr_number(str(pr))
    head_sha = valid_head_sha(head_sha)
    client = GitHubClient(api_url, token)

    try:
        pull, _ = client.request("GET", f"/repos/{repo}/pulls/{number}")
    except ApiError as exc:
        if exc.status == 404:
            raise Refused(f"refused: #{number} is not a pull request of {repo}") from None
        raise
    if not isinstance(pull, dict):
        raise ApiError(f"GitHub API: pull request #{number} is not an object")
    actual = ((pull.get("head") or {}).get("sha") or "") if isinstance(pull.get("head"), dict) else ""
    if actual != head_sha:
        raise Refused(f"refused: the head of #{number} is {actual[:12] or 'unknown'}, not {head_sha[:12]} "
                      "(pushed again after this run?)")
    if pull.get("state") != "open":
        raise Refused(f"refused: #{number} is {pull.get('state') or 'not open'}")

    text = prepare_body(WORKFLOWS_CHANGED_BODY if changes_workflows(client, repo, number) else body)
    existing = find_sticky_comment(client, repo, number)
    if existing is not None:
        result, _ = client.request("PATCH", f"/repos/{repo}/issues/comments/{existing}", {"body": text})
        return "updated", int((result or {}).get("id", existing))
    result, _ = client.request("POST", f"/repos/{repo}/issues/{number}/comments", {"body": text})
    if not isinstance(result, dict) or "id" not in result:
        raise ApiError("GitHub API: the created comment has no id")
    return "created", int(result["id"])
