"""/healthz tells the truth: the run store and the server's own connection, part by part."""

from __future__ import annotations

import pytest
from actionserver import ActionServer
from conftest import CANARY

from connector.server.health import Readiness, startup_warning


class Store:
    def __init__(self, fails: bool) -> None:
        self.fails = fails

    def get(self, run_id: str):
        if self.fails:
            raise OSError("disk I/O error")
        return None


class Queue:
    def ping(self) -> None:
        raise TimeoutError("couldn't get a connection after 3.00 sec")


class Scheduler:
    def __init__(self, environment, store=None, queue=None) -> None:
        self.environment, self.store, self.queue = environment, store, queue


KEY = {"api_key": CANARY}
CASES = [
    ("ready", KEY, Store(False), None, 200, {"runs": "ok", "connection": "ok"}),
    (
        "local model, no key",
        {"provider": "local"},
        Store(False),
        None,
        200,
        {"runs": "ok", "connection": "ok"},
    ),
    ("no key", {}, Store(False), None, 503, {"runs": "ok", "connection": "OPENAI_API_KEY"}),
    (
        "store broken",
        KEY,
        Store(True),
        None,
        503,
        {"runs": "unreachable (OSError)", "connection": "ok"},
    ),
    (
        "PostgreSQL down",
        KEY,
        None,
        Queue(),
        503,
        {"runs": "unreachable (TimeoutError)", "connection": "ok"},
    ),
]


@pytest.mark.parametrize(
    ("name", "env", "store", "queue", "status", "parts"), CASES, ids=[c[0] for c in CASES]
)
def test_readiness_part_by_part(name, env, store, queue, status, parts):
    got_status, doc = Readiness(Scheduler(env, store, queue)).answer()
    assert got_status == status
    assert doc["status"] == ("ok" if status == 200 else "unavailable")
    for part, fragment in parts.items():
        assert fragment in doc["parts"][part], doc
    assert CANARY not in str(doc)


def test_readiness_is_looked_at_once_per_interval():
    store, now = Store(False), [0.0]
    readiness = Readiness(Scheduler(KEY, store), clock=lambda: now[0])
    assert readiness.answer()[0] == 200
    store.fails = True
    assert readiness.answer()[0] == 200  # kept for KEEP_SECONDS
    now[0] += 5
    assert readiness.answer()[0] == 503


@pytest.mark.parametrize(
    ("env", "warned"), [({}, True), (KEY, False), ({"provider": "local"}, False)]
)
def test_serve_warns_when_its_own_connection_cannot_call(env, warned):
    line = startup_warning(env)
    assert (line is not None) == warned
    if warned:
        assert "OPENAI_API_KEY" in line and "X-OpenAI-Api-Key" in line


@pytest.mark.server
def test_a_server_without_a_key_says_so_at_start_and_in_health(tmp_path):
    with ActionServer(env={"CONNECTOR_RUNS_DB": str(tmp_path / "r.sqlite3")}) as srv:
        r = srv.call("GET", "/healthz", token=None)
        logs = srv.logs()
    assert r.status_code == 503 and "OPENAI_API_KEY" in r.json()["parts"]["connection"]
    assert "warning: the server's own connection cannot make a call" in logs


@pytest.mark.server
def test_an_unreachable_run_store_makes_health_503(tmp_path):
    env = {"OPENAI_API_KEY": CANARY, "CONNECTOR_RUNS_URL": "postgresql://127.0.0.1:1/nothing"}
    with ActionServer(env=env) as srv:
        r = srv.call("GET", "/healthz", token=None, timeout=30)
    assert r.status_code == 503 and r.json()["parts"]["runs"].startswith("unreachable")
    assert CANARY not in r.text
