"""The action server: the connector over HTTP (a Falcon WSGI app; ``serving.py`` runs it).

Routes are JSON in and out; a failure is the error object ``{"error": {...}}`` with the HTTP
status of its type (``errors.ERROR_TYPES``). Another module adds routes by appending
``"module:function"`` to ``ROUTE_MODULES``; ``create_app`` calls ``function(app, settings)``.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

import falcon

from . import runner
from .connection import Connection, env_values
from .errors import ConnectorError, InternalError, InvalidInput, Refused, TemporaryFailure
from .errors import http_status as status_of
from .manifest import load_manifest
from .runs import RunStore

log = logging.getLogger("connector.server")

# Import paths ("module:function") of route contributors; each is called as fn(app, settings).
ROUTE_MODULES: list[str] = ["connector.page:add_routes"]
# Paths that need no bearer token (besides resources whose class sets ``public = True``).
PUBLIC_PREFIXES: list[str] = []

TOKENS_ENV = "CONNECTOR_SERVER_TOKENS"
TOKEN_FILE_ENV = "CONNECTOR_SERVER_TOKEN_FILE"
KEY_HEADER = "X-OpenAI-Api-Key"
BASE_URL_HEADER = "X-OpenAI-Base-Url"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass(frozen=True)
class Settings:
    """The server's settings; ``from_env`` reads ``CONNECTOR_*`` variables."""

    tokens: tuple[str, ...] = field(default=(), repr=False)
    auth: bool = True
    runs_db: str = ".connector-runs.sqlite3"
    runs_url: str = field(default="", repr=False)  # PostgreSQL: queued runs (queued.py)
    run_retention: float = 86400.0  # seconds a finished async run stays readable
    heartbeat: float = 2.0  # seconds between a worker's heartbeats for its async runs
    max_body_bytes: int = 4 * 1024 * 1024
    max_json_depth: int = 64
    concurrency: int = 8  # runs in flight per worker (sync and async); more get 503
    busy_retry_after: int = 2  # Retry-After of a 503 when every slot is busy
    poll_after: int = 2  # Retry-After of a 202 while an async run is running
    drain_seconds: float = 30.0  # SIGTERM: how long in-flight runs may take to finish
    allowed_hosts: tuple[str, ...] = ()  # hosts a per-request Base URL may name (none: refused)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Return settings from the environment, then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {"tokens": read_tokens(env)}
        if env.get("CONNECTOR_RUNS_DB"):
            values["runs_db"] = env["CONNECTOR_RUNS_DB"]
        if env.get("CONNECTOR_ALLOWED_HOSTS"):
            values["allowed_hosts"] = _split(env["CONNECTOR_ALLOWED_HOSTS"])
        for name, var in (
            ("runs_url", "CONNECTOR_RUNS_URL"),
            ("run_retention", "CONNECTOR_RUN_RETENTION"),
            ("concurrency", "CONNECTOR_SERVER_CONCURRENCY"),
            ("max_body_bytes", "CONNECTOR_SERVER_MAX_BODY_BYTES"),
            ("drain_seconds", "CONNECTOR_SERVER_DRAIN_SECONDS"),
            ("heartbeat", "CONNECTOR_RUN_HEARTBEAT"),
        ):
            if env.get(var):
                kind = type(getattr(cls, name))
                values[name] = kind(float(env[var])) if kind is int else kind(env[var])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _split(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def read_tokens(env: Mapping[str, str], token_file: str | None = None) -> tuple[str, ...]:
    """Return the bearer tokens from CONNECTOR_SERVER_TOKENS and a token file (one a line)."""
    tokens = list(_split(env.get(TOKENS_ENV, "")))
    path = token_file or env.get(TOKEN_FILE_ENV)
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                tokens += [line.strip() for line in f if line.strip() and line[0] != "#"]
        except OSError as exc:
            raise InvalidInput(f"Cannot read the token file {path}: {exc.strerror}.") from None
    return tuple(tokens)


# -- errors -----------------------------------------------------------------------------------

_FALCON_TYPES = {
    404: "unknown_route",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


def _render(resp: falcon.Response, exc: ConnectorError) -> None:
    resp.status = status_of(exc)
    resp.media = {"error": exc.to_dict()}
    if exc.retry_after is not None:
        resp.set_header("Retry-After", str(max(1, round(exc.retry_after))))


def _on_connector_error(req, resp, exc: ConnectorError, params) -> None:
    _render(resp, exc)


def _on_http_error(req, resp, exc: falcon.HTTPError, params) -> None:
    kind = _FALCON_TYPES.get(exc.status_code, "bad_call")
    text = exc.description or exc.title or "The request was refused."
    if kind == "unknown_route":
        text = f"No route {req.method} {req.path}. See GET /openapi.json for the routes."
    elif kind == "method_not_allowed":
        text = f"{req.path} does not take {req.method}."
    _render(resp, Refused(text, type=kind))
    resp.status = exc.status_code
    for name, value in (exc.headers or {}).items():
        resp.set_header(name, value)


def _on_any_error(req, resp, exc: Exception, params) -> None:
    if isinstance(exc, falcon.HTTPError):
        _on_http_error(req, resp, exc, params)
        return
    # A bug: say what and where, never the message (it could hold a key or a prompt).
    log.error("internal error on %s %s: %s", req.method, req.path, type(exc).__name__)
    _render(resp, InternalError(f"Internal error: {type(exc).__name__}."))


# -- middleware -------------------------------------------------------------------------------


class _Auth:
    """Bearer tokens on every route but public ones; constant-time comparison."""

    def __init__(self, settings: Settings) -> None:
        self.tokens = [t.encode() for t in settings.tokens]
        self.enabled = settings.auth

    def process_request(self, req, resp) -> None:
        req.context.request_id = _request_id(req)
        resp.set_header("X-Request-Id", req.context.request_id)

    def process_resource(self, req, resp, resource, params) -> None:
        if not self.enabled or getattr(resource, "public", False):
            return
        if any(req.path.startswith(p) for p in PUBLIC_PREFIXES):
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


def _request_id(req) -> str:
    given = req.get_header("X-Request-Id")
    # 96 random bits: unique enough to find one call in the logs of every machine. (The random
    # module is reseeded in each forked worker.)
    return given if given and _REQUEST_ID.match(given) else f"{random.getrandbits(96):024x}"


# -- the body ---------------------------------------------------------------------------------


def read_form(req, settings: Settings) -> dict:
    """Return the JSON object in the body (``{}`` when empty), within the size and depth caps."""
    cap = settings.max_body_bytes
    length = req.content_length
    if length is not None and length > cap:
        _discard(req, cap)
        raise Refused(
            f"The body has {length} bytes; this server takes at most {cap}.", type="too_large"
        )
    raw = req.bounded_stream.read(cap + 1)
    if len(raw) > cap:
        _discard(req, cap)
        raise Refused(f"The body is larger than {cap} bytes, the server's cap.", type="too_large")
    if not raw.strip():
        return {}
    media = (req.content_type or "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise Refused(
            f"Send the form as JSON with `Content-Type: application/json` (got {media or 'none'}).",
            type="unsupported_media_type",
        )
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if hasattr(exc, "lineno") else ""
        raise Refused(f"The body is not valid JSON{where}.", type="bad_call") from None
    if not isinstance(doc, dict):
        raise Refused(
            f"The body must be a JSON object of form values, not a JSON {type(doc).__name__}.",
            type="bad_call",
        )
    # Nesting needs an opening bracket per level: most bodies have too few to be worth a walk.
    if raw.count(b"[") + raw.count(b"{") > settings.max_json_depth and (
        _depth(doc) > settings.max_json_depth
    ):
        raise Refused(
            f"The body is nested deeper than {settings.max_json_depth} levels.", type="bad_call"
        )
    return doc


def _discard(req, cap: int) -> None:
    """Read and drop a refused body (up to 16 caps), so the connection can serve the next call.

    gunicorn closes a keep-alive connection whose body was left unread, without telling the
    client, whose next call on it would then fail.
    """
    left = 16 * cap
    while left > 0:
        chunk = req.bounded_stream.read(min(left, 64 * 1024))
        if not chunk:
            return
        left -= len(chunk)


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend(
                (v, depth + 1) for v in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def connection_for(
    req, settings: Settings, environment: Mapping[str, str] | None = None
) -> dict | None:
    """Return the connection of a request: the server's environment, or a tenant's key/base URL.

    ``environment`` is the server's own settings (``env_values()``, read now when not given).
    """
    key = (req.get_header(KEY_HEADER) or "").strip()
    base = (req.get_header(BASE_URL_HEADER) or "").strip()
    if not key and not base:
        return None
    raw: dict[str, Any] = dict(env_values() if environment is None else environment)
    if base:
        if not settings.allowed_hosts:
            raise InvalidInput(
                f"{BASE_URL_HEADER}: this server takes no per-request Base URL. Its operator "
                "can allow some hosts with CONNECTOR_ALLOWED_HOSTS.",
                fields=[
                    {
                        "name": "base_url",
                        "label": "Base URL",
                        "message": "Base URL: not accepted per request by this server",
                    }
                ],
            )
        raw.pop("api_key", None)  # the server's own key never goes to a tenant's host
        raw["base_url"] = base
        raw["allowed_hosts"] = list(settings.allowed_hosts)
    if key:
        raw["api_key"] = key
    return raw


# -- runs -------------------------------------------------------------------------------------


class Engine:
    """Runs actions within the worker's slots, and records each run (log line and metrics)."""

    def __init__(self, settings: Settings) -> None:
        from .metrics import Metrics

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
        conn = connection_for(req, self.settings, self.environment)
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

    def execute(self, kind: str, action: str, work, request_id: str) -> tuple[int, Any]:
        """Call ``work(on_attempts)`` (the slot is held); return (HTTP status, document).

        ``work`` passes ``on_attempts`` to the runner, which tells it the HTTP requests a
        successful run took. The run is logged and counted.
        """
        start = time.perf_counter()
        sent: list[int] = []
        try:
            doc, status, outcome = work(sent.append), 200, "ok"
            attempts, upstream_id = sum(sent), None
        except ConnectorError as exc:
            status, outcome = status_of(exc), exc.type
            attempts, upstream_id = exc.attempts, exc.request_id
            doc = {"error": exc.to_dict()}
        except Exception as exc:  # a bug in the engine: an error object, never a traceback
            err = InternalError(f"Internal error: {type(exc).__name__}.")
            status, outcome, attempts, upstream_id = 500, err.type, None, None
            doc = {"error": err.to_dict()}
        finally:
            self.slots.release()
        seconds = time.perf_counter() - start
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

    def submit(self, action: str, form: dict, conn: Connection | dict, request_id: str) -> str:
        """Start an async run (the slot is held); return its id."""
        run_id = self.store.create(action)
        self._heartbeats()

        def work() -> None:
            status, doc = self.execute(
                "async-run",
                action,
                lambda sent: runner.run(action, form, conn, on_attempts=sent),
                request_id,
            )
            self.store.finish(run_id, status, doc)

        future = self.pool.submit(work)
        self.futures.add(future)
        future.add_done_callback(self.futures.discard)
        return run_id

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


# -- resources --------------------------------------------------------------------------------


_by_id: dict[str, Any] = {}  # action id -> Action, filled by create_app


def _action(action_id: str):
    action = _by_id.get(action_id)
    if action is None:
        known = ", ".join(_by_id)
        raise Refused(
            f"Unknown action '{action_id}'. Known actions: {known}.", type="unknown_route"
        )
    return action


class Health:
    public = True

    def on_get(self, req, resp) -> None:
        resp.media = {"status": "ok"}


class Actions:
    def on_get(self, req, resp) -> None:
        resp.media = [
            {"id": a.id, "title": a.title, "description": a.description}
            for a in load_manifest().actions
        ]


class Describe:
    def on_get(self, req, resp, action: str) -> None:
        from .docs import describe

        resp.media = describe(_action(action))


class _Call:
    """Base of the routes that call the runner within a slot."""

    kind = "run"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _inputs(self, req, action: str) -> tuple[dict, Connection | dict]:
        """Return the form and the connection of a call to a known action."""
        _action(action)
        return read_form(req, self.engine.settings), self.engine.connection(req)

    def _answer(self, req, resp, action_id: str, work) -> None:
        self.engine.slot()
        status, doc = self.engine.execute(self.kind, action_id, work, req.context.request_id)
        resp.status = status
        resp.media = doc
        retry = doc.get("error", {}).get("retry_after") if status >= 400 else None
        if retry is not None:
            resp.set_header("Retry-After", str(max(1, round(retry))))


class Options(_Call):
    kind = "options"

    def on_get(self, req, resp, action: str, field: str) -> None:
        spec = _action(action)
        param = next((p for p in spec.parameters if p.name == field and p.options), None)
        if param is None:
            raise Refused(
                f"{spec.title} has no field '{field}' with options.", type="unknown_route"
            )
        conn = self.engine.connection(req)
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


def absolute_location(req: falcon.Request, path: str) -> str:
    """Return ``path`` as the absolute URL the client reached (Power Automate polls only those).

    Behind a proxy, ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` (or ``Forwarded``) name it.
    """
    return req.forwarded_prefix + path


class StartRun(_Call):
    def on_post(self, req, resp, action: str) -> None:
        form, conn = self._inputs(req, action)
        runner.prepare(action, form, conn)  # a bad form or connection is refused now, not later
        self.engine.slot()
        try:
            run_id = self.engine.submit(action, form, conn, req.context.request_id)
        except BaseException:
            self.engine.slots.release()
            raise
        resp.status = 202
        location = absolute_location(req, f"/runs/{run_id}")
        resp.set_header("Location", location)
        resp.set_header("Retry-After", str(self.engine.settings.poll_after))
        resp.media = {"id": run_id, "action": action, "state": "running", "location": location}


class RunResult:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def on_get(self, req, resp, run_id: str) -> None:
        run = self.engine.store.get(run_id) if re.fullmatch(r"[0-9a-f]{32}", run_id) else None
        if run is None:
            raise Refused(
                f"No run '{run_id}': it never existed, or it is older than the retention time.",
                type="unknown_route",
            )
        if run.state == "running":
            resp.status = 202
            location = absolute_location(req, f"/runs/{run.id}")
            resp.set_header("Location", location)
            resp.set_header("Retry-After", str(self.engine.settings.poll_after))
            resp.media = {
                "id": run.id,
                "action": run.action,
                "state": "running",
                "location": location,
            }
            return
        resp.status = run.status or 500
        resp.media = run.result


class Metrics:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def on_get(self, req, resp) -> None:
        resp.content_type, resp.data = self.engine.metrics.render()


class Document:
    """The OpenAPI document, with this server's address added (an importer needs it)."""

    def __init__(self, swagger: bool) -> None:
        self.swagger = swagger
        self._doc: dict | None = None

    def on_get(self, req, resp) -> None:
        if self._doc is None:
            from . import openapi, swagger

            self._doc = swagger.document() if self.swagger else openapi.document()
        if self.swagger:
            where = {"host": req.forwarded_host, "schemes": [req.forwarded_scheme]}
            resp.media = {**self._doc, **where}
        else:
            resp.media = {**self._doc, "servers": [{"url": req.forwarded_prefix}]}


class App(falcon.App):
    """The Falcon app, with its engine (run slots, async runs, metrics) at hand."""

    engine: Engine


def create_app(settings: Settings | None = None) -> App:
    """Return the WSGI app with every route, those of ``ROUTE_MODULES`` included."""
    settings = settings or Settings.from_env()
    _by_id.update({a.id: a for a in load_manifest().actions})
    engine = Engine(settings)
    app = App(middleware=[_Auth(settings)])
    app.req_options.auto_parse_form_urlencoded = False
    app.engine = engine  # for the server's hooks (drain on SIGTERM) and tests
    app.add_error_handler(Exception, _on_any_error)
    app.add_error_handler(falcon.HTTPError, _on_http_error)
    app.add_error_handler(ConnectorError, _on_connector_error)
    app.add_route("/healthz", Health())
    app.add_route("/metrics", Metrics(engine))
    app.add_route("/openapi.json", Document(swagger=False))
    app.add_route("/swagger.json", Document(swagger=True))
    app.add_route("/actions", Actions())
    app.add_route("/actions/{action}", Describe())
    app.add_route("/actions/{action}/options/{field}", Options(engine))
    app.add_route("/actions/{action}/run", Run(engine))
    app.add_route("/actions/{action}/dry-run", DryRun(engine))
    app.add_route("/actions/{action}/runs", StartRun(engine))
    app.add_route("/runs/{run_id}", RunResult(engine))
    if settings.runs_url:  # these two routes go to the shared queue (replacing the above)
        import_module("connector.queued").add_routes(app, settings)
    for path in ROUTE_MODULES:
        module, _, name = path.partition(":")
        getattr(import_module(module), name or "add_routes")(app, settings)
    return app
