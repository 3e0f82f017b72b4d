"""The action server, started for real (gunicorn on loopback) against the fault server."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from actionserver import TOKEN, ActionServer
from conftest import CANARY
from openapi_spec_validator import validate

from connector.errors import ERROR_TYPES

pytestmark = pytest.mark.server

ACTION = "/actions/create_chat_completion"
FORM = {"model": "gpt-4o-mini", "messages": "Hello from the server test"}


def server_env(fault_server, tmp: Path, **extra: str) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": CANARY,
        "OPENAI_BASE_URL": fault_server.scenario("ok").base_url,
        "OPENAI_MAX_RETRIES": "0",
        "OPENAI_TIMEOUT": "2",
        "CONNECTOR_ALLOWED_HOSTS": "127.0.0.1",
        "CONNECTOR_SERVER_MAX_BODY_BYTES": "65536",
        "CONNECTOR_RUNS_DB": str(tmp / "runs.sqlite3"),
        "CONNECTOR_RUN_HEARTBEAT": "0.2",
        "CONNECTOR_TRUSTED_PROXIES": "127.0.0.1",  # the tests' client plays the proxy too
        **extra,
    }


@pytest.fixture(scope="module")
def srv(fault_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    with ActionServer(env=server_env(fault_server, tmp)) as server:
        yield server
        assert CANARY not in server.logs() and TOKEN not in server.logs()


def upstream(fault_server, name: str, **params) -> dict[str, str]:
    """Headers pointing one call at a fault scenario, with a tenant key."""
    base = fault_server.scenario(name, **params).base_url
    return {"X-OpenAI-Base-Url": base, "X-OpenAI-Api-Key": CANARY}


def no_secrets(response) -> None:
    assert CANARY not in response.text and TOKEN not in response.text
    assert CANARY not in str(response.headers) and TOKEN not in str(response.headers)


# -- every route ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "check"),
    [
        (
            "GET",
            "/healthz",
            None,
            lambda d: d == {"status": "ok", "parts": {"runs": "ok", "connection": "ok"}},
        ),
        (
            "GET",
            "/actions",
            None,
            lambda d: [a["id"] for a in d] == ["create_chat_completion", "list_models"],
        ),
        ("GET", ACTION, None, lambda d: d["basic"][0]["name"] == "messages"),
        (
            "GET",
            f"{ACTION}/options/model",
            None,
            lambda d: {"value": "gpt-4o-mini", "label": "gpt-4o-mini"} in d,
        ),
        (
            "POST",
            f"{ACTION}/run",
            FORM,
            lambda d: d["choices"][0]["message"]["content"] == "echo: Hello from the server test",
        ),
        (
            "POST",
            f"{ACTION}/dry-run",
            FORM,
            lambda d: (
                d["body"]["messages"][0]["content"] == FORM["messages"]
                and d["headers"]["Authorization"] == "Bearer ***"
            ),
        ),
        ("POST", "/actions/list_models/run", None, lambda d: d["object"] == "list" and d["data"]),
        ("GET", "/openapi.json", None, lambda d: d["openapi"] == "3.1.0" and d["servers"]),
        (
            "GET",
            "/swagger.json",
            None,
            lambda d: d["swagger"] == "2.0" and d["host"].startswith("127.0.0.1:"),
        ),
    ],
)
def test_every_route_answers(srv, method, path, body, check):
    r = srv.call(method, path, body)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert check(r.json())
    assert r.headers["X-Request-Id"]
    no_secrets(r)


def test_a_tenant_key_and_base_url_are_used_for_one_call(srv, fault_server):
    headers = upstream(fault_server, "ok")
    r = srv.call("POST", f"{ACTION}/run", FORM, headers=headers)
    assert r.status_code == 200
    sent = fault_server.requests(headers["X-OpenAI-Base-Url"].split("/")[3])
    assert len(sent) == 1 and sent[0].header("Authorization") == f"Bearer {CANARY}"


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"X-OpenAI-Base-Url": "https://evil.example.com/v1"}, "Allowed Hosts"),
        ({"X-OpenAI-Base-Url": "http://169.254.169.254/v1"}, "Allowed Hosts"),
    ],
)
def test_a_per_request_base_url_obeys_allowed_hosts(srv, headers, fragment):
    r = srv.call("POST", f"{ACTION}/run", FORM, headers={**headers, "X-OpenAI-Api-Key": CANARY})
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_input"
    assert fragment in r.text
    no_secrets(r)


def test_metrics_count_runs_by_outcome_and_attempts(srv, fault_server):
    srv.call("POST", f"{ACTION}/run", {**FORM, "temperature": "hot"})
    # The server's own connection makes no retries (server_env): one attempt, then ok.
    assert srv.call("POST", f"{ACTION}/run", FORM, headers=upstream(fault_server, "ok")).ok
    r = srv.call("GET", "/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    assert 'connector_runs_total{action="create_chat_completion",outcome="invalid_input"}' in text
    assert 'connector_runs_total{action="create_chat_completion",outcome="ok"}' in text
    assert "connector_run_seconds_bucket" in text
    assert "connector_upstream_attempts_total" in text


def test_one_log_line_per_run_without_key_or_content(srv):
    r = srv.call("POST", f"{ACTION}/run", FORM, headers={"X-Request-Id": "log-line-check-1"})
    assert r.headers["X-Request-Id"] == "log-line-check-1"
    deadline = time.monotonic() + 10  # the worker writes its lines in batches
    while time.monotonic() < deadline and not any("log-line-check-1" in x for x in srv.lines):
        time.sleep(0.05)
    time.sleep(0.3)  # a second line, if there were one, would be in the same or next batch
    lines = [json.loads(line) for line in srv.lines if "log-line-check-1" in line]
    assert len(lines) == 1
    assert lines[0] == {
        **lines[0],
        "event": "run",
        "action": "create_chat_completion",
        "outcome": "ok",
        "status": 200,
        "attempts": 1,
    }
    assert isinstance(lines[0]["duration_ms"], float)
    assert FORM["messages"] not in srv.logs()


# -- every error status -----------------------------------------------------------------------

# (error type, HTTP status, scenario and its parameters, or None for the server's own refusal)
UPSTREAM_ERRORS = [
    ("bad_request", 400, "error", {"status": 400}),
    ("authentication", 401, "error", {"status": 401}),
    ("permission", 403, "error", {"status": 403}),
    ("not_found", 404, "error", {"status": 404}),
    ("quota_exceeded", 402, "quota", {}),
    ("rate_limited", 429, "429-then-ok", {"fails": 5, "retry_after": 300}),
    ("server_error", 502, "503-always", {}),
    ("timeout", 504, "slow", {"seconds": 4}),
    ("connection", 502, "reset", {}),
    ("invalid_response", 502, "truncated-json", {}),
]


@pytest.mark.parametrize(("kind", "status", "scenario", "params"), UPSTREAM_ERRORS)
def test_each_upstream_error_has_its_status(srv, fault_server, kind, status, scenario, params):
    headers = upstream(fault_server, scenario, **params)
    r = srv.call("POST", f"{ACTION}/run", FORM, headers=headers)
    assert (r.status_code, r.json()["error"]["type"]) == (status, kind), r.text
    assert ERROR_TYPES[kind].http_status == status
    if kind == "rate_limited":
        assert r.headers["Retry-After"] == "300"
    no_secrets(r)


# (error type, HTTP status, method, path, request keywords)
SERVER_ERRORS = [
    ("invalid_input", 422, "POST", f"{ACTION}/run", {"json": {**FORM, "temperature": "hot"}}),
    ("unauthorized", 401, "GET", "/actions", {"token": None}),
    ("unauthorized", 401, "GET", "/actions", {"token": "wrong-token"}),
    ("unauthorized", 401, "GET", "/metrics", {"headers": {"Authorization": f"Basic {TOKEN}"}}),
    ("unknown_route", 404, "POST", "/actions/nope/run", {"json": FORM}),
    ("unknown_route", 404, "GET", "/actions/nope", {}),
    ("unknown_route", 404, "GET", f"{ACTION}/options/temperature", {}),
    ("unknown_route", 404, "GET", "/runs/" + "0" * 32, {}),
    ("unknown_route", 404, "GET", "/runs/../etc/passwd", {}),
    ("unknown_route", 404, "GET", "/nothing-here", {}),
    ("method_not_allowed", 405, "DELETE", "/actions", {}),
    ("method_not_allowed", 405, "GET", f"{ACTION}/run", {}),
    (
        "bad_call",
        400,
        "POST",
        f"{ACTION}/run",
        {"data": "{not json", "headers": {"Content-Type": "application/json"}},
    ),
    ("bad_call", 400, "POST", f"{ACTION}/run", {"json": ["a", "list"]}),
    (
        "bad_call",
        400,
        "POST",
        f"{ACTION}/run",
        {"data": "[" * 100 + "]" * 100, "headers": {"Content-Type": "application/json"}},
    ),
    (
        "bad_call",
        400,
        "POST",
        f"{ACTION}/run",
        {"data": '{"a":' * 12000, "headers": {"Content-Type": "application/json"}},
    ),
    ("too_large", 413, "POST", f"{ACTION}/run", {"json": {**FORM, "messages": "x" * 70000}}),
    (
        "unsupported_media_type",
        415,
        "POST",
        f"{ACTION}/run",
        {"data": "model=x", "headers": {"Content-Type": "text/plain"}},
    ),
]


@pytest.mark.parametrize(("kind", "status", "method", "path", "kw"), SERVER_ERRORS)
def test_each_refusal_has_its_status(srv, kind, status, method, path, kw):
    r = srv.call(method, path, **kw)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["type"] == kind and error["message"]
    assert ERROR_TYPES[kind].http_status == status
    if kind == "unauthorized":
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    no_secrets(r)


def test_every_error_type_is_tested():
    tested = {c[0] for c in UPSTREAM_ERRORS} | {c[0] for c in SERVER_ERRORS}
    # tests below, and test_server_app.py
    elsewhere = {
        "overloaded",
        "interrupted",
        "internal",
        "local_server_crashed",
        "local_server_killed",
        "store_unavailable",  # test_scaleout.py: PostgreSQL down
        "request_timeout",  # test_fanout.py: a stalled client
        "malformed_request",  # test_fanout.py: refused by gunicorn before the app
    }
    assert tested | elsewhere == set(ERROR_TYPES)


def test_healthz_needs_no_token(srv):
    assert srv.call("GET", "/healthz", token=None).status_code == 200


# -- async runs -------------------------------------------------------------------------------


def poll(
    srv, location: str, seconds: float = 20, headers: dict | None = None
) -> tuple[list[int], object]:
    """Poll a run, by the path of its Location (``srv`` may be a server started later).

    ``headers``: the tenant key the run was started with (a run is read only with it).
    """
    codes = []
    path = urlsplit(location).path
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r = srv.call("GET", path, headers=headers)
        codes.append(r.status_code)
        if r.status_code != 202:
            return codes, r
        assert r.headers["Retry-After"] and r.headers["Location"] == srv.url + path
        time.sleep(0.1)
    raise AssertionError(f"the run did not finish: {codes}")


def wait_running(srv, location: str, seconds: float = 10, headers: dict | None = None) -> None:
    """Wait until a queued run has a slot (it is claimed a moment after its 202)."""
    path = urlsplit(location).path
    deadline = time.monotonic() + seconds
    while srv.call("GET", path, headers=headers).json().get("state") == "queued":
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)


def test_async_run_end_to_end(srv, fault_server):
    slow = upstream(fault_server, "slow", seconds=1)
    r = srv.call("POST", f"{ACTION}/runs", FORM, headers=slow)
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    assert location == srv.url + f"/runs/{r.json()['id']}" == r.json()["location"]
    assert int(r.headers["Retry-After"]) >= 1
    codes, final = poll(srv, location, headers=slow)
    assert codes[0] == 202 and final.status_code == 200
    assert final.json()["choices"][0]["message"]["content"] == f"echo: {FORM['messages']}"
    again = srv.call("GET", urlsplit(location).path, headers=slow)
    assert again.json() == final.json()  # readable again


@pytest.mark.parametrize(
    ("headers", "origin"),
    [
        ({}, None),  # the server's own address
        (
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "flows.example.com"},
            "https://flows.example.com",
        ),
        ({"Forwarded": 'proto=https;host="proxy.example:8443"'}, "https://proxy.example:8443"),
    ],
)
def test_the_location_is_absolute_as_the_client_reached_the_server(
    srv, fault_server, headers, origin
):
    slow = upstream(fault_server, "slow", seconds=0.5)
    r = srv.call("POST", f"{ACTION}/runs", FORM, headers={**slow, **headers})
    run = f"/runs/{r.json()['id']}"
    assert r.headers["Location"] == (origin or srv.url) + run == r.json()["location"]
    polled = srv.call("GET", run, headers={**slow, **headers})
    assert polled.status_code != 202 or polled.headers["Location"] == (origin or srv.url) + run
    poll(srv, run, headers=slow)


def test_forwarded_headers_from_an_untrusted_client_do_not_move_the_location(
    fault_server, tmp_path
):
    env = {**server_env(fault_server, tmp_path), "CONNECTOR_TRUSTED_PROXIES": ""}
    with ActionServer(env=env) as server:
        forged = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
        r = server.call("POST", f"{ACTION}/runs", FORM, headers=forged)
        assert r.headers["Location"].startswith(server.url + "/runs/"), r.headers["Location"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        poll(server, r.headers["Location"])


def test_async_run_failure_reads_as_its_error(srv, fault_server):
    quota = upstream(fault_server, "quota")
    r = srv.call("POST", f"{ACTION}/runs", FORM, headers=quota)
    _, final = poll(srv, r.headers["Location"], headers=quota)
    assert final.status_code == 402 and final.json()["error"]["type"] == "quota_exceeded"
    no_secrets(final)


def test_async_run_with_a_bad_form_is_refused_at_once(srv):
    r = srv.call("POST", f"{ACTION}/runs", {**FORM, "temperature": "hot"})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["name"] == "temperature"
    assert "Location" not in r.headers


# -- load, restart, drain ---------------------------------------------------------------------


def test_a_full_worker_answers_503_with_retry_after(fault_server, tmp_path):
    env = server_env(fault_server, tmp_path)
    with ActionServer("--concurrency", "1", env=env) as server:
        slow = upstream(fault_server, "slow", seconds=1.5)
        started = server.call("POST", f"{ACTION}/runs", FORM, headers=slow)
        assert started.status_code == 202
        wait_running(server, started.headers["Location"], headers=slow)
        busy = server.call("POST", f"{ACTION}/run", FORM)
        assert busy.status_code == 503, busy.text
        assert busy.json()["error"]["type"] == "overloaded" and busy.json()["error"]["retryable"]
        assert int(busy.headers["Retry-After"]) >= 1
        assert server.call("GET", "/healthz").status_code == 200  # not a run: never refused
        poll(server, started.headers["Location"], headers=slow)
        assert server.call("POST", f"{ACTION}/run", FORM).status_code == 200
        assert "connector_overloaded_total 1.0" in server.call("GET", "/metrics").text


def test_a_run_cut_short_by_a_restart_reads_as_an_error(fault_server, tmp_path):
    env = server_env(fault_server, tmp_path)
    first = ActionServer(env=env).start()
    slow = upstream(fault_server, "slow", seconds=20)
    try:
        r = first.call("POST", f"{ACTION}/runs", FORM, headers=slow)
        location = r.headers["Location"]
        wait_running(first, location, headers=slow)
    finally:
        first.kill()  # a crash: the worker gets no chance to record anything
    with ActionServer(env=env) as second:
        codes, final = poll(second, location, seconds=10, headers=slow)
        assert final.status_code == 503, codes
        error = final.json()["error"]
        assert error["type"] == "interrupted" and error["retryable"]


def test_sigterm_drains_in_flight_runs(fault_server, tmp_path):
    env = server_env(fault_server, tmp_path)
    server = ActionServer(env=env).start()
    slow = upstream(fault_server, "slow", seconds=1.5)
    r = server.call("POST", f"{ACTION}/runs", FORM, headers=slow)
    location = r.headers["Location"]
    wait_running(server, location, headers=slow)
    assert server.stop(signal.SIGTERM) == 0
    with ActionServer(env=env) as again:
        _, final = poll(again, location, seconds=5, headers=slow)
        assert final.status_code == 200, final.text  # finished before the worker exited


def test_sigterm_lets_an_in_flight_sync_run_finish(fault_server, tmp_path):
    server = ActionServer(env=server_env(fault_server, tmp_path)).start()
    slow = upstream(fault_server, "slow", seconds=1.5)
    answers = []
    caller = threading.Thread(
        target=lambda: answers.append(server.call("POST", f"{ACTION}/run", FORM, headers=slow))
    )
    caller.start()
    time.sleep(0.5)  # the run is in flight
    server.proc.send_signal(signal.SIGTERM)
    caller.join(10)
    assert answers and answers[0].status_code == 200, answers
    assert server.stop() == 0


def test_sigterm_marks_runs_past_the_drain_time_interrupted(fault_server, tmp_path):
    env = server_env(fault_server, tmp_path, CONNECTOR_SERVER_DRAIN_SECONDS="0.5")
    server = ActionServer(env=env).start()
    slow = upstream(fault_server, "slow", seconds=20)
    location = server.call("POST", f"{ACTION}/runs", FORM, headers=slow).headers["Location"]
    wait_running(server, location, headers=slow)
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5  # did not wait for the 20 s run
    assert '"interrupted_runs": 1' in server.logs()
    with ActionServer(env=env) as again:
        _, final = poll(again, location, seconds=5, headers=slow)
        assert final.status_code == 503 and final.json()["error"]["type"] == "interrupted"


# -- start-up ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "token", "fragment"),
    [
        ((), None, "No server token"),
        (("--no-auth", "--host", "0.0.0.0"), None, "only allowed on loopback"),
    ],
)
def test_the_server_refuses_to_start_without_a_token(args, token, fragment):
    server = ActionServer(*args, token=token)
    with pytest.raises(RuntimeError, match=fragment):
        server.start(timeout=30)


def test_no_auth_on_loopback_and_a_token_file(fault_server, tmp_path):
    with ActionServer("--no-auth", env=server_env(fault_server, tmp_path), token=None) as server:
        assert server.call("GET", "/actions", token=None).status_code == 200
    tokens = tmp_path / "tokens"
    tokens.write_text("# the server's tokens\nfile-token-123456\n")
    with ActionServer(
        "--token-file", str(tokens), env=server_env(fault_server, tmp_path), token=None
    ) as server:
        assert server.call("GET", "/actions", token="file-token-123456").status_code == 200
        assert server.call("GET", "/actions", token="other").status_code == 401


# -- the documents ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/openapi.json", "/swagger.json"])
def test_served_documents_are_valid(srv, path):
    validate(srv.call("GET", path).json())


def test_several_workers_share_runs_and_metrics(fault_server, tmp_path):
    with ActionServer("--workers", "2", env=server_env(fault_server, tmp_path)) as server:
        locations = [
            server.call("POST", f"{ACTION}/runs", FORM).headers["Location"] for _ in range(6)
        ]
        for location in locations:
            assert poll(server, location)[1].status_code == 200
        text = server.call("GET", "/metrics").text
        line = next(
            x
            for x in text.splitlines()
            if x.startswith('connector_runs_total{action="create_chat_completion",outcome="ok"}')
        )
        assert float(line.split()[-1]) == 6.0


@pytest.mark.parametrize(
    ("second", "headers", "same", "status"),
    [
        ({}, {}, True, 202),  # a host retrying the POST: the same run, started once
        ({"messages": "another text"}, {}, False, 422),  # the same key, another form
        ({}, {"Authorization": "Bearer other-token"}, False, 401),  # not a token of this server
        ({}, {"Idempotency-Key": "no spaces allowed"}, False, 422),
    ],
)
def test_a_retried_async_post_with_the_same_idempotency_key_starts_nothing_new(
    srv, fault_server, second, headers, same, status
):
    slow = fault_server.scenario("slow", seconds=0.5)
    tenant = {"X-OpenAI-Base-Url": slow.base_url, "X-OpenAI-Api-Key": CANARY}
    key = {"Idempotency-Key": f"retry-{uuid.uuid4().hex}"}
    first = srv.call("POST", f"{ACTION}/runs", FORM, headers={**tenant, **key})
    assert first.status_code == 202, first.text
    again = srv.call(
        "POST", f"{ACTION}/runs", {**FORM, **second}, headers={**tenant, **key, **headers}
    )
    assert again.status_code == status, again.text
    if same:  # the same run, in the state it is in now (a slow run: queued or running)
        assert again.headers["Location"] == first.headers["Location"]
        assert {**again.json(), "state": "queued"} == first.json()
    poll(srv, first.headers["Location"], headers=tenant)
    assert slow.count == 1  # one upstream call, whatever the second POST was


# -- tenants kept apart -------------------------------------------------------------------------

TOKEN_B = "srv-token-b-7c3e9a1f5d2b8e46"  # a second caller of the same server


def test_tenants_are_kept_apart_and_the_run_file_is_private(fault_server, tmp_path):
    env = server_env(fault_server, tmp_path, CONNECTOR_SERVER_TOKENS=f"{TOKEN},{TOKEN_B}")
    mask = os.umask(0)  # the server starts under the most permissive umask
    try:
        server = ActionServer(env=env).start()
    finally:
        os.umask(mask)
    try:
        mine = {**upstream(fault_server, "ok"), "Idempotency-Key": f"t-{uuid.uuid4().hex}"}
        first = server.call("POST", f"{ACTION}/runs", FORM, headers=mine)
        assert first.status_code == 202, first.text
        path = f"/runs/{first.json()['id']}"
        _, done = poll(server, path, headers=mine)
        assert done.status_code == 200
        never = server.call("GET", "/runs/" + "0" * 32, token=TOKEN_B).text
        unknown = json.loads(never.replace("0" * 32, first.json()["id"]))
        for token, headers in [
            (TOKEN_B, mine),  # another token, the same tenant key
            (TOKEN, {}),  # the tenant key left out
            (TOKEN, {"X-OpenAI-Api-Key": "sk-another-tenant-0123456789"}),
        ]:
            r = server.call("GET", path, token=token, headers=headers)
            assert (r.status_code, r.json()) == (404, unknown), (token == TOKEN, headers)
        # The same POST again, the run done: what its GET answers, not a 202.
        again = server.call("POST", f"{ACTION}/runs", FORM, headers=mine)
        assert (again.status_code, again.json()) == (200, done.json())
        # The same key with another tenant key or Base URL: a new run, its own output.
        other_key = {**mine, "X-OpenAI-Api-Key": "sk-another-tenant-0123456789"}
        other_host = {**mine, **upstream(fault_server, "ok")}
        for headers in (other_key, other_host):
            r = server.call("POST", f"{ACTION}/runs", FORM, headers=headers)
            assert r.status_code == 202 and r.json()["id"] != first.json()["id"], r.text
            poll(server, r.headers["Location"], headers=headers)
        for name in ("runs.sqlite3", "runs.sqlite3-wal", "runs.sqlite3-shm"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    finally:
        server.stop()


def test_retention_holds_after_a_restart_with_only_sync_calls(fault_server, tmp_path):
    with ActionServer(env=server_env(fault_server, tmp_path)) as first:  # kept a day
        r = first.call("POST", f"{ACTION}/runs", FORM)
        assert poll(first, r.headers["Location"])[1].status_code == 200
    time.sleep(1.2)
    env = server_env(fault_server, tmp_path, CONNECTOR_RUN_RETENTION="1")
    with ActionServer(env=env) as second:
        assert second.call("POST", f"{ACTION}/run", FORM).status_code == 200  # sync only
        gone = second.call("GET", urlsplit(r.headers["Location"]).path)
        assert gone.status_code == 404 and gone.json()["error"]["type"] == "unknown_route"
        deadline = time.monotonic() + 5
        rows = "SELECT count(*) FROM runs"
        while sqlite3.connect(tmp_path / "runs.sqlite3").execute(rows).fetchone()[0]:
            assert time.monotonic() < deadline, "the old run was never purged"
            time.sleep(0.1)
