"""The generated Zapier app (hosts/zapier/) in zapier-platform-core, against the real action server.

``tests/zapier/tester.js`` (zapier-platform-core from tests/zapier/, installed by
``bash scripts/setup-npm tests/zapier``) validates the app with the core's schema tools, as
``zapier validate`` does locally, and runs its auth test, trigger and create with
``createAppTester``, each against ``python -m connector serve`` on loopback, whose upstream is the
fault server: what the step sends and what reaches the API are both seen.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from actionserver import TOKEN, ActionServer
from faultserver import FaultServer
from scaleout import SECRET, Receiver, WorkerProcess

from connector.engine.loader import load_manifest
from connector.server.callbacks import payload
from connector.views import zapierapp

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "hosts" / "zapier"
TESTER = ROOT / "tests" / "zapier" / "tester.js"
REJECTION = "Unsupported value: 'temperature' does not support 0.2 with this model."
KEY = "sk-zapier-test-3f9a1c7e"  # the server's API key: never in what the step shows
CREATE = "creates.create_chat_completion.operation"
ACTION = load_manifest().action("create_chat_completion")
SEED = next(p for p in ACTION.parameters if p.name == "messages").example
EXAMPLE = ACTION.output.example
# The seed's form: Basic as typed, and the Advanced text of the flow.
FORM = {
    "model": "gpt-4o-mini",
    "messages": json.dumps(SEED),
    "temperature": "0.2",
    "stop": "END,STOP",
    "max_completion_tokens": "64",
}


def zap(command: str, method: str = "", bundle: dict | None = None) -> dict:
    """Run tester.js once; return its JSON document (the secrets never in its output)."""
    assert (TESTER.parent / "node_modules").is_dir(), "run bash scripts/setup-npm tests/zapier"
    proc = subprocess.run(
        ["node", str(TESTER), command, str(APP), *([method] if method else [])],
        input=json.dumps(bundle or {}), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for secret in (TOKEN, KEY):
        assert secret not in proc.stdout and secret not in proc.stderr
    return json.loads(proc.stdout)


def zap_error(doc: dict) -> dict:
    """Return the z.errors.Error the step threw: message, code (the type), status."""
    assert "error" in doc, doc
    assert doc["error"]["name"] == "AppError", doc
    return json.loads(doc["error"]["message"])


@pytest.fixture(scope="module")
def upstream():
    with FaultServer() as server:
        yield server


def _server(upstream_url: str, tmp: Path):
    env = {"OPENAI_BASE_URL": upstream_url, "OPENAI_API_KEY": KEY, "OPENAI_MAX_RETRIES": "0"}
    return ActionServer("--runs-db", str(tmp / "runs.sqlite3"), env=env)


@pytest.fixture(scope="module")
def ok(upstream, tmp_path_factory):
    """The action server, its upstream the fault server's ``ok`` scenario."""
    scenario = upstream.scenario("ok")
    with _server(scenario.base_url, tmp_path_factory.mktemp("ok")) as server:
        yield SimpleNamespace(url=server.url, upstream=scenario, server=server)
    assert TOKEN not in server.logs() and KEY not in server.logs()


@pytest.fixture(scope="module")
def rejecting(upstream, tmp_path_factory):
    """The action server, its upstream an API that rejects the request (400)."""
    scenario = upstream.scenario(
        "error", status=400, code="unsupported_value", param="temperature",
        message=quote(REJECTION, safe=""),  # the base URL's path carries it
    )  # fmt: skip
    with _server(scenario.base_url, tmp_path_factory.mktemp("rejecting")) as server:
        yield SimpleNamespace(url=server.url, upstream=scenario)


def auth(url: str, token: str = TOKEN) -> dict:
    return {"authData": {"url": url, "token": token}}


def test_the_app_validates_with_the_platform_schema():
    assert zap("validate") == {"errors": []}


def test_the_connection_test_lists_the_actions(ok):
    result = zap("run", "authentication.test", auth(ok.url))["results"]
    ids = [a.id for a in load_manifest().actions]
    assert result == {"url": ok.url, "actions": ", ".join(ids)}


@pytest.mark.parametrize(
    ("where", "token", "code", "words"),
    [
        ("server", "not-the-token", "unauthorized", "token"),
        ("nowhere", TOKEN, "connection", "Cannot reach the action server"),
    ],
    ids=["wrong-token", "no-server"],
)
def test_the_connection_test_fails_with_the_reason(ok, where, token, code, words):
    url = ok.url if where == "server" else "http://127.0.0.1:9"  # discard: nothing listens
    error = zap_error(zap("run", "authentication.test", auth(url, token)))
    assert error["code"] == code
    assert words in error["message"]


def test_the_model_trigger_lists_the_servers_models(ok):
    before = ok.upstream.count
    items = zap("run", "triggers.list_models.operation.perform", auth(ok.url))["results"]
    (sent,) = ok.upstream.requests[before:]
    assert sent.method == "GET" and sent.path.endswith("/models")
    assert "gpt-4o-mini" in [item["id"] for item in items]
    # Each item is an option of the server's options route: id its value, name its label.
    route = "/actions/create_chat_completion/options/model"
    options = ok.server.call("GET", route).json()
    assert items == [{"id": o["value"], "name": o["label"]} for o in options]


def test_the_create_sends_the_form_text_and_returns_the_output(ok):
    before = ok.upstream.count
    out = zap("run", f"{CREATE}.perform", auth(ok.url) | {"inputData": FORM})["results"]
    (sent,) = ok.upstream.requests[before:]
    assert sent.json["messages"] == SEED
    assert sent.json["model"] == "gpt-4o-mini"
    assert sent.json["temperature"] == 0.2
    assert sent.json["stop"] == ["END", "STOP"]
    assert sent.json["max_completion_tokens"] == 64
    assert sent.header("Authorization") == f"Bearer {KEY}"
    # What the e-mail step maps is there, as the sample says it will be.
    assert out["choices"][0]["message"]["content"] == "echo: Hello!"
    assert set(out["usage"]) == set(EXAMPLE["usage"])


def test_the_runs_warnings_go_to_the_steps_log_and_the_output_is_the_apis(ok):
    repaired = '[{"role": "user", "content": "He said "hi" at C:\\Users\\pat"}]'
    doc = zap(
        "run", f"{CREATE}.perform", auth(ok.url) | {"inputData": FORM | {"messages": repaired}}
    )
    # The core writes each z.console.log line twice to stdout (as is, then with a line end).
    said = {line.strip() for line in doc["logs"] if line.startswith("Warning: ")}
    assert len(said) == 3 and all(
        line.startswith("Warning: Messages: line 1, column ") for line in said
    )
    assert set(doc["results"]) == set(EXAMPLE)  # no key added for the warnings
    quiet = zap("run", f"{CREATE}.perform", auth(ok.url) | {"inputData": FORM})
    assert not [line for line in quiet["logs"] if line.startswith("Warning: ")]


def test_curly_text_is_sent_as_typed_not_read_as_zapiers_template(ok):
    text = "Fill in {{bundle.authData.token}} and {{name}}."
    before = ok.upstream.count
    zap("run", f"{CREATE}.perform", auth(ok.url) | {"inputData": FORM | {"messages": text}})
    (sent,) = ok.upstream.requests[before:]
    assert sent.json["messages"] == [{"role": "user", "content": text}]


@pytest.mark.parametrize(
    ("change", "label"),
    [
        ({"temperature": "hot"}, "Temperature"),
        ({"messages": "[]"}, "Messages"),
        ({"stop": "a,b,c,d,e"}, "Stop"),
        ({"max_completion_tokens": "many"}, "Max Completion Tokens"),
        ({"model": None}, "Model"),
    ],
    ids=["temperature", "messages", "stop", "max-tokens", "no-model"],
)
def test_a_refused_form_throws_the_connectors_error_and_sends_nothing(ok, change, label):
    form = {k: v for k, v in (FORM | change).items() if v is not None}
    before = ok.upstream.count
    error = zap_error(zap("run", f"{CREATE}.perform", auth(ok.url) | {"inputData": form}))
    assert error["code"] == "invalid_input"
    assert error["status"] == 422
    assert label in error["message"]
    assert ok.upstream.count == before


def test_an_api_error_throws_its_message_and_type(rejecting):
    error = zap_error(zap("run", f"{CREATE}.perform", auth(rejecting.url) | {"inputData": FORM}))
    assert error["code"] == "bad_request"
    assert error["status"] == 400
    assert REJECTION in error["message"]
    assert rejecting.upstream.count == 1


def test_wait_for_callback_is_refused_by_a_server_without_callbacks(ok):
    form = FORM | {zapierapp.CALLBACK_FIELD: "true"}
    error = zap_error(zap("run", f"{CREATE}.perform", auth(ok.url) | {"inputData": form}))
    assert error["code"] == "callbacks_unavailable"
    assert "Wait for Callback" in error["message"]


@pytest.mark.parametrize(
    ("status", "result"),
    [
        (200, EXAMPLE),
        (400, {"error": {"type": "bad_request", "message": "Unsupported value: 'stop'."}}),
    ],
    ids=["done", "failed"],
)
def test_the_callback_resumes_the_step(status, result):
    # The body a scale-out server's worker POSTs (connector/server/callbacks.py).
    run = SimpleNamespace(
        id="0" * 32, action="create_chat_completion", status=status, result=result
    )
    done = json.loads(payload(run))
    doc = zap("run", f"{CREATE}.performResume", {"cleanedRequest": done, "outputData": {}})
    if status == 200:
        assert doc["results"] == result
    else:
        message = result["error"]["message"]
        assert zap_error(doc) == {"message": message, "code": "bad_request", "status": 400}


# -- Wait for Callback against a scale-out server: the run's result comes back by callback ---------


@pytest.fixture(scope="module")
def scaled(pg_cluster, upstream):
    """A scale-out server and worker on a real PostgreSQL, and a callback receiver on loopback
    (standing in for Zapier's callback URL; allowed by CONNECTOR_CALLBACK_ALLOWED_HOSTS)."""
    scenario = upstream.scenario("ok")
    common = {
        "CONNECTOR_RUNS_URL": pg_cluster.database(),
        "CONNECTOR_CALLBACK_SECRET": SECRET,
        "CONNECTOR_CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
    }
    worker = WorkerProcess(
        common | {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": scenario.base_url}
        | {"OPENAI_MAX_RETRIES": "0", "CONNECTOR_WORKER_POLL": "0.5"}
    )  # fmt: skip
    server = ActionServer(env=common)
    receiver = Receiver()
    worker.start(wait=False)
    server.start()
    worker.wait_ready()
    yield SimpleNamespace(url=server.url, upstream=scenario, receiver=receiver)
    receiver.close()
    server.stop()
    worker.stop()
    for log in (server.logs(), worker.logs()):
        assert TOKEN not in log and KEY not in log


def callback_run(url: str, callback: str, form: dict) -> dict:
    """Run the create with Wait for Callback on, Zapier's callback URL being ``callback``."""
    bundle = auth(url) | {"inputData": form | {zapierapp.CALLBACK_FIELD: True}}
    proc = subprocess.run(
        ["node", str(TESTER), "callback", str(APP), f"{CREATE}.perform", callback],
        input=json.dumps(bundle), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert TOKEN not in proc.stdout and KEY not in proc.stdout
    return json.loads(proc.stdout)


def test_wait_for_callback_pauses_the_step_and_the_callback_resumes_it(scaled):
    before = scaled.upstream.count
    started = callback_run(scaled.url, scaled.receiver.url, FORM)
    assert started["status"] == "CALLBACK", started  # Zapier holds the step until the callback
    assert started["results"]["state"] == "queued"
    deadline = time.monotonic() + 30
    while not scaled.receiver.calls and time.monotonic() < deadline:
        time.sleep(0.1)
    ((headers, body, _),) = scaled.receiver.calls
    assert headers["X-Connector-Run-Id"] == started["results"]["id"]
    (sent,) = scaled.upstream.requests[before:]
    assert sent.json["stop"] == ["END", "STOP"] and sent.json["temperature"] == 0.2
    bundle = {"cleanedRequest": json.loads(body), "outputData": started["results"]}
    out = zap("run", f"{CREATE}.performResume", bundle)["results"]
    assert out["choices"][0]["message"]["content"] == "echo: Hello!"


def test_wait_for_callback_refuses_a_bad_form_at_once_and_queues_nothing(scaled):
    before, calls = scaled.upstream.count, len(scaled.receiver.calls)
    doc = callback_run(scaled.url, scaled.receiver.url, FORM | {"temperature": "hot"})
    error = zap_error(doc)
    assert (error["code"], error["status"]) == ("invalid_input", 422)
    assert "Temperature" in error["message"]
    time.sleep(1)  # a queued run would have reached the stub by now (the worker polls every 0.5 s)
    assert scaled.upstream.count == before and len(scaled.receiver.calls) == calls
