"""Scale-out test parts: ``python -m connector worker`` processes, a callback receiver, and a
deployment of two servers and two workers on one PostgreSQL database."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from actionserver import TOKEN, ActionServer

ROOT = Path(__file__).resolve().parent.parent
ACTION = "/actions/create_chat_completion"
SECRET = "cb-secret-0d9c8b7a6f5e4d3c"  # the callbacks' signing secret
TOKEN2 = "srv-token-second-2a4c6e8f0b1d3f57"  # a second caller of the same servers


class WorkerProcess:
    """``python -m connector worker`` in its own process group; its log lines kept."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CONNECTOR_"))
        }
        self.env.update(PYTHONUNBUFFERED="1", **env)
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.ready = threading.Event()

    def start(self, wait: bool = True) -> WorkerProcess:
        self.ready.clear()
        self.proc = subprocess.Popen(
            # The tests' workers run 8 at once, unless the environment says otherwise.
            [sys.executable, "-m", "connector", "worker"]
            + ([] if "CONNECTOR_WORKER_CONCURRENCY" in self.env else ["--concurrency", "8"]),
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        proc = self.proc

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.lines.append(line.rstrip("\n"))
                if '"worker-ready"' in line:
                    self.ready.set()

        threading.Thread(target=read, daemon=True).start()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        if not self.ready.wait(timeout):
            raise RuntimeError("the worker did not start:\n" + self.logs())

    def logs(self) -> str:
        return "\n".join(self.lines)

    def took(self, run_id: str) -> bool:
        return any(run_id in line and '"run-started"' in line for line in list(self.lines))

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(40)
        finally:
            self.kill()


class Receiver:
    """A loopback HTTP server that records callback POSTs; the first ``fails`` get a 500."""

    def __init__(self, fails: int = 0) -> None:
        self.fails = fails
        self.calls: list[tuple[dict[str, str], bytes, float]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.calls.append((dict(self.headers.items()), body, time.time()))
                status = 500 if len(owner.calls) <= owner.fails else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Deployment:
    """Two gunicorn servers and two workers on one database, calling one fake OpenAI server."""

    def __init__(
        self,
        cluster,
        db_url: str,
        upstream: str,
        key: str,
        server: dict[str, str] | None = None,
        **worker: str,
    ) -> None:
        """``server`` and ``worker`` add settings to the servers' and workers' environment."""
        self.cluster = cluster
        self.db_url = db_url
        common = {
            "CONNECTOR_RUNS_URL": db_url,
            "CONNECTOR_CALLBACK_SECRET": SECRET,
            "CONNECTOR_CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
        }
        self.server_env = {
            **common,
            "CONNECTOR_SERVER_TOKENS": f"{TOKEN},{TOKEN2}",
            **(server or {}),
        }
        self.worker_env = {
            **common,
            "OPENAI_API_KEY": key,
            "OPENAI_BASE_URL": upstream,
            "OPENAI_MAX_RETRIES": "0",
            "OPENAI_TIMEOUT": "30",
            # Fast failure detection for the tests (defaults: 10 s, 30 s, 10 s, 2 s).
            "CONNECTOR_WORKER_HEARTBEAT": "0.5",
            "CONNECTOR_WORKER_STALLED_AFTER": "3",
            "CONNECTOR_WORKER_CHECK_EVERY": "0.5",
            "CONNECTOR_WORKER_POLL": "0.5",
            "CONNECTOR_RUN_MAX_ATTEMPTS": "2",
            "CONNECTOR_CALLBACK_BACKOFF": "1.5",
            **worker,
        }
        self.servers = [ActionServer(env=self.server_env) for _ in range(2)]
        self.workers = [WorkerProcess(self.worker_env) for _ in range(2)]
        self.old_logs: list[str] = []

    def start(self) -> Deployment:
        threads = [threading.Thread(target=s.start) for s in self.servers]
        for t in threads:
            t.start()
        for w in self.workers:
            w.start(wait=False)
        for t in threads:
            t.join()
        for w in self.workers:
            w.wait_ready()
        return self

    def restart_server(self, i: int) -> None:
        self.old_logs.append(self.servers[i].logs())
        self.servers[i].kill()
        self.servers[i] = ActionServer(env=self.server_env).start()

    def restart_worker(self, i: int) -> None:
        self.old_logs.append(self.workers[i].logs())
        self.workers[i].kill()
        self.workers[i] = WorkerProcess(self.worker_env).start()

    def logs(self) -> str:
        parts = [*self.old_logs, *(p.logs() for p in (*self.servers, *self.workers))]
        return "\n".join(parts)

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        for s in self.servers:
            s.stop()


def start_run(server: ActionServer, message: str, **kw: Any) -> requests.Response:
    form = {"model": "gpt-4o-mini", "messages": message}
    return server.call("POST", f"{ACTION}/runs", form, **kw)


def poll(
    server: ActionServer, run_id: str, timeout: float = 60, *, through_503: bool = False
) -> requests.Response:
    """GET the run until it is done (not 202); return the last reply.

    ``through_503``: retry a ``store_unavailable`` too, as a client honouring Retry-After does.
    """
    deadline = time.monotonic() + timeout
    while True:
        r = server.call("GET", f"/runs/{run_id}")
        waiting = r.status_code == 202 or (through_503 and _unavailable(r))
        if not waiting or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def _unavailable(r: requests.Response) -> bool:
    return r.status_code == 503 and r.json()["error"]["type"] == "store_unavailable"


def start_run_retrying(
    server: ActionServer, message: str, timeout: float = 30
) -> requests.Response:
    """POST a run, again while the answer is a 503 ``store_unavailable``."""
    deadline = time.monotonic() + timeout
    while _unavailable(r := start_run(server, message)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return r


def content(reply: requests.Response) -> str:
    return json.dumps(reply.json())
