"""The server's routes as Falcon resources: health, actions, describe, options, run, async runs.

Each call route reads its form and connection (``intake``), takes a run slot and runs the
action through the engine's facade (``scheduler``); documents are built on first request.
"""

from __future__ import annotations

from connector.engine import runner
from connector.engine.loader import load_manifest
from connector.errors import Refused
from connector.server import answers, idempotency, intake
from connector.server.health import Readiness
from connector.server.scheduler import Scheduler
from connector.transport.connection import Connection
from connector.views import openapi, swagger
from connector.views.docs import describe
from connector.views.shapes import CALLBACK_HEADER


class Health:
    """GET /healthz: readiness part by part (``health``), public, nothing secret; 503 if not."""

    public = True

    def __init__(self, scheduler: Scheduler) -> None:
        self.readiness = Readiness(scheduler)

    def on_get(self, req, resp) -> None:
        resp.status, resp.media = self.readiness.answer()


class Actions:
    def on_get(self, req, resp) -> None:
        resp.media = [
            {"id": a.id, "title": a.title, "description": a.description}
            for a in load_manifest().actions
        ]


class Describe:
    def on_get(self, req, resp, action: str) -> None:
        resp.media = describe(intake.action(action))


class _Call:
    """Base of the routes that call the runner within a slot."""

    kind = "run"

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def _inputs(self, req, action: str) -> tuple[dict, Connection | dict]:
        """Return the form and the connection of a call to a known action."""
        intake.action(action)
        return intake.read_form(req, self.scheduler.settings), self.scheduler.connection(req)

    def _answer(self, req, resp, action_id: str, work) -> None:
        self.scheduler.slot()
        heard: list[dict] = []
        status, doc = self.scheduler.execute(
            self.kind, action_id, work, req.context.request_id, heard
        )
        resp.status = status
        resp.media = doc
        answers.warnings_header(resp, heard)
        retry = doc.get("error", {}).get("retry_after") if status >= 400 else None
        if retry is not None:
            resp.set_header("Retry-After", str(max(1, round(retry))))


class Options(_Call):
    kind = "options"

    def on_get(self, req, resp, action: str, field: str) -> None:
        spec = intake.action(action)
        param = next((p for p in spec.parameters if p.name == field and p.options), None)
        if param is None:
            raise Refused(
                f"{spec.title} has no field '{field}' with options.", type="unknown_route"
            )
        conn = self.scheduler.connection(req)
        # Counted as a run of the action that lists the options (List Models).
        source = param.options.action
        self._answer(
            req,
            resp,
            source,
            lambda sent: runner.options(action, field, conn, on_attempts=sent),
        )


class Run(_Call):
    def on_post(self, req, resp, action: str) -> None:
        form, conn = self._inputs(req, action)
        self._answer(
            req, resp, action, lambda sent: runner.run(action, form, conn, on_attempts=sent)
        )


class DryRun(_Call):
    kind = "dry-run"

    def on_post(self, req, resp, action: str) -> None:
        form, conn = self._inputs(req, action)
        self._answer(req, resp, action, lambda sent: runner.prepare(action, form, conn))


class StartRun(_Call):
    def on_post(self, req, resp, action: str) -> None:
        intake.action(action)
        form = intake.read_form(req, self.scheduler.settings)
        tenant = self.scheduler.tenant(req)
        key = idempotency.key_of(req)
        if (req.get_header(CALLBACK_HEADER) or "").strip():
            raise idempotency.header_error(
                CALLBACK_HEADER,
                "not accepted by this server: it keeps async runs on one machine and makes no"
                " callbacks; nothing was started. Poll the run's Location instead, or use"
                " scale-out mode (CONNECTOR_RUNS_URL), whose workers call back.",
            )
        # A bad form or connection is refused now, not later.
        runner.prepare(action, form, tenant or self.scheduler.own_connection())
        caller = idempotency.caller_of(req)
        run_id, created = self.scheduler.submit(
            action, form, tenant, req.context.request_id, caller=caller, idem_key=key
        )
        poll_after = self.scheduler.settings.poll_after
        if created:
            answers.not_done(req, resp, run_id, action, "queued", poll_after)
            return
        # A retried POST: what a GET of that run answers now (its result, once it is done).
        run = self.scheduler.store.get(run_id, caller)
        if run is None:
            raise answers.unknown_run(run_id)
        answers.stored_run(req, resp, run, poll_after)


class RunResult:
    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def on_get(self, req, resp, run_id: str) -> None:
        run = None
        if idempotency.RUN_ID.match(run_id):
            run = self.scheduler.store.get(run_id, idempotency.caller_of(req))
        if run is None:
            raise answers.unknown_run(run_id)
        answers.stored_run(req, resp, run, self.scheduler.settings.poll_after)


class MetricsPage:
    """GET /metrics: the Prometheus text of this worker."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def on_get(self, req, resp) -> None:
        resp.content_type, resp.data = self.scheduler.metrics.render()


class Document:
    """The OpenAPI document, with this server's address added (an importer needs it)."""

    def __init__(self, swagger: bool) -> None:
        self.swagger = swagger
        self._doc: dict | None = None

    def on_get(self, req, resp) -> None:
        if self._doc is None:
            self._doc = swagger.document() if self.swagger else openapi.document()
        if self.swagger:
            where = {"host": req.forwarded_host, "schemes": [req.forwarded_scheme]}
            resp.media = {**self._doc, **where}
        else:
            resp.media = {**self._doc, "servers": [{"url": req.forwarded_prefix}]}
