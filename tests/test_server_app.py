"""The action server's app in process (falcon.testing), its documents, run store and settings."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import falcon
import falcon.testing
import pytest
import responses
from conftest import CANARY
from openapi_spec_validator import validate

from connector.engine import runner
from connector.engine.loader import load_manifest
from connector.errors import ERROR_TYPES, InvalidInput, RequestRejected
from connector.server import app as server
from connector.server import idempotency
from connector.server.idempotency import Caller
from connector.server.runs import RunStore
from connector.views import apidocs, docs, openapi, swagger

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client(tmp_path):
    settings = server.Settings(tokens=("t-123456",), runs_db=str(tmp_path / "runs.sqlite3"))
    return falcon.testing.TestClient(
        server.create_app(settings), headers={"Authorization": "Bearer t-123456"}
    )


def test_a_bug_is_a_500_error_object_without_its_message(client, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError(f"boom with {CANARY}")

    monkeypatch.setattr(runner, "run", broken)
    r = client.simulate_post("/actions/create_chat_completion/run", json={"model": "m"})
    assert r.status_code == 500
    assert r.json["error"]["type"] == "internal" and "ValueError" in r.json["error"]["message"]
    assert CANARY not in r.text


@pytest.mark.parametrize("kind", ["local_server_crashed", "local_server_killed"])
def test_a_local_server_death_has_its_status(client, monkeypatch, kind):
    # Raised by connector.transport.local (tests/test_local.py, the live tier); here only its status.
    def dead(*args, **kwargs):
        raise ERROR_TYPES[kind].cls("The local model server died", type=kind, body="log tail")

    monkeypatch.setattr(runner, "run", dead)
    r = client.simulate_post("/actions/create_chat_completion/run", json={"model": "m"})
    assert r.status_code == ERROR_TYPES[kind].http_status
    assert r.json["error"]["type"] == kind and r.json["error"]["body"] == "log tail"


COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "logprobs": None,
                 "finish_reason": "stop"}],
}  # fmt: skip


@pytest.mark.parametrize(
    ("route", "replies", "attempts"),
    [
        ("run", [200], 1),
        ("run", [429, 200], 2),
        ("run", [503, 429, 200], 3),
        ("dry-run", [], 0),  # nothing is sent
    ],
)
def test_the_log_line_counts_the_requests_a_run_sent(client, caplog, route, replies, attempts):
    with responses.RequestsMock() as mock:
        for status in replies:
            body = COMPLETION if status == 200 else {"error": {"message": "busy", "type": "x"}}
            mock.post(
                "https://api.openai.com/v1/chat/completions",
                json=body,
                status=status,
                headers={"retry-after-ms": "1"},
            )
        caplog.set_level(logging.INFO, logger="connector.server")
        r = client.simulate_post(
            f"/actions/create_chat_completion/{route}",
            json={"model": "m", "messages": [{"role": "user", "content": "Hi"}]},
            headers={"X-OpenAI-Api-Key": "sk-test-0123456789abcdef"},
        )
    assert r.status_code == 200, r.text
    lines = [json.loads(x.getMessage()) for x in caplog.records if x.name == "connector.server"]
    lines = [x for x in lines if x["event"] != "warnings"]  # COMPLETION has no usage
    assert [(x["outcome"], x["attempts"]) for x in lines] == [("ok", attempts)]


# -- warnings: X-Connector-Warnings, the run's result, the log ------------------------------

TENANT = {"X-OpenAI-Api-Key": "sk-test-0123456789abcdef"}
USAGE = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
REPAIRED = '[{"role": "user", "content": "He said "hi" from C:\\Users\\pat"}]'
CUT = {**COMPLETION, "usage": USAGE, "choices": [{**COMPLETION["choices"][0], "finish_reason": "length"}]}  # fmt: skip


def _warned(r) -> list[tuple]:
    said = r.headers.get("X-Connector-Warnings")
    return [(w["kind"], w.get("label")) for w in json.loads(said)] if said else []


@pytest.mark.parametrize(
    ("route", "messages", "reply", "heard"),
    [
        ("run", "Hi", {**COMPLETION, "usage": USAGE}, []),
        ("run", REPAIRED, {**COMPLETION, "usage": USAGE}, [("repaired", "Messages")] * 3),
        ("run", "Hi", CUT, [("truncated", "Max Completion Tokens")]),
        ("run", "Hi", COMPLETION, [("no_usage", None)]),
        ("dry-run", REPAIRED, None, [("repaired", "Messages")] * 3),
    ],
)
def test_the_warnings_header_says_the_runs_warnings(client, caplog, route, messages, reply, heard):
    with responses.RequestsMock() as mock:
        if reply is not None:
            mock.post("https://api.openai.com/v1/chat/completions", json=reply)
        r = client.simulate_post(
            f"/actions/create_chat_completion/{route}",
            json={"model": "m", "messages": messages},
            headers=TENANT,
        )
    assert r.status_code == 200, r.text
    assert _warned(r) == heard
    if route == "run":  # the output's shape is the API's: nothing added
        assert set(r.json) == {*COMPLETION, "usage", "service_tier", "system_fingerprint"}
    lines = [json.loads(x.getMessage()) for x in caplog.records if x.name == "connector.server"]
    said = [x for x in lines if x["event"] == "warnings"]
    assert [len(x["warnings"]) for x in said] == ([len(heard)] if heard else [])
    assert all(x["request_id"] == r.headers["X-Request-Id"] for x in said)


def test_an_async_runs_result_says_its_warnings(client):
    with responses.RequestsMock() as mock:
        mock.post("https://api.openai.com/v1/chat/completions", json=CUT)
        r = client.simulate_post(
            "/actions/create_chat_completion/runs",
            json={"model": "m", "messages": "Hi"},
            headers=TENANT,
        )
        assert r.status_code == 202 and "X-Connector-Warnings" not in r.headers
        location = r.headers["Location"].split("://", 1)[1].split("/", 1)[1]
        for _ in range(200):
            done = client.simulate_get("/" + location, headers=TENANT)  # its own key
            if done.status_code != 202:
                break
            time.sleep(0.02)
    assert done.status_code == 200 and done.json["choices"][0]["finish_reason"] == "length"
    assert _warned(done) == [("truncated", "Max Completion Tokens")]
    assert "warnings" not in done.json


def test_the_warnings_header_stays_short():
    from connector.server.answers import WARNINGS_MAX_BYTES, warnings_header

    resp = falcon.Response()
    warnings_header(resp, [{"kind": "repaired", "message": "x" * 100}] * 100)
    said = json.loads(resp.get_header("X-Connector-Warnings"))
    assert len(resp.get_header("X-Connector-Warnings")) <= WARNINGS_MAX_BYTES
    assert said[-1] == {"kind": "more", "message": f"and {101 - len(said)} more warnings"}


class Extra:
    public = True

    def on_get(self, req, resp):
        resp.media = {"extra": True}


def add_routes(app, settings):
    """A route contributor, as another module would write one."""
    app.add_route("/extra", Extra())


def test_other_modules_add_routes(tmp_path):
    settings = server.Settings(tokens=("t-123456",), runs_db=str(tmp_path / "r"))
    app = server.create_app(settings, routes=("test_server_app:add_routes",))
    c = falcon.testing.TestClient(app)
    assert c.simulate_get("/extra").json == {"extra": True}  # public: no token needed
    assert c.simulate_get("/actions").status_code == 401


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, server.Settings()),
        (
            {"CONNECTOR_SERVER_TOKENS": " a1, b2 ,", "CONNECTOR_ALLOWED_HOSTS": "x.com,*.y.org"},
            server.Settings(tokens=("a1", "b2"), allowed_hosts=("x.com", "*.y.org")),
        ),
        (
            {"CONNECTOR_SERVER_CONCURRENCY": "3", "CONNECTOR_RUN_RETENTION": "60"},
            server.Settings(concurrency=3, run_retention=60.0),
        ),
        (
            {"CONNECTOR_RUN_QUEUE_MAX": "50", "CONNECTOR_RUNS_POOL_SIZE": "4"},
            server.Settings(max_queued=50, runs_pool_size=4),
        ),
    ],
)
def test_settings_from_the_environment(env, expected):
    assert server.Settings.from_env(env) == expected


def test_tokens_never_show_in_the_settings_repr():
    assert "a1-secret" not in repr(server.Settings(tokens=("a1-secret",)))


# -- documents --------------------------------------------------------------------------------


@pytest.mark.parametrize("document", [openapi.document, swagger.document])
def test_documents_are_valid(document):
    validate(document())


def test_committed_documents_are_fresh():
    assert apidocs.write_all(ROOT / "docs", check=True) == []


def _swagger_form(action_id: str) -> dict:
    doc = swagger.document()
    body = doc["paths"][f"/actions/{action_id}/run"]["post"]["parameters"][-1]
    name = body["schema"]["$ref"].rsplit("/", 1)[1]
    return doc, doc["definitions"][name]


def test_swagger_fields_carry_labels_and_visibility():
    action = load_manifest().action("create_chat_completion")
    _, form = _swagger_form(action.id)
    for p in action.parameters:
        field = form["properties"][p.name]
        assert field["x-ms-summary"] == p.label
        assert (
            field["x-ms-visibility"] == {"basic": "important", "advanced": "advanced"}[p.visibility]
        )
    assert form["required"] == [p.name for p in action.parameters if p.required]


def test_the_model_field_is_a_dropdown_fed_by_the_options_operation():
    doc, form = _swagger_form("create_chat_completion")
    dynamic = form["properties"]["model"]["x-ms-dynamic-values"]
    paths = {op["operationId"]: path for path, item in doc["paths"].items() for op in item.values()}
    assert paths[dynamic["operationId"]] == "/actions/create_chat_completion/options/model"
    assert dynamic["value-path"] == "value" and dynamic["value-title"] == "label"


def test_the_async_operation_documents_202_with_location():
    op = openapi.document()["paths"]["/actions/create_chat_completion/runs"]["post"]
    assert set(op["responses"]["202"]["headers"]) == {"Location", "Retry-After"}


def test_every_error_status_is_documented_on_the_run_operation():
    responses = openapi.document()["paths"]["/actions/create_chat_completion/run"]["post"][
        "responses"
    ]
    wanted = {str(t.http_status) for t in ERROR_TYPES.values()} - {"405"}
    assert wanted <= set(responses)


def test_the_server_page_shows_the_generated_status_table():
    assert docs.status_table() in (ROOT / "docs" / "server.md").read_text(encoding="utf-8")


# -- the run store ----------------------------------------------------------------------------


def test_a_run_whose_worker_stopped_beating_reads_as_interrupted(tmp_path):
    db = tmp_path / "runs.sqlite3"
    worker = RunStore(db, heartbeat=0.05)
    run_id, _ = worker.create("create_chat_completion")
    assert [c.id for c in worker.claim(1)] == [run_id]
    reader = RunStore(db, heartbeat=0.05)
    reader.owner = "another"  # as if another process read it
    assert reader.get(run_id).state == "running"
    worker.owner = "elsewhere:1:x"  # its heartbeats stop reaching this run
    reader.owner = "reader"
    time.sleep(reader.stale_after + 0.1)
    run = reader.get(run_id)
    assert run.state == "done" and run.status == 503
    assert run.result["error"]["type"] == "interrupted"


def test_a_runs_warnings_are_stored_beside_its_result(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    said = [{"kind": "truncated", "message": "cut"}]
    quiet, _ = store.create("list_models")
    warned, _ = store.create("list_models")
    store.finish(quiet, 200, {"data": []})
    store.finish(warned, 200, {"data": []}, warnings=said)
    assert (store.get(quiet).warnings, store.get(warned).warnings) == (None, said)
    assert store.get(warned).result == {"data": []}


def test_finished_runs_are_purged_after_the_retention_time(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3", retention=0.05)
    run_id, _ = store.create("list_models")
    store.finish(run_id, 200, {"object": "list", "data": []})
    assert store.get(run_id).result == {"object": "list", "data": []}
    time.sleep(0.1)
    assert store.purge() == 1 and store.get(run_id) is None


def test_the_store_is_in_wal_mode(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    assert store._db().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_queued_runs_reach_the_metrics_on_render():
    from connector.server.metrics import Metrics

    m = Metrics()
    m.close()  # no flushing thread: only render adds the queued runs
    m.observe("create_chat_completion", "ok", 0.02, 2)
    m.observe("create_chat_completion", "rate_limited", 0.5, 3)
    text = m.render()[1].decode()
    assert 'connector_runs_total{action="create_chat_completion",outcome="ok"} 1.0' in text
    assert 'connector_upstream_attempts_total{action="create_chat_completion"} 5.0' in text
    assert 'connector_run_seconds_count{action="create_chat_completion"} 2.0' in text


# (the second call's scope, key and form; whether it is the first run; the error, if refused)
IDEMPOTENT = [
    (("t1", "k", {"q": 1}), True, None),  # the same call again: the same run
    (("t1", "k", {"q": 2}), False, "already used for a different call"),
    (("t2", "k", {"q": 1}), False, None),  # another caller's token: a run of its own
    (("t1", "k2", {"q": 1}), False, None),
    (("t1", None, {"q": 1}), False, None),  # no key: always a new run
]


@pytest.mark.parametrize(("second", "same", "error"), IDEMPOTENT)
def test_the_run_store_keeps_one_run_per_idempotency_key(tmp_path, second, same, error):
    store = RunStore(tmp_path / "runs.sqlite3")
    first, created = store.create("list_models", {"q": 1}, caller=Caller(scope="t1"), idem_key="k")
    assert created
    scope, key, form = second
    if error:
        with pytest.raises(InvalidInput, match=error):
            store.create("list_models", form, caller=Caller(scope=scope), idem_key=key)
        return
    run_id, created = store.create("list_models", form, caller=Caller(scope=scope), idem_key=key)
    assert (run_id == first, created) == (same, not same)


def test_a_run_file_of_an_older_version_gets_the_idempotency_columns(tmp_path):
    import sqlite3

    path = tmp_path / "runs.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE runs (id TEXT PRIMARY KEY, action TEXT NOT NULL, state TEXT NOT NULL,"
        " status INTEGER, result TEXT, owner TEXT NOT NULL, created REAL NOT NULL,"
        " updated REAL NOT NULL, heartbeat REAL NOT NULL)"
    )
    now = time.time()  # within the retention time
    old.execute(
        "INSERT INTO runs VALUES ('a', 'list_models', 'done', 200, '{}', 'x', ?, ?, ?)",
        (now, now, now),
    )
    old.commit()
    old.close()
    store = RunStore(path)
    assert store.get("a").status == 200
    first, _ = store.create("list_models", {}, caller=Caller(scope="t"), idem_key="k")
    assert store.create("list_models", {}, caller=Caller(scope="t"), idem_key="k") == (first, False)


# -- what a proxy says, and from whom ------------------------------------------------------------

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}


@pytest.mark.parametrize(
    ("trusted", "peer", "headers", "server_url"),
    [
        ((), "127.0.0.1", FORWARDED, "http://falconframework.org"),  # none trusted by default
        (("10.0.0.0/8",), "127.0.0.1", FORWARDED, "http://falconframework.org"),
        (("10.0.0.0/8",), "10.1.2.3", FORWARDED, "https://evil.example"),
        (
            ("127.0.0.1",),
            "127.0.0.1",
            {"Forwarded": "proto=https;host=flows.example"},
            "https://flows.example",
        ),
        (("::1",), "::1", FORWARDED, "https://evil.example"),
    ],
)
def test_forwarded_headers_count_only_from_trusted_proxies(
    tmp_path, trusted, peer, headers, server_url
):
    settings = server.Settings(
        tokens=("t-1",), runs_db=str(tmp_path / "r.sqlite3"), trusted_proxies=trusted
    )
    client = falcon.testing.TestClient(server.create_app(settings))
    r = client.simulate_get(
        "/openapi.json", headers={"Authorization": "Bearer t-1", **headers}, remote_addr=peer
    )
    assert r.json["servers"] == [{"url": server_url}]
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_a_trusted_proxy_that_is_no_address_is_refused():
    with pytest.raises(InvalidInput, match="CONNECTOR_TRUSTED_PROXIES"):
        server.create_app(server.Settings(tokens=("t",), trusted_proxies=("proxy.local",)))


@pytest.mark.parametrize("path", ["/healthz", "/actions", "/nothing-here", "/openapi.json"])
def test_every_answer_says_nosniff(client, path):
    assert client.simulate_get(path).headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        ({}, None),  # the server's own connection: not through connection_for
        ({"X-OpenAI-Api-Key": "sk-tenant"}, {"api_key": "sk-tenant"}),
        (
            {"X-OpenAI-Base-Url": "https://tenant.example/v1"},
            {"base_url": "https://tenant.example/v1", "allowed_hosts": ["tenant.example"]},
        ),
    ],
)
def test_the_servers_org_and_project_go_only_with_its_own_key(headers, kept):
    from connector.server import intake

    server_env = {
        "api_key": "sk-server",
        "organization": "org-server",
        "project": "proj_server",
        "timeout": "30",
    }
    settings = server.Settings(tokens=("t",), allowed_hosts=("tenant.example",))
    req = falcon.testing.create_req(headers=headers)
    got = intake.connection_for(req, settings, server_env)
    if kept is None:
        assert got is None
        return
    assert "organization" not in got and "project" not in got
    assert got.get("api_key") != "sk-server" or "X-OpenAI-Base-Url" not in headers
    assert {k: got[k] for k in kept} == kept and got["timeout"] == "30"


@pytest.mark.parametrize(
    ("document", "routes"),
    [
        (openapi.document, [("/actions/create_chat_completion/run", "post"),
                            ("/actions/create_chat_completion/dry-run", "post"),
                            ("/actions/create_chat_completion/runs", "post"),
                            ("/runs/{run_id}", "get")]),
        (swagger.document, [("/actions/create_chat_completion/run", "post"),
                            ("/actions/create_chat_completion/runs", "post"),
                            ("/runs/{run_id}", "get")]),
    ],
    ids=["openapi", "swagger"],
)  # fmt: skip
def test_the_documents_declare_the_warnings_header(document, routes):
    doc = document()
    for path, method in routes:
        headers = doc["paths"][path][method]["responses"]["200"].get("headers") or {}
        assert "X-Connector-Warnings" in headers, (path, method)


def test_a_callback_url_is_refused_where_no_callback_is_made(client):
    r = client.simulate_post(
        "/actions/create_chat_completion/runs",
        json={"model": "m", "messages": "Hi"},
        headers={"X-Callback-Url": "https://hooks.example/abc"},
    )
    assert r.status_code == 422
    error = r.json["error"]
    assert (
        error["fields"][0]["name"] == "X-Callback-Url" and "nothing was started" in error["message"]
    )
    assert client.app.scheduler.store.has_queued() is False


# -- whose run it is, how long it is kept -------------------------------------------------------

RUNS = "/actions/create_chat_completion/runs"
KEY_A = {"X-OpenAI-Api-Key": "sk-tenant-a-0123456789"}
KEY_B = {"X-OpenAI-Api-Key": "sk-tenant-b-0123456789"}
BASE_A = {"X-OpenAI-Base-Url": "https://a.example/v1"}
BASE_B = {"X-OpenAI-Base-Url": "https://b.example/v1"}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tenants(tmp_path, monkeypatch):
    """An app with two tokens whose runs echo the form at once (or fail, for "fail" messages)."""

    def run(action, form, conn, on_attempts=None):
        if form["messages"].startswith("fail"):
            raise RequestRejected("Out of credits.", type="quota_exceeded", status=402)
        return {"echo": form["messages"]}

    monkeypatch.setattr(runner, "run", run)
    monkeypatch.setattr(runner, "prepare", lambda *a, **k: {})
    settings = server.Settings(
        tokens=("tok-a-123456", "tok-b-123456"),
        runs_db=str(tmp_path / "runs.sqlite3"),
        allowed_hosts=("a.example", "b.example"),
        run_retention=3600,
    )
    return falcon.testing.TestClient(server.create_app(settings))


def finished(client, run_id: str, headers: dict) -> falcon.testing.Result:
    for _ in range(500):
        r = client.simulate_get(f"/runs/{run_id}", headers=headers)
        if r.status_code != 202:
            return r
        time.sleep(0.01)
    raise AssertionError(f"run {run_id} did not finish")


def unknown(client, run_id: str, headers: dict) -> tuple[int, dict]:
    """The answer to a run id that never existed, with ``run_id`` in its place."""
    r = client.simulate_get("/runs/" + "0" * 32, headers=headers)
    return r.status_code, json.loads(r.text.replace("0" * 32, run_id))


# (the run's starter's headers, the reader's headers, whether the reader gets the run)
READERS = [
    (bearer("tok-a-123456"), bearer("tok-a-123456"), True),
    (bearer("tok-a-123456"), bearer("tok-b-123456"), False),  # another token
    ({**bearer("tok-a-123456"), **KEY_A}, {**bearer("tok-a-123456"), **KEY_A}, True),
    ({**bearer("tok-a-123456"), **KEY_A}, {**bearer("tok-a-123456"), **KEY_B}, False),
    ({**bearer("tok-a-123456"), **KEY_A}, bearer("tok-a-123456"), False),  # the key left out
    ({**bearer("tok-a-123456"), **KEY_A}, {**bearer("tok-b-123456"), **KEY_A}, False),
    ({**bearer("tok-a-123456"), **KEY_A, **BASE_A}, {**bearer("tok-a-123456"), **KEY_A}, True),
]


@pytest.mark.parametrize(("starter", "reader", "gets"), READERS)
def test_a_run_is_read_only_by_its_token_and_tenant_key(tenants, starter, reader, gets):
    started = tenants.simulate_post(RUNS, json={"messages": "mine"}, headers=starter)
    assert started.status_code == 202, started.text
    run_id = started.json["id"]
    assert finished(tenants, run_id, starter).json == {"echo": "mine"}
    r = tenants.simulate_get(f"/runs/{run_id}", headers=reader)
    if gets:
        assert (r.status_code, r.json) == (200, {"echo": "mine"})
    else:  # exactly what an id that never existed gets
        assert (r.status_code, r.json) == unknown(tenants, run_id, reader)
        assert r.status_code == 404


def test_a_waiting_run_is_hidden_from_another_token_too(tenants, monkeypatch):
    gate = threading.Event()
    monkeypatch.setattr(runner, "run", lambda *a, **k: gate.wait(10) and {"echo": "late"})
    run_id = tenants.simulate_post(RUNS, json={}, headers=bearer("tok-a-123456")).json["id"]
    other = tenants.simulate_get(f"/runs/{run_id}", headers=bearer("tok-b-123456"))
    own = tenants.simulate_get(f"/runs/{run_id}", headers=bearer("tok-a-123456"))
    gate.set()
    assert (other.status_code, own.status_code) == (404, 202)


def test_run_ids_have_128_random_bits(tenants):
    ids = [
        tenants.simulate_post(RUNS, json={}, headers=bearer("tok-a-123456")).json["id"]
        for _ in range(200)
    ]
    assert all(idempotency.RUN_ID.match(i) for i in ids) and len(set(ids)) == 200
    # Every hex digit varies (a uuid4's version and variant digits would not).
    assert min(len({i[n] for i in ids}) for n in range(32)) >= 8


# (the second POST's headers, the first's being token A, KEY_A and BASE_A; the same run?)
SCOPES = [
    ({**bearer("tok-a-123456"), **KEY_A, **BASE_A}, True),
    ({**bearer("tok-a-123456"), **KEY_B, **BASE_A}, False),  # another tenant key
    ({**bearer("tok-a-123456"), **KEY_A, **BASE_B}, False),  # output from another host
    ({**bearer("tok-a-123456"), **KEY_A}, False),  # the server's own host
    ({**bearer("tok-b-123456"), **KEY_A, **BASE_A}, False),  # another token
]


@pytest.mark.parametrize(("second", "same"), SCOPES)
def test_the_idempotency_scope_is_the_token_tenant_key_and_base_url(
    tenants, monkeypatch, second, same
):
    gate = threading.Event()
    monkeypatch.setattr(runner, "run", lambda *a, **k: gate.wait(10) and {"echo": "m"})
    key = {"Idempotency-Key": "k-1"}
    first = tenants.simulate_post(
        RUNS, json={"messages": "m"}, headers={**bearer("tok-a-123456"), **KEY_A, **BASE_A, **key}
    )
    time.sleep(0.2)  # it is running
    again = tenants.simulate_post(RUNS, json={"messages": "m"}, headers={**second, **key})
    gate.set()
    assert again.status_code == 202, again.text
    assert (again.json["id"] == first.json["id"]) is same
    assert again.json["state"] == ("running" if same else "queued")  # the true state


# (the run's outcome; the status and document a GET and a retried POST both answer)
OUTCOMES = [("ok", 200, {"echo": "ok"}), ("fail", 402, "quota_exceeded")]


@pytest.mark.parametrize(("message", "status", "doc"), OUTCOMES)
def test_a_retried_post_of_a_finished_run_answers_its_result(tenants, message, status, doc):
    headers = {**bearer("tok-a-123456"), "Idempotency-Key": f"done-{message}"}
    first = tenants.simulate_post(RUNS, json={"messages": message}, headers=headers)
    got = finished(tenants, first.json["id"], headers)
    again = tenants.simulate_post(RUNS, json={"messages": message}, headers=headers)
    assert (again.status_code, again.json) == (got.status_code, got.json)
    assert again.status_code == status and "Location" not in again.headers
    assert again.json == doc or again.json["error"]["type"] == doc


def test_a_finished_run_past_its_retention_is_gone_on_read(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "run", lambda *a, **k: {"echo": "x"})
    monkeypatch.setattr(runner, "prepare", lambda *a, **k: {})
    settings = server.Settings(
        tokens=("tok-a-123456",), runs_db=str(tmp_path / "runs.sqlite3"), run_retention=0.5
    )
    client = falcon.testing.TestClient(server.create_app(settings), headers=bearer("tok-a-123456"))
    client.app.scheduler.store.purge = lambda: 0  # no purge: the read alone must say it
    key = {"Idempotency-Key": "kept-a-while"}
    run_id = client.simulate_post(RUNS, json={}, headers=key).json["id"]
    assert finished(client, run_id, {}).status_code == 200
    time.sleep(0.6)
    r = client.simulate_get(f"/runs/{run_id}")
    assert (r.status_code, r.json) == unknown(client, run_id, {})
    again = client.simulate_post(RUNS, json={}, headers=key)  # the key is free again
    assert again.status_code == 202 and again.json["id"] != run_id


def test_old_runs_are_purged_from_start_up_without_any_call(tmp_path):
    import sqlite3

    path = tmp_path / "runs.sqlite3"
    before = RunStore(path)
    old, _ = before.create("list_models")
    before.finish(old, 200, {})
    before._db().execute("UPDATE runs SET updated = updated - 7200")
    settings = server.Settings(tokens=("t-123456",), runs_db=str(path), run_retention=3600)
    server.create_app(settings)  # a (re)start; no call at all
    deadline = time.monotonic() + 5
    while sqlite3.connect(path).execute("SELECT count(*) FROM runs").fetchone()[0]:
        assert time.monotonic() < deadline, "the old run was not purged"
        time.sleep(0.05)


@pytest.mark.parametrize("older", [False, True])
def test_the_run_file_is_the_servers_alone(tmp_path, older):
    import os
    import stat

    path = tmp_path / "runs.sqlite3"
    mask = os.umask(0)  # the most permissive umask
    try:
        if older:  # a file an older version left readable by all
            path.touch(0o666)
        store = RunStore(path)
        store.finish(store.create("list_models")[0], 200, {})
    finally:
        os.umask(mask)
    for name in ("runs.sqlite3", "runs.sqlite3-wal", "runs.sqlite3-shm"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
