"""schemathesis against the live action server's own OpenAPI document (``pytest -m server``).

Checked: no 5xx, every status, content type, header and body as the document says, methods
not in the document answered 405, and auth enforced. Not checked: whether schemathesis'
generated data is accepted or refused as its JSON Schema types suggest; the form's input rules
take text for numbers ("0.2") and have cross-field rules (Top Logprobs needs Logprobs) that a
JSON Schema does not state.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from actionserver import TOKEN, ActionServer
from conftest import CANARY

pytestmark = pytest.mark.server

SKIPPED_CHECKS = "positive_data_acceptance,negative_data_rejection"


def test_schemathesis_finds_no_5xx_and_no_response_off_the_document(fault_server, tmp_path):
    env = {
        "OPENAI_API_KEY": CANARY,
        "OPENAI_BASE_URL": fault_server.scenario("ok").base_url,
        "OPENAI_MAX_RETRIES": "0",
        "OPENAI_TIMEOUT": "5",
        "CONNECTOR_ALLOWED_HOSTS": "127.0.0.1",
        "CONNECTOR_RUNS_DB": str(tmp_path / "runs.sqlite3"),
    }
    with ActionServer(env=env) as server:
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "st"),
                "run",
                server.url + "/openapi.json",
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--checks",
                "all",
                "--exclude-checks",
                SKIPPED_CHECKS,
                "--max-examples",
                "25",
                "--seed",
                "14",
                "--workers",
                "2",
                "--no-color",
                "--generation-database",
                "none",
                "--request-timeout",
                "20",
                "--report-dir",
                str(tmp_path / "report"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        logs = server.logs()
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", done.stdout)
    assert selected and selected.group(1) == selected.group(2)  # every operation was tried
    assert CANARY not in done.stdout + logs and TOKEN not in logs
