"""``python -m connector worker``: run the queued async runs of ``CONNECTOR_RUNS_URL``.

A procrastinate worker: it takes jobs from PostgreSQL, runs each with the connection of its own
environment (``OPENAI_API_KEY`` and the rest, as the CLI reads them), and stores the result in
the run's row (``pgruns``). Beside it, a loop hands the jobs of dead workers (no heartbeat for
``CONNECTOR_WORKER_STALLED_AFTER`` s) to the others, and deletes finished runs after the
retention time. While PostgreSQL is down the worker waits and reconnects.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from connector.engine import runner
from connector.errors import (
    ConnectorError,
    InternalError,
    InvalidInput,
    TemporaryFailure,
    http_status,
)
from connector.server.callbacks import deliver
from connector.server.pgruns import CALLBACK_TASK, RUN_TASK, PgRunStore, retrying
from connector.server.settings import Settings
from connector.transport.connection import env_values

log = logging.getLogger("connector.worker")


@dataclass(frozen=True)
class WorkerSettings:
    """A worker's settings; ``from_env`` reads ``CONNECTOR_*`` variables."""

    runs_url: str = field(default="", repr=False)
    concurrency: int = Settings.concurrency  # runs at once: as many as a server's worker
    pool_size: int = Settings.runs_pool_size  # PostgreSQL connections for the runs' rows
    heartbeat: float = 10.0  # seconds between heartbeats
    stalled_after: float = 30.0  # a worker without a heartbeat this long is dead
    check_every: float = 10.0  # seconds between looks for dead workers' runs
    poll: float = 2.0  # seconds between polls (besides LISTEN/NOTIFY): delayed retries
    max_attempts: int = 3  # attempts of a run (workers dying on it) before it is interrupted
    run_retention: float = 86400.0
    drain_seconds: float = 30.0
    callback_attempts: int = 8
    callback_backoff: float = 2.0  # exponential: about 2, 4, 8... seconds between attempts

    @classmethod
    def from_env(cls, environ: Any = None, **overrides: Any) -> WorkerSettings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {"runs_url": env.get("CONNECTOR_RUNS_URL", "")}
        for name, var in (
            ("concurrency", "CONNECTOR_WORKER_CONCURRENCY"),
            ("pool_size", "CONNECTOR_RUNS_POOL_SIZE"),
            ("heartbeat", "CONNECTOR_WORKER_HEARTBEAT"),
            ("stalled_after", "CONNECTOR_WORKER_STALLED_AFTER"),
            ("check_every", "CONNECTOR_WORKER_CHECK_EVERY"),
            ("poll", "CONNECTOR_WORKER_POLL"),
            ("max_attempts", "CONNECTOR_RUN_MAX_ATTEMPTS"),
            ("run_retention", "CONNECTOR_RUN_RETENTION"),
            ("drain_seconds", "CONNECTOR_SERVER_DRAIN_SECONDS"),
            ("callback_attempts", "CONNECTOR_CALLBACK_ATTEMPTS"),
            ("callback_backoff", "CONNECTOR_CALLBACK_BACKOFF"),
        ):
            if env.get(var):
                kind = type(getattr(cls, name))
                try:
                    values[name] = kind(float(env[var]))
                except ValueError:
                    raise InvalidInput(f"{var}: expected a number, got {env[var]!r}.") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not values["runs_url"]:
            raise InvalidInput(
                "No run queue: set CONNECTOR_RUNS_URL=postgresql://... (the same as the servers')"
                " or pass --runs-url."
            )
        return cls(**values)


def interrupted(attempts: int) -> TemporaryFailure:
    """Return the error of a run whose workers died on it ``attempts`` times."""
    return TemporaryFailure(
        f"The run was cut short {attempts} times: the workers running it stopped before it "
        "finished (CONNECTOR_RUN_MAX_ATTEMPTS). Start the run again.",
        type="interrupted",
    )


@dataclass
class Steadiness:
    """Whether a worker may take silent peers for dead: only after a steady database.

    While PostgreSQL is down or restarting no worker can write its heartbeat, so right after it
    comes back every peer looks stalled, and retrying their jobs would spend the attempts of
    runs that are alive. A worker judges its peers only when the database has been up, and has
    answered this worker promptly, for ``grace`` seconds (peers' pools reconnect with backoff).
    """

    grace: float
    slow: float  # an answer slower than this means the database was out of reach
    since: float = float("-inf")  # monotonic time since when answers came promptly

    def saw(self, answered: bool, took: float, uptime: float, now: float) -> bool:
        """Note one look at the database; return True when peers may be judged now."""
        if not answered or took > self.slow:
            self.since = now
            return False
        return min(uptime, now - self.since) >= self.grace


class Runs:
    """What a worker process does with a run: claim, run, store; and deliver callbacks."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.store = PgRunStore(
            settings.runs_url,
            retention=settings.run_retention,
            pool_size=settings.pool_size,
        )
        self.stopping = threading.Event()
        environment = env_values()
        try:  # coerced once; a bad setting is each run's error, worded by the runner
            self.connection: Any = runner.resolve_connection(environment)
        except ConnectorError:
            self.connection = environment

    def run(self, run_id: str) -> None:
        """Run one queued run (a procrastinate task: called again after a worker died)."""
        claim = retrying(lambda: self.store.claim(run_id))
        if claim is None:  # already done by another worker, or purged
            return
        log.info(json.dumps({"event": "run-started", "run_id": run_id, "attempt": claim.attempts}))
        start = time.perf_counter()
        heard: list[dict] = []
        if claim.attempts > self.settings.max_attempts:
            err = interrupted(claim.attempts - 1)
            status, doc, outcome = http_status(err), {"error": err.to_dict()}, err.type
        else:
            try:
                doc = runner.run(claim.action, claim.form, self.connection, on_warning=heard.append)
                status, outcome = 200, "ok"
            except ConnectorError as exc:
                status, outcome, doc = http_status(exc), exc.type, {"error": exc.to_dict()}
            except Exception as exc:  # a bug: an error object, never a traceback
                err = InternalError(f"Internal error: {type(exc).__name__}.")
                status, outcome, doc = 500, err.type, {"error": err.to_dict()}
        stored = retrying(lambda: self.store.finish(run_id, status, doc, heard))
        line = {
            "event": "queued-run",
            "run_id": run_id,
            "action": claim.action,
            "outcome": outcome,
            "status": status,
            "attempt": claim.attempts,
            "stored": stored,  # False: another worker's completion came first
            "duration_ms": round((time.perf_counter() - start) * 1000, 1),
            "request_id": claim.request_id,
        }
        if heard:
            line["warnings"] = heard
        log.info(json.dumps(line, ensure_ascii=False))

    def callback(self, run_id: str) -> None:
        """Deliver a finished run's callback (raises to be retried with backoff)."""
        deliver(self.store, run_id)

    async def side_loop(self, app) -> None:
        """Purge old runs (from the start), hand dead workers' jobs to the living, until cancelled.

        The purge needs no steady database: it runs at start-up and then every minute (or
        retention time, if shorter), checked every ``check_every`` s.
        """
        last_purge = float("-inf")
        purge_every = min(60.0, self.settings.run_retention)
        steady = Steadiness(
            grace=2 * self.settings.stalled_after,
            # A peer blocked this long has missed enough heartbeats to look stalled.
            slow=max(
                self.settings.stalled_after - self.settings.heartbeat, self.settings.heartbeat
            ),
        )
        while True:
            if time.monotonic() - last_purge >= purge_every:
                try:
                    await asyncio.to_thread(self.store.purge)
                    last_purge = time.monotonic()
                except Exception as exc:  # the database is down: the next look tries again
                    log.warning("worker: purge: %s", type(exc).__name__)
            await asyncio.sleep(self.settings.check_every)
            began = time.monotonic()
            try:
                uptime = await asyncio.to_thread(self.store.uptime)
            except Exception as exc:  # the database is down: judge nobody until it is steady
                steady.saw(False, 0.0, 0.0, time.monotonic())
                log.warning("worker: side loop: %s", type(exc).__name__)
                continue
            if not steady.saw(True, time.monotonic() - began, uptime, time.monotonic()):
                continue
            try:
                stalled = await app.job_manager.get_stalled_jobs(
                    seconds_since_heartbeat=self.settings.stalled_after
                )
                for job in stalled:
                    with contextlib.suppress(Exception):  # another worker took it first
                        await app.job_manager.retry_job(job)
                        log.info(json.dumps({"event": "stalled-job", "job": job.id}))
                orphans = await asyncio.to_thread(
                    self.store.requeue_orphans, 2 * self.settings.stalled_after
                )
                for run_id in orphans:
                    log.info(json.dumps({"event": "requeued-run", "run_id": run_id}))
            except Exception as exc:  # the database is down: the worker loop reconnects
                log.warning("worker: side loop: %s", type(exc).__name__)


def make_app(settings: WorkerSettings, runs: Runs):
    """Return the procrastinate App of a worker, with the run and callback tasks."""
    import procrastinate

    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=settings.runs_url, kwargs={"connect_timeout": 3}
        )
    )
    app.task(name=RUN_TASK)(runs.run)
    retry = procrastinate.RetryStrategy(
        max_attempts=settings.callback_attempts, exponential_wait=settings.callback_backoff
    )
    app.task(name=CALLBACK_TASK, retry=retry)(runs.callback)
    return app


async def work(settings: WorkerSettings) -> None:
    """Run the worker until SIGTERM or SIGINT; reconnect while the database is down."""
    runs = Runs(settings)
    app = make_app(settings, runs)
    loop = asyncio.get_running_loop()
    # Sync tasks run in the loop's default executor: one thread per run slot, and some spare.
    loop.set_default_executor(ThreadPoolExecutor(settings.concurrency + 4, "connector-worker"))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    wait = 0.5
    while not stop.is_set():
        try:
            async with app.open_async():
                await asyncio.to_thread(runs.store.ensure_schema)
                log.warning(json.dumps({"event": "worker-ready", "pid": os.getpid()}))
                wait = 0.5
                await _until_stopped(app, runs, settings, stop)
        except Exception as exc:
            log.warning(
                "worker: the run queue cannot be reached (%s); reconnecting in %.1f s",
                type(exc).__name__,
                wait,
            )
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
        wait = min(5.0, wait * 2)
    runs.stopping.set()
    await asyncio.to_thread(runs.store.close)


async def _until_stopped(app, runs: Runs, settings: WorkerSettings, stop: asyncio.Event) -> None:
    worker = asyncio.create_task(
        app.run_worker_async(
            concurrency=settings.concurrency,
            delete_jobs="always",  # a job holds only a run id; the run's row is the record
            update_heartbeat_interval=settings.heartbeat,
            stalled_worker_timeout=settings.stalled_after,
            fetch_job_polling_interval=settings.poll,
            shutdown_graceful_timeout=settings.drain_seconds,
            install_signal_handlers=False,
        )
    )
    side = asyncio.create_task(runs.side_loop(app))
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({worker, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        side.cancel()
        stopper.cancel()
        if not worker.done():
            worker.cancel()  # procrastinate stops gracefully: running jobs may finish
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    # The worker returns by itself only when a part of it failed (the database went away).
    if not stop.is_set():
        raise ConnectionError("the worker stopped")


def add_args(w: argparse.ArgumentParser) -> None:
    """The ``worker`` command's arguments."""
    w.add_argument("--runs-url", metavar="URL", help="PostgreSQL URL (CONNECTOR_RUNS_URL)")
    w.add_argument(
        "--concurrency", type=int, help=f"runs at once (default {WorkerSettings.concurrency})"
    )
    w.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the worker (``python -m connector worker``)."""
    try:
        import procrastinate  # noqa: F401
    except ImportError as exc:
        raise InvalidInput.missing_extra("The worker", "server,postgres", exc) from None
    settings = WorkerSettings.from_env(runs_url=args.runs_url, concurrency=args.concurrency)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    # psycopg's pool logs every failed connection attempt; the worker logs one line per retry.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    for name, level in (("connector", logging.INFO), ("procrastinate", logging.WARNING)):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False
    asyncio.run(work(settings))
    return 0
