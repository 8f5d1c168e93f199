"""`speedrun serve`: build the leaderboard from a runs tree (a local folder or any fsspec URL, e.g. gs://bucket/runs)
and serve it on localhost, like Marin's leaderboard server."""

from __future__ import annotations

import functools
import http.server
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable

from validator.problems import InvalidInput, SpeedrunError

from .build import BuildSummary, build_site

MAX_FETCH_FILES = 200_000


def fetch_runs(storage_path: str, dest: Path, progress: Callable[[str], None] = lambda _m: None) -> Path:
    """Copy the runs tree at `storage_path` into `dest`; a local folder is used in place."""
    if "://" not in storage_path or storage_path.startswith("file://"):
        local = Path(storage_path.removeprefix("file://")).expanduser()
        if not local.is_dir():
            raise InvalidInput(f"--storage-path {storage_path}: no such folder")
        return local
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec ships with torch
        raise SpeedrunError("fsspec is needed for remote storage paths: pip install fsspec") from exc
    try:
        fs, root = fsspec.core.url_to_fs(storage_path)
    except (ValueError, ImportError) as exc:
        raise SpeedrunError(f"--storage-path {storage_path}: {exc} (install the fsspec backend, e.g. gcsfs for gs://)") from exc
    root = root.rstrip("/")
    try:
        files = [f for f in fs.find(root) if not fs.isdir(f)]
    except (OSError, FileNotFoundError) as exc:
        raise InvalidInput(f"--storage-path {storage_path}: {exc}") from exc
    if not files:
        raise InvalidInput(f"--storage-path {storage_path}: nothing there")
    if len(files) > MAX_FETCH_FILES:
        raise InvalidInput(f"--storage-path {storage_path}: {len(files):,} files is more than {MAX_FETCH_FILES:,}")
    progress(f"fetching {len(files):,} file(s) from {storage_path} ...")
    target = dest / "runs"
    for remote in files:
        rel = remote[len(root):].lstrip("/")
        if not rel or ".." in Path(rel).parts:
            continue
        local = target / rel
        local.parent.mkdir(parents=True, exist_ok=True)
        with fs.open(remote, "rb") as src, open(local, "wb") as out:
            shutil.copyfileobj(src, out)
    return target


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass


def make_server(site: Path, host: str = "127.0.0.1", port: int = 8000) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(_QuietHandler, directory=str(site))
    try:
        return http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise SpeedrunError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; try --port") from exc


class Leaderboard:
    """Fetch, build and serve; `start()` runs the server in a thread (used by tests), `serve_forever()` blocks."""

    def __init__(self, storage_path: str, host: str = "127.0.0.1", port: int = 8000,
                 progress: Callable[[str], None] = lambda _m: None, **build_options) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="speedrun-serve-")
        work = Path(self._tmp.name)
        runs = fetch_runs(storage_path, work, progress)
        self.site = work / "site"
        self.summary: BuildSummary = build_site(runs, self.site, progress, **build_options)
        self.server = make_server(self.site, host, port)
        self.url = f"http://{host}:{self.server.server_address[1]}/"
        self._thread: threading.Thread | None = None

    def start(self) -> "Leaderboard":
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self.server.serve_forever()
        finally:
            self.close()

    def close(self) -> None:
        self.server.shutdown() if self._thread else None
        self.server.server_close()
        self._tmp.cleanup()
