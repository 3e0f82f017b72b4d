"""The action server: the connector over HTTP (a Falcon WSGI app; ``serving.py`` runs it).

Routes are JSON in and out (``resources``); a failure is the error object ``{"error": {...}}``
with the HTTP status of its type (``answers``). Another module adds routes through its
``"module:function"`` in ``ROUTE_MODULES``; ``create_app`` calls ``function(app, settings)``.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from importlib import import_module

import falcon

from connector.errors import ConnectorError, Refused
from connector.server import answers, intake
from connector.server.resources import (
    Actions,
    Describe,
    Document,
    DryRun,
    Health,
    MetricsPage,
    Options,
    Run,
    RunResult,
    StartRun,
)
from connector.server.scheduler import Scheduler
from connector.server.settings import Settings, read_tokens
from connector.transport import registry

__all__ = ["ROUTE_MODULES", "App", "Settings", "create_app", "read_tokens"]

# Import paths ("module:function") of route contributors; each is called as fn(app, settings).
ROUTE_MODULES: tuple[str, ...] = ("connector.server.page:add_routes",)


class _Auth:
    """Bearer tokens on every route but public ones; constant-time comparison."""

    def __init__(self, settings: Settings) -> None:
        self.tokens = [t.encode() for t in settings.tokens]
        self.enabled = settings.auth
        self.trusted_proxies = intake.networks(settings.trusted_proxies)

    def process_request(self, req, resp) -> None:
        req.context.request_id = intake.request_id(req)
        resp.set_header("X-Request-Id", req.context.request_id)
        # Every answer is JSON, text or the page's own types: never sniffed as something else.
        resp.set_header("X-Content-Type-Options", "nosniff")
        intake.trust_forwarding(req, self.trusted_proxies)

    def process_resource(self, req, resp, resource, params) -> None:
        if not self.enabled or getattr(resource, "public", False):
            return
        scheme, _, token = (req.get_header("Authorization") or "").partition(" ")
        given = token.strip().encode()
        ok = False
        for t in self.tokens:  # no early exit: the time taken does not say which one matched
            ok |= hmac.compare_digest(given, t)
        if scheme.lower() != "bearer" or not ok:
            resp.set_header("WWW-Authenticate", 'Bearer realm="connector"')
            raise Refused(
                "Send the server's token as `Authorization: Bearer <token>`"
                + (" (the one given is not valid)." if given else "."),
                type="unauthorized",
            )


class App(falcon.App):
    """The Falcon app, with its scheduler (run slots, async runs, metrics) at hand."""

    scheduler: Scheduler

    def __call__(self, env: dict, start_response):
        result = super().__call__(env, start_response)
        if env.get(intake.CLOSE):
            # A body left unread: the answer says "Connection: close", and the server closes
            # (gunicorn's response, whose start_response this is, before it sends the headers).
            close = getattr(getattr(start_response, "__self__", None), "force_close", None)
            if close is not None:
                close()
        return result


def create_app(settings: Settings | None = None, routes: Sequence[str] = ROUTE_MODULES) -> App:
    """Return the WSGI app with every route, those of the ``routes`` contributors included."""
    settings = settings or Settings.from_env()
    scheduler = Scheduler(settings)
    registry.limit_sessions(settings.max_sessions)
    app = App(middleware=[_Auth(settings)])
    app.req_options.auto_parse_form_urlencoded = False
    app.scheduler = scheduler  # for the server's hooks (drain on SIGTERM) and tests
    app.add_error_handler(Exception, answers.on_any_error)
    app.add_error_handler(falcon.HTTPError, answers.on_http_error)
    app.add_error_handler(ConnectorError, answers.on_connector_error)
    app.add_route("/healthz", Health(scheduler))
    app.add_route("/metrics", MetricsPage(scheduler))
    app.add_route("/openapi.json", Document(swagger=False))
    app.add_route("/swagger.json", Document(swagger=True))
    app.add_route("/actions", Actions())
    app.add_route("/actions/{action}", Describe())
    app.add_route("/actions/{action}/options/{field}", Options(scheduler))
    app.add_route("/actions/{action}/run", Run(scheduler))
    app.add_route("/actions/{action}/dry-run", DryRun(scheduler))
    app.add_route("/actions/{action}/runs", StartRun(scheduler))
    app.add_route("/runs/{run_id}", RunResult(scheduler))
    if settings.runs_url:  # these two routes go to the shared queue (replacing the above)
        import_module("connector.server.queued").add_routes(app, settings)
    for path in routes:
        module, _, name = path.partition(":")
        getattr(import_module(module), name or "add_routes")(app, settings)
    return app
