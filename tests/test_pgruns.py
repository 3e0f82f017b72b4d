"""The PostgreSQL run store on a real cluster: the rules the workers and servers rely on."""

from __future__ import annotations

import threading

import pytest

from connector.server.pgruns import PgRunStore

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
        first, _ = small.create("list_models", {"n": 1}, scope="t", idem_key="k1")
        small.create("list_models", {"n": 2})
        with pytest.raises(TemporaryFailure) as refused:
            small.create("list_models", {"n": 3})
        assert refused.value.type == "overloaded" and refused.value.retry_after == 7
        assert _count(small, "SELECT count(*) FROM connector_runs") == 2  # rolled back
        assert _count(small, "SELECT count(*) FROM procrastinate_jobs") == 2
        assert small.create("list_models", {"n": 1}, scope="t", idem_key="k1") == (first, False)
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
