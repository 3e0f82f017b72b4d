"""How the server answers what is not an output: an error, or a run that is not done yet.

A failure is the error object ``{"error": {...}}`` with its type's HTTP status; Falcon's own
refusals (no route, wrong method) and unexpected exceptions become the same error object;
``Retry-After`` is sent whenever the error says when to retry. A run not done yet is a 202.
"""

from __future__ import annotations

import json
import logging

import falcon

from connector.errors import ConnectorError, InternalError, Refused
from connector.errors import http_status as status_of
from connector.server.intake import absolute_location
from connector.views.shapes import WARNINGS_HEADER

log = logging.getLogger("connector.server")


_FALCON_TYPES = {
    404: "unknown_route",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


def render(resp: falcon.Response, exc: ConnectorError) -> None:
    resp.status = status_of(exc)
    resp.media = {"error": exc.to_dict()}
    if exc.retry_after is not None:
        resp.set_header("Retry-After", str(max(1, round(exc.retry_after))))


def on_connector_error(req, resp, exc: ConnectorError, params) -> None:
    render(resp, exc)


def on_http_error(req, resp, exc: falcon.HTTPError, params) -> None:
    kind = _FALCON_TYPES.get(exc.status_code, "bad_call")
    text = exc.description or exc.title or "The request was refused."
    if kind == "unknown_route":
        text = f"No route {req.method} {req.path}. See GET /openapi.json for the routes."
    elif kind == "method_not_allowed":
        text = f"{req.path} does not take {req.method}."
    render(resp, Refused(text, type=kind))
    resp.status = exc.status_code
    for name, value in (exc.headers or {}).items():
        resp.set_header(name, value)


def on_any_error(req, resp, exc: Exception, params) -> None:
    if isinstance(exc, falcon.HTTPError):
        on_http_error(req, resp, exc, params)
        return
    # A bug: say what and where, never the message (it could hold a key or a prompt).
    log.error("internal error on %s %s: %s", req.method, req.path, type(exc).__name__)
    render(resp, InternalError(f"Internal error: {type(exc).__name__}."))


WARNINGS_MAX_BYTES = 4096  # clients and proxies refuse a header line past about 8 KiB


def warnings_header(resp: falcon.Response, warnings: list[dict] | None) -> None:
    """Say a run's warnings in ``X-Connector-Warnings`` (JSON, ASCII), when it had any.

    Past ``WARNINGS_MAX_BYTES`` the last ones give way to a count (the log has them all).
    """
    if not warnings:
        return
    kept = list(warnings)
    value = json.dumps(kept, ensure_ascii=True)
    while len(value) > WARNINGS_MAX_BYTES and kept:
        kept.pop()
        more = {"kind": "more", "message": f"and {len(warnings) - len(kept)} more warnings"}
        value = json.dumps([*kept, more], ensure_ascii=True)
    resp.set_header(WARNINGS_HEADER, value)


def not_done(req, resp, run_id: str, action: str, state: str, poll_after: int, **more) -> None:
    """Answer 202 for a run not done yet: its absolute Location and when to poll it again."""
    location = absolute_location(req, f"/runs/{run_id}")
    resp.status = 202
    resp.set_header("Location", location)
    resp.set_header("Retry-After", str(poll_after))
    resp.media = {"id": run_id, "action": action, "state": state, **more, "location": location}


def unknown_run(run_id: str) -> Refused:
    """Return the 404 of a run id that is unknown, past its retention, or another caller's."""
    return Refused(
        f"No run '{run_id}': it never existed, it is older than the retention time, or it was "
        "started with another token or tenant key.",
        type="unknown_route",
    )


def stored_run(req, resp, run, poll_after: int, **more) -> None:
    """Answer a stored run: 202 with its state while queued or running, then its result."""
    if run.state != "done":
        not_done(req, resp, run.id, run.action, run.state, poll_after, **more)
        return
    resp.status = run.status or 500
    resp.media = run.result
    warnings_header(resp, run.warnings)
