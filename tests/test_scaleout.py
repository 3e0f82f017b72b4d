"""Scale-out mode: two gunicorn servers and two workers on a real PostgreSQL (docs/scale-out.md).

One deployment per module (starting four processes costs seconds); a case that kills a process
starts a new one before it ends. Failure detection is tuned fast through settings.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import pytest
import requests
from actionserver import TOKEN
from conftest import CANARY
from scaleout import ACTION, Deployment, content, poll, start_run, start_run_retrying

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def dep(pg_cluster, fault_server):
    upstream = fault_server.scenario("sleepy")
    d = Deployment(pg_cluster, pg_cluster.database(), upstream.base_url, CANARY).start()
    d.upstream = upstream
    yield d
    d.stop()


def wait_for(predicate, timeout: float = 30, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out waiting")


def test_started_on_one_server_polled_on_the_other(dep):
    a, b = dep.servers
    r = start_run(a, "sleep=1 one server, then the other")
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    assert r.headers["Location"] == f"{a.url}/runs/{run_id}" == r.json()["location"]
    assert r.json()["state"] == "queued"
    waiting = b.call("GET", f"/runs/{run_id}")
    assert waiting.status_code == 202
    assert waiting.json()["state"] in ("queued", "running")
    # Both 202s are what the served OpenAPI document says they are.
    schema = b.call("GET", "/openapi.json").json()["components"]["schemas"]["RunAccepted"]
    for reply in (r, waiting):
        jsonschema.validate(reply.json(), schema)
    assert waiting.headers["Retry-After"] == "2"
    assert waiting.headers["Location"] == f"{b.url}/runs/{run_id}"
    done = poll(b, run_id)
    assert done.status_code == 200, done.text
    assert "one server, then the other" in content(done)


def test_fifty_runs_over_both_servers_each_with_its_own_output(dep):
    def one(i: int) -> tuple[int, str]:
        r = start_run(dep.servers[i % 2], f"run number {i} of fifty")
        assert r.status_code == 202, r.text
        return i, r.json()["id"]

    with ThreadPoolExecutor(10) as pool:
        started = list(pool.map(one, range(50)))
    for i, run_id in started:
        done = poll(dep.servers[(i + 1) % 2], run_id)
        assert done.status_code == 200, done.text
        assert f"run number {i} of fifty" in content(done)
    for w in dep.workers:  # both workers took a share
        assert any(rid for _, rid in started if w.took(rid)), w.logs()[-2000:]


def test_a_thousand_queued_one_second_runs_on_two_workers_finish_in_seconds(
    pg_cluster, fault_server
):
    upstream = fault_server.scenario("slow", seconds=1).base_url
    fan = Deployment(
        pg_cluster,
        pg_cluster.database(),
        upstream,
        CANARY,
        # The servers check each form's Base URL: a loopback one needs no DNS look-up.
        server={"OPENAI_BASE_URL": upstream},
        CONNECTOR_WORKER_CONCURRENCY="500",  # each: a thousand in flight on the two
        OPENAI_MAX_RETRIES="2",  # a kept-alive connection the stub closed is tried again
    ).start()
    local = threading.local()
    retried = []

    def call(method: str, url: str, **kw) -> requests.Response:
        """One call on this thread's session; again (the same call) if the connection broke."""
        if not hasattr(local, "session"):
            local.session = requests.Session()
        headers = {"Authorization": f"Bearer {TOKEN}", **kw.pop("headers", {})}
        for _ in range(3):
            try:
                return local.session.request(method, url, headers=headers, timeout=60, **kw)
            except requests.ConnectionError:
                retried.append(url)
        return local.session.request(method, url, headers=headers, timeout=60, **kw)

    def start(i: int) -> str:
        form = {"model": "gpt-4o-mini", "messages": f"fan-out {i}"}
        key = {"Idempotency-Key": f"fan-out-{i}"}  # a POST sent again is the same run
        r = call("POST", f"{fan.servers[i % 2].url}{ACTION}/runs", json=form, headers=key)
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def finish(run_id: str) -> requests.Response:
        while (r := call("GET", f"{fan.servers[0].url}/runs/{run_id}")).status_code == 202:
            time.sleep(0.5)
        return r

    try:
        began = time.monotonic()
        with ThreadPoolExecutor(50) as pool:
            ids = list(pool.map(start, range(1000)))
            accepted = time.monotonic() - began
            done = list(pool.map(finish, ids))
        took = time.monotonic() - began
        print(f"1000 runs of 1 s: accepted in {accepted:.1f} s, done in {took:.1f} s", retried)
        assert [r.status_code for r in done].count(200) == 1000, done[0].text
        assert all(f"fan-out {i}" in content(r) for i, r in enumerate(done))
        assert took < 60, took  # seconds, not the 1000 / 16 s of 8 runs a worker
    finally:
        fan.stop()


def _running_on(dep, run_id: str):
    """Return the index of the worker that started ``run_id`` (its log says so)."""
    return (
        wait_for(lambda: next((i + 1 for i, w in enumerate(dep.workers) if w.took(run_id)), 0)) - 1
    )


def test_sigkill_of_a_worker_mid_call_hands_the_run_to_the_other(dep):
    a, b = dep.servers
    run_id = start_run(a, "sleep=1.5 survives a dead worker").json()["id"]
    victim = _running_on(dep, run_id)
    wait_for(
        lambda: any("survives a dead worker" in (r.message or "") for r in dep.upstream.requests)
    )
    dep.workers[victim].kill()
    done = poll(b, run_id, timeout=60)
    assert done.status_code == 200, done.text
    assert "survives a dead worker" in content(done)
    calls = [r for r in dep.upstream.requests if "survives a dead worker" in (r.message or "")]
    assert len(calls) == 2  # the killed worker's call, and the other worker's
    assert dep.workers[1 - victim].took(run_id)
    dep.restart_worker(victim)


def test_sigterm_lets_a_worker_finish_its_run_before_it_exits(dep):
    a, b = dep.servers
    run_id = start_run(a, "sleep=1.5 finished before the exit").json()["id"]
    victim = _running_on(dep, run_id)
    worker = dep.workers[victim]
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(30) == 0
    assert any(run_id in line and '"stored": true' in line for line in worker.lines)
    done = poll(b, run_id)
    assert done.status_code == 200, done.text
    calls = [r for r in dep.upstream.requests if "finished before the exit" in (r.message or "")]
    assert len(calls) == 1  # not handed to the other worker
    dep.restart_worker(victim)


def test_a_run_whose_workers_keep_dying_ends_interrupted(dep):
    a, b = dep.servers
    run_id = start_run(a, "sleep=20 kills every worker").json()["id"]
    for _ in range(2):  # CONNECTOR_RUN_MAX_ATTEMPTS=2 in this deployment
        victim = (
            wait_for(lambda: next((i + 1 for i, w in enumerate(dep.workers) if w.took(run_id)), 0))
            - 1
        )
        dep.restart_worker(victim)
    done = poll(b, run_id, timeout=60)
    assert done.status_code == 503, done.text
    assert done.json()["error"]["type"] == "interrupted"
    assert "cut short 2 times" in done.json()["error"]["message"]


def test_sigkill_of_a_server_right_after_its_202_loses_nothing(dep):
    a, b = dep.servers
    r = start_run(a, "sleep=0.5 outlives its server")
    assert r.status_code == 202
    dep.servers[0].kill()
    done = poll(b, r.json()["id"])
    assert done.status_code == 200, done.text
    assert "outlives its server" in content(done)
    dep.restart_server(0)


def test_postgres_restart_with_a_run_in_flight(dep):
    a, b = dep.servers
    run_id = start_run(a, "sleep=2 through a database restart").json()["id"]
    wait_for(lambda: any("database restart" in (r.message or "") for r in dep.upstream.requests))
    dep.cluster.down("fast")
    try:
        refused = start_run(b, "while the database is down")
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["type"] == "store_unavailable"
        assert int(refused.headers["Retry-After"]) >= 1
        assert a.call("GET", f"/runs/{run_id}").status_code == 503
    finally:
        dep.cluster.up()
    # The servers' pools reconnect with backoff: a client honouring Retry-After gets through.
    done = poll(b, run_id, timeout=60, through_503=True)
    assert done.status_code == 200, done.text
    assert "through a database restart" in content(done)
    # No heartbeat could be written while the database was down: that is not a worker dying,
    # so the run is not taken up again and spends no attempt (Steadiness in worker.py).
    started = [line for line in dep.logs().splitlines() if run_id in line and "run-started" in line]
    assert len(started) == 1, "\n".join(started)
    # The servers' pools and the workers reconnected: new runs go through.
    after = [start_run_retrying(s, f"after the restart {i}") for i, s in enumerate(dep.servers)]
    for r in after:
        assert r.status_code == 202, r.text
        assert poll(a, r.json()["id"], timeout=60, through_503=True).status_code == 200


@pytest.mark.parametrize(
    ("second", "token", "same", "status"),
    [
        ({}, "", True, 202),  # the same key and body, on the other server: the same run
        ({"messages": "another body"}, "", False, 422),  # the same key, another body
        ({"model": "gpt-4o"}, "", False, 422),
        ({}, "other", False, 202),  # another caller's token: its own run
    ],
)
def test_idempotency_key(dep, second, token, same, status):
    from scaleout import ACTION, TOKEN2

    a, b = dep.servers
    key = f"idem-{time.time_ns()}"
    # Slow enough to be running still when posted again (a done run answers its result).
    form = {"model": "gpt-4o-mini", "messages": f"sleep=1 idempotent {key}"}
    first = a.call("POST", f"{ACTION}/runs", form, headers={"Idempotency-Key": key})
    assert first.status_code == 202
    again = b.call(
        "POST",
        f"{ACTION}/runs",
        {**form, **second},
        headers={"Idempotency-Key": key},
        token=TOKEN2 if token else "",
    )
    assert again.status_code == status, again.text
    if status == 422:
        assert again.json()["error"]["fields"][0]["name"] == "Idempotency-Key"
        return
    assert (again.json()["id"] == first.json()["id"]) is same
    if same:  # the same Location, and the one run ran once
        assert again.headers["Location"] == first.headers["Location"].replace(a.url, b.url)
        third = a.call("POST", f"{ACTION}/runs", form, headers={"Idempotency-Key": key})
        assert third.headers["Location"] == first.headers["Location"]
        assert poll(a, first.json()["id"]).status_code == 200
        calls = [r for r in dep.upstream.requests if key in (r.message or "")]
        assert len(calls) == 1


def test_callback_is_signed_retried_and_sent_to_an_allowed_loopback_receiver(dep):
    from scaleout import SECRET, Receiver

    receiver = Receiver(fails=1)  # the first delivery gets a 500: the queue retries it
    try:
        r = start_run(dep.servers[0], "call me back", headers={"X-Callback-Url": receiver.url})
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]
        wait_for(lambda: len(receiver.calls) >= 2, timeout=30)
        time.sleep(0.5)
        assert len(receiver.calls) == 2  # once the receiver took it, no more
        for headers, body, _ in receiver.calls:
            expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers["X-Connector-Signature"], expected)
            assert headers["X-Connector-Run-Id"] == run_id
        doc = json.loads(receiver.calls[-1][1])
        assert (doc["id"], doc["status"], doc["state"]) == (run_id, 200, "done")
        assert doc["output"] == poll(dep.servers[1], run_id).json()
        assert receiver.calls[1][2] - receiver.calls[0][2] >= 1.0  # a backoff, not a loop
    finally:
        receiver.close()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://example.com/hook", "must use https://"),
        ("https://10.1.2.3/hook", "loopback or private address"),
        ("https://[::1]:9/hook", "loopback or private address"),
        ("https://169.254.169.254/latest", "metadata"),
        ("ftp://example.com/hook", "https:// URL"),
        ("https://user:pw@example.com/hook", "user name or password"),
    ],
)
def test_callback_urls_outside_the_policy_are_refused(dep, url, words):
    r = start_run(dep.servers[0], "never queued", headers={"X-Callback-Url": url})
    assert r.status_code == 422, r.text
    assert words in r.json()["error"]["message"]
    assert r.json()["error"]["fields"][0]["name"] == "X-Callback-Url"


@pytest.mark.parametrize("header", ["X-OpenAI-Api-Key", "X-OpenAI-Base-Url"])
def test_a_per_call_connection_is_refused_for_queued_runs(dep, header):
    r = start_run(dep.servers[1], "never queued", headers={header: CANARY})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["fields"][0]["name"] == header
    assert CANARY not in r.text


def test_the_key_and_token_are_in_no_database_dump_and_no_log(dep):
    from actionserver import TOKEN
    from scaleout import TOKEN2

    run_id = start_run(dep.servers[0], "secrets stay out").json()["id"]
    assert poll(dep.servers[1], run_id).status_code == 200
    sent = [r for r in dep.upstream.requests if "secrets stay out" in (r.message or "")]
    assert sent[0].header("Authorization") == f"Bearer {CANARY}"  # the workers' own key
    dump = dep.cluster.dump(dep.db_url)
    assert "secrets stay out" in dump  # the dump has the runs
    logs = dep.logs()
    assert "queued-run" in logs
    for secret in (CANARY, TOKEN, TOKEN2):
        assert secret not in dump
        assert secret not in logs
