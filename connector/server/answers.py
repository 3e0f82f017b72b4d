"""How a failure is answered: the error object ``{"error": {...}}`` with its type's HTTP status.

Falcon's own refusals (no route, wrong method) and unexpected exceptions become the same error
object; ``Retry-After`` is sent whenever the error says when to retry.
"""

from __future__ import annotations

import logging

import falcon

from connector.errors import ConnectorError, InternalError, Refused
from connector.errors import http_status as status_of

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
