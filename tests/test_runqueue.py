"""Async runs queue on one machine: the SQLite store's queue, and each worker's queue thread."""

from __future__ import annotations

import sqlite3
import threading
import time

import falcon.testing
import pytest
from conftest import CANARY

from connector.engine import runner
from connector.errors import TemporaryFailure
from connector.server import app as server
from connector.server import idempotency
from connector.server.idempotency import Caller
from connector.server.runs import RunStore
from connector.server.worker import WorkerSettings

ACTION = "/actions/create_chat_completion"
FORM = {"model": "m", "messages": "Hello"}


def other_process(store: RunStore, owner: str = "host:999999999:abc") -> RunStore:
    """Return a store on the same file as another process of the server would have it."""
    other = RunStore(store.path, heartbeat=store.heartbeat)
    other.owner = owner
    return other


def row(store: RunStore, run_id: str) -> tuple:
    return (
        store._db()
        .execute("SELECT state, form, owner FROM runs WHERE id = ?", (run_id,))
        .fetchone()
    )


def test_a_queued_run_keeps_its_form_until_it_is_claimed(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    run_id, created = store.create("list_models", FORM, request_id="req-1")
    assert created and store.get(run_id).state == "queued"
    assert row(store, run_id)[:2] == ("queued", '{"model": "m", "messages": "Hello"}')
    [claim] = store.claim(5)
    assert (claim.id, claim.form, claim.pinned, claim.request_id) == (run_id, FORM, False, "req-1")
    assert row(store, run_id) == ("running", None, store.owner)  # the form is gone from the file
    store.finish(run_id, 200, {"ok": True})
    assert store.get(run_id).state == "done" and store.claim(5) == []


# (the run is pinned to the process that took it; who claims; whether the claim gets it)
WHO_CLAIMS = [
    (False, "the same process", True),
    (False, "another process", True),  # the server's own connection: any worker may run it
    (True, "the same process", True),
    (True, "another process", False),  # a tenant's key: only in its acceptor's memory
]


@pytest.mark.parametrize(("pinned", "claimer", "gets"), WHO_CLAIMS)
def test_who_may_claim_a_queued_run(tmp_path, pinned, claimer, gets):
    store = RunStore(tmp_path / "runs.sqlite3")
    run_id, _ = store.create("list_models", FORM, pinned=pinned)
    other = other_process(store) if claimer == "another process" else store
    assert other.has_queued() is gets
    assert [c.id for c in other.claim(5)] == ([run_id] if gets else [])


def test_runs_are_claimed_oldest_first_within_the_limit(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    ids = []
    for n in range(5):
        ids.append(store.create("list_models", {"n": n})[0])
        time.sleep(0.002)
    assert [c.form["n"] for c in store.claim(2)] == [0, 1]
    assert [c.id for c in other_process(store).claim(10)] == ids[2:]
    assert store.claim(10) == [] and not store.has_queued()


def test_two_processes_claiming_at_once_never_take_the_same_run(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    ids = {store.create("list_models", {"n": n})[0] for n in range(200)}
    taken: list[list[str]] = [[], []]

    def claim(i: int) -> None:
        mine = other_process(store, f"host:{i}:x")
        while batch := mine.claim(7):
            taken[i] += [c.id for c in batch]

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken[0] + taken[1]) == sorted(ids)
    assert not set(taken[0]) & set(taken[1])


def test_a_full_queue_refuses_with_retry_after_and_an_idempotent_retry_still_answers(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3", max_queued=2, retry_after=7)
    first, _ = store.create("list_models", {"n": 1}, caller=Caller(scope="t"), idem_key="k1")
    store.create("list_models", {"n": 2})
    with pytest.raises(TemporaryFailure) as refused:
        store.create("list_models", {"n": 3})
    assert refused.value.type == "overloaded" and refused.value.retry_after == 7
    assert "CONNECTOR_RUN_QUEUE_MAX" in refused.value.message
    # The same key again is the run already queued, not a new one: it is answered.
    assert store.create("list_models", {"n": 1}, caller=Caller(scope="t"), idem_key="k1") == (
        first,
        False,
    )
    store.claim(1)  # one starts: there is room again
    assert store.create("list_models", {"n": 3})[1]


# (pinned, the state a reader sees once the accepting process is gone)
ACCEPTOR_GONE = [
    (False, "queued"),  # waits for any worker, after a restart too
    (True, "done"),  # its key died with the process: interrupted
]


@pytest.mark.parametrize(("pinned", "state"), ACCEPTOR_GONE)
def test_a_queued_run_whose_acceptor_died(tmp_path, pinned, state):
    store = RunStore(tmp_path / "runs.sqlite3", heartbeat=0.05)
    dead = other_process(store, f"{store.host}:999999999:dead")  # no such pid
    run_id, _ = dead.create("list_models", FORM, pinned=pinned)
    run = store.get(run_id)
    assert run.state == state
    if state == "done":
        assert run.status == 503 and run.result["error"]["type"] == "interrupted"
        assert row(store, run_id)[1] is None  # nor is its form kept


def test_reap_interrupts_the_pinned_runs_of_gone_processes_only(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3", heartbeat=0.05)
    dead = other_process(store, f"{store.host}:999999999:dead")
    gone, _ = dead.create("list_models", FORM, pinned=True)
    free, _ = dead.create("list_models", FORM)
    mine, _ = store.create("list_models", FORM, pinned=True)
    assert store.reap() == 1
    assert [store.get(i).state for i in (gone, free, mine)] == ["done", "queued", "queued"]


def test_a_run_file_of_an_older_version_gets_the_queue_columns(tmp_path):
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
    assert store.get("a").status == 200 and not store.has_queued()
    run_id, _ = store.create("list_models", FORM, pinned=True)
    assert [(c.id, c.form) for c in store.claim(3)] == [(run_id, FORM)]


# -- the queue thread of a worker -------------------------------------------------------------


@pytest.fixture
def gate(monkeypatch):
    """Runs that wait for ``gate.set()``; ``gate.peak`` is how many ran at once, at most."""
    event = threading.Event()
    lock = threading.Lock()
    state = {"now": 0, "peak": 0, "connections": []}

    def run(action, form, conn, on_attempts=None):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            state["connections"].append(conn)
        event.wait(10)
        with lock:
            state["now"] -= 1
        return {"echo": form["messages"]}

    monkeypatch.setattr(runner, "run", run)
    monkeypatch.setattr(runner, "prepare", lambda *a, **k: {})
    event.state = state
    return event


OURS = idempotency.caller("t-123456")  # the caller of app_client's token


def app_client(tmp_path, **settings) -> falcon.testing.TestClient:
    settings = server.Settings(
        tokens=("t-123456",), runs_db=str(tmp_path / "runs.sqlite3"), heartbeat=0.2, **settings
    )
    app = server.create_app(settings)
    return falcon.testing.TestClient(app, headers={"Authorization": "Bearer t-123456"})


def wait_done(client, run_id: str, seconds: float = 10, headers=None) -> falcon.testing.Result:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r = client.simulate_get(f"/runs/{run_id}", headers=headers)
        if r.status_code != 202:
            return r
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} did not finish: {r.json}")


def states(client, ids, headers=None) -> list[str]:
    return [
        client.simulate_get(f"/runs/{i}", headers=headers).json.get("state", "done") for i in ids
    ]


def test_async_runs_wait_for_a_slot_instead_of_being_refused(tmp_path, gate):
    client = app_client(tmp_path, concurrency=2)
    posted = [
        client.simulate_post(f"{ACTION}/runs", json={**FORM, "messages": f"m{n}"}) for n in range(6)
    ]
    assert [r.status_code for r in posted] == [202] * 6
    assert {r.json["state"] for r in posted} == {"queued"}
    ids = [r.json["id"] for r in posted]
    time.sleep(0.5)
    assert sorted(states(client, ids)) == ["queued"] * 4 + ["running"] * 2
    busy = client.simulate_post(f"{ACTION}/run", json=FORM)  # the slots are shared
    assert busy.status_code == 503 and busy.json["error"]["type"] == "overloaded"
    gate.set()
    assert [wait_done(client, i).json for i in ids] == [{"echo": f"m{n}"} for n in range(6)]
    assert gate.state["peak"] == 2


def test_a_tenant_key_stays_in_memory_and_only_its_process_runs_the_run(tmp_path, gate):
    client = app_client(tmp_path, concurrency=1)
    tenant = {"X-OpenAI-Api-Key": CANARY}
    first = client.simulate_post(f"{ACTION}/runs", json=FORM, headers=tenant).json["id"]
    second = client.simulate_post(f"{ACTION}/runs", json=FORM, headers=tenant).json["id"]
    time.sleep(0.3)
    assert states(client, [first, second], tenant) == ["running", "queued"]
    store = client.app.scheduler.store
    for name in ("runs.sqlite3", "runs.sqlite3-wal"):
        assert CANARY.encode() not in (tmp_path / name).read_bytes()
    assert not other_process(store).has_queued()  # another process cannot take it
    gate.set()
    assert wait_done(client, second, headers=tenant).status_code == 200
    assert [c["api_key"] for c in gate.state["connections"]] == [CANARY, CANARY]
    assert client.app.scheduler.tenants == {}


def test_runs_queued_before_a_start_run_after_it(tmp_path, gate):
    before = RunStore(tmp_path / "runs.sqlite3")
    ids = [
        before.create("create_chat_completion", {**FORM, "messages": f"m{n}"}, caller=OURS)[0]
        for n in (1, 2)
    ]
    gate.set()
    client = app_client(tmp_path, concurrency=1)  # a new process, after a restart
    assert [wait_done(client, i).json for i in ids] == [{"echo": "m1"}, {"echo": "m2"}]


def test_a_full_queue_answers_503_with_retry_after(tmp_path, gate):
    client = app_client(tmp_path, concurrency=1, max_queued=2, busy_retry_after=3)
    codes = []
    for _ in range(5):
        codes.append(client.simulate_post(f"{ACTION}/runs", json=FORM))
        time.sleep(0.2)  # the first is claimed: it no longer waits
    assert [r.status_code for r in codes] == [202, 202, 202, 503, 503]
    assert codes[3].json["error"]["type"] == "overloaded" and codes[3].headers["Retry-After"] == "3"
    gate.set()


def test_draining_interrupts_pinned_queued_runs_and_keeps_the_others(tmp_path, gate):
    client = app_client(tmp_path, concurrency=1)
    running = client.simulate_post(f"{ACTION}/runs", json=FORM).json["id"]
    time.sleep(0.3)
    pinned = client.simulate_post(
        f"{ACTION}/runs", json=FORM, headers={"X-OpenAI-Api-Key": CANARY}
    ).json["id"]
    free = client.simulate_post(f"{ACTION}/runs", json=FORM).json["id"]
    threading.Timer(0.3, gate.set).start()
    assert client.app.scheduler.drain(timeout=5) == 1  # the pinned one
    reader = RunStore(tmp_path / "runs.sqlite3")
    assert reader.get(running).status == 200
    assert reader.get(pinned).result["error"]["type"] == "interrupted"
    assert reader.get(free).state == "queued"


def test_the_worker_is_sized_like_the_server_with_a_small_pool():
    settings = WorkerSettings.from_env({"CONNECTOR_RUNS_URL": "postgresql://x"})
    assert settings.concurrency == server.Settings().concurrency
    assert settings.pool_size == server.Settings().runs_pool_size <= 20
