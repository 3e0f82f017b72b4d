"""The async run store: SQLite in WAL mode, one file shared by the server's workers on a machine.

A run row holds the action, its state (queued, running, done), and when done the HTTP status
and the JSON document (output or error object). A queued run keeps its form until a worker
claims it (then the form is deleted), so that it survives a restart of the server; never the
key. A run with a tenant's own connection (``pinned``) is claimed only by the process that
accepted it, which holds that connection in memory. The process running a run (or holding a
pinned one) refreshes its heartbeat; such a row whose process is gone (it died, or its
heartbeat stopped) reads as an ``interrupted`` error, so a run cut short never vanishes.
A row keeps a digest of its caller (``idempotency.Caller``): only that caller reads it. A
finished run older than the retention time reads as gone, purged or not. The file is the
server's alone (0600, and so its -wal and -shm files, which SQLite creates with its mode).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.errors import TemporaryFailure, http_status
from connector.server.idempotency import OPERATOR, Caller, check_same, fingerprint, new_run_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    state TEXT NOT NULL,            -- queued | running | done
    status INTEGER,                 -- the HTTP status of the result
    result TEXT,                    -- the output or {"error": {...}}, as JSON
    owner TEXT NOT NULL,            -- host:pid:nonce of the worker running it
    created REAL NOT NULL,
    updated REAL NOT NULL,
    heartbeat REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_updated ON runs (updated);
"""
# Added later: a file of an older version gets them (ALTER TABLE), its rows without them.
_ADDED = {
    "scope": "TEXT NOT NULL DEFAULT ''",  # the idempotency scope (idempotency.Caller.scope)
    "idem_key": "TEXT",
    "fingerprint": "TEXT",  # SHA-256 of what the call asked for
    "form": "TEXT",  # the form as JSON, while the run is queued
    "pinned": "INTEGER NOT NULL DEFAULT 0",  # 1: only its owner holds its connection
    "request_id": "TEXT",  # of the POST that queued it, for the run's log line
    "warnings": "TEXT",  # the run's warnings (JSON), said in the result's X-Connector-Warnings
    "tenant": "TEXT NOT NULL DEFAULT ''",  # whose run (Caller.tenant); '': an older version's
}
_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS runs_idem ON runs (scope, idem_key)"
    " WHERE idem_key IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS runs_queued ON runs (created) WHERE state = 'queued'",
)
# The rows whose owner must be alive: running runs, and queued runs only it can start.
_OWNED = "(state = 'running' OR (state = 'queued' AND pinned = 1))"


@dataclass(frozen=True)
class Run:
    """One stored run."""

    id: str
    action: str
    state: str
    status: int | None
    result: Any
    created: float
    updated: float
    warnings: list | None = None  # kept beside the result: the output's shape is the API's


@dataclass(frozen=True)
class Claim:
    """A queued run a worker took up: what to run, and with whose connection."""

    id: str
    action: str
    form: dict
    pinned: bool
    request_id: str | None


def interrupted_error() -> TemporaryFailure:
    """Return the error a run reads as when its worker stopped before it finished."""
    return TemporaryFailure(
        "The run was cut short: the server running it stopped or restarted before it finished. "
        "Start the run again.",
        type="interrupted",
    )


def queue_full(limit: int, retry_after: int) -> TemporaryFailure:
    """Return the 503 of a POST while ``limit`` runs are already waiting."""
    return TemporaryFailure(
        f"The queue of async runs is full ({limit} runs waiting, CONNECTOR_RUN_QUEUE_MAX); "
        f"retry after {retry_after} s. Nothing was queued.",
        type="overloaded",
        retry_after=retry_after,
    )


class RunStore:
    """Runs in one SQLite file; safe across threads (a connection per thread) and processes."""

    def __init__(
        self,
        path: str | Path,
        *,
        retention: float = 86400.0,
        heartbeat: float = 2.0,
        max_queued: int = 10000,
        retry_after: int = 2,
    ) -> None:
        self.path = str(path)
        self.retention = retention
        self.heartbeat = heartbeat
        self.max_queued = max_queued
        self.retry_after = retry_after
        self.stale_after = max(5 * heartbeat, 1.0)
        self.host = socket.gethostname()
        self._local = threading.local()
        self._pid = -1
        self.owner = ""
        self._turn = threading.Lock()
        db = self._db()
        db.executescript(_SCHEMA)
        have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        for name, kind in _ADDED.items():
            if name not in have:
                # Another worker of the server may have added it first.
                with contextlib.suppress(sqlite3.OperationalError):
                    db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
        for index in _INDEXES:
            db.execute(index)

    def _db(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # first use, or after a fork: a new owner, new connections
            self._pid = os.getpid()
            self.owner = f"{self.host}:{self._pid}:{uuid.uuid4().hex[:12]}"
            self._local = threading.local()
            self._turn = threading.Lock()  # a lock held in the parent at fork stays held
        db = getattr(self._local, "db", None)
        if db is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            private(self.path)
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, taken at once: what it reads no other process changes.

        This process's writers take turns on a lock first: SQLite makes a writer that finds
        the file locked sleep and try again (1 ms, then 2, 5, ... up to 100 ms), which for a
        thousand runs posted at once cost seconds; a lock hands the turn over at once.
        """
        db = self._db()
        with self._turn:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _write(self, sql: str, args: tuple) -> sqlite3.Cursor:
        """Run one writing statement, in this process's turn (``_writing``)."""
        db = self._db()
        with self._turn:
            return db.execute(sql, args)

    def create(
        self,
        action: str,
        form: dict | None = None,
        *,
        caller: Caller = OPERATOR,
        idem_key: str | None = None,
        pinned: bool = False,
        request_id: str | None = None,
        run_id: str | None = None,
    ) -> tuple[str, bool]:
        """Queue a new run of ``caller`` with its form; return (its id, True).

        The id is unguessable (``new_run_id``). With ``idem_key``, a key already used in the
        caller's scope returns (the first run's id, False), or refuses a call that asked for
        another action or form (422), as ``PgRunStore.create`` does; a key whose run is past
        its retention is free again. A ``pinned`` run is claimed only by this process (its
        connection is in this process's memory). When ``max_queued`` runs are waiting
        already, the call is refused (503).
        """
        digest = fingerprint(action, form or {}) if idem_key else None
        run_id = run_id or new_run_id()
        scope = caller.scope
        now = time.time()
        with self._writing() as db:
            if idem_key is not None:
                db.execute(
                    "DELETE FROM runs WHERE scope = ? AND idem_key = ? AND state = 'done'"
                    " AND updated < ?",
                    (scope, idem_key, now - self.retention),
                )
                row = db.execute(
                    "SELECT id, fingerprint FROM runs WHERE scope = ? AND idem_key = ?",
                    (scope, idem_key),
                ).fetchone()
                if row is not None:
                    check_same(row[1], digest)
                    return row[0], False
            (waiting,) = db.execute(
                "SELECT count(*) FROM (SELECT 1 FROM runs WHERE state = 'queued' LIMIT ?)",
                (self.max_queued,),
            ).fetchone()
            if waiting >= self.max_queued:
                raise queue_full(self.max_queued, self.retry_after)
            db.execute(
                "INSERT INTO runs (id, action, state, owner, created, updated, heartbeat, scope,"
                " idem_key, fingerprint, form, pinned, request_id, tenant)"
                " VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    action,
                    self.owner if pinned else "",
                    now,
                    now,
                    now,
                    scope,
                    idem_key,
                    digest,
                    json.dumps(form or {}, ensure_ascii=False),
                    int(pinned),
                    request_id,
                    caller.tenant,
                ),
            )
        return run_id, True

    def has_queued(self) -> bool:
        """Return True when a queued run waits that this process may claim (a read, no lock)."""
        return (
            self._db()
            .execute(
                "SELECT 1 FROM runs WHERE state = 'queued' AND (pinned = 0 OR owner = ?) LIMIT 1",
                (self.owner,),
            )
            .fetchone()
            is not None
        )

    def claim(self, limit: int) -> list[Claim]:
        """Mark up to ``limit`` queued runs running for this process, oldest first; return them.

        Their forms are deleted from the file as they are handed over.
        """
        if limit <= 0:
            return []
        now = time.time()
        with self._writing() as db:
            rows = db.execute(
                "SELECT id, action, form, pinned, request_id FROM runs WHERE state = 'queued'"
                " AND (pinned = 0 OR owner = ?) ORDER BY created LIMIT ?",
                (self.owner, limit),
            ).fetchall()
            db.executemany(
                "UPDATE runs SET state = 'running', owner = ?, form = NULL, updated = ?,"
                " heartbeat = ? WHERE id = ?",
                [(self.owner, now, now, row[0]) for row in rows],
            )
        return [
            Claim(run_id, action, json.loads(form or "{}"), bool(pinned), request_id)
            for run_id, action, form, pinned, request_id in rows
        ]

    def finish(self, run_id: str, status: int, result: Any, warnings: list | None = None) -> None:
        """Store a run's HTTP status, document and warnings (its form, if still there, goes)."""
        said = json.dumps(warnings, ensure_ascii=False) if warnings else None
        self._write(
            "UPDATE runs SET state = 'done', status = ?, result = ?, warnings = ?, form = NULL,"
            " updated = ? WHERE id = ?",
            (status, json.dumps(result, ensure_ascii=False), said, time.time(), run_id),
        )

    def get(self, run_id: str, caller: Caller | None = None) -> Run | None:
        """Return a run, or None: unknown, past its retention, or not ``caller``'s.

        Without ``caller``, any run (the operator's view). A run whose owner is gone is marked
        interrupted. A row of an older version, which kept no tenant, is its token's.
        """
        where, args = "id = ?", (run_id,)
        if caller is not None:
            where += " AND (tenant = ? OR (tenant = '' AND scope = ?))"
            args += (caller.tenant, caller.token)
        row = (
            self._db()
            .execute(
                "SELECT id, action, state, status, result, created, updated, owner, heartbeat,"
                f" pinned, warnings FROM runs WHERE {where}",
                args,
            )
            .fetchone()
        )
        if row is None or (row[2] == "done" and row[6] < time.time() - self.retention):
            return None
        owned = row[2] == "running" or (row[2] == "queued" and row[9])
        if owned and self._gone(row[7], row[8]):
            self._interrupt("id = ?", (run_id,))
            return self.get(run_id, caller)
        result = json.loads(row[4]) if row[4] is not None else None
        warnings = json.loads(row[10]) if row[10] else None
        return Run(row[0], row[1], row[2], row[3], result, row[5], row[6], warnings)

    def _interrupt(self, where: str, args: tuple) -> int:
        """Mark the owned rows that match ``where`` interrupted; return how many."""
        err = interrupted_error()
        cur = self._write(
            "UPDATE runs SET state = 'done', status = ?, result = ?, form = NULL, updated = ?"
            f" WHERE {_OWNED} AND {where}",
            (http_status(err), json.dumps({"error": err.to_dict()}), time.time(), *args),
        )
        return cur.rowcount

    def _gone(self, owner: str, heartbeat: float) -> bool:
        if owner == self.owner:
            return False
        if time.time() - heartbeat > self.stale_after:
            return True
        host, _, rest = owner.partition(":")
        if host != self.host:
            return False
        try:
            os.kill(int(rest.partition(":")[0]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError):
            return False
        return False

    def beat(self) -> None:
        """Refresh the heartbeat of this worker's running runs and pinned queued runs."""
        self._write(
            f"UPDATE runs SET heartbeat = ? WHERE owner = ? AND {_OWNED}",
            (time.time(), self.owner),
        )

    def reap(self) -> int:
        """Mark the runs of gone processes interrupted (pinned queued ones would wait forever)."""
        owners = self._db().execute(
            f"SELECT owner, max(heartbeat) FROM runs WHERE {_OWNED} GROUP BY owner"
        )
        return sum(
            self._interrupt("owner = ?", (owner,))
            for owner, heartbeat in owners.fetchall()
            if self._gone(owner, heartbeat)
        )

    def interrupt_own(self) -> int:
        """Mark this worker's running and pinned queued runs interrupted; return how many."""
        return self._interrupt("owner = ?", (self.owner,))

    def purge(self) -> int:
        """Delete finished runs older than the retention time; return how many."""
        cur = self._write(
            "DELETE FROM runs WHERE state = 'done' AND updated < ?",
            (time.time() - self.retention,),
        )
        return cur.rowcount


def private(path: str) -> None:
    """Make the run file (and its -wal and -shm files) readable by this user only.

    A new file is created 0600 whatever the umask; SQLite gives the -wal and -shm files the
    mode of the main file. A file an older version left readable to others is narrowed.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    for name in (path, path + "-wal", path + "-shm"):
        with contextlib.suppress(OSError):  # gone, or another user's: SQLite says so itself
            if os.stat(name).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                os.chmod(name, 0o600)
