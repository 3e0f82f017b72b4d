"""End-to-end: the seed's Zap (chat, then e-mail) with the Zapier app in zapier-platform-core.

The create runs in the core (``tests/zapier/tester.js``, ``createAppTester``) against the action
server on loopback, which calls the embedded local model. Zapier's own e-mail step (Email by
Zapier) runs only in Zapier's service, so the test stands in for it: it maps the output field the
Zap maps (Choices Message Content, ``choices[]message__content``) into a mail to the real SMTP
server, as the step would.
"""

from __future__ import annotations

import json
import smtplib
import subprocess
from email.message import EmailMessage
from pathlib import Path

import pytest
from actionserver import TOKEN
from mailserver import MailServer

from connector.transport import local

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
TESTER = ROOT / "tests" / "zapier" / "tester.js"
CREATE = "creates.create_chat_completion.operation.perform"
MESSAGES = [
    {"role": "developer", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write one short sentence about the sea."},
]


def create(server: str, **changes: str) -> dict:
    form = {
        "model": local.MODEL_ALIAS,
        "messages": json.dumps(MESSAGES),
        "temperature": "0.2",
        "stop": "END,STOP",
        "max_completion_tokens": "64",
        **changes,
    }
    bundle = {"authData": {"url": server, "token": TOKEN}, "inputData": form}
    proc = subprocess.run(
        ["node", str(TESTER), "run", str(ROOT / "hosts" / "zapier"), CREATE],
        input=json.dumps(bundle), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def mapped(output: dict, key: str) -> str:
    """Return what a Zap maps for an output field: a list's values joined with commas."""
    head, _, rest = key.partition("[]")
    values = []
    for item in output[head]:
        for part in rest.split("__"):
            item = item[part]
        values.append(str(item))
    return ",".join(values)


def mail(smtp: MailServer, body: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = (
        "zap@example.com",
        "ops@example.com",
        "Chat",
    )
    message.set_content(body)
    with smtplib.SMTP(smtp.host, smtp.port) as client:
        client.send_message(message)


def test_the_zap_chats_with_the_local_model_then_mails_the_reply(action_server):
    out = create(action_server)["results"]
    reply = mapped(out, "choices[]message__content")
    assert reply.strip() and reply == out["choices"][0]["message"]["content"]
    assert out["usage"]["completion_tokens"] <= 64
    with MailServer() as smtp:
        mail(smtp, reply)
        (received,) = smtp.wait(1)
    assert received.get_content().strip() == reply.strip()


def test_a_bad_field_fails_the_step_with_its_label(action_server):
    doc = create(action_server, temperature="hot")
    assert doc["error"]["name"] == "AppError"  # the Zap stops here: no mail step runs
    error = json.loads(doc["error"]["message"])
    assert (error["code"], error["status"]) == ("invalid_input", 422)
    assert "Temperature: expected a number, got 'hot'" in error["message"]
