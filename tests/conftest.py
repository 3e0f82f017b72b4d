"""Shared pytest fixtures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faultserver import FaultServer

ROOT = Path(__file__).resolve().parent.parent
CANARY = "sk-canary-7f3a9c1e5b2d4068a1b3c5d7e9f0a2b4"  # must never appear in any output
# The suite (and the CLI processes it starts) must not write to the user's own cache, nor leave
# local-server logs behind: both go to folders of this run, removed when it ends.
_RUN_DIRS = {
    name: tempfile.mkdtemp(prefix=f"connector-test-{what}-")
    for name, what in (("CONNECTOR_CACHE_DIR", "cache"), ("CONNECTOR_LOG_DIR", "logs"))
    if name not in os.environ
}
os.environ.update(_RUN_DIRS)


def pytest_sessionfinish(session, exitstatus):
    """Remove this run's cache and log folders."""
    for folder in _RUN_DIRS.values():
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_pacers() -> Iterator[None]:
    """Start every test with no pacer: a 429 of one test must not hold the next one's calls."""
    from connector.transport import pacing

    pacing.forget()
    yield
    pacing.forget()


def key_paths(value, prefix=""):
    """Return every key path of a JSON value (list items share their parent's path)."""
    out = set()
    if isinstance(value, list):
        for item in value:
            out |= key_paths(item, prefix)
    elif isinstance(value, dict):
        for k, v in value.items():
            path = f"{prefix}.{k}" if prefix else k
            out |= {path} | key_paths(v, path)
    return out


@pytest.fixture(scope="session")
def local_backend():
    """Start one local llama.cpp server for the session (fail, not skip, when it cannot start)."""
    from connector.errors import ConnectorError
    from connector.transport import local

    external = os.environ.get(local.BASE_URL_ENV, "").strip()
    if external:
        yield local.LocalServer(base_url=external)
        return
    try:
        started = local.LocalServer().start()
    except ConnectorError as exc:
        pytest.fail(
            f"The local backend could not start ({exc.type}): {exc.message}\n{exc.body or ''}",
            pytrace=False,
        )
    yield started
    started.stop()
    assert not started.running


@pytest.fixture(scope="session")
def action_server(local_backend, tmp_path_factory):
    """``python -m connector serve`` on loopback, with one bearer token, calling the local model.

    Yields its base URL; the token never shows in its log.
    """
    from actionserver import TOKEN, ActionServer

    from connector.transport import local

    runs = tmp_path_factory.mktemp("server") / "runs.sqlite3"
    env = {"OPENAI_PROVIDER": "local", local.BASE_URL_ENV: local_backend.base_url}
    with ActionServer("--runs-db", str(runs), env=env) as server:
        yield server.url
    assert TOKEN not in server.logs()


@pytest.fixture(scope="session")
def pg_cluster():
    """One real PostgreSQL cluster for the session (``pgcluster.py``); a database per user."""
    from pgcluster import PgCluster

    cluster = PgCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def fault_server() -> Iterator[FaultServer]:
    """Yield one fault-injection server for the session; use ``.scenario()`` for fresh counters."""
    with FaultServer() as server:
        yield server


@dataclass
class CliResult:
    """One CLI run: exit code, the JSON document on stdout, stderr, wall time, end (epoch)."""

    code: int
    doc: Any
    stdout: str
    stderr: str
    seconds: float
    ended: float  # time.time(), the fault server's clock for the requests it saw

    @property
    def error(self) -> dict[str, Any]:
        """Return the error object of a failed run."""
        return self.doc["error"]


@pytest.fixture
def close_transports() -> Iterator[Callable[[], None]]:
    """Close every process-wide transport before and after the test (and when it asks)."""
    from connector.transport import registry

    def close() -> None:
        registry.close_all()

    close()
    yield close
    close()


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., CliResult]:
    """Return a function running ``python -m connector run create_chat_completion`` once.

    The key is the canary (checked absent from stdout and stderr on every run); the
    connection comes from OPENAI_* variables, plus a ``--connection`` file for other settings.
    """

    def run(
        base_url: str,
        *sets: str,
        connection: dict[str, Any] | None = None,
        retries: int = 2,
        timeout: float = 10,
        key: str = CANARY,
        dry_run: bool = False,
        defaults: bool = True,
    ) -> CliResult:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env |= {
            "OPENAI_API_KEY": key,
            "OPENAI_BASE_URL": base_url,
            "OPENAI_MAX_RETRIES": str(retries),
            "OPENAI_TIMEOUT": str(timeout),
        }
        args = [sys.executable, "-m", "connector", "run", "create_chat_completion"]
        for item in (("model=gpt-4o-mini", "messages=Hello") if defaults else ()) + sets:
            args += ["--set", item]
        if connection:
            path = tmp_path / "connection.json"
            path.write_text(json.dumps({"base_url": base_url, **connection}))
            args += ["--connection", str(path)]
        if dry_run:
            args.append("--dry-run")
        started = time.monotonic()
        proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        seconds, ended = time.monotonic() - started, time.time()
        assert CANARY not in proc.stdout and CANARY not in proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        doc = json.loads(proc.stdout)
        return CliResult(proc.returncode, doc, proc.stdout, proc.stderr, seconds, ended)

    return run


CHROMIUM = "/usr/bin/chromium"  # Debian's (scripts/setup-browser)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session's browser tests (Playwright's sync API allows one
    running instance a thread: each module starting its own fails)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
