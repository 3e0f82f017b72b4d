"""The run scheduler of one worker: its run slots, its async runs, and a record of every run.

Each run takes a slot (a full worker answers 503 with ``Retry-After``); an async run is stored
(``connector.server.runs``) and run on the worker's threads, with heartbeats so that a run
whose worker died reads as ``interrupted``. Every run leaves one log line and its metrics.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

from connector.engine import notices, runner
from connector.errors import ConnectorError, InternalError, TemporaryFailure
from connector.errors import http_status as status_of
from connector.server import intake
from connector.server.runs import RunStore
from connector.server.settings import Settings
from connector.transport.connection import Connection, env_values

log = logging.getLogger("connector.server")


class Scheduler:
    """Runs actions within the worker's slots, and records each run (log line and metrics)."""

    def __init__(self, settings: Settings) -> None:
        # prometheus_client reads PROMETHEUS_MULTIPROC_DIR when imported: serving sets it first.
        from connector.server.metrics import Metrics

        self.settings = settings
        self.slots = threading.BoundedSemaphore(settings.concurrency)
        self.pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="connector-run")
        self.futures: set[Future] = set()
        self.store = None  # with runs_url, async runs go to PostgreSQL instead (queued.py)
        if not settings.runs_url:
            self.store = RunStore(
                settings.runs_db, retention=settings.run_retention, heartbeat=settings.heartbeat
            )
        self.metrics = Metrics()
        # The server's own connection settings, read once like its other settings: seven
        # environment lookups and a cache key on every call were a measurable part of a call.
        self.environment = env_values()
        self._default: Connection | None = None
        self._stop = threading.Event()
        self._beats: threading.Thread | None = None
        self._lock = threading.Lock()

    def connection(self, req) -> Connection | dict:
        """Return the connection of a request: a tenant's, or the server's own (coerced once)."""
        conn = intake.connection_for(req, self.settings, self.environment)
        if conn is not None:
            return conn
        if self._default is None:
            try:
                self._default = runner.resolve_connection(self.environment)
            except ConnectorError:
                return dict(self.environment)  # the runner says what is wrong, with the form's
        return self._default

    def slot(self) -> None:
        """Take a run slot, or raise ``overloaded`` (503 with Retry-After) when all are busy."""
        if not self.slots.acquire(blocking=False):
            self.metrics.rejected.inc()
            raise TemporaryFailure(
                f"All {self.settings.concurrency} run slots of this worker are busy; retry "
                f"after {self.settings.busy_retry_after} s.",
                type="overloaded",
                retry_after=self.settings.busy_retry_after,
            )

    def execute(
        self, kind: str, action: str, work, request_id: str, heard: list | None = None
    ) -> tuple[int, Any]:
        """Call ``work(on_attempts)`` (the slot is held); return (HTTP status, document).

        ``work`` passes ``on_attempts`` to the runner, which tells it the HTTP requests a
        successful run took. The run is logged and counted; its warnings go to ``heard`` and
        to one JSON log line with the request id.
        """
        start = time.perf_counter()
        sent: list[int] = []
        heard = [] if heard is None else heard
        try:
            with notices.heard(heard.append):
                doc, status, outcome = work(sent.append), 200, "ok"
            attempts, upstream_id = sum(sent), None
        except ConnectorError as exc:
            status, outcome = status_of(exc), exc.type
            attempts, upstream_id = exc.attempts, exc.request_id
            doc = {"error": exc.to_dict()}
        except Exception as exc:  # a bug in the scheduler: an error object, never a traceback
            err = InternalError(f"Internal error: {type(exc).__name__}.")
            status, outcome, attempts, upstream_id = 500, err.type, None, None
            doc = {"error": err.to_dict()}
        finally:
            self.slots.release()
        seconds = time.perf_counter() - start
        if heard:
            line = {"event": "warnings", "action": action, "request_id": request_id}
            log.warning("%s", json.dumps({**line, "warnings": heard}, ensure_ascii=False))
        if kind != "dry-run":
            self.metrics.observe(action, outcome, seconds, attempts or 0)
        if log.isEnabledFor(logging.INFO):
            line = json.dumps(
                {
                    "event": kind,
                    "action": action,
                    "outcome": outcome,
                    "status": status,
                    "attempts": attempts,
                    "duration_ms": round(seconds * 1000, 1),
                    "request_id": request_id,
                    "upstream_request_id": upstream_id,
                }
            )
            # log.info would also walk the stack for the caller's file and line, which the
            # line does not show; on a busy worker that walk is a measurable part of a call.
            log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, line, None, None))
        return status, doc

    def submit(
        self, action: str, form: dict, conn: Connection | dict, request_id: str, **key: str | None
    ) -> tuple[str, bool]:
        """Start an async run (the slot is held); return (its id, True).

        ``key`` is the call's idempotency (``scope``, ``idem_key``): a key used before returns
        (that run's id, False) and starts nothing.
        """
        run_id, created = self.store.create(action, form, **key)
        if not created:
            return run_id, False
        self._heartbeats()

        def work() -> None:
            heard: list[dict] = []
            status, doc = self.execute(
                "async-run",
                action,
                lambda sent: runner.run(action, form, conn, on_attempts=sent),
                request_id,
                heard,
            )
            self.store.finish(run_id, status, doc, warnings=heard)

        future = self.pool.submit(work)
        self.futures.add(future)
        future.add_done_callback(self.futures.discard)
        return run_id, True

    def _heartbeats(self) -> None:
        with self._lock:
            if self._beats is None:
                self._beats = threading.Thread(
                    target=self._beat, name="connector-heartbeat", daemon=True
                )
                self._beats.start()

    def _beat(self) -> None:
        """Refresh this worker's runs' heartbeat, and purge old runs, until drained."""
        last_purge = 0.0
        while not self._stop.wait(self.settings.heartbeat):
            try:
                self.store.beat()
                if time.time() - last_purge > 60:
                    self.store.purge()
                    last_purge = time.time()
            except Exception as exc:  # a locked or full disk must not stop the beats
                log.warning("run store: %s", type(exc).__name__)

    def drain(self, timeout: float | None = None) -> int:
        """Wait for in-flight async runs (SIGTERM); mark the rest interrupted; return that count."""
        timeout = self.settings.drain_seconds if timeout is None else timeout
        wait_futures(list(self.futures), timeout=timeout)
        self._stop.set()
        self.metrics.close()
        left = self.store.interrupt_own() if self.futures else 0
        self.pool.shutdown(wait=False, cancel_futures=True)
        return left
