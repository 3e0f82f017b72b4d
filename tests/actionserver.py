"""The real action server (``python -m connector serve``, gunicorn) in a child process, on loopback."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "srv-token-5d1e0b7c9a3f4e21"  # the server's bearer token: must never appear in output


class ActionServer:
    """Start ``serve --port 0`` in its own process group; read the address from its stderr."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, token: str | None = TOKEN
    ) -> None:
        self.args = args
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CONNECTOR_SERVER"))
        }
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if token:
            self.env["CONNECTOR_SERVER_TOKENS"] = token
        self.env.update(env or {})
        self.token = token
        self.url = ""
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.session = requests.Session()

    def start(self, timeout: float = 60) -> ActionServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connector", "serve", "--port", "0", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # one process group: the master and its workers
        )
        ready = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                m = re.match(r"listening on (http://\S+)", line)
                if m:
                    self.url = m.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or not self.url:
            self.kill()
            raise RuntimeError("the action server did not start:\n" + "\n".join(self.lines))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the workers load the app after the master binds
            try:
                # 503: up, but not ready (a test of that, or a server without a key of its own)
                if requests.get(self.url + "/healthz", timeout=2).status_code in (200, 503):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("the action server does not answer:\n" + "\n".join(self.lines))

    def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        token: str | None = "",
        headers: dict[str, str] | None = None,
        data: bytes | str | None = None,
        timeout: float = 30,
    ) -> requests.Response:
        """Send one request; ``token=""`` sends the server's token, ``None`` sends none."""
        h = dict(headers or {})
        if token is not None:
            h.setdefault("Authorization", f"Bearer {token or self.token}")
        return self.session.request(
            method, self.url + path, json=json, data=data, headers=h, timeout=timeout
        )

    def logs(self) -> str:
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the master; return its exit code."""
        assert self.proc is not None
        self.session.close()  # idle keep-alive connections would hold the drain up
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash: nothing gets to clean up)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def __enter__(self) -> ActionServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
