"""The async run store: SQLite in WAL mode, one file shared by the server's workers on a machine.

A run row holds the action, its state, and when done the HTTP status and the JSON document
(output or error object); never the form or the key. The worker running a run refreshes its
heartbeat; a ``running`` row whose worker is gone (its process died, or its heartbeat stopped)
reads as an ``interrupted`` error, so a run cut short by a restart never vanishes.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.errors import TemporaryFailure, http_status
from connector.server.idempotency import check_same, fingerprint

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    state TEXT NOT NULL,            -- running | done
    status INTEGER,                 -- the HTTP status of the result
    result TEXT,                    -- the output or {"error": {...}}, as JSON
    owner TEXT NOT NULL,            -- host:pid:nonce of the worker running it
    created REAL NOT NULL,
    updated REAL NOT NULL,
    heartbeat REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_updated ON runs (updated);
"""
# Added later: a file of an older version gets them (ALTER TABLE), its rows without a key.
_IDEMPOTENCY = {
    "scope": "TEXT NOT NULL DEFAULT ''",  # SHA-256 of the caller's token (idempotency.scope_of)
    "idem_key": "TEXT",
    "fingerprint": "TEXT",  # SHA-256 of what the call asked for
}
# Added later too: the run's warnings (JSON), said in the result's X-Connector-Warnings.
_LATER = {"warnings": "TEXT"}
_IDEM_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS runs_idem ON runs (scope, idem_key)"
    " WHERE idem_key IS NOT NULL"
)


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


def interrupted_error() -> TemporaryFailure:
    """Return the error a run reads as when its worker stopped before it finished."""
    return TemporaryFailure(
        "The run was cut short: the server running it stopped or restarted before it finished. "
        "Start the run again.",
        type="interrupted",
    )


class RunStore:
    """Runs in one SQLite file; safe across threads (a connection per thread) and processes."""

    def __init__(
        self, path: str | Path, *, retention: float = 86400.0, heartbeat: float = 2.0
    ) -> None:
        self.path = str(path)
        self.retention = retention
        self.heartbeat = heartbeat
        self.stale_after = max(5 * heartbeat, 1.0)
        self.host = socket.gethostname()
        self._local = threading.local()
        self._pid = -1
        self.owner = ""
        db = self._db()
        db.executescript(_SCHEMA)
        have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        for name, kind in {**_IDEMPOTENCY, **_LATER}.items():
            if name not in have:
                # Another worker of the server may have added it first.
                with contextlib.suppress(sqlite3.OperationalError):
                    db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
        db.execute(_IDEM_INDEX)

    def _db(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # first use, or after a fork: a new owner, new connections
            self._pid = os.getpid()
            self.owner = f"{self.host}:{self._pid}:{uuid.uuid4().hex[:12]}"
            self._local = threading.local()
        db = getattr(self._local, "db", None)
        if db is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def create(
        self,
        action: str,
        form: dict | None = None,
        *,
        scope: str = "",
        idem_key: str | None = None,
    ) -> tuple[str, bool]:
        """Record a new running run; return (its id, True). The form itself is never stored.

        The id is unguessable: it is the capability to read the run. With ``idem_key``, a key
        already used in ``scope`` returns (the first run's id, False), or refuses a call that
        asked for another action or form (422), as ``PgRunStore.create`` does.
        """
        digest = fingerprint(action, form or {}) if idem_key else ""
        run_id = uuid.uuid4().hex
        now = time.time()
        db = self._db()
        row = db.execute(
            "INSERT INTO runs (id, action, state, owner, created, updated, heartbeat, scope,"
            " idem_key, fingerprint) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (scope, idem_key) WHERE idem_key IS NOT NULL DO NOTHING RETURNING id",
            (run_id, action, self.owner, now, now, now, scope, idem_key, digest or None),
        ).fetchone()
        if row is not None:
            return run_id, True
        first, given = db.execute(
            "SELECT id, fingerprint FROM runs WHERE scope = ? AND idem_key = ?", (scope, idem_key)
        ).fetchone()
        check_same(given, digest)
        return first, False

    def finish(self, run_id: str, status: int, result: Any, warnings: list | None = None) -> None:
        """Store a run's HTTP status and document, and its warnings (if any)."""
        said = json.dumps(warnings, ensure_ascii=False) if warnings else None
        self._db().execute(
            "UPDATE runs SET state = 'done', status = ?, result = ?, warnings = ?, updated = ?"
            " WHERE id = ?",
            (status, json.dumps(result, ensure_ascii=False), said, time.time(), run_id),
        )

    def get(self, run_id: str) -> Run | None:
        """Return a run, or None; a running run whose worker is gone is marked interrupted."""
        row = (
            self._db()
            .execute(
                "SELECT id, action, state, status, result, created, updated, owner, heartbeat,"
                " warnings FROM runs WHERE id = ?",
                (run_id,),
            )
            .fetchone()
        )
        if row is None:
            return None
        if row[2] == "running" and self._gone(row[7], row[8]):
            err = interrupted_error()
            self._db().execute(
                "UPDATE runs SET state = 'done', status = ?, result = ?, updated = ?"
                " WHERE id = ? AND state = 'running'",
                (http_status(err), json.dumps({"error": err.to_dict()}), time.time(), run_id),
            )
            return self.get(run_id)
        result = json.loads(row[4]) if row[4] is not None else None
        warnings = json.loads(row[9]) if row[9] else None
        return Run(row[0], row[1], row[2], row[3], result, row[5], row[6], warnings)

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
        """Refresh the heartbeat of this worker's running runs."""
        self._db().execute(
            "UPDATE runs SET heartbeat = ? WHERE owner = ? AND state = 'running'",
            (time.time(), self.owner),
        )

    def interrupt_own(self) -> int:
        """Mark this worker's running runs interrupted (it is stopping); return how many."""
        err = interrupted_error()
        cur = self._db().execute(
            "UPDATE runs SET state = 'done', status = ?, result = ?, updated = ?"
            " WHERE owner = ? AND state = 'running'",
            (http_status(err), json.dumps({"error": err.to_dict()}), time.time(), self.owner),
        )
        return cur.rowcount

    def purge(self) -> int:
        """Delete finished runs older than the retention time; return how many."""
        cur = self._db().execute(
            "DELETE FROM runs WHERE state = 'done' AND updated < ?",
            (time.time() - self.retention,),
        )
        return cur.rowcount
