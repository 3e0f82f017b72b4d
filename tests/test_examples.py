"""The example workflows hold together as files (fast tier; the e2e tier runs them in n8n)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CANARY
from mailserver import MailServer
from n8nhost import _execution

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "n8n"
WORKFLOWS = sorted(p for p in EXAMPLES.glob("*.json") if p.name != "credentials.json")
CREDENTIALS = json.loads((EXAMPLES / "credentials.json").read_text())
# A conservative bound, reported for `n8n execute --id`; n8n 2.8.4 on SQLite ran a 22-character
# id, and imported a 40-character one. Its own ids are 16 characters.
N8N_MAX_ID = 21


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_every_workflow_is_listed():
    assert [p.name for p in WORKFLOWS] == [
        "chat-to-email-async.json",
        "chat-to-email-node.json",
        "chat-to-email.json",
        "chat-to-webhook.json",
    ]


def test_workflow_ids_are_unique_and_short_enough_for_n8n_execute():
    ids = [load(p)["id"] for p in WORKFLOWS]
    assert len(set(ids)) == len(ids)
    assert all(len(i) <= N8N_MAX_ID for i in ids), ids


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_credentials_are_the_ones_credentials_json_defines(path):
    defined = {(c["type"], c["id"], c["name"]) for c in CREDENTIALS}
    for node in load(path)["nodes"]:
        for kind, ref in node.get("credentials", {}).items():
            assert (kind, ref["id"], ref["name"]) in defined, node["name"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_connections_join_existing_nodes_and_every_node_is_reached(path):
    doc = load(path)
    names = {n["name"] for n in doc["nodes"]}
    reached = {"Start"}
    for source, outputs in doc["connections"].items():
        assert source in names
        for branch in outputs["main"]:
            for link in branch:
                assert link["node"] in names
                reached.add(link["node"])
    assert reached == names


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("chat-to-email.json", "={{ $json.choices[0].message.content }}"),
        ("chat-to-email-async.json", "={{ $json.body.choices[0].message.content }}"),
        ("chat-to-email-node.json", "={{ $json.choices[0].message.content }}"),
    ],
)
def test_the_email_text_is_the_reply(path, text):
    (mail,) = [n for n in load(EXAMPLES / path)["nodes"] if n["type"].endswith(".emailSend")]
    assert mail["parameters"]["text"] == text
    assert mail["parameters"]["emailFormat"] == "text"


def test_smtp_credential_is_plain_for_a_local_server():
    (smtp,) = [c for c in CREDENTIALS if c["type"] == "smtp"]
    assert smtp["data"]["secure"] is False  # n8n's default (true) fails on a plain server


@pytest.mark.parametrize(
    ("stdout", "status"),
    [
        ('{\n  "status": "success"\n}\n', "success"),
        ('n8n Task Broker ready on 127.0.0.1, port 5679\n{\n  "status": "success"\n}\n', "success"),
        (
            'Execution was NOT successful.\n====\n{\n  "status": "error"\n}\nError executing workflow.\n',
            "error",
        ),
        ('"--id" has to be set!\n', None),
        ("", None),
    ],
    ids=["bare", "after-log-lines", "failure-report", "no-id", "empty"],
)
def test_execution_document_is_found_in_n8n_stdout(stdout, status):
    doc = _execution(stdout)
    assert (doc or {}).get("status") == status


@pytest.mark.parametrize(
    ("scenario", "code", "requests", "mails"),
    [
        ("429-then-ok", 0, 2, 1),  # retryable: the example waits Retry-After, tries once more
        ("quota", 3, 1, 0),  # not retryable: no second try, no mail
        ("503-always", 4, 2, 0),  # retryable, but the second try fails too
    ],
)
def test_python_example_branches_on_the_error_object(fault_server, scenario, code, requests, mails):
    hit = fault_server.scenario(scenario, retry_after=0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env |= {"OPENAI_API_KEY": CANARY, "OPENAI_BASE_URL": hit.base_url, "OPENAI_MAX_RETRIES": "0"}
    with MailServer() as mail:
        example = str(ROOT / "examples" / "python" / "chat_to_email.py")
        proc = subprocess.run(
            [
                sys.executable,
                example,
                "Hello",
                "--to",
                "ops@example.com",
                "--smtp-port",
                str(mail.port),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == code, proc.stderr
        assert hit.count == requests
        assert len(mail.wait(mails, timeout=2 if mails else 0.5)) == mails
    assert CANARY not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
