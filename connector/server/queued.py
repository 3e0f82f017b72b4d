"""The async-run routes in scale-out mode: queue in PostgreSQL, read back on any server.

``POST /actions/{action}/runs`` validates the form, stores the run and its job (``pgruns``) and
answers 202 once both are committed; it never runs anything (``worker.py`` does).
``GET /runs/{id}`` answers 202 while the run is queued or running, then its result.
"""

from __future__ import annotations

from connector.engine import runner
from connector.server import answers, idempotency
from connector.server.callbacks import check_callback_url
from connector.server.idempotency import header_error
from connector.server.intake import (
    BASE_URL_HEADER,
    KEY_HEADER,
    read_form,
)
from connector.server.intake import action as action_named
from connector.server.pgruns import PgRunStore, unavailable
from connector.views.shapes import CALLBACK_HEADER


def _store_errors():
    """Return the exception classes that mean the database cannot be reached."""
    import psycopg
    import psycopg_pool
    from procrastinate.exceptions import ConnectorException

    return (psycopg.OperationalError, psycopg_pool.PoolTimeout, ConnectorException)


def refuse_per_call_connection(req, action: str) -> None:
    """Refuse a per-call key or Base URL: a queued run would have to store them."""
    for header in (KEY_HEADER, BASE_URL_HEADER):
        if (req.get_header(header) or "").strip():
            raise header_error(
                header,
                "not accepted on queued runs (this server stores runs in PostgreSQL, and never "
                f"stores a key). Call POST /actions/{action}/run with it instead, or let the "
                "workers use their own connection.",
            )


class QueuedStart:
    """``POST /actions/{action}/runs``: store the run and its job, answer 202."""

    def __init__(self, scheduler, store: PgRunStore) -> None:
        self.scheduler = scheduler
        self.store = store

    def on_post(self, req, resp, action: str) -> None:

        action_named(action)
        form = read_form(req, self.scheduler.settings)
        refuse_per_call_connection(req, action)
        key = idempotency.key_of(req)
        callback = (req.get_header(CALLBACK_HEADER) or "").strip() or None
        if callback is not None:
            check_callback_url(callback, CALLBACK_HEADER)
        # A bad form is refused now, with the server's own settings (the key is not needed).
        runner.prepare(action, form, self.scheduler.connection(req))
        caller = idempotency.caller_of(req)
        poll_after = self.scheduler.settings.poll_after
        try:
            run_id, created = self.store.create(
                action,
                form,
                caller=caller,
                idem_key=key,
                callback_url=callback,
                request_id=req.context.request_id,
            )
            # A retried POST: what a GET of that run answers now (its result, once done).
            run = None if created else self.store.get(run_id, caller)
        except _store_errors():
            raise unavailable() from None
        if created:
            answers.not_done(req, resp, run_id, action, "queued", poll_after)
        elif run is None:
            raise answers.unknown_run(run_id)
        else:
            answers.stored_run(req, resp, run, poll_after, attempts=run.attempts)


class QueuedResult:
    """``GET /runs/{id}``: 202 while queued or running, then the output or the error."""

    def __init__(self, scheduler, store: PgRunStore) -> None:
        self.scheduler = scheduler
        self.store = store

    def on_get(self, req, resp, run_id: str) -> None:
        run = None
        if idempotency.RUN_ID.match(run_id):
            try:
                run = self.store.get(run_id, idempotency.caller_of(req))
            except _store_errors():
                raise unavailable() from None
        if run is None:
            raise answers.unknown_run(run_id)
        poll_after = self.scheduler.settings.poll_after
        answers.stored_run(req, resp, run, poll_after, attempts=run.attempts)


def add_routes(app, settings) -> None:
    """Route async runs to PostgreSQL (called by ``create_app`` when ``runs_url`` is set)."""
    import logging

    # psycopg's pool logs every failed connection attempt; a 503 per call says it already.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    store = PgRunStore(
        settings.runs_url,
        retention=settings.run_retention,
        pool_size=settings.runs_pool_size,
        max_queued=settings.max_queued,
        retry_after=settings.busy_retry_after,
    )
    app.scheduler.queue = store
    app.add_route("/actions/{action}/runs", QueuedStart(app.scheduler, store))
    app.add_route("/runs/{run_id}", QueuedResult(app.scheduler, store))
