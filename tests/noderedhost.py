"""The real Node-RED (installed by ``scripts/setup-npm tests/node-red``), run as its own process.

Each ``NodeRed`` has its own user folder and settings file in a temporary folder, with the
generated package (``hosts/node-red/``) and ``node-red-node-email`` linked into its
``node_modules``, as ``npm install <folder>`` links a local package. Flows are deployed through
the admin API, as the editor's Deploy button does, and started by an Inject node's button route.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import requests

from connector.transport.local import free_port
from connector.views.nodered import PACKAGE

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / "tests" / "node-red" / "node_modules"
RED_JS = MODULES / "node-red" / "red.js"
SETUP_HINT = "run bash scripts/setup-npm tests/node-red"
SECRET = "node-red-credential-secret-e2e"  # encrypts the user folder's credentials file
SETTINGS = """module.exports = {
  uiHost: "127.0.0.1",
  uiPort: %(port)d,
  userDir: %(user)s,
  flowFile: "flows.json",
  credentialSecret: %(secret)s,
  functionExternalModules: false,
  externalModules: { autoInstall: false, palette: { allowInstall: false } },
  diagnostics: { enabled: false, ui: false },
  telemetry: { enabled: false },
  editorTheme: { tours: false, projects: { enabled: false } },
  logging: { console: { level: "info", metrics: false, audit: false } },
};
"""


class NodeRed:
    """A Node-RED with its own user folder under ``folder``."""

    def __init__(self, folder: Path) -> None:
        if not RED_JS.exists():
            raise RuntimeError(f"Node-RED is not installed at {RED_JS}: {SETUP_HINT}")
        self.user = folder / "user"
        modules = self.user / "node_modules"
        modules.mkdir(parents=True)
        (modules / PACKAGE).symlink_to(ROOT / "hosts" / "node-red")
        (modules / "node-red-node-email").symlink_to(MODULES / "node-red-node-email")
        dependencies = {PACKAGE: "file:" + str(ROOT / "hosts" / "node-red")}
        dependencies["node-red-node-email"] = "*"
        package = {"name": "node-red-project", "private": True, "dependencies": dependencies}
        (self.user / "package.json").write_text(json.dumps(package))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = folder / "settings.js"
        values = {"port": self.port, "user": json.dumps(str(self.user))}
        self.settings.write_text(SETTINGS % {**values, "secret": json.dumps(SECRET)})
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> NodeRed:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_RED")}
        self.proc = subprocess.Popen(
            ["node", str(RED_JS), "--settings", str(self.settings), "--userDir", str(self.user)],
            cwd=self.user,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url + "/flows", timeout=2).status_code == 200:
                    return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("Node-RED did not start:\n" + self.logs())

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def logs(self) -> str:
        return "\n".join(self.lines)

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, headers={"Accept": "application/json"}, timeout=60)

    def deploy(self, flow: list[dict[str, Any]]) -> None:
        """Replace every flow, as a full deploy from the editor (credentials inline)."""
        started = self.logs().count("Started flows")
        headers = {"Node-RED-Deployment-Type": "full", "Node-RED-API-Version": "v1"}
        answer = requests.post(self.url + "/flows", json=flow, headers=headers, timeout=60)
        assert answer.status_code == 204, answer.text
        deadline = time.monotonic() + 60  # the answer may come before the flows have started
        while self.logs().count("Started flows") == started and time.monotonic() < deadline:
            time.sleep(0.05)

    def inject(self, node_id: str) -> None:
        """Press an Inject node's button."""
        answer = requests.post(f"{self.url}/inject/{node_id}", timeout=60)
        assert answer.status_code == 200, f"{answer.text}\n{self.logs()}"

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self) -> NodeRed:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
