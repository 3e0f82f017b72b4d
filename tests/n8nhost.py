"""The real n8n (installed by scripts/setup-n8n in tests/n8n/), run through its own CLI.

Each ``N8n`` has its own user folder (database, settings, encryption key), so runs never touch
a user's ~/.n8n. ``execute`` boots n8n once per call (200-420 MiB; see docs/examples.md for times).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.transport.local import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "tests" / "n8n" / "node_modules" / ".bin" / "n8n"
SETUP_HINT = "run bash scripts/setup-n8n"
# Quiet and offline: no telemetry, no version check, no template gallery.
ENV = {
    "N8N_DIAGNOSTICS_ENABLED": "false",
    "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
    "N8N_TEMPLATES_ENABLED": "false",
    "N8N_PERSONALIZATION_ENABLED": "false",
    # The workflows need no Code node: no task runner process is started (external mode).
    "N8N_RUNNERS_MODE": "external",
}


@dataclass
class Execution:
    """One ``n8n execute`` run: exit code, the execution it printed (or None), the raw output."""

    code: int
    data: Any
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """Return True when n8n exited 0 and printed run data with no error in it."""
        return self.code == 0 and self.data is not None and self.data.get("status") == "success"

    @property
    def _result(self) -> dict:
        return (self.data or {}).get("data", {}).get("resultData", {})

    @property
    def error(self) -> dict | None:
        """Return the run's error (n8n's own object: node, httpCode, messages...), if any."""
        return self._result.get("error")

    def output(self, node: str) -> list[dict]:
        """Return the ``json`` of each item the node gave in its last run."""
        runs = self._result["runData"][node]
        return [item["json"] for item in runs[-1]["data"]["main"][0]]

    def ran(self, node: str) -> int:
        """Return how many times a node ran."""
        return len(self._result.get("runData", {}).get(node, []))


class N8n:
    """An n8n with its own user folder under ``folder``."""

    def __init__(self, folder: Path) -> None:
        if not BIN.exists():
            raise RuntimeError(f"n8n is not installed at {BIN}: {SETUP_HINT}")
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, **ENV, "N8N_USER_FOLDER": str(folder)}
        # The task broker listens even in external mode: on a free port (its default is fixed),
        # behind a token no runner knows.
        self.env["N8N_RUNNERS_BROKER_PORT"] = str(free_port())
        self.env["N8N_RUNNERS_AUTH_TOKEN"] = secrets.token_hex(16)

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN), *args],
            env=self.env,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def _import(self, kind: str, document: Any) -> None:
        path = self.folder / f"import-{kind}.json"
        path.write_text(json.dumps(document))
        proc = self.cli(f"import:{kind}", f"--input={path}")
        path.unlink()  # credentials: the file holds secrets in clear
        if proc.returncode != 0:
            raise RuntimeError(f"n8n import:{kind} failed: {proc.stdout}\n{proc.stderr}")

    def import_credentials(self, credentials: list[dict]) -> None:
        self._import("credentials", credentials)

    def import_workflow(self, workflow: dict) -> None:
        self._import("workflow", workflow)

    def execute(self, workflow_id: str, timeout: float = 300) -> Execution:
        """Run an imported workflow once, as the editor's Execute button would."""
        proc = self.cli("execute", f"--id={workflow_id}", "--rawOutput", timeout=timeout)
        return Execution(proc.returncode, _execution(proc.stdout), proc.stdout, proc.stderr)


def _execution(stdout: str) -> dict | None:
    """Return the execution document in n8n's stdout: log lines come before it, and after a
    failure, an error report follows it."""
    start = re.search(r"^\{$", stdout, re.MULTILINE)
    if start is None:
        return None
    try:
        return json.JSONDecoder().raw_decode(stdout, start.start())[0]
    except ValueError:
        return None
