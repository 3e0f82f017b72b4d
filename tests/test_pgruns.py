"""The PostgreSQL run store on a real cluster: the rules the workers and servers rely on."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import falcon.testing
import pytest

from connector.engine import runner
from connector.server import app as server
from connector.server import idempotency
from connector.server.idempotency import Caller
from connector.server.pgruns import PgRunStore
from connector.server.worker import Runs, WorkerSettings

pytestmark = pytest.mark.server
FORM = {"model": "gpt-4o-mini", "messages": "store test"}


@pytest.fixture(scope="module")
def store(pg_cluster):
    s = PgRunStore(pg_cluster.database(), retention=3600)
    yield s
    s.close()


def _count(store, sql: str, *args) -> int:
    with store.pool.connection() as conn:
        return conn.execute(sql, args).fetchone()[0]


def test_schema_set_up_is_safe_to_repeat_at_once(pg_cluster):
    url = pg_cluster.database()
    stores = [PgRunStore(url) for _ in range(3)]
    threads = [threading.Thread(target=s.ensure_schema) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.ensure_schema()
        s.close()


def test_a_run_and_its_job_are_written_together(store):
    run_id, created = store.create("create_chat_completion", FORM)
    assert created
    assert store.get(run_id).state == "queued"
    jobs = "SELECT count(*) FROM procrastinate_jobs WHERE args->>'run_id' = %s"
    assert _count(store, jobs, run_id) == 1


def test_a_full_queue_stores_nothing_and_an_idempotent_retry_still_answers(pg_cluster):
    from connector.errors import TemporaryFailure

    small = PgRunStore(pg_cluster.database(), max_queued=2, retry_after=7)
    try:
        first, _ = small.create("list_models", {"n": 1}, caller=Caller(scope="t"), idem_key="k1")
        small.create("list_models", {"n": 2})
        with pytest.raises(TemporaryFailure) as refused:
            small.create("list_models", {"n": 3})
        assert refused.value.type == "overloaded" and refused.value.retry_after == 7
        assert _count(small, "SELECT count(*) FROM connector_runs") == 2  # rolled back
        assert _count(small, "SELECT count(*) FROM procrastinate_jobs") == 2
        assert small.create("list_models", {"n": 1}, caller=Caller(scope="t"), idem_key="k1") == (
            first,
            False,
        )
        small.claim(first)  # one starts: there is room again
        assert small.create("list_models", {"n": 3})[1]
    finally:
        small.close()


def test_the_first_completion_wins_and_drops_the_form(store):
    run_id, _ = store.create("create_chat_completion", FORM)
    assert store.claim(run_id).attempts == 1
    assert store.claim(run_id).attempts == 2  # a second worker took it up again
    said = [{"kind": "truncated", "message": "cut"}]
    assert store.finish(run_id, 200, {"first": True}, said) is True
    assert store.finish(run_id, 502, {"error": {"type": "late"}}) is False
    run = store.get(run_id)
    assert (run.state, run.status, run.result) == ("done", 200, {"first": True})
    assert run.warnings == said and store.done_run(run_id)[0].warnings == said
    assert store.claim(run_id) is None  # a stalled job of a done run does nothing
    assert _count(
        store, "SELECT count(*) FROM connector_runs WHERE id = %s AND form IS NULL", run_id
    )


@pytest.mark.parametrize(
    ("age", "state", "kept"),
    [(7200, "done", False), (10, "done", True), (7200, "queued", True)],
)
def test_retention_deletes_only_old_finished_runs(store, age, state, kept):
    run_id, _ = store.create("create_chat_completion", FORM, idem_key=f"ret-{age}-{state}")
    if state == "done":
        store.finish(run_id, 200, {})
    with store.pool.connection() as conn:
        conn.execute(
            "UPDATE connector_runs SET updated = now() - make_interval(secs => %s) WHERE id = %s",
            (age, run_id),
        )
    store.purge()
    assert (store.get(run_id) is not None) is kept


def test_an_idempotency_key_is_free_again_once_its_run_is_purged(store):
    first, _ = store.create("create_chat_completion", FORM, idem_key="purged-key")
    assert store.create("create_chat_completion", FORM, idem_key="purged-key") == (first, False)
    store.finish(first, 200, {})
    with store.pool.connection() as conn:
        conn.execute("UPDATE connector_runs SET updated = now() - interval '2 hours'")
    store.purge()
    second, created = store.create("create_chat_completion", {"other": 1}, idem_key="purged-key")
    assert created and second != first


@pytest.mark.parametrize(("job", "requeued"), [("deleted", True), ("kept", False)])
def test_an_unfinished_run_without_a_job_is_queued_again(store, job, requeued):
    run_id, _ = store.create("create_chat_completion", FORM)
    store.claim(run_id)
    with store.pool.connection() as conn:
        if job == "deleted":  # as procrastinate does with a job it aborted at shutdown
            conn.execute("DELETE FROM procrastinate_jobs WHERE args->>'run_id' = %s", (run_id,))
        conn.execute(
            "UPDATE connector_runs SET updated = now() - interval '1 minute' WHERE id = %s",
            (run_id,),
        )
    assert (run_id in store.requeue_orphans(30)) is requeued
    jobs = "SELECT count(*) FROM procrastinate_jobs WHERE args->>'run_id' = %s"
    assert _count(store, jobs, run_id) == 1
    assert run_id not in store.requeue_orphans(30)  # once only


# -- whose run it is, how long it is kept -------------------------------------------------------

A = idempotency.caller("tok-a-123456")
A_KEY = idempotency.caller("tok-a-123456", "sk-tenant-0123456789")
A_BASE = idempotency.caller("tok-a-123456", "", "https://a.example/v1")
B = idempotency.caller("tok-b-123456")


@pytest.mark.parametrize(
    ("starter", "reader", "gets"),
    [
        (A, A, True),
        (A, B, False),  # another token
        (A, A_KEY, False),  # another tenant key
        (A_KEY, A_KEY, True),
        (A_KEY, A, False),
        (A, None, True),  # the operator's view (no caller): the worker's, the tests'
        (Caller(scope=A.token), A, True),  # a row of an older version (no tenant): its token's
        (Caller(scope=A.token), B, False),
    ],
)
def test_a_run_is_read_only_by_its_caller(store, starter, reader, gets):
    run_id, _ = store.create("create_chat_completion", FORM, caller=starter)
    assert (store.get(run_id, reader) is not None) is gets
    store.finish(run_id, 200, {})
    assert (store.get(run_id, reader) is not None) is gets


@pytest.mark.parametrize(
    ("second", "same"), [(A, True), (B, False), (A_KEY, False), (A_BASE, False)]
)
def test_the_idempotency_scope_is_the_token_tenant_key_and_base_url(store, second, same):
    key = f"scope-{time.time_ns()}"
    first, _ = store.create("create_chat_completion", FORM, caller=A, idem_key=key)
    again, created = store.create("create_chat_completion", FORM, caller=second, idem_key=key)
    assert (again == first, created) == (same, not same)


def test_run_ids_have_128_random_bits(store):
    ids = [store.create("create_chat_completion", FORM)[0] for _ in range(100)]
    assert all(idempotency.RUN_ID.match(i) for i in ids) and len(set(ids)) == 100
    # Every hex digit varies (a uuid4's version and variant digits would not).
    assert min(len({i[n] for i in ids}) for n in range(32)) >= 6


def _age(store, run_id: str, seconds: float) -> None:
    with store.pool.connection() as conn:
        conn.execute(
            "UPDATE connector_runs SET updated = now() - make_interval(secs => %s) WHERE id = %s",
            (seconds, run_id),
        )


@pytest.mark.parametrize(("state", "readable"), [("done", False), ("queued", True)])
def test_a_finished_run_past_its_retention_is_gone_before_any_purge(store, state, readable):
    key = f"old-{state}-{time.time_ns()}"
    run_id, _ = store.create("create_chat_completion", FORM, caller=A, idem_key=key)
    if state == "done":
        store.finish(run_id, 200, {})
    _age(store, run_id, 7200)  # older than the store's retention (an hour); not purged
    assert (store.get(run_id, A) is not None) is readable
    again, created = store.create("create_chat_completion", FORM, caller=A, idem_key=key)
    assert created is not readable and (again == run_id) is readable


def test_a_worker_purges_at_start_up(pg_cluster):
    url = pg_cluster.database()
    old_store = PgRunStore(url, retention=3600)
    run_id, _ = old_store.create("create_chat_completion", FORM)
    old_store.finish(run_id, 200, {})
    _age(old_store, run_id, 7200)
    runs = Runs(WorkerSettings(runs_url=url, check_every=60, run_retention=3600))
    with pytest.raises(asyncio.TimeoutError):  # the loop waits a minute after its first look
        asyncio.run(asyncio.wait_for(runs.side_loop(None), 3))
    left = "SELECT count(*) FROM connector_runs WHERE id = %s"
    assert _count(old_store, left, run_id) == 0
    runs.store.close()
    old_store.close()


# -- the routes, on PostgreSQL --------------------------------------------------------------------

RUNS = "/actions/create_chat_completion/runs"


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def routes(pg_cluster, store, tmp_path, monkeypatch):
    """A server app on the store's database (no worker: the test finishes the runs)."""
    monkeypatch.setattr(runner, "prepare", lambda *a, **k: {})
    settings = server.Settings(
        tokens=("tok-a-123456", "tok-b-123456"),
        runs_db=str(tmp_path / "unused.sqlite3"),
        runs_url=store.url,
    )
    client = falcon.testing.TestClient(server.create_app(settings))
    yield client
    client.app.scheduler.queue.close()


def test_a_queued_run_is_read_only_by_its_token(routes, store):
    run_id = routes.simulate_post(RUNS, json=FORM, headers=bearer("tok-a-123456")).json["id"]
    own = routes.simulate_get(f"/runs/{run_id}", headers=bearer("tok-a-123456"))
    other = routes.simulate_get(f"/runs/{run_id}", headers=bearer("tok-b-123456"))
    never = routes.simulate_get("/runs/" + "0" * 32, headers=bearer("tok-b-123456"))
    assert own.status_code == 202 and own.json["state"] == "queued"
    assert (other.status_code, other.json) == (
        404,
        json.loads(never.text.replace("0" * 32, run_id)),
    )


def test_a_retried_post_answers_the_runs_state_then_its_result(routes, store):
    headers = {**bearer("tok-a-123456"), "Idempotency-Key": f"re-{time.time_ns()}"}
    first = routes.simulate_post(RUNS, json=FORM, headers=headers)
    store.claim(first.json["id"])
    running = routes.simulate_post(RUNS, json=FORM, headers=headers)
    assert (running.status_code, running.json["state"], running.json["attempts"]) == (
        202,
        "running",
        1,
    )
    store.finish(first.json["id"], 402, {"error": {"type": "quota_exceeded"}})
    done = routes.simulate_post(RUNS, json=FORM, headers=headers)
    got = routes.simulate_get(f"/runs/{first.json['id']}", headers=headers)
    assert (done.status_code, done.json) == (got.status_code, got.json)
    assert done.status_code == 402 and "Location" not in done.headers
