"""The run scheduler of one worker: its run slots, its async runs, and a record of every run.

Each run takes a slot (a sync call to a full worker answers 503 with ``Retry-After``). An async
run is queued in the run store (``connector.server.runs``) and waits there for a slot: each
worker process has a queue thread that claims queued runs while it has free slots (woken by
its own submits and finished runs, and looking every ``QUEUE_POLL`` s for runs queued by the
other workers or before a restart). It also sends the heartbeats that tell a live worker's
runs from those of a dead one. Every run leaves one log line and its metrics.
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
from connector.server.idempotency import new_run_id
from connector.server.runs import Claim, RunStore, interrupted_error
from connector.server.settings import Settings
from connector.transport.connection import Connection, env_values

log = logging.getLogger("connector.server")

QUEUE_POLL = 1.0  # seconds between looks for runs that other processes queued
CLAIM_BATCH = 64  # queued runs claimed in one transaction, at most


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
                settings.runs_db,
                retention=settings.run_retention,
                heartbeat=settings.heartbeat,
                max_queued=settings.max_queued,
                retry_after=settings.busy_retry_after,
            )
        self.metrics = Metrics()
        # The server's own connection settings, read once like its other settings: seven
        # environment lookups and a cache key on every call were a measurable part of a call.
        self.environment = env_values()
        self._default: Connection | None = None
        # The connections of queued runs that came with a tenant's key: in memory only.
        self.tenants: dict[str, Connection | dict] = {}
        self._wake = threading.Event()
        self._backlog = False  # queued runs may be waiting for a slot: a freed one wakes the queue
        self._draining = threading.Event()
        self._stop = threading.Event()
        self._claiming = threading.Lock()
        if self.store is not None:
            threading.Thread(target=self._queue, name="connector-queue", daemon=True).start()

    def connection(self, req) -> Connection | dict:
        """Return the connection of a request: a tenant's, or the server's own (coerced once)."""
        conn = self.tenant(req)
        return conn if conn is not None else self.own_connection()

    def tenant(self, req) -> dict | None:
        """Return the connection a request brings (a tenant's key or Base URL), or None."""
        return intake.connection_for(req, self.settings, self.environment)

    def own_connection(self) -> Connection | dict:
        """Return the server's own connection (its environment), coerced once."""
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
            if self._backlog:
                self._wake.set()
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
        self,
        action: str,
        form: dict,
        tenant: dict | None,
        request_id: str,
        **key,
    ) -> tuple[str, bool]:
        """Queue an async run; return (its id, True). It starts when a slot is free.

        ``tenant`` is the connection the call brought (a tenant's key), kept in this process's
        memory only: no other process can start that run. ``key`` is whose run it is and its
        idempotency (``caller``, ``idem_key``): a key used before returns (that run's id, False).
        """
        run_id = new_run_id()
        if tenant is not None:
            self.tenants[run_id] = tenant
        try:
            given, created = self.store.create(
                action,
                form,
                pinned=tenant is not None,
                request_id=request_id,
                run_id=run_id,
                **key,
            )
        except BaseException:
            self.tenants.pop(run_id, None)
            raise
        if created:
            self._wake.set()
        else:
            self.tenants.pop(run_id, None)
        return given, created

    def _queue(self) -> None:
        """Claim queued runs for free slots, beat, purge: the queue thread, until drained.

        It starts with the worker, and purges at once and then every minute (or retention
        time, if shorter), whatever the traffic.
        """
        last_beat = last_purge = float("-inf")
        purge_every = min(60.0, self.settings.run_retention)
        while not self._stop.is_set():
            self._wake.wait(min(QUEUE_POLL, self.settings.heartbeat))
            self._wake.clear()
            try:
                if time.monotonic() - last_beat >= self.settings.heartbeat:
                    self.store.beat()
                    last_beat = time.monotonic()
                if time.monotonic() - last_purge >= purge_every:
                    self.store.reap()
                    self.store.purge()
                    last_purge = time.monotonic()
                with self._claiming:
                    while not self._draining.is_set() and self._dispatch():
                        pass
            except Exception as exc:  # a locked or full disk must not stop the queue
                log.warning("run store: %s", type(exc).__name__)

    def _dispatch(self) -> bool:
        """Start queued runs in the free slots; return True when there may be more to start."""
        if not self.store.has_queued():
            self._backlog = False
            return False
        taken = 0
        while taken < CLAIM_BATCH and self.slots.acquire(blocking=False):
            taken += 1
        self._backlog = True  # set before claiming: a slot freed meanwhile wakes the queue
        if not taken:
            return False
        claims: list[Claim] = []
        try:
            claims = self.store.claim(taken)
        finally:
            for _ in range(taken - len(claims)):
                self.slots.release()
        for claim in claims:
            self._start(claim)
        self._backlog = len(claims) == taken  # fewer: none is waiting for this process now
        return self._backlog

    def _start(self, claim: Claim) -> None:
        """Run a claimed run on the pool (its slot is held)."""
        conn = self.tenants.pop(claim.id, None) if claim.pinned else self.own_connection()

        def work() -> None:
            if conn is None:  # a tenant's run whose connection this process never had
                self.slots.release()
                err = interrupted_error()
                self.store.finish(claim.id, status_of(err), {"error": err.to_dict()})
                return
            heard: list[dict] = []
            status, doc = self.execute(
                "async-run",
                claim.action,
                lambda sent: runner.run(claim.action, claim.form, conn, on_attempts=sent),
                claim.request_id or "",
                heard,
            )
            self.store.finish(claim.id, status, doc, warnings=heard)

        future = self.pool.submit(work)
        self.futures.add(future)
        future.add_done_callback(self.futures.discard)

    def drain(self, timeout: float | None = None) -> int:
        """Stop claiming; wait for in-flight async runs (SIGTERM); return how many were cut.

        The runs still going, and the queued runs with a tenant's key (which no other process
        can start), are marked interrupted; other queued runs wait for the next start.
        """
        timeout = self.settings.drain_seconds if timeout is None else timeout
        self._draining.set()
        with self._claiming:  # a claim under way has started its runs
            pass
        wait_futures(list(self.futures), timeout=timeout)
        self._stop.set()
        self._wake.set()
        self.metrics.close()
        left = self.store.interrupt_own() if self.store is not None else 0
        self.pool.shutdown(wait=False, cancel_futures=True)
        return left
