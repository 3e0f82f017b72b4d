"""A typed client generated from the served /openapi.json runs Create Chat Completion, sync and async.

Code generators (openapi-python-client here, as Windmill and Cortex XSOAR users do) must read the
document whole: no operation skipped, no warning. The client then calls the real server.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from actionserver import TOKEN

pytestmark = pytest.mark.server

PACKAGE = "chat_connector_client"
MESSAGES = '[{"role": "user", "content": "Say hi."}]'


@pytest.fixture(scope="module")
def client_module(action_server, tmp_path_factory):
    """Generate the client from the served document, then import it."""
    folder = tmp_path_factory.mktemp("client")
    doc = requests.get(
        action_server + "/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    doc.raise_for_status()
    spec = folder / "openapi.json"
    spec.write_bytes(doc.content)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [str(bin_dir / "openapi-python-client"), "generate", "--path", str(spec), "--meta", "none",
         "--output-path", str(folder / PACKAGE)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    said = proc.stdout + proc.stderr
    assert proc.returncode == 0, said
    # openapi-python-client prints "Warning(s) encountered" for each operation or schema it skips.
    assert "warning" not in said.lower(), said
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))


def _client(client_module, base_url):
    return client_module.AuthenticatedClient(base_url=base_url, token=TOKEN, timeout=300)


@pytest.mark.parametrize(
    "operation",
    [
        "create_chat_completion",
        "create_chat_completion_async",
        "create_chat_completion_dry_run",
        "create_chat_completion_model_options",
        "list_models",
        "list_models_async",
        "get_run",
    ],
)
def test_every_operation_is_generated(client_module, operation):
    importlib.import_module(f"{PACKAGE}.api.default.{operation}")


def _form(client_module, **extra):
    form_model = importlib.import_module(f"{PACKAGE}.models").CreateChatCompletionForm
    return form_model.from_dict({"model": "smollm2", "messages": MESSAGES, **extra})


def test_the_sync_run_parses_into_the_output_model(client_module, action_server):
    run = importlib.import_module(f"{PACKAGE}.api.default.create_chat_completion")
    models = importlib.import_module(f"{PACKAGE}.models")
    with _client(client_module, action_server) as client:
        reply = run.sync_detailed(
            client=client, body=_form(client_module, max_completion_tokens="16")
        )
    assert reply.status_code == 200, reply.content
    out = reply.parsed
    assert isinstance(out, models.CreateChatCompletionOutput)
    assert out.object_ == "chat.completion"
    assert isinstance(out.choices[0].message.content, str)
    assert out.usage.completion_tokens >= 1


def test_the_async_run_is_started_then_polled(client_module, action_server):
    start = importlib.import_module(f"{PACKAGE}.api.default.create_chat_completion_async")
    poll = importlib.import_module(f"{PACKAGE}.api.default.get_run")
    models = importlib.import_module(f"{PACKAGE}.models")
    with _client(client_module, action_server) as client:
        accepted = start.sync_detailed(
            client=client, body=_form(client_module, max_completion_tokens="16")
        )
        assert accepted.status_code == 202, accepted.content
        run = accepted.parsed
        assert isinstance(run, models.RunAccepted)
        assert accepted.headers["location"] == run.location
        assert run.location.startswith("http")  # absolute, valid on any host that polls it
        deadline = time.monotonic() + 300
        while True:
            reply = poll.sync_detailed(run.id, client=client)
            if reply.status_code != 202:
                break
            assert time.monotonic() < deadline, "the run did not finish in 300 s"
            time.sleep(int(reply.headers.get("retry-after", "1")))
    assert reply.status_code == 200, reply.content
    assert isinstance(reply.parsed, models.RunOutput)
    # One poll route serves every action: its output is read into the action's own model.
    out = models.CreateChatCompletionOutput.from_dict(reply.parsed.to_dict())
    assert out.object_ == "chat.completion"
    assert isinstance(out.choices[0].message.content, str)
