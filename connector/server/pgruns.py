"""The shared run store: async runs in PostgreSQL, queued as procrastinate jobs (scale-out mode).

With ``CONNECTOR_RUNS_URL`` set, servers write a run's row and its job in one transaction (so
a 202 means the run is durable) and read runs back; workers (``worker.py``) claim, run and
finish them. A row holds the action, the form until the run is done, its state (queued,
running, done), the attempts, and when done the HTTP status and document. Never the API key,
never the server's token: only digests (``idempotency.Caller``) of whose run it is and of the
scope of its idempotency key. A finished run past the retention time reads as gone, whether a
worker has purged it yet or not.
"""

from __future__ import annotations

import select
import time
from dataclasses import dataclass
from typing import Any

from connector.errors import TemporaryFailure
from connector.server.idempotency import OPERATOR, Caller, check_same, fingerprint, new_run_id
from connector.server.runs import queue_full

RUN_TASK = "connector.run"
CALLBACK_TASK = "connector.callback"
RETRY_AFTER = 5  # seconds: the Retry-After of a 503 while the database cannot be reached
_LOCK = 7_230_231  # the advisory lock that serialises schema set-up across processes
_EXPIRED = "updated < now() - make_interval(secs => %s)"  # a finished run past its retention

_SCHEMA = """
CREATE TABLE IF NOT EXISTS connector_runs (
    id text PRIMARY KEY,
    action text NOT NULL,
    state text NOT NULL,            -- queued | running | done
    status integer,                 -- the HTTP status of the result
    result jsonb,                   -- the output or {"error": {...}}
    form jsonb,                     -- the form, until the run is done
    attempts integer NOT NULL DEFAULT 0,
    scope text NOT NULL DEFAULT '', -- the idempotency scope (idempotency.Caller.scope)
    idem_key text,
    fingerprint text,               -- SHA-256 of what the call asked for (idempotency)
    callback_url text,
    request_id text,
    created timestamptz NOT NULL DEFAULT now(),
    updated timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE connector_runs ADD COLUMN IF NOT EXISTS warnings jsonb; -- beside the result
-- Whose run (idempotency.Caller.tenant); '': stored by a version that kept none.
ALTER TABLE connector_runs ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX IF NOT EXISTS connector_runs_idem
    ON connector_runs (scope, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS connector_runs_done ON connector_runs (updated) WHERE state = 'done';
CREATE INDEX IF NOT EXISTS connector_runs_queued ON connector_runs (created) WHERE state = 'queued';
"""


@dataclass(frozen=True)
class QueuedRun:
    """One stored run, as a server reads it."""

    id: str
    action: str
    state: str
    status: int | None
    result: Any
    attempts: int
    warnings: list | None = None  # kept beside the result: the output's shape is the API's


@dataclass(frozen=True)
class Claim:
    """A run a worker took up: what to run, and which attempt this is."""

    action: str
    form: dict
    attempts: int
    request_id: str | None


def unavailable() -> TemporaryFailure:
    """Return the 503 a call gets while the database cannot be reached."""
    return TemporaryFailure(
        f"The run store (PostgreSQL) cannot be reached right now; retry after {RETRY_AFTER} s. "
        "Nothing was started.",
        type="store_unavailable",
        retry_after=RETRY_AFTER,
    )


IDLE_CHECK = 30.0  # seconds: a pooled connection idle longer is checked before use


def _mark_returned(conn) -> None:
    conn._connector_returned = time.monotonic()


def _check_if_idle(conn) -> None:
    """Check a pooled connection before use when it may be dead; most need no round trip.

    An idle connection has nothing to read unless the server closed it (a restart sends a
    termination message, a crash an end of file): then, or after a long idle time, a real
    check runs (an empty query), and the pool replaces a dead connection.
    """
    from psycopg_pool import ConnectionPool

    idle = time.monotonic() - getattr(conn, "_connector_returned", 0.0)
    if idle > IDLE_CHECK or select.select([conn.fileno()], [], [], 0)[0]:
        ConnectionPool.check_connection(conn)


def _deferrer(url: str):
    """Return a procrastinate App that only defers (on a connection it is given)."""
    import procrastinate

    return procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=url))


class PgRunStore:
    """Runs in PostgreSQL; one connection pool per process, shared by its threads."""

    def __init__(
        self,
        url: str,
        *,
        retention: float = 86400.0,
        pool_size: int = 10,
        max_queued: int = 10000,
        retry_after: int = 2,
    ) -> None:
        from psycopg_pool import ConnectionPool

        self.url = url
        self.retention = retention
        self.max_queued = max_queued
        self.retry_after = retry_after
        # open=True with wait=False: a server starts while the database is down, and the pool
        # keeps trying; `check` replaces connections that a database restart broke.
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=True,
            timeout=3.0,
            check=_check_if_idle,
            reset=_mark_returned,
            kwargs={"connect_timeout": 3, "autocommit": True},
            name="connector-runs",
        )
        self.deferrer = _deferrer(url)
        self._ready = False

    def close(self) -> None:
        """Close the pool."""
        self.pool.close()

    def _conn(self):
        """Return the pool's connection context, after the schema is in place."""
        if not self._ready:
            self.ensure_schema()
        return self.pool.connection()

    def ensure_schema(self) -> None:
        """Create procrastinate's tables and the runs table when missing (once, under a lock)."""
        from procrastinate.schema import SchemaManager

        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            (jobs,) = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
            if jobs is None:
                conn.execute(SchemaManager.get_schema())
            conn.execute(_SCHEMA)
        self._ready = True

    # -- servers ------------------------------------------------------------------------------

    def create(
        self,
        action: str,
        form: dict,
        *,
        caller: Caller = OPERATOR,
        idem_key: str | None = None,
        callback_url: str | None = None,
        request_id: str | None = None,
    ) -> tuple[str, bool]:
        """Store a queued run of ``caller`` and its job in one transaction; return (id, created).

        With ``idem_key``, a second call in the caller's scope with the same key returns the
        first run (created is False); with a different action, form or callback it is refused
        (422). A key whose run is past the retention time is free again. When more than
        ``max_queued`` runs would wait, nothing is stored and the call is refused (503).
        """
        from psycopg.types.json import Jsonb

        run_id = new_run_id()
        scope = caller.scope
        digest = fingerprint(action, form, callback_url) if idem_key else None
        with self._conn() as conn, conn.transaction():
            if idem_key is not None:
                conn.execute(
                    "DELETE FROM connector_runs WHERE scope = %s AND idem_key = %s AND"
                    f" state = 'done' AND {_EXPIRED}",
                    (scope, idem_key, self.retention),
                )
            row = conn.execute(
                "INSERT INTO connector_runs (id, action, state, form, scope, idem_key,"
                " fingerprint, callback_url, request_id, tenant) VALUES (%s, %s, 'queued', %s,"
                " %s, %s, %s, %s, %s, %s) ON CONFLICT (scope, idem_key)"
                " WHERE idem_key IS NOT NULL DO NOTHING RETURNING id",
                (
                    run_id,
                    action,
                    Jsonb(form),
                    scope,
                    idem_key,
                    digest,
                    callback_url,
                    request_id,
                    caller.tenant,
                ),
            ).fetchone()
            if row is None:
                first, given = conn.execute(
                    "SELECT id, fingerprint FROM connector_runs WHERE scope = %s AND idem_key = %s",
                    (scope, idem_key),
                ).fetchone()
                check_same(given, digest)
                return first, False
            (waiting,) = conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM connector_runs WHERE state = 'queued'"
                " LIMIT %s) q",
                (self.max_queued + 1,),
            ).fetchone()
            if waiting > self.max_queued:  # this run counted: the transaction is rolled back
                raise queue_full(self.max_queued, self.retry_after)
            self.deferrer.configure_task(RUN_TASK, connection=conn).defer(run_id=run_id)
        return run_id, True

    def get(self, run_id: str, caller: Caller | None = None) -> QueuedRun | None:
        """Return a run, or None: unknown, past the retention time, or not ``caller``'s.

        Without ``caller``, any run (the operator's view). A row of an older version, which
        kept no tenant, is its token's.
        """
        where, args = "", ()
        if caller is not None:
            where, args = (
                " AND (tenant = %s OR (tenant = '' AND scope = %s))",
                (
                    caller.tenant,
                    caller.token,
                ),
            )
        with self._conn() as conn:
            row = conn.execute(
                "SELECT id, action, state, status, result, attempts, warnings FROM connector_runs"
                f" WHERE id = %s AND NOT (state = 'done' AND {_EXPIRED}){where}",
                (run_id, self.retention, *args),
            ).fetchone()
        return QueuedRun(*row) if row else None

    # -- workers ------------------------------------------------------------------------------

    def claim(self, run_id: str) -> Claim | None:
        """Mark a run running and count the attempt; None when it is done or gone."""
        with self._conn() as conn:
            row = conn.execute(
                "UPDATE connector_runs SET state = 'running', attempts = attempts + 1,"
                " updated = now() WHERE id = %s AND state <> 'done'"
                " RETURNING action, form, attempts, request_id",
                (run_id,),
            ).fetchone()
        return Claim(*row) if row else None

    def finish(self, run_id: str, status: int, result: Any, warnings: list | None = None) -> bool:
        """Store a run's result unless one is stored already (the first completion wins).

        The form is dropped; a callback, if the run has one, is queued in the same transaction.
        Return True when this call stored the result.
        """
        from psycopg.types.json import Jsonb

        with self._conn() as conn, conn.transaction():
            row = conn.execute(
                "UPDATE connector_runs SET state = 'done', status = %s, result = %s, form = NULL,"
                " warnings = %s, updated = now() WHERE id = %s AND state <> 'done'"
                " RETURNING callback_url",
                (status, Jsonb(result), Jsonb(warnings) if warnings else None, run_id),
            ).fetchone()
            if row is not None and row[0]:
                self.deferrer.configure_task(CALLBACK_TASK, connection=conn).defer(run_id=run_id)
        return row is not None

    def done_run(self, run_id: str) -> tuple[QueuedRun, str | None] | None:
        """Return a finished run and its callback URL (for the callback's delivery)."""
        with self._conn() as conn:
            row = conn.execute(
                "SELECT id, action, state, status, result, attempts, warnings, callback_url"
                " FROM connector_runs WHERE id = %s AND state = 'done'",
                (run_id,),
            ).fetchone()
        return (QueuedRun(*row[:7]), row[7]) if row else None

    def requeue_orphans(self, after: float) -> list[str]:
        """Queue a new job for each unfinished run that has none (a safety net); return ids.

        A run loses its job when a worker is stopped past its drain time (procrastinate aborts
        and deletes the job while the call goes on), or dies between the call and the result.
        """
        with self._conn() as conn, conn.transaction():
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT r.id FROM connector_runs r WHERE r.state <> 'done'"
                    " AND r.updated < now() - make_interval(secs => %s) AND NOT EXISTS ("
                    " SELECT 1 FROM procrastinate_jobs j WHERE j.task_name = %s"
                    " AND j.args->>'run_id' = r.id AND j.status IN ('todo', 'doing'))"
                    " FOR UPDATE OF r SKIP LOCKED",
                    (after, RUN_TASK),
                )
            ]
            for run_id in ids:
                conn.execute("UPDATE connector_runs SET updated = now() WHERE id = %s", (run_id,))
                self.deferrer.configure_task(RUN_TASK, connection=conn).defer(run_id=run_id)
        return ids

    def ping(self, timeout: float = 1.0) -> None:
        """Ask the database one question, within ``timeout`` s (readiness); raise if it can't."""
        with self.pool.connection(timeout=timeout) as conn:
            conn.execute("SELECT 1")

    def uptime(self) -> float:
        """Return how long the database server has been up, in seconds."""
        with self._conn() as conn:
            (seconds,) = conn.execute(
                "SELECT extract(epoch FROM now() - pg_postmaster_start_time())::float8"
            ).fetchone()
        return seconds

    def purge(self) -> int:
        """Delete finished runs (with their idempotency keys) older than the retention time."""
        with self._conn() as conn:
            cur = conn.execute(
                f"DELETE FROM connector_runs WHERE state = 'done' AND {_EXPIRED}",
                (self.retention,),
            )
        return cur.rowcount


def retrying(call, *, stop=None, cap: float = 5.0):
    """Call ``call()`` until the database answers (a worker must not lose a finished result)."""
    import psycopg
    import psycopg_pool

    wait = 0.2
    while True:
        try:
            return call()
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout):
            if stop is not None and stop.is_set():
                raise
            time.sleep(wait)
            wait = min(cap, wait * 2)
